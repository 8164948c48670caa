"""Risk budgeting: closed forms, a cvxpy log-barrier reference, properties, errors."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ValidationError
from core.optimization import risk_parity as rp
from core.optimization.risk_parity import (
    DENSE_MAX_N,
    SMALL_N,
    exposure_risk_budget_targets,
    risk_budget_weights,
    risk_contributions,
    scale_to_volatility,
)

EPS = np.finfo(float).eps


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


def log_barrier_value(weights: np.ndarray, cov: np.ndarray, budgets: np.ndarray) -> float:
    """``min_t f(t w)`` for ``f(y) = 0.5 y' S y - b' log y`` (budgets summing to 1).

    The minimum along the ray is at ``t^2 w' S w = 1``, so the value is
    ``0.5 + 0.5 log(w' S w) - b' log w``: the log-barrier objective of a weight vector.
    """
    return 0.5 + 0.5 * float(np.log(weights @ cov @ weights)) - float(budgets @ np.log(weights))


def rounding_floor(weights: np.ndarray, cov: np.ndarray) -> float:
    """Relative error with which double precision can even evaluate ``(S w)_i``.

    ``eps * sqrt(n) * max_i (|S| w)_i / |S w|_i``: where the products cancel (offsetting
    assets, nearly singular matrices) no solver can make the risk contributions more
    exact than this, whatever its algorithm.
    """
    n = weights.size
    return float(EPS * np.sqrt(n) * np.max((np.abs(cov) @ weights) / np.abs(cov @ weights)))


def relative_budget_error(weights: np.ndarray, cov: np.ndarray, budgets: np.ndarray) -> float:
    return float(np.max(np.abs(risk_contributions(weights, cov) / budgets - 1.0)))


def mixed_factor_cov(rng: np.random.Generator, n: int, factors: int, ridge: float):
    """Factors with loadings of both signs (offsetting assets) plus a small ridge."""
    b = rng.normal(size=(n, factors))
    return b @ b.T + ridge * np.eye(n)


def correlated_cov(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """Highly correlated assets: equicorrelation ``rho`` plus a little noise, vols 5-40%."""
    noise = rng.normal(size=(n, 3)) * 0.05
    corr = rho * np.ones((n, n)) + noise @ noise.T
    corr[np.diag_indices(n)] = 1.0 + float(np.sum(noise**2, axis=1).max())
    vol = rng.uniform(0.05, 0.40, n)
    return corr * np.outer(vol, vol)


def hard_case(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "factor":
        return factor_cov(n, seed)
    if kind == "mixed 1e-3":
        return mixed_factor_cov(rng, n, 5, 1e-3)
    if kind == "near-singular":
        return random_cov(rng, n, 3, 1e-4)
    if kind == "one factor 1e-6":
        return mixed_factor_cov(rng, n, 1, 1e-6)
    if kind == "correlated 0.995":
        return correlated_cov(rng, n, 0.995)
    if kind == "sample T=n+20":
        x = rng.normal(size=(n + 20, n)) * rng.uniform(0.1, 0.4, n)
        return np.cov(x, rowvar=False)
    raise AssertionError(kind)


def budgets_of(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    if kind == "equal":
        b = np.ones(n)
    elif kind == "uniform":
        b = rng.uniform(0.2, 1.0, n)
    else:  # four decades apart
        b = 10.0 ** rng.uniform(-4, 0, n)
    return b / b.sum()


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
    assert sol.method == {"newton": "newton", "ccd": "ccd", "auto": "newton-cg"}[method]
    np.testing.assert_allclose(sol.weights, ref.weights, rtol=1e-11)


@pytest.mark.parametrize("equal", [True, False])
def test_n1000_factor_model_needs_only_matrix_vector_products(equal):
    # The benchmark's kind of problem: Newton with Jacobi-CG, no factorisation, few steps.
    cov = factor_cov(1000, seed=1)
    b = budgets_of("equal" if equal else "uniform", 1000, 1)
    sol = risk_budget_weights(cov, None if equal else b)
    assert sol.method == "newton-cg" and sol.iterations <= 8
    assert sol.converged and sol.max_relative_error <= 1e-12
    # Recomputed independently of the solver's own bookkeeping.
    assert relative_budget_error(sol.weights, cov, b) <= 1e-10
    assert sol.volatility == pytest.approx(np.sqrt(sol.weights @ cov @ sol.weights), rel=1e-12)


@pytest.mark.parametrize(
    ("kind", "n", "budgets"),
    [
        ("factor", 300, "equal"),
        ("factor", 300, "decades"),
        ("mixed 1e-3", 300, "equal"),
        ("mixed 1e-3", 200, "uniform"),
        ("near-singular", 150, "uniform"),
        ("one factor 1e-6", 100, "equal"),
        ("correlated 0.995", 200, "uniform"),
        ("sample T=n+20", 200, "equal"),
        ("sample T=n+20", 120, "decades"),
    ],
)
def test_agrees_with_cvxpy_on_hard_covariances(kind, n, budgets):
    cov = hard_case(kind, n, seed=n)
    b = budgets_of(budgets, n, seed=n)
    sol = risk_budget_weights(cov, b)
    ref = cvxpy_log_barrier(cov, b)
    assert np.all(sol.weights > 0) and sol.weights.sum() == pytest.approx(1.0, abs=1e-14)
    # Same minimiser of the log-barrier program: objective to 1e-8 (ours never worse).
    ours, theirs = log_barrier_value(sol.weights, cov, b), log_barrier_value(ref, cov, b)
    assert abs(ours - theirs) <= 1e-8 * max(1.0, abs(theirs))
    assert ours <= theirs + 1e-9  # evaluating f itself loses digits on singular matrices
    np.testing.assert_allclose(sol.weights, ref, rtol=1e-6)
    # Budgets met to 1e-10 relative, or to the rounding floor where products cancel.
    floor = rounding_floor(sol.weights, cov)
    assert relative_budget_error(sol.weights, cov, b) <= max(1e-10, floor)
    assert sol.max_budget_error <= 1e-8  # what the engine calls an exact answer


def test_ill_conditioned_auto_factors_once_cg_is_slow():
    # Offsetting factor loadings and a tiny ridge: Jacobi-CG needs many iterations a step,
    # so the Newton matrix is factored and preconditions the rest.
    n = 300
    assert n > SMALL_N
    cov = hard_case("mixed 1e-3", n, seed=7)
    sol = risk_budget_weights(cov)
    assert sol.method == "newton-cg+chol"
    dense = risk_budget_weights(cov, method="newton")
    assert dense.method == "newton"
    np.testing.assert_allclose(sol.weights, dense.weights, rtol=1e-8)
    assert relative_budget_error(sol.weights, cov, np.full(n, 1 / n)) <= max(
        1e-10, rounding_floor(sol.weights, cov)
    )


def test_cg_only_path_above_the_dense_limit(monkeypatch):
    # Above DENSE_MAX_N nothing n x n is allocated: the same hard problem must still be
    # solved by CG alone (tested with a lowered limit to keep the test fast).
    n = 200
    cov = hard_case("mixed 1e-3", n, seed=3)
    ref = risk_budget_weights(cov, method="newton")
    monkeypatch.setattr(rp, "DENSE_MAX_N", 50)
    assert n > rp.DENSE_MAX_N and DENSE_MAX_N >= 1000
    sol = risk_budget_weights(cov)
    assert sol.method == "newton-cg"
    np.testing.assert_allclose(sol.weights, ref.weights, rtol=1e-8)
    assert relative_budget_error(sol.weights, cov, np.full(n, 1 / n)) <= max(
        1e-10, rounding_floor(sol.weights, cov)
    )


def test_ccd_hands_over_to_newton_when_it_crawls():
    # Five strong factors and tiny idiosyncratic risk: CCD crawls, Newton finishes.
    n = 150
    cov = hard_case("mixed 1e-3", n, seed=11)
    sol = risk_budget_weights(cov, method="ccd", max_iter=30)
    assert sol.method == "ccd+newton" and sol.iterations > 30
    ref = risk_budget_weights(cov)
    np.testing.assert_allclose(sol.weights, ref.weights, rtol=1e-8)


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(
        ["factor", "mixed 1e-3", "near-singular", "one factor 1e-6", "correlated 0.995",
         "sample T=n+20"]
    ),
    n=st.integers(3, 120),
    budgets=st.sampled_from(["equal", "uniform", "decades"]),
    seed=st.integers(0, 2**31),
)  # fmt: skip
def test_hard_covariances_property(kind, n, budgets, seed):
    cov = hard_case(kind, n, seed)
    b = budgets_of(budgets, n, seed)
    sol = risk_budget_weights(cov, b)
    assert np.all(sol.weights > 0) and sol.weights.sum() == pytest.approx(1.0, abs=1e-14)
    assert relative_budget_error(sol.weights, cov, b) <= max(
        1e-10, 2 * rounding_floor(sol.weights, cov)
    )
    assert sol.max_relative_error <= max(1e-10, 2 * rounding_floor(sol.weights, cov))
    # Plain dense Newton (a factorisation every step) lands on the same minimiser.
    dense = risk_budget_weights(cov, b, method="newton")
    assert (
        abs(log_barrier_value(sol.weights, cov, b) - log_barrier_value(dense.weights, cov, b))
        <= 1e-8
    )


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["factor", "mixed 1e-3", "near-singular", "sample T=n+20"]),
    n=st.integers(SMALL_N + 1, 160),
    budgets=st.sampled_from(["equal", "uniform", "decades"]),
    seed=st.integers(0, 2**31),
)
def test_compiled_newton_steps_agree_with_the_python_loop(kind, n, budgets, seed):
    """The compiled Jacobi-CG Newton steps (rp_kernel) and the Python loop land on the
    same weights, whether the kernel finishes or hands a slow problem back to be factored."""
    cov = hard_case(kind, n, seed)
    b = budgets_of(budgets, n, seed)
    outcomes: list[str] = []
    with pytest.MonkeyPatch.context() as m:
        m.setattr(rp, "_newton_compiled", _spying(outcomes))
        compiled = risk_budget_weights(cov, b)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(rp, "_newton_compiled", lambda *args: None)
        python = risk_budget_weights(cov, b)
    assert outcomes and outcomes[0] in ("done", "handback")
    assert compiled.method == python.method  # factored exactly where Python factors
    floor = max(1e-10, 2 * rounding_floor(python.weights, cov))
    assert relative_budget_error(compiled.weights, cov, b) <= floor
    np.testing.assert_allclose(compiled.weights, python.weights, rtol=max(1e-9, 1e3 * floor))


def test_compiled_newton_hands_back_and_reports_like_the_python_loop():
    factor = factor_cov(500, seed=1)  # CG converges fast: the kernel finishes
    assert rp._newton_compiled(
        factor, np.full(500, 1 / 500), *_solver_start(factor), 1e-12, 500,
        rp._NewtonSystem(factor, np.full(500, 1 / 500), "auto"),
    )[0] == "done"  # fmt: skip
    hard = hard_case("mixed 1e-3", 300, seed=7)  # CG is slow: factored in Python
    system = rp._NewtonSystem(hard, np.full(300, 1 / 300), "auto")
    out = rp._newton_compiled(hard, np.full(300, 1 / 300), *_solver_start(hard), 1e-12, 500, system)
    assert out[0] == "handback" and system.jacobi_its > system.budget
    # two perfectly offsetting assets among 70: named after the Python loop's factored
    # steps, and (CG only, above the dense limit) straight from the compiled steps
    cov = np.eye(70)
    cov[:2, :2] = [[1.0, -1.0], [-1.0, 1.0]]
    names = [f"F{i}" for i in range(70)]
    for dense_max, outcome in ((rp.DENSE_MAX_N, "handback"), (50, "diverged")):
        outcomes = []
        with pytest.MonkeyPatch.context() as m:
            m.setattr(rp, "DENSE_MAX_N", dense_max)
            m.setattr(rp, "_newton_compiled", _spying(outcomes))
            with pytest.raises(ValidationError, match="zero variance.*'F0', 'F1'"):
                risk_budget_weights(cov, names=names)
        assert outcomes[0] == outcome


def _spying(outcomes: list[str]):
    """rp._newton_compiled, recording each outcome in ``outcomes``."""
    real = rp._newton_compiled

    def spy(*args):
        out = real(*args)
        outcomes.append(out[0])
        return out

    return spy


def _solver_start(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """risk_budget_weights' own start for equal budgets (inverse volatility, one sweep)."""
    b = np.full(cov.shape[0], 1 / cov.shape[0])
    y = np.sqrt(b / np.diagonal(cov))
    sy = cov @ y
    scale = 1.0 / np.sqrt(y @ sy)
    return rp._start(cov, b, y * scale, sy * scale)


def test_validated_skips_only_the_symmetry_scan():
    cov = factor_cov(80, seed=2)
    plain = risk_budget_weights(cov)
    fast = risk_budget_weights(cov, validated=True)
    np.testing.assert_array_equal(plain.weights, fast.weights)
    # Non-finite entries are still caught on the way (by the first product).
    bad = cov.copy()
    bad[3, 5] = bad[5, 3] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        risk_budget_weights(bad, validated=True)
    # Symmetry is the caller's promise: only the unvalidated call checks it.
    skew = cov.copy()
    skew[0, 1] += 1e-3
    with pytest.raises(ValidationError, match="symmetric"):
        risk_budget_weights(skew)
    risk_budget_weights(skew, validated=True)


def test_read_only_and_fortran_ordered_input_is_neither_copied_nor_changed():
    cov = factor_cov(90, seed=4)
    frozen = cov.copy()
    frozen.flags.writeable = False  # the engine's prepared covariance is read-only
    b = budgets_of("uniform", 90, 4)
    sol = risk_budget_weights(frozen, b)
    np.testing.assert_array_equal(frozen, cov)
    fortran = risk_budget_weights(np.asfortranarray(cov), b)
    np.testing.assert_allclose(fortran.weights, sol.weights, rtol=1e-13)


def test_nan_in_an_unbudgeted_asset_is_still_reported():
    cov = factor_cov(6, seed=1)
    cov[0, 4] = cov[4, 0] = np.inf
    budgets = np.array([0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValidationError, match="NaN or infinite"):
        risk_budget_weights(cov, budgets)


def test_overflowing_products_are_reported():
    # Finite entries whose products overflow: a units problem, said so.
    cov = np.full((10, 10), 1e308)
    cov[np.diag_indices(10)] = 1.0
    with pytest.raises(ValidationError, match="overflow"):
        risk_budget_weights(cov)


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
    np.testing.assert_allclose(sol.weights, cvxpy_log_barrier(cov, np.full(5, 0.2)), rtol=1e-6)


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
