"""Benchmark tasks: one function per task per library, plus how to check its answer.

Every task has a ``setup`` (run once per universe, never timed: data frames, fund maps,
constraint objects, reference optima), a list of :class:`Column` (the timed calls, one
per library) and a ``check`` that judges each call's answer.

Conventions, so that every library solves the same problem:

* Libraries whose API takes a covariance and expected returns get the precomputed ones
  (PyPortfolioOpt and the StackOpt engine in annual units, Riskfolio-Lib in daily units).
  skfolio estimators fit from the returns; they are given the same estimators (sample
  mean, Ledoit-Wolf), so their times include that estimation (a few percent of them).
* Long-only, fully invested, risk-free rate 0 on excess returns, weight caps and sector
  limits exactly as in :mod:`bench.problems`.
* Peers are called with their default solvers and settings (what a user gets).
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import check as chk
from bench.problems import Universe, rolling_factor_covariances

#: Frontier points and backtest months of the full tasks.
FRONTIER_POINTS = 50
BACKTEST_MONTHS = 120
#: Black-Litterman settings (PERFORMANCE.md): delta 2.5, tau = 1 / T.
BL_DELTA = 2.5


@dataclass
class Answer:
    """What a timed call returned, in the canonical units of its universe.

    ``value`` is a weight vector (n,), a list of them (frontier points, months), or a
    vector / matrix (Black-Litterman, Ledoit-Wolf). ``fallbacks`` counts the portfolios
    whose fast path failed its check and went to another solver (StackOpt only).
    """

    value: Any
    units: int | None = None
    fallbacks: int = 0
    solvers: list[str] = field(default_factory=list)
    targets: list[float] | None = None


@dataclass
class Column:
    """One library's way of doing a task.

    ``kind``: 'stackopt' (the public engine API: the column the ratios use), 'core' (a
    StackOpt core function called directly), 'peer' (another library) or 'cvxpy' (the
    same problem written directly in cvxpy). ``scalable`` columns accept a number of
    units (frontier points, months) so that a slow peer can run on a subset.
    """

    name: str
    kind: str
    run: Callable[[Any, int | None], Answer]
    scalable: bool = False
    note: str = ""


@dataclass
class Task:
    key: str
    label: str
    universes: tuple[str, ...]
    setup: Callable[[Universe], Any]
    columns: list[Column]
    check: Callable[[Any, Answer, chk.Tolerances], chk.Check]
    units: int | None = None
    min_units: int = 1
    #: Exponent used to predict a column's time at n from its time at a smaller n.
    growth: float = 2.2
    #: Hard limit (memory) even when sizes are given explicitly.
    max_n: int | None = None
    #: Largest n in a default run (explicit ``--sizes`` go beyond it, up to ``max_n``).
    default_max_n: int = 1000
    #: Largest n in a ``--quick`` run.
    quick_max_n: int = 500
    note: str = ""
    #: Setup enough for the StackOpt column alone (the memory probe); default ``setup``.
    light_setup: Callable[[Universe], Any] | None = None


class Cell:
    """Inputs of one (task, universe) pair; attributes are set by the task's setup."""

    def __init__(self, u: Universe, **kw: Any):
        self.u = u
        self.__dict__.update(kw)


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------
def _subset(seq: list[Any], k: int | None) -> list[Any]:
    """``k`` entries spread evenly over ``seq`` (all of them when k is None or too big)."""
    if k is None or k >= len(seq):
        return list(seq)
    idx = np.unique(np.linspace(0, len(seq) - 1, max(k, 1)).round().astype(int))
    return [seq[i] for i in idx]


def engine_for(u: Universe) -> Any:
    """One OptimizationEngine per universe (its fund map is built outside any timing)."""
    if "engine" not in u.cache:
        from core.optimization.engine import OptimizationEngine

        eng = OptimizationEngine(fund_map=u.fund_map)
        _ = eng.assumptions  # built-in assumptions load once, not inside a timed call
        u.cache["engine"] = eng
        u.cache["constraints"] = u.engine_constraints()
    return u.cache["engine"]


def reference_for(u: Universe) -> chk.Reference:
    if "reference" not in u.cache:
        u.cache["reference"] = chk.Reference(u.cov, u.mu, u.spec)
    return u.cache["reference"]


def _ok(result: Any) -> Any:
    """Refuse an engine result that the engine itself marked as failed."""
    if not result.success:
        raise RuntimeError(f"engine reported failure: {result.message}")
    return result


#: Answers from the fast path itself: the own kernel, the corner-portfolio tracer, or
#: DAQP where the solver chain puts it first (cold solves of at most 120 variables).
#: Anything after a failed backend (``fallbacks``) or a re-solve "a -> b" is a fallback.
FAST_PATH_SOLVERS = ("active_set", "critical_line", "daqp")


def _fallback(solver: str, fallbacks: list[str] | tuple[str, ...]) -> int:
    name = str(solver)
    return int(bool(fallbacks) or "->" in name or not name.startswith(FAST_PATH_SOLVERS))


def frontier_targets(u: Universe, n_points: int = FRONTIER_POINTS) -> list[float]:
    """Target returns (per period) from the min-variance return to just below the max."""
    if "targets" in u.cache:
        return u.cache["targets"]
    from scipy.optimize import linprog

    sp = u.spec
    lp = linprog(
        -u.mu,
        A_ub=sp.A_ub if sp.A_ub.shape[0] else None,
        b_ub=sp.b_ub if sp.A_ub.shape[0] else None,
        A_eq=sp.A_eq,
        b_eq=sp.b_eq,
        bounds=list(zip(sp.lb, sp.ub, strict=True)),
        method="highs",
    )
    r_max = float(-lp.fun)
    r_min = float(u.mu @ reference_for(u).min_variance().x)
    # a hair below the max: at the max itself the feasible set is a single face
    top = r_min + (r_max - r_min) * (1.0 - 1e-6)
    u.cache["targets"] = list(np.linspace(r_min, top, n_points))
    return u.cache["targets"]


# --- peer inputs -----------------------------------------------------------------------
def _pypfopt_inputs(u: Universe) -> dict[str, Any]:
    if "pypfopt" not in u.cache:
        lo = {s: v[0] for s, v in u.limits.sector_limits.items() if v[0] is not None}
        hi = {s: v[1] for s, v in u.limits.sector_limits.items() if v[1] is not None}
        u.cache["pypfopt"] = {
            "mu": pd.Series(u.mu_annual, index=u.symbols),
            "S": pd.DataFrame(u.cov_annual, index=u.symbols, columns=u.symbols),
            "mapper": dict(zip(u.symbols, u.sectors, strict=True)),
            "lower": lo,
            "upper": hi,
        }
    return u.cache["pypfopt"]


def _pypfopt_frontier(u: Universe, cov_annual: Any = None, solver: str | None = None) -> Any:
    from pypfopt import EfficientFrontier

    d = _pypfopt_inputs(u)
    S = d["S"] if cov_annual is None else cov_annual
    mu = d["mu"] if cov_annual is None else None
    ef = EfficientFrontier(mu, S, (0.0, u.limits.cap), solver=solver)
    if d["upper"] or d["lower"]:
        ef.add_sector_constraints(d["mapper"], d["lower"], d["upper"])
    return ef


def _skfolio_kwargs(u: Universe) -> dict[str, Any]:
    if "skfolio" not in u.cache:
        labels = {s: f"G{i}" for i, s in enumerate(sorted(u.limits.sector_limits))}
        groups = {
            sym: [labels.get(sec, "OTHER")] for sym, sec in zip(u.symbols, u.sectors, strict=True)
        }
        lin = []
        for s, (lo, hi) in u.limits.sector_limits.items():
            if hi is not None:
                lin.append(f"{labels[s]} <= {hi!r}")
            if lo is not None:
                lin.append(f"{labels[s]} >= {lo!r}")
        u.cache["skfolio"] = {
            "min_weights": 0.0,
            "max_weights": u.limits.cap,
            "groups": groups,
            "linear_constraints": lin,
        }
    return u.cache["skfolio"]


def _skfolio_prior() -> Any:
    from skfolio.moments import LedoitWolf
    from skfolio.prior import EmpiricalPrior

    return EmpiricalPrior(covariance_estimator=LedoitWolf())


def _riskfolio_portfolio(u: Universe, cov: np.ndarray | None = None, constrained: bool = True):
    """A Riskfolio Portfolio with mu/cov set (daily) and the weight/sector constraints."""
    import riskfolio as rp

    X = u.returns_frame
    port = rp.Portfolio(returns=X)
    port.mu = pd.DataFrame(u.mu[None, :], columns=u.symbols)
    c = u.cov if cov is None else cov
    port.cov = pd.DataFrame(c, index=u.symbols, columns=u.symbols)
    if constrained:
        A, B = _riskfolio_constraints(u)
        port.ainequality, port.binequality = A, B
    return port


def _riskfolio_constraints(u: Universe) -> tuple[np.ndarray, np.ndarray]:
    if "riskfolio_AB" not in u.cache:
        import riskfolio as rp

        blank = {"Type Relative": "", "Relative Set": "", "Relative": "", "Factor": ""}
        rows = [
            {"Disabled": False, "Type": "All Assets", "Set": "", "Position": "", "Sign": "<=",
             "Weight": u.limits.cap, **blank},
        ]  # fmt: skip
        for s, (lo, hi) in u.limits.sector_limits.items():
            for sign, val in (("<=", hi), (">=", lo)):
                if val is not None:
                    rows.append(
                        {"Disabled": False, "Type": "Classes", "Set": "Sector", "Position": s,
                         "Sign": sign, "Weight": val, **blank}
                    )  # fmt: skip
        classes = pd.DataFrame({"Assets": u.symbols, "Sector": u.sectors})
        A, B = rp.assets_constraints(pd.DataFrame(rows), classes)
        u.cache["riskfolio_AB"] = (np.asarray(A, dtype=float), np.asarray(B, dtype=float))
    return u.cache["riskfolio_AB"]


def _riskfolio_weights(w: Any, u: Universe) -> np.ndarray:
    if w is None or (hasattr(w, "empty") and w.empty):
        raise RuntimeError("Riskfolio-Lib returned no weights (solver failed)")
    return np.asarray(w, dtype=float).reshape(-1)


# --------------------------------------------------------------------------------------
# Max Sharpe and min variance (weight caps + sector limits)
# --------------------------------------------------------------------------------------
def _setup_mv(u: Universe) -> Cell:
    engine_for(u)
    reference_for(u)
    return Cell(u)


def stackopt_max_sharpe(c: Cell, units: int | None = None) -> Answer:
    u = c.u
    eng = engine_for(u)
    r = _ok(
        eng.optimize_mean_variance(
            u.symbols, u.mu_annual, u.cov_annual, u.cache["constraints"], "max_sharpe",
            risk_free_rate=0.0,
        )
    )  # fmt: skip
    return Answer(
        r.weights.to_numpy(), fallbacks=_fallback(r.solver, r.fallbacks), solvers=[r.solver]
    )


def stackopt_min_variance(c: Cell, units: int | None = None) -> Answer:
    u = c.u
    eng = engine_for(u)
    r = _ok(
        eng.optimize_mean_variance(
            u.symbols, u.mu_annual, u.cov_annual, u.cache["constraints"], "min_volatility",
            risk_free_rate=0.0,
        )
    )  # fmt: skip
    return Answer(
        r.weights.to_numpy(), fallbacks=_fallback(r.solver, r.fallbacks), solvers=[r.solver]
    )


def _core_form(u: Universe) -> Any:
    if "form" not in u.cache:
        from core.optimization.constraints import linear_form

        engine_for(u)
        u.cache["form"] = linear_form(u.symbols, u.cache["constraints"], u.fund_map)
    return u.cache["form"]


def _core_qp(form: Any, P: np.ndarray) -> Any:
    from core.optimization.qp import QPProblem

    return QPProblem(
        P=P, q=np.zeros(P.shape[0]), A_eq=form.A_eq, b_eq=form.b_eq, A_ub=form.A_ub,
        b_ub=form.b_ub, lb=form.lb, ub=form.ub,
    )  # fmt: skip


def core_min_variance(c: Cell, units: int | None = None) -> Answer:
    """core.optimization.qp.solve_qp on the engine's own linear form (no engine overhead)."""
    from core.optimization.qp import solve_qp

    form = _core_form(c.u)
    sol = solve_qp(_core_qp(form, c.u.cov_annual))
    return Answer(sol.x, fallbacks=_fallback(sol.solver, sol.fallbacks), solvers=[sol.solver])


def pypfopt_max_sharpe(c: Cell, units: int | None = None, solver: str | None = None) -> Answer:
    ef = _pypfopt_frontier(c.u, solver=solver)
    ef.max_sharpe(risk_free_rate=0.0)
    return Answer(np.asarray(ef.weights, dtype=float))


def pypfopt_min_variance(c: Cell, units: int | None = None, solver: str | None = None) -> Answer:
    ef = _pypfopt_frontier(c.u, solver=solver)
    ef.min_volatility()
    return Answer(np.asarray(ef.weights, dtype=float))


def skfolio_max_sharpe(c: Cell, units: int | None = None) -> Answer:
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk, ObjectiveFunction

    model = MeanRisk(
        objective_function=ObjectiveFunction.MAXIMIZE_RATIO,
        risk_measure=RiskMeasure.STANDARD_DEVIATION,
        prior_estimator=_skfolio_prior(),
        **_skfolio_kwargs(c.u),
    )
    model.fit(c.u.returns_frame)
    return Answer(np.asarray(model.weights_, dtype=float))


def skfolio_min_variance(c: Cell, units: int | None = None) -> Answer:
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk, ObjectiveFunction

    model = MeanRisk(
        objective_function=ObjectiveFunction.MINIMIZE_RISK,
        risk_measure=RiskMeasure.VARIANCE,
        prior_estimator=_skfolio_prior(),
        **_skfolio_kwargs(c.u),
    )
    model.fit(c.u.returns_frame)
    return Answer(np.asarray(model.weights_, dtype=float))


def riskfolio_max_sharpe(c: Cell, units: int | None = None) -> Answer:
    port = c.u.cache.get("riskfolio_port") or _riskfolio_portfolio(c.u)
    c.u.cache["riskfolio_port"] = port
    w = port.optimization(model="Classic", rm="MV", obj="Sharpe", rf=0, hist=True)
    return Answer(_riskfolio_weights(w, c.u))


def riskfolio_min_variance(c: Cell, units: int | None = None) -> Answer:
    port = c.u.cache.get("riskfolio_port") or _riskfolio_portfolio(c.u)
    c.u.cache["riskfolio_port"] = port
    w = port.optimization(model="Classic", rm="MV", obj="MinRisk", rf=0, hist=True)
    return Answer(_riskfolio_weights(w, c.u))


def _check_single(kind: str) -> Callable[[Cell, Answer, chk.Tolerances], chk.Check]:
    def run(c: Cell, a: Answer, tol: chk.Tolerances) -> chk.Check:
        ref = reference_for(c.u)
        use_ref = c.u.n <= 1000
        if kind == "sharpe":
            return chk.check_max_sharpe(ref, a.value, tol, use_reference=use_ref)
        return chk.check_min_variance(ref, a.value, tol, use_reference=use_ref)

    return run


# --------------------------------------------------------------------------------------
# 50-point efficient frontier
# --------------------------------------------------------------------------------------
def _setup_frontier(u: Universe) -> Cell:
    engine_for(u)
    return Cell(u, targets=frontier_targets(u))


def _light_frontier(u: Universe) -> Cell:
    engine_for(u)
    return Cell(u, targets=None)


def stackopt_frontier(c: Cell, units: int | None = None) -> Answer:
    u = c.u
    eng = engine_for(u)
    pts = list(
        eng.efficient_frontier(
            u.symbols, u.mu_annual, u.cov_annual, u.cache["constraints"],
            n_points=FRONTIER_POINTS, risk_free_rate=0.0,
        )
    )  # fmt: skip
    solvers = [p.solver for p in pts]
    return Answer(
        [p.weights.to_numpy() for p in pts],
        units=len(pts),
        fallbacks=sum(_fallback(s, ()) for s in solvers),
        solvers=solvers,
    )


def pypfopt_frontier(c: Cell, units: int | None = None, solver: str | None = None) -> Answer:
    """One EfficientFrontier, ``efficient_return`` per target (its parameter is reused).

    PyPortfolioOpt is handed the grid of targets; the StackOpt call also finds the grid's
    ends (a min-variance QP and a max-return LP), so this favours the peer slightly.
    """
    u = c.u
    targets = _subset(c.targets, units)
    ef = _pypfopt_frontier(u, solver=solver)
    out = []
    for t in targets:
        ef.efficient_return(float(t * u.ppy))
        out.append(np.asarray(ef.weights, dtype=float).copy())
    return Answer(out, units=len(targets), targets=targets)


def skfolio_frontier(c: Cell, units: int | None = None) -> Answer:
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk

    k = FRONTIER_POINTS if units is None else units
    model = MeanRisk(
        risk_measure=RiskMeasure.VARIANCE,
        efficient_frontier_size=k,
        prior_estimator=_skfolio_prior(),
        **_skfolio_kwargs(c.u),
    )
    model.fit(c.u.returns_frame)
    W = np.atleast_2d(np.asarray(model.weights_, dtype=float))
    return Answer(list(W), units=k)


def riskfolio_frontier(c: Cell, units: int | None = None) -> Answer:
    k = FRONTIER_POINTS if units is None else units
    port = c.u.cache.get("riskfolio_port") or _riskfolio_portfolio(c.u)
    c.u.cache["riskfolio_port"] = port
    W = port.efficient_frontier(model="Classic", rm="MV", points=k, rf=0, hist=True)
    if W is None or W.empty:
        raise RuntimeError("Riskfolio-Lib returned no frontier")
    return Answer([W.iloc[:, j].to_numpy(dtype=float) for j in range(W.shape[1])], units=k)


def check_frontier(c: Cell, a: Answer, tol: chk.Tolerances) -> chk.Check:
    ref = reference_for(c.u)
    points = list(a.value)
    expected = a.units
    if expected is not None and len(points) < expected:
        return chk.fail(f"returned {len(points)} of {expected} points")
    checks = []
    for j, w in enumerate(points):
        t = a.targets[j] if a.targets is not None else None
        checks.append(
            chk.check_min_variance(ref, w, tol, target=t, on_frontier=True, use_reference=False)
        )
    return chk.combine(checks)


# --------------------------------------------------------------------------------------
# Equal risk contribution and risk budgets
# --------------------------------------------------------------------------------------
def _budgets(u: Universe, equal: bool) -> np.ndarray:
    if equal:
        return np.full(u.n, 1.0 / u.n)
    b = np.random.default_rng([u.n, 5]).uniform(0.5, 2.0, u.n)
    return b / b.sum()


def _setup_rb(equal: bool) -> Callable[[Universe], Cell]:
    def setup(u: Universe) -> Cell:
        engine_for(u)
        return Cell(u, budgets=_budgets(u, equal), equal=equal)

    return setup


def stackopt_risk_budget(c: Cell, units: int | None = None) -> Answer:
    u = c.u
    eng = engine_for(u)
    rb = None if c.equal else dict(zip(u.symbols, c.budgets, strict=True))
    r = _ok(eng.optimize_risk_parity(u.symbols, u.cov_annual, method="erc", risk_budgets=rb))
    return Answer(r.weights.to_numpy(), solvers=[r.solver])


def core_risk_budget(c: Cell, units: int | None = None) -> Answer:
    from core.optimization.risk_parity import risk_budget_weights

    sol = risk_budget_weights(c.u.cov_annual, None if c.equal else c.budgets)
    return Answer(np.asarray(sol.weights), solvers=[sol.method])


def skfolio_risk_budget(c: Cell, units: int | None = None) -> Answer:
    from skfolio import RiskMeasure
    from skfolio.optimization import RiskBudgeting

    model = RiskBudgeting(
        risk_measure=RiskMeasure.VARIANCE,
        risk_budget=None if c.equal else c.budgets,
        prior_estimator=_skfolio_prior(),
    )
    model.fit(c.u.returns_frame)
    return Answer(np.asarray(model.weights_, dtype=float))


def riskfolio_risk_budget(c: Cell, units: int | None = None) -> Answer:
    port = c.u.cache.get("riskfolio_port_free") or _riskfolio_portfolio(c.u, constrained=False)
    c.u.cache["riskfolio_port_free"] = port
    b = None if c.equal else c.budgets.reshape(-1, 1)
    w = port.rp_optimization(model="Classic", rm="MV", rf=0, b=b, hist=True)
    return Answer(_riskfolio_weights(w, c.u))


def check_rb(c: Cell, a: Answer, tol: chk.Tolerances) -> chk.Check:
    return chk.check_risk_budget(c.u.cov, c.budgets, a.value, tol)


# --------------------------------------------------------------------------------------
# Hierarchical risk parity (on the sample covariance: every library's default input)
# --------------------------------------------------------------------------------------
def _setup_hrp(u: Universe) -> Cell:
    engine_for(u)
    S = u.sample_cov
    if "hrp_ref" not in u.cache:
        u.cache["hrp_ref"] = chk.hrp_reference(S)
    return Cell(
        u,
        S=S,
        S_df=pd.DataFrame(S, index=u.symbols, columns=u.symbols),
        w_ref=u.cache["hrp_ref"],
    )


def _light_hrp(u: Universe) -> Cell:
    engine_for(u)
    return Cell(u, S=u.sample_cov)


def stackopt_hrp(c: Cell, units: int | None = None) -> Answer:
    u = c.u
    r = _ok(engine_for(u).optimize_risk_parity(u.symbols, c.S * u.ppy, method="hrp"))
    return Answer(r.weights.to_numpy(), solvers=[r.solver])


def core_hrp(c: Cell, units: int | None = None) -> Answer:
    from core.optimization.hierarchical import hrp_weights

    return Answer(hrp_weights(c.S))


def pypfopt_hrp(c: Cell, units: int | None = None) -> Answer:
    from pypfopt import HRPOpt

    hrp = HRPOpt(cov_matrix=c.S_df)
    w = hrp.optimize(linkage_method="single")
    return Answer(np.array([w[s] for s in c.u.symbols], dtype=float))


def skfolio_hrp(c: Cell, units: int | None = None) -> Answer:
    from skfolio import RiskMeasure
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.distance import PearsonDistance
    from skfolio.optimization import HierarchicalRiskParity
    from skfolio.seriation import HierarchicalSeriation

    # the paper's HRP: single linkage, dendrogram order (skfolio's default is Ward with
    # optimal leaf ordering)
    seriation = HierarchicalSeriation(
        hierarchical_clustering_estimator=HierarchicalClustering(
            linkage_method=LinkageMethod.SINGLE
        ),
        optimal_ordering=False,
    )
    model = HierarchicalRiskParity(
        risk_measure=RiskMeasure.VARIANCE,
        distance_estimator=PearsonDistance(),
        seriation_estimator=seriation,
    )
    model.fit(c.u.returns_frame)
    return Answer(np.asarray(model.weights_, dtype=float))


def riskfolio_hrp(c: Cell, units: int | None = None) -> Answer:
    import riskfolio as rp

    port = rp.HCPortfolio(returns=c.u.returns_frame)
    w = port.optimization(
        model="HRP", codependence="pearson", rm="MV", rf=0, linkage="single",
        leaf_order=False, custom_cov=c.S_df,
    )  # fmt: skip
    return Answer(_riskfolio_weights(w, c.u))


def check_hrp(c: Cell, a: Answer, tol: chk.Tolerances) -> chk.Check:
    return chk.check_hrp(c.w_ref, a.value, tol)


# --------------------------------------------------------------------------------------
# Black-Litterman with 3 views
# --------------------------------------------------------------------------------------
def _setup_bl(u: Universe) -> Cell:
    from core.optimization.constraints import MarketView

    engine_for(u)
    n, s = u.n, u.symbols
    P = np.zeros((3, n))
    P[0, 0] = 1.0
    P[1, 1], P[1, 2] = 1.0, -1.0
    P[2, 3:6] = 1.0 / 3.0
    Q = np.array([0.10, 0.03, 0.05])  # annual
    views = [
        MarketView([s[0]], "absolute", 0.10, confidence=0.5),
        MarketView([s[1], s[2]], "relative", 0.03, confidence=0.5),
        MarketView(s[3:6], "absolute", 0.05, confidence=0.5),
    ]
    T = u.returns.shape[0] if u.returns is not None else 2520
    tau = 1.0 / T
    cov_a = u.cov_annual
    ref = chk.bl_reference(cov_a, u.market_weights, P, Q, BL_DELTA, tau)
    return Cell(
        u, P=P, Q=Q, views=views, tau=tau, cov_a=cov_a, ref=ref,
        S_df=pd.DataFrame(cov_a, index=s, columns=s),
        caps=pd.Series(u.market_weights, index=s),
    )  # fmt: skip


def stackopt_bl(c: Cell, units: int | None = None) -> Answer:
    """Engine API; confidence 0.5 gives Idzorek's omega = He-Litterman's diag(tau P S P')."""
    u = c.u
    mu = engine_for(u).black_litterman_returns(
        u.symbols, c.caps, c.cov_a, c.views, risk_aversion=BL_DELTA, tau=c.tau,
        risk_free_rate=0.0,
    )  # fmt: skip
    return Answer(mu.to_numpy(dtype=float))


def core_bl(c: Cell, units: int | None = None) -> Answer:
    from core.optimization.black_litterman import (
        black_litterman_posterior,
        implied_equilibrium_returns,
    )

    prior = implied_equilibrium_returns(c.cov_a, c.u.market_weights, BL_DELTA)
    post = black_litterman_posterior(prior, c.cov_a, c.P, c.Q, tau=c.tau)
    return Answer(post.mean)


def pypfopt_bl(c: Cell, units: int | None = None) -> Answer:
    from pypfopt import BlackLittermanModel

    bl = BlackLittermanModel(
        c.S_df, pi="market", market_caps=c.caps, risk_aversion=BL_DELTA, P=c.P, Q=c.Q,
        omega="default", tau=c.tau,
    )  # fmt: skip
    return Answer(bl.bl_returns().to_numpy(dtype=float))


def riskfolio_bl(c: Cell, units: int | None = None) -> Answer:
    """Riskfolio-Lib estimates the covariance from the returns inside the call."""
    import riskfolio as rp

    u = c.u
    w = pd.DataFrame(u.market_weights.reshape(-1, 1), index=u.symbols)
    mu, _, _ = rp.black_litterman(
        u.returns_frame, w, c.P, (c.Q / u.ppy).reshape(-1, 1), delta=BL_DELTA, rf=0,
        eq=True, method_mu="hist", method_cov="ledoit",
    )  # fmt: skip
    return Answer(np.asarray(mu, dtype=float).reshape(-1) * u.ppy)


def check_bl(c: Cell, a: Answer, tol: chk.Tolerances) -> chk.Check:
    return chk.check_vector(c.ref, a.value, tol, "posterior mean")


# --------------------------------------------------------------------------------------
# Ledoit-Wolf from 10 years of daily returns
# --------------------------------------------------------------------------------------
def _setup_lw(u: Universe) -> Cell:
    return Cell(u, X=u.returns, X_df=u.returns_frame)


def stackopt_lw(c: Cell, units: int | None = None) -> Answer:
    from core.optimization.estimators import ledoit_wolf

    return Answer(ledoit_wolf(c.X)[0])


def sklearn_lw(c: Cell, units: int | None = None) -> Answer:
    from sklearn.covariance import LedoitWolf

    return Answer(LedoitWolf().fit(c.X).covariance_)


def pypfopt_lw(c: Cell, units: int | None = None) -> Answer:
    from pypfopt import CovarianceShrinkage

    cs = CovarianceShrinkage(c.X_df, returns_data=True, frequency=252)
    return Answer(cs.ledoit_wolf().to_numpy(dtype=float) / 252.0)


def skfolio_lw(c: Cell, units: int | None = None) -> Answer:
    from skfolio.moments import LedoitWolf

    return Answer(LedoitWolf().fit(c.X_df).covariance_)


def riskfolio_lw(c: Cell, units: int | None = None) -> Answer:
    import riskfolio as rp

    return Answer(rp.covar_matrix(c.X_df, method="ledoit").to_numpy(dtype=float))


def check_lw(c: Cell, a: Answer, tol: chk.Tolerances) -> chk.Check:
    return chk.check_vector(c.u.cov, a.value, tol, "covariance")


# --------------------------------------------------------------------------------------
# 120 monthly re-solves of min variance on rolling Ledoit-Wolf covariances
# --------------------------------------------------------------------------------------
def _setup_backtest(u: Universe) -> Cell:
    engine_for(u)
    X, windows, covs = rolling_factor_covariances(u.n, months=BACKTEST_MONTHS)
    refs: dict[int, chk.Reference] = {}
    return Cell(
        u, covs=covs, windows=windows, refs=refs,
        covs_df=[pd.DataFrame(s * u.ppy, index=u.symbols, columns=u.symbols) for s in covs],
        win_df=[pd.DataFrame(w, columns=u.symbols) for w in windows],
    )  # fmt: skip


def stackopt_backtest(c: Cell, units: int | None = None) -> Answer:
    """What StackOpt's backtest runs each month: ``core.backtest.PreparedProblem`` (the
    constraints built once when the backtest starts, each month's covariance swapped in,
    warm-started from last month), through its public ``solve``."""
    from core.backtest.prepared import PreparedProblem

    u = c.u
    engine_for(u)
    prepared = PreparedProblem(u.symbols, u.cache["constraints"], u.fund_map, "min_volatility")
    out, fb, solvers = [], 0, []
    for S in c.covs:
        w, _ = prepared.solve(S * u.ppy)
        sol = prepared.last_solution
        out.append(w)
        fb += _fallback(sol.solver, sol.fallbacks)
        solvers.append(sol.solver)
    return Answer(out, units=len(out), fallbacks=fb, solvers=solvers)


def core_backtest(c: Cell, units: int | None = None) -> Answer:
    """core.optimization.qp.solve_qp warm-started from last month's answer."""
    from core.optimization.qp import solve_qp

    form = _core_form(c.u)
    out, fb, solvers, prev = [], 0, [], None
    for S in c.covs:
        sol = solve_qp(_core_qp(form, S * c.u.ppy), warm_start=prev)
        prev = sol
        out.append(sol.x)
        fb += _fallback(sol.solver, sol.fallbacks)
        solvers.append(sol.solver)
    return Answer(out, units=len(out), fallbacks=fb, solvers=solvers)


def pypfopt_backtest(c: Cell, units: int | None = None, solver: str | None = None) -> Answer:
    months = list(range(len(c.covs)))[: units or None]
    out = []
    for m in months:
        ef = _pypfopt_frontier(c.u, cov_annual=c.covs_df[m], solver=solver)
        ef.min_volatility()
        out.append(np.asarray(ef.weights, dtype=float))
    return Answer(out, units=len(out), targets=None)


def skfolio_backtest(c: Cell, units: int | None = None) -> Answer:
    """skfolio refits from each month's return window (its own Ledoit-Wolf each time)."""
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk, ObjectiveFunction

    months = list(range(len(c.covs)))[: units or None]
    out = []
    for m in months:
        model = MeanRisk(
            objective_function=ObjectiveFunction.MINIMIZE_RISK,
            risk_measure=RiskMeasure.VARIANCE,
            prior_estimator=_skfolio_prior(),
            **_skfolio_kwargs(c.u),
        )
        model.fit(c.win_df[m])
        out.append(np.asarray(model.weights_, dtype=float))
    return Answer(out, units=len(out))


def riskfolio_backtest(c: Cell, units: int | None = None) -> Answer:
    months = list(range(len(c.covs)))[: units or None]
    port = c.u.cache.get("riskfolio_port_bt") or _riskfolio_portfolio(c.u)
    c.u.cache["riskfolio_port_bt"] = port
    out = []
    for m in months:
        port.cov = pd.DataFrame(c.covs[m], index=c.u.symbols, columns=c.u.symbols)
        w = port.optimization(model="Classic", rm="MV", obj="MinRisk", rf=0, hist=True)
        out.append(_riskfolio_weights(w, c.u))
    return Answer(out, units=len(out))


def check_backtest(c: Cell, a: Answer, tol: chk.Tolerances) -> chk.Check:
    points = list(a.value)
    if a.units is not None and len(points) < a.units:
        return chk.fail(f"returned {len(points)} of {a.units} months")
    checks = []
    for m, w in enumerate(points):
        if m not in c.refs:
            c.refs[m] = chk.Reference(c.covs[m], c.u.mu, c.u.spec)
        checks.append(chk.check_min_variance(c.refs[m], w, tol, use_reference=False))
    return chk.combine(checks)


# --------------------------------------------------------------------------------------
# Leverage-aware universe: StackOpt vs the same problem written directly in cvxpy
# --------------------------------------------------------------------------------------
CLARABEL_1E10 = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def _cvxpy_constraints(u: Universe, w: Any, scale: Any = 1.0) -> list[Any]:
    """The leverage universe's constraints as a cvxpy user writes them (rhs times scale)."""
    k_of = {c: k for k, c in enumerate(u.exposure_types)}
    E = u.exposures
    lim = u.limits
    cons = [w >= 0, w <= lim.cap * scale]
    for code, cap in lim.max_exposure.items():
        cons.append(E[k_of[code]] @ w <= cap * scale)
    for code, floor in lim.min_exposure.items():
        cons.append(E[k_of[code]] @ w >= floor * scale)
    for grp, cap in lim.max_group.items():
        rows = [k_of[c] for c, g in u.group_of_type.items() if g == grp]
        cons.append(E[rows].sum(axis=0) @ w <= cap * scale)
    for grp, floor in lim.min_group.items():
        rows = [k_of[c] for c, g in u.group_of_type.items() if g == grp]
        cons.append(E[rows].sum(axis=0) @ w >= floor * scale)
    cons.append(u.notionals @ w <= lim.max_notional * scale)
    fam = np.asarray(u.sectors)
    for f, (lo, hi) in lim.sector_limits.items():
        member = (fam == f).astype(float)
        if hi is not None:
            cons.append(member @ w <= hi * scale)
        if lo is not None:
            cons.append(member @ w >= lo * scale)
    return cons


def _setup_lev(frontier: bool) -> Callable[[Universe], Cell]:
    def setup(u: Universe) -> Cell:
        engine_for(u)
        reference_for(u)
        return Cell(u, targets=frontier_targets(u) if frontier else None)

    return setup


def _cvxpy_max_sharpe(u: Universe, settings: dict[str, Any]) -> Answer:
    import cvxpy as cp

    y = cp.Variable(u.n)
    kappa = cp.Variable(nonneg=True)
    cons = [u.mu @ y == 1, cp.sum(y) == kappa, *_cvxpy_constraints(u, y, kappa)]
    prob = cp.Problem(cp.Minimize(cp.quad_form(y, u.cov)), cons)
    prob.solve(solver="CLARABEL", **settings)
    if y.value is None or kappa.value is None:
        raise RuntimeError(f"cvxpy status {prob.status}")
    return Answer(np.asarray(y.value) / float(kappa.value), solvers=[f"CLARABEL {prob.status}"])


def _cvxpy_frontier(c: Cell, units: int | None, settings: dict[str, Any]) -> Answer:
    """Built once with the target return as a Parameter, then solved per target."""
    import cvxpy as cp

    u = c.u
    targets = _subset(c.targets, units)
    w = cp.Variable(u.n)
    target = cp.Parameter()
    cons = [cp.sum(w) == 1, u.mu @ w >= target, *_cvxpy_constraints(u, w)]
    prob = cp.Problem(cp.Minimize(cp.quad_form(w, u.cov)), cons)
    out = []
    for t in targets:
        target.value = float(t)
        prob.solve(solver="CLARABEL", **settings)
        if w.value is None:
            raise RuntimeError(f"cvxpy status {prob.status} at target {t:.4g}")
        out.append(np.asarray(w.value, dtype=float).copy())
    return Answer(out, units=len(targets), targets=targets)


def cvxpy_max_sharpe(c: Cell, units: int | None = None) -> Answer:
    return _cvxpy_max_sharpe(c.u, {})


def cvxpy_max_sharpe_tight(c: Cell, units: int | None = None) -> Answer:
    return _cvxpy_max_sharpe(c.u, CLARABEL_1E10)


def cvxpy_frontier(c: Cell, units: int | None = None) -> Answer:
    return _cvxpy_frontier(c, units, {})


def cvxpy_frontier_tight(c: Cell, units: int | None = None) -> Answer:
    return _cvxpy_frontier(c, units, CLARABEL_1E10)


def _clarabel(fn: Callable[..., Answer]) -> Callable[[Any, int | None], Answer]:
    """PyPortfolioOpt with solver='CLARABEL': its default (OSQP) fails or misses at n >= 500."""

    def run(c: Any, units: int | None = None) -> Answer:
        return fn(c, units, solver="CLARABEL")

    run.__name__ = fn.__name__ + "_clarabel"
    return run


# --------------------------------------------------------------------------------------
# The task list
# --------------------------------------------------------------------------------------
FACTORS = ("factor", "sp500")
PYPFOPT, SKFOLIO, RISKFOLIO = "PyPortfolioOpt", "skfolio", "Riskfolio-Lib"
PYPFOPT_C = "PyPortfolioOpt (Clarabel)"

TASKS: list[Task] = [
    Task(
        "max_sharpe",
        "max Sharpe (caps, sectors)",
        FACTORS,
        _setup_mv,
        [
            Column("StackOpt", "stackopt", stackopt_max_sharpe),
            Column(PYPFOPT, "peer", pypfopt_max_sharpe),
            Column(PYPFOPT_C, "peer", _clarabel(pypfopt_max_sharpe)),
            Column(SKFOLIO, "peer", skfolio_max_sharpe),
            Column(RISKFOLIO, "peer", riskfolio_max_sharpe),
        ],
        _check_single("sharpe"),
    ),
    Task(
        "min_variance",
        "min variance (caps, sectors)",
        FACTORS,
        _setup_mv,
        [
            Column("StackOpt", "stackopt", stackopt_min_variance),
            Column("StackOpt core", "core", core_min_variance),
            Column(PYPFOPT, "peer", pypfopt_min_variance),
            Column(PYPFOPT_C, "peer", _clarabel(pypfopt_min_variance)),
            Column(SKFOLIO, "peer", skfolio_min_variance),
            Column(RISKFOLIO, "peer", riskfolio_min_variance),
        ],
        _check_single("variance"),
    ),
    Task(
        "frontier",
        "50-point frontier (caps, sectors)",
        FACTORS,
        _setup_frontier,
        [
            Column("StackOpt", "stackopt", stackopt_frontier),
            Column(PYPFOPT, "peer", pypfopt_frontier, scalable=True),
            Column(PYPFOPT_C, "peer", _clarabel(pypfopt_frontier), scalable=True),
            Column(SKFOLIO, "peer", skfolio_frontier, scalable=True),
            Column(RISKFOLIO, "peer", riskfolio_frontier, scalable=True),
        ],
        check_frontier,
        units=FRONTIER_POINTS,
        min_units=2,
        default_max_n=5000,
        light_setup=_light_frontier,
    ),
    Task(
        "erc",
        "equal risk contribution",
        FACTORS,
        _setup_rb(True),
        [
            Column("StackOpt", "stackopt", stackopt_risk_budget),
            Column("StackOpt core", "core", core_risk_budget),
            Column(SKFOLIO, "peer", skfolio_risk_budget),
            Column(RISKFOLIO, "peer", riskfolio_risk_budget),
        ],
        check_rb,
        default_max_n=5000,
        note="PyPortfolioOpt has no risk budgeting",
    ),
    Task(
        "risk_budgets",
        "risk budgets",
        FACTORS,
        _setup_rb(False),
        [
            Column("StackOpt", "stackopt", stackopt_risk_budget),
            Column("StackOpt core", "core", core_risk_budget),
            Column(SKFOLIO, "peer", skfolio_risk_budget),
            Column(RISKFOLIO, "peer", riskfolio_risk_budget),
        ],
        check_rb,
        note="PyPortfolioOpt has no risk budgeting",
    ),
    Task(
        "hrp",
        "hierarchical risk parity",
        FACTORS,
        _setup_hrp,
        [
            Column("StackOpt", "stackopt", stackopt_hrp),
            Column("StackOpt core", "core", core_hrp),
            Column(PYPFOPT, "peer", pypfopt_hrp),
            Column(SKFOLIO, "peer", skfolio_hrp),
            Column(RISKFOLIO, "peer", riskfolio_hrp),
        ],
        check_hrp,
        growth=2.0,
        default_max_n=5000,
        light_setup=_light_hrp,
        note="sample covariance, single linkage; 'accuracy' is the distance to a plain "
        "reading of the paper (conventions differ between libraries)",
    ),
    Task(
        "black_litterman",
        "Black-Litterman, 3 views",
        ("factor",),
        _setup_bl,
        [
            Column("StackOpt", "stackopt", stackopt_bl),
            Column("StackOpt core", "core", core_bl),
            Column(PYPFOPT, "peer", pypfopt_bl),
            Column(
                RISKFOLIO,
                "peer",
                riskfolio_bl,
                note="estimates its Ledoit-Wolf covariance inside the call",
            ),
        ],
        check_bl,
        growth=2.0,
    ),
    Task(
        "ledoit_wolf",
        "Ledoit-Wolf, 10y daily",
        FACTORS,
        _setup_lw,
        [
            Column("StackOpt", "stackopt", stackopt_lw),
            Column("scikit-learn", "peer", sklearn_lw),
            Column(PYPFOPT, "peer", pypfopt_lw),
            Column(SKFOLIO, "peer", skfolio_lw),
            Column(RISKFOLIO, "peer", riskfolio_lw),
        ],
        check_lw,
        growth=2.0,
    ),
    Task(
        "backtest",
        "120 monthly min-variance re-solves",
        ("factor",),
        _setup_backtest,
        [
            Column("StackOpt", "stackopt", stackopt_backtest),
            Column("StackOpt core", "core", core_backtest),
            Column(PYPFOPT, "peer", pypfopt_backtest, scalable=True),
            Column(PYPFOPT_C, "peer", _clarabel(pypfopt_backtest), scalable=True),
            Column(
                SKFOLIO,
                "peer",
                skfolio_backtest,
                scalable=True,
                note="refits Ledoit-Wolf from each month's returns",
            ),
            Column(RISKFOLIO, "peer", riskfolio_backtest, scalable=True),
        ],
        check_backtest,
        units=BACKTEST_MONTHS,
        max_n=1000,
        default_max_n=500,
        quick_max_n=100,
    ),
    Task(
        "lev_max_sharpe",
        "max Sharpe, exposure caps + notional",
        ("leverage",),
        _setup_lev(False),
        [
            Column("StackOpt", "stackopt", stackopt_max_sharpe),
            Column("cvxpy+Clarabel", "cvxpy", cvxpy_max_sharpe),
            Column("cvxpy+Clarabel 1e-10", "cvxpy", cvxpy_max_sharpe_tight),
        ],
        _check_single("sharpe"),
    ),
    Task(
        "lev_frontier",
        "50-point frontier, exposure caps + notional",
        ("leverage",),
        _setup_lev(True),
        [
            Column("StackOpt", "stackopt", stackopt_frontier),
            Column("cvxpy+Clarabel", "cvxpy", cvxpy_frontier, scalable=True),
            Column("cvxpy+Clarabel 1e-10", "cvxpy", cvxpy_frontier_tight, scalable=True),
        ],
        check_frontier,
        units=FRONTIER_POINTS,
    ),
]

TASKS_BY_KEY = {t.key: t for t in TASKS}

#: Default sizes per universe kind (the factor sizes are filtered by ``--sizes``).
FULL_SIZES = {
    "factor": [20, 100, 500, 1000, 5000],
    "leverage": [100, 500, 1000],
}
QUICK_SIZES = {"factor": [20, 100, 500], "leverage": [100, 500]}


# --------------------------------------------------------------------------------------
# Special tasks: start-up time, GUI-thread blocking, the backtest-speed module
# --------------------------------------------------------------------------------------
def startup_times(runs: int = 5, timeout: float = 60.0) -> dict[str, Any]:
    """Wall time of ``python -m desktop --quit-after 0`` (offscreen), cold process each run.

    The time covers the whole process: interpreter start, imports, window shown, the
    zero-second timer closing it, and exit. ``python -c pass`` is timed alongside so the
    interpreter's share can be read off. Runs are interleaved between the two.

    The app's own modules are compiled to bytecode first, as Python does on a user's
    first launch (the installed libraries were compiled by pip): with
    ``PYTHONDONTWRITEBYTECODE`` set, as on some build machines, every run would otherwise
    compile 80 modules from source (0.2 s) that no user's second launch compiles.
    """
    import compileall

    repo = Path(__file__).resolve().parents[1]
    for package in ("core", "desktop"):
        compileall.compile_dir(repo / package, quiet=1)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    app_cmd = [sys.executable, "-m", "desktop", "--quit-after", "0", "--no-recovery"]
    bare_cmd = [sys.executable, "-c", "pass"]
    app, bare, failures = [], [], []
    for _ in range(runs):
        for cmd, sink in ((app_cmd, app), (bare_cmd, bare)):
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(
                    cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
                )
            except subprocess.TimeoutExpired:
                failures.append(f"{' '.join(cmd[1:])}: no exit within {timeout:.0f} s")
                continue
            dt = time.perf_counter() - t0
            if proc.returncode != 0:
                tail = (proc.stderr or "").strip().splitlines()[-1:] or ["?"]
                failures.append(f"exit code {proc.returncode}: {tail[0][:160]}")
                continue
            sink.append(dt)
    return {
        "app_s": app,
        "python_s": bare,
        "failures": failures,
        "app_median_ms": float(np.median(app)) * 1e3 if app else math.nan,
        "python_median_ms": float(np.median(bare)) * 1e3 if bare else math.nan,
    }


def gui_block_available() -> tuple[bool, str]:
    """Whether the desktop worker the GUI-blocking measurement needs exists yet."""
    if importlib.util.find_spec("desktop.workers") is None:
        return False, (
            "skipped: desktop/workers.py does not exist yet (the Results tab with a worker "
            "thread arrives in a later issue)"
        )
    return True, ""


_GUI_PROBE = r"""
import json, sys, time
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from bench.problems import leverage_universe
from core.optimization.engine import OptimizationEngine
import desktop.workers as workers

n = int(sys.argv[1])
app = QApplication([])
u = leverage_universe(n)
eng = OptimizationEngine(fund_map=u.fund_map)
cons = u.engine_constraints()
make = lambda: eng.efficient_frontier(u.symbols, u.mu, u.cov, cons, n_points=50, risk_free_rate=0.0)
worker = workers.IterWorker(make, 50)
gaps, last, done = [], [None], []
def tick():  # the first tick only starts the clock: event-loop start-up is not a block
    now = time.perf_counter()
    if last[0] is not None and not done:
        gaps.append(now - last[0])
    last[0] = now
timer = QTimer(); timer.setInterval(5); timer.timeout.connect(tick); timer.start()
points = []
worker.signals.partial.connect(points.append)
worker.signals.finished.connect(lambda items: (done.append(len(items)), app.quit()))
worker.signals.failed.connect(lambda exc: (done.append(repr(exc)), app.quit()))
# the app's own solver thread (one BLAS thread, the start-up heap frozen, a short GIL
# switch interval)
solver = workers.SolverThread()
t0 = time.perf_counter()
solver.start(worker)
QTimer.singleShot(600000, app.quit)
app.exec()
solver.pool.waitForDone()
print(json.dumps({"max_block_ms": max(gaps) * 1e3 if gaps else None, "ticks": len(gaps),
                  "gaps_over_50ms": sum(g > 0.05 for g in gaps),
                  "points": len(points), "result": done[0] if done else None,
                  "wall_s": time.perf_counter() - t0}))
"""


def gui_block(n: int = 1000, timeout: float = 900.0) -> dict[str, Any]:
    """Longest gap between 5 ms GUI-thread timer ticks while a worker computes a frontier.

    Needs ``desktop.workers.IterWorker(make_iter, total)`` with ``signals.partial`` /
    ``finished`` / ``failed`` (ARCHITECTURE.md's sketch); otherwise it is skipped.
    """
    ok, why = gui_block_available()
    if not ok:
        return {"skipped": why}
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    # as the app does at launch: the solver kernels compiled into numba's on-disk cache
    # by another process (the first launch after an install or an edit of a kernel
    # compiles for about 25 s), so that the probe measures the frontier, not the compiler
    from desktop.__main__ import _WARM_UP

    subprocess.run([sys.executable, "-c", _WARM_UP], env=env, timeout=timeout, check=False)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _GUI_PROBE, str(n)], env=env, capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"failed": f"no answer within {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or ["?"]
        return {"failed": f"probe exited {proc.returncode}: {tail[0][:200]}"}
    import json

    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"failed": "probe printed no result"}


def backtest_speed_rows(quick: bool, repeats: int, seed: int) -> dict[str, Any]:
    """Rows from ``bench/backtest_speed.py``'s ``run_backtest_speed`` if that module exists.

    Keyword arguments it declares among ``quick``, ``repeats`` and ``seed`` are passed.
    It should return a list of dicts (one per row); anything else is stored as is.
    """
    if importlib.util.find_spec("bench.backtest_speed") is None:
        return {"skipped": "bench/backtest_speed.py is not there yet"}
    import inspect

    try:
        from bench.backtest_speed import run_backtest_speed
    except Exception as exc:  # noqa: BLE001 - another helper's module may be mid-edit
        return {"failed": f"import failed: {type(exc).__name__}: {exc}"}
    params = inspect.signature(run_backtest_speed).parameters
    kw = {
        k: v for k, v in {"quick": quick, "repeats": repeats, "seed": seed}.items() if k in params
    }
    try:
        rows = run_backtest_speed(**kw)
    except Exception as exc:  # noqa: BLE001
        return {"failed": f"{type(exc).__name__}: {exc}"}
    return {"rows": rows}
