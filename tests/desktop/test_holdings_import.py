"""Import holdings in the app: broker previews, account choice, the column-mapping step.

Every broker fixture of tests/fixtures/brokers opens a preview naming its broker and
accounts (checked against the hand-checked ``*.expected.json``); ticking one account
imports exactly that account's shares and cash; an unknown table goes through the
column-mapping step, which is remembered per layout; every bad row is listed; nothing
changes until the user accepts, and one Undo restores the workspace.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QFileDialog

from core.brokers import BROKER_NAMES
from core.workspace import Workspace
from desktop.dialogs import HoldingsImportDialog, app_settings
from desktop.holdings_import import looks_like_holdings, open_holdings_file
from desktop.import_mapping import SETTINGS_GROUP, MappingMemory
from desktop.main_window import MainWindow
from desktop.models.import_preview_model import (
    A_ID,
    STATUS,
    AccountsModel,
    FileRowsModel,
    ImportPreviewModel,
)
from desktop.session import Session
from desktop.tabs.holdings_tab import HoldingsTab
from desktop.undo_commands import PLACEHOLDER_EXPOSURES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "brokers"
NAMES = sorted(p.name.removesuffix(".expected.json") for p in FIXTURES.glob("*.expected.json"))
MULTI = [
    n
    for n in NAMES
    if len(json.loads((FIXTURES / f"{n}.expected.json").read_text())["accounts"]) > 1
]
ACCEPT = QDialog.DialogCode.Accepted
REJECT = QDialog.DialogCode.Rejected

#: A layout no guess understands (German names, semicolons, decimal commas).
UNKNOWN = "Depot;Fonds;Stück;Kurs\nA-1;VTI;10;250,50\nA-1;IEF;5;95,10\nB-2;GLD;3;180,00\n"
#: The same columns in another order, other rows.
UNKNOWN_REORDERED = "Kurs;Fonds;Depot;Stück\n30,25;RSSB;A-1;100\n27,50;KMLM;B-2;40\n"

#: A generic table with one problem per row (and two good rows).
BAD_ROWS = """\
Ticker,Shares,Price,Value
VTI,10,250.5,2505
IEF,ten,95,950
GLD,3,#N/A,540
BRK B,1,400,400
TLT,4,-90,
DBMF,2.5,28,70
SPY,,500,
"""


def expected(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.expected.json").read_text(encoding="utf-8"))


@pytest.fixture
def session(qtbot) -> Session:
    return Session(Workspace.sample())


@pytest.fixture
def tab(qtbot, session) -> HoldingsTab:
    widget = HoldingsTab(session)
    qtbot.addWidget(widget)
    return widget


def _dialog(qtbot, tab: HoldingsTab, source: Path | bytes, name: str | None = None):
    file = open_holdings_file(source, filename=name)
    dialog = tab.make_import_dialog(file)
    qtbot.addWidget(dialog)
    return dialog


def _choose(dialog: HoldingsImportDialog, **columns: str) -> None:
    widget = dialog.mapping_widget
    assert widget is not None
    for role, name in columns.items():
        combo = widget.combos[role]
        index = combo.findData(name)
        assert index > 0, (role, name)
        combo.setCurrentIndex(index)


def _statuses(dialog: HoldingsImportDialog) -> dict[int, str]:
    model = dialog.model
    return {model.index(r, 0).data(Qt.ItemDataRole.UserRole): model.index(r, STATUS).data()
            for r in range(model.rowCount())}  # fmt: skip


def _usd_shares(account: dict) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for p in account["positions"]:
        if p["currency"] == "USD":
            out.setdefault(p["symbol"], []).append(p["quantity"])
    return {s: math.fsum(q) for s, q in out.items()}


# ------------------------------------------------------------------ previews
@pytest.mark.parametrize("name", NAMES)
def test_each_fixture_opens_a_preview_with_its_broker_and_accounts(qtbot, tab, session, name):
    want = expected(name)
    before = session.workspace.to_dict()
    dialog = _dialog(qtbot, tab, FIXTURES / f"{name}.csv")
    ids = [a["account_id"] for a in want["accounts"]]
    if want["broker"] == "generic":
        # Not a broker export: the column-mapping step first, prefilled by the guess.
        assert dialog.page == dialog.MAPPING_PAGE
        assert dialog.next_button.isEnabled()
        dialog.next_button.click()
        assert "read with your column mapping" in dialog.heading.text()
    else:
        assert dialog.page == dialog.PREVIEW_PAGE
        assert dialog.mapping_widget is None and dialog.back_button.isHidden()
        assert BROKER_NAMES[want["broker"]] in dialog.heading.text()
        assert want["layout"].replace("_", " ") in dialog.heading.text()
    assert dialog.page == dialog.PREVIEW_PAGE
    assert dialog.parsed.account_ids == ids
    assert dialog.accounts.selected_ids() == ids  # every account ticked at first
    assert dialog.accounts_view.isHidden() == (len(ids) == 1)
    # Every position, skipped line and warning of core's parse is on screen.
    lines = [dialog.model.index(r, 0).data() for r in range(dialog.model.rowCount())]
    want_lines = sorted(
        [p["row"] for a in want["accounts"] for p in a["positions"]]
        + [s["row"] for s in want["skipped"]]
    )
    assert [int(x) for x in lines] == want_lines
    skipped = {s["row"]: s["reason"] for s in want["skipped"]}
    for line, status in _statuses(dialog).items():
        if line in skipped:
            assert status == f"skipped: {skipped[line]}"
    for warning in want["warnings"]:
        assert warning in dialog.notes.text()
    # Cash per currency, and the symbols the fund map does not know.
    cash: dict[str, float] = {}
    for a in want["accounts"]:
        for ccy, amount in a["cash"].items():
            cash[ccy] = cash.get(ccy, 0.0) + amount
    assert dialog.parsed.cash_by_currency(ids) == pytest.approx(cash)
    fund_map = session.workspace.fund_map
    unknown = {
        p["symbol"]
        for a in want["accounts"]
        for p in a["positions"]
        if p["symbol"] not in fund_map and p["currency"] == "USD"
    }
    assert set(dialog.parsed.unmapped(fund_map)) == unknown
    assert dialog.unmapped_label.isHidden() == (not unknown)
    dialog.reject()
    assert session.workspace.to_dict() == before
    assert session.undo_stack.count() == 0


@pytest.mark.parametrize("name", MULTI)
def test_ticking_one_account_imports_only_that_account(qtbot, tab, session, name):
    ws = session.workspace
    ws.constraints.long_only = False  # a margin loan (negative cash) may be imported
    before = ws.to_dict()
    dialog = _dialog(qtbot, tab, FIXTURES / f"{name}.csv")
    for account in expected(name)["accounts"]:
        # Click the boxes as a user would: clear all, tick this one.
        for row in range(dialog.accounts.rowCount()):
            index = dialog.accounts.index(row, A_ID)
            wanted = dialog.parsed.account_ids[row] == account["account_id"]
            state = Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked
            assert dialog.accounts.setData(index, state, Qt.ItemDataRole.CheckStateRole)
        assert dialog.accounts.selected_ids() == [account["account_id"]]
        shares = _usd_shares(account)
        usd_cash = account["cash"].get("USD")
        assert dialog.ok_button.isEnabled(), dialog.problem.text()
        session.undo_stack.push(dialog.command())
        portfolio = session.workspace.portfolio
        assert {h.symbol: h.shares for h in portfolio} == pytest.approx(shares)
        if usd_cash is not None:
            assert portfolio.cash == pytest.approx(usd_cash)
        for p in account["positions"]:
            if p["currency"] == "USD" and p["price"] is not None:
                assert session.workspace.prices[p["symbol"]] == pytest.approx(p["price"])
        assert session.undo_stack.count() == 1  # one undo step
        session.undo_stack.undo()
        assert session.workspace.to_dict() == before
        session.undo_stack.clear()


def test_merged_accounts_sum_shares_and_cash(qtbot, tab, session):
    want = expected("schwab_all_accounts")
    dialog = _dialog(qtbot, tab, FIXTURES / "schwab_all_accounts.csv")
    session.undo_stack.push(dialog.command())
    total: dict[str, float] = {}
    for a in want["accounts"]:
        for s, q in _usd_shares(a).items():
            total[s] = total.get(s, 0.0) + q
    portfolio = session.workspace.portfolio
    assert {h.symbol: h.shares for h in portfolio} == pytest.approx(total)
    assert portfolio.cash == pytest.approx(math.fsum(a["cash"]["USD"] for a in want["accounts"]))
    assert "RSSB is on lines" in dialog.notes.text()  # held in two accounts: summed
    assert session.workspace.fund_map["AAPL"].exposures == PLACEHOLDER_EXPOSURES


def test_no_account_ticked_refuses_to_import(qtbot, tab):
    dialog = _dialog(qtbot, tab, FIXTURES / "fidelity.csv")
    dialog.accounts.set_selected([])
    assert not dialog.ok_button.isEnabled()
    assert "Tick at least one account" in dialog.summary.text()
    assert all(s.startswith(("left out", "skipped")) for s in _statuses(dialog).values())


def test_margin_loan_while_long_only_is_explained_before_import(qtbot, tab, session):
    assert session.workspace.constraints.long_only
    dialog = _dialog(qtbot, tab, FIXTURES / "schwab_single.csv")
    assert not dialog.ok_button.isEnabled()
    assert "Long only" in dialog.problem.text() and "Use the file's cash" in dialog.problem.text()
    dialog.use_cash.setChecked(False)
    assert dialog.ok_button.isEnabled() and dialog.problem.isHidden()
    cash = session.workspace.portfolio.cash
    session.undo_stack.push(dialog.command())
    assert session.workspace.portfolio.cash == cash  # the loan was left out


def test_foreign_currency_positions_and_cash_are_not_imported(qtbot, tab, session):
    dialog = _dialog(qtbot, tab, FIXTURES / "degiro.csv")
    statuses = _statuses(dialog)
    eur_rows = [p["row"] for p in expected("degiro")["accounts"][0]["positions"]
                if p["currency"] == "EUR"]  # fmt: skip
    for line in eur_rows:
        assert statuses[line] == "error: priced in EUR; the portfolio is in USD"
    assert "not imported" in dialog.cash_label.text()
    assert "Cash of 916.80 EUR is not imported" in dialog.notes.text()
    assert dialog.parsed.cash() == pytest.approx(45.1)


# ------------------------------------------------------------ column mapping
def test_unknown_layout_goes_through_mapping_and_is_remembered(tab, session, tmp_path, monkeypatch):
    first = tmp_path / "depot.csv"
    first.write_text(UNKNOWN, encoding="utf-8")
    second = tmp_path / "depot-later.csv"
    second.write_text(UNKNOWN_REORDERED, encoding="utf-8")
    assert not looks_like_holdings(first)  # nothing guessable, nothing remembered yet
    before = session.workspace.to_dict()
    seen: list[str] = []

    def map_then_accept(dialog):
        assert dialog.page == dialog.MAPPING_PAGE
        widget = dialog.mapping_widget
        assert widget.problem == "Choose the symbol and quantity column."
        assert not dialog.next_button.isEnabled()
        assert widget.file_model.headerData(1, Qt.Orientation.Horizontal).startswith("Fonds")
        _choose(dialog, symbol="Fonds", quantity="Stück")
        # The live preview follows each choice.
        assert [r.symbol for r in widget.parsed.rows if r.ok] == ["VTI", "IEF", "GLD"]
        assert widget.parsed.account_ids == [""]
        _choose(dialog, price="Kurs", account="Depot")
        assert widget.parsed.account_ids == ["A-1", "B-2"]
        assert [r.price for r in widget.parsed.rows] == [250.5, 95.1, 180.0]
        assert "\u2192 price" in widget.file_model.headerData(3, Qt.Orientation.Horizontal)
        assert session.workspace.to_dict() == before  # choosing changes nothing
        dialog.next_button.click()
        assert dialog.page == dialog.PREVIEW_PAGE
        seen.append(dialog.heading.text())
        return ACCEPT

    monkeypatch.setattr(HoldingsImportDialog, "exec", map_then_accept)
    assert tab.import_file(str(first))
    assert "Fonds \u2192 symbol" in seen[0]
    ws = session.workspace
    assert {h.symbol: h.shares for h in ws.portfolio} == {"VTI": 10, "IEF": 5, "GLD": 3}
    assert ws.prices["IEF"] == pytest.approx(95.1)
    remembered = MappingMemory(app_settings()).get(["Kurs", "Fonds", "Depot", "Stück"])
    assert remembered is not None
    assert remembered.columns() == {
        "symbol": "Fonds",
        "quantity": "Stück",
        "price": "Kurs",
        "account": "Depot",
    }
    assert looks_like_holdings(second)  # a remembered layout is holdings when dropped

    def straight_to_preview(dialog):
        # Same columns in another order: the remembered choice, no question asked.
        assert dialog.page == dialog.PREVIEW_PAGE
        assert not dialog.back_button.isHidden()
        assert dialog.mapping == remembered
        return ACCEPT

    monkeypatch.setattr(HoldingsImportDialog, "exec", straight_to_preview)
    assert tab.import_file(str(second))
    assert {h.symbol: h.shares for h in session.workspace.portfolio} == {"RSSB": 100, "KMLM": 40}
    assert session.workspace.prices["KMLM"] == pytest.approx(27.5)
    assert session.undo_stack.count() == 2
    session.undo_stack.undo()
    session.undo_stack.undo()
    assert session.workspace.to_dict() == before


def test_back_to_the_columns_from_a_remembered_layout(qtbot, tab, tmp_path):
    header = ["Depot", "Fonds", "Stück", "Kurs"]
    dialog = _dialog(qtbot, tab, UNKNOWN.encode(), "depot.csv")
    _choose(dialog, symbol="Fonds", quantity="Stück")
    dialog.remember_mapping()
    again = _dialog(qtbot, tab, UNKNOWN_REORDERED.encode(), "later.csv")
    assert again.page == again.PREVIEW_PAGE
    assert MappingMemory(app_settings()).get(header).price_col is None
    again.back_button.click()
    assert again.page == again.MAPPING_PAGE and not again.next_button.isHidden()
    _choose(again, price="Kurs")
    again.next_button.click()
    assert [r.price for r in again.parsed.rows] == [30.25, 27.5]


def test_every_bad_row_is_listed_with_its_column(qtbot, tab, session):
    before = session.workspace.to_dict()
    dialog = _dialog(qtbot, tab, BAD_ROWS.encode(), "bad.csv")
    widget = dialog.mapping_widget
    # Lines 3 and 4: cells the mapping cannot read (core's collect_errors mode);
    # 5 and 6: a ticker and a price the portfolio refuses; 8: no quantity (skipped).
    assert "4 rows with errors (lines 3, 4, 5, 6)" in widget.status.text()
    statuses = _statuses(dialog)
    assert (
        statuses[3]
        == "error: Shares: 'ten' is not a number; correct the cell or export the file again"
    )
    assert (
        statuses[4]
        == "error: Price: '#N/A' is not a number; correct the cell or export the file again"
    )
    assert "is not a ticker" in statuses[5]
    assert statuses[6] == "error: price -90 is not positive"
    assert statuses[8] == "skipped: no quantity in this row"
    assert statuses[2] == "OK" and statuses[7].startswith("OK")
    dialog.next_button.click()
    assert "2 of 6 positions will be imported" in dialog.summary.text()
    assert "4 with errors will be left out (lines 3, 4, 5, 6)" in dialog.summary.text()
    # The same rows are errors in the mapping step's own preview table.
    preview = widget.preview_model
    errors = [preview.index(r, 0).data() for r in range(preview.rowCount())
              if preview.index(r, STATUS).data().startswith("error")]  # fmt: skip
    assert errors == ["3", "4", "5", "6"]
    assert dialog.ok_button.text() == "Import 2 holdings"
    dialog.reject()
    assert session.workspace.to_dict() == before


def test_mapping_problems_block_the_next_step(qtbot, tab):
    dialog = _dialog(qtbot, tab, BAD_ROWS.encode(), "bad.csv")
    widget = dialog.mapping_widget
    _choose(dialog, price="Shares")
    assert widget.problem == "'Shares' is chosen as both quantity and price: pick one."
    assert not dialog.next_button.isEnabled()
    assert widget.parsed.rows == []
    _choose(dialog, price="Price")
    widget.currency.setText("EU")
    assert "not a currency code" in widget.problem and not dialog.next_button.isEnabled()
    widget.currency.setText("USD")
    assert widget.problem == "" and dialog.next_button.isEnabled()


def test_european_decimals_can_be_forced(qtbot, tab):
    # "1,500" is 1500 or 1.5: nothing in this file tells, so the user says.
    text = 'Fund,Units,Close\nVWCE,"1,500",80\nIWDA,"2,250",95\n'
    dialog = _dialog(qtbot, tab, text.encode(), "eu.csv")
    _choose(dialog, symbol="Fund", quantity="Units", price="Close")
    assert [r.shares for r in dialog.parsed.rows] == [1500.0, 2250.0]  # the guess
    dialog.mapping_widget.decimal.setCurrentIndex(2)  # comma
    assert [r.shares for r in dialog.parsed.rows] == [1.5, 2.25]
    assert dialog.mapping.decimal == ","


def test_excel_table_goes_through_the_mapping_step(qtbot, tab, session, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["My broker", None, None])
    sheet.append(["Holding name", "Units held", "Close"])
    sheet.append(["RSSB", 120, 30.25])
    sheet.append(["VTI", 7.5, 250.0])
    sheet.append(["IEF", "n/a?", 95.0])
    path = tmp_path / "export.xlsx"
    book.save(path)
    dialog = _dialog(qtbot, tab, path)
    assert dialog.page == dialog.MAPPING_PAGE
    assert dialog.mapping_widget.file_model.header == ["Holding name", "Units held", "Close"]
    _choose(dialog, symbol="Holding name", quantity="Units held", price="Close")
    assert _statuses(dialog)[5].startswith("error: Units held:")
    dialog.next_button.click()
    session.undo_stack.push(dialog.command())
    assert {h.symbol: h.shares for h in session.workspace.portfolio} == {"RSSB": 120, "VTI": 7.5}


def test_corrupt_remembered_mapping_is_forgotten(qtbot):
    settings = app_settings()
    memory = MappingMemory(settings)
    header = ["Fonds", "Stück"]
    settings.setValue(memory.key(header), "{not json")
    assert memory.get(header) is None
    assert settings.value(memory.key(header)) is None
    settings.setValue(
        memory.key(header), json.dumps({"symbol_col": "Gone", "quantity_col": "Stück"})
    )
    assert memory.get(header) is None
    assert memory.key(header).startswith(SETTINGS_GROUP)


# ------------------------------------------------------------------ models
def test_import_models_pass_qtmodeltester(qtmodeltester, qtbot, tab, session):
    dialog = _dialog(qtbot, tab, FIXTURES / "fidelity.csv")
    accounts = AccountsModel(dialog.parsed)
    qtmodeltester.check(accounts, force_py=True)
    accounts.set_selected(dialog.parsed.account_ids[:1])
    qtmodeltester.check(accounts, force_py=True)
    preview = ImportPreviewModel(dialog.parsed, session.workspace.fund_map)
    preview.set_selected_accounts(dialog.parsed.account_ids[1:])
    qtmodeltester.check(preview, force_py=True)
    file = open_holdings_file(BAD_ROWS.encode(), filename="bad.csv")
    rows = FileRowsModel(file.header, file.rows, {0: "symbol"})
    qtmodeltester.check(rows, force_py=True)


def test_accounts_model_refuses_other_edits(qtbot, tab):
    dialog = _dialog(qtbot, tab, FIXTURES / "vanguard.csv")
    model = dialog.accounts
    assert not model.setData(model.index(0, 1), "x", Qt.ItemDataRole.EditRole)
    assert not model.setData(model.index(0, A_ID), "x", Qt.ItemDataRole.EditRole)
    assert model.data(model.index(0, A_ID), Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    right = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    assert model.data(model.index(0, 3), Qt.ItemDataRole.TextAlignmentRole) == right


# ------------------------------------------------------------ window routes
@pytest.fixture
def window(add_window) -> MainWindow:
    return add_window(MainWindow(offer_recovery=False))


def _record(monkeypatch) -> list[tuple[str, list[str]]]:
    seen: list[tuple[str, list[str]]] = []

    def exec_(dialog):
        seen.append((dialog.parsed.format, dialog.parsed.account_ids))
        return REJECT

    monkeypatch.setattr(HoldingsImportDialog, "exec", exec_)
    return seen


def test_dropped_broker_export_opens_the_preview(window, monkeypatch):
    seen = _record(monkeypatch)
    path = FIXTURES / "schwab_all_accounts.csv"
    assert looks_like_holdings(path)
    window.open_dropped([str(path)])
    assert seen == [("schwab", ["...123", "...456", "...789"])]
    assert window.tabs.currentWidget() is window.holdings_tab


def test_dropped_excel_table_opens_the_import(window, monkeypatch, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.active.append(["Symbol", "Quantity"])
    book.active.append(["VTI", 3])
    path = tmp_path / "holdings.xlsx"
    book.save(path)
    seen = _record(monkeypatch)
    window.open_dropped([str(path)])
    assert seen == [("generic", [""])]


def test_price_history_is_not_taken_for_holdings(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("Date,SPY,IEF\n2026-01-02,500,95\n2026-01-05,501,95.2\n", encoding="utf-8")
    assert not looks_like_holdings(path)
    assert not looks_like_holdings(tmp_path / "missing.csv")


def test_file_menu_import_holdings_opens_the_import(window, monkeypatch):
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    action = next(a for a in file_menu.actions() if a.text() == "&Import holdings...")
    path = FIXTURES / "ibkr_flex.csv"
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), "Holdings files")
    )
    seen = _record(monkeypatch)
    action.trigger()
    assert seen == [("ibkr", ["U7654321", "U7654322"])]
    assert window.holdings_tab.import_button.text() == "Import holdings..."
