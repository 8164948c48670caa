"""Portfolio analytics: return, volatility, Sharpe, risk contributions, drawdown.

Conventions
-----------
- Expected returns and covariances are ANNUAL, as fractions (0.07 = 7%/yr).
- Weights are fractions of the portfolio's TOTAL value, one per fund. Cash is a
  separate position that earns ``risk_free_rate`` with zero risk. Because weights plus
  cash always sum to 1, cash is IMPLIED as ``1 - sum(w)`` unless it is given (a
  :data:`~core.portfolio.CASH_LABEL` row in a weight Series or the ``cash=`` argument),
  so a portfolio levered to ``sum(w) = 1.5`` pays the risk-free rate on the borrowed
  0.5, exactly as futures and swaps inside a fund do.
- Weights may be a ``pd.Series`` keyed by symbol (symbols not named are 0; a name that
  is neither a known symbol nor ``CASH`` is an error) or an array of shape (N,) in the
  order of :attr:`PortfolioAnalytics.symbols`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from core.errors import DataError, ValidationError
from core.exposures import symbol_index
from core.linalg import is_psd
from core.portfolio import CASH_LABEL

if TYPE_CHECKING:
    from core.exposures import FundExposureMap

#: Label of the row of :meth:`PortfolioAnalytics.exposure_risk_contributions` that holds
#: the fund-specific (idiosyncratic) risk the exposure model does not explain.
RESIDUAL_LABEL = "residual"

#: Tolerance on ``sum(w) + cash == 1`` when both are given.
_BUDGET_TOL = 1e-4

WeightsLike = pd.Series | np.ndarray | Sequence[float] | Mapping[str, float]


class Drawdown(NamedTuple):
    """The deepest peak-to-trough loss of a return series.

    Attributes
    ----------
    depth : float
        Loss from peak to trough as a NEGATIVE fraction (-0.35 = a 35% drawdown); 0.0 when
        wealth never fell.
    peak_date, trough_date : index label or None
        Date of the high-water mark and of the bottom. When the high-water mark is the
        starting wealth (the series loses from its first return), ``peak_date`` is the
        first date of the series. Both None when there was no drawdown.
    recovery_date : index label or None
        First date on which wealth regained the peak; None if it never did (or no
        drawdown).
    """

    depth: float
    peak_date: Any
    trough_date: Any
    recovery_date: Any


def _check_covariance(cov: Any, name: str) -> pd.DataFrame:
    """Square, labelled, symmetric, finite, positive semi-definite covariance."""
    if isinstance(cov, np.ndarray):
        cov = pd.DataFrame(cov)
    if not isinstance(cov, pd.DataFrame):
        raise ValidationError(
            f"{name} must be a pandas DataFrame (or a square array), got {type(cov).__name__}",
            field=name,
        )
    if cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise ValidationError(f"{name} must be square and non-empty, got {cov.shape}", field=name)
    if set(cov.index) != set(cov.columns) or cov.columns.has_duplicates:
        raise ValidationError(
            f"{name} must have the same unique labels on rows and columns", field=name
        )
    cov = cov.loc[cov.columns, cov.columns]
    try:
        a = cov.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must contain numbers only", field=name) from None
    if not np.isfinite(a).all():
        bad = [str(c) for j, c in enumerate(cov.columns) if not np.isfinite(a[:, j]).all()]
        raise ValidationError(
            f"{name} has NaN or infinite entries for {', '.join(bad)}; estimate it on a "
            "period where every asset has data",
            field=name,
        )
    scale = max(float(np.abs(a).max()), 1e-300)
    if not np.allclose(a, a.T, rtol=1e-8, atol=1e-10 * scale):
        raise ValidationError(f"{name} is not symmetric", field=name)
    a = 0.5 * (a + a.T)
    _check_variance_units(np.diag(a), name)
    # one Cholesky decides the common case; the eigenvalue only for the message
    if not is_psd(a, 1e-10 * max(scale, 1.0) / scale):
        smallest = float(np.linalg.eigvalsh(a)[0])
        raise ValidationError(
            f"{name} is not positive semi-definite (smallest eigenvalue {smallest:.3g}); "
            "use a shrinkage estimator (Ledoit-Wolf) or a longer common history",
            field=name,
        )
    return pd.DataFrame(a, index=cov.columns, columns=cov.columns)


def _check_variance_units(variances: np.ndarray, name: str) -> None:
    if variances.size and variances.max() > 25.0:
        raise ValidationError(
            f"{name} has a variance of {variances.max():g} (a {math.sqrt(variances.max()):.0%}"
            " volatility): it looks like it was computed from returns in percent; use fractions",
            field=name,
        )


def _check_return_units(mu: np.ndarray) -> None:
    if mu.size and np.abs(mu).max() > 2.0:
        raise ValidationError(
            f"an expected return of {np.abs(mu).max():g} per year looks like percent; "
            "enter 0.07 for 7%",
            field="expected_returns",
        )


def _check_rate_units(risk_free_rate: float) -> None:
    if abs(float(risk_free_rate)) > 0.5:
        raise ValidationError(
            f"risk_free_rate {risk_free_rate} looks like percent; enter 0.02 for 2%",
            field="risk_free_rate",
        )


def _check_returns(returns: Any) -> pd.Series:
    if not isinstance(returns, pd.Series):
        raise DataError(f"returns must be a pandas Series, got {type(returns).__name__}")
    if returns.empty:
        raise DataError("the return series is empty; drawdowns need at least one return")
    r = returns.astype(float)
    bad = np.flatnonzero(~np.isfinite(r.to_numpy()))
    if bad.size:
        raise DataError(
            f"the return on {r.index[bad[0]]} is missing or infinite; drop or fill it first",
            row=int(bad[0]),
        )
    below = np.flatnonzero(r.to_numpy() < -1.0)
    if below.size:
        raise DataError(
            f"the return on {r.index[below[0]]} is {r.iloc[below[0]]:.4g}, a loss of more than "
            "100%; returns must be simple returns as fractions",
            row=int(below[0]),
        )
    if isinstance(r.index, pd.DatetimeIndex) and not r.index.is_monotonic_increasing:
        raise DataError("the return series is not sorted by date; sort it first")
    return r


def held_marginal(sigma: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``Sigma w`` on the funds held (``w_i != 0``), zero elsewhere; shape (N,).

    An optimal portfolio holds a few dozen of 1,000 funds: reading only the rows and
    columns of those (k^2 numbers) instead of the whole matrix (a pass over 8 MB that
    runs at memory speed) is what makes measuring a result cheap. Everything that
    multiplies ``Sigma w`` by ``w`` again (variance, risk contributions) needs no more.
    """
    idx = np.flatnonzero(w)
    out = np.zeros(len(w))
    if 2 * idx.size > len(w):
        out[idx] = (sigma @ w)[idx]
    elif idx.size:
        out[idx] = sigma[np.ix_(idx, idx)] @ w[idx]
    return out


def exposure_contributions(
    w: np.ndarray,
    e: np.ndarray,
    sigma_x: np.ndarray,
    sigma: np.ndarray,
    types: list[str],
    include_residual: bool = True,
    *,
    sigma_w: np.ndarray | None = None,
) -> pd.Series:
    """:meth:`PortfolioAnalytics.exposure_risk_contributions` on checked arrays.

    ``w`` (N,), ``e`` (K, N), ``sigma_x`` (K, K) in the order of ``types``, ``sigma``
    (N, N): for the optimizer, whose inputs were checked once per call. ``sigma_w`` is
    :func:`held_marginal` of ``sigma`` and ``w`` when the caller has it already.
    """
    x = e @ w
    marginal = sigma_x @ x
    systematic = float(x @ marginal)
    if include_residual:
        sw = held_marginal(sigma, w) if sigma_w is None else sigma_w
        total = max(float(w @ sw), 0.0)
        vol = math.sqrt(total)
        if vol == 0.0:
            return pd.Series(0.0, index=[*types, RESIDUAL_LABEL], name="risk_contribution")
        values = np.append(x * marginal / vol, (total - systematic) / vol)
        return pd.Series(
            values, index=symbol_index([*types, RESIDUAL_LABEL]), name="risk_contribution"
        )
    vol_x = math.sqrt(max(systematic, 0.0))
    if vol_x == 0.0:
        return pd.Series(0.0, index=types, name="risk_contribution")
    return pd.Series(x * marginal / vol_x, index=symbol_index(types), name="risk_contribution")


class PortfolioAnalytics:
    """Return, risk and risk attribution of fund weights under one set of estimates.

    Parameters
    ----------
    expected_returns : pd.Series, shape (N,)
        Annual expected (total, not excess) return per fund, as fractions.
    covariance : pd.DataFrame, shape (N, N)
        Annual covariance of fund returns; same labels as ``expected_returns``.
    fund_map : FundExposureMap, optional
        Needed for exposure-level methods (:meth:`exposure_risk_contributions`,
        :meth:`exposures`, :meth:`total_notional`).
    risk_free_rate : float
        Annual cash rate (fraction) earned by cash and paid on borrowing.

    Attributes
    ----------
    symbols : list of str, length N
        Order of array weights (the covariance's column order).
    mu : ndarray, shape (N,)
    sigma : ndarray, shape (N, N)
    """

    def __init__(
        self,
        expected_returns: pd.Series,
        covariance: pd.DataFrame,
        fund_map: FundExposureMap | None = None,
        risk_free_rate: float = 0.02,
    ):
        cov = _check_covariance(covariance, "covariance")
        if isinstance(expected_returns, np.ndarray | list | tuple):
            expected_returns = pd.Series(np.asarray(expected_returns, dtype=float), index=cov.index)
        if not isinstance(expected_returns, pd.Series):
            raise ValidationError(
                "expected_returns must be a pandas Series keyed by symbol", field="expected_returns"
            )
        missing = [str(s) for s in cov.index if s not in expected_returns.index]
        extra = [str(s) for s in expected_returns.index if s not in cov.index]
        if missing or extra:
            raise ValidationError(
                "expected returns and covariance name different assets: "
                + "; ".join(
                    part
                    for part in (
                        f"no expected return for {', '.join(missing)}" if missing else "",
                        f"no covariance row for {', '.join(extra)}" if extra else "",
                    )
                    if part
                ),
                field="expected_returns",
            )
        mu = expected_returns.reindex(cov.index).to_numpy(dtype=float)
        if not np.isfinite(mu).all():
            raise ValidationError(
                "expected returns contain NaN or infinity", field="expected_returns"
            )
        _check_return_units(mu)
        if isinstance(risk_free_rate, bool) or not isinstance(
            risk_free_rate, int | float | np.integer | np.floating
        ):
            raise ValidationError("risk_free_rate must be a number", field="risk_free_rate")
        if not math.isfinite(float(risk_free_rate)):
            raise ValidationError("risk_free_rate must be finite", field="risk_free_rate")
        _check_rate_units(risk_free_rate)
        self.symbols: list[str] = [str(s) for s in cov.columns]
        self.mu = mu
        self.sigma = cov.to_numpy()
        self.fund_map = fund_map
        self.risk_free_rate = float(risk_free_rate)

    @classmethod
    def _from_checked(
        cls,
        mu: np.ndarray,
        sigma: np.ndarray,
        symbols: list[str],
        fund_map: FundExposureMap | None,
        risk_free_rate: float,
    ) -> PortfolioAnalytics:
        """For the optimizer: inputs it has already checked and repaired (no O(n^3) again).

        Only the cheap unit checks (percent instead of fractions) are repeated.
        """
        _check_variance_units(np.diag(sigma), "covariance")
        _check_return_units(np.asarray(mu, dtype=float))
        _check_rate_units(risk_free_rate)
        self = cls.__new__(cls)
        self._memo = []  # short-lived: one result is measured, the inputs cannot change
        self.symbols = list(symbols)
        self.mu = np.asarray(mu, dtype=float)
        self.sigma = sigma
        self.fund_map = fund_map
        self.risk_free_rate = float(risk_free_rate)
        return self

    # ----------------------------------------------------------------- weights
    @cached_property
    def _pos(self) -> dict[str, int]:
        """Position of each symbol (built on first use: only named weights need it)."""
        return {s: i for i, s in enumerate(self.symbols)}

    def _split(self, weights: WeightsLike, cash: float | None = None) -> tuple[np.ndarray, float]:
        """Fund weights of shape (N,) and the cash weight (given, or ``1 - sum(w)``)."""
        given_cash: float | None = None
        if isinstance(weights, Mapping):
            weights = pd.Series(dict(weights), dtype=float)
        if isinstance(weights, pd.Series):
            keys = [str(k) for k in weights.index]
            if len(set(keys)) != len(keys):
                raise ValidationError("weights name a symbol twice", field="weights")
            unknown = [k for k in keys if k not in self._pos and k != CASH_LABEL]
            if unknown:
                raise ValidationError(
                    f"weights name assets without estimates: {', '.join(unknown)}; add them to "
                    "the expected returns and covariance",
                    field="weights",
                )
            w = np.zeros(len(self.symbols))
            for k, v in zip(keys, weights.to_numpy(dtype=float), strict=True):
                if k == CASH_LABEL:
                    given_cash = float(v)
                else:
                    w[self._pos[k]] = v
        else:
            w = np.asarray(weights, dtype=float)
            if w.shape != (len(self.symbols),):
                raise ValidationError(
                    f"expected {len(self.symbols)} weights (one per asset, in the order "
                    f"{', '.join(self.symbols[:5])}{' ...' if len(self.symbols) > 5 else ''}), "
                    f"got shape {w.shape}",
                    field="weights",
                )
        if not np.isfinite(w).all():
            raise ValidationError("weights contain NaN or infinity", field="weights")
        if cash is not None:
            if given_cash is not None:
                raise ValidationError(
                    f"cash given twice: as a {CASH_LABEL!r} weight and as cash=", field="cash"
                )
            given_cash = float(cash)
        if given_cash is None:
            return w, 1.0 - float(w.sum())
        if not math.isfinite(given_cash):
            raise ValidationError("the cash weight must be finite", field="cash")
        if abs(w.sum() + given_cash - 1.0) > _BUDGET_TOL:
            raise ValidationError(
                f"fund weights ({w.sum():.6g}) plus cash ({given_cash:.6g}) sum to "
                f"{w.sum() + given_cash:.6g}, not 1; weights are fractions of total value",
                field="weights",
            )
        return w, given_cash

    def _w(self, weights: WeightsLike) -> np.ndarray:
        return self._split(weights)[0]

    def _series(self, values: np.ndarray, name: str) -> pd.Series:
        return pd.Series(values, index=symbol_index(self.symbols, object_dtype=True), name=name)

    # ----------------------------------------------------------- return & risk
    def expected_return(self, weights: WeightsLike, cash: float | None = None) -> float:
        """``w' mu + cash * rf``: annual expected return (fraction).

        ``cash`` defaults to the ``CASH`` weight if named, else ``1 - sum(w)``.
        """
        w, c = self._split(weights, cash)
        return float(w @ self.mu + c * self.risk_free_rate)

    #: (weights, Sigma w) already computed, on the optimizer's own instances only (a
    #: result asks for Sigma w five times: volatility, Sharpe, diversification, risk and
    #: exposure contributions); None on public ones, whose covariance may be edited.
    _memo: list[tuple[np.ndarray, np.ndarray]] | None = None

    def _sigma_w(self, w: np.ndarray) -> np.ndarray:
        """:func:`held_marginal` of the covariance and ``w`` (remembered, see ``_memo``)."""
        if self._memo is None:
            return held_marginal(self.sigma, w)
        for w0, sw in self._memo:
            if np.array_equal(w0, w):
                return sw
        sw = held_marginal(self.sigma, w)
        sw.flags.writeable = False
        self._memo[:] = [(w.copy(), sw)]
        return sw

    def variance(self, weights: WeightsLike) -> float:
        """``w' Sigma w`` (annual); cash adds nothing."""
        w = self._w(weights)
        return max(float(w @ self._sigma_w(w)), 0.0)

    def volatility(self, weights: WeightsLike) -> float:
        """``sqrt(w' Sigma w)``: annual volatility (fraction)."""
        return math.sqrt(self.variance(weights))

    def sharpe_ratio(self, weights: WeightsLike, cash: float | None = None) -> float:
        """``(expected_return - rf) / volatility``; NaN when the volatility is zero."""
        vol = self.volatility(weights)
        if vol <= 0.0:
            return float("nan")
        return (self.expected_return(weights, cash) - self.risk_free_rate) / vol

    # ------------------------------------------------------ risk contributions
    def risk_contributions(self, weights: WeightsLike) -> pd.Series:
        """Euler risk contribution of each fund, ``w_i (Sigma w)_i / sigma``.

        Returns
        -------
        pd.Series, shape (N,)
            Annual volatility units; the entries SUM TO :meth:`volatility`. Negative for a
            hedge. All zeros for a riskless portfolio. Cash contributes nothing and has no
            row.
        """
        w = self._w(weights)
        marginal = self._sigma_w(w)  # w_i (Sigma w)_i is 0 where w_i is
        vol = math.sqrt(max(float(w @ marginal), 0.0))
        if vol == 0.0:
            return self._series(np.zeros_like(w), "risk_contribution")
        return self._series(w * marginal / vol, "risk_contribution")

    def risk_contributions_pct(self, weights: WeightsLike) -> pd.Series:
        """Risk contributions as fractions of volatility (sum to 1); NaN if riskless."""
        rc = self.risk_contributions(weights)
        vol = float(rc.sum())
        if vol <= 0.0:
            return self._series(np.full(len(rc), np.nan), "risk_contribution_pct")
        out = rc / vol
        out.name = "risk_contribution_pct"
        return out

    def _exposure_matrix(self, exposure_covariance: pd.DataFrame, w: np.ndarray) -> np.ndarray:
        """E of shape (K, N) with rows in the order of ``exposure_covariance``.

        Only funds with a non-zero weight must have all their types covered: the other
        columns are multiplied by 0.
        """
        from core.exposures import ExposureCalculator

        if self.fund_map is None:
            raise ValidationError(
                "exposure analytics need a fund map: pass fund_map= to PortfolioAnalytics",
                field="fund_map",
            )
        types = [str(t) for t in exposure_covariance.columns]
        held = [s for s, wi in zip(self.symbols, w, strict=True) if wi != 0.0]
        carried = self.fund_map.used_exposure_types(held)
        uncovered = [t for t in carried if t not in types]
        if uncovered:
            raise ValidationError(
                f"the exposure covariance has no row for {', '.join(uncovered)}, which the "
                "funds carry; estimate it for every exposure type held",
                field="exposure_covariance",
            )
        return ExposureCalculator(self.fund_map, self.symbols, types).matrix

    def exposure_risk_contributions(
        self,
        weights: WeightsLike,
        exposure_covariance: pd.DataFrame,
        *,
        include_residual: bool = True,
    ) -> pd.Series:
        """Risk contributions by exposure type.

        With ``x = E w`` (shape (K,)) and the exposure covariance ``Sigma_x`` (K, K), the
        systematic variance is ``x' Sigma_x x`` and type k contributes
        ``c_k = x_k (Sigma_x x)_k``.

        - ``include_residual=True`` (default): every term is divided by the FUND-model
          volatility ``sigma = sqrt(w' Sigma w)`` and a :data:`RESIDUAL_LABEL` row
          ``(w' Sigma w - x' Sigma_x x) / sigma`` is appended. The result sums to
          :meth:`volatility`, the same total as :meth:`risk_contributions`. When
          ``Sigma = E' Sigma_x E + D`` the residual is ``w' D w / sigma``, the Euler
          contribution of the fund-specific risk ``D``; for any other fund covariance it
          is whatever the exposure model does not explain (and can be negative).
        - ``include_residual=False``: terms are divided by the exposure-model volatility
          ``sigma_x = sqrt(x' Sigma_x x)`` and sum to ``sigma_x``.

        Parameters
        ----------
        weights : Series or array, shape (N,)
        exposure_covariance : pd.DataFrame, shape (K, K)
            Annual covariance of the exposure types; must cover every type the funds with
            a non-zero weight carry.

        Returns
        -------
        pd.Series, shape (K,) or (K + 1,)
            Index = the exposure covariance's types (then ``residual``).
        """
        sx = _check_covariance(exposure_covariance, "exposure_covariance")
        w = self._w(weights)
        e = self._exposure_matrix(sx, w)
        types = [str(t) for t in sx.columns]
        return exposure_contributions(w, e, sx.to_numpy(), self.sigma, types, include_residual)

    # ---------------------------------------------------------------- exposure
    def exposures(self, weights: WeightsLike) -> pd.Series:
        """``x = E w`` per exposure type the funds carry (fractions of total value)."""
        from core.exposures import ExposureCalculator

        if self.fund_map is None:
            raise ValidationError("exposures need a fund map", field="fund_map")
        return ExposureCalculator(self.fund_map, self.symbols).portfolio_exposures(self._w(weights))

    def total_notional(self, weights: WeightsLike) -> float:
        """``sum_i |w_i| notional_i`` (fraction of total value)."""
        from core.exposures import ExposureCalculator

        if self.fund_map is None:
            raise ValidationError("notional needs a fund map", field="fund_map")
        return ExposureCalculator(self.fund_map, self.symbols).total_notional(self._w(weights))

    # ----------------------------------------------------------- diversification
    def diversification_ratio(self, weights: WeightsLike) -> float:
        """``sum_i |w_i| sigma_i / sigma``: 1 for one asset, higher when diversified.

        Uses ``|w_i|`` so shorts count as risk taken (identical to Choueifaty's
        ``w' sigma / sigma`` for long-only weights). NaN for a riskless portfolio.
        """
        w = self._w(weights)
        vol = self.volatility(w)
        if vol == 0.0:
            return float("nan")
        idx = np.flatnonzero(w)
        return float(np.abs(w[idx]) @ np.sqrt(self.sigma[idx, idx]) / vol)

    def _normalised_abs(self, weights: WeightsLike) -> np.ndarray:
        a = np.abs(self._w(weights))
        gross = a.sum()
        if gross == 0.0:
            raise ValidationError("every fund weight is zero", field="weights")
        return a / gross

    def effective_number_of_assets(self, weights: WeightsLike, method: str = "weights") -> float:
        """How many equally sized positions the portfolio is worth.

        Parameters
        ----------
        method : {'weights', 'risk'}
            ``'weights'``: ``1 / sum(p_i^2)`` with ``p = |w| / sum|w|`` (so leverage and
            cash do not change it; N for equal weights). ``'risk'``: the same on the
            percentage risk contributions ``p = RC / sigma`` (N for equal risk
            contribution; NaN for a riskless portfolio).
        """
        if method == "weights":
            return float(1.0 / np.sum(self._normalised_abs(weights) ** 2))
        if method == "risk":
            pct = self.risk_contributions_pct(weights).to_numpy()
            if not np.isfinite(pct).all():
                return float("nan")
            return float(1.0 / np.sum(pct**2))
        raise ValidationError(f"method must be 'weights' or 'risk', got {method!r}", field="method")

    def concentration_ratio(self, weights: WeightsLike, top_n: int | None = None) -> float:
        """Concentration of the fund weights.

        ``top_n=None``: the Herfindahl index ``sum(p_i^2)`` of ``p = |w| / sum|w|``
        (1/N for equal weights, 1 for a single fund; the reciprocal of
        :meth:`effective_number_of_assets`). ``top_n=n``: the share ``sum`` of the n
        largest ``p_i``.
        """
        p = self._normalised_abs(weights)
        if top_n is None:
            return float(np.sum(p**2))
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
            raise ValidationError("top_n must be a positive whole number", field="top_n")
        return float(np.sort(p)[::-1][:top_n].sum())

    def summary(self, weights: WeightsLike) -> dict[str, float]:
        """The headline numbers in one dict (fractions, annual)."""
        w, c = self._split(weights)
        return {
            "expected_return": self.expected_return(w, c),
            "volatility": self.volatility(w),
            "sharpe_ratio": self.sharpe_ratio(w, c),
            "cash_weight": c,
            "diversification_ratio": self.diversification_ratio(w),
            "effective_assets": self.effective_number_of_assets(w),
            "concentration_ratio": self.concentration_ratio(w),
        }

    # ---------------------------------------------------------------- drawdown
    @staticmethod
    def drawdown(returns: pd.Series) -> pd.Series:
        """Drawdown from the running peak of wealth, ``W_t / max_{s<=t} W_s - 1``.

        Parameters
        ----------
        returns : pd.Series, shape (T,)
            Simple periodic returns (fractions), oldest first.

        Returns
        -------
        pd.Series, shape (T,)
            Zero or negative. Wealth starts at 1 BEFORE the first return, and that start
            counts as a peak, so a loss on the first day is a drawdown.
        """
        r = _check_returns(returns)
        wealth = np.cumprod(1.0 + r.to_numpy())
        peak = np.maximum.accumulate(np.maximum(wealth, 1.0))
        return pd.Series(wealth / peak - 1.0, index=r.index, name="drawdown")

    @staticmethod
    def max_drawdown(returns: pd.Series) -> Drawdown:
        """The deepest drawdown with its peak, trough and recovery dates (see :class:`Drawdown`)."""
        dd = PortfolioAnalytics.drawdown(returns)
        values = dd.to_numpy()
        trough = int(np.argmin(values))
        depth = float(values[trough])
        if depth >= 0.0:
            return Drawdown(0.0, None, None, None)
        at_peak = np.flatnonzero(values[:trough] >= -1e-12)
        peak_date = dd.index[at_peak[-1]] if at_peak.size else dd.index[0]
        back = np.flatnonzero(values[trough + 1 :] >= -1e-12)
        recovery = dd.index[trough + 1 + back[0]] if back.size else None
        return Drawdown(depth, peak_date, dd.index[trough], recovery)
