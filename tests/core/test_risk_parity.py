"""Risk budgeting: closed forms, a cvxpy log-barrier reference, properties, errors."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ValidationError
from core.optimization.risk_parity import (
    NEWTON_MAX_N,
    exposure_risk_budget_targets,
    risk_budget_weights,
    risk_contributions,
    scale_to_volatility,
)


def random_cov(rng: np.random.Generator, n: int, factors: int = 3, ridge: float = 0.05):
    """A factor-model-like covariance with vols of 5-40% (annual units)."""
    b = rng.normal(size=(n, factors))
    s = b @ b.T + ridge * np.diag(rng.uniform(0.5, 2.0, n))
    vol = rng.uniform(0.05, 0.40, n)
    d = vol / np.sqrt(np.diag(s))
    return s * np.outer(d, d)


def factor_cov(n: int, seed: int = 0) -> np.ndarray:
    """A 5-factor sample covariance from 2520 simulated daily returns (PERFORMANCE.md's kind)."""
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(n, 5)) * np.array([0.15, 0.08, 0.06, 0.05, 0.04])
    loadings[:, 0] = np.abs(loadings[:, 0]) + 0.075
    vol = rng.uniform(0.10, 0.40, n)
    idio = np.maximum(vol**2 - np.sum(loadings**2, axis=1), 0.02**2)
    t = 2520
    x = rng.standard_t(5, (t, n)) * np.sqrt(0.6 * idio / 252)
    x += rng.normal(size=(t, 5)) @ (loadings.T / np.sqrt(252))
    return np.cov(x, rowvar=False) * 252


def cvxpy_log_barrier(cov: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """Reference: min 0.5 y' S y - b' log y with Clarabel, then w = y / sum y."""
    y = cp.Variable(cov.shape[0], pos=True)
    objective = 0.5 * cp.quad_form(y, cp.psd_wrap(cov)) - budgets @ cp.log(y)
    prob = cp.Problem(cp.Minimize(objective))
    prob.solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=500
    )
    assert prob.status == cp.OPTIMAL
    return y.value / y.value.sum()


# ------------------------------------------------------------------- closed forms
def test_diagonal_covariance_closed_form():
    sigma = np.array([0.05, 0.10, 0.20, 0.40])
    budgets = np.array([0.1, 0.2, 0.3, 0.4])
    sol = risk_budget_weights(np.diag(sigma**2), budgets)
    expected = np.sqrt(budgets) / sigma
    np.testing.assert_allclose(sol.weights, expected / expected.sum(), rtol=1e-12)
    assert sol.converged
    np.testing.assert_allclose(sol.risk_contributions, budgets, atol=1e-12)


@pytest.mark.parametrize("rho", [-0.9, -0.3, 0.0, 0.5, 0.99])
def test_two_assets_inverse_volatility_whatever_the_correlation(rho):
    s1, s2 = 0.1, 0.3
    cov = np.array([[s1 * s1, rho * s1 * s2], [rho * s1 * s2, s2 * s2]])
    sol = risk_budget_weights(cov)
    np.testing.assert_allclose(sol.weights, np.array([1 / s1, 1 / s2]) / (1 / s1 + 1 / s2))
    np.testing.assert_allclose(sol.volatility, np.sqrt(sol.weights @ cov @ sol.weights))


def test_equicorrelated_equal_vols_give_equal_weights():
    n, rho = 7, 0.6
    cov = 0.04 * (rho * np.ones((n, n)) + (1 - rho) * np.eye(n))
    np.testing.assert_allclose(risk_budget_weights(cov).weights, np.full(n, 1 / n), rtol=1e-12)


# -------------------------------------------------------------- reference and properties
@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_cvxpy_log_barrier(seed):
    rng = np.random.default_rng(seed)
    n = 12
    cov = random_cov(rng, n)
    budgets = rng.uniform(0.2, 1.0, n)
    budgets /= budgets.sum()
    ref = cvxpy_log_barrier(cov, budgets)
    sol = risk_budget_weights(cov, budgets)
    np.testing.assert_allclose(sol.weights, ref, atol=1e-6)
    np.testing.assert_allclose(sol.risk_contributions, budgets, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 50),
    factors=st.integers(1, 6),
    ridge=st.sampled_from([1e-3, 1e-2, 0.1, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_equal_risk_contributions_property(n, factors, ridge, seed):
    rng = np.random.default_rng(seed)
    cov = random_cov(rng, n, factors, ridge)
    sol = risk_budget_weights(cov)
    assert sol.weights.shape == (n,)
    assert np.all(sol.weights > 0)
    assert sol.weights.sum() == pytest.approx(1.0, abs=1e-14)
    rc = risk_contributions(sol.weights, cov)
    np.testing.assert_allclose(rc, np.full(n, 1 / n), atol=1e-10)
    assert sol.max_budget_error <= 1e-10


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 40), seed=st.integers(0, 2**32 - 1), zeros=st.integers(0, 3))
def test_budgets_respected_property(n, seed, zeros):
    rng = np.random.default_rng(seed)
    cov = random_cov(rng, n)
    budgets = rng.uniform(0.01, 1.0, n)
    budgets[rng.permutation(n)[: min(zeros, n - 1)]] = 0.0
    sol = risk_budget_weights(cov, budgets)
    b = budgets / budgets.sum()
    np.testing.assert_allclose(sol.budgets, b)
    np.testing.assert_allclose(sol.risk_contributions, b, atol=1e-10)
    assert np.all(sol.weights[b == 0] == 0.0)
    assert np.all(sol.weights[b > 0] > 0)


def test_zero_budgets_equal_the_reduced_problem():
    rng = np.random.default_rng(3)
    cov = random_cov(rng, 6)
    budgets = np.array([1.0, 0.0, 2.0, 0.0, 1.0, 1.0])
    full = risk_budget_weights(cov, budgets)
    keep = budgets > 0
    reduced = risk_budget_weights(cov[np.ix_(keep, keep)], budgets[keep])
    np.testing.assert_allclose(full.weights[keep], reduced.weights, atol=1e-14)
    assert np.all(full.weights[~keep] == 0)


def test_single_positive_budget_is_fully_invested_in_it():
    cov = random_cov(np.random.default_rng(0), 4)
    sol = risk_budget_weights(cov, np.array([0.0, 0.0, 1.0, 0.0]))
    np.testing.assert_array_equal(sol.weights, [0.0, 0.0, 1.0, 0.0])
    assert sol.method == "trivial" and sol.converged


@pytest.mark.parametrize("method", ["newton", "ccd", "auto"])
def test_methods_agree(method):
    cov = factor_cov(120, seed=5)
    sol = risk_budget_weights(cov, method=method)
    ref = risk_budget_weights(cov, method="newton")
    assert sol.converged
    assert sol.method.startswith(method if method != "auto" else "newton")
    np.testing.assert_allclose(sol.weights, ref.weights, atol=1e-12)


def test_n1000_factor_model_auto_uses_ccd():
    cov = factor_cov(1000, seed=1)
    sol = risk_budget_weights(cov)
    assert 1000 > NEWTON_MAX_N and sol.method.startswith("ccd")
    assert sol.converged
    np.testing.assert_allclose(risk_contributions(sol.weights, cov), 1e-3, atol=1e-11)


def test_ccd_hands_over_to_newton_on_an_ill_conditioned_matrix():
    # Five strong factors and tiny idiosyncratic risk: CCD crawls, Newton finishes.
    rng = np.random.default_rng(7)
    n = NEWTON_MAX_N + 100
    b = rng.normal(size=(n, 5))
    cov = b @ b.T + 1e-3 * np.eye(n)
    sol = risk_budget_weights(cov)
    assert sol.method == "ccd+newton"
    np.testing.assert_allclose(sol.risk_contributions, 1 / n, atol=1e-10)


# ------------------------------------------------------------------ singular inputs
def test_duplicated_asset_singular_covariance_still_solves():
    rng = np.random.default_rng(11)
    base = random_cov(rng, 4)
    cov = np.zeros((5, 5))
    cov[:4, :4] = base
    cov[4, :4] = cov[:4, 4] = base[0]  # asset 4 is a copy of asset 0
    cov[4, 4] = base[0, 0]
    assert np.linalg.matrix_rank(cov) == 4
    sol = risk_budget_weights(cov)
    np.testing.assert_allclose(sol.risk_contributions, 0.2, atol=1e-10)
    assert sol.weights[0] == pytest.approx(sol.weights[4], rel=1e-9)


def test_zero_variance_asset_with_budget_is_named():
    cov = np.diag([0.04, 0.0, 0.09])
    with pytest.raises(ValidationError, match="'BIL'"):
        risk_budget_weights(cov, names=["SPY", "BIL", "GLD"])
    with pytest.raises(ValidationError, match="#1"):
        risk_budget_weights(cov)


def test_zero_variance_asset_with_zero_budget_is_fine():
    cov = np.diag([0.04, 0.0, 0.09])
    sol = risk_budget_weights(cov, np.array([1.0, 0.0, 1.0]))
    np.testing.assert_allclose(sol.weights, [0.6, 0.0, 0.4])


def test_offsetting_assets_raise_validation_error():
    # A and B perfectly offset: the 50/50 mix is riskless, so risk shares are undefined.
    cov = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValidationError, match="zero variance.*'A', 'B'"):
        risk_budget_weights(cov, names=["A", "B", "C"])


@pytest.mark.parametrize(
    ("cov", "budgets", "message"),
    [
        (np.ones((2, 3)), None, "square"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), None, "NaN"),
        (np.array([[1.0, 0.5], [0.2, 1.0]]), None, "symmetric"),
        (np.eye(2), np.array([1.0, -1.0]), ">= 0"),
        (np.eye(2), np.array([0.0, 0.0]), "positive"),
        (np.eye(2), np.array([1.0, 1.0, 1.0]), "shape"),
        (np.array([[-1.0, 0.0], [0.0, 1.0]]), None, "negative variance"),
        (np.array([[1.0, -2.0], [-2.0, 1.0]]), None, "positive semidefinite"),
    ],
)
def test_bad_inputs(cov, budgets, message):
    with pytest.raises(ValidationError, match=message):
        risk_budget_weights(cov, budgets)


# ------------------------------------------------------------ exposures and scaling
def test_exposure_targets_match_the_solver_and_skip_cash():
    rng = np.random.default_rng(2)
    cov_x = random_cov(rng, 5)
    cov_x[0, :] = cov_x[:, 0] = 0.0  # cash: no excess-return variance
    codes = ["CASH_TBILL", "US_EQUITY", "INTL_DEV", "UST_10Y", "GOLD"]
    with pytest.raises(ValidationError, match="CASH_TBILL"):
        exposure_risk_budget_targets(cov_x, None, codes=codes)
    budgets = np.array([0.0, 1.0, 1.0, 2.0, 1.0])
    x = exposure_risk_budget_targets(cov_x, budgets, codes=codes)
    assert x[0] == 0.0 and x.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(risk_contributions(x, cov_x), budgets / budgets.sum(), atol=1e-12)


def test_exposure_targets_on_real_exposure_history(shared_data):
    rets = pd.read_csv(shared_data / "exposure_monthly_returns.csv", index_col=0)
    excess = rets.drop(columns="CASH_TBILL").sub(rets["CASH_TBILL"], axis=0).dropna()
    cov_x = excess.cov().to_numpy() * 12
    x = exposure_risk_budget_targets(cov_x, codes=list(excess.columns))
    np.testing.assert_allclose(risk_contributions(x, cov_x), 1 / len(x), atol=1e-12)
    # Treasuries are the least volatile exposures: they get the largest ERC weights.
    heaviest = excess.columns[np.argmax(x)]
    assert heaviest in ("UST_10Y", "UST_LONG")


def test_scale_to_volatility():
    cov = np.diag([0.04, 0.01])
    w = risk_budget_weights(cov).weights
    vol = np.sqrt(w @ cov @ w)
    scaled, scale = scale_to_volatility(w, cov, 0.10)
    assert scale == pytest.approx(0.10 / vol)
    assert np.sqrt(scaled @ cov @ scaled) == pytest.approx(0.10, rel=1e-14)
    capped, scale_c = scale_to_volatility(w, cov, 0.20, max_scale=1.5)
    assert 0.20 / vol > 1.5 and scale_c == 1.5
    np.testing.assert_allclose(capped, 1.5 * w)
    # Scaling down is never capped.
    _, down = scale_to_volatility(w, cov, 0.01, max_scale=1.5)
    assert down == pytest.approx(0.01 / vol)


@pytest.mark.parametrize(
    ("weights", "target", "cap", "message"),
    [
        (np.array([0.5, 0.5]), 0.0, None, "positive fraction"),
        (np.array([0.5, 0.5]), 0.1, -1.0, "max_scale"),
        (np.array([0.0, 0.0]), 0.1, None, "zero"),
        (np.array([1.0]), 0.1, None, "do not match"),
    ],
)
def test_scale_to_volatility_errors(weights, target, cap, message):
    with pytest.raises(ValidationError, match=message):
        scale_to_volatility(weights, np.diag([0.04, 0.01]), target, cap)
