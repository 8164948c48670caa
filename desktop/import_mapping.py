"""The column-mapping step of a holdings import, and the memory of past choices.

A table that is not a broker export StackOpt recognises (any CSV or Excel sheet) is read
with a :class:`core.brokers.GenericMapping`: which column is the symbol, the quantity,
the price, ... :class:`ColumnMappingWidget` shows the file's header and first rows, lets
the user pick the columns (prefilled from a remembered choice or
:func:`core.brokers.guess_mapping`), and re-reads the file on every change with
``collect_errors=True`` so the preview lists each unreadable row with its reason.

:class:`MappingMemory` keeps the choice per layout (:func:`core.brokers.layout_key` of the
header: the same set of column names in any order) in the app's QSettings, so the next
file of the same layout is read the same way without asking again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.brokers import GenericMapping, guess_mapping, layout_key
from core.brokers.generic import column_index
from core.errors import DataError, ValidationError
from desktop.formatting import money
from desktop.holdings_import import HoldingsFile, ParsedImport, empty_preview, preview
from desktop.models.import_preview_model import (
    ACCOUNT,
    NAME,
    STATUS,
    FileRowsModel,
    ImportPreviewModel,
)

#: QSettings group of the remembered mappings (one JSON value per layout key).
SETTINGS_GROUP = "holdings_import/mappings"

#: (role, label, required) in the order the form shows them.
ROLES: tuple[tuple[str, str, bool], ...] = (
    ("symbol", "Symbol", True),
    ("quantity", "Quantity", True),
    ("price", "Price", False),
    ("value", "Market value", False),
    ("account", "Account", False),
    ("currency", "Currency", False),
    ("description", "Name", False),
)
_TIPS = {
    "symbol": "The ticker of each holding (rows named CASH are read as cash)",
    "quantity": "The number of shares",
    "price": "Last price per share (optional: prices can be loaded later)",
    "value": "Market value; used for cash rows, whose quantity is often empty",
    "account": "Account of each row; without it the file is one account",
    "currency": "Currency of each row; without it every row is in the currency on the right",
    "description": "Fund name (shown only)",
}
DECIMALS: tuple[tuple[str, str | None], ...] = (
    ("Guess from the file", None),
    ("Point (1,234.56)", "."),
    ("Comma (1.234,56)", ","),
)
#: Rows of the file shown above the preview.
SHOWN_ROWS = 200


class MappingMemory:
    """Column mappings remembered per table layout in a QSettings.

    Parameters
    ----------
    settings : QSettings
        Normally :func:`desktop.dialogs.app_settings` (passed in to keep this module
        free of the dialogs it serves).
    """

    def __init__(self, settings: QSettings):
        self._settings = settings

    @staticmethod
    def key(header: Sequence[str]) -> str:
        return f"{SETTINGS_GROUP}/{layout_key(header)}"

    def get(self, header: Sequence[str]) -> GenericMapping | None:
        """The mapping chosen for this layout before, or None.

        A stored value that no longer reads as a mapping of this header (edited by hand,
        written by another version) is forgotten rather than half-used.
        """
        raw = self._settings.value(self.key(header), None)
        if not raw:
            return None
        try:
            mapping = GenericMapping.from_dict(json.loads(str(raw)))
        except (ValueError, TypeError, ValidationError):
            self._settings.remove(self.key(header))
            return None
        if mapping.missing_columns(header):
            self._settings.remove(self.key(header))
            return None
        return mapping

    def put(self, header: Sequence[str], mapping: GenericMapping) -> None:
        self._settings.setValue(self.key(header), json.dumps(mapping.to_dict()))
        self._settings.sync()


def initial_mapping(file: HoldingsFile, currency: str) -> GenericMapping | None:
    """:func:`core.brokers.guess_mapping` of the header, in the portfolio's currency."""
    guess = guess_mapping(list(file.header))
    if guess is None:
        return None
    data = guess.to_dict()
    data["currency"] = currency
    return GenericMapping.from_dict(data)


class ColumnMappingWidget(QWidget):
    """Pick the columns of a table; the file is re-read and previewed on every change.

    Parameters
    ----------
    file : HoldingsFile
        A generic table (``file.is_broker`` is False).
    mapping : GenericMapping or None
        The starting choice (remembered or guessed); None starts empty.
    currency : str
        The portfolio currency: the default currency of rows, and what the preview
        checks prices against.
    fund_map, prices
        For the statuses of the preview (new fund, no price yet).

    Attributes
    ----------
    parsed : ParsedImport
        The file read with the current choice (empty while the choice is incomplete).
    problem : str
        What is wrong with the current choice ('' when it reads).

    Signals
    -------
    parsed_changed(object)
        A new :class:`ParsedImport` after each change of the choice.
    """

    parsed_changed = Signal(object)

    def __init__(
        self,
        file: HoldingsFile,
        mapping: GenericMapping | None,
        currency: str,
        fund_map: Any,
        prices: Mapping[str, float] | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        if file.is_broker:
            raise ValueError("a broker export needs no column mapping")
        self.file = file
        self._currency = currency
        self._base = mapping  # keeps cash symbols of a remembered mapping
        self.problem = ""
        self._mapping: GenericMapping | None = None
        self.parsed: ParsedImport = empty_preview(file.name, currency)
        names: list[str] = []
        for h in file.header:
            if h.strip() and column_index(names, h) is None:  # core reads the first of twins
                names.append(h)
        self._names = names

        intro = QLabel(
            f"<b>{file.name}</b> is not a broker export that StackOpt recognises. Choose "
            "which column holds what: the rows below are read again with every change. "
            "Your choice is remembered for files with the same columns."
        )
        intro.setWordWrap(True)
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        self.combos: dict[str, QComboBox] = {}
        for i, (role, label, required) in enumerate(ROLES):
            combo = QComboBox()
            combo.addItem("(choose a column)" if required else "(not used)", "")
            for name in names:
                combo.addItem(name, name)
            combo.setToolTip(_TIPS[role])
            combo.setMinimumContentsLength(14)
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            caption = QLabel(f"{label}{' *' if required else ''}")
            caption.setToolTip(_TIPS[role])
            r, c = divmod(i, 4)
            grid.addWidget(caption, 2 * r, c)
            grid.addWidget(combo, 2 * r + 1, c)
            self.combos[role] = combo
        self.decimal = QComboBox()
        for label, value in DECIMALS:
            self.decimal.addItem(label, value)
        self.decimal.setToolTip("Decimal separator of the numbers in the file")
        grid.addWidget(QLabel("Decimal separator"), 2, 3)
        grid.addWidget(self.decimal, 3, 3)
        self.currency = QLineEdit(currency)
        self.currency.setMaxLength(3)
        self.currency.setToolTip("Currency of rows when no column gives it (ISO code, e.g. USD)")
        grid.addWidget(QLabel("Currency of the rows"), 0, 4)
        grid.addWidget(self.currency, 1, 4)
        for c in range(5):
            grid.setColumnStretch(c, 1)

        self.file_model = FileRowsModel(
            file.header, file.rows[:SHOWN_ROWS], lines=file.lines[:SHOWN_ROWS], parent=self
        )
        self.file_view = _table(self.file_model)
        self.file_view.verticalHeader().setVisible(True)
        self.file_view.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.file_view.horizontalHeader().setMaximumSectionSize(320)
        self.preview_model = ImportPreviewModel(
            self.parsed, fund_map, currency=currency, prices=prices, parent=self
        )
        self.preview_view = _table(self.preview_model)
        _size_preview_columns(self.preview_view)
        shown = min(len(file.rows), SHOWN_ROWS)
        top = _titled(
            f"The file: column names and the first {shown} of {len(file.rows)} rows"
            if shown < len(file.rows)
            else f"The file: column names and its {len(file.rows)} rows",
            self.file_view,
        )
        bottom = _titled("Read with these columns", self.preview_view)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setChildrenCollapsible(False)
        self.status = QLabel()
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(intro)
        layout.addLayout(grid)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.status)

        if mapping is not None:
            self.set_mapping(mapping)
        for combo in self.combos.values():
            combo.currentIndexChanged.connect(self._changed)
        self.decimal.currentIndexChanged.connect(self._changed)
        self.currency.textChanged.connect(self._changed)
        self._changed()

    # ------------------------------------------------------------------ state
    def set_mapping(self, mapping: GenericMapping) -> None:
        """Select a mapping's columns (names matched as core matches them)."""
        blockers = [*self.combos.values(), self.decimal, self.currency]
        for w in blockers:
            w.blockSignals(True)
        try:
            columns = mapping.columns()
            for role, combo in self.combos.items():
                wanted = columns.get(role)
                at = column_index(self._names, wanted) if wanted else None
                combo.setCurrentIndex(0 if at is None else at + 1)
            self.decimal.setCurrentIndex(max(0, self.decimal.findData(mapping.decimal)))
            self.currency.setText(mapping.currency)
        finally:
            for w in blockers:
                w.blockSignals(False)
        self._base = mapping
        self._changed()

    def chosen(self) -> dict[str, str]:
        """Role -> header name of every column chosen."""
        return {role: c.currentData() for role, c in self.combos.items() if c.currentData()}

    def mapping(self) -> GenericMapping | None:
        """The current choice when the file reads with it, else None (see :attr:`problem`)."""
        return self._mapping

    def _build(self) -> tuple[GenericMapping | None, str]:
        """The mapping the widgets describe, or None and what is wrong with it."""
        chosen = self.chosen()
        missing = [label.lower() for role, label, req in ROLES if req and role not in chosen]
        if missing:
            return None, f"Choose the {' and '.join(missing)} column."
        by_column: dict[str, list[str]] = {}
        for role, label, _req in ROLES:
            if role in chosen:
                by_column.setdefault(chosen[role], []).append(label.lower())
        twice = {c: r for c, r in by_column.items() if len(r) > 1}
        if twice:
            column, roles = next(iter(twice.items()))
            return None, f"{column!r} is chosen as both {' and '.join(roles)}: pick one."
        data: dict[str, Any] = {f"{role}_col": chosen.get(role) for role, _l, _r in ROLES}
        data["currency"] = self.currency.text().strip() or self._currency
        data["decimal"] = self.decimal.currentData()
        if self._base is not None:
            data["cash_symbols"] = list(self._base.cash_symbols)
        try:
            return GenericMapping.from_dict(data), ""
        except ValidationError as exc:
            return None, f"{exc}."

    def _changed(self, *_args: object) -> None:
        mapping, self.problem = self._build()
        labels = {r: lbl.lower() for r, lbl, _q in ROLES}
        roles: dict[int, str] = {}
        for role, name in self.chosen().items():
            at = column_index(self.file.header, name)
            if at is not None:
                roles[at] = f"{roles[at]}, {labels[role]}" if at in roles else labels[role]
        self.file_model.set_roles(roles)
        parsed = empty_preview(self.file.name, self._currency)
        if mapping is not None:
            try:
                parsed = preview(self.file.parse(mapping), self._currency)
            except DataError as exc:
                mapping, self.problem = None, f"{exc.reason}."
        self._mapping = mapping
        self.parsed = parsed
        self.preview_model.set_parsed(parsed)
        self.preview_view.setColumnHidden(ACCOUNT, len(parsed.account_ids) <= 1)
        self._show_status()
        self.parsed_changed.emit(parsed)

    def _show_status(self) -> None:
        if self.problem:
            self.status.setStyleSheet("color: #b00020;")
            self.status.setText(self.problem)
            return
        rows = self.parsed.rows
        positions = [r for r in rows if r.ok]
        errors = [r for r in rows if r.error]
        skipped = [r for r in rows if r.skipped]
        accounts = len(self.parsed.account_ids)
        parts = [
            f"{len(positions)} position{'s' if len(positions) != 1 else ''}"
            + (f" in {accounts} accounts" if accounts > 1 else "")
        ]
        if errors:
            lines = ", ".join(str(r.line) for r in errors[:10]) + (
                " ..." if len(errors) > 10 else ""
            )
            parts.append(
                f"{len(errors)} row{'s' if len(errors) != 1 else ''} with errors (lines {lines})"
            )
        cash = self.parsed.cash_by_currency()
        if cash:
            parts.append("cash " + ", ".join(money(v, c) for c, v in cash.items()))
        if skipped:
            parts.append(f"{len(skipped)} other line{'s' if len(skipped) != 1 else ''} skipped")
        self.status.setStyleSheet("color: #b00020;" if errors or not positions else "color: #333;")
        text = "; ".join(parts) + "."
        if not positions:
            text += " Nothing can be imported with these columns."
        self.status.setText(text)


def _table(model: Any) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(22)
    view.setWordWrap(False)
    return view


def _size_preview_columns(view: QTableView) -> None:
    """Numbers to their width; names elided at a fixed width; the status takes the rest."""
    h = view.horizontalHeader()
    h.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    h.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Interactive)
    h.resizeSection(NAME, 240)
    h.setSectionResizeMode(STATUS, QHeaderView.ResizeMode.Stretch)


def _titled(title: str, view: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 4, 0, 0)
    label = QLabel(title)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    layout.addWidget(label)
    layout.addWidget(view, 1)
    return box


__all__ = [
    "DECIMALS",
    "ROLES",
    "SETTINGS_GROUP",
    "ColumnMappingWidget",
    "MappingMemory",
    "initial_mapping",
]
