"""Holdings tab: the positions table, add/remove/import, and a summary with exposure charts."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.errors import StackOptError, ValidationError
from core.exposures import AssetGroup
from desktop.dialogs import (
    AddHoldingDialog,
    HoldingsImportDialog,
    last_folder,
    remember_folder,
    show_error,
)
from desktop.formatting import money, percent
from desktop.holdings_import import HoldingsFile, open_holdings_file
from desktop.models.holdings_model import FIXED_COLUMNS, NAME, HoldingsModel
from desktop.plots.exposure_bars_plot import GROUP_COLORS, ExposureBarsPlot
from desktop.session import Session
from desktop.undo_commands import AddHoldingCommand, RemoveHoldingsCommand

HOLDINGS_FILTER = (
    "Holdings files (*.csv *.txt *.tsv *.xlsx *.xlsm);;CSV (*.csv *.txt *.tsv);;"
    "Excel workbooks (*.xlsx *.xlsm);;All files (*)"
)


class HoldingsTab(QWidget):
    """Edit the portfolio: shares, prices and cash in the table; add, remove, import.

    Errors from edits show in the message line above the table (no dialog for a typo).
    """

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.model = HoldingsModel(session, self)
        self.model.edit_rejected.connect(self.show_message)

        self.add_button = QPushButton("Add holding...")
        self.add_button.setToolTip("Add a fund by its ticker")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected holdings (Delete)")
        self.import_button = QPushButton("Import holdings...")
        self.import_button.setToolTip(
            "Read holdings from a broker's positions export (Schwab, Fidelity, Vanguard, "
            "Interactive Brokers, DEGIRO) or any CSV or Excel table (you choose its "
            "columns); you see a preview first"
        )
        self.add_button.clicked.connect(self.add_holding_dialog)
        self.remove_button.clicked.connect(self.remove_selected)
        self.import_button.clicked.connect(lambda: self.import_file())
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        for b in (self.add_button, self.remove_button, self.import_button):
            buttons.addWidget(b)
        buttons.addWidget(self.message, 1)

        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(24)
        self.view.setWordWrap(False)
        self.model.modelReset.connect(self._resize_columns)
        self._resize_columns()
        QShortcut(QKeySequence.StandardKey.Delete, self.view, self.remove_selected)
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.model.modelReset.connect(self._selection_changed)

        # Summary: totals on the left, exposure charts by type and by group.
        self.total_value = QLabel()
        self.invested = QLabel()
        self.cash = QLabel()
        self.total_notional = QLabel()
        self.price_date = QLabel()
        for label in (self.total_value, self.invested, self.cash, self.total_notional):
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        big = self.total_value.font()
        big.setPointSizeF(big.pointSizeF() * 1.25)
        big.setBold(True)
        self.total_value.setFont(big)
        self.total_notional.setFont(big)
        self.price_date.setWordWrap(True)
        self.price_date.setStyleSheet("color: #666;")
        self.total_notional.setToolTip(
            "Sum over holdings of |weight| x fund notional: the gross exposure the portfolio "
            "carries per dollar (150% = $1.50 of exposure per $1)"
        )
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        form.addRow("Total value", self.total_value)
        form.addRow("Invested", self.invested)
        form.addRow("Cash", self.cash)
        form.addRow("Total notional", self.total_notional)
        summary = QFrame()
        summary.setFrameShape(QFrame.Shape.StyledPanel)
        summary_layout = QVBoxLayout(summary)
        title = QLabel("Summary")
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        summary_layout.addWidget(title)
        summary_layout.addLayout(form)
        summary_layout.addWidget(self.price_date)
        summary_layout.addStretch(1)
        summary.setMinimumWidth(250)
        summary.setMaximumWidth(320)

        self.type_plot = ExposureBarsPlot(
            "Exposure by type", "Exposures appear once every holding has a price"
        )
        self.group_plot = ExposureBarsPlot(
            "Exposure by asset class", "Exposures appear once every holding has a price"
        )
        bottom = QWidget()
        bottom_layout = QHBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 4, 0, 0)
        bottom_layout.addWidget(summary)
        bottom_layout.addWidget(self.type_plot, 3)
        bottom_layout.addWidget(self.group_plot, 2)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addLayout(buttons)
        top_layout.addWidget(self.view, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.splitter)

        session.workspace_replaced.connect(self.update_summary)
        session.portfolio_changed.connect(self.update_summary)
        session.fund_map_changed.connect(self.update_summary)
        session.workspace_replaced.connect(self.clear_message)
        self.update_summary()
        self._selection_changed()

    # ------------------------------------------------------------------ view
    def _resize_columns(self) -> None:
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(60)

    def _selection_changed(self, *_args: object) -> None:
        self.remove_button.setEnabled(bool(self.selected_symbols()))

    def show_message(self, text: str, error: bool = True) -> None:
        """Say what went wrong (red) or what happened (grey) above the table."""
        self.message.setStyleSheet("color: #b00020;" if error else "color: #555;")
        self.message.setText(text)

    def clear_message(self) -> None:
        self.message.setText("")

    def selected_symbols(self) -> list[str]:
        rows = sorted({i.row() for i in self.view.selectionModel().selectedRows()})
        return [self.model.symbol_at(r) for r in rows if not self.model.is_cash_row(r)]

    def update_summary(self) -> None:
        m = self.model
        ws = self.session.workspace
        currency = ws.portfolio.currency
        if m.total_value is None:
            self.total_value.setText("-")
            self.invested.setText("-")
            self.total_notional.setText("-")
            text = m.problem or "The portfolio cannot be valued"
            self.type_plot.show_message(text)
            self.group_plot.show_message(text)
        else:
            self.total_value.setText(money(m.total_value, currency, 0))
            self.invested.setText(money(m.total_value - ws.portfolio.cash, currency, 0))
            self.total_notional.setText(
                percent(m.total_notional, 1) if m.total_notional is not None else "-"
            )
            if m.exposures.empty:
                self.type_plot.show_message(m.problem or "No exposures: add holdings")
                self.group_plot.show_message(m.problem or "No exposures: add holdings")
            else:
                types = ws.fund_map.exposure_types
                codes = [c for c in m.exposures.index if abs(m.exposures[c]) > 1e-12]
                self.type_plot.set_bars(
                    [types[c].name for c in codes],
                    [float(m.exposures[c]) for c in codes],
                    [GROUP_COLORS[types[c].group.value] for c in codes],
                )
                groups = list(m.exposures_by_group.index)
                self.group_plot.set_bars(
                    [AssetGroup(g).label for g in groups],
                    [float(m.exposures_by_group[g]) for g in groups],
                    [GROUP_COLORS[g] for g in groups],
                )
        self.cash.setText(money(ws.portfolio.cash, currency, 0))
        if ws.price_date:
            self.price_date.setText(
                f"Prices as of {ws.price_date}. Shares, prices and cash are editable: "
                "double-click a cell."
            )
        else:
            self.price_date.setText("Shares, prices and cash are editable: double-click a cell.")

    # --------------------------------------------------------------- actions
    def add_holding_dialog(self) -> None:
        dialog = AddHoldingDialog(self.session, self)
        if dialog.exec() != QDialog.DialogCode.Accepted or dialog.values is None:
            return
        symbol, shares, price = dialog.values
        self.add_holding(symbol, shares, price)

    def add_holding(self, symbol: str, shares: float, price: float | None = None) -> bool:
        """Add a holding; an unknown symbol is offered as a fund-map placeholder first."""
        try:
            command = AddHoldingCommand(self.session, symbol, shares, price)
        except ValidationError as exc:
            if exc.field != "fund_map":
                self.show_message(str(exc))
                return False
            answer = QMessageBox.question(
                self,
                "Symbol not in the fund map",
                f"{symbol.upper()} is not in the fund map, so StackOpt does not know what it "
                "holds.\n\nAdd it as a placeholder fund with 100% US equity exposure? You can "
                "then enter its real exposures on the Fund Exposures tab.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.Yes,
            )
            if answer != QMessageBox.StandardButton.Yes:
                self.show_message(f"{symbol.upper()} was not added.", error=False)
                return False
            try:
                command = AddHoldingCommand(
                    self.session, symbol, shares, price, add_placeholder=True
                )
            except ValidationError as exc2:
                self.show_message(str(exc2))
                return False
            self.session.undo_stack.push(command)
            self.show_message(
                f"{symbol.upper()} added as a placeholder (100% US equity): set its real "
                "exposures on the Fund Exposures tab.",
                error=False,
            )
            return True
        self.session.undo_stack.push(command)
        self.show_message(f"{symbol.upper()} added.", error=False)
        return True

    def remove_selected(self) -> None:
        symbols = self.selected_symbols()
        if not symbols:
            self.show_message("Select the holdings to remove (the cash row stays).", error=False)
            return
        self.remove_holdings(symbols)

    def remove_holdings(self, symbols: list[str]) -> bool:
        try:
            self.session.undo_stack.push(RemoveHoldingsCommand(self.session, symbols))
        except ValidationError as exc:
            self.show_message(str(exc))
            return False
        self.show_message(f"Removed {', '.join(symbols)} (Undo brings them back).", error=False)
        return True

    def import_file(self, path: str | None = None) -> bool:
        """Import holdings from a broker export or any CSV/Excel table (menu, button, drop).

        Shows the import dialog (column mapping for an unknown table, then the preview);
        nothing changes unless the user accepts. Returns True when holdings changed.
        """
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Import holdings", last_folder(), HOLDINGS_FILTER
            )
            if not path:
                return False
            remember_folder(path)
        try:
            file = open_holdings_file(path)
        except StackOptError as exc:
            show_error(self, "Cannot import holdings", str(exc))
            return False
        return self.preview_import(file)

    def preview_import(self, file: HoldingsFile) -> bool:
        dialog = self.make_import_dialog(file)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return False
        try:
            command = dialog.command()
        except ValidationError as exc:
            show_error(self, "Cannot import holdings", str(exc))
            return False
        self.session.undo_stack.push(command)
        dialog.remember_mapping()
        self.show_message(f"Done: {command.text()} (Undo reverts it).", error=False)
        return True

    def make_import_dialog(self, file: HoldingsFile) -> HoldingsImportDialog:
        """The import dialog (a method so that tests can drive it)."""
        return HoldingsImportDialog(self.session, file, self)


__all__ = ["FIXED_COLUMNS", "HoldingsTab"]
