"""Undo commands of the Fund Exposures, Constraints and Views tabs.

Every command stores a snapshot of the part of the workspace it changes, before and
after, and restores it IN PLACE (the workspace keeps its fund map, constraints and views
objects, so nobody holding a reference sees a stale copy). Restoring a snapshot is
correct on a linear undo stack: when a command is undone, every later command has
already been undone, so the state is exactly the one the command produced.

After a change the command announces it with :meth:`~desktop.session.Session.notify`
(``fund_map_changed``, ``constraints_changed``, ``views_changed``, ``settings_changed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from PySide6.QtGui import QUndoCommand

from core.errors import ValidationError, WorkspaceError
from core.exposures import FundExposureMap
from core.optimization.constraints import MarketView, OptimizationConstraints
from core.workspace import check_settings
from desktop.session import Session

#: QUndoCommand ids: consecutive commands with the same id and merge key merge.
_CONSTRAINTS_ID = 5101
_SETTINGS_ID = 5102
_VIEWS_ID = 5103


def _restore_fund_map(target: FundExposureMap, snapshot: FundExposureMap) -> None:
    target.exposure_types = dict(snapshot.exposure_types)
    target.funds = {symbol: fund.copy() for symbol, fund in snapshot.funds.items()}


class FundMapCommand(QUndoCommand):
    """Replace the workspace's fund map (funds and exposure types) by ``new_map``.

    Parameters
    ----------
    session : Session
    new_map : FundExposureMap
        The complete map after the edit (copied; the caller may keep using it).
    text : str
        What the Edit menu shows ("Edit NTSX US_EQUITY").
    """

    def __init__(self, session: Session, new_map: FundExposureMap, text: str):
        super().__init__(text)
        self._session = session
        self._before = session.workspace.fund_map.copy()
        self._after = new_map.copy()

    def _apply(self, snapshot: FundExposureMap) -> None:
        _restore_fund_map(self._session.workspace.fund_map, snapshot)
        self._session.notify({"fund_map"})

    def redo(self) -> None:
        self._apply(self._after)

    def undo(self) -> None:
        self._apply(self._before)


def _restore_constraints(target: OptimizationConstraints, snapshot: dict[str, Any]) -> None:
    fresh = OptimizationConstraints.from_dict(snapshot)
    for f in fields(OptimizationConstraints):
        setattr(target, f.name, getattr(fresh, f.name))


class ConstraintsCommand(QUndoCommand):
    """Replace the workspace's constraints by ``new``.

    ``merge_key`` (a field name such as ``"max_weight"``) lets the keystrokes of one
    field collapse into a single undo step: consecutive commands with the same key merge.
    """

    def __init__(
        self,
        session: Session,
        new: OptimizationConstraints,
        text: str,
        merge_key: str | None = None,
    ):
        super().__init__(text)
        self._session = session
        self._before = session.workspace.constraints.to_dict()
        self._after = new.to_dict()
        self.merge_key = merge_key

    def _apply(self, snapshot: dict[str, Any]) -> None:
        _restore_constraints(self._session.workspace.constraints, snapshot)
        self._session.notify({"constraints"})

    def redo(self) -> None:
        self._apply(self._after)

    def undo(self) -> None:
        self._apply(self._before)

    def id(self) -> int:
        return _CONSTRAINTS_ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, ConstraintsCommand) or other.merge_key != self.merge_key:
            return False
        self._after = other._after
        return True


class ViewsCommand(QUndoCommand):
    """Replace the workspace's Black-Litterman views by ``new_views``."""

    def __init__(
        self,
        session: Session,
        new_views: list[MarketView],
        text: str,
        merge_key: str | None = None,
    ):
        super().__init__(text)
        self._session = session
        self._before = [v.to_dict() for v in session.workspace.views]
        self._after = [v.to_dict() for v in new_views]
        self.merge_key = merge_key

    def _apply(self, snapshot: list[dict[str, Any]]) -> None:
        self._session.workspace.views[:] = [MarketView.from_dict(v) for v in snapshot]
        self._session.notify({"views"})

    def redo(self) -> None:
        self._apply(self._after)

    def undo(self) -> None:
        self._apply(self._before)

    def id(self) -> int:
        return _VIEWS_ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, ViewsCommand) or other.merge_key != self.merge_key:
            return False
        self._after = other._after
        return True


class SettingsCommand(QUndoCommand):
    """Set workspace settings (``key -> value``; ``None`` removes a free-form key).

    The values are checked with :func:`core.workspace.check_settings` first (a
    ValidationError names the bad key); afterwards ``settings_changed`` is emitted.
    """

    _MISSING = object()

    def __init__(
        self,
        session: Session,
        changes: Mapping[str, Any],
        text: str,
        merge_key: str | None = None,
    ):
        super().__init__(text)
        self._session = session
        settings = session.workspace.settings
        try:
            check_settings({**settings, **{k: v for k, v in changes.items() if v is not None}})
        except WorkspaceError as exc:
            raise ValidationError(str(exc), field=exc.field) from None
        self._before = {k: settings.get(k, self._MISSING) for k in changes}
        self._after = dict(changes)
        self.merge_key = merge_key

    def _apply(self, values: Mapping[str, Any]) -> None:
        settings = self._session.workspace.settings
        for key, value in values.items():
            if value is self._MISSING or value is None:
                settings.pop(key, None)
            else:
                settings[key] = value
        self._session.notify({"settings"})

    def redo(self) -> None:
        self._apply(self._after)

    def undo(self) -> None:
        self._apply(self._before)

    def id(self) -> int:
        return _SETTINGS_ID if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SettingsCommand) or other.merge_key != self.merge_key:
            return False
        self._after.update(other._after)
        return True
