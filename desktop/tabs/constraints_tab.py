"""Constraints tab: every field of OptimizationConstraints, checked as the user types.

Left: the scalar fields as a form, in percent. Middle: floors and caps per exposure type
and per asset group. Right: per-fund bounds, sector limits and the sector mapper.

A contradiction check (:func:`core.optimization.constraints.linear_form` on the held
funds plus any fund with its own bounds, and
:func:`core.workspace.validate_constraints`) runs 150 ms after the last change; what it
finds is listed in a banner and the offending fields are highlighted, before any
optimization runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core.errors import InfeasibleError, StackOptError, ValidationError
from core.optimization.constraints import OptimizationConstraints, linear_form
from core.workspace import validate_constraints
from desktop.models.constraints_model import (
    ExposureLimitsModel,
    FundBoundsModel,
    GroupLimitsModel,
    LimitsModel,
    SectorLimitsModel,
    SectorMapperModel,
)
from desktop.session import Session
from desktop.tabs._commands import ConstraintsCommand

#: Milliseconds between the last change and the contradiction check.
CHECK_DELAY_MS = 150

_FLAG_STYLE = "QDoubleSpinBox { background: #ffcdcd; }"


@dataclass(frozen=True)
class _Field:
    name: str
    label: str
    minimum: float
    maximum: float
    optional: bool = False
    suffix: str = " %"
    scale: float = 100.0  # fraction -> shown value
    decimals: int = 1
    tip: str = ""


FIELDS = (
    _Field("min_weight", "Min weight per fund", -100, 100, tip="Default floor on each fund"),
    _Field("max_weight", "Max weight per fund", 0, 100, tip="Default cap on each fund"),
    _Field("min_cash", "Min cash", 0, 100, tip="Floor on the explicit cash position"),
    _Field("max_cash", "Max cash", 0, 100, tip="Cap on cash; 0 = fully invested in funds"),
    _Field(
        "max_total_notional",
        "Max total notional",
        0,
        2000,
        optional=True,
        decimals=0,
        tip="Cap on the sum of |weight| x fund notional (150% = 1.5x gross exposure)",
    ),
    _Field(
        "target_volatility",
        "Target volatility",
        0,
        200,
        optional=True,
        tip="Annualised volatility cap / target",
    ),
    _Field(
        "target_return",
        "Target return",
        -100,
        100,
        optional=True,
        tip="Required annual expected return (min volatility at a target return)",
    ),
    _Field(
        "max_turnover",
        "Turnover limit",
        0,
        200,
        optional=True,
        tip="Cap on the sum of |new weight - current weight| (100% = half the book traded)",
    ),
    _Field(
        "transaction_cost_bps",
        "Transaction costs",
        0,
        1000,
        suffix=" bps",
        scale=1.0,
        tip="Proportional cost per unit traded, in basis points, charged in the objective",
    ),
)


@dataclass
class Issue:
    """One problem found by the check, and the fields it concerns.

    ``targets`` holds ``("form", field)``, ``("exposure" | "group" | "fund" | "sector",
    key, "min" | "max")`` or ``("mapper", symbol)``.
    """

    message: str
    targets: list[tuple[str, ...]] = field(default_factory=list)
    kind: str = "conflict"  # conflict, invalid, info


def _targets_of_conflict(text: str, c: OptimizationConstraints) -> list[tuple[str, ...]]:
    """Which fields a conflict message of ``linear_form`` names."""
    bounded = {s.upper() for s in c.fund_bounds}
    if m := re.match(r"bounds of (\S+):", text):
        sym = m.group(1)
        if sym in bounded:
            return [("fund", sym, "min"), ("fund", sym, "max")]
        return [("form", "min_weight"), ("form", "max_weight")]
    if text.startswith("cash:"):
        return [("form", "min_cash"), ("form", "max_cash")]
    if text.startswith("min_weight"):
        return [("form", "min_weight"), ("form", "max_weight")]
    if "minimum weights" in text:
        return [("form", "min_weight"), ("form", "min_cash")] + [
            ("fund", s, "min") for s in bounded
        ]
    if "maximum weights" in text:
        return [("form", "max_weight"), ("form", "max_cash")] + [
            ("fund", s, "max") for s in bounded
        ]
    if m := re.match(r"exposure (\S+): floor", text):
        return [("exposure", m.group(1), "min"), ("exposure", m.group(1), "max")]
    if m := re.match(r"group (\S+): floor", text):
        return [("group", m.group(1), "min"), ("group", m.group(1), "max")]
    if m := re.match(r"sector (.+?): minimum", text):
        return [("sector", m.group(1), "min"), ("sector", m.group(1), "max")]
    if m := re.match(r"(max|min)_exposure\[(\S+?)\]", text):
        return [("exposure", m.group(2), m.group(1))]
    if m := re.match(r"(max|min)_group_exposure\[(\S+?)\]", text):
        return [("group", m.group(2), m.group(1))]
    if m := re.match(r"sector\[(.+?)\] (<=|>=)", text):
        return [("sector", m.group(1), "max" if m.group(2) == "<=" else "min")]
    if text.startswith("max_total_notional"):
        return [("form", "max_total_notional")]
    return []


def _targets_of_field(name: str | None) -> list[tuple[str, ...]]:
    """Which fields a ValidationError's ``field`` path names."""
    if not name:
        return []
    head, _, key = name.partition(".")
    if not key:
        return [("form", head)]
    side = "min" if head.startswith("min_") else "max"
    if head in ("max_exposure_per_type", "min_exposure_per_type"):
        return [("exposure", key.upper(), side)]
    if head in ("max_exposure_per_group", "min_exposure_per_group"):
        return [("group", key, side)]
    if head == "fund_bounds":
        return [("fund", key, "min"), ("fund", key, "max")]
    if head == "sector_limits":
        return [("sector", key, "min"), ("sector", key, "max")]
    if head == "sector_mapper":
        return [("mapper", key)]
    return [("form", head)]


def check_constraints(session: Session) -> tuple[list[Issue], int]:
    """Contradictions and invalid values of the workspace's constraints.

    Returns
    -------
    (issues, n_funds)
        The problems found and how many funds the check covered.
    """
    ws = session.workspace
    c = ws.constraints
    fmap = ws.fund_map
    issues: list[Issue] = []
    symbols = [s for s in ws.portfolio.symbols if s in fmap]
    for s in c.fund_bounds:
        if s.upper() in fmap and s.upper() not in symbols:
            symbols.append(s.upper())
    invalid: Issue | None = None
    try:
        validate_constraints(c, fmap)
    except ValidationError as exc:
        invalid = Issue(str(exc), _targets_of_field(exc.field), "invalid")
    if not symbols:
        issues = [invalid] if invalid else []
        issues.append(Issue("Add holdings to check the constraints against them.", [], "info"))
        return issues, 0
    try:
        linear_form(symbols, c, fmap)
    except InfeasibleError as exc:
        issues += [Issue(m, _targets_of_conflict(m, c)) for m in exc.conflicts or [str(exc)]]
    except ValidationError as exc:
        issues.append(Issue(str(exc), _targets_of_field(exc.field), "invalid"))
    except StackOptError as exc:
        issues.append(Issue(str(exc), [], "invalid"))
    if invalid is not None:
        issues.append(invalid)
    # One line per set of fields: min_weight > max_weight makes every fund's bounds
    # contradict; saying it once, in the user's terms, is enough.
    # Prefer core's conflicts (in percent) over the field validation (in fractions).
    issues.sort(key=lambda i: (i.kind == "invalid", i.message.startswith("bounds of ")))
    seen: set[frozenset[tuple[str, ...]]] = set()
    unique: list[Issue] = []
    for issue in issues:
        key = frozenset(issue.targets)
        if issue.targets and key in seen:
            continue
        if issue.targets and all(t in {u for s_ in seen for u in s_} for t in issue.targets):
            continue
        seen.add(key)
        unique.append(issue)
    return unique, len(symbols)


class ConstraintsTab(QWidget):
    """Every optimization constraint, with contradictions flagged as the user types.

    Signals
    -------
    checked(list)
        After each check, with the :class:`Issue` list (empty when all is consistent).
    """

    checked = Signal(list)

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.issues: list[Issue] = []
        self.spins: dict[str, QDoubleSpinBox] = {}
        self.enablers: dict[str, QCheckBox] = {}
        self._updating = False
        self.flagged_fields: dict[str, str] = {}

        self.exposure_model = ExposureLimitsModel(session)
        self.group_model = GroupLimitsModel(session)
        self.fund_bounds_model = FundBoundsModel(session)
        self.sector_model = SectorLimitsModel(session)
        self.mapper_model = SectorMapperModel(session)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(CHECK_DELAY_MS)
        self._timer.timeout.connect(self.check_now)

        self._build_ui()
        for signal in (
            session.constraints_changed,
            session.fund_map_changed,
            session.portfolio_changed,
            session.workspace_replaced,
        ):
            signal.connect(self.schedule_check)
        session.constraints_changed.connect(self._load_form)
        session.workspace_replaced.connect(self._load_form)
        self._load_form()
        self.check_now()

    # ------------------------------------------------------------------ layout
    def _table(self, model, stretch_column: int = 0) -> QTableView:
        view = QTableView()
        view.setModel(model)
        view.verticalHeader().setVisible(False)
        view.verticalHeader().setDefaultSectionSize(22)
        view.setAlternatingRowColors(True)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        header = view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(stretch_column, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(64)
        return view

    def _build_ui(self) -> None:
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.banner.setStyleSheet(
            "background: #fde2e2; color: #8a1010; border: 1px solid #e8a0a0; "
            "border-radius: 3px; padding: 6px;"
        )
        self.banner.setVisible(False)
        self.status = QLabel()
        self.status.setStyleSheet("color: #2e6b34;")

        # Form: scalar fields in percent.
        groups = {
            "Weights and cash": ("min_weight", "max_weight", "min_cash", "max_cash"),
            "Portfolio targets": ("max_total_notional", "target_volatility", "target_return"),
            "Trading": ("max_turnover", "transaction_cost_bps"),
        }
        by_name = {f.name: f for f in FIELDS}
        left = QVBoxLayout()
        self.long_only = QCheckBox("Long only (no short positions)")
        self.long_only.toggled.connect(self._on_long_only)
        for title, names in groups.items():
            box = QGroupBox(title)
            form = QFormLayout(box)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
            if title == "Weights and cash":
                form.addRow(self.long_only)
            for name in names:
                spec = by_name[name]
                spin = QDoubleSpinBox()
                spin.setRange(spec.minimum, spec.maximum)
                spin.setDecimals(spec.decimals)
                spin.setSuffix(spec.suffix)
                spin.setSingleStep(1.0 if spec.scale == 100 else 0.5)
                spin.setAlignment(Qt.AlignmentFlag.AlignRight)
                spin.setKeyboardTracking(True)
                spin.setMinimumWidth(110)
                spin.setToolTip(spec.tip)
                spin.valueChanged.connect(self._spin_slot(name))
                self.spins[name] = spin
                if spec.optional:
                    check = QCheckBox(spec.label)
                    check.setMinimumWidth(160)
                    check.setToolTip(spec.tip)
                    check.toggled.connect(self._enabler_slot(name))
                    self.enablers[name] = check
                    form.addRow(check, spin)
                else:
                    label = QLabel(spec.label)
                    label.setMinimumWidth(160)
                    label.setToolTip(spec.tip)
                    form.addRow(label, spin)
            left.addWidget(box)
        note = QLabel(
            "Turnover is measured against the current holdings. Optional limits apply only "
            "when ticked."
        )
        note.setWordWrap(True)
        note.setStyleSheet("color: #666;")
        left.addWidget(note)
        left.addStretch(1)

        # Middle: exposure and group limits.
        self.exposure_view = self._table(self.exposure_model)
        self.group_view = self._table(self.group_model)
        self.group_view.setMaximumHeight(22 * 5 + 30)
        middle = QVBoxLayout()
        middle.addWidget(self._titled("Exposure limits (% of portfolio)", self.exposure_view), 3)
        middle.addWidget(self._titled("Asset group limits", self.group_view), 0)

        # Right: fund bounds, sectors, mapper.
        self.fund_bounds_view = self._table(self.fund_bounds_model)
        self.sector_view = self._table(self.sector_model, stretch_column=1)
        self.mapper_view = self._table(self.mapper_model, stretch_column=1)
        self.add_bound_button = QPushButton("Add fund bound...")
        self.add_bound_button.clicked.connect(self._on_add_bound)
        self.remove_bound_button = QPushButton("Remove")
        self.remove_bound_button.clicked.connect(self._on_remove_bound)
        self.add_sector_button = QPushButton("Add sector limit...")
        self.add_sector_button.clicked.connect(self._on_add_sector)
        self.remove_sector_button = QPushButton("Remove")
        self.remove_sector_button.clicked.connect(self._on_remove_sector)
        right = QVBoxLayout()
        right.addWidget(
            self._titled(
                "Per-fund bounds (override the default weights)",
                self.fund_bounds_view,
                [self.add_bound_button, self.remove_bound_button],
            ),
            2,
        )
        right.addWidget(
            self._titled(
                "Sector limits (summed weight of their funds)",
                self.sector_view,
                [self.add_sector_button, self.remove_sector_button],
            ),
            2,
        )
        right.addWidget(self._titled("Sector mapper (fund -> sector)", self.mapper_view), 3)

        columns = QHBoxLayout()
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setFixedWidth(318)
        columns.addWidget(left_widget)
        columns.addLayout(middle, 6)
        columns.addLayout(right, 5)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.banner)
        layout.addWidget(self.status)
        layout.addLayout(columns, 1)

    def _titled(
        self, title: str, view: QWidget, buttons: list[QPushButton] | None = None
    ) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        label = QLabel(title)
        label.setStyleSheet("font-weight: bold;")
        row.addWidget(label)
        row.addStretch(1)
        for b in buttons or []:
            row.addWidget(b)
        layout.addLayout(row)
        layout.addWidget(view)
        return box

    # -------------------------------------------------------------- form <-> ws
    def _spin_slot(self, name: str) -> Callable[[float], None]:
        return lambda value: self._on_spin(name, value)

    def _enabler_slot(self, name: str) -> Callable[[bool], None]:
        return lambda on: self._on_enabled(name, on)

    def _scale(self, name: str) -> float:
        return next(f.scale for f in FIELDS if f.name == name)

    def _load_form(self) -> None:
        """Show the workspace's constraints (no commands are pushed while doing so)."""
        c = self.session.workspace.constraints
        self._updating = True
        try:
            if self.long_only.isChecked() != c.long_only:
                self.long_only.setChecked(c.long_only)
            for spec in FIELDS:
                spin = self.spins[spec.name]
                value = getattr(c, spec.name)
                if spec.optional:
                    on = value is not None
                    if self.enablers[spec.name].isChecked() != on:
                        self.enablers[spec.name].setChecked(on)
                    spin.setEnabled(on)
                    if value is None:
                        continue
                shown = float(value) * spec.scale
                # setValue re-formats the text: skip it when the value is the same, so the
                # cursor of a user typing in that box does not jump.
                if abs(spin.value() - shown) > 0.5 * 10**-spec.decimals:
                    spin.setValue(shown)
        finally:
            self._updating = False

    def _push(self, new: OptimizationConstraints, text: str, merge_key: str | None) -> None:
        self.session.undo_stack.push(ConstraintsCommand(self.session, new, text, merge_key))

    def _on_spin(self, name: str, value: float) -> None:
        if self._updating:
            return
        spec = next(f for f in FIELDS if f.name == name)
        if spec.optional and not self.enablers[name].isChecked():
            return
        c = self.session.workspace.constraints
        new_value = value / spec.scale
        current = getattr(c, name)
        if current is not None and abs(current - new_value) < 1e-12:
            return
        self._push(c.copy(**{name: new_value}), f"Set {spec.label.lower()}", name)

    def _on_enabled(self, name: str, on: bool) -> None:
        self.spins[name].setEnabled(on)
        if self._updating:
            return
        spec = next(f for f in FIELDS if f.name == name)
        value = self.spins[name].value() / spec.scale if on else None
        c = self.session.workspace.constraints
        if getattr(c, name) == value:
            return
        text = f"{'Set' if on else 'Remove'} {spec.label.lower()}"
        self._push(c.copy(**{name: value}), text, None)

    def _on_long_only(self, on: bool) -> None:
        if self._updating:
            return
        c = self.session.workspace.constraints
        if c.long_only == on:
            return
        self._push(c.copy(long_only=on), "Long only" if on else "Allow shorts", None)

    def set_field(self, name: str, percent: float | None) -> None:
        """Type ``percent`` into a form field (None unticks an optional one)."""
        if percent is None:
            self.enablers[name].setChecked(False)
            return
        if name in self.enablers:
            self.enablers[name].setChecked(True)
        self.spins[name].setValue(percent)

    # ----------------------------------------------------------- list editing
    def add_fund_bound(self, symbol: str) -> bool:
        sym = symbol.strip().upper()
        ws = self.session.workspace
        if sym not in ws.fund_map:
            self._show_status(f"{sym} is not in the fund map; add it on the Fund Exposures tab.")
            return False
        c = ws.constraints
        if sym in c.fund_bounds:
            return False
        new = c.copy()
        lo, hi = c.bounds_for(sym)
        new.fund_bounds[sym] = (lo, hi)
        self._push(new, f"Add bounds for {sym}", None)
        return True

    def remove_fund_bound(self, symbol: str) -> bool:
        c = self.session.workspace.constraints
        if symbol not in c.fund_bounds:
            return False
        new = c.copy()
        del new.fund_bounds[symbol]
        self._push(new, f"Remove bounds of {symbol}", None)
        return True

    def add_sector_limit(self, name: str) -> bool:
        name = name.strip()
        c = self.session.workspace.constraints
        if not name or name in c.sector_limits:
            return False
        new = c.copy()
        new.sector_limits[name] = (None, None)
        self._push(new, f"Add sector limit {name}", None)
        return True

    def remove_sector_limit(self, name: str) -> bool:
        c = self.session.workspace.constraints
        if name not in c.sector_limits:
            return False
        new = c.copy()
        del new.sector_limits[name]
        self._push(new, f"Remove sector limit {name}", None)
        return True

    def _selected_key(self, view: QTableView) -> str | None:
        index = view.currentIndex()
        if not index.isValid():
            return None
        return view.model().index(index.row(), 0).data(Qt.ItemDataRole.DisplayRole)

    def _on_add_bound(self) -> None:
        ws = self.session.workspace
        taken = set(ws.constraints.fund_bounds)
        held = [s for s in ws.portfolio.symbols if s not in taken]
        others = [s for s in ws.fund_map.symbols if s not in taken and s not in held]
        items = held + others
        if not items:
            return
        symbol, ok = QInputDialog.getItem(
            self, "Add fund bound", "Fund (held funds first):", items, 0, False
        )
        if ok and symbol:
            self.add_fund_bound(symbol)

    def _on_remove_bound(self) -> None:
        key = self._selected_key(self.fund_bounds_view)
        if key:
            self.remove_fund_bound(key)

    def _on_add_sector(self) -> None:
        name, ok = QInputDialog.getText(self, "Add sector limit", "Sector name:")
        if ok and name.strip():
            self.add_sector_limit(name)

    def _on_remove_sector(self) -> None:
        key = self._selected_key(self.sector_view)
        if key:
            self.remove_sector_limit(key)

    # -------------------------------------------------------------- the check
    def schedule_check(self) -> None:
        """Check again 150 ms after the last change (typing restarts the wait)."""
        self._timer.start()

    def _show_status(self, text: str) -> None:
        self.status.setText(text)

    def check_now(self) -> list[Issue]:
        """Run the contradiction check now; update the banner and the highlights."""
        self._timer.stop()
        issues, n_funds = check_constraints(self.session)
        self.issues = issues
        problems = [i for i in issues if i.kind != "info"]
        if problems:
            self._show_banner(problems)
        else:
            self.banner.setVisible(False)
            info = [i.message for i in issues if i.kind == "info"]
            self.status.setText(
                info[0]
                if info
                else f"No contradictions among the constraints for the {n_funds} funds held."
            )
        self._apply_highlights(problems)
        self.checked.emit(issues)
        return issues

    def _show_banner(self, problems: list[Issue]) -> None:
        items = "".join(f"<li>{_escape(i.message)}</li>" for i in problems)
        self.banner.setText(
            "<b>These constraints contradict each other or are invalid; no optimization "
            f"can meet them:</b><ul style='margin: 2px 0 0 -20px;'>{items}</ul>"
        )
        self.banner.setVisible(True)
        self.status.setText("")

    def highlight_conflicts(self, conflicts: list[str]) -> list[Issue]:
        """Flag the constraints an optimizer's InfeasibleError names (after a failed run).

        ``conflicts`` are the messages of ``InfeasibleError.conflicts`` (or its text when
        it names none). Those the live check does not already show join its banner and
        highlights until the next edit re-checks. Returns the issues added.
        """
        self.check_now()
        c = self.session.workspace.constraints
        known = set(self.messages())
        added = [
            Issue(text, _targets_of_conflict(text, c) or _targets_of_run_failure(text))
            for text in dict.fromkeys(conflicts)
            if text and text not in known
        ]
        if added:
            self.issues = [*self.issues, *added]
            problems = [i for i in self.issues if i.kind != "info"]
            self._show_banner(problems)
            self._apply_highlights(problems)
            self.checked.emit(self.issues)
        return added

    def _apply_highlights(self, problems: list[Issue]) -> None:
        per_model: dict[str, dict[tuple[str, str], str]] = {
            "exposure": {},
            "group": {},
            "fund": {},
            "sector": {},
        }
        form: dict[str, str] = {}
        mapper: dict[str, str] = {}
        for issue in problems:
            for target in issue.targets:
                if target[0] == "form":
                    form.setdefault(target[1], issue.message)
                elif target[0] == "mapper":
                    mapper.setdefault(target[1], issue.message)
                elif target[0] in per_model:
                    per_model[target[0]].setdefault((target[1], target[2]), issue.message)
        models: dict[str, LimitsModel] = {
            "exposure": self.exposure_model,
            "group": self.group_model,
            "fund": self.fund_bounds_model,
            "sector": self.sector_model,
        }
        for kind, model in models.items():
            model.set_flags(per_model[kind])
        self.mapper_model.set_flags(mapper)
        self.flagged_fields = dict(form)
        for spec in FIELDS:
            spin = self.spins[spec.name]
            reason = form.get(spec.name)
            spin.setStyleSheet(_FLAG_STYLE if reason else "")
            spin.setToolTip(reason or spec.tip)
            if spec.name in self.enablers:
                self.enablers[spec.name].setStyleSheet("color: #b00020;" if reason else "")
        self.long_only.setStyleSheet("color: #b00020;" if "long_only" in form else "")

    def messages(self) -> list[str]:
        """The problems the banner lists (empty when the constraints are consistent)."""
        return [i.message for i in self.issues if i.kind != "info"]

    def is_flagged(self, name: str) -> bool:
        """True if the form field ``name`` is highlighted by the last check."""
        return name in self.flagged_fields


def _targets_of_run_failure(text: str) -> list[tuple[str, ...]]:
    """Fields named by an optimizer failure that the linear check cannot see."""
    low = text.lower()
    targets: list[tuple[str, ...]] = []
    if "volatility target" in low or "target volatility" in low:
        targets.append(("form", "target_volatility"))
    if "target return" in low or "return target" in low:
        targets.append(("form", "target_return"))
    if "notional" in low:
        targets.append(("form", "max_total_notional"))
    if "turnover" in low:
        targets.append(("form", "max_turnover"))
    return targets


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
