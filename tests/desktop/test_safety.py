"""Safety: unsaved-changes prompt, autosave and crash recovery, malformed files, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from core.workspace import Workspace, find_autosave, write_autosave
from desktop import dialogs
from desktop.autosave import AUTOSAVE_INTERVAL_MS
from desktop.main_window import MainWindow
from desktop.models.holdings_model import SHARES

ROOT = Path(__file__).resolve().parents[2]
Button = QMessageBox.StandardButton


@pytest.fixture
def window(add_window) -> MainWindow:
    return add_window(MainWindow(offer_recovery=False))


def _edit(window: MainWindow, symbol: str = "RSSB", shares: str = "1999") -> None:
    model = window.holdings_tab.model
    assert model.setData(model.index(model.row_of(symbol), SHARES), shares)


def _answer(monkeypatch, *buttons: QMessageBox.StandardButton) -> list[str]:
    """Answer QMessageBox.question with ``buttons`` in turn; returns the texts asked."""
    asked: list[str] = []
    queue = list(buttons)

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        return queue.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def _errors(monkeypatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(
        "desktop.main_window.show_error",
        lambda parent, title, message, details="": shown.append(f"{message}\n{details}"),
    )
    return shown


# ------------------------------------------------------------ unsaved changes
def test_close_without_changes_does_not_ask(window):
    window.show()
    assert window.close()


def test_close_cancel_keeps_the_window_and_the_changes(qtbot, window, monkeypatch):
    window.show()
    _edit(window)
    asked = _answer(monkeypatch, Button.Cancel)
    assert not window.close()
    assert window.isVisible()
    assert "unsaved changes" in asked[0]
    assert window.session.is_dirty
    assert window.session.workspace.portfolio["RSSB"].shares == 1999


def test_close_discard_closes_and_drops_the_autosave(qtbot, window, monkeypatch, autosave_dir):
    window.show()
    _edit(window)
    written = window.autosave.autosave_now()
    assert written is not None and written.is_file()
    _answer(monkeypatch, Button.Discard)
    assert window.close()
    assert not written.exists()


def test_close_save_writes_the_file_first(qtbot, window, monkeypatch, tmp_path):
    window.show()
    _edit(window)
    target = tmp_path / "kept.stackopt.json"
    _answer(monkeypatch, Button.Save)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    assert window.close()
    assert Workspace.load(target).portfolio["RSSB"].shares == 1999


def test_close_save_then_cancelled_file_dialog_keeps_the_window(qtbot, window, monkeypatch):
    window.show()
    _edit(window)
    _answer(monkeypatch, Button.Save)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: ("", ""))
    assert not window.close()
    assert window.session.is_dirty


def test_open_asks_before_replacing_unsaved_work(window, monkeypatch, tmp_path):
    _edit(window)
    _answer(monkeypatch, Button.Cancel)
    assert not window.open_file()  # the file dialog is never reached
    assert window.session.workspace.portfolio["RSSB"].shares == 1999


# ------------------------------------------------------------------ autosave
def test_autosave_writes_only_unsaved_changes_and_is_removed_on_save(
    window, autosave_dir, tmp_path
):
    manager = window.autosave
    assert manager.timer.isActive() and manager.timer.interval() == AUTOSAVE_INTERVAL_MS == 60_000
    assert manager.folder == autosave_dir
    assert manager.autosave_now() is None  # nothing to save
    _edit(window)
    path = manager.autosave_now()
    assert path is not None and path.parent == autosave_dir
    assert Workspace.load(path) == window.session.workspace
    assert manager.autosave_now() is None  # no change since the last autosave
    _edit(window, "GLD", "33")
    assert manager.autosave_now() == path
    assert Workspace.load(path).portfolio["GLD"].shares == 33
    window.session.save(tmp_path / "saved.json")
    assert not path.exists()
    assert find_autosave(autosave_dir) == []


def test_autosave_runs_from_its_timer(qtbot, window, autosave_dir):
    window.autosave.timer.setInterval(10)
    _edit(window)
    with qtbot.waitSignal(window.autosave.autosaved, timeout=5000) as blocker:
        pass
    assert blocker.args[0].is_file()


def test_autosave_failure_is_reported_not_raised(qtbot, window, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    window.autosave.folder = blocked
    _edit(window)
    with qtbot.waitSignal(window.autosave.failed) as blocker:
        assert window.autosave.autosave_now() is None
    assert "Autosave failed" in blocker.args[0]


# -------------------------------------------------------------- crash recovery
def _crashed_session(autosave_dir: Path, tmp_path: Path) -> tuple[Workspace, Path, Path]:
    """What a crash leaves behind: a saved file and a newer autosave of edits to it."""
    source = tmp_path / "portfolio.stackopt.json"
    ws = Workspace.sample()
    ws.save(source)
    edited = Workspace.load(source)
    edited.portfolio.set_shares("NTSX", 777)
    os.utime(source, (1_000_000_000, 1_000_000_000))  # saved long before the crash
    recovery = write_autosave(edited, autosave_dir, source=source)
    return edited, source, recovery


def test_crash_recovery_is_offered_and_restores_the_work(
    add_window, monkeypatch, autosave_dir, tmp_path
):
    edited, source, recovery = _crashed_session(autosave_dir, tmp_path)
    window = add_window(MainWindow(offer_recovery=False))
    asked = _answer(monkeypatch, Button.Yes)
    assert window.offer_recovery()
    assert "did not close normally" in asked[0] and str(source.resolve()) in asked[0]
    session = window.session
    assert session.workspace == edited
    assert session.path == source.resolve()
    assert session.is_dirty  # recovered work is not in the file yet
    assert "unsaved" in window.status_dirty.text()
    assert recovery.exists()  # kept until the work is saved
    assert window.save_file()
    assert Workspace.load(source).portfolio["NTSX"].shares == 777
    assert not recovery.exists()


def test_crash_recovery_offered_at_start_up(qtbot, add_window, monkeypatch, autosave_dir, tmp_path):
    edited, _source, _recovery = _crashed_session(autosave_dir, tmp_path)
    asked = _answer(monkeypatch, Button.Yes)
    window = add_window(MainWindow())
    qtbot.waitUntil(lambda: bool(asked))
    assert window.session.workspace == edited


def test_declined_recovery_deletes_the_copy(add_window, monkeypatch, autosave_dir, tmp_path):
    _edited, _source, recovery = _crashed_session(autosave_dir, tmp_path)
    window = add_window(MainWindow(offer_recovery=False))
    _answer(monkeypatch, Button.No)
    assert not window.offer_recovery()
    assert not recovery.exists()
    assert window.session.workspace == Workspace.sample()


def test_stale_autosave_is_removed_without_asking(add_window, autosave_dir, tmp_path):
    _edited, source, recovery = _crashed_session(autosave_dir, tmp_path)
    later = recovery.stat().st_mtime + 10
    os.utime(source, (later, later))  # the file was saved after the autosave
    window = add_window(MainWindow(offer_recovery=False))
    assert not window.offer_recovery()  # QMessageBox.question is not mocked: never asked
    assert not recovery.exists()


def test_unreadable_autosave_is_offered_for_deletion(add_window, monkeypatch, autosave_dir):
    autosave_dir.mkdir(parents=True)
    broken = autosave_dir / "broken-0123456789.autosave.json"
    broken.write_text("{ not json", encoding="utf-8")
    window = add_window(MainWindow(offer_recovery=False))
    asked = _answer(monkeypatch, Button.Yes)
    assert not window.offer_recovery()
    assert "cannot be read" in asked[0]
    assert not broken.exists()


# ------------------------------------------------------------ malformed files
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{ not json at all", "invalid JSON at line 1"),
        (json.dumps({"format": "stackopt-fund-map", "version": 1}), "fund map"),
        ("BROKEN_FIELD", "portfolio.holdings[0].shares"),
        ("\x00\x01binary", "not a StackOpt workspace"),
    ],
)
def test_malformed_file_says_what_is_wrong_and_keeps_the_workspace(
    window, monkeypatch, tmp_path, content, expected
):
    if content == "BROKEN_FIELD":
        doc = Workspace.sample().to_dict()
        doc["portfolio"]["holdings"][0]["shares"] = "lots"
        content = json.dumps(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    _edit(window)  # unsaved work that must survive
    session = window.session
    workspace, before, stack = session.workspace, session.workspace.to_dict(), session.undo_stack
    shown = _errors(monkeypatch)
    assert not window.open_path(bad)
    assert expected in shown[0]
    assert "current workspace is unchanged" in shown[0]
    assert session.workspace is workspace and workspace.to_dict() == before
    assert session.path is None and stack.count() == 1 and session.is_dirty
    assert str(bad.resolve()) not in window.recent_files()


def test_malformed_file_on_the_command_line_opens_the_sample_and_says_why(
    qtbot, add_window, monkeypatch, tmp_path
):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2", encoding="utf-8")
    shown = _errors(monkeypatch)
    window = add_window(MainWindow(str(bad), offer_recovery=False))
    qtbot.waitUntil(lambda: bool(shown))
    assert "invalid JSON" in shown[0] and "sample workspace instead" in shown[0]
    assert window.session.workspace == Workspace.sample()
    assert window.session.path is None


def test_failed_save_keeps_the_work_and_says_why(window, monkeypatch, tmp_path):
    _edit(window)
    shown = _errors(monkeypatch)
    missing = tmp_path / "no" / "such" / "folder" / "x.json"
    assert not window._save(missing)
    assert "could not save" in shown[0] and "Nothing was written" in shown[0]
    assert window.session.is_dirty and window.session.path is None


# ----------------------------------------------------------------- exceptions
def _capture_boxes(monkeypatch, click: str | None = None) -> list[QMessageBox]:
    boxes: list[QMessageBox] = []

    def exec_(box):
        boxes.append(box)
        if click:
            next(b for b in box.buttons() if b.text() == click).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", exec_)
    return boxes


def test_unexpected_exception_shows_copyable_details(qtbot, monkeypatch):
    boxes = _capture_boxes(monkeypatch, click="Copy details")
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    dialogs.install_exception_hooks()
    try:
        raise ZeroDivisionError("boom in a slot")
    except ZeroDivisionError:
        sys.excepthook(*sys.exc_info())
    assert len(boxes) == 1
    box = boxes[0]
    assert "ZeroDivisionError: boom in a slot" in box.text()
    assert "Traceback" in box.detailedText() and "test_safety.py" in box.detailedText()
    assert QApplication.clipboard().text() == box.detailedText()


def test_exception_in_a_worker_thread_reaches_a_dialog(qtbot, monkeypatch):
    boxes = _capture_boxes(monkeypatch)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    dialogs.install_exception_hooks()

    def work():
        raise RuntimeError("worker failed")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: bool(boxes))
    assert "worker failed" in boxes[0].text()


def test_error_inside_the_error_dialog_does_not_recurse(qtbot, monkeypatch):
    calls = []

    def exec_(box):
        calls.append(box)
        # a second error while the first dialog is open is not shown on top of it
        assert dialogs.show_exception(ValueError, ValueError("again"), None) is None
        return 0

    monkeypatch.setattr(QMessageBox, "exec", exec_)
    assert dialogs.show_exception(ValueError, ValueError("first"), None) is not None
    assert len(calls) == 1


# ---------------------------------------------------- PySide6 reference counts
def test_many_qt_calls_do_not_exhaust_none_or_true():
    """PySide6 6.12.0 on CPython 3.11 drops a reference to None per void call and to True
    per signal emit, killing the app within minutes; pyproject.toml excludes that release.
    This guards the pin: a long session's worth of calls must leave the process alive."""
    code = (
        "import desktop\n"
        "from PySide6.QtCore import QObject, Signal\n"
        "from PySide6.QtWidgets import QApplication, QLabel\n"
        "app = QApplication([])\n"
        "label = QLabel()\n"
        "class O(QObject):\n"
        "    s = Signal()\n"
        "o = O()\n"
        "for _ in range(30000):\n"
        "    label.setText('x')\n"
        "    o.s.emit()\n"
        "print('alive')\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "alive" in proc.stdout
