"""Vanguard ``OfxDownload.csv`` (Download center > "A spreadsheet-compatible CSV file").

The file holds a holdings section (``Account Number,Investment Name,Symbol,Shares,
Share Price,Total Value,``), accounts separated by blank lines, then, after more blank
lines, a transactions section (``Account Number,Trade Date,Settlement Date,Transaction
Type,...``) and sometimes retirement-plan sections. Numbers are plain decimals and every
row ends with a comma. The settlement fund (Vanguard Federal Money Market Fund, VMFXX,
or Cash Reserves Federal, VMRXX) is the account's cash. Treasury bills and CDs have no
symbol: their quantity is face value, so they are reported as skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.brokers._base import Builder, Columns, PositionsImport, Row, number, parse_money
from core.errors import DataError

BROKER = "vanguard"
CURRENCY = "USD"

#: Settlement (sweep) money-market funds: the brokerage account's cash.
SETTLEMENT_FUNDS = frozenset({"VMFXX", "VMRXX"})

ACCOUNT = ("Account Number",)
NAME = ("Investment Name",)
SYMBOL = ("Symbol",)
SHARES = ("Shares",)
PRICE = ("Share Price",)
VALUE = ("Total Value",)


def _is_holdings_header(row: Row) -> bool:
    cols = Columns(row, None)
    return all(cols.has(*a) for a in (ACCOUNT, NAME, SYMBOL, SHARES, VALUE)) and not cols.has(
        "Trade Date"
    )


def _is_other_header(row: Row) -> bool:
    """A header row of another section: several cells, none of them a number."""
    cells = row.nonempty
    if len(cells) < 3:
        return False
    for c in cells:
        try:
            if parse_money(c) is not None:
                return False
        except ValueError:
            pass
    return True


def sniff(rows: Sequence[Row]) -> str | None:
    return "ofx_download" if any(_is_holdings_header(r) for r in rows[:40]) else None


def parse(rows: Sequence[Row], label: str | None, layout: str) -> PositionsImport:
    """Holdings per account; the transactions section is reported as one skipped block."""
    out = Builder(BROKER, layout, label)
    columns: Columns | None = None
    section: list[Row] = []
    section_name = ""

    def close_section() -> None:
        if section:
            out.skip_block(section, section_name)
            section.clear()

    for row in rows:
        if row.blank:
            continue
        if _is_holdings_header(row):
            close_section()
            columns = Columns(row, label)
            continue
        if section or (columns is not None and _is_other_header(row)):
            if not section:
                cols = Columns(row, None)
                section_name = (
                    "transactions section"
                    if cols.has("Trade Date") and cols.has("Transaction Type")
                    else "other section"
                )
            section.append(row)
            continue
        if columns is None:
            out.skip(row, "not understood: text before the holdings header")
            continue
        _holding_row(out, columns, row)
    close_section()
    if columns is None:
        raise DataError("no holdings header (Account Number, Investment Name ...)", path=label)
    return out.finish()


def _holding_row(out: Builder, columns: Columns, row: Row) -> None:
    account_id = row.cell(columns.find(*ACCOUNT))
    symbol = row.cell(columns.find(*SYMBOL)).upper()
    name = row.cell(columns.find(*NAME))
    if not account_id:
        out.skip(row, "no account number in this row")
        return
    account = out.account(account_id, "")
    shares_i = columns.find(*SHARES)
    shares = number(row, shares_i, columns)
    price = number(row, columns.find(*PRICE), columns)
    value = number(row, columns.find(*VALUE), columns)
    if symbol in SETTLEMENT_FUNDS:
        amount = value if value is not None else shares
        if amount is None:
            raise DataError(
                f"the settlement fund {symbol} has neither shares nor a total value",
                path=columns.label,
                row=row.line,
            )
        account.add_cash(CURRENCY, amount)
        return
    if not symbol:
        out.skip(row, "no ticker symbol: a Treasury bill, bond or CD, not fund shares")
        return
    if shares is None:
        raise DataError(
            f"the shares of {symbol} are missing",
            path=columns.label,
            row=row.line,
            column=columns.name(shares_i),
        )
    if shares == 0:
        out.skip(row, "zero quantity")
        return
    out.position(
        account,
        row,
        symbol=symbol,
        quantity=shares,
        price=price,
        market_value=value,
        currency=CURRENCY,
        description=name,
    )
