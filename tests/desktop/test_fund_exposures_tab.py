"""Fund Exposures tab: the map editor, its undo, files, and each map checked against history."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QFileDialog, QInputDialog, QMessageBox

from core.exposures import ExposureType, FundExposureMap
from core.market_data import clean_prices, read_prices, to_returns
from core.resources import resource_text
from desktop.models.fund_map_model import INVALID_BRUSH, FitDetailModel, FundMapModel
from desktop.plots.fit_plot import NO_PRICES_MESSAGE
from desktop.session import MarketData, Session
from desktop.tabs.fund_exposures_tab import ExposureTypeDialog, FundExposuresTab

EDIT = Qt.ItemDataRole.EditRole
TIP = Qt.ItemDataRole.ToolTipRole
BG = Qt.ItemDataRole.BackgroundRole


@pytest.fixture
def session() -> Session:
    return Session()


@pytest.fixture
def tab(qtbot, session) -> FundExposuresTab:
    widget = FundExposuresTab(session)
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()


def cell(model: FundMapModel, symbol: str, key: str, code: str = ""):
    return model.index(model.row_of(symbol), model.column_of(key, code))


def synthetic_prices(years: int = 3, seed: int = 0) -> pd.DataFrame:
    """Daily closes of BIL, VTI, IEF and an NTSX built as 90% VTI + 60% IEF on cash."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2019-01-02", periods=252 * years, name="Date")
    n = len(dates)
    bil = np.full(n, 0.04 / 252)
    vti = rng.normal(0.0004, 0.011, n)
    ief = rng.normal(0.0001, 0.004, n)
    ntsx = bil + 0.9 * (vti - bil) + 0.6 * (ief - bil) - 0.002 / 252 + rng.normal(0, 4e-4, n)
    returns = pd.DataFrame({"BIL": bil, "VTI": vti, "IEF": ief, "NTSX": ntsx}, index=dates)
    return 100.0 * (1.0 + returns).cumprod()


# ------------------------------------------------------------------------ models
def test_models_pass_qtmodeltester(qtmodeltester, tab):
    qtmodeltester.check(tab.model)
    qtmodeltester.check(tab.proxy)
    tab.select_symbol("UPAR")
    assert tab.detail_model.rowCount() > 0
    qtmodeltester.check(tab.detail_model)
    qtmodeltester.check(FitDetailModel())


def test_matrix_shows_the_map_in_percent_with_notional(tab, session):
    model = tab.model
    fmap = session.workspace.fund_map
    assert model.rowCount() == len(fmap)
    assert cell(model, "NTSX", "exposure", "US_EQUITY").data() == "90.0"
    assert cell(model, "NTSX", "exposure", "UST_10Y").data() == "60.0"
    assert cell(model, "NTSX", "exposure", "GOLD").data() == ""  # zero is left blank
    assert cell(model, "RSSB", "notional").data() == "200%"
    assert cell(model, "SSO", "financing_spread").data() == f"{fmap['SSO'].financing_spread:.2f}%"
    right = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    assert cell(model, "NTSX", "exposure", "US_EQUITY").data(Qt.ItemDataRole.TextAlignmentRole) == (
        right
    )


# ------------------------------------------------------------------ edit and undo
def test_edit_exposure_through_model_then_undo_redo(qtbot, tab, session):
    model = tab.model
    index = cell(model, "NTSX", "exposure", "US_EQUITY")
    with qtbot.waitSignal(session.fund_map_changed):
        assert model.setData(index, "100", EDIT)
    ntsx = session.workspace.fund_map["NTSX"]
    assert ntsx.exposures["US_EQUITY"] == 100.0
    assert cell(model, "NTSX", "notional").data() == "160%"
    assert session.undo_stack.undoText() == "Edit NTSX US_EQUITY"
    session.undo_stack.undo()
    assert session.workspace.fund_map["NTSX"].exposures["US_EQUITY"] == 90.0
    assert cell(model, "NTSX", "notional").data() == "150%"
    session.undo_stack.redo()
    assert session.workspace.fund_map["NTSX"].exposures["US_EQUITY"] == 100.0


def test_clearing_a_cell_removes_the_exposure(tab, session):
    assert tab.model.setData(cell(tab.model, "NTSX", "exposure", "UST_10Y"), "", EDIT)
    assert "UST_10Y" not in session.workspace.fund_map["NTSX"].exposures
    assert session.workspace.fund_map["NTSX"].notional_pct == 90.0


def test_expense_ratio_and_name_are_editable(tab, session):
    assert tab.model.setData(cell(tab.model, "NTSX", "expense_ratio"), "0.25", EDIT)
    assert session.workspace.fund_map["NTSX"].expense_ratio == 0.25
    assert tab.model.setData(cell(tab.model, "NTSX", "name"), "Core 90/60", EDIT)
    assert session.workspace.fund_map["NTSX"].name == "Core 90/60"
    assert session.undo_stack.count() == 2


def test_unchanged_value_pushes_no_command(tab, session):
    assert tab.model.setData(cell(tab.model, "NTSX", "exposure", "US_EQUITY"), "90", EDIT)
    assert session.undo_stack.count() == 0


@pytest.mark.parametrize(
    ("key", "code", "text", "reason"),
    [
        ("exposure", "US_EQUITY", "abc", "must be a number"),
        ("exposure", "US_EQUITY", "1500", "absurd"),
        ("expense_ratio", "", "-1", "outside 0-10%"),
        ("financing_spread", "", "lots", "must be a number"),
    ],
)
def test_invalid_cell_is_highlighted_with_core_reason(tab, session, key, code, text, reason):
    model = tab.model
    before = session.workspace.fund_map["NTSX"].to_dict()
    index = cell(model, "NTSX", key, code)
    assert not model.setData(index, text, EDIT)
    assert index.data(BG) == INVALID_BRUSH
    assert reason in index.data(TIP)
    assert index.data() == text  # what the user typed is kept in the cell
    assert session.workspace.fund_map["NTSX"].to_dict() == before
    assert session.undo_stack.count() == 0
    # Fixing it applies the value and clears the highlight.
    assert model.setData(index, "0.5" if key != "exposure" else "95", EDIT)
    assert index.data(BG) != INVALID_BRUSH
    assert model.invalid_reason(index.row(), index.column()) is None


def test_absurd_notional_names_the_fund_and_the_limit(tab):
    index = cell(tab.model, "RSSB", "exposure", "UST_10Y")
    assert not tab.model.setData(index, "950", EDIT)  # 60+30+10+950 = 1050% of NAV
    assert "RSSB: notional 1050% of NAV is absurd (over 1000%)" in index.data(TIP)


# ---------------------------------------------------------- add, duplicate, delete
def test_add_fund_via_dialog_then_undo(tab, session, monkeypatch):
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("zzz", True))
    tab._on_add()
    assert "ZZZ" in session.workspace.fund_map
    assert tab.selected_symbol() == "ZZZ"
    assert tab.model.row_of("ZZZ") == tab.model.rowCount() - 1
    session.undo_stack.undo()
    assert "ZZZ" not in session.workspace.fund_map
    assert tab.model.row_of("ZZZ") == -1


def test_add_fund_refuses_bad_and_duplicate_tickers(tab, session):
    assert not tab.add_fund("NTSX")
    assert "Duplicate symbol NTSX" in tab.message.text()
    assert not tab.add_fund("no way!")
    assert "not a ticker" in tab.message.text()
    assert session.undo_stack.count() == 0


def test_duplicate_copies_exposures_and_costs(tab, session, monkeypatch):
    tab.select_symbol("NTSX")
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("NTSX2", True))
    tab._on_duplicate()
    fmap = session.workspace.fund_map
    assert fmap["NTSX2"].exposures == fmap["NTSX"].exposures
    assert fmap["NTSX2"].expense_ratio == fmap["NTSX"].expense_ratio
    assert tab.selected_symbol() == "NTSX2"


def test_delete_refuses_a_held_fund_and_deletes_an_unused_one(tab, session):
    assert not tab.delete_fund("RSSB")  # held in the sample portfolio
    assert "the holdings" in tab.message.text()
    assert "RSSB" in session.workspace.fund_map
    assert "UPAR" not in session.workspace.portfolio.symbols
    assert tab.delete_fund("UPAR")
    assert "UPAR" not in session.workspace.fund_map
    session.undo_stack.undo()
    assert "UPAR" in session.workspace.fund_map
    # Undo puts it back where it was.
    assert list(session.workspace.fund_map.funds) == list(FundExposureMap.default().funds)


def test_search_filters_by_symbol_or_name(tab, session):
    tab.search.setText("wisdomtree")
    shown = {tab.proxy.index(r, 0).data() for r in range(tab.proxy.rowCount())}
    expected = {f.symbol for f in session.workspace.fund_map if "wisdomtree" in f.name.lower()}
    assert shown == expected and {"NTSX", "GDE"} <= shown
    tab.search.setText("sso")
    assert [tab.proxy.index(r, 0).data() for r in range(tab.proxy.rowCount())] == ["SSO"]
    tab.search.clear()
    assert tab.proxy.rowCount() == len(session.workspace.fund_map)


# ------------------------------------------------------------------ exposure types
def test_add_custom_exposure_type_adds_a_column(tab, session):
    tips = ExposureType.from_dict(
        {"code": "TIPS", "name": "Inflation-linked Treasuries", "group": "fixed_income"}
    )
    columns = tab.model.columnCount()
    assert tab.add_exposure_type(tips)
    assert tab.model.columnCount() == columns + 1
    col = tab.model.column_of("exposure", "TIPS")
    assert "Inflation-linked Treasuries" in tab.model.headerData(
        col, Qt.Orientation.Horizontal, TIP
    )
    assert tab.model.setData(cell(tab.model, "IEF", "exposure", "TIPS"), "10", EDIT)
    assert session.workspace.fund_map["IEF"].exposures["TIPS"] == 10.0
    session.undo_stack.undo()
    session.undo_stack.undo()
    assert "TIPS" not in session.workspace.fund_map.exposure_types
    assert tab.model.columnCount() == columns
    assert not tab.add_exposure_type(ExposureType.from_dict({"code": "GOLD", "group": "cash"}))
    assert "already exists" in tab.message.text()


def test_exposure_type_dialog_validates_and_returns_the_type(tab, session, monkeypatch):
    def fake_exec(dialog):
        dialog.code.setText("ntsx")
        assert not dialog.buttons.button(dialog.buttons.StandardButton.Ok).isEnabled()
        assert "fund symbol" in dialog.error.text()
        dialog.code.setText("infl_swaps")
        dialog.name.setText("Inflation swaps")
        dialog.group.setCurrentIndex(dialog.group.findData("fixed_income"))
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ExposureTypeDialog, "exec", fake_exec)
    tab._on_add_type()
    etype = session.workspace.fund_map.exposure_types["INFL_SWAPS"]
    assert etype.name == "Inflation swaps" and etype.group.value == "fixed_income"


# ------------------------------------------------------------------ files
@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_export_then_import_round_trip_with_mocked_dialogs(
    tab, session, tmp_path, suffix, monkeypatch
):
    path = tmp_path / f"map{suffix}"
    tab.add_exposure_type(ExposureType.from_dict({"code": "TIPS", "group": "fixed_income"}))
    tab.model.setData(cell(tab.model, "IEF", "exposure", "TIPS"), "5", EDIT)
    saved = session.workspace.fund_map.copy()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))
    tab._on_export()
    assert path.exists()
    # Change the map, then import the file back: every fund is as exported.
    tab.model.setData(cell(tab.model, "NTSX", "exposure", "US_EQUITY"), "100", EDIT)
    tab.delete_fund("UPAR")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    depth = session.undo_stack.count()
    tab._on_import()
    assert session.undo_stack.count() == depth + 1
    fmap = session.workspace.fund_map

    def content(m: FundExposureMap) -> dict:
        # A CSV has no notes or inception column: a fund deleted before the import
        # comes back without them.
        skip = ("notes", "inception") if suffix == ".csv" else ()
        return {
            s: {k: v for k, v in f.to_dict().items() if k not in skip} for s, f in m.funds.items()
        }

    assert content(fmap) == content(saved)
    assert fmap["NTSX"].notes == saved["NTSX"].notes  # kept for funds already in the map
    assert "replaced" in tab.message.text()
    session.undo_stack.undo()  # one step undoes the whole import
    assert session.workspace.fund_map["NTSX"].exposures["US_EQUITY"] == 100.0


def test_import_of_a_bad_file_warns_and_leaves_the_map(tab, session, tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"funds": [{"symbol": "X", "exposures": {"NOPE": 50}}]}))
    warnings = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warnings.append(a[2]))
    before = session.workspace.fund_map.to_dict()
    tab._on_import()
    assert len(warnings) == 1 and "unknown exposure type 'NOPE'" in warnings[0]
    assert session.workspace.fund_map.to_dict() == before
    assert session.undo_stack.count() == 0


def test_reset_to_builtin_restores_the_default_definition(tab, session):
    tab.model.setData(cell(tab.model, "NTSX", "exposure", "US_EQUITY"), "100", EDIT)
    tab.model.setData(cell(tab.model, "NTSX", "exposure", "UST_10Y"), "", EDIT)
    tab.select_symbol("NTSX")
    tab._on_reset()
    builtin = FundExposureMap.default()["NTSX"]
    assert session.workspace.fund_map["NTSX"].to_dict() == builtin.to_dict()
    assert session.undo_stack.undoText() == "Reset NTSX to built-in"
    session.undo_stack.undo()
    assert session.workspace.fund_map["NTSX"].exposures == {"US_EQUITY": 100.0}
    tab.add_fund("MINE")
    assert not tab.reset_fund("MINE")
    assert "not a built-in fund" in tab.message.text()


# ------------------------------------------------------------------ fits
def test_builtin_fit_columns_and_badges(tab):
    summary = json.loads(resource_text("fund_map_fit.json"))["funds"]
    model = tab.model
    rssb = summary["RSSB"]
    assert cell(model, "RSSB", "r2").data() == f"{rssb['r_squared']:.3f}"
    assert cell(model, "RSSB", "te").data() == f"{rssb['tracking_error_annual']:.1%}"
    assert model.fit("RSSB").status == "agrees"
    assert model.fit("RSSX").status == "disagrees"  # its published map fails its history
    assert "DISAGREES" in cell(model, "RSSX", "symbol").data(TIP)
    assert cell(model, "RSSX", "symbol").data(Qt.ItemDataRole.DecorationRole) is not None
    assert model.fit("RSSY") is None  # no prices: no fit, a blank badge and the reason
    assert "No fit: no prices" in cell(model, "RSSY", "symbol").data(TIP)


def test_editing_without_prices_rechecks_or_marks_the_builtin_fit_stale(tab):
    model = tab.model
    # Same exposure types: the measured betas still apply, the verdict is redone at once.
    model.setData(cell(model, "NTSX", "exposure", "US_EQUITY"), "150", EDIT)
    fit = model.fit("NTSX")
    assert fit.edited and fit.status == "disagrees"
    assert any(d.code == "US_EQUITY" for d in fit.check.disagreements)
    # Other exposure types than were measured: the built-in fit is stale.
    model.setData(cell(model, "NTSX", "exposure", "UST_10Y"), "", EDIT)
    assert model.fit("NTSX").stale
    assert cell(model, "NTSX", "r2").data() == "stale"
    assert "STALE" in cell(model, "NTSX", "r2").data(TIP)


def test_chart_asks_for_prices_when_none_are_loaded(tab):
    tab.select_symbol("NTSX")
    assert tab.growth_plot.message() == NO_PRICES_MESSAGE
    assert not tab.fit_from_history()
    assert "Load a price history first" in tab.message.text()


def test_prices_from_the_session_refit_and_flag_a_wrong_map(qtbot, tab, session):
    prices = synthetic_prices()
    with qtbot.waitSignal(tab.fit_finished, timeout=60_000):
        session.set_market_data(MarketData(prices=prices, sources=["synthetic.csv"]))
    model = tab.model
    fit = model.fit("NTSX")
    assert fit.origin == "prices" and fit.status == "agrees"
    assert fit.betas["US_EQUITY"] == pytest.approx(0.9, abs=0.03)
    assert fit.betas["UST_10Y"] == pytest.approx(0.6, abs=0.06)
    right_r2 = fit.r_squared
    assert model.fit("RSSB") is None  # not in these prices
    tab.select_symbol("NTSX")
    assert tab.growth_plot.message() == ""
    # The wrong map: 100% US equity. Refitted at once; the missing Treasuries are found.
    model.setData(cell(model, "NTSX", "exposure", "UST_10Y"), "", EDIT)
    model.setData(cell(model, "NTSX", "exposure", "US_EQUITY"), "100", EDIT)
    fit = model.fit("NTSX")
    assert fit.origin == "prices" and fit.status == "disagrees"
    assert [d.code for d in fit.check.disagreements] == ["UST_10Y"]
    assert fit.r_squared < right_r2 - 0.02  # VTI alone explains less
    codes = [
        tab.detail_model.index(r, 0).data(Qt.ItemDataRole.UserRole)
        for r in range(tab.detail_model.rowCount())
    ]
    assert "UST_10Y" in codes
    # Forgetting the prices returns to the built-in summary.
    session.set_market_data(None)
    assert tab.model.fit("NTSX").origin == "built-in"
    assert tab.growth_plot.message() == NO_PRICES_MESSAGE


@pytest.mark.qt_log_ignore("propagateSizeHints")  # the offscreen platform says so on show()
def test_screenshot_at_1280x800(qtbot, tab, tmp_path):
    tab.resize(1280, 800)
    tab.show()
    qtbot.waitExposed(tab)
    image = tab.grab()
    assert not image.isNull() and image.width() == 1280
    assert image.save(str(tmp_path / "fund_exposures.png"))


# ------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def real_prices(shared_data):
    return shared_data / "etf_daily_adjclose.csv.gz"


def test_real_prices_fit_chart_and_the_wrong_ntsx_map(
    qtbot, tab, session, real_prices, monkeypatch
):
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(real_prices), ""))
    with qtbot.waitSignal(tab.fit_finished, timeout=120_000):
        tab._on_load_prices()
    assert session.market_data is not None  # shared with the rest of the app
    model = tab.model
    ntsx = model.fit("NTSX")
    assert ntsx.origin == "prices" and ntsx.status == "agrees"
    assert ntsx.r_squared == pytest.approx(0.968, abs=0.01)

    # Independent check of the regression: sklearn on the same weekly excess returns.
    from sklearn.linear_model import LinearRegression

    cleaned, _ = clean_prices(read_prices(real_prices))
    weekly = to_returns(cleaned[["NTSX", "VTI", "IEF", "BIL"]], "weekly").dropna()
    x = weekly[["VTI", "IEF"]].sub(weekly["BIL"], axis=0)
    y = weekly["NTSX"] - weekly["BIL"]
    reg = LinearRegression().fit(x, y)
    assert ntsx.betas["US_EQUITY"] == pytest.approx(reg.coef_[0], abs=1e-9)
    assert ntsx.betas["UST_10Y"] == pytest.approx(reg.coef_[1], abs=1e-9)
    assert ntsx.r_squared == pytest.approx(reg.score(x, y), abs=1e-9)

    # The chart: real growth of $1 is the price ratio; the synthetic part before the
    # fund's inception is drawn dashed.
    tab.select_symbol("NTSX")
    plot = tab.growth_plot
    assert plot.message() == ""
    real_x, real_y = plot.real_curve.xData, plot.real_curve.yData  # as given, not log10
    assert real_y[0] == pytest.approx(1.0)
    start = pd.Timestamp(real_x[0], unit="s")
    end = pd.Timestamp(real_x[-1], unit="s")
    ratio = cleaned["NTSX"].asof(end) / cleaned["NTSX"].asof(start)
    assert real_y[-1] == pytest.approx(ratio, rel=1e-6)
    pre_x = plot.pre_curve.xData
    assert len(pre_x) > 100 and pre_x[-1] <= real_x[0] + 1
    assert plot.pre_curve.opts["pen"].style() == Qt.PenStyle.DashLine
    assert plot.plot_widget.getPlotItem().ctrl.logYCheck.isChecked()
    synth_before = plot.synth_curve.yData.copy()
    assert plot.series.tracking_error < 0.06

    # The deliberately wrong map (100% US equity) is flagged after the refit on real prices.
    model.setData(cell(model, "NTSX", "exposure", "UST_10Y"), "", EDIT)
    model.setData(cell(model, "NTSX", "exposure", "US_EQUITY"), "100", EDIT)
    wrong = model.fit("NTSX")
    assert wrong.status == "disagrees"
    assert any(d.code == "UST_10Y" and d.probe for d in wrong.check.disagreements)
    assert "DISAGREES" in cell(model, "NTSX", "symbol").data(TIP)
    assert not np.allclose(plot.synth_curve.yData, synth_before)
    assert plot.series.tracking_error > 0.04
