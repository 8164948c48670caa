"""Estimators: cross-checked against scikit-learn, PyPortfolioOpt, pandas and hand loops.

scikit-learn and PyPortfolioOpt are used here only, as independent references.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from core.errors import DataError, ValidationError
from core.linalg import is_psd, nearest_correlation, nearest_psd
from core.optimization.estimators import (
    ReturnEstimator,
    ewma_covariance,
    ewma_mean,
    ewma_weights,
    ledoit_wolf,
    ledoit_wolf_constant_correlation,
    oas,
    pairwise_covariance,
    sample_covariance,
)

SHAPES = [(60, 5), (500, 40), (30, 80), (200, 1), (2, 3)]


def factor_returns(t: int, n: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """Returns with a common factor (so shrinkage has something to do) and a drift."""
    rng = np.random.default_rng(seed)
    loadings = rng.uniform(0.5, 1.5, n)
    factor = rng.standard_normal(t)
    noise = rng.standard_normal((t, n)) * rng.uniform(0.5, 2.0, n)
    return scale * (np.outer(factor, loadings) + noise) + 0.1 * scale


def prices_from(x: np.ndarray, start: str = "2000-01-03") -> pd.DataFrame:
    """Price table whose pct_change gives back ``x`` (first row = 100)."""
    growth = np.vstack([np.ones(x.shape[1]), np.cumprod(1.0 + x, axis=0)])
    index = pd.bdate_range(start, periods=growth.shape[0])
    return pd.DataFrame(100.0 * growth, index=index, columns=[f"A{i}" for i in range(x.shape[1])])


def returns_frame(x: np.ndarray, start: str = "2000-01-04") -> pd.DataFrame:
    index = pd.bdate_range(start, periods=x.shape[0])
    return pd.DataFrame(x, index=index, columns=[f"A{i}" for i in range(x.shape[1])])


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


# ------------------------------------------------------------------ shrinkage vs references
@pytest.mark.parametrize(("t", "n"), SHAPES)
def test_ledoit_wolf_matches_sklearn(t: int, n: int) -> None:
    from sklearn.covariance import LedoitWolf

    x = factor_returns(t, n, seed=t + n)
    cov, shrinkage = ledoit_wolf(x)
    ref = LedoitWolf().fit(x)
    np.testing.assert_allclose(cov, ref.covariance_, rtol=0, atol=1e-10)
    assert abs(shrinkage - ref.shrinkage_) <= 1e-10
    assert 0.0 <= shrinkage <= 1.0


@pytest.mark.parametrize(("t", "n"), SHAPES)
def test_oas_matches_sklearn(t: int, n: int) -> None:
    from sklearn.covariance import OAS

    x = factor_returns(t, n, seed=7 * t + n)
    cov, shrinkage = oas(x)
    ref = OAS().fit(x)
    np.testing.assert_allclose(cov, ref.covariance_, rtol=0, atol=1e-10)
    assert abs(shrinkage - ref.shrinkage_) <= 1e-10


def test_ledoit_wolf_at_daily_scale_matches_sklearn_relatively() -> None:
    from sklearn.covariance import LedoitWolf

    x = factor_returns(2520, 60, seed=3, scale=0.01)
    cov, shrinkage = ledoit_wolf(x)
    ref = LedoitWolf().fit(x)
    assert max_rel(cov, ref.covariance_) < 1e-10
    assert abs(shrinkage - ref.shrinkage_) < 1e-10


@pytest.mark.parametrize(("t", "n", "seed"), [(300, 8, 1), (60, 30, 2), (1000, 50, 3)])
def test_constant_correlation_matches_pypfopt(t: int, n: int, seed: int) -> None:
    from pypfopt.risk_models import CovarianceShrinkage

    x = factor_returns(t, n, seed=seed, scale=0.01)
    cov, shrinkage = ledoit_wolf_constant_correlation(x)
    prices = prices_from(x)

    # PyPortfolioOpt takes prices and multiplies by frequency=252. Its S is 1/(T-1)
    # normalised while its other moments are 1/T; with S set to the 1/T sample
    # covariance it computes exactly the Ledoit-Wolf (2003) estimator implemented here.
    ref = CovarianceShrinkage(prices, frequency=252)
    xc = x - x.mean(axis=0)
    ref.S = xc.T @ xc / t
    ref_cov, ref_delta = ref._ledoit_wolf_constant_correlation()
    assert max_rel(cov, ref_cov) < 1e-8
    assert abs(shrinkage - ref_delta) < 1e-8

    # Stock PyPortfolioOpt (annualised by 252) differs by its 1/(T-1) normalisation only.
    stock = CovarianceShrinkage(prices, frequency=252)
    stock_cov = stock.ledoit_wolf(shrinkage_target="constant_correlation").to_numpy() / 252
    assert max_rel(cov * t / (t - 1), stock_cov) < 5.0 / t
    assert abs(shrinkage - stock.delta) < 5.0 / t


def test_constant_correlation_keeps_sample_variances_and_target() -> None:
    x = factor_returns(250, 6, seed=11)
    cov, delta = ledoit_wolf_constant_correlation(x)
    s = np.cov(x, rowvar=False, bias=True)
    np.testing.assert_allclose(np.diag(cov), np.diag(s), rtol=1e-12)
    sd = np.sqrt(np.diag(s))
    corr = s / np.outer(sd, sd)
    r_bar = (corr.sum() - 6) / 30
    target = r_bar * np.outer(sd, sd)
    np.fill_diagonal(target, np.diag(s))
    np.testing.assert_allclose(cov, delta * target + (1 - delta) * s, rtol=1e-12)
    assert 0 < delta < 1


def test_sample_covariance_matches_numpy_and_pypfopt() -> None:
    from pypfopt.risk_models import sample_cov

    x = factor_returns(400, 7, seed=5, scale=0.01)
    cov = sample_covariance(x)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-12)
    ref = sample_cov(prices_from(x), frequency=252).to_numpy() / 252
    assert max_rel(cov, ref) < 1e-10
    np.testing.assert_allclose(sample_covariance(x, demean=False), x.T @ x / 400, rtol=1e-12)


def test_one_gram_product_is_the_only_quadratic_work() -> None:
    """ledoit_wolf(X) equals the closed form written with explicit (n x n) moment matrices."""
    x = factor_returns(80, 12, seed=9)
    t, n = x.shape
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / t
    mu = np.trace(s) / n
    x2 = xc**2
    beta = ((x2.T @ x2).sum() / t - (s**2).sum()) / (n * t)
    delta = ((s - mu * np.eye(n)) ** 2).sum() / n
    shrink = min(beta, delta) / delta
    cov, got = ledoit_wolf(x)
    assert got == pytest.approx(shrink, abs=1e-12)
    np.testing.assert_allclose(cov, (1 - shrink) * s + shrink * mu * np.eye(n), atol=1e-12)


# ------------------------------------------------------------------------------ EWMA
def test_ewma_matches_hand_loop() -> None:
    x = factor_returns(120, 4, seed=21)
    halflife = 15.0
    lam = 0.5 ** (1 / halflife)
    t = x.shape[0]
    raw = [lam ** (t - 1 - k) for k in range(t)]
    total = sum(raw)
    w = [r / total for r in raw]
    mean = [sum(w[k] * x[k, j] for k in range(t)) for j in range(4)]
    cov = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            acc = 0.0
            for k in range(t):
                acc += w[k] * (x[k, i] - mean[i]) * (x[k, j] - mean[j])
            cov[i, j] = acc / (1 - sum(v * v for v in w))
    np.testing.assert_allclose(ewma_weights(t, halflife), w, rtol=1e-12)
    np.testing.assert_allclose(ewma_mean(x, halflife), mean, rtol=1e-12)
    np.testing.assert_allclose(ewma_covariance(x, halflife), cov, rtol=1e-12)
    zero_mean = sum(w[k] * np.outer(x[k], x[k]) for k in range(t))
    np.testing.assert_allclose(ewma_covariance(x, halflife, demean=False), zero_mean, rtol=1e-12)


def test_ewma_matches_pandas_and_limits() -> None:
    x = factor_returns(300, 5, seed=4, scale=0.01)
    frame = pd.DataFrame(x)
    ref = frame.ewm(halflife=30).cov(bias=False).loc[299].to_numpy()
    assert max_rel(ewma_covariance(x, 30), ref) < 1e-10
    # An infinite half-life is the sample covariance.
    np.testing.assert_allclose(ewma_covariance(x, np.inf), np.cov(x, rowvar=False), rtol=1e-10)
    with pytest.raises(ValidationError):
        ewma_covariance(x, 0.0)


def test_ewma_mean_handles_ragged_columns_like_pandas() -> None:
    x = factor_returns(200, 4, seed=8)
    x[:120, 1] = np.nan
    x[50:60, 2] = np.nan
    x[180:, 3] = np.nan
    ref = pd.DataFrame(x).ewm(halflife=25).mean().iloc[-1].to_numpy()
    np.testing.assert_allclose(ewma_mean(x, 25), ref, rtol=1e-12)


# ----------------------------------------------------------------------- ragged histories
def ragged_frame(seed: int = 0) -> pd.DataFrame:
    x = factor_returns(400, 6, seed=seed, scale=0.01)
    x[:250, 1] = np.nan  # late start
    x[:100, 2] = np.nan
    x[330:, 3] = np.nan  # early end
    x[200:220, 4] = np.nan  # gap
    return returns_frame(x)


def test_pairwise_covariance_is_pandas_cov_then_psd() -> None:
    frame = ragged_frame()
    raw = pairwise_covariance(frame, repair=False)
    np.testing.assert_allclose(raw.to_numpy(), frame.cov().to_numpy(), rtol=1e-10, atol=1e-16)
    repaired = pairwise_covariance(frame)
    assert is_psd(repaired.to_numpy())
    np.testing.assert_allclose(np.diag(repaired), np.diag(frame.cov()), rtol=1e-10)
    assert list(repaired.index) == list(frame.columns)


def test_pairwise_covariance_weighted_equals_ewma_on_complete_data() -> None:
    x = factor_returns(150, 3, seed=2)
    got = pairwise_covariance(pd.DataFrame(x), halflife=20, repair=False).to_numpy()
    np.testing.assert_allclose(got, ewma_covariance(x, 20), rtol=1e-10)


def test_pairwise_covariance_refuses_pairs_without_overlap() -> None:
    x = factor_returns(100, 2, seed=1)
    x[:60, 0] = np.nan
    x[50:, 1] = np.nan
    with pytest.raises(DataError, match="A0/A1"):
        pairwise_covariance(returns_frame(x), min_periods=5)


# ------------------------------------------------------------------------------ PSD repair
def indefinite_covariance() -> np.ndarray:
    vol = np.array([0.15, 0.20, 0.10, 0.25])
    corr = np.array(
        [
            [1.0, 0.9, 0.7, -0.6],
            [0.9, 1.0, -0.4, 0.8],
            [0.7, -0.4, 1.0, 0.3],
            [-0.6, 0.8, 0.3, 1.0],
        ]
    )
    return corr * np.outer(vol, vol)


def test_nearest_psd_repairs_indefinite_matrix_keeping_variances() -> None:
    cov = indefinite_covariance()
    assert np.linalg.eigvalsh(cov)[0] < -1e-3
    assert not is_psd(cov)
    for method in ("clip", "higham"):
        repaired, changed = nearest_psd(cov, method=method)
        assert changed
        assert is_psd(repaired)
        np.testing.assert_allclose(repaired, repaired.T, atol=0)
        np.testing.assert_allclose(np.diag(repaired), np.diag(cov), rtol=1e-10)


def test_nearest_psd_plain_clip_matches_pypfopt_spectral_fix() -> None:
    from pypfopt.risk_models import fix_nonpositive_semidefinite

    cov = indefinite_covariance()
    repaired, changed = nearest_psd(cov, keep_diagonal=False)
    with pytest.warns(UserWarning):
        ref = fix_nonpositive_semidefinite(cov)
    assert changed
    np.testing.assert_allclose(repaired, ref, atol=1e-14)


def test_nearest_psd_honours_an_eigenvalue_floor_and_leaves_psd_input_alone() -> None:
    cov = indefinite_covariance()
    floor = 1e-4
    repaired, changed = nearest_psd(cov, min_eigenvalue=floor)
    assert changed
    assert np.linalg.eigvalsh(repaired)[0] >= floor * (1 - 1e-8)
    good = sample_covariance(factor_returns(100, 5, seed=1))
    same, changed = nearest_psd(good)
    assert not changed
    np.testing.assert_array_equal(same, good)
    asym = good.copy()
    asym[0, 1] += 1e-3
    fixed, changed = nearest_psd(asym)
    assert changed and np.array_equal(fixed, fixed.T)


def test_nearest_correlation_reproduces_highams_example() -> None:
    # N. J. Higham (2002), section 4: the nearest correlation matrix of this matrix.
    a = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    expected = np.array([[1.0, 0.7607, 0.1573], [0.7607, 1.0, 0.7607], [0.1573, 0.7607, 1.0]])
    got = nearest_correlation(a)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert is_psd(got)
    np.testing.assert_allclose(np.diag(got), 1.0)


def test_is_psd() -> None:
    assert is_psd(np.eye(3))
    assert is_psd(np.zeros((2, 2)))
    assert is_psd(np.ones((3, 3)))  # singular is PSD
    assert not is_psd(np.array([[1.0, 2.0], [2.0, 1.0]]))
    assert not is_psd(np.array([[1.0, 0.5], [0.0, 1.0]]))  # asymmetric
    assert not is_psd(np.array([[np.nan, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValidationError):
        is_psd(np.ones(3))


# --------------------------------------------------------------------------- properties
@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(2, 40), st.integers(1, 12)),
        elements=st.floats(-0.2, 0.2, allow_nan=False, allow_subnormal=False),
    )
)
def test_every_estimator_is_symmetric_psd(x: np.ndarray) -> None:
    estimates = [
        sample_covariance(x),
        ledoit_wolf(x)[0],
        oas(x)[0],
        ledoit_wolf_constant_correlation(x)[0],
        ewma_covariance(x, 5.0),
    ]
    for cov in estimates:
        assert cov.shape == (x.shape[1], x.shape[1])
        assert np.array_equal(cov, cov.T)
        assert is_psd(cov, tol=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 10_000),
    st.lists(st.integers(0, 30), min_size=4, max_size=4),
    st.lists(st.integers(0, 30), min_size=4, max_size=4),
)
def test_pairwise_covariance_of_random_ragged_data_is_psd(
    seed: int, starts: list[int], ends: list[int]
) -> None:
    x = np.random.default_rng(seed).standard_normal((70, 4)) * 0.01
    for j, (a, b) in enumerate(zip(starts, ends, strict=True)):
        x[:a, j] = np.nan
        if b:
            x[-b:, j] = np.nan
    cov = pairwise_covariance(pd.DataFrame(x), min_periods=2).to_numpy()
    assert np.array_equal(cov, cov.T)
    assert is_psd(cov, tol=1e-9)
    np.testing.assert_allclose(np.diag(cov), np.nanvar(x, axis=0, ddof=1), rtol=1e-9)


# ------------------------------------------------------------------ ReturnEstimator
@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    """Four years of complete daily returns of five funds."""
    return returns_frame(factor_returns(1008, 5, seed=42, scale=0.01) * 0.5)


@pytest.mark.parametrize(
    ("method", "func"),
    [
        ("sample", sample_covariance),
        ("ledoit_wolf", lambda x: ledoit_wolf(x)[0]),
        ("oas", lambda x: oas(x)[0]),
        ("constant_correlation", lambda x: ledoit_wolf_constant_correlation(x)[0]),
        ("ewma", lambda x: ewma_covariance(x, 252 * 1.5)),
    ],
)
def test_covariance_methods_are_the_pure_functions_annualised(
    daily: pd.DataFrame, method: str, func
) -> None:
    est = ReturnEstimator(daily, halflife_years=1.5)
    symbols = ["A3", "A0", "A4"]
    cov = est.estimate_covariance_matrix(symbols, method=method)
    expected = func(daily[symbols].to_numpy()) * 252
    np.testing.assert_allclose(cov.to_numpy(), expected, rtol=1e-12)
    assert list(cov.index) == symbols and list(cov.columns) == symbols
    assert est.covariance_ is cov
    assert est.repairs_ == []
    assert est.n_observations_.to_dict() == dict.fromkeys(symbols, 1008)


def test_covariance_and_means_agree_with_pypfopt_on_prices(daily: pd.DataFrame) -> None:
    from pypfopt import expected_returns as pexp
    from pypfopt.risk_models import CovarianceShrinkage, sample_cov

    prices = prices_from(daily.to_numpy())
    symbols = list(prices.columns)
    est = ReturnEstimator(prices=prices)
    cov = est.estimate_covariance_matrix(symbols, method="sample")
    assert max_rel(cov.to_numpy(), sample_cov(prices).to_numpy()) < 1e-10
    lw = est.estimate_covariance_matrix(symbols, method="ledoit_wolf")
    assert max_rel(lw.to_numpy(), CovarianceShrinkage(prices).ledoit_wolf().to_numpy()) < 1e-10

    mu = est.estimate_expected_returns(symbols, method="historical")
    ref = pexp.mean_historical_return(prices, compounding=False)
    np.testing.assert_allclose(mu.to_numpy(), ref.to_numpy(), rtol=1e-10)
    geo = ReturnEstimator(prices=prices, compounding=True).estimate_expected_returns(symbols)
    ref = pexp.mean_historical_return(prices, compounding=True)
    np.testing.assert_allclose(geo.to_numpy(), ref.to_numpy(), rtol=1e-10)

    # pypfopt's span s is pandas' alpha = 2 / (s + 1), i.e. a half-life of
    # ln 0.5 / ln(1 - alpha) periods.
    span = 180
    halflife = math.log(0.5) / math.log(1 - 2 / (span + 1))
    ewm = ReturnEstimator(prices=prices, halflife_years=halflife / 252)
    got = ewm.estimate_expected_returns(symbols, method="ewma")
    ref = pexp.ema_historical_return(prices, compounding=False, span=span)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-10)

    capm = est.estimate_expected_returns(symbols, method="capm")
    ref = pexp.capm_return(prices, compounding=False, risk_free_rate=0.02)
    np.testing.assert_allclose(capm.to_numpy(), ref.to_numpy(), rtol=1e-10)


def test_capm_with_market_weights_matches_hand_computation(daily: pd.DataFrame) -> None:
    weights = pd.Series({"A0": 3.0, "A1": 1.0, "A2": 0.0, "A4": 1.0})
    est = ReturnEstimator(daily, market_weights=weights, risk_free_rate=0.03)
    mu = est.estimate_expected_returns(["A2", "A3"], method="capm")
    x = daily.to_numpy()
    w = np.array([3.0, 1.0, 0.0, 0.0, 1.0]) / 5.0
    market = x @ w
    betas = [np.cov(x[:, j], market)[0, 1] / market.var(ddof=1) for j in (2, 3)]
    expected = 0.03 + np.array(betas) * (market.mean() * 252 - 0.03)
    np.testing.assert_allclose(mu.to_numpy(), expected, rtol=1e-10)


def test_equilibrium_returns_match_pypfopt_prior(daily: pd.DataFrame) -> None:
    from pypfopt.black_litterman import market_implied_prior_returns

    caps = pd.Series({"A0": 5.0, "A1": 2.0, "A2": 1.0, "A3": 2.0, "A4": 0.5, "SPY": 99.0})
    symbols = ["A0", "A1", "A2", "A3", "A4"]
    est = ReturnEstimator(daily, market_weights=caps, risk_aversion=3.0, risk_free_rate=0.01)
    mu = est.estimate_expected_returns(symbols, method="equilibrium")
    cov = ReturnEstimator(daily).estimate_covariance_matrix(symbols, method="ledoit_wolf")
    ref = market_implied_prior_returns(caps[symbols], 3.0, cov, risk_free_rate=0.01)
    np.testing.assert_allclose(mu.to_numpy(), ref.to_numpy(), rtol=1e-12)
    assert any("SPY" in r for r in est.repairs_)  # the extra weight was ignored, and said so
    with pytest.raises(ValidationError, match="A4"):
        ReturnEstimator(daily, market_weights=caps.drop("A4")).estimate_expected_returns(
            symbols, method="equilibrium"
        )


def test_user_returns_are_validated() -> None:
    est = ReturnEstimator()
    mu = est.estimate_expected_returns(
        ["SPY", "TLT"], "user", user_returns={"SPY": 0.07, "TLT": "4"}
    )
    assert mu.to_dict() == {"SPY": 0.07, "TLT": 4.0}
    with pytest.raises(ValidationError, match="TLT") as info:
        est.estimate_expected_returns(["SPY", "TLT"], "user", user_returns=pd.Series({"SPY": 0.07}))
    assert info.value.problems == ["missing expected return: TLT"]
    with pytest.raises(ValidationError, match="SPY"):
        est.estimate_expected_returns(["SPY"], "user", user_returns={"SPY": float("nan")})
    with pytest.raises(ValidationError):
        est.estimate_expected_returns(["SPY"], "user")
    with pytest.raises(ValidationError, match="Unknown expected-return method"):
        est.estimate_expected_returns(["SPY"], "magic")


def test_indefinite_ragged_covariance_is_repaired_and_reported() -> None:
    """A, B, C overlap pairwise only: corr(A,B) ~ 1, corr(B,C) ~ 1, corr(A,C) ~ -1."""
    rng = np.random.default_rng(5)
    k = 300
    base = rng.standard_normal(3 * k) * 0.01
    noise = rng.standard_normal((3 * k, 3)) * 0.001
    x = np.full((3 * k, 3), np.nan)
    x[:k, 0] = base[:k]
    x[:k, 1] = base[:k]
    x[k : 2 * k, 1] = base[k : 2 * k]
    x[k : 2 * k, 2] = base[k : 2 * k]
    x[2 * k :, 0] = base[2 * k :]
    x[2 * k :, 2] = -base[2 * k :]
    frame = pd.DataFrame(x + noise, columns=["A", "B", "C"])
    frame.iloc[np.isnan(x)] = np.nan
    raw = frame.cov().to_numpy()
    assert np.linalg.eigvalsh(raw)[0] < -1e-5
    est = ReturnEstimator(frame)
    cov = est.estimate_covariance_matrix(["A", "B", "C"], method="sample")
    assert is_psd(cov.to_numpy())
    np.testing.assert_allclose(np.diag(cov), np.diag(raw) * 252, rtol=1e-10)
    assert any("not positive semidefinite" in r for r in est.repairs_)
    assert any("ragged" in r for r in est.repairs_)
    # No date has all three: shrinkage cannot set its intensity, and says what to do.
    with pytest.raises(DataError, match="exposure_model"):
        est.estimate_covariance_matrix(["A", "B", "C"], method="ledoit_wolf")


def test_real_ragged_history_gives_psd_covariance(shared_data) -> None:
    prices = pd.read_csv(shared_data / "stock_prices_20.csv", index_col=0, parse_dates=True)
    returns = prices.pct_change(fill_method=None)
    symbols = list(returns.columns)
    est = ReturnEstimator(returns)
    for method in ("sample", "ledoit_wolf", "oas", "constant_correlation", "ewma"):
        cov = est.estimate_covariance_matrix(symbols, method=method)
        assert is_psd(cov.to_numpy()), method
        assert np.array_equal(cov.to_numpy(), cov.to_numpy().T)
        assert any("ragged" in r for r in est.repairs_)
    sample = est.estimate_covariance_matrix(symbols, method="sample")
    # Each variance uses the stock's whole history, each covariance the pair's overlap.
    np.testing.assert_allclose(np.diag(sample), returns.var().to_numpy() * 252, rtol=1e-9)
    assert est.n_observations_["BABA"] < est.n_observations_["AAPL"]
    recent = est.estimate_covariance_matrix(["AAPL", "BABA"], "sample", lookback_years=2)
    assert 480 <= est.n_observations_["AAPL"] <= 510
    assert is_psd(recent.to_numpy())


def test_lookback_trims_to_the_trailing_window(daily: pd.DataFrame) -> None:
    est = ReturnEstimator(daily)
    cov = est.estimate_covariance_matrix(["A0", "A1"], "sample", lookback_years=2)
    n = int(est.n_observations_["A0"])
    assert 500 <= n <= 525
    expected = daily[["A0", "A1"]].iloc[-n:].cov().to_numpy() * 252
    np.testing.assert_allclose(cov.to_numpy(), expected, rtol=1e-12)
    undated = ReturnEstimator(daily.reset_index(drop=True))
    undated.estimate_covariance_matrix(["A0"], "sample", lookback_years=1.5)
    assert undated.n_observations_["A0"] == 378
    with pytest.raises(ValidationError):
        est.estimate_covariance_matrix(["A0"], "sample", lookback_years=0)


def test_frequency_resamples_prices(daily: pd.DataFrame) -> None:
    from core.market_data import to_returns

    prices = prices_from(daily.to_numpy())
    est = ReturnEstimator(prices=prices)
    cov = est.estimate_covariance_matrix(["A0", "A1"], "sample", frequency="monthly")
    monthly = to_returns(prices, "monthly")[["A0", "A1"]]
    np.testing.assert_allclose(cov.to_numpy(), monthly.cov().to_numpy() * 12, rtol=1e-12)
    assert est.n_observations_["A0"] == len(monthly)
    with pytest.raises(ValidationError, match="prices"):
        ReturnEstimator(daily).estimate_covariance_matrix(["A0"], "sample", frequency="monthly")


def test_bad_data_raises_data_errors_naming_the_symbol(daily: pd.DataFrame) -> None:
    frame = daily.copy()
    frame["EMPTY"] = np.nan
    frame["SHORT"] = np.nan
    frame.iloc[-100:, frame.columns.get_loc("SHORT")] = 0.001 * np.arange(100)
    frame["INF"] = daily["A0"]
    frame.iloc[10, frame.columns.get_loc("INF")] = np.inf
    est = ReturnEstimator(frame)
    with pytest.raises(DataError, match="NOPE") as info:
        est.estimate_covariance_matrix(["A0", "NOPE"])
    assert info.value.column == "NOPE"
    with pytest.raises(DataError, match="EMPTY"):
        est.estimate_covariance_matrix(["A0", "EMPTY"])
    with pytest.raises(DataError, match="INF") as info:
        est.estimate_covariance_matrix(["INF"], "sample")
    assert info.value.column == "INF"
    with pytest.raises(DataError, match=r"SHORT \(100\).*exposure_model"):
        est.estimate_covariance_matrix(["A0", "SHORT"], "sample")
    with pytest.raises(DataError, match="SHORT"):
        est.estimate_expected_returns(["SHORT"], "historical")
    with pytest.raises(ValidationError, match="repeated"):
        est.estimate_covariance_matrix(["A0", "A0"])
    with pytest.raises(ValidationError, match="Unknown covariance method"):
        est.estimate_covariance_matrix(["A0"], "magic")
    with pytest.raises(ValidationError):
        ReturnEstimator(daily, prices=daily)
    with pytest.raises(ValidationError, match="frequency"):
        ReturnEstimator(daily, frequency="hourly")


def test_zero_variance_fund_is_flagged(daily: pd.DataFrame) -> None:
    frame = daily.copy()
    frame["FLAT"] = 0.0001
    est = ReturnEstimator(frame)
    cov = est.estimate_covariance_matrix(["A0", "FLAT"], "sample")
    assert is_psd(cov.to_numpy())
    assert cov.loc["FLAT", "FLAT"] == pytest.approx(0.0, abs=1e-20)
    assert any("FLAT" in r and "zero variance" in r for r in est.repairs_)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.lists(st.integers(0, 40), min_size=5, max_size=5),
    st.sampled_from(["sample", "ledoit_wolf", "oas", "constant_correlation", "ewma"]),
)
def test_estimator_covariance_of_random_ragged_data_is_psd(
    seed: int, starts: list[int], method: str
) -> None:
    x = np.random.default_rng(seed).standard_normal((90, 5)) * 0.03
    for j, start in enumerate(starts):
        x[:start, j] = np.nan
    frame = pd.DataFrame(x, index=pd.date_range("2010-01-31", periods=90, freq="ME"))
    frame.columns = [f"F{j}" for j in range(5)]
    est = ReturnEstimator(frame, frequency="monthly")
    cov = est.estimate_covariance_matrix(list(frame.columns), method=method).to_numpy()
    assert np.array_equal(cov, cov.T)
    assert is_psd(cov)


# ------------------------------------------------------------------------ exposure model
def test_exposure_model_covariance_is_e_sigma_e_plus_d() -> None:
    from core.assumptions import MarketAssumptions, default_idiosyncratic_vol
    from core.exposures import ExposureCalculator, FundExposureMap

    fund_map = FundExposureMap.default()
    assumptions = MarketAssumptions.default()
    symbols = ["RSSB", "NTSX", "SPY", "TLT", "UPRO"]
    est = ReturnEstimator(fund_map=fund_map, assumptions=assumptions)
    cov = est.estimate_covariance_matrix(symbols, method="exposure_model")

    calc = ExposureCalculator(fund_map, symbols)
    e = calc.matrix
    vol = assumptions.volatilities[calc.exposure_types].to_numpy()
    corr = assumptions.correlation.loc[calc.exposure_types, calc.exposure_types].to_numpy()
    sigma_x = corr * np.outer(vol, vol)
    d = np.diag([default_idiosyncratic_vol(fund_map[s]) ** 2 for s in symbols])
    np.testing.assert_allclose(cov.to_numpy(), e.T @ sigma_x @ e + d, rtol=1e-12)
    assert is_psd(cov.to_numpy())
    assert any("default" in r for r in est.repairs_)

    mu = est.estimate_expected_returns(symbols, method="exposure_model")
    mu_x = assumptions.expected_excess_returns[calc.exposure_types].to_numpy()
    np.testing.assert_allclose(mu.to_numpy(), e.T @ mu_x - calc.annual_costs + 0.02, rtol=1e-12)
    with pytest.raises(ValidationError, match="NOTAFUND"):
        est.estimate_covariance_matrix(["SPY", "NOTAFUND"], method="exposure_model")


def test_exposure_model_measures_idiosyncratic_risk_from_history() -> None:
    """NTSX = 0.9 VTI + 0.6 IEF - 0.5 BIL + noise: D is the noise variance, measured."""
    from core.assumptions import MarketAssumptions
    from core.exposures import FundExposureMap

    rng = np.random.default_rng(9)
    t = 600
    index = pd.bdate_range("2021-01-04", periods=t)
    vti = rng.standard_normal(t) * 0.011
    ief = rng.standard_normal(t) * 0.004
    bil = 0.0002 + rng.standard_normal(t) * 1e-5
    noise = rng.standard_normal(t) * 0.002
    ntsx = 0.9 * vti + 0.6 * ief - 0.5 * bil + noise
    frame = pd.DataFrame({"VTI": vti, "IEF": ief, "BIL": bil, "NTSX": ntsx}, index=index)
    frame.loc[index[:100], "NTSX"] = np.nan  # NTSX starts later than its proxies
    fund_map = FundExposureMap.default()
    assumptions = MarketAssumptions.default()
    est = ReturnEstimator(frame, fund_map=fund_map, assumptions=assumptions)
    cov = est.estimate_covariance_matrix(["NTSX", "RSST"], method="exposure_model")

    measured = est.idiosyncratic_vol_
    expected = math.sqrt(np.var(noise[100:], ddof=1) * 252)
    assert measured["NTSX"] == pytest.approx(expected, rel=1e-9)
    assert np.isnan(measured["RSST"])  # no history: the default, and repairs_ says so
    assert any("RSST" in r for r in est.repairs_)
    ref = assumptions.fund_covariance(
        fund_map, ["NTSX", "RSST"], idiosyncratic_vol={"NTSX": expected}
    )
    np.testing.assert_allclose(cov.to_numpy(), ref.to_numpy(), rtol=1e-9)
    assert est.n_observations_.to_dict() == {"NTSX": 500, "RSST": 0}


def test_core_estimators_import_no_reference_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, core.optimization.estimators, core.linalg\n"
        "bad = [m for m in ('sklearn', 'pypfopt', 'cvxpy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
