"""What a holdings file would change, before it changes anything: a thin layer over core.

Reading is all :mod:`core.brokers`: a broker export (Schwab, Fidelity, Vanguard,
Interactive Brokers, DEGIRO; CSV or .xlsx) is recognised and read by
:func:`core.brokers.parse_positions`; any other table is read with the user's column
mapping by ``core.brokers.parse_generic(..., collect_errors=True)``, which reports EVERY
unreadable row (row, column, reason) rather than stopping at the first.

This module only adds what the portfolio needs on top of that parse, without Qt:

- :func:`open_holdings_file`: the file's bytes, read once, and either its broker parse
  or its header and rows waiting for a column mapping (:class:`HoldingsFile`);
- :func:`preview`: one :class:`ImportRow` per line of the file (positions, unreadable
  rows, skipped lines), with the checks of the portfolio (a valid ticker, a positive
  price, the portfolio's currency) as row errors (:class:`ParsedImport`);
- :meth:`ParsedImport.holdings` / :meth:`ParsedImport.cash`: the chosen accounts merged
  by :func:`core.brokers.merge_accounts`;
- :func:`looks_like_holdings`: routes a dropped file to the import rather than to the
  price loader.
"""

from __future__ import annotations

import os
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.brokers import (
    PositionsImport,
    UnrecognisedExportError,
    detect_broker,
    guess_mapping,
    merge_accounts,
    parse_positions,
    read_table,
    unmapped_symbols,
)
from core.brokers.generic import GenericMapping, RowError, layout_key, load_table, parse_generic
from core.errors import DataError, StackOptError, ValidationError
from core.portfolio import Holding, normalise_symbol

#: Bytes of a large file that :func:`looks_like_holdings` reads (price files are big).
SNIFF_BYTES = 256 * 1024


@dataclass
class ImportRow:
    """One line of the file as the preview shows it.

    ``line`` is the 1-based line number in the file. ``account_id`` is the account of a
    position (None for a line outside any account: text, totals, unreadable rows).
    ``error`` says why a position (or an unreadable row) cannot be imported, naming the
    column in ``column`` where known; ``skipped`` says why a line is not a position at all
    (a summary row, an option, text); both are '' for a good position. ``currency`` is
    that of ``price`` and ``market_value``.
    """

    line: int
    symbol: str
    shares: float | None = None
    price: float | None = None
    market_value: float | None = None
    name: str = ""
    account: str = ""
    account_id: str | None = None
    error: str = ""
    skipped: str = ""
    column: str = ""
    currency: str = ""

    @property
    def ok(self) -> bool:
        """A position that can be imported (no error, not a skipped line)."""
        return not self.error and not self.skipped

    @property
    def is_position(self) -> bool:
        """A position row or an unreadable data row (not text, totals or options)."""
        return not self.skipped

    def holding(self) -> Holding:
        """The row as a core :class:`Holding` (only for rows without an error)."""
        if self.error or self.shares is None:
            raise ValidationError(f"line {self.line}: {self.error or 'no shares'}")
        return Holding(self.symbol, self.shares, self.price, self.account, self.name)


def account_label(account_id: str, account_name: str = "") -> str:
    """How an account is named in the preview ("Roth IRA (...456)"); '' for none."""
    if account_name and account_id:
        return f"{account_name} ({account_id})"
    return account_name or account_id


@dataclass
class ParsedImport:
    """A core :class:`PositionsImport` as the preview sees it, for one portfolio currency.

    Attributes
    ----------
    imp : PositionsImport
        Core's parse (broker or generic).
    currency : str
        The portfolio currency: positions priced and cash held in another currency are
        not imported (the portfolio has one currency).
    rows : list of ImportRow
        Every line the parse reported (positions, unreadable rows, skipped lines), in
        file order.
    """

    imp: PositionsImport
    currency: str = "USD"
    rows: list[ImportRow] = field(default_factory=list)

    @property
    def source(self) -> str:
        return self.imp.source or ""

    @property
    def format(self) -> str:
        """The broker code (``"generic"`` for a column-mapped table)."""
        return self.imp.broker

    @property
    def layout(self) -> str:
        return self.imp.layout

    @property
    def account_ids(self) -> list[str]:
        return self.imp.account_ids

    def _ids(self, account_ids: Iterable[str] | None) -> list[str]:
        return self.imp.account_ids if account_ids is None else list(account_ids)

    def error_symbols(self, account_ids: Iterable[str] | None = None) -> set[str]:
        """Symbols with a position row in error in the chosen accounts (left out whole)."""
        ids = set(self._ids(account_ids))
        return {r.symbol for r in self.rows if r.error and r.symbol and r.account_id in ids}

    def holdings(self, account_ids: Iterable[str] | None = None) -> list[Holding]:
        """One holding per symbol: shares summed over the chosen accounts.

        Symbols with a row in error are left out whole (a partial sum would be wrong);
        price and name come from the symbol's first row.
        """
        ids = self._ids(account_ids)
        if not ids:
            return []
        shares, _cash = merge_accounts(self.imp, ids)
        bad = self.error_symbols(ids)
        first: dict[str, ImportRow] = {}
        accounts: dict[str, list[str]] = {}
        for r in self.rows:
            if r.ok and r.account_id in ids:
                first.setdefault(r.symbol, r)
                if r.account and r.account not in accounts.setdefault(r.symbol, []):
                    accounts[r.symbol].append(r.account)
        out = []
        for symbol, quantity in shares.items():
            row = first.get(symbol)
            if row is None or symbol in bad:
                continue
            label = ", ".join(accounts.get(symbol, []))
            out.append(Holding(row.symbol, quantity, row.price, label, row.name))
        return out

    def cash_by_currency(self, account_ids: Iterable[str] | None = None) -> dict[str, float]:
        """Cash per currency summed over the chosen accounts (negative: margin loan)."""
        ids = self._ids(account_ids)
        return merge_accounts(self.imp, ids)[1] if ids else {}

    def cash(self, account_ids: Iterable[str] | None = None) -> float | None:
        """Cash in the portfolio currency; None when the chosen accounts hold none."""
        return self.cash_by_currency(account_ids).get(self.currency)

    def unmapped(
        self, fund_map: Container[str], account_ids: Iterable[str] | None = None
    ) -> list[str]:
        """Importable symbols of the chosen accounts that the fund map does not know."""
        ids = self._ids(account_ids)
        if not ids:
            return []
        bad = self.error_symbols(ids)
        return [s for s in unmapped_symbols(self.imp, fund_map, ids) if s not in bad]

    def notes(self, account_ids: Iterable[str] | None = None) -> list[str]:
        """What the user should know besides row errors: foreign cash, summed rows, warnings."""
        ids = self._ids(account_ids)
        notes: list[str] = []
        for ccy, amount in self.cash_by_currency(ids).items():
            if ccy != self.currency:
                notes.append(
                    f"Cash of {amount:,.2f} {ccy} is not imported: the portfolio is in "
                    f"{self.currency}."
                )
        seen: dict[str, int] = {}
        for r in self.rows:
            if r.ok and r.account_id in ids:
                if r.symbol in seen:
                    notes.append(
                        f"{r.symbol} is on lines {seen[r.symbol]} and {r.line}: the shares "
                        "are added together."
                    )
                else:
                    seen[r.symbol] = r.line
        notes.extend(self.imp.warnings)
        return notes


def preview(imp: PositionsImport, currency: str = "USD") -> ParsedImport:
    """Rows of the preview from core's parse, checked against the portfolio.

    A position becomes an error row when its symbol is not a ticker the portfolio
    accepts, its price is not positive, or it is priced in another currency than the
    portfolio's. A :class:`~core.brokers.generic.RowError` (a cell the mapping could not
    read) becomes an error row naming its column; other skipped lines keep their reason.
    """
    result = ParsedImport(imp, currency)
    for account in imp.accounts:
        label = account_label(account.account_id, account.account_name)
        for p in account.positions:
            row = ImportRow(
                line=p.row,
                symbol=p.symbol,
                shares=p.quantity,
                price=p.price,
                market_value=p.market_value,
                name=p.description,
                account=label,
                account_id=account.account_id,
                currency=p.currency,
            )
            try:
                row.symbol = normalise_symbol(p.symbol)
            except ValidationError as exc:
                row.error = str(exc)
            if not row.error and p.currency != currency:
                row.error = f"priced in {p.currency}; the portfolio is in {currency}"
            if not row.error and p.price is not None and p.price <= 0:
                row.error = f"price {p.price:g} is not positive"
            result.rows.append(row)
    for s in imp.skipped:
        if isinstance(s, RowError):
            where = f"{s.column}: " if s.column else ""
            result.rows.append(
                ImportRow(
                    line=s.row, symbol="", name=s.text, error=where + s.reason, column=s.column
                )
            )
        else:
            result.rows.append(ImportRow(line=s.row, symbol="", name=s.text, skipped=s.reason))
    result.rows.sort(key=lambda r: r.line)
    return result


def empty_preview(source: str, currency: str = "USD") -> ParsedImport:
    """The preview of nothing (a column mapping that cannot be read yet)."""
    return ParsedImport(PositionsImport("generic", "generic", source=source), currency)


@dataclass(frozen=True)
class HoldingsFile:
    """A file chosen for import: its bytes (read once) and what core made of them.

    Attributes
    ----------
    name : str
        File name, for titles and messages.
    data : bytes
        The file as read; every parse works on this snapshot.
    broker_import : PositionsImport or None
        The broker parse when core recognised the export; None for any other table,
        which then needs a column mapping.
    header, rows : tuple
        The table's column names and data rows as text (generic tables only).
    lines : tuple of int
        The file's line number of each of ``rows``.
    """

    name: str
    data: bytes
    broker_import: PositionsImport | None = None
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    lines: tuple[int, ...] = ()

    @property
    def is_broker(self) -> bool:
        return self.broker_import is not None

    @property
    def layout(self) -> str:
        """:func:`core.brokers.layout_key` of the header (generic tables)."""
        return layout_key(self.header)

    def parse(self, mapping: GenericMapping) -> PositionsImport:
        """Read the table with a column mapping, every unreadable row reported.

        Raises DataError when a mapped column is not in the header.
        """
        return parse_generic(self.data, mapping, filename=self.name, collect_errors=True)


def _read_bytes(path: Path, limit: int | None = None) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read() if limit is None else fh.read(limit)
    except FileNotFoundError:
        raise DataError("file not found", path=path.name) from None
    except IsADirectoryError:
        raise DataError("this is a folder, not a file", path=path.name) from None
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", path=path.name) from None


def open_holdings_file(
    source: str | os.PathLike[str] | bytes, *, filename: str | None = None
) -> HoldingsFile:
    """Read a holdings file once: a broker export is parsed, any other table previewed.

    Parameters
    ----------
    source : path or bytes
        The file (CSV of any common encoding, or .xlsx), or its bytes.
    filename : str, optional
        Name for messages (required for bytes of an .xlsx workbook without its zip
        signature, which never happens for a real one).

    Raises
    ------
    DataError
        Unreadable or empty file, a broken broker export (names the row and column), or
        a table without a row of column names.
    """
    if isinstance(source, bytes):
        data, name = source, filename or "holdings.csv"
    else:
        path = Path(source)
        data, name = _read_bytes(path), filename or path.name
    try:
        return HoldingsFile(name, data, broker_import=parse_positions(data, filename=name))
    except UnrecognisedExportError:
        table = load_table(data, filename=name)
        return HoldingsFile(
            name,
            data,
            header=tuple(table.header),
            rows=tuple(map(tuple, table.rows)),
            lines=tuple(table.lines),
        )


def looks_like_holdings(path: str | os.PathLike[str]) -> bool:
    """True for a broker export or a table with a known or guessable holdings layout.

    Routes a dropped file: holdings go to the import preview, anything else (a price
    history, say) to the market-data loader. A large text file is judged by its first
    :data:`SNIFF_BYTES` (price histories are large, holdings files small).
    """
    p = Path(path)
    if p.suffix.lower() in (".json", ".gz", ".zip"):
        return False
    try:
        head = _read_bytes(p, SNIFF_BYTES + 1)
        if len(head) > SNIFF_BYTES:
            if head.startswith(b"PK\x03\x04"):
                head = _read_bytes(p)  # a workbook is read whole or not at all
            else:
                head = head[: head.rfind(b"\n", 0, SNIFF_BYTES) + 1] or head[:SNIFF_BYTES]
        if detect_broker(head, filename=p.name) is not None:
            return True
        header, _rows = read_table(head, filename=p.name)
    except StackOptError:
        return False
    if guess_mapping(header) is not None:
        return True
    # A layout the user mapped before is holdings too, whatever its column names.
    from desktop.dialogs import app_settings  # Qt settings, only for this question
    from desktop.import_mapping import MappingMemory

    return MappingMemory(app_settings()).get(header) is not None


__all__ = [
    "SNIFF_BYTES",
    "HoldingsFile",
    "ImportRow",
    "ParsedImport",
    "account_label",
    "empty_preview",
    "looks_like_holdings",
    "open_holdings_file",
    "preview",
]
