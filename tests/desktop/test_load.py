"""Load: 2,000 funds and holdings, 20 years of daily prices for 500 symbols.

Run in a separate process (tests/desktop/load_app_script.py) so that the memory figure is
the app's own, not the test runner's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: The GUI thread's longest block while the prices load on a worker and the tabs react
#: (measured 30-40 ms). It was 0.3 s before the GIL switch interval and the loader's line
#: scan were fixed, and 0.27-0.3 s again on CI (50 ms alone here, 160-210 ms after the rest
#: of the suite) while the stale-price scan ran numpy's accumulate over the whole panel in
#: one call, which holds the GIL and got slower as fresh memory got slower to fault in.
MAX_GAP_MS = 150


def _measure(folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(folder))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "desktop" / "load_app_script.py"), str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    print(m)
    return m


def test_app_stays_responsive_and_small_with_2000_funds_and_500_price_series(tmp_path):
    m = _measure(tmp_path / "first")
    if m["max_gap_ms"] >= MAX_GAP_MS:
        # One more measurement before failing, for a neighbour's CPU burst on the shared
        # 2-core machine; a regression of the app blocks in every run.
        m = _measure(tmp_path / "again")
    assert m["holdings_rows"] == 2001  # 2,000 funds plus the cash row
    assert m["loaded"] and m["price_shape"] == [20 * 252, 500]
    assert m["max_rss_mb"] < 2048
    assert m["max_gap_ms"] < MAX_GAP_MS
    assert m["ticks"] > 50
    assert m["analysis_volatility"].endswith("%")  # analysed off the GUI thread, then shown
