"""Prices, returns, data quality and the fund-from-exposures model (core.market_data)."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from core.errors import DataError, ValidationError
from core.exposures import FundDefinition, FundExposureMap
from core.market_data import (
    FFILL_LIMIT,
    DataQualityReport,
    ExposureFit,
    _inside_history,
    _row_nanmedian,
    _run_lengths,
    _stale_runs,
    annualization_factor,
    check_data_quality,
    clean_prices,
    default_tolerance,
    fit_fund_exposures,
    load_exposure_panel,
    map_disagreements,
    proxy_returns,
    read_prices,
    read_prices_text,
    splice_history,
    synthesize_fund_returns,
    to_returns,
    trading_days,
)

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def etf_prices(shared_data: Path) -> pd.DataFrame:
    """The real ETF table, read once for the module."""
    return read_prices(shared_data / "etf_daily_adjclose.csv.gz")


def _random_prices(
    n_days: int = 300, n_cols: int = 4, seed: int = 0, start: str = "2020-01-01"
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = trading_days(start, pd.Timestamp(start) + pd.Timedelta(days=2 * n_days))[:n_days]
    steps = rng.normal(0.0003, 0.01, size=(n_days, n_cols))
    prices = 100 * np.exp(np.cumsum(steps, axis=0))
    return pd.DataFrame(prices, index=index, columns=[f"S{i}" for i in range(n_cols)])


# ------------------------------------------------------------------------------ parsing
WIDE = """Date,SPY,ief
2024-01-02,470.5,95.25
2024-01-03,468.0,95.5
2024-01-04,,95.0
2024-01-05,467.25,94.75
"""


def test_wide_table_basic() -> None:
    df = read_prices_text(WIDE, source="wide.csv")
    assert list(df.columns) == ["SPY", "IEF"]
    assert df.index.name == "Date"
    assert isinstance(df.index, pd.DatetimeIndex)
    assert df.index.is_monotonic_increasing and df.index.is_unique
    assert all(dtype == np.float64 for dtype in df.dtypes)
    assert df.loc["2024-01-03", "SPY"] == 468.0
    assert np.isnan(df.loc["2024-01-04", "SPY"])
    assert df.attrs["issues"] == []


def test_gzip_zip_and_plain_files_read_alike(tmp_path: Path) -> None:
    plain = tmp_path / "p.csv"
    plain.write_text(WIDE)
    gz = tmp_path / "p.csv.gz"
    gz.write_bytes(gzip.compress(WIDE.encode()))
    zp = tmp_path / "p.zip"
    with zipfile.ZipFile(zp, "w") as zf:
        zf.writestr("prices.csv", WIDE)
    expected = read_prices(plain)
    pd.testing.assert_frame_equal(read_prices(gz), expected)
    pd.testing.assert_frame_equal(read_prices(zp), expected)


YAHOO = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,100.0,101.0,99.0,100.5,98.5,1000
2024-01-03,100.5,102.0,100.0,101.5,99.5,1200
2024-01-04,null,null,null,null,null,null
2024-01-05,101.5,103.0,101.0,102.5,100.5,900
"""


def test_yahoo_file_uses_adj_close_and_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "rssb.csv"
    path.write_text(YAHOO)
    df = read_prices(path)
    assert list(df.columns) == ["RSSB"]
    assert df["RSSB"].tolist()[:2] == [98.5, 99.5]
    assert np.isnan(df.loc["2024-01-04", "RSSB"])
    assert read_prices(path, symbol="xyz").columns.tolist() == ["XYZ"]


def test_yahoo_file_without_adj_close_uses_close() -> None:
    text = (
        "Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,1.75,10\n"
    )
    df = read_prices_text(text, source="downloads/SPY.csv")
    assert df.columns.tolist() == ["SPY"]
    assert df["SPY"].tolist() == [1.5, 1.75]


def test_yahoo_event_rows_and_time_offsets_are_handled() -> None:
    text = (
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2024-01-02 00:00:00-05:00,1,1,1,10,9,1\n"
        "2024-01-03,0.25 Dividend\n"
        "2024-01-03 00:00:00-05:00,1,1,1,11,10,1\n"
    )
    df = read_prices_text(text, symbol="ABC")
    assert df.index.tolist() == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]
    assert df["ABC"].tolist() == [9.0, 10.0]
    assert any(i.kind == "skipped_lines" for i in df.attrs["issues"])


def test_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + WIDE.encode())
    df = read_prices(path)
    assert df.columns.tolist() == ["SPY", "IEF"]
    assert df.index.name == "Date"


def test_latin1_with_title_and_footer(tmp_path: Path) -> None:
    text = (
        "Cours de cl\u00f4ture ajust\u00e9s (\u00e9dition sp\u00e9ciale)\n"
        "\n"
        "Date;CW8;ESE\n"
        "02.01.2024;450,25;12,5\n"
        "03.01.2024;451,75;12,25\n"
        "\n"
        "Donn\u00e9es fournies \u00e0 titre indicatif, r\u00e9sultats pass\u00e9s\n"
    )
    path = tmp_path / "europe.csv"
    path.write_bytes(text.encode("latin-1"))
    df = read_prices(path)
    assert df.columns.tolist() == ["CW8", "ESE"]
    assert df.index.tolist() == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]
    assert df["CW8"].tolist() == [450.25, 451.75]
    assert df["ESE"].tolist() == [12.5, 12.25]


def test_decimal_comma_with_thousands_dots() -> None:
    text = "Datum;AAA;BBB\n31.01.2024;1.234,56;7,5\n01.02.2024;1.240,00;-\n"
    df = read_prices_text(text)
    assert df.loc["2024-01-31", "AAA"] == pytest.approx(1234.56)
    assert df.loc["2024-02-01", "AAA"] == pytest.approx(1240.0)
    assert np.isnan(df.loc["2024-02-01", "BBB"])


def test_thousands_separators_currency_and_missing_tokens() -> None:
    text = (
        "Date,BRK,SPY,QQQ\n"
        '2024-01-02,"$545,000.50",$470.25,NaN\n'
        '2024-01-03,"546,100",null,-\n'
        '2024-01-04," 547,000.00 ",471,410.5\n'
    )
    df = read_prices_text(text)
    assert df["BRK"].tolist() == [545000.50, 546100.0, 547000.0]
    assert df["SPY"].iloc[0] == 470.25 and np.isnan(df["SPY"].iloc[1])
    assert df["QQQ"].isna().sum() == 2 and df["QQQ"].iloc[2] == 410.5


def test_blank_lines_footer_and_trailing_delimiters() -> None:
    text = (
        "Prices exported 2024-02-01\n"
        "Date,AAA,BBB,\n"
        "\n"
        "2024-01-02,1,2,\n"
        ",,,\n"
        "2024-01-03,1.5,2.5,\n"
        "\n"
        "Total,,,\n"
        "Source: broker export\n"
    )
    df = read_prices_text(text, source="export.csv")
    assert df.columns.tolist() == ["AAA", "BBB"]
    assert df["AAA"].tolist() == [1.0, 1.5]


@pytest.mark.parametrize(
    ("cell_a", "cell_b", "expected"),
    [
        ("2024-01-31", "2024-02-01", ["2024-01-31", "2024-02-01"]),
        ("31.01.2024", "01.02.2024", ["2024-01-31", "2024-02-01"]),
        ("01/31/2024", "02/01/2024", ["2024-01-31", "2024-02-01"]),
        ("2024/01/31", "2024/02/01", ["2024-01-31", "2024-02-01"]),
        ("20240131", "20240201", ["2024-01-31", "2024-02-01"]),
        ("Jan 31, 2024", "Feb 1, 2024", ["2024-01-31", "2024-02-01"]),
    ],
)
def test_date_formats(cell_a: str, cell_b: str, expected: list[str]) -> None:
    quote = '"' if "," in cell_a else ""
    text = f"Date,X\n{quote}{cell_a}{quote},1\n{quote}{cell_b}{quote},2\n"
    df = read_prices_text(text)
    assert df.index.tolist() == [pd.Timestamp(d) for d in expected]


def test_duplicated_dates_keep_last_and_are_reported() -> None:
    text = "Date,X\n2024-01-02,1\n2024-01-03,2\n2024-01-03,3\n2024-01-04,4\n"
    df = read_prices_text(text, source="dup.csv")
    assert df["X"].tolist() == [1.0, 3.0, 4.0]
    issues = [i for i in df.attrs["issues"] if i.kind == "duplicate_date"]
    assert len(issues) == 1
    assert issues[0].date == pd.Timestamp("2024-01-03")
    assert "lines 3, 4" in issues[0].message
    # check_data_quality carries the load-time issues forward.
    assert check_data_quality(df).find(kind="duplicate_date")


def test_unsorted_dates_are_sorted_and_reported() -> None:
    text = "Date,X\n2024-01-04,4\n2024-01-02,2\n2024-01-03,3\n"
    df = read_prices_text(text)
    assert df.index.is_monotonic_increasing
    assert df["X"].tolist() == [2.0, 3.0, 4.0]
    assert any(i.kind == "unsorted" for i in df.attrs["issues"])


def _error(text: str, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        read_prices_text(text, source="bad.csv", **kwargs)
    return info.value


def test_non_numeric_price_names_row_and_column() -> None:
    err = _error("Date,AAA,BBB\n2024-01-02,1,2\n\n2024-01-03,1.5,abc\n")
    assert (err.path, err.row, err.column) == ("bad.csv", 4, "BBB")
    assert "abc" in str(err) and "row 4" in str(err)


def test_unparseable_date_names_row_and_column() -> None:
    err = _error("Date,AAA\n2024-01-02,1\n2024-13-45,2\n")
    assert (err.row, err.column) == (3, "Date")


def test_junk_line_between_data_rows_is_an_error() -> None:
    err = _error("Date,AAA\n2024-01-02,1\nsubtotal,3\n2024-01-03,2\n")
    assert (err.row, err.column) == (3, "Date")


@pytest.mark.parametrize("bad", ["0", "-3.5"])
def test_nonpositive_price_is_an_error(bad: str) -> None:
    err = _error(f"Date,AAA,BBB\n2024-01-02,1,2\n2024-01-03,{bad},2\n")
    assert (err.row, err.column) == (3, "AAA")
    assert "positive" in str(err)


def test_yields_may_be_zero_or_negative() -> None:
    df = read_prices_text("Date,^IRX,SPY\n2024-01-02,0.0,1\n2024-01-03,-0.1,2\n")
    assert df["^IRX"].tolist() == [0.0, -0.1]
    assert "^IRX" in check_data_quality(df).skipped


def test_no_date_column_no_numbers_no_header() -> None:
    assert "dated rows" in str(_error("Ticker,Price\nSPY,1\nQQQ,2\n"))
    assert "no price column" in str(_error("Date,AAA\n2024-01-02,\n2024-01-03,null\n"))
    assert "header" in str(_error("2024-01-02,1\n2024-01-03,2\n"))
    assert "empty" in str(_error("\n\n"))
    assert "one column" in str(_error("Date\n2024-01-02\n"))


def test_duplicate_ticker_columns_and_unnamed_data_are_errors() -> None:
    assert "two columns" in str(_error("Date,SPY,spy\n2024-01-02,1,2\n"))
    assert "no name" in str(_error("Date,SPY,\n2024-01-02,1,2\n"))


def test_too_many_cells_is_an_error() -> None:
    err = _error("Date,A\n2024-01-02,1,2\n")
    assert err.row == 2


def test_list_of_files_is_merged(tmp_path: Path) -> None:
    (tmp_path / "spy.csv").write_text(YAHOO)
    (tmp_path / "wide.csv").write_text("Date,TLT\n2024-01-03,90\n2024-01-08,91\n")
    df = read_prices([tmp_path / "spy.csv", tmp_path / "wide.csv"])
    assert df.columns.tolist() == ["SPY", "TLT"]
    assert df.index.is_monotonic_increasing and df.index.name == "Date"
    assert len(df) == 5
    assert np.isnan(df.loc["2024-01-02", "TLT"]) and np.isnan(df.loc["2024-01-08", "SPY"])
    (tmp_path / "spy2.csv").write_text("Date,SPY\n2024-01-03,90\n")
    with pytest.raises(DataError, match="both"):
        read_prices([tmp_path / "spy.csv", tmp_path / "spy2.csv"])


def test_missing_file_and_binary_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_prices(tmp_path / "nope.csv")
    binary = tmp_path / "x.csv"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(DataError, match="binary"):
        read_prices(binary)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.lists(
            st.one_of(st.none(), st.floats(0.01, 1e6, allow_nan=False)),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
        max_size=30,
    ),
    sep=st.sampled_from([",", ";", "\t"]),
)
def test_round_trip_property(values: list[list[float | None]], sep: str) -> None:
    """Whatever pandas writes (any delimiter), the reader gives back the same numbers."""
    index = pd.bdate_range("2020-01-01", periods=len(values), name="Date")
    frame = pd.DataFrame(values, index=index, columns=["AAA", "BBB", "CCC"], dtype=float)
    if frame.isna().all().all():
        frame.iloc[0, 0] = 1.0
    text = frame.to_csv(sep=sep)
    back = read_prices_text(text)
    kept = [c for c in frame.columns if c in back.columns]
    pd.testing.assert_frame_equal(back[kept], frame[kept], check_freq=False, rtol=1e-12)


def test_real_wide_table(etf_prices: pd.DataFrame) -> None:
    assert etf_prices.shape[1] == 96
    assert {"SPY", "RSSB", "NTSX", "BIL", "^IRX"} <= set(etf_prices.columns)
    assert etf_prices.index[-1] == pd.Timestamp("2026-08-03")
    assert etf_prices["RSSB"].first_valid_index() == pd.Timestamp("2023-12-05")
    assert etf_prices.index.is_unique and etf_prices.index.is_monotonic_increasing


def test_real_ragged_stock_file(shared_data: Path) -> None:
    df = read_prices(shared_data / "stock_prices_20.csv")
    assert df.shape == (7126, 20)
    # FB lists in 2012: NaN before, prices after.
    assert df["FB"].first_valid_index().year == 2012
    returns = to_returns(df, "monthly")
    assert returns["FB"].first_valid_index() > df["FB"].first_valid_index()
    assert returns.loc[: df["FB"].first_valid_index(), "FB"].isna().all()


# ------------------------------------------------------------------------------ returns
def test_annualization_factor() -> None:
    assert annualization_factor("daily") == 252
    assert annualization_factor("weekly") == 52
    assert annualization_factor("Monthly") == 12
    with pytest.raises(ValidationError):
        annualization_factor("hourly")
    with pytest.raises(ValidationError):
        to_returns(_random_prices(), "quarterly")


def test_daily_returns_are_simple_returns() -> None:
    prices = _random_prices(50, 3)
    returns = to_returns(prices, "daily")
    expected = (prices / prices.shift(1) - 1).iloc[1:]
    pd.testing.assert_frame_equal(returns, expected, check_freq=False, check_names=False)


def test_weekly_and_monthly_match_pandas_resample_on_complete_data() -> None:
    prices = _random_prices(400, 3, start="2021-01-04")
    prices = prices.loc[:"2022-04-29"]  # ends on a Friday that is also a month end
    for freq, rule in (("weekly", "W-FRI"), ("monthly", "ME")):
        got = to_returns(prices, freq)
        sampled = prices.resample(rule).last()
        expected = (sampled / sampled.shift(1) - 1).iloc[1:]
        pd.testing.assert_frame_equal(got, expected, check_freq=False, check_names=False)
    assert to_returns(prices, "weekly").index[-1] == pd.Timestamp("2022-04-29")
    assert to_returns(prices, "monthly").index[-1] == pd.Timestamp("2022-04-30")


def test_partial_last_month_and_week_are_dropped() -> None:
    prices = _random_prices(400, 2, start="2021-01-04").loc[:"2022-05-04"]  # a Wednesday
    monthly = to_returns(prices, "monthly")
    assert monthly.index[-1] == pd.Timestamp("2022-04-30")
    assert to_returns(prices, "monthly", drop_partial_last=False).index[-1] == pd.Timestamp(
        "2022-05-31"
    )
    weekly = to_returns(prices, "weekly")
    assert weekly.index[-1] == pd.Timestamp("2022-04-29")
    assert to_returns(prices, "weekly", drop_partial_last=False).index[-1] == pd.Timestamp(
        "2022-05-06"
    )


def test_month_ending_on_a_holiday_is_complete() -> None:
    # 2024-03-29 was Good Friday: the 28th is March's last trading day.
    prices = _random_prices(300, 1, start="2023-06-01")
    prices = prices[~prices.index.isin([pd.Timestamp("2024-03-29")])].loc[:"2024-03-28"]
    assert to_returns(prices, "monthly").index[-1] == pd.Timestamp("2024-03-31")
    assert to_returns(prices, "weekly").index[-1] == pd.Timestamp("2024-03-29")


def test_ragged_histories_and_gap_filling() -> None:
    prices = _random_prices(120, 2)
    prices.iloc[:30, 1] = np.nan  # starts later
    prices.iloc[50 : 50 + FFILL_LIMIT, 0] = np.nan  # short gap: bridged
    prices.iloc[80:95, 1] = np.nan  # long gap: left missing
    returns = to_returns(prices, "daily")
    assert returns.iloc[:30, 1].isna().all()
    assert returns.iloc[30:, 1].first_valid_index() == prices.index[31]
    # Short gap: zero returns inside, then the full move on the first day back.
    inside = returns.iloc[49 : 49 + FFILL_LIMIT, 0]
    assert (inside == 0).all()
    back = returns.iloc[49 + FFILL_LIMIT, 0]
    assert back == pytest.approx(prices.iloc[50 + FFILL_LIMIT, 0] / prices.iloc[49, 0] - 1)
    # Long gap: nothing filled, the first day back has no return either.
    assert returns.iloc[79:95, 1].isna().all()
    assert returns.iloc[95:, 1].notna().all()


# ------------------------------------------------------------------------- data quality
def test_jump_reversal_detected_and_interpolated() -> None:
    prices = _random_prices(200, 5)
    true_value = prices.iloc[120, 2]
    prices.iloc[120, 2] = true_value * 0.6
    report = check_data_quality(prices)
    found = report.find(kind="jump_reversal")
    assert [(i.symbol, i.date) for i in found] == [("S2", prices.index[120])]
    cleaned, after = clean_prices(prices, report)
    expected = np.sqrt(prices.iloc[119, 2] * prices.iloc[121, 2])  # log-linear, equal spacing
    assert cleaned.iloc[120, 2] == pytest.approx(expected, rel=1e-3)
    assert abs(cleaned.iloc[120, 2] / true_value - 1) < 0.05
    assert after.find(kind="jump_reversal")[0].repaired
    assert any("S2" in a for a in after.actions)
    # Everything else is untouched.
    mask = np.ones(prices.shape, dtype=bool)
    mask[120, 2] = False
    assert np.array_equal(cleaned.to_numpy()[mask], prices.to_numpy()[mask])


def test_market_wide_crash_and_rebound_is_not_a_bad_print() -> None:
    prices = _random_prices(200, 6)
    prices.iloc[120:] *= 0.8  # everyone falls 20% on day 120 ...
    prices.iloc[121:] *= 1.25  # ... and rebounds the next day
    assert not check_data_quality(prices).find(kind="jump_reversal")


def test_stale_prices_detected() -> None:
    prices = _random_prices(200, 4)
    prices.iloc[100:106, 1] = prices.iloc[100, 1]  # six days on one price
    prices.iloc[150:154, 3] = prices.iloc[150, 3]  # four days: not stale
    found = check_data_quality(prices).find(kind="stale")
    assert [(i.symbol, i.date, i.end) for i in found] == [
        ("S1", prices.index[100], prices.index[105])
    ]


def test_stale_prices_found_in_every_block_of_columns() -> None:
    # the run-length scan works on blocks of columns (the GIL is released between them);
    # a stale run in the first column, in the last column of a block, and past the blocks
    prices = _random_prices(120, 150)
    for j, start in ((0, 10), (63, 40), (64, 70), (149, 100)):
        prices.iloc[start : start + 7, j] = prices.iloc[start, j]
    found = check_data_quality(prices).find(kind="stale")
    assert sorted((i.symbol, i.date, i.end) for i in found) == sorted(
        (f"S{j}", prices.index[start], prices.index[start + 6])
        for j, start in ((0, 10), (63, 40), (64, 70), (149, 100))
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 140), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_stale_runs_match_a_plain_loop(rows: int, cols: int, min_count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    counted = rng.random((rows, cols)) < 0.7
    breaks = rng.random((rows, cols)) < 0.2
    expected = []
    for j in range(cols):
        n, first, hit = 0, 0, []
        for t in range(rows):
            if breaks[t, j]:
                n, first = 0, t + 1
            n += int(counted[t, j] and not breaks[t, j])
            hit.append((n >= min_count, first, n))
        for t in range(rows):
            if hit[t][0] and (t == rows - 1 or not hit[t + 1][0]):
                expected.append((t, j, hit[t][1], hit[t][2]))
    assert _stale_runs(counted, breaks, min_count) == sorted(expected)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 140), st.integers(0, 2**32 - 1))
def test_blocked_time_scans_match_whole_panel_formulas(rows: int, cols: int, seed: int) -> None:
    flags = np.random.default_rng(seed).random((rows, cols)) < 0.5
    counts = np.cumsum(flags, axis=0)
    whole_runs = counts - np.maximum.accumulate(np.where(flags, 0, counts), axis=0)
    started = np.maximum.accumulate(flags, axis=0)
    whole_inside = started & np.maximum.accumulate(flags[::-1], axis=0)[::-1]
    np.testing.assert_array_equal(_run_lengths(flags), whole_runs)
    np.testing.assert_array_equal(_inside_history(flags), whole_inside)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_row_nanmedian_matches_numpy(rows: int, cols: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(rows, cols))
    a[rng.random(a.shape) < 0.4] = np.nan
    a[rng.random(a.shape) < 0.05] = np.inf
    counts = (~np.isnan(a)).sum(axis=1)
    some = counts >= 1
    np.testing.assert_array_equal(
        _row_nanmedian(a[some], counts[some]), np.nanmedian(a[some], axis=1)
    )


def test_bill_fund_sitting_still_is_not_stale() -> None:
    prices = _random_prices(200, 3)
    bill = 100 * np.exp(np.cumsum(np.full(200, 1e-5)))
    prices["BILL"] = np.round(bill, 2)  # two-decimal prices: many identical days
    assert not check_data_quality(prices).find(kind="stale", symbol="BILL")


def test_gap_and_nonpositive_detected() -> None:
    prices = _random_prices(200, 3)
    prices.iloc[60:75, 0] = np.nan
    prices.iloc[10, 1] = -1.0
    report = check_data_quality(prices)
    gaps = report.find(kind="gap")
    assert [(g.symbol, g.date, g.end) for g in gaps] == [("S0", prices.index[60], prices.index[74])]
    bad = report.find(kind="nonpositive")
    assert [(b.symbol, b.date, b.severity) for b in bad] == [("S1", prices.index[10], "error")]
    assert not report.ok
    cleaned, after = clean_prices(prices, report)
    assert np.isnan(cleaned.iloc[10, 1]) and after.ok


def test_partial_period_reported() -> None:
    prices = _random_prices(200, 2, start="2021-01-04").loc[:"2021-08-03"]
    issues = check_data_quality(prices).find(kind="partial_period")
    assert len(issues) == 1 and issues[0].date == pd.Timestamp("2021-08-03")
    assert not check_data_quality(prices.loc[:"2021-07-30"]).find(kind="partial_period")


def test_last_row_drop_detected_and_removed() -> None:
    rng = np.random.default_rng(3)
    prices = _random_prices(200, 5)
    prices["BILL"] = 100 * np.exp(np.cumsum(rng.normal(2e-4, 2e-5, 200)))
    prices.iloc[-1, prices.columns.get_loc("BILL")] *= 0.997  # ex-dividend, not adjusted
    report = check_data_quality(prices)
    found = report.find(kind="last_row_drop")
    assert [(i.symbol, i.date) for i in found] == [("BILL", prices.index[-1])]
    cleaned, _ = clean_prices(prices, report)
    assert np.isnan(cleaned["BILL"].iloc[-1])
    assert cleaned.iloc[-1].drop("BILL").notna().all()


def test_quality_checks_scale_to_many_columns() -> None:
    """500 columns x 10 years in one vectorised pass, with faults found where planted."""
    prices = _random_prices(2520, 500, seed=7)
    prices.iloc[1000, 123] *= 0.5
    prices.iloc[2000:2010, 321] = prices.iloc[2000, 321]
    report = check_data_quality(prices)
    assert [(i.symbol, i.date) for i in report.find(kind="jump_reversal")] == [
        ("S123", prices.index[1000])
    ]
    assert [i.symbol for i in report.find(kind="stale")] == ["S321"]
    assert isinstance(report.to_frame(), pd.DataFrame)
    assert "S123" in report.summary()


def test_real_known_faults(etf_prices: pd.DataFrame) -> None:
    report = check_data_quality(etf_prices)
    btal = report.find(kind="jump_reversal", symbol="BTAL")
    assert [(i.date, i.end) for i in btal] == [
        (pd.Timestamp("2015-04-29"), pd.Timestamp("2015-04-30"))
    ]
    # No crash-day false alarms on the leveraged funds (March 2020).
    assert {i.symbol for i in report.find(kind="jump_reversal")} == {"BTAL"}
    dropped = {i.symbol for i in report.find(kind="last_row_drop")}
    assert dropped == {"BIL", "SHV", "SGOV"}
    assert all(i.date == pd.Timestamp("2026-08-03") for i in report.find(kind="last_row_drop"))
    assert report.find(kind="partial_period")[0].date == pd.Timestamp("2026-08-03")
    assert not report.find(symbol="KMLM", kind="jump_reversal")

    cleaned, after = clean_prices(etf_prices, report)
    before, fixed = etf_prices.loc["2015-04-29", "BTAL"], cleaned.loc["2015-04-29", "BTAL"]
    neighbours = etf_prices.loc[["2015-04-28", "2015-04-30"], "BTAL"]
    assert before < 0.7 * neighbours.min()
    assert neighbours.min() <= fixed <= neighbours.max()
    assert np.isnan(cleaned.loc["2026-08-03", "BIL"])
    assert cleaned.loc["2026-08-03", "SPY"] == etf_prices.loc["2026-08-03", "SPY"]
    assert len(after.actions) == 4
    # Monthly returns of the cleaned table end with July 2026 (August is partial).
    assert to_returns(cleaned[["SPY", "BIL"]], "monthly").index[-1] == pd.Timestamp("2026-07-31")


@pytest.mark.xfail(
    strict=True,
    reason="KMLM's unadjusted capital-gain distribution of 2022-12-28 (-3.3% on Yahoo, "
    "+1.6% at a second vendor) is 2.4 daily sigmas and does not reverse: single-source "
    "checks cannot see it; it needs a second price source",
)
def test_real_kmlm_distribution_detected(etf_prices: pd.DataFrame) -> None:
    assert check_data_quality(etf_prices).find(symbol="KMLM", date="2022-12-28")


def test_report_helpers() -> None:
    report = DataQualityReport()
    assert report.ok and len(report) == 0 and report.summary() == "no data problems found"
    assert report.to_frame().empty


# ------------------------------------------------------------------------ exposure panel
def test_real_exposure_panel(shared_data: Path) -> None:
    panel = load_exposure_panel(shared_data / "exposure_monthly_returns.csv")
    assert panel.columns.tolist() == [
        "CASH_TBILL", "US_EQUITY", "US_SMALL", "INTL_DEV", "EM_EQUITY",
        "UST_10Y", "UST_LONG", "GOLD", "COMMODITIES", "MANAGED_FUT",
    ]  # fmt: skip
    assert panel.index[0] == pd.Timestamp("1926-07-31") and panel.index.name == "Date"
    assert (panel.index == panel.index + pd.offsets.MonthEnd(0)).all()
    assert panel["INTL_DEV"].first_valid_index() == pd.Timestamp("1990-07-31")
    assert panel.abs().max().max() < 1.0


def test_exposure_panel_errors(tmp_path: Path) -> None:
    path = tmp_path / "panel.csv"
    path.write_text(",US_EQUITY\n2020-01-31,0.01\n2020-01-15,0.02\n")
    with pytest.raises(DataError, match="2020-01") as info:
        load_exposure_panel(path)
    assert info.value.row == 3
    path.write_text(",US_EQUITY\n2020-01-31,0.01\n2020-02-29,-1.5\n")
    with pytest.raises(DataError, match="-100%") as info:
        load_exposure_panel(path)
    assert (info.value.row, info.value.column) == (3, "US_EQUITY")


# ----------------------------------------------------------------------------- fund model
def test_synthesize_2x_fund_by_hand() -> None:
    fund = FundDefinition("SSO", exposures={"US_EQUITY": 200.0}, expense_ratio=0.89,
                          financing_spread=0.6)  # fmt: skip
    index = pd.to_datetime(["2024-01-31", "2024-02-29"])
    exposures = pd.DataFrame({"US_EQUITY": [0.05, -0.02]}, index=index)
    cash = pd.Series([0.004, 0.0045], index=index)
    got = synthesize_fund_returns(fund, exposures, cash, 12)
    # r = c + 2 (r_eq - c) - (0.89% + 0.6% x (2 - 1)) / 12
    cost = (0.0089 + 0.006) / 12
    assert got.iloc[0] == pytest.approx(0.004 + 2 * (0.05 - 0.004) - cost, abs=1e-15)
    assert got.iloc[1] == pytest.approx(0.0045 + 2 * (-0.02 - 0.0045) - cost, abs=1e-15)
    assert got.name == "SSO"


def test_synthesize_stacked_fund_with_cash_sleeve_and_gaps() -> None:
    fund = FundDefinition(
        "MIX", exposures={"US_EQUITY": 90.0, "UST_10Y": 60.0, "CASH_TBILL": 10.0},
        expense_ratio=0.2,
    )  # fmt: skip
    index = pd.date_range("2024-01-31", periods=3, freq="ME")
    exposures = pd.DataFrame(
        {"US_EQUITY": [0.03, np.nan, 0.01], "UST_10Y": [0.01, 0.0, -0.02], "GOLD": 0.5},
        index=index,
    )
    cash = pd.Series([0.004, 0.004, np.nan], index=index)
    got = synthesize_fund_returns(fund, exposures, cash, 12)
    expected0 = 0.004 + 0.9 * (0.03 - 0.004) + 0.6 * (0.01 - 0.004) - 0.002 / 12
    assert got.iloc[0] == pytest.approx(expected0, abs=1e-15)
    assert np.isnan(got.iloc[1]) and np.isnan(got.iloc[2])  # equity missing; cash missing


def test_synthesize_missing_exposure_series_names_the_type() -> None:
    fund = FundDefinition("RSST", exposures={"US_EQUITY": 100.0, "MANAGED_FUT": 100.0})
    index = pd.date_range("2024-01-31", periods=2, freq="ME")
    with pytest.raises(DataError, match="MANAGED_FUT") as info:
        synthesize_fund_returns(
            fund, pd.DataFrame({"US_EQUITY": [0.0, 0.0]}, index=index), pd.Series(0.0, index), 12
        )
    assert info.value.column == "MANAGED_FUT"


def test_synthesized_fund_matches_panel_identity(shared_data: Path) -> None:
    """A 100% US equity fund with no costs reproduces the panel's US_EQUITY column."""
    panel = load_exposure_panel(shared_data / "exposure_monthly_returns.csv")
    fund = FundDefinition("EQ", exposures={"US_EQUITY": 100.0})
    got = synthesize_fund_returns(fund, panel, panel["CASH_TBILL"], 12)
    pd.testing.assert_series_equal(got, panel["US_EQUITY"], check_names=False, atol=1e-15)


def test_splice_history() -> None:
    index = pd.date_range("2020-01-31", periods=6, freq="ME")
    synthetic = pd.Series([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], index=index)
    real = pd.Series([np.nan, np.nan, np.nan, 1.0, np.nan, 3.0], index=index, name="F")
    spliced, switch = splice_history(real, synthetic)
    assert switch == index[3]
    assert spliced.iloc[:3].tolist() == [0.1, 0.2, 0.3]
    assert spliced.iloc[3] == 1.0 and np.isnan(spliced.iloc[4]) and spliced.iloc[5] == 3.0
    assert spliced.name == "F"
    full = pd.Series(1.0, index=index)
    same, none = splice_history(full, synthetic)
    assert none is None and same.tolist() == full.tolist()
    with pytest.raises(DataError, match="no real returns"):
        splice_history(pd.Series(np.nan, index=index), synthetic)


def _factor_data(n: int = 300, seed: int = 1) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2015-01-02", periods=n, freq="W-FRI")
    cash = pd.Series(rng.uniform(0, 0.001, n), index=index)
    proxies = pd.DataFrame(
        rng.multivariate_normal([0.002, 0.0005], [[4e-4, -2e-5], [-2e-5, 1e-4]], n),
        index=index,
        columns=["US_EQUITY", "UST_10Y"],
    ).add(cash, axis=0)
    return proxies, cash


def test_regression_recovers_known_betas_exactly_without_noise() -> None:
    proxies, cash = _factor_data()
    fund = cash + 1.0 * (proxies["US_EQUITY"] - cash) + 0.8 * (proxies["UST_10Y"] - cash) - 1e-4
    fit = fit_fund_exposures(fund, proxies, cash, "weekly", "RSSB")
    assert fit.betas == pytest.approx({"US_EQUITY": 1.0, "UST_10Y": 0.8}, abs=1e-10)
    assert fit.alpha_annual == pytest.approx(-1e-4 * 52, abs=1e-10)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.n_obs == 300 and fit.frequency == "weekly" and fit.symbol == "RSSB"
    assert fit.start == proxies.index[0] and fit.end == proxies.index[-1]


def test_regression_with_noise_matches_closed_form() -> None:
    proxies, cash = _factor_data(seed=2)
    rng = np.random.default_rng(5)
    noise = pd.Series(rng.normal(0, 0.003, len(cash)), index=cash.index)
    fund = cash + 0.9 * (proxies["US_EQUITY"] - cash) + 0.6 * (proxies["UST_10Y"] - cash) + noise
    fund.iloc[:10] = np.nan  # only the overlap is used
    fit = fit_fund_exposures(fund, proxies, cash, "weekly")
    # Closed form: normal equations on the same overlap.
    y = (fund - cash).iloc[10:].to_numpy()
    x = proxies.sub(cash, axis=0).iloc[10:].to_numpy()
    a = np.column_stack([np.ones(len(y)), x])
    coef = np.linalg.solve(a.T @ a, a.T @ y)
    assert [fit.betas["US_EQUITY"], fit.betas["UST_10Y"]] == pytest.approx(coef[1:], rel=1e-9)
    resid = y - a @ coef
    assert fit.residual_vol_annual == pytest.approx(
        np.sqrt(resid @ resid / (len(y) - 3) * 52), rel=1e-9
    )
    assert fit.n_obs == len(y)
    for code, true in (("US_EQUITY", 0.9), ("UST_10Y", 0.6)):
        assert abs(fit.betas[code] - true) < 4 * fit.beta_stderr[code]


def test_single_regressor_matches_scipy_linregress() -> None:
    proxies, cash = _factor_data(seed=4)
    rng = np.random.default_rng(9)
    fund = cash + 2.0 * (proxies["US_EQUITY"] - cash) + rng.normal(0, 0.01, len(cash))
    fit = fit_fund_exposures(fund, proxies[["US_EQUITY"]], cash, "weekly")
    ref = stats.linregress(proxies["US_EQUITY"] - cash, fund - cash)
    assert fit.betas["US_EQUITY"] == pytest.approx(ref.slope, rel=1e-10)
    assert fit.alpha_annual == pytest.approx(ref.intercept * 52, rel=1e-8)
    assert fit.r_squared == pytest.approx(ref.rvalue**2, rel=1e-10)
    assert fit.beta_stderr["US_EQUITY"] == pytest.approx(ref.stderr, rel=1e-8)


@settings(max_examples=30, deadline=None)
@given(
    b1=st.floats(-3, 3), b2=st.floats(-3, 3), alpha=st.floats(-0.001, 0.001),
    seed=st.integers(0, 1000),
)  # fmt: skip
def test_regression_recovers_any_betas(b1: float, b2: float, alpha: float, seed: int) -> None:
    proxies, cash = _factor_data(n=60, seed=seed)
    fund = cash + b1 * (proxies["US_EQUITY"] - cash) + b2 * (proxies["UST_10Y"] - cash) + alpha
    fit = fit_fund_exposures(fund, proxies, cash, "monthly")
    assert fit.betas["US_EQUITY"] == pytest.approx(b1, abs=1e-8)
    assert fit.betas["UST_10Y"] == pytest.approx(b2, abs=1e-8)
    assert fit.alpha_annual == pytest.approx(alpha * 12, abs=1e-8)


def test_regression_errors() -> None:
    proxies, cash = _factor_data(n=25)
    with pytest.raises(DataError, match="only 25"):
        fit_fund_exposures(proxies["US_EQUITY"], proxies, cash)
    proxies, cash = _factor_data(n=100)
    twin = proxies.assign(COPY=proxies["US_EQUITY"])
    with pytest.raises(DataError, match="collinear"):
        fit_fund_exposures(proxies["US_EQUITY"] * 1.1, twin, cash)
    # A cash column among the proxies is ignored (its excess return is zero).
    with_cash = proxies.assign(CASH_TBILL=cash)
    fit = fit_fund_exposures(proxies["US_EQUITY"], with_cash, cash)
    assert set(fit.betas) == {"US_EQUITY", "UST_10Y"}


def test_real_rssb_is_global_equity_plus_treasuries(etf_prices: pd.DataFrame) -> None:
    cleaned, _ = clean_prices(etf_prices[["RSSB", "VT", "IEF", "BIL"]])
    weekly = to_returns(cleaned, "weekly")
    fit = fit_fund_exposures(weekly["RSSB"], weekly[["VT", "IEF"]], weekly["BIL"], "weekly")
    assert fit.r_squared > 0.95
    assert fit.betas["VT"] == pytest.approx(1.0, abs=0.1)
    assert fit.betas["IEF"] == pytest.approx(0.8, abs=0.1)
    assert fit.n_obs > 120 and fit.start.year == 2023


# -------------------------------------------------------------------------------- proxies
def test_proxy_returns_from_price_table() -> None:
    fund_map = FundExposureMap()
    prices = _random_prices(300, 3)
    prices.columns = ["VTI", "IEF", "BIL"]
    got = proxy_returns(prices, fund_map, ["US_EQUITY", "UST_10Y", "CASH_TBILL"], "weekly")
    assert got.columns.tolist() == ["US_EQUITY", "UST_10Y", "CASH_TBILL"]
    pd.testing.assert_series_equal(
        got["UST_10Y"], to_returns(prices, "weekly")["IEF"], check_names=False
    )
    with pytest.raises(DataError, match="CARRY") as info:
        proxy_returns(prices, fund_map, ["US_EQUITY", "CARRY"], "weekly")
    assert info.value.column == "CARRY"
    with pytest.raises(DataError, match="GLD"):
        proxy_returns(prices, fund_map, ["GOLD"], "weekly")
    with pytest.raises(DataError, match="unknown"):
        proxy_returns(prices, fund_map, ["CRYPTO"], "weekly")


# ----------------------------------------------------------------------- map disagreements
def _fit(betas: dict[str, float], stderr: float = 0.05) -> ExposureFit:
    t = pd.Timestamp("2024-01-05")
    return ExposureFit("F", betas, 0.0, 0.9, 0.02, 0.02, 100, t, t, "weekly",
                       {k: stderr for k in betas})  # fmt: skip


def test_map_disagreements_tolerance_and_loose_types() -> None:
    fund = FundDefinition("NTSX", exposures={"US_EQUITY": 90.0, "UST_10Y": 60.0})
    assert map_disagreements(fund, _fit({"US_EQUITY": 0.92, "UST_10Y": 0.46})).ok
    check = map_disagreements(fund, _fit({"US_EQUITY": 0.92, "UST_10Y": 0.2}))
    assert [d.code for d in check.disagreements] == ["UST_10Y"]
    assert check.disagreements[0].tolerance == pytest.approx(0.25)
    assert "UST_10Y" in check.describe()
    assert default_tolerance(3.0) == pytest.approx(0.75)
    assert map_disagreements(fund, _fit({"US_EQUITY": 0.92, "UST_10Y": 0.2}), 0.5).ok
    # A fund carrying a loose type: reported, not failed.
    stacked = FundDefinition("RSBY", exposures={"UST_10Y": 100.0, "CARRY": 100.0})
    loose = map_disagreements(stacked, _fit({"UST_10Y": 1.44}), loose_types=["CARRY"])
    assert loose.ok and [d.code for d in loose.loose] == ["UST_10Y"]
    assert loose.unfitted == ["CARRY"]


def test_map_disagreements_probes_need_significance() -> None:
    fund = FundDefinition("NTSX", exposures={"US_EQUITY": 100.0})
    fit = _fit({"US_EQUITY": 0.9})
    missing = map_disagreements(fund, fit, probes={"UST_10Y": (0.46, 0.02)})
    assert [(d.code, d.probe) for d in missing.disagreements] == [("UST_10Y", True)]
    assert map_disagreements(fund, fit, probes={"UST_10Y": (0.46, 0.3)}).ok  # t = 1.5
    assert map_disagreements(fund, fit, probes={"UST_10Y": (0.1, 0.01)}).ok  # small


@given(
    st.text(alphabet=st.sampled_from(list(' \t,;"\u00a0\u2007x1.-')), max_size=12),
    st.sampled_from([",", ";", "\t", "|"]),
)
def test_blank_line_test_is_the_plain_definition(line, delim):
    """The fast blank-line test agrees with its definition: only spaces, delimiters, quotes."""
    from core.market_data import _is_blank

    assert _is_blank(line, delim) == (not line.replace(delim, "").replace('"', "").strip())


def test_wide_file_with_quoted_and_unquoted_rows_reads_the_same(tmp_path):
    """Rows are split only up to the date cell unless quoted; both kinds give one table."""
    rows = ["Date,A,B,C", "2024-01-02,1.5,2.5,3.5", '"2024-01-03","1.6","2.6","3.6"']
    rows += ["2024-01-04,1.7,2.7,3.7,,", "2024-01-05,1.8,2.8,3.8"]
    path = tmp_path / "p.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    prices = read_prices(path)
    assert list(prices.columns) == ["A", "B", "C"]
    np.testing.assert_allclose(prices["B"].to_numpy(), [2.5, 2.6, 2.7, 2.8])
    path.write_text("\n".join([*rows, "2024-01-08,1,2,3,4"]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="5 cells but the header names 4"):
        read_prices(path)
