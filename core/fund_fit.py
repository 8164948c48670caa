"""Does a fund's exposure map explain its real returns? The fit report per fund.

Two complementary measurements over the fund's real history:

* the REGRESSION of its excess returns on the proxies of the exposures it carries
  (:func:`core.market_data.fit_fund_map`): measured betas next to the published
  exposures, R^2, and probes for sleeves missing from the map;
* the SYNTHETIC series its map implies, ``r_cash + sum_k e_k (r_k - r_cash) - costs``,
  used as it is (no refitting), against the real returns (:func:`compare_synthetic`):
  R^2 as a prediction, tracking error, correlation, the mean difference per year (the
  realised cost drag beyond the modelled expense ratio and financing) and the worst
  month. This is exactly what a backtest or an estimator relies on before inception.

Weekly returns by default: the daily closes of funds holding foreign assets are
asynchronous with US closes and would understate a good fit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.exposures import FundExposureMap
from core.market_data import (
    FundMapFit,
    MapCheck,
    annualization_factor,
    fit_fund_map,
    proxy_returns,
    synthesize_fund_returns,
    to_returns,
)

#: Fewest overlapping periods for a fit to be reported with numbers (else NaN, said so).
MIN_FIT_PERIODS = 12


@dataclass(frozen=True)
class SyntheticFit:
    """How well a fund's exposure-synthesised returns track its real returns.

    Measured over the overlap (periods where the fund has real returns and every exposure
    it carries has a return), with NO refitting: the synthetic series is used as it is,
    exactly as the backtest uses it before inception.

    Attributes
    ----------
    symbol : str
    frequency : str
        Frequency the statistics are measured at ('monthly' or 'weekly').
    n_obs : int
        Overlapping periods.
    start, end : Timestamp or None
        First and last overlapping period.
    r_squared : float
        ``1 - sum (real - synthetic)^2 / sum (real - mean real)^2``: the share of the
        real return's variance the synthetic series explains as a prediction (can be
        negative for a bad map; NaN when fewer than :data:`MIN_FIT_PERIODS` periods).
    correlation : float
        Correlation of real and synthetic returns.
    tracking_error_annual : float
        Standard deviation of ``real - synthetic``, annualised (fraction per year).
    mean_difference_annual : float
        Mean of ``real - synthetic`` times periods per year: what the fund earned beyond
        (positive) or below (negative) its map net of the modelled costs.
    worst_month : Timestamp or None
        Month-end of the month in which the real return fell furthest below the
        synthetic one (both compounded to calendar months over the overlap).
    worst_month_difference : float
        Real minus synthetic return in that month (a negative fraction).
    first_price : Timestamp or None
        The fund's first price date in the data (None: no prices at all).
    first_real_return : Timestamp or None
        First period with a real return: the switch from synthetic to real.
    """

    symbol: str
    frequency: str
    n_obs: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    r_squared: float
    correlation: float
    tracking_error_annual: float
    mean_difference_annual: float
    first_price: pd.Timestamp | None
    first_real_return: pd.Timestamp | None
    worst_month: pd.Timestamp | None = None
    worst_month_difference: float = float("nan")

    @property
    def has_overlap(self) -> bool:
        return self.n_obs >= MIN_FIT_PERIODS

    def describe(self) -> str:
        if not self.has_overlap:
            return (
                f"{self.symbol}: no usable overlap of real and synthetic returns "
                f"({self.n_obs} {self.frequency} periods); the synthetic part is unverified"
            )
        return (
            f"{self.symbol}: synthetic vs real over {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d} "
            f"({self.n_obs} {self.frequency} periods): R^2 {self.r_squared:.3f}, "
            f"correlation {self.correlation:.3f}, tracking error "
            f"{self.tracking_error_annual:.2%}/yr, real minus synthetic "
            f"{self.mean_difference_annual:+.2%}/yr"
        )

    def to_dict(self) -> dict[str, object]:
        def day(ts: pd.Timestamp | None) -> str | None:
            return None if ts is None else f"{ts:%Y-%m-%d}"

        return {
            "symbol": self.symbol,
            "frequency": self.frequency,
            "n_obs": self.n_obs,
            "start": day(self.start),
            "end": day(self.end),
            "r_squared": self.r_squared,
            "correlation": self.correlation,
            "tracking_error_annual": self.tracking_error_annual,
            "mean_difference_annual": self.mean_difference_annual,
            "first_price": day(self.first_price),
            "first_real_return": day(self.first_real_return),
            "worst_month": None if self.worst_month is None else f"{self.worst_month:%Y-%m}",
            "worst_month_difference": self.worst_month_difference,
        }


def compare_synthetic(
    real: pd.Series,
    synthetic: pd.Series,
    frequency: str,
    *,
    symbol: str = "",
    first_price: pd.Timestamp | None = None,
) -> SyntheticFit:
    """Statistics of ``real`` against ``synthetic`` over their overlap (see :class:`SyntheticFit`).

    Parameters
    ----------
    real, synthetic : Series, shape (periods,)
        Simple returns at ``frequency``, NaN where missing.
    frequency : {'daily', 'weekly', 'monthly'}
        Daily series are compounded to weeks (Friday) over the days both exist.
    """
    symbol = symbol or str(real.name or "fund")
    first_real = real.first_valid_index()
    both = pd.concat([real.rename("real"), synthetic.rename("synth")], axis=1).dropna()
    monthly = np.expm1(np.log1p(both).resample("ME").sum(min_count=1)).dropna()
    worst, worst_diff = None, float("nan")
    if len(monthly) >= 2:
        gap = monthly["real"] - monthly["synth"]
        worst, worst_diff = pd.Timestamp(gap.idxmin()), float(gap.min())
    freq = frequency
    if frequency == "daily" and not both.empty:
        both = np.log1p(both).resample("W-FRI").sum(min_count=1).dropna()
        both = np.expm1(both)
        freq = "weekly"
    ppy = annualization_factor(freq)
    n = len(both)
    nan = float("nan")
    if n < MIN_FIT_PERIODS:
        r2 = corr = te = md = nan
    else:
        x = both["real"].to_numpy()
        s = both["synth"].to_numpy()
        diff = x - s
        sst = float(((x - x.mean()) ** 2).sum())
        r2 = 1.0 - float(diff @ diff) / sst if sst > 0 else nan
        corr = float(np.corrcoef(x, s)[0, 1]) if x.std() > 0 and s.std() > 0 else nan
        te = float(diff.std(ddof=1) * math.sqrt(ppy))
        md = float(diff.mean() * ppy)
    return SyntheticFit(
        symbol=symbol,
        frequency=freq,
        n_obs=n,
        start=pd.Timestamp(both.index[0]) if n else None,
        end=pd.Timestamp(both.index[-1]) if n else None,
        r_squared=r2,
        correlation=corr,
        tracking_error_annual=te,
        mean_difference_annual=md,
        first_price=first_price,
        first_real_return=None if first_real is None else pd.Timestamp(first_real),
        worst_month=worst,
        worst_month_difference=worst_diff,
    )


@dataclass
class FundFitReport:
    """Everything measured about one fund's map against its price history."""

    symbol: str
    regression: FundMapFit
    synthetic: SyntheticFit | None
    modelled_cost_annual: float
    check: MapCheck

    @property
    def agrees(self) -> bool:
        return self.check.ok

    def describe(self) -> str:
        fit = self.regression.fit
        parts = [f"{self.symbol}: regression R^2 {fit.r_squared:.3f}"]
        if self.synthetic is not None and self.synthetic.has_overlap:
            parts.append(self.synthetic.describe().split(": ", 1)[1])
        parts.append("map agrees with history" if self.agrees else "MAP DISAGREES with history")
        return "; ".join(parts)


def fund_fit_reports(
    prices: pd.DataFrame,
    fund_map: FundExposureMap,
    *,
    symbols: Iterable[str] | None = None,
    frequency: str = "weekly",
    min_history_years: float = 1.0,
    cash_type: str = "CASH_TBILL",
) -> tuple[dict[str, FundFitReport], dict[str, str]]:
    """Fit report of every fund with enough history (see the module docstring).

    Parameters
    ----------
    prices : DataFrame, shape (days, tickers)
        Daily prices (cleaned with :func:`core.market_data.clean_prices`) holding the
        funds, the proxy ETFs of their exposure types and the cash proxy (BIL).

    Returns
    -------
    (dict[str, FundFitReport], dict[str, str])
        Reports by symbol, and the funds skipped with the reason.
    """
    fits, skipped = fit_fund_map(
        prices, fund_map, symbols=symbols, frequency=frequency,
        min_history_years=min_history_years, cash_type=cash_type,
    )  # fmt: skip
    if not fits:
        return {}, skipped
    codes = sorted({c for f in fits.values() for c in f.proxies} | {cash_type})
    proxies = proxy_returns(prices, fund_map, codes, frequency)
    cash = proxies[cash_type]
    ppy = annualization_factor(frequency)
    reports: dict[str, FundFitReport] = {}
    for sym, result in fits.items():
        fund = result.fund
        synthetic = None
        if not result.unfitted:  # every sleeve has a proxy: the map can be replayed
            synth = synthesize_fund_returns(fund, proxies, cash, ppy)
            real = to_returns(prices[[sym]], frequency)[sym]
            first_price = prices[sym].first_valid_index()
            synthetic = compare_synthetic(
                real, synth, frequency, symbol=sym,
                first_price=None if first_price is None else pd.Timestamp(first_price),
            )  # fmt: skip
        reports[sym] = FundFitReport(
            symbol=sym,
            regression=result,
            synthetic=synthetic,
            modelled_cost_annual=fund.annual_cost,
            check=result.check(),
        )
    return reports, skipped
