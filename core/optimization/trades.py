"""Orders that move a portfolio to target weights: whole shares, sells first, exposure-aware.

Units
-----
Target weights are FRACTIONS of the portfolio's TOTAL value (cash included), exactly as
:class:`~core.optimization.results.OptimizationResult` and :meth:`Portfolio.weights`
report them. Quantities are shares, prices and values are in the portfolio currency.

How the orders are found
------------------------
1. The target is scaled down if it needs more cash than exists (weights plus the cash
   buffer above 100%); a warning says so.
2. Positions whose drift from target is inside their rebalancing band are not traded.
3. Funds whose target is 0 are sold completely ("exit").
4. Every other fund starts at its target rounded DOWN to a whole lot, so that the
   starting point never needs more cash than the target does.
5. A local search then spends the leftover cash (and repairs any shortfall caused by
   commissions or locked positions) one lot at a time: add a lot, remove a lot, or swap a
   lot of one fund for a lot of another, always taking the move that most reduces

   ``f(w) = || E (w - w_target) ||^2 + lambda * || w - w_target ||^2``

   where ``E`` is the exposure matrix of the fund map (identity without one), so that the
   rounded portfolio is closest in EXPOSURE terms and, among equally close ones, in
   weight terms. A move is allowed only if the cash left after every trade stays at or
   above the cash buffer, and it does not make any notional or exposure cap worse. This
   is PyPortfolioOpt's greedy discrete allocation idea, extended with swaps, existing
   holdings, commissions, caps and exposures.
6. Trades smaller than the minimum trade value are dropped (exits are kept) and step 5 is
   repeated without them.

Orders come out sells first (largest net proceeds first), then buys, so that cash is
never negative at any point when the orders are executed in that order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError, InfeasibleError, StackOptError, ValidationError
from core.exposures import ExposureCalculator, FundExposureMap
from core.optimization.constraints import OptimizationConstraints, linear_form
from core.portfolio import CASH_LABEL, Holding, Portfolio, normalise_symbol

#: Order sides.
SIDES = ("BUY", "SELL")
#: Why a trade is made.
REASONS = ("rebalance", "new position", "exit")

# Tolerances: weights below this are treated as zero; cap checks allow this much slack.
_WEIGHT_TOL = 1e-12
_CAP_TOL = 1e-9


def _finite(value: Any, what: str, field_name: str, *, allow_nan: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValidationError(
            f"{what} must be a number, got {value!r} ({type(value).__name__})", field=field_name
        )
    number = float(value)
    if math.isnan(number) and allow_nan:
        return number
    if not math.isfinite(number):
        raise ValidationError(f"{what} must be a finite number, got {value!r}", field=field_name)
    return number


# --------------------------------------------------------------------------- Trade
@dataclass(frozen=True)
class Trade:
    """One order: buy or sell a number of shares of one fund.

    Parameters
    ----------
    symbol : str
        Ticker; stored stripped and upper case.
    side : {'BUY', 'SELL'}
    quantity : float
        Shares, always positive (the side gives the direction). Whole unless the
        generator ran with ``fractional=True``.
    estimated_price : float
        Price per share the plan was computed with; NaN when unknown (a ticket read
        back from a file that does not carry prices).
    estimated_value : float
        ``quantity * estimated_price``, positive.
    weight_before, weight_after : float
        The fund's weight (fraction of total value) before and after the whole plan.
    reason : {'rebalance', 'new position', 'exit'}
    account : str
        Broker account the order belongs to ('' = the ticket's default account).
    estimated_commission : float
        Commission the plan assumed for this order.
    """

    symbol: str
    side: str
    quantity: float
    estimated_price: float = math.nan
    estimated_value: float = math.nan
    weight_before: float = math.nan
    weight_after: float = math.nan
    reason: str = "rebalance"
    account: str = ""
    estimated_commission: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol.strip():
            raise ValidationError(
                f"a trade needs a symbol (text), got {self.symbol!r}", field="symbol"
            )
        symbol = self.symbol.strip().upper()
        side = self.side.strip().upper() if isinstance(self.side, str) else self.side
        if side not in SIDES:
            raise ValidationError(
                f"{symbol}: side must be 'BUY' or 'SELL', got {self.side!r}", field="side"
            )
        quantity = _finite(self.quantity, f"{symbol}: quantity", "quantity")
        if quantity <= 0:
            raise ValidationError(
                f"{symbol}: quantity {quantity:g} must be positive; the side gives the direction",
                field="quantity",
            )
        for name in ("estimated_price", "estimated_value", "weight_before", "weight_after"):
            object.__setattr__(
                self, name, _finite(getattr(self, name), f"{symbol}: {name}", name, allow_nan=True)
            )
        commission = _finite(
            self.estimated_commission, f"{symbol}: estimated_commission", "estimated_commission"
        )
        if self.reason not in REASONS:
            raise ValidationError(
                f"{symbol}: reason must be one of {', '.join(REASONS)}, got {self.reason!r}",
                field="reason",
            )
        if not isinstance(self.account, str):
            raise ValidationError(f"{symbol}: account must be text", field="account")
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "side", side)
        object.__setattr__(self, "quantity", quantity)
        object.__setattr__(self, "account", self.account.strip())
        object.__setattr__(self, "estimated_commission", commission)

    @property
    def signed_quantity(self) -> float:
        """Shares bought (positive) or sold (negative)."""
        return self.quantity if self.side == "BUY" else -self.quantity

    @property
    def cash_flow(self) -> float:
        """Cash in (sell) or out (buy) including the commission; NaN if unpriced."""
        return -self.signed_quantity * self.estimated_price - self.estimated_commission

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- settings
@dataclass
class TradeSettings:
    """How targets become orders.

    Parameters
    ----------
    fractional : bool
        Trade fractional shares (rounded down to ``fractional_decimals``). Default whole
        shares.
    fractional_decimals : int
        Decimal places of a fractional quantity (4 = 0.0001 share).
    cash_buffer_amount : float
        Cash (currency) kept back and never invested.
    cash_buffer_pct : float
        Cash kept back as a FRACTION of total value (0.02 = 2%). With both set, the
        larger buffer applies.
    min_trade_value : float
        Orders worth less than this are not placed (an exit is always placed).
    band_abs : float or None
        Absolute rebalancing band in weight (0.02 = 2 percentage points).
    band_rel : float or None
        Relative band as a fraction of the target weight (0.25 = 25% of target). With
        both set, a position is traded when its drift exceeds EITHER band (the narrower
        one), as in the common "5/25" rule.
    commission_per_trade, commission_per_share, commission_bps, commission_min : float
        Commission of one order: ``max(commission_min, per_trade + per_share * shares +
        bps / 10,000 * value)``.
    lot_size : int
        Whole-share orders are multiples of this (1 = single shares, 100 = round lots).
    lot_sizes : dict[str, int]
        Per-symbol lot size overriding ``lot_size``.
    weight_drift_penalty : float
        ``lambda`` of the rounding objective: the weight-drift term next to the exposure
        term (ignored without a fund map, where the objective is weight drift alone).
    drift_warning : float
        Residual drift per fund (weight) above which the plan warns.
    """

    fractional: bool = False
    fractional_decimals: int = 4
    cash_buffer_amount: float = 0.0
    cash_buffer_pct: float = 0.0
    min_trade_value: float = 0.0
    band_abs: float | None = None
    band_rel: float | None = None
    commission_per_trade: float = 0.0
    commission_per_share: float = 0.0
    commission_bps: float = 0.0
    commission_min: float = 0.0
    lot_size: int = 1
    lot_sizes: dict[str, int] = field(default_factory=dict)
    weight_drift_penalty: float = 0.1
    drift_warning: float = 0.005

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every setting; raises :class:`ValidationError` naming the field."""
        if not isinstance(self.fractional, bool):
            raise ValidationError("fractional must be true or false", field="fractional")
        if (
            isinstance(self.fractional_decimals, bool)
            or not isinstance(self.fractional_decimals, int | np.integer)
            or not 0 <= int(self.fractional_decimals) <= 8
        ):
            raise ValidationError(
                f"fractional_decimals must be a whole number from 0 to 8, got "
                f"{self.fractional_decimals!r}",
                field="fractional_decimals",
            )
        for name in (
            "cash_buffer_amount",
            "min_trade_value",
            "commission_per_trade",
            "commission_per_share",
            "commission_bps",
            "commission_min",
            "weight_drift_penalty",
            "drift_warning",
        ):
            value = _finite(getattr(self, name), name, name)
            if value < 0:
                raise ValidationError(f"{name} must be 0 or more, got {value:g}", field=name)
            setattr(self, name, value)
        pct = _finite(self.cash_buffer_pct, "cash_buffer_pct", "cash_buffer_pct")
        if not 0 <= pct < 1:
            raise ValidationError(
                f"cash_buffer_pct is a fraction of total value from 0 to 1 (0.02 = 2%), got "
                f"{pct:g}",
                field="cash_buffer_pct",
            )
        self.cash_buffer_pct = pct
        for name in ("band_abs", "band_rel"):
            value = getattr(self, name)
            if value is None:
                continue
            value = _finite(value, name, name)
            if value < 0:
                raise ValidationError(f"{name} must be 0 or more, got {value:g}", field=name)
            if name == "band_abs" and value >= 1:
                raise ValidationError(
                    f"band_abs is a weight (0.02 = 2 points), got {value:g}", field=name
                )
            setattr(self, name, value)
        self.lot_size = self._lot(self.lot_size, "lot_size")
        if not isinstance(self.lot_sizes, Mapping):
            raise ValidationError("lot_sizes must map symbols to lot sizes", field="lot_sizes")
        self.lot_sizes = {
            str(k).strip().upper(): self._lot(v, f"lot_sizes.{k}")
            for k, v in self.lot_sizes.items()
        }

    @staticmethod
    def _lot(value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ValidationError(f"{name} must be a whole number of shares", field=name)
        if not math.isfinite(float(value)) or float(value) < 1 or float(value) != int(value):
            raise ValidationError(
                f"{name} must be a whole number of shares, 1 or more, got {value!r}", field=name
            )
        return int(value)

    def lot_for(self, symbol: str) -> int:
        return self.lot_sizes.get(symbol.upper(), self.lot_size)

    def commission(self, quantity: Any, price: Any) -> Any:
        """Commission of orders of ``quantity`` shares (absolute) at ``price``; 0 for none.

        Works element-wise on arrays of shape (N,).
        """
        q = np.abs(np.asarray(quantity, dtype=float))
        value = q * np.asarray(price, dtype=float)
        raw = (
            self.commission_per_trade
            + self.commission_per_share * q
            + self.commission_bps * 1e-4 * value
        )
        out = np.where(q > 0, np.maximum(raw, self.commission_min), 0.0)
        return float(out) if out.ndim == 0 else out

    @property
    def has_commission(self) -> bool:
        return any(
            v > 0
            for v in (
                self.commission_per_trade,
                self.commission_per_share,
                self.commission_bps,
                self.commission_min,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- plan
@dataclass
class TradePlan:
    """The orders, the portfolio they lead to, and how close that is to the target.

    All weight series are indexed by symbol (every symbol held or targeted) and are
    fractions of total value; ``residual_drift = weights_after - target_weights``.
    """

    trades: list[Trade]
    portfolio_before: Portfolio
    portfolio_after: Portfolio
    prices: pd.Series
    requested_weights: pd.Series
    target_weights: pd.Series
    weights_before: pd.Series
    weights_after: pd.Series
    residual_drift: pd.Series
    cash_before: float
    cash_after: float
    cash_buffer: float
    total_value_before: float
    total_value_after: float
    estimated_costs: float
    turnover: float
    settings: TradeSettings
    locked_by_band: list[str] = field(default_factory=list)
    skipped_small: list[str] = field(default_factory=list)
    exposures_before: pd.Series | None = None
    exposures_after: pd.Series | None = None
    exposures_target: pd.Series | None = None
    cap_violations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def n_trades(self) -> int:
        return len(self.trades)

    @property
    def sells(self) -> list[Trade]:
        return [t for t in self.trades if t.side == "SELL"]

    @property
    def buys(self) -> list[Trade]:
        return [t for t in self.trades if t.side == "BUY"]

    @property
    def gross_traded_value(self) -> float:
        return float(sum(t.estimated_value for t in self.trades))

    @property
    def max_abs_drift(self) -> float:
        return float(self.residual_drift.abs().max()) if len(self.residual_drift) else 0.0

    @property
    def exposure_drift(self) -> pd.Series | None:
        """Exposure after minus exposure of the target (fractions), with a fund map."""
        if self.exposures_after is None or self.exposures_target is None:
            return None
        return self.exposures_after - self.exposures_target

    def cash_path(self) -> np.ndarray:
        """Cash before the first order and after each order, executed in plan order.

        Returns
        -------
        ndarray, shape (n_trades + 1,)
        """
        flows = [t.cash_flow for t in self.trades]
        return self.cash_before + np.concatenate([[0.0], np.cumsum(flows)])

    def to_frame(self) -> pd.DataFrame:
        """The orders as a table (one row per trade, in execution order)."""
        columns = [
            "symbol",
            "side",
            "quantity",
            "estimated_price",
            "estimated_value",
            "estimated_commission",
            "weight_before",
            "weight_after",
            "reason",
            "account",
        ]
        return pd.DataFrame(
            [[getattr(t, c) for c in columns] for t in self.trades], columns=columns
        )

    def summary(self) -> dict[str, Any]:
        """Number of trades, turnover, costs, cash and value before/after, drift, exposures."""
        out: dict[str, Any] = {
            "n_trades": self.n_trades,
            "n_sells": len(self.sells),
            "n_buys": len(self.buys),
            "gross_traded_value": self.gross_traded_value,
            "turnover": self.turnover,
            "estimated_costs": self.estimated_costs,
            "cash_before": self.cash_before,
            "cash_after": self.cash_after,
            "cash_buffer": self.cash_buffer,
            "total_value_before": self.total_value_before,
            "total_value_after": self.total_value_after,
            "max_abs_drift": self.max_abs_drift,
            "fractional": self.settings.fractional,
        }
        if self.exposures_before is not None:
            out["exposures_before"] = self.exposures_before.to_dict()
            out["exposures_after"] = self.exposures_after.to_dict()  # type: ignore[union-attr]
            out["exposures_target"] = self.exposures_target.to_dict()  # type: ignore[union-attr]
        return out


# --------------------------------------------------------------------------- inputs
def _target_series(target: Any) -> tuple[pd.Series, list[str]]:
    """Target weights by upper-case symbol, plus notes about the target itself."""
    from core.optimization.results import OptimizationResult

    notes: list[str] = []
    if isinstance(target, OptimizationResult):
        raw = target.weights
        if not target.success:
            notes.append(
                "the optimization did not report success"
                + (f" ({target.message})" if target.message else "")
                + "; check the result before trading it"
            )
    elif isinstance(target, pd.Series):
        raw = target
    elif isinstance(target, Mapping):
        raw = pd.Series(dict(target), dtype=object)
    else:
        raise ValidationError(
            "the target must be an OptimizationResult, a pandas Series or a dict of "
            f"symbol -> weight, got {type(target).__name__}",
            field="target",
        )
    values: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(key, str) and key.strip().upper() == CASH_LABEL:
            continue  # the explicit cash row of Portfolio.weights(include_cash=True)
        symbol = normalise_symbol(key, field=f"target.{key}")
        weight = _finite(value, f"target weight of {symbol}", f"target.{symbol}")
        if weight < -_WEIGHT_TOL:
            raise ValidationError(
                f"target weight of {symbol} is {weight:.4%}: short positions cannot be traded "
                "by the trade generator; set it to 0 or more",
                field=f"target.{symbol}",
            )
        if symbol in values:
            raise ValidationError(
                f"{symbol} appears twice in the target weights", field=f"target.{symbol}"
            )
        values[symbol] = max(weight, 0.0)
    return pd.Series(values, dtype=float), notes


def _price_table(prices: Any) -> dict[str, Any]:
    if prices is None:
        return {}
    if isinstance(prices, pd.DataFrame):
        raise ValidationError(
            "prices must be one price per symbol (a Series or dict); for a price history "
            "pass its last row, e.g. frame.iloc[-1]",
            field="prices",
        )
    if not isinstance(prices, Mapping | pd.Series):
        raise ValidationError(
            f"prices must be a dict or Series of symbol -> price, got {type(prices).__name__}",
            field="prices",
        )
    return {str(k).strip().upper(): v for k, v in prices.items()}


def _check_price(symbol: str, value: Any, source: str) -> float:
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        raise DataError(
            f"no price for {symbol} ({source}); load prices or type one before generating trades",
            column=symbol,
        )
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise DataError(f"price of {symbol} is not a number: {value!r}", column=symbol)
    price = float(value)
    if not math.isfinite(price) or price <= 0:
        raise DataError(
            f"price of {symbol} is {price:g} ({source}); a trade needs a positive price per "
            "share, fix or reload it",
            column=symbol,
        )
    return price


# --------------------------------------------------------------------------- rounding
@dataclass
class _Problem:
    """Arrays of the rounding problem, shape (N,) unless noted."""

    cur: np.ndarray  # shares held now
    price: np.ndarray
    lot: np.ndarray  # shares per step
    w_t: np.ndarray  # target weights
    value: float  # total value before trading (weights are relative to it)
    cash0: float
    floor: float  # cash that must remain after every order
    M: np.ndarray  # (N, N) objective matrix E'E + lambda I
    A: np.ndarray | None  # (R, N) cap rows on weights
    b: np.ndarray | None  # (R,)
    settings: TradeSettings
    eps: float  # float round-off allowed in cash checks (a millionth of a cent per $10k)


def _cash_after(p: _Problem, delta: np.ndarray) -> float:
    comm = p.settings.commission(delta, p.price)
    return float(p.cash0 - np.sum(delta * p.price) - np.sum(comm))


def _objective(p: _Problem, delta: np.ndarray) -> float:
    d = (p.cur + delta) * p.price / p.value - p.w_t
    return float(d @ p.M @ d)


def _cap_ok(p: _Problem, aw: np.ndarray, new_aw: np.ndarray) -> np.ndarray:
    """Moves allowed by the caps: no row may end above max(its cap, where it is now).

    ``new_aw`` has shape (R, ...) ; returns a boolean array of the trailing shape.
    """
    assert p.b is not None
    limit = np.maximum(p.b, aw) + _CAP_TOL
    shape = (-1,) + (1,) * (new_aw.ndim - 1)
    return np.all(new_aw <= limit.reshape(shape), axis=0)


def _local_search(
    p: _Problem,
    delta: np.ndarray,
    free: np.ndarray,
    floor: float,
    *,
    max_iter: int,
    allow_swaps: bool,
) -> np.ndarray:
    """Improve ``delta`` (shares traded) one lot at a time while cash stays >= floor."""
    s = p.lot * p.price / p.value  # weight of one lot, (N,)
    diag = np.diag(p.M)
    lot_value = p.lot * p.price
    idx = np.flatnonzero(free)
    if idx.size == 0:
        return delta
    for _ in range(max_iter):
        d = (p.cur + delta) * p.price / p.value - p.w_t
        md = p.M @ d
        cash = _cash_after(p, delta)
        comm_now = p.settings.commission(delta, p.price)
        up = delta + p.lot
        down = delta - p.lot
        cash_up = -lot_value - (p.settings.commission(up, p.price) - comm_now)
        cash_down = lot_value - (p.settings.commission(down, p.price) - comm_now)
        gain_up = 2 * s * md + s * s * diag
        gain_down = -2 * s * md + s * s * diag
        can_down = p.cur + down >= -1e-9 * np.maximum(p.lot, 1.0)
        ok_up = free & (cash + cash_up >= floor - p.eps)
        ok_down = free & can_down & (cash + cash_down >= floor - p.eps)
        if p.A is not None:
            w = (p.cur + delta) * p.price / p.value
            aw = p.A @ w
            ok_up &= _cap_ok(p, aw, aw[:, None] + p.A * s[None, :])
            ok_down &= _cap_ok(p, aw, aw[:, None] - p.A * s[None, :])
        best_gain = -1e-15
        move: tuple[int, int] | None = None  # (i removed or -1, j added or -1)
        if ok_up.any():
            j = int(np.argmin(np.where(ok_up, gain_up, np.inf)))
            if gain_up[j] < best_gain:
                best_gain, move = float(gain_up[j]), (-1, j)
        if ok_down.any():
            i = int(np.argmin(np.where(ok_down, gain_down, np.inf)))
            if gain_down[i] < best_gain:
                best_gain, move = float(gain_down[i]), (i, -1)
        if move is None and allow_swaps and idx.size > 1:
            # Swap one lot of i for one lot of j: only when no single move helps.
            sub = idx[can_down[idx]]
            if sub.size:
                g = (
                    gain_down[sub][:, None]
                    + gain_up[idx][None, :]
                    - 2 * np.outer(s[sub], s[idx]) * p.M[np.ix_(sub, idx)]
                )
                feasible = cash + cash_down[sub][:, None] + cash_up[idx][None, :] >= floor - p.eps
                feasible &= sub[:, None] != idx[None, :]
                if p.A is not None:
                    new = (
                        aw[:, None, None]
                        - (p.A[:, sub] * s[sub])[:, :, None]
                        + (p.A[:, idx] * s[idx])[:, None, :]
                    )
                    feasible &= _cap_ok(p, aw, new)
                g = np.where(feasible, g, np.inf)
                a, c = np.unravel_index(int(np.argmin(g)), g.shape)
                if g[a, c] < best_gain:
                    best_gain, move = float(g[a, c]), (int(sub[a]), int(idx[c]))
        if move is None:
            break
        i, j = move
        if i >= 0:
            delta[i] -= p.lot[i]
        if j >= 0:
            delta[j] += p.lot[j]
    return delta


def _repair_cash(
    p: _Problem, delta: np.ndarray, free: np.ndarray, floor: float
) -> tuple[np.ndarray, float]:
    """Cut buys (or sell more) until the cash left is >= floor; returns (delta, floor used).

    First a proportional cut of all buys (cheap even with tiny fractional lots), then single
    lots chosen by the least damage to the objective. If no move can raise cash any more,
    the floor (cash buffer) is lowered to what is reachable, which must still be >= 0.
    """
    for _ in range(8):
        shortfall = floor - _cash_after(p, delta)
        buys = free & (delta > 0)
        if shortfall <= p.eps or not buys.any():
            break
        spend = float(np.sum(delta[buys] * p.price[buys]))
        factor = max(0.0, 1.0 - 1.02 * shortfall / spend) if spend > 0 else 0.0
        delta[buys] = np.floor(delta[buys] / p.lot[buys] * factor) * p.lot[buys]
    s = p.lot * p.price / p.value
    diag = np.diag(p.M)
    for _ in range(100_000):
        cash = _cash_after(p, delta)
        if cash >= floor - p.eps:
            return delta, floor
        comm_now = p.settings.commission(delta, p.price)
        d = (p.cur + delta) * p.price / p.value - p.w_t
        md = p.M @ d
        down = delta - p.lot
        up = delta + p.lot
        raise_down = p.lot * p.price - (p.settings.commission(down, p.price) - comm_now)
        raise_up = -p.lot * p.price - (p.settings.commission(up, p.price) - comm_now)
        ok_down = free & (p.cur + down >= -1e-9) & (raise_down > 0)
        ok_up = free & (raise_up > 0)  # shrinking a sell can save its whole commission
        gain_down = np.where(ok_down, -2 * s * md + s * s * diag, np.inf)
        gain_up = np.where(ok_up, 2 * s * md + s * s * diag, np.inf)
        if not (ok_down.any() or ok_up.any()):
            # Lot steps cannot help (a fixed per-order fee): cancel a whole order instead.
            gain_cancel = np.full(len(delta), np.inf)
            for k in np.flatnonzero(free & (delta != 0) & (comm_now + delta * p.price > 0)):
                trial = delta.copy()
                trial[k] = 0.0
                gain_cancel[k] = _objective(p, trial)
            if not np.isfinite(gain_cancel).any():
                break
            delta[int(np.argmin(gain_cancel))] = 0.0
            continue
        i = int(np.argmin(gain_down))
        j = int(np.argmin(gain_up))
        if gain_down[i] <= gain_up[j]:
            delta[i] -= p.lot[i]
        else:
            delta[j] += p.lot[j]
    cash = _cash_after(p, delta)
    if cash < -p.eps:
        raise InfeasibleError(
            f"these orders would leave {cash:,.2f} in cash: commissions exceed what the sales "
            "bring in. Lower the commission settings, add cash, or widen the minimum trade",
            conflicts=["commissions", "cash"],
        )
    return delta, min(floor, cash)


# --------------------------------------------------------------------------- generator
class TradeGenerator:
    """Turn target weights into orders a broker can execute.

    Parameters
    ----------
    settings : TradeSettings, optional
        Whole shares, no buffer, no bands and no commission by default.
    fund_map : FundExposureMap, optional
        Makes the rounding exposure-aware and adds exposures before/after to the plan.
        Every traded symbol must then be in the map.

    Attributes
    ----------
    plan_ : TradePlan
        The last plan made by :meth:`generate`.
    """

    def __init__(
        self, settings: TradeSettings | None = None, fund_map: FundExposureMap | None = None
    ):
        if settings is not None and not isinstance(settings, TradeSettings):
            raise ValidationError("settings must be a TradeSettings", field="settings")
        if fund_map is not None and not isinstance(fund_map, FundExposureMap):
            raise ValidationError("fund_map must be a FundExposureMap", field="fund_map")
        self.settings = settings if settings is not None else TradeSettings()
        self.fund_map = fund_map

    # ------------------------------------------------------------------ public
    def generate(
        self,
        target: Any,
        current_portfolio: Portfolio,
        prices: Mapping[str, float] | pd.Series | None = None,
        constraints: OptimizationConstraints | None = None,
    ) -> TradePlan:
        """Orders that move ``current_portfolio`` to ``target``.

        Parameters
        ----------
        target : OptimizationResult, pd.Series or dict
            Target weight per symbol as a fraction of total value. Held symbols missing
            from the target are sold completely. A ``"CASH"`` entry is ignored (cash is
            what the funds leave).
        current_portfolio : Portfolio
            Shares and cash now. Holdings' own prices are used where ``prices`` does not
            name the symbol.
        prices : dict or pd.Series, optional
            Latest price per symbol; overrides the holdings' prices.
        constraints : OptimizationConstraints, optional
            Caps the rounding must not break (per-fund maximum weights; with a fund map
            also exposure, group, sector and notional caps). Any cap the rounded
            portfolio still breaks is listed in ``plan.cap_violations``.

        Returns
        -------
        TradePlan

        Raises
        ------
        DataError
            A needed price is missing, zero, negative or not a number (names the symbol).
        ValidationError
            Malformed target, portfolio or settings.
        InfeasibleError
            Commissions would make cash negative whatever is traded.
        """
        st = self.settings
        if not isinstance(current_portfolio, Portfolio):
            raise ValidationError(
                f"current_portfolio must be a Portfolio, got {type(current_portfolio).__name__}",
                field="current_portfolio",
            )
        if current_portfolio.allow_short and (
            current_portfolio.cash < 0 or any(h.shares < 0 for h in current_portfolio)
        ):
            raise ValidationError(
                "the trade generator handles long positions and non-negative cash only; "
                "close short positions and margin loans first",
                field="current_portfolio",
            )
        requested, warnings = _target_series(target)
        table = _price_table(prices)
        held = {h.symbol: h for h in current_portfolio}

        # Symbols that matter: held with shares, or targeted above zero.
        symbols = [s for s, h in held.items() if h.shares != 0]
        symbols += [s for s in requested.index if requested[s] > _WEIGHT_TOL and s not in symbols]
        price_list = []
        for sym in symbols:
            if sym in table:
                price_list.append(_check_price(sym, table[sym], "from the prices given"))
            elif sym in held and held[sym].price is not None:
                price_list.append(_check_price(sym, held[sym].price, "from the holdings"))
            else:
                price_list.append(_check_price(sym, None, "not in the prices given"))
        n = len(symbols)
        price = np.array(price_list, dtype=float)
        cur = np.array([held[s].shares if s in held else 0.0 for s in symbols], dtype=float)
        w_req = requested.reindex(symbols).fillna(0.0).to_numpy(dtype=float)

        cash0 = float(current_portfolio.cash)
        value = cash0 + float(cur @ price)
        if value <= 0:
            raise ValidationError(
                f"the portfolio is worth {value:,.2f}; add cash or holdings before trading",
                field="cash",
            )
        buffer = max(st.cash_buffer_amount, st.cash_buffer_pct * value)
        if buffer >= value:
            raise ValidationError(
                f"the cash buffer ({buffer:,.2f}) is as large as the whole portfolio "
                f"({value:,.2f}); lower it",
                field="cash_buffer_amount",
            )
        invest_max = (value - buffer) / value
        w_t = w_req.copy()
        total = float(w_t.sum())
        if total > invest_max + 1e-9:
            scale = invest_max / total
            w_t *= scale
            warnings.append(
                f"target needs more cash than exists, scaled down: the target weights sum to "
                f"{total:.2%}"
                + (f" and the cash buffer is {buffer / value:.2%}" if buffer > 0 else "")
                + f"; every target weight was multiplied by {scale:.4f}"
            )
        w0 = cur * price / value

        # Rebalancing bands: a position inside its band keeps its shares.
        locked = np.zeros(n, dtype=bool)
        if st.band_abs is not None or st.band_rel is not None:
            band = np.full(n, np.inf)
            if st.band_abs is not None:
                band = np.minimum(band, st.band_abs)
            if st.band_rel is not None:
                band = np.minimum(band, st.band_rel * w_t)
            locked = (np.abs(w0 - w_t) <= band + _WEIGHT_TOL) & (cur > 0)
            # A position the target drops entirely is always sold.
            locked &= w_t > _WEIGHT_TOL
        exits = (w_t <= _WEIGHT_TOL) & (cur > 0)

        if st.fractional:
            step = 10.0 ** (-st.fractional_decimals)
            lot = np.full(n, step)
        else:
            lot = np.array([float(st.lot_for(s)) for s in symbols])

        calc = None
        if self.fund_map is not None and n:
            calc = ExposureCalculator(self.fund_map, symbols)
            E = calc.matrix
            M = E.T @ E + st.weight_drift_penalty * np.eye(n)
        else:
            M = np.eye(n)
        A, b, cap_names, cap_notes = self._caps(symbols, constraints)
        warnings += cap_notes

        problem = _Problem(
            cur=cur,
            price=price,
            lot=lot,
            w_t=w_t,
            value=value,
            cash0=cash0,
            floor=buffer,
            M=M,
            A=A,
            b=b,
            settings=st,
            eps=1e-12 * max(value, 1.0),
        )

        # Exits sell everything (whole lots only in whole-share mode).
        fixed = locked | exits
        fixed_delta = np.zeros(n)
        for i in np.flatnonzero(exits):
            if st.fractional:
                fixed_delta[i] = -cur[i]
            else:
                fixed_delta[i] = -math.floor(cur[i] / lot[i] + 1e-9) * lot[i]
                if cur[i] + fixed_delta[i] > 1e-9:
                    warnings.append(
                        f"{symbols[i]}: {cur[i] + fixed_delta[i]:g} shares are left after the "
                        f"exit because orders are whole lots of {lot[i]:g}; sell the remainder "
                        "at your broker or turn on fractional shares"
                    )
        skipped: list[str] = []
        floor_used = buffer
        for _ in range(2 * n + 2):
            free = ~fixed
            delta = fixed_delta.copy()
            q_star = w_t * value / price
            start = np.floor((q_star - cur) / lot + 1e-9) * lot
            start = np.maximum(start, -np.floor(cur / lot + 1e-9) * lot)
            delta[free] = start[free]
            if st.fractional:
                delta = np.round(delta, st.fractional_decimals)
            try:
                delta, floor_used = _repair_cash(problem, delta, free, buffer)
            except InfeasibleError:
                # A sale whose commission exceeds its proceeds, with no cash to pay for it:
                # keep that position rather than fail the whole plan.
                net = -fixed_delta * price - st.commission(fixed_delta, price)
                losing = np.flatnonzero(exits & (fixed_delta != 0) & (net < 0))
                if not losing.size:
                    raise
                i = int(losing[np.argmin(net[losing])])
                fixed_delta[i] = 0.0
                warnings.append(
                    f"{symbols[i]} is not sold: the commission ({st.commission(cur[i], price[i]):,.2f}) "
                    f"exceeds what the sale brings in ({cur[i] * price[i]:,.2f}) and there is "
                    "not enough cash to pay the difference"
                )
                continue
            delta = _local_search(
                problem,
                delta,
                free,
                floor_used,
                # Fractional lots are tiny: rounding down already lands within a lot of
                # the target, so a short polish is enough.
                max_iter=50 + 2 * n if st.fractional else 200 + 20 * n,
                allow_swaps=n <= 150 and not st.fractional,
            )
            if st.fractional:
                delta = np.round(delta, st.fractional_decimals)
            # Orders too small to place: keep the position as it is and solve again.
            small = free & (delta != 0) & (np.abs(delta) * price < st.min_trade_value)
            if not small.any():
                break
            for i in np.flatnonzero(small):
                skipped.append(symbols[i])
                fixed[i] = True
                fixed_delta[i] = 0.0
        if floor_used < buffer - problem.eps:
            warnings.append(
                f"the cash buffer of {buffer:,.2f} cannot be kept: only {floor_used:,.2f} is "
                "left after the orders that must be placed"
            )

        return self._build_plan(
            symbols=symbols,
            held=held,
            portfolio=current_portfolio,
            price=price,
            cur=cur,
            delta=delta,
            w_req=w_req,
            w_t=w_t,
            requested=requested,
            value=value,
            cash0=cash0,
            buffer=buffer,
            lot=lot,
            locked=[s for s, flag in zip(symbols, locked, strict=True) if flag],
            skipped=skipped,
            exits=exits,
            calc=calc,
            caps=(A, b, cap_names),
            warnings=warnings,
        )

    # ----------------------------------------------------------------- helpers
    def _caps(
        self, symbols: list[str], constraints: OptimizationConstraints | None
    ) -> tuple[np.ndarray | None, np.ndarray | None, list[str], list[str]]:
        """Cap rows ``A w <= b`` on weights, their names, and notes about what is unchecked."""
        if constraints is None or not symbols:
            return None, None, [], []
        if not isinstance(constraints, OptimizationConstraints):
            raise ValidationError(
                "constraints must be OptimizationConstraints", field="constraints"
            )
        n = len(symbols)
        rows: list[np.ndarray] = []
        rhs: list[float] = []
        names: list[str] = []
        notes: list[str] = []
        for i, sym in enumerate(symbols):
            hi = constraints.bounds_for(sym)[1]
            if hi < 1.0:
                row = np.zeros(n)
                row[i] = 1.0
                rows.append(row)
                rhs.append(hi)
                names.append(f"max weight of {sym} <= {hi:.2%}")
        if self.fund_map is not None:
            try:
                form = linear_form(symbols, constraints, self.fund_map)
            except (ValidationError, InfeasibleError) as exc:
                notes.append(f"exposure and notional caps not checked: {exc}")
            else:
                for row, bound, name in zip(form.A_ub, form.b_ub, form.ub_names, strict=True):
                    if not name.startswith("target_return"):
                        rows.append(np.asarray(row[:n], dtype=float))
                        rhs.append(float(bound))
                        names.append(name)
        elif (
            constraints.max_exposure_per_type
            or constraints.max_exposure_per_group
            or constraints.max_total_notional is not None
            or constraints.min_exposure_per_type
        ):
            notes.append(
                "exposure and notional caps not checked: the trade generator was given no fund map"
            )
        if not rows:
            return None, None, [], notes
        return np.array(rows), np.array(rhs), names, notes

    def _build_plan(
        self,
        *,
        symbols: list[str],
        held: dict[str, Holding],
        portfolio: Portfolio,
        price: np.ndarray,
        cur: np.ndarray,
        delta: np.ndarray,
        w_req: np.ndarray,
        w_t: np.ndarray,
        requested: pd.Series,
        value: float,
        cash0: float,
        buffer: float,
        lot: np.ndarray,
        locked: list[str],
        skipped: list[str],
        exits: np.ndarray,
        calc: ExposureCalculator | None,
        caps: tuple[np.ndarray | None, np.ndarray | None, list[str]],
        warnings: list[str],
    ) -> TradePlan:
        st = self.settings
        new = cur + delta
        new[np.abs(new) < 1e-12] = 0.0
        comm = st.commission(delta, price)
        costs = float(np.sum(comm))
        cash1 = cash0 - float(np.sum(delta * price)) - costs
        if -1e-12 * max(value, 1.0) <= cash1 < 0:
            cash1 = 0.0  # spent exactly; the sum only lost a few float bits
        value1 = cash1 + float(new @ price)
        # Only an account that commissions ate entirely is worth 0 after trading.
        w_after = new * price / value1 if value1 > 0 else np.zeros(len(symbols))
        w_before = cur * price / value

        # A held fund trades in its holding's account; a new fund in the portfolio's one
        # account when there is exactly one ('' otherwise: the ticket's default account).
        accounts = {h.account for h in held.values() if h.account}
        single = next(iter(accounts)) if len(accounts) == 1 else ""

        def account_of(sym: str) -> str:
            own = held[sym].account if sym in held else single
            return "" if " + " in own else own  # merged rows name several accounts

        trades: list[Trade] = []
        for i, sym in enumerate(symbols):
            if delta[i] == 0:
                continue
            side = "BUY" if delta[i] > 0 else "SELL"
            if side == "SELL" and exits[i]:
                reason = "exit"
            elif side == "BUY" and cur[i] == 0:
                reason = "new position"
            else:
                reason = "rebalance"
            qty = abs(float(delta[i]))
            trades.append(
                Trade(
                    symbol=sym,
                    side=side,
                    quantity=qty,
                    estimated_price=float(price[i]),
                    estimated_value=qty * float(price[i]),
                    weight_before=float(w_before[i]),
                    weight_after=float(w_after[i]),
                    reason=reason,
                    account=account_of(sym),
                    estimated_commission=float(comm[i]),
                )
            )
        # Sells first, the largest net proceeds first (a sale whose commission exceeds its
        # proceeds then comes last, when cash is highest); then buys, largest first.
        trades.sort(
            key=lambda t: (t.side == "BUY", -t.cash_flow if t.side == "SELL" else t.cash_flow)
        )

        after_holdings: list[Holding] = []
        for i, sym in enumerate(symbols):
            if sym in held:
                h = held[sym]
                after_holdings.append(
                    Holding(sym, float(new[i]), float(price[i]), h.account, h.name)
                )
            elif new[i] != 0:
                after_holdings.append(Holding(sym, float(new[i]), float(price[i])))
        # Held zero-share rows (funds the user may buy) stay in the portfolio.
        for sym, h in held.items():
            if sym not in symbols:
                after_holdings.append(h)
        before = portfolio.with_prices(
            {s: float(p) for s, p in zip(symbols, price, strict=True) if s in held}
        )
        after = Portfolio(
            after_holdings,
            cash=max(cash1, 0.0),
            currency=portfolio.currency,
            allow_short=portfolio.allow_short,
        )

        index = pd.Index(symbols, dtype=object)
        target_s = pd.Series(w_t, index=index, dtype=float, name="target")
        after_s = pd.Series(w_after, index=index, dtype=float, name="after")
        drift = (after_s - target_s).rename("drift")
        # Symbols the user targeted at 0 and does not hold are still shown at 0.
        extra = [s for s in requested.index if s not in index]
        if extra:
            zeros = pd.Series(0.0, index=pd.Index(extra, dtype=object))
            target_s = pd.concat([target_s, zeros]).rename("target")
            after_s = pd.concat([after_s, zeros]).rename("after")
            drift = pd.concat([drift, zeros]).rename("drift")
        req_s = pd.Series(w_req, index=index, dtype=float, name="requested")
        before_s = pd.Series(w_before, index=index, dtype=float, name="before")

        exp_before = exp_after = exp_target = None
        if calc is not None:
            exp_before = calc.portfolio_exposures(w_before)
            exp_after = calc.portfolio_exposures(w_after)
            exp_target = calc.portfolio_exposures(w_t)

        violations = self._violations(caps, w_t, w_after)
        free = np.array([s not in locked and s not in skipped for s in symbols], dtype=bool)
        warnings = warnings + self._drift_warnings(
            symbols,
            drift.reindex(symbols).to_numpy(),
            w_t,
            lot,
            price,
            value,
            free,
            locked,
            skipped,
        )

        plan = TradePlan(
            trades=trades,
            portfolio_before=before,
            portfolio_after=after,
            prices=pd.Series(price, index=index, dtype=float, name="price"),
            requested_weights=req_s,
            target_weights=target_s,
            weights_before=before_s,
            weights_after=after_s,
            residual_drift=drift,
            cash_before=cash0,
            cash_after=cash1,
            cash_buffer=buffer,
            total_value_before=value,
            total_value_after=value1,
            estimated_costs=costs,
            turnover=float(np.sum(np.abs(delta) * price)) / value,
            settings=st,
            locked_by_band=locked,
            skipped_small=skipped,
            exposures_before=exp_before,
            exposures_after=exp_after,
            exposures_target=exp_target,
            cap_violations=violations,
            warnings=warnings,
        )
        self._verify(plan)
        self.plan_ = plan
        return plan

    @staticmethod
    def _violations(
        caps: tuple[np.ndarray | None, np.ndarray | None, list[str]],
        w_t: np.ndarray,
        w_after: np.ndarray,
    ) -> list[str]:
        A, b, names = caps
        if A is None or b is None:
            return []
        out = []
        after = A @ w_after - b
        target = A @ w_t - b
        for k in np.flatnonzero(after > 1e-7):
            verb = "missed by" if ">=" in names[k] else "exceeded by"
            note = " (the target itself breaks it)" if target[k] > 1e-7 else ""
            out.append(f"{names[k]} {verb} {after[k]:.3%} after rounding{note}")
        return out

    def _drift_warnings(
        self,
        symbols: list[str],
        drift: np.ndarray,
        w_t: np.ndarray,
        lot: np.ndarray,
        price: np.ndarray,
        value: float,
        free: np.ndarray,
        locked: list[str],
        skipped: list[str],
    ) -> list[str]:
        st = self.settings
        if not len(symbols):
            return []
        k = int(np.argmax(np.abs(drift)))
        worst = float(abs(drift[k]))
        if worst <= st.drift_warning:
            return []
        out: list[str] = []
        granular = free & (w_t > _WEIGHT_TOL) & (lot * price / value > st.drift_warning)
        if not st.fractional and granular.any():
            unbuyable = [
                symbols[i]
                for i in np.flatnonzero(free & (w_t > _WEIGHT_TOL))
                if lot[i] * price[i] > w_t[i] * value
            ]
            msg = (
                f"tiny account: whole shares make the target unreachable, residual drift "
                f"{worst:.2%} (largest on {symbols[k]})"
            )
            if unbuyable:
                msg += "; one lot costs more than the target holding of " + ", ".join(unbuyable)
            out.append(msg + "; consider fractional shares or fewer funds")
        else:
            causes = []
            if symbols[k] in locked:
                causes.append("it is inside its rebalancing band")
            if symbols[k] in skipped:
                causes.append("its order is below the minimum trade value")
            out.append(
                f"residual drift {worst:.2%} on {symbols[k]}"
                + (f" ({'; '.join(causes)})" if causes else "")
            )
        return out

    def _verify(self, plan: TradePlan) -> None:
        """Final check of what every plan must satisfy; a failure is a bug, not user error."""
        path = plan.cash_path()
        if path.min() < -1e-6 * max(plan.total_value_before, 1.0):
            raise StackOptError(
                f"internal error: the orders would take cash to {path.min():,.2f}; please "
                "report this with the portfolio"
            )
        for t in plan.trades:
            if not self.settings.fractional:
                lot = self.settings.lot_for(t.symbol)
                if abs(t.quantity / lot - round(t.quantity / lot)) > 1e-9:
                    raise StackOptError(
                        f"internal error: {t.symbol} order of {t.quantity} is not whole lots"
                    )
        if any(h.shares < -1e-9 for h in plan.portfolio_after):
            raise StackOptError("internal error: the orders would leave a short position")
