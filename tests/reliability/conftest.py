"""Real services for the reliability suite: MLflow servers and a PostgreSQL cluster, all on
127.0.0.1, started and stopped by the tests; and the record of what each scenario did."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers import MlflowServer, free_port


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


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL cluster on 127.0.0.1; yields a function that makes a database."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian package `postgresql`; "
                    ".ci/run installs it)")
    # PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres`
    # user, in a folder that user can reach (pytest's temp folders are private to root).
    root = Path(tempfile.mkdtemp(prefix="faqtune-pg-"))
    data = root / "data"
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    port = free_port()
    subprocess.run([*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "postgres"], check=True, capture_output=True)
    subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-l",
                    str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200",
                    "start"], check=True, capture_output=True)

    def database(name: str) -> str:
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", "postgres", name], check=True, capture_output=True)
        return f"postgresql://postgres@127.0.0.1:{port}/{name}"

    yield database
    subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast",
                    "stop"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


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
