"""Black-Litterman: PyPortfolioOpt as reference, hand checks, confidences, exposure views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pypfopt.black_litterman import BlackLittermanModel, market_implied_prior_returns

from core.errors import ValidationError
from core.optimization.black_litterman import (
    black_litterman_posterior,
    idzorek_omega,
    implied_equilibrium_returns,
    views_to_matrices,
)
from core.optimization.constraints import MarketView


def random_cov(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n))
    return a @ a.T / n * 0.04 + np.diag(rng.uniform(0.005, 0.02, n))


@pytest.fixture
def setup():
    n = 8
    cov = random_cov(n, 0)
    caps = np.random.default_rng(1).uniform(1, 5, n)
    pi = implied_equilibrium_returns(cov, caps, 2.5)
    p = np.zeros((3, n))
    p[0, 1] = 1
    p[1, 2], p[1, 3] = 1, -1
    p[2, [4, 5]] = 0.5
    q = np.array([0.05, 0.02, -0.01])
    return cov, caps, pi, p, q


# ------------------------------------------------------------------ vs PyPortfolioOpt
def test_implied_returns_match_pypfopt():
    cov = random_cov(6, 3)
    caps = np.array([3.0, 1.0, 2.0, 5.0, 0.5, 1.5])
    for rf in (0.0, 0.02):
        ref = market_implied_prior_returns(pd.Series(caps), 2.5, pd.DataFrame(cov), rf)
        got = implied_equilibrium_returns(cov, caps, 2.5, rf)
        np.testing.assert_allclose(got, ref.to_numpy(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("tau", [0.05, 1 / 2520])
@pytest.mark.parametrize("confidences", [None, [0.3, 0.8, 1.0], [0.5, 0.5, 0.5], [0.01, 0.99, 0.6]])
def test_posterior_matches_pypfopt(setup, tau, confidences):
    cov, _, pi, p, q = setup
    if confidences is None:
        bl = BlackLittermanModel(cov, pi=pi, P=p, Q=q, tau=tau)
    else:
        bl = BlackLittermanModel(
            cov, pi=pi, P=p, Q=q, tau=tau, omega="idzorek", view_confidences=confidences
        )
    post = black_litterman_posterior(
        pi, cov, p, q, confidences=None if confidences is None else np.array(confidences), tau=tau
    )
    np.testing.assert_allclose(post.mean, bl.bl_returns().to_numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(post.cov, bl.bl_cov().to_numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(post.omega, bl.omega, rtol=1e-12, atol=0)


def test_explicit_omega_matches_pypfopt(setup):
    cov, _, pi, p, q = setup
    omega = np.array([[1e-3, 2e-4, 0.0], [2e-4, 2e-3, 0.0], [0.0, 0.0, 5e-4]])
    bl = BlackLittermanModel(cov, pi=pi, P=p, Q=q, tau=0.05, omega=omega)
    post = black_litterman_posterior(pi, cov, p, q, omega=omega)
    np.testing.assert_allclose(post.mean, bl.bl_returns().to_numpy(), atol=1e-8)
    np.testing.assert_allclose(post.cov, bl.bl_cov().to_numpy(), atol=1e-8)


# ------------------------------------------------------------------------ by hand
def test_one_asset_one_view_by_hand():
    sigma2, pi, q, tau, omega = 0.04, 0.06, 0.10, 0.05, 0.001
    post = black_litterman_posterior(
        np.array([pi]), np.array([[sigma2]]), np.array([[1.0]]), np.array([q]),
        omega=np.array([[omega]]), tau=tau,
    )  # fmt: skip
    shrink = tau * sigma2 / (tau * sigma2 + omega)
    assert post.mean[0] == pytest.approx(pi + shrink * (q - pi), rel=1e-14)
    expected_cov = sigma2 + tau * sigma2 - (tau * sigma2) ** 2 / (tau * sigma2 + omega)
    assert post.cov[0, 0] == pytest.approx(expected_cov, rel=1e-14)


def test_no_views_gives_prior(setup):
    cov, _, pi, _, _ = setup
    post = black_litterman_posterior(pi, cov, np.zeros((0, 8)), np.zeros(0), tau=0.05)
    np.testing.assert_array_equal(post.mean, pi)
    np.testing.assert_allclose(post.cov, 1.05 * cov)
    assert post.omega.shape == (0, 0)


# ------------------------------------------------------------------- confidences
def test_full_confidence_satisfies_every_view(setup):
    cov, _, pi, p, q = setup
    post = black_litterman_posterior(pi, cov, p, q, confidences=np.ones(3))
    np.testing.assert_allclose(p @ post.mean, q, atol=1e-14)
    np.testing.assert_array_equal(np.diag(post.omega), 0.0)


def test_zero_confidence_ignores_the_view(setup):
    cov, _, pi, p, q = setup
    post = black_litterman_posterior(pi, cov, p, q, confidences=np.zeros(3), tau=0.05)
    np.testing.assert_array_equal(post.mean, pi)
    np.testing.assert_allclose(post.cov, 1.05 * cov)
    assert np.all(np.isinf(np.diag(post.omega)))
    # One view at 0%: same as leaving it out.
    mixed = black_litterman_posterior(pi, cov, p, q, confidences=np.array([0.7, 0.0, 0.4]))
    keep = [0, 2]
    without = black_litterman_posterior(pi, cov, p[keep], q[keep], confidences=np.array([0.7, 0.4]))
    np.testing.assert_allclose(mixed.mean, without.mean, atol=1e-15)
    np.testing.assert_allclose(mixed.cov, without.cov, atol=1e-15)


@pytest.mark.parametrize("confidence", [0.1, 0.35, 0.5, 0.9])
def test_idzorek_tilt_equals_the_confidence(setup, confidence):
    # Idzorek's definition: the unconstrained weights move by `confidence` of the way from
    # the market weights to the 100%-confidence weights.
    cov, caps, pi, p, q = setup
    delta = 2.5
    w_mkt = caps / caps.sum()
    for j in range(3):
        pj, qj = p[j : j + 1], q[j : j + 1]
        full = black_litterman_posterior(pi, cov, pj, qj, confidences=np.ones(1)).mean
        part = black_litterman_posterior(pi, cov, pj, qj, confidences=np.array([confidence])).mean
        w_full = np.linalg.solve(delta * cov, full)
        w_part = np.linalg.solve(delta * cov, part)
        np.testing.assert_allclose(np.linalg.solve(delta * cov, pi), w_mkt, atol=1e-13)
        tilt = w_part - w_mkt
        np.testing.assert_allclose(tilt, confidence * (w_full - w_mkt), atol=1e-12)


def test_confidence_moves_the_posterior_monotonically(setup):
    cov, _, pi, p, q = setup
    gaps = [
        abs(float(p[0] @ black_litterman_posterior(pi, cov, p[:1], q[:1], confidences=np.array([c])).mean) - q[0])
        for c in (0.1, 0.4, 0.7, 0.95)
    ]  # fmt: skip
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False))


def test_idzorek_omega_formula():
    cov = random_cov(3, 5)
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
    om = idzorek_omega(np.array([0.25, 1.0]), cov, p, tau=0.1)
    assert om[0, 0] == pytest.approx(3.0 * 0.1 * cov[0, 0])
    assert om[1, 1] == 0.0 and om[0, 1] == 0.0


# ----------------------------------------------------------------- views -> P, Q
SYMBOLS = ["RSSB", "SPY", "GLD"]
CODES = ["US_EQUITY", "UST_10Y", "GOLD"]
# RSSB (simplified): 100% equity + 100% Treasuries; SPY: 100% equity; GLD: 100% gold.
E = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
COSTS = np.array([0.0036, 0.0009, 0.0040])
# Exposure covariance: equity/Treasury correlation -0.3, gold independent of both.
VOL_X = np.array([0.16, 0.07, 0.15])
CORR_X = np.array([[1.0, -0.3, 0.0], [-0.3, 1.0, 0.0], [0.0, 0.0, 1.0]])
COV_X = CORR_X * np.outer(VOL_X, VOL_X)
PI_X = np.array([0.05, 0.01, 0.02])


def test_absolute_and_relative_fund_views():
    views = [
        MarketView(["spy"], "absolute", 0.06, 0.5),
        MarketView(["RSSB", "GLD"], "absolute", 0.04, 0.5),
        MarketView(["GLD", "SPY"], "relative", 0.01, 0.5),
    ]
    p, q = views_to_matrices(views, SYMBOLS)
    np.testing.assert_array_equal(p, [[0, 1, 0], [0.5, 0, 0.5], [0, -1, 1]])
    np.testing.assert_array_equal(q, [0.06, 0.04, 0.01])


def test_relative_view_with_full_confidence_holds_exactly():
    cov = random_cov(4, 8)
    pi = implied_equilibrium_returns(cov, np.ones(4))
    views = [MarketView(["B", "D"], "relative", 0.03, 1.0)]
    p, q = views_to_matrices(views, ["A", "B", "C", "D"])
    post = black_litterman_posterior(pi, cov, p, q, confidences=np.array([1.0]))
    assert post.mean[1] - post.mean[3] == pytest.approx(0.03, abs=1e-14)
    half = black_litterman_posterior(pi, cov, p, q, confidences=np.array([0.5]))
    # One view at confidence c moves the view portfolio's return c of the way to target.
    prior_gap = pi[1] - pi[3]
    assert half.mean[1] - half.mean[3] == pytest.approx(prior_gap + 0.5 * (0.03 - prior_gap))


def test_unknown_name_names_the_view_and_the_name():
    views = [MarketView(["SPY"], "absolute", 0.05), MarketView(["QQQ", "SPY"], "relative", 0.01)]
    with pytest.raises(ValidationError, match=r"view 2 \(QQQ vs SPY\).*'QQQ'"):
        views_to_matrices(views, SYMBOLS, E, CODES)


def test_same_name_twice_and_ambiguous_names():
    with pytest.raises(ValidationError, match="same asset twice"):
        views_to_matrices([MarketView(["SPY", "SPY"], "absolute", 0.05)], SYMBOLS)
    with pytest.raises(ValidationError, match="both a fund symbol and an exposure type"):
        views_to_matrices([MarketView(["GOLD"], "absolute", 0.05)], ["GOLD", "SPY"],
                          np.eye(2), ["GOLD", "US_EQUITY"])  # fmt: skip


def test_view_with_no_effect_is_refused():
    # At the exposure level SPY and a second pure-equity fund are the same view.
    e = np.array([[1.0, 1.0], [0.0, 0.0]])
    with pytest.raises(ValidationError, match="no effect"):
        views_to_matrices(
            [MarketView(["SPY", "VOO"], "relative", 0.0)], ["SPY", "VOO"], e, CODES[:2],
            level="exposure",
        )  # fmt: skip


def test_exposure_level_view_on_an_exposure_type():
    view = MarketView(["US_EQUITY"], "absolute", 0.08, 1.0)
    p, q = views_to_matrices([view], SYMBOLS, E, CODES, level="exposure", fund_costs=COSTS)
    np.testing.assert_array_equal(p, [[1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(q, [0.08])
    post = black_litterman_posterior(PI_X, COV_X, p, q, confidences=np.array([1.0]))
    assert post.mean[0] == pytest.approx(0.08, abs=1e-15)
    mu_f_prior = E.T @ PI_X - COSTS
    mu_f = E.T @ post.mean - COSTS
    d_eq, d_tsy = post.mean[0] - PI_X[0], post.mean[1] - PI_X[1]
    assert d_tsy < 0  # negatively correlated with equity: pulled down a little
    np.testing.assert_allclose(mu_f - mu_f_prior, [d_eq + d_tsy, d_eq, 0.0], atol=1e-15)
    assert mu_f[1] - mu_f_prior[1] == pytest.approx(0.03)  # SPY: the full equity move
    assert mu_f[2] == mu_f_prior[2]  # GLD untouched


def test_exposure_level_view_on_a_fund_includes_its_costs():
    view = MarketView(["RSSB"], "absolute", 0.07, 1.0)
    p, q = views_to_matrices([view], SYMBOLS, E, CODES, level="exposure", fund_costs=COSTS)
    np.testing.assert_array_equal(p, [E[:, 0]])
    assert q[0] == pytest.approx(0.07 + COSTS[0])
    post = black_litterman_posterior(PI_X, COV_X, p, q, confidences=np.array([1.0]))
    mu_f = E.T @ post.mean - COSTS
    assert mu_f[0] == pytest.approx(0.07, abs=1e-15)
    assert mu_f[2] == pytest.approx(PI_X[2] - COSTS[2], abs=1e-15)


def test_fund_level_view_on_an_exposure_type_uses_a_replicating_portfolio():
    idio = np.diag([0.01, 0.005, 0.02]) ** 2
    cov_f = E.T @ COV_X @ E + idio
    pi_f = E.T @ PI_X - COSTS
    view = MarketView(["US_EQUITY"], "absolute", 0.08, 0.6)
    p, q = views_to_matrices([view], SYMBOLS, E, CODES, level="fund", fund_costs=COSTS)
    # Only SPY isolates US equity: one unit of it is one unit of SPY, net of SPY's cost.
    np.testing.assert_allclose(p, [[0.0, 1.0, 0.0]], atol=1e-15)
    assert q[0] == pytest.approx(0.08 - COSTS[1])
    post = black_litterman_posterior(pi_f, cov_f, p, q, confidences=np.array([0.6]))
    moved = post.mean - pi_f
    assert moved[1] > 0 and moved[0] > 0  # SPY and RSSB both carry US equity
    assert moved[2] == 0.0  # GLD shares no risk with equity
    full = black_litterman_posterior(pi_f, cov_f, p, q, confidences=np.array([1.0]))
    assert full.mean[1] + COSTS[1] == pytest.approx(0.08, abs=1e-15)


def test_fund_level_view_on_an_exposure_the_funds_cannot_isolate():
    # RSSB alone mixes equity and Treasuries: no fund portfolio is pure US equity.
    e = E[:, [0, 2]]
    view = MarketView(["US_EQUITY"], "absolute", 0.08)
    with pytest.raises(ValidationError, match="exposure level"):
        views_to_matrices([view], ["RSSB", "GLD"], e, CODES)
    # At the exposure level the same view is fine.
    p, _ = views_to_matrices([view], ["RSSB", "GLD"], e, CODES, level="exposure")
    np.testing.assert_array_equal(p, [[1.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exposure_matrix": E}, "both"),
        ({"exposure_matrix": E[:2], "exposure_codes": CODES}, "shape"),
        ({"level": "exposure"}, "needs exposure_matrix"),
        ({"fund_costs": np.zeros(2)}, "fund_costs"),
    ],
)
def test_views_to_matrices_bad_inputs(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        views_to_matrices([MarketView(["SPY"], "absolute", 0.05)], SYMBOLS, **kwargs)


# ------------------------------------------------------------------------ errors
def test_dependent_certain_views_are_refused(setup):
    cov, _, pi, p, q = setup
    p2 = np.vstack([p[:1], p[:1]])
    with pytest.raises(ValidationError, match=r"views \(1, 2\)"):
        black_litterman_posterior(pi, cov, p2, np.array([0.05, 0.05]), confidences=np.ones(2))
    # With some doubt the same pair is a legitimate (if redundant) input.
    post = black_litterman_posterior(
        pi, cov, p2, np.array([0.05, 0.05]), confidences=np.array([0.5, 0.5])
    )
    assert np.all(np.isfinite(post.mean))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"confidences": np.ones(3), "omega": np.eye(3)}, "not both"),
        ({"confidences": np.array([0.5, 1.2, 0.5])}, "between 0 and 1"),
        ({"confidences": np.ones(2)}, "one per view"),
        ({"omega": np.eye(2)}, "3x3"),
        ({"omega": -np.eye(3)}, "non-negative"),
        ({"tau": 0.0}, "tau"),
        ({"P": np.ones((2, 4))}, "P must have shape"),
        ({"Q": np.ones(2)}, "Q must have 3"),
    ],
)
def test_posterior_bad_inputs(setup, kwargs, message):
    cov, _, pi, p, q = setup
    args = {"P": p, "Q": q, **kwargs}
    with pytest.raises(ValidationError, match=message):
        black_litterman_posterior(pi, cov, **args)


def test_implied_returns_bad_inputs():
    with pytest.raises(ValidationError, match="positive sum"):
        implied_equilibrium_returns(np.eye(2), np.array([1.0, -1.0]))
    with pytest.raises(ValidationError, match="risk aversion"):
        implied_equilibrium_returns(np.eye(2), np.ones(2), risk_aversion=0.0)
    with pytest.raises(ValidationError, match="shape"):
        implied_equilibrium_returns(np.eye(2), np.ones(3))


def test_mean_only_posterior_equals_full_posterior():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T / 6 + np.eye(6) * 0.01
    prior = rng.normal(0.05, 0.02, 6)
    P = rng.normal(size=(2, 6))
    Q = np.array([0.03, -0.01])
    full = black_litterman_posterior(prior, cov, P, Q, confidences=np.array([0.4, 0.8]))
    lean = black_litterman_posterior(
        prior, cov, P, Q, confidences=np.array([0.4, 0.8]), with_covariance=False
    )
    assert lean.cov is None
    np.testing.assert_allclose(lean.mean, full.mean, rtol=0, atol=1e-14)
