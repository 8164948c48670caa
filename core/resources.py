"""Find the built-in data shipped in ``resources/`` (works installed and from a checkout)."""

from __future__ import annotations

from importlib import resources as _ir
from pathlib import Path


def resource_path(name: str) -> Path:
    """Filesystem path of a built-in resource file."""
    ref = _ir.files("resources").joinpath(name)
    return Path(str(ref))


def resource_text(name: str) -> str:
    return _ir.files("resources").joinpath(name).read_text(encoding="utf-8")
