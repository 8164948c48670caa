"""Efficient frontier: volatility vs expected return, filled in point by point.

Two curves (with and without leveraged funds), the capital market line through the
max-Sharpe portfolio, and markers for the current, the optimal and the selected
portfolio. Every point carries its portfolio (``ScatterPlotItem(data=...)``): hovering shows
return, volatility, Sharpe ratio and notional, a click emits :attr:`FrontierPlot.point_clicked`.
Items are created once and updated with ``setData``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from core.optimization.results import FrontierPoint

#: Curve labels of :func:`core.optimization.workflow.frontier_points`.
WITH_LEVERAGE = "with leverage"
WITHOUT_LEVERAGE = "without leverage"

_COLORS = {
    WITH_LEVERAGE: QColor(32, 74, 135),
    WITHOUT_LEVERAGE: QColor(204, 121, 0),
    "cml": QColor(78, 154, 6),
    "current": QColor(204, 0, 0),
    "optimal": QColor(117, 80, 123),
    "selected": QColor(20, 20, 20),
}
_LEGEND = {
    WITH_LEVERAGE: "Frontier, leveraged funds allowed",
    WITHOUT_LEVERAGE: "Frontier, no leveraged funds",
}


HINT = "Hover a point to see it; click it to load that portfolio into the tables (circled)."


@dataclass(frozen=True)
class PlotPoint:
    """What a marker shows and carries (annual fractions).

    ``payload`` is the portfolio behind the point: a
    :class:`~core.optimization.results.FrontierPoint` or an
    :class:`~core.optimization.results.OptimizationResult`.
    """

    label: str
    expected_return: float
    volatility: float
    sharpe_ratio: float
    total_notional: float
    payload: Any = None

    @classmethod
    def of(cls, item: Any, label: str = "") -> PlotPoint:
        """A plot point from a FrontierPoint or an OptimizationResult."""
        if isinstance(item, FrontierPoint):
            return cls(
                label or f"Frontier {item.label}, point {item.index + 1}",
                item.expected_return,
                item.volatility,
                item.sharpe_ratio,
                item.total_notional,
                item,
            )
        return cls(
            label,
            float(item.expected_return),
            float(item.expected_volatility),
            float(item.sharpe_ratio),
            float(item.total_notional),
            item,
        )


def describe(point: PlotPoint) -> str:
    """Return, volatility, Sharpe ratio and notional of ``point`` as text (the tooltip)."""

    def pct(v: float) -> str:
        return f"{v * 100:.2f}%" if math.isfinite(v) else "-"

    sharpe = f"{point.sharpe_ratio:.2f}" if math.isfinite(point.sharpe_ratio) else "-"
    return (
        f"{point.label}\nReturn {pct(point.expected_return)}   Volatility "
        f"{pct(point.volatility)}\nSharpe {sharpe}   Notional {pct(point.total_notional)}"
    )


class PercentAxis(pg.AxisItem):
    """Tick labels with a percent sign (values are already in percent)."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph override
        decimals = max(0, -int(math.floor(math.log10(spacing * scale)))) if spacing > 0 else 0
        return [f"{v * scale:.{decimals}f}%" for v in values]


class FrontierPlot(QWidget):
    """The efficient frontier chart.

    Signals
    -------
    point_clicked(object)
        The ``payload`` of the clicked marker (FrontierPoint or OptimizationResult).
    point_hovered(object)
        The :class:`PlotPoint` under the mouse, or None when it leaves the points.
    """

    point_clicked = Signal(object)
    point_hovered = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot_widget = pg.PlotWidget(
            background="w",
            axisItems={"left": PercentAxis("left"), "bottom": PercentAxis("bottom")},
        )
        self.plot_widget.setMinimumHeight(220)
        item = self.plot_widget.getPlotItem()
        item.hideButtons()
        item.setMenuEnabled(False)
        item.showGrid(x=True, y=True, alpha=0.2)
        for name, text in (
            ("bottom", "Volatility (a year)"),
            ("left", "Expected return (a year)"),
        ):
            axis = item.getAxis(name)
            axis.setPen(pg.mkPen(90, 90, 90))
            axis.setTextPen(pg.mkPen(40, 40, 40))
            axis.setLabel(text)
        # Bottom right: frontiers rise from the bottom left, so that corner stays empty.
        self.legend = item.addLegend(
            offset=(-8, -8), labelTextColor=(30, 30, 30), labelTextSize="8pt", verSpacing=-4
        )
        self.legend.setBrush(pg.mkBrush(255, 255, 255, 220))
        self.legend.setPen(pg.mkPen(200, 200, 200))

        self.cml = pg.PlotDataItem(
            pen=pg.mkPen(_COLORS["cml"], width=1.5, style=Qt.PenStyle.DashLine),
            name="Capital market line (through max Sharpe)",
        )
        item.addItem(self.cml)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.scatters: dict[str, pg.ScatterPlotItem] = {}
        for key in (WITH_LEVERAGE, WITHOUT_LEVERAGE):
            color = _COLORS[key]
            curve = pg.PlotDataItem(
                pen=pg.mkPen(color, width=2),
                symbol="o",
                symbolSize=6,
                symbolBrush=pg.mkBrush(color),
                symbolPen=pg.mkPen(color),
                name=_LEGEND[key],
            )
            item.addItem(curve)
            self.curves[key] = curve
            # The points that react to the mouse sit over the curve's own symbols.
            scatter = self._scatter(color, 9, "o", filled=False)
            self.scatters[key] = scatter
        self.current_marker = self._scatter(_COLORS["current"], 15, "s", name="Current holdings")
        self.optimal_marker = self._scatter(_COLORS["optimal"], 20, "star", name="Optimal")
        # No legend entry: the line's own entry names it, and the marker only shows when
        # the optimum is another portfolio.
        self.max_sharpe_marker = self._scatter(_COLORS["cml"], 13, "d")
        self.selected_marker = pg.ScatterPlotItem(
            size=19,
            symbol="o",
            pen=pg.mkPen(_COLORS["selected"], width=2),
            brush=pg.mkBrush(0, 0, 0, 0),
        )
        self.selected_marker.setZValue(30)
        item.addItem(self.selected_marker)

        self.info = QLabel(HINT)
        self.info.setStyleSheet("color: #444;")
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        # Inside the plot, not a widget swapped in: a layout change costs a full repaint.
        self.placeholder = pg.TextItem(
            "Press Run to compute the efficient frontier.", color=(90, 90, 90), anchor=(0.5, 0.5)
        )
        self.placeholder.setPos(0.5, 0.5)
        item.addItem(self.placeholder, ignoreBounds=True)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(self.info)

        self.points: dict[str, list[FrontierPoint]] = {WITH_LEVERAGE: [], WITHOUT_LEVERAGE: []}
        self.current: PlotPoint | None = None
        self.optimal: PlotPoint | None = None
        self.max_sharpe: PlotPoint | None = None
        self.selected: PlotPoint | None = None
        self.risk_free_rate: float | None = None
        self.clear()

    def _scatter(
        self, color: QColor, size: int, symbol: str, name: str = "", *, filled: bool = True
    ) -> pg.ScatterPlotItem:
        """A clickable, hoverable scatter; ``filled=False`` is an invisible layer over a
        curve's own symbols. ``name`` adds a legend entry."""
        scatter = pg.ScatterPlotItem(
            size=size,
            symbol=symbol,
            pen=pg.mkPen(255, 255, 255, width=1) if filled else pg.mkPen(None),
            brush=pg.mkBrush(color) if filled else pg.mkBrush(0, 0, 0, 0),
            hoverable=True,
            hoverPen=pg.mkPen(20, 20, 20, width=2),
            hoverSize=size + 4,
            tip=self._tip,
            name=name or None,
        )
        scatter.setZValue(20 if filled else 10)
        scatter.sigClicked.connect(self._clicked)
        scatter.sigHovered.connect(self._hovered)
        self.plot_widget.getPlotItem().addItem(scatter)
        return scatter

    # ------------------------------------------------------------- updates
    def clear(self) -> None:
        """Remove every point and marker (a new run starts)."""
        for key in self.points:
            self.points[key] = []
            self.curves[key].setData([], [])
            self.scatters[key].setData([], [], data=[])
        for marker in (self.optimal_marker, self.max_sharpe_marker, self.selected_marker):
            marker.setData([], [])
        self.cml.setData([], [])
        self.optimal = self.max_sharpe = self.selected = None
        self.info.setText(HINT)
        self._set_marker(self.current_marker, self.current)
        self._update_placeholder()
        self.plot_widget.getPlotItem().enableAutoRange()

    def add_point(self, point: FrontierPoint) -> None:
        """Append one frontier point to its curve (``point.label`` names the curve)."""
        self.add_points([point])

    def add_points(self, points: list[FrontierPoint]) -> None:
        """Append frontier points to their curves and redraw each changed curve once."""
        changed: set[str] = set()
        for point in points:
            key = point.label if point.label in self.points else WITH_LEVERAGE
            self.points[key].append(point)
            changed.add(key)
        for key in changed:
            self.points[key].sort(key=lambda p: p.volatility)
            self._redraw_curve(key)
        self._update_cml()
        self._update_placeholder()

    def set_points(self, points: list[FrontierPoint]) -> None:
        for key in self.points:
            self.points[key] = sorted(
                (p for p in points if (p.label or WITH_LEVERAGE) == key), key=lambda p: p.volatility
            )
            self._redraw_curve(key)
        self._update_cml()
        self._update_placeholder()

    def _redraw_curve(self, key: str) -> None:
        pts = self.points[key]
        x = np.array([p.volatility * 100 for p in pts])
        y = np.array([p.expected_return * 100 for p in pts])
        self.curves[key].setData(x, y)
        self.scatters[key].setData(x, y, data=[PlotPoint.of(p) for p in pts])

    def _update_placeholder(self) -> None:
        empty = self.current is None and self.optimal is None and not any(self.points.values())
        self.placeholder.setVisible(empty)
        self.legend.setVisible(not empty)

    def _set_marker(self, marker: pg.ScatterPlotItem, point: PlotPoint | None) -> None:
        if point is None or not (
            math.isfinite(point.volatility) and math.isfinite(point.expected_return)
        ):
            marker.setData([], [], data=[])
            return
        marker.setData([point.volatility * 100], [point.expected_return * 100], data=[point])

    def set_current(self, point: PlotPoint | None) -> None:
        self.current = point
        self._set_marker(self.current_marker, point)
        self._update_placeholder()

    def set_optimal(self, point: PlotPoint | None) -> None:
        self.optimal = point
        self._set_marker(self.optimal_marker, point)
        self._update_placeholder()
        self.legend.getLabel(self.optimal_marker).setText(
            point.label if point is not None else "Optimal"
        )

    def set_max_sharpe(self, point: PlotPoint | None, risk_free_rate: float) -> None:
        """The tangency portfolio; the capital market line runs from ``rf`` through it."""
        self.max_sharpe = point
        self.risk_free_rate = risk_free_rate
        same = (
            point is not None and self.optimal is not None and point.payload is self.optimal.payload
        )
        # The optimum of max Sharpe is the tangency point: one marker (the star) is enough.
        self._set_marker(self.max_sharpe_marker, None if same else point)
        self._update_cml()

    def set_selected(self, point: PlotPoint | None) -> None:
        self.selected = point
        self._set_marker(self.selected_marker, point)

    def _update_cml(self) -> None:
        ms, rf = self.max_sharpe, self.risk_free_rate
        if ms is None or rf is None or not ms.volatility > 0:
            self.cml.setData([], [])
            return
        slope = (ms.expected_return - rf) / ms.volatility
        vols = [p.volatility for pts in self.points.values() for p in pts]
        for extra in (self.current, self.optimal, ms):
            if extra is not None and math.isfinite(extra.volatility):
                vols.append(extra.volatility)
        x_end = max(vols) * 1.05
        self.cml.setData([0.0, x_end * 100], [rf * 100, (rf + slope * x_end) * 100])

    # ------------------------------------------------------------ mouse
    def _tip(self, x: float, y: float, data: Any) -> str:
        return describe(data) if isinstance(data, PlotPoint) else ""

    def _clicked(self, _item: Any, points: Any, _event: Any = None) -> None:
        if points is None or len(points) == 0:
            return
        data = points[0].data()
        if isinstance(data, PlotPoint):
            self.click(data)

    def click(self, point: PlotPoint) -> None:
        """Select ``point`` as a click would, and emit its payload."""
        self.set_selected(point)
        self.info.setText(describe(point).replace("\n", "   ·   "))
        self.point_clicked.emit(point.payload)

    def _hovered(self, _item: Any, points: Any, _event: Any = None) -> None:
        if points is not None and len(points) > 0:
            data = points[0].data()
            if isinstance(data, PlotPoint):
                self.info.setText(describe(data).replace("\n", "   ·   "))
                self.point_hovered.emit(data)

    def plot_points(self, key: str = WITH_LEVERAGE) -> list[PlotPoint]:
        """The clickable points of a curve, in order of volatility."""
        return list(self.scatters[key].data["data"])
