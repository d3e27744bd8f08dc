"""The one exception type users see: a clear message naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class SynthmixError(Exception):
    """An error caused by input or environment, reported as one line without a traceback."""

    def __init__(self, message: str, path: str | Path | None = None, hint: str | None = None):
        self.path = None if path is None else str(path)
        self.hint = hint
        text = f"{self.path}: {message}" if self.path else message
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)


class DataError(SynthmixError):
    """A data file is missing, corrupt or inconsistent."""


class ConfigError(SynthmixError):
    """A configuration file or override is invalid."""
