"""Backtest tab: walk-forward backtests of several strategies on the loaded price history.

The user ticks strategies and settings; :func:`iter_backtests` runs them one after another
in ONE job on the solver thread (:class:`desktop.workers.IterWorker`), yielding a
:class:`StrategyTick` at every rebalance (progress, and a place to cancel) and a
:class:`StrategyDone` per strategy (its :class:`~core.backtest.BacktestResult`, or the
error that stopped it, so that one failing strategy does not lose the others). The tab
plots each equity curve as it arrives, fills the statistics table from
:func:`core.backtest.compare`, lists which funds used synthetic history and how well it
fits, and exports the results as CSV.

The universe is the workspace's held funds, the constraints are the workspace's; the
prices are the session's loaded market data, repaired with
:func:`core.market_data.clean_prices` before use (the backtest expects clean prices).
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from PySide6.QtCore import QDate, Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from core.backtest import STAT_LABELS, BacktestResult, OptimizationBacktest, compare
from core.errors import StackOptError, ValidationError
from core.exposures import FundExposureMap
from core.fileio import atomic_write_text, neutralise_cell
from core.market_data import clean_prices
from core.optimization.constraints import OptimizationConstraints
from core.workspace import Workspace
from desktop.dialogs import last_folder, remember_folder, show_exception
from desktop.models.backtest_model import BacktestStatsModel
from desktop.plots.equity_plot import Curve, EquityPlot
from desktop.session import Session
from desktop.workers import IterWorker, SolverThread

NO_DATA_TEXT = "Load price history (Data > Market data...) to backtest"
REBALANCE_CHOICES = (
    ("monthly", "Monthly"),
    ("quarterly", "Quarterly"),
    ("annual", "Annual"),
    ("band", "Band (when weights drift)"),
)
RETURN_CHOICES = (
    ("historical", "Trailing mean"),
    ("ewma", "Exponentially weighted mean"),
    ("exposure_history", "Exposure history (leverage-aware)"),
)
#: Covariance estimators the backtest can re-fit at each date (others fall back).
BACKTEST_COVARIANCE = ("ledoit_wolf", "sample", "oas", "constant_correlation", "ewma")
_BENCHMARK = "benchmark_60_40"
_BUY_AND_HOLD = "buy_and_hold"
_CASH_SYMBOLS = ("BIL", "^IRX")


@dataclass(frozen=True)
class StrategyChoice:
    """A strategy the tab offers: core key, label (the result's name), curve colour."""

    key: str
    label: str
    tooltip: str
    color: tuple[int, int, int]
    checked: bool = False


STRATEGY_CHOICES: tuple[StrategyChoice, ...] = (
    StrategyChoice(
        _BENCHMARK,
        "60/40 benchmark",
        "60% US equity (SPY, else VTI), 40% 7-10 year Treasuries (IEF), rebalanced on the "
        "same calendar; the other rows are compared with it",
        (85, 87, 83),
        True,
    ),
    StrategyChoice(
        _BUY_AND_HOLD,
        "Buy and hold (current)",
        "The current holdings' weights (cash included) from the start, never traded",
        (193, 125, 17),
    ),
    StrategyChoice(
        "max_sharpe",
        "Max Sharpe",
        "Highest expected excess return per unit of risk, re-estimated on the trailing window "
        "at every rebalance, within the workspace's constraints",
        (52, 101, 164),
        True,
    ),
    StrategyChoice(
        "min_volatility",
        "Min volatility",
        "Lowest volatility within the workspace's constraints",
        (78, 154, 6),
    ),
    StrategyChoice(
        "risk_parity",
        "Risk parity",
        "Equal risk from every fund",
        (204, 0, 0),
    ),
    StrategyChoice(
        "risk_parity_exposure",
        "Risk parity by exposure",
        "Equal risk from every exposure type (equity, Treasuries, gold, ...), delivered through "
        "the funds; levered to the target volatility through stacked funds when allowed",
        (117, 80, 123),
    ),
    StrategyChoice(
        "hrp",
        "Hierarchical risk parity",
        "Risk split down a clustering of the funds' correlations (HRP)",
        (245, 121, 0),
    ),
    StrategyChoice(
        "equal_weight",
        "Equal weight",
        "The same weight in every fund that has a price",
        (6, 152, 154),
    ),
)
_CHOICE = {c.key: c for c in STRATEGY_CHOICES}


# ====================================================================== the job
@dataclass(frozen=True)
class BacktestSettings:
    """What the user chose. Fractions for ``band``; ``transaction_cost_bps`` in bps."""

    strategies: tuple[str, ...]
    start: pd.Timestamp
    end: pd.Timestamp
    rebalance: str = "quarterly"
    band: float = 0.05
    transaction_cost_bps: float = 5.0
    lookback_years: float = 3.0
    return_method: str = "historical"
    synthetic_history: bool = False
    allow_leveraged: bool = True

    def validate(self) -> None:
        """Raise :class:`ValidationError` naming the setting to change."""
        if not self.strategies:
            raise ValidationError("tick at least one strategy to backtest", field="strategies")
        unknown = [s for s in self.strategies if s not in _CHOICE]
        if unknown:
            raise ValidationError(f"unknown strategies {unknown}", field="strategies")
        if self.end <= self.start:
            raise ValidationError(
                f"the end date {self.end:%Y-%m-%d} must be after the start date "
                f"{self.start:%Y-%m-%d}",
                field="end",
            )
        if self.rebalance not in {k for k, _ in REBALANCE_CHOICES}:
            raise ValidationError(f"unknown rebalancing {self.rebalance!r}", field="rebalance")
        if self.rebalance == "band" and not 0 < self.band < 1:
            raise ValidationError("the band width must be between 0% and 100%", field="band")

    def describe(self) -> str:
        """One line for the results header."""
        how = dict(REBALANCE_CHOICES)[self.rebalance].lower()
        if self.rebalance == "band":
            how = f"rebalanced when a weight drifts {self.band:.1%} from target"
        else:
            how = f"{how} rebalancing"
        return (
            f"{how}, {self.transaction_cost_bps:g} bps costs, {self.lookback_years:g}-year "
            f"lookback{', synthetic history before inception' if self.synthetic_history else ''}"
            f"{'' if self.allow_leveraged else ', no leveraged funds'}"
        )


@dataclass
class BacktestInputs:
    """A snapshot of everything the job reads, taken on the GUI thread at Run.

    Attributes
    ----------
    prices : DataFrame, shape (days, symbols)
        The loaded adjusted closes (not yet cleaned).
    fund_map : FundExposureMap
    constraints : OptimizationConstraints
    universe : list of str
        Funds the optimizing strategies may hold.
    weights : Series or None
        Current weights of the held funds (cash is the rest), for buy and hold.
    weights_error : str
        Why there are no current weights (unpriced holdings), '' otherwise.
    covariance_method : str
    notes : list of str
        What the universe left out and why.
    """

    prices: pd.DataFrame
    fund_map: FundExposureMap
    constraints: OptimizationConstraints
    universe: list[str]
    weights: pd.Series | None
    weights_error: str = ""
    covariance_method: str = "ledoit_wolf"
    notes: list[str] = field(default_factory=list)


def backtest_inputs(
    workspace: Workspace, prices: pd.DataFrame, settings: BacktestSettings
) -> BacktestInputs:
    """Universe, constraints and current weights of ``workspace`` for a backtest.

    The universe is the held funds that are in the fund map; without synthetic history
    the funds with no price column are left out, and leveraged funds (notional over 100%)
    are left out when ``settings.allow_leveraged`` is False. Each exclusion is a note.
    """
    fund_map = workspace.fund_map.copy()
    held = list(workspace.portfolio.symbols)
    notes: list[str] = []
    unknown = [s for s in held if s not in fund_map]
    if unknown:
        notes.append(
            f"Not in the fund map, left out: {', '.join(unknown)} (add them on the Fund "
            "Exposures tab)"
        )
    universe = [s for s in held if s in fund_map]
    if not settings.synthetic_history:
        unpriced = [s for s in universe if s not in prices.columns]
        if unpriced:
            notes.append(
                f"No price history, left out: {', '.join(unpriced)} (tick 'Synthesise history "
                "before inception' to use their exposures)"
            )
        universe = [s for s in universe if s in prices.columns]
    if not settings.allow_leveraged:
        levered = [s for s in universe if fund_map[s].is_leveraged]
        if levered:
            notes.append(f"Leveraged funds not allowed, left out: {', '.join(levered)}")
        universe = [s for s in universe if not fund_map[s].is_leveraged]
    weights: pd.Series | None = None
    weights_error = ""
    try:
        w = workspace.priced_portfolio().weights()
        w = w[w != 0.0]
        missing = [s for s in w.index if s not in fund_map]
        if missing:
            weights_error = (
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} held but not in "
                "the fund map"
            )
        elif w.empty:
            weights_error = "the portfolio holds no funds"
        else:
            weights = w.astype(float)
    except StackOptError as exc:
        weights_error = str(exc)
    covariance = str(workspace.setting("covariance_method"))
    return BacktestInputs(
        prices=prices,
        fund_map=fund_map,
        constraints=workspace.constraints.copy(),
        universe=universe,
        weights=weights,
        weights_error=weights_error,
        covariance_method=covariance if covariance in BACKTEST_COVARIANCE else "ledoit_wolf",
        notes=notes,
    )


@dataclass(frozen=True)
class StrategyTick:
    """Progress inside strategy ``index`` (of ``count``): ``done`` of ``total`` periods."""

    index: int
    count: int
    key: str
    name: str
    done: int
    total: int
    date: pd.Timestamp

    @property
    def fraction(self) -> float:
        """Share of the whole job done, in [0, 1]."""
        inner = self.done / self.total if self.total > 0 else 0.0
        return (self.index + min(max(inner, 0.0), 1.0)) / self.count


@dataclass(frozen=True)
class StrategyDone:
    """Strategy ``index`` finished: its result, or the error that stopped it."""

    index: int
    count: int
    key: str
    name: str
    result: BacktestResult | None
    error: str = ""


def _benchmark_symbols(prices: pd.DataFrame, fund_map: FundExposureMap) -> tuple[str, str]:
    equity = next((s for s in ("SPY", "VTI") if s in prices.columns and s in fund_map), None)
    if equity is None or "IEF" not in prices.columns or "IEF" not in fund_map:
        raise ValidationError(
            "the 60/40 benchmark needs prices of SPY (or VTI) and IEF: load them, or untick "
            "the benchmark",
            field="strategies",
        )
    return equity, "IEF"


def _needed_columns(inputs: BacktestInputs, settings: BacktestSettings) -> list[str]:
    """Price columns the run reads: funds, benchmark, cash and (synthetic) proxies."""
    want = set(inputs.universe) | set(_CASH_SYMBOLS) | {"SPY", "VTI", "IEF"}
    if inputs.weights is not None:
        want |= set(inputs.weights.index)
    # Exposure risk parity, exposure-history returns and synthetic history all read the
    # exposure types' proxy ETFs.
    types = inputs.fund_map.exposure_types
    for sym in list(want):
        if sym in inputs.fund_map:
            for code in inputs.fund_map[sym].exposures:
                proxy = types[code].proxy.strip().upper() if code in types else ""
                if proxy:
                    want.add(proxy)
    return [c for c in inputs.prices.columns if str(c).upper() in want]


def iter_backtests(
    inputs: BacktestInputs, settings: BacktestSettings
) -> Iterator[StrategyTick | StrategyDone]:
    """Run every chosen strategy one after another (on the worker thread).

    Yields a :class:`StrategyTick` per rebalance date and a :class:`StrategyDone` per
    strategy. An error of one strategy (a date with no feasible portfolio, a fund with
    no price at the start) is its ``StrategyDone.error``; the next strategy still runs.

    Raises
    ------
    StackOptError
        The settings or data do not allow any backtest (no cash rate, bad window).
    """
    settings.validate()
    prices, _report = clean_prices(inputs.prices[_needed_columns(inputs, settings)])
    backtest = OptimizationBacktest(
        prices,
        inputs.fund_map,
        transaction_cost_bps=settings.transaction_cost_bps,
        lookback_years=settings.lookback_years,
        covariance_method=inputs.covariance_method,
        return_method=settings.return_method,
        synthetic_history=settings.synthetic_history,
        frequency="daily",
    )
    rule = settings.rebalance
    band = settings.band if rule == "band" else None
    count = len(settings.strategies)
    for i, key in enumerate(settings.strategies):
        name = _CHOICE[key].label
        result = None
        try:
            ticks = _strategy_ticks(backtest, key, name, inputs, settings, rule, band)
            for tick in ticks:
                if tick.result is not None:
                    result = tick.result
                else:
                    yield StrategyTick(i, count, key, name, tick.done, tick.total, tick.date)
        except StackOptError as exc:
            yield StrategyDone(i, count, key, name, None, str(exc))
            continue
        yield StrategyDone(i, count, key, name, result)


def _strategy_ticks(
    backtest: OptimizationBacktest,
    key: str,
    name: str,
    inputs: BacktestInputs,
    settings: BacktestSettings,
    rule: str,
    band: float | None,
) -> Iterator[Any]:
    start, end = settings.start, settings.end
    if key == _BENCHMARK:
        equity, bonds = _benchmark_symbols(backtest.prices, inputs.fund_map)
        return backtest.iter_backtest(
            {equity: 0.6, bonds: 0.4}, rule, start, end, band=band, name=name
        )
    if key == _BUY_AND_HOLD:
        if inputs.weights is None:
            raise ValidationError(f"no current weights to hold: {inputs.weights_error}")
        return backtest.iter_backtest(
            "buy_and_hold", "never", start, end, weights=inputs.weights,
            symbols=list(inputs.weights.index), name=name,
        )  # fmt: skip
    if not inputs.universe:
        raise ValidationError(
            "no held fund can be backtested: " + ("; ".join(inputs.notes) or "add holdings"),
            field="symbols",
        )
    return backtest.iter_backtest(
        key, rule, start, end, constraints=inputs.constraints, symbols=inputs.universe,
        band=band, use_leverage=settings.allow_leveraged, name=name,
    )  # fmt: skip


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "strategy"


def export_backtests(
    path: str | Path, results: Sequence[BacktestResult], table: pd.DataFrame
) -> list[Path]:
    """Write the results as CSV files, each atomically.

    * ``path``: the equity curves, one column per strategy (wealth, 1.0 at the start),
      indexed by date;
    * ``<stem>_stats.csv``: the statistics table (one row per strategy, headers as in
      :data:`core.backtest.STAT_LABELS`, fractions not percent);
    * ``<stem>_<strategy>.csv``: each strategy's full record
      (:meth:`BacktestResult.to_csv`: returns, drawdown, weights, exposures, costs).

    Returns
    -------
    list of Path
        The files written, in that order.
    """
    path = Path(path)
    if not results:
        raise ValidationError("nothing to export: run a backtest first")
    curves = pd.concat({r.name: r.equity_curve for r in results}, axis=1)
    curves.index.name = "date"
    curves.columns = [neutralise_cell(str(c)) for c in curves.columns]
    atomic_write_text(path, curves.to_csv(date_format="%Y-%m-%d", float_format="%.10g"))
    written = [path]
    stats = table.rename(columns=STAT_LABELS).copy()
    for col in stats.columns:
        if stats[col].map(lambda v: isinstance(v, pd.Timestamp)).any():
            stats[col] = stats[col].map(
                lambda v: f"{v:%Y-%m-%d}" if isinstance(v, pd.Timestamp) else ""
            )
    stats.index = [neutralise_cell(str(s)) for s in stats.index]
    stats.index.name = "strategy"
    stats_path = path.with_name(f"{path.stem}_stats.csv")
    atomic_write_text(stats_path, stats.to_csv(float_format="%.10g"))
    written.append(stats_path)
    for result in results:
        detail = path.with_name(f"{path.stem}_{_slug(result.name)}.csv")
        result.to_csv(detail)
        written.append(detail)
    return written


# ====================================================================== the tab
class BacktestTab(QWidget):
    """Pick strategies and settings, run them on the solver thread, compare the results.

    Parameters
    ----------
    session : Session
    parent : QWidget, optional
    solver : SolverThread, optional
        The application's solver thread; without one the tab makes its own and shuts it
        down in :meth:`shutdown`.

    Attributes
    ----------
    results : list of BacktestResult
        The results of the last run, in run order (the finished ones if cancelled).
    errors : list of (str, str)
        (strategy name, message) of the strategies that failed in the last run.

    Signals
    -------
    backtest_finished(str)
        A run ended: ``'finished'``, ``'cancelled'`` or ``'failed'``.
    """

    backtest_finished = Signal(str)

    def __init__(
        self, session: Session, parent: QWidget | None = None, *, solver: SolverThread | None = None
    ):
        super().__init__(parent)
        self.session = session
        self._own_solver = solver is None
        self.solver = solver if solver is not None else SolverThread(self)
        self.worker: IterWorker | None = None
        self.results: list[BacktestResult] = []
        self.errors: list[tuple[str, str]] = []
        self._keys: dict[str, str] = {}  # result name -> strategy key
        self._run_settings: BacktestSettings | None = None
        self._run_notes: list[str] = []
        self._started = 0.0
        self._stale = False
        self._market_dialog: Any = None
        self._dates_for: int | None = None  # id() of the prices the date ranges came from

        self._build_settings_panel()
        self._build_results_panel()
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.settings_scroll)
        split.addWidget(self.pages)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([300, 980])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(split)

        for signal in (
            session.workspace_replaced,
            session.portfolio_changed,
            session.fund_map_changed,
            session.constraints_changed,
        ):
            signal.connect(self._workspace_changed)
        session.market_data_changed.connect(self._market_data_changed)
        session.workspace_replaced.connect(self._reset_costs)
        self._reset_costs()
        self._market_data_changed()

    # ------------------------------------------------------------- building
    def _build_settings_panel(self) -> None:
        strategies = QGroupBox("Strategies")
        box = QVBoxLayout(strategies)
        box.setSpacing(2)
        self.strategy_boxes: dict[str, QCheckBox] = {}
        for choice in STRATEGY_CHOICES:
            check = QCheckBox(choice.label)
            check.setChecked(choice.checked)
            check.setToolTip(choice.tooltip)
            check.toggled.connect(lambda _on: self._update_enabled())
            box.addWidget(check)
            self.strategy_boxes[choice.key] = check

        self.start_edit = QDateEdit()
        self.end_edit = QDateEdit()
        for edit in (self.start_edit, self.end_edit):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
        today = pd.Timestamp.today().normalize()
        self.set_dates(today - pd.DateOffset(years=10), today)  # until prices say otherwise
        self.start_edit.setToolTip(
            "The portfolio is formed at this date's close (each rebalance uses only data up "
            "to its own date)"
        )
        self.rebalance_combo = QComboBox()
        for key, label in REBALANCE_CHOICES:
            self.rebalance_combo.addItem(label, key)
        self.rebalance_combo.setCurrentIndex(1)
        self.band_spin = QDoubleSpinBox()
        self.band_spin.setRange(0.5, 50.0)
        self.band_spin.setDecimals(1)
        self.band_spin.setSingleStep(0.5)
        self.band_spin.setSuffix(" %")
        self.band_spin.setValue(5.0)
        self.band_spin.setToolTip(
            "With band rebalancing: trade back to the target when any weight is this far from it"
        )
        self.rebalance_combo.currentIndexChanged.connect(lambda _i: self._update_enabled())
        self.cost_spin = QDoubleSpinBox()
        self.cost_spin.setRange(0.0, 500.0)
        self.cost_spin.setDecimals(1)
        self.cost_spin.setSuffix(" bps")
        self.cost_spin.setToolTip("Cost per unit of traded value, buys and sells (5 bps = 0.05%)")
        self.lookback_spin = QDoubleSpinBox()
        self.lookback_spin.setRange(0.5, 30.0)
        self.lookback_spin.setDecimals(1)
        self.lookback_spin.setSingleStep(0.5)
        self.lookback_spin.setSuffix(" years")
        self.lookback_spin.setValue(3.0)
        self.lookback_spin.setToolTip(
            "Trailing window the covariance and expected returns are re-estimated on at "
            "every rebalance"
        )
        self.returns_combo = QComboBox()
        for key, label in RETURN_CHOICES:
            self.returns_combo.addItem(label, key)
        self.returns_combo.setToolTip(
            "Expected returns of max Sharpe, from the trailing window only: each fund's mean "
            "excess return, its exponentially weighted mean, or the exposure types' mean "
            "projected through the fund map (long history for new stacked funds)"
        )
        self.synthetic_check = QCheckBox("Synthesise history before inception")
        self.synthetic_check.setToolTip(
            "Before a fund's first price, use the returns its exposures imply, built from the "
            "loaded proxy ETF prices (VTI, IEF, GLD, ...), net of its costs. The funds and "
            "dates that used it are listed with the fit of synthetic vs real returns."
        )
        self.leverage_check = QCheckBox("Allow leveraged and stacked funds")
        self.leverage_check.setChecked(True)
        self.leverage_check.setToolTip(
            "Unticked: the optimizing strategies leave out funds with more than 100% notional "
            "(RSSB, NTSX, SSO, ...) and risk parity is not levered to a target volatility"
        )
        for combo in (self.rebalance_combo, self.returns_combo):
            # Long labels must not widen the panel; the popup still shows them in full.
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(10)
        settings = QGroupBox("Settings")
        form = QFormLayout(settings)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Start", self.start_edit)
        form.addRow("End", self.end_edit)
        form.addRow("Rebalance", self.rebalance_combo)
        form.addRow("Band width", self.band_spin)
        form.addRow("Costs", self.cost_spin)
        form.addRow("Lookback", self.lookback_spin)
        form.addRow("Returns", self.returns_combo)
        form.addRow(self.synthetic_check)
        form.addRow(self.leverage_check)

        self.universe_label = QLabel()
        self.universe_label.setWordWrap(True)
        self.universe_label.setStyleSheet("color: #555;")
        self.run_button = QPushButton("Run backtest")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()

        panel = QWidget()
        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 6, 0)
        column.addWidget(strategies)
        column.addWidget(settings)
        column.addWidget(self.universe_label)
        column.addLayout(buttons)
        column.addWidget(self.progress)
        column.addWidget(self.status)
        column.addWidget(self.error)
        column.addStretch(1)
        self.settings_scroll = QScrollArea()
        self.settings_scroll.setWidget(panel)
        self.settings_scroll.setWidgetResizable(True)
        self.settings_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.settings_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.settings_scroll.setMinimumWidth(280)
        self.settings_scroll.setMaximumWidth(340)

    def _build_results_panel(self) -> None:
        # Page 0: no prices yet.
        self.no_data_label = QLabel(NO_DATA_TEXT)
        self.no_data_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_data_label.setWordWrap(True)
        self.no_data_label.setStyleSheet("color: #555; font-size: 14px;")
        self.market_data_button = QPushButton("Market data...")
        self.market_data_button.clicked.connect(self.open_market_data)
        empty = QWidget()
        empty_layout = QVBoxLayout(empty)
        empty_layout.addStretch(1)
        empty_layout.addWidget(self.no_data_label)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.market_data_button)
        row.addStretch(1)
        empty_layout.addLayout(row)
        empty_layout.addStretch(2)

        # Page 1: plots, statistics, notes.
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold;")
        self.title.setWordWrap(True)
        self.log_check = QCheckBox("Log scale")
        self.log_check.setChecked(True)
        self.log_check.setToolTip("Equal heights are equal percentage moves")
        self.log_check.toggled.connect(self.set_log_scale)
        self.export_button = QPushButton("Export CSV...")
        self.export_button.setToolTip(
            "Equity curves, the statistics table, and each strategy's weights, exposures and "
            "costs over time, as CSV files"
        )
        self.export_button.clicked.connect(lambda: self.export_csv())
        self.export_button.setEnabled(False)
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.log_check)
        header.addWidget(self.export_button)

        self.plot = EquityPlot()
        self.plot.set_log_scale(True)
        self.model = BacktestStatsModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # The strategy column takes what the numbers leave (long names elide; tooltip).
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        head.setStretchLastSection(False)
        head.setMinimumSectionSize(48)
        self.notes = QTextBrowser()
        self.notes.setOpenLinks(False)
        self.notes.setStyleSheet("QTextBrowser { background: #fafafa; }")

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.plot)
        split.addWidget(self.table)
        split.addWidget(self.notes)
        split.setStretchFactor(0, 5)
        split.setStretchFactor(1, 2)
        split.setStretchFactor(2, 1)
        split.setSizes([430, 200, 90])
        split.setChildrenCollapsible(False)
        self.results_split = split
        results = QWidget()
        results_layout = QVBoxLayout(results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.addLayout(header)
        results_layout.addWidget(split, 1)

        self.pages = QStackedWidget()
        self.pages.addWidget(empty)
        self.pages.addWidget(results)

    # ------------------------------------------------------------- settings
    def settings(self) -> BacktestSettings:
        """The settings as chosen in the panel (validated)."""
        settings = BacktestSettings(
            strategies=tuple(k for k, box in self.strategy_boxes.items() if box.isChecked()),
            start=pd.Timestamp(self.start_edit.date().toPython()),
            end=pd.Timestamp(self.end_edit.date().toPython()),
            rebalance=str(self.rebalance_combo.currentData()),
            band=float(self.band_spin.value()) / 100.0,
            transaction_cost_bps=float(self.cost_spin.value()),
            lookback_years=float(self.lookback_spin.value()),
            return_method=str(self.returns_combo.currentData()),
            synthetic_history=self.synthetic_check.isChecked(),
            allow_leveraged=self.leverage_check.isChecked(),
        )
        settings.validate()
        return settings

    def set_strategies(self, keys: Sequence[str]) -> None:
        """Tick exactly ``keys`` (core strategy keys, see :data:`STRATEGY_CHOICES`)."""
        unknown = set(keys) - set(self.strategy_boxes)
        if unknown:
            raise ValueError(f"unknown strategies: {sorted(unknown)}")
        for key, box in self.strategy_boxes.items():
            box.setChecked(key in keys)

    def set_dates(self, start: Any, end: Any) -> None:
        for edit, value in ((self.start_edit, start), (self.end_edit, end)):
            d = pd.Timestamp(value)
            edit.setDate(QDate(d.year, d.month, d.day))

    def set_rebalance(self, rule: str) -> None:
        self.rebalance_combo.setCurrentIndex(self.rebalance_combo.findData(rule))

    @Slot()
    def _reset_costs(self) -> None:
        self.cost_spin.setValue(float(self.session.workspace.constraints.transaction_cost_bps))

    # --------------------------------------------------------------- state
    @property
    def running(self) -> bool:
        return self.worker is not None

    def _update_enabled(self) -> None:
        has_data = self.session.market_data is not None
        any_strategy = any(b.isChecked() for b in self.strategy_boxes.values())
        self.run_button.setEnabled(has_data and not self.running and any_strategy)
        if not has_data:
            self.run_button.setToolTip(NO_DATA_TEXT)
        elif not any_strategy:
            self.run_button.setToolTip("Tick at least one strategy")
        else:
            self.run_button.setToolTip("Backtest the ticked strategies on the solver thread")
        self.cancel_button.setEnabled(self.running)
        self.band_spin.setEnabled(self.rebalance_combo.currentData() == "band")
        self.export_button.setEnabled(bool(self.results) and not self.running)
        for widget in (*self.strategy_boxes.values(), self.start_edit, self.end_edit):
            widget.setEnabled(not self.running)

    @Slot()
    def _workspace_changed(self) -> None:
        ws = self.session.workspace
        held = ws.portfolio.symbols
        self.universe_label.setText(
            f"Universe: the {len(held)} held funds"
            + (f" ({', '.join(held[:8])}{', ...' if len(held) > 8 else ''})" if held else "")
            + ". Constraints: the Constraints tab's."
        )
        if self.results and not self.running:
            self._mark_stale()

    @Slot()
    def _market_data_changed(self) -> None:
        md = self.session.market_data
        self._workspace_changed()
        if md is None:
            self.pages.setCurrentIndex(0)
            self._update_enabled()
            return
        self.pages.setCurrentIndex(1)
        index = pd.DatetimeIndex(md.prices.index)
        if len(index) and self._dates_for != id(md.prices):
            self._dates_for = id(md.prices)
            first, last = index[0], index[-1]
            lo, hi = (
                QDate(first.year, first.month, first.day),
                QDate(last.year, last.month, last.day),
            )
            for edit in (self.start_edit, self.end_edit):
                edit.setDateRange(lo, hi)
            default_start = max(first + pd.DateOffset(years=4), last - pd.DateOffset(years=10))
            self.set_dates(min(default_start, last), last)
        if not self.results:
            self.plot.show_message("Tick strategies and press Run backtest")
            self.title.setText("No backtest run yet")
        elif not self.running:
            self._mark_stale()
        self._update_enabled()

    def _mark_stale(self) -> None:
        if not self._stale:
            self._stale = True
            self.status.setStyleSheet("color: #8a5300;")
            self.status.setText(
                "The workspace or the prices changed since this run: run again to update."
            )

    def _set_status(self, text: str) -> None:
        self.status.setStyleSheet("")
        self.status.setText(text)

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    # ----------------------------------------------------------------- run
    def run(self) -> IterWorker | None:
        """Start a backtest of the ticked strategies; returns the job (None if refused)."""
        if self.running:
            return None
        md = self.session.market_data
        if md is None:
            self._show_error(NO_DATA_TEXT)
            return None
        try:
            settings = self.settings()
            inputs = backtest_inputs(self.session.workspace, md.prices, settings)
        except StackOptError as exc:
            self._show_error(str(exc))
            return None
        self._show_error("")
        self.results = []
        self.errors = []
        self._keys = {}
        self._stale = False
        self._run_settings = settings
        self._run_notes = list(inputs.notes)
        self.model.clear()
        self.plot.show_message("Running...")
        self.title.setText(f"Backtesting {settings.start:%Y-%m-%d} to {settings.end:%Y-%m-%d}")
        self.notes.clear()
        worker = IterWorker(lambda: iter_backtests(inputs, settings), total=0)
        worker.signals.partial.connect(self._on_item)
        worker.signals.finished.connect(self._on_finished)
        worker.signals.failed.connect(self._on_failed)
        worker.signals.cancelled.connect(self._on_cancelled)
        self.worker = worker
        self._started = time.monotonic()
        self.progress.setValue(0)
        self.progress.show()
        self._set_status(f"Preparing {len(settings.strategies)} strategies...")
        self._update_enabled()
        self.solver.start(worker)
        return worker

    @Slot()
    def cancel(self) -> None:
        """Stop the running job at its next rebalance date."""
        if self.worker is not None:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self._set_status("Cancelling...")

    def _mine(self) -> bool:
        """True when the signal being handled comes from the current job."""
        return self.worker is not None and self.sender() is self.worker.signals

    @Slot(object)
    def _on_item(self, item: object) -> None:
        if not self._mine():
            return
        if isinstance(item, StrategyTick):
            if self.worker is not None and self.worker.cancel_requested:
                return  # queued before the cancel: the status says "Cancelling..."
            self.progress.setValue(int(round(1000 * item.fraction)))
            self._set_status(
                f"{item.name} ({item.index + 1} of {item.count}): {item.date:%Y-%m-%d}"
            )
        elif isinstance(item, StrategyDone):
            self.progress.setValue(int(round(1000 * (item.index + 1) / item.count)))
            if item.result is not None:
                self.results.append(item.result)
                self._keys[item.result.name] = item.key
                self.plot.add_curve(self._curve(item.result))
            else:
                self.errors.append((item.name, item.error))
            self._show_results()

    def _finish(self, text: str, outcome: str) -> None:
        self.worker = None
        self.progress.hide()
        self._set_status(text)
        self._update_enabled()
        self.backtest_finished.emit(outcome)

    @Slot(object)
    def _on_finished(self, _items: object) -> None:
        if not self._mine():
            return
        seconds = time.monotonic() - self._started
        done = len(self.results)
        text = f"Backtested {done} strateg{'y' if done == 1 else 'ies'} in {seconds:.1f} s."
        if self.errors:
            text += f" {len(self.errors)} could not run (see the notes)."
        if not self.results:
            self.plot.show_message("No strategy could be backtested: see the notes below.")
        self._finish(text, "finished")

    @Slot()
    def _on_cancelled(self) -> None:
        if not self._mine():
            return
        done = len(self.results)
        if not self.results:
            self.plot.show_message("Cancelled")
            self.title.setText("Backtest cancelled")
        self._finish(
            f"Cancelled; showing the {done} strateg{'y' if done == 1 else 'ies'} that finished."
            if done
            else "Cancelled before any strategy finished.",
            "cancelled",
        )

    @Slot(object)
    def _on_failed(self, exc: object) -> None:
        if not self._mine():
            return
        self.plot.show_message("The backtest stopped: see the message on the left.")
        self.title.setText("Backtest stopped")
        expected = isinstance(exc, StackOptError)
        self._show_error(str(exc) if expected else f"Unexpected error: {type(exc).__name__}: {exc}")
        self._finish("The backtest stopped.", "failed")
        if not expected and isinstance(exc, BaseException):
            # a bug: a dialog with the traceback to copy into a report
            show_exception(type(exc), exc, exc.__traceback__, self)

    # ------------------------------------------------------------- results
    def _color(self, name: str) -> QColor:
        key = self._keys.get(name)
        return QColor(*_CHOICE[key].color) if key in _CHOICE else QColor(52, 101, 164)

    def _curve(self, result: BacktestResult) -> Curve:
        return Curve(
            result.name,
            result.equity_curve,
            self._color(result.name),
            dashed=self._keys.get(result.name) == _BENCHMARK,
        )

    def benchmark(self) -> BacktestResult | None:
        """The 60/40 result of the last run, if it was run and succeeded."""
        return next((r for r in self.results if self._keys.get(r.name) == _BENCHMARK), None)

    def comparison(self) -> pd.DataFrame:
        """:func:`core.backtest.compare` of the last run's results (benchmark first)."""
        bench = self.benchmark()
        others = [r for r in self.results if r is not bench]
        return compare(others, bench)

    def _show_results(self) -> None:
        settings = self._run_settings
        if self.results:
            try:
                table = self.comparison()
            except StackOptError as exc:
                self._show_error(f"Cannot compare the results: {exc}")
                table = pd.DataFrame()
            bench = self.benchmark()
            self.model.set_table(
                table,
                {r.name: self._color(r.name) for r in self.results},
                bench.name if bench is not None else None,
            )
            self._fit_table_height()
            first = self.results[0]
            if settings is not None:
                self.title.setText(
                    f"{first.start:%Y-%m-%d} to {first.end:%Y-%m-%d}: {settings.describe()}"
                )
        self.notes.setHtml(self._notes_html())

    def _fit_table_height(self) -> None:
        """Give the table the height of its rows; the plots and notes share the rest."""
        sizes = self.results_split.sizes()
        total = sum(sizes)
        if total <= 0:
            return
        rows = max(self.model.rowCount(), 2)
        wanted = (
            self.table.horizontalHeader().height()
            + rows * self.table.verticalHeader().defaultSectionSize()
            + 2 * self.table.frameWidth()
            + 4
        )
        table = min(wanted, total // 3)
        notes = max(sizes[2], min(140, total // 5))
        self.results_split.setSizes([max(total - table - notes, 100), table, notes])

    def _notes_html(self) -> str:
        parts: list[str] = []
        for name, message in self.errors:
            parts.append(
                f"<p style='color:#b00020'><b>{html.escape(name)} could not run:</b> "
                f"{html.escape(message)}</p>"
            )
        synthetic: dict[str, tuple[pd.Timestamp, pd.Timestamp, Any]] = {}
        for result in self.results:
            for sym, (first, last) in result.synthetic_periods.items():
                old = synthetic.get(sym)
                if old is not None:
                    first, last = min(first, old[0]), max(last, old[1])
                synthetic[sym] = (first, last, result.synthetic_fit.get(sym))
        if synthetic:
            lines = []
            for sym, (first, last, fit) in sorted(synthetic.items()):
                line = f"<b>{html.escape(sym)}</b>: synthetic {first:%Y-%m-%d} to {last:%Y-%m-%d}"
                real = getattr(fit, "first_real_return", None)
                if real is not None:
                    line += f", real from {pd.Timestamp(real):%Y-%m-%d}"
                line += f"; {html.escape(_fit_text(fit))}" if fit is not None else "; no fit"
                lines.append(line)
            parts.append(
                "<p><b>Synthetic history before inception</b> (returns implied by each fund's "
                "exposures, from the proxy ETFs, over the backtest and its estimation window; "
                "the fit compares them with the fund's real returns where both exist):<br>"
                + "<br>".join(lines)
                + "</p>"
            )
        seen: list[str] = list(self._run_notes)
        for result in self.results:
            for note in result.notes:
                if note not in seen:
                    seen.append(note)
        if seen:
            parts.append("<p><b>Notes</b><br>" + "<br>".join(html.escape(n) for n in seen) + "</p>")
        return "".join(parts)

    @Slot(bool)
    def set_log_scale(self, on: bool) -> None:
        self.plot.set_log_scale(on)
        if self.log_check.isChecked() != on:
            self.log_check.setChecked(on)

    # --------------------------------------------------------------- export
    def export_csv(self, path: str | Path | None = None) -> list[Path]:
        """Ask for a file name (unless given) and write the results as CSV.

        Returns the files written (empty when cancelled or on an error, which is shown).
        """
        if not self.results:
            return []
        if path is None:
            suggested = str(Path(last_folder()) / "backtest.csv")
            chosen, _ = QFileDialog.getSaveFileName(
                self, "Export backtest results", suggested, "CSV files (*.csv)"
            )
            if not chosen:
                return []
            path = chosen if chosen.lower().endswith(".csv") else chosen + ".csv"
        try:
            written = export_backtests(path, self.results, self.model.table)
        except (StackOptError, OSError) as exc:
            self._show_error(f"Could not export: {exc}")
            return []
        remember_folder(path)
        self._show_error("")
        extra = len(written) - 2
        self._set_status(
            f"Exported {written[0].name}, {written[1].name} and {extra} per-strategy "
            f"file{'' if extra == 1 else 's'} to {written[0].parent}."
        )
        return written

    # ----------------------------------------------------------- market data
    def open_market_data(self) -> None:
        """The main window's Market data dialog (or one of the tab's own when alone)."""
        show = getattr(self.window(), "show_market_data", None)
        if callable(show):
            show()
            return
        if self._market_dialog is None:
            from desktop.market_data_dialog import MarketDataDialog

            self._market_dialog = MarketDataDialog(self.session, self)
        self._market_dialog.show()
        self._market_dialog.raise_()

    # -------------------------------------------------------------- closing
    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel the running job and wait for the solver thread (on close)."""
        if self.worker is not None:
            self.worker.cancel()
        if self._own_solver:
            return self.solver.shutdown(timeout_ms)
        worker = self.worker
        return worker.done.wait(timeout_ms / 1000) if worker is not None else True

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)


def _fit_text(fit: Any) -> str:
    """``R^2 0.977, tracking error 2.3%/yr over 140 weekly periods`` (or describe())."""
    r2 = getattr(fit, "r_squared", math.nan)
    te = getattr(fit, "tracking_error_annual", math.nan)
    if not getattr(fit, "has_overlap", False) or not math.isfinite(r2):
        return str(fit.describe())
    return (
        f"fit R\u00b2 {r2:.3f}, tracking error {te:.1%}/yr over {fit.n_obs} {fit.frequency} "
        f"periods ({fit.start:%Y-%m-%d} to {fit.end:%Y-%m-%d})"
    )


__all__ = [
    "NO_DATA_TEXT",
    "STRATEGY_CHOICES",
    "BacktestInputs",
    "BacktestSettings",
    "BacktestTab",
    "StrategyChoice",
    "StrategyDone",
    "StrategyTick",
    "backtest_inputs",
    "export_backtests",
    "iter_backtests",
]
