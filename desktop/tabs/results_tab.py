"""Results tab: run an optimization on the solver thread and see, compare and trade it.

Top: the objective (every :data:`~core.optimization.workflow.OBJECTIVE_CHOICES` entry;
exposure matching asks for a target profile), whether leveraged funds may be used, the
frontier, the estimator settings (changed in the Market data window), Run, Cancel and a
progress bar. One run is ONE job on the solver thread (:class:`desktop.workers.IterWorker`)
that yields, in order: the estimated inputs, the current holdings measured with them, the
chosen objective's optimum, the max-Sharpe portfolio (for the capital market line) and
the frontier points with and without leveraged funds, one solve at a time; Cancel stops
the job before the next solve.

Left: the efficient frontier (points appear as they are solved; click one to load it)
and the metrics of the current and the loaded portfolio. Right: the current holdings
under the built-in assumptions (before any run), weights (target vs current), exposures
before/after, risk contributions next to capital, and trades with ticket export.

A failed run shows core's message in a red banner (an infeasible one also highlights the
offending constraint on the Constraints tab, through :attr:`ResultsTab.infeasible`). When
an input changes after a run an amber banner says the results are stale.

Responsiveness: what the solver thread yields is kept as it arrives and shown every
FLUSH_MS in one repaint (repaints compete with the solver for the interpreter lock), the
risk charts are drawn when their page is shown, and layout changes wait for the end of
the run. ``tests/desktop/test_responsiveness.py`` measures the GUI thread during a
200-fund frontier.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.analytics import RESIDUAL_LABEL, PortfolioAnalytics
from core.assumptions import MarketAssumptions
from core.errors import InfeasibleError, StackOptError
from core.exposures import AssetGroup, ExposureCalculator, FundExposureMap
from core.optimization.engine import OptimizationEngine
from core.optimization.results import FrontierPoint, OptimizationResult
from core.optimization.trades import TradeGenerator, TradePlan, TradeSettings
from core.optimization.workflow import (
    OBJECTIVE_CHOICES,
    ModelInputs,
    build_model_inputs,
    frontier_points,
    run_optimization,
)
from core.workspace import Workspace
from desktop.dialogs import show_exception
from desktop.formatting import money, percent
from desktop.models.results_model import (
    TARGET_EXPOSURES_KEY,
    ExposuresModel,
    MetricsModel,
    TargetExposureModel,
    WeightsModel,
)
from desktop.models.trades_model import TradesModel
from desktop.plots.exposure_bars_plot import DEFAULT_COLOR, GROUP_COLORS
from desktop.plots.frontier_plot import FrontierPlot, PlotPoint
from desktop.plots.risk_plot import RiskPlot
from desktop.session import MarketData, Session
from desktop.ticket_export import TicketExportDialog, default_format
from desktop.undo_commands import SetSettingsCommand
from desktop.workers import FunctionWorker, IterWorker, SolverThread

#: Funds shown one by one in the risk-by-fund chart; the rest are summed into one row.
MAX_FUND_BARS = 10
#: Milliseconds between redraws of the frontier and the progress bar while a run goes on.
FLUSH_MS = 200
#: Frontier weights smaller than this are solver round-off and are set to zero.
WEIGHT_ROUNDOFF = 1e-9
#: Workspace settings that do not change an optimization (they change trades or the UI).
TRADE_SETTINGS = ("whole_shares", "cash_buffer", "min_trade_value", "rebalance_band")
_NOT_INPUTS = {*TRADE_SETTINGS, "ticket_format", "objective", "frontier_points"}

_ERROR_STYLE = (
    "background: #fde2e2; color: #8a1010; border: 1px solid #e8a0a0; border-radius: 3px; "
    "padding: 6px;"
)
_STALE_STYLE = (
    "background: #fff1d6; color: #7a4b00; border: 1px solid #e6c27a; border-radius: 3px; "
    "padding: 6px;"
)


# =========================================================== current holdings (no run)
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


#: From this many held funds on, the current-holdings analysis runs off the GUI thread.
ASYNC_ANALYSIS_FUNDS = 300


def _analyse_or_error(ws: Workspace, assumptions: Any) -> tuple[Any, str]:
    try:
        return analyse_current_portfolio(ws, assumptions), ""
    except StackOptError as exc:
        return None, str(exc)


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


# ================================================================= the run (headless)
def measure_portfolio(
    inputs: ModelInputs,
    fund_map: FundExposureMap,
    weights: pd.Series,
    *,
    objective: str = "current",
    message: str = "",
    solver: str = "",
    status: str = "",
    assumptions: MarketAssumptions | None = None,
) -> OptimizationResult:
    """Every figure of the results tables for fund ``weights`` under a run's ``inputs``.

    The current holdings and a clicked frontier point are measured here with the same
    expected returns and covariance as the optimum, through core's
    :class:`~core.analytics.PortfolioAnalytics` (the engine's own measurement of its
    answers). Cash is what the funds leave: ``1 - weights.sum()``.

    Parameters
    ----------
    weights : pd.Series, shape (N,)
        Fractions of total value by symbol; symbols outside ``inputs.symbols`` must be 0.
    """
    symbols = inputs.symbols
    w = weights.reindex(symbols).fillna(0.0).to_numpy(dtype=float)
    rf = inputs.risk_free_rate
    analytics = PortfolioAnalytics(
        inputs.expected_returns, inputs.covariance, fund_map, risk_free_rate=rf
    )
    calc = ExposureCalculator(fund_map, symbols)
    cash = 1.0 - float(w.sum())
    exposures = calc.portfolio_exposures(w)
    by_group = calc.exposure_by_group(w)
    if abs(cash) > 1e-12:
        exposures["CASH_TBILL"] = float(exposures.get("CASH_TBILL", 0.0)) + cash
        by_group["cash"] = float(by_group.get("cash", 0.0)) + cash
    has_weight = bool(np.abs(w).sum() > 0)
    exposure_rc = pd.Series(dtype=float)
    codes = calc.exposure_types
    if codes and has_weight:
        try:
            cov_x = (assumptions or MarketAssumptions.default()).covariance(codes)
            exposure_rc = analytics.exposure_risk_contributions(w, cov_x.loc[codes, codes])
        except StackOptError:
            pass  # a custom type without assumptions: no breakdown by type, nothing else lost
    return OptimizationResult(
        weights=pd.Series(w, index=symbols),
        objective=objective,
        success=True,
        message=message,
        cash_weight=cash,
        expected_return=analytics.expected_return(w),
        expected_volatility=analytics.volatility(w),
        sharpe_ratio=analytics.sharpe_ratio(w),
        risk_free_rate=rf,
        exposures=exposures,
        exposures_by_group=by_group,
        total_notional=analytics.total_notional(w),
        effective_assets=analytics.effective_number_of_assets(w) if has_weight else math.nan,
        concentration_ratio=analytics.concentration_ratio(w) if has_weight else math.nan,
        diversification_ratio=analytics.diversification_ratio(w),
        risk_contributions=analytics.risk_contributions(w),
        exposure_risk_contributions=exposure_rc,
        solver=solver,
        status=status,
    )


@dataclass(frozen=True)
class RunStep:
    """One item of a run: ``kind`` is inputs, current, result, max_sharpe or point."""

    kind: str
    value: Any


def run_steps_total(n_points: int) -> int:
    """Items a run yields: inputs, current, result, max Sharpe, then 2 x n frontier points."""
    return 4 + 2 * max(int(n_points), 0)


def optimization_steps(
    workspace: Workspace,
    prices: pd.DataFrame | None,
    choice: str,
    *,
    target_exposures: Mapping[str, float] | None = None,
    use_leverage: bool = True,
    n_points: int = 25,
) -> Iterator[RunStep]:
    """The whole run as a generator: each item is one solve (and a place to stop).

    Runs on the solver thread; ``workspace`` must be a private copy (see
    :func:`snapshot_workspace`). Errors (InfeasibleError, ValidationError, ...) propagate
    to the worker, which forwards them to the tab.
    """
    inputs = build_model_inputs(workspace, prices)
    yield RunStep("inputs", inputs)
    fund_map = workspace.fund_map
    engine = OptimizationEngine(None, fund_map)
    current = measure_portfolio(
        inputs, fund_map, inputs.current_weights, objective="Current holdings",
        assumptions=engine.assumptions,
    )  # fmt: skip
    yield RunStep("current", current)
    result = run_optimization(
        engine, inputs, choice, target_exposures=target_exposures, use_leverage=use_leverage
    )
    yield RunStep("result", result)
    max_sharpe: OptimizationResult | None = result if choice == "max_sharpe" else None
    if max_sharpe is None:
        try:
            max_sharpe = run_optimization(engine, inputs, "max_sharpe", use_leverage=use_leverage)
        except StackOptError:
            max_sharpe = None  # no tangency portfolio (e.g. nothing beats cash): no line
    yield RunStep("max_sharpe", max_sharpe)
    if n_points > 0:
        for point in frontier_points(engine, inputs, n_points):
            yield RunStep("point", point)


def snapshot_workspace(ws: Workspace) -> Workspace:
    """A private copy for the solver thread (undo commands change objects in place)."""
    return Workspace(
        name=ws.name,
        portfolio=ws.portfolio.copy(),
        fund_map=ws.fund_map.copy(),
        constraints=ws.constraints.copy(),
        views=list(ws.views),
        settings=json.loads(json.dumps(ws.settings)),
        prices=dict(ws.prices),
        price_date=ws.price_date,
        price_source=ws.price_source,
    )


def inputs_fingerprint(ws: Workspace, choice: str) -> str:
    """Everything a run depends on, as text: equal text means equal results."""
    d = ws.to_dict()
    d.pop("name", None)
    d.pop("saved_at", None)
    settings = {k: v for k, v in d.get("settings", {}).items() if k not in _NOT_INPUTS}
    if choice != "exposure_matching":
        settings.pop(TARGET_EXPOSURES_KEY, None)
    d["settings"] = settings
    return json.dumps(d, sort_keys=True, default=str)


def trades_fingerprint(ws: Workspace) -> str:
    """Everything trades depend on besides the target: holdings, prices, map, settings."""
    d = ws.to_dict()
    return json.dumps(
        [
            d["portfolio"],
            d["prices"],
            d["fund_map"],
            {k: ws.setting(k) for k in TRADE_SETTINGS},
        ],
        sort_keys=True,
        default=str,
    )


def trade_settings(ws: Workspace) -> TradeSettings:
    """The workspace's trade settings as core's :class:`TradeSettings`."""
    band = float(ws.setting("rebalance_band"))
    return TradeSettings(
        fractional=not bool(ws.setting("whole_shares")),
        cash_buffer_pct=float(ws.setting("cash_buffer")),
        min_trade_value=float(ws.setting("min_trade_value")),
        band_abs=band if band > 0 else None,
    )


def make_trades(target: OptimizationResult, ws: Workspace) -> TradePlan:
    """Orders that move ``ws``'s holdings to ``target`` (runs on the solver thread)."""
    generator = TradeGenerator(trade_settings(ws), fund_map=ws.fund_map)
    return target.to_trades(ws.priced_portfolio(), ws.prices, generator)


# ================================================================== widgets
class _Figure(QFrame):
    """A number with a caption, for the headline row."""

    def __init__(self, caption: str, tooltip: str = ""):
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.value = QLabel("-")
        font = self.value.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.value.setFont(font)
        self.value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label = QLabel(caption)
        label.setStyleSheet("color: #555;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(0)
        layout.addWidget(label)
        layout.addWidget(self.value)
        if tooltip:
            self.setToolTip(tooltip)


def _main_color(fund_map: FundExposureMap, symbol: str) -> Any:
    """The colour of the asset group a fund holds most of (equity wins a tie)."""
    fund = fund_map.get(symbol)
    if fund is None or not fund.exposures:
        return DEFAULT_COLOR
    by_group: dict[str, float] = {}
    for code, value in fund.exposures.items():
        etype = fund_map.exposure_types.get(code)
        if etype is not None:
            by_group[etype.group.value] = by_group.get(etype.group.value, 0.0) + abs(value)
    if not by_group:
        return DEFAULT_COLOR
    order = [g.value for g in AssetGroup]
    group = max(by_group, key=lambda g: (by_group[g], -order.index(g)))
    return GROUP_COLORS.get(group, DEFAULT_COLOR)


def _table(model: Any, stretch: int | None = None) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(21)
    view.setAlternatingRowColors(True)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setWordWrap(False)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setMinimumSectionSize(50)
    if stretch is not None:
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    else:
        header.setStretchLastSection(True)
    return view


def _banner(style: str) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setStyleSheet(style)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


class ResultsTab(QWidget):
    """Optimize the workspace, see the frontier and results, make trades and tickets.

    Parameters
    ----------
    session : Session
    parent : QWidget, optional
    solver : SolverThread, optional
        The application's one solver thread; without one the tab makes its own (and
        shuts it down in :meth:`shutdown`).

    Signals
    -------
    run_started()
    frontier_point_added(object)
        Each FrontierPoint as it arrives from the solver thread.
    result_ready(object)
        The optimum of the chosen objective (OptimizationResult).
    run_finished(object)
        The optimum, after the last frontier point.
    run_failed(object)
        The exception of a failed run (shown in the red banner).
    run_cancelled()
    infeasible(list)
        Conflict messages of an InfeasibleError, for the Constraints tab to highlight.
    portfolio_loaded(object)
        The OptimizationResult now shown in the tables (optimum or clicked point).
    trades_generated(object)
        The TradePlan of "Generate trades".
    trades_failed(object)
    stale_changed(bool)
    """

    run_started = Signal()
    frontier_point_added = Signal(object)
    result_ready = Signal(object)
    run_finished = Signal(object)
    run_failed = Signal(object)
    run_cancelled = Signal()
    infeasible = Signal(list)
    portfolio_loaded = Signal(object)
    trades_generated = Signal(object)
    trades_failed = Signal(object)
    stale_changed = Signal(bool)

    def __init__(
        self, session: Session, parent: QWidget | None = None, *, solver: SolverThread | None = None
    ):
        super().__init__(parent)
        self.session = session
        self._own_solver = solver is None
        self.solver = solver if solver is not None else SolverThread(self)
        self.assumptions = MarketAssumptions.default()
        # Current holdings under the built-in assumptions (live, before any run).
        self.results: CurrentPortfolioResults | None = None
        self.error = ""
        # The last run.
        self.worker: IterWorker | None = None
        self.trade_worker: FunctionWorker | None = None
        self.inputs: ModelInputs | None = None
        self.current_result: OptimizationResult | None = None
        self.result: OptimizationResult | None = None
        self.max_sharpe_result: OptimizationResult | None = None
        self.frontier: list[FrontierPoint] = []
        self.chosen: OptimizationResult | None = None
        self.chosen_title = ""
        self.plan: TradePlan | None = None
        self.run_error = ""
        self.last_run_seconds = math.nan
        self._run_choice = ""
        self._run_fingerprint: str | None = None
        self._run_market_data: MarketData | None = None
        self._trades_fingerprint: str | None = None
        self._pending_trades_fingerprint: str | None = None
        self._run_workspace: Workspace | None = None
        self._started = 0.0
        self.stale = False
        self.trades_stale = False

        self._build_controls()
        self._build_current_page()
        self._build_result_pages()
        self._build_layout()

        # Edits often come in bursts (an import, undo of several steps): react once.
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._inputs_changed)
        # Results come in bursts (dozens of frontier points a second): refresh the display
        # at most every FLUSH_MS so the GUI thread stays free for the user.
        self._pending_points: list[FrontierPoint] = []
        self._dirty: set[str] = set()
        self._steps_done = 0
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush)
        self._risk_dirty = True
        self.pages.currentChanged.connect(self._page_changed)
        for signal in (
            session.workspace_replaced,
            session.portfolio_changed,
            session.fund_map_changed,
            session.constraints_changed,
            session.views_changed,
            session.settings_changed,
            session.market_data_changed,
        ):
            signal.connect(self._timer.start)
        self.recompute()
        self._refresh_settings()
        self._objective_changed()
        self._update_buttons()

    # ================================================================ building
    def _build_controls(self) -> None:
        self.objective_combo = QComboBox()
        for key, label in OBJECTIVE_CHOICES.items():
            self.objective_combo.addItem(label, key)
        start = str(self.session.workspace.setting("objective"))
        self.objective_combo.setCurrentIndex(max(self.objective_combo.findData(start), 0))
        self.objective_combo.setToolTip(
            "What to optimize. 'At target' choices use the target volatility or return of "
            "the Constraints tab."
        )
        self.objective_combo.currentIndexChanged.connect(self._objective_changed)
        self.leverage_check = QCheckBox("Allow leveraged funds")
        self.leverage_check.setChecked(True)
        self.leverage_check.setToolTip(
            "Untick to keep every fund with a notional above 100% (stacked, leveraged) at zero"
        )
        self.frontier_check = QCheckBox("Frontier of")
        self.frontier_check.setChecked(True)
        self.points_spin = QSpinBox()
        self.points_spin.setRange(2, 500)
        self.points_spin.setValue(int(self.session.workspace.setting("frontier_points")))
        self.points_spin.setSuffix(" points")
        self.points_spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.points_spin.setToolTip("Points per frontier curve (with and without leveraged funds)")
        self.frontier_check.toggled.connect(self.points_spin.setEnabled)
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.setToolTip("Optimize on the solver thread (Ctrl+R)")
        self.run_button.setShortcut("Ctrl+R")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the solve in progress")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.progress.setMinimumWidth(160)
        self.estimators_label = QLabel()
        self.estimators_label.setStyleSheet("color: #444;")
        self.estimators_label.setWordWrap(True)
        self.market_data_button = QPushButton("Market data...")
        self.market_data_button.setToolTip(
            "Load price history and choose the return and covariance estimators"
        )
        self.market_data_button.clicked.connect(self.show_market_data)

        self.error_banner = _banner(_ERROR_STYLE)
        self.stale_banner = _banner(_STALE_STYLE)
        self.stale_banner.setText(
            "\u26a0 Inputs changed since this run: run again. The results below are for the "
            "inputs as they were."
        )
        self.notes_label = QLabel()
        self.notes_label.setWordWrap(True)
        self.notes_label.setStyleSheet("color: #666;")
        self.notes_label.hide()

        # Exposure matching: the target profile.
        self.target_model = TargetExposureModel(self.session, self)
        self.target_view = _table(self.target_model, stretch=0)
        self.target_view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.target_view.horizontalHeader().resizeSection(1, 110)
        self.target_view.horizontalHeader().resizeSection(2, 80)
        self.target_reset = QPushButton("Use current exposures")
        self.target_reset.clicked.connect(self._reset_targets)
        self.target_box = QGroupBox(
            "Target exposure profile (% of portfolio; double-click to edit)"
        )
        box = QVBoxLayout(self.target_box)
        box.setContentsMargins(6, 4, 6, 4)
        box.addWidget(self.target_view)
        row = QHBoxLayout()
        self.target_total = QLabel()
        self.target_total.setStyleSheet("color: #555;")
        row.addWidget(self.target_total, 1)
        row.addWidget(self.target_reset)
        box.addLayout(row)
        self.target_box.setMaximumHeight(320)
        self.target_model.modelReset.connect(self._update_target_total)
        self._update_target_total()

    def _build_current_page(self) -> None:
        """The current holdings under the built-in assumptions (kept live without a run)."""
        page = QWidget()
        intro = QLabel(
            "The current holdings under the built-in exposure-level assumptions (expected "
            "returns, volatilities and correlations per exposure type, projected onto each "
            "fund). Press Run to optimize."
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
        self.groups_label = QLabel()
        self.groups_label.setStyleSheet("color: #444;")
        self.groups_label.setWordWrap(True)
        self.fund_risk_plot_current = RiskPlot("Risk by fund", "Capital weight", "Share of risk")
        self.type_risk_plot_current = RiskPlot("Risk by exposure type", "Exposure", "Share of risk")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(intro)
        layout.addWidget(self.message)
        layout.addLayout(figures)
        layout.addWidget(self.groups_label)
        layout.addWidget(self.fund_risk_plot_current, 1)
        layout.addWidget(self.type_risk_plot_current, 1)
        self.current_page = page

    def _build_result_pages(self) -> None:
        self.weights_model = WeightsModel(self)
        self.exposures_model = ExposuresModel(self)
        self.metrics_model = MetricsModel(self)
        self.trades_model = TradesModel(self)
        self.weights_view = _table(self.weights_model, stretch=1)
        self.exposures_view = _table(self.exposures_model, stretch=0)
        self.metrics_view = _table(self.metrics_model, stretch=0)
        for view, widths in (
            (self.weights_view, (70, 0, 80, 80, 80)),
            (self.exposures_view, (0, 100, 80, 80, 80)),
            (self.metrics_view, (170, 0, 0)),
        ):
            for col, width in enumerate(widths):
                if width:
                    view.horizontalHeader().resizeSection(col, width)
        self.metrics_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        metrics_header = self.metrics_view.horizontalHeader()
        metrics_header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        for col in (1, 2):
            metrics_header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch)

        self.weights_title = QLabel()
        self.exposures_title = QLabel()
        for title in (self.weights_title, self.exposures_title):
            title.setStyleSheet("color: #444;")
        weights_page = QWidget()
        lay = QVBoxLayout(weights_page)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.weights_title)
        lay.addWidget(self.weights_view)
        exposures_page = QWidget()
        lay = QVBoxLayout(exposures_page)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.exposures_title)
        lay.addWidget(self.exposures_view)

        # Risk next to capital.
        self.risk_which = QComboBox()
        self.risk_which.addItem("Loaded portfolio", "chosen")
        self.risk_which.addItem("Current holdings", "current")
        self.risk_which.currentIndexChanged.connect(self._update_risk_plots)
        self.fund_risk_plot = RiskPlot("Risk by fund", "Capital weight", "Share of risk")
        self.type_risk_plot = RiskPlot("Risk by exposure type", "Exposure", "Share of risk")
        risk_page = QWidget()
        lay = QVBoxLayout(risk_page)
        lay.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        top.addWidget(QLabel("Show"))
        top.addWidget(self.risk_which)
        note = QLabel("Risk share = Euler contribution to volatility (sums to 100%).")
        note.setStyleSheet("color: #666;")
        top.addWidget(note, 1)
        lay.addLayout(top)
        lay.addWidget(self.fund_risk_plot, 1)
        lay.addWidget(self.type_risk_plot, 1)

        # Trades.
        self.trades_button = QPushButton("Generate trades")
        self.trades_button.setToolTip("Orders that move the holdings to the loaded portfolio")
        self.trades_button.clicked.connect(self.generate_trades)
        self.trades_source = QLabel()
        self.trades_source.setStyleSheet("color: #444;")
        self.whole_shares = QCheckBox("Whole shares")
        self.cash_buffer = QDoubleSpinBox()
        self.cash_buffer.setRange(0.0, 50.0)
        self.cash_buffer.setDecimals(1)
        self.cash_buffer.setSuffix(" %")
        self.min_trade = QDoubleSpinBox()
        self.min_trade.setRange(0.0, 1e9)
        self.min_trade.setDecimals(0)
        self.min_trade.setSingleStep(50)
        self.band = QDoubleSpinBox()
        self.band.setRange(0.0, 50.0)
        self.band.setDecimals(1)
        self.band.setSuffix(" pts")
        for spin in (self.cash_buffer, self.min_trade, self.band):
            spin.setAlignment(Qt.AlignmentFlag.AlignRight)
            spin.setKeyboardTracking(False)
        self.whole_shares.toggled.connect(lambda _on: self._trade_setting_edited())
        for spin in (self.cash_buffer, self.min_trade, self.band):
            spin.valueChanged.connect(lambda _v: self._trade_setting_edited())
        self.cash_buffer.setToolTip("Cash kept back, as a share of total value")
        self.min_trade.setToolTip("Orders worth less are not placed (exits always are)")
        self.band.setToolTip("Funds within this many weight points of target are not traded")
        self.trades_banner = _banner(_STALE_STYLE)
        self.trades_error = _banner(_ERROR_STYLE)
        self.trades_view = _table(self.trades_model)
        header = self.trades_view.horizontalHeader()
        for col, width in enumerate((42, 56, 62, 70, 90, 88, 80, 82, 60)):
            header.resizeSection(col, width)
        self.trades_summary = QLabel("No trades yet: load a portfolio and press Generate trades.")
        self.trades_summary.setWordWrap(True)
        self.trades_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.export_button = QPushButton("Export tickets...")
        self.export_button.setToolTip(
            "Generic CSV, IBKR BasketTrader or Rebalance CSV, TradeStation trade list, Excel"
        )
        self.export_button.clicked.connect(self.export_tickets)
        self.copy_button = QPushButton("Copy to clipboard")
        self.copy_button.clicked.connect(self.copy_trades)
        trades_page = QWidget()
        lay = QVBoxLayout(trades_page)
        lay.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        row.addWidget(self.trades_button)
        row.addWidget(self.trades_source, 1)
        lay.addLayout(row)
        settings = QHBoxLayout()
        settings.addWidget(self.whole_shares)
        settings.addSpacing(8)
        settings.addWidget(QLabel("Cash buffer"))
        settings.addWidget(self.cash_buffer)
        settings.addWidget(QLabel("Min trade"))
        settings.addWidget(self.min_trade)
        settings.addWidget(QLabel("Band"))
        settings.addWidget(self.band)
        settings.addStretch(1)
        lay.addLayout(settings)
        lay.addWidget(self.trades_banner)
        lay.addWidget(self.trades_error)
        lay.addWidget(self.trades_view, 1)
        lay.addWidget(self.trades_summary)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.export_button)
        lay.addLayout(buttons)

        self.pages = QTabWidget()
        self.pages.addTab(self.current_page, "Current holdings")
        self.pages.addTab(weights_page, "Weights")
        self.pages.addTab(exposures_page, "Exposures")
        self.pages.addTab(risk_page, "Risk")
        self.pages.addTab(trades_page, "Trades")
        self.weights_page, self.exposures_page = weights_page, exposures_page
        self.risk_page, self.trades_page = risk_page, trades_page

    def _build_layout(self) -> None:
        self.frontier_plot = FrontierPlot()
        self.frontier_plot.point_clicked.connect(self.load_point)
        # Every metric fits without scrolling at 1280x800; the splitter can give the
        # plot more room (the table then scrolls).
        self.metrics_view.setMinimumHeight(21 * 4 + 28)
        self.metrics_view.setMaximumHeight(21 * 12 + 28)
        self.target_box.setMinimumHeight(150)
        self.left_splitter = QSplitter(Qt.Orientation.Vertical)
        self.left_splitter.addWidget(self.target_box)
        self.left_splitter.addWidget(self.frontier_plot)
        self.left_splitter.addWidget(self.metrics_view)
        self.left_splitter.setStretchFactor(0, 0)
        self.left_splitter.setStretchFactor(1, 1)
        self.left_splitter.setStretchFactor(2, 0)
        self.left_splitter.setChildrenCollapsible(False)
        self.left_splitter.setSizes([210, 330, 21 * 12 + 28])
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.left_splitter)
        self.splitter.addWidget(self.pages)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([560, 700])

        row1 = QHBoxLayout()
        row1.addWidget(QLabel("Objective"))
        row1.addWidget(self.objective_combo)
        row1.addSpacing(6)
        row1.addWidget(self.leverage_check)
        row1.addSpacing(6)
        row1.addWidget(self.frontier_check)
        row1.addWidget(self.points_spin)
        row1.addSpacing(6)
        row1.addWidget(self.run_button)
        row1.addWidget(self.cancel_button)
        row1.addWidget(self.progress, 1)
        row2 = QHBoxLayout()
        row2.addWidget(self.estimators_label, 1)
        row2.addWidget(self.market_data_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(self.error_banner)
        layout.addWidget(self.stale_banner)
        layout.addWidget(self.notes_label)
        layout.addWidget(self.splitter, 1)

    # ============================================================= controls
    @property
    def choice(self) -> str:
        return str(self.objective_combo.currentData())

    def set_objective(self, choice: str) -> None:
        i = self.objective_combo.findData(choice)
        if i < 0:
            raise KeyError(choice)
        self.objective_combo.setCurrentIndex(i)

    def _objective_changed(self) -> None:
        matching = self.choice == "exposure_matching"
        self.target_box.setVisible(matching)
        if matching:
            # The target is this run's input: give it room, the metrics can scroll.
            self.left_splitter.setSizes([250, 250, 150])

    def _update_target_total(self) -> None:
        targets = self.target_model.targets()
        total = sum(abs(v) for v in targets.values())
        source = "saved in the workspace" if self.target_model.saved else "current exposures"
        self.target_total.setText(f"Total notional {percent(total, 0)} ({source})")

    def _reset_targets(self) -> None:
        ws = self.session.workspace
        try:
            current = ws.priced_portfolio().exposures(ws.fund_map)
        except StackOptError as exc:
            self._show_error(str(exc))
            return
        self.target_model.reset_to({k: round(float(v), 3) for k, v in current.items()})

    def _refresh_settings(self) -> None:
        from desktop.market_data_dialog import METHOD_LABELS

        ws = self.session.workspace
        md = self.session.market_data
        ret = str(ws.setting("return_method"))
        cov = str(ws.setting("covariance_method"))
        history = (
            f"{md.prices.shape[1]} price histories loaded"
            if md is not None
            else "no price history loaded"
        )
        offline = {ret, cov} <= {"exposure_model", "user"}
        if md is None and not offline:
            history += " (the built-in exposure model is used instead)"
        self.estimators_label.setText(
            f"<b>Estimates:</b> returns {METHOD_LABELS.get(ret, ret)}; covariance "
            f"{METHOD_LABELS.get(cov, cov)}; {float(ws.setting('lookback_years')):g}-year "
            f"lookback, {ws.setting('frequency')}; risk-free {percent(float(ws.setting('risk_free_rate')), 2)}; "
            f"{history}."
        )
        # Trade settings.
        widgets = (self.whole_shares, self.cash_buffer, self.min_trade, self.band)
        for w in widgets:
            w.blockSignals(True)
        try:
            self.whole_shares.setChecked(bool(ws.setting("whole_shares")))
            self.cash_buffer.setValue(float(ws.setting("cash_buffer")) * 100)
            self.min_trade.setSuffix(f" {ws.portfolio.currency}")
            self.min_trade.setValue(float(ws.setting("min_trade_value")))
            self.band.setValue(float(ws.setting("rebalance_band")) * 100)
        finally:
            for w in widgets:
                w.blockSignals(False)

    def _trade_setting_edited(self) -> None:
        ws = self.session.workspace
        wanted = {
            "whole_shares": self.whole_shares.isChecked(),
            "cash_buffer": round(self.cash_buffer.value() / 100, 6),
            "min_trade_value": float(self.min_trade.value()),
            "rebalance_band": round(self.band.value() / 100, 6),
        }
        changes = {k: v for k, v in wanted.items() if ws.setting(k) != v}
        if not changes:
            return
        try:
            command = SetSettingsCommand(
                self.session, changes, "change " + ", ".join(k.replace("_", " ") for k in changes)
            )
        except StackOptError as exc:
            self.trades_error.setText(str(exc))
            self.trades_error.show()
            self._refresh_settings()
            return
        self.session.undo_stack.push(command)

    def show_market_data(self) -> Any:
        """Open the Market data window (estimators and price history)."""
        window = self.window()
        opener = getattr(window, "show_market_data", None)
        if callable(opener):
            return opener()
        from desktop.market_data_dialog import MarketDataDialog

        dialog = getattr(self, "_market_dialog", None)
        if dialog is None:
            dialog = self._market_dialog = MarketDataDialog(self.session, self)
        dialog.show()
        dialog.raise_()
        return dialog

    # ================================================================== run
    @property
    def running(self) -> bool:
        return self.worker is not None and not self.worker.done.is_set()

    def run(self) -> IterWorker | None:
        """Start a run on the solver thread (None if one is already running)."""
        if self.running:
            return None
        choice = self.choice
        ws = self.session.workspace
        md = self.session.market_data
        targets = self.target_model.targets() if choice == "exposure_matching" else None
        n_points = self.points_spin.value() if self.frontier_check.isChecked() else 0
        snapshot = snapshot_workspace(ws)
        job: Callable[[], Iterator[RunStep]] = functools.partial(
            optimization_steps,
            snapshot,
            md.prices if md is not None else None,
            choice,
            target_exposures=targets,
            use_leverage=self.leverage_check.isChecked(),
            n_points=n_points,
        )
        worker = IterWorker(job, run_steps_total(n_points))
        worker.signals.partial.connect(self._on_step)
        worker.signals.finished.connect(self._on_finished)
        worker.signals.failed.connect(self._on_failed)
        worker.signals.cancelled.connect(self._on_cancelled)

        self._clear_run()
        self._run_choice = choice
        self._run_fingerprint = inputs_fingerprint(ws, choice)
        self._run_market_data = md
        self._run_workspace = snapshot
        self._set_stale(False)
        self.progress.setRange(0, worker.total)
        self.progress.setValue(0)
        self.progress.setFormat("estimating inputs...")
        self._started = time.perf_counter()
        self.worker = worker
        self.solver.start(worker)
        self._update_buttons()
        self.run_started.emit()
        return worker

    def cancel(self) -> None:
        """Stop the run after the solve in progress."""
        if self.running and self.worker is not None:
            self.worker.cancel()
            self.progress.setFormat("cancelling after this solve...")
            self.cancel_button.setEnabled(False)

    def _clear_run(self) -> None:
        self.inputs = None
        self.current_result = self.result = self.max_sharpe_result = None
        self.frontier = []
        self._steps_done = 0
        self._dirty = set()
        self._pending_points = []
        self._flush_timer.stop()
        self.chosen = None
        self.chosen_title = ""
        self.run_error = ""
        self.error_banner.hide()
        self.notes_label.hide()
        self.frontier_plot.set_current(None)
        self.frontier_plot.clear()
        self._set_plan(None)
        self._show_tables()

    def _ours(self) -> bool:
        """True when the signal being handled comes from the current run."""
        return self.worker is not None and self.sender() is self.worker.signals

    @Slot(object)
    def _on_step(self, step: RunStep) -> None:
        """Keep what arrived; the widgets are updated by :meth:`_flush` a moment later.

        Items come from the solver thread in bursts (dozens of frontier points a second).
        Every repaint on the GUI thread competes with the solver for the interpreter lock,
        so the display is refreshed at most every FLUSH_MS, all changes in one repaint.
        """
        if not self._ours():
            return  # a late item of a cancelled or replaced run
        self._steps_done += 1
        kind, value = step.kind, step.value
        if kind == "inputs":
            self.inputs = value
        elif kind == "current":
            self.current_result = value
            self._dirty.add(kind)
        elif kind == "result":
            self.result = value
            self._dirty.add(kind)
        elif kind == "max_sharpe":
            self.max_sharpe_result = value
            self._dirty.add(kind)
        elif kind == "point":
            self.frontier.append(value)
            self._pending_points.append(value)
            self.frontier_point_added.emit(value)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    @Slot()
    def _flush(self) -> None:
        """Show everything that arrived since the last refresh, in one go."""
        self._flush_timer.stop()
        dirty, self._dirty = self._dirty, set()
        if "current" in dirty and self.current_result is not None:
            self.frontier_plot.set_current(PlotPoint.of(self.current_result, "Current holdings"))
        if "result" in dirty and self.result is not None:
            self._on_result(self.result)
        if "max_sharpe" in dirty:
            ms = self.max_sharpe_result
            if ms is not None and ms.success and self.inputs is not None:
                self.frontier_plot.set_max_sharpe(
                    PlotPoint.of(ms, "Max Sharpe (tangency)"), self.inputs.risk_free_rate
                )
            self.progress.setFormat("frontier: %v of %m solves")
        if self._pending_points:
            points, self._pending_points = self._pending_points, []
            self.frontier_plot.add_points(points)
        if self.running and self.progress.value() != self._steps_done:
            self.progress.setValue(min(self._steps_done, self.progress.maximum()))

    def _on_result(self, result: OptimizationResult) -> None:
        self.result = result
        label = OBJECTIVE_CHOICES.get(self._run_choice, str(result.objective))
        if result.success:
            point = PlotPoint.of(result, f"Optimal: {label}")
            self.frontier_plot.set_optimal(point)
            self.frontier_plot.set_selected(point)
        else:
            self._show_error(result.message or "The solver did not find an optimum.")
        self.load_result(result, f"Optimal: {label}")
        self.result_ready.emit(result)

    def _show_run_outcome(self) -> None:
        """Notes and the Weights page, once the solver thread is idle.

        Done at the end of a run rather than when the optimum arrives: a layout change
        repaints the whole tab, and while the solver thread computes the frontier the GUI
        thread shares the interpreter (the GIL) with it, so large repaints take longer.
        """
        notes = list(self.inputs.notes) if self.inputs is not None else []
        if self.result is not None:
            notes += [*self.result.repairs, *self.result.fallbacks]
        self._show_notes(notes)
        if self.result is not None and self.pages.currentWidget() is self.current_page:
            self.pages.setCurrentWidget(self.weights_page)

    @Slot(object)
    def _on_finished(self, _items: object) -> None:
        if not self._ours():
            return
        self._flush()
        self._show_run_outcome()
        self.last_run_seconds = time.perf_counter() - self._started
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        n = len(self.frontier)
        self.progress.setFormat(
            f"done in {self.last_run_seconds:.1f} s" + (f" ({n} frontier points)" if n else "")
        )
        self._update_buttons()
        self._check_stale()  # an edit made during the run makes it stale at once
        self.run_finished.emit(self.result)

    @Slot(object)
    def _on_failed(self, exc: object) -> None:
        if not self._ours():
            return
        self._flush()
        self._show_run_outcome()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("failed")
        self._update_buttons()
        if not isinstance(exc, StackOptError):
            # A bug, not a problem with the inputs: the details go to a report.
            if isinstance(exc, BaseException):
                show_exception(type(exc), exc, exc.__traceback__, self)
            self.run_error = f"{type(exc).__name__}: {exc}"
            self.run_failed.emit(exc)
            return
        message = str(exc).rstrip()
        message += "" if message.endswith((".", "!", "?")) else "."
        if self.result is not None:
            # The optimum is fine (and shown); only the frontier after it failed, so
            # there is no constraint to blame.
            n = len(self.frontier)
            self._show_error(
                f"The frontier stopped after {n} point{'s' if n != 1 else ''}: {message} "
                "The optimum above is unaffected."
            )
        elif isinstance(exc, InfeasibleError):
            self._show_tables()  # the current holdings, measured before the failure
            self._show_error(
                f"Cannot optimize: {message} The Constraints tab highlights the constraints "
                "involved."
            )
            self.infeasible.emit(list(exc.conflicts) or [str(exc)])
        else:
            self._show_tables()
            self._show_error(f"Cannot optimize: {message}")
        self.run_failed.emit(exc)

    @Slot()
    def _on_cancelled(self) -> None:
        if not self._ours():
            return
        self._flush()
        self._show_run_outcome()
        total = self.worker.total if self.worker is not None else 0
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat(
            f"cancelled ({len(self.frontier)} frontier points of {max(total - 4, 0)})"
        )
        self._update_buttons()
        self.run_cancelled.emit()

    def _show_error(self, text: str) -> None:
        self.run_error = text
        self.error_banner.setText(text)
        self.error_banner.show()

    def _show_notes(self, notes: list[str]) -> None:
        notes = [n for n in dict.fromkeys(notes) if n]
        self.notes_label.setText("Notes: " + "; ".join(notes) if notes else "")
        self.notes_label.setVisible(bool(notes))

    def _update_buttons(self) -> None:
        running = self.running
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        tradable = self.chosen is not None and self.chosen.success
        self.trades_button.setEnabled(tradable and not self._trades_running())
        if self.chosen is not None and not self.chosen.success:
            self.trades_button.setToolTip("This answer breaks constraints: no trades from it")
        else:
            self.trades_button.setToolTip("Orders that move the holdings to the loaded portfolio")
        has_plan = self.plan is not None and bool(self.plan.trades)
        self.export_button.setEnabled(has_plan and not self.trades_stale)
        self.copy_button.setEnabled(has_plan and not self.trades_stale)

    # ====================================================== loaded portfolio
    def load_result(self, result: OptimizationResult, title: str) -> None:
        """Show ``result`` in the tables and risk charts (the portfolio trades are made from)."""
        if result is not self.chosen:
            self._set_plan(None)
        self.chosen = result
        self.chosen_title = title
        self._show_tables()
        self._update_buttons()
        self.portfolio_loaded.emit(result)

    @Slot(object)
    def load_point(self, payload: object) -> None:
        """Load a clicked frontier point (or marker) into the tables."""
        if isinstance(payload, OptimizationResult):
            if payload is self.current_result:
                title = "Current holdings"
            elif payload is self.result:
                title = f"Optimal: {OBJECTIVE_CHOICES.get(self._run_choice, '')}"
            else:
                title = "Max Sharpe (tangency)"
            self.load_result(payload, title)
            return
        if not isinstance(payload, FrontierPoint) or self.inputs is None:
            return
        fund_map = (
            self._run_workspace.fund_map if self._run_workspace else self.session.workspace.fund_map
        )
        where = "with" if payload.label == "with leverage" else "without"
        title = f"Frontier point {payload.index + 1} ({where} leveraged funds)"
        # Solver round-off leaves weights like -1e-11 that a long-only trade list refuses.
        weights = payload.weights.where(payload.weights.abs() > WEIGHT_ROUNDOFF, 0.0)
        measured = measure_portfolio(
            self.inputs, fund_map, weights, objective=title,
            solver=payload.solver, status="optimal (frontier point)",
            assumptions=self.assumptions,
        )  # fmt: skip
        self.frontier_plot.set_selected(PlotPoint.of(payload))
        self.load_result(measured, title)

    def _show_tables(self) -> None:
        fund_map = (
            self._run_workspace.fund_map if self._run_workspace else self.session.workspace.fund_map
        )
        cur, chosen = self.current_result, self.chosen
        title = self.chosen_title or "Target"
        self.weights_model.set_results(cur, chosen, fund_map)
        self.exposures_model.set_results(cur, chosen, fund_map)
        # The column header is short ("Optimal", "Frontier point 7"); the pages say more.
        short = title.split(" (")[0].split(":")[0] if chosen is not None else "Chosen"
        self.metrics_model.set_results(cur, chosen, short)
        if chosen is None:
            text = "Run an optimization to see target weights." if cur is None else ""
        else:
            text = f"Target = {title}."
        self.weights_title.setText(text)
        self.exposures_title.setText(
            text.replace("target weights", "exposures after") if text else ""
        )
        self.trades_source.setText(
            f"from: {title}" if chosen is not None else "no portfolio loaded"
        )
        # The risk charts are drawn when their page is shown (they cost the most).
        self._risk_dirty = True
        if self.pages.currentWidget() is self.risk_page:
            self._update_risk_plots()

    @Slot(int)
    def _page_changed(self, _index: int) -> None:
        if self.pages.currentWidget() is self.risk_page and self._risk_dirty:
            self._update_risk_plots()

    def _update_risk_plots(self) -> None:
        self._risk_dirty = False
        which = self.risk_which.currentData()
        r = self.current_result if which == "current" else (self.chosen or self.current_result)
        plots = (self.fund_risk_plot, self.type_risk_plot)
        if r is None:
            for plot in plots:
                plot.show_message("Run an optimization to see where the risk comes from.")
            return
        self._fill_risk_plots(
            *plots,
            r.weights,
            r.risk_contributions,
            r.exposures,
            r.exposures_by_group,
            r.exposure_risk_contributions,
            float(r.expected_volatility),
            self._fund_map(),
        )

    def _fund_map(self) -> FundExposureMap:
        """The fund map of the last run (the workspace's before any run)."""
        ws = self._run_workspace or self.session.workspace
        return ws.fund_map

    @staticmethod
    def _fill_risk_plots(
        fund_plot: RiskPlot,
        type_plot: RiskPlot,
        weights: pd.Series,
        risk_by_fund: pd.Series,
        exposures: pd.Series,
        exposures_by_group: pd.Series,
        risk_by_type: pd.Series,
        vol: float,
        fund_map: FundExposureMap,
    ) -> None:
        """Capital next to share of risk, by fund and by exposure type.

        ``risk_by_fund`` (N,) and ``risk_by_type`` (K + 1,) are Euler contributions in
        volatility units (they sum to ``vol``); shown as shares of it.
        """
        if not vol > 0:
            for plot in (fund_plot, type_plot):
                plot.show_message("This portfolio has no risk.")
            return
        rc = risk_by_fund.reindex(weights.index).fillna(0.0) / vol
        w = weights
        keep = [s for s in w.index if abs(w[s]) > 1e-6 or abs(rc[s]) > 1e-6]
        keep.sort(key=lambda s: -max(abs(rc[s]), abs(w[s])))
        shown, rest = keep[:MAX_FUND_BARS], keep[MAX_FUND_BARS:]
        labels = [str(s) for s in shown]
        capital = [float(w[s]) for s in shown]
        risk = [float(rc[s]) for s in shown]
        colors = [_main_color(fund_map, str(s)) for s in shown]
        if rest:
            labels.append(f"Other {len(rest)} funds")
            capital.append(float(w[rest].sum()))
            risk.append(float(rc[rest].sum()))
            colors.append(DEFAULT_COLOR)
        fund_plot.set_bars(labels, capital, risk, colors)
        fund_plot.set_title(f"Risk by fund (volatility {percent(vol, 2)}; colour = main exposure)")
        if risk_by_type.empty:
            type_plot.show_message(
                "No breakdown by exposure type: an exposure type has no market assumptions."
            )
            return
        types = fund_map.exposure_types
        codes = [
            c
            for c in risk_by_type.index
            if c != RESIDUAL_LABEL
            and (abs(float(risk_by_type[c])) > 1e-9 or abs(float(exposures.get(c, 0.0))) > 1e-6)
        ]
        codes.sort(key=lambda c: -abs(float(risk_by_type[c])))
        labels = [types[c].name if c in types else str(c) for c in codes]
        capital = [float(exposures.get(c, 0.0)) for c in codes]
        risk = [float(risk_by_type[c]) / vol for c in codes]
        colors = [
            GROUP_COLORS.get(types[c].group.value, DEFAULT_COLOR) if c in types else DEFAULT_COLOR
            for c in codes
        ]
        residual = float(risk_by_type.get(RESIDUAL_LABEL, 0.0))
        if abs(residual) > 1e-9:
            labels.append("Fund-specific")
            capital.append(math.nan)
            risk.append(residual / vol)
            colors.append(GROUP_COLORS[AssetGroup.CASH.value])
        type_plot.set_bars(labels, capital, risk, colors)
        equity = sum(
            rk for c, rk in zip(codes, risk, strict=False)
            if c in types and types[c].group is AssetGroup.EQUITY
        )  # fmt: skip
        equity_capital = float(exposures_by_group.get("equity", 0.0))
        type_plot.set_title(
            f"Risk by exposure type: equity is {percent(equity_capital, 0)} of capital and "
            f"{percent(equity, 0)} of risk"
        )

    # =============================================================== trades
    def _trades_running(self) -> bool:
        return self.trade_worker is not None and not self.trade_worker.done.is_set()

    def generate_trades(self) -> FunctionWorker | None:
        """Make orders from the loaded portfolio on the solver thread."""
        target = self.chosen
        if target is None or not target.success or self._trades_running():
            return None
        ws = snapshot_workspace(self.session.workspace)
        worker = FunctionWorker(functools.partial(make_trades, target, ws))
        worker.signals.finished.connect(self._on_trades)
        worker.signals.failed.connect(self._on_trades_failed)
        self.trade_worker = worker
        self._pending_trades_fingerprint = trades_fingerprint(self.session.workspace)
        self.trades_error.hide()
        self.trades_summary.setText("Making trades...")
        self.solver.start(worker)
        self._update_buttons()
        return worker

    @Slot(object)
    def _on_trades(self, plan: TradePlan) -> None:
        if self.trade_worker is None or self.sender() is not self.trade_worker.signals:
            return
        self._trades_fingerprint = self._pending_trades_fingerprint
        self._set_plan(plan)
        self._check_trades_stale()
        self.trades_generated.emit(plan)

    @Slot(object)
    def _on_trades_failed(self, exc: object) -> None:
        if self.trade_worker is None or self.sender() is not self.trade_worker.signals:
            return
        self._set_plan(None)
        if not isinstance(exc, StackOptError) and isinstance(exc, BaseException):
            show_exception(type(exc), exc, exc.__traceback__, self)
        self.trades_error.setText(f"Cannot make trades: {exc}")
        self.trades_error.show()
        self.trades_summary.setText("")
        self._update_buttons()
        self.trades_failed.emit(exc)

    def _set_plan(self, plan: TradePlan | None) -> None:
        self.plan = plan
        currency = self.session.workspace.portfolio.currency
        self.trades_model.set_plan(plan, currency)
        if plan is None:
            self._trades_fingerprint = None
            self.trades_summary.setText(
                "No trades yet: load a portfolio and press Generate trades."
            )
            self.trades_banner.hide()
            self.trades_stale = False
        else:
            s = plan.summary()
            lines = [
                f"<b>{s['n_trades']} trades</b> ({s['n_sells']} sells, {s['n_buys']} buys); "
                f"traded {money(s['gross_traded_value'], currency, 0)}, turnover "
                f"{percent(s['turnover'], 1)}, estimated costs "
                f"{money(s['estimated_costs'], currency)}.",
                f"Cash {money(s['cash_before'], currency, 0)} before, "
                f"{money(s['cash_after'], currency, 0)} after (buffer "
                f"{money(s['cash_buffer'], currency, 0)}); largest drift from target "
                f"{percent(s['max_abs_drift'], 2)}.",
            ]
            notes = [*plan.warnings, *plan.cap_violations]
            if plan.locked_by_band:
                notes.append(f"within the band, not traded: {', '.join(plan.locked_by_band)}")
            if plan.skipped_small:
                notes.append(f"below the minimum trade: {', '.join(plan.skipped_small)}")
            if notes:
                lines.append("<span style='color:#7a4b00'>" + "; ".join(notes) + "</span>")
            self.trades_summary.setText("<br>".join(lines))
        self._update_buttons()

    def export_tickets(self) -> list:
        """Ask for a format and a file, then write the ticket; returns the files written."""
        if self.plan is None or self.trades_stale:
            return []
        ws = self.session.workspace
        dialog = TicketExportDialog(
            self.plan,
            currency=ws.portfolio.currency,
            initial_format=default_format(ws.setting("ticket_format")),
            parent=self,
        )
        if dialog.exec() != TicketExportDialog.DialogCode.Accepted:
            return []
        names = ", ".join(p.name for p in dialog.written)
        self.trades_summary.setText(
            self.trades_summary.text() + f"<br><span style='color:#2e6b34'>Wrote {names}.</span>"
        )
        return list(dialog.written)

    def copy_trades(self) -> str:
        """Put the trades table on the clipboard as tab-separated text."""
        text = self.trades_model.to_text()
        QApplication.clipboard().setText(text)
        return text

    # ============================================================ staleness
    @Slot()
    def _inputs_changed(self) -> None:
        # The current-holdings analysis costs a third of a second at 2,000 funds: while
        # another tab is on screen it waits until this tab is shown again.
        if self.window().isVisible() and not self.isVisible():
            self._recompute_pending = True
        else:
            self.recompute()
        self._refresh_settings()
        self._check_stale()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if getattr(self, "_recompute_pending", False):
            self._recompute_pending = False
            self.recompute()

    def _check_stale(self) -> None:
        """Compare the inputs now with those of the last run (and of the last trades)."""
        if self._run_fingerprint is not None and not self.running:
            ws = self.session.workspace
            changed = (
                inputs_fingerprint(ws, self._run_choice) != self._run_fingerprint
                or self.session.market_data is not self._run_market_data
            )
            self._set_stale(changed)
        self._check_trades_stale()

    def _set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self.stale = stale
            self.stale_banner.setVisible(stale)
            self.stale_changed.emit(stale)

    def _check_trades_stale(self) -> None:
        if self.plan is None or self._trades_fingerprint is None:
            return
        stale = trades_fingerprint(self.session.workspace) != self._trades_fingerprint
        self.trades_stale = stale
        self.trades_banner.setText(
            "\u26a0 Holdings, prices or trade settings changed since these trades were made: "
            "press Generate trades again before exporting."
        )
        self.trades_banner.setVisible(stale)
        self._update_buttons()

    # ===================================================== current holdings
    def recompute(self) -> None:
        """The current holdings under the built-in assumptions.

        Small portfolios are analysed at once on the GUI thread (milliseconds); from
        :data:`ASYNC_ANALYSIS_FUNDS` funds on, a snapshot of the workspace is analysed on
        a worker thread (numpy only, so not the solver thread) and shown when it returns;
        an answer for an older snapshot is dropped.
        """
        ws = self.session.workspace
        self._analysis_generation = getattr(self, "_analysis_generation", 0) + 1
        if len(ws.portfolio.symbols) < ASYNC_ANALYSIS_FUNDS:
            self._show_current(ws, *_analyse_or_error(ws, self.assumptions))
            return
        snapshot = Workspace.from_dict(ws.to_dict())
        generation = self._analysis_generation
        assumptions = self.assumptions
        worker = FunctionWorker(lambda: (snapshot, *_analyse_or_error(snapshot, assumptions)))
        worker.signals.finished.connect(
            lambda out, g=generation: (
                self._show_current(*out) if g == self._analysis_generation else None
            )
        )
        if not hasattr(self, "_analysis_pool"):
            self._analysis_pool = QThreadPool(self)
            self._analysis_pool.setMaxThreadCount(1)
            self._analysis_jobs: list[FunctionWorker] = []
        self._analysis_jobs = [j for j in self._analysis_jobs if not j.done.is_set()]
        self._analysis_jobs.append(worker)
        self._analysis_pool.start(worker)

    def _show_current(self, ws: Workspace, results: Any, error: str) -> None:
        self.results, self.error = results, error
        figures = (self.expected_return, self.volatility, self.sharpe, self.notional, self.cash)
        plots = (self.fund_risk_plot_current, self.type_risk_plot_current)
        if self.results is None:
            self.message.setText(f"Cannot analyse the portfolio: {self.error}")
            self.message.show()
            self.groups_label.setText("")
            for f in figures:
                f.value.setText("-")
            for plot in plots:
                plot.show_message(self.error)
            return
        self.message.hide()
        r = self.results
        self.expected_return.value.setText(percent(r.expected_return, 2))
        self.volatility.value.setText(percent(r.volatility, 2))
        self.sharpe.value.setText(f"{r.sharpe_ratio:.2f}")
        self.notional.value.setText(percent(r.total_notional, 1))
        self.cash.value.setText(percent(r.cash_weight, 1))
        groups = r.exposures_by_group[r.exposures_by_group.abs() > 1e-9]
        self.groups_label.setText(
            "Exposure by asset class: "
            + "; ".join(f"{AssetGroup(g).label} {percent(float(v), 1)}" for g, v in groups.items())
        )
        weights = ws.priced_portfolio().weights()
        held = r.risk_by_fund.index
        self._fill_risk_plots(
            self.fund_risk_plot_current,
            self.type_risk_plot_current,
            weights.reindex(held).fillna(0.0),
            r.risk_by_fund,
            r.exposures,
            r.exposures_by_group,
            r.risk_by_type,
            r.volatility,
            ws.fund_map,
        )

    # ================================================================ close
    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel the run and the trades job; wait for them (on close)."""
        for job in (self.worker, self.trade_worker):
            if job is not None:
                job.cancel()
        if hasattr(self, "_analysis_pool"):
            self._analysis_generation += 1  # a late answer is not shown any more
            self._analysis_pool.waitForDone(timeout_ms)
        if self._own_solver:
            return self.solver.shutdown(timeout_ms)
        deadline = time.monotonic() + timeout_ms / 1000
        ok = True
        for job in (self.worker, self.trade_worker):
            if job is not None:
                ok &= job.done.wait(max(deadline - time.monotonic(), 0.0))
        return ok
