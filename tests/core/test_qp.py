"""The dense QP layer: closed forms, a cvxpy reference, warm starts, backends, fallbacks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core.optimization.qp as qp
import core.optimization.qp_kernel as qp_kernel
from core.errors import InfeasibleError, SolverError, ValidationError
from core.optimization.qp import (
    SOLVERS,
    QPProblem,
    QPSolution,
    check_kkt,
    solve_qp,
    verify,
)

HYP = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------
# Problem generators
# --------------------------------------------------------------------------------------


def factor_cov(rng: np.random.Generator, n: int, k: int = 3, singular: bool = False) -> np.ndarray:
    """Annualised factor-model covariance; ``singular`` drops the idiosyncratic part."""
    B = rng.normal(0.0, 0.15, (n, k))
    F = np.diag(rng.uniform(0.5, 1.5, k))
    D = np.zeros(n) if singular else rng.uniform(0.05, 0.35, n) ** 2
    P = B @ F @ B.T + np.diag(D)
    return 0.5 * (P + P.T)


def portfolio_problem(
    seed: int,
    n: int,
    *,
    singular: bool = False,
    n_caps: int = 3,
    risk_aversion: float | None = 3.0,
    ties: bool = False,
    redundant: bool = False,
    barely: bool = False,
    all_active: bool = False,
) -> QPProblem:
    """Long-only mean-variance QP with a budget row and exposure caps on ``E w``.

    Variable 0 is cash-like (no exposure, weight up to 1), so the problem is always
    feasible. Caps are set at 0.8 of the exposures of the optimum without caps (so they
    bind), or ``barely``: a hair above their smallest achievable value.
    """
    rng = np.random.default_rng(seed)
    P = factor_cov(rng, n, singular=singular)
    mu = rng.uniform(0.02, 0.10, n)
    if ties and n >= 4:  # two identical assets: the optimum is not unique
        P[:, 1] = P[:, 2]
        P[1, :] = P[2, :]
        mu[1] = mu[2]
    q = np.zeros(n) if risk_aversion is None else -mu / risk_aversion
    E = rng.uniform(0.0, 2.0, (n_caps, n)) * (rng.uniform(size=(n_caps, n)) < 0.5)
    E[:, 0] = 0.0
    if ties and n >= 4:
        E[:, 1] = E[:, 2]
    lb = np.zeros(n)
    ub = rng.uniform(0.2, 1.0, n)
    ub[0] = 0.5 if barely else 1.0
    if all_active:  # the upper bounds sum to exactly 1: every bound is active
        ub = np.full(n, 1.0 / n)
    A_eq = np.ones((1, n))
    b_eq = np.array([1.0])
    base = solve_qp(QPProblem(P, q, A_eq, b_eq, None, None, lb, ub), solvers=["piqp"])
    e = E @ base.x
    if barely:
        # smallest common fraction t of the uncapped exposures that can still be met
        from scipy.optimize import linprog

        res = linprog(
            np.append(np.zeros(n), 1.0),
            A_ub=np.hstack([E, -e[:, None]]),
            b_ub=np.zeros(n_caps),
            A_eq=np.append(A_eq[0], 0.0)[None, :],
            b_eq=b_eq,
            bounds=[*zip(lb, ub, strict=True), (0.0, None)],
        )
        b_ub = (res.x[-1] + 1e-7) * e + 1e-9
    elif all_active:
        b_ub = e + 0.1
    else:
        b_ub = 0.8 * e + 1e-3
    A_ub = E
    names = ["budget"] + [f"cap {k}" for k in range(n_caps)]
    if redundant:  # a repeated equality row and a repeated cap
        A_eq = np.vstack([A_eq, 2.0 * A_eq])
        b_eq = np.array([1.0, 2.0])
        A_ub = np.vstack([A_ub, A_ub[:1]])
        b_ub = np.append(b_ub, b_ub[0])
        names = ["budget", "budget x2"] + [f"cap {k}" for k in range(n_caps)] + ["cap 0 again"]
    return QPProblem(P, q, A_eq, b_eq, A_ub, b_ub, lb, ub, row_names=names)


def cvxpy_reference(pb: QPProblem) -> tuple[float, np.ndarray]:
    """Clarabel through cvxpy (reference only).

    At its 1e-10 tolerances Clarabel still leaves ~1e-8 relative objective error on these
    problems, so 1e-12 is asked first; on barely feasible problems Clarabel sometimes
    reports 'optimal_inaccurate' even at 1e-10, and then PIQP (through cvxpy) is used.
    """
    cp = pytest.importorskip("cvxpy")
    x = cp.Variable(pb.n)
    cons = []
    if pb.m_eq:
        cons.append(pb.A_eq @ x == pb.b_eq)
    if pb.m_ub:
        cons.append(pb.A_ub @ x <= pb.b_ub)
    fl, fu = np.isfinite(pb.lb), np.isfinite(pb.ub)
    if fl.any():
        cons.append(x[fl] >= pb.lb[fl])
    if fu.any():
        cons.append(x[fu] <= pb.ub[fu])
    objective = 0.5 * cp.quad_form(x, cp.psd_wrap(pb.P)) + pb.q @ x
    prob = cp.Problem(cp.Minimize(objective), cons)
    attempts = [
        (
            "CLARABEL",
            {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10},
        ),
        ("CLARABEL", {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}),
        ("PIQP", {"eps_abs": 1e-12, "eps_rel": 1e-12}),
    ]
    for solver, opts in attempts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # cvxpy's "may be inaccurate"
            prob.solve(solver=solver, **opts)
        if prob.status == "optimal":
            break
    assert prob.status == "optimal", prob.status
    return float(prob.value), np.asarray(x.value)


def assert_x_close(pb: QPProblem, x: np.ndarray, x_ref: np.ndarray, f_ref: float) -> None:
    """``x`` within 1e-6 of ``x_ref``, beyond what the reference's own suboptimality allows.

    For a feasible ``x_ref`` and strongly convex f, ``f(x_ref) - f* >= lambda_min/2 |x_ref
    - x*|^2``; a reference 1e-14 off in objective may sit 1e-6 away in x.
    """
    lam = float(np.linalg.eigvalsh(pb.P)[0])
    slack = max(f_ref - pb.objective(x), 0.0)
    atol = 1e-6 + np.sqrt(2.0 * slack / lam)
    np.testing.assert_allclose(x, x_ref, atol=atol)


def assert_objective_close(sol: QPSolution, f_ref: float, label: object = None) -> None:
    """The objective within 1e-8 of ``f_ref``, relative to the larger of it and the
    answer's own objective scale (its KKT residuals' denominator)."""
    scale = max(abs(f_ref), sol.kkt["objective_scale"])
    assert abs(sol.objective - f_ref) <= 1e-8 * scale, (label, sol.objective, f_ref)


def assert_matches_reference(pb: QPProblem, sol: QPSolution, unique: bool) -> None:
    f_ref, x_ref = cvxpy_reference(pb)
    assert_objective_close(sol, f_ref)
    assert verify(pb, sol, tol=1e-8)
    if unique:
        assert_x_close(pb, sol.x, x_ref, f_ref)


# --------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", [None, *SOLVERS])
def test_min_variance_closed_form(solver: str | None) -> None:
    rng = np.random.default_rng(1)
    n = 12
    S = factor_cov(rng, n)
    ones = np.ones(n)
    w = np.linalg.solve(S, ones)
    w /= ones @ w
    pb = QPProblem(S, np.zeros(n), ones[None, :], [1.0], lb=np.full(n, -10.0), ub=np.full(n, 10.0))
    sol = solve_qp(pb, solvers=None if solver is None else [solver])
    np.testing.assert_allclose(sol.x, w, atol=1e-10)
    assert sol.objective == pytest.approx(0.5 / (ones @ np.linalg.solve(S, ones)), rel=1e-10)
    # the budget multiplier is minus the minimum variance (stationarity S w + y 1 = 0)
    assert sol.y_eq[0] == pytest.approx(-(w @ S @ w), rel=1e-8)
    np.testing.assert_allclose(sol.z, 0.0, atol=1e-12)
    assert sol.status == "optimal" and verify(pb, sol)


@pytest.mark.parametrize("solver", [None, *SOLVERS])
def test_two_variables_by_hand(solver: str | None) -> None:
    # min 0.5(x1^2 + x2^2) - 2 x2  s.t.  x1 + x2 = 1, 0 <= x <= 2.
    # On the budget line f(t) = 0.5(t^2 + (1-t)^2) - 2(1-t) falls while t < -1/2, so
    # x1 stops at its lower bound: x = (0, 1), y = 1 (from x2 - 2 + y = 0),
    # z1 = -(x1 + y) = -1 <= 0 at the lower bound, objective 0.5 - 2 = -1.5.
    pb = QPProblem(np.eye(2), [0.0, -2.0], [[1.0, 1.0]], [1.0], lb=[0.0, 0.0], ub=[2.0, 2.0])
    sol = solve_qp(pb, solvers=None if solver is None else [solver])
    np.testing.assert_allclose(sol.x, [0.0, 1.0], atol=1e-12)
    assert sol.objective == pytest.approx(-1.5, abs=1e-12)
    np.testing.assert_allclose(sol.y_eq, [1.0], atol=1e-10)
    np.testing.assert_allclose(sol.z, [-1.0, 0.0], atol=1e-10)
    assert sol.active_set is not None
    assert sol.active_set.at_lower.tolist() == [True, False]
    assert not sol.active_set.at_upper.any()


def test_inequality_row_multiplier_by_hand() -> None:
    # min 0.5|x|^2  s.t.  x1 + x2 >= 1 (as -x1 - x2 <= -1): x = (1/2, 1/2), y_ub = 1/2
    pb = QPProblem(np.eye(2), np.zeros(2), A_ub=[[-1.0, -1.0]], b_ub=[-1.0])
    for solver in SOLVERS:
        sol = solve_qp(pb, solvers=[solver])
        np.testing.assert_allclose(sol.x, [0.5, 0.5], atol=1e-12)
        np.testing.assert_allclose(sol.y_ub, [0.5], atol=1e-10)
        assert sol.objective == pytest.approx(0.25, abs=1e-12)
        assert sol.active_set is not None and sol.active_set.ub_rows.tolist() == [True]


def test_linear_program_and_unconstrained() -> None:
    lp = QPProblem(np.zeros((4, 4)), [-1.0, -2.0, -3.0, -4.0], [[1, 1, 1, 1]], [1.0], lb=0, ub=0.5)
    assert solve_qp(lp).objective == pytest.approx(-3.5, abs=1e-12)
    rng = np.random.default_rng(3)
    S = factor_cov(rng, 6)
    q = rng.normal(size=6)
    sol = solve_qp(QPProblem(S, q))
    np.testing.assert_allclose(sol.x, np.linalg.solve(S, -q), rtol=1e-9)


# --------------------------------------------------------------------------------------
# Agreement with cvxpy on random problems
# --------------------------------------------------------------------------------------


#: The default chain (DAQP first at these sizes), and the own kernel first as at larger
#: sizes: each backend's answer, and what the chain makes of it, is checked.
FIRST = pytest.mark.parametrize("first", ["daqp", "active_set"])


def chain_from(first: str) -> list[str]:
    # the kernel without DAQP behind it: a failed primal-dual iteration then runs the
    # kernel's own primal method instead of handing over (``HANDOFF_MAX_N``)
    return [first, *(s for s in qp.default_solvers(1000) if s not in (first, "daqp"))]


@FIRST
@HYP
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(5, 60),
    singular=st.booleans(),
    n_caps=st.integers(1, 6),
    min_var=st.booleans(),
)
def test_random_problems_match_cvxpy(
    first: str, seed: int, n: int, singular: bool, n_caps: int, min_var: bool
) -> None:
    pb = portfolio_problem(
        seed, n, singular=singular, n_caps=n_caps, risk_aversion=None if min_var else 3.0
    )
    sol = solve_qp(pb, solvers=chain_from(first))
    assert sol.status == "optimal"
    assert (sol.y_ub >= -1e-12).all()
    assert_matches_reference(pb, sol, unique=not singular)


@FIRST
@HYP
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(4, 40),
    kind=st.sampled_from(["ties", "redundant", "barely", "all_active"]),
    singular=st.booleans(),
)
def test_degenerate_problems_match_cvxpy(
    first: str, seed: int, n: int, kind: str, singular: bool
) -> None:
    pb = portfolio_problem(seed, n, singular=singular, **{kind: True})
    sol = solve_qp(pb, solvers=chain_from(first))
    unique = not singular and kind not in ("ties",)
    assert_matches_reference(pb, sol, unique=unique)
    if kind == "all_active":
        np.testing.assert_allclose(sol.x, 1.0 / n, atol=1e-12)
    if kind == "redundant":
        assert sol.y_eq.shape == (2,) and sol.y_ub.shape == (pb.m_ub,)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10**6), singular=st.booleans())
def test_every_backend_gives_the_same_answer(seed: int, singular: bool) -> None:
    pb = portfolio_problem(seed, 25, singular=singular, n_caps=4)
    f_ref, x_ref = cvxpy_reference(pb)
    for solver in SOLVERS:
        try:
            sol = solve_qp(pb, solvers=[solver], time_limit=2.0)
        except SolverError as exc:
            # HiGHS's QP solver is known to cycle on some singular problems; the chain
            # puts it behind PIQP and bounds its time. Every other backend must succeed.
            assert solver == "highs" and singular and exc.status == "time_limit"
            continue
        assert sol.solver == solver
        assert_objective_close(sol, f_ref, solver)
        assert verify(pb, sol), solver
        if not singular:
            assert_x_close(pb, sol.x, x_ref, f_ref)


def test_long_short_with_infinite_bounds() -> None:
    rng = np.random.default_rng(7)
    n = 30
    S = factor_cov(rng, n)
    mu = rng.uniform(0.0, 0.1, n)
    E = rng.uniform(0.0, 1.0, (2, n))
    pb = QPProblem(
        S, -mu, np.ones((1, n)), [1.0], np.vstack([E, -E]), [0.9, 0.9, 0.0, 0.0],
        lb=np.full(n, -np.inf), ub=np.full(n, np.inf),
    )  # fmt: skip
    sol = solve_qp(pb)
    assert_matches_reference(pb, sol, unique=True)
    assert (sol.x < 0).any()  # the short side is used


# --------------------------------------------------------------------------------------
# Infeasible, unbounded, invalid
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", [None, *SOLVERS])
def test_infeasible_rows_are_named(solver: str | None) -> None:
    n = 6
    S = factor_cov(np.random.default_rng(2), n)
    E = np.array([[1.0, 1.0, 0, 0, 0, 0], [0, 0, 1.0, 1.0, 1.0, 0]])
    pb = QPProblem(
        S, np.zeros(n), np.ones((1, n)), [1.0],
        np.vstack([E[0], -E[0], E[1]]), [0.3, -0.5, 0.9], np.zeros(n), np.ones(n),
        row_names=["budget", "US equity cap", "US equity floor", "bond cap"],
    )  # fmt: skip
    with pytest.raises(InfeasibleError) as info:
        solve_qp(pb, solvers=None if solver is None else [solver])
    assert set(info.value.conflicts) == {"US equity cap", "US equity floor"}
    assert "US equity floor" in str(info.value)


def test_infeasible_budget_against_bounds_names_budget_and_bounds() -> None:
    n = 5
    pb = QPProblem(
        np.eye(n), np.zeros(n), np.ones((1, n)), [1.0], lb=np.zeros(n), ub=np.full(n, 0.1),
        row_names=["budget"], var_names=["SPY", "TLT", "GLD", "RSSB", "NTSX"],
    )  # fmt: skip
    with pytest.raises(InfeasibleError) as info:
        solve_qp(pb)
    assert info.value.conflicts == ["budget"]
    assert "SPY" in str(info.value) and "budget" in str(info.value)


def test_contradicting_equality_rows() -> None:
    pb = QPProblem(
        np.eye(3), np.zeros(3), [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], [1.0, 3.0],
        row_names=["budget", "double budget"],
    )  # fmt: skip
    with pytest.raises(InfeasibleError) as info:
        solve_qp(pb)
    assert set(info.value.conflicts) == {"budget", "double budget"}


def test_unbounded_objective_raises_solver_error() -> None:
    rng = np.random.default_rng(4)
    B = rng.normal(size=(5, 2))
    pb = QPProblem(B @ B.T, rng.normal(size=5))  # singular P, q outside its range
    with pytest.raises(SolverError) as info:
        solve_qp(pb)
    assert info.value.status == "unbounded"
    assert "unbounded" in str(info.value)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"P": np.ones((2, 3)), "q": np.zeros(2)}, "P"),
        ({"P": np.eye(2), "q": np.zeros(3)}, "q"),
        ({"P": np.array([[1.0, 2.0], [0.0, 1.0]]), "q": np.zeros(2)}, None),
        ({"P": np.eye(2) * np.nan, "q": np.zeros(2)}, None),
        ({"P": np.eye(2), "q": np.zeros(2), "lb": [0.0, 1.0], "ub": [1.0, 0.5]}, None),
        ({"P": np.eye(2), "q": np.zeros(2), "A_eq": np.ones((1, 2))}, "eq"),
        ({"P": np.eye(2), "q": np.zeros(2), "A_ub": np.ones((1, 2)), "b_ub": [1.0, 2.0]}, None),
        (
            {
                "P": np.eye(2),
                "q": np.zeros(2),
                "A_ub": [[1.0, 1.0]],
                "b_ub": [1.0],
                "row_names": [],
            },
            None,
        ),
        ({"P": -np.eye(2), "q": np.zeros(2)}, None),
    ],
)
def test_invalid_problems(kwargs: dict, field: str | None) -> None:
    with pytest.raises(ValidationError) as info:
        QPProblem(**kwargs)
    if field is not None:
        assert info.value.field is not None and field in info.value.field


def test_infinite_bounds_allowed_but_not_nan() -> None:
    pb = QPProblem(np.eye(2), np.zeros(2), lb=[-np.inf, 0.0], ub=[np.inf, np.inf])
    assert pb.n == 2 and pb.m_eq == 0 and pb.m_ub == 0 and pb.row_names == []
    with pytest.raises(ValidationError):
        QPProblem(np.eye(2), np.zeros(2), lb=[np.nan, 0.0])
    with pytest.raises(ValidationError):
        QPProblem(np.eye(2), np.zeros(2), ub=[-np.inf, 1.0])


def test_bad_arguments() -> None:
    pb = portfolio_problem(0, 8)
    with pytest.raises(ValidationError):
        solve_qp(pb, solvers=["gurobi"])
    other = solve_qp(portfolio_problem(0, 9))
    with pytest.raises(ValidationError):
        solve_qp(pb, warm_start=other)
    with pytest.raises(SolverError) as info:
        solve_qp(pb, time_limit=0.0)
    assert info.value.status == "time_limit"


# --------------------------------------------------------------------------------------
# Warm starts along a frontier
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("singular", [False, True])
def test_warm_started_frontier_matches_cold_solves(singular: bool) -> None:
    n = 40
    base = portfolio_problem(11, n, singular=singular, risk_aversion=None, n_caps=4)
    rng = np.random.default_rng(11)
    mu = rng.uniform(0.02, 0.10, n)
    from scipy.optimize import linprog

    lo = mu @ solve_qp(base).x
    res = linprog(
        -mu, A_ub=base.A_ub, b_ub=base.b_ub, A_eq=base.A_eq, b_eq=base.b_eq,
        bounds=list(zip(base.lb, base.ub, strict=True)),
    )  # fmt: skip
    hi = -res.fun
    A_eq = np.vstack([base.A_eq, mu])
    prev_kernel = prev_daqp = None
    for target in np.linspace(lo, hi - 1e-4 * (hi - lo), 15):
        pb = QPProblem(
            base.P, base.q, A_eq, [1.0, target], base.A_ub, base.b_ub, base.lb, base.ub,
        )  # fmt: skip
        cold = solve_qp(pb)
        warm = solve_qp(pb, warm_start=prev_kernel, solvers=["active_set"])
        warm_d = solve_qp(pb, warm_start=prev_daqp, solvers=["daqp", "piqp"])
        for sol in (warm, warm_d):
            scale = max(abs(cold.objective), cold.kkt["objective_scale"])
            assert abs(sol.objective - cold.objective) <= 1e-9 * scale
            assert verify(pb, sol)
            if not singular:
                np.testing.assert_allclose(sol.x, cold.x, atol=1e-7)
        assert warm.solver == "active_set" and not warm.fallbacks
        prev_kernel, prev_daqp = warm, warm_d


def test_warm_start_with_new_covariance() -> None:
    # a rebalance: same rows, a new covariance; the old answer is still feasible
    pb1 = portfolio_problem(5, 30)
    s1 = solve_qp(pb1)
    rng = np.random.default_rng(6)
    P2 = pb1.P + np.diag(rng.uniform(0.0, 0.02, 30))
    pb2 = QPProblem(P2, pb1.q, pb1.A_eq, pb1.b_eq, pb1.A_ub, pb1.b_ub, pb1.lb, pb1.ub)
    warm = solve_qp(pb2, warm_start=s1, solvers=["active_set"])
    cold = solve_qp(pb2, solvers=["piqp"])
    np.testing.assert_allclose(warm.x, cold.x, atol=1e-8)


def test_warm_start_survives_p_edited_in_place() -> None:
    # the kernel caches its factorisation per P object; editing P in place (diagonal
    # unchanged) must still give the right answer, through the KKT check if need be
    pb = portfolio_problem(9, 25)
    s1 = solve_qp(pb)
    P = pb.P
    off = np.ones_like(P) - np.eye(pb.n)
    P += 0.002 * off  # same object, same diagonal, still PSD
    pb2 = QPProblem(P, pb.q, pb.A_eq, pb.b_eq, pb.A_ub, pb.b_ub, pb.lb, pb.ub)
    assert pb2.P is P
    warm = solve_qp(pb2, warm_start=s1)
    cold = solve_qp(pb2, solvers=["piqp"])
    assert verify(pb2, warm)
    np.testing.assert_allclose(warm.x, cold.x, atol=1e-8)


def test_default_chain() -> None:
    assert qp.default_solvers(100) == ["daqp", "active_set", "piqp", "highs", "clarabel"]
    assert qp.default_solvers(100, warm=True)[:2] == ["active_set", "daqp"]
    assert qp.default_solvers(200) == ["active_set", "daqp", "piqp", "highs", "clarabel"]
    assert qp.default_solvers(1000) == ["active_set", "piqp", "highs", "clarabel"]
    assert "daqp" in qp.default_solvers(1000, warm=True)


# --------------------------------------------------------------------------------------
# KKT check and the fallback chain
# --------------------------------------------------------------------------------------


def test_check_kkt_and_verify_reject_perturbed_answers() -> None:
    pb = portfolio_problem(3, 20)
    sol = solve_qp(pb)
    kkt = check_kkt(pb, sol.x, sol.y_eq, sol.y_ub, sol.z)
    assert all(
        kkt[k] <= 1e-10 for k in ("primal", "dual", "stationarity", "complementarity", "gap")
    )
    assert kkt["objective"] == pytest.approx(sol.objective, rel=1e-12)
    assert verify(pb, sol)

    moved = QPSolution(**{**sol.__dict__, "x": sol.x + 1e-4})
    assert check_kkt(pb, moved.x, moved.y_eq, moved.y_ub, moved.z)["primal"] > 1e-5
    assert not verify(pb, moved)
    wrong_sign = QPSolution(**{**sol.__dict__, "y_ub": sol.y_ub - 1.0})
    assert not verify(pb, wrong_sign)
    lying = QPSolution(**{**sol.__dict__, "objective": sol.objective * 1.01 + 1e-3})
    assert not verify(pb, lying)
    nan = check_kkt(pb, np.full(pb.n, np.nan), sol.y_eq, sol.y_ub, sol.z)
    assert nan["stationarity"] == np.inf


def test_broken_backend_is_caught_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    pb = portfolio_problem(8, 20)
    good = solve_qp(pb, solvers=["piqp"])

    def garbage(problem: QPProblem, ctx: object) -> QPSolution:
        x = np.random.default_rng(0).uniform(size=problem.n)
        return qp._raw(problem, "active_set", "optimal", x)

    def crashing(problem: QPProblem, ctx: object) -> QPSolution:
        raise RuntimeError("segfault-ish")

    def missing(problem: QPProblem, ctx: object) -> QPSolution:
        raise ImportError("No module named 'daqp'")

    monkeypatch.setitem(qp._BACKENDS, "active_set", garbage)
    monkeypatch.setitem(qp._BACKENDS, "daqp", crashing)
    monkeypatch.setitem(qp._BACKENDS, "highs", missing)
    sol = solve_qp(pb, solvers=["active_set", "daqp", "highs", "piqp"])
    assert sol.solver == "piqp"
    assert sol.fallbacks[0].startswith("active_set: answer failed the KKT check")
    assert "RuntimeError" in sol.fallbacks[1] and sol.fallbacks[1].startswith("daqp")
    assert "not installed" in sol.fallbacks[2]
    np.testing.assert_allclose(sol.x, good.x, atol=1e-10)

    with pytest.raises(SolverError) as info:
        solve_qp(pb, solvers=["active_set", "daqp"])
    assert "active_set" in str(info.value) and "daqp" in str(info.value)


def test_solution_sign_conventions() -> None:
    pb = portfolio_problem(21, 30, n_caps=4)
    sol = solve_qp(pb)
    act = sol.active_set
    assert act is not None
    assert (sol.z[act.at_lower] <= 1e-12).all() and (sol.z[act.at_upper] >= -1e-12).all()
    free = ~(act.at_lower | act.at_upper)
    np.testing.assert_allclose(sol.z[free], 0.0, atol=1e-14)
    assert (sol.y_ub >= 0).all() and (sol.y_ub[~act.ub_rows] == 0).all()
    resid = pb.P @ sol.x + pb.q + pb.A_eq.T @ sol.y_eq + pb.A_ub.T @ sol.y_ub + sol.z
    assert np.abs(resid).max() <= 1e-12


# --------------------------------------------------------------------------------------
# Cold solves of large problems: the kernel's small-free-set start
# --------------------------------------------------------------------------------------


def compiled_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Solve with the Python primal-dual iteration only."""
    monkeypatch.setattr(qp._ActiveSetKernel, "_pdas_compiled", lambda self, *a: None)


def count_compiled(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the compiled iteration's outcomes (settled, gave up)."""
    counts = {"settled": 0, "gave up": 0}
    real = qp_kernel.pdas

    def spy(*args: object) -> tuple:
        out = real(*args)
        counts["settled" if out[0] == qp_kernel.SETTLED else "gave up"] += 1
        return out

    monkeypatch.setattr(qp_kernel, "pdas", spy)
    return counts


@HYP
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(4, 80),
    singular=st.booleans(),
    kind=st.sampled_from(["plain", "ties", "redundant", "barely", "all_active", "min_var"]),
)
def test_compiled_iteration_agrees_with_the_python_one(
    seed: int, n: int, singular: bool, kind: str
) -> None:
    opts = {kind: True} if kind not in ("plain", "min_var") else {}
    pb = portfolio_problem(
        seed, n, singular=singular, risk_aversion=None if kind == "min_var" else 3.0, **opts
    )
    fast = solve_qp(pb, solvers=["active_set", "clarabel"])
    with pytest.MonkeyPatch.context() as mp:
        compiled_off(mp)
        slow = solve_qp(pb, solvers=["active_set", "clarabel"])
    assert verify(pb, fast, tol=1e-8) and verify(pb, slow, tol=1e-8)
    assert_objective_close(fast, slow.objective)
    if not singular and kind != "ties":  # a unique minimiser
        np.testing.assert_allclose(fast.x, slow.x, atol=1e-7)


def test_compiled_iteration_settles_wherever_the_python_one_does() -> None:
    """On a fixed grid of small problems (cold starts), including singular covariances,
    tied assets and a repeated budget row, the compiled iteration settles wherever the
    Python one does, on the same objective."""
    compiled = qp._ActiveSetKernel._pdas_compiled
    settled = {"both": 0, "compiled only": 0}
    for seed in range(6):
        for n in (8, 40):
            for singular in (False, True):
                for kind in ("plain", "min_var", "ties", "redundant"):
                    opts = {kind: True} if kind in ("ties", "redundant") else {}
                    pb = portfolio_problem(
                        seed, n, singular=singular,
                        risk_aversion=None if kind == "min_var" else 3.0, **opts,
                    )  # fmt: skip
                    kern = qp._ActiveSetKernel(pb, qp._Context(1e-9, np.inf, None))
                    start, block = kern.cold_guess()
                    fast = compiled(kern, start, 30, block)
                    kern = qp._ActiveSetKernel(pb, qp._Context(1e-9, np.inf, None))
                    kern._pdas_compiled = lambda *a: None  # type: ignore[method-assign]
                    try:
                        slow = kern.pdas(start, max_iter=30, block=block)
                    except qp._KernelFailed:
                        slow = None
                    label = (seed, n, singular, kind)
                    assert fast is not None or slow is None, label
                    if slow is not None:
                        assert pb.objective(fast[0]) == pytest.approx(
                            pb.objective(slow[0]), rel=1e-9, abs=1e-12
                        ), label
                    settled["both" if slow is not None else "compiled only"] += fast is not None
    assert settled["both"] >= 40, settled  # half the grid: the premise of the test


@pytest.mark.parametrize("mean_variance", [False, True])
def test_compiled_iteration_settles_cold_and_warm_on_capped_portfolios(
    monkeypatch: pytest.MonkeyPatch, mean_variance: bool
) -> None:
    pb = capped_universe(3, 400, mean_variance=mean_variance)
    counts = count_compiled(monkeypatch)
    cold = solve_qp(pb)
    moved = QPProblem(pb.P * 1.01, pb.q, pb.A_eq, pb.b_eq, pb.A_ub, pb.b_ub, pb.lb, pb.ub)
    warm = solve_qp(moved, warm_start=cold)
    assert counts == {"settled": 2, "gave up": 0}
    assert cold.solver == warm.solver == "active_set"
    for problem, sol in ((pb, cold), (moved, warm)):
        ref = solve_qp(problem, solvers=["piqp"])
        assert_objective_close(sol, ref.objective)
        assert verify(problem, sol, tol=1e-8)


def capped_universe(seed: int, n: int, *, mean_variance: bool = False) -> QPProblem:
    """Long-only min variance (or mean-variance) like the benchmark's: a 5-factor
    covariance (market loadings ~ N(1, 0.3), factors at most 70% of each asset's
    variance, total vols 10-40%), weights <= 10%, 11 sectors <= 20%, one sector >= 5%.
    Few weights end strictly between their bounds."""
    rng = np.random.default_rng(seed)
    f_vol = np.array([0.16, 0.08, 0.06, 0.05, 0.04])
    B = np.column_stack([rng.normal(1.0, 0.3, n), rng.normal(0.0, 0.5, (n, 4))]) * f_vol
    total = rng.uniform(0.10, 0.40, n)
    B *= np.minimum(1.0, np.sqrt(0.7 * total**2 / (B**2).sum(axis=1)))[:, None]
    P = B @ B.T + np.diag(total**2 - (B**2).sum(axis=1))
    P = 0.5 * (P + P.T)
    sector = rng.integers(0, 11, n)
    G = np.zeros((11, n))
    G[sector, np.arange(n)] = 1.0
    A_ub = np.vstack([G, -G[:1]])
    b_ub = np.append(np.full(11, 0.2), -0.05)
    q = -rng.uniform(0.0, 0.12, n) / 4.0 if mean_variance else np.zeros(n)
    return QPProblem(P, q, np.ones((1, n)), [1.0], A_ub, b_ub, 0.0, 0.1)


def homogenised_max_sharpe(seed: int, n: int) -> QPProblem:
    """The max-Sharpe QP as mean_variance.homogenised builds it: variables (y, kappa),
    min y'Sy s.t. sum y = kappa, mu'y = 1, y_i <= 0.1 kappa (n rows), sectors <= 0.3 kappa."""
    rng = np.random.default_rng(seed)
    base = capped_universe(seed, n)
    mu = rng.uniform(-0.02, 0.12, n)
    P = np.zeros((n + 1, n + 1))
    P[:n, :n] = base.P
    A_eq = np.zeros((2, n + 1))
    A_eq[0, :n], A_eq[0, n] = 1.0, -1.0
    A_eq[1, :n] = mu
    G = np.hstack([base.A_ub[:11], np.full((11, 1), -0.3)])
    caps = np.hstack([np.eye(n), np.full((n, 1), -0.1)])
    A_ub = np.vstack([G, caps])
    lb, ub = np.zeros(n + 1), np.full(n + 1, np.inf)
    return QPProblem(P, np.zeros(n + 1), A_eq, [0.0, 1.0], A_ub, np.zeros(A_ub.shape[0]), lb, ub)


def largest_factor(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every free block the kernel factorises or extends (the
    compiled iteration reports its largest)."""
    sizes: list[int] = []
    refactor, add = qp._FreeFactor._refactor, qp._FreeFactor.add
    compiled = qp_kernel.pdas

    def spy_compiled(*args: object) -> tuple:
        out = compiled(*args)
        if out[0] == qp_kernel.SETTLED:
            sizes.append(int(out[-1]))
        return out

    def spy_refactor(self: qp._FreeFactor) -> None:
        sizes.append(self.F.size)
        refactor(self)

    def spy_add(self: qp._FreeFactor, idx: np.ndarray) -> None:
        add(self, idx)
        sizes.append(self.F.size)

    monkeypatch.setattr(qp._FreeFactor, "_refactor", spy_refactor)
    monkeypatch.setattr(qp._FreeFactor, "add", spy_add)
    monkeypatch.setattr(qp_kernel, "pdas", spy_compiled)
    return sizes


def no_phase_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the kernel falls back to its LP-started primal method."""

    def refuse(self: object) -> np.ndarray:
        raise AssertionError("the cold start fell back to the phase-1 LP")

    monkeypatch.setattr(qp._ActiveSetKernel, "_phase1", refuse)


@pytest.mark.parametrize(("n", "mean_variance"), [(300, False), (450, True), (600, False)])
def test_cold_large_solve_factorises_only_a_small_block(
    monkeypatch: pytest.MonkeyPatch, n: int, mean_variance: bool
) -> None:
    pb = capped_universe(n, n, mean_variance=mean_variance)
    ref = solve_qp(pb, solvers=["piqp"])
    sizes = largest_factor(monkeypatch)
    no_phase_one(monkeypatch)
    sol = solve_qp(pb)
    assert sol.solver == "active_set" and not sol.fallbacks
    assert_objective_close(sol, ref.objective)
    assert verify(pb, sol, tol=1e-8)
    assert_x_close(pb, sol.x, ref.x, ref.objective)
    assert sol.active_set is not None
    n_free = sol.active_set.n_free
    assert n_free < n / 5  # the premise: few weights strictly inside their bounds
    # never more than the final free set plus the first guess (2 sqrt(n) + rows) twice
    assert max(sizes) <= n_free + 4 * (2 * np.sqrt(n) + pb.m_eq)
    assert max(sizes) < n / 2


@pytest.mark.parametrize("n", [350, 500])
def test_cold_large_solve_with_every_variable_free(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    # near-diagonal covariance, caps never reached: the optimum holds every asset
    rng = np.random.default_rng(n)
    d = rng.uniform(0.01, 0.09, n)
    B = rng.normal(0.0, 0.01, (n, 3))
    P = np.diag(d) + B @ B.T
    pb = QPProblem(0.5 * (P + P.T), np.zeros(n), np.ones((1, n)), [1.0], None, None, 0.0, 0.5)
    ref = solve_qp(pb, solvers=["piqp"])
    sizes = largest_factor(monkeypatch)
    no_phase_one(monkeypatch)
    sol = solve_qp(pb)
    assert sol.solver == "active_set" and not sol.fallbacks
    assert (sol.x > 1e-6).all() and sol.active_set is not None and sol.active_set.n_free == n
    assert_objective_close(sol, ref.objective)
    assert_x_close(pb, sol.x, ref.x, ref.objective)
    assert max(sizes) == n
    # inverse-variance-like answer: unconstrained min variance on the budget row
    x_closed = np.linalg.solve(pb.P, np.ones(n))
    np.testing.assert_allclose(sol.x, x_closed / x_closed.sum(), atol=1e-10)


@pytest.mark.parametrize("n", [310, 520])
def test_cold_homogenised_max_sharpe_matches_a_maintained_solver(
    monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    pb = homogenised_max_sharpe(n, n)
    ref = solve_qp(pb, solvers=["piqp"])
    no_phase_one(monkeypatch)
    sol = solve_qp(pb)
    assert sol.solver == "active_set" and not sol.fallbacks
    assert_objective_close(sol, ref.objective)
    assert verify(pb, sol, tol=1e-8)
    w, w_ref = sol.x[:n] / sol.x[n], ref.x[:n] / ref.x[n]
    np.testing.assert_allclose(w, w_ref, atol=1e-6)
    assert w.max() <= 0.1 + 1e-12 and abs(w.sum() - 1.0) <= 1e-12


def test_cold_solve_with_fixed_and_unbounded_variables() -> None:
    # fixed weights, two unbounded (long-short overlay) variables and a box elsewhere
    n = 400
    base = capped_universe(3, n, mean_variance=True)
    lb, ub = base.lb.copy(), base.ub.copy()
    lb[:3] = ub[:3] = 0.02
    lb[3:5], ub[3:5] = -np.inf, np.inf
    pb = QPProblem(base.P, base.q, base.A_eq, base.b_eq, base.A_ub, base.b_ub, lb, ub)
    ref = solve_qp(pb, solvers=["piqp"])
    sol = solve_qp(pb)
    assert sol.solver == "active_set" and not sol.fallbacks
    assert_x_close(pb, sol.x, ref.x, ref.objective)
    np.testing.assert_array_equal(sol.x[:3], 0.02)


def test_every_variable_fixed_by_its_bounds() -> None:
    pb = QPProblem(np.eye(3), -np.ones(3), np.ones((1, 3)), [0.6], lb=0.2, ub=0.2)
    sol = solve_qp(pb, solvers=["active_set"])  # the kernel's own handling
    assert sol.solver == "active_set" and not sol.fallbacks
    np.testing.assert_array_equal(sol.x, 0.2)
    # z makes the gradient vanish: x - 1 + y + z = 0, with y free to split the pull
    np.testing.assert_allclose(sol.x - 1.0 + sol.y_eq[0] + sol.z, 0.0, atol=1e-12)
    with pytest.raises(InfeasibleError):
        solve_qp(QPProblem(np.eye(3), -np.ones(3), np.ones((1, 3)), [0.7], lb=0.2, ub=0.2))


def test_warm_started_frontier_after_a_large_cold_solve() -> None:
    # the cold answer's working set and factor seed the next points, as in the app
    n = 400
    base = capped_universe(17, n)
    rng = np.random.default_rng(17)
    mu = rng.uniform(0.0, 0.12, n)
    first = solve_qp(base)
    lo = float(mu @ first.x)
    A_eq = np.vstack([base.A_eq, mu])
    prev = first
    for target in np.linspace(lo, lo + 0.02, 6)[1:]:
        pb = QPProblem(base.P, base.q, A_eq, [1.0, target], base.A_ub, base.b_ub, 0.0, 0.1)
        warm_from = prev if prev.y_eq.size == 2 else None
        warm = solve_qp(pb, warm_start=warm_from, solvers=["active_set"])
        ref = solve_qp(pb, solvers=["piqp"])
        assert warm.solver == "active_set" and not warm.fallbacks
        assert_x_close(pb, warm.x, ref.x, ref.objective)
        prev = warm


# --------------------------------------------------------------------------------------
# Kernel pieces: factor updates, row blocks, sparse products
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("big", [False, True])
def test_free_factor_add_and_keep_track_the_free_block(big: bool) -> None:
    # big: blocks over 256 columns, where dropping refactorises only the trailing block
    rng = np.random.default_rng(4)
    n = 400 if big else 60
    pb = QPProblem(factor_cov(rng, n, k=4), np.zeros(n), lb=0.0, ub=1.0)
    kern = qp._ActiveSetKernel(pb, qp._Context(tol=1e-9, deadline=np.inf, warm=None))
    fac = qp._FreeFactor(kern, np.array([5, 1, 9]))

    def check() -> None:
        F = fac.F
        H = pb.P[np.ix_(F, F)] + kern.eps * np.eye(F.size)
        np.testing.assert_allclose(fac.H, H, rtol=0, atol=1e-15)
        np.testing.assert_allclose(fac.L @ fac.L.T, H, rtol=0, atol=1e-13)
        assert np.allclose(fac.L, np.tril(fac.L))

    check()
    fac.add(np.array([30, 2, 44, 17]))
    check()
    fac.add(np.arange(50, 330 if big else 60))
    check()
    for drop in ([0], [-1], [-3, -2], [3, 7, 8], None, [0, 1, 2]):
        # first, last, trailing pair, early, scattered (None), leading
        m = fac.F.size
        mask = np.ones(m, dtype=bool)
        mask[[m // 2, m // 2 + 1, -5] if drop is None else drop] = False
        kept = fac.F[mask]
        fac.keep(mask)
        np.testing.assert_array_equal(fac.F, kept)
        check()
    fac.keep(np.zeros(fac.F.size, dtype=bool))
    assert fac.F.size == 0 and fac.L.shape == (0, 0)


def test_row_blocks_match_the_stacked_rows() -> None:
    rng = np.random.default_rng(2)
    n = 300
    A_eq, A_ub = rng.normal(size=(2, n)), rng.normal(size=(2000, n))
    C = np.vstack([A_eq, A_ub])
    rows = qp._Rows(A_eq, A_ub)
    idx = np.array([401, 0, 5, 1, 2, 1999])
    cols = np.array([7, 3, 250, 11])
    np.testing.assert_array_equal(rows.rows(idx), C[idx])
    np.testing.assert_array_equal(rows.rows(idx[2:]), C[idx[2:]])
    np.testing.assert_array_equal(rows.rows(idx[1:2]), C[idx[1:2]])
    np.testing.assert_array_equal(rows.cols(cols), C[:, cols])
    np.testing.assert_array_equal(rows.block(idx, cols), C[np.ix_(idx, cols)])
    big = np.arange(0, 2002, 2)
    np.testing.assert_array_equal(rows.block(big, cols), C[np.ix_(big, cols)])
    x = rng.normal(size=n)
    np.testing.assert_allclose(rows @ x, C @ x, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(rows.row_absmax(), np.abs(C).max(axis=1), rtol=0, atol=0)
    # the column cache of A_ub: few columns (no cache), new ones, the same reversed, half
    # new, enough new to grow the cache, then more than half of A_ub (no cache)
    first = np.arange(0, 90, 3)
    batches = [
        cols,
        first,
        first[::-1],
        np.concatenate([first[:15], np.arange(100, 115)]),
        np.arange(200, 240),
        np.arange(0, 200),
        first,
    ]
    for c in batches:
        v = rng.normal(size=c.size)
        np.testing.assert_allclose(rows.cols_matvec(c, v), C[:, c] @ v, rtol=1e-12, atol=1e-12)
    assert rows._slab_k == 85 and rows._slab.shape[1] > 64  # cached 30 + 15 + 40, grown


def test_sparse_products_in_the_kkt_check() -> None:
    rng = np.random.default_rng(8)
    A = rng.normal(size=(50, 40))
    for nnz in (0, 3, 39):
        x = np.zeros(40)
        x[rng.choice(40, nnz, replace=False)] = rng.normal(size=nnz)
        np.testing.assert_allclose(qp._matvec(A, x), A @ x, rtol=1e-13, atol=1e-14)
        y = np.zeros(50)
        y[rng.choice(50, min(nnz, 50), replace=False)] = rng.normal(size=min(nnz, 50))
        np.testing.assert_allclose(qp._rmatvec(A, y), A.T @ y, rtol=1e-13, atol=1e-14)


def test_from_checked_skips_only_the_checks_of_p() -> None:
    """``QPProblem.from_checked`` gives the same problem and answer as the constructor,
    and still refuses bad rows and bounds (only P's O(n^2) checks are skipped)."""
    rng = np.random.default_rng(11)
    B = rng.normal(size=(30, 4))
    P = B @ B.T + np.diag(rng.uniform(0.1, 0.5, 30))
    rows = dict(A_eq=np.ones((1, 30)), b_eq=np.array([1.0]), lb=np.zeros(30), ub=np.full(30, 0.2))
    plain = QPProblem(P=P, q=np.zeros(30), **rows)
    fast = QPProblem.from_checked(P=P, q=np.zeros(30), **rows)
    assert "_p_checked" not in vars(fast)
    np.testing.assert_allclose(solve_qp(fast).x, solve_qp(plain).x, atol=1e-12)
    with pytest.raises(ValidationError, match="lower bound above upper bound"):
        QPProblem.from_checked(P=P, q=np.zeros(30), lb=np.ones(30), ub=np.zeros(30))
    with pytest.raises(ValidationError, match="q has NaN"):
        QPProblem.from_checked(P=P, q=np.full(30, np.nan))
    bad = P.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValidationError, match="P has NaN"):
        QPProblem(P=bad, q=np.zeros(30))  # the constructor still checks P


@pytest.mark.parametrize("solver", ["daqp", "piqp", "highs", "clarabel", "active_set"])
def test_every_backend_takes_read_only_arrays(solver: str) -> None:
    """The engine hands over read-only arrays (its prepared covariance, kept constraint
    rows): every backend must solve from them, not fail on the buffers."""
    rng = np.random.default_rng(1)
    n = 30
    B = rng.normal(size=(n, 3))
    P = B @ B.T + np.diag(rng.uniform(0.1, 0.5, n))
    arrays = dict(
        P=P, q=np.zeros(n), A_eq=np.ones((1, n)), b_eq=np.array([1.0]),
        A_ub=rng.normal(size=(3, n)), b_ub=np.ones(3), lb=np.zeros(n), ub=np.full(n, 0.2),
    )  # fmt: skip
    for a in arrays.values():
        a.flags.writeable = False
    sol = solve_qp(QPProblem(**arrays), solvers=[solver])
    assert sol.solver == solver and not sol.fallbacks
    ref = solve_qp(QPProblem(**{k: np.array(v) for k, v in arrays.items()}), solvers=["piqp"])
    assert sol.objective == pytest.approx(ref.objective, rel=1e-9)


def test_a_cycling_kernel_hands_over_to_daqp_at_moderate_size(monkeypatch) -> None:
    """Cold, at most ``HANDOFF_MAX_N`` variables, DAQP next in the chain: a primal-dual
    iteration that fails hands the problem to DAQP at once (named in ``fallbacks``);
    without DAQP behind it, the kernel's own primal method answers. Both exactly."""
    pb = capped_universe(5, 150)
    ref = solve_qp(pb, solvers=["piqp"])

    def cycles(self, *args, **kwargs):
        raise qp._KernelFailed("primal-dual active-set iteration cycled")

    monkeypatch.setattr(qp._ActiveSetKernel, "pdas", cycles)
    handed = solve_qp(pb)
    assert qp.default_solvers(150)[:2] == ["active_set", "daqp"]
    assert handed.solver == "daqp"
    assert any("handed to DAQP" in f for f in handed.fallbacks)
    own = solve_qp(pb, solvers=["active_set", "piqp"])
    assert own.solver == "active_set" and not own.fallbacks
    for sol in (handed, own):
        assert_objective_close(sol, ref.objective)
        assert verify(pb, sol)
