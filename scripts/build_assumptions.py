"""Build resources/market_assumptions.json from the shared monthly exposure panel.

Usage::

    python scripts/build_assumptions.py [DATA_FOLDER] [--output PATH]

DATA_FOLDER defaults to ``../shared/data`` relative to the repository root and must hold
``exposure_monthly_returns.csv`` (and, to name each number's source,
``exposure_monthly_sources.csv``). Only summary statistics are written; the monthly series
never enter the project. The computation is
:func:`core.assumptions.estimate_assumptions_from_panel`; this script reads the files, calls
it, writes the JSON and refreshes the table in ``resources/ASSUMPTIONS.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from core.assumptions import (  # noqa: E402
    MarketAssumptions,
    estimate_assumptions_from_panel,
    read_exposure_panel,
)
from core.fileio import atomic_write_text  # noqa: E402

PANEL = "exposure_monthly_returns.csv"
SOURCES = "exposure_monthly_sources.csv"
TABLE_BEGIN = "<!-- BEGIN GENERATED TABLE (scripts/build_assumptions.py) -->"
TABLE_END = "<!-- END GENERATED TABLE -->"


def build(data_folder: Path) -> MarketAssumptions:
    """Read the panel (and its source labels when present) and estimate the assumptions."""
    panel = read_exposure_panel(data_folder / PANEL)
    sources_path = data_folder / SOURCES
    sources = (
        pd.read_csv(sources_path, index_col=0, parse_dates=True, dtype=str)
        if sources_path.is_file()
        else None
    )
    return estimate_assumptions_from_panel(panel, sources=sources, panel_name=PANEL)


def markdown_table(assumptions: MarketAssumptions) -> str:
    """The summary table written into ASSUMPTIONS.md."""
    lines = [
        f"As of {assumptions.metadata.get('as_of', '?')}; cash rate "
        f"{assumptions.cash_rate:.2%} over {assumptions.details['cash_rate']['window']}.",
        "",
        "| type | expected excess return | volatility | Sharpe | historical mean excess | "
        "prior | mean window | source |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for code in assumptions.codes:
        d = assumptions.details.get(code, {})
        sharpe = assumptions.sharpe_ratios()[code]
        hist = d.get("historical_mean_excess")
        gross = d.get("historical_mean_excess_gross")
        prior = d.get("prior_excess")
        lines.append(
            f"| {code} | {assumptions.expected_excess_returns[code]:.2%} | "
            f"{assumptions.volatilities[code]:.2%} | "
            f"{'' if pd.isna(sharpe) else f'{sharpe:.2f}'} | "
            f"{'' if hist is None else f'{hist:.2%}'}"
            f"{'' if gross is None else f' (gross {gross:.2%}, after haircut)'} | "
            f"{'' if prior is None else f'{prior:.2%}'} | {d.get('mean_window', '')} | "
            f"{assumptions.sources.get(code, '')} |"
        )
    codes = assumptions.codes
    lines += [
        "",
        f"Correlations ({assumptions.details['correlation']['window']}; smallest eigenvalue "
        f"{assumptions.min_eigenvalue:.4f}):",
        "",
        "| | " + " | ".join(codes) + " |",
        "|---|" + "---:|" * len(codes),
    ]
    for a in codes:
        row = " | ".join(f"{assumptions.correlation.loc[a, b]:.2f}" for b in codes)
        lines.append(f"| {a} | {row} |")
    return "\n".join(lines)


def refresh_markdown(path: Path, table: str) -> bool:
    """Replace the generated table between the markers; False when the markers are absent."""
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    if TABLE_BEGIN not in text or TABLE_END not in text:
        return False
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    atomic_write_text(path, f"{head}{TABLE_BEGIN}\n{table}\n{TABLE_END}{tail}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data_folder",
        nargs="?",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="folder with exposure_monthly_returns.csv (default: ../shared/data)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "resources" / "market_assumptions.json",
        help="JSON file to write (default: resources/market_assumptions.json)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=ROOT / "resources" / "ASSUMPTIONS.md",
        help="document whose generated table is refreshed (default: resources/ASSUMPTIONS.md)",
    )
    args = parser.parse_args(argv)
    assumptions = build(args.data_folder)
    assumptions.save_json(args.output)
    print(assumptions.to_frame().to_string(float_format=lambda x: f"{x:.4f}"))
    print(f"cash rate {assumptions.cash_rate:.4f}; min eigenvalue {assumptions.min_eigenvalue:.4f}")
    print(f"wrote {args.output}")
    if refresh_markdown(args.markdown, markdown_table(assumptions)):
        print(f"refreshed the table in {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
