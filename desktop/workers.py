"""Run core work off the GUI thread: ONE solver thread, cancel between items.

cvxpy is not thread-safe, so every optimization and backtest runs on one
``QThreadPool`` with ``maxThreadCount(1)``. A worker wraps a core generator (each item
is a progress tick, a partial result and a place to stop) or a plain function; it talks
to the GUI only through signals, never touches a widget, and is stopped by setting a
``threading.Event`` that the generator is checked against between items.

While a :class:`SolverThread` exists, BLAS (OpenBLAS under numpy and scipy) runs on one
thread. The app's matrices are small (hundreds of funds), and a multi-threaded OpenBLAS
makes every call wait for its helper threads to get a core: measured on a busy 2-core
machine, a 200x200 Cholesky took 110 ms with 2 BLAS threads and 0.1 ms with one, a
200-fund max-Sharpe solve 780 ms against 26 ms, and the GUI thread's longest pause during
a frontier fell from 186 ms to 25 ms.

The first solver thread also freezes the heap built at startup (:func:`freeze_startup_heap`):
a full garbage collection stops every thread, and scanning the ~140,000 objects of the
started app took 64-89 ms, long enough to make the window stutter during a run.

It also shortens the interpreter's GIL switch interval (:func:`share_gil_with_gui_thread`):
every Qt call into a Python slot, model or paint method must take the GIL, and while a
worker computes, each such call waited up to the default 5 ms for it. Painting a freshly
shown dialog (dozens of such calls) while 20 years of prices for 500 symbols were parsed
blocked the window for 0.31-0.35 s; at 1 ms the longest block was 50-60 ms, and the
worker's time did not change measurably.
"""

from __future__ import annotations

import gc
import inspect
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

_blas_controller: Any = None


def blas_controller() -> Any:
    """threadpoolctl's controller of the BLAS libraries loaded now (None without it).

    Made once (scanning the loaded libraries takes milliseconds). numpy's and scipy's
    OpenBLAS are both loaded by the time the app builds its solver thread.
    """
    global _blas_controller
    if _blas_controller is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas_controller = ThreadpoolController()
        except Exception:  # noqa: BLE001 - optional: only responsiveness suffers without it
            _blas_controller = False
    return _blas_controller or None


_blas_limit: Any = None
_blas_users = 0


def hold_single_threaded_blas() -> None:
    """Limit BLAS to one thread until every holder has called the release (counted)."""
    global _blas_limit, _blas_users
    _blas_users += 1
    if _blas_users == 1:
        controller = blas_controller()
        _blas_limit = controller.limit(limits=1, user_api="blas") if controller else None


def release_single_threaded_blas() -> None:
    global _blas_limit, _blas_users
    if _blas_users == 0:
        return
    _blas_users -= 1
    if _blas_users == 0 and _blas_limit is not None:
        _blas_limit.restore_original_limits()
        _blas_limit = None


_heap_frozen = False


def freeze_startup_heap() -> bool:
    """Collect once, then move every object alive now out of the collector's way.

    Modules, classes, Qt wrappers and the open workspace live as long as the app; after
    ``gc.freeze()`` full collections no longer scan them (:func:`gc.freeze`). Done once
    per process; returns True the first time.
    """
    global _heap_frozen
    if _heap_frozen:
        return False
    gc.collect()
    gc.freeze()
    _heap_frozen = True
    return True


GUI_SWITCH_INTERVAL_S = 0.001


def share_gil_with_gui_thread() -> None:
    """Let a waiting thread (the GUI's) take the GIL after 1 ms instead of 5 ms.

    A process-wide setting (:func:`sys.setswitchinterval`); only ever shortened here.
    """
    if sys.getswitchinterval() > GUI_SWITCH_INTERVAL_S:
        sys.setswitchinterval(GUI_SWITCH_INTERVAL_S)


def _accepts_should_stop(fn: Callable[..., Any]) -> bool:
    try:
        return "should_stop" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


class WorkerSignals(QObject):
    """Signals of one job, delivered to GUI-thread slots through queued connections."""

    progress = Signal(int, int)
    partial = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    cancelled = Signal()


class IterWorker(QRunnable):
    """Run ``make_iter()`` on the solver thread and emit each item as it comes.

    Parameters
    ----------
    make_iter : callable returning an iterable
        Called on the worker thread (problems are built there, not on the GUI thread).
        If it has a ``should_stop`` parameter it receives a callable returning True once
        cancel was requested, for work that can stop inside an item.
    total : int
        Number of items expected, for the progress bar (0 when unknown).

    Notes
    -----
    Exactly one of ``finished`` (with the list of items), ``failed`` (with the exception)
    or ``cancelled`` is emitted, after the last ``partial``. ``done`` is set when the job
    has left the thread.
    """

    def __init__(self, make_iter: Callable[..., Iterable[Any]], total: int = 0):
        super().__init__()
        self.setAutoDelete(False)  # the owner keeps a reference while signals arrive
        self.signals = WorkerSignals()
        self._make_iter = make_iter
        self._total = total
        self._stop = threading.Event()
        self.done = threading.Event()
        #: Items produced after cancel was requested (the item being computed then).
        self.items_after_cancel = 0

    @property
    def total(self) -> int:
        return self._total

    def cancel(self) -> None:
        self._stop.set()

    @property
    def cancel_requested(self) -> bool:
        return self._stop.is_set()

    def _iterable(self) -> Iterable[Any]:
        if _accepts_should_stop(self._make_iter):
            return self._make_iter(should_stop=self._stop.is_set)
        return self._make_iter()

    def run(self) -> None:
        outcome, payload = self._produce()
        # Done before the last signal: a slot that reacts to it sees the job as over.
        self.done.set()
        if outcome == "finished":
            self.signals.finished.emit(payload)
        elif outcome == "failed":
            self.signals.failed.emit(payload)
        else:
            self.signals.cancelled.emit()

    def _produce(self) -> tuple[str, Any]:
        """Run the items, emitting partial and progress; returns (outcome, payload)."""
        items: list[Any] = []
        try:
            if self._stop.is_set():  # cancelled while queued: do nothing at all
                return "cancelled", None
            iterator = iter(self._iterable())
            for i, item in enumerate(iterator, start=1):
                if self._stop.is_set():
                    self.items_after_cancel += 1
                    close = getattr(iterator, "close", None)
                    if close is not None:
                        close()
                    return "cancelled", None
                items.append(item)
                self.signals.partial.emit(item)
                self.signals.progress.emit(i, self._total)
            if self._stop.is_set():
                return "cancelled", None
        except Exception as exc:  # noqa: BLE001 - forwarded to the GUI, shown there
            return "failed", exc
        return "finished", items


class FunctionWorker(IterWorker):
    """Run one function on the solver thread; ``finished`` carries its return value."""

    def __init__(self, fn: Callable[[], Any]):
        super().__init__(lambda: iter([fn()]), total=1)

    def run(self) -> None:  # emit the single value, not a list
        if self._stop.is_set():
            self.done.set()
            self.signals.cancelled.emit()
            return
        try:
            value = next(iter(self._make_iter()))
        except Exception as exc:  # noqa: BLE001
            self.done.set()
            self.signals.failed.emit(exc)
            return
        self.done.set()
        if self._stop.is_set():
            self.signals.cancelled.emit()
        else:
            self.signals.finished.emit(value)


class SolverThread(QObject):
    """The application's single solver thread. Start jobs with :meth:`start`."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._jobs: list[IterWorker] = []
        hold_single_threaded_blas()
        self._holds_blas = True
        freeze_startup_heap()  # the app is built by the time it makes its solver thread
        share_gil_with_gui_thread()

    def start(self, worker: IterWorker) -> IterWorker:
        self._jobs = [j for j in self._jobs if not j.done.is_set()]
        self._jobs.append(worker)
        self.pool.start(worker)
        return worker

    @property
    def busy(self) -> bool:
        """True while a job is queued or running."""
        return any(not j.done.is_set() for j in self._jobs)

    def cancel_all(self) -> None:
        for job in self._jobs:
            job.cancel()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel everything and wait (on close). Returns False on timeout."""
        self.cancel_all()
        done = self.pool.waitForDone(timeout_ms)
        if done and self._holds_blas:
            self._holds_blas = False
            release_single_threaded_blas()
        return done
