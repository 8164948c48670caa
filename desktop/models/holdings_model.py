"""Table model over the workspace portfolio: one row per holding plus a cash row.

Columns: symbol, name, shares, price, market value, weight (of total value), fund notional,
then one column per exposure type the holdings carry: the position's contribution to the
portfolio's exposure (``weight * exposure``, fractions of total value), so each exposure
column sums to the portfolio exposure shown in the summary chart.

Shares and price of a holding, and the cash amount, are editable. Edits are validated and
pushed as undo commands; a refused edit emits :attr:`HoldingsModel.edit_rejected` with the
reason and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont

from core.errors import StackOptError
from core.portfolio import CASH_LABEL
from desktop.formatting import money, parse_number, percent, shares
from desktop.models.fund_map_model import short_label
from desktop.session import Session
from desktop.undo_commands import (
    SetCashCommand,
    SetPriceCommand,
    SetSharesCommand,
    is_placeholder,
)

Index = QModelIndex | QPersistentModelIndex

SYMBOL, NAME, SHARES, PRICE, VALUE, WEIGHT, NOTIONAL = range(7)
FIXED_COLUMNS = ("Symbol", "Name", "Shares", "Price", "Market value", "Weight", "Fund notional")
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_PROBLEM = QColor(255, 228, 225)
_MUTED = QColor(110, 110, 110)

#: Custom role: the raw number (or text) behind a cell.
RawRole = Qt.ItemDataRole.UserRole


@dataclass
class _Row:
    symbol: str
    name: str
    shares: float | None
    price: float | None
    value: float | None
    weight: float | None
    notional: float | None
    exposures: dict[str, float] = field(default_factory=dict)  # fund's, fractions of NAV
    problem: str = ""
    placeholder: bool = False
    is_cash: bool = False


class HoldingsModel(QAbstractTableModel):
    """Holdings of ``session.workspace`` with values and exposures computed by core.

    Attributes
    ----------
    exposure_codes : list of str
        Exposure types shown as columns (every type a holding carries), registry order.
    total_value, total_notional : float or None
        Portfolio totals from core (None when the portfolio cannot be valued).
    exposures, exposures_by_group : pd.Series
        ``Portfolio.exposures`` / ``exposures_by_group`` (fractions of total value; empty
        when the portfolio cannot be valued).
    problem : str
        Why the portfolio cannot be valued ('' when it can).
    """

    edit_rejected = Signal(str)

    def __init__(self, session: Session, parent: Any = None):
        super().__init__(parent)
        self._session = session
        self._rows: list[_Row] = []
        self.exposure_codes: list[str] = []
        self.total_value: float | None = None
        self.total_notional: float | None = None
        self.exposures = pd.Series(dtype=float)
        self.exposures_by_group = pd.Series(dtype=float)
        self.problem = ""
        self.refresh()
        session.workspace_replaced.connect(self.refresh)
        session.portfolio_changed.connect(self.refresh)
        session.fund_map_changed.connect(self.refresh)
        session.constraints_changed.connect(self.refresh)

    # --------------------------------------------------------------- building
    def _build(self) -> tuple[list[_Row], list[str]]:
        ws = self._session.workspace
        portfolio = ws.priced_portfolio()
        fund_map = ws.fund_map
        currency = portfolio.currency
        self.problem = ""
        self.total_value = None
        self.total_notional = None
        self.exposures = pd.Series(dtype=float)
        self.exposures_by_group = pd.Series(dtype=float)
        weights: pd.Series | None = None
        try:
            weights = portfolio.weights()
            self.total_value = portfolio.total_value
            known = all(s in fund_map for s in portfolio.symbols)
            if known:
                self.total_notional = portfolio.total_notional(fund_map)
                self.exposures = portfolio.exposures(fund_map)
                self.exposures_by_group = portfolio.exposures_by_group(fund_map)
            else:
                unknown = [s for s in portfolio.symbols if s not in fund_map]
                self.problem = (
                    f"Not in the fund map: {', '.join(unknown)}; add them on the Fund Exposures tab"
                )
        except StackOptError as exc:
            self.problem = str(exc)
        codes = fund_map.used_exposure_types([s for s in portfolio.symbols if s in fund_map])
        rows: list[_Row] = []
        for h in portfolio.holdings:
            fund = fund_map.get(h.symbol)
            try:
                value: float | None = h.market_value
            except StackOptError:
                value = None
            problem = ""
            if fund is None:
                problem = f"{h.symbol} is not in the fund map; add it on the Fund Exposures tab"
            elif value is None:
                problem = f"{h.symbol} has no price; type the latest price per share"
            rows.append(
                _Row(
                    symbol=h.symbol,
                    name=(fund.name if fund and fund.name else h.name) or "",
                    shares=h.shares,
                    price=h.price,
                    value=value,
                    weight=float(weights[h.symbol]) if weights is not None else None,
                    notional=fund.notional if fund else None,
                    exposures={k: v / 100.0 for k, v in fund.exposures.items()} if fund else {},
                    problem=problem,
                    placeholder=is_placeholder(fund),
                )
            )
        rows.append(
            _Row(
                symbol=CASH_LABEL,
                name=f"Cash ({currency})",
                shares=None,
                price=None,
                value=portfolio.cash,
                weight=portfolio.cash_weight if weights is not None else None,
                notional=None,
                is_cash=True,
            )
        )
        return rows, codes

    def refresh(self) -> None:
        """Rebuild from the workspace; keeps the view's selection when the shape is unchanged."""
        rows, codes = self._build()
        same_shape = [r.symbol for r in rows] == [r.symbol for r in self._rows] and (
            codes == self.exposure_codes
        )
        if same_shape and self._rows:
            self._rows = rows
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(rows) - 1, self.columnCount() - 1)
            )
            return
        self.beginResetModel()
        self._rows = rows
        self.exposure_codes = codes
        self.endResetModel()

    # ------------------------------------------------------------------ access
    @property
    def currency(self) -> str:
        return self._session.workspace.portfolio.currency

    def symbol_at(self, row: int) -> str:
        return self._rows[row].symbol

    def is_cash_row(self, row: int) -> bool:
        return self._rows[row].is_cash

    def row_of(self, symbol: str) -> int:
        """Row of ``symbol`` (``CASH`` for the cash row); -1 when absent."""
        for i, r in enumerate(self._rows):
            if r.symbol == symbol.upper():
                return i
        return -1

    def column_of(self, header: str) -> int:
        """Column whose header (or exposure code) is ``header``; -1 when absent."""
        if header in FIXED_COLUMNS:
            return FIXED_COLUMNS.index(header)
        if header in self.exposure_codes:
            return len(FIXED_COLUMNS) + self.exposure_codes.index(header)
        return -1

    # ----------------------------------------------------------- Qt interface
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(FIXED_COLUMNS) + len(self.exposure_codes)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < self.columnCount():
            return None
        code = (
            self.exposure_codes[section - len(FIXED_COLUMNS)]
            if section >= len(FIXED_COLUMNS)
            else None
        )
        if role == Qt.ItemDataRole.DisplayRole:
            # Exposure columns use the same two-line labels as the Fund Exposures tab.
            return FIXED_COLUMNS[section] if code is None else short_label(code)
        if role == Qt.ItemDataRole.ToolTipRole:
            if code is not None:
                t = self._session.workspace.fund_map.exposure_types[code]
                return (
                    f"{t.name} ({code}, {t.group.label}): this position's exposure as a share "
                    "of the portfolio's total value (weight x the fund's exposure)"
                )
            return {
                SHARES: "Number of shares held (double-click to edit)",
                PRICE: "Latest price per share (double-click to edit)",
                VALUE: "Shares x price; the cash amount is editable on the cash row",
                WEIGHT: "Market value as a share of total value, cash included",
                NOTIONAL: "The fund's notional: sum of its absolute exposures per dollar",
            }.get(section)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _LEFT if section in (SYMBOL, NAME) else _RIGHT
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        row = self._rows[index.row()]
        col = index.column()
        if (row.is_cash and col == VALUE) or (not row.is_cash and col in (SHARES, PRICE)):
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def _raw(self, row: _Row, col: int) -> Any:
        if col >= len(FIXED_COLUMNS):
            code = self.exposure_codes[col - len(FIXED_COLUMNS)]
            if row.is_cash or code not in row.exposures:
                return None
            return row.exposures[code] * row.weight if row.weight is not None else None
        return (
            row.symbol,
            row.name,
            row.shares,
            row.price,
            row.value,
            row.weight,
            row.notional,
        )[col]

    def _display(self, row: _Row, col: int, raw: Any) -> str:
        if col == SYMBOL or col == NAME:
            return str(raw)
        if raw is None:
            if col == PRICE and not row.is_cash and row.shares:
                return "no price"
            return ""
        if col == SHARES:
            return shares(raw)
        if col in (PRICE, VALUE):
            return money(raw, self.currency)
        if col == NOTIONAL:
            return percent(raw, 0)
        return percent(raw, 1)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        col = index.column()
        if not 0 <= col < self.columnCount():
            return None
        raw = self._raw(row, col)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, col, raw)
        if role == Qt.ItemDataRole.EditRole:
            # Plain text without separators: the default delegate gives a line edit and
            # setData parses it (a spin box would round shares to 2 decimals).
            if raw is None or col in (SYMBOL, NAME):
                return "" if raw is None else str(raw)
            return f"{raw:.10g}"
        if role == RawRole:
            return raw
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _LEFT if col in (SYMBOL, NAME) else _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, col)
        if role == Qt.ItemDataRole.BackgroundRole:
            if row.problem and col in (SYMBOL, PRICE):
                return QBrush(_PROBLEM)
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if row.placeholder and col == NAME:
                return QBrush(_MUTED)
            return None
        if role == Qt.ItemDataRole.FontRole:
            if row.is_cash or (row.placeholder and col == NAME):
                font = QFont()
                font.setItalic(True)
                return font
            return None
        return None

    def _tooltip(self, row: _Row, col: int) -> str | None:
        if row.problem:
            return row.problem
        if row.placeholder and col in (SYMBOL, NAME):
            return (
                f"{row.symbol} is a placeholder (100% US equity): enter its real exposures "
                "on the Fund Exposures tab"
            )
        if row.is_cash and col == VALUE:
            return "Cash in the portfolio currency (double-click to edit)"
        if col >= len(FIXED_COLUMNS) and not row.is_cash:
            code = self.exposure_codes[col - len(FIXED_COLUMNS)]
            per_nav = row.exposures.get(code)
            if per_nav is None:
                return None
            return (
                f"{row.symbol} carries {percent(per_nav, 0)} of its NAV in {code}; at a "
                f"weight of {percent(row.weight)} this adds {percent(self._raw(row, col))} "
                "to the portfolio"
            )
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        if not self.flags(index) & Qt.ItemFlag.ItemIsEditable:
            return False
        row = self._rows[index.row()]
        col = index.column()
        what = "cash" if row.is_cash else f"{row.symbol} {FIXED_COLUMNS[col].lower()}"
        try:
            number = parse_number(value)
        except ValueError as exc:
            self.edit_rejected.emit(f"{what}: {exc}; type a number such as 1,250")
            return False
        if number == self._raw(row, col):
            return True
        try:
            if row.is_cash:
                command = SetCashCommand(self._session, number)
            elif col == SHARES:
                command = SetSharesCommand(self._session, row.symbol, number)
            else:
                command = SetPriceCommand(self._session, row.symbol, number)
        except StackOptError as exc:
            self.edit_rejected.emit(str(exc))
            return False
        self._session.undo_stack.push(command)
        return True
