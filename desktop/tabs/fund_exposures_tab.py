"""Fund Exposures tab: the fund exposure map editor, and each map checked against history.

Top: the funds x exposure types matrix (percent of NAV) with notional, costs, R^2 and
tracking error; a badge on every fund says whether its map agrees with its price history.
Bottom: growth of $1, real vs synthesised from the map, for the selected fund, and its
published exposures next to the measured betas.

Fits come from the built-in summary until the user loads a price file; then every fund
is refitted in the background, and an edited fund is refitted at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRunnable,
    QSortFilterProxyModel,
    Qt,
    QThreadPool,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QSplitter,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from core.errors import StackOptError, ValidationError
from core.exposures import AssetGroup, ExposureType, FundDefinition, FundExposureMap
from core.market_data import DataQualityReport, clean_prices, fit_fund_map, read_prices
from core.portfolio import normalise_symbol
from desktop.models.fund_map_model import (
    SYNC_REFIT_MAX,
    FitBook,
    FitDetailModel,
    FundMapModel,
)
from desktop.plots.fit_plot import NO_PRICES_MESSAGE, GrowthPlot, growth_series
from desktop.session import MarketData, Session
from desktop.tabs._commands import FundMapCommand

Index = QModelIndex | QPersistentModelIndex

MAP_FILTER = "Fund map (*.json *.csv);;JSON fund map (*.json);;CSV fund map (*.csv)"
PRICE_FILTER = "Price history (*.csv *.csv.gz *.gz *.zip *.txt);;All files (*)"


# ================================================================ background work
class _Signals(QObject):
    finished = Signal(object)
    failed = Signal(object)


class _Job(QRunnable):
    """Run ``work()`` off the GUI thread; report through queued signals."""

    def __init__(self, work: Callable[[], Any]):
        super().__init__()
        self.signals = _Signals()
        self._work = work
        self.cancelled = threading.Event()

    def run(self) -> None:
        try:
            result = self._work()
        except Exception as exc:  # noqa: BLE001 - forwarded to the GUI thread
            if not self.cancelled.is_set():
                self.signals.failed.emit(exc)
            return
        if not self.cancelled.is_set():
            self.signals.finished.emit(result)


def _load_and_fit(path: str, fund_map: FundExposureMap) -> dict[str, Any]:
    raw = read_prices(path)
    result = _clean_and_fit(raw, fund_map)
    result["source"] = Path(path).name
    result["path"] = str(path)
    return result


def _clean_and_fit(
    raw: pd.DataFrame, fund_map: FundExposureMap, report: DataQualityReport | None = None
) -> dict[str, Any]:
    """Repair ``raw`` (reusing its quality ``report`` when the loader made one), then fit."""
    cleaned, report = clean_prices(raw, report)
    fits, skipped = fit_fund_map(cleaned, fund_map)
    return {
        "raw": raw,
        "prices": cleaned,
        "report": report,
        "fits": fits,
        "skipped": skipped,
        "fund_map": fund_map,
        "source": str(raw.attrs.get("source", "")),
    }


def _fit_only(prices: pd.DataFrame, fund_map: FundExposureMap) -> dict[str, Any]:
    fits, skipped = fit_fund_map(prices, fund_map)
    return {"prices": prices, "fits": fits, "skipped": skipped, "fund_map": fund_map}


# ======================================================================= helpers
class FundFilterProxy(QSortFilterProxyModel):
    """Filter funds by symbol or name; sort numbers as numbers (blank last)."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._needle = ""
        self.setSortRole(Qt.ItemDataRole.UserRole)

    def set_needle(self, text: str) -> None:
        self.beginFilterChange()
        self._needle = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not self._needle:
            return True
        model = self.sourceModel()
        symbol = str(model.index(source_row, 0, source_parent).data() or "").lower()
        name = str(model.index(source_row, 1, source_parent).data() or "").lower()
        return self._needle in symbol or self._needle in name

    def lessThan(self, left: Index, right: Index) -> bool:
        a = left.data(Qt.ItemDataRole.UserRole)
        b = right.data(Qt.ItemDataRole.UserRole)
        if isinstance(a, int | float) and isinstance(b, int | float):
            return a < b
        if a is None or b is None:
            return b is None and a is not None
        return str(a).lower() < str(b).lower()


class ExposureTypeDialog(QDialog):
    """Ask for a custom exposure type: code, name, group, proxy ticker."""

    def __init__(self, fund_map: FundExposureMap, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Add exposure type")
        self._fund_map = fund_map
        self.code = QLineEdit()
        self.code.setPlaceholderText("e.g. TIPS")
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. Inflation-linked Treasuries")
        self.group = QComboBox()
        for g in AssetGroup:
            self.group.addItem(g.label, g.value)
        self.proxy = QLineEdit()
        self.proxy.setPlaceholderText("ticker whose returns represent it (optional)")
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020;")
        self.error.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Code", self.code)
        form.addRow("Name", self.name)
        form.addRow("Group", self.group)
        form.addRow("Proxy", self.proxy)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.code.textChanged.connect(self._check)
        self._check()

    def exposure_type(self) -> ExposureType:
        """The type typed so far; raises ValidationError saying what is wrong."""
        code = self.code.text().strip().upper()
        etype = ExposureType.from_dict(
            {
                "code": code,
                "name": self.name.text().strip() or code.replace("_", " ").title(),
                "group": self.group.currentData(),
                "proxy": self.proxy.text().strip().upper(),
            }
        )
        if etype.code in self._fund_map.exposure_types:
            raise ValidationError(f"Exposure type {etype.code} already exists", field="code")
        if etype.code in self._fund_map:
            raise ValidationError(
                f"{etype.code} is a fund symbol; an exposure type needs another code",
                field="code",
            )
        return etype

    def _check(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        try:
            self.exposure_type()
        except ValidationError as exc:
            self.error.setText(str(exc) if self.code.text().strip() else "")
            ok.setEnabled(False)
            return
        self.error.setText("")
        ok.setEnabled(True)


# =========================================================================== tab
class FundExposuresTab(QWidget):
    """The fund exposure map editor (see the module docstring).

    Signals
    -------
    prices_loaded(str)
        A price file was read and cleaned (its name).
    fit_finished()
        Fits of every fund on the loaded prices are in.
    fit_failed(str)
        Loading or fitting failed; the message says why.
    """

    prices_loaded = Signal(str)
    fit_finished = Signal()
    fit_failed = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.fits = FitBook()
        self.model = FundMapModel(session, self.fits)
        self.proxy = FundFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.detail_model = FitDetailModel()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._job: _Job | None = None
        self._builtin_map: FundExposureMap | None = None
        self._price_source = ""
        self._selected: str | None = None
        self._own_prices: pd.DataFrame | None = None
        self.busy = False

        self._build_ui()
        self.model.refit_requested.connect(lambda _symbols: self.fit_from_history())
        self.model.modelReset.connect(self._restore_selection)
        session.fund_map_changed.connect(self._update_selected)
        session.workspace_replaced.connect(self._update_selected)
        session.market_data_changed.connect(self._on_market_data)
        self._update_fit_source()
        if self.model.rowCount():
            self.select_symbol(self.model.symbol_at(0))
        if session.market_data is not None:
            self._on_market_data()

    # ------------------------------------------------------------------ layout
    def _build_ui(self) -> None:
        self.toolbar = QToolBar()
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter funds by symbol or name")
        self.search.setClearButtonEnabled(True)
        self.search.setMaximumWidth(260)
        self.search.textChanged.connect(self.proxy.set_needle)
        self.toolbar.addWidget(self.search)
        self.toolbar.addSeparator()

        def action(text: str, tip: str, slot: Callable[[], Any]) -> QAction:
            act = QAction(text, self)
            act.setToolTip(tip)
            act.triggered.connect(slot)
            self.toolbar.addAction(act)
            return act

        self.add_action = action("Add fund", "Add a fund to the map", self._on_add)
        self.duplicate_action = action(
            "Duplicate", "Copy the selected fund under a new symbol", self._on_duplicate
        )
        self.delete_action = action("Delete", "Remove the selected fund", self._on_delete)
        self.add_type_action = action(
            "Add exposure type...", "Define a custom exposure type", self._on_add_type
        )
        self.reset_action = action(
            "Reset to built-in",
            "Replace the selected fund by StackOpt's built-in definition",
            self._on_reset,
        )
        self.toolbar.addSeparator()
        self.import_action = action(
            "Import...", "Merge funds from a JSON or CSV map", self._on_import
        )
        self.export_action = action("Export...", "Save the map as JSON or CSV", self._on_export)
        self.toolbar.addSeparator()
        self.load_prices_action = action(
            "Load prices...", "Read a price history CSV to check every map", self._on_load_prices
        )
        self.fit_action = action(
            "Fit from history",
            "Regress every fund on its exposures' proxies over the loaded prices",
            self._on_fit,
        )

        self.fit_source = QLabel()
        self.fit_source.setStyleSheet("color: #555;")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setVisible(False)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self._size_columns()
        self.model.modelReset.connect(self._size_columns)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_changed)

        self.growth_plot = GrowthPlot()
        self.detail_title = QLabel()
        self.detail_title.setWordWrap(True)
        self.detail_title.setStyleSheet("font-weight: bold;")
        self.detail_view = QTableView()
        self.detail_view.setModel(self.detail_model)
        self.detail_view.verticalHeader().setVisible(False)
        self.detail_view.verticalHeader().setDefaultSectionSize(22)
        self.detail_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        dh = self.detail_view.horizontalHeader()
        dh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        dh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        detail = QWidget()
        dl = QVBoxLayout(detail)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.detail_title)
        dl.addWidget(self.detail_view, 1)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.growth_plot)
        bottom.addWidget(detail)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        bottom.setSizes([740, 500])

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([430, 300])

        top = QHBoxLayout()
        caption = QLabel("Exposures in % of NAV; double-click a cell to edit.")
        caption.setStyleSheet("color: #555;")
        top.addWidget(caption)
        top.addStretch(1)
        top.addWidget(self.fit_source)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.toolbar)
        layout.addLayout(top)
        layout.addWidget(self.message)
        layout.addWidget(self.splitter, 1)

    def _size_columns(self) -> None:
        metrics = self.table.horizontalHeader().fontMetrics()
        for i, col in enumerate(self.model.columns):
            width = {
                "symbol": 72,
                "name": 150,
                "exposure": 58,
                "notional": 64,
                "expense_ratio": 62,
                "financing_spread": 58,
                "r2": 52,
                "te": 62,
                "source": 160,
            }[col.key]
            if col.key == "exposure":
                label = str(self.model.headerData(i, Qt.Orientation.Horizontal))
                widest = max(metrics.horizontalAdvance(line) for line in label.split("\n"))
                width = max(width, widest + 12)
            self.table.setColumnWidth(i, width)

    # --------------------------------------------------------------- messages
    def show_message(self, text: str, error: bool = False) -> None:
        """A line above the table (errors in red) instead of a modal dialog."""
        color = "#fde2e2; color: #8a1010" if error else "#e6f0fb; color: #17406d"
        self.message.setStyleSheet(f"background: {color}; padding: 4px; border-radius: 3px;")
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _update_fit_source(self) -> None:
        if self.fits.has_prices:
            prices = self.fits.prices
            assert prices is not None
            text = (
                f"Fits: {self._price_source or 'loaded prices'} ({prices.shape[1]} tickers, "
                f"{prices.index[0]:%Y-%m-%d} to {prices.index[-1]:%Y-%m-%d})"
            )
        else:
            text = "Fits: built-in summary (weekly, Yahoo adjusted closes); load prices to refit"
        if self.busy:
            text = "Fitting every fund on the loaded prices..."
        self.fit_source.setText(text)

    # -------------------------------------------------------------- selection
    def selected_symbol(self) -> str | None:
        return self._selected

    def select_symbol(self, symbol: str) -> None:
        row = self.model.row_of(symbol)
        if row < 0:
            return
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():
            self.search.clear()
            index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.table.scrollTo(index)
        self._selected = symbol.upper()
        self._update_selected()

    @Slot(QModelIndex, QModelIndex)
    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        source = self.proxy.mapToSource(current)
        self._selected = self.model.symbol_at(source.row())
        self._update_selected()

    def _restore_selection(self) -> None:
        if self._selected and self._selected in self.session.workspace.fund_map:
            self.select_symbol(self._selected)
        elif self.model.rowCount():
            self.select_symbol(self.model.symbol_at(0))

    def _update_selected(self) -> None:
        """Refresh the chart and the fit detail of the selected fund."""
        fmap = self.session.workspace.fund_map
        fund = fmap.get(self._selected) if self._selected else None
        if fund is None:
            self.detail_model.set_fit(None, None)
            self.detail_title.setText("")
            self.growth_plot.set_message("Select a fund to compare its map with history")
            return
        fit = self.model.fit(fund.symbol)
        self.detail_model.set_fit(fund, fit, fmap)
        if fit is None:
            self.detail_title.setText(
                f"{fund.symbol}: no fit ({self.fits.reason_unfitted(fund.symbol)})"
            )
        else:
            r2 = "" if fit.r_squared is None else f", R\u00b2 {fit.r_squared:.3f}"
            verdict = {
                "agrees": "map agrees with history",
                "disagrees": "map DISAGREES with history",
                "loose": "differs on a loose proxy",
                "stale": "fit is stale",
            }[fit.status]
            origin = "built-in fit" if fit.origin == "built-in" else "fit on loaded prices"
            self.detail_title.setText(f"{fund.symbol}: {verdict} ({origin}{r2})")
            self.detail_title.setToolTip(fit.summary())
        if self.fits.prices is None:
            self.growth_plot.set_message(NO_PRICES_MESSAGE)
            return
        try:
            series = growth_series(self.fits.prices, fmap, fund.symbol)
        except StackOptError as exc:
            self.growth_plot.set_message(f"{fund.symbol}: cannot synthesise its history: {exc}")
            return
        self.growth_plot.set_series(series)

    # --------------------------------------------------------------- editing
    def _push(self, new_map: FundExposureMap, text: str) -> None:
        self.session.undo_stack.push(FundMapCommand(self.session, new_map, text))

    def add_fund(self, symbol: str, name: str = "") -> bool:
        """Add an empty fund (no exposures yet); False with a message if refused."""
        try:
            sym = normalise_symbol(symbol)
            new_map = self.session.workspace.fund_map.copy()
            new_map.add_fund(FundDefinition(symbol=sym, name=name))
        except ValidationError as exc:
            self.show_message(str(exc), error=True)
            return False
        self._push(new_map, f"Add fund {sym}")
        self.select_symbol(sym)
        self.show_message(f"Added {sym}: type its exposures in % of NAV in its row.")
        return True

    def duplicate_fund(self, symbol: str, new_symbol: str) -> bool:
        fmap = self.session.workspace.fund_map
        try:
            sym = normalise_symbol(new_symbol)
            new_map = fmap.copy()
            new_map.add_fund(fmap[symbol].copy(symbol=sym, notes="", inception=None))
        except (ValidationError, KeyError) as exc:
            self.show_message(str(exc).strip("'\""), error=True)
            return False
        self._push(new_map, f"Duplicate {symbol.upper()} as {sym}")
        self.select_symbol(sym)
        return True

    def references(self, symbol: str) -> list[str]:
        """Where the workspace uses ``symbol`` besides the fund map."""
        ws = self.session.workspace
        sym = symbol.upper()
        found = []
        if sym in ws.portfolio.symbols:
            found.append("the holdings")
        if sym in {s.upper() for s in ws.constraints.fund_bounds}:
            found.append("a fund bound on the Constraints tab")
        if sym in {s.upper() for s in ws.constraints.sector_mapper}:
            found.append("the sector mapper on the Constraints tab")
        for i, view in enumerate(ws.views, start=1):
            if sym in view.assets:
                found.append(f"view {i} on the Views tab")
        return found

    def delete_fund(self, symbol: str) -> bool:
        sym = symbol.upper()
        fmap = self.session.workspace.fund_map
        if sym not in fmap:
            return False
        used = self.references(sym)
        if used:
            self.show_message(
                f"{sym} is used by {', '.join(used)}; remove it there first, then delete it here.",
                error=True,
            )
            return False
        new_map = fmap.copy()
        new_map.remove_fund(sym)
        row = self.model.row_of(sym)
        self._push(new_map, f"Delete fund {sym}")
        if self.model.rowCount():
            self.select_symbol(self.model.symbol_at(min(row, self.model.rowCount() - 1)))
        self.show_message(f"Deleted {sym} (Undo brings it back).")
        return True

    def add_exposure_type(self, etype: ExposureType) -> bool:
        fmap = self.session.workspace.fund_map
        new_map = fmap.copy()
        try:
            if etype.code in fmap:
                raise ValidationError(
                    f"{etype.code} is a fund symbol; an exposure type needs another code"
                )
            new_map.add_exposure_type(etype)
        except ValidationError as exc:
            self.show_message(str(exc), error=True)
            return False
        self._push(new_map, f"Add exposure type {etype.code}")
        self.show_message(
            f"Added exposure type {etype.code} ({etype.name}); it has a column in the table. "
            "Give it market assumptions before optimizing on it."
        )
        return True

    def builtin_map(self) -> FundExposureMap:
        if self._builtin_map is None:
            self._builtin_map = FundExposureMap.default()
        return self._builtin_map

    def reset_fund(self, symbol: str) -> bool:
        """Replace ``symbol`` by its built-in definition (custom types it used are kept)."""
        sym = symbol.upper()
        builtin = self.builtin_map().get(sym)
        if builtin is None:
            self.show_message(f"{sym} is not a built-in fund; there is nothing to reset to.", True)
            return False
        fmap = self.session.workspace.fund_map
        current = fmap.get(sym)
        if current is not None and current.to_dict() == builtin.to_dict():
            self.show_message(f"{sym} already matches its built-in definition.")
            return False
        new_map = fmap.copy()
        new_map.set_fund(builtin.copy())
        self._push(new_map, f"Reset {sym} to built-in")
        self.show_message(f"{sym} reset to its built-in definition.")
        return True

    # ------------------------------------------------------------ import/export
    def import_map(self, path: str | Path) -> bool:
        """Merge the funds of a JSON or CSV map into the workspace's map (one undo step)."""
        path = Path(path)
        fmap = self.session.workspace.fund_map
        try:
            if path.suffix.lower() == ".csv":
                imported = FundExposureMap.from_csv(path, base=fmap)
            else:
                imported = FundExposureMap.from_json(path)
            new_map = fmap.copy()
            for code, etype in imported.exposure_types.items():
                mine = new_map.exposure_types.get(code)
                if mine is None:
                    new_map.add_exposure_type(etype)
                elif mine.to_dict() != etype.to_dict() and not etype.builtin:
                    raise ValidationError(
                        f"{path.name} defines exposure type {code} differently from this "
                        "workspace; rename it in the file"
                    )
            replaced = [f.symbol for f in imported if f.symbol in fmap]
            for fund in imported:
                mine = fmap.get(fund.symbol)
                if mine is not None:
                    # A CSV carries no notes or inception date: keep the ones we have.
                    fund = fund.copy(
                        notes=fund.notes or mine.notes, inception=fund.inception or mine.inception
                    )
                new_map.set_fund(fund)
        except (StackOptError, OSError) as exc:
            QMessageBox.warning(self, "Cannot import fund map", f"{exc}\n\nThe map is unchanged.")
            return False
        if not len(imported):
            self.show_message(f"{path.name} holds no funds; nothing imported.", error=True)
            return False
        self._push(new_map, f"Import fund map {path.name}")
        self.show_message(
            f"Imported {len(imported)} funds from {path.name}: "
            f"{len(imported) - len(replaced)} new, {len(replaced)} replaced."
        )
        return True

    def export_map(self, path: str | Path) -> bool:
        path = Path(path)
        fmap = self.session.workspace.fund_map
        try:
            if path.suffix.lower() == ".csv":
                fmap.save_csv(path)
            else:
                fmap.save_json(path)
        except (StackOptError, OSError) as exc:
            QMessageBox.warning(self, "Cannot export fund map", str(exc))
            return False
        self.show_message(f"Saved {len(fmap)} funds to {path}.")
        return True

    # ------------------------------------------------------------ prices, fits
    def _start(self, job: _Job, on_done: Callable[[Any], None]) -> None:
        if self._job is not None:
            self._job.cancelled.set()
        self._job = job
        job.signals.finished.connect(on_done)
        job.signals.failed.connect(self._on_job_failed)
        self.busy = True
        self._update_fit_source()
        self._pool.start(job)

    def load_prices(self, path: str | Path) -> None:
        """Read, clean and fit in the background; ``fit_finished`` or ``fit_failed`` follow."""
        fmap = self.session.workspace.fund_map.copy()
        self._start(_Job(lambda: _load_and_fit(str(path), fmap)), self._on_loaded)

    def set_prices(self, prices: pd.DataFrame, source: str = "") -> None:
        """Use prices already in memory (cleaned daily closes) and refit every fund."""
        self._price_source = source or str(prices.attrs.get("source", ""))
        fmap = self.session.workspace.fund_map.copy()
        self._start(_Job(lambda: _fit_only(prices, fmap)), self._on_fitted)

    def fit_from_history(self) -> bool:
        """Refit every fund on the loaded prices; False (and a hint) when none are loaded."""
        if self.fits.prices is None:
            self.show_message(
                "Load a price history first (Load prices...): a CSV of daily closes with the "
                "funds and their proxies (VTI, IEF, TLT, GLD, DBC, DBMF, EFA, EEM, IWM, BIL).",
                error=True,
            )
            return False
        self.set_prices(self.fits.prices, self._price_source)
        return True

    @Slot(object)
    def _on_loaded(self, result: dict[str, Any]) -> None:
        if "path" in result:
            self._price_source = result["source"]
        report = result["report"]
        # The rest of the app (estimators, Market data window) sees the same prices.
        self._own_prices = result["raw"]
        if "path" in result:
            self.session.set_market_data(
                MarketData(prices=result["raw"], sources=[result["path"]], report=report)
            )
        self._on_fitted(result)
        self.prices_loaded.emit(result["source"])
        if report.actions:
            self.message.setText(
                self.message.text()
                + f" {len(report.actions)} data fault(s) repaired before fitting (hover here)."
            )
            self.message.setToolTip("\n".join(report.actions))

    @Slot(object)
    def _on_fitted(self, result: dict[str, Any]) -> None:
        self._job = None
        self.busy = False
        self.fits.set_live(result["prices"], result["fits"], result["skipped"], result["fund_map"])
        # Funds edited while the fit ran are refitted now (a few) or again (many).
        late = self.fits.out_of_date(self.session.workspace.fund_map)
        if len(late) > SYNC_REFIT_MAX:
            self.fit_from_history()
        elif late:
            self.fits.refit(self.session.workspace.fund_map, late)
        self.model.fits_changed()
        self._update_fit_source()
        self._update_selected()
        bad = [
            s
            for s in self.session.workspace.fund_map.symbols
            if (f := self.model.fit(s)) is not None and f.status == "disagrees"
        ]
        self.show_message(
            f"Fitted {len(self.fits.live)} funds on the loaded prices"
            + (f"; maps that disagree with history: {', '.join(bad)}." if bad else "; all agree.")
        )
        self.fit_finished.emit()

    @Slot(object)
    def _on_job_failed(self, exc: Exception) -> None:
        self._job = None
        self.busy = False
        self._update_fit_source()
        self.show_message(f"Could not fit from history: {exc}", error=True)
        self.fit_failed.emit(str(exc))

    @Slot()
    def _on_market_data(self) -> None:
        """Prices loaded elsewhere (Market data window, drag and drop): refit on them."""
        market = self.session.market_data
        if market is None:
            self._own_prices = None
            self.fits.clear_prices()
            self._price_source = ""
            self.model.fits_changed()
            self._update_fit_source()
            self._update_selected()
            return
        if market.prices is self._own_prices:
            return
        self._own_prices = market.prices
        self._price_source = ", ".join(Path(s).name for s in market.sources) or "loaded prices"
        fmap = self.session.workspace.fund_map.copy()
        raw, report = market.prices, market.report  # checked once, by the loader
        self._start(_Job(lambda: _clean_and_fit(raw, fmap, report)), self._on_loaded)

    def shutdown(self) -> None:
        """Stop background work (call before the window closes)."""
        if self._job is not None:
            self._job.cancelled.set()
        self._pool.waitForDone(5000)

    # -------------------------------------------------------------- UI slots
    def _on_add(self) -> None:
        text, ok = QInputDialog.getText(self, "Add fund", "Ticker of the new fund:")
        if ok and text.strip():
            self.add_fund(text)

    def _on_duplicate(self) -> None:
        sym = self.selected_symbol()
        if sym is None:
            self.show_message("Select the fund to duplicate first.", error=True)
            return
        text, ok = QInputDialog.getText(
            self, "Duplicate fund", f"Ticker of the copy of {sym}:", text=f"{sym}2"
        )
        if ok and text.strip():
            self.duplicate_fund(sym, text)

    def _on_delete(self) -> None:
        sym = self.selected_symbol()
        if sym is None:
            self.show_message("Select the fund to delete first.", error=True)
            return
        self.delete_fund(sym)

    def _on_add_type(self) -> None:
        dialog = ExposureTypeDialog(self.session.workspace.fund_map, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            try:
                etype = dialog.exposure_type()
            except ValidationError as exc:
                self.show_message(str(exc), error=True)
                return
            self.add_exposure_type(etype)

    def _on_reset(self) -> None:
        sym = self.selected_symbol()
        if sym is None:
            self.show_message("Select the fund to reset first.", error=True)
            return
        self.reset_fund(sym)

    def _on_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import fund map", "", MAP_FILTER)
        if path:
            self.import_map(path)

    def _on_export(self) -> None:
        path, selected = QFileDialog.getSaveFileName(
            self, "Export fund map", "fund_map.json", MAP_FILTER
        )
        if not path:
            return
        if not Path(path).suffix:
            path += ".csv" if "CSV" in selected else ".json"
        self.export_map(path)

    def _on_load_prices(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load price history", "", PRICE_FILTER)
        if path:
            self.show_message(f"Reading {Path(path).name} and fitting every fund...")
            self.load_prices(path)

    def _on_fit(self) -> None:
        if self.fits.prices is None:
            self._on_load_prices()
            return
        self.fit_from_history()
