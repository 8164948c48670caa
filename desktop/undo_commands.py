"""Undo commands: every edit of the workspace goes through one of these.

Each command snapshots the parts of the workspace it changes (portfolio, prices, fund map,
constraints, views, settings, name) when it is created, and swaps copies in on redo and
undo, then tells the session which parts changed so tabs refresh. Snapshots are copies,
never the live objects, so a later edit cannot reach into the undo history.

Constructors validate with core and raise :class:`~core.errors.ValidationError` BEFORE
anything is pushed, so a refused edit leaves both the workspace and the stack untouched::

    try:
        session.undo_stack.push(SetSharesCommand(session, "RSSB", 1500))
    except ValidationError as exc:
        show_inline(str(exc))
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

from PySide6.QtGui import QUndoCommand

from core.errors import ValidationError, WorkspaceError
from core.exposures import FundDefinition, FundExposureMap
from core.optimization.constraints import MarketView, OptimizationConstraints
from core.portfolio import Holding, Portfolio, normalise_symbol
from core.workspace import check_settings
from desktop.session import Session

#: Parts of a workspace a command can change.
PARTS = ("name", "portfolio", "prices", "fund_map", "constraints", "views", "settings")

#: Exposure of a fund the user adds before saying what it holds (percent of NAV).
PLACEHOLDER_EXPOSURES = {"US_EQUITY": 100.0}
PLACEHOLDER_NOTE = (
    "placeholder added by StackOpt: 100% US equity until you enter its real exposures on "
    "the Fund Exposures tab"
)


def placeholder_fund(symbol: str, name: str = "") -> FundDefinition:
    """A fund-map entry for an unknown symbol: 100% US equity, marked as a placeholder."""
    return FundDefinition(
        symbol=normalise_symbol(symbol),
        name=name,
        exposures=dict(PLACEHOLDER_EXPOSURES),
        source=PLACEHOLDER_NOTE,
        notes="placeholder",
    )


def is_placeholder(fund: FundDefinition | None) -> bool:
    return fund is not None and fund.notes == "placeholder"


def _copy(part: str, value: Any) -> Any:
    if part == "portfolio":
        return value.copy()
    if part == "fund_map":
        return value.copy()
    if part == "constraints":
        return value.copy()
    if part in ("views", "prices"):
        return copy.deepcopy(value)
    if part == "settings":
        return dict(value)
    return value


def _get(session: Session, part: str) -> Any:
    ws = session.workspace
    if part == "prices":
        return (dict(ws.prices), ws.price_date, ws.price_source)
    return getattr(ws, part)


def _set(session: Session, part: str, value: Any) -> None:
    """Put ``value`` into the workspace, in place where the part is a mutable object.

    Tabs may keep a reference to the workspace's fund map, constraints, views or settings
    (the Fund Exposures, Constraints and Views commands restore in place too), so those
    objects keep their identity; the portfolio is always re-read from the workspace.
    """
    ws = session.workspace
    if part == "prices":
        table, ws.price_date, ws.price_source = value
        ws.prices.clear()
        ws.prices.update(table)
    elif part == "fund_map":
        ws.fund_map.exposure_types = dict(value.exposure_types)
        ws.fund_map.funds = {s: f.copy() for s, f in value.funds.items()}
    elif part == "constraints":
        for f in dataclasses.fields(OptimizationConstraints):
            setattr(ws.constraints, f.name, getattr(value, f.name))
    elif part == "views":
        ws.views[:] = value
    elif part == "settings":
        ws.settings.clear()
        ws.settings.update(value)
    else:
        setattr(ws, part, value)


class WorkspaceEdit(QUndoCommand):
    """Replace some parts of the workspace; undo puts the old parts back.

    Parameters
    ----------
    session : Session
    text : str
        What the Edit menu shows ("Undo <text>").
    changes : mapping part -> new value
        Parts from :data:`PARTS`. ``prices`` is a tuple ``(symbol -> price, date, source)``.
    """

    def __init__(self, session: Session, text: str, changes: Mapping[str, Any]):
        super().__init__(text)
        unknown = sorted(set(changes) - set(PARTS))
        if unknown:
            raise ValueError(f"unknown workspace part(s): {', '.join(unknown)}")
        self._session = session
        self._old = {p: _copy(p, _get(session, p)) for p in changes}
        self._new = {p: _copy(p, v) for p, v in changes.items()}

    @property
    def parts(self) -> set[str]:
        return set(self._new)

    def _apply(self, values: Mapping[str, Any]) -> None:
        for part, value in values.items():
            _set(self._session, part, _copy(part, value))
        self._session.notify(set(values))

    def redo(self) -> None:
        self._apply(self._new)

    def undo(self) -> None:
        self._apply(self._old)


# ------------------------------------------------------------------ holdings
def _rebuilt(portfolio: Portfolio, *, allow_short: bool | None = None) -> Portfolio:
    short = portfolio.allow_short if allow_short is None else allow_short
    return Portfolio(portfolio.holdings, portfolio.cash, portfolio.currency, allow_short=short)


def _shorts_allowed(session: Session) -> bool:
    return not session.workspace.constraints.long_only


def _check_number(value: Any, what: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{what} must be a number, got {value!r}", field=field)
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(f"{what} must be a finite number, got {value!r}", field=field)
    return number


def _short_refused(symbol: str, shares: float) -> ValidationError:
    return ValidationError(
        f"{symbol}: {shares:,.4g} shares is a short position, and the constraints are long "
        "only; enter 0 or more shares, or untick 'Long only' on the Constraints tab first",
        field="shares",
    )


class SetSharesCommand(WorkspaceEdit):
    """Change the share count of one holding."""

    def __init__(self, session: Session, symbol: str, shares: float):
        ws = session.workspace
        symbol = normalise_symbol(symbol)
        if symbol not in ws.portfolio:
            raise ValidationError(f"{symbol} is not held; add it first", field="symbol")
        shares = _check_number(shares, f"{symbol}: shares", "shares")
        if shares < 0 and not _shorts_allowed(session):
            raise _short_refused(symbol, shares)
        portfolio = _rebuilt(ws.portfolio, allow_short=ws.portfolio.allow_short or shares < 0)
        portfolio.set_shares(symbol, shares)
        super().__init__(session, f"set {symbol} shares to {shares:,.6g}", {"portfolio": portfolio})


class SetPriceCommand(WorkspaceEdit):
    """Set the price of one symbol in the workspace price table."""

    def __init__(self, session: Session, symbol: str, price: float):
        ws = session.workspace
        symbol = normalise_symbol(symbol)
        price = _check_number(price, f"{symbol}: price", "price")
        if price <= 0:
            raise ValidationError(
                f"{symbol}: price {price:g} is not positive; enter the latest price per share",
                field="price",
            )
        prices = dict(ws.prices)
        prices[symbol] = price
        super().__init__(
            session,
            f"set {symbol} price to {price:,.2f}",
            {"prices": (prices, ws.price_date, ws.price_source)},
        )


class SetCashCommand(WorkspaceEdit):
    """Set the cash position (negative is a margin loan: only when shorts are allowed)."""

    def __init__(self, session: Session, cash: float):
        ws = session.workspace
        cash = _check_number(cash, "cash", "cash")
        if cash < 0 and not _shorts_allowed(session):
            raise ValidationError(
                f"cash {cash:,.2f} is negative (a margin loan) and the constraints are long "
                "only; enter 0 or more, or untick 'Long only' on the Constraints tab first",
                field="cash",
            )
        portfolio = _rebuilt(ws.portfolio, allow_short=ws.portfolio.allow_short or cash < 0)
        portfolio.cash = cash
        super().__init__(session, f"set cash to {cash:,.2f}", {"portfolio": portfolio})


class AddHoldingCommand(WorkspaceEdit):
    """Add one holding; ``add_placeholder`` also adds an unknown symbol to the fund map.

    Raises
    ------
    ValidationError
        Bad symbol, already held, short while long only, bad price, or a symbol not in the
        fund map without ``add_placeholder`` (``field='fund_map'``: the caller may ask the
        user and retry with ``add_placeholder=True``).
    """

    def __init__(
        self,
        session: Session,
        symbol: str,
        shares: float,
        price: float | None = None,
        *,
        name: str = "",
        add_placeholder: bool = False,
    ):
        ws = session.workspace
        symbol = normalise_symbol(symbol)
        shares = _check_number(shares, f"{symbol}: shares", "shares")
        if symbol in ws.portfolio:
            raise ValidationError(
                f"{symbol} is already held; change its shares in the table instead",
                field="symbol",
            )
        if shares < 0 and not _shorts_allowed(session):
            raise _short_refused(symbol, shares)
        changes: dict[str, Any] = {}
        if symbol not in ws.fund_map:
            if not add_placeholder:
                raise ValidationError(
                    f"{symbol} is not in the fund map; add it there (Fund Exposures tab) or "
                    "add it as a placeholder",
                    field="fund_map",
                )
            fund_map = ws.fund_map.copy()
            fund_map.add_fund(placeholder_fund(symbol, name))
            changes["fund_map"] = fund_map
        portfolio = _rebuilt(ws.portfolio, allow_short=ws.portfolio.allow_short or shares < 0)
        portfolio.add(Holding(symbol, shares, name=name))
        changes["portfolio"] = portfolio
        if price is not None:
            price = _check_number(price, f"{symbol}: price", "price")
            if price <= 0:
                raise ValidationError(f"{symbol}: price must be positive", field="price")
            prices = dict(ws.prices)
            prices[symbol] = price
            changes["prices"] = (prices, ws.price_date, ws.price_source)
        elif shares != 0 and symbol not in ws.prices:
            raise ValidationError(
                f"{symbol}: no price known; type its latest price per share", field="price"
            )
        super().__init__(session, f"add {symbol}", changes)


class RemoveHoldingsCommand(WorkspaceEdit):
    """Remove holdings (the fund stays in the fund map; undo restores the order)."""

    def __init__(self, session: Session, symbols: Iterable[str]):
        ws = session.workspace
        wanted = [normalise_symbol(s) for s in symbols]
        missing = [s for s in wanted if s not in ws.portfolio]
        if missing:
            raise ValidationError(f"not held: {', '.join(missing)}", field="symbol")
        if not wanted:
            raise ValidationError("select the holdings to remove first", field="symbol")
        portfolio = _rebuilt(ws.portfolio)
        for s in wanted:
            portfolio.remove(s)
        text = f"remove {wanted[0]}" if len(wanted) == 1 else f"remove {len(wanted)} holdings"
        super().__init__(session, text, {"portfolio": portfolio})


class ImportHoldingsCommand(WorkspaceEdit):
    """Apply an accepted holdings import in one undo step.

    Parameters
    ----------
    holdings : list of Holding
        The rows to import (already combined per symbol). Their prices go to the price
        table; the holdings themselves are stored without a price.
    cash : float or None
        New cash (None keeps the current cash; with ``merge`` it is added to it).
    merge : bool
        False replaces every holding; True adds shares to the current holdings.
    new_funds : list of FundDefinition
        Placeholders for symbols not in the fund map.
    """

    def __init__(
        self,
        session: Session,
        holdings: list[Holding],
        cash: float | None = None,
        *,
        merge: bool = False,
        new_funds: Iterable[FundDefinition] = (),
        source: str = "",
    ):
        ws = session.workspace
        changes: dict[str, Any] = {}
        fund_map = ws.fund_map
        new_funds = list(new_funds)
        if new_funds:
            fund_map = ws.fund_map.copy()
            for fund in new_funds:
                fund_map.add_fund(fund)
            changes["fund_map"] = fund_map
        unknown = [h.symbol for h in holdings if h.symbol not in fund_map]
        if unknown:
            raise ValidationError(
                f"not in the fund map: {', '.join(unknown)}; add them as placeholders or "
                "leave them out",
                field="fund_map",
            )
        short = not ws.constraints.long_only
        rows = [Holding(h.symbol, h.shares, None, h.account, h.name) for h in holdings]
        if merge:
            current = ws.portfolio
            base = [Holding(h.symbol, h.shares, None, h.account, h.name) for h in current]
            rows = base + rows
            new_cash = current.cash + (cash or 0.0)
        else:
            new_cash = ws.portfolio.cash if cash is None else cash
        negative = [h.symbol for h in rows if h.shares < 0]
        if (negative or new_cash < 0) and not short:
            what = ", ".join(negative) if negative else "cash"
            raise ValidationError(
                f"short positions ({what}) while the constraints are long only; untick "
                "'Long only' on the Constraints tab first",
                field="shares",
            )
        changes["portfolio"] = Portfolio.combine(
            rows,
            new_cash,
            ws.portfolio.currency,
            allow_short=ws.portfolio.allow_short or bool(negative) or new_cash < 0,
        )
        prices = dict(ws.prices)
        priced = {h.symbol: h.price for h in holdings if h.price is not None}
        if priced:
            prices.update(priced)
            changes["prices"] = (prices, ws.price_date, ws.price_source)
        text = f"import {len(holdings)} holdings" + (f" from {source}" if source else "")
        super().__init__(session, text, changes)


class SetPricesCommand(WorkspaceEdit):
    """Update the price table (latest prices from loaded market data)."""

    def __init__(
        self, session: Session, prices: Mapping[str, float], date: str | None, source: str
    ):
        ws = session.workspace
        table = dict(ws.prices)
        for symbol, price in prices.items():
            value = _check_number(float(price), f"{symbol}: price", "price")
            if value <= 0:
                raise ValidationError(f"{symbol}: price must be positive", field="price")
            table[normalise_symbol(symbol)] = value
        super().__init__(session, f"update {len(prices)} prices", {"prices": (table, date, source)})


# ------------------------------------------------------------ other sections
class SetSettingsCommand(WorkspaceEdit):
    """Change workspace settings (validated with :func:`core.workspace.check_settings`)."""

    def __init__(self, session: Session, changes: Mapping[str, Any], text: str = ""):
        merged = {**session.workspace.settings, **changes}
        try:
            settings = check_settings(merged)
        except WorkspaceError as exc:
            raise ValidationError(str(exc), field=exc.field) from None
        super().__init__(session, text or "change settings", {"settings": settings})


class SetFundMapCommand(WorkspaceEdit):
    """Replace the fund map with an edited copy."""

    def __init__(self, session: Session, fund_map: FundExposureMap, text: str = "edit fund map"):
        super().__init__(session, text, {"fund_map": fund_map})


class SetConstraintsCommand(WorkspaceEdit):
    """Replace the constraints with an edited copy."""

    def __init__(
        self,
        session: Session,
        constraints: OptimizationConstraints,
        text: str = "edit constraints",
    ):
        super().__init__(session, text, {"constraints": constraints})


class SetViewsCommand(WorkspaceEdit):
    """Replace the list of market views."""

    def __init__(self, session: Session, views: list[MarketView], text: str = "edit views"):
        super().__init__(session, text, {"views": views})


class RenameWorkspaceCommand(WorkspaceEdit):
    def __init__(self, session: Session, name: str):
        name = name.strip()
        if not name:
            raise ValidationError("the workspace name cannot be empty", field="name")
        super().__init__(session, f"rename to {name}", {"name": name})
