"""Test setup: headless Qt before any Qt import, and the shared real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: Real market data lives beside the project checkout (never copied into it).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real-data folder; skips the test with a reason when it is absent."""
    if not (SHARED_DATA / "etf_daily_adjclose.csv.gz").exists():
        pytest.skip(f"real market data not found at {SHARED_DATA} (only CI and developers have it)")
    return SHARED_DATA
