"""Equity curves (growth of 1) over drawdowns, one line per backtested strategy.

Two :class:`pyqtgraph.PlotWidget` share a date x axis (``setXLink``): the equity curves on
top (linear or log scale) with a legend, the drawdowns from the running peak below. Curve
items come from a pool, created the first time they are needed and then updated with
``setData`` (unused ones are hidden), so re-running a backtest creates no new items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

_AXIS_WIDTH = 64  # both left axes equally wide, so the two x axes line up
_TEXT = (40, 40, 40)


@dataclass(frozen=True)
class Curve:
    """One strategy to draw.

    Attributes
    ----------
    name : str
        Legend text.
    equity : Series, shape (T,)
        Wealth per period (1.0 at the start), DatetimeIndex.
    color : QColor
    dashed : bool
        Dashed line (the benchmark).
    """

    name: str
    equity: pd.Series
    color: QColor
    dashed: bool = False


def _seconds(index: pd.Index) -> np.ndarray:
    """Dates as POSIX seconds (what :class:`pyqtgraph.DateAxisItem` reads), shape (T,)."""
    return pd.DatetimeIndex(index).values.astype("datetime64[s]").astype(np.float64)


def nice_log_ticks(low: float, high: float, max_ticks: int = 7) -> list[float]:
    """Round wealth values to label a log axis spanning ``low..high`` (both > 0).

    Within about a decade the ticks are evenly spaced round numbers (1, 1.25, 1.5, ...);
    over several decades they follow 1-2-5 (or powers of ten when even that is crowded).
    """
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 or high <= low:
        return []
    max_ticks = max(int(max_ticks), 2)
    if high / low <= 12:
        raw = (high - low) / max_ticks
        power = 10.0 ** math.floor(math.log10(raw))
        step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw)
        first = math.ceil(low / step) * step
        count = int(math.floor((high - first) / step + 1e-9)) + 1
        return [round(first + i * step, 12) for i in range(count) if first + i * step > 0]
    lo_exp, hi_exp = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for mantissas in ((1.0, 2.0, 5.0), (1.0,)):
        ticks = [
            m * 10.0**e
            for e in range(lo_exp, hi_exp + 1)
            for m in mantissas
            if low <= m * 10.0**e <= high
        ]
        if len(ticks) <= max_ticks:
            return ticks
    return ticks


class WealthAxis(pg.AxisItem):
    """A left axis whose log mode labels round wealth values (1.25, 1.5, 2) not 10^x."""

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802, N803 - pyqtgraph API
        ticks = nice_log_ticks(10.0**minVal, 10.0**maxVal, max(2, int(size / 40)))
        return [(1.0, [math.log10(t) for t in ticks])]

    def logTickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph API
        return [f"{10.0**v:.3g}" for v in values]


def _style(plot: pg.PlotWidget, left_label: str) -> pg.PlotItem:
    item = plot.getPlotItem()
    item.hideButtons()
    item.setMenuEnabled(False)
    item.showGrid(x=True, y=True, alpha=0.2)
    item.getViewBox().setMouseEnabled(x=True, y=False)  # zoom through time only
    for name in ("left", "bottom"):
        axis = item.getAxis(name)
        axis.setPen(pg.mkPen(90, 90, 90))
        axis.setTextPen(pg.mkPen(*_TEXT))
    item.getAxis("left").setWidth(_AXIS_WIDTH)
    item.setLabel("left", left_label, color="#282828")
    return item


class EquityPlot(QWidget):
    """Equity curves above their drawdowns, linked in time.

    Attributes
    ----------
    equity_widget, drawdown_widget : pg.PlotWidget
    legend : pg.LegendItem
        In the equity plot, one entry per curve shown.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.message = QLabel()
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #666;")

        self.equity_widget = pg.PlotWidget(
            background="w",
            axisItems={
                "bottom": pg.DateAxisItem("bottom", utcOffset=0),
                "left": WealthAxis("left"),
            },
        )
        self.drawdown_widget = pg.PlotWidget(
            background="w", axisItems={"bottom": pg.DateAxisItem("bottom", utcOffset=0)}
        )
        self._equity_item = _style(self.equity_widget, "Growth of 1")
        self._drawdown_item = _style(self.drawdown_widget, "Drawdown (%)")
        self._equity_item.getAxis("bottom").setStyle(showValues=False)  # dates shown below
        self.drawdown_widget.setXLink(self.equity_widget)
        self.legend = self._equity_item.addLegend(
            offset=(8, 4), labelTextColor=_TEXT, brush=pg.mkBrush(255, 255, 255, 220)
        )
        # Top left, in rows of three: growth curves start low on the left, so a wide,
        # short legend there covers the least.
        self.legend.setColumnCount(3)
        self.start_line = pg.InfiniteLine(
            pos=1.0, angle=0, pen=pg.mkPen(120, 120, 120, width=1, style=Qt.PenStyle.DotLine)
        )
        self._equity_item.addItem(self.start_line, ignoreBounds=True)
        self._equity_curves: list[pg.PlotDataItem] = []
        self._drawdown_curves: list[pg.PlotDataItem] = []
        self.curves: list[Curve] = []
        self.log_scale = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.equity_widget, 3)
        layout.addWidget(self.drawdown_widget, 2)
        layout.addWidget(self.message, 1)
        self.show_message("Nothing backtested yet")

    # ---------------------------------------------------------------- items
    def _curve_items(self, i: int) -> tuple[pg.PlotDataItem, pg.PlotDataItem]:
        while len(self._equity_curves) <= i:
            for item, pool in (
                (self._equity_item, self._equity_curves),
                (self._drawdown_item, self._drawdown_curves),
            ):
                curve = pg.PlotDataItem()
                curve.setClipToView(True)
                curve.setDownsampling(auto=True, method="peak")
                item.addItem(curve)
                pool.append(curve)
        return self._equity_curves[i], self._drawdown_curves[i]

    # ------------------------------------------------------------------ API
    def show_message(self, text: str) -> None:
        """Hide both plots and say why (nothing run yet, no data)."""
        self.message.setText(text)
        self.message.show()
        self.equity_widget.hide()
        self.drawdown_widget.hide()
        self.set_curves([])

    def set_curves(self, curves: Sequence[Curve]) -> None:
        """Draw ``curves`` (replacing what was drawn); an empty list clears the plots."""
        self.curves = list(curves)
        self.legend.clear()
        for i, curve in enumerate(self.curves):
            eq_item, dd_item = self._curve_items(i)
            x = _seconds(curve.equity.index)
            y = curve.equity.to_numpy(dtype=float)
            drawdown = (y / np.maximum.accumulate(y) - 1.0) * 100.0
            pen = pg.mkPen(
                curve.color,
                width=2,
                style=Qt.PenStyle.DashLine if curve.dashed else Qt.PenStyle.SolidLine,
            )
            eq_item.setData(x, y, pen=pen, name=curve.name)
            dd_item.setData(x, drawdown, pen=pg.mkPen(curve.color, width=1.5))
            eq_item.show()
            dd_item.show()
            self.legend.addItem(eq_item, curve.name)
        for eq_item, dd_item in zip(
            self._equity_curves[len(self.curves) :],
            self._drawdown_curves[len(self.curves) :],
            strict=True,
        ):
            eq_item.setData([], [])
            dd_item.setData([], [])
            eq_item.hide()
            dd_item.hide()
        if self.curves:
            self.message.hide()
            self.equity_widget.show()
            self.drawdown_widget.show()
            self._equity_item.enableAutoRange()
            self._drawdown_item.enableAutoRange()

    def add_curve(self, curve: Curve) -> None:
        """Draw one more curve (results arrive one strategy at a time)."""
        self.set_curves([*[c for c in self.curves if c.name != curve.name], curve])

    def set_log_scale(self, on: bool) -> None:
        """Equity on a log scale (equal heights = equal percentage moves)."""
        self.log_scale = bool(on)
        self._equity_item.setLogMode(x=False, y=self.log_scale)
        # An InfiniteLine sits in view coordinates: log10(1) = 0 in log mode.
        self.start_line.setPos(0.0 if self.log_scale else 1.0)
        self._equity_item.setLabel(
            "left", "Growth of 1 (log scale)" if self.log_scale else "Growth of 1"
        )
        self._equity_item.enableAutoRange()

    # ---------------------------------------------------------------- tests
    def drawn(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Name -> (POSIX seconds, wealth) of every equity curve drawn (for tests)."""
        out = {}
        for curve, item in zip(self.curves, self._equity_curves, strict=False):
            x, y = item.getOriginalDataset()
            out[curve.name] = (np.asarray(x), np.asarray(y))
        return out

    def drawn_drawdowns(self) -> dict[str, np.ndarray]:
        """Name -> drawdown in percent of every curve drawn (for tests)."""
        out = {}
        for curve, item in zip(self.curves, self._drawdown_curves, strict=False):
            out[curve.name] = np.asarray(item.getOriginalDataset()[1])
        return out


__all__ = ["Curve", "EquityPlot"]
