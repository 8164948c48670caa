"""Capital next to risk: paired horizontal bars per fund or exposure type.

For each row a light bar shows the capital weight (or exposure) and a dark bar right under
it the share of total risk, both in percent, so that "60/40 is 90% equity risk" is visible
at a glance. The plot items (two :class:`pyqtgraph.BarGraphItem`, a zero line and a pool of
value labels) are created once and updated with ``setOpts`` / ``setText``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from desktop.plots.exposure_bars_plot import (
    DEFAULT_COLOR,
    bold_title,
    horizontal_bar_plot,
    message_label,
    pooled_label,
)

_HEIGHT = 0.36  # each of the two bars of a row
_TINT = 0.35  # share of the colour in the capital bars' tint


def _swatch(color: QColor, text: str) -> QLabel:
    label = QLabel(
        f"<span style='color: rgb({color.red()},{color.green()},{color.blue()}); "
        f"font-size: 14px;'>&#9632;</span> {text}"
    )
    label.setTextFormat(Qt.TextFormat.RichText)
    return label


class RiskPlot(QWidget):
    """Two bars per row: capital (light) and share of risk (solid), in percent.

    Parameters
    ----------
    title : str
    capital_label : str
        Legend text of the light bars ("Capital weight", "Exposure").
    risk_label : str
        Legend text of the solid bars.
    """

    def __init__(
        self,
        title: str = "",
        capital_label: str = "Capital weight",
        risk_label: str = "Share of risk",
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.title = bold_title(title)
        self.message = message_label("Nothing to show")
        self.plot_widget = horizontal_bar_plot(140, "%")
        item = self.plot_widget.getPlotItem()
        self.capital_bars = pg.BarGraphItem(x0=[], y=[], width=[], height=_HEIGHT, pen=None)
        self.risk_bars = pg.BarGraphItem(x0=[], y=[], width=[], height=_HEIGHT, pen=None)
        item.addItem(self.capital_bars)
        item.addItem(self.risk_bars)
        item.addItem(pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen(60, 60, 60, width=1)))
        self._labels: list[pg.TextItem] = []
        self._font = QFont()
        self._font.setPointSizeF(max(self._font.pointSizeF() - 1.5, 7))

        legend = QHBoxLayout()
        legend.setContentsMargins(0, 0, 0, 0)
        self._capital_swatch = _swatch(_light(DEFAULT_COLOR), capital_label)
        self._risk_swatch = _swatch(DEFAULT_COLOR, risk_label)
        legend.addWidget(self.title)
        legend.addStretch(1)
        legend.addWidget(self._capital_swatch)
        legend.addSpacing(10)
        legend.addWidget(self._risk_swatch)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(legend)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(self.message, 1)
        self.labels: list[str] = []
        self.capital = np.zeros(0)
        self.risk = np.zeros(0)
        self.show_message("Nothing to show")

    def set_title(self, title: str) -> None:
        self.title.setText(title)

    def show_message(self, text: str) -> None:
        """Hide the chart and say why."""
        self.message.setText(text)
        self.message.show()
        self.plot_widget.hide()
        self.labels = []
        self.capital = np.zeros(0)
        self.risk = np.zeros(0)

    def _label(self, i: int) -> pg.TextItem:
        return pooled_label(self.plot_widget, self._labels, self._font, i)

    def set_bars(
        self,
        labels: Sequence[str],
        capital: Sequence[float],
        risk: Sequence[float],
        colors: Sequence[QColor] | None = None,
    ) -> None:
        """Show one pair of bars per label.

        Parameters
        ----------
        labels : sequence of str, length M
        capital : sequence of float, length M
            Capital weights or exposures as fractions (0.6 is drawn as 60%); NaN for a row
            with no capital behind it (fund-specific risk).
        risk : sequence of float, length M
            Shares of total risk as fractions (they sum to 1 over all rows shown).
        colors : sequence of QColor, length M, optional
            Per row; the capital bar is a light tint of the same colour.
        """
        cap = np.asarray(capital, dtype=float).reshape(-1) * 100.0
        cap_bar = np.nan_to_num(cap, nan=0.0)
        rsk = np.asarray(risk, dtype=float).reshape(-1) * 100.0
        if not (len(labels) == cap.size == rsk.size):
            raise ValueError(f"{len(labels)} labels, {cap.size} capital and {rsk.size} risk values")
        if cap.size == 0:
            self.show_message("Nothing to show")
            return
        self.message.hide()
        self.plot_widget.show()
        self.labels = [str(s) for s in labels]
        self.capital, self.risk = cap / 100.0, rsk / 100.0
        colors = list(colors) if colors is not None else [DEFAULT_COLOR] * cap.size
        y = np.arange(cap.size, dtype=float)
        self.capital_bars.setOpts(
            x0=np.minimum(cap_bar, 0.0),
            width=np.abs(cap_bar),
            y=y - _HEIGHT / 2,
            height=_HEIGHT,
            brushes=[pg.mkBrush(_light(c)) for c in colors],
            pens=[pg.mkPen(c.darker(110), width=0.5) for c in colors],
        )
        self.risk_bars.setOpts(
            x0=np.minimum(rsk, 0.0),
            width=np.abs(rsk),
            y=y + _HEIGHT / 2,
            height=_HEIGHT,
            brushes=[pg.mkBrush(c) for c in colors],
            pens=[pg.mkPen(None)] * cap.size,
        )
        item = self.plot_widget.getPlotItem()
        left = item.getAxis("left")
        left.setTicks([[(float(i), name) for i, name in enumerate(self.labels)]])
        lo = min(float(cap_bar.min()), float(rsk.min()), 0.0)
        hi = max(float(cap_bar.max()), float(rsk.max()), 0.0)
        span = max(hi - lo, 1.0)
        item.setXRange(lo - (0.1 * span if lo < 0 else 0.0), hi + 0.2 * span, padding=0)
        item.setYRange(-0.6, cap.size - 0.4, padding=0)
        n = 0
        for i in range(cap.size):
            for value, dy, bold in ((cap[i], -_HEIGHT / 2, False), (rsk[i], _HEIGHT / 2, True)):
                if not np.isfinite(value):
                    continue  # no capital behind this row (fund-specific risk)
                label = self._label(n)
                label.setText(f"{value:,.1f}%")
                label.setColor((30, 30, 30) if bold else (110, 110, 110))
                label.setPos(max(value, 0.0) + 0.01 * span, i + dy)
                label.show()
                n += 1
        for label in self._labels[n:]:
            label.hide()


def _light(color: QColor) -> QColor:
    """A tint of ``color`` (mixed with white), opaque so the legend swatch matches."""
    a = _TINT
    return QColor(
        round(a * color.red() + (1 - a) * 255),
        round(a * color.green() + (1 - a) * 255),
        round(a * color.blue() + (1 - a) * 255),
    )
