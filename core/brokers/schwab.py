"""Charles Schwab positions exports (Accounts > Positions > Export).

Layouts
-------
* Single account: a title cell ``"Positions for account Individual ...123 as of 04:31 PM
  ET, 2025/03/14"`` (sometimes padded with empty quoted cells), a blank line, the header
  row, the positions, ``Cash & Cash Investments``, then ``Positions Total`` (or
  ``Account Total``).
* All accounts: ``"Positions for All-Accounts as of ..."``, then per account a title cell
  (``"Roth IRA ...456"``), its own header row, positions, cash and ``Account Total``.
* Column names: since 2024 ``Qty (Quantity)``, ``Mkt Val (Market Value)``, ``Asset
  Type``; in 2021-2023 ``Quantity``, ``Market Value``, ``Security Type``. Users choose and
  reorder columns, so every column is found by name.

Every cell is quoted, rows end with a comma, money is ``$1,234.56`` / ``-$1,234.56``
and missing values are ``--`` or ``N/A``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from core.brokers._base import (
    AccountPositions,
    Builder,
    Columns,
    PositionsImport,
    Row,
    money_text,
    number,
)
from core.errors import DataError

BROKER = "schwab"
CURRENCY = "USD"

SYMBOL = ("Symbol",)
QUANTITY = ("Qty (Quantity)", "Quantity", "Qty")
PRICE = ("Price",)
VALUE = ("Mkt Val (Market Value)", "Market Value", "Mkt Val")
DESCRIPTION = ("Description",)
TYPE = ("Asset Type", "Security Type")

_TITLE_ONE = re.compile(r"^positions for account\s+(?P<label>.+?)\s+as of\s+(?P<asof>.+)$", re.I)
_TITLE_ALL = re.compile(r"^positions for all-accounts\b", re.I)
_OPTION_SYMBOL = re.compile(r"^\S+\s+\d{2}/\d{2}/\d{4}\s+[\d.]+\s+[CP]$")
_CASH = "cash & cash investments"
_TOTALS = ("account total", "positions total")
_FUTURES = ("futures cash", "futures positions market value")


def _is_header(row: Row) -> bool:
    cols = Columns(row, None)
    return cols.has(*SYMBOL) and cols.has(*QUANTITY) and (cols.has(*VALUE) or cols.has(*PRICE))


def sniff(rows: Sequence[Row]) -> str | None:
    """Layout name when ``rows`` are a Schwab positions export, else None."""
    titles = [r for r in rows[:12] if not r.blank]
    first = titles[0].cell(0) if titles else ""
    has_title = bool(_TITLE_ONE.match(first) or _TITLE_ALL.match(first))
    headers = [r for r in rows if _is_header(r)]
    if not headers:
        # The title alone is Schwab's; parse() then names the missing columns.
        return (
            ("all_accounts" if _TITLE_ALL.match(first) else "single_account") if has_title else None
        )
    if not has_title:
        # Without the title line, the Schwab-only summary rows must be there.
        sym = Columns(headers[0], None).find(*SYMBOL)
        marks = {r.cell(sym).lower() for r in rows}
        if _CASH not in marks or not marks.intersection(_TOTALS):
            return None
    multi = bool(_TITLE_ALL.match(first)) or len(headers) > 1
    qty_header = headers[0].cell(Columns(headers[0], None).find(*QUANTITY))
    legacy = "(" not in qty_header  # 2024 names read "Qty (Quantity)"
    layout = "all_accounts" if multi else "single_account"
    return layout + ("_2021_columns" if legacy else "")


def split_account_label(label: str) -> tuple[str, str]:
    """(account_id, account_name) from ``Individual ...123`` or ``Roth IRA    XXXX-5678``."""
    label = label.strip()
    m = re.search(r"(\.\.\.\s*[0-9A-Za-z]+)$", label)
    if m:
        return m.group(1).replace(" ", ""), label[: m.start()].strip()
    m = re.search(r"\s{2,}(\S+)$", label)
    if m:
        return m.group(1), label[: m.start()].strip()
    parts = label.rsplit(None, 1)
    if len(parts) == 2 and any(ch.isdigit() for ch in parts[1]):
        return parts[1], parts[0]
    return label, label


def parse(rows: Sequence[Row], label: str | None, layout: str) -> PositionsImport:
    """Positions and cash of every account block; ``label`` names the file in errors."""
    out = Builder(BROKER, layout, label)
    account: AccountPositions | None = None
    columns: Columns | None = None
    block_values: list[float] = []  # market values of the current block, for its total

    def next_nonblank(i: int) -> Row | None:
        for later in rows[i + 1 :]:
            if not later.blank:
                return later
        return None

    for i, row in enumerate(rows):
        if row.blank:
            continue
        first = row.cell(0)
        title = _TITLE_ONE.match(first)
        if title and len(row.nonempty) == 1:
            account = out.account(*split_account_label(title.group("label")))
            continue
        if _TITLE_ALL.match(first) and len(row.nonempty) == 1:
            continue
        if _is_header(row):
            columns = Columns(row, label)
            columns.require("quantity", *QUANTITY)
            block_values = []
            if account is None:  # no title line: one unnamed account
                account = out.account("", "")
            continue
        if len(row.nonempty) == 1:
            following = next_nonblank(i)
            if following is not None and _is_header(following):
                account = out.account(*split_account_label(first))  # an All-Accounts block
                continue
        if columns is None or account is None:
            out.skip(row, "not understood: text before the header row")
            continue
        _data_row(out, account, columns, row, block_values)
    if columns is None:
        near = next((r for r in rows if Columns(r, None).has(*SYMBOL)), None)
        raise DataError(
            "no header row with Symbol and Quantity (or Qty (Quantity)) columns was found; "
            "export the positions again from Accounts > Positions with the Quantity column "
            "shown",
            path=label,
            row=near.line if near is not None else None,
        )
    return out.finish()


def _data_row(
    out: Builder, account: AccountPositions, columns: Columns, row: Row, block_values: list[float]
) -> None:
    sym_i = columns.find(*SYMBOL)
    symbol = row.cell(sym_i)
    low = symbol.lower()
    value_i = columns.find(*VALUE)
    value = number(row, value_i, columns)
    if low == _CASH:
        if value is None:
            out.skip(row, "cash row without a market value")
            return
        account.add_cash(CURRENCY, value)
        block_values.append(value)
        return
    if low in _TOTALS:
        out.skip(row, f"summary row ({symbol})")
        if value is not None and block_values:
            found = math.fsum(block_values)
            if abs(found - value) > 0.015:
                out.warn(
                    f"account {account.account_id or '(unnamed)'}: the {symbol} of "
                    f"{money_text(value)} (line {row.line}) differs from the sum of its rows, "
                    f"{money_text(found)}; rows may be missing from the export"
                )
        return
    if value is not None:
        block_values.append(value)
    if low in _FUTURES:
        out.skip(row, f"futures summary row ({symbol}), not a fund position")
        return
    if not symbol:
        out.skip(row, "no symbol in this row")
        return
    kind = row.cell(columns.find(*TYPE)).lower()
    if kind == "option" or _OPTION_SYMBOL.match(symbol):
        out.skip(row, "option position, not a fund")
        return
    if kind == "fixed income":
        out.skip(row, "bond or CD (fixed income): quantity is face value, not fund shares")
        return
    qty_i = columns.find(*QUANTITY)
    quantity = number(row, qty_i, columns)
    if quantity is None:
        out.skip(row, "no quantity in this row")
        return
    if quantity == 0:
        out.skip(row, "zero quantity")
        return
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
