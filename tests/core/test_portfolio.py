"""Portfolio: holdings in shares plus cash, valuation, weights, exposures, serialisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import DataError, ValidationError
from core.exposures import FundDefinition, FundExposureMap
from core.portfolio import CASH_LABEL, Holding, Portfolio


def small_map() -> FundExposureMap:
    return FundExposureMap(
        [
            FundDefinition(
                "RSSB", "Return Stacked Global Stocks & Bonds",
                {"US_EQUITY": 60, "INTL_DEV": 30, "EM_EQUITY": 10, "UST_10Y": 100}, 0.36,
            ),
            FundDefinition("NTSX", "WisdomTree US Efficient Core", {"US_EQUITY": 90, "UST_10Y": 60}, 0.20),
            FundDefinition("SSO", "ProShares Ultra S&P500", {"US_EQUITY": 200}, 0.89, 0.5),
            FundDefinition("GLD", "SPDR Gold", {"GOLD": 100}, 0.40),
            FundDefinition("BIL", "T-bills", {"CASH_TBILL": 100}, 0.1356),
        ]
    )  # fmt: skip


def priced() -> Portfolio:
    # $50,000 RSSB + $30,000 NTSX + $10,000 GLD + $10,000 cash = $100,000
    return Portfolio(
        [
            Holding("rssb", 2000, price=25.0),
            Holding("NTSX", 600, price=50.0),
            Holding("GLD", 40, price=250.0),
        ],
        cash=10_000.0,
    )


def test_values_and_weights_are_fractions_of_total_value_including_cash():
    p = priced()
    assert p.symbols == ["RSSB", "NTSX", "GLD"]
    assert p.market_values().to_dict() == {"RSSB": 50_000.0, "NTSX": 30_000.0, "GLD": 10_000.0}
    assert p.total_value == pytest.approx(100_000.0)
    assert p.invested_value == pytest.approx(90_000.0)
    w = p.weights()
    assert w.to_dict() == pytest.approx({"RSSB": 0.5, "NTSX": 0.3, "GLD": 0.1})
    assert p.cash_weight == pytest.approx(0.1)
    wc = p.weights(include_cash=True)
    assert wc[CASH_LABEL] == pytest.approx(0.1)
    assert wc.sum() == pytest.approx(1.0)


def test_exposures_and_notional_by_hand():
    p, m = priced(), small_map()
    x = p.exposures(m)
    # RSSB 0.5 x (0.6 US, 0.3 INTL, 0.1 EM, 1.0 UST); NTSX 0.3 x (0.9 US, 0.6 UST); GLD 0.1
    assert x["US_EQUITY"] == pytest.approx(0.5 * 0.6 + 0.3 * 0.9)
    assert x["INTL_DEV"] == pytest.approx(0.15)
    assert x["EM_EQUITY"] == pytest.approx(0.05)
    assert x["UST_10Y"] == pytest.approx(0.5 + 0.18)
    assert x["GOLD"] == pytest.approx(0.1)
    # Cash is not an exposure: no CASH_TBILL row although 10% is cash.
    assert "CASH_TBILL" not in x.index
    assert p.total_notional(m) == pytest.approx(0.5 * 2.0 + 0.3 * 1.5 + 0.1 * 1.0)
    groups = p.exposures_by_group(m)
    assert groups["equity"] == pytest.approx(0.57 + 0.15 + 0.05)


def test_missing_price_is_named_when_values_are_asked_for():
    p = Portfolio([Holding("RSSB", 10, price=25.0), Holding("NTSX", 5), Holding("GLD", 3)])
    assert p.missing_prices() == ["NTSX", "GLD"]
    with pytest.raises(DataError, match="NTSX, GLD"):
        p.market_values()
    with pytest.raises(DataError, match="NTSX"):
        _ = p.total_value
    with pytest.raises(DataError, match="NTSX"):
        p.weights()
    # Pricing them fixes it; a price table may name symbols not held.
    q = p.with_prices({"ntsx": 50.0, "GLD": 250.0, "VTI": 300.0})
    assert q.total_value == pytest.approx(250 + 250 + 750)
    assert p.missing_prices() == ["NTSX", "GLD"]  # with_prices returns a copy


def test_zero_share_candidate_needs_no_price():
    p = Portfolio([Holding("RSSB", 10, price=25.0), Holding("SSO", 0)], cash=0.0)
    assert p.weights().to_dict() == {"RSSB": 1.0, "SSO": 0.0}


@pytest.mark.parametrize("bad", [0.0, -3.0, float("nan"), float("inf")])
def test_non_positive_or_non_finite_price_is_refused_naming_the_symbol(bad):
    with pytest.raises(ValidationError, match="RSSB"):
        Holding("RSSB", 10, price=bad)
    p = Portfolio([Holding("RSSB", 10)])
    with pytest.raises(ValidationError, match="RSSB") as err:
        p.with_prices({"RSSB": bad})
    assert err.value.field == "prices.RSSB"


def test_shorts_and_borrowing_only_when_allowed():
    with pytest.raises(ValidationError, match="short") as err:
        Portfolio([Holding("RSSB", 10, 25.0), Holding("SSO", -5, 60.0)])
    assert err.value.field == "holdings[1].shares"
    with pytest.raises(ValidationError, match="negative") as err:
        Portfolio([Holding("RSSB", 10, 25.0)], cash=-100.0)
    assert err.value.field == "cash"
    p = Portfolio(
        [Holding("RSSB", 10, 25.0), Holding("SSO", -1, 50.0)], cash=-50.0, allow_short=True
    )
    assert p.total_value == pytest.approx(250 - 50 - 50)
    assert p.weights()["SSO"] == pytest.approx(-50 / 150)
    q = Portfolio([Holding("RSSB", 10, 25.0)])
    with pytest.raises(ValidationError, match="short"):
        q.set_shares("RSSB", -1)
    assert q["RSSB"].shares == 10


def test_duplicate_symbols_are_refused_and_combine_merges_accounts():
    with pytest.raises(ValidationError, match="RSSB is already") as err:
        Portfolio([Holding("RSSB", 10), Holding("rssb", 5)])
    assert err.value.field == "holdings[1].symbol"
    p = Portfolio([Holding("RSSB", 10)])
    with pytest.raises(ValidationError, match="already"):
        p.add(Holding("RSSB", 1))
    merged = Portfolio.combine(
        [
            Holding("RSSB", 10, account="IRA"),
            Holding("GLD", 2, price=250.0, account="IRA"),
            Holding("RSSB", 5, price=25.0, account="Taxable", name="Return Stacked"),
        ],
        cash=5.0,
    )
    assert merged.symbols == ["RSSB", "GLD"]
    assert merged["RSSB"] == Holding("RSSB", 15, 25.0, "IRA + Taxable", "Return Stacked")
    with pytest.raises(ValidationError, match="different prices"):
        Portfolio.combine([Holding("GLD", 1, 250.0), Holding("GLD", 1, 251.0)])


def test_mutation_add_remove_set_shares():
    p = Portfolio()
    p.add(Holding("vti", 3, 300.0))
    p.add(Holding("BIL", 10, 91.0))
    p.set_shares("VTI", 4)
    assert p["vti"].shares == 4 and "VTI" in p and len(p) == 2
    removed = p.remove("BIL")
    assert removed.symbol == "BIL" and p.symbols == ["VTI"]
    with pytest.raises(KeyError):
        p.remove("BIL")
    with pytest.raises(KeyError):
        p.set_shares("SSO", 1)
    p.cash = 12.5
    assert p.total_value == pytest.approx(1212.5)
    with pytest.raises(ValidationError):
        p.cash = -1.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"symbol": "", "shares": 1}, "symbol"),
        ({"symbol": "CASH", "shares": 1}, "symbol"),
        ({"symbol": "RS SB", "shares": 1}, "symbol"),
        ({"symbol": 12, "shares": 1}, "symbol"),
        ({"symbol": "RSSB", "shares": "10"}, "shares"),
        ({"symbol": "RSSB", "shares": True}, "shares"),
        ({"symbol": "RSSB", "shares": float("nan")}, "shares"),
        ({"symbol": "RSSB", "shares": 1, "price": "25"}, "price"),
    ],
)
def test_holding_validation_names_the_field(kwargs, field):
    with pytest.raises(ValidationError) as err:
        Holding(**kwargs)
    assert err.value.field == field


def test_tickers_with_punctuation_and_currency():
    assert Holding(" brk.b ", 1).symbol == "BRK.B"
    assert Holding("^irx", 1).symbol == "^IRX"
    assert Portfolio(currency="eur").currency == "EUR"
    with pytest.raises(ValidationError) as err:
        Portfolio(currency="dollars")
    assert err.value.field == "currency"


def test_total_value_must_be_positive_for_weights():
    p = Portfolio([Holding("SSO", 0)], cash=0.0)
    with pytest.raises(ValidationError, match="total value"):
        p.weights()


def test_mapping_constructor_and_round_trip():
    p = Portfolio({"RSSB": 10, "GLD": 2.5}, cash=3.0, currency="USD")
    assert [(h.symbol, h.shares, h.price) for h in p] == [("RSSB", 10.0, None), ("GLD", 2.5, None)]
    q = priced()
    d = q.to_dict()
    assert d["holdings"][0] == {
        "symbol": "RSSB",
        "shares": 2000,
        "price": 25.0,
        "account": "",
        "name": "",
    }
    assert Portfolio.from_dict(d) == q
    assert Portfolio.from_dict(p.to_dict()) == p
    assert Portfolio.from_dict(d) != p


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(holdings="RSSB"), "holdings"),
        (lambda d: d["holdings"].__setitem__(1, ["NTSX", 3]), "holdings[1]"),
        (lambda d: d["holdings"][2].pop("shares"), "holdings[2].shares"),
        (lambda d: d["holdings"][2].__setitem__("shares", "ten"), "holdings[2].shares"),
        (lambda d: d["holdings"][0].__setitem__("price", -1), "holdings[0].price"),
        (lambda d: d["holdings"][1].__setitem__("sharez", 1), "holdings[1].sharez"),
        (lambda d: d["holdings"][1].__setitem__("symbol", "rssb"), "holdings[1].symbol"),
        (lambda d: d.update(cash="lots"), "cash"),
        (lambda d: d.update(colour="red"), "colour"),
    ],
)
def test_from_dict_names_the_bad_field(mutate, field):
    d = priced().to_dict()
    mutate(d)
    with pytest.raises(ValidationError) as err:
        Portfolio.from_dict(d)
    assert err.value.field == field


@settings(max_examples=40, deadline=None)
@given(
    shares=st.lists(st.integers(0, 5000), min_size=5, max_size=5),
    prices=st.lists(st.floats(1.0, 500.0), min_size=5, max_size=5),
    cash=st.floats(0.0, 1e5),
)
def test_weights_and_exposures_match_an_independent_sum(shares, prices, cash):
    m = small_map()
    symbols = ["RSSB", "NTSX", "SSO", "GLD", "BIL"]
    p = Portfolio(
        [Holding(s, n, px) for s, n, px in zip(symbols, shares, prices, strict=True)], cash
    )
    total = sum(n * px for n, px in zip(shares, prices, strict=True)) + cash
    if total <= 0:
        return
    assert p.weights(include_cash=True).sum() == pytest.approx(1.0)
    # Independent: exposure per type = sum over funds of value x percent / 100 / total.
    expected: dict[str, float] = {}
    for s, n, px in zip(symbols, shares, prices, strict=True):
        for code, pct in m[s].exposures.items():
            expected[code] = expected.get(code, 0.0) + n * px * pct / 100.0 / total
    x = p.exposures(m)
    for code, value in expected.items():
        assert x[code] == pytest.approx(value, abs=1e-12)
    notional = sum(n * px * m[s].notional for s, n, px in zip(symbols, shares, prices, strict=True))
    assert p.total_notional(m) == pytest.approx(notional / total, abs=1e-12)


def test_exposures_refuse_funds_missing_from_the_map():
    p = Portfolio([Holding("RSSB", 1, 25.0), Holding("XYZ", 1, 10.0)])
    with pytest.raises(ValidationError, match="XYZ"):
        p.exposures(small_map())


def test_prices_series():
    p = Portfolio([Holding("RSSB", 1, 25.0), Holding("SSO", 0)])
    s = p.prices
    assert s["RSSB"] == 25.0 and np.isnan(s["SSO"])
    assert isinstance(p.market_values(), pd.Series)
