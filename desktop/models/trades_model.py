"""The trades table: one row per order of a :class:`~core.optimization.trades.TradePlan`.

Orders are listed in execution order (sells first, as the plan makes them). Read-only:
the plan is core's, recomputed by "Generate trades", never edited cell by cell.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from core.fileio import neutralise_cell
from core.optimization.trades import Trade, TradePlan
from desktop.formatting import money, percent, shares

Index = QModelIndex | QPersistentModelIndex

_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_SELL = QBrush(QColor(183, 28, 28))
_BUY = QBrush(QColor(46, 125, 50))

SIDE, SYMBOL, QUANTITY, PRICE, VALUE, WEIGHT_BEFORE, WEIGHT_AFTER, REASON, ACCOUNT = range(9)
HEADERS = (
    "Side",
    "Symbol",
    "Quantity",
    "Price",
    "Value",
    "Weight before",
    "Weight after",
    "Reason",
    "Account",
)
_NUMERIC = {QUANTITY, PRICE, VALUE, WEIGHT_BEFORE, WEIGHT_AFTER}


class TradesModel(QAbstractTableModel):
    """Rows = ``plan.trades`` (side, symbol, quantity, price, value, weights, reason)."""

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.plan: TradePlan | None = None
        self.currency = "USD"

    @property
    def trades(self) -> list[Trade]:
        return list(self.plan.trades) if self.plan is not None else []

    def set_plan(self, plan: TradePlan | None, currency: str = "USD") -> None:
        self.beginResetModel()
        self.plan = plan
        self.currency = currency
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() or self.plan is None else len(self.plan.trades)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: N802, E501
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if section in _NUMERIC else _LEFT
        return None

    def _text(self, t: Trade, col: int) -> str:
        if col == SIDE:
            return t.side
        if col == SYMBOL:
            return t.symbol
        if col == QUANTITY:
            return shares(t.quantity)
        if col == PRICE:
            return money(t.estimated_price, self.currency)
        if col == VALUE:
            return money(t.estimated_value, self.currency)
        if col == WEIGHT_BEFORE:
            return percent(t.weight_before, 2)
        if col == WEIGHT_AFTER:
            return percent(t.weight_after, 2)
        if col == REASON:
            return t.reason
        return t.account

    def _raw(self, t: Trade, col: int) -> Any:
        return (
            t.side,
            t.symbol,
            t.quantity,
            t.estimated_price,
            t.estimated_value,
            t.weight_before,
            t.weight_after,
            t.reason,
            t.account,
        )[col]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self.plan is None or index.row() >= len(self.plan.trades):
            return None
        t = self.plan.trades[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(t, col)
        if role == Qt.ItemDataRole.EditRole:
            return self._raw(t, col)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if col in _NUMERIC else _LEFT
        if role == Qt.ItemDataRole.ForegroundRole and col == SIDE:
            return _SELL if t.side == "SELL" else _BUY
        if role == Qt.ItemDataRole.ToolTipRole and t.estimated_commission:
            return f"Estimated commission {money(t.estimated_commission, self.currency)}"
        return None

    def to_text(self) -> str:
        """The table as tab-separated text (header row first), for the clipboard.

        Numbers are written plainly (no currency signs or thousands separators) so that a
        spreadsheet reads them as numbers.
        """
        lines = ["\t".join(HEADERS)]
        for t in self.trades:
            cells = []
            for col in range(len(HEADERS)):
                value = self._raw(t, col)
                if isinstance(value, float):
                    if not math.isfinite(value):
                        cells.append("")
                    elif col in (WEIGHT_BEFORE, WEIGHT_AFTER):
                        cells.append(f"{value:.6f}")
                    elif col == QUANTITY:
                        cells.append(f"{value:g}" if value.is_integer() else f"{value:.6f}")
                    else:
                        cells.append(f"{value:.2f}")
                else:
                    # A tab or newline would break the table; a leading "=" would run as
                    # a formula once pasted into a spreadsheet.
                    text = str(value).replace("\t", " ").replace("\n", " ")
                    cells.append(str(neutralise_cell(text)))
            lines.append("\t".join(cells))
        return "\n".join(lines) + "\n"
