"""Optimization constraints (what the user asks for) and their serialisation.

All weights, exposures and notionals here are FRACTIONS of portfolio value
(0.25 = 25%, a notional limit of 1.5 = 150%); the Constraints tab shows them in percent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from core.errors import ValidationError
from core.kept import Kept

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
    except OverflowError:  # an integer too large for a float
        x = math.inf
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
    def default_bounds(self) -> tuple[float, float]:
        """Lower and upper weight bound of a fund without bounds of its own."""
        lo = self.min_weight if self.long_only else min(self.min_weight, -self.max_weight)
        if self.long_only:
            lo = max(lo, 0.0)
        return lo, self.max_weight

    def bounds_for(self, symbol: str) -> tuple[float, float]:
        """Lower and upper weight bound of one fund after defaults and long-only."""
        lo, hi = self.default_bounds()
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
                kw[name] = {
                    str(k): _num(v, f"{name}.{k}", allow_none=False) for k, v in raw.items()
                }
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


# --------------------------------------------------------------------------- linear form
@dataclass
class LinearForm:
    """Constraints as matrices over the variable vector ``v = [w_1..w_n, (cash)]``.

    ``A_eq v = b_eq``, ``A_ub v <= b_ub``, ``lb <= v <= ub``. Rows carry names
    (``"max_exposure[US_EQUITY]"``) so that infeasibility can be reported in the
    user's terms. ``general_only`` lists what this form cannot express (absolute
    values: turnover, transaction costs, gross notional with shorts); those problems
    go to the general (cvxpy) path.
    """

    symbols: list[str]
    has_cash: bool
    lb: Any
    ub: Any
    A_eq: Any
    b_eq: Any
    eq_names: list[str]
    A_ub: Any
    b_ub: Any
    ub_names: list[str]
    exposure_types: list[str]
    exposure_matrix: Any
    notionals: Any
    general_only: list[str]
    #: The ExposureCalculator over ``exposure_types`` the form was built with (reused for
    #: the result's exposures instead of reading the fund map again).
    calculator: Any = None

    @property
    def n_funds(self) -> int:
        return len(self.symbols)

    @property
    def n_vars(self) -> int:
        return len(self.symbols) + (1 if self.has_cash else 0)

    def violations(self, v: Any, tol: float = 1e-7) -> list[str]:
        """Constraints that ``v`` breaks by more than ``tol`` (named, with the amount)."""
        import numpy as np

        v = np.asarray(v, dtype=float)
        out: list[str] = []
        names = [*self.symbols, "cash"] if self.has_cash else list(self.symbols)
        low = v - self.lb
        high = v - self.ub
        for i in np.flatnonzero(low < -tol):
            out.append(f"weight of {names[i]} {v[i]:.6g} is below its minimum {self.lb[i]:.6g}")
        for i in np.flatnonzero(high > tol):
            out.append(f"weight of {names[i]} {v[i]:.6g} is above its maximum {self.ub[i]:.6g}")
        if self.A_eq.shape[0]:
            r = self.A_eq @ v - self.b_eq
            for i in np.flatnonzero(np.abs(r) > tol):
                out.append(f"{self.eq_names[i]} misses by {r[i]:.3g}")
        if self.A_ub.shape[0]:
            r = self.A_ub @ v - self.b_ub
            for i in np.flatnonzero(r > tol):
                out.append(f"{self.ub_names[i]} exceeded by {r[i]:.3g}")
        return out


def _greedy_extreme(values, lb, ub, total: float, maximise: bool) -> float | None:
    """max (or min) of values' w subject to lb <= w <= ub and sum w = total (a knapsack).

    Returns None when the box cannot meet the budget at all.
    """
    import numpy as np

    lo_sum, hi_sum = float(np.sum(lb)), float(np.sum(ub))
    if lo_sum > total + 1e-12 or hi_sum < total - 1e-12:
        return None
    w = np.array(lb, dtype=float)
    remaining = total - lo_sum
    order = np.argsort(-values if maximise else values, kind="stable")
    for i in order:
        if remaining <= 0:
            break
        room = min(ub[i] - lb[i], remaining)
        w[i] += room
        remaining -= room
    return float(values @ w)


class _FundSnapshot:
    """What a form read from the fund map: its funds' exposures and costs, the types.

    Compared on every reuse of a kept form, so that a fund edited in any way (replaced,
    or its exposure dictionary changed in place) is never answered from a stale form.
    """

    __slots__ = ("fund_map", "funds", "types")

    def __init__(self, fund_map: Any, symbols: list[str]):
        funds = [fund_map.funds[s] for s in symbols]
        self.fund_map = fund_map  # held, so that its id() in the key is not reused
        self.funds = [(dict(f.exposures), f.expense_ratio, f.financing_spread) for f in funds]
        self.types = list(fund_map.exposure_types.items())

    def matches(self, fund_map: Any, symbols: list[str]) -> bool:
        try:
            funds = list(map(fund_map.funds.__getitem__, symbols))
        except KeyError:
            return False
        return [
            (f.exposures, f.expense_ratio, f.financing_spread) for f in funds
        ] == self.funds and list(fund_map.exposure_types.items()) == self.types


#: Forms already built, by fund map, symbols, the constraints' plain fields (and
#: target-return inputs): (funds read, copies of the constraints' dictionaries, form).
#: Re-solving with the same constraints (another objective, a frontier, a new
#: covariance) skips the 1 ms of building them again at 1,000 funds.
_FORMS: Kept[tuple[_FundSnapshot, dict[str, dict[str, Any]], LinearForm]] = Kept(8)


def _constraints_key(c: OptimizationConstraints) -> tuple[tuple[Any, ...], list[str]] | None:
    """The constraints' plain fields as a key, and the names of their dictionary fields
    (compared by equality on reuse: hashing a 1,000-fund sector map costs more)."""
    plain: list[Any] = []
    dicts: list[str] = []
    for f in fields(c):
        value = getattr(c, f.name)
        if isinstance(value, dict):
            dicts.append(f.name)
        else:
            plain.append(value)
    key = tuple(plain)
    try:
        hash(key)
    except TypeError:  # a list where a number was expected: built afresh, still correct
        return None
    return key, dicts


def _frozen(form: LinearForm) -> LinearForm:
    """Mark a kept form's arrays read-only (shared between calls)."""
    import numpy as np

    for owner in (form, form.calculator):
        for value in vars(owner).values() if owner is not None else ():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
    return form


def _handout(form: LinearForm) -> LinearForm:
    """A kept form with lists of its own (the arrays are read-only)."""
    return replace(
        form,
        symbols=list(form.symbols),
        eq_names=list(form.eq_names),
        ub_names=list(form.ub_names),
        exposure_types=list(form.exposure_types),
        general_only=list(form.general_only),
    )


def linear_form(
    symbols: list[str],
    constraints: OptimizationConstraints,
    fund_map: Any,
    *,
    exposure_types: list[str] | None = None,
    expected_returns: Any = None,
) -> LinearForm:
    """Translate ``constraints`` into matrices and check cheap contradictions first.

    The last few forms are kept: the same fund map, funds, constraints (and expected
    returns, when a target return makes them a row) give back the kept form, after
    checking that none of the funds changed. Its arrays are read-only.

    Raises
    ------
    ValidationError
        A constraint names an unknown exposure type, group or fund.
    InfeasibleError
        Bounds contradict each other (min > max, sum of minimums > 100%, a floor no mix
        of the given funds can reach, ...). The error's ``conflicts`` names them.
    """
    import numpy as np

    from core.exposures import upper_symbols

    symbols = upper_symbols(symbols)
    keyed = _constraints_key(constraints)
    if keyed is None:
        return _linear_form(symbols, constraints, fund_map, exposure_types, expected_returns)
    ckey, dict_names = keyed
    mu_key = None
    if constraints.target_return is not None and expected_returns is not None:
        mu_key = np.asarray(expected_returns, dtype=float).tobytes()
    key = (
        id(fund_map), tuple(symbols), ckey,
        None if exposure_types is None else tuple(exposure_types), mu_key,
    )  # fmt: skip
    kept = _FORMS.get(key)
    if (
        kept is not None
        and all(getattr(constraints, name) == kept[1][name] for name in dict_names)
        and kept[0].matches(fund_map, symbols)
    ):
        return _handout(kept[2])
    form = _linear_form(symbols, constraints, fund_map, exposure_types, expected_returns)
    # values are numbers, names or (lo, hi) bounds; a bound given as a list is copied
    # too, so that editing it in place is seen
    copies = {
        name: {
            k: list(v) if isinstance(v, list) else v for k, v in getattr(constraints, name).items()
        }
        for name in dict_names
    }
    _FORMS.put(key, (_FundSnapshot(fund_map, form.symbols), copies, _frozen(form)))
    return _handout(form)


def _linear_form(
    symbols: list[str],
    constraints: OptimizationConstraints,
    fund_map: Any,
    exposure_types: list[str] | None,
    expected_returns: Any,
) -> LinearForm:
    """:func:`linear_form` without the kept forms."""
    import numpy as np

    from core.errors import InfeasibleError
    from core.exposures import AssetGroup, ExposureCalculator

    c = constraints  # symbols: upper case (linear_form)
    every = ExposureCalculator(fund_map, symbols)  # one pass over the funds
    used = every.exposure_types
    wanted = list(exposure_types) if exposure_types is not None else list(used)
    for name in ("max_exposure_per_type", "min_exposure_per_type"):
        for code in getattr(c, name):
            code_u = code.upper()
            if code_u not in fund_map.exposure_types:
                raise ValidationError(
                    f"{name} names unknown exposure type {code!r}", field=f"{name}.{code}"
                )
            if code_u not in wanted:
                wanted.append(code_u)
    calc = every if wanted == used else every.with_types(wanted)  # extras: zero rows
    E = calc.matrix
    n = len(symbols)
    has_cash = c.max_cash > 0 or c.min_cash > 0
    nv = n + (1 if has_cash else 0)

    conflicts: list[str] = []
    unknown = [s for s in c.fund_bounds if s.upper() not in symbols]
    if unknown:
        raise ValidationError(
            f"fund_bounds name funds not in the optimization: {', '.join(unknown)}",
            field=f"fund_bounds.{unknown[0]}",
        )
    lb = np.zeros(nv)
    ub = np.zeros(nv)
    # the defaults at once, then the funds with bounds of their own (a call per fund
    # cost 1 ms at 1,000 funds)
    position = {s: i for i, s in enumerate(symbols)}
    own = [position[s.upper()] for s in c.fund_bounds if s.upper() in position]
    lb[:n], ub[:n] = c.default_bounds()
    for i in own:
        lb[i], ub[i] = c.bounds_for(symbols[i])
    for i in np.flatnonzero(lb[:n] > ub[:n] + 1e-12):
        s = symbols[i]
        conflicts.append(f"bounds of {s}: minimum {lb[i]:.2%} > maximum {ub[i]:.2%}")
    if has_cash:
        lb[n], ub[n] = c.min_cash, c.max_cash
        if c.min_cash > c.max_cash:
            conflicts.append(f"cash: minimum {c.min_cash:.2%} > maximum {c.max_cash:.2%}")
    if c.min_weight > c.max_weight:
        conflicts.append(f"min_weight {c.min_weight:.2%} > max_weight {c.max_weight:.2%}")
    if not conflicts:
        if lb.sum() > 1 + 1e-9:
            conflicts.append(f"the minimum weights (and cash) sum to {lb.sum():.2%}, over 100%")
        if ub.sum() < 1 - 1e-9:
            conflicts.append(
                f"the maximum weights (and cash) sum to only {ub.sum():.2%}, under 100%; "
                "raise max_weight or allow cash"
            )

    general_only: list[str] = []
    if c.max_turnover is not None:
        general_only.append("turnover limit")
    if c.transaction_cost_bps:
        general_only.append("transaction costs")
    shorts = bool(np.any(lb[:n] < 0))

    rows: list[np.ndarray] = []
    rhs: list[float] = []
    names: list[str] = []
    signs: list[float] = []  # -1 for floors written as -a'w <= -b, to report in user terms

    def add(row_w: np.ndarray, bound: float, name: str) -> None:
        row = np.zeros(nv)
        row[:n] = row_w
        rows.append(row)
        rhs.append(float(bound))
        names.append(name)
        signs.append(-1.0 if name.startswith(("min_", "target_")) or ">=" in name else 1.0)

    lbw, ubw = lb[:n], ub[:n]

    for code, cap in c.max_exposure_per_type.items():
        k = wanted.index(code.upper())
        add(E[k], cap, f"max_exposure[{code.upper()}] <= {cap:.2%}")
    for code, floor in c.min_exposure_per_type.items():
        k = wanted.index(code.upper())
        add(-E[k], -floor, f"min_exposure[{code.upper()}] >= {floor:.2%}")
        cap = c.max_exposure_per_type.get(code)
        if cap is not None and floor > cap:
            conflicts.append(f"exposure {code}: floor {floor:.2%} > cap {cap:.2%}")

    group_of = {g.value: g for g in AssetGroup}
    for name in ("max_exposure_per_group", "min_exposure_per_group"):
        for grp in getattr(c, name):
            if grp.lower() not in group_of:
                raise ValidationError(
                    f"{name} names unknown group {grp!r}; use one of {', '.join(group_of)}",
                    field=f"{name}.{grp}",
                )
    types_of_group = {
        g: [k for k, code in enumerate(wanted) if fund_map.exposure_types[code].group == g]
        for g in AssetGroup
    }
    for grp, cap in c.max_exposure_per_group.items():
        ks = types_of_group[group_of[grp.lower()]]
        add(E[ks].sum(axis=0), cap, f"max_group_exposure[{grp}] <= {cap:.2%}")
    for grp, floor in c.min_exposure_per_group.items():
        ks = types_of_group[group_of[grp.lower()]]
        add(-E[ks].sum(axis=0), -floor, f"min_group_exposure[{grp}] >= {floor:.2%}")
        cap = c.max_exposure_per_group.get(grp)
        if cap is not None and floor > cap:
            conflicts.append(f"group {grp}: floor {floor:.2%} > cap {cap:.2%}")

    if c.sector_limits:
        mapper = {k.upper(): v for k, v in c.sector_mapper.items()}
        sector_of = np.array([mapper.get(s, "") for s in symbols], dtype=object)
        for sector, (lo, hi) in c.sector_limits.items():
            member = (sector_of == sector).astype(float)
            if not member.any():
                raise ValidationError(
                    f"sector limit {sector!r} has no member among the funds; "
                    "assign funds to it in sector_mapper",
                    field=f"sector_limits.{sector}",
                )
            if hi is not None:
                add(member, hi, f"sector[{sector}] <= {hi:.2%}")
            if lo is not None:
                add(-member, -lo, f"sector[{sector}] >= {lo:.2%}")
            if lo is not None and hi is not None and lo > hi:
                conflicts.append(f"sector {sector}: minimum {lo:.2%} > maximum {hi:.2%}")

    if c.max_total_notional is not None:
        if shorts:
            general_only.append("gross notional limit with short positions")
        else:
            add(
                calc.notionals,
                c.max_total_notional,
                f"max_total_notional <= {c.max_total_notional:.2%}",
            )

    if c.target_return is not None and expected_returns is not None:
        mu = np.asarray(expected_returns, dtype=float)
        add(-mu, -c.target_return, f"target_return >= {c.target_return:.2%}")

    A_ub = np.array(rows).reshape(len(rows), nv)
    b_ub = np.array(rhs)
    A_eq = np.ones((1, nv))
    b_eq = np.array([1.0])

    # Cheap reachability: each single row against bounds + budget alone (a knapsack).
    if not conflicts and not shorts:
        cash_lo = lb[n] if has_cash else 0.0
        cash_hi = ub[n] if has_cash else 0.0
        for row, b, name, sign in zip(A_ub, b_ub, names, signs, strict=True):
            best = None
            for cash in {cash_lo, cash_hi}:
                val = _greedy_extreme(row[:n], lbw, ubw, 1.0 - cash, maximise=False)
                if val is not None:
                    best = val if best is None else min(best, val)
            if best is not None and best > b + 1e-9:
                conflicts.append(
                    f"{name} cannot be met by any mix of these funds within their bounds "
                    f"(best reachable {sign * best:.2%})"
                )
    if conflicts:
        raise InfeasibleError(
            "The constraints contradict each other: " + "; ".join(conflicts), conflicts
        )
    return LinearForm(
        symbols=symbols,
        has_cash=has_cash,
        lb=lb,
        ub=ub,
        A_eq=A_eq,
        b_eq=b_eq,
        eq_names=["budget: weights + cash = 100%"],
        A_ub=A_ub,
        b_ub=b_ub,
        ub_names=names,
        exposure_types=wanted,
        exposure_matrix=E,
        notionals=calc.notionals,
        general_only=general_only,
        calculator=calc,
    )


def diagnose_infeasibility(form: LinearForm) -> list[str]:
    """Names of a small set of constraints that together admit no portfolio.

    A deletion filter over the named rows (bounds and budget always kept): drop one
    row; if the rest is still infeasible the row is not needed for the conflict.
    Each test is one LP feasibility check with HiGHS, so this costs milliseconds.
    """
    import numpy as np
    from scipy.optimize import linprog

    def feasible(keep: list[int]) -> bool:
        res = linprog(
            np.zeros(form.n_vars),
            A_ub=form.A_ub[keep] if keep else None,
            b_ub=form.b_ub[keep] if keep else None,
            A_eq=form.A_eq,
            b_eq=form.b_eq,
            bounds=list(zip(form.lb, form.ub, strict=True)),
            method="highs",
        )
        return res.status == 0

    keep = list(range(form.A_ub.shape[0]))
    if feasible(keep):
        return []
    if not feasible([]):
        return ["weight bounds and the 100% budget"]
    for i in list(keep):
        trial = [j for j in keep if j != i]
        if not feasible(trial):
            keep = trial
    return [form.ub_names[i] for i in keep] + ["weight bounds and the 100% budget"]
