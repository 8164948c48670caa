"""Exposure types, fund exposure maps and the exposure calculator.

Units
-----
A :class:`FundDefinition` stores what a user reads on an issuer's page: exposures in
PERCENT of NAV (RSSB = {global equity: 100, US Treasuries: 100}), expense ratio and
financing spread in PERCENT per year. Everything computational
(:class:`ExposureCalculator`, the optimizers) works in FRACTIONS: an exposure matrix
entry of 1.0 is 100% of NAV, a notional of 2.0 is 200%.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError, ValidationError
from core.kept import Kept

#: A fund whose notional exceeds this (percent of NAV) is refused as absurd (10x).
MAX_NOTIONAL_PCT = 1000.0
#: Above this notional a fund is accepted but flagged for a second look.
WARN_NOTIONAL_PCT = 400.0


class AssetGroup(StrEnum):
    """Asset-class group of an exposure type; constraints can name a group."""

    EQUITY = "equity"
    FIXED_INCOME = "fixed_income"
    REAL_ASSETS = "real_assets"
    ALTERNATIVES = "alternatives"
    CASH = "cash"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").title()


@dataclass(frozen=True)
class ExposureType:
    """An underlying return source (US large equity, long Treasuries, gold ...).

    Parameters
    ----------
    code : str
        Stable identifier, upper case (``"US_EQUITY"``). Used in files and constraints.
    name : str
        Human-readable label.
    group : AssetGroup
        Asset-class group, so that a constraint can name a group.
    proxy : str
        Return series that represents this exposure (ticker or index), for regressions.
    builtin : bool
        True for the types StackOpt ships; user-defined types are False.
    """

    code: str
    name: str
    group: AssetGroup
    proxy: str = ""
    description: str = ""
    builtin: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "group": self.group.value,
            "proxy": self.proxy,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, builtin: bool = False) -> ExposureType:
        try:
            code = str(data["code"]).strip().upper()
            group = AssetGroup(str(data.get("group", "alternatives")).strip().lower())
        except KeyError as exc:
            raise ValidationError(f"Exposure type is missing {exc}", field="code") from exc
        except ValueError as exc:
            groups = ", ".join(g.value for g in AssetGroup)
            raise ValidationError(
                f"Exposure type {data.get('code')!r} has unknown group {data.get('group')!r}; "
                f"use one of: {groups}",
                field="group",
            ) from exc
        if not code or not code.replace("_", "").isalnum():
            raise ValidationError(
                f"Exposure type code {code!r} must be letters, digits and underscores",
                field="code",
            )
        return cls(
            code=code,
            name=str(data.get("name") or code.replace("_", " ").title()),
            group=group,
            proxy=str(data.get("proxy", "")),
            description=str(data.get("description", "")),
            builtin=builtin,
        )


def _builtin(code: str, name: str, group: AssetGroup, proxy: str, description: str = ""):
    return ExposureType(code, name, group, proxy, description, builtin=True)


#: The built-in exposure types: the ten columns of the exposure history panel plus
#: alternative sleeves that stacked funds carry but that have no long public history.
BUILTIN_EXPOSURE_TYPES: dict[str, ExposureType] = {
    t.code: t
    for t in [
        _builtin("CASH_TBILL", "Cash (T-bills)", AssetGroup.CASH, "BIL", "3-month US T-bills"),
        _builtin("US_EQUITY", "US equity", AssetGroup.EQUITY, "VTI", "US total/large-cap market"),
        _builtin("US_SMALL", "US small-cap equity", AssetGroup.EQUITY, "IWM"),
        _builtin("INTL_DEV", "International developed equity", AssetGroup.EQUITY, "EFA"),
        _builtin("EM_EQUITY", "Emerging-market equity", AssetGroup.EQUITY, "EEM"),
        _builtin("UST_10Y", "Intermediate Treasuries (7-10y)", AssetGroup.FIXED_INCOME, "IEF"),
        _builtin("UST_LONG", "Long Treasuries (20y+)", AssetGroup.FIXED_INCOME, "TLT"),
        _builtin("GOLD", "Gold", AssetGroup.REAL_ASSETS, "GLD"),
        _builtin("COMMODITIES", "Broad commodities", AssetGroup.REAL_ASSETS, "DBC"),
        _builtin(
            "MANAGED_FUT",
            "Managed futures (trend)",
            AssetGroup.ALTERNATIVES,
            "DBMF",
            "Trend-following futures; long histories are gross of fees",
        ),
        _builtin(
            "CARRY",
            "Multi-asset carry",
            AssetGroup.ALTERNATIVES,
            "",
            "Futures yield/carry strategy; no good public proxy",
        ),
        _builtin(
            "MERGER_ARB",
            "Merger arbitrage",
            AssetGroup.ALTERNATIVES,
            "MNA",
            "Long targets / short acquirers; proxy is loose",
        ),
    ]
}


@dataclass
class FundDefinition:
    """One fund: what it holds per dollar of NAV, what it costs, where that came from.

    Parameters
    ----------
    symbol : str
        Ticker, upper case.
    exposures : dict[str, float]
        Exposure type code -> percent of NAV (100.0 = 100%). Negative for short sleeves.
    expense_ratio : float
        Percent per year (0.95 means 0.95%).
    financing_spread : float
        Percent per year paid over the cash rate on borrowed notional (notional - 100%),
        for swap-financed leveraged funds. 0 for futures-based funds.
    source : str
        Where the exposures and costs were published (issuer page, prospectus).
    """

    symbol: str
    name: str = ""
    exposures: dict[str, float] = field(default_factory=dict)
    expense_ratio: float = 0.0
    financing_spread: float = 0.0
    source: str = ""
    notes: str = ""
    inception: str | None = None

    @property
    def notional_pct(self) -> float:
        """Sum of absolute exposures in percent of NAV (RSSB: 200)."""
        return float(sum(abs(v) for v in self.exposures.values()))

    @property
    def notional(self) -> float:
        """Sum of absolute exposures as a fraction (RSSB: 2.0)."""
        return self.notional_pct / 100.0

    @property
    def is_leveraged(self) -> bool:
        return self.notional_pct > 100.0 + 1e-9

    @property
    def annual_cost(self) -> float:
        """Expense ratio plus financing on borrowed notional, as a fraction per year."""
        borrowed = max(self.notional - 1.0, 0.0)
        return self.expense_ratio / 100.0 + self.financing_spread / 100.0 * borrowed

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "symbol": self.symbol,
            "name": self.name,
            "exposures": {k: float(v) for k, v in self.exposures.items()},
            "expense_ratio": float(self.expense_ratio),
            "financing_spread": float(self.financing_spread),
            "source": self.source,
        }
        if self.notes:
            d["notes"] = self.notes
        if self.inception:
            d["inception"] = self.inception
        return d

    def copy(self, **changes: Any) -> FundDefinition:
        fund = replace(self, exposures=dict(self.exposures))
        return replace(fund, **changes) if changes else fund


#: A number grouped by thousands: 1,000 or -12,345.5.
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")


def _as_number(value: Any, what: str, field_name: str) -> float:
    if isinstance(value, bool):
        raise ValidationError(f"{what} must be a number, got {value!r}", field=field_name)
    if isinstance(value, str):
        text = value.strip().replace("%", "")
        if "," in text:
            # Only a thousands separator may go: stripping every ',' read "60,5" as 605.
            if not _THOUSANDS.fullmatch(text):
                raise ValidationError(
                    f"{what} must be a number with '.' as the decimal separator, got {value!r}",
                    field=field_name,
                )
            text = text.replace(",", "")
        try:
            number = float(text)
        except ValueError:
            raise ValidationError(
                f"{what} must be a number, got {value!r}", field=field_name
            ) from None
    else:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: a huge JSON int
            raise ValidationError(
                f"{what} must be a number, got {value!r}", field=field_name
            ) from None
    if not math.isfinite(number):
        raise ValidationError(f"{what} must be finite, got {value!r}", field=field_name)
    return number


class FundExposureMap:
    """The fund exposure map: exposure types plus one :class:`FundDefinition` per fund.

    Load with :meth:`from_json` / :meth:`from_csv` / :meth:`default`, save with
    :meth:`save_json` / :meth:`save_csv`. Every loader validates and raises a
    :class:`~core.errors.ValidationError` listing every problem found.
    """

    FORMAT = "stackopt-fund-map"
    VERSION = 1

    def __init__(
        self,
        funds: Iterable[FundDefinition] = (),
        exposure_types: Iterable[ExposureType] | None = None,
    ):
        self.exposure_types: dict[str, ExposureType] = dict(BUILTIN_EXPOSURE_TYPES)
        for t in exposure_types or ():
            self.exposure_types[t.code] = t
        self.funds: dict[str, FundDefinition] = {}
        for fund in funds:
            self.add_fund(fund)

    # ------------------------------------------------------------------ access
    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol.upper() in self.funds

    def __getitem__(self, symbol: str) -> FundDefinition:
        try:
            return self.funds[symbol.upper()]
        except KeyError:
            raise KeyError(
                f"{symbol!r} is not in the fund map; add it on the Fund Exposures tab"
            ) from None

    def __len__(self) -> int:
        return len(self.funds)

    def __iter__(self):
        return iter(self.funds.values())

    @property
    def symbols(self) -> list[str]:
        return list(self.funds)

    def get(self, symbol: str) -> FundDefinition | None:
        return self.funds.get(symbol.upper())

    def used_exposure_types(self, symbols: Iterable[str] | None = None) -> list[str]:
        """Codes of the exposure types any of ``symbols`` carries, in registry order."""
        funds = self.funds.values() if symbols is None else [self[s] for s in symbols]
        used = {code for f in funds for code, v in f.exposures.items() if v != 0}
        return [code for code in self.exposure_types if code in used]

    def copy(self) -> FundExposureMap:
        new = FundExposureMap(exposure_types=self.exposure_types.values())
        new.funds = {s: f.copy() for s, f in self.funds.items()}
        return new

    # ---------------------------------------------------------------- mutation
    def add_exposure_type(self, exposure_type: ExposureType) -> None:
        if exposure_type.code in self.exposure_types:
            raise ValidationError(
                f"Exposure type {exposure_type.code} already exists; pick another code",
                field="code",
            )
        self.exposure_types[exposure_type.code] = exposure_type

    def add_fund(self, fund: FundDefinition, *, replace_existing: bool = False) -> None:
        fund = self.validate_fund(fund)
        if fund.symbol in self.funds and not replace_existing:
            raise ValidationError(
                f"Duplicate symbol {fund.symbol}: it is already in the fund map", field="symbol"
            )
        self.funds[fund.symbol] = fund

    def set_fund(self, fund: FundDefinition) -> None:
        self.add_fund(fund, replace_existing=True)

    def remove_fund(self, symbol: str) -> FundDefinition:
        return self.funds.pop(symbol.upper())

    # -------------------------------------------------------------- validation
    def validate_fund(self, fund: FundDefinition) -> FundDefinition:
        """Return a normalised copy of ``fund`` or raise listing every problem."""
        problems: list[str] = []
        first_field: str | None = None
        symbol = str(fund.symbol or "").strip().upper()
        if not symbol:
            problems.append("Fund symbol is empty")
            first_field = "symbol"
        exposures: dict[str, float] = {}
        for code, value in fund.exposures.items():
            code_u = str(code).strip().upper()
            if code_u not in self.exposure_types:
                problems.append(
                    f"{symbol}: unknown exposure type {code!r}; add it as a custom type "
                    f"or use one of {', '.join(self.exposure_types)}"
                )
                first_field = first_field or f"exposures.{code}"
                continue
            try:
                exposures[code_u] = exposures.get(code_u, 0.0) + _as_number(
                    value, f"{symbol}: exposure {code_u}", f"exposures.{code_u}"
                )
            except ValidationError as exc:
                problems.append(str(exc))
                first_field = first_field or exc.field
        costs = {}
        for attr, label in (
            ("expense_ratio", "expense ratio"),
            ("financing_spread", "financing spread"),
        ):
            try:
                costs[attr] = _as_number(getattr(fund, attr), f"{symbol}: {label}", attr)
            except ValidationError as exc:
                problems.append(str(exc))
                first_field = first_field or attr
                costs[attr] = 0.0
        if costs["expense_ratio"] < 0 or costs["expense_ratio"] > 10:
            problems.append(
                f"{symbol}: expense ratio {costs['expense_ratio']}% is outside 0-10%; "
                "enter it in percent per year (0.95 for 0.95%)"
            )
            first_field = first_field or "expense_ratio"
        if abs(costs["financing_spread"]) > 10:
            problems.append(
                f"{symbol}: financing spread {costs['financing_spread']}% is outside +-10%; "
                "enter it in percent per year"
            )
            first_field = first_field or "financing_spread"
        inception = fund.inception
        if inception is not None and not isinstance(inception, str):
            # Any JSON value got through once, and an infinite one made the map unsavable.
            problems.append(
                f"{symbol}: inception must be a date like '2023-02-08', got {inception!r}"
            )
            first_field = first_field or "inception"
        notional = sum(abs(v) for v in exposures.values())
        if notional > MAX_NOTIONAL_PCT:
            problems.append(
                f"{symbol}: notional {notional:.0f}% of NAV is absurd (over "
                f"{MAX_NOTIONAL_PCT:.0f}%); exposures are in percent of NAV, e.g. 100 for 100%"
            )
            first_field = first_field or "exposures"
        if problems:
            raise ValidationError("; ".join(problems), field=first_field, problems=problems)
        return FundDefinition(
            symbol=symbol,
            # free text is trimmed once here, so every file format round-trips it
            name=str(fund.name or "").strip(),
            exposures={k: v for k, v in exposures.items() if v != 0.0},
            expense_ratio=costs["expense_ratio"],
            financing_spread=costs["financing_spread"],
            source=str(fund.source or "").strip(),
            notes=str(fund.notes or "").strip(),
            inception=fund.inception,
        )

    def warnings(self) -> list[str]:
        """Soft problems worth a second look (not errors)."""
        out = []
        for f in self.funds.values():
            if f.notional_pct > WARN_NOTIONAL_PCT:
                out.append(f"{f.symbol}: notional {f.notional_pct:.0f}% is unusually high")
            if not f.exposures:
                out.append(f"{f.symbol}: has no exposures; it will be treated as cash-like")
            if not f.source:
                out.append(f"{f.symbol}: no source given for its exposures")
        return out

    # --------------------------------------------------------------- serialise
    def to_dict(self) -> dict[str, Any]:
        custom = [t.to_dict() for t in self.exposure_types.values() if not t.builtin]
        return {
            "format": self.FORMAT,
            "version": self.VERSION,
            "exposure_types": custom,
            "funds": [f.to_dict() for f in self.funds.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "fund map") -> FundExposureMap:
        if not isinstance(data, Mapping):
            raise ValidationError(f"{source}: expected a JSON object with a 'funds' list")
        types_raw = data.get("exposure_types", [])
        funds_raw = data.get("funds")
        if not isinstance(types_raw, list):
            raise ValidationError(
                f"{source}: 'exposure_types' must be a list", field="exposure_types"
            )
        if not isinstance(funds_raw, list):
            raise ValidationError(f"{source}: 'funds' must be a list of funds", field="funds")
        types = []
        for i, t in enumerate(types_raw):
            if not isinstance(t, Mapping):
                raise ValidationError(
                    f"{source}: exposure_types[{i}] must be an object with a 'code'",
                    field=f"exposure_types[{i}]",
                )
            try:
                types.append(ExposureType.from_dict(t))
            except ValidationError as exc:
                raise ValidationError(
                    f"{source}: exposure_types[{i}]: {exc}",
                    field=f"exposure_types[{i}].{exc.field}" if exc.field else None,
                ) from None
        result = cls(exposure_types=types)
        problems: list[str] = []
        first_field = None
        for i, raw in enumerate(funds_raw):
            if not isinstance(raw, Mapping):
                problems.append(f"funds[{i}] is not an object")
                first_field = first_field or f"funds[{i}]"
                continue
            exposures = raw.get("exposures", {})
            if not isinstance(exposures, Mapping):
                problems.append(f"funds[{i}].exposures must be an object of type -> percent")
                first_field = first_field or f"funds[{i}].exposures"
                continue
            fund = FundDefinition(
                symbol=str(raw.get("symbol", "")),
                name=str(raw.get("name", "")),
                exposures=dict(exposures),
                expense_ratio=raw.get("expense_ratio", 0.0),
                financing_spread=raw.get("financing_spread", 0.0),
                source=str(raw.get("source", "")),
                notes=str(raw.get("notes", "")),
                inception=raw.get("inception"),
            )
            try:
                result.add_fund(fund)
            except ValidationError as exc:
                problems.extend(exc.problems)
                first_field = first_field or f"funds[{i}].{exc.field or ''}".rstrip(".")
        if problems:
            raise ValidationError(
                f"{source}: " + "; ".join(problems), field=first_field, problems=problems
            )
        return result

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> FundExposureMap:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise DataError("file not found", path=str(path)) from None
        except IsADirectoryError:
            raise DataError("this is a folder, not a file", path=str(path)) from None
        except OSError as exc:
            raise DataError(
                f"cannot read the file ({exc.strerror or exc})", path=str(path)
            ) from exc
        except RecursionError:
            raise DataError(
                "not a fund map: the JSON is nested too deeply", path=str(path)
            ) from None
        except UnicodeDecodeError as exc:
            raise DataError(f"not a UTF-8 text file: {exc.reason}", path=str(path)) from exc
        except json.JSONDecodeError as exc:
            raise DataError(
                f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                path=str(path),
                row=exc.lineno,
            ) from exc
        return cls.from_dict(data, source=str(path))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save_json(self, path: str | os.PathLike[str]) -> None:
        from core.fileio import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    # CSV: one row per fund; columns symbol, name, expense_ratio, financing_spread,
    # source, then one column per exposure type code (percent of NAV).
    CSV_FIXED = ("symbol", "name", "expense_ratio", "financing_spread", "source")

    CSV_TEXT = ("notes", "inception")

    def to_csv(self, *, neutralise: bool = False) -> str:
        """The map as CSV text: fund fields, then one column per exposure type (percent).

        ``neutralise`` guards free-text cells against spreadsheet formula injection
        (done by :meth:`save_csv`; :meth:`from_csv_text` undoes it on read).
        """
        from core.fileio import neutralise_cell

        def text(value: str) -> object:
            return neutralise_cell(value) if neutralise else value

        codes = self.used_exposure_types()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*self.CSV_FIXED, *self.CSV_TEXT, *codes])
        for f in self.funds.values():
            writer.writerow(
                [
                    text(f.symbol),
                    text(f.name),
                    f"{f.expense_ratio:g}",
                    f"{f.financing_spread:g}",
                    text(f.source),
                    text(f.notes),
                    f.inception or "",
                    *[f"{f.exposures[c]:g}" if c in f.exposures else "" for c in codes],
                ]
            )
        return buf.getvalue()

    def save_csv(self, path: str | os.PathLike[str]) -> None:
        from core.fileio import atomic_write_text

        atomic_write_text(path, self.to_csv(neutralise=True))

    @classmethod
    def from_csv_text(
        cls, text: str, *, source: str = "fund map CSV", base: FundExposureMap | None = None
    ) -> FundExposureMap:
        """Parse a fund map CSV. Unknown columns must be exposure type codes.

        ``base`` supplies custom exposure types already defined (columns naming a
        type that exists nowhere are reported).
        """
        from core.fileio import restore_cell

        text = text.lstrip("\ufeff")
        parser = csv.reader(io.StringIO(text))
        try:
            reader = iter(list(parser))
        except csv.Error as exc:  # e.g. a quoted cell longer than the csv field limit
            raise DataError(
                f"the CSV layout is broken: {exc}", path=source, row=max(parser.line_num, 1)
            ) from None
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError("the file is empty; expected a header row", path=source) from None
        lower = [h.lower() for h in header]
        if "symbol" not in lower:
            raise DataError(
                "no 'symbol' column; the first row must name the columns "
                "(symbol, name, expense_ratio, financing_spread, source, <exposure codes>)",
                path=source,
                row=1,
            )
        types = dict(base.exposure_types) if base else dict(BUILTIN_EXPOSURE_TYPES)
        result = cls(exposure_types=types.values())
        exposure_cols: list[tuple[int, str]] = []
        for i, h in enumerate(header):
            if lower[i] in cls.CSV_FIXED or lower[i] in ("notes", "inception", "notional"):
                continue
            code = h.strip().upper().removesuffix("_PCT").removesuffix(" %").strip()
            if code not in result.exposure_types:
                raise DataError(
                    f"column {h!r} is neither a fund field nor a known exposure type",
                    path=source,
                    row=1,
                    column=h,
                )
            if any(code == known for _, known in exposure_cols):
                raise DataError(
                    f"exposure type {code} has two columns; keep one", path=source, row=1, column=h
                )
            exposure_cols.append((i, code))
        col = {
            name: lower.index(name)
            for name in lower
            if name in cls.CSV_FIXED + ("notes", "inception")
        }
        seen: set[str] = set()
        for rownum, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if any(c.strip() for c in row[len(header) :]):
                # Usually an unquoted decimal comma ("60,5") that split a cell in two.
                raise DataError(
                    f"row has {len(row)} cells but the header names {len(header)} columns; "
                    "quote cells that contain commas and use '.' as the decimal separator",
                    path=source,
                    row=rownum,
                )
            row = row + [""] * (len(header) - len(row))

            def cell(name: str, row: list[str] = row) -> str:
                return restore_cell(row[col[name]].strip()) if name in col else ""

            symbol = cell("symbol").upper()
            if symbol in seen:
                raise DataError(
                    f"duplicate symbol {symbol}", path=source, row=rownum, column="symbol"
                )
            seen.add(symbol)
            exposures: dict[str, float] = {}
            for i, code in exposure_cols:
                raw = row[i].strip()
                if raw == "":
                    continue
                try:
                    exposures[code] = _as_number(raw, f"{symbol} {code}", code)
                except ValidationError:
                    raise DataError(
                        f"{raw!r} is not a number (percent of NAV expected)",
                        path=source,
                        row=rownum,
                        column=header[i],
                    ) from None
            try:
                result.add_fund(
                    FundDefinition(
                        symbol=symbol,
                        name=cell("name"),
                        exposures=exposures,
                        expense_ratio=cell("expense_ratio") or 0.0,
                        financing_spread=cell("financing_spread") or 0.0,
                        source=cell("source"),
                        notes=cell("notes"),
                        inception=cell("inception") or None,
                    )
                )
            except ValidationError as exc:
                raise DataError(
                    "; ".join(exc.problems), path=source, row=rownum, column=exc.field
                ) from None
        return result

    @classmethod
    def from_csv(
        cls, path: str | os.PathLike[str], base: FundExposureMap | None = None
    ) -> FundExposureMap:
        from core.fileio import read_text_any_encoding

        return cls.from_csv_text(read_text_any_encoding(path), source=str(path), base=base)

    @classmethod
    def default(cls) -> FundExposureMap:
        """The built-in fund map shipped in ``resources/``."""
        from core.resources import resource_text

        return cls.from_dict(
            json.loads(resource_text("default_fund_map.json")), source="built-in fund map"
        )


def upper_symbols(symbols: Iterable[Any], *, strip: bool = False) -> list[str]:
    """``[str(s).upper() for s in symbols]`` (stripped too with ``strip``), in C loops.

    Runs on every optimization call; for 1,000 funds the per-item loop cost 0.15 ms, a
    tenth of a whole Black-Litterman update.
    """
    items = symbols if isinstance(symbols, list) else list(symbols)
    if not items:
        return []
    try:
        joined = "\x00".join(items)
    except TypeError:  # not all strings
        items = list(map(str, items))
        joined = "\x00".join(items)
    upper = joined.upper()
    if upper == joined and not (strip and _padded(joined)):
        # already upper case (the usual case): the same string objects, whose hashes
        # are kept, so the caller's dictionaries and keys compare them by identity
        return list(items)
    out = upper.split("\x00")
    if len(out) != len(items):  # a symbol holding NUL: item by item
        out = [s.upper() for s in items]
    if strip and _padded(joined):
        out = [s.strip() for s in out]
    return out


#: Whitespace next to a separator of the joined symbols: some symbol needs stripping.
_PADDED = re.compile(r"\s\x00|\x00\s")
_ASCII_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


def _padded(joined: str) -> bool:
    """Does a symbol of ``"\\x00".join(symbols)`` start or end with whitespace?"""
    if joined != joined.strip():
        return True
    if joined.isascii() and not any(c in joined for c in _ASCII_SPACE):
        return False  # no whitespace at all: ten memchr scans beat the expression 10x
    return _PADDED.search(joined) is not None


#: Symbol indexes already built (pandas infers and converts 1,000 strings in 0.06 ms).
_INDEXES: Kept[pd.Index] = Kept(32)


def symbol_index(symbols: Sequence[str], *, object_dtype: bool = False) -> pd.Index:
    """``pd.Index(symbols)`` for labelling a result, without building it again.

    Every optimization result labels a few series with the same funds; pandas takes
    about 0.06 ms to build that index from 1,000 strings, against 0.01 ms to hash them.
    The index is kept for the last few symbol lists and handed out as a new view each
    time, so renaming one result's index cannot change another's.
    """
    key = (tuple(symbols), object_dtype)
    idx = _INDEXES.get(key)
    if idx is None:
        idx = pd.Index(list(key[0]), dtype=object if object_dtype else None)
        _INDEXES.put(key, idx)
    return idx.view()


class ExposureCalculator:
    """Exposure matrix, portfolio exposures and notional for a list of funds.

    Parameters
    ----------
    fund_map : FundExposureMap
    symbols : sequence of str
        The funds, in the order of the weight vectors passed to the methods.
    exposure_types : sequence of str, optional
        Rows of the exposure matrix; default: every type any of the funds carries.

    Attributes
    ----------
    matrix : ndarray, shape (K, N)
        ``E[k, i]`` = exposure of fund i to type k as a fraction of NAV.
    notionals : ndarray, shape (N,)
        Sum of absolute exposures per fund, fractions (RSSB 2.0).
    """

    def __init__(
        self,
        fund_map: FundExposureMap,
        symbols: Sequence[str],
        exposure_types: Sequence[str] | None = None,
    ):
        self.fund_map = fund_map
        self.symbols = upper_symbols(symbols)
        missing = [s for s in self.symbols if s not in fund_map.funds]  # keys are upper case
        if missing:
            raise ValidationError(
                f"Not in the fund map: {', '.join(missing)}. Add them on the Fund Exposures tab.",
                field="symbols",
            )
        if exposure_types is not None:
            unknown = [c for c in exposure_types if c not in fund_map.exposure_types]
            if unknown:
                raise ValidationError(
                    f"Unknown exposure types: {', '.join(unknown)}", field="exposure_types"
                )
        funds = [fund_map.funds[s] for s in self.symbols]
        # Flat lists of every fund's few exposures, then arrays (not types x funds lookups
        # nor a Python loop per fund): this runs for every optimization.
        maps = [f.exposures for f in funds]
        counts = np.fromiter(map(len, maps), dtype=np.intp, count=len(maps))
        codes = [c for m in maps for c in m]
        vals = np.fromiter((v for m in maps for v in m.values()), dtype=float, count=len(codes))
        cols = np.repeat(np.arange(len(funds)), counts)
        notional_pct = np.bincount(cols, weights=np.abs(vals), minlength=len(funds))
        if exposure_types is None:  # the types the funds carry, in registry order
            used = {c for c, v in zip(codes, vals.tolist(), strict=True) if v != 0}
            exposure_types = [c for c in fund_map.exposure_types if c in used]
        self.exposure_types = list(exposure_types)
        row = {code: k for k, code in enumerate(self.exposure_types)}
        rows = np.fromiter((row.get(c, -1) for c in codes), dtype=np.intp, count=len(codes))
        keep = rows >= 0
        self.matrix = np.zeros((len(self.exposure_types), len(funds)))
        self.matrix[rows[keep], cols[keep]] = vals[keep] / 100.0
        self.notionals = notional_pct / 100.0
        expense = np.array([f.expense_ratio for f in funds], dtype=float)
        spread = np.array([f.financing_spread for f in funds], dtype=float)
        # FundDefinition.annual_cost, vectorised: expense + spread on borrowed notional
        self.annual_costs = expense / 100.0 + spread / 100.0 * np.maximum(self.notionals - 1.0, 0)
        self.groups = [fund_map.exposure_types[c].group for c in self.exposure_types]

    def with_types(self, exposure_types: Sequence[str]) -> ExposureCalculator:
        """The same funds over other types, without reading the funds again.

        A type among this calculator's keeps its row; any other must be one no fund here
        carries (its row is zero), as when a constraint names a type none of them holds.

        Raises
        ------
        ValidationError
            A type is unknown, or is carried by a fund while missing from this calculator
            (so its row would be wrong).
        """
        pos = {c: k for k, c in enumerate(self.exposure_types)}
        unknown = [c for c in exposure_types if c not in self.fund_map.exposure_types]
        if unknown:
            raise ValidationError(
                f"Unknown exposure types: {', '.join(unknown)}", field="exposure_types"
            )
        carried = (
            set(self.fund_map.used_exposure_types(self.symbols))
            if any(c not in pos for c in exposure_types)
            else set()
        )
        hidden = [c for c in exposure_types if c not in pos and c in carried]
        if hidden:
            raise ValidationError(
                f"{', '.join(hidden)} is carried by these funds but not in this calculator",
                field="exposure_types",
            )
        new = object.__new__(ExposureCalculator)
        new.fund_map = self.fund_map
        new.symbols = list(self.symbols)
        new.exposure_types = list(exposure_types)
        new.matrix = np.zeros((len(new.exposure_types), len(self.symbols)))
        for k, c in enumerate(new.exposure_types):
            if c in pos:
                new.matrix[k] = self.matrix[pos[c]]
        new.notionals = self.notionals
        new.annual_costs = self.annual_costs
        new.groups = [self.fund_map.exposure_types[c].group for c in new.exposure_types]
        return new

    def carried(self) -> ExposureCalculator:
        """This calculator over :meth:`carried_types` only (built once, then kept: the
        engine labels every result of a kept constraint form with it). Do not modify it."""
        kept = getattr(self, "_carried", None)
        if kept is None:
            kept = self.with_types(self.carried_types())
            self._carried = kept
        return kept

    def carried_types(self) -> list[str]:
        """This calculator's types that at least one of its funds carries (non-zero row)."""
        return [c for c, row in zip(self.exposure_types, self.matrix, strict=True) if row.any()]

    def _weights(self, weights: Sequence[float] | pd.Series | np.ndarray) -> np.ndarray:
        if isinstance(weights, pd.Series):
            w = weights.reindex(self.symbols).fillna(0.0).to_numpy(dtype=float)
        else:
            w = np.asarray(weights, dtype=float)
        if w.shape != (len(self.symbols),):
            raise ValidationError(
                f"Expected {len(self.symbols)} weights (one per fund), got shape {w.shape}",
                field="weights",
            )
        return w

    def exposure_matrix(self) -> pd.DataFrame:
        """The exposure matrix E (types x funds) as a labelled frame of fractions."""
        return pd.DataFrame(self.matrix, index=self.exposure_types, columns=self.symbols)

    def portfolio_exposures(self, weights) -> pd.Series:
        """``x = E w``: exposure per type as a fraction of portfolio value."""
        return pd.Series(
            self.matrix @ self._weights(weights), index=symbol_index(self.exposure_types)
        )

    def total_notional(self, weights) -> float:
        """``sum_i |w_i| * notional_i`` as a fraction of portfolio value."""
        return float(np.abs(self._weights(weights)) @ self.notionals)

    def group_matrix(self) -> tuple[list[AssetGroup], np.ndarray]:
        """Groups present and G (groups x types) summing types into their group."""
        present = [g for g in AssetGroup if g in self.groups]
        g = np.array([[1.0 if tg == grp else 0.0 for tg in self.groups] for grp in present])
        return present, g.reshape(len(present), len(self.exposure_types))

    def exposure_by_group(self, weights) -> pd.Series:
        """Portfolio exposure summed per asset-class group (fractions)."""
        present, g = self.group_matrix()
        x = self.matrix @ self._weights(weights)
        return pd.Series(g @ x, index=symbol_index([grp.value for grp in present]))

    def fund_costs(self, weights) -> float:
        """Weighted annual cost of the funds (expense + financing), fraction per year."""
        return float(self._weights(weights) @ self.annual_costs)
