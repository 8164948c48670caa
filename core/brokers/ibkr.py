"""Interactive Brokers: the Activity Statement CSV and Flex Query CSV files.

Activity Statement (Performance & Reports > Statements > Activity > Download CSV)
-----------------------------------------------------------------------------------
Every line is ``Section,Kind,fields...`` with Kind ``Header``, ``Data``, ``SubTotal``,
``Total`` or ``Notes``; a ``Header`` line names the fields of the ``Data`` lines that
follow in that section (a section may restate its header, e.g. for options). Used here:

* ``Account Information`` (Field Name/Field Value): account number and name;
* ``Open Positions`` (also ``Long Open Positions``/``Short Open Positions`` in older
  statements): ``DataDiscriminator`` ``Summary`` rows are positions, ``Lot`` rows their
  tax lots; ``Asset Category`` ``Stocks`` holds ETFs, options/futures are skipped;
* ``Cash Report``: the ``Ending Cash`` row of each currency (``Base Currency Summary``
  is a total in the base currency and is not cash of its own);
* ``Financial Instrument Information``: description and ISIN (``Security ID``).

Flex Query (Performance & Reports > Flex Queries, format CSV)
--------------------------------------------------------------
Optionally wrapped in ``BOF``/``BOA``/``BOS``/``EOS``/``EOA``/``EOF`` records and optionally
with every line prefixed by ``HEADER``/``DATA`` and a section code (``POST`` = Open
Positions, ``CRTT`` = Cash Report). Sections are recognised by their field names:
``ClientAccountID`` + ``Symbol`` + ``Quantity``/``Position`` + ``MarkPrice`` for positions
(``LevelOfDetail`` ``SUMMARY``/``LOT``), ``EndingCash`` for the cash report
(``CurrencyPrimary`` ``BASE_SUMMARY`` is the base-currency total).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.brokers._base import (
    AccountPositions,
    Builder,
    Columns,
    PositionsImport,
    Row,
    is_currency,
    number,
    required_number,
)

BROKER = "ibkr"

_POSITION_SECTIONS = ("open positions", "long open positions", "short open positions")
_USED_SECTIONS = (
    *_POSITION_SECTIONS,
    "account information",
    "cash report",
    "financial instrument information",
)
_ACTIVITY_KINDS = ("header", "data", "total", "subtotal", "notes")
_FUND_CATEGORIES = ("stocks", "stk", "fund", "etf")
_FLEX_RECORDS = ("bof", "boa", "bos", "eos", "eoa", "eof")
_ASSET_NAMES = {
    "opt": "option",
    "equity and index options": "option",
    "fut": "future",
    "futures": "future",
    "fop": "future option",
    "options on futures": "future option",
    "bond": "bond",
    "bonds": "bond",
    "war": "warrant",
    "warrants": "warrant",
    "cash": "forex balance",
    "forex": "forex balance",
    "cfd": "CFD",
    "cfds": "CFD",
}


def _not_a_fund(category: str) -> str:
    kind = _ASSET_NAMES.get(category.lower(), category or "non-stock")
    return f"{kind} position, not a fund"


# ---------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------


def sniff_activity(rows: Sequence[Row]) -> str | None:
    for row in rows[:400]:
        if row.blank:
            continue
        section, kind = row.cell(0).lower(), row.cell(1).lower()
        if kind == "header" and (
            section in _POSITION_SECTIONS
            or (section == "statement" and row.cell(2).lower() == "field name")
        ):
            return "activity_statement"
    return None


def _strip_flex_prefix(row: Row) -> tuple[int, str]:
    """(offset of the first field, section code) for HEADER/DATA-prefixed Flex lines."""
    if row.cell(0).upper() in ("HEADER", "DATA") and len(row.cells) > 2:
        return 2, row.cell(1).upper()
    return 0, ""


def _flex_kind(row: Row) -> str | None:
    offset, _ = _strip_flex_prefix(row)
    cols = Columns(row, None, offset)
    if not cols.has("ClientAccountID"):
        return None
    if cols.has("EndingCash"):
        return "cash"
    if (
        cols.has("Symbol")
        and cols.has("Quantity", "Position")
        and cols.has("MarkPrice", "PositionValue")
    ):
        return "positions"
    return "other"


def sniff_flex(rows: Sequence[Row]) -> str | None:
    for row in rows[:400]:
        if row.blank:
            continue
        if row.cell(0).upper() == "BOF":
            return "flex_query"
        if _flex_kind(row) is not None:
            return "flex_query"
    return None


# ---------------------------------------------------------------------------
# Activity Statement
# ---------------------------------------------------------------------------


def parse_activity(rows: Sequence[Row], label: str | None, layout: str) -> PositionsImport:
    """Open Positions (Summary rows) and Ending Cash per currency of one statement."""
    out = Builder(BROKER, layout, label)
    headers: dict[str, Columns] = {}
    info: dict[str, str] = {}
    instruments: dict[tuple[str, str], tuple[str, str]] = {}
    position_rows: list[tuple[Row, Columns]] = []
    cash_rows: list[tuple[Row, Columns]] = []
    ignored: dict[str, list[Row]] = {}
    order: list[str] = []

    for row in rows:
        if row.blank:
            continue
        section, kind = row.cell(0), row.cell(1).lower()
        key = section.lower()
        if kind not in _ACTIVITY_KINDS:
            out.skip(row, "not understood: not a Section,Header/Data line")
            continue
        if kind == "header":
            headers[key] = Columns(row, label, offset=2)
            if key not in order:
                order.append(key)
            if key not in _USED_SECTIONS:
                ignored.setdefault(section, []).append(row)
            continue
        cols = headers.get(key)
        if cols is None:
            out.skip(row, f"not understood: {section} data before its header line")
            continue
        if key == "account information":
            name_i, value_i = cols.find("Field Name"), cols.find("Field Value")
            info[row.cell(name_i).lower()] = row.cell(value_i)
        elif key == "financial instrument information":
            sym = row.cell(cols.find("Symbol"))
            cat = row.cell(cols.find("Asset Category")).lower()
            instruments[(cat, sym)] = (
                row.cell(cols.find("Description")),
                row.cell(cols.find("Security ID", "ISIN")),
            )
        elif key in _POSITION_SECTIONS:
            position_rows.append((row, cols))
        elif key == "cash report":
            cash_rows.append((row, cols))
        else:
            ignored.setdefault(section, []).append(row)

    account = out.account(info.get("account", ""), info.get("name", ""))
    if not any(k in _POSITION_SECTIONS for k in order):
        # IBKR leaves the section out when the account holds nothing.
        out.warn(
            "this Activity Statement has no Open Positions section, so no positions were "
            "imported; if the account holds positions, download a statement that ends today "
            "with the Open Positions section"
        )
    if "accounts included" in info:
        out.warn(
            "this is a consolidated statement of several accounts: their positions and cash "
            "are read as one account"
        )
    for row, cols in position_rows:
        _activity_position(out, account, cols, row, instruments)
    _activity_cash(out, account, cash_rows, label)
    for section, block in ignored.items():
        out.skip_block(block, f"section {section!r}")
    return out.finish()


def _activity_position(
    out: Builder,
    account: AccountPositions,
    cols: Columns,
    row: Row,
    instruments: dict[tuple[str, str], tuple[str, str]],
) -> None:
    kind = row.cell(1).lower()
    if kind in ("total", "subtotal"):
        out.skip(row, "section total")
        return
    if kind == "notes":
        out.skip(row, "section note")
        return
    disc = row.cell(cols.find("DataDiscriminator")).lower()
    if disc == "lot":
        out.skip(row, "tax-lot detail of the Summary row above, not a separate position")
        return
    if disc and disc != "summary":
        out.skip(
            row, f"not understood: DataDiscriminator {row.cell(cols.find('DataDiscriminator'))!r}"
        )
        return
    category = row.cell(cols.find("Asset Category"))
    symbol = row.cell(cols.require("symbol", "Symbol"))
    if category.lower() not in _FUND_CATEGORIES:
        out.skip(row, _not_a_fund(category))
        return
    qty_i = cols.require("quantity", "Quantity")
    quantity = required_number(row, qty_i, cols, "quantity")
    if quantity == 0:
        out.skip(row, "zero quantity")
        return
    description, isin = instruments.get((category.lower(), symbol), ("", ""))
    out.position(
        account,
        row,
        symbol=symbol,
        quantity=quantity,
        price=number(row, cols.find("Close Price", "Mark Price"), cols),
        market_value=number(row, cols.find("Value", "Position Value"), cols),
        currency=row.cell(cols.find("Currency")) or "USD",
        description=description,
        isin=isin,
    )


def _activity_cash(
    out: Builder,
    account: AccountPositions,
    cash_rows: list[tuple[Row, Columns]],
    label: str | None,
) -> None:
    other: list[Row] = []
    found = False
    for row, cols in cash_rows:
        what = row.cell(cols.find("Currency Summary")).lower()
        currency = row.cell(cols.find("Currency"))
        if what == "ending cash" and is_currency(currency):
            total_i = cols.require("total", "Total")
            account.add_cash(currency, required_number(row, total_i, cols, "ending cash"))
            found = True
        else:
            other.append(row)
    out.skip_block(other, "Cash Report rows other than each currency's Ending Cash")
    if not found:
        out.warn(
            "no Cash Report with Ending Cash per currency was found: cash is not imported; "
            "include the Cash Report section in the statement"
        )


# ---------------------------------------------------------------------------
# Flex Query
# ---------------------------------------------------------------------------


def parse_flex(rows: Sequence[Row], label: str | None, layout: str) -> PositionsImport:
    """Open Positions (SUMMARY rows) and Cash Report per account of a Flex Query file."""
    out = Builder(BROKER, layout, label)
    current: Columns | None = None
    kind: str | None = None
    block: list[Row] = []
    seen_positions = seen_cash = False

    def close_block() -> None:
        if block:
            out.skip_block(block, "Flex section")
            block.clear()

    for row in rows:
        if row.blank:
            continue
        if row.cell(0).lower() in _FLEX_RECORDS and len(row.cells) <= 12:
            close_block()
            continue  # BOF/BOA/BOS/EOS/EOA/EOF: structure, not data
        new_kind = _flex_kind(row)
        offset, _ = _strip_flex_prefix(row)
        if new_kind is not None and not row.cell(0).upper() == "DATA":
            close_block()
            current, kind = Columns(row, label, offset), new_kind
            if kind == "other":
                block.append(row)
            seen_positions |= kind == "positions"
            seen_cash |= kind == "cash"
            continue
        if current is None:
            out.skip(row, "not understood: data before a header line")
            continue
        if kind == "positions":
            _flex_position(out, current, row)
        elif kind == "cash":
            _flex_cash(out, current, row)
        else:
            block.append(row)
    close_block()
    if not seen_positions:
        out.warn(
            "this Flex Query has no Open Positions section (fields ClientAccountID, Symbol, "
            "Quantity, MarkPrice), so no positions were imported; add the Open Positions "
            "section to the query"
        )
    if not seen_cash:
        out.warn(
            "this Flex Query has no Cash Report section: cash is not imported; add the Cash "
            "Report section (EndingCash) to the query"
        )
    return out.finish()


def _flex_account(out: Builder, cols: Columns, row: Row) -> AccountPositions:
    account_id = row.cell(cols.find("ClientAccountID"))
    return out.account(account_id, row.cell(cols.find("AccountAlias")))


def _flex_position(out: Builder, cols: Columns, row: Row) -> None:
    account = _flex_account(out, cols, row)
    detail = row.cell(cols.find("LevelOfDetail")).upper()
    if detail == "LOT":
        out.skip(row, "tax-lot detail of the SUMMARY row, not a separate position")
        return
    if detail and detail != "SUMMARY":
        out.skip(row, f"not understood: LevelOfDetail {detail!r}")
        return
    asset = row.cell(cols.find("AssetClass"))
    if asset.lower() not in _FUND_CATEGORIES:
        out.skip(row, _not_a_fund(asset))
        return
    symbol = row.cell(cols.require("symbol", "Symbol"))
    qty_i = cols.require("quantity", "Quantity", "Position")
    quantity = required_number(row, qty_i, cols, "quantity")
    if quantity == 0:
        out.skip(row, "zero quantity")
        return
    out.position(
        account,
        row,
        symbol=symbol,
        quantity=quantity,
        price=number(row, cols.find("MarkPrice"), cols),
        market_value=number(row, cols.find("PositionValue"), cols),
        currency=row.cell(cols.find("CurrencyPrimary", "Currency")) or "USD",
        description=row.cell(cols.find("Description")),
        isin=row.cell(cols.find("ISIN")),
    )


def _flex_cash(out: Builder, cols: Columns, row: Row) -> None:
    account = _flex_account(out, cols, row)
    currency = row.cell(cols.find("CurrencyPrimary", "Currency"))
    if currency.upper() == "BASE_SUMMARY":
        out.skip(row, "base-currency total of the cash report (each currency is read)")
        return
    if not is_currency(currency):
        out.skip(row, f"not understood: currency {currency!r}")
        return
    amount = required_number(row, cols.require("ending cash", "EndingCash"), cols, "ending cash")
    account.add_cash(currency, amount)
