"""Errors a user can act on. The CLI prints their message and exits non-zero, never a traceback."""


class StationError(Exception):
    """Base for problems with a clear fix; the message says what to do."""

    exit_code = 1


class ConfigError(StationError):
    exit_code = 2


class ModelError(StationError):
    """A model file is missing, truncated or not the file we expect."""


class SourceError(StationError):
    """A camera or clip cannot be opened or stopped delivering frames."""
