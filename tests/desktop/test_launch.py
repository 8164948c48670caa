"""The app starts on the sample workspace, shows its holdings, and exits cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    # Settings and the autosave folder of the child process stay inside tmp_path.
    return dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )


def _main_with_report(tmp_path: Path, delay_ms: int, report: str, args: list[str]) -> str:
    """Run the app's ``main(args)`` in a child process; ``report`` (the indented body of a
    function) runs from its event loop ``delay_ms`` after start. Returns the stdout."""
    code = (
        "import sys\n"
        "from PySide6.QtCore import QTimer\n"
        "from PySide6.QtWidgets import QApplication\n"
        "import desktop.__main__ as m\n"
        "app = QApplication(sys.argv[:1])\n"
        "def report():\n" + report + "\n"
        f"QTimer.singleShot({delay_ms}, report)\n"
        f"sys.exit(m.main({args!r}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_python_m_desktop_starts_and_exits_cleanly(tmp_path):
    env = _env(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "desktop", "--quit-after", "1.0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_main_window_shows_sample_holdings(qtbot):
    from desktop.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    model = window.holdings_model
    sample = Workspace.sample()
    symbols = [model.index(r, 0).data() for r in range(model.rowCount())]
    assert symbols[:-1] == sample.portfolio.symbols
    assert symbols[-1] == "CASH"
    total = sample.priced_portfolio().total_value
    assert f"${total:,.0f}" in window.status_value.text()
    weights = [model.index(r, 5).data(256) for r in range(model.rowCount())]
    assert sum(weights) == pytest.approx(1.0)


def test_window_opens_file_given_on_command_line(qtbot, tmp_path):
    from desktop.main_window import MainWindow

    ws = Workspace.sample()
    ws.name = "Opened from the command line"
    path = tmp_path / "mine.json"
    ws.save(path)
    window = MainWindow(str(path))
    qtbot.addWidget(window)
    assert window.session.path == path
    assert "Opened from the command line" in window.status_name.text()


def test_python_m_desktop_opens_a_workspace_given_as_argument(tmp_path):
    ws = Workspace.sample()
    ws.name = "Launched with a file"
    path = tmp_path / "given.stackopt.json"
    ws.save(path)
    out = _main_with_report(
        tmp_path,
        500,
        "    w = [w for w in QApplication.topLevelWidgets() if w.objectName() == 'main'][0]\n"
        "    print('TITLE', w.windowTitle(), flush=True)",
        [str(path), "--quit-after", "1.0"],
    )
    assert "TITLE Launched with a file" in out


def test_window_is_shown_before_the_slow_libraries_are_imported(tmp_path):
    """cvxpy, scikit-learn, numba and scipy.optimize (0.3 to 2 s each to import) wait
    until a computation needs them: none is loaded when the window is on screen."""
    out = _main_with_report(
        tmp_path,
        0,
        "    slow = ('cvxpy', 'sklearn', 'numba', 'scipy.optimize', 'clarabel', 'highspy')\n"
        "    print('LOADED', [s for s in slow if s in sys.modules], flush=True)",
        ["--quit-after", "0.2", "--no-recovery"],
    )
    assert "LOADED []" in out, out


def test_solver_warm_up_compiles_in_a_child_process(monkeypatch) -> None:
    """The app's warm-up runs the kernels' compiler in another process (numba holds the
    GIL for long stretches while it compiles), then loads them here."""
    import desktop.__main__ as m

    ran: list[list[str]] = []
    real = subprocess.run

    def spy(cmd, *args, **kwargs):
        ran.append(list(cmd))
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(m.subprocess, "run", spy)
    m._warm_up_solvers()
    assert ran == [[sys.executable, "-c", m._WARM_UP]]
    import core.optimization.cla_kernel as cla_kernel

    assert cla_kernel.advance.signatures  # loaded in this process too
