"""Optimization engine: objectives, constraints, frontier, estimators, results, trades.

The names users were promised are importable from here (loaded on first use, so that
importing the package stays cheap).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "OptimizationEngine": "core.optimization.engine",
    "OptimizationConstraints": "core.optimization.constraints",
    "MarketView": "core.optimization.constraints",
    "ObjectiveType": "core.optimization.results",
    "OptimizationResult": "core.optimization.results",
    "FrontierPoint": "core.optimization.results",
    "ReturnEstimator": "core.optimization.estimators",
    "Trade": "core.optimization.trades",
    "TradeGenerator": "core.optimization.trades",
    "TradeSettings": "core.optimization.trades",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
