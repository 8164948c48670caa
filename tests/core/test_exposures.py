"""Exposure model: types, fund definitions, the map (JSON/CSV) and the calculator."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import DataError, ValidationError
from core.exposures import (
    BUILTIN_EXPOSURE_TYPES,
    AssetGroup,
    ExposureCalculator,
    ExposureType,
    FundDefinition,
    FundExposureMap,
)

PANEL_COLUMNS = [
    "CASH_TBILL", "US_EQUITY", "US_SMALL", "INTL_DEV", "EM_EQUITY",
    "UST_10Y", "UST_LONG", "GOLD", "COMMODITIES", "MANAGED_FUT",
]  # fmt: skip


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


def test_every_panel_column_is_a_builtin_type_with_a_group():
    for code in PANEL_COLUMNS:
        assert code in BUILTIN_EXPOSURE_TYPES
        assert isinstance(BUILTIN_EXPOSURE_TYPES[code].group, AssetGroup)
    assert BUILTIN_EXPOSURE_TYPES["US_EQUITY"].group is AssetGroup.EQUITY
    assert BUILTIN_EXPOSURE_TYPES["UST_LONG"].group is AssetGroup.FIXED_INCOME
    assert BUILTIN_EXPOSURE_TYPES["CASH_TBILL"].group is AssetGroup.CASH


def test_notional_and_costs():
    m = small_map()
    assert m["RSSB"].notional_pct == pytest.approx(200)
    assert m["NTSX"].notional == pytest.approx(1.5)
    assert m["SSO"].is_leveraged and not m["GLD"].is_leveraged
    # SSO: 0.89% expense + 0.5% spread on the 100% borrowed notional
    assert m["SSO"].annual_cost == pytest.approx(0.0089 + 0.005)


def test_calculator_exposures_notional_and_groups_by_hand():
    m = small_map()
    calc = ExposureCalculator(m, ["RSSB", "NTSX", "GLD"])
    w = np.array([0.5, 0.3, 0.2])
    x = calc.portfolio_exposures(w)
    # 50% RSSB counts as 50% equity AND 50% Treasuries
    assert x["US_EQUITY"] == pytest.approx(0.5 * 0.6 + 0.3 * 0.9)
    assert x["UST_10Y"] == pytest.approx(0.5 * 1.0 + 0.3 * 0.6)
    assert x["GOLD"] == pytest.approx(0.2)
    assert calc.total_notional(w) == pytest.approx(0.5 * 2 + 0.3 * 1.5 + 0.2 * 1)
    groups = calc.exposure_by_group(w)
    assert groups["equity"] == pytest.approx(0.5 + 0.27)
    assert groups["fixed_income"] == pytest.approx(0.68)
    assert groups["real_assets"] == pytest.approx(0.2)
    # Series input keyed by symbol, missing symbols count as zero
    s = calc.portfolio_exposures(pd.Series({"GLD": 1.0}))
    assert s["GOLD"] == 1.0 and s["US_EQUITY"] == 0.0


def test_60_40_at_one_and_a_half_notional_without_margin():
    calc = ExposureCalculator(small_map(), ["NTSX"])
    x = calc.portfolio_exposures([1.0])
    assert x["US_EQUITY"] == pytest.approx(0.9) and x["UST_10Y"] == pytest.approx(0.6)
    assert calc.total_notional([1.0]) == pytest.approx(1.5)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=5, max_size=5))
def test_leverage_accounting_matches_hand_computation(ws):
    m = small_map()
    syms = ["RSSB", "NTSX", "SSO", "GLD", "BIL"]
    calc = ExposureCalculator(m, syms)
    w = np.array(ws)
    for code in calc.exposure_types:
        hand = sum(w[i] * m[s].exposures.get(code, 0) / 100 for i, s in enumerate(syms))
        assert calc.portfolio_exposures(w)[code] == pytest.approx(hand, abs=1e-12)
    hand_notional = sum(abs(w[i]) * m[s].notional_pct / 100 for i, s in enumerate(syms))
    assert calc.total_notional(w) == pytest.approx(hand_notional, abs=1e-12)


def test_validation_lists_every_problem():
    m = FundExposureMap()
    with pytest.raises(ValidationError) as err:
        m.add_fund(FundDefinition("XYZ", exposures={"NOPE": 100, "GOLD": "abc"}, expense_ratio=-1))
    msg = str(err.value)
    assert "unknown exposure type 'NOPE'" in msg
    assert "must be a number" in msg
    assert "expense ratio" in msg
    assert len(err.value.problems) == 3


def test_absurd_notional_and_duplicates_refused():
    m = small_map()
    with pytest.raises(ValidationError, match="absurd"):
        m.add_fund(FundDefinition("BAD", exposures={"US_EQUITY": 1500}))
    with pytest.raises(ValidationError, match="Duplicate symbol RSSB"):
        m.add_fund(FundDefinition("rssb", exposures={"US_EQUITY": 100}))
    # a 10x fund is at the limit: accepted but flagged for a second look
    m.add_fund(FundDefinition("TENX", exposures={"US_EQUITY": 1000}, source="test"))
    assert any("TENX" in w for w in m.warnings())


def test_custom_exposure_type_round_trips_json(tmp_path):
    m = small_map()
    m.add_exposure_type(ExposureType("BITCOIN", "Bitcoin", AssetGroup.ALTERNATIVES))
    m.add_fund(FundDefinition("BTCX", exposures={"BITCOIN": 100, "US_EQUITY": 100}))
    path = tmp_path / "map.json"
    m.save_json(path)
    back = FundExposureMap.from_json(path)
    assert back.to_dict() == m.to_dict()
    assert back.exposure_types["BITCOIN"].group is AssetGroup.ALTERNATIVES
    assert back["BTCX"].notional_pct == 200


def test_csv_round_trip_and_formula_neutralised(tmp_path):
    m = small_map()
    m.set_fund(m["GLD"].copy(name="=HYPERLINK(1)"))
    path = tmp_path / "map.csv"
    m.save_csv(path)
    text = path.read_text()
    assert "'=HYPERLINK" in text
    back = FundExposureMap.from_csv(path)
    assert back["RSSB"].exposures == m["RSSB"].exposures
    assert back["SSO"].financing_spread == 0.5
    assert back["GLD"].name == "=HYPERLINK(1)"  # neutralised on disk, restored on read
    full = FundExposureMap.default()
    again = FundExposureMap.from_csv_text(full.to_csv())
    assert again.to_dict() == full.to_dict()  # notes and inception survive a CSV round trip


def test_csv_errors_name_row_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("symbol,name,US_EQUITY,GOLD\nAAA,a,100,\nBBB,b,lots,5\n")
    with pytest.raises(DataError) as err:
        FundExposureMap.from_csv(path)
    assert err.value.row == 3 and err.value.column == "US_EQUITY"
    path.write_text("symbol,name,SOMETHING\nAAA,a,1\n")
    with pytest.raises(DataError, match="SOMETHING"):
        FundExposureMap.from_csv(path)
    path.write_text("\ufeffsymbol,US_EQUITY\nAAA,100\nAAA,50\n")
    with pytest.raises(DataError, match="duplicate symbol AAA"):
        FundExposureMap.from_csv(path)


def test_json_errors_are_clear(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        FundExposureMap.from_json(path)
    path.write_text(json.dumps({"funds": [{"symbol": "A", "exposures": {"GOLD": "x"}}]}))
    with pytest.raises(ValidationError) as err:
        FundExposureMap.from_json(path)
    assert err.value.field.startswith("funds[0]")


def test_calculator_refuses_unknown_symbols():
    with pytest.raises(ValidationError, match="ZZZ"):
        ExposureCalculator(small_map(), ["RSSB", "ZZZ"])


def test_calculator_matrix_notional_and_costs_match_each_fund():
    """The vectorised build agrees with each FundDefinition's own properties."""
    fmap = FundExposureMap.default()
    symbols = fmap.symbols
    calc = ExposureCalculator(fmap, symbols)
    for j, s in enumerate(symbols):
        f = fmap[s]
        assert calc.notionals[j] == pytest.approx(f.notional, abs=1e-15)
        assert calc.annual_costs[j] == pytest.approx(f.annual_cost, abs=1e-15)
        for k, code in enumerate(calc.exposure_types):
            assert calc.matrix[k, j] == pytest.approx(f.exposures.get(code, 0.0) / 100, abs=1e-15)
    # a subset of types: exposures outside it still count towards notional
    sub = ExposureCalculator(fmap, ["RSSB"], ["US_EQUITY"])
    assert sub.matrix.shape == (1, 1) and sub.notionals[0] == pytest.approx(fmap["RSSB"].notional)


def test_calculator_with_types_picks_rows_and_adds_zero_rows_for_types_not_held():
    fmap = FundExposureMap.default()
    calc = ExposureCalculator(fmap, ["RSSB", "GLD"])
    wider = (
        calc.with_types(["BITCOIN", *calc.exposure_types[::-1]])
        if "BITCOIN" in (fmap.exposure_types)
        else calc.with_types(["COMMODITIES", *calc.exposure_types[::-1]])
    )
    direct = ExposureCalculator(fmap, ["RSSB", "GLD"], wider.exposure_types)
    np.testing.assert_array_equal(wider.matrix, direct.matrix)
    assert not wider.matrix[0].any()
    with pytest.raises(ValidationError, match="Unknown exposure types"):
        calc.with_types(["NOPE"])


def test_calculator_carried_keeps_only_the_types_held_and_is_built_once():
    fmap = FundExposureMap.default()
    calc = ExposureCalculator(fmap, ["RSSB", "GLD"], list(fmap.exposure_types))
    carried = calc.carried()
    assert carried is calc.carried()
    assert carried.exposure_types == calc.carried_types()
    assert set(carried.exposure_types) == {
        c for s in ("RSSB", "GLD") for c, v in fmap[s].exposures.items() if v
    }
    direct = ExposureCalculator(fmap, ["RSSB", "GLD"], carried.exposure_types)
    np.testing.assert_array_equal(carried.matrix, direct.matrix)
