"""The printed table, the issue-11 target check and the JSON file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.check import EXACT_TOL
from bench.runner import CellResult, ColumnResult

#: Column order in the table after StackOpt.
OTHER_COLUMNS = [
    "StackOpt core",
    "PyPortfolioOpt",
    "PyPortfolioOpt (Clarabel)",
    "skfolio",
    "Riskfolio-Lib",
    "scikit-learn",
    "cvxpy+Clarabel",
    "cvxpy+Clarabel 1e-10",
]

#: Issue 11's targets: (task, universe kind, n, minimum ratio, which column to beat).
#: ``None`` as column = the fastest peer.
RATIO_TARGETS: list[tuple[str, str, int, float, str | None]] = [
    ("frontier", "factor", 500, 1000.0, None),
    ("lev_frontier", "leverage", 1000, 100.0, "cvxpy+Clarabel"),
    ("max_sharpe", "factor", 1000, 25.0, None),
    ("min_variance", "factor", 1000, 100.0, None),
    ("erc", "factor", 500, 300.0, None),
    ("hrp", "factor", 1000, 25.0, None),
    ("backtest", "factor", 500, 100.0, None),
    ("black_litterman", "factor", 1000, 2.0, None),
    ("ledoit_wolf", "factor", 1000, 2.0, None),
]


def fmt_ms(ms: float) -> str:
    if not math.isfinite(ms):
        return "-"
    if ms >= 100:
        return f"{ms:,.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def fmt_err(err: float) -> str:
    if not math.isfinite(err):
        return "?"
    if err <= 0:
        return "0"
    return f"{err:.0e}"


def fmt_ratio(r: float) -> str:
    if not math.isfinite(r):
        return "-"
    if r >= 10:
        return f"{r:,.0f}x"
    return f"{r:.1f}x" if r >= 1 else f"{r:.2g}x"


def _short(text: str, width: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def fmt_cell(c: ColumnResult | None, width: int = 48) -> str:
    if c is None:
        return "-"
    if c.status == "skip":
        return _short(c.reason.replace("skipped: ", "skip ("), width) + ")"
    if c.status == "fail" or not c.samples:
        return _short("fail: " + (c.reason or "no time"), width)
    est = " (est.)" if c.estimated else ""
    return f"{fmt_ms(c.median_ms)}{est} [{fmt_err(c.error)}]"


def _fallbacks(c: ColumnResult | None) -> str:
    if c is None or c.answers == 0:
        return "-"
    return f"{c.fallbacks}/{c.answers}"


def table_rows(cells: list[CellResult]) -> tuple[list[str], list[list[str]]]:
    present = [name for name in OTHER_COLUMNS if any(name in cell.columns for cell in cells)]
    header = ["task", "n", "StackOpt ms [err]", "fastest peer", "peer ms", "peer/StackOpt"]
    header += [f"{name} ms [err]" for name in present] + ["fallbacks"]
    rows = []
    for cell in cells:
        so = cell.stackopt()
        peer = cell.fastest_peer()
        row = [
            cell.label,
            cell.universe,
            fmt_cell(so),
            "-" if peer is None else peer.name + (" (inexact)" if peer.inexact else ""),
            "-" if peer is None else fmt_ms(peer.median_ms) + (" (est.)" if peer.estimated else ""),
            fmt_ratio(cell.ratio()),
        ]
        row += [
            fmt_cell(cell.columns.get(name)) if name in cell.columns else "-" for name in present
        ]
        text = _fallbacks(so)
        core = cell.columns.get("StackOpt core")
        if core is not None and core.fallbacks:
            text += f"; core {_fallbacks(core)}"
        row.append(text)
        rows.append(row)
    return header, rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    right = {i for i, h in enumerate(header) if "ms" in h or h in ("peer/StackOpt",)}
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    out.append(
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    for r in rows:
        cells = [
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def special_rows(special: dict[str, Any]) -> list[str]:
    lines = []
    st = special.get("startup")
    if st is not None:
        if st.get("app_s"):
            lines.append(
                f"- start-up, `python -m desktop --quit-after 0` (offscreen), median of "
                f"{len(st['app_s'])} cold processes: **{fmt_ms(st['app_median_ms'])} ms** for the "
                f"whole process (interpreter start, imports, window shown, close, exit); "
                f"`python -c pass` alone: {fmt_ms(st['python_median_ms'])} ms"
            )
        if st.get("failures"):
            lines.append("- start-up failures: " + "; ".join(st["failures"][:3]))
    gb = special.get("gui_block")
    if gb is not None:
        if "skipped" in gb or "failed" in gb:
            lines.append(f"- longest GUI-thread block: {gb.get('skipped') or gb.get('failed')}")
        else:
            lines.append(
                f"- longest GUI-thread block during a 1,000-fund frontier: "
                f"**{fmt_ms(gb.get('max_block_ms', math.nan))} ms** "
                f"({gb.get('points')} points, {gb.get('ticks')} timer ticks)"
            )
    bs = special.get("backtest_speed")
    if bs is not None:
        if "rows" in bs:
            rows = bs["rows"]
            if isinstance(rows, list):
                for r in rows:
                    lines.append("- backtest_speed: " + _row_text(r))
            else:
                lines.append("- backtest_speed: " + _row_text(rows))
        else:
            lines.append(f"- backtest_speed: {bs.get('skipped') or bs.get('failed')}")
    return lines


def _row_text(r: Any) -> str:
    if isinstance(r, dict):
        parts = []
        for k, v in r.items():
            if isinstance(v, float):
                parts.append(f"{k} {v:,.4g}")
            else:
                parts.append(f"{k} {v}")
        return ", ".join(parts)
    return str(r)


def _find(cells: list[CellResult], task: str, kind: str, n: int) -> CellResult | None:
    return next((c for c in cells if c.task == task and c.kind == kind and c.n == n), None)


def targets(cells: list[CellResult]) -> list[dict[str, Any]]:
    """Issue 11's targets, each with what this run measured (None when not run)."""
    out: list[dict[str, Any]] = []
    for task, kind, n, need, against in RATIO_TARGETS:
        cell = _find(cells, task, kind, n)
        entry: dict[str, Any] = {
            "target": f"{task} n={n}: >= {need:g}x " + (against or "fastest peer"),
            "measured": None,
            "met": None,
        }
        if cell is not None:
            so = cell.stackopt()
            peer = cell.columns.get(against) if against else cell.fastest_peer()
            if so is not None and peer is not None and so.samples and peer.samples:
                if peer.status == "ok" and so.status == "ok":
                    r = peer.median_ms / so.median_ms
                    entry["measured"] = r
                    entry["met"] = r >= need
                    entry["peer"] = peer.name
        out.append(entry)
    big = [c for c in cells if c.n >= 5000 and c.task in ("frontier", "erc", "hrp")]
    if big:
        for c in big:
            so = c.stackopt()
            mem = (c.memory or {}).get("peak_mb")
            ok = so is not None and so.status == "ok"
            out.append(
                {
                    "target": f"{c.task} n={c.n}: completes, peak memory < 2 GB",
                    "measured": mem,
                    "met": bool(ok and (mem is None or mem < 2048)),
                }
            )
    errs = [
        (c.task, c.universe, c.stackopt())
        for c in cells
        if c.stackopt() is not None and c.task not in ("hrp",)
    ]
    worst = max(
        (e.error for _, _, e in errs if e is not None and math.isfinite(e.error)), default=math.nan
    )
    bad = [f"{t} {u}" for t, u, e in errs if e is not None and e.status != "ok"]
    out.append(
        {
            "target": "StackOpt objective within 1e-8 of the verified optimum on every task",
            "measured": None if math.isnan(worst) else worst,
            "met": (not bad) and (math.isnan(worst) or worst <= EXACT_TOL),
            "failures": bad,
        }
    )
    return out


def render(cells: list[CellResult], special: dict[str, Any], meta: dict[str, Any]) -> str:
    header, rows = table_rows(cells)
    lines = [
        f"StackOpt benchmark, {meta.get('date', '')}, {meta.get('mode', '')} run",
        f"machine: {meta.get('machine', {}).get('cpu', '?')}, "
        f"{meta.get('machine', {}).get('cores', '?')} cores, "
        f"load {meta.get('machine', {}).get('load_average')}",
        "",
        markdown(header, rows),
        "",
        "ms = median wall time of a call; [err] = relative objective error against a "
        "KKT-certified optimum (HRP: distance to the reference weights; BL, Ledoit-Wolf: "
        "closed form); (est.) = run on a subset of points or months and scaled; "
        "fallbacks = StackOpt answers that left the fast path / answers checked.",
    ]
    extra = special_rows(special)
    if extra:
        lines += ["", *extra]
    lines += ["", "Targets (issue 11):"]
    for t in targets(cells):
        met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        m = t["measured"]
        if isinstance(m, float) and "x " in t["target"]:
            shown = fmt_ratio(m)
        elif isinstance(m, float):
            shown = f"{m:.3g}"
        else:
            shown = "-"
        lines.append(f"- {t['target']}: {shown} ({met})")
    notes = []
    for cell in cells:
        for c in cell.columns.values():
            if c.status == "fail":
                notes.append(f"- {cell.label} {cell.universe}, {c.name}: {c.reason}")
    if notes:
        lines += ["", "Failures:", *notes]
    return "\n".join(lines)


def to_json(
    cells: list[CellResult], special: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    return {
        **meta,
        "cells": [c.to_json() for c in cells],
        "special": special,
        "targets": targets(cells),
    }


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    text = json.dumps(_clean(data), indent=1, default=_json_default, allow_nan=False)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return p


def _clean(obj: Any) -> Any:
    """NaN and infinities become null (strict JSON); containers are walked."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    try:
        import numpy as np

        if isinstance(obj, np.floating):
            return _clean(float(obj))
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.ndarray):
            return _clean(obj.tolist())
    except ImportError:  # pragma: no cover
        pass
    return obj


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return str(obj)
