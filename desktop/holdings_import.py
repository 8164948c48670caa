"""Read holdings for the import preview: broker exports through core, generic CSV here.

Broker exports (Schwab, Fidelity, Vanguard, Interactive Brokers, DEGIRO; CSV or .xlsx)
are recognised and read by :func:`core.brokers.parse_positions`; its positions, skipped
rows (with reasons) and warnings become one :class:`ImportRow` per file line.

Any other table is read by :func:`parse_holdings_text`, which reports a bad cell on ITS
row and goes on, so the preview lists every problem at once (``core.brokers.parse_generic``
stops at the first bad cell). It understands:

Generic CSV
    A header row naming a symbol column (``symbol``, ``ticker``) and a share column
    (``shares``, ``quantity``, ``qty``, ``units``), optionally ``price``, ``name`` /
    ``description``, ``account`` and ``market value``. Title lines before the header are
    skipped. A row whose symbol is ``CASH`` gives the cash amount (its market value, or
    its shares column).
Schwab-like layouts
    A title line (``"Positions for account ... as of ..."``), quoted cells such as
    ``"$1,234.56"``, a ``Cash & Cash Investments`` row (the cash) and an
    ``Account Total`` row (checked against the sum, then skipped). Files core already
    recognises never reach this reader; it covers edited or partial exports.

Every data row becomes an :class:`ImportRow`; a row that cannot be used carries an
``error`` saying what is wrong, and the rest still import. Nothing here knows about Qt.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.brokers import (
    PositionsImport,
    UnrecognisedExportError,
    guess_mapping,
    parse_generic,
    parse_positions,
    read_table,
)
from core.errors import DataError, ValidationError
from core.fileio import read_text_any_encoding
from core.portfolio import Holding, normalise_symbol

_SYMBOL_HEADERS = ("symbol", "ticker", "sym", "security symbol")
_NAME_HEADERS = ("description", "name", "security", "security description", "fund name")
_ACCOUNT_HEADERS = ("account", "account name", "account number")
_CASH_SYMBOLS = ("CASH", "CASH & CASH INVESTMENTS", "CASH AND CASH INVESTMENTS", "CASH & SWEEP")
_TOTAL_SYMBOLS = ("ACCOUNT TOTAL", "TOTAL", "TOTALS", "GRAND TOTAL")
_MISSING = ("", "--", "-", "n/a", "na", "none")
_TITLE = re.compile(r"positions for (?:account )?(.*?)(?: as of .*)?$", re.IGNORECASE)


@dataclass
class ImportRow:
    """One data line of the file.

    ``line`` is the 1-based line number; ``error`` says why a position row cannot be
    imported; ``skipped`` says why a line is not a position at all (a summary row, an
    option, text), '' otherwise.
    """

    line: int
    symbol: str
    shares: float | None = None
    price: float | None = None
    market_value: float | None = None
    name: str = ""
    account: str = ""
    error: str = ""
    skipped: str = ""

    @property
    def ok(self) -> bool:
        """A position that can be imported (no error, not a skipped line)."""
        return not self.error and not self.skipped

    def holding(self) -> Holding:
        """The row as a core :class:`Holding` (only for rows without an error)."""
        if self.error or self.shares is None:
            raise ValidationError(f"line {self.line}: {self.error or 'no shares'}")
        return Holding(self.symbol, self.shares, self.price, self.account, self.name)


@dataclass
class ParsedImport:
    """What a holdings file holds.

    Attributes
    ----------
    rows : list of ImportRow
        Every holding line, usable or not, in file order.
    cash : float or None
        Cash found in the file (summed over accounts); None when the file has none.
    format : str
        ``"generic"`` or a broker code of :data:`core.brokers.BROKER_NAMES`.
    notes : list of str
        Things the user should know that are not row errors (an account total that does
        not match, lines skipped).
    """

    source: str
    format: str
    rows: list[ImportRow] = field(default_factory=list)
    cash: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def good_rows(self) -> list[ImportRow]:
        return [r for r in self.rows if r.ok]

    @property
    def bad_rows(self) -> list[ImportRow]:
        return [r for r in self.rows if r.error]


def parse_money(text: str) -> float | None:
    """``"$1,234.56"`` -> 1234.56, ``"($5.00)"`` / ``"-$5"`` -> -5.0, ``"--"`` -> None.

    Raises ValueError for text that is not an amount.
    """
    raw = text.strip()
    if raw.lower() in _MISSING:
        return None
    cleaned = raw.replace("$", "").replace(",", "").replace(" ", "").replace("\u00a0", "")
    negative = cleaned.startswith("(") and cleaned.endswith(")")
    if negative:
        cleaned = cleaned[1:-1]
    if cleaned.endswith("%"):
        raise ValueError(f"{raw!r} is a percentage, not an amount")
    value = float(cleaned)  # ValueError names the text
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not a finite number")
    return -value if negative else value


def _find(headers: list[str], *candidates: str, prefix: tuple[str, ...] = ()) -> int | None:
    for i, h in enumerate(headers):
        if h in candidates:
            return i
    for i, h in enumerate(headers):
        if any(h.startswith(p) for p in prefix):
            return i
    return None


@dataclass
class _Columns:
    symbol: int
    shares: int
    price: int | None
    value: int | None
    name: int | None
    account: int | None

    @classmethod
    def detect(cls, cells: list[str]) -> _Columns | None:
        headers = [c.strip().lower() for c in cells]
        symbol = _find(headers, *_SYMBOL_HEADERS)
        shares = _find(
            headers,
            "shares",
            "quantity",
            "qty",
            "units",
            "position",
            "qty (quantity)",
            prefix=("quantity", "qty"),
        )
        if symbol is None or shares is None:
            return None
        price = _find(headers, "price", "last price", "last", "close", "price ($)")
        value = _find(
            headers,
            "market value",
            "mkt val (market value)",
            "value",
            "current value",
            prefix=("market value", "mkt val"),
        )
        return cls(
            symbol=symbol,
            shares=shares,
            price=price,
            value=value,
            name=_find(headers, *_NAME_HEADERS),
            account=_find(headers, *_ACCOUNT_HEADERS),
        )


def _cell(cells: list[str], i: int | None) -> str:
    return cells[i].strip() if i is not None and i < len(cells) else ""


def parse_holdings_text(text: str, source: str = "holdings file") -> ParsedImport:
    """Parse holdings CSV text; see the module docstring for the layouts understood.

    Raises
    ------
    DataError
        When no header row with a symbol and a share column is found.
    """
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, ",;\t")
    except csv.Error:
        dialect = csv.excel
    lines = list(csv.reader(io.StringIO(text), dialect))
    result = ParsedImport(source=source, format="generic")
    columns: _Columns | None = None
    account = ""
    cash_total: float | None = None
    account_value = 0.0
    totals: list[tuple[int, float, float]] = []
    for number, cells in enumerate(lines, start=1):
        if not any(c.strip() for c in cells):
            continue
        filled = [c for c in cells if c.strip()]
        detected = _Columns.detect(cells)
        if detected is not None:
            columns = detected
            account_value = 0.0
            continue
        title = filled[0].strip() if len(filled) == 1 else ""
        match = _TITLE.match(title) if title else None
        if title and (len(cells) == 1 or match or columns is None):
            # A title line: Schwab's "Positions for account X as of ..." or an account name.
            if match:
                result.format = "schwab"
                account = match.group(1).strip()
            elif columns is not None:
                account = title
            continue
        if columns is None:
            continue
        symbol_text = _cell(cells, columns.symbol)
        upper = symbol_text.upper()
        if upper in _TOTAL_SYMBOLS:
            try:
                total = parse_money(_cell(cells, columns.value))
            except ValueError:
                total = None
            if total is not None:
                totals.append((number, total, account_value))
            continue
        row = ImportRow(
            line=number,
            symbol=upper,
            name=_cell(cells, columns.name),
            account=_cell(cells, columns.account) or account,
        )
        if upper in _CASH_SYMBOLS or upper.startswith("CASH &"):
            try:
                amount = (
                    parse_money(_cell(cells, columns.value)) if columns.value is not None else None
                )
                if amount is None:
                    amount = parse_money(_cell(cells, columns.shares))
            except ValueError:
                amount = None
            if amount is None:
                result.notes.append(f"line {number}: a cash row without an amount was skipped")
            else:
                cash_total = (cash_total or 0.0) + amount
                account_value += amount
            continue
        if not symbol_text:
            row.error = "no symbol"
            result.rows.append(row)
            continue
        try:
            row.symbol = normalise_symbol(symbol_text)
        except ValidationError as exc:
            row.error = str(exc)
            result.rows.append(row)
            continue
        shares_text = _cell(cells, columns.shares)
        try:
            row.shares = parse_money(shares_text)
        except ValueError:
            row.error = f"shares {shares_text!r} is not a number"
        if row.shares is None and not row.error:
            row.error = f"no share count (the share cell is {shares_text or 'empty'!r})"
        price_text = _cell(cells, columns.price)
        try:
            row.price = parse_money(price_text) if columns.price is not None else None
        except ValueError:
            row.error = row.error or f"price {price_text!r} is not a number"
        if row.price is not None and row.price <= 0 and not row.error:
            row.error = f"price {price_text!r} is not positive"
        try:
            row.market_value = parse_money(_cell(cells, columns.value))
        except ValueError:
            row.market_value = None
        if row.market_value is None and row.shares is not None and row.price is not None:
            row.market_value = row.shares * row.price
        if row.market_value is not None:
            account_value += row.market_value
        result.rows.append(row)
    if columns is None:
        raise DataError(
            "no header row with a symbol column (Symbol or Ticker) and a share column "
            "(Shares, Quantity or Qty) was found; add one, or export 'Positions' from your "
            "broker as CSV",
            path=source,
        )
    for number, total, summed in totals:
        if not math.isclose(total, summed, rel_tol=1e-3, abs_tol=1.0):
            result.notes.append(
                f"line {number}: the account total {total:,.2f} differs from the sum of the "
                f"rows {summed:,.2f}; check for rows that could not be read"
            )
    seen: dict[str, int] = {}
    for row in result.rows:
        if row.ok:
            if row.symbol in seen:
                result.notes.append(
                    f"{row.symbol} appears on lines {seen[row.symbol]} and {row.line}: the "
                    "shares are added together"
                )
            else:
                seen[row.symbol] = row.line
    result.cash = cash_total
    return result


def from_positions_import(imp: PositionsImport, currency: str = "USD") -> ParsedImport:
    """Rows of the preview from core's broker parse (positions, skipped lines, cash)."""
    result = ParsedImport(source=imp.source or "", format=imp.broker)
    for account in imp.accounts:
        label = account.account_name or account.account_id
        for p in account.positions:
            row = ImportRow(
                line=p.row,
                symbol=p.symbol,
                shares=p.quantity,
                price=p.price,
                market_value=p.market_value,
                name=p.description,
                account=label,
            )
            try:
                row.symbol = normalise_symbol(p.symbol)
            except ValidationError as exc:
                row.error = str(exc)
            if p.currency != currency:
                row.error = row.error or (f"priced in {p.currency}; the portfolio is in {currency}")
            elif row.price is not None and row.price <= 0:
                row.error = row.error or f"price {row.price:g} is not positive"
            result.rows.append(row)
        for ccy, amount in account.cash.items():
            if ccy == currency:
                result.cash = (result.cash or 0.0) + amount
            else:
                result.notes.append(
                    f"{label}: cash of {amount:,.2f} {ccy} is not imported (the portfolio is in "
                    f"{currency})"
                )
    for s in imp.skipped:
        result.rows.append(ImportRow(line=s.row, symbol="", name=s.text, skipped=s.reason))
    result.rows.sort(key=lambda r: r.line)
    result.notes.extend(imp.warnings)
    return result


def parse_holdings_file(path: str | os.PathLike[str], currency: str = "USD") -> ParsedImport:
    """Read a holdings file: a broker export through core, anything else as generic CSV.

    Raises
    ------
    DataError
        Unreadable file, a broken broker export (names the row), or no holdings header.
    """
    try:
        imp = parse_positions(path)
    except UnrecognisedExportError:
        if Path(path).suffix.lower() in (".xlsx", ".xlsm"):
            # Workbooks: core's generic reader with the column mapping it guesses.
            header, _rows = read_table(path)
            mapping = guess_mapping(header)
            if mapping is None:
                raise DataError(
                    "no symbol and quantity columns in the first sheet; name them Symbol "
                    "and Quantity",
                    path=str(path),
                ) from None
            imp = parse_generic(path, mapping)
        else:
            text = read_text_any_encoding(path)
            return parse_holdings_text(text, source=str(path))
    imp.source = str(path)
    return from_positions_import(imp, currency)


def looks_like_holdings(path: str | os.PathLike[str]) -> bool:
    """True if the file has a holdings header (used to route a dropped CSV)."""
    try:
        head = Path(path).read_bytes()[:8192].decode("utf-8", errors="replace")
    except OSError:
        return False
    for cells in csv.reader(io.StringIO(head)):
        if _Columns.detect(cells) is not None:
            return True
    return False
