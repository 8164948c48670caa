"""Generic import that reports every bad row: ``parse_generic(..., collect_errors=True)``.

The app previews a column-mapped table with ALL its problems at once, so the collecting
mode must (1) report each unreadable row with its line, column and reason, exactly the
error the default mode raises for that row, and (2) read every other row exactly as the
default mode reads a file without the bad rows. Both are checked against the fixture's
hand-checked expected parse (tests/fixtures/brokers/generic.expected.json).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.brokers import GenericMapping, guess_mapping, parse_generic, read_table
from core.brokers.generic import RowError, column_index
from core.errors import DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "brokers"
TEXT = (FIXTURES / "generic.csv").read_text(encoding="utf-8")
EXPECTED = json.loads((FIXTURES / "generic.expected.json").read_text(encoding="utf-8"))
HEADER_LINE = 4
#: Lines of the fixture whose numbers are read (positions and cash rows), and the line
#: of each account's cash row.
DATA_LINES = (5, 6, 7, 8, 9)
CASH_LINE = {"Joint ...8842": 7, "IRA ...1177": 9}
NUMERIC = ("Shares", "Last", "Market Value")  # the order the parser reads them
BAD = ("abc", "12..5", "#VALUE!", "1,2,3x", "$-")


def _mapping() -> GenericMapping:
    header, _rows = read_table(TEXT)
    mapping = guess_mapping(header)
    assert mapping is not None
    return mapping


def _corrupt(cells_by_line: dict[int, set[str]], token: str) -> str:
    rows = list(csv.reader(io.StringIO(TEXT)))
    header = rows[HEADER_LINE - 1]
    for line, columns in cells_by_line.items():
        for column in columns:
            rows[line - 1][header.index(column)] = token
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _expected_without(lines: set[int]) -> list[dict]:
    """The expected accounts once the rows on ``lines`` are gone (independent of core)."""
    accounts = []
    for account in EXPECTED["accounts"]:
        positions = [p for p in account["positions"] if p["row"] not in lines]
        cash = account["cash"] if CASH_LINE[account["account_id"]] not in lines else {}
        if positions or cash:
            accounts.append({**account, "positions": positions, "cash": cash})
    return accounts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bad=st.dictionaries(
        st.sampled_from(DATA_LINES),
        st.sets(st.sampled_from(NUMERIC), min_size=1),
        min_size=1,
    ),
    token=st.sampled_from(BAD),
)
def test_every_bad_row_is_reported_and_the_rest_still_read(bad, token):
    text = _corrupt(bad, token)
    mapping = _mapping()
    result = parse_generic(text, mapping, collect_errors=True)
    errors = [s for s in result.skipped if isinstance(s, RowError)]
    assert [e.row for e in errors] == sorted(bad)  # one entry per bad row, in file order
    for e in errors:
        first_bad = next(c for c in NUMERIC if c in bad[e.row])
        assert e.column == first_bad
        assert repr(token) in e.reason
        assert TEXT.splitlines()[e.row - 1].split(",")[1] in e.text  # the row's own text
    got = [a.to_dict() for a in result.accounts]
    assert got == _expected_without(set(bad))
    # The other skipped lines (title, blank, total) are reported as before.
    plain = [(s.row, s.reason) for s in result.skipped if not isinstance(s, RowError)]
    assert plain == [(s["row"], s["reason"]) for s in EXPECTED["skipped"]]
    # Without collect_errors the first bad row raises, with the same row, column, reason.
    with pytest.raises(DataError) as err:
        parse_generic(text, mapping)
    first = errors[0]
    assert (err.value.row, err.value.column, err.value.reason) == (
        first.row,
        first.column,
        first.reason,
    )


def test_a_clean_file_reads_the_same_in_both_modes():
    mapping = _mapping()
    assert (
        parse_generic(TEXT, mapping, collect_errors=True).to_dict()
        == parse_generic(TEXT, mapping).to_dict()
        == EXPECTED
    )


def test_mapping_errors_still_raise_when_collecting():
    with pytest.raises(DataError, match="'Close'"):
        parse_generic(
            TEXT, GenericMapping("Ticker", "Shares", price_col="Close"), collect_errors=True
        )
    with pytest.raises(DataError, match="no row of column names"):
        parse_generic(TEXT, GenericMapping("Symbol", "Qty"), collect_errors=True)


def test_row_error_keeps_its_column_in_plain_json():
    text = _corrupt({6: {"Last"}}, "n/a?")
    result = parse_generic(text, _mapping(), collect_errors=True)
    (error,) = [s for s in result.skipped if isinstance(s, RowError)]
    assert error.to_dict() == {
        "row": 6,
        "text": error.text,
        "reason": "'n/a?' is not a number; correct the cell or export the file again",
        "column": "Last",
    }


def test_column_lookup_matches_the_parser():
    header = ["Account", " ticker ", "Qty (Quantity)", "Last"]
    assert column_index(header, "Ticker") == 1
    assert column_index(header, "quantity") == 2 and column_index(header, "Qty") == 2
    assert column_index(header, "Close") is None
    mapping = GenericMapping("Ticker", "Quantity", price_col="Close", account_col="ACCOUNT")
    assert mapping.missing_columns(header) == ["Close"]


def test_xlsx_with_text_in_a_number_column_reports_the_row(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Fund", "Units", "Close"])
    sheet.append(["VTI", 10, 250.5])
    sheet.append(["IEF", "ten", 95.0])
    sheet.append(["GLD", 3, "#N/A!"])
    sheet.append(["TLT", 4, 90])
    path = tmp_path / "book.xlsx"
    book.save(path)
    mapping = GenericMapping("Fund", "Units", price_col="Close")
    result = parse_generic(path, mapping, collect_errors=True)
    assert [(p.symbol, p.quantity, p.price) for p in result.positions] == [
        ("VTI", 10.0, 250.5),
        ("TLT", 4.0, 90.0),
    ]
    assert [(e.row, e.column) for e in result.skipped if isinstance(e, RowError)] == [
        (3, "Units"),
        (4, "Close"),
    ]
