"""Micro-benchmark of the dense QP layer (core.optimization.qp) on synthetic problems.

Run from the repository root::

    .venv/bin/python bench/bench_qp.py            # n = 100 and 1000
    .venv/bin/python bench/bench_qp.py --n 100 500 --repeats 5

Problems: a seeded 5-factor covariance, long-only, budget row, 0 <= w <= cap, six caps
on E w set at 0.8 of their uncapped values plus one floor. Cases: one cold solve per
backend, a 50-point target-return frontier (warm started point to point, and cold), and
120 re-solves with a drifting covariance (warm started month to month). Every answer is
KKT-verified; medians of ``--repeats`` runs in milliseconds. The machine is often
shared, so compare columns within one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.optimization.qp import SOLVERS, QPProblem, QPSolution, solve_qp, verify  # noqa: E402


def make_problem(n: int, seed: int = 0) -> tuple[QPProblem, np.ndarray]:
    """Budget, bounds, exposure caps and a floor; returns the problem and expected returns."""
    rng = np.random.default_rng(seed)
    B = rng.normal(0.0, 0.15, (n, 5))
    P = B @ np.diag(rng.uniform(0.5, 1.5, 5)) @ B.T + np.diag(rng.uniform(0.1, 0.4, n) ** 2)
    P = 0.5 * (P + P.T)
    mu = rng.uniform(0.02, 0.10, n)
    E = rng.uniform(0.0, 1.0, (6, n)) * (rng.uniform(size=(6, n)) < 0.3)
    cap = max(0.1, 2.0 / n)
    free = solve_qp(QPProblem(P, np.zeros(n), np.ones((1, n)), [1.0], lb=0.0, ub=cap))
    e = E @ free.x
    A_ub = np.vstack([E, -E[:1]])
    b_ub = np.concatenate([0.8 * e + 1e-3, [-0.5 * e[0]]])
    names = ["budget"] + [f"cap {k}" for k in range(6)] + ["floor 0"]
    pb = QPProblem(P, np.zeros(n), np.ones((1, n)), [1.0], A_ub, b_ub, 0.0, cap, row_names=names)
    return pb, mu


def timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def frontier(pb: QPProblem, mu: np.ndarray, warm: bool, points: int = 50) -> list[QPSolution]:
    from scipy.optimize import linprog

    lo = float(mu @ solve_qp(pb).x)
    res = linprog(
        -mu, A_ub=pb.A_ub, b_ub=pb.b_ub, A_eq=pb.A_eq, b_eq=pb.b_eq,
        bounds=list(zip(pb.lb, pb.ub, strict=True)),
    )  # fmt: skip
    hi = -float(res.fun)
    A_eq = np.vstack([pb.A_eq, mu])
    out: list[QPSolution] = []
    prev = None
    for target in np.linspace(lo, hi - 1e-6 * (hi - lo), points):
        p = QPProblem(pb.P, pb.q, A_eq, [1.0, target], pb.A_ub, pb.b_ub, pb.lb, pb.ub)
        sol = solve_qp(p, prev if warm else None)
        assert verify(p, sol), "unverified frontier point"
        out.append(sol)
        prev = sol
    return out


def monthly(pb: QPProblem, months: int = 120, seed: int = 1) -> list[QPSolution]:
    rng = np.random.default_rng(seed)
    n = pb.n
    prev = None
    out = []
    P = pb.P.copy()
    for _ in range(months):
        shock = rng.normal(0.0, 0.01, (n, 2))
        P = 0.97 * P + 0.03 * pb.P + shock @ shock.T  # a drifting covariance
        p = QPProblem(P, pb.q, pb.A_eq, pb.b_eq, pb.A_ub, pb.b_ub, pb.lb, pb.ub)
        sol = solve_qp(p, prev)
        assert verify(p, sol), "unverified monthly solve"
        out.append(sol)
        prev = sol
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"{'case':<40} {'n':>6} {'ms':>10}  notes")
    for n in args.n:
        pb, mu = make_problem(n)
        solve_qp(pb)  # imports and first-call costs out of the way
        for solver in ("default chain", *SOLVERS):
            if solver == "daqp" and n > 500:
                continue  # minutes at n = 1000 cold
            chain = None if solver == "default chain" else [solver]
            sol = solve_qp(pb, solvers=chain)
            ms = timed(lambda pb=pb, chain=chain: solve_qp(pb, solvers=chain), args.repeats)
            note = f"{sol.solver}{' polished' if sol.polished else ''}, {sol.iterations} it"
            print(f"{'single solve: ' + solver:<40} {n:>6} {ms:>10.1f}  {note}")
        for warm in (True, False):
            runs = 1 if not warm and n > 500 else args.repeats
            ms = timed(lambda pb=pb, mu=mu, warm=warm: frontier(pb, mu, warm), runs)
            label = f"50-point frontier, {'warm' if warm else 'cold'}"
            print(f"{label:<40} {n:>6} {ms:>10.1f}  {ms / 50:.2f} ms a point")
        ms = timed(lambda pb=pb: monthly(pb), 1)
        print(f"{'120 monthly re-solves, warm':<40} {n:>6} {ms:>10.1f}  {ms / 120:.2f} ms a month")


if __name__ == "__main__":
    main()
