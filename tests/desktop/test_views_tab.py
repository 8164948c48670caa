"""Views tab: Black-Litterman views edited through the model move the posterior chart."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStyleOptionViewItem

from core.assumptions import MarketAssumptions
from core.exposures import ExposureCalculator, ExposureType
from core.optimization.constraints import MarketView
from desktop.models.views_model import (
    INVALID_BRUSH,
    MARKET_WEIGHTS_KEY,
    RISK_AVERSION_KEY,
    PosteriorModel,
)
from desktop.session import Session
from desktop.tabs._commands import FundMapCommand
from desktop.tabs.views_tab import ViewsTab

EDIT = Qt.ItemDataRole.EditRole


@pytest.fixture
def session() -> Session:
    return Session()


@pytest.fixture
def tab(qtbot, session) -> ViewsTab:
    widget = ViewsTab(session)
    qtbot.addWidget(widget)
    return widget


def test_models_pass_qtmodeltester(qtmodeltester, tab):
    assert tab.model.rowCount() == 2
    qtmodeltester.check(tab.model)
    assert tab.posterior_model.rowCount() == len(tab.summary.symbols)
    qtmodeltester.check(tab.posterior_model)
    qtmodeltester.check(PosteriorModel())


def test_table_shows_the_sample_views_in_percent(tab):
    m = tab.model
    assert [m.index(0, c).data() for c in range(5)] == [
        "Absolute",
        "MANAGED_FUT",
        "",
        "+3.0%",
        "40%",
    ]
    assert [m.index(1, c).data() for c in range(5)] == [
        "Relative",
        "INTL_DEV",
        "US_EQUITY",
        "+1.0%",
        "25%",
    ]
    assert not m.flags(m.index(0, 2)) & Qt.ItemFlag.ItemIsEditable  # no "versus" if absolute
    assert "Managed futures" in m.index(0, 1).data(Qt.ItemDataRole.ToolTipRole)


def _reference(session: Session):
    """Exposure-level Black-Litterman with PyPortfolioOpt (reference only in tests)."""
    from pypfopt.black_litterman import BlackLittermanModel

    ws = session.workspace
    symbols = ws.portfolio.symbols
    calc = ExposureCalculator(ws.fund_map, symbols)
    codes = calc.exposure_types
    cov = MarketAssumptions.default().covariance(codes)
    w = ws.priced_portfolio().weights().reindex(symbols).to_numpy()
    w = w / w.sum()
    pi = 2.5 * cov.to_numpy() @ (calc.matrix @ w)
    k = {c: i for i, c in enumerate(codes)}
    P = np.zeros((2, len(codes)))
    P[0, k["MANAGED_FUT"]] = 1.0
    P[1, k["INTL_DEV"]], P[1, k["US_EQUITY"]] = 1.0, -1.0
    Q = np.array([0.03, 0.01])
    bl = BlackLittermanModel(
        cov, pi=pi, P=P, Q=Q, omega="idzorek", view_confidences=[0.4, 0.25], tau=0.05
    )
    post_x = np.asarray(bl.bl_returns(), dtype=float)
    return codes, pi, post_x, calc


def test_posterior_matches_pypfopt_and_is_drawn_in_percent(tab, session):
    codes, pi, post_x, calc = _reference(session)
    s = tab.summary
    assert s.codes == codes
    np.testing.assert_allclose(s.prior_x, pi, atol=1e-12)
    np.testing.assert_allclose(s.posterior_x, post_x, atol=1e-10)
    fund_post = calc.matrix.T @ post_x - calc.annual_costs
    np.testing.assert_allclose(s.posterior, fund_post, atol=1e-10)
    prior_h, post_h = tab.plot.heights()
    np.testing.assert_allclose(post_h, fund_post * 100, atol=1e-8)
    np.testing.assert_allclose(prior_h, s.prior * 100, atol=1e-8)
    assert tab.plot.labels == session.workspace.portfolio.symbols
    row = s.symbols.index("DBMF")
    assert tab.posterior_model.index(row, 3).data() == f"{fund_post[row] * 100:.2f}%"


def test_prior_is_reverse_optimised_from_the_exposure_model_covariance(tab, session):
    ws = session.workspace
    s = tab.summary
    # Without idiosyncratic variance, Sigma_f = E' Sigma_x E: the fund prior is
    # delta Sigma_f w_mkt - costs.
    cov_f = MarketAssumptions.default().fund_covariance(ws.fund_map, s.symbols, 0.0)
    costs = np.array([ws.fund_map[x].annual_cost for x in s.symbols])
    np.testing.assert_allclose(s.prior, 2.5 * cov_f.to_numpy() @ s.market_weights - costs)


def test_editing_a_view_moves_the_posterior_bars_and_undo_restores_them(qtbot, tab, session):
    prior = tab.plot.heights()[0].copy()
    before = tab.plot.heights()[1].copy()
    with qtbot.waitSignal(tab.posterior_updated):
        assert tab.model.setData(tab.model.index(0, 3), "10", EDIT)
    assert session.workspace.views[0].expected_return == pytest.approx(0.10)
    after = tab.plot.heights()[1]
    i = tab.summary.symbols.index("DBMF")
    assert after[i] > before[i] + 1.0  # a more bullish trend view lifts DBMF
    np.testing.assert_allclose(tab.plot.heights()[0], prior)  # views do not move the prior
    with qtbot.waitSignal(tab.posterior_updated):
        session.undo_stack.undo()
    np.testing.assert_allclose(tab.plot.heights()[1], before)
    session.undo_stack.redo()
    np.testing.assert_allclose(tab.plot.heights()[1], after)


def test_zero_confidence_leaves_the_prior(tab, session):
    tab.model.setData(tab.model.index(0, 4), "0", EDIT)
    tab.model.setData(tab.model.index(1, 4), "0%", EDIT)
    prior, post = tab.plot.heights()
    np.testing.assert_allclose(post, prior, atol=1e-12)


def test_full_confidence_forces_an_absolute_fund_view(tab, session):
    tab.add_view(MarketView(assets=["VTI"], expected_return=0.08, confidence=1.0))
    s = tab.summary
    assert s.posterior[s.symbols.index("VTI")] == pytest.approx(0.08, abs=1e-9)


def test_add_remove_and_retype_views(tab, session):
    tab.add_view()
    assert len(session.workspace.views) == 3
    view = session.workspace.views[2]
    assert view.view_type == "absolute" and view.assets == ["US_EQUITY"]
    assert tab.model.setData(tab.model.index(2, 0), "relative", EDIT)
    assert session.workspace.views[2].assets == ["US_EQUITY", "UST_10Y"]
    assert tab.model.setData(tab.model.index(2, 2), "gold", EDIT)
    assert session.workspace.views[2].assets == ["US_EQUITY", "GOLD"]
    assert tab.model.setData(tab.model.index(2, 0), "absolute", EDIT)
    assert session.workspace.views[2].assets == ["US_EQUITY"]
    tab.table.setCurrentIndex(tab.model.index(0, 0))
    tab._on_remove()
    assert [v.assets for v in session.workspace.views] == [
        ["INTL_DEV", "US_EQUITY"],
        ["US_EQUITY"],
    ]
    while session.undo_stack.canUndo():
        session.undo_stack.undo()
    assert len(session.workspace.views) == 2


@pytest.mark.parametrize(
    ("column", "text", "reason"),
    [
        (1, "NOPE", "neither a fund in the map nor an exposure type"),
        (3, "abc", "not a number"),
        (3, "250", "between -100% and +100%"),
        (4, "140", "between 0% and 100%"),
        (2, "INTL_DEV", "same asset twice"),
    ],
)
def test_invalid_entries_are_highlighted_and_not_applied(tab, session, column, text, reason):
    row = 1  # the relative view
    before = [v.to_dict() for v in session.workspace.views]
    index = tab.model.index(row, column)
    assert not tab.model.setData(index, text, EDIT)
    assert index.data(Qt.ItemDataRole.BackgroundRole) == INVALID_BRUSH
    assert reason in index.data(Qt.ItemDataRole.ToolTipRole)
    assert [v.to_dict() for v in session.workspace.views] == before
    assert session.undo_stack.count() == 0


def test_asset_editor_offers_types_and_funds(tab, session):
    delegate = tab.table.itemDelegate()
    index = tab.model.index(0, 1)
    editor = delegate.createEditor(tab.table.viewport(), QStyleOptionViewItem(), index)
    delegate.setEditorData(editor, index)
    assert editor.currentText().startswith("MANAGED_FUT")
    labels = [editor.itemText(i) for i in range(editor.count())]
    assert any(t.startswith("GOLD") for t in labels) and any(t.startswith("RSSB") for t in labels)
    editor.setCurrentIndex(next(i for i, t in enumerate(labels) if t.startswith("DBMF")))
    delegate.setModelData(editor, tab.model, index)
    assert session.workspace.views[0].assets == ["DBMF"]


def test_risk_aversion_and_market_weights_are_workspace_settings(tab, session):
    s1 = tab.summary
    costs = np.array([session.workspace.fund_map[x].annual_cost for x in s1.symbols])
    tab.risk_aversion.setValue(5.0)
    assert session.workspace.settings[RISK_AVERSION_KEY] == 5.0
    s2 = tab.summary
    np.testing.assert_allclose(s2.prior + costs, 2.0 * (s1.prior + costs), atol=1e-12)
    tab.market_weights.setCurrentIndex(tab.market_weights.findData("equal"))
    assert session.workspace.settings[MARKET_WEIGHTS_KEY] == "equal"
    n = len(tab.summary.symbols)
    np.testing.assert_allclose(tab.summary.market_weights, np.full(n, 1.0 / n))
    session.undo_stack.undo()
    session.undo_stack.undo()
    assert tab.risk_aversion.value() == pytest.approx(2.5)
    assert tab.market_weights.currentData() == "holdings"
    session.workspace.validate()  # the settings keys are storable in the workspace file


def test_a_view_on_a_type_without_assumptions_shows_why(tab, session):
    fmap = session.workspace.fund_map.copy()
    fmap.add_exposure_type(ExposureType.from_dict({"code": "TIPS", "group": "fixed_income"}))
    session.undo_stack.push(FundMapCommand(session, fmap, "add TIPS"))
    tab.add_view(MarketView(assets=["TIPS"], expected_return=0.02))
    assert tab.summary is None
    assert "no market assumptions for exposure type(s) TIPS" in tab.banner.text()
    assert not tab.banner.isHidden()
    assert tab.plot.heights()[1].size == 0
    session.undo_stack.undo()
    assert tab.summary is not None and tab.banner.isHidden()


@pytest.mark.qt_log_ignore("propagateSizeHints")  # the offscreen platform says so on show()
def test_screenshot_at_1280x800(qtbot, tab, tmp_path):
    tab.resize(1280, 800)
    tab.show()
    qtbot.waitExposed(tab)
    image = tab.grab()
    assert not image.isNull() and image.width() == 1280
    assert image.save(str(tmp_path / "views.png"))
