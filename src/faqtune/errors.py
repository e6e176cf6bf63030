"""User-facing errors: one clear paragraph, no traceback."""

import contextlib
import errno


class FaqtuneError(Exception):
    """An error caused by input or configuration that the user can fix."""


class ConfigError(FaqtuneError):
    """A configuration value is out of range or inconsistent."""


class DataError(FaqtuneError):
    """Input data is missing, malformed or filtered down to nothing."""


class ServiceUnavailable(FaqtuneError):
    """A service faqtune needs (tracking server, Optuna storage) cannot be reached."""


@contextlib.contextmanager
def database_errors(key: str, url: str, service: str, driver_hint: str):
    """SQLAlchemy's errors about the database that setting `key` names, as one line each:
    a missing driver, a URL SQLAlchemy refuses or a database that does not exist are the
    user's to fix (exit 2); a database that does not answer is an outage (exit 3). One
    mapping for the tracking store and the Optuna storage alike."""
    import sqlalchemy.exc

    from faqtune.redact import redact

    try:
        yield
    except ModuleNotFoundError as exc:  # the driver, e.g. psycopg for postgresql://
        raise ConfigError(f"{key}={redact(url)} needs the database driver {exc.name!r}: "
                          f"{driver_hint}") from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise ConfigError(f"{key}={redact(url)} is not a database URL SQLAlchemy accepts "
                          f"({exc}).") from None
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
        reason = redact(str(exc.orig or exc).strip().splitlines()[0])
        if "does not exist" in reason or "Unknown database" in reason:
            raise ConfigError(f"{key}={redact(url)}: {reason}. Create the database first, or "
                              "fix the URL.") from None
        raise ServiceUnavailable(f"The {service} {redact(url)} cannot be reached ({reason}). "
                                 f"Start the database, or fix {key}.") from None


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


# What a lost connection to a tracking server or a database looks like, whoever wraps it:
# MLflow's REST client keeps only the message; Optuna wraps the driver's OperationalError.
CONNECTION_LOST = ("Connection refused", "Connection broken", "Connection aborted",
                   "Max retries exceeded", "Failed to establish a new connection",
                   "RemoteDisconnected", "server closed the connection", "connection failed",
                   "the database system is shutting down", "the database system is starting up",
                   "terminating connection due to administrator command", "Connection reset",
                   # the server ended a transaction left open past backend.stale_after_seconds:
                   # its worker was frozen, and resumes as after an outage
                   "terminating connection due to idle-in-transaction timeout")
OUTAGE_TYPES = ("ConnectionError", "OperationalError", "InterfaceError", "MaxRetryError",
                "NewConnectionError", "ProtocolError")


def is_outage(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) is a service gone away rather than a fault of the
    trial: such a trial runs again, and is never counted as a failure."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (ConnectionError, ServiceUnavailable)) or \
                type(exc).__name__ in OUTAGE_TYPES or \
                any(sign in str(exc) for sign in CONNECTION_LOST):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
