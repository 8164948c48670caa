"""Launch StackOpt: ``python -m desktop [workspace.json]`` or the ``stackopt`` command."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import threading
from collections.abc import Sequence

# numpy asks the kernel for transparent huge pages for every array of 4 MB or more; where
# the kernel compacts memory to find them, that costs more than the math: 11 ms for each
# new 1,000 x 1,000 matrix on the 2-core test machine against 0.2 ms without. Read once,
# when numpy loads (after this line).
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="stackopt", description="Leverage-aware portfolio optimization"
    )
    parser.add_argument("workspace", nargs="?", help="workspace file to open (default: sample)")
    parser.add_argument(
        "--quit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="close the window after this many seconds (smoke tests, start-up timing)",
    )
    parser.add_argument(
        "--no-recovery",
        action="store_true",
        help="do not offer autosaved work from a session that did not close normally",
    )
    # Qt's own options (-platform ...) pass through untouched
    args, _ = parser.parse_known_args(list(argv))
    return args


#: Compiles the solver kernels into numba's on-disk cache (or finds them there).
_WARM_UP = "from core.optimization.cla import warm_up; warm_up()"


def _warm_up_solvers() -> None:
    """Compile the solver kernels off the GUI thread, then load them.

    The compiling runs in a child process: numba's compiler holds the GIL for up to a
    quarter of a second at a time, which in this process would stall the window for as
    long. The child leaves the machine code in numba's on-disk cache (and finds it there
    on later launches, in about a second); this process then loads it from there. A
    failure costs nothing but speed: the first optimization then compiles the kernels
    itself, or the solvers fall back to their Python paths.
    """
    try:
        subprocess.run(
            [sys.executable, "-c", _WARM_UP], check=False, timeout=900,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )  # fmt: skip
        from core.optimization.cla import warm_up

        warm_up()
    except Exception:  # noqa: BLE001 - best effort; the real run reports any problem
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Create the application and the main window; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)

    # The non-Qt libraries first: once PySide6 is loaded it reads the source of every
    # module imported after it (to look for its feature switches), 0.1 s for these.
    importlib.import_module("core.backtest")  # numpy, pandas, scipy.linalg, the engine
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.dialogs import install_exception_hooks
    from desktop.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setApplicationName("StackOpt")
    app.setOrganizationName("StackOpt")
    # Unexpected errors anywhere (slots, worker threads) become a dialog, not a dead app.
    install_exception_hooks()

    window = MainWindow(args.workspace, offer_recovery=not args.no_recovery)
    window.show()
    if args.quit_after is None:
        # after the first paint, so that start-up does not share the CPU with the compiler
        # (not in smoke tests and start-up timing, which close the window at once)
        QTimer.singleShot(
            500,
            lambda: threading.Thread(
                target=_warm_up_solvers, name="stackopt-warm-up", daemon=True
            ).start(),
        )
    else:
        QTimer.singleShot(int(args.quit_after * 1000), window.close)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
