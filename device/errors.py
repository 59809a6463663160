"""Errors a user can act on. The CLI prints their message and exits non-zero, never a traceback."""
from __future__ import annotations

from pydantic import ValidationError


class StationError(Exception):
    """Base for problems with a clear fix; the message says what to do."""

    exit_code = 1


class ConfigError(StationError):
    exit_code = 2


class ModelError(StationError):
    """A model file is missing, truncated or not the file we expect."""


class SourceError(StationError):
    """A camera or clip cannot be opened or stopped delivering frames."""


def format_validation_errors(err: ValidationError, heading: str) -> str:
    """One line per bad key: its dotted name, what is wrong, and the value given."""
    lines = [heading]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(root)"
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  {key}: {e['msg']}{shown}")
    return "\n".join(lines)
