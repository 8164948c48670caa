"""The exact efficient frontier as corner portfolios (critical line / parametric active set).

The frontier is the solution path of the parametric QP

    minimize    0.5 w' Sigma w - t mu' w
    subject to  A_eq w = b_eq,   A_ub w <= b_ub,   lb <= w <= ub

for ``t`` from 0 (the minimum-variance portfolio) to +inf (the max-return vertex). On a
fixed active set (free variables F, active rows W) the KKT conditions are linear in
``t``, so the weights and every multiplier are affine in ``t``: the path is piecewise
linear and its breakpoints are the corner portfolios (Markowitz's critical line
algorithm; Niedermayer and Niedermayer 2010; Best 1996 for parametric QPs in general).
Between two corners the return is linear and the variance quadratic in ``t``, so any
point of the frontier (a target return, a target volatility, the max-Sharpe portfolio)
is found exactly on its segment.

The tracer starts from the ``t = 0`` answer of :func:`~core.optimization.qp.solve_qp`,
solves the KKT system of the current active set once per segment for the direction
``(dw/dt, dy/dt, dz/dt)``, and steps to the next event: a free weight reaches a bound, an
inactive row becomes tight, or a multiplier reaches zero (its constraint leaves the
active set). The inverse of the KKT matrix ``[Sigma_FF C_WF'; C_WF 0]`` is updated in
O((|F| + |W|)^2) per event by bordering (a variable or row enters) and by the
block-inverse downdate (one leaves); it is rebuilt only after numerical trouble. Active
rows that depend on the others on the free weights (repeated caps, a vertex) stay out of
the system with their multipliers held. Ties are taken one event at a time (steps of
length zero); should they cycle, the point is re-solved once by ``solve_qp`` and the
tracer continues from that answer's active set (a second stall at the same ``t`` raises
SolverError, and the engine then solves its frontier point by point). A zero-variance
variable (cash)
or a singular ``Sigma`` is handled exactly: where releasing a constraint would open a
direction of zero curvature, the weights move along that direction at fixed ``t`` until
another constraint blocks it (a ray step, like a simplex pivot), so the KKT matrix stays
nonsingular; at ``t = 0`` such steps pick, among several minimum-variance portfolios,
the one with the highest return (the limit of the path as ``t -> 0+``).

Every corner is checked against the KKT conditions while it is traced (stationarity,
feasibility and multiplier signs, from a running ``Sigma w`` recomputed exactly every
few events); a corner that fails is re-solved with ``solve_qp`` at its ``t`` and the path
continues from there. Every point handed out (:meth:`FrontierPath.points`,
:meth:`FrontierPath.max_sharpe`, :meth:`FrontierPath.at_volatility`) is checked with
the residuals of :func:`~core.optimization.qp.check_kkt` at its ``t`` and re-solved by
``solve_qp`` (as min variance at its target return) if it fails. Both kinds of repair
are counted in :attr:`FrontierPath.stats`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.linalg.lapack as _lapack

from core.errors import InfeasibleError, SolverError, ValidationError
from core.optimization.compiled import readonly
from core.optimization.constraints import LinearForm
from core.optimization.qp import ActiveSet, QPProblem, QPSolution, check_kkt, solve_qp

#: Name of the method in ``PathPoint.solver`` (and in the engine's frontier points).
METHOD = "critical_line"
#: A direction of the free block with curvature below this fraction of
#: ``max_i Sigma_ii * |u|^2`` is treated as having none (a riskless combination).
ZERO_CURVATURE = 1e-11
#: Events between exact recomputations of ``Sigma w`` (the tracer updates it per step).
_EXACT_EVERY = 32
#: Re-solves by ``solve_qp`` a path may need before the tracer gives up (SolverError).
_MAX_RESOLVES = 10
_TINY = 1e-300
# event kinds; a tie between kinds goes to the smaller
_HIT, _TIGHT, _RELEASE, _DROP = 0, 1, 2, 3


class _PathFailed(Exception):
    """The tracer cannot continue; the message says why."""


# --------------------------------------------------------------------------------------
# Public objects
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corner:
    """One breakpoint of the path (a corner portfolio).

    Attributes
    ----------
    t : float
        Risk tolerance at the corner (``t = 0`` is minimum variance).
    weights : ndarray, shape (n,)
    expected_return : float
        ``mu' w``.
    variance : float
        ``w' Sigma w``.
    y_eq, y_ub, z : ndarray, shapes (m_eq,), (m_ub,), (n,)
        Multipliers at ``t`` in :mod:`core.optimization.qp`'s sign convention.
    """

    t: float
    weights: np.ndarray
    expected_return: float
    variance: float
    y_eq: np.ndarray
    y_ub: np.ndarray
    z: np.ndarray

    @property
    def volatility(self) -> float:
        """``sqrt(variance)``."""
        return math.sqrt(max(self.variance, 0.0))


@dataclass
class PathPoint:
    """A point of the frontier: the minimum-variance portfolio at its return.

    Attributes
    ----------
    t : float
        Its risk tolerance; also the multiplier of the row ``mu' w >= expected_return``
        in the target-return form of the problem.
    weights : ndarray, shape (n,)
    expected_return, variance : float
        ``mu' w`` and ``w' Sigma w``, computed from ``weights``.
    y_eq, y_ub, z : ndarray, shapes (m_eq,), (m_ub,), (n,)
        Multipliers at ``t`` (sign convention of :mod:`core.optimization.qp`).
    kkt : dict of str to float
        :func:`~core.optimization.qp.check_kkt` residuals of the ``t``-form at the point.
    solver : str
        :data:`METHOD`, or ``"critical_line -> <backend>"`` when the point failed its
        check and was re-solved.
    segment : int
        Index of the corner that starts the point's segment.
    """

    t: float
    weights: np.ndarray
    expected_return: float
    variance: float
    y_eq: np.ndarray
    y_ub: np.ndarray
    z: np.ndarray
    kkt: dict[str, float] = field(default_factory=dict)
    solver: str = METHOD
    segment: int = 0

    @property
    def volatility(self) -> float:
        """``sqrt(variance)``."""
        return math.sqrt(max(self.variance, 0.0))

    def sharpe_ratio(self, rf: float) -> float:
        """``(expected_return - rf) / volatility`` (nan at zero volatility)."""
        vol = self.volatility
        return (self.expected_return - rf) / vol if vol > 0.0 else math.nan


@dataclass
class PathStats:
    """What the tracer did, for benchmarks and diagnostics.

    Attributes
    ----------
    events : int
        Active-set changes (including steps of length zero at ties).
    ray_steps : int
        Moves at fixed ``t`` along a direction of zero curvature (singular ``Sigma``).
    rebuilds : int
        Times the KKT inverse was rebuilt from scratch (start, numerical trouble).
    fallbacks : list of str
        Corners and points that failed their KKT check and were re-solved by
        ``solve_qp``, and why.
    trace_time : float
        Wall seconds of tracing (not counting :meth:`FrontierPath.points`).
    """

    events: int = 0
    ray_steps: int = 0
    rebuilds: int = 0
    fallbacks: list[str] = field(default_factory=list)
    trace_time: float = 0.0

    @property
    def n_fallbacks(self) -> int:
        """Number of re-solves by ``solve_qp`` (corners and points)."""
        return len(self.fallbacks)


class FrontierPath:
    """The exact efficient frontier: corner portfolios and exact interpolation between them.

    Build it with :func:`frontier_path`. Returns are non-decreasing along the corners,
    variances too; the first corner is the minimum-variance portfolio (the one with the
    highest return when several have the same variance), the last the max-return
    portfolio (the one with the least variance when several have the same return).

    Attributes
    ----------
    problem : QPProblem
        The constraints, with ``P = Sigma`` and ``q = 0``.
    mu : ndarray, shape (n,)
        Expected returns of the variables.
    stats : PathStats
    """

    def __init__(
        self,
        problem: QPProblem,
        mu: np.ndarray,
        data: dict[str, np.ndarray],
        stats: PathStats,
        tol: float,
    ) -> None:
        self.problem = problem
        self.mu = mu
        self.stats = stats
        self.tol = tol
        self._T = data["t"]
        self._W = data["w"]
        self._Y = data["y"]
        self._Z = data["z"]
        self._R = data["r"]
        self._V = data["v"]
        self._E = data["e"]  # per segment: w_k' Sigma (w_{k+1} - w_k)
        self._F = data["f"]  # per segment: |w_{k+1} - w_k|^2_Sigma
        # returns made monotone against rounding, for locating targets
        self._Rm = np.maximum.accumulate(self._R)
        self._Vm = np.maximum.accumulate(self._V)

    # -- corners ----------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._T.size)

    @property
    def corners(self) -> list[Corner]:
        """The corner portfolios, from minimum variance to maximum return."""
        m_eq = self.problem.m_eq
        return [
            Corner(
                float(self._T[k]),
                self._W[k].copy(),
                float(self._R[k]),
                float(self._V[k]),
                self._Y[k, :m_eq].copy(),
                self._Y[k, m_eq:].copy(),
                self._Z[k].copy(),
            )
            for k in range(len(self))
        ]

    @property
    def t(self) -> np.ndarray:
        """Risk tolerance of each corner, shape (K,)."""
        return self._T.copy()

    @property
    def returns(self) -> np.ndarray:
        """Expected return of each corner, shape (K,)."""
        return self._R.copy()

    @property
    def variances(self) -> np.ndarray:
        """Variance of each corner, shape (K,)."""
        return self._V.copy()

    @property
    def weights(self) -> np.ndarray:
        """Weights of each corner, shape (K, n)."""
        return self._W.copy()

    @property
    def min_return(self) -> float:
        """Return of the minimum-variance portfolio (the path's start)."""
        return float(self._R[0])

    @property
    def max_return(self) -> float:
        """Highest attainable return (the path's end)."""
        return float(self._R[-1])

    # -- interpolation -----------------------------------------------------------------

    def _segment(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment index k and position lam in [0, 1] of returns ``r`` (shape (p,))."""
        K = len(self)
        if K == 1:
            return np.zeros(r.size, dtype=np.intp), np.zeros(r.size)
        Rm = self._Rm
        k = np.searchsorted(Rm, r, side="right") - 1
        k = np.clip(k, 0, K - 2)
        width = Rm[k + 1] - Rm[k]
        with np.errstate(invalid="ignore", divide="ignore"):
            lam = np.where(width > 0.0, (r - Rm[k]) / width, 0.0)
        lam = np.clip(lam, 0.0, 1.0)
        # at or past the end: the last corner itself
        end = r >= Rm[-1]
        k = np.where(end, K - 2, k)
        lam = np.where(end, 1.0, lam)
        return k.astype(np.intp), lam

    def _interpolate(self, k: np.ndarray, lam: np.ndarray) -> dict[str, np.ndarray]:
        K = len(self)
        if K == 1:
            zero = np.zeros(k.size, dtype=np.intp)
            return {
                "t": self._T[zero], "w": self._W[zero], "y": self._Y[zero], "z": self._Z[zero],
            }  # fmt: skip
        lam2 = lam[:, None]

        def lin(A: np.ndarray) -> np.ndarray:
            return (
                A[k] + lam2 * (A[k + 1] - A[k]) if A.ndim == 2 else A[k] + lam * (A[k + 1] - A[k])
            )

        return {"t": lin(self._T), "w": lin(self._W), "y": lin(self._Y), "z": lin(self._Z)}

    def _make_points(self, k: np.ndarray, lam: np.ndarray) -> list[PathPoint]:
        """Points at (segment, position) pairs, each KKT-checked and repaired if needed."""
        pb, mu = self.problem, self.mu
        m_eq = pb.m_eq
        ip = self._interpolate(k, lam)
        T, X, Y, Z = ip["t"], ip["w"], ip["y"], ip["z"]
        res = _kkt_batch(pb, mu, T, X, Y[:, :m_eq], Y[:, m_eq:], Z)
        ok = _kkt_ok_batch(res, self.tol)
        variance = res.pop("variance").tolist()
        keys = list(res)
        rows = np.column_stack([res[key] for key in keys]).tolist()
        ret = (X @ mu).tolist()
        # every array here is freshly made by the interpolation: the points may hold views
        out: list[PathPoint] = []
        for i, (t, seg) in enumerate(zip(T.tolist(), k.tolist(), strict=True)):
            pt = PathPoint(
                t=t, weights=X[i], expected_return=ret[i], variance=variance[i],
                y_eq=Y[i, :m_eq], y_ub=Y[i, m_eq:], z=Z[i], kkt=dict(zip(keys, rows[i], strict=True)),
                segment=seg,
            )  # fmt: skip
            if not ok[i]:
                pt = self._resolve_point(pt)
            out.append(pt)
        return out

    def _resolve_point(self, pt: PathPoint) -> PathPoint:
        """Re-solve a point that failed its check: min variance at its target return."""
        pb, mu = self.problem, self.mu
        r = pt.expected_return
        worst = ", ".join(
            f"{key} {pt.kkt[key]:.1e}"
            for key in ("primal", "dual", "stationarity", "complementarity", "gap")
            if pt.kkt.get(key, math.inf) > self.tol
        )
        target = QPProblem(
            P=pb.P, q=np.zeros(pb.n), A_eq=pb.A_eq, b_eq=pb.b_eq,
            A_ub=np.vstack([pb.A_ub, -mu[None, :]]), b_ub=np.append(pb.b_ub, -r),
            lb=pb.lb, ub=pb.ub,
        )  # fmt: skip
        at_lo = np.isfinite(pb.lb) & (pt.weights <= pb.lb)
        at_up = np.isfinite(pb.ub) & (pt.weights >= pb.ub) & ~at_lo
        slack = pb.b_ub - pb.A_ub @ pt.weights
        warm = QPSolution(
            x=pt.weights, objective=0.0, status="optimal", solver=METHOD, y_eq=pt.y_eq,
            y_ub=np.append(pt.y_ub, pt.t), z=pt.z,
            active_set=ActiveSet(at_lo, at_up, np.append(slack <= 1e-12, pt.t > 0.0)),
        )  # fmt: skip
        sol = solve_qp(target, warm_start=warm, tol=self.tol)
        self.stats.fallbacks.append(
            f"point at return {r:.6g} failed its KKT check ({worst}); re-solved by {sol.solver}"
        )
        t = float(sol.y_ub[-1])
        kkt = check_kkt(_t_problem(pb, mu, t), sol.x, sol.y_eq, sol.y_ub[:-1], sol.z)
        return PathPoint(
            t=t, weights=sol.x.copy(), expected_return=float(sol.x @ mu),
            variance=float(sol.x @ pb.P @ sol.x), y_eq=sol.y_eq.copy(),
            y_ub=sol.y_ub[:-1].copy(), z=sol.z.copy(), kkt=kkt,
            solver=f"{METHOD} -> {sol.solver}", segment=pt.segment,
        )  # fmt: skip

    def at_return(self, target: float) -> PathPoint:
        """The minimum-variance portfolio with expected return ``target``.

        Raises
        ------
        InfeasibleError
            ``target`` is above the highest attainable return.
        ValidationError
            ``target`` is below the minimum-variance return (that portfolio is not
            efficient: the minimum-variance portfolio has a higher return at less risk).
        """
        r = float(target)
        span = max(abs(self.max_return), abs(self.min_return), 1.0)
        if r > self.max_return + 1e-12 * span:
            raise InfeasibleError(
                f"no portfolio reaches an expected return of {r:.6g}; the highest "
                f"attainable is {self.max_return:.6g}"
            )
        if r < self.min_return - 1e-12 * span:
            raise ValidationError(
                f"a return of {r:.6g} is below the minimum-variance return "
                f"{self.min_return:.6g}, which is not on the efficient frontier",
                field="target_return",
            )
        r = min(max(r, self.min_return), self.max_return)
        k, lam = self._segment(np.array([r]))
        return self._make_points(k, lam)[0]

    def points(self, n_points: int) -> list[PathPoint]:
        """Exactly ``n_points`` frontier points evenly spaced in expected return.

        From the minimum-variance return to the maximum return, both included; each is
        the exact interpolation between the two corners that bracket its return.

        Parameters
        ----------
        n_points : int
            At least 2 (1 gives the minimum-variance portfolio).
        """
        n_points = int(n_points)
        if n_points < 1:
            raise ValidationError("n_points must be at least 1", field="n_points")
        targets = np.linspace(self.min_return, self.max_return, n_points)
        if n_points == 1:
            targets = np.array([self.min_return])
        k, lam = self._segment(targets)
        # the ends are the corners themselves (no rounding in the interpolation)
        if len(self) > 1:
            k[0], lam[0] = 0, 0.0
            if n_points > 1:
                k[-1], lam[-1] = len(self) - 2, 1.0
        return self._make_points(k, lam)

    def max_sharpe(self, rf: float = 0.0) -> PathPoint:
        """The portfolio with the highest ``(mu'w - rf) / sqrt(w' Sigma w)`` (exact).

        On each segment the Sharpe ratio of ``w_k + lam (w_{k+1} - w_k)`` is
        ``(a + b lam) / sqrt(c + 2 e lam + f lam^2)``, whose derivative has the sign of
        ``(b c - a e) + lam (b e - a f)``: one stationary point, in closed form.

        Raises
        ------
        InfeasibleError
            No frontier portfolio has an expected return above ``rf``.
        ValidationError
            A riskless portfolio beats ``rf`` (the ratio has no maximum).
        """
        rf = float(rf)
        a = self._R - rf
        c = self._V
        vol_scale = max(float(np.max(np.abs(np.diagonal(self.problem.P)))), _TINY)
        riskless = c <= 1e-14 * vol_scale
        if np.any(riskless & (a > 1e-12 * max(1.0, abs(rf)))):
            raise ValidationError(
                "a riskless portfolio on the frontier beats the risk-free rate "
                f"({rf:.6g}), so the Sharpe ratio has no maximum; raise the risk-free "
                "rate to that return or give the riskless funds a volatility estimate",
                field="risk_free_rate",
            )
        if not np.any(a > 0.0):
            raise InfeasibleError(
                "no portfolio on the frontier has an expected return above the risk-free "
                f"rate ({rf:.6g}); lower it or revise the expected returns"
            )
        K = len(self)
        if K == 1:
            return self._make_points(np.zeros(1, np.intp), np.zeros(1))[0]
        ks = np.arange(K - 1)
        b = self._R[1:] - self._R[:-1]
        e, f = self._E, self._F
        a0, c0 = a[:-1], c[:-1]
        num = b * c0 - a0 * e
        den = a0 * f - b * e
        with np.errstate(invalid="ignore", divide="ignore"):
            lam_star = np.where(den != 0.0, num / den, -1.0)
        inside = (lam_star > 0.0) & (lam_star < 1.0)
        cand_k = np.concatenate([ks, ks, ks[inside]])
        cand_l = np.concatenate([np.zeros(K - 1), np.ones(K - 1), lam_star[inside]])
        r = a[cand_k] + b[cand_k] * cand_l
        v = c[cand_k] + 2.0 * e[cand_k] * cand_l + f[cand_k] * cand_l**2
        with np.errstate(invalid="ignore", divide="ignore"):
            h = np.where(v > 0.0, r / np.sqrt(np.maximum(v, _TINY)), -np.inf)
        best = int(np.argmax(h))
        pt = self._make_points(cand_k[best : best + 1], cand_l[best : best + 1])[0]
        return pt

    def at_volatility(self, sigma: float) -> PathPoint:
        """The highest-return portfolio with volatility at most ``sigma`` (exact).

        Variance grows along the path, quadratically on each segment: the bracketing
        segment's quadratic ``c + 2 e lam + f lam^2 = sigma^2`` gives the point. Above the
        max-return portfolio's volatility that portfolio is the answer.

        Raises
        ------
        InfeasibleError
            ``sigma`` is below the minimum volatility.
        """
        s2 = float(sigma) ** 2
        if not (math.isfinite(s2) and sigma >= 0):
            raise ValidationError("sigma must be a non-negative number", field="sigma")
        V = self._Vm
        if s2 < V[0] * (1.0 - 1e-12) - 1e-300:
            raise InfeasibleError(
                f"no portfolio has a volatility as low as {sigma:.6g}; the minimum is "
                f"{math.sqrt(max(V[0], 0.0)):.6g}"
            )
        K = len(self)
        if K == 1 or s2 >= V[-1]:
            k = np.array([max(K - 2, 0)], np.intp)
            return self._make_points(k, np.array([1.0 if K > 1 else 0.0]))[0]
        k = int(np.clip(np.searchsorted(V, s2, side="right") - 1, 0, K - 2))
        c, e, f = self._V[k], self._E[k], self._F[k]
        rhs = s2 - c
        if f > 0.0:
            disc = max(e * e + f * rhs, 0.0)
            lam = (-e + math.sqrt(disc)) / f
        elif e > 0.0:
            lam = rhs / (2.0 * e)
        else:
            lam = 1.0
        lam = min(max(lam, 0.0), 1.0)
        return self._make_points(np.array([k], np.intp), np.array([lam]))[0]


# --------------------------------------------------------------------------------------
# KKT residuals of many points at once
# --------------------------------------------------------------------------------------


def _t_problem(pb: QPProblem, mu: np.ndarray, t: float) -> QPProblem:
    """The problem at risk tolerance t (a shallow copy: no O(n^2) re-validation)."""
    out = copy.copy(pb)
    out.q = -t * mu
    return out


def _times_rows(X: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``X @ P`` from the rows of ``P`` that some row of ``X`` uses.

    Frontier portfolios hold few funds (50 points on a 500-fund capped frontier touch 52
    funds in all), and a zero weight adds exactly nothing: 0.07 ms instead of 0.47 ms
    for the whole product. A NaN or infinity in ``X`` keeps its column, so it still shows.
    """
    cols = np.flatnonzero((X != 0.0).any(axis=0))
    if 2 * cols.size >= X.shape[1]:
        return X @ P
    return X[:, cols] @ P[cols]


def _kkt_batch(
    pb: QPProblem,
    mu: np.ndarray,
    T: np.ndarray,
    X: np.ndarray,
    Yeq: np.ndarray,
    Yub: np.ndarray,
    Z: np.ndarray,
) -> dict[str, np.ndarray]:
    """:func:`~core.optimization.qp.check_kkt` of the t-form for p points at once.

    The same residuals, scaled the same way, with one matrix product ``X Sigma``
    instead of p matrix-vector products.

    Parameters
    ----------
    T : ndarray, shape (p,)
    X, Z : ndarray, shape (p, n)
    Yeq, Yub : ndarray, shapes (p, m_eq), (p, m_ub)

    Returns
    -------
    dict of str to ndarray of shape (p,)
        The keys of ``check_kkt`` plus ``variance`` (``x' Sigma x``).
    """
    from core.optimization.cla_kernel import kkt_residuals

    P, lb, ub = pb.P, pb.lb, pb.ub
    A_eq, b_eq, A_ub, b_ub = pb.A_eq, pb.b_eq, pb.A_ub, pb.b_ub
    assert A_eq is not None and b_eq is not None and A_ub is not None and b_ub is not None
    assert lb is not None and ub is not None
    # the matrix products here (BLAS); the rest in one compiled pass over each point
    fin_lb, fin_ub = np.isfinite(lb), np.isfinite(ub)
    row_norm = np.abs(A_ub).max(axis=1) if A_ub.shape[0] and A_ub.shape[1] else np.zeros(0)
    out = np.empty((len(_BATCH_KEYS), X.shape[0]))
    # (P is symmetric: X P is (P X')'); a broken point's NaN is flagged by the kernel
    with np.errstate(invalid="ignore", over="ignore"):
        products = (
            _times_rows(X, P), Yeq @ A_eq, Yub @ A_ub, X @ A_eq.T - b_eq, X @ A_ub.T - b_ub,
            Yeq @ b_eq + Yub @ b_ub,
        )  # fmt: skip
    ro = readonly
    kkt_residuals(
        ro(T), ro(X), *map(ro, products), ro(mu), ro(np.where(fin_lb, lb, 0.0)),
        ro(np.where(fin_ub, ub, 0.0)), ro(fin_lb, bool), ro(fin_ub, bool), ro(b_eq), ro(b_ub),
        ro(Yub), ro(row_norm), ro(Z), max(float(np.diagonal(P).max()), 0.0),
        float(np.abs(mu).max()) if mu.size else 0.0, out,
    )  # fmt: skip
    return dict(zip(_BATCH_KEYS, out, strict=True))


#: Rows of the compiled residuals (:func:`core.optimization.cla_kernel.kkt_residuals`).
_BATCH_KEYS = (
    "primal", "primal_abs", "dual", "stationarity", "complementarity", "gap", "objective",
    "objective_scale", "variance",
)  # fmt: skip


def _kkt_ok_batch(res: dict[str, np.ndarray], tol: float) -> np.ndarray:
    """The acceptance rule of ``solve_qp`` (primal to max(tol, 1e-8), the rest to tol)."""
    ok = res["primal"] <= max(tol, 1e-8)
    for key in ("dual", "stationarity", "complementarity", "gap"):
        ok &= res[key] <= tol
    return ok


# --------------------------------------------------------------------------------------
# The tracer
# --------------------------------------------------------------------------------------


class _Tracer:
    """Parametric active-set tracer over ``t`` (see the module docstring).

    State: ``t``, weights ``w``, a running ``g = Sigma w``, multipliers ``y`` (all rows,
    equality rows first) and ``z``; ``status`` per variable (0 free, -1 at its lower
    bound, +1 at its upper bound); ``active`` per row (in the KKT system). The KKT
    system's unknowns ("units") are the free variables and the active rows, in the
    order of ``unit[:N]`` (variable j is ``j``, row r is ``n + r``); ``Kinv`` is the
    inverse of its matrix and row p of ``M`` is ``Sigma[j]`` for a variable unit and
    ``C[r]`` for a row unit, so that ``M' sol`` gives ``Sigma dw`` and ``C' dy`` in one
    product.

    The events themselves (direction, ratio test, step, corner check, bordering and
    downdating the inverse) run compiled in :func:`core.optimization.cla_kernel.advance`;
    this class holds the state it works on (scalars in ``fs`` and ``ist``) and does what
    the kernel hands back: rebuilding the inverse, ray steps at fixed ``t``, re-solves,
    growing the buffers.
    """

    #: Events after which the kernel returns PAUSE and :meth:`_paused` is called (a
    #: seam for tests; -1: never).
    pause_at = -1

    def __init__(self, pb: QPProblem, mu: np.ndarray, tol: float, max_events: int) -> None:
        from core.optimization import cla_kernel as kern

        assert pb.A_eq is not None and pb.A_ub is not None and pb.lb is not None
        assert pb.b_eq is not None and pb.b_ub is not None and pb.ub is not None
        self.kern = kern
        self.pb = pb
        # what the kernel only reads: read-only views (one compiled version for all)
        self.S = readonly(pb.P)
        self.mu = readonly(mu)
        self.n = n = pb.n
        self.m_eq = pb.m_eq
        self.C = readonly(np.vstack([pb.A_eq, pb.A_ub]))
        self.dv = readonly(np.concatenate([pb.b_eq, pb.b_ub]))
        self.m = m = self.C.shape[0]
        self.lb = readonly(pb.lb)
        self.ub = readonly(pb.ub)
        self.eqfix = self.lb == self.ub
        self.is_eq = readonly(np.arange(m) < self.m_eq, bool)
        row_norm = np.maximum(np.abs(self.C).max(axis=1), _TINY) if m else np.zeros(0)
        self.row_norm = readonly(row_norm)
        self.releasable = readonly(~self.eqfix, bool)
        fin_lb, fin_ub = np.isfinite(self.lb), np.isfinite(self.ub)
        self.lbf = readonly(np.where(fin_lb, self.lb, 0.0))
        self.ubf = readonly(np.where(fin_ub, self.ub, 0.0))
        self.has_lb = readonly(fin_lb)  # 1.0 where the bound exists
        self.has_ub = readonly(fin_ub)
        self.bscale = readonly(np.maximum(1.0, np.maximum(np.abs(self.lbf), np.abs(self.ubf))))
        self.rscale = readonly(np.maximum(1.0, np.abs(self.dv)))
        self.dmax = max(float(np.diagonal(self.S).max()), _TINY)
        self.mumax = max(float(np.abs(mu).max()), _TINY)
        self.tol = tol
        self.max_events = max_events
        self.stats = PathStats()
        # scalars shared with the kernel
        self.fs = np.zeros(kern.N_FLOAT)
        self.fs[kern.F_DMAX] = self.dmax
        self.fs[kern.F_MUMAX] = self.mumax
        self.fs[kern.F_TOL] = tol
        self.ist = np.zeros(kern.N_INT, dtype=np.int64)
        self.ist[kern.I_MEQ] = self.m_eq
        self.ist[kern.I_MAXEV] = max_events
        self.ist[kern.I_ZLIMIT] = 2 * (n + m) + 20
        self.ist[kern.I_PAUSE] = self.pause_at
        # state
        self.w = np.zeros(n)
        self.g = np.zeros(n)
        self.y = np.zeros(m)
        self.z = np.zeros(n)
        self.status = np.zeros(n, dtype=np.int8)
        self.active = np.zeros(m, dtype=bool)
        # active rows left out of the KKT system because they depend on the others on
        # the free variables (duplicates, a vertex): their multipliers are held constant
        self.frozen = np.zeros(m, dtype=bool)
        # KKT inverse and unit bookkeeping: the inverse lives in the top-left N x N block
        # of a larger buffer and is updated in place
        self.unit = np.zeros(n + m, dtype=np.intp)
        self.pos = np.full(n + m, -1, dtype=np.intp)
        self.Kb = np.zeros((16, 16))
        self.M = np.zeros((16, n))
        # corners: t, w, y, z, g in rows 0..ist[I_NC]-1
        # (never read beyond the rows written: left uninitialised)
        self._CT = np.empty(32)
        self._CW = np.empty((32, n))
        self._CY = np.empty((32, m))
        self._CZ = np.empty((32, n))
        self._CG = np.empty((32, n))

    # -- scalars kept in the kernel's state arrays ---------------------------------------

    @property
    def t(self) -> float:
        return float(self.fs[self.kern.F_T])

    @t.setter
    def t(self, value: float) -> None:
        self.fs[self.kern.F_T] = value

    @property
    def N(self) -> int:
        """Units in the KKT system."""
        return int(self.ist[self.kern.I_N])

    @N.setter
    def N(self, value: int) -> None:
        self.ist[self.kern.I_N] = value

    # -- loading a solution and rebuilding the KKT inverse ----------------------------

    def load(self, sol: QPSolution, t: float) -> None:
        """Start (or restart) from a verified ``solve_qp`` answer at ``t``."""
        n, lb, ub = self.n, self.lb, self.ub
        self.t = float(t)
        self.w = np.array(sol.x, dtype=float)
        self.y = np.concatenate([sol.y_eq, sol.y_ub]).astype(float)
        self.z = np.array(sol.z, dtype=float)
        act = sol.active_set
        if act is None:
            scale = np.maximum(1.0, np.abs(np.where(np.isfinite(lb), lb, 0.0)))
            at_lo = np.isfinite(lb) & (self.w - lb <= 1e-12 * scale)
            scale = np.maximum(1.0, np.abs(np.where(np.isfinite(ub), ub, 0.0)))
            at_up = np.isfinite(ub) & (ub - self.w <= 1e-12 * scale) & ~at_lo
            slack = self.pb.b_ub - self.pb.A_ub @ self.w  # type: ignore[operator]
            rows = slack <= 1e-12 * np.maximum(1.0, np.abs(self.pb.b_ub))  # type: ignore[arg-type]
        else:
            at_lo, at_up, rows = act.at_lower, act.at_upper & ~act.at_lower, act.ub_rows
        status = np.zeros(n, dtype=np.int8)
        status[at_lo] = -1
        status[at_up] = 1
        status[self.eqfix] = -1
        self.status = status
        self.w[status < 0] = lb[status < 0]
        self.w[status > 0] = ub[status > 0]
        self.active = np.concatenate([np.ones(self.m_eq, dtype=bool), np.asarray(rows, bool)])
        self.frozen = np.zeros(self.m, dtype=bool)
        self.y[~self.active] = 0.0
        self.resync()

    def _independent_rows(self, F: np.ndarray) -> np.ndarray:
        """Active rows independent on the free variables (equality rows first); the
        others are frozen (kept active with a constant multiplier)."""
        W = np.flatnonzero(self.active)
        self.frozen[:] = False
        if W.size == 0:
            return W
        if F.size == 0:
            keep = np.zeros(0, dtype=np.intp)
        elif W.size == 1:  # (the budget alone, usually) independent unless zero on F
            keep = np.zeros(int(bool(np.any(self.C[W[0], F]))), dtype=np.intp)
        else:
            CF = self.C[np.ix_(W, F)]
            norms = np.maximum(np.abs(CF).max(axis=1), _TINY)
            weight = np.where(W < self.m_eq, 1e3, 1.0) / norms
            _, R, piv = sla.qr((CF * weight[:, None]).T, mode="economic", pivoting=True)
            diag = np.abs(np.diagonal(R))
            rank = int((diag > 1e-10 * max(float(diag[0]), _TINY)).sum()) if diag.size else 0
            keep = np.sort(piv[:rank])
        frozen = np.ones(W.size, dtype=bool)
        frozen[keep] = False
        self.frozen[W[frozen]] = True
        return W[keep]

    def _factor(self, F: np.ndarray, W: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Inverse of the KKT matrix on (F, W), or a zero-curvature direction on F."""
        nF, nW = F.size, W.size
        if nF == 0:
            return np.zeros((0, 0)), None
        H = np.take(np.take(self.S, F, axis=0), F, axis=1)
        CF = self.C[np.ix_(W, F)]
        L, info = _lapack.dpotrf(H, lower=1, clean=1)
        if info == 0:
            dL = np.diagonal(L)
            if float(dL.min()) ** 2 > 1e-10 * float(dL.max()) ** 2:
                Hinv = sla.cho_solve((L, True), np.eye(nF), check_finite=False)
                Hinv = 0.5 * (Hinv + Hinv.T)
                if nW == 0:
                    return Hinv, None
                V = Hinv @ CF.T
                Sc = CF @ V
                try:
                    Sinv = np.linalg.inv(Sc)
                except np.linalg.LinAlgError:
                    Sinv = None
                if Sinv is not None and np.isfinite(Sinv).all():
                    Sinv = 0.5 * (Sinv + Sinv.T)
                    VS = V @ Sinv
                    K = np.empty((nF + nW, nF + nW))
                    K[:nF, :nF] = Hinv - VS @ V.T
                    K[:nF, nF:] = VS
                    K[nF:, :nF] = VS.T
                    K[nF:, nF:] = -Sinv
                    return K, None
        # Sigma_FF is singular (a riskless variable, duplicates, a low-rank Sigma): the
        # KKT matrix is still nonsingular when Sigma is positive definite on null(C_WF)
        if nW:
            Q, R = sla.qr(CF.T, mode="full")
            diag = np.abs(np.diagonal(R))
            rank = int((diag > 1e-10 * max(float(diag[0]) if diag.size else 0.0, _TINY)).sum())
            Zb = Q[:, rank:]
        else:
            Zb = np.eye(nF)
        if Zb.shape[1]:
            Rh = Zb.T @ H @ Zb
            ev, vecs = np.linalg.eigh(0.5 * (Rh + Rh.T))
            if ev[0] <= ZERO_CURVATURE * self.dmax:
                return None, Zb @ vecs[:, 0]
        K = np.zeros((nF + nW, nF + nW))
        K[:nF, :nF] = H
        K[nF:, :nF] = CF
        K[:nF, nF:] = CF.T
        try:
            Kinv = np.linalg.inv(K)
        except np.linalg.LinAlgError:
            raise _PathFailed("the KKT matrix is singular after removing dependent rows") from None
        err = float(np.abs(K @ Kinv - np.eye(nF + nW)).max())
        if not err <= 1e-8:
            raise _PathFailed(f"the KKT matrix is too ill-conditioned (inverse error {err:.1e})")
        return 0.5 * (Kinv + Kinv.T), None

    @property
    def Kinv(self) -> np.ndarray:
        """The inverse of the KKT matrix over the current units (a view, shape (N, N))."""
        N = self.N
        return self.Kb[:N, :N]

    def _make_room(self) -> None:
        """Buffers with room for the next event: two more units in the inverse and in
        ``M``, three more corners (each grown by half again)."""
        N = self.N
        cap = self.Kb.shape[0]
        if N + 2 > cap:
            new_cap = max(16, N + N // 2 + 8)
            Kb = np.zeros((new_cap, new_cap))
            Kb[:N, :N] = self.Kb[:N, :N]
            self.Kb = Kb
        if N + 2 > self.M.shape[0]:
            grown = np.zeros((max(16, N + 2 + (N + 2) // 2), self.n))
            grown[:N] = self.M[:N]
            self.M = grown
        nc = int(self.ist[self.kern.I_NC])
        if nc + 3 > self._CT.size:
            size = nc + 3 + (nc + 3) // 2  # grown by half: the path keeps these arrays
            for name in ("_CT", "_CW", "_CY", "_CZ", "_CG"):
                old = getattr(self, name)
                new = np.empty((size, *old.shape[1:]))
                new[:nc] = old[:nc]
                setattr(self, name, new)

    def _install(self, F: np.ndarray, W: np.ndarray, Kinv: np.ndarray) -> None:
        n = self.n
        units = np.concatenate([F, n + W]).astype(np.intp)
        N = units.size
        self.unit[:N] = units
        self.pos[:] = -1
        self.pos[units] = np.arange(N)
        self.N = N
        cap = self.Kb.shape[0]
        if N + 2 > cap or (cap > 64 and N < cap // 3):  # shrunk when mostly unused
            self.Kb = np.zeros((max(16, N + N // 2 + 8),) * 2)
        self.Kb[:N, :N] = Kinv
        if self.M.shape[0] < N + 2:
            self.M = np.empty((max(16, 2 * N), n))  # rows past N are written before use
        self.M[: F.size] = self.S[F]
        self.M[F.size : N] = self.C[W]

    def resync(self) -> None:
        """Rebuild everything from (t, w, status, active): exact ``Sigma w``, the KKT
        inverse (dropping dependent rows; ray steps where ``Sigma`` has no curvature),
        one Newton correction of ``w`` on the active set, and multipliers from it."""
        self.stats.rebuilds += 1
        self.g = self.S @ self.w
        self.ist[self.kern.I_SINCE] = 0
        for _ in range(self.n + self.m + 2):
            F = np.flatnonzero(self.status == 0)
            W = self._independent_rows(F)
            Kinv, null = self._factor(F, W)
            if null is None:
                break
            u = np.zeros(self.n)
            u[F] = null
            self._crossover(u)
        else:
            raise _PathFailed("too many zero-curvature steps while rebuilding")
        assert Kinv is not None
        self._install(F, W, Kinv)
        t = self.t
        nF = F.size
        y = np.where(self.frozen, self.y, 0.0)
        held = self.C.T @ y  # the frozen rows' share of the gradient
        rhs = np.concatenate(
            [t * self.mu[F] - self.g[F] - held[F], self.dv[W] - self.C[W] @ self.w]
        )
        sol = self.Kinv @ rhs if rhs.size else rhs
        if nF:
            delta = sol[:nF]
            self.w[F] += delta
            self.g += self.M[:nF].T @ delta
        y[W] = sol[nF:]
        self.y = y
        grad = self.g - t * self.mu + self.C.T @ self.y
        self.z = np.where(self.status != 0, -grad, 0.0)

    # -- ray steps at fixed t (directions of zero curvature) --------------------------

    def _ratio(self, u: np.ndarray) -> tuple[float, int, int]:
        """Longest step along u before a constraint blocks: (alpha, kind, index)."""
        w, lb, ub = self.w, self.lb, self.ub
        umax = float(np.abs(u).max())
        eps = 1e-12 * umax
        with np.errstate(divide="ignore", invalid="ignore"):
            a_up = np.where(u > eps, (ub - w) / u, np.inf)
            a_lo = np.where(u < -eps, (w - lb) / -u, np.inf)
        a_var = np.maximum(np.minimum(a_up, a_lo), 0.0)
        a_var = np.where(np.isnan(a_var), np.inf, a_var)
        out = ~self.active
        Cu = self.C @ u
        slack = self.dv - self.C @ w
        reps = 1e-12 * umax * self.row_norm
        with np.errstate(divide="ignore", invalid="ignore"):
            a_row = np.where(out & ~self.is_eq & (Cu > reps), np.maximum(slack, 0.0) / Cu, np.inf)
        a_row = np.where(out & self.is_eq & (np.abs(Cu) > reps), 0.0, a_row)
        j = int(np.argmin(a_var)) if a_var.size else -1
        r = int(np.argmin(a_row)) if a_row.size else -1
        av = float(a_var[j]) if j >= 0 else math.inf
        ar = float(a_row[r]) if r >= 0 else math.inf
        if av <= ar:
            return av, _HIT, j
        return ar, _TIGHT, r

    def _move(self, u: np.ndarray, alpha: float, kind: int, idx: int) -> None:
        """Move w by alpha u (t fixed) and make the blocking constraint active."""
        supp = np.flatnonzero(u)
        self.w[supp] += alpha * u[supp]
        self.g += alpha * (self.S[supp].T @ u[supp])
        if kind == _HIT:
            side = 1 if u[idx] > 0 else -1
            bound = self.ub[idx] if side > 0 else self.lb[idx]
            self.g += (bound - self.w[idx]) * self.S[idx]
            self.w[idx] = bound
            self.status[idx] = side
            self.z[idx] = 0.0
        else:
            self.active[idx] = True
            self.y[idx] = 0.0
        self.stats.ray_steps += 1

    def _crossover(self, u: np.ndarray) -> None:
        """Fix one more constraint by moving along a zero-curvature direction u of the
        free block (the objective at t does not change, except that at t = 0 the move
        raises the return, towards the t -> 0+ limit of the path)."""
        gain = float(self.mu @ u)
        scale = self.mumax * float(np.abs(u).sum())
        options = []
        for sign in (1.0, -1.0):
            if self.t == 0.0 and sign * gain < -1e-12 * scale:
                continue  # at t = 0 never trade return away
            alpha, kind, idx = self._ratio(sign * u)
            options.append((-(sign * gain) if self.t == 0.0 else 0.0, alpha, sign, kind, idx))
        options = [o for o in options if math.isfinite(o[1])]
        if not options:
            raise _PathFailed("a riskless direction is unbounded: the return has no maximum")
        _, alpha, sign, kind, idx = min(options)
        self._move(sign * u, alpha, kind, idx)

    # -- active-set changes the kernel leaves to Python ----------------------------------
    # (each is complete on its own: it also gives the right answer where the kernel's
    # bordering or downdate would have applied)

    def fix(self, j: int, side: int) -> None:
        """Free variable j reached a bound and an active row now depends on the others
        on the free variables: the rebuild freezes it."""
        self.w[j] = self.ub[j] if side > 0 else self.lb[j]
        self.status[j] = side
        self.z[j] = 0.0
        self.resync()

    def tighten(self, r: int) -> None:
        """Inactive row r became tight, dependent on the active rows: rebuild."""
        self.active[r] = True
        self.y[r] = 0.0
        self.resync()

    def release(self, j: int) -> None:
        """Variable j's bound multiplier reached zero: free it. With frozen rows the
        inverse is rebuilt (a frozen row may be independent of the others now); where
        the freeing direction has no curvature, the weights move along it at fixed t
        until something blocks, then the inverse is rebuilt on the new active set."""
        n, N = self.n, self.N
        self.z[j] = 0.0
        units = self.unit[:N]
        k = self.M[:N, j].copy()
        v = self.Kinv @ k if N else np.zeros(0)
        s = float(self.S[j, j] - k @ v)
        isvar = units < n
        unorm2 = 1.0 + float(v[isvar] @ v[isvar])
        if s > ZERO_CURVATURE * self.dmax * unorm2:
            self.status[j] = 0
            self.resync()
            return
        u = np.zeros(n)
        u[units[isvar]] = -v[isvar]
        u[j] = 1.0
        if self.status[j] > 0:
            u = -u
        alpha, kind, idx = self._ratio(u)
        if not math.isfinite(alpha):
            raise _PathFailed("a riskless direction is unbounded: the return has no maximum")
        was = int(self.status[j])
        self.status[j] = 0
        self._move(u, alpha, kind, idx)
        if kind == _HIT and idx == j:
            self.status[j] = -was  # it crossed to its other bound
        self.resync()

    def drop(self, r: int) -> None:
        """Active row r's multiplier reached zero: take it out of the active set (a
        rebuild with frozen rows, which may take over its share; a ray step where the
        direction that leaves the row has no curvature)."""
        n, N = self.n, self.N
        p = int(self.pos[r + n])
        self.y[r] = 0.0
        col = self.Kinv[:, p].copy()
        units = self.unit[:N]
        isvar = units < n
        unorm2 = float(col[isvar] @ col[isvar])
        self.active[r] = False
        if -float(col[p]) > ZERO_CURVATURE * self.dmax * unorm2:
            self.resync()
            return
        u = np.zeros(n)
        u[units[isvar]] = -col[isvar]  # C_r u = -1: the row's slack grows
        alpha, kind, idx = self._ratio(u)
        if not math.isfinite(alpha):
            raise _PathFailed("a riskless direction is unbounded: the return has no maximum")
        self._move(u, alpha, kind, idx)
        self.resync()

    # -- checks and corners ------------------------------------------------------------

    def _kernel_state(self) -> tuple[np.ndarray, ...]:
        return (
            self.S, self.C, self.mu, self.dv, self.lb, self.ub, self.lbf, self.ubf,
            self.has_lb, self.has_ub, self.bscale, self.rscale, self.row_norm, self.is_eq,
            self.releasable, self.w, self.g, self.y, self.z, self.status, self.active,
            self.frozen, self.Kb, self.M, self.unit, self.pos, self.fs, self.ist,
            self._CT, self._CW, self._CY, self._CZ, self._CG,
        )  # fmt: skip

    def corner_ok(self) -> bool:
        """KKT check of the current point from the running Sigma w (O(n m)): stationarity,
        feasibility, fixed weights on their bounds, rows in the system tight, signs."""
        return bool(
            self.kern.corner_ok(
                self.C, self.mu, self.dv, self.lbf, self.ubf, self.has_lb, self.has_ub,
                self.bscale, self.rscale, self.row_norm, self.is_eq, self.releasable, self.w,
                self.g, self.y, self.z, self.status, self.active, self.fs, self.ist,
            )
        )  # fmt: skip

    def record(self) -> None:
        """Store the current point as a corner (unless it repeats the last one)."""
        self._make_room()
        self.kern.record(
            self.w, self.g, self.y, self.z, self.fs, self.ist,
            self._CT, self._CW, self._CY, self._CZ, self._CG,
        )  # fmt: skip

    def repair(self, why: str) -> None:
        """The current point failed its check: rebuild; if that fails, re-solve at t."""
        self.resync()
        if self.corner_ok():
            return
        self.resolve_here(why)
        if not self.corner_ok():
            raise _PathFailed(f"the corner at t={self.t:.6g} fails its KKT check after a re-solve")

    def resolve_here(self, why: str) -> None:
        """Re-solve the problem at the current t with ``solve_qp`` (warm-started from the
        current point) and continue from its answer and active set; counted."""
        if len(self.stats.fallbacks) >= _MAX_RESOLVES:
            raise _PathFailed(
                f"{_MAX_RESOLVES} corners needed a re-solve (last at t={self.t:.6g}: {why}); "
                "the problem is too degenerate for the tracer"
            )
        pb = _t_problem(self.pb, self.mu, self.t)
        warm = QPSolution(
            x=self.w.copy(), objective=0.0, status="optimal", solver=METHOD,
            y_eq=self.y[: self.m_eq].copy(), y_ub=self.y[self.m_eq :].copy(), z=self.z.copy(),
            active_set=ActiveSet(
                self.status < 0, self.status > 0, self.active[self.m_eq :].copy()
            ),
        )  # fmt: skip
        try:
            sol = solve_qp(pb, warm_start=warm, tol=self.tol)
        except (SolverError, InfeasibleError) as exc:
            raise _PathFailed(f"re-solving at t={self.t:.6g} failed: {exc}") from None
        self.stats.fallbacks.append(
            f"corner at t={self.t:.6g} {why}; re-solved by {sol.solver} and continued"
        )
        self.load(sol, self.t)

    # -- the main loop -----------------------------------------------------------------

    def _paused(self) -> None:
        """Called when the kernel stops at ``pause_at`` events (a seam for tests)."""

    def run(self) -> dict[str, np.ndarray]:
        kern, ist = self.kern, self.ist
        self.record()
        stalled: set[float] = set()
        failed_at, tries = -1, 0  # inaccurate KKT solves in a row at one event count
        while True:
            self._make_room()
            code = int(kern.advance(*self._kernel_state()))
            self.stats.events = int(ist[kern.I_EVENTS])
            if code == kern.END:
                break
            if code == kern.GROW:
                continue
            if code == kern.PAUSE:
                self._paused()
                continue
            if code == kern.NO_DIRECTION:  # rebuild; then re-solve; then give up
                tries = tries + 1 if failed_at == self.stats.events else 1
                failed_at = self.stats.events
                if tries == 1:
                    self.resync()
                elif tries == 2:
                    self.resolve_here("had an inaccurate KKT solve")
                else:
                    raise _PathFailed("the KKT system of the active set is too ill-conditioned")
                continue
            if code == kern.UNBOUNDED:
                raise _PathFailed(
                    "the return grows without bound along the path: bound the weights"
                )
            if code == kern.NOT_A_NUMBER:
                raise _PathFailed("a step length is not a number")
            if code == kern.MAX_EVENTS:
                raise _PathFailed(f"more than {self.max_events} events")
            if code == kern.REPAIR:
                self.repair("failed its KKT check")
            elif code == kern.STALL:
                t = self.t
                if t in stalled:
                    raise _PathFailed(f"the path stalled at t={t:.6g} (degenerate cycling)")
                stalled.add(t)  # once per t: take the solver's active set instead
                self.resolve_here("stalled (degenerate cycling)")
                ist[kern.I_ZSTEPS] = 0
            else:  # UPDATE: a rebuild or a ray step
                kind, idx = int(ist[kern.I_KIND]), int(ist[kern.I_IDX])
                if kind == _HIT:
                    self.fix(idx, int(ist[kern.I_SIDE]))
                elif kind == _TIGHT:
                    self.tighten(idx)
                elif kind == _RELEASE:
                    self.release(idx)
                else:
                    self.drop(idx)
            self.record()  # a rebuild or a ray step may have moved w at this t
        self.record()
        return self._collect()

    def _collect(self) -> dict[str, np.ndarray]:
        mu = self.mu
        nc = int(self.ist[self.kern.I_NC])
        T, W, G = self._CT[:nc], self._CW[:nc], self._CG[:nc]
        R = W @ mu
        V = np.einsum("ij,ij->i", W, G)
        D = W[1:] - W[:-1]
        E = np.einsum("ij,ij->i", G[:-1], D)
        Fq = np.einsum("ij,ij->i", G[1:] - G[:-1], D)
        return {
            "t": T, "w": W, "y": self._CY[:nc], "z": self._CZ[:nc],
            "r": R, "v": V, "e": E, "f": np.maximum(Fq, 0.0),
        }  # fmt: skip


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def _variables(
    source: LinearForm | QPProblem, mu: Any, cov: Any, cash_return: float
) -> tuple[QPProblem, np.ndarray]:
    """The constraints as a QPProblem with P = covariance, and mu over its variables."""
    if isinstance(source, LinearForm):
        nv, nf = source.n_vars, source.n_funds
        mu = np.asarray(mu, dtype=float).reshape(-1)
        cov = np.asarray(cov, dtype=float)
        if mu.shape == (nf,) and source.has_cash:
            mu = np.append(mu, float(cash_return))
        if cov.shape == (nf, nf) and source.has_cash:
            full = np.zeros((nv, nv))
            full[:nf, :nf] = cov
            cov = full
        if mu.shape != (nv,) or cov.shape != (nv, nv):
            raise ValidationError(
                f"mu and cov must cover the {nf} funds (or all {nv} variables), got shapes "
                f"{mu.shape} and {cov.shape}",
                field="mu",
            )
        names = [*source.symbols, "cash"] if source.has_cash else list(source.symbols)
        pb = QPProblem(
            P=cov, q=np.zeros(nv), A_eq=source.A_eq, b_eq=source.b_eq, A_ub=source.A_ub,
            b_ub=source.b_ub, lb=source.lb, ub=source.ub,
            row_names=[*source.eq_names, *source.ub_names], var_names=names,
        )  # fmt: skip
        return pb, mu
    if isinstance(source, QPProblem):
        n = source.n
        mu = np.asarray(mu, dtype=float).reshape(-1)
        if mu.shape != (n,):
            raise ValidationError(f"mu must have shape ({n},), got {mu.shape}", field="mu")
        if cov is None:  # checked when it was made: the t = 0 copy, not checked again
            return _t_problem(source, mu, 0.0), mu
        pb = QPProblem(
            P=np.asarray(cov, dtype=float), q=np.zeros(n), A_eq=source.A_eq, b_eq=source.b_eq,
            A_ub=source.A_ub, b_ub=source.b_ub, lb=source.lb, ub=source.ub,
            row_names=source.row_names, var_names=source.var_names,
        )  # fmt: skip
        return pb, mu
    raise ValidationError(
        f"frontier_path needs a LinearForm or a QPProblem, got {type(source).__name__}",
        field="constraints",
    )


def frontier_path(
    constraints: LinearForm | QPProblem,
    mu: Any,
    cov: Any = None,
    *,
    cash_return: float = 0.0,
    tol: float = 1e-9,
    max_events: int | None = None,
) -> FrontierPath:
    """Trace the exact efficient frontier (every corner portfolio) under linear constraints.

    Parameters
    ----------
    constraints : LinearForm or QPProblem
        The constraint rows and bounds (a QPProblem's ``q`` is ignored, and its ``P`` is
        used when ``cov`` is None).
    mu : array_like, shape (n,)
        Expected returns of the funds (a LinearForm with cash: of the funds, the cash
        entry is ``cash_return``; or of every variable).
    cov : array_like, shape (n, n)
        Covariance of the funds (a LinearForm with cash: cash gets zero variance; or of
        every variable). Positive semidefinite; it may be singular.
    cash_return : float
        Expected return of the cash variable of a LinearForm that has one.
    tol : float
        KKT tolerance of every corner and point (as in ``solve_qp``).
    max_events : int, optional
        Cap on active-set changes (default ``20 (n + m) + 200``).

    Returns
    -------
    FrontierPath

    Raises
    ------
    InfeasibleError
        The constraints admit no portfolio.
    SolverError
        The path could not be traced (the message says why); callers fall back to
        solving one QP per point.
    ValidationError
        Inputs of the wrong shape, or not finite.
    """
    t0 = time.perf_counter()
    pb, mu = _variables(constraints, mu, cov, cash_return)
    if not np.isfinite(mu).all():
        raise ValidationError("mu has NaN or infinite entries", field="mu")
    m = pb.m_eq + pb.m_ub
    cap = int(max_events) if max_events is not None else 20 * (pb.n + m) + 200
    first = solve_qp(pb, tol=tol)  # min variance; raises InfeasibleError when infeasible
    tracer = _Tracer(pb, mu, tol, cap)
    try:
        tracer.load(first, 0.0)
        if not tracer.corner_ok():
            tracer.repair("(the minimum-variance portfolio) failed its KKT check")
        data = tracer.run()
    except _PathFailed as exc:
        raise SolverError(
            f"the efficient frontier could not be traced exactly ({exc}); solve it point "
            "by point instead",
            status="failed",
            solver=METHOD,
        ) from None
    tracer.stats.trace_time = time.perf_counter() - t0
    return FrontierPath(pb, mu, data, tracer.stats, tol)


def warm_up() -> float:
    """Compile the compiled kernels (or load them from numba's on-disk cache): fingerprint
    a three-asset covariance, solve a QP on it with the active-set kernel, trace its
    frontier, and find the risk-parity weights of 65 assets; returns the seconds it took.

    The first use after an install compiles for several seconds; the app calls this on
    a background thread after its window is shown, so that the user's first optimization
    does not wait for the compiler.
    """
    t0 = time.perf_counter()
    cov = np.array([[0.04, 0.006, 0.0], [0.006, 0.09, 0.0], [0.0, 0.0, 0.0]])
    pb = QPProblem(
        P=cov, q=np.zeros(3), A_eq=np.ones((1, 3)), b_eq=[1.0],
        A_ub=np.array([[1.0, 1.0, 0.0]]), b_ub=[0.9], lb=0.0, ub=0.8,
    )  # fmt: skip
    from core.optimization.matvec_kernel import products
    from core.optimization.risk_parity import SMALL_N, risk_budget_weights

    products(cov, np.ones(3), np.ones(3))  # the engine's one-pass covariance fingerprint
    n = SMALL_N + 1  # the compiled Newton steps of risk budgeting (above SMALL_N assets)
    risk_budget_weights(np.full((n, n), 0.01) + np.diag(np.linspace(0.01, 0.05, n)))
    solve_qp(pb, solvers=["active_set"])  # the compiled primal-dual iteration
    frontier_path(pb, np.array([0.05, 0.08, 0.02])).points(3)  # the tracer, the check
    return time.perf_counter() - t0
