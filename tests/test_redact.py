"""Credentials never leave faqtune (`faqtune.redact`): passwords in URLs are masked before
anything is logged (probe case SEC1, docs/reliability.md)."""

from __future__ import annotations

from faqtune.redact import redact


def test_passwords_in_urls_are_masked_before_logging():
    assert redact("storage: postgresql://me:s3cret@db:5432/optuna and http://a:b@h/x") == \
        "storage: postgresql://me:***@db:5432/optuna and http://a:***@h/x"
    assert redact("sqlite:///mlflow.db http://127.0.0.1:5000") == \
        "sqlite:///mlflow.db http://127.0.0.1:5000"
    # the forms the reliability probe found unmasked (SEC1.6)
    assert redact("postgresql://dave@h:1/optuna?password=S3CRET-E") == \
        "postgresql://***@h:1/optuna?password=***"
    assert redact("redis://:S3CRET-F@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("postgresql://u:S3@CRET-G@h/db") == "postgresql://u:***@h/db"
    assert redact("https://TOKEN@host/x?sig=abc&x=1") == "https://***@host/x?sig=***&x=1"
    assert redact("file:///tmp/a@b/c") == "file:///tmp/a@b/c"
