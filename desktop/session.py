"""The open workspace: one QObject that owns it and says when it changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QUndoStack

from core.market_data import DataQualityReport
from core.workspace import Workspace


@dataclass
class MarketData:
    """Price history loaded this session (not saved in the workspace file).

    Attributes
    ----------
    prices : pd.DataFrame, shape (dates, symbols)
        Adjusted closes as read by :func:`core.market_data.read_prices`.
    sources : list of str
        The files the prices came from.
    report : DataQualityReport
        What :func:`core.market_data.check_data_quality` found in ``prices``.
    """

    prices: pd.DataFrame
    sources: list[str] = field(default_factory=list)
    report: DataQualityReport = field(default_factory=DataQualityReport)

    @cached_property
    def column_span(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per price column: number of prices, row of the first and of the last one.

        Computed once (the loader computes it on its worker thread, so that the Market data
        window's coverage table does not scan 20 years x 500 symbols on the GUI thread).
        The row indexes of an empty column are 0 and ``len(prices) - 1``; check the count.
        """
        valid = self.prices.notna().to_numpy()
        counts = valid.sum(axis=0)
        first = valid.argmax(axis=0)
        last = len(valid) - 1 - valid[::-1].argmax(axis=0)
        return counts, first, last


class Session(QObject):
    """Owns the open :class:`~core.workspace.Workspace`, its file path and undo stack.

    Tabs read ``session.workspace`` and change it through undo commands
    (:mod:`desktop.undo_commands`); they listen to the ``*_changed`` signals instead of
    to each other. ``market_data`` is the price history loaded from CSV files, kept
    across New/Open because it is market data, not part of a portfolio.
    """

    workspace_replaced = Signal()
    portfolio_changed = Signal()
    fund_map_changed = Signal()
    constraints_changed = Signal()
    views_changed = Signal()
    settings_changed = Signal()
    name_changed = Signal()
    market_data_changed = Signal()
    dirty_changed = Signal(bool)
    path_changed = Signal(object)

    def __init__(self, workspace: Workspace | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        # A bound slot, not a lambda: Qt drops it when the session is destroyed, before
        # the stack (a child) is cleared and emits cleanChanged one last time.
        self.undo_stack.cleanChanged.connect(self._clean_changed)
        self._workspace = workspace if workspace is not None else Workspace.sample()
        self._path: Path | None = None
        self.market_data: MarketData | None = None

    @Slot(bool)
    def _clean_changed(self, clean: bool) -> None:
        self.dirty_changed.emit(not clean)

    @property
    def workspace(self) -> Workspace:
        return self._workspace

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def is_dirty(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def display_name(self) -> str:
        """The workspace name, plus the file name when it differs (for titles)."""
        name = self._workspace.name or "Untitled"
        if self._path is not None and self._path.name not in name:
            return f"{name} ({self._path.name})"
        return name

    def replace(self, workspace: Workspace, path: Path | None, *, dirty: bool = False) -> None:
        """Swap in another workspace (New/Open/recover); the undo history starts afresh.

        ``dirty=True`` marks it unsaved with no undo step to return to (a recovered
        autosave: its changes were never written to ``path``).
        """
        # Clear first: clearing a dirty stack announces "clean", and listeners (autosave)
        # must still see the OLD workspace when they react to it.
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self._workspace = workspace
        self._path = path
        if dirty:
            # No command restores the clean state: only a save does.
            self.undo_stack.resetClean()
        self.path_changed.emit(path)
        self.workspace_replaced.emit()
        self.dirty_changed.emit(self.is_dirty)

    def open(self, path: str | Path) -> None:
        """Load ``path``; on any error the current workspace stays untouched."""
        workspace = Workspace.load(path)
        self.replace(workspace, Path(path))

    def save(self, path: str | Path | None = None) -> Path:
        """Write the workspace atomically to ``path`` (default: its own file)."""
        target = Path(path) if path is not None else self._path
        if target is None:
            raise ValueError("no file name yet: use Save As")
        self._workspace.save(target)
        self._path = target
        self.undo_stack.setClean()
        self.path_changed.emit(target)
        return target

    def notify(self, parts: set[str]) -> None:
        """Emit the change signals of ``parts`` (names of workspace attributes).

        Called by the undo commands after they change the workspace. Prices change the
        valuation, so they are announced as a portfolio change.
        """
        if "fund_map" in parts:
            self.fund_map_changed.emit()
        if parts & {"portfolio", "prices"}:
            self.portfolio_changed.emit()
        if "constraints" in parts:
            self.constraints_changed.emit()
        if "views" in parts:
            self.views_changed.emit()
        if "settings" in parts:
            self.settings_changed.emit()
        if "name" in parts:
            self.name_changed.emit()

    def set_market_data(self, market_data: MarketData | None) -> None:
        """Use a newly loaded price history (None forgets it)."""
        self.market_data = market_data
        self.market_data_changed.emit()
