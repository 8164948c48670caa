"""Answer checking: every answer a column returns is checked while it is timed.

Mean-variance answers (min variance, frontier points, max Sharpe, backtest months) are
checked two ways:

* **KKT certificate** of the answer itself: the active set is read off ``x``, the
  multipliers are recovered by (bounded) least squares on the free variables (by an LP
  at a vertex, where that is blind), and :func:`core.optimization.qp.check_kkt` measures
  the residuals. A certified answer is
  optimal to the printed bound, whatever solver produced it.
* **Reference optimum**: the same problem written in cvxpy and solved by Clarabel at
  1e-10 (HiGHS first above 300 assets, where it is faster and exact), itself certified.
  Single solves at n <= 1000 always get one; sequences (frontiers, backtests) get one only
  for answers whose own certificate fails, to measure how far off they are.

Constraints are checked to ``FEAS_TOL`` in absolute terms (weights are fractions). A
violation, an exception, or a relative objective error above ``WRONG_TOL`` makes the
answer a failure; an error above ``EXACT_TOL`` is shown as inexact.

Max Sharpe is certified through its first-order condition: the Sharpe ratio is
pseudo-concave, so ``x`` maximises it over the feasible set iff ``x`` satisfies the KKT
conditions of the convex QP ``min 0.5 s w' Sigma w - mu' w`` with ``s = mu'x / x' Sigma x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.problems import LinearSpec

#: Constraints must hold to this (absolute, fractions of portfolio value).
FEAS_TOL = 1e-8
#: Relative objective error above this is "inexact" (the target for StackOpt).
EXACT_TOL = 1e-8
#: Relative objective error above this is a wrong answer (a failure, not a time).
WRONG_TOL = 1e-3
#: KKT residual (scale-free, see check_kkt) at which a certificate is accepted.
CERT_TOL = 1e-9
#: Distance from a bound or row (after row scaling) at which it counts as active.
ACTIVE_TOL = 1e-9


@dataclass
class Tolerances:
    feas: float = FEAS_TOL
    exact: float = EXACT_TOL
    wrong: float = WRONG_TOL


@dataclass
class Check:
    """Verdict on one call's answer (which may hold many portfolios).

    Attributes
    ----------
    ok : bool
        False for a failure (exception, constraint violated, objective wrong).
    error : float
        Largest relative objective error over the answer's portfolios (>= 0; NaN when
        not measured). For certified answers without a reference: the certificate bound.
    violation : float
        Largest absolute constraint violation.
    reason : str
        Why it failed (empty when ok).
    method : str
        How it was checked ('kkt', 'reference', 'kkt+reference', 'closed form', ...).
    count : int
        Number of portfolios (points, months) checked.
    notes : list of str
        Anything worth reporting (a reference that the answer beat, a convention gap).
    """

    ok: bool
    error: float = float("nan")
    violation: float = 0.0
    reason: str = ""
    method: str = ""
    count: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def inexact(self) -> bool:
        return self.ok and math.isfinite(self.error) and self.error > EXACT_TOL


def fail(reason: str, **kw: Any) -> Check:
    return Check(ok=False, reason=reason, **kw)


def combine(checks: list[Check]) -> Check:
    """One verdict from many (frontier points, backtest months): the worst of each."""
    if not checks:
        return fail("no portfolio returned", count=0)
    bad = [(i, c) for i, c in enumerate(checks) if not c.ok]
    errs = [c.error for c in checks if math.isfinite(c.error)]
    notes = sorted({n for c in checks for n in c.notes})
    methods = sorted({c.method for c in checks if c.method})
    out = Check(
        ok=not bad,
        error=max(errs) if errs else float("nan"),
        violation=max(c.violation for c in checks),
        method="+".join(methods),
        count=len(checks),
        notes=notes,
    )
    if bad:
        i, c = bad[0]
        out.reason = f"{len(bad)} of {len(checks)} wrong; #{i}: {c.reason}"
    return out


# --------------------------------------------------------------------------------------
# KKT certificate of an arbitrary answer
# --------------------------------------------------------------------------------------
@dataclass
class QPData:
    """``min 0.5 x'Px + q'x`` under a LinearSpec plus optional extra ``<=`` rows."""

    P: np.ndarray
    q: np.ndarray
    A_eq: np.ndarray
    b_eq: np.ndarray
    A_ub: np.ndarray
    b_ub: np.ndarray
    lb: np.ndarray
    ub: np.ndarray

    @classmethod
    def from_spec(
        cls,
        P: np.ndarray,
        q: np.ndarray,
        spec: LinearSpec,
        extra_rows: np.ndarray | None = None,
        extra_rhs: np.ndarray | None = None,
    ) -> QPData:
        A_ub, b_ub = spec.A_ub, spec.b_ub
        if extra_rows is not None and extra_rhs is not None:
            A_ub = np.vstack([A_ub, extra_rows])
            b_ub = np.concatenate([b_ub, extra_rhs])
        return cls(P, q, spec.A_eq, spec.b_eq, A_ub, b_ub, spec.lb, spec.ub)

    def objective(self, x: np.ndarray) -> float:
        return float(0.5 * x @ (self.P @ x) + self.q @ x)


def _active(d: QPData, x: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    row_scale = np.maximum(1.0, np.maximum(np.abs(d.b_ub), np.abs(d.A_ub).max(axis=1, initial=0)))
    act = (d.b_ub - d.A_ub @ x) / row_scale <= tol
    at_lb = x <= d.lb + tol
    at_ub = (x >= d.ub - tol) & ~at_lb
    return at_lb, at_ub, act


def _multipliers(
    d: QPData, x: np.ndarray, at_lb: np.ndarray, at_ub: np.ndarray, act: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multipliers for ``x`` on a given active set (least squares on the free variables).

    A bound whose multiplier comes out with the wrong sign is released and the fit redone.
    """
    from scipy.optimize import lsq_linear

    g = d.P @ x + d.q
    m_eq = d.A_eq.shape[0]
    gscale = max(float(np.abs(g).max()), float(np.abs(d.q).max()), 1e-300)
    at_lb, at_ub = at_lb.copy(), at_ub.copy()
    y_eq = np.zeros(m_eq)
    y_ub = np.zeros(d.A_ub.shape[0])
    z = np.zeros_like(x)
    for _ in range(6):
        free = ~(at_lb | at_ub)
        M = np.vstack([d.A_eq[:, free], d.A_ub[act][:, free]]).T
        rhs = -g[free]
        y = np.zeros(M.shape[1])
        if M.shape[1] and M.shape[0]:
            y = np.linalg.lstsq(M, rhs, rcond=None)[0]
            if np.any(y[m_eq:] < 0):  # a wrong-signed row multiplier: bounded least squares
                lo = np.r_[np.full(m_eq, -np.inf), np.zeros(M.shape[1] - m_eq)]
                y = lsq_linear(M, rhs, bounds=(lo, np.inf), method="bvls", tol=1e-14).x
        y_eq = y[:m_eq]
        y_ub = np.zeros(d.A_ub.shape[0])
        y_ub[act] = y[m_eq:]
        z = -(g + d.A_eq.T @ y_eq + d.A_ub.T @ y_ub)
        z[free] = 0.0
        bad = (at_lb & (z > 1e-10 * gscale)) | (at_ub & (z < -1e-10 * gscale))
        if not bad.any():
            break
        at_lb &= ~bad
        at_ub &= ~bad
    return y_eq, y_ub, z


def _multipliers_lp(
    d: QPData, x: np.ndarray, at_lb: np.ndarray, at_ub: np.ndarray, act: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multipliers at a (near-)vertex, where least squares on the free variables is blind.

    An LP finds row multipliers that give every bound multiplier its right sign while
    minimising the stationarity residual on the free variables; a least-squares step on
    the free and weakly active variables then removes the LP's tolerance-level error.
    """
    from scipy.optimize import linprog

    g = d.P @ x + d.q
    s = float(np.abs(g).max()) or 1.0
    gs = g / s
    A = np.vstack([d.A_eq, d.A_ub[act]])  # (m, n)
    m_eq, m = d.A_eq.shape[0], A.shape[0]
    free = ~(at_lb | at_ub)
    AF = A[:, free].T
    rows = [np.c_[AF, -np.ones(AF.shape[0])], np.c_[-AF, -np.ones(AF.shape[0])]]
    rhs = [-gs[free], gs[free]]
    if at_lb.any():
        rows.append(np.c_[-A[:, at_lb].T, np.zeros(int(at_lb.sum()))])
        rhs.append(gs[at_lb])
    if at_ub.any():
        rows.append(np.c_[A[:, at_ub].T, np.zeros(int(at_ub.sum()))])
        rhs.append(-gs[at_ub])
    bounds = [(None, None)] * m_eq + [(0, None)] * (m - m_eq) + [(0, None)]
    lp = linprog(
        np.r_[np.zeros(m), 1.0], A_ub=np.vstack(rows), b_ub=np.concatenate(rhs),
        bounds=bounds, method="highs",
    )  # fmt: skip
    if lp.status != 0:
        return _multipliers(d, x, at_lb, at_ub, act)
    y = lp.x[:m] * s
    z = -(g + A.T @ y)
    weak = free | (np.abs(z) <= 1e-7 * s)
    M = A[:, weak].T
    if M.size:
        y = y + np.linalg.lstsq(M, -(g[weak] + M @ y), rcond=None)[0]
    y_eq = y[:m_eq]
    y_ub = np.zeros(d.A_ub.shape[0])
    y_ub[act] = np.maximum(y[m_eq:], 0.0)
    z = -(g + d.A_eq.T @ y_eq + d.A_ub.T @ y_ub)
    z[free] = 0.0
    return y_eq, y_ub, z


def _residuals(
    d: QPData, x: np.ndarray, y_eq: np.ndarray, y_ub: np.ndarray, z: np.ndarray
) -> dict[str, float]:
    from core.optimization.qp import QPProblem, check_kkt

    prob = QPProblem(
        P=d.P, q=d.q, A_eq=d.A_eq, b_eq=d.b_eq, A_ub=d.A_ub, b_ub=d.b_ub, lb=d.lb, ub=d.ub
    )
    kkt = check_kkt(prob, x, y_eq, y_ub, z)
    f = kkt["objective"]
    worst = max(kkt[k] for k in ("stationarity", "dual", "complementarity", "gap"))
    kkt["bound"] = worst * kkt["objective_scale"] / abs(f) if f else worst
    kkt["worst"] = worst
    return kkt


#: Activity thresholds tried in turn: interior-point answers sit 1e-10..1e-7 off a bound.
_ACTIVITY_SWEEP = (ACTIVE_TOL, 1e-8, 1e-7, 1e-6)


def kkt_certificate(d: QPData, x: np.ndarray) -> dict[str, float]:
    """KKT residuals of ``x`` with multipliers recovered from its active set.

    The active set is read off ``x`` at a few thresholds (the first that certifies wins).
    Returns the dictionary of :func:`core.optimization.qp.check_kkt` plus ``worst`` (the
    largest dual-side residual) and ``bound`` (the relative objective error it implies).
    """
    x = np.asarray(x, dtype=float)
    best: dict[str, float] | None = None
    for recover in (_multipliers, _multipliers_lp):
        for tol in _ACTIVITY_SWEEP:
            kkt = _residuals(d, x, *recover(d, x, *_active(d, x, tol)))
            if best is None or kkt["worst"] < best["worst"]:
                best = kkt
            if kkt["worst"] <= CERT_TOL:
                return kkt
    assert best is not None
    return best


def polish(d: QPData, x: np.ndarray) -> np.ndarray | None:
    """The exact minimiser on the face ``x`` identifies (one dense KKT solve), or None.

    Turns a reference solver's 1e-10-accurate answer into one exact to rounding, so that
    its certificate can be checked at ``CERT_TOL``. Tries the activity sweep in turn.
    """
    x = np.asarray(x, dtype=float)
    for tol in _ACTIVITY_SWEEP:
        at_lb, at_ub, act = _active(d, x, tol)
        free = ~(at_lb | at_ub)
        fixed = np.where(at_lb, d.lb, np.where(at_ub, d.ub, 0.0))
        C = np.vstack([d.A_eq, d.A_ub[act]])
        rhs_c = np.concatenate([d.b_eq, d.b_ub[act]]) - C[:, ~free] @ fixed[~free]
        CF = C[:, free]
        keep = np.linalg.matrix_rank(CF) if CF.size else 0
        if CF.shape[0] and keep < CF.shape[0]:
            # drop dependent rows (a degenerate vertex); least squares handles the rest
            _, r_ = np.linalg.qr(CF.T)
            idx = np.flatnonzero(np.abs(np.diag(r_)) > 1e-10 * np.abs(r_).max())
            CF, rhs_c = CF[idx], rhs_c[idx]
        nf = int(free.sum())
        c = d.q[free] + d.P[np.ix_(free, ~free)] @ fixed[~free]
        K = np.zeros((nf + CF.shape[0], nf + CF.shape[0]))
        K[:nf, :nf] = d.P[np.ix_(free, free)]
        K[:nf, nf:] = CF.T
        K[nf:, :nf] = CF
        try:
            sol = np.linalg.solve(K, np.concatenate([-c, rhs_c]))
        except np.linalg.LinAlgError:
            continue
        out = fixed.copy()
        out[free] = sol[:nf]
        if not np.isfinite(out).all():
            continue
        kkt = kkt_certificate(d, out)
        if kkt["worst"] <= CERT_TOL and kkt["primal_abs"] <= FEAS_TOL:
            return out
    return None


def polish_sharpe(
    cov: np.ndarray, mu: np.ndarray, spec: LinearSpec, x: np.ndarray
) -> np.ndarray | None:
    """Exact max-Sharpe portfolio on the face ``x`` identifies, or None.

    On a fixed face the homogenised problem (``min y' Sigma y``, ``mu' y = 1``, active
    rows and bounds scaled by ``kappa``) is an equality-constrained QP in ``(y_F, kappa)``:
    one dense KKT solve.
    """
    x = np.asarray(x, dtype=float)
    for tol in _ACTIVITY_SWEEP:
        d = sharpe_qp(cov, mu, spec, x)
        at_lb, at_ub, act = _active(d, x, tol)
        free = ~(at_lb | at_ub)
        fixed = np.where(at_lb, spec.lb, np.where(at_ub, spec.ub, 0.0))
        B = ~free
        nf = int(free.sum())
        # u = (y_F, kappa); y_B = fixed_B * kappa
        H = np.zeros((nf + 1, nf + 1))
        H[:nf, :nf] = cov[np.ix_(free, free)]
        cb = cov[np.ix_(free, B)] @ fixed[B]
        H[:nf, nf] = cb
        H[nf, :nf] = cb
        H[nf, nf] = fixed[B] @ cov[np.ix_(B, B)] @ fixed[B]
        rows = [np.r_[mu[free], mu[B] @ fixed[B]]]
        rhs = [1.0]
        for a, b in zip(
            np.vstack([spec.A_eq, d.A_ub[act]]), np.r_[spec.b_eq, d.b_ub[act]], strict=True
        ):
            rows.append(np.r_[a[free], a[B] @ fixed[B] - b])
            rhs.append(0.0)
        C = np.array(rows)
        r = np.array(rhs)
        _, r_ = np.linalg.qr(C.T)
        idx = np.flatnonzero(np.abs(np.diag(r_)) > 1e-10 * np.abs(r_).max())
        if 0 not in idx:
            continue
        C, r = C[idx], r[idx]
        m = C.shape[0]
        K = np.zeros((nf + 1 + m, nf + 1 + m))
        K[: nf + 1, : nf + 1] = 2.0 * H
        K[: nf + 1, nf + 1 :] = C.T
        K[nf + 1 :, : nf + 1] = C
        try:
            u = np.linalg.solve(K, np.r_[np.zeros(nf + 1), r])
        except np.linalg.LinAlgError:
            continue
        kappa = u[nf]
        if not kappa > 0:
            continue
        out = fixed.copy()
        out[free] = u[:nf] / kappa
        if not np.isfinite(out).all():
            continue
        viol, _ = spec.violation(out)
        kkt = kkt_certificate(sharpe_qp(cov, mu, spec, out), out)
        if kkt["worst"] <= CERT_TOL and viol <= FEAS_TOL:
            return out
    return None


# --------------------------------------------------------------------------------------
# Reference optima in cvxpy (Clarabel at 1e-10 / HiGHS), certified
# --------------------------------------------------------------------------------------
CLARABEL_TIGHT = {
    "tol_gap_abs": 1e-12,
    "tol_gap_rel": 1e-10,
    "tol_feas": 1e-10,
    "tol_ktratio": 1e-8,
    "max_iter": 500,
}


@dataclass
class RefSolution:
    x: np.ndarray
    value: float  # variance x' Sigma x (min variance) or Sharpe ratio (max Sharpe)
    solver: str
    certified: bool
    kkt_worst: float


class Reference:
    """Reference optima of one universe's mean-variance problems, cached.

    Parameters
    ----------
    cov : ndarray, shape (n, n)
    mu : ndarray, shape (n,)
    spec : LinearSpec
    """

    def __init__(self, cov: np.ndarray, mu: np.ndarray, spec: LinearSpec):
        self.cov = cov
        self.mu = mu
        self.spec = spec
        self.scale = float(np.mean(np.diag(cov)))  # unit-diagonal scaling for the solvers
        self.mu_scale = float(np.abs(mu).max()) or 1.0
        self._problems: dict[str, Any] = {}
        self._cache: dict[Any, RefSolution] = {}
        self.solves = 0

    def _order(self) -> list[str]:
        return ["CLARABEL", "HIGHS"] if self.spec.n <= 300 else ["HIGHS", "CLARABEL"]

    def _build(self, key: str) -> tuple[Any, Any, Any]:
        import cvxpy as cp

        if key in self._problems:
            return self._problems[key]
        sp = self.spec
        n = sp.n
        S = self.cov / self.scale
        S = 0.5 * (S + S.T)
        if key == "sharpe":  # homogenised: w = y / kappa
            y = cp.Variable(n)
            kappa = cp.Variable(nonneg=True)
            m = self.mu / self.mu_scale
            cons = [m @ y == 1, sp.A_eq @ y == sp.b_eq * kappa, y >= sp.lb * kappa]
            cons.append(y <= sp.ub * kappa)
            if sp.A_ub.shape[0]:
                cons.append(sp.A_ub @ y <= sp.b_ub * kappa)
            prob = cp.Problem(cp.Minimize(cp.quad_form(y, cp.psd_wrap(S))), cons)
            entry = (prob, (y, kappa), None)
        else:
            w = cp.Variable(n)
            cons = [sp.A_eq @ w == sp.b_eq, w >= sp.lb, w <= sp.ub]
            if sp.A_ub.shape[0]:
                cons.append(sp.A_ub @ w <= sp.b_ub)
            r = None
            if key == "target":
                r = cp.Parameter()
                cons.append((self.mu / self.mu_scale) @ w >= r)
            prob = cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(S))), cons)
            entry = (prob, w, r)
        self._problems[key] = entry
        return entry

    def _solve(self, prob: Any, solver: str) -> None:
        if solver == "CLARABEL":
            prob.solve(solver="CLARABEL", **CLARABEL_TIGHT)
        else:
            prob.solve(solver="HIGHS", time_limit=600.0)

    def min_variance(self, target: float | None = None) -> RefSolution:
        """Min variance, optionally with ``mu' w >= target`` (per-period units)."""
        key = ("mv", None if target is None else float(target))
        if key in self._cache:
            return self._cache[key]
        prob, w, r = self._build("plain" if target is None else "target")
        if r is not None:
            r.value = float(target) / self.mu_scale
        extra = None if target is None else (-self.mu[None, :], np.array([-float(target)]))
        best: RefSolution | None = None
        for solver in self._order():
            try:
                self._solve(prob, solver)
                self.solves += 1
            except Exception:  # noqa: BLE001 - try the next reference solver
                continue
            if w.value is None:
                continue
            x = np.asarray(w.value, dtype=float)
            d = min_variance_qp(self.cov, self.spec, extra)
            exact = polish(d, x)
            x = exact if exact is not None else x
            kkt = kkt_certificate(d, x)
            viol, _ = self.spec.violation(x)
            cand = RefSolution(
                x=x,
                value=float(x @ self.cov @ x),
                solver=solver,
                certified=kkt["worst"] <= CERT_TOL and viol <= FEAS_TOL,
                kkt_worst=float(kkt["worst"]),
            )
            if best is None or (cand.certified and not best.certified):
                best = cand
            if cand.certified:
                break
        if best is None:
            raise RuntimeError("no reference solver returned an answer")
        self._cache[key] = best
        return best

    def max_sharpe(self) -> RefSolution:
        key = ("sharpe",)
        if key in self._cache:
            return self._cache[key]
        prob, (y, kappa), _ = self._build("sharpe")
        best: RefSolution | None = None
        for solver in self._order():
            try:
                self._solve(prob, solver)
                self.solves += 1
            except Exception:  # noqa: BLE001
                continue
            if y.value is None or kappa.value is None or not kappa.value > 0:
                continue
            x = np.asarray(y.value, dtype=float) / float(kappa.value)
            x = x / x.sum()
            exact = polish_sharpe(self.cov, self.mu, self.spec, x)
            x = exact if exact is not None else x
            kkt = kkt_certificate(sharpe_qp(self.cov, self.mu, self.spec, x), x)
            viol, _ = self.spec.violation(x)
            cand = RefSolution(
                x=x,
                value=sharpe(self.mu, self.cov, x),
                solver=solver,
                certified=kkt["worst"] <= CERT_TOL and viol <= FEAS_TOL,
                kkt_worst=float(kkt["worst"]),
            )
            if best is None or (cand.certified and not best.certified):
                best = cand
            if cand.certified:
                break
        if best is None:
            raise RuntimeError("no reference solver returned an answer")
        self._cache[key] = best
        return best


def min_variance_qp(
    cov: np.ndarray, spec: LinearSpec, extra: tuple[np.ndarray, np.ndarray] | None = None
) -> QPData:
    """``min w' cov w`` (as ``0.5 w' (2 cov) w``) under the spec and extra rows."""
    q = np.zeros(spec.n)
    if extra is None:
        return QPData.from_spec(2.0 * cov, q, spec)
    rows, rhs = extra
    # the return row is scaled to unit size so that activity tests and residuals compare
    s = float(np.abs(rows).max()) or 1.0
    return QPData.from_spec(2.0 * cov, q, spec, rows / s, rhs / s)


def sharpe(mu: np.ndarray, cov: np.ndarray, x: np.ndarray) -> float:
    v = float(x @ cov @ x)
    return float(mu @ x) / math.sqrt(v) if v > 0 else float("nan")


def sharpe_qp(cov: np.ndarray, mu: np.ndarray, spec: LinearSpec, x: np.ndarray) -> QPData:
    """The convex QP whose KKT conditions at ``x`` are max-Sharpe's first-order conditions."""
    s = float(mu @ x) / float(x @ cov @ x)
    return QPData.from_spec(s * cov, -mu, spec)


# --------------------------------------------------------------------------------------
# Mean-variance checks
# --------------------------------------------------------------------------------------
def _weights(w: Any, n: int) -> np.ndarray | None:
    try:
        arr = np.asarray(w, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) else None


def _judge(err: float, viol: float, where: str, tol: Tolerances, **kw: Any) -> Check:
    if viol > tol.feas:
        return fail(f"violates {where} by {viol:.1e}", error=err, violation=viol, **kw)
    if math.isfinite(err) and err > tol.wrong:
        return fail(f"objective off by {err:.1e} (relative)", error=err, violation=viol, **kw)
    if not math.isfinite(err):
        return fail("objective could not be evaluated", violation=viol, **kw)
    return Check(ok=True, error=err, violation=viol, **kw)


def check_min_variance(
    ref: Reference,
    w: Any,
    tol: Tolerances,
    *,
    target: float | None = None,
    on_frontier: bool = False,
    use_reference: bool = True,
) -> Check:
    """Check a min-variance portfolio (optionally at a required return ``target``).

    ``on_frontier``: a frontier point whose target is unknown (the library chose its own
    grid); it must be the min-variance portfolio among those with at least its own return.
    """
    spec, cov, mu = ref.spec, ref.cov, ref.mu
    x = _weights(w, spec.n)
    if x is None:
        return fail("no weight vector of the right length")
    viol, where = spec.violation(x)
    r_req = target
    if target is not None:
        short = float(target - mu @ x)
        if short > tol.feas * max(1.0, abs(target)) * ref.mu_scale and short > 0:
            rel = short / ref.mu_scale
            if rel > viol:
                viol, where = rel, "the target return (scaled by max |mu|)"
    if on_frontier:
        r_req = float(mu @ x)
    extra = None if r_req is None else (-mu[None, :], np.array([-r_req]))
    f = float(x @ cov @ x)
    notes: list[str] = []
    method = "kkt"
    err = float("nan")
    certified = False
    if viol <= tol.feas:
        kkt = kkt_certificate(min_variance_qp(cov, spec, extra), x)
        if kkt["worst"] <= CERT_TOL:
            err = max(float(kkt["bound"]), 0.0)
            certified = True
    if use_reference or not certified:  # an uncertified answer is measured on a reference
        try:
            r = ref.min_variance(r_req)
        except Exception as exc:  # noqa: BLE001
            notes.append(f"reference failed: {exc}")
        else:
            rel = (f - r.value) / abs(r.value)
            if rel < -tol.exact and viol <= tol.feas:
                notes.append(
                    f"beat the {r.solver} reference by {-rel:.1e}"
                    + ("" if r.certified else " (reference not certified)")
                )
            if not r.certified:
                notes.append(f"reference ({r.solver}) not certified: kkt {r.kkt_worst:.1e}")
            err = max(rel, 0.0)
            method = "kkt+reference" if certified else "reference"
    return _judge(err, viol, where, tol, method=method, notes=notes)


def check_max_sharpe(ref: Reference, w: Any, tol: Tolerances, *, use_reference: bool) -> Check:
    spec, cov, mu = ref.spec, ref.cov, ref.mu
    x = _weights(w, spec.n)
    if x is None:
        return fail("no weight vector of the right length")
    viol, where = spec.violation(x)
    s = sharpe(mu, cov, x)
    if not (math.isfinite(s) and mu @ x > 0):
        return fail("non-positive or undefined Sharpe ratio", violation=viol)
    err = float("nan")
    notes: list[str] = []
    method = "kkt"
    certified = False
    if viol <= tol.feas:
        kkt = kkt_certificate(sharpe_qp(cov, mu, spec, x), x)
        if kkt["worst"] <= CERT_TOL:
            err = max(float(kkt["bound"]), 0.0)
            certified = True
    if use_reference or not certified:
        try:
            r = ref.max_sharpe()
        except Exception as exc:  # noqa: BLE001
            notes.append(f"reference failed: {exc}")
        else:
            rel = (r.value - s) / abs(r.value)
            if rel < -tol.exact and viol <= tol.feas:
                notes.append(f"beat the {r.solver} reference by {-rel:.1e}")
            if not r.certified:
                notes.append(f"reference ({r.solver}) not certified: kkt {r.kkt_worst:.1e}")
            err = max(rel, 0.0)
            method = "kkt+reference" if certified else "reference"
    return _judge(err, viol, where, tol, method=method, notes=notes)


# --------------------------------------------------------------------------------------
# Risk parity, HRP, Black-Litterman, Ledoit-Wolf
# --------------------------------------------------------------------------------------
def _simplex_violation(x: np.ndarray) -> float:
    return max(abs(float(x.sum()) - 1.0), float(max(-x.min(), 0.0)))


def check_risk_budget(cov: np.ndarray, budgets: np.ndarray, w: Any, tol: Tolerances) -> Check:
    """Risk contributions ``w_i (Sigma w)_i / w'Sigma w`` against the budgets.

    The error is ``max_i |rc_i - b_i| / max_i b_i`` (the budgets are the optimality
    conditions of the log-barrier problem, so this needs no reference).
    """
    x = _weights(w, cov.shape[0])
    if x is None:
        return fail("no weight vector of the right length")
    viol = _simplex_violation(x)
    b = budgets / budgets.sum()
    sx = cov @ x
    rc = x * sx / float(x @ sx)
    err = float(np.abs(rc - b).max() / b.max())
    return _judge(err, viol, "long-only budget", tol, method="budgets")


def hrp_reference(cov: np.ndarray) -> np.ndarray:
    """Hierarchical risk parity (Lopez de Prado 2016), a plain reading of the paper.

    Single linkage on ``sqrt((1 - rho) / 2)``, the dendrogram's leaf order, then
    recursive bisection by halves with inverse-variance cluster variances.
    """
    import scipy.cluster.hierarchy as sch
    from scipy.spatial.distance import squareform

    sd = np.sqrt(np.diag(cov))
    rho = cov / np.outer(sd, sd)
    dist = np.sqrt(np.clip((1.0 - rho) / 2.0, 0.0, 1.0))
    np.fill_diagonal(dist, 0.0)
    link = sch.linkage(squareform(dist, checks=False), method="single")
    order = sch.leaves_list(link)
    w = np.ones(cov.shape[0])
    stack = [order]
    while stack:
        items = stack.pop()
        if len(items) < 2:
            continue
        half = len(items) // 2
        a, b = items[:half], items[half:]

        def cvar(c: np.ndarray) -> float:
            iv = 1.0 / np.diag(cov)[c]
            iv /= iv.sum()
            return float(iv @ cov[np.ix_(c, c)] @ iv)

        va, vb = cvar(a), cvar(b)
        alpha = 1.0 - va / (va + vb)
        w[a] *= alpha
        w[b] *= 1.0 - alpha
        stack.extend([a, b])
    return w


def check_hrp(w_ref: np.ndarray, w: Any, tol: Tolerances) -> Check:
    """HRP has no objective: compare with the reference weights (conventions differ)."""
    x = _weights(w, w_ref.shape[0])
    if x is None:
        return fail("no weight vector of the right length")
    viol = _simplex_violation(x)
    err = float(np.abs(x - w_ref).max() / np.abs(w_ref).max())
    notes = [] if err <= 1e-6 else ["weights differ from the reference HRP (library conventions)"]
    if viol > tol.feas:
        return fail(f"weights not long-only summing to 1 (by {viol:.1e})", error=err)
    return Check(ok=True, error=err, violation=viol, method="reference", notes=notes)


def bl_reference(
    cov: np.ndarray,
    market_weights: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    delta: float,
    tau: float,
) -> np.ndarray:
    """Posterior mean with He-Litterman's ``Omega = diag(tau P Sigma P')`` (textbook form)."""
    pi = delta * cov @ market_weights
    ts_p = tau * cov @ P.T  # (n, k)
    omega = np.diag(np.diag(P @ ts_p))
    return pi + ts_p @ np.linalg.solve(P @ ts_p + omega, Q - P @ pi)


def check_vector(ref: np.ndarray, got: Any, tol: Tolerances, what: str) -> Check:
    """Relative max-abs difference of a vector or matrix against a closed-form reference."""
    try:
        arr = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return fail(f"{what} is not numeric")
    if arr.shape != ref.shape:
        return fail(f"{what} has shape {arr.shape}, expected {ref.shape}")
    if not np.isfinite(arr).all():
        return fail(f"{what} has NaN or infinite entries")
    err = float(np.abs(arr - ref).max() / max(float(np.abs(ref).max()), 1e-300))
    if err > tol.wrong:
        return fail(f"{what} off by {err:.1e} (relative)", error=err)
    return Check(ok=True, error=err, method="closed form")
