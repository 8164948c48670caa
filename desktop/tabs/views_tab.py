"""Views tab: Black-Litterman views, their settings, and prior vs posterior returns.

Left: the views (absolute or relative, on a fund or an exposure type), risk aversion,
the market-weight source and tau (kept in the workspace settings). Right: the prior
(equilibrium) and posterior expected excess returns per fund as bars and as a table,
recomputed whenever a view, a setting, the holdings or the fund map change (the
computation is closed form on at most a dozen exposure types: microseconds).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.errors import StackOptError
from core.optimization.constraints import MarketView
from desktop.models.views_model import (
    DEFAULT_RISK_AVERSION,
    DEFAULT_TAU,
    MARKET_WEIGHT_SOURCES,
    MARKET_WEIGHTS_KEY,
    RISK_AVERSION_KEY,
    TAU_KEY,
    BLSummary,
    PosteriorModel,
    ViewsModel,
    black_litterman_summary,
)
from desktop.plots.views_plot import PriorPosteriorPlot
from desktop.session import Session
from desktop.tabs._commands import SettingsCommand, ViewsCommand

Index = QModelIndex | QPersistentModelIndex
_SEP = " \u2013 "

_ASSUMPTIONS: Any = None


def _default_assumptions() -> Any:
    """The built-in market assumptions, read once per process (about 0.2 s)."""
    global _ASSUMPTIONS
    if _ASSUMPTIONS is None:
        from core.assumptions import MarketAssumptions

        _ASSUMPTIONS = MarketAssumptions.default()
    return _ASSUMPTIONS


class _ViewDelegate(QStyledItemDelegate):
    """Combo editors: Absolute/Relative, and an editable asset list with completion."""

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self._session = session

    def asset_items(self) -> list[tuple[str, str]]:
        """(code, label) of exposure types first, then held funds, then the other funds."""
        ws = self._session.workspace
        fmap = ws.fund_map
        items = [(c, f"{c}{_SEP}{t.name}") for c, t in fmap.exposure_types.items()]
        held = [s for s in ws.portfolio.symbols if s in fmap]
        others = [s for s in fmap.symbols if s not in held]
        for s in held + others:
            items.append((s, f"{s}{_SEP}{fmap[s].name}" if fmap[s].name else s))
        return items

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: Index) -> QWidget:
        if index.column() == 0:
            combo = QComboBox(parent)
            combo.addItems(["Absolute", "Relative"])
            return combo
        if index.column() in (1, 2):
            combo = QComboBox(parent)
            combo.setEditable(True)
            combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
            for _code, label in self.asset_items():
                combo.addItem(label)
            completer = combo.completer()
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            return combo
        return super().createEditor(parent, option, index)

    def setEditorData(self, editor: QWidget, index: Index) -> None:
        if isinstance(editor, QComboBox):
            value = str(index.data(Qt.ItemDataRole.EditRole) or "")
            if index.column() == 0:
                editor.setCurrentIndex(1 if value == "relative" else 0)
                return
            labels = [editor.itemText(i) for i in range(editor.count())]
            match = next((i for i, t in enumerate(labels) if t.split(_SEP)[0] == value), -1)
            if match >= 0:
                editor.setCurrentIndex(match)
            else:
                editor.setEditText(value)
            return
        super().setEditorData(editor, index)

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: Index) -> None:
        if isinstance(editor, QComboBox):
            text = editor.currentText().split(_SEP)[0].strip()
            model.setData(index, text.lower() if index.column() == 0 else text)
            return
        super().setModelData(editor, model, index)


class ViewsTab(QWidget):
    """Black-Litterman views with a live prior vs posterior chart.

    Signals
    -------
    posterior_updated(object)
        The new :class:`~desktop.models.views_model.BLSummary`, or None after an error.
    """

    posterior_updated = Signal(object)

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.model = ViewsModel(session)
        self.posterior_model = PosteriorModel()
        self.summary: BLSummary | None = None
        self.error: str = ""
        self._updating = False
        self._build_ui()
        for signal in (
            session.views_changed,
            session.settings_changed,
            session.portfolio_changed,
            session.fund_map_changed,
            session.workspace_replaced,
        ):
            signal.connect(self.recompute)
        session.settings_changed.connect(self._load_settings)
        session.workspace_replaced.connect(self._load_settings)
        self._load_settings()
        self.recompute()

    @property
    def assumptions(self) -> Any:
        # A session that owns user-edited assumptions wins over the built-in ones.
        own = getattr(self.session, "assumptions", None)
        return own if own is not None else _default_assumptions()

    # ------------------------------------------------------------------ layout
    def _build_ui(self) -> None:
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "background: #fde2e2; color: #8a1010; border: 1px solid #e8a0a0; "
            "border-radius: 3px; padding: 6px;"
        )
        self.banner.setVisible(False)

        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setItemDelegate(_ViewDelegate(self.session, self.table))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in enumerate((82, 118, 118, 112, 90)):
            self.table.setColumnWidth(column, width)

        self.add_button = QPushButton("Add view")
        self.add_button.clicked.connect(lambda: self.add_view())
        self.remove_button = QPushButton("Remove view")
        self.remove_button.clicked.connect(self._on_remove)
        buttons = QHBoxLayout()
        title = QLabel("Black-Litterman views")
        title.setStyleSheet("font-weight: bold;")
        buttons.addWidget(title)
        buttons.addStretch(1)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)

        self.risk_aversion = QDoubleSpinBox()
        self.risk_aversion.setRange(0.1, 20.0)
        self.risk_aversion.setDecimals(2)
        self.risk_aversion.setSingleStep(0.25)
        self.risk_aversion.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.risk_aversion.setToolTip(
            "delta of the equilibrium returns delta * Sigma * w_mkt (2.5 is customary)"
        )
        self.risk_aversion.valueChanged.connect(self._on_risk_aversion)
        self.market_weights = QComboBox()
        for key, label in MARKET_WEIGHT_SOURCES.items():
            self.market_weights.addItem(label, key)
        self.market_weights.setToolTip("Weights whose exposures define the equilibrium prior")
        self.market_weights.currentIndexChanged.connect(self._on_market_weights)
        self.tau = QDoubleSpinBox()
        self.tau.setRange(0.001, 1.0)
        self.tau.setDecimals(3)
        self.tau.setSingleStep(0.01)
        self.tau.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.tau.setToolTip("Uncertainty of the prior mean relative to the return covariance")
        self.tau.valueChanged.connect(self._on_tau)
        settings = QGroupBox("Prior")
        form = QFormLayout(settings)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        form.addRow("Risk aversion", self.risk_aversion)
        form.addRow("Market weights", self.market_weights)
        form.addRow("Tau", self.tau)
        note = QLabel(
            "Expected returns are annual and in excess of cash. A view on an exposure type "
            "(US_EQUITY, GOLD ...) moves every fund that carries it; the prior comes from the "
            "built-in exposure assumptions and the market weights."
        )
        note.setWordWrap(True)
        note.setStyleSheet("color: #666;")

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(buttons)
        ll.addWidget(self.table, 1)
        ll.addWidget(settings)
        ll.addWidget(note)

        self.plot = PriorPosteriorPlot()
        self.posterior_view = QTableView()
        self.posterior_view.setModel(self.posterior_model)
        self.posterior_view.verticalHeader().setVisible(False)
        self.posterior_view.verticalHeader().setDefaultSectionSize(22)
        self.posterior_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.posterior_view.setAlternatingRowColors(True)
        ph = self.posterior_view.horizontalHeader()
        ph.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.plot)
        right.addWidget(self.posterior_view)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        right.setSizes([440, 290])

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([570, 690])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.banner)
        layout.addWidget(split, 1)

    # -------------------------------------------------------------- settings
    def _load_settings(self) -> None:
        s = self.session.workspace.settings
        self._updating = True
        try:
            delta = s.get(RISK_AVERSION_KEY, DEFAULT_RISK_AVERSION)
            if isinstance(delta, int | float) and abs(self.risk_aversion.value() - delta) > 1e-9:
                self.risk_aversion.setValue(float(delta))
            i = self.market_weights.findData(s.get(MARKET_WEIGHTS_KEY, "holdings"))
            if i >= 0 and i != self.market_weights.currentIndex():
                self.market_weights.setCurrentIndex(i)
            tau = s.get(TAU_KEY, DEFAULT_TAU)
            if isinstance(tau, int | float) and abs(self.tau.value() - tau) > 1e-12:
                self.tau.setValue(float(tau))
        finally:
            self._updating = False

    def _set_setting(self, key: str, value: Any, text: str) -> None:
        if self._updating or self.session.workspace.settings.get(key) == value:
            return
        self.session.undo_stack.push(
            SettingsCommand(self.session, {key: value}, text, merge_key=key)
        )

    def _on_risk_aversion(self, value: float) -> None:
        self._set_setting(RISK_AVERSION_KEY, round(float(value), 6), "Set risk aversion")

    def _on_market_weights(self, _index: int) -> None:
        self._set_setting(
            MARKET_WEIGHTS_KEY, self.market_weights.currentData(), "Set market weights"
        )

    def _on_tau(self, value: float) -> None:
        self._set_setting(TAU_KEY, round(float(value), 6), "Set tau")

    # ---------------------------------------------------------------- views
    def _push_views(self, views: list[MarketView], text: str) -> None:
        self.session.undo_stack.push(ViewsCommand(self.session, views, text))

    def _copy_views(self) -> list[MarketView]:
        return [MarketView.from_dict(v.to_dict()) for v in self.session.workspace.views]

    def add_view(self, view: MarketView | None = None) -> None:
        """Append ``view`` (default: an absolute 0% view at 50% on a held exposure)."""
        if view is None:
            ws = self.session.workspace
            used = ws.fund_map.used_exposure_types(
                [s for s in ws.portfolio.symbols if s in ws.fund_map]
            )
            asset = next((c for c in used if c != "CASH_TBILL"), "US_EQUITY")
            view = MarketView(assets=[asset], view_type="absolute", expected_return=0.0)
        views = self._copy_views() + [view]
        self._push_views(views, "Add view")
        self.table.setCurrentIndex(self.model.index(len(views) - 1, 1))

    def remove_view(self, row: int) -> bool:
        views = self._copy_views()
        if not 0 <= row < len(views):
            return False
        del views[row]
        self._push_views(views, f"Remove view {row + 1}")
        return True

    def _on_remove(self) -> None:
        index = self.table.currentIndex()
        if index.isValid():
            self.remove_view(index.row())

    # ------------------------------------------------------------ posterior
    def recompute(self) -> BLSummary | None:
        """Recompute the prior and posterior and redraw; errors go to the banner."""
        try:
            summary = black_litterman_summary(self.session.workspace, self.assumptions)
        except StackOptError as exc:
            self.summary = None
            self.error = str(exc)
            self.banner.setText(f"No posterior: {exc}")
            self.banner.setVisible(True)
            self.posterior_model.set_summary(None)
            self.plot.clear("Prior vs posterior expected returns")
            self.posterior_updated.emit(None)
            return None
        self.summary = summary
        self.error = ""
        self.banner.setText("; ".join(summary.notes))
        self.banner.setVisible(bool(summary.notes))
        self.posterior_model.set_summary(summary)
        n = len(self.session.workspace.views)
        weights = MARKET_WEIGHT_SOURCES[summary.source].lower()
        self.plot.set_data(
            summary.symbols,
            summary.prior,
            summary.posterior,
            f"Expected excess returns per fund: prior ({weights}, risk aversion "
            f"{summary.risk_aversion:g}) and posterior with {n} view{'s' if n != 1 else ''}",
        )
        self.posterior_updated.emit(summary)
        return summary
