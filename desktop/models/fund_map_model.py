"""Table models of the Fund Exposures tab, and the fit of each fund's map to its history.

:class:`FundMapModel` is the funds x exposure types matrix (percent of NAV) over
``session.workspace.fund_map``; every edit goes through a
:class:`~desktop.tabs._commands.FundMapCommand`. :class:`FitDetailModel` lists, for the
selected fund, each published exposure next to its measured beta.

Fits come from two places (:class:`FitBook`): the built-in summary
``resources/fund_map_fit.json`` (no price data ships with StackOpt), or a live
:func:`core.market_data.fit_fund_map` on prices the user loaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPainter, QPixmap

from core.errors import StackOptError, ValidationError
from core.exposures import WARN_NOTIONAL_PCT, FundDefinition, FundExposureMap
from core.market_data import (
    ExposureFit,
    FundMapFit,
    MapCheck,
    fit_fund_map,
    map_disagreements,
)
from core.resources import resource_text
from desktop.session import Session
from desktop.tabs._commands import FundMapCommand

Index = QModelIndex | QPersistentModelIndex

_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
INVALID_BRUSH = QBrush(QColor(255, 205, 205))
WARN_BRUSH = QBrush(QColor(255, 236, 189))
_STALE_COLOR = QBrush(QColor(130, 130, 130))

#: Short column labels of the built-in exposure types (the header tooltip gives the name).
SHORT_LABELS = {
    "CASH_TBILL": "Cash\nT-bills",
    "US_EQUITY": "US\nequity",
    "US_SMALL": "US\nsmall",
    "INTL_DEV": "Intl\ndev",
    "EM_EQUITY": "EM\nequity",
    "UST_10Y": "UST\n7-10y",
    "UST_LONG": "UST\n20y+",
    "GOLD": "Gold",
    "COMMODITIES": "Commo-\ndities",
    "MANAGED_FUT": "Managed\nfutures",
    "CARRY": "Carry",
    "MERGER_ARB": "Merger\narb",
}


def short_label(code: str) -> str:
    """Two-line column label of an exposure type code."""
    if code in SHORT_LABELS:
        return SHORT_LABELS[code]
    words = code.replace("_", " ").title().split()
    return "\n".join([" ".join(words[:1]), " ".join(words[1:])]) if len(words) > 1 else code


# ============================================================================ fits
@dataclass
class FundFit:
    """What the price history says about one fund's map.

    Attributes
    ----------
    origin : {'built-in', 'prices'}
        The summary shipped in ``resources/fund_map_fit.json`` or a fit on loaded prices.
    r_squared, tracking_error : float or None
        Of the regression of the fund's excess returns on its proxies (fractions).
    betas, beta_stderr : dict
        Measured exposure per type code, fractions.
    published : dict
        Exposures (percent) of the map the betas were measured against.
    check : MapCheck or None
        Published vs measured; None when the fit no longer applies (``stale``).
    stale : bool
        The fund now carries other exposure types than the fit measured: the R^2 and
        tracking error describe another map until the fund is refitted.
    edited : bool
        The fund's numbers differ from ``published`` but it carries the same types: the
        betas still apply and ``check`` was recomputed against the new numbers.
    """

    symbol: str
    origin: str
    r_squared: float | None = None
    tracking_error: float | None = None
    betas: dict[str, float] = field(default_factory=dict)
    beta_stderr: dict[str, float] = field(default_factory=dict)
    published: dict[str, float] = field(default_factory=dict)
    check: MapCheck | None = None
    stale: bool = False
    edited: bool = False
    n_obs: int = 0
    start: str = ""
    end: str = ""
    frequency: str = "weekly"
    loose_types: list[str] = field(default_factory=list)
    probes: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """'agrees', 'disagrees', 'loose' (disagrees on a loose proxy only) or 'stale'."""
        if self.stale or self.check is None:
            return "stale"
        if self.check.disagreements:
            return "disagrees"
        if self.check.loose:
            return "loose"
        return "agrees"

    def summary(self) -> str:
        """One paragraph for tooltips."""
        where = "built-in fit" if self.origin == "built-in" else "fit on the loaded prices"
        head = (
            f"{self.symbol}: {where}, {self.frequency} {self.start} to {self.end} "
            f"({self.n_obs} obs)"
        )
        if self.r_squared is not None:
            head += f", R\u00b2 {self.r_squared:.3f}"
        if self.stale:
            return (
                head + ".\nSTALE: the fund now carries other exposure types than were "
                "measured; load prices and fit from history to refresh."
            )
        assert self.check is not None
        lines = [head + "."]
        if self.edited:
            lines.append("The map was edited since this fit; the verdict uses the new numbers.")
        if self.check.disagreements:
            lines.append("Map DISAGREES with its history:")
            lines += [f"  {d.describe()}" for d in self.check.disagreements]
        elif self.check.loose:
            lines.append("Differences on loose proxies (reported, not failed):")
            lines += [f"  {d.describe()}" for d in self.check.loose]
        else:
            lines.append("Map agrees with its history.")
        if self.check.unfitted:
            lines.append(f"Not measured (no proxy prices): {', '.join(self.check.unfitted)}")
        return "\n".join(lines)


def carried_types(fund: FundDefinition) -> set[str]:
    """Exposure types a fund carries, cash aside (what a fit regresses on)."""
    return {c for c, v in fund.exposures.items() if v != 0 and c != "CASH_TBILL"}


def _same_exposures(a: dict[str, float], b: dict[str, float]) -> bool:
    keys = {k for k, v in a.items() if v} | {k for k, v in b.items() if v}
    return all(abs(a.get(k, 0.0) - b.get(k, 0.0)) < 1e-9 for k in keys)


@lru_cache(maxsize=1)
def builtin_fit_summary() -> dict[str, Any]:
    """``resources/fund_map_fit.json`` parsed (summary statistics only, no prices)."""
    return json.loads(resource_text("fund_map_fit.json"))


def _builtin_fit(fund: FundDefinition, entry: dict[str, Any]) -> FundFit:
    betas = {c: float(b) / 100.0 for c, b in entry.get("betas", {}).items()}
    stderr = {c: float(s) / 100.0 for c, s in entry.get("beta_stderr", {}).items()}
    published = {c: float(v) for c, v in entry.get("published", {}).items()}
    probes: dict[str, tuple[float, float]] = {}
    for code, probe in entry.get("probes", {}).items():
        beta = float(probe.get("beta", 0.0)) / 100.0
        t = probe.get("t")
        probes[code] = (beta, abs(beta / t) if t else 0.0)
    measured_types = set(entry.get("proxies", {})) | set(entry.get("unfitted", []))
    record = FundFit(
        symbol=fund.symbol,
        origin="built-in",
        r_squared=entry.get("r_squared"),
        tracking_error=entry.get("tracking_error_annual"),
        betas=betas,
        beta_stderr=stderr,
        published=published,
        n_obs=int(entry.get("n_obs", 0)),
        start=str(entry.get("start", "")),
        end=str(entry.get("end", "")),
        frequency=str(entry.get("frequency", "weekly")),
        loose_types=list(entry.get("loose_types", [])),
        probes=probes,
    )
    if carried_types(fund) != measured_types:
        record.stale = True
        return record
    record.edited = not _same_exposures(fund.exposures, published)
    fit = ExposureFit(
        symbol=fund.symbol,
        betas=betas,
        alpha_annual=float(entry.get("alpha_annual", 0.0)),
        r_squared=float(entry.get("r_squared", math.nan)),
        residual_vol_annual=float(entry.get("residual_vol_annual", math.nan)),
        tracking_error_annual=float(entry.get("tracking_error_annual", math.nan)),
        n_obs=record.n_obs,
        start=pd.Timestamp(record.start or "1970-01-01"),
        end=pd.Timestamp(record.end or "1970-01-01"),
        frequency=record.frequency,
        beta_stderr=stderr,
    )
    record.check = map_disagreements(fund, fit, loose_types=record.loose_types, probes=probes)
    return record


def _live_fit(result: FundMapFit) -> FundFit:
    fit = result.fit
    return FundFit(
        symbol=result.symbol,
        origin="prices",
        r_squared=fit.r_squared,
        tracking_error=fit.tracking_error_annual,
        betas=dict(fit.betas),
        beta_stderr=dict(fit.beta_stderr),
        published=dict(result.fund.exposures),
        check=result.check(),
        n_obs=fit.n_obs,
        start=f"{fit.start:%Y-%m-%d}",
        end=f"{fit.end:%Y-%m-%d}",
        frequency=fit.frequency,
        loose_types=list(result.loose_types),
        probes=dict(result.probes),
    )


def _signature(fund: FundDefinition) -> tuple[tuple[str, float], ...]:
    """What a fit depends on: the exposures (costs only move the synthetic series)."""
    return tuple(sorted((c, float(v)) for c, v in fund.exposures.items() if v))


class FitBook:
    """The fit of every fund: built-in summary, or live fits once prices are loaded.

    Attributes
    ----------
    prices : DataFrame or None, shape (days, tickers)
        Cleaned daily prices the user loaded (never saved in the workspace).
    live : dict[str, FundMapFit]
        Fits on ``prices`` by symbol.
    skipped : dict[str, str]
        Funds the live fit could not measure, with the reason.
    """

    def __init__(self) -> None:
        self.prices: pd.DataFrame | None = None
        self.live: dict[str, FundMapFit] = {}
        self.skipped: dict[str, str] = {}
        self._fitted: dict[str, tuple[tuple[str, float], ...]] = {}

    @property
    def has_prices(self) -> bool:
        return self.prices is not None

    def set_live(
        self,
        prices: pd.DataFrame,
        fits: dict[str, FundMapFit],
        skipped: dict[str, str],
        fund_map: FundExposureMap,
    ) -> None:
        """Adopt a fit of every fund of ``fund_map`` (the map the fit was run on)."""
        self.prices = prices
        self.live = dict(fits)
        self.skipped = dict(skipped)
        self._fitted = {f.symbol: _signature(f) for f in fund_map}

    def clear_prices(self) -> None:
        self.prices = None
        self.live, self.skipped, self._fitted = {}, {}, {}

    def out_of_date(self, fund_map: FundExposureMap) -> list[str]:
        """Funds whose exposures changed since they were fitted on the loaded prices."""
        if self.prices is None:
            return []
        return [f.symbol for f in fund_map if self._fitted.get(f.symbol) != _signature(f)]

    def refit(self, fund_map: FundExposureMap, symbols: list[str]) -> None:
        """Refit ``symbols`` on the loaded prices now (tens of milliseconds per fund)."""
        if self.prices is None:
            return
        for symbol in symbols:
            self.live.pop(symbol, None)
            self.skipped.pop(symbol, None)
            self._fitted.pop(symbol, None)
            fund = fund_map.get(symbol)
            if fund is None:
                continue
            self._fitted[symbol] = _signature(fund)
            try:
                fits, skipped = fit_fund_map(self.prices, fund_map, symbols=[symbol])
            except StackOptError as exc:
                self.skipped[symbol] = str(exc)
                continue
            self.live.update(fits)
            self.skipped.update(skipped)

    def fit_for(self, fund: FundDefinition) -> FundFit | None:
        """The fit to show for ``fund`` as it is now, or None if nothing measures it."""
        if self.prices is not None:
            result = self.live.get(fund.symbol)
            if result is None:
                return None
            record = _live_fit(result)
            if not _same_exposures(result.fund.exposures, fund.exposures):
                # A refit is pending (it runs on every edit): say so rather than mislead.
                record.stale = True
            return record
        entry = builtin_fit_summary().get("funds", {}).get(fund.symbol)
        return _builtin_fit(fund, entry) if entry else None

    def reason_unfitted(self, symbol: str) -> str:
        if self.prices is not None:
            if symbol not in self._fitted:
                return "not fitted yet; press Fit from history"
            return self.skipped.get(symbol, "not in the loaded prices")
        return (
            builtin_fit_summary()
            .get("skipped", {})
            .get(symbol, "no built-in fit; load prices to measure it")
        )


# ========================================================================== badges
def _badge(color: QColor, mark: str) -> QIcon:
    pix = QPixmap(14, 14)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(color)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(1, 1, 12, 12)
    if mark:
        painter.setPen(QColor("white"))
        font = painter.font()
        font.setBold(True)
        font.setPixelSize(10)
        painter.setFont(font)
        painter.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, mark)
    painter.end()
    return QIcon(pix)


@lru_cache(maxsize=8)
def badge_icon(status: str) -> QIcon:
    """Icon of a fit status: red '!' disagrees, amber '?' loose/stale, green agrees,
    pale grey when nothing measures the fund."""
    if status == "none":
        return _badge(QColor(215, 215, 215), "")
    if status == "disagrees":
        return _badge(QColor(200, 40, 40), "!")
    if status in ("loose", "stale"):
        return _badge(QColor(220, 150, 20), "?")
    return _badge(QColor(60, 160, 80), "")


# ============================================================================ model
@dataclass(frozen=True)
class Column:
    key: str  # symbol, name, exposure, notional, expense_ratio, financing_spread, r2, te, source
    code: str = ""  # exposure type code for key == "exposure"


def _fmt_pct(value: float, decimals: int = 1) -> str:
    return f"{value:,.{decimals}f}"


#: Up to this many edited funds are refitted on the GUI thread (about 40 ms each).
SYNC_REFIT_MAX = 5


class FundMapModel(QAbstractTableModel):
    """Funds x exposure types in percent of NAV, with notional, costs and fit columns.

    Editable: name, every exposure cell, expense ratio, financing spread, source. An
    entry core refuses (not a number, an absurd notional, a negative expense ratio) is
    kept in the cell, highlighted, with core's reason as tooltip, and the workspace is
    left unchanged until the user fixes it.
    """

    #: Funds to refit in the background (too many to refit on the GUI thread).
    refit_requested = Signal(list)

    def __init__(self, session: Session, fits: FitBook | None = None):
        super().__init__()
        self._session = session
        self.fits = fits if fits is not None else FitBook()
        self._symbols: list[str] = []
        self._columns: list[Column] = []
        self._fit_cache: dict[str, FundFit | None] = {}
        #: (symbol, column key) -> (text typed, why core refused it)
        self._invalid: dict[tuple[str, str], tuple[str, str]] = {}
        self._build()
        session.fund_map_changed.connect(self.refresh)
        session.workspace_replaced.connect(self._on_replaced)

    # ----------------------------------------------------------------- structure
    @property
    def fund_map(self) -> FundExposureMap:
        return self._session.workspace.fund_map

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    @property
    def columns(self) -> list[Column]:
        return list(self._columns)

    def _build(self) -> None:
        fmap = self.fund_map
        self._symbols = list(fmap.funds)
        self._columns = [
            Column("symbol"),
            Column("name"),
            *[Column("exposure", code) for code in fmap.exposure_types],
            Column("notional"),
            Column("expense_ratio"),
            Column("financing_spread"),
            Column("r2"),
            Column("te"),
            Column("source"),
        ]
        self._fit_cache = {}

    def column_of(self, key: str, code: str = "") -> int:
        """Column number of a key (and exposure code); -1 if absent."""
        try:
            return self._columns.index(Column(key, code))
        except ValueError:
            return -1

    def row_of(self, symbol: str) -> int:
        try:
            return self._symbols.index(symbol.upper())
        except ValueError:
            return -1

    def symbol_at(self, row: int) -> str:
        return self._symbols[row]

    def _on_replaced(self) -> None:
        self._invalid.clear()
        self.beginResetModel()
        self._build()
        self.endResetModel()
        self._refit_out_of_date()

    def _refit_out_of_date(self) -> None:
        """Refit edited funds at once; many at a time go to the tab's background fit."""
        stale = self.fits.out_of_date(self.fund_map)
        if not stale:
            return
        if len(stale) <= SYNC_REFIT_MAX:
            self.fits.refit(self.fund_map, stale)
            self._fit_cache = {}
        else:
            self.refit_requested.emit(stale)

    def refresh(self) -> None:
        """Re-read the fund map: a reset if funds or types changed, else dataChanged."""
        fmap = self.fund_map
        self._invalid = {k: v for k, v in self._invalid.items() if k[0] in fmap}
        self._refit_out_of_date()
        same_shape = list(fmap.funds) == self._symbols and [
            c.code for c in self._columns if c.key == "exposure"
        ] == list(fmap.exposure_types)
        if same_shape:
            self._fit_cache = {}
            if self._symbols:
                self.dataChanged.emit(
                    self.index(0, 0), self.index(len(self._symbols) - 1, len(self._columns) - 1)
                )
        else:
            self.beginResetModel()
            self._build()
            self.endResetModel()

    def fits_changed(self) -> None:
        """Call after :attr:`fits` changed (prices loaded, fit finished)."""
        self._fit_cache = {}
        if self._symbols:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._symbols) - 1, len(self._columns) - 1)
            )

    def fit(self, symbol: str) -> FundFit | None:
        """The fit shown for ``symbol`` (cached until the map or the fits change)."""
        if symbol not in self._fit_cache:
            fund = self.fund_map.get(symbol)
            self._fit_cache[symbol] = self.fits.fit_for(fund) if fund is not None else None
        return self._fit_cache[symbol]

    def invalid_reason(self, row: int, column: int) -> str | None:
        """Why the text in this cell was refused, or None if the cell is valid."""
        entry = self._invalid.get((self._symbols[row], self._key(column)))
        return entry[1] if entry else None

    def _key(self, column: int) -> str:
        col = self._columns[column]
        return f"exposure.{col.code}" if col.key == "exposure" else col.key

    # ------------------------------------------------------------- Qt interface
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._symbols)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self._columns):
            return None
        col = self._columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            if col.key == "exposure":
                return short_label(col.code)
            return {
                "symbol": "Symbol",
                "name": "Name",
                "notional": "Notional",
                "expense_ratio": "Expense\n% / yr",
                "financing_spread": "Spread\n% / yr",
                "r2": "Fit\nR\u00b2",
                "te": "Tracking\nerror",
                "source": "Source",
            }[col.key]
        if role == Qt.ItemDataRole.ToolTipRole:
            if col.key == "exposure":
                t = self.fund_map.exposure_types.get(col.code)
                if t is None:
                    return None
                proxy = f", proxy {t.proxy}" if t.proxy else ", no proxy"
                kind = "built-in" if t.builtin else "custom"
                return f"{t.name} ({t.code}; {t.group.label}{proxy}; {kind}), % of NAV"
            return {
                "symbol": "Ticker; the badge says whether the map agrees with its history",
                "name": "Fund name",
                "notional": "Sum of absolute exposures, % of NAV (computed)",
                "expense_ratio": "Expense ratio, % per year",
                "financing_spread": "Financing spread over cash on borrowed notional, % per year",
                "r2": "R\u00b2 of the fund's weekly excess returns on its exposures' proxies",
                "te": "Annualised tracking error of the fund against its replicating proxies",
                "source": "Where the exposures were published",
            }[col.key]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _LEFT if col.key in ("symbol", "name", "source") else _RIGHT
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if self._columns[index.column()].key in (
            "name",
            "exposure",
            "expense_ratio",
            "financing_spread",
            "source",
        ):
            base |= Qt.ItemFlag.ItemIsEditable
        return base

    def _raw(self, fund: FundDefinition, col: Column) -> Any:
        if col.key == "symbol":
            return fund.symbol
        if col.key == "name":
            return fund.name
        if col.key == "exposure":
            return float(fund.exposures.get(col.code, 0.0))
        if col.key == "notional":
            return fund.notional_pct
        if col.key == "expense_ratio":
            return fund.expense_ratio
        if col.key == "financing_spread":
            return fund.financing_spread
        if col.key == "source":
            return fund.source
        fit = self.fit(fund.symbol)
        if fit is None:
            return None
        return fit.r_squared if col.key == "r2" else fit.tracking_error

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        symbol = self._symbols[index.row()]
        fund = self.fund_map.get(symbol)
        if fund is None:
            return None
        col = self._columns[index.column()]
        key = self._key(index.column())
        invalid = self._invalid.get((symbol, key))
        if role == Qt.ItemDataRole.DisplayRole:
            if invalid is not None:
                return invalid[0]
            return self._display(fund, col)
        if role == Qt.ItemDataRole.EditRole:
            if invalid is not None:
                return invalid[0]
            value = self._raw(fund, col)
            if col.key in ("exposure", "expense_ratio", "financing_spread"):
                return f"{value:g}" if value else ""
            return "" if value is None else str(value)
        if role == Qt.ItemDataRole.UserRole:
            return self._raw(fund, col)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _LEFT if col.key in ("symbol", "name", "source") else _RIGHT
        if role == Qt.ItemDataRole.BackgroundRole:
            if invalid is not None:
                return INVALID_BRUSH
            if col.key == "notional" and fund.notional_pct > WARN_NOTIONAL_PCT:
                return WARN_BRUSH
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(fund, col, invalid)
        if role == Qt.ItemDataRole.DecorationRole and col.key == "symbol":
            fit = self.fit(symbol)
            return badge_icon(fit.status if fit is not None else "none")
        if role == Qt.ItemDataRole.ForegroundRole and col.key in ("r2", "te"):
            fit = self.fit(symbol)
            return _STALE_COLOR if fit is not None and fit.stale else None
        if role == Qt.ItemDataRole.FontRole and col.key in ("r2", "te"):
            fit = self.fit(symbol)
            if fit is not None and fit.stale:
                font = QFont()
                font.setItalic(True)
                return font
        return None

    def _display(self, fund: FundDefinition, col: Column) -> str:
        value = self._raw(fund, col)
        if col.key == "exposure":
            return _fmt_pct(value) if value else ""
        if col.key == "notional":
            return f"{value:,.0f}%"
        if col.key in ("expense_ratio", "financing_spread"):
            return f"{value:.2f}%" if value or col.key == "expense_ratio" else ""
        if col.key in ("r2", "te"):
            fit = self.fit(fund.symbol)
            if fit is None or value is None or not math.isfinite(value):
                return "\u2013"
            if fit.stale:
                return "stale"
            return f"{value:.3f}" if col.key == "r2" else f"{value:.1%}"
        return "" if value is None else str(value)

    def _tooltip(
        self, fund: FundDefinition, col: Column, invalid: tuple[str, str] | None
    ) -> str | None:
        if invalid is not None:
            return f"Not applied: {invalid[1]}"
        if col.key == "symbol":
            fit = self.fit(fund.symbol)
            name = f"{fund.symbol} \u2013 {fund.name}" if fund.name else fund.symbol
            if fit is None:
                return f"{name}\nNo fit: {self.fits.reason_unfitted(fund.symbol)}"
            return f"{name}\n{fit.summary()}"
        if col.key == "exposure":
            t = self.fund_map.exposure_types[col.code]
            text = f"{fund.symbol}, {t.name}: {fund.exposures.get(col.code, 0.0):g}% of NAV"
            fit = self.fit(fund.symbol)
            if fit is not None and not fit.stale and col.code in fit.betas:
                se = fit.beta_stderr.get(col.code, 0.0)
                text += f"\nmeasured {fit.betas[col.code]:.0%} \u00b1 {se:.0%} ({fit.origin})"
            return text
        if col.key == "notional":
            if fund.notional_pct > WARN_NOTIONAL_PCT:
                return (
                    f"{fund.symbol}: notional {fund.notional_pct:.0f}% is unusually high "
                    f"(over {WARN_NOTIONAL_PCT:.0f}%); check the exposures are in percent"
                )
            return f"Sum of absolute exposures: {fund.notional_pct:g}% of NAV"
        if col.key in ("r2", "te"):
            fit = self.fit(fund.symbol)
            if fit is None:
                return f"No fit: {self.fits.reason_unfitted(fund.symbol)}"
            return fit.summary()
        if col.key in ("name", "source"):
            return str(self._raw(fund, col)) or None
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.EditRole:
            return False
        if not self.flags(index) & Qt.ItemFlag.ItemIsEditable:
            return False
        symbol = self._symbols[index.row()]
        col = self._columns[index.column()]
        key = self._key(index.column())
        fund = self.fund_map[symbol]
        text = "" if value is None else str(value).strip()
        if col.key == "exposure":
            exposures = dict(fund.exposures)
            if text == "":
                exposures.pop(col.code, None)
            else:
                exposures[col.code] = value if isinstance(value, int | float) else text
            candidate = fund.copy(exposures=exposures)
            label = f"Edit {symbol} {col.code}"
        elif col.key in ("expense_ratio", "financing_spread"):
            raw: Any = value if isinstance(value, int | float) else (text or 0.0)
            candidate = fund.copy(**{col.key: raw})
            label = f"Edit {symbol} {col.key.replace('_', ' ')}"
        else:
            candidate = fund.copy(**{col.key: text})
            label = f"Edit {symbol} {col.key}"
        try:
            checked = self.fund_map.validate_fund(candidate)
        except ValidationError as exc:
            self._invalid[(symbol, key)] = (text, str(exc))
            self.dataChanged.emit(index, index)
            return False
        had_invalid = self._invalid.pop((symbol, key), None) is not None
        if checked.to_dict() == fund.to_dict():
            if had_invalid:
                self.dataChanged.emit(index, index)
            return True
        new_map = self.fund_map.copy()
        new_map.set_fund(checked)
        self._session.undo_stack.push(FundMapCommand(self._session, new_map, label))
        return True


# ====================================================================== fit detail
FIT_COLUMNS = ("Exposure", "Published", "Measured", "\u00b1 s.e.", "Verdict")


class FitDetailModel(QAbstractTableModel):
    """Published exposure next to measured beta, per exposure type, for one fund."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[dict[str, Any]] = []
        self.fund: FundDefinition | None = None
        self.fit_record: FundFit | None = None

    def set_fit(
        self,
        fund: FundDefinition | None,
        fit: FundFit | None,
        fund_map: FundExposureMap | None = None,
    ) -> None:
        self.beginResetModel()
        self.fund, self.fit_record = fund, fit
        self._rows = []
        if fund is not None:
            bad: dict[str, str] = {}
            loose: dict[str, str] = {}
            if fit is not None and fit.check is not None:
                bad = {d.code: d.describe() for d in fit.check.disagreements}
                loose = {d.code: d.describe() for d in fit.check.loose}
            codes = [c for c in fund.exposures if fund.exposures[c]]
            if fit is not None and not fit.stale:
                codes += [c for c in fit.betas if c not in codes]
                codes += [c for c in bad if c not in codes]
            for code in codes:
                name = code
                if fund_map is not None and code in fund_map.exposure_types:
                    name = fund_map.exposure_types[code].name
                measured = se = None
                verdict, why = "", ""
                if fit is not None and not fit.stale:
                    if code in fit.betas:
                        measured, se = fit.betas[code], fit.beta_stderr.get(code)
                    elif code in fit.probes:
                        measured, se = fit.probes[code]
                    if code in bad:
                        verdict, why = "disagrees", bad[code]
                    elif code in loose:
                        verdict, why = "loose proxy", loose[code]
                    elif measured is not None:
                        verdict = "ok"
                    elif code != "CASH_TBILL":
                        verdict = "not measured"
                self._rows.append(
                    {
                        "code": code,
                        "name": name,
                        "published": fund.exposures.get(code, 0.0) / 100.0,
                        "measured": measured,
                        "se": se,
                        "verdict": verdict,
                        "why": why,
                    }
                )
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(FIT_COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(FIT_COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return FIT_COLUMNS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _LEFT if section in (0, 4) else _RIGHT
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        c = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if c == 0:
                return row["name"]
            if c == 1:
                return f"{row['published']:.0%}"
            if c == 2:
                return "" if row["measured"] is None else f"{row['measured']:.0%}"
            if c == 3:
                return "" if row["se"] is None else f"{row['se']:.0%}"
            return row["verdict"]
        if role == Qt.ItemDataRole.UserRole:
            return [row["code"], row["published"], row["measured"], row["se"], row["verdict"]][c]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _LEFT if c in (0, 4) else _RIGHT
        if role == Qt.ItemDataRole.BackgroundRole and row["verdict"] == "disagrees":
            return INVALID_BRUSH
        if role == Qt.ItemDataRole.BackgroundRole and row["verdict"] == "loose proxy":
            return WARN_BRUSH
        if role == Qt.ItemDataRole.ToolTipRole:
            return row["why"] or f"{row['name']} ({row['code']})"
        return None
