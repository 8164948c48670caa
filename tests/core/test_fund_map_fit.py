"""The built-in fund map against real price history (weekly, excess over BIL).

Uses the shared real-data folder (skipped when absent). Summary numbers measured here
are written to resources/fund_map_fit.json by scripts/fit_fund_map.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.exposures import FundExposureMap
from core.market_data import FundMapFit, clean_prices, fit_fund_map, read_prices
from core.resources import resource_path

DEFAULT_MAP = FundExposureMap.default()

#: Built-in funds whose map entry the price history contradicts. Each is reported to the
#: map's maintainers; strict xfail makes the test fail once the entry is fixed, so the
#: mark is removed then.
KNOWN_DISAGREEMENTS = {
    "RSSX": "the second sleeve is gold AND bitcoin but is mapped as GOLD 100: measured "
    "US_EQUITY 150% (bitcoin's equity beta lands there) and GOLD 64%, R^2 0.85 over 61 weeks",
    "UPAR": "UST_10Y 49% looks too high: measured 19% (s.e. 11%) beside UST_LONG 61%; the "
    "bond sleeves behave like long Treasuries rather than 10-year ones (RPAR, same mapping "
    "at 1.0x, passes only just: 11% vs 35%)",
}


@pytest.fixture(scope="module")
def cleaned_prices(shared_data: Path) -> pd.DataFrame:
    prices, _ = clean_prices(read_prices(shared_data / "etf_daily_adjclose.csv.gz"))
    return prices


@pytest.fixture(scope="module")
def map_fits(cleaned_prices: pd.DataFrame) -> tuple[dict[str, FundMapFit], dict[str, str]]:
    return fit_fund_map(cleaned_prices, DEFAULT_MAP, frequency="weekly", min_history_years=1.0)


def test_rssb_fit_is_tight(map_fits: tuple[dict[str, FundMapFit], dict[str, str]]) -> None:
    fits, _ = map_fits
    rssb = fits["RSSB"]
    assert rssb.fit.r_squared > 0.95
    assert not rssb.loose_proxy
    equity = sum(rssb.fit.betas[c] for c in ("US_EQUITY", "INTL_DEV", "EM_EQUITY"))
    assert equity == pytest.approx(1.0, abs=0.1)


def test_ntsx_equity_beta(map_fits: tuple[dict[str, FundMapFit], dict[str, str]]) -> None:
    fits, _ = map_fits
    assert fits["NTSX"].fit.betas["US_EQUITY"] == pytest.approx(0.90, abs=0.15)
    assert fits["NTSX"].fit.r_squared > 0.95


def test_wrong_map_is_detected(cleaned_prices: pd.DataFrame) -> None:
    """NTSX mapped as 100% US equity and nothing else: the missing Treasury sleeve shows."""
    wrong = DEFAULT_MAP.copy()
    wrong.set_fund(DEFAULT_MAP["NTSX"].copy(exposures={"US_EQUITY": 100.0}))
    fits, _ = fit_fund_map(cleaned_prices, wrong, symbols=["NTSX"])
    check = fits["NTSX"].check()
    assert not check.ok
    missing = {d.code: d for d in check.disagreements}
    assert "UST_10Y" in missing and missing["UST_10Y"].probe
    assert missing["UST_10Y"].measured == pytest.approx(0.46, abs=0.1)


def test_cash_and_unpriced_funds_are_skipped(
    map_fits: tuple[dict[str, FundMapFit], dict[str, str]],
) -> None:
    fits, skipped = map_fits
    assert "cash fund" in skipped["BIL"]
    assert len(fits) >= 25
    assert set(fits) | set(skipped) == set(DEFAULT_MAP.symbols)


def test_funds_without_good_proxies_are_loose(
    map_fits: tuple[dict[str, FundMapFit], dict[str, str]],
) -> None:
    fits, _ = map_fits
    assert fits["RSBY"].loose_proxy and fits["RSBY"].unfitted == ["CARRY"]
    assert fits["RSBA"].loose_proxy and "MERGER_ARB" in fits["RSBA"].loose_types
    # Reported, never failed.
    assert fits["RSBY"].check().ok and fits["RSBY"].check().loose


def _builtin_params() -> list[object]:
    return [
        pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DISAGREEMENTS[s]))
        if s in KNOWN_DISAGREEMENTS
        else s
        for s in DEFAULT_MAP.symbols
    ]


@pytest.mark.parametrize("symbol", _builtin_params())
def test_builtin_fund_agrees_with_history(
    symbol: str, map_fits: tuple[dict[str, FundMapFit], dict[str, str]]
) -> None:
    fits, skipped = map_fits
    if symbol in skipped:
        pytest.skip(f"{symbol}: {skipped[symbol]}")
    result = fits[symbol]
    if result.loose_proxy:
        pytest.skip(f"{symbol} carries loosely proxied types {result.loose_types}: reported only")
    check = result.check()
    assert check.ok, check.describe()


def test_written_fit_file_names_its_source() -> None:
    path = resource_path("fund_map_fit.json")
    if not path.exists():
        pytest.skip("resources/fund_map_fit.json not generated yet (scripts/fit_fund_map.py)")
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["source"] == "Yahoo Finance adjusted closes, weekly returns in excess of BIL"
    assert "generated" in doc and "RSSB" in doc["funds"]
    rssb = doc["funds"]["RSSB"]
    assert set(rssb) >= {"published", "betas", "r_squared", "tracking_error_annual",
                         "alpha_annual", "n_obs", "start", "end", "frequency", "loose_proxy"}  # fmt: skip
    assert rssb["r_squared"] > 0.95
    # Summary statistics only: no machine paths, no return series.
    machine_root = str(path.resolve().parents[2])
    assert machine_root not in text and str(Path.home()) not in text
