"""Errors a user can fix. The CLI prints them as one paragraph (no traceback) and exits non-zero."""


class ScsegError(Exception):
    """Base class: bad input that the user can correct. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(ScsegError):
    """Invalid configuration: unknown key, wrong type, missing file."""

    exit_code = 2


class DataError(ScsegError):
    """Unreadable or inconsistent data: missing files, geometry mismatch, bad label values, NaNs."""

    exit_code = 3


class RunDirError(ScsegError):
    """A run directory that is missing, incomplete or would be overwritten."""

    exit_code = 4


# Batch commands (convert, predict) go on past a bad series and report it; they then exit with this
# code so that scripts notice that some outputs are missing (the summary says which and why).
EXIT_SOME_FAILED = 5
