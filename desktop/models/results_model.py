"""Table models of the Results tab.

- :class:`WeightsModel`: target vs current weight per fund and the change, plus cash.
- :class:`ExposuresModel`: exposure per type before and after, plus total notional.
- :class:`MetricsModel`: expected return, volatility, Sharpe ratio, notional,
  diversification, effective number of funds, concentration, solver and status.
- :class:`TargetExposureModel`: the target profile of exposure matching (editable; kept
  in the workspace settings under :data:`TARGET_EXPOSURES_KEY` through undo commands).

Both portfolios are :class:`~core.optimization.results.OptimizationResult` objects: the
"current" one is the holdings measured with the same inputs as the run. Weights are
fractions of total value, shown in percent; numbers are right-aligned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from core.errors import StackOptError
from core.exposures import FundExposureMap
from core.optimization.results import OptimizationResult
from desktop.formatting import parse_number, percent
from desktop.session import Session
from desktop.undo_commands import SetSettingsCommand

Index = QModelIndex | QPersistentModelIndex

_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_UP = QBrush(QColor(46, 125, 50))
_DOWN = QBrush(QColor(183, 28, 28))
_MUTED = QBrush(QColor(110, 110, 110))
_BOLD = QFont()
_BOLD.setBold(True)
#: Workspace setting holding the exposure-matching target: exposure code -> fraction.
TARGET_EXPOSURES_KEY = "target_exposures"
#: Weights this small are shown as zero and rows of zeros are left out.
TOL = 1e-6


def signed_percent(value: float | None, decimals: int = 1) -> str:
    """``+1.2%`` / ``-0.4%`` / ``0.0%``; '' for None or NaN."""
    if value is None or not math.isfinite(value):
        return ""
    if abs(value) < 0.5 * 10 ** -(decimals + 2):
        return f"{0:.{decimals}f}%"
    return f"{value * 100:+,.{decimals}f}%"


@dataclass(frozen=True)
class _Row:
    label: str
    detail: str
    current: float | None
    target: float | None
    tooltip: str = ""
    total: bool = False  # a summary row (bold)

    @property
    def change(self) -> float | None:
        if self.current is None or self.target is None:
            return None
        return self.target - self.current


class _Table(QAbstractTableModel):
    """Row and column counts and the header row of the read-mostly tables below.

    A subclass gives ``HEADERS``, the number of rows (:meth:`_n_rows`) and which columns
    hold numbers (:meth:`_numeric_column`, right-aligned in the header and the cells).
    """

    HEADERS: tuple[str, ...] = ()

    def _n_rows(self) -> int:
        raise NotImplementedError

    def _numeric_column(self, column: int) -> bool:
        return False

    def _header(self, section: int) -> str:
        return self.HEADERS[section]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else self._n_rows()

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: N802, E501
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._header(section)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if self._numeric_column(section) else _LEFT
        return None


class _CompareModel(_Table):
    """Rows of (label, detail, current, target, change); read-only."""

    HEADERS: tuple[str, ...] = ("Name", "Detail", "Current", "Target", "Change")

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self._rows: list[_Row] = []

    def _n_rows(self) -> int:
        return len(self._rows)

    def _numeric_column(self, column: int) -> bool:
        return column >= 2

    def row(self, i: int) -> _Row:
        return self._rows[i]

    def row_of(self, label: str) -> int:
        for i, r in enumerate(self._rows):
            if r.label == label:
                return i
        raise KeyError(label)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        r = self._rows[index.row()]
        col = index.column()
        values = (r.current, r.target, r.change)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return r.label
            if col == 1:
                return r.detail
            value = values[col - 2]
            return signed_percent(value) if col == 4 else percent(value, 1)
        if role == Qt.ItemDataRole.EditRole:
            if col == 0:
                return r.label
            if col == 1:
                return r.detail
            return values[col - 2]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if self._numeric_column(col) else _LEFT
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == 4 and r.change is not None and abs(r.change) >= 5e-4:
                return _UP if r.change > 0 else _DOWN
            if col == 1:
                return _MUTED
            return None
        if role == Qt.ItemDataRole.FontRole and r.total:
            return _BOLD
        if role == Qt.ItemDataRole.ToolTipRole:
            return r.tooltip or None
        return None

    def _set_rows(self, rows: list[_Row]) -> None:
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()


class WeightsModel(_CompareModel):
    """Target vs current weight per fund (fractions of total value), and cash."""

    HEADERS = ("Fund", "Name", "Current", "Target", "Change")

    def set_results(
        self,
        current: OptimizationResult | None,
        target: OptimizationResult | None,
        fund_map: FundExposureMap,
    ) -> None:
        cur = current.weights if current is not None else pd.Series(dtype=float)
        tgt = target.weights if target is not None else pd.Series(dtype=float)
        symbols = [str(s) for s in dict.fromkeys([*tgt.index, *cur.index])]
        symbols = [
            s
            for s in symbols
            if abs(float(cur.get(s, 0.0))) > TOL or abs(float(tgt.get(s, 0.0))) > TOL
        ]
        symbols.sort(key=lambda s: (-abs(float(tgt.get(s, 0.0))), -abs(float(cur.get(s, 0.0)))))
        rows: list[_Row] = []
        for s in symbols:
            fund = fund_map.get(s)
            name = fund.name if fund is not None and fund.name else ""
            tip = ""
            if fund is not None:
                parts = ", ".join(f"{v:g}% {k}" for k, v in fund.exposures.items())
                tip = f"{s}: {parts} (notional {fund.notional:.0%})"
            rows.append(
                _Row(
                    s,
                    name,
                    float(cur.get(s, 0.0)) if current is not None else None,
                    float(tgt.get(s, 0.0)) if target is not None else None,
                    tip,
                )
            )
        if current is not None or target is not None:
            rows.append(
                _Row(
                    "Cash",
                    "",
                    current.cash_weight if current is not None else None,
                    target.cash_weight if target is not None else None,
                    "Cash as a share of total value",
                    total=True,
                )
            )
        self._set_rows(rows)


class ExposuresModel(_CompareModel):
    """Exposure per type before and after (fractions of total value), and total notional."""

    HEADERS = ("Exposure", "Asset class", "Current", "Target", "Change")

    def set_results(
        self,
        current: OptimizationResult | None,
        target: OptimizationResult | None,
        fund_map: FundExposureMap,
    ) -> None:
        cur = current.exposures if current is not None else pd.Series(dtype=float)
        tgt = target.exposures if target is not None else pd.Series(dtype=float)
        order = list(fund_map.exposure_types)
        codes = [
            c
            for c in order
            if abs(float(cur.get(c, 0.0))) > TOL or abs(float(tgt.get(c, 0.0))) > TOL
        ]
        codes += [
            str(c)
            for c in dict.fromkeys([*tgt.index, *cur.index])
            if c not in order
            and (abs(float(cur.get(c, 0.0))) > TOL or abs(float(tgt.get(c, 0.0))) > TOL)
        ]
        rows: list[_Row] = []
        for c in codes:
            etype = fund_map.exposure_types.get(c)
            rows.append(
                _Row(
                    etype.name if etype is not None else c,
                    etype.group.label if etype is not None else "",
                    float(cur.get(c, 0.0)) if current is not None else None,
                    float(tgt.get(c, 0.0)) if target is not None else None,
                    f"{c}: {etype.description}" if etype is not None and etype.description else c,
                )
            )
        if current is not None or target is not None:
            rows.append(
                _Row(
                    "Total notional",
                    "",
                    current.total_notional if current is not None else None,
                    target.total_notional if target is not None else None,
                    "Sum of |weight| x fund notional: gross exposure per dollar",
                    total=True,
                )
            )
        self._set_rows(rows)


def _fmt_ratio(decimals: int) -> Callable[[Any], str]:
    def fmt(v: Any) -> str:
        return f"{v:,.{decimals}f}" if isinstance(v, int | float) and math.isfinite(v) else ""

    return fmt


def _fmt_pct(decimals: int) -> Callable[[Any], str]:
    return lambda v: percent(v, decimals) if isinstance(v, int | float) else ""


def _fmt_seconds(v: Any) -> str:
    if not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        return ""
    return f"{v * 1000:,.0f} ms" if v < 10 else f"{v:,.1f} s"


def _objective_label(r: OptimizationResult) -> str:
    from core.optimization.workflow import OBJECTIVE_CHOICES

    label = getattr(r.objective, "label", None)
    return str(label or OBJECTIVE_CHOICES.get(str(r.objective), str(r.objective)))


#: Metrics rows: label, value getter, formatter, tooltip, numeric (right-aligned).
METRICS: tuple[
    tuple[str, Callable[[OptimizationResult], Any], Callable[[Any], str], str, bool], ...
] = (
    (
        "Expected return",
        lambda r: r.expected_return,
        _fmt_pct(2),
        "Annual, cash rate included",
        True,
    ),
    ("Volatility", lambda r: r.expected_volatility, _fmt_pct(2), "Annual standard deviation", True),
    (
        "Sharpe ratio",
        lambda r: r.sharpe_ratio,
        _fmt_ratio(2),
        "(return - cash rate) / volatility",
        True,
    ),
    ("Total notional", lambda r: r.total_notional, _fmt_pct(1), "Gross exposure per dollar", True),
    ("Cash", lambda r: r.cash_weight, _fmt_pct(1), "Cash as a share of total value", True),
    (
        "Diversification ratio",
        lambda r: r.diversification_ratio,
        _fmt_ratio(2),
        "Weighted average fund volatility / portfolio volatility (1 = none)",
        True,
    ),
    (
        "Effective number of funds",
        lambda r: r.effective_assets,
        _fmt_ratio(1),
        "1 / sum of squared weights: how many equal positions the portfolio is worth",
        True,
    ),
    (
        "Concentration (HHI)",
        lambda r: r.concentration_ratio,
        _fmt_ratio(3),
        "Herfindahl index of the weights: 1 = one fund, 1/N = equal weights",
        True,
    ),
    ("Objective", _objective_label, str, "What the optimizer maximised or minimised", False),
    ("Solver", lambda r: r.solver, str, "The solver that produced the answer", False),
    ("Status", lambda r: r.status, str, "Solver status; every constraint is re-checked", False),
    ("Solve time", lambda r: r.solve_time, _fmt_seconds, "", True),
)


class MetricsModel(_Table):
    """One row per metric; columns Metric, Current, Chosen."""

    HEADERS = ("Metric", "Current", "Chosen")

    def __init__(self, parent: Any = None):
        super().__init__(parent)
        self.current: OptimizationResult | None = None
        self.chosen: OptimizationResult | None = None
        self.chosen_title = "Chosen"

    def set_results(
        self,
        current: OptimizationResult | None,
        chosen: OptimizationResult | None,
        chosen_title: str = "Chosen",
    ) -> None:
        self.beginResetModel()
        self.current, self.chosen, self.chosen_title = current, chosen, chosen_title
        self.endResetModel()
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 2, 2)

    def _n_rows(self) -> int:
        return len(METRICS)

    def _numeric_column(self, column: int) -> bool:
        return column >= 1

    def _header(self, section: int) -> str:
        return self.chosen_title if section == 2 else self.HEADERS[section]

    def value(self, label: str, which: str = "chosen") -> Any:
        """The raw value of metric ``label`` for 'current' or 'chosen' (None if absent)."""
        result = self.chosen if which == "chosen" else self.current
        for name, get, _fmt, _tip, _num in METRICS:
            if name == label:
                return None if result is None else get(result)
        raise KeyError(label)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(METRICS):
            return None
        name, get, fmt, tip, numeric = METRICS[index.row()]
        col = index.column()
        result = self.current if col == 1 else self.chosen
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if col == 0:
                return name
            if result is None:
                return ""
            value = get(result)
            if role == Qt.ItemDataRole.EditRole:
                return value
            return fmt(value) if value not in (None, "") else ""
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if self._numeric_column(col) and numeric else _LEFT
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == 2 and name == "Status" and result is not None and result.message:
                return result.message
            if col >= 1 and not numeric and result is not None:
                return str(get(result)) or None  # long text is elided in the cell
            return tip or None
        if role == Qt.ItemDataRole.ForegroundRole and col == 2 and name == "Status":
            if result is not None and not result.success:
                return _DOWN
        return None


class TargetExposureModel(_Table):
    """The exposure-matching target: one row per exposure type, target in percent.

    The target is kept in the workspace settings (``target_exposures``: code ->
    fraction) and changed through :class:`~desktop.undo_commands.SetSettingsCommand`.
    Until the user sets one, the current holdings' exposures are shown as the target.
    """

    HEADERS = ("Exposure type", "Asset class", "Target")
    TARGET = 2
    #: Largest target accepted, in percent of the portfolio (leveraged profiles reach 300%).
    LIMIT_PCT = 500.0

    def __init__(self, session: Session, parent: Any = None):
        super().__init__(parent)
        self.session = session
        self._codes: list[str] = []
        self._values: dict[str, float] = {}
        self.saved = False
        for signal in (
            session.workspace_replaced,
            session.settings_changed,
            session.fund_map_changed,
            session.portfolio_changed,
        ):
            signal.connect(self.reload)
        self.reload()

    def reload(self) -> None:
        ws = self.session.workspace
        saved = ws.settings.get(TARGET_EXPOSURES_KEY)
        self.beginResetModel()
        self._codes = list(ws.fund_map.exposure_types)
        if isinstance(saved, Mapping):
            self.saved = True
            self._values = {str(k).upper(): float(v) for k, v in saved.items()}
            self._codes += [c for c in self._values if c not in self._codes]
        else:
            self.saved = False
            try:
                current = ws.priced_portfolio().exposures(ws.fund_map)
                self._values = {
                    str(k): round(float(v), 3) for k, v in current.items() if abs(v) > 1e-9
                }
            except StackOptError:
                self._values = {}
        self.endResetModel()

    def targets(self) -> dict[str, float]:
        """Exposure code -> target fraction, non-zero entries only."""
        return {c: v for c, v in self._values.items() if abs(v) > 1e-12}

    def code(self, row: int) -> str:
        return self._codes[row]

    def row_of(self, code: str) -> int:
        return self._codes.index(code)

    def _n_rows(self) -> int:
        return len(self._codes)

    def _numeric_column(self, column: int) -> bool:
        return column == self.TARGET

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == self.TARGET:
            base |= Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._codes):
            return None
        code = self._codes[index.row()]
        etype = self.session.workspace.fund_map.exposure_types.get(code)
        col = index.column()
        value = self._values.get(code, 0.0)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return etype.name if etype is not None else code
            if col == 1:
                return etype.group.label if etype is not None else ""
            return percent(value, 1)
        if role == Qt.ItemDataRole.EditRole:
            if col == self.TARGET:
                return round(value * 100, 6)
            return code if col == 0 else (etype.group.label if etype is not None else "")
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if self._numeric_column(col) else _LEFT
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == 1 or (col == self.TARGET and abs(value) < 1e-12):
                return _MUTED
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{code}: target exposure in percent of the portfolio (double-click to edit)"
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        if index.column() != self.TARGET or index.row() >= len(self._codes):
            return False
        try:
            pct = parse_number(value)
        except ValueError:
            return False
        if abs(pct) > self.LIMIT_PCT:
            return False
        code = self._codes[index.row()]
        new = dict(self._values)
        new[code] = pct / 100.0
        new = {c: v for c, v in new.items() if abs(v) > 1e-12}
        if new == self.targets() and self.saved:
            return True
        try:
            command = SetSettingsCommand(
                self.session, {TARGET_EXPOSURES_KEY: new}, f"set target exposure {code}"
            )
        except StackOptError:
            return False
        self.session.undo_stack.push(command)  # settings_changed -> reload
        return True

    def reset_to(self, targets: Mapping[str, float], text: str = "reset target exposures") -> None:
        """Replace the whole target (fractions) through one undo command."""
        new = {str(k).upper(): float(v) for k, v in targets.items() if abs(float(v)) > 1e-12}
        self.session.undo_stack.push(
            SetSettingsCommand(self.session, {TARGET_EXPOSURES_KEY: new}, text)
        )
