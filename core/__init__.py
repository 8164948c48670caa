"""StackOpt core: the headless engine (no Qt).

Everything here takes data and returns data; long work is a generator or takes an
``on_progress`` callable. The desktop layer imports from here, never the reverse.
"""

from __future__ import annotations

__version__ = "0.1.0"
