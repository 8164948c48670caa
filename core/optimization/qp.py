"""The engine's dense QP layer: one problem type, a chain of solvers, every answer KKT-checked.

Every mean-variance problem on the fast path is the convex QP

    minimize    0.5 x' P x + q' x
    subject to  A_eq x == b_eq,   A_ub x <= b_ub,   lb <= x <= ub

with a dense PSD ``P`` (possibly singular), a handful of general rows and bounds.
:func:`solve_qp` tries a chain of backends (an own dense active-set kernel, DAQP,
PIQP, HiGHS, Clarabel, all called directly), checks each answer against the KKT
conditions of the ORIGINAL problem, polishes it on its active set with numpy, and
only returns an answer that passed the check.

The kernel keeps the last factorisation of each thread (one slot) so that a
warm-started solve with the same ``P`` object (frontier points) can reuse it.

Sign convention of the multipliers (every backend is mapped to it)::

    P x + q + A_eq' y_eq + A_ub' y_ub + z == 0
    y_ub >= 0,   z_i >= 0 when x_i sits at ub_i,   z_i <= 0 when x_i sits at lb_i,
    z_i == 0 when lb_i < x_i < ub_i.

So ``z = z_upper - z_lower`` with both parts non-negative, and a positive ``y_ub[i]``
is the rate at which the optimal objective falls when ``b_ub[i]`` is raised.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.linalg.blas as _blas
import scipy.linalg.lapack as _lapack
import scipy.sparse as sp

from core.errors import InfeasibleError, SolverError, ValidationError

#: Backend names accepted by ``solve_qp(solvers=...)``; the default order is
#: :func:`default_solvers`.
SOLVERS: tuple[str, ...] = ("active_set", "daqp", "piqp", "highs", "clarabel")

#: Statuses a :class:`QPSolution` can carry.
STATUSES: tuple[str, ...] = ("optimal", "infeasible", "unbounded", "time_limit", "failed")

#: Seconds HiGHS may run at n = 1000 when the caller set no time limit (its QP solver
#: can cycle, on singular P even at n = 25); scaled by (n / 1000)^2, between 5 and 600 s.
HIGHS_TIME_LIMIT = 30.0

#: Primal feasibility every accepted answer meets (relative, see :func:`check_kkt`).
FEASIBILITY_TOL = 1e-8

_TINY = 1e-300
_KKT_KEYS = ("primal", "dual", "stationarity", "complementarity", "gap")
#: Interior-point tolerances; their defaults (1e-8) are not exact on our problems.
_IPM_EPS = 1e-10
#: Below this many free variables plus active rows, polishing costs well under a millisecond.
_POLISH_CHEAP = 1200
#: Up to this many variables, a cold solve whose small-free-set start fails retries with
#: every variable free (one factorisation of P, a few ms) before the LP-started method.
_ALL_FREE_RETRY_MAX_N = 500
#: While a cold solve's bounds are still changing, more violated rows than this enter the
#: working set one at a time (the homogenised max-Sharpe QP has a cap row per variable,
#: and rows made active by variables about to be fixed pin the others).
_COLD_ROW_BURST = 4


# --------------------------------------------------------------------------------------
# Problem and solution objects
# --------------------------------------------------------------------------------------


def _as_float_array(value: Any, name: str, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be numeric", field=name) from None
    if arr.ndim != ndim:
        raise ValidationError(f"{name} must be {ndim}-D, got shape {arr.shape}", field=name)
    return arr


def _bound_array(value: Any, name: str, n: int, default: float) -> np.ndarray:
    if value is None:
        return np.full(n, default)
    if np.ndim(value) == 0:  # one bound for every variable
        return np.full(n, float(value))
    return _as_float_array(value, name, 1).copy()


@dataclass
class QPProblem:
    """A dense convex QP ``min 0.5 x'Px + q'x  s.t.  A_eq x = b_eq, A_ub x <= b_ub, lb <= x <= ub``.

    Parameters
    ----------
    P : ndarray, shape (n, n)
        Symmetric positive semidefinite Hessian (may be singular). Asymmetry up to
        1e-10 relative is symmetrised away; more is an error.
    q : ndarray, shape (n,)
        Linear term.
    A_eq, b_eq : ndarray, shapes (m_eq, n) and (m_eq,), optional
        Equality rows (budget, target return, ...).
    A_ub, b_ub : ndarray, shapes (m_ub, n) and (m_ub,), optional
        ``<=`` rows (exposure caps, floors written as ``-E w <= -floor``, notional, groups).
    lb, ub : ndarray of shape (n,) or float, optional
        Bounds (a scalar applies to every variable); ``-inf`` / ``+inf`` allowed
        (default: unbounded).
    row_names : list of str, optional
        One name per general row, equality rows first then ``<=`` rows; used to name
        constraints in infeasibility messages. Defaults to ``eq[i]`` / ``ub[i]``.
    var_names : list of str, optional
        One name per variable (e.g. tickers), used to name bounds in messages.

    After construction every array field is a float ndarray of the documented shape.
    """

    P: np.ndarray
    q: np.ndarray
    A_eq: np.ndarray | None = None
    b_eq: np.ndarray | None = None
    A_ub: np.ndarray | None = None
    b_ub: np.ndarray | None = None
    lb: np.ndarray | None = None
    ub: np.ndarray | None = None
    row_names: list[str] | None = None
    var_names: list[str] | None = None

    @classmethod
    def from_checked(cls, **fields: Any) -> QPProblem:
        """A problem whose ``P`` the caller has already checked: finite, symmetric (to
        rounding) and PSD, as the engine's prepared covariance is.

        The O(n^2) checks of ``P`` (finiteness, a symmetry sample, the diagonal) are
        skipped: at 1,000 funds they read 8 MB that the solve itself need not touch.
        Everything else is checked as by the constructor.
        """
        pb = cls.__new__(cls)
        pb.__dict__["_p_checked"] = True
        cls.__init__(pb, **fields)  # -> __post_init__, which reads and drops the mark
        return pb

    def __post_init__(self) -> None:
        problems: list[str] = []
        p_checked = bool(self.__dict__.pop("_p_checked", False))
        P = _as_float_array(self.P, "P", 2)
        n = P.shape[0]
        if P.shape != (n, n) or n == 0:
            raise ValidationError(f"P must be square and non-empty, got shape {P.shape}", field="P")
        q = _as_float_array(self.q, "q", 1)
        if q.shape != (n,):
            raise ValidationError(f"q must have shape ({n},), got {q.shape}", field="q")
        # a finite sum means finite entries (NaN and infinity propagate); the entry-wise
        # test (an n x n temporary) runs only when the sum is not finite
        if not (p_checked or np.isfinite(P.sum()) or np.isfinite(P).all()):
            problems.append("P has NaN or infinite entries")
        if not np.isfinite(q).all():
            problems.append("q has NaN or infinite entries")
        if not problems and not p_checked:
            # symmetry on a sample of rows: O(n) not O(n^2), and a P built wrongly (say
            # B F instead of B F B') is asymmetric everywhere; solvers read one triangle
            rows_ = np.unique(np.linspace(0, n - 1, min(n, 16)).astype(int))
            band = P[rows_, :]
            scale = max(float(np.abs(band).max()), float(np.abs(np.diagonal(P)).max()), _TINY)
            asym = float(np.abs(band - P[:, rows_].T).max())
            if asym > 1e-10 * scale:
                problems.append(
                    f"P is not symmetric (|P - P'| up to {asym:.3g}); pass (P + P') / 2"
                )
            if (np.diagonal(P) < -1e-12 * scale).any():
                problems.append("P has a negative diagonal entry, so it is not PSD")

        def rows(A: Any, b: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
            if A is None and b is None:
                return np.zeros((0, n)), np.zeros(0)
            if A is None or b is None:
                raise ValidationError(f"A_{name} and b_{name} must be given together", field=name)
            A = _as_float_array(A, f"A_{name}", 2)
            b = _as_float_array(b, f"b_{name}", 1)
            if A.shape[1:] != (n,) or b.shape != (A.shape[0],):
                raise ValidationError(
                    f"A_{name} must have shape (m, {n}) and b_{name} shape (m,), "
                    f"got {A.shape} and {b.shape}",
                    field=f"A_{name}",
                )
            if not (np.isfinite(A).all() and np.isfinite(b).all()):
                problems.append(f"A_{name} or b_{name} has NaN or infinite entries")
            return np.ascontiguousarray(A), b

        A_eq, b_eq = rows(self.A_eq, self.b_eq, "eq")
        A_ub, b_ub = rows(self.A_ub, self.b_ub, "ub")
        lb = _bound_array(self.lb, "lb", n, -np.inf)
        ub = _bound_array(self.ub, "ub", n, np.inf)
        if lb.shape != (n,) or ub.shape != (n,):
            raise ValidationError(f"lb and ub must have shape ({n},)", field="lb")
        if (
            np.isnan(lb).any()
            or np.isnan(ub).any()
            or (lb == np.inf).any()
            or (ub == -np.inf).any()
        ):
            problems.append("lb may hold -inf and ub +inf, but no NaN, lb = +inf or ub = -inf")
        bad = np.flatnonzero(lb > ub)
        if bad.size:
            names = self._var_labels(bad, n)
            problems.append(f"lower bound above upper bound for {', '.join(names)}")
        m = A_eq.shape[0] + A_ub.shape[0]
        if self.row_names is None:
            row_names = [f"eq[{i}]" for i in range(A_eq.shape[0])]
            row_names += [f"ub[{i}]" for i in range(A_ub.shape[0])]
        else:
            row_names = [str(s) for s in self.row_names]
            if len(row_names) != m:
                problems.append(f"row_names has {len(row_names)} names for {m} general rows")
        if self.var_names is not None and len(self.var_names) != n:
            problems.append(f"var_names has {len(self.var_names)} names for {n} variables")
        if problems:
            raise ValidationError("invalid QP: " + "; ".join(problems), problems=problems)
        self.P = np.ascontiguousarray(P)
        self.q = q
        self.A_eq, self.b_eq, self.A_ub, self.b_ub = A_eq, b_eq, A_ub, b_ub
        self.lb, self.ub = lb, ub
        self.row_names = row_names
        self.var_names = None if self.var_names is None else [str(s) for s in self.var_names]

    def _var_labels(self, idx: np.ndarray, n: int) -> list[str]:
        names = self.var_names
        if names is not None and len(names) == n:
            return [str(names[i]) for i in idx[:8]] + (["..."] if idx.size > 8 else [])
        return [f"x[{i}]" for i in idx[:8]] + (["..."] if idx.size > 8 else [])

    @property
    def n(self) -> int:
        """Number of variables."""
        return int(self.q.shape[0])

    @property
    def m_eq(self) -> int:
        """Number of equality rows."""
        return int(self.A_eq.shape[0])  # type: ignore[union-attr]

    @property
    def m_ub(self) -> int:
        """Number of ``<=`` rows."""
        return int(self.A_ub.shape[0])  # type: ignore[union-attr]

    def objective(self, x: np.ndarray) -> float:
        """``0.5 x'Px + q'x`` at ``x`` (shape (n,))."""
        return float(0.5 * x @ (self.P @ x) + self.q @ x)


@dataclass(frozen=True)
class ActiveSet:
    """Which constraints hold with equality at a solution; the warm start of the next solve.

    Attributes
    ----------
    at_lower, at_upper : ndarray of bool, shape (n,)
        Variables fixed at their lower / upper bound.
    ub_rows : ndarray of bool, shape (m_ub,)
        ``<=`` rows in the active set (equality rows always are).
    """

    at_lower: np.ndarray
    at_upper: np.ndarray
    ub_rows: np.ndarray

    @property
    def n_free(self) -> int:
        """Number of variables strictly between their bounds."""
        return int((~(self.at_lower | self.at_upper)).sum())


@dataclass
class QPSolution:
    """The answer of one backend, or the accepted answer of :func:`solve_qp`.

    Attributes
    ----------
    x : ndarray, shape (n,)
        Primal solution.
    objective : float
        ``0.5 x'Px + q'x`` at ``x``.
    status : str
        One of :data:`STATUSES`. :func:`solve_qp` only returns ``'optimal'`` answers
        (it raises otherwise); the other statuses appear on backend answers.
    solver : str
        Backend that produced ``x`` (see :data:`SOLVERS`).
    iterations : int
        Backend iterations (active-set changes, interior-point steps).
    solve_time : float
        Wall seconds of the whole :func:`solve_qp` call (of the backend for raw answers).
    y_eq : ndarray, shape (m_eq,)
        Multipliers of the equality rows.
    y_ub : ndarray, shape (m_ub,)
        Multipliers of the ``<=`` rows, ``>= 0``.
    z : ndarray, shape (n,)
        Bound multipliers, ``z = z_upper - z_lower`` (see the module docstring).
    kkt : dict of str to float
        Residuals from :func:`check_kkt` on the original problem.
    active_set : ActiveSet or None
        Active constraints, used to warm start the next solve.
    fallbacks : list of str
        Backends tried before this one that failed, and why.
    polished : bool
        Whether ``x`` and the multipliers come from the active-set polishing step.
    """

    x: np.ndarray
    objective: float
    status: str
    solver: str
    iterations: int = 0
    solve_time: float = 0.0
    y_eq: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y_ub: np.ndarray = field(default_factory=lambda: np.zeros(0))
    z: np.ndarray = field(default_factory=lambda: np.zeros(0))
    kkt: dict[str, float] = field(default_factory=dict)
    active_set: ActiveSet | None = None
    fallbacks: list[str] = field(default_factory=list)
    polished: bool = False


# --------------------------------------------------------------------------------------
# KKT check
# --------------------------------------------------------------------------------------


def check_kkt(
    problem: QPProblem,
    x: np.ndarray,
    y_eq: np.ndarray,
    y_ub: np.ndarray,
    z: np.ndarray,
) -> dict[str, float]:
    """Scale-free KKT residuals of a primal-dual point.

    Parameters
    ----------
    problem : QPProblem
    x : ndarray, shape (n,)
    y_eq : ndarray, shape (m_eq,)
    y_ub : ndarray, shape (m_ub,)
    z : ndarray, shape (n,)
        Multipliers in the module's sign convention.

    Returns
    -------
    dict
        ``primal``: worst constraint violation, each divided by ``max(1, |rhs|)``;
        ``primal_abs``: the same undivided; ``dual``: worst wrong-signed multiplier
        (``y_ub < 0``, ``z > 0`` on an infinite upper bound, ...) times its row's norm,
        over the gradient scale; ``stationarity``: ``|Px + q + A'y + z|_inf`` over the
        gradient scale ``max(max_i P_ii |x|_inf, |Px|, |q|, |A_eq'y_eq|, |A_ub'y_ub|, |z|)``
        (all infinity norms; the first term keeps the scale honest when ``Px`` vanishes);
        ``complementarity``: worst ``|multiplier * slack|`` over the objective scale
        ``max(|x'Px| + |q'x|, gradient scale * |x|_inf)``; ``gap``: primal minus dual
        objective over the objective scale; ``objective``: ``0.5 x'Px + q'x``;
        ``objective_scale``: that objective scale. Any NaN input gives ``inf`` residuals.
    """
    P, q, lb, ub = problem.P, problem.q, problem.lb, problem.ub
    A_eq, b_eq, A_ub, b_ub = problem.A_eq, problem.b_eq, problem.A_ub, problem.b_ub
    assert A_eq is not None and b_eq is not None and A_ub is not None and b_ub is not None
    assert lb is not None and ub is not None
    x = np.asarray(x, dtype=float)
    y_eq = np.asarray(y_eq, dtype=float)
    y_ub = np.asarray(y_ub, dtype=float)
    z = np.asarray(z, dtype=float)
    bad = {k: math.inf for k in _KKT_KEYS} | {
        "primal_abs": math.inf,
        "objective": math.nan,
        "objective_scale": math.nan,
    }
    if x.shape != (problem.n,) or z.shape != (problem.n,):
        return bad
    if y_eq.shape != (problem.m_eq,) or y_ub.shape != (problem.m_ub,):
        return bad
    if not (
        np.isfinite(x).all()
        and np.isfinite(z).all()
        and np.isfinite(y_eq).all()
        and np.isfinite(y_ub).all()
    ):
        return bad

    Px = _matvec(P, x)
    xPx = float(x @ Px)
    qx = float(q @ x)
    # primal feasibility
    r_eq = A_eq @ x - b_eq
    r_ub = _matvec(A_ub, x) - b_ub
    with np.errstate(invalid="ignore"):
        v_lb = np.where(np.isfinite(lb), lb - x, 0.0)
        v_ub = np.where(np.isfinite(ub), x - ub, 0.0)
    viol = [
        np.abs(r_eq),
        np.maximum(r_ub, 0.0),
        np.maximum(v_lb, 0.0),
        np.maximum(v_ub, 0.0),
    ]
    denom = [
        np.maximum(1.0, np.abs(b_eq)),
        np.maximum(1.0, np.abs(b_ub)),
        np.maximum(1.0, np.where(np.isfinite(lb), np.abs(lb), 0.0)),
        np.maximum(1.0, np.where(np.isfinite(ub), np.abs(ub), 0.0)),
    ]
    primal_abs = max((float(v.max()) for v in viol if v.size), default=0.0)
    primal = max(
        (float((v / d).max()) for v, d in zip(viol, denom, strict=True) if v.size), default=0.0
    )

    # stationarity
    Aty_eq = A_eq.T @ y_eq
    Aty_ub = _rmatvec(A_ub, y_ub)
    resid = Px + q + Aty_eq + Aty_ub + z
    xmax = float(np.abs(x).max())
    # |P_ij| <= max_k P_kk for PSD P, so max diag * |x| bounds the size of Px's terms: a
    # floor that keeps the scale meaningful when Px itself vanishes (singular P)
    gscale = max(
        _pdiag_max(P) * xmax,
        float(np.abs(Px).max()),
        float(np.abs(q).max()),
        float(np.abs(Aty_eq).max()) if Aty_eq.size else 0.0,
        float(np.abs(Aty_ub).max()) if Aty_ub.size else 0.0,
        float(np.abs(z).max()),
    )
    gscale = gscale if gscale > 0.0 else 1.0
    stationarity = float(np.abs(resid).max()) / gscale

    # dual feasibility: wrong-signed multipliers, weighted by how hard they push
    z_up = np.maximum(z, 0.0)
    z_lo = np.maximum(-z, 0.0)
    fin_lb, fin_ub = np.isfinite(lb), np.isfinite(ub)
    dual_terms = [0.0]
    if y_ub.size:
        neg = np.flatnonzero(y_ub < 0.0)  # only wrong-signed rows need their norm
        if neg.size:
            row_norm = np.abs(A_ub[neg]).max(axis=1)
            dual_terms.append(float((-y_ub[neg] * row_norm).max()))
    dual_terms.append(float(np.where(fin_ub, 0.0, z_up).max()))
    dual_terms.append(float(np.where(fin_lb, 0.0, z_lo).max()))
    dual = max(dual_terms) / gscale

    # complementarity and duality gap, in objective units
    oscale = max(abs(xPx) + abs(qx), gscale * xmax)
    oscale = oscale if oscale > 0.0 else 1.0
    s_ub = -r_ub
    comp_terms = [0.0]
    if y_ub.size:
        comp_terms.append(float(np.abs(np.maximum(y_ub, 0.0) * s_ub).max()))
    with np.errstate(invalid="ignore"):
        c_up = np.where(fin_ub, z_up * (ub - x), 0.0)
        c_lo = np.where(fin_lb, z_lo * (x - lb), 0.0)
    comp_terms.append(float(np.abs(c_up).max()))
    comp_terms.append(float(np.abs(c_lo).max()))
    complementarity = max(comp_terms) / oscale
    bound_term = float(np.where(fin_ub, z_up * np.where(fin_ub, ub, 0.0), 0.0).sum()) - float(
        np.where(fin_lb, z_lo * np.where(fin_lb, lb, 0.0), 0.0).sum()
    )
    gap_abs = xPx + qx + float(b_eq @ y_eq) + float(b_ub @ y_ub) + bound_term
    gap = abs(gap_abs) / oscale
    return {
        "primal": primal,
        "primal_abs": primal_abs,
        "dual": dual,
        "stationarity": stationarity,
        "complementarity": complementarity,
        "gap": gap,
        "objective": 0.5 * xPx + qx,
        "objective_scale": oscale,
    }


def _matvec(A: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``A @ x`` (shape (m,)) from the columns of A where x is non-zero, when few are.

    The same sum without its zero terms: a portfolio holds few of n assets, and reading a
    few columns of an n x n matrix costs a fraction of reading it all.
    """
    nz = np.flatnonzero(x)
    if 4 * nz.size < x.size:
        return np.take(A, nz, axis=1) @ x[nz]
    return A @ x


def _rmatvec(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``A' @ y`` (shape (n,)) from the rows of A where y is non-zero, when few are."""
    nz = np.flatnonzero(y)
    if 4 * nz.size < y.size:
        return y[nz] @ np.take(A, nz, axis=0)
    return A.T @ y


def _kkt_ok(kkt: dict[str, float], tol: float) -> bool:
    if kkt["primal"] > max(tol, FEASIBILITY_TOL):
        return False
    return all(kkt[k] <= tol for k in ("dual", "stationarity", "complementarity", "gap"))


def verify(problem: QPProblem, solution: QPSolution, tol: float = 1e-8) -> bool:
    """Whether ``solution`` is optimal for ``problem`` to ``tol``.

    Recomputes :func:`check_kkt` from the solution's ``x`` and multipliers (it does not
    trust ``solution.kkt``) and also checks that ``solution.objective`` matches ``x``.

    Parameters
    ----------
    problem : QPProblem
    solution : QPSolution
    tol : float
        Bound on every relative residual (primal, dual, stationarity,
        complementarity, gap).
    """
    if solution.status != "optimal":
        return False
    kkt = check_kkt(problem, solution.x, solution.y_eq, solution.y_ub, solution.z)
    if not all(kkt[k] <= tol for k in (*_KKT_KEYS,)):
        return False
    f = kkt["objective"]
    return abs(solution.objective - f) <= tol * max(abs(f), kkt["objective_scale"])


# --------------------------------------------------------------------------------------
# Active-set identification and polishing
# --------------------------------------------------------------------------------------


def _pdiag_max(P: np.ndarray) -> float:
    return max(float(np.diagonal(P).max()), 0.0)


def _gradient_scale(problem: QPProblem, x: np.ndarray, z: np.ndarray) -> float:
    g = problem.P @ x
    s = max(
        _pdiag_max(problem.P) * float(np.abs(x).max()),
        float(np.abs(g).max()),
        float(np.abs(problem.q).max()),
        float(np.abs(z).max()),
    )
    return s if s > 0.0 else 1.0


def _candidate_active_sets(
    problem: QPProblem, x: np.ndarray, y_ub: np.ndarray, z: np.ndarray
) -> list[ActiveSet]:
    """Guesses of the optimal active set from an approximate primal-dual point.

    Three rules, most to least trusted: slack against multiplier (works under strict
    complementarity), multiplier alone (for primal-degenerate points where more
    constraints touch than are needed), slack alone (for dual-degenerate ones).
    """
    lb, ub, A_ub, b_ub = problem.lb, problem.ub, problem.A_ub, problem.b_ub
    assert lb is not None and ub is not None and A_ub is not None and b_ub is not None
    gs = _gradient_scale(problem, x, z)
    fixed = lb == ub
    with np.errstate(invalid="ignore"):
        s_lo = np.where(np.isfinite(lb), (x - lb) / np.maximum(1.0, np.abs(lb)), np.inf)
        s_up = np.where(np.isfinite(ub), (ub - x) / np.maximum(1.0, np.abs(ub)), np.inf)
    m_lo = np.maximum(-z, 0.0) / gs
    m_up = np.maximum(z, 0.0) / gs
    if A_ub.shape[0]:
        s_row = (b_ub - A_ub @ x) / np.maximum(1.0, np.abs(b_ub))
        m_row = np.maximum(y_ub, 0.0) * np.abs(A_ub).max(axis=1) / gs
    else:
        s_row = m_row = np.zeros(0)

    def rule(slack: np.ndarray, mult: np.ndarray, kind: str) -> np.ndarray:
        near = slack <= 1e-6
        if kind == "compare":
            return near & ((slack <= 1e-12) | (mult > slack))
        if kind == "mult":
            return near & (mult > 1e-9)
        return slack <= 1e-9

    out: list[ActiveSet] = []
    seen: set[bytes] = set()
    for kind in ("compare", "mult", "slack"):
        lo = rule(s_lo, m_lo, kind)
        up = rule(s_up, m_up, kind)
        both = lo & up
        if both.any():  # tiny boxes: pick the side the multiplier points to
            lo = lo & ~(both & (z > 0))
            up = up & ~(both & (z <= 0))
        lo = lo | fixed
        up = up & ~fixed
        rows = rule(s_row, m_row, kind)
        key = lo.tobytes() + up.tobytes() + rows.tobytes()
        if key not in seen:
            seen.add(key)
            out.append(ActiveSet(lo, up, rows))
    return out


def _solve_kkt_system(H: np.ndarray, C: np.ndarray, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Solve ``[H C'; C 0] [u; v] = [r1; r2]`` for symmetric PSD H (possibly singular).

    Cholesky and a Schur complement when H and C H^-1 C' are positive definite (the
    common case, and the cheapest); LU otherwise; the minimum-norm least-squares
    solution when the system is singular.
    """
    nF, mW = H.shape[0], C.shape[0]
    if nF + mW == 0:
        return np.zeros(0)
    rhs = np.concatenate([r1, r2])
    L, info = _lapack.dpotrf(H, lower=1, clean=1) if nF else (H, 0)
    if info == 0 and nF:
        cond_ok = float(np.diagonal(L).min()) > 1e-7 * float(np.diagonal(L).max())
        if cond_ok:
            if mW:
                V, _ = _lapack.dpotrs(L, C.T, lower=1)
                Ls, info_s = _lapack.dpotrf(C @ V, lower=1, clean=1)
            else:
                info_s = 0
            if info_s == 0:
                u0, _ = _lapack.dpotrs(L, r1, lower=1)
                if mW:
                    v, _ = _lapack.dpotrs(Ls, C @ u0 - r2, lower=1)
                    sol = np.concatenate([u0 - V @ v, v])
                else:
                    sol = u0
                K_sol = np.concatenate([H @ sol[:nF] + C.T @ sol[nF:], C @ sol[:nF]])
                if np.isfinite(sol).all() and float(np.abs(K_sol - rhs).max()) <= 1e-12 * max(
                    1.0, float(np.abs(rhs).max())
                ):
                    return sol
    K = np.zeros((nF + mW, nF + mW))
    K[:nF, :nF] = H
    K[nF:, :nF] = C
    K[:nF, nF:] = C.T
    with warnings.catch_warnings():
        warnings.simplefilter("error", sla.LinAlgWarning)
        try:
            sol = sla.solve(K, rhs, check_finite=False)
            res = float(np.abs(K @ sol - rhs).max())
            if np.isfinite(sol).all() and res <= 1e-10 * max(1.0, float(np.abs(rhs).max())):
                return sol
        except (np.linalg.LinAlgError, sla.LinAlgWarning, ValueError):
            pass
    sol = sla.lstsq(K, rhs, check_finite=False, lapack_driver="gelsd")[0]
    return np.asarray(sol)


def _polish(
    problem: QPProblem,
    x: np.ndarray,
    y_eq: np.ndarray,
    y_ub: np.ndarray,
    active: ActiveSet,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Solve the equality-constrained QP on ``active`` as a correction of ``(x, y)``.

    Fixes the active bounds exactly, then solves
    ``[P_FF C_WF'; C_WF 0] [dx; dy] = [-(g_F + C_WF' y); d_W - C_W x]`` on the free
    variables F and working rows W (all equality rows plus the active ``<=`` rows).
    Where the system is singular the minimum-norm correction keeps the answer next to
    the backend's point, so degenerate multipliers keep the backend's valid choice.

    Returns
    -------
    (x, y_eq, y_ub, z) or None
        The polished point (shapes (n,), (m_eq,), (m_ub,), (n,)), or None when it is not
        finite (a bound at infinity in the active set). Whether it is optimal is for the
        caller's KKT check to decide.
    """
    P, q, lb, ub = problem.P, problem.q, problem.lb, problem.ub
    A_eq, b_eq, A_ub, b_ub = problem.A_eq, problem.b_eq, problem.A_ub, problem.b_ub
    assert lb is not None and ub is not None and A_eq is not None and A_ub is not None
    assert b_eq is not None and b_ub is not None
    m_eq = A_eq.shape[0]
    xp = x.copy()
    xp[active.at_lower] = lb[active.at_lower]
    xp[active.at_upper] = ub[active.at_upper]
    if not np.isfinite(xp).all():
        return None
    F = np.flatnonzero(~(active.at_lower | active.at_upper))
    rows_ub = np.flatnonzero(active.ub_rows)
    C_W = np.vstack([A_eq, A_ub[rows_ub]])
    d_W = np.concatenate([b_eq, b_ub[rows_ub]])
    y0 = np.concatenate([y_eq, np.maximum(y_ub[rows_ub], 0.0)])
    g = P @ xp + q
    nF = F.size
    C_WF = C_W[:, F]
    H = np.take(np.take(P, F, axis=0), F, axis=1)
    sol = _solve_kkt_system(H, C_WF, -(g[F] + C_WF.T @ y0), d_W - C_W @ xp)
    if not np.isfinite(sol).all():
        return None
    xp[F] += sol[:nF]
    yW = y0 + sol[nF:]
    y_eq_new = yW[:m_eq]
    y_ub_new = np.zeros(A_ub.shape[0])
    y_ub_new[rows_ub] = yW[m_eq:]
    grad = P @ xp + q + A_eq.T @ y_eq_new + A_ub.T @ y_ub_new
    z_new = np.zeros_like(xp)
    fixed = ~np.isin(np.arange(problem.n), F)
    z_new[fixed] = -grad[fixed]
    return xp, y_eq_new, y_ub_new, z_new


# --------------------------------------------------------------------------------------
# Presolve: dependent equality rows
# --------------------------------------------------------------------------------------


@dataclass
class _Presolved:
    problem: QPProblem  # the problem handed to the backends
    eq_keep: np.ndarray  # indices of the original equality rows kept


def _presolve(problem: QPProblem) -> _Presolved:
    """Drop linearly dependent equality rows (after checking they are consistent)."""
    A_eq, b_eq = problem.A_eq, problem.b_eq
    assert A_eq is not None and b_eq is not None
    m_eq = A_eq.shape[0]
    if m_eq <= 1:
        if m_eq == 1 and not np.any(A_eq[0]):
            if abs(b_eq[0]) > FEASIBILITY_TOL * max(1.0, abs(b_eq[0])):
                name = problem.row_names[0]  # type: ignore[index]
                raise InfeasibleError(
                    f"equality row {name!r} has all coefficients zero but a non-zero "
                    f"right-hand side {b_eq[0]:.6g}; remove it or fix its coefficients",
                    conflicts=[name],
                )
            return _Presolved(_drop_eq_rows(problem, np.zeros(0, dtype=int)), np.zeros(0, int))
        return _Presolved(problem, np.arange(m_eq))
    scale = np.maximum(np.abs(A_eq).max(axis=1), _TINY)
    An = A_eq / scale[:, None]
    _, R, piv = sla.qr(An.T, mode="economic", pivoting=True, check_finite=False)
    diag = np.abs(np.diag(R))
    rank = int((diag > 1e-10 * max(float(diag[0]), _TINY)).sum()) if diag.size else 0
    if rank == m_eq:
        return _Presolved(problem, np.arange(m_eq))
    keep = np.sort(piv[:rank])
    drop = np.sort(piv[rank:])
    # every dropped row is a combination of kept rows: its rhs must be the same combination
    if rank:
        coef = sla.lstsq(An[keep].T, An[drop].T, check_finite=False)[0]
        implied = coef.T @ (b_eq[keep] / scale[keep])
    else:
        coef = np.zeros((0, drop.size))
        implied = np.zeros(drop.size)
    mismatch = np.abs(b_eq[drop] / scale[drop] - implied)
    names = problem.row_names
    assert names is not None
    bad = drop[mismatch > FEASIBILITY_TOL * np.maximum(1.0, np.abs(b_eq[drop]) / scale[drop])]
    if bad.size:
        involved = [names[i] for i in bad]
        for j, i in enumerate(drop):
            if i in bad and rank:
                involved += [names[keep[k]] for k in np.flatnonzero(np.abs(coef[:, j]) > 1e-12)]
        involved = list(dict.fromkeys(involved))
        raise InfeasibleError(
            "equality rows contradict each other: "
            + ", ".join(repr(s) for s in involved)
            + " are linearly dependent with different right-hand sides; "
            "remove one or make their targets consistent",
            conflicts=involved,
        )
    return _Presolved(_drop_eq_rows(problem, keep), keep)


def _drop_eq_rows(problem: QPProblem, keep: np.ndarray) -> QPProblem:
    assert problem.A_eq is not None and problem.b_eq is not None and problem.row_names is not None
    names = [problem.row_names[i] for i in keep] + problem.row_names[problem.m_eq :]
    reduced = object.__new__(QPProblem)  # skip re-validation of already validated data
    reduced.P, reduced.q = problem.P, problem.q
    reduced.A_eq, reduced.b_eq = problem.A_eq[keep], problem.b_eq[keep]
    reduced.A_ub, reduced.b_ub = problem.A_ub, problem.b_ub
    reduced.lb, reduced.ub = problem.lb, problem.ub
    reduced.row_names, reduced.var_names = names, problem.var_names
    return reduced


# --------------------------------------------------------------------------------------
# Backends: each returns a raw QPSolution on the problem it was given
# --------------------------------------------------------------------------------------


@dataclass
class _Context:
    tol: float
    deadline: float
    warm: QPSolution | None
    #: DAQP follows the kernel in the chain at a size where it beats the kernel's primal
    #: method: a cold kernel whose primal-dual iteration fails hands over at once.
    handoff: bool = False

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()


def _raw(
    problem: QPProblem,
    solver: str,
    status: str,
    x: np.ndarray | None = None,
    y_eq: np.ndarray | None = None,
    y_ub: np.ndarray | None = None,
    z: np.ndarray | None = None,
    iterations: int = 0,
    message: str = "",
    objective: float | None = None,
) -> QPSolution:
    n = problem.n
    x = np.full(n, np.nan) if x is None else np.asarray(x, dtype=float).reshape(n)
    if objective is None or not math.isfinite(objective):
        objective = problem.objective(x) if np.isfinite(x).all() else math.nan
    sol = QPSolution(
        x=x,
        objective=objective,
        status=status,
        solver=solver,
        iterations=int(iterations),
        y_eq=np.zeros(problem.m_eq) if y_eq is None else np.asarray(y_eq, dtype=float),
        y_ub=np.zeros(problem.m_ub) if y_ub is None else np.asarray(y_ub, dtype=float),
        z=np.zeros(n) if z is None else np.asarray(z, dtype=float),
    )
    if message:
        sol.fallbacks.append(message)
    return sol


def _stack_rows(problem: QPProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """General rows as one block: (C (m, n), lower (m,), upper (m,))."""
    assert problem.A_eq is not None and problem.A_ub is not None
    assert problem.b_eq is not None and problem.b_ub is not None
    C = np.vstack([problem.A_eq, problem.A_ub])
    lo = np.concatenate([problem.b_eq, np.full(problem.m_ub, -np.inf)])
    hi = np.concatenate([problem.b_eq, problem.b_ub])
    return C, lo, hi


def _writable(a: np.ndarray) -> np.ndarray:
    """``a``, or a copy of it when read-only: DAQP's wrapper takes writable buffers only
    (the engine's prepared covariances and kept constraint rows are read-only)."""
    return a if a.flags.writeable else np.array(a)


def _run_daqp(problem: QPProblem, ctx: _Context) -> QPSolution:
    import daqp

    n, m_eq = problem.n, problem.m_eq
    C, lo, hi = _stack_rows(problem)
    assert problem.lb is not None and problem.ub is not None
    bupper = np.concatenate([problem.ub, hi])
    blower = np.concatenate([problem.lb, lo])
    sense = np.zeros(n + C.shape[0], dtype=np.int32)
    sense[n : n + m_eq] = 5  # active + immutable: equality
    settings: dict[str, Any] = {"iter_limit": max(1000, 20 * (n + C.shape[0]))}
    if math.isfinite(ctx.remaining()):
        settings["time_limit"] = max(ctx.remaining(), 1e-3)
    kwargs: dict[str, Any] = {}
    warm = ctx.warm
    if warm is not None:
        kwargs["dual_start"] = np.concatenate([warm.z, warm.y_eq, warm.y_ub])
    # exact first; for a singular P, proximal-point iterations run to a tight tolerance
    # (DAQP's automatic mode stops at ~1e-5 stationarity on our singular covariances)
    prox = 1e-5 * max(_pdiag_max(problem.P), _TINY)
    attempts = [{"eps_prox": 0.0}, {"eps_prox": prox, "eta_prox": 1e-12}]
    last = "failed"
    msg = ""
    for extra in attempts:
        x, _fval, flag, info = daqp.solve(
            _writable(problem.P), _writable(problem.q), _writable(C), bupper, blower, sense,
            **extra, **settings, **kwargs,
        )  # fmt: skip
        if flag in (1, 2):
            lam = np.asarray(info["lam"], dtype=float)
            return _raw(
                problem,
                "daqp",
                "optimal",
                x,
                lam[n : n + m_eq],
                lam[n + m_eq :],
                lam[:n],
                iterations=info.get("iterations", 0),
            )
        last = {-1: "infeasible", -3: "unbounded", -7: "time_limit"}.get(flag, "failed")
        msg = f"daqp exit flag {flag}"
        if flag != -5:  # only a non-PD Hessian is worth the proximal retry
            break
    return _raw(problem, "daqp", last, message=msg)


def _highs_model(problem: QPProblem, cost: np.ndarray, hessian: bool) -> tuple[Any, Any]:
    import highspy

    n = problem.n
    C, lo, hi = _stack_rows(problem)
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = C.shape[0]
    lp.col_cost_ = np.asarray(cost, dtype=float)
    lp.col_lower_ = problem.lb
    lp.col_upper_ = problem.ub
    lp.row_lower_ = lo
    lp.row_upper_ = hi
    Ac = sp.csc_matrix(C)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = Ac.indptr
    lp.a_matrix_.index_ = Ac.indices
    lp.a_matrix_.value_ = Ac.data
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = C.shape[0]
    model = highspy.HighsModel()
    model.lp_ = lp
    if hessian:
        # HiGHS wants the lower triangle column-wise; by symmetry column j's lower part
        # is row j's upper part, so the row-major upper triangle is exactly that.
        iu, ju = np.triu_indices(n)
        hess = highspy.HighsHessian()
        hess.dim_ = n
        hess.format_ = highspy.HessianFormat.kTriangular
        hess.start_ = np.concatenate([[0], np.cumsum(np.arange(n, 0, -1))]).astype(np.int32)
        hess.index_ = ju.astype(np.int32)
        hess.value_ = problem.P[iu, ju]
        model.hessian_ = hess
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(model)
    return h, highspy


def _run_highs(problem: QPProblem, ctx: _Context) -> QPSolution:
    m_eq = problem.m_eq
    h, highspy = _highs_model(problem, problem.q, hessian=True)
    # HiGHS's QP solver cycles on some problems (and loops on unbounded ones): always
    # bound its time, by HIGHS_TIME_LIMIT scaled to n when the caller gave no limit
    cap = min(max(HIGHS_TIME_LIMIT * (problem.n / 1000.0) ** 2, 5.0), 600.0)
    h.setOptionValue("time_limit", float(min(max(ctx.remaining(), 1e-3), cap)))
    h.run()
    status = h.getModelStatus()
    MS = highspy.HighsModelStatus
    iters = int(h.getInfo().qp_iteration_count)
    if status == MS.kOptimal:
        sol = h.getSolution()
        x = np.asarray(sol.col_value, dtype=float)
        # HiGHS: g - A'row_dual - col_dual = 0, so ours are the negatives
        rd = -np.asarray(sol.row_dual, dtype=float)
        z = -np.asarray(sol.col_dual, dtype=float)
        return _raw(problem, "highs", "optimal", x, rd[:m_eq], rd[m_eq:], z, iterations=iters)
    text = h.modelStatusToString(status)
    mapping = {
        MS.kInfeasible: "infeasible",
        MS.kUnbounded: "unbounded",
        MS.kTimeLimit: "time_limit",
    }
    return _raw(problem, "highs", mapping.get(status, "failed"), message=f"highs status {text}")


def _run_piqp(problem: QPProblem, ctx: _Context) -> QPSolution:
    import piqp

    s = piqp.DenseSolver()
    s.settings.verbose = False
    s.settings.eps_abs = _IPM_EPS
    s.settings.eps_rel = _IPM_EPS
    s.settings.max_iter = 250
    m_eq, m_ub = problem.m_eq, problem.m_ub
    assert problem.A_eq is not None and problem.A_ub is not None
    # P is symmetric, so its transpose is the Fortran-ordered copy PIQP wants, for free
    s.setup(
        problem.P.T,
        problem.q,
        np.asfortranarray(problem.A_eq) if m_eq else None,
        problem.b_eq if m_eq else None,
        np.asfortranarray(problem.A_ub) if m_ub else None,
        np.full(m_ub, -np.inf) if m_ub else None,
        problem.b_ub if m_ub else None,
        problem.lb,
        problem.ub,
    )
    st = s.solve()
    r = s.result
    iters = int(r.info.iter)
    if st == piqp.PIQP_SOLVED:
        y_ub = np.asarray(r.z_u, dtype=float) - np.asarray(r.z_l, dtype=float) if m_ub else None
        z = np.asarray(r.z_bu, dtype=float) - np.asarray(r.z_bl, dtype=float)
        y_eq = np.asarray(r.y, dtype=float) if m_eq else None
        return _raw(problem, "piqp", "optimal", r.x, y_eq, y_ub, z, iterations=iters)
    mapping = {piqp.PIQP_PRIMAL_INFEASIBLE: "infeasible", piqp.PIQP_DUAL_INFEASIBLE: "unbounded"}
    return _raw(problem, "piqp", mapping.get(st, "failed"), message=f"piqp status {st.name}")


def _run_clarabel(problem: QPProblem, ctx: _Context) -> QPSolution:
    import clarabel

    n, m_eq, m_ub = problem.n, problem.m_eq, problem.m_ub
    assert problem.lb is not None and problem.ub is not None
    assert problem.A_eq is not None and problem.A_ub is not None
    assert problem.b_eq is not None and problem.b_ub is not None
    iu = np.flatnonzero(np.isfinite(problem.ub))
    il = np.flatnonzero(np.isfinite(problem.lb))
    eye = sp.identity(n, format="csr")
    A = sp.vstack(
        [
            sp.csr_matrix(problem.A_eq),
            sp.csr_matrix(problem.A_ub),
            eye[iu],
            -eye[il],
        ],
        format="csc",
    )
    b = np.concatenate([problem.b_eq, problem.b_ub, problem.ub[iu], -problem.lb[il]])
    cones = []
    if m_eq:
        cones.append(clarabel.ZeroConeT(m_eq))
    if m_ub + iu.size + il.size:
        cones.append(clarabel.NonnegativeConeT(m_ub + iu.size + il.size))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = _IPM_EPS
    settings.tol_gap_rel = _IPM_EPS
    settings.tol_feas = _IPM_EPS
    settings.max_iter = 400
    if math.isfinite(ctx.remaining()):
        settings.time_limit = max(ctx.remaining(), 1e-3)
    solver = clarabel.DefaultSolver(
        sp.csc_matrix(np.triu(problem.P)), problem.q, A, b, cones, settings
    )
    sol = solver.solve()
    status = str(sol.status)
    if status in ("Solved", "AlmostSolved"):
        zc = np.asarray(sol.z, dtype=float)
        y_eq, y_ub = zc[:m_eq], zc[m_eq : m_eq + m_ub]
        z = np.zeros(n)
        z[iu] += zc[m_eq + m_ub : m_eq + m_ub + iu.size]
        z[il] -= zc[m_eq + m_ub + iu.size :]
        return _raw(problem, "clarabel", "optimal", sol.x, y_eq, y_ub, z, iterations=sol.iterations)
    mapping = {
        "PrimalInfeasible": "infeasible",
        "AlmostPrimalInfeasible": "infeasible",
        "DualInfeasible": "unbounded",
        "AlmostDualInfeasible": "unbounded",
        "MaxTime": "time_limit",
    }
    return _raw(problem, "clarabel", mapping.get(status, "failed"), message=f"clarabel {status}")


# --------------------------------------------------------------------------------------
# LPs: phase 1 of the kernel and the infeasibility diagnosis
# --------------------------------------------------------------------------------------


def _lp(problem: QPProblem, cost: np.ndarray, time_left: float) -> tuple[str, np.ndarray | None]:
    """``min cost'x`` over the QP's feasible set with HiGHS; returns (status, x)."""
    h, highspy = _highs_model(problem, cost, hessian=False)
    h.setOptionValue("time_limit", float(min(max(time_left, 1e-3), 3600.0)))
    h.run()
    status = h.getModelStatus()
    MS = highspy.HighsModelStatus
    if status == MS.kOptimal:
        return "optimal", np.asarray(h.getSolution().col_value, dtype=float)
    if status == MS.kInfeasible:
        return "infeasible", None
    if status in (MS.kUnbounded, MS.kUnboundedOrInfeasible):
        return "unbounded", None
    return "failed", None


@dataclass
class _Diagnosis:
    infeasible: bool
    violation: float
    rows: list[str]
    bound_vars: list[str]


def _diagnose_infeasibility(problem: QPProblem) -> _Diagnosis:
    """Elastic LP: minimise the weighted total violation of the general rows.

    Its optimal value is positive iff the problem is infeasible, and its row duals form
    a Farkas certificate: the rows with non-zero duals are the ones in conflict (with
    the bounds whose reduced costs are non-zero).
    """
    from scipy.optimize import linprog

    n, m_eq, m_ub = problem.n, problem.m_eq, problem.m_ub
    assert problem.A_eq is not None and problem.A_ub is not None
    assert problem.b_eq is not None and problem.b_ub is not None
    assert problem.lb is not None and problem.ub is not None and problem.row_names is not None
    w_eq = 1.0 / np.maximum(1.0, np.abs(problem.b_eq))
    w_ub = 1.0 / np.maximum(1.0, np.abs(problem.b_ub))
    c = np.concatenate([np.zeros(n), w_eq, w_eq, w_ub])
    Aeq = np.hstack([problem.A_eq, np.eye(m_eq), -np.eye(m_eq), np.zeros((m_eq, m_ub))])
    Aub = np.hstack([problem.A_ub, np.zeros((m_ub, 2 * m_eq)), -np.eye(m_ub)])
    lo = np.concatenate([problem.lb, np.zeros(2 * m_eq + m_ub)])
    hi = np.concatenate([problem.ub, np.full(2 * m_eq + m_ub, np.inf)])
    bounds = [
        (None if not math.isfinite(a) else a, None if not math.isfinite(b) else b)
        for a, b in zip(lo, hi, strict=True)
    ]
    res = linprog(
        c,
        A_ub=Aub if m_ub else None,
        b_ub=problem.b_ub if m_ub else None,
        A_eq=Aeq if m_eq else None,
        b_eq=problem.b_eq if m_eq else None,
        bounds=bounds,
        method="highs",
    )
    if res.status == 2:  # even the bounds alone are infeasible: impossible after validation
        return _Diagnosis(True, math.inf, [], [])
    if res.status != 0:
        return _Diagnosis(False, math.nan, [], [])
    viol = float(res.fun)
    if viol <= FEASIBILITY_TOL:
        return _Diagnosis(False, viol, [], [])
    duals = np.concatenate(
        [
            np.abs(res.eqlin.marginals) / w_eq if m_eq else np.zeros(0),
            np.abs(res.ineqlin.marginals) / w_ub if m_ub else np.zeros(0),
        ]
    )
    slack_used = np.concatenate(
        [res.x[n : n + m_eq] + res.x[n + m_eq : n + 2 * m_eq], res.x[n + 2 * m_eq :]]
    )
    score = duals + (slack_used > 1e-9)
    order = np.argsort(-score, kind="stable")
    rows = [problem.row_names[i] for i in order if score[i] > 1e-9]
    rc = np.abs(res.lower.marginals[:n]) + np.abs(res.upper.marginals[:n])
    bvars = np.flatnonzero(rc > 1e-9 * max(1.0, float(rc.max(initial=0.0))))
    return _Diagnosis(True, viol, rows, problem._var_labels(bvars, n))


# --------------------------------------------------------------------------------------
# The dense active-set kernel
# --------------------------------------------------------------------------------------


class _KernelFailed(Exception):
    """The kernel gave up; the message says why (recorded in ``fallbacks``)."""


class _Rows:
    """The stacked general rows ``C = [A_eq; A_ub]`` (shape (m, n)), never copied whole.

    The homogenised max-Sharpe problem turns every weight cap into a row, so ``A_ub`` is
    about n x n: stacking it (or taking ``|C|``) would allocate a fresh array that large on
    every solve, and first-touch page faults on one cost tens of ms. The kernel only needs
    products and small gathers, served from the two blocks.
    """

    def __init__(self, A_eq: np.ndarray, A_ub: np.ndarray) -> None:
        self.A_eq, self.A_ub = A_eq, A_ub
        self.m_eq = A_eq.shape[0]
        self.shape = (A_eq.shape[0] + A_ub.shape[0], A_eq.shape[1])
        # columns of A_ub gathered so far (Fortran order, so appending one is contiguous):
        # the free sets of successive iterations overlap, and a column gather from a
        # row-major n x n block reads a cache line per row
        self._slab = np.zeros((A_ub.shape[0], 0), order="F")
        self._slab_k = 0
        self._slab_pos = np.full(A_ub.shape[1], -1, dtype=np.intp)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """``C[idx]``, shape (len(idx), n)."""
        idx = np.asarray(idx, dtype=np.intp)
        is_eq = idx < self.m_eq
        if is_eq.all():
            return np.take(self.A_eq, idx, axis=0)
        if not is_eq.any():
            return np.take(self.A_ub, idx - self.m_eq, axis=0)
        out = np.empty((idx.size, self.shape[1]))
        out[is_eq] = np.take(self.A_eq, idx[is_eq], axis=0)
        out[~is_eq] = np.take(self.A_ub, idx[~is_eq] - self.m_eq, axis=0)
        return out

    def cols(self, cols: np.ndarray) -> np.ndarray:
        """``C[:, cols]``, shape (m, len(cols))."""
        return np.concatenate(
            [np.take(self.A_eq, cols, axis=1), np.take(self.A_ub, cols, axis=1)], axis=0
        )

    def block(self, idx: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``C[idx][:, cols]``, gathering the smaller of the row and column slabs first."""
        idx = np.asarray(idx, dtype=np.intp)
        if idx.size * self.shape[1] <= self.shape[0] * len(cols):
            return np.take(self.rows(idx), cols, axis=1)
        return np.take(self.cols(cols), idx, axis=0)

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self.A_eq @ x, self.A_ub @ x])

    def cols_matvec(self, cols: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``C[:, cols] @ v`` for distinct ``cols``, shape (m,)."""
        return np.concatenate([np.take(self.A_eq, cols, axis=1) @ v, self._ub_cols_matvec(cols, v)])

    def _ub_cols_matvec(self, cols: np.ndarray, v: np.ndarray) -> np.ndarray:
        A = self.A_ub
        m, n = A.shape
        if m * cols.size <= 50_000:  # small: the cache would not pay
            return np.take(A, cols, axis=1) @ v
        pos = self._slab_pos[cols]
        new = cols[pos < 0]
        k = self._slab_k
        if new.size:
            if k + new.size > n // 2:  # most of A_ub: no cache
                return np.take(A, cols, axis=1) @ v
            if k + new.size > self._slab.shape[1]:
                grown = np.empty((m, min(max(2 * (k + new.size), 64), n)), order="F")
                grown[:, :k] = self._slab[:, :k]
                self._slab = grown
            self._slab[:, k : k + new.size] = np.take(A, new, axis=1)
            self._slab_pos[new] = np.arange(k, k + new.size)
            k = self._slab_k = k + new.size
            pos = self._slab_pos[cols]
        vk = np.zeros(k)
        vk[pos] = v
        return self._slab[:, :k] @ vk

    def row_absmax(self) -> np.ndarray:
        """``max_j |C_ij|`` per row (shape (m,)): two reductions, no ``|C|`` temporary."""
        if not self.shape[1]:
            return np.zeros(self.shape[0])
        return np.concatenate(
            [np.maximum(A.max(axis=1), -A.min(axis=1)) for A in (self.A_eq, self.A_ub)]
        )


class _FreeFactor:
    """Cholesky factor of ``H = P_FF + eps I`` for an ordered free set F.

    Releasing variables appends them to F and extends the factor by a block (reading
    only their rows of P); fixing some refactorises only the block of L after the first
    one dropped. H is kept too, for iterative refinement: with a singular P the
    regularised H has a condition number near 1/eps and plain solves lose digits.
    """

    def __init__(self, kern: _ActiveSetKernel, F: np.ndarray) -> None:
        self.k = kern
        self.F = np.asarray(F, dtype=np.intp)
        self.L = self.H = np.zeros((0, 0))
        self._refactor()

    @classmethod
    def from_parts(
        cls, kern: _ActiveSetKernel, F: np.ndarray, L: np.ndarray, H: np.ndarray
    ) -> _FreeFactor:
        """A factor already computed (kept from an earlier solve, or by the compiled
        iteration): ``L`` the Cholesky factor of ``H = P_FF + eps I``."""
        fac = object.__new__(cls)
        fac.k, fac.F, fac.L, fac.H = kern, F, L, H
        return fac

    def _refactor(self) -> None:
        k, F = self.k, self.F
        if F.size > k.max_free:
            raise _KernelFailed(f"{F.size} free variables is beyond the dense kernel's size")
        if F.size == 0:
            self.L = self.H = np.zeros((0, 0))
            return
        for _ in range(4):
            H = np.take(np.take(k.P, F, axis=0), F, axis=1)
            H.flat[:: F.size + 1] += k.eps
            L, info = _lapack.dpotrf(H, lower=1, clean=1)
            if info == 0:
                self.L, self.H = L, H
                return
            # numerically singular block: regularise harder (the polish removes it again)
            k.eps *= 100.0
        raise _KernelFailed("free block of P is not positive semidefinite")

    def add(self, idx: np.ndarray) -> None:
        """Append variables ``idx`` to F: block Cholesky, O(|F|^2 |idx|)."""
        k = self.k
        idx = np.asarray(idx, dtype=np.intp)
        if idx.size == 0:
            return
        F, nF, r = self.F, self.F.size, idx.size
        self.F = np.concatenate([F, idx])
        if self.F.size > k.max_free:
            raise _KernelFailed(f"{self.F.size} free variables is beyond the dense kernel's size")
        # only the new rows of P are read (rows are contiguous; P is symmetric)
        P_new = np.take(k.P, idx, axis=0)  # (r, n)
        H12 = np.take(P_new, F, axis=1).T  # (nF, r)
        H22 = np.take(P_new, idx, axis=1)
        H22.flat[:: r + 1] += k.eps
        if nF:
            L21t, info = _lapack.dtrtrs(self.L, H12, lower=1)  # L11 L21' = H12
            # S22 = H22 - L21 L21', lower triangle only (all dpotrf reads)
            S22 = _blas.dsyrk(-1.0, L21t, beta=1.0, c=H22, trans=1, lower=1)
        else:
            L21t, info, S22 = np.zeros((0, r)), 0, H22.copy()
        L22, info2 = _lapack.dpotrf(S22, lower=1, clean=1)
        if info != 0 or info2 != 0 or float(np.diagonal(L22).min()) ** 2 < 0.5 * k.eps:
            self._refactor()
            return
        L = np.zeros((nF + r, nF + r))
        L[:nF, :nF] = self.L
        L[nF:, :nF] = L21t.T
        L[nF:, nF:] = L22
        H = np.empty((nF + r, nF + r))
        H[:nF, :nF] = self.H
        H[:nF, nF:] = H12
        H[nF:, :nF] = H12.T
        H[nF:, nF:] = H22
        self.L, self.H = L, H

    def keep(self, mask: np.ndarray) -> None:
        """Drop the variables of F where ``mask`` is False (shape (|F|,)).

        Small blocks are refactorised from the kept H. In large ones, rows of L before
        the first dropped position p are unchanged, and for the kept rows t after it
        ``H_tt - L_t,<p L_t,<p' = M M'`` with ``M = L[t, p:]``, so only that trailing
        block is refactorised: O(|t|^2 (|F| - p)), cheap when the dropped variables were
        released recently (they sit at the end of F).
        """
        pos = np.flatnonzero(mask)
        nk = self.F.size
        self.F = self.F[pos]
        if pos.size == 0:
            self.L = self.H = np.zeros((0, 0))
            return
        if pos.size == nk:
            return
        H = np.take(np.take(self.H, pos, axis=0), pos, axis=1)
        if nk > 256:  # below, a refactorisation costs microseconds
            p = int(np.argmin(mask))  # first dropped position
            t = pos[pos > p]
            if t.size == 0:
                self.L, self.H = np.ascontiguousarray(self.L[:p, :p]), H
                return
            M = np.take(self.L, t, axis=0)
            L22, info = _lapack.dpotrf(_blas.dsyrk(1.0, M[:, p:], lower=1), lower=1, clean=1)
            if info == 0 and float(np.diagonal(L22).min()) ** 2 >= 0.5 * self.k.eps:
                L = np.zeros((pos.size, pos.size))
                L[:p, :p] = self.L[:p, :p]
                L[p:, :p] = M[:, :p]
                L[p:, p:] = L22
                self.L, self.H = L, H
                return
        L, info = _lapack.dpotrf(H, lower=1, clean=1)
        if info != 0:
            self._refactor()
            return
        self.L, self.H = L, H

    def remove(self, j: int) -> None:
        self.keep(self.F != j)

    def eqp(self, W: np.ndarray, gF: np.ndarray, rW: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``min 0.5 p'(P_FF + eps I)p + gF'p  s.t.  C_WF p = rW``; returns (p, y).

        Range-space method: ``y = -(C H^-1 C')^-1 (rW + C H^-1 gF)``, ``p = -H^-1(gF + C'y)``,
        then up to two rounds of iterative refinement on the full KKT residual.
        """
        F = self.F
        if F.size == 0:
            if W.size and np.abs(rW).max() > 1e-12:
                raise _KernelFailed("working rows cannot be met with every variable fixed")
            return np.zeros(0), np.zeros(W.size)
        L, H = self.L, self.H
        CW = self.k.C.block(W, F)
        if W.size:
            V, _ = _lapack.dpotrs(L, CW.T, lower=1)
            Ls, info = _lapack.dpotrf(CW @ V, lower=1, clean=1)
            dL = np.diagonal(Ls)
            if info != 0 or float(dL.min()) ** 2 < 1e-13 * float(dL.max()) ** 2:
                # rows dependent on the free variables (repeated caps, degenerate vertices):
                # solve with an independent subset; the others are implied, multiplier 0
                sub = self._independent_rows(CW, W)
                if sub.size < W.size:
                    p, ysub = self.eqp(W[sub], gF, rW[sub])
                    y = np.zeros(W.size)
                    y[sub] = ysub
                    return p, y
                if info != 0:
                    raise _KernelFailed("working rows became linearly dependent")

        def solve(g: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            u, _ = _lapack.dpotrs(L, g, lower=1)
            if not W.size:
                return -u, np.zeros(0)
            yy, _ = _lapack.dpotrs(Ls, r + CW @ u, lower=1)
            return -u + V @ yy, -yy

        p, y = solve(gF, rW)
        gs = float(np.abs(gF).max()) if gF.size else 0.0
        rs = float(np.abs(rW).max()) if rW.size else 0.0
        for _ in range(2):
            Hp = H @ p
            r1 = gF + Hp + (CW.T @ y if W.size else 0.0)
            r2 = rW - CW @ p if W.size else np.zeros(0)
            s1 = max(gs, float(np.abs(Hp).max()), _TINY)
            s2 = max(rs, float(np.abs(p).max()) * float(np.abs(CW).max()) if W.size else 0.0, _TINY)
            e1 = float(np.abs(r1).max()) / s1
            e2 = float(np.abs(r2).max()) / s2 if r2.size else 0.0
            if e1 <= 1e-14 and e2 <= 1e-14:
                break
            dp, dy = solve(r1, r2)
            p, y = p + dp, y + dy
        else:
            if e1 > 1e-9 or e2 > 1e-9:
                return self._eqp_full(CW, gF, rW, (e1, e2))
        return p, y

    def _independent_rows(self, CW: np.ndarray, W: np.ndarray) -> np.ndarray:
        """Positions in W of a maximal independent subset of the rows C_WF, equality
        rows first."""
        norms = np.maximum(np.abs(CW).max(axis=1), _TINY)
        weight = np.where(W < self.k.m_eq, 1e3, 1.0) / norms
        _, R, piv = sla.qr((CW * weight[:, None]).T, mode="economic", pivoting=True)
        d = np.abs(np.diagonal(R))
        rank = int((d > 1e-9 * max(float(d[0]), _TINY)).sum()) if d.size else 0
        return np.sort(piv[:rank])

    def _eqp_full(
        self, CW: np.ndarray, gF: np.ndarray, rW: np.ndarray, errs: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The range-space solve lost too many digits: LU of the whole KKT matrix."""
        nF, mW = self.F.size, CW.shape[0]
        K = np.zeros((nF + mW, nF + mW))
        K[:nF, :nF] = self.H
        K[nF:, :nF] = CW
        K[:nF, nF:] = CW.T
        rhs = np.concatenate([-gF, rW])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", sla.LinAlgWarning)
                lu = sla.lu_factor(K, check_finite=False)
                sol = sla.lu_solve(lu, rhs, check_finite=False)
                if np.isfinite(sol).all():
                    sol += sla.lu_solve(lu, rhs - K @ sol, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            sol = np.full(nF + mW, np.nan)
        res = float(np.abs(K @ sol - rhs).max()) if np.isfinite(sol).all() else math.inf
        scale = max(float(np.abs(rhs).max()), float(np.abs(K).max()) * float(np.abs(sol).max()))
        if not res <= 1e-12 * max(scale, _TINY):
            raise _KernelFailed(
                f"working set too ill-conditioned (KKT residuals {errs[0]:.1e}, {errs[1]:.1e})"
            )
        return sol[:nF], sol[nF:]


class _ActiveSetKernel:
    """Primal active-set method for dense QPs with few general rows.

    Bounds are handled by fixing variables (only the free block of P is factorised);
    general rows enter the working set through a Schur complement. P is regularised by
    a tiny ``eps * I`` so every free block is positive definite (covariances built from
    a few exposures are singular); the answer is then polished with the true P and
    KKT-checked by the caller, so the regularisation never reaches the user.

    Every solve first runs a primal-dual active-set iteration (Hintermueller, Ito and
    Kunisch 2002): warm starts from the previous active set (a few steps on frontier and
    rebalance sequences); cold starts from :meth:`cold_guess`, a free set of about
    ``2 sqrt(n)`` variables grown by blocks, so that the factorised block stays near the
    final free set (a few dozen of 1000 on a capped portfolio) instead of n. The
    iteration may cycle or stall (singular P), so it is capped and followed by the primal
    method from a feasible point (the warm ``x`` if still feasible, else an LP vertex).
    """

    def __init__(self, problem: QPProblem, ctx: _Context) -> None:
        assert problem.lb is not None and problem.ub is not None
        self.pb = problem
        self.ctx = ctx
        self.P, self.q = problem.P, problem.q
        assert problem.A_eq is not None and problem.A_ub is not None
        assert problem.b_eq is not None and problem.b_ub is not None
        self.C = _Rows(problem.A_eq, problem.A_ub)
        self.d = np.concatenate([problem.b_eq, problem.b_ub])
        self.m_eq = problem.m_eq
        self.m = self.C.shape[0]
        self.lb, self.ub = problem.lb, problem.ub
        self.n = problem.n
        self.fixed = self.lb == self.ub
        dmax = self.dmax = _pdiag_max(self.P)
        self.qmax = float(np.abs(self.q).max())
        self.eps = 1e-12 * dmax if dmax > 0 else 1e-12 * max(1.0, float(np.abs(self.q).max()))
        self._row_norm: np.ndarray | None = None
        self._Ae: np.ndarray | None = None  # equality rows scaled to max |entry| 1
        self.iterations = 0
        self.factor: _FreeFactor | None = None  # the final factorisation, for reuse
        self.final_active: ActiveSet | None = None  # the final working set
        self.final_objective = math.nan  # 0.5 x'Px + q'x at the answer, from its gradient
        self.max_iter = 3 * (self.n + self.m) + 50
        self.max_free = 2500  # beyond this a refactorisation per step is slower than HiGHS

    @property
    def row_norm(self) -> np.ndarray:
        """``max_j |C_ij|`` of every row (shape (m,)), computed on first use."""
        if self._row_norm is None:
            self._row_norm = np.maximum(self.C.row_absmax(), _TINY)
        return self._row_norm

    def row_norms(self, rows: np.ndarray) -> np.ndarray:
        """``max_j |C_ij|`` of the given rows (shape (len(rows),))."""
        if self._row_norm is not None or rows.size * 4 > self.m:
            return self.row_norm[rows]
        if not self.C.shape[1]:
            return np.full(rows.size, _TINY)
        return np.maximum(np.abs(self.C.rows(rows)).max(axis=1), _TINY)

    # -- starting points -------------------------------------------------------------

    def _independent_working_set(self, state: np.ndarray) -> None:
        """Free fixed variables until the equality rows are independent on the free set."""
        if self.m_eq == 0:
            return
        if self._Ae is None:
            self._Ae = self.C.A_eq / self.row_norms(np.arange(self.m_eq))[:, None]
        Ae = self._Ae
        for _ in range(self.m_eq + 1):
            F = state == 0
            AF = Ae[:, F]
            if self.m_eq == 1:  # the QR below, for one row: its 2-norm
                rank = int(float(np.linalg.norm(AF)) > 1e-9)
            elif AF.shape[1]:
                R = np.linalg.qr(AF.T, mode="r")
                rank = int((np.abs(np.diag(R)) > 1e-9).sum()) if R.size else 0
            else:
                rank = 0
            if rank >= self.m_eq:
                return
            cand = np.flatnonzero((state != 0) & ~self.fixed)
            if cand.size == 0:
                raise _KernelFailed("equality rows are dependent on the variables left free")
            # pick the fixed column adding most to the span of the free columns
            cols = Ae[:, cand]
            if rank:
                Qr = AF @ np.linalg.pinv(AF)  # projector onto span of free columns
                cols = cols - Qr @ cols
            j = cand[int(np.argmax(np.linalg.norm(cols, axis=0)))]
            state[j] = 0
        raise _KernelFailed("could not make the equality rows independent")

    def _state_from_x(self, x: np.ndarray) -> np.ndarray:
        tol_lo = 1e-12 * np.maximum(1.0, np.abs(np.where(np.isfinite(self.lb), self.lb, 0.0)))
        tol_up = 1e-12 * np.maximum(1.0, np.abs(np.where(np.isfinite(self.ub), self.ub, 0.0)))
        state = np.zeros(self.n, dtype=np.int8)
        with np.errstate(invalid="ignore"):
            state[x - self.lb <= tol_lo] = -1
            state[(self.ub - x <= tol_up) & (state == 0)] = 1
        state[self.fixed] = -1
        return state

    def _feasible(self, x: np.ndarray) -> bool:
        if not np.isfinite(x).all():
            return False
        if (x < self.lb - 1e-12 * np.maximum(1.0, np.abs(x))).any():
            return False
        if (x > self.ub + 1e-12 * np.maximum(1.0, np.abs(x))).any():
            return False
        if self.m == 0:
            return True
        r = self.C @ x - self.d
        tol = 1e-11 * np.maximum(1.0, np.abs(self.d))
        return bool((np.abs(r[: self.m_eq]) <= tol[: self.m_eq]).all()) and bool(
            (r[self.m_eq :] <= tol[self.m_eq :]).all()
        )

    def _phase1(self) -> np.ndarray:
        # An LP vertex whose cost is the QP gradient at a central point: cheap, and
        # usually only a few dozen active-set changes from the optimum.
        lb, ub = self.lb, self.ub
        if np.isfinite(lb).all() and np.isfinite(ub).all():
            xc = 0.5 * (lb + ub)
            cost = self.P @ xc + self.q
        else:
            cost = np.zeros(self.n)  # an LP with free variables might be unbounded
        status, x = _lp(self.pb, cost, self.ctx.remaining())
        if status == "unbounded":
            status, x = _lp(self.pb, np.zeros(self.n), self.ctx.remaining())
        if status == "infeasible":
            raise _Infeasible()
        if status != "optimal" or x is None:
            raise _KernelFailed(f"phase-1 LP ended with status {status}")
        return np.clip(x, lb, ub)

    # -- primal active-set method ------------------------------------------------------

    def primal(self, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Primal active-set method from the feasible point ``x0`` (shape (n,)).

        One constraint changes per iteration: a blocking bound or row is added after a
        ratio test, or the most wrong-signed multiplier is dropped at a minimiser of the
        working set. Returns ``(x, y, z)`` with ``y`` over the stacked rows (m,).
        """
        n, C, d, lb, ub = self.n, self.C, self.d, self.lb, self.ub
        P = self.P
        x = x0.copy()
        state = self._state_from_x(x)
        x[state == -1] = lb[state == -1]
        x[state == 1] = ub[state == 1]
        self._independent_working_set(state)
        in_W = np.zeros(self.m, dtype=bool)
        in_W[: self.m_eq] = True
        g = P @ x + self.q
        Cx = C @ x
        is_ub_row = np.arange(self.m) >= self.m_eq
        fac = _FreeFactor(self, np.flatnonzero(state == 0))
        refresh = refine = 0
        # anti-cycling: a release undone by a zero step is not retried until progress
        tabu_v = np.zeros(n, dtype=bool)
        tabu_r = np.zeros(self.m, dtype=bool)
        released_v, released_r = np.zeros(0, dtype=np.intp), -1
        while True:
            self.iterations += 1
            if self.iterations > self.max_iter:
                raise _KernelFailed(f"iteration limit {self.max_iter} reached")
            if time.perf_counter() > self.ctx.deadline:
                raise _KernelFailed("time limit reached")
            F = fac.F
            W = np.flatnonzero(in_W)
            xF = x[F]
            p, y = fac.eqp(W, g[F] + self.eps * xF, d[W] - Cx[W])
            # ratio test on the free variables' bounds and the rows not in W
            alpha, block_pos, block_row = 1.0, -1, -1
            pmax = float(np.abs(p).max()) if p.size else 0.0
            xmax = max(1.0, float(np.abs(xF).max())) if xF.size else 1.0
            if pmax <= 1e-15 * xmax:
                pmax = 0.0  # already at the minimiser on this working set: p is rounding
            if pmax > 0.0:
                thr = 1e-13 * pmax
                dn = np.flatnonzero(p < -thr)
                if dn.size:
                    steps = np.maximum(xF[dn] - lb[F[dn]], 0.0) / -p[dn]
                    k = int(np.argmin(steps))
                    if steps[k] < alpha:
                        alpha, block_pos = float(steps[k]), int(dn[k])
                up = np.flatnonzero(p > thr)
                if up.size:
                    steps = np.maximum(ub[F[up]] - xF[up], 0.0) / p[up]
                    k = int(np.argmin(steps))
                    if steps[k] < alpha:
                        alpha, block_pos = float(steps[k]), int(up[k])
                out = np.flatnonzero(~in_W)
                if out.size:
                    Cp = C.block(out, F) @ p
                    inc = np.flatnonzero(Cp > 1e-13 * pmax * self.row_norm[out])
                    if inc.size:
                        steps = np.maximum(d[out[inc]] - Cx[out[inc]], 0.0) / Cp[inc]
                        k = int(np.argmin(steps))
                        if steps[k] < alpha:
                            alpha, block_pos, block_row = float(steps[k]), -1, int(out[inc[k]])
                if alpha > 0.0:
                    step = alpha * p
                    x[F] = xF + step
                    g += step @ P[F]
                    if self.m:
                        Cx += C.cols_matvec(F, step)
                refresh += 1
                if refresh >= 50:  # keep rounding drift of the updated gradient in check
                    g = P @ x + self.q
                    Cx = C @ x
                    refresh = 0
            if alpha * pmax > 1e-12 * xmax:  # real progress: earlier tabus may be retried
                tabu_v[:] = False
                tabu_r[:] = False
            just_v, just_r = released_v, released_r
            released_v, released_r = np.zeros(0, dtype=np.intp), -1
            if block_pos >= 0:
                j = int(F[block_pos])
                if alpha == 0.0 and j in just_v:
                    tabu_v[j] = True  # its release was undone at once: a numerical artefact
                if p[block_pos] < 0:
                    state[j], x[j] = -1, lb[j]
                else:
                    state[j], x[j] = 1, ub[j]
                fac.remove(j)
                continue
            if block_row >= 0:
                if alpha == 0.0 and block_row == just_r:
                    tabu_r[block_row] = True
                in_W[block_row] = True
                continue
            # at the minimiser on the working set: recompute its multipliers from the
            # gradient (better conditioned than the EQP's, which go through H^-1)
            F = fac.F
            gF = g[F] + self.eps * x[F]
            gscale = max(
                self.dmax * float(np.abs(x).max()), float(np.abs(g).max()), self.qmax, _TINY
            )
            if W.size:
                CWF = C.block(W, F)
                y = np.linalg.lstsq(CWF.T, -gF, rcond=None)[0]
                res = gF + CWF.T @ y
            else:
                res = gF
            if res.size and float(np.abs(res).max()) > 1e-9 * gscale and refine < 2:
                refine += 1  # the step was inexact: take another on the same working set
                continue
            refine = 0
            B = np.flatnonzero(state != 0)
            zB = -(g[B] + self.eps * x[B])
            if W.size:
                zB -= C.block(W, B).T @ y
            dtol = 1e-3 * self.ctx.tol * gscale
            # wrong signs: z > 0 at a lower bound, z < 0 at an upper bound, y < 0 on a <= row
            wrong_b = np.where(state[B] == -1, zB, -zB)
            wrong_b[self.fixed[B]] = 0.0
            wrong_r = np.zeros(0)
            Wi = W[is_ub_row[W]]
            if Wi.size:
                wrong_r = -y[is_ub_row[W]] * self.row_norms(Wi)
            stalled = max(
                float(wrong_b[tabu_v[B]].max(initial=0.0)),
                float(wrong_r[tabu_r[Wi]].max(initial=0.0)) if Wi.size else 0.0,
            )
            wrong_b[tabu_v[B]] = 0.0
            if Wi.size:
                wrong_r[tabu_r[Wi]] = 0.0
            vb = float(wrong_b.max()) if wrong_b.size else 0.0
            vr = float(wrong_r.max()) if wrong_r.size else 0.0
            if max(vb, vr) <= dtol:
                if stalled > dtol:
                    raise _KernelFailed("stalled on a degenerate vertex")
                if W.size:
                    rw = np.abs(C.rows(W) @ x - d[W]) / np.maximum(1.0, np.abs(d[W]))
                    if float(rw.max()) > 1e-11:
                        raise _KernelFailed("working rows are not met accurately")
                self.factor = fac
                self.final_active = ActiveSet(state == -1, state == 1, in_W[self.m_eq :].copy())
                self.final_objective = 0.5 * float(x @ (g + self.q))
                z = np.zeros(n)
                z[B] = zB
                yfull = np.zeros(self.m)
                yfull[W] = y
                return x, yfull, z
            if vb >= vr:
                rel = B[[int(np.argmax(wrong_b))]]  # Dantzig's rule: the worst one
                state[rel] = 0
                fac.add(rel)
                released_v = rel
            else:
                released_r = int(Wi[int(np.argmax(wrong_r))])
                in_W[released_r] = False

    # -- products that exploit a sparse x (most weights sit at a zero bound) -----------

    def _grad(self, x: np.ndarray) -> np.ndarray:
        """``P x + q`` (shape (n,)), from the rows of P where ``x`` is non-zero when few
        are (P is symmetric, so those rows are the columns needed, and rows are contiguous).
        """
        nz = np.flatnonzero(x)
        if 4 * nz.size < self.n:
            return x[nz] @ np.take(self.P, nz, axis=0) + self.q
        return self.P @ x + self.q

    def _rows_x(self, x: np.ndarray) -> np.ndarray:
        """``C x`` (shape (m,)), from the columns of C where ``x`` is non-zero when few are."""
        if not self.m:
            return np.zeros(0)
        nz = np.flatnonzero(x)
        if 4 * nz.size < self.n:
            return self.C.cols_matvec(nz, x[nz])
        return self.C @ x

    def _leave_score(self) -> np.ndarray:
        """``1 / sqrt(P_ii + eps)`` (shape (n,)): a multiplier times this is the square root
        of twice the objective decrease from moving that variable alone off its bound."""
        return 1.0 / np.sqrt(np.maximum(np.diagonal(self.P), 0.0) + self.eps)

    # -- cold start ----------------------------------------------------------------------

    def cold_guess(self) -> tuple[ActiveSet, int]:
        """A small starting working set for a cold solve, and the release block size.

        Every variable with a finite bound starts at the bound nearer a cheap reference
        point ``x0`` (the minimum-norm solution of the equality rows, clipped into the
        box), except the ``k = 2 sqrt(n) + m_eq`` that most want to leave it: the largest
        reduced gradients at ``x0`` (equality multipliers by least squares), scaled by
        :meth:`_leave_score`. Variables without a finite bound are always free. So the
        first factorisation has about ``k`` columns instead of ``n``, and
        :meth:`pdas` grows the free set from there by blocks of ``max(k, |F|)``.
        """
        n, m_eq, lb, ub = self.n, self.m_eq, self.lb, self.ub
        no_rows = np.zeros(self.pb.m_ub, dtype=bool)
        fin_lb, fin_ub = np.isfinite(lb), np.isfinite(ub)
        cand = np.flatnonzero((fin_lb | fin_ub) & ~self.fixed)
        k = min(int(2.0 * math.sqrt(n)) + m_eq, cand.size)
        if k == cand.size:  # (nearly) nothing to choose from: all free
            return ActiveSet(self.fixed.copy(), np.zeros(n, dtype=bool), no_rows), max(k, 8)
        Ce, de = self.C.A_eq, self.d[:m_eq]
        x0 = np.linalg.lstsq(Ce, de, rcond=None)[0] if m_eq else np.zeros(n)
        x0 = np.clip(x0, lb, ub)
        r = self.P @ x0 + self.q
        if m_eq:
            r = r + Ce.T @ np.linalg.lstsq(Ce.T, -r, rcond=None)[0]
        d_lo = np.where(fin_lb, x0 - np.where(fin_lb, lb, 0.0), np.inf)
        d_up = np.where(fin_ub, np.where(fin_ub, ub, 0.0) - x0, np.inf)
        state = np.where((d_lo < d_up) | ((d_lo == d_up) & (r >= 0.0)), -1, 1).astype(np.int8)
        state[~fin_lb & ~fin_ub] = 0
        state[self.fixed] = -1
        want = np.where(state == -1, -r, r)[cand] * self._leave_score()[cand]
        state[cand[np.argpartition(-want, k - 1)[:k]]] = 0
        return ActiveSet(state == -1, state == 1, no_rows), max(k, 8)

    def _release_for_rows(
        self, state: np.ndarray, rows: np.ndarray, resid: np.ndarray, limit: int
    ) -> bool:
        """Free up to ``limit`` fixed variables whose move off their bound reduces the
        residuals ``resid`` (shape (k,)) of working rows ``rows`` (shape (k, n)), largest
        coefficient first; False when none can."""
        B = np.flatnonzero((state != 0) & ~self.fixed)
        if B.size == 0:
            return False
        away = np.where(state[B] == -1, 1.0, -1.0)  # the direction each may move
        # moving x_j by away_j changes row i by C_ij away_j: it helps against resid_i > 0
        # when that is negative, and against resid_i < 0 when positive
        effect = -np.sign(resid)[:, None] * rows[:, B] * away
        score = np.where(effect > 0.0, effect, 0.0).max(axis=0)
        cand = np.flatnonzero(score > 0.0)
        if cand.size == 0:
            return False
        if cand.size > limit:
            cand = cand[np.argpartition(-score[cand], limit - 1)[:limit]]
        state[B[cand]] = 0
        return True

    # -- primal-dual active-set iteration ------------------------------------------------

    def _pdas_compiled(
        self, warm: ActiveSet, max_iter: int, block: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The iteration of :meth:`pdas` compiled (:func:`core.optimization.qp_kernel.pdas`),
        or None where that gives up (the cases it leaves to :meth:`pdas`). It does not
        look at the time limit: at most ``max_iter`` steps on at most
        ``qp_kernel.MAX_FREE`` free variables, it ends in well under a second."""
        try:
            from core.optimization import qp_kernel
        except ImportError:  # numba missing or broken: the Python iteration does it all
            return None
        from core.optimization.compiled import readonly

        n, m_eq = self.n, self.m_eq
        state = np.zeros(n, dtype=np.int8)
        state[warm.at_lower] = -1
        state[warm.at_upper] = 1
        state[self.fixed] = -1
        in_W = np.zeros(self.m, dtype=bool)
        in_W[:m_eq] = True
        in_W[m_eq:] = warm.ub_rows
        ro = readonly  # what the kernel only reads (one compiled version for all callers)
        code, x, y, z, F, L, H, eps, iters, objective, _ = qp_kernel.pdas(
            ro(self.P), ro(self.q), ro(self.C.A_eq), ro(self.C.A_ub), ro(self.d), ro(self.lb),
            ro(self.ub), ro(self.fixed, bool), state, in_W, float(self.eps),
            float(self.ctx.tol), int(block), int(max_iter), float(_x_scale(self.pb)),
        )  # fmt: skip
        if code != qp_kernel.SETTLED:
            return None
        self.iterations += int(iters)
        self.eps = float(eps)
        self.factor = _FreeFactor.from_parts(self, F, L, H)
        self.final_active = ActiveSet(state == -1, state == 1, in_W[m_eq:].copy())
        self.final_objective = float(objective)
        return x, y, z

    def pdas(
        self,
        warm: ActiveSet,
        factor: _FreeFactor | None = None,
        max_iter: int = 25,
        block: int = 0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Primal-dual active-set iteration from ``warm``.

        Parameters
        ----------
        warm : ActiveSet
            Starting working set (a previous solve's, or :meth:`cold_guess`).
        factor : _FreeFactor, optional
            A factorisation of a previous solve with the same P (reused as far as F
            matches).
        max_iter : int
            Iterations before giving up.
        block : int
            0 releases every wrong-signed bound at once (warm starts: the working set is
            nearly right). A positive value releases at most ``max(block, |F|)`` per step,
            the most wrong-signed first (scaled by :meth:`_leave_score`), so a cold start's
            free set grows geometrically from a small guess and the factorised block
            stays near the final free set.

        Returns
        -------
        (x, y, z)
            Shapes (n,), (m,) over the stacked rows, (n,).
        """
        fast = self._pdas_compiled(warm, max_iter, block)
        if fast is not None:
            return fast
        n, C, d, lb, ub, P, q = self.n, self.C, self.d, self.lb, self.ub, self.P, self.q
        state = np.zeros(n, dtype=np.int8)
        state[warm.at_lower] = -1
        state[warm.at_upper] = 1
        state[self.fixed] = -1
        in_W = np.zeros(self.m, dtype=bool)
        in_W[: self.m_eq] = True
        in_W[self.m_eq :] = warm.ub_rows
        seen: set[bytes] = set()
        is_ub_row = np.arange(self.m) >= self.m_eq
        ptol_lo = 1e-12 * np.maximum(1.0, np.abs(np.where(np.isfinite(lb), lb, 0.0)))
        ptol_up = 1e-12 * np.maximum(1.0, np.abs(np.where(np.isfinite(ub), ub, 0.0)))
        row_scale = np.maximum(1.0, np.abs(d))
        leave = self._leave_score() if block else None
        x_scale = _x_scale(self.pb)
        fac = factor
        for _ in range(max_iter):
            self.iterations += 1
            if block:  # a small free set may not span the equality rows
                try:
                    self._independent_working_set(state)
                except _KernelFailed:
                    pass  # nothing left to free: the EQP meets the rows or says why not
            key = state.tobytes() + in_W.tobytes()
            if key in seen:
                raise _KernelFailed("primal-dual active-set iteration cycled")
            seen.add(key)
            if time.perf_counter() > self.ctx.deadline:
                raise _KernelFailed("time limit reached")
            free = state == 0
            W = np.flatnonzero(in_W)
            # reuse the factor when F only grew (append) or did not change
            if fac is None:
                fac = _FreeFactor(self, np.flatnonzero(free))
            else:
                kept = free[fac.F]
                if not kept.all():
                    fac.keep(kept)
                new = free.copy()
                new[fac.F] = False
                fac.add(np.flatnonzero(new))
            F = fac.F
            B = np.flatnonzero(~free)
            x = np.where(state == -1, lb, np.where(state == 1, ub, 0.0))
            xB = x[B]
            if np.isinf(xB).any():
                raise _KernelFailed("warm start fixes a variable at an infinite bound")
            # the fixed variables' pull on the free ones: P_FB x_B, from the smaller gather
            nzB = B[xB != 0.0]
            gF = q[F]
            if nzB.size and F.size:
                if nzB.size <= F.size:
                    gF = gF + (x[nzB] @ np.take(P, nzB, axis=0))[F]
                else:
                    gF = gF + np.take(np.take(P, F, axis=0), nzB, axis=1) @ x[nzB]
            CW = C.rows(W)
            xF, y = fac.eqp(W, gF, d[W] - CW @ x)
            if block and xF.size and float(np.abs(xF).max()) > 1e6 * x_scale:
                # only the regularisation holds x: the objective falls along a direction
                # of the free block (singular P); PDAS does not recover from this
                raise _KernelFailed("the free block is singular along a descent direction")
            x[F] = xF
            g = self._grad(x)
            zB = -(g[B] + self.eps * x[B])
            if W.size:
                zB -= (y @ CW)[B]
            gscale = max(
                self.dmax * float(np.abs(x).max()), float(np.abs(g).max()), self.qmax, _TINY
            )
            dtol = 1e-3 * self.ctx.tol * gscale
            changed = False
            # primal: free variables outside their bounds get fixed at the bound they cross
            lo_v = F[xF < lb[F] - ptol_lo[F]]
            up_v = F[xF > ub[F] + ptol_up[F]]
            if lo_v.size or up_v.size:
                state[lo_v], state[up_v] = -1, 1
                changed = True
            # dual: fixed variables with wrong-signed multipliers are released
            wrongness = np.where(state[B] == -1, zB, -zB)
            wrong = np.flatnonzero((wrongness > dtol) & ~self.fixed[B])
            if wrong.size:
                rel = B[wrong]
                # the free set may double per step, or grow 5-fold when no free variable
                # left its box (the free set is then probably still far too small)
                lim = max(block, (1 if changed else 4) * F.size)
                if block and rel.size > lim:
                    assert leave is not None
                    score = wrongness[wrong] * leave[rel]
                    rel = rel[np.argpartition(-score, lim - 1)[:lim]]
                state[rel] = 0
                changed = True
            Wi = W[is_ub_row[W]]
            if Wi.size:
                neg = y[is_ub_row[W]] * self.row_norms(Wi) < -dtol
                if neg.any():
                    in_W[Wi[neg]] = False
                    changed = True
            out = np.flatnonzero(~in_W)
            if out.size:
                r = (self._rows_x(x)[out] - d[out]) / row_scale[out]
                viol = np.flatnonzero(r > 1e-12)
                if viol.size:
                    # most violated first, and never more rows than free variables
                    room = int((state == 0).sum()) - int(in_W.sum())
                    if block and changed and viol.size > _COLD_ROW_BURST:
                        room = min(room, 1)  # cold, bounds still moving: one at a time
                    viol = viol[np.argsort(-r[viol])][: max(room, 1)]
                    in_W[out[viol]] = True
                    changed = True
            if not changed:
                if W.size:
                    # rows the EQP left out as dependent on the others (multiplier 0)
                    rw = (CW @ x - d[W]) / row_scale[W]
                    slack = (rw < -1e-11) & is_ub_row[W]
                    if slack.any():  # inactive after all: leave the working set
                        in_W[W[slack]] = False
                        continue
                    unmet = np.abs(rw) > 1e-11
                    if unmet.any():
                        # not implied: a small free set cannot meet them all; free
                        # variables that can (cold), or give up
                        if block and self._release_for_rows(state, CW[unmet], rw[unmet], block):
                            continue
                        raise _KernelFailed("working rows are not met accurately")
                self.factor = fac
                self.final_active = ActiveSet(state == -1, state == 1, in_W[self.m_eq :].copy())
                self.final_objective = 0.5 * float(x @ (g + q))
                z = np.zeros(n)
                z[B] = zB
                yfull = np.zeros(self.m)
                yfull[W] = y
                return x, yfull, z
        raise _KernelFailed(f"primal-dual active-set iteration did not settle in {max_iter} steps")


class _Infeasible(Exception):
    """Phase 1 proved the constraints infeasible."""


def _x_scale(problem: QPProblem) -> float:
    """A size x may reasonably reach: the largest finite bound or right-hand side."""
    vals = [1.0]
    for v in (problem.lb, problem.ub, problem.b_eq, problem.b_ub):
        assert v is not None
        fin = v[np.isfinite(v)]
        if fin.size:
            vals.append(float(np.abs(fin).max()))
    return max(vals)


#: The last factorisation of each thread, for the next warm-started solve with the same
#: P (frontier points share P). One slot, so memory stays bounded.
_FACTOR_CACHE = threading.local()


def _cached_factor(kern: _ActiveSetKernel) -> _FreeFactor | None:
    entry = getattr(_FACTOR_CACHE, "entry", None)
    if entry is None:
        return None
    P_ref, diag, eps, F, L, H = entry
    P = kern.P
    if P_ref() is not P or diag.shape != (P.shape[0],):
        return None
    if not np.array_equal(diag, np.diagonal(P)):  # P edited in place since
        return None
    kern.eps = eps
    return _FreeFactor.from_parts(kern, F, L, H)


def _store_factor(kern: _ActiveSetKernel, fac: _FreeFactor) -> None:
    if fac.F.size > 1500:  # L and H would hold > 36 MB between calls
        _FACTOR_CACHE.entry = None
        return
    try:
        ref = weakref.ref(kern.P)
    except TypeError:
        return
    _FACTOR_CACHE.entry = (ref, np.diagonal(kern.P).copy(), kern.eps, fac.F, fac.L, fac.H)


def _run_active_set(problem: QPProblem, ctx: _Context) -> QPSolution:
    kern = _ActiveSetKernel(problem, ctx)
    notes: list[str] = []
    result: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    warm = ctx.warm
    try:
        if warm is not None and warm.active_set is not None:
            attempts = [("warm start", lambda: kern.pdas(warm.active_set, _cached_factor(kern)))]
        else:
            # a small free set guessed from the gradient at a cheap point, grown by blocks:
            # the factorised block stays near the final free set, not n (and on capped
            # max-Sharpe problems this settles where starting all free cycles, even at
            # n = 20); small problems that defeat it try every variable free before the LP
            start, block = kern.cold_guess()
            attempts = [("cold start", lambda: kern.pdas(start, max_iter=30, block=block))]
            if problem.n <= _ALL_FREE_RETRY_MAX_N and not ctx.handoff:
                none = np.zeros(problem.n, dtype=bool)
                every = ActiveSet(none, none, np.zeros(problem.m_ub, dtype=bool))
                attempts.append(("all free", lambda: kern.pdas(every)))
        for label, attempt in attempts:
            try:
                result = attempt()
                break
            except _KernelFailed as exc:
                notes.append(f"{label}: {exc}")
        if result is None and ctx.handoff and warm is None:
            notes.append("handed to DAQP (faster than the primal method at this size)")
            return _raw(
                problem, "active_set", "failed", iterations=kern.iterations,
                message="; ".join(notes),
            )  # fmt: skip
        if result is None:
            x0 = None
            if warm is not None and kern._feasible(warm.x):
                x0 = warm.x
            if x0 is None:
                x0 = kern._phase1()
            result = kern.primal(x0)
    except _Infeasible:
        return _raw(problem, "active_set", "infeasible", iterations=kern.iterations)
    except _KernelFailed as exc:
        notes.append(str(exc))
        return _raw(
            problem, "active_set", "failed", iterations=kern.iterations, message="; ".join(notes)
        )
    x, y, z = result
    if float(np.abs(x).max()) > 1e6 * _x_scale(problem):
        # only the tiny regularisation held x back: the true objective is unbounded
        return _raw(
            problem,
            "active_set",
            "unbounded",
            iterations=kern.iterations,
            message=f"|x| reached {float(np.abs(x).max()):.3g}, held only by regularisation",
        )
    if kern.factor is not None:
        _store_factor(kern, kern.factor)
    m_eq = problem.m_eq
    sol = _raw(
        problem,
        "active_set",
        "optimal",
        x,
        y[:m_eq],
        y[m_eq:],
        z,
        kern.iterations,
        objective=kern.final_objective,
    )
    sol.active_set = kern.final_active
    sol.fallbacks.extend(notes)
    return sol


_BACKENDS: dict[str, Callable[[QPProblem, _Context], QPSolution]] = {
    "active_set": _run_active_set,
    "daqp": _run_daqp,
    "highs": _run_highs,
    "piqp": _run_piqp,
    "clarabel": _run_clarabel,
}

#: Backends whose raw answers are interior-point accurate only: always polish them.
_INTERIOR_POINT = frozenset({"piqp", "clarabel"})


# --------------------------------------------------------------------------------------
# The solver chain
# --------------------------------------------------------------------------------------


#: Up to this many variables a cold solve starts with DAQP, then the own kernel.
DAQP_FIRST_MAX_N = 120
#: Up to this many variables a cold kernel whose primal-dual iteration cycles hands the
#: problem to DAQP instead of running its primal method (on the homogenised max-Sharpe
#: QPs of 150-300 leveraged funds: 5-7 ms of the failed iteration plus DAQP's 3-19 ms,
#: against 32-40 ms; at 400-500 funds the primal method is the faster one).
HANDOFF_MAX_N = 320  # 300 funds, plus the homogenising variable and cash


def default_solvers(n: int, warm: bool = False) -> list[str]:
    """The backend chain :func:`solve_qp` uses for ``n`` variables.

    The own kernel first, except for cold solves of at most :data:`DAQP_FIRST_MAX_N`
    variables, where DAQP (a dual active-set method in C) comes first: there it is at
    the machine's floor and the kernel's Python steps are not (a homogenised max-Sharpe
    QP of 100 leveraged funds with exposure caps: 2 ms against 25 ms; plain problems of
    150 variables are a tie). DAQP also follows the kernel up to :data:`HANDOFF_MAX_N`
    variables (and with a warm start well beyond), where a cold kernel whose primal-dual
    iteration fails hands over to it; then PIQP (eps 1e-10, exact after polishing in
    every case we ran, and faster than HiGHS on our exposure-capped problems: 16 vs
    150 ms at n=500, 87 vs 1200 ms at n=1000); then HiGHS, which also loops on unbounded
    problems until its time limit, so it comes after a solver that detects them;
    Clarabel last. Every answer, whichever backend gave it, passes the same KKT check.
    """
    if n <= DAQP_FIRST_MAX_N and not warm:
        chain = ["daqp", "active_set"]
    else:
        chain = ["active_set"]
        if n <= HANDOFF_MAX_N or (warm and n <= 1500):
            chain.append("daqp")
    chain += ["piqp", "highs", "clarabel"]
    return chain


def _lift(presolved: _Presolved, original: QPProblem, sol: QPSolution) -> QPSolution:
    """Map a backend answer on the presolved problem back to the original rows."""
    if presolved.problem is original:
        return replace(sol, fallbacks=list(sol.fallbacks))
    y_eq = np.zeros(original.m_eq)
    if sol.y_eq.shape == (presolved.eq_keep.size,):
        y_eq[presolved.eq_keep] = sol.y_eq
    return replace(sol, y_eq=y_eq, fallbacks=list(sol.fallbacks))


def _reduce_warm(presolved: _Presolved, warm: QPSolution) -> QPSolution:
    if presolved.eq_keep.size == warm.y_eq.size:
        return warm
    return QPSolution(
        x=warm.x,
        objective=warm.objective,
        status=warm.status,
        solver=warm.solver,
        y_eq=warm.y_eq[presolved.eq_keep],
        y_ub=warm.y_ub,
        z=warm.z,
        active_set=warm.active_set,
    )


def _finish(
    presolved: _Presolved, problem: QPProblem, sol: QPSolution, ctx: _Context, always_polish: bool
) -> tuple[QPSolution | None, str]:
    """KKT-check a backend answer, polishing it when needed; None if rejected.

    ``sol`` lives on the presolved problem; the check is on the original ``problem``.
    Polishing tries the active sets guessed from the answer; if none passes, a short
    primal-dual active-set iteration from the best guess repairs it (an interior-point
    answer a little off the optimal face needs one or two swaps), then polishes again.
    """
    if not np.isfinite(sol.x).all():
        return None, "returned a non-finite x"
    red, tol = presolved.problem, ctx.tol
    raw = _lift(presolved, problem, sol)
    raw_kkt = check_kkt(problem, raw.x, raw.y_eq, raw.y_ub, raw.z)
    raw_ok = _kkt_ok(raw_kkt, tol)
    raw.objective = raw_kkt["objective"]  # exact 0.5 x'Px + q'x, whatever the backend said
    clean = raw_ok and all(raw_kkt[k] <= 0.1 * tol for k in _KKT_KEYS)
    if clean and not always_polish and sol.active_set is not None:
        raw.kkt, raw.active_set = raw_kkt, sol.active_set  # the kernel knows it exactly
        return raw, ""
    candidates = _candidate_active_sets(red, sol.x, sol.y_ub, sol.z)
    if sol.active_set is not None:
        candidates.insert(0, sol.active_set)
    if clean and not always_polish:
        raw.kkt, raw.active_set = raw_kkt, candidates[0]
        return raw, ""

    def attempt(
        x: np.ndarray, y_eq: np.ndarray, y_ub: np.ndarray, act: ActiveSet
    ) -> QPSolution | None:
        pol = _polish(red, x, y_eq, y_ub, act)
        if pol is None:
            return None
        px, py_eq, py_ub, pz = pol
        out = _lift(presolved, problem, QPSolution(px, 0.0, "optimal", sol.solver, y_eq=py_eq))
        kkt = check_kkt(problem, px, out.y_eq, py_ub, pz)
        if not _kkt_ok(kkt, tol):
            return None
        out.y_ub, out.z, out.objective = py_ub, pz, kkt["objective"]
        out.kkt, out.active_set, out.polished = kkt, act, True
        out.iterations = sol.iterations
        return out

    for act in candidates:
        if act.n_free + red.m_eq + int(act.ub_rows.sum()) > _POLISH_CHEAP and raw_ok:
            break  # a large dense solve for accuracy we already have
        done = attempt(sol.x, sol.y_eq, sol.y_ub, act)
        if done is not None:
            return done, ""
    try:
        if max(raw_kkt[k] for k in _KKT_KEYS) > 1e-4:
            raise _KernelFailed("too far from optimal to repair")  # garbage is not repaired
        if red.n > _POLISH_CHEAP and raw_ok:
            raise _KernelFailed("repair would cost more than the accuracy it adds")
        kern = _ActiveSetKernel(red, _Context(tol=tol, deadline=ctx.deadline, warm=None))
        xk, yk, _ = kern.pdas(candidates[0], max_iter=15)
        assert kern.final_active is not None
        done = attempt(xk, yk[: red.m_eq], yk[red.m_eq :], kern.final_active)
        if done is not None:
            return done, ""
    except _KernelFailed:
        pass
    if raw_ok:
        raw.kkt, raw.active_set = raw_kkt, candidates[0]
        return raw, ""
    worst = ", ".join(f"{k} {raw_kkt[k]:.1e}" for k in _KKT_KEYS if raw_kkt[k] > tol)
    return None, f"answer failed the KKT check ({worst}) and polishing did not repair it"


def solve_qp(
    problem: QPProblem,
    warm_start: QPSolution | None = None,
    *,
    solvers: Sequence[str] | None = None,
    tol: float = 1e-9,
    time_limit: float | None = None,
) -> QPSolution:
    """Solve a dense convex QP exactly, trying a chain of backends.

    Each backend's answer is mapped to the module's sign convention, polished on its
    active set, and accepted only when :func:`check_kkt` on the original problem gives
    primal feasibility <= max(tol, 1e-8) and dual feasibility, stationarity,
    complementarity and duality gap <= ``tol``. A rejected or failed backend is
    recorded in ``fallbacks`` and the next one is tried.

    Parameters
    ----------
    problem : QPProblem
    warm_start : QPSolution, optional
        A previous answer of a related problem with the same n and rows (frontier point,
        last month's portfolio). The kernel restarts from its active set, DAQP from its
        multipliers.
    solvers : sequence of str, optional
        Backends to try, in order, from :data:`SOLVERS`; default :func:`default_solvers`.
    tol : float
        KKT acceptance tolerance (relative, see :func:`check_kkt`).
    time_limit : float, optional
        Wall seconds for the whole call; each backend gets what is left.

    Returns
    -------
    QPSolution
        With ``status == 'optimal'``, residuals in ``kkt`` and the failures before it in
        ``fallbacks``.

    Raises
    ------
    InfeasibleError
        The constraints have no common point; ``conflicts`` names the rows involved
        (those with non-zero Farkas multipliers of an elastic LP), most involved first.
    SolverError
        No backend produced an answer that passed the KKT check (``status`` says
        'unbounded' when that was the backends' verdict, 'time_limit' when time ran out).
    ValidationError
        Unknown solver names, or a warm start of another shape.
    """
    t0 = time.perf_counter()
    if not (tol > 0.0 and math.isfinite(tol)):
        raise ValidationError(f"tol must be a positive number, got {tol!r}", field="tol")
    chain = default_solvers(problem.n, warm_start is not None) if solvers is None else list(solvers)
    unknown = [s for s in chain if s not in _BACKENDS]
    if unknown or not chain:
        raise ValidationError(
            f"unknown solver(s) {unknown!r}; choose from {list(SOLVERS)}", field="solvers"
        )
    if warm_start is not None and (
        warm_start.x.shape != (problem.n,)
        or warm_start.y_eq.shape != (problem.m_eq,)
        or warm_start.y_ub.shape != (problem.m_ub,)
        or warm_start.z.shape != (problem.n,)
    ):
        raise ValidationError(
            f"warm_start has n={warm_start.x.shape[0]}, {warm_start.y_eq.size} equality and "
            f"{warm_start.y_ub.size} <= rows but the problem has n={problem.n}, {problem.m_eq} "
            f"and {problem.m_ub}; pass warm_start=None when the universe or rows change",
            field="warm_start",
        )
    if warm_start is not None and warm_start.status != "optimal":
        warm_start = None
    deadline = t0 + time_limit if time_limit is not None else math.inf
    presolved = _presolve(problem)
    warm = _reduce_warm(presolved, warm_start) if warm_start is not None else None
    ctx = _Context(tol=tol, deadline=deadline, warm=warm)
    if warm is None and presolved.problem.n <= HANDOFF_MAX_N and "active_set" in chain:
        ctx.handoff = "daqp" in chain[chain.index("active_set") + 1 :]

    fallbacks: list[str] = []
    statuses: list[tuple[str, str]] = []
    diagnosis: _Diagnosis | None = None
    for name in chain:
        if time.perf_counter() > deadline:
            fallbacks.append(f"{name}: skipped, time limit of {time_limit} s reached")
            statuses.append((name, "time_limit"))
            continue
        unbounded_claims = sum(s == "unbounded" for _, s in statuses)
        if unbounded_claims >= 2:
            break  # two solvers agree; more would only confirm it
        if unbounded_claims and name == "highs":
            fallbacks.append(f"{name}: skipped, it loops on unbounded problems")
            continue
        try:
            sol = _BACKENDS[name](presolved.problem, ctx)
        except ImportError as exc:
            fallbacks.append(f"{name}: not installed ({exc})")
            statuses.append((name, "failed"))
            continue
        except Exception as exc:  # a crashing backend must not stop the chain
            fallbacks.append(f"{name}: raised {type(exc).__name__}: {exc}")
            statuses.append((name, "failed"))
            continue
        notes = "; ".join(sol.fallbacks)
        if sol.status == "infeasible":
            if diagnosis is None:
                diagnosis = _diagnose_infeasibility(presolved.problem)
            if diagnosis.infeasible:
                raise InfeasibleError(_infeasible_message(diagnosis), conflicts=diagnosis.rows)
            fallbacks.append(
                f"{name}: reported infeasible, but an elastic LP found a feasible point"
                if math.isfinite(diagnosis.violation)
                else f"{name}: reported infeasible; the elastic LP that checks it failed"
            )
            statuses.append((name, "failed"))
            continue
        if sol.status != "optimal":
            fallbacks.append(f"{name}: {sol.status}" + (f" ({notes})" if notes else ""))
            statuses.append((name, sol.status))
            continue
        try:
            accepted, why = _finish(
                presolved, problem, sol, ctx, always_polish=name in _INTERIOR_POINT
            )
        except Exception as exc:  # numerical trouble while checking must not stop the chain
            accepted, why = None, f"checking its answer raised {type(exc).__name__}: {exc}"
        if accepted is None:
            fallbacks.append(f"{name}: {why}")
            statuses.append((name, "failed"))
            continue
        accepted.fallbacks = fallbacks
        accepted.solve_time = time.perf_counter() - t0
        return accepted

    last_status = statuses[-1][1] if statuses else "failed"
    if any(s == "unbounded" for _, s in statuses):
        last_status = "unbounded"
        hint = (
            "the objective may be unbounded below: bound the weights (lb/ub), add a budget "
            "row, or make P positive definite"
        )
    elif any(s == "time_limit" for _, s in statuses):
        last_status = "time_limit"
        hint = "raise time_limit or shrink the problem"
    else:
        hint = "check that P is positive semidefinite and the data are well scaled"
    raise SolverError(
        f"no QP solver produced a verified answer ({hint}). Tried: " + " | ".join(fallbacks),
        status=last_status,
        solver=statuses[-1][0] if statuses else None,
    )


def _infeasible_message(diag: _Diagnosis) -> str:
    parts = []
    if diag.rows:
        parts.append("rows " + ", ".join(repr(r) for r in diag.rows[:10]))
    if diag.bound_vars:
        parts.append("the bounds of " + ", ".join(diag.bound_vars))
    what = " together with ".join(parts) if parts else "the constraints"
    return (
        f"no portfolio satisfies the constraints: {what} cannot all hold "
        f"(smallest total violation {diag.violation:.3g}); relax one of them"
    )
