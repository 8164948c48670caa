"""Check the built-in fund map against price history and write resources/fund_map_fit.json.

For every fund of the default map with at least a year of prices in
``etf_daily_adjclose.csv.gz``, regress its weekly returns in excess of BIL (cleaned
prices) on the excess returns of the proxies of the exposure types it carries, and
record the published exposures next to the measured betas. Only summary statistics are
written (betas, R^2, tracking error), never the price series.

Usage::

    .venv/bin/python scripts/fit_fund_map.py [DATA_FOLDER] [--output PATH]

DATA_FOLDER defaults to ``../shared/data`` relative to the repository root.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from core.errors import StackOptError  # noqa: E402
from core.exposures import FundExposureMap  # noqa: E402
from core.fileio import atomic_write_text  # noqa: E402
from core.fund_fit import FundFitReport, fund_fit_reports  # noqa: E402
from core.market_data import (  # noqa: E402
    LOOSE_PROXY_GROUPS,
    FundMapFit,
    clean_prices,
    read_prices,
)

PRICE_FILE = "etf_daily_adjclose.csv.gz"
SOURCE = "Yahoo Finance adjusted closes, weekly returns in excess of BIL"


def _pct(x: float) -> float:
    return round(100.0 * float(x), 1)


def fund_entry(result: FundMapFit, report: FundFitReport | None = None) -> dict[str, Any]:
    """The JSON record of one fund: published and measured exposures in percent, and
    (with a report) how the map's synthetic returns track the real ones."""
    fit = result.fit
    check = result.check()
    synthetic = None
    if report is not None and report.synthetic is not None and report.synthetic.has_overlap:
        sf = report.synthetic
        synthetic = {
            "r_squared": round(sf.r_squared, 4),
            "correlation": round(sf.correlation, 4),
            "tracking_error_annual": round(sf.tracking_error_annual, 4),
            "mean_difference_annual": round(sf.mean_difference_annual, 4),
            "modelled_cost_annual": round(report.modelled_cost_annual, 4),
            "worst_month": f"{sf.worst_month:%Y-%m}" if sf.worst_month is not None else None,
            "worst_month_difference": round(sf.worst_month_difference, 4),
        }
    return {
        "synthetic": synthetic,
        "published": {c: float(v) for c, v in result.fund.exposures.items()},
        "betas": {c: _pct(b) for c, b in fit.betas.items()},
        "beta_stderr": {c: _pct(s) for c, s in fit.beta_stderr.items()},
        "proxies": dict(result.proxies),
        "r_squared": round(fit.r_squared, 4),
        "tracking_error_annual": round(fit.tracking_error_annual, 4),
        "residual_vol_annual": round(fit.residual_vol_annual, 4),
        "alpha_annual": round(fit.alpha_annual, 4),
        "n_obs": fit.n_obs,
        "start": f"{fit.start:%Y-%m-%d}",
        "end": f"{fit.end:%Y-%m-%d}",
        "frequency": fit.frequency,
        "loose_proxy": result.loose_proxy,
        "loose_types": list(result.loose_types),
        "unfitted": list(result.unfitted),
        "probes": {
            c: {"beta": _pct(b), "t": round(b / s, 1) if s > 0 else None}
            for c, (b, s) in result.probes.items()
        },
        "agrees": check.ok,
        "disagreements": [d.describe() for d in check.disagreements],
        "loose_disagreements": [d.describe() for d in check.loose],
    }


def build_report(data_folder: Path) -> tuple[dict[str, Any], list[str]]:
    """Fit every built-in fund; return the JSON document and printable summary lines."""
    prices = read_prices(data_folder / PRICE_FILE)
    prices, quality = clean_prices(prices)
    fund_map = FundExposureMap.default()
    reports, skipped = fund_fit_reports(prices, fund_map, frequency="weekly", min_history_years=1.0)
    fits = {sym: report.regression for sym, report in reports.items()}
    doc: dict[str, Any] = {
        "format": "stackopt-fund-map-fit",
        "version": 1,
        "source": SOURCE,
        "data": f"{PRICE_FILE} (Yahoo-derived dividend-adjusted daily closes), last date "
        f"{prices.index[-1]:%Y-%m-%d}",
        "generated": dt.date.today().isoformat(),
        "method": (
            "OLS with intercept of each fund's weekly return minus BIL's on the proxies' "
            "weekly returns minus BIL's, over the weeks where all exist; proxies are the "
            "exposure types' proxy tickers. Prices cleaned first (bad prints interpolated, "
            "unadjusted last-row ex-dividend drops removed); partial last week dropped. "
            "Betas, published exposures and their standard errors are percent of NAV; "
            "r_squared, tracking_error_annual (std of fund minus replicating portfolio), "
            "residual_vol_annual and alpha_annual are fractions per year."
        ),
        "tolerance": (
            "a type disagrees when |beta - published| > max(25, 25% of published) percentage "
            "points; probes (types of asset groups the fund does not carry, added one at a "
            "time) also need |t| > 3"
        ),
        "loose_proxy_groups": sorted(g.value for g in LOOSE_PROXY_GROUPS),
        "data_repairs": list(quality.actions),
        "synthetic_method": (
            "the map replayed on the proxies with no refitting, r_cash + sum_k e_k "
            "(r_k - r_cash) - (expense + spread x borrowed notional), against the real "
            "weekly returns: r_squared as a prediction, tracking error, correlation, "
            "mean_difference_annual (real minus synthetic, the cost drag beyond the "
            "modelled costs), and the worst calendar month of real minus synthetic"
        ),
        "funds": {sym: fund_entry(r.regression, r) for sym, r in reports.items()},
        "skipped": dict(skipped),
    }
    lines = [f"{'fund':6} {'R2':>5} {'n':>4}  published -> measured (percent)"]
    for sym, result in fits.items():
        pairs = ", ".join(
            f"{c} {result.fund.exposures.get(c, 0):g}->{_pct(b):g}"
            for c, b in result.fit.betas.items()
        )
        flag = "" if result.check().ok else "  <-- DISAGREES"
        if result.loose_proxy:
            flag += f"  (loose: {', '.join(result.loose_types)})"
        lines.append(f"{sym:6} {result.fit.r_squared:5.3f} {result.fit.n_obs:4d}  {pairs}{flag}")
    for sym, reason in skipped.items():
        lines.append(f"{sym:6} skipped: {reason}")
    return doc, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data_folder",
        nargs="?",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="folder holding etf_daily_adjclose.csv.gz (default: ../shared/data)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO / "resources" / "fund_map_fit.json",
        help="where to write the JSON (default: resources/fund_map_fit.json)",
    )
    args = parser.parse_args(argv)
    if not (args.data_folder / PRICE_FILE).exists():
        print(f"error: {PRICE_FILE} not found in {args.data_folder}", file=sys.stderr)
        return 2
    try:
        doc, lines = build_report(args.data_folder)
    except StackOptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    atomic_write_text(args.output, json.dumps(doc, indent=2) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
