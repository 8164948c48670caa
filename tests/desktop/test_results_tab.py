"""Results tab: runs on the solver thread, live frontier, results, trades and tickets.

Numbers are checked against independent computations on the run's own inputs (numpy on
``mu`` and ``Sigma``), not against the code that displays them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog

import core.optimization.engine as engine_module
from core.errors import InfeasibleError, ValidationError
from core.exposures import ExposureCalculator
from core.optimization.results import FrontierPoint, OptimizationResult
from core.optimization.workflow import OBJECTIVE_CHOICES
from core.tickets import TicketFormat, read_ticket
from desktop.main_window import MainWindow
from desktop.models.results_model import TARGET_EXPOSURES_KEY, MetricsModel, WeightsModel
from desktop.plots.frontier_plot import WITH_LEVERAGE, WITHOUT_LEVERAGE, PlotPoint, describe
from desktop.session import MarketData, Session
from desktop.tabs.results_tab import ResultsTab, measure_portfolio, trade_settings
from desktop.ticket_export import FORMATS, TicketExportDialog, TicketOptions, export_ticket
from desktop.undo_commands import SetConstraintsCommand, SetSettingsCommand, SetSharesCommand
from desktop.workers import FunctionWorker, IterWorker, SolverThread

RUN_TIMEOUT = 120_000


@pytest.fixture
def session() -> Session:
    return Session()


@pytest.fixture
def tab(qtbot, session) -> ResultsTab:
    widget = ResultsTab(session)
    qtbot.addWidget(widget)
    yield widget
    widget.shutdown()


@pytest.fixture
def window(add_window) -> MainWindow:
    return add_window(MainWindow(offer_recovery=False))


def _run(qtbot, tab: ResultsTab, *, points: int = 0, choice: str = "max_sharpe") -> object:
    """Run and wait for the end; returns the signal that ended it."""
    tab.set_objective(choice)
    tab.frontier_check.setChecked(points > 0)
    if points:
        tab.points_spin.setValue(points)
    ended: list[str] = []
    tab.run_finished.connect(lambda _r: ended.append("finished"))
    tab.run_failed.connect(lambda _e: ended.append("failed"))
    tab.run_cancelled.connect(lambda: ended.append("cancelled"))
    assert tab.run() is not None
    qtbot.waitUntil(lambda: bool(ended), timeout=RUN_TIMEOUT)
    return ended[0]


def _check_constraints(result: OptimizationResult, ws) -> None:
    c = ws.constraints
    w = result.weights
    assert w.sum() + result.cash_weight == pytest.approx(1.0, abs=1e-6)
    assert (w >= c.min_weight - 1e-6).all()
    assert (w <= c.max_weight + 1e-6).all()
    calc = ExposureCalculator(ws.fund_map, list(w.index))
    assert calc.total_notional(w.to_numpy()) <= c.max_total_notional + 1e-6
    gold = calc.portfolio_exposures(w.to_numpy()).get("GOLD", 0.0)
    assert gold <= c.max_exposure_per_type["GOLD"] + 1e-6
    assert c.min_cash - 1e-6 <= result.cash_weight <= c.max_cash + 1e-6


def _independent_metrics(inputs, weights: pd.Series) -> tuple[float, float, float]:
    """Return, volatility and Sharpe of ``weights`` straight from mu and Sigma (numpy)."""
    w = weights.reindex(inputs.symbols).fillna(0.0).to_numpy()
    mu = inputs.expected_returns.to_numpy()
    sigma = inputs.covariance.to_numpy()
    rf = inputs.risk_free_rate
    ret = w @ mu + (1 - w.sum()) * rf
    vol = float(np.sqrt(w @ sigma @ w))
    return float(ret), vol, (ret - rf) / vol


def _make_trades(qtbot, tab: ResultsTab, click: bool = False):
    """Generate trades and wait for the plan (fails with the tab's message otherwise)."""
    ended: list[object] = []
    tab.trades_generated.connect(ended.append)
    tab.trades_failed.connect(ended.append)
    if click:
        qtbot.mouseClick(tab.trades_button, Qt.MouseButton.LeftButton)
    else:
        assert tab.generate_trades() is not None
    qtbot.waitUntil(lambda: bool(ended), timeout=RUN_TIMEOUT)
    assert tab.plan is not None and ended[0] is tab.plan, tab.trades_error.text()
    return tab.plan


def _click(qtbot, plot, point: PlotPoint) -> None:
    """A real left click on ``point`` in the frontier plot."""
    vb = plot.plot_widget.getPlotItem().getViewBox()
    scene = vb.mapViewToScene(QPointF(point.volatility * 100, point.expected_return * 100))
    pos = plot.plot_widget.mapFromScene(scene)
    qtbot.mouseClick(plot.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def _export(monkeypatch, tab: ResultsTab, fmt: TicketFormat, path: Path, **fields) -> list[Path]:
    """Export through the tab's dialog: the file dialog answers ``path`` and ``fmt``'s filter."""
    info = next(f for f in FORMATS if f.format is fmt)
    asked: list[str] = []

    def save_name(parent, caption, suggested, filters, selected):
        asked.append(filters)
        return str(path), info.filter

    def exec_(dialog: TicketExportDialog) -> int:
        for name, value in fields.items():
            getattr(dialog, name).setText(value)
        dialog.browse()  # the user picks the file and its type in the file dialog
        assert dialog.ticket_format is fmt
        ok = dialog.export()
        assert ok, dialog.error.text()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_name)
    monkeypatch.setattr(TicketExportDialog, "exec", exec_)
    written = tab.export_tickets()
    # The file dialog offers every ticket format of core.tickets.
    assert all(f.filter in asked[0] for f in FORMATS)
    return written


# ------------------------------------------------------------------ end to end
def test_full_run_end_to_end(qtbot, window, tmp_path, monkeypatch):
    """Load -> optimize -> frontier points by signal -> click -> trades -> ticket read back."""
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    window.tabs.setCurrentWidget(window.results_tab)
    tab = window.results_tab
    ws = window.session.workspace
    n = 8
    arrived: list[FrontierPoint] = []
    finished_at: list[int] = []
    tab.frontier_point_added.connect(arrived.append)
    tab.run_finished.connect(lambda _r: finished_at.append(len(arrived)))
    assert _run(qtbot, tab, points=n) == "finished"
    assert tab.worker is not None and tab.solver is window.solver_thread

    # Points came one by one, with and without leveraged funds, before "finished".
    assert finished_at == [2 * n]
    assert [p.label for p in arrived] == [WITH_LEVERAGE] * n + [WITHOUT_LEVERAGE] * n
    assert len(tab.frontier_plot.plot_points(WITH_LEVERAGE)) == n
    assert len(tab.frontier_plot.plot_points(WITHOUT_LEVERAGE)) == n
    assert not tab.error_banner.isVisible() and not tab.stale_banner.isVisible()

    # The optimum obeys the constraints and its figures agree with numpy on the inputs.
    r, inputs = tab.result, tab.inputs
    assert r is not None and r.success and inputs is not None
    _check_constraints(r, ws)
    ret, vol, sharpe = _independent_metrics(inputs, r.weights)
    assert r.expected_return == pytest.approx(ret, abs=1e-10)
    assert r.expected_volatility == pytest.approx(vol, rel=1e-9)
    m = tab.metrics_model
    assert m.index(0, 2).data() == f"{ret * 100:.2f}%"
    assert m.index(1, 2).data() == f"{vol * 100:.2f}%"
    assert m.index(2, 2).data() == f"{sharpe:.2f}"
    # Current column: the holdings, measured on the same inputs.
    cur_ret, cur_vol, _ = _independent_metrics(inputs, ws.priced_portfolio().weights())
    assert m.value("Expected return", "current") == pytest.approx(cur_ret, abs=1e-10)
    assert m.value("Volatility", "current") == pytest.approx(cur_vol, rel=1e-9)
    assert m.value("Solver") == r.solver and m.value("Status") == "optimal"
    # Max Sharpe is the tangency point: no frontier point beats its Sharpe ratio, and the
    # capital market line runs from the risk-free rate through it.
    for p in arrived:
        assert p.sharpe_ratio <= r.sharpe_ratio + 1e-6
    x, y = tab.frontier_plot.cml.getData()
    assert y[0] == pytest.approx(inputs.risk_free_rate * 100)
    assert (y[1] - y[0]) / (x[1] - x[0]) == pytest.approx(r.sharpe_ratio, rel=1e-9)
    # Weights table: target vs current and the change.
    wm = tab.weights_model
    for row in range(wm.rowCount() - 1):
        sym = wm.index(row, 0).data()
        target = wm.index(row, 3).data(Qt.ItemDataRole.EditRole)
        current = wm.index(row, 2).data(Qt.ItemDataRole.EditRole)
        assert target == pytest.approx(r.weights[sym])
        assert current == pytest.approx(ws.priced_portfolio().weights().get(sym, 0.0))
        assert wm.index(row, 4).data(Qt.ItemDataRole.EditRole) == pytest.approx(target - current)

    # Click a frontier point: it loads into the tables, measured on the same inputs.
    target_point = tab.frontier_plot.plot_points(WITH_LEVERAGE)[n - 2]
    with qtbot.waitSignal(tab.portfolio_loaded, timeout=5000) as loaded:
        _click(qtbot, tab.frontier_plot, target_point)
    chosen = loaded.args[0]
    fp: FrontierPoint = target_point.payload
    assert chosen is tab.chosen
    pd.testing.assert_series_equal(chosen.weights, fp.weights, check_names=False)
    assert chosen.expected_return == pytest.approx(fp.expected_return, abs=1e-10)
    assert chosen.expected_volatility == pytest.approx(fp.volatility, rel=1e-9)
    assert chosen.total_notional == pytest.approx(fp.total_notional, rel=1e-9)
    assert "Frontier point" in tab.metrics_model.headerData(2, Qt.Orientation.Horizontal)
    assert tab.frontier_plot.selected is not None
    assert tab.frontier_plot.selected.payload is fp

    # Trades from the loaded point.
    tab.pages.setCurrentWidget(tab.trades_page)
    plan = _make_trades(qtbot, tab, click=True)
    assert plan.n_trades > 0
    # Solver round-off (weights like -1e-11) is gone from the loaded point.
    assert (chosen.weights >= 0).all()
    assert tab.trades_model.rowCount() == plan.n_trades
    sides = [t.side for t in plan.trades]
    assert sides == sorted(sides, key=lambda s: s == "BUY")  # sells first
    # Applying the orders to the holdings gives the plan's portfolio, near the target.
    after = ws.priced_portfolio().weights()
    for t in plan.trades:
        assert t.weight_after == pytest.approx(plan.weights_after[t.symbol])
    assert plan.max_abs_drift < 0.02
    assert plan.settings.fractional is (not ws.setting("whole_shares"))
    assert set(after.index) <= set(plan.weights_before.index)

    # Export: the file core reads back holds the same orders.
    path = tmp_path / "ticket.csv"
    written = _export(monkeypatch, tab, TicketFormat.GENERIC_CSV, path, account="U123")
    assert written == [path]
    ticket = read_ticket(path)
    assert ticket.format is TicketFormat.GENERIC_CSV
    assert [(o.symbol, o.side, o.quantity, o.account) for o in ticket.orders] == [
        (t.symbol, t.side, t.quantity, "U123") for t in plan.trades
    ]

    # Copy to clipboard: tab-separated, one line per order.
    text = tab.copy_trades()
    assert QApplication.clipboard().text() == text
    lines = text.strip().split("\n")
    assert lines[0].split("\t")[:3] == ["Side", "Symbol", "Quantity"]
    assert [ln.split("\t")[1] for ln in lines[1:]] == [t.symbol for t in plan.trades]


@pytest.mark.parametrize(
    "fmt",
    [
        TicketFormat.IBKR_BASKET,
        TicketFormat.IBKR_REBALANCE,
        TicketFormat.TRADESTATION,
        TicketFormat.EXCEL,
    ],
)
def test_every_ticket_format_reads_back(qtbot, tab, tmp_path, monkeypatch, fmt):
    assert _run(qtbot, tab) == "finished"
    _make_trades(qtbot, tab)
    plan = tab.plan
    info = next(f for f in FORMATS if f.format is fmt)
    path = tmp_path / f"ticket{info.suffix}"
    fields = {"exchange_id": "25"} if fmt is TicketFormat.TRADESTATION else {}
    written = _export(monkeypatch, tab, fmt, path, **fields)
    expected = [(t.symbol, t.side, t.quantity) for t in plan.trades]
    if fmt is TicketFormat.IBKR_REBALANCE:
        targets = read_ticket(written[0]).targets
        want = plan.target_weights.round(6)
        pd.testing.assert_series_equal(
            targets.sort_index(), want.sort_index(), check_names=False, atol=1e-6
        )
        return
    if fmt is TicketFormat.TRADESTATION:
        accounts = list(dict.fromkeys(t.account for t in plan.trades))
        assert len(accounts) == 2  # the sample holds an IRA and a taxable account
        assert [p.name for p in written] == [
            f"ticket_{a}_{side}.txt"
            for a in accounts
            for side in ("SELL", "BUY")
            if any(t.account == a and t.side == side for t in plan.trades)
        ]
        got = [(o.symbol, o.side, o.quantity) for p in written for o in read_ticket(p).orders]
        got.sort(key=lambda order: order[1] == "BUY")
    else:
        ticket = read_ticket(written[0])
        assert ticket.format is fmt
        got = [(o.symbol, o.side, o.quantity) for o in ticket.orders]
    # Same orders; every format lists the sells first (blocks may regroup them).
    assert sorted(got) == sorted(expected)
    sides = [side for _s, side, _q in got]
    assert sides == sorted(sides, key=lambda side: side == "BUY")


def test_ticket_dialog_says_why_it_cannot_write(qtbot, tab, tmp_path):
    assert _run(qtbot, tab) == "finished"
    _make_trades(qtbot, tab)
    dialog = TicketExportDialog(tab.plan)
    qtbot.addWidget(dialog)
    assert {dialog.format_combo.itemData(i) for i in range(dialog.format_combo.count())} == {
        f.value for f in TicketFormat
    }
    dialog.set_format(TicketFormat.TRADESTATION)
    out = tmp_path / "out"
    out.mkdir()
    dialog.path.setText(str(out / "ts.txt"))
    assert not dialog.export()  # no exchange ID
    assert "exchange ID" in dialog.error.text() and dialog.error.isVisibleTo(dialog)
    assert list(out.iterdir()) == []
    with pytest.raises(ValidationError, match="exchange ID"):
        export_ticket(tab.plan, TicketFormat.TRADESTATION, tmp_path / "x.txt", TicketOptions())
    # Limit orders use the plan's estimated prices.
    out = export_ticket(
        tab.plan, "generic_csv", tmp_path / "lmt.csv", TicketOptions(order_type="LMT")
    )
    orders = read_ticket(out[0]).orders
    prices = {t.symbol: round(t.estimated_price, 2) for t in tab.plan.trades}
    assert all(o.order_type == "LMT" and o.limit_price == prices[o.symbol] for o in orders)


def test_market_data_button_opens_the_estimator_settings(qtbot, window):
    tab = window.results_tab
    assert "Exposure model" in tab.estimators_label.text()
    assert "no price history loaded" in tab.estimators_label.text()
    qtbot.mouseClick(tab.market_data_button, Qt.MouseButton.LeftButton)
    dialog = window.market_data_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.close()
    # Estimator settings changed elsewhere show up here at once.
    session = window.session
    session.undo_stack.push(SetSettingsCommand(session, {"covariance_method": "ledoit_wolf"}))
    qtbot.waitUntil(lambda: "Ledoit-Wolf" in tab.estimators_label.text(), timeout=5000)
    assert "exposure model is used instead" in tab.estimators_label.text()


def test_closing_the_window_mid_run_cancels_and_waits(qtbot, window, monkeypatch):
    original = engine_module.OptimizationEngine.efficient_frontier

    def slow(self, *args, **kwargs):
        for point in original(self, *args, **kwargs):
            time.sleep(0.05)
            yield point

    monkeypatch.setattr(engine_module.OptimizationEngine, "efficient_frontier", slow)
    tab = window.results_tab
    tab.points_spin.setValue(50)
    worker = tab.run()
    qtbot.waitUntil(lambda: len(tab.frontier) >= 2, timeout=RUN_TIMEOUT)
    window.session.undo_stack.setClean()
    assert window.close()
    assert worker.done.is_set() and worker.cancel_requested
    assert window.solver_thread.pool.activeThreadCount() == 0


# ------------------------------------------------------------------ cancel
def test_cancel_mid_frontier_stops_within_one_solve(qtbot, tab, monkeypatch):
    produced: list[float] = []  # when each frontier point was solved (worker thread)
    original = engine_module.OptimizationEngine.efficient_frontier

    def slow(self, *args, **kwargs):
        for point in original(self, *args, **kwargs):
            time.sleep(0.05)  # a slow solve, so that Cancel lands mid-frontier
            produced.append(time.perf_counter())
            yield point

    monkeypatch.setattr(engine_module.OptimizationEngine, "efficient_frontier", slow)
    tab.frontier_check.setChecked(True)
    tab.points_spin.setValue(30)
    cancelled: list[bool] = []
    tab.run_cancelled.connect(lambda: cancelled.append(True))
    finished: list[object] = []
    tab.run_finished.connect(finished.append)
    worker = tab.run()
    qtbot.waitUntil(lambda: len(tab.frontier) >= 3, timeout=RUN_TIMEOUT)
    assert tab.cancel_button.isEnabled() and not tab.run_button.isEnabled()
    qtbot.mouseClick(tab.cancel_button, Qt.MouseButton.LeftButton)
    asked_at = time.perf_counter()
    qtbot.waitUntil(lambda: bool(cancelled), timeout=RUN_TIMEOUT)
    assert worker.done.is_set() and not finished
    # At most the solve in progress finished after Cancel.
    assert sum(1 for t in produced if t > asked_at) <= 1
    assert worker.items_after_cancel <= 1
    assert 3 <= len(tab.frontier) < 60
    assert "cancelled" in tab.progress.format()
    # The points that arrived stay; the window is usable: run again to the end.
    assert len(tab.frontier_plot.plot_points(WITH_LEVERAGE)) == len(tab.frontier)
    assert tab.run_button.isEnabled() and not tab.cancel_button.isEnabled()
    monkeypatch.setattr(engine_module.OptimizationEngine, "efficient_frontier", original)
    assert _run(qtbot, tab, points=5) == "finished"
    assert len(tab.frontier) == 10


def test_late_items_of_a_cancelled_run_are_ignored(qtbot, tab):
    worker = tab.run()
    tab.cancel()
    qtbot.waitUntil(lambda: worker.done.is_set(), timeout=RUN_TIMEOUT)
    second = tab.run()
    assert second is not None and second is not worker
    # Items the first job still had queued must not reach the second run's tables.
    worker.signals.partial.emit(object())
    qtbot.waitUntil(lambda: not tab.running, timeout=RUN_TIMEOUT)
    qtbot.wait(50)
    assert tab.worker is second


# ------------------------------------------------------------------ errors
def test_infeasible_setup_shows_the_error_and_the_window_stays_usable(qtbot, window):
    tab = window.results_tab
    session = window.session
    c = session.workspace.constraints
    session.undo_stack.push(SetConstraintsCommand(session, c.copy(min_weight=0.5, max_weight=1.0)))
    errors: list[object] = []
    tab.run_failed.connect(errors.append)
    assert _run(qtbot, tab, points=5) == "failed"
    exc = errors[0]
    assert isinstance(exc, InfeasibleError)
    assert tab.error_banner.isVisibleTo(tab)
    assert str(exc) in tab.error_banner.text()
    assert "minimum weights" in tab.error_banner.text()
    # The offending constraint is highlighted on the Constraints tab.
    assert window.constraints_tab.is_flagged("min_weight")
    assert any("minimum weights" in m for m in window.constraints_tab.messages())
    assert tab.run_button.isEnabled() and not tab.cancel_button.isEnabled()
    # Still usable: undo the edit and run again.
    session.undo_stack.undo()
    assert _run(qtbot, tab) == "finished"
    assert not tab.error_banner.isVisibleTo(tab)
    assert tab.result is not None and tab.result.success


def test_solver_found_infeasibility_highlights_the_target(qtbot, window):
    """A volatility target no portfolio meets: found by the solver, not the linear check."""
    tab = window.results_tab
    session = window.session
    c = session.workspace.constraints
    session.undo_stack.push(SetConstraintsCommand(session, c.copy(target_volatility=0.001)))
    window.constraints_tab.check_now()
    assert not window.constraints_tab.is_flagged("target_volatility")
    assert _run(qtbot, tab, choice="max_return_at_target_vol") == "failed"
    assert "volatility target" in tab.error_banner.text()
    assert window.constraints_tab.is_flagged("target_volatility")


def test_a_frontier_failure_keeps_the_optimum_and_blames_no_constraint(qtbot, window, monkeypatch):
    original = engine_module.OptimizationEngine.efficient_frontier

    def failing(self, *args, **kwargs):
        for i, point in enumerate(original(self, *args, **kwargs)):
            if i == 3:
                raise InfeasibleError("No portfolio satisfies the constraints")
            yield point

    monkeypatch.setattr(engine_module.OptimizationEngine, "efficient_frontier", failing)
    tab = window.results_tab
    highlighted: list[list] = []
    tab.infeasible.connect(highlighted.append)
    assert _run(qtbot, tab, points=6) == "failed"
    assert tab.result is not None and tab.result.success and tab.chosen is tab.result
    assert len(tab.frontier) == 3
    assert "The frontier stopped after 3 points" in tab.error_banner.text()
    assert highlighted == []  # the constraints are not the problem
    assert not window.constraints_tab.messages()
    assert tab.weights_model.rowCount() > 0 and tab.trades_button.isEnabled()


@pytest.mark.parametrize("choice", list(OBJECTIVE_CHOICES))
def test_every_objective_runs_or_explains(qtbot, tab, session, choice):
    if choice == "exposure_matching":
        tab.set_objective(choice)
        assert tab.target_box.isVisibleTo(tab)
        model = tab.target_model
        model.reset_to({"US_EQUITY": 0.6, "UST_10Y": 0.4})
        assert session.workspace.settings[TARGET_EXPOSURES_KEY] == {
            "US_EQUITY": 0.6,
            "UST_10Y": 0.4,
        }
    end = _run(qtbot, tab, choice=choice)
    if choice in ("max_return_at_target_vol", "min_vol_at_target_return"):
        # The sample sets no target: core's message says where to set one.
        assert end == "failed"
        assert "Constraints tab" in tab.error_banner.text()
        return
    assert end == "finished", tab.run_error
    r = tab.result
    assert r is not None and r is tab.chosen
    if r.success:
        _check_constraints(r, session.workspace)
        assert not tab.error_banner.isVisibleTo(tab)
        assert tab.trades_button.isEnabled()
    else:
        # Core refused its own answer: the message is shown and no trades are offered.
        assert r.message in tab.error_banner.text()
        assert not tab.trades_button.isEnabled()
    if choice == "exposure_matching":
        assert r.details["exposure_tracking_error"] >= 0
        assert tab.exposures_model.rowCount() > 0


def test_target_exposure_table_edits_through_undo(qtbot, tab, session, qtmodeltester):
    model = tab.target_model
    qtmodeltester.check(model)
    assert not model.saved
    row = model.row_of("GOLD")
    index = model.index(row, model.TARGET)
    assert model.setData(index, "15%", Qt.ItemDataRole.EditRole)
    assert model.saved and model.targets()["GOLD"] == pytest.approx(0.15)
    assert session.workspace.settings[TARGET_EXPOSURES_KEY]["GOLD"] == pytest.approx(0.15)
    assert model.index(row, model.TARGET).data() == "15.0%"
    assert not model.setData(index, "abc", Qt.ItemDataRole.EditRole)
    assert not model.setData(index, "9000", Qt.ItemDataRole.EditRole)
    assert not model.setData(model.index(row, 0), "x", Qt.ItemDataRole.EditRole)
    session.undo_stack.undo()
    assert not model.saved


def test_leveraged_funds_can_be_excluded(qtbot, tab, session):
    tab.leverage_check.setChecked(False)
    assert _run(qtbot, tab) == "finished"
    fmap = session.workspace.fund_map
    w = tab.result.weights
    assert all(abs(w[s]) < 1e-9 for s in w.index if fmap[s].is_leveraged)
    assert any(w[s] > 1e-3 for s in w.index if not fmap[s].is_leveraged)


# ------------------------------------------------------------------ staleness
def test_changing_an_input_after_a_run_marks_results_stale(qtbot, tab, session):
    assert _run(qtbot, tab) == "finished"
    assert not tab.stale
    with qtbot.waitSignal(tab.stale_changed, timeout=5000) as sig:
        session.undo_stack.push(SetSharesCommand(session, "VTI", 999))
    assert sig.args == [True] and tab.stale
    assert tab.stale_banner.isVisibleTo(tab)
    assert "run again" in tab.stale_banner.text()
    # Undo returns to the inputs of the run: the results are right again.
    with qtbot.waitSignal(tab.stale_changed, timeout=5000) as sig:
        session.undo_stack.undo()
    assert sig.args == [False] and not tab.stale_banner.isVisibleTo(tab)
    # Constraints, estimator settings and price history are inputs too.
    c = session.workspace.constraints
    session.undo_stack.push(SetConstraintsCommand(session, c.copy(max_weight=0.3)))
    qtbot.waitUntil(lambda: tab.stale, timeout=5000)
    session.undo_stack.undo()
    qtbot.waitUntil(lambda: not tab.stale, timeout=5000)
    session.undo_stack.push(SetSettingsCommand(session, {"risk_free_rate": 0.03}))
    qtbot.waitUntil(lambda: tab.stale, timeout=5000)
    session.undo_stack.undo()
    qtbot.waitUntil(lambda: not tab.stale, timeout=5000)
    prices = pd.DataFrame({"VTI": [1.0, 1.1]}, index=pd.to_datetime(["2024-01-31", "2024-02-29"]))
    session.set_market_data(MarketData(prices))
    qtbot.waitUntil(lambda: tab.stale, timeout=5000)
    # A new run clears it.
    session.set_market_data(None)
    assert _run(qtbot, tab) == "finished"
    assert not tab.stale and not tab.stale_banner.isVisibleTo(tab)


def test_trade_settings_make_trades_stale_not_the_optimum(qtbot, tab, session):
    assert _run(qtbot, tab) == "finished"
    _make_trades(qtbot, tab)
    assert tab.export_button.isEnabled() and tab.copy_button.isEnabled()
    assert trade_settings(session.workspace).cash_buffer_pct == session.workspace.setting(
        "cash_buffer"
    )
    tab.cash_buffer.setValue(3.0)  # through an undo command
    assert session.workspace.setting("cash_buffer") == pytest.approx(0.03)
    qtbot.waitUntil(lambda: tab.trades_stale, timeout=5000)
    assert not tab.stale
    assert not tab.trades_banner.isHidden()  # on the Trades page
    assert not tab.export_button.isEnabled() and not tab.copy_button.isEnabled()
    plan = _make_trades(qtbot, tab)
    assert plan.cash_buffer == pytest.approx(0.03 * plan.total_value_before)
    assert not tab.trades_stale and tab.export_button.isEnabled()
    # Loading another portfolio drops trades made for the previous one.
    tab.load_point(tab.frontier[0] if tab.frontier else tab.current_result)
    assert tab.plan is None and tab.trades_model.rowCount() == 0


# ------------------------------------------------------------------ models & plots
def test_models_pass_qtmodeltester(qtbot, tab, qtmodeltester):
    for model in (tab.weights_model, tab.exposures_model, tab.metrics_model, tab.trades_model):
        qtmodeltester.check(model)
    assert _run(qtbot, tab) == "finished"
    _make_trades(qtbot, tab)
    for model in (tab.weights_model, tab.exposures_model, tab.metrics_model, tab.trades_model):
        assert model.rowCount() > 0
        qtmodeltester.check(model)
    qtmodeltester.check(MetricsModel())
    # Numbers are right-aligned.
    right = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    assert tab.weights_model.index(0, 3).data(Qt.ItemDataRole.TextAlignmentRole) == right
    assert tab.trades_model.index(0, 4).data(Qt.ItemDataRole.TextAlignmentRole) == right
    assert tab.metrics_model.index(0, 1).data(Qt.ItemDataRole.TextAlignmentRole) == right


def test_exposures_before_and_after_match_the_fund_map(qtbot, tab, session):
    assert _run(qtbot, tab) == "finished"
    ws = session.workspace
    r = tab.result
    symbols = list(r.weights.index)
    e = np.array([ws.fund_map[s].exposures.get("US_EQUITY", 0.0) / 100 for s in symbols])
    model = tab.exposures_model
    row = model.row_of("US equity")
    assert model.index(row, 3).data(Qt.ItemDataRole.EditRole) == pytest.approx(
        float(e @ r.weights.to_numpy())
    )
    cur = ws.priced_portfolio().weights().reindex(symbols).fillna(0.0).to_numpy()
    assert model.index(row, 2).data(Qt.ItemDataRole.EditRole) == pytest.approx(float(e @ cur))
    last = model.rowCount() - 1
    assert model.index(last, 0).data() == "Total notional"
    assert model.index(last, 3).data(Qt.ItemDataRole.EditRole) == pytest.approx(r.total_notional)


def test_risk_plots_show_shares_of_risk_next_to_capital(qtbot, tab, session):
    """The sample's risk by exposure type sums to 100%; equity's share beats its capital."""
    assert _run(qtbot, tab) == "finished"
    tab.risk_which.setCurrentIndex(tab.risk_which.findData("current"))
    plot = tab.type_risk_plot
    assert plot.risk.sum() == pytest.approx(1.0, abs=1e-9)
    inputs = tab.inputs
    w = session.workspace.priced_portfolio().weights().reindex(inputs.symbols).fillna(0.0)
    sigma = inputs.covariance.to_numpy()
    rc = w.to_numpy() * (sigma @ w.to_numpy()) / np.sqrt(w.to_numpy() @ sigma @ w.to_numpy())
    fund_plot = tab.fund_risk_plot
    shares = dict(zip(fund_plot.labels, fund_plot.risk, strict=True))
    for sym, value in zip(inputs.symbols, rc / rc.sum(), strict=True):
        if sym in shares:
            assert shares[sym] == pytest.approx(value, abs=1e-9)
    us = plot.labels.index("US equity")
    assert plot.risk[us] > plot.capital[us]  # equity carries more risk than capital
    assert "of risk" in plot.title.text()


def test_hover_and_click_describe_the_point(qtbot, tab):
    assert _run(qtbot, tab, points=4) == "finished"
    plot = tab.frontier_plot
    point = plot.plot_points(WITH_LEVERAGE)[1]
    text = describe(point)
    fp = point.payload
    for part in (
        f"Return {fp.expected_return * 100:.2f}%",
        f"Volatility {fp.volatility * 100:.2f}%",
        f"Sharpe {fp.sharpe_ratio:.2f}",
        f"Notional {fp.total_notional * 100:.2f}%",
    ):
        assert part in text
    scatter = plot.scatters[WITH_LEVERAGE]
    assert scatter.opts["hoverable"]
    assert scatter.opts["tip"](x=0, y=0, data=point) == text
    spot = scatter.points()[1]
    hovered: list[object] = []
    plot.point_hovered.connect(hovered.append)
    scatter.sigHovered.emit(scatter, [spot], None)
    assert hovered == [point] and "Sharpe" in plot.info.text()
    # Current and optimal markers carry their portfolios too.
    assert plot.current is not None and plot.current.payload is tab.current_result
    with qtbot.waitSignal(tab.portfolio_loaded) as loaded:
        plot.click(plot.current)
    assert loaded.args[0] is tab.current_result
    assert tab.metrics_model.headerData(2, Qt.Orientation.Horizontal) == "Current holdings"


def test_measure_portfolio_matches_numpy(session):
    from core.optimization.workflow import build_model_inputs

    inputs = build_model_inputs(session.workspace)
    rng = np.random.default_rng(3)
    w = pd.Series(rng.dirichlet(np.ones(len(inputs.symbols))) * 0.9, index=inputs.symbols)
    r = measure_portfolio(inputs, session.workspace.fund_map, w)
    ret, vol, sharpe = _independent_metrics(inputs, w)
    assert r.expected_return == pytest.approx(ret, abs=1e-12)
    assert r.expected_volatility == pytest.approx(vol, rel=1e-12)
    assert r.sharpe_ratio == pytest.approx(sharpe, rel=1e-12)
    assert r.cash_weight == pytest.approx(0.1)
    assert r.risk_contributions.sum() == pytest.approx(vol, rel=1e-9)
    assert r.exposure_risk_contributions.sum() == pytest.approx(vol, rel=1e-9)
    assert r.effective_assets == pytest.approx(1 / np.sum((w / w.sum()) ** 2))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.lists(st.floats(0.0, 1.0), min_size=12, max_size=12).filter(lambda v: sum(v) > 0.05),
    invested=st.floats(0.2, 1.5),
)
def test_weights_and_metrics_tables_agree_with_numpy(qtbot, session, raw, invested):
    """For any long portfolio: change = target - current, cash closes the budget, and the
    metrics column matches numpy on the same inputs."""
    from core.optimization.workflow import build_model_inputs

    inputs = _inputs_cache.setdefault("sample", build_model_inputs(session.workspace))
    w = pd.Series(np.array(raw) / sum(raw) * invested, index=inputs.symbols)
    fmap = session.workspace.fund_map
    target = measure_portfolio(inputs, fmap, w)
    current = measure_portfolio(inputs, fmap, inputs.current_weights)
    model = WeightsModel()
    model.set_results(current, target, fmap)
    last = model.rowCount() - 1
    assert model.index(last, 0).data() == "Cash"
    total = 0.0
    for row in range(last):
        sym = model.index(row, 0).data()
        t = model.index(row, 3).data(Qt.ItemDataRole.EditRole)
        c = model.index(row, 2).data(Qt.ItemDataRole.EditRole)
        assert t == pytest.approx(w[sym], abs=1e-12)
        assert model.index(row, 4).data(Qt.ItemDataRole.EditRole) == pytest.approx(t - c)
        total += t
    assert total + model.index(last, 3).data(Qt.ItemDataRole.EditRole) == pytest.approx(1.0)
    metrics = MetricsModel()
    metrics.set_results(current, target)
    ret, vol, sharpe = _independent_metrics(inputs, w)
    assert metrics.value("Expected return") == pytest.approx(ret, abs=1e-12)
    assert metrics.value("Volatility") == pytest.approx(vol, rel=1e-9)
    assert metrics.value("Sharpe ratio") == pytest.approx(sharpe, rel=1e-9)
    assert metrics.value("Total notional") == pytest.approx(
        sum(abs(w[s]) * fmap[s].notional for s in w.index)
    )
    p = np.abs(w.to_numpy()) / np.abs(w.to_numpy()).sum()
    assert metrics.value("Concentration (HHI)") == pytest.approx(float(np.sum(p**2)))


_inputs_cache: dict[str, object] = {}


# ------------------------------------------------------------------ workers
def test_workers_report_and_stop(qtbot):
    solver = SolverThread()
    try:
        seen: list[bool] = []

        def gen(should_stop):
            for i in range(3):
                seen.append(should_stop())
                yield i

        worker = IterWorker(gen, 3)
        with qtbot.waitSignal(worker.signals.finished, timeout=10_000) as done:
            solver.start(worker)
        assert done.args == [[0, 1, 2]] and seen == [False, False, False]
        failing = FunctionWorker(lambda: 1 / 0)
        with qtbot.waitSignal(failing.signals.failed, timeout=10_000) as failed:
            solver.start(failing)
        assert isinstance(failed.args[0], ZeroDivisionError)
        queued = IterWorker(lambda: iter(range(5)), 5)
        queued.cancel()
        with qtbot.waitSignal(queued.signals.cancelled, timeout=10_000):
            solver.start(queued)
        assert queued.done.is_set()
    finally:
        assert solver.shutdown(10_000)
