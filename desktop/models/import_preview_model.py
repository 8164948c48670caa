"""Preview of a holdings import: every row of the file, with what will happen to it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from core.exposures import FundExposureMap
from desktop.formatting import money, shares
from desktop.holdings_import import ImportRow, ParsedImport

Index = QModelIndex | QPersistentModelIndex

COLUMNS = ("Line", "Symbol", "Name", "Shares", "Price", "Market value", "Status")
LINE, SYMBOL, NAME, SHARES, PRICE, VALUE, STATUS = range(7)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_ERROR = QBrush(QColor(255, 220, 220))
_NEW = QBrush(QColor(255, 243, 205))
_SKIP = QBrush(QColor(235, 235, 235))


class ImportPreviewModel(QAbstractTableModel):
    """Read-only rows of a :class:`ParsedImport` and their status.

    Status is one of: ``OK``; ``new fund: ...`` (not in the fund map, will be added as a
    100% US equity placeholder); ``skipped: not in the fund map`` (placeholders off);
    ``skipped: <reason>`` for a line that is not a position (summary row, text); or
    ``error: <what is wrong>`` for a position that cannot be imported.
    """

    def __init__(
        self,
        parsed: ParsedImport,
        fund_map: FundExposureMap,
        add_placeholders: bool = True,
        currency: str = "USD",
        prices: Mapping[str, float] | None = None,
        parent: Any = None,
    ):
        super().__init__(parent)
        self._prices = dict(prices or {})
        self.parsed = parsed
        self._fund_map = fund_map
        self._add_placeholders = add_placeholders
        self._currency = currency

    def set_add_placeholders(self, on: bool) -> None:
        self._add_placeholders = on
        if self.parsed.rows:
            self.dataChanged.emit(
                self.index(0, STATUS), self.index(len(self.parsed.rows) - 1, STATUS)
            )

    def status(self, row: ImportRow) -> str:
        if row.skipped:
            return f"skipped: {row.skipped}"
        if row.error:
            return f"error: {row.error}"
        if row.symbol not in self._fund_map:
            if self._add_placeholders:
                return "new fund: added as a placeholder (100% US equity)"
            return "skipped: not in the fund map"
        if row.price is None and row.symbol not in self._prices and row.shares:
            return "OK (no price yet: type it on the Holdings tab or load prices)"
        return "OK"

    def will_import(self, row: ImportRow) -> bool:
        return row.ok and (row.symbol in self._fund_map or self._add_placeholders)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.parsed.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if section in (LINE, SHARES, PRICE, VALUE) else _LEFT
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.parsed.rows):
            return None
        row = self.parsed.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == LINE:
                return str(row.line)
            if col == SYMBOL:
                return row.symbol
            if col == NAME:
                return row.name
            if col == SHARES:
                return shares(row.shares)
            if col == PRICE:
                return money(row.price, self._currency)
            if col == VALUE:
                return money(row.market_value, self._currency)
            if col == STATUS:
                return self.status(row)
            return None
        if role == Qt.ItemDataRole.UserRole:
            return (
                row.line,
                row.symbol,
                row.name,
                row.shares,
                row.price,
                row.market_value,
                self.status(row),
            )[col]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if col in (LINE, SHARES, PRICE, VALUE) else _LEFT
        if role == Qt.ItemDataRole.BackgroundRole:
            if row.skipped:
                return _SKIP
            if row.error:
                return _ERROR
            if row.symbol not in self._fund_map:
                return _NEW if self._add_placeholders else _SKIP
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            text = f"line {row.line}: {self.status(row)}"
            return f"{text}\n{row.name}" if row.skipped and row.name else text
        return None
