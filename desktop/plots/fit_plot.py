"""Growth of $1: a fund's real history against the history synthesised from its map.

The synthetic series is core's fund model
(:func:`core.market_data.synthesize_fund_returns` on the proxies' returns,
:func:`core.market_data.proxy_returns`); before the fund's inception it is drawn dashed.
Both curves are 1 at the start of the overlap; the y axis is logarithmic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStackedWidget, QVBoxLayout, QWidget

from core.errors import DataError
from core.exposures import FundExposureMap
from core.market_data import (
    annualization_factor,
    proxy_returns,
    synthesize_fund_returns,
    to_returns,
)

NO_PRICES_MESSAGE = "Load prices to compare the map with history"


@dataclass
class GrowthSeries:
    """Curves of :class:`GrowthPlot`; x in seconds since 1970 (UTC), y growth of $1.

    Attributes
    ----------
    pre_x, pre_y : ndarray, shape (m,)
        Synthetic growth before the fund's first real return (empty if none).
    synth_x, synth_y : ndarray, shape (n,)
        Synthetic growth over the overlap with the real history.
    real_x, real_y : ndarray, shape (n2,)
        The fund's real growth (empty when the prices do not hold the fund).
    inception : Timestamp or None
        Date of the fund's first real return.
    tracking_error, mean_difference, correlation : float
        Of real minus synthetic returns over the overlap (annualised; NaN if no overlap).
    """

    symbol: str
    frequency: str
    pre_x: np.ndarray
    pre_y: np.ndarray
    synth_x: np.ndarray
    synth_y: np.ndarray
    real_x: np.ndarray
    real_y: np.ndarray
    inception: pd.Timestamp | None
    overlap_start: pd.Timestamp | None
    overlap_end: pd.Timestamp | None
    tracking_error: float = math.nan
    mean_difference: float = math.nan
    correlation: float = math.nan

    def describe(self) -> str:
        if self.overlap_start is None:
            return f"{self.symbol}: synthetic history only (no real prices of {self.symbol})"
        text = (
            f"{self.symbol}: real vs synthetic from its map, {self.frequency}, "
            f"{self.overlap_start:%Y-%m-%d} to {self.overlap_end:%Y-%m-%d}. "
            f"Tracking error {self.tracking_error:.1%}/yr, "
            f"mean difference {self.mean_difference:+.1%}/yr, "
            f"correlation {self.correlation:.3f}"
        )
        if len(self.pre_x):
            start = pd.Timestamp(self.pre_x[0], unit="s")
            text += f". Dashed: synthetic before inception (from {start:%Y-%m-%d})"
        return text


def _seconds(index: pd.DatetimeIndex) -> np.ndarray:
    return (index - pd.Timestamp("1970-01-01")).total_seconds().to_numpy(dtype=float)


def growth_series(
    prices: pd.DataFrame,
    fund_map: FundExposureMap,
    symbol: str,
    frequency: str = "weekly",
) -> GrowthSeries:
    """Synthetic and real growth of $1 of ``symbol`` from daily ``prices``.

    Parameters
    ----------
    prices : DataFrame, shape (days, tickers)
        Holding the fund (optional), its exposures' proxies and the cash proxy (BIL).
    fund_map : FundExposureMap
    symbol : str
    frequency : {'daily', 'weekly', 'monthly'}

    Raises
    ------
    DataError
        A proxy without prices, an exposure type without a proxy, or no synthetic returns.
    """
    fund = fund_map[symbol]
    ppy = annualization_factor(frequency)
    codes = [c for c, v in fund.exposures.items() if v and c != "CASH_TBILL"]
    cash = proxy_returns(prices, fund_map, ["CASH_TBILL"], frequency)["CASH_TBILL"]
    exposures = (
        proxy_returns(prices, fund_map, codes, frequency)
        if codes
        else pd.DataFrame(index=cash.index)
    )
    synth = synthesize_fund_returns(fund, exposures.reindex(cash.index), cash, ppy).dropna()
    if synth.empty:
        raise DataError(f"{symbol}: its proxies and cash never have returns on the same dates")
    real = pd.Series(dtype=float)
    if fund.symbol in prices.columns and prices[fund.symbol].notna().sum() >= 2:
        real = to_returns(prices[[fund.symbol]], frequency)[fund.symbol].dropna()
    empty = np.array([], dtype=float)
    overlap = synth.index.intersection(real.index)
    if overlap.empty:
        growth = np.cumprod(1.0 + synth.to_numpy())
        return GrowthSeries(
            fund.symbol, frequency, _seconds(synth.index), growth, empty, empty, empty, empty,
            None, None, None,
        )  # fmt: skip
    t0, t1 = overlap[0], overlap[-1]
    every = synth.index.union(real.index)
    pos = every.get_loc(t0)
    base = every[pos - 1] if pos > 0 else t0 - pd.Timedelta(days=365.25 / ppy)

    s_ov = synth.loc[t0:t1]
    r_ov = real.loc[t0:]
    synth_x = _seconds(pd.DatetimeIndex([base]).append(s_ov.index))
    synth_y = np.concatenate([[1.0], np.cumprod(1.0 + s_ov.to_numpy())])
    real_x = _seconds(pd.DatetimeIndex([base]).append(r_ov.index))
    real_y = np.concatenate([[1.0], np.cumprod(1.0 + r_ov.to_numpy())])

    pre = synth.loc[synth.index <= base]
    pre_x, pre_y = empty, empty
    if len(pre):
        c = np.cumprod(1.0 + pre.to_numpy())
        pre_x, pre_y = _seconds(pre.index), c / c[-1]
        if pre.index[-1] != base:  # join the dashed part to the solid one
            pre_x, pre_y = np.append(pre_x, synth_x[0]), np.append(pre_y, 1.0)

    both = pd.concat([real.rename("real"), synth.rename("synth")], axis=1, sort=True).dropna()
    diff = both["real"] - both["synth"]
    te = float(diff.std(ddof=1) * math.sqrt(ppy)) if len(diff) > 1 else math.nan
    corr = float(both["real"].corr(both["synth"])) if len(both) > 2 else math.nan
    return GrowthSeries(
        symbol=fund.symbol,
        frequency=frequency,
        pre_x=pre_x,
        pre_y=pre_y,
        synth_x=synth_x,
        synth_y=synth_y,
        real_x=real_x,
        real_y=real_y,
        inception=pd.Timestamp(real.index[0]),
        overlap_start=pd.Timestamp(t0),
        overlap_end=pd.Timestamp(t1),
        tracking_error=te,
        mean_difference=float(diff.mean() * ppy),
        correlation=corr,
    )


class GrowthPlot(QWidget):
    """Log-scale growth of $1, real vs synthetic; a message instead when there is no data."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.placeholder = QLabel(NO_PRICES_MESSAGE)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setStyleSheet("color: #666; font-size: 13px;")

        self.plot_widget = pg.PlotWidget(
            background="w", axisItems={"bottom": pg.DateAxisItem(orientation="bottom")}
        )
        item = self.plot_widget.getPlotItem()
        item.setLogMode(x=False, y=True)
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setLabel("left", "Growth of $1 (log)")
        item.setMenuEnabled(False)
        self.legend = item.addLegend(offset=(10, 10), labelTextColor=(40, 40, 40))
        dash = pg.mkPen(color=(70, 110, 200), width=1.5, style=Qt.PenStyle.DashLine)
        self.pre_curve = item.plot(pen=dash, name="Synthetic before inception")
        self.synth_curve = item.plot(pen=pg.mkPen((70, 110, 200), width=2), name="Synthetic (map)")
        self.real_curve = item.plot(pen=pg.mkPen((220, 110, 30), width=2), name="Real")

        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.plot_widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.stack, 1)
        self.series: GrowthSeries | None = None
        self.set_message(NO_PRICES_MESSAGE)

    def message(self) -> str:
        """The message shown instead of the chart ('' when the chart is shown)."""
        return self.placeholder.text() if self.stack.currentIndex() == 0 else ""

    def set_message(self, text: str) -> None:
        self.series = None
        for curve in (self.pre_curve, self.synth_curve, self.real_curve):
            curve.setData([], [])
        self.placeholder.setText(text)
        self.caption.setText("")
        self.caption.setVisible(False)
        self.stack.setCurrentIndex(0)

    def set_series(self, series: GrowthSeries) -> None:
        self.series = series
        self.pre_curve.setData(series.pre_x, series.pre_y)
        self.synth_curve.setData(series.synth_x, series.synth_y)
        self.real_curve.setData(series.real_x, series.real_y)
        self.caption.setText(series.describe())
        self.caption.setVisible(True)
        self.stack.setCurrentIndex(1)
        self.plot_widget.getPlotItem().enableAutoRange()
