"""Export a trade plan as a broker ticket, in every format of :mod:`core.tickets`.

:func:`export_ticket` writes one format (no Qt involved, so tests call it directly);
:class:`TicketExportDialog` asks for the format and its options (account, order type,
time in force, IBKR basket tag, TradeStation exchange ID) and the file name, through a
file dialog whose filters list every format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import StackOptError, ValidationError
from core.optimization.trades import TradePlan
from core.tickets import (
    TIME_IN_FORCE,
    TicketFormat,
    write_excel,
    write_generic_csv,
    write_ibkr_basket_csv,
    write_ibkr_rebalance_csv,
    write_tradestation_trade_lists,
)
from desktop.dialogs import app_settings, last_folder, remember_folder


@dataclass(frozen=True)
class FormatInfo:
    """How a ticket format is offered: file-dialog filter, suffix and a one-line help."""

    format: TicketFormat
    filter: str
    suffix: str
    help: str


#: Every format of :class:`core.tickets.TicketFormat`, in the order offered.
FORMATS: tuple[FormatInfo, ...] = (
    FormatInfo(
        TicketFormat.GENERIC_CSV,
        "Generic CSV ticket (*.csv)",
        ".csv",
        "One row per order (account, symbol, side, quantity, order type, limit, time in "
        "force): for any broker with a CSV order import, and for review.",
    ),
    FormatInfo(
        TicketFormat.IBKR_BASKET,
        "Interactive Brokers BasketTrader CSV (*.csv)",
        ".csv",
        "TWS: Trade > BasketTrader > Load the file; sells come first.",
    ),
    FormatInfo(
        TicketFormat.IBKR_REBALANCE,
        "Interactive Brokers Rebalance Portfolio CSV (*.csv)",
        ".csv",
        "TWS: Portfolio > Rebalance > Import: target percentages (TWS computes the orders).",
    ),
    FormatInfo(
        TicketFormat.TRADESTATION,
        "TradeStation trade list (*.txt)",
        ".txt",
        "TradeStation Basket Order window: one list per side and account (_SELL and _BUY "
        "files; send the SELL list first). Needs TradeStation's exchange ID and at least 100 "
        "shares per order on average.",
    ),
    FormatInfo(
        TicketFormat.EXCEL,
        "Excel workbook (*.xlsx)",
        ".xlsx",
        "A Trades sheet with the orders and estimates and a Summary sheet, for review.",
    ),
)
_BY_FORMAT = {f.format: f for f in FORMATS}
_BY_FILTER = {f.filter: f for f in FORMATS}


def format_info(fmt: TicketFormat | str) -> FormatInfo:
    return _BY_FORMAT[TicketFormat(fmt)]


def default_format(setting: object) -> TicketFormat:
    """The format named by the workspace's ``ticket_format`` setting ('generic' = CSV)."""
    text = str(setting or "").strip().lower()
    if text in ("", "generic", "csv"):
        return TicketFormat.GENERIC_CSV
    try:
        return TicketFormat(text)
    except ValueError:
        return TicketFormat.GENERIC_CSV


@dataclass(frozen=True)
class TicketOptions:
    """Options of a ticket; each format uses the ones it has fields for.

    ``order_type`` 'LMT' uses each order's estimated price (rounded to cents) as its
    limit price.
    """

    account: str = ""
    order_type: str = "MKT"
    time_in_force: str = "DAY"
    basket_tag: str = "StackOpt"
    currency: str = "USD"
    exchange_id: str = ""


def _limit_prices(plan: TradePlan) -> dict[str, float]:
    prices: dict[str, float] = {}
    for t in plan.trades:
        if not math.isfinite(t.estimated_price) or t.estimated_price <= 0:
            raise ValidationError(
                f"{t.symbol} has no estimated price to use as a limit; choose market orders",
                field="order_type",
            )
        prices[t.symbol] = round(float(t.estimated_price), 2)
    return prices


def export_ticket(
    plan: TradePlan, fmt: TicketFormat | str, path: str | Path, options: TicketOptions
) -> list[Path]:
    """Write ``plan`` as a ticket in format ``fmt``; returns the files written.

    TradeStation writes one list per side (``<stem>_SELL.txt``, ``<stem>_BUY.txt``) and,
    when the trades are for several accounts, per account (``<stem>_<account>_SELL.txt``).

    Raises
    ------
    ValidationError
        The plan cannot be written in this format (no orders, a TradeStation list without
        an exchange ID or under 100 shares per order, ...); the message says why.
    OSError
        The file cannot be written.
    """
    fmt = TicketFormat(fmt)
    path = Path(path)
    if fmt is not TicketFormat.IBKR_REBALANCE and not plan.trades:
        raise ValidationError("there are no trades to export", field="trades")
    order_type = options.order_type.strip().upper()
    limits = _limit_prices(plan) if order_type == "LMT" else None
    if fmt is TicketFormat.GENERIC_CSV:
        return [
            write_generic_csv(
                plan, path, options.account, order_type, options.time_in_force, limits
            )
        ]
    if fmt is TicketFormat.IBKR_BASKET:
        tag = "".join(c for c in options.basket_tag if c.isalnum())
        return [
            write_ibkr_basket_csv(
                plan, path, options.account, order_type, options.time_in_force, limits,
                basket_tag=tag, currency=options.currency,
            )
        ]  # fmt: skip
    if fmt is TicketFormat.IBKR_REBALANCE:
        return [write_ibkr_rebalance_csv(plan, path)]
    if fmt is TicketFormat.TRADESTATION:
        if not options.exchange_id.strip():
            raise ValidationError(
                "TradeStation needs its exchange ID for the funds (save a one-line trade list "
                "from its Basket Order window to see it)",
                field="exchange_id",
            )
        # A trade list has no account field: one list per account (and per side).
        accounts = list(dict.fromkeys(t.account for t in plan.trades))
        files: list[Path] = []
        for account in accounts:
            trades = [t for t in plan.trades if t.account == account]
            target = path
            if len(accounts) > 1:
                tag = "".join(c if c.isalnum() else "_" for c in account) or "default"
                target = path.with_name(f"{path.stem}_{tag}{path.suffix}")
            written = write_tradestation_trade_lists(
                trades, target, default_exchange_id=options.exchange_id.strip(),
                order_type=order_type, limit_prices=limits,
            )  # fmt: skip
            files += [written[side] for side in ("SELL", "BUY") if side in written]
        return files
    return [
        write_excel(plan, path, None, options.account, order_type, options.time_in_force, limits)
    ]


class TicketExportDialog(QDialog):
    """Choose a ticket format, its options and a file; Export writes it.

    After ``exec()`` returns Accepted, :attr:`written` lists the files written.
    """

    def __init__(
        self,
        plan: TradePlan,
        *,
        currency: str = "USD",
        initial_format: TicketFormat | str = TicketFormat.GENERIC_CSV,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Export tickets")
        self.setMinimumWidth(560)
        self.plan = plan
        self.currency = currency
        self.written: list[Path] = []

        self.format_combo = QComboBox()
        for info in FORMATS:
            self.format_combo.addItem(info.format.label, info.format.value)
        remembered = app_settings().value("results/ticket_format", "")
        start = TicketFormat(initial_format)
        if remembered in {f.value for f in TicketFormat}:
            start = TicketFormat(str(remembered))
        self.format_combo.setCurrentIndex(self.format_combo.findData(start.value))
        self.help = QLabel()
        self.help.setWordWrap(True)
        self.help.setStyleSheet("color: #555;")
        self.account = QLineEdit()
        self.account.setPlaceholderText("blank: each trade's own account, or the file's default")
        self.order_type = QComboBox()
        self.order_type.addItem("Market (MKT)", "MKT")
        self.order_type.addItem("Limit at the estimated price (LMT)", "LMT")
        self.time_in_force = QComboBox()
        for tif in TIME_IN_FORCE:
            self.time_in_force.addItem(tif, tif)
        self.basket_tag = QLineEdit("StackOpt")
        self.basket_tag.setToolTip("Letters and digits only; TWS shows it as the order reference")
        self.exchange_id = QLineEdit()
        self.exchange_id.setPlaceholderText("TradeStation's exchange ID, e.g. 25")
        self.path = QLineEdit()
        self.path.setPlaceholderText("file to write")
        self.browse_button = QPushButton("Browse...")
        self.browse_button.clicked.connect(self.browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(self.browse_button)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.hide()

        self.form = QFormLayout()
        self.form.addRow("Format", self.format_combo)
        self.form.addRow("", self.help)
        self.form.addRow("Account", self.account)
        self.form.addRow("Order type", self.order_type)
        self.form.addRow("Time in force", self.time_in_force)
        self.form.addRow("Basket tag", self.basket_tag)
        self.form.addRow("Exchange ID", self.exchange_id)
        self.form.addRow("File", path_row)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self.export)
        self.buttons.rejected.connect(self.reject)
        summary = QLabel(
            f"{plan.n_trades} orders ({len(plan.sells)} sells, {len(plan.buys)} buys)."
        )
        layout = QVBoxLayout(self)
        layout.addWidget(summary)
        layout.addLayout(self.form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.format_combo.currentIndexChanged.connect(self._format_changed)
        self._format_changed()

    @property
    def ticket_format(self) -> TicketFormat:
        return TicketFormat(self.format_combo.currentData())

    def set_format(self, fmt: TicketFormat | str) -> None:
        self.format_combo.setCurrentIndex(self.format_combo.findData(TicketFormat(fmt).value))

    def _format_changed(self) -> None:
        fmt = self.ticket_format
        info = format_info(fmt)
        self.help.setText(info.help)
        shown = {
            self.account: fmt in (TicketFormat.GENERIC_CSV, TicketFormat.IBKR_BASKET, TicketFormat.EXCEL),
            self.order_type: fmt is not TicketFormat.IBKR_REBALANCE,
            self.time_in_force: fmt in (TicketFormat.GENERIC_CSV, TicketFormat.IBKR_BASKET, TicketFormat.EXCEL),
            self.basket_tag: fmt is TicketFormat.IBKR_BASKET,
            self.exchange_id: fmt is TicketFormat.TRADESTATION,
        }  # fmt: skip
        for widget, visible in shown.items():
            self.form.setRowVisible(widget, visible)
        text = self.path.text().strip()
        if text:
            self.path.setText(str(Path(text).with_suffix(info.suffix)))
        self.error.hide()

    def options(self) -> TicketOptions:
        return TicketOptions(
            account=self.account.text().strip(),
            order_type=str(self.order_type.currentData()),
            time_in_force=str(self.time_in_force.currentData()),
            basket_tag=self.basket_tag.text().strip(),
            currency=self.currency,
            exchange_id=self.exchange_id.text().strip(),
        )

    def browse(self) -> str:
        """Pick the file in a save dialog whose filters offer every format."""
        info = format_info(self.ticket_format)
        suggested = self.path.text().strip() or str(Path(last_folder()) / f"trades{info.suffix}")
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export tickets", suggested, ";;".join(f.filter for f in FORMATS), info.filter
        )
        if not path:
            return ""
        picked = _BY_FILTER.get(chosen, info)
        if picked.format is not self.ticket_format:
            self.set_format(picked.format)
        if not Path(path).suffix:
            path += picked.suffix
        self.path.setText(path)
        return path

    def export(self) -> bool:
        """Write the ticket; on success close the dialog, otherwise say why inline."""
        if not self.path.text().strip() and not self.browse():
            return False
        try:
            self.written = export_ticket(
                self.plan, self.ticket_format, self.path.text().strip(), self.options()
            )
        except (StackOptError, OSError) as exc:
            self.error.setText(str(exc))
            self.error.show()
            return False
        remember_folder(self.written[0])
        app_settings().setValue("results/ticket_format", self.ticket_format.value)
        self.accept()
        return True
