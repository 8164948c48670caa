"""Holdings tab: the model (qtmodeltester), edits with undo/redo, add/remove, CSV import."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QMessageBox

from core.brokers import guess_mapping
from core.exposures import ExposureCalculator
from core.workspace import Workspace
from desktop.holdings_import import HoldingsFile, ParsedImport, open_holdings_file, preview
from desktop.models.holdings_model import (
    FIXED_COLUMNS,
    NAME,
    NOTIONAL,
    PRICE,
    SHARES,
    SYMBOL,
    VALUE,
    WEIGHT,
    HoldingsModel,
    RawRole,
)
from desktop.models.import_preview_model import STATUS, ImportPreviewModel
from desktop.session import Session
from desktop.tabs.holdings_tab import HoldingsTab
from desktop.undo_commands import (
    PLACEHOLDER_EXPOSURES,
    AddHoldingCommand,
    RemoveHoldingsCommand,
)

EDIT = Qt.ItemDataRole.EditRole

SCHWAB = """\
"Positions for account Individual ...123 as of 04:15 PM ET, 2026/07/31","","","","","",""
"","","","","","",""
"Symbol","Description","Qty (Quantity)","Price","Mkt Val (Market Value)","Cost Basis","Security Type"
"RSSB","RETURN STACKED GLOBAL STOCKS & BONDS ETF","1,000","$30.00","$30,000.00","$28,000.00","ETFs & Closed End Funds"
"VTI","VANGUARD TOTAL STOCK MARKET ETF","50.5","$368.00","$18,584.00","$15,000.00","ETFs & Closed End Funds"
"ZZZQ","SOME NEW FUND","10","$20.00","$200.00","$100.00","ETFs & Closed End Funds"
"BAD","BROKEN ROW","--","$20.00","--","--","ETFs & Closed End Funds"
"Cash & Cash Investments","--","--","--","$2,500.00","--","Cash and Money Market"
"Account Total","--","--","--","$51,284.00","--","--"
"""

GENERIC_BAD = """\
My holdings export
symbol,shares,price
SPY,10,500
IEF,abc,95
,5,10
GLD,3,-2
TLT,4,
BRK B,1,400
"""


@pytest.fixture
def session(qtbot) -> Session:
    return Session(Workspace.sample())


@pytest.fixture
def tab(qtbot, session) -> HoldingsTab:
    widget = HoldingsTab(session)
    qtbot.addWidget(widget)
    return widget


def _cell(model: HoldingsModel, symbol: str, column: int, role=RawRole):
    return model.index(model.row_of(symbol), column).data(role)


def _shares(session: Session, symbol: str) -> float:
    return session.workspace.portfolio[symbol].shares


def _open(text: str, name: str) -> HoldingsFile:
    return open_holdings_file(text.encode("utf-8"), filename=name)


def _generic(text: str, name: str, currency: str = "USD") -> ParsedImport:
    """A generic table read as the import dialog first reads it: the guessed mapping."""
    file = _open(text, name)
    return preview(file.parse(guess_mapping(list(file.header))), currency)


# ------------------------------------------------------------------------- model
def test_holdings_model_passes_qtmodeltester(qtmodeltester, session):
    model = HoldingsModel(session)
    qtmodeltester.check(model, force_py=True)
    # and again after a change of shape (a new exposure column appears)
    session.undo_stack.push(AddHoldingCommand(session, "DBC", 10, 25.0))
    qtmodeltester.check(model, force_py=True)


def test_model_columns_values_and_exposures_match_an_independent_computation(session):
    model = HoldingsModel(session)
    ws = session.workspace
    portfolio = ws.priced_portfolio()
    symbols = portfolio.symbols
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert tuple(headers[: len(FIXED_COLUMNS)]) == FIXED_COLUMNS
    codes = model.exposure_codes
    assert len(headers) == len(FIXED_COLUMNS) + len(codes)
    carried = {k for s in symbols for k, v in ws.fund_map[s].exposures.items() if v}
    assert set(codes) == carried  # one column per exposure type present

    shares = np.array([h.shares for h in portfolio.holdings])
    prices = np.array([ws.prices[s] for s in symbols])
    values = shares * prices
    total = values.sum() + portfolio.cash
    w = values / total
    for i, s in enumerate(symbols):
        assert _cell(model, s, VALUE) == pytest.approx(values[i])
        assert _cell(model, s, WEIGHT) == pytest.approx(w[i])
        assert _cell(model, s, NOTIONAL) == pytest.approx(
            sum(abs(v) for v in ws.fund_map[s].exposures.values()) / 100
        )
    assert _cell(model, "CASH", WEIGHT) == pytest.approx(portfolio.cash / total)
    assert model.total_value == pytest.approx(total)
    e = np.array([[ws.fund_map[s].exposures.get(k, 0.0) / 100 for s in symbols] for k in codes])
    x = e @ w
    for k, code in enumerate(codes):
        column = model.column_of(code)
        col_sum = sum(model.index(r, column).data(RawRole) or 0.0 for r in range(model.rowCount()))
        assert col_sum == pytest.approx(x[k])
        assert model.exposures[code] == pytest.approx(x[k])
    notional = np.abs(w) @ np.array([ws.fund_map[s].notional for s in symbols])
    assert model.total_notional == pytest.approx(notional)


def test_numbers_are_formatted_and_right_aligned(session):
    model = HoldingsModel(session)
    row = model.row_of("RSSB")
    assert model.index(row, PRICE).data() == "$30.24"
    assert model.index(row, SHARES).data() == "1,488"
    assert model.index(row, WEIGHT).data().endswith("%")
    assert model.index(row, NOTIONAL).data() == "200%"
    right = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    for col in (SHARES, PRICE, VALUE, WEIGHT, NOTIONAL, len(FIXED_COLUMNS)):
        assert model.index(row, col).data(Qt.ItemDataRole.TextAlignmentRole) == right
    assert model.index(row, NAME).data(Qt.ItemDataRole.TextAlignmentRole) != right


def test_only_shares_price_and_cash_are_editable(session):
    model = HoldingsModel(session)
    editable = Qt.ItemFlag.ItemIsEditable
    row = model.row_of("NTSX")
    cash = model.row_of("CASH")
    assert model.flags(model.index(row, SHARES)) & editable
    assert model.flags(model.index(row, PRICE)) & editable
    assert not model.flags(model.index(row, SYMBOL)) & editable
    assert not model.flags(model.index(row, VALUE)) & editable
    assert model.flags(model.index(cash, VALUE)) & editable
    assert not model.flags(model.index(cash, SHARES)) & editable


# ------------------------------------------------------------------- editing
def test_edit_shares_through_the_model_then_undo_and_redo(qtbot, session):
    model = HoldingsModel(session)
    before = _shares(session, "NTSX")
    price = session.workspace.prices["NTSX"]
    index = model.index(model.row_of("NTSX"), SHARES)
    with qtbot.waitSignal(session.portfolio_changed):
        assert model.setData(index, "1,000", EDIT)
    assert _shares(session, "NTSX") == 1000
    assert _cell(model, "NTSX", VALUE) == pytest.approx(1000 * price)
    assert session.is_dirty
    session.undo_stack.undo()
    assert _shares(session, "NTSX") == before
    assert _cell(model, "NTSX", VALUE) == pytest.approx(before * price)
    assert not session.is_dirty
    session.undo_stack.redo()
    assert _shares(session, "NTSX") == 1000
    assert session.undo_stack.undoText() == "set NTSX shares to 1,000"


def test_edit_price_and_cash_are_undoable(session):
    model = HoldingsModel(session)
    old_price = session.workspace.prices["GLD"]
    assert model.setData(model.index(model.row_of("GLD"), PRICE), "$400.50", EDIT)
    assert session.workspace.prices["GLD"] == 400.5
    assert _cell(model, "GLD", VALUE) == pytest.approx(32 * 400.5)
    assert model.setData(model.index(model.row_of("CASH"), VALUE), "12000", EDIT)
    assert session.workspace.portfolio.cash == 12000
    session.undo_stack.undo()
    session.undo_stack.undo()
    assert session.workspace.prices["GLD"] == old_price
    assert session.workspace.portfolio.cash == 7500


@pytest.mark.parametrize(
    ("column", "text", "reason"),
    [
        (SHARES, "abc", "not a number"),
        (SHARES, "-5", "short position"),
        (PRICE, "0", "not positive"),
        (PRICE, "nan", "not"),
    ],
)
def test_invalid_edits_are_refused_with_a_reason_and_change_nothing(
    qtbot, session, column, text, reason
):
    model = HoldingsModel(session)
    before = session.workspace.to_dict()
    with qtbot.waitSignal(model.edit_rejected) as blocker:
        assert not model.setData(model.index(model.row_of("VTI"), column), text, EDIT)
    assert reason in blocker.args[0]
    assert session.workspace.to_dict() == before
    assert session.undo_stack.count() == 0


def test_negative_shares_and_cash_only_when_shorts_are_allowed(qtbot, session):
    model = HoldingsModel(session)
    cash_index = model.index(model.row_of("CASH"), VALUE)
    with qtbot.waitSignal(model.edit_rejected):
        assert not model.setData(cash_index, "-1000", EDIT)
    session.workspace.constraints.long_only = False
    assert model.setData(model.index(model.row_of("VTI"), SHARES), "-20", EDIT)
    assert _shares(session, "VTI") == -20
    assert session.workspace.portfolio.allow_short
    assert _cell(model, "VTI", WEIGHT) < 0
    assert model.setData(cash_index, "-1000", EDIT)
    assert session.workspace.portfolio.cash == -1000
    session.undo_stack.undo()
    session.undo_stack.undo()
    assert _shares(session, "VTI") == 109
    assert not session.workspace.portfolio.allow_short


# --------------------------------------------------------------- add / remove
def test_add_a_known_fund(tab, session):
    assert tab.add_holding("spy", 10, 500.0)
    assert _shares(session, "SPY") == 10
    assert session.workspace.prices["SPY"] == 500.0
    assert tab.model.symbol_at(tab.model.rowCount() - 2) == "SPY"  # before the cash row
    session.undo_stack.undo()
    assert "SPY" not in session.workspace.portfolio
    assert "SPY" not in session.workspace.prices


def test_add_refuses_duplicates_and_missing_prices_inline(tab, session):
    assert not tab.add_holding("RSSB", 5, 30.0)
    assert "already held" in tab.message.text()
    assert not tab.add_holding("IWM", 5)
    assert "no price" in tab.message.text()
    assert session.undo_stack.count() == 0


def test_unknown_symbol_is_offered_as_a_placeholder(tab, session, monkeypatch):
    asked = []

    def yes(*args, **kwargs):
        asked.append(args[2])
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", yes)
    assert tab.add_holding("NEWX", 100, 12.5)
    assert "not in the fund map" in asked[0]
    fund = session.workspace.fund_map["NEWX"]
    assert fund.exposures == PLACEHOLDER_EXPOSURES
    assert _shares(session, "NEWX") == 100
    assert "placeholder" in tab.message.text()
    row = tab.model.row_of("NEWX")
    assert "placeholder" in tab.model.index(row, NAME).data(Qt.ItemDataRole.ToolTipRole)
    session.undo_stack.undo()  # one step removes the holding AND the placeholder
    assert "NEWX" not in session.workspace.fund_map
    assert "NEWX" not in session.workspace.portfolio


def test_unknown_symbol_declined_changes_nothing(tab, session, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    assert not tab.add_holding("NEWX", 100, 12.5)
    assert "NEWX" not in session.workspace.fund_map
    assert session.undo_stack.count() == 0


def test_remove_rows_and_undo_restores_them_in_place(tab, session):
    order = list(session.workspace.portfolio.symbols)
    assert tab.remove_holdings(["NTSX", "GLD"])
    assert session.workspace.portfolio.symbols == [s for s in order if s not in ("NTSX", "GLD")]
    assert tab.model.row_of("NTSX") == -1
    session.undo_stack.undo()
    assert session.workspace.portfolio.symbols == order


def test_remove_selected_skips_the_cash_row(tab, session):
    view = tab.view
    selection = view.selectionModel()
    flags = selection.SelectionFlag.Select | selection.SelectionFlag.Rows
    selection.select(tab.model.index(tab.model.row_of("VT"), 0), flags)
    selection.select(tab.model.index(tab.model.row_of("CASH"), 0), flags)
    assert tab.selected_symbols() == ["VT"]
    tab.remove_selected()
    assert "VT" not in session.workspace.portfolio
    assert session.workspace.portfolio.cash == 7500


# ---------------------------------------------------------------- summary
def test_summary_panel_and_charts_show_core_numbers(tab, session):
    ws = session.workspace
    p = ws.priced_portfolio()
    assert tab.total_value.text() == f"${p.total_value:,.0f}"
    assert tab.total_notional.text() == f"{p.total_notional(ws.fund_map) * 100:.1f}%"
    expected = p.exposures(ws.fund_map)
    names = [ws.fund_map.exposure_types[c].name for c in expected.index]
    assert tab.type_plot.labels == names
    np.testing.assert_allclose(tab.type_plot.values, expected.to_numpy())
    np.testing.assert_allclose(tab.group_plot.values, p.exposures_by_group(ws.fund_map).to_numpy())
    tab.add_holding("SPY", 100, 500.0)  # the summary follows edits
    p2 = ws.priced_portfolio()
    assert tab.total_value.text() == f"${p2.total_value:,.0f}"


def test_unpriced_holding_is_flagged_and_values_wait(qtbot, session):
    session.workspace.prices.pop("GLD")
    session.portfolio_changed.emit()
    tab = HoldingsTab(session)
    qtbot.addWidget(tab)
    assert tab.model.total_value is None
    assert "GLD" in tab.model.problem
    assert tab.model.index(tab.model.row_of("GLD"), PRICE).data() == "no price"
    assert tab.total_value.text() == "-"
    assert not tab.type_plot.plot_widget.isVisibleTo(tab)
    assert tab.model.setData(tab.model.index(tab.model.row_of("GLD"), PRICE), "371.54", EDIT)
    assert tab.model.total_value is not None


# ------------------------------------------------------------------ import
def test_schwab_positions_export_is_read_by_core_brokers(tmp_path):
    path = tmp_path / "Individual-Positions-2026-07-31.csv"
    path.write_text(SCHWAB, encoding="utf-8")
    file = open_holdings_file(path)
    assert file.is_broker  # recognised by core.brokers.parse_positions
    parsed = preview(file.broker_import)
    assert parsed.format == "schwab"
    assert parsed.cash() == 2500.0
    positions = [r for r in parsed.rows if not r.skipped]
    assert [r.symbol for r in positions] == ["RSSB", "VTI", "ZZZQ"]
    rssb, vti = positions[0], positions[1]
    assert (rssb.shares, rssb.price, rssb.market_value) == (1000, 30.0, 30000.0)
    assert vti.shares == 50.5
    assert rssb.account == "Individual (...123)"
    skipped = {r.line: r.skipped for r in parsed.rows if r.skipped}
    assert "no quantity" in skipped[7]  # the broken row, by its line number
    assert "Account Total" in skipped[9]


def test_broker_rows_in_another_currency_are_errors(tmp_path):
    path = tmp_path / "positions.csv"
    path.write_text(SCHWAB, encoding="utf-8")
    parsed = preview(open_holdings_file(path).broker_import, currency="EUR")
    assert all("priced in USD" in r.error for r in parsed.rows if not r.skipped)
    assert parsed.cash() is None and "not imported" in parsed.notes()[0]
    assert parsed.holdings() == []


def test_generic_csv_reports_each_bad_row_by_line():
    # core.brokers.parse_generic(collect_errors=True) reads every row it can; the
    # preview adds the portfolio's checks (a ticker, a positive price) as row errors.
    parsed = _generic(GENERIC_BAD, "mine.csv")
    assert parsed.format == "generic"
    by_line = {r.line: r for r in parsed.rows}
    assert by_line[3].ok and by_line[3].shares == 10 and by_line[3].price == 500
    assert "'abc' is not a number" in by_line[4].error and by_line[4].column == "shares"
    assert by_line[5].skipped == "no symbol in this row"
    assert "not positive" in by_line[6].error
    assert by_line[7].ok and by_line[7].price is None
    assert "ticker" in by_line[8].error
    assert parsed.cash() is None
    assert [h.symbol for h in parsed.holdings()] == ["SPY", "TLT"]


def test_import_preview_changes_nothing_until_accepted(qtbot, tab, session, tmp_path):
    path = tmp_path / "positions.csv"
    path.write_text(SCHWAB, encoding="utf-8")
    before = session.workspace.to_dict()
    dialog = tab.make_import_dialog(open_holdings_file(path))
    qtbot.addWidget(dialog)
    statuses = [dialog.model.index(r, STATUS).data() for r in range(dialog.model.rowCount())]
    assert statuses[0] == "OK"
    assert statuses[2].startswith("new fund")
    assert statuses[3] == "skipped: no quantity in this row"
    assert "3 of 3 positions will be imported" in dialog.summary.text()
    assert "2 other lines" in dialog.summary.text()
    dialog.placeholders.setChecked(False)
    assert "2 of 3" in dialog.summary.text()
    assert dialog.model.index(2, STATUS).data() == "skipped: not in the fund map"
    dialog.reject()
    assert session.workspace.to_dict() == before
    assert session.undo_stack.count() == 0


def test_import_accepted_replaces_holdings_in_one_undo_step(tab, session, tmp_path, monkeypatch):
    path = tmp_path / "positions.csv"
    path.write_text(SCHWAB, encoding="utf-8")
    before = session.workspace.to_dict()
    monkeypatch.setattr(
        "desktop.tabs.holdings_tab.HoldingsImportDialog.exec",
        lambda self: QDialog.DialogCode.Accepted,
    )
    assert tab.import_file(str(path))
    ws = session.workspace
    assert ws.portfolio.symbols == ["RSSB", "VTI", "ZZZQ"]
    assert ws.portfolio.cash == 2500
    assert ws.prices["VTI"] == 368.0
    assert ws.fund_map["ZZZQ"].exposures == PLACEHOLDER_EXPOSURES
    assert tab.model.total_value == pytest.approx(30000 + 18584 + 200 + 2500)
    assert session.undo_stack.count() == 1
    session.workspace.validate()  # placeholders included, it saves and loads back
    session.undo_stack.undo()
    assert session.workspace.to_dict() == before


def test_import_merge_adds_to_current_holdings(qtbot, session, tab):
    dialog = tab.make_import_dialog(_open("symbol,quantity\nRSSB,12\nSPY,3\n", "extra.csv"))
    qtbot.addWidget(dialog)
    dialog.merge.setChecked(True)
    session.workspace.prices["SPY"] = 500.0
    session.undo_stack.push(dialog.command())
    assert _shares(session, "RSSB") == 1488 + 12
    assert _shares(session, "SPY") == 3
    assert session.workspace.portfolio.cash == 7500


def test_import_preview_model_passes_qtmodeltester(qtmodeltester, session):
    model = ImportPreviewModel(_generic(GENERIC_BAD, "mine.csv"), session.workspace.fund_map)
    qtmodeltester.check(model, force_py=True)


def test_preview_of_a_generic_file_lists_every_bad_row(qtbot, tab, tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(GENERIC_BAD, encoding="utf-8")
    file = open_holdings_file(path)
    assert not file.is_broker
    dialog = tab.make_import_dialog(file)
    qtbot.addWidget(dialog)
    assert dialog.parsed.format == "generic"
    text = dialog.summary.text()
    assert "2 of 5 positions will be imported" in text
    assert "3 with errors will be left out (lines 4, 6, 8)" in text
    model = dialog.model
    line4 = [r.line for r in dialog.parsed.rows].index(4)
    assert model.index(line4, STATUS).data() == (
        "error: shares: 'abc' is not a number; correct the cell or export the file again"
    )
    dialog.reject()


def test_import_of_a_file_without_holdings_columns_asks_for_them(
    tab, session, tmp_path, monkeypatch
):
    path = tmp_path / "prices.csv"
    path.write_text("Date,SPY\n2026-01-02,500\n", encoding="utf-8")
    seen = []

    def exec_(dialog):
        seen.append((dialog.page, dialog.next_button.isEnabled(), dialog.mapping_widget.problem))
        return QDialog.DialogCode.Rejected

    monkeypatch.setattr("desktop.tabs.holdings_tab.HoldingsImportDialog.exec", exec_)
    before = session.workspace.to_dict()
    assert not tab.import_file(str(path))
    assert seen == [(0, False, "Choose the symbol and quantity column.")]
    assert session.workspace.to_dict() == before


def test_import_of_a_file_without_a_header_says_why(tab, session, tmp_path, monkeypatch):
    path = tmp_path / "numbers.csv"
    path.write_text("1,2\n3,4\n", encoding="utf-8")
    shown = []
    monkeypatch.setattr(
        "desktop.tabs.holdings_tab.show_error", lambda parent, title, msg, *a: shown.append(msg)
    )
    before = session.workspace.to_dict()
    assert not tab.import_file(str(path))
    assert "no header row found" in shown[0]
    assert session.workspace.to_dict() == before


def test_exposure_matrix_helper_agrees_with_the_model(session):
    # The position exposure cell is weight x the fund's exposure (core's E matrix).
    model = HoldingsModel(session)
    ws = session.workspace
    calc = ExposureCalculator(ws.fund_map, ws.portfolio.symbols, model.exposure_codes)
    w = ws.priced_portfolio().weights()
    for i, s in enumerate(calc.symbols):
        for k, code in enumerate(model.exposure_codes):
            cell = model.index(model.row_of(s), model.column_of(code)).data(RawRole)
            expected = calc.matrix[k, i] * w[s]
            assert (cell or 0.0) == pytest.approx(expected)


# ---------------------------------------------------------------- properties
_symbols = st.sampled_from(["RSSB", "NTSX", "GDE", "VTI", "GLD", "TMF", "BIL"])
_edits = st.lists(
    st.one_of(
        st.tuples(st.just("shares"), _symbols, st.integers(0, 5000)),
        st.tuples(st.just("price"), _symbols, st.floats(1.0, 1000.0)),
        st.tuples(st.just("cash"), st.just("CASH"), st.floats(0.0, 1e6)),
        st.tuples(st.just("remove"), _symbols, st.just(0)),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(edits=_edits)
def test_random_edits_keep_totals_consistent_and_undo_all_restores(qapp, edits):
    session = Session(Workspace.sample())
    model = HoldingsModel(session)
    original = session.workspace.to_dict()
    for kind, symbol, value in edits:
        row = model.row_of(symbol)
        if row < 0:
            continue
        if kind == "remove":
            if symbol in session.workspace.portfolio:
                session.undo_stack.push(RemoveHoldingsCommand(session, [symbol]))
            continue
        column = {"shares": SHARES, "price": PRICE, "cash": VALUE}[kind]
        assert model.setData(model.index(row, column), f"{value:.6f}", EDIT)
        # every edit is visible at once and totals stay those of core
        p = session.workspace.priced_portfolio()
        assert model.total_value == pytest.approx(p.total_value)
        weights = [model.index(r, WEIGHT).data(RawRole) for r in range(model.rowCount())]
        if p.total_value > 0:
            assert sum(weights) == pytest.approx(1.0)
            e = model.exposures
            for code in model.exposure_codes:
                col = model.column_of(code)
                cells = [model.index(r, col).data(RawRole) or 0.0 for r in range(model.rowCount())]
                assert sum(cells) == pytest.approx(e.get(code, 0.0), abs=1e-12)
    while session.undo_stack.canUndo():
        session.undo_stack.undo()
    assert session.workspace.to_dict() == original
    assert not session.is_dirty
