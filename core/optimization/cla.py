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
import scipy.linalg.blas as _blas
import scipy.linalg.lapack as _lapack

from core.errors import InfeasibleError, SolverError, ValidationError
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
        out: list[PathPoint] = []
        for i in range(T.size):
            kkt = {key: float(val[i]) for key, val in res.items()}
            pt = PathPoint(
                t=float(T[i]), weights=X[i].copy(), expected_return=float(X[i] @ mu),
                variance=float(kkt.pop("variance")), y_eq=Y[i, :m_eq].copy(),
                y_ub=Y[i, m_eq:].copy(), z=Z[i].copy(), kkt=kkt, segment=int(k[i]),
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
    P, lb, ub = pb.P, pb.lb, pb.ub
    A_eq, b_eq, A_ub, b_ub = pb.A_eq, pb.b_eq, pb.A_ub, pb.b_ub
    assert A_eq is not None and b_eq is not None and A_ub is not None and b_ub is not None
    assert lb is not None and ub is not None
    p = X.shape[0]
    PX = X @ P  # P is symmetric
    xPx = np.einsum("ij,ij->i", X, PX)
    qx = -T * (X @ mu)
    fin_lb, fin_ub = np.isfinite(lb), np.isfinite(ub)
    lbf, ubf = np.where(fin_lb, lb, 0.0), np.where(fin_ub, ub, 0.0)

    def rowmax(A: np.ndarray) -> np.ndarray:
        return A.max(axis=1) if A.shape[1] else np.zeros(p)

    r_eq = X @ A_eq.T - b_eq
    r_ub = X @ A_ub.T - b_ub
    v_lb = np.where(fin_lb, lbf - X, 0.0)
    v_ub = np.where(fin_ub, X - ubf, 0.0)
    viol = [np.abs(r_eq), np.maximum(r_ub, 0.0), np.maximum(v_lb, 0.0), np.maximum(v_ub, 0.0)]
    denom = [
        np.maximum(1.0, np.abs(b_eq)),
        np.maximum(1.0, np.abs(b_ub)),
        np.maximum(1.0, np.abs(lbf)),
        np.maximum(1.0, np.abs(ubf)),
    ]
    primal_abs = np.max(np.stack([rowmax(v) for v in viol]), axis=0)
    primal = np.max(np.stack([rowmax(v / d) for v, d in zip(viol, denom, strict=True)]), axis=0)

    Aty_eq = Yeq @ A_eq
    Aty_ub = Yub @ A_ub
    resid = PX - T[:, None] * mu + Aty_eq + Aty_ub + Z
    xmax = np.abs(X).max(axis=1)
    pdiag = max(float(np.diagonal(P).max()), 0.0)
    gscale = np.max(
        np.stack(
            [
                pdiag * xmax,
                np.abs(PX).max(axis=1),
                np.abs(T) * float(np.abs(mu).max()),
                np.abs(Aty_eq).max(axis=1),
                np.abs(Aty_ub).max(axis=1),
                np.abs(Z).max(axis=1),
            ]
        ),
        axis=0,
    )
    gscale = np.where(gscale > 0.0, gscale, 1.0)
    stationarity = np.abs(resid).max(axis=1) / gscale

    z_up = np.maximum(Z, 0.0)
    z_lo = np.maximum(-Z, 0.0)
    dual = np.zeros(p)
    if A_ub.shape[0]:
        row_norm = np.abs(A_ub).max(axis=1)
        dual = np.maximum(dual, (np.maximum(-Yub, 0.0) * row_norm).max(axis=1))
    dual = np.maximum(dual, np.where(fin_ub, 0.0, z_up).max(axis=1))
    dual = np.maximum(dual, np.where(fin_lb, 0.0, z_lo).max(axis=1))
    dual = dual / gscale

    oscale = np.maximum(np.abs(xPx) + np.abs(qx), gscale * xmax)
    oscale = np.where(oscale > 0.0, oscale, 1.0)
    s_ub = b_ub - X @ A_ub.T
    comp = np.zeros(p)
    if A_ub.shape[0]:
        comp = np.abs(np.maximum(Yub, 0.0) * s_ub).max(axis=1)
    comp = np.maximum(comp, np.abs(np.where(fin_ub, z_up * (ubf - X), 0.0)).max(axis=1))
    comp = np.maximum(comp, np.abs(np.where(fin_lb, z_lo * (X - lbf), 0.0)).max(axis=1))
    complementarity = comp / oscale
    bound_term = np.where(fin_ub, z_up * ubf, 0.0).sum(axis=1) - np.where(
        fin_lb, z_lo * lbf, 0.0
    ).sum(axis=1)
    gap_abs = xPx + qx + Yeq @ b_eq + Yub @ b_ub + bound_term
    return {
        "primal": primal,
        "primal_abs": primal_abs,
        "dual": dual,
        "stationarity": stationarity,
        "complementarity": complementarity,
        "gap": np.abs(gap_abs) / oscale,
        "objective": 0.5 * xPx + qx,
        "objective_scale": oscale,
        "variance": xPx,
    }


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
    order of ``unit`` (variable j is ``j``, row r is ``n + r``); ``Kinv`` is the inverse
    of its matrix and row p of ``M`` is ``Sigma[j]`` for a variable unit and ``C[r]``
    for a row unit, so that ``M' sol`` gives ``Sigma dw`` and ``C' dy`` in one product.
    """

    def __init__(self, pb: QPProblem, mu: np.ndarray, tol: float, max_events: int) -> None:
        assert pb.A_eq is not None and pb.A_ub is not None and pb.lb is not None
        assert pb.b_eq is not None and pb.b_ub is not None and pb.ub is not None
        self.pb = pb
        self.S = pb.P
        self.mu = mu
        self.n = n = pb.n
        self.m_eq = pb.m_eq
        self.C = np.ascontiguousarray(np.vstack([pb.A_eq, pb.A_ub]))
        self.dv = np.concatenate([pb.b_eq, pb.b_ub])
        self.m = m = self.C.shape[0]
        self.lb, self.ub = pb.lb, pb.ub
        self.eqfix = self.lb == self.ub
        self.is_eq = np.arange(m) < self.m_eq
        self.row_norm = np.maximum(np.abs(self.C).max(axis=1), _TINY) if m else np.zeros(0)
        self.releasable = ~self.eqfix
        fin_lb, fin_ub = np.isfinite(self.lb), np.isfinite(self.ub)
        self.lbf = np.where(fin_lb, self.lb, 0.0)
        self.ubf = np.where(fin_ub, self.ub, 0.0)
        self.has_lb = fin_lb.astype(float)  # 1.0 where the bound exists
        self.has_ub = fin_ub.astype(float)
        self.bscale = np.maximum(1.0, np.maximum(np.abs(self.lbf), np.abs(self.ubf)))
        self.rscale = np.maximum(1.0, np.abs(self.dv))
        self.dmax = max(float(np.diagonal(self.S).max()), _TINY)
        self.mumax = max(float(np.abs(mu).max()), _TINY)
        self.tol = tol
        self.max_events = max_events
        self.stats = PathStats()
        # state
        self.t = 0.0
        self.w = np.zeros(n)
        self.g = np.zeros(n)
        self.y = np.zeros(m)
        self.z = np.zeros(n)
        self.status = np.zeros(n, dtype=np.int8)
        self.active = np.zeros(m, dtype=bool)
        # active rows left out of the KKT system because they depend on the others on
        # the free variables (duplicates, a vertex): their multipliers are held constant
        self.frozen = np.zeros(m, dtype=bool)
        # KKT inverse and unit bookkeeping
        self.N = 0
        self.unit = np.zeros(0, dtype=np.intp)
        self.pos = np.full(n + m, -1, dtype=np.intp)
        # the inverse lives in the top-left N x N block of a larger buffer and is updated
        # in place (allocating an N x N array per event costs more than the update)
        self.Kb = np.zeros((16, 16))
        self.Ab = np.zeros((16, 16))  # scratch for |Kinv|
        self.M = np.zeros((16, n))
        self._lay: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        # corners
        self._T: list[float] = []
        self._W: list[np.ndarray] = []
        self._Y: list[np.ndarray] = []
        self._Z: list[np.ndarray] = []
        self._G: list[np.ndarray] = []
        self.since_exact = 0
        self.dscale = 0.0  # largest rounding bound of a weight's rate (last direction)
        self.cty_max = 0.0  # largest entry of C' dy (last direction)

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
        else:
            CF = self.C[np.ix_(W, F)]
            norms = np.maximum(np.abs(CF).max(axis=1), _TINY)
            weight = np.where(W < self.m_eq, 1e3, 1.0) / norms
            _, R, piv = sla.qr((CF * weight[:, None]).T, mode="economic", pivoting=True)
            diag = np.abs(np.diagonal(R))
            rank = int((diag > 1e-10 * max(float(diag[0]), _TINY)).sum()) if diag.size else 0
            keep = np.sort(piv[:rank])
        drop = np.setdiff1d(np.arange(W.size), keep)
        self.frozen[W[drop]] = True
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

    def _layout(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Positions of the variable and row units, and their indices (cached)."""
        if self._lay is None:
            units = self.unit[: self.N]
            isvar = units < self.n
            vpos = np.flatnonzero(isvar)
            rpos = np.flatnonzero(~isvar)
            self._lay = (vpos, rpos, units[vpos], units[rpos] - self.n)
        return self._lay

    @property
    def Kinv(self) -> np.ndarray:
        """The inverse of the KKT matrix over the current units (a view, shape (N, N))."""
        return self.Kb[: self.N, : self.N]

    def _reserve(self, N: int, shrink: bool = False) -> None:
        """Buffers for at least N units (grown by half again; shrunk when mostly unused,
        since the in-place rank-one update runs over the whole buffer)."""
        cap = self.Kb.shape[0]
        if N <= cap and not (shrink and cap > 64 and N < cap // 3):
            return
        new_cap = max(16, N + N // 2 + 8)
        Kb = np.zeros((new_cap, new_cap))
        k = min(self.N, N, cap)
        Kb[:k, :k] = self.Kb[:k, :k]
        self.Kb = Kb
        self.Ab = np.zeros((new_cap, new_cap))

    def _rank1(self, x: np.ndarray, alpha: float) -> None:
        """Kinv += alpha x x' in place (x has N entries)."""
        cap = self.Kb.shape[0]
        xp = np.zeros(cap)
        xp[: x.size] = x
        # BLAS dger on the transposed (Fortran-ordered) view writes into Kb itself
        _blas.dger(alpha, xp, xp, a=self.Kb.T, overwrite_a=1)

    def _install(self, F: np.ndarray, W: np.ndarray, Kinv: np.ndarray) -> None:
        n = self.n
        self._lay = None
        self.unit = np.concatenate([F, n + W]).astype(np.intp)
        N = self.unit.size
        self.pos[:] = -1
        self.pos[self.unit] = np.arange(N)
        self.N = 0
        self._reserve(N, shrink=True)
        self.N = N
        self.Kb[:N, :N] = Kinv
        cap = max(16, 2 * N)
        if self.M.shape[0] < cap:
            self.M = np.zeros((cap, n))
        self.M[: F.size] = self.S[F]
        self.M[F.size : N] = self.C[W]

    def resync(self) -> None:
        """Rebuild everything from (t, w, status, active): exact ``Sigma w``, the KKT
        inverse (dropping dependent rows; ray steps where ``Sigma`` has no curvature),
        one Newton correction of ``w`` on the active set, and multipliers from it."""
        self.stats.rebuilds += 1
        self.g = self.S @ self.w
        self.since_exact = 0
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

    # -- one segment -------------------------------------------------------------------

    def direction(self) -> tuple[np.ndarray, ...] | None:
        """(dw, dy, dz, Sigma dw, C dw) per unit t on the current active set, or None when
        the solve is not accurate (the caller rebuilds).

        ``dw`` solves ``[Sigma_FF C_WF'; C_WF 0] [dw_F; dy_W] = [mu_F; 0]`` (one product
        with the maintained inverse, refined against the residual); ``dz`` follows from
        stationarity on the fixed weights: ``dz = mu - Sigma dw - C' dy``.
        """
        n, N = self.n, self.N
        vpos, rpos, vidx, ridx = self._layout()
        rhs = np.zeros(N)
        rhs[vpos] = self.mu[vidx]
        Kinv = self.Kinv
        sol = Kinv @ rhs if N else np.zeros(0)
        # componentwise rounding bound of sol; weight rates below 1e-12 of the largest
        # bound are zero, not events (scale-wide: the bound of one entry misses the
        # rounding of Kinv itself, e.g. when C_WF is square and dw is exactly zero)
        if N:
            absK = np.abs(Kinv, out=self.Ab[:N, :N])
            noise = absK @ np.abs(rhs)
        else:
            noise = np.zeros(0)
        dscale = float(noise[vpos].max()) if vpos.size else 0.0
        # as many independent active rows as free weights: dw = 0 by structure (there the
        # bound is rounding too, since the free block of Kinv is zero in exact arithmetic)
        zero = vpos.size <= rpos.size or bool((np.abs(sol[vpos]) <= 1e-12 * dscale).all())
        if zero:
            sol[vpos] = 0.0
        M = self.M[:N]
        sv = np.zeros(N)
        dy = np.zeros(self.m)
        e_var = e_row = math.inf
        for _ in range(3):
            # Sigma dw from the variable rows of M (the row units' entries zeroed), and
            # C' dy from C itself: two products with one vector each are faster than
            # one with two columns
            sv[vpos] = sol[vpos]
            Sd = sv @ M if N else np.zeros(n)
            dy[ridx] = sol[rpos]
            Cty = dy @ self.C
            d = np.zeros(n)
            d[vidx] = sol[vpos]
            Cd = self.C @ d
            r_var = Sd[vidx] + Cty[vidx] - rhs[vpos]
            r_row = Cd[ridx]
            gs = max(float(np.abs(rhs).max()) if N else 0.0, float(np.abs(Sd).max()),
                     float(np.abs(Cty).max()), _TINY)  # fmt: skip
            # rows against the size of dw itself (tau * |C dw| is drift in the rows, put
            # right after each step), floored where dw is small by cancellation
            dm = max(float(np.abs(d).max()), 1e-6 * dscale)
            sr = max(dm * float(self.row_norm.max()) if self.m else 0.0, _TINY)
            e_var = float(np.abs(r_var).max()) / gs if vpos.size else 0.0
            e_row = float(np.abs(r_row).max()) / sr if rpos.size and not zero else 0.0
            err = max(e_var, e_row)
            if err <= 1e-14:
                break
            res = np.zeros(N)
            res[vpos] = r_var
            res[rpos] = r_row
            sol = sol - Kinv @ res
            if zero:
                sol[vpos] = 0.0
        if e_var > 1e-10 or e_row > 1e-8:  # the rows are put right after each step anyway
            return None
        if not zero:
            tiny_v = np.abs(sol[vpos]) <= 1e-12 * dscale
            d[vidx[tiny_v]] = 0.0
        dy = np.zeros(self.m)
        yscale = float(noise[rpos].max()) if rpos.size else 0.0
        dy[ridx] = np.where(np.abs(sol[rpos]) <= 1e-12 * yscale, 0.0, sol[rpos])
        dz = self.mu - Sd - Cty
        dz[self.status == 0] = 0.0
        self.cty_max = float(np.abs(Cty).max())
        self.dscale = dscale
        return d, dy, dz, Sd, Cd

    def next_event(
        self, d: np.ndarray, dy: np.ndarray, dz: np.ndarray, Sd: np.ndarray, Cd: np.ndarray
    ) -> tuple[float, int, int]:
        """Step length to the first event and the event: (tau, kind, index).

        Ties go to the first event found (bound hits, then rows, then releases); the
        others follow as steps of length zero.
        """
        vidx, ridx = self._layout()[2:]
        w, z, y = self.w, self.z, self.y
        best = (math.inf, _HIT, -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            # free weights reaching a bound (only the free ones move)
            dF = d[vidx]
            wF = w[vidx]
            tv = np.where(
                dF < 0.0,
                (wF - self.lb[vidx]) / -dF,
                np.where(dF > 0.0, (self.ub[vidx] - wF) / dF, np.inf),
            )
            if tv.size:
                k = int(np.argmin(tv))
                best = min(best, (max(float(tv[k]), 0.0), _HIT, int(vidx[k])))
            # rows outside the system becoming tight (an equality row outside it is
            # dependent on the others; if it would move, it must join at once)
            out = ~self.active
            if out.any():
                reps = 1e-12 * max(float(np.abs(dF).max()) if dF.size else 0.0, self.dscale)
                reps = reps * self.row_norm
                slack = self.dv - self.C @ w
                tr = np.where(out & ~self.is_eq & (Cd > reps), slack / Cd, np.inf)
                tr = np.where(out & self.is_eq & (np.abs(Cd) > reps), 0.0, tr)
                k = int(np.argmin(tr))
                best = min(best, (max(float(tr[k]), 0.0), _TIGHT, k))
            # bound multipliers reaching zero: z <= 0 at a lower bound, >= 0 at an upper
            # one, so the wrong-signed rates are those with status * dz < 0
            zeps = 1e-12 * max(self.mumax, float(np.abs(Sd).max()), self.cty_max)
            cand = np.flatnonzero((self.status * dz < -zeps) & self.releasable)
            if cand.size:
                tz = -z[cand] / dz[cand]
                k = int(np.argmin(tz))
                best = min(best, (max(float(tz[k]), 0.0), _RELEASE, int(cand[k])))
            # row multipliers reaching zero
            if ridx.size:
                dyr = dy[ridx]
                ty = np.where((dyr < 0.0) & ~self.is_eq[ridx], -y[ridx] / dyr, np.inf)
                k = int(np.argmin(ty))
                best = min(best, (max(float(ty[k]), 0.0), _DROP, int(ridx[k])))
        tau, kind, idx = best
        if math.isnan(tau):
            raise _PathFailed("a step length is not a number")
        return tau, kind, idx

    # -- active-set updates --------------------------------------------------------------

    def _remove(self, p: int) -> float:
        """Remove unit at position p from the inverse; returns the pivot used."""
        N = self.N
        last = N - 1
        K = self.Kinv
        if p != last:  # swap p and last in every structure
            K[[p, last], :] = K[[last, p], :]
            K[:, [p, last]] = K[:, [last, p]]
            self.M[[p, last]] = self.M[[last, p]]
            up, ul = self.unit[p], self.unit[last]
            self.unit[p], self.unit[last] = ul, up
            self.pos[ul], self.pos[up] = p, last
        self._lay = None
        piv = float(K[last, last])
        c = K[:last, last].copy()
        self._rank1(c, -1.0 / piv)  # block-inverse downdate of the leading block
        self.pos[self.unit[last]] = -1
        self.unit = self.unit[:last]
        self.N = last
        self._reserve(last, shrink=True)
        return piv

    def _add(self, u: int, k: np.ndarray, diag: float, row: np.ndarray) -> None:
        """Append unit u with KKT column k (N,) and diagonal entry diag (bordering)."""
        N = self.N
        self._lay = None
        v = self.Kinv @ k if N else np.zeros(0)
        s = diag - float(k @ v)
        self._reserve(N + 1)
        self._rank1(v, 1.0 / s)  # bordering: the leading block first
        Kb = self.Kb
        Kb[:N, N] = -v / s
        Kb[N, :N] = -v / s
        Kb[N, N] = 1.0 / s
        if self.M.shape[0] <= N:
            grown = np.zeros((2 * self.M.shape[0] + 16, self.n))
            grown[:N] = self.M[:N]
            self.M = grown
        self.M[N] = row
        self.unit = np.append(self.unit, u)
        self.pos[u] = N
        self.N = N + 1

    def _border(self, j: int) -> tuple[np.ndarray, np.ndarray, float]:
        """KKT column of variable j against the current units, K^-1 times it, and the
        Schur complement (the curvature along the direction that frees j)."""
        N = self.N
        k = self.M[:N, j].copy()
        v = self.Kinv @ k if N else np.zeros(0)
        return k, v, float(self.S[j, j] - k @ v)

    def fix(self, j: int, side: int) -> None:
        """Free variable j reached a bound."""
        bound = self.ub[j] if side > 0 else self.lb[j]
        p = int(self.pos[j])
        self.g += (bound - self.w[j]) * self.M[p]
        self.w[j] = bound
        self.status[j] = side
        self.z[j] = 0.0
        piv = float(self.Kinv[p, p])
        if piv > 1e-14 * float(np.abs(self.Kinv[p]).max()):
            self._remove(p)
        else:  # an active row now depends on the others: the rebuild freezes it
            self.resync()

    def tighten(self, r: int) -> None:
        """Inactive row r became tight."""
        N, n = self.N, self.n
        units = self.unit[:N]
        isvar = units < n
        k = np.zeros(N)
        k[isvar] = self.C[r, units[isvar]]
        v = self.Kinv @ k if N else np.zeros(0)
        s = -float(k @ v)
        self.active[r] = True
        self.y[r] = 0.0
        if not abs(s) > 1e-13 * float(np.abs(k).max() * np.abs(v).max()) or N == 0:
            self.resync()  # dependent on the active rows: the rebuild sorts it out
            return
        self._add(n + r, k, 0.0, self.C[r])

    def release(self, j: int) -> None:
        """Variable j's bound multiplier reached zero: free it."""
        n = self.n
        self.z[j] = 0.0
        k, v, s = self._border(j)
        units = self.unit[: self.N]
        isvar = units < n
        unorm2 = 1.0 + float(v[isvar] @ v[isvar])
        if s > ZERO_CURVATURE * self.dmax * unorm2:
            self.status[j] = 0
            self._add(j, k, float(self.S[j, j]), self.S[j])
            if self.frozen.any():
                self.resync()  # a frozen row may be independent of the others now
            return
        # no curvature along the freeing direction: move along it at fixed t until
        # something blocks, then rebuild on the new active set
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
        """Active row r's multiplier reached zero: take it out of the active set."""
        n = self.n
        p = int(self.pos[r + n])
        self.y[r] = 0.0
        col = self.Kinv[:, p].copy()
        units = self.unit[: self.N]
        isvar = units < n
        unorm2 = float(col[isvar] @ col[isvar])
        piv = float(col[p])
        if -piv > ZERO_CURVATURE * self.dmax * unorm2:
            self._remove(p)
            self.active[r] = False
            if self.frozen.any():
                self.resync()  # a frozen row may take over the dropped row's share
            return
        u = np.zeros(n)
        u[units[isvar]] = -col[isvar]  # C_r u = -1: the row's slack grows
        self.active[r] = False
        alpha, kind, idx = self._ratio(u)
        if not math.isfinite(alpha):
            raise _PathFailed("a riskless direction is unbounded: the return has no maximum")
        self._move(u, alpha, kind, idx)
        self.resync()

    def _restore_rows(self) -> None:
        """Put w back on its active rows after a step (long steps at large t would
        otherwise leave rounding drift of tau * |C dw| ~ 1e-11 in the budget, and near the
        max-return end the variance moves 2 t times any return error)."""
        N, n = self.N, self.n
        units = self.unit[:N]
        rpos = np.flatnonzero(units >= n)
        if rpos.size == 0:
            return
        rows = units[rpos] - n
        r = self.dv[rows] - self.C[rows] @ self.w
        if not float(np.abs(r).max()) > 0.0:
            return
        corr = self.Kinv[:, rpos] @ r  # solves K [dw; dy] = [0; r]
        vpos = np.flatnonzero(units < n)
        self.w[units[vpos]] += corr[vpos]
        self.g += self.M[vpos].T @ corr[vpos]
        self.y[rows] += corr[rpos]

    # -- checks and corners ------------------------------------------------------------

    def corner_ok(self) -> bool:
        """KKT check of the current point from the running Sigma w (O(n m)): stationarity,
        feasibility, fixed weights on their bounds, rows in the system tight, signs."""
        t, w, y, z, g, st = self.t, self.w, self.y, self.z, self.g, self.status
        Cty = self.C.T @ y
        gscale = max(
            self.dmax * float(np.abs(w).max()), float(np.abs(g).max()), t * self.mumax,
            float(np.abs(Cty).max()), float(np.abs(z).max()), _TINY,
        )  # fmt: skip
        tol = 0.1 * self.tol
        if float(np.abs(g - t * self.mu + Cty + z).max()) > tol * gscale:
            return False
        if self.m:
            r = (self.C @ w - self.dv) / self.rscale
            viol = np.where(self.is_eq | self.active, np.abs(r), np.maximum(r, 0.0))
            if float(viol.max()) > tol:
                return False
            if float((-y * self.row_norm)[self.m_eq :].max(initial=0.0)) > tol * gscale:
                return False
        # free weights inside their bounds, fixed ones on them
        bnd = np.where(st < 0, self.lbf, self.ubf)
        off = np.where(
            st == 0,
            np.maximum(np.maximum((self.lbf - w) * self.has_lb, (w - self.ubf) * self.has_ub), 0.0),
            np.abs(w - bnd),
        )
        if float((off / self.bscale).max()) > tol:
            return False
        # bound multipliers: zero on free weights, signed by the side elsewhere
        bad_z = np.where(st == 0, np.abs(z), np.where(self.releasable, -st * z, 0.0))
        return float(bad_z.max()) <= tol * gscale

    def record(self) -> None:
        """Store the current point as a corner (unless it repeats the last one)."""
        if self._W and self._T[-1] == self.t and np.array_equal(self._W[-1], self.w):
            return
        if self._T and self.t == 0.0 and self._T[-1] == 0.0:
            # several points at t = 0: only the last (highest return) is on the path
            self._T.pop()
            self._W.pop()
            self._Y.pop()
            self._Z.pop()
            self._G.pop()
        self._T.append(self.t)
        self._W.append(self.w.copy())
        self._Y.append(self.y.copy())
        self._Z.append(self.z.copy())
        self._G.append(self.g.copy())

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

    def run(self) -> dict[str, np.ndarray]:
        self.record()
        zero_steps = 0
        zero_limit = 2 * (self.n + self.m) + 20
        stalled: set[float] = set()
        while True:
            if self.stats.events >= self.max_events:
                raise _PathFailed(f"more than {self.max_events} events")
            direction = self.direction()
            if direction is None:
                self.resync()
                direction = self.direction()
            if direction is None:
                self.resolve_here("had an inaccurate KKT solve")
                direction = self.direction()
                if direction is None:
                    raise _PathFailed("the KKT system of the active set is too ill-conditioned")
            d, dy, dz, Sd, Cd = direction
            tau, kind, idx = self.next_event(d, dy, dz, Sd, Cd)
            if not math.isfinite(tau):
                if float(np.abs(d).max()) > 0.0:
                    raise _PathFailed(
                        "the return grows without bound along the path: bound the weights"
                    )
                break  # nothing changes any more: the max-return end of the path
            self.stats.events += 1
            if tau > 0.0:
                zero_steps = 0
                self.t += tau
                self.w += tau * d
                self.g += tau * Sd
                self.y += tau * dy
                self.z += tau * dz
                self._restore_rows()
                if kind == _HIT:  # land exactly on the bound before recording the corner
                    bound = self.ub[idx] if d[idx] > 0.0 else self.lb[idx]
                    self.g += (bound - self.w[idx]) * self.S[idx]
                    self.w[idx] = bound
                self.since_exact += 1
                if self.since_exact >= _EXACT_EVERY:
                    self.g = self.S @ self.w
                    self.since_exact = 0
                if not self.corner_ok():
                    self.repair("failed its KKT check")
                    self.record()
                    continue
                self.record()
            else:
                zero_steps += 1
                if zero_steps > zero_limit:
                    if self.t in stalled:
                        raise _PathFailed(
                            f"the path stalled at t={self.t:.6g} (degenerate cycling)"
                        )
                    stalled.add(self.t)  # once per t: take the solver's active set instead
                    self.resolve_here("stalled (degenerate cycling)")
                    zero_steps = 0
                    self.record()
                    continue
            if kind == _HIT:
                self.fix(idx, -1 if d[idx] < 0.0 else 1)
            elif kind == _TIGHT:
                self.tighten(idx)
            elif kind == _RELEASE:
                self.release(idx)
            else:
                self.drop(idx)
            self.record()  # a ray step may have moved w at this t
        self.record()
        return self._collect()

    def _collect(self) -> dict[str, np.ndarray]:
        mu = self.mu
        T = np.array(self._T)
        W = np.array(self._W)
        G = np.array(self._G)
        R = W @ mu
        V = np.einsum("ij,ij->i", W, G)
        D = W[1:] - W[:-1]
        E = np.einsum("ij,ij->i", G[:-1], D)
        Fq = np.einsum("ij,ij->i", G[1:] - G[:-1], D)
        return {
            "t": T, "w": W, "y": np.array(self._Y), "z": np.array(self._Z),
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
        P = source.P if cov is None else np.asarray(cov, dtype=float)
        pb = QPProblem(
            P=P, q=np.zeros(n), A_eq=source.A_eq, b_eq=source.b_eq, A_ub=source.A_ub,
            b_ub=source.b_ub, lb=source.lb, ub=source.ub, row_names=source.row_names,
            var_names=source.var_names,
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
