"""Shared pieces of the broker importers: result types, money parsing, rows and columns.

Row numbers
-----------
Every row number in this package (``ParsedPosition.row``, ``SkippedRow.row``,
``DataError.row``) is the 1-based line number in the file as a text editor shows it
(for an Excel workbook: the sheet's row number). A blank line counts as a line.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import DataError
from core.fileio import decode_bytes

#: Cell values that mean "no value" in broker exports.
MISSING_TOKENS = frozenset({"", "--", "-", "n/a", "na", "n.a.", "none", "null", "nan", "—", "–"})

_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
_CCY_AFFIX = re.compile(r"^(?:[A-Z]{3}\s+)|(?:\s+[A-Z]{3})$")
_SYMBOLS = "$€£¥₣"
_US_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_EU_THOUSANDS = re.compile(r"^\d{1,3}(?:\.\d{3})+(?:,\d*)?$")
_PLAIN = re.compile(r"^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")

#: Length of the raw text kept in a :class:`SkippedRow`.
TEXT_LIMIT = 200


class UnrecognisedExportError(DataError):
    """The file is not a positions export of a supported broker.

    Raised by :func:`core.brokers.parse_positions`; the app then offers the generic
    import with a column-mapping step (:func:`core.brokers.parse_generic`).
    """


# ---------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedPosition:
    """One holding read from a broker file.

    Parameters
    ----------
    symbol : str
        Ticker as the broker writes it, upper case. For a DEGIRO product whose ISIN is
        not in :data:`core.brokers.ISIN_TO_TICKER` it is the ISIN itself.
    quantity : float
        Shares (negative for a short position).
    price : float or None
        Last/closing price per share in ``currency``; None when the file has none.
    market_value : float or None
        Value of the position in ``currency`` as the broker states it.
    currency : str
        ISO code of ``price`` and ``market_value``.
    isin : str or None
        ISIN where the file gives one.
    description : str
        Fund name as the broker writes it.
    row : int
        Line number of the row in the file (1-based).
    """

    symbol: str
    quantity: float
    price: float | None
    market_value: float | None
    currency: str
    isin: str | None
    description: str
    row: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SkippedRow:
    """A row that was not imported as a position or cash, and why."""

    row: int
    text: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AccountPositions:
    """The positions and cash of one broker account.

    ``cash`` maps an ISO currency code to an amount; negative is a margin loan.
    A symbol may appear in more than one row (Fidelity lists cash and margin lots
    separately); :meth:`shares_by_symbol` sums them.
    """

    account_id: str
    account_name: str
    positions: list[ParsedPosition] = field(default_factory=list)
    cash: dict[str, float] = field(default_factory=dict)

    def shares_by_symbol(self) -> dict[str, float]:
        """Quantity per symbol, summed over rows, in order of first appearance."""
        parts: dict[str, list[float]] = {}
        for p in self.positions:
            parts.setdefault(p.symbol, []).append(p.quantity)
        return {s: math.fsum(q) for s, q in parts.items()}

    def add_cash(self, currency: str, amount: float) -> None:
        self.cash[currency] = math.fsum([self.cash.get(currency, 0.0), amount])

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "account_name": self.account_name,
            "positions": [p.to_dict() for p in self.positions],
            "cash": dict(self.cash),
        }


@dataclass
class PositionsImport:
    """Everything read from one positions file, before anything in the app changes.

    Parameters
    ----------
    broker : str
        ``"schwab"``, ``"fidelity"``, ``"vanguard"``, ``"ibkr"``, ``"degiro"`` or
        ``"generic"``; :data:`core.brokers.BROKER_NAMES` gives display names.
    layout : str
        Which of the broker's layouts was read (e.g. ``"all_accounts"``).
    accounts : list of AccountPositions
        In file order.
    skipped : list of SkippedRow
        Every row that is neither a position nor cash, with the reason (summary rows,
        options, pending activity, transaction sections, disclaimers ...).
    warnings : list of str
        Things the user should check (totals that do not add up, cash not found ...).
    source : str or None
        File name, for messages.
    """

    broker: str
    layout: str
    accounts: list[AccountPositions] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    source: str | None = None

    @property
    def account_ids(self) -> list[str]:
        return [a.account_id for a in self.accounts]

    def account(self, account_id: str) -> AccountPositions:
        for a in self.accounts:
            if a.account_id == account_id:
                return a
        raise KeyError(account_id)

    @property
    def positions(self) -> list[ParsedPosition]:
        return [p for a in self.accounts for p in a.positions]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (no ``source``), used by the expected-parse fixtures."""
        return {
            "broker": self.broker,
            "layout": self.layout,
            "accounts": [a.to_dict() for a in self.accounts],
            "skipped": [s.to_dict() for s in self.skipped],
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------
# Money
# ---------------------------------------------------------------------------


def parse_money(text: Any, *, decimal: str | None = None) -> float | None:
    """Read a number as brokers write it; None for a missing value.

    Handles ``$1,234.56``, ``-$1,234.56``, ``+$0.16``, ``(1,855.00)`` (negative),
    ``1.234,56`` and ``-3,00`` (European), ``USD 1,234.56``, ``12.5%`` (returns 12.5,
    the number as written, not a fraction), and ``--``, ``-``, ``N/A``, blank (None).

    Parameters
    ----------
    text : str or number
        The cell.
    decimal : {None, ".", ","}
        Decimal separator. None guesses per cell: with both separators present the
        last one is the decimal; a lone ``,`` is a thousands separator only in the
        pattern ``1,234`` / ``12,345,678`` and a decimal otherwise (``91,15``). Pass
        ``","`` for a file known to be European so that ``1,234`` reads as 1.234.

    Raises
    ------
    ValueError
        When the cell is not a number; callers turn it into a :class:`DataError`
        naming the file, row and column.
    """
    if text is None:
        return None
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a number")
    if isinstance(text, int | float):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number")
        return value
    s = str(text).strip().replace("\u00a0", " ").replace("\u202f", " ")
    if s.lower() in MISSING_TOKENS:
        return None
    negative = False
    if s.startswith("(") and s.endswith(")"):
        negative, s = True, s[1:-1].strip()
    s = _CCY_AFFIX.sub("", s).strip()
    if s.endswith("%"):
        s = s[:-1].strip()
    if s[:1] and s[0] in "+-":
        negative ^= s[0] == "-"
        s = s[1:].strip()
    s = s.strip(_SYMBOLS).strip()
    if s[:1] and s[0] in "+-":  # "$-12.00"
        negative ^= s[0] == "-"
        s = s[1:].strip()
    s = s.replace(" ", "").replace("'", "")  # 1 234,56 and 1'234.56
    if not s or not any(ch.isdigit() for ch in s):
        raise ValueError(f"{text!r} is not a number")
    s = _normalise_separators(s, decimal, text)
    if not _PLAIN.match(s):
        raise ValueError(f"{text!r} is not a number")
    value = float(s)
    if not math.isfinite(value):  # "1e999" matches the pattern but overflows to inf
        raise ValueError(f"{text!r} is not a finite number")
    return -value if negative else value


def _normalise_separators(s: str, decimal: str | None, original: Any) -> str:
    has_dot, has_comma = "." in s, "," in s
    if decimal is None:
        if has_dot and has_comma:
            decimal = "," if s.rfind(",") > s.rfind(".") else "."
        elif has_comma:
            decimal = "." if _US_THOUSANDS.match(s) else ","
        else:
            decimal = "."
    if decimal == ",":
        if has_dot and has_comma and not _EU_THOUSANDS.match(s):
            raise ValueError(f"{original!r} is not a number")
        if has_dot and not has_comma and not _EU_THOUSANDS.match(s):
            return s  # "12.5" in a comma-decimal file: a dot decimal all the same
        return s.replace(".", "").replace(",", ".")
    if has_comma and not _US_THOUSANDS.match(s):
        raise ValueError(f"{original!r} is not a number")
    return s.replace(",", "")


def guess_decimal(cells: Iterable[str]) -> str:
    """The decimal separator most numeric cells of a file use (``"."`` or ``","``)."""
    comma = dot = 0
    for cell in cells:
        s = cell.strip().lstrip("+-(").rstrip(")%").strip(_SYMBOLS).strip()
        if re.fullmatch(r"\d{1,3}[.,]\d{3}", s):
            continue  # "1,234" is 1234 in the US and 1.234 in Europe: no evidence either way
        if re.fullmatch(r"\d{1,3}(\.\d{3})*,\d+|\d+,\d{1,2}|\d+,\d{4,}", s):
            comma += 1
        elif re.fullmatch(r"\d{1,3}(,\d{3})*\.\d+|\d+\.\d{1,2}|\d+\.\d{4,}", s):
            dot += 1
    return "," if comma > dot else "."


# ---------------------------------------------------------------------------
# Reading files into numbered rows
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One CSV record: first line number, stripped cells (trailing blanks cut), raw text."""

    line: int
    cells: tuple[str, ...]
    text: str

    def cell(self, index: int | None) -> str:
        if index is None or index >= len(self.cells):
            return ""
        return self.cells[index]

    @property
    def nonempty(self) -> list[str]:
        return [c for c in self.cells if c]

    @property
    def blank(self) -> bool:
        return not any(self.cells)


@dataclass
class Source:
    """A loaded file: its label for messages and its rows (blank rows included)."""

    label: str | None
    rows: list[Row]


def _strip_cells(cells: Sequence[str]) -> tuple[str, ...]:
    out = [c.strip() for c in cells]
    while out and not out[-1]:
        out.pop()
    return tuple(out)


def sniff_delimiter(text: str) -> str:
    """``,`` unless ``;``, tab or ``|`` splits the first lines into more cells."""
    sample = [ln for ln in text.splitlines()[:40] if ln.strip()][:20]
    if not sample:
        return ","
    best, best_cells = ",", -1
    for delim in (",", ";", "\t", "|"):
        cells = sum(len(r) for r in csv.reader(sample, delimiter=delim))
        if cells > best_cells:
            best, best_cells = delim, cells
    return best


def rows_from_text(text: str, delimiter: str | None = None, label: str | None = None) -> list[Row]:
    """Split CSV text into :class:`Row` objects numbered by physical line.

    Raises :class:`DataError` (naming ``label`` and the line) when the csv module gives
    up, e.g. on a quoted cell longer than its field size limit.
    """
    text = text.lstrip("\ufeff")
    lines = list(io.StringIO(text, newline=""))
    rows: list[Row] = []
    start = 1
    try:
        delim = delimiter or sniff_delimiter(text)
        reader = csv.reader(lines, delimiter=delim, strict=False)
        for cells in reader:
            end = reader.line_num
            raw = "".join(lines[start - 1 : end]).rstrip("\r\n")
            rows.append(Row(start, _strip_cells(cells), raw))
            start = end + 1
    except csv.Error as exc:
        limit = csv.field_size_limit()
        row = next((i + 1 for i, ln in enumerate(lines) if len(ln) > limit), start)
        raise DataError(f"the CSV layout is broken: {exc}", path=label, row=row) from None
    return rows


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def rows_from_xlsx(path: Path, label: str | None = None) -> list[Row]:
    """Rows of the first worksheet, numbered by sheet row."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001
        # Besides BadZipFile and InvalidFileException, a damaged workbook raises what the
        # zip and XML layers raise: zlib.error, EOFError, NotImplementedError, ParseError.
        raise DataError(
            f"cannot open this Excel file ({exc}); save it again as .xlsx or CSV",
            path=label or str(path),
        ) from None
    try:
        sheet = book.worksheets[0]
        rows: list[Row] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = _strip_cells([_cell_text(v) for v in values])
            rows.append(Row(number, cells, ",".join(cells)))
        return rows
    except Exception as exc:  # noqa: BLE001
        # The sheet is read lazily: a damaged workbook fails here with whatever its layers
        # raise (zlib.error, XML ParseError, ValueError on a bad cell, NotImplementedError).
        raise DataError(
            f"cannot read this Excel file ({type(exc).__name__}: {exc}); it looks damaged: "
            "save it again as .xlsx or CSV",
            path=label or str(path),
        ) from None
    finally:
        book.close()


def load_source(source: str | os.PathLike[str] | bytes, filename: str | None = None) -> Source:
    """Load a path, CSV text or raw bytes into numbered rows.

    A ``str`` containing a line break is CSV text; any other ``str`` or a path object
    is a file path. ``.xlsx``/``.xlsm`` files (or any file that is a zip archive) are
    read with openpyxl; everything else is decoded with
    :func:`core.fileio.decode_bytes` (UTF-8 with or without BOM, else detected).
    """
    if isinstance(source, bytes):
        return _load_bytes(source, filename, Path(filename or "data.csv").suffix.lower())
    if isinstance(source, str) and ("\n" in source or "\r" in source):
        return Source(filename, rows_from_text(source, label=filename))
    path = Path(source)
    label = filename or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=label) from None
    except IsADirectoryError:
        raise DataError("this is a folder, not a file", path=label) from None
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", path=label) from None
    return _load_bytes(raw, label, path.suffix.lower(), path)


def _load_bytes(raw: bytes, label: str | None, suffix: str, path: Path | None = None) -> Source:
    if not raw.strip():
        raise DataError("the file is empty", path=label)
    if raw.startswith(b"PK\x03\x04") or suffix in (".xlsx", ".xlsm"):
        if path is None:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                tmp_path = Path(tmp) / "upload.xlsx"
                tmp_path.write_bytes(raw)
                return Source(label, rows_from_xlsx(tmp_path, label))
        return Source(label, rows_from_xlsx(path, label))
    if suffix == ".xls" or raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise DataError(
            "old Excel .xls files cannot be read; open it in Excel or LibreOffice and "
            "save it as .xlsx or CSV",
            path=label,
        )
    return Source(label, rows_from_text(decode_bytes(raw, label or "file"), label=label))


# ---------------------------------------------------------------------------
# Header columns
# ---------------------------------------------------------------------------


def norm_header(name: str) -> str:
    """Lower case, BOM/quotes stripped, inner whitespace collapsed."""
    return " ".join(name.replace("\ufeff", "").strip().strip('"').lower().split())


def header_keys(name: str) -> set[str]:
    """Names a header cell answers to: Schwab's ``Qty (Quantity)`` answers to both."""
    n = norm_header(name)
    keys = {n}
    m = re.fullmatch(r"(.+?)\s*\((.+)\)", n)
    if m:
        keys.update({m.group(1).strip(), m.group(2).strip()})
    return keys


class Columns:
    """Column positions of one header row, looked up by (aliases of) header name."""

    def __init__(self, header: Row, label: str | None, offset: int = 0):
        self.header = header
        self.label = label
        self.offset = offset
        self.names = list(header.cells[offset:])
        self._keys = [header_keys(c) for c in self.names]

    def find(self, *aliases: str) -> int | None:
        """Position (in the full row) of the first alias present, else None."""
        for alias in aliases:
            a = norm_header(alias)
            for i, keys in enumerate(self._keys):
                if a in keys:
                    return i + self.offset
        return None

    def has(self, *aliases: str) -> bool:
        return self.find(*aliases) is not None

    def require(self, what: str, *aliases: str) -> int:
        index = self.find(*aliases)
        if index is None:
            looked = " or ".join(repr(a) for a in aliases)
            raise DataError(
                f"the header row has no {what} column (looked for {looked}); export the "
                "file again with that column included",
                path=self.label,
                row=self.header.line,
            )
        return index

    def name(self, index: int | None) -> str:
        if index is None:
            return ""
        return self.header.cell(index) or f"column {index + 1}"


def number(
    row: Row, index: int | None, columns: Columns, *, decimal: str | None = None
) -> float | None:
    """The cell as a number (None when missing); DataError naming file, row and column."""
    if index is None:
        return None
    raw = row.cell(index)
    try:
        return parse_money(raw, decimal=decimal)
    except ValueError:
        raise DataError(
            f"{raw!r} is not a number; correct the cell or export the file again",
            path=columns.label,
            row=row.line,
            column=columns.name(index),
        ) from None


def required_number(
    row: Row, index: int, columns: Columns, what: str, *, decimal: str | None = None
) -> float:
    value = number(row, index, columns, decimal=decimal)
    if value is None:
        raise DataError(
            f"the {what} is missing in a position row; correct the cell or export the file again",
            path=columns.label,
            row=row.line,
            column=columns.name(index),
        )
    return value


# ---------------------------------------------------------------------------
# Building results
# ---------------------------------------------------------------------------


class Builder:
    """Collects accounts, skipped rows and warnings while a parser walks the rows."""

    def __init__(self, broker: str, layout: str, label: str | None):
        self.result = PositionsImport(broker, layout, source=label)
        self._by_id: dict[str, AccountPositions] = {}

    def account(self, account_id: str, account_name: str = "") -> AccountPositions:
        acct = self._by_id.get(account_id)
        if acct is None:
            acct = AccountPositions(account_id, account_name)
            self._by_id[account_id] = acct
            self.result.accounts.append(acct)
        elif account_name and not acct.account_name:
            acct.account_name = account_name
        return acct

    def skip(self, row: Row, reason: str, text: str | None = None) -> None:
        raw = row.text if text is None else text
        if len(raw) > TEXT_LIMIT:
            raw = raw[: TEXT_LIMIT - 3] + "..."
        self.result.skipped.append(SkippedRow(row.line, raw, reason))

    def skip_block(self, rows: Sequence[Row], what: str) -> None:
        """One entry for a block of rows that is not holdings (a transaction section)."""
        if not rows:
            return
        first, last = rows[0].line, rows[-1].line
        span = f"line {first}" if first == last else f"lines {first}-{last}"
        count = len(rows)
        self.skip(rows[0], f"{what} ({count} row{'s' if count != 1 else ''}, {span}): not holdings")

    def warn(self, message: str) -> None:
        if message not in self.result.warnings:
            self.result.warnings.append(message)

    def position(
        self,
        account: AccountPositions,
        row: Row,
        *,
        symbol: str,
        quantity: float,
        price: float | None,
        market_value: float | None,
        currency: str,
        description: str,
        isin: str | None = None,
    ) -> None:
        account.positions.append(
            ParsedPosition(
                symbol=symbol.strip().upper(),
                quantity=quantity,
                price=price,
                market_value=market_value,
                currency=currency,
                isin=isin or None,
                description=description.strip(),
                row=row.line,
            )
        )

    def finish(self) -> PositionsImport:
        self.result.skipped.sort(key=lambda s: s.row)  # file order, whatever pass found it
        return self.result


def is_currency(text: str) -> bool:
    return bool(_CURRENCY_CODE.match(text.strip()))


def money_text(value: float) -> str:
    """``$1,234.56`` / ``-$1,234.56`` for messages."""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"
