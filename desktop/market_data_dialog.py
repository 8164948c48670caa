"""Market data: load price history, see its coverage and problems, choose the estimators.

Nothing here is needed offline: with no price history StackOpt uses the built-in
exposure-level assumptions (``resources/market_assumptions.json``). Loaded prices stay in
the session (they are market data, not part of a portfolio file); the estimator settings
are workspace settings, changed through undo commands.

Reading a large CSV and checking it take a second or two, so both run on a worker
thread; the dialog shows progress text and stays responsive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.errors import StackOptError
from core.market_data import check_data_quality, read_prices
from core.optimization.estimators import COVARIANCE_METHODS, RETURN_METHODS
from desktop.dialogs import last_folder, remember_folder
from desktop.models.market_data_model import (
    CoverageModel,
    IssuesModel,
    coverage,
    latest_prices,
)
from desktop.session import MarketData, Session
from desktop.undo_commands import SetPricesCommand, SetSettingsCommand

PRICE_FILTER = "Price history (*.csv *.csv.gz *.gz *.zip *.txt);;All files (*)"
#: Methods that need no price history.
OFFLINE_METHODS = {"exposure_model", "user"}

METHOD_LABELS = {
    "historical": "Historical mean",
    "ewma": "Exponentially weighted",
    "capm": "CAPM",
    "equilibrium": "Equilibrium (reverse optimization)",
    "exposure_model": "Exposure model (built-in assumptions)",
    "user": "User assumptions",
    "sample": "Sample covariance",
    "ledoit_wolf": "Ledoit-Wolf shrinkage",
    "oas": "Oracle approximating shrinkage",
    "constant_correlation": "Constant-correlation shrinkage",
}


class _LoadSignals(QObject):
    finished = Signal(object)
    failed = Signal(object)


class _LoadWorker(QRunnable):
    """Read and check price files off the GUI thread (never touches a widget)."""

    def __init__(self, load: Callable[[], MarketData]):
        super().__init__()
        self.signals = _LoadSignals()
        self._load = load

    def run(self) -> None:
        try:
            result = self._load()
        except Exception as exc:  # forwarded to the GUI thread, shown there
            self.signals.failed.emit(exc)
            return
        self.signals.finished.emit(result)


_START_AFTER_PAINT_MS = 40


def load_market_data(paths: Sequence[str | Path]) -> MarketData:
    """Read price files (core.market_data.read_prices) and check them (check_data_quality)."""
    sources = [str(p) for p in paths]
    prices = read_prices(sources if len(sources) > 1 else sources[0])
    report = check_data_quality(prices)
    data = MarketData(prices=prices, sources=sources, report=report)
    data.column_span  # noqa: B018  (computed here, on the worker, not on the GUI thread)
    return data


class MarketDataDialog(QDialog):
    """Non-modal window: price files, coverage per symbol, data warnings, estimator settings.

    Signals
    -------
    loading_failed(str)
        A file could not be read; the message names the file, row and column.
    """

    loading_failed = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Market data")
        self.resize(1040, 660)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._workers: list[_LoadWorker] = []
        self._pending: list[_LoadWorker] = []  # waiting for the dialog to paint first
        self._start_timer = QTimer(self)
        self._start_timer.setSingleShot(True)
        self._start_timer.timeout.connect(self._start_pending)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        self.load_button = QPushButton("Load price CSV...")
        self.load_button.setToolTip(
            "A wide table (date, then one column per ticker) or Yahoo-style files "
            "(Date, Open, High, Low, Close, Adj Close, Volume); .gz and .zip too. You can "
            "also drop files onto the main window."
        )
        self.use_prices_button = QPushButton("Use latest prices for holdings")
        self.use_prices_button.setToolTip(
            "Set the price of every holding found in the history to its last price (undoable)"
        )
        self.forget_button = QPushButton("Forget loaded prices")
        self.load_button.clicked.connect(lambda: self.choose_files())
        self.use_prices_button.clicked.connect(self.use_latest_prices)
        self.forget_button.clicked.connect(lambda: self.session.set_market_data(None))
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.use_prices_button)
        buttons.addWidget(self.forget_button)
        buttons.addStretch(1)

        self.coverage_model = CoverageModel(self)
        self.coverage_view = self._table(self.coverage_model)
        self.issues_model = IssuesModel(self)
        self.issues_view = self._table(self.issues_model)
        self.issues_view.horizontalHeader().setStretchLastSection(True)
        # One line per issue; the tooltip has the whole message.
        self.issues_view.setWordWrap(False)
        self.issues_view.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.coverage_view.horizontalHeader().setStretchLastSection(True)
        cov_box = QGroupBox("Coverage per symbol")
        QVBoxLayout(cov_box).addWidget(self.coverage_view)
        issues_box = QGroupBox("Data warnings")
        QVBoxLayout(issues_box).addWidget(self.issues_view)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(cov_box)
        split.addWidget(issues_box)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([450, 590])

        # Estimator settings (workspace settings; undoable).
        self.return_method = QComboBox()
        for m in RETURN_METHODS:
            self.return_method.addItem(METHOD_LABELS.get(m, m), m)
        self.covariance_method = QComboBox()
        for m in COVARIANCE_METHODS:
            self.covariance_method.addItem(METHOD_LABELS.get(m, m), m)
        self.lookback = QDoubleSpinBox()
        self.lookback.setRange(0.5, 100.0)
        self.lookback.setDecimals(1)
        self.lookback.setSingleStep(1.0)
        self.lookback.setSuffix(" years")
        self.lookback.setKeyboardTracking(False)
        self.frequency = QComboBox()
        for f in ("daily", "weekly", "monthly"):
            self.frequency.addItem(f.title(), f)
        self.settings_note = QLabel()
        self.settings_note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Expected returns", self.return_method)
        form.addRow("Covariance", self.covariance_method)
        form.addRow("Lookback", self.lookback)
        form.addRow("Return frequency", self.frequency)
        settings_box = QGroupBox("Estimator settings (saved in the workspace)")
        settings_layout = QVBoxLayout(settings_box)
        settings_layout.addLayout(form)
        settings_layout.addWidget(self.settings_note)
        self.return_method.activated.connect(lambda _i: self._setting_edited())
        self.covariance_method.activated.connect(lambda _i: self._setting_edited())
        self.frequency.activated.connect(lambda _i: self._setting_edited())
        self.lookback.valueChanged.connect(lambda _v: self._setting_edited())

        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        layout.addWidget(self.error)
        layout.addWidget(split, 1)
        layout.addWidget(settings_box)
        layout.addWidget(close)

        session.market_data_changed.connect(self.refresh)
        session.portfolio_changed.connect(self.refresh)
        session.workspace_replaced.connect(self.refresh)
        session.settings_changed.connect(self.refresh_settings)
        session.workspace_replaced.connect(self.refresh_settings)
        self.refresh()
        self.refresh_settings()

    @staticmethod
    def _table(model: Any) -> QTableView:
        view = QTableView()
        view.setModel(model)
        view.setAlternatingRowColors(True)
        view.verticalHeader().setVisible(False)
        view.verticalHeader().setDefaultSectionSize(22)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # size columns from the first rows only: measuring all of 500 symbols' rows on
        # every change blocked the window for a tenth of a second
        header.setResizeContentsPrecision(40)
        return view

    # --------------------------------------------------------------- loading
    def choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Load price history", last_folder(), PRICE_FILTER
        )
        if paths:
            remember_folder(paths[0])
            self.load_files(paths)

    def load_files(self, paths: Sequence[str | Path]) -> None:
        """Read ``paths`` on the worker thread; ``session.market_data_changed`` on success."""
        paths = [str(p) for p in paths]
        self.error.hide()
        self.status.setText(f"Reading {', '.join(Path(p).name for p in paths)} ...")
        self.load_button.setEnabled(False)
        worker = _LoadWorker(lambda: load_market_data(paths))
        worker.setAutoDelete(False)  # kept until its signal has been handled
        worker.signals.finished.connect(self._loaded)
        worker.signals.failed.connect(self._failed)
        self._workers.append(worker)
        # Start a frame later, once the dialog has painted (its first paint, the "Reading"
        # line): painting takes the GIL for every cell, and with the parser competing for
        # it a freshly shown dialog waited 0.1-0.3 s for its first frame (0.05 s after).
        self._pending.append(worker)
        self._start_timer.start(_START_AFTER_PAINT_MS)

    def _start_pending(self) -> None:
        pending, self._pending = self._pending, []
        for worker in pending:
            self._pool.start(worker)

    @Slot(object)
    def _loaded(self, market_data: MarketData) -> None:
        self._workers = [w for w in self._workers if w.signals is not self.sender()]
        self.load_button.setEnabled(True)
        self.session.set_market_data(market_data)

    @Slot(object)
    def _failed(self, exc: BaseException) -> None:
        self._workers = [w for w in self._workers if w.signals is not self.sender()]
        self.load_button.setEnabled(True)
        if not isinstance(exc, StackOptError | OSError):
            raise exc  # a bug: the exception hook shows it with details
        message = f"Could not load prices: {exc}"
        self.error.setText(message)
        self.error.show()
        self.refresh()
        self.loading_failed.emit(message)

    def wait_for_loading(self, msecs: int = 30_000) -> bool:
        """Block until the worker is done (for closing and tests)."""
        self._start_timer.stop()
        self._start_pending()
        return self._pool.waitForDone(msecs)

    # --------------------------------------------------------------- refresh
    def refresh(self) -> None:
        md = self.session.market_data
        held = set(self.session.workspace.portfolio.symbols)
        self.coverage_model.set_rows(coverage(md, held))
        self.issues_model.set_issues(md.report.issues if md is not None else [], held)
        self.use_prices_button.setEnabled(md is not None)
        self.forget_button.setEnabled(md is not None)
        if md is None:
            self.status.setText(
                "No price history loaded. StackOpt uses its built-in exposure-level market "
                "assumptions, so everything works offline. Load prices to estimate from "
                "history, to fit fund exposures, or to update the holdings' prices."
            )
            return
        prices = md.prices
        files = ", ".join(Path(s).name for s in md.sources)
        missing = sorted(held - set(prices.columns))
        text = (
            f"{prices.shape[1]} symbols from {files}: {prices.index[0]:%Y-%m-%d} to "
            f"{prices.index[-1]:%Y-%m-%d}. "
            f"{len(md.report.issues)} data warning(s)."
        )
        if missing:
            text += f" No history for held {', '.join(missing)}."
        self.status.setText(text)
        self.refresh_settings()

    def refresh_settings(self) -> None:
        ws = self.session.workspace
        for combo, key in (
            (self.return_method, "return_method"),
            (self.covariance_method, "covariance_method"),
            (self.frequency, "frequency"),
        ):
            i = combo.findData(ws.setting(key))
            combo.blockSignals(True)
            combo.setCurrentIndex(max(i, 0))
            combo.blockSignals(False)
        self.lookback.blockSignals(True)
        self.lookback.setValue(float(ws.setting("lookback_years")))
        self.lookback.blockSignals(False)
        needs_history = {ws.setting("return_method"), ws.setting("covariance_method")}
        needs_history -= OFFLINE_METHODS
        if needs_history and self.session.market_data is None:
            self.settings_note.setStyleSheet("color: #8a5300;")
            self.settings_note.setText(
                f"{', '.join(METHOD_LABELS.get(m, m) for m in sorted(needs_history))} needs "
                "price history: load prices, or choose the exposure model to work offline."
            )
        else:
            self.settings_note.setStyleSheet("color: #555;")
            self.settings_note.setText(
                "The exposure model works offline from the built-in assumptions; the other "
                "methods estimate from the loaded prices over the lookback window."
            )

    def _setting_edited(self) -> None:
        ws = self.session.workspace
        wanted = {
            "return_method": self.return_method.currentData(),
            "covariance_method": self.covariance_method.currentData(),
            "lookback_years": round(float(self.lookback.value()), 1),
            "frequency": self.frequency.currentData(),
        }
        changes = {k: v for k, v in wanted.items() if ws.setting(k) != v}
        if not changes:
            return
        what = ", ".join(k.replace("_", " ") for k in changes)
        try:
            command = SetSettingsCommand(self.session, changes, f"change {what}")
        except StackOptError as exc:
            self.error.setText(str(exc))
            self.error.show()
            self.refresh_settings()
            return
        self.session.undo_stack.push(command)

    def use_latest_prices(self) -> None:
        md = self.session.market_data
        if md is None:
            return
        symbols = self.session.workspace.portfolio.symbols
        prices, date = latest_prices(md, symbols)
        if not prices:
            self.error.setText("None of the holdings has a price in the loaded history.")
            self.error.show()
            return
        source = "last prices in " + ", ".join(Path(s).name for s in md.sources)
        self.session.undo_stack.push(SetPricesCommand(self.session, prices, date or None, source))
        self.status.setText(
            f"Updated the prices of {len(prices)} holding(s) to {date} closes (Undo reverts)."
        )

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.wait_for_loading(5000)
        super().closeEvent(event)
