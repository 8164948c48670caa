"""Solver faults: missing solvers, inaccurate or timed-out answers, crashes, wrong answers.

Every result carries the solver and its status; a backend that fails hands over to the
next one and says so in ``result.fallbacks``; when every backend fails the engine raises a
clear :class:`SolverError`; and weights that break a constraint are never called a
success (the engine re-checks every constraint on the returned weights).

The dense fast path (:mod:`core.optimization.qp`) is faulted by replacing entries of its
backend table and by making the backends' imports fail; the general path
(:mod:`core.optimization.general`, cvxpy) by faking ``cvxpy.installed_solvers`` and
wrapping ``cvxpy.Problem.solve``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np
import pytest

from core.errors import SolverError
from core.exposures import FundDefinition, FundExposureMap
from core.optimization import qp
from core.optimization.constraints import OptimizationConstraints
from core.optimization.engine import OptimizationEngine
from core.optimization.results import ObjectiveType

SYMBOLS = ["EQ", "LEV", "BND", "GLD", "TREND"]
CAP = 0.8  # cap on US_EQUITY exposure (fraction)
CAP_ROW = "max_exposure[US_EQUITY]"


@pytest.fixture(scope="module")
def engine() -> OptimizationEngine:
    funds = [
        FundDefinition("EQ", exposures={"US_EQUITY": 100.0}, source="test"),
        FundDefinition("LEV", exposures={"US_EQUITY": 90.0, "UST_10Y": 60.0}, source="test"),
        FundDefinition("BND", exposures={"UST_10Y": 100.0}, source="test"),
        FundDefinition("GLD", exposures={"GOLD": 100.0}, source="test"),
        FundDefinition("TREND", exposures={"MANAGED_FUT": 100.0}, source="test"),
    ]
    return OptimizationEngine(fund_map=FundExposureMap(funds))


@pytest.fixture(scope="module")
def inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    B = rng.normal(0, 0.12, (5, 3))
    cov = B @ B.T + np.diag(rng.uniform(0.05, 0.2, 5) ** 2)
    mu = np.array([0.08, 0.09, 0.04, 0.05, 0.06])
    return mu, cov


def capped(**extra: Any) -> OptimizationConstraints:
    return OptimizationConstraints(max_exposure_per_type={"US_EQUITY": CAP}, **extra)


def us_equity(weights: np.ndarray) -> float:
    return float(weights[0] * 1.0 + weights[1] * 0.9)


def reference_min_vol(cov: np.ndarray, tc_bps: float = 0.0) -> float:
    """Minimum variance under the cap by cvxpy + Clarabel (current weights are zero)."""
    w = cp.Variable(5)
    cons = [cp.sum(w) == 1, w >= 0, w <= 1, w[0] + 0.9 * w[1] <= CAP]
    obj = 0.5 * cp.quad_form(w, cp.psd_wrap(cov)) + tc_bps / 1e4 * cp.norm1(w)
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-14, tol_gap_rel=1e-12, tol_feas=1e-12)
    return float(w.value @ cov @ w.value)


# ------------------------------------------------------------------------------ fast path
def _crash(problem: Any, ctx: Any) -> qp.QPSolution:
    raise RuntimeError("backend crashed")


def _timed_out(problem: Any, ctx: Any) -> qp.QPSolution:
    n = problem.n
    return qp.QPSolution(x=np.full(n, np.nan), objective=np.nan, status="time_limit", solver="x")


def test_fast_path_backends_missing_or_crashing_fall_back(monkeypatch, engine, inputs):
    mu, cov = inputs
    monkeypatch.setitem(qp._BACKENDS, "active_set", _crash)
    missing = {"daqp": "daqp", "piqp": "piqp", "highs": "highspy"}
    for module in missing.values():
        monkeypatch.setitem(sys.modules, module, None)  # `import daqp` raises ImportError
    res = engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(), "min_volatility")
    assert res.success and res.status == "optimal"
    chain = qp.default_solvers(len(SYMBOLS))
    assert res.solver == next(s for s in chain if s != "active_set" and s not in missing)
    text = " | ".join(res.fallbacks)
    assert "active_set: raised RuntimeError: backend crashed" in text
    for name in missing:
        if chain.index(name) < chain.index(res.solver):
            assert f"{name}: not installed" in text
    w = res.weights.to_numpy()
    assert us_equity(w) <= CAP + 1e-9
    assert res.expected_volatility**2 == pytest.approx(reference_min_vol(cov), rel=1e-7)


def test_fast_path_time_limit_hands_over_to_the_next_backend(monkeypatch, engine, inputs):
    mu, cov = inputs
    first = qp.default_solvers(len(SYMBOLS) + 1)[0]  # the homogenised QP has one more
    monkeypatch.setitem(qp._BACKENDS, first, _timed_out)
    res = engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(), "max_sharpe", 0.02)
    assert res.success and res.status == "optimal"
    assert res.solver != first
    assert any(f.startswith(f"{first}: time_limit") for f in res.fallbacks)
    assert us_equity(res.weights.to_numpy()) <= CAP + 1e-9


def test_fast_path_all_backends_failing_is_a_clear_solver_error(monkeypatch, engine, inputs):
    mu, cov = inputs
    for name in list(qp._BACKENDS):
        monkeypatch.setitem(qp._BACKENDS, name, _crash if name != "piqp" else _timed_out)
    with pytest.raises(SolverError) as err:
        engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(), "min_volatility")
    message = str(err.value)
    assert "no QP solver produced a verified answer" in message
    for name in qp._BACKENDS:
        assert f"{name}:" in message  # every backend tried is named with its failure
    assert err.value.status == "time_limit"  # the time limit is the actionable cause


def test_fast_path_time_limit_of_the_chain_is_reported():
    rng = np.random.default_rng(3)
    B = rng.normal(size=(40, 40))
    problem = qp.QPProblem(
        P=B @ B.T, q=rng.normal(size=40), A_eq=np.ones((1, 40)), b_eq=np.ones(1),
        lb=np.zeros(40), ub=np.ones(40),
    )  # fmt: skip
    with pytest.raises(SolverError) as err:
        qp.solve_qp(problem, time_limit=-1.0)  # already out of time
    assert err.value.status == "time_limit"
    assert "time_limit" in str(err.value) or "time limit" in str(err.value)


def test_a_backend_answer_that_breaks_a_cap_is_not_accepted(monkeypatch, engine, inputs):
    """A backend claims 'optimal' for weights over the cap: the KKT check catches it."""
    mu, cov = inputs
    first = qp.default_solvers(len(SYMBOLS))[0]
    real = qp._BACKENDS[first]

    def wrong(problem: Any, ctx: Any) -> qp.QPSolution:
        sol = real(problem, ctx)
        x = np.zeros(problem.n)
        x[0] = 1.0  # 100% EQ: 100% US equity, over the 80% cap, but on the budget
        sol.x, sol.active_set = x, None
        return sol

    monkeypatch.setitem(qp._BACKENDS, first, wrong)
    res = engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(), "min_volatility")
    assert res.success
    assert us_equity(res.weights.to_numpy()) <= CAP + 1e-9
    # Rejected (the next backend answered) or repaired on its active set and re-checked.
    rejected = any(f.startswith(f"{first}:") for f in res.fallbacks)
    assert rejected or res.details["qp_solution"].polished
    assert res.expected_volatility**2 == pytest.approx(reference_min_vol(cov), rel=1e-7)


def test_engine_rechecks_the_weights_of_the_fast_path(monkeypatch, engine, inputs):
    """Even if the QP layer returned cap-breaking weights, success would be False."""
    mu, cov = inputs

    def lying_solve_qp(problem: qp.QPProblem, warm_start: Any = None, **kw: Any) -> qp.QPSolution:
        x = np.zeros(problem.n)
        x[0] = 1.0
        return qp.QPSolution(x=x, objective=problem.objective(x), status="optimal", solver="liar")

    monkeypatch.setattr(qp, "solve_qp", lying_solve_qp)
    res = engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(), "min_volatility")
    assert not res.success
    assert res.status == "optimal" and res.solver == "liar"  # what the solver claimed
    assert any(CAP_ROW in v for v in res.constraint_violations), res.constraint_violations
    assert "breaks constraints" in res.message and CAP_ROW in res.message


# --------------------------------------------------------------------------- general path
GENERAL = dict(transaction_cost_bps=10.0)  # costs need |w - w0|: the cvxpy path


def _fake_solve(
    monkeypatch: pytest.MonkeyPatch, fault: Callable[[cp.Problem, str], None], victims: set[str]
) -> list[str]:
    """Wrap cvxpy's Problem.solve: after a real solve, apply ``fault`` for ``victims``."""
    real = cp.Problem.solve
    calls: list[str] = []

    def solve(self: cp.Problem, *args: Any, **kwargs: Any) -> Any:
        solver = str(kwargs.get("solver"))
        calls.append(solver)
        out = real(self, *args, **kwargs)
        if solver in victims:
            fault(self, solver)
        return out

    monkeypatch.setattr(cp.Problem, "solve", solve)
    return calls


def _status(status: str) -> Callable[[cp.Problem, str], None]:
    def fault(problem: cp.Problem, solver: str) -> None:
        problem._status = status

    return fault


def test_general_path_solver_not_installed(monkeypatch, engine, inputs):
    mu, cov = inputs
    base = engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(**GENERAL), "min_volatility")
    assert base.success and base.solver == "cvxpy/CLARABEL"
    installed = [s for s in cp.installed_solvers() if s != "CLARABEL"]
    monkeypatch.setattr(cp, "installed_solvers", lambda: installed)
    res = engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(**GENERAL), "min_volatility")
    assert res.success and res.status == "optimal"
    assert res.solver == "cvxpy/PIQP"
    assert res.fallbacks[0] == "CLARABEL: not installed"
    np.testing.assert_allclose(res.weights, base.weights, atol=1e-6)
    assert res.expected_volatility**2 == pytest.approx(reference_min_vol(cov, 10.0), rel=1e-6)


@pytest.mark.parametrize(
    ("status", "objective"),
    [
        (cp.OPTIMAL_INACCURATE, "min_volatility"),
        (cp.USER_LIMIT, "min_volatility"),  # what a time limit gives
        (cp.OPTIMAL_INACCURATE, "max_sharpe"),
    ],
)
def test_general_path_inaccurate_or_timed_out_answer_falls_back(
    monkeypatch, engine, inputs, status, objective
):
    mu, cov = inputs
    calls = _fake_solve(monkeypatch, _status(status), {"CLARABEL"})
    res = engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(**GENERAL), objective, 0.02)
    assert calls[0] == "CLARABEL" and len(calls) == 2
    assert f"CLARABEL: {status}" in res.fallbacks
    assert res.success and res.status == "optimal"
    assert res.solver == ("cvxpy/PIQP" if objective == "min_volatility" else "cvxpy/SCS")
    assert us_equity(res.weights.to_numpy()) <= CAP + 1e-6


def test_general_path_crashing_solver_falls_back(monkeypatch, engine, inputs):
    mu, cov = inputs

    def crash(problem: cp.Problem, solver: str) -> None:
        raise ArithmeticError("solver blew up")

    _fake_solve(monkeypatch, crash, {"CLARABEL"})
    res = engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(**GENERAL), "min_volatility")
    assert res.success and res.solver == "cvxpy/PIQP"
    assert any("CLARABEL" in f and "solver blew up" in f for f in res.fallbacks)


@pytest.mark.parametrize("objective", ["min_volatility", "max_sharpe"])
def test_general_path_every_solver_failing_is_a_clear_solver_error(
    monkeypatch, engine, inputs, objective
):
    mu, cov = inputs
    calls = _fake_solve(
        monkeypatch, _status(cp.OPTIMAL_INACCURATE), {"CLARABEL", "PIQP", "HIGHS", "SCS"}
    )
    with pytest.raises(SolverError, match="No solver found an accurate optimum") as err:
        engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(**GENERAL), objective, 0.02)
    assert err.value.status == cp.OPTIMAL_INACCURATE
    for solver in calls:
        assert f"{solver}: optimal_inaccurate" in str(err.value)


def test_general_path_weights_breaking_a_cap_are_not_a_success(monkeypatch, engine, inputs):
    mu, cov = inputs

    def corrupt(problem: cp.Problem, solver: str) -> None:
        (v,) = problem.variables()
        bad = np.zeros(v.shape)
        bad[0] = 1.0  # 100% EQ: over the US equity cap
        v.value = bad

    _fake_solve(monkeypatch, corrupt, {"CLARABEL"})
    res = engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(**GENERAL), "min_volatility")
    assert not res.success
    assert res.status == "optimal" and res.solver == "cvxpy/CLARABEL"
    assert any(CAP_ROW in v for v in res.constraint_violations)
    assert "It is not used" in res.message


# ----------------------------------------------------------------------- status carried
@pytest.mark.parametrize(
    "objective",
    [
        ObjectiveType.MAX_SHARPE,
        ObjectiveType.MIN_VOLATILITY,
        ObjectiveType.MAX_RETURN,
        ObjectiveType.MAX_DIVERSIFICATION,
        ObjectiveType.RISK_PARITY,
    ],
)
@pytest.mark.parametrize("general", [False, True])
def test_every_result_carries_solver_and_status(engine, inputs, objective, general):
    mu, cov = inputs
    extra = GENERAL if general else {}
    if objective is ObjectiveType.MAX_RETURN:
        extra = {**extra, "target_volatility": 0.12}
    res = engine.optimize_mean_variance(SYMBOLS, mu, cov, capped(**extra), objective, 0.02)
    assert res.solver and res.status, (res.solver, res.status)
    assert res.success == (res.status == "optimal" and not res.constraint_violations)
    assert res.success, res.message
    assert us_equity(res.weights.to_numpy()) <= CAP + 1e-6
    assert res.summary()["status"] == res.status


def test_exposure_matching_carries_solver_and_status(engine):
    res = engine.optimize_exposures(SYMBOLS, {"US_EQUITY": 0.6, "UST_10Y": 0.4}, capped())
    assert res.success and res.status == "optimal" and res.solver
