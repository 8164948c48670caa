"""Dialogs shared by the window and the tabs.

- :func:`show_error`: an expected problem (bad file, refused edit) and what to do.
- :func:`show_exception` / :func:`install_exception_hooks`: an unexpected error becomes a
  dialog with copyable details instead of a dead app.
- :func:`ask_save_changes`: Save / Discard / Cancel before work would be lost.
- :class:`AddHoldingDialog`, :class:`HoldingsImportDialog`: the Holdings tab's forms.
"""

from __future__ import annotations

import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtCore import QObject, QSettings, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QRadioButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.brokers import BROKER_NAMES
from desktop.formatting import money, parse_number
from desktop.holdings_import import ParsedImport
from desktop.models.import_preview_model import NAME, ImportPreviewModel
from desktop.session import Session
from desktop.undo_commands import ImportHoldingsCommand, placeholder_fund


def app_settings() -> QSettings:
    """UI preferences (geometry, last folder, recent files): always an INI file.

    The explicit format makes tests isolate it with ``QSettings.setPath(IniFormat, ...)``
    and keeps Windows users out of the registry.
    """
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "StackOpt", "StackOpt")


def last_folder() -> str:
    """The folder of the last file opened or saved (home at first)."""
    folder = str(app_settings().value("main_window/last_folder", "") or "")
    return folder if folder and Path(folder).is_dir() else str(Path.home())


def remember_folder(path: str | Path) -> None:
    app_settings().setValue("main_window/last_folder", str(Path(path).parent))


# ---------------------------------------------------------------- messages
def show_error(parent: QWidget | None, title: str, message: str, details: str = "") -> None:
    """An expected problem (bad file, infeasible constraints): what is wrong, what to do."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(message)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if details:
        box.setDetailedText(details)
    box.exec()


def exception_details(exc_type: type[BaseException], exc: BaseException, tb: Any) -> str:
    """The text a user can paste into a bug report: versions and the traceback."""
    from PySide6 import __version__ as pyside_version

    header = f"StackOpt on Python {sys.version.split()[0]}, PySide6 {pyside_version}\n\n"
    return header + "".join(traceback.format_exception(exc_type, exc, tb))


_showing = threading.local()


def show_exception(
    exc_type: type[BaseException],
    exc: BaseException,
    tb: TracebackType | None,
    parent: QWidget | None = None,
) -> QMessageBox | None:
    """An unexpected error: a dialog with copyable details instead of a dead app.

    Returns the (already closed) message box, or None when there is no application or a
    dialog is already showing (an error inside the error dialog must not recurse).
    """
    if QApplication.instance() is None or getattr(_showing, "active", False):
        return None
    details = exception_details(exc_type, exc, tb)
    box = QMessageBox(parent or QApplication.activeWindow())
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle("Unexpected error")
    box.setText(
        f"StackOpt hit an unexpected error:\n{exc_type.__name__}: {exc}\n\n"
        "Nothing was changed by the step that failed; you can keep working and save. "
        "'Show Details' has the text for a bug report."
    )
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setDetailedText(details)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    copy = box.addButton("Copy details", QMessageBox.ButtonRole.ActionRole)
    # An ActionRole button would close the box; copy and keep it open instead.
    copy.clicked.disconnect()
    copy.clicked.connect(lambda: QApplication.clipboard().setText(details))
    _showing.active = True
    try:
        box.exec()
    finally:
        _showing.active = False
    return box


class _ExceptionRelay(QObject):
    """Carries an exception from any thread to a dialog on the GUI thread."""

    raised = Signal(object, object, object)

    @Slot(object, object, object)
    def show(self, exc_type: Any, exc: Any, tb: Any) -> None:
        show_exception(exc_type, exc, tb)


_relay: _ExceptionRelay | None = None


def install_exception_hooks() -> None:
    """Route uncaught exceptions (GUI thread and worker threads) to :func:`show_exception`.

    The traceback is also printed to stderr. Call once the QApplication exists.
    """
    global _relay
    app = QApplication.instance()
    if app is None:
        raise RuntimeError("create the QApplication before installing the exception hooks")
    _relay = _ExceptionRelay(app)
    _relay.raised.connect(_relay.show, Qt.ConnectionType.QueuedConnection)

    def excepthook(exc_type, exc, tb):
        traceback.print_exception(exc_type, exc, tb)
        if issubclass(exc_type, KeyboardInterrupt):
            QApplication.quit()
            return
        show_exception(exc_type, exc, tb)

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        traceback.print_exception(args.exc_type, args.exc_value, args.exc_traceback)
        if _relay is not None and args.exc_value is not None:
            _relay.raised.emit(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook


# ---------------------------------------------------------------- questions
def ask_save_changes(parent: QWidget | None, name: str, action: str) -> QMessageBox.StandardButton:
    """Ask before unsaved changes are lost: returns Save, Discard or Cancel.

    ``action`` completes "... before you <action>?" ("close", "open another file").
    """
    return QMessageBox.question(
        parent,
        "Unsaved changes",
        f"'{name}' has unsaved changes. Save them before you {action}?",
        QMessageBox.StandardButton.Save
        | QMessageBox.StandardButton.Discard
        | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Save,
    )


# ------------------------------------------------------------ add a holding
class AddHoldingDialog(QDialog):
    """Symbol, shares and (optional) price of a new holding."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Add holding")
        self._session = session
        ws = session.workspace
        self.symbol = QLineEdit()
        self.symbol.setPlaceholderText("ticker, e.g. RSSB")
        completer = QCompleter(sorted(ws.fund_map.symbols), self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.symbol.setCompleter(completer)
        self.shares = QLineEdit()
        self.shares.setPlaceholderText("number of shares")
        self.price = QLineEdit()
        self.price.setPlaceholderText("latest price per share")
        self.fund_label = QLabel("")
        self.fund_label.setWordWrap(True)
        self.fund_label.setStyleSheet("color: #555;")
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        form = QFormLayout()
        form.addRow("Symbol", self.symbol)
        form.addRow("", self.fund_label)
        form.addRow("Shares", self.shares)
        form.addRow(f"Price ({ws.portfolio.currency})", self.price)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._check)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.symbol.textChanged.connect(self._symbol_changed)
        self.values: tuple[str, float, float | None] | None = None

    def _symbol_changed(self, text: str) -> None:
        ws = self._session.workspace
        symbol = text.strip().upper()
        fund = ws.fund_map.get(symbol) if symbol else None
        if fund is not None:
            self.fund_label.setText(f"{fund.name or symbol}: notional {fund.notional:.0%}")
            if symbol in ws.prices and not self.price.text().strip():
                self.price.setText(f"{ws.prices[symbol]:.2f}")
        elif symbol:
            self.fund_label.setText(f"{symbol} is not in the fund map yet")
        else:
            self.fund_label.setText("")

    def _check(self) -> None:
        symbol = self.symbol.text().strip().upper()
        if not symbol:
            self.error.setText("Type a ticker.")
            return
        try:
            shares = parse_number(self.shares.text() or "0")
        except ValueError as exc:
            self.error.setText(f"Shares: {exc}.")
            return
        price: float | None = None
        if self.price.text().strip():
            try:
                price = parse_number(self.price.text())
            except ValueError as exc:
                self.error.setText(f"Price: {exc}.")
                return
        self.values = (symbol, shares, price)
        self.accept()


# ---------------------------------------------------------- import holdings
class HoldingsImportDialog(QDialog):
    """Preview of a holdings file; nothing changes until the user presses Import.

    After ``exec()`` returns Accepted, :meth:`command` gives the undo command to push.
    """

    def __init__(self, session: Session, parsed: ParsedImport, parent: QWidget | None = None):
        super().__init__(parent)
        self._session = session
        self.parsed = parsed
        ws = session.workspace
        self.setWindowTitle(f"Import holdings: {Path(parsed.source).name}")
        self.resize(900, 560)
        fmt = (
            "generic CSV"
            if parsed.format == "generic"
            else f"{BROKER_NAMES.get(parsed.format, parsed.format)} positions export"
        )
        header = QLabel(f"<b>{Path(parsed.source).name}</b> read as a {fmt}.")
        self.model = ImportPreviewModel(
            parsed,
            ws.fund_map,
            add_placeholders=True,
            currency=ws.portfolio.currency,
            prices=ws.prices,
        )
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setWordWrap(False)
        h = self.table.horizontalHeader()
        h.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # Names (and the raw text of skipped lines) are long: a fixed width, elided, with
        # the status column taking the rest so every reason is readable.
        h.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Interactive)
        h.resizeSection(NAME, 240)
        h.setStretchLastSection(True)
        self.replace = QRadioButton("Replace the current holdings")
        self.merge = QRadioButton("Add to the current holdings")
        self.replace.setChecked(True)
        self.placeholders = QCheckBox(
            "Add symbols that are not in the fund map as placeholders (100% US equity; "
            "edit them on the Fund Exposures tab)"
        )
        self.placeholders.setChecked(True)
        self.placeholders.toggled.connect(self._options_changed)
        self.use_cash = QCheckBox()
        self.use_cash.setVisible(parsed.cash is not None)
        if parsed.cash is not None:
            self.use_cash.setText(
                f"Use the file's cash ({money(parsed.cash, ws.portfolio.currency)})"
            )
            self.use_cash.setChecked(True)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.notes = QLabel("\n".join(parsed.notes))
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #8a5300;")
        self.notes.setVisible(bool(parsed.notes))
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(header)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        layout.addWidget(self.notes)
        layout.addWidget(self.replace)
        layout.addWidget(self.merge)
        layout.addWidget(self.placeholders)
        layout.addWidget(self.use_cash)
        layout.addWidget(self.buttons)
        self._options_changed()

    def _options_changed(self) -> None:
        self.model.set_add_placeholders(self.placeholders.isChecked())
        positions = [r for r in self.parsed.rows if not r.skipped]
        importing = [r for r in positions if self.model.will_import(r)]
        errors = [r for r in positions if r.error]
        unknown = len(positions) - len(importing) - len(errors)
        skipped = len(self.parsed.rows) - len(positions)
        parts = [f"{len(importing)} of {len(positions)} positions will be imported"]
        if errors:
            lines = ", ".join(str(r.line) for r in errors[:8]) + (" ..." if len(errors) > 8 else "")
            parts.append(f"{len(errors)} with errors will be left out (lines {lines})")
        if unknown:
            parts.append(f"{unknown} not in the fund map will be left out")
        if skipped:
            parts.append(f"{skipped} other lines (totals, text) are not positions")
        self.summary.setText("; ".join(parts) + ".")
        self.ok_button.setText(f"Import {len(importing)} positions")
        self.ok_button.setEnabled(bool(importing) or self.parsed.cash is not None)

    def importing_rows(self) -> list:
        return [r for r in self.parsed.rows if self.model.will_import(r)]

    def command(self) -> ImportHoldingsCommand:
        """The undo command that applies the import as previewed."""
        ws = self._session.workspace
        rows = self.importing_rows()
        new_funds = []
        seen: set[str] = set()
        for r in rows:
            if r.symbol not in ws.fund_map and r.symbol not in seen:
                new_funds.append(placeholder_fund(r.symbol, r.name.title() if r.name else ""))
                seen.add(r.symbol)
        cash = self.parsed.cash if self.use_cash.isChecked() else None
        return ImportHoldingsCommand(
            self._session,
            [r.holding() for r in rows],
            cash,
            merge=self.merge.isChecked(),
            new_funds=new_funds,
            source=Path(self.parsed.source).name,
        )
