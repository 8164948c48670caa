"""The primal-dual active-set iteration of :mod:`core.optimization.qp`, compiled.

:func:`pdas` is the iteration of ``_ActiveSetKernel.pdas`` (Hintermueller, Ito and Kunisch
2002) for the common case, without the GIL and without numpy's per-call overhead, which
is most of the cost on a portfolio of a few hundred funds: each step fixes the variables
outside their bounds, releases fixed ones with wrong-signed multipliers (by blocks on a
cold start), drops working rows with wrong-signed multipliers and adds violated ones,
then solves the equality-constrained QP on the new working set (Cholesky of the free
block of ``P + eps I``, range-space solve through the rows' Schur complement, two rounds
of iterative refinement). It refactorises the free block each step instead of updating
it, which costs nothing at the sizes it takes (at most :data:`MAX_FREE` free variables).

It handles what the Python iteration handles, in the same ways: equality rows that a
small free set does not span, working rows that depend on each other, rows a small free
set cannot meet, a free block so nearly singular that the whole KKT matrix is solved
instead. Where it fails (a cycle, a free block not positive definite even after
regularisation, a free set too large) it gives up (code :data:`GAVE_UP`) and leaves the
problem to the Python iteration, which then fails or settles the same way or goes on to
its own fallbacks. Its answers are KKT-checked by ``solve_qp`` like
every other.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from core.optimization.compiled import JIT as _JIT

#: Exit codes.
SETTLED, GAVE_UP = 0, 1
#: Largest free set the compiled iteration factorises (the Python one updates factors).
MAX_FREE = 600
#: As ``qp._COLD_ROW_BURST``: violated rows added at once while bounds still move (cold).
COLD_ROW_BURST = 4
_TINY = 1e-300


@njit(**_JIT)
def _row(A_eq, A_ub, r: int) -> np.ndarray:
    m_eq = A_eq.shape[0]
    return A_eq[r] if r < m_eq else A_ub[r - m_eq]


@njit(**_JIT)
def _forward(L, b) -> np.ndarray:
    """Solve L u = b (L lower triangular)."""
    k = b.size
    u = b.copy()
    for i in range(k):
        s = u[i]
        for j in range(i):
            s -= L[i, j] * u[j]
        u[i] = s / L[i, i]
    return u


@njit(**_JIT)
def _backward(L, b) -> np.ndarray:
    """Solve L' u = b (L lower triangular)."""
    k = b.size
    u = b.copy()
    for i in range(k - 1, -1, -1):
        s = u[i]
        for j in range(i + 1, k):
            s -= L[j, i] * u[j]
        u[i] = s / L[i, i]
    return u


@njit(**_JIT)
def _cho_solve(L, b) -> np.ndarray:
    return _backward(L, _forward(L, b))


@njit(**_JIT)
def absmax(x) -> float:
    """``max |x_i|`` (0 for an empty x); NaN if x holds one, so that a check fails on it.
    Shared with :mod:`~core.optimization.cla_kernel`."""
    out = 0.0
    for v in x:
        a = abs(v)
        if a > out:
            out = a
        elif a != a:
            return np.nan
    return out


@njit(**_JIT)
def axpy(a: float, x, out) -> None:
    """``out += a x`` in place (one row of a matrix times a number, accumulated).
    Shared with :mod:`~core.optimization.cla_kernel`."""
    for j in range(out.size):
        out[j] += a * x[j]


@njit(**_JIT)
def _eqp(H, L, CW, gF, rW):
    """``min 0.5 p'Hp + gF'p  s.t.  CW p = rW`` by the range-space method with two rounds
    of iterative refinement; (ok, p, y)."""
    nF, nW = gF.size, rW.size
    V = np.empty((nF, nW))
    for k in range(nW):
        V[:, k] = _cho_solve(L, CW[k].copy())
    Ls = np.zeros((nW, nW))
    if nW:
        Sc = CW @ V
        Sc = 0.5 * (Sc + Sc.T)
        try:
            Ls = np.linalg.cholesky(Sc)
        except Exception:  # noqa: BLE001 - dependent rows: the Python iteration's case
            return False, np.zeros(nF), np.zeros(nW)
        dmin, dmax = np.inf, 0.0
        for k in range(nW):
            dmin = min(dmin, Ls[k, k])
            dmax = max(dmax, Ls[k, k])
        if not dmin * dmin >= 1e-13 * dmax * dmax:
            return False, np.zeros(nF), np.zeros(nW)
    p = np.zeros(nF)
    y = np.zeros(nW)
    g = gF.copy()
    r = rW.copy()
    gs = absmax(gF)
    rs = absmax(rW)
    cmax = 0.0
    for k in range(nW):
        cmax = max(cmax, absmax(CW[k]))
    e1 = e2 = np.inf
    for it in range(3):
        # solve for the correction (dp, dy) of the current residual (g, r)
        u = _cho_solve(L, g)
        if nW:
            yy = _cho_solve(Ls, r + CW @ u)
            dp = -u + V @ yy
            dy = -yy
        else:
            dp = -u
            dy = np.zeros(0)
        p += dp
        y += dy
        if it == 2:
            break
        Hp = H @ p
        r1 = gF + Hp
        if nW:
            r1 += CW.T @ y
            r2 = rW - CW @ p
        else:
            r2 = np.zeros(0)
        s1 = max(gs, absmax(Hp), _TINY)
        s2 = max(rs, absmax(p) * cmax if nW else 0.0, _TINY)
        e1 = absmax(r1) / s1
        e2 = absmax(r2) / s2 if nW else 0.0
        if e1 <= 1e-14 and e2 <= 1e-14:
            return True, p, y
        g = r1
        r = r2
    # after two refinements: accept as the Python iteration does, or give up (it then
    # solves the whole KKT matrix by LU)
    Hp = H @ p
    r1 = gF + Hp
    if nW:
        r1 += CW.T @ y
        r2 = rW - CW @ p
        e2 = absmax(r2) / max(rs, absmax(p) * cmax, _TINY)
    else:
        e2 = 0.0
    e1 = absmax(r1) / max(gs, absmax(Hp), _TINY)
    if e1 <= 1e-9 and e2 <= 1e-9:
        return True, p, y
    return _eqp_full(H, CW, gF, rW)


@njit(**_JIT)
def _eqp_full(H, CW, gF, rW):
    """The range-space solve lost too many digits (a nearly singular free block): LU of
    the whole KKT matrix with one refinement step, accepted at a residual of 1e-12."""
    nF, nW = gF.size, rW.size
    K = np.zeros((nF + nW, nF + nW))
    K[:nF, :nF] = H
    K[nF:, :nF] = CW
    K[:nF, nF:] = CW.T
    rhs = np.concatenate((-gF, rW))
    try:
        sol = np.linalg.solve(K, rhs)
        sol += np.linalg.solve(K, rhs - K @ sol)
    except Exception:  # noqa: BLE001 - singular: the Python iteration says why
        return False, np.zeros(nF), np.zeros(nW)
    if not np.isfinite(sol).all():
        return False, np.zeros(nF), np.zeros(nW)
    res = absmax(K @ sol - rhs)
    kmax = 0.0
    for i in range(nF + nW):
        kmax = max(kmax, absmax(K[i]))
    scale = max(absmax(rhs), kmax * absmax(sol), _TINY)
    return res <= 1e-12 * scale, sol[:nF].copy(), sol[nF:].copy()


@njit(**_JIT)
def _independent(CW, W, m_eq: int) -> np.ndarray:
    """Positions of a maximal independent subset of the rows of CW, equality rows first
    (Gram-Schmidt with pivoting on the rows scaled to max |entry| 1, equality rows
    weighted 1e3: the pivoted QR of the Python iteration)."""
    nW, nF = CW.shape
    R = np.empty((nW, nF))
    for k in range(nW):
        w = (1e3 if W[k] < m_eq else 1.0) / max(absmax(CW[k]), _TINY)
        for c in range(nF):
            R[k, c] = CW[k, c] * w
    used = np.zeros(nW, np.bool_)
    keep = np.empty(nW, np.intp)
    rank = 0
    first = 0.0
    for _ in range(min(nW, nF)):
        best, best_k = -1.0, -1
        for k in range(nW):
            if not used[k]:
                nrm = np.sqrt(np.dot(R[k], R[k]))
                if nrm > best:
                    best, best_k = nrm, k
        if rank == 0:
            first = best
        if not best > 1e-9 * max(first, _TINY):
            break
        used[best_k] = True
        keep[rank] = best_k
        rank += 1
        qk = R[best_k] / best
        for k in range(nW):
            if not used[k]:
                R[k] -= np.dot(R[k], qk) * qk
    return np.sort(keep[:rank])


@njit(**_JIT)
def _release_for_rows(A_eq, A_ub, W, rw, state, fixed, limit: int) -> bool:
    """Free up to ``limit`` fixed variables whose move off their bound reduces the
    residuals ``rw`` of the unmet working rows, largest coefficient first; False when
    none can (``_ActiveSetKernel._release_for_rows``)."""
    n = state.size
    score = np.zeros(n)
    n_cand = 0
    for j in range(n):
        if state[j] == 0 or fixed[j]:
            continue
        away = 1.0 if state[j] == -1 else -1.0  # the direction it may move
        best = 0.0
        for k in range(W.size):
            if abs(rw[k]) > 1e-11:
                sign = 1.0 if rw[k] > 0.0 else -1.0
                best = max(best, -sign * _row(A_eq, A_ub, W[k])[j] * away)
        score[j] = best
        if best > 0.0:
            n_cand += 1
    if n_cand == 0:
        return False
    order = np.argsort(-score)[: min(n_cand, limit)]
    for j in order:
        state[j] = 0
    return True


@njit(**_JIT)
def _span_equalities(Ae, state, fixed) -> None:
    """Free fixed variables until the (scaled) equality rows are independent on the free
    set, each time the one whose column adds most to the span of the free columns
    (``_ActiveSetKernel._independent_working_set``); stops quietly when none can."""
    m_eq, n = Ae.shape
    Q = np.zeros((m_eq, m_eq))  # rows: the basis vectors
    for _ in range(m_eq + 1):
        rank = 0  # an orthonormal basis of the free columns' span, by Gram-Schmidt
        for j in range(n):
            if state[j] != 0 or rank == m_eq:
                continue
            v = Ae[:, j].copy()
            for k in range(rank):
                v -= np.dot(Q[k], v) * Q[k]
            nv = np.sqrt(np.dot(v, v))
            if nv > 1e-9:
                Q[rank] = v / nv
                rank += 1
        if rank >= m_eq:
            return
        best, best_j = -1.0, -1
        for j in range(n):
            if state[j] != 0 and not fixed[j]:
                v = Ae[:, j].copy()
                for k in range(rank):
                    v -= np.dot(Q[k], v) * Q[k]
                nv = np.dot(v, v)
                if nv > best:
                    best, best_j = nv, j
        if best_j < 0:
            return
        state[best_j] = 0


@njit(**_JIT)
def _factor(H, P, F, eps):
    """Cholesky factor of ``H = P_FF + eps I`` (written into H's diagonal), raising eps
    a hundredfold up to three times where the block is numerically singular."""
    for _ in range(4):
        for k in range(F.size):
            H[k, k] = P[F[k], F[k]] + eps
        try:
            return True, np.linalg.cholesky(H), eps
        except Exception:  # noqa: BLE001 - not positive definite: regularise harder
            eps *= 100.0
    return False, H, eps


@njit(**_JIT)
def _hash(state, inW) -> int:
    h = np.uint64(1469598103934665603)
    prime = np.uint64(1099511628211)
    for v in state:
        h = (h ^ np.uint64(v + 2)) * prime
    for v in inW:
        h = (h ^ np.uint64(3 if v else 5)) * prime
    return np.int64(h)


@njit(**_JIT)
def pdas(P, q, A_eq, A_ub, d, lb, ub, fixed, state, inW, eps, tol, block, max_iter,
         x_scale):  # fmt: skip
    """Primal-dual active-set iteration from ``state`` (per variable: -1 at its lower
    bound, +1 at its upper one, 0 free) and working rows ``inW`` (both updated in place).

    Returns ``(code, x, y, z, F, L, H, eps, iterations, objective, largest)``: the
    answer with ``y`` over the stacked rows ``[A_eq; A_ub]``, the final free set with the
    Cholesky factor ``L`` of ``H = P_FF + eps I``, ``0.5 x'Px + q'x``, and the size of
    the largest free block factorised. ``block`` as in
    ``_ActiveSetKernel.pdas`` (0 on warm starts).
    """
    n = P.shape[0]
    m_eq = A_eq.shape[0]
    m = m_eq + A_ub.shape[0]
    nothing = (
        GAVE_UP, np.zeros(n), np.zeros(m), np.zeros(n), np.zeros(0, np.intp),
        np.zeros((0, 0)), np.zeros((0, 0)), eps, 0, 0.0, 0,
    )  # fmt: skip
    dmax = 0.0
    for j in range(n):
        dmax = max(dmax, P[j, j])
    qmax = absmax(q)
    ptol_lo = np.empty(n)
    ptol_up = np.empty(n)
    for j in range(n):
        ptol_lo[j] = 1e-12 * max(1.0, abs(lb[j]) if np.isfinite(lb[j]) else 0.0)
        ptol_up[j] = 1e-12 * max(1.0, abs(ub[j]) if np.isfinite(ub[j]) else 0.0)
    row_scale = np.empty(m)
    for r in range(m):
        row_scale[r] = max(1.0, abs(d[r]))
    row_norm = np.full(m, -1.0)  # max_j |C_rj|, computed when first needed
    leave = np.empty(n)
    for j in range(n):
        leave[j] = 1.0 / np.sqrt(max(P[j, j], 0.0) + eps)
    seen = np.empty(max_iter, np.int64)
    largest = 0  # the largest free block factorised
    Ae = np.empty((m_eq, n))  # the equality rows scaled to max |entry| 1
    for r in range(m_eq):
        Ae[r] = A_eq[r] / max(absmax(A_eq[r]), _TINY)
    for it in range(max_iter):
        if block and m_eq:  # a small free set may not span the equality rows
            _span_equalities(Ae, state, fixed)
        h = _hash(state, inW)
        for k in range(it):
            if seen[k] == h:
                return nothing  # cycled
        seen[it] = h
        nF = 0
        for j in range(n):
            if state[j] == 0:
                nF += 1
        if nF > MAX_FREE:
            return nothing
        largest = max(largest, nF)
        F = np.empty(nF, np.intp)
        B = np.empty(n - nF, np.intp)
        a = b = 0
        x = np.zeros(n)
        for j in range(n):
            if state[j] == 0:
                F[a] = j
                a += 1
            else:
                B[b] = j
                b += 1
                x[j] = lb[j] if state[j] < 0 else ub[j]
                if not np.isfinite(x[j]):
                    return nothing
        W = np.flatnonzero(inW)
        nW = W.size
        # gF = q_F + P_FB x_B (P symmetric: rows of the non-zero fixed weights)
        gF = q[F].copy()
        for j in B:
            if x[j] != 0.0:
                xj = x[j]
                Pj = P[j]
                for k in range(nF):
                    gF[k] += xj * Pj[F[k]]
        CW = np.empty((nW, nF))
        rW = np.empty(nW)
        for k in range(nW):
            Cr = _row(A_eq, A_ub, W[k])
            s = 0.0
            for j in B:
                s += Cr[j] * x[j]
            rW[k] = d[W[k]] - s
            for c in range(nF):
                CW[k, c] = Cr[F[c]]
        H = np.empty((nF, nF))
        for r in range(nF):
            Pr = P[F[r]]
            for c in range(nF):
                H[r, c] = Pr[F[c]]
        if nF == 0:
            if nW and absmax(rW) > 1e-12:
                return nothing  # working rows cannot be met with every variable fixed
            L = H
            xF, y = np.zeros(0), np.zeros(nW)
        else:
            ok, L, eps = _factor(H, P, F, eps)
            if not ok:
                return nothing
            ok, xF, y = _eqp(H, L, CW, gF, rW)
            if not ok and nW:
                # rows dependent on the free variables (repeated caps, a vertex): solve
                # with an independent subset; the others are implied, multiplier 0
                sub = _independent(CW, W, m_eq)
                if sub.size < nW:
                    ok, xF, ysub = _eqp(H, L, CW[sub], gF, rW[sub])
                    y = np.zeros(nW)
                    y[sub] = ysub
            if not ok:
                return nothing
        if block and nF and absmax(xF) > 1e6 * x_scale:
            return nothing  # only the regularisation holds x (singular P)
        for k in range(nF):
            x[F[k]] = xF[k]
        # g = P x + q from the rows of P where x is non-zero
        g = q.copy()
        for j in range(n):
            if x[j] != 0.0:
                axpy(x[j], P[j], g)
        Cty = np.zeros(n)
        for k in range(nW):
            if y[k] != 0.0:
                axpy(y[k], _row(A_eq, A_ub, W[k]), Cty)
        gscale = max(dmax * absmax(x), absmax(g), qmax, _TINY)
        dtol = 1e-3 * tol * gscale
        changed = False
        # primal: free variables outside their bounds are fixed at the bound they cross
        for k in range(nF):
            j = F[k]
            if xF[k] < lb[j] - ptol_lo[j]:
                state[j] = -1
                changed = True
            elif xF[k] > ub[j] + ptol_up[j]:
                state[j] = 1
                changed = True
        # dual: fixed variables with wrong-signed multipliers are released
        zB = np.empty(B.size)
        wrongness = np.empty(B.size)
        n_wrong = 0
        for k in range(B.size):
            j = B[k]
            zB[k] = -(g[j] + eps * x[j]) - Cty[j]
            wrongness[k] = zB[k] if state[j] == -1 else -zB[k]
            if wrongness[k] > dtol and not fixed[j]:
                n_wrong += 1
        if n_wrong:
            rel = np.empty(n_wrong, np.intp)
            score = np.empty(n_wrong)
            a = 0
            for k in range(B.size):
                j = B[k]
                if wrongness[k] > dtol and not fixed[j]:
                    rel[a] = j
                    score[a] = wrongness[k] * leave[j]
                    a += 1
            lim = max(block, (1 if changed else 4) * nF)
            if block and n_wrong > lim:
                rel = rel[np.argsort(-score)[:lim]]
            for j in rel:
                state[j] = 0
            changed = True
        # working inequality rows with wrong-signed multipliers leave
        for k in range(nW):
            r = W[k]
            if r >= m_eq:
                if row_norm[r] < 0.0:
                    row_norm[r] = max(absmax(_row(A_eq, A_ub, r)), _TINY)
                if y[k] * row_norm[r] < -dtol:
                    inW[r] = False
                    changed = True
        # violated rows outside the working set join, most violated first
        n_viol = 0
        viol_r = np.empty(m, np.intp)
        viol_v = np.empty(m)
        nz = np.flatnonzero(x)
        for r in range(m):
            if not inW[r]:
                Cr = _row(A_eq, A_ub, r)
                if 4 * nz.size < n:  # most weights at a zero bound: only their columns
                    s = 0.0
                    for j in nz:
                        s += Cr[j] * x[j]
                else:
                    s = np.dot(Cr, x)
                res = (s - d[r]) / row_scale[r]
                if res > 1e-12:
                    viol_r[n_viol] = r
                    viol_v[n_viol] = res
                    n_viol += 1
        if n_viol:
            room = 0
            for j in range(n):
                if state[j] == 0:
                    room += 1
            for r in range(m):
                if inW[r]:
                    room -= 1
            if block and changed and n_viol > COLD_ROW_BURST:
                room = min(room, 1)
            order = np.argsort(-viol_v[:n_viol])[: max(room, 1)]
            for k in order:
                inW[viol_r[k]] = True
            changed = True
        if changed:
            continue
        # settled: working rows the solve left slack leave; rows it did not meet (not
        # implied by the others) give up
        rw = np.empty(nW)
        slack = False
        for k in range(nW):
            r = W[k]
            rw[k] = (np.dot(_row(A_eq, A_ub, r), x) - d[r]) / row_scale[r]
            if rw[k] < -1e-11 and r >= m_eq:
                inW[r] = False
                slack = True
        if slack:
            continue
        if nW and absmax(rw) > 1e-11:
            # rows a small free set cannot meet: free variables that can (cold), or give up
            if block and _release_for_rows(A_eq, A_ub, W, rw, state, fixed, block):
                continue
            return nothing
        z = np.zeros(n)
        for k in range(B.size):
            z[B[k]] = zB[k]
        yfull = np.zeros(m)
        for k in range(nW):
            yfull[W[k]] = y[k]
        objective = 0.0
        for j in range(n):
            objective += x[j] * (g[j] + q[j])
        return SETTLED, x, yfull, z, F, L, H, eps, it + 1, 0.5 * objective, largest
    return nothing
