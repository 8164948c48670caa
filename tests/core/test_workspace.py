"""Workspace document: sample, round trip, atomic save, crash safety, migration, errors."""

from __future__ import annotations

import copy
import gzip
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import core
from core.errors import WorkspaceError
from core.exposures import FundDefinition, FundExposureMap
from core.optimization.constraints import MarketView, OptimizationConstraints
from core.portfolio import Holding, Portfolio
from core.workspace import (
    AUTOSAVE_SUFFIX,
    DEFAULT_SETTINGS,
    SCHEMA_VERSION,
    Workspace,
    autosave_path,
    find_autosave,
    remove_autosave,
    write_autosave,
)

REPO = Path(core.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample() -> Workspace:
    return Workspace.sample()


def sample_dict(sample: Workspace) -> dict:
    return json.loads(sample.to_json())


# ----------------------------------------------------------------------- sample
def test_sample_loads_and_is_about_250k(sample):
    assert sample.migrated_from is None
    priced = sample.priced_portfolio()
    assert 245_000 < priced.total_value < 255_000
    assert 5_000 <= priced.cash <= 10_000
    assert all(h.shares == int(h.shares) and h.shares > 0 for h in priced)
    assert not priced.missing_prices()
    for symbol in (
        "RSSB",
        "NTSX",
        "GDE",
        "RSST",
        "VTI",
        "VT",
        "IEF",
        "GLD",
        "DBMF",
        "SSO",
        "TMF",
        "BIL",
    ):
        assert symbol in priced
    assert sample.price_date == "2026-07-31"
    assert "2026-07-31" in sample.price_source and "Yahoo" in sample.price_source


def test_sample_fund_map_is_the_builtin_default(sample):
    assert sample.fund_map.to_dict() == FundExposureMap.default().to_dict(), (
        "the default fund map changed: run scripts/make_sample_workspace.py"
    )


def test_sample_constraints_views_and_current_portfolio(sample):
    c = sample.constraints
    assert c.long_only and c.max_weight == pytest.approx(0.40)
    assert c.max_total_notional == pytest.approx(1.5)
    assert c.max_exposure_per_group == {"equity": 1.0}
    assert c.max_exposure_per_type == {"GOLD": 0.25}
    assert {v.view_type for v in sample.views} == {"absolute", "relative"}
    assert any(v.assets == ["MANAGED_FUT"] for v in sample.views)
    # The holdings as they stand respect the sample's own limits.
    priced = sample.priced_portfolio()
    assert priced.weights().max() <= 0.40
    assert priced.total_notional(sample.fund_map) <= 1.5
    assert priced.exposures_by_group(sample.fund_map)["equity"] <= 1.0
    assert priced.exposures(sample.fund_map)["GOLD"] <= 0.25


def test_sample_prices_are_the_closes_of_the_shared_data(sample, shared_data):
    with gzip.open(shared_data / "etf_daily_adjclose.csv.gz", "rt") as fh:
        frame = pd.read_csv(fh, index_col=0, parse_dates=True)
    row = frame.loc[pd.Timestamp("2026-07-31")]
    for symbol, price in sample.prices.items():
        assert price == pytest.approx(row[symbol], abs=0.006), symbol
    assert sample.settings["risk_free_rate"] == pytest.approx(row["^IRX"] / 100, abs=1e-4)


# ------------------------------------------------------------------ round trip
def test_round_trip_save_load_is_equal(sample, tmp_path):
    path = tmp_path / "mine.stackopt.json"
    ws = copy.deepcopy(sample)
    ws.name = "Round trip ünïcode"
    ws.portfolio.set_shares("RSSB", 1234.5)
    ws.settings["my_note"] = {"colour": "blue", "levels": [1, 2.5, None]}
    assert ws.save(path) == path
    assert ws.saved_at is not None
    loaded = Workspace.load(path)
    assert loaded == ws
    assert loaded.to_dict() == ws.to_dict()
    assert loaded.saved_at == ws.saved_at
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "stackopt-workspace" and doc["version"] == SCHEMA_VERSION
    assert set(doc) == {
        "format", "version", "name", "saved_at", "portfolio", "fund_map",
        "constraints", "views", "settings", "prices",
    }  # fmt: skip
    assert len(doc["fund_map"]["funds"]) == len(sample.fund_map)


def test_in_memory_workspace_round_trips_and_settings_get_defaults(tmp_path):
    fund_map = FundExposureMap([FundDefinition("VTI", "", {"US_EQUITY": 100}, 0.03)])
    ws = Workspace(
        name="tiny",
        portfolio=Portfolio([Holding("VTI", 3, price=300.0)], cash=10.0),
        fund_map=fund_map,
        constraints=OptimizationConstraints(max_weight=0.5, fund_bounds={"VTI": (0.1, 0.9)}),
        views=[MarketView(["vti"], "absolute", 0.04, 0.5)],
        settings={"lookback_years": 10},
        prices={"vti": 301.0},
        price_date="2026-07-31",
    )
    assert ws.settings["frequency"] == DEFAULT_SETTINGS["frequency"]
    assert ws.priced_portfolio()["VTI"].price == 301.0  # the price table wins
    ws.save(tmp_path / "tiny.json")
    assert Workspace.load(tmp_path / "tiny.json") == ws


def test_save_refuses_a_workspace_that_could_not_be_loaded(sample, tmp_path):
    ws = copy.deepcopy(sample)
    ws.constraints.max_weight = 40.0
    with pytest.raises(WorkspaceError, match="percent") as err:
        ws.save(tmp_path / "bad.json")
    assert err.value.field == "constraints.max_weight"
    assert not (tmp_path / "bad.json").exists()
    assert ws.saved_at == sample.saved_at


# ---------------------------------------------------------------------- atomic
@pytest.mark.parametrize("broken", ["replace", "fsync"])
def test_failed_save_leaves_the_old_file_and_no_temp_file(sample, tmp_path, monkeypatch, broken):
    path = tmp_path / "ws.stackopt.json"
    sample.save(path)
    before = path.read_bytes()
    ws = copy.deepcopy(sample)
    ws.name = "changed"

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, broken, boom)
    with pytest.raises(WorkspaceError, match="No space left") as err:
        ws.save(path)
    monkeypatch.undo()
    assert err.value.path == str(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert Workspace.load(path).name == sample.name


CHILD = r"""
import os
import sys
import time

from core.exposures import FundDefinition, FundExposureMap
from core.portfolio import Holding, Portfolio
from core.workspace import Workspace

n = 300
# Long notes make the file ~9 MB, so that a random kill often lands inside the write.
funds = [
    FundDefinition(f"F{i:04d}", "fund", {"US_EQUITY": 60, "UST_10Y": 40}, 0.1, notes="n" * 30_000)
    for i in range(n)
]
ws = Workspace(
    name="big",
    portfolio=Portfolio([Holding(f"F{i:04d}", i + 1, price=10.0 + i) for i in range(n)]),
    fund_map=FundExposureMap(funds),
)
i = 0
if sys.argv[2] == "pause-in-write":
    # Stop inside the second save: the temp file is written, the target not yet replaced.
    real_fsync = os.fsync

    def fsync(fd):
        if i >= 1:
            print("writing", flush=True)
            time.sleep(60)
        real_fsync(fd)

    os.fsync = fsync
while True:
    ws.portfolio.cash = float(i % 2 + 1)
    ws.save(sys.argv[1])
    if i == 0:
        print("ready", flush=True)
    i += 1
"""


def _run_and_kill(path: Path, mode: str, delay: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline().strip()
        assert first == "ready", proc.stderr.read()
        if mode == "pause-in-write":
            assert proc.stdout.readline().strip() == "writing"
        else:
            try:  # let it get some way into later saves
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
        assert proc.poll() is None, "the saving loop ended on its own: " + proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_kill_during_save_leaves_a_valid_file(tmp_path):
    path = tmp_path / "big.stackopt.json"
    # Killed inside the write: the old file (cash 1.0 from the first save) is intact.
    _run_and_kill(path, "pause-in-write", 0.0)
    assert list(tmp_path.glob(".big.stackopt.json.*.tmp")), "the kill did not land in the write"
    assert Workspace.load(path).portfolio.cash == 1.0
    # Killed at random moments: always the old or the new file, never a torn one.
    rng = random.Random(3)
    for _ in range(3):
        _run_and_kill(path, "free-running", rng.uniform(0.05, 0.6))
        json.loads(path.read_text(encoding="utf-8"))
        loaded = Workspace.load(path)
        assert loaded.portfolio.cash in (1.0, 2.0)
        assert len(loaded.portfolio) == 300


# ------------------------------------------------------------------- migration
def v1_document() -> dict:
    fund_map = FundExposureMap(
        [
            FundDefinition("RSSB", "", {"US_EQUITY": 60, "INTL_DEV": 30, "EM_EQUITY": 10, "UST_10Y": 100}, 0.4),
            FundDefinition("GLD", "", {"GOLD": 100}, 0.4),
            FundDefinition("VTI", "", {"US_EQUITY": 100}, 0.03),
        ]
    )  # fmt: skip
    return {
        "format": "stackopt-workspace",
        "version": 1,
        "name": "old file",
        "currency": "USD",
        "cash": 5000,
        "holdings": {"RSSB": 1000, "GLD": 20, "VTI": 0},
        "fund_map": fund_map.to_dict(),
        "constraints": {
            "long_only": True,
            "max_weight": 40,
            "max_total_notional": 150,
            "max_exposure_per_group": {"equity": 100},
            "max_exposure_per_type": {"GOLD": 25},
            "fund_bounds": {"VTI": [5, 30]},
            "target_volatility": 12,
            "transaction_cost_bps": 5,
        },
        "views": [
            {"assets": ["GOLD"], "view_type": "absolute", "expected_return": 3, "confidence": 40}
        ],
        "settings": {"risk_free_rate": 4.5, "lookback_years": 15},
        "prices": {"RSSB": 30.24, "GLD": 371.54, "VTI": 368.21},
        "price_date": "2026-07-31",
    }


def test_migration_from_version_1(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(v1_document()), encoding="utf-8")
    ws = Workspace.load(path)
    assert ws.migrated_from == 1
    assert [(h.symbol, h.shares) for h in ws.portfolio] == [("RSSB", 1000), ("GLD", 20), ("VTI", 0)]
    assert ws.portfolio.cash == 5000 and ws.portfolio.currency == "USD"
    c = ws.constraints
    assert c.max_weight == pytest.approx(0.40)
    assert c.max_total_notional == pytest.approx(1.5)
    assert c.max_exposure_per_group == {"equity": pytest.approx(1.0)}
    assert c.max_exposure_per_type == {"GOLD": pytest.approx(0.25)}
    assert c.fund_bounds == {"VTI": (pytest.approx(0.05), pytest.approx(0.30))}
    assert c.target_volatility == pytest.approx(0.12)
    assert c.transaction_cost_bps == 5  # basis points were never percent
    assert ws.views[0].expected_return == pytest.approx(0.03)
    assert ws.views[0].confidence == pytest.approx(0.40)
    assert ws.settings["risk_free_rate"] == pytest.approx(0.045)
    assert ws.settings["lookback_years"] == 15
    assert ws.prices == {"RSSB": 30.24, "GLD": 371.54, "VTI": 368.21}
    assert ws.price_date == "2026-07-31"
    assert ws.priced_portfolio().total_value == pytest.approx(1000 * 30.24 + 20 * 371.54 + 5000)
    # Saving writes the current version; loading that gives the same workspace.
    ws.save(tmp_path / "new.json")
    assert json.loads((tmp_path / "new.json").read_text())["version"] == SCHEMA_VERSION
    again = Workspace.load(tmp_path / "new.json")
    assert again == ws and again.migrated_from is None


def test_version_1_bad_holding_names_the_v1_field():
    doc = v1_document()
    doc["holdings"]["GLD"] = "twenty"
    with pytest.raises(WorkspaceError) as err:
        Workspace.from_dict(doc)
    assert err.value.field == "holdings.GLD"
    doc = v1_document()
    doc["constraints"]["max_weight"] = "forty"
    with pytest.raises(WorkspaceError) as err:
        Workspace.from_dict(doc)
    assert err.value.field == "constraints.max_weight"


def test_newer_version_is_refused(sample, tmp_path):
    doc = sample_dict(sample)
    doc["version"] = SCHEMA_VERSION + 1
    doc["something_new"] = {"a": 1}
    path = tmp_path / "future.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(WorkspaceError, match="newer StackOpt") as err:
        Workspace.load(path)
    assert err.value.field == "version"
    assert err.value.path == str(path)
    assert "update StackOpt" in str(err.value)


# -------------------------------------------------------------- malformed files
def _set(path: str, value):
    def mutate(doc: dict) -> None:
        node = doc
        parts = path.replace("[", ".[").split(".")
        for part in parts[:-1]:
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
        last = parts[-1]
        if last.startswith("["):
            node[int(last[1:-1])] = value
        else:
            node[last] = value

    return mutate


def _del(path: str):
    def mutate(doc: dict) -> None:
        parent, key = path.rsplit(".", 1)
        node = doc
        for part in parent.replace("[", ".[").split("."):
            node = node[int(part[1:-1])] if part.startswith("[") else node[part]
        del node[key]

    return mutate


CORRUPTIONS = [
    (_set("format", "something-else"), "format"),
    (_set("version", "2"), "version"),
    (_set("version", 0), "version"),
    (_set("name", 5), "name"),
    (_set("holdings", {"RSSB": 3}), "holdings"),
    (_set("portfolio", [1, 2]), "portfolio"),
    (_set("portfolio.holdings[3].shares", "ten"), "portfolio.holdings[3].shares"),
    (_set("portfolio.holdings[3].shares", -5), "portfolio.holdings[3].shares"),
    (_del("portfolio.holdings[4].symbol"), "portfolio.holdings[4].symbol"),
    (_set("portfolio.holdings[2].symbol", "ZZZZ"), "portfolio.holdings[2].symbol"),
    (_set("portfolio.holdings[1].symbol", "RSSB"), "portfolio.holdings[1].symbol"),
    (_set("portfolio.cash", "lots"), "portfolio.cash"),
    (_set("portfolio.currency", 840), "portfolio.currency"),
    (_set("fund_map", "default"), "fund_map"),
    (_set("fund_map.funds", {"RSSB": {}}), "fund_map.funds"),
    (
        _set("fund_map.funds[1].exposures.US_EQUITY", "lots"),
        "fund_map.funds[1].exposures.US_EQUITY",
    ),
    (_set("fund_map.funds[2].expense_ratio", 95), "fund_map.funds[2].expense_ratio"),
    (_set("fund_map.exposure_types", [{"code": "BAD CODE"}]), "fund_map.exposure_types[0].code"),
    (_set("constraints.max_weight", "forty"), "constraints.max_weight"),
    (_set("constraints.max_weight", 40), "constraints.max_weight"),
    (_set("constraints.min_weight", 50), "constraints.min_weight"),
    (_set("constraints.long_only", "yes"), "constraints.long_only"),
    (_set("constraints.max_total_notional", -1), "constraints.max_total_notional"),
    (
        _set("constraints.max_exposure_per_type", {"GOLDX": 0.2}),
        "constraints.max_exposure_per_type.GOLDX",
    ),
    (
        _set("constraints.max_exposure_per_group", {"bonds": 0.2}),
        "constraints.max_exposure_per_group.bonds",
    ),
    (_set("constraints.fund_bounds", {"NOPE": [0, 0.1]}), "constraints.fund_bounds.NOPE"),
    (_set("constraints.max_weigth", 0.3), "constraints.max_weigth"),
    (_set("views", {"assets": ["GOLD"]}), "views"),
    (_set("views[0]", "GOLD up"), "views[0]"),
    (_set("constraints", [0.4]), "constraints"),
    (_set("views[0].confidence", 2), "views[0].confidence"),
    (_set("views[1].view_type", "sideways"), "views[1].view_type"),
    (_set("views[1].assets", ["NOPE", "US_EQUITY"]), "views[1].assets"),
    (_set("settings", [1]), "settings"),
    (_set("settings.lookback_years", "20"), "settings.lookback_years"),
    (_set("settings.frequency", "hourly"), "settings.frequency"),
    (_set("settings.objective", "max_fun"), "settings.objective"),
    (_set("settings.covariance_method", "crystal_ball"), "settings.covariance_method"),
    (_set("settings.risk_free_rate", 4.0), "settings.risk_free_rate"),
    (_set("settings.whole_shares", 1), "settings.whole_shares"),
    (_set("prices.values.RSSB", 0), "prices.values.RSSB"),
    (_set("prices.values.GLD", "371"), "prices.values.GLD"),
    (_set("prices.date", "31/07/2026"), "prices.date"),
    (_set("prices", {"RSSB": 30.0}), "prices.RSSB"),
]


@pytest.mark.parametrize(("mutate", "field"), CORRUPTIONS, ids=[f for _, f in CORRUPTIONS])
def test_malformed_field_is_named(sample, tmp_path, mutate, field):
    doc = sample_dict(sample)
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(WorkspaceError) as err:
        Workspace.load(path)
    assert err.value.field == field
    assert field in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{not json", "invalid JSON at line 1"),
        (b"", "invalid JSON"),
        (b"[1, 2, 3]", "expected a JSON object"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (json.dumps({"format": "stackopt-fund-map", "funds": []}).encode(), "fund map"),
    ],
)
def test_unreadable_files(tmp_path, content, match):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(WorkspaceError, match=match) as err:
        Workspace.load(path)
    assert err.value.path == str(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(WorkspaceError, match="not found"):
        Workspace.load(tmp_path / "nope.json")
    with pytest.raises(WorkspaceError, match="folder"):
        Workspace.load(tmp_path)


# --------------------------------------------------------------------- recovery
def test_autosave_write_find_load_remove(sample, tmp_path):
    folder = tmp_path / "recovery"
    source = tmp_path / "docs" / "mine.stackopt.json"
    ws = copy.deepcopy(sample)
    ws.name = "edited but not saved"
    target = write_autosave(ws, folder, source=source)
    assert target == autosave_path(source, folder)
    assert target.name.startswith("mine-") and target.name.endswith(AUTOSAVE_SUFFIX)
    unsaved = copy.deepcopy(sample)
    unsaved.name = "Untitled 2"
    other = write_autosave(unsaved, folder)
    assert other == autosave_path("Untitled 2", folder) != target

    found = find_autosave(folder)
    assert {a.path for a in found} == {target, other}
    mine = find_autosave(folder, source)
    assert len(mine) == 1 and mine[0].error is None
    assert mine[0].source == str(source.resolve()) and mine[0].name == "edited but not saved"
    assert mine[0].newer_than_source  # the source file does not even exist
    assert mine[0].load() == ws

    (folder / f"junk{AUTOSAVE_SUFFIX}").write_text("{half a fil", encoding="utf-8")
    broken = [a for a in find_autosave(folder) if a.error]
    assert len(broken) == 1 and "invalid JSON" in broken[0].error

    assert remove_autosave(source, folder) is True
    assert remove_autosave(source, folder) is False
    assert find_autosave(folder, source) == []
    assert find_autosave(tmp_path / "no-such-folder") == []


def test_autosave_paths_are_distinct_per_file(tmp_path):
    a = autosave_path(tmp_path / "a" / "p.stackopt.json", tmp_path)
    b = autosave_path(tmp_path / "b" / "p.stackopt.json", tmp_path)
    assert a != b and a.parent == tmp_path
    assert autosave_path(str(tmp_path / "a" / "p.stackopt.json"), tmp_path) == a
    assert autosave_path("../weird name?*", tmp_path).name.endswith(AUTOSAVE_SUFFIX)
    assert "/" not in autosave_path("My: Portfolio", tmp_path).name


def test_contradictory_constraints_are_kept_not_lost(tmp_path):
    """A user mid-edit may have min above max: saving keeps it; the optimizer refuses it."""
    from core.errors import InfeasibleError
    from core.optimization.constraints import linear_form

    ws = Workspace.sample()
    ws.constraints = ws.constraints.copy(min_weight=0.5, max_weight=0.4)
    path = tmp_path / "mid_edit.json"
    ws.save(path)
    back = Workspace.load(path)
    assert back.constraints.min_weight == 0.5 and back.constraints.max_weight == 0.4
    with pytest.raises(InfeasibleError, match="min_weight"):
        linear_form(back.portfolio.symbols, back.constraints, back.fund_map)
