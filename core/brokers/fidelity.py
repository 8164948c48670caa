"""Fidelity ``Portfolio_Positions_Mmm-dd-yyyy.csv`` (Accounts & Trade > Portfolio >
Positions > Download).

One file holds every account: each row starts with ``Account Number`` and ``Account
Name``. The core cash position is a row whose symbol ends in ``**`` (``SPAXX**``,
``FDRXX**``, ``FCASH**``, ``CORE**``) with only a Current Value; unsettled trades are a
``Pending Activity`` row; option symbols start with `` -``. Data rows end with a comma
(one cell more than the header). After the positions come a blank line, quoted
disclaimer paragraphs and ``"Date downloaded ..."``. Headers were capitalised until 2024
(``Last Price``) and are sentence case since (``Last price``); the match ignores case.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.brokers._base import (
    Builder,
    Columns,
    PositionsImport,
    Row,
    money_text,
    number,
)
from core.errors import DataError

BROKER = "fidelity"
CURRENCY = "USD"

ACCOUNT_NUMBER = ("Account Number",)
ACCOUNT_NAME = ("Account Name",)
SYMBOL = ("Symbol",)
DESCRIPTION = ("Description",)
QUANTITY = ("Quantity",)
PRICE = ("Last Price",)
VALUE = ("Current Value",)
TYPE = ("Type",)


def _is_header(row: Row) -> bool:
    cols = Columns(row, None)
    return all(cols.has(*a) for a in (ACCOUNT_NUMBER, ACCOUNT_NAME, SYMBOL, QUANTITY, VALUE))


def sniff(rows: Sequence[Row]) -> str | None:
    return "portfolio_positions" if any(_is_header(r) for r in rows[:20]) else None


def parse(rows: Sequence[Row], label: str | None, layout: str) -> PositionsImport:
    """Positions and core cash of every account in the file; footer lines are skipped."""
    out = Builder(BROKER, layout, label)
    columns: Columns | None = None
    pending: dict[str, float] = {}
    for row in rows:
        if row.blank:
            continue
        if _is_header(row):
            columns = Columns(row, label)
            continue
        if columns is None:
            out.skip(row, "not understood: text before the header row")
            continue
        acct_i = columns.find(*ACCOUNT_NUMBER)
        sym_i = columns.find(*SYMBOL)
        account_id = row.cell(acct_i)
        symbol = row.cell(sym_i)
        if len(row.nonempty) <= 1 or not account_id:
            out.skip(row, "footer text (disclaimer or download date), not a position")
            continue
        account = out.account(account_id, row.cell(columns.find(*ACCOUNT_NAME)))
        value = number(row, columns.find(*VALUE), columns)
        if symbol.lower() == "pending activity":
            out.skip(row, "pending activity: unsettled trades and cash, not yet a position")
            if value is not None:
                pending[account_id] = pending.get(account_id, 0.0) + value
            continue
        if symbol.endswith("**"):
            if value is None:
                raise DataError(
                    f"the core cash position {symbol} has no Current Value",
                    path=label,
                    row=row.line,
                    column=columns.name(columns.find(*VALUE)),
                )
            account.add_cash(CURRENCY, value)
            continue
        if not symbol:
            out.skip(row, "no symbol in this row")
            continue
        if symbol.startswith("-"):
            out.skip(row, "option position, not a fund")
            continue
        qty_i = columns.find(*QUANTITY)
        quantity = number(row, qty_i, columns)
        if quantity is None:
            raise DataError(
                f"the quantity of {symbol} is missing; export the positions again",
                path=label,
                row=row.line,
                column=columns.name(qty_i),
            )
        if quantity == 0:
            out.skip(row, "zero quantity")
            continue
        out.position(
            account,
            row,
            symbol=symbol,
            quantity=quantity,
            price=number(row, columns.find(*PRICE), columns),
            market_value=value,
            currency=CURRENCY,
            description=row.cell(columns.find(*DESCRIPTION)),
        )
    if columns is None:
        raise DataError("no header row with Account Number and Symbol was found", path=label)
    for account_id, amount in pending.items():
        out.warn(
            f"account {account_id}: pending activity of {money_text(amount)} is not counted "
            "in cash or positions; import again once it has settled"
        )
    return out.finish()
