"""Security: no code execution from files, no formula injection, no writes outside a folder.

1. The project's Python sources (core/, desktop/, scripts/) never call ``eval``/``exec``,
   never import pickle (or shelve, marshal, dill), never call ``yaml.load`` or pandas'
   ``read_pickle``, never pass ``shell=True``: a user file is only ever parsed as data.
   The scan reads the code itself (tokens and syntax tree), so that a docstring saying
   "nothing is unpickled" or Qt's ``dialog.exec()`` method is not a finding, and it is
   tested on a snippet holding every forbidden form. There is no allow-list.
2. Every text cell a writer exports (trade tickets, fund maps) is neutralised against
   spreadsheet formula injection, and reads back exactly as written.
3. Paths held in workspace files never choose where the app writes: autosave files stay
   inside their folder whatever the workspace's name, and a recovery file edited to name
   another "source" file is not trusted.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import tokenize
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from core.exposures import FundDefinition, FundExposureMap
from core.fileio import neutralise_cell, restore_cell
from core.tickets import (
    Order,
    read_excel,
    read_generic_csv,
    read_ibkr_rebalance_csv,
    write_excel,
    write_generic_csv,
    write_ibkr_rebalance_csv,
)
from core.workspace import (
    AUTOSAVE_SUFFIX,
    Workspace,
    autosave_path,
    find_autosave,
    remove_autosave,
    write_autosave,
)

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("core", "desktop", "scripts")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# --------------------------------------------------------------------- source scan
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "shelve", "marshal"}
BANNED_BUILTINS = {"eval", "exec"}
BANNED_ATTRS = {
    ("yaml", "load"),
    ("yaml", "load_all"),
    ("yaml", "unsafe_load"),
    ("yaml", "unsafe_load_all"),
    ("yaml", "full_load"),
    ("os", "system"),
    ("os", "popen"),
    ("builtins", "eval"),
    ("builtins", "exec"),
}
BANNED_METHODS = {"read_pickle", "to_pickle"}  # pandas' pickle I/O


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def scan_source(text: str, name: str = "<source>") -> list[str]:
    """Every forbidden construct in Python source ``text``, as 'name:line: what'."""
    found: list[str] = []
    tree = ast.parse(text, filename=name)
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in BANNED_MODULES:
                    found.append(f"{where}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if module in BANNED_MODULES:
                found.append(f"{where}: from {node.module} import ...")
            if module in ("builtins", "yaml", "os"):
                for alias in node.names:
                    if (module, alias.name) in BANNED_ATTRS:
                        found.append(f"{where}: from {module} import {alias.name}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in BANNED_BUILTINS:
                found.append(f"{where}: {func.id}(...)")
            if isinstance(func, ast.Attribute):
                owner = _dotted(func.value).split(".")[-1]
                if (owner, func.attr) in BANNED_ATTRS:
                    found.append(f"{where}: {owner}.{func.attr}(...)")
                if func.attr in BANNED_METHODS:
                    found.append(f"{where}: .{func.attr}(...)")
            for kw in node.keywords:
                if kw.arg in ("shell", "allow_pickle") and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value in (False, None)
                ):
                    found.append(f"{where}: {kw.arg}={ast.unparse(kw.value)}")
        elif isinstance(node, ast.Name) and node.id in BANNED_BUILTINS:
            if not isinstance(getattr(node, "ctx", None), ast.Store):
                found.append(f"{where}: reference to {node.id}")
    # The grep, on code tokens only (comments and strings are not code).
    tokens = [
        t
        for t in tokenize.generate_tokens(io.StringIO(text).readline)
        if t.type in (tokenize.NAME, tokenize.OP)
    ]
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1].string if i else ""
        nxt = [t.string for t in tokens[i + 1 : i + 3]]
        line = f"{name}:{tok.start[0]}"
        if tok.type == tokenize.NAME and "pickle" in tok.string.lower():
            found.append(f"{line}: token {tok.string}")
        if tok.string in BANNED_BUILTINS and prev != "." and nxt[:1] == ["("]:
            found.append(f"{line}: {tok.string}(")
        unsafe = {attr for owner, attr in BANNED_ATTRS if owner == "yaml"}
        if tok.string == "yaml" and nxt[:1] == ["."] and nxt[1:] and nxt[1] in unsafe:
            found.append(f"{line}: yaml.{tokens[i + 2].string}")
        if tok.string == "shell" and nxt == ["=", "True"]:
            found.append(f"{line}: shell=True")
    return sorted(set(found))


EVERYTHING_BANNED = """
import pickle
import marshal as m
from shelve import open as shelf
from builtins import eval as e
import yaml, os, subprocess, numpy as np, pandas as pd
x = eval("1+1")
exec("y = 2")
run = eval
doc = yaml.load(open("f"), Loader=yaml.Loader)
docs = yaml.unsafe_load("a: 1")
os.system("ls")
subprocess.run("ls", shell=True)
frame = pd.read_pickle("f.pkl")
arr = np.load("f.npy", allow_pickle=True)
"""

HARMLESS = '''
"""Nothing here is evaluated or unpickled; eval( and exec( in a docstring are text."""
import ast
value = ast.literal_eval("[1, 2]")  # eval( in a comment is fine, so is pickle
result = dialog.exec()  # Qt's modal loop, a method
text = "shell=True yaml.load(x) pickle.loads"
data = json.loads(raw)
proc = subprocess.run(["git", "status"], shell=False, check=True)
safe = yaml.safe_load("a: 1")
'''


def test_the_scanner_finds_every_banned_form():
    found = scan_source(EVERYTHING_BANNED)
    text = "\n".join(found)
    for what in (
        "import pickle",
        "import marshal",
        "from shelve",
        "from builtins import eval",
        "eval(...)",
        "exec(...)",
        "reference to eval",
        "yaml.load(...)",
        "yaml.unsafe_load(...)",
        "os.system(...)",
        "shell=True",
        ".read_pickle(...)",
        "allow_pickle=True",
    ):
        assert what in text, f"{what!r} not found in:\n{text}"


def test_the_scanner_ignores_text_comments_and_methods():
    assert scan_source(HARMLESS) == []


def test_project_sources_never_execute_or_unpickle_anything():
    files = sorted(p for d in SOURCE_DIRS for p in (REPO / d).rglob("*.py"))
    assert len(files) > 20  # the scan really covered the project
    findings = []
    for path in files:
        findings += scan_source(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert findings == [], "\n".join(findings)


# ------------------------------------------------------------------- formula injection
def _text_cells_are_safe(cells: list[str]) -> None:
    for cell in cells:
        if cell.startswith(FORMULA_START):
            float(cell)  # only a number may start with + or - (it is not a formula)


one_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), max_codepoint=0x2FFF),
    min_size=1,
    max_size=15,
).map(str.strip)
evil = st.one_of(
    one_line,
    st.sampled_from(["=1+1", "+SUM(A1)", "-2+3", "@cmd", "'=x", "''@y", "'-", "=", "'"]),
    st.tuples(st.sampled_from(["=", "+", "-", "@", "'="]), one_line).map("".join),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(symbol=evil, account=evil)
def test_generic_csv_and_excel_tickets_are_neutralised_and_lossless(
    tmp_path_factory, symbol, account
):
    if not symbol.strip() or any(ch in symbol + account for ch in "\r\n"):
        return  # an order refuses these before any writer sees them
    folder = tmp_path_factory.mktemp("tickets")
    orders = [Order(symbol, "BUY", 3, account=account)]
    path = write_generic_csv(orders, folder / "t.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    _text_cells_are_safe([c for r in rows[1:] for c in r])
    assert read_generic_csv(path) == orders
    xlsx = write_excel(orders, folder / "t.xlsx")
    sheet = load_workbook(xlsx).worksheets[0]
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            assert cell.data_type != "f"
            if isinstance(cell.value, str):
                _text_cells_are_safe([cell.value])
    back = read_excel(xlsx)
    assert [(o.symbol, o.account) for o in back] == [(o.symbol, o.account) for o in orders]


def test_ibkr_rebalance_file_is_neutralised(tmp_path):
    """The one ticket writer the ticket tests did not check for injection."""
    targets = pd.Series({"=HYPERLINK(1)": 0.6, "@SUM(A1)": 0.4})
    path = write_ibkr_rebalance_csv(targets, tmp_path / "rebalance.csv")
    for line in path.read_text().splitlines():
        _text_cells_are_safe(line.split(","))
    back = read_ibkr_rebalance_csv(path)
    assert dict(back) == pytest.approx({"=HYPERLINK(1)": 0.6, "@SUM(A1)": 0.4})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=evil, source=evil, notes=evil, symbol=st.sampled_from(["=X", "-Y", "@Z", "+W", "OK"]))
def test_fund_map_csv_is_neutralised_and_lossless(tmp_path_factory, name, source, notes, symbol):
    fmap = FundExposureMap(
        [FundDefinition(symbol, name=name, exposures={"US_EQUITY": -50.0, "UST_10Y": 150.0},
                        source=source, notes=notes)]
    )  # fmt: skip
    path = tmp_path_factory.mktemp("map") / "map.csv"
    fmap.save_csv(path)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    _text_cells_are_safe([c for r in rows[1:] for c in r])
    assert FundExposureMap.from_csv(path).to_dict() == fmap.to_dict()


@pytest.mark.parametrize("text", ["=x", "'=x", "''=x", "'", "''", "-1", "'-1", "abc", "'abc", ""])
def test_neutralise_and_restore_are_inverse(text):
    out = neutralise_cell(text)
    assert not str(out).startswith(FORMULA_START)
    assert restore_cell(out) == text


# ----------------------------------------------------------------------- path confinement
hostile_names = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "..",
            "../../etc/passwd",
            "..\\..\\Windows\\win.ini",
            "/etc/passwd",
            "C:\\Users\\x\\evil.json",
            "~/.bashrc",
            "a/../../b.json",
            "\x00",
            ".",
            "",
            "CON",
            "name" * 50,
        ]
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=hostile_names)
def test_autosave_path_stays_inside_its_folder(tmp_path_factory, name):
    folder = tmp_path_factory.mktemp("recovery")
    try:
        target = autosave_path(name, folder)
    except ValueError:  # an embedded NUL cannot be a path at all
        assert "\x00" in name
        return
    assert target.parent == folder
    assert target.name.endswith(AUTOSAVE_SUFFIX)
    assert "/" not in target.name and "\\" not in target.name and ".." not in target.stem
    assert target.resolve().parent == folder.resolve()


@pytest.mark.parametrize("name", ["../../escape", "..", "/tmp/elsewhere.stackopt.json", "a\\..\\b"])
def test_autosave_of_a_hostile_workspace_name_is_written_inside_the_folder(tmp_path, name):
    folder = tmp_path / "recovery"
    ws = Workspace(name=name)
    target = write_autosave(ws, folder)
    assert target.parent == folder and target.exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [target.name]
    assert remove_autosave(name, folder) and not target.exists()


def test_recovery_file_pointing_elsewhere_is_not_trusted(tmp_path):
    """The app saves recovered work to the autosave's 'source': a tampered one is dropped."""
    folder = tmp_path / "recovery"
    real = tmp_path / "docs" / "mine.stackopt.json"
    real.parent.mkdir()
    ws = Workspace(name="mine")
    ws.save(real)
    target = write_autosave(ws, folder, source=real)
    (info,) = find_autosave(folder)
    assert info.source == str(real.resolve())  # the genuine source is kept
    doc = json.loads(target.read_text())
    for forged in [str(tmp_path / "elsewhere" / "x.stackopt.json"), "../../x.json", 42, ["a"]]:
        doc["autosave"]["source"] = forged
        target.write_text(json.dumps(doc))
        (info,) = find_autosave(folder)
        assert info.error is None and info.source is None, forged
        assert info.load().name == "mine"  # the work itself is still recovered


def test_workspace_fields_are_never_paths_used_for_writing(tmp_path):
    """Saving writes exactly the chosen file: names, sources and settings are just text."""
    ws = Workspace(
        name="../../../escape",
        settings={"last_export": str(tmp_path / "elsewhere" / "x.csv"), "folder": "../.."},
        price_source="../../prices.csv",
    )
    chosen = tmp_path / "chosen" / "ws.stackopt.json"
    chosen.parent.mkdir()
    ws.save(chosen)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "chosen",
        "chosen/ws.stackopt.json",
    ]
    assert Workspace.load(chosen) == ws
