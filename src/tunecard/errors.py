"""The project's own error types.

Every error a user can meet carries a stable code, says what was found, where (file and line, or the
config field) and how to fix it. Codes are grouped by layer: E1xx data, E2xx config, E3xx model, E4xx output,
E5xx the HTTP server (`tunecard serve`).
"""

from __future__ import annotations

from pathlib import Path


class TunecardError(Exception):
    """Base class: ``[CODE] where: what. Fix: how.``"""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.fix = fix
        super().__init__(str(self))

    @property
    def where(self) -> str:
        if self.path is None:
            return ""
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def __str__(self) -> str:
        where = f" {self.where}:" if self.where else ""
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"[{self.code}]{where} {self.message}{fix}"

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "path": self.path, "line": self.line, "fix": self.fix}


class DataError(TunecardError):
    """A data file cannot be read as asked, or its labels do not fit the other splits."""


class ConfigError(TunecardError):
    """A configuration value is missing, contradictory or out of range."""


class ModelError(TunecardError):
    """A model folder or hub id cannot be loaded (missing weights, pickle weights, offline hub)."""


class OutputError(TunecardError):
    """An output folder cannot be written without losing something the user has."""


class ServeError(TunecardError):
    """`tunecard serve` cannot start as asked (an option out of range, an address in use, packages missing)."""


class DistributedError(TunecardError):
    """A process of a multi-process run stopped answering the others (`ddp_timeout` passed)."""
