"""Results tab (for now): the CURRENT portfolio's exposures, return, risk and risk split.

Numbers come from core: :class:`~core.assumptions.MarketAssumptions` (the built-in
exposure-level assumptions) projected onto the held funds (``mu_f = E' mu_x - costs``,
``Sigma_f = E' Sigma_x E + D``), then :class:`~core.analytics.PortfolioAnalytics` on the
current weights. The optimizer issue replaces this tab with the optimization results.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from core.analytics import RESIDUAL_LABEL, PortfolioAnalytics
from core.assumptions import MarketAssumptions
from core.errors import StackOptError
from core.exposures import AssetGroup
from core.workspace import Workspace
from desktop.formatting import percent
from desktop.plots.exposure_bars_plot import DEFAULT_COLOR, GROUP_COLORS, ExposureBarsPlot
from desktop.session import Session


@dataclass
class CurrentPortfolioResults:
    """Analytics of the current holdings (fractions, annual).

    Series shapes: ``exposures`` (K,), ``exposures_by_group`` (G,), ``risk_by_fund`` (N,),
    ``risk_by_type`` (K + 1,) including the residual row.
    """

    expected_return: float
    volatility: float
    sharpe_ratio: float
    cash_weight: float
    total_notional: float
    exposures: pd.Series
    exposures_by_group: pd.Series
    risk_by_fund: pd.Series
    risk_by_type: pd.Series
    risk_free_rate: float
    as_of: str


def analyse_current_portfolio(
    ws: Workspace, assumptions: MarketAssumptions | None = None
) -> CurrentPortfolioResults:
    """Return, risk and risk contributions of ``ws``'s holdings under ``assumptions``.

    Raises
    ------
    StackOptError
        Unpriced holdings, a symbol not in the fund map, an exposure type without
        assumptions; the message says what to fix.
    """
    assumptions = assumptions or MarketAssumptions.default()
    portfolio = ws.priced_portfolio()
    weights = portfolio.weights()
    held = [s for s in portfolio.symbols if weights[s] != 0.0]
    if not held:
        raise StackOptError("the portfolio holds no funds yet: add holdings on the Holdings tab")
    rf = float(ws.setting("risk_free_rate"))
    excess = assumptions.fund_expected_returns(ws.fund_map, held)
    cov = assumptions.fund_covariance(ws.fund_map, held)
    analytics = PortfolioAnalytics(excess + rf, cov, ws.fund_map, risk_free_rate=rf)
    w = weights[held]
    cash = 1.0 - float(w.sum())
    return CurrentPortfolioResults(
        expected_return=analytics.expected_return(w, cash),
        volatility=analytics.volatility(w),
        sharpe_ratio=analytics.sharpe_ratio(w, cash),
        cash_weight=cash,
        total_notional=analytics.total_notional(w),
        exposures=portfolio.exposures(ws.fund_map),
        exposures_by_group=portfolio.exposures_by_group(ws.fund_map),
        risk_by_fund=analytics.risk_contributions(w),
        risk_by_type=analytics.exposure_risk_contributions(w, assumptions.covariance()),
        risk_free_rate=rf,
        as_of=str(assumptions.metadata.get("as_of", "")),
    )


class _Figure(QFrame):
    """A number with a caption, for the headline row."""

    def __init__(self, caption: str, tooltip: str = ""):
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.value = QLabel("-")
        font = self.value.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.value.setFont(font)
        self.value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label = QLabel(caption)
        label.setStyleSheet("color: #555;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(label)
        layout.addWidget(self.value)
        if tooltip:
            self.setToolTip(tooltip)


class ResultsTab(QWidget):
    """The current portfolio under the built-in market assumptions."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.assumptions = MarketAssumptions.default()
        self.results: CurrentPortfolioResults | None = None
        self.error = ""

        intro = QLabel(
            "The current portfolio under the built-in exposure-level market assumptions "
            "(expected returns, volatilities and correlations per exposure type, projected "
            "onto each fund). Optimization results arrive here in a later version."
        )
        intro.setWordWrap(True)
        intro.setStyleSheet("color: #555;")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00020;")
        self.message.hide()

        self.expected_return = _Figure(
            "Expected return", "Annual arithmetic expected return, cash rate included"
        )
        self.volatility = _Figure("Volatility", "Annual standard deviation of returns")
        self.sharpe = _Figure("Sharpe ratio", "(expected return - cash rate) / volatility")
        self.notional = _Figure(
            "Total notional", "Gross exposure per dollar: sum of |weight| x fund notional"
        )
        self.cash = _Figure("Cash", "Cash as a share of total value")
        figures = QHBoxLayout()
        for f in (self.expected_return, self.volatility, self.sharpe, self.notional, self.cash):
            figures.addWidget(f)

        self.type_plot = ExposureBarsPlot("Exposure by type")
        self.group_plot = ExposureBarsPlot("Exposure by asset class")
        self.fund_risk_plot = ExposureBarsPlot("Risk contribution by fund")
        self.type_risk_plot = ExposureBarsPlot("Risk contribution by exposure type")
        for plot in (self.fund_risk_plot, self.type_risk_plot):
            plot.plot_widget.getPlotItem().getAxis("bottom").setLabel(
                "% points of portfolio volatility"
            )
        grid = QGridLayout()
        grid.addWidget(self.type_plot, 0, 0)
        grid.addWidget(self.group_plot, 0, 1)
        grid.addWidget(self.fund_risk_plot, 1, 0)
        grid.addWidget(self.type_risk_plot, 1, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.message)
        layout.addLayout(figures)
        layout.addLayout(grid, 1)

        # Edits often come in bursts (an import, undo of several steps): recompute once.
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.recompute)
        for signal in (
            session.workspace_replaced,
            session.portfolio_changed,
            session.fund_map_changed,
            session.settings_changed,
        ):
            signal.connect(self._timer.start)
        self.recompute()

    def recompute(self) -> None:
        ws = self.session.workspace
        try:
            self.results = analyse_current_portfolio(ws, self.assumptions)
            self.error = ""
        except StackOptError as exc:
            self.results = None
            self.error = str(exc)
        if self.results is None:
            self.message.setText(f"Cannot analyse the portfolio: {self.error}")
            self.message.show()
            for f in (self.expected_return, self.volatility, self.sharpe, self.notional, self.cash):
                f.value.setText("-")
            for plot in (self.type_plot, self.group_plot, self.fund_risk_plot, self.type_risk_plot):
                plot.show_message(self.error)
            return
        self.message.hide()
        r = self.results
        types = ws.fund_map.exposure_types
        self.expected_return.value.setText(percent(r.expected_return, 2))
        self.volatility.value.setText(percent(r.volatility, 2))
        self.sharpe.value.setText(f"{r.sharpe_ratio:.2f}")
        self.notional.value.setText(percent(r.total_notional, 1))
        self.cash.value.setText(percent(r.cash_weight, 1))

        codes = [c for c in r.exposures.index if abs(r.exposures[c]) > 1e-12]
        self.type_plot.set_bars(
            [types[c].name for c in codes],
            [float(r.exposures[c]) for c in codes],
            [GROUP_COLORS[types[c].group.value] for c in codes],
        )
        groups = list(r.exposures_by_group.index)
        self.group_plot.set_bars(
            [AssetGroup(g).label for g in groups],
            [float(r.exposures_by_group[g]) for g in groups],
            [GROUP_COLORS[g] for g in groups],
        )
        by_fund = r.risk_by_fund.sort_values(ascending=False)
        self.fund_risk_plot.set_bars(list(by_fund.index), by_fund.to_numpy(), decimals=2)
        by_type = r.risk_by_type[r.risk_by_type.abs() > 1e-9]
        labels = ["Fund-specific" if c == RESIDUAL_LABEL else types[c].name for c in by_type.index]
        colors = [
            DEFAULT_COLOR if c == RESIDUAL_LABEL else GROUP_COLORS[types[c].group.value]
            for c in by_type.index
        ]
        self.type_risk_plot.set_bars(labels, by_type.to_numpy(), colors, decimals=2)
        self.type_risk_plot.set_title(
            f"Risk contribution by exposure type (sums to {percent(r.volatility, 2)} volatility)"
        )
        self.fund_risk_plot.set_title(
            f"Risk contribution by fund (sums to {percent(r.volatility, 2)} volatility)"
        )
