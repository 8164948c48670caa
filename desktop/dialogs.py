"""Dialogs shared by the window and the tabs.

- :func:`show_error`: an expected problem (bad file, refused edit) and what to do.
- :func:`show_exception` / :func:`install_exception_hooks`: an unexpected error becomes a
  dialog with copyable details instead of a dead app.
- :func:`ask_save_changes`: Save / Discard / Cancel before work would be lost.
- :class:`AddHoldingDialog`, :class:`HoldingsImportDialog`: the Holdings tab's forms.
"""

from __future__ import annotations

import html
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
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.brokers import BROKER_NAMES, GenericMapping
from core.errors import ValidationError
from core.exposures import FundDefinition
from core.portfolio import Holding
from desktop.formatting import money, parse_number
from desktop.holdings_import import HoldingsFile, ImportRow, ParsedImport, preview
from desktop.import_mapping import ROLES, ColumnMappingWidget, MappingMemory, initial_mapping
from desktop.models.import_preview_model import (
    A_NAME,
    ACCOUNT,
    NAME,
    STATUS,
    AccountsModel,
    ImportPreviewModel,
)
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
    """Import holdings from a file; nothing changes until the user presses Import.

    A broker export opens on the preview: the detected broker and layout, the accounts
    (tick the ones to import; they are merged), every line with its status (positions,
    rows in error, skipped lines with their reasons), cash per currency and the symbols
    the fund map does not know. Any other table first shows the column-mapping step
    (:class:`desktop.import_mapping.ColumnMappingWidget`), prefilled from the choice
    remembered for its layout or guessed from its header; a remembered layout opens
    straight on the preview, with *Back* to change the columns.

    After ``exec()`` returns Accepted, :meth:`command` gives the undo command to push (one
    undo step) and :meth:`remember_mapping` keeps the column choice for the layout.
    """

    MAPPING_PAGE, PREVIEW_PAGE = 0, 1

    def __init__(
        self,
        session: Session,
        file: HoldingsFile,
        parent: QWidget | None = None,
        *,
        mapping: GenericMapping | None = None,
    ):
        super().__init__(parent)
        self._session = session
        self.file = file
        ws = session.workspace
        currency = ws.portfolio.currency
        self.setWindowTitle(f"Import holdings: {file.name}")
        self.resize(1100, 720)
        self.memory = MappingMemory(app_settings())
        self.mapping_widget: ColumnMappingWidget | None = None
        remembered = None
        if file.broker_import is not None:
            self.parsed = preview(file.broker_import, currency)
        else:
            remembered = mapping or self.memory.get(file.header)
            self.mapping_widget = ColumnMappingWidget(
                file,
                remembered or initial_mapping(file, currency),
                currency,
                ws.fund_map,
                ws.prices,
            )
            self.parsed = self.mapping_widget.parsed

        # ---- preview page
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.heading.setTextFormat(Qt.TextFormat.RichText)
        self.accounts = AccountsModel(self.parsed, self)
        self.accounts_view = QTableView()
        self.accounts_view.setModel(self.accounts)
        self.accounts_view.verticalHeader().setVisible(False)
        self.accounts_view.verticalHeader().setDefaultSectionSize(22)
        self.accounts_view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        ah = self.accounts_view.horizontalHeader()
        ah.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        ah.setSectionResizeMode(A_NAME, QHeaderView.ResizeMode.Stretch)
        self.accounts_label = QLabel("<b>Accounts</b>: tick the ones to import (they are merged)")
        self.model = ImportPreviewModel(
            self.parsed,
            ws.fund_map,
            add_placeholders=True,
            currency=currency,
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
        h.setSectionResizeMode(STATUS, QHeaderView.ResizeMode.Stretch)
        self.cash_label = QLabel()
        self.cash_label.setWordWrap(True)
        self.unmapped_label = QLabel()
        self.unmapped_label.setWordWrap(True)
        self.placeholders = QCheckBox(
            "Add them to the fund map as placeholders (100% US equity; set their real "
            "exposures on the Fund Exposures tab)"
        )
        self.placeholders.setChecked(True)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.notes = QLabel()
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #8a5300;")
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #b00020;")
        self.replace = QRadioButton("Replace the current holdings")
        self.merge = QRadioButton("Add to the current holdings")
        self.replace.setChecked(True)
        self.use_cash = QCheckBox()
        self.use_cash.setChecked(True)
        options = QHBoxLayout()
        for w in (self.replace, self.merge, self.use_cash):
            options.addWidget(w)
        options.addStretch(1)
        preview_page = QWidget()
        pl = QVBoxLayout(preview_page)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.heading)
        pl.addWidget(self.accounts_label)
        pl.addWidget(self.accounts_view)
        pl.addWidget(self.table, 1)
        pl.addWidget(self.cash_label)
        pl.addWidget(self.unmapped_label)
        pl.addWidget(self.placeholders)
        pl.addWidget(self.summary)
        pl.addWidget(self.notes)
        pl.addWidget(self.problem)
        pl.addLayout(options)

        self.pages = QStackedWidget()
        if self.mapping_widget is not None:
            self.pages.addWidget(self.mapping_widget)
        else:
            self.pages.addWidget(QWidget())  # keeps the page numbers
        self.pages.addWidget(preview_page)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.back_button = QPushButton("< Columns")
        self.back_button.setToolTip("Change which column holds what")
        self.back_button.setAutoDefault(False)
        self.next_button = self.buttons.addButton("Next >", QDialogButtonBox.ButtonRole.ActionRole)
        self.back_button.clicked.connect(lambda: self.show_page(self.MAPPING_PAGE))
        self.next_button.clicked.connect(lambda: self.show_page(self.PREVIEW_PAGE))
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.back_button)
        bottom.addStretch(1)
        bottom.addWidget(self.buttons)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages, 1)
        layout.addLayout(bottom)

        self.accounts.selection_changed.connect(self._options_changed)
        self.placeholders.toggled.connect(self._options_changed)
        self.use_cash.toggled.connect(self._options_changed)
        self.merge.toggled.connect(self._options_changed)
        if self.mapping_widget is not None:
            self.mapping_widget.parsed_changed.connect(self._parsed_changed)
        self._parsed_changed(self.parsed)
        start = self.PREVIEW_PAGE
        if self.mapping_widget is not None and (remembered is None or self.mapping_widget.problem):
            start = self.MAPPING_PAGE
        self.show_page(start)

    # ------------------------------------------------------------ navigation
    @property
    def page(self) -> int:
        return self.pages.currentIndex()

    def show_page(self, page: int) -> None:
        """The mapping step (generic tables) or the preview."""
        if page == self.MAPPING_PAGE and self.mapping_widget is None:
            raise ValueError("a broker export has no column-mapping step")
        self.pages.setCurrentIndex(page)
        on_mapping = page == self.MAPPING_PAGE
        self.back_button.setVisible(self.mapping_widget is not None and not on_mapping)
        self.next_button.setVisible(on_mapping)
        self.ok_button.setVisible(not on_mapping)
        self._update_buttons()
        button = self.next_button if on_mapping else self.ok_button
        button.setDefault(True)
        button.setFocus()

    @property
    def mapping(self) -> GenericMapping | None:
        """The column mapping of a generic table (None for a broker export)."""
        return self.mapping_widget.mapping() if self.mapping_widget is not None else None

    def remember_mapping(self) -> None:
        """Keep the column choice for files of the same layout (generic tables only)."""
        mapping = self.mapping
        if mapping is not None:
            self.memory.put(self.file.header, mapping)

    # ------------------------------------------------------------ state
    def _parsed_changed(self, parsed: ParsedImport) -> None:
        self.parsed = parsed
        self.accounts.set_parsed(parsed)
        self.model.set_parsed(parsed)
        accounts = parsed.imp.accounts
        multi = len(accounts) > 1
        self.accounts_label.setVisible(multi)
        self.accounts_view.setVisible(multi)
        self.table.setColumnHidden(ACCOUNT, not multi)
        self.accounts_view.setColumnHidden(A_NAME, not any(a.account_name for a in accounts))
        if multi:
            rows = min(len(accounts), 6)
            header = self.accounts_view.horizontalHeader().sizeHint().height()
            self.accounts_view.setFixedHeight(header + rows * 22 + 4)
        self.heading.setText(self._heading())
        self._options_changed()

    def _heading(self) -> str:
        name = html.escape(self.file.name)
        imp = self.parsed.imp
        accounts = len(imp.accounts)
        where = f"{accounts} accounts" if accounts > 1 else "one account"
        if self.file.is_broker:
            broker = BROKER_NAMES.get(imp.broker, imp.broker)
            layout = imp.layout.replace("_", " ")
            return (
                f"<b>{name}</b>: {html.escape(broker)} positions export "
                f"(layout: {html.escape(layout)}), {where}."
            )
        mapping = self.mapping
        if mapping is None:
            return f"<b>{name}</b>: choose the columns first."
        labels = {role: label.lower() for role, label, _required in ROLES}
        cols = ", ".join(
            f"{html.escape(col)} \u2192 {labels[role]}" for role, col in mapping.columns().items()
        )
        return f"<b>{name}</b>: read with your column mapping ({cols}), {where}."

    def _options_changed(self, *_args: object) -> None:
        ids = self.accounts.selected_ids()
        self.model.set_selected_accounts(ids)
        self.model.set_add_placeholders(self.placeholders.isChecked())
        ws = self._session.workspace
        currency = self.parsed.currency

        cash = self.parsed.cash_by_currency(ids)
        if cash:
            parts = [money(cash[currency], currency)] if currency in cash else []
            for ccy, amount in cash.items():
                if ccy != currency:
                    parts.append(f"{money(amount, ccy)} (not imported: not {currency})")
            self.cash_label.setText("<b>Cash</b>: " + "; ".join(parts))
        else:
            self.cash_label.setText("<b>Cash</b>: none")
        own = self.parsed.cash(ids)
        self.use_cash.setVisible(own is not None)
        if own is not None:
            self.use_cash.setText(f"Use the file's cash ({money(own, currency)})")

        unmapped = self.parsed.unmapped(ws.fund_map, ids)
        self.unmapped_label.setVisible(bool(unmapped))
        self.placeholders.setVisible(bool(unmapped))
        if unmapped:
            self.unmapped_label.setText(
                f"<b>Not in the fund map</b> ({len(unmapped)}): {html.escape(', '.join(unmapped))}"
            )

        rows = self.parsed.rows
        positions = [
            r for r in rows if r.is_position and (r.account_id is None or r.account_id in ids)
        ]
        importing = [r for r in positions if self.model.will_import(r)]
        errors = [r for r in positions if r.error]
        unknown = len(positions) - len(importing) - len(errors)
        skipped = [r for r in rows if r.skipped]
        left_out = [
            r
            for r in rows
            if r.is_position and r.account_id is not None and r.account_id not in ids
        ]
        if not ids and self.parsed.account_ids:
            parts = ["Tick at least one account to import"]
        else:
            parts = [f"{len(importing)} of {len(positions)} positions will be imported"]
        if errors:
            lines = ", ".join(str(r.line) for r in errors[:8]) + (" ..." if len(errors) > 8 else "")
            parts.append(f"{len(errors)} with errors will be left out (lines {lines})")
        if unknown:
            parts.append(f"{unknown} not in the fund map will be left out")
        if left_out:
            parts.append(f"{len(left_out)} in accounts not ticked")
        if len(skipped) == 1:
            parts.append("1 other line (a total, text) is not a position")
        elif skipped:
            parts.append(f"{len(skipped)} other lines (totals, text) are not positions")
        self.summary.setText("; ".join(parts) + ".")
        notes = self.parsed.notes(ids)
        self.notes.setText("\n".join(notes))
        self.notes.setVisible(bool(notes))
        self._update_buttons()

    def _update_buttons(self) -> None:
        if self.mapping_widget is not None and self.page == self.MAPPING_PAGE:
            readable = self.mapping_widget.mapping() is not None
            something = any(r.ok for r in self.parsed.rows) or bool(self.parsed.cash_by_currency())
            self.next_button.setEnabled(readable and something)
            self.problem.setVisible(False)
            return
        try:
            self.command()
        except ValidationError as exc:
            text = str(exc)
            text = text[:1].upper() + text[1:]
            own = self.parsed.cash(self.accounts.selected_ids())
            if self.use_cash.isChecked() and own is not None and own < 0:
                text += "; or untick 'Use the file's cash' (a margin loan)"
            self.problem.setText(text)
            self.problem.setVisible(True)
            self.ok_button.setText("Import")
            self.ok_button.setEnabled(False)
            return
        self.problem.setVisible(False)
        holdings, cash, _funds = self._plan()
        count = len(holdings)
        self.ok_button.setText(f"Import {count} holding{'s' if count != 1 else ''}")
        self.ok_button.setEnabled(bool(count) or cash is not None)

    # ------------------------------------------------------------ result
    def importing_rows(self) -> list[ImportRow]:
        return [r for r in self.parsed.rows if self.model.will_import(r)]

    def _plan(self) -> tuple[list[Holding], float | None, list[FundDefinition]]:
        """Holdings (merged over the ticked accounts), cash and placeholder funds."""
        ws = self._session.workspace
        ids = self.accounts.selected_ids()
        if not ids and self.parsed.account_ids:
            raise ValidationError("tick at least one account to import", field="accounts")
        add = self.placeholders.isChecked()
        holdings = [h for h in self.parsed.holdings(ids) if add or h.symbol in ws.fund_map]
        names = {h.symbol: h.name for h in holdings}
        unmapped = self.parsed.unmapped(ws.fund_map, ids) if add else []
        new_funds = [placeholder_fund(s, names.get(s, "").title()) for s in unmapped]
        cash = self.parsed.cash(ids) if self.use_cash.isChecked() else None
        return holdings, cash, new_funds

    def command(self) -> ImportHoldingsCommand:
        """The undo command that applies the import as previewed (one undo step).

        Raises ValidationError when the import cannot apply as chosen (no account ticked,
        short positions or a margin loan while the constraints are long only, ...).
        """
        holdings, cash, new_funds = self._plan()
        return ImportHoldingsCommand(
            self._session,
            holdings,
            cash,
            merge=self.merge.isChecked(),
            new_funds=new_funds,
            source=self.file.name,
        )
