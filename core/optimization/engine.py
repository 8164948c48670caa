"""The optimization engine facade: every objective behind the API the spec promises.

``OptimizationEngine(analytics, fund_map)`` takes symbols, expected returns (annual,
fractions) and an annual covariance, builds the constraint matrices once
(:func:`~core.optimization.constraints.linear_form`), sends dense QPs to the fast path
(:mod:`core.optimization.qp`) and the rest to cvxpy (:mod:`core.optimization.general`),
then re-checks every constraint on the returned weights before calling it a success.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError, InfeasibleError, StackOptWarning, ValidationError
from core.exposures import ExposureCalculator, FundExposureMap, symbol_index, upper_symbols
from core.kept import Kept
from core.linalg import is_psd, probe
from core.optimization import mean_variance as mv
from core.optimization.constraints import (
    LinearForm,
    MarketView,
    OptimizationConstraints,
    linear_form,
)
from core.optimization.general import RawSolution, build_constraint_list
from core.optimization.results import FrontierPoint, ObjectiveType, OptimizationResult

#: Constraints are re-checked on every answer to this tolerance before success.
CHECK_TOL = 1e-6
#: Annual variance at or below which a fund is riskless (a volatility of 1e-7).
ZERO_VARIANCE = 1e-14


def _vector(values: Any, symbols: list[str], what: str) -> np.ndarray:
    if isinstance(values, Mapping) and not isinstance(values, pd.Series):
        values = pd.Series(values, dtype=float)
    if isinstance(values, pd.Series):
        # plain lists (iterating an Arrow-backed index item by item is 10x slower)
        idx = dict(zip(upper_symbols(values.index.tolist()), values.tolist(), strict=True))
        missing = [s for s in symbols if s not in idx]
        if missing:
            raise ValidationError(f"{what} missing for: {', '.join(missing)}", field=what)
        arr = np.array([idx[s] for s in symbols], dtype=float)
    else:
        arr = np.asarray(values, dtype=float).reshape(-1)
        if arr.shape != (len(symbols),):
            raise ValidationError(
                f"{what} has {arr.size} values for {len(symbols)} funds", field=what
            )
    bad = [symbols[i] for i in np.flatnonzero(~np.isfinite(arr))]
    if bad:
        raise DataError(f"{what} is NaN or infinite for {', '.join(bad)}; re-estimate it")
    return arr


def _matrix(values: Any, symbols: list[str], what: str = "covariance") -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        frame = values.copy()
        frame.index = [str(i).upper() for i in frame.index]
        frame.columns = [str(c).upper() for c in frame.columns]
        missing = [s for s in symbols if s not in frame.index or s not in frame.columns]
        if missing:
            raise ValidationError(f"{what} has no row/column for {', '.join(missing)}", field=what)
        arr = frame.loc[symbols, symbols].to_numpy(dtype=float)
    else:
        arr = np.asarray(values, dtype=float)
        if arr.shape != (len(symbols), len(symbols)):
            raise ValidationError(
                f"{what} must be {len(symbols)}x{len(symbols)}, got {arr.shape}", field=what
            )
    return arr  # NaN and infinity are found by prepare_covariance's fingerprint


def _refuse_non_finite(arr: np.ndarray, symbols: list[str], what: str = "covariance") -> None:
    bad = sorted({symbols[i] for i in np.argwhere(~np.isfinite(arr)).ravel()})
    if bad:
        raise DataError(f"{what} has NaN or infinite entries for {', '.join(bad)}")


#: Covariances already prepared, by fingerprint and symbols: (read-only matrix, repairs);
#: None for the matrix when the caller's needed nothing (exactly symmetric and PSD).
_PREPARED: Kept[tuple[np.ndarray | None, list[str]]] = Kept(4)
#: Larger matrices are not kept (a 2,500-fund covariance is 50 MB).
_PREPARED_MAX_N = 2500


def prepare_covariance(cov: np.ndarray, symbols: list[str]) -> tuple[np.ndarray, list[str]]:
    """Symmetrise and repair a covariance to PSD; say what was repaired.

    The answer for the last few matrices is remembered by the matrix's product with a
    fixed random vector (Freivalds' check, as :func:`core.linalg.fingerprint`; one pass
    over the matrix), so re-solving on the same covariance (a frontier click, a new
    constraint, another objective) skips the O(n^3) check. A matrix that needed no
    repair (exactly symmetric, PSD, C-ordered) comes back as it is: no copy is kept, and
    the solve reads the same memory the fingerprint read instead of a second matrix.
    Otherwise the returned matrix is the engine's own read-only repaired copy. The engine
    never writes into the returned matrix.
    """
    prepared, repairs, _ = prepare_covariance_times(cov, symbols, None)
    return prepared, repairs


def prepare_covariance_times(
    cov: np.ndarray, symbols: list[str], x: np.ndarray | None
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """:func:`prepare_covariance`, and the prepared matrix times ``x`` (None: not needed).

    The product comes from the same pass over the matrix as its fingerprint
    (:mod:`core.optimization.matvec_kernel`) whenever the matrix needed no repair.
    """
    key = product = None
    n = cov.shape[0]
    if cov.size:
        if cov.dtype == np.float64 and cov.flags.c_contiguous:
            from core.optimization.matvec_kernel import products

            probed, product = products(cov, probe(n), np.zeros(n) if x is None else x)
        else:  # (a frame's column-ordered values: numpy reads them as they lie)
            probed = cov @ probe(n)
        if not np.isfinite(probed).all():  # NaN or infinity somewhere
            _refuse_non_finite(cov, symbols)
        if n <= _PREPARED_MAX_N:
            key = (b"%d:" % n + probed.tobytes(), tuple(symbols))
    kept = _PREPARED.get(key) if key is not None else None
    if kept is None:
        prepared, repairs = _prepare_covariance(cov, symbols)
        as_is = False
        if key is not None:
            prepared.flags.writeable = False  # a new array (symmetrised), never the caller's
            as_is = not repairs and cov.flags.c_contiguous and np.array_equal(prepared, cov)
            _PREPARED.put(key, (None if as_is else prepared, list(repairs)))
    else:
        kept_matrix, kept_repairs = kept
        as_is = kept_matrix is None  # the caller's matrix needed nothing: it is the answer
        prepared, repairs = (cov if as_is else kept_matrix), list(kept_repairs)
    if x is None:
        return prepared, repairs, None
    if not as_is or product is None:  # the fingerprint's pass read another matrix
        product = prepared @ x
    return prepared, repairs, product


def _prepare_covariance(cov: np.ndarray, symbols: list[str]) -> tuple[np.ndarray, list[str]]:
    repairs: list[str] = []
    asym = np.max(np.abs(cov - cov.T)) if cov.size else 0.0
    scale = max(float(np.max(np.abs(np.diag(cov)))) if cov.size else 1.0, 1e-300)
    if asym > 1e-8 * scale:
        repairs.append(f"covariance was not symmetric (max asymmetry {asym:.2e}); symmetrised")
    cov = 0.5 * (cov + cov.T)
    neg_var = [symbols[i] for i in np.flatnonzero(np.diag(cov) < 0)]
    if neg_var:
        raise DataError(f"negative variance for {', '.join(neg_var)}: the covariance is invalid")
    # a Cholesky settles the usual PSD case at a tenth of an eigendecomposition's cost
    ev = np.zeros(0)
    if cov.size and not is_psd(cov):
        ev, vecs = np.linalg.eigh(cov)
    if ev.size and ev[0] < -1e-10 * scale:
        clipped = np.clip(ev, 0.0, None)
        cov = (vecs * clipped) @ vecs.T
        cov = 0.5 * (cov + cov.T)
        repairs.append(
            f"covariance was not positive semi-definite (smallest eigenvalue {ev[0]:.3g}); "
            "negative eigenvalues clipped to zero"
        )
    zero = [symbols[i] for i in np.flatnonzero(np.diag(cov) <= ZERO_VARIANCE)]
    if zero:
        repairs.append(f"zero volatility for {', '.join(zero)}: treated as riskless")
    return cov, repairs


def _refuse_riskless_excess(
    form: LinearForm, mu: np.ndarray | None, cov: np.ndarray, rf: float
) -> None:
    """Max Sharpe is unbounded when a riskless fund beats the risk-free rate; refuse it.

    The solver would return that fund alone with a Sharpe ratio of 1e10 or so (the
    volatility left by rounding), which looks like an answer but is not one.
    """
    if mu is None:
        return
    n = form.n_funds
    excess = mu - rf
    riskless = np.diag(cov) <= ZERO_VARIANCE
    unbounded = riskless & (((excess > 0) & (form.ub[:n] > 0)) | ((excess < 0) & (form.lb[:n] < 0)))
    if unbounded.any():
        names = [form.symbols[i] for i in np.flatnonzero(unbounded)]
        raise ValidationError(
            f"{', '.join(names)} {'has' if len(names) == 1 else 'have'} zero volatility in the "
            f"covariance but an expected return different from the risk-free rate "
            f"({rf:.2%}), so the Sharpe ratio has no maximum. Give "
            f"{'it' if len(names) == 1 else 'them'} a volatility estimate, set the risk-free "
            "rate to that return, or exclude the fund",
            field="covariance_matrix",
        )


def _frontier_by_path(
    form: LinearForm, mu_v: np.ndarray, cov_v: np.ndarray, n_points: int
) -> list[tuple[np.ndarray, str, float]] | None:
    """Frontier points (variables, solver, variance) from the exact corner-portfolio path,
    or None when it cannot be traced (the caller then solves point by point).

    ``mu_v`` and ``cov_v`` are over the variables (cash included), ``cov_v`` the engine's
    checked covariance. InfeasibleError propagates: the point-by-point method would raise
    the same one.
    """
    from core.optimization.cla import frontier_path

    try:
        path = frontier_path(mv.qp_problem(form, cov_v, np.zeros(form.n_vars)), mu_v)
        points = path.points(max(int(n_points), 2))
    except InfeasibleError:
        raise
    except Exception:  # noqa: BLE001 - any failure of the tracer: solve point by point
        return None
    return [(p.weights, p.solver, p.variance) for p in points]


class OptimizationEngine:
    """Leverage-aware portfolio optimizer.

    Parameters
    ----------
    analytics : PortfolioAnalytics or None
        Unused for computation (kept for the promised signature); results are measured
        with the inputs of each call.
    fund_map : FundExposureMap
        Exposures of every fund that can appear in ``symbols``.
    assumptions : MarketAssumptions or None
        Exposure-level assumptions (for risk by exposure type and exposure matching);
        the built-in defaults when None.
    """

    def __init__(
        self,
        analytics: Any = None,
        fund_map: FundExposureMap | None = None,
        assumptions: Any = None,
    ):
        self.analytics = analytics
        self.fund_map = fund_map if fund_map is not None else FundExposureMap.default()
        self._assumptions = assumptions
        self._exposure_cov_cache: dict[tuple[int, tuple[str, ...]], np.ndarray | None] = {}

    # ------------------------------------------------------------- plumbing
    @property
    def assumptions(self):
        if self._assumptions is None:
            from core.assumptions import MarketAssumptions

            self._assumptions = MarketAssumptions.default()
        return self._assumptions

    def _exposure_covariance(self, codes: list[str]) -> np.ndarray | None:
        assumptions = self.assumptions
        key = (id(assumptions), tuple(codes))
        if key not in self._exposure_cov_cache:  # built with pandas: once per type list
            try:
                cov_x = assumptions.covariance(codes).loc[codes, codes].to_numpy(dtype=float)
            except Exception:  # noqa: BLE001 - a missing assumption only drops a breakdown
                cov_x = None
            if len(self._exposure_cov_cache) > 16:
                self._exposure_cov_cache.clear()
            self._exposure_cov_cache[key] = cov_x
        return self._exposure_cov_cache[key]

    def _form(self, symbols, constraints, mu=None) -> LinearForm:
        return linear_form(symbols, constraints, self.fund_map, expected_returns=mu)

    def build_exposure_constraints(
        self, weights: Any, symbols: Sequence[str], constraints: OptimizationConstraints
    ) -> list[Any]:
        """cvxpy constraints on a weight variable for ``constraints`` (exposure-aware).

        ``weights`` is a cvxpy Variable of length ``len(symbols)`` (fully invested) or
        ``len(symbols) + 1`` (last entry cash) when the constraints allow cash.
        """
        form = self._form(upper_symbols(symbols), constraints)
        return build_constraint_list(weights, form, constraints)

    def _result(
        self,
        raw: RawSolution,
        form: LinearForm,
        objective: ObjectiveType | str,
        constraints: OptimizationConstraints,
        mu: np.ndarray | None,
        cov: np.ndarray,
        rf: float,
        repairs: list[str],
        t_start: float,
        message: str = "",
    ) -> OptimizationResult:
        n = form.n_funds
        v = np.asarray(raw.v, dtype=float)
        v = np.where(np.abs(v) < 1e-13, 0.0, v)
        w = v[:n]
        cash = float(v[n]) if form.has_cash else 0.0
        violations = form.violations(v, CHECK_TOL)
        if constraints.max_turnover is not None:
            from core.optimization.general import current_weight_vector

            turnover = float(np.abs(w - current_weight_vector(form, constraints)).sum())
            if turnover > constraints.max_turnover + CHECK_TOL:
                violations.append(f"turnover {turnover:.4%} exceeds {constraints.max_turnover:.4%}")
        if constraints.max_total_notional is not None:
            notional = float(np.abs(w) @ form.notionals)
            if notional > constraints.max_total_notional + CHECK_TOL:
                violations.append(
                    f"total notional {notional:.4%} exceeds {constraints.max_total_notional:.4%}"
                )
        from core.analytics import PortfolioAnalytics, exposure_contributions

        mu_eff = mu if mu is not None else np.zeros(n)
        # the inputs were checked (and repaired) by _inputs: not again for every result
        analytics = PortfolioAnalytics._from_checked(mu_eff, cov, form.symbols, self.fund_map, rf)
        vol = analytics.volatility(w)
        exp_ret = analytics.expected_return(w, cash=cash) if mu is not None else float("nan")
        sharpe = analytics.sharpe_ratio(w, cash=cash) if mu is not None else float("nan")
        if form.calculator is not None:  # the form's, over the types the funds carry
            calc = form.calculator.carried()
        else:
            calc = ExposureCalculator(self.fund_map, form.symbols)
        exposures = calc.portfolio_exposures(w)
        by_group = calc.exposure_by_group(w)
        if cash:
            exposures["CASH_TBILL"] = exposures.get("CASH_TBILL", 0.0) + cash
            by_group["cash"] = by_group.get("cash", 0.0) + cash
        has_weight = bool(np.abs(w).sum() > 0)
        codes = calc.exposure_types
        cov_x = self._exposure_covariance(codes) if codes else None
        if cov_x is not None:  # the assumptions' covariance, checked when they were loaded
            exp_rc = exposure_contributions(
                w, calc.matrix, cov_x, cov, list(codes), sigma_w=analytics._sigma_w(w)
            )
        else:
            exp_rc = pd.Series(dtype=float)
        ok = raw.status == "optimal" and not violations
        if violations:
            message = (
                "The solver's answer breaks constraints: " + "; ".join(violations[:5])
                + ". It is not used; loosen the constraints or report this problem."
            )  # fmt: skip
        elif not message:
            message = f"Optimal ({raw.solver})"
        return OptimizationResult(
            weights=pd.Series(w, index=symbol_index(form.symbols)),
            objective=objective,
            success=ok,
            message=message,
            cash_weight=cash,
            objective_value=raw.objective_value,
            expected_return=exp_ret,
            expected_volatility=vol,
            sharpe_ratio=sharpe,
            risk_free_rate=rf,
            exposures=exposures,
            exposures_by_group=by_group,
            total_notional=float(np.abs(w) @ form.notionals),
            effective_assets=analytics.effective_number_of_assets(w) if has_weight else np.nan,
            concentration_ratio=analytics.concentration_ratio(w) if has_weight else np.nan,
            diversification_ratio=analytics.diversification_ratio(w),
            risk_contributions=analytics.risk_contributions(w),
            exposure_risk_contributions=exp_rc,
            solver=raw.solver,
            status=raw.status,
            solve_time=time.perf_counter() - t_start,
            fallbacks=list(raw.fallbacks),
            repairs=repairs,
            constraint_violations=violations,
            details=dict(raw.extra),
        )

    def _inputs(self, symbols, expected_returns, covariance_matrix, constraints):
        symbols = upper_symbols(symbols)
        if not symbols:
            raise ValidationError("no funds to optimize: add holdings or funds", field="symbols")
        if len(set(symbols)) != len(symbols):
            dup = sorted({s for s in symbols if symbols.count(s) > 1})
            raise ValidationError(f"duplicate symbols: {', '.join(dup)}", field="symbols")
        mu = (
            None
            if expected_returns is None
            else _vector(expected_returns, symbols, "expected returns")
        )
        cov, repairs = prepare_covariance(_matrix(covariance_matrix, symbols), symbols)
        constraints = constraints if constraints is not None else OptimizationConstraints()
        for r in repairs:
            warnings.warn(r, StackOptWarning, stacklevel=3)
        return symbols, mu, cov, constraints, repairs

    # ------------------------------------------------------- mean-variance
    def optimize_mean_variance(
        self,
        symbols: Sequence[str],
        expected_returns: Any,
        covariance_matrix: Any,
        constraints: OptimizationConstraints | None = None,
        objective: ObjectiveType | str = ObjectiveType.MAX_SHARPE,
        risk_free_rate: float = 0.02,
        *,
        benchmark_weights: Any = None,
    ) -> OptimizationResult:
        """Mean-variance family: max Sharpe, min volatility (optionally at a target
        return), max return (optionally at a target volatility), max diversification,
        min tracking error to ``benchmark_weights``.

        Raises
        ------
        InfeasibleError
            The constraints admit no portfolio (the message names the conflict), or no
            feasible portfolio beats the risk-free rate (max Sharpe).
        SolverError
            Every solver failed.
        """
        t0 = time.perf_counter()
        objective = ObjectiveType(objective)
        if objective is ObjectiveType.RISK_PARITY:
            return self.optimize_risk_parity(symbols, covariance_matrix, constraints)
        symbols, mu, cov, constraints, repairs = self._inputs(
            symbols, expected_returns, covariance_matrix, constraints
        )
        if mu is None and objective in (
            ObjectiveType.MAX_SHARPE,
            ObjectiveType.MAX_RETURN,
        ):
            raise ValidationError(
                f"{objective.label} needs expected returns", field="expected_returns"
            )
        if constraints.target_return is not None and mu is None:
            raise ValidationError("a target return needs expected returns", field="target_return")
        form = self._form(
            symbols, constraints, mu if constraints.target_return is not None else None
        )
        if objective is ObjectiveType.MAX_SHARPE:
            _refuse_riskless_excess(form, mu, cov, risk_free_rate)
            raw = mv.max_sharpe(form, mu, cov, risk_free_rate, constraints)
        elif objective is ObjectiveType.MIN_VOLATILITY:
            if constraints.target_volatility is not None:
                raise ValidationError(
                    "Min volatility with a volatility target is contradictory: clear the "
                    "target or choose Max return",
                    field="target_volatility",
                )
            raw = mv.min_volatility(form, cov, constraints)
        elif objective is ObjectiveType.MAX_RETURN:
            raw = mv.max_return(form, mu, cov, constraints)
        elif objective is ObjectiveType.MAX_DIVERSIFICATION:
            raw = mv.max_diversification(form, cov, constraints)
        elif objective is ObjectiveType.MIN_TRACKING_ERROR:
            if benchmark_weights is None:
                raise ValidationError(
                    "Min tracking error needs benchmark weights (or use optimize_exposures "
                    "to track an exposure profile)",
                    field="benchmark_weights",
                )
            b = _vector(
                pd.Series(benchmark_weights).reindex(symbols).fillna(0.0), symbols, "benchmark"
            )
            _, cov_v = mv.extend(form, np.zeros(len(symbols)), cov, 0.0)
            b_v = np.append(b, 0.0) if form.has_cash else b
            raw = mv.solve_quadratic(form, cov_v, -cov_v @ b_v, constraints)
            raw.objective_value = float(2 * raw.objective_value + b_v @ cov_v @ b_v)
        else:  # pragma: no cover - enum is exhaustive
            raise ValidationError(f"unknown objective {objective}")
        return self._result(raw, form, objective, constraints, mu, cov, risk_free_rate, repairs, t0)

    # ------------------------------------------------------------ frontier
    def efficient_frontier(
        self,
        symbols: Sequence[str],
        expected_returns: Any,
        covariance_matrix: Any,
        constraints: OptimizationConstraints | None = None,
        n_points: int = 50,
        risk_free_rate: float = 0.02,
        *,
        exclude_leveraged: bool = False,
        label: str = "",
    ) -> Iterator[FrontierPoint]:
        """Yield frontier points one at a time, from min volatility to max return.

        Each point minimises volatility at a target return on a grid evenly spaced
        between the min-volatility return and the max attainable return. On the fast
        path the whole frontier is traced exactly as corner portfolios
        (:func:`~core.optimization.cla.frontier_path`) and each point is interpolated
        on its segment and KKT-checked (solver ``"critical_line"``); when that is not
        possible (turnover, transaction costs, a failure of the tracer) each point is
        solved on its own, warm-started from the previous one. The caller may stop
        iterating at any time. ``exclude_leveraged`` pins every fund with notional >
        100% to zero, to show what leverage buys.
        """
        symbols, mu, cov, constraints, _ = self._inputs(
            symbols, expected_returns, covariance_matrix, constraints
        )
        if mu is None:
            raise ValidationError("a frontier needs expected returns", field="expected_returns")
        if exclude_leveraged:
            bounds = dict(constraints.fund_bounds)
            for s in symbols:
                if self.fund_map[s].is_leveraged:
                    bounds[s] = (0.0, 0.0)
            constraints = constraints.copy(fund_bounds=bounds)
        if constraints.target_return is not None or constraints.target_volatility is not None:
            constraints = constraints.copy(target_return=None, target_volatility=None)
        form = self._form(symbols, constraints)
        labels = symbol_index(symbols)  # built once: every point's weights share it
        mu_v, cov_v = mv.extend(form, mu, cov, 0.0)
        if form.has_cash:
            mu_v[-1] = risk_free_rate
        calc_notional = form.notionals

        def points(start: int, V: np.ndarray, solvers: list[str], variances=None):
            """FrontierPoints from the variables of points ``start, start + 1, ...``
            (rows of ``V``); the path's points carry their variances (cash has none)."""
            # round-off just outside a bound (-1e-11 for a long-only fund) is snapped back
            clipped = np.clip(V, form.lb, form.ub)
            V = np.where(np.abs(V - clipped) < 1e-9, clipped, V)
            W = V[:, : form.n_funds]
            if variances is None:
                variances = np.einsum("ij,ij->i", W @ cov, W)
            vols = np.sqrt(np.maximum(variances, 0.0)).tolist()
            rets = (V @ mu_v).tolist()
            notionals = (np.abs(W) @ calc_notional).tolist()
            cash = V[:, -1].tolist() if form.has_cash else [0.0] * len(V)
            for k, (ret, vol) in enumerate(zip(rets, vols, strict=True)):
                yield FrontierPoint(
                    weights=pd.Series(W[k], index=labels, copy=False),
                    expected_return=ret,
                    volatility=vol,
                    sharpe_ratio=(ret - risk_free_rate) / vol if vol > 0 else float("nan"),
                    total_notional=notionals[k],
                    cash_weight=cash[k],
                    index=start + k,
                    label=label,
                    solver=solvers[k],
                )

        if not form.general_only:
            traced = _frontier_by_path(form, mu_v, cov_v, n_points)
            if traced is not None:
                V = np.array([v for v, _, _ in traced])
                variances = np.array([var for _, _, var in traced])
                yield from points(0, V, [solver for _, solver, _ in traced], variances)
                return
        r_max, _ = mv.max_linear(form, mu_v)
        first = mv.min_volatility(form, cov, constraints)
        r_min = float(mu_v @ first.v)
        targets = np.linspace(r_min, r_max, max(int(n_points), 2))
        warm = None  # the first point has no target-return row, so it cannot seed the rest
        for i, target in enumerate(targets):
            if i == 0:
                raw = first
            else:
                raw = mv.solve_quadratic(
                    form, cov_v, np.zeros(form.n_vars), constraints, warm_start=warm,
                    extra_ub=(-mu_v[None, :], np.array([-target]), [f"target return {target:.2%}"]),
                )  # fmt: skip
                warm = raw.extra.get("qp_solution")
            yield from points(i, raw.v[None, :], [raw.solver])

    def frontier_with_and_without_leverage(
        self, symbols, expected_returns, covariance_matrix, constraints=None, n_points=50,
        risk_free_rate=0.02,
    ) -> Iterator[FrontierPoint]:  # fmt: skip
        """Both frontiers: points labelled 'with leverage' then 'without leverage'."""
        yield from self.efficient_frontier(
            symbols, expected_returns, covariance_matrix, constraints, n_points,
            risk_free_rate, label="with leverage",
        )  # fmt: skip
        if any(not self.fund_map[s].is_leveraged for s in symbols):
            try:
                yield from self.efficient_frontier(
                    symbols, expected_returns, covariance_matrix, constraints, n_points,
                    risk_free_rate, exclude_leveraged=True, label="without leverage",
                )  # fmt: skip
            except InfeasibleError:
                return  # without leveraged funds the constraints cannot be met: no curve

    # -------------------------------------------------------- black-litterman
    def black_litterman(
        self,
        symbols: Sequence[str],
        market_weights: Any,
        covariance_matrix: Any,
        views: Sequence[MarketView],
        risk_aversion: float = 2.5,
        *,
        tau: float = 0.05,
        risk_free_rate: float = 0.0,
        with_covariance: bool = True,
    ):
        """Full Black-Litterman posterior over funds (mean and covariance).

        Views may name fund symbols or exposure type codes. A view on an exposure type
        is a view on one unit of that exposure; it becomes a view on funds through the
        exposure matrix (a fund's return is its exposures' returns), so it moves every
        fund that carries the exposure.
        """
        return self._black_litterman(
            upper_symbols(symbols), market_weights, covariance_matrix, views, risk_aversion,
            tau, risk_free_rate, with_covariance,
        )  # fmt: skip

    def _black_litterman(
        self, symbols, market_weights, covariance_matrix, views, risk_aversion, tau,
        risk_free_rate, with_covariance,
    ):  # fmt: skip
        """:meth:`black_litterman` on upper-case ``symbols``."""
        from core.optimization import black_litterman as bl

        if isinstance(market_weights, Mapping | pd.Series):  # a fund not named weighs 0
            given = (
                market_weights
                if isinstance(market_weights, pd.Series)
                else pd.Series(dict(market_weights), dtype=float)
            )
            # one per fund, in order (compared as indexes first: no strings made)
            if given.index.equals(symbol_index(symbols)) or (upper_symbols(given.index) == symbols):
                market_weights = given.to_numpy(dtype=float)
            else:
                held = dict(zip(upper_symbols(given.index), given.tolist(), strict=True))
                market_weights = [held.get(s, 0.0) for s in symbols]
        w_mkt = _vector(market_weights, symbols, "market weights")
        if w_mkt.sum() <= 0:
            raise ValidationError(
                "market weights must sum to a positive amount", field="market_weights"
            )
        w_mkt = w_mkt / w_mkt.sum()
        # Sigma w_mkt comes from the pass over the matrix that identifies it
        cov, _, cov_w = prepare_covariance_times(
            _matrix(covariance_matrix, symbols), symbols, w_mkt
        )
        prior = bl.implied_equilibrium_returns(
            cov, w_mkt, risk_aversion, risk_free_rate, checked=True, product=cov_w
        )
        types = self.fund_map.exposure_types
        named = {str(a).strip().upper() for v in views for a in v.assets}
        # (a name that is neither a fund nor a type is refused by views_to_matrices)
        if not any(a in types for a in named):
            P, Q = bl.views_to_matrices(list(views), symbols)  # views on funds only
        else:  # a view on an exposure type is a view through the exposure matrix
            calc = ExposureCalculator(self.fund_map, symbols)
            P, Q = bl.views_to_matrices(list(views), symbols, calc.matrix, calc.exposure_types)
        conf = np.array([v.confidence for v in views]) if views else None
        post = bl.black_litterman_posterior(
            prior, cov, P, Q, confidences=conf, tau=tau, with_covariance=with_covariance,
            checked=True,
        )  # fmt: skip
        return post, prior

    def black_litterman_returns(
        self,
        symbols: Sequence[str],
        market_weights: Any,
        covariance_matrix: Any,
        views: Sequence[MarketView],
        risk_aversion: float = 2.5,
        *,
        tau: float = 0.05,
        risk_free_rate: float = 0.0,
    ) -> pd.Series:
        """Posterior expected returns (annual) after the views; see :meth:`black_litterman`."""
        symbols = upper_symbols(symbols)
        post, _ = self._black_litterman(
            symbols, market_weights, covariance_matrix, views, risk_aversion, tau,
            risk_free_rate, False,
        )  # fmt: skip
        return pd.Series(post.mean, index=symbol_index(symbols))

    # ------------------------------------------------------- exposure matching
    def _fund_model(self, symbols: list[str]):
        """Expected returns (with cash rate) and covariance of funds from the assumptions."""
        a = self.assumptions
        mu = a.fund_expected_returns(self.fund_map, symbols) + a.cash_rate
        cov = a.fund_covariance(self.fund_map, symbols)
        return mu.reindex(symbols).to_numpy(float), cov.loc[symbols, symbols].to_numpy(float)

    def optimize_exposures(
        self,
        symbols: Sequence[str],
        target_exposures: Mapping[str, float],
        constraints: OptimizationConstraints | None = None,
        minimize_cost: bool = True,
        *,
        expected_returns: Any = None,
        covariance_matrix: Any = None,
        risk_free_rate: float | None = None,
    ) -> OptimizationResult:
        """Fund weights that best deliver a target exposure profile, cheapest first.

        Stage 1 minimises the risk-weighted exposure tracking error
        ``(E w - x*)' Sigma_x (E w - x*)`` under the constraints. Every minimiser has the
        same ``L' E w`` (``Sigma_x = L L'``), so stage 2 is an exact linear program: the
        cheapest (expense + financing) weights with that same ``L' E w``. LP optima are
        vertices, which also keeps the number of funds small.

        ``target_exposures`` maps exposure type codes to fractions (``{"US_EQUITY": 1.0,
        "UST_10Y": 0.6}`` is 100% equity plus 60% Treasuries).
        """
        t0 = time.perf_counter()
        symbols = upper_symbols(symbols)
        constraints = constraints if constraints is not None else OptimizationConstraints()
        target = {str(k).upper(): float(v) for k, v in target_exposures.items()}
        unknown = [k for k in target if k not in self.fund_map.exposure_types]
        if unknown:
            raise ValidationError(
                f"target names unknown exposure types: {', '.join(unknown)}",
                field="target_exposures",
            )
        form = self._form(symbols, constraints)
        codes = list(form.exposure_types)
        for k in target:
            if k not in codes:
                codes.append(k)
        calc = ExposureCalculator(self.fund_map, symbols, codes)
        E = calc.matrix
        cov_x = self._exposure_covariance(codes)
        if cov_x is None:
            raise ValidationError(
                "exposure matching needs market assumptions for: " + ", ".join(codes),
                field="assumptions",
            )
        x_star = np.array([target.get(c, 0.0) for c in codes])
        ev, vecs = np.linalg.eigh(0.5 * (cov_x + cov_x.T))
        keep = ev > 1e-12 * max(ev.max(), 1e-300)
        L = vecs[:, keep] * np.sqrt(ev[keep])  # cov_x = L L'
        M = L.T @ E  # (r, n): the risk coordinates of the funds' exposures
        n = len(symbols)
        nv = form.n_vars
        M_v = np.hstack([M, np.zeros((M.shape[0], nv - n))])
        P = M_v.T @ M_v
        q = -M_v.T @ (L.T @ x_star)
        raw = mv.solve_quadratic(form, P, q, constraints)
        te2 = float(np.sum((M_v @ raw.v - L.T @ x_star) ** 2))
        if minimize_cost and not form.general_only:
            from scipy.optimize import linprog

            z = M_v @ raw.v
            slack = 1e-9 + 1e-7 * np.abs(z)
            cost = np.append(calc.annual_costs, np.zeros(nv - n))
            A_ub = (
                np.vstack([form.A_ub, M_v, -M_v]) if form.A_ub.shape[0] else np.vstack([M_v, -M_v])
            )
            b_ub = np.concatenate([form.b_ub, z + slack, -z + slack])
            lp = linprog(
                cost, A_ub=A_ub, b_ub=b_ub, A_eq=form.A_eq, b_eq=form.b_eq,
                bounds=list(zip(form.lb, form.ub, strict=True)), method="highs",
            )  # fmt: skip
            if lp.status == 0:
                raw = RawSolution(
                    v=np.asarray(lp.x), solver=f"{raw.solver} + HiGHS (cheapest)",
                    status="optimal", objective_value=te2, fallbacks=raw.fallbacks,
                )  # fmt: skip
            else:
                raw.fallbacks.append(f"cheapest-funds stage skipped: {lp.message}")
        raw.objective_value = te2
        if expected_returns is None or covariance_matrix is None:
            mu, cov = self._fund_model(symbols)
        else:
            mu = _vector(expected_returns, symbols, "expected returns")
            cov, _ = prepare_covariance(_matrix(covariance_matrix, symbols), symbols)
        rf = self.assumptions.cash_rate if risk_free_rate is None else risk_free_rate
        result = self._result(raw, form, "exposure_matching", constraints, mu, cov, rf, [], t0)
        result.details["target_exposures"] = pd.Series(x_star, index=codes)
        result.details["exposure_tracking_error"] = float(np.sqrt(max(te2, 0.0)))
        if result.success:
            result.message = (
                f"Exposure tracking error {np.sqrt(max(te2, 0.0)):.2%} a year ({raw.solver})"
            )
        return result

    # ----------------------------------------------------------- risk parity
    def optimize_risk_parity(
        self,
        symbols: Sequence[str],
        covariance_matrix: Any,
        constraints: OptimizationConstraints | None = None,
        use_leverage: bool = True,
        *,
        risk_budgets: Mapping[str, float] | None = None,
        method: str = "erc",
        by: str = "fund",
        expected_returns: Any = None,
        risk_free_rate: float = 0.02,
    ) -> OptimizationResult:
        """Risk parity: equal (or budgeted) risk contributions, or hierarchical risk parity.

        Parameters
        ----------
        risk_budgets : mapping, optional
            Fund symbol (``by='fund'``) or exposure type code (``by='exposure'``) -> budget;
            normalised to sum to one. Default: equal.
        method : {'erc', 'hrp'}
            Equal risk contribution / risk budgeting (Newton on the log-barrier form), or
            hierarchical risk parity (``by='fund'`` only).
        by : {'fund', 'exposure'}
            ``'exposure'`` gives each exposure type (equity, Treasuries, gold, trend ...)
            its budget of risk, then finds the fund weights delivering that exposure mix.
        use_leverage : bool
            With ``constraints.target_volatility`` set, scale the risk-parity exposure mix
            to that volatility and deliver it through leveraged funds (within
            ``max_total_notional``), instead of holding an unlevered, low-volatility mix.
        """
        from core.optimization import risk_parity as rp

        t0 = time.perf_counter()
        symbols, mu, cov, constraints, repairs = self._inputs(
            symbols, expected_returns, covariance_matrix, constraints
        )
        if method not in ("erc", "hrp"):
            raise ValidationError("method must be 'erc' or 'hrp'", field="method")
        if by not in ("fund", "exposure"):
            raise ValidationError("by must be 'fund' or 'exposure'", field="by")
        target_vol = constraints.target_volatility
        if by == "exposure":
            calc = ExposureCalculator(self.fund_map, symbols)
            codes = [c for c in calc.exposure_types if c != "CASH_TBILL"]
            cov_x = self._exposure_covariance(codes)
            if cov_x is None or not codes:
                raise ValidationError("risk parity by exposure needs exposure assumptions")
            b = None
            if risk_budgets:
                b = np.array([float(risk_budgets.get(c, 0.0)) for c in codes])
            x = rp.exposure_risk_budget_targets(cov_x, b)
            x = x / x.sum()
            if use_leverage and target_vol is not None:
                x = x * target_vol / np.sqrt(x @ cov_x @ x)
            result = self.optimize_exposures(
                symbols, dict(zip(codes, x, strict=True)),
                constraints.copy(target_volatility=None), True,
                expected_returns=mu, covariance_matrix=cov, risk_free_rate=risk_free_rate,
            )  # fmt: skip
            result.objective = ObjectiveType.RISK_PARITY
            result.details["method"] = "risk parity by exposure type"
            return result
        plain = (
            constraints
            if constraints.target_volatility is None
            else constraints.copy(target_volatility=None)
        )
        form = self._form(symbols, plain)
        budgets = None
        if risk_budgets:
            budgets = np.array([float(risk_budgets.get(s, 0.0)) for s in symbols])
        if method == "hrp":
            from core.optimization.hierarchical import hrp_weights

            # HRP allocates by bisection; per-fund bounds are applied by capping and
            # redistributing (the other constraints are checked on the result as usual)
            n_funds = form.n_funds
            w = hrp_weights(
                cov, min_weight=form.lb[:n_funds], max_weight=form.ub[:n_funds], names=symbols
            )
            raw = RawSolution(
                v=self._with_cash(w, form), solver="HRP (recursive bisection)", status="optimal"
            )
        else:
            # prepare_covariance made cov symmetric, finite and PSD: no second scan
            sol = rp.risk_budget_weights(cov, budgets, names=symbols, validated=True)
            v = self._with_cash(np.asarray(sol.weights), form)
            raw = RawSolution(
                v=v,
                solver=f"risk budgeting ({sol.method})",
                # rounding can stop Newton/CCD just short of 1e-12; 1e-8 on budgets is exact
                status="optimal" if sol.converged or sol.max_budget_error < 1e-8 else "failed",
            )
            if form.violations(v, CHECK_TOL) or form.general_only:
                raw = self._constrained_risk_budget(form, cov, constraints, budgets)
        if use_leverage and target_vol is not None:
            w = raw.v[: form.n_funds]
            vol = float(np.sqrt(w @ cov @ w))
            calc = ExposureCalculator(self.fund_map, symbols)
            x = calc.matrix @ w * (target_vol / vol)
            result = self.optimize_exposures(
                symbols, dict(zip(calc.exposure_types, x, strict=True)),
                constraints.copy(target_volatility=None), True,
                expected_returns=mu if mu is not None else None,
                covariance_matrix=cov if mu is not None else None, risk_free_rate=risk_free_rate,
            )  # fmt: skip
            result.objective = ObjectiveType.RISK_PARITY
            result.details["method"] = f"{method} levered to {target_vol:.1%} volatility"
            return result
        return self._result(
            raw, form, ObjectiveType.RISK_PARITY, constraints, mu, cov, risk_free_rate, repairs, t0
        )

    @staticmethod
    def _with_cash(w: np.ndarray, form: LinearForm) -> np.ndarray:
        return np.append(w, 0.0) if form.has_cash else np.asarray(w, dtype=float)

    def _constrained_risk_budget(self, form, cov, constraints, budgets) -> RawSolution:
        """Risk budgeting under linear constraints: the log-barrier form with every
        right-hand side scaled by ``sum(y)`` (constraints on ``w = y / sum y`` are
        homogeneous in ``y``), solved by a conic solver."""
        from core.optimization.general import CONIC_CHAIN, _cp, solve_problem

        cp = _cp()
        n = form.n_funds
        b = np.full(n, 1.0 / n) if budgets is None else budgets / budgets.sum()
        active = b > 0
        y = cp.Variable(form.n_vars)
        total = cp.sum(y)
        ev, vecs = np.linalg.eigh(cov)
        L = vecs * np.sqrt(np.clip(ev, 0, None))
        cons = build_constraint_list(y, form, constraints, scale=total)
        objective = 0.5 * cp.sum_squares(L.T @ y[:n]) - b[active] @ cp.log(y[:n][active])

        def make():
            return cp.Problem(cp.Minimize(objective), cons)

        def recover():
            val = np.asarray(y.value, dtype=float)
            return val / val.sum()

        return solve_problem(
            make, chain=CONIC_CHAIN, recover=recover, form=form,
            infeasible_message="No risk-parity portfolio satisfies the constraints",
        )  # fmt: skip
