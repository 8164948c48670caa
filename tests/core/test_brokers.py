"""Broker positions exports: exact parses of real-shaped fixtures, mangled files, detection.

Every fixture in ``tests/fixtures/brokers`` mimics one real export layout (see
docs/brokers.md); ``<name>.expected.json`` is its expected parse, checked by hand
against the fixture.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.brokers import (
    BROKER_HOWTO,
    BROKER_NAMES,
    DETECTORS,
    ISIN_TO_TICKER,
    GenericMapping,
    PositionsImport,
    UnrecognisedExportError,
    detect_broker,
    guess_mapping,
    isin_check_digit_ok,
    layout_key,
    merge_accounts,
    parse_generic,
    parse_money,
    parse_positions,
    read_table,
    unmapped_symbols,
)
from core.brokers._base import rows_from_text
from core.errors import DataError, ValidationError
from core.exposures import FundExposureMap

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "brokers"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "brokers.md"

#: fixture -> (broker, layout) it must be detected as
DETECTED = {
    "schwab_single": ("schwab", "single_account"),
    "schwab_all_accounts": ("schwab", "all_accounts"),
    "schwab_2022": ("schwab", "single_account_2021_columns"),
    "fidelity": ("fidelity", "portfolio_positions"),
    "vanguard": ("vanguard", "ofx_download"),
    "ibkr_activity": ("ibkr", "activity_statement"),
    "ibkr_flex": ("ibkr", "flex_query"),
    "degiro": ("degiro", "portfolio"),
}
ALL = [*DETECTED, "generic"]

#: header name of the quantity column of each fixture
QUANTITY_HEADER = {
    "schwab_single": "Qty (Quantity)",
    "schwab_all_accounts": "Qty (Quantity)",
    "schwab_2022": "Quantity",
    "fidelity": "Quantity",
    "vanguard": "Shares",
    "ibkr_activity": "Quantity",
    "ibkr_flex": "Quantity",
    "degiro": "Amount",
    "generic": "Shares",
}


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / f"{name}.csv").read_bytes()


def fixture_text(name: str) -> str:
    return fixture_bytes(name).decode("utf-8-sig")


def expected(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.expected.json").read_text(encoding="utf-8"))


def parse(name: str, source=None) -> PositionsImport:
    """Parse a fixture (or a mangled copy of it) the way the app would."""
    source = FIXTURES / f"{name}.csv" if source is None else source
    if name == "generic":
        header, _ = read_table(source, filename="generic.csv")
        mapping = guess_mapping(header)
        assert mapping is not None
        return parse_generic(source, mapping, filename="generic.csv")
    return parse_positions(source, filename=f"{name}.csv")


def assert_same(actual, wanted, path="result"):
    """Deep equality; floats compared to 1e-9 relative (sums of cash rows)."""
    if isinstance(wanted, float) or isinstance(actual, float):
        assert isinstance(actual, int | float) and isinstance(wanted, int | float), path
        assert math.isclose(actual, wanted, rel_tol=1e-9, abs_tol=1e-9), (path, actual, wanted)
    elif isinstance(wanted, dict):
        assert isinstance(actual, dict) and list(actual) == list(wanted), (path, actual, wanted)
        for key in wanted:
            assert_same(actual[key], wanted[key], f"{path}.{key}")
    elif isinstance(wanted, list):
        assert isinstance(actual, list) and len(actual) == len(wanted), (path, actual, wanted)
        for i, (a, w) in enumerate(zip(actual, wanted, strict=True)):
            assert_same(a, w, f"{path}[{i}]")
    else:
        assert actual == wanted, (path, actual, wanted)


def holdings(result: PositionsImport) -> list:
    """Accounts with positions minus their row numbers: what must survive mangling."""
    out = []
    for account in result.accounts:
        positions = []
        for p in account.positions:
            d = p.to_dict()
            d.pop("row")
            positions.append(d)
        out.append(
            {
                "account_id": account.account_id,
                "account_name": account.account_name,
                "positions": positions,
                "cash": dict(account.cash),
            }
        )
    return out


def expected_holdings(name: str) -> list:
    out = []
    for account in expected(name)["accounts"]:
        account = dict(account)
        account["positions"] = [
            {k: v for k, v in p.items() if k != "row"} for p in account["positions"]
        ]
        out.append(account)
    return out


# ---------------------------------------------------------------------------
# Exact parses
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_each_fixture_parses_exactly_to_its_expected_json(name):
    result = parse(name)
    assert_same(result.to_dict(), expected(name))
    assert result.source == f"{name}.csv"


@pytest.mark.parametrize("name", ALL)
def test_expected_rows_point_at_the_lines_they_came_from(name):
    lines = fixture_text(name).splitlines()
    data = expected(name)
    for account in data["accounts"]:
        for p in account["positions"]:
            line = lines[p["row"] - 1]
            assert p["symbol"] in line or p["isin"] in line
            # IBKR statements keep names and ISINs in a section of their own.
            assert p["description"] in line or name == "ibkr_activity"
    for s in data["skipped"]:
        assert lines[s["row"] - 1].startswith(s["text"].removesuffix("..."))


@pytest.mark.parametrize("name", ALL)
def test_price_times_quantity_is_the_market_value(name):
    # Independent check that quantity, price and value were read from the right columns.
    for p in parse(name).positions:
        assert p.price is not None and p.market_value is not None
        assert p.quantity * p.price == pytest.approx(p.market_value, abs=0.01), p


def test_schwab_account_totals_match_an_independent_sum_of_the_file():
    # Account Total = positions + cash + the rows we skip (bills, options); read the
    # file with the csv module only and compare with what the parser kept.
    def dollars(cell: str) -> float:
        return float(cell.replace("$", "").replace(",", ""))

    for name in ("schwab_single", "schwab_all_accounts", "schwab_2022"):
        rows = list(csv.reader(io.StringIO(fixture_text(name))))
        header = next(r for r in rows if r and r[0] == "Symbol")
        col = next(i for i, h in enumerate(header) if "Market Value" in h)
        totals = [
            dollars(r[col]) for r in rows if r and r[0] in ("Account Total", "Positions Total")
        ]
        result = parse(name)
        skipped_value = sum(
            dollars(rows[s.row - 1][col])
            for s in result.skipped
            if not s.reason.startswith("summary")
        )
        kept = [
            sum(p.market_value for p in a.positions) + sum(a.cash.values()) for a in result.accounts
        ]
        assert sum(kept) + skipped_value == pytest.approx(sum(totals), abs=0.005)
        assert result.warnings == []


def test_ibkr_positions_match_the_statement_totals_per_currency():
    rows = [r for r in csv.reader(io.StringIO(fixture_text("ibkr_activity"))) if r]
    header = next(r for r in rows if r[:2] == ["Open Positions", "Header"])
    value_col = header.index("Value")
    totals = {
        r[4]: float(r[value_col])
        for r in rows
        if r[:2] == ["Open Positions", "Total"] and r[3] == "Stocks"
    }
    result = parse("ibkr_activity")
    by_ccy: dict[str, float] = {}
    for p in result.positions:
        by_ccy[p.currency] = by_ccy.get(p.currency, 0.0) + p.market_value
    assert by_ccy == pytest.approx(totals)


def test_degiro_value_in_eur_is_consistent_with_one_exchange_rate():
    # The EUR column is local value / EURUSD for every USD row: our local values and the
    # file's EUR values must imply the same rate (so the columns were not mixed up).
    rows = list(csv.reader(io.StringIO(fixture_text("degiro"))))
    eur = {r[1]: float(r[6].replace(",", ".")) for r in rows[1:] if r[1]}
    rates = [p.market_value / eur[p.isin] for p in parse("degiro").positions if p.currency == "USD"]
    assert len(rates) == 2 and max(rates) - min(rates) < 1e-3


# ---------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DETECTED))
def test_detection_names_its_own_broker_and_no_other(name):
    rows = rows_from_text(fixture_text(name))
    fired = [(broker, sniff(rows)) for broker, sniff, _ in DETECTORS if sniff(rows)]
    assert fired == [DETECTED[name]]
    assert detect_broker(FIXTURES / f"{name}.csv") == DETECTED[name]


def test_generic_table_is_not_taken_for_a_broker():
    assert detect_broker(FIXTURES / "generic.csv") is None
    with pytest.raises(UnrecognisedExportError, match="column mapping") as err:
        parse_positions(FIXTURES / "generic.csv")
    assert isinstance(err.value, DataError)


@pytest.mark.parametrize("name", list(DETECTED))
def test_detection_ignores_a_misleading_file_name(name):
    # Bytes plus another broker's typical file name: content decides.
    result = parse_positions(fixture_bytes(name), filename="Portfolio_Positions_Mar-14-2025.csv")
    assert (result.broker, result.layout) == DETECTED[name]


# ---------------------------------------------------------------------------
# Mangled files (hypothesis)
# ---------------------------------------------------------------------------

_HEADER_TEST = {
    "schwab_single": lambda r: "Symbol" in r,
    "schwab_all_accounts": lambda r: "Symbol" in r,
    "schwab_2022": lambda r: "Symbol" in r,
    "fidelity": lambda r: r[:1] == ["Account Number"],
    "vanguard": lambda r: r[:1] == ["Account Number"],
    "ibkr_activity": lambda r: r[1:2] == ["Header"],
    "ibkr_flex": lambda r: "ClientAccountID" in r,
    "degiro": lambda r: "Symbol/ISIN" in r,
    "generic": lambda r: "Ticker" in r,
}
_FLEX_RECORDS = {"BOF", "BOA", "BOS", "EOS", "EOA", "EOF"}


def _footer_dropped(name: str, lines: list[str]) -> list[str]:
    """The file as if it had been cut before its footer / summary lines."""
    if name == "fidelity":
        return lines[: lines.index("") if "" in lines else len(lines)]
    if name.startswith("schwab"):
        return [ln for ln in lines if not ln.startswith(('"Account Total"', '"Positions Total"'))]
    if name == "vanguard":
        at = next(i for i, ln in enumerate(lines) if "Trade Date" in ln)
        return lines[:at]
    if name == "ibkr_activity":
        return [ln for ln in lines if not ln.startswith(("Codes,", "Notes/Legal Notes,"))]
    if name == "ibkr_flex":
        return lines[:-2]  # "EOA" and "EOF" trailer records
    if name == "generic":
        return [ln for ln in lines if ",TOTAL," not in ln]
    return lines


def _mangle_tables(name: str, lines: list[str], rnd: random.Random, extra: int) -> list[str]:
    """Reorder the columns of every table (header + its rows) and add ``extra`` columns."""
    rows = [next(csv.reader([ln])) if ln else [] for ln in lines]
    is_header = _HEADER_TEST[name]
    prefix = 2 if name == "ibkr_activity" else 0
    quoting = (
        csv.QUOTE_ALL if name.startswith("schwab") or name == "ibkr_flex" else csv.QUOTE_MINIMAL
    )
    out = list(lines)
    i = 0
    while i < len(rows):
        if not rows[i] or not is_header(rows[i]):
            i += 1
            continue
        section = rows[i][0]
        width = len(rows[i])
        while width > prefix and rows[i][width - 1] == "":
            width -= 1
        units = [[k] for k in range(prefix, width)]
        if name == "degiro":  # the currency/amount pair of "Local value" is one logical column
            units = [[0], [1], [2], [3], [4, 5], [6]]
        rnd.shuffle(units)
        for j in range(extra):
            units.insert(rnd.randrange(len(units) + 1), [-(j + 1)])
        order = [k for unit in units for k in unit]
        end = i + 1
        while end < len(rows) and rows[end] and not is_header(rows[end]):
            r = rows[end]
            if name == "ibkr_activity" and r[0] != section:
                break
            if name == "ibkr_flex" and r[0] in _FLEX_RECORDS:
                break
            if name == "fidelity" and len([c for c in r if c]) <= 1:
                break
            end += 1
        for k in range(i, end):
            cells = rows[k][:]
            while len(cells) > width and cells[-1] == "":
                cells.pop()
            cells += [""] * (width - len(cells))
            new = cells[:prefix]
            for col in order:
                if col >= 0:
                    new.append(cells[col])
                elif k == i:
                    new.append(f"Extra {-col}")
                else:
                    new.append(rnd.choice(["x", "1,234.00", "--", "", "N/A", "note, with comma"]))
            buf = io.StringIO()
            csv.writer(buf, quoting=quoting, lineterminator="").writerow(new)
            out[k] = buf.getvalue()
        i = end
    return out


mangles = st.fixed_dictionaries(
    {
        "newline": st.sampled_from(["\n", "\r\n"]),
        "bom": st.booleans(),
        "blank_lines": st.lists(st.integers(min_value=0, max_value=200), max_size=4),
        "drop_footer": st.booleans(),
        "reorder": st.booleans(),
        "extra_columns": st.integers(min_value=0, max_value=2),
        "seed": st.integers(min_value=0, max_value=2**32 - 1),
    }
)


def mangle(name: str, m: dict) -> str:
    lines = fixture_text(name).splitlines()
    rnd = random.Random(m["seed"])
    if m["drop_footer"]:
        lines = _footer_dropped(name, lines)
    if m["reorder"] or m["extra_columns"]:
        if not m["reorder"]:
            rnd = _NoShuffle(m["seed"])
        lines = _mangle_tables(name, lines, rnd, m["extra_columns"])
    for at in sorted(m["blank_lines"], reverse=True):
        lines.insert(at % (len(lines) + 1), "")
    text = m["newline"].join(lines) + m["newline"]
    return ("\ufeff" if m["bom"] else "") + text


class _NoShuffle(random.Random):
    def shuffle(self, x, *args, **kwargs):  # keep the column order, still add columns
        return None


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=mangles)
def test_mangled_fixture_parses_to_the_same_holdings(name, m):
    text = mangle(name, m)
    result = parse(name, text.encode("utf-8"))
    assert_same(holdings(result), expected_holdings(name))
    assert (result.broker, result.layout) == DETECTED.get(name, ("generic", "generic"))
    lines = text.lstrip("\ufeff").splitlines()
    for p in result.positions:
        assert p.symbol in lines[p.row - 1] or p.isin in lines[p.row - 1]
    for s in result.skipped:
        assert lines[s.row - 1].startswith(s.text.removesuffix("..."))


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_a_broken_quantity_fails_naming_the_row_and_column(name, data):
    rows = [next(csv.reader([ln])) if ln else [] for ln in fixture_text(name).splitlines()]
    positions = [p for a in expected(name)["accounts"] for p in a["positions"]]
    target = data.draw(st.sampled_from(positions))
    line = target["row"]
    header = next(
        r
        for r in reversed(rows[: line - 1])
        if r and QUANTITY_HEADER[name] in r and _HEADER_TEST[name](r)
    )
    col = header.index(QUANTITY_HEADER[name])
    bad = data.draw(st.sampled_from(["abc", "12..5", "1,2,3x", "$-", "#VALUE!"]))
    cells = rows[line - 1]
    cells[col] = bad
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(cells)
    lines = fixture_text(name).splitlines()
    lines[line - 1] = buf.getvalue()
    with pytest.raises(DataError) as err:
        parse(name, ("\n".join(lines) + "\n").encode())
    assert err.value.row == line
    assert err.value.column == QUANTITY_HEADER[name]
    assert f"row {line}" in str(err.value)


# ---------------------------------------------------------------------------
# Money
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("$1,234.56", 1234.56),
        ("-$1,234.56", -1234.56),
        ("(1,855.00)", -1855.0),
        ("($4,472.00)", -4472.0),
        ("+$0.160", 0.16),
        ("$-12.00", -12.0),
        ("1.234,56", 1234.56),
        ("-3,00", -3.0),
        ("91,15", 91.15),
        ("1,234", 1234.0),
        ("9,999.99", 9999.99),
        ("USD 1,184.95", 1184.95),
        ("1 234,56 €", 1234.56),
        ("99.099%", 99.099),
        ("-0.45%", -0.45),
        ("1e3", 1000.0),
        (12.5, 12.5),
        ("--", None),
        ("-", None),
        ("N/A", None),
        ("n/a", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_money_reads_broker_formats(text, value):
    assert parse_money(text) == (pytest.approx(value) if value is not None else None)


@pytest.mark.parametrize(
    "text", ["abc", "12..5", "1,2,3x", "$", "1.234.56,7.8", "#VALUE!", "1,23,4"]
)
def test_parse_money_refuses_non_numbers(text):
    with pytest.raises(ValueError, match="not a number"):
        parse_money(text)


def test_parse_money_decimal_comma_when_told():
    assert parse_money("1,234", decimal=",") == pytest.approx(1.234)
    assert parse_money("1.234", decimal=",") == pytest.approx(1234.0)
    assert parse_money("1.234,5", decimal=",") == pytest.approx(1234.5)
    with pytest.raises(ValueError):
        parse_money("91,15", decimal=".")


@settings(max_examples=200, deadline=None)
@given(cents=st.integers(min_value=-(10**11), max_value=10**11))
def test_parse_money_round_trips_every_written_form(cents):
    value = cents / 100
    us = f"{abs(value):,.2f}"
    eu = us.replace(",", "_").replace(".", ",").replace("_", ".")
    sign = "-" if value < 0 else ""
    forms = [(f"{sign}${us}", None), (f"{sign}{us}", None), (f"{sign}{eu}", ",")]
    if value < 0:
        forms.append((f"({us})", None))
    for form, decimal in forms:
        assert parse_money(form, decimal=decimal) == pytest.approx(value, abs=1e-9), form


# ---------------------------------------------------------------------------
# Accounts: merge and unmapped symbols
# ---------------------------------------------------------------------------


def test_merge_accounts_sums_shares_and_cash_like_pandas():
    result = parse("schwab_all_accounts")
    shares, cash = merge_accounts(result)
    frame = pd.DataFrame([p.to_dict() for p in result.positions])
    want = frame.groupby("symbol", sort=False)["quantity"].sum().to_dict()
    assert shares == pytest.approx(want)
    assert list(shares) == ["VTI", "IEF", "RSSB", "KMLM", "AAPL", "DBMF"]
    assert shares["RSSB"] == 720.0
    assert cash == pytest.approx({"USD": 2578.40 + 11.48 + 402.15})


def test_merge_accounts_takes_only_the_chosen_accounts():
    result = parse("schwab_all_accounts")
    shares, cash = merge_accounts(result, ["...456", "...789"])
    assert shares == {"RSSB": 720.0, "KMLM": 350.0, "AAPL": 5.0, "DBMF": 180.0}
    assert cash == pytest.approx({"USD": 413.63})
    with pytest.raises(ValidationError, match="not in this file"):
        merge_accounts(result, ["...999"])


def test_merge_keeps_currencies_apart_and_sums_duplicate_rows():
    shares, cash = merge_accounts(parse("fidelity"), ["Z12345678"])
    assert shares == {"NTSX": 500.0, "RSSB": 750.0}  # cash and margin rows of RSSB
    flex_shares, flex_cash = merge_accounts(parse("ibkr_flex"))
    assert flex_cash == pytest.approx({"USD": 11890.12 + 310.45, "CHF": 402.5})
    assert flex_shares["VT"] == 80.0


@pytest.mark.parametrize(
    ("name", "unmapped"),
    [
        ("schwab_all_accounts", ["AAPL"]),
        ("vanguard", ["VTIAX"]),
        ("ibkr_activity", ["IWDA"]),
        ("degiro", ["IE00BK5BQT80", "IE00B4L5Y983", "IE00B579F325"]),
        ("fidelity", []),
        ("generic", []),
    ],
)
def test_unmapped_symbols_are_those_missing_from_the_default_fund_map(name, unmapped):
    fund_map = FundExposureMap.default()
    assert unmapped_symbols(parse(name), fund_map) == unmapped


def test_isin_table_check_digits_and_tickers():
    def check_digit(isin: str) -> int:
        # ISO 6166 written out independently: letters -> two digits, then Luhn mod 10.
        digits = "".join(str(ord(c) - 55) if c.isalpha() else c for c in isin[:11])
        total = 0
        for pos, d in enumerate(int(x) for x in digits[::-1]):
            total += sum(divmod(d * 2, 10)) if pos % 2 == 0 else d
        return (10 - total % 10) % 10

    fund_map = FundExposureMap.default()
    for isin, ticker in ISIN_TO_TICKER.items():
        assert isin.startswith("US") and len(isin) == 12
        assert check_digit(isin) == int(isin[-1]), isin
        assert isin_check_digit_ok(isin)
        assert ticker in fund_map, ticker
    assert check_digit("IE00B4L5Y983") == 3 and isin_check_digit_ok("IE00BK5BQT80")
    assert not isin_check_digit_ok("US9229087691")


# ---------------------------------------------------------------------------
# Warnings and errors
# ---------------------------------------------------------------------------


def test_schwab_total_that_does_not_add_up_is_warned():
    lines = fixture_text("schwab_single").splitlines()
    text = "\n".join(ln for ln in lines if not ln.startswith('"GLD"'))
    result = parse_positions(text + "\n")
    assert len(result.warnings) == 1
    assert "$106,104.32" in result.warnings[0] and "$95,366.32" in result.warnings[0]


def test_fidelity_pending_activity_is_reported_not_counted():
    result = parse("fidelity")
    assert result.account("Z12345678").cash == {"USD": 1520.33}
    assert any("pending activity of -$121.50" in w for w in result.warnings)
    assert [s.row for s in result.skipped if s.reason.startswith("pending")] == [7]


def test_ibkr_statement_without_cash_report_warns():
    text = "\n".join(
        ln for ln in fixture_text("ibkr_activity").splitlines() if not ln.startswith("Cash Report")
    )
    result = parse_positions(text + "\n")
    assert all(a.cash == {} for a in result.accounts)
    assert any("no Cash Report" in w for w in result.warnings)


def test_flex_without_cash_section_warns_and_plain_header_layout_parses():
    # No BOF/BOS trailer records, no Cash Report: just header rows and position rows.
    keep = ("MarkPrice", '"SUMMARY"', '"LOT"')
    plain = [ln for ln in fixture_text("ibkr_flex").splitlines() if any(k in ln for k in keep)]
    result = parse_positions("\n".join(plain) + "\n")
    assert [a.account_id for a in result.accounts] == ["U7654321", "U7654322"]
    assert merge_accounts(result)[0] == {"VOO": 120, "TLT": 300, "VEA": 400, "VT": 80, "GLD": 10}
    assert any("no Cash Report" in w for w in result.warnings)


def test_ibkr_statement_of_an_all_cash_account_has_cash_and_a_warning():
    text = "\n".join(
        ln
        for ln in fixture_text("ibkr_activity").splitlines()
        if not ln.startswith("Open Positions")
    )
    result = parse_positions(text + "\n")
    assert result.positions == []
    assert result.account("U1234567").cash == pytest.approx({"EUR": 1520.40, "USD": -8734.55})
    assert any("no Open Positions section" in w for w in result.warnings)


def test_fidelity_sentence_case_headers_of_2024():
    text = fixture_text("fidelity")
    header = text.splitlines()[0]
    newer = (
        header.replace("Number", "number")
        .replace("Name", "name")
        .replace("Last Price", "Last price")
    )
    newer = newer.replace("Current Value", "Current value").replace(
        "Pending Activity", "Pending activity"
    )
    result = parse_positions(
        text.replace(header, newer).replace("Pending Activity", "Pending activity")
    )
    assert_same(holdings(result), expected_holdings("fidelity"))


def test_flex_with_section_codes_parses_the_same():
    out = []
    code = ""
    for ln in fixture_text("ibkr_flex").splitlines():
        cells = next(csv.reader([ln]))
        if cells[0] == "BOS":
            code = cells[1]
        if cells[0] in _FLEX_RECORDS:
            out.append(ln)
        elif cells[0] == "ClientAccountID":
            out.append(f'"HEADER","{code}",' + ln)
        else:
            out.append(f'"DATA","{code}",' + ln)
    result = parse_positions("\n".join(out) + "\n")
    assert_same(holdings(result), expected_holdings("ibkr_flex"))


def test_degiro_dutch_header_and_one_cell_local_value():
    text = (
        "Product,Symbool/ISIN,Aantal,Slotkoers,Lokale waarde,Waarde in EUR\n"
        'CASH & CASH FUND & FTX CASH (EUR),,,,"EUR 143,20","143,20"\n'
        'ISHARES MSCI WOR A,IE00B4L5Y983,10,"59,44","EUR 594,40","594,40"\n'
        'VANGUARD TOTAL STOCK MARKET ETF,US9229087690,3,"285,40","USD 856,20","786,73"\n'
    )
    result = parse_positions(text)
    assert result.broker == "degiro"
    account = result.accounts[0]
    assert account.cash == {"EUR": 143.2}
    assert [
        (p.symbol, p.quantity, p.price, p.market_value, p.currency) for p in account.positions
    ] == [
        ("IE00B4L5Y983", 10.0, 59.44, 594.4, "EUR"),
        ("VTI", 3.0, 285.4, 856.2, "USD"),
    ]


def test_cp1252_file_decodes_through_fileio():
    text = fixture_text("degiro").replace("INVESCO PHYSICAL GOLD ETC", "SOCIÉTÉ GÉNÉRALE OR ÉTF")
    result = parse_positions(text.encode("cp1252"), filename="Portfolio.csv")
    assert result.positions[-1].description == "SOCIÉTÉ GÉNÉRALE OR ÉTF"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (b"\x00\x01\x02\x03binary\x00", "binary"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1old excel", ".xls"),
        (b"Date,Open,High,Low,Close\n2025-01-02,1,2,0.5,1.5\n", "not a positions export"),
    ],
)
def test_unusable_files_raise_data_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        parse_positions(path)
    assert err.value.path == str(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        parse_positions(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="folder"):
        parse_positions(tmp_path)


def test_header_without_quantity_column_names_the_header_row():
    text = fixture_text("schwab_2022").replace('"Quantity",', '"Units Held",')
    with pytest.raises(DataError, match="Quantity") as err:
        parse_positions(text)
    assert not isinstance(err.value, UnrecognisedExportError)  # the title says Schwab
    assert err.value.row == 3


# ---------------------------------------------------------------------------
# Generic CSV/Excel import
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (
            ["Symbol", "Qty (Quantity)", "Price", "Mkt Val (Market Value)"],
            ("Symbol", "Qty (Quantity)", "Price"),
        ),
        (["ticker", "SHARES", "Last"], ("ticker", "SHARES", "Last")),
        (
            ["Account", "Instrument", "Position", "Mark Price", "Currency"],
            ("Instrument", "Position", "Mark Price"),
        ),
        (["Name", "Value"], None),
        (["Symbol", "Description"], None),
    ],
)
def test_guess_mapping_from_header_names(header, want):
    mapping = guess_mapping(header)
    if want is None:
        assert mapping is None
    else:
        assert (mapping.symbol_col, mapping.quantity_col, mapping.price_col) == want


def test_layout_key_is_stable_and_distinguishes_layouts():
    a = layout_key(["Account", "Ticker", "Shares", "Last"])
    assert a == layout_key([" ticker ", "SHARES", "last", "Account", ""])
    assert a != layout_key(["Account", "Ticker", "Shares", "Close"])
    assert re.fullmatch(r"layout-[0-9a-f]{16}", a)


def test_generic_mapping_round_trips_and_validates():
    m = GenericMapping(
        "Ticker", "Shares", price_col="Last", cash_symbols=("CASH", "MMDA"), currency="eur"
    )
    assert m.currency == "EUR"
    assert GenericMapping.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    assert m.columns() == {"symbol": "Ticker", "quantity": "Shares", "price": "Last"}
    with pytest.raises(ValidationError):
        GenericMapping("", "Shares")
    with pytest.raises(ValidationError):
        GenericMapping("Ticker", "Shares", decimal=";")
    with pytest.raises(ValidationError):
        GenericMapping.from_dict({"symbol_col": "T", "quantity_col": "Q", "colour": "red"})


def test_generic_european_semicolon_table_with_explicit_mapping():
    text = "Ticker;Anzahl;Kurs;Waehrung\nVWCE;1.200;121,48;EUR\nIWDA;10;101,32;EUR\nCASH;;;EUR\n"
    mapping = GenericMapping("Ticker", "Anzahl", price_col="Kurs", currency_col="Waehrung")
    result = parse_generic(text, mapping)
    assert [(p.symbol, p.quantity, p.price, p.currency) for p in result.positions] == [
        ("VWCE", 1200.0, 121.48, "EUR"),
        ("IWDA", 10.0, 101.32, "EUR"),
    ]
    assert [s.reason for s in result.skipped] == ["cash row without an amount"]


def test_generic_mapping_errors_name_row_and_column():
    mapping = GenericMapping("Ticker", "Shares", price_col="Last")
    text = fixture_text("generic").replace(
        "KMLM,KFA Mount Lucas Managed Futures Index Strategy ETF,250", "KMLM,KFA,2x50"
    )
    with pytest.raises(DataError) as err:
        parse_generic(text, mapping)
    assert (err.value.row, err.value.column) == (8, "Shares")
    with pytest.raises(DataError, match="'Close'"):
        parse_generic(
            fixture_text("generic"), GenericMapping("Ticker", "Shares", price_col="Close")
        )
    with pytest.raises(DataError, match="no row of column names"):
        parse_generic(fixture_text("generic"), GenericMapping("Symbol", "Qty"))


def test_generic_xlsx_reads_like_the_csv(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    for cells in csv.reader(io.StringIO(fixture_text("generic"))):
        values = []
        for c in cells:
            plain = c.replace("$", "").replace(",", "")
            values.append(float(plain) if re.fullmatch(r"-?\d+(\.\d+)?", plain) else (c or None))
        sheet.append(values)
    path = tmp_path / "holdings.xlsx"
    book.save(path)
    header, rows = read_table(path)
    assert header == ["Account", "Ticker", "Name", "Shares", "Last", "Market Value", "Gain/Loss"]
    assert rows[0][:4] == [
        "Joint ...8842",
        "RSSB",
        "Return Stacked Global Stocks & Bonds ETF",
        "300",
    ]
    result = parse_generic(path, guess_mapping(header))
    want = expected("generic")
    assert_same([a.to_dict() for a in result.accounts], want["accounts"])


def test_broker_export_saved_as_xlsx_is_still_detected(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    for cells in csv.reader(io.StringIO(fixture_text("fidelity"))):
        book.active.append(cells or [None])
    path = tmp_path / "positions.xlsx"
    book.save(path)
    result = parse_positions(path)
    assert result.broker == "fidelity"
    assert_same(holdings(result), expected_holdings("fidelity"))


def test_read_table_skips_title_lines_and_blank_rows():
    header, rows = read_table(FIXTURES / "generic.csv")
    assert header[1] == "Ticker" and len(rows) == 6


# ---------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------


def test_docs_list_every_broker_with_its_how_to():
    text = DOCS.read_text(encoding="utf-8")
    for code, name in BROKER_NAMES.items():
        assert name in text, name
        assert BROKER_HOWTO[code] in text, code
