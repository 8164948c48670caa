"""How long 20 years of monthly min-variance rebalancing takes (issue 7, point 4).

Universe: S&P 500 members from ``../shared/data/sp500_daily_adjclose.parquet``
(survivorship-biased; fine for speed). For n assets: the first n names (file order) with
prices on every day of the window; at 500 there are not that many with a full 21-year
history, so ALL names are used and the universe grows as names list (each name joins once
it has a year of returns, exactly as in a backtest), which also exercises universe changes.

Strategy: long-only min variance (budget, 0 <= w <= 1), Ledoit-Wolf covariance on a
trailing 1-year window of daily returns, re-solved at every month end.

Columns of the table (seconds for the whole 20 years):

* ``backtest``: ``OptimizationBacktest.backtest_strategy('min_volatility', 'monthly')``
  end to end (returns, estimation, solves, drift, costs, result).
* ``estimate``: the Ledoit-Wolf covariances alone (shared by both solve loops below).
* ``prepared warm``: :class:`core.backtest.PreparedProblem` (constraint matrices built once
  per universe), each month warm-started from the last solution.
* ``prepared cold``: the same problem object, warm start dropped every month.
* ``cvxpy rebuild``: a new cvxpy problem built and solved each month (Clarabel), the way
  peer libraries do it.

Every month's answers are compared: ``max |dw|`` between the prepared path and cvxpy, and
``var gap`` = the largest relative excess variance of the prepared answer over cvxpy's
(negative: the prepared answer has the lower variance).

Run from the repository root::

    .venv/bin/python bench/backtest_speed.py [--n 20 100 500] [--years 20] [--data DIR]
        [--cvxpy-months 60]

``run_backtest_speed`` returns the rows as dicts for the benchmark harness. BLAS is
limited to one thread by default: the machine is shared and multi-threaded BLAS under
load was measured 10x slower on a 500x500 Cholesky.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.backtest import OptimizationBacktest, PreparedProblem  # noqa: E402
from core.exposures import FundDefinition, FundExposureMap  # noqa: E402
from core.optimization.constraints import OptimizationConstraints  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data"
PRICE_FILE = "sp500_daily_adjclose.parquet"


def _threads(blas_threads: int | None) -> Any:
    if blas_threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(blas_threads)


def _universe(prices: pd.DataFrame, n: int) -> list[str]:
    complete = [c for c in prices.columns if prices[c].notna().all()]
    return complete[:n] if n <= len(complete) else list(prices.columns)


def _cvxpy_min_variance(cov: np.ndarray) -> np.ndarray:
    import cvxpy as cp

    w = cp.Variable(cov.shape[0])
    problem = cp.Problem(
        cp.Minimize(cp.quad_form(w, cp.psd_wrap(cov))), [cp.sum(w) == 1, w >= 0, w <= 1]
    )
    problem.solve(solver="CLARABEL")
    if problem.status != "optimal":
        raise RuntimeError(f"cvxpy/Clarabel: {problem.status}")
    return np.asarray(w.value, dtype=float)


def measure_one(
    prices: pd.DataFrame,
    n: int,
    years: float = 20,
    *,
    cvxpy_months: int | None = None,
) -> dict[str, Any]:
    """Time one universe size (see the module docstring for the columns)."""
    end = prices.index[-1]
    start = end - pd.DateOffset(years=int(years))
    data = prices.loc[start - pd.DateOffset(years=1, days=10) :]
    cols = _universe(data, n)
    fund_map = FundExposureMap([FundDefinition(c, exposures={"US_EQUITY": 100.0}) for c in cols])
    bt = OptimizationBacktest(
        data[cols], fund_map, cash_rate=0.0, lookback_years=1.0, min_history_years=1.0,
        covariance_method="ledoit_wolf", transaction_cost_bps=0.0,
    )  # fmt: skip
    t0 = time.perf_counter()
    result = bt.backtest_strategy("min_volatility", "monthly", start, symbols=cols)
    t_backtest = time.perf_counter() - t0
    dates = list(result.weights.index)

    t0 = time.perf_counter()
    covs = [bt.estimate_covariance(cols, d) for d in dates]
    t_estimate = time.perf_counter() - t0

    def prepared_loop(warm: bool) -> tuple[float, list[np.ndarray], int]:
        problems: dict[tuple[str, ...], PreparedProblem] = {}
        out, spent, warm_starts = [], 0.0, 0
        for cov in covs:
            key = tuple(cov.index)
            prob = problems.get(key)
            if prob is None:
                problems.clear()
                prob = PreparedProblem(list(key), OptimizationConstraints(), fund_map)
                problems[key] = prob
            if not warm:
                prob.reset()
            t = time.perf_counter()
            w, _ = prob.solve(cov.to_numpy())
            spent += time.perf_counter() - t
            out.append(w)
            warm_starts = prob.warm_starts if warm else 0
        return spent, out, warm_starts

    t_warm, w_warm, _ = prepared_loop(True)
    t_cold, _, _ = prepared_loop(False)

    limit = len(covs) if cvxpy_months is None else min(int(cvxpy_months), len(covs))
    t0 = time.perf_counter()
    w_cvx = [_cvxpy_min_variance(cov.to_numpy()) for cov in covs[:limit]]
    t_cvx = (time.perf_counter() - t0) * len(covs) / max(limit, 1)

    max_dw, gap = 0.0, -np.inf
    for cov, wf, wc in zip(covs[:limit], w_warm[:limit], w_cvx, strict=True):
        c = cov.to_numpy()
        max_dw = max(max_dw, float(np.abs(wf - wc).max()))
        vf, vc = float(wf @ c @ wf), float(wc @ c @ wc)
        gap = max(gap, (vf - vc) / vc)
    backtest_w = result.weights.drop(columns="CASH")
    max_dw_backtest = max(
        float(np.abs(backtest_w.loc[d, list(cov.index)].to_numpy() - w).max())
        for d, cov, w in zip(dates, covs, w_warm, strict=True)
    )
    sizes = [len(c) for c in covs]
    return {
        "n_assets": n,
        "universe": f"{min(sizes)}" if min(sizes) == max(sizes) else f"{min(sizes)}-{max(sizes)}",
        "universe_changes": int(sum(a != b for a, b in zip(sizes, sizes[1:], strict=False))),
        "months": len(dates),
        "start": f"{dates[0]:%Y-%m-%d}",
        "end": f"{dates[-1]:%Y-%m-%d}",
        "backtest_s": t_backtest,
        "estimate_s": t_estimate,
        "prepared_warm_s": t_warm,
        "prepared_cold_s": t_cold,
        "cvxpy_rebuild_s": t_cvx,
        "cvxpy_months_timed": limit,
        "cvxpy_estimated": limit < len(covs),
        "speedup_vs_cvxpy": t_cvx / t_warm if t_warm > 0 else float("nan"),
        "warm_starts": int(result.settings["warm_starts"]),
        "max_abs_weight_diff": max_dw,
        "max_rel_variance_gap": gap,
        "backtest_matches_loop": max_dw_backtest,
    }


def run_backtest_speed(
    n_assets_list: Sequence[int] = (20, 100, 500),
    years: float = 20,
    *,
    data_folder: str | Path | None = None,
    cvxpy_months: int | None = None,
    blas_threads: int | None = 1,
) -> list[dict[str, Any]]:
    """Measure 20 years of monthly min-variance rebalancing at each universe size.

    Parameters
    ----------
    n_assets_list : sequence of int
    years : float
        Length of the backtest (plus one year of history before it).
    data_folder : path, optional
        Folder holding ``sp500_daily_adjclose.parquet``; default ``../shared/data``.
    cvxpy_months : int, optional
        Time the cvxpy rebuild loop on the first this-many months only and scale it
        linearly (flagged ``cvxpy_estimated``); default all months.
    blas_threads : int or None
        Limit BLAS threads while timing (None: leave as is).

    Returns
    -------
    list of dict
        One row per size; keys as in :func:`measure_one`.
    """
    folder = Path(data_folder) if data_folder is not None else DEFAULT_DATA
    path = folder / PRICE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: pass data_folder= (the shared data folder)")
    prices = pd.read_parquet(path)
    prices.index = pd.DatetimeIndex(prices.index, name="Date")
    with _threads(blas_threads):
        return [
            measure_one(prices, int(n), years, cvxpy_months=cvxpy_months) for n in n_assets_list
        ]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (seconds for the whole backtest)."""
    head = (
        "| n | universe | months | backtest s | estimate s | prepared warm s | prepared cold s "
        "| cvxpy rebuild s | cvxpy / warm | max abs dw | var gap |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        est = " (est.)" if r["cvxpy_estimated"] else ""
        lines.append(
            f"| {r['n_assets']} | {r['universe']} | {r['months']} | {r['backtest_s']:.2f} "
            f"| {r['estimate_s']:.2f} | {r['prepared_warm_s']:.2f} | {r['prepared_cold_s']:.2f} "
            f"| {r['cvxpy_rebuild_s']:.1f}{est} | {r['speedup_vs_cvxpy']:.0f}x "
            f"| {r['max_abs_weight_diff']:.1e} | {r['max_rel_variance_gap']:.1e} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[20, 100, 500])
    parser.add_argument("--years", type=float, default=20)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cvxpy-months", type=int, default=None)
    args = parser.parse_args(argv)
    rows = run_backtest_speed(
        args.n, args.years, data_folder=args.data, cvxpy_months=args.cvxpy_months
    )
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
