"""Market assumptions: file format, validation, estimation and the fund projection."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.assumptions import (
    JUDGMENTAL_ASSUMPTIONS,
    MarketAssumptions,
    default_idiosyncratic_vol,
    estimate_assumptions_from_panel,
    nearest_correlation,
    read_exposure_panel,
)
from core.errors import DataError, StackOptWarning, ValidationError
from core.exposures import (
    BUILTIN_EXPOSURE_TYPES,
    ExposureCalculator,
    ExposureType,
    FundDefinition,
    FundExposureMap,
)
from core.resources import resource_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default() -> MarketAssumptions:
    return MarketAssumptions.default()


@pytest.fixture(scope="module")
def fund_map() -> FundExposureMap:
    return FundExposureMap.default()


def small(corr: list[list[float]], codes=("US_EQUITY", "UST_10Y", "GOLD")) -> dict[str, Any]:
    """A minimal valid document over ``codes``."""
    return {
        "format": "stackopt-market-assumptions",
        "version": 1,
        "cash_rate": 0.04,
        "exposures": {
            c: {"expected_excess_return": 0.02 * (i + 1), "volatility": 0.1 + 0.05 * i}
            for i, c in enumerate(codes)
        },
        "correlation": {"codes": list(codes), "matrix": corr},
    }


GOOD = [[1.0, -0.1, 0.05], [-0.1, 1.0, 0.2], [0.05, 0.2, 1.0]]


# ------------------------------------------------------------------------- defaults
def test_default_loads_with_every_builtin_type(default: MarketAssumptions) -> None:
    assert default.codes == list(BUILTIN_EXPOSURE_TYPES)
    assert 0.0 < default.cash_rate < 0.1
    assert default.method
    assert default.repairs == []
    for code in default.codes:
        assert default.sources[code], code
    for code in ("CARRY", "MERGER_ARB"):
        assert default.sources[code] == "judgmental assumption"
    assert default.expected_excess_returns["CASH_TBILL"] == 0.0
    # Sane magnitudes: equities above bonds, every Sharpe ratio modest.
    mu, vol = default.expected_excess_returns, default.volatilities
    assert mu["US_EQUITY"] > mu["UST_10Y"] > 0
    sharpe = default.sharpe_ratios().drop("CASH_TBILL")
    assert sharpe.between(0.1, 0.6).all()
    assert 0.12 < vol["US_EQUITY"] < 0.2 and 0.04 < vol["UST_10Y"] < 0.1


def test_default_file_is_what_the_object_writes(default: MarketAssumptions) -> None:
    assert default.to_dict() == json.loads(resource_text("market_assumptions.json"))


def test_default_correlation_is_positive_definite(default: MarketAssumptions) -> None:
    c = default.correlation.to_numpy()
    np.testing.assert_array_equal(c, c.T)
    np.testing.assert_array_equal(np.diag(c), 1.0)
    assert np.linalg.eigvalsh(c).min() > 0.05
    assert default.min_eigenvalue == pytest.approx(default.details["correlation"]["min_eigenvalue"])
    np.linalg.cholesky(default.covariance().to_numpy())  # raises if not PD


def test_json_round_trip(default: MarketAssumptions, tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    default.save_json(path)
    again = MarketAssumptions.from_json(path)
    assert again.to_dict() == default.to_dict()
    pd.testing.assert_frame_equal(again.correlation, default.correlation)
    pd.testing.assert_series_equal(again.volatilities, default.volatilities)
    assert again.cash_rate == default.cash_rate


def test_covariance_closed_form(default: MarketAssumptions) -> None:
    cov = default.covariance(["UST_10Y", "US_EQUITY"])
    assert list(cov.index) == ["UST_10Y", "US_EQUITY"]
    v, c = default.volatilities, default.correlation
    assert cov.loc["US_EQUITY", "US_EQUITY"] == pytest.approx(v["US_EQUITY"] ** 2)
    assert cov.loc["US_EQUITY", "UST_10Y"] == pytest.approx(
        v["US_EQUITY"] * v["UST_10Y"] * c.loc["US_EQUITY", "UST_10Y"]
    )
    with pytest.raises(ValidationError, match="BITCOIN"):
        default.covariance(["BITCOIN"])


# ------------------------------------------------------------------- fund projection
def test_rssb_covariance_equals_e_sigma_e_by_hand(default, fund_map) -> None:
    codes = ["US_EQUITY", "INTL_DEV", "EM_EQUITY", "UST_10Y"]
    # Columns RSSB, VT, IEF written out from the issuers' allocations, not from the map code.
    e = np.array(
        [[0.6, 0.6, 0.0], [0.3, 0.3, 0.0], [0.1, 0.1, 0.0], [1.0, 0.0, 1.0]]
    )  # fmt: skip
    vol = default.volatilities[codes].to_numpy()
    sigma = default.correlation.loc[codes, codes].to_numpy() * np.outer(vol, vol)
    expected = e.T @ sigma @ e
    got = default.fund_covariance(fund_map, ["RSSB", "VT", "IEF"], idiosyncratic_vol=0.0)
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-12, atol=1e-15)
    # Default D: 1% idiosyncratic vol per unit of risky notional (RSSB 2%, VT 1%, IEF 1%).
    with_d = default.fund_covariance(fund_map, ["RSSB", "VT", "IEF"])
    np.testing.assert_allclose(
        with_d.to_numpy(), expected + np.diag([0.02**2, 0.01**2, 0.01**2]), rtol=1e-12
    )
    # A measured value overrides the default for that fund only.
    custom = default.fund_covariance(fund_map, ["RSSB", "VT"], idiosyncratic_vol={"rssb": 0.05})
    assert custom.loc["RSSB", "RSSB"] == pytest.approx(expected[0, 0] + 0.05**2)
    assert custom.loc["VT", "VT"] == pytest.approx(expected[1, 1] + 0.01**2)


def test_sso_expected_return_is_twice_equity_minus_costs(default, fund_map) -> None:
    sso = fund_map["SSO"]
    mu = default.fund_expected_returns(fund_map, ["SSO", "VOO", "BIL"])
    costs = sso.expense_ratio / 100 + sso.financing_spread / 100 * 1.0
    assert mu["SSO"] == pytest.approx(2 * default.expected_excess_returns["US_EQUITY"] - costs)
    assert mu["VOO"] == pytest.approx(default.expected_excess_returns["US_EQUITY"] - 0.0003)
    assert mu["BIL"] == pytest.approx(-fund_map["BIL"].expense_ratio / 100)
    total = default.fund_expected_returns(fund_map, ["SSO"], include_cash_rate=True)
    assert total["SSO"] == pytest.approx(mu["SSO"] + default.cash_rate)


def test_fund_returns_match_an_independent_sum_over_the_map(default, fund_map) -> None:
    mu = default.fund_expected_returns(fund_map, fund_map.symbols)
    for f in fund_map:
        by_hand = (
            sum(v / 100 * default.expected_excess_returns[k] for k, v in f.exposures.items())
            - (f.expense_ratio + f.financing_spread * max(f.notional_pct / 100 - 1, 0)) / 100
        )
        assert mu[f.symbol] == pytest.approx(by_hand, abs=1e-14), f.symbol


def test_sixty_forty_risk_is_mostly_equity(default, fund_map) -> None:
    calc = ExposureCalculator(fund_map, ["VOO", "IEF"])
    x = calc.portfolio_exposures([0.6, 0.4])
    sigma = default.covariance(x.index).to_numpy()
    xv = x.to_numpy()
    contrib = xv * (sigma @ xv) / (xv @ sigma @ xv)
    assert contrib.sum() == pytest.approx(1.0)
    assert contrib[list(x.index).index("US_EQUITY")] > 0.8
    # NTSX is a 60/40 held at 1.5x: same exposure risk as 1.5 x (60/40).
    ntsx = default.fund_covariance(fund_map, ["NTSX"], idiosyncratic_vol=0.0).iloc[0, 0]
    assert ntsx == pytest.approx(1.5**2 * (xv @ sigma @ xv))


def test_identical_exposures_correlate_perfectly_only_without_d(default, fund_map) -> None:
    pure = default.fund_covariance(fund_map, ["SPY", "VOO", "SSO"], idiosyncratic_vol=0.0)
    corr = pure.to_numpy() / np.sqrt(np.outer(np.diag(pure), np.diag(pure)))
    assert corr[0, 1] == pytest.approx(1.0) and corr[0, 2] == pytest.approx(1.0)
    cov = default.fund_covariance(fund_map, ["SPY", "VOO", "SSO"])
    corr = cov.to_numpy() / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert 0.99 < corr[0, 1] < 1.0


def test_whole_default_map_projects_to_a_positive_definite_matrix(default, fund_map) -> None:
    cov = default.fund_covariance(fund_map, fund_map.symbols)
    np.testing.assert_allclose(cov.to_numpy(), cov.to_numpy().T)
    assert np.linalg.eigvalsh(cov.to_numpy()).min() > 0
    assert default_idiosyncratic_vol(fund_map["UPRO"]) == pytest.approx(0.03)
    assert default_idiosyncratic_vol(fund_map["BIL"]) == 0.001


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=6, max_size=6))
def test_portfolio_variance_equals_exposure_variance(weights: list[float]) -> None:
    """w' (E' S E) w == x' S x with x = E w, for random (long/short) weights."""
    a = MarketAssumptions.default()
    fmap = FundExposureMap.default()
    symbols = ["RSSB", "NTSX", "UPRO", "TMF", "GLD", "RSST"]
    cov = a.fund_covariance(fmap, symbols, idiosyncratic_vol=0.0).to_numpy()
    x = ExposureCalculator(fmap, symbols).portfolio_exposures(weights)
    w = np.asarray(weights)
    assert w @ cov @ w == pytest.approx(x @ a.covariance(x.index).to_numpy() @ x, abs=1e-12)


def test_types_missing_from_assumptions_are_named(default) -> None:
    fmap = FundExposureMap(exposure_types=[ExposureType.from_dict({"code": "BITCOIN"})])
    fmap.add_fund(FundDefinition("IBIT", exposures={"BITCOIN": 100}, source="test"))
    fmap.add_fund(FundDefinition("SPY", exposures={"US_EQUITY": 100}, source="test"))
    with pytest.raises(ValidationError, match=r"BITCOIN.*IBIT") as err:
        default.fund_expected_returns(fmap, ["SPY", "IBIT"])
    assert err.value.field == "exposure_types"
    with pytest.raises(ValidationError, match="BITCOIN"):
        default.fund_covariance(fmap, ["IBIT"])
    # Added as a user type, the projection works and the original is unchanged.
    extended = default.with_type("bitcoin", 0.10, 0.60, {"US_EQUITY": 0.3, "GOLD": 0.1})
    assert "BITCOIN" not in default and "BITCOIN" in extended
    mu = extended.fund_expected_returns(fmap, ["IBIT"])
    assert mu["IBIT"] == pytest.approx(0.10)
    cov = extended.fund_covariance(fmap, ["SPY", "IBIT"], idiosyncratic_vol=0.0)
    assert cov.loc["SPY", "IBIT"] == pytest.approx(0.3 * 0.6 * default.volatilities["US_EQUITY"])
    # Custom types survive the file round trip without being declared again.
    again = MarketAssumptions.from_dict(json.loads(extended.to_json()))
    assert again.to_dict() == extended.to_dict()
    assert again.sources["BITCOIN"] == "user assumption"


def test_with_type_replaces_an_existing_type(default) -> None:
    changed = default.with_type("GOLD", 0.01, 0.2, {"US_EQUITY": 0.0})
    assert changed.expected_excess_returns["GOLD"] == 0.01
    assert changed.correlation.loc["GOLD", "US_EQUITY"] == 0.0
    # Correlations not given keep their values.
    assert changed.correlation.loc["GOLD", "UST_10Y"] == default.correlation.loc["GOLD", "UST_10Y"]
    assert changed.codes == default.codes
    with pytest.raises(ValidationError, match="NOPE"):
        default.with_type("GOLD", 0.01, 0.2, {"NOPE": 0.1})


def test_with_type_refuses_contradictory_correlations(default) -> None:
    # Near +1 with equities and with Treasuries, which are nearly uncorrelated: impossible.
    with pytest.raises(ValidationError, match="contradict"):
        default.with_type("X", 0.05, 0.1, {"US_EQUITY": 0.95, "UST_10Y": 0.95})


# ------------------------------------------------------------------------ validation
def test_small_document_loads() -> None:
    a = MarketAssumptions.from_dict(small(GOOD))
    assert a.codes == ["US_EQUITY", "UST_10Y", "GOLD"]
    assert a.repairs == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["exposures"].update({"FOO": d["exposures"]["GOLD"]}), "exposures.FOO"),
        (lambda d: d["exposures"]["GOLD"].update(volatility=float("nan")), "exposures.GOLD.volatility"),
        (lambda d: d["exposures"]["GOLD"].update(volatility="high"), "exposures.GOLD.volatility"),
        (lambda d: d["exposures"]["GOLD"].update(volatility=-0.1), "exposures.GOLD.volatility"),
        (lambda d: d["exposures"]["GOLD"].update(expected_excess_return=6.0),
         "exposures.GOLD.expected_excess_return"),
        (lambda d: d["exposures"]["GOLD"].pop("volatility"), "exposures.GOLD.volatility"),
        (lambda d: d.update(cash_rate=4.5), "cash_rate"),
        (lambda d: d.update(cash_rate=float("inf")), "cash_rate"),
        (lambda d: d.pop("cash_rate"), "cash_rate"),
        (lambda d: d.update(format="stackopt-fund-map"), "format"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d["correlation"].update(codes=["US_EQUITY", "UST_10Y", "UST_LONG"]),
         "correlation.codes"),
        (lambda d: d["correlation"]["matrix"].pop(), "correlation.matrix"),
        (lambda d: d["correlation"]["matrix"][0].__setitem__(1, float("nan")),
         "correlation.US_EQUITY.UST_10Y"),
        (lambda d: d["correlation"]["matrix"][0].__setitem__(2, 1.5), "correlation.US_EQUITY.GOLD"),
        (lambda d: d["correlation"]["matrix"][1].__setitem__(1, 0.5), "correlation.UST_10Y.UST_10Y"),
        (lambda d: d["correlation"]["matrix"][0].__setitem__(1, 0.4), "correlation.US_EQUITY.UST_10Y"),
    ],
)  # fmt: skip
def test_bad_documents_are_refused_naming_the_field(mutate, field: str) -> None:
    doc = small([row[:] for row in GOOD])
    mutate(doc)
    with pytest.raises(ValidationError) as err:
        MarketAssumptions.from_dict(doc)
    assert err.value.field == field


def test_mild_asymmetry_and_diagonal_are_repaired_with_a_warning() -> None:
    corr = [row[:] for row in GOOD]
    corr[0][1] = -0.11  # vs -0.1 below the diagonal
    corr[2][2] = 1.001
    with pytest.warns(StackOptWarning, match="symmetric"):
        a = MarketAssumptions.from_dict(small(corr))
    c = a.correlation.to_numpy()
    np.testing.assert_array_equal(c, c.T)
    np.testing.assert_array_equal(np.diag(c), 1.0)
    assert c[0, 1] == pytest.approx(-0.105)
    assert a.details["correlation"]["repaired_on_load"]


def test_slightly_indefinite_matrix_is_projected_with_a_warning() -> None:
    # 0.9/0.9 with a pair at 0.55 is slightly impossible (smallest eigenvalue about -0.02).
    corr = [[1.0, 0.9, 0.9], [0.9, 1.0, 0.55], [0.9, 0.55, 1.0]]
    assert -0.05 < np.linalg.eigvalsh(np.array(corr)).min() < 0
    with pytest.warns(StackOptWarning, match="nearest correlation"):
        a = MarketAssumptions.from_dict(small(corr))
    assert a.min_eigenvalue > 0
    assert np.abs(a.correlation.to_numpy() - np.array(corr)).max() < 0.05
    assert a.details["correlation"]["min_eigenvalue_before_repair"] < 0


def test_matrix_that_is_not_a_correlation_is_refused() -> None:
    corr = [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]
    with pytest.raises(ValidationError, match="contradict"):
        MarketAssumptions.from_dict(small(corr))


def test_bad_json_file_is_a_data_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        MarketAssumptions.from_json(bad)
    with pytest.raises(DataError, match="not found"):
        MarketAssumptions.from_json(tmp_path / "missing.json")


# ---------------------------------------------------------------- nearest correlation
@settings(max_examples=40, deadline=None)
@given(st.integers(2, 7), st.integers(0, 2**32 - 1))
def test_nearest_correlation_is_valid_and_no_farther_than_clipping(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, size=(n, n))
    a = (a + a.T) / 2
    np.fill_diagonal(a, 1.0)
    x = nearest_correlation(a)
    np.testing.assert_allclose(x, x.T, atol=0)
    np.testing.assert_allclose(np.diag(x), 1.0, atol=1e-12)
    assert np.linalg.eigvalsh(x).min() > 0
    # Independent feasible point: clip eigenvalues, rescale to unit diagonal.
    w, v = np.linalg.eigh(a)
    clip = (v * np.maximum(w, 1e-6)) @ v.T
    d = 1 / np.sqrt(np.diag(clip))
    clip = clip * np.outer(d, d)
    assert np.linalg.norm(x - a) <= np.linalg.norm(clip - a) + 1e-6
    if np.linalg.eigvalsh(a).min() > 1e-3:  # already valid: unchanged
        np.testing.assert_allclose(x, a, atol=1e-9)


# ------------------------------------------------------------------------ estimation
def synthetic_panel(months: int = 480, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("1980-01-31", periods=months, freq="ME")
    cash = 0.003 + 0.001 * np.sin(np.arange(months) / 20)
    cov = np.array([[0.0020, -0.0001, 0.0002], [-0.0001, 0.0004, 0.0001], [0.0002, 0.0001, 0.0012]])
    shocks = rng.multivariate_normal([0.006, 0.002, 0.01], cov, size=months)
    panel = pd.DataFrame(
        {
            "CASH_TBILL": cash,
            "US_EQUITY": cash + shocks[:, 0],
            "UST_10Y": cash + shocks[:, 1],
            "MANAGED_FUT": cash + shocks[:, 2],
        },
        index=idx,
    )
    panel.iloc[:120, panel.columns.get_loc("MANAGED_FUT")] = np.nan  # starts ten years later
    return panel


def test_estimation_follows_the_documented_method() -> None:
    panel = synthetic_panel()
    a = estimate_assumptions_from_panel(panel, decimals=15)
    ex = panel[["US_EQUITY", "UST_10Y", "MANAGED_FUT"]].sub(panel["CASH_TBILL"], axis=0)
    common = ex.iloc[120:].to_numpy()
    # Volatility and correlation over the common window, computed with numpy.
    vol = common.std(axis=0, ddof=1) * np.sqrt(12)
    np.testing.assert_allclose(a.volatilities[["US_EQUITY", "UST_10Y", "MANAGED_FUT"]], vol)
    corr = np.corrcoef(common, rowvar=False)
    np.testing.assert_allclose(
        a.correlation.loc[["US_EQUITY", "UST_10Y", "MANAGED_FUT"], ["US_EQUITY", "UST_10Y", "MANAGED_FUT"]],
        corr,
        atol=1e-12,
    )  # fmt: skip
    # Means: half each series' full-history mean, half 0.25 x vol.
    hist_eq = ex["US_EQUITY"].to_numpy().mean() * 12
    assert a.expected_excess_returns["US_EQUITY"] == pytest.approx(
        0.5 * hist_eq + 0.5 * 0.25 * vol[0]
    )
    hist_mf = ex["MANAGED_FUT"].dropna().to_numpy().mean() * 12
    assert a.expected_excess_returns["MANAGED_FUT"] == pytest.approx(
        0.5 * (0.5 * (hist_mf - 0.02)) + 0.5 * 0.25 * vol[2]
    )
    assert a.details["MANAGED_FUT"]["historical_mean_excess_gross"] == pytest.approx(hist_mf)
    # Cash: last 12 months x 12; CASH_TBILL riskless apart from the small documented vol.
    assert a.cash_rate == pytest.approx(panel["CASH_TBILL"].iloc[-12:].mean() * 12)
    assert a.expected_excess_returns["CASH_TBILL"] == 0.0
    assert a.volatilities["CASH_TBILL"] == 0.005
    assert (a.correlation.loc["CASH_TBILL"].drop("CASH_TBILL") == 0).all()
    # Judgmental types come in with their numbers and label.
    for code, j in JUDGMENTAL_ASSUMPTIONS.items():
        assert a.expected_excess_returns[code] == j["expected_excess_return"]
        assert a.volatilities[code] == j["volatility"]
        assert a.sources[code] == "judgmental assumption"
    assert a.correlation.loc["MERGER_ARB", "US_EQUITY"] == 0.45
    assert a.details["correlation"]["window"] == "1990-01..2019-12"
    assert a.min_eigenvalue > 0


def test_pairwise_window_is_repaired_to_a_correlation_matrix() -> None:
    """Pairwise-complete correlations can contradict each other; the estimator projects them."""
    n = 240
    rng = np.random.default_rng(3)
    idx = pd.date_range("2000-01-31", periods=n, freq="ME")
    base = rng.normal(0, 0.03, n)
    noise = rng.normal(0, 0.003, (n, 2))
    eq = base + noise[:, 0]
    # First half: bonds move with equities; second half: against them.
    ust = np.where(np.arange(n) < n // 2, base, -base) + noise[:, 1]
    gold = np.where(np.arange(n) < n // 2, base, np.nan)  # only the first half
    panel = pd.DataFrame(
        {"CASH_TBILL": 0.002, "US_EQUITY": eq, "UST_10Y": ust, "GOLD": gold}, index=idx
    )
    panel.iloc[n // 2 :, panel.columns.get_loc("GOLD")] = np.nan
    raw = panel.drop(columns="CASH_TBILL").sub(0.002).corr()
    assert np.linalg.eigvalsh(raw.to_numpy()).min() < 0  # the pairwise matrix is impossible
    a = estimate_assumptions_from_panel(panel, cov_start="2000-01")
    assert a.details["correlation"]["repaired"] is True
    assert a.details["correlation"]["min_eigenvalue_before_repair"] < 0
    assert a.min_eigenvalue > 0
    assert "pairwise" in a.details["correlation"]["window_rule"]


def test_estimation_rejects_bad_panels() -> None:
    panel = synthetic_panel()
    with pytest.raises(DataError, match="CASH_TBILL"):
        estimate_assumptions_from_panel(panel.drop(columns="CASH_TBILL"))
    with pytest.raises(DataError, match="unknown exposure type"):
        estimate_assumptions_from_panel(panel.rename(columns={"UST_10Y": "BONDS"}))
    gappy = panel.copy()
    gappy.iloc[200, 1] = np.nan
    with pytest.raises(DataError, match="gap"):
        estimate_assumptions_from_panel(gappy)


# ------------------------------------------------------------------------- real data
def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_assumptions", ROOT / "scripts" / "build_assumptions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_same(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-9), path
    else:
        assert a == b, path


def test_script_reproduces_the_committed_assumptions(shared_data: Path, tmp_path: Path) -> None:
    script = load_script()
    rebuilt = script.build(shared_data)
    committed = json.loads(resource_text("market_assumptions.json"))
    assert_same(rebuilt.to_dict(), committed)
    # The command line writes the same file and refreshes a marked table.
    md = tmp_path / "A.md"
    md.write_text(f"intro\n{script.TABLE_BEGIN}\nold\n{script.TABLE_END}\nend\n", encoding="utf-8")
    out = tmp_path / "m.json"
    assert script.main([str(shared_data), "--output", str(out), "--markdown", str(md)]) == 0
    assert_same(json.loads(out.read_text(encoding="utf-8")), committed)
    text = md.read_text(encoding="utf-8")
    assert "old" not in text and "| US_EQUITY |" in text and text.endswith("end\n")


def test_committed_table_matches_the_committed_numbers(default: MarketAssumptions) -> None:
    md = (ROOT / "resources" / "ASSUMPTIONS.md").read_text(encoding="utf-8")
    assert load_script().markdown_table(default) in md


def test_real_panel_reads_and_fund_estimates_are_sane(shared_data: Path, fund_map) -> None:
    panel = read_exposure_panel(shared_data / "exposure_monthly_returns.csv")
    assert set(panel.columns) <= set(BUILTIN_EXPOSURE_TYPES)
    a = MarketAssumptions.default()
    mu = a.fund_expected_returns(fund_map, fund_map.symbols)
    vol = np.sqrt(np.diag(a.fund_covariance(fund_map, fund_map.symbols)))
    vol = pd.Series(vol, index=fund_map.symbols)
    # Leverage scales risk: UPRO ~ 3x VOO, TMF ~ 3x TLT; RSSB between VT and 1.2x VT.
    assert vol["UPRO"] / vol["VOO"] == pytest.approx(3.0, rel=0.02)
    assert vol["TMF"] / vol["TLT"] == pytest.approx(3.0, rel=0.02)
    assert vol["VT"] < vol["RSSB"] < 1.2 * vol["VT"]
    # Stacking adds return: RSSB beats VT by about the Treasury premium minus costs.
    assert mu["RSSB"] - mu["VT"] == pytest.approx(
        a.expected_excess_returns["UST_10Y"] - 0.0040 + 0.0006, abs=1e-9
    )


def test_valid_edge_cases_load_silently() -> None:
    # A perfect correlation is singular but valid; float noise is fixed without a warning.
    corr = [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0 + 1e-14]]
    a = MarketAssumptions.from_dict(small(corr))
    assert a.repairs == []
    assert a.correlation.loc["US_EQUITY", "UST_10Y"] == 1.0
    assert a.correlation.loc["GOLD", "GOLD"] == 1.0
