"""The general path: problems the dense QP layer cannot express, solved with cvxpy.

Absolute values (turnover, transaction costs, gross notional with shorts), volatility
caps (second-order cones) and log-barriers (constrained risk budgeting) land here. The
problem is built from the same :class:`~core.optimization.constraints.LinearForm` as the
fast path, so both paths enforce exactly the same constraints; this path is also the
reference the fast path is tested against.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import InfeasibleError, SolverError
from core.optimization.constraints import LinearForm, OptimizationConstraints

#: Conic solvers tried in order; tight tolerances because answers are shown to users.
CONIC_CHAIN: tuple[str, ...] = ("CLARABEL", "SCS")
QP_CHAIN: tuple[str, ...] = ("CLARABEL", "PIQP", "HIGHS")

_SOLVER_OPTIONS: dict[str, dict[str, Any]] = {
    "CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "max_iter": 500},
    "PIQP": {"eps_abs": 1e-10, "eps_rel": 1e-10},
    "HIGHS": {"time_limit": 60.0},
    "SCS": {"eps": 1e-9, "max_iters": 200_000},
}


@dataclass
class RawSolution:
    """Variable vector ``[w, (cash)]`` and how it was obtained."""

    v: np.ndarray
    solver: str
    status: str
    objective_value: float = float("nan")
    solve_time: float = 0.0
    fallbacks: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _cp():
    import cvxpy as cp  # lazy: 1.6 s import, only the general path needs it

    return cp


def build_constraint_list(
    v: Any,
    form: LinearForm,
    constraints: OptimizationConstraints,
    *,
    scale: Any = None,
) -> list[Any]:
    """cvxpy constraints on the variable vector ``v`` (``[w, (cash)]``).

    ``scale`` (a cvxpy variable kappa) homogenises every right-hand side, for the
    max-Sharpe and max-diversification forms where ``v = kappa * [w, cash]``.
    """
    cp = _cp()
    k = 1.0 if scale is None else scale
    n = form.n_funds
    out = [form.A_eq @ v == form.b_eq * k]
    if form.A_ub.shape[0]:
        out.append(form.A_ub @ v <= form.b_ub * k)
    finite_lo = np.isfinite(form.lb)
    finite_hi = np.isfinite(form.ub)
    if finite_lo.any():
        out.append(v[finite_lo] >= form.lb[finite_lo] * k)
    if finite_hi.any():
        out.append(v[finite_hi] <= form.ub[finite_hi] * k)
    w = v[:n]
    if constraints.max_total_notional is not None and np.any(form.lb[:n] < 0):
        out.append(form.notionals @ cp.abs(w) <= constraints.max_total_notional * k)
    if constraints.max_turnover is not None:
        w0 = current_weight_vector(form, constraints)
        out.append(cp.norm1(w - w0 * k) <= constraints.max_turnover * k)
    return out


def current_weight_vector(form: LinearForm, constraints: OptimizationConstraints) -> np.ndarray:
    cur = {s.upper(): float(x) for s, x in constraints.current_weights.items()}
    return np.array([cur.get(s, 0.0) for s in form.symbols])


def solve_problem(
    make_problem: Callable[[], Any],
    *,
    chain: Sequence[str] = CONIC_CHAIN,
    recover: Callable[[], np.ndarray],
    infeasible_message: str,
    form: LinearForm | None = None,
) -> RawSolution:
    """Solve a cvxpy problem with a fallback chain; ``optimal_inaccurate`` is retried.

    ``recover`` reads the answer (variable values) after a successful solve. An
    infeasible status raises :class:`InfeasibleError` naming the conflicting
    constraints (found by :func:`~core.optimization.constraints.diagnose_infeasibility`).
    """
    cp = _cp()
    installed = set(cp.installed_solvers())
    fallbacks: list[str] = []
    last_status = None
    for solver in chain:
        if solver not in installed:
            fallbacks.append(f"{solver}: not installed")
            continue
        problem = make_problem()
        t0 = time.perf_counter()
        try:
            problem.solve(solver=solver, **_SOLVER_OPTIONS.get(solver, {}))
        except cp.error.SolverError as exc:
            fallbacks.append(f"{solver}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - a crashing solver must not stop the chain
            fallbacks.append(f"{solver}: raised {type(exc).__name__}: {exc}")
            continue
        elapsed = time.perf_counter() - t0
        status = problem.status
        last_status = status
        if status == cp.OPTIMAL:
            return RawSolution(
                v=recover(),
                solver=f"cvxpy/{solver}",
                status="optimal",
                objective_value=float(problem.value),
                solve_time=elapsed,
                fallbacks=fallbacks,
            )
        if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            conflicts: list[str] = []
            if form is not None:
                from core.optimization.constraints import diagnose_infeasibility

                conflicts = diagnose_infeasibility(form)
            if status == cp.INFEASIBLE or solver == chain[-1]:
                extra = f": {', '.join(conflicts)}" if conflicts else ""
                raise InfeasibleError(f"{infeasible_message}{extra}", conflicts)
        fallbacks.append(f"{solver}: {status}")
    raise SolverError(
        "No solver found an accurate optimum ("
        + "; ".join(fallbacks)
        + "). Loosen tight constraints or simplify the problem.",
        status=last_status,
    )
