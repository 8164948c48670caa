"""Walk-forward backtests of optimization strategies (issue 7) and pre-inception history.

``OptimizationBacktest(prices, fund_map).backtest_strategy(method, 'monthly')`` returns a
:class:`BacktestResult`; :func:`compare` puts several side by side. See
:mod:`core.backtest.runner` for how a run avoids look-ahead, :mod:`core.backtest.prepared`
for the re-solved prepared problem, and :mod:`core.backtest.synthetic` for the
exposure-synthesised history before a fund's inception.
"""

from __future__ import annotations

from core.backtest.prepared import PreparedProblem
from core.backtest.result import STAT_LABELS, BacktestResult, compare, performance_stats
from core.backtest.runner import (
    CALENDARS,
    STRATEGIES,
    BacktestCancelled,
    BacktestContext,
    BacktestProgress,
    OptimizationBacktest,
    StrategyFunction,
)
from core.backtest.synthetic import (
    SyntheticFit,
    SyntheticHistory,
    build_synthetic_history,
    compare_synthetic,
)

__all__ = [
    "CALENDARS",
    "STAT_LABELS",
    "STRATEGIES",
    "BacktestCancelled",
    "BacktestContext",
    "BacktestProgress",
    "BacktestResult",
    "OptimizationBacktest",
    "PreparedProblem",
    "StrategyFunction",
    "SyntheticFit",
    "SyntheticHistory",
    "build_synthetic_history",
    "compare",
    "compare_synthetic",
    "performance_stats",
]
