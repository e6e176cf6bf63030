"""User-facing errors: one clear paragraph, no traceback."""

import errno


class FaqtuneError(Exception):
    """An error caused by input or configuration that the user can fix."""


class ConfigError(FaqtuneError):
    """A configuration value is out of range or inconsistent."""


class DataError(FaqtuneError):
    """Input data is missing, malformed or filtered down to nothing."""


class ServiceUnavailable(FaqtuneError):
    """A service faqtune needs (tracking server, Optuna storage) cannot be reached."""


def disk_full(exc: BaseException | None) -> OSError | None:
    """The `No space left` error behind `exc`, if any (MLflow and SQLAlchemy wrap it): the
    task names the full device instead of what failed because of it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None
