"""Table models of the market data dialog: coverage per symbol and data-quality issues."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from core.market_data import DataIssue
from desktop.session import MarketData

Index = QModelIndex | QPersistentModelIndex
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_SEVERITY_BRUSH = {
    "error": QBrush(QColor(255, 220, 220)),
    "warning": QBrush(QColor(255, 243, 205)),
}


@dataclass(frozen=True)
class Coverage:
    """History of one symbol: first and last priced date and the number of prices."""

    symbol: str
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    observations: int
    issues: int
    held: bool


def coverage(market_data: MarketData | None, held: set[str] | None = None) -> list[Coverage]:
    """One :class:`Coverage` per price column (vectorised: fast for 500+ columns)."""
    if market_data is None or market_data.prices.empty:
        return []
    prices = market_data.prices
    counts, first, last = market_data.column_span
    per_symbol = Counter(i.symbol for i in market_data.report.issues if i.symbol)
    held = held or set()
    firsts = list(prices.index[first])  # Timestamps, one vectorised lookup
    lasts = list(prices.index[last])
    out = []
    for j, (symbol, n) in enumerate(zip(prices.columns, counts.tolist(), strict=True)):
        name = str(symbol)
        out.append(
            Coverage(
                symbol=name,
                first=firsts[j] if n else None,
                last=lasts[j] if n else None,
                observations=n,
                issues=per_symbol.get(name, 0),
                held=name in held,
            )
        )
    return out


class CoverageModel(QAbstractTableModel):
    """Symbol, first date, last date, number of prices, held, issues (held symbols first)."""

    COLUMNS = ("Symbol", "First date", "Last date", "Prices", "Held", "Issues")

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.rows: list[Coverage] = []

    def set_rows(self, rows: list[Coverage]) -> None:
        self.beginResetModel()
        self.rows = sorted(rows, key=lambda r: not r.held)  # stable: file order otherwise
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _LEFT if section in (0, 4) else _RIGHT
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        r = self.rows[index.row()]
        col = index.column()
        raw = (r.symbol, r.first, r.last, r.observations, r.held, r.issues)[col]
        if role == Qt.ItemDataRole.DisplayRole:
            if col in (1, 2):
                return f"{raw:%Y-%m-%d}" if raw is not None else ""
            if col == 3:
                return f"{raw:,}"
            if col == 4:
                return "held" if raw else ""
            if col == 5:
                return str(raw) if raw else ""
            return str(raw)
        if role == Qt.ItemDataRole.UserRole:
            return raw
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _LEFT if col in (0, 4) else _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole and r.first is not None and r.last is not None:
            years = (r.last - r.first).days / 365.25
            return f"{r.symbol}: {r.observations:,} prices over {years:.1f} years"
        if role == Qt.ItemDataRole.BackgroundRole and col == 5 and r.issues:
            return _SEVERITY_BRUSH["warning"]
        return None


class IssuesModel(QAbstractTableModel):
    """Severity, symbol, date, what was found (from a DataQualityReport)."""

    COLUMNS = ("Severity", "Symbol", "Date", "What was found")

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.issues: list[DataIssue] = []

    def set_issues(self, issues: list[DataIssue], held: set[str] | None = None) -> None:
        """Errors first, then the held symbols' issues, then the rest by symbol."""
        order = {"error": 0, "warning": 1, "info": 2}
        held = held or set()
        self.beginResetModel()
        self.issues = sorted(
            issues, key=lambda i: (order.get(i.severity, 3), i.symbol not in held, i.symbol)
        )
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.issues)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.issues):
            return None
        issue = self.issues[index.row()]
        col = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            if col == 0:
                return issue.severity + (" (repaired)" if issue.repaired else "")
            if col == 1:
                return issue.symbol or "(all)"
            if col == 2:
                if issue.date is None:
                    return ""
                text = f"{issue.date:%Y-%m-%d}"
                if issue.end is not None and issue.end != issue.date:
                    text += f" to {issue.end:%Y-%m-%d}"
                return text
            return issue.message
        if role == Qt.ItemDataRole.BackgroundRole and col == 0:
            return _SEVERITY_BRUSH.get(issue.severity)
        return None


def latest_prices(market_data: MarketData, symbols: list[str]) -> tuple[dict[str, float], str]:
    """Last available price of each of ``symbols`` in the history, and the latest date.

    Symbols without any price are left out.
    """
    prices = market_data.prices
    out: dict[str, float] = {}
    dates = []
    for s in symbols:
        if s in prices.columns:
            col = prices[s].dropna()
            if not col.empty and np.isfinite(col.iloc[-1]) and col.iloc[-1] > 0:
                out[s] = float(col.iloc[-1])
                dates.append(col.index[-1])
    date = f"{max(dates):%Y-%m-%d}" if dates else ""
    return out, date
