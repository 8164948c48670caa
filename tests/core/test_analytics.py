"""PortfolioAnalytics against closed forms, finite differences, brute force and PyPortfolioOpt."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.analytics import RESIDUAL_LABEL, PortfolioAnalytics
from core.errors import DataError, ValidationError
from core.exposures import ExposureCalculator, FundDefinition, FundExposureMap


def two_assets(s1=0.16, s2=0.06, rho=0.0, mu=(0.08, 0.04), rf=0.02) -> PortfolioAnalytics:
    cov = np.array([[s1 * s1, rho * s1 * s2], [rho * s1 * s2, s2 * s2]])
    names = ["EQ", "BD"]
    return PortfolioAnalytics(
        pd.Series(mu, index=names), pd.DataFrame(cov, index=names, columns=names), risk_free_rate=rf
    )


def test_sixty_forty_is_about_ninety_four_percent_equity_risk():
    a = two_assets()
    w = pd.Series({"EQ": 0.6, "BD": 0.4})
    vol = math.sqrt(0.6**2 * 0.16**2 + 0.4**2 * 0.06**2)
    assert a.volatility(w) == pytest.approx(vol)
    pct = a.risk_contributions_pct(w)
    # 0.6^2 0.16^2 / (0.6^2 0.16^2 + 0.4^2 0.06^2) = 0.009216 / 0.009792
    assert pct["EQ"] == pytest.approx(0.009216 / 0.009792)
    assert pct["EQ"] == pytest.approx(0.941, abs=1e-3)
    assert pct.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("rho", [-0.5, 0.0, 0.3, 0.9])
def test_two_asset_closed_forms(rho):
    s1, s2, w1, w2 = 0.20, 0.10, 0.7, 0.5
    a = two_assets(s1, s2, rho, mu=(0.09, 0.05), rf=0.03)
    w = np.array([w1, w2])
    var = w1**2 * s1**2 + w2**2 * s2**2 + 2 * w1 * w2 * rho * s1 * s2
    vol = math.sqrt(var)
    assert a.volatility(w) == pytest.approx(vol)
    rc = a.risk_contributions(w)
    assert rc["EQ"] == pytest.approx((w1**2 * s1**2 + w1 * w2 * rho * s1 * s2) / vol)
    assert rc["BD"] == pytest.approx((w2**2 * s2**2 + w1 * w2 * rho * s1 * s2) / vol)
    # sum(w) = 1.2: the 0.2 borrowed pays the risk-free rate.
    er = w1 * 0.09 + w2 * 0.05 - 0.2 * 0.03
    assert a.expected_return(w) == pytest.approx(er)
    assert a.sharpe_ratio(w) == pytest.approx((er - 0.03) / vol)
    assert a.diversification_ratio(w) == pytest.approx((w1 * s1 + w2 * s2) / vol)


def test_cash_earns_the_risk_free_rate_with_zero_risk():
    a = two_assets(rf=0.04)
    implied = pd.Series({"EQ": 0.5})  # BD missing = 0; cash implied 0.5
    explicit = pd.Series({"EQ": 0.5, "CASH": 0.5})
    assert a.expected_return(implied) == pytest.approx(0.5 * 0.08 + 0.5 * 0.04)
    assert a.expected_return(explicit) == pytest.approx(a.expected_return(implied))
    assert a.expected_return(np.array([0.5, 0.0]), cash=0.5) == pytest.approx(0.06)
    assert a.volatility(explicit) == pytest.approx(0.08)
    assert a.risk_contributions(explicit).to_dict() == pytest.approx({"EQ": 0.08, "BD": 0.0})
    # Excess return over volatility is unchanged by cash.
    assert a.sharpe_ratio(explicit) == pytest.approx((0.08 - 0.04) / 0.16)
    all_cash = pd.Series({"CASH": 1.0})
    assert a.expected_return(all_cash) == pytest.approx(0.04)
    assert a.volatility(all_cash) == 0.0
    assert math.isnan(a.sharpe_ratio(all_cash))
    assert (a.risk_contributions(all_cash) == 0).all()
    assert a.risk_contributions_pct(all_cash).isna().all()


def test_weight_errors():
    a = two_assets()
    with pytest.raises(ValidationError, match="sum to"):
        a.expected_return(pd.Series({"EQ": 0.6, "CASH": 0.6}))
    with pytest.raises(ValidationError, match="XYZ"):
        a.volatility(pd.Series({"EQ": 0.6, "XYZ": 0.4}))
    with pytest.raises(ValidationError, match="expected 2 weights"):
        a.volatility([0.5, 0.3, 0.2])
    with pytest.raises(ValidationError, match="twice"):
        a.expected_return(pd.Series({"EQ": 0.5, "CASH": 0.5}), cash=0.5)
    with pytest.raises(ValidationError, match="NaN"):
        a.volatility([np.nan, 1.0])


def test_input_validation():
    names = ["A", "B"]
    good = pd.DataFrame([[0.04, 0.0], [0.0, 0.01]], index=names, columns=names)
    mu = pd.Series([0.05, 0.03], index=names)
    with pytest.raises(ValidationError, match="positive semi-definite"):
        PortfolioAnalytics(
            mu, pd.DataFrame([[0.04, 0.05], [0.05, 0.01]], index=names, columns=names)
        )
    with pytest.raises(ValidationError, match="symmetric"):
        PortfolioAnalytics(
            mu, pd.DataFrame([[0.04, 0.01], [0.0, 0.01]], index=names, columns=names)
        )
    with pytest.raises(ValidationError, match="percent"):
        PortfolioAnalytics(mu, good * 10_000)
    with pytest.raises(ValidationError, match="percent"):
        PortfolioAnalytics(mu * 100, good)
    with pytest.raises(ValidationError, match="no expected return for B"):
        PortfolioAnalytics(mu[["A"]], good)
    with pytest.raises(ValidationError, match="NaN"):
        PortfolioAnalytics(mu, good.replace(0.01, np.nan))
    with pytest.raises(ValidationError, match="risk_free_rate"):
        PortfolioAnalytics(mu, good, risk_free_rate=2.0)
    # Row order different from column order is realigned, not misread.
    shuffled = good.loc[["B", "A"], ["A", "B"]]
    a = PortfolioAnalytics(mu, shuffled)
    assert a.volatility(pd.Series({"A": 1.0})) == pytest.approx(0.2)


def test_agrees_with_pypfopt_portfolio_performance():
    pypfopt = pytest.importorskip("pypfopt")
    rng = np.random.default_rng(7)
    names = [f"F{i}" for i in range(6)]
    b = rng.normal(size=(6, 6)) * 0.1
    cov = pd.DataFrame(b @ b.T + np.eye(6) * 0.001, index=names, columns=names)
    mu = pd.Series(rng.uniform(0.02, 0.10, 6), index=names)
    w = rng.dirichlet(np.ones(6))
    a = PortfolioAnalytics(mu, cov, risk_free_rate=0.025)
    ret, vol, sharpe = pypfopt.base_optimizer.portfolio_performance(
        w, mu, cov, verbose=False, risk_free_rate=0.025
    )
    assert a.expected_return(w) == pytest.approx(ret)
    assert a.volatility(w) == pytest.approx(vol)
    assert a.sharpe_ratio(w) == pytest.approx(sharpe)


@st.composite
def psd_and_weights(draw):
    n = draw(st.integers(2, 6))
    entries = draw(st.lists(st.floats(-0.3, 0.3), min_size=n * n, max_size=n * n))
    a = np.array(entries).reshape(n, n)
    rank_cut = draw(st.integers(1, n))  # low rank matrices are PSD but singular
    cov = a[:, :rank_cut] @ a[:, :rank_cut].T
    w = np.array(draw(st.lists(st.floats(-1.0, 1.5), min_size=n, max_size=n)))
    return cov, w


@settings(max_examples=50, deadline=None)
@given(psd_and_weights())
def test_risk_contributions_sum_to_volatility_and_equal_euler_gradient(data):
    cov, w = data
    names = [f"A{i}" for i in range(len(w))]
    a = PortfolioAnalytics(
        pd.Series(0.05, index=names), pd.DataFrame(cov, index=names, columns=names)
    )
    vol = a.volatility(w)
    rc = a.risk_contributions(w)
    assert rc.sum() == pytest.approx(vol, abs=1e-12)
    assert vol == pytest.approx(math.sqrt(max(w @ cov @ w, 0.0)), abs=1e-12)
    if vol > 1e-3:
        # Independent: w_i * d sigma / d w_i by central finite differences.
        def sigma(v):
            return math.sqrt(max(v @ cov @ v, 0.0))

        h = 1e-6
        grad = np.array([(sigma(w + h * e) - sigma(w - h * e)) / (2 * h) for e in np.eye(len(w))])
        np.testing.assert_allclose(rc.to_numpy(), w * grad, atol=1e-6)
        assert a.risk_contributions_pct(w).sum() == pytest.approx(1.0)


def exposure_setup():
    fund_map = FundExposureMap(
        [
            FundDefinition("RSSB", "", {"US_EQUITY": 60, "INTL_DEV": 30, "EM_EQUITY": 10, "UST_10Y": 100}),
            FundDefinition("NTSX", "", {"US_EQUITY": 90, "UST_10Y": 60}),
            FundDefinition("GDE", "", {"US_EQUITY": 90, "GOLD": 90}),
            FundDefinition("VTI", "", {"US_EQUITY": 100}),
            FundDefinition("IEF", "", {"UST_10Y": 100}),
            FundDefinition("DBMF", "", {"MANAGED_FUT": 100}),
        ]
    )  # fmt: skip
    symbols = fund_map.symbols
    types = ["US_EQUITY", "INTL_DEV", "EM_EQUITY", "UST_10Y", "GOLD", "MANAGED_FUT", "COMMODITIES"]
    return fund_map, symbols, types


@settings(max_examples=40, deadline=None)
@given(
    factors=st.lists(st.floats(-0.2, 0.2), min_size=49, max_size=49),
    idio=st.lists(st.floats(0.0, 0.01), min_size=6, max_size=6),
    w=st.lists(st.floats(-0.5, 1.0), min_size=6, max_size=6),
)
def test_exposure_contributions_sum_to_total_for_factor_model_covariance(factors, idio, w):
    fund_map, symbols, types = exposure_setup()
    b = np.array(factors).reshape(7, 7)
    sigma_x = b @ b.T + np.eye(7) * 1e-4
    e = ExposureCalculator(fund_map, symbols, types).matrix  # (7, 6)
    d = np.diag(idio)
    sigma_f = e.T @ sigma_x @ e + d
    a = PortfolioAnalytics(
        pd.Series(0.05, index=symbols),
        pd.DataFrame(sigma_f, index=symbols, columns=symbols),
        fund_map=fund_map,
    )
    wv = np.array(w)
    sx = pd.DataFrame(sigma_x, index=types, columns=types)
    vol = a.volatility(wv)
    by_type = a.exposure_risk_contributions(wv, sx)
    assert list(by_type.index) == [*types, RESIDUAL_LABEL]
    # By type (with residual) and by fund add up to the same total volatility.
    assert by_type.sum() == pytest.approx(vol, abs=1e-12)
    assert a.risk_contributions(wv).sum() == pytest.approx(by_type.sum(), abs=1e-12)
    x = e @ wv
    if vol > 1e-9:
        assert by_type[RESIDUAL_LABEL] == pytest.approx(wv @ d @ wv / vol, abs=1e-12)
        np.testing.assert_allclose(by_type[types].to_numpy(), x * (sigma_x @ x) / vol, atol=1e-12)
    # Without the residual: contributions sum to the exposure-model volatility.
    no_resid = a.exposure_risk_contributions(wv, sx, include_residual=False)
    assert RESIDUAL_LABEL not in no_resid.index
    assert no_resid.sum() == pytest.approx(math.sqrt(max(x @ sigma_x @ x, 0.0)), abs=1e-12)


def test_exposure_contributions_sixty_forty_through_stacked_funds():
    # 50% NTSX + 50% VTI: 95% US equity, 30% UST; no residual risk.
    fund_map, symbols, _ = exposure_setup()
    types = ["US_EQUITY", "UST_10Y"]
    sigma_x = np.diag([0.16**2, 0.06**2])
    e = ExposureCalculator(fund_map, symbols, types).matrix
    cov = pd.DataFrame(e.T @ sigma_x @ e, index=symbols, columns=symbols)
    a = PortfolioAnalytics(pd.Series(0.05, index=symbols), cov, fund_map=fund_map)
    w = pd.Series({"NTSX": 0.5, "VTI": 0.5})
    rc = a.exposure_risk_contributions(w, pd.DataFrame(sigma_x, index=types, columns=types))
    eq, ust = 0.95**2 * 0.16**2, 0.30**2 * 0.06**2
    vol = math.sqrt(eq + ust)
    assert rc["US_EQUITY"] == pytest.approx(eq / vol)
    assert rc["UST_10Y"] == pytest.approx(ust / vol)
    assert rc[RESIDUAL_LABEL] == pytest.approx(0.0, abs=1e-12)
    x = a.exposures(w)
    assert x[x != 0].to_dict() == pytest.approx({"US_EQUITY": 0.95, "UST_10Y": 0.30})
    assert a.total_notional(w) == pytest.approx(0.5 * 1.5 + 0.5)


def test_exposure_contributions_need_map_and_full_coverage():
    fund_map, symbols, _ = exposure_setup()
    cov = pd.DataFrame(np.eye(6) * 0.01, index=symbols, columns=symbols)
    a = PortfolioAnalytics(pd.Series(0.05, index=symbols), cov, fund_map=fund_map)
    partial = pd.DataFrame(
        np.eye(2) * 0.01, index=["US_EQUITY", "UST_10Y"], columns=["US_EQUITY", "UST_10Y"]
    )
    with pytest.raises(ValidationError, match="GOLD"):
        a.exposure_risk_contributions(np.ones(6) / 6, partial)
    no_map = PortfolioAnalytics(pd.Series(0.05, index=symbols), cov)
    with pytest.raises(ValidationError, match="fund map"):
        no_map.exposure_risk_contributions(np.ones(6) / 6, partial)


def test_diversification_effective_number_and_concentration():
    n = 4
    names = list("ABCD")
    a = PortfolioAnalytics(
        pd.Series(0.05, index=names), pd.DataFrame(np.eye(n) * 0.04, index=names, columns=names)
    )
    eq = np.ones(n) / n
    assert a.diversification_ratio(eq) == pytest.approx(math.sqrt(n))
    assert a.diversification_ratio([1, 0, 0, 0]) == pytest.approx(1.0)
    assert a.effective_number_of_assets(eq) == pytest.approx(n)
    assert a.effective_number_of_assets(eq * 1.5) == pytest.approx(n)  # leverage-invariant
    assert a.effective_number_of_assets(eq, method="risk") == pytest.approx(n)
    assert a.effective_number_of_assets([0.5, 0.5, 0, 0]) == pytest.approx(2)
    assert a.concentration_ratio(eq) == pytest.approx(1 / n)
    assert a.concentration_ratio([0.7, 0.1, 0.1, 0.1]) == pytest.approx(0.49 + 0.03)
    assert a.concentration_ratio([0.7, 0.1, 0.1, 0.1], top_n=2) == pytest.approx(0.8)
    assert a.concentration_ratio(eq) == pytest.approx(1 / a.effective_number_of_assets(eq))
    with pytest.raises(ValidationError):
        a.concentration_ratio(np.zeros(n))
    with pytest.raises(ValidationError):
        a.effective_number_of_assets(eq, method="entropy")
    summary = a.summary(pd.Series({"A": 0.5, "CASH": 0.5}))
    assert summary["cash_weight"] == pytest.approx(0.5)
    assert summary["expected_return"] == pytest.approx(0.5 * 0.05 + 0.5 * 0.02)


def test_drawdown_of_a_hand_series():
    dates = pd.date_range("2024-01-31", periods=6, freq="ME")
    r = pd.Series([0.10, -0.20, 0.05, 0.20, -0.10, 0.0], index=dates)
    # wealth 1.1, 0.88, 0.924, 1.1088, 0.99792, 0.99792; peaks 1.1, 1.1, 1.1, 1.1088 ...
    dd = PortfolioAnalytics.drawdown(r)
    np.testing.assert_allclose(dd.to_numpy(), [0.0, -0.2, -0.16, 0.0, -0.1, -0.1], atol=1e-12)
    depth, peak, trough, recovery = PortfolioAnalytics.max_drawdown(r)
    assert depth == pytest.approx(-0.2)
    assert (peak, trough, recovery) == (dates[0], dates[1], dates[3])
    # The second drawdown never recovers.
    m = PortfolioAnalytics.max_drawdown(r.iloc[3:])
    assert m.depth == pytest.approx(-0.1) and m.recovery_date is None
    assert m.peak_date == dates[3] and m.trough_date == dates[4]


def test_drawdown_edge_cases():
    dates = pd.date_range("2024-01-01", periods=3, freq="D")
    # A first-day loss is a drawdown from the starting wealth.
    first = PortfolioAnalytics.max_drawdown(pd.Series([-0.1, 0.05, 0.1], index=dates))
    assert first.depth == pytest.approx(-0.1)
    assert first.peak_date == dates[0] and first.recovery_date == dates[2]
    up = PortfolioAnalytics.max_drawdown(pd.Series([0.01, 0.02, 0.0], index=dates))
    assert up == (0.0, None, None, None)
    with pytest.raises(DataError, match="missing"):
        PortfolioAnalytics.drawdown(pd.Series([0.01, np.nan, 0.0], index=dates))
    with pytest.raises(DataError, match="100%"):
        PortfolioAnalytics.drawdown(pd.Series([0.01, -1.5, 0.0], index=dates))
    with pytest.raises(DataError, match="empty"):
        PortfolioAnalytics.drawdown(pd.Series([], dtype=float))
    with pytest.raises(DataError, match="sorted"):
        PortfolioAnalytics.drawdown(pd.Series([0.01, 0.02, 0.0], index=dates[::-1]))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-0.5, 0.5), min_size=1, max_size=40))
def test_max_drawdown_matches_brute_force(returns):
    r = pd.Series(returns, index=pd.RangeIndex(len(returns)))
    wealth = np.concatenate([[1.0], np.cumprod(1 + np.array(returns))])
    worst = 0.0
    for j in range(len(wealth)):
        for i in range(j):
            worst = min(worst, wealth[j] / wealth[i] - 1)
    m = PortfolioAnalytics.max_drawdown(r)
    assert m.depth == pytest.approx(worst, abs=1e-12)
    assert PortfolioAnalytics.drawdown(r).min() == pytest.approx(min(worst, 0.0), abs=1e-12)


@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.floats(0.0, 1.0))
@settings(max_examples=40, deadline=None)
def test_held_marginal_is_sigma_w_on_the_funds_held(seed, n, share):
    """Reading only the held funds' rows and columns gives Sigma w there, 0 elsewhere,
    for sparse and dense weights alike (dense ones take the full product)."""
    from core.analytics import held_marginal

    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    sigma = a @ a.T / n
    w = rng.normal(size=n) * (rng.uniform(size=n) < share)
    got = held_marginal(sigma, w)
    full = sigma @ w
    np.testing.assert_allclose(got[w != 0], full[w != 0], rtol=1e-12, atol=1e-14)
    assert not got[w == 0].any()
    assert float(w @ got) == pytest.approx(float(w @ sigma @ w), rel=1e-12, abs=1e-15)
