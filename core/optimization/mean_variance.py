"""Mean-variance problems on a :class:`LinearForm`: fast dense-QP path, cvxpy otherwise.

Variables are ``v = [w_1..w_n, (cash)]``. Cash has zero excess return and zero risk.
All functions return a :class:`~core.optimization.general.RawSolution`; the engine
turns it into an :class:`~core.optimization.results.OptimizationResult`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import InfeasibleError, ValidationError
from core.optimization.constraints import LinearForm, OptimizationConstraints
from core.optimization.general import (
    CONIC_CHAIN,
    QP_CHAIN,
    RawSolution,
    _cp,
    build_constraint_list,
    current_weight_vector,
    solve_problem,
)


def extend(form: LinearForm, mu: np.ndarray, cov: np.ndarray, rf: float):
    """Expected excess returns and covariance over the variable vector (cash appended)."""
    n = form.n_funds
    if form.has_cash:
        mu_v = np.append(mu - rf, 0.0)
        cov_v = np.zeros((n + 1, n + 1))
        cov_v[:n, :n] = cov
        return mu_v, cov_v
    return mu - rf, cov


def needs_general_path(form: LinearForm, constraints: OptimizationConstraints) -> bool:
    return bool(form.general_only) or constraints.target_volatility is not None


def qp_problem(form: LinearForm, P: np.ndarray, q: np.ndarray, extra_ub=None):
    from core.optimization.qp import QPProblem

    A_ub, b_ub, names = form.A_ub, form.b_ub, list(form.ub_names)
    if extra_ub is not None:
        rows, rhs, extra_names = extra_ub
        A_ub = np.vstack([A_ub, rows])
        b_ub = np.concatenate([b_ub, rhs])
        names += extra_names
    # P is the engine's prepared covariance (or it bordered by zeros for cash)
    return QPProblem.from_checked(
        P=P, q=q, A_eq=form.A_eq, b_eq=form.b_eq, A_ub=A_ub, b_ub=b_ub,
        lb=form.lb, ub=form.ub, row_names=[*form.eq_names, *names],
    )  # fmt: skip


def _from_qp(sol, extra_fallbacks=()) -> RawSolution:
    return RawSolution(
        v=np.asarray(sol.x, dtype=float),
        solver=sol.solver,
        status=sol.status,
        objective_value=float(sol.objective),
        solve_time=float(sol.solve_time),
        fallbacks=[*extra_fallbacks, *sol.fallbacks],
        extra={"qp_solution": sol},
    )


def solve_quadratic(
    form: LinearForm,
    P: np.ndarray,
    q: np.ndarray,
    constraints: OptimizationConstraints,
    *,
    warm_start=None,
    extra_ub=None,
    infeasible_message: str = "No portfolio satisfies the constraints",
) -> RawSolution:
    """minimize 0.5 v'Pv + q'v over the form (plus turnover/costs on the general path)."""
    tc = constraints.transaction_cost_bps / 1e4
    if not form.general_only:
        from core.optimization.qp import solve_qp

        sol = solve_qp(qp_problem(form, P, q, extra_ub), warm_start=warm_start)
        return _from_qp(sol)
    cp = _cp()
    v = cp.Variable(form.n_vars)
    n = form.n_funds
    P_sym = 0.5 * (P + P.T)
    ev, vecs = np.linalg.eigh(P_sym)
    L = vecs * np.sqrt(np.clip(ev, 0, None))  # P = L L'
    objective = 0.5 * cp.sum_squares(L.T @ v) + q @ v
    if tc:
        objective += tc * cp.norm1(v[:n] - current_weight_vector(form, constraints))
    cons = build_constraint_list(v, form, constraints)
    if extra_ub is not None:
        cons.append(extra_ub[0] @ v <= extra_ub[1])

    def make():
        return cp.Problem(cp.Minimize(objective), cons)

    return solve_problem(
        make, chain=QP_CHAIN, recover=lambda: np.asarray(v.value, dtype=float),
        infeasible_message=infeasible_message, form=form,
    )  # fmt: skip


def max_linear(form: LinearForm, c: np.ndarray) -> tuple[float, np.ndarray]:
    """max c'v over the linear constraints (an LP, solved exactly by HiGHS)."""
    from scipy.optimize import linprog  # (0.3 s to import: not before the window is shown)

    res = linprog(
        -c, A_ub=form.A_ub if form.A_ub.shape[0] else None,
        b_ub=form.b_ub if form.A_ub.shape[0] else None, A_eq=form.A_eq, b_eq=form.b_eq,
        bounds=list(zip(form.lb, form.ub, strict=True)), method="highs",
    )  # fmt: skip
    if res.status == 3:
        return float("inf"), np.full(form.n_vars, np.nan)
    if res.status != 0:
        from core.optimization.constraints import diagnose_infeasibility

        conflicts = diagnose_infeasibility(form)
        raise InfeasibleError(
            "No portfolio satisfies these constraints together: " + "; ".join(conflicts),
            conflicts,
        )
    return float(-res.fun), np.asarray(res.x)


def min_volatility(
    form: LinearForm, cov: np.ndarray, constraints: OptimizationConstraints, *, warm_start=None
) -> RawSolution:
    _, cov_v = extend(form, np.zeros(form.n_funds), cov, 0.0)
    return solve_quadratic(form, cov_v, np.zeros(form.n_vars), constraints, warm_start=warm_start)


def homogenised_rows(form: LinearForm, what: str) -> dict[str, Any]:
    """Constraint rows of the homogenised problem over ``u = [y (n_vars), kappa]``.

    Every row of the form gets its right-hand side multiplied by ``kappa``; bounds other
    than 0 and +inf become rows ``y_i - ub_i kappa <= 0``. The LAST equality row is the
    normalisation ``c'y = 1``: it is returned as zeros for the caller to fill with ``c``
    (expected excess returns for max Sharpe, volatilities for max diversification), so
    that a backtest can keep the rows and change only ``c`` and the covariance.
    """
    nv = form.n_vars
    A_eq = np.vstack([np.hstack([form.A_eq, -form.b_eq[:, None]]), np.zeros((1, nv + 1))])
    b_eq = np.append(np.zeros(form.A_eq.shape[0]), 1.0)
    rows = [np.hstack([form.A_ub, -form.b_ub[:, None]])] if form.A_ub.shape[0] else []
    names = list(form.ub_names)
    var_names = [*form.symbols, "cash"] if form.has_cash else list(form.symbols)
    lb = np.zeros(nv + 1)
    ub = np.full(nv + 1, np.inf)
    f_lb, f_ub = np.asarray(form.lb[:nv], dtype=float), np.asarray(form.ub[:nv], dtype=float)
    lb[:nv][f_lb != 0.0] = -np.inf
    ub[:nv][f_ub == 0.0] = 0.0
    # bound rows, built at once (a Python loop took 4 ms at 1,000 funds), in the order
    # minimum then maximum of each variable in turn
    lo_i = np.flatnonzero((f_lb != 0.0) & np.isfinite(f_lb))
    hi_i = np.flatnonzero(np.isfinite(f_ub) & (f_ub != 0.0))
    var = np.concatenate([lo_i, hi_i])
    is_hi = np.concatenate([np.zeros(lo_i.size, bool), np.ones(hi_i.size, bool)])
    order = np.lexsort((is_hi, var))
    var, is_hi = var[order], is_hi[order]
    bound_rows = np.zeros((var.size, nv + 1))
    bound_rows[np.arange(var.size), var] = np.where(is_hi, 1.0, -1.0)
    bound_rows[:, nv] = np.where(is_hi, -f_ub[var], f_lb[var])
    rows.append(bound_rows)
    names += [
        f"{'maximum' if h else 'minimum'} weight of {var_names[i]}"
        for i, h in zip(var.tolist(), is_hi.tolist(), strict=True)
    ]
    A_ub = np.vstack(rows)
    return {
        "A_eq": A_eq, "b_eq": b_eq, "A_ub": A_ub, "b_ub": np.zeros(A_ub.shape[0]),
        "lb": lb, "ub": ub, "row_names": [*form.eq_names, f"{what} normalisation", *names],
    }  # fmt: skip


def homogenised(
    form: LinearForm,
    c: np.ndarray,
    cov_v: np.ndarray,
    constraints: OptimizationConstraints,
    what: str,
) -> RawSolution:
    """max c'v / sqrt(v' cov_v v) exactly, as a convex QP in ``(y, kappa)``.

    With ``v = y / kappa``: minimise ``y' cov y`` subject to ``c'y = 1`` and every
    constraint with its right-hand side multiplied by ``kappa >= 0``. Max Sharpe uses
    ``c = mu - rf`` (cash 0); max diversification uses ``c = sigma``.
    """
    no_positive = (
        f"No feasible portfolio has a positive {what}: every mix allowed by the "
        "constraints has an expected return at or below the risk-free rate. "
        "Lower the risk-free rate, revise the expected returns, or use Min volatility."
    )
    nv = form.n_vars
    tc = constraints.transaction_cost_bps / 1e4
    if not needs_general_path(form, constraints):
        from core.optimization.qp import QPProblem, solve_qp

        rows = homogenised_rows(form, what)
        rows["A_eq"][-1, :nv] = c
        P = np.zeros((nv + 1, nv + 1))
        P[:nv, :nv] = cov_v
        # The homogenised QP is feasible exactly when some allowed mix has c'v > 0, so the
        # LP that decides that runs only when the QP finds no solution, to say which case.
        try:
            sol = solve_qp(QPProblem.from_checked(P=P, q=np.zeros(nv + 1), **rows))
        except InfeasibleError:
            best, _ = max_linear(form, c)  # raises itself when the constraints conflict
            if not best > 1e-12:
                raise InfeasibleError(no_positive) from None
            raise
        kappa = sol.x[nv]
        if not kappa < 1e12:  # c'v = 1 / kappa: no mix is measurably above zero
            raise InfeasibleError(no_positive)
        raw = _from_qp(sol)
        raw.v = sol.x[:nv] / kappa
        raw.extra["kappa"] = kappa
        return raw

    best, _ = max_linear(form, c)
    if not best > 1e-12:
        raise InfeasibleError(no_positive)
    cp = _cp()
    n = form.n_funds
    y = cp.Variable(nv)
    kappa = cp.Variable(nonneg=True)
    ev, vecs = np.linalg.eigh(0.5 * (cov_v + cov_v.T))
    L = vecs * np.sqrt(np.clip(ev, 0, None))
    cons = build_constraint_list(y, form, constraints, scale=kappa)
    if tc:
        t = cp.Variable(n, nonneg=True)
        w0 = current_weight_vector(form, constraints)
        cons += [t >= y[:n] - w0 * kappa, t >= -(y[:n] - w0 * kappa), c @ y - tc * cp.sum(t) == 1]
    else:
        cons.append(c @ y == 1)
    if constraints.target_volatility is not None:
        cons.append(cp.norm(L.T @ y) <= constraints.target_volatility * kappa)

    def make():
        return cp.Problem(cp.Minimize(cp.sum_squares(L.T @ y)), cons)

    def recover():
        return np.asarray(y.value, dtype=float) / float(kappa.value)

    return solve_problem(
        make, chain=CONIC_CHAIN, recover=recover, form=form,
        infeasible_message=f"No portfolio satisfies the constraints with a positive {what}",
    )  # fmt: skip


def max_sharpe(
    form: LinearForm, mu: np.ndarray, cov: np.ndarray, rf: float, constraints
) -> RawSolution:
    mu_v, cov_v = extend(form, mu, cov, rf)
    return homogenised(form, mu_v, cov_v, constraints, "excess return")


def max_diversification(form: LinearForm, cov: np.ndarray, constraints) -> RawSolution:
    sig = np.sqrt(np.clip(np.diag(cov), 0, None))
    sig_v, cov_v = extend(form, sig, cov, 0.0)
    return homogenised(form, sig_v, cov_v, constraints, "diversification ratio")


def max_return(
    form: LinearForm, mu: np.ndarray, cov: np.ndarray, constraints: OptimizationConstraints
) -> RawSolution:
    """Max expected return, under ``target_volatility`` when set (a cone program)."""
    mu_v, cov_v = extend(form, mu, cov, 0.0)
    if constraints.target_volatility is None and not form.general_only:
        best, x = max_linear(form, mu_v)
        if not np.isfinite(best):
            raise ValidationError(
                "Max return is unbounded: set a volatility target or weight bounds",
                field="target_volatility",
            )
        return RawSolution(v=x, solver="HiGHS (LP)", status="optimal", objective_value=best)
    cp = _cp()
    n = form.n_funds
    v = cp.Variable(form.n_vars)
    ev, vecs = np.linalg.eigh(0.5 * (cov_v + cov_v.T))
    L = vecs * np.sqrt(np.clip(ev, 0, None))
    cons = build_constraint_list(v, form, constraints)
    if constraints.target_volatility is not None:
        cons.append(cp.norm(L.T @ v) <= constraints.target_volatility)
    objective = mu_v @ v
    tc = constraints.transaction_cost_bps / 1e4
    if tc:
        objective -= tc * cp.norm1(v[:n] - current_weight_vector(form, constraints))

    def make():
        return cp.Problem(cp.Maximize(objective), cons)

    return solve_problem(
        make, chain=CONIC_CHAIN, recover=lambda: np.asarray(v.value, dtype=float), form=form,
        infeasible_message="No portfolio satisfies the constraints within the volatility target",
    )  # fmt: skip
