"""The last few answers of a costly computation, by key, shared by threads.

Solver threads and the GUI thread re-solve on the same covariance, constraints and funds
again and again (a frontier click, another objective); the engine keeps what it derived
from them (a prepared covariance, a PSD verdict, constraint matrices, result labels) in
one of these, which drops the least recently used entry beyond its size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Kept(Generic[V]):
    """A least-recently-used map of at most ``size`` entries, safe across threads.

    A kept value is shared by every caller that gets it: keep only what nobody writes
    into (read-only arrays, immutable objects), or hand out copies.
    """

    def __init__(self, size: int):
        self._size = size
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """The value kept for ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Keep ``value`` for ``key``, dropping the least recently used beyond the size."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
