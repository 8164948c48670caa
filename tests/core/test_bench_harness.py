"""The benchmark harness (bench/): deterministic problems, a checker that catches wrong
answers, and one task end to end. No timing is asserted anywhere."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench import check as chk
from bench.problems import (
    factor_universe,
    ledoit_wolf_reference,
    leverage_universe,
    sp500_universe,
)
from bench.report import render, to_json, write_json
from bench.runner import History, Settings, run_cell
from bench.tasks import TASKS_BY_KEY, Task, reference_for


@pytest.fixture(scope="module")
def small():
    return factor_universe(20)


def test_factor_universe_is_seeded_and_deterministic(small):
    again = factor_universe(20)
    np.testing.assert_array_equal(small.returns, again.returns)
    np.testing.assert_array_equal(small.cov, again.cov)
    assert small.sectors == again.sectors
    other = factor_universe(20, seed=1)
    assert not np.allclose(other.returns, small.returns)
    vols = np.sqrt(np.diag(small.cov) * small.ppy)
    assert small.returns.shape == (2520, 20)
    assert 0.05 < vols.min() and vols.max() < 0.5  # annual vols drawn in 10-40%


def test_leverage_universe_has_stacked_funds_and_binding_limits():
    u = leverage_universe(100)
    again = leverage_universe(100)
    np.testing.assert_array_equal(u.cov, again.cov)
    assert u.symbols[:3] == ["RSSB", "RSST", "RSBT"]  # the built-in map comes first
    stacked = (u.exposures[:, 39:] != 0).sum(axis=0) == 2
    assert 0.03 < stacked.mean() < 0.25  # about 10% of the synthetic funds
    notion = u.notionals[39:][stacked]
    assert notion.min() >= 1.5 - 1e-9 and notion.max() <= 3.0 + 1e-9
    ref = reference_for(u)
    x = ref.max_sharpe().x
    active = u.spec.A_ub @ x >= u.spec.b_ub - 1e-9
    assert active.sum() >= 2, "several exposure/notional/group limits should bind"


def test_linear_spec_matches_the_engine_form(small):
    from core.optimization.constraints import linear_form

    form = linear_form(small.symbols, small.engine_constraints(), small.fund_map)
    x = reference_for(small).min_variance().x
    # same feasible set: the reference optimum is feasible for both, with the same slack
    assert form.violations(x, 1e-9) == []
    assert small.spec.violation(x)[0] <= 1e-9
    assert form.A_ub.shape[0] == small.spec.A_ub.shape[0]


def test_ledoit_wolf_reference_matches_scikit_learn(small):
    from sklearn.covariance import LedoitWolf

    cov, shrink = ledoit_wolf_reference(small.returns)
    lw = LedoitWolf().fit(small.returns)
    assert shrink == pytest.approx(lw.shrinkage_, rel=1e-10)
    np.testing.assert_allclose(cov, lw.covariance_, rtol=1e-10, atol=1e-18)


def test_hrp_reference_matches_pypfopt(small):
    import pandas as pd
    from pypfopt import HRPOpt

    S = small.sample_cov
    w = chk.hrp_reference(S)
    frame = pd.DataFrame(S, index=small.symbols, columns=small.symbols)
    theirs = HRPOpt(cov_matrix=frame).optimize(linkage_method="single")
    np.testing.assert_allclose(w, [theirs[s] for s in small.symbols], atol=1e-12)


def test_reference_optima_are_certified(small):
    ref = reference_for(small)
    mv = ref.min_variance()
    ms = ref.max_sharpe()
    assert mv.certified and ms.certified
    # max Sharpe beats every other feasible point we can name, e.g. the min-variance one
    assert ms.value >= chk.sharpe(small.mu, small.cov, mv.x) - 1e-12


def test_checker_flags_wrong_answers(small):
    tol = chk.Tolerances()
    ref = reference_for(small)
    x = ref.min_variance().x.copy()
    good = chk.check_min_variance(ref, x, tol)
    assert good.ok and good.error <= 1e-8
    # a feasible but suboptimal portfolio: move weight from the largest to the smallest
    i, j = int(np.argmax(x)), int(np.argmin(x))
    y = x.copy()
    y[i] -= 0.05
    y[j] += 0.05
    assert small.spec.violation(y)[0] <= 1e-12
    worse = chk.check_min_variance(ref, y, tol)
    assert worse.error > 1e-4
    assert not chk.check_min_variance(ref, y, chk.Tolerances(wrong=1e-6)).ok
    # an infeasible one: weights summing to 1 + 1e-6
    bad = chk.check_min_variance(ref, x * (1 + 1e-6), tol)
    assert not bad.ok and "violates" in bad.reason
    # max Sharpe: the min-variance portfolio is a wrong max-Sharpe answer
    wrong = chk.check_max_sharpe(ref, x, chk.Tolerances(wrong=1e-6), use_reference=False)
    assert not wrong.ok
    assert chk.check_max_sharpe(ref, ref.max_sharpe().x, tol, use_reference=False).ok
    # risk budgets: equal weights are not equal risk
    eq = np.full(small.n, 1.0 / small.n)
    rb = chk.check_risk_budget(small.cov, eq, eq, chk.Tolerances(wrong=1e-6))
    assert not rb.ok and rb.error > 1e-3
    # a missing answer
    assert not chk.check_min_variance(ref, x[:-1], tol).ok


def test_certificate_of_an_interior_point_answer(small):
    """A slightly-off answer is not certified, the exact one is."""
    ref = reference_for(small)
    x = ref.min_variance().x
    d = chk.min_variance_qp(small.cov, small.spec)
    assert chk.kkt_certificate(d, x)["worst"] <= chk.CERT_TOL
    off = 0.999 * x + 0.001 * np.full(small.n, 1.0 / small.n)
    assert chk.kkt_certificate(d, off)["worst"] > 1e-6


def test_one_task_end_to_end_for_stackopt(small):
    base = TASKS_BY_KEY["min_variance"]
    task = Task(
        base.key, base.label, base.universes, base.setup,
        [c for c in base.columns if c.kind == "stackopt"], base.check,
    )  # fmt: skip
    settings = Settings(repeats=2, budget=60.0, skip_after=600.0, progress=lambda m: None)
    cell = run_cell(task, small, settings, History(), set())
    col = cell.stackopt()
    assert col is not None
    assert col.status == "ok", col.reason
    assert len(col.samples) == 2 and all(s > 0 for s in col.samples)
    assert col.answers == 2 and col.error <= 1e-8
    meta = {"date": "today", "mode": "test", "machine": {"cpu": "x", "cores": 1}}
    text = render([cell], {}, meta)
    assert "min variance" in text and "StackOpt" in text


def test_a_raising_column_is_a_failure_not_a_crash(small, tmp_path):
    from bench.tasks import Column

    def boom(cell, units):
        raise RuntimeError("solver exploded")

    base = TASKS_BY_KEY["min_variance"]
    task = Task(
        base.key, base.label, base.universes, base.setup,
        [Column("StackOpt", "stackopt", boom)], base.check,
    )  # fmt: skip
    settings = Settings(repeats=1, progress=lambda m: None)
    cell = run_cell(task, small, settings, History(), set())
    col = cell.stackopt()
    assert col is not None and col.status == "fail"
    assert "solver exploded" in col.reason
    assert math.isnan(cell.ratio())
    out = write_json(tmp_path / "r.json", to_json([cell], {}, {"date": "today"}))
    data = json.loads(out.read_text(encoding="utf-8"))  # strict JSON: NaN became null
    assert data["cells"][0]["columns"][0]["status"] == "fail"


def test_sp500_universe_reads_the_shared_data(shared_data):
    u = sp500_universe(shared_data)
    assert 400 <= u.n <= 503
    assert u.returns.shape == (2520, u.n)
    assert "Information Technology" in set(u.sectors)
    assert np.isfinite(u.cov).all()
