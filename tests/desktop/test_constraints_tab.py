"""Constraints tab: the form and tables edit the workspace, contradictions show as you type."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog
from scipy.optimize import linprog

from core.exposures import ExposureCalculator
from desktop.models.constraints_model import FLAG_BRUSH, parse_percent
from desktop.session import Session
from desktop.tabs.constraints_tab import CHECK_DELAY_MS, ConstraintsTab

EDIT = Qt.ItemDataRole.EditRole
BG = Qt.ItemDataRole.BackgroundRole
TIP = Qt.ItemDataRole.ToolTipRole


@pytest.fixture
def session() -> Session:
    return Session()


@pytest.fixture
def tab(qtbot, session) -> ConstraintsTab:
    widget = ConstraintsTab(session)
    qtbot.addWidget(widget)
    return widget


def limit_cell(model, key: str, side: str):
    return model.index(model.row_of(key), model.min_column() + (0 if side == "min" else 1))


def wait_check(qtbot, tab: ConstraintsTab) -> list:
    with qtbot.waitSignal(tab.checked, timeout=5000) as blocker:
        pass
    return blocker.args[0]


# ------------------------------------------------------------------------ models
def test_every_model_passes_qtmodeltester(qtmodeltester, tab):
    tab.add_fund_bound("RSSB")
    tab.add_sector_limit("Stacked")
    tab.mapper_model.setData(tab.mapper_model.index(0, 2), "Stacked", EDIT)
    for model in (
        tab.exposure_model,
        tab.group_model,
        tab.fund_bounds_model,
        tab.sector_model,
        tab.mapper_model,
    ):
        assert model.rowCount() > 0
        qtmodeltester.check(model)


def test_form_shows_the_sample_constraints_in_percent(tab, session):
    c = session.workspace.constraints
    assert tab.spins["max_weight"].value() == pytest.approx(c.max_weight * 100)
    assert tab.spins["max_weight"].suffix() == " %"
    assert tab.spins["max_cash"].value() == pytest.approx(c.max_cash * 100)
    assert tab.enablers["max_total_notional"].isChecked()
    assert tab.spins["max_total_notional"].value() == pytest.approx(150)
    assert not tab.enablers["target_volatility"].isChecked()
    assert not tab.spins["target_volatility"].isEnabled()
    assert tab.spins["transaction_cost_bps"].value() == pytest.approx(5.0)
    assert limit_cell(tab.exposure_model, "GOLD", "max").data() == "25.0%"
    assert limit_cell(tab.group_model, "equity", "max").data() == "100.0%"
    assert not tab.banner.isVisible() and tab.issues == []
    assert "No contradictions" in tab.status.text()


@pytest.mark.parametrize(
    ("text", "value"), [("25", 0.25), ("12.5%", 0.125), (" 1,000 ", 10.0), ("", None)]
)
def test_parse_percent(text, value):
    result = parse_percent(text)
    assert result is None if value is None else result == pytest.approx(value)


# ------------------------------------------------------------------ edit and undo
def test_form_edit_then_undo_redo(tab, session):
    tab.set_field("max_weight", 30)
    assert session.workspace.constraints.max_weight == pytest.approx(0.30)
    session.undo_stack.undo()
    assert session.workspace.constraints.max_weight == pytest.approx(0.40)
    assert tab.spins["max_weight"].value() == pytest.approx(40)
    session.undo_stack.redo()
    assert tab.spins["max_weight"].value() == pytest.approx(30)


def test_typing_in_a_field_is_one_undo_step(qtbot, tab, session):
    spin = tab.spins["max_weight"]
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "35")
    assert session.workspace.constraints.max_weight == pytest.approx(0.35)
    assert session.undo_stack.count() == 1
    session.undo_stack.undo()
    assert session.workspace.constraints.max_weight == pytest.approx(0.40)


def test_optional_field_tick_and_untick(tab, session):
    tab.set_field("target_volatility", 12)
    assert session.workspace.constraints.target_volatility == pytest.approx(0.12)
    tab.set_field("target_volatility", None)
    assert session.workspace.constraints.target_volatility is None
    session.undo_stack.undo()
    assert session.workspace.constraints.target_volatility == pytest.approx(0.12)
    assert tab.enablers["target_volatility"].isChecked()


def test_long_only_and_transaction_costs(tab, session):
    tab.long_only.setChecked(False)
    assert session.workspace.constraints.long_only is False
    tab.set_field("transaction_cost_bps", 12.5)
    assert session.workspace.constraints.transaction_cost_bps == pytest.approx(12.5)
    session.undo_stack.undo()
    session.undo_stack.undo()
    assert session.workspace.constraints.long_only is True


def test_exposure_and_group_limits_through_the_models(tab, session):
    model = tab.exposure_model
    assert model.setData(limit_cell(model, "UST_10Y", "min"), "20", EDIT)
    assert session.workspace.constraints.min_exposure_per_type["UST_10Y"] == pytest.approx(0.2)
    assert model.setData(limit_cell(model, "GOLD", "max"), "", EDIT)  # empty = no limit
    assert "GOLD" not in session.workspace.constraints.max_exposure_per_type
    assert tab.group_model.setData(limit_cell(tab.group_model, "fixed_income", "max"), "80", EDIT)
    assert session.workspace.constraints.max_exposure_per_group["fixed_income"] == 0.8
    assert session.undo_stack.count() == 3
    for _ in range(3):
        session.undo_stack.undo()
    assert session.workspace.constraints.max_exposure_per_type == {"GOLD": 0.25}


def test_text_that_is_not_a_number_is_highlighted_and_not_applied(tab, session):
    index = limit_cell(tab.exposure_model, "GOLD", "min")
    assert not tab.exposure_model.setData(index, "lots", EDIT)
    assert index.data(BG) == FLAG_BRUSH
    assert "not a number" in index.data(TIP)
    assert index.data() == "lots"
    assert session.undo_stack.count() == 0


# ---------------------------------------------------------- contradictions
def test_min_above_max_banner_appears_as_you_type_and_goes_when_fixed(qtbot, tab, session):
    tab.set_field("min_weight", 50)
    assert tab._timer.isActive()  # debounced: the check runs after a short pause
    assert tab._timer.interval() == CHECK_DELAY_MS
    issues = wait_check(qtbot, tab)
    assert not tab.banner.isHidden()
    assert "min_weight 50.00% > max_weight 40.00%" in "\n".join(tab.messages())
    # Said once, not once per fund.
    assert sum("50.00%" in i.message for i in issues) == 1
    assert tab.is_flagged("min_weight") and tab.is_flagged("max_weight")
    assert "ffcdcd" in tab.spins["min_weight"].styleSheet()
    tab.set_field("min_weight", 0)
    wait_check(qtbot, tab)
    assert tab.banner.isHidden()
    assert not tab.is_flagged("min_weight")
    assert tab.spins["min_weight"].styleSheet() == ""


def test_floor_above_cap_flags_both_cells(qtbot, tab):
    model = tab.exposure_model
    model.setData(limit_cell(model, "GOLD", "min"), "60", EDIT)
    wait_check(qtbot, tab)
    assert "exposure GOLD: floor 60.00% > cap 25.00%" in "\n".join(tab.messages())
    assert limit_cell(model, "GOLD", "min").data(BG) == FLAG_BRUSH
    assert limit_cell(model, "GOLD", "max").data(BG) == FLAG_BRUSH
    assert "floor 60.00% > cap 25.00%" in limit_cell(model, "GOLD", "max").data(TIP)


def _best_reachable(session, code: str) -> float:
    """Largest exposure to ``code`` any allowed portfolio reaches (scipy linprog)."""
    ws = session.workspace
    c = ws.constraints
    symbols = ws.portfolio.symbols
    row = ExposureCalculator(ws.fund_map, symbols, [code]).matrix[0]
    n = len(symbols)
    res = linprog(
        -np.append(row, 0.0),
        A_eq=np.ones((1, n + 1)),
        b_eq=[1.0],
        bounds=[c.bounds_for(s) for s in symbols] + [(c.min_cash, c.max_cash)],
        method="highs",
    )
    assert res.status == 0
    return -res.fun


def test_unreachable_exposure_floor_is_flagged_then_fixed(qtbot, tab, session):
    best = _best_reachable(session, "MANAGED_FUT")  # DBMF and RSST, each capped at 40%
    assert best == pytest.approx(0.80)
    model = tab.exposure_model
    model.setData(limit_cell(model, "MANAGED_FUT", "min"), "90", EDIT)
    wait_check(qtbot, tab)
    text = "\n".join(tab.messages())
    assert "min_exposure[MANAGED_FUT] >= 90.00% cannot be met" in text
    assert f"best reachable {best:.2%}" in text
    assert limit_cell(model, "MANAGED_FUT", "min").data(BG) == FLAG_BRUSH
    model.setData(limit_cell(model, "MANAGED_FUT", "min"), "70", EDIT)
    wait_check(qtbot, tab)
    assert tab.banner.isHidden()
    assert limit_cell(model, "MANAGED_FUT", "min").data(BG) != FLAG_BRUSH


def test_notional_cap_below_what_the_funds_need_is_flagged(qtbot, tab):
    # With cash capped at 5%, the lowest notional portfolio still holds 95% in funds.
    tab.set_field("max_total_notional", 50)
    wait_check(qtbot, tab)
    assert "max_total_notional" in "\n".join(tab.messages())
    assert tab.is_flagged("max_total_notional")


def test_maximums_that_cannot_reach_100_percent(qtbot, tab):
    tab.set_field("max_weight", 5)
    wait_check(qtbot, tab)
    assert "sum to only" in "\n".join(tab.messages())
    assert tab.is_flagged("max_weight")


# ---------------------------------------------------------- fund bounds, sectors
def test_fund_bound_add_edit_contradiction_remove(qtbot, tab, session, monkeypatch):
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: ("RSSB", True))
    tab._on_add_bound()
    model = tab.fund_bounds_model
    assert model.keys == ["RSSB"]
    assert session.workspace.constraints.fund_bounds["RSSB"] == (0.0, 0.4)
    model.setData(limit_cell(model, "RSSB", "min"), "50", EDIT)
    model.setData(limit_cell(model, "RSSB", "max"), "30", EDIT)
    wait_check(qtbot, tab)
    assert "bounds of RSSB: minimum 50.00% > maximum 30.00%" in "\n".join(tab.messages())
    assert limit_cell(model, "RSSB", "min").data(BG) == FLAG_BRUSH
    tab.fund_bounds_view.setCurrentIndex(model.index(0, 0))
    tab._on_remove_bound()
    assert session.workspace.constraints.fund_bounds == {}
    wait_check(qtbot, tab)
    assert tab.banner.isHidden()
    session.undo_stack.undo()
    assert session.workspace.constraints.fund_bounds["RSSB"] == (0.5, 0.3)


def test_a_bound_on_a_fund_not_held_joins_the_check(qtbot, tab):
    assert tab.add_fund_bound("UPAR")  # not held; UPAR carries 49% UST_10Y
    model = tab.fund_bounds_model
    model.setData(limit_cell(model, "UPAR", "max"), "100", EDIT)
    model.setData(limit_cell(model, "UPAR", "min"), "70", EDIT)
    tab.exposure_model.setData(limit_cell(tab.exposure_model, "UST_10Y", "max"), "40", EDIT)
    wait_check(qtbot, tab)
    assert tab.banner.isHidden()
    # 70% of UPAR alone brings 34.3% of intermediate Treasuries: a 30% cap cannot hold.
    tab.exposure_model.setData(limit_cell(tab.exposure_model, "UST_10Y", "max"), "30", EDIT)
    wait_check(qtbot, tab)
    assert "max_exposure[UST_10Y] <= 30.00% cannot be met" in "\n".join(tab.messages())
    assert "best reachable 34.30%" in "\n".join(tab.messages())


def test_sector_limits_need_members_and_flag_min_above_max(qtbot, tab, session, monkeypatch):
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Stacked", True))
    tab._on_add_sector()
    wait_check(qtbot, tab)
    assert "has no member" in "\n".join(tab.messages())
    assert limit_cell(tab.sector_model, "Stacked", "min").data(BG) == FLAG_BRUSH
    mapper = tab.mapper_model
    for symbol in ("RSSB", "RSST"):
        assert mapper.setData(mapper.index(mapper.row_of(symbol), 2), "Stacked", EDIT)
    assert session.workspace.constraints.sector_mapper == {"RSSB": "Stacked", "RSST": "Stacked"}
    assert tab.sector_model.index(0, 1).data() == "RSSB, RSST"
    wait_check(qtbot, tab)
    assert tab.banner.isHidden()
    sector = tab.sector_model
    sector.setData(limit_cell(sector, "Stacked", "min"), "30", EDIT)
    sector.setData(limit_cell(sector, "Stacked", "max"), "20", EDIT)
    wait_check(qtbot, tab)
    assert "sector Stacked: minimum 30.00% > maximum 20.00%" in "\n".join(tab.messages())
    sector.setData(limit_cell(sector, "Stacked", "max"), "50", EDIT)
    wait_check(qtbot, tab)
    assert tab.banner.isHidden()
    # Sector floor above what its members can hold (2 funds x 40%).
    sector.setData(limit_cell(sector, "Stacked", "min"), "85", EDIT)
    sector.setData(limit_cell(sector, "Stacked", "max"), "", EDIT)
    wait_check(qtbot, tab)
    assert "sector[Stacked] >= 85.00% cannot be met" in "\n".join(tab.messages())
    tab.sector_view.setCurrentIndex(sector.index(0, 0))
    tab._on_remove_sector()
    assert "Stacked" not in session.workspace.constraints.sector_limits


def test_workspace_replaced_reloads_the_form(qtbot, tab, session):
    from core.workspace import Workspace

    ws = Workspace.sample()
    ws.constraints.max_weight = 0.25
    session.replace(ws, None)
    assert tab.spins["max_weight"].value() == pytest.approx(25)
    wait_check(qtbot, tab)


@pytest.mark.qt_log_ignore("propagateSizeHints")  # the offscreen platform says so on show()
def test_screenshot_at_1280x800(qtbot, tab, tmp_path):
    tab.set_field("min_weight", 50)
    tab.check_now()
    tab.resize(1280, 800)
    tab.show()
    qtbot.waitExposed(tab)
    assert tab.banner.isVisible()
    image = tab.grab()
    assert not image.isNull() and image.width() == 1280
    assert image.save(str(tmp_path / "constraints.png"))
