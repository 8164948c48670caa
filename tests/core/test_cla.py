"""The exact frontier (corner portfolios) against closed forms, solve_qp, cvxpy and the engine."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

import core.optimization.cla as cla
from core.assumptions import MarketAssumptions
from core.errors import InfeasibleError, SolverError, ValidationError
from core.exposures import FundExposureMap
from core.optimization import mean_variance as mv
from core.optimization.cla import FrontierPath, PathPoint, frontier_path
from core.optimization.constraints import LinearForm, OptimizationConstraints, linear_form
from core.optimization.engine import OptimizationEngine
from core.optimization.qp import QPProblem, check_kkt, solve_qp

HYP = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = ("plain", "singular", "ties", "mu_ties", "redundant", "all_caps", "floors", "cash")


# --------------------------------------------------------------------------------------
# Problems and references
# --------------------------------------------------------------------------------------


def random_problem(seed: int, n: int, kind: str = "plain") -> tuple[QPProblem, np.ndarray]:
    """A feasible long-only problem: budget, weight caps, exposure caps (and floors).

    Equal weights are always feasible (caps and floors are set around them). ``kind``
    adds one degeneracy: a rank-3 covariance, two identical assets, tied returns,
    repeated and scaled rows, caps that sum to exactly 1 (every bound active),
    weight and exposure floors, or a riskless cash-like variable.
    """
    rng = np.random.default_rng(seed)
    B = rng.normal(0.0, 0.15, (n, 3))
    D = np.zeros(n) if kind == "singular" else rng.uniform(0.05, 0.35, n) ** 2
    cov = B @ B.T + np.diag(D)
    mu = rng.uniform(0.02, 0.12, n)
    lb = np.zeros(n)
    ub = np.maximum(rng.uniform(0.2, 1.0, n), 1.0 / n + 0.05)
    E = rng.uniform(0.0, 2.0, (3, n)) * (rng.uniform(size=(3, n)) < 0.5)
    if kind == "ties" and n >= 4:  # assets 1 and 2 are the same asset
        cov[:, 1] = cov[:, 2]
        cov[1, :] = cov[2, :]
        mu[1] = mu[2]
        ub[1] = ub[2]
        E[:, 1] = E[:, 2]
    if kind == "cash":
        E[:, 0] = 0.0
    rows = [*E]
    rhs = [*(E.mean(axis=1) * 1.1 + 0.02)]
    if kind == "mu_ties":
        mu = np.round(mu * 50.0) / 50.0
    if kind == "redundant":
        rows += [rows[0].copy(), 2.0 * rows[1]]
        rhs += [rhs[0], 2.0 * rhs[1]]
    if kind == "all_caps":
        ub = np.full(n, 1.0 / n)
    if kind == "floors":
        lb = rng.uniform(0.0, 0.5 / n, n)
        rows.append(-E[0])
        rhs.append(-0.9 * float(E[0].mean()))
    if kind == "cash":
        cov[0, :] = 0.0
        cov[:, 0] = 0.0
        mu[0] = 0.02
        ub[0] = 1.0
    pb = QPProblem(
        P=0.5 * (cov + cov.T), q=np.zeros(n), A_eq=np.ones((1, n)), b_eq=[1.0],
        A_ub=np.array(rows), b_ub=np.array(rhs), lb=lb, ub=ub,
    )  # fmt: skip
    return pb, mu


def target_problem(pb: QPProblem, mu: np.ndarray, r: float) -> QPProblem:
    """min 0.5 w' Sigma w subject to the constraints and mu' w >= r."""
    return QPProblem(
        P=pb.P, q=np.zeros(pb.n), A_eq=pb.A_eq, b_eq=pb.b_eq,
        A_ub=np.vstack([pb.A_ub, -mu[None, :]]), b_ub=np.append(pb.b_ub, -r),
        lb=pb.lb, ub=pb.ub,
    )  # fmt: skip


def target_kkt(pb: QPProblem, mu: np.ndarray, p: PathPoint) -> dict[str, float]:
    """check_kkt of a path point as min variance at its own return (multiplier t)."""
    tp = target_problem(pb, mu, p.expected_return)
    return check_kkt(tp, p.weights, p.y_eq, np.append(p.y_ub, p.t), p.z)


def lp_max_return(pb: QPProblem, mu: np.ndarray) -> float:
    res = linprog(
        -mu, A_ub=pb.A_ub if pb.m_ub else None, b_ub=pb.b_ub if pb.m_ub else None,
        A_eq=pb.A_eq, b_eq=pb.b_eq, bounds=list(zip(pb.lb, pb.ub, strict=True)),
        method="highs",
    )  # fmt: skip
    assert res.status == 0
    return float(-res.fun)


def cvxpy_min_variance(pb: QPProblem, mu: np.ndarray, r: float) -> tuple[float, np.ndarray, bool]:
    """0.5 min w' Sigma w at return >= r by Clarabel through cvxpy (reference).

    Returns (objective, weights, exact). Clarabel at 1e-10 can still miss by 1e-7
    relative on these problems (seen here, and in test_qp), so 1e-12 is asked first;
    only that answer is ``exact``. When Clarabel reports it only inaccurately, PIQP at
    1e-12, then Clarabel at 1e-10, give a reference that can only be trusted one way:
    no exact answer lies above it.
    """
    cp = pytest.importorskip("cvxpy")
    w = cp.Variable(pb.n)
    ev, vecs = np.linalg.eigh(pb.P)
    L = vecs * np.sqrt(np.clip(ev, 0.0, None))
    cons = [pb.A_eq @ w == pb.b_eq, pb.A_ub @ w <= pb.b_ub, w >= pb.lb, w <= pb.ub, mu @ w >= r]
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(L.T @ w)), cons)
    attempts = [
        ("CLARABEL", {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}),
        ("PIQP", {"eps_abs": 1e-12, "eps_rel": 1e-12}),
        ("CLARABEL", {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}),
    ]
    exact = True
    for solver, opts in attempts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # cvxpy's "may be inaccurate"
            prob.solve(solver=solver, **opts)
        if prob.status == "optimal":
            break
        exact = False
    assert prob.status == "optimal", prob.status
    return float(prob.value), np.asarray(w.value), exact


def assert_point_matches(
    pb: QPProblem, mu: np.ndarray, p: PathPoint, f_ref: float, x_ref: np.ndarray, unique: bool
) -> None:
    """Objective (0.5 w' Sigma w at the point's return) within 1e-8 of the reference on
    check_kkt's objective scale; weights within 1e-6 (plus what the reference's own
    suboptimality allows) when the minimiser is unique."""
    kkt = target_kkt(pb, mu, p)
    f = 0.5 * p.variance
    scale = max(abs(f_ref), kkt["objective_scale"])
    assert abs(f - f_ref) <= 1e-8 * scale, (f, f_ref, scale)
    if unique:
        lam = float(np.linalg.eigvalsh(pb.P)[0])
        slack = max(0.5 * float(x_ref @ pb.P @ x_ref) - f, 0.0)
        np.testing.assert_allclose(p.weights, x_ref, atol=1e-6 + np.sqrt(2.0 * slack / lam))


def assert_path_is_exact(pb: QPProblem, mu: np.ndarray, path: FrontierPath) -> None:
    """Corners ordered; every corner a KKT point of the t-form at its t; ends right."""
    R, V, T = path.returns, path.variances, path.t
    span = max(1.0, float(np.abs(R).max()))
    # (to rounding: a rebuild at a corner may polish w by ~1e-11)
    assert np.all(np.diff(R) >= -1e-10 * span)
    assert np.all(np.diff(V) >= -1e-10 * max(float(V.max()), 1e-12))
    assert np.all(np.diff(T) >= 0.0) and T[0] >= 0.0
    for c in path.corners:
        kkt = check_kkt(cla._t_problem(pb, mu, c.t), c.weights, c.y_eq, c.y_ub, c.z)
        assert kkt["primal"] <= 1e-8
        for key in ("dual", "stationarity", "complementarity", "gap"):
            assert kkt[key] <= 1e-9, (key, kkt[key], c.t)
    assert path.max_return == pytest.approx(lp_max_return(pb, mu), abs=1e-9 * span)
    first = solve_qp(pb)  # min variance
    v_min = float(first.x @ pb.P @ first.x)
    assert path.variances[0] == pytest.approx(v_min, abs=1e-9 * max(v_min, 1e-6 * pb.P.max()))
    assert path.min_return >= float(first.x @ mu) - 1e-9 * span


# --------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------


def test_two_assets_by_hand() -> None:
    s1, s2, rho = 0.10, 0.25, 0.3
    cov = np.array([[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]])
    mu = np.array([0.04, 0.09])
    pb = QPProblem(P=cov, q=np.zeros(2), A_eq=np.ones((1, 2)), b_eq=[1.0], lb=0.0, ub=1.0)
    path = frontier_path(pb, mu)
    a = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]  # curvature along (1, -1)
    w2_min = (cov[0, 0] - cov[0, 1]) / a
    slope = (mu[1] - mu[0]) / a  # dw2/dt while both are held
    assert len(path) == 2
    c0, c1 = path.corners
    assert c0.t == 0.0
    np.testing.assert_allclose(c0.weights, [1 - w2_min, w2_min], atol=1e-14)
    assert c1.t == pytest.approx((1.0 - w2_min) / slope, rel=1e-13)
    np.testing.assert_allclose(c1.weights, [0.0, 1.0], atol=1e-14)
    # a point halfway in return is halfway in weights (w is linear in t on a segment)
    mid = path.at_return(0.5 * (c0.expected_return + c1.expected_return))
    np.testing.assert_allclose(mid.weights, 0.5 * (c0.weights + c1.weights), atol=1e-14)
    assert mid.t == pytest.approx(0.5 * c1.t, rel=1e-12)
    assert mid.variance == pytest.approx(mid.weights @ cov @ mid.weights, rel=1e-14)


def test_unconstrained_segment_is_the_two_fund_line() -> None:
    """With only the budget active, w(t) = w_mv + t (S^-1 mu - S^-1 1 (1'S^-1 mu)/(1'S^-1 1))."""
    rng = np.random.default_rng(3)
    n = 6
    B = rng.normal(0, 0.1, (n, 2))
    cov = B @ B.T + np.diag(rng.uniform(0.02, 0.06, n))
    mu = rng.uniform(0.03, 0.08, n)
    pb = QPProblem(P=cov, q=np.zeros(n), A_eq=np.ones((1, n)), b_eq=[1.0], lb=-5.0, ub=5.0)
    path = frontier_path(pb, mu)
    inv1 = np.linalg.solve(cov, np.ones(n))
    invm = np.linalg.solve(cov, mu)
    w_mv = inv1 / inv1.sum()
    d = invm - inv1 * (invm.sum() / inv1.sum())
    c0, c1 = path.corners[:2]
    np.testing.assert_allclose(c0.weights, w_mv, atol=1e-13)
    np.testing.assert_allclose(c1.weights, w_mv + c1.t * d, atol=1e-12)
    assert np.isclose(np.abs(c1.weights).max(), 5.0)  # the first corner is a bound hit


def test_riskless_assets_start_at_the_best_riskless_mix() -> None:
    """Several zero-variance portfolios: the path starts at the one with most return."""
    cov = np.zeros((4, 4))
    cov[2, 2], cov[3, 3] = 0.04, 0.09
    mu = np.array([0.01, 0.02, 0.06, 0.08])
    pb = QPProblem(P=cov, q=np.zeros(4), A_eq=np.ones((1, 4)), b_eq=[1.0], lb=0.0, ub=0.7)
    path = frontier_path(pb, mu)
    c0 = path.corners[0]
    assert c0.variance == pytest.approx(0.0, abs=1e-16)
    np.testing.assert_allclose(c0.weights, [0.3, 0.7, 0.0, 0.0], atol=1e-14)
    assert path.max_return == pytest.approx(0.7 * 0.08 + 0.3 * 0.06, abs=1e-14)
    assert_path_is_exact(pb, mu, path)


def test_weight_at_zero_with_zero_multiplier_at_the_start() -> None:
    """Asset 3 covaries with the (1/2, 1/2) mix exactly as much as that mix varies, so
    the minimum-variance portfolio holds none of it and its bound multiplier is zero
    (a degenerate start); with the highest return it enters the path right at t = 0."""
    cov = np.array([[0.04, 0.0, 0.02], [0.0, 0.04, 0.02], [0.02, 0.02, 0.09]])
    mu = np.array([0.04, 0.05, 0.10])
    pb = QPProblem(P=cov, q=np.zeros(3), A_eq=np.ones((1, 3)), b_eq=[1.0], lb=0.0, ub=1.0)
    path = frontier_path(pb, mu)
    np.testing.assert_allclose(path.corners[0].weights, [0.5, 0.5, 0.0], atol=1e-14)
    assert_path_is_exact(pb, mu, path)
    for p in path.points(6):
        ref = solve_qp(target_problem(pb, mu, p.expected_return))
        assert_point_matches(pb, mu, p, ref.objective, ref.x, True)
    # just past t = 0 asset 3 is held already
    assert path.at_return(path.min_return + 1e-6).weights[2] > 0.0


# --------------------------------------------------------------------------------------
# Random problems against solve_qp point by point and cvxpy + Clarabel
# --------------------------------------------------------------------------------------


@HYP
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(3, 60),
    kind=st.sampled_from(KINDS),
)
def test_random_frontiers_match_solve_qp_and_cvxpy(seed: int, n: int, kind: str) -> None:
    pb, mu = random_problem(seed, n, kind)
    path = frontier_path(pb, mu)
    assert_path_is_exact(pb, mu, path)
    pts = path.points(7)
    assert len(pts) == 7
    np.testing.assert_allclose(
        [p.expected_return for p in pts],
        np.linspace(path.min_return, path.max_return, 7),
        atol=1e-12 * max(1.0, abs(path.max_return)),
    )
    unique = kind not in ("singular", "ties", "cash") or n < 4
    unique = unique and float(np.linalg.eigvalsh(pb.P)[0]) > 1e-8
    for i, p in enumerate(pts):
        kkt = target_kkt(pb, mu, p)
        assert kkt["primal"] <= 1e-8
        assert all(kkt[k] <= 1e-9 for k in ("dual", "stationarity", "complementarity", "gap"))
        # today's per-point method at the same target (at exactly the max return the
        # target row leaves only the LP face, and solve_qp may call that infeasible)
        try:
            ref = solve_qp(target_problem(pb, mu, p.expected_return))
        except InfeasibleError:
            assert i == len(pts) - 1
            continue
        assert_point_matches(pb, mu, p, ref.objective, ref.x, unique)
        if i in (1, 3, 5):
            f_ref, x_ref, exact = cvxpy_min_variance(pb, mu, p.expected_return)
            if exact:
                assert_point_matches(pb, mu, p, f_ref, x_ref, False)
            else:  # the path is never worse than a feasible reference
                scale = max(abs(f_ref), kkt["objective_scale"])
                assert 0.5 * p.variance <= f_ref + 1e-8 * scale


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), n=st.integers(5, 40), kind=st.sampled_from(KINDS))
def test_max_sharpe_matches_the_homogenised_qp(seed: int, n: int, kind: str) -> None:
    pb, mu = random_problem(seed, n, kind)
    rf = 0.01
    form = LinearForm(
        symbols=[f"A{i}" for i in range(n)], has_cash=False, lb=pb.lb, ub=pb.ub,
        A_eq=pb.A_eq, b_eq=pb.b_eq, eq_names=["budget"], A_ub=pb.A_ub, b_ub=pb.b_ub,
        ub_names=[f"row {i}" for i in range(pb.m_ub)], exposure_types=[],
        exposure_matrix=np.zeros((0, n)), notionals=np.ones(n), general_only=[],
    )  # fmt: skip
    path = frontier_path(form, mu, pb.P)
    if path.variances[0] <= 1e-14 * pb.P.max() and path.min_return > rf:
        # a riskless portfolio (cash, or a singular covariance) beats rf: no maximum
        with pytest.raises(ValidationError):
            path.max_sharpe(rf)
        return
    raw = mv.max_sharpe(form, mu, pb.P, rf, OptimizationConstraints())
    w = raw.v
    ref = (mu @ w - rf) / np.sqrt(w @ pb.P @ w)
    best = path.max_sharpe(rf)
    assert best.sharpe_ratio(rf) == pytest.approx(ref, abs=1e-9 * max(1.0, abs(ref)))
    assert best.sharpe_ratio(rf) >= ref - 1e-10 * abs(ref)  # never worse than the QP
    assert target_kkt(pb, mu, best)["stationarity"] <= 1e-9


def test_max_sharpe_without_positive_excess_return() -> None:
    pb, mu = random_problem(5, 8)
    with pytest.raises(InfeasibleError):
        frontier_path(pb, mu).max_sharpe(1.0)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), n=st.integers(4, 30), frac=st.floats(0.05, 1.2))
def test_at_volatility_matches_cvxpy(seed: int, n: int, frac: float) -> None:
    # (not at the minimum volatility itself: there the cone program has a single
    # feasible point and Clarabel reports it only inaccurately)
    cp = pytest.importorskip("cvxpy")
    pb, mu = random_problem(seed, n)
    path = frontier_path(pb, mu)
    lo, hi = np.sqrt(path.variances[0]), np.sqrt(path.variances[-1])
    sigma = lo + frac * (hi - lo)
    pt = path.at_volatility(sigma)
    assert pt.volatility <= sigma * (1 + 1e-12)
    w = cp.Variable(n)
    L = np.linalg.cholesky(pb.P)
    cons = [pb.A_eq @ w == pb.b_eq, pb.A_ub @ w <= pb.b_ub, w >= pb.lb, w <= pb.ub]
    prob = cp.Problem(cp.Maximize(mu @ w), [*cons, cp.norm(L.T @ w) <= sigma])
    for tol in (1e-11, 1e-10, 1e-9):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # cvxpy's "may be inaccurate"
            prob.solve(solver="CLARABEL", tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol)
        if prob.status == "optimal":
            break
    assert prob.status == "optimal"
    assert pt.expected_return == pytest.approx(prob.value, abs=1e-8)
    with pytest.raises(InfeasibleError):
        path.at_volatility(0.9 * lo)


@pytest.mark.parametrize("bounds", ["finite", "some infinite"])
def test_kkt_batch_agrees_with_check_kkt(bounds: str) -> None:
    pb, mu = random_problem(11, 15, "floors")
    if bounds == "some infinite":  # no lower bound on 3 weights, no upper bound on 4
        lb, ub = pb.lb.copy(), pb.ub.copy()
        lb[[0, 4, 9]] = -np.inf
        ub[[1, 4, 7, 12]] = np.inf
        pb = QPProblem(
            P=pb.P, q=pb.q, A_eq=pb.A_eq, b_eq=pb.b_eq, A_ub=pb.A_ub, b_ub=pb.b_ub, lb=lb, ub=ub
        )
    rng = np.random.default_rng(0)
    p = 7
    T = rng.uniform(0.0, 3.0, p)
    X = rng.uniform(-0.1, 0.3, (p, pb.n))
    Yeq = rng.normal(size=(p, pb.m_eq))
    Yub = rng.normal(size=(p, pb.m_ub))
    Z = rng.normal(size=(p, pb.n))
    X[5, 3] = np.nan  # a broken point fails every test, as in check_kkt
    Yub[6, 1] = np.inf
    batch = cla._kkt_batch(pb, mu, T, X, Yeq, Yub, Z)
    for i in range(p):
        one = check_kkt(cla._t_problem(pb, mu, T[i]), X[i], Yeq[i], Yub[i], Z[i])
        for key, val in one.items():
            if np.isnan(val):
                assert np.isnan(batch[key][i]), key
            else:
                assert batch[key][i] == pytest.approx(val, rel=1e-12, abs=1e-15), key
        if i < 5:
            assert batch["variance"][i] == pytest.approx(X[i] @ pb.P @ X[i], rel=1e-12)
    assert not cla._kkt_ok_batch(batch, 1e-9)[5:].any()


def test_points_api_and_errors() -> None:
    pb, mu = random_problem(2, 12)
    path = frontier_path(pb, mu)
    assert len(path.points(1)) == 1 and len(path.points(50)) == 50
    first, last = path.points(2)
    np.testing.assert_allclose(first.weights, path.corners[0].weights)
    np.testing.assert_allclose(last.weights, path.corners[-1].weights)
    with pytest.raises(ValidationError):
        path.points(0)
    with pytest.raises(InfeasibleError):
        path.at_return(path.max_return + 0.01)
    with pytest.raises(ValidationError):
        path.at_return(path.min_return - 0.01)
    assert path.stats.events >= len(path) - 1 and path.stats.n_fallbacks == 0
    big = path.at_volatility(10.0)  # above the max-return portfolio's risk: that portfolio
    np.testing.assert_allclose(big.weights, path.corners[-1].weights)


def test_a_single_feasible_portfolio_is_a_one_corner_path() -> None:
    pb, mu = random_problem(4, 10, "all_caps")
    path = frontier_path(pb, mu)
    assert len(path) == 1
    pts = path.points(5)
    for p in pts:
        np.testing.assert_allclose(p.weights, np.full(10, 0.1), atol=1e-15)


def test_unbounded_return_and_infeasible_constraints() -> None:
    cov = np.diag([0.04, 0.09])
    mu = np.array([0.05, 0.08])
    pb = QPProblem(P=cov, q=np.zeros(2), A_eq=np.ones((1, 2)), b_eq=[1.0])
    with pytest.raises(SolverError):
        frontier_path(pb, mu)
    bad = QPProblem(P=cov, q=np.zeros(2), A_eq=np.ones((1, 2)), b_eq=[1.0], lb=0.0, ub=0.4)
    with pytest.raises(InfeasibleError):
        frontier_path(bad, mu)
    with pytest.raises(ValidationError):
        frontier_path(bad, mu[:1])


def test_a_corner_that_fails_its_check_is_resolved_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pb, mu = random_problem(7, 20)
    clean = frontier_path(pb, mu)
    seen: dict[str, int] = {}

    def corrupt(self: cla._Tracer) -> None:
        # after 4 events, move a weight off the bound it is fixed at: the next corner
        # fails its check, a rebuild keeps it there, so only a re-solve repairs it
        j = int(np.flatnonzero(self.status != 0)[0])
        self.w[j] += 1e-3 if self.status[j] < 0 else -1e-3
        seen["paused"] = seen.get("paused", 0) + 1

    monkeypatch.setattr(cla._Tracer, "pause_at", 4)
    monkeypatch.setattr(cla._Tracer, "_paused", corrupt)
    path = frontier_path(pb, mu)
    assert seen == {"paused": 1}
    assert path.stats.n_fallbacks == 1 and "re-solved" in path.stats.fallbacks[0]
    np.testing.assert_allclose(path.max_return, clean.max_return, atol=1e-12)
    for p, q in zip(path.points(9), clean.points(9), strict=True):
        np.testing.assert_allclose(p.weights, q.weights, atol=1e-9)


def test_a_point_that_fails_its_check_is_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    pb, mu = random_problem(8, 15)
    path = frontier_path(pb, mu)
    real = cla._kkt_ok_batch

    def reject_second(res: dict, tol: float) -> np.ndarray:
        ok = real(res, tol)
        if ok.size > 1:
            ok[1] = False
        return ok

    monkeypatch.setattr(cla, "_kkt_ok_batch", reject_second)
    pts = path.points(4)
    assert pts[1].solver.startswith("critical_line -> ")
    assert all(p.solver == "critical_line" for i, p in enumerate(pts) if i != 1)
    assert path.stats.n_fallbacks == 1
    ref = solve_qp(target_problem(pb, mu, pts[1].expected_return))
    np.testing.assert_allclose(pts[1].weights, ref.x, atol=1e-8)


# --------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def universe() -> tuple[OptimizationEngine, list[str], np.ndarray, np.ndarray, float]:
    fmap = FundExposureMap.default()
    eng = OptimizationEngine(fund_map=fmap)
    syms = fmap.symbols
    a = MarketAssumptions.default()
    mu = a.fund_expected_returns(fmap, syms).reindex(syms).to_numpy(float) + a.cash_rate
    cov = a.fund_covariance(fmap, syms).loc[syms, syms].to_numpy(float)
    return eng, syms, mu, cov, a.cash_rate


def per_point(monkeypatch: pytest.MonkeyPatch, eng, *args) -> list:
    """Today's method: one warm-started solve_qp per point."""
    import core.optimization.engine as engine_module

    with monkeypatch.context() as m:
        m.setattr(engine_module, "_frontier_by_path", lambda *a, **k: None)
        return list(eng.efficient_frontier(*args))


@pytest.mark.parametrize("max_cash", [0.0, 0.5])
def test_engine_frontier_on_the_default_fund_map(
    universe, monkeypatch: pytest.MonkeyPatch, max_cash: float
) -> None:
    eng, syms, mu, cov, rf = universe
    c = OptimizationConstraints(
        max_weight=0.3, max_exposure_per_group={"equity": 1.0},
        max_exposure_per_type={"US_EQUITY": 0.7}, min_exposure_per_type={"UST_10Y": 0.1},
        max_total_notional=1.6, max_cash=max_cash,
    )  # fmt: skip
    pts = list(eng.efficient_frontier(syms, mu, cov, c, 25, rf))
    assert len(pts) == 25 and all(p.solver == "critical_line" for p in pts)
    ref = per_point(monkeypatch, eng, syms, mu, cov, c, 25, rf)
    assert all(p.solver != "critical_line" for p in ref)
    rets = np.array([p.expected_return for p in pts])
    np.testing.assert_allclose(np.diff(rets), (rets[-1] - rets[0]) / 24, atol=1e-12)
    for p, q in zip(pts, ref, strict=True):
        assert p.expected_return == pytest.approx(q.expected_return, abs=1e-10)
        assert p.volatility == pytest.approx(q.volatility, rel=1e-8)
        np.testing.assert_allclose(p.as_array(), q.as_array(), atol=1e-6)
        assert p.cash_weight == pytest.approx(q.cash_weight, abs=1e-6)
    # every point is min variance at its return: certificates from the path itself
    form = linear_form(syms, c, eng.fund_map)
    path = frontier_path(form, mu, cov, cash_return=rf)
    pb = path.problem
    mu_v = path.mu
    for p, q in zip(path.points(25), pts, strict=True):
        np.testing.assert_allclose(p.weights[: len(syms)], q.as_array(), atol=1e-14)
        kkt = target_kkt(pb, mu_v, p)
        assert kkt["primal"] <= 1e-8
        assert all(kkt[k] <= 1e-9 for k in ("dual", "stationarity", "complementarity", "gap"))
    for i in (3, 12, 20):
        f_ref, _, exact = cvxpy_min_variance(pb, mu_v, pts[i].expected_return)
        f = 0.5 * pts[i].volatility ** 2
        assert f <= f_ref * (1 + 1e-8) + 1e-12
        if exact:
            assert f == pytest.approx(f_ref, rel=1e-8, abs=1e-12)


def test_engine_frontier_falls_back_point_by_point(universe, monkeypatch) -> None:
    eng, syms, mu, cov, rf = universe
    syms, mu, cov = syms[:8], mu[:8], cov[:8, :8]
    c = OptimizationConstraints(max_weight=0.5)

    def broken(*args, **kwargs):
        raise SolverError("the tracer broke")

    monkeypatch.setattr(cla, "frontier_path", broken)
    pts = list(eng.efficient_frontier(syms, mu, cov, c, 6, rf))
    assert len(pts) == 6 and all(p.solver != "critical_line" for p in pts)
    monkeypatch.undo()
    good = list(eng.efficient_frontier(syms, mu, cov, c, 6, rf))
    for p, q in zip(pts, good, strict=True):
        assert p.volatility == pytest.approx(q.volatility, rel=1e-8)
    # transaction costs are general-path features: no path, the cvxpy route per point
    costly = list(eng.efficient_frontier(syms, mu, cov, c.copy(transaction_cost_bps=10.0), 3, rf))
    assert len(costly) == 3 and all(p.solver != "critical_line" for p in costly)


def test_one_compiled_version_serves_read_only_and_writable_inputs() -> None:
    """The engine hands the kernels read-only arrays, other callers writable ones: each
    kernel entry point is compiled once (a second version would cost seconds)."""
    import core.optimization.cla_kernel as cla_kernel
    import core.optimization.matvec_kernel as matvec_kernel
    import core.optimization.qp_kernel as qp_kernel
    import core.optimization.rp_kernel as rp_kernel
    from core.optimization.matvec_kernel import products
    from core.optimization.risk_parity import risk_budget_weights

    pb, mu = random_problem(3, 12, "floors")
    frontier_path(pb, mu).points(5)
    frozen = {}
    for key in ("P", "A_eq", "b_eq", "A_ub", "b_ub", "lb", "ub"):
        a = np.array(getattr(pb, key))
        a.flags.writeable = False
        frozen[key] = a
    mu_ro = mu.copy()
    mu_ro.flags.writeable = False
    frontier_path(QPProblem(q=np.zeros(pb.n), **frozen), mu_ro).points(5)
    for problem in (pb, QPProblem(q=mu_ro, **frozen)):  # the compiled active-set iteration
        solve_qp(problem, solvers=["active_set"])
    loadings = np.random.default_rng(1).standard_normal((70, 4))
    cov = loadings @ loadings.T / 4 + np.diag(np.linspace(0.1, 0.3, 70))
    cov_ro = cov.copy()
    cov_ro.flags.writeable = False
    for matrix in (cov, cov_ro):  # 70 > SMALL_N assets: the compiled Newton steps
        risk_budget_weights(matrix)
        products(matrix, np.ones(70), np.arange(70.0))
    for entry in (
        cla_kernel.advance, cla_kernel.corner_ok, cla_kernel.record,
        cla_kernel.kkt_residuals, qp_kernel.pdas, rp_kernel.newton_jacobi,
        matvec_kernel.two_products,
    ):  # fmt: skip
        assert len(entry.signatures) == 1, (entry.__name__, entry.signatures)


def test_warm_up_compiles_every_kernel_entry_point() -> None:
    import core.optimization.cla_kernel as cla_kernel
    import core.optimization.matvec_kernel as matvec_kernel
    import core.optimization.qp_kernel as qp_kernel
    import core.optimization.rp_kernel as rp_kernel

    assert cla.warm_up() >= 0.0
    for entry in (
        cla_kernel.advance, cla_kernel.corner_ok, cla_kernel.record,
        cla_kernel.kkt_residuals, qp_kernel.pdas, rp_kernel.newton_jacobi,
        matvec_kernel.two_products,
    ):  # fmt: skip
        assert entry.signatures, entry.__name__


def test_points_products_use_only_the_held_funds_rows() -> None:
    """The points' check multiplies by the rows of the covariance their funds use: the
    same product as the full one, and a NaN weight still reaches its point's row."""
    rng = np.random.default_rng(5)
    P = rng.standard_normal((40, 40))
    X = np.zeros((6, 40))
    X[:, [3, 17, 18]] = rng.uniform(size=(6, 3))
    for dense in (False, True):
        A = rng.uniform(size=(6, 40)) if dense else X
        np.testing.assert_allclose(cla._times_rows(A, P), A @ P, rtol=1e-13, atol=1e-13)
    X[2, 30] = np.nan
    out = cla._times_rows(X, P)
    assert np.isnan(out[2]).all() and np.isfinite(np.delete(out, 2, axis=0)).all()
