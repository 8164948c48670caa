"""Expected-return and covariance estimators, robust to ragged histories.

Two layers:

* Pure functions on numpy arrays ``X`` of shape (T, n) (T periods, n assets, simple
  returns per period): :func:`sample_covariance`, :func:`ledoit_wolf`, :func:`oas`,
  :func:`ledoit_wolf_constant_correlation`, :func:`ewma_covariance`, :func:`ewma_mean`,
  and :func:`pairwise_covariance` for a DataFrame with NaNs. They return PER-PERIOD
  moments (not annualised) and never import scikit-learn or PyPortfolioOpt.
* :class:`ReturnEstimator`, which picks symbols and a trailing window out of a returns
  (or prices) table, validates the data, calls the pure functions, annualises, and
  guarantees a PSD covariance, recording what it had to change in ``repairs_``.

Conventions
-----------
* Annualisation is linear: ``mu_annual = ppy * mu_period`` and
  ``Sigma_annual = ppy * Sigma_period`` with ``ppy`` periods per year
  (``core.market_data.annualization_factor``), as PyPortfolioOpt's ``frequency``.
  ``compounding=True`` switches historical and EWMA means to geometric annualisation.
* Normalisation: :func:`sample_covariance` and :func:`pairwise_covariance` divide by
  ``T - 1`` (pandas, PyPortfolioOpt ``sample_cov``); the shrinkage estimators divide by
  ``T`` like scikit-learn and the Ledoit-Wolf papers, so they are internally consistent
  (the estimate is ``(1 - delta) S + delta F`` with S the 1/T sample covariance).
* Half-lives are in periods for the pure functions and in years for the class.

Ragged histories (what we chose, and why)
-----------------------------------------
Funds start on different dates (RSSB 2023, SPY 1993). Cutting every fund to the common
window throws away decades of information about the long-history funds, so:

* ``sample`` and ``ewma``: each covariance entry uses the dates where BOTH funds have
  data (pairwise-complete), each variance the fund's whole window (pandas' ``cov``
  semantics, optionally exponentially weighted). Such a matrix can be indefinite; it is
  then repaired by :func:`core.linalg.nearest_psd` (eigenvalue clipping, variances kept).
* ``ledoit_wolf``, ``oas``, ``constant_correlation``: the same pairwise-complete matrix
  (1/T normalised) is shrunk toward the method's target built from it; the shrinkage
  intensity is estimated on the common window (dates where every fund has data), the
  only sample on which the intensity formula is defined. Fewer data there means more
  shrinkage, which is the conservative direction. Then PSD repair as above.
* Every pair must overlap on at least :data:`MIN_OBSERVATIONS` dates, and every fund
  needs ``max(MIN_OBSERVATIONS, one year)`` observations in the window; otherwise a
  :class:`DataError` names the funds and suggests ``method="exposure_model"``, which
  gives a short-history fund (RSSB) a long, sane risk estimate from exposure-level
  assumptions instead of two years of its own prices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from core.errors import DataError, ValidationError
from core.linalg import is_psd, nearest_psd

if TYPE_CHECKING:
    from core.exposures import FundExposureMap

__all__ = [
    "COVARIANCE_METHODS",
    "MIN_OBSERVATIONS",
    "RETURN_METHODS",
    "ReturnEstimator",
    "ewma_covariance",
    "ewma_mean",
    "ewma_weights",
    "is_psd",
    "ledoit_wolf",
    "ledoit_wolf_constant_correlation",
    "nearest_psd",
    "oas",
    "pairwise_covariance",
    "sample_covariance",
]

FloatArray = NDArray[np.float64]

#: Fewest observations a fund (and a pair of funds) needs for a history-based estimate.
MIN_OBSERVATIONS = 20

ReturnMethod = Literal["historical", "ewma", "capm", "equilibrium", "exposure_model", "user"]
CovarianceMethod = Literal[
    "sample", "ledoit_wolf", "oas", "constant_correlation", "ewma", "exposure_model"
]
RETURN_METHODS: tuple[str, ...] = (
    "historical",
    "ewma",
    "capm",
    "equilibrium",
    "exposure_model",
    "user",
)
COVARIANCE_METHODS: tuple[str, ...] = (
    "sample",
    "ledoit_wolf",
    "oas",
    "constant_correlation",
    "ewma",
    "exposure_model",
)


# --------------------------------------------------------------------------- validation
def _data(X: ArrayLike, *, allow_nan: bool = False, min_rows: int = 2) -> FloatArray:
    """Return ``X`` as a float (T, n) array, refusing NaN/inf and too few rows."""
    a = np.asarray(X, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValidationError(f"X must be a (T, n) array, got shape {a.shape}", field="X")
    if a.shape[0] < min_rows:
        raise ValidationError(
            f"X needs at least {min_rows} observations (rows), got {a.shape[0]}", field="X"
        )
    bad = ~np.isfinite(a) if not allow_nan else np.isinf(a)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        what = "infinite" if np.isinf(a[row, col]) else "NaN"
        raise DataError(
            f"X has a {what} value; clean the data or use pairwise_covariance for gaps",
            row=row,
            column=str(col),
        )
    return a


def _halflife(halflife: float) -> float:
    h = float(halflife)
    if not h > 0 or math.isnan(h):
        raise ValidationError(f"halflife must be > 0 periods, got {halflife!r}", field="halflife")
    return h


# ----------------------------------------------------------------------- pure estimators
def sample_covariance(X: ArrayLike, demean: bool = True) -> FloatArray:
    """Sample covariance of the columns of ``X``.

    Parameters
    ----------
    X : array_like, shape (T, n)
        Returns per period, no NaN.
    demean : bool
        True: subtract the column means and divide by ``T - 1`` (unbiased; as pandas and
        ``np.cov``). False: ``X'X / T`` (second moment about zero).

    Returns
    -------
    ndarray, shape (n, n)
    """
    x = _data(X)
    t = x.shape[0]
    if demean:
        xc = x - x.mean(axis=0)
        return _sym(xc.T @ xc / (t - 1))
    return _sym(x.T @ x / t)


def _sym(a: FloatArray) -> FloatArray:
    return 0.5 * (a + a.T)


def _lw_shrinkage(xc: FloatArray, gram: FloatArray) -> float:
    """Ledoit-Wolf (2004) intensity from centred data and its Gram product ``xc' xc``."""
    t, n = xc.shape
    if n == 1:  # nothing to shrink (scikit-learn reports 0)
        return 0.0
    trace = float(np.trace(gram)) / t
    mu = trace / n
    row_sq = np.einsum("ij,ij->i", xc, xc)
    # sum_ij (X2' X2)_ij = sum_t (sum_i x_ti^2)^2: no second Gram product needed.
    beta_ = float(row_sq @ row_sq)
    delta_ = float(np.sum(gram * gram)) / t**2  # ||S||_F^2
    beta = (beta_ / t - delta_) / (n * t)
    delta = (delta_ - 2.0 * mu * trace + n * mu**2) / n
    beta = min(beta, delta)
    if beta == 0 or delta <= 0:  # S already equals the target
        return 0.0
    return beta / delta


def _shrink_to_identity(s: FloatArray, shrinkage: float) -> FloatArray:
    n = s.shape[0]
    mu = float(np.trace(s)) / n
    out = (1.0 - shrinkage) * s
    out[np.diag_indices(n)] += shrinkage * mu
    return out


def ledoit_wolf(X: ArrayLike) -> tuple[FloatArray, float]:
    """Ledoit-Wolf (2004) shrinkage toward a scaled identity, from one Gram product.

    Parameters
    ----------
    X : array_like, shape (T, n)
        Returns per period, no NaN. The column means are subtracted.

    Returns
    -------
    cov : ndarray, shape (n, n)
        ``(1 - delta) S + delta * (trace(S) / n) I`` with ``S = Xc'Xc / T``.
    shrinkage : float
        ``delta`` in [0, 1].

    Notes
    -----
    Same estimator as scikit-learn's ``LedoitWolf(assume_centered=False)`` (covariance_
    and shrinkage_). The only O(T n^2) work is ``Xc'Xc``: the fourth-moment term
    ``sum(X2' X2)`` equals ``sum_t ||x_t||^4`` and costs O(T n).
    """
    x = _data(X)
    xc = x - x.mean(axis=0)
    gram = xc.T @ xc
    t = x.shape[0]
    s = _sym(gram / t)
    shrinkage = _lw_shrinkage(xc, gram)
    return _shrink_to_identity(s, shrinkage), shrinkage


def _oas_shrinkage(s: FloatArray, t: int) -> float:
    """OAS intensity (Chen et al. 2010, as scikit-learn >= 1.3 computes it)."""
    n = s.shape[0]
    if n == 1:
        return 0.0
    alpha = float(np.mean(s**2))
    mu = float(np.trace(s)) / n
    num = alpha + mu**2
    den = (t + 1) * (alpha - mu**2 / n)
    return 1.0 if den == 0 else min(num / den, 1.0)


def oas(X: ArrayLike) -> tuple[FloatArray, float]:
    """Oracle Approximating Shrinkage toward a scaled identity.

    Parameters
    ----------
    X : array_like, shape (T, n)
        Returns per period, no NaN. The column means are subtracted.

    Returns
    -------
    cov : ndarray, shape (n, n)
        ``(1 - delta) S + delta * (trace(S) / n) I`` with ``S = Xc'Xc / T``.
    shrinkage : float

    Notes
    -----
    Chen, Wiesel, Eldar and Hero (2010), in scikit-learn's formulation (``OAS`` with
    ``assume_centered=False``; the factor 2/p of their eq. 23 dropped).
    """
    x = _data(X)
    xc = x - x.mean(axis=0)
    t = x.shape[0]
    s = _sym(xc.T @ xc / t)
    shrinkage = _oas_shrinkage(s, t)
    return _shrink_to_identity(s, shrinkage), shrinkage


def _constant_correlation_target(s: FloatArray) -> tuple[FloatArray, float, FloatArray]:
    """Constant-correlation target F, its mean correlation r_bar, and the volatilities.

    Assets with zero variance get zero correlation and are left out of ``r_bar``.
    """
    n = s.shape[0]
    var = np.clip(np.diag(s).copy(), 0.0, None)
    std = np.sqrt(var)
    positive = std > 0
    inv = np.zeros_like(std)
    inv[positive] = 1.0 / std[positive]
    m = int(positive.sum())
    if m >= 2:
        corr_sum = float(inv @ s @ inv)
        r_bar = (corr_sum - m) / (m * (m - 1))
    else:
        r_bar = 0.0
    target = r_bar * np.outer(std, std)
    target[np.diag_indices(n)] = np.diag(s)
    return target, r_bar, std


def _cc_shrinkage(xc: FloatArray, s: FloatArray) -> float:
    """Ledoit-Wolf (2003) constant-correlation intensity; every moment 1/T normalised.

    All sums over (i, j) are folded into O(T n) row products, so the only O(T n^2)
    step is the Gram product that gave ``s``.
    """
    t, n = xc.shape
    if n == 1:
        return 0.0
    target, r_bar, std = _constant_correlation_target(s)
    inv = np.zeros_like(std)
    inv[std > 0] = 1.0 / std[std > 0]
    var = std**2
    y = xc * xc
    row_y = y.sum(axis=1)
    pi_hat = float(row_y @ row_y) / t - float(np.sum(s * s))
    m4 = np.einsum("ij,ij->j", y, y) / t  # fourth moments about the mean
    rho_diag = float(np.sum(m4 - np.diag(s) ** 2))
    # theta_ij = mean_t(x_i^3 x_j) - var_i s_ij; rho_off = r_bar sum_{i!=j} (std_j/std_i) theta_ij
    a = (y * xc) @ inv
    b = xc @ std
    term1 = float(a @ b) / t - float(np.sum(m4[std > 0]))
    term2 = float(std @ s @ std) - float(np.sum(var * np.diag(s)))
    rho_hat = rho_diag + r_bar * (term1 - term2)
    gamma_hat = float(np.sum((s - target) ** 2))
    if gamma_hat <= 0:
        return 0.0
    kappa = (pi_hat - rho_hat) / gamma_hat
    return float(min(1.0, max(0.0, kappa / t)))


def ledoit_wolf_constant_correlation(X: ArrayLike) -> tuple[FloatArray, float]:
    """Ledoit-Wolf (2003) shrinkage toward the constant-correlation matrix.

    Parameters
    ----------
    X : array_like, shape (T, n)
        Returns per period, no NaN. The column means are subtracted.

    Returns
    -------
    cov : ndarray, shape (n, n)
        ``delta F + (1 - delta) S`` with ``S = Xc'Xc / T`` and ``F_ij = r_bar s_i s_j``
        off the diagonal, ``F_ii = S_ii`` (so the variances are the sample ones).
    shrinkage : float
        ``delta`` in [0, 1].

    Notes
    -----
    O. Ledoit and M. Wolf, "Honey, I shrunk the sample covariance matrix", J. Portfolio
    Management 30(4), 2004 (working paper 2003), with every moment normalised by 1/T as
    in their code. PyPortfolioOpt's ``CovarianceShrinkage.ledoit_wolf("constant_correlation")``
    computes the same formulas but with ``S`` normalised by 1/(T-1) inside otherwise 1/T
    moments; its result (divided by its ``frequency``) therefore differs from this one
    by O(1/T), and agrees to rounding once its ``S`` is the 1/T sample covariance.
    """
    x = _data(X)
    xc = x - x.mean(axis=0)
    t = x.shape[0]
    s = _sym(xc.T @ xc / t)
    shrinkage = _cc_shrinkage(xc, s)
    target, _, _ = _constant_correlation_target(s)
    return _sym(shrinkage * target + (1.0 - shrinkage) * s), shrinkage


def ewma_weights(n_periods: int, halflife: float) -> FloatArray:
    """Exponential weights, oldest first, newest = largest, summing to 1.

    Parameters
    ----------
    n_periods : int
        T.
    halflife : float
        In periods; ``inf`` gives equal weights. Weight ratio between consecutive periods
        is ``0.5 ** (1 / halflife)`` (pandas ``ewm(halflife=...)``, ``adjust=True``).

    Returns
    -------
    ndarray, shape (T,)
    """
    h = _halflife(halflife)
    age = np.arange(n_periods - 1, -1, -1, dtype=float)
    w = np.exp2(-age / h)
    return w / w.sum()


def ewma_mean(X: ArrayLike, halflife: float) -> FloatArray:
    """Exponentially weighted mean of each column at the last period.

    Parameters
    ----------
    X : array_like, shape (T, n)
        Returns per period; NaN marks a missing observation (a ragged start, a gap).
    halflife : float
        In periods.

    Returns
    -------
    ndarray, shape (n,)
        ``sum_t w_t x_t / sum_t w_t`` over each column's observed periods, with
        ``w_t = 0.5 ** ((T - 1 - t) / halflife)``: weights by position, so a fund whose
        history ends early is weighted by how old its data is. Equals pandas
        ``DataFrame.ewm(halflife=h).mean().iloc[-1]``. NaN for an all-NaN column.
    """
    x = _data(X, allow_nan=True, min_rows=1)
    w = ewma_weights(x.shape[0], halflife)
    observed = ~np.isnan(x)
    weight = w @ observed
    total = w @ np.where(observed, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / weight, np.nan)


def ewma_covariance(X: ArrayLike, halflife: float, demean: bool = True) -> FloatArray:
    """Exponentially weighted covariance at the last period.

    Parameters
    ----------
    X : array_like, shape (T, n)
        Returns per period, no NaN (use :func:`pairwise_covariance` with ``halflife`` for
        ragged data).
    halflife : float
        In periods; ``inf`` gives the sample covariance.
    demean : bool
        True: deviations from the exponentially weighted mean, divided by
        ``1 - sum_t w_t^2`` (the weighted analogue of T - 1; pandas
        ``ewm(halflife).cov(bias=False)``). False: ``sum_t w_t x_t x_t'`` (RiskMetrics,
        zero mean).

    Returns
    -------
    ndarray, shape (n, n)
    """
    x = _data(X)
    w = ewma_weights(x.shape[0], halflife)
    if demean:
        xc = x - w @ x
        norm = 1.0 - float(w @ w)
        if norm <= 0:
            raise ValidationError(
                "halflife is so short that only one observation carries weight; "
                "use a longer halflife",
                field="halflife",
            )
    else:
        xc, norm = x, 1.0
    y = xc * np.sqrt(w)[:, None]
    return _sym(y.T @ y / norm)


def _pairwise_moments(
    x: FloatArray, weights: FloatArray | None = None, ddof: int = 1
) -> tuple[FloatArray, FloatArray]:
    """Pairwise-complete (weighted) covariance from masked Gram products.

    Parameters
    ----------
    x : ndarray, shape (T, n), NaN = missing
    weights : ndarray, shape (T,) or None (equal weights)
    ddof : 0 or 1
        1: weighted analogue of dividing by (n_ij - 1); 0: by the pair's total weight.

    Returns
    -------
    cov : ndarray, shape (n, n)
        NaN where a pair has fewer than 2 common observations.
    counts : ndarray, shape (n, n)
        Common observations per pair (unweighted).
    """
    observed = ~np.isnan(x)
    m = observed.astype(float)
    # Shift each column by its own mean: covariances are shift-invariant and the
    # one-pass formula below then loses no precision.
    with np.errstate(invalid="ignore"):
        centre = np.nanmean(np.where(observed, x, np.nan), axis=0)
    x0 = np.where(observed, x - np.nan_to_num(centre), 0.0)
    w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    xw = x0 * w[:, None]
    mw = m * w[:, None]
    counts = m.T @ m
    wsum = m.T @ mw  # sum of weights over the pair's common dates
    sx = xw.T @ m  # sx[i, j] = sum over common dates of w x_i
    cross = xw.T @ x0
    with np.errstate(invalid="ignore", divide="ignore"):
        num = cross - sx * sx.T / wsum
        if ddof == 0:
            den = wsum
        else:
            w2 = (m * (w * w)[:, None]).T @ m
            den = wsum - w2 / wsum
        cov = num / den
    cov[(counts < 2) | ~(den > 0)] = np.nan
    return _sym(cov), counts


def pairwise_covariance(
    returns: pd.DataFrame,
    *,
    min_periods: int = 2,
    halflife: float | None = None,
    ddof: int = 1,
    repair: bool = True,
) -> pd.DataFrame:
    """Covariance from pairwise-complete observations, repaired to PSD.

    Parameters
    ----------
    returns : DataFrame, shape (T, n)
        Returns per period; NaN = no data (ragged starts, gaps).
    min_periods : int
        Fewest common observations a pair needs; a pair with fewer raises
        :class:`DataError` naming it.
    halflife : float, optional
        Exponential weights by position (periods); None = equal weights.
    ddof : {1, 0}
        1: unbiased (pandas ``DataFrame.cov``); 0: divided by the observation count
        (scikit-learn's normalisation, used before shrinkage).
    repair : bool
        Repair an indefinite result with :func:`core.linalg.nearest_psd` (variances kept).

    Returns
    -------
    DataFrame, shape (n, n)
        Entry (i, j) uses the dates where both i and j have data, with means over those
        dates; with ``repair=False`` and ``halflife=None`` this equals
        ``returns.cov(min_periods=min_periods)``.
    """
    if not isinstance(returns, pd.DataFrame):
        raise ValidationError("returns must be a pandas DataFrame", field="returns")
    if ddof not in (0, 1):
        raise ValidationError(f"ddof must be 0 or 1, got {ddof!r}", field="ddof")
    x = returns.to_numpy(dtype=float)
    _reject_inf(returns)
    weights = None if halflife is None else ewma_weights(x.shape[0], halflife)
    cov, counts = _pairwise_moments(x, weights, ddof)
    names = [str(c) for c in returns.columns]
    short = _short_pairs(counts, names, max(min_periods, 2))
    if short:
        raise DataError(
            f"too few common observations (< {max(min_periods, 2)}) for: {', '.join(short)}; "
            "drop one fund of each pair or use the exposure model for the short one",
            column=names[0],
        )
    if repair:
        cov, _ = nearest_psd(cov)
    return pd.DataFrame(cov, index=returns.columns, columns=returns.columns)


def _short_pairs(counts: FloatArray, names: Sequence[str], minimum: int) -> list[str]:
    i, j = np.nonzero(np.triu(counts < minimum))
    return [
        f"{names[a]}" if a == b else f"{names[a]}/{names[b]} ({int(counts[a, b])} dates)"
        for a, b in zip(i.tolist(), j.tolist(), strict=True)
    ]


def _reject_inf(frame: pd.DataFrame) -> None:
    values = frame.to_numpy(dtype=float)
    bad = np.isinf(values)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        symbol = str(frame.columns[col])
        raise DataError(
            f"{symbol} has an infinite return on {frame.index[row]}; "
            "a zero or missing price usually causes this: fix the price file",
            row=row,
            column=symbol,
        )


# ---------------------------------------------------------------------- the estimator
class ReturnEstimator:
    """Annualised expected returns and covariance matrices for a set of funds.

    Settings go in ``__init__``; each ``estimate_*`` call stores its result in trailing-
    underscore attributes (scikit-learn style).

    Parameters
    ----------
    returns : DataFrame, shape (T, N), optional
        Simple returns per period (rows = dates, oldest first; columns = symbols), NaN
        where a fund has no data. Give either ``returns`` or ``prices``.
    prices : DataFrame, shape (T, N), optional
        Adjusted closes; returns are made by ``core.market_data.to_returns`` at the
        frequency asked for (so the covariance frequency can be changed per call).
    frequency : {"daily", "weekly", "monthly"}
        Period of ``returns`` (or the default resampling of ``prices``).
    fund_map : FundExposureMap, optional
        Needed by the exposure model; default: the built-in map.
    assumptions : MarketAssumptions, optional
        Exposure-level assumptions of the exposure model; default:
        ``MarketAssumptions.default()``.
    risk_free_rate : float
        Annual cash rate (fraction) for CAPM and equilibrium returns.
    market_weights : Series, optional
        Symbol -> market weight (normalised to sum 1), for CAPM and equilibrium.
    risk_aversion : float
        ``delta`` of the equilibrium returns ``delta Sigma w_mkt + rf``.
    halflife_years : float
        Half-life of the exponentially weighted estimators, in years.
    compounding : bool
        False (default): annual mean = periodic arithmetic mean x periods per year.
        True: geometric, ``prod(1 + r) ** (ppy / T) - 1`` (PyPortfolioOpt's
        ``compounding=True``); for ``ewma``, ``(1 + m) ** ppy - 1``.
    covariance_method : str
        Covariance behind ``equilibrium`` returns.
    min_observations : int, optional
        Fewest observations a fund needs in the window; default
        ``max(MIN_OBSERVATIONS, one year of periods)``.

    Attributes
    ----------
    expected_returns_ : Series or None
        Last result of :meth:`estimate_expected_returns` (annual fractions).
    covariance_ : DataFrame or None
        Last covariance (annual), from :meth:`estimate_covariance_matrix` or behind
        equilibrium returns.
    repairs_ : list of str
        What the last ``estimate_*`` call changed or flagged (PSD repair, pairwise
        handling of ragged histories, zero-variance funds, ignored market weights).
    n_observations_ : Series or None
        Observations per symbol in the window of the last call (0 for model-only methods).
    idiosyncratic_vol_ : Series or None
        Annual idiosyncratic volatility per fund used by the last exposure-model
        covariance, NaN where it fell back to the assumptions' default.
    """

    def __init__(
        self,
        returns: pd.DataFrame | None = None,
        *,
        prices: pd.DataFrame | None = None,
        frequency: str = "daily",
        fund_map: FundExposureMap | None = None,
        assumptions: Any | None = None,
        risk_free_rate: float = 0.02,
        market_weights: pd.Series | None = None,
        risk_aversion: float = 2.5,
        halflife_years: float = 1.0,
        compounding: bool = False,
        covariance_method: str = "ledoit_wolf",
        min_observations: int | None = None,
    ):
        if returns is not None and prices is not None:
            raise ValidationError("Give returns or prices, not both", field="prices")
        for name, frame in (("returns", returns), ("prices", prices)):
            if frame is not None and not isinstance(frame, pd.DataFrame):
                raise ValidationError(f"{name} must be a pandas DataFrame", field=name)
        self.returns = returns
        self.prices = prices
        self.frequency = frequency
        self.periods_per_year(frequency)  # refuse an unknown frequency now, not later
        self.fund_map = fund_map
        self.assumptions = assumptions
        self.risk_free_rate = _finite(risk_free_rate, "risk_free_rate")
        self.market_weights = market_weights
        self.risk_aversion = _finite(risk_aversion, "risk_aversion")
        if self.risk_aversion <= 0:
            raise ValidationError("risk_aversion must be > 0", field="risk_aversion")
        self.halflife_years = _finite(halflife_years, "halflife_years")
        if self.halflife_years <= 0:
            raise ValidationError("halflife_years must be > 0", field="halflife_years")
        self.compounding = bool(compounding)
        if covariance_method not in COVARIANCE_METHODS:
            raise ValidationError(
                f"covariance_method must be one of {', '.join(COVARIANCE_METHODS)}",
                field="covariance_method",
            )
        self.covariance_method = covariance_method
        if min_observations is not None and int(min_observations) < 2:
            raise ValidationError("min_observations must be >= 2", field="min_observations")
        self.min_observations = min_observations
        self._returns_cache: dict[str, pd.DataFrame] = {}

        self.expected_returns_: pd.Series | None = None
        self.covariance_: pd.DataFrame | None = None
        self.repairs_: list[str] = []
        self.n_observations_: pd.Series | None = None
        self.idiosyncratic_vol_: pd.Series | None = None

    # ------------------------------------------------------------------ public API
    def estimate_expected_returns(
        self,
        symbols: Sequence[str],
        method: ReturnMethod = "historical",
        lookback_years: float | None = None,
        user_returns: pd.Series | Mapping[str, float] | None = None,
    ) -> pd.Series:
        """Annual expected returns (fractions) of ``symbols``.

        Parameters
        ----------
        symbols : sequence of str, length n
        method : str
            ``historical``: arithmetic mean per period x periods per year (geometric if
            ``compounding``), each fund over its own window.
            ``ewma``: exponentially weighted mean (``halflife_years``), annualised alike.
            ``capm``: ``rf + beta_i (E[r_m] - rf)``, the market being the
            ``market_weights`` portfolio (renormalised over the funds with data each
            date) or, without weights, the equal-weight portfolio of ``symbols``;
            ``beta_i = cov(r_i, r_m) / var(r_m)`` over common dates.
            ``equilibrium``: ``risk_aversion * Sigma w_mkt + rf`` with Sigma from
            ``covariance_method`` and ``market_weights`` (normalised over ``symbols``).
            ``exposure_model``: ``assumptions.fund_expected_returns(fund_map, symbols)``
            (excess of cash, net of costs) plus ``risk_free_rate``.
            ``user``: ``user_returns`` (annual fractions), checked.
        lookback_years : float, optional
            Use only the trailing window of this many years.
        user_returns : Series or mapping, optional
            For ``method="user"``.

        Returns
        -------
        Series, length n, indexed by symbol.
        """
        syms = _symbols(symbols)
        repairs: list[str] = []
        self.idiosyncratic_vol_ = None
        if method == "user":
            mu = self._user_returns(syms, user_returns)
            counts = pd.Series(0, index=syms, dtype=int)
        elif method == "exposure_model":
            mu = self._exposure_expected_returns(syms)
            counts = pd.Series(0, index=syms, dtype=int)
        elif method == "equilibrium":
            cov, counts = self._covariance(
                syms, self.covariance_method, lookback_years, None, repairs
            )
            w = self._market_weights_for(syms, repairs)
            mu = self.risk_aversion * cov @ w + self.risk_free_rate
            self.covariance_ = cov
        elif method in ("historical", "ewma", "capm"):
            mu, counts = self._history_returns(syms, method, lookback_years, repairs)
        else:
            raise ValidationError(
                f"Unknown expected-return method {method!r}; use one of "
                f"{', '.join(RETURN_METHODS)}",
                field="method",
            )
        mu = pd.Series(np.asarray(mu, dtype=float), index=syms, name="expected_return")
        self.expected_returns_ = mu
        self.repairs_ = repairs
        self.n_observations_ = counts
        return mu

    def estimate_covariance_matrix(
        self,
        symbols: Sequence[str],
        method: CovarianceMethod = "ledoit_wolf",
        lookback_years: float | None = None,
        frequency: str | None = None,
    ) -> pd.DataFrame:
        """Annualised covariance matrix of ``symbols``, always PSD.

        Parameters
        ----------
        symbols : sequence of str, length n
        method : str
            ``sample``, ``ledoit_wolf``, ``oas``, ``constant_correlation``, ``ewma``
            (history-based; ragged histories as described in the module docstring) or
            ``exposure_model``: ``E' Sigma_x E + D`` from the market assumptions, with
            each fund's idiosyncratic variance D measured from its history where there
            is one (see :meth:`_idiosyncratic_vols`).
        lookback_years : float, optional
            Trailing window in years.
        frequency : str, optional
            Return frequency to estimate on (needs ``prices``); default ``frequency``.

        Returns
        -------
        DataFrame, shape (n, n), indexed by symbol on both axes.

        Raises
        ------
        DataError
            Unknown symbol, NaN-only or infinite data, too short a history (the message
            names the funds and suggests ``method="exposure_model"``).
        """
        syms = _symbols(symbols)
        repairs: list[str] = []
        self.idiosyncratic_vol_ = None
        cov, counts = self._covariance(syms, method, lookback_years, frequency, repairs)
        self.covariance_ = cov
        self.repairs_ = repairs
        self.n_observations_ = counts
        return cov

    # ------------------------------------------------------------------ internals
    def periods_per_year(self, frequency: str | None = None) -> float:
        """Periods per year of ``frequency`` (default: the estimator's)."""
        from core.market_data import annualization_factor

        return float(annualization_factor(frequency or self.frequency))

    def _min_obs(self, ppy: float) -> int:
        if self.min_observations is not None:
            return int(self.min_observations)
        return max(MIN_OBSERVATIONS, math.ceil(ppy - 1e-9))

    def _history(self, frequency: str) -> pd.DataFrame:
        if self.prices is not None:
            key = str(frequency).strip().lower()
            if key not in self._returns_cache:
                from core.market_data import to_returns

                self._returns_cache[key] = to_returns(self.prices, frequency)
            return self._returns_cache[key]
        if self.returns is None:
            raise ValidationError(
                "No price or return history was given; pass returns= or prices=, or use "
                "method='exposure_model' or 'user'",
                field="returns",
            )
        if self.periods_per_year(frequency) != self.periods_per_year():
            raise ValidationError(
                f"The returns are {self.frequency}; estimating at {frequency!r} needs "
                "prices (pass prices= instead of returns=)",
                field="frequency",
            )
        return self.returns

    def _window(
        self, syms: list[str], lookback_years: float | None, frequency: str
    ) -> pd.DataFrame:
        """The trailing window of ``syms`` with every data check applied."""
        history = self._history(frequency)
        ppy = self.periods_per_year(frequency)
        missing = [s for s in syms if s not in history.columns]
        if missing:
            raise DataError(
                f"No price history for {', '.join(missing)}; import prices for them or use "
                "method='exposure_model' (model-based, needs no history)",
                column=missing[0],
            )
        data = history.loc[:, syms]
        for s in syms:
            if not pd.api.types.is_numeric_dtype(data[s]):
                converted = pd.to_numeric(data[s], errors="coerce")
                if converted.notna().sum() < data[s].notna().sum():
                    raise DataError(f"{s} has non-numeric returns; fix the price file", column=s)
        data = data.astype(float)
        if isinstance(data.index, pd.DatetimeIndex):
            if data.index.has_duplicates:
                dup = data.index[data.index.duplicated()][0]
                raise DataError(f"date {dup} appears twice in the price history", column=syms[0])
            if not data.index.is_monotonic_increasing:
                data = data.sort_index()
        _reject_inf(data)
        empty = [s for s in syms if data[s].isna().all()]
        if empty:
            raise DataError(
                f"{', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no data (all NaN); "
                "import prices for them or use method='exposure_model'",
                column=empty[0],
            )
        data = data.dropna(how="all")
        if lookback_years is not None:
            data = _trailing(data, lookback_years, ppy)
        counts = data.notna().sum()
        need = self._min_obs(ppy)
        short = [s for s in syms if counts[s] < need]
        if short:
            detail = ", ".join(f"{s} ({int(counts[s])})" for s in short)
            raise DataError(
                f"Too little history in the window: {detail} observations, need {need} "
                f"(at least {MIN_OBSERVATIONS} and one year of {frequency} data). Use a longer "
                "lookback, drop the fund, or use method='exposure_model'",
                column=short[0],
            )
        return data

    def _history_returns(
        self, syms: list[str], method: str, lookback_years: float | None, repairs: list[str]
    ) -> tuple[FloatArray, pd.Series]:
        freq = self.frequency
        ppy = self.periods_per_year(freq)
        if method == "capm":
            return self._capm(syms, lookback_years, repairs)
        data = self._window(syms, lookback_years, freq)
        x = data.to_numpy(dtype=float)
        counts = data.notna().sum().astype(int)
        if method == "historical":
            if self.compounding:
                growth = np.nansum(np.log1p(x), axis=0)
                mu = np.expm1(growth * ppy / counts.to_numpy())
            else:
                mu = np.nanmean(x, axis=0) * ppy
        else:  # ewma
            m = ewma_mean(x, self.halflife_years * ppy)
            mu = (1.0 + m) ** ppy - 1.0 if self.compounding else m * ppy
        return mu, counts

    def _capm(
        self, syms: list[str], lookback_years: float | None, repairs: list[str]
    ) -> tuple[FloatArray, pd.Series]:
        freq = self.frequency
        ppy = self.periods_per_year(freq)
        if self.market_weights is None:
            members = syms
            weights = pd.Series(1.0, index=syms)
        else:
            weights = _clean_weights(self.market_weights)
            weights = weights[weights > 0]
            members = list(weights.index)
        universe = syms + [m for m in members if m not in syms]
        data = self._window(universe, lookback_years, freq)
        # Market return each date: weights renormalised over the members with data.
        members_data = data[members]
        w = weights.reindex(members).to_numpy()
        observed = members_data.notna().to_numpy()
        denom = observed @ w
        with np.errstate(invalid="ignore", divide="ignore"):
            market = np.where(denom > 0, np.nan_to_num(members_data.to_numpy()) @ w / denom, np.nan)
        both = pd.DataFrame(data[syms].to_numpy(), columns=syms, index=data.index)
        both["__market__"] = market
        cov, counts = _pairwise_moments(both.to_numpy(dtype=float))
        beta = cov[:-1, -1] / cov[-1, -1]
        m = both["__market__"].dropna().to_numpy()
        if self.compounding:
            market_mean = float(np.expm1(np.log1p(m).sum() * ppy / m.size))
        else:
            market_mean = float(m.mean() * ppy)
        mu = self.risk_free_rate + beta * (market_mean - self.risk_free_rate)
        return mu, data[syms].notna().sum().astype(int)

    def _market_weights_for(self, syms: list[str], repairs: list[str]) -> pd.Series:
        if self.market_weights is None:
            raise ValidationError(
                "Equilibrium returns need market_weights (symbol -> market weight)",
                field="market_weights",
            )
        weights = _clean_weights(self.market_weights, normalise=False)
        missing = [s for s in syms if s not in weights.index]
        if missing:
            raise ValidationError(
                f"market_weights has no weight for {', '.join(missing)}; give every "
                "symbol a weight (0 is allowed)",
                field="market_weights",
                problems=[f"missing market weight: {s}" for s in missing],
            )
        extra = [s for s in weights.index if s not in syms]
        w = weights.reindex(syms)
        total = float(w.sum())
        if not total > 0:
            raise ValidationError(
                "market_weights of the symbols sum to 0; give positive weights",
                field="market_weights",
            )
        if extra:
            repairs.append(
                f"market_weights: ignored {', '.join(extra)} (not among the symbols); "
                "weights renormalised over the symbols"
            )
        return w / total

    def _user_returns(
        self, syms: list[str], user_returns: pd.Series | Mapping[str, float] | None
    ) -> pd.Series:
        if user_returns is None:
            raise ValidationError(
                "method='user' needs user_returns (symbol -> annual expected return)",
                field="user_returns",
            )
        given = pd.Series(user_returns, dtype=object)
        missing = [s for s in syms if s not in given.index]
        if missing:
            raise ValidationError(
                f"No expected return given for {', '.join(missing)}; enter one for each",
                field="user_returns",
                problems=[f"missing expected return: {s}" for s in missing],
            )
        values = pd.to_numeric(given.reindex(syms), errors="coerce").astype(float)
        bad = [s for s in syms if not np.isfinite(values[s])]
        if bad:
            raise ValidationError(
                f"Expected return of {', '.join(bad)} is not a finite number: "
                f"{', '.join(repr(given[s]) for s in bad)}",
                field="user_returns",
                problems=[f"not a number: {s}" for s in bad],
            )
        return values

    # -------------------------------------------------------------- covariance core
    def _covariance(
        self,
        syms: list[str],
        method: str,
        lookback_years: float | None,
        frequency: str | None,
        repairs: list[str],
    ) -> tuple[pd.DataFrame, pd.Series]:
        if method not in COVARIANCE_METHODS:
            raise ValidationError(
                f"Unknown covariance method {method!r}; use one of {', '.join(COVARIANCE_METHODS)}",
                field="method",
            )
        freq = frequency or self.frequency
        if method == "exposure_model":
            cov, counts = self._exposure_covariance(syms, lookback_years, freq, repairs)
        else:
            ppy = self.periods_per_year(freq)
            data = self._window(syms, lookback_years, freq)
            counts = data.notna().sum().astype(int)
            x = data.to_numpy(dtype=float)
            if np.isnan(x).any():
                cov = self._ragged_covariance(x, syms, method, ppy, repairs)
            else:
                cov = self._complete_covariance(x, method, ppy)
            cov = cov * ppy
            flat = [s for s, col in zip(syms, x.T, strict=True) if np.nanmax(col) == np.nanmin(col)]
            if flat:
                repairs.append(
                    f"zero variance: {', '.join(flat)} did not move in the window; the "
                    "covariance is singular and optimizers will treat it as riskless. Check "
                    "the prices or remove it"
                )
        cov = _sym(np.asarray(cov, dtype=float))
        if not np.isfinite(cov).all():
            # Returns near 1e150 overflow their squares; eigvalsh then fails untyped.
            bad = [s for s, ok in zip(syms, np.isfinite(cov).all(axis=0), strict=True) if not ok]
            raise DataError(
                f"the covariance of {', '.join(bad)} overflows: the returns hold absurdly "
                "large values; check that they are decimal returns (0.01 = 1%) and fix the "
                "price file",
                column=bad[0],
            )
        if not is_psd(cov):
            lam_min = float(np.linalg.eigvalsh(cov)[0])
            cov, _ = nearest_psd(cov)
            repairs.append(
                f"covariance was not positive semidefinite (smallest eigenvalue "
                f"{lam_min:.3g}); repaired by eigenvalue clipping, variances kept"
            )
        frame = pd.DataFrame(cov, index=syms, columns=syms)
        return frame, counts

    def _complete_covariance(self, x: FloatArray, method: str, ppy: float) -> FloatArray:
        if method == "sample":
            return sample_covariance(x)
        if method == "ledoit_wolf":
            return ledoit_wolf(x)[0]
        if method == "oas":
            return oas(x)[0]
        if method == "constant_correlation":
            return ledoit_wolf_constant_correlation(x)[0]
        return ewma_covariance(x, self.halflife_years * ppy)

    def _ragged_covariance(
        self, x: FloatArray, syms: list[str], method: str, ppy: float, repairs: list[str]
    ) -> FloatArray:
        weights = ewma_weights(x.shape[0], self.halflife_years * ppy) if method == "ewma" else None
        ddof = 1 if method in ("sample", "ewma") else 0
        cov, counts = _pairwise_moments(x, weights, ddof)
        short = _short_pairs(counts, syms, MIN_OBSERVATIONS)
        if short:
            raise DataError(
                f"Histories barely overlap: {', '.join(short)} (need {MIN_OBSERVATIONS} common "
                "dates); drop one fund of each pair or use method='exposure_model'",
                column=syms[0],
            )
        n_obs = (~np.isnan(x)).sum(axis=0)
        shortest = int(np.argmin(n_obs))
        note = (
            f"ragged histories ({int(n_obs.min())} to {int(n_obs.max())} observations, "
            f"shortest {syms[shortest]}): covariances from pairwise-overlapping dates"
        )
        if method in ("sample", "ewma"):
            repairs.append(note)
            return cov
        common = x[~np.isnan(x).any(axis=1)]
        if common.shape[0] < MIN_OBSERVATIONS:
            raise DataError(
                f"Only {common.shape[0]} dates where all of {', '.join(syms)} have data; "
                f"{method} needs {MIN_OBSERVATIONS} to set its shrinkage. Use method='sample' "
                "or 'exposure_model', or drop the shortest history "
                f"({syms[shortest]})",
                column=syms[shortest],
            )
        xc = common - common.mean(axis=0)
        t_common = common.shape[0]
        s_common = _sym(xc.T @ xc / t_common)
        if method == "ledoit_wolf":
            delta = _lw_shrinkage(xc, xc.T @ xc)
            shrunk = _shrink_to_identity(cov, delta)
        elif method == "oas":
            delta = _oas_shrinkage(s_common, t_common)
            shrunk = _shrink_to_identity(cov, delta)
        else:
            delta = _cc_shrinkage(xc, s_common)
            target, _, _ = _constant_correlation_target(cov)
            shrunk = delta * target + (1.0 - delta) * cov
        repairs.append(f"{note}; shrinkage intensity {delta:.3f} from the {t_common} common dates")
        return shrunk

    # -------------------------------------------------------------- exposure model
    def _model(self) -> tuple[FundExposureMap, Any]:
        fund_map = self.fund_map
        if fund_map is None:
            from core.exposures import FundExposureMap

            fund_map = FundExposureMap.default()
        assumptions = self.assumptions
        if assumptions is None:
            from core.assumptions import MarketAssumptions

            assumptions = MarketAssumptions.default()
        return fund_map, assumptions

    def _exposure_expected_returns(self, syms: list[str]) -> pd.Series:
        fund_map, assumptions = self._model()
        # Excess of cash from the model plus the estimator's own risk-free rate (not the
        # assumptions' cash_rate), so that mu - rf, which every Sharpe ratio and the
        # tangency portfolio use, is exactly the modelled excess return.
        excess = assumptions.fund_expected_returns(fund_map, syms)
        return pd.Series(excess.to_numpy(dtype=float), index=syms) + self.risk_free_rate

    def _exposure_covariance(
        self, syms: list[str], lookback_years: float | None, frequency: str, repairs: list[str]
    ) -> tuple[FloatArray, pd.Series]:
        fund_map, assumptions = self._model()
        from core.exposures import ExposureCalculator

        ExposureCalculator(fund_map, syms)  # names every symbol missing from the fund map
        idio, counts = self._idiosyncratic_vols(syms, fund_map, lookback_years, frequency, repairs)
        self.idiosyncratic_vol_ = idio
        measured = {s: float(v) for s, v in idio.items() if np.isfinite(v)}
        cov = assumptions.fund_covariance(
            fund_map, syms, idiosyncratic_vol=measured if measured else None
        )
        cov = np.asarray(cov, dtype=float)  # fund_covariance keeps the order of syms
        flat = [s for s, v in zip(syms, np.diag(cov), strict=True) if v <= 0]
        if flat:
            repairs.append(
                f"zero variance: {', '.join(flat)} carry no risky exposure in the fund map; "
                "optimizers will treat them as riskless"
            )
        return cov, counts

    def _idiosyncratic_vols(
        self,
        syms: list[str],
        fund_map: FundExposureMap,
        lookback_years: float | None,
        frequency: str,
        repairs: list[str],
    ) -> tuple[pd.Series, pd.Series]:
        """Idiosyncratic volatility of each fund, measured against its exposure proxies.

        For fund i with exposures e_k (fractions) to types whose proxy tickers are in the
        history (``ExposureType.proxy``, e.g. VTI, IEF, BIL), the residual is

            u_t = r_i,t - sum_k e_k r_k,t - (1 - sum_k e_k) r_cash,t

        (leverage financed at the cash rate; r_cash = the CASH_TBILL proxy if present,
        otherwise a constant, which does not change a variance). The loadings are the
        fund map's, not regression estimates, so u also carries any mismatch between the
        stated and the real exposures: exactly what D must cover for
        ``E' Sigma_x E + D`` to be the fund's risk. ``D_i = var(u) * ppy`` over the
        dates where the fund and all its proxies have data. A fund without history, with
        an exposure whose type has no proxy (or no proxy data), or with fewer than
        :data:`MIN_OBSERVATIONS` such dates gets NaN: the assumptions' default is used.
        """
        nan = pd.Series(np.nan, index=syms, name="idiosyncratic_vol")
        counts = pd.Series(0, index=syms, dtype=int)
        if self.returns is None and self.prices is None:
            repairs.append(
                "exposure model: no price history, so the idiosyncratic risk of every "
                "fund is the assumptions' default"
            )
            return nan, counts
        history = self._history(frequency)
        ppy = self.periods_per_year(frequency)
        if lookback_years is not None:
            history = _trailing(history, lookback_years, ppy)
        cash_type = "CASH_TBILL"
        cash_proxy = fund_map.exposure_types.get(cash_type)
        cash_ticker = cash_proxy.proxy if cash_proxy is not None else ""
        vols = nan.copy()
        fallback: list[str] = []
        for s in syms:
            fund = fund_map[s]
            if s in history.columns:
                counts[s] = int(history[s].notna().sum())
            loads = {k: v / 100.0 for k, v in fund.exposures.items() if v != 0}
            proxies = {k: fund_map.exposure_types[k].proxy for k in loads}
            usable = s in history.columns and all(
                p and p in history.columns for p in proxies.values()
            )
            if not usable:
                fallback.append(s)
                continue
            residual = history[s].astype(float).copy()
            for code, e in loads.items():
                residual = residual - e * history[proxies[code]].astype(float)
            leftover = 1.0 - sum(loads.values())
            if leftover != 0 and cash_ticker and cash_ticker in history.columns:
                # Financing at the cash rate; where the bill series is missing the
                # constant drops out of the variance anyway.
                residual = residual - leftover * history[cash_ticker].astype(float).fillna(0.0)
            residual = residual.replace([np.inf, -np.inf], np.nan).dropna()
            if residual.size < MIN_OBSERVATIONS:
                fallback.append(s)
                continue
            vols[s] = float(np.sqrt(residual.var(ddof=1) * ppy))
        if fallback:
            repairs.append(
                "exposure model: idiosyncratic risk of "
                f"{', '.join(fallback)} is the assumptions' default (no history of the fund "
                "and its exposure proxies to measure it from)"
            )
        return vols, counts


# --------------------------------------------------------------------------- helpers
def _finite(value: Any, name: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number, got {value!r}", field=name) from None
    if not math.isfinite(x):
        raise ValidationError(f"{name} must be finite, got {value!r}", field=name)
    return x


def _symbols(symbols: Sequence[str]) -> list[str]:
    if isinstance(symbols, str):
        symbols = [symbols]
    syms = [str(s) for s in symbols]
    if not syms:
        raise ValidationError("No symbols given; pick at least one fund", field="symbols")
    seen: set[str] = set()
    dups = [s for s in syms if s in seen or seen.add(s)]  # type: ignore[func-returns-value]
    if dups:
        raise ValidationError(
            f"Symbols repeated: {', '.join(dict.fromkeys(dups))}; list each fund once",
            field="symbols",
        )
    return syms


def _clean_weights(weights: Any, *, normalise: bool = True) -> pd.Series:
    if not isinstance(weights, pd.Series):
        weights = pd.Series(weights, dtype=float)
    w = pd.to_numeric(weights, errors="coerce").astype(float)
    bad = [str(s) for s, v in w.items() if not np.isfinite(v) or v < 0]
    if bad:
        raise ValidationError(
            f"market_weights must be finite and >= 0; check {', '.join(bad)}",
            field="market_weights",
        )
    w.index = [str(s) for s in w.index]
    total = float(w.sum())
    if normalise:
        if not total > 0:
            raise ValidationError("market_weights sum to 0", field="market_weights")
        w = w / total
    return w


def _trailing(history: pd.DataFrame, lookback_years: float, ppy: float) -> pd.DataFrame:
    years = _finite(lookback_years, "lookback_years")
    if years <= 0:
        raise ValidationError("lookback_years must be > 0", field="lookback_years")
    if isinstance(history.index, pd.DatetimeIndex):
        end = history.dropna(how="all").index[-1]
        return history.loc[history.index > end - pd.Timedelta(days=365.25 * years)]
    return history.iloc[-max(round(years * ppy), 1) :]
