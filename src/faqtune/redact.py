"""Credentials never leave faqtune: one masking function for every output channel (logs,
MLflow params and tags, artifacts, files under the cache, error messages)."""

from __future__ import annotations

import logging
import re

# `\:` too: Hydra escapes colons in the overrides it logs (`tracking.uri=http\://u\:pw@h`)
_AUTHORITY = re.compile(r"(\b[a-z][a-z0-9+.-]*\\?://)([^/\s?#'\"]*)", re.IGNORECASE)
_SECRET_QUERY = re.compile(
    r"([?&;](?:password|passwd|pwd|pass|token|access_token|api_key|apikey|key|secret|sig|"
    r"signature|client_secret)=)[^&;\s'\"]*", re.IGNORECASE)


def _mask_userinfo(match: re.Match) -> str:
    scheme, authority = match.group(1), match.group(2)
    userinfo, at, host = authority.rpartition("@")  # a password may itself hold '@'
    if not at:
        return match.group(0)
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{user}:***@{host}" if colon else f"{scheme}***@{host}"


def redact(text: str) -> str:
    """Mask credentials in every URL of `text` before it is printed, logged or written:
    `user:password@`, `:password@` and `token@` user info, and secret query parameters
    (`?password=`, `sig=`, `token=`, ...). The one masking function for every channel."""
    return _SECRET_QUERY.sub(r"\1***", _AUTHORITY.sub(_mask_userinfo, text))


class RedactingFilter(logging.Filter):
    """Masks credentials in every log record a handler writes (console and log files)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
