"""Hierarchical risk parity: PyPortfolioOpt's HRPOpt as reference, hand checks, bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.cluster.hierarchy as sch
from hypothesis import given, settings
from hypothesis import strategies as st
from pypfopt import HRPOpt
from scipy.spatial.distance import squareform

from core.errors import InfeasibleError, ValidationError
from core.optimization.hierarchical import (
    apply_weight_bounds,
    correlation_distance,
    hrp_weights,
)


def simulated_returns(n: int, t: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(n, 3))
    x = rng.normal(size=(t, 3)) @ loadings.T * 0.01
    x += rng.normal(size=(t, n)) * 0.01 * rng.uniform(0.5, 2.0, n)
    return pd.DataFrame(x, columns=[f"A{i:03d}" for i in range(n)])


def pypfopt_hrp(returns: pd.DataFrame, linkage_method: str) -> np.ndarray:
    weights = HRPOpt(returns=returns).optimize(linkage_method=linkage_method)
    return np.array([weights[c] for c in returns.columns])


def naive_hrp(cov: np.ndarray, corr: np.ndarray, method: str) -> np.ndarray:
    """Plain recursive reference written from the paper (independent of the vectorisation)."""
    link = sch.linkage(squareform(correlation_distance(corr), checks=False), method)
    order = list(sch.to_tree(link).pre_order())
    w = np.ones(cov.shape[0])

    def cluster_var(items: list[int]) -> float:
        sub = cov[np.ix_(items, items)]
        ivp = 1 / np.diag(sub)
        ivp /= ivp.sum()
        return float(ivp @ sub @ ivp)

    stack = [order]
    while stack:
        items = stack.pop()
        if len(items) < 2:
            continue
        left, right = items[: len(items) // 2], items[len(items) // 2 :]
        v1, v2 = cluster_var(left), cluster_var(right)
        alpha = 1 - v1 / (v1 + v2)
        w[left] *= alpha
        w[right] *= 1 - alpha
        stack += [left, right]
    return w


@pytest.mark.parametrize("n", [3, 10, 33, 80])
@pytest.mark.parametrize("method", ["single", "average", "complete", "ward"])
def test_matches_pypfopt(n, method):
    rets = simulated_returns(n, seed=n)
    ref = pypfopt_hrp(rets, method)
    w = hrp_weights(rets.cov().to_numpy(), corr=rets.corr().to_numpy(), linkage_method=method)
    np.testing.assert_allclose(w, ref, rtol=0, atol=1e-8)


def test_matches_pypfopt_on_real_etf_returns(shared_data):
    prices = pd.read_csv(shared_data / "etf_daily_adjclose.csv.gz", index_col=0, parse_dates=True)
    tickers = ["SPY", "EFA", "EEM", "IEF", "TLT", "GLD", "DBC", "VNQ", "LQD", "HYG"]
    tickers = [t for t in tickers if t in prices.columns]
    rets = prices[tickers].loc["2010":"2019"].pct_change(fill_method=None).dropna()
    ref = pypfopt_hrp(rets, "single")
    w = hrp_weights(rets.cov().to_numpy(), corr=rets.corr().to_numpy())
    np.testing.assert_allclose(w, ref, rtol=0, atol=1e-8)


def test_n1000_matches_the_plain_recursion():
    rets = simulated_returns(1000, t=300, seed=4)
    cov, corr = rets.cov().to_numpy(), rets.corr().to_numpy()
    np.testing.assert_allclose(
        hrp_weights(cov, corr=corr), naive_hrp(cov, corr, "single"), atol=1e-14
    )


def test_default_correlation_comes_from_the_covariance():
    rets = simulated_returns(25, seed=9)
    cov = rets.cov().to_numpy()
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(
        hrp_weights(cov), hrp_weights(cov, corr=cov / np.outer(sd, sd)), atol=1e-15
    )


def test_two_assets_inverse_variance():
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    np.testing.assert_allclose(hrp_weights(cov), np.array([0.09, 0.04]) / 0.13)


def test_two_uncorrelated_blocks_by_hand():
    # Blocks {0,1} and {2,3}; within a block correlation 0.8, across 0.
    vols = np.array([0.1, 0.2, 0.15, 0.3])
    corr = np.eye(4)
    corr[0, 1] = corr[1, 0] = corr[2, 3] = corr[3, 2] = 0.8
    cov = corr * np.outer(vols, vols)
    w = hrp_weights(cov)

    def ivp_var(items):
        sub = cov[np.ix_(items, items)]
        u = 1 / np.diag(sub)
        u /= u.sum()
        return u @ sub @ u

    v_a, v_b = ivp_var([0, 1]), ivp_var([2, 3])
    a = v_b / (v_a + v_b)  # weight of block {0,1}
    var = vols**2
    expected = np.array(
        [
            a * var[1] / (var[0] + var[1]),
            a * var[0] / (var[0] + var[1]),
            (1 - a) * var[3] / (var[2] + var[3]),
            (1 - a) * var[2] / (var[2] + var[3]),
        ]
    )
    np.testing.assert_allclose(w, expected, rtol=1e-13)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), seed=st.integers(0, 2**32 - 1))
def test_weights_are_positive_and_sum_to_one(n, seed):
    rets = simulated_returns(n, t=120, seed=seed % 1000)
    w = hrp_weights(rets.cov().to_numpy())
    assert w.shape == (n,)
    assert np.all(w > 0)
    assert w.sum() == pytest.approx(1.0, abs=1e-13)


def test_single_asset():
    np.testing.assert_array_equal(hrp_weights(np.array([[0.04]])), [1.0])


# ----------------------------------------------------------------------- bounds
def test_bounds_clip_and_renormalise_proportionally():
    rets = simulated_returns(12, seed=2)
    cov = rets.cov().to_numpy()
    raw = hrp_weights(cov)
    w = hrp_weights(cov, min_weight=0.05, max_weight=0.12)
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    assert np.all(w >= 0.05 - 1e-15) and np.all(w <= 0.12 + 1e-15)
    free = (w > 0.05 + 1e-12) & (w < 0.12 - 1e-12)
    assert free.sum() >= 2
    ratios = w[free] / raw[free]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-12)


def test_bounds_that_already_hold_change_nothing():
    w = np.array([0.2, 0.3, 0.5])
    np.testing.assert_array_equal(apply_weight_bounds(w, 0.1, 0.6), w)


def test_per_asset_bounds():
    w = apply_weight_bounds(np.array([0.7, 0.2, 0.1]), [0.0, 0.0, 0.2], [0.5, 1.0, 1.0])
    np.testing.assert_allclose(w, [0.5, 0.3, 0.2])


@pytest.mark.parametrize(("lo", "hi", "name"), [(0.4, 1.0, "min_weight"), (0.0, 0.3, "max_weight")])
def test_infeasible_bounds(lo, hi, name):
    with pytest.raises(InfeasibleError) as info:
        apply_weight_bounds(np.array([0.2, 0.3, 0.5]), lo, hi)
    assert info.value.conflicts == [name]


# ----------------------------------------------------------------------- errors
def test_zero_variance_asset_is_named():
    cov = np.diag([0.04, 0.0, 0.09])
    with pytest.raises(ValidationError, match="'BIL'"):
        hrp_weights(cov, names=["SPY", "BIL", "GLD"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cov": np.ones((2, 3))}, "square"),
        ({"cov": np.array([[1.0, np.nan], [np.nan, 1.0]])}, "NaN"),
        ({"cov": np.eye(3), "linkage_method": "nearest"}, "linkage_method"),
        ({"cov": np.eye(3), "corr": np.eye(2)}, "corr has shape"),
        ({"cov": np.eye(3), "names": ["A"]}, "names"),
    ],
)
def test_bad_inputs(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        hrp_weights(**kwargs)
