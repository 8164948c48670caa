"""``python -m bench``: StackOpt against PyPortfolioOpt, skfolio and Riskfolio-Lib.

Prints a table and writes JSON (see ``bench/README.md``)::

    python -m bench --quick                 # n <= 500, 3 repeats, a few minutes
    python -m bench                         # the full run (n up to 5000)
    python -m bench --tasks frontier erc --sizes 100 500 sp500 --repeats 7
"""

from __future__ import annotations

import os
import sys


def _early_threads(argv: list[str]) -> None:
    """Pin BLAS threads before numpy is imported (default 1; ``--threads default`` keeps
    the environment's). On a shared 2-core machine multi-threaded OpenBLAS spins against
    other processes: a 500 x 500 eigh took 5x longer and small factorizations had 200 ms
    outliers, which punishes the library doing the most linear algebra."""
    value = "1"
    if "--threads" in argv:
        i = argv.index("--threads")
        value = argv[i + 1] if i + 1 < len(argv) else "1"
    elif any(os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")):
        return  # the caller chose already
    if value == "default":
        return
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = value


_early_threads(sys.argv[1:])
# As the app does (desktop/__main__.py), and for every column alike: numpy's request for
# transparent huge pages cost 11 ms per new 1,000 x 1,000 array on the test machine.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as _dt  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TextIO  # noqa: E402

SPECIAL = ("startup", "gui_block", "backtest_speed")
_SAVED_STDOUT: int | None = None


def _stdout_to_stderr() -> None:
    """Send file descriptor 1 to stderr for the run; the table goes to the real stdout."""
    global _SAVED_STDOUT
    if _SAVED_STDOUT is None:
        sys.stdout.flush()
        _SAVED_STDOUT = os.dup(1)
        os.dup2(2, 1)


@contextlib.contextmanager
def _real_stdout() -> Iterator[TextIO]:
    """The process's original standard output, whatever fd 1 points to now."""
    sys.stdout.flush()
    fd = os.dup(_SAVED_STDOUT if _SAVED_STDOUT is not None else 1)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yield fh


DEFAULT_JSON = Path("bench") / "results" / "latest.json"


def _parser() -> argparse.ArgumentParser:
    from bench.tasks import TASKS

    keys = [t.key for t in TASKS] + list(SPECIAL)
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark StackOpt against PyPortfolioOpt, skfolio and Riskfolio-Lib "
        "(and plain cvxpy) in one run: medians of round-robin repeats, every answer checked.",
    )
    p.add_argument(
        "--quick", action="store_true",
        help="development run: n <= 500 (backtest n <= 100), no S&P, 3 repeats, short budgets",
    )  # fmt: skip
    p.add_argument(
        "--tasks", nargs="+", choices=keys, metavar="TASK", help=f"subset of: {' '.join(keys)}"
    )
    p.add_argument(
        "--sizes", nargs="+", metavar="N",
        help="universe sizes (integers) and/or 'sp500'; leverage tasks use the sizes >= 39",
    )  # fmt: skip
    p.add_argument(
        "--columns", nargs="+", metavar="NAME",
        help="only these columns, e.g. StackOpt 'StackOpt core' PyPortfolioOpt (development)",
    )  # fmt: skip
    p.add_argument("--repeats", type=int, help="timed repeats per column (default 5, quick 3)")
    p.add_argument(
        "--budget",
        type=float,
        help="seconds a call may take before a column is cut to a subset (20, quick 2)",
    )
    p.add_argument(
        "--skip-after",
        type=float,
        help="predicted seconds per call above which a column is skipped (180, quick 15)",
    )
    p.add_argument(
        "--json", default=str(DEFAULT_JSON), help=f"JSON output (default {DEFAULT_JSON})"
    )
    p.add_argument("--markdown", help="also write the printed report to this file")
    p.add_argument("--data", help="real-data folder (default ../shared/data from the repo root)")
    p.add_argument("--seed", type=int, help="seed of the synthetic universes")
    p.add_argument(
        "--threads", default="1",
        help="BLAS threads for every library (default 1; 'default' keeps the environment's)",
    )  # fmt: skip
    p.add_argument("--startup-runs", type=int, default=5, help="cold starts of the app to time")
    p.add_argument("--no-memory", action="store_true", help="skip the n=5000 memory probes")
    p.add_argument("--memory-probe", nargs=3, metavar=("TASK", "KIND", "N"), help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from bench import problems, report, runner, tasks

    seed = args.seed if args.seed is not None else problems.SEED
    if args.memory_probe:
        task_key, kind, n = args.memory_probe
        runner.memory_probe_main(task_key, kind, int(n), seed)
        return 0

    quick = args.quick
    settings = runner.Settings(
        repeats=args.repeats or (3 if quick else 5),
        budget=args.budget or (1.5 if quick else 20.0),
        skip_after=args.skip_after or (10.0 if quick else 180.0),
        seed=seed,
        data_dir=args.data,
        memory_probe=not (quick or args.no_memory),
        columns=args.columns,
    )
    all_keys = [t.key for t in tasks.TASKS] + list(SPECIAL)
    chosen = args.tasks or all_keys
    explicit = args.sizes is not None
    if explicit:
        ints = sorted({int(s) for s in args.sizes if s.lower() != "sp500"})
        sizes = {"factor": ints, "leverage": [n for n in ints if n >= 39]}
        include_sp500 = any(s.lower() == "sp500" for s in args.sizes)
    else:
        sizes = dict(tasks.QUICK_SIZES if quick else tasks.FULL_SIZES)
        include_sp500 = not quick

    _stdout_to_stderr()  # solver banners (HiGHS prints from C) must not mix into the table
    started = time.time()
    meta = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "mode": "quick" if quick else ("custom" if explicit or args.tasks else "full"),
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": runner.machine_info(),
        "versions": runner.versions(),
        "settings": {
            "repeats": settings.repeats,
            "budget_s": settings.budget,
            "skip_after_s": settings.skip_after,
            "seed": seed,
            "sizes": sizes,
            "sp500": include_sp500,
            "tasks": chosen,
            "tolerances": vars(settings.tolerances),
        },
    }
    settings.progress("importing the libraries ...")
    meta["import_s"] = runner.import_times(
        ["cvxpy", "pypfopt", "sklearn", "skfolio", "riskfolio", "core.optimization.engine"]
    )
    special: dict = {}
    if "startup" in chosen:
        settings.progress("timing the app's start-up ...")
        t0 = time.perf_counter()
        special["startup"] = tasks.startup_times(args.startup_runs)
        special["startup"]["elapsed_s"] = time.perf_counter() - t0
    task_keys = [k for k in chosen if k not in SPECIAL]
    cells, info = runner.run_all(task_keys, sizes, include_sp500, settings, explicit, quick)
    meta["universes"] = info["universes"]
    if "gui_block" in chosen:
        settings.progress("measuring GUI-thread blocking ...")
        t0 = time.perf_counter()
        special["gui_block"] = tasks.gui_block(1000)
        special["gui_block"]["elapsed_s"] = time.perf_counter() - t0
    if "backtest_speed" in chosen:
        settings.progress("running bench/backtest_speed.py ...")
        t0 = time.perf_counter()
        special["backtest_speed"] = tasks.backtest_speed_rows(quick, settings.repeats, seed)
        special["backtest_speed"]["elapsed_s"] = time.perf_counter() - t0
    meta["elapsed_s"] = time.time() - started
    meta["machine"]["load_average_end"] = runner.machine_info()["load_average"]

    text = report.render(cells, special, meta)
    out = report.write_json(args.json, report.to_json(cells, special, meta))
    with _real_stdout() as fh:
        fh.write(text + f"\n\nJSON written to {out} ({meta['elapsed_s']:.0f} s)\n")
    if args.markdown:
        Path(args.markdown).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
