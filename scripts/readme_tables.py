"""Refresh the tables in README.md from the committed summaries (no data needed).

Usage::

    .venv/bin/python scripts/readme_tables.py

Replaces the text between ``<!-- fit-table:start -->`` and ``<!-- fit-table:end -->``
with the fit table built from ``resources/fund_map_fit.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fit_table() -> str:
    doc = json.loads((REPO / "resources" / "fund_map_fit.json").read_text(encoding="utf-8"))
    lines = [
        "| fund | published (% of NAV) | measured betas (%) | R² | synthetic R² | tracking error | real − synthetic /yr | modelled cost /yr | worst month | verdict |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for sym, f in doc["funds"].items():
        pub = ", ".join(f"{k} {v:g}" for k, v in f["published"].items())
        bet = ", ".join(f"{k} {v:g}" for k, v in f["betas"].items())
        s = f.get("synthetic")
        if s:
            syn = (
                f"{s['r_squared']:.3f} | {s['tracking_error_annual']:.1%} | "
                f"{s['mean_difference_annual']:+.1%} | {s['modelled_cost_annual']:.2%} | "
                f"{s['worst_month']} ({s['worst_month_difference']:+.1%})"
            )
        else:
            syn = f"– | {f['tracking_error_annual']:.1%} | – | – | –"
        verdict = (
            "agrees" if f["agrees"] else ("loose proxy" if f["loose_proxy"] else "**disagrees**")
        )
        if f["agrees"] and f["loose_proxy"]:
            verdict = "agrees (loose proxy)"
        lines.append(f"| {sym} | {pub} | {bet} | {f['r_squared']:.3f} | {syn} | {verdict} |")
    skipped = ", ".join(f"{k} ({v})" for k, v in doc.get("skipped", {}).items())
    if skipped:
        lines.append("")
        lines.append(f"Not fitted: {skipped}.")
    return "\n".join(lines)


def main() -> None:
    path = REPO / "README.md"
    text = path.read_text(encoding="utf-8")
    new = re.sub(
        r"(<!-- fit-table:start -->\n).*?(<!-- fit-table:end -->)",
        lambda m: m.group(1) + fit_table() + "\n" + m.group(2),
        text,
        flags=re.S,
    )
    path.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
