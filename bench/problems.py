"""Benchmark problems: seeded, deterministic universes and their constraints.

Three kinds of universe, all long-only and fully invested:

``factor``
    A seeded 5-factor model: ``T = 2520`` daily returns (10 years), Student-t (5 degrees
    of freedom) idiosyncratic noise, annual volatilities drawn in 10-40%. ``mu`` is the
    sample mean and ``cov`` the Ledoit-Wolf covariance of those returns (positive
    definite even at n = 5000 > T). Synthetic sectors carry sector limits.
``sp500``
    Real S&P 500 stocks: the last 2520 daily returns of every member with a complete
    history in that span (from ``sp500_daily_adjclose.parquet``) and its GICS sector
    (``sp500_constituents.csv``). Same estimators as ``factor``. The data is read, never
    copied.
``leverage``
    StackOpt's own universe: the built-in fund map plus synthetic funds (about 10% of
    them "stacked": two exposures summing to 150-300% notional) up to ``n`` funds; fund
    returns come from an exposure-level model ``Sigma = E' Sigma_x E + D``. Constraints:
    exposure caps and floors on ``E w``, a notional limit, asset-class group caps and
    floors, fund-family limits and a weight cap; several of them are active at the optimum.

Units: ``mu`` and ``cov`` are per period (daily for ``factor``/``sp500``, annual for
``leverage``); ``ppy`` (periods per year) converts to the annual figures the engine and
PyPortfolioOpt expect. Optimal weights do not depend on that scaling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Base seed of every random universe (``--seed`` overrides it).
SEED = 20261124
#: Ten years of daily returns.
T_DAILY = 2520
#: Trading days per year (the factor and S&P universes are daily).
PPY_DAILY = 252.0
#: Default location of the real-data folder, relative to the repository root.
DEFAULT_DATA = Path("..") / "shared" / "data"


# --------------------------------------------------------------------------------------
# Constraint specification (library-neutral) and its dense linear form
# --------------------------------------------------------------------------------------
@dataclass
class Limits:
    """What every library is asked to respect, in fractions of portfolio value.

    ``sector_limits`` maps a sector (or fund family) to ``(min, max)`` on the summed weight
    of its members. The exposure fields are used only by the leverage universe.
    """

    cap: float
    sector_limits: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    max_exposure: dict[str, float] = field(default_factory=dict)
    min_exposure: dict[str, float] = field(default_factory=dict)
    max_group: dict[str, float] = field(default_factory=dict)
    min_group: dict[str, float] = field(default_factory=dict)
    max_notional: float | None = None


@dataclass
class LinearSpec:
    """``A_eq w = b_eq``, ``A_ub w <= b_ub``, ``lb <= w <= ub`` (dense, shape (m, n))."""

    A_eq: np.ndarray
    b_eq: np.ndarray
    A_ub: np.ndarray
    b_ub: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    ub_names: list[str]

    @property
    def n(self) -> int:
        return int(self.lb.shape[0])

    def violation(self, w: np.ndarray) -> tuple[float, str]:
        """Largest absolute violation of any constraint by ``w`` (shape (n,)), and its name."""
        w = np.asarray(w, dtype=float)
        if w.shape != (self.n,) or not np.isfinite(w).all():
            return float("inf"), "weights are missing, of the wrong length or not finite"
        parts = [
            (np.abs(self.A_eq @ w - self.b_eq), ["budget"] * self.A_eq.shape[0]),
            (self.lb - w, "lower bound"),
            (w - self.ub, "upper bound"),
        ]
        if self.A_ub.shape[0]:
            parts.append((self.A_ub @ w - self.b_ub, self.ub_names))
        worst, name = 0.0, ""
        for viol, names in parts:
            if viol.size == 0:
                continue
            i = int(np.argmax(viol))
            if viol[i] > worst:
                worst = float(viol[i])
                name = names[i] if isinstance(names, list) else f"{names} of asset {i}"
        return worst, name


@dataclass
class Universe:
    """One benchmark universe: data, constraints and the inputs every library gets.

    Attributes
    ----------
    kind : {'factor', 'sp500', 'leverage'}
    label : str
        Row label for the report ("500", "S&P 461", "lev 500").
    symbols : list of str, length n
    mu : ndarray, shape (n,)
        Expected (excess) returns per period.
    cov : ndarray, shape (n, n)
        Covariance per period (Ledoit-Wolf of ``returns`` for factor/S&P).
    ppy : float
        Periods per year (252 for daily data, 1 for the annual leverage model).
    returns : ndarray, shape (T, n), or None
        Daily returns (factor/S&P only).
    sectors : list of str, length n
        Sector (factor/S&P) or fund family (leverage) of each symbol.
    limits : Limits
    market_weights : ndarray, shape (n,)
        Positive "market capitalisation" weights summing to 1 (Black-Litterman prior).
    exposure_types : list of str
        Leverage universe: rows of ``exposures``.
    exposures : ndarray, shape (K, n)
        Leverage universe: exposure of each fund to each type, fractions of NAV.
    notionals : ndarray, shape (n,)
        Leverage universe: sum of absolute exposures per fund.
    fund_definitions : list
        Leverage universe: the ``FundDefinition`` of every fund (built-in ones first).
    info : dict
        Setup facts (generation time, fund-map build time) for the JSON report.
    """

    kind: str
    label: str
    symbols: list[str]
    mu: np.ndarray
    cov: np.ndarray
    ppy: float
    returns: np.ndarray | None
    sectors: list[str]
    limits: Limits
    market_weights: np.ndarray
    exposure_types: list[str] = field(default_factory=list)
    exposures: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    notionals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    group_of_type: dict[str, str] = field(default_factory=dict)
    fund_definitions: list[Any] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: Per-run caches shared by the tasks on this universe (reference optima, engine).
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return len(self.symbols)

    # Computed once, outside every timing: a new n x n array per call cost 3-14 ms at
    # n = 1000 on the test machine (page faults), the same for every column, and timed
    # the benchmark rather than the libraries.
    @cached_property
    def mu_annual(self) -> np.ndarray:
        return self.mu * self.ppy

    @cached_property
    def cov_annual(self) -> np.ndarray:
        return self.cov * self.ppy

    @cached_property
    def returns_frame(self) -> pd.DataFrame:
        """Daily returns as a DataFrame (business-day index), for the estimator APIs."""
        if self.returns is None:
            raise ValueError(f"the {self.kind} universe has no return history")
        idx = pd.bdate_range("2016-01-04", periods=self.returns.shape[0])
        return pd.DataFrame(self.returns, index=idx, columns=self.symbols)

    @cached_property
    def sample_cov(self) -> np.ndarray:
        """Sample covariance (ddof = 1) of the daily returns, shape (n, n)."""
        if self.returns is None:
            raise ValueError(f"the {self.kind} universe has no return history")
        return np.cov(self.returns, rowvar=False, ddof=1)

    @cached_property
    def spec(self) -> LinearSpec:
        return linear_spec(self)

    @cached_property
    def fund_map(self) -> Any:
        """A FundExposureMap holding every symbol, so that the engine accepts them.

        Factor and S&P universes get one plain fund per stock ({'US_EQUITY': 100}). The
        build time is recorded in ``info['fund_map_s']`` and never timed as a solve.
        """
        from core.exposures import FundDefinition, FundExposureMap

        t0 = time.perf_counter()
        if self.kind == "leverage":
            fmap = FundExposureMap(self.fund_definitions)
        else:
            fmap = FundExposureMap(
                FundDefinition(symbol=s, name=s, exposures={"US_EQUITY": 100.0})
                for s in self.symbols
            )
        self.info["fund_map_s"] = time.perf_counter() - t0
        return fmap

    def engine_constraints(self) -> Any:
        """The same limits as an ``OptimizationConstraints`` for the StackOpt engine."""
        from core.optimization.constraints import OptimizationConstraints

        lim = self.limits
        return OptimizationConstraints(
            min_weight=0.0,
            max_weight=lim.cap,
            sector_limits=dict(lim.sector_limits),
            sector_mapper=dict(zip(self.symbols, self.sectors, strict=True)),
            max_exposure_per_type=dict(lim.max_exposure),
            min_exposure_per_type=dict(lim.min_exposure),
            max_exposure_per_group=dict(lim.max_group),
            min_exposure_per_group=dict(lim.min_group),
            max_total_notional=lim.max_notional,
        )

    def sector_members(self) -> dict[str, np.ndarray]:
        """Sector -> boolean membership vector, shape (n,)."""
        sec = np.asarray(self.sectors)
        return {s: sec == s for s in self.limits.sector_limits}


def linear_spec(u: Universe) -> LinearSpec:
    """Dense constraint matrices of a universe, built from its raw data.

    Written independently of ``core.optimization.constraints.linear_form`` so that the
    checker does not trust the engine's own translation.
    """
    n = u.n
    lim = u.limits
    rows: list[np.ndarray] = []
    rhs: list[float] = []
    names: list[str] = []

    def add(row: np.ndarray, b: float, name: str) -> None:
        rows.append(np.asarray(row, dtype=float))
        rhs.append(float(b))
        names.append(name)

    for sector, member in u.sector_members().items():
        lo, hi = lim.sector_limits[sector]
        if hi is not None:
            add(member.astype(float), hi, f"sector {sector} <= {hi:g}")
        if lo is not None:
            add(-member.astype(float), -lo, f"sector {sector} >= {lo:g}")
    if u.kind == "leverage":
        E = u.exposures
        k_of = {c: k for k, c in enumerate(u.exposure_types)}
        for code, cap in lim.max_exposure.items():
            add(E[k_of[code]], cap, f"exposure {code} <= {cap:g}")
        for code, floor in lim.min_exposure.items():
            add(-E[k_of[code]], -floor, f"exposure {code} >= {floor:g}")
        for grp, cap in lim.max_group.items():
            ks = [k_of[c] for c, g in u.group_of_type.items() if g == grp and c in k_of]
            add(E[ks].sum(axis=0), cap, f"group {grp} <= {cap:g}")
        for grp, floor in lim.min_group.items():
            ks = [k_of[c] for c, g in u.group_of_type.items() if g == grp and c in k_of]
            add(-E[ks].sum(axis=0), -floor, f"group {grp} >= {floor:g}")
        if lim.max_notional is not None:
            add(u.notionals, lim.max_notional, f"notional <= {lim.max_notional:g}")
    A_ub = np.array(rows, dtype=float).reshape(len(rows), n)
    return LinearSpec(
        A_eq=np.ones((1, n)),
        b_eq=np.ones(1),
        A_ub=A_ub,
        b_ub=np.array(rhs, dtype=float),
        lb=np.zeros(n),
        ub=np.full(n, lim.cap),
        ub_names=names,
    )


# --------------------------------------------------------------------------------------
# Estimators used to build the inputs (independent of core)
# --------------------------------------------------------------------------------------
def ledoit_wolf_reference(X: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf (2004) shrinkage to a scaled identity, written from the paper.

    Parameters
    ----------
    X : ndarray, shape (T, n)
        Returns; column means are removed. ``S = Xc'Xc / T``.

    Returns
    -------
    cov : ndarray, shape (n, n)
    shrinkage : float
    """
    x = np.asarray(X, dtype=float)
    t, n = x.shape
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / t
    m = float(np.trace(s)) / n
    # ||A||^2 = trace(A A') / n, the normalised Frobenius norm of the paper
    d2 = (float(np.sum(s * s)) - 2.0 * m * float(np.trace(s)) + n * m * m) / n
    # sum_t ||x_t x_t' - S||^2 = sum_t ||x_t||^4 - T ||S||_F^2
    row_sq = np.einsum("ij,ij->i", xc, xc)
    b2_bar = (float(row_sq @ row_sq) - t * float(np.sum(s * s))) / (n * t * t)
    b2 = min(b2_bar, d2)
    shrink = b2 / d2 if d2 > 0 else 0.0
    out = (1.0 - shrink) * s
    out[np.diag_indices(n)] += shrink * m
    return out, shrink


# --------------------------------------------------------------------------------------
# Factor universe
# --------------------------------------------------------------------------------------
def factor_returns(n: int, t: int = T_DAILY, seed: int = SEED) -> np.ndarray:
    """Daily returns of a seeded 5-factor model, shape (t, n).

    Factor annual volatilities 16/8/6/5/4%, market loadings ~ N(1, 0.3), style loadings
    ~ N(0, 0.5) (shrunk so that factors explain at most 70% of variance), total annual
    volatility ~ U(10%, 40%), unit-variance Student-t(5) idiosyncratic noise, small alphas.
    """
    rng = np.random.default_rng([seed, n, t])
    k = 5
    f_vol = np.array([0.16, 0.08, 0.06, 0.05, 0.04]) / np.sqrt(PPY_DAILY)
    f_mu = np.array([0.06, 0.02, 0.01, 0.0, 0.01]) / PPY_DAILY
    factors = rng.standard_normal((t, k)) * f_vol + f_mu
    loadings = np.column_stack([rng.normal(1.0, 0.3, n), rng.normal(0.0, 0.5, (n, k - 1))])
    target = rng.uniform(0.10, 0.40, n) / np.sqrt(PPY_DAILY)
    sys_var = (loadings**2 * f_vol**2).sum(axis=1)
    loadings *= np.minimum(1.0, np.sqrt(0.7 * target**2 / sys_var))[:, None]
    idio = np.sqrt(target**2 - (loadings**2 * f_vol**2).sum(axis=1))
    dof = 5.0
    noise = rng.standard_t(dof, (t, n))
    noise *= np.sqrt((dof - 2.0) / dof) * idio
    alpha = rng.normal(0.0, 0.02, n) / PPY_DAILY
    out = factors @ loadings.T
    out += noise
    out += alpha
    return out


def _balanced_sectors(n: int, m: int, rng: np.random.Generator) -> list[str]:
    labels = [f"S{(i % m) + 1:02d}" for i in range(n)]
    return [labels[i] for i in rng.permutation(n)]


def factor_universe(n: int, seed: int = SEED) -> Universe:
    """The seeded factor-model universe of ``n`` stocks (see the module docstring)."""
    t0 = time.perf_counter()
    X = factor_returns(n, seed=seed)
    cov, shrink = ledoit_wolf_reference(X)
    rng = np.random.default_rng([seed, n, 7])
    m = 11 if n >= 100 else 4
    sectors = _balanced_sectors(n, m, rng)
    hi = 0.20 if m == 11 else 0.40
    limits = {f"S{j + 1:02d}": (None, hi) for j in range(m)}
    limits["S01"] = (0.05, hi)
    caps = rng.lognormal(0.0, 1.0, n)
    return Universe(
        kind="factor",
        label=str(n),
        symbols=[f"F{i:04d}" for i in range(n)],
        mu=X.mean(axis=0),
        cov=cov,
        ppy=PPY_DAILY,
        returns=X,
        sectors=sectors,
        limits=Limits(cap=0.10 if n >= 100 else 0.25, sector_limits=limits),
        market_weights=caps / caps.sum(),
        info={"generate_s": time.perf_counter() - t0, "lw_shrinkage": shrink, "seed": seed},
    )


def rolling_factor_covariances(
    n: int, months: int = 120, lookback: int = 504, step: int = 21, seed: int = SEED
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Returns and month-end rolling Ledoit-Wolf covariances for the backtest task.

    Returns
    -------
    returns : ndarray, shape (lookback + months * step, n)
    windows : list of ``months`` ndarrays, shape (lookback, n)
        The return window behind each covariance (views into ``returns``).
    covs : list of ``months`` ndarrays, shape (n, n)
        Daily Ledoit-Wolf covariance of each window.
    """
    X = factor_returns(n, t=lookback + months * step, seed=seed + 1)
    windows, covs = [], []
    for j in range(months):
        end = lookback + (j + 1) * step
        win = X[end - lookback : end]
        windows.append(win)
        covs.append(ledoit_wolf_reference(win)[0])
    return X, windows, covs


# --------------------------------------------------------------------------------------
# S&P 500 universe
# --------------------------------------------------------------------------------------
def sp500_universe(data_dir: Path | str = DEFAULT_DATA, t: int = T_DAILY) -> Universe:
    """Real S&P 500 members with a complete history over the last ``t`` daily returns.

    Raises
    ------
    FileNotFoundError
        The data folder or one of its two files is missing (pass ``--data``).
    """
    t0 = time.perf_counter()
    folder = Path(data_dir)
    prices_path = folder / "sp500_daily_adjclose.parquet"
    sectors_path = folder / "sp500_constituents.csv"
    for p in (prices_path, sectors_path):
        if not p.exists():
            raise FileNotFoundError(f"{p} not found; pass --data with the real-data folder")
    prices = pd.read_parquet(prices_path)
    info = pd.read_csv(sectors_path)
    gics = dict(zip(info["Symbol"].astype(str), info["GICS Sector"].astype(str), strict=True))
    tail = prices.iloc[-(t + 1) :]
    keep = [c for c in tail.columns if tail[c].notna().all() and str(c) in gics]
    keep = sorted(keep, key=str)
    rets = tail[keep].pct_change().iloc[1:].to_numpy(dtype=float)
    cov, shrink = ledoit_wolf_reference(rets)
    symbols = [str(c).upper() for c in keep]
    sectors = [gics[str(c)] for c in keep]
    limits: dict[str, tuple[float | None, float | None]] = {
        s: (None, 0.20) for s in sorted(set(sectors))
    }
    if "Utilities" in limits:
        limits["Utilities"] = (0.03, 0.20)
    caps = np.random.default_rng([SEED, len(keep), 11]).lognormal(0.0, 1.0, len(keep))
    return Universe(
        kind="sp500",
        label=f"S&P {len(keep)}",
        symbols=symbols,
        mu=rets.mean(axis=0),
        cov=cov,
        ppy=PPY_DAILY,
        returns=rets,
        sectors=sectors,
        limits=Limits(cap=0.10, sector_limits=limits),
        market_weights=caps / caps.sum(),
        info={
            "generate_s": time.perf_counter() - t0,
            "lw_shrinkage": shrink,
            "span": f"{tail.index[1].date()}..{tail.index[-1].date()}",
            "source": "sp500_daily_adjclose.parquet, sp500_constituents.csv",
        },
    )


# --------------------------------------------------------------------------------------
# Leverage-aware universe
# --------------------------------------------------------------------------------------
#: Annual excess return and volatility of each exposure type (round, plausible numbers;
#: a fixed benchmark input, not a forecast).
EXPOSURE_MODEL: dict[str, tuple[float, float]] = {
    "CASH_TBILL": (0.000, 0.005),
    "US_EQUITY": (0.050, 0.160),
    "US_SMALL": (0.055, 0.210),
    "INTL_DEV": (0.045, 0.170),
    "EM_EQUITY": (0.055, 0.220),
    "UST_10Y": (0.010, 0.070),
    "UST_LONG": (0.015, 0.140),
    "GOLD": (0.025, 0.150),
    "COMMODITIES": (0.020, 0.180),
    "MANAGED_FUT": (0.030, 0.120),
    "CARRY": (0.030, 0.080),
    "MERGER_ARB": (0.020, 0.060),
}

#: Loadings of each exposure type on four latent drivers (equity, rates, real assets,
#: trend); the exposure correlation is ``L L' + diag(1 - rowsum(L^2))``.
_DRIVERS: dict[str, tuple[float, float, float, float]] = {
    "CASH_TBILL": (0.0, 0.1, 0.0, 0.0),
    "US_EQUITY": (0.92, -0.15, 0.10, 0.0),
    "US_SMALL": (0.85, -0.15, 0.12, 0.0),
    "INTL_DEV": (0.85, -0.10, 0.15, 0.0),
    "EM_EQUITY": (0.75, -0.05, 0.25, 0.0),
    "UST_10Y": (-0.15, 0.95, 0.0, 0.10),
    "UST_LONG": (-0.15, 0.92, 0.0, 0.10),
    "GOLD": (0.05, 0.25, 0.60, 0.10),
    "COMMODITIES": (0.30, -0.10, 0.70, 0.10),
    "MANAGED_FUT": (-0.05, 0.15, 0.10, 0.75),
    "CARRY": (0.30, 0.10, 0.10, 0.30),
    "MERGER_ARB": (0.40, 0.0, 0.0, 0.0),
}

#: Exposure types a synthetic plain fund tracks, with sampling weights.
_PLAIN_MIX = {
    "US_EQUITY": 0.22,
    "US_SMALL": 0.08,
    "INTL_DEV": 0.12,
    "EM_EQUITY": 0.08,
    "UST_10Y": 0.12,
    "UST_LONG": 0.08,
    "GOLD": 0.06,
    "COMMODITIES": 0.06,
    "MANAGED_FUT": 0.08,
    "CARRY": 0.04,
    "MERGER_ARB": 0.03,
    "CASH_TBILL": 0.03,
}
_STACK_BASE = ["US_EQUITY", "INTL_DEV", "EM_EQUITY", "US_SMALL"]
_STACK_OVERLAY = ["UST_10Y", "UST_LONG", "MANAGED_FUT", "GOLD", "CARRY", "MERGER_ARB"]

#: Limits of the leverage universe (fractions). Chosen so that several bind at the
#: max-Sharpe and min-variance optima (``bench/README.md`` lists which).
LEVERAGE_LIMITS = {
    "max_notional": 1.4,
    "max_exposure": {"US_EQUITY": 0.45, "GOLD": 0.08, "MANAGED_FUT": 0.15},
    "min_exposure": {"UST_10Y": 0.25, "INTL_DEV": 0.08},
    "max_group": {"equity": 0.80, "alternatives": 0.25},
    "min_group": {"fixed_income": 0.35},
    "family_cap": 0.30,
    "families": 10,
}


def exposure_covariance(codes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Annual excess returns (K,) and covariance (K, K) of the exposure model."""
    L = np.array([_DRIVERS[c] for c in codes])
    corr = L @ L.T
    corr[np.diag_indices(len(codes))] = 1.0
    vol = np.array([EXPOSURE_MODEL[c][1] for c in codes])
    mu = np.array([EXPOSURE_MODEL[c][0] for c in codes])
    return mu, corr * np.outer(vol, vol)


def leverage_universe(n: int, seed: int = SEED) -> Universe:
    """The built-in fund map plus synthetic funds up to ``n`` (n < 39 takes a prefix)."""
    from core.exposures import FundDefinition, FundExposureMap

    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, n, 3])
    base = FundExposureMap.default()
    funds = [f.copy() for f in base][:n]
    plain_codes = list(_PLAIN_MIX)
    p_plain = np.array([_PLAIN_MIX[c] for c in plain_codes])
    p_plain /= p_plain.sum()
    for i in range(n - len(funds)):
        if rng.random() < 0.10:
            a, b = rng.choice(_STACK_BASE), rng.choice(_STACK_OVERLAY)
            total = rng.uniform(1.5, 3.0)
            share = rng.uniform(0.35, 0.65)
            exps = {a: round(100 * total * share, 2), b: round(100 * total * (1 - share), 2)}
            fee = rng.uniform(0.5, 1.0)
        else:
            exps = {rng.choice(plain_codes, p=p_plain): 100.0}
            fee = rng.uniform(0.03, 0.6)
        funds.append(
            FundDefinition(
                symbol=f"SYN{i:04d}",
                name=f"Synthetic fund {i}",
                exposures=exps,
                expense_ratio=round(float(fee), 3),
                source="bench synthetic",
            )
        )
    codes = [c for c in base.exposure_types if c in EXPOSURE_MODEL]
    k_of = {c: k for k, c in enumerate(codes)}
    E = np.zeros((len(codes), n))
    for j, f in enumerate(funds):
        for c, v in f.exposures.items():
            E[k_of[c], j] = v / 100.0
    mu_x, cov_x = exposure_covariance(codes)
    cost = np.array([f.expense_ratio / 100.0 for f in funds])
    te = np.where(np.arange(n) < len(base), 0.01, rng.uniform(0.01, 0.04, n))
    mu = E.T @ mu_x - cost + rng.normal(0.0, 0.003, n)
    cov = E.T @ cov_x @ E
    cov[np.diag_indices(n)] += te**2
    notionals = np.abs(E).sum(axis=0)
    fam_n = int(LEVERAGE_LIMITS["families"])
    families = [f"FAM{(j % fam_n) + 1:02d}" for j in rng.permutation(n)]
    fam_cap = float(LEVERAGE_LIMITS["family_cap"])
    groups = {c: base.exposure_types[c].group.value for c in codes}
    caps = rng.lognormal(0.0, 1.0, n)
    limits = Limits(
        cap=0.10 if n >= 100 else 0.25,
        sector_limits={f"FAM{j + 1:02d}": (None, fam_cap) for j in range(fam_n)},
        max_exposure=dict(LEVERAGE_LIMITS["max_exposure"]),
        min_exposure=dict(LEVERAGE_LIMITS["min_exposure"]),
        max_group=dict(LEVERAGE_LIMITS["max_group"]),
        min_group=dict(LEVERAGE_LIMITS["min_group"]),
        max_notional=float(LEVERAGE_LIMITS["max_notional"]),
    )
    return Universe(
        kind="leverage",
        label=f"lev {n}",
        symbols=[f.symbol for f in funds],
        mu=mu,
        cov=0.5 * (cov + cov.T),
        ppy=1.0,
        returns=None,
        sectors=families,
        limits=limits,
        market_weights=caps / caps.sum(),
        exposure_types=codes,
        exposures=E,
        notionals=notionals,
        group_of_type=groups,
        fund_definitions=funds,
        info={
            "generate_s": time.perf_counter() - t0,
            "stacked_funds": int(((E != 0).sum(axis=0) >= 2).sum()),
            "builtin_funds": min(n, len(base)),
            "seed": seed,
        },
    )


def build_universe(kind: str, n: int | None, *, seed: int = SEED, data_dir: Any = None) -> Universe:
    """Universe by kind; ``n`` is ignored for ``sp500`` (its size is set by the data)."""
    if kind == "factor":
        assert n is not None
        return factor_universe(n, seed)
    if kind == "leverage":
        assert n is not None
        return leverage_universe(n, seed)
    if kind == "sp500":
        return sp500_universe(data_dir if data_dir is not None else DEFAULT_DATA)
    raise ValueError(f"unknown universe kind {kind!r}")
