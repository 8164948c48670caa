"""Horizontal bar chart of named values in percent (exposures, risk contributions).

Horizontal bars keep long names readable on the left axis at any width. The plot items
(one :class:`pyqtgraph.BarGraphItem`, a zero line and a pool of value labels) are
created once; :meth:`ExposureBarsPlot.set_bars` updates them with ``setOpts`` / ``setText``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from core.exposures import AssetGroup

#: One colour per asset-class group, used by every exposure chart.
GROUP_COLORS: dict[str, QColor] = {
    AssetGroup.EQUITY.value: QColor(52, 101, 164),
    AssetGroup.FIXED_INCOME.value: QColor(78, 154, 6),
    AssetGroup.REAL_ASSETS.value: QColor(196, 160, 0),
    AssetGroup.ALTERNATIVES.value: QColor(117, 80, 123),
    AssetGroup.CASH.value: QColor(136, 138, 133),
}
DEFAULT_COLOR = QColor(52, 101, 164)
NEGATIVE_COLOR = QColor(204, 0, 0)
_BAR_THICKNESS = 0.64


def bold_title(text: str) -> QLabel:
    """The bold title line above a chart."""
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    return label


def message_label(text: str) -> QLabel:
    """Grey centred text shown in place of a chart (no data, an error to fix)."""
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setStyleSheet("color: #666;")
    return label


def horizontal_bar_plot(min_height: int, x_label: str) -> pg.PlotWidget:
    """A static horizontal-bar plot: first bar on top, no mouse interaction, light grid."""
    widget = pg.PlotWidget(background="w")
    widget.setMinimumHeight(min_height)
    item = widget.getPlotItem()
    item.hideButtons()
    item.setMenuEnabled(False)
    item.setMouseEnabled(x=False, y=False)
    item.showGrid(x=True, y=False, alpha=0.25)
    item.getViewBox().invertY(True)  # first bar on top
    for axis in (item.getAxis("left"), item.getAxis("bottom")):
        axis.setPen(pg.mkPen(90, 90, 90))
        axis.setTextPen(pg.mkPen(40, 40, 40))
    item.getAxis("bottom").setLabel(x_label)
    return widget


def pooled_label(
    plot_widget: pg.PlotWidget, pool: list[pg.TextItem], font: QFont, i: int
) -> pg.TextItem:
    """The i-th value label of a chart, created on first use and reused afterwards."""
    while len(pool) <= i:
        text = pg.TextItem("", color=(30, 30, 30), anchor=(0, 0.5))
        text.setFont(font)
        plot_widget.getPlotItem().addItem(text)
        pool.append(text)
    return pool[i]


class ExposureBarsPlot(QWidget):
    """A titled horizontal bar chart; values are fractions shown as percent.

    Parameters
    ----------
    title : str
        Shown above the chart.
    empty_text : str
        Shown instead of the chart when there is nothing to plot.
    """

    def __init__(self, title: str = "", empty_text: str = "Nothing to show", parent=None):
        super().__init__(parent)
        self._empty_text = empty_text
        self.title = bold_title(title)
        self.message = message_label(empty_text)
        self.plot_widget = horizontal_bar_plot(120, "% of portfolio value")
        item = self.plot_widget.getPlotItem()
        self.bars = pg.BarGraphItem(x0=[], y=[], width=[], height=_BAR_THICKNESS, pen=None)
        item.addItem(self.bars)
        self.zero_line = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen(60, 60, 60, width=1))
        item.addItem(self.zero_line)
        self._labels: list[pg.TextItem] = []
        self._label_font = QFont()
        self._label_font.setPointSizeF(max(self._label_font.pointSizeF() - 1, 7))
        self.labels: list[str] = []
        self.values = np.zeros(0)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(self.message, 1)
        self.show_message(empty_text)

    def set_title(self, title: str) -> None:
        self.title.setText(title)

    def show_message(self, text: str) -> None:
        """Hide the chart and say why (no data, an error to fix)."""
        self.message.setText(text)
        self.message.show()
        self.plot_widget.hide()
        self.labels = []
        self.values = np.zeros(0)

    def _label(self, i: int) -> pg.TextItem:
        return pooled_label(self.plot_widget, self._labels, self._label_font, i)

    def set_bars(
        self,
        labels: Sequence[str],
        values: Sequence[float],
        colors: Sequence[QColor] | None = None,
        *,
        decimals: int = 1,
    ) -> None:
        """Show one bar per label.

        Parameters
        ----------
        labels : sequence of str, length M
        values : sequence of float, length M
            Fractions (0.25 is drawn as 25%). Negative values draw to the left in red
            unless ``colors`` says otherwise.
        colors : sequence of QColor, length M, optional
        """
        values_arr = np.asarray(values, dtype=float).reshape(-1)
        if len(labels) != values_arr.size:
            raise ValueError(f"{len(labels)} labels for {values_arr.size} values")
        if values_arr.size == 0:
            self.show_message(self._empty_text)
            return
        self.message.hide()
        self.plot_widget.show()
        self.labels = [str(s) for s in labels]
        self.values = values_arr
        pct = values_arr * 100.0
        y = np.arange(pct.size, dtype=float)
        if colors is None:
            colors = [NEGATIVE_COLOR if v < 0 else DEFAULT_COLOR for v in pct]
        self.bars.setOpts(
            x0=np.minimum(pct, 0.0),
            width=np.abs(pct),
            y=y,
            height=_BAR_THICKNESS,
            brushes=[pg.mkBrush(c) for c in colors],
            pens=[pg.mkPen(None) for _ in colors],
        )
        item = self.plot_widget.getPlotItem()
        item.getAxis("left").setTicks([list(enumerate(self.labels))])
        lo = min(0.0, float(pct.min()))
        hi = max(0.0, float(pct.max()))
        span = max(hi - lo, 1.0)
        # Room on the right for the value labels.
        item.setXRange(lo - (0.12 * span if lo < 0 else 0.0), hi + 0.22 * span, padding=0)
        item.setYRange(-0.6, pct.size - 0.4, padding=0)
        for i, v in enumerate(pct):
            label = self._label(i)
            label.setText(f"{v:,.{decimals}f}%")
            label.setPos(max(v, 0.0) + 0.01 * span, float(i))
            label.show()
        for label in self._labels[pct.size :]:
            label.hide()
