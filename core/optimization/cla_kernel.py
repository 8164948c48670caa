"""The compiled inner loop of the critical-line tracer (:mod:`core.optimization.cla`).

One call of :func:`advance` runs events of the parametric active-set path until it meets
something it leaves to Python (a rebuild of the KKT inverse, a ray step, a re-solve, a
corner that fails its check, a full buffer, the end of the path) and returns a code
saying which. Everything between those exits, which is nearly every event, runs here
without the GIL: the direction on the current active set (one product with the
maintained KKT inverse, refined against its residual), the ratio test for the next
event, the step, the KKT check of the new corner, recording it, and the update of the
inverse when a variable or a row enters or leaves (bordering, block-inverse downdate).

numpy would spend about 150 microseconds an event on call overhead on vectors of a few
hundred entries; compiled, an event costs its arithmetic (a few microseconds at n = 500).
The functions follow the methods of ``cla._Tracer`` that they replace one for one; the
tracer's docstring explains the state. numba compiles them on first use and keeps the
machine code in its on-disk cache, so later sessions load it in well under a second.

State is passed as arrays the tracer owns and this module updates in place: the scalars
live in ``fs`` (float) and ``ist`` (integer) at the slots named below.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from core.optimization.cla import _DROP as DROP
from core.optimization.cla import _EXACT_EVERY as EXACT_EVERY
from core.optimization.cla import _HIT as HIT
from core.optimization.cla import _RELEASE as RELEASE
from core.optimization.cla import _TIGHT as TIGHT
from core.optimization.cla import _TINY as TINY
from core.optimization.cla import ZERO_CURVATURE
from core.optimization.compiled import JIT as _JIT
from core.optimization.qp_kernel import absmax, axpy

# float state slots
F_T, F_DMAX, F_MUMAX, F_TOL, F_DSCALE, F_CTYMAX = 0, 1, 2, 3, 4, 5
N_FLOAT = 6
# integer state slots
(
    I_N, I_MEQ, I_SINCE, I_EVENTS, I_MAXEV, I_ZSTEPS, I_ZLIMIT, I_NC, I_KIND, I_IDX, I_SIDE,
    I_PAUSE,
) = range(12)  # fmt: skip
N_INT = 12

# exit codes of advance()
END = 0  # the max-return end of the path
NO_DIRECTION = 1  # the KKT solve of the active set is not accurate: rebuild
UNBOUNDED = 2  # the return grows without bound along the path
NOT_A_NUMBER = 3  # a step length is NaN
REPAIR = 4  # the new corner failed its KKT check
STALL = 5  # too many steps of length zero in a row (degenerate cycling)
UPDATE = 6  # the event (ist[I_KIND], ist[I_IDX], ist[I_SIDE]) needs Python
GROW = 7  # a buffer (KKT inverse, its rows, the corners) is full
MAX_EVENTS = 8  # the cap on events is reached
PAUSE = 9  # ist[I_PAUSE] events done (a seam for tests)


@njit(**_JIT)
def _layout(unit: np.ndarray, N: int, n: int):
    """Positions of the variable and row units, and their variable / row indices."""
    nv = 0
    for p in range(N):
        if unit[p] < n:
            nv += 1
    vpos = np.empty(nv, np.intp)
    rpos = np.empty(N - nv, np.intp)
    a = b = 0
    for p in range(N):
        if unit[p] < n:
            vpos[a] = p
            a += 1
        else:
            rpos[b] = p
            b += 1
    vidx = unit[vpos].copy()
    ridx = unit[rpos] - n
    return vpos, rpos, vidx, ridx


@njit(**_JIT)
def _kmul(Kb: np.ndarray, N: int, x: np.ndarray) -> np.ndarray:
    """Kinv @ x over the top-left N x N block."""
    out = np.zeros(N)
    for i in range(N):
        s = 0.0
        for j in range(N):
            s += Kb[i, j] * x[j]
        out[i] = s
    return out


@njit(**_JIT)
def direction(C, mu, Kb, M, unit, status, row_norm, fs, ist, d, dy, dz, Sd, Cd) -> bool:
    """(dw, dy, dz, Sigma dw, C dw) per unit t into d, dy, dz, Sd, Cd; False when the
    solve is not accurate (see ``_Tracer`` in cla for the method)."""
    m, n = C.shape
    N = ist[I_N]
    vpos, rpos, vidx, ridx = _layout(unit, N, n)
    nv, nr = vpos.size, rpos.size
    rhs = np.zeros(N)
    for a in range(nv):
        rhs[vpos[a]] = mu[vidx[a]]
    sol = _kmul(Kb, N, rhs)
    # componentwise rounding bound of sol (|Kinv| |rhs|)
    noise = np.zeros(N)
    for i in range(N):
        s = 0.0
        for j in range(N):
            s += abs(Kb[i, j]) * abs(rhs[j])
        noise[i] = s
    dscale = 0.0
    for a in range(nv):
        dscale = max(dscale, noise[vpos[a]])
    zero = nv <= nr
    if not zero:
        zero = True
        for a in range(nv):
            if abs(sol[vpos[a]]) > 1e-12 * dscale:
                zero = False
                break
    if zero:
        for a in range(nv):
            sol[vpos[a]] = 0.0
    rmax = absmax(row_norm) if m else 0.0
    rhsmax = absmax(rhs)
    Cty = np.zeros(n)
    dyv = np.zeros(m)
    r_var = np.zeros(nv)
    r_row = np.zeros(nr)
    e_var = e_row = np.inf
    for _ in range(3):
        # Sigma dw from the variable rows of M, C' dy from C, C dw over the free weights
        Sd[:] = 0.0
        for a in range(nv):
            if sol[vpos[a]] != 0.0:
                axpy(sol[vpos[a]], M[vpos[a]], Sd)
        dyv[:] = 0.0
        Cty[:] = 0.0
        for b in range(nr):
            s = sol[rpos[b]]
            dyv[ridx[b]] = s
            if s != 0.0:
                axpy(s, C[ridx[b]], Cty)
        d[:] = 0.0
        for a in range(nv):
            d[vidx[a]] = sol[vpos[a]]
        for i in range(m):
            s = 0.0
            for a in range(nv):
                s += C[i, vidx[a]] * d[vidx[a]]
            Cd[i] = s
        for a in range(nv):
            j = vidx[a]
            r_var[a] = Sd[j] + Cty[j] - rhs[vpos[a]]
        for b in range(nr):
            r_row[b] = Cd[ridx[b]]
        gs = max(rhsmax if N else 0.0, absmax(Sd), absmax(Cty), TINY)
        dm = max(absmax(d), 1e-6 * dscale)
        sr = max(dm * rmax if m else 0.0, TINY)
        e_var = absmax(r_var) / gs if nv else 0.0
        e_row = absmax(r_row) / sr if (nr and not zero) else 0.0
        if max(e_var, e_row) <= 1e-14:
            break
        res = np.zeros(N)
        for a in range(nv):
            res[vpos[a]] = r_var[a]
        for b in range(nr):
            res[rpos[b]] = r_row[b]
        corr = _kmul(Kb, N, res)
        for i in range(N):
            sol[i] -= corr[i]
        if zero:
            for a in range(nv):
                sol[vpos[a]] = 0.0
    if e_var > 1e-10 or e_row > 1e-8:  # the rows are put right after each step anyway
        return False
    if not zero:
        for a in range(nv):
            if abs(sol[vpos[a]]) <= 1e-12 * dscale:
                d[vidx[a]] = 0.0
    yscale = 0.0
    for b in range(nr):
        yscale = max(yscale, noise[rpos[b]])
    dy[:] = 0.0
    for b in range(nr):
        s = sol[rpos[b]]
        dy[ridx[b]] = 0.0 if abs(s) <= 1e-12 * yscale else s
    for j in range(n):
        dz[j] = 0.0 if status[j] == 0 else mu[j] - Sd[j] - Cty[j]
    fs[F_CTYMAX] = absmax(Cty)
    fs[F_DSCALE] = dscale
    return True


@njit(**_JIT)
def _earlier(best_tau, best_kind, best_idx, tau, idx, kind):
    """The earlier of the best event so far and a group's first (``idx`` -1: none); a
    tie keeps the best so far, whose kind is the smaller."""
    if idx >= 0 and max(tau, 0.0) < best_tau:
        return max(tau, 0.0), kind, idx
    return best_tau, best_kind, best_idx


@njit(**_JIT)
def next_event(C, dv, lb, ub, row_norm, is_eq, releasable, w, y, z, status, active, unit,
               fs, ist, d, dy, dz, Sd, Cd):  # fmt: skip
    """Step length to the first event and the event: (tau, kind, index). Ties go to the
    first event found (bound hits, then rows, then releases, then row drops); a NaN step
    length is returned as NaN."""
    m, n = C.shape
    N = ist[I_N]
    vpos, rpos, vidx, ridx = _layout(unit, N, n)
    best_tau, best_kind, best_idx = np.inf, HIT, -1
    # free weights reaching a bound (only the free ones move)
    k_tau, k_idx = np.inf, -1
    dfmax = 0.0
    for a in range(vidx.size):
        j = vidx[a]
        dF = d[j]
        dfmax = max(dfmax, abs(dF))
        if dF < 0.0:
            tv = (w[j] - lb[j]) / -dF
        elif dF > 0.0:
            tv = (ub[j] - w[j]) / dF
        else:
            tv = np.inf
        if np.isnan(tv):
            return np.nan, HIT, j
        if k_idx < 0 or tv < k_tau:
            k_tau, k_idx = tv, j
    best_tau, best_kind, best_idx = _earlier(best_tau, best_kind, best_idx, k_tau, k_idx, HIT)
    # rows outside the system becoming tight (an equality row outside it is dependent
    # on the others; if it would move, it must join at once)
    k_tau, k_idx = np.inf, -1
    reps0 = 1e-12 * max(dfmax, fs[F_DSCALE])
    for r in range(m):
        if active[r]:
            continue
        reps = reps0 * row_norm[r]
        tr = np.inf
        if is_eq[r]:
            if abs(Cd[r]) > reps:
                tr = 0.0
        elif Cd[r] > reps:
            slack = dv[r] - np.dot(C[r], w)
            tr = slack / Cd[r]
        if np.isnan(tr):
            return np.nan, TIGHT, r
        if k_idx < 0 or tr < k_tau:
            k_tau, k_idx = tr, r
    best_tau, best_kind, best_idx = _earlier(best_tau, best_kind, best_idx, k_tau, k_idx, TIGHT)
    # bound multipliers reaching zero: z <= 0 at a lower bound, >= 0 at an upper one, so
    # the wrong-signed rates are those with status * dz < 0
    zeps = 1e-12 * max(fs[F_MUMAX], absmax(Sd), fs[F_CTYMAX])
    k_tau, k_idx = np.inf, -1
    for j in range(n):
        if releasable[j] and status[j] * dz[j] < -zeps:
            tz = -z[j] / dz[j]
            if np.isnan(tz):
                return np.nan, RELEASE, j
            if k_idx < 0 or tz < k_tau:
                k_tau, k_idx = tz, j
    best_tau, best_kind, best_idx = _earlier(best_tau, best_kind, best_idx, k_tau, k_idx, RELEASE)
    # row multipliers reaching zero
    k_tau, k_idx = np.inf, -1
    for b in range(ridx.size):
        r = ridx[b]
        ty = -y[r] / dy[r] if (dy[r] < 0.0 and not is_eq[r]) else np.inf
        if np.isnan(ty):
            return np.nan, DROP, r
        if k_idx < 0 or ty < k_tau:
            k_tau, k_idx = ty, r
    best_tau, best_kind, best_idx = _earlier(best_tau, best_kind, best_idx, k_tau, k_idx, DROP)
    return best_tau, best_kind, best_idx


@njit(**_JIT)
def restore_rows(C, dv, Kb, M, unit, w, g, y, ist) -> None:
    """Put w back on its active rows after a step (solves K [dw; dy] = [0; r])."""
    m, n = C.shape
    N = ist[I_N]
    vpos, rpos, vidx, ridx = _layout(unit, N, n)
    if rpos.size == 0:
        return
    r = np.empty(rpos.size)
    for b in range(rpos.size):
        r[b] = dv[ridx[b]] - np.dot(C[ridx[b]], w)
    if not absmax(r) > 0.0:
        return
    corr = np.zeros(N)
    for i in range(N):
        s = 0.0
        for b in range(rpos.size):
            s += Kb[i, rpos[b]] * r[b]
        corr[i] = s
    for a in range(vpos.size):
        w[vidx[a]] += corr[vpos[a]]
        axpy(corr[vpos[a]], M[vpos[a]], g)
    for b in range(rpos.size):
        y[ridx[b]] += corr[rpos[b]]


@njit(**_JIT)
def corner_ok(C, mu, dv, lbf, ubf, has_lb, has_ub, bscale, rscale, row_norm, is_eq,
              releasable, w, g, y, z, status, active, fs, ist) -> bool:  # fmt: skip
    """KKT check of the current point from the running Sigma w (O(n m)): stationarity,
    feasibility, fixed weights on their bounds, rows in the system tight, signs."""
    m, n = C.shape
    t = fs[F_T]
    m_eq = ist[I_MEQ]
    Cty = np.zeros(n)
    for r in range(m):
        if y[r] != 0.0:
            axpy(y[r], C[r], Cty)
    gscale = max(fs[F_DMAX] * absmax(w), absmax(g), t * fs[F_MUMAX], absmax(Cty), absmax(z), TINY)
    tol = 0.1 * fs[F_TOL]
    worst = 0.0
    for j in range(n):
        worst = max(worst, abs(g[j] - t * mu[j] + Cty[j] + z[j]))
    if not worst <= tol * gscale:
        return False
    for r in range(m):
        res = (np.dot(C[r], w) - dv[r]) / rscale[r]
        viol = abs(res) if (is_eq[r] or active[r]) else max(res, 0.0)
        if not viol <= tol:
            return False
    for r in range(m_eq, m):
        if not -y[r] * row_norm[r] <= tol * gscale:
            return False
    # free weights inside their bounds, fixed ones on them; bound multipliers zero on
    # free weights and signed by the side elsewhere
    for j in range(n):
        st = status[j]
        if st == 0:
            off = max(max((lbf[j] - w[j]) * has_lb[j], (w[j] - ubf[j]) * has_ub[j]), 0.0)
            bad = abs(z[j])
        else:
            off = abs(w[j] - (lbf[j] if st < 0 else ubf[j]))
            bad = -st * z[j] if releasable[j] else 0.0
        if not off / bscale[j] <= tol:
            return False
        if not bad <= tol * gscale:
            return False
    return True


@njit(**_JIT)
def record(w, g, y, z, fs, ist, CT, CW, CY, CZ, CG) -> None:
    """Store the current point as a corner (unless it repeats the last one). The caller
    makes sure there is room for one more."""
    nc = ist[I_NC]
    t = fs[F_T]
    if nc and CT[nc - 1] == t:
        same = True
        for j in range(w.size):
            if CW[nc - 1, j] != w[j]:
                same = False
                break
        if same:
            return
    if nc and t == 0.0 and CT[nc - 1] == 0.0:
        nc -= 1  # several points at t = 0: only the last (highest return) is on the path
    CT[nc] = t
    CW[nc] = w
    CY[nc] = y
    CZ[nc] = z
    CG[nc] = g
    ist[I_NC] = nc + 1


@njit(**_JIT)
def _remove(Kb, M, unit, pos, ist, p: int) -> None:
    """Remove the unit at position p from the inverse (block-inverse downdate)."""
    N = ist[I_N]
    last = N - 1
    if p != last:  # swap p and last in every structure
        for j in range(N):
            Kb[p, j], Kb[last, j] = Kb[last, j], Kb[p, j]
        for i in range(N):
            Kb[i, p], Kb[i, last] = Kb[i, last], Kb[i, p]
        for j in range(M.shape[1]):
            M[p, j], M[last, j] = M[last, j], M[p, j]
        up, ul = unit[p], unit[last]
        unit[p], unit[last] = ul, up
        pos[ul], pos[up] = p, last
    piv = Kb[last, last]
    c = Kb[last, :last].copy()
    for i in range(last):
        a = c[i] / piv
        if a != 0.0:
            for j in range(last):
                Kb[i, j] -= a * c[j]
    pos[unit[last]] = -1
    ist[I_N] = last


@njit(**_JIT)
def _add(Kb, M, unit, pos, ist, u: int, v: np.ndarray, s: float, row: np.ndarray) -> None:
    """Append unit u whose KKT column has Kinv-image v and Schur complement s (bordering)."""
    N = ist[I_N]
    for i in range(N):
        a = v[i] / s
        if a != 0.0:
            for j in range(N):
                Kb[i, j] += a * v[j]
    for i in range(N):
        Kb[i, N] = -v[i] / s
        Kb[N, i] = -v[i] / s
    Kb[N, N] = 1.0 / s
    M[N] = row
    unit[N] = u
    pos[u] = N
    ist[I_N] = N + 1


@njit(**_JIT)
def _update(S, C, lb, ub, w, g, y, z, status, active, frozen, Kb, M, unit, pos, fs, ist,
            kind: int, idx: int, side: int) -> bool:  # fmt: skip
    """The active-set change of an event when it is a plain bordering or downdate;
    False (nothing changed) when it needs Python: a rebuild (a dependent pivot, frozen
    rows) or a ray step (no curvature along the new direction)."""
    m, n = C.shape
    N = ist[I_N]
    dmax = fs[F_DMAX]
    if kind == HIT:  # free variable idx reached a bound
        p = pos[idx]
        rowmax = 0.0
        for j in range(N):
            rowmax = max(rowmax, abs(Kb[p, j]))
        if not Kb[p, p] > 1e-14 * rowmax:
            return False
        bound = ub[idx] if side > 0 else lb[idx]
        axpy(bound - w[idx], M[p], g)
        w[idx] = bound
        status[idx] = side
        z[idx] = 0.0
        _remove(Kb, M, unit, pos, ist, p)
        return True
    if kind == TIGHT:  # inactive row idx became tight
        if N == 0:
            return False
        k = np.zeros(N)
        for p in range(N):
            if unit[p] < n:
                k[p] = C[idx, unit[p]]
        v = _kmul(Kb, N, k)
        s = -np.dot(k, v)
        if not abs(s) > 1e-13 * absmax(k) * absmax(v):
            return False
        active[idx] = True
        y[idx] = 0.0
        _add(Kb, M, unit, pos, ist, n + idx, v, s, C[idx])
        return True
    for r in range(m):
        if frozen[r]:
            return False  # a frozen row may join or take over a share: rebuild
    if kind == RELEASE:  # bound multiplier of idx reached zero: free it
        k = np.empty(N)
        for p in range(N):
            k[p] = M[p, idx]
        v = _kmul(Kb, N, k)
        s = S[idx, idx] - np.dot(k, v)
        unorm2 = 1.0
        for p in range(N):
            if unit[p] < n:
                unorm2 += v[p] * v[p]
        if not s > ZERO_CURVATURE * dmax * unorm2:
            return False
        z[idx] = 0.0
        status[idx] = 0
        _add(Kb, M, unit, pos, ist, idx, v, s, S[idx])
        return True
    # DROP: multiplier of active row idx reached zero
    p = pos[idx + n]
    unorm2 = 0.0
    for q in range(N):
        if unit[q] < n:
            unorm2 += Kb[q, p] * Kb[q, p]
    if not -Kb[p, p] > ZERO_CURVATURE * dmax * unorm2:
        return False
    y[idx] = 0.0
    active[idx] = False
    _remove(Kb, M, unit, pos, ist, p)
    return True


@njit(**_JIT)
def advance(S, C, mu, dv, lb, ub, lbf, ubf, has_lb, has_ub, bscale, rscale, row_norm,
            is_eq, releasable, w, g, y, z, status, active, frozen, Kb, M, unit, pos, fs,
            ist, CT, CW, CY, CZ, CG) -> int:  # fmt: skip
    """Run events until one needs Python; returns the exit code (module constants)."""
    m, n = C.shape
    d = np.zeros(n)
    dz = np.zeros(n)
    Sd = np.zeros(n)
    dy = np.zeros(m)
    Cd = np.zeros(m)
    while True:
        N = ist[I_N]
        if N + 2 > Kb.shape[0] or N + 2 > M.shape[0] or ist[I_NC] + 3 > CT.shape[0]:
            return GROW
        if ist[I_EVENTS] >= ist[I_MAXEV]:
            return MAX_EVENTS
        if ist[I_PAUSE] >= 0 and ist[I_EVENTS] >= ist[I_PAUSE]:
            ist[I_PAUSE] = -1
            return PAUSE
        if not direction(C, mu, Kb, M, unit, status, row_norm, fs, ist, d, dy, dz, Sd, Cd):
            return NO_DIRECTION
        tau, kind, idx = next_event(
            C, dv, lb, ub, row_norm, is_eq, releasable, w, y, z, status, active, unit, fs,
            ist, d, dy, dz, Sd, Cd,
        )  # fmt: skip
        if np.isnan(tau):
            return NOT_A_NUMBER
        if not np.isfinite(tau):
            return UNBOUNDED if absmax(d) > 0.0 else END
        ist[I_EVENTS] += 1
        side = 0
        if kind == HIT:
            side = -1 if d[idx] < 0.0 else 1
        if tau > 0.0:
            ist[I_ZSTEPS] = 0
            fs[F_T] += tau
            axpy(tau, d, w)
            axpy(tau, Sd, g)
            axpy(tau, dz, z)
            axpy(tau, dy, y)
            restore_rows(C, dv, Kb, M, unit, w, g, y, ist)
            if kind == HIT:  # land exactly on the bound before recording the corner
                bound = ub[idx] if d[idx] > 0.0 else lb[idx]
                axpy(bound - w[idx], S[idx], g)
                w[idx] = bound
            ist[I_SINCE] += 1
            if ist[I_SINCE] >= EXACT_EVERY:
                g[:] = np.dot(S, w)
                ist[I_SINCE] = 0
            ok = corner_ok(
                C, mu, dv, lbf, ubf, has_lb, has_ub, bscale, rscale, row_norm, is_eq,
                releasable, w, g, y, z, status, active, fs, ist,
            )  # fmt: skip
            if not ok:
                return REPAIR
            record(w, g, y, z, fs, ist, CT, CW, CY, CZ, CG)
        else:
            ist[I_ZSTEPS] += 1
            if ist[I_ZSTEPS] > ist[I_ZLIMIT]:
                return STALL
        ist[I_KIND], ist[I_IDX], ist[I_SIDE] = kind, idx, side
        if not _update(
            S, C, lb, ub, w, g, y, z, status, active, frozen, Kb, M, unit, pos, fs, ist,
            kind, idx, side,
        ):  # fmt: skip
            return UPDATE
        record(w, g, y, z, fs, ist, CT, CW, CY, CZ, CG)


@njit(**_JIT)
def kkt_residuals(T, X, PX, Aty_eq, Aty_ub, r_eq, r_ub, yb, mu, lbf, ubf, fin_lb, fin_ub,
                  b_eq, b_ub, Yub, row_norm_ub, Z, pdiag, mumax, out) -> None:  # fmt: skip
    """The residuals of ``check_kkt`` for p points of the t-form, into ``out`` (9, p).

    ``PX = X Sigma``, ``Aty_eq = Y_eq A_eq``, ``Aty_ub = Y_ub A_ub``, ``r_eq = X A_eq' -
    b_eq``, ``r_ub = X A_ub' - b_ub`` and ``yb = Y_eq b_eq + Y_ub b_ub`` are matrix
    products done by the caller; one pass over each point does the rest. Rows of
    ``out``: primal, primal_abs, dual, stationarity, complementarity, gap, objective,
    objective_scale, variance (the keys of ``cla._kkt_batch``). As in ``check_kkt``, a
    point with a NaN or infinite entry gets infinite residuals (it fails every test) and
    a NaN objective.
    """
    p, n = X.shape
    for i in range(p):
        t = T[i]
        xPx = xmu = 0.0
        xmax = pxmax = eqmax = ubmax = zmax = 0.0
        resid = 0.0
        v_abs = v_rel = 0.0
        dual = comp = 0.0
        bound_term = 0.0
        bad = not np.isfinite(t)
        for j in range(n):
            x, px, z = X[i, j], PX[i, j], Z[i, j]
            if not (np.isfinite(x) and np.isfinite(px) and np.isfinite(z)):
                bad = True
            xPx += x * px
            xmu += x * mu[j]
            xmax = max(xmax, abs(x))
            pxmax = max(pxmax, abs(px))
            eqmax = max(eqmax, abs(Aty_eq[i, j]))
            ubmax = max(ubmax, abs(Aty_ub[i, j]))
            zmax = max(zmax, abs(z))
            resid = max(resid, abs(px - t * mu[j] + Aty_eq[i, j] + Aty_ub[i, j] + z))
            z_up = max(z, 0.0)
            z_lo = max(-z, 0.0)
            if fin_lb[j]:
                v = max(lbf[j] - x, 0.0)
                v_abs = max(v_abs, v)
                v_rel = max(v_rel, v / max(1.0, abs(lbf[j])))
                comp = max(comp, abs(z_lo * (x - lbf[j])))
                bound_term -= z_lo * lbf[j]
            else:
                dual = max(dual, z_lo)
            if fin_ub[j]:
                v = max(x - ubf[j], 0.0)
                v_abs = max(v_abs, v)
                v_rel = max(v_rel, v / max(1.0, abs(ubf[j])))
                comp = max(comp, abs(z_up * (ubf[j] - x)))
                bound_term += z_up * ubf[j]
            else:
                dual = max(dual, z_up)
        for r in range(r_eq.shape[1]):
            v = abs(r_eq[i, r])
            v_abs = max(v_abs, v)
            v_rel = max(v_rel, v / max(1.0, abs(b_eq[r])))
        for r in range(r_ub.shape[1]):
            if not np.isfinite(Yub[i, r]):
                bad = True
            v = max(r_ub[i, r], 0.0)
            v_abs = max(v_abs, v)
            v_rel = max(v_rel, v / max(1.0, abs(b_ub[r])))
            dual = max(dual, max(-Yub[i, r], 0.0) * row_norm_ub[r])
            comp = max(comp, abs(max(Yub[i, r], 0.0) * -r_ub[i, r]))
        if not np.isfinite(yb[i]):
            bad = True
        qx = -t * xmu
        gscale = max(pdiag * xmax, pxmax, abs(t) * mumax, eqmax, ubmax, zmax)
        if not gscale > 0.0:
            gscale = 1.0
        oscale = max(abs(xPx) + abs(qx), gscale * xmax)
        if not oscale > 0.0:
            oscale = 1.0
        if bad:
            for k in range(6):
                out[k, i] = np.inf
            out[6, i] = out[7, i] = out[8, i] = np.nan
            continue
        out[0, i] = v_rel
        out[1, i] = v_abs
        out[2, i] = dual / gscale
        out[3, i] = resid / gscale
        out[4, i] = comp / oscale
        out[5, i] = abs(xPx + qx + yb[i] + bound_term) / oscale
        out[6, i] = 0.5 * xPx + qx
        out[7, i] = oscale
        out[8, i] = xPx
