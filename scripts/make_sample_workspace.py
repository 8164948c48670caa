"""Write resources/sample_workspace.json: a ~$250,000 portfolio of stacked, leveraged
and plain funds plus cash, priced at the close of PRICE_DATE.

Usage (from the repository root)::

    .venv/bin/python scripts/make_sample_workspace.py [--data ../shared/data] [--out PATH]

Prices are the dividend-adjusted closes of PRICE_DATE read from
``etf_daily_adjclose.csv.gz`` in the shared data folder (Yahoo-derived); only one
number per fund is written into the sample. The risk-free rate is the 13-week T-bill
yield (^IRX) of the same day. The fund map is the built-in default map
(``FundExposureMap.default()``), stored in full in the sample. Share counts are whole
shares sized from TARGET_DOLLARS at those prices.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.exposures import FundExposureMap  # noqa: E402
from core.fileio import atomic_write_text  # noqa: E402
from core.optimization.constraints import MarketView, OptimizationConstraints  # noqa: E402
from core.portfolio import Holding, Portfolio  # noqa: E402
from core.workspace import Workspace  # noqa: E402

PRICE_DATE = "2026-07-31"
PRICE_FILE = "etf_daily_adjclose.csv.gz"
CASH = 7_500.0

#: symbol -> (dollars to hold, account). About $242,500 in funds + $7,500 cash.
TARGET_DOLLARS: dict[str, tuple[float, str]] = {
    "RSSB": (45_000, "IRA"),
    "NTSX": (30_000, "Taxable"),
    "GDE": (20_000, "IRA"),
    "RSST": (15_000, "IRA"),
    "VTI": (40_000, "Taxable"),
    "VT": (25_000, "Taxable"),
    "IEF": (15_000, "IRA"),
    "GLD": (12_000, "Taxable"),
    "DBMF": (15_000, "IRA"),
    "SSO": (10_000, "Taxable"),
    "TMF": (4_000, "IRA"),
    "BIL": (12_000, "Taxable"),
}


def read_prices(data: Path) -> tuple[dict[str, float], float]:
    """Closes of the sample's funds on PRICE_DATE and the ^IRX bill yield (fraction)."""
    path = data / PRICE_FILE
    if not path.exists():
        raise SystemExit(f"{path} not found; pass --data pointing at the shared data folder")
    with gzip.open(path, "rt") as fh:
        frame = pd.read_csv(fh, index_col=0, parse_dates=True)
    day = pd.Timestamp(PRICE_DATE)
    if day not in frame.index:
        raise SystemExit(f"{PRICE_FILE} has no row for {PRICE_DATE}")
    row = frame.loc[day]
    missing = [s for s in TARGET_DOLLARS if not pd.notna(row.get(s))]
    if missing:
        raise SystemExit(f"no {PRICE_DATE} close for {', '.join(missing)}")
    prices = {s: round(float(row[s]), 2) for s in TARGET_DOLLARS}
    return prices, round(float(row["^IRX"]) / 100.0, 4)


def build(data: Path) -> Workspace:
    fund_map = FundExposureMap.default()
    missing = [s for s in TARGET_DOLLARS if s not in fund_map]
    if missing:
        raise SystemExit(f"the default fund map lacks {', '.join(missing)}")
    prices, bill_rate = read_prices(data)
    holdings = [
        Holding(
            symbol, round(dollars / prices[symbol]), account=account, name=fund_map[symbol].name
        )
        for symbol, (dollars, account) in TARGET_DOLLARS.items()
    ]
    constraints = OptimizationConstraints(
        min_weight=0.0,
        max_weight=0.40,
        long_only=True,
        min_cash=0.0,
        max_cash=0.05,
        max_total_notional=1.5,
        max_exposure_per_group={"equity": 1.0},
        max_exposure_per_type={"GOLD": 0.25},
        transaction_cost_bps=5.0,
    )
    views = [
        # Trend's long record is gross of fees: expect far less than its history.
        MarketView(["MANAGED_FUT"], "absolute", expected_return=0.03, confidence=0.4),
        MarketView(["INTL_DEV", "US_EQUITY"], "relative", expected_return=0.01, confidence=0.25),
    ]
    settings = {
        "return_method": "exposure_model",
        "covariance_method": "exposure_model",
        "lookback_years": 20.0,
        "frequency": "monthly",
        "risk_free_rate": bill_rate,
        "objective": "max_sharpe",
        "frontier_points": 25,
        "whole_shares": True,
        "cash_buffer": 0.01,
        "min_trade_value": 100.0,
        "rebalance_band": 0.02,
        "ticket_format": "generic",
    }
    return Workspace(
        name="Sample: stacked and plain funds (~$250k)",
        portfolio=Portfolio(holdings, cash=CASH, currency="USD"),
        fund_map=fund_map,
        constraints=constraints,
        views=views,
        settings=settings,
        prices=prices,
        price_date=PRICE_DATE,
        price_source=(
            f"Yahoo Finance dividend-adjusted closes of {PRICE_DATE} (StackOpt shared data "
            f"{PRICE_FILE}), rounded to the cent; risk_free_rate = 13-week T-bill yield "
            "(^IRX) of the same day"
        ),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "resources" / "sample_workspace.json")
    args = parser.parse_args(argv)
    ws = build(args.data)
    ws.validate()
    atomic_write_text(args.out, ws.to_json() + "\n")
    priced = ws.priced_portfolio()
    print(
        f"wrote {args.out}: {len(priced)} holdings, total {priced.total_value:,.2f} USD, "
        f"cash {priced.cash_weight:.1%}, notional {priced.total_notional(ws.fund_map):.0%}"
    )


if __name__ == "__main__":
    main()
