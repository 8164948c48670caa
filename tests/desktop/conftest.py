"""Desktop test isolation: settings and data folders in tmp_path, no modal dialog ever blocks.

- QSettings (geometry, last folder, recent files) go to an INI file under ``tmp_path``.
- platformdirs folders (the autosave folder) go under ``tmp_path`` through the XDG
  variables, and :func:`desktop.autosave.autosave_folder` is pointed there too (macOS and
  Windows do not read XDG variables).
- Every modal entry point (QMessageBox, QFileDialog, QInputDialog, QDialog.exec) FAILS the
  test unless the test replaced it with its own answer: a forgotten mock must not hang CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDialog, QFileDialog, QInputDialog, QMessageBox

import desktop  # noqa: F401  (applies the PySide6 reference-count guard before any Qt use)


def _unexpected(name: str):
    def fail(*args, **kwargs):
        pytest.fail(f"unexpected modal dialog: {name} (mock it in the test)")

    return fail


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """QSettings and platformdirs folders inside ``tmp_path``; returns the config folder."""
    config = tmp_path / "config"
    data = tmp_path / "data"
    config.mkdir()
    data.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(config))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.SystemScope, str(config))

    import desktop.autosave

    monkeypatch.setattr(desktop.autosave, "autosave_folder", lambda: data / "autosave")
    return config


@pytest.fixture(autouse=True)
def no_modal_dialogs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("question", "warning", "critical", "information", "about", "exec"):
        monkeypatch.setattr(QMessageBox, name, _unexpected(f"QMessageBox.{name}"))
    monkeypatch.setattr(QDialog, "exec", _unexpected("QDialog.exec"))
    for name in ("getOpenFileName", "getOpenFileNames", "getSaveFileName"):
        monkeypatch.setattr(QFileDialog, name, _unexpected(f"QFileDialog.{name}"))
    monkeypatch.setattr(QInputDialog, "getText", _unexpected("QInputDialog.getText"))


@pytest.fixture
def autosave_dir(tmp_path: Path) -> Path:
    """The isolated autosave folder (created lazily by the app)."""
    return tmp_path / "data" / "autosave"


def _forget_changes(window) -> None:
    # Teardown closes every widget: a window with unsaved changes would ask first.
    window.session.undo_stack.setClean()


@pytest.fixture
def add_window(qtbot):
    """Register a MainWindow with qtbot so that teardown closes it without a prompt."""

    def add(window):
        qtbot.addWidget(window, before_close_func=_forget_changes)
        return window

    return add
