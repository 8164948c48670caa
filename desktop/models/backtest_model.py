"""Table model of backtest statistics: one row per strategy, over :func:`core.backtest.compare`.

The model shows the DataFrame that :func:`core.backtest.compare` returns (strategies x
statistics) and never computes a statistic itself. Fractions are shown as percent, ratios
with two decimals and drawdown dates as ``YYYY-MM-DD``; the raw value of every cell is
under :data:`RAW_ROLE` for tests and export.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont

from desktop.formatting import percent

RAW_ROLE = Qt.ItemDataRole.UserRole + 1
_Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class StatColumn:
    """One column: the :func:`compare` key, its header, how to show it, its tooltip."""

    key: str
    header: str
    kind: str  # 'percent', 'ratio', 'date', 'count'
    tooltip: str
    decimals: int = 1


#: The columns after the strategy name, in order.
STAT_COLUMNS: tuple[StatColumn, ...] = (
    StatColumn("cagr", "CAGR", "percent", "Compound annual growth rate, net of costs", 2),
    StatColumn("volatility", "Volatility", "percent", "Annualised standard deviation of returns"),
    StatColumn("sharpe", "Sharpe", "ratio", "Mean excess return over cash / its volatility"),
    StatColumn("sortino", "Sortino", "ratio", "Mean excess return over cash / downside deviation"),
    StatColumn(
        "max_drawdown", "Max DD", "percent", "Maximum drawdown: the deepest peak-to-trough loss"
    ),
    StatColumn("max_drawdown_peak", "DD peak", "date", "Date of the peak before the max drawdown"),
    StatColumn("max_drawdown_trough", "DD trough", "date", "Date of the max drawdown's trough"),
    StatColumn(
        "max_drawdown_recovery",
        "Recovered",
        "date",
        "Date the max drawdown was made good ('not yet' if the backtest ended under water)",
    ),
    StatColumn("calmar", "Calmar", "ratio", "CAGR / |max drawdown|"),
    StatColumn(
        "annual_turnover",
        "Turnover/yr",
        "percent",
        "Traded value per year as a share of portfolio value, buys plus sells (switching the "
        "whole portfolio once is 200%)",
        0,
    ),
    StatColumn(
        "total_costs",
        "Costs",
        "percent",
        "Transaction costs paid over the backtest, as a share of starting wealth",
        2,
    ),
    StatColumn(
        "average_notional",
        "Notional",
        "percent",
        "Average gross notional exposure (leveraged and stacked funds count their full exposure)",
        0,
    ),
)
_BENCHMARK_KEYS = ("excess_cagr", "tracking_error", "information_ratio", "beta")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_stat(value: Any, column: StatColumn) -> str:
    """What a cell shows: percent, two-decimal ratio, a date, or '' when undefined."""
    if column.kind == "date":
        if _is_missing(value):
            return "not yet" if column.key == "max_drawdown_recovery" else ""
        return f"{pd.Timestamp(value):%Y-%m-%d}"
    if _is_missing(value):
        return ""
    number = float(value)
    if not math.isfinite(number):
        return ""
    if column.kind == "percent":
        return percent(number, column.decimals)
    if column.kind == "count":
        return f"{int(number):,d}"
    return f"{number:,.2f}"


class BacktestStatsModel(QAbstractTableModel):
    """Read-only strategies x statistics table (column 0: the strategy name).

    Call :meth:`set_table` with the DataFrame of :func:`core.backtest.compare`
    (index: result names) and the colour of each strategy's curve (shown as a swatch).
    """

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._table = pd.DataFrame()
        self._colors: dict[str, QColor] = {}
        self._benchmark: str | None = None

    # ---------------------------------------------------------------- content
    def set_table(
        self,
        table: pd.DataFrame,
        colors: Mapping[str, QColor] | None = None,
        benchmark: str | None = None,
    ) -> None:
        """Show ``table`` (shape (strategies, statistics), indexed by strategy name)."""
        self.beginResetModel()
        self._table = table.copy()
        self._colors = dict(colors or {})
        self._benchmark = benchmark if benchmark in table.index else None
        self.endResetModel()

    def clear(self) -> None:
        self.set_table(pd.DataFrame())

    @property
    def table(self) -> pd.DataFrame:
        """A copy of the statistics shown (the :func:`compare` frame)."""
        return self._table.copy()

    @property
    def names(self) -> list[str]:
        return [str(s) for s in self._table.index]

    @staticmethod
    def column_of(key: str) -> int:
        """The view column of statistic ``key`` (0 is the strategy name)."""
        for i, col in enumerate(STAT_COLUMNS, start=1):
            if col.key == key:
                return i
        raise KeyError(f"no column shows {key!r}")

    def value(self, row: int, key: str) -> Any:
        """The raw statistic of ``row`` (None when the table lacks it)."""
        if key not in self._table.columns:
            return None
        return self._table.iloc[row][key]

    # -------------------------------------------------------------- Qt model
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._table.index)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else 1 + len(STAT_COLUMNS)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def headerData(  # noqa: N802
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if orientation == Qt.Orientation.Vertical:
            if role == Qt.ItemDataRole.DisplayRole and 0 <= section < self.rowCount():
                return str(section + 1)
            return None
        if not 0 <= section < self.columnCount():
            return None
        column = STAT_COLUMNS[section - 1] if section > 0 else None
        if role == Qt.ItemDataRole.DisplayRole:
            return "Strategy" if column is None else column.header
        if role == Qt.ItemDataRole.ToolTipRole:
            return "Strategy and rebalancing" if column is None else column.tooltip
        if role == Qt.ItemDataRole.TextAlignmentRole:
            align = Qt.AlignmentFlag.AlignLeft if column is None else Qt.AlignmentFlag.AlignRight
            return int(align | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not (
            0 <= index.row() < self.rowCount() and 0 <= index.column() < self.columnCount()
        ):
            return None
        name = str(self._table.index[index.row()])
        col = index.column()
        if col == 0:
            if role in (Qt.ItemDataRole.DisplayRole, RAW_ROLE):
                return name
            if role == Qt.ItemDataRole.DecorationRole:
                return self._colors.get(name)
            if role == Qt.ItemDataRole.ToolTipRole:
                return self._row_tooltip(index.row())
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            if role == Qt.ItemDataRole.FontRole and name == self._benchmark:
                font = QFont()
                font.setItalic(True)
                return font
            return None
        column = STAT_COLUMNS[col - 1]
        raw = self.value(index.row(), column.key)
        if role == Qt.ItemDataRole.DisplayRole:
            return format_stat(raw, column)
        if role == RAW_ROLE:
            return None if _is_missing(raw) else raw
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{column.header}: {format_stat(raw, column) or 'undefined'}\n{column.tooltip}"
        if role == Qt.ItemDataRole.ForegroundRole:
            if column.kind in ("percent", "ratio") and not _is_missing(raw) and float(raw) < 0:
                return QColor(176, 0, 32)
        return None

    def _row_tooltip(self, row: int) -> str:
        name = self.names[row]
        lines = [name]
        if self._benchmark is not None:
            if name == self._benchmark:
                lines.append("The benchmark of the other rows")
            elif all(k in self._table.columns for k in _BENCHMARK_KEYS):
                r = self._table.iloc[row]
                lines.append(
                    f"Against {self._benchmark}: excess CAGR {percent(r['excess_cagr'], 2)}, "
                    f"tracking error {percent(r['tracking_error'], 1)}, information ratio "
                    f"{format_stat(r['information_ratio'], STAT_COLUMNS[2]) or '-'}, beta "
                    f"{format_stat(r['beta'], STAT_COLUMNS[2]) or '-'}"
                )
        if "start" in self._table.columns and not _is_missing(self._table.iloc[row]["start"]):
            r = self._table.iloc[row]
            lines.append(
                f"Measured {pd.Timestamp(r['start']):%Y-%m-%d} to {pd.Timestamp(r['end']):%Y-%m-%d}"
            )
        return "\n".join(lines)


__all__ = ["RAW_ROLE", "STAT_COLUMNS", "BacktestStatsModel", "StatColumn", "format_stat"]
