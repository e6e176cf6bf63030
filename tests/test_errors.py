"""Which failures are outages (`faqtune.errors.is_outage`): fed the exceptions the real
clients raise when their service is away, and the ones they raise for a real fault; and how a
database's errors reach the user (`faqtune.errors.database_errors`)."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from faqtune.errors import ConfigError, ServiceUnavailable, database_errors, is_outage
from tests.helpers import free_port


def _raised(call) -> BaseException:
    with pytest.raises(Exception) as caught:
        call()
    return caught.value


def test_a_dead_tracking_server_is_an_outage(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    server = _raised(lambda: MlflowClient(f"http://127.0.0.1:{free_port()}").get_run("r"))
    assert isinstance(server, MlflowException) and is_outage(server)
    assert is_outage(ServiceUnavailable("The Optuna storage cannot be reached"))


def test_a_dead_database_is_an_outage_however_optuna_wraps_it():
    pytest.importorskip("psycopg", reason="the PostgreSQL driver comes with the postgres extra")
    engine = sqlalchemy.create_engine(f"postgresql+psycopg://u@127.0.0.1:{free_port()}/x")
    database = _raised(engine.connect)
    assert is_outage(database)

    def wrapped():  # how Optuna's RDB storage reports a commit on a lost connection
        try:
            raise database
        except Exception as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised during "
                                                         "the commit.") from exc

    assert is_outage(_raised(wrapped))


@pytest.mark.parametrize("fault", [
    ValueError("learning_rate must be positive"),
    optuna.TrialPruned("pruned at round 100"),
    MlflowException("Run 'r' not found", error_code="RESOURCE_DOES_NOT_EXIST"),
    OSError(28, "No space left on device"),
])
def test_a_fault_of_the_trial_or_the_request_is_not_an_outage(fault):
    assert not is_outage(fault)


def _mapped(url: str, call) -> BaseException:
    with pytest.raises((ConfigError, ServiceUnavailable)) as caught:
        with database_errors("backend.storage", url, "Optuna storage", "install it."):
            call()
    return caught.value


def test_database_errors_are_the_users_to_fix_or_an_outage_each_in_one_line(tmp_path):
    """SQLAlchemy's own errors: a driver that is missing, a URL it refuses, a database file
    it cannot open (an outage, exit 3), each naming the key and never the password."""
    def missing_driver():
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

    driver = _mapped("postgresql://u:pw@h/x", missing_driver)
    assert isinstance(driver, ConfigError)
    assert str(driver) == ("backend.storage=postgresql://u:***@h/x needs the database driver "
                           "'psycopg': install it.")
    url = _mapped("no-such-scheme://x", lambda: sqlalchemy.create_engine("no-such-scheme://x"))
    assert isinstance(url, ConfigError) and "not a database URL SQLAlchemy accepts" in str(url)
    unopenable = f"sqlite:///{tmp_path / 'missing' / 'x.db'}"
    down = _mapped(unopenable, lambda: sqlalchemy.create_engine(unopenable).connect())
    assert isinstance(down, ServiceUnavailable) and is_outage(down)
    assert str(down).startswith(f"The Optuna storage {unopenable} cannot be reached (")
    assert "\n" not in str(down) and str(down).endswith("or fix backend.storage.")
