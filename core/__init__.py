"""StackOpt core: the headless engine (no Qt).

Everything here takes data and returns data; long work is a generator or takes an
``on_progress`` callable. The desktop layer imports from here, never the reverse.
The promised API names are importable from ``core`` directly (loaded on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ExposureType": "core.exposures",
    "AssetGroup": "core.exposures",
    "FundDefinition": "core.exposures",
    "FundExposureMap": "core.exposures",
    "ExposureCalculator": "core.exposures",
    "Portfolio": "core.portfolio",
    "Holding": "core.portfolio",
    "PortfolioAnalytics": "core.analytics",
    "MarketAssumptions": "core.assumptions",
    "Workspace": "core.workspace",
    "OptimizationEngine": "core.optimization.engine",
    "OptimizationConstraints": "core.optimization.constraints",
    "MarketView": "core.optimization.constraints",
    "ObjectiveType": "core.optimization.results",
    "OptimizationResult": "core.optimization.results",
    "FrontierPoint": "core.optimization.results",
    "ReturnEstimator": "core.optimization.estimators",
    "Trade": "core.optimization.trades",
    "TradeGenerator": "core.optimization.trades",
    "OptimizationBacktest": "core.backtest",
    "BacktestResult": "core.backtest",
    "InfeasibleError": "core.errors",
    "DataError": "core.errors",
    "ValidationError": "core.errors",
    "SolverError": "core.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
