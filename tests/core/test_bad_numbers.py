"""Bad numbers through the engine and the estimator: repaired and reported, or refused.

What can be repaired (an indefinite or asymmetric covariance, a singular one, a fund that
never moved) is repaired and listed in ``result.repairs`` / ``estimator.repairs_`` (and
warned about); what cannot (NaN, inf, negative variances, zero or negative prices, a
riskless fund that beats the risk-free rate in max Sharpe, returns that all trail cash,
contradictory constraints) raises a typed error whose message names the input. Answers
are cross-checked against cvxpy + Clarabel on the same (repaired) inputs.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import DataError, InfeasibleError, StackOptWarning, ValidationError
from core.exposures import FundDefinition, FundExposureMap
from core.market_data import read_prices_text
from core.optimization.constraints import OptimizationConstraints
from core.optimization.engine import OptimizationEngine
from core.optimization.estimators import ReturnEstimator

SYMBOLS = ["EQ", "BND", "GLD", "TREND"]
CODES = {"EQ": "US_EQUITY", "BND": "UST_10Y", "GLD": "GOLD", "TREND": "MANAGED_FUT"}


def fund_map(extra: list[FundDefinition] = ()) -> FundExposureMap:
    funds = [FundDefinition(s, exposures={c: 100.0}, source="test") for s, c in CODES.items()]
    return FundExposureMap([*funds, *extra])


@pytest.fixture(scope="module")
def engine() -> OptimizationEngine:
    return OptimizationEngine(fund_map=fund_map())


def good_cov() -> np.ndarray:
    vol = np.array([0.16, 0.07, 0.15, 0.12])
    corr = np.array(
        [[1.0, -0.2, 0.1, 0.0], [-0.2, 1.0, 0.2, 0.1], [0.1, 0.2, 1.0, 0.1], [0.0, 0.1, 0.1, 1.0]]
    )
    return corr * np.outer(vol, vol)


MU = np.array([0.07, 0.04, 0.05, 0.06])


def clip_psd(cov: np.ndarray) -> np.ndarray:
    """Independent repair: symmetrise, clip negative eigenvalues at zero."""
    factor = psd_factor(cov)
    return factor @ factor.T


def psd_factor(cov: np.ndarray) -> np.ndarray:
    """L with L L' = the clipped matrix: a sum of squares is better conditioned in cvxpy."""
    ev, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
    return vecs * np.sqrt(np.clip(ev, 0, None))


TIGHT = dict(solver="CLARABEL", tol_gap_abs=1e-14, tol_gap_rel=1e-12, tol_feas=1e-12)


def cvx_min_var(cov: np.ndarray, lb=0.0, ub=1.0, rows=()) -> float:
    """Minimum variance ``w' cov w`` by cvxpy + Clarabel; ``rows`` are (a, b) for a'w <= b."""
    n = cov.shape[0]
    w = cp.Variable(n)
    cons = [cp.sum(w) == 1, w >= lb, w <= ub] + [a @ w <= b for a, b in rows]
    prob = cp.Problem(cp.Minimize(cp.sum_squares(psd_factor(cov).T @ w)), cons)
    prob.solve(**TIGHT)
    assert prob.status == cp.OPTIMAL
    return float(prob.value)


def cvx_max_sharpe(mu: np.ndarray, cov: np.ndarray, rf: float, rows=()) -> float:
    """Max Sharpe by the homogenised QP in cvxpy (long only, fully invested)."""
    n = cov.shape[0]
    y = cp.Variable(n)
    k = cp.Variable(nonneg=True)
    cons = [(mu - rf) @ y == 1, cp.sum(y) == k, y >= 0, y <= k] + [a @ y <= b * k for a, b in rows]
    prob = cp.Problem(cp.Minimize(cp.sum_squares(psd_factor(cov).T @ y)), cons)
    prob.solve(**TIGHT)
    assert prob.status == cp.OPTIMAL
    return float(1.0 / np.sqrt(prob.value))


# ------------------------------------------------------------------- covariance repairs
def test_indefinite_covariance_is_repaired_reported_and_correct(engine):
    cov = good_cov()
    cov[0, 1] = cov[1, 0] = 0.9 * np.sqrt(cov[0, 0] * cov[1, 1])
    cov[0, 2] = cov[2, 0] = -0.9 * np.sqrt(cov[0, 0] * cov[2, 2])
    cov[1, 2] = cov[2, 1] = 0.9 * np.sqrt(cov[1, 1] * cov[2, 2])
    assert np.linalg.eigvalsh(cov)[0] < -1e-3
    with pytest.warns(StackOptWarning, match="not positive semi-definite"):
        res = engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "min_volatility")
    assert res.success
    assert any("not positive semi-definite" in r and "clipped" in r for r in res.repairs)
    assert res.expected_volatility**2 == pytest.approx(cvx_min_var(cov), rel=1e-6)
    with pytest.warns(StackOptWarning):
        res = engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "max_sharpe", 0.02)
    assert res.success and res.repairs
    assert res.sharpe_ratio == pytest.approx(cvx_max_sharpe(MU, cov, 0.02), rel=1e-6)


def test_asymmetric_covariance_is_symmetrised_and_reported(engine):
    cov = good_cov()
    cov[0, 3] += 0.004  # a typo in one off-diagonal cell
    with pytest.warns(StackOptWarning, match="symmetric"):
        res = engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "min_volatility")
    assert res.success
    assert any("not symmetric" in r for r in res.repairs)
    assert res.expected_volatility**2 == pytest.approx(cvx_min_var(cov), rel=1e-6)


def test_a_covariance_changed_in_place_is_checked_again(engine):
    """Checks are remembered by the matrix's fingerprint, not by the array object: the
    same array edited in place (a typo, then an indefinite table) is checked anew."""
    from core.linalg import is_psd

    cov = good_cov()
    first = engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "min_volatility")
    assert first.success and not first.repairs
    assert engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "min_volatility").weights.equals(
        first.weights
    )
    assert is_psd(cov)
    cov[0, 1] = cov[1, 0] = 0.9 * np.sqrt(cov[0, 0] * cov[1, 1])
    cov[0, 2] = cov[2, 0] = -0.9 * np.sqrt(cov[0, 0] * cov[2, 2])
    cov[1, 2] = cov[2, 1] = 0.9 * np.sqrt(cov[1, 1] * cov[2, 2])
    assert not is_psd(cov)
    with pytest.warns(StackOptWarning, match="not positive semi-definite"):
        res = engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "min_volatility")
    assert any("not positive semi-definite" in r for r in res.repairs)
    assert res.expected_volatility**2 == pytest.approx(cvx_min_var(cov), rel=1e-6)
    cov[3, 3] = np.nan
    with pytest.raises(DataError, match="covariance has NaN"):
        engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "min_volatility")


@st.composite
def indefinite_matrices(draw) -> np.ndarray:
    n = 4
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    vol = rng.uniform(0.05, 0.3, n)
    a = rng.uniform(-1, 1, (n, n))
    corr = np.clip(0.5 * (a + a.T), -0.99, 0.99)  # a random "correlation" table: often not PSD
    np.fill_diagonal(corr, 1.0)
    return corr * np.outer(vol, vol)


@settings(max_examples=40, deadline=None)
@given(cov=indefinite_matrices())
def test_random_indefinite_covariances_give_the_clipped_optimum(cov):
    eng = OptimizationEngine(fund_map=fund_map())
    indefinite = np.linalg.eigvalsh(cov)[0] < -1e-10 * np.max(np.diag(cov))
    with pytest.warns(StackOptWarning) if indefinite else _no_warning():
        res = eng.optimize_mean_variance(SYMBOLS, MU, cov, None, "min_volatility")
    assert res.success, res.message
    assert (any("positive semi-definite" in r for r in res.repairs)) == indefinite
    w = res.weights.to_numpy()
    assert np.all(w >= -1e-9) and w.sum() == pytest.approx(1.0, abs=1e-9)
    assert w @ clip_psd(cov) @ w == pytest.approx(cvx_min_var(cov), rel=1e-5, abs=1e-10)


class _no_warning:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", StackOptWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_perfectly_correlated_funds_are_fine(engine):
    """Two funds with the same returns make the covariance singular: no repair needed."""
    fmap = fund_map([FundDefinition("EQ2", exposures={"US_EQUITY": 100.0}, source="test")])
    eng = OptimizationEngine(fund_map=fmap)
    cov = good_cov()
    big = np.zeros((5, 5))
    big[:4, :4] = cov
    big[4, :4] = big[:4, 4] = cov[0]
    big[4, 4] = cov[0, 0]
    assert abs(np.linalg.eigvalsh(big)[0]) < 1e-12
    syms = [*SYMBOLS, "EQ2"]
    mu = np.append(MU, MU[0])
    res = eng.optimize_mean_variance(syms, mu, big, None, "min_volatility")
    assert res.success and not res.repairs
    assert res.expected_volatility**2 == pytest.approx(cvx_min_var(big), rel=1e-7)
    res = eng.optimize_mean_variance(syms, mu, big, None, "max_sharpe", 0.02)
    assert res.success
    assert res.sharpe_ratio == pytest.approx(cvx_max_sharpe(mu, big, 0.02), rel=1e-6)
    # The twins together hold what EQ alone holds in the 4-fund answer.
    alone = engine.optimize_mean_variance(SYMBOLS, MU, good_cov(), None, "max_sharpe", 0.02)
    assert res.weights["EQ"] + res.weights["EQ2"] == pytest.approx(alone.weights["EQ"], abs=1e-6)


def test_zero_volatility_fund_is_riskless_in_min_volatility(engine):
    cov = good_cov()
    cov[1, :] = cov[:, 1] = 0.0  # BND never moved
    with pytest.warns(StackOptWarning, match="zero volatility for BND"):
        res = engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "min_volatility")
    assert res.success
    assert any("zero volatility for BND" in r for r in res.repairs)
    assert res.weights["BND"] == pytest.approx(1.0, abs=1e-9)
    assert res.expected_volatility == pytest.approx(0.0, abs=1e-9)


def test_zero_volatility_fund_above_the_risk_free_rate_is_refused_in_max_sharpe(engine):
    """A riskless fund beating cash makes the Sharpe ratio unbounded: refused, named."""
    cov = good_cov()
    cov[1, :] = cov[:, 1] = 0.0
    with pytest.warns(StackOptWarning), pytest.raises(ValidationError, match="BND") as err:
        engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "max_sharpe", 0.02)
    assert "zero volatility" in str(err.value) and err.value.field == "covariance_matrix"
    # Below the risk-free rate it is merely dominated: the answer ignores it.
    with pytest.warns(StackOptWarning):
        res = engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "max_sharpe", 0.045)
    assert res.success and res.weights["BND"] == pytest.approx(0.0, abs=1e-9)
    keep = [0, 2, 3]
    sub = cvx_max_sharpe(MU[keep], cov[np.ix_(keep, keep)], 0.045)
    assert res.sharpe_ratio == pytest.approx(sub, rel=1e-6)
    # Pinned to zero by its bounds it cannot be bought: no refusal.
    c = OptimizationConstraints(fund_bounds={"BND": (0.0, 0.0)})
    with pytest.warns(StackOptWarning):
        res = engine.optimize_mean_variance(SYMBOLS, MU, cov, c, "max_sharpe", 0.02)
    assert res.success and res.weights["BND"] == 0.0


@pytest.mark.parametrize(
    ("mutate", "error", "names"),
    [
        (lambda mu, cov: (np.where(np.arange(4) == 2, np.nan, mu), cov), DataError, "GLD"),
        (lambda mu, cov: (np.where(np.arange(4) == 0, np.inf, mu), cov), DataError, "EQ"),
        (lambda mu, cov: (mu, np.where(np.eye(4) == 1, np.nan, cov)), DataError, "covariance"),
        (
            lambda mu, cov: (mu, np.where(np.eye(4) * [0, 0, 0, 1] > 0, np.inf, cov)),
            DataError,
            "TREND",
        ),
        (lambda mu, cov: (mu, cov - np.diag([0, 0, 0.1, 0])), DataError, "negative variance"),
        (lambda mu, cov: (mu, cov * 1e4), ValidationError, "percent"),
        (lambda mu, cov: (mu[:3], cov), ValidationError, "3 values for 4 funds"),
        (lambda mu, cov: (mu, cov[:3, :3]), ValidationError, "4x4"),
    ],
)
def test_unrepairable_inputs_are_refused_naming_the_input(engine, mutate, error, names):
    mu, cov = mutate(MU.copy(), good_cov())
    with pytest.raises(error, match=names):
        engine.optimize_mean_variance(SYMBOLS, mu, cov, None, "max_sharpe", 0.02)


# ------------------------------------------------------------------ returns and prices
def test_expected_returns_all_negative(engine):
    mu = -np.abs(MU)
    with pytest.raises(InfeasibleError, match="risk-free rate"):
        engine.optimize_mean_variance(SYMBOLS, mu, good_cov(), None, "max_sharpe", 0.02)
    cash = OptimizationConstraints(max_cash=1.0)
    with pytest.raises(InfeasibleError, match="expected returns"):
        engine.optimize_mean_variance(SYMBOLS, mu, good_cov(), cash, "max_sharpe", 0.0)
    # Objectives that need no positive excess return still work.
    res = engine.optimize_mean_variance(SYMBOLS, mu, good_cov(), None, "min_volatility")
    assert res.success and res.expected_return < 0
    res = engine.optimize_mean_variance(SYMBOLS, mu, good_cov(), None, "max_return")
    assert res.success and res.weights["BND"] == pytest.approx(1.0)  # the least negative


def _prices(rng: np.random.Generator, n_days: int = 600) -> pd.DataFrame:
    idx = pd.bdate_range("2020-01-01", periods=n_days)
    steps = rng.normal(0.0003, 0.01, (n_days, 3))
    return pd.DataFrame(100 * np.exp(np.cumsum(steps, axis=0)), index=idx, columns=["A", "B", "C"])


@pytest.mark.parametrize("bad", [0.0, -3.0, np.inf])
def test_zero_negative_or_infinite_prices_are_refused_by_the_estimator(bad):
    prices = _prices(np.random.default_rng(1))
    prices.iloc[100, 1] = bad
    for call in (
        lambda e: e.estimate_covariance_matrix(["A", "B", "C"], "sample"),
        lambda e: e.estimate_expected_returns(["A", "B", "C"], "historical"),
    ):
        with pytest.raises(DataError, match=r"B .*2020-05-20") as err:
            call(ReturnEstimator(prices=prices))
        assert err.value.column == "B"


@pytest.mark.parametrize("bad", ["0", "-3.5", "inf", "1e999"])
def test_zero_negative_or_infinite_prices_are_refused_by_the_reader(bad):
    text = f"Date,A,B\n2024-01-02,10,20\n2024-01-03,11,{bad}\n2024-01-04,12,21\n"
    with pytest.raises(DataError) as err:
        read_prices_text(text, source="p.csv")
    assert (err.value.path, err.value.row, err.value.column) == ("p.csv", 3, "B")


def test_estimator_flags_a_flat_fund_and_handles_twins():
    prices = _prices(np.random.default_rng(2))
    prices["C"] = 50.0  # never moved
    prices["D"] = prices["A"] * 3  # perfectly correlated with A
    est = ReturnEstimator(prices=prices)
    cov = est.estimate_covariance_matrix(["A", "B", "C", "D"], "sample")
    assert any("zero variance: C" in r for r in est.repairs_)
    assert cov.loc["C", "C"] == 0.0
    np.testing.assert_allclose(cov.loc["A", "D"], cov.loc["A", "A"], rtol=1e-10)
    assert np.linalg.eigvalsh(cov.to_numpy())[0] > -1e-12


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_estimator_refuses_returns_whose_squares_overflow():
    """Returns near 1e200 once crashed inside numpy's eigvalsh with LinAlgError."""
    returns = _prices(np.random.default_rng(3)).pct_change().iloc[1:]
    returns.iloc[10, 1] = 1e200
    for method in ("sample", "ledoit_wolf", "oas", "ewma"):
        with pytest.raises(DataError, match="overflows") as err:
            ReturnEstimator(returns).estimate_covariance_matrix(["A", "B", "C"], method)
        assert err.value.column in ("A", "B", "C")


@pytest.mark.parametrize(
    ("value", "match"), [(np.inf, "infinite return"), (-np.inf, "infinite return")]
)
def test_estimator_refuses_infinite_returns_naming_the_fund(value, match):
    returns = _prices(np.random.default_rng(4)).pct_change().iloc[1:]
    returns.iloc[7, 2] = value
    with pytest.raises(DataError, match=match) as err:
        ReturnEstimator(returns).estimate_expected_returns(["A", "B", "C"])
    assert err.value.column == "C"


# --------------------------------------------------------------------- leverage and bounds
def test_ten_times_leveraged_fund_respects_exposure_and_notional_caps():
    lev = FundDefinition("X10", exposures={"US_EQUITY": 1000.0}, source="test")
    eng = OptimizationEngine(fund_map=fund_map([lev]))
    syms = [*SYMBOLS, "X10"]
    cov = np.zeros((5, 5))
    cov[:4, :4] = good_cov()
    cov[4, :4] = cov[:4, 4] = 10 * good_cov()[0]
    cov[4, 4] = 100 * good_cov()[0, 0]
    mu = np.append(MU, 10 * MU[0] - 9 * 0.03)  # ten times equity, financed at 3%
    c = OptimizationConstraints(max_exposure_per_type={"US_EQUITY": 0.9}, max_total_notional=1.6)
    res = eng.optimize_mean_variance(syms, mu, cov, c, "max_sharpe", 0.02)
    assert res.success
    w = res.weights.to_numpy()
    equity = w[0] + 10 * w[4]
    assert res.exposures["US_EQUITY"] == pytest.approx(equity, abs=1e-12)
    assert equity <= 0.9 + 1e-9 and res.total_notional <= 1.6 + 1e-9
    assert res.total_notional == pytest.approx(w[:4].sum() + 10 * w[4], abs=1e-12)
    rows = [(np.array([1, 0, 0, 0, 10.0]), 0.9), (np.array([1, 1, 1, 1, 10.0]), 1.6)]
    assert res.sharpe_ratio == pytest.approx(cvx_max_sharpe(mu, cov, 0.02, rows), rel=1e-6)
    with pytest.raises(ValidationError, match="X11.*absurd"):
        FundExposureMap([FundDefinition("X11", exposures={"US_EQUITY": 1100.0})])


@pytest.mark.parametrize("objective", ["min_volatility", "max_sharpe"])
def test_floor_equal_to_cap_is_solved_exactly(engine, objective):
    c = OptimizationConstraints(
        max_exposure_per_type={"US_EQUITY": 0.35}, min_exposure_per_type={"US_EQUITY": 0.35}
    )
    res = engine.optimize_mean_variance(SYMBOLS, MU, good_cov(), c, objective, 0.02)
    assert res.success and not res.constraint_violations, res.message
    assert res.weights["EQ"] == pytest.approx(0.35, abs=1e-9)
    rows = [(np.array([1.0, 0, 0, 0]), 0.35), (np.array([-1.0, 0, 0, 0]), -0.35)]
    if objective == "min_volatility":
        want = cvx_min_var(good_cov(), rows=rows)
        assert res.expected_volatility**2 == pytest.approx(want, rel=1e-6)
    else:
        want = cvx_max_sharpe(MU, good_cov(), 0.02, rows)
        assert res.sharpe_ratio == pytest.approx(want, rel=1e-6)


ONE_POINT = {
    "max weights sum to 100%": (OptimizationConstraints(max_weight=0.25), [0.25] * 4),
    "min weights sum to 100%": (
        OptimizationConstraints(
            fund_bounds={
                "EQ": (0.4, None),
                "BND": (0.3, None),
                "GLD": (0.2, None),
                "TREND": (0.1, None),
            }
        ),
        [0.4, 0.3, 0.2, 0.1],
    ),
}


@pytest.mark.parametrize("objective", ["min_volatility", "max_sharpe", "max_return"])
@pytest.mark.parametrize("case", list(ONE_POINT))
def test_constraints_with_one_feasible_point_give_that_point(engine, case, objective):
    constraints, point = ONE_POINT[case]
    res = engine.optimize_mean_variance(SYMBOLS, MU, good_cov(), constraints, objective, 0.02)
    assert res.success and not res.constraint_violations, res.message
    np.testing.assert_allclose(res.weights.to_numpy(), point, atol=1e-9)


def test_floor_just_above_cap_is_refused_naming_both(engine):
    c = OptimizationConstraints(
        max_exposure_per_type={"US_EQUITY": 0.35}, min_exposure_per_type={"US_EQUITY": 0.3501}
    )
    with pytest.raises(InfeasibleError) as err:
        engine.optimize_mean_variance(SYMBOLS, MU, good_cov(), c, "min_volatility")
    assert "US_EQUITY" in str(err.value) and "floor" in str(err.value)
    assert err.value.conflicts


def test_a_covariance_needing_no_repair_is_used_as_given_and_edits_are_seen(engine):
    """An exactly symmetric PSD covariance is used as the caller's array (no copy kept);
    one that needed repair comes back as the engine's read-only copy. Editing the
    caller's array in place, without making it invalid, changes the answer at once."""
    from core.optimization.engine import prepare_covariance

    cov = good_cov()
    prepare_covariance(cov, SYMBOLS)  # first sight: checked (and the verdict kept)
    kept, repairs = prepare_covariance(cov, SYMBOLS)
    assert kept is cov and not repairs
    skew = cov.copy()
    skew[0, 1] += 1e-12  # asymmetric by rounding: symmetrised, so a copy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StackOptWarning)
        prepare_covariance(skew, SYMBOLS)
        fixed, _ = prepare_covariance(skew, SYMBOLS)
    assert fixed is not skew and not fixed.flags.writeable
    assert fixed[0, 1] == fixed[1, 0]

    before = engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "min_volatility")
    cov[0, 0] *= 4.0  # still symmetric and PSD: a riskier first fund
    after = engine.optimize_mean_variance(SYMBOLS, MU, cov, None, "min_volatility")
    assert after.weights.iloc[0] < before.weights.iloc[0] - 1e-3
    assert after.expected_volatility**2 == pytest.approx(cvx_min_var(cov), rel=1e-6)


def test_one_pass_products_match_numpy_and_carry_nan():
    """The compiled pass that fingerprints a covariance and multiplies it by a second
    vector gives numpy's products (every order, including ones not a multiple of its
    four-row blocks), and a NaN or an infinity in the matrix reaches both."""
    from core.optimization.matvec_kernel import products

    rng = np.random.default_rng(3)
    for n in (1, 3, 4, 7, 64, 130):
        a = rng.standard_normal((n, n))
        x, y = rng.standard_normal(n), rng.standard_normal(n)
        ax, ay = products(a, x, y)
        np.testing.assert_allclose(ax, a @ x, rtol=1e-12, atol=1e-12 * np.abs(a).sum())
        np.testing.assert_allclose(ay, a @ y, rtol=1e-12, atol=1e-12 * np.abs(a).sum())
        again, _ = products(a, x, np.zeros(n))
        assert again.tobytes() == ax.tobytes()  # the fingerprint ignores the second vector
    for bad in (np.nan, np.inf):
        a = np.eye(6)
        a[4, 1] = bad
        ax, ay = products(a, np.ones(6), np.ones(6))
        assert not np.isfinite(ax[4]) and not np.isfinite(ay[4])


def test_covariance_times_a_vector_comes_with_its_preparation(monkeypatch):
    """prepare_covariance_times returns the prepared matrix times x: from the
    fingerprint's pass when the caller's matrix is used as it is, from the repaired copy
    otherwise; it keys the kept checks exactly as prepare_covariance does."""
    from core.optimization import engine as eng

    checks = []
    real = eng._prepare_covariance
    monkeypatch.setattr(eng, "_prepare_covariance", lambda c, s: checks.append(1) or real(c, s))
    x = np.linspace(0.5, 1.5, len(SYMBOLS))
    cov = good_cov() * 1.2345  # a matrix no other test has shown the engine
    for _ in range(2):  # first sight, then the kept verdict
        prepared, repairs, cx = eng.prepare_covariance_times(cov, SYMBOLS, x)
        np.testing.assert_allclose(cx, cov @ x, rtol=1e-13)
        assert not repairs
    assert eng.prepare_covariance(cov, SYMBOLS)[0] is cov
    assert len(checks) == 1  # one O(n^3) check for the three calls

    rng = np.random.default_rng(0)
    v = rng.standard_normal((len(SYMBOLS), 2))
    indefinite = v @ v.T - 0.01 * np.eye(len(SYMBOLS))  # repaired: clipped eigenvalues
    skew = cov.copy()
    skew[0, 1] += 1e-4  # repaired: symmetrised
    for bad, repaired in ((indefinite, True), (skew, True), (np.asfortranarray(cov), False)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StackOptWarning)
            for _ in range(2):
                prepared, _, cx = eng.prepare_covariance_times(bad, SYMBOLS, x)
                assert np.array_equal(cx, prepared @ x)
                # the repaired matrix's product, not the caller's
                assert np.allclose(cx, bad @ x, rtol=1e-9) != repaired
    nan = cov.copy()
    nan[2, 3] = nan[3, 2] = np.nan
    with pytest.raises(DataError, match=SYMBOLS[2]):
        eng.prepare_covariance_times(nan, SYMBOLS, x)
