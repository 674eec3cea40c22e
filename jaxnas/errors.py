"""User-facing errors.

Every mistake a user can make (a missing file, an unknown task, a malformed row, a bad flag)
raises a subclass of :class:`JaxnasError` whose message names the file, row or field and the
fix. Command-line entry points catch it, print the message and exit with status 2, without a
traceback.
"""


class JaxnasError(Exception):
    """Base class of errors caused by user input rather than by a bug."""


class DataError(JaxnasError):
    """A benchmark file is missing, malformed or inconsistent."""


class ConfigError(JaxnasError):
    """A configuration value (task name, budget, flag) is invalid."""
