"""Main window: tabs, menus and shortcuts, status bar, files, settings, market data, results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QKeySequence
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox

from core.assumptions import MarketAssumptions, default_idiosyncratic_vol
from core.market_data import check_data_quality, read_prices
from core.workspace import Workspace
from desktop.dialogs import app_settings
from desktop.main_window import MainWindow
from desktop.models.holdings_model import SHARES
from desktop.tabs.results_tab import analyse_current_portfolio

EDIT = Qt.ItemDataRole.EditRole


@pytest.fixture
def window(add_window) -> MainWindow:
    return add_window(MainWindow(offer_recovery=False))


def _edit_shares(window: MainWindow, symbol: str, shares: str) -> None:
    model = window.holdings_tab.model
    assert model.setData(model.index(model.row_of(symbol), SHARES), shares, EDIT)


def _answer(monkeypatch, button: QMessageBox.StandardButton) -> list[str]:
    asked: list[str] = []

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        return button

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def _price_csv(path: Path, bad_print: bool = True) -> pd.DataFrame:
    """A small wide price table: RSSB, VTI and XYZ (XYZ with a one-day bad print)."""
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2024-01-02", periods=260)
    data = {
        s: 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates)))) for s in ("RSSB", "VTI", "XYZ")
    }
    frame = pd.DataFrame(data, index=pd.Index(dates, name="Date"))
    frame.loc[dates[:40], "XYZ"] = np.nan  # a shorter history
    if bad_print:
        frame.iloc[150, 2] *= 1.6
    frame.round(4).to_csv(path)
    return frame


# ----------------------------------------------------------------- structure
def test_tabs_in_order(window):
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert titles == ["Holdings", "Fund Exposures", "Constraints", "Views", "Results", "Backtest"]


def test_menus_have_the_standard_shortcuts(window):
    keys = QKeySequence.StandardKey
    expected = {
        window.new_action: keys.New,
        window.open_action: keys.Open,
        window.save_action: keys.Save,
        window.save_as_action: keys.SaveAs,
        window.undo_action: keys.Undo,
        window.redo_action: keys.Redo,
        window.quit_action: keys.Quit,
    }
    for action, key in expected.items():
        bindings = QKeySequence.keyBindings(key)
        assert action.shortcuts(), action.text()
        assert not bindings or bindings[0] in action.shortcuts(), action.text()
    assert window.quit_action.shortcuts()[0].toString() in ("Ctrl+Q", "Alt+F4")
    menus = [a.text() for a in window.menuBar().actions()]
    assert menus == ["&File", "&Edit", "&Data", "&Help"]


def test_status_bar_shows_name_state_value_and_notional(window):
    ws = Workspace.sample()
    p = ws.priced_portfolio()
    assert window.status_name.text() == ws.name
    assert window.status_dirty.text() == "not saved to a file"
    assert window.status_value.text() == f"Total ${p.total_value:,.0f}"
    assert window.status_notional.text() == f"Notional {p.total_notional(ws.fund_map) * 100:.1f}%"
    _edit_shares(window, "RSSB", "2000")
    p2 = window.session.workspace.priced_portfolio()
    assert "unsaved" in window.status_dirty.text()
    assert window.windowTitle().endswith("* - StackOpt")
    assert window.status_value.text() == f"Total ${p2.total_value:,.0f}"
    window.undo_action.trigger()
    assert window.status_dirty.text() == "not saved to a file"
    assert window.status_value.text() == f"Total ${p.total_value:,.0f}"
    window.redo_action.trigger()
    assert window.session.workspace.portfolio["RSSB"].shares == 2000


# --------------------------------------------------------------------- files
def test_save_as_then_open_round_trip(add_window, window, tmp_path, monkeypatch):
    _edit_shares(window, "VT", "321")
    target = tmp_path / "mine"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    assert window.save_as_action.trigger() is None
    saved = tmp_path / "mine.stackopt.json"
    assert saved.is_file()
    assert window.session.path == saved
    assert not window.session.is_dirty
    assert "mine.stackopt.json" in window.status_name.text()
    assert window.status_dirty.text() == "saved"
    assert app_settings().value("main_window/last_folder") == str(tmp_path)
    assert window.recent_files()[0] == str(saved.resolve())

    other = add_window(MainWindow(offer_recovery=False))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(saved), ""))
    other.open_action.trigger()
    assert other.session.path == saved
    assert other.session.workspace == window.session.workspace
    assert other.session.workspace.portfolio["VT"].shares == 321
    assert not other.session.is_dirty


def test_save_writes_to_the_open_file_without_asking(add_window, tmp_path):
    path = tmp_path / "ws.json"
    Workspace.sample().save(path)
    w = add_window(MainWindow(str(path), offer_recovery=False))
    _edit_shares(w, "GLD", "40")
    w.save_action.trigger()  # QFileDialog is not mocked: asking would fail the test
    assert Workspace.load(path).portfolio["GLD"].shares == 40


def test_new_asks_about_unsaved_changes(window, monkeypatch):
    _edit_shares(window, "GLD", "40")
    asked = _answer(monkeypatch, QMessageBox.StandardButton.Cancel)
    assert not window.new_file()
    assert window.session.workspace.portfolio["GLD"].shares == 40
    assert "unsaved changes" in asked[0]
    _answer(monkeypatch, QMessageBox.StandardButton.Discard)
    assert window.new_file()
    ws = window.session.workspace
    assert len(ws.portfolio) == 0 and ws.name == "Untitled"
    assert len(ws.fund_map) > 30  # the built-in map, ready to add holdings
    assert not window.session.is_dirty
    assert window.status_value.text() == "Total -"


def test_recent_files_menu_opens_and_prunes(qtbot, window, tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    ws = Workspace.sample()
    ws.name = "Recent one"
    ws.save(path)
    assert window.open_path(path)
    window._fill_recent_menu()
    actions = [a for a in window.recent_menu.actions() if a.text().startswith("&1")]
    assert actions and actions[0].toolTip() == str(path.resolve())
    assert window.new_file()
    actions[0].trigger()
    assert window.session.workspace.name == "Recent one"
    path.unlink()
    shown = []
    monkeypatch.setattr("desktop.main_window.show_error", lambda *a: shown.append(a[2]))
    assert not window.open_recent(str(path.resolve()))
    assert "no longer exists" in shown[0]
    assert str(path.resolve()) not in window.recent_files()


def test_geometry_and_tab_are_remembered(qtbot, add_window, monkeypatch):
    first = add_window(MainWindow(offer_recovery=False))
    first.resize(1200, 700)
    first.tabs.setCurrentIndex(4)
    first.show()
    qtbot.waitExposed(first)
    saved = first.saveGeometry()
    first.close()
    assert app_settings().value("main_window/geometry") == saved
    # The offscreen screen is 800 x 600, so Qt clamps a restored window: check that the
    # saved bytes are handed to restoreGeometry rather than comparing sizes.
    restored = []
    monkeypatch.setattr(MainWindow, "restoreGeometry", lambda self, g: restored.append(g))
    second = add_window(MainWindow(offer_recovery=False))
    assert restored == [saved]
    assert second.tabs.currentIndex() == 4


def test_rename_is_undoable(window, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Retirement", True))
    window.rename_workspace()
    assert window.session.workspace.name == "Retirement"
    assert window.status_name.text() == "Retirement"
    window.undo_action.trigger()
    assert window.session.workspace.name.startswith("Sample")


# --------------------------------------------------------------- market data
def test_market_data_loads_off_thread_and_shows_coverage_and_warnings(
    qtbot, window, tmp_path, qtmodeltester
):
    path = tmp_path / "prices.csv"
    frame = _price_csv(path)
    dialog = window.show_market_data()
    qtbot.addWidget(dialog)
    assert "No price history loaded" in dialog.status.text()
    with qtbot.waitSignal(window.session.market_data_changed, timeout=30_000):
        dialog.load_files([path])
    md = window.session.market_data
    assert list(md.prices.columns) == ["RSSB", "VTI", "XYZ"]
    rows = {r.symbol: r for r in dialog.coverage_model.rows}
    xyz = frame["XYZ"].dropna()
    assert rows["XYZ"].first == xyz.index[0] and rows["XYZ"].last == xyz.index[-1]
    assert rows["XYZ"].observations == len(xyz)
    assert rows["RSSB"].held and not rows["XYZ"].held
    # the same report core gives for the same file
    expected = check_data_quality(read_prices(path))
    assert [i.kind for i in dialog.issues_model.issues] == sorted(
        [i.kind for i in expected.issues],
        key=lambda k: [i.kind for i in dialog.issues_model.issues].index(k),
    )
    assert any(i.kind == "jump_reversal" and i.symbol == "XYZ" for i in md.report.issues)
    assert rows["XYZ"].issues >= 1
    qtmodeltester.check(dialog.coverage_model, force_py=True)
    qtmodeltester.check(dialog.issues_model, force_py=True)
    assert "3 symbols" in dialog.status.text()


def test_latest_prices_update_holdings_and_undo(qtbot, window, tmp_path):
    path = tmp_path / "prices.csv"
    frame = _price_csv(path, bad_print=False)
    dialog = window.show_market_data()
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(window.session.market_data_changed, timeout=30_000):
        dialog.load_files([path])
    old = dict(window.session.workspace.prices)
    dialog.use_latest_prices()
    ws = window.session.workspace
    assert ws.prices["RSSB"] == pytest.approx(frame["RSSB"].iloc[-1], abs=1e-4)
    assert ws.prices["NTSX"] == old["NTSX"]  # not in the file: unchanged
    assert ws.price_date == f"{frame.index[-1]:%Y-%m-%d}"
    window.undo_action.trigger()
    assert window.session.workspace.prices == old


def test_bad_price_file_says_where_and_keeps_the_data(qtbot, window, tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("Date,SPY\n2026-01-02,500\n2026-01-05,abc\n", encoding="utf-8")
    dialog = window.show_market_data()
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.loading_failed, timeout=30_000) as blocker:
        dialog.load_files([path])
    assert "broken.csv" in blocker.args[0]
    assert window.session.market_data is None
    assert dialog.error.isVisibleTo(dialog)


def test_estimator_settings_are_workspace_settings_and_undoable(qtbot, window):
    dialog = window.show_market_data()
    qtbot.addWidget(dialog)
    ws = window.session.workspace
    assert ws.setting("covariance_method") == "exposure_model"
    dialog.covariance_method.setCurrentIndex(dialog.covariance_method.findData("ledoit_wolf"))
    dialog.covariance_method.activated.emit(dialog.covariance_method.currentIndex())
    dialog.lookback.setValue(10.0)
    assert ws.setting("covariance_method") == "ledoit_wolf"
    assert ws.setting("lookback_years") == 10.0
    assert "needs price history" in dialog.settings_note.text()
    assert window.session.is_dirty
    window.undo_action.trigger()
    window.undo_action.trigger()
    assert ws.setting("covariance_method") == "exposure_model"
    assert dialog.covariance_method.currentData() == "exposure_model"
    assert not window.session.is_dirty


def test_dropped_price_file_loads_market_data(qtbot, window, tmp_path):
    path = tmp_path / "prices.csv"
    _price_csv(path, bad_print=False)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDragEnterEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dragEnterEvent(event)
    assert event.isAccepted()
    with qtbot.waitSignal(window.session.market_data_changed, timeout=30_000):
        window.open_dropped([str(path)])
    assert window.session.market_data is not None
    qtbot.addWidget(window.market_data_dialog)


def test_dropped_holdings_file_goes_to_the_import_preview(window, tmp_path, monkeypatch):
    path = tmp_path / "positions.csv"
    path.write_text("symbol,shares\nSPY,5\n", encoding="utf-8")
    seen = []

    def exec_(self):
        seen.append([r.symbol for r in self.parsed.rows])
        return QDialog.DialogCode.Rejected

    monkeypatch.setattr("desktop.tabs.holdings_tab.HoldingsImportDialog.exec", exec_)
    window.open_dropped([str(path)])
    assert seen == [["SPY"]]
    assert window.tabs.currentWidget() is window.holdings_tab


# ------------------------------------------------------------------- results
def test_results_tab_matches_an_independent_computation(window):
    ws = window.session.workspace
    tab = window.results_tab
    assert tab.results is not None, tab.error
    a = MarketAssumptions.default()
    p = ws.priced_portfolio()
    symbols = p.symbols
    w = p.weights().to_numpy()
    codes = list(a.codes)
    e = np.array([[ws.fund_map[s].exposures.get(k, 0.0) / 100 for s in symbols] for k in codes])
    vol = a.volatilities[codes].to_numpy()
    sigma_x = a.correlation.loc[codes, codes].to_numpy() * np.outer(vol, vol)
    idio = np.array([default_idiosyncratic_vol(ws.fund_map[s]) for s in symbols])
    sigma = e.T @ sigma_x @ e + np.diag(idio**2)
    costs = np.array([ws.fund_map[s].annual_cost for s in symbols])
    rf = ws.setting("risk_free_rate")
    mu = e.T @ a.expected_excess_returns[codes].to_numpy() - costs + rf
    cash = 1 - w.sum()
    exp_ret = w @ mu + cash * rf
    volatility = np.sqrt(w @ sigma @ w)
    r = tab.results
    assert r.expected_return == pytest.approx(exp_ret, rel=1e-9)
    assert r.volatility == pytest.approx(volatility, rel=1e-9)
    assert r.sharpe_ratio == pytest.approx((exp_ret - rf) / volatility, rel=1e-9)
    rc = w * (sigma @ w) / volatility
    np.testing.assert_allclose(r.risk_by_fund.to_numpy(), rc, rtol=1e-9)
    assert r.risk_by_type.sum() == pytest.approx(volatility, rel=1e-9)
    assert tab.volatility.value.text() == f"{volatility * 100:.2f}%"
    ref = analyse_current_portfolio(ws)
    assert ref.volatility == pytest.approx(r.volatility)


def test_results_follow_edits_and_explain_problems(qtbot, window):
    tab = window.results_tab
    before = tab.results.volatility
    _edit_shares(window, "SSO", "2000")
    qtbot.waitUntil(lambda: tab.results is not None and tab.results.volatility > before)
    window.session.workspace.prices.pop("GLD")
    window.session.portfolio_changed.emit()
    qtbot.waitUntil(lambda: tab.results is None)
    assert "GLD" in tab.message.text()
