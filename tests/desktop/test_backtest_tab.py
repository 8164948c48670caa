"""Backtest tab: strategies run on the solver thread, curves, statistics, cancel, export.

The real-data tests load ``etf_daily_adjclose.csv.gz`` the way the Market data dialog
does and check the tab's table and curves against the core's own numbers and against
statistics recomputed here from the plotted curves.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMainWindow

import desktop.tabs.backtest_tab as backtest_tab
from core.backtest import STAT_LABELS, OptimizationBacktest, compare
from core.errors import DataError
from core.market_data import check_data_quality, clean_prices
from core.optimization.constraints import OptimizationConstraints
from core.workspace import Workspace
from desktop.market_data_dialog import load_market_data
from desktop.models.backtest_model import RAW_ROLE, STAT_COLUMNS, BacktestStatsModel
from desktop.plots.equity_plot import nice_log_ticks
from desktop.session import MarketData, Session
from desktop.tabs.backtest_tab import (
    NO_DATA_TEXT,
    BacktestSettings,
    BacktestTab,
    backtest_inputs,
)

FEW_FUNDS = ("VTI", "IEF", "GLD", "NTSX", "TMF")
RUN_TIMEOUT = 120_000


def _workspace(keep: tuple[str, ...]) -> Workspace:
    """The sample workspace holding only ``keep`` (its constraints and fund map)."""
    ws = Workspace.sample()
    for sym in list(ws.portfolio.symbols):
        if sym not in keep:
            ws.portfolio.remove(sym)
    return ws


@pytest.fixture(scope="module")
def real_data(shared_data: Path) -> MarketData:
    # As the Market data dialog does: read_prices + check_data_quality.
    return load_market_data([shared_data / "etf_daily_adjclose.csv.gz"])


def _synthetic_market_data(seed: int = 7) -> MarketData:
    """Random-walk prices of a few funds, 2012..2019, plus a bill ETF; RSSB from 2018."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2012-01-02", "2019-12-31")
    specs = {
        "SPY": (0.08, 0.16),
        "VTI": (0.08, 0.17),
        "IEF": (0.03, 0.06),
        "GLD": (0.04, 0.15),
        "RSSB": (0.09, 0.20),
        "BIL": (0.015, 0.002),
    }
    prices = {}
    for sym, (mu, vol) in specs.items():
        r = rng.normal(mu / 252, vol / math.sqrt(252), len(days))
        prices[sym] = 100 * np.exp(np.cumsum(r))
    frame = pd.DataFrame(prices, index=days)
    frame.loc[frame.index < "2018-03-01", "RSSB"] = np.nan
    return MarketData(prices=frame, sources=["synthetic"], report=check_data_quality(frame))


def _tab(qtbot, session: Session) -> BacktestTab:
    tab = BacktestTab(session)
    qtbot.addWidget(tab)
    return tab


def _run(qtbot, tab: BacktestTab, outcome: str = "finished") -> None:
    with qtbot.waitSignal(tab.backtest_finished, timeout=RUN_TIMEOUT) as blocker:
        assert tab.run() is not None
    assert blocker.args == [outcome], (tab.status.text(), tab.error.text())


@pytest.fixture
def real_tab(qtbot, real_data):
    session = Session(_workspace(FEW_FUNDS))
    session.set_market_data(real_data)
    tab = _tab(qtbot, session)
    yield tab
    assert tab.shutdown()


@pytest.fixture
def small_tab(qtbot):
    session = Session(_workspace(("VTI", "IEF", "GLD", "RSSB")))
    session.set_market_data(_synthetic_market_data())
    tab = _tab(qtbot, session)
    yield tab
    assert tab.shutdown()


# ----------------------------------------------------------------- no prices
def test_without_prices_run_is_disabled_and_the_tab_says_how(qtbot):
    session = Session(_workspace(FEW_FUNDS))
    tab = _tab(qtbot, session)
    assert session.market_data is None
    assert not tab.run_button.isEnabled()
    assert tab.pages.currentIndex() == 0
    assert tab.no_data_label.text() == NO_DATA_TEXT
    assert tab.run_button.toolTip() == NO_DATA_TEXT
    assert tab.run() is None

    # Alone, the tab opens a Market data dialog of its own (non-modal).
    tab.market_data_button.click()
    assert tab._market_dialog is not None and tab._market_dialog.isVisible()
    tab._market_dialog.close()

    # Inside the main window, the button asks the window (Data > Market data...).
    class Window(QMainWindow):
        calls = 0

        def show_market_data(self):
            Window.calls += 1

    window = Window()
    qtbot.addWidget(window)
    window.setCentralWidget(tab)
    tab.market_data_button.click()
    assert Window.calls == 1

    session.set_market_data(_synthetic_market_data())
    assert tab.run_button.isEnabled()
    assert tab.pages.currentIndex() == 1
    for box in tab.strategy_boxes.values():
        box.setChecked(False)
    assert not tab.run_button.isEnabled()  # nothing ticked
    session.set_market_data(None)
    assert tab.pages.currentIndex() == 0
    assert tab.shutdown()


# ------------------------------------------------------------ real-data run
def test_60_40_and_max_sharpe_quarterly_2019_2025_match_the_core(qtbot, real_tab, real_data):
    tab = real_tab
    tab.set_strategies(["benchmark_60_40", "max_sharpe"])
    tab.set_dates("2019-01-01", "2025-12-31")
    tab.set_rebalance("quarterly")
    _run(qtbot, tab)
    assert tab.errors == []
    assert [r.name for r in tab.results] == ["60/40 benchmark", "Max Sharpe"]
    bench, sharpe = tab.results
    assert bench.start == pd.Timestamp("2019-01-02") and bench.end == pd.Timestamp("2025-12-31")
    assert bench.weights.iloc[0][["SPY", "IEF"]].tolist() == pytest.approx([0.6, 0.4])
    assert set(sharpe.weights.columns) == {*FEW_FUNDS, "CASH"}
    assert tab.title.text().startswith("2019-01-02 to 2025-12-31: quarterly rebalancing")

    # The same run straight through the core, on the whole file cleaned: same curves.
    prices, _ = clean_prices(real_data.prices)
    ws = tab.session.workspace
    core = OptimizationBacktest(prices, ws.fund_map, transaction_cost_bps=5.0, lookback_years=3.0)
    ref_bench = core.benchmark_60_40("SPY", "IEF", "quarterly", "2019-01-01", "2025-12-31")
    ref_sharpe = core.backtest_strategy(
        "max_sharpe", "quarterly", "2019-01-01", "2025-12-31",
        constraints=ws.constraints, symbols=list(FEW_FUNDS),
    )  # fmt: skip
    for mine, ref in ((bench, ref_bench), (sharpe, ref_sharpe)):
        pd.testing.assert_index_equal(mine.equity_curve.index, ref.equity_curve.index)
        np.testing.assert_allclose(mine.equity_curve, ref.equity_curve, rtol=1e-10)

    # Curves drawn: one per strategy, the result's dates and wealth.
    drawn = tab.plot.drawn()
    assert list(drawn) == ["60/40 benchmark", "Max Sharpe"]
    for res in tab.results:
        x, y = drawn[res.name]
        assert x[0] == pd.Timestamp("2019-01-02").timestamp()
        np.testing.assert_allclose(y, res.equity_curve.to_numpy())
        np.testing.assert_allclose(
            tab.plot.drawn_drawdowns()[res.name], res.drawdown.to_numpy() * 100, atol=1e-12
        )
    assert "60/40 benchmark" in [tab.plot.legend.items[i][1].text for i in range(2)]

    # The table is compare() of the core results, benchmark first.
    expected = compare([sharpe], bench)
    model = tab.model
    assert model.rowCount() == 2 and model.names == ["60/40 benchmark", "Max Sharpe"]
    for row, name in enumerate(model.names):
        for col, column in enumerate(STAT_COLUMNS, start=1):
            raw = model.index(row, col).data(RAW_ROLE)
            want = expected.loc[name, column.key]
            if pd.isna(want):
                assert raw is None
            elif column.kind == "date":
                assert raw == want
            else:
                assert raw == pytest.approx(float(want), rel=1e-12)
    cagr_col = BacktestStatsModel.column_of("cagr")
    assert model.index(1, cagr_col).data() == f"{sharpe.cagr * 100:.2f}%"
    assert model.index(1, cagr_col).data(Qt.ItemDataRole.TextAlignmentRole) & int(
        Qt.AlignmentFlag.AlignRight
    )
    assert model.index(1, BacktestStatsModel.column_of("max_drawdown_trough")).data() == (
        f"{sharpe.max_drawdown_dates[1]:%Y-%m-%d}"
    )
    assert "Against 60/40 benchmark: excess CAGR" in model.index(1, 0).data(
        Qt.ItemDataRole.ToolTipRole
    )

    # ... and its numbers follow from the drawn curves (computed independently here).
    for row, name in enumerate(model.names):
        x, y = drawn[name]
        years_days = (x[-1] - x[0]) / 86_400
        cagr = (y[-1] / y[0]) ** (365.25 / years_days) - 1
        assert model.value(row, "cagr") == pytest.approx(cagr, rel=1e-9)
        assert model.value(row, "max_drawdown") == pytest.approx(
            np.min(y / np.maximum.accumulate(y) - 1), rel=1e-9
        )
        r = np.diff(y) / y[:-1]
        assert model.value(row, "volatility") == pytest.approx(
            np.std(r, ddof=1) * math.sqrt(252), rel=1e-9
        )
        res = tab.results[row]
        excess = r - res.cash_returns.to_numpy()
        assert model.value(row, "sharpe") == pytest.approx(
            excess.mean() / excess.std(ddof=1) * math.sqrt(252), rel=1e-9
        )
        assert model.value(row, "total_costs") == pytest.approx(
            5e-4 * float((res.turnover * res.value_before_trade).sum()), rel=1e-9
        )

    # Log scale on by default; off and on again.
    assert tab.log_check.isChecked() and tab.plot.log_scale
    tab.log_check.setChecked(False)
    assert not tab.plot.equity_widget.getPlotItem().ctrl.logYCheck.isChecked()
    tab.log_check.setChecked(True)
    assert tab.plot.equity_widget.getPlotItem().ctrl.logYCheck.isChecked()
    assert tab.export_button.isEnabled() and tab.run_button.isEnabled()


def test_cancel_mid_run_keeps_the_finished_strategies_and_allows_a_new_run(qtbot, real_tab):
    tab = real_tab
    tab.set_strategies(["benchmark_60_40", "max_sharpe", "min_volatility"])  # run in this order
    tab.set_dates("2008-01-01", "2025-12-31")
    tab.set_rebalance("monthly")
    with qtbot.waitSignal(tab.backtest_finished, timeout=RUN_TIMEOUT) as blocker:
        worker = tab.run()
        assert worker is not None and tab.running
        assert not tab.run_button.isEnabled() and tab.cancel_button.isEnabled()
        assert not tab.strategy_boxes["max_sharpe"].isEnabled()
        # Cancel once the first strategy is in and max Sharpe (about 200 monthly
        # rebalances) has started.
        qtbot.waitUntil(lambda: len(tab.results) == 1, timeout=RUN_TIMEOUT)
        qtbot.waitUntil(lambda: "Max Sharpe" in tab.status.text(), timeout=RUN_TIMEOUT)
        tab.cancel()
        assert tab.status.text() == "Cancelling..."
    assert blocker.args == ["cancelled"]
    assert worker.cancel_requested
    qtbot.waitUntil(worker.done.is_set, timeout=RUN_TIMEOUT)  # the job has left the thread
    assert [r.name for r in tab.results] == ["60/40 benchmark"]
    assert tab.status.text() == "Cancelled; showing the 1 strategy that finished."
    assert not tab.running and tab.run_button.isEnabled() and not tab.cancel_button.isEnabled()
    assert tab.progress.isHidden()
    assert len(tab.plot.drawn()) == len(tab.results) == tab.model.rowCount()

    # The solver thread is free again.
    tab.set_strategies(["benchmark_60_40"])
    tab.set_dates("2019-01-01", "2020-12-31")
    _run(qtbot, tab)
    assert [r.name for r in tab.results] == ["60/40 benchmark"]


def test_export_writes_curves_stats_and_details_that_read_back(
    qtbot, real_tab, tmp_path, monkeypatch
):
    tab = real_tab
    tab.set_strategies(["benchmark_60_40", "max_sharpe"])
    tab.set_dates("2019-01-01", "2025-12-31")
    tab.set_rebalance("quarterly")
    _run(qtbot, tab)

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: ("", "")))
    assert tab.export_csv() == []
    assert list(tmp_path.glob("*.csv")) == []

    target = tmp_path / "run"
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "CSV"))
    )
    tab.export_button.click()
    curves_path = tmp_path / "run.csv"
    stats_path = tmp_path / "run_stats.csv"
    details = [tmp_path / "run_60_40_benchmark.csv", tmp_path / "run_max_sharpe.csv"]
    assert sorted(tmp_path.glob("*.csv")) == sorted([curves_path, stats_path, *details])
    assert "Exported run.csv, run_stats.csv and 2 per-strategy files" in tab.status.text()

    curves = pd.read_csv(curves_path, index_col="date", parse_dates=True)
    assert list(curves.columns) == ["60/40 benchmark", "Max Sharpe"]
    for res in tab.results:
        pd.testing.assert_index_equal(
            pd.DatetimeIndex(curves.index), pd.DatetimeIndex(res.equity_curve.index), exact=False
        )
        np.testing.assert_allclose(curves[res.name], res.equity_curve, rtol=1e-9)

    stats = pd.read_csv(stats_path, index_col="strategy")
    table = tab.comparison()
    assert list(stats.index) == list(table.index)
    assert STAT_LABELS["cagr"] in stats.columns
    for name in table.index:
        for key in ("cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar"):
            assert stats.loc[name, STAT_LABELS[key]] == pytest.approx(
                table.loc[name, key], rel=1e-9
            )
        assert stats.loc[name, STAT_LABELS["max_drawdown_trough"]] == (
            f"{table.loc[name, 'max_drawdown_trough']:%Y-%m-%d}"
        )
    detail = pd.read_csv(details[1], index_col="date", parse_dates=True)
    np.testing.assert_allclose(detail["equity"], tab.results[1].equity_curve, rtol=1e-9)
    assert {"weight:VTI", "weight:CASH", "exposure:US_EQUITY"} <= set(detail.columns)


def test_synthetic_history_is_listed_with_its_fit(qtbot, real_tab):
    tab = real_tab
    tab.set_strategies(["equal_weight"])
    tab.set_dates("2017-01-01", "2020-12-31")
    tab.set_rebalance("annual")
    tab.synthetic_check.setChecked(True)
    _run(qtbot, tab)
    (res,) = tab.results
    assert "NTSX" in res.synthetic_periods and "VTI" not in res.synthetic_periods
    first, last = res.synthetic_periods["NTSX"]
    fit = res.synthetic_fit["NTSX"]
    assert last < fit.first_real_return == pd.Timestamp("2018-08-03")
    text = tab.notes.toPlainText()
    assert "Synthetic history before inception" in text
    line = next(x for x in text.splitlines() if x.startswith("NTSX:"))
    assert f"synthetic {first:%Y-%m-%d} to {last:%Y-%m-%d}, real from 2018-08-03" in line
    assert f"R\u00b2 {fit.r_squared:.3f}" in line
    assert f"tracking error {fit.tracking_error_annual:.1%}/yr" in line
    assert "synthetic history before inception" in tab.title.text()


# ------------------------------------------------------- small synthetic data
def test_a_failing_strategy_is_reported_and_the_others_still_run(qtbot, small_tab):
    tab = small_tab
    tab.set_strategies(["benchmark_60_40", "buy_and_hold", "min_volatility", "equal_weight"])
    tab.set_dates("2015-06-01", "2019-06-30")
    tab.set_rebalance("band")
    tab.band_spin.setValue(3.0)
    _run(qtbot, tab)
    # RSSB has no price before 2018: holding it from 2015 cannot be backtested.
    assert [name for name, _ in tab.errors] == ["Buy and hold (current)"]
    assert "RSSB" in tab.errors[0][1]
    assert [r.name for r in tab.results] == ["60/40 benchmark", "Min volatility", "Equal weight"]
    assert "Buy and hold (current) could not run" in tab.notes.toPlainText()
    assert "1 could not run" in tab.status.text()
    assert all(r.settings["rebalance_frequency"] == "band" for r in tab.results)
    assert all(r.settings["band"] == pytest.approx(0.03) for r in tab.results)
    assert "drifts 3.0% from target" in tab.title.text()


def test_stats_model_passes_qtmodeltester(qtbot, qtmodeltester, small_tab):
    qtmodeltester.check(BacktestStatsModel())
    tab = small_tab
    tab.set_strategies(["benchmark_60_40", "equal_weight"])
    tab.set_dates("2015-01-01", "2019-12-31")
    _run(qtbot, tab)
    assert tab.model.rowCount() == 2
    qtmodeltester.check(tab.model)
    assert tab.model.index(0, 0).data(Qt.ItemDataRole.DecorationRole) is not None
    assert tab.model.headerData(1, Qt.Orientation.Horizontal) == "CAGR"


def test_changes_after_a_run_mark_the_results_out_of_date(qtbot, small_tab):
    tab = small_tab
    tab.set_strategies(["equal_weight"])
    tab.set_dates("2016-01-01", "2019-12-31")
    _run(qtbot, tab)
    assert tab.status.text().startswith("Backtested 1 strategy")
    tab.session.constraints_changed.emit()
    assert "changed since this run" in tab.status.text()


def test_errors_of_the_whole_job_are_shown_inline_or_as_a_bug(qtbot, small_tab, monkeypatch):
    tab = small_tab

    def no_cash(inputs, settings):
        raise DataError("no cash (bill) return for 10 periods")
        yield  # pragma: no cover - makes this a generator

    monkeypatch.setattr(backtest_tab, "iter_backtests", no_cash)
    _run(qtbot, tab, "failed")
    assert tab.error.text() == "no cash (bill) return for 10 periods"
    assert tab.run_button.isEnabled()

    shown = []

    def bug(inputs, settings):
        raise ZeroDivisionError("oops")
        yield  # pragma: no cover

    monkeypatch.setattr(backtest_tab, "iter_backtests", bug)
    monkeypatch.setattr(backtest_tab, "show_exception", lambda *a: shown.append(a[1]))
    _run(qtbot, tab, "failed")
    assert "ZeroDivisionError" in tab.error.text()
    assert len(shown) == 1 and isinstance(shown[0], ZeroDivisionError)


def test_settings_are_validated_before_running(qtbot, small_tab):
    tab = small_tab
    tab.set_dates("2019-01-01", "2018-01-01")
    assert tab.run() is None
    assert "must be after the start date" in tab.error.text()
    assert not tab.running


def test_universe_is_the_held_funds_with_leveraged_ones_optional():
    ws = _workspace(("VTI", "IEF", "NTSX", "TMF", "RSSB"))
    prices = _synthetic_market_data().prices  # no NTSX or TMF prices
    start, end = pd.Timestamp("2015-01-01"), pd.Timestamp("2019-01-01")
    settings = BacktestSettings(("max_sharpe",), start, end)
    inputs = backtest_inputs(ws, prices, settings)
    assert set(inputs.universe) == {"RSSB", "VTI", "IEF"}
    assert any("No price history" in n and "NTSX" in n and "TMF" in n for n in inputs.notes)
    no_lev = backtest_inputs(
        ws, prices, BacktestSettings(("max_sharpe",), start, end, allow_leveraged=False)
    )
    assert set(no_lev.universe) == {"VTI", "IEF"}
    assert any("Leveraged" in n and "RSSB" in n for n in no_lev.notes)
    synthetic = backtest_inputs(
        ws, prices, BacktestSettings(("max_sharpe",), start, end, synthetic_history=True)
    )
    assert set(synthetic.universe) == {"VTI", "IEF", "NTSX", "TMF", "RSSB"}
    assert isinstance(inputs.constraints, OptimizationConstraints)
    assert inputs.constraints is not ws.constraints  # a snapshot for the worker thread
    assert inputs.weights is not None and inputs.weights.sum() <= 1.0


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.95, 2.21, [1.0, 1.25, 1.5, 1.75, 2.0]),
        (0.9, 1.3, [0.9, 1.0, 1.1, 1.2, 1.3]),
        (0.5, 40.0, [0.5, 1.0, 2.0, 5.0, 10.0, 20.0]),
        (0.01, 1e4, [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]),
    ],
)
def test_log_axis_ticks_are_round_wealth_values(low, high, expected):
    ticks = nice_log_ticks(low, high, 6 if high / low < 12 else 7)
    assert ticks == pytest.approx(expected)
    assert all(low <= t <= high for t in ticks)
