"""Periodic recovery copies of the open workspace, and their clean-up.

Every :data:`AUTOSAVE_INTERVAL_MS` the manager writes the workspace with
:func:`core.workspace.write_autosave` if it has unsaved changes that are not in the last
autosave. The copy lives in :func:`autosave_folder` (``platformdirs.user_data_dir``), never
next to the user's file, and is deleted once the work is saved or deliberately discarded;
a copy still there at start-up means StackOpt did not close normally, and the window
offers it back (:func:`core.workspace.find_autosave`).
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from PySide6.QtCore import QObject, QTimer, Signal

from core.errors import StackOptError
from core.workspace import remove_autosave, write_autosave
from desktop.session import Session

#: How often unsaved work is copied to the recovery folder.
AUTOSAVE_INTERVAL_MS = 60_000


def autosave_folder() -> Path:
    """The recovery folder: ``<user data dir>/StackOpt/autosave`` (created on first write)."""
    return Path(platformdirs.user_data_dir("StackOpt", appauthor=False)) / "autosave"


class AutosaveManager(QObject):
    """Writes recovery copies of ``session``'s workspace while it has unsaved changes.

    Parameters
    ----------
    session : Session
    folder : Path, optional
        Recovery folder; default :func:`autosave_folder`.
    interval_ms : int
        Timer period.

    Signals
    -------
    autosaved(Path)
        A recovery copy was written.
    failed(str)
        Writing failed (disk full, folder not writable); the message says why. The app
        keeps running: the user can still save normally.
    """

    autosaved = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        session: Session,
        folder: Path | None = None,
        interval_ms: int = AUTOSAVE_INTERVAL_MS,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.session = session
        self.folder = Path(folder) if folder is not None else autosave_folder()
        self._pending = session.is_dirty
        self._written: set[Path] = set()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.autosave_now)
        self.timer.start()
        session.undo_stack.indexChanged.connect(self._changed)
        session.workspace_replaced.connect(self._replaced)
        session.dirty_changed.connect(self._dirty_changed)

    def _changed(self, _index: int) -> None:
        self._pending = True

    def _replaced(self) -> None:
        self._pending = self.session.is_dirty

    def _dirty_changed(self, dirty: bool) -> None:
        if dirty:
            self._pending = True
        else:
            # Saved (or a fresh workspace): the recovery copies are no longer needed.
            self.discard()

    def adopt(self, path: Path) -> None:
        """Treat ``path`` (a recovered autosave) as ours: deleted on save or discard."""
        self._written.add(Path(path))
        self._pending = True

    def autosave_now(self) -> Path | None:
        """Write a recovery copy if there are unsaved, not yet autosaved changes."""
        if not self.session.is_dirty or not self._pending:
            return None
        ws = self.session.workspace
        try:
            path = write_autosave(ws, self.folder, source=self.session.path)
        except (StackOptError, OSError) as exc:
            self.failed.emit(f"Autosave failed: {exc}")
            return None
        # A rename or Save As changes the file name: drop the copies under older names.
        for old in self._written - {path}:
            old.unlink(missing_ok=True)
        self._written = {path}
        self._pending = False
        self.autosaved.emit(path)
        return path

    def discard(self) -> None:
        """Delete this session's recovery copies (after a save or a deliberate discard)."""
        for path in self._written:
            path.unlink(missing_ok=True)
        self._written.clear()
        ws = self.session.workspace
        key = self.session.path if self.session.path is not None else ws.name
        try:
            remove_autosave(key, self.folder)
        except OSError:
            pass
        self._pending = self.session.is_dirty

    def stop(self) -> None:
        self.timer.stop()
