"""What a backtest produced: series over time, statistics, comparison and CSV export.

Conventions
-----------
* ``equity_curve`` is wealth on every period of the backtest, starting at 1.0 on the
  start date (the close at which the first portfolio is formed). When the backtest starts
  from given holdings (``initial_weights``), the cost of the first trades is already
  taken off on the start date, so the curve starts just below 1.0.
* ``returns`` are the simple returns of the equity curve, from the second period on,
  NET of transaction costs (costs are deducted on the rebalance day).
* Weights, exposures and notional are fractions of portfolio value; ``CASH`` is the
  explicit cash position earning the bill rate.
* Turnover is two-sided: ``sum_i |trade_i| / value before trading`` (switching the
  whole portfolio from one fund to another is 2.0).
* Statistics (:func:`performance_stats`): CAGR over calendar time
  (``(W_end / W_start) ** (365.25 / days) - 1``), volatility ``std(r) * sqrt(ppy)``,
  Sharpe ``mean(r - r_cash) / std(r - r_cash) * sqrt(ppy)``, Sortino
  ``mean(r - r_cash) / sqrt(mean(min(r - r_cash, 0)^2)) * sqrt(ppy)``, max drawdown
  from :meth:`core.analytics.PortfolioAnalytics.max_drawdown`, Calmar
  ``CAGR / |max drawdown|``.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.analytics import PortfolioAnalytics
from core.errors import ValidationError
from core.fileio import atomic_write_text, neutralise_cell

__all__ = ["STAT_LABELS", "BacktestResult", "compare", "performance_stats"]

#: Column labels of :func:`compare` (statistic key -> human label).
STAT_LABELS: dict[str, str] = {
    "start": "Start",
    "end": "End",
    "cagr": "CAGR",
    "volatility": "Volatility",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "max_drawdown": "Max drawdown",
    "max_drawdown_peak": "Drawdown peak",
    "max_drawdown_trough": "Drawdown trough",
    "max_drawdown_recovery": "Drawdown recovery",
    "calmar": "Calmar",
    "total_costs": "Total costs",
    "average_turnover": "Turnover per rebalance",
    "annual_turnover": "Turnover per year",
    "average_notional": "Average notional",
    "n_rebalances": "Rebalances",
}


def _ppy(frequency: str) -> int:
    return {"daily": 252, "weekly": 52, "monthly": 12}[frequency]


def performance_stats(
    returns: pd.Series,
    cash_returns: pd.Series,
    frequency: str,
    start_date: pd.Timestamp | None = None,
) -> dict[str, Any]:
    """CAGR, volatility, Sharpe, Sortino, max drawdown (with dates) and Calmar.

    Parameters
    ----------
    returns : Series, shape (T,)
        Simple returns per period (net of costs), oldest first.
    cash_returns : Series, shape (T,)
        The bill return of the same periods.
    frequency : {'daily', 'weekly', 'monthly'}
    start_date : Timestamp, optional
        Date at which wealth was 1.0 (the period before the first return); default one
        period-length before the first return, estimated from the index.
    """
    r = returns.astype(float)
    ppy = _ppy(frequency)
    nan = float("nan")
    out: dict[str, Any] = {
        "start": start_date,
        "end": r.index[-1] if len(r) else None,
    }
    if len(r) < 2:
        out.update(
            cagr=nan, volatility=nan, sharpe=nan, sortino=nan, max_drawdown=0.0,
            max_drawdown_peak=None, max_drawdown_trough=None, max_drawdown_recovery=None,
            calmar=nan,
        )  # fmt: skip
        return out
    if start_date is None:
        step = (r.index[-1] - r.index[0]) / max(len(r) - 1, 1)
        start_date = r.index[0] - step
        out["start"] = start_date
    wealth = float(np.prod(1.0 + r.to_numpy()))
    days = (r.index[-1] - start_date).days
    cagr = wealth ** (365.25 / days) - 1.0 if days > 0 and wealth > 0 else nan
    excess = (r - cash_returns.reindex(r.index).astype(float)).to_numpy()
    vol = float(r.std(ddof=1) * math.sqrt(ppy))
    ex_sd = float(np.std(excess, ddof=1))
    sharpe = float(excess.mean() / ex_sd * math.sqrt(ppy)) if ex_sd > 0 else nan
    downside = float(np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2)))
    sortino = float(excess.mean() / downside * math.sqrt(ppy)) if downside > 0 else nan
    dd = PortfolioAnalytics.max_drawdown(r)
    peak = dd.peak_date
    if peak is not None and peak == r.index[0] and float(r.iloc[0]) < 0:
        peak = start_date  # wealth peaked at the start, before the first (losing) return
    calmar = cagr / abs(dd.depth) if dd.depth < 0 and np.isfinite(cagr) else nan
    out.update(
        cagr=cagr, volatility=vol, sharpe=sharpe, sortino=sortino, max_drawdown=dd.depth,
        max_drawdown_peak=peak, max_drawdown_trough=dd.trough_date,
        max_drawdown_recovery=dd.recovery_date, calmar=calmar,
    )  # fmt: skip
    return out


@dataclass(repr=False)
class BacktestResult:
    """The outcome of one walk-forward backtest (see the module docstring for units).

    Attributes
    ----------
    name : str
    frequency : {'daily', 'monthly'}
        Period of every series.
    equity_curve : Series, shape (T,)
        Wealth per period, 1.0 on the start date.
    returns : Series, shape (T - 1,)
        Net simple returns per period.
    cash_returns : Series, shape (T - 1,)
        Bill return per period (what cash earned; the Sharpe ratio's benchmark).
    weights : DataFrame, shape (rebalances, funds + 1)
        Weights right after each rebalance (the start included), last column ``CASH``.
    drifted_weights : DataFrame, shape (T, funds + 1)
        Weights at the close of every period (after any trade that day).
    exposures : DataFrame, shape (T, types)
        ``E w`` per exposure type at every close, plus ``CASH_TBILL`` for cash held
        (empty when a fund is missing from the fund map).
    notional : Series, shape (T,)
        ``sum_i |w_i| notional_i`` at every close.
    turnover : Series, shape (rebalances,)
        Two-sided turnover of each rebalance (the start is 0 unless ``initial_weights``).
    costs : Series, shape (rebalances,)
        Cost paid at each rebalance, in units of starting wealth.
    value_before_trade : Series, shape (rebalances,)
        Wealth just before each rebalance's trades (so ``costs = bps/1e4 * turnover *
        value_before_trade`` exactly).
    transaction_cost_bps : float
    synthetic_periods : dict[str, tuple[Timestamp, Timestamp]]
        Funds whose returns were exposure-synthesised before inception -> (first, last)
        synthetic period INSIDE the backtest window or its estimation history.
    synthetic_fit : dict[str, SyntheticFit]
        The fit of each synthesised fund's synthetic returns against its real ones.
    notes : list of str
        What the backtest had to decide on its own (fallbacks, data gaps, sources).
    settings : dict
        Everything that defines the run (method, calendar, costs, estimators, window).
    """

    name: str
    frequency: str
    equity_curve: pd.Series
    returns: pd.Series
    cash_returns: pd.Series
    weights: pd.DataFrame
    drifted_weights: pd.DataFrame
    exposures: pd.DataFrame
    notional: pd.Series
    turnover: pd.Series
    costs: pd.Series
    value_before_trade: pd.Series
    transaction_cost_bps: float
    synthetic_periods: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=dict)
    synthetic_fit: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    _stats: dict[str, Any] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"BacktestResult({self.name!r}, {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}, "
            f"{self.frequency}, CAGR {self.cagr:.2%}, Sharpe {self.sharpe:.2f})"
        )

    # ------------------------------------------------------------------ stats
    @property
    def periods_per_year(self) -> int:
        return _ppy(self.frequency)

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.equity_curve.index[0])

    @property
    def end(self) -> pd.Timestamp:
        return pd.Timestamp(self.equity_curve.index[-1])

    def stats(self) -> dict[str, Any]:
        """Every statistic of the run (keys of :data:`STAT_LABELS`)."""
        if self._stats is None:
            out = performance_stats(self.returns, self.cash_returns, self.frequency, self.start)
            trades = self.turnover[self.turnover.index > self.start]
            years = max((self.end - self.start).days / 365.25, 1e-9)
            out["total_costs"] = float(self.costs.sum())
            out["average_turnover"] = float(trades.mean()) if len(trades) else 0.0
            out["annual_turnover"] = float(trades.sum() / years)
            out["average_notional"] = float(self.notional.mean())
            out["n_rebalances"] = int((trades > 0).sum())
            self._stats = out
        return dict(self._stats)

    @property
    def cagr(self) -> float:
        """Compound annual growth rate, net of costs."""
        return float(self.stats()["cagr"])

    @property
    def volatility(self) -> float:
        """Annualised volatility of the net returns."""
        return float(self.stats()["volatility"])

    @property
    def sharpe(self) -> float:
        """Annualised Sharpe ratio of the returns in excess of cash."""
        return float(self.stats()["sharpe"])

    @property
    def sortino(self) -> float:
        """Annualised Sortino ratio of the returns in excess of cash."""
        return float(self.stats()["sortino"])

    @property
    def max_drawdown(self) -> float:
        """Deepest peak-to-trough loss, NEGATIVE (-0.35 = 35%); 0.0 if wealth never fell."""
        return float(self.stats()["max_drawdown"])

    @property
    def max_drawdown_dates(self) -> tuple[Any, Any, Any]:
        """(peak, trough, recovery) dates of the deepest drawdown (None where absent)."""
        s = self.stats()
        return s["max_drawdown_peak"], s["max_drawdown_trough"], s["max_drawdown_recovery"]

    @property
    def calmar(self) -> float:
        """CAGR over the depth of the max drawdown."""
        return float(self.stats()["calmar"])

    @property
    def total_costs(self) -> float:
        """Transaction costs paid, in units of starting wealth."""
        return float(self.stats()["total_costs"])

    @property
    def average_turnover(self) -> float:
        """Mean two-sided turnover per rebalance after the start."""
        return float(self.stats()["average_turnover"])

    @property
    def drawdown(self) -> pd.Series:
        """Drawdown from the running peak at every period (0 or negative), shape (T,)."""
        peak = self.equity_curve.cummax()
        return (self.equity_curve / peak - 1.0).rename("drawdown")

    def summary(self) -> pd.Series:
        """The statistics as one labelled row (for tables)."""
        return pd.Series(self.stats(), name=self.name)

    def synthetic_summary(self) -> list[str]:
        """One line per fund that used synthetic history: dates and the fit behind it."""
        lines = []
        for sym, (first, last) in self.synthetic_periods.items():
            fit = self.synthetic_fit.get(sym)
            lines.append(
                f"{sym}: synthetic {first:%Y-%m-%d}..{last:%Y-%m-%d}"
                + (f"; {fit.describe()}" if fit is not None else "")
            )
        return lines

    # ----------------------------------------------------------------- export
    def to_frame(self) -> pd.DataFrame:
        """Every per-period series in one table, shape (T, columns).

        Columns: equity, return, cash_return, drawdown, notional, turnover, cost, then
        ``weight:<fund>`` and ``exposure:<type>``.
        """
        idx = self.equity_curve.index
        frame = pd.DataFrame(
            {
                "equity": self.equity_curve,
                "return": self.returns.reindex(idx),
                "cash_return": self.cash_returns.reindex(idx),
                "drawdown": self.drawdown,
                "notional": self.notional.reindex(idx),
                "turnover": self.turnover.reindex(idx).fillna(0.0),
                "cost": self.costs.reindex(idx).fillna(0.0),
            },
            index=idx,
        )
        weights = self.drifted_weights.add_prefix("weight:")
        exposures = self.exposures.add_prefix("exposure:")
        frame = pd.concat([frame, weights, exposures], axis=1)
        frame.index.name = "date"
        return frame

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_frame` as CSV, atomically (a crash leaves the old file)."""
        buf = io.StringIO()
        frame = self.to_frame()
        frame.columns = [neutralise_cell(str(c)) for c in frame.columns]
        frame.to_csv(buf, date_format="%Y-%m-%d", float_format="%.10g")
        atomic_write_text(path, buf.getvalue())


def _common_returns(results: Sequence[BacktestResult]) -> pd.DatetimeIndex:
    index = results[0].returns.index
    for res in results[1:]:
        index = index.intersection(res.returns.index)
    return pd.DatetimeIndex(index)


def compare(
    results: Sequence[BacktestResult],
    benchmark: BacktestResult | None = None,
    *,
    common_period: bool = True,
) -> pd.DataFrame:
    """Several strategies side by side, one row each (the benchmark first).

    Parameters
    ----------
    results : sequence of BacktestResult
    benchmark : BacktestResult, optional
        Adds its row and, for every strategy, ``excess_cagr`` (CAGR minus the
        benchmark's), ``tracking_error`` (annualised std of the return difference),
        ``information_ratio`` and ``beta`` (to the benchmark's returns).
    common_period : bool
        Measure every row over the periods all results share (default), so that the
        numbers compare like with like; False uses each result's own span.

    Returns
    -------
    DataFrame, shape (strategies, statistics)
        Indexed by result name; columns as in :data:`STAT_LABELS` (keys), plus the
        benchmark columns.

    Raises
    ------
    ValidationError
        No results, frequencies that differ, duplicate names, or no common period.
    """
    rows = ([benchmark] if benchmark is not None else []) + list(results)
    if not rows:
        raise ValidationError("nothing to compare: pass at least one backtest result")
    freqs = {r.frequency for r in rows}
    if len(freqs) > 1:
        raise ValidationError(
            f"results have different frequencies ({', '.join(sorted(freqs))}); run them at "
            "the same frequency to compare"
        )
    names = [r.name for r in rows]
    if len(set(names)) != len(names):
        raise ValidationError(f"results need distinct names to be compared, got {names}")
    freq = rows[0].frequency
    index = _common_returns(rows) if common_period else None
    if index is not None and len(index) < 2:
        raise ValidationError("the results share fewer than two periods; align their dates")
    table: dict[str, dict[str, Any]] = {}
    bench_r = None
    for res in rows:
        if index is None:
            stats = res.stats()
            r = res.returns
        else:
            r = res.returns.reindex(index)
            pos = res.equity_curve.index.get_indexer([index[0]])[0]
            start = res.equity_curve.index[pos - 1] if pos > 0 else None
            stats = performance_stats(r, res.cash_returns.reindex(index), freq, start)
            in_window = (res.turnover.index > (start if start is not None else index[0])) & (
                res.turnover.index <= index[-1]
            )
            trades = res.turnover[in_window]
            first = start if start is not None else index[0]
            years = max((index[-1] - first).days / 365.25, 1e-9)
            stats["total_costs"] = float(res.costs[in_window].sum())
            stats["average_turnover"] = float(trades.mean()) if len(trades) else 0.0
            stats["annual_turnover"] = float(trades.sum() / years)
            stats["average_notional"] = float(res.notional.reindex(index).mean())
            stats["n_rebalances"] = int((trades > 0).sum())
        if benchmark is not None:
            if res is benchmark:
                bench_r = r
                stats.update(excess_cagr=0.0, tracking_error=0.0, information_ratio=np.nan,
                             beta=1.0)  # fmt: skip
            else:
                assert bench_r is not None
                both = pd.concat([r, bench_r], axis=1).dropna()
                diff = both.iloc[:, 0] - both.iloc[:, 1]
                te = float(diff.std(ddof=1) * math.sqrt(_ppy(freq)))
                var_b = float(both.iloc[:, 1].var(ddof=1))
                stats["excess_cagr"] = stats["cagr"] - table[benchmark.name]["cagr"]
                stats["tracking_error"] = te
                stats["information_ratio"] = (
                    float(diff.mean() * _ppy(freq) / te) if te > 0 else np.nan
                )
                stats["beta"] = float(both.cov(ddof=1).iloc[0, 1] / var_b) if var_b > 0 else np.nan
        table[res.name] = stats
    return pd.DataFrame.from_dict(table, orient="index")
