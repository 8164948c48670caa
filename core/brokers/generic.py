"""Holdings from any CSV or Excel table, with a column mapping chosen by the user.

The app shows the first rows (:func:`read_table`, or :func:`load_table` with their line
numbers), proposes a mapping
(:func:`guess_mapping`), lets the user correct it, remembers it under
:func:`layout_key` of the header, and imports with :func:`parse_generic`. While the user
is still choosing columns, ``parse_generic(..., collect_errors=True)`` reads every row it
can and reports each unreadable one as a :class:`RowError` (row, column, reason) instead
of stopping at the first.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from core.brokers._base import (
    TEXT_LIMIT,
    Builder,
    Columns,
    PositionsImport,
    Row,
    SkippedRow,
    guess_decimal,
    header_keys,
    load_source,
    norm_header,
    number,
    parse_money,
)
from core.errors import DataError, ValidationError

#: Symbols read as cash rather than as a fund (compared without regard to case).
DEFAULT_CASH_SYMBOLS: tuple[str, ...] = (
    "CASH",
    "CASH & CASH INVESTMENTS",
    "CASH BALANCE",
    "CASH & SWEEP",
    "MONEY MARKET",
    "SWEEP",
)
_SUMMARY = frozenset(
    {"total", "totals", "account total", "grand total", "positions total", "portfolio total",
     "subtotal", "sub-total", "total value"}
)  # fmt: skip

SYMBOL_NAMES = (
    "Symbol", "Ticker", "Ticker Symbol", "Symbol/ISIN", "Security Symbol", "Instrument",
    "Code", "ISIN",
)  # fmt: skip
QUANTITY_NAMES = (
    "Quantity", "Qty", "Shares", "Units", "Position", "No. of Shares", "Number of Shares",
    "Share Count", "Holding", "Holdings", "Shares Held", "Quantity Held",
)  # fmt: skip
PRICE_NAMES = (
    "Price", "Last Price", "Last", "Close", "Closing Price", "Close Price", "Share Price",
    "Mark Price", "Current Price", "Market Price", "Last Trade", "Closing",
)  # fmt: skip
VALUE_NAMES = (
    "Market Value", "Mkt Val", "Value", "Current Value", "Total Value", "Position Value",
    "Market Val",
)  # fmt: skip
ACCOUNT_NAMES = ("Account", "Account Number", "Account ID", "Account Name", "Acct", "Portfolio")
CURRENCY_NAMES = ("Currency", "Ccy", "Curr", "Currency Code")
DESCRIPTION_NAMES = (
    "Description", "Name", "Security Name", "Investment Name", "Security", "Product",
    "Fund Name",
)  # fmt: skip

_HEADER_SCAN = 50


@dataclass(frozen=True)
class RowError(SkippedRow):
    """A data row that the column mapping could not read (``collect_errors=True``).

    ``reason`` and ``column`` are those of the :class:`~core.errors.DataError` that
    ``parse_generic`` raises for the row without ``collect_errors``; ``column`` is the
    header name of the (first) bad cell.
    """

    column: str = ""


@dataclass(frozen=True)
class GenericMapping:
    """Which column holds what, by header name (as written in the file).

    Parameters
    ----------
    symbol_col, quantity_col : str
        Required columns.
    price_col, account_col, value_col, currency_col, description_col : str or None
        Optional columns. Without ``account_col`` every row is one account.
    cash_symbols : tuple of str
        Symbol cells that mean cash (any case). A symbol ending in ``**`` (Fidelity's
        core cash) is cash too. A cash row's amount is its value column, else quantity
        times price, else its quantity.
    currency : str
        Currency of rows without a currency column.
    decimal : {None, ".", ","}
        Decimal separator; None guesses it from the file.
    """

    symbol_col: str
    quantity_col: str
    price_col: str | None = None
    account_col: str | None = None
    cash_symbols: tuple[str, ...] = DEFAULT_CASH_SYMBOLS
    value_col: str | None = None
    currency_col: str | None = None
    description_col: str | None = None
    currency: str = "USD"
    decimal: str | None = None

    def __post_init__(self) -> None:
        for name in ("symbol_col", "quantity_col"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"choose the {name.removesuffix('_col')} column", field=name)
        if self.decimal not in (None, ".", ","):
            raise ValidationError("the decimal separator must be '.' or ','", field="decimal")
        cur = self.currency.strip().upper()
        if len(cur) != 3 or not cur.isalpha():
            raise ValidationError(f"{self.currency!r} is not a currency code", field="currency")
        object.__setattr__(self, "currency", cur)
        object.__setattr__(self, "cash_symbols", tuple(self.cash_symbols))

    def columns(self) -> dict[str, str]:
        """Role -> header name of every mapped column."""
        return {
            f.name.removesuffix("_col"): getattr(self, f.name)
            for f in fields(self)
            if f.name.endswith("_col") and getattr(self, f.name)
        }

    def missing_columns(self, header: Sequence[str]) -> list[str]:
        """Mapped column names that ``header`` lacks (as :func:`parse_generic` looks)."""
        return [c for c in self.columns().values() if column_index(header, c) is None]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["cash_symbols"] = list(self.cash_symbols)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenericMapping:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(f"unknown mapping fields {unknown}", field=unknown[0])
        kwargs = dict(data)
        if "cash_symbols" in kwargs:
            kwargs["cash_symbols"] = tuple(kwargs["cash_symbols"])
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValidationError(f"incomplete column mapping: {exc}") from None


def column_index(header: Sequence[str], name: str) -> int | None:
    """Position of the column ``name`` in ``header``, found as :func:`parse_generic` does.

    Names match without regard to case, outer spaces or quotes, and Schwab's
    ``Qty (Quantity)`` answers to ``Qty`` and ``Quantity``; None when absent.
    """
    return Columns(Row(0, tuple(header), ""), None).find(name)


def _pick(header: Sequence[str], names: Sequence[str], taken: set[int]) -> str | None:
    keys = [header_keys(h) for h in header]
    for name in names:
        n = norm_header(name)
        for i, k in enumerate(keys):
            if i not in taken and n in k and header[i].strip():
                taken.add(i)
                return header[i]
    return None


def guess_mapping(header: Sequence[str]) -> GenericMapping | None:
    """A mapping proposed from header names, or None without symbol and quantity columns."""
    taken: set[int] = set()
    symbol = _pick(header, SYMBOL_NAMES, taken)
    quantity = _pick(header, QUANTITY_NAMES, taken)
    if symbol is None or quantity is None:
        return None
    return GenericMapping(
        symbol_col=symbol,
        quantity_col=quantity,
        price_col=_pick(header, PRICE_NAMES, taken),
        account_col=_pick(header, ACCOUNT_NAMES, taken),
        value_col=_pick(header, VALUE_NAMES, taken),
        currency_col=_pick(header, CURRENCY_NAMES, taken),
        description_col=_pick(header, DESCRIPTION_NAMES, taken),
    )


def layout_key(header: Sequence[str]) -> str:
    """A stable key of a table layout: the same for the same column names in any order."""
    names = sorted({norm_header(h) for h in header if h and h.strip()})
    digest = hashlib.sha1("\x1f".join(names).encode("utf-8")).hexdigest()[:16]
    return f"layout-{digest}"


def _numeric_share(row: Row) -> float:
    cells = row.nonempty
    count = 0
    for c in cells:
        try:
            if parse_money(c) is not None:
                count += 1
        except ValueError:
            pass
    return count / len(cells) if cells else 1.0


def _header_index(rows: Sequence[Row], mapping: GenericMapping | None = None) -> int | None:
    scan = [(i, r) for i, r in enumerate(rows[:_HEADER_SCAN]) if not r.blank]
    if mapping is not None:
        wanted = (norm_header(mapping.symbol_col), norm_header(mapping.quantity_col))
        for i, r in scan:
            keys = set().union(*(header_keys(c) for c in r.cells)) if r.cells else set()
            if all(w in keys for w in wanted):
                return i
        return None
    for i, r in scan:
        if guess_mapping(r.cells) is not None:
            return i
    widest = max((len(r.nonempty) for _, r in scan), default=0)
    for i, r in scan:
        if len(r.nonempty) >= max(2, widest // 2) and _numeric_share(r) < 0.5:
            return i
    return None


@dataclass(frozen=True)
class Table:
    """A table as the column-mapping step shows it.

    Attributes
    ----------
    header : list of str
        The column names.
    rows : list of list of str
        Data rows (blank rows dropped), cells as written.
    lines : list of int
        The file's line number of each row of ``rows`` (as in :class:`RowError`).
    header_line : int
        The file's line number of the header.
    """

    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    header_line: int


def load_table(path: str | os.PathLike[str] | bytes, *, filename: str | None = None) -> Table:
    """Header and data rows, with line numbers, of a CSV/TSV/semicolon file or an .xlsx.

    Title lines above the header are dropped; the header is the first row with a
    symbol and a quantity column by name, else the first wide, mostly non-numeric row.
    Blank rows are dropped. Cells are text as written (Excel numbers as plain text).
    """
    src = load_source(path, filename)
    at = _header_index(src.rows)
    if at is None:
        raise DataError("no header row found: the table needs a row of column names",
                        path=src.label)  # fmt: skip
    data = [r for r in src.rows[at + 1 :] if not r.blank]
    return Table(
        header=list(src.rows[at].cells),
        rows=[list(r.cells) for r in data],
        lines=[r.line for r in data],
        header_line=src.rows[at].line,
    )


def read_table(
    path: str | os.PathLike[str] | bytes, *, filename: str | None = None
) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a table: :func:`load_table` without the line numbers."""
    table = load_table(path, filename=filename)
    return table.header, table.rows


def parse_generic(
    source: str | os.PathLike[str] | bytes,
    mapping: GenericMapping,
    *,
    filename: str | None = None,
    collect_errors: bool = False,
) -> PositionsImport:
    """Holdings from a table with the user's column mapping (broker ``"generic"``).

    Parameters
    ----------
    source : path, str or bytes
        As for :func:`core.brokers.parse_positions` (CSV/TSV/semicolon text or .xlsx).
    mapping : GenericMapping
        Which header names hold symbol, quantity, price, ...
    filename : str, optional
        Name used in messages.
    collect_errors : bool
        False (default): the first unreadable cell raises a DataError naming its row and
        column. True: every unreadable row is reported in ``skipped`` as a
        :class:`RowError` (row, column, reason) and the other rows still import, so a
        preview can list every problem at once. The readable rows are the same either way.

    Raises
    ------
    DataError
        No header row holds the mapped symbol and quantity columns, a mapped column is
        not in the header (in both modes), or a cell is not a number (only without
        ``collect_errors``).
    """
    src = load_source(source, filename)
    label = src.label
    at = _header_index(src.rows, mapping)
    if at is None:
        raise DataError(
            f"no row of column names holds both {mapping.symbol_col!r} and "
            f"{mapping.quantity_col!r}; check the column mapping",
            path=label,
        )
    header = src.rows[at]
    cols = Columns(header, label)
    role: dict[str, int | None] = {}
    for name, column in mapping.columns().items():
        index = cols.find(column)
        if index is None:
            raise DataError(
                f"the mapped {name} column {column!r} is not in the header row; check the "
                "column mapping",
                path=label,
                row=header.line,
            )
        role[name] = index
    data = [r for r in src.rows[at + 1 :] if not r.blank]
    numeric = [role.get(k) for k in ("quantity", "price", "value")]
    decimal = mapping.decimal or guess_decimal(
        r.cell(i) for r in data for i in numeric if i is not None
    )
    cash_names = {s.strip().upper() for s in mapping.cash_symbols}
    out = Builder("generic", "generic", label)
    for row in src.rows[:at]:
        if not row.blank:
            out.skip(row, "text before the header row")
    for row in data:
        try:
            _generic_row(out, mapping, cols, role, row, decimal, cash_names)
        except DataError as exc:
            if not collect_errors:
                raise
            text = row.text if len(row.text) <= TEXT_LIMIT else row.text[: TEXT_LIMIT - 3] + "..."
            out.result.skipped.append(RowError(row.line, text, exc.reason, exc.column or ""))
    return out.finish()


def _generic_row(
    out: Builder,
    mapping: GenericMapping,
    cols: Columns,
    role: dict[str, int | None],
    row: Row,
    decimal: str,
    cash_names: set[str],
) -> None:
    symbol = row.cell(role["symbol"]).strip()
    if not symbol:
        out.skip(row, "no symbol in this row")
        return
    if symbol.lower() in _SUMMARY:
        out.skip(row, f"summary row ({symbol})")
        return
    currency = (row.cell(role.get("currency")) or mapping.currency).upper()
    quantity = number(row, role["quantity"], cols, decimal=decimal)
    price = number(row, role.get("price"), cols, decimal=decimal)
    value = number(row, role.get("value"), cols, decimal=decimal)
    if symbol.upper() in cash_names or symbol.endswith("**"):
        amount = value
        if amount is None and quantity is not None:
            amount = quantity * price if price is not None else quantity
        if amount is None:
            out.skip(row, "cash row without an amount")
            return
        out.account(row.cell(role.get("account")), "").add_cash(currency, amount)
        return
    if quantity is None:
        out.skip(row, "no quantity in this row")
        return
    if quantity == 0:
        out.skip(row, "zero quantity")
        return
    out.position(
        out.account(row.cell(role.get("account")), ""),
        row,
        symbol=symbol,
        quantity=quantity,
        price=price,
        market_value=value,
        currency=currency,
        description=row.cell(role.get("description")),
    )
