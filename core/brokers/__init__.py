"""Holdings from the files brokers actually give their clients.

:func:`parse_positions` reads the positions export of Charles Schwab, Fidelity,
Vanguard, Interactive Brokers (Activity Statement and Flex Query) and DEGIRO, telling
them apart by CONTENT (never by file name) and finding columns by header name, since
brokers let users choose and reorder columns. Any other table goes through the generic
import: :func:`read_table` to preview it, :func:`guess_mapping` to propose which column is
symbol/quantity/price, :func:`layout_key` to remember the user's choice, and
:func:`parse_generic` to import.

The result, :class:`PositionsImport`, holds per account the positions (shares by symbol)
and cash by currency, every skipped row with its line number and reason, and warnings.
:func:`merge_accounts` combines the accounts the user picks; :func:`unmapped_symbols`
lists the symbols the fund map does not know yet.

Example
-------
>>> imp = parse_positions("Portfolio_Positions_Mar-14-2025.csv")  # doctest: +SKIP
>>> shares, cash = merge_accounts(imp)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Container, Iterable, Sequence

from core.brokers import degiro, fidelity, ibkr, schwab, vanguard
from core.brokers._base import (
    AccountPositions,
    ParsedPosition,
    PositionsImport,
    Row,
    SkippedRow,
    UnrecognisedExportError,
    load_source,
    parse_money,
)
from core.brokers.generic import (
    DEFAULT_CASH_SYMBOLS,
    GenericMapping,
    guess_mapping,
    layout_key,
    parse_generic,
    read_table,
)
from core.brokers.identifiers import ISIN_TO_TICKER, isin_check_digit_ok, looks_like_isin
from core.errors import DataError, ValidationError

__all__ = [
    "AccountPositions",
    "BROKER_HOWTO",
    "BROKER_NAMES",
    "DEFAULT_CASH_SYMBOLS",
    "DETECTORS",
    "GenericMapping",
    "ISIN_TO_TICKER",
    "ParsedPosition",
    "PositionsImport",
    "SkippedRow",
    "UnrecognisedExportError",
    "detect_broker",
    "guess_mapping",
    "isin_check_digit_ok",
    "layout_key",
    "looks_like_isin",
    "merge_accounts",
    "parse_generic",
    "parse_money",
    "parse_positions",
    "read_table",
    "unmapped_symbols",
]

#: Display names of the ``broker`` codes.
BROKER_NAMES: dict[str, str] = {
    "schwab": "Charles Schwab",
    "fidelity": "Fidelity",
    "vanguard": "Vanguard",
    "ibkr": "Interactive Brokers",
    "degiro": "DEGIRO",
    "generic": "Other (column mapping)",
}

#: One line per supported export: where to find it on the broker's site.
BROKER_HOWTO: dict[str, str] = {
    "schwab": "Accounts > Positions > Export (one account, or All Accounts)",
    "fidelity": "Accounts & Trade > Portfolio > Positions > Download (Portfolio_Positions_*.csv)",
    "vanguard": "Download center > a spreadsheet-compatible CSV file (OfxDownload.csv)",
    "ibkr": "Performance & Reports > Statements > Activity > CSV, or a Flex Query with "
    "Open Positions and Cash Report in CSV format",
    "degiro": "Portfolio > Export > CSV (Portfolio.csv)",
    "generic": "any CSV or Excel table with a symbol and a quantity column",
}

Sniffer = Callable[[Sequence[Row]], "str | None"]
Parser = Callable[[Sequence[Row], "str | None", str], PositionsImport]

#: (broker, sniffer, parser) in the order detection tries them.
DETECTORS: list[tuple[str, Sniffer, Parser]] = [
    ("ibkr", ibkr.sniff_flex, ibkr.parse_flex),
    ("ibkr", ibkr.sniff_activity, ibkr.parse_activity),
    ("schwab", schwab.sniff, schwab.parse),
    ("fidelity", fidelity.sniff, fidelity.parse),
    ("vanguard", vanguard.sniff, vanguard.parse),
    ("degiro", degiro.sniff, degiro.parse),
]


def _detect(rows: Sequence[Row]) -> tuple[str, str, Parser] | None:
    for broker, sniff, parse in DETECTORS:
        layout = sniff(rows)
        if layout:
            return broker, layout, parse
    return None


def detect_broker(
    source: str | os.PathLike[str] | bytes, *, filename: str | None = None
) -> tuple[str, str] | None:
    """(broker, layout) of a positions file from its content, or None."""
    found = _detect(load_source(source, filename).rows)
    return (found[0], found[1]) if found else None


def parse_positions(
    source: str | os.PathLike[str] | bytes, *, filename: str | None = None
) -> PositionsImport:
    """Read a broker's positions export, detecting the broker from the file's content.

    Parameters
    ----------
    source : path, str or bytes
        A path (``str`` without a line break, or ``os.PathLike``), the CSV text itself
        (a ``str`` with line breaks), or the raw bytes of the file. Text files of any
        common encoding (UTF-8 with or without BOM, cp1252 ...) and ``.xlsx`` workbooks
        are accepted.
    filename : str, optional
        Name used in messages (e.g. the name of a dropped file). Never used to detect
        the broker.

    Returns
    -------
    PositionsImport

    Raises
    ------
    UnrecognisedExportError
        The content matches none of the supported exports: use the generic import.
    DataError
        The file is unreadable or a position row is broken; names file, row and column.
    """
    src = load_source(source, filename)
    if all(r.blank for r in src.rows):
        raise DataError("the file is empty", path=src.label)
    found = _detect(src.rows)
    if found is None:
        supported = ", ".join(BROKER_NAMES[b] for b in BROKER_NAMES if b != "generic")
        raise UnrecognisedExportError(
            f"this is not a positions export of a supported broker ({supported}); import "
            "it with a column mapping instead (generic CSV/Excel import)",
            path=src.label,
        )
    broker, layout, parse = found
    result = parse(src.rows, src.label, layout)
    result.source = src.label
    return result


def _selected(imp: PositionsImport, account_ids: Iterable[str] | None) -> list[AccountPositions]:
    if account_ids is None:
        return list(imp.accounts)
    wanted = list(account_ids)
    known = set(imp.account_ids)
    missing = [a for a in wanted if a not in known]
    if missing:
        raise ValidationError(
            f"account(s) {missing} are not in this file; choose among {imp.account_ids}",
            field="account_ids",
        )
    return [a for a in imp.accounts if a.account_id in set(wanted)]


def merge_accounts(
    imp: PositionsImport, account_ids: Iterable[str] | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """Shares by symbol and cash by currency, summed over the chosen accounts.

    Parameters
    ----------
    imp : PositionsImport
    account_ids : iterable of str, optional
        Accounts to include; all when None. An unknown id raises ValidationError.

    Returns
    -------
    shares_by_symbol : dict
        Symbol -> total quantity, in order of first appearance.
    cash_by_currency : dict
        Currency -> total cash (negative for a margin loan).
    """
    shares: dict[str, list[float]] = {}
    cash: dict[str, list[float]] = {}
    for account in _selected(imp, account_ids):
        for p in account.positions:
            shares.setdefault(p.symbol, []).append(p.quantity)
        for currency, amount in account.cash.items():
            cash.setdefault(currency, []).append(amount)
    return (
        {s: math.fsum(q) for s, q in shares.items()},
        {c: math.fsum(a) for c, a in cash.items()},
    )


def unmapped_symbols(
    imp: PositionsImport,
    fund_map: Container[str],
    account_ids: Iterable[str] | None = None,
) -> list[str]:
    """Symbols of the chosen accounts that the fund map does not know, in file order."""
    out: list[str] = []
    for account in _selected(imp, account_ids):
        for p in account.positions:
            if p.symbol not in fund_map and p.symbol not in out:
                out.append(p.symbol)
    return out
