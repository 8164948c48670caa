"""A mean-variance problem built once and re-solved with new estimates at each rebalance.

A walk-forward backtest solves the same problem every month: same funds, same
constraints, new covariance (and expected returns). :class:`PreparedProblem` translates
the constraints to matrices once (:func:`core.optimization.constraints.linear_form`),
keeps the constraint rows of the QP fixed, and at each date only swaps in the new
Hessian (and, for max Sharpe, the new normalisation row), then calls
:func:`core.optimization.qp.solve_qp` warm-started from last month's solution. That is
"compiled once, re-solved with new parameters" on the fast dense path; cvxpy with the
covariance as a Parameter is slower than rebuilding (``../shared/PERFORMANCE.md``), so
it is not used here.

Max Sharpe and max diversification use the exact homogenised form of
:func:`core.optimization.mean_variance.homogenised` (variables ``u = [y, kappa]``,
``v = y / kappa``), with the same rows built the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from core.errors import ValidationError
from core.exposures import FundExposureMap
from core.optimization.constraints import LinearForm, OptimizationConstraints, linear_form
from core.optimization.mean_variance import homogenised_rows, needs_general_path
from core.optimization.qp import QPProblem, QPSolution, solve_qp
from core.optimization.results import ObjectiveType

__all__ = ["FAST_OBJECTIVES", "PreparedProblem"]

#: Objectives the prepared fast path solves.
FAST_OBJECTIVES = (
    ObjectiveType.MIN_VOLATILITY,
    ObjectiveType.MAX_SHARPE,
    ObjectiveType.MAX_DIVERSIFICATION,
)


class PreparedProblem:
    """Constraint matrices of one universe, re-solved with new estimates.

    Parameters
    ----------
    symbols : sequence of str, length n
        The funds, in the order of every vector passed to :meth:`solve`.
    constraints : OptimizationConstraints
        Must be expressible on the fast path (no turnover limit, no transaction costs in
        the objective, no volatility target, no target return: :meth:`supports`).
    fund_map : FundExposureMap
    objective : ObjectiveType or str
        One of :data:`FAST_OBJECTIVES`.

    Attributes
    ----------
    form : LinearForm
        The constraints as matrices over ``v = [w_1..w_n, (cash)]``.
    n_solves : int
        Solves so far.
    solve_seconds : float
        Wall time spent in :func:`solve_qp` so far.
    warm_starts : int
        Solves that started from the previous solution.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        constraints: OptimizationConstraints,
        fund_map: FundExposureMap,
        objective: ObjectiveType | str = ObjectiveType.MIN_VOLATILITY,
    ):
        self.objective = ObjectiveType(objective)
        if self.objective not in FAST_OBJECTIVES:
            raise ValidationError(
                f"{self.objective.label} has no prepared fast path; use the engine",
                field="objective",
            )
        if not self.supports(constraints):
            raise ValidationError(
                "these constraints need the general (cvxpy) path: turnover limits, "
                "transaction costs in the objective, volatility or return targets",
                field="constraints",
            )
        self.symbols = [str(s).upper() for s in symbols]
        self.constraints = constraints
        self.form: LinearForm = linear_form(self.symbols, constraints, fund_map)
        if needs_general_path(self.form, constraints):
            raise ValidationError(
                "these constraints need the general (cvxpy) path: "
                + ", ".join(self.form.general_only),
                field="constraints",
            )
        self._warm: QPSolution | None = None
        self.n_solves = 0
        self.warm_starts = 0
        self.solve_seconds = 0.0
        if self.objective is ObjectiveType.MIN_VOLATILITY:
            self._build_plain()
        else:
            self._build_homogenised()

    # ----------------------------------------------------------------- building
    @staticmethod
    def supports(constraints: OptimizationConstraints) -> bool:
        """True if ``constraints`` can be solved on the prepared fast path."""
        return (
            constraints.max_turnover is None
            and not constraints.transaction_cost_bps
            and constraints.target_volatility is None
            and constraints.target_return is None
        )

    def _build_plain(self) -> None:
        f = self.form
        self._rows = {
            "A_eq": f.A_eq, "b_eq": f.b_eq, "A_ub": f.A_ub, "b_ub": f.b_ub,
            "lb": f.lb, "ub": f.ub, "row_names": [*f.eq_names, *f.ub_names],
        }  # fmt: skip
        self._q = np.zeros(f.n_vars)

    def _build_homogenised(self) -> None:
        """Rows of ``min y'Σy  s.t.  c'y = 1, A (y, kappa) homogeneous, kappa >= 0``."""
        what = "excess return" if self.objective is ObjectiveType.MAX_SHARPE else "diversification"
        self._rows = homogenised_rows(self.form, what)
        self._A_eq = self._rows["A_eq"]  # the last row (c) is filled in at each solve, on a copy
        self._q = np.zeros(self.form.n_vars + 1)

    # ------------------------------------------------------------------ solving
    def _hessian(self, cov: np.ndarray) -> np.ndarray:
        f = self.form
        n = f.n_funds
        size = self._q.size
        P = np.zeros((size, size))
        P[:n, :n] = cov
        return P

    def solve(
        self, covariance: np.ndarray, excess_returns: np.ndarray | None = None
    ) -> tuple[np.ndarray, float]:
        """Optimal weights for new estimates.

        Parameters
        ----------
        covariance : ndarray, shape (n, n)
            Annual covariance of the funds (symmetric PSD).
        excess_returns : ndarray, shape (n,), optional
            Annual expected returns in excess of cash; required for max Sharpe.

        Returns
        -------
        (ndarray of shape (n,), float)
            Fund weights and the explicit cash weight (0 when cash is not allowed).

        Raises
        ------
        InfeasibleError
            The constraints admit no portfolio, or (max Sharpe) no feasible portfolio has
            a positive expected excess return.
        SolverError
            No QP backend produced a verified answer.
        """
        f = self.form
        n = f.n_funds
        cov = np.asarray(covariance, dtype=float)
        if cov.shape != (n, n):
            raise ValidationError(f"covariance must be {n}x{n}, got {cov.shape}")
        cov = 0.5 * (cov + cov.T)
        if self.objective is ObjectiveType.MIN_VOLATILITY:
            c = None
        elif self.objective is ObjectiveType.MAX_SHARPE:
            if excess_returns is None:
                raise ValidationError("max Sharpe needs expected excess returns")
            c = np.asarray(excess_returns, dtype=float)
        else:
            c = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        rows = dict(self._rows)
        if c is not None:
            A_eq = self._A_eq.copy()  # a fresh array: solved problems must not change later
            A_eq[-1, :n] = c  # cash has zero excess return and zero volatility
            rows["A_eq"] = A_eq
        problem = QPProblem(P=self._hessian(cov), q=self._q, **rows)
        warm = self._warm
        t0 = time.perf_counter()
        try:
            sol = solve_qp(problem, warm_start=warm)
        except Exception:
            self._warm = None  # a failed month must not seed the next one
            raise
        finally:
            self.solve_seconds += time.perf_counter() - t0
            self.n_solves += 1
        if warm is not None:
            self.warm_starts += 1
        self._warm = sol
        x = np.asarray(sol.x, dtype=float)
        if c is not None:
            kappa = float(x[-1])
            v = x[:-1] / kappa
        else:
            v = x
        v = np.where(np.abs(v) < 1e-13, 0.0, v)
        cash = float(v[n]) if f.has_cash else 0.0
        return v[:n].copy(), cash

    @property
    def last_solution(self) -> QPSolution | None:
        """The QP answer of the last successful :meth:`solve` (its solver and fallbacks)."""
        return self._warm

    def reset(self) -> None:
        """Forget the warm start (after a jump in the data, or to time cold solves)."""
        self._warm = None
