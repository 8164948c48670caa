"""The main window: five tabs over one :class:`~desktop.session.Session`.

File handling lives here: New/Open/Save/Save As/recent files (with the unsaved-changes
question), drag-and-drop of workspaces, holdings and price files, autosave and crash
recovery, and the status bar (workspace name, unsaved state, total value and notional).
UI preferences (geometry, last folder, recent files, last tab) go to QSettings.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
)

from core.errors import StackOptError
from core.exposures import FundExposureMap
from core.optimization.constraints import OptimizationConstraints
from core.portfolio import Portfolio
from core.workspace import WORKSPACE_SUFFIX, Workspace, find_autosave
from desktop.autosave import AutosaveManager
from desktop.dialogs import (
    app_settings,
    ask_save_changes,
    last_folder,
    remember_folder,
    show_error,
)
from desktop.formatting import money, percent
from desktop.holdings_import import looks_like_holdings
from desktop.market_data_dialog import MarketDataDialog
from desktop.session import Session
from desktop.tabs.backtest_tab import BacktestTab
from desktop.tabs.constraints_tab import ConstraintsTab
from desktop.tabs.fund_exposures_tab import FundExposuresTab
from desktop.tabs.holdings_tab import HoldingsTab
from desktop.tabs.results_tab import ResultsTab
from desktop.tabs.views_tab import ViewsTab
from desktop.undo_commands import RenameWorkspaceCommand
from desktop.workers import SolverThread

FILE_FILTER = "StackOpt workspace (*.stackopt.json *.json);;All files (*)"
MAX_RECENT = 8
_PRICE_SUFFIXES = (".csv", ".txt", ".gz", ".zip")


def new_workspace() -> Workspace:
    """An empty workspace: no holdings, the built-in fund map, default constraints."""
    return Workspace(
        name="Untitled",
        portfolio=Portfolio(),
        fund_map=FundExposureMap.default(),
        constraints=OptimizationConstraints(),
    )


class MainWindow(QMainWindow):
    """Tabs Holdings, Fund Exposures, Constraints, Views, Results, plus menus and status bar.

    Parameters
    ----------
    workspace_path : str, optional
        File to open; the built-in sample workspace when None. A file that cannot be read
        is reported (after the window shows) and the sample opens instead.
    autosave_folder : Path, optional
        Recovery folder (default: the platform's user data folder).
    offer_recovery : bool
        Look for autosaves of a crashed session once the window is shown.
    """

    def __init__(
        self,
        workspace_path: str | None = None,
        *,
        autosave_folder: Path | None = None,
        offer_recovery: bool = True,
    ):
        super().__init__()
        self.setObjectName("main")
        self.setAcceptDrops(True)
        startup_error = ""
        workspace: Workspace | None = None
        path: Path | None = None
        if workspace_path:
            try:
                workspace = Workspace.load(workspace_path)
                path = Path(workspace_path)
            except StackOptError as exc:
                startup_error = str(exc)
        self.session = Session(workspace or Workspace.sample(), self)
        if path is not None:
            self.session.replace(self.session.workspace, path)
            self._add_recent(path)

        self.holdings_tab = HoldingsTab(self.session)
        self.fund_exposures_tab = FundExposuresTab(self.session)
        self.constraints_tab = ConstraintsTab(self.session)
        self.views_tab = ViewsTab(self.session)
        # ONE solver thread for every optimization (cvxpy is not thread-safe).
        self.solver_thread = SolverThread(self)
        self.results_tab = ResultsTab(self.session, solver=self.solver_thread)
        self.results_tab.infeasible.connect(self.constraints_tab.highlight_conflicts)
        self.backtest_tab = BacktestTab(self.session, solver=self.solver_thread)
        self.holdings_model = self.holdings_tab.model
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        for tab, title in (
            (self.holdings_tab, "Holdings"),
            (self.fund_exposures_tab, "Fund Exposures"),
            (self.constraints_tab, "Constraints"),
            (self.views_tab, "Views"),
            (self.results_tab, "Results"),
            (self.backtest_tab, "Backtest"),
        ):
            self.tabs.addTab(tab, title)
        self.setCentralWidget(self.tabs)
        self.market_data_dialog: MarketDataDialog | None = None

        self.status_name = QLabel()
        self.status_dirty = QLabel()
        self.status_value = QLabel()
        self.status_notional = QLabel()
        self.status_dirty.setStyleSheet("color: #b05a00;")
        for label in (self.status_value, self.status_notional):
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            label.setMinimumWidth(130)
        self.statusBar().addWidget(self.status_name)
        self.statusBar().addWidget(self.status_dirty)
        self.statusBar().addPermanentWidget(self.status_value)
        self.statusBar().addPermanentWidget(self.status_notional)

        self.autosave = AutosaveManager(self.session, autosave_folder, parent=self)
        self.autosave.failed.connect(lambda msg: self.statusBar().showMessage(msg, 10_000))
        self.autosave.autosaved.connect(
            lambda _p: self.statusBar().showMessage("Unsaved changes autosaved", 3000)
        )

        self._build_menus()
        for signal in (
            self.session.workspace_replaced,
            self.session.portfolio_changed,
            self.session.fund_map_changed,
            self.session.name_changed,
            self.session.path_changed,
        ):
            signal.connect(self._update_status)
        self.session.dirty_changed.connect(self._update_status)
        self._update_status()

        self.resize(1280, 800)
        settings = app_settings()
        geometry = settings.value("main_window/geometry")
        if isinstance(geometry, QByteArray | bytes) and geometry:
            self.restoreGeometry(geometry)
        tab = settings.value("main_window/tab", 0)
        try:
            self.tabs.setCurrentIndex(int(tab))
        except (TypeError, ValueError):
            pass
        if startup_error:
            QTimer.singleShot(
                0,
                lambda: show_error(
                    self,
                    "Cannot open workspace",
                    f"{startup_error}\n\nStackOpt opened the sample workspace instead.",
                ),
            )
        if offer_recovery:
            QTimer.singleShot(0, self.offer_recovery)

    # ----------------------------------------------------------------- menus
    def _action(self, text: str, slot, shortcut=None, tip: str = "", fallback: str = "") -> QAction:
        action = QAction(text, self)
        if isinstance(shortcut, QKeySequence.StandardKey):
            # Some platforms have no binding for a standard key (Quit, Save As on Windows).
            bindings = QKeySequence.keyBindings(shortcut)
            action.setShortcuts(bindings or ([QKeySequence(fallback)] if fallback else []))
        elif shortcut is not None:
            action.setShortcut(shortcut)
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False, slot=slot: slot())
        return action

    def _build_menus(self) -> None:
        keys = QKeySequence.StandardKey
        file_menu = self.menuBar().addMenu("&File")
        self.new_action = self._action("&New", self.new_file, keys.New)
        self.open_action = self._action("&Open...", self.open_file, keys.Open)
        self.save_action = self._action("&Save", self.save_file, keys.Save)
        self.save_as_action = self._action(
            "Save &As...", self.save_file_as, keys.SaveAs, fallback="Ctrl+Shift+S"
        )
        self.quit_action = self._action("&Quit", self.close, keys.Quit, fallback="Ctrl+Q")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        file_menu.addAction(self.new_action)
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.save_as_action)
        file_menu.addSeparator()
        file_menu.addAction(
            self._action(
                "&Import holdings...",
                lambda: self.holdings_tab.import_file(),
                QKeySequence("Ctrl+I"),
                "Read holdings from a CSV or a broker's positions export",
            )
        )
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)

        edit_menu = self.menuBar().addMenu("&Edit")
        self.undo_action = self.session.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(keys.Undo)
        self.redo_action = self.session.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence(keys.Redo), QKeySequence("Ctrl+Y")])
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        edit_menu.addSeparator()
        edit_menu.addAction(self._action("Rename &workspace...", self.rename_workspace))

        data_menu = self.menuBar().addMenu("&Data")
        data_menu.addAction(
            self._action(
                "&Market data...",
                self.show_market_data,
                QKeySequence("Ctrl+M"),
                "Load price history, see its coverage and warnings, choose estimators",
            )
        )
        data_menu.addAction(
            self._action("&Load price history...", self.load_prices, QKeySequence("Ctrl+L"))
        )

        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("&About StackOpt", self.about))

    # ----------------------------------------------------------- recent files
    def recent_files(self) -> list[str]:
        value = app_settings().value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or []) if v]

    def _add_recent(self, path: Path) -> None:
        text = str(Path(path).resolve())
        files = [text] + [f for f in self.recent_files() if f != text]
        app_settings().setValue("recent_files", files[:MAX_RECENT])

    def _remove_recent(self, path: str) -> None:
        app_settings().setValue("recent_files", [f for f in self.recent_files() if f != path])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        if not files:
            empty = self.recent_menu.addAction("(no recent files)")
            empty.setEnabled(False)
            return
        for i, f in enumerate(files, start=1):
            action = self.recent_menu.addAction(f"&{i} {Path(f).name}")
            action.setToolTip(f)
            action.setStatusTip(f)
            action.triggered.connect(lambda _checked=False, f=f: self.open_recent(f))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear list", lambda: app_settings().remove("recent_files"))

    def open_recent(self, path: str) -> bool:
        if not Path(path).is_file():
            show_error(
                self,
                "File not found",
                f"{path} no longer exists; it was removed from the recent files.",
            )
            self._remove_recent(path)
            return False
        if not self.maybe_save("open another workspace"):
            return False
        return self.open_path(path)

    # ------------------------------------------------------------------ files
    def maybe_save(self, action: str) -> bool:
        """Ask Save / Discard / Cancel when there are unsaved changes; True to go on."""
        if not self.session.is_dirty:
            return True
        answer = ask_save_changes(self, self.session.workspace.name, action)
        if answer == QMessageBox.StandardButton.Save:
            return self.save_file()
        if answer == QMessageBox.StandardButton.Discard:
            self.autosave.discard()
            return True
        return False

    def new_file(self) -> bool:
        if not self.maybe_save("start a new workspace"):
            return False
        self.session.replace(new_workspace(), None)
        return True

    def open_file(self) -> bool:
        if not self.maybe_save("open another workspace"):
            return False
        path, _ = QFileDialog.getOpenFileName(self, "Open workspace", last_folder(), FILE_FILTER)
        if not path:
            return False
        return self.open_path(path)

    def open_path(self, path: str | Path) -> bool:
        """Open a workspace file; on error say why and keep the current workspace."""
        try:
            self.session.open(path)
        except (StackOptError, OSError) as exc:
            where = getattr(exc, "field", None)
            details = f"Field: {where}" if where else ""
            show_error(
                self,
                "Cannot open workspace",
                f"{exc}\n\nThe current workspace is unchanged.",
                details,
            )
            return False
        remember_folder(path)
        self._add_recent(Path(path))
        self.statusBar().showMessage(f"Opened {path}", 5000)
        return True

    def save_file(self) -> bool:
        if self.session.path is None:
            return self.save_file_as()
        return self._save(self.session.path)

    def save_file_as(self) -> bool:
        current = self.session.path
        suggested = (
            str(current)
            if current is not None
            else str(Path(last_folder()) / f"{_safe_stem(self.session.workspace.name)}")
            + WORKSPACE_SUFFIX
        )
        path, _ = QFileDialog.getSaveFileName(self, "Save workspace", suggested, FILE_FILTER)
        if not path:
            return False
        if not path.lower().endswith(".json"):
            path += WORKSPACE_SUFFIX
        return self._save(Path(path))

    def _save(self, path: Path) -> bool:
        try:
            self.session.save(path)
        except (StackOptError, OSError) as exc:
            show_error(
                self, "Cannot save workspace", f"{exc}\n\nNothing was written; your work is kept."
            )
            return False
        remember_folder(path)
        self._add_recent(path)
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def rename_workspace(self) -> None:
        name, ok = QInputDialog.getText(
            self, "Rename workspace", "Workspace name:", text=self.session.workspace.name
        )
        if not ok or name.strip() == self.session.workspace.name:
            return
        try:
            self.session.undo_stack.push(RenameWorkspaceCommand(self.session, name))
        except StackOptError as exc:
            show_error(self, "Cannot rename", str(exc))

    # ------------------------------------------------------------- recovery
    def offer_recovery(self) -> bool:
        """Offer the newest autosave left by a session that did not close normally."""
        try:
            found = find_autosave(self.autosave.folder)
        except OSError:
            return False
        for info in found:
            if info.error:
                answer = QMessageBox.question(
                    self,
                    "Unreadable recovery file",
                    f"A recovery file cannot be read:\n{info.error}\n\nDelete it?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                    QMessageBox.StandardButton.No,
                )
                if answer == QMessageBox.StandardButton.Yes:
                    info.path.unlink(missing_ok=True)
                continue
            if not info.newer_than_source:
                info.path.unlink(missing_ok=True)  # the file was saved after it: stale
                continue
            where = f"\nFile: {info.source}" if info.source else "\n(never saved to a file)"
            answer = QMessageBox.question(
                self,
                "Recover unsaved work?",
                "StackOpt did not close normally last time. Unsaved work was autosaved:\n\n"
                f"'{info.name}', autosaved {info.written_at.replace('T', ' ')} UTC{where}\n\n"
                "Recover it? (No deletes the recovery copy.)",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.Yes,
            )
            if answer != QMessageBox.StandardButton.Yes:
                info.path.unlink(missing_ok=True)
                return False
            try:
                workspace = info.load()
            except StackOptError as exc:
                show_error(self, "Cannot recover", str(exc))
                return False
            source = Path(info.source) if info.source else None
            self.session.replace(workspace, source, dirty=True)
            self.autosave.adopt(info.path)
            self.statusBar().showMessage("Recovered unsaved work: save it to keep it", 10_000)
            return True
        return False

    # ------------------------------------------------------------ market data
    def show_market_data(self) -> MarketDataDialog:
        if self.market_data_dialog is None:
            self.market_data_dialog = MarketDataDialog(self.session, self)
        self.market_data_dialog.show()
        self.market_data_dialog.raise_()
        self.market_data_dialog.activateWindow()
        return self.market_data_dialog

    def load_prices(self) -> None:
        self.show_market_data().choose_files()

    # --------------------------------------------------------- drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        paths = _local_paths(event)
        if paths and all(
            p.lower().endswith((".json", ".xlsx", ".xlsm", *_PRICE_SUFFIXES)) for p in paths
        ):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = _local_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        # After the drop returns: a modal dialog inside a drop handler blocks the source.
        QTimer.singleShot(0, lambda: self.open_dropped(paths))

    def open_dropped(self, paths: list[str]) -> None:
        """A workspace opens; a holdings CSV goes to the import preview; prices load."""
        workspaces = [p for p in paths if p.lower().endswith(".json")]
        if workspaces:
            if self.maybe_save("open another workspace"):
                self.open_path(workspaces[0])
            return
        if len(paths) == 1 and looks_like_holdings(paths[0]):
            self.tabs.setCurrentWidget(self.holdings_tab)
            self.holdings_tab.import_file(paths[0])
            return
        self.show_market_data().load_files(paths)

    # ---------------------------------------------------------------- status
    def _update_status(self, *_args: object) -> None:
        ws = self.session.workspace
        dirty = self.session.is_dirty
        self.status_name.setText(self.session.display_name)
        if dirty:
            self.status_dirty.setText("\u25cf unsaved changes")
        elif self.session.path is None:
            self.status_dirty.setText("not saved to a file")
        else:
            self.status_dirty.setText("saved")
        color = "#b05a00" if dirty else ("#666" if self.session.path is None else "#4e9a06")
        self.status_dirty.setStyleSheet(f"color: {color};")
        model = self.holdings_tab.model
        currency = ws.portfolio.currency
        if model.total_value is not None:
            self.status_value.setText(f"Total {money(model.total_value, currency, 0)}")
            self.status_value.setToolTip("Market value of the holdings plus cash")
        else:
            self.status_value.setText("Total -")
            self.status_value.setToolTip(model.problem)
        if model.total_notional is not None:
            self.status_notional.setText(f"Notional {percent(model.total_notional, 1)}")
        else:
            self.status_notional.setText("Notional -")
        self.setWindowTitle(f"{self.session.display_name}{' *' if dirty else ''} - StackOpt")

    # ------------------------------------------------------------------ close
    def about(self) -> None:
        QMessageBox.about(
            self,
            "About StackOpt",
            "StackOpt: leverage-aware portfolio optimization on the true exposures of "
            "stacked and leveraged funds.",
        )

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if not self.maybe_save("close StackOpt"):
            event.ignore()
            return
        settings = app_settings()
        settings.setValue("main_window/geometry", self.saveGeometry())
        settings.setValue("main_window/tab", self.tabs.currentIndex())
        self.autosave.stop()
        if not self.session.is_dirty:
            self.autosave.discard()
        if self.market_data_dialog is not None:
            self.market_data_dialog.wait_for_loading(5000)
        # Background work must finish before its widgets go (a worker's signals would
        # outlive their receivers).
        for i in range(self.tabs.count()):
            shutdown = getattr(self.tabs.widget(i), "shutdown", None)
            if callable(shutdown):
                shutdown()
        self.solver_thread.shutdown()  # cancel, then wait for the job in progress
        event.accept()
        super().closeEvent(event)


def _local_paths(event: QDragEnterEvent | QDropEvent) -> list[str]:
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]


def _safe_stem(name: str) -> str:
    stem = "".join(c if c.isalnum() or c in " -_" else "_" for c in name).strip()
    return stem[:60] or "workspace"


__all__ = ["MainWindow", "new_workspace"]
