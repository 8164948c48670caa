"""Models of the Views tab: the Black-Litterman views table and the posterior per fund.

Where Black-Litterman runs
--------------------------
On the EXPOSURE TYPES, as :mod:`core.optimization.black_litterman` recommends when fund
moments come from the exposure model: a view on an exposure type (MANAGED_FUT returns
3%, INTL_DEV beats US_EQUITY by 1%) is then always expressible, even when no
combination of the held funds isolates that exposure (RSSB and VT both hold US, developed
and emerging equity in the same proportions, so a fund-level view on INTL_DEV alone has
no meaning; the sample workspace's own views need this).

* ``Sigma_x``: exposure covariance of the market assumptions (K x K).
* ``x_mkt = E w_mkt``: the market's exposure profile from the fund market weights.
* prior ``pi_x = delta Sigma_x x_mkt`` (reverse optimisation on the exposures; the fund
  prior is ``E' pi_x - c``, i.e. ``delta (Sigma_f - D) w_mkt - c`` with the exposure-model
  fund covariance ``Sigma_f = E' Sigma_x E + D``).
* views -> ``(P, Q)`` at the exposure level (a view on fund i is ``E_i' r_x = q + c_i``),
  Idzorek confidences, closed-form posterior ``mu_x``; funds: ``E' mu_x - c``.

Returns are annual, in excess of cash, as fractions (shown in percent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from core.errors import ValidationError
from core.exposures import ExposureCalculator
from core.optimization.black_litterman import black_litterman_posterior, views_to_matrices
from core.optimization.constraints import MarketView
from core.workspace import Workspace
from desktop.session import Session
from desktop.tabs._commands import ViewsCommand

Index = QModelIndex | QPersistentModelIndex

_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
INVALID_BRUSH = QBrush(QColor(255, 205, 205))

#: Workspace settings of the Views tab (free-form keys of ``core.workspace``).
RISK_AVERSION_KEY = "bl_risk_aversion"
MARKET_WEIGHTS_KEY = "bl_market_weights"
TAU_KEY = "bl_tau"
DEFAULT_RISK_AVERSION = 2.5
DEFAULT_TAU = 0.05
#: Market-weight sources: setting value -> label.
MARKET_WEIGHT_SOURCES = {"holdings": "Current holdings", "equal": "Equal weights"}


def bl_settings(ws: Workspace) -> tuple[float, str, float]:
    """(risk aversion, market-weight source, tau) from the workspace settings, checked."""
    delta = ws.settings.get(RISK_AVERSION_KEY, DEFAULT_RISK_AVERSION)
    source = ws.settings.get(MARKET_WEIGHTS_KEY, "holdings")
    tau = ws.settings.get(TAU_KEY, DEFAULT_TAU)
    if not isinstance(delta, int | float) or not math.isfinite(delta) or delta <= 0:
        raise ValidationError(
            f"risk aversion must be a positive number, got {delta!r}", field=RISK_AVERSION_KEY
        )
    if source not in MARKET_WEIGHT_SOURCES:
        raise ValidationError(
            f"market weights must be one of {', '.join(MARKET_WEIGHT_SOURCES)}, got {source!r}",
            field=MARKET_WEIGHTS_KEY,
        )
    if not isinstance(tau, int | float) or not math.isfinite(tau) or tau <= 0:
        raise ValidationError(f"tau must be a positive number, got {tau!r}", field=TAU_KEY)
    return float(delta), str(source), float(tau)


@dataclass
class BLSummary:
    """Prior and posterior of :func:`black_litterman_summary`.

    Attributes
    ----------
    symbols : list of str, length N
    market_weights : ndarray, shape (N,)
        Normalised to sum 1.
    prior, posterior : ndarray, shape (N,)
        Fund expected returns in excess of cash, net of costs (fractions per year).
    codes : list of str, length K
    prior_x, posterior_x : ndarray, shape (K,)
        Exposure-type expected excess returns.
    notes : list of str
        What was assumed (fallbacks) worth telling the user.
    """

    symbols: list[str]
    market_weights: np.ndarray
    prior: np.ndarray
    posterior: np.ndarray
    codes: list[str]
    prior_x: np.ndarray
    posterior_x: np.ndarray
    risk_aversion: float
    tau: float
    source: str
    notes: list[str] = field(default_factory=list)


def black_litterman_summary(ws: Workspace, assumptions: Any) -> BLSummary:
    """Black-Litterman at the exposure level on the workspace's funds and views.

    The funds are the holdings plus any fund a view names. Raises
    :class:`~core.errors.ValidationError` with a message for the user (no funds, a type
    without market assumptions, views that cannot all hold).
    """
    delta, source, tau = bl_settings(ws)
    fmap = ws.fund_map
    held = [s for s in ws.portfolio.symbols if s in fmap]
    symbols = list(held)
    for view in ws.views:
        for name in view.assets:
            if name in fmap and name not in fmap.exposure_types and name not in symbols:
                symbols.append(name)
    if not symbols:
        raise ValidationError("Add holdings (or a view on a fund) to see the posterior.")
    notes: list[str] = []
    w = np.zeros(len(symbols))
    if source == "holdings" and held:
        try:
            weights = ws.priced_portfolio().weights()
            w = weights.reindex(symbols).fillna(0.0).to_numpy(dtype=float)
            w = np.where(w > 0, w, 0.0)
        except (ValidationError, KeyError) as exc:
            notes.append(f"Holdings weights unavailable ({exc}); using equal weights.")
            w = np.zeros(len(symbols))
    if not w.sum() > 0:
        if source == "holdings":
            notes.append("The holdings have no positive value; using equal weights.")
        n = len(held) or len(symbols)
        w = np.array([1.0 / n if (s in held or not held) else 0.0 for s in symbols])
    w = w / w.sum()

    view_codes = [
        a for v in ws.views for a in v.assets if a in fmap.exposure_types and a not in fmap
    ]
    codes = ExposureCalculator(fmap, symbols).exposure_types
    codes = codes + [c for c in dict.fromkeys(view_codes) if c not in codes]
    calc = ExposureCalculator(fmap, symbols, codes)
    e = calc.matrix
    sigma_x = assumptions.covariance(codes).loc[codes, codes].to_numpy(dtype=float)
    x_mkt = e @ w
    # Not implied_equilibrium_returns(): it rescales the weights to sum to 1, and a
    # leveraged market's exposure profile legitimately sums to more than 1.
    prior_x = delta * sigma_x @ x_mkt
    p, q = views_to_matrices(
        list(ws.views), symbols, e, codes, level="exposure", fund_costs=calc.annual_costs
    )
    confidences = np.array([v.confidence for v in ws.views], dtype=float)
    post = black_litterman_posterior(
        prior_x, sigma_x, p, q, confidences=confidences if len(ws.views) else None, tau=tau
    )
    prior = e.T @ prior_x - calc.annual_costs
    posterior = e.T @ post.mean - calc.annual_costs
    return BLSummary(
        symbols=list(calc.symbols),
        market_weights=w,
        prior=prior,
        posterior=posterior,
        codes=list(codes),
        prior_x=prior_x,
        posterior_x=post.mean,
        risk_aversion=delta,
        tau=tau,
        source=source,
        notes=notes,
    )


# ====================================================================== views table
VIEW_COLUMNS = ("Type", "Asset", "Versus", "Expected return", "Confidence")


def _parse_number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().replace("%", "").replace(",", "").strip()
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{what}: {str(value).strip()!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite")
    return number


class ViewsModel(QAbstractTableModel):
    """One row per :class:`~core.optimization.constraints.MarketView` of the workspace.

    Percent on screen, fractions in the workspace. Asset names may be fund symbols or
    exposure type codes (case-insensitive). Entries core refuses stay in the cell,
    highlighted with the reason, and the views are left unchanged.
    """

    def __init__(self, session: Session):
        super().__init__()
        self._session = session
        self._n = len(session.workspace.views)
        self._invalid: dict[tuple[int, int], tuple[str, str]] = {}
        session.views_changed.connect(self.refresh)
        session.workspace_replaced.connect(self.refresh)
        session.fund_map_changed.connect(self.refresh)

    @property
    def views(self) -> list[MarketView]:
        return self._session.workspace.views

    def refresh(self) -> None:
        n = len(self.views)
        if n != self._n:
            self.beginResetModel()
            self._n = n
            self._invalid.clear()
            self.endResetModel()
        elif n:
            self.dataChanged.emit(self.index(0, 0), self.index(n - 1, len(VIEW_COLUMNS) - 1))

    def invalid_reason(self, row: int, column: int) -> str | None:
        entry = self._invalid.get((row, column))
        return entry[1] if entry else None

    def describe_asset(self, name: str) -> str:
        fmap = self._session.workspace.fund_map
        if name in fmap.exposure_types:
            return f"{name}: {fmap.exposure_types[name].name} (exposure type)"
        fund = fmap.get(name)
        if fund is not None:
            return f"{name}: {fund.name or 'fund'} (fund)"
        return f"{name}: neither a fund in the map nor an exposure type"

    # ------------------------------------------------------------- Qt interface
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self._n

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(VIEW_COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(VIEW_COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return VIEW_COLUMNS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if section >= 3 else _LEFT
        if role == Qt.ItemDataRole.ToolTipRole:
            return (
                "Absolute: the asset returns this much; relative: it beats the other by this",
                "A fund symbol or an exposure type code",
                "For a relative view: the asset it is compared with",
                "Annual, in percent, over cash for an absolute view",
                "0% leaves the prior untouched, 100% forces the view (Idzorek)",
            )[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == 2 and self.views[index.row()].view_type != "relative":
            return base
        return base | Qt.ItemFlag.ItemIsEditable

    def _raw(self, view: MarketView, column: int) -> Any:
        if column == 0:
            return view.view_type
        if column == 1:
            return view.assets[0] if view.view_type == "relative" else ", ".join(view.assets)
        if column == 2:
            return view.assets[1] if view.view_type == "relative" else ""
        if column == 3:
            return view.expected_return
        return view.confidence

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.views):
            return None
        view = self.views[index.row()]
        c = index.column()
        invalid = self._invalid.get((index.row(), c))
        value = self._raw(view, c)
        if role == Qt.ItemDataRole.DisplayRole:
            if invalid is not None:
                return invalid[0]
            if c == 0:
                return value.title()
            if c == 3:
                return f"{value * 100:+.1f}%"
            if c == 4:
                return f"{value * 100:.0f}%"
            return value
        if role == Qt.ItemDataRole.EditRole:
            if invalid is not None:
                return invalid[0]
            if c in (3, 4):
                return f"{value * 100:g}"
            return value
        if role == Qt.ItemDataRole.UserRole:
            return value
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if c >= 3 else _LEFT
        if role == Qt.ItemDataRole.BackgroundRole and invalid is not None:
            return INVALID_BRUSH
        if role == Qt.ItemDataRole.ToolTipRole:
            if invalid is not None:
                return f"Not applied: {invalid[1]}"
            if c in (1, 2) and value:
                return "\n".join(self.describe_asset(a.strip()) for a in str(value).split(","))
            return None
        return None

    def _check_names(self, names: list[str]) -> None:
        fmap = self._session.workspace.fund_map
        unknown = [n for n in names if n not in fmap and n not in fmap.exposure_types]
        if unknown:
            raise ValidationError(
                f"{', '.join(unknown)} is neither a fund in the map nor an exposure type code"
            )

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.EditRole:
            return False
        if not self.flags(index) & Qt.ItemFlag.ItemIsEditable:
            return False
        row, c = index.row(), index.column()
        view = self.views[row]
        text = "" if value is None else str(value).strip()
        try:
            new = self._changed(view, c, value, text)
        except (ValueError, ValidationError) as exc:
            self._invalid[(row, c)] = (text, str(exc))
            self.dataChanged.emit(index, index)
            return False
        had_invalid = self._invalid.pop((row, c), None) is not None
        if new.to_dict() == view.to_dict():
            if had_invalid:
                self.dataChanged.emit(index, index)
            return True
        views = [MarketView.from_dict(v.to_dict()) for v in self.views]
        views[row] = new
        label = f"Edit view {row + 1} {VIEW_COLUMNS[c].lower()}"
        self._session.undo_stack.push(
            ViewsCommand(self._session, views, label, merge_key=f"{row}:{c}")
        )
        return True

    def _changed(self, view: MarketView, column: int, value: Any, text: str) -> MarketView:
        """The view with one cell changed; ValueError/ValidationError saying why not."""
        assets = list(view.assets)
        kind, er, conf = view.view_type, view.expected_return, view.confidence
        if column == 0:
            kind = text.lower()
            if kind not in ("absolute", "relative"):
                raise ValueError("type must be Absolute or Relative")
            if kind == "relative" and len(assets) != 2:
                assets = [assets[0], self.default_other(assets[0])]
            elif kind == "absolute" and view.view_type == "relative":
                assets = assets[:1]
        elif column == 1:
            names = [n.strip().upper() for n in text.split(",") if n.strip()]
            if not names:
                raise ValueError("name a fund symbol or an exposure type code")
            if kind == "relative":
                if len(names) != 1:
                    raise ValueError("a relative view compares exactly one asset with another")
                assets = [names[0], assets[1]]
            else:
                assets = names
            self._check_names(assets)
        elif column == 2:
            name = text.upper()
            if not name:
                raise ValueError("a relative view needs the asset it is compared with")
            assets = [assets[0], name]
            self._check_names(assets)
        elif column == 3:
            er = _parse_number(value, "expected return") / 100.0
            if abs(er) > 1.0:
                raise ValueError("expected return must be between -100% and +100% a year")
        else:
            conf = _parse_number(value, "confidence") / 100.0
            if not 0.0 <= conf <= 1.0:
                raise ValueError("confidence must be between 0% and 100%")
        if len(set(assets)) != len(assets):
            raise ValueError("a view cannot name the same asset twice")
        return MarketView(assets=assets, view_type=kind, expected_return=er, confidence=conf)

    def default_other(self, first: str) -> str:
        """A sensible second asset for a view turned relative."""
        fmap = self._session.workspace.fund_map
        if first in fmap.exposure_types:
            for code in ("US_EQUITY", "UST_10Y", *fmap.exposure_types):
                if code != first:
                    return code
        for symbol in self._session.workspace.portfolio.symbols:
            if symbol != first:
                return symbol
        return next(s for s in fmap.symbols if s != first)


# ====================================================================== posterior
POSTERIOR_COLUMNS = ("Fund", "Market weight", "Prior", "Posterior", "Change")


class PosteriorModel(QAbstractTableModel):
    """Read-only: per fund, market weight, prior and posterior expected excess return."""

    def __init__(self) -> None:
        super().__init__()
        self.summary: BLSummary | None = None

    def set_summary(self, summary: BLSummary | None) -> None:
        self.beginResetModel()
        self.summary = summary
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() or self.summary is None:
            return 0
        return len(self.summary.symbols)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(POSTERIOR_COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(POSTERIOR_COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return POSTERIOR_COLUMNS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _LEFT if section == 0 else _RIGHT
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self.summary is None:
            return None
        s = self.summary
        i, c = index.row(), index.column()
        values = (
            s.symbols[i],
            float(s.market_weights[i]),
            float(s.prior[i]),
            float(s.posterior[i]),
            float(s.posterior[i] - s.prior[i]),
        )
        if role == Qt.ItemDataRole.DisplayRole:
            if c == 0:
                return values[0]
            if c == 4:
                return f"{values[4] * 100:+.2f}%"
            return f"{values[c] * 100:.2f}%"
        if role == Qt.ItemDataRole.UserRole:
            return values[c]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _LEFT if c == 0 else _RIGHT
        if role == Qt.ItemDataRole.ForegroundRole and c == 4 and abs(values[4]) > 5e-5:
            return QBrush(QColor(20, 120, 40) if values[4] > 0 else QColor(170, 30, 30))
        return None
