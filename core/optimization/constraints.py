"""Optimization constraints (what the user asks for) and their serialisation.

All weights, exposures and notionals here are FRACTIONS of portfolio value
(0.25 = 25%, a notional limit of 1.5 = 150%); the Constraints tab shows them in percent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from core.errors import ValidationError

Bound = tuple[float | None, float | None]


def _num(value: Any, name: str, *, allow_none: bool = True) -> float | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if allow_none:
            return None
        raise ValidationError(f"{name} is required", field=name)
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a number, got {value!r}", field=name)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number, got {value!r}", field=name) from None
    if not math.isfinite(x):
        raise ValidationError(f"{name} must be finite, got {value!r}", field=name)
    return x


def _bound(value: Any, name: str) -> Bound:
    if isinstance(value, Mapping):
        lo, hi = value.get("min"), value.get("max")
    else:
        try:
            lo, hi = value
        except (TypeError, ValueError):
            raise ValidationError(f"{name} must be a (min, max) pair", field=name) from None
    return _num(lo, f"{name}.min"), _num(hi, f"{name}.max")


@dataclass
class OptimizationConstraints:
    """Every constraint the optimizers understand.

    Parameters
    ----------
    min_weight, max_weight : float
        Default bounds on each fund's weight (fractions). ``fund_bounds`` overrides per fund.
    long_only : bool
        If False, weights may go negative down to ``-max_weight`` unless ``min_weight`` or
        ``fund_bounds`` say otherwise.
    min_cash, max_cash : float
        Bounds on the explicit cash position (fraction). ``max_cash = 0`` means fully
        invested in funds.
    max_total_notional : float or None
        Cap on ``sum_i |w_i| notional_i`` (1.5 = 150% gross exposure).
    target_volatility : float or None
        Annualised volatility cap / target (0.10 = 10%).
    target_return : float or None
        Required annual expected return, for "min volatility at a target return".
    max_exposure_per_type, min_exposure_per_type : dict
        Exposure type code -> cap / floor on ``(E w)_k``.
    max_exposure_per_group, min_exposure_per_group : dict
        Asset-class group (``equity``, ``fixed_income`` ...) -> cap / floor on the sum of
        the group's exposures.
    sector_limits : dict
        Named group -> (min, max) on the summed WEIGHT of its members; members come from
        ``sector_mapper`` (symbol -> group name).
    max_turnover : float or None
        Cap on ``sum_i |w_i - w0_i|`` against ``current_weights`` (one-way turnover x 2).
    transaction_cost_bps : float
        Proportional cost per unit traded, charged in the objective.
    """

    min_weight: float = 0.0
    max_weight: float = 1.0
    long_only: bool = True
    fund_bounds: dict[str, Bound] = field(default_factory=dict)
    min_cash: float = 0.0
    max_cash: float = 0.0
    max_total_notional: float | None = None
    target_volatility: float | None = None
    target_return: float | None = None
    max_exposure_per_type: dict[str, float] = field(default_factory=dict)
    min_exposure_per_type: dict[str, float] = field(default_factory=dict)
    max_exposure_per_group: dict[str, float] = field(default_factory=dict)
    min_exposure_per_group: dict[str, float] = field(default_factory=dict)
    sector_limits: dict[str, Bound] = field(default_factory=dict)
    sector_mapper: dict[str, str] = field(default_factory=dict)
    max_turnover: float | None = None
    current_weights: dict[str, float] = field(default_factory=dict)
    transaction_cost_bps: float = 0.0

    # ----------------------------------------------------------------- helpers
    def bounds_for(self, symbol: str) -> tuple[float, float]:
        """Lower and upper weight bound of one fund after defaults and long-only."""
        lo = self.min_weight if self.long_only else min(self.min_weight, -self.max_weight)
        if self.long_only:
            lo = max(lo, 0.0)
        hi = self.max_weight
        own = self.fund_bounds.get(symbol.upper()) or self.fund_bounds.get(symbol)
        if own is not None:
            if own[0] is not None:
                lo = float(own[0])
            if own[1] is not None:
                hi = float(own[1])
            if self.long_only:
                lo = max(lo, 0.0)
        return lo, hi

    def copy(self, **changes: Any) -> OptimizationConstraints:
        data = self.to_dict()
        data.update(changes)
        return OptimizationConstraints.from_dict(data)

    # ----------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fund_bounds"] = {k: [v[0], v[1]] for k, v in self.fund_bounds.items()}
        d["sector_limits"] = {k: [v[0], v[1]] for k, v in self.sector_limits.items()}
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimizationConstraints:
        if not isinstance(data, Mapping):
            raise ValidationError("constraints must be an object", field="constraints")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(
                f"unknown constraint field(s): {', '.join(unknown)}", field=unknown[0]
            )
        kw: dict[str, Any] = {}
        for name in ("min_weight", "max_weight", "min_cash", "max_cash", "transaction_cost_bps"):
            if name in data:
                kw[name] = _num(data[name], name, allow_none=False)
        for name in ("max_total_notional", "target_volatility", "target_return", "max_turnover"):
            if name in data:
                kw[name] = _num(data[name], name)
        if "long_only" in data:
            if not isinstance(data["long_only"], bool):
                raise ValidationError("long_only must be true or false", field="long_only")
            kw["long_only"] = data["long_only"]
        for name in (
            "max_exposure_per_type",
            "min_exposure_per_type",
            "max_exposure_per_group",
            "min_exposure_per_group",
            "current_weights",
        ):
            if name in data:
                raw = data[name] or {}
                if not isinstance(raw, Mapping):
                    raise ValidationError(f"{name} must be an object", field=name)
                kw[name] = {str(k): _num(v, f"{name}.{k}", allow_none=False) for k, v in raw.items()}
        for name in ("fund_bounds", "sector_limits"):
            if name in data:
                raw = data[name] or {}
                if not isinstance(raw, Mapping):
                    raise ValidationError(f"{name} must be an object", field=name)
                kw[name] = {str(k): _bound(v, f"{name}.{k}") for k, v in raw.items()}
        if "sector_mapper" in data:
            raw = data["sector_mapper"] or {}
            if not isinstance(raw, Mapping):
                raise ValidationError("sector_mapper must be an object", field="sector_mapper")
            kw["sector_mapper"] = {str(k): str(v) for k, v in raw.items()}
        return cls(**kw)


@dataclass
class MarketView:
    """A Black-Litterman view on funds or exposure types.

    Parameters
    ----------
    assets : list of str
        For an absolute view, the asset(s) whose (equal-weighted) return is
        ``expected_return``. For a relative view, ``assets[0]`` outperforms ``assets[1]``
        by ``expected_return``. Names may be fund symbols or exposure type codes; a view
        on an exposure type moves every fund that carries it.
    view_type : {'absolute', 'relative'}
    expected_return : float
        Annual, as a fraction (0.05 = 5%); for absolute views, in excess of cash.
    confidence : float in [0, 1]
        0 leaves the prior untouched, 1 forces the view exactly.
    """

    assets: list[str]
    view_type: str = "absolute"
    expected_return: float = 0.0
    confidence: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.assets, str):
            self.assets = [self.assets]
        self.assets = [str(a).strip().upper() for a in self.assets]
        self.validate()

    def validate(self) -> None:
        if self.view_type not in ("absolute", "relative"):
            raise ValidationError(
                f"view_type must be 'absolute' or 'relative', got {self.view_type!r}",
                field="view_type",
            )
        if not self.assets or any(not a for a in self.assets):
            raise ValidationError("a view needs at least one asset", field="assets")
        if self.view_type == "relative" and len(self.assets) != 2:
            raise ValidationError(
                "a relative view names exactly two assets: the outperformer, then the other",
                field="assets",
            )
        er = _num(self.expected_return, "expected_return", allow_none=False)
        conf = _num(self.confidence, "confidence", allow_none=False)
        assert er is not None and conf is not None
        if not 0.0 <= conf <= 1.0:
            raise ValidationError(
                f"confidence must be between 0 and 1, got {conf}", field="confidence"
            )
        if abs(er) > 1.0:
            raise ValidationError(
                f"expected_return {er} looks like percent; enter 0.05 for 5%",
                field="expected_return",
            )
        self.expected_return, self.confidence = float(er), float(conf)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MarketView:
        if not isinstance(data, Mapping):
            raise ValidationError("a view must be an object", field="views")
        try:
            return cls(
                assets=data["assets"],
                view_type=data.get("view_type", "absolute"),
                expected_return=data.get("expected_return", 0.0),
                confidence=data.get("confidence", 0.5),
            )
        except KeyError:
            raise ValidationError("a view must name its assets", field="assets") from None
