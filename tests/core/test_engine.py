"""The optimization engine against closed forms, cvxpy, PyPortfolioOpt and real data."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.assumptions import MarketAssumptions
from core.errors import DataError, InfeasibleError, StackOptWarning, ValidationError
from core.exposures import ExposureCalculator, FundDefinition, FundExposureMap
from core.optimization.constraints import MarketView, OptimizationConstraints
from core.optimization.engine import OptimizationEngine
from core.optimization.results import ObjectiveType

REAL = ["SPY", "TLT", "GLD", "RSSB", "RSST", "NTSX", "DBMF"]


@pytest.fixture(scope="module")
def engine() -> OptimizationEngine:
    return OptimizationEngine(fund_map=FundExposureMap.default())


@pytest.fixture(scope="module")
def model(engine):
    a = MarketAssumptions.default()
    mu = a.fund_expected_returns(engine.fund_map, REAL) + a.cash_rate
    cov = a.fund_covariance(engine.fund_map, REAL)
    return mu, cov, a.cash_rate


def random_cov(rng: np.random.Generator, n: int, k: int = 3) -> np.ndarray:
    B = rng.normal(0, 0.15, (n, k))
    d = rng.uniform(0.05, 0.3, n) ** 2
    return B @ B.T + np.diag(d)


def plain_map(n: int) -> tuple[FundExposureMap, list[str]]:
    codes = ["US_EQUITY", "UST_10Y", "GOLD", "INTL_DEV", "COMMODITIES"]
    funds = [
        FundDefinition(f"F{i}", exposures={codes[i % len(codes)]: 100.0}, source="test")
        for i in range(n)
    ]
    return FundExposureMap(funds), [f.symbol for f in funds]


# ----------------------------------------------------------------- closed forms
def test_unconstrained_min_variance_matches_closed_form():
    rng = np.random.default_rng(1)
    fmap, syms = plain_map(6)
    cov = random_cov(rng, 6)
    eng = OptimizationEngine(fund_map=fmap)
    c = OptimizationConstraints(long_only=False, min_weight=-10, max_weight=10)
    res = eng.optimize_mean_variance(syms, np.zeros(6), cov, c, ObjectiveType.MIN_VOLATILITY)
    inv1 = np.linalg.solve(cov, np.ones(6))
    assert res.success
    np.testing.assert_allclose(res.weights.to_numpy(), inv1 / inv1.sum(), atol=1e-9)
    assert res.expected_volatility == pytest.approx(np.sqrt(1 / inv1.sum()), rel=1e-9)


def test_unconstrained_tangency_matches_closed_form():
    rng = np.random.default_rng(2)
    fmap, syms = plain_map(5)
    cov = random_cov(rng, 5)
    mu = 0.02 + rng.uniform(0.01, 0.08, 5)
    eng = OptimizationEngine(fund_map=fmap)
    c = OptimizationConstraints(long_only=False, min_weight=-10, max_weight=10)
    res = eng.optimize_mean_variance(syms, mu, cov, c, ObjectiveType.MAX_SHARPE, 0.02)
    t = np.linalg.solve(cov, mu - 0.02)
    assert res.success
    np.testing.assert_allclose(res.weights.to_numpy(), t / t.sum(), atol=1e-8)
    best = np.sqrt((mu - 0.02) @ t)
    assert res.sharpe_ratio == pytest.approx(best, rel=1e-10)


# ------------------------------------------------------- second solver (cvxpy)
def cvxpy_reference(mu, cov, fmap, syms, c: OptimizationConstraints, rf: float):
    """Max Sharpe written directly in cvxpy (homogenised), as a user would."""
    calc = ExposureCalculator(fmap, syms)
    E = calc.matrix
    n = len(syms)
    y = cp.Variable(n)
    k = cp.Variable(nonneg=True)
    cons = [(mu - rf) @ y == 1, cp.sum(y) == k, y >= 0, y <= c.max_weight * k]
    for code, cap in c.max_exposure_per_type.items():
        cons.append(E[calc.exposure_types.index(code)] @ y <= cap * k)
    if c.max_total_notional is not None:
        cons.append(calc.notionals @ y <= c.max_total_notional * k)
    prob = cp.Problem(cp.Minimize(cp.quad_form(y, cp.psd_wrap(cov))), cons)
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    return y.value / k.value


def test_leverage_aware_max_sharpe_agrees_with_cvxpy(engine, model):
    mu, cov, rf = model
    c = OptimizationConstraints(
        max_weight=0.6, max_exposure_per_type={"US_EQUITY": 0.8}, max_total_notional=1.5
    )
    res = engine.optimize_mean_variance(REAL, mu, cov, c, ObjectiveType.MAX_SHARPE, rf)
    ref = cvxpy_reference(mu.to_numpy(), cov.to_numpy(), engine.fund_map, REAL, c, rf)
    np.testing.assert_allclose(res.weights.to_numpy(), ref, atol=1e-5)
    w = ref
    sharpe_ref = (mu.to_numpy() @ w - rf) / np.sqrt(w @ cov.to_numpy() @ w)
    assert res.sharpe_ratio >= sharpe_ref - 1e-9


def test_min_volatility_matches_pypfopt_on_real_returns(shared_data):
    pypfopt = pytest.importorskip("pypfopt")
    prices = pd.read_csv(shared_data / "etf_daily_adjclose.csv.gz", index_col=0, parse_dates=True)
    syms = ["SPY", "TLT", "GLD", "IEF", "EFA", "EEM", "DBC"]
    px = prices[syms].loc["2012":"2024"].dropna()
    mu = pypfopt.expected_returns.mean_historical_return(px, compounding=False)
    cov = pypfopt.risk_models.sample_cov(px)
    eng = OptimizationEngine(fund_map=FundExposureMap.default())
    for objective in (ObjectiveType.MIN_VOLATILITY, ObjectiveType.MAX_SHARPE):
        ef = pypfopt.EfficientFrontier(mu, cov, weight_bounds=(0, 0.4), solver="CLARABEL")
        if objective is ObjectiveType.MIN_VOLATILITY:
            ref = pd.Series(ef.min_volatility())
        else:
            ref = pd.Series(ef.max_sharpe(risk_free_rate=0.01))
        c = OptimizationConstraints(max_weight=0.4)
        res = eng.optimize_mean_variance(syms, mu, cov, c, objective, 0.01)
        np.testing.assert_allclose(res.weights[syms], ref[syms], atol=1e-4)


# ------------------------------------------------------------ property tests
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    eq_cap=st.floats(0.3, 1.2),
    notional=st.floats(1.0, 2.0),
    max_w=st.floats(0.25, 1.0),
    objective=st.sampled_from(
        [ObjectiveType.MAX_SHARPE, ObjectiveType.MIN_VOLATILITY, ObjectiveType.MAX_DIVERSIFICATION]
    ),
)
def test_every_constraint_holds_on_random_feasible_problems(
    engine, seed, eq_cap, notional, max_w, objective
):
    rng = np.random.default_rng(seed)
    syms = list(rng.choice(engine.fund_map.symbols, size=8, replace=False))
    a = MarketAssumptions.default()
    mu = a.fund_expected_returns(engine.fund_map, syms) + a.cash_rate
    cov = a.fund_covariance(engine.fund_map, syms)
    c = OptimizationConstraints(
        max_weight=max_w,
        max_exposure_per_group={"equity": eq_cap},
        max_total_notional=notional,
    )
    try:
        res = engine.optimize_mean_variance(syms, mu, cov, c, objective, 0.0)
    except InfeasibleError:
        # Infeasible must be real: no mix of these funds meets the caps (checked by LP).
        from scipy.optimize import linprog

        calc = ExposureCalculator(engine.fund_map, syms)
        eq = np.array([calc.exposure_by_group(np.eye(8)[i]).get("equity", 0.0) for i in range(8)])
        lp = linprog(
            np.zeros(8), A_ub=np.vstack([eq, calc.notionals]), b_ub=[eq_cap, notional],
            A_eq=np.ones((1, 8)), b_eq=[1.0], bounds=[(0, max_w)] * 8, method="highs",
        )  # fmt: skip
        assert lp.status == 2
        return
    assume(res.success)
    w = res.weights.to_numpy()
    # independent hand computation of exposures and notional
    equity = sum(
        w[i] * v / 100
        for i, s in enumerate(syms)
        for code, v in engine.fund_map[s].exposures.items()
        if engine.fund_map.exposure_types[code].group.value == "equity"
    )
    hand_notional = sum(
        abs(w[i]) * engine.fund_map[s].notional_pct / 100 for i, s in enumerate(syms)
    )
    assert w.sum() == pytest.approx(1.0, abs=1e-6)
    assert w.min() >= -1e-6 and w.max() <= max_w + 1e-6
    assert equity <= eq_cap + 1e-6
    assert hand_notional <= notional + 1e-6
    assert res.total_notional == pytest.approx(hand_notional, abs=1e-9)


# ------------------------------------------------------------------ real data
def test_real_data_leverage_aware_max_sharpe(shared_data, engine):
    from core.market_data import read_prices
    from core.optimization.estimators import ReturnEstimator

    prices = read_prices(shared_data / "etf_daily_adjclose.csv.gz")[REAL]
    est = ReturnEstimator(
        prices=prices, frequency="weekly", fund_map=engine.fund_map,
        assumptions=MarketAssumptions.default(), risk_free_rate=0.04,
    )  # fmt: skip
    mu = est.estimate_expected_returns(REAL, method="exposure_model")
    cov = est.estimate_covariance_matrix(REAL, method="exposure_model")
    c = OptimizationConstraints(max_exposure_per_group={"equity": 1.0}, max_total_notional=1.5)
    res = engine.optimize_mean_variance(REAL, mu, cov, c, ObjectiveType.MAX_SHARPE, 0.04)
    assert res.success, res.message
    assert res.exposures_by_group["equity"] <= 1.0 + 1e-6
    assert res.total_notional <= 1.5 + 1e-6
    # leverage is used: more notional than a plain-fund portfolio could have
    assert res.total_notional > 1.0 + 1e-3


# ------------------------------------------------------- errors and degenerate
def test_min_above_max_is_named(engine, model):
    mu, cov, rf = model
    c = OptimizationConstraints(min_weight=0.5, max_weight=0.4)
    with pytest.raises(InfeasibleError) as err:
        engine.optimize_mean_variance(REAL, mu, cov, c)
    assert any("min_weight" in x or "minimum" in x for x in err.value.conflicts)


def test_unreachable_exposure_floor_is_named(engine, model):
    mu, cov, rf = model
    c = OptimizationConstraints(min_exposure_per_type={"GOLD": 1.5})
    with pytest.raises(InfeasibleError, match=r"min_exposure\[GOLD\]"):
        engine.optimize_mean_variance(REAL, mu, cov, c)


def test_conflict_found_by_solver_names_the_rows(engine, model):
    mu, cov, rf = model
    # each is reachable alone; together they are not: equity >= 90% needs notional
    c = OptimizationConstraints(
        min_exposure_per_group={"equity": 0.9, "fixed_income": 0.9},
        max_total_notional=1.2,
    )
    with pytest.raises(InfeasibleError) as err:
        engine.optimize_mean_variance(REAL, mu, cov, c)
    text = " ".join(err.value.conflicts)
    assert "max_total_notional" in text


def test_all_returns_below_risk_free_refused(engine, model):
    _, cov, _ = model
    mu = pd.Series(-0.01, index=REAL)
    with pytest.raises(InfeasibleError, match="risk-free"):
        engine.optimize_mean_variance(REAL, mu, cov, OptimizationConstraints(), "max_sharpe", 0.02)


def test_nan_inputs_give_typed_errors(engine, model):
    mu, cov, _ = model
    bad = mu.copy()
    bad["GLD"] = np.nan
    with pytest.raises(DataError, match="GLD"):
        engine.optimize_mean_variance(REAL, bad, cov)
    with pytest.raises(ValidationError, match="ZZZ"):
        engine.optimize_mean_variance([*REAL, "ZZZ"], mu, cov)


def test_singular_covariance_is_repaired_and_reported(engine):
    fmap, syms = plain_map(3)
    v = np.array([0.2, 0.1, 0.15])
    cov = np.outer(v, v)  # rank one: perfectly correlated
    cov[0, 1] += 1e-3  # slightly asymmetric and indefinite
    eng = OptimizationEngine(fund_map=fmap)
    with pytest.warns(StackOptWarning):
        res = eng.optimize_mean_variance(syms, [0.05, 0.04, 0.06], cov, None, "min_volatility")
    assert res.success
    assert any("symmetric" in r for r in res.repairs)


# ----------------------------------------------------------------- frontier
def test_frontier_is_monotone_lazy_and_leverage_helps(engine, model):
    mu, cov, rf = model
    c = OptimizationConstraints(max_exposure_per_group={"equity": 1.0}, max_total_notional=1.5)
    gen = engine.efficient_frontier(REAL, mu, cov, c, n_points=20, risk_free_rate=rf)
    first = next(gen)
    gen.close()  # the caller can stop early
    assert first.index == 0
    pts = list(engine.frontier_with_and_without_leverage(REAL, mu, cov, c, 15, rf))
    lev = [p for p in pts if p.label == "with leverage"]
    plain = [p for p in pts if p.label == "without leverage"]
    assert len(lev) == len(plain) == 15
    # long-only: no round-off below zero reaches the user (the trade generator refuses it)
    assert all((p.weights >= 0).all() for p in pts)
    rets = [p.expected_return for p in lev]
    vols = [p.volatility for p in lev]
    assert np.all(np.diff(rets) > -1e-10) and np.all(np.diff(vols) > -1e-10)
    for p in plain:
        assert all(engine.fund_map[s].notional_pct <= 100 or w < 1e-9 for s, w in p.weights.items())
    # at the same volatility, stacked funds reach at least as much return
    assert max(rets) >= max(p.expected_return for p in plain) - 1e-9
    # each point is the min-variance portfolio for its return: check one against cvxpy
    p = lev[7]
    w = cp.Variable(len(REAL))
    calc = ExposureCalculator(engine.fund_map, REAL)
    eqrow = calc.exposure_by_group(np.eye(len(REAL))[0])  # noqa: F841 - shape check
    E = calc.matrix
    groups = [engine.fund_map.exposure_types[c].group.value for c in calc.exposure_types]
    eq_rows = E[[i for i, g in enumerate(groups) if g == "equity"]].sum(axis=0)
    prob = cp.Problem(
        cp.Minimize(cp.quad_form(w, cp.psd_wrap(cov.to_numpy()))),
        [cp.sum(w) == 1, w >= 0, eq_rows @ w <= 1.0, calc.notionals @ w <= 1.5,
         mu.to_numpy() @ w >= p.expected_return - 1e-12],
    )  # fmt: skip
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    assert p.volatility == pytest.approx(np.sqrt(prob.value), rel=1e-6)


# ---------------------------------------------------------- exposure matching
def test_exposure_matching_holds_60_40_at_150_notional_with_ntsx(engine):
    syms = ["NTSX", "RSSB", "SPY", "IEF", "BIL"]
    res = engine.optimize_exposures(syms, {"US_EQUITY": 0.9, "UST_10Y": 0.6})
    assert res.success
    assert res.weights["NTSX"] == pytest.approx(1.0, abs=1e-6)
    assert res.details["exposure_tracking_error"] < 1e-6


def test_exposure_matching_prefers_cheapest_among_exact_matches(engine):
    # VOO and SPY both give 100% US equity; VOO is cheaper
    res = engine.optimize_exposures(["SPY", "VOO", "IEF"], {"US_EQUITY": 1.0})
    cheap = min(["SPY", "VOO"], key=lambda s: engine.fund_map[s].expense_ratio)
    assert res.weights[cheap] == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------- risk parity
def test_equal_risk_contribution_by_fund(engine, model):
    _, cov, _ = model
    res = engine.optimize_risk_parity(REAL, cov, None, use_leverage=False)
    rc = res.risk_contributions / res.risk_contributions.sum()
    np.testing.assert_allclose(rc.to_numpy(), 1 / len(REAL), atol=1e-8)


def test_constrained_risk_parity_respects_caps(engine, model):
    _, cov, _ = model
    c = OptimizationConstraints(max_weight=0.15)
    res = engine.optimize_risk_parity(REAL, cov, c, use_leverage=False)
    assert res.success
    assert res.weights.max() <= 0.15 + 1e-6


def test_hrp_matches_pypfopt(shared_data, engine):
    pypfopt = pytest.importorskip("pypfopt")
    prices = pd.read_csv(shared_data / "etf_daily_adjclose.csv.gz", index_col=0, parse_dates=True)
    syms = ["SPY", "TLT", "GLD", "IEF", "EFA", "EEM", "DBC"]
    rets = prices[syms].loc["2012":"2024"].dropna().pct_change().dropna()
    ref = pd.Series(pypfopt.HRPOpt(rets).optimize(linkage_method="single"))
    res = engine.optimize_risk_parity(syms, rets.cov(), None, use_leverage=False, method="hrp")
    np.testing.assert_allclose(res.weights[syms], ref[syms], atol=1e-8)


def test_risk_parity_by_exposure_levered_to_target(engine):
    syms = ["SPY", "TLT", "GLD", "DBMF", "RSSB", "NTSX", "BIL"]
    a = MarketAssumptions.default()
    cov = a.fund_covariance(engine.fund_map, syms)
    c = OptimizationConstraints(target_volatility=0.10, max_total_notional=2.0)
    res = engine.optimize_risk_parity(syms, cov, c, by="exposure")
    assert res.success
    assert res.total_notional <= 2.0 + 1e-6
    unlevered = engine.optimize_risk_parity(syms, cov, c, by="exposure", use_leverage=False)
    assert res.expected_volatility > unlevered.expected_volatility
    assert res.total_notional > 1.0 + 1e-3


# ------------------------------------------------------------ black-litterman
def test_view_on_exposure_moves_every_fund_carrying_it(engine):
    syms = ["SPY", "RSSB", "GLD", "IEF"]
    a = MarketAssumptions.default()
    cov = a.fund_covariance(engine.fund_map, syms)
    w = pd.Series(0.25, index=syms)
    prior = engine.black_litterman_returns(syms, w, cov, [])
    post = engine.black_litterman_returns(
        syms, w, cov, [MarketView(["US_EQUITY"], "absolute", 0.15, 0.9)]
    )
    assert post["SPY"] > prior["SPY"] + 0.01
    assert post["RSSB"] > prior["RSSB"] + 0.005
    # gold is not equity, but correlated assets move a little: much less than SPY
    assert abs(post["GLD"] - prior["GLD"]) < abs(post["SPY"] - prior["SPY"]) / 3


def test_market_weights_in_any_form_and_fund_views_match_the_closed_form(engine):
    """Series in any case and order, a partial dict (missing funds weigh 0) or an array
    give the same posterior; it matches He-Litterman's formula written out in full."""
    syms = ["SPY", "RSSB", "GLD", "IEF"]
    cov = MarketAssumptions.default().fund_covariance(engine.fund_map, syms).to_numpy()
    w = np.array([0.5, 0.2, 0.0, 0.3])
    views = [MarketView(["SPY", "IEF"], "relative", 0.03, 0.5)]
    forms = [
        pd.Series(w, index=syms),
        pd.Series(w[::-1], index=[s.lower() for s in syms[::-1]]),
        {"spy": 0.5, "RSSB": 0.2, "ief": 0.3},
        w,
    ]
    got = [engine.black_litterman_returns(syms, f, cov, views, tau=0.05) for f in forms]
    pi = 2.5 * cov @ (w / w.sum())
    p = np.array([[1.0, 0.0, 0.0, -1.0]])
    omega = np.diag(0.05 * np.diag(p @ cov @ p.T))  # confidence 0.5: tau p S p'
    ts = 0.05 * cov
    expected = pi + ts @ p.T @ np.linalg.solve(p @ ts @ p.T + omega, np.array([0.03]) - p @ pi)
    for g in got:
        np.testing.assert_allclose(g.to_numpy(), expected, rtol=1e-12, atol=1e-14)
    assert list(got[0].index) == syms


def test_result_to_trades_reaches_target_on_sample_workspace(engine):
    from core.workspace import Workspace

    ws = Workspace.sample()
    portfolio = ws.priced_portfolio()
    syms = portfolio.symbols
    a = MarketAssumptions.default()
    mu = a.fund_expected_returns(ws.fund_map, syms) + a.cash_rate
    cov = a.fund_covariance(ws.fund_map, syms)
    eng = OptimizationEngine(fund_map=ws.fund_map)
    res = eng.optimize_mean_variance(syms, mu, cov, ws.constraints, "max_sharpe", a.cash_rate)
    assert res.success, res.message
    plan = res.to_trades(portfolio, ws.prices)
    assert plan.trades, "a max-Sharpe target differs from the sample holdings"
    sells = [t.side for t in plan.trades]
    assert sells == sorted(sells, reverse=True)  # SELL before BUY
    assert plan.cash_after >= -1e-9
    assert all(float(t.quantity).is_integer() for t in plan.trades)
    drift = (plan.weights_after.reindex(syms).fillna(0) - res.weights).abs().max()
    assert drift < 0.01  # whole shares of a ~$250k account land within 1% of target


# ------------------------------------------------------------ kept constraint forms
def test_kept_form_follows_every_edit_of_funds_and_constraints():
    """Constraint matrices are kept between solves; any edit must give a new answer.

    The exposure cap binds, so moving a fund's exposure (in place, in its dictionary),
    replacing a fund, or editing the constraints object must each change the optimum
    exactly as a freshly built engine's.
    """
    from core.optimization.constraints import linear_form

    def build() -> FundExposureMap:
        return FundExposureMap(
            [
                FundDefinition("EQ", exposures={"US_EQUITY": 100.0}, source="test"),
                FundDefinition("BD", exposures={"UST_10Y": 100.0}, source="test"),
                FundDefinition("MX", exposures={"US_EQUITY": 60.0, "UST_10Y": 40.0}, source="t"),
            ]
        )

    syms = ["EQ", "BD", "MX"]
    mu = np.array([0.08, 0.03, 0.06])
    cov = np.array([[0.04, 0.0, 0.02], [0.0, 0.01, 0.004], [0.02, 0.004, 0.016]])
    cons = OptimizationConstraints(max_exposure_per_type={"US_EQUITY": 0.5})

    def solve(fmap: FundExposureMap, c: OptimizationConstraints) -> np.ndarray:
        eng = OptimizationEngine(fund_map=fmap)
        r = eng.optimize_mean_variance(syms, mu, cov, c, "max_return", risk_free_rate=0.0)
        return r.weights.to_numpy()

    fmap = build()
    first = solve(fmap, cons)
    form = linear_form(syms, cons, fmap)
    again = linear_form(syms, cons, fmap)
    assert again.A_ub is form.A_ub  # kept: not built again
    assert not form.A_ub.flags.writeable  # shared, so read-only
    again.ub_names.append("x")  # the lists are the caller's own
    assert "x" not in linear_form(syms, cons, fmap).ub_names

    fmap.funds["MX"].exposures["US_EQUITY"] = 20.0  # edited in place
    fresh = build()
    fresh.funds["MX"].exposures["US_EQUITY"] = 20.0
    edited = solve(fmap, cons)
    assert not np.allclose(edited, first, atol=1e-6)
    np.testing.assert_allclose(edited, solve(fresh, cons), atol=1e-9)

    fmap.set_fund(FundDefinition("MX", exposures={"US_EQUITY": 90.0}, source="t"))
    fresh.set_fund(FundDefinition("MX", exposures={"US_EQUITY": 90.0}, source="t"))
    np.testing.assert_allclose(solve(fmap, cons), solve(fresh, cons), atol=1e-9)

    cons.max_exposure_per_type["US_EQUITY"] = 0.3  # the constraints edited in place
    np.testing.assert_allclose(
        solve(fmap, cons),
        solve(fresh, OptimizationConstraints(max_exposure_per_type={"US_EQUITY": 0.3})),
        atol=1e-9,
    )


def test_result_labels_are_each_results_own():
    """Results share one built index of the symbols; renaming one must not rename others."""
    eng = OptimizationEngine(fund_map=plain_map(4)[0])
    syms = plain_map(4)[1]
    cov = random_cov(np.random.default_rng(3), 4)
    a = eng.optimize_mean_variance(syms, None, cov, None, "min_volatility")
    b = eng.optimize_mean_variance(syms, None, cov, None, "min_volatility")
    a.weights.index.name = "fund"
    a.risk_contributions.index.name = "fund"
    assert b.weights.index.name is None and b.risk_contributions.index.name is None
    assert list(b.weights.index) == syms


def test_kept_form_sees_a_bound_list_edited_in_place():
    """A fund bound given as a list and edited in place is a new constraint."""
    fmap, syms = plain_map(3)
    eng = OptimizationEngine(fund_map=fmap)
    cov = random_cov(np.random.default_rng(5), 3)
    cons = OptimizationConstraints(fund_bounds={"F0": [0.0, 0.5]})
    eng.optimize_mean_variance(syms, None, cov, cons, "min_volatility")
    cons.fund_bounds["F0"][1] = 0.1  # type: ignore[index]
    w = eng.optimize_mean_variance(syms, None, cov, cons, "min_volatility").weights
    assert w["F0"] <= 0.1 + 1e-9


def test_result_breakdowns_agree_with_direct_sums(engine, model):
    """Every breakdown of a result (its Sigma w computed once and shared) matches a
    direct computation: risk contributions sum to the volatility, the exposure risk
    contributions (with the residual) too, and the diversification ratio by hand."""
    mu, cov, rf = model
    res = engine.optimize_mean_variance(REAL, mu, cov, None, "max_sharpe", risk_free_rate=rf)
    w = res.weights.reindex(REAL).to_numpy()
    S = cov.loc[REAL, REAL].to_numpy()
    vol = float(np.sqrt(w @ S @ w))
    assert res.expected_volatility == pytest.approx(vol, rel=1e-12)
    np.testing.assert_allclose(res.risk_contributions.reindex(REAL), w * (S @ w) / vol, rtol=1e-10)
    assert res.exposure_risk_contributions.sum() == pytest.approx(vol, rel=1e-10)
    dr = float(np.abs(w) @ np.sqrt(np.diag(S)) / vol)
    assert res.diversification_ratio == pytest.approx(dr, rel=1e-12)
    assert res.sharpe_ratio == pytest.approx((w @ mu.reindex(REAL).to_numpy() - rf) / vol, rel=1e-9)


def test_kept_matrices_under_concurrent_solves():
    """Solver threads and the GUI thread share the kept covariances, forms and indexes;
    with more problems than places kept (so entries are evicted while others read them),
    every concurrent answer equals the one computed alone."""
    import threading

    fmap, syms = plain_map(12)
    eng = OptimizationEngine(fund_map=fmap)
    rng = np.random.default_rng(8)
    cases = [
        (random_cov(rng, 12), OptimizationConstraints(max_weight=0.15 + 0.02 * i))
        for i in range(10)
    ]
    alone = [
        eng.optimize_mean_variance(syms, None, c, k, "min_volatility").weights.to_numpy()
        for c, k in cases
    ]
    errors: list[BaseException] = []
    mismatches: list[int] = []

    def work(offset: int) -> None:
        try:
            for j in range(40):
                i = (j + offset) % len(cases)
                c, k = cases[i]
                w = eng.optimize_mean_variance(syms, None, c, k, "min_volatility").weights
                if not np.allclose(w.to_numpy(), alone[i], atol=1e-9):
                    mismatches.append(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not mismatches
