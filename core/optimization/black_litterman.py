"""Black-Litterman: equilibrium prior, views to (P, Q), and the closed-form posterior.

Everything is a pure function on numpy arrays; the engine attaches symbols.

Where to run it: funds or exposures
-----------------------------------
StackOpt models fund returns (in excess of cash) through their exposures,
``r_f = E' r_x - c + noise`` with ``E`` (K types x N funds, fractions) and annual costs
``c`` (N,). A view on an exposure type (``US_EQUITY`` returns 5%) is a view on the return
of ONE UNIT of that exposure. Two ways to use it, both supported by
:func:`views_to_matrices`:

* ``level='exposure'`` (recommended whenever the fund moments come from the exposure
  model): run Black-Litterman on the K exposure types. The prior is ``pi_x`` with
  ``Sigma_x`` (e.g. ``implied_equilibrium_returns(Sigma_x, E @ w_mkt)``); a view on type
  ``k`` is the row ``e_k``; a view on fund ``i`` is the row ``E[:, i]'`` with its target
  raised by the fund's cost ``c_i`` (``r_i = q  <=>  E_i' r_x = q + c_i``). Then project:
  ``mu_f = E' mu_x_post - c`` and ``Sigma_f = E' Sigma_x_post E + D``. Exact, and it
  works whatever funds are selected (a view on gold is meaningful even if no gold fund
  can isolate it).
* ``level='fund'``: run it on the N funds (prior ``pi_f``, ``Sigma_f``). A view on type
  ``k`` becomes a view on the minimum-norm fund portfolio ``v`` that replicates one unit
  of it (``E v = e_k``; ``v' r_f = r_x,k - v'c``, so the target is lowered by ``v'c``).
  This needs the selected funds to isolate that exposure (SPY isolates US equity; RSSB
  alone cannot), otherwise a ValidationError says to work at the exposure level. Among
  several replicating portfolios the minimum-norm one is a choice, not a necessity.

Omega from confidences (Idzorek 2004)
-------------------------------------
Idzorek asks, for each view on its own, for the ``omega_k`` at which the unconstrained
weights ``w = (delta Sigma)^-1 mu`` move from the market weights toward the
100%-confidence weights by the fraction ``c_k``. With one view the posterior shift is
``s / (s + omega)`` times the full-confidence shift (``s = tau p Sigma p'``), and the
weights are linear in ``mu``, so the tilt is exactly ``c_k`` at
``omega_k = (1 - c_k) / c_k * tau * p_k Sigma p_k'`` (Walters 2014, the form
PyPortfolioOpt uses): no root-finding needed. ``c_k = 1`` gives ``omega_k = 0`` (the
posterior satisfies the view exactly); ``c_k = 0`` drops the view (posterior = prior;
reported as ``inf`` in ``BLPosterior.omega``).

Posterior
---------
With ``A = P tau Sigma P' + Omega`` (k x k; the only matrix ever solved):
``mu = pi + tau Sigma P' A^-1 (Q - P pi)`` and the He-Litterman posterior covariance of
returns ``Sigma_post = Sigma + tau Sigma - tau Sigma P' A^-1 P tau Sigma`` (uncertainty of
the mean added to the return covariance), as PyPortfolioOpt's ``bl_cov()``. With no
views, ``mu = pi`` and ``Sigma_post = (1 + tau) Sigma``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.linalg.lapack import dpotrf, dpotrs

from core.errors import ValidationError
from core.exposures import upper_symbols
from core.optimization.constraints import MarketView

__all__ = [
    "BLPosterior",
    "black_litterman_posterior",
    "idzorek_omega",
    "implied_equilibrium_returns",
    "views_to_matrices",
]


@dataclass(frozen=True)
class BLPosterior:
    """Posterior of :func:`black_litterman_posterior`.

    Attributes
    ----------
    mean : ndarray, shape (n,)
        Posterior expected returns.
    cov : ndarray, shape (n, n), or None
        Posterior covariance of returns (He-Litterman: ``Sigma + M``); None when it was
        not asked for (``with_covariance=False``: only the mean, O(n k) after ``Sigma P'``).
    omega : ndarray, shape (k, k)
        View uncertainty used; ``inf`` on the diagonal for views dropped at confidence 0.
    """

    mean: np.ndarray
    cov: np.ndarray
    omega: np.ndarray


def _covariance(cov: np.ndarray, checked: bool = False) -> np.ndarray:
    s = np.asarray(cov, dtype=float)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise ValidationError(f"covariance must be a non-empty square matrix, got {s.shape}")
    if checked:  # the caller checked finiteness and symmetry (the engine does, once)
        return s
    if not np.all(np.isfinite(s)):
        raise ValidationError("covariance contains NaN or infinite values")
    scale = max(float(np.max(np.abs(np.diag(s)))), np.finfo(float).tiny)
    if np.max(np.abs(s - s.T)) > 1e-8 * scale:
        raise ValidationError("covariance matrix is not symmetric")
    return s


def implied_equilibrium_returns(
    cov: np.ndarray,
    market_weights: np.ndarray,
    risk_aversion: float = 2.5,
    risk_free_rate: float = 0.0,
    *,
    checked: bool = False,
    product: np.ndarray | None = None,
) -> np.ndarray:
    """Reverse-optimised prior ``pi = delta Sigma w_mkt + rf``.

    Parameters
    ----------
    cov : ndarray, shape (n, n)
        Covariance of excess returns (annual).
    market_weights : ndarray, shape (n,)
        Market weights or capitalisations; normalised to sum to 1. At the exposure level
        pass the market's exposure profile ``E @ w_mkt``.
    risk_aversion : float
        ``delta`` > 0.
    risk_free_rate : float
        Added to every entry (as PyPortfolioOpt does); keep 0 for excess returns.
    checked : bool
        ``cov`` was already checked (finite, symmetric): skip the O(n^2) checks.
    product : ndarray, shape (n,), optional
        ``cov @ market_weights`` when the caller already has it (the engine takes it from
        the pass over the matrix that identifies it): not computed again.

    Returns
    -------
    ndarray, shape (n,)
    """
    s = _covariance(cov, checked)
    w = np.asarray(market_weights, dtype=float)
    if w.shape != (s.shape[0],):
        raise ValidationError(
            f"market weights have shape {w.shape}; expected ({s.shape[0]},) like the covariance"
        )
    if not np.isfinite(w).all():
        raise ValidationError("market weights contain NaN or infinite values")
    total = float(w.sum())
    if not total > 0:
        raise ValidationError(f"market weights must have a positive sum, got {total:g}")
    if not (math.isfinite(risk_aversion) and risk_aversion > 0):
        raise ValidationError(f"risk aversion must be positive, got {risk_aversion}")
    if not math.isfinite(risk_free_rate):
        raise ValidationError("risk-free rate must be finite")
    if product is None:
        return risk_aversion * (s @ (w / total)) + risk_free_rate
    return risk_aversion * (np.asarray(product, dtype=float) / total) + risk_free_rate


def _describe(view: MarketView, number: int) -> str:
    if view.view_type == "relative":
        return f"view {number} ({view.assets[0]} vs {view.assets[1]})"
    return f"view {number} ({', '.join(view.assets)})"


def views_to_matrices(
    views: Sequence[MarketView],
    symbols: Sequence[str],
    exposure_matrix: np.ndarray | None = None,
    exposure_codes: Sequence[str] | None = None,
    *,
    level: Literal["fund", "exposure"] = "fund",
    fund_costs: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Picking matrix ``P`` and targets ``Q`` for a list of views.

    An absolute view on several names is a view on their equal-weighted average; a
    relative view is ``assets[0] - assets[1]``. A name may be a fund symbol or an
    exposure type code (see the module docstring for how each is expressed).

    Parameters
    ----------
    views : sequence of MarketView, length k
    symbols : sequence of str, length N
        Fund symbols in the order of ``E``'s columns (case-insensitive).
    exposure_matrix : ndarray, shape (K, N), optional
        ``E`` in fractions of NAV. Required for views on exposure types and for
        ``level='exposure'``.
    exposure_codes : sequence of str, length K, optional
        Codes of ``E``'s rows (case-insensitive).
    level : {'fund', 'exposure'}
        Space of ``P``'s columns: N funds or K exposure types.
    fund_costs : ndarray, shape (N,), optional
        Annual cost of each fund (expense plus financing), fractions; 0 if omitted.
        Used where a view crosses between fund and exposure returns.

    Returns
    -------
    P : ndarray, shape (k, N) or (k, K)
    Q : ndarray, shape (k,)

    Raises
    ------
    ValidationError
        A name that is neither a selected fund nor an exposure type (the message names the
        view and the name); a name that is both; an exposure a fund-level view cannot
        isolate; a view that repeats a name or has no effect.
    """
    syms = upper_symbols(symbols, strip=True)
    n = len(syms)
    fund_set = set(syms)
    if len(fund_set) != n:
        raise ValidationError("symbols contain duplicates")
    if level not in ("fund", "exposure"):
        raise ValidationError(f"level must be 'fund' or 'exposure', got {level!r}")

    e: np.ndarray | None = None
    code_index: dict[str, int] = {}
    if exposure_matrix is not None or exposure_codes is not None:
        if exposure_matrix is None or exposure_codes is None:
            raise ValidationError("pass both exposure_matrix and exposure_codes, or neither")
        e = np.asarray(exposure_matrix, dtype=float)
        codes = [str(c).strip().upper() for c in exposure_codes]
        if e.shape != (len(codes), n):
            raise ValidationError(
                f"exposure matrix has shape {e.shape}; expected ({len(codes)}, {n}) "
                "(exposure types x funds)"
            )
        if not np.all(np.isfinite(e)):
            raise ValidationError("exposure matrix contains NaN or infinite values")
        code_index = {c: k for k, c in enumerate(codes)}
    elif level == "exposure":
        raise ValidationError("level='exposure' needs exposure_matrix and exposure_codes")

    costs: np.ndarray | None = None  # None: every cost is 0
    if fund_costs is not None:
        costs = np.asarray(fund_costs, dtype=float)
        if costs.shape != (n,) or not np.isfinite(costs).all():
            raise ValidationError(f"fund_costs must be {n} finite numbers, one per fund")

    dim = n if level == "fund" else len(code_index)
    replicating: dict[int, np.ndarray] = {}

    def add(row: np.ndarray, name: str, scale: float, label: str) -> float:
        """Add ``scale`` units of ``name``'s return to ``row``; the offset its target gains.

        A fund named at the fund level is one entry of the row: a view names a few funds,
        so no dense row (nor a dictionary of all funds) is built for it.
        """
        in_funds, in_codes = name in fund_set, name in code_index
        if in_funds and in_codes:
            raise ValidationError(
                f"{label}: {name!r} is both a fund symbol and an exposure type code; rename "
                "the custom exposure type",
                field="views",
            )
        if not (in_funds or in_codes):
            raise ValidationError(
                f"{label} names {name!r}, which is neither a selected fund nor an exposure "
                "type; add the fund to the portfolio or fix the name",
                field="views",
            )
        if level == "fund":
            if in_funds:
                row[syms.index(name)] += scale
                return 0.0
            assert e is not None
            k = code_index[name]
            if k not in replicating:
                unit = np.zeros(e.shape[0])
                unit[k] = 1.0
                v = np.linalg.lstsq(e, unit, rcond=None)[0]
                if np.max(np.abs(e @ v - unit)) > 1e-9:
                    raise ValidationError(
                        f"{label}: no combination of the selected funds holds {name} on its "
                        "own, so a view on it cannot be expressed on these funds; run "
                        "Black-Litterman at the exposure level or add a fund that isolates it",
                        field="views",
                    )
                replicating[k] = v
            v = replicating[k]
            row += scale * v
            # v' r_f = r_x,k - v'c: a view on r_x,k = q is v' r_f = q - v'c.
            return 0.0 if costs is None else -float(v @ costs)
        assert e is not None
        if in_codes:
            row[code_index[name]] += scale
            return 0.0
        i = syms.index(name)
        row += scale * e[:, i]
        # r_i = E_i' r_x - c_i: a view r_i = q is E_i' r_x = q + c_i.
        return 0.0 if costs is None else float(costs[i])

    k = len(views)
    p = np.zeros((k, dim))
    q = np.zeros(k)
    for j, view in enumerate(views):
        if not isinstance(view, MarketView):
            raise ValidationError(f"view {j + 1} is not a MarketView", field="views")
        label = _describe(view, j + 1)
        assets = view.assets
        if len(set(assets)) != len(assets):
            raise ValidationError(f"{label} names the same asset twice", field="views")
        # a relative view is assets[0] - assets[1]; an absolute one their equal-weighted mean
        if view.view_type == "relative":
            parts = ((assets[0], 1.0), (assets[1], -1.0))
        else:
            parts = tuple((name, 1.0 / len(assets)) for name in assets)
        row = p[j]
        target = float(view.expected_return)
        for name, scale in parts:
            target += scale * add(row, name, scale, label)
        q[j] = target
        if not np.abs(row).max() > 1e-12:
            raise ValidationError(
                f"{label} has no effect: its assets have identical exposures", field="views"
            )
    return p, q


def idzorek_omega(
    confidences: np.ndarray, cov: np.ndarray, p: np.ndarray, tau: float = 0.05
) -> np.ndarray:
    """Diagonal view uncertainty from percentage confidences (Idzorek 2004, closed form).

    ``omega_k = (1 - c_k) / c_k * tau * p_k Sigma p_k'``; ``c_k = 1`` gives 0 and
    ``c_k = 0`` gives ``inf`` (the view is dropped). See the module docstring for why this
    is exactly Idzorek's tilt for unconstrained weights.

    Parameters
    ----------
    confidences : ndarray, shape (k,), values in [0, 1]
    cov : ndarray, shape (n, n)
    p : ndarray, shape (k, n)
    tau : float

    Returns
    -------
    ndarray, shape (k, k)
    """
    p = np.atleast_2d(np.asarray(p, dtype=float))
    c = _confidences(confidences, p.shape[0])
    return _idzorek(c, _view_variances(np.asarray(cov, dtype=float), p), tau)


def _confidences(confidences: np.ndarray, k: int) -> np.ndarray:
    c = np.asarray(confidences, dtype=float)
    if c.shape != (k,):
        raise ValidationError(f"expected {k} confidences (one per view), got {c.shape}")
    if c.size and not (c.min() >= 0 and c.max() <= 1):  # (NaN fails both)
        raise ValidationError("view confidences must be between 0 and 1")
    return c


def _p_sigma(cov: np.ndarray, p: np.ndarray, symmetric: bool = False) -> np.ndarray:
    """``P Sigma'`` of shape (k, n) (row ``j`` is ``Sigma p_j``), from the named columns only.

    Views name a few funds, so the result combines a few columns of Sigma: one small
    product (0.02 ms at n = 1000, against 0.23 ms for three full matrix-vector products
    and 0.53 ms for OpenBLAS's product with a 3-column matrix). An exactly ``symmetric``
    Sigma gives the same numbers from its rows, which lie contiguous in memory (a column
    touches a cache line per fund). A view on a broad basket is a full product.
    """
    n, k = cov.shape[0], p.shape[0]
    cols = np.flatnonzero((p != 0).any(axis=0))
    if cols.size <= n // 8:
        if symmetric and cov.flags.c_contiguous:
            return p[:, cols] @ cov[cols]
        return p[:, cols] @ cov[:, cols].T
    out = np.empty((k, n))
    for j, row in enumerate(p):
        nz = np.flatnonzero(row)
        out[j] = cov @ row if nz.size > n // 8 else cov[:, nz] @ row[nz]
    return out


def _view_variances(cov: np.ndarray, p: np.ndarray, ps: np.ndarray | None = None) -> np.ndarray:
    """``diag(P Sigma P')`` of shape (k,), from ``P Sigma'`` (k, n) when it is at hand."""
    if ps is None:
        ps = _p_sigma(cov, p)  # (an einsum over Sigma took 2 ms at n = 1000)
    return np.einsum("ij,ij->i", p, ps)


def _idzorek(c: np.ndarray, view_var: np.ndarray, tau: float) -> np.ndarray:
    diag = np.full(c.shape, np.inf)
    sure = c > 0
    diag[sure] = tau * (1.0 - c[sure]) / c[sure] * view_var[sure]
    return np.diag(diag)


def black_litterman_posterior(
    prior: np.ndarray,
    cov: np.ndarray,
    P: np.ndarray,
    Q: np.ndarray,
    *,
    confidences: np.ndarray | None = None,
    omega: np.ndarray | None = None,
    tau: float = 0.05,
    with_covariance: bool = True,
    checked: bool = False,
) -> BLPosterior:
    """Closed-form Black-Litterman posterior, with k x k solves only.

    Works on any asset space: funds, or exposure types (see the module docstring for
    how the engine should handle exposure views and project back to funds).

    Parameters
    ----------
    prior : ndarray, shape (n,)
        Prior expected returns ``pi`` (e.g. :func:`implied_equilibrium_returns`).
    cov : ndarray, shape (n, n)
        Covariance of returns ``Sigma``.
    P : ndarray, shape (k, n)
        Picking matrix (:func:`views_to_matrices`); ``k = 0`` is allowed.
    Q : ndarray, shape (k,)
        View targets.
    confidences : ndarray, shape (k,), optional
        Per-view confidence in [0, 1], turned into ``Omega`` by :func:`idzorek_omega`.
    omega : ndarray, shape (k, k), optional
        Explicit view covariance (symmetric PSD). Give ``confidences`` or ``omega``, not
        both; with neither, He and Litterman's ``Omega = diag(tau P Sigma P')``.
    tau : float
        Scale of the uncertainty of the prior mean, > 0 (often 1/T or 0.05).
    with_covariance : bool
        Also compute the n x n posterior covariance (an O(n^2 k) update); skip it when
        only the posterior returns are needed.
    checked : bool
        ``cov`` was already checked (finite, exactly symmetric, as the engine makes it):
        skip the O(n^2) checks and read the views' funds from its rows.

    Returns
    -------
    BLPosterior

    Raises
    ------
    ValidationError
        Bad shapes or values, or views that are linearly dependent while certain
        (``A`` singular): the message names them.
    """
    s = _covariance(cov, checked)
    n = s.shape[0]
    pi = np.asarray(prior, dtype=float)
    if pi.shape != (n,) or not np.all(np.isfinite(pi)):
        raise ValidationError(f"prior must be {n} finite numbers, got shape {pi.shape}")
    p = np.asarray(P, dtype=float)
    if p.ndim == 1 and p.size == n:
        p = p[None, :]  # a single view given as a vector
    elif p.size == 0:
        p = np.zeros((0, n))
    if p.ndim != 2 or p.shape[1] != n:
        raise ValidationError(f"P must have shape (k, {n}) (views x assets), got {p.shape}")
    q = np.asarray(Q, dtype=float).reshape(-1)
    k = p.shape[0]
    if q.shape != (k,):
        raise ValidationError(f"Q must have {k} entries (one per row of P), got {q.shape}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        raise ValidationError("P and Q must be finite")
    if not (math.isfinite(tau) and tau > 0):
        raise ValidationError(f"tau must be positive, got {tau}")
    if confidences is not None and omega is not None:
        raise ValidationError("give view confidences or an omega matrix, not both")

    if omega is not None:
        om = np.asarray(omega, dtype=float)
        if om.shape != (k, k) or not np.all(np.isfinite(om)):
            raise ValidationError(f"omega must be a finite {k}x{k} matrix, got {om.shape}")
        if np.max(np.abs(om - om.T), initial=0.0) > 1e-12 * max(1.0, np.max(np.abs(om))):
            raise ValidationError("omega must be symmetric")
        if np.any(np.diag(om) < 0):
            raise ValidationError("omega must have a non-negative diagonal")
    ps = _p_sigma(s, p, symmetric=checked)  # (k, n): P Sigma, the only use of Sigma
    if confidences is not None:
        om = _idzorek(_confidences(confidences, k), _view_variances(s, p, ps), tau)
    elif omega is None:  # He and Litterman's default
        om = np.diag(tau * _view_variances(s, p, ps))

    # Confidence 0: the view is dropped, exactly (not approximated by a huge omega).
    keep = np.isfinite(np.diag(om))
    post_cov = (1.0 + tau) * s if with_covariance else None
    if keep.all():
        pk, qk, omk, tps = p, q, om, tau * ps  # tps = tau P Sigma (k', n)
    else:
        pk, qk, omk, tps = p[keep], q[keep], om[np.ix_(keep, keep)], tau * ps[keep]
    if pk.shape[0] == 0:
        return BLPosterior(mean=pi.copy(), cov=post_cov, omega=om)

    a = pk @ tps.T + omk
    a = 0.5 * (a + a.T)
    # LAPACK directly: A is k' x k', where numpy's and scipy's wrappers cost more than the
    # factorisation itself
    lower, info = dpotrf(a, lower=1)
    # Cholesky of a PSD-but-singular A can "succeed" with a tiny pivot: a pivot that is
    # negligible next to its own view's variance means a dependent view.
    if info != 0 or np.any(np.diag(lower) ** 2 <= 1e-12 * np.diag(a)):
        ids = [str(j + 1) for j in np.flatnonzero(keep)]
        raise ValidationError(
            "the views (" + ", ".join(ids) + ") cannot all hold with the given certainty: "
            "some are linearly dependent (or on a riskless combination) with full "
            "confidence; lower a confidence below 100% or remove the redundant view",
            field="views",
        )
    if post_cov is None:
        mean = pi + dpotrs(lower, qk - pk @ pi, lower=1)[0] @ tps
        return BLPosterior(mean=mean, cov=None, omega=om)
    sol = dpotrs(lower, np.column_stack((qk - pk @ pi, tps)), lower=1)[0]
    mean = pi + sol[:, 0] @ tps
    post_cov = post_cov - tps.T @ sol[:, 1:]
    post_cov = 0.5 * (post_cov + post_cov.T)
    return BLPosterior(mean=mean, cov=post_cov, omega=om)
