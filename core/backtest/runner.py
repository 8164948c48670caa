"""Walk-forward backtests of optimization strategies, with no look-ahead.

How a backtest runs
-------------------
* Returns are built once from the prices (:func:`core.market_data.to_returns`) at the
  backtest frequency: DAILY by default; MONTHLY when pre-inception history comes from the
  monthly exposure panel (the panel has one return per month, so a daily backtest cannot
  use it; say ``frequency='monthly'`` to run monthly without it).
* The portfolio is formed at the close of the start date. At every decision date (the
  last period of each week / month / quarter / year in the data, or every period for a
  band check) the strategy sees ONLY data up to and including that date's close: the
  estimators get the trailing ``lookback_years`` window ending at that row, a callable
  strategy gets a copy of the history ending at that row. The new weights earn returns
  from the NEXT period on.
* Between decisions, holdings drift with their own returns (weights are not reset);
  cash earns the bill rate.
* Trades cost ``transaction_cost_bps`` on the traded value (two-sided: buys plus sells),
  deducted on the rebalance day. The cost is solved exactly: the post-trade value ``V'``
  satisfies ``V' = V - k * sum_i |w_i V' - h_i|``, so the target weights hold exactly
  after costs and ``cost = k * turnover * V`` with ``turnover = traded / V``.
* Fund expense ratios and the financing of a fund's internal leverage are INSIDE real
  fund returns (adjusted closes are net of them) and are not charged again. Synthetic
  pre-inception returns deduct them as the fund map states
  (:func:`core.market_data.synthesize_fund_returns`).
* A held fund whose return is missing on a date (a gap in its prices longer than
  :data:`core.market_data.FFILL_LIMIT` days, or the end of its history) keeps its value
  that period; each case is listed in ``result.notes``.

Look-ahead that remains by construction: the fund map (exposures and costs) and, with
``return_method='exposure_model'``, the market assumptions are taken as known at every
date; the default assumptions were estimated on data up to 2026, so that choice leaks
the future (use ``'historical'``, ``'ewma'`` or ``'exposure_history'`` to avoid it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.backtest.prepared import FAST_OBJECTIVES, PreparedProblem
from core.backtest.result import BacktestResult, compare
from core.backtest.synthetic import SyntheticHistory, build_synthetic_history
from core.errors import (
    DataError,
    InfeasibleError,
    SolverError,
    StackOptError,
    ValidationError,
)
from core.exposures import ExposureCalculator, FundExposureMap
from core.market_data import proxy_returns, to_returns
from core.optimization.constraints import OptimizationConstraints
from core.optimization.estimators import (
    MIN_OBSERVATIONS,
    ReturnEstimator,
    ewma_covariance,
    ewma_mean,
    ledoit_wolf,
    ledoit_wolf_constant_correlation,
    oas,
    sample_covariance,
)
from core.optimization.results import ObjectiveType

__all__ = [
    "CALENDARS",
    "STRATEGIES",
    "BacktestCancelled",
    "BacktestContext",
    "BacktestProgress",
    "OptimizationBacktest",
    "StrategyFunction",
]

#: Rebalance calendars (``'band'`` checks the drift every period).
CALENDARS = ("daily", "weekly", "monthly", "quarterly", "annual", "never", "band")
#: Named strategies (plus any :class:`ObjectiveType` value, a weights mapping, a callable).
STRATEGIES = (
    "max_sharpe",
    "min_volatility",
    "max_diversification",
    "risk_parity",
    "risk_parity_exposure",
    "hrp",
    "equal_weight",
    "buy_and_hold",
    "fixed",
)
COVARIANCE_METHODS = ("sample", "ledoit_wolf", "oas", "constant_correlation", "ewma")
RETURN_METHODS = ("historical", "ewma", "exposure_history", "exposure_model")
_PPY = {"daily": 252, "weekly": 52, "monthly": 12}
_CASH = "CASH"
#: Share of the periods of the ``min_history_years`` window a fund must have returns on.
_HISTORY_COVERAGE = 0.9


class BacktestCancelled(StackOptError):
    """``should_stop`` asked the backtest to stop; no result was produced."""


@dataclass(frozen=True)
class BacktestContext:
    """What a callable strategy may know at a decision date (all of it up to that close).

    Attributes
    ----------
    date : Timestamp
        The decision date; the returned weights earn returns from the next period on.
    position : int
        Index of ``date`` among the backtest's periods (0 = the start).
    symbols : tuple of str
        The funds, in the order of a returned array.
    weights : Series
        Current (drifted) weights before trading, funds then ``CASH``.
    value : float
        Portfolio value before trading (1.0 at the start).
    available : tuple of str
        Funds with a return on ``date`` (they can be traded).
    cash_history : Series
        Bill returns up to and including ``date``.
    fund_map : FundExposureMap
    """

    date: pd.Timestamp
    position: int
    symbols: tuple[str, ...]
    weights: pd.Series
    value: float
    available: tuple[str, ...]
    cash_history: pd.Series
    fund_map: FundExposureMap


#: ``f(date, history, context) -> weights``: ``history`` is a DataFrame of the funds'
#: returns up to and including ``date``; weights a Series/mapping by symbol or an array in
#: ``context.symbols`` order; cash is ``1 - sum(weights)``.
StrategyFunction = Callable[[pd.Timestamp, pd.DataFrame, BacktestContext], Any]


@dataclass
class BacktestProgress:
    """One tick of :meth:`OptimizationBacktest.iter_backtest`.

    ``done`` of ``total`` periods are simulated; ``result`` is set on the last tick only.
    """

    done: int
    total: int
    date: pd.Timestamp
    value: float
    result: BacktestResult | None = None


@dataclass
class _Decision:
    """What a strategy returned for one date: fund weights (the rest is cash)."""

    weights: np.ndarray
    note: str = ""


@dataclass
class _Run:
    """Mutable state of one backtest run handed to strategies."""

    symbols: list[str]
    constraints: OptimizationConstraints
    weights: np.ndarray  # drifted, before trading
    cash: float
    value: float
    notes: list[str] = field(default_factory=list)
    from_cash: bool = True  # the first portfolio, bought from cash (no turnover limit)


def _at_date(exc: StackOptError, date: pd.Timestamp) -> StackOptError:
    """The same error with the decision date in front of its message."""
    prefix = f"On {date:%Y-%m-%d}: "
    if isinstance(exc, InfeasibleError):
        return InfeasibleError(prefix + str(exc), exc.conflicts)
    if isinstance(exc, SolverError):
        return SolverError(prefix + str(exc), status=exc.status, solver=exc.solver)
    if isinstance(exc, DataError):
        return DataError(prefix + exc.reason, path=exc.path, row=exc.row, column=exc.column)
    if isinstance(exc, ValidationError):
        return ValidationError(prefix + str(exc), field=exc.field, problems=exc.problems)
    return type(exc)(prefix + str(exc))


def _upper_frame(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(f"{what} must be a DataFrame (dates x symbols)", field=what)
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise ValidationError(f"{what} must have a DatetimeIndex (dates as the index)", field=what)
    frame = frame.copy()
    frame.columns = [str(c).strip().upper() for c in frame.columns]
    if frame.columns.has_duplicates:
        dup = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise ValidationError(f"{what} has duplicate columns: {', '.join(dup)}", field=what)
    frame = frame.sort_index(kind="stable")
    if frame.index.has_duplicates:
        first = frame.index[frame.index.duplicated()][0]
        raise DataError(f"{what} has duplicated dates (first {first:%Y-%m-%d})")
    return frame


def _infer_frequency(index: pd.DatetimeIndex) -> str:
    if len(index) < 3:
        raise DataError("fewer than three dates: too short a history to backtest")
    gap = float(np.median(np.diff(index.values).astype("timedelta64[s]").astype(float))) / 86_400
    return "monthly" if gap > 20 else ("weekly" if gap > 4 else "daily")


def _compound(returns: pd.Series, frequency: str) -> pd.Series:
    """Daily returns compounded to month ends (``frequency='monthly'``)."""
    if frequency == "daily":
        return returns
    rule = {"monthly": "ME", "weekly": "W-FRI"}[frequency]
    logs = np.log1p(returns.astype(float)).resample(rule).sum(min_count=1)
    return np.expm1(logs)


class OptimizationBacktest:
    """Walk-forward backtests of optimization strategies (see the module docstring).

    Parameters
    ----------
    prices : DataFrame, shape (days, symbols)
        Daily adjusted closes, wide; columns starting with ``^`` (yields such as ``^IRX``)
        are not funds. Clean known faults first (:func:`core.market_data.clean_prices`).
    fund_map : FundExposureMap, optional
        Exposures of every fund backtested; default the built-in map.
    assumptions : MarketAssumptions, optional
        Only for ``return_method='exposure_model'`` and as the last-resort cash rate.
    cash_returns : Series, optional
        Bill return per period (daily, or monthly for a monthly backtest); daily returns
        are compounded to months when the backtest is monthly. Default: the exposure
        panel's ``CASH_TBILL`` (monthly runs with a panel), else ``cash_symbol``'s returns
        (BIL), before it exists the ``^IRX`` yield, and where none exists ``cash_rate``.
    cash_rate : float, optional
        Constant annual bill rate for periods no cash series covers; without it such
        periods are an error.
    transaction_cost_bps : float
        Cost per unit of traded value, in basis points (5.0 = 0.05%).
    lookback_years : float
        Trailing window of the covariance (and, unless ``return_lookback_years``, of the
        expected returns) re-estimated at every decision.
    min_history_years : float
        A fund takes part in an optimization once it has returns on 90% of the periods of
        this many trailing years (and on at least 20 periods).
    covariance_method : {'ledoit_wolf', 'sample', 'oas', 'constant_correlation', 'ewma'}
    return_method : {'historical', 'ewma', 'exposure_history', 'exposure_model'}
        Expected excess returns for max Sharpe: the trailing mean of each fund's return
        over cash; its EWMA (``halflife_years``); ``'exposure_history'``: the trailing
        mean excess return of each exposure type projected through the map,
        ``E' mu_x - costs`` (leverage-aware, and long for short-history funds); or
        ``'exposure_model'``: ``assumptions`` (static: see the look-ahead note).
    return_lookback_years : float, optional
        Window of the expected returns; default ``lookback_years``; ``inf`` = all
        history up to the date.
    halflife_years : float
        Half-life of the EWMA estimators.
    synthetic_history : bool or DataFrame
        False: real returns only (funds join once they have history). A DataFrame: an
        exposure-return panel (columns = exposure type codes, e.g. the shared monthly
        panel) used to synthesise each fund's returns before its inception; the backtest
        then runs at the panel's frequency. True: the same from the exposure types' proxy
        ETFs in ``prices`` (daily).
    synthetic_haircuts : mapping, optional
        Exposure type code -> annual return taken off that type's returns wherever the
        backtest uses exposure returns (synthetic fund returns and exposure-based
        estimates), for an index known to overstate what a fund could earn (a
        gross-of-fees managed-futures index). Real fund returns are never changed.
    frequency : {'daily', 'monthly'}, optional
        Backtest period; default as described above.
    cash_symbol : str
        Bill ETF whose returns are the default cash rate.

    Notes
    -----
    Returns, synthetic histories and exposure returns are computed once and cached, so
    many strategies can be run on one instance; run them one after another (one run at a
    time per instance, as on the app's single solver thread).
    """

    def __init__(
        self,
        prices: pd.DataFrame,
        fund_map: FundExposureMap | None = None,
        *,
        assumptions: Any = None,
        cash_returns: pd.Series | None = None,
        cash_rate: float | None = None,
        transaction_cost_bps: float = 5.0,
        lookback_years: float = 3.0,
        min_history_years: float = 1.0,
        covariance_method: str = "ledoit_wolf",
        return_method: str = "historical",
        return_lookback_years: float | None = None,
        halflife_years: float = 1.0,
        synthetic_history: bool | pd.DataFrame = False,
        synthetic_haircuts: Mapping[str, float] | None = None,
        frequency: str | None = None,
        cash_symbol: str = "BIL",
    ):
        self.prices = _upper_frame(prices, "prices")
        self.fund_map = fund_map if fund_map is not None else FundExposureMap.default()
        self.assumptions = assumptions
        numbers: dict[str, float] = {}
        for name, value in (
            ("transaction_cost_bps", transaction_cost_bps),
            ("lookback_years", lookback_years),
            ("min_history_years", min_history_years),
            ("halflife_years", halflife_years),
        ):
            try:
                numbers[name] = float(value)
            except (TypeError, ValueError):
                raise ValidationError(
                    f"{name} must be a number, got {value!r}", field=name
                ) from None
            if not math.isfinite(numbers[name]) or numbers[name] < 0:
                raise ValidationError(f"{name} must be a finite number >= 0", field=name)
        if numbers["lookback_years"] <= 0 or numbers["halflife_years"] <= 0:
            raise ValidationError("lookback_years and halflife_years must be > 0")
        self.transaction_cost_bps = float(transaction_cost_bps)
        self.lookback_years = float(lookback_years)
        self.min_history_years = min(float(min_history_years), self.lookback_years)
        if covariance_method not in COVARIANCE_METHODS:
            raise ValidationError(
                f"covariance_method must be one of {', '.join(COVARIANCE_METHODS)}",
                field="covariance_method",
            )
        if return_method not in RETURN_METHODS:
            raise ValidationError(
                f"return_method must be one of {', '.join(RETURN_METHODS)}",
                field="return_method",
            )
        self.covariance_method = covariance_method
        self.return_method = return_method
        self.return_lookback_years = (
            self.lookback_years if return_lookback_years is None else float(return_lookback_years)
        )
        if not self.return_lookback_years > 0:
            raise ValidationError("return_lookback_years must be > 0", field="return_lookback")
        self.halflife_years = float(halflife_years)
        self.cash_symbol = cash_symbol.upper()
        self.synthetic_haircuts = {
            str(k).upper(): float(v) for k, v in (synthetic_haircuts or {}).items()
        }

        panel: pd.DataFrame | None = None
        if isinstance(synthetic_history, pd.DataFrame):
            panel = _upper_frame(synthetic_history, "synthetic_history")
            self.synthetic_source = "exposure panel"
        elif synthetic_history is True:
            self.synthetic_source = "proxy ETFs"
        elif synthetic_history is False or synthetic_history is None:
            self.synthetic_source = None
        else:
            raise ValidationError(
                "synthetic_history must be False, True or an exposure-return DataFrame",
                field="synthetic_history",
            )
        self._panel = panel
        if frequency is None:
            frequency = (
                _infer_frequency(pd.DatetimeIndex(panel.index)) if panel is not None else "daily"
            )
        frequency = str(frequency).lower()
        if frequency not in ("daily", "monthly"):
            raise ValidationError("frequency must be 'daily' or 'monthly'", field="frequency")
        if panel is not None and _infer_frequency(pd.DatetimeIndex(panel.index)) != frequency:
            raise ValidationError(
                f"the exposure panel is {_infer_frequency(pd.DatetimeIndex(panel.index))} but "
                f"the backtest was asked to run {frequency}; run it at the panel's frequency",
                field="frequency",
            )
        self.frequency = frequency
        self.periods_per_year = _PPY[frequency]

        funds = [c for c in self.prices.columns if not c.startswith("^")]
        self._real = to_returns(self.prices[funds], frequency) if funds else pd.DataFrame()
        index = pd.DatetimeIndex(self._real.index)
        if panel is not None:
            last = index[-1] if len(index) else panel.index[-1]
            index = index.union(pd.DatetimeIndex(panel.index[panel.index <= last]))
        self.index = index
        self._first_price = {c: self.prices[c].first_valid_index() for c in funds}
        self.cash_notes: list[str] = []
        self.cash = self._build_cash(cash_returns, cash_rate)
        self._returns_cache: dict[str, pd.Series] = {}
        self._synthetic = SyntheticHistory(
            returns=pd.DataFrame(index=index), synthetic=pd.DataFrame()
        )
        self._exposure_cache: pd.DataFrame | None = None

    # ================================================================== data
    def _build_cash(self, cash_returns: pd.Series | None, cash_rate: float | None) -> pd.Series:
        index = self.index
        freq = self.frequency
        cash = pd.Series(np.nan, index=index, name=_CASH)
        if cash_returns is not None:
            given = pd.Series(cash_returns).astype(float)
            if not isinstance(given.index, pd.DatetimeIndex):
                raise ValidationError(
                    "cash_returns must have a DatetimeIndex", field="cash_returns"
                )
            given = given.sort_index()
            if freq == "monthly" and _infer_frequency(pd.DatetimeIndex(given.index)) == "daily":
                given = _compound(given, "monthly")
            cash = cash.fillna(given.reindex(index))
            self.cash_notes.append("cash: the bill returns given")
        if self._panel is not None and "CASH_TBILL" in self._panel.columns and freq == "monthly":
            gap = cash.isna()
            if gap.any():
                cash[gap] = self._panel["CASH_TBILL"].reindex(index)[gap]
                self.cash_notes.append("cash: the exposure panel's CASH_TBILL")
        sym = self.cash_symbol
        if cash.isna().any() and sym in self.prices.columns:
            bill = to_returns(self.prices[[sym]], freq)[sym].reindex(index)
            gap = cash.isna() & bill.notna()
            if gap.any():
                cash[gap] = bill[gap]
                self.cash_notes.append(f"cash: {sym} returns from {gap[gap].index[0]:%Y-%m-%d}")
        if cash.isna().any() and "^IRX" in self.prices.columns:
            # 13-week bill yield in percent: the day's return at that annual rate
            irx = self.prices["^IRX"].astype(float)
            daily = (1.0 + irx / 100.0) ** (1.0 / 252.0) - 1.0
            days = pd.DatetimeIndex(self.prices.index)
            daily = daily.reindex(days).ffill(limit=5).shift(1)  # earned over the next day
            series = daily if freq == "daily" else _compound(daily, freq)
            series = series.reindex(index)
            gap = cash.isna() & series.notna()
            if gap.any():
                cash[gap] = series[gap]
                self.cash_notes.append(
                    f"cash: the ^IRX bill yield for {int(gap.sum())} periods "
                    f"({gap[gap].index[0]:%Y-%m-%d}..{gap[gap].index[-1]:%Y-%m-%d})"
                )
        if cash.isna().any():
            rate = cash_rate
            if rate is None and self.assumptions is not None:
                rate = float(self.assumptions.cash_rate)
            missing = cash.isna()
            if rate is None:
                raise DataError(
                    f"no cash (bill) return for {int(missing.sum())} periods "
                    f"({missing[missing].index[0]:%Y-%m-%d}..{missing[missing].index[-1]:%Y-%m-%d}); "
                    f"add {sym} or ^IRX prices, pass cash_returns=, or set cash_rate="
                )
            per = (1.0 + float(rate)) ** (1.0 / self.periods_per_year) - 1.0
            cash[missing] = per
            self.cash_notes.append(
                f"cash: a constant {float(rate):.2%}/yr for {int(missing.sum())} periods"
            )
        return cash

    def _exposure_returns(self, codes: Sequence[str]) -> pd.DataFrame:
        """Exposure type returns at the backtest frequency (panel, else proxy ETFs)."""
        codes = [c.upper() for c in codes]
        if self._panel is not None:
            missing = [c for c in codes if c not in self._panel.columns]
            if missing:
                raise DataError(
                    f"the exposure panel has no returns for {', '.join(missing)}; add the "
                    "column or drop the funds that carry it"
                )
            return self._haircut(self._panel[codes].reindex(self.index))
        have = self._exposure_cache
        need = [c for c in codes if have is None or c not in have.columns]
        if need:
            new = proxy_returns(self.prices, self.fund_map, need, self.frequency)
            have = new if have is None else pd.concat([have, new], axis=1)
            self._exposure_cache = have
        assert have is not None
        return self._haircut(have[codes].reindex(self.index))

    def _haircut(self, exposure: pd.DataFrame) -> pd.DataFrame:
        cuts = {c: v for c, v in self.synthetic_haircuts.items() if c in exposure.columns and v}
        if not cuts:
            return exposure
        out = exposure.copy()
        for code, cut in cuts.items():
            out[code] = out[code] - cut / self.periods_per_year
        return out

    def _ensure_synthetic(self, symbols: Sequence[str]) -> None:
        need = [s for s in symbols if s not in self._returns_cache]
        if not need:
            return
        if self.synthetic_source is None:
            for s in need:
                if s not in self._real.columns:
                    raise DataError(
                        f"no prices for {s}; add its price history or pass synthetic_history "
                        "(an exposure panel) to synthesise it",
                        column=s,
                    )
                self._returns_cache[s] = self._real[s].reindex(self.index)
            return
        codes = sorted(
            {c.upper() for s in need for c, v in self.fund_map[s].exposures.items() if v}
            - {"CASH_TBILL"}
        )
        if self._panel is not None:
            exposure = self._exposure_returns([c for c in codes if c in self._panel.columns])
        else:
            usable = [
                c for c in codes
                if self.fund_map.exposure_types[c].proxy.strip().upper() in self.prices.columns
            ]  # fmt: skip
            exposure = self._exposure_returns(usable) if usable else pd.DataFrame(index=self.index)
        real = self._real.reindex(columns=[s for s in need if s in self._real.columns])
        history = build_synthetic_history(
            real.reindex(self.index),
            self.fund_map,
            exposure.reindex(self.index),
            self.cash,
            symbols=need,
            first_prices=self._first_price,
        )
        for s in need:
            self._returns_cache[s] = history.returns[s].reindex(self.index)
        syn = self._synthetic
        syn.returns = pd.concat([syn.returns, history.returns.reindex(self.index)], axis=1)
        syn.synthetic = pd.concat([syn.synthetic, history.synthetic.reindex(self.index)], axis=1)
        syn.periods.update(history.periods)
        syn.fits.update(history.fits)
        syn.notes.extend(history.notes)

    def returns_for(self, symbols: Sequence[str]) -> pd.DataFrame:
        """The returns the backtest uses (spliced when synthetic history is on).

        Returns
        -------
        DataFrame, shape (periods, len(symbols))
            At the backtest frequency, on :attr:`index`.
        """
        syms = [str(s).upper() for s in symbols]
        self._ensure_synthetic(syms)
        return pd.DataFrame({s: self._returns_cache[s] for s in syms}, index=self.index)

    def synthetic_history(self, symbols: Sequence[str]) -> SyntheticHistory:
        """Which periods of ``symbols`` are synthetic and the fits that justify them."""
        syms = [str(s).upper() for s in symbols]
        self._ensure_synthetic(syms)
        syn = self._synthetic
        return SyntheticHistory(
            returns=syn.returns.reindex(columns=syms),
            synthetic=syn.synthetic.reindex(columns=[s for s in syms if s in syn.synthetic]),
            periods={s: p for s, p in syn.periods.items() if s in syms},
            fits={s: f for s, f in syn.fits.items() if s in syms},
            notes=[n for n in syn.notes if n.split(":")[0] in syms],
        )

    # ============================================================ estimation
    def _window_start(self, pos: int, years: float) -> int:
        if not math.isfinite(years):
            return 0
        date = self.index[pos]
        cut = date - pd.Timedelta(days=365.25 * years)
        return int(self.index.searchsorted(cut, side="right"))

    def _min_obs(self, pos: int) -> int:
        """Returns a fund needs in the lookback window to take part at ``pos``."""
        recent = pos + 1 - self._window_start(pos, self.min_history_years)
        window = pos + 1 - self._window_start(pos, self.lookback_years)
        return max(int(math.ceil(_HISTORY_COVERAGE * recent)), min(MIN_OBSERVATIONS, window))

    def _eligible(self, R: np.ndarray, pos: int) -> np.ndarray:
        """Funds with a return at ``pos`` and enough history in the window, shape (n,)."""
        w0 = self._window_start(pos, self.lookback_years)
        counts = (~np.isnan(R[w0 : pos + 1])).sum(axis=0)
        return ~np.isnan(R[pos]) & (counts >= self._min_obs(pos))

    def eligible(self, symbols: Sequence[str], date: Any) -> list[str]:
        """Funds of ``symbols`` that take part in an optimization decided at ``date``.

        A fund needs a return on the date itself and returns on 90% of the periods of the
        trailing ``min_history_years`` (and on at least 20 periods of the lookback window).
        """
        syms = [str(s).upper() for s in symbols]
        R = self.returns_for(syms).to_numpy(dtype=float)
        pos = int(self.index.searchsorted(pd.Timestamp(date), side="right")) - 1
        if pos < 0:
            return []
        return [s for s, ok in zip(syms, self._eligible(R, pos), strict=True) if ok]

    def estimate_covariance(self, symbols: Sequence[str], date: Any) -> pd.DataFrame:
        """The annual covariance an optimization decided at ``date`` uses.

        Over the funds of :meth:`eligible` and the trailing ``lookback_years`` window
        ending at ``date`` (inclusive), with ``covariance_method``.

        Returns
        -------
        DataFrame, shape (k, k)
            Indexed by the eligible symbols on both axes.
        """
        syms = [str(s).upper() for s in symbols]
        R = self.returns_for(syms).to_numpy(dtype=float)
        pos = int(self.index.searchsorted(pd.Timestamp(date), side="right")) - 1
        if pos < 0:
            raise ValidationError(f"{pd.Timestamp(date):%Y-%m-%d} is before the data starts")
        cols = np.flatnonzero(self._eligible(R, pos))
        names = [syms[i] for i in cols]
        w0 = self._window_start(pos, self.lookback_years)
        cov = self._covariance(R[w0 : pos + 1][:, cols], names)
        return pd.DataFrame(cov, index=names, columns=names)

    def _covariance(self, X: np.ndarray, names: list[str]) -> np.ndarray:
        """Annual covariance of the window ``X`` (periods, k), PSD."""
        method = self.covariance_method
        ppy = self.periods_per_year
        if not np.isnan(X).any():
            if method == "ledoit_wolf":
                cov = ledoit_wolf(X)[0]
            elif method == "sample":
                cov = sample_covariance(X)
            elif method == "oas":
                cov = oas(X)[0]
            elif method == "constant_correlation":
                cov = ledoit_wolf_constant_correlation(X)[0]
            else:
                cov = ewma_covariance(X, self.halflife_years * ppy)
            cov = cov * ppy
        else:
            est = ReturnEstimator(
                pd.DataFrame(X, columns=names),
                frequency=self.frequency,
                halflife_years=self.halflife_years,
                min_observations=max(2, min(MIN_OBSERVATIONS, X.shape[0])),
            )
            cov = est.estimate_covariance_matrix(names, method).to_numpy(dtype=float)
        return 0.5 * (cov + cov.T)

    def _excess_returns(
        self, R: np.ndarray, pos: int, cols: np.ndarray, symbols: list[str]
    ) -> np.ndarray:
        """Annual expected returns over cash of the funds ``cols`` at ``pos``."""
        ppy = self.periods_per_year
        method = self.return_method
        if method == "exposure_model":
            if self.assumptions is None:
                from core.assumptions import MarketAssumptions

                self.assumptions = MarketAssumptions.default()
            mu = self.assumptions.fund_expected_returns(self.fund_map, symbols)
            return mu.reindex(symbols).to_numpy(dtype=float)
        w0 = self._window_start(pos, self.return_lookback_years)
        cash = self.cash.to_numpy()[w0 : pos + 1]
        if method == "exposure_history":
            calc = ExposureCalculator(self.fund_map, symbols)
            codes = [c for c in calc.exposure_types if c != "CASH_TBILL"]
            x = self._exposure_returns(codes).to_numpy()[w0 : pos + 1] - cash[:, None]
            mu_x = np.nanmean(x, axis=0) * ppy if x.size else np.zeros(0)
            if np.isnan(mu_x).any():
                bad = [c for c, m in zip(codes, mu_x, strict=True) if np.isnan(m)]
                raise DataError(f"no exposure returns for {', '.join(bad)} in the window")
            keep = [calc.exposure_types.index(c) for c in codes]
            return calc.matrix[keep].T @ mu_x - calc.annual_costs
        X = R[w0 : pos + 1][:, cols] - cash[:, None]
        if method == "historical":
            return np.nanmean(X, axis=0) * ppy
        return ewma_mean(X, self.halflife_years * ppy) * ppy

    def _cash_rate(self, pos: int) -> float:
        w0 = self._window_start(pos, self.lookback_years)
        return float(np.mean(self.cash.to_numpy()[w0 : pos + 1]) * self.periods_per_year)

    def _exposure_assumptions(self, pos: int, symbols: list[str]) -> Any:
        """Exposure-level assumptions from the trailing window only (no look-ahead)."""
        from core.assumptions import CASH_VOLATILITY, MarketAssumptions

        ppy = self.periods_per_year
        calc = ExposureCalculator(self.fund_map, symbols)
        codes = [c for c in calc.exposure_types if c != "CASH_TBILL"]
        w0 = self._window_start(pos, self.lookback_years)
        cash = self.cash.to_numpy()[w0 : pos + 1]
        x = self._exposure_returns(codes).to_numpy()[w0 : pos + 1] - cash[:, None]
        x = x[~np.isnan(x).any(axis=1)]
        if x.shape[0] < max(MIN_OBSERVATIONS // 2, len(codes) + 2):
            raise DataError(
                f"only {x.shape[0]} periods where every exposure ({', '.join(codes)}) has a "
                "return in the window; lengthen lookback_years or start later"
            )
        cov = self._covariance(x, codes)
        vol = np.sqrt(np.clip(np.diag(cov), 1e-18, None))
        corr = cov / np.outer(vol, vol)
        np.fill_diagonal(corr, 1.0)
        mu = np.clip(x.mean(axis=0) * ppy, -0.99, 0.99)
        all_codes = [*codes, "CASH_TBILL"]
        full = np.eye(len(all_codes))
        full[: len(codes), : len(codes)] = corr
        rate = min(max(self._cash_rate(pos), -0.05), 0.5)
        return MarketAssumptions(
            pd.Series([*mu, 0.0], index=all_codes),
            pd.Series([*np.minimum(vol, 2.0), CASH_VOLATILITY], index=all_codes),
            pd.DataFrame(full, index=all_codes, columns=all_codes),
            rate,
            method="trailing window of the backtest",
            exposure_types=[
                t
                for c, t in self.fund_map.exposure_types.items()
                if c in all_codes and not t.builtin
            ],
        )

    # ============================================================ strategies
    def _resolve(
        self,
        method: Any,
        weights: Any,
        symbols: list[str],
    ) -> tuple[str, Callable[[int, _Run], _Decision], bool]:
        """(label, decide(pos, run) -> decision, buy_and_hold)."""
        if callable(method) and not isinstance(method, (str, ObjectiveType)):
            return getattr(method, "__name__", "custom strategy"), self._callable(method), False
        if isinstance(method, (Mapping, pd.Series)):
            return "fixed weights", self._fixed(method, symbols), False
        key = str(method.value if isinstance(method, ObjectiveType) else method).strip().lower()
        if key in ("fixed", "buy_and_hold"):
            if weights is None and key == "fixed":
                raise ValidationError("'fixed' needs weights= (symbol -> weight)", field="weights")
            given = weights if weights is not None else {s: 1.0 / len(symbols) for s in symbols}
            return key.replace("_", " "), self._fixed(given, symbols), key == "buy_and_hold"
        if key == "equal_weight":
            return "equal weight", self._equal_weight, False
        if key in ("risk_parity", "risk_parity_exposure", "hrp"):
            return key.replace("_", " "), self._risk_parity(key), False
        try:
            objective = ObjectiveType(key)
        except ValueError:
            raise ValidationError(
                f"unknown strategy {method!r}; use one of {', '.join(STRATEGIES)}, a weights "
                "mapping or a callable",
                field="optimization_method",
            ) from None
        if objective in (ObjectiveType.MAX_RETURN, ObjectiveType.MIN_TRACKING_ERROR):
            raise ValidationError(
                f"{objective.label} is not a backtest strategy here; use a callable",
                field="optimization_method",
            )
        return objective.label, self._mean_variance(objective), False

    def _fixed(self, weights: Any, symbols: list[str]) -> Callable[[int, _Run], _Decision]:
        given = pd.Series(weights, dtype=float)
        given.index = [str(s).upper() for s in given.index]
        unknown = [s for s in given.index if s not in symbols]
        if unknown:
            raise ValidationError(
                f"weights name funds not in the backtest: {', '.join(unknown)}", field="weights"
            )
        bad = [s for s, v in given.items() if not math.isfinite(v)]
        if bad:
            raise ValidationError(f"weights of {', '.join(bad)} are not numbers", field="weights")
        if given.sum() > 1.0 + 1e-9:
            raise ValidationError(
                f"weights sum to {given.sum():.2%}, over 100%: margin borrowing is not "
                "modelled; use leveraged funds for more exposure",
                field="weights",
            )
        w = given.reindex(symbols).fillna(0.0).to_numpy()
        held = np.flatnonzero(w != 0)
        index = self.index

        def decide(pos: int, run: _Run) -> _Decision:
            R = self._R
            missing = [symbols[i] for i in held if np.isnan(R[pos, i])]
            if missing:
                raise DataError(
                    f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no return "
                    f"on {index[pos]:%Y-%m-%d}; start the backtest after "
                    f"{'its' if len(missing) == 1 else 'their'} first price, or pass "
                    "synthetic_history to use exposure-synthesised returns before inception",
                    column=missing[0],
                )
            return _Decision(w.copy())

        return decide

    def _equal_weight(self, pos: int, run: _Run) -> _Decision:
        ok = ~np.isnan(self._R[pos])
        if not ok.any():
            raise DataError(f"no fund has a return on {self.index[pos]:%Y-%m-%d}")
        return _Decision(ok / ok.sum())

    def _callable(self, fn: StrategyFunction) -> Callable[[int, _Run], _Decision]:
        def decide(pos: int, run: _Run) -> _Decision:
            symbols = run.symbols
            date = self.index[pos]
            # copies, so that nothing past the decision date is reachable (not even
            # through a view's .base)
            history = pd.DataFrame(
                self._R[: pos + 1].copy(), index=self.index[: pos + 1].copy(), columns=symbols
            )
            available = tuple(s for s, r in zip(symbols, self._R[pos], strict=True) if r == r)
            ctx = BacktestContext(
                date=date,
                position=pos - self._p0,
                symbols=tuple(symbols),
                weights=pd.Series([*run.weights, run.cash], index=[*symbols, _CASH]),
                value=run.value,
                available=available,
                cash_history=self.cash.iloc[: pos + 1].copy(),
                fund_map=self.fund_map,
            )
            raw = fn(date, history, ctx)
            if isinstance(raw, (Mapping, pd.Series)):
                given = pd.Series(raw, dtype=float)
                given.index = [str(s).upper() for s in given.index]
                given = given.drop(_CASH, errors="ignore")
                unknown = [s for s in given.index if s not in symbols]
                if unknown:
                    raise ValidationError(
                        f"the strategy returned weights for unknown funds {', '.join(unknown)}",
                        field="weights",
                    )
                w = given.reindex(symbols).fillna(0.0).to_numpy()
            else:
                w = np.asarray(raw, dtype=float).reshape(-1)
                if w.shape != (len(symbols),):
                    raise ValidationError(
                        f"the strategy returned {w.size} weights for {len(symbols)} funds",
                        field="weights",
                    )
            if not np.isfinite(w).all():
                raise ValidationError("the strategy returned NaN or infinite weights")
            if w.sum() > 1.0 + 1e-9:
                raise ValidationError(
                    f"the strategy's weights sum to {w.sum():.4%}, over 100% (margin is not "
                    "modelled)",
                    field="weights",
                )
            dead = [s for s, x in zip(symbols, w, strict=True) if x != 0 and s not in available]
            if dead:
                raise ValidationError(
                    f"the strategy put weight on {', '.join(dead)}, which has no price yet",
                    field="weights",
                )
            return _Decision(w)

        return decide

    def _universe_constraints(
        self, constraints: OptimizationConstraints, names: list[str], run: _Run
    ) -> OptimizationConstraints:
        bounds = {k: v for k, v in constraints.fund_bounds.items() if k.upper() in names}
        changes: dict[str, Any] = {}
        if bounds != constraints.fund_bounds:
            changes["fund_bounds"] = bounds
        if run.from_cash and constraints.max_turnover is not None:
            # the first portfolio is bought from cash: a turnover cap would forbid it
            changes["max_turnover"] = None
        if constraints.max_turnover is not None or constraints.transaction_cost_bps:
            idx = {s: i for i, s in enumerate(run.symbols)}
            changes["current_weights"] = {s: float(run.weights[idx[s]]) for s in names}
        return constraints.copy(**changes) if changes else constraints

    def _mean_variance(self, objective: ObjectiveType) -> Callable[[int, _Run], _Decision]:
        prepared: dict[tuple[str, ...], PreparedProblem] = {}  # (objective, *universe)

        def solve(pos: int, run: _Run, objective: ObjectiveType) -> np.ndarray:
            R = self._R
            ok = self._eligible(R, pos)
            if not ok.any():
                raise DataError(
                    f"no fund has {self._min_obs(pos)} returns in the {self.lookback_years:g}-year "
                    "window yet; start later or lower min_history_years"
                )
            cols = np.flatnonzero(ok)
            names = [run.symbols[i] for i in cols]
            w0 = self._window_start(pos, self.lookback_years)
            cov = self._covariance(R[w0 : pos + 1][:, cols], names)
            mu = None
            if objective is ObjectiveType.MAX_SHARPE:
                mu = self._excess_returns(R, pos, cols, names)
            cons = self._universe_constraints(run.constraints, names, run)
            if PreparedProblem.supports(cons) and objective in FAST_OBJECTIVES:
                key = (objective.value, *names)
                prob = prepared.get(key)
                if prob is None:
                    # a new universe: the old problem and its warm start are useless
                    for old in [k for k in prepared if k[0] == objective.value]:
                        del prepared[old]
                    prob = PreparedProblem(names, cons, self.fund_map, objective)
                    prepared[key] = prob
                spent, warm = prob.solve_seconds, prob.warm_starts
                w, _ = prob.solve(cov, mu)  # the cash weight is 1 - sum(w)
                stats = self._solve_stats
                stats["fast_solves"] += 1
                stats["fast_solve_seconds"] += prob.solve_seconds - spent
                stats["warm_starts"] += prob.warm_starts - warm
            else:
                from core.optimization.engine import OptimizationEngine

                rf = self._cash_rate(pos)
                engine = OptimizationEngine(fund_map=self.fund_map, assumptions=self.assumptions)
                res = engine.optimize_mean_variance(
                    names, None if mu is None else mu + rf, cov, cons, objective, rf
                )
                if not res.success:
                    raise SolverError(res.message)
                w = res.weights.reindex(names).to_numpy(dtype=float)
                self._solve_stats["engine_solves"] += 1
            full = np.zeros(len(run.symbols))
            full[cols] = w
            return full

        def decide(pos: int, run: _Run) -> _Decision:
            try:
                return _Decision(solve(pos, run, objective))
            except InfeasibleError:
                if objective is not ObjectiveType.MAX_SHARPE:
                    raise
                # Max Sharpe is infeasible while min volatility is not exactly when no
                # allowed portfolio has a positive expected excess return: hold the
                # min-volatility portfolio that month (said in the notes).
                return _Decision(
                    solve(pos, run, ObjectiveType.MIN_VOLATILITY),
                    f"{self.index[pos]:%Y-%m-%d}: no allowed portfolio had a positive expected "
                    "excess return; min volatility held instead of max Sharpe",
                )

        return decide

    def _risk_parity(self, key: str) -> Callable[[int, _Run], _Decision]:
        def decide(pos: int, run: _Run) -> _Decision:
            from core.optimization.engine import OptimizationEngine

            R = self._R
            ok = self._eligible(R, pos)
            if not ok.any():
                raise DataError(
                    f"no fund has {self._min_obs(pos)} returns in the {self.lookback_years:g}-year "
                    "window yet; start later or lower min_history_years"
                )
            cols = np.flatnonzero(ok)
            names = [run.symbols[i] for i in cols]
            w0 = self._window_start(pos, self.lookback_years)
            cov = self._covariance(R[w0 : pos + 1][:, cols], names)
            cons = self._universe_constraints(run.constraints, names, run)
            rf = self._cash_rate(pos)
            opts = self._strategy_options
            budgets = opts.get("risk_budgets")
            if key == "risk_parity_exposure":
                engine = OptimizationEngine(
                    fund_map=self.fund_map, assumptions=self._exposure_assumptions(pos, names)
                )
                res = engine.optimize_risk_parity(
                    names, cov, cons, use_leverage=opts.get("use_leverage", True),
                    risk_budgets=budgets, by="exposure", risk_free_rate=rf,
                )  # fmt: skip
            else:
                engine = OptimizationEngine(fund_map=self.fund_map, assumptions=self.assumptions)
                if budgets is not None:
                    budgets = {s: v for s, v in budgets.items() if s.upper() in names}
                res = engine.optimize_risk_parity(
                    names, cov, cons, use_leverage=opts.get("use_leverage", True),
                    risk_budgets=budgets, method="hrp" if key == "hrp" else "erc", by="fund",
                    risk_free_rate=rf,
                )  # fmt: skip
            if not res.success:
                raise SolverError(res.message)
            self._solve_stats["engine_solves"] += 1
            full = np.zeros(len(run.symbols))
            full[cols] = res.weights.reindex(names).to_numpy(dtype=float)
            return _Decision(full)

        return decide

    # ============================================================== calendar
    def _calendar(self, rule: str, p0: int, p1: int) -> np.ndarray:
        """Decision mask over positions p0..p1: the last period of each calendar period."""
        dates = self.index[p0 : p1 + 1]
        mask = np.zeros(len(dates), dtype=bool)
        if rule in ("never", "band") or len(dates) < 2:
            return mask
        if rule == "daily":
            key = np.arange(len(dates))
        elif rule == "weekly":
            if self.frequency == "monthly":
                raise ValidationError(
                    "weekly rebalancing needs a daily backtest", field="rebalance"
                )
            key = dates.to_period("W-FRI").asi8
        elif rule == "monthly":
            key = dates.to_period("M").asi8
        elif rule == "quarterly":
            key = dates.to_period("Q").asi8
        else:
            key = dates.year.to_numpy()
        mask[:-1] = key[:-1] != key[1:]
        return mask

    # ================================================================== run
    def _span(self, R: np.ndarray, start_date: Any, end_date: Any) -> tuple[int, int]:
        index = self.index
        if end_date is None:
            p1 = len(index) - 1
        else:
            p1 = int(index.searchsorted(pd.Timestamp(end_date), side="right")) - 1
        if start_date is None:
            has = ~np.isnan(R).all(axis=1)
            if not has.any():
                raise DataError("none of the funds has any return to backtest")
            first = index[int(np.argmax(has))]
            start_date = first + pd.Timedelta(days=365.25 * self.lookback_years)
        p0 = int(index.searchsorted(pd.Timestamp(start_date), side="left"))
        if p0 >= len(index) or p1 - p0 < 1:
            raise ValidationError(
                f"the backtest window {pd.Timestamp(start_date):%Y-%m-%d}.."
                f"{index[min(p1, len(index) - 1)]:%Y-%m-%d} holds fewer than two periods "
                f"of data (which runs {index[0]:%Y-%m-%d}..{index[-1]:%Y-%m-%d})",
                field="start_date",
            )
        return p0, p1

    def iter_backtest(
        self,
        optimization_method: Any,
        rebalance_frequency: str = "monthly",
        start_date: Any = None,
        end_date: Any = None,
        *,
        constraints: OptimizationConstraints | None = None,
        symbols: Sequence[str] | None = None,
        weights: Mapping[str, float] | pd.Series | None = None,
        band: float | None = None,
        initial_weights: Mapping[str, float] | pd.Series | None = None,
        risk_budgets: Mapping[str, float] | None = None,
        use_leverage: bool = True,
        name: str | None = None,
    ) -> Iterator[BacktestProgress]:
        """The backtest as a generator: one :class:`BacktestProgress` per decision date.

        Each item is a progress tick and a place to stop (stop iterating to cancel). The
        last item carries the :class:`BacktestResult` in ``result``. Arguments as in
        :meth:`backtest_strategy`.
        """
        rule = str(rebalance_frequency).strip().lower()
        aliases = {"yearly": "annual", "annually": "annual", "none": "never", "threshold": "band"}
        rule = aliases.get(rule, rule)
        if rule not in CALENDARS:
            raise ValidationError(
                f"unknown rebalance frequency {rebalance_frequency!r}; use one of "
                f"{', '.join(CALENDARS)}",
                field="rebalance_frequency",
            )
        if band is not None and not (math.isfinite(band) and band > 0):
            raise ValidationError("band must be a positive fraction (0.05 = 5%)", field="band")
        if rule == "band" and band is None:
            raise ValidationError("band rebalancing needs band= (e.g. 0.05)", field="band")
        syms = self._symbols(symbols, optimization_method, weights)
        if symbols is None and initial_weights is not None:
            syms += [
                str(k).upper()
                for k in pd.Series(initial_weights).index
                if str(k).upper() not in syms
            ]
        ExposureCalculator(self.fund_map, syms)  # names any fund missing from the map
        constraints = constraints if constraints is not None else OptimizationConstraints()
        self._strategy_options = {"risk_budgets": risk_budgets, "use_leverage": use_leverage}
        label, decide, hold = self._resolve(optimization_method, weights, syms)
        if hold:
            rule = "never"
        returns = self.returns_for(syms)
        self._R = R = returns.to_numpy(dtype=float)
        p0, p1 = self._span(R, start_date, end_date)
        self._p0 = p0
        self._solve_stats = {
            "fast_solves": 0, "engine_solves": 0, "fast_solve_seconds": 0.0, "warm_starts": 0,
        }  # fmt: skip
        yield from self._simulate(
            syms, constraints, decide, rule, band, p0, p1, initial_weights,
            name or f"{label} ({rule if rule != 'band' else f'band {band:.0%}'})",
            {
                "strategy": label,
                "optimization_method": str(getattr(optimization_method, "__name__", optimization_method)),
                "rebalance_frequency": rule,
                "band": band,
            },
        )  # fmt: skip

    def _symbols(self, symbols: Sequence[str] | None, method: Any, weights: Any) -> list[str]:
        if symbols is not None:
            syms = [str(s).strip().upper() for s in symbols]
        elif isinstance(method, (Mapping, pd.Series)):
            syms = [str(s).upper() for s in pd.Series(method).index]
        elif weights is not None:
            syms = [str(s).upper() for s in pd.Series(weights).index]
        else:
            syms = [c for c in self._real.columns if c in self.fund_map]
        if not syms:
            raise ValidationError("no funds to backtest: pass symbols=", field="symbols")
        if len(set(syms)) != len(syms):
            dup = sorted({s for s in syms if syms.count(s) > 1})
            raise ValidationError(f"symbols repeated: {', '.join(dup)}", field="symbols")
        return syms

    def _simulate(
        self,
        symbols: list[str],
        constraints: OptimizationConstraints,
        decide: Callable[[int, _Run], _Decision],
        rule: str,
        band: float | None,
        p0: int,
        p1: int,
        initial_weights: Any,
        name: str,
        settings: dict[str, Any],
    ) -> Iterator[BacktestProgress]:
        R = self._R
        rc = self.cash.to_numpy(dtype=float)
        n = len(symbols)
        T = p1 - p0 + 1
        k = self.transaction_cost_bps / 1e4
        calendar = self._calendar(rule, p0, p1)
        values = np.empty(T)
        W = np.empty((T, n + 1))
        rebal_pos: list[int] = []
        rebal_w: list[np.ndarray] = []
        turnover: list[float] = []
        costs: list[float] = []
        before: list[float] = []
        notes: list[str] = []
        missing_noted: set[str] = set()

        run = _Run(symbols, constraints, np.zeros(n), 1.0, 1.0, notes)

        def trade(
            pos: int, h: np.ndarray, c: float, target: np.ndarray
        ) -> tuple[np.ndarray, float]:
            V = float(h.sum() + c)
            Va = V
            if k:
                for _ in range(60):  # contraction by k * sum|w|: a few steps reach 1e-16
                    Vn = V - k * float(np.abs(target * Va - h).sum())
                    if abs(Vn - Va) <= 1e-16 * abs(V):
                        Va = Vn
                        break
                    Va = Vn
            traded = float(np.abs(target * Va - h).sum())
            cost = k * traded
            Va = V - cost
            rebal_pos.append(pos)
            rebal_w.append(np.append(target, 1.0 - target.sum()))
            turnover.append(traded / V)
            costs.append(cost)
            before.append(V)
            return target * Va, (1.0 - float(target.sum())) * Va

        def decision(pos: int, h: np.ndarray, c: float) -> np.ndarray:
            V = float(h.sum() + c)
            run.weights, run.cash, run.value = h / V, c / V, V
            try:
                d = decide(pos, run)
            except StackOptError as exc:
                raise _at_date(exc, self.index[pos]) from exc
            if d.note:
                notes.append(d.note)
            return d.weights

        # ------------------------------------------------------------- the start
        if initial_weights is not None:
            start = self._fixed(initial_weights, symbols)(p0, run).weights
            h, c = start.copy(), 1.0 - float(start.sum())
            run.from_cash = False
            target = decision(p0, h, c)
            h, c = trade(p0, h, c, target)
        else:
            target = decision(p0, np.zeros(n), 1.0)
            run.from_cash = False
            if target.sum() > 1.0 + 1e-9:
                raise ValidationError("the first portfolio's weights sum to over 100%")
            h, c = target.copy(), 1.0 - float(target.sum())
            rebal_pos.append(p0)
            rebal_w.append(np.append(target, c))
            turnover.append(0.0)
            costs.append(0.0)
            before.append(1.0)
        last_target = target
        values[0] = h.sum() + c
        W[0, :n], W[0, n] = h / values[0], c / values[0]
        yield BacktestProgress(0, T - 1, self.index[p0], float(values[0]))

        # ------------------------------------------------- drift between decisions
        decisions = np.flatnonzero(calendar)  # offsets from p0
        i = 0  # offset of the last simulated period
        while i < T - 1:
            nxt = decisions[decisions > i]
            stop = int(nxt[0]) if nxt.size else T - 1
            block = slice(p0 + i + 1, p0 + stop + 1)
            r = R[block]
            nan = np.isnan(r)
            held_nan = nan & (h != 0)
            if held_nan.any():
                for j in np.flatnonzero(held_nan.any(axis=0)):
                    if symbols[j] not in missing_noted:
                        missing_noted.add(symbols[j])
                        first = int(np.argmax(held_nan[:, j]))
                        notes.append(
                            f"{symbols[j]}: no return on {self.index[block][first]:%Y-%m-%d} "
                            "(and maybe later) while held; its value was kept unchanged"
                        )
            growth = np.cumprod(1.0 + np.where(nan, 0.0, r), axis=0)
            H = growth * h
            C = c * np.cumprod(1.0 + rc[block])
            V = H.sum(axis=1) + C
            if (V <= 0).any():
                bad = int(np.argmax(V <= 0))
                raise ValidationError(
                    f"the portfolio lost all its value on {self.index[block][bad]:%Y-%m-%d}"
                )
            trigger = None
            if rule == "band":
                assert band is not None
                dev = np.abs(
                    np.column_stack([H, C]) / V[:, None]
                    - np.append(last_target, 1.0 - last_target.sum())
                )
                over = np.flatnonzero(dev.max(axis=1) > band)
                if over.size:
                    trigger = int(over[0])
                    stop = i + 1 + trigger
                    H, C, V = H[: trigger + 1], C[: trigger + 1], V[: trigger + 1]
            rows = slice(i + 1, stop + 1)
            values[rows] = V
            W[rows, :n] = H / V[:, None]
            W[rows, n] = C / V
            h, c = H[-1].copy(), float(C[-1])
            i = stop
            if i >= T - 1:
                break
            pos = p0 + i
            act = calendar[i] or trigger is not None
            if not act:
                continue
            target = decision(pos, h, c)
            drifted = np.append(h, c) / (h.sum() + c)
            full_target = np.append(target, 1.0 - target.sum())
            if rule != "band" and band is not None and np.abs(drifted - full_target).max() <= band:
                last_target = target  # inside the band: no trade
            else:
                h, c = trade(pos, h, c, target)
                last_target = target
                values[i] = h.sum() + c
                W[i, :n], W[i, n] = h / values[i], c / values[i]
            yield BacktestProgress(i, T - 1, self.index[pos], float(values[i]))

        result = self._result(
            name, symbols, p0, p1, values, W, rebal_pos, rebal_w, turnover, costs, before,
            notes, settings, constraints,
        )  # fmt: skip
        yield BacktestProgress(T - 1, T - 1, self.index[p1], float(values[-1]), result)

    def _result(
        self, name, symbols, p0, p1, values, W, rebal_pos, rebal_w, turnover, costs, before,
        notes, settings, constraints,
    ) -> BacktestResult:  # fmt: skip
        idx = self.index[p0 : p1 + 1]
        equity = pd.Series(values, index=idx, name="equity")
        rets = (equity / equity.shift(1) - 1.0).iloc[1:].rename("return")
        cols = [*symbols, _CASH]
        rdates = self.index[rebal_pos]
        calc = ExposureCalculator(self.fund_map, symbols)
        X = W[:, : len(symbols)] @ calc.matrix.T
        exposures = pd.DataFrame(X, index=idx, columns=calc.exposure_types)
        exposures["CASH_TBILL"] = exposures.get("CASH_TBILL", 0.0) + W[:, -1]
        notional = pd.Series(
            np.abs(W[:, : len(symbols)]) @ calc.notionals, index=idx, name="notional"
        )
        window_start = self.index[self._window_start(p0, self.lookback_years)]
        periods = {}
        fits = {}
        if self.synthetic_source is not None:
            syn = self._synthetic
            for s in symbols:
                if s in syn.periods:
                    first, last = syn.periods[s]
                    first, last = max(first, window_start), min(last, idx[-1])
                    if first <= last:
                        periods[s] = (first, last)
                        fits[s] = syn.fits.get(s)
                    elif s in syn.fits:
                        fits[s] = syn.fits[s]
                elif s in syn.fits:
                    fits[s] = syn.fits[s]
        all_notes = list(self.cash_notes)
        if self.synthetic_source is not None:
            all_notes.append(
                f"pre-inception returns synthesised from the {self.synthetic_source} at "
                f"{self.frequency} frequency"
                + (
                    "; haircuts "
                    + ", ".join(f"{c} {v:.1%}/yr" for c, v in self.synthetic_haircuts.items())
                    if self.synthetic_haircuts
                    else ""
                )
            )
            all_notes.extend(n for n in self._synthetic.notes if n.split(":")[0] in symbols)
        all_notes.extend(notes)
        all_notes.append(
            "fund expense ratios and internal financing are inside real fund returns "
            "(adjusted closes); cash earns the bill rate"
        )
        full_settings = {
            **settings,
            "start": idx[0],
            "end": idx[-1],
            "frequency": self.frequency,
            "transaction_cost_bps": self.transaction_cost_bps,
            "lookback_years": self.lookback_years,
            "min_history_years": self.min_history_years,
            "covariance_method": self.covariance_method,
            "return_method": self.return_method,
            "return_lookback_years": self.return_lookback_years,
            "symbols": list(symbols),
            "constraints": constraints.to_dict(),
            **self._solve_stats,
        }
        return BacktestResult(
            name=name,
            frequency=self.frequency,
            equity_curve=equity,
            returns=rets,
            cash_returns=self.cash.iloc[p0 + 1 : p1 + 1].rename("cash_return"),
            weights=pd.DataFrame(
                np.array(rebal_w).reshape(len(rebal_w), len(cols)), index=rdates, columns=cols
            ),
            drifted_weights=pd.DataFrame(W, index=idx, columns=cols),
            exposures=exposures,
            notional=notional,
            turnover=pd.Series(turnover, index=rdates, name="turnover"),
            costs=pd.Series(costs, index=rdates, name="cost"),
            value_before_trade=pd.Series(before, index=rdates, name="value_before_trade"),
            transaction_cost_bps=self.transaction_cost_bps,
            synthetic_periods=periods,
            synthetic_fit={s: f for s, f in fits.items() if f is not None},
            notes=all_notes,
            settings=full_settings,
        )

    # ============================================================ public API
    def backtest_strategy(
        self,
        optimization_method: Any,
        rebalance_frequency: str = "monthly",
        start_date: Any = None,
        end_date: Any = None,
        *,
        constraints: OptimizationConstraints | None = None,
        symbols: Sequence[str] | None = None,
        weights: Mapping[str, float] | pd.Series | None = None,
        band: float | None = None,
        initial_weights: Mapping[str, float] | pd.Series | None = None,
        risk_budgets: Mapping[str, float] | None = None,
        use_leverage: bool = True,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        name: str | None = None,
    ) -> BacktestResult:
        """Walk-forward backtest of one strategy.

        Parameters
        ----------
        optimization_method : str, ObjectiveType, mapping or callable
            ``'max_sharpe'``, ``'min_volatility'``, ``'max_diversification'`` (re-solved
            on the prepared fast path when the constraints allow, else by the engine),
            ``'risk_parity'`` (equal risk per fund), ``'risk_parity_exposure'`` (equal
            risk per exposure type, from trailing exposure covariances, delivered through
            the funds; with ``constraints.target_volatility`` and ``use_leverage`` it is
            levered to that volatility through stacked funds), ``'hrp'``,
            ``'equal_weight'``, ``'fixed'`` (``weights=``, rebalanced on the calendar),
            ``'buy_and_hold'`` (``weights=``, never rebalanced); a mapping of weights
            (fixed); or a callable ``f(date, history, context) -> weights``
            (:data:`StrategyFunction`).
        rebalance_frequency : {'monthly', 'quarterly', 'annual', 'weekly', 'daily', 'never', 'band'}
            Decision dates: the last period of each calendar period in the data.
            ``'band'`` checks every period and rebalances when any weight has drifted
            more than ``band`` from its last target.
        start_date, end_date : date-like, optional
            The portfolio is formed at the close of the first period on or after
            ``start_date`` (default: ``lookback_years`` after the first return of any
            fund); the last period is the last on or before ``end_date``.
        constraints : OptimizationConstraints, optional
            For the optimizing strategies; ``fund_bounds`` of funds not yet eligible are
            dropped for those dates.
        symbols : sequence of str, optional
            The fund universe; default the funds of a weights mapping, else every priced
            fund of the fund map.
        weights : mapping, optional
            For ``'fixed'`` and ``'buy_and_hold'``.
        band : float, optional
            With ``'band'``: the drift tolerance. With a calendar: trade at a decision
            date only if some weight is more than ``band`` from the new target.
        initial_weights : mapping, optional
            Holdings at the start; the first trades from them are costed. Default: the
            first target is held from the start at no cost.
        risk_budgets : mapping, optional
            Risk budgets by fund or exposure type for the risk-parity strategies.
        use_leverage : bool
            Risk parity: lever to ``constraints.target_volatility`` through stacked funds.
        on_progress : callable, optional
            ``on_progress(done, total)`` with periods simulated, at every decision date.
        should_stop : callable, optional
            Checked at every decision date; when it returns True the run stops with
            :class:`BacktestCancelled`.
        name : str, optional
            Name of the result (default from the strategy and calendar).

        Returns
        -------
        BacktestResult

        Raises
        ------
        ValidationError, DataError, InfeasibleError, SolverError
            The message says what to change, and the date for errors at a decision date.
        BacktestCancelled
            ``should_stop`` returned True.
        """
        result = None
        for tick in self.iter_backtest(
            optimization_method, rebalance_frequency, start_date, end_date,
            constraints=constraints, symbols=symbols, weights=weights, band=band,
            initial_weights=initial_weights, risk_budgets=risk_budgets,
            use_leverage=use_leverage, name=name,
        ):  # fmt: skip
            if on_progress is not None:
                on_progress(tick.done, tick.total)
            if tick.result is not None:
                result = tick.result
            elif should_stop is not None and should_stop():
                raise BacktestCancelled("the backtest was cancelled")
        assert result is not None
        return result

    def benchmark_60_40(
        self,
        equity: str = "SPY",
        bonds: str = "IEF",
        rebalance_frequency: str = "monthly",
        start_date: Any = None,
        end_date: Any = None,
        **kwargs: Any,
    ) -> BacktestResult:
        """The classic benchmark: 60% ``equity``, 40% ``bonds``, rebalanced on the calendar."""
        return self.backtest_strategy(
            {equity.upper(): 0.6, bonds.upper(): 0.4}, rebalance_frequency, start_date,
            end_date, name=kwargs.pop("name", f"60/40 {equity.upper()}/{bonds.upper()}"),
            **kwargs,
        )  # fmt: skip

    def buy_and_hold(
        self,
        weights: Mapping[str, float] | pd.Series,
        start_date: Any = None,
        end_date: Any = None,
        **kwargs: Any,
    ) -> BacktestResult:
        """Hold ``weights`` from the start and never trade (e.g. the current portfolio)."""
        return self.backtest_strategy(
            "buy_and_hold", "never", start_date, end_date, weights=weights,
            name=kwargs.pop("name", "buy and hold"), **kwargs,
        )  # fmt: skip

    compare = staticmethod(compare)
