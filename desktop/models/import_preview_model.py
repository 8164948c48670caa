"""Tables of the holdings import: the file's raw rows, its accounts, and every parsed line.

- :class:`FileRowsModel`: the header and first rows of a table that needs a column
  mapping, the mapped columns tinted and named by their role;
- :class:`AccountsModel`: the accounts of the file, each with a check box (the accounts
  to import, merged);
- :class:`ImportPreviewModel`: every line of the file with what will happen to it.

All three are read-only views of :mod:`desktop.holdings_import` objects except the
accounts' check boxes, which are dialog state (nothing in the workspace changes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont

from core.brokers import parse_money
from core.exposures import FundExposureMap
from desktop.formatting import money, shares
from desktop.holdings_import import ImportRow, ParsedImport, account_label

Index = QModelIndex | QPersistentModelIndex

COLUMNS = ("Line", "Account", "Symbol", "Name", "Shares", "Price", "Market value", "Status")
LINE, ACCOUNT, SYMBOL, NAME, SHARES, PRICE, VALUE, STATUS = range(len(COLUMNS))
_NUMERIC = (LINE, SHARES, PRICE, VALUE)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_ERROR = QBrush(QColor(255, 220, 220))
_NEW = QBrush(QColor(255, 243, 205))
_SKIP = QBrush(QColor(235, 235, 235))
_GREY = QBrush(QColor(110, 110, 110))
_MAPPED = QBrush(QColor(221, 235, 255))
_DISPLAY = Qt.ItemDataRole.DisplayRole


class ImportPreviewModel(QAbstractTableModel):
    """Read-only rows of a :class:`ParsedImport` and their status.

    Status is one of: ``OK``; ``new fund: ...`` (not in the fund map, will be added as a
    100% US equity placeholder); ``skipped: not in the fund map`` (placeholders off);
    ``left out: account not selected``; ``skipped: <reason>`` for a line that is not a
    position (summary row, text); or ``error: <what is wrong>`` for a position or data
    row that cannot be imported.
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
        self._selected: set[str] | None = None  # None: every account

    # ------------------------------------------------------------ state
    def set_parsed(self, parsed: ParsedImport) -> None:
        """Show another parse (the column mapping changed)."""
        self.beginResetModel()
        self.parsed = parsed
        self._selected = None
        self.endResetModel()

    def set_add_placeholders(self, on: bool) -> None:
        self._add_placeholders = on
        self._statuses_changed()

    def set_selected_accounts(self, account_ids: Iterable[str] | None) -> None:
        """Accounts to import (None: all); the others' rows say so."""
        self._selected = None if account_ids is None else set(account_ids)
        self._statuses_changed()

    def _statuses_changed(self) -> None:
        if self.parsed.rows:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self.parsed.rows) - 1, len(COLUMNS) - 1)
            )

    def selected(self, row: ImportRow) -> bool:
        return row.account_id is not None and (
            self._selected is None or row.account_id in self._selected
        )

    def status(self, row: ImportRow) -> str:
        if row.skipped:
            return f"skipped: {row.skipped}"
        if row.error:
            return f"error: {row.error}"
        if not self.selected(row):
            return "left out: account not selected"
        if row.symbol not in self._fund_map:
            if self._add_placeholders:
                return "new fund: added as a placeholder (100% US equity)"
            return "skipped: not in the fund map"
        if row.price is None and row.symbol not in self._prices and row.shares:
            return "OK (no price yet: type it on the Holdings tab or load prices)"
        return "OK"

    def will_import(self, row: ImportRow) -> bool:
        return (
            row.ok
            and self.selected(row)
            and (row.symbol in self._fund_map or self._add_placeholders)
        )

    # ------------------------------------------------------------ Qt API
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.parsed.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == _DISPLAY:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if section in _NUMERIC else _LEFT
        return None

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.parsed.rows):
            return None
        row = self.parsed.rows[index.row()]
        col = index.column()
        if role == _DISPLAY:
            return self._text(row, col)
        if role == Qt.ItemDataRole.UserRole:
            return (
                row.line,
                row.account_id,
                row.symbol,
                row.name,
                row.shares,
                row.price,
                row.market_value,
                self.status(row),
            )[col]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if col in _NUMERIC else _LEFT
        if role == Qt.ItemDataRole.BackgroundRole:
            if row.error:
                return _ERROR
            if row.skipped or not self.selected(row):
                return _SKIP
            if row.symbol not in self._fund_map:
                return _NEW if self._add_placeholders else _SKIP
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            return _GREY if row.skipped or (row.ok and not self.selected(row)) else None
        if role == Qt.ItemDataRole.ToolTipRole:
            text = f"line {row.line}: {self.status(row)}"
            return f"{text}\n{row.name}" if row.name and not row.ok else text
        return None

    def _text(self, row: ImportRow, col: int) -> str | None:
        if col == LINE:
            return str(row.line)
        if col == ACCOUNT:
            return row.account
        if col == SYMBOL:
            return row.symbol
        if col == NAME:
            return row.name
        if col == SHARES:
            return shares(row.shares)
        if col == PRICE:
            return money(row.price, row.currency or self._currency)
        if col == VALUE:
            return money(row.market_value, row.currency or self._currency)
        if col == STATUS:
            return self.status(row)
        return None


# ------------------------------------------------------------------ accounts
ACCOUNT_COLUMNS = ("Account", "Name", "Positions", "Cash")
A_ID, A_NAME, A_POSITIONS, A_CASH = range(len(ACCOUNT_COLUMNS))


class AccountsModel(QAbstractTableModel):
    """The accounts of an import, each with a check box: the ones to import (merged).

    Emits ``selection_changed`` when a box is ticked or cleared. Every account starts
    ticked.
    """

    selection_changed = Signal()

    def __init__(self, parsed: ParsedImport, parent: Any = None):
        super().__init__(parent)
        self.parsed = parsed
        self._checked = [True] * len(parsed.imp.accounts)

    def set_parsed(self, parsed: ParsedImport) -> None:
        """Show another parse; the ticks are kept when the accounts are the same."""
        same = parsed.account_ids == self.parsed.account_ids
        self.beginResetModel()
        self.parsed = parsed
        if not same:
            self._checked = [True] * len(parsed.imp.accounts)
        self.endResetModel()
        if not same:
            self.selection_changed.emit()

    def selected_ids(self) -> list[str]:
        """Ticked accounts, in file order."""
        return [
            a.account_id
            for a, on in zip(self.parsed.imp.accounts, self._checked, strict=True)
            if on
        ]

    def set_selected(self, account_ids: Iterable[str]) -> None:
        wanted = set(account_ids)
        self._checked = [a.account_id in wanted for a in self.parsed.imp.accounts]
        if self._checked:
            self.dataChanged.emit(self.index(0, A_ID), self.index(len(self._checked) - 1, A_ID))
        self.selection_changed.emit()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.parsed.imp.accounts)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(ACCOUNT_COLUMNS)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(ACCOUNT_COLUMNS):
            return None
        if role == _DISPLAY:
            return ACCOUNT_COLUMNS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if section in (A_POSITIONS, A_CASH) else _LEFT
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == A_ID:
            base |= Qt.ItemFlag.ItemIsUserCheckable
        return base

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        accounts = self.parsed.imp.accounts
        if not index.isValid() or not 0 <= index.row() < len(accounts):
            return None
        account = accounts[index.row()]
        col = index.column()
        if role == _DISPLAY:
            if col == A_ID:
                return account.account_id or "(one account)"
            if col == A_NAME:
                return account.account_name
            if col == A_POSITIONS:
                return str(len(account.positions))
            if col == A_CASH:
                return "; ".join(money(v, c) for c, v in account.cash.items()) or "none"
            return None
        if role == Qt.ItemDataRole.CheckStateRole and col == A_ID:
            on = self._checked[index.row()]
            return Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if col in (A_POSITIONS, A_CASH) else _LEFT
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"Tick to import {account_label(account.account_id, account.account_name)}"
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if (
            not index.isValid()
            or index.column() != A_ID
            or role != Qt.ItemDataRole.CheckStateRole
            or not 0 <= index.row() < len(self._checked)
        ):
            return False
        try:
            state = Qt.CheckState(value)
        except ValueError:
            return False
        self._checked[index.row()] = state == Qt.CheckState.Checked
        self.dataChanged.emit(index, index, [role])
        self.selection_changed.emit()
        return True


# ------------------------------------------------------------------ raw file rows
class FileRowsModel(QAbstractTableModel):
    """The header and first rows of a table, the mapped columns tinted and labelled.

    ``roles`` maps a column position to the role the mapping gives it ("symbol");
    ``lines`` are the file's line numbers of the rows (the vertical header), so that they
    match the line numbers of the errors. Cells are shown as written; numbers are
    right-aligned.
    """

    def __init__(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        roles: Mapping[int, str] | None = None,
        lines: Sequence[int] | None = None,
        parent: Any = None,
    ):
        super().__init__(parent)
        self.header = list(header)
        self.rows = [list(r) for r in rows]
        self.lines = list(lines) if lines is not None else list(range(1, len(self.rows) + 1))
        if len(self.lines) != len(self.rows):
            raise ValueError("one line number per row")
        self._width = max([len(self.header), *(len(r) for r in self.rows)], default=0)
        self._roles = dict(roles or {})
        self._numeric = [[_is_number(c) for c in r] for r in self.rows]

    def set_roles(self, roles: Mapping[int, str]) -> None:
        self._roles = dict(roles)
        if self._width:
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, self._width - 1)
            if self.rows:
                self.dataChanged.emit(
                    self.index(0, 0), self.index(len(self.rows) - 1, self._width - 1)
                )

    def role_of(self, column: int) -> str:
        return self._roles.get(column, "")

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else self._width

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY
    ) -> Any:
        if orientation == Qt.Orientation.Vertical:
            if role == _DISPLAY and 0 <= section < len(self.rows):
                return str(self.lines[section])
            if role == Qt.ItemDataRole.ToolTipRole and 0 <= section < len(self.rows):
                return f"line {self.lines[section]} of the file"
            return None
        if not 0 <= section < self._width:
            return None
        name = self.header[section] if section < len(self.header) else ""
        if role == _DISPLAY:
            label = name or f"column {section + 1}"
            mapped = self._roles.get(section)
            return f"{label}\n\u2192 {mapped}" if mapped else f"{label}\n"
        if role == Qt.ItemDataRole.FontRole and section in self._roles:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            mapped = self._roles.get(section)
            return f"{name}: read as {mapped}" if mapped else f"{name}: not used"
        return None

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        r, c = index.row(), index.column()
        row = self.rows[r]
        if role == _DISPLAY:
            return row[c] if c < len(row) else ""
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if c < len(row) and self._numeric[r][c] else _LEFT
        if role == Qt.ItemDataRole.BackgroundRole and c in self._roles:
            return _MAPPED
        return None


def _is_number(text: str) -> bool:
    try:
        return parse_money(text) is not None
    except ValueError:
        return False
