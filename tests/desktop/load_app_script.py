"""Load probe run in its own process by test_load.py (so memory is this app's alone).

Opens the app on a workspace of 2,000 funds and holdings, then loads 20 years of daily
prices for 500 symbols through the Market data dialog's worker while a 10 ms GUI timer
ticks; prints one JSON line of measurements.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

CODES = ["US_EQUITY", "INTL_DEV", "EM_EQUITY", "UST_10Y", "UST_LONG", "GOLD", "COMMODITIES"]


def main(folder: Path) -> None:
    app = QApplication([])
    from core.exposures import FundDefinition, FundExposureMap
    from core.portfolio import Holding, Portfolio
    from core.workspace import Workspace
    from desktop.main_window import MainWindow

    rng = np.random.default_rng(0)
    funds = []
    for i in range(2000):
        exposures = {CODES[i % len(CODES)]: 100.0}
        if i % 10 == 0:  # every tenth fund is stacked: 200% notional
            exposures[CODES[(i + 3) % len(CODES)]] = 100.0
        funds.append(FundDefinition(f"F{i:04d}", f"Fund {i}", exposures, 0.1, source="load test"))
    ws = Workspace.sample()
    ws.fund_map = FundExposureMap(funds)
    ws.portfolio = Portfolio([Holding(f.symbol, float(rng.integers(1, 100))) for f in funds], 1e3)
    ws.prices = {f.symbol: float(rng.uniform(10, 200)) for f in funds}
    ws.constraints = ws.constraints.copy(
        max_exposure_per_type={}, max_exposure_per_group={}, fund_bounds={}
    )
    ws.views = []
    path = folder / "big.json"
    ws.save(path)

    # 20 years of business days for 500 symbols
    dates = pd.bdate_range("2006-01-02", periods=20 * 252)
    steps = rng.normal(0.0003, 0.012, (len(dates), 500))
    prices = pd.DataFrame(
        100 * np.exp(np.cumsum(steps, axis=0)),
        index=pd.Index(dates, name="Date"),
        columns=[f"F{i:04d}" for i in range(500)],
    )
    csv = folder / "prices.csv"
    prices.to_csv(csv, float_format="%.4f")

    t0 = time.perf_counter()
    window = MainWindow(str(path), autosave_folder=str(folder), offer_recovery=False)
    window.resize(1280, 800)
    window.show()
    app.processEvents()
    open_s = time.perf_counter() - t0
    # let the freshly opened window finish its deferred first work (tables, charts)
    settle = time.perf_counter()
    while time.perf_counter() - settle < 1.5:
        app.processEvents()
        time.sleep(0.005)

    gaps: list[float] = []
    done: list[bool] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    t_show = time.perf_counter()
    window.show_market_data()
    dialog = window.market_data_dialog
    show_s = time.perf_counter() - t_show
    window.session.market_data_changed.connect(lambda: done.append(True))
    t1 = time.perf_counter()
    dialog.load_files([csv])
    while not done and time.perf_counter() - t1 < 300:
        app.processEvents()
        time.sleep(0.001)
    load_s = time.perf_counter() - t1
    after = time.perf_counter()  # the tabs react to the new prices (refits run on workers)
    while time.perf_counter() - after < 2.0:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    md = window.session.market_data
    print(
        json.dumps(
            {
                "open_s": open_s,
                "holdings_rows": window.holdings_model.rowCount(),
                "loaded": bool(done),
                "price_shape": list(md.prices.shape) if md is not None else None,
                "load_s": load_s,
                "max_gap_ms": max(gaps) if gaps else None,
                "ticks": len(gaps),
                "show_dialog_s": show_s,
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                # the current-holdings analysis of 2,000 funds arrives from its worker
                "analysis_volatility": window.results_tab.volatility.value.text(),
            }
        )
    )
    window.session.undo_stack.setClean()
    window.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
