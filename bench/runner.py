"""Run the benchmark: medians of repeats interleaved round-robin between the columns.

For each (task, universe) cell the runner

1. runs the task's setup (never timed);
2. warms every column up once per task (imports, first compilation), untimed;
3. decides how much of each column to run: a peer whose time at this size, predicted
   from a smaller size (``t * (n / n0) ** growth``), exceeds ``skip_after`` is skipped; a
   *scalable* peer (frontier points, backtest months) that would exceed ``budget`` per
   call runs on a subset, and its median is extrapolated along ``a + b * units`` fitted
   through pilot calls ("(est.)"). StackOpt's own columns always run in full;
4. times ``repeats`` rounds; in each round every active column is called once, in an
   order rotated from round to round, and every answer is checked right after its call;
5. stops repeating a column after a call longer than ``budget`` or a failure (an
   exception or a wrong answer is recorded with its reason, never as a time).

Medians are per column; only ratios within one run are meaningful on a shared machine.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import os
import subprocess
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench import check as chk
from bench.problems import SEED, Universe, build_universe
from bench.tasks import TASKS, Column, Task


@dataclass
class Settings:
    repeats: int = 5
    budget: float = 20.0  # seconds per timed call before a column is cut short
    skip_after: float = 180.0  # predicted seconds per call above which a column is skipped
    seed: int = SEED
    data_dir: str | None = None
    tolerances: chk.Tolerances = field(default_factory=chk.Tolerances)
    memory_probe: bool = True
    columns: list[str] | None = None  # restrict to these column names (development)
    progress: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)


@dataclass
class ColumnResult:
    """One column of one cell: its timed calls, the verdicts on them, what it used."""

    name: str
    kind: str
    status: str = "ok"  # 'ok' | 'fail' | 'skip'
    reason: str = ""
    #: seconds of each timed call as run (on ``units_run`` units)
    samples: list[float] = field(default_factory=list)
    units_run: int | None = None
    units_total: int | None = None
    #: (units, seconds) of the pilot call on the smallest subset, if one was made
    pilot: tuple[int, float] | None = None
    error: float = float("nan")
    violation: float = 0.0
    check_method: str = ""
    answers: int = 0
    fallbacks: int = 0
    solvers: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    check_s: float = 0.0

    @property
    def estimated(self) -> bool:
        return (
            self.units_run is not None
            and self.units_total is not None
            and self.units_run < self.units_total
        )

    @property
    def median_ms(self) -> float:
        """Median of the calls, extrapolated to all units when run on a subset.

        With a pilot on fewer units the extrapolation is the line through (pilot units,
        pilot time) and (units run, median time), so a fixed set-up cost is not scaled up;
        otherwise time is scaled in proportion to the units.
        """
        if not self.samples:
            return float("nan")
        t = float(np.median(self.samples))
        if self.estimated:
            k, total = int(self.units_run or 1), int(self.units_total or 1)
            if self.pilot is not None and k > self.pilot[0] and t > self.pilot[1]:
                slope = (t - self.pilot[1]) / (k - self.pilot[0])
                t = t + slope * (total - k)
            else:
                t = t * total / k
        return t * 1e3

    @property
    def inexact(self) -> bool:
        return self.status == "ok" and math.isfinite(self.error) and self.error > chk.EXACT_TOL

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "median_ms": None if not self.samples else self.median_ms,
            "samples_ms": [s * 1e3 for s in self.samples],
            "estimated": self.estimated,
            "pilot": None
            if self.pilot is None
            else {"units": self.pilot[0], "ms": self.pilot[1] * 1e3},
            "units_run": self.units_run,
            "units_total": self.units_total,
            "relative_error": None if not math.isfinite(self.error) else self.error,
            "max_violation": self.violation,
            "check": self.check_method,
            "answers_checked": self.answers,
            "fallbacks": self.fallbacks,
            "solvers": dict(self.solvers),
            "notes": self.notes,
            "check_s": self.check_s,
        }


@dataclass
class CellResult:
    task: str
    label: str
    universe: str
    kind: str
    n: int
    columns: dict[str, ColumnResult]
    setup_s: float = 0.0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    memory: dict[str, Any] | None = None

    def stackopt(self) -> ColumnResult | None:
        return next((c for c in self.columns.values() if c.kind == "stackopt"), None)

    def fastest_peer(self) -> ColumnResult | None:
        peers = [
            c
            for c in self.columns.values()
            if c.kind in ("peer", "cvxpy") and c.status == "ok" and c.samples
        ]
        return min(peers, key=lambda c: c.median_ms) if peers else None

    def ratio(self) -> float:
        so, peer = self.stackopt(), self.fastest_peer()
        if so is None or peer is None or so.status != "ok" or not so.samples:
            return float("nan")
        return peer.median_ms / so.median_ms

    def to_json(self) -> dict[str, Any]:
        peer = self.fastest_peer()
        return {
            "task": self.task,
            "label": self.label,
            "universe": self.universe,
            "kind": self.kind,
            "n": self.n,
            "setup_s": self.setup_s,
            "wall_s": self.wall_s,
            "fastest_peer": None if peer is None else peer.name,
            "ratio_peer_over_stackopt": None if math.isnan(self.ratio()) else self.ratio(),
            "columns": [c.to_json() for c in self.columns.values()],
            "notes": self.notes,
            "memory": self.memory,
        }


# --------------------------------------------------------------------------------------
# One timed call
# --------------------------------------------------------------------------------------
def _call(col: Column, cell: Any, units: int | None) -> tuple[float, Any, list[str]]:
    """Call a column once with stdout and warnings captured; returns (seconds, answer, warnings)."""
    sink = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(sink):
            gc.collect()
            t0 = time.perf_counter()
            answer = col.run(cell, units)
            dt = time.perf_counter() - t0
    msgs = sorted({f"{w.category.__name__}: {str(w.message)[:160]}" for w in caught})
    return dt, answer, msgs


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:300]


class History:
    """Seconds per unit of each (task, column) at each n, to predict larger sizes.

    A time is extrapolated only when it is at least ``MIN_TRUSTED`` seconds a call and
    measured at ``n >= MIN_N``: below that a call is dominated by fixed overhead and a
    power law would wildly overshoot.
    """

    MIN_TRUSTED = 1.0
    MIN_N = 200

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], dict[int, list[tuple[float, float]]]] = {}

    def add(self, task: str, col: str, n: int, per_unit: float, per_call: float) -> None:
        self._data.setdefault((task, col), {}).setdefault(n, []).append((per_unit, per_call))

    def predict(self, task: Task, col: str, n: int) -> float | None:
        """Predicted seconds per unit at ``n``, or None when nothing trustworthy is known."""
        seen = self._data.get((task.key, col))
        if not seen:
            return None
        n0 = min(seen, key=lambda m: abs(math.log(m / n)))
        per_unit = float(np.median([p for p, _ in seen[n0]]))
        per_call = float(np.median([c for _, c in seen[n0]]))
        if n > n0 and (per_call < self.MIN_TRUSTED or n0 < self.MIN_N):
            return None
        return per_unit * (n / n0) ** task.growth


# --------------------------------------------------------------------------------------
# One cell
# --------------------------------------------------------------------------------------
def run_cell(
    task: Task,
    u: Universe,
    settings: Settings,
    history: History,
    warmed: set[tuple[str, str]],
) -> CellResult:
    tol = settings.tolerances
    if settings.columns:
        keep = [c for c in task.columns if c.name in settings.columns]
        task = Task(**{**task.__dict__, "columns": keep})
    results = {c.name: ColumnResult(c.name, c.kind) for c in task.columns}
    cell_res = CellResult(task.key, task.label, u.label, u.kind, u.n, results)
    if task.note:
        cell_res.notes.append(task.note)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cell = task.setup(u)
    except Exception as exc:  # noqa: BLE001 - a broken setup fails the cell, not the run
        for r in results.values():
            r.status, r.reason = "fail", f"setup failed: {_describe(exc)}"
        cell_res.notes.append(traceback.format_exc(limit=4))
        return cell_res
    cell_res.setup_s = time.perf_counter() - t0

    total = task.units
    plan: dict[str, int | None] = {}
    active: list[Column] = []
    for col in task.columns:
        res = results[col.name]
        res.units_total = total
        if col.note:
            res.notes.append(col.note)
        # warm-up once per (task, column): imports, first compilation, caches
        if (task.key, col.name) not in warmed:
            warmed.add((task.key, col.name))
            try:
                _call(col, cell, task.min_units if col.scalable else None)
            except ModuleNotFoundError as exc:
                res.status = "skip"
                res.reason = f"skipped: {exc.name} is not installed (pip install -e '.[bench]')"
                continue
            except Exception as exc:  # noqa: BLE001
                res.notes.append(f"warm-up raised {_describe(exc)}")
        per_unit = history.predict(task, col.name, u.n)
        ours = col.kind in ("stackopt", "core")  # never skipped: they are what is measured
        units: int | None = None
        if col.scalable and total:
            try:
                units = _plan_units(col, cell, task, res, per_unit, settings)
            except Exception as exc:  # noqa: BLE001
                res.status, res.reason = "fail", _describe(exc)
                continue
            if units is None:
                continue
            res.units_run = units
        else:
            res.units_run = total
            if not ours and per_unit is not None and per_unit * (total or 1) > settings.skip_after:
                res.status = "skip"
                res.reason = f"skipped: est. {per_unit * (total or 1):,.0f} s a call"
                continue
        plan[col.name] = units
        active.append(col)

    for rnd in range(settings.repeats):
        if not active:
            break
        k = rnd % len(active)
        for col in active[k:] + active[:k]:
            res = results[col.name]
            if res.status != "ok":
                continue
            units = plan[col.name]
            try:
                dt, answer, msgs = _call(col, cell, units)
            except ModuleNotFoundError as exc:
                res.status = "skip"
                res.reason = f"skipped: {exc.name} is not installed (pip install -e '.[bench]')"
                continue
            except Exception as exc:  # noqa: BLE001
                res.status, res.reason = "fail", _describe(exc)
                continue
            for m in msgs:
                if m not in res.notes and len(res.notes) < 8:
                    res.notes.append(m)
            t_check = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    verdict = task.check(cell, answer, tol)
            except Exception as exc:  # noqa: BLE001 - a checker bug must not hide the time
                verdict = chk.fail(f"checker error: {_describe(exc)}")
            res.check_s += time.perf_counter() - t_check
            res.answers += verdict.count
            res.fallbacks += int(answer.fallbacks)
            res.solvers.update(answer.solvers)
            res.violation = max(res.violation, verdict.violation)
            if math.isfinite(verdict.error):
                res.error = (
                    verdict.error if math.isnan(res.error) else max(res.error, verdict.error)
                )
            res.check_method = verdict.method
            for n_ in verdict.notes:
                if n_ not in res.notes and len(res.notes) < 8:
                    res.notes.append(n_)
            if not verdict.ok:
                res.status, res.reason = "fail", verdict.reason
                res.notes.append(f"the wrong answer took {dt * 1e3:,.1f} ms")
                continue
            res.samples.append(dt)
            history.add(task.key, col.name, u.n, dt / (units or total or 1), dt)
            if dt > settings.budget:
                res.notes.append(f"one repeat only: a call took {dt:,.1f} s")
        active = [
            c
            for c in active
            if results[c.name].status == "ok" and not _over(results[c.name], settings)
        ]
    return cell_res


def _plan_units(
    col: Column,
    cell: Any,
    task: Task,
    res: ColumnResult,
    per_unit: float | None,
    settings: Settings,
) -> int | None:
    """How many units (points, months) a scalable column runs; None when it is skipped.

    Two pilot calls on ``m`` and ``2m`` units fit ``time = a + b * units``, so that a
    fixed set-up cost (building the model, estimating moments) is not multiplied.
    """
    total = int(task.units or 1)
    m = task.min_units
    if per_unit is not None and per_unit * m > settings.skip_after:
        res.status, res.reason = "skip", f"skipped: est. {per_unit * total:,.0f} s a call"
        return None
    if per_unit is not None and per_unit * total <= settings.budget / 3:
        return total
    t1, _, _ = _call(col, cell, m)
    res.pilot = (m, t1)
    if t1 > settings.skip_after:
        res.status, res.reason = "skip", f"skipped: {m} units took {t1:,.0f} s"
        return None
    if t1 * total / m <= settings.budget:
        return total
    if 2 * t1 > settings.budget:
        return m
    t2, _, _ = _call(col, cell, 2 * m)
    b = max((t2 - t1) / m, 1e-9)
    a = max(t1 - b * m, 0.0)
    if a + b * total <= settings.budget:
        return total
    return int(min(total, max(m, (settings.budget - a) // b)))


def _over(res: ColumnResult, settings: Settings) -> bool:
    return bool(res.samples) and res.samples[-1] > settings.budget


# --------------------------------------------------------------------------------------
# Memory probe (a separate process, so that the peak belongs to StackOpt alone)
# --------------------------------------------------------------------------------------
def _vm(field_name: str) -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return float(line.split()[1]) / 1024.0  # kB -> MB
    except OSError:
        pass
    return float("nan")


def memory_probe_main(task_key: str, kind: str, n: int, seed: int) -> None:
    """Child-process entry: build the universe, run StackOpt's column once, print RSS."""
    from bench.tasks import TASKS_BY_KEY

    task = TASKS_BY_KEY[task_key]
    u = build_universe(kind, n, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cell = (task.light_setup or task.setup)(u)
        col = next(c for c in task.columns if c.kind == "stackopt")
        gc.collect()
        setup_peak = _vm("VmHWM")
        reset = _reset_peak()
        before_rss = _vm("VmRSS")
        t0 = time.perf_counter()
        col.run(cell, None)
        dt = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "rss_before_mb": before_rss,
                "setup_peak_mb": setup_peak,
                "peak_mb": _vm("VmHWM"),
                "peak_is_call_only": reset,
                "seconds": dt,
            }
        )
    )


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (Linux: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_probe(task_key: str, kind: str, n: int, seed: int, timeout: float = 1800.0) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "--memory-probe",
        task_key,
        kind,
        str(n),
        "--seed",
        str(seed),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"failed": f"no answer within {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["?"]
        return {"failed": f"exit {proc.returncode}: {tail[0][:200]}"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"failed": "no result printed"}


# --------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------
def plan_cells(
    task_keys: list[str],
    sizes: dict[str, list[int]],
    include_sp500: bool,
    explicit: bool = False,
    quick: bool = False,
) -> list[tuple[str, int | None, list[Task]]]:
    """(universe kind, n, tasks) in increasing n, so that predictions come from smaller n.

    Without ``explicit`` sizes each task stops at its ``default_max_n``; ``max_n`` always
    holds. The S&P universe (461 stocks) takes its place among the factor sizes.
    """
    wanted = [t for t in TASKS if t.key in task_keys]
    universes: list[tuple[str, int | None]] = [
        (kind, n) for kind in ("factor", "leverage") for n in sizes.get(kind, [])
    ]
    if include_sp500 and any("sp500" in t.universes for t in wanted):
        universes.append(("sp500", None))
    universes.sort(key=lambda kn: 461 if kn[1] is None else kn[1])
    out = []
    for kind, n in universes:
        tasks = []
        for t in wanted:
            if kind not in t.universes:
                continue
            if n is not None and t.max_n is not None and n > t.max_n:
                continue
            if n is not None and not explicit and n > t.default_max_n:
                continue
            if n is not None and quick and not explicit and n > t.quick_max_n:
                continue
            tasks.append(t)
        if tasks:
            out.append((kind, n, tasks))
    return out


def run_all(
    task_keys: list[str],
    sizes: dict[str, list[int]],
    include_sp500: bool,
    settings: Settings,
    explicit: bool = False,
    quick: bool = False,
) -> tuple[list[CellResult], dict[str, Any]]:
    history = History()
    warmed: set[tuple[str, str]] = set()
    cells: list[CellResult] = []
    info: dict[str, Any] = {"universes": []}
    for kind, n, tasks in plan_cells(task_keys, sizes, include_sp500, explicit, quick):
        t0 = time.perf_counter()
        try:
            u = build_universe(kind, n, seed=settings.seed, data_dir=settings.data_dir)
        except Exception as exc:  # noqa: BLE001 - e.g. the real-data folder is absent
            settings.progress(f"[{kind} {n or ''}] skipped: {_describe(exc)}")
            info["universes"].append({"kind": kind, "n": n, "skipped": _describe(exc)})
            continue
        info["universes"].append(
            {"kind": kind, "label": u.label, "n": u.n, "build_s": time.perf_counter() - t0,
             **{k: v for k, v in u.info.items() if isinstance(v, (int, float, str))}}
        )  # fmt: skip
        for task in tasks:
            settings.progress(f"[{task.key} {u.label}] running ...")
            t_cell = time.perf_counter()
            cell = run_cell(task, u, settings, history, warmed)
            cell.wall_s = time.perf_counter() - t_cell
            if settings.memory_probe and u.n >= 5000 and task.default_max_n >= 5000:
                cell.memory = memory_probe(task.key, kind, u.n, settings.seed)
            cells.append(cell)
            settings.progress(_progress_line(cell))
        if "fund_map_s" in u.info:
            info["universes"][-1]["fund_map_s"] = u.info["fund_map_s"]
        refs = u.cache.get("reference")
        if refs is not None:
            info["universes"][-1]["reference_solves"] = refs.solves
        del u
        gc.collect()
    return cells, info


def _progress_line(cell: CellResult) -> str:
    parts = []
    for c in cell.columns.values():
        if c.status == "ok" and c.samples:
            parts.append(f"{c.name} {c.median_ms:,.1f} ms" + (" (est.)" if c.estimated else ""))
        else:
            parts.append(f"{c.name} {c.status}")
    return f"[{cell.task} {cell.universe}] " + ", ".join(parts)


def import_times(names: list[str]) -> dict[str, float]:
    """Seconds to import each library in this process, in this order (shared deps count once)."""
    out = {}
    for name in names:
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                __import__(name)
        except Exception:  # noqa: BLE001 - reported as missing
            out[name] = float("nan")
            continue
        out[name] = time.perf_counter() - t0
    return out


def machine_info() -> dict[str, Any]:
    import platform

    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    threads = {
        k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    }
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": load,
        "blas_threads_env": {k: v for k, v in threads.items() if v},
    }


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for dist in (
        "stackopt", "numpy", "scipy", "pandas", "cvxpy", "clarabel", "highspy", "daqp",
        "piqp", "osqp", "scs", "scikit-learn", "PyPortfolioOpt", "skfolio", "Riskfolio-Lib",
        "PySide6-Essentials",
    ):  # fmt: skip
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    try:
        head = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
            timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
        out["stackopt_git"] = head or None
    except (OSError, subprocess.SubprocessError):
        out["stackopt_git"] = None
    return out
