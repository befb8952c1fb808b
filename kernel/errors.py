"""The root of every error motcua raises on purpose.

A user mistake (bad file, bad period, unreachable broker) is a ``UserError`` and is shown as one
sentence; a refused action carries a machine-readable ``reason`` that the dead-letter record keeps.
"""

from __future__ import annotations


class MotcuaError(Exception):
    """Base of all motcua errors."""


class UserError(MotcuaError):
    """A mistake in what the user asked for; shown as one sentence, never a traceback."""


class ConfigurationError(UserError):
    """A setting in the environment is missing or malformed."""


class RefusedActionError(MotcuaError):
    """An action that is not applied; ``reason`` is its stable machine-readable code."""

    reason: str = "refused"

    def __init__(self, message: str, *, reason: str | None = None, field: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.field = field

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.reason
