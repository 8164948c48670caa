"""Walk-forward backtests: no look-ahead, exact accounting, pre-inception history, stats.

Most tests run on seeded synthetic prices under real tickers (so the built-in fund map
and the exposure proxies VTI/IEF/GLD apply); the last ones run on the shared real data.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.backtest import (
    BacktestCancelled,
    OptimizationBacktest,
    PreparedProblem,
    build_synthetic_history,
    compare,
)
from core.errors import DataError, ValidationError
from core.exposures import FundExposureMap
from core.optimization.constraints import OptimizationConstraints
from core.optimization.engine import OptimizationEngine

BPS = 10.0


@pytest.fixture(scope="module")
def fund_map() -> FundExposureMap:
    return FundExposureMap.default()


def make_prices(
    n_days: int = 900, seed: int = 0, symbols: tuple[str, ...] = ("VTI", "IEF", "GLD", "NTSX")
) -> pd.DataFrame:
    """Seeded daily prices: a 3-factor model so that covariances are non-trivial."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2014-01-01", periods=n_days)
    f = rng.normal(0.0, 0.01, size=(n_days, 3))
    load = {
        "VTI": [1.0, 0.0, 0.0],
        "IEF": [-0.2, 0.4, 0.0],
        "GLD": [0.1, 0.1, 0.9],
        "NTSX": [0.9, 0.24, 0.0],
        "SPY": [1.0, 0.0, 0.0],
    }
    cols = {}
    for i, s in enumerate(symbols):
        b = np.array(load.get(s, [0.5, 0.5, 0.5]))
        r = 0.0003 + f @ b + rng.normal(0.0, 0.002 + 0.001 * i, size=n_days)
        cols[s] = 100.0 * np.cumprod(1.0 + r)
    prices = pd.DataFrame(cols, index=dates)
    prices.index.name = "Date"
    return prices


def bill(index: pd.DatetimeIndex, rate: float = 0.02) -> pd.Series:
    return pd.Series((1 + rate) ** (1 / 252) - 1, index=index)


# ======================================================================= look-ahead
def jump_prices() -> pd.DataFrame:
    """A jumps +50% on the first trading day of every month; on each month's last day B
    beats A, so a strategy that reads the last row of its history as 'tomorrow' picks B."""
    dates = pd.bdate_range("2015-01-01", "2016-12-31")
    ra = np.full(len(dates), 0.0)
    rb = np.full(len(dates), 0.0)
    months = dates.to_period("M")
    first_day = np.r_[False, months[1:] != months[:-1]]
    last_day = np.r_[months[:-1] != months[1:], False]
    ra[first_day] = 0.5
    ra[last_day] = -0.01
    rb[last_day] = 0.01
    a = 100.0 * np.cumprod(1.0 + ra)
    b = 100.0 * np.cumprod(1.0 + rb)
    return pd.DataFrame({"VTI": a, "IEF": b}, index=dates)


def test_a_strategy_that_reads_tomorrow_cannot(fund_map: FundExposureMap) -> None:
    prices = jump_prices()
    bt = OptimizationBacktest(prices, fund_map, cash_rate=0.0, transaction_cost_bps=0.0)
    seen: list[tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]] = []

    def cheater(date, history, ctx):
        # "pick whichever asset has the higher NEXT return": it hopes the last row of its
        # history is tomorrow; if the engine leaked one day, it would catch every +50% jump
        seen.append((date, history.index[-1], ctx.cash_history.index[-1]))
        nxt = history.iloc[-1]
        return {str(nxt.idxmax()): 1.0}

    res = bt.backtest_strategy(cheater, "monthly", "2015-01-30", "2016-12-30")
    # every history ends exactly at the decision date, the cash history too
    assert seen and all(d == h == c for d, h, c in seen)
    # honest outcome, computed independently: B all the time (the cheater always picks B
    # because B wins each month's last day), so wealth = B's price ratio
    b = prices["IEF"]
    honest = b.loc[res.equity_curve.index] / b.loc[res.equity_curve.index[0]]
    np.testing.assert_allclose(res.equity_curve.to_numpy(), honest.to_numpy(), rtol=1e-12)
    # the leaky outcome would have caught ~23 jumps of +50%
    assert res.equity_curve.iloc[-1] < 1.5
    assert (res.drifted_weights["VTI"] == 0).all()


def test_weights_decided_on_a_jump_day_earn_from_the_next_day(fund_map) -> None:
    prices = jump_prices()
    bt = OptimizationBacktest(prices, fund_map, cash_rate=0.0, transaction_cost_bps=0.0)
    jumps = prices.index[
        np.r_[False, prices.index.to_period("M")[1:] != prices.index.to_period("M")[:-1]]
    ]

    def switch_on_jump_days(date, history, ctx):
        # decides daily; on a jump day, it sees the jump in history's last row and buys A:
        # the jump is already in the price it pays, so it must not earn it
        return {"VTI": 1.0} if history["VTI"].iloc[-1] > 0.4 else {"IEF": 1.0}

    res = bt.backtest_strategy(switch_on_jump_days, "daily", "2015-01-02", "2016-12-30")
    held_a = res.drifted_weights["VTI"]
    for day in jumps[jumps > res.start]:
        before = res.equity_curve.index[res.equity_curve.index.get_loc(day) - 1]
        assert held_a.loc[before] == 0.0  # not in A at the close before any jump
    assert res.equity_curve.max() < 1.5


@pytest.mark.parametrize(
    "method",
    ["max_sharpe", "min_volatility", "max_diversification", "risk_parity", "hrp",
     "risk_parity_exposure", "equal_weight"],
)  # fmt: skip
def test_changing_the_future_never_changes_past_decisions(fund_map, method: str) -> None:
    """Scramble every return after a cut date: each decision up to the cut must be
    identical, and so must the equity curve up to the cut."""
    prices = make_prices(n_days=800, seed=3)
    cut = prices.index[600]
    rng = np.random.default_rng(11)
    scrambled = prices.copy()
    after = prices.index > cut
    noise = np.exp(np.cumsum(rng.normal(0, 0.03, size=(after.sum(), prices.shape[1])), axis=0))
    scrambled.loc[after] = prices.loc[after].to_numpy() * noise
    cons = OptimizationConstraints(max_weight=0.7)
    kwargs = dict(cash_rate=0.01, lookback_years=1.0)
    runs = []
    for p in (prices, scrambled):
        bt = OptimizationBacktest(p, fund_map, **kwargs)
        runs.append(
            bt.backtest_strategy(
                method, "monthly", "2015-01-01", constraints=cons,
                symbols=["VTI", "IEF", "GLD", "NTSX"],
            )
        )  # fmt: skip
    a, b = runs
    past = a.weights.index[a.weights.index <= cut]
    assert len(past) > 5
    pd.testing.assert_frame_equal(a.weights.loc[past], b.weights.loc[past], rtol=1e-9, atol=1e-9)
    upto = a.equity_curve.index <= cut
    np.testing.assert_allclose(a.equity_curve[upto], b.equity_curve[upto], rtol=1e-12)
    # ... and the future did change something, so the test has teeth
    assert not np.allclose(a.equity_curve.iloc[-1], b.equity_curve.iloc[-1])


# ===================================================================== accounting
def test_buy_and_hold_reproduces_the_compounded_index(fund_map) -> None:
    prices = make_prices(n_days=700, seed=1)
    cash = bill(prices.index[1:], 0.03)
    bt = OptimizationBacktest(prices, fund_map, cash_returns=cash, transaction_cost_bps=0.0)
    w = {"VTI": 0.5, "IEF": 0.2, "GLD": 0.1}  # 20% cash
    res = bt.buy_and_hold(w, start_date=prices.index[10])
    idx = res.equity_curve.index
    rel = prices.loc[idx] / prices.loc[idx[0]]
    cash_growth = np.r_[1.0, np.cumprod(1.0 + cash.loc[idx[1:]].to_numpy())]
    expected = sum(v * rel[s].to_numpy() for s, v in w.items()) + 0.2 * cash_growth
    np.testing.assert_allclose(res.equity_curve.to_numpy(), expected, rtol=1e-12, atol=0)
    assert res.equity_curve.iloc[0] == 1.0
    assert len(res.weights) == 1 and res.total_costs == 0.0
    # weights drift: VTI's weight at the end is its value share
    last = expected[-1]
    assert res.drifted_weights["VTI"].iloc[-1] == pytest.approx(0.5 * rel["VTI"].iloc[-1] / last)


def test_single_fund_buy_and_hold_is_the_price_ratio(fund_map) -> None:
    prices = make_prices(n_days=400, seed=5)
    bt = OptimizationBacktest(prices, fund_map, cash_rate=0.0, transaction_cost_bps=0.0)
    res = bt.buy_and_hold({"GLD": 1.0}, start_date="2014-03-03")
    ratio = prices["GLD"].loc[res.start :] / prices["GLD"].loc[res.start]
    assert np.max(np.abs(res.equity_curve.to_numpy() / ratio.to_numpy() - 1)) < 1e-12


def replay(res, prices: pd.DataFrame, cash: pd.Series, bps: float) -> np.ndarray:
    """Independent re-simulation from the recorded target weights (plain loop)."""
    syms = [c for c in res.weights.columns if c != "CASH"]
    rets = prices[syms].pct_change()
    targets = res.weights[syms]
    h = targets.iloc[0].to_numpy() * 1.0
    c = 1.0 - h.sum()
    values = [h.sum() + c]
    for d in res.equity_curve.index[1:]:
        h = h * (1.0 + rets.loc[d].to_numpy())
        c = c * (1.0 + cash.loc[d])
        if d in targets.index:
            V = h.sum() + c
            t = targets.loc[d].to_numpy()
            # solve V' = V - k * sum |t V' - h| by bisection (independent of the engine)
            lo, hi = 0.0, V
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if mid + bps / 1e4 * np.abs(t * mid - h).sum() > V:
                    hi = mid
                else:
                    lo = mid
            Va = 0.5 * (lo + hi)
            h, c = t * Va, (1.0 - t.sum()) * Va
        values.append(h.sum() + c)
    return np.array(values)


def test_costs_and_turnover_add_up(fund_map) -> None:
    prices = make_prices(n_days=600, seed=2)
    cash = bill(prices.index[1:], 0.02)
    bt = OptimizationBacktest(prices, fund_map, cash_returns=cash, transaction_cost_bps=BPS)
    rng = np.random.default_rng(4)

    def random_weights(date, history, ctx):
        w = rng.dirichlet(np.ones(5))[:4]  # the 5th share stays in cash
        return dict(zip(ctx.symbols, w, strict=True))

    res = bt.backtest_strategy(random_weights, "weekly", "2014-02-03", symbols=list(prices.columns))
    trades = res.turnover.index[res.turnover > 0]
    assert len(trades) > 50
    # cost of each rebalance = bps x turnover x value before trading, and in total
    np.testing.assert_allclose(
        res.costs, BPS / 1e4 * res.turnover * res.value_before_trade, rtol=1e-12, atol=1e-16
    )
    assert res.total_costs == pytest.approx(
        BPS / 1e4 * float((res.turnover * res.value_before_trade).sum()), rel=1e-12
    )
    # after trading, the weights ARE the targets (costs came out of the value first)
    post = res.drifted_weights.loc[trades]
    np.testing.assert_allclose(post.to_numpy(), res.weights.loc[trades].to_numpy(), atol=1e-12)
    # turnover = sum |trade| / value before, recomputed from the drifted weights the day before
    for d in trades[:10]:
        i = res.equity_curve.index.get_loc(d)
        prev = res.drifted_weights.iloc[i - 1]
        syms = list(prices.columns)
        grown = prev[syms] * (1.0 + prices[syms].pct_change().loc[d])
        value_before = res.equity_curve.iloc[i - 1] * (grown.sum() + prev["CASH"] * (1 + cash[d]))
        assert value_before == pytest.approx(res.value_before_trade[d], rel=1e-12)
        value_after = res.equity_curve.iloc[i]
        traded = np.abs(
            res.weights.loc[d, syms] * value_after - grown * res.equity_curve.iloc[i - 1]
        ).sum()
        assert res.turnover[d] == pytest.approx(traded / value_before, rel=1e-9)
    # an independent replay (bisection for the post-cost value) gives the same curve
    np.testing.assert_allclose(
        res.equity_curve.to_numpy(), replay(res, prices, cash, BPS), rtol=1e-10
    )
    # returns are net: wealth = prod(1 + r)
    assert float(np.prod(1 + res.returns)) == pytest.approx(res.equity_curve.iloc[-1], rel=1e-12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    bps=st.floats(0.0, 100.0),
    rule=st.sampled_from(["daily", "weekly", "monthly", "quarterly", "band"]),
)
def test_accounting_invariants_hold_for_random_strategies(fund_map, seed, bps, rule) -> None:
    prices = make_prices(n_days=260, seed=seed % 7)
    bt = OptimizationBacktest(prices, fund_map, cash_rate=0.03, transaction_cost_bps=bps)
    rng = np.random.default_rng(seed)

    def random_weights(date, history, ctx):
        w = rng.dirichlet(np.ones(5))
        return w[:4] if rng.random() < 0.8 else np.zeros(4)

    res = bt.backtest_strategy(
        random_weights, rule, "2014-01-03", band=0.05 if rule == "band" else None,
        symbols=list(prices.columns),
    )  # fmt: skip
    assert (res.equity_curve > 0).all()
    np.testing.assert_allclose(res.drifted_weights.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        res.costs, bps / 1e4 * res.turnover * res.value_before_trade, rtol=1e-12, atol=1e-16
    )
    assert (res.turnover >= 0).all() and (res.turnover <= 2.0 + 1e-12).all()
    np.testing.assert_allclose(np.prod(1 + res.returns), res.equity_curve.iloc[-1], rtol=1e-12)
    if rule == "band":  # between trades no weight strays more than the band
        targets = res.weights.reindex(res.drifted_weights.index).ffill()
        dev = (res.drifted_weights - targets).abs().max(axis=1)
        trade_days = set(res.weights.index)
        worst = dev[[d not in trade_days for d in dev.index]]
        # a breach triggers a trade that same close, so only the last day (no trade) may show one
        breaches = worst[worst > 0.05 + 1e-12]
        assert all(d == res.equity_curve.index[-1] for d in breaches.index)


def test_initial_holdings_are_traded_at_a_cost(fund_map) -> None:
    prices = make_prices(n_days=300, seed=6)
    bt = OptimizationBacktest(prices, fund_map, cash_rate=0.0, transaction_cost_bps=BPS)
    res = bt.backtest_strategy(
        {"VTI": 0.5, "IEF": 0.5}, "monthly", "2014-02-03", initial_weights={"GLD": 1.0}
    )
    assert res.turnover.iloc[0] == pytest.approx(2.0, rel=1e-3)  # sell all GLD, buy VTI+IEF
    assert res.equity_curve.iloc[0] == pytest.approx(1.0 - BPS / 1e4 * 2.0, rel=1e-3)


# ================================================================ synthetic history
def monthly_panel(index: pd.DatetimeIndex, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(index)
    return pd.DataFrame(
        {
            "CASH_TBILL": np.full(n, 0.002),
            "US_EQUITY": rng.normal(0.008, 0.045, n),
            "UST_10Y": rng.normal(0.003, 0.02, n),
            "GOLD": rng.normal(0.004, 0.05, n),
        },
        index=index,
    )


def test_synthetic_history_is_used_only_before_inception(fund_map) -> None:
    months = pd.date_range("2005-01-31", "2020-12-31", freq="ME")
    panel = monthly_panel(months, seed=2)
    # daily prices: VTI and IEF exactly follow the panel (one price per month end is enough
    # for monthly returns); NTSX and GDE start later, on a mid-month day
    days = pd.bdate_range("2005-01-03", "2020-12-31")
    me = days.to_series().groupby(days.to_period("M")).max()
    prices = pd.DataFrame(index=days, dtype=float)
    for sym, code in (("VTI", "US_EQUITY"), ("IEF", "UST_10Y")):
        level = 100 * np.cumprod(1 + panel[code].to_numpy())
        prices.loc[me.to_numpy(), sym] = level
    rng = np.random.default_rng(3)
    starts = {"NTSX": pd.Timestamp("2012-06-13"), "GDE": pd.Timestamp("2016-03-09")}
    for sym, start in starts.items():
        live = days[days >= start]
        prices.loc[live, sym] = 50 * np.cumprod(1 + rng.normal(0.0003, 0.01, len(live)))
    bt = OptimizationBacktest(prices, fund_map, synthetic_history=panel, lookback_years=2)
    assert bt.frequency == "monthly"
    res = bt.backtest_strategy(
        {"NTSX": 0.5, "GDE": 0.3, "VTI": 0.2}, "quarterly", "2008-01-01",
        symbols=["NTSX", "GDE", "VTI"],
    )  # fmt: skip
    used = bt.returns_for(["NTSX", "GDE", "VTI"])
    real = pd.DataFrame({s: prices[s] for s in starts}).resample("ME").last()
    real_r = real / real.shift(1) - 1
    cash = panel["CASH_TBILL"]
    for sym, start in starts.items():
        fund = fund_map[sym]
        first_price = prices[sym].first_valid_index()
        fit = res.synthetic_fit[sym]
        # the switch is at the fund's first price: reported as such, and the first real
        # return is the first full month after it
        assert first_price == start and fit.first_price == first_price
        first_real = real_r[sym].first_valid_index()
        assert fit.first_real_return == first_real
        assert first_real == (start + pd.offsets.MonthEnd(1)) + pd.offsets.MonthEnd(1)
        first_syn, last_syn = res.synthetic_periods[sym]
        assert last_syn < first_real and last_syn == first_real - pd.offsets.MonthEnd(1)
        assert first_syn == pd.Timestamp("2006-01-31")  # window start of the first decision
        # before the switch: exactly the exposure model; from it on: exactly the real fund
        e = {k: v / 100 for k, v in fund.exposures.items()}
        model = cash + sum(w * (panel[k] - cash) for k, w in e.items()) - fund.annual_cost / 12
        pre = used.index < first_real
        np.testing.assert_allclose(
            used.loc[pre, sym].dropna(), model.loc[used.index[pre]].dropna(), rtol=1e-13
        )
        post = used.index >= first_real
        pd.testing.assert_series_equal(
            used.loc[post, sym], real_r[sym].reindex(used.index[post]), check_names=False
        )
    assert "VTI" not in res.synthetic_periods  # VTI has real returns all along
    assert any("synthesised" in n for n in res.notes)
    assert any("NTSX: synthetic" in line for line in res.synthetic_summary())


def test_synthetic_fit_statistics_against_a_direct_computation(fund_map) -> None:
    months = pd.date_range("2010-01-31", "2020-12-31", freq="ME")
    panel = monthly_panel(months, seed=8)
    cash = panel["CASH_TBILL"]
    fund = fund_map["NTSX"]
    model = cash + 0.9 * (panel["US_EQUITY"] - cash) + 0.6 * (panel["UST_10Y"] - cash)
    model = model - fund.annual_cost / 12
    noise = np.random.default_rng(1).normal(0.0005, 0.004, len(months))
    real = (model + noise).where(months >= "2015-01-31")
    hist = build_synthetic_history(real.to_frame("NTSX"), fund_map, panel, cash)
    fit = hist.fits["NTSX"]
    over = real.notna()
    diff = (real - model)[over]
    assert fit.n_obs == int(over.sum())
    assert fit.tracking_error_annual == pytest.approx(diff.std(ddof=1) * math.sqrt(12), rel=1e-12)
    assert fit.mean_difference_annual == pytest.approx(diff.mean() * 12, rel=1e-12)
    ss = ((real[over] - real[over].mean()) ** 2).sum()
    assert fit.r_squared == pytest.approx(1 - (diff**2).sum() / ss, rel=1e-12)
    assert fit.correlation == pytest.approx(np.corrcoef(real[over], model[over])[0, 1], rel=1e-12)
    assert hist.periods["NTSX"] == (months[0], pd.Timestamp("2014-12-31"))


# =================================================================== prepared problem
@pytest.mark.parametrize("objective", ["min_volatility", "max_sharpe", "max_diversification"])
def test_prepared_problem_matches_the_engine_month_after_month(fund_map, objective) -> None:
    syms = ["VTI", "IEF", "GLD", "NTSX", "GDE", "RSSB", "TLT"]
    cons = OptimizationConstraints(
        max_weight=0.6, max_total_notional=1.6, max_exposure_per_type={"US_EQUITY": 0.8},
        max_cash=0.2,
    )  # fmt: skip
    prob = PreparedProblem(syms, cons, fund_map, objective)
    engine = OptimizationEngine(fund_map=fund_map)
    rng = np.random.default_rng(0)
    base = rng.normal(size=(7, 7))
    for _month in range(8):
        a = base + 0.15 * rng.normal(size=(7, 7))
        cov = (a @ a.T / 7 + np.eye(7) * 0.01) * 0.04
        mu = rng.normal(0.04, 0.02, 7)
        w, cash = prob.solve(cov, mu)
        ref = engine.optimize_mean_variance(syms, mu + 0.02, cov, cons, objective, 0.02)
        assert ref.success
        np.testing.assert_allclose(w, ref.weights.to_numpy(), atol=2e-6)
        assert cash == pytest.approx(ref.cash_weight, abs=2e-6)
        assert w.sum() + cash == pytest.approx(1.0, abs=1e-9)
        assert np.abs(w) @ prob.form.notionals <= 1.6 + 1e-8
    assert prob.n_solves == 8 and prob.warm_starts == 7


def test_prepared_problem_refuses_what_needs_the_general_path(fund_map) -> None:
    with pytest.raises(ValidationError, match="general"):
        PreparedProblem(["VTI", "IEF"], OptimizationConstraints(max_turnover=0.1), fund_map)
    with pytest.raises(ValidationError, match="fast path"):
        PreparedProblem(["VTI", "IEF"], OptimizationConstraints(), fund_map, "risk_parity")


def test_max_sharpe_without_a_positive_excess_return_holds_min_volatility(fund_map) -> None:
    prices = make_prices(n_days=500, seed=9)
    falling = prices.copy()
    for s in falling.columns:  # everything loses 20%/yr: no positive expected excess return
        falling[s] = prices[s] * np.exp(-0.2 * np.arange(len(prices)) / 252)
    bt = OptimizationBacktest(falling, fund_map, cash_rate=0.02, lookback_years=1.0)
    ms = bt.backtest_strategy("max_sharpe", "quarterly", "2015-01-01", symbols=list(prices.columns))
    mv = bt.backtest_strategy(
        "min_volatility", "quarterly", "2015-01-01", symbols=list(prices.columns)
    )
    pd.testing.assert_frame_equal(ms.weights, mv.weights, atol=1e-7)
    assert any("min volatility held instead of max Sharpe" in n for n in ms.notes)


def test_turnover_limit_is_respected_through_the_engine(fund_map) -> None:
    prices = make_prices(n_days=700, seed=12)
    bt = OptimizationBacktest(prices, fund_map, cash_rate=0.02, lookback_years=1.0)
    res = bt.backtest_strategy(
        "min_volatility", "quarterly", "2015-01-01", symbols=["VTI", "IEF", "GLD"],
        constraints=OptimizationConstraints(max_turnover=0.05),
    )  # fmt: skip
    # the first portfolio is bought from cash, uncapped, on the fast path; the rest by cvxpy
    assert res.settings["engine_solves"] > 0 and res.settings["fast_solves"] == 1
    later = res.turnover.iloc[1:]
    # the cap is on weights before costs; paying costs moves the traded value by ~bps x cap
    assert (later <= 0.05 * (1 + 1e-3)).all()
    assert (later > 0.049).any()  # the cap binds


# ========================================================================= statistics
def test_statistics_match_an_independent_computation(fund_map) -> None:
    prices = make_prices(n_days=800, seed=13)
    cash = bill(prices.index[1:], 0.02)
    bt = OptimizationBacktest(prices, fund_map, cash_returns=cash, transaction_cost_bps=BPS)
    res = bt.benchmark_60_40("VTI", "IEF", start_date="2014-01-10")
    r = res.returns.to_numpy()
    ex = r - cash.loc[res.returns.index].to_numpy()
    years = (res.end - res.start).days / 365.25
    assert res.cagr == pytest.approx(res.equity_curve.iloc[-1] ** (1 / years) - 1, rel=1e-12)
    assert res.volatility == pytest.approx(np.std(r, ddof=1) * math.sqrt(252), rel=1e-12)
    assert res.sharpe == pytest.approx(ex.mean() / np.std(ex, ddof=1) * math.sqrt(252), rel=1e-12)
    down = math.sqrt(np.mean(np.minimum(ex, 0) ** 2))
    assert res.sortino == pytest.approx(ex.mean() / down * math.sqrt(252), rel=1e-12)
    # max drawdown by a plain loop over the equity curve
    eq = res.equity_curve.to_numpy()
    peak, depth, pk, tr = eq[0], 0.0, 0, 0
    best_pk = 0
    for i, v in enumerate(eq):
        if v > peak:
            peak, pk = v, i
        if v / peak - 1 < depth:
            depth, tr, best_pk = v / peak - 1, i, pk
    assert res.max_drawdown == pytest.approx(depth, rel=1e-12)
    peak_d, trough_d, recovery_d = res.max_drawdown_dates
    assert trough_d == res.equity_curve.index[tr] and peak_d == res.equity_curve.index[best_pk]
    back = np.flatnonzero(eq[tr:] >= eq[best_pk] * (1 - 1e-12))
    assert recovery_d == (res.equity_curve.index[tr + back[0]] if back.size else None)
    assert res.calmar == pytest.approx(res.cagr / abs(depth), rel=1e-12)
    assert res.average_turnover > 0 and res.stats()["n_rebalances"] > 20


def test_compare_puts_strategies_side_by_side(fund_map, tmp_path: Path) -> None:
    prices = make_prices(n_days=700, seed=14)
    bt = OptimizationBacktest(prices, fund_map, cash_rate=0.02, lookback_years=1.0)
    bench = bt.benchmark_60_40("VTI", "IEF", start_date="2015-01-01")
    mv = bt.backtest_strategy(
        "min_volatility", "monthly", "2015-01-01", symbols=["VTI", "IEF", "GLD"]
    )
    ew = bt.backtest_strategy(
        "equal_weight", "monthly", "2015-03-01", symbols=["VTI", "IEF", "GLD"]
    )
    table = compare([mv, ew], benchmark=bench)
    assert list(table.index) == [bench.name, mv.name, ew.name]
    for col in ("cagr", "volatility", "sharpe", "max_drawdown", "calmar", "excess_cagr",
                "tracking_error", "information_ratio", "beta", "average_turnover"):  # fmt: skip
        assert col in table.columns
    # common period: every row starts on the latest start
    assert len({table.loc[n, "end"] for n in table.index}) == 1
    own = bt.compare([mv], common_period=False)
    assert own.loc[mv.name, "cagr"] == pytest.approx(mv.cagr)
    diff = (mv.returns - bench.returns).reindex(ew.returns.index).dropna()
    assert table.loc[mv.name, "tracking_error"] == pytest.approx(diff.std() * math.sqrt(252))
    with pytest.raises(ValidationError, match="distinct names"):
        compare([mv, mv])
    # export: atomic CSV that reads back
    path = tmp_path / "bt.csv"
    mv.to_csv(path)
    back = pd.read_csv(path, index_col=0, parse_dates=True)
    assert {"equity", "return", "drawdown", "notional", "weight:VTI", "exposure:US_EQUITY"} <= set(
        back.columns
    )
    np.testing.assert_allclose(back["equity"], mv.equity_curve, rtol=1e-9)
    assert not list(tmp_path.glob(".bt.csv*"))  # no temp file left behind


def test_exposures_and_notional_over_time(fund_map) -> None:
    prices = make_prices(n_days=300, seed=15, symbols=("VTI", "NTSX"))
    bt = OptimizationBacktest(prices, fund_map, cash_rate=0.0, transaction_cost_bps=0.0)
    res = bt.backtest_strategy({"NTSX": 0.8}, "monthly", "2014-01-02")
    w = res.drifted_weights
    np.testing.assert_allclose(res.exposures["US_EQUITY"], 0.9 * w["NTSX"], atol=1e-14)
    np.testing.assert_allclose(res.exposures["UST_10Y"], 0.6 * w["NTSX"], atol=1e-14)
    np.testing.assert_allclose(res.exposures["CASH_TBILL"], w["CASH"], atol=1e-14)
    np.testing.assert_allclose(res.notional, 1.5 * w["NTSX"], atol=1e-14)


# ======================================================================= calendars
def test_rebalance_calendars(fund_map) -> None:
    prices = make_prices(n_days=800, seed=16)
    bt = OptimizationBacktest(prices, fund_map, cash_rate=0.0)
    w = {"VTI": 0.5, "IEF": 0.5}
    days = prices.index
    for rule, period in (("monthly", "M"), ("quarterly", "Q"), ("annual", "Y")):
        res = bt.backtest_strategy(w, rule, "2014-01-02")
        p = days.to_period(period)
        last = days[np.r_[p[1:] != p[:-1], False]]
        expected = [res.start, *[d for d in last if d > res.start]]
        assert list(res.weights.index) == expected
    never = bt.backtest_strategy(w, "never", "2014-01-02")
    assert len(never.weights) == 1
    band = bt.backtest_strategy(w, "band", "2014-01-02", band=0.02)
    dev = (band.drifted_weights["VTI"] - 0.5).abs()
    trades = band.weights.index[1:]
    assert len(trades) >= 1
    for d in trades:
        assert dev.loc[d] < 1e-12  # traded back to target ...
        i = band.equity_curve.index.get_loc(d)
        prev = band.drifted_weights.iloc[i - 1]
        grown = prev[["VTI", "IEF"]] * (1 + prices[["VTI", "IEF"]].pct_change().loc[d])
        assert abs(grown["VTI"] / grown.sum() - 0.5) > 0.02  # ... because it drifted past 2%
    calendar_band = bt.backtest_strategy(w, "monthly", "2014-01-02", band=0.02)
    assert len(calendar_band.weights) < len(
        bt.backtest_strategy(w, "monthly", "2014-01-02").weights
    )


def test_progress_ticks_and_cancel(fund_map) -> None:
    prices = make_prices(n_days=500, seed=17)
    bt = OptimizationBacktest(prices, fund_map, cash_rate=0.0)
    ticks: list[tuple[int, int]] = []
    res = bt.backtest_strategy(
        "min_volatility", "monthly", "2015-01-01", on_progress=lambda d, t: ticks.append((d, t))
    )
    done = [d for d, _ in ticks]
    assert done == sorted(done) and ticks[-1][0] == ticks[-1][1] == len(res.equity_curve) - 1
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= 3

    with pytest.raises(BacktestCancelled):
        bt.backtest_strategy("min_volatility", "monthly", "2015-01-01", should_stop=stop)
    assert calls["n"] == 3
    items = list(bt.iter_backtest("equal_weight", "quarterly", "2015-01-01"))
    assert items[-1].result is not None and all(i.result is None for i in items[:-1])


# =========================================================================== errors
def test_clear_errors(fund_map) -> None:
    prices = make_prices(n_days=300, seed=18)
    late = prices.copy()
    late.loc[:"2014-06-30", "GLD"] = np.nan
    bt = OptimizationBacktest(late, fund_map, cash_rate=0.0)
    with pytest.raises(ValidationError, match="unknown strategy"):
        bt.backtest_strategy("max_happiness")
    with pytest.raises(ValidationError, match="over 100%"):
        bt.backtest_strategy({"VTI": 0.8, "IEF": 0.5})
    with pytest.raises(DataError, match=r"On 2014-01-02: GLD has no return.*synthetic_history"):
        bt.backtest_strategy({"VTI": 0.5, "GLD": 0.5}, "monthly", "2014-01-02")
    with pytest.raises(ValidationError, match="band"):
        bt.backtest_strategy({"VTI": 1.0}, "band")
    with pytest.raises(ValidationError, match="rebalance frequency"):
        bt.backtest_strategy({"VTI": 1.0}, "fortnightly")
    with pytest.raises(DataError, match="cash_rate"):
        OptimizationBacktest(prices, fund_map)  # no BIL, no ^IRX, no rate
    with pytest.raises(ValidationError, match="Not in the fund map"):
        bt.backtest_strategy({"ZZZZ": 1.0})

    def bad(date, history, ctx):
        return {"GLD": 1.0}

    with pytest.raises(ValidationError, match="no price yet"):
        bt.backtest_strategy(bad, "monthly", "2014-01-02", symbols=["VTI", "GLD"])


def test_funds_join_optimizations_once_they_have_history(fund_map) -> None:
    prices = make_prices(n_days=900, seed=19)
    prices.loc[:"2015-06-30", "GLD"] = np.nan
    bt = OptimizationBacktest(prices, fund_map, cash_rate=0.0, lookback_years=1.0)
    res = bt.backtest_strategy(
        "min_volatility", "monthly", "2015-01-01", symbols=list(prices.columns)
    )
    gld = res.weights["GLD"]
    # GLD's first return is 2015-07-01; it needs returns on 90% of a year's periods
    joined = gld[gld > 0].index[0]
    assert pd.Timestamp("2016-04-30") < joined < pd.Timestamp("2016-08-01")
    assert (gld[gld.index < joined] == 0).all()


# ====================================================================== real data
@pytest.fixture(scope="module")
def real_prices(shared_data: Path) -> pd.DataFrame:
    from core.market_data import clean_prices, read_prices

    prices, _ = clean_prices(read_prices(shared_data / "etf_daily_adjclose.csv.gz"))
    return prices


def test_real_data_short_backtest_is_sane_and_honest(real_prices, fund_map) -> None:
    cols = ["SPY", "VTI", "IEF", "TLT", "GLD", "NTSX", "BIL", "^IRX"]
    prices = real_prices.loc["2016-01-01":"2025-12-31", cols]
    bt = OptimizationBacktest(prices, fund_map, lookback_years=2.0)
    syms = ["SPY", "IEF", "TLT", "GLD", "NTSX", "BIL"]
    cons = OptimizationConstraints(max_weight=0.6, max_total_notional=1.5)
    runs = [
        bt.benchmark_60_40(start_date="2019-01-01", rebalance_frequency="quarterly"),
        bt.backtest_strategy("max_sharpe", "quarterly", "2019-01-01", symbols=syms, constraints=cons),
        bt.backtest_strategy(
            "risk_parity_exposure", "quarterly", "2019-01-01", symbols=syms,
            constraints=OptimizationConstraints(target_volatility=0.08, max_total_notional=1.5),
        ),
    ]  # fmt: skip
    table = compare(runs[1:], benchmark=runs[0])
    for name, row in table.iterrows():
        assert -0.10 < row["cagr"] < 0.30, name
        assert 0.02 < row["volatility"] < 0.30, name
        assert -0.50 < row["max_drawdown"] < 0.0, name
        assert -1.0 < row["sharpe"] < 3.0, name
    # 60/40 over 2019-2025 with SPY/IEF: a known ballpark (about 8-10%/yr, 2022 drawdown)
    assert 0.06 < runs[0].cagr < 0.12 and runs[0].max_drawdown < -0.15
    assert (runs[1].notional <= 1.5 + 1e-6).all()
    # no look-ahead on real data: cut the prices at 2022-06-30; decisions up to it agree
    cut = pd.Timestamp("2022-06-30")
    short = OptimizationBacktest(prices.loc[:cut], fund_map, lookback_years=2.0)
    early = short.backtest_strategy(
        "max_sharpe", "quarterly", "2019-01-01", symbols=syms, constraints=cons
    )
    past = early.weights.index[early.weights.index <= cut - pd.Timedelta(days=1)]
    pd.testing.assert_frame_equal(runs[1].weights.loc[past], early.weights.loc[past], atol=1e-9)


def test_real_data_synthetic_switch_dates(real_prices, fund_map, shared_data: Path) -> None:
    from core.market_data import load_exposure_panel

    panel = load_exposure_panel(shared_data / "exposure_monthly_returns.csv")
    syms = ["RSSB", "NTSX", "GDE", "RSST", "SPY", "IEF"]
    bt = OptimizationBacktest(real_prices, fund_map, synthetic_history=panel, lookback_years=3)
    res = bt.backtest_strategy(
        {"RSSB": 0.3, "NTSX": 0.3, "GDE": 0.2, "RSST": 0.2}, "quarterly", "2010-01-01",
        "2025-12-31", symbols=syms,
    )  # fmt: skip
    for sym in ("RSSB", "NTSX", "GDE", "RSST"):
        first_price = real_prices[sym].first_valid_index()
        fit = res.synthetic_fit[sym]
        assert fit.first_price == first_price
        # synthetic through the month before the first full real month, never after
        _, last = res.synthetic_periods[sym]
        assert last < fit.first_real_return <= first_price + pd.offsets.MonthEnd(2)
        assert last >= first_price - pd.offsets.MonthEnd(1)
    assert "SPY" not in res.synthetic_periods
    # the fits that justify the splice: equity/Treasury/gold maps track well, trend loosely
    for sym in ("RSSB", "NTSX", "GDE"):
        assert res.synthetic_fit[sym].r_squared > 0.9, res.synthetic_fit[sym].describe()
    assert 0.5 < res.synthetic_fit["RSST"].r_squared < 0.95  # its trend sleeve is not DBMF
    assert 0.03 < res.cagr < 0.20
