"""Prior vs posterior expected returns as grouped bars, one pair per fund (or exposure)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

PRIOR_COLOR = (150, 165, 190)
POSTERIOR_COLOR = (40, 100, 190)
BAR_WIDTH = 0.38


class PriorPosteriorPlot(QWidget):
    """Two ``BarGraphItem`` (prior, posterior) created once and updated with ``setOpts``.

    Heights are in percent per year. :meth:`heights` returns what is drawn, for tests.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold;")
        self.plot_widget = pg.PlotWidget(background="w")
        item = self.plot_widget.getPlotItem()
        item.showGrid(x=False, y=True, alpha=0.25)
        item.setLabel("left", "Expected excess return (% / yr)")
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        self.legend = item.addLegend(offset=(10, 5), labelTextColor=(40, 40, 40))
        self.prior_bars = pg.BarGraphItem(
            x=[], height=[], width=BAR_WIDTH, brush=pg.mkBrush(PRIOR_COLOR), pen=None
        )
        self.posterior_bars = pg.BarGraphItem(
            x=[], height=[], width=BAR_WIDTH, brush=pg.mkBrush(POSTERIOR_COLOR), pen=None
        )
        item.addItem(self.prior_bars)
        item.addItem(self.posterior_bars)
        self.legend.addItem(self.prior_bars, "Prior (equilibrium)")
        self.legend.addItem(self.posterior_bars, "Posterior (with views)")
        self.zero_line = pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen((90, 90, 90), width=1))
        item.addItem(self.zero_line)
        self.labels: list[str] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.plot_widget, 1)

    def set_data(
        self,
        labels: Sequence[str],
        prior: Sequence[float] | np.ndarray,
        posterior: Sequence[float] | np.ndarray,
        title: str = "",
    ) -> None:
        """Draw ``prior`` and ``posterior`` (fractions) for ``labels``."""
        x = np.arange(len(labels), dtype=float)
        prior_pct = np.asarray(prior, dtype=float) * 100.0
        post_pct = np.asarray(posterior, dtype=float) * 100.0
        self.labels = list(labels)
        self.prior_bars.setOpts(x=x - BAR_WIDTH / 2, height=prior_pct, width=BAR_WIDTH)
        self.posterior_bars.setOpts(x=x + BAR_WIDTH / 2, height=post_pct, width=BAR_WIDTH)
        axis = self.plot_widget.getPlotItem().getAxis("bottom")
        axis.setTicks([[(float(i), name) for i, name in enumerate(self.labels)], []])
        item = self.plot_widget.getPlotItem()
        item.setXRange(-0.7, max(len(labels) - 0.3, 0.3), padding=0)
        values = np.concatenate([prior_pct, post_pct, [0.0]])
        lo, hi = float(values.min()), float(values.max())
        span = max(hi - lo, 1.0)
        # Room above the bars for the legend.
        item.setYRange(lo - 0.06 * span, hi + 0.22 * span, padding=0)
        self.title.setText(title)

    def clear(self, title: str = "") -> None:
        self.set_data([], [], [], title)

    def heights(self) -> tuple[np.ndarray, np.ndarray]:
        """(prior, posterior) bar heights as drawn, percent per year."""
        return (
            np.asarray(self.prior_bars.opts["height"], dtype=float),
            np.asarray(self.posterior_bars.opts["height"], dtype=float),
        )
