"""Real services for the reliability suite: MLflow servers on 127.0.0.1, started and stopped
by the tests (a PostgreSQL cluster: tests/conftest.py); and the record of what each scenario
did."""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import MlflowServer


@pytest.fixture
def mlflow_server(tmp_path):
    """Start servers of the test's own (to stop, restart or give another backend store)."""
    servers = []

    def start(backend: str | None = None) -> MlflowServer:
        server = MlflowServer(backend or f"sqlite:///{tmp_path / 'server.db'}",
                              tmp_path / "artifacts", tmp_path / "server.log").start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def shared_mlflow_server(tmp_path_factory):
    """One server for the tests that neither stop nor restart it (a start takes 5-10 s):
    each logs into an experiment, and registers models, of its own."""
    root = tmp_path_factory.mktemp("shared-mlflow-server")
    server = MlflowServer(f"sqlite:///{root / 'server.db'}", root / "artifacts",
                          root / "server.log").start()
    yield server
    server.stop()


@pytest.fixture
def observe(request):
    """Record what a scenario did, for docs/reliability.md (see bench/reliability_report.py)."""
    target = os.environ.get("FAQTUNE_RELIABILITY_LOG")

    def record(scenario: str, provoked: str, outcome: dict) -> None:
        if target:
            with open(target, "a") as out:
                out.write(json.dumps({"test": request.node.name, "scenario": scenario,
                                      "provoked": provoked, "outcome": outcome}) + "\n")

    return record
