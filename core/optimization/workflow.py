"""From an open workspace to optimizer inputs and runs: what the app's Run button does.

Kept in core (no Qt) so that the desktop worker, the backtest and scripts share one
definition of "optimize this workspace".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.errors import ValidationError
from core.optimization.constraints import OptimizationConstraints
from core.optimization.engine import OptimizationEngine
from core.optimization.results import FrontierPoint, ObjectiveType, OptimizationResult

#: What the Results tab offers: every ObjectiveType plus the leverage-aware variants.
OBJECTIVE_CHOICES: dict[str, str] = {
    "max_sharpe": "Max Sharpe ratio",
    "min_volatility": "Min volatility",
    "max_return": "Max return",
    "max_return_at_target_vol": "Max return at target volatility",
    "min_vol_at_target_return": "Min volatility at target return",
    "risk_parity": "Risk parity (equal risk per fund)",
    "risk_parity_exposure": "Risk parity by exposure type",
    "hrp": "Hierarchical risk parity",
    "max_diversification": "Max diversification",
    "min_tracking_error": "Min tracking error to current holdings",
    "exposure_matching": "Match a target exposure profile",
}


@dataclass
class ModelInputs:
    """Everything an optimization of a workspace needs, estimated once.

    ``expected_returns`` are annual total returns, ``covariance`` annual; ``notes`` says
    how they were estimated and what was repaired.
    """

    symbols: list[str]
    expected_returns: pd.Series
    covariance: pd.DataFrame
    risk_free_rate: float
    constraints: OptimizationConstraints
    current_weights: pd.Series
    current_cash_weight: float
    notes: list[str] = field(default_factory=list)


def build_model_inputs(
    workspace: Any,
    prices: pd.DataFrame | None = None,
    *,
    extra_symbols: Sequence[str] = (),
    assumptions: Any = None,
) -> ModelInputs:
    """Estimate returns and risk for the workspace's funds from its settings.

    The universe is the held funds plus ``extra_symbols`` (candidates not yet held) and
    every fund the constraints give bounds to. Without price history, or with the
    ``exposure_model`` methods, the built-in exposure assumptions are used, so this
    works offline on the sample workspace.
    """
    from core.assumptions import MarketAssumptions
    from core.optimization.estimators import ReturnEstimator

    settings = workspace.settings
    fund_map = workspace.fund_map
    portfolio = workspace.priced_portfolio()
    symbols: list[str] = []
    for s in [*portfolio.symbols, *extra_symbols, *workspace.constraints.fund_bounds]:
        s = str(s).upper()
        if s not in symbols:
            symbols.append(s)
    if not symbols:
        raise ValidationError("the workspace holds no funds: add holdings first", field="holdings")
    missing = [s for s in symbols if s not in fund_map]
    if missing:
        raise ValidationError(
            f"not in the fund map: {', '.join(missing)}; add them on the Fund Exposures tab",
            field="fund_map",
        )
    assumptions = assumptions if assumptions is not None else MarketAssumptions.default()
    rf = float(settings.get("risk_free_rate", assumptions.cash_rate))
    ret_method = settings.get("return_method", "exposure_model")
    cov_method = settings.get("covariance_method", "exposure_model")
    lookback = settings.get("lookback_years")
    notes: list[str] = []
    if prices is None and (ret_method != "exposure_model" or cov_method != "exposure_model"):
        notes.append(
            "no price history loaded: using the built-in exposure model for returns and risk"
        )
        ret_method = cov_method = "exposure_model"
    estimator = ReturnEstimator(
        prices=prices[[s for s in symbols if s in prices.columns]] if prices is not None else None,
        frequency=settings.get("frequency", "monthly"),
        fund_map=fund_map,
        assumptions=assumptions,
        risk_free_rate=rf,
    )
    mu = estimator.estimate_expected_returns(symbols, method=ret_method, lookback_years=lookback)
    cov = estimator.estimate_covariance_matrix(symbols, method=cov_method, lookback_years=lookback)
    notes.extend(estimator.repairs_)
    weights = portfolio.weights().reindex(symbols).fillna(0.0)
    constraints = workspace.constraints
    if not constraints.current_weights:
        constraints = constraints.copy(current_weights=weights.to_dict())
    return ModelInputs(
        symbols=symbols,
        expected_returns=mu.reindex(symbols),
        covariance=cov.loc[symbols, symbols],
        risk_free_rate=rf,
        constraints=constraints,
        current_weights=weights,
        current_cash_weight=portfolio.cash_weight,
        notes=notes,
    )


def run_optimization(
    engine: OptimizationEngine,
    inputs: ModelInputs,
    choice: str,
    *,
    target_exposures: Mapping[str, float] | None = None,
    use_leverage: bool = True,
) -> OptimizationResult:
    """Run one of :data:`OBJECTIVE_CHOICES` on prepared inputs."""
    if choice not in OBJECTIVE_CHOICES:
        raise ValidationError(f"unknown objective {choice!r}", field="objective")
    syms, mu, cov, rf = (
        inputs.symbols,
        inputs.expected_returns,
        inputs.covariance,
        inputs.risk_free_rate,
    )
    c = inputs.constraints
    if not use_leverage:
        bounds = dict(c.fund_bounds)
        for s in syms:
            if engine.fund_map[s].is_leveraged:
                bounds[s] = (0.0, 0.0)
        c = c.copy(fund_bounds=bounds)
    if choice == "max_return_at_target_vol":
        if c.target_volatility is None:
            raise ValidationError(
                "set a target volatility on the Constraints tab first", field="target_volatility"
            )
        return engine.optimize_mean_variance(syms, mu, cov, c, ObjectiveType.MAX_RETURN, rf)
    if choice == "min_vol_at_target_return":
        if c.target_return is None:
            raise ValidationError(
                "set a target return on the Constraints tab first", field="target_return"
            )
        c = c.copy(target_volatility=None)
        return engine.optimize_mean_variance(syms, mu, cov, c, ObjectiveType.MIN_VOLATILITY, rf)
    if choice in ("min_volatility", "max_sharpe", "max_diversification"):
        # targets belong to the "at target" choices; a volatility cap still applies to
        # max Sharpe and max diversification
        c2 = c.copy(target_return=None)
        if choice == "min_volatility":
            c2 = c2.copy(target_volatility=None)
        return engine.optimize_mean_variance(syms, mu, cov, c2, choice, rf)
    if choice == "max_return":
        return engine.optimize_mean_variance(syms, mu, cov, c, ObjectiveType.MAX_RETURN, rf)
    if choice == "min_tracking_error":
        return engine.optimize_mean_variance(
            syms, mu, cov, c.copy(target_volatility=None, target_return=None),
            ObjectiveType.MIN_TRACKING_ERROR, rf, benchmark_weights=inputs.current_weights,
        )  # fmt: skip
    if choice in ("risk_parity", "risk_parity_exposure", "hrp"):
        return engine.optimize_risk_parity(
            syms, cov, c, use_leverage,
            method="hrp" if choice == "hrp" else "erc",
            by="exposure" if choice == "risk_parity_exposure" else "fund",
            expected_returns=mu, risk_free_rate=rf,
        )  # fmt: skip
    # exposure matching
    if not target_exposures:
        raise ValidationError("give a target exposure profile", field="target_exposures")
    return engine.optimize_exposures(
        syms, target_exposures, c.copy(target_volatility=None), True,
        expected_returns=mu, covariance_matrix=cov, risk_free_rate=rf,
    )  # fmt: skip


def frontier_points(
    engine: OptimizationEngine, inputs: ModelInputs, n_points: int = 25, *, both: bool = True
) -> Iterator[FrontierPoint]:
    """Frontier points for the workspace, with and (if ``both``) without leveraged funds."""
    c = inputs.constraints.copy(target_return=None, target_volatility=None)
    args = (inputs.symbols, inputs.expected_returns, inputs.covariance, c, n_points)
    if both:
        yield from engine.frontier_with_and_without_leverage(*args, inputs.risk_free_rate)
    else:
        yield from engine.efficient_frontier(*args, inputs.risk_free_rate, label="with leverage")
