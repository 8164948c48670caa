"""Holdings in shares plus cash, priced into market values, weights and exposures.

Units
-----
Shares are counts (whole or fractional), prices and cash are in the portfolio currency.
Every weight and exposure returned here is a FRACTION of the portfolio's TOTAL value,
cash included: a $250,000 portfolio with $50,000 of RSSB has an RSSB weight of 0.20 and,
through RSSB's 100% equity + 100% Treasury exposure, 0.20 of each. Cash is an explicit
position reported by :attr:`Portfolio.cash_weight`, never folded into an exposure type.

Duplicates
----------
A portfolio holds each symbol at most once: the constructor, :meth:`Portfolio.add` and
:meth:`Portfolio.from_dict` REFUSE a repeated symbol with a :class:`ValidationError`
naming it. Importers that read several broker accounts combine rows first with
:meth:`Portfolio.combine`, which sums shares per symbol.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.errors import DataError, ValidationError

if TYPE_CHECKING:
    from core.exposures import FundExposureMap

#: Label of the explicit cash position in weight series (``weights(include_cash=True)``).
CASH_LABEL = "CASH"

# Tickers such as BRK.B, BRK-B, ^IRX or BF/B: letters, digits and . - ^ / only.
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9.\-^/]*$|^\^[A-Z0-9.\-/]+$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


def _number(value: Any, field: str, what: str) -> float:
    """A finite float from an int/float/numpy number; strings and bools are wrong types."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValidationError(
            f"{what} must be a number, got {value!r} ({type(value).__name__})", field=field
        )
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise ValidationError(f"{what} must be a finite number, got {value!r}", field=field)
    return number


def normalise_symbol(symbol: Any, field: str = "symbol") -> str:
    """Upper-case, stripped ticker; raises :class:`ValidationError` if it cannot be one."""
    if not isinstance(symbol, str):
        raise ValidationError(
            f"a symbol must be text, got {symbol!r} ({type(symbol).__name__})", field=field
        )
    text = symbol.strip().upper()
    if not text:
        raise ValidationError("a holding has an empty symbol; type its ticker", field=field)
    if text == CASH_LABEL:
        raise ValidationError(
            f"{CASH_LABEL!r} is reserved for the cash position; enter cash in the cash field, "
            "or hold a T-bill fund such as BIL",
            field=field,
        )
    if not _SYMBOL_RE.match(text):
        raise ValidationError(
            f"{symbol!r} is not a ticker: use letters, digits and . - ^ / only", field=field
        )
    return text


@dataclass(frozen=True)
class Holding:
    """One position: a number of shares of one fund, optionally with its price.

    Parameters
    ----------
    symbol : str
        Ticker; stored upper case.
    shares : float
        Number of shares (fractional allowed). Negative (short) only in a portfolio built
        with ``allow_short=True``.
    price : float or None
        Latest price per share in the portfolio currency; ``None`` until priced. Must be
        positive when given.
    account : str
        Free-text broker account label.
    name : str
        Free-text fund name.
    """

    symbol: str
    shares: float
    price: float | None = None
    account: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        symbol = normalise_symbol(self.symbol)
        shares = _number(self.shares, "shares", f"{symbol}: shares")
        price = self.price
        if price is not None:
            price = _number(price, "price", f"{symbol}: price")
            if price <= 0:
                raise ValidationError(
                    f"{symbol}: price {price:g} is not positive; enter the latest price per share",
                    field="price",
                )
        if not isinstance(self.account, str) or not isinstance(self.name, str):
            raise ValidationError(f"{symbol}: account and name must be text", field="account")
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "shares", shares)
        object.__setattr__(self, "price", price)

    @property
    def market_value(self) -> float:
        """``shares * price``; 0 for a zero-share holding even when unpriced."""
        if self.shares == 0:
            return 0.0
        if self.price is None:
            raise DataError(
                f"{self.symbol} has no price; load prices or type one on the Holdings tab",
                column=self.symbol,
            )
        return self.shares * self.price

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "symbol": self.symbol,
            # Whole shares are written as integers so the file reads as the user typed it.
            "shares": int(self.shares) if self.shares.is_integer() else self.shares,
        }
        if self.price is not None:
            d["price"] = self.price
        d["account"] = self.account
        d["name"] = self.name
        return d


class Portfolio:
    """Holdings in shares plus cash, in one currency.

    Parameters
    ----------
    holdings : iterable of Holding, or mapping symbol -> shares
        At most one holding per symbol (see the module docstring). Zero-share holdings
        are allowed: they name funds the optimizer may buy.
    cash : float
        Cash in the portfolio currency. Negative (a margin loan) only with
        ``allow_short=True``.
    currency : str
        ISO code, e.g. ``"USD"``.
    allow_short : bool
        Allow negative shares and negative cash.

    Notes
    -----
    :meth:`add`, :meth:`remove` and :meth:`set_shares` change the portfolio in place;
    :meth:`with_prices` returns a new one. Values (:meth:`market_values`,
    :attr:`total_value`, :meth:`weights`) need a positive price for every holding with
    non-zero shares and raise :class:`DataError` naming the unpriced symbols otherwise.
    """

    def __init__(
        self,
        holdings: Iterable[Holding] | Mapping[str, float] = (),
        cash: float = 0.0,
        currency: str = "USD",
        *,
        allow_short: bool = False,
    ):
        if not isinstance(allow_short, bool):
            raise ValidationError("allow_short must be true or false", field="allow_short")
        self.allow_short = allow_short
        if not isinstance(currency, str) or not _CURRENCY_RE.match(currency.strip().upper()):
            raise ValidationError(
                f"currency must be a three-letter code such as 'USD', got {currency!r}",
                field="currency",
            )
        self.currency = currency.strip().upper()
        self._cash = self._check_cash(cash)
        self._holdings: dict[str, Holding] = {}
        if isinstance(holdings, Mapping):
            holdings = [Holding(symbol, shares) for symbol, shares in holdings.items()]
        for i, holding in enumerate(holdings):
            try:
                self.add(holding)
            except ValidationError as exc:
                raise ValidationError(str(exc), field=f"holdings[{i}].{exc.field}") from None

    # ------------------------------------------------------------------ checks
    def _check_cash(self, cash: Any) -> float:
        value = _number(cash, "cash", "cash")
        if value < 0 and not self.allow_short:
            raise ValidationError(
                f"cash {value:,.2f} is negative (a margin loan); enter 0 or more, or allow "
                "short positions and borrowing",
                field="cash",
            )
        return value

    def _check_holding(self, holding: Holding) -> Holding:
        if not isinstance(holding, Holding):
            raise ValidationError(
                f"expected a Holding, got {type(holding).__name__}", field="symbol"
            )
        if holding.shares < 0 and not self.allow_short:
            raise ValidationError(
                f"{holding.symbol}: {holding.shares:g} shares is a short position; enter 0 "
                "or more shares, or allow short positions",
                field="shares",
            )
        return holding

    # ------------------------------------------------------------------ access
    @property
    def holdings(self) -> list[Holding]:
        """The holdings in insertion order (a copy of the list; holdings are immutable)."""
        return list(self._holdings.values())

    @property
    def symbols(self) -> list[str]:
        return list(self._holdings)

    @property
    def cash(self) -> float:
        return self._cash

    @cash.setter
    def cash(self, value: float) -> None:
        self._cash = self._check_cash(value)

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol.strip().upper() in self._holdings

    def __getitem__(self, symbol: str) -> Holding:
        try:
            return self._holdings[symbol.strip().upper()]
        except KeyError:
            raise KeyError(f"{symbol!r} is not held in this portfolio") from None

    def __iter__(self) -> Iterator[Holding]:
        return iter(self._holdings.values())

    def __len__(self) -> int:
        return len(self._holdings)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Portfolio):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"Portfolio({len(self)} holdings, cash={self._cash:,.2f} {self.currency}, "
            f"allow_short={self.allow_short})"
        )

    def copy(self) -> Portfolio:
        return Portfolio(self.holdings, self._cash, self.currency, allow_short=self.allow_short)

    # ---------------------------------------------------------------- mutation
    def add(self, holding: Holding) -> None:
        """Add a new holding; a symbol already held is refused (use :meth:`set_shares`)."""
        holding = self._check_holding(holding)
        if holding.symbol in self._holdings:
            raise ValidationError(
                f"{holding.symbol} is already in the portfolio; change its shares instead of "
                "adding it twice",
                field="symbol",
            )
        self._holdings[holding.symbol] = holding

    def remove(self, symbol: str) -> Holding:
        """Remove and return the holding of ``symbol``."""
        key = symbol.strip().upper()
        if key not in self._holdings:
            raise KeyError(f"{symbol!r} is not held in this portfolio")
        return self._holdings.pop(key)

    def set_shares(self, symbol: str, shares: float) -> None:
        """Set the share count of a held symbol (add it first if it is not held)."""
        old = self[symbol]
        self._holdings[old.symbol] = self._check_holding(replace(old, shares=shares))

    @classmethod
    def combine(
        cls,
        holdings: Iterable[Holding],
        cash: float = 0.0,
        currency: str = "USD",
        *,
        allow_short: bool = False,
    ) -> Portfolio:
        """Build a portfolio from rows that may repeat a symbol (several accounts).

        Shares of a repeated symbol are summed; accounts are joined with ``" + "``; the
        price is kept if the rows agree (or only one row has one), otherwise refused.
        """
        merged: dict[str, Holding] = {}
        for holding in holdings:
            prev = merged.get(holding.symbol)
            if prev is None:
                merged[holding.symbol] = holding
                continue
            if (
                prev.price is not None
                and holding.price is not None
                and not math.isclose(prev.price, holding.price, rel_tol=1e-9)
            ):
                raise ValidationError(
                    f"{holding.symbol} appears twice with different prices "
                    f"({prev.price:g} and {holding.price:g}); use one price per symbol",
                    field="price",
                )
            accounts = [a for a in prev.account.split(" + ") if a]
            if holding.account and holding.account not in accounts:
                accounts.append(holding.account)
            merged[holding.symbol] = Holding(
                holding.symbol,
                prev.shares + holding.shares,
                prev.price if prev.price is not None else holding.price,
                " + ".join(accounts),
                prev.name or holding.name,
            )
        return cls(merged.values(), cash, currency, allow_short=allow_short)

    # ------------------------------------------------------------------ prices
    def with_prices(self, prices: Mapping[str, float] | pd.Series) -> Portfolio:
        """A copy whose holdings take their price from ``prices`` where it names them.

        Symbols in ``prices`` that are not held are ignored; held symbols absent from
        ``prices`` keep their current price. A price that is not a positive finite number
        raises :class:`ValidationError` naming the symbol.
        """
        table = {str(k).strip().upper(): v for k, v in prices.items()}
        out = Portfolio(currency=self.currency, cash=self._cash, allow_short=self.allow_short)
        for holding in self._holdings.values():
            if holding.symbol in table:
                try:
                    holding = replace(holding, price=table[holding.symbol])
                except ValidationError as exc:
                    raise ValidationError(str(exc), field=f"prices.{holding.symbol}") from None
            out._holdings[holding.symbol] = holding
        return out

    def missing_prices(self) -> list[str]:
        """Symbols with non-zero shares and no price."""
        return [h.symbol for h in self._holdings.values() if h.shares != 0 and h.price is None]

    @property
    def prices(self) -> pd.Series:
        """Price per holding (NaN where unpriced), index = symbols."""
        return pd.Series(
            [np.nan if h.price is None else h.price for h in self._holdings.values()],
            index=pd.Index(self.symbols, dtype=object),
            dtype=float,
            name="price",
        )

    # ------------------------------------------------------------------ values
    def market_values(self) -> pd.Series:
        """Market value per holding (shares x price), index = symbols, in ``currency``.

        Raises
        ------
        DataError
            If a holding with non-zero shares has no price; the message lists every one.
        """
        missing = self.missing_prices()
        if missing:
            raise DataError(
                f"no price for {', '.join(missing)}; load prices or type them on the "
                "Holdings tab before valuing the portfolio",
                column=missing[0],
            )
        return pd.Series(
            [h.market_value for h in self._holdings.values()],
            index=pd.Index(self.symbols, dtype=object),
            dtype=float,
            name="market_value",
        )

    @property
    def invested_value(self) -> float:
        """Sum of the holdings' market values (cash excluded)."""
        return float(self.market_values().sum())

    @property
    def total_value(self) -> float:
        """Market value of all holdings plus cash."""
        return self.invested_value + self._cash

    def _positive_total(self) -> float:
        total = self.total_value
        if total <= 0:
            raise ValidationError(
                f"the portfolio's total value is {total:,.2f} {self.currency}; weights need a "
                "positive total (add holdings or cash)",
                field="cash",
            )
        return total

    def weights(self, include_cash: bool = False) -> pd.Series:
        """Weight of each holding as a fraction of TOTAL value (cash included).

        Parameters
        ----------
        include_cash : bool
            Append the cash weight as a row labelled :data:`CASH_LABEL`; the series then
            sums to 1.

        Returns
        -------
        pd.Series, shape (N,) or (N + 1,)
        """
        total = self._positive_total()
        w = self.market_values() / total
        w.name = "weight"
        if include_cash:
            w = pd.concat([w, pd.Series({CASH_LABEL: self._cash / total})])
            w.name = "weight"
        return w

    @property
    def cash_weight(self) -> float:
        """Cash as a fraction of total value."""
        return self._cash / self._positive_total()

    # --------------------------------------------------------------- exposures
    def _calculator(self, fund_map: FundExposureMap):
        from core.exposures import ExposureCalculator

        return ExposureCalculator(fund_map, self.symbols)

    def exposures(self, fund_map: FundExposureMap) -> pd.Series:
        """``x = E w``: exposure per type as a fraction of total value.

        Cash is NOT counted as a ``CASH_TBILL`` exposure; it is :attr:`cash_weight`. A
        T-bill fund (BIL) does show as ``CASH_TBILL`` because the fund map says so.

        Returns
        -------
        pd.Series, shape (K,)
            Index = every exposure type the holdings carry.
        """
        return self._calculator(fund_map).portfolio_exposures(self.weights())

    def exposures_by_group(self, fund_map: FundExposureMap) -> pd.Series:
        """Exposure summed per asset-class group (fractions of total value)."""
        return self._calculator(fund_map).exposure_by_group(self.weights())

    def total_notional(self, fund_map: FundExposureMap) -> float:
        """``sum_i |w_i| notional_i`` as a fraction of total value (cash adds nothing)."""
        return self._calculator(fund_map).total_notional(self.weights())

    # --------------------------------------------------------------- serialise
    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "cash": self._cash,
            "allow_short": self.allow_short,
            "holdings": [h.to_dict() for h in self._holdings.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Portfolio:
        """Inverse of :meth:`to_dict`; errors carry ``field`` like ``holdings[3].shares``."""
        if not isinstance(data, Mapping):
            raise ValidationError("a portfolio must be an object", field="")
        unknown = sorted(set(data) - {"currency", "cash", "allow_short", "holdings"})
        if unknown:
            raise ValidationError(
                f"unknown portfolio field(s): {', '.join(unknown)}", field=unknown[0]
            )
        rows = data.get("holdings", [])
        if not isinstance(rows, list):
            raise ValidationError("holdings must be a list of holdings", field="holdings")
        portfolio = cls(
            cash=data.get("cash", 0.0),
            currency=data.get("currency", "USD"),
            allow_short=data.get("allow_short", False),
        )
        for i, row in enumerate(rows):
            where = f"holdings[{i}]"
            if not isinstance(row, Mapping):
                raise ValidationError(f"{where} must be an object", field=where)
            extra = sorted(set(row) - {"symbol", "shares", "price", "account", "name"})
            if extra:
                raise ValidationError(
                    f"{where}: unknown field(s) {', '.join(extra)}", field=f"{where}.{extra[0]}"
                )
            for key in ("symbol", "shares"):
                if key not in row:
                    raise ValidationError(f"{where} has no {key}", field=f"{where}.{key}")
            try:
                holding = Holding(
                    symbol=row["symbol"],
                    shares=row["shares"],
                    price=row.get("price"),
                    account=row.get("account", ""),
                    name=row.get("name", ""),
                )
                portfolio.add(holding)
            except ValidationError as exc:
                raise ValidationError(str(exc), field=f"{where}.{exc.field}") from None
        return portfolio
