"""Which failures are outages (`faqtune.errors.is_outage`): fed the exceptions the real
clients raise when their service is away, and the ones they raise for a real fault."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from faqtune.errors import ServiceUnavailable, is_outage
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
