"""Objective types, optimization results and frontier points."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd


class ObjectiveType(StrEnum):
    """What an optimization maximises or minimises."""

    MAX_SHARPE = "max_sharpe"
    MIN_VOLATILITY = "min_volatility"
    MAX_RETURN = "max_return"
    RISK_PARITY = "risk_parity"
    MAX_DIVERSIFICATION = "max_diversification"
    MIN_TRACKING_ERROR = "min_tracking_error"

    @property
    def label(self) -> str:
        return {
            "max_sharpe": "Max Sharpe ratio",
            "min_volatility": "Min volatility",
            "max_return": "Max return",
            "risk_parity": "Risk parity",
            "max_diversification": "Max diversification",
            "min_tracking_error": "Min tracking error",
        }[self.value]


@dataclass
class OptimizationResult:
    """A portfolio and everything measured about it.

    Weights are fractions of total portfolio value; ``cash_weight`` is the explicit cash
    position, so ``weights.sum() + cash_weight == 1``. Returns and volatilities are annual.
    ``success`` is True only when a solver reported an optimum AND every constraint was
    re-checked on the returned weights (``constraint_violations`` is empty).
    """

    weights: pd.Series
    objective: ObjectiveType | str
    success: bool
    message: str = ""
    cash_weight: float = 0.0
    objective_value: float = float("nan")
    expected_return: float = float("nan")
    expected_volatility: float = float("nan")
    sharpe_ratio: float = float("nan")
    risk_free_rate: float = 0.0
    exposures: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    exposures_by_group: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    total_notional: float = float("nan")
    effective_assets: float = float("nan")
    concentration_ratio: float = float("nan")
    diversification_ratio: float = float("nan")
    risk_contributions: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    exposure_risk_contributions: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    solver: str = ""
    status: str = ""
    solve_time: float = 0.0
    fallbacks: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    constraint_violations: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def symbols(self) -> list[str]:
        return list(self.weights.index)

    def nonzero_weights(self, tol: float = 1e-6) -> pd.Series:
        return self.weights[self.weights.abs() > tol]

    def summary(self) -> dict[str, float | str]:
        return {
            "objective": getattr(self.objective, "label", str(self.objective)),
            "expected_return": self.expected_return,
            "expected_volatility": self.expected_volatility,
            "sharpe_ratio": self.sharpe_ratio,
            "total_notional": self.total_notional,
            "cash_weight": self.cash_weight,
            "effective_assets": self.effective_assets,
            "concentration_ratio": self.concentration_ratio,
            "diversification_ratio": self.diversification_ratio,
            "solver": self.solver,
            "status": self.status,
        }

    def to_trades(self, current_portfolio: Any, prices: Any = None, generator: Any = None):
        """Orders that move ``current_portfolio`` to these target weights.

        See :class:`core.optimization.trades.TradeGenerator` for the settings.
        """
        from core.optimization.trades import TradeGenerator

        gen = generator if generator is not None else TradeGenerator()
        return gen.generate(self, current_portfolio, prices)


@dataclass
class FrontierPoint:
    """One portfolio on an efficient frontier (annual figures, fractions)."""

    weights: pd.Series
    expected_return: float
    volatility: float
    sharpe_ratio: float
    total_notional: float
    cash_weight: float = 0.0
    index: int = 0
    label: str = ""
    solver: str = ""

    def as_array(self) -> np.ndarray:
        return self.weights.to_numpy(dtype=float)
