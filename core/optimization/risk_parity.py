"""Risk budgeting (equal risk contribution and general budgets) as pure numpy functions.

A long-only portfolio ``w`` (``sum w = 1``) has risk contribution fractions
``rc_i = w_i (Sigma w)_i / (w' Sigma w)``; risk budgeting asks for ``rc = b`` with given
budgets ``b >= 0`` (equal risk contribution: ``b_i = 1/n``). Following Spinu (2013) and
Roncalli, the problem is solved through the strictly convex log-barrier program

    min_{y > 0}  f(y) = 0.5 y' Sigma y - sum_i b_i log y_i,

whose first-order condition ``y_i (Sigma y)_i = b_i`` is the budget condition itself; then
``w = y / sum(y)``. The unique minimiser exists whenever no long-only combination of the
budgeted assets has zero variance.

Solver: Newton's method with steps measured relative to ``y`` (``y_new = y (1 + t u)``),
so the Newton system ``(Y Sigma Y + B) u = -(y * Sigma y - b)`` (``Y = diag(y)``,
``B = diag(b)``) is the same whatever units each asset's returns are in: no correlation
matrix has to be formed. Near the solution ``Y Sigma Y`` has row sums ``b``, so with a
diagonal (Jacobi) preconditioner the system is very well conditioned (eigenvalues in
[1, 2] when all correlations are positive) and conjugate gradients solve it in a handful
of matrix-vector products. The system is solved only as accurately as the current budget
error warrants (inexact Newton); while far from the solution the step is cut back by an
Armijo line search on ``f`` (self-concordance, Spinu 2013, guarantees that the damped
step ``1 / (1 + lambda)`` decreases ``f``); the iteration stops on the exact criterion
``max_i |rc_i - b_i| / b_i <= tol`` or at the rounding floor of an ill-conditioned
matrix. The start is the better (lower ``f``) of inverse volatility and one Jacobi sweep
of coordinate descent from it; on factor-model covariances Newton then needs 3 steps and
about 15-20 products with ``Sigma`` in all: ~0.2 ms at n = 100, ~0.8 ms at n = 500,
~2.5 ms at n = 1000, ~0.1 s at n = 5000 (2 shared cores, single-threaded OpenBLAS,
including the ``O(n^2)`` symmetry scan), and no n x n temporary is made.

Above ``SMALL_N`` assets the Newton steps run compiled (:mod:`~core.optimization.rp_kernel`)
for as long as Jacobi-CG serves; whatever would need a factorisation goes back to the
Python loop below, from the iterate reached.

Where CG needs many iterations (strongly offsetting assets, nearly singular matrices,
budgets decades apart), the Newton matrix is factored by Cholesky (``O(n^3 / 3)``: ~1 ms
at n = 500, ~8 ms at n = 1000) and that factor, rescaled to the current ``y``,
preconditions the later Newton steps; it is refreshed only if CG slows down again (on
the test problems one factorisation sufficed). Small problems are factored from the
start. ``method='newton'`` factors at every step (plain dense Newton) and
``method='ccd'`` runs cyclical coordinate descent (Griveau-Billion, Richard and Roncalli
2013), which converges linearly and is kept as an independent cross-check.

Whether ``Sigma`` is positive semidefinite is the caller's responsibility (an ``O(n^3)``
check per call would cost more than the solve; the engine checks once per matrix): an
indefinite matrix is reported when it shows (a long-only combination with non-positive
variance, an indefinite Newton system), and otherwise a positive solution of the budget
equations is returned if one exists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.linalg.blas import daxpy, dtrsv
from scipy.linalg.lapack import dpotrf

from core.errors import SolverError, ValidationError

__all__ = [
    "DENSE_MAX_N",
    "SMALL_N",
    "RiskBudgetSolution",
    "exposure_risk_budget_targets",
    "risk_budget_weights",
    "risk_contributions",
    "scale_to_volatility",
]

#: Up to this many budgeted assets ``method='auto'`` factors the Newton matrix from the
#: start: there a Cholesky costs less than the Python overhead of a few CG iterations.
SMALL_N = 64
#: Above this many budgeted assets no dense factorisation is made (an n x n buffer and
#: ``O(n^3)`` work: ~7 s at n = 5000); Newton runs on CG alone.
DENSE_MAX_N = 2500

#: A variance below this fraction of the largest variance counts as zero.
_ZERO_VARIANCE = 1e-14
#: A final budget error (absolute) above this means the answer is unusable: raise.
_ACCEPT_ERROR = 1e-6
#: ``sum(y * sigma)`` (correlation units, where ``y' C y = 1`` at the solution) above this
#: means a long-only combination of the assets has a variance below ``1 / _DIVERGED**2`` of
#: a typical asset's: risk shares are undefined.
_DIVERGED = 1e7
#: CG iterations allowed per Newton step with a Cholesky preconditioner before it is
#: refreshed at the current point (each costs one product and two triangular solves).
_REFRESH_CG = 10
#: Newton steps cut below half by the line search before Jacobi-CG gives way to a factor.
_SHORT_STEPS = 3
#: Relative budget error below which Newton is in its quadratic phase: no halving of the
#: error over ``_STALL_STEPS`` steps there means the rounding floor has been reached.
_LOCAL_ERROR = 1e-4
_STALL_STEPS = 3
#: Largest fraction by which one Newton step may cut an asset's ``y``.
_MAX_CUT = 0.7

Method = Literal["auto", "newton", "ccd"]


@dataclass(frozen=True)
class RiskBudgetSolution:
    """Result of :func:`risk_budget_weights`.

    Attributes
    ----------
    weights : ndarray, shape (n,)
        Long-only weights summing to 1; exactly 0 for assets with a zero budget.
    risk_contributions : ndarray, shape (n,)
        ``w_i (Sigma w)_i / (w' Sigma w)``: fractions of portfolio variance, summing to 1.
    budgets : ndarray, shape (n,)
        The budgets used, normalised to sum to 1.
    volatility : float
        ``sqrt(w' Sigma w)`` in the units of ``cov`` (annual if ``cov`` is annual).
    iterations : int
        Newton iterations plus CCD cycles performed.
    method : str
        ``'newton-cg'`` (Newton, CG with a diagonal preconditioner), ``'newton-cg+chol'``
        (a Cholesky factor preconditioned some steps), ``'newton'`` (factored every
        step), ``'ccd'`` or ``'ccd+newton'`` (CCD finished by Newton); ``'trivial'`` for
        a single budgeted asset.
    converged : bool
        ``max_relative_error <= tol``. False with an absolute error below 1e-6 means
        rounding stopped the iteration first (ill-conditioned covariance; relative errors
        of 1e-12 to 1e-10 are typical there): the weights are still returned. Above 1e-6
        a SolverError is raised.
    max_budget_error : float
        ``max_i |risk_contributions_i - budgets_i|``.
    max_relative_error : float
        ``max_i |risk_contributions_i - budgets_i| / budgets_i`` over positive budgets.
    """

    weights: np.ndarray
    risk_contributions: np.ndarray
    budgets: np.ndarray
    volatility: float
    iterations: int
    method: str
    converged: bool
    max_budget_error: float
    max_relative_error: float = 0.0


# --------------------------------------------------------------------------- helpers
def _name(names: Sequence[str] | None, i: int) -> str:
    return repr(names[i]) if names is not None else f"#{i}"


def _as_covariance(
    cov: np.ndarray, check_symmetry: bool, what: str = "covariance matrix"
) -> np.ndarray:
    """Check shape (and symmetry) without copying the matrix (n = 5000 is 200 MB).

    Finiteness is checked later at no cost: one product with a positive vector is
    non-finite exactly when the matrix has a non-finite entry.
    """
    s = np.asarray(cov, dtype=float)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise ValidationError(f"{what} must be a non-empty square matrix, got shape {s.shape}")
    if not check_symmetry:
        return s
    diag = np.abs(np.diagonal(s))
    scale = max(float(np.max(diag)), np.finfo(float).tiny) if np.all(np.isfinite(diag)) else 1.0
    n, tile = s.shape[0], 128  # cache-sized tiles: no n x n temporary, no strided sweeps
    with np.errstate(invalid="ignore"):  # inf - inf: the finiteness check names it later
        for i in range(0, n, tile):
            for j in range(i, n, tile):
                block, mirror = s[i : i + tile, j : j + tile], s[j : j + tile, i : i + tile]
                if np.max(np.abs(block - mirror.T)) > 1e-8 * scale:  # NaN compares False
                    raise ValidationError(
                        f"{what} is not symmetric; pass a valid covariance matrix"
                    )
    return s


def _raise_not_finite(s: np.ndarray, what: str = "covariance matrix") -> None:
    if not np.all(np.isfinite(s)):
        raise ValidationError(f"{what} contains NaN or infinite values; clean the inputs first")
    raise ValidationError(
        f"{what} has entries so large that products with it overflow; express it in "
        "other units (e.g. returns as fractions, annual or daily)"
    )


def _as_budgets(budgets: np.ndarray | None, n: int, names: Sequence[str] | None) -> np.ndarray:
    if budgets is None:
        return np.full(n, 1.0 / n)
    b = np.asarray(budgets, dtype=float)
    if b.shape != (n,):
        raise ValidationError(
            f"budgets must have shape ({n},) to match the covariance, got {b.shape}"
        )
    if not np.all(np.isfinite(b)):
        raise ValidationError("budgets contain NaN or infinite values")
    neg = np.flatnonzero(b < 0)
    if neg.size:
        raise ValidationError(
            f"risk budgets must be >= 0; asset {_name(names, int(neg[0]))} has {b[neg[0]]:g}"
        )
    total = float(b.sum())
    if total <= 0:
        raise ValidationError("at least one risk budget must be positive")
    return b / total


def risk_contributions(weights: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Risk contribution fractions ``w_i (Sigma w)_i / (w' Sigma w)``.

    Parameters
    ----------
    weights : ndarray, shape (n,)
    cov : ndarray, shape (n, n)

    Returns
    -------
    ndarray, shape (n,)
        Sums to 1. Raises ValidationError if the portfolio variance is not positive.
    """
    w = np.asarray(weights, dtype=float)
    sw = np.asarray(cov, dtype=float) @ w
    rc = w * sw
    var = float(rc.sum())
    if not var > 0:
        raise ValidationError(
            f"portfolio variance is {var:g}; risk contributions are undefined for a "
            "riskless or invalid portfolio"
        )
    return rc / var


def _relative_error(rc: np.ndarray, b: np.ndarray, binv: np.ndarray) -> float:
    """``max_i |rc_i / sum(rc) - b_i| / b_i`` for unnormalised contributions ``rc``."""
    return float(np.max(np.abs(rc * (1.0 / float(rc.sum())) - b) * binv))


def _check_bounded(y: np.ndarray, sigma: np.ndarray, names: Sequence[str] | None) -> None:
    z = y * sigma  # correlation units
    if not float(z.sum()) <= _DIVERGED:
        w = z / z.sum()
        # Assets outside the degenerate combination keep bounded y, so a vanishing share.
        top = sorted(int(i) for i in np.argsort(w)[::-1][:5] if w[i] >= 1e-3 * w.max())
        who = ", ".join(_name(names, i) for i in top)
        raise ValidationError(
            "a long-only combination of the assets has (numerically) zero variance, so risk "
            f"contributions are undefined; the assets involved include {who}. Remove "
            "duplicated or perfectly offsetting assets, or shrink the covariance matrix."
        )


def _not_psd() -> ValidationError:
    return ValidationError(
        "the covariance matrix is not positive semidefinite (the Newton system is "
        "indefinite); repair it, e.g. with shrinkage, before risk budgeting"
    )


# --------------------------------------------------------------------------- solvers
def _factor_cost(n: int) -> int:
    """Cost of forming and factoring the Newton matrix, in Jacobi-CG iterations.

    Measured (single-threaded OpenBLAS): ~40 products with ``S`` at n = 500 and ~80 at
    n = 1000-2000.
    """
    return min(80, max(12, n // 12))


def _factor(s: np.ndarray, y: np.ndarray, b: np.ndarray, buf: np.ndarray) -> np.ndarray | None:
    """Cholesky factor ``U`` (upper, in ``buf``) of ``Y S Y + B = U'U``; None if not PD."""
    np.multiply(s, y[:, None], out=buf)
    buf *= y
    buf.flat[:: buf.shape[0] + 1] += b
    # LAPACK directly on buf.T (Fortran order, no copy; symmetric): scipy's cho_factor
    # would copy and clean the other triangle.
    factor, info = dpotrf(buf.T, lower=0, overwrite_a=1, clean=0)
    return factor if info == 0 else None


def _pcg(
    s: np.ndarray,
    y: np.ndarray,
    b: np.ndarray,
    r: np.ndarray,
    eta: float,
    max_it: int,
    jacobi: np.ndarray,
    factor: np.ndarray | None = None,
    rescale: np.ndarray | None = None,
) -> tuple[np.ndarray, int, bool]:
    """Approximately solve ``(Y S Y + B) u = -r`` by preconditioned CG from ``u = 0``.

    The preconditioner is ``diag(jacobi)`` when ``factor`` is None, else
    ``D^-1 M0^-1 D^-1`` with ``M0 = U'U`` (``U = factor``) the Newton matrix at an earlier
    point ``y0`` and ``D = diag(rescale)``, ``rescale = y / y0``: ``Y S Y = D (Y0 S Y0) D``
    exactly, so only the ``B`` part of the matrix is stale. Stops when the preconditioned
    residual norm has fallen by ``eta``.

    Returns
    -------
    u : ndarray, shape (n,)
    iterations : int
    reached : bool
        Whether the tolerance was reached within ``max_it`` iterations.
    """

    def precondition(v: np.ndarray) -> np.ndarray:
        if factor is None:
            return v * jacobi
        # Two triangular solves (3x faster than dpotrs for one right-hand side).
        w = dtrsv(factor, v / rescale, trans=1)
        return dtrsv(factor, w, trans=0, overwrite_x=1) / rescale

    res = -r
    z = precondition(res)
    rz = float(res @ z)
    stop = eta * eta * rz
    u = np.zeros_like(r)
    p = z
    for k in range(1, max_it + 1):
        mp = s @ (y * p)
        mp *= y
        mp += b * p
        pmp = float(p @ mp)
        if not pmp > 0:  # M = Y S Y + B >= B > 0 for any PSD S
            raise _not_psd()
        alpha = rz / pmp
        u += alpha * p
        res -= alpha * mp
        z = precondition(res)
        rz_new = float(res @ z)
        if rz_new <= stop:
            return u, k, True
        p = z + (rz_new / rz) * p
        rz = rz_new
    return u, max_it, False


class _NewtonSystem:
    """Newton directions ``(Y S Y + B) u = -r``, choosing the preconditioner by cost.

    ``dense``: 'always' factors at every step (plain Newton); 'never' uses Jacobi-CG only;
    'auto' starts with Jacobi-CG (or a factor when ``n <= SMALL_N``) and factors once CG
    proves slow: a step needing more than a quarter of a factorisation's cost in CG
    iterations, a whole factorisation's cost in all, or ``_SHORT_STEPS`` steps cut short
    by the line search (the truncated directions are poor there). Well-conditioned
    problems (factor models) need 3-8 iterations a step and never get there. The factor
    then preconditions the later steps and is refreshed only when a step needs more than
    ``_REFRESH_CG`` iterations (on the test problems: never).
    """

    def __init__(
        self, s: np.ndarray, b: np.ndarray, dense: Literal["auto", "always", "never"]
    ) -> None:
        self.s, self.b = s, b
        self.diag = np.diagonal(s)
        self.n = n = b.size
        self.dense = "never" if dense == "auto" and n > DENSE_MAX_N else dense
        self.budget = _factor_cost(n)
        # CG iterations allowed per step with the Jacobi preconditioner.
        self.cap = max(5, self.budget // 4) if self.dense != "never" else 2 * n
        self.buf: np.ndarray | None = None
        self.factor: np.ndarray | None = None
        self.y_ref = np.ones(n)
        self.factored = False
        self.jacobi_its = 0
        self.short_steps = 0

    def _refactor(self, y: np.ndarray) -> None:
        if self.buf is None:
            self.buf = np.empty((self.n, self.n))
        self.factor, self.y_ref, self.factored = _factor(self.s, y, self.b, self.buf), y, True
        if self.factor is None:  # not numerically PD (near-divergence): CG alone from now on
            self.dense, self.cap = "never", 2 * self.n

    def direction(self, y: np.ndarray, r: np.ndarray, eta: float) -> np.ndarray:
        jacobi = 1.0 / (y * y * self.diag + self.b)
        if self.dense == "always" or (
            self.dense == "auto"
            and self.factor is None
            and (
                self.n <= SMALL_N
                or self.short_steps >= _SHORT_STEPS
                or self.jacobi_its > self.budget
            )
        ):
            self._refactor(y)
        s, b = self.s, self.b
        if self.factor is None:
            u, k, ok = _pcg(s, y, b, r, eta, self.cap, jacobi)
            self.jacobi_its += k
            if ok or self.dense != "auto":
                return u
            self._refactor(y)
            if self.factor is None:
                return u  # a truncated CG direction is still a descent direction
        u, k, ok = _pcg(s, y, b, r, eta, _REFRESH_CG, jacobi, self.factor, y / self.y_ref)
        if ok or self.y_ref is y:
            return u
        self._refactor(y)
        if self.factor is None:
            return _pcg(s, y, b, r, eta, self.cap, jacobi)[0]
        return _pcg(s, y, b, r, eta, _REFRESH_CG, jacobi, self.factor, np.ones(self.n))[0]

    def step_taken(self, t: float) -> None:
        if t < 0.5 and self.factor is None:
            self.short_steps += 1


def _newton(
    s: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    sy: np.ndarray,
    tol: float,
    max_iter: int,
    dense: Literal["auto", "always", "never"],
    names: Sequence[str] | None,
) -> tuple[np.ndarray, np.ndarray, int, float, bool]:
    """Damped inexact Newton on f from ``y > 0`` (``sy = s @ y``).

    Returns the best iterate, its product with ``s``, the iterations used, its relative
    budget error and whether a factorisation was used.
    """
    binv = 1.0 / b
    bmin = float(b.min())
    sigma = np.sqrt(np.diagonal(s))
    system = _NewtonSystem(s, b, dense)
    best_y, best_sy, best_err = y, sy, math.inf
    stale = 0
    it = 0
    if system.dense == "never" or (system.dense == "auto" and system.n > SMALL_N):
        compiled = _newton_compiled(s, b, y, sy, tol, max_iter, system)
        if compiled is not None:
            code, y, sy, it, (best_y, best_sy, best_err) = compiled
            if code == "done":
                return best_y, best_sy, it, best_err, False
            if code == "diverged":
                _check_bounded(y, sigma, names)  # names the assets involved
    while True:
        rc = y * sy
        err = _relative_error(rc, b, binv)
        if err < 0.5 * best_err:
            stale = 0
        elif best_err < _LOCAL_ERROR:
            stale += 1  # quadratic phase without progress: the rounding floor
        if err < best_err:
            best_y, best_sy, best_err = y, sy, err
        if err <= tol or it >= max_iter or stale >= _STALL_STEPS:
            break
        it += 1
        r = rc - b  # gradient of f with respect to log(y)
        # Inexact Newton: solve only as far as this step can use (quadratic convergence
        # needs ~err), but not beyond what reaching tol in one more step needs.
        u = system.direction(y, r, max(min(0.1, err), 0.3 * tol / err))
        lam2 = -float(r @ u)  # squared Newton decrement (exact when CG converged)
        if not lam2 > 0:  # CG from 0 gives a descent direction: only rounding gets here
            break
        # Decrement of the self-concordant f / min(b): below 1/4 the full step is safe and
        # converges quadratically; above it the damped step 1 / (1 + lam) decreases f.
        lam = math.sqrt(lam2 / bmin)
        local = lam <= 0.25
        # No asset's y may fall by more than _MAX_CUT in one step: a step to the boundary
        # leaves an asset that then needs many steps to recover (the barrier lets y_i at
        # most double per Newton step).
        umin = float(u.min())
        t = 1.0 if umin >= -_MAX_CUT else _MAX_CUT / -umin
        t_safe = min(t, 1.0 / (1.0 + lam))
        while True:
            tu = t * u
            y_new = y + y * tu
            sy_new = s @ y_new
            if local and t == 1.0:
                break
            # f(y_new) - f(y) without cancellation (right even when f changes by 1e-20):
            # (y_new - y)' S (y_new + y) / 2 - b' log(y_new / y).
            decrease = 0.5 * float((y * tu) @ (sy_new + sy)) - float(b @ np.log1p(tu))
            if decrease <= -0.1 * t * lam2 or (t <= t_safe and decrease < 0):
                break
            if err < 1e-3 and t == 1.0 and _relative_error(y_new * sy_new, b, binv) < err:
                break  # f is flat to rounding but the budgets improve: take the step
            if t < 1e-10:
                return best_y, best_sy, it, best_err, system.factored  # rounding: no descent
            t = max(0.5 * t, t_safe) if t > t_safe else 0.5 * t
        system.step_taken(t)
        y, sy = y_new, sy_new
        _check_bounded(y, sigma, names)
    return best_y, best_sy, it, best_err, system.factored


def _newton_compiled(
    s: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    sy: np.ndarray,
    tol: float,
    max_iter: int,
    system: _NewtonSystem,
) -> tuple[str, np.ndarray, np.ndarray, int, tuple[np.ndarray, np.ndarray, float]] | None:
    """The Jacobi-CG steps of :func:`_newton` in :mod:`~core.optimization.rp_kernel`.

    Returns (outcome, last iterate, its product, iterations, (best iterate, its product,
    its error)) with outcome 'done', 'handback' (the Python loop goes on from the last
    iterate; ``system`` then holds the CG iterations and cut steps so far, so that it
    factors where the Python loop would have) or 'diverged'; None if the kernel is
    unavailable (the Python loop then does everything).
    """
    try:
        from core.optimization import rp_kernel as kern
        from core.optimization.compiled import readonly
    except ImportError:  # pragma: no cover - numba missing: the Python iteration
        return None
    can_factor = system.dense == "auto"
    consts = np.array([_LOCAL_ERROR, _STALL_STEPS, _MAX_CUT, _SHORT_STEPS, _DIVERGED], dtype=float)
    y, sy = y.copy(), sy.copy()
    best_y, best_sy = np.empty_like(y), np.empty_like(sy)
    code, it, best_err, cg_its, short = kern.newton_jacobi(
        readonly(s), readonly(b), y, sy, float(tol), int(max_iter), can_factor,
        int(system.cap), int(system.budget), readonly(consts), best_y, best_sy,
    )  # fmt: skip
    best = (best_y, best_sy, best_err)
    if code == kern.DONE:
        return "done", y, sy, it, best
    if code == kern.DIVERGED:
        return "diverged", y, sy, it, best
    # as if the Python loop had run these steps: it factors next where it would have
    system.jacobi_its = max(cg_its, system.budget + 1) if can_factor else cg_its
    system.short_steps = short
    return "handback", y, sy, it, best


def _start(
    s: np.ndarray, b: np.ndarray, y: np.ndarray, sy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Starting point: inverse volatility or one Jacobi sweep from it, whichever has lower f.

    The sweep solves every coordinate's own equation ``S_ii y_i^2 + c_i y_i = b_i``
    (``c_i`` the rest of ``(S y)_i``) at once. On factor models (all assets correlated
    alike) it lands close to the solution and Newton needs ~3 steps instead of ~8; with
    strongly offsetting assets it can overshoot, and inverse volatility is kept.
    Both points are scaled to ``y' S y = 1``, where ``f = 1/2 - b' log y`` (``sum b = 1``).
    """
    d = np.diagonal(s)
    c = sy - d * y
    disc = np.sqrt(c * c + 4.0 * d * b)
    # Stable root of each quadratic (no cancellation when c_i > 0).
    y2 = np.where(c > 0, 2.0 * b / (np.abs(c) + disc), 0.5 * (disc - c) / d)
    sy2 = s @ y2
    var2 = float(y2 @ sy2)
    if not var2 > 0 or not np.all(np.isfinite(sy2)):
        return y, sy
    scale = 1.0 / math.sqrt(var2)
    y2 *= scale
    sy2 *= scale
    return (y2, sy2) if float(b @ np.log(y2 / y)) > 0 else (y, sy)


def _ccd(
    s: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    tol: float,
    max_cycles: int,
    names: Sequence[str] | None,
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Cyclical coordinate descent; returns ``y``, ``s @ y``, cycles and relative error.

    Each coordinate solves its own quadratic ``S_ii y_i^2 + c_i y_i - b_i = 0`` exactly and
    ``S y`` is updated by one BLAS axpy with row ``i``.
    """
    n = b.size
    binv = 1.0 / b
    diag = np.diagonal(s)
    sigma = np.sqrt(diag)
    dl, bl = diag.tolist(), b.tolist()
    y = y.copy()
    sy = s @ y
    err = _relative_error(y * sy, b, binv)
    for cycle in range(1, max_cycles + 1):
        if err <= tol:
            return y, sy, cycle - 1, err
        for i in range(n):
            yi, sii = float(y[i]), dl[i]
            ci = float(sy[i]) - sii * yi
            disc = math.sqrt(ci * ci + 4.0 * sii * bl[i])
            # Stable root (no cancellation when ci > 0).
            new = 2.0 * bl[i] / (ci + disc) if ci > 0 else 0.5 * (disc - ci) / sii
            y[i] = new
            sy = daxpy(s[i], sy, a=new - yi)  # in place: sy is contiguous float64
        sy = s @ y  # recompute: no drift from the rank-one updates
        _check_bounded(y, sigma, names)
        err = _relative_error(y * sy, b, binv)
    return y, sy, max_cycles, err


# --------------------------------------------------------------------------- public API
def risk_budget_weights(
    cov: np.ndarray,
    budgets: np.ndarray | None = None,
    *,
    tol: float = 1e-12,
    max_iter: int = 500,
    method: Method = "auto",
    names: Sequence[str] | None = None,
    validated: bool = False,
) -> RiskBudgetSolution:
    """Long-only weights whose risk contributions equal the given budgets.

    Parameters
    ----------
    cov : ndarray, shape (n, n)
        Covariance matrix (any time unit). May be singular, as long as no long-only
        combination of the positively budgeted assets has zero variance. Never modified,
        and copied only when some budgets are zero (the budgeted block); a read-only
        array is fine. Where a factorisation pays (see the module docstring, at most
        ``DENSE_MAX_N`` assets) one n x n work array is allocated.
    budgets : ndarray, shape (n,), optional
        Non-negative risk budgets (normalised to sum to 1). Default: equal (ERC).
        Assets with a zero budget get weight exactly 0 and are left out of the solve.
    tol : float
        Target for the relative budget error ``max_i |rc_i - b_i| / b_i``. Iteration
        stops there or at the rounding floor.
    max_iter : int
        Maximum Newton iterations (CCD cycles for ``method='ccd'``).
    method : {'auto', 'newton', 'ccd'}
        'auto': Newton with CG, factoring the Newton matrix only where that is cheaper
        (see the module docstring); 'newton': a Cholesky factorisation every step;
        'ccd': cyclical coordinate descent, finished by Newton if it has not converged
        after ``max_iter`` cycles.
    names : sequence of str, optional
        Asset names, used only in error messages.
    validated : bool
        True when the caller has already checked that ``cov`` is symmetric, finite and
        PSD (the engine's prepared covariance): skips the ``O(n^2)`` symmetry scan
        (~0.6 ms at n = 1000, a quarter of the solve). Non-finite entries are still
        caught, at no cost, by the first product with ``cov``.

    Returns
    -------
    RiskBudgetSolution

    Raises
    ------
    ValidationError
        Malformed inputs (shape, NaN/inf, asymmetry unless ``validated``, budgets); a
        positively budgeted asset with zero variance (named); a long-only zero-variance
        combination (assets named); a covariance found not PSD on the way (see the
        module docstring: not every indefinite matrix is).
    SolverError
        The final budget error is above 1e-6 (never seen on valid inputs).
    """
    s = _as_covariance(cov, check_symmetry=not validated)
    n = s.shape[0]
    if names is not None and len(names) != n:
        raise ValidationError(f"names has {len(names)} entries but the covariance is {n}x{n}")
    if method not in ("auto", "newton", "ccd"):
        raise ValidationError(f"method must be 'auto', 'newton' or 'ccd', got {method!r}")
    if not tol > 0 or max_iter < 1:
        raise ValidationError("tol must be positive and max_iter at least 1")
    b = _as_budgets(budgets, n, names)
    variances = np.diagonal(s)
    if not np.all(np.isfinite(variances)):
        _raise_not_finite(s)
    if np.any(variances < 0):
        i = int(np.flatnonzero(variances < 0)[0])
        raise ValidationError(
            f"asset {_name(names, i)} has a negative variance ({variances[i]:g}); "
            "the covariance matrix is invalid"
        )
    active = np.flatnonzero(b > 0)
    floor = _ZERO_VARIANCE * max(float(variances.max()), np.finfo(float).tiny)
    dead = active[variances[active] <= floor].tolist()
    if dead:
        who = ", ".join(_name(names, i) for i in dead)
        raise ValidationError(
            f"asset(s) {who} have zero variance but a positive risk budget; a riskless asset "
            "cannot carry a share of risk. Give them a zero budget or remove them."
        )
    if active.size < n and not validated and not math.isfinite(float(s.sum())):
        _raise_not_finite(s)  # the product below only sees the budgeted block

    weights = np.zeros(n)
    rc = np.zeros(n)
    if active.size == 1:
        weights[active] = 1.0
        rc[active] = 1.0
        iterations, used, rel = 0, "trivial", 0.0
        vol = math.sqrt(float(variances[active[0]]))
    else:
        sa = s if active.size == n else s[np.ix_(active, active)]
        ba = b[active]
        # Inverse volatility, scaled to the best point on its ray (y' S y = sum(b) = 1).
        y = np.sqrt(ba / np.diagonal(sa))
        with np.errstate(over="ignore", invalid="ignore"):  # reported just below
            sy = sa @ y
        if not np.all(np.isfinite(sy)):
            _raise_not_finite(s)
        var0 = float(y @ sy)
        if not var0 > 1e-12:
            # A positive combination with no variance: either offsetting assets or not PSD.
            raise ValidationError(
                "the covariance matrix gives a long-only combination of the assets zero or "
                f"negative variance ({var0:.3g} in correlation units); it is singular in a "
                "way risk budgeting cannot handle, or not positive semidefinite. Remove "
                "perfectly offsetting assets or repair the matrix (e.g. shrinkage)."
            )
        y *= 1.0 / math.sqrt(var0)
        sy *= 1.0 / math.sqrt(var0)
        y, sy = _start(sa, ba, y, sy)
        sub_names = (
            names if names is None or active.size == n else [names[i] for i in active.tolist()]
        )
        if method == "ccd":
            y, sy, iterations, rel = _ccd(sa, ba, y, tol, max_iter, sub_names)
            used = "ccd"
            if rel > tol:
                y, sy, more, rel, _ = _newton(sa, ba, y, sy, tol, max_iter, "auto", sub_names)
                iterations, used = iterations + more, "ccd+newton"
        else:
            dense: Literal["auto", "always"] = "always" if method == "newton" else "auto"
            y, sy, iterations, rel, factored = _newton(
                sa, ba, y, sy, tol, max_iter, dense, sub_names
            )
            used = (
                "newton" if method == "newton" else ("newton-cg+chol" if factored else "newton-cg")
            )
        total = float(y.sum())
        weights[active] = y / total
        rca = y * sy
        var = float(rca.sum())
        rc[active] = rca / var
        vol = math.sqrt(var) / total

    err = float(np.max(np.abs(rc - b)))
    if err > _ACCEPT_ERROR:
        raise SolverError(
            f"risk budgeting did not converge: largest budget error {err:.2e} after "
            f"{iterations} iterations ({used}); the covariance matrix is probably nearly "
            "singular: shrink it (e.g. Ledoit-Wolf) and retry",
            status="not_converged",
            solver=used,
        )
    return RiskBudgetSolution(
        weights=weights,
        risk_contributions=rc,
        budgets=b,
        volatility=vol,
        iterations=int(iterations),
        method=used,
        converged=rel <= tol,
        max_budget_error=err,
        max_relative_error=rel,
    )


def exposure_risk_budget_targets(
    cov_x: np.ndarray,
    budgets_x: np.ndarray | None = None,
    *,
    codes: Sequence[str] | None = None,
    tol: float = 1e-12,
) -> np.ndarray:
    """Target exposure profile with equal (or budgeted) risk per exposure type.

    Risk parity on the underlying exposures rather than on funds: the profile
    ``x*`` (one entry per exposure type, long-only, summing to 1) whose contributions
    ``x*_k (Sigma_x x*)_k / (x*' Sigma_x x*)`` equal ``budgets_x``. The engine then
    (1) scales ``x*`` to the target volatility with :func:`scale_to_volatility` on
    ``Sigma_x`` (a 60/40-like profile at 10% vol typically needs more than 100% total
    exposure, which stacked funds deliver without margin), and (2) finds fund weights
    ``w`` with ``E w ~= x*`` by exposure matching (cheapest funds first, under the
    notional and weight constraints). The risk shares of the resulting fund portfolio
    equal the budgets exactly only when the match is exact and idiosyncratic fund risk
    is ignored.

    Parameters
    ----------
    cov_x : ndarray, shape (K, K)
        Covariance of exposure-type returns in excess of cash.
    budgets_x : ndarray, shape (K,), optional
        Risk budget per exposure type, default equal. Give cash (``CASH_TBILL``, zero
        excess variance) and any type that should not be held a zero budget.
    codes : sequence of str, optional
        Exposure type codes, for error messages.
    tol : float
        Passed to :func:`risk_budget_weights`.

    Returns
    -------
    ndarray, shape (K,)
        Exposure fractions summing to 1 (0 where the budget is 0).
    """
    return risk_budget_weights(cov_x, budgets_x, tol=tol, names=codes).weights


def scale_to_volatility(
    weights: np.ndarray,
    cov: np.ndarray,
    target_vol: float,
    max_scale: float | None = None,
) -> tuple[np.ndarray, float]:
    """Multiply a portfolio so that its volatility equals ``target_vol`` (at most ``max_scale``).

    Parameters
    ----------
    weights : ndarray, shape (n,)
        Portfolio weights (or an exposure profile), e.g. a risk-parity solution.
    cov : ndarray, shape (n, n)
        Covariance in the same units as ``target_vol`` (annual covariance, annual vol).
    target_vol : float
        Target volatility as a fraction (0.10 = 10%), > 0.
    max_scale : float, optional
        Cap on the multiplier (e.g. notional limit / current notional). When the cap
        binds the returned volatility is below target; the caller sees it from ``scale``.

    Returns
    -------
    scaled_weights : ndarray, shape (n,)
        ``scale * weights``; the remainder ``1 - sum`` is cash (negative = borrowing).
    scale : float
        ``min(target_vol / sqrt(w' Sigma w), max_scale)``.
    """
    w = np.asarray(weights, dtype=float)
    s = np.asarray(cov, dtype=float)
    if w.ndim != 1 or s.shape != (w.size, w.size):
        raise ValidationError(
            f"weights of shape {w.shape} do not match a covariance of shape {s.shape}"
        )
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(s))):
        raise ValidationError("weights and covariance must be finite")
    if not (math.isfinite(target_vol) and target_vol > 0):
        raise ValidationError(
            f"target volatility must be a positive fraction (0.10 for 10%), got {target_vol}"
        )
    if max_scale is not None and not (math.isfinite(max_scale) and max_scale > 0):
        raise ValidationError(f"max_scale must be positive, got {max_scale}")
    var = float(w @ s @ w)
    if not var > 0:
        raise ValidationError(
            f"the portfolio has zero (or negative, {var:g}) variance; it cannot be scaled to "
            "a target volatility"
        )
    scale = target_vol / math.sqrt(var)
    if max_scale is not None:
        scale = min(scale, float(max_scale))
    return w * scale, scale
