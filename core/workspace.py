"""The workspace document: holdings, fund map, constraints, views, settings, prices.

File format (version 2)
-----------------------
One UTF-8 JSON object::

    {
      "format": "stackopt-workspace",
      "version": 2,
      "name": "My portfolio",
      "saved_at": "2026-08-01T12:00:00+00:00",
      "portfolio": Portfolio.to_dict(),            # holdings in shares, cash, currency
      "fund_map": FundExposureMap.to_dict(),       # the FULL map, not just the held funds
      "constraints": OptimizationConstraints.to_dict(),   # fractions (0.40 = 40%)
      "views": [MarketView.to_dict(), ...],        # fractions
      "settings": {"risk_free_rate": 0.02, ...},   # see SETTINGS_RULES
      "prices": {"date": "2026-07-31", "source": "...", "values": {"RSSB": 30.24, ...}}
    }

An autosave file is the same document plus an ``"autosave"`` object naming the file it
shadows. Nothing is ever evaluated or unpickled: the file is parsed with :mod:`json` and
every field is type-checked. Errors raise :class:`~core.errors.WorkspaceError` whose
``field`` is the path of the offending field (``"portfolio.holdings[3].shares"``,
``"constraints.max_weight"``), or None when the file as a whole is unreadable.

Version 1 (the first release) and its migration
-----------------------------------------------
Version 1 stored ``"holdings"`` as an object ``symbol -> shares`` with ``"cash"`` and
``"currency"`` at the top level, every constraint value in PERCENT (``"max_weight": 40``;
``transaction_cost_bps`` was already in basis points), views with ``expected_return`` and
``confidence`` in percent, ``settings.risk_free_rate`` in percent, and ``"prices"`` as an
object ``symbol -> price`` next to a top-level ``"price_date"``. :func:`_migrate_v1_to_v2`
converts such a document; files newer than :data:`SCHEMA_VERSION` are refused.

Prices
------
``Workspace.prices`` is the price table (symbol -> latest price, as of ``price_date``).
Holdings may also carry their own price; :meth:`Workspace.priced_portfolio` returns the
portfolio priced from the table, the table winning where both exist.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ValidationError, WorkspaceError
from core.exposures import AssetGroup, ExposureType, FundExposureMap
from core.fileio import atomic_write_text
from core.optimization.constraints import MarketView, OptimizationConstraints
from core.portfolio import Portfolio

FORMAT = "stackopt-workspace"
SCHEMA_VERSION = 2
#: Suggested extension of workspace files.
WORKSPACE_SUFFIX = ".stackopt.json"
#: Extension of autosave files in the recovery folder.
AUTOSAVE_SUFFIX = ".autosave.json"

_TOP_LEVEL = {
    "format",
    "version",
    "name",
    "saved_at",
    "portfolio",
    "fund_map",
    "constraints",
    "views",
    "settings",
    "prices",
    "autosave",
}

#: Settings every workspace has; a file that omits one gets this value.
DEFAULT_SETTINGS: dict[str, Any] = {
    "return_method": "exposure_model",
    "covariance_method": "exposure_model",
    "lookback_years": 20.0,
    "frequency": "monthly",
    "risk_free_rate": 0.02,
    "objective": "max_sharpe",
    "frontier_points": 25,
    "whole_shares": True,
    "cash_buffer": 0.005,
    "min_trade_value": 100.0,
    "rebalance_band": 0.0,
    "ticket_format": "generic",
}


def _objective_values() -> set[str]:
    from core.optimization.results import ObjectiveType

    return {o.value for o in ObjectiveType}


def _return_methods() -> tuple[str, ...]:
    from core.optimization.estimators import RETURN_METHODS

    return RETURN_METHODS


def _covariance_methods() -> tuple[str, ...]:
    from core.optimization.estimators import COVARIANCE_METHODS

    return COVARIANCE_METHODS


#: Known settings: key -> (kind, check or None, what a valid value is).
#: Kinds: "text", "number" (finite int/float), "integer", "bool". Other keys are free-form
#: but must be plain JSON values (text, finite numbers, true/false, null, lists, objects).
SETTINGS_RULES: dict[str, tuple[str, Callable[[Any], bool] | None, str]] = {
    "return_method": (
        "text",
        lambda v: v in _return_methods(),
        "an expected-return method of ReturnEstimator",
    ),
    "covariance_method": (
        "text",
        lambda v: v in _covariance_methods(),
        "a covariance method of ReturnEstimator",
    ),
    "lookback_years": ("number", lambda v: 0 < v <= 100, "between 0 and 100 years"),
    "frequency": (
        "text",
        lambda v: v in ("daily", "weekly", "monthly"),
        "'daily', 'weekly' or 'monthly'",
    ),
    "risk_free_rate": (
        "number",
        lambda v: -0.05 <= v <= 0.5,
        "a fraction between -0.05 and 0.5 (0.02 for 2%)",
    ),
    "objective": (
        "text",
        lambda v: v in _objective_values(),
        "an objective name such as 'max_sharpe'",
    ),
    "frontier_points": ("integer", lambda v: 2 <= v <= 500, "a whole number from 2 to 500"),
    "whole_shares": ("bool", None, "true or false"),
    "cash_buffer": ("number", lambda v: 0 <= v < 1, "a fraction from 0 to 1 (0.01 for 1%)"),
    "min_trade_value": ("number", lambda v: v >= 0, "0 or more, in the portfolio currency"),
    "rebalance_band": ("number", lambda v: 0 <= v < 1, "a fraction from 0 to 1 (0.02 for 2%)"),
    "ticket_format": ("text", lambda v: bool(v.strip()), "a ticket format name"),
    "bl_risk_aversion": ("number", lambda v: 0 < v <= 20, "a number above 0, typically 2.5"),
    "bl_market_weights": (
        "text",
        lambda v: v in ("holdings", "equal"),
        "'holdings' or 'equal'",
    ),
    "bl_tau": ("number", lambda v: 0 < v <= 1, "a number from 0 to 1, typically 0.05"),
}


# ---------------------------------------------------------------------- helpers
def _join(prefix: str, sub: str | None) -> str:
    if not sub:
        return prefix
    if sub.startswith("["):
        return f"{prefix}{sub}"
    return f"{prefix}.{sub}" if prefix else sub


def _fail(message: str, where: str | None) -> WorkspaceError:
    return WorkspaceError(f"{where}: {message}" if where else message, field=where)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # a JSON integer too large for a float (1 followed by 400 zeros)
        return False


def _check_json_value(value: Any, where: str, depth: int = 0) -> None:
    """Plain JSON data only: no NaN, no objects that json cannot write."""
    if depth > 20:
        raise _fail("is nested too deeply", where)
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int | float):
        if not _is_number(value):
            raise _fail(f"must be a finite number, got {value!r}", where)
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_value(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise _fail(f"has a non-text key {k!r}", where)
            _check_json_value(item, f"{where}.{k}", depth + 1)
        return
    raise _fail(
        f"must be plain data (text, number, true/false, list, object), got {value!r}", where
    )


def check_settings(settings: Any) -> dict[str, Any]:
    """Validated settings merged over :data:`DEFAULT_SETTINGS`.

    Raises :class:`WorkspaceError` with ``field='settings.<key>'``.
    """
    if not isinstance(settings, Mapping):
        raise _fail("must be an object of setting -> value", "settings")
    out = dict(DEFAULT_SETTINGS)
    for key, value in settings.items():
        where = f"settings.{key}"
        if not isinstance(key, str) or not key:
            raise _fail(f"setting names must be text, got {key!r}", "settings")
        rule = SETTINGS_RULES.get(key)
        if rule is None:
            _check_json_value(value, where)
            out[key] = value
            continue
        kind, check, wanted = rule
        if kind == "text":
            ok_type = isinstance(value, str)
        elif kind == "bool":
            ok_type = isinstance(value, bool)
        elif kind == "integer":
            ok_type = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok_type = _is_number(value)
        if not ok_type:
            raise _fail(f"must be {wanted}, got {value!r}", where)
        if check is not None and not check(value):
            choices = {
                "objective": sorted(_objective_values()),
                "return_method": _return_methods(),
                "covariance_method": _covariance_methods(),
            }
            if key in choices:
                wanted = "one of " + ", ".join(choices[key])
            raise _fail(f"must be {wanted}, got {value!r}", where)
        out[key] = float(value) if kind == "number" else value
    return out


def validate_constraints(c: OptimizationConstraints, fund_map: FundExposureMap) -> None:
    """Checks across fields and against the fund map that a single field cannot make.

    Contradictions between bounds (a minimum above its maximum, a floor above its cap)
    are NOT refused here: a workspace may hold them while the user is editing (the
    Constraints tab flags them as typed, and the optimizer refuses them with an
    :class:`~core.errors.InfeasibleError` naming them), and saving must never lose what
    the user typed. What is refused is what no edit can mean: percent typed into a
    fraction field, unknown exposure types, groups and funds.

    Raises :class:`ValidationError` whose ``field`` names the constraint field
    (``max_exposure_per_type.GOLDX``, ``min_weight``).
    """

    def bad(message: str, where: str) -> ValidationError:
        return ValidationError(message, field=where)

    # Percent typed into a fraction field is the most common slip.
    for name in ("min_weight", "max_weight", "min_cash", "max_cash"):
        value = getattr(c, name)
        if abs(value) > 10:
            raise bad(f"{name} = {value:g} looks like percent; enter 0.40 for 40%", name)
    if c.max_weight <= 0:
        raise bad(f"max_weight must be above 0, got {c.max_weight:g}", "max_weight")
    for name in ("min_cash", "max_cash"):
        if not 0 <= getattr(c, name) <= 1:
            raise bad(f"{name} must be a fraction from 0 to 1, got {getattr(c, name):g}", name)
    if c.max_total_notional is not None and not 0 < c.max_total_notional <= 20:
        raise bad(
            f"max_total_notional {c.max_total_notional:g} must be above 0 and a fraction "
            "(1.5 for 150%)",
            "max_total_notional",
        )
    if c.target_volatility is not None and not 0 < c.target_volatility <= 2:
        raise bad(
            f"target_volatility {c.target_volatility:g} must be a fraction above 0 (0.10 for 10%)",
            "target_volatility",
        )
    if c.target_return is not None and abs(c.target_return) > 2:
        raise bad(
            f"target_return {c.target_return:g} looks like percent; enter 0.07 for 7%",
            "target_return",
        )
    if c.max_turnover is not None and c.max_turnover < 0:
        raise bad("max_turnover cannot be negative", "max_turnover")
    if c.transaction_cost_bps < 0:
        raise bad("transaction_cost_bps cannot be negative", "transaction_cost_bps")
    for name in ("max_exposure_per_type", "min_exposure_per_type"):
        for code in getattr(c, name):
            if code not in fund_map.exposure_types:
                raise bad(
                    f"unknown exposure type {code!r}; use one of "
                    f"{', '.join(fund_map.exposure_types)}",
                    f"{name}.{code}",
                )
    groups = {g.value for g in AssetGroup}
    for name in ("max_exposure_per_group", "min_exposure_per_group"):
        for grp in getattr(c, name):
            if grp not in groups:
                raise bad(
                    f"unknown asset group {grp!r}; use one of {', '.join(sorted(groups))}",
                    f"{name}.{grp}",
                )
    for symbol in c.fund_bounds:
        if symbol not in fund_map:
            raise bad(f"{symbol} is not in the fund map", f"fund_bounds.{symbol}")
    for symbol in c.sector_mapper:
        if symbol not in fund_map:
            raise bad(f"{symbol} is not in the fund map", f"sector_mapper.{symbol}")


def _check_view_assets(view: MarketView, fund_map: FundExposureMap) -> None:
    unknown = [a for a in view.assets if a not in fund_map and a not in fund_map.exposure_types]
    if unknown:
        raise ValidationError(
            f"{', '.join(unknown)} is neither a fund in the map nor an exposure type",
            field="assets",
        )


def _parse_date(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(f"must be a date like '2026-07-31', got {value!r}", where)
    try:
        return _dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise _fail(f"must be a date like '2026-07-31', got {value!r}", where) from None


def _check_prices(raw: Any) -> tuple[dict[str, float], str | None, str]:
    if not isinstance(raw, Mapping):
        raise _fail("must be an object with 'date', 'source' and 'values'", "prices")
    extra = sorted(set(raw) - {"date", "source", "values"})
    if extra:
        raise _fail(f"unknown field(s) {', '.join(extra)}", f"prices.{extra[0]}")
    date = _parse_date(raw.get("date"), "prices.date")
    source = raw.get("source", "")
    if not isinstance(source, str):
        raise _fail("must be text", "prices.source")
    values = raw.get("values", {})
    if not isinstance(values, Mapping):
        raise _fail("must be an object of symbol -> price", "prices.values")
    out: dict[str, float] = {}
    for symbol, price in values.items():
        where = f"prices.values.{symbol}"
        if not _is_number(price) or price <= 0:
            raise _fail(f"must be a positive price per share, got {price!r}", where)
        key = str(symbol).strip().upper()
        if key in out:
            raise _fail(f"{key} is priced twice", where)
        out[key] = float(price)
    return out, date, source


# ------------------------------------------------------------------- migration
def _percent_to_fraction(value: Any) -> Any:
    # Wrong types pass through untouched so that v2 validation names the field.
    return value / 100.0 if _is_number(value) else value


def _migrate_v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: holdings list, fractions instead of percent, nested prices."""
    out = {k: v for k, v in doc.items() if k not in ("holdings", "cash", "currency", "price_date")}
    holdings = doc.get("holdings", {})
    if not isinstance(holdings, Mapping):
        raise _fail("must be an object of symbol -> shares (version 1 file)", "holdings")
    rows = []
    for symbol, shares in holdings.items():
        if not _is_number(shares):
            raise _fail(f"must be a number of shares, got {shares!r}", f"holdings.{symbol}")
        rows.append({"symbol": symbol, "shares": shares})
    out["portfolio"] = {
        "currency": doc.get("currency", "USD"),
        "cash": doc.get("cash", 0.0),
        "allow_short": False,
        "holdings": rows,
    }
    constraints = doc.get("constraints", {})
    if isinstance(constraints, Mapping):
        c = dict(constraints)
        for name in (
            "min_weight",
            "max_weight",
            "min_cash",
            "max_cash",
            "max_total_notional",
            "target_volatility",
            "target_return",
            "max_turnover",
        ):
            if name in c:
                c[name] = _percent_to_fraction(c[name])
        for name in (
            "max_exposure_per_type",
            "min_exposure_per_type",
            "max_exposure_per_group",
            "min_exposure_per_group",
            "current_weights",
        ):
            if isinstance(c.get(name), Mapping):
                c[name] = {k: _percent_to_fraction(v) for k, v in c[name].items()}
        for name in ("fund_bounds", "sector_limits"):
            if isinstance(c.get(name), Mapping):
                c[name] = {
                    k: [_percent_to_fraction(x) for x in v] if isinstance(v, list) else v
                    for k, v in c[name].items()
                }
        out["constraints"] = c
    views = doc.get("views", [])
    if isinstance(views, list):
        out["views"] = [
            {
                **v,
                "expected_return": _percent_to_fraction(v.get("expected_return", 0.0)),
                "confidence": _percent_to_fraction(v.get("confidence", 50.0)),
            }
            if isinstance(v, Mapping)
            else v
            for v in views
        ]
    settings = doc.get("settings", {})
    if isinstance(settings, Mapping) and "risk_free_rate" in settings:
        out["settings"] = {
            **settings,
            "risk_free_rate": _percent_to_fraction(settings["risk_free_rate"]),
        }
    prices = doc.get("prices", {})
    out["prices"] = {"date": doc.get("price_date"), "source": "", "values": prices}
    out["version"] = 2
    return out


#: version -> function upgrading a document of that version by one step.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _migrate_v1_to_v2}


# -------------------------------------------------------------------- document
def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


@dataclass(eq=False)
class Workspace:
    """Everything the user works on, saved as one versioned JSON file.

    Attributes
    ----------
    name : str
    portfolio : Portfolio
        Holdings in shares plus cash.
    fund_map : FundExposureMap
        The full fund map (every fund the user may buy, not only the held ones).
    constraints : OptimizationConstraints
    views : list of MarketView
    settings : dict
        Estimator, optimizer and trade settings; see :data:`SETTINGS_RULES`. Missing keys
        take :data:`DEFAULT_SETTINGS`.
    prices : dict
        Symbol -> latest price per share, as of ``price_date`` (ISO date), from
        ``price_source``.
    saved_at : str or None
        When the file was last saved (UTC, ISO 8601); not part of equality.
    migrated_from : int or None
        The file version this workspace was upgraded from on load; not saved.
    """

    name: str = "Untitled"
    portfolio: Portfolio = field(default_factory=Portfolio)
    fund_map: FundExposureMap = field(default_factory=FundExposureMap)
    constraints: OptimizationConstraints = field(default_factory=OptimizationConstraints)
    views: list[MarketView] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    prices: dict[str, float] = field(default_factory=dict)
    price_date: str | None = None
    price_source: str = ""
    saved_at: str | None = None
    migrated_from: int | None = None

    def __post_init__(self) -> None:
        self.settings = {**DEFAULT_SETTINGS, **self.settings}
        self.prices = {str(k).strip().upper(): v for k, v in self.prices.items()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workspace):
            return NotImplemented
        return self._content() == other._content()

    def _content(self) -> dict[str, Any]:
        d = self.to_dict()
        d.pop("saved_at", None)
        return d

    # ------------------------------------------------------------------ access
    def setting(self, key: str) -> Any:
        """A setting's value (the default when the workspace does not set it)."""
        if key in self.settings:
            return self.settings[key]
        if key in DEFAULT_SETTINGS:
            return DEFAULT_SETTINGS[key]
        raise KeyError(f"no setting {key!r}")

    def priced_portfolio(self) -> Portfolio:
        """The portfolio with prices from :attr:`prices` applied (the table wins)."""
        return self.portfolio.with_prices(self.prices)

    # --------------------------------------------------------------- serialise
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": FORMAT, "version": SCHEMA_VERSION, "name": self.name}
        if self.saved_at is not None:
            d["saved_at"] = self.saved_at
        d.update(
            portfolio=self.portfolio.to_dict(),
            fund_map=self.fund_map.to_dict(),
            constraints=self.constraints.to_dict(),
            views=[v.to_dict() for v in self.views],
            settings=dict(self.settings),
            prices={
                "date": self.price_date,
                "source": self.price_source,
                "values": {k: float(v) for k, v in self.prices.items()},
            },
        )
        return d

    def to_json(self) -> str:
        """The document as JSON text; raises :class:`WorkspaceError` on unwritable values."""
        try:
            return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise WorkspaceError(
                f"the workspace holds a value JSON cannot store ({exc}); fix the value and "
                "save again"
            ) from exc

    def validate(self) -> None:
        """Raise :class:`WorkspaceError` (with ``field``) if this could not be loaded back."""
        Workspace.from_dict(json.loads(self.to_json()))

    @classmethod
    def from_dict(cls, data: Any) -> Workspace:
        """Parse, migrate and validate a workspace document.

        Raises
        ------
        WorkspaceError
            ``field`` names the offending field path; ``None`` when the document itself
            is not a workspace.
        """
        if not isinstance(data, Mapping):
            raise _fail(
                f"not a StackOpt workspace: expected a JSON object, got {type(data).__name__}",
                None,
            )
        fmt = data.get("format")
        if fmt != FORMAT:
            hint = (
                "; this is a fund map: import it on the Fund Exposures tab"
                if fmt == FundExposureMap.FORMAT
                else ""
            )
            raise _fail(f"not a StackOpt workspace (format is {fmt!r}){hint}", "format")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise _fail(f"must be a whole number from 1 up, got {version!r}", "version")
        if version > SCHEMA_VERSION:
            raise _fail(
                f"this workspace was written by a newer StackOpt (file version {version}; this "
                f"StackOpt reads versions up to {SCHEMA_VERSION}). It was not opened, so that "
                "nothing the newer version stored is lost; update StackOpt to open it",
                "version",
            )
        doc = dict(data)
        migrated_from = version if version < SCHEMA_VERSION else None
        while version < SCHEMA_VERSION:
            doc = MIGRATIONS[version](doc)
            version = doc["version"]

        unknown = sorted(set(doc) - _TOP_LEVEL)
        if unknown:
            raise _fail("unknown field in a workspace file", unknown[0])
        name = doc.get("name", "Untitled")
        if not isinstance(name, str):
            raise _fail(f"must be text, got {name!r}", "name")
        saved_at = doc.get("saved_at")
        if saved_at is not None and not isinstance(saved_at, str):
            raise _fail(f"must be a date-time text, got {saved_at!r}", "saved_at")

        fund_map = cls._section("fund_map", lambda: cls._parse_fund_map(doc.get("fund_map")))
        portfolio = cls._section("portfolio", lambda: Portfolio.from_dict(doc.get("portfolio", {})))
        for i, holding in enumerate(portfolio.holdings):
            if holding.symbol not in fund_map:
                raise _fail(
                    f"{holding.symbol} is not in the workspace's fund map; add it on the Fund "
                    "Exposures tab",
                    f"portfolio.holdings[{i}].symbol",
                )

        def constraints_() -> OptimizationConstraints:
            raw = doc.get("constraints", {})
            if not isinstance(raw, Mapping):
                raise ValidationError("must be an object of constraint -> value", field="")
            c = OptimizationConstraints.from_dict(raw)
            validate_constraints(c, fund_map)
            return c

        constraints = cls._section("constraints", constraints_)
        views_raw = doc.get("views", [])
        if not isinstance(views_raw, list):
            raise _fail("must be a list of views", "views")
        views = []
        for i, raw in enumerate(views_raw):

            def view_(raw: Any = raw) -> MarketView:
                if not isinstance(raw, Mapping):
                    raise ValidationError("a view must be an object", field="")
                view = MarketView.from_dict(raw)
                _check_view_assets(view, fund_map)
                return view

            views.append(cls._section(f"views[{i}]", view_))
        settings = check_settings(doc.get("settings", {}))
        prices, price_date, price_source = _check_prices(
            doc.get("prices", {"date": None, "source": "", "values": {}})
        )
        return cls(
            name=name,
            portfolio=portfolio,
            fund_map=fund_map,
            constraints=constraints,
            views=views,
            settings=settings,
            prices=prices,
            price_date=price_date,
            price_source=price_source,
            saved_at=saved_at,
            migrated_from=migrated_from,
        )

    @staticmethod
    def _section(prefix: str, parse: Callable[[], Any]) -> Any:
        """Run a sub-parser, turning its errors into a WorkspaceError under ``prefix``."""
        try:
            return parse()
        except WorkspaceError as exc:
            raise _fail(str(exc), _join(prefix, exc.field)) from None
        except ValidationError as exc:
            raise _fail(str(exc), _join(prefix, exc.field)) from None
        except (TypeError, KeyError, AttributeError, ValueError, OverflowError) as exc:
            raise _fail(f"is malformed ({exc})", prefix) from None

    @staticmethod
    def _parse_fund_map(raw: Any) -> FundExposureMap:
        if not isinstance(raw, Mapping):
            raise ValidationError("must be an object with a 'funds' list", field="")
        types = raw.get("exposure_types", [])
        if isinstance(types, list):
            # Check each custom type here so the error can say which one.
            for i, t in enumerate(types):
                if not isinstance(t, Mapping):
                    raise ValidationError(
                        "an exposure type must be an object", field=f"exposure_types[{i}]"
                    )
                try:
                    ExposureType.from_dict(t)
                except ValidationError as exc:
                    raise ValidationError(
                        str(exc), field=_join(f"exposure_types[{i}]", exc.field)
                    ) from None
        try:
            return FundExposureMap.from_dict(raw, source="fund_map")
        except ValidationError as exc:
            # The field path already says "fund_map"; drop the loader's own prefix.
            message = str(exc).removeprefix("fund_map: ")
            raise ValidationError(message, field=exc.field, problems=exc.problems) from None

    # -------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the workspace to ``path`` atomically: a crash leaves the old or the new file.

        The document is validated first (a file that could not be opened again is never
        written); on success :attr:`saved_at` is updated.
        """
        path = Path(path)
        previous = self.saved_at
        self.saved_at = _now()
        try:
            text = self.to_json()
            Workspace.from_dict(json.loads(text))
            atomic_write_text(path, text + "\n")
        except WorkspaceError as exc:
            self.saved_at = previous
            exc.path = str(path)
            raise
        except OSError as exc:
            self.saved_at = previous
            raise WorkspaceError(
                f"could not save the workspace to {path}: {exc.strerror or exc}; choose another "
                "folder or free some disk space (the previous file, if any, is unchanged)",
                path=str(path),
            ) from exc
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Workspace:
        """Read a workspace file (migrating older versions). Errors name the file and field."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise WorkspaceError(f"{path}: file not found", path=str(path)) from None
        except IsADirectoryError:
            raise WorkspaceError(f"{path}: is a folder, not a file", path=str(path)) from None
        except OSError as exc:
            raise WorkspaceError(
                f"{path}: cannot be read ({exc.strerror or exc})", path=str(path)
            ) from exc
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise WorkspaceError(
                f"{path}: not a StackOpt workspace (not UTF-8 text)", path=str(path)
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkspaceError(
                f"{path}: not a StackOpt workspace (invalid JSON at line {exc.lineno} column "
                f"{exc.colno}: {exc.msg})",
                path=str(path),
            ) from None
        except RecursionError:
            raise WorkspaceError(f"{path}: JSON nested too deeply", path=str(path)) from None
        try:
            return cls.from_dict(data)
        except WorkspaceError as exc:
            raise WorkspaceError(f"{path}: {exc}", field=exc.field, path=str(path)) from None

    @classmethod
    def sample(cls) -> Workspace:
        """The built-in sample workspace (``resources/sample_workspace.json``)."""
        from core.resources import resource_path

        return cls.load(resource_path("sample_workspace.json"))


# --------------------------------------------------------------------- recovery
def autosave_path(path_or_name: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """Where the autosave of a workspace lives in the recovery ``folder``.

    ``path_or_name`` is the workspace's file path (a ``PathLike``, or text containing a
    folder separator or ending in ``.json``) or, for a workspace never saved, its name.
    The file name is readable (``<stem>-<hash><AUTOSAVE_SUFFIX>``) and the hash of the
    full path keeps two ``portfolio.stackopt.json`` in different folders apart.
    """
    text = os.fspath(path_or_name)
    is_path = (
        isinstance(path_or_name, os.PathLike)
        or os.sep in text
        or (os.altsep is not None and os.altsep in text)
        or text.lower().endswith(".json")
    )
    if is_path:
        p = Path(text).expanduser().resolve()
        stem = p.name.removesuffix(WORKSPACE_SUFFIX).removesuffix(".json")
        key = "file:" + str(p)
    else:
        stem = text
        key = "unsaved:" + text
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:40] or "workspace"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]
    return Path(folder) / f"{safe}-{digest}{AUTOSAVE_SUFFIX}"


def write_autosave(
    ws: Workspace,
    folder: str | os.PathLike[str],
    source: str | os.PathLike[str] | None = None,
) -> Path:
    """Atomically write a recovery copy of ``ws`` into ``folder`` (created if needed).

    ``source`` is the workspace's own file, or None for a workspace never saved (its name
    then identifies the autosave). Returns the autosave's path.
    """
    folder = Path(folder)
    target = autosave_path(source if source is not None else ws.name, folder)
    doc = ws.to_dict()
    doc["autosave"] = {
        "source": str(Path(source).expanduser().resolve()) if source is not None else None,
        "written_at": _now(),
    }
    try:
        text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise WorkspaceError(
            f"cannot autosave: the workspace holds a value JSON cannot store ({exc})"
        ) from exc
    # An autosave that could not be opened again would be no recovery at all.
    Workspace.from_dict(json.loads(text))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text + "\n")
    except OSError as exc:
        raise WorkspaceError(
            f"cannot write the autosave in {folder}: {exc.strerror or exc}", path=str(target)
        ) from exc
    return target


@dataclass(frozen=True)
class AutosaveInfo:
    """One recovery file found by :func:`find_autosave`.

    ``error`` is set (and ``name``/``written_at`` may be empty) when the file cannot be
    loaded; the app should then offer to delete it rather than to recover it.
    """

    path: Path
    source: str | None
    name: str
    written_at: str
    error: str | None = None

    @property
    def newer_than_source(self) -> bool:
        """True unless the source file exists and was modified after the autosave."""
        if not self.source:
            return True
        try:
            return Path(self.source).stat().st_mtime <= self.path.stat().st_mtime
        except OSError:
            return True

    def load(self) -> Workspace:
        return Workspace.load(self.path)


def find_autosave(
    folder: str | os.PathLike[str], path_or_name: str | os.PathLike[str] | None = None
) -> list[AutosaveInfo]:
    """Recovery files in ``folder``, newest first (only ``path_or_name``'s if given)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    if path_or_name is not None:
        candidates = [autosave_path(path_or_name, folder)]
        candidates = [p for p in candidates if p.is_file()]
    else:
        candidates = sorted(folder.glob("*" + AUTOSAVE_SUFFIX))
    found = []
    for p in candidates:
        try:
            ws = Workspace.load(p)
            doc = json.loads(p.read_text(encoding="utf-8-sig"))
            meta = doc.get("autosave") if isinstance(doc.get("autosave"), Mapping) else {}
            source = meta.get("source")
            # The app saves recovered work to ``source``: trust it only if its hash names
            # this very file, so that an edited recovery file cannot choose where to write.
            if not isinstance(source, str) or autosave_path(Path(source), folder).name != p.name:
                source = None
            found.append(
                AutosaveInfo(
                    path=p,
                    source=source,
                    name=ws.name,
                    written_at=str(meta.get("written_at", "")),
                )
            )
        except (WorkspaceError, OSError, ValueError) as exc:
            found.append(AutosaveInfo(path=p, source=None, name="", written_at="", error=str(exc)))
    found.sort(key=lambda a: (a.written_at, a.path.stat().st_mtime), reverse=True)
    return found


def remove_autosave(path_or_name: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Delete the autosave of a workspace (after a normal save or close). True if removed."""
    target = autosave_path(path_or_name, folder)
    try:
        target.unlink()
    except FileNotFoundError:
        return False
    return True
