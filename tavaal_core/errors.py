"""Errors a user can cause, each carrying a message fit to show as-is (UI: st.error; CLI: one line)."""
from __future__ import annotations


class TavaalError(Exception):
    """Base class for every error whose message is meant for the user, not a traceback."""


class ConfigError(TavaalError, ValueError):
    """A configuration value is out of range; ``field`` names it and the message gives the allowed values."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class DatasetUnavailable(TavaalError, FileNotFoundError):
    """A dataset's files are absent (and could not be downloaded); the message says where to put what."""
