"""Table models of the Constraints tab, over ``session.workspace.constraints``.

Limits are FRACTIONS in :class:`~core.optimization.constraints.OptimizationConstraints`
and PERCENT on screen. An empty cell means "no limit". Every edit pushes a
:class:`~desktop.tabs._commands.ConstraintsCommand`; text that is not a number stays in
the cell, highlighted, and the constraints are left unchanged.

The tab runs the contradiction check and tells each model which cells to flag
(:meth:`LimitsModel.set_flags`).
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from core.exposures import AssetGroup
from core.optimization.constraints import OptimizationConstraints
from desktop.session import Session
from desktop.tabs._commands import ConstraintsCommand

Index = QModelIndex | QPersistentModelIndex

_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
FLAG_BRUSH = QBrush(QColor(255, 205, 205))
_SET_BRUSH = QBrush(QColor(232, 242, 255))


def parse_percent(value: Any) -> float | None:
    """Percent typed by the user -> fraction; '' -> None; ValueError saying why if not a number."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().replace("%", "").replace(",", "").strip()
        if text == "":
            return None
        try:
            number = float(text)
        except ValueError:
            raise ValueError(
                f"{str(value).strip()!r} is not a number; type a percentage such as 25 "
                "(or leave it empty for no limit)"
            ) from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number / 100.0


def format_percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:,.1f}%"


class LimitsModel(QAbstractTableModel):
    """Rows of (label columns..., Min %, Max %) over a part of the constraints.

    Subclasses give the row keys, the label columns and how to read and write a bound.
    ``flags`` from the tab's check mark contradictory cells:
    ``{(row key, 'min' | 'max'): reason}``.
    """

    LABELS: tuple[str, ...] = ()

    def __init__(self, session: Session):
        super().__init__()
        self._session = session
        self._keys: list[str] = []
        self._flags: dict[tuple[str, str], str] = {}
        self._invalid: dict[tuple[str, str], tuple[str, str]] = {}
        self._keys = self.row_keys()
        session.constraints_changed.connect(self.refresh)
        session.workspace_replaced.connect(self._reset)
        session.fund_map_changed.connect(self.refresh)
        session.portfolio_changed.connect(self.refresh)

    # -------------------------------------------------------------- subclass API
    def row_keys(self) -> list[str]:
        raise NotImplementedError

    def label(self, key: str, column: int) -> str:
        raise NotImplementedError

    def bound(self, key: str) -> tuple[float | None, float | None]:
        raise NotImplementedError

    def with_bound(
        self, c: OptimizationConstraints, key: str, side: str, value: float | None
    ) -> OptimizationConstraints:
        """A copy of ``c`` with one side of ``key``'s bound changed."""
        raise NotImplementedError

    def undo_text(self, key: str, side: str) -> str:
        return f"Set {side} of {key}"

    # ------------------------------------------------------------------ helpers
    @property
    def constraints(self) -> OptimizationConstraints:
        return self._session.workspace.constraints

    @property
    def keys(self) -> list[str]:
        return list(self._keys)

    def row_of(self, key: str) -> int:
        try:
            return self._keys.index(key)
        except ValueError:
            return -1

    def min_column(self) -> int:
        return len(self.LABELS)

    def side_of(self, column: int) -> str | None:
        if column == len(self.LABELS):
            return "min"
        if column == len(self.LABELS) + 1:
            return "max"
        return None

    def _reset(self) -> None:
        self.beginResetModel()
        self._invalid.clear()
        self._flags.clear()
        self._keys = self.row_keys()
        self.endResetModel()

    def refresh(self) -> None:
        keys = self.row_keys()
        if keys != self._keys:
            self.beginResetModel()
            self._keys = keys
            self._invalid = {k: v for k, v in self._invalid.items() if k[0] in keys}
            self.endResetModel()
        elif self._keys:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._keys) - 1, self.columnCount() - 1)
            )

    def set_flags(self, flags: dict[tuple[str, str], str]) -> None:
        if flags == self._flags:
            return
        self._flags = dict(flags)
        if self._keys:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._keys) - 1, self.columnCount() - 1)
            )

    def flag(self, key: str, side: str) -> str | None:
        """Why a cell is flagged (contradiction or text that is not a number), else None."""
        invalid = self._invalid.get((key, side))
        if invalid is not None:
            return invalid[1]
        return self._flags.get((key, side))

    # ------------------------------------------------------------- Qt interface
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._keys)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.LABELS) + 2

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < self.columnCount():
            return None
        side = self.side_of(section)
        if role == Qt.ItemDataRole.DisplayRole:
            return self.LABELS[section] if side is None else ("Min %" if side == "min" else "Max %")
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _LEFT if side is None else _RIGHT
        if role == Qt.ItemDataRole.ToolTipRole and side is not None:
            return f"{'Floor' if side == 'min' else 'Cap'} in percent; empty = no limit"
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if self.side_of(index.column()) is not None:
            base |= Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        key = self._keys[index.row()]
        side = self.side_of(index.column())
        if side is None:
            if role == Qt.ItemDataRole.DisplayRole:
                return self.label(key, index.column())
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return _LEFT
            if role == Qt.ItemDataRole.ToolTipRole:
                return self.tooltip(key)
            if role == Qt.ItemDataRole.UserRole:
                return key
            return None
        lo, hi = self.bound(key)
        value = lo if side == "min" else hi
        invalid = self._invalid.get((key, side))
        if role == Qt.ItemDataRole.DisplayRole:
            return invalid[0] if invalid else format_percent(value)
        if role == Qt.ItemDataRole.EditRole:
            if invalid:
                return invalid[0]
            return "" if value is None else f"{value * 100:g}"
        if role == Qt.ItemDataRole.UserRole:
            return value
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT
        if role == Qt.ItemDataRole.BackgroundRole:
            if self.flag(key, side):
                return FLAG_BRUSH
            return _SET_BRUSH if value is not None else None
        if role == Qt.ItemDataRole.ToolTipRole:
            reason = self.flag(key, side)
            if invalid:
                return f"Not applied: {reason}"
            return reason or ("No limit: type a percentage" if value is None else None)
        return None

    def tooltip(self, key: str) -> str | None:
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.EditRole:
            return False
        side = self.side_of(index.column())
        if side is None:
            return False
        key = self._keys[index.row()]
        try:
            number = parse_percent(value)
        except ValueError as exc:
            self._invalid[(key, side)] = (str(value).strip(), str(exc))
            self.dataChanged.emit(index, index)
            return False
        had_invalid = self._invalid.pop((key, side), None) is not None
        lo, hi = self.bound(key)
        current = lo if side == "min" else hi
        if number == current or (
            number is not None and current is not None and abs(number - current) < 1e-12
        ):
            if had_invalid:
                self.dataChanged.emit(index, index)
            return True
        new = self.with_bound(self.constraints.copy(), key, side, number)
        self._session.undo_stack.push(
            ConstraintsCommand(self._session, new, self.undo_text(key, side))
        )
        return True


def _set_or_drop(mapping: dict[str, float], key: str, value: float | None) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


class ExposureLimitsModel(LimitsModel):
    """Floor and cap per exposure type (``min/max_exposure_per_type``)."""

    LABELS = ("Exposure type", "Group")

    def row_keys(self) -> list[str]:
        types = list(self._session.workspace.fund_map.exposure_types)
        c = self.constraints
        extra = [k for k in [*c.min_exposure_per_type, *c.max_exposure_per_type] if k not in types]
        return types + list(dict.fromkeys(extra))

    def label(self, key: str, column: int) -> str:
        etype = self._session.workspace.fund_map.exposure_types.get(key)
        if etype is None:
            return key if column == 0 else "(unknown type)"
        return etype.name if column == 0 else etype.group.label

    def tooltip(self, key: str) -> str | None:
        etype = self._session.workspace.fund_map.exposure_types.get(key)
        name = f"{etype.name} ({key})" if etype is not None else key
        return f"{name}: floor and cap on the portfolio's exposure, % of portfolio value"

    def bound(self, key: str) -> tuple[float | None, float | None]:
        c = self.constraints
        return c.min_exposure_per_type.get(key), c.max_exposure_per_type.get(key)

    def with_bound(
        self, c: OptimizationConstraints, key: str, side: str, value: float | None
    ) -> OptimizationConstraints:
        _set_or_drop(
            c.min_exposure_per_type if side == "min" else c.max_exposure_per_type, key, value
        )
        return c

    def undo_text(self, key: str, side: str) -> str:
        return f"Set {side} exposure {key}"


class GroupLimitsModel(LimitsModel):
    """Floor and cap per asset-class group (``min/max_exposure_per_group``)."""

    LABELS = ("Asset group",)

    def row_keys(self) -> list[str]:
        return [g.value for g in AssetGroup]

    def label(self, key: str, column: int) -> str:
        return AssetGroup(key).label

    def tooltip(self, key: str) -> str | None:
        return f"Sum of the {AssetGroup(key).label.lower()} exposures, % of portfolio value"

    def bound(self, key: str) -> tuple[float | None, float | None]:
        c = self.constraints
        return c.min_exposure_per_group.get(key), c.max_exposure_per_group.get(key)

    def with_bound(
        self, c: OptimizationConstraints, key: str, side: str, value: float | None
    ) -> OptimizationConstraints:
        _set_or_drop(
            c.min_exposure_per_group if side == "min" else c.max_exposure_per_group, key, value
        )
        return c

    def undo_text(self, key: str, side: str) -> str:
        return f"Set {side} {key} exposure"


class FundBoundsModel(LimitsModel):
    """Per-fund weight bounds (``fund_bounds``), overriding the default min/max weight."""

    LABELS = ("Fund",)

    def row_keys(self) -> list[str]:
        return list(self.constraints.fund_bounds)

    def label(self, key: str, column: int) -> str:
        return key

    def tooltip(self, key: str) -> str | None:
        fund = self._session.workspace.fund_map.get(key)
        name = f" ({fund.name})" if fund is not None and fund.name else ""
        return f"{key}{name}: weight bounds, % of portfolio value; empty = the default"

    def bound(self, key: str) -> tuple[float | None, float | None]:
        lo, hi = self.constraints.fund_bounds.get(key, (None, None))
        return lo, hi

    def with_bound(
        self, c: OptimizationConstraints, key: str, side: str, value: float | None
    ) -> OptimizationConstraints:
        lo, hi = c.fund_bounds.get(key, (None, None))
        c.fund_bounds[key] = (value, hi) if side == "min" else (lo, value)
        return c

    def undo_text(self, key: str, side: str) -> str:
        return f"Set {side} weight of {key}"


class SectorLimitsModel(LimitsModel):
    """Bounds on the summed weight of a named group of funds (``sector_limits``)."""

    LABELS = ("Sector", "Members")

    def row_keys(self) -> list[str]:
        return list(self.constraints.sector_limits)

    def members(self, key: str) -> list[str]:
        return [s for s, sector in self.constraints.sector_mapper.items() if sector == key]

    def label(self, key: str, column: int) -> str:
        if column == 0:
            return key
        members = self.members(key)
        return ", ".join(members) if members else "(none: assign funds below)"

    def tooltip(self, key: str) -> str | None:
        return f"Sector {key}: bounds on the summed weight of its funds"

    def bound(self, key: str) -> tuple[float | None, float | None]:
        lo, hi = self.constraints.sector_limits.get(key, (None, None))
        return lo, hi

    def with_bound(
        self, c: OptimizationConstraints, key: str, side: str, value: float | None
    ) -> OptimizationConstraints:
        lo, hi = c.sector_limits.get(key, (None, None))
        c.sector_limits[key] = (value, hi) if side == "min" else (lo, value)
        return c

    def undo_text(self, key: str, side: str) -> str:
        return f"Set {side} of sector {key}"


MAPPER_COLUMNS = ("Fund", "Name", "Sector")


class SectorMapperModel(QAbstractTableModel):
    """Fund -> sector name (``sector_mapper``) for the funds the constraints apply to.

    Rows: the held funds, funds with bounds, and funds already mapped. Clearing the
    sector removes the fund from the mapper.
    """

    def __init__(self, session: Session):
        super().__init__()
        self._session = session
        self._symbols: list[str] = self._rows()
        self._flags: dict[str, str] = {}
        session.constraints_changed.connect(self.refresh)
        session.portfolio_changed.connect(self.refresh)
        session.fund_map_changed.connect(self.refresh)
        session.workspace_replaced.connect(self.refresh)

    def _rows(self) -> list[str]:
        ws = self._session.workspace
        out = list(ws.portfolio.symbols)
        for s in [*ws.constraints.fund_bounds, *ws.constraints.sector_mapper]:
            if s.upper() not in out:
                out.append(s.upper())
        return out

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def row_of(self, symbol: str) -> int:
        try:
            return self._symbols.index(symbol.upper())
        except ValueError:
            return -1

    def refresh(self) -> None:
        rows = self._rows()
        if rows != self._symbols:
            self.beginResetModel()
            self._symbols = rows
            self.endResetModel()
        elif rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, 2))

    def set_flags(self, flags: dict[str, str]) -> None:
        if flags != self._flags:
            self._flags = dict(flags)
            self.refresh()

    def _sector(self, symbol: str) -> str:
        mapper = self._session.workspace.constraints.sector_mapper
        return mapper.get(symbol) or mapper.get(symbol.lower()) or ""

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._symbols)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(MAPPER_COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(MAPPER_COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return MAPPER_COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole and section == 2:
            return "Type a sector name; funds with the same name share a sector limit"
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        return base | Qt.ItemFlag.ItemIsEditable if index.column() == 2 else base

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        symbol = self._symbols[index.row()]
        column = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if column == 0:
                return symbol
            if column == 1:
                fund = self._session.workspace.fund_map.get(symbol)
                return fund.name if fund is not None else "(not in the fund map)"
            return self._sector(symbol)
        if role == Qt.ItemDataRole.BackgroundRole and column == 2 and symbol in self._flags:
            return FLAG_BRUSH
        if role == Qt.ItemDataRole.ToolTipRole and column == 2:
            return self._flags.get(symbol)
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.EditRole or index.column() != 2:
            return False
        symbol = self._symbols[index.row()]
        text = "" if value is None else str(value).strip()
        if text == self._sector(symbol):
            return True
        new = self._session.workspace.constraints.copy()
        new.sector_mapper.pop(symbol, None)
        if text:
            new.sector_mapper[symbol] = text
        label = f"Put {symbol} in sector {text}" if text else f"Remove {symbol} from its sector"
        self._session.undo_stack.push(ConstraintsCommand(self._session, new, label))
        return True
