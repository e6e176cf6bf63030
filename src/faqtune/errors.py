"""User-facing errors: one clear paragraph, no traceback."""


class FaqtuneError(Exception):
    """An error caused by input or configuration that the user can fix."""


class ConfigError(FaqtuneError):
    """A configuration value is out of range or inconsistent."""


class DataError(FaqtuneError):
    """Input data is missing, malformed or filtered down to nothing."""


class ServiceUnavailable(FaqtuneError):
    """A service faqtune needs (tracking server, Optuna storage) cannot be reached."""

