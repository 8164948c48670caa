"""Run core work off the GUI thread: ONE solver thread, cancel between items.

cvxpy is not thread-safe, so every optimization and backtest runs on one
``QThreadPool`` with ``maxThreadCount(1)``. A worker wraps a core generator (each item
is a progress tick, a partial result and a place to stop) or a plain function; it talks
to the GUI only through signals, never touches a widget, and is stopped by setting a
``threading.Event`` that the generator is checked against between items.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


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
        It may accept a ``should_stop`` keyword for work that can stop inside an item.
    total : int
        Number of items expected, for the progress bar (0 when unknown).
    """

    def __init__(self, make_iter: Callable[..., Iterable[Any]], total: int = 0):
        super().__init__()
        self.setAutoDelete(False)  # the owner keeps a reference while signals arrive
        self.signals = WorkerSignals()
        self._make_iter = make_iter
        self._total = total
        self._stop = threading.Event()
        self.done = threading.Event()

    def cancel(self) -> None:
        self._stop.set()

    @property
    def cancel_requested(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        items: list[Any] = []
        try:
            iterator = iter(self._make_iter())
            for i, item in enumerate(iterator, start=1):
                if self._stop.is_set():
                    close = getattr(iterator, "close", None)
                    if close is not None:
                        close()
                    self.signals.cancelled.emit()
                    return
                items.append(item)
                self.signals.partial.emit(item)
                self.signals.progress.emit(i, self._total)
            if self._stop.is_set():
                self.signals.cancelled.emit()
                return
        except Exception as exc:  # noqa: BLE001 - forwarded to the GUI, shown there
            self.signals.failed.emit(exc)
            return
        finally:
            self.done.set()
        self.signals.finished.emit(items)


class FunctionWorker(IterWorker):
    """Run one function on the solver thread; ``finished`` carries its return value."""

    def __init__(self, fn: Callable[[], Any]):
        super().__init__(lambda: iter([fn()]), total=1)

    def run(self) -> None:  # emit the single value, not a list
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

    def start(self, worker: IterWorker) -> IterWorker:
        self._jobs = [j for j in self._jobs if not j.done.is_set()]
        self._jobs.append(worker)
        self.pool.start(worker)
        return worker

    def cancel_all(self) -> None:
        for job in self._jobs:
            job.cancel()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel everything and wait (on close). Returns False on timeout."""
        self.cancel_all()
        return self.pool.waitForDone(timeout_ms)
