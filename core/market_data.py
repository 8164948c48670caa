"""Prices, returns, data cleaning, CSV import, and the fund-from-exposures return model.

Units
-----
Prices are in the quote currency, one float column per upper-case symbol, on a
``DatetimeIndex`` named ``Date``. Returns are simple decimal returns (0.01 = 1%).
Fund exposures come from :class:`~core.exposures.FundDefinition` in PERCENT of NAV and
are turned into FRACTIONS here; betas in :class:`ExposureFit` are fractions too.

Columns whose symbol starts with ``^`` follow Yahoo's index namespace (``^IRX``,
``^TNX`` are yields in percent, which can be zero or negative): they are read as they
are and skipped by the positivity and data-quality checks.
"""

from __future__ import annotations

import csv
import gzip
import io
import lzma
import math
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)

from core.errors import DataError, ValidationError
from core.exposures import AssetGroup, FundDefinition, FundExposureMap
from core.fileio import decode_bytes

__all__ = [
    "FFILL_LIMIT",
    "MIN_FIT_OBSERVATIONS",
    "DataIssue",
    "DataQualityReport",
    "ExposureDisagreement",
    "ExposureFit",
    "FundMapFit",
    "LOOSE_PROXY_GROUPS",
    "MapCheck",
    "annualization_factor",
    "check_data_quality",
    "clean_prices",
    "default_tolerance",
    "fit_fund_exposures",
    "fit_fund_map",
    "load_exposure_panel",
    "map_disagreements",
    "proxy_returns",
    "read_prices",
    "read_prices_text",
    "splice_history",
    "synthesize_fund_returns",
    "to_returns",
    "trading_days",
]

#: Missing trading days inside a history that :func:`to_returns` bridges (a run of at
#: most this many missing rows is forward-filled; longer gaps stay missing).
FFILL_LIMIT = 5
#: Fewest overlapping observations :func:`fit_fund_exposures` accepts (half a year weekly).
MIN_FIT_OBSERVATIONS = 26

_FREQUENCIES = {
    "daily": "daily",
    "d": "daily",
    "day": "daily",
    "weekly": "weekly",
    "w": "weekly",
    "week": "weekly",
    "monthly": "monthly",
    "m": "monthly",
    "me": "monthly",
    "month": "monthly",
}
_PERIODS_PER_YEAR = {"daily": 252, "weekly": 52, "monthly": 12}
_RESAMPLE_RULE = {"weekly": "W-FRI", "monthly": "ME"}

# Cell texts that mean "no value" in exports from Yahoo, Excel, FRED and brokers.
_NA_TOKENS = frozenset({"", "null", "nan", "na", "n/a", "#n/a", "none", "-", "--", ".", "nil"})
_DATE_HEADERS = ("date", "datetime", "time", "timestamp", "day", "as of", "asof")
_DATE_LIKE = re.compile(
    r"""^\s*"?\s*(
        \d{4}[-/.]\d{1,2}[-/.]\d{1,2}            # 2024-01-31, 2024/1/31
      | \d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}          # 31.01.2024, 1/31/2024
      | \d{8}(?!\d)                              # 20240131
      | \d{1,2}[-\s][A-Za-z]{3,9}[-\s,]+\d{2,4}  # 31-Jan-2024
      | [A-Za-z]{3,9}\.?\s+\d{1,2},?\s+\d{4}     # Jan 31, 2024
    )""",
    re.VERBOSE,
)
_ADJ_CLOSE_NAMES = (
    "adj close",
    "adj_close",
    "adjclose",
    "adjusted close",
    "adj. close",
    "adjusted",
)
_CLOSE_NAMES = ("close", "close/last", "price", "last")
_CURRENCY = re.compile(r"[\$€£¥\s\u00a0\u202f']")
# A cell with a comma that may be a decimal comma (12,5 or 1.234,50 or $12,5), and one whose
# comma could as well separate thousands (1,000).
_COMMA_NUMBER = re.compile(r"\s*[-+]?[\$€£]?\s*\d[\d.]*,\d+\s*[\$€£]?\s*")
_AMBIGUOUS_COMMA = re.compile(r"\s*[-+]?[\$€£]?\s*[1-9]\d{0,2},\d{3}\s*[\$€£]?\s*")
# Numbers whose grouping separators sit every three digits (after currency signs go).
_US_GROUPED = r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_EU_GROUPED = r"[-+]?\d{1,3}(?:\.\d{3})+(?:,\d*)?"


# =====================================================================================
# Trading calendar (used to tell a complete week or month from a partial one)
# =====================================================================================
class _NYSEHolidays(AbstractHolidayCalendar):
    """Regular NYSE holidays (special closures such as national days of mourning are
    not listed; they only matter if one falls on the last day of a period)."""

    rules = [
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        USMartinLutherKingJr,
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, start_date="2022-01-01", observance=nearest_workday),
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas", month=12, day=25, observance=nearest_workday),
    ]


_HOLIDAYS = _NYSEHolidays()


def trading_days(start: pd.Timestamp | str, end: pd.Timestamp | str) -> pd.DatetimeIndex:
    """NYSE trading days (regular holidays removed) between ``start`` and ``end`` inclusive."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    holidays = _HOLIDAYS.holidays(start - pd.Timedelta(days=7), end + pd.Timedelta(days=7))
    return pd.bdate_range(start, end, freq="C", holidays=list(holidays))


def _period_end(date: pd.Timestamp, frequency: str) -> pd.Timestamp:
    """Calendar end of the period holding ``date`` (its Friday, or its month end)."""
    if frequency == "weekly":
        return date if date.weekday() == 4 else date + pd.offsets.Week(weekday=4)
    return date + pd.offsets.MonthEnd(0)


def _period_is_complete(last_date: pd.Timestamp, frequency: str) -> bool:
    """True if ``last_date`` is the last trading day of its week or month."""
    if frequency == "daily":
        return True
    last_date = pd.Timestamp(last_date).normalize()
    remaining = trading_days(last_date + pd.Timedelta(days=1), _period_end(last_date, frequency))
    return len(remaining) == 0


# =====================================================================================
# Parsing
# =====================================================================================
def _normalise_frequency(frequency: str) -> str:
    key = str(frequency).strip().lower()
    if key not in _FREQUENCIES:
        raise ValidationError(
            f"Unknown return frequency {frequency!r}; use 'daily', 'weekly' or 'monthly'",
            field="frequency",
        )
    return _FREQUENCIES[key]


def annualization_factor(frequency: str) -> int:
    """Periods per year: 252 (daily), 52 (weekly), 12 (monthly)."""
    return _PERIODS_PER_YEAR[_normalise_frequency(frequency)]


def _sniff_delimiter(lines: Sequence[str]) -> str:
    """Pick the delimiter whose count is most consistent (and largest) over the sample."""
    sample = [ln for ln in lines[:60] if ln.strip()]
    if not sample:
        return ","
    best, best_score = ",", (-1.0, -1)
    for delim in (",", ";", "\t", "|"):
        counts = [ln.count(delim) for ln in sample]
        nonzero = [c for c in counts if c > 0]
        if not nonzero:
            continue
        values, freq = np.unique(nonzero, return_counts=True)
        mode = int(values[np.argmax(freq)])
        share = sum(1 for c in counts if c == mode) / len(counts)
        score = (share, mode)
        if score > best_score:
            best, best_score = delim, score
    return best


def _split(line: str, delim: str) -> list[str]:
    if '"' in line:
        return next(csv.reader([line], delimiter=delim))
    return line.split(delim)


_ASCII_BLANK = ' \t\r\n\x0b\x0c"'


def _is_blank(line: str, delim: str) -> bool:
    """True when the line holds only whitespace, delimiters and quotes."""
    rest = line.strip(_ASCII_BLANK + delim)  # one C call: the common case
    if not rest:
        return True
    if not rest[0].isspace() and not rest[-1].isspace():
        return False  # ends on a character that is none of those: content
    return not rest.replace(delim, "").replace('"', "").strip()  # Unicode spaces


def _clean_header(cell: str) -> str:
    return cell.strip().strip('"').strip().lstrip("\ufeff")


@dataclass
class _Table:
    """A parsed CSV: header names, dates, per-column raw text and source line numbers."""

    source: str
    names: list[str]
    date_column: int
    dates: pd.DatetimeIndex
    frame: pd.DataFrame  # columns are header positions; cells as read by pandas
    line_numbers: np.ndarray  # shape (rows,): 1-based line number in the file of each row
    decimal_comma: bool
    notes: list[str] = field(default_factory=list)

    def numeric(self, position: int) -> np.ndarray:
        """Column ``position`` as floats, shape (rows,); DataError naming the bad cell."""
        col = self.frame[position]
        name = self.names[position] or f"column {position + 1}"
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            return col.to_numpy(dtype=float, na_value=np.nan)
        text = col.astype("string").str.strip().str.strip('"').str.strip()
        missing = text.isna() | text.str.lower().isin(list(_NA_TOKENS))
        cleaned = text.str.replace(_CURRENCY, "", regex=True)
        # A separator is removed only where it is a real thousands separator: stripping
        # every ',' read "10,5" as 105 and every '.' read "10.25" as 1025, silently.
        if self.decimal_comma:
            grouping = cleaned.str.contains(".", regex=False)
            misplaced = grouping & ~cleaned.str.fullmatch(_EU_GROUPED).fillna(False)
            cleaned = cleaned.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        else:
            grouping = cleaned.str.contains(",", regex=False)
            misplaced = grouping & ~cleaned.str.fullmatch(_US_GROUPED).fillna(False)
            cleaned = cleaned.str.replace(",", "", regex=False)
        values = pd.to_numeric(cleaned.where(~missing & ~misplaced.fillna(False)), errors="coerce")
        bad = values.isna() & ~missing
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            hint = "prices must be plain numbers (fix or blank out the cell)"
            if bool(misplaced.iloc[i]):
                hint = (
                    "this file uses ',' as the decimal separator and '.' only between "
                    "thousands (1.234,50)"
                    if self.decimal_comma
                    else "this file uses '.' as the decimal separator and ',' only between "
                    "thousands (1,234.50)"
                ) + "; fix the cell or export the file again"
            raise DataError(
                f"{col.iloc[i]!r} is not a number; {hint}",
                path=self.source,
                row=int(self.line_numbers[i]),
                column=name,
            )
        return values.to_numpy(dtype=float, na_value=np.nan)


def _parse_dates(
    raw: pd.Series, line_numbers: np.ndarray, source: str, column: str
) -> pd.DatetimeIndex:
    """Parse a column of date texts, shape (rows,). Unreadable or empty -> DataError."""
    text = raw.astype("string").str.strip().str.strip('"').str.strip()
    empty = text.isna() | (text == "")
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise DataError(
            "row has values but no date; every row needs a date",
            path=source,
            row=int(line_numbers[i]),
            column=column,
        )
    first = str(text.iloc[0])
    parsed: pd.Series
    if re.match(r"^\d{4}-\d{1,2}-\d{1,2}", first):
        # Yahoo sometimes appends a time and offset: daily data keeps only the day.
        day = text.str.extract(r"^(\d{4}-\d{1,2}-\d{1,2})", expand=False)
        parsed = pd.to_datetime(day, format="%Y-%m-%d", errors="coerce")
    elif re.match(r"^\d{4}[/.]\d{1,2}[/.]\d{1,2}", first):
        sep = first[4]
        day = text.str.extract(rf"^(\d{{4}}\{sep}\d{{1,2}}\{sep}\d{{1,2}})", expand=False)
        parsed = pd.to_datetime(day, format=f"%Y{sep}%m{sep}%d", errors="coerce")
    elif re.match(r"^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}", first):
        parts = text.str.extract(r"^(\d{1,2})([-/.])(\d{1,2})[-/.](\d{2,4})", expand=True)
        a = pd.to_numeric(parts[0], errors="coerce")
        b = pd.to_numeric(parts[2], errors="coerce")
        sep = str(parts[1].dropna().iloc[0]) if parts[1].notna().any() else "/"
        if (a > 12).any():
            dayfirst = True
        elif (b > 12).any():
            dayfirst = False
        else:
            # Ambiguous: '.' is the European style (day first), '/' the US style.
            dayfirst = sep in ".-"
        year = "%Y" if parts[3].str.len().max() == 4 else "%y"
        fmt = f"%d{sep}%m{sep}{year}" if dayfirst else f"%m{sep}%d{sep}{year}"
        day = text.str.extract(r"^(\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})", expand=False)
        parsed = pd.to_datetime(day, format=fmt, errors="coerce")
    elif re.match(r"^\d{8}$", first):
        parsed = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
    else:
        parsed = pd.to_datetime(text, format="mixed", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"cannot read {text.iloc[i]!r} as a date; use YYYY-MM-DD",
            path=source,
            row=int(line_numbers[i]),
            column=column,
        )
    index = pd.DatetimeIndex(parsed)
    if index.tz is not None:
        index = index.tz_localize(None)
    return index.normalize()


class _LinesReader:
    """A text file over a list of lines, read in pieces (for ``pd.read_csv``).

    Joining 20 years x 500 symbols of lines into one string, which ``io.StringIO`` then
    widens to four bytes a character, held the GIL for 10-30 ms at a time here and made
    about 100 MB of new memory; here each ``read`` joins only what the parser asks for.
    """

    def __init__(self, lines: list[str]):
        self._lines = lines
        self._next = 0

    def read(self, size: int = -1) -> str:
        lines, start = self._lines, self._next
        if size is None or size < 0:
            end = len(lines)
        else:
            end, taken = start, 0
            while end < len(lines) and taken < size:
                taken += len(lines[end]) + 1
                end += 1
        self._next = end
        return "\n".join(lines[start:end]) + "\n" if end > start else ""

    def __iter__(self) -> Iterator[str]:
        while self._next < len(self._lines):
            self._next += 1
            yield self._lines[self._next - 1] + "\n"


def _parse_table(text: str, source: str) -> _Table:
    """Find the header, the date column and the data rows of CSV text.

    Leading lines before the header (titles, notes), blank lines, repeated header lines
    and Yahoo dividend/split event rows are skipped; trailing lines whose first cell is
    not a date are a footer and are dropped. A non-date line between data rows is an
    error naming the line.
    """
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    if not any(ln.strip() for ln in lines):
        raise DataError("the file is empty; expected a header row and dated rows", path=source)
    delim = _sniff_delimiter(lines)
    field_counts = [
        len(_split(ln, delim)) if '"' in ln else ln.count(delim) + 1
        for ln in lines
        if not _is_blank(ln, delim)
    ]
    if not field_counts:  # only delimiters and quotes, e.g. ",,,"
        raise DataError("the file is empty; expected a header row and dated rows", path=source)
    # A table row has two cells or more: titles and notes without a delimiter do not vote
    # (three notes around two data rows once made the file "one column").
    values, freq = np.unique([c for c in field_counts if c >= 2], return_counts=True)
    modal = int(values[freq == freq.max()].max()) if values.size else 1
    if modal < 2:
        raise DataError(
            "found only one column; expected a date column and at least one price column "
            "separated by ',' or ';'",
            path=source,
        )
    header_idx = -1
    for i, ln in enumerate(lines):
        if _is_blank(ln, delim):
            continue
        cells = _split(ln, delim)
        if _DATE_LIKE.match(cells[0]):
            break  # reached dated rows without meeting a header
        # Titles and notes above the header have fewer cells than the table.
        if len(cells) >= max(2, modal - 1):
            header_idx = i
            break
    if header_idx < 0:
        raise DataError(
            "no header row: the first line must name the columns (Date, then one column per "
            "ticker, or Yahoo's Date,Open,High,Low,Close,Adj Close,Volume)",
            path=source,
            row=1,
        )
    names = [_clean_header(c) for c in _split(lines[header_idx], delim)]
    lower = [n.lower() for n in names]
    date_col = next((i for i, n in enumerate(lower) if n in _DATE_HEADERS), 0)
    date_name = names[date_col] or "column 1"

    notes: list[str] = []
    kept: list[str] = []
    numbers: list[int] = []
    junk: list[int] = []
    header_line = lines[header_idx].strip()
    for i in range(header_idx + 1, len(lines)):
        ln = lines[i]
        if _is_blank(ln, delim):
            continue
        stripped = ln.strip()
        if stripped == header_line:
            notes.append(f"line {i + 1}: repeated header skipped")
            continue
        if '"' in ln:
            cells = _split(ln, delim)
            n_cells = len(cells)
        else:  # split only as far as the date cell (a full split is 500 strings a line)
            cells = ln.split(delim, date_col + 1)
            n_cells = ln.count(delim) + 1
        cell = cells[date_col] if len(cells) > date_col else ""
        if _DATE_LIKE.match(cell):
            low = stripped.lower()
            if "dividend" in low or "split" in low:
                notes.append(f"line {i + 1}: dividend/split event row skipped")
                continue
            if junk:
                bad = junk[0]
                raise DataError(
                    f"{lines[bad].strip()[:40]!r} is not a date; remove the line or fix the date",
                    path=source,
                    row=bad + 1,
                    column=date_name,
                )
            if n_cells > len(names):
                cells = _split(ln, delim)
            if n_cells > len(names) and any(c.strip() for c in cells[len(names) :]):
                raise DataError(
                    f"row has {n_cells} cells but the header names {len(names)} columns",
                    path=source,
                    row=i + 1,
                )
            if n_cells > len(names):
                # Trailing delimiters: keep the cells the header names.
                buf = io.StringIO()
                csv.writer(buf, delimiter=delim, lineterminator="").writerow(cells[: len(names)])
                ln = buf.getvalue()
            kept.append(ln)
            numbers.append(i + 1)
        else:
            junk.append(i)
    if junk:
        notes.append(f"lines {junk[0] + 1}-{junk[-1] + 1}: footer without dates skipped")
    if not kept:
        raise DataError(
            f"no dated rows below the header; the {date_name!r} column must hold dates",
            path=source,
            row=header_idx + 2 if header_idx + 1 < len(lines) else header_idx + 1,
            column=date_name,
        )

    # Only cells with a comma can be decimal-comma or grouped numbers; with ',' as the
    # delimiter only quoted cells hold one.
    sample = [
        (k, j, c.strip('"'))
        for k, ln in enumerate(kept[:200])
        if ("," in ln and delim != ",") or '"' in ln
        for j, c in enumerate(_split(ln, delim))
        if j != date_col and "," in c
    ]
    commas = [(k, j, c) for k, j, c in sample if _COMMA_NUMBER.fullmatch(c)]
    decimal_comma = delim != "," and any(not _AMBIGUOUS_COMMA.fullmatch(c) for _, _, c in commas)
    grouped = any(
        re.fullmatch(_US_GROUPED, _CURRENCY.sub("", c)) and not _AMBIGUOUS_COMMA.fullmatch(c)
        for _, _, c in sample
    )  # 1,000,000 or 1,000.5: commas between thousands
    if delim != "," and commas and not decimal_comma and not grouped:
        # Every comma sits before exactly three digits: 1,000 in the US, 1.0 in Europe.
        k, j, c = commas[0]
        raise DataError(
            f"{c.strip()!r} could be a thousands separator or a decimal comma; write the "
            "prices without thousands separators (1000.5 or 1000,5)",
            path=source,
            row=numbers[k],
            column=names[j] if j < len(names) else None,
        )
    try:
        frame = pd.read_csv(
            _LinesReader(kept),
            sep=delim,
            header=None,
            names=list(range(len(names))),
            index_col=False,
            # Decimal-comma files are read as text and converted by _Table.numeric, which
            # checks where the dots sit (pandas' thousands="." read "10.25" as 1025).
            dtype=str if decimal_comma else {date_col: str},
            na_values=sorted(_NA_TOKENS | {t.upper() for t in _NA_TOKENS} | {"NaN", "Null"}),
            keep_default_na=True,
            skipinitialspace=True,
            quotechar='"',
            engine="c",
            low_memory=False,
        )
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"the CSV layout is broken: {exc}", path=source) from exc
    line_numbers = np.asarray(numbers, dtype=int)
    dates = _parse_dates(frame[date_col], line_numbers, source, date_name)
    return _Table(source, names, date_col, dates, frame, line_numbers, decimal_comma, notes)


def _symbol_from_source(source: str) -> str:
    name = Path(str(source)).name
    for suffix in (".gz", ".zip", ".csv", ".txt", ".tsv"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name.strip().upper()


def _finish_prices(
    table: _Table, columns: dict[str, np.ndarray], issues: list[DataIssue]
) -> pd.DataFrame:
    """Check positivity, resolve duplicate and unsorted dates, return the wide frame."""
    source = table.source
    for name, values in columns.items():
        infinite = np.isinf(values)  # "inf" and "1e999" parse as floats
        if infinite.any():
            i = int(np.flatnonzero(infinite)[0])
            raise DataError(
                f"price {values[i]:g} is not a finite number; fix or blank out the cell",
                path=source,
                row=int(table.line_numbers[i]),
                column=name,
            )
        if name.startswith("^"):
            continue
        bad = values <= 0  # NaN compares False
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"price {values[i]:g} is not positive; prices must be > 0 "
                "(a blank cell is read as missing)",
                path=source,
                row=int(table.line_numbers[i]),
                column=name,
            )
    frame = pd.DataFrame(columns, index=table.dates)
    frame.index.name = "Date"
    if not frame.index.is_monotonic_increasing:
        issues.append(
            DataIssue("", None, "unsorted", f"{source}: dates were not in order; sorted", "info")
        )
    dup = frame.index.duplicated(keep="last")
    if dup.any():
        dup_dates = frame.index[dup].unique()
        lines = table.line_numbers[frame.index == dup_dates[0]]
        issues.append(
            DataIssue(
                "",
                pd.Timestamp(dup_dates[0]),
                "duplicate_date",
                f"{source}: {len(dup_dates)} date(s) appear on more than one row; "
                f"{dup_dates[0]:%Y-%m-%d} is on lines {', '.join(map(str, lines))}. "
                "Kept the last row of each date",
                "warning",
            )
        )
        frame = frame[~dup]
    frame = frame.sort_index(kind="stable")
    for note in table.notes:
        issues.append(DataIssue("", None, "skipped_lines", f"{source}: {note}", "info"))
    frame.attrs["source"] = source
    frame.attrs["issues"] = list(issues)
    return frame


def read_prices_text(
    text: str, source: str = "price text", *, symbol: str | None = None
) -> pd.DataFrame:
    """Read prices from CSV text (wide table or a Yahoo-style per-ticker file).

    Parameters
    ----------
    text : str
        The CSV content, already decoded.
    source : str
        Name used in error messages (a file path); its stem is the symbol of a
        Yahoo-style file when ``symbol`` is not given.
    symbol : str, optional
        Symbol of a Yahoo-style file, or the new name of the single price column of a
        one-ticker wide table.

    Returns
    -------
    DataFrame, shape (dates, symbols)
        Float prices, ``DatetimeIndex`` named ``Date`` (sorted, unique), columns the
        upper-case symbols. ``attrs["issues"]`` lists the :class:`DataIssue` found while
        reading (duplicated dates, unsorted dates, skipped lines).

    Raises
    ------
    DataError
        Naming the file, row (1-based line number) and column of an unreadable date, a
        non-numeric or non-positive price, or a missing date/price column.
    """
    try:
        table = _parse_table(text, source)
    except csv.Error as exc:  # a quoted cell longer than the csv module's field limit
        limit = csv.field_size_limit()
        row = next((i + 1 for i, ln in enumerate(text.splitlines()) if len(ln) > limit), None)
        raise DataError(f"the CSV layout is broken: {exc}", path=source, row=row) from None
    lower = [n.lower() for n in table.names]
    issues: list[DataIssue] = []
    adj = next((i for i, n in enumerate(lower) if n in _ADJ_CLOSE_NAMES), None)
    close = next((i for i, n in enumerate(lower) if n in _CLOSE_NAMES), None)
    is_yahoo = adj is not None or (
        close is not None and any(n in lower for n in ("open", "high", "low", "volume"))
    )
    if is_yahoo:
        position = adj if adj is not None else close
        assert position is not None
        name = (symbol or _symbol_from_source(source)).strip().upper()
        if not name:
            raise DataError(
                "a Yahoo-style file holds one ticker; pass symbol= to name it", path=source
            )
        values = table.numeric(position)
        if np.isnan(values).all():
            raise DataError(
                f"the {table.names[position]!r} column has no numbers",
                path=source,
                column=table.names[position],
            )
        return _finish_prices(table, {name: values}, issues)

    columns: dict[str, np.ndarray] = {}
    for position, raw_name in enumerate(table.names):
        if position == table.date_column:
            continue
        values = table.numeric(position)
        if not raw_name:
            if np.isnan(values).all():
                continue  # trailing delimiter: an empty unnamed column
            raise DataError(
                f"column {position + 1} has prices but no name; put the ticker in the header",
                path=table.source,
                row=1,
            )
        name = raw_name.strip().upper()
        if name in columns:
            raise DataError(
                f"ticker {name} appears in two columns; keep one",
                path=table.source,
                column=raw_name,
            )
        columns[name] = values
    if not columns or all(np.isnan(v).all() for v in columns.values()):
        raise DataError(
            "no price column with numbers; expected a date column, then one column per ticker",
            path=table.source,
        )
    if symbol is not None:
        if len(columns) != 1:
            raise ValidationError(
                f"symbol={symbol!r} only applies to a one-ticker file; {table.source} has "
                f"{len(columns)} price columns",
                field="symbol",
            )
        columns = {symbol.strip().upper(): next(iter(columns.values()))}
    return _finish_prices(table, columns, issues)


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise DataError("this is a folder, not a CSV file", path=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror}", path=str(path)) from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # zlib.error: a corrupt stream
            raise DataError(f"broken gzip file: {exc}", path=str(path)) from exc
    elif raw[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                members = [n for n in zf.namelist() if not n.endswith("/")]
                data = zf.read(members[0]) if len(members) == 1 else None
        # A corrupt member fails in its decompressor (zlib.error, OSError from bz2,
        # LZMAError), an unsupported method with NotImplementedError, an encrypted one
        # with RuntimeError, a damaged directory with ValueError ("negative seek value").
        except (
            zipfile.BadZipFile,
            zlib.error,
            lzma.LZMAError,
            NotImplementedError,
            RuntimeError,
            EOFError,
            OSError,
            ValueError,
        ) as exc:
            raise DataError(f"broken zip file: {exc}", path=str(path)) from exc
        if data is None:
            raise DataError(
                f"the zip holds {len(members)} files; put one CSV in it", path=str(path)
            )
        raw = data
    return raw


def read_prices(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    symbol: str | None = None,
) -> pd.DataFrame:
    """Load prices from a CSV file (plain, ``.gz`` or single-file ``.zip``) or a list of them.

    Parameters
    ----------
    source : path or list of paths
        A wide table (a date column, then one column per ticker) or Yahoo-style file
        (``Date,Open,High,Low,Close,Adj Close,Volume``: ``Adj Close`` is used when present,
        else ``Close``; the symbol is ``symbol`` or the file stem). A list of files is
        merged on dates; the same ticker in two files is an error.
    symbol : str, optional
        Symbol of a single Yahoo-style file.

    Returns
    -------
    DataFrame, shape (dates, symbols)
        See :func:`read_prices_text`.

    Notes
    -----
    Handles UTF-8 with or without BOM and Latin-1/cp1252 text, blank lines, title and
    footer lines, thousands separators, currency signs, decimal commas in ``;``-separated
    files, and ``null``/``NaN``/``-`` as missing.
    """
    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
        if not paths:
            raise ValidationError("no price files given", field="source")
        if symbol is not None and len(paths) > 1:
            raise ValidationError(
                "symbol= names the ticker of one file; with several files each is named "
                "by its stem or header",
                field="symbol",
            )
        frames = [read_prices(p, symbol=symbol) for p in paths]
        owner: dict[str, Path] = {}
        for path, frame in zip(paths, frames, strict=True):
            for col in frame.columns:
                if col in owner:
                    raise DataError(
                        f"ticker {col} is in both {owner[col]} and {path}; remove one",
                        path=str(path),
                        column=col,
                    )
                owner[col] = path
        issues = [issue for frame in frames for issue in frame.attrs.get("issues", [])]
        for frame in frames:
            frame.attrs = {}
        merged = pd.concat(frames, axis=1, join="outer", sort=True)
        merged.index.name = "Date"
        merged.attrs["source"] = ", ".join(str(p) for p in paths)
        merged.attrs["issues"] = issues
        return merged
    path = Path(source)
    text = decode_bytes(_read_bytes(path), str(path))
    return read_prices_text(text, source=str(path), symbol=symbol)


def load_exposure_panel(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Load the monthly exposure-return panel (``exposure_monthly_returns.csv`` layout).

    Returns
    -------
    DataFrame, shape (months, exposure types)
        Decimal simple returns on a month-end ``DatetimeIndex`` named ``Date``; columns are
        the upper-case exposure type codes. Months before a type's history are NaN.

    Raises
    ------
    DataError
        Unreadable dates or numbers, two rows in one month, or a return of -100% or less.
    """
    path = Path(path)
    text = decode_bytes(_read_bytes(path), str(path))
    table = _parse_table(text, str(path))
    columns: dict[str, np.ndarray] = {}
    for position, name in enumerate(table.names):
        if position == table.date_column:
            continue
        values = table.numeric(position)
        if not name:
            if np.isnan(values).all():
                continue
            raise DataError("a column of returns has no name", path=str(path), row=1)
        code = name.strip().upper()
        impossible = values <= -1.0
        if impossible.any():
            i = int(np.flatnonzero(impossible)[0])
            raise DataError(
                f"return {values[i]:g} is -100% or less; the panel holds decimal returns "
                "(0.01 = 1%)",
                path=str(path),
                row=int(table.line_numbers[i]),
                column=name,
            )
        columns[code] = values
    if not columns:
        raise DataError("no return columns found", path=str(path))
    month_end = table.dates + pd.offsets.MonthEnd(0)
    panel = pd.DataFrame(columns, index=pd.DatetimeIndex(month_end, name="Date"))
    dup = panel.index.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DataError(
            f"two rows for {panel.index[i]:%Y-%m}; the panel needs one row per month",
            path=str(path),
            row=int(table.line_numbers[i]),
        )
    return panel.sort_index()


# =====================================================================================
# Returns
# =====================================================================================
#: Columns per numpy call in the scans along time below. numpy's accumulate holds the GIL
#: for the whole call: over 20 years x 500 symbols at once one call took 50 ms, and
#: several times that where fresh memory was slow to fault in, while a GUI thread waiting
#: for the GIL froze. Blocks of 64 columns keep each call to a few milliseconds.
_SCAN_COLUMNS = 64


def _column_blocks(n_columns: int) -> Iterator[slice]:
    for lo in range(0, n_columns, _SCAN_COLUMNS):
        yield slice(lo, lo + _SCAN_COLUMNS)


def _run_lengths(flags: np.ndarray) -> np.ndarray:
    """Length of the run of True ending at each cell, along axis 0. Shape as ``flags``."""
    out = np.empty(flags.shape, dtype=np.int64)
    for cols in _column_blocks(flags.shape[1]):
        f = flags[:, cols]
        counts = np.cumsum(f, axis=0)
        out[:, cols] = counts - np.maximum.accumulate(np.where(f, 0, counts), axis=0)
    return out


def _inside_history(valid: np.ndarray) -> np.ndarray:
    """Cells between each column's first and last valid value (inclusive), shape (T, N)."""
    out = np.empty(valid.shape, dtype=bool)
    for cols in _column_blocks(valid.shape[1]):
        v = valid[:, cols]
        started = np.maximum.accumulate(v, axis=0)
        out[:, cols] = started & np.maximum.accumulate(v[::-1], axis=0)[::-1]
    return out


def _fill_short_gaps(prices: pd.DataFrame, limit: int = FFILL_LIMIT) -> pd.DataFrame:
    """Forward-fill runs of at most ``limit`` missing rows inside each history only."""
    values = prices.to_numpy(dtype=float, copy=True)
    if values.size == 0:
        return prices.astype(float)
    missing = np.isnan(values)
    forward = _run_lengths(missing)
    backward = _run_lengths(missing[::-1])[::-1]
    gap_length = forward + backward - 1
    fillable = missing & _inside_history(~missing) & (gap_length <= limit)
    if not fillable.any():
        return prices.astype(float)
    filled = prices.ffill().to_numpy(dtype=float)
    values[fillable] = filled[fillable]
    return pd.DataFrame(values, index=prices.index, columns=prices.columns)


def _check_prices_frame(prices: pd.DataFrame, what: str = "prices") -> pd.DataFrame:
    if isinstance(prices, pd.Series):
        prices = prices.to_frame()
    if not isinstance(prices, pd.DataFrame):
        raise ValidationError(f"{what} must be a DataFrame of prices, got {type(prices).__name__}")
    if not isinstance(prices.index, pd.DatetimeIndex):
        raise ValidationError(f"{what} must have a DatetimeIndex (dates as the index)")
    if not prices.index.is_monotonic_increasing:
        prices = prices.sort_index(kind="stable")
    if prices.index.has_duplicates:
        first = prices.index[prices.index.duplicated()][0]
        raise DataError(
            f"{what} has duplicated dates (first {first:%Y-%m-%d}); read files with "
            "read_prices, which keeps the last row of each date"
        )
    return prices


def _refuse_nonpositive(prices: pd.DataFrame, what: str = "prices") -> None:
    """DataError naming the first zero or negative price (NaN is missing, not bad)."""
    # A zero or negative price makes returns of -100% or worse that look like data;
    # '^' columns are yields (Yahoo's index namespace), which may be zero or negative.
    priced = [c for c in prices.columns if not str(c).startswith("^")]
    values = prices[priced].to_numpy(dtype=float)
    bad = (~(values > 0) | np.isinf(values)) & ~np.isnan(values)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            f"{what} of {priced[col]} is {values[row, col]:g} on "
            f"{prices.index[row]:%Y-%m-%d}; prices must be positive and finite (fix the "
            "price or blank it out)",
            column=str(priced[col]),
        )


def to_returns(
    prices: pd.DataFrame,
    frequency: str = "daily",
    *,
    drop_partial_last: bool = True,
) -> pd.DataFrame:
    """Simple returns at daily, weekly (Friday close) or monthly (month-end close) frequency.

    Parameters
    ----------
    prices : DataFrame, shape (days, symbols)
        Daily prices, possibly ragged (columns start and end on different dates).
    frequency : {'daily', 'weekly', 'monthly'}
    drop_partial_last : bool
        Drop the last week or month when the data ends before its last trading day.

    Returns
    -------
    DataFrame, shape (periods, symbols)
        Returns labelled by the period end (the day for daily, the Friday for weekly, the
        calendar month end for monthly); the first period (no previous price) is not
        included. Each column's returns start after its own first price; runs of at most
        :data:`FFILL_LIMIT` missing days inside a history are bridged, longer gaps give
        missing returns.

    Raises
    ------
    DataError
        A zero, negative or infinite price (``^`` yield columns excepted), naming the
        symbol and date.
    """
    freq = _normalise_frequency(frequency)
    prices = _check_prices_frame(prices)
    _refuse_nonpositive(prices)
    filled = _fill_short_gaps(prices.astype(float))
    if freq == "daily":
        sampled = filled
    else:
        # The price on the last trading row of each period (not the last non-missing
        # value, which could be weeks stale after a gap).
        position = pd.Series(np.arange(len(filled)), index=filled.index)
        last_row = position.resample(_RESAMPLE_RULE[freq]).max()
        picked = filled.to_numpy()[last_row.dropna().to_numpy(dtype=int)]
        sampled = pd.DataFrame(
            picked, index=last_row.dropna().index, columns=filled.columns
        ).reindex(last_row.index)
        if drop_partial_last and len(filled) and not _period_is_complete(filled.index[-1], freq):
            sampled = sampled.iloc[:-1]
    returns = sampled / sampled.shift(1) - 1.0
    returns = returns.iloc[1:]
    returns.index.name = "Date"
    return returns


# =====================================================================================
# Data quality
# =====================================================================================
@dataclass(frozen=True)
class DataIssue:
    """One data problem found (and possibly repaired).

    ``symbol`` is empty for a problem of the whole table (partial last month, duplicated
    dates); ``date`` is where it starts and ``end`` where a run (stale prices, gap) ends.
    ``severity`` is 'info', 'warning' or 'error'.
    """

    symbol: str
    date: pd.Timestamp | None
    kind: str
    message: str
    severity: str = "warning"
    end: pd.Timestamp | None = None
    repaired: bool = False


@dataclass
class DataQualityReport:
    """The issues :func:`check_data_quality` found and what :func:`clean_prices` did."""

    issues: list[DataIssue] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    #: Columns left out of the checks (rates and index levels: ``^`` symbols).
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.issues)

    def __iter__(self) -> Iterator[DataIssue]:
        return iter(self.issues)

    def add(self, issue: DataIssue) -> None:
        self.issues.append(issue)

    def find(
        self,
        kind: str | None = None,
        symbol: str | None = None,
        date: str | pd.Timestamp | None = None,
    ) -> list[DataIssue]:
        """Issues matching every argument given (``date`` may fall inside a run)."""
        when = pd.Timestamp(date) if date is not None else None
        out = []
        for issue in self.issues:
            if kind is not None and issue.kind != kind:
                continue
            if symbol is not None and issue.symbol != symbol.upper():
                continue
            if when is not None:
                if issue.date is None:
                    continue
                end = issue.end if issue.end is not None else issue.date
                if not issue.date <= when <= end:
                    continue
            out.append(issue)
        return out

    def by_kind(self, kind: str) -> list[DataIssue]:
        return self.find(kind=kind)

    def for_symbol(self, symbol: str) -> list[DataIssue]:
        return self.find(symbol=symbol)

    @property
    def ok(self) -> bool:
        """No unrepaired error-severity issue."""
        return not any(i.severity == "error" and not i.repaired for i in self.issues)

    def to_frame(self) -> pd.DataFrame:
        """One row per issue (symbol, date, end, kind, severity, repaired, message)."""
        cols = ["symbol", "date", "end", "kind", "severity", "repaired", "message"]
        return pd.DataFrame([{c: getattr(i, c) for c in cols} for i in self.issues], columns=cols)

    def summary(self) -> str:
        """Human-readable lines: every issue, then every repair."""
        lines = [f"[{i.severity}] {i.message}" for i in self.issues]
        lines += [f"repaired: {a}" for a in self.actions]
        return "\n".join(lines) if lines else "no data problems found"


#: Default thresholds of :func:`check_data_quality`.
JUMP_MIN_MOVE = 0.15
JUMP_MIN_SIGMA = 4.0
STALE_MIN_DAYS = 5
GAP_MIN_DAYS = FFILL_LIMIT + 1
LAST_ROW_MIN_SIGMA = 6.0
#: A column whose median daily move is below this (bill funds at zero rates) can sit
#: on one price for days legitimately, so it is not checked for stale prices.
STALE_MIN_TYPICAL_MOVE = 5e-4
_VOL_WINDOW = 63
#: A reversal undoes the jump to within this share of its log size.
_REVERSAL_SLACK = 0.1


def _date(index: pd.DatetimeIndex, i: int) -> pd.Timestamp:
    return pd.Timestamp(index[i])


def check_data_quality(
    prices: pd.DataFrame,
    *,
    jump_min_move: float = JUMP_MIN_MOVE,
    jump_min_sigma: float = JUMP_MIN_SIGMA,
    stale_min_days: int = STALE_MIN_DAYS,
    gap_min_days: int = GAP_MIN_DAYS,
    last_row_min_sigma: float = LAST_ROW_MIN_SIGMA,
) -> DataQualityReport:
    """Find bad prints, stale prices, gaps, partial periods and unadjusted last rows.

    Parameters
    ----------
    prices : DataFrame, shape (days, symbols)
        Daily prices (``^`` columns, rates and index levels, are skipped).

    Returns
    -------
    DataQualityReport
        Kinds: 'nonpositive' (error); 'jump_reversal' (a daily move of more than
        ``jump_min_move`` and ``jump_min_sigma`` times the trailing 63-day volatility
        that the next day reverses); 'stale' (one price for ``stale_min_days`` or more
        trading days while other columns move); 'gap' (``gap_min_days`` or more missing
        rows inside a history); 'partial_period' (the table ends before the last trading
        day of its month); 'last_row_drop' (a fall on the final row of more than
        ``last_row_min_sigma`` trailing volatilities that the other columns do not share,
        the mark of an unadjusted ex-dividend). Issues noted while reading the file
        (``prices.attrs['issues']``) come first.

    Notes
    -----
    Vectorised over the whole array: a few hundred milliseconds on 500 columns x 20 years.
    """
    prices = _check_prices_frame(prices)
    report = DataQualityReport(issues=list(prices.attrs.get("issues", [])))
    cols = [c for c in prices.columns if not str(c).startswith("^")]
    report.skipped = [str(c) for c in prices.columns if str(c).startswith("^")]
    index = prices.index
    if len(index) == 0 or not cols:
        return report
    p = prices[cols].to_numpy(dtype=float, copy=True)
    names = [str(c) for c in cols]
    valid = ~np.isnan(p)

    # -- non-positive prices -------------------------------------------------------
    nonpos = valid & (p <= 0)
    for j in np.flatnonzero(nonpos.any(axis=0)):
        rows = np.flatnonzero(nonpos[:, j])
        report.add(
            DataIssue(
                names[j],
                _date(index, rows[0]),
                "nonpositive",
                f"{names[j]}: {len(rows)} price(s) <= 0, first {index[rows[0]]:%Y-%m-%d}; "
                "a price must be positive",
                "error",
            )
        )
    p[nonpos] = np.nan
    valid &= ~nonpos

    if len(index) >= 2:
        with warnings.catch_warnings():
            # nanmedian/nanstd warn on all-missing columns; those simply yield no issue.
            warnings.simplefilter("ignore", RuntimeWarning)
            _check_returns(
                report,
                p,
                valid,
                index,
                names,
                jump_min_move,
                jump_min_sigma,
                stale_min_days,
                last_row_min_sigma,
            )
    _check_gaps(report, valid, index, names, gap_min_days)

    if not _period_is_complete(index[-1], "monthly"):
        report.add(
            DataIssue(
                "",
                _date(index, -1),
                "partial_period",
                f"the data ends on {index[-1]:%Y-%m-%d}, before the last trading day of "
                f"{index[-1]:%B %Y}; monthly returns drop that month",
                "info",
            )
        )
    return report


def _stale_runs(
    counted: np.ndarray, breaks: np.ndarray, min_count: int
) -> list[tuple[int, int, int, int]]:
    """Runs of at least ``min_count`` counted rows with no break row inside, per column.

    Per column, a run starts after a break row (or at row 0) and its count is the number
    of ``counted`` rows since; a break row resets it. Returns ``(t, j, first, count)`` for
    the last row ``t`` of every stretch where the count is ``>= min_count``, with ``first``
    the row after the break that started it, sorted by row then column. Works on blocks of
    columns so that no numpy call holds the GIL for long, and no full-size array is made.
    """
    rows = np.arange(len(counted))[:, None]
    found: list[tuple[int, int, int, int]] = []
    for cols in _column_blocks(counted.shape[1]):
        c = np.cumsum(counted[:, cols], axis=0)
        brk = breaks[:, cols]
        run = c - np.maximum.accumulate(np.where(brk, c, 0), axis=0)
        hit = run >= min_count
        ends = hit.copy()
        ends[:-1] &= ~hit[1:]
        t, j = np.nonzero(ends)
        if len(t):
            last_break = np.maximum.accumulate(np.where(brk, rows, -1), axis=0)
            found.extend(
                zip(
                    t.tolist(),
                    (j + cols.start).tolist(),
                    (last_break[t, j] + 1).tolist(),
                    run[t, j].tolist(),
                    strict=True,
                )
            )
    found.sort()
    return found


def _row_nanmedian(a: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median of each row's ``counts[i]`` non-NaN values (all >= 1).

    One sort (NaN sorts last): ``np.nanmedian`` along rows shorter than 600 goes through
    masked arrays, which took 0.13 s on 20 years x 500 symbols.
    """
    ordered = np.sort(a, axis=1)
    rows = np.arange(len(a))
    return 0.5 * (ordered[rows, (counts - 1) // 2] + ordered[rows, counts // 2])


def _check_returns(
    report: DataQualityReport,
    p: np.ndarray,
    valid: np.ndarray,
    index: pd.DatetimeIndex,
    names: list[str],
    jump_min_move: float,
    jump_min_sigma: float,
    stale_min_days: int,
    last_row_min_sigma: float,
) -> None:
    with np.errstate(invalid="ignore", divide="ignore"):
        r = p[1:] / p[:-1] - 1.0  # r[t] is the move into price row t + 1
    # Trailing volatility excluding the day itself, so a bad print cannot hide itself.
    sigma = pd.DataFrame(r).rolling(_VOL_WINDOW, min_periods=20).std().shift(1).to_numpy()
    overall = 1.4826 * np.nanmedian(np.abs(r - np.nanmedian(r, axis=0)), axis=0)
    sigma = np.where(np.isnan(sigma), overall, sigma)

    # A move most columns share (a crash day) is the market, not a bad print.
    with np.errstate(invalid="ignore", divide="ignore"):
        zabs = np.abs(r) / sigma
    counts = (~np.isnan(zabs)).sum(axis=1)
    market_z = np.full(len(r), 0.0)
    enough = counts >= 3
    if enough.any():
        market_z[enough] = _row_nanmedian(zabs[enough], counts[enough])
    quiet_market = market_z < 2.0

    # -- jump reversals ----------------------------------------------------------------
    if len(r) >= 2:
        r0, r1 = r[:-1], r[1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            log0, log1 = np.log1p(r0), np.log1p(r1)
            jump = (np.abs(r0) > jump_min_move) & (np.abs(r0) > jump_min_sigma * sigma[:-1])
            # The next day undoes the move almost exactly (BTAL 2015: -32.8%, +48.8%).
            reverses = (np.sign(r0) == -np.sign(r1)) & (
                np.abs(log0 + log1) < _REVERSAL_SLACK * np.abs(log0)
            )
        flagged = jump & reverses & quiet_market[:-1, None]
        for t, j in zip(*np.nonzero(flagged), strict=True):
            bad, back = _date(index, t + 1), _date(index, t + 2)
            report.add(
                DataIssue(
                    names[j],
                    bad,
                    "jump_reversal",
                    f"{names[j]}: {r0[t, j]:+.1%} on {bad:%Y-%m-%d} reversed by "
                    f"{r1[t, j]:+.1%} on {back:%Y-%m-%d} while the market was calm "
                    "(a bad print)",
                    "warning",
                    end=back,
                )
            )

    # -- stale prices ----------------------------------------------------------------
    both = valid[1:] & valid[:-1]
    same = both & (p[1:] == p[:-1])
    moved = both & ~same
    n_moved = moved.sum(axis=1, keepdims=True)
    n_both = both.sum(axis=1, keepdims=True)
    others_moved = n_moved - moved
    others_valid = n_both - both
    # A day counts as "the market moved" if most other columns moved (always true with
    # no other column to compare); a day when nothing moved neither counts nor resets.
    market_open = (others_valid == 0) | (others_moved >= np.maximum(1, 0.5 * others_valid))
    typical = np.nanmedian(np.abs(r), axis=0)
    checkable = typical > STALE_MIN_TYPICAL_MOVE
    counted = same & market_open & checkable
    breaks = ~same | ~checkable
    for t, j, start, count in _stale_runs(counted, breaks, stale_min_days - 1):
        # diff row t is the move into price row t + 1; the run's first diff row is its
        # first price row
        report.add(
            DataIssue(
                names[j],
                _date(index, start),
                "stale",
                f"{names[j]}: price {p[t + 1, j]:g} unchanged from {index[start]:%Y-%m-%d} "
                f"to {index[t + 1]:%Y-%m-%d} ({count + 1} trading days) while the "
                "market moved",
                "warning",
                end=_date(index, t + 1),
            )
        )

    # -- a drop on the last row only (unadjusted ex-dividend) --------------------------
    last = r[-1]
    have = ~np.isnan(last)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = last / sigma[-1]
    isolated = bool(quiet_market[-1])
    if isolated:
        for j in np.flatnonzero(have & (z < -last_row_min_sigma)):
            report.add(
                DataIssue(
                    names[j],
                    _date(index, -1),
                    "last_row_drop",
                    f"{names[j]}: {last[j]:+.2%} on the last row ({index[-1]:%Y-%m-%d}), "
                    f"{-z[j]:.0f} daily volatilities, while other columns did not fall: "
                    "looks like an ex-dividend day not yet adjusted",
                    "warning",
                )
            )


def _check_gaps(
    report: DataQualityReport,
    valid: np.ndarray,
    index: pd.DatetimeIndex,
    names: list[str],
    gap_min_days: int,
) -> None:
    # A row no column has a price on is a closed day, not a gap.
    row_has_data = valid.any(axis=1, keepdims=True)
    missing = ~valid & _inside_history(valid) & row_has_data
    run = _run_lengths(missing)
    hit = run >= gap_min_days
    ends = hit & np.vstack([~hit[1:], np.ones((1, hit.shape[1]), dtype=bool)])
    for t, j in zip(*np.nonzero(ends), strict=True):
        start = t - int(run[t, j]) + 1
        report.add(
            DataIssue(
                names[j],
                _date(index, start),
                "gap",
                f"{names[j]}: {int(run[t, j])} missing trading days from "
                f"{index[start]:%Y-%m-%d} to {index[t]:%Y-%m-%d}; returns across the gap "
                "are left missing",
                "warning",
                end=_date(index, t),
            )
        )


def clean_prices(
    prices: pd.DataFrame, report: DataQualityReport | None = None
) -> tuple[pd.DataFrame, DataQualityReport]:
    """Repair what can be repaired and say what was done.

    - 'jump_reversal': the bad price is replaced by log-linear interpolation in time
      between its neighbours;
    - 'last_row_drop': the final price of that column is removed (set missing; the row is
      dropped if no column has a price left);
    - 'nonpositive': the price is removed (set missing).

    Stale prices, gaps and partial periods are reported, not changed.

    Parameters
    ----------
    prices : DataFrame, shape (days, symbols)
    report : DataQualityReport, optional
        From :func:`check_data_quality`; computed when not given.

    Returns
    -------
    (DataFrame, DataQualityReport)
        The repaired prices (same shape, except a possibly dropped last row) and a new
        report whose repaired issues have ``repaired=True`` and whose ``actions`` list
        each repair.
    """
    prices = _check_prices_frame(prices)
    if report is None:
        report = check_data_quality(prices)
    index, columns = prices.index, prices.columns
    col_pos = {str(c): i for i, c in enumerate(columns)}
    values = prices.to_numpy(dtype=float, copy=True)  # the one copy the repairs write into
    interpolate = np.zeros(values.shape, dtype=bool)
    remove = np.zeros(values.shape, dtype=bool)
    new_issues: list[DataIssue] = []
    actions = list(report.actions)
    for issue in report.issues:
        j = col_pos.get(issue.symbol)
        if issue.repaired or j is None or issue.date is None or issue.date not in index:
            new_issues.append(issue)
            continue
        t = index.get_loc(issue.date)
        if issue.kind == "jump_reversal":
            interpolate[t, j] = True
            action = f"{issue.symbol} {issue.date:%Y-%m-%d}: bad print replaced by interpolation"
        elif issue.kind == "last_row_drop":
            remove[t, j] = True
            action = f"{issue.symbol} {issue.date:%Y-%m-%d}: unadjusted last price removed"
        elif issue.kind == "nonpositive":
            rows = ~np.isnan(values[:, j]) & (values[:, j] <= 0)
            remove[:, j] |= rows
            action = f"{issue.symbol}: {int(rows.sum())} non-positive price(s) removed"
        else:
            new_issues.append(issue)
            continue
        actions.append(action)
        new_issues.append(replace(issue, repaired=True))
    if interpolate.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = pd.DataFrame(
                np.log(np.where(interpolate | remove, np.nan, values)),
                index=index,
                columns=columns,
            )
        filled = np.exp(logs.interpolate(method="time", limit_area="inside").to_numpy())
        values[interpolate] = filled[interpolate]
    values[remove] = np.nan
    cleaned = pd.DataFrame(values, index=index, columns=columns, copy=False)
    if remove[-1].any() and cleaned.iloc[-1].isna().all():
        cleaned = cleaned.iloc[:-1]
    new_report = DataQualityReport(new_issues, actions, list(report.skipped))
    # attrs keep only what reading the file noted, so a second check does not repeat repairs.
    cleaned.attrs = dict(prices.attrs)
    return cleaned, new_report


# =====================================================================================
# Fund model: returns from exposures, splicing, regressions
# =====================================================================================
def synthesize_fund_returns(
    fund: FundDefinition,
    exposure_returns: pd.DataFrame,
    cash_returns: pd.Series,
    periods_per_year: int,
) -> pd.Series:
    """Fund returns implied by its exposures, financed at the cash rate.

    ``r_f = r_cash + sum_k e_k (r_k - r_cash) - (expense + spread * (notional - 1)) / ppy``
    with ``e_k`` the exposures as fractions (a CASH_TBILL sleeve has zero excess return, so
    it contributes ``e * r_cash`` through the first term).

    Parameters
    ----------
    fund : FundDefinition
        Exposures in percent of NAV, expense ratio and financing spread in percent/year.
    exposure_returns : DataFrame, shape (periods, types)
        Returns of the exposure types, columns named by type code.
    cash_returns : Series, shape (periods,)
        The cash (T-bill) return per period.
    periods_per_year : int
        12 for monthly, 52 weekly, 252 daily: scales the annual costs.

    Returns
    -------
    Series, shape (periods,)
        On ``exposure_returns.index``, named by the fund symbol; NaN where any needed input
        is missing.

    Raises
    ------
    DataError
        Naming the exposure type whose return series is missing.
    """
    if periods_per_year <= 0:
        raise ValidationError("periods_per_year must be positive (12, 52 or 252)")
    index = exposure_returns.index
    cash = cash_returns.reindex(index).astype(float)
    total = cash.copy()
    available = {str(c).upper(): c for c in exposure_returns.columns}
    for code, pct in fund.exposures.items():
        e = float(pct) / 100.0
        if e == 0 or code.upper() == "CASH_TBILL":
            continue
        if code.upper() not in available:
            raise DataError(
                f"{fund.symbol} needs returns of exposure type {code}, which the exposure "
                f"series do not have (columns: {', '.join(map(str, exposure_returns.columns))})",
                column=code,
            )
        total = total + e * (exposure_returns[available[code.upper()]].astype(float) - cash)
    result = total - fund.annual_cost / periods_per_year
    result.name = fund.symbol
    return result


def splice_history(real: pd.Series, synthetic: pd.Series) -> tuple[pd.Series, pd.Timestamp | None]:
    """Real returns where the fund has them, synthetic returns before its first one.

    Parameters
    ----------
    real : Series, shape (periods,)
        The fund's own returns (NaN before inception).
    synthetic : Series, shape (periods,)
        Returns rebuilt from exposures (:func:`synthesize_fund_returns`), same frequency.

    Returns
    -------
    (Series, Timestamp or None)
        The spliced returns (on the union of both indices; gaps inside the real history
        are kept missing, not patched) and the date of the first real return when a
        synthetic part was used, else None.

    Raises
    ------
    DataError
        If ``real`` has no return at all: use the synthetic series alone then.
    """
    real = real.astype(float)
    first = real.first_valid_index()
    if first is None:
        raise DataError(
            f"{real.name or 'the fund'} has no real returns to splice onto; use the "
            "synthetic series on its own"
        )
    before = synthetic.loc[synthetic.index < first].dropna()
    if before.empty:
        return real.loc[first:].copy(), None
    index = before.index.union(real.loc[first:].index)
    spliced = pd.concat([before, real.loc[first:]]).reindex(index)
    spliced.name = real.name
    return spliced, pd.Timestamp(first)


@dataclass
class ExposureFit:
    """Result of regressing a fund's excess returns on exposure proxies' excess returns.

    ``betas`` and ``beta_stderr`` are fractions (1.0 = 100% of NAV), keyed by the proxy
    column names (exposure type codes). ``alpha_annual`` is the intercept times periods
    per year; ``residual_vol_annual`` the regression standard error (n - k - 1 degrees of
    freedom) and ``tracking_error_annual`` the standard deviation of the fund's excess
    return minus ``sum_k beta_k x_k`` (the replicating portfolio), both annualised by
    sqrt(periods per year).
    """

    symbol: str
    betas: dict[str, float]
    alpha_annual: float
    r_squared: float
    residual_vol_annual: float
    tracking_error_annual: float
    n_obs: int
    start: pd.Timestamp
    end: pd.Timestamp
    frequency: str
    beta_stderr: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "betas": dict(self.betas),
            "beta_stderr": dict(self.beta_stderr),
            "alpha_annual": self.alpha_annual,
            "r_squared": self.r_squared,
            "residual_vol_annual": self.residual_vol_annual,
            "tracking_error_annual": self.tracking_error_annual,
            "n_obs": self.n_obs,
            "start": f"{self.start:%Y-%m-%d}",
            "end": f"{self.end:%Y-%m-%d}",
            "frequency": self.frequency,
        }


def fit_fund_exposures(
    fund_returns: pd.Series,
    proxy_returns: pd.DataFrame,
    cash_returns: pd.Series,
    frequency: str = "weekly",
    symbol: str = "",
) -> ExposureFit:
    """OLS of ``r_fund - r_cash`` on ``r_proxy - r_cash`` (with an intercept).

    Parameters
    ----------
    fund_returns : Series, shape (periods,)
    proxy_returns : DataFrame, shape (periods, k)
        One column per exposure type (its proxy's returns). A CASH_TBILL column is
        ignored: its excess return is zero by construction.
    cash_returns : Series, shape (periods,)
    frequency : {'daily', 'weekly', 'monthly'}
        Of the returns given; sets the annualisation.
    symbol : str
        Fund name for the result and error messages (default: the series name).

    Returns
    -------
    ExposureFit

    Raises
    ------
    DataError
        Fewer than :data:`MIN_FIT_OBSERVATIONS` periods where all series are present, or
        proxies that are collinear over the overlap.
    """
    freq = _normalise_frequency(frequency)
    ppy = _PERIODS_PER_YEAR[freq]
    symbol = symbol or str(fund_returns.name or "fund")
    proxies = proxy_returns.drop(
        columns=[c for c in proxy_returns.columns if str(c).upper() == "CASH_TBILL"]
    )
    data = pd.concat(
        [fund_returns.rename("__fund__"), cash_returns.rename("__cash__"), proxies], axis=1
    ).dropna()
    n = len(data)
    k = proxies.shape[1]
    if n < max(MIN_FIT_OBSERVATIONS, k + 2):
        raise DataError(
            f"{symbol}: only {n} {freq} periods where the fund, cash and every proxy "
            f"({', '.join(map(str, proxies.columns)) or 'none'}) all have returns; need at "
            f"least {max(MIN_FIT_OBSERVATIONS, k + 2)}",
            column=symbol,
        )
    cash = data["__cash__"].to_numpy()
    y = data["__fund__"].to_numpy() - cash
    x = data[list(proxies.columns)].to_numpy() - cash[:, None]
    design = np.column_stack([np.ones(n), x])
    coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    if rank < k + 1:
        raise DataError(
            f"{symbol}: the proxies {', '.join(map(str, proxies.columns))} are collinear "
            "over the overlap (or one has no variation); drop one",
            column=symbol,
        )
    resid = y - design @ coef
    ssr = float(resid @ resid)
    sst = float(((y - y.mean()) ** 2).sum())
    dof = n - k - 1
    s2 = ssr / dof
    cov = s2 * np.linalg.inv(design.T @ design)
    active = y - x @ coef[1:]
    names = [str(c) for c in proxies.columns]
    return ExposureFit(
        symbol=symbol,
        betas={c: float(b) for c, b in zip(names, coef[1:], strict=True)},
        alpha_annual=float(coef[0] * ppy),
        r_squared=float(1.0 - ssr / sst) if sst > 0 else float("nan"),
        residual_vol_annual=float(math.sqrt(s2 * ppy)),
        tracking_error_annual=float(active.std(ddof=1) * math.sqrt(ppy)),
        n_obs=n,
        start=pd.Timestamp(data.index[0]),
        end=pd.Timestamp(data.index[-1]),
        frequency=freq,
        beta_stderr={c: float(math.sqrt(v)) for c, v in zip(names, np.diag(cov)[1:], strict=True)},
    )


def proxy_returns(
    prices: pd.DataFrame,
    fund_map: FundExposureMap,
    codes: Iterable[str],
    frequency: str,
) -> pd.DataFrame:
    """Returns of each exposure type's proxy ticker (``ExposureType.proxy``).

    Parameters
    ----------
    prices : DataFrame, shape (days, tickers)
        Daily prices holding the proxy tickers (VTI, IEF, TLT, GLD, DBC, DBMF, EFA, EEM,
        IWM, BIL ...).
    fund_map : FundExposureMap
        Supplies the exposure types and their proxies.
    codes : iterable of str
        Exposure type codes wanted.
    frequency : {'daily', 'weekly', 'monthly'}

    Returns
    -------
    DataFrame, shape (periods, len(codes))
        Columns are the type codes.

    Raises
    ------
    DataError
        Naming a type that is unknown, has no proxy, or whose proxy has no prices.
    """
    codes = [str(c).upper() for c in codes]
    tickers: list[str] = []
    for code in codes:
        etype = fund_map.exposure_types.get(code)
        if etype is None:
            raise DataError(f"unknown exposure type {code}; add it to the fund map", column=code)
        proxy = etype.proxy.strip().upper()
        if not proxy:
            raise DataError(
                f"exposure type {code} ({etype.name}) has no proxy ticker; set one on the "
                "Fund Exposures tab to measure it",
                column=code,
            )
        if proxy not in prices.columns or prices[proxy].notna().sum() < 2:
            raise DataError(
                f"no prices for {proxy}, the proxy of exposure type {code}; add its price history",
                column=code,
            )
        tickers.append(proxy)
    selected = pd.DataFrame(
        {code: prices[ticker] for code, ticker in zip(codes, tickers, strict=True)},
        index=prices.index,
    )
    return to_returns(selected, frequency)


#: Exposure groups whose proxies are loose: these are strategies (trend, carry, merger
#: arbitrage) run differently by every manager, so one fund measured on another
#: manager's fund says little about the map (KMLM on DBMF: R^2 0.29).
LOOSE_PROXY_GROUPS = frozenset({AssetGroup.ALTERNATIVES})
#: A probe type (one the fund does not carry) counts as a missing exposure only if its
#: beta is this many standard errors from zero as well as beyond the tolerance.
MIN_PROBE_T = 3.0


@dataclass(frozen=True)
class ExposureDisagreement:
    """A published exposure and a measured beta (both fractions) that differ too much.

    ``probe`` is True when the fund does not carry the type and the beta comes from
    adding its proxy to the fund's own proxies (a sleeve missing from the map).
    """

    code: str
    published: float
    measured: float
    tolerance: float
    loose_proxy: bool = False
    probe: bool = False

    @property
    def difference(self) -> float:
        return self.measured - self.published

    def describe(self) -> str:
        what = "not in the map" if self.probe else f"published {self.published:.0%}"
        return f"{self.code}: {what}, measured {self.measured:.0%} (tolerance {self.tolerance:.0%})"


@dataclass
class MapCheck:
    """Outcome of :func:`map_disagreements` for one fund.

    ``disagreements`` fail the check; ``loose`` are reported only (the fund carries a type
    whose proxy is loose or missing, which biases every beta of its fit); ``unfitted``
    are carried types the fit has no beta for.
    """

    symbol: str
    disagreements: list[ExposureDisagreement] = field(default_factory=list)
    loose: list[ExposureDisagreement] = field(default_factory=list)
    unfitted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if no type with a good proxy disagrees beyond tolerance."""
        return not self.disagreements

    def describe(self) -> str:
        parts = [d.describe() for d in self.disagreements]
        parts += [f"(loose proxy, not failed) {d.describe()}" for d in self.loose]
        if self.unfitted:
            parts.append(f"not measured (no proxy prices): {', '.join(self.unfitted)}")
        return f"{self.symbol}: " + ("; ".join(parts) if parts else "agrees with its history")


def default_tolerance(published: float) -> float:
    """Allowed |beta - published| (fractions): max(0.25, 25% of the published value)."""
    return max(0.25, 0.25 * abs(published))


def map_disagreements(
    fund: FundDefinition,
    fit: ExposureFit,
    tolerance: float | Callable[[float], float] | None = None,
    *,
    loose_types: Iterable[str] = (),
    probes: dict[str, tuple[float, float]] | None = None,
    min_probe_t: float = MIN_PROBE_T,
) -> MapCheck:
    """Exposure types whose published exposure and measured beta differ beyond tolerance.

    Parameters
    ----------
    fund : FundDefinition
        The map entry (exposures in percent).
    fit : ExposureFit
        The measured betas (fractions) from :func:`fit_fund_exposures`. Types fitted but
        not published count as published 0.
    tolerance : float or callable, optional
        Absolute tolerance in fractions, or ``f(published) -> tolerance``; default
        :func:`default_tolerance` (max(0.25, 25% of the published value)).
    loose_types : iterable of str
        Carried types measured through a loose proxy or not at all. If the fund carries
        any, all its disagreements go to ``loose`` and do not fail the check. Carried
        types the fit has no beta for are listed in ``unfitted``.
    probes : dict, optional
        ``code -> (beta, standard error)`` of types the fund does not carry, each measured
        by adding its proxy to the fit (:func:`fit_fund_map`). A probe disagrees when its
        beta is beyond the tolerance for 0 and ``min_probe_t`` standard errors from 0.

    Returns
    -------
    MapCheck
    """
    if tolerance is None:
        tol_of: Callable[[float], float] = default_tolerance
    elif callable(tolerance):
        tol_of = tolerance
    else:
        tol_value = float(tolerance)

        def tol_of(_published: float) -> float:
            return tol_value

    published = {
        c.upper(): v / 100.0 for c, v in fund.exposures.items() if c.upper() != "CASH_TBILL"
    }
    measured = {c.upper(): b for c, b in fit.betas.items() if c.upper() != "CASH_TBILL"}
    loose_set = {c.upper() for c in loose_types}
    fund_is_loose = bool(loose_set & {c for c, v in published.items() if v != 0})
    check = MapCheck(symbol=fund.symbol)
    check.unfitted = [c for c in published if c not in measured and published[c] != 0]
    found: list[ExposureDisagreement] = []
    for code in list(published) + [c for c in measured if c not in published]:
        if code not in measured:
            continue
        pub = published.get(code, 0.0)
        tol = float(tol_of(pub))
        if abs(measured[code] - pub) > tol:
            found.append(ExposureDisagreement(code, pub, measured[code], tol, fund_is_loose))
    for code, (beta, stderr) in (probes or {}).items():
        code = code.upper()
        if code in published or code in measured:
            continue
        tol = float(tol_of(0.0))
        significant = stderr > 0 and abs(beta) / stderr > min_probe_t
        if abs(beta) > tol and significant:
            found.append(
                ExposureDisagreement(code, 0.0, float(beta), tol, fund_is_loose, probe=True)
            )
    for item in found:
        (check.loose if item.loose_proxy else check.disagreements).append(item)
    return check


@dataclass
class FundMapFit:
    """A fund's map entry next to what its price history says (:func:`fit_fund_map`).

    Attributes
    ----------
    fit : ExposureFit
        Regression on the proxies of the types the fund carries (those with prices).
    proxies : dict[str, str]
        Type code -> proxy ticker used.
    unfitted : list[str]
        Carried types with no proxy or no proxy prices (left out of the fit).
    loose_types : list[str]
        Carried types with a loose or missing proxy (see :data:`LOOSE_PROXY_GROUPS`).
    probes : dict[str, tuple[float, float]]
        Types of asset groups the fund does not carry at all: ``(beta, standard error)``
        when the type's proxy is added to the fit, to catch a sleeve missing from the map.
    """

    fund: FundDefinition
    fit: ExposureFit
    proxies: dict[str, str]
    unfitted: list[str]
    loose_types: list[str]
    probes: dict[str, tuple[float, float]]

    @property
    def symbol(self) -> str:
        return self.fund.symbol

    @property
    def loose_proxy(self) -> bool:
        return bool(self.loose_types)

    def check(self, tolerance: float | Callable[[float], float] | None = None) -> MapCheck:
        return map_disagreements(
            self.fund, self.fit, tolerance, loose_types=self.loose_types, probes=self.probes
        )


def _has_loose_proxy(fund_map: FundExposureMap, code: str) -> bool:
    etype = fund_map.exposure_types[code]
    return not etype.proxy.strip() or etype.group in LOOSE_PROXY_GROUPS


def fit_fund_map(
    prices: pd.DataFrame,
    fund_map: FundExposureMap,
    *,
    symbols: Iterable[str] | None = None,
    frequency: str = "weekly",
    min_history_years: float = 1.0,
    cash_type: str = "CASH_TBILL",
) -> tuple[dict[str, FundMapFit], dict[str, str]]:
    """Regress every fund with enough history on the proxies of the types it carries.

    Parameters
    ----------
    prices : DataFrame, shape (days, tickers)
        Daily prices (clean them first with :func:`clean_prices`) holding the funds and
        the proxy tickers, including the cash proxy (BIL).
    fund_map : FundExposureMap
    symbols : iterable of str, optional
        Funds to fit; default every fund of the map.
    frequency : {'daily', 'weekly', 'monthly'}
    min_history_years : float
        Funds with a shorter price history are skipped.
    cash_type : str
        Exposure type whose proxy is the cash rate (excess returns are over it).

    Returns
    -------
    (dict[str, FundMapFit], dict[str, str])
        The fits by symbol, and the skipped funds with the reason.
    """
    freq = _normalise_frequency(frequency)
    usable = {
        code: etype.proxy.strip().upper()
        for code, etype in fund_map.exposure_types.items()
        if etype.proxy.strip()
        and etype.proxy.strip().upper() in prices.columns
        and prices[etype.proxy.strip().upper()].notna().sum() >= 2
    }
    if cash_type not in usable:
        raise DataError(
            f"no prices for the proxy of {cash_type} (the cash rate); add "
            f"{fund_map.exposure_types[cash_type].proxy or 'a bill ETF'} to the price table",
            column=cash_type,
        )
    proxy_ret = proxy_returns(prices, fund_map, list(usable), freq)
    cash = proxy_ret[cash_type]
    wanted = [fund_map[s] for s in symbols] if symbols is not None else list(fund_map)
    fits: dict[str, FundMapFit] = {}
    skipped: dict[str, str] = {}
    for fund in wanted:
        sym = fund.symbol
        if sym not in prices.columns or prices[sym].notna().sum() < 2:
            skipped[sym] = "no prices"
            continue
        history = prices[sym].dropna().index
        years = (history[-1] - history[0]).days / 365.25
        if years < min_history_years:
            skipped[sym] = f"only {years:.1f} years of prices (need {min_history_years:g})"
            continue
        carried = [c for c, v in fund.exposures.items() if v != 0 and c != cash_type]
        if not carried:
            skipped[sym] = "a cash fund: its return in excess of cash is zero by construction"
            continue
        fitted = [c for c in carried if c in usable]
        if not fitted:
            skipped[sym] = f"no proxy prices for any of its types ({', '.join(carried)})"
            continue
        fund_ret = to_returns(prices[[sym]], freq)[sym]
        fit = fit_fund_exposures(fund_ret, proxy_ret[fitted], cash, freq, sym)
        groups = {fund_map.exposure_types[c].group for c in carried}
        probes: dict[str, tuple[float, float]] = {}
        for code in usable:
            etype = fund_map.exposure_types[code]
            if code == cash_type or etype.group in groups or _has_loose_proxy(fund_map, code):
                continue
            try:
                probe = fit_fund_exposures(fund_ret, proxy_ret[[*fitted, code]], cash, freq, sym)
            except DataError:
                continue  # the probe's proxy has too short an overlap: nothing to say
            probes[code] = (probe.betas[code], probe.beta_stderr[code])
        fits[sym] = FundMapFit(
            fund=fund,
            fit=fit,
            proxies={c: usable[c] for c in fitted},
            unfitted=[c for c in carried if c not in usable],
            loose_types=[c for c in carried if c not in usable or _has_loose_proxy(fund_map, c)],
            probes=probes,
        )
    return fits, skipped
