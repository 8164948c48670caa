"""What the compiled kernels share (:mod:`~core.optimization.cla_kernel`,
:mod:`~core.optimization.qp_kernel`): numba's options and the shape of their inputs.

numba compiles a function once per combination of argument types, and an array's type
includes whether it is writable and C-contiguous. The engine hands over read-only arrays
(its prepared covariance, the constraint forms) and tests hand over writable ones, so
without care the same kernel would be compiled once for each (several seconds each).
Every array a kernel only reads therefore goes in as a read-only, C-contiguous view
(:func:`readonly`): one compiled version serves every caller.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: numba.njit options of every kernel: machine code kept in numba's on-disk cache, the
#: GIL released while it runs, numpy's float semantics (x / 0 is inf, not an exception).
JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}


def readonly(a: Any, dtype: Any = np.float64) -> np.ndarray:
    """``a`` as a read-only C-contiguous array of ``dtype`` (a view when it already is
    one; the caller's array itself is never made read-only)."""
    out = np.ascontiguousarray(a, dtype=dtype).view()
    out.flags.writeable = False
    return out
