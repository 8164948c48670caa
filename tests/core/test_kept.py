"""core.kept.Kept: the least recently used entry goes first; threads share it safely."""

from __future__ import annotations

import threading

from core.kept import Kept


def test_least_recently_used_entry_is_dropped_beyond_the_size():
    kept: Kept[int] = Kept(2)
    kept.put("a", 1)
    kept.put("b", 2)
    assert kept.get("a") == 1  # "a" is now the most recently used
    kept.put("c", 3)
    assert kept.get("b") is None and kept.get("a") == 1 and kept.get("c") == 3
    kept.put("a", 10)  # a new value for a kept key replaces it, nothing is dropped
    assert len(kept) == 2 and kept.get("a") == 10 and kept.get("c") == 3


def test_threads_putting_and_getting_never_exceed_the_size_or_mix_values():
    kept: Kept[tuple[int, int]] = Kept(5)
    errors: list[str] = []

    def work(t: int) -> None:
        for i in range(2000):
            kept.put(i % 11, (i % 11, t))
            got = kept.get((i + 3) % 11)
            if got is not None and got[0] != (i + 3) % 11:
                errors.append(f"key {(i + 3) % 11} gave {got}")
            if len(kept) > 5:
                errors.append(f"{len(kept)} entries")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:3]
    assert len(kept) == 5
