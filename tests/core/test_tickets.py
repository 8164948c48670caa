"""Trade tickets: every format written, read back by our own parser, compared order by order."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from core.errors import DataError, ValidationError
from core.exposures import FundExposureMap
from core.optimization.trades import Trade, TradeGenerator, TradePlan, TradeSettings
from core.portfolio import Holding, Portfolio
from core.tickets import (
    EXCEL_COLUMNS,
    GENERIC_COLUMNS,
    Order,
    TicketFormat,
    detect_ticket_format,
    orders_from_trades,
    read_excel,
    read_excel_trades,
    read_generic_csv,
    read_ibkr_basket_csv,
    read_ibkr_rebalance_csv,
    read_ticket,
    read_tradestation_csv,
    write_excel,
    write_generic_csv,
    write_ibkr_basket_csv,
    write_ibkr_rebalance_csv,
    write_ticket,
    write_tradestation_csv,
    write_tradestation_trade_lists,
)

#: The market-order header row of IBKR's documented example ("Manually Create a Basket
#: File", TWS User Guide); the limit-order row adds LmtPrice after OrderType.
IBKR_DOC_MKT = "Action,Quantity,Symbol,SecType,Exchange,Currency,TimeInForce,OrderType"
IBKR_DOC_LMT = IBKR_DOC_MKT + ",LmtPrice"

EVIL_SYMBOL = "=cmd|' /C calc'!A0"
EVIL_ACCOUNT = "@SUM(1+1)"


@pytest.fixture(scope="module")
def plan() -> TradePlan:
    pf = Portfolio(
        [
            Holding("SPY", 40, 500.0, account="U1234567"),
            Holding("TLT", 120, 90.0, account="U1234567"),
            Holding("IEF", 30, 95.0, account="U1234567"),
        ],
        cash=2_500.0,
    )
    prices = {"RSSB": 25.3, "VT": 118.2, "GLD": 215.7, "IEF": 95.0}
    target = {"SPY": 0.35, "RSSB": 0.25, "VT": 0.1, "GLD": 0.1, "IEF": 0.18}
    gen = TradeGenerator(TradeSettings(commission_per_trade=1.0), FundExposureMap.default())
    return gen.generate(target, pf, prices)


def assert_sells_first(orders: list[Order]) -> None:
    sides = [o.side for o in orders]
    assert sides == sorted(sides, key=lambda s: s == "BUY")


# --------------------------------------------------------------------------- round trips
def test_generic_csv_round_trip(plan: TradePlan, tmp_path: Path) -> None:
    path = write_generic_csv(plan, tmp_path / "t.csv")
    orders = read_generic_csv(path)
    assert orders == orders_from_trades(plan)
    assert [(o.symbol, o.side, o.quantity) for o in orders] == [
        (t.symbol, t.side, t.quantity) for t in plan.trades
    ]
    assert all(o.account == "U1234567" for o in orders)  # one account: new funds go there
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == GENERIC_COLUMNS
    ticket = read_ticket(path)
    assert ticket.format is TicketFormat.GENERIC_CSV
    as_trades = ticket.to_trades()
    assert [(t.symbol, t.side, t.quantity) for t in as_trades] == [
        (t.symbol, t.side, t.quantity) for t in plan.trades
    ]
    assert all(math.isnan(t.estimated_price) for t in as_trades)  # not in this format


def test_generic_csv_limit_orders_and_account_override(plan: TradePlan, tmp_path: Path) -> None:
    limits = {t.symbol: round(t.estimated_price * 1.01, 2) for t in plan.trades}
    path = write_generic_csv(
        plan,
        tmp_path / "t.csv",
        account="DU999",
        order_type="LMT",
        time_in_force="GTC",
        limit_prices=limits,
    )
    orders = read_generic_csv(path)
    assert {o.account for o in orders} == {"DU999"}
    assert all(o.order_type == "LMT" and o.time_in_force == "GTC" for o in orders)
    assert {o.symbol: o.limit_price for o in orders} == limits


def test_ibkr_basket_round_trip(plan: TradePlan, tmp_path: Path) -> None:
    path = write_ibkr_basket_csv(plan, tmp_path / "basket.csv", basket_tag="Rebal2026")
    ticket = read_ticket(path)
    assert ticket.format is TicketFormat.IBKR_BASKET
    assert ticket.orders == orders_from_trades(plan)
    assert ticket.meta["basket_tags"] == ["Rebal2026"]
    assert_sells_first(ticket.orders)


def test_ibkr_rebalance_round_trip(plan: TradePlan, tmp_path: Path) -> None:
    path = write_ibkr_rebalance_csv(plan, tmp_path / "rebalance.csv")
    ticket = read_ticket(path)
    assert ticket.format is TicketFormat.IBKR_REBALANCE
    assert ticket.orders == []
    pd.testing.assert_series_equal(
        ticket.targets, plan.target_weights, check_names=False, atol=1e-6, rtol=0
    )
    assert ticket.targets["TLT"] == 0.0  # a fund the plan exits is listed at 0% so TWS sells it
    lines = path.read_text().splitlines()
    assert all(len(line.split(",")) == 10 and line.startswith("DES,") for line in lines)
    assert "DES,SPY,STK,SMART,,,,,,35" in lines
    with pytest.raises(ValidationError, match="target percentages"):
        ticket.to_trades()


def test_tradestation_round_trip_one_list_per_side(plan: TradePlan, tmp_path: Path) -> None:
    paths = write_tradestation_trade_lists(
        plan, tmp_path / "plan.txt", default_exchange_id=18, enforce_minimum_average=False
    )
    assert list(paths) == ["SELL", "BUY"]
    assert paths["SELL"].name == "plan_SELL.txt"
    read_back = [o for side in ("SELL", "BUY") for o in read_ticket(paths[side]).orders]
    # The list has no account or time-in-force field: they are set in TradeStation's window.
    expected = orders_from_trades(plan)
    assert [o.account for o in expected] == ["U1234567"] * len(expected)
    assert read_back == [replace(o, account="") for o in expected]
    first = paths["SELL"].read_text().splitlines()[0]
    # The documented layout: Symbol, Exchange ID, #Quantity, Market
    sell = plan.sells[0]
    assert first == f"{sell.symbol}, 18, #{int(sell.quantity)}, Market"


def test_tradestation_limit_orders(tmp_path: Path) -> None:
    trades = [Trade("DELL", "BUY", 500, 29.5), Trade("SPY", "BUY", 100, 500.0)]
    path = write_tradestation_csv(
        trades,
        tmp_path / "ts.txt",
        exchange_ids={"DELL": 18, "SPY": 25},
        order_type="LMT",
        limit_prices={"DELL": 29, "SPY": 499.5},
    )
    assert path.read_text().splitlines() == [
        "DELL, 18, #500, Limit, 29",
        "SPY, 25, #100, Limit, 499.5",
    ]
    assert detect_ticket_format(path) is TicketFormat.TRADESTATION
    orders = read_tradestation_csv(path, side="BUY")
    assert [(o.symbol, o.quantity, o.limit_price) for o in orders] == [
        ("DELL", 500, 29.0),
        ("SPY", 100, 499.5),
    ]


def test_excel_round_trip_and_layout(plan: TradePlan, tmp_path: Path) -> None:
    path = write_excel(plan, tmp_path / "plan.xlsx")
    ticket = read_ticket(path)
    assert ticket.format is TicketFormat.EXCEL
    assert ticket.orders == orders_from_trades(plan)
    back = read_excel_trades(path)
    for a, b in zip(back, plan.trades, strict=True):
        assert (a.symbol, a.side, a.quantity, a.reason, a.account) == (
            b.symbol,
            b.side,
            b.quantity,
            b.reason,
            b.account,
        )
        assert a.estimated_value == pytest.approx(b.estimated_value)
        assert a.weight_after == pytest.approx(b.weight_after)
        assert a.estimated_commission == pytest.approx(b.estimated_commission)
    wb = load_workbook(path)
    assert wb.sheetnames == ["Trades", "Summary"]
    ws = wb["Trades"]
    assert tuple(c.value for c in ws[1]) == EXCEL_COLUMNS
    assert all(c.font.bold for c in ws[1])
    assert ws["D2"].data_type == "n" and ws["D2"].number_format == "#,##0"
    assert ws["K2"].number_format == "0.00%"
    assert ws.column_dimensions["B"].width >= 8
    summary = {r[0].value: r[1].value for r in wb["Summary"].iter_rows(min_row=2) if r[0].value}
    assert summary["n_trades"] == plan.n_trades
    assert summary["cash_after"] == pytest.approx(plan.cash_after)
    assert summary["estimated_costs"] == pytest.approx(plan.estimated_costs)
    assert summary["US_EQUITY"] == pytest.approx(plan.exposures_target["US_EQUITY"])


def test_write_ticket_dispatches_every_format(plan: TradePlan, tmp_path: Path) -> None:
    for fmt in TicketFormat:
        name = "t.xlsx" if fmt is TicketFormat.EXCEL else "t.csv"
        kwargs = (
            {"default_exchange_id": 18, "enforce_minimum_average": False}
            if fmt is TicketFormat.TRADESTATION
            else {}
        )
        folder = tmp_path / fmt.value
        folder.mkdir()
        out = write_ticket(fmt, plan, folder / name, **kwargs)
        paths = list(out.values()) if isinstance(out, dict) else [out]
        for p in paths:
            assert detect_ticket_format(p) is fmt


# --------------------------------------------------------------------------- IBKR layout
def test_ibkr_header_matches_the_documented_layout(tmp_path: Path) -> None:
    orders = [
        Order("GE", "BUY", 100, "LMT", 18.98),
        Order("IBM", "BUY", 100),
        Order("TLT", "SELL", 20, "LMT", 88.5, "GTC"),
        Order("SPY", "SELL", 5),
    ]
    path = write_ibkr_basket_csv(orders, tmp_path / "b.csv", basket_tag="")
    lines = path.read_text().splitlines()
    assert lines == [
        IBKR_DOC_MKT,
        "SELL,5,SPY,STK,SMART,USD,DAY,MKT",
        IBKR_DOC_LMT,
        "SELL,20,TLT,STK,SMART,USD,GTC,LMT,88.5",
        IBKR_DOC_MKT,
        "BUY,100,IBM,STK,SMART,USD,DAY,MKT",
        IBKR_DOC_LMT,
        "BUY,100,GE,STK,SMART,USD,DAY,LMT,18.98",
    ]
    assert read_ibkr_basket_csv(path) == sorted(
        orders, key=lambda o: (o.side == "BUY", o.order_type == "LMT")
    )


def test_ibkr_rows_have_one_value_per_field_and_no_spaces(plan: TradePlan, tmp_path: Path) -> None:
    limits = {t.symbol: t.estimated_price for t in plan.trades[:2]}
    orders = orders_from_trades(plan)
    orders = [
        Order(o.symbol, o.side, o.quantity, "LMT", limits[o.symbol], account=o.account)
        if o.symbol in limits
        else o
        for o in orders
    ]
    path = write_ibkr_basket_csv(
        orders, tmp_path / "b.csv", basket_tag="StackOpt1", primary_exchanges={"VT": "ARCA"}
    )
    header: list[str] = []
    for line in path.read_text().splitlines():
        assert ", " not in line and " ," not in line and '"' not in line
        cells = line.split(",")
        if cells[0] == "Action":
            header = cells
            assert header[:8] == IBKR_DOC_MKT.split(",")
            assert ("LmtPrice" in header) == (header[8] == "LmtPrice")
            continue
        assert len(cells) == len(header)
        row = dict(zip(header, cells, strict=True))
        assert row["BasketTag"] == "StackOpt1"
        assert all(v != "" for v in row.values())  # TWS wants a value for every field
        if row["Symbol"] == "VT":
            assert row["Exchange"] == "SMART/ARCA"
    assert_sells_first(read_ibkr_basket_csv(path))


@pytest.mark.parametrize("tag", ["Rebal 2026", "re-bal", "tag,1", "ümlaut"])
def test_ibkr_basket_tag_must_be_alphanumeric(tag: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="letters and digits"):
        write_ibkr_basket_csv([Order("SPY", "BUY", 1)], tmp_path / "b.csv", basket_tag=tag)


def test_ibkr_refuses_commas_inside_values(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="comma"):
        write_ibkr_basket_csv([Order("SPY", "BUY", 1, account="U1,U2")], tmp_path / "b.csv")


def test_ibkr_reader_reports_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(IBKR_DOC_MKT + "\nBUY,100,IBM,STK,SMART,USD,DAY\n")
    with pytest.raises(DataError, match="row 2"):
        read_ibkr_basket_csv(path)
    path.write_text(IBKR_DOC_MKT + "\nBUY,ten,IBM,STK,SMART,USD,DAY,MKT\n")
    with pytest.raises(DataError, match="quantity 'ten'") as info:
        read_ibkr_basket_csv(path)
    assert info.value.row == 2 and info.value.column == "Quantity"
    path.write_text("BUY,100,IBM,STK,SMART,USD,DAY,MKT\n")
    with pytest.raises(DataError, match="before any header"):
        read_ibkr_basket_csv(path)


def test_ibkr_reader_accepts_ibkr_example_with_blank_line(tmp_path: Path) -> None:
    text = (
        IBKR_DOC_MKT
        + "\nBUY,100,IBM,STK,SMART/ARCA,USD,DAY,MKT\nBUY,100,GE,STK,SMART/ARCA,USD,DAY,MKT\n\n"
        + IBKR_DOC_LMT
        + "\nBUY,100,IBM,STK,SMART/ARCA,USD,DAY,LMT,14.82\n"
    )
    path = tmp_path / "ibkr.csv"
    path.write_text(text)
    orders = read_ticket(path).orders
    assert [(o.symbol, o.order_type, o.limit_price) for o in orders] == [
        ("IBM", "MKT", None),
        ("GE", "MKT", None),
        ("IBM", "LMT", 14.82),
    ]


# --------------------------------------------------------------------------- formula injection
def test_formula_injection_is_neutralised_in_csv(tmp_path: Path) -> None:
    orders = [Order(EVIL_SYMBOL, "SELL", 3, account=EVIL_ACCOUNT), Order("-1+2", "BUY", 2)]
    path = write_generic_csv(orders, tmp_path / "evil.csv")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    for row in rows[1:]:
        assert not row[0].startswith(("=", "+", "-", "@"))
        assert not row[1].startswith(("=", "+", "-", "@"))
    assert rows[1][1] == "'" + EVIL_SYMBOL.upper()
    assert rows[1][0] == "'" + EVIL_ACCOUNT
    back = read_generic_csv(path)
    assert back == orders
    assert back[0].symbol == EVIL_SYMBOL.upper() and back[0].account == EVIL_ACCOUNT


def test_formula_injection_is_neutralised_in_ibkr_and_tradestation(tmp_path: Path) -> None:
    order = Order(EVIL_SYMBOL, "BUY", 100, account="U1")
    path = write_ibkr_basket_csv([order], tmp_path / "b.csv")
    row = path.read_text().splitlines()[1].split(",")
    assert row[2] == "'" + EVIL_SYMBOL.upper()
    assert read_ibkr_basket_csv(path) == [order]
    path = write_tradestation_csv([order], tmp_path / "ts_BUY.txt", default_exchange_id=1)
    assert path.read_text().startswith("'=")
    assert read_tradestation_csv(path)[0].symbol == EVIL_SYMBOL.upper()


def test_formula_injection_is_neutralised_in_excel(tmp_path: Path) -> None:
    trades = [Trade(EVIL_SYMBOL, "SELL", 3, 10.0, 30.0, 0.1, 0.0, "exit", EVIL_ACCOUNT)]
    path = write_excel(
        trades, tmp_path / "evil.xlsx", summary={"note": "=HYPERLINK(1)", "x": -0.25}
    )
    wb = load_workbook(path)
    ws = wb["Trades"]
    for cell in ws[2]:
        assert cell.data_type != "f"  # nothing is stored as a formula
    assert ws["A2"].value == "'" + EVIL_ACCOUNT
    assert ws["B2"].value == "'" + EVIL_SYMBOL.upper()
    summary = {r[0].value: r[1] for r in wb["Summary"].iter_rows(min_row=2)}
    assert summary["note"].value == "'=HYPERLINK(1)"
    # A negative NUMBER stays a number: neutralising applies to text only.
    assert summary["x"].value == -0.25 and summary["x"].data_type == "n"
    back = read_excel_trades(path)[0]
    assert (back.symbol, back.account, back.reason) == (EVIL_SYMBOL.upper(), EVIL_ACCOUNT, "exit")


def test_negative_numbers_in_summary_plan_stay_numbers(plan: TradePlan, tmp_path: Path) -> None:
    path = write_excel(plan, tmp_path / "p.xlsx")
    ws = load_workbook(path)["Summary"]
    drifts = [
        r[4].value for r in ws.iter_rows() if isinstance(r[4].value, float) and r[4].value < 0
    ]
    assert drifts, "a plan whose rounding undershoots some fund shows a negative drift"
    assert min(plan.residual_drift) == pytest.approx(min(drifts))


# --------------------------------------------------------------------------- atomic writes
def test_failed_write_leaves_the_old_file_and_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("old content\n")
    bad = [Order("SPY", "SELL", 1), Order("IEF", "BUY", 2, account="A, B")]
    with pytest.raises(ValidationError):
        write_ibkr_basket_csv(bad, path)
    assert path.read_text() == "old content\n"
    assert os.listdir(tmp_path) == ["b.csv"]


def test_excel_failure_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    import openpyxl.workbook.workbook as wbmod

    def boom(self, filename):  # noqa: ANN001
        filename.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(wbmod.Workbook, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        write_excel([Trade("SPY", "BUY", 1)], tmp_path / "t.xlsx")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- validation
def test_limit_orders_need_limit_prices(tmp_path: Path) -> None:
    trades = [Trade("SPY", "BUY", 1)]
    with pytest.raises(ValidationError, match="limit price"):
        write_generic_csv(trades, tmp_path / "t.csv", order_type="LMT")
    with pytest.raises(ValidationError, match="market orders"):
        write_generic_csv(trades, tmp_path / "t.csv", limit_prices={"SPY": 1.0})
    with pytest.raises(ValidationError, match="limit price"):
        Order("SPY", "BUY", 1, "LMT")
    with pytest.raises(ValidationError, match="no limit price"):
        Order("SPY", "BUY", 1, "MKT", 10.0)
    with pytest.raises(ValidationError, match="time in force"):
        Order("SPY", "BUY", 1, time_in_force="FOREVER")


def test_tradestation_rules(tmp_path: Path) -> None:
    mixed = [Trade("SPY", "SELL", 100), Trade("IEF", "BUY", 200)]
    with pytest.raises(ValidationError, match="no buy/sell field"):
        write_tradestation_csv(mixed, tmp_path / "ts.txt", default_exchange_id=1)
    with pytest.raises(ValidationError, match="exchange ID"):
        write_tradestation_csv(mixed, tmp_path / "ts.txt", side="BUY")
    with pytest.raises(ValidationError, match="at least 100 shares"):
        write_tradestation_csv([Trade("SPY", "BUY", 5)], tmp_path / "ts.txt", default_exchange_id=1)
    with pytest.raises(ValidationError, match="whole shares"):
        write_tradestation_csv(
            [Trade("SPY", "BUY", 150.5)], tmp_path / "ts.txt", default_exchange_id=1
        )
    two_accounts = [Trade("SPY", "BUY", 100, account="U1"), Trade("IEF", "BUY", 200, account="U2")]
    with pytest.raises(ValidationError, match="one list per account"):
        write_tradestation_csv(two_accounts, tmp_path / "ts.txt", default_exchange_id=1)
    path = write_tradestation_csv(mixed, tmp_path / "ts.txt", side="BUY", default_exchange_id=1)
    with pytest.raises(DataError, match="does not say buy or sell"):
        read_tradestation_csv(path)
    assert read_ticket(path, side="buy").orders == [Order("IEF", "BUY", 200)]


def test_unknown_and_empty_files_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Date,Open,High\n2024-01-01,1,2\n")
    with pytest.raises(DataError, match="not a ticket"):
        read_ticket(path)
    path.write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        read_ticket(path)
    with pytest.raises(DataError, match="not found"):
        read_ticket(tmp_path / "missing.csv")
    path.write_text(
        "Account,Symbol,Side,Quantity,OrderType,LimitPrice,TimeInForce\n,SPY,BUY,-3,MKT,,DAY\n"
    )
    with pytest.raises(DataError, match="quantity") as info:
        read_generic_csv(path)
    assert info.value.row == 2


def test_generic_reader_finds_columns_by_name(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "\ufeffSymbol,Quantity,Side,TimeInForce,Account,LimitPrice,OrderType,Note\r\n"
        "SPY,10,sell,day,,,mkt,x\r\n\r\nIEF,5,BUY,GTC,U1,95.5,LMT,y\r\n"
    )
    assert read_ticket(path).orders == [
        Order("SPY", "SELL", 10),
        Order("IEF", "BUY", 5, "LMT", 95.5, "GTC", "U1"),
    ]


def test_rebalance_reader_and_writer_edges(tmp_path: Path) -> None:
    path = write_ibkr_rebalance_csv({"spy": 0.123456789, "IEF": 0.0}, tmp_path / "r.csv")
    assert path.read_text().splitlines()[0] == "DES,SPY,STK,SMART,,,,,,12.3457"
    assert read_ibkr_rebalance_csv(path)["SPY"] == pytest.approx(0.123457)
    with pytest.raises(ValidationError, match="0 or more"):
        write_ibkr_rebalance_csv({"SPY": -0.1}, tmp_path / "r.csv")
    path.write_text("DES,SPY,STK,SMART,,,,,,abc\n")
    with pytest.raises(DataError, match="target percent"):
        read_ibkr_rebalance_csv(path)


# --------------------------------------------------------------------------- properties
symbols = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.=+-@", min_size=1, max_size=8)


@st.composite
def order_lists(draw, whole: bool = False):
    n = draw(st.integers(1, 8))
    orders = []
    for _ in range(n):
        qty = (
            draw(st.integers(1, 100_000))
            if whole
            else draw(st.one_of(st.integers(1, 100_000), st.decimals("0.0001", "9999", places=4)))
        )
        limit = draw(st.one_of(st.none(), st.decimals("0.01", "99999", places=2)))
        orders.append(
            Order(
                symbol=draw(symbols),
                side=draw(st.sampled_from(["BUY", "SELL"])),
                quantity=float(qty),
                order_type="MKT" if limit is None else "LMT",
                limit_price=None if limit is None else float(limit),
                time_in_force=draw(st.sampled_from(["DAY", "GTC"])),
                account=draw(st.sampled_from(["", "U1234567", "=evil", "-x"])),
            )
        )
    return orders


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(orders=order_lists())
def test_property_csv_formats_round_trip(orders: list[Order], tmp_path: Path) -> None:
    expected = sorted(orders, key=lambda o: o.side == "BUY")
    assert read_generic_csv(write_generic_csv(orders, tmp_path / "g.csv")) == expected
    ibkr = read_ibkr_basket_csv(write_ibkr_basket_csv(orders, tmp_path / "i.csv"))
    key = lambda o: (o.side == "BUY", o.order_type == "LMT", o.account)  # noqa: E731
    assert ibkr == sorted(orders, key=key)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(orders=order_lists())
def test_property_excel_round_trip(orders: list[Order], tmp_path: Path) -> None:
    expected = sorted(orders, key=lambda o: o.side == "BUY")
    assert read_excel(write_excel(orders, tmp_path / "x.xlsx")) == expected


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    weights=st.dictionaries(
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=5),
        st.floats(0.0, 1.0),
        min_size=1,
        max_size=10,
    )
)
def test_property_rebalance_round_trip(weights: dict[str, float], tmp_path: Path) -> None:
    back = read_ibkr_rebalance_csv(write_ibkr_rebalance_csv(weights, tmp_path / "r.csv"))
    assert list(back.index) == list(weights)
    for sym, w in weights.items():
        assert math.isclose(back[sym], w, abs_tol=5e-7)
