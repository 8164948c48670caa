"""DEGIRO ``Portfolio.csv`` (Portfolio > Export > CSV).

Header ``Product,Symbol/ISIN,Amount,Closing,Local value,,Value in EUR`` (``Quantity``
instead of ``Amount`` in newer files; Dutch ``Product,Symbool/ISIN,Aantal,Slotkoers,
Lokale waarde,,Waarde in EUR``; German ``Produkt,Symbol/ISIN,Anzahl,Schlusskurs,Wert,,Wert
in EUR``). The local value spans two cells: the currency under ``Local value`` and the
amount under the unnamed column after it (older files write both in one cell,
``USD 1184,95``). Numbers use decimal commas in most locales. Positions are keyed by
ISIN; :data:`core.brokers.ISIN_TO_TICKER` turns known ISINs into tickers and the rest
keep the ISIN as their symbol. Cash is the ``CASH & CASH FUND & FTX CASH (EUR)`` row per
currency (negative when the account uses margin) plus money-market "cash funds" such as
the Morgan Stanley EUR Liquidity Fund.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.brokers._base import (
    Builder,
    Columns,
    PositionsImport,
    Row,
    guess_decimal,
    header_keys,
    is_currency,
    norm_header,
    number,
    parse_money,
)
from core.brokers.identifiers import looks_like_isin, ticker_for_isin
from core.errors import DataError

BROKER = "degiro"

PRODUCT = ("Product", "Produkt", "Produit", "Producto", "Prodotto", "Produto")
QUANTITY = ("Amount", "Quantity", "Aantal", "Anzahl", "Quantité", "Cantidad", "Quantità")
CLOSING = ("Closing", "Closing price", "Slotkoers", "Schlusskurs", "Clôture", "Cierre")
LOCAL = ("Local value", "Lokale waarde", "Wert", "Valeur locale", "Valor local", "Valore locale")
_BASE_VALUE = re.compile(
    r"^(?:value in|waarde in|wert in|valeur en|valor en|valore in) ([a-z]{3})$"
)

#: ISINs of the money-market funds DEGIRO sweeps idle cash into.
CASH_FUND_ISINS = frozenset({"LU1959429272", "LU0904783973"})
_CASH_ROW = re.compile(r"^(cash & cash fund|flatex)", re.I)
_CASH_FUND = re.compile(r"liquidity fund|money market|geldmarkt", re.I)
_DERIVATIVE = re.compile(
    r"\b(turbo|call|put|warrant|mini ?future|knock-?out|sprinter|faktor|factor)\b", re.I
)
_CCY_IN_NAME = re.compile(r"\(([A-Z]{3})\)\s*$")
_CCY_AND_AMOUNT = re.compile(r"^([A-Z]{3})\s+(.+)$")


def _isin_column(row: Row) -> int | None:
    for i, cell in enumerate(row.cells):
        if norm_header(cell).endswith("/isin"):
            return i
    return None


def _is_header(row: Row) -> bool:
    return _isin_column(row) is not None and Columns(row, None).has(*PRODUCT)


def sniff(rows: Sequence[Row]) -> str | None:
    return "portfolio" if any(_is_header(r) for r in rows[:10]) else None


def parse(rows: Sequence[Row], label: str | None, layout: str) -> PositionsImport:
    """One account: positions keyed by ISIN (ticker when known), cash per currency."""
    out = Builder(BROKER, layout, label)
    header_at = next((i for i, r in enumerate(rows) if _is_header(r)), None)
    if header_at is None:
        raise DataError("no header row with Product and Symbol/ISIN was found", path=label)
    header = rows[header_at]
    cols = Columns(header, label)
    product_i = cols.require("product", *PRODUCT)
    isin_i = _isin_column(header)
    qty_i = cols.require("quantity", *QUANTITY)
    closing_i = cols.find(*CLOSING)
    local_i = cols.find(*LOCAL)
    # The amount sits under the unnamed column right after "Local value".
    amount_i = local_i + 1 if local_i is not None and not header.cell(local_i + 1) else None
    base = "EUR"
    for name in header.cells:
        for key in header_keys(name):
            m = _BASE_VALUE.match(key)
            if m:
                base = m.group(1).upper()
    data = [r for r in rows[header_at + 1 :] if not r.blank]
    decimal = guess_decimal(c for r in data for c in r.cells)
    account = out.account("", "")
    unmapped: list[str] = []

    for row in rows[:header_at]:
        if not row.blank:
            out.skip(row, "not understood: text before the header row")
    for row in data:
        product = row.cell(product_i)
        ident = row.cell(isin_i).upper()
        currency, amount = _local_value(row, local_i, amount_i, cols, decimal)
        if (_CASH_ROW.match(product) and not ident) or ident == "NLFLATEXACNT":
            m = _CCY_IN_NAME.search(product)
            ccy = currency or (m.group(1) if m else base)
            if amount is None:
                out.skip(row, "cash row without an amount")
                continue
            account.add_cash(ccy, amount)
            continue
        quantity = number(row, qty_i, cols, decimal=decimal)
        price = number(row, closing_i, cols, decimal=decimal)
        if ident in CASH_FUND_ISINS or _CASH_FUND.search(product):
            value = amount
            if value is None and quantity is not None and price is not None:
                value = quantity * price
            if value is None:
                out.skip(row, "cash fund without a value")
                continue
            account.add_cash(currency or base, value)
            continue
        if _DERIVATIVE.search(product):
            out.skip(row, "derivative (turbo, warrant or option), not a fund")
            continue
        if not ident:
            out.skip(row, "no ISIN or symbol in this row")
            continue
        if quantity is None:
            raise DataError(
                f"the quantity of {product or ident} is missing",
                path=label,
                row=row.line,
                column=cols.name(qty_i),
            )
        if quantity == 0:
            out.skip(row, "zero quantity")
            continue
        isin = ident if looks_like_isin(ident) else None
        symbol = (ticker_for_isin(ident) if isin else None) or ident
        if isin and symbol == isin:
            unmapped.append(isin)
        out.position(
            account,
            row,
            symbol=symbol,
            quantity=quantity,
            price=price,
            market_value=amount,
            currency=currency or base,
            description=product,
            isin=isin,
        )
    if unmapped:
        listed = ", ".join(unmapped)
        out.warn(
            f"{len(unmapped)} product(s) are known only by ISIN ({listed}): map each ISIN to "
            "a fund of the fund map"
        )
    return out.finish()


def _local_value(
    row: Row, local_i: int | None, amount_i: int | None, cols: Columns, decimal: str
) -> tuple[str, float | None]:
    """(currency, amount) of the local-value cell pair, or the one-cell ``USD 12,34`` form."""
    if local_i is None:
        return "", None
    cell = row.cell(local_i)
    if amount_i is not None and (is_currency(cell) or not cell):
        return cell, number(row, amount_i, cols, decimal=decimal)
    m = _CCY_AND_AMOUNT.match(cell)
    if m:
        try:
            return m.group(1), parse_money(m.group(2), decimal=decimal)
        except ValueError:
            pass
    return "", number(row, local_i, cols, decimal=decimal)
