"""Trade tickets: files a broker loads, and readers that read them back.

Formats
-------
``generic_csv``
    One header row ``Account,Symbol,Side,Quantity,OrderType,LimitPrice,TimeInForce`` and
    one row per order. For any broker with a CSV order import, and for review.
``ibkr_basket``
    Interactive Brokers TWS BasketTrader file, as IBKR documents it ("Manually Create a
    Basket File" and "Basket Fields" in the TWS User Guide, ibkrguides.com): a header row
    of TWS field names (``Action,Quantity,Symbol,SecType,Exchange,Currency,TimeInForce,
    OrderType`` and ``LmtPrice`` for limit orders, then ``BasketTag`` and ``Account``),
    followed by order rows with exactly one value per header field. Market and limit
    orders need different header rows, so a new header row starts each block whose fields
    differ. No space after a comma, no comma inside a value (TWS cannot read either); the
    BasketTag is letters and digits only. Sells come before buys.
``ibkr_rebalance``
    TWS Rebalance Portfolio window import: one ``DES`` contract line per position whose
    LAST field is the target percent of net liquidation value
    (``DES,SPY,STK,SMART,,,,,,40.0``), the layout TWS's own Export writes. Target
    percentages, not orders: TWS computes the orders itself.
``tradestation``
    TradeStation Basket Order window trade list (TradeStation Help, "Editing a Trade List
    Text File"): ``Symbol, Exchange ID, #Quantity, Market`` or ``..., Limit, price`` per
    line. The list has NO buy/sell field (the side is chosen when the basket is sent), so
    one list per side is written; nor an account or time-in-force field (the window sets
    them). TradeStation also requires an average of at least 100 shares per order.
``excel``
    An .xlsx workbook for review (openpyxl): a Trades sheet with the orders and the
    plan's estimates, and a Summary sheet.

Every text cell passes through :func:`core.fileio.neutralise_cell` (a cell starting with
``= + - @`` gets a leading apostrophe so a spreadsheet shows it as text); readers remove
that apostrophe again. Numbers are written as numbers and never altered. Every file is
written atomically: an error leaves the old file (or none), never half a file.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError, ValidationError
from core.fileio import (
    atomic_write_bytes,
    atomic_write_text,
    decode_bytes,
    neutralise_cell,
    restore_cell,
)
from core.optimization.trades import SIDES, Trade, TradePlan

#: Order types a ticket carries (IBKR/TWS codes).
ORDER_TYPES = ("MKT", "LMT")
#: Time-in-force values (IBKR/TWS codes).
TIME_IN_FORCE = ("DAY", "GTC", "IOC", "FOK", "OPG")
#: Columns of the generic CSV ticket, in order.
GENERIC_COLUMNS = (
    "Account",
    "Symbol",
    "Side",
    "Quantity",
    "OrderType",
    "LimitPrice",
    "TimeInForce",
)
#: IBKR BasketTrader fields of a market order, in the order IBKR's own example uses.
IBKR_BASKET_FIELDS = (
    "Action",
    "Quantity",
    "Symbol",
    "SecType",
    "Exchange",
    "Currency",
    "TimeInForce",
    "OrderType",
)
#: Columns of the Trades sheet of the Excel ticket.
EXCEL_COLUMNS = (
    *GENERIC_COLUMNS,
    "EstimatedPrice",
    "EstimatedValue",
    "EstimatedCommission",
    "WeightBefore",
    "WeightAfter",
    "Reason",
)
#: Fields of one TWS Rebalance line: DES, symbol, sec type, exchange, five contract
#: placeholders (expiry, strike, right, multiplier, trading class), target percent.
_REBALANCE_FIELDS = 10

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ALNUM = re.compile(r"^[A-Za-z0-9]+$")


class TicketFormat(StrEnum):
    """File formats :func:`read_ticket` recognises."""

    GENERIC_CSV = "generic_csv"
    IBKR_BASKET = "ibkr_basket"
    IBKR_REBALANCE = "ibkr_rebalance"
    TRADESTATION = "tradestation"
    EXCEL = "excel"

    @property
    def label(self) -> str:
        return {
            "generic_csv": "Generic CSV ticket",
            "ibkr_basket": "Interactive Brokers BasketTrader CSV",
            "ibkr_rebalance": "Interactive Brokers Rebalance Portfolio CSV",
            "tradestation": "TradeStation trade list",
            "excel": "Excel workbook",
        }[self.value]


# --------------------------------------------------------------------------- orders
@dataclass(frozen=True)
class Order:
    """One line of a ticket: what the broker is told to do.

    Parameters
    ----------
    symbol : str
        Ticker (stored stripped, upper case).
    side : {'BUY', 'SELL'}
    quantity : float
        Shares, positive.
    order_type : {'MKT', 'LMT'}
    limit_price : float or None
        Required for ``LMT``, absent for ``MKT``.
    time_in_force : {'DAY', 'GTC', 'IOC', 'FOK', 'OPG'}
    account : str
        Broker account ('' = the account the file is loaded into).
    """

    symbol: str
    side: str
    quantity: float
    order_type: str = "MKT"
    limit_price: float | None = None
    time_in_force: str = "DAY"
    account: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol.strip():
            raise ValidationError(f"an order needs a symbol, got {self.symbol!r}", field="symbol")
        symbol = self.symbol.strip().upper()
        for name in ("symbol", "account"):
            value = getattr(self, name)
            if not isinstance(value, str) or "\n" in value or "\r" in value:
                raise ValidationError(
                    f"{symbol}: {name} must be one line of text, got {value!r}", field=name
                )
        side = self.side.strip().upper() if isinstance(self.side, str) else self.side
        if side not in SIDES:
            raise ValidationError(
                f"{symbol}: side must be BUY or SELL, got {self.side!r}", field="side"
            )
        quantity = self.quantity
        if (
            isinstance(quantity, bool)
            or not isinstance(quantity, int | float | np.integer | np.floating)
            or not math.isfinite(float(quantity))
            or float(quantity) <= 0
        ):
            raise ValidationError(
                f"{symbol}: quantity must be a positive number, got {quantity!r}",
                field="quantity",
            )
        order_type = (
            self.order_type.strip().upper() if isinstance(self.order_type, str) else self.order_type
        )
        if order_type not in ORDER_TYPES:
            raise ValidationError(
                f"{symbol}: order type must be one of {', '.join(ORDER_TYPES)}, got "
                f"{self.order_type!r}",
                field="order_type",
            )
        limit = self.limit_price
        if order_type == "LMT":
            if (
                limit is None
                or isinstance(limit, bool)
                or not isinstance(limit, int | float | np.integer | np.floating)
                or not math.isfinite(float(limit))
                or float(limit) <= 0
            ):
                raise ValidationError(
                    f"{symbol}: a limit order needs a positive limit price, got {limit!r}",
                    field="limit_price",
                )
            limit = float(limit)
        elif limit is not None:
            raise ValidationError(
                f"{symbol}: a market order has no limit price (got {limit!r}); use order type "
                "LMT for a limit order",
                field="limit_price",
            )
        tif = (
            self.time_in_force.strip().upper()
            if isinstance(self.time_in_force, str)
            else self.time_in_force
        )
        if tif not in TIME_IN_FORCE:
            raise ValidationError(
                f"{symbol}: time in force must be one of {', '.join(TIME_IN_FORCE)}, got "
                f"{self.time_in_force!r}",
                field="time_in_force",
            )
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "side", side)
        object.__setattr__(self, "quantity", float(quantity))
        object.__setattr__(self, "order_type", order_type)
        object.__setattr__(self, "limit_price", limit)
        object.__setattr__(self, "time_in_force", tif)
        object.__setattr__(self, "account", self.account.strip())

    def to_trade(self) -> Trade:
        """The order as a :class:`Trade` (estimated price = limit price, else unknown)."""
        price = self.limit_price if self.limit_price is not None else math.nan
        return Trade(
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            estimated_price=price,
            estimated_value=self.quantity * price,
            account=self.account,
        )


def _sells_first(orders: Iterable[Order]) -> list[Order]:
    # Stable: the generator's order within each side is kept.
    return sorted(orders, key=lambda o: o.side == "BUY")


TradesLike = TradePlan | Sequence[Trade] | Sequence[Order]


def orders_from_trades(
    trades: TradesLike,
    *,
    account: str = "",
    order_type: str = "MKT",
    time_in_force: str = "DAY",
    limit_prices: Mapping[str, float] | pd.Series | None = None,
) -> list[Order]:
    """Orders for ``trades``, sells first.

    Parameters
    ----------
    trades : TradePlan, list of Trade or list of Order
        Orders are used as they are (the other arguments must then be left at their
        defaults).
    account : str
        Account for every order; '' keeps each trade's own account.
    order_type : {'MKT', 'LMT'}
        With ``LMT`` every symbol needs a price in ``limit_prices``.
    time_in_force : str
    limit_prices : dict or Series, optional
        Limit price per symbol, for ``LMT`` orders only.
    """
    items = list(trades.trades if isinstance(trades, TradePlan) else trades)
    if items and all(isinstance(t, Order) for t in items):
        if account or order_type != "MKT" or time_in_force != "DAY" or limit_prices is not None:
            raise ValidationError(
                "these are already orders: set account, order type, time in force and limit "
                "prices on the orders themselves",
                field="orders",
            )
        return _sells_first(items)  # type: ignore[arg-type]
    bad = [type(t).__name__ for t in items if not isinstance(t, Trade)]
    if bad:
        raise ValidationError(
            f"expected trades or orders, got {bad[0]}; pass a TradePlan, Trades or Orders",
            field="trades",
        )
    kind = order_type.strip().upper() if isinstance(order_type, str) else order_type
    table = {str(k).strip().upper(): v for k, v in (limit_prices or {}).items()}
    if kind != "LMT" and table:
        raise ValidationError(
            "limit prices were given for market orders; choose order type LMT to use them",
            field="limit_prices",
        )
    orders = []
    for t in items:  # type: ignore[assignment]
        limit = None
        if kind == "LMT":
            if t.symbol not in table:
                raise ValidationError(
                    f"{t.symbol}: a limit order needs a limit price; add it to limit_prices",
                    field=f"limit_prices.{t.symbol}",
                )
            limit = table[t.symbol]
        orders.append(
            Order(
                symbol=t.symbol,
                side=t.side,
                quantity=t.quantity,
                order_type=kind,
                limit_price=limit,
                time_in_force=time_in_force,
                account=account or t.account,
            )
        )
    return _sells_first(orders)


# --------------------------------------------------------------------------- cells
def _text(value: str) -> str:
    out = neutralise_cell(value)
    assert isinstance(out, str)
    return out


_untext = restore_cell


def _num(value: float) -> str:
    """A number as plain text: integers without decimals, never exponent notation."""
    x = float(value)
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return np.format_float_positional(x, trim="-")


def _parse_num(text: str, what: str, path: Path, row: int, column: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{what} {text!r} is not a number", path=str(path), row=row, column=column)
    return value


def _order(path: Path, row: int, **kw: Any) -> Order:
    try:
        return Order(**kw)
    except ValidationError as exc:
        raise DataError(str(exc), path=str(path), row=row, column=exc.field) from None


def _lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError("ticket file not found", path=str(path)) from None
    return decode_bytes(raw, str(path)).splitlines()


# --------------------------------------------------------------------------- generic
def write_generic_csv(
    trades: TradesLike,
    path: str | os.PathLike[str],
    account: str = "",
    order_type: str = "MKT",
    time_in_force: str = "DAY",
    limit_prices: Mapping[str, float] | pd.Series | None = None,
) -> Path:
    """Write the generic CSV ticket (columns :data:`GENERIC_COLUMNS`); returns the path."""
    orders = orders_from_trades(
        trades,
        account=account,
        order_type=order_type,
        time_in_force=time_in_force,
        limit_prices=limit_prices,
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(GENERIC_COLUMNS)
    for o in orders:
        writer.writerow(
            [
                _text(o.account),
                _text(o.symbol),
                o.side,
                _num(o.quantity),
                o.order_type,
                "" if o.limit_price is None else _num(o.limit_price),
                o.time_in_force,
            ]
        )
    path = Path(path)
    atomic_write_text(path, buf.getvalue())
    return path


def read_generic_csv(path: str | os.PathLike[str]) -> list[Order]:
    """Read a generic CSV ticket; columns are found by name, in any order."""
    path = Path(path)
    rows = list(csv.reader(_lines(path)))
    start = next((i for i, r in enumerate(rows) if any(c.strip() for c in r)), None)
    if start is None:
        raise DataError("the ticket is empty", path=str(path))
    header = [c.strip().lower() for c in rows[start]]
    where = {}
    for col in GENERIC_COLUMNS:
        if col.lower() not in header:
            raise DataError(
                f"the ticket has no {col} column; expected {','.join(GENERIC_COLUMNS)}",
                path=str(path),
                row=start + 1,
            )
        where[col] = header.index(col.lower())
    orders = []
    for i, cells in enumerate(rows[start + 1 :], start=start + 2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < len(header):
            raise DataError(
                f"row has {len(cells)} fields, the header {len(header)}", path=str(path), row=i
            )

        def cell(col: str, cells: list[str] = cells) -> str:
            return cells[where[col]].strip()

        limit = cell("LimitPrice")
        orders.append(
            _order(
                path,
                i,
                symbol=_untext(cell("Symbol")),
                side=cell("Side"),
                quantity=_parse_num(cell("Quantity"), "quantity", path, i, "Quantity"),
                order_type=cell("OrderType"),
                limit_price=_parse_num(limit, "limit price", path, i, "LimitPrice")
                if limit
                else None,
                time_in_force=cell("TimeInForce"),
                account=_untext(cell("Account")),
            )
        )
    return orders


# --------------------------------------------------------------------------- IBKR basket
def _ibkr_value(field_name: str, value: str, symbol: str) -> str:
    """A value TWS can read: no comma, quote or line break, no surrounding spaces."""
    if any(ch in value for ch in ',"\r\n') or value != value.strip():
        raise ValidationError(
            f"{symbol}: the IBKR basket field {field_name} cannot hold {value!r} (TWS refuses "
            "commas, quotes, line breaks and spaces around values); change it",
            field=field_name,
        )
    return value


def write_ibkr_basket_csv(
    trades: TradesLike,
    path: str | os.PathLike[str],
    account: str = "",
    order_type: str = "MKT",
    time_in_force: str = "DAY",
    limit_prices: Mapping[str, float] | pd.Series | None = None,
    *,
    basket_tag: str = "StackOpt",
    exchange: str = "SMART",
    currency: str = "USD",
    sec_type: str = "STK",
    primary_exchanges: Mapping[str, str] | None = None,
) -> Path:
    """Write an Interactive Brokers BasketTrader CSV (see the module docstring).

    Parameters
    ----------
    basket_tag : str
        Letters and digits only; TWS shows it as the Order Reference. '' omits the field.
    exchange : str
        Destination, normally ``SMART``.
    primary_exchanges : dict, optional
        Symbol -> primary exchange; written as ``SMART/ARCA`` to remove ambiguity, as
        IBKR recommends.
    """
    orders = orders_from_trades(
        trades,
        account=account,
        order_type=order_type,
        time_in_force=time_in_force,
        limit_prices=limit_prices,
    )
    if basket_tag and not _ALNUM.match(basket_tag):
        raise ValidationError(
            f"the basket tag {basket_tag!r} must be letters and digits only (IBKR's rule)",
            field="basket_tag",
        )
    primaries = {k.strip().upper(): v for k, v in (primary_exchanges or {}).items()}
    # Within each side: market before limit, without before with an account, so that
    # orders sharing a header row stay together.
    orders = sorted(orders, key=lambda o: (o.side == "BUY", o.order_type == "LMT", o.account))
    lines: list[str] = []
    header: tuple[str, ...] | None = None
    for o in orders:
        fields = list(IBKR_BASKET_FIELDS)
        if o.order_type == "LMT":
            fields.append("LmtPrice")
        if basket_tag:
            fields.append("BasketTag")
        if o.account:
            # Only orders with an account get the field: TWS wants a value per field.
            fields.append("Account")
        if tuple(fields) != header:
            header = tuple(fields)
            lines.append(",".join(header))
        dest = f"{exchange}/{primaries[o.symbol]}" if o.symbol in primaries else exchange
        values = {
            "Action": o.side,
            "Quantity": _num(o.quantity),
            "Symbol": _text(o.symbol),
            "SecType": _text(sec_type),
            "Exchange": _text(dest),
            "Currency": _text(currency),
            "TimeInForce": o.time_in_force,
            "OrderType": o.order_type,
            "LmtPrice": "" if o.limit_price is None else _num(o.limit_price),
            "BasketTag": basket_tag,
            "Account": _text(o.account),
        }
        lines.append(",".join(_ibkr_value(f, values[f], o.symbol) for f in header))
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _is_ibkr_header(cells: list[str]) -> bool:
    return "Action" in cells and "Symbol" in cells and "Quantity" in cells


def read_ibkr_basket_csv(path: str | os.PathLike[str]) -> list[Order]:
    """Read a BasketTrader CSV: every header row applies to the order rows below it."""
    orders, _ = _read_ibkr_basket(Path(path))
    return orders


def _read_ibkr_basket(path: Path) -> tuple[list[Order], dict[str, Any]]:
    header: list[str] | None = None
    orders: list[Order] = []
    tags: set[str] = set()
    for i, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        if _is_ibkr_header([c.strip() for c in cells]):
            header = [c.strip() for c in cells]
            continue
        if header is None:
            raise DataError(
                "an order row comes before any header row (Action,Quantity,Symbol,...)",
                path=str(path),
                row=i,
            )
        if len(cells) != len(header):
            raise DataError(
                f"row has {len(cells)} values but its header row has {len(header)} fields",
                path=str(path),
                row=i,
            )
        row = dict(zip(header, (c.strip() for c in cells), strict=True))
        kind = row.get("OrderType", "MKT").upper()
        if kind not in ORDER_TYPES:
            raise DataError(
                f"order type {kind!r} is not supported here (only MKT and LMT)",
                path=str(path),
                row=i,
                column="OrderType",
            )
        limit = row.get("LmtPrice", "")
        if row.get("BasketTag"):
            tags.add(row["BasketTag"])
        orders.append(
            _order(
                path,
                i,
                symbol=_untext(row.get("Symbol", "")),
                side=row.get("Action", ""),
                quantity=_parse_num(row.get("Quantity", ""), "quantity", path, i, "Quantity"),
                order_type=kind,
                limit_price=_parse_num(limit, "limit price", path, i, "LmtPrice")
                if limit
                else None,
                time_in_force=row.get("TimeInForce", "DAY") or "DAY",
                account=_untext(row.get("Account", "")),
            )
        )
    return orders, {"basket_tags": sorted(tags)}


# --------------------------------------------------------------------------- IBKR rebalance
def _target_weights(targets: Any) -> pd.Series:
    from core.optimization.results import OptimizationResult

    if isinstance(targets, TradePlan):
        return targets.target_weights
    if isinstance(targets, OptimizationResult):
        return targets.weights
    if isinstance(targets, pd.Series):
        return targets
    if isinstance(targets, Mapping):
        return pd.Series(dict(targets), dtype=float)
    raise ValidationError(
        "targets must be a TradePlan, an OptimizationResult, a Series or a dict of weights, "
        f"got {type(targets).__name__}",
        field="targets",
    )


def write_ibkr_rebalance_csv(
    targets: Any,
    path: str | os.PathLike[str],
    *,
    exchange: str = "SMART",
    sec_type: str = "STK",
    primary_exchanges: Mapping[str, str] | None = None,
    decimals: int = 4,
) -> Path:
    """Write target percentages for the TWS Rebalance Portfolio window.

    Parameters
    ----------
    targets : TradePlan, OptimizationResult, Series or dict
        Target weights as FRACTIONS of total value (written as percent). A TradePlan
        also lists every held fund it sells completely, at 0%, so TWS closes it.
    decimals : int
        Decimal places of the written percentages.
    """
    weights = _target_weights(targets)
    primaries = {k.strip().upper(): v for k, v in (primary_exchanges or {}).items()}
    lines = []
    for symbol, weight in weights.items():
        sym = str(symbol).strip().upper()
        w = float(weight)
        if not math.isfinite(w) or w < 0:
            raise ValidationError(
                f"target weight of {sym} is {weight!r}; the Rebalance window needs a percent "
                "of 0 or more",
                field=f"targets.{sym}",
            )
        dest = f"{exchange}/{primaries[sym]}" if sym in primaries else exchange
        cells = [
            "DES",
            _text(sym),
            _text(sec_type),
            _text(dest),
            "",
            "",
            "",
            "",
            "",
            _num(round(w * 100, decimals)),
        ]
        assert len(cells) == _REBALANCE_FIELDS
        lines.append(",".join(_ibkr_value(f"field {k + 1}", c, sym) for k, c in enumerate(cells)))
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def read_ibkr_rebalance_csv(path: str | os.PathLike[str]) -> pd.Series:
    """Target weights (fractions) from a TWS Rebalance file: symbol field 2, percent last."""
    path = Path(path)
    out: dict[str, float] = {}
    for i, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if cells[0].upper() != "DES" or len(cells) < 3:
            raise DataError(
                "a Rebalance line must start with DES,<symbol>,<type>,...", path=str(path), row=i
            )
        symbol = _untext(cells[1]).upper()
        if symbol in out:
            raise DataError(f"{symbol} appears twice", path=str(path), row=i)
        out[symbol] = _parse_num(cells[-1], "target percent", path, i, "percent") / 100.0
    return pd.Series(
        list(out.values()), index=pd.Index(list(out), dtype=object), dtype=float, name="target"
    )


# --------------------------------------------------------------------------- TradeStation
def write_tradestation_csv(
    trades: TradesLike,
    path: str | os.PathLike[str],
    *,
    side: str | None = None,
    exchange_ids: Mapping[str, int | str] | None = None,
    default_exchange_id: int | str | None = None,
    order_type: str = "MKT",
    limit_prices: Mapping[str, float] | pd.Series | None = None,
    enforce_minimum_average: bool = True,
) -> Path:
    """Write one TradeStation trade list (one side: the list has no buy/sell field).

    Parameters
    ----------
    side : {'BUY', 'SELL'}, optional
        Which orders to write. Needed when ``trades`` holds both sides (or use
        :func:`write_tradestation_trade_lists`, which writes one file per side).
    exchange_ids, default_exchange_id
        TradeStation's exchange ID per symbol (its help shows ``DELL, 18, ...`` and
        ``SPY, 25, ...``). The IDs are TradeStation's own: save a one-line trade list from
        its Basket Order window to see the one for your funds.
    enforce_minimum_average : bool
        TradeStation refuses a list whose average order is under 100 shares; raise a
        ValidationError instead of writing a file it would refuse.
    """
    orders = orders_from_trades(trades, order_type=order_type, limit_prices=limit_prices)
    if side is not None:
        side = side.strip().upper()
        if side not in SIDES:
            raise ValidationError(f"side must be BUY or SELL, got {side!r}", field="side")
        orders = [o for o in orders if o.side == side]
    elif len({o.side for o in orders}) > 1:
        raise ValidationError(
            "a TradeStation trade list has no buy/sell field, and these orders buy AND sell; "
            "write one list per side (side='SELL' then side='BUY', or "
            "write_tradestation_trade_lists)",
            field="side",
        )
    if not orders:
        raise ValidationError("there are no orders to write for this side", field="side")
    accounts = sorted({o.account for o in orders if o.account})
    if len(accounts) > 1:
        # The list has no account field either: it goes to the account picked in the window.
        raise ValidationError(
            f"a TradeStation trade list has no account field, and these orders are for "
            f"{', '.join(accounts)}; write one list per account",
            field="account",
        )
    ids = {k.strip().upper(): v for k, v in (exchange_ids or {}).items()}
    lines = []
    for o in orders:
        if not float(o.quantity).is_integer():
            raise ValidationError(
                f"{o.symbol}: TradeStation trade lists take whole shares, got {o.quantity:g}",
                field="quantity",
            )
        ex = ids.get(o.symbol, default_exchange_id)
        if ex is None or str(ex).strip() == "":
            raise ValidationError(
                f"{o.symbol}: TradeStation needs its exchange ID; pass exchange_ids or "
                "default_exchange_id (save a trade list from TradeStation's Basket Order window "
                "to see the IDs it uses)",
                field="exchange_ids",
            )
        cells = [_text(o.symbol), _text(str(ex).strip()), f"#{int(o.quantity)}"]
        if o.order_type == "LMT":
            assert o.limit_price is not None
            cells += ["Limit", _num(o.limit_price)]
        else:
            cells.append("Market")
        lines.append(", ".join(_ibkr_value("trade list", c, o.symbol) for c in cells))
    average = sum(o.quantity for o in orders) / len(orders)
    if enforce_minimum_average and average < 100:
        raise ValidationError(
            f"TradeStation requires an average of at least 100 shares per order in a trade "
            f"list; these orders average {average:.1f}. Use the generic or IBKR ticket, or "
            "enter the orders by hand",
            field="quantity",
        )
    path = Path(path)
    atomic_write_text(path, "\r\n".join(lines) + "\r\n")
    return path


def write_tradestation_trade_lists(
    trades: TradesLike, path: str | os.PathLike[str], **kwargs: Any
) -> dict[str, Path]:
    """Write ``<stem>_SELL<suffix>`` and ``<stem>_BUY<suffix>`` (for the sides present).

    Load and send the SELL list first, so that cash is there when the buys execute.
    Keyword arguments go to :func:`write_tradestation_csv`.
    """
    path = Path(path)
    orders = orders_from_trades(
        trades,
        order_type=kwargs.pop("order_type", "MKT"),
        limit_prices=kwargs.pop("limit_prices", None),
    )
    out: dict[str, Path] = {}
    for side in ("SELL", "BUY"):
        mine = [o for o in orders if o.side == side]
        if mine:
            target = path.with_name(f"{path.stem}_{side}{path.suffix or '.txt'}")
            out[side] = write_tradestation_csv(mine, target, side=side, **kwargs)
    return out


_TS_LINE = re.compile(r"^[^,\t]+[,\t][^,\t]*[,\t]\s*[#$]")


def read_tradestation_csv(path: str | os.PathLike[str], side: str | None = None) -> list[Order]:
    """Read a TradeStation trade list.

    The list carries no side: give ``side``, or name the file ``..._BUY`` / ``..._SELL``
    (as :func:`write_tradestation_trade_lists` does). Time in force is not in the list
    and reads as DAY.
    """
    path = Path(path)
    if side is None:
        stem = path.stem.upper()
        side = "BUY" if stem.endswith("_BUY") else "SELL" if stem.endswith("_SELL") else None
    if side is None:
        raise DataError(
            "a TradeStation trade list does not say buy or sell; pass side='BUY' or 'SELL'",
            path=str(path),
        )
    orders = []
    for i, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        cells = [c.strip() for c in re.split(r"[,\t]", line)]
        if len(cells) < 4:
            raise DataError(
                "expected Symbol, Exchange ID, #Quantity, Order type[, Limit]",
                path=str(path),
                row=i,
            )
        qty = cells[2]
        if not qty.startswith("#"):
            raise DataError(
                f"quantity {qty!r} is not in shares (#); dollar amounts are not supported",
                path=str(path),
                row=i,
                column="Quantity",
            )
        kind = cells[3].lower()
        if kind == "market":
            order_type, limit = "MKT", None
        elif kind == "limit":
            if len(cells) < 5 or not cells[4]:
                raise DataError("a Limit order needs a price", path=str(path), row=i)
            order_type = "LMT"
            try:
                limit = float(cells[4])
            except ValueError:
                raise DataError(
                    f"limit {cells[4]!r} is not a price (auto limits such as Join are not "
                    "supported)",
                    path=str(path),
                    row=i,
                    column="Limit",
                ) from None
        else:
            raise DataError(
                f"order type {cells[3]!r} is not supported (Market or Limit)",
                path=str(path),
                row=i,
                column="Order Type",
            )
        orders.append(
            _order(
                path,
                i,
                symbol=_untext(cells[0]),
                side=side,
                quantity=_parse_num(qty[1:], "quantity", path, i, "Quantity"),
                order_type=order_type,
                limit_price=limit,
            )
        )
    return orders


# --------------------------------------------------------------------------- Excel
_FMT_MONEY = "#,##0.00"
_FMT_SHARES = "#,##0"
_FMT_SHARES_FRAC = "#,##0.0000"
_FMT_WEIGHT = "0.00%"
_FMT_NUMBER = "#,##0.00##"


def _summary_rows(summary: Any) -> list[tuple[str, Any, str | None]]:
    """(label, value, number format) rows of the Summary sheet."""
    rows: list[tuple[str, Any, str | None]] = []
    if summary is None:
        return rows
    if isinstance(summary, TradePlan):
        plan = summary
        weight_keys = {"turnover", "max_abs_drift"}
        for key, value in plan.summary().items():
            if isinstance(value, dict):
                continue
            fmt = _FMT_WEIGHT if key in weight_keys else (None if "n_" in key else _FMT_MONEY)
            rows.append((key, value, fmt))
        for note in plan.warnings:
            rows.append(("warning", note, None))
        for note in plan.cap_violations:
            rows.append(("cap broken", note, None))
        return rows
    if not isinstance(summary, Mapping):
        raise ValidationError(
            f"summary must be a TradePlan or a dict, got {type(summary).__name__}",
            field="summary",
        )
    for key, value in summary.items():
        if isinstance(value, Mapping):
            for sub, v in value.items():
                rows.append((f"{key}: {sub}", v, None))
        else:
            rows.append((str(key), value, None))
    return rows


def write_excel(
    trades: TradesLike,
    path: str | os.PathLike[str],
    summary: TradePlan | Mapping[str, Any] | None = None,
    account: str = "",
    order_type: str = "MKT",
    time_in_force: str = "DAY",
    limit_prices: Mapping[str, float] | pd.Series | None = None,
) -> Path:
    """Write an .xlsx ticket for review: a Trades sheet and a Summary sheet.

    ``trades`` may be a TradePlan, whose summary, per-fund weights and exposures then fill
    the Summary sheet unless ``summary`` is given. Numbers are stored as numbers with
    number formats (shares, money, percent); the header row is bold.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    plan = trades if isinstance(trades, TradePlan) else None
    if summary is None and plan is not None:
        summary = plan
    orders = orders_from_trades(
        trades,
        account=account,
        order_type=order_type,
        time_in_force=time_in_force,
        limit_prices=limit_prices,
    )
    items = list(plan.trades if plan is not None else trades)
    # orders_from_trades sorts sells first, stably: the same sort pairs each order with its
    # trade (orders given as Orders carry no estimates).
    paired: list[Trade | None] = (
        sorted(items, key=lambda t: t.side == "BUY")  # type: ignore[arg-type]
        if items and isinstance(items[0], Trade)
        else [None] * len(orders)
    )

    wb = Workbook()
    ws = wb.active
    ws.title = "Trades"
    bold = Font(bold=True)
    ws.append(list(EXCEL_COLUMNS))
    for o, t in zip(orders, paired, strict=True):

        def est(value: float | None) -> float | None:
            return None if value is None or math.isnan(value) else float(value)

        ws.append(
            [
                _text(o.account),
                _text(o.symbol),
                o.side,
                o.quantity,
                o.order_type,
                o.limit_price,
                o.time_in_force,
                est(t.estimated_price) if t else None,
                est(t.estimated_value) if t else None,
                est(t.estimated_commission) if t else None,
                est(t.weight_before) if t else None,
                est(t.weight_after) if t else None,
                t.reason if t else None,
            ]
        )
        r = ws.max_row
        ws.cell(r, 4).number_format = (
            _FMT_SHARES if float(o.quantity).is_integer() else _FMT_SHARES_FRAC
        )
        for c in (6, 8, 9, 10):
            ws.cell(r, c).number_format = _FMT_MONEY
        for c in (11, 12):
            ws.cell(r, c).number_format = _FMT_WEIGHT
    _style_sheet(ws, bold, get_column_letter)

    ss = wb.create_sheet("Summary")
    ss.append(["Item", "Value"])
    for label, value, fmt in _summary_rows(summary):
        ss.append([_text(label), _cell_value(value)])
        if fmt and isinstance(value, int | float) and not isinstance(value, bool):
            ss.cell(ss.max_row, 2).number_format = fmt
    if isinstance(summary, TradePlan):
        _plan_tables(ss, summary, bold)
    _style_sheet(ss, bold, get_column_letter)

    buf = io.BytesIO()
    wb.save(buf)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _cell_value(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float | np.integer | np.floating):
        x = float(value)
        return x if math.isfinite(x) else None
    if value is None:
        return None
    return _text(str(value))


def _plan_tables(ss: Any, plan: TradePlan, bold: Any) -> None:
    """Per-fund weights and, with a fund map, exposures, below the summary rows."""
    ss.append([])
    ss.append(["Fund", "Target", "Before", "After", "Drift"])
    for cell in ss[ss.max_row]:
        cell.font = bold
    for sym in plan.target_weights.index:
        values = [
            plan.target_weights.get(sym, 0.0),
            plan.weights_before.get(sym, 0.0),
            plan.weights_after.get(sym, 0.0),
            plan.residual_drift.get(sym, 0.0),
        ]
        ss.append([_text(str(sym)), *[float(v) for v in values]])
        for c in range(2, 6):
            ss.cell(ss.max_row, c).number_format = _FMT_WEIGHT
    if plan.exposures_after is not None:
        ss.append([])
        ss.append(["Exposure", "Target", "Before", "After", "Drift"])
        for cell in ss[ss.max_row]:
            cell.font = bold
        drift = plan.exposure_drift
        for code in plan.exposures_after.index:
            values = [
                plan.exposures_target[code],  # type: ignore[index]
                plan.exposures_before[code],  # type: ignore[index]
                plan.exposures_after[code],
                drift[code],  # type: ignore[index]
            ]
            ss.append([_text(str(code)), *[float(v) for v in values]])
            for c in range(2, 6):
                ss.cell(ss.max_row, c).number_format = _FMT_WEIGHT


def _style_sheet(ws: Any, bold: Any, letter: Any) -> None:
    for cell in ws[1]:
        cell.font = bold
    ws.freeze_panes = "A2"
    widths: dict[int, int] = {}
    for row in ws.iter_rows():
        for cell in row:
            if cell.value is None:
                continue
            text = f"{cell.value:,.2f}" if isinstance(cell.value, float) else str(cell.value)
            widths[cell.column] = max(widths.get(cell.column, 0), len(text))
    for col, width in widths.items():
        ws.column_dimensions[letter(col)].width = min(max(width + 2, 8), 60)


def _read_excel_rows(path: Path) -> list[dict[str, Any]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise DataError("ticket file not found", path=str(path)) from None
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise DataError(f"not a readable .xlsx workbook: {exc}", path=str(path)) from None
    try:
        if "Trades" not in wb.sheetnames:
            raise DataError("the workbook has no Trades sheet", path=str(path))
        rows = list(wb["Trades"].iter_rows(values_only=True))
    finally:
        wb.close()
    if not rows:
        raise DataError("the Trades sheet is empty", path=str(path))
    header = [str(c).strip() if c is not None else "" for c in rows[0]]
    missing = [c for c in GENERIC_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"the Trades sheet has no {', '.join(missing)} column", path=str(path), row=1
        )
    out = []
    for i, values in enumerate(rows[1:], start=2):
        if all(v is None or v == "" for v in values):
            continue
        rec = {h: v for h, v in zip(header, values, strict=False) if h}
        rec["_row"] = i
        out.append(rec)
    return out


def _xl_num(value: Any, what: str, path: Path, row: int, column: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return _parse_num(str(value), what, path, row, column)


def _xl_text(value: Any) -> str:
    return "" if value is None else _untext(str(value))


def read_excel(path: str | os.PathLike[str]) -> list[Order]:
    """Orders from the Trades sheet of an Excel ticket."""
    path = Path(path)
    orders = []
    for rec in _read_excel_rows(path):
        i = rec["_row"]
        orders.append(
            _order(
                path,
                i,
                symbol=_xl_text(rec["Symbol"]),
                side=_xl_text(rec["Side"]),
                quantity=_xl_num(rec["Quantity"], "quantity", path, i, "Quantity"),
                order_type=_xl_text(rec["OrderType"]),
                limit_price=_xl_num(rec["LimitPrice"], "limit price", path, i, "LimitPrice"),
                time_in_force=_xl_text(rec["TimeInForce"]),
                account=_xl_text(rec["Account"]),
            )
        )
    return orders


def read_excel_trades(path: str | os.PathLike[str]) -> list[Trade]:
    """Trades (with the plan's estimates and reasons) from an Excel ticket."""
    path = Path(path)
    out = []
    for rec, order in zip(_read_excel_rows(path), read_excel(path), strict=True):
        i = rec["_row"]

        def num(col: str, rec: dict[str, Any] = rec, i: int = i) -> float:
            value = _xl_num(rec.get(col), col, path, i, col)
            return math.nan if value is None else value

        reason = _xl_text(rec.get("Reason")) or "rebalance"
        try:
            out.append(
                Trade(
                    symbol=order.symbol,
                    side=order.side,
                    quantity=order.quantity,
                    estimated_price=num("EstimatedPrice"),
                    estimated_value=num("EstimatedValue"),
                    weight_before=num("WeightBefore"),
                    weight_after=num("WeightAfter"),
                    reason=reason,
                    account=order.account,
                    estimated_commission=0.0
                    if math.isnan(num("EstimatedCommission"))
                    else num("EstimatedCommission"),
                )
            )
        except ValidationError as exc:
            raise DataError(str(exc), path=str(path), row=i, column=exc.field) from None
    return out


# --------------------------------------------------------------------------- any ticket
@dataclass
class Ticket:
    """A ticket file read back: its format and its orders (or targets).

    ``orders`` is empty for an IBKR Rebalance file, whose content is ``targets``
    (fractions of total value by symbol). ``trades`` is set for Excel tickets, which keep
    the plan's estimates.
    """

    format: TicketFormat
    orders: list[Order] = field(default_factory=list)
    targets: pd.Series | None = None
    trades: list[Trade] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_trades(self) -> list[Trade]:
        """The orders as trades (estimated price = limit price where there is one)."""
        if self.format is TicketFormat.IBKR_REBALANCE:
            raise ValidationError(
                "an IBKR Rebalance file holds target percentages, not orders; use .targets",
                field="format",
            )
        if self.trades is not None:
            return list(self.trades)
        return [o.to_trade() for o in self.orders]


def detect_ticket_format(path: str | os.PathLike[str]) -> TicketFormat:
    """Which ticket format a file holds, from its content (not its name)."""
    path = Path(path)
    try:
        head = path.read_bytes()[:4096]
    except FileNotFoundError:
        raise DataError("ticket file not found", path=str(path)) from None
    if head.startswith(b"PK\x03\x04"):
        return TicketFormat.EXCEL
    first = next((line for line in _lines(path) if line.strip()), None)
    if first is None:
        raise DataError("the ticket is empty", path=str(path))
    cells = [c.strip() for c in next(csv.reader([first]))]
    if {c.lower() for c in cells} >= {c.lower() for c in GENERIC_COLUMNS}:
        return TicketFormat.GENERIC_CSV
    if _is_ibkr_header(cells):
        return TicketFormat.IBKR_BASKET
    if cells and cells[0].upper() == "DES":
        return TicketFormat.IBKR_REBALANCE
    if _TS_LINE.match(first.strip()):
        return TicketFormat.TRADESTATION
    raise DataError(
        "not a ticket StackOpt knows (generic CSV, IBKR basket or rebalance, TradeStation "
        f"trade list, Excel); the first line is {first[:80]!r}",
        path=str(path),
        row=1,
    )


def read_ticket(path: str | os.PathLike[str], side: str | None = None) -> Ticket:
    """Read any ticket written by this module; the format is detected from the content.

    ``side`` is needed only for a TradeStation list whose file name does not end in
    ``_BUY`` or ``_SELL``.
    """
    path = Path(path)
    fmt = detect_ticket_format(path)
    if fmt is TicketFormat.EXCEL:
        return Ticket(fmt, read_excel(path), trades=read_excel_trades(path))
    if fmt is TicketFormat.GENERIC_CSV:
        return Ticket(fmt, read_generic_csv(path))
    if fmt is TicketFormat.IBKR_BASKET:
        orders, meta = _read_ibkr_basket(path)
        return Ticket(fmt, orders, meta=meta)
    if fmt is TicketFormat.IBKR_REBALANCE:
        return Ticket(fmt, [], targets=read_ibkr_rebalance_csv(path))
    return Ticket(fmt, read_tradestation_csv(path, side=side))


def write_ticket(
    fmt: TicketFormat | str, trades: TradesLike, path: str | os.PathLike[str], **kwargs: Any
) -> Path | dict[str, Path]:
    """Write ``trades`` in format ``fmt`` (keyword arguments go to that format's writer).

    For ``tradestation`` this writes one list per side (see
    :func:`write_tradestation_trade_lists`) and returns them by side.
    """
    fmt = TicketFormat(fmt)
    if fmt is TicketFormat.GENERIC_CSV:
        return write_generic_csv(trades, path, **kwargs)
    if fmt is TicketFormat.IBKR_BASKET:
        return write_ibkr_basket_csv(trades, path, **kwargs)
    if fmt is TicketFormat.IBKR_REBALANCE:
        return write_ibkr_rebalance_csv(trades, path, **kwargs)
    if fmt is TicketFormat.TRADESTATION:
        return write_tradestation_trade_lists(trades, path, **kwargs)
    return write_excel(trades, path, **kwargs)
