"""Hostile files: every importer loads correctly or raises a typed error naming the place.

Fuzzed with hypothesis: the price reader (:func:`core.market_data.read_prices`), the
holdings importers (:func:`core.brokers.parse_positions`, :func:`core.brokers.parse_generic`),
the fund-map loaders (:meth:`FundExposureMap.from_csv_text`, ``from_csv``, ``from_json``,
``from_dict``) and the workspace loader (:meth:`Workspace.load`, ``from_dict``).

Two kinds of input:

* garbage: random bytes, and random sequences of CSV/JSON-ish tokens (delimiters, quotes,
  dates, numbers with ``$ % ,``, BOMs, Latin-1 bytes, NUL, ``nan``/``inf`` ...). The
  importer must return a valid object or raise :class:`DataError` /
  :class:`ValidationError` / :class:`WorkspaceError` (or a subclass) naming the file;
  any other exception is a crash, and a call running past :data:`HANG_LIMIT` seconds
  fails as a hang.
* realistic files with a known answer: generated tables written with random but legal
  formatting (delimiter, decimal comma, thousands separators, currency signs, BOM,
  Latin-1, CRLF, title/blank/footer lines, duplicated and unsorted dates, missing-value
  tokens). They must load to exactly the generated numbers; with one bad cell injected
  they must raise a DataError naming that file, line and column.

Inputs passed in (a ``base`` fund map, a workspace document) must be unchanged after a
failed load. :data:`FUZZ_CASES` sums the hypothesis ``max_examples`` of this module
(reported in docs/reliability.md). ``test_huge_price_file_one_million_rows`` is the one
big-file test (about 40 MB, run in a child process that reports its peak memory).
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.brokers import GenericMapping, PositionsImport, parse_generic, parse_positions
from core.errors import DataError, ValidationError, WorkspaceError
from core.exposures import BUILTIN_EXPOSURE_TYPES, FundDefinition, FundExposureMap
from core.market_data import read_prices, read_prices_text
from core.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
TYPED = (DataError, ValidationError, WorkspaceError)
#: Seconds one importer call may take on a small input before it counts as a hang.
HANG_LIMIT = 30.0

#: Multiplies every max_examples below, for a longer fuzzing campaign than the suite's
#: (``STACKOPT_FUZZ_SCALE=20 pytest tests/core/test_fuzz_importers.py``).
SCALE = float(os.environ.get("STACKOPT_FUZZ_SCALE", "1"))


def n(examples: int) -> int:
    return max(1, int(examples * SCALE))


GARBAGE = n(400)  # max_examples of each garbage test (about 1 ms each)
REALISTIC = n(150)  # max_examples of each known-answer test (about 10 ms each)
FUZZ_CASES = {
    "prices: random bytes": GARBAGE,
    "prices: random text": GARBAGE,
    "prices: realistic files, exact values": REALISTIC,
    "prices: realistic files, one bad cell": REALISTIC,
    "prices: Yahoo-style files": n(60),
    "holdings: random bytes (detect + generic)": GARBAGE,
    "holdings: realistic generic files, exact values": REALISTIC,
    "holdings and prices: damaged .xlsx / .zip / .gz files": n(150),
    "fund map: random CSV text": GARBAGE,
    "fund map: random JSON bytes": GARBAGE,
    "fund map: random JSON documents": n(150),
    "fund map: realistic CSV round trips": REALISTIC,
    "workspace: random bytes": GARBAGE,
    "workspace: mutated documents": n(400),
    "workspace: mutated version-1 documents": n(150),
}
SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)


class Hung(BaseException):
    """An importer ran past HANG_LIMIT (BaseException: no `except Exception` eats it)."""


@contextmanager
def no_hang(seconds: float = HANG_LIMIT) -> Iterator[None]:
    """Fail a call that does not return within ``seconds`` (POSIX, main thread only)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:  # pragma: no cover - Windows
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise Hung(f"the importer did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """(result, None) or (None, typed error); any other exception propagates (a crash)."""
    with no_hang():
        try:
            return call(), None
        except TYPED as exc:
            return None, exc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# ----------------------------------------------------------------------------- garbage
TOKENS = [
    b",", b";", b"\t", b"|", b"\n", b"\r\n", b"\r", b'"', b"'", b" ", b"",
    b"Date", b"date", b"Adj Close", b"Close", b"Open", b"Volume", b"SPY", b"^IRX",
    b"2024-01-02", b"2024-01-03", b"01/02/2024", b"31.12.2023", b"20240102", b"Jan 2, 2024",
    b"12.5", b"1,234.50", b"1.234,50", b"$", b"\xe2\x82\xac", b"%", b"-", b"(", b")", b"0",
    b"-3", b"1e999", b"nan", b"NaN", b"inf", b"-inf", b"null", b"N/A", b"--",
    b"\xef\xbb\xbf", b"\xe9", b"\xfc", b"\xa3", b"\x00", b"\xff\xfe",
    b"Symbol", b"Quantity", b"Price", b"Market Value", b"Account", b"Total", b"Cash",
    b"symbol", b"name", b"US_EQUITY", b"UST_10Y", b"expense_ratio", b"source",
    b"{", b"}", b"[", b"]", b":", b'"format"', b'"stackopt-workspace"', b'"version"', b"2",
    b'"funds"', b'"portfolio"', b'"holdings"', b"1" * 400, b"true", b"null",
    b"x" * 300, b"Dividend", b"Positions for account", b"Open Positions", b"Header", b"Data",
    b"PK\x03\x04", b"\x1f\x8b\x08", b"\xd0\xcf\x11\xe0",
]  # fmt: skip
csv_like = st.lists(st.sampled_from(TOKENS), max_size=120).map(b"".join)
garbage_bytes = st.one_of(st.binary(max_size=800), csv_like)
garbage_text = st.one_of(
    st.text(max_size=400),
    csv_like.map(lambda b: b.decode("utf-8", errors="replace")),
)


def check_price_frame(frame: pd.DataFrame) -> None:
    """What every successful price read promises."""
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.name == "Date"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert len(frame.columns) >= 1 and frame.columns.is_unique
    values = frame.to_numpy(dtype=float)
    assert not np.isinf(values).any()
    for col in frame.columns:
        v = frame[col].to_numpy(dtype=float)
        if not str(col).startswith("^"):
            assert (v[~np.isnan(v)] > 0).all()


@settings(max_examples=GARBAGE, **SETTINGS)
@given(raw=garbage_bytes)
def test_random_bytes_as_a_price_file(workdir, raw):
    path = workdir / "prices.csv"
    path.write_bytes(raw)
    frame, err = attempt(lambda: read_prices(path))
    if err is None:
        check_price_frame(frame)
    else:
        assert isinstance(err, DataError) and err.path == str(path), repr(err)


@settings(max_examples=GARBAGE, **SETTINGS)
@given(text=garbage_text)
def test_random_text_as_price_csv(text):
    frame, err = attempt(lambda: read_prices_text(text, source="fuzz.csv"))
    if err is None:
        check_price_frame(frame)
    else:
        assert isinstance(err, DataError) and err.path == "fuzz.csv", repr(err)


MAPPING = GenericMapping(
    symbol_col="Symbol", quantity_col="Quantity", price_col="Price", value_col="Market Value"
)


def check_positions(imp: PositionsImport, n_lines: int) -> None:
    for account in imp.accounts:
        assert all(math.isfinite(v) for v in account.cash.values())
        for p in account.positions:
            assert p.symbol and math.isfinite(p.quantity)
            assert p.price is None or math.isfinite(p.price)
            assert p.market_value is None or math.isfinite(p.market_value)
            assert 1 <= p.row <= n_lines
    assert all(1 <= s.row <= n_lines for s in imp.skipped)


@settings(max_examples=GARBAGE, **SETTINGS)
@given(raw=garbage_bytes)
def test_random_bytes_as_a_positions_file(raw):
    n_lines = max(raw.count(b"\n") + raw.count(b"\r") + 1, 1)
    for call in (
        lambda: parse_positions(raw, filename="positions.csv"),
        lambda: parse_generic(raw, MAPPING, filename="positions.csv"),
    ):
        imp, err = attempt(call)
        if err is None:
            check_positions(imp, n_lines)
        else:
            assert isinstance(err, DataError | ValidationError), repr(err)
            if isinstance(err, DataError):
                assert err.path == "positions.csv", repr(err)


def base_map() -> FundExposureMap:
    from core.exposures import AssetGroup, ExposureType

    fmap = FundExposureMap(
        [FundDefinition("OLD", exposures={"US_EQUITY": 100.0}, source="test")],
        exposure_types=[ExposureType("VOL_PREMIUM", "Volatility premium", AssetGroup.ALTERNATIVES)],
    )
    return fmap


@settings(max_examples=GARBAGE, **SETTINGS)
@given(text=garbage_text)
def test_random_text_as_fund_map_csv(text):
    base = base_map()
    before = base.to_dict()
    fmap, err = attempt(lambda: FundExposureMap.from_csv_text(text, source="map.csv", base=base))
    assert base.to_dict() == before  # nothing leaks into the map passed in
    if err is None:
        again = FundExposureMap.from_csv_text(fmap.to_csv(), base=base)
        assert again.to_dict() == fmap.to_dict()
    else:
        assert isinstance(err, DataError | ValidationError), repr(err)
        if isinstance(err, DataError):
            assert err.path == "map.csv"


@settings(max_examples=GARBAGE, **SETTINGS)
@given(raw=garbage_bytes)
def test_random_bytes_as_fund_map_json(workdir, raw):
    path = workdir / "map.json"
    path.write_bytes(raw)
    fmap, err = attempt(lambda: FundExposureMap.from_json(path))
    if err is None:
        assert FundExposureMap.from_dict(json.loads(fmap.to_json())).to_dict() == fmap.to_dict()
    else:
        assert str(path) in str(err), repr(err)


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["US_EQUITY", "UST_10Y", "GOLD", "RSSB", "100", "60%", "1,5", "equity"]),
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                ["symbol", "exposures", "funds", "exposure_types", "code", "group", "name",
                 "expense_ratio", "financing_spread", "US_EQUITY", "x"]
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=25,
)  # fmt: skip


@settings(max_examples=FUZZ_CASES["fund map: random JSON documents"], **SETTINGS)
@given(data=json_values)
def test_random_json_documents_as_a_fund_map(data):
    frozen = json.dumps(data, sort_keys=True)
    fmap, err = attempt(lambda: FundExposureMap.from_dict(data, source="doc"))
    assert json.dumps(data, sort_keys=True) == frozen  # the document is not modified
    if err is None:
        assert FundExposureMap.from_dict(fmap.to_dict()).to_dict() == fmap.to_dict()
    else:
        assert isinstance(err, ValidationError) and "doc" in str(err), repr(err)


@settings(max_examples=GARBAGE, **SETTINGS)
@given(raw=garbage_bytes)
def test_random_bytes_as_a_workspace(workdir, raw):
    path = workdir / "ws.stackopt.json"
    path.write_bytes(raw)
    ws, err = attempt(lambda: Workspace.load(path))
    if err is None:
        assert Workspace.from_dict(json.loads(ws.to_json())) == ws
    else:
        assert isinstance(err, WorkspaceError) and err.path == str(path), repr(err)
    assert path.read_bytes() == raw  # loading never writes
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".ws")] == []


# ----------------------------------------------------------- workspace mutations
@pytest.fixture(scope="module")
def sample_doc() -> dict:
    return json.loads(Workspace.sample().to_json())


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: Any, path: tuple, value: Any, delete: bool) -> None:
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


def _check_loaded_or_refused(doc: dict, path: Path) -> None:
    path.write_text(json.dumps(doc, allow_nan=True))
    frozen = json.dumps(doc, sort_keys=True)
    ws, err = attempt(lambda: Workspace.load(path))
    if err is None:
        # What loads saves and loads back the same (nothing is lost on the way).
        out = path.with_name("resaved.stackopt.json")
        ws.save(out)
        assert Workspace.load(out) == ws
    else:
        assert isinstance(err, WorkspaceError) and err.path == str(path), repr(err)
        assert err.field, repr(err)  # the field to fix is named
        assert err.field in str(err)
    _, err2 = attempt(lambda: Workspace.from_dict(doc))
    assert (err2 is None) == (err is None)
    assert json.dumps(doc, sort_keys=True) == frozen  # from_dict does not touch its input


@settings(max_examples=FUZZ_CASES["workspace: mutated documents"], **SETTINGS)
@given(data=st.data())
def test_mutated_workspace_documents(workdir, sample_doc, data):
    doc = copy.deepcopy(sample_doc)
    where = data.draw(st.sampled_from(_paths(doc)))
    delete = data.draw(st.booleans())
    value = data.draw(json_values)
    _mutate(doc, where, value, delete)
    _check_loaded_or_refused(doc, workdir / "mutated.stackopt.json")


def v1_doc() -> dict:
    return {
        "format": "stackopt-workspace",
        "version": 1,
        "name": "old",
        "holdings": {"RSSB": 100, "SPY": 20},
        "cash": 1000.0,
        "currency": "USD",
        "fund_map": json.loads(FundExposureMap.default().to_json()),
        "constraints": {"max_weight": 40, "max_exposure_per_type": {"US_EQUITY": 120}},
        "views": [{"assets": ["SPY"], "expected_return": 5, "confidence": 50}],
        "settings": {"risk_free_rate": 2},
        "prices": {"RSSB": 30.0, "SPY": 500.0},
        "price_date": "2024-01-02",
    }


@settings(max_examples=FUZZ_CASES["workspace: mutated version-1 documents"], **SETTINGS)
@given(data=st.data())
def test_mutated_version_1_documents(workdir, data):
    doc = v1_doc()
    where = data.draw(st.sampled_from([p for p in _paths(doc) if p[0] != "fund_map"]))
    _mutate(doc, where, data.draw(json_values), data.draw(st.booleans()))
    _check_loaded_or_refused(doc, workdir / "v1.stackopt.json")


def test_version_1_document_loads_and_migrates(workdir):
    path = workdir / "v1-plain.stackopt.json"
    path.write_text(json.dumps(v1_doc()))
    ws = Workspace.load(path)
    assert ws.migrated_from == 1
    assert ws.constraints.max_weight == pytest.approx(0.40)
    assert ws.portfolio["RSSB"].shares == 100 and ws.prices["SPY"] == 500.0


# ------------------------------------------------------------ realistic price files
SYMBOLS = ["SPY", "TLT", "GLD", "RSSB", "NTSX", "DBMF", "BRK.B", "^IRX"]
MISSING = ["", "null", "NaN", "N/A", "-", "#N/A"]
DATE_FORMATS = {
    "iso": "%Y-%m-%d",
    "iso-time": "%Y-%m-%d 00:00:00",
    "us": "%m/%d/%Y",
    "eu": "%d.%m.%Y",
    "compact": "%Y%m%d",
    "slash-iso": "%Y/%m/%d",
}


@st.composite
def price_tables(draw) -> dict[str, Any]:
    """A price table, how it is written, the bytes, and the frame read_prices must give."""
    n_sym = draw(st.integers(1, 3))
    symbols = draw(st.lists(st.sampled_from(SYMBOLS), min_size=n_sym, max_size=n_sym, unique=True))
    n_dates = draw(st.integers(2, 20))
    start = draw(st.dates(dt.date(1990, 1, 1), dt.date(2030, 1, 1)))
    offsets = draw(st.lists(st.integers(0, 3000), min_size=n_dates, max_size=n_dates, unique=True))
    dates = [start + dt.timedelta(days=o) for o in sorted(offsets)]
    style = draw(st.sampled_from(["us", "eu"]))
    delim = draw(st.sampled_from([",", ";", "\t"] if style == "us" else [";", "\t"]))
    thousands = draw(st.booleans())
    currency = draw(st.sampled_from(["", "$", "€", "€ suffix"]))
    decimals = draw(st.integers(0 if style == "us" else 1, 4))

    def value() -> float | None:
        if draw(st.integers(0, 9)) == 0:
            return None
        return draw(st.integers(1, 10**8)) / 10**decimals

    rows = [(d, [value() for _ in symbols]) for d in dates]
    rows[0][1][0] = rows[0][1][0] or 1.0  # at least one number
    # duplicated dates: a later row for an existing date wins
    for _ in range(draw(st.integers(0, 2))):
        d = draw(st.sampled_from(dates))
        rows.append((d, [value() for _ in symbols]))
    if draw(st.booleans()):
        rows = draw(st.permutations(rows))

    def cell(v: float | None) -> str:
        if v is None:
            return draw(st.sampled_from(MISSING))
        text = f"{v:,.{decimals}f}" if thousands else f"{v:.{decimals}f}"
        if style == "eu":
            text = text.replace(",", "_").replace(".", ",").replace("_", ".")
        if currency == "€ suffix":
            return text + " €"
        return currency + text

    date_format = DATE_FORMATS[draw(st.sampled_from(list(DATE_FORMATS)))]
    header = [draw(st.sampled_from(["Date", "date", "DATE", "Datum", "Date "]))] + [
        draw(st.sampled_from([s, s.lower(), f" {s} "])) for s in symbols
    ]
    lines: list[str] = []
    line_of_row: list[int] = []

    def add_line(cells: list[str]) -> None:
        buf = io.StringIO()
        csv.writer(buf, delimiter=delim, lineterminator="").writerow(cells)
        lines.append(buf.getvalue())

    for _ in range(draw(st.integers(0, 2))):  # titles above the header
        lines.append(draw(st.sampled_from(["Prices", "Kurse für Aktien – Données", "Export"])))
    if draw(st.booleans()):
        lines.append("")
    add_line(header)
    for d, values in rows:
        while draw(st.integers(0, 6)) == 0:  # blank lines anywhere in the data
            lines.append(draw(st.sampled_from(["", delim * len(symbols), "   "])))
        add_line([d.strftime(date_format), *[cell(v) for v in values]])
        line_of_row.append(len(lines))
    for _ in range(draw(st.integers(0, 2))):  # footer
        lines.append(draw(st.sampled_from(["Source: Yahoo Finance", "Total", "* adjusted"])))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
    last: dict[dt.date, list[float | None]] = {}
    for d, values in rows:
        last[d] = values  # file order: the last row of a date wins
    index = pd.DatetimeIndex(sorted(last), name="Date")
    expected = pd.DataFrame(
        [[np.nan if v is None else v for v in last[d.date()]] for d in index],
        index=index,
        columns=[s.upper() for s in symbols],
        dtype=float,
    )
    return {
        "raw": text.encode(encoding),
        "expected": expected,
        "rows": rows,
        "line_of_row": line_of_row,
        "symbols": [s.upper() for s in symbols],
        "style": style,
        "delim": delim,
        "encoding": encoding,
        "header": header,
        "lines": lines,
        "newline": newline,
    }


@settings(max_examples=REALISTIC, **SETTINGS)
@given(table=price_tables())
def test_realistic_price_files_load_exactly(workdir, table):
    path = workdir / "realistic.csv"
    path.write_bytes(table["raw"])
    frame, err = attempt(lambda: read_prices(path))
    if err is not None and "could be a thousands separator or a decimal comma" in str(err):
        # Refused on purpose: in a ';' or tab file every comma cell looked like 1,000.
        cells = [
            c
            for line in table["lines"][table["lines"].index(_joined(table)) + 1 :]
            for c in next(csv.reader([line], delimiter=table["delim"]))[1:]
            if "," in c
        ]
        assert table["delim"] != "," and cells
        assert all(re.fullmatch(r"[$€]?[1-9]\d{0,2},\d{3}( €)?", c) for c in cells), cells
        assert err.path == str(path) and err.row
        assert err.column.strip().upper() in table["symbols"]
        return
    assert err is None, f"{err}\n{table['raw'][:600]!r}"
    check_price_frame(frame)
    expected = table["expected"]
    expected.index = expected.index.as_unit(frame.index.unit)
    pd.testing.assert_frame_equal(frame, expected, check_freq=False, rtol=1e-15)
    kinds = {i.kind for i in frame.attrs["issues"]}
    dates = [d for d, _ in table["rows"]]
    assert ("duplicate_date" in kinds) == (len(set(dates)) < len(dates))


def _joined(table: dict[str, Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter=table["delim"], lineterminator="").writerow(table["header"])
    return buf.getvalue()


BAD_CELLS = {
    "text": "abc",
    "percent": "12%",
    "zero": "0",
    "negative": "-5",
    "infinite": "inf",
    "overflow": "1e999",
    "grouping": "1.2.3",
}


@settings(max_examples=REALISTIC, **SETTINGS)
@given(table=price_tables(), data=st.data())
def test_one_bad_cell_is_named_by_file_line_and_column(workdir, table, data):
    kind = data.draw(st.sampled_from(list(BAD_CELLS)))
    r = data.draw(st.integers(0, len(table["rows"]) - 1))
    c = data.draw(st.integers(0, len(table["symbols"]) - 1))
    symbol = table["symbols"][c]
    assume(not (symbol.startswith("^") and kind in ("zero", "negative")))  # yields may be
    line_no = table["line_of_row"][r]
    lines = list(table["lines"])
    cells = next(csv.reader([lines[line_no - 1]], delimiter=table["delim"]))
    bad = BAD_CELLS[kind]
    if kind == "grouping" and table["style"] == "eu":
        bad = "1,2,3"
    cells[c + 1] = bad
    buf = io.StringIO()
    csv.writer(buf, delimiter=table["delim"], lineterminator="").writerow(cells)
    lines[line_no - 1] = buf.getvalue()
    path = workdir / "bad-cell.csv"
    path.write_bytes(table["newline"].join(lines).encode(table["encoding"]))
    _, err = attempt(lambda: read_prices(path))
    assert isinstance(err, DataError), f"{kind}: {err!r}\n{lines}"
    if "could be a thousands separator" in str(err):
        # The bad cell replaced the only unambiguous decimal comma: the file is refused
        # as ambiguous first, at a 1,000-like cell.
        assert re.search(r"(^|;|\t)[$€]?[1-9]\d{0,2},\d{3}( €)?($|;|\t)", lines[err.row - 1])
        return
    where = (err.path, err.row, (err.column or "").strip().upper())
    assert where == (str(path), line_no, symbol), (str(err), lines)


@st.composite
def yahoo_files(draw) -> tuple[str, pd.Series]:
    n = draw(st.integers(2, 15))
    start = draw(st.dates(dt.date(2000, 1, 1), dt.date(2025, 1, 1)))
    dates = [start + dt.timedelta(days=i) for i in range(n)]
    adj = [draw(st.integers(100, 10**7)) / 100 for _ in dates]
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for d, a in zip(dates, adj, strict=True):
        lines.append(
            f"{d:%Y-%m-%d},{a + 1:.2f},{a + 2:.2f},{a - 0.5:.2f},{a + 0.3:.2f},{a:.2f},1000"
        )
        if draw(st.integers(0, 5)) == 0:
            lines.append(f"{d:%Y-%m-%d},0.25 Dividend")
    expected = pd.Series(adj, index=pd.DatetimeIndex(dates, name="Date"), name="RSSB")
    return "\n".join(lines) + "\n", expected


@settings(max_examples=FUZZ_CASES["prices: Yahoo-style files"], **SETTINGS)
@given(case=yahoo_files())
def test_yahoo_style_files_use_adjusted_close(workdir, case):
    text, expected = case
    path = workdir / "rssb.csv"
    path.write_text(text)
    frame = read_prices(path)
    pd.testing.assert_series_equal(
        frame["RSSB"], expected, check_freq=False, check_index_type=False
    )


# ------------------------------------------------------------- realistic holdings
HOLDING_SYMBOLS = ["RSSB", "NTSX", "SPY", "TLT", "GLD", "DBMF", "BRK.B", "VT", "AVUV", "KMLM"]


@st.composite
def holdings_files(draw) -> dict[str, Any]:
    k = draw(st.integers(1, 6))
    symbols = draw(st.lists(st.sampled_from(HOLDING_SYMBOLS), min_size=k, max_size=k, unique=True))
    style = draw(st.sampled_from(["us", "eu"]))
    delim = draw(st.sampled_from([",", ";", "\t"] if style == "us" else [";", "\t"]))
    thousands = draw(st.booleans())
    dollar = draw(st.booleans())
    parens = draw(st.booleans())

    def number(v: float, decimals: int, money: bool) -> str:
        text = f"{abs(v):,.{decimals}f}" if thousands else f"{abs(v):.{decimals}f}"
        if style == "eu":
            text = text.replace(",", "_").replace(".", ",").replace("_", ".")
        if money and dollar:
            text = ("$" if style == "us" else "€") + text
        if v < 0:
            text = f"({text})" if parens else "-" + text
        return text

    positions = []
    for s in symbols:
        q_dec = draw(st.integers(0, 3))
        qty = draw(st.integers(-(10**7), 10**7).filter(lambda x: x != 0)) / 10**q_dec
        price = draw(st.integers(1, 10**6)) / 100
        positions.append((s, qty, q_dec, price))
    cash = draw(st.one_of(st.none(), st.integers(-(10**8), 10**8).map(lambda c: c / 100)))
    header = ["Symbol", "Description", "Quantity", "Price", "Market Value", "% of Account"]
    xlsx = draw(st.integers(0, 3)) == 0  # an Excel workbook instead of CSV text
    numeric = xlsx and draw(st.booleans())  # with real number cells, as Excel saves them

    def cell(v: float, decimals: int, money: bool) -> str | float:
        return v if numeric else number(v, decimals, money)

    rows = []
    for s, qty, q_dec, price in positions:
        value = round(qty * price, 2)
        desc = draw(
            st.sampled_from(["Fonds européen", "Return Stacked, Bonds", 'The "Fund"', "=1+1"])
        )
        rows.append([s, desc, cell(qty, q_dec, False), cell(price, 2, True),
                     cell(value, 2, True), f"{draw(st.integers(0, 100))}%"])  # fmt: skip
    if cash is not None:
        rows.append(["Cash & Cash Investments", "", "", "", cell(cash, 2, True), "1%"])
    rows = draw(st.permutations(rows))
    if xlsx:
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        if draw(st.booleans()):
            sheet.append(["My holdings as of 2025-03-14"])
            sheet.append([])
        for r in [header, *rows]:
            sheet.append(r)
        buf = io.BytesIO()
        book.save(buf)
        return {"raw": buf.getvalue(), "positions": positions, "cash": cash,
                "lines": [header, *rows], "filename": "holdings.xlsx"}  # fmt: skip
    lines: list[str] = []

    def add(cells: list[str]) -> None:
        buf = io.StringIO()
        csv.writer(buf, delimiter=delim, lineterminator="").writerow(cells)
        lines.append(buf.getvalue())

    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["My holdings as of 2025-03-14", "Export für Konto"])))
        lines.append("")
    add(header)
    for r in rows:
        add(r)
        if draw(st.integers(0, 5)) == 0:
            lines.append("")
    if draw(st.booleans()):
        add(["Total", "", "", "", number(12345.67, 2, True), "100%"])
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
    raw = (newline.join(lines) + newline).encode(encoding)
    return {"raw": raw, "positions": positions, "cash": cash, "lines": lines, "filename": "h.csv"}


@settings(max_examples=REALISTIC, **SETTINGS)
@given(case=holdings_files())
def test_realistic_holdings_files_import_exactly(case):
    name = case["filename"]
    imp, err = attempt(lambda: parse_generic(case["raw"], MAPPING, filename=name))
    assert err is None, f"{err}\n{case['lines']}"
    got = {p.symbol: p for p in imp.positions}
    assert set(got) == {s for s, *_ in case["positions"]}, case["lines"]
    for s, qty, _, price in case["positions"]:
        assert got[s].quantity == pytest.approx(qty, rel=1e-15), case["lines"]
        assert got[s].price == pytest.approx(price, rel=1e-15)
        assert got[s].market_value == pytest.approx(round(qty * price, 2), rel=1e-15)
    cash = sum(a.cash.get("USD", 0.0) for a in imp.accounts)
    assert cash == pytest.approx(case["cash"] or 0.0, abs=1e-9)
    # Broker detection either recognises nothing (generic file) or reads it as typed.
    _, err = attempt(lambda: parse_positions(case["raw"], filename=name))
    assert err is None or isinstance(err, DataError)


@pytest.fixture(scope="module")
def archives() -> dict[str, bytes]:
    """A real workbook, zip and gzip of small tables, to damage byte by byte."""
    import gzip
    import zipfile

    from openpyxl import Workbook

    book = Workbook()
    for r in [["Symbol", "Quantity", "Price"], ["SPY", 10, 501.5], ["RSSB", 1200, 30.25]]:
        book.active.append(r)
    xlsx = io.BytesIO()
    book.save(xlsx)
    text = "Date,SPY,TLT\n" + "".join(
        f"2024-01-{d:02d},{500 + d}.5,{90 + d}.25\n" for d in range(2, 28)
    )
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("prices.csv", text)
    return {"xlsx": xlsx.getvalue(), "zip": zipped.getvalue(), "gz": gzip.compress(text.encode())}


@settings(
    max_examples=FUZZ_CASES["holdings and prices: damaged .xlsx / .zip / .gz files"], **SETTINGS
)
@given(data=st.data())
def test_damaged_archives_are_refused_or_read(workdir, archives, data):
    """Flipped bytes in a workbook or a compressed price file: a typed error, never a
    zlib.error, XML ParseError, EOFError or NotImplementedError from the layers below."""
    kind = data.draw(st.sampled_from(sorted(archives)))
    raw = bytearray(archives[kind])
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(4, len(raw)))]  # truncated download
    raw = bytes(raw)
    if kind == "xlsx":
        for call in (
            lambda: parse_positions(raw, filename="positions.xlsx"),
            lambda: parse_generic(raw, MAPPING, filename="positions.xlsx"),
        ):
            imp, err = attempt(call)
            if err is None:
                check_positions(imp, 10)
            else:
                assert not isinstance(err, DataError) or err.path == "positions.xlsx"
    else:
        path = workdir / f"prices.csv.{kind}"
        path.write_bytes(raw)
        frame, err = attempt(lambda: read_prices(path))
        if err is None:
            check_price_frame(frame)
        else:
            assert isinstance(err, DataError) and err.path == str(path), repr(err)


# ------------------------------------------------------------- realistic fund maps
CODES = list(BUILTIN_EXPOSURE_TYPES)
free_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), max_codepoint=0x2FFF),
    max_size=20,
).map(str.strip)


@st.composite
def fund_maps(draw) -> FundExposureMap:
    n = draw(st.integers(1, 6))
    symbols = draw(
        st.lists(st.from_regex(r"[A-Z]{1,5}", fullmatch=True), min_size=n, max_size=n, unique=True)
    )
    funds = []
    for s in symbols:
        codes = draw(st.lists(st.sampled_from(CODES), min_size=0, max_size=3, unique=True))
        exposures = {c: draw(st.integers(-3000, 3000).filter(bool)) / 10 for c in codes}
        assume(sum(abs(v) for v in exposures.values()) <= 1000)
        funds.append(
            FundDefinition(
                s,
                name=draw(st.one_of(free_text, st.sampled_from(["=HYPERLINK(1)", "+1", "-x", "@a"]))),
                exposures=exposures,
                expense_ratio=draw(st.integers(0, 300)) / 100,
                financing_spread=draw(st.integers(-100, 300)) / 100,
                source=draw(free_text),
                notes=draw(free_text),
            )
        )  # fmt: skip
    return FundExposureMap(funds)


@settings(max_examples=REALISTIC, **SETTINGS)
@given(fmap=fund_maps(), data=st.data())
def test_realistic_fund_map_csv_round_trips(workdir, fmap, data):
    path = workdir / "map.csv"
    fmap.save_csv(path)
    text = path.read_text(encoding="utf-8")
    if data.draw(st.booleans()):  # percent signs after the exposure numbers
        rows = list(csv.reader(io.StringIO(text)))
        first = len(FundExposureMap.CSV_FIXED) + len(getattr(FundExposureMap, "CSV_TEXT", ()))
        rows = [rows[0]] + [r[:first] + [f"{c}%" if c else c for c in r[first:]] for r in rows[1:]]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        text = buf.getvalue()
    if data.draw(st.booleans()):
        text = text.replace("\n", "\n\n", data.draw(st.integers(1, 3)))  # blank lines
    newline = data.draw(st.sampled_from(["\n", "\r\n"]))
    text = text.replace("\n", newline)
    encoding = data.draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:
        raw = text.encode("utf-8")
    try:  # cp1252 bytes that are also valid UTF-8 of other text ('Â¡') are ambiguous
        assume(raw.decode("utf-8-sig") == text.lstrip("\ufeff") or encoding != "cp1252")
    except UnicodeDecodeError:
        pass
    # Three or more symbols in a row above ASCII ('¡º¼', '´ÇÇ') read as well in a dozen
    # single-byte code pages (mac-roman '°∫º'): no detector can tell which was meant, so
    # that case is the documented limit (docs/reliability.md), not tested as a round trip.
    assume(encoding != "cp1252" or not re.search(rb"[\x80-\xff]{3,}", raw))
    path.write_bytes(raw)
    loaded, err = attempt(lambda: FundExposureMap.from_csv(path))
    assert err is None, f"{err}\n{text}"
    assert loaded.to_dict() == fmap.to_dict()
    # JSON: the same map, byte for byte through save_json / from_json
    fmap.save_json(workdir / "map.json")
    assert FundExposureMap.from_json(workdir / "map.json").to_dict() == fmap.to_dict()


# --------------------------------------------------------------- named cases
@pytest.mark.parametrize(
    ("text", "row", "column", "match"),
    [
        ("Date\n2024-01-02\n2024-01-03\n", None, None, "only one column"),
        ("SPY,TLT\n10,20\n11,21\n", 2, "SPY", "no dated rows"),
        ("Date,SPY\n", 1, "Date", "no dated rows"),
        ("Date,SPY\n2024-01-02,10\n,11\n2024-01-04,12\n", 3, "Date", "not a date"),
        ("Date,SPY,\n2024-01-02,10,5\n", 1, None, "no name"),
        ("Date,SPY,SPY\n2024-01-02,10,11\n", None, "SPY", "two columns"),
        ("Date,SPY\n2024-01-02,10\nnot a date,11\n2024-01-04,12\n", 3, "Date", "not a date"),
        ("Date,SPY\n2024-01-02,10,11\n", 2, None, "cells"),
        ("Date,SPY\n2024-13-45,10\n", 2, "Date", "cannot read"),
        ("Date,SPY\n2024-01-02,nan\n2024-01-03,null\n", None, None, "no price column"),
    ],
)
def test_missing_or_broken_columns_in_price_files(text, row, column, match):
    with pytest.raises(DataError, match=match) as err:
        read_prices_text(text, source="named.csv")
    assert err.value.path == "named.csv"
    if row is not None:
        assert err.value.row == row
    if column is not None:
        assert err.value.column == column


def test_unsorted_duplicated_dates_and_footer_are_resolved_and_reported():
    text = (
        "Prices export\n\nDate,SPY\n2024-01-03,11\n2024-01-02,10\n2024-01-03,11.5\n"
        "\n2024-01-04,12\nSource: test\nTotal,3\n"
    )
    frame = read_prices_text(text, source="x.csv")
    assert frame["SPY"].tolist() == [10.0, 11.5, 12.0]
    kinds = [i.kind for i in frame.attrs["issues"]]
    assert "unsorted" in kinds and "duplicate_date" in kinds and "skipped_lines" in kinds
    dup = next(i for i in frame.attrs["issues"] if i.kind == "duplicate_date")
    assert "lines 4, 6" in dup.message


@pytest.mark.parametrize(
    ("text", "match", "row", "column"),
    [
        ("Symbol,Qty\nSPY,1\n", "no row of column names", None, None),
        ("Symbol,Quantity\nSPY,abc\n", "not a number", 2, "Quantity"),
        ("Symbol,Quantity\nSPY,1e999\n", "not a number", 2, "Quantity"),
        ('Symbol,Quantity\nSPY,"1,2,3"\n', "not a number", 2, "Quantity"),
        ("Symbol,Quantity,Price\nSPY,5,12.5%x\n", "not a number", 2, "Price"),
    ],
)
def test_missing_or_broken_columns_in_holdings_files(text, match, row, column):
    mapping = GenericMapping(symbol_col="Symbol", quantity_col="Quantity", price_col=None)
    if "Price" in text:
        mapping = GenericMapping(symbol_col="Symbol", quantity_col="Quantity", price_col="Price")
    with pytest.raises(DataError, match=match) as err:
        parse_generic(text, mapping, filename="h.csv")
    assert err.value.path == "h.csv"
    assert (err.value.row, err.value.column) == (row, column) or row is None


def test_mapped_column_missing_from_the_header_is_named():
    mapping = GenericMapping(symbol_col="Symbol", quantity_col="Quantity", price_col="Last")
    with pytest.raises(DataError, match="'Last' is not in the header") as err:
        parse_generic("Symbol,Quantity\nSPY,1\n", mapping, filename="h.csv")
    assert (err.value.path, err.value.row) == ("h.csv", 1)


def test_thousands_only_quantities_are_thousands():
    """'1,234' shares in a US file are 1234, not 1.234 (the decimal guess once said ',')."""
    plain = GenericMapping(symbol_col="Symbol", quantity_col="Quantity")
    imp = parse_generic('Symbol,Quantity\nSPY,"1,234"\nTLT,"2,500"\n', plain)
    assert [p.quantity for p in imp.positions] == [1234.0, 2500.0]
    priced = GenericMapping(symbol_col="Symbol", quantity_col="Quantity", price_col="Price")
    imp = parse_generic("Symbol;Quantity;Price\nSPY;1.234;91,15\n", priced)
    assert (imp.positions[0].quantity, imp.positions[0].price) == (1234.0, 91.15)


@pytest.mark.parametrize(
    ("text", "match", "row", "column"),
    [
        ("", "empty", None, None),
        ("name,US_EQUITY\nX,100\n", "no 'symbol' column", 1, None),
        ("symbol,US_EQUITY,WHAT\nX,100,1\n", "neither a fund field", 1, "WHAT"),
        ("symbol,US_EQUITY,us_equity\nX,100,1\n", "two columns", 1, "us_equity"),
        ("symbol,US_EQUITY\nX,abc\n", "not a number", 2, "US_EQUITY"),
        ('symbol,US_EQUITY\nX,"60,5"\n', "not a number", 2, "US_EQUITY"),
        ("symbol,name,US_EQUITY\nX,Foo,60,5\n", "cells but the header", 2, None),
        ("symbol,US_EQUITY\nX,1100\n", "absurd", 2, None),
        ("symbol,US_EQUITY\nX,100\nX,50\n", "duplicate symbol", 3, "symbol"),
        ("symbol,US_EQUITY\nX,nan\n", "finite|not a number", 2, "US_EQUITY"),
    ],
)
def test_broken_fund_map_csv_is_named(text, match, row, column):
    base = base_map()
    before = base.to_dict()
    with pytest.raises(DataError, match=match) as err:
        FundExposureMap.from_csv_text(text, source="m.csv", base=base)
    assert err.value.path == "m.csv"
    if row is not None:
        assert err.value.row == row
    if column is not None:
        assert err.value.column == column
    assert base.to_dict() == before


def test_fund_map_json_file_problems_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        FundExposureMap.from_json(tmp_path / "missing.json")
    with pytest.raises(DataError, match="folder"):
        FundExposureMap.from_json(tmp_path)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match="nested too deeply"):
        FundExposureMap.from_json(deep)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"funds": [{"symbol": "X", "name": "é"}]}'.encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8") as err:
        FundExposureMap.from_json(latin)
    assert err.value.path == str(latin)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("format"), "format"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d["prices"]["values"].update(SPY=10**400), "prices.values.SPY"),
        (lambda d: d["settings"].update(lookback_years=10**400), "settings.lookback_years"),
        (lambda d: d["constraints"].update(max_weight=10**400), "constraints.max_weight"),
        (lambda d: d["portfolio"].update(cash=10**400), "portfolio.cash"),
        (lambda d: d["settings"].update(custom=10**400), "settings.custom"),
        (lambda d: d["fund_map"]["funds"][0].update(expense_ratio=10**400), "fund_map.funds[0]"),
    ],
)
def test_workspace_numbers_too_large_for_a_float_are_named(tmp_path, sample_doc, mutate, field):
    """A 400-digit JSON integer once escaped as OverflowError from float()."""
    doc = copy.deepcopy(sample_doc)
    mutate(doc)
    path = tmp_path / "big.stackopt.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(WorkspaceError) as err:
        Workspace.load(path)
    assert err.value.field.startswith(field) and err.value.path == str(path)


def test_failed_workspace_load_changes_nothing(tmp_path, sample_doc):
    good = tmp_path / "good.stackopt.json"
    Workspace.from_dict(sample_doc).save(good)
    before = good.read_bytes()
    doc = copy.deepcopy(sample_doc)
    doc["portfolio"]["holdings"][0]["shares"] = "many"
    bad = tmp_path / "bad.stackopt.json"
    bad.write_text(json.dumps(doc))
    frozen = bad.read_bytes()
    with pytest.raises(WorkspaceError, match=r"portfolio\.holdings\[0\]\.shares"):
        Workspace.load(bad)
    assert bad.read_bytes() == frozen and good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.stackopt.json", "good.stackopt.json"]


# ------------------------------------------------------------------- one huge file
HUGE_CHILD = r"""
import json, resource, sys, time
from core.errors import DataError
from core.market_data import read_prices
t0 = time.perf_counter()
try:
    frame = read_prices(sys.argv[1])
    out = {"rows": len(frame), "columns": list(frame.columns),
           "last": frame.iloc[-1].tolist(), "first_date": str(frame.index[0].date()),
           "issues": sorted({i.kind for i in frame.attrs["issues"]})}
except DataError as exc:
    out = {"error": str(exc), "row": exc.row}
out["seconds"] = time.perf_counter() - t0
out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="ru_maxrss is POSIX")
def test_huge_price_file_one_million_rows(tmp_path):
    """THE BIG ONE: a 1,000,000-row, ~40 MB price file (5 rows per date, like an intraday
    export) loads in a child process with peak memory well under 2 GB."""
    n = 1_000_000
    path = tmp_path / "huge.csv"
    days = pd.date_range("1700-01-01", periods=n // 5, freq="D").strftime("%Y-%m-%d")
    rng = np.random.default_rng(0)
    vals = np.round(rng.uniform(1, 1000, (n, 3)), 2)
    with open(path, "w", newline="") as fh:
        fh.write("Date,AAA,BBB,CCC\n")
        for i in range(n):
            fh.write(f"{days[i // 5]},{vals[i, 0]:.2f},{vals[i, 1]:.2f},{vals[i, 2]:.2f}\n")
    assert path.stat().st_size > 30e6
    proc = subprocess.run(
        [sys.executable, "-c", HUGE_CHILD, str(path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "error" not in out, out
    assert out["rows"] == n // 5 and out["columns"] == ["AAA", "BBB", "CCC"]
    assert out["last"] == pytest.approx(vals[-1].tolist())  # the last row of each date wins
    assert out["first_date"] == "1700-01-01" and "duplicate_date" in out["issues"]
    assert out["peak_mb"] < 2048, out
    print(f"1M-row file: {out['seconds']:.1f} s, peak {out['peak_mb']:.0f} MB")


# ------------------------------------------------- saving: atomic, nothing half written
# test_workspace.py proves this for Workspace.save (a failed fsync/replace, and SIGKILL
# in the middle of a write). The same holds for every other writer of user files.
def _writers() -> dict[str, Callable[[Path], Any]]:
    from core.assumptions import MarketAssumptions
    from core.tickets import (
        Order,
        write_excel,
        write_generic_csv,
        write_ibkr_basket_csv,
        write_ibkr_rebalance_csv,
        write_tradestation_trade_lists,
    )

    fmap = FundExposureMap.default()
    orders = [Order("SPY", "SELL", 3), Order("RSSB", "BUY", 10)]
    return {
        "fund map JSON": fmap.save_json,
        "fund map CSV": fmap.save_csv,
        "assumptions JSON": MarketAssumptions.default().save_json,
        "generic ticket": lambda p: write_generic_csv(orders, p),
        "IBKR basket": lambda p: write_ibkr_basket_csv(orders, p),
        "IBKR rebalance": lambda p: write_ibkr_rebalance_csv({"SPY": 0.5, "RSSB": 0.5}, p),
        "TradeStation lists": lambda p: write_tradestation_trade_lists(
            [Order("SPY", "SELL", 300), Order("RSSB", "BUY", 100)], p, default_exchange_id=1
        ),
        "Excel ticket": lambda p: write_excel(orders, p),
    }


@pytest.mark.parametrize("name", list(_writers()))
@pytest.mark.parametrize("broken", ["replace", "fsync", "write"])
def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path, monkeypatch, name, broken
):
    write = _writers()[name]
    path = tmp_path / ("out.xlsx" if "Excel" in name else "out.txt")
    write(path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert before  # the old version(s) exist

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    if broken == "write":
        import core.fileio as fileio

        real_fdopen = fileio.os.fdopen

        class Full(io.RawIOBase):
            def __init__(self, fd: int) -> None:
                self._fh = real_fdopen(fd, "wb")

            def write(self, data: Any) -> int:
                self._fh.write(bytes(data)[: len(data) // 2])  # half written, then full
                raise OSError(28, "No space left on device")

            def close(self) -> None:
                self._fh.close()
                super().close()

        monkeypatch.setattr(fileio.os, "fdopen", lambda fd, mode: Full(fd))
    else:
        monkeypatch.setattr(os, broken, boom)
    with pytest.raises(OSError, match="No space left"):
        write(path)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # old bytes intact, no temp file, nothing new


CHILD_SAVE = r"""
import os, sys, time
from core.exposures import FundDefinition, FundExposureMap
from core.tickets import Order, write_generic_csv

path, which = sys.argv[1], sys.argv[2]
funds = [FundDefinition(f"F{i:04d}", "fund", {"US_EQUITY": 60, "UST_10Y": 40}, 0.1,
                        notes="n" * 20_000) for i in range(200)]
orders = [Order(f"S{i:04d}", "BUY", i + 1, account="x" * 2000) for i in range(2000)]
save = {"json": FundExposureMap(funds).save_json, "csv": FundExposureMap(funds).save_csv,
        "ticket": lambda p: write_generic_csv(orders, p)}[which]
save(path)
real_fsync = os.fsync
def fsync(fd):
    print("writing", flush=True)
    time.sleep(60)
os.fsync = fsync
funds[0] = FundDefinition("F0000", "changed", {"US_EQUITY": 100}, 0.1)
orders[0] = Order("CHANGED", "SELL", 1)
print("ready", flush=True)
save(path)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_kill_during_fund_map_and_ticket_saves_leaves_the_old_files(tmp_path):
    """SIGKILL while the new file is written: the old file is intact and loads."""
    from core.tickets import read_generic_csv

    procs = {}
    for which, name in (("json", "map.json"), ("csv", "map.csv"), ("ticket", "t.csv")):
        procs[which] = subprocess.Popen(
            [sys.executable, "-c", CHILD_SAVE, str(tmp_path / name), which],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    try:
        for proc in procs.values():
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            assert proc.stdout.readline().strip() == "writing"  # inside the second save
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
    assert len(list(tmp_path.glob(".*.tmp"))) == 3  # each kill landed inside a write
    assert FundExposureMap.from_json(tmp_path / "map.json")["F0000"].name == "fund"
    assert len(FundExposureMap.from_csv(tmp_path / "map.csv")) == 200
    orders = read_generic_csv(tmp_path / "t.csv")
    assert orders[0].symbol == "S0000" and len(orders) == 2000
