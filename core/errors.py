"""Typed errors whose messages say what is wrong and what to change."""

from __future__ import annotations

from collections.abc import Sequence


class StackOptError(Exception):
    """Base class of every error StackOpt raises on purpose."""


class StackOptWarning(UserWarning):
    """A problem that was repaired or can be lived with; the message says which."""


class ValidationError(StackOptError, ValueError):
    """An input object (fund map, constraint, holding) is malformed.

    ``field`` names the offending field (dotted path) so a form can highlight it.
    ``problems`` lists every problem found, not just the first.
    """

    def __init__(self, message: str, field: str | None = None, problems: Sequence[str] = ()):
        super().__init__(message)
        self.field = field
        self.problems = list(problems) or [message]


class DataError(StackOptError, ValueError):
    """A data file or series is unusable. Names the file, row and column where known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ):
        where = []
        if path is not None:
            where.append(f"file {path!s}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        full = f"{message} ({', '.join(where)})" if where else message
        super().__init__(full)
        self.path = path
        self.row = row
        self.column = column
        self.reason = message


class WorkspaceError(StackOptError, ValueError):
    """A workspace document cannot be read or written. ``field`` names the bad field."""

    def __init__(self, message: str, field: str | None = None, path: str | None = None):
        super().__init__(message)
        self.field = field
        self.path = path


class InfeasibleError(StackOptError):
    """No portfolio satisfies the constraints. ``conflicts`` names the constraints involved."""

    def __init__(self, message: str, conflicts: Sequence[str] = ()):
        super().__init__(message)
        self.conflicts = list(conflicts)


class SolverError(StackOptError):
    """Every solver tried failed; ``status`` is the last solver status seen."""

    def __init__(self, message: str, status: str | None = None, solver: str | None = None):
        super().__init__(message)
        self.status = status
        self.solver = solver
