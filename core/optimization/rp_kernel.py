"""Risk budgeting's Newton iteration with Jacobi-preconditioned CG, compiled.

:func:`newton_jacobi` runs the steps of :func:`core.optimization.risk_parity._newton` while
the Newton system is solved by conjugate gradients with the diagonal preconditioner, the
case of every well-conditioned covariance (factor models, real stock returns): the same
damped inexact Newton step, the same Armijo line search on the log-barrier objective, the
same stopping rules. The products with the covariance are BLAS calls, as in Python; what
goes is numpy's per-call overhead around them (on 500 funds, about half of the solve).

Whatever the Python iteration would do differently is handed back to it, with the
iterate reached so far (:data:`HANDBACK`): CG failing to reach its tolerance within its
cap, too many CG iterations or cut steps in all (a Cholesky factor would then pay), an
indefinite Newton system (reported by Python, with its message). An iterate that leaves
every bounded region (a long-only combination of zero variance) comes back as
:data:`DIVERGED` for Python to name the assets involved.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from core.optimization.compiled import JIT as _JIT

#: Exit codes.
DONE, HANDBACK, DIVERGED = 0, 1, 2


@njit(**_JIT)
def _relative_error(y, sy, b, binv) -> float:  # pragma: no cover - compiled
    """``max_i |rc_i / sum(rc) - b_i| / b_i`` with ``rc = y * sy`` (as the Python helper)."""
    total = 0.0
    for i in range(y.size):
        total += y[i] * sy[i]
    scale = 1.0 / total
    worst = 0.0
    for i in range(y.size):
        e = abs(y[i] * sy[i] * scale - b[i]) * binv[i]
        if not e <= worst:  # (a NaN wins, as in numpy's max)
            worst = e
    return worst


@njit(**_JIT)
def _pcg(s, y, b, r, eta, max_it, jacobi, u, res, z, p, yp, mp):  # pragma: no cover
    """Jacobi-preconditioned CG for ``(Y S Y + B) u = -r`` from ``u = 0``, into ``u``.

    Returns (iterations, reached, positive): ``positive`` False when a direction had
    ``p' M p <= 0`` (an indefinite system).
    """
    n = r.size
    rz = 0.0
    for i in range(n):
        res[i] = -r[i]
        z[i] = jacobi[i] * res[i]
        rz += res[i] * z[i]
        u[i] = 0.0
        p[i] = z[i]
    stop = eta * eta * rz
    for k in range(1, max_it + 1):
        for i in range(n):
            yp[i] = y[i] * p[i]
        sp = np.dot(s, yp)
        pmp = 0.0
        for i in range(n):
            mp[i] = sp[i] * y[i] + b[i] * p[i]
            pmp += p[i] * mp[i]
        if not pmp > 0:
            return k, False, False
        alpha = rz / pmp
        rz_new = 0.0
        for i in range(n):
            u[i] += alpha * p[i]
            res[i] -= alpha * mp[i]
            z[i] = jacobi[i] * res[i]
            rz_new += res[i] * z[i]
        if rz_new <= stop:
            return k, True, True
        beta = rz_new / rz
        for i in range(n):
            p[i] = z[i] + beta * p[i]
        rz = rz_new
    return max_it, False, True


@njit(**_JIT)
def newton_jacobi(
    s, b, y, sy, tol, max_iter, can_factor, cap, budget, consts, best_y, best_sy
):  # pragma: no cover - compiled
    """Newton steps from ``y`` (``sy = s @ y``) as long as Jacobi-CG serves.

    ``y`` and ``sy`` are updated in place to the last iterate; ``best_y`` / ``best_sy``
    receive the iterate with the smallest relative budget error. ``can_factor``: the
    Python iteration would factor the Newton matrix when CG is slow ('auto' up to
    ``DENSE_MAX_N`` assets); otherwise a truncated CG direction is used, as there.
    ``consts`` = (local error, stall steps, largest cut, short steps, diverged).

    Returns (code, iterations, best error, CG iterations, short steps).
    """
    local_error, stall_steps, max_cut, short_limit, diverged = (
        consts[0], int(consts[1]), consts[2], int(consts[3]), consts[4],
    )  # fmt: skip
    n = b.size
    binv = 1.0 / b
    bmin = b.min()
    diag = np.empty(n)
    for i in range(n):
        diag[i] = s[i, i]
    sigma = np.sqrt(diag)
    work = np.empty((10, n))
    r, u, res, z, p, yp, mp, jacobi, tu, y_new = (
        work[0], work[1], work[2], work[3], work[4], work[5], work[6], work[7], work[8],
        work[9],
    )  # fmt: skip
    best_err = math.inf
    stale = it = cg_its = short = 0
    while True:
        err = _relative_error(y, sy, b, binv)
        if err < 0.5 * best_err:
            stale = 0
        elif best_err < local_error:
            stale += 1  # quadratic phase without progress: the rounding floor
        if err < best_err:
            best_y[:] = y
            best_sy[:] = sy
            best_err = err
        if err <= tol or it >= max_iter or stale >= stall_steps:
            return DONE, it, best_err, cg_its, short
        if can_factor and (short >= short_limit or cg_its > budget):
            return HANDBACK, it, best_err, cg_its, short
        for i in range(n):
            r[i] = y[i] * sy[i] - b[i]
            jacobi[i] = 1.0 / (y[i] * y[i] * diag[i] + b[i])
        eta = max(min(0.1, err), 0.3 * tol / err)
        k, reached, positive = _pcg(
            s, y, b, r, eta, cap, jacobi, u, res, z, p, yp, mp
        )  # fmt: skip
        cg_its += k
        if not positive or (can_factor and not reached):
            return HANDBACK, it, best_err, cg_its, short
        it += 1
        lam2 = 0.0
        umin = math.inf
        for i in range(n):
            lam2 -= r[i] * u[i]
            umin = min(umin, u[i])
        if not lam2 > 0:
            return DONE, it, best_err, cg_its, short
        lam = math.sqrt(lam2 / bmin)
        local = lam <= 0.25
        t = 1.0 if umin >= -max_cut else max_cut / -umin
        t_safe = min(t, 1.0 / (1.0 + lam))
        while True:
            for i in range(n):
                tu[i] = t * u[i]
                y_new[i] = y[i] + y[i] * tu[i]
            sy_new = np.dot(s, y_new)
            if local and t == 1.0:
                break
            quad = 0.0
            barrier = 0.0
            for i in range(n):
                quad += (y[i] * tu[i]) * (sy_new[i] + sy[i])
                barrier += b[i] * math.log1p(tu[i])
            decrease = 0.5 * quad - barrier
            if decrease <= -0.1 * t * lam2 or (t <= t_safe and decrease < 0):
                break
            if err < 1e-3 and t == 1.0 and _relative_error(y_new, sy_new, b, binv) < err:
                break  # f is flat to rounding but the budgets improve: take the step
            if t < 1e-10:
                return DONE, it, best_err, cg_its, short  # rounding: no descent
            t = max(0.5 * t, t_safe) if t > t_safe else 0.5 * t
        if t < 0.5:
            short += 1
        y[:] = y_new
        sy[:] = sy_new
        zsum = 0.0
        for i in range(n):
            zsum += y[i] * sigma[i]
        if not zsum <= diverged:
            return DIVERGED, it, best_err, cg_its, short
