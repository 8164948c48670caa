"""Coverage-guided fuzzing of the file importers with atheris (not part of the pytest suite).

Each target feeds the fuzzer's bytes to one importer; the importer must return or raise a
typed StackOpt error (DataError, ValidationError, WorkspaceError). Anything else, or a
hang past ``-timeout`` seconds, is a finding that atheris saves as ``crash-*``/``timeout-*``.

Run from the repository root (``pip install atheris`` first)::

    .venv/bin/python tests/fuzz/fuzz_importers.py prices -atheris_runs=50000
    .venv/bin/python tests/fuzz/fuzz_importers.py workspace -max_total_time=300 corpus/ws

Targets: ``prices``, ``positions``, ``generic``, ``fund_map_csv``, ``fund_map_json``,
``workspace``, or ``all`` (the default: each input goes to every importer). Arguments
after the target are libFuzzer's (``-runs``, ``-max_total_time``, ``-timeout``, a corpus
folder ...). The hypothesis tests in ``tests/core/test_fuzz_importers.py`` are the ones
run in CI; this harness is for longer campaigns.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["core"]):
    from core.brokers import GenericMapping, parse_generic, parse_positions
    from core.errors import DataError, ValidationError, WorkspaceError
    from core.exposures import FundExposureMap
    from core.market_data import read_prices
    from core.workspace import Workspace

TYPED = (DataError, ValidationError, WorkspaceError)
_DIR = Path(tempfile.mkdtemp(prefix="stackopt-fuzz-"))
_MAPPING = GenericMapping(symbol_col="Symbol", quantity_col="Quantity", price_col="Price")


def _file(data: bytes, name: str) -> Path:
    path = _DIR / name
    path.write_bytes(data)
    return path


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


TARGETS: dict[str, Callable[[bytes], object]] = {
    "prices": lambda d: read_prices(_file(d, "prices.csv")),
    "positions": lambda d: parse_positions(d, filename="positions.csv"),
    "generic": lambda d: parse_generic(d, _MAPPING, filename="positions.csv"),
    "fund_map_csv": lambda d: FundExposureMap.from_csv_text(_text(d), source="map.csv"),
    "fund_map_json": lambda d: FundExposureMap.from_json(_file(d, "map.json")),
    "workspace": lambda d: Workspace.load(_file(d, "ws.stackopt.json")),
}


def make_test(names: list[str]) -> Callable[[bytes], None]:
    targets = [TARGETS[n] for n in names]

    def test_one_input(data: bytes) -> None:
        for target in targets:
            try:
                target(data)
            except TYPED:
                pass  # a clear, typed refusal is a correct answer

    return test_one_input


def main() -> None:
    args = sys.argv[1:]
    which = args.pop(0) if args and not args[0].startswith("-") and args[0] in (
        *TARGETS, "all"
    ) else "all"  # fmt: skip
    names = list(TARGETS) if which == "all" else [which]
    atheris.Setup([sys.argv[0], *args], make_test(names))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
