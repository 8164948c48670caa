"""Load (core half): 2,000 funds in one optimization; 500 symbols x 20 years of prices.

* Min volatility and max Sharpe over n = 2,000 funds with exposure caps, a per-fund cap
  and a total notional limit are solved exactly: the objective matches cvxpy + Clarabel
  (on the factor form of the same covariance) to 1e-6 relative, and every constraint holds.
* A 20-year daily price file for 500 symbols (5,040 rows x 500 columns, ~20 MB) is read
  with ``read_prices`` in a child process next to a 2,000-holding portfolio, monthly
  returns and a shrunk covariance; the child's peak memory stays under 2 GB.

No timing is asserted; the times are printed (``pytest -s``) for the benchmark notes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from core.exposures import FundDefinition, FundExposureMap
from core.optimization.constraints import OptimizationConstraints
from core.optimization.engine import OptimizationEngine

REPO = Path(__file__).resolve().parents[2]
N = 2000
CODES = ["US_EQUITY", "INTL_DEV", "EM_EQUITY", "UST_10Y", "UST_LONG", "GOLD", "MANAGED_FUT"]
RF = 0.02


@pytest.fixture(scope="module")
def universe():
    """2,000 funds: plain ETFs and 1.5x-2x stacked funds over seven exposure types."""
    rng = np.random.default_rng(2000)
    k = len(CODES)
    E = np.zeros((k, N))  # fractions of NAV
    funds = []
    for i in range(N):
        first = rng.integers(k)
        E[first, i] = 1.0
        if rng.random() < 0.3:  # a stacked fund: a second sleeve of 50-100%
            second = (first + 1 + rng.integers(k - 1)) % k
            E[second, i] = rng.choice([0.5, 0.6, 1.0])
        exposures = {CODES[j]: 100.0 * E[j, i] for j in range(k) if E[j, i]}
        funds.append(FundDefinition(f"F{i:04d}", exposures=exposures, source="test"))
    vol = np.array([0.16, 0.17, 0.22, 0.07, 0.13, 0.15, 0.12])
    corr = np.eye(k)
    corr[:3, :3] = 0.75
    corr[3:5, 3:5] = 0.9
    corr[:3, 3:5] = corr[3:5, :3] = -0.2
    np.fill_diagonal(corr, 1.0)
    cov_x = corr * np.outer(vol, vol)
    idio = rng.uniform(0.01, 0.06, N)
    cov = E.T @ cov_x @ E + np.diag(idio**2)
    mu_x = np.array([0.05, 0.05, 0.06, 0.015, 0.02, 0.02, 0.03])  # excess of cash
    mu = RF + E.T @ mu_x - 0.005 * np.abs(E).sum(axis=0) + rng.normal(0, 0.002, N)
    symbols = [f.symbol for f in funds]
    constraints = OptimizationConstraints(
        max_weight=0.02,
        max_exposure_per_type={"US_EQUITY": 0.6, "UST_10Y": 0.5},
        max_total_notional=1.4,
    )
    return {
        "map": FundExposureMap(funds),
        "symbols": symbols,
        "E": E,
        "L": np.linalg.cholesky(cov_x),
        "idio": idio,
        "cov": cov,
        "mu": mu,
        "constraints": constraints,
    }


def _reference_rows(u) -> list[tuple[np.ndarray, float]]:
    E = u["E"]
    return [
        (E[CODES.index("US_EQUITY")], 0.6),
        (E[CODES.index("UST_10Y")], 0.5),
        (np.abs(E).sum(axis=0), 1.4),
    ]


def reference_min_variance(u) -> float:
    """cvxpy + Clarabel on the factor form w'(E' Sx E + D)w = |L'E w|^2 + sum d w^2."""
    w = cp.Variable(N)
    risk = cp.sum_squares(u["L"].T @ (u["E"] @ w)) + cp.sum_squares(cp.multiply(u["idio"], w))
    cons = [cp.sum(w) == 1, w >= 0, w <= 0.02] + [a @ w <= b for a, b in _reference_rows(u)]
    prob = cp.Problem(cp.Minimize(risk), cons)
    prob.solve(solver="CLARABEL", tol_gap_rel=1e-12, tol_gap_abs=1e-14, tol_feas=1e-12)
    assert prob.status == cp.OPTIMAL
    return float(prob.value)


def reference_max_sharpe(u) -> float:
    """The homogenised max-Sharpe QP in cvxpy: min |y|_cov s.t. (mu - rf)'y = 1."""
    y = cp.Variable(N)
    k = cp.Variable(nonneg=True)
    risk = cp.sum_squares(u["L"].T @ (u["E"] @ y)) + cp.sum_squares(cp.multiply(u["idio"], y))
    cons = [(u["mu"] - RF) @ y == 1, cp.sum(y) == k, y >= 0, y <= 0.02 * k]
    cons += [a @ y <= b * k for a, b in _reference_rows(u)]
    prob = cp.Problem(cp.Minimize(risk), cons)
    prob.solve(solver="CLARABEL", tol_gap_rel=1e-12, tol_gap_abs=1e-14, tol_feas=1e-12)
    assert prob.status == cp.OPTIMAL
    return float(1.0 / np.sqrt(prob.value))


def _check_constraints(u, w: np.ndarray) -> None:
    assert w.sum() == pytest.approx(1.0, abs=1e-9)
    assert w.min() >= -1e-9 and w.max() <= 0.02 + 1e-9
    for a, b in _reference_rows(u):
        assert a @ w <= b + 1e-8


def test_min_volatility_with_2000_funds_matches_cvxpy(universe):
    u = universe
    eng = OptimizationEngine(fund_map=u["map"])
    t0 = time.perf_counter()
    res = eng.optimize_mean_variance(
        u["symbols"], u["mu"], u["cov"], u["constraints"], "min_volatility", RF
    )
    elapsed = time.perf_counter() - t0
    assert res.success and res.status == "optimal", res.message
    w = res.weights.to_numpy()
    _check_constraints(u, w)
    ref = reference_min_variance(u)
    assert w @ u["cov"] @ w == pytest.approx(ref, rel=1e-6)
    assert res.expected_volatility**2 == pytest.approx(ref, rel=1e-6)
    print(f"n=2000 min volatility: {elapsed:.2f} s with {res.solver}")


def test_max_sharpe_with_2000_funds_matches_cvxpy(universe):
    u = universe
    eng = OptimizationEngine(fund_map=u["map"])
    t0 = time.perf_counter()
    res = eng.optimize_mean_variance(
        u["symbols"], u["mu"], u["cov"], u["constraints"], "max_sharpe", RF
    )
    elapsed = time.perf_counter() - t0
    assert res.success and res.status == "optimal", res.message
    w = res.weights.to_numpy()
    _check_constraints(u, w)
    sharpe = (u["mu"] @ w - RF) / np.sqrt(w @ u["cov"] @ w)
    ref = reference_max_sharpe(u)
    assert sharpe == pytest.approx(ref, rel=1e-6)
    assert res.sharpe_ratio == pytest.approx(ref, rel=1e-6)
    print(f"n=2000 max Sharpe: {elapsed:.2f} s with {res.solver}")


# ---------------------------------------------------------------------- big price file
CHILD = r"""
import json, resource, sys, time
import numpy as np
from core.market_data import read_prices, to_returns
from core.optimization.estimators import ReturnEstimator
from core.portfolio import Holding, Portfolio

t0 = time.perf_counter()
prices = read_prices(sys.argv[1])
t_read = time.perf_counter() - t0
last = prices.iloc[-1]
symbols = list(prices.columns)
# 2,000 holdings (four accounts' lots of the 500 symbols), priced from the last row.
portfolio = Portfolio([Holding(f"H{i:04d}", 1 + i % 97, price=float(last.iloc[i % 500]))
                       for i in range(2000)], cash=10_000.0)
total = portfolio.total_value
weights = portfolio.weights()
monthly = to_returns(prices, "monthly")
cov = ReturnEstimator(monthly, frequency="monthly").estimate_covariance_matrix(
    symbols, "ledoit_wolf")
print(json.dumps({
    "shape": list(prices.shape), "first": str(prices.index[0].date()),
    "last_row": last.iloc[:5].tolist(), "holdings": len(portfolio), "total": total,
    "weight_sum": float(weights.sum()), "months": len(monthly), "cov_shape": list(cov.shape),
    "cov_min_eig": float(np.linalg.eigvalsh(cov.to_numpy())[0]),
    "read_seconds": t_read, "seconds": time.perf_counter() - t0,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="ru_maxrss is POSIX")
def test_500_symbols_20_years_daily_and_2000_holdings_under_2gb(tmp_path):
    rng = np.random.default_rng(500)
    days = pd.bdate_range("2005-01-03", periods=20 * 252)
    steps = rng.normal(0.0003, 0.012, (len(days), 500))
    prices = pd.DataFrame(
        np.round(50 * np.exp(np.cumsum(steps, axis=0)), 4),
        index=pd.DatetimeIndex(days, name="Date"),
        columns=[f"S{i:03d}" for i in range(500)],
    )
    for j in range(0, 500, 50):  # ragged: some funds start late
        prices.iloc[: 252 * (j // 50), j] = np.nan
    path = tmp_path / "prices_500x20y.csv"
    prices.to_csv(path, float_format="%.4f")
    assert path.stat().st_size > 15e6
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["shape"] == [20 * 252, 500] and out["first"] == "2005-01-03"
    assert out["last_row"] == pytest.approx(prices.iloc[-1, :5].tolist())
    assert out["holdings"] == 2000 and out["weight_sum"] == pytest.approx(
        1.0 - 10_000 / out["total"]
    )
    assert out["cov_shape"] == [500, 500] and out["cov_min_eig"] > -1e-12
    assert out["peak_mb"] < 2048, out
    print(
        f"500 x 20y daily: read {out['read_seconds']:.1f} s, all {out['seconds']:.1f} s, "
        f"peak {out['peak_mb']:.0f} MB"
    )
