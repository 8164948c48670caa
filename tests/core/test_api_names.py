"""The API names the specification promises exist, with the promised signatures."""

from __future__ import annotations

import inspect

import core
from core.optimization.engine import OptimizationEngine

PROMISED = [
    "ExposureType", "FundExposureMap", "ExposureCalculator", "Portfolio", "PortfolioAnalytics",
    "ObjectiveType", "OptimizationConstraints", "OptimizationEngine", "MarketView",
    "ReturnEstimator", "OptimizationResult", "Trade", "TradeGenerator",
]  # fmt: skip


def test_promised_classes_are_importable_from_core():
    for name in PROMISED:
        assert inspect.isclass(getattr(core, name)), name


def test_objective_types():
    names = {m.name for m in core.ObjectiveType}
    assert {
        "MAX_SHARPE", "MIN_VOLATILITY", "MAX_RETURN", "RISK_PARITY",
        "MAX_DIVERSIFICATION", "MIN_TRACKING_ERROR",
    } <= names  # fmt: skip


def test_constraint_fields():
    fields = set(inspect.signature(core.OptimizationConstraints).parameters)
    assert {
        "min_weight", "max_weight", "max_total_notional", "target_volatility",
        "max_exposure_per_type", "min_exposure_per_type", "sector_limits", "long_only",
    } <= fields  # fmt: skip


def test_engine_signatures():
    sig = inspect.signature(OptimizationEngine.optimize_mean_variance)
    assert list(sig.parameters)[1:7] == [
        "symbols", "expected_returns", "covariance_matrix", "constraints", "objective",
        "risk_free_rate",
    ]  # fmt: skip
    assert sig.parameters["risk_free_rate"].default == 0.02
    sig = inspect.signature(OptimizationEngine.optimize_risk_parity)
    assert list(sig.parameters)[1:5] == [
        "symbols",
        "covariance_matrix",
        "constraints",
        "use_leverage",
    ]
    assert sig.parameters["use_leverage"].default is True
    sig = inspect.signature(OptimizationEngine.black_litterman_returns)
    assert list(sig.parameters)[1:6] == [
        "symbols", "market_weights", "covariance_matrix", "views", "risk_aversion",
    ]  # fmt: skip
    assert sig.parameters["risk_aversion"].default == 2.5
    sig = inspect.signature(OptimizationEngine.optimize_exposures)
    assert list(sig.parameters)[1:5] == [
        "symbols",
        "target_exposures",
        "constraints",
        "minimize_cost",
    ]
    sig = inspect.signature(OptimizationEngine.build_exposure_constraints)
    assert list(sig.parameters)[1:4] == ["weights", "symbols", "constraints"]
    view = core.MarketView(["SPY"], "absolute", 0.05, 0.5)
    assert (view.assets, view.view_type, view.expected_return, view.confidence) == (
        ["SPY"], "absolute", 0.05, 0.5,
    )  # fmt: skip


def test_estimator_and_results_api():
    sig = inspect.signature(core.ReturnEstimator.estimate_expected_returns)
    assert {"symbols", "method", "lookback_years"} <= set(sig.parameters)
    sig = inspect.signature(core.ReturnEstimator.estimate_covariance_matrix)
    assert {"symbols", "method", "lookback_years", "frequency"} <= set(sig.parameters)
    fields = set(inspect.signature(core.OptimizationResult).parameters)
    assert {
        "weights", "objective_value", "expected_return", "expected_volatility", "sharpe_ratio",
        "exposures", "total_notional", "success", "message", "effective_assets",
        "concentration_ratio", "diversification_ratio", "risk_contributions",
    } <= fields  # fmt: skip
    assert callable(core.OptimizationResult.to_trades)
