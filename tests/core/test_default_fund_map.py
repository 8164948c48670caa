"""The built-in fund map: loads cleanly, is complete, and its exposures match real returns."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.exposures import BUILTIN_EXPOSURE_TYPES, FundExposureMap
from core.resources import resource_text


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(resource_text("default_fund_map.json"))


@pytest.fixture(scope="module")
def fund_map() -> FundExposureMap:
    return FundExposureMap.default()


def test_loads_without_validation_error_and_is_large_enough(fund_map: FundExposureMap) -> None:
    assert len(fund_map) >= 30


def test_file_is_in_the_saved_format_and_round_trips(raw: dict, fund_map: FundExposureMap) -> None:
    assert raw["format"] == FundExposureMap.FORMAT
    assert raw["version"] == FundExposureMap.VERSION
    assert raw["exposure_types"] == []
    # What the app would save is exactly what ships (no silent normalisation on load).
    assert fund_map.to_dict() == raw


def test_symbols_are_unique(raw: dict) -> None:
    symbols = [f["symbol"] for f in raw["funds"]]
    assert len(symbols) == len(set(symbols))
    assert all(s == s.strip().upper() for s in symbols)


def test_only_builtin_exposure_types(fund_map: FundExposureMap) -> None:
    used = {code for f in fund_map for code in f.exposures}
    assert used <= set(BUILTIN_EXPOSURE_TYPES)
    # Every built-in type is held by at least one default fund.
    assert used == set(BUILTIN_EXPOSURE_TYPES)


def test_every_fund_is_documented(fund_map: FundExposureMap) -> None:
    for f in fund_map:
        assert f.name, f.symbol
        assert len(f.source) > 10, f.symbol
        assert 0.0 < f.expense_ratio < 2.0, f.symbol
        assert f.inception is not None
        assert date(1990, 1, 1) < date.fromisoformat(f.inception) < date(2026, 12, 31), f.symbol


def test_no_warnings(fund_map: FundExposureMap) -> None:
    assert fund_map.warnings() == []


@pytest.mark.parametrize(
    ("symbol", "notional"),
    [
        ("RSSB", 200), ("RSST", 200), ("RSBT", 200), ("RSSY", 200), ("RSBY", 200), ("RSBA", 200),
        ("NTSX", 150), ("NTSI", 150), ("NTSE", 150), ("GDE", 180),
        ("SSO", 200), ("UPRO", 300), ("SPXL", 300), ("TMF", 300), ("UBT", 200), ("TYD", 300),
        ("UST", 200), ("SPY", 100), ("VT", 100), ("BIL", 100), ("DBMF", 100),
    ],
)  # fmt: skip
def test_published_notionals(fund_map: FundExposureMap, symbol: str, notional: float) -> None:
    assert fund_map[symbol].notional_pct == pytest.approx(notional)


def test_specific_exposures(fund_map: FundExposureMap) -> None:
    glob = {"US_EQUITY": 60.0, "INTL_DEV": 30.0, "EM_EQUITY": 10.0}
    assert fund_map["VT"].exposures == glob
    assert fund_map["RSSB"].exposures == {**glob, "UST_10Y": 100.0}
    assert fund_map["NTSX"].exposures == {"US_EQUITY": 90.0, "UST_10Y": 60.0}
    assert fund_map["RSST"].exposures == {"US_EQUITY": 100.0, "MANAGED_FUT": 100.0}
    assert fund_map["RSSY"].exposures == {"US_EQUITY": 100.0, "CARRY": 100.0}
    assert fund_map["RSBA"].exposures == {"UST_10Y": 100.0, "MERGER_ARB": 100.0}
    assert fund_map["TMF"].exposures == {"UST_LONG": 300.0}
    assert fund_map["SGOV"].exposures == {"CASH_TBILL": 100.0}


def test_financing_spreads(fund_map: FundExposureMap) -> None:
    # Swap-financed daily-reset funds pay over the bill rate; futures-based stacks do not.
    for s in ("SSO", "UPRO", "SPXL", "TMF"):
        assert 0.3 <= fund_map[s].financing_spread <= 1.0, s
    for s in ("RSSB", "RSST", "NTSX", "GDE", "RPAR", "SPY"):
        assert fund_map[s].financing_spread == 0.0, s
    # SSO: expense + spread on the one borrowed unit.
    sso = fund_map["SSO"]
    assert sso.annual_cost == pytest.approx((sso.expense_ratio + sso.financing_spread) / 100)


# --------------------------------------------------------------------------- real data
PROXY = {
    "US_EQUITY": "VTI", "US_SMALL": "IWM", "INTL_DEV": "EFA", "EM_EQUITY": "EEM",
    "UST_10Y": "IEF", "UST_LONG": "TLT", "GOLD": "GLD", "COMMODITIES": "DBC", "MANAGED_FUT": "DBMF",
}  # fmt: skip


@pytest.fixture(scope="module")
def weekly_excess(shared_data: Path) -> tuple[pd.DataFrame, pd.Series]:
    px = pd.read_csv(shared_data / "etf_daily_adjclose.csv.gz", index_col=0, parse_dates=True)
    px = px.iloc[:-1]  # the last row carries an unadjusted ex-dividend drop in the bill ETFs
    first = px.apply(lambda s: s.first_valid_index())
    weekly = px.drop(columns=["^IRX", "^TNX"]).resample("W-FRI").last()
    rets = weekly.pct_change(fill_method=None)
    return rets.sub(rets["BIL"], axis=0), first


def test_inception_dates_match_first_prices(weekly_excess, fund_map: FundExposureMap) -> None:
    _, first = weekly_excess
    for f in fund_map:
        if f.symbol in first.index:
            gap = (first[f.symbol] - pd.Timestamp(f.inception)).days
            assert 0 <= gap <= 25, (f.symbol, f.inception, first[f.symbol])


@pytest.mark.parametrize(
    "symbol",
    ["RSSB", "NTSX", "NTSI", "NTSE", "GDE", "VT", "SSO", "UPRO", "SPXL", "TMF", "UBT", "UST"],
)
def test_mapped_exposures_track_real_returns(weekly_excess, fund_map, symbol: str) -> None:
    """Gross-mistake check: E' x (proxy excess returns) moves with the fund's excess return."""
    ex, _ = weekly_excess
    fund = fund_map[symbol]
    mapped = sum(v / 100.0 * ex[PROXY[k]] for k, v in fund.exposures.items())
    both = pd.concat([ex[symbol], mapped], axis=1).dropna()
    assert len(both) > 100
    actual, model = both.iloc[:, 0], both.iloc[:, 1]
    assert actual.corr(model) > 0.97
    assert actual.std() / model.std() == pytest.approx(1.0, abs=0.1)
    beta = np.cov(actual, model)[0, 1] / model.var()
    assert beta == pytest.approx(1.0, abs=0.2)
