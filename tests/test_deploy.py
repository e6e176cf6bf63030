"""deploy/: the multi-machine recipe. Every container of compose.yaml and kubernetes.yaml that
sweeps runs deploy/sweep.sh with what it needs; the script itself, run as the containers run
it, is tested end to end with PostgreSQL and an MLflow server in
tests/reliability/test_load.py. (No Docker or Kubernetes here: the images and manifests are
checked as files, not run.)"""

from __future__ import annotations

import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from tests.helpers import REPO

DEPLOY = REPO / "deploy"
SCRIPT = ["sh", "deploy/sweep.sh"]
NEEDED = {"OPTUNA_STORAGE", "MLFLOW_TRACKING_URI", "FAQTUNE_ROLE", "PGPASSWORD"}


def _compose_sweepers() -> dict[str, dict]:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    return {name: s for name, s in services.items() if s.get("command") == SCRIPT}


def test_compose_runs_workers_and_one_finalizer_with_what_the_script_needs():
    sweepers = _compose_sweepers()
    assert {s["environment"]["FAQTUNE_ROLE"] for s in sweepers.values()} == {"worker",
                                                                               "finalize"}
    for name, service in sweepers.items():
        assert NEEDED <= set(service["environment"]), name
        storage = urlsplit(service["environment"]["OPTUNA_STORAGE"])
        assert storage.scheme == "postgresql" and storage.password is None, "PGPASSWORD, not the URL"
        assert service["depends_on"]["mlflow"]["condition"] == "service_healthy"
    server = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["mlflow"]
    assert "postgresql+psycopg2://" in " ".join(server["command"]), "mlflow#24515"
    assert all(port.startswith("127.0.0.1:") for port in server["ports"])


def test_kubernetes_runs_worker_pods_and_one_finalizer_with_what_the_script_needs():
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    config = next(d for d in documents if d["kind"] == "ConfigMap")
    jobs = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Job"}
    roles = {}
    for name, job in jobs.items():
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["command"] == SCRIPT, name
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        sources = container["envFrom"]
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in sources
        assert any("secretRef" in source for source in sources), "PGPASSWORD from a Secret"
        assert NEEDED - {"PGPASSWORD"} <= set(env) | set(config["data"]), name
        roles[env["FAQTUNE_ROLE"]] = job["spec"]["parallelism"]
    assert roles["finalize"] == 1 and roles["worker"] >= 2


def test_the_image_holds_what_the_tasks_read_and_runs_the_script():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for copied in ("src", "conf", "deploy", "pyproject.toml"):
        assert f"COPY {copied}" in dockerfile
    assert '-e ".[postgres]"' in dockerfile, "editable: the tasks read conf/ beside src/"
    assert 'CMD ["sh", "deploy/sweep.sh"]' in dockerfile


@pytest.mark.parametrize("env, named", [
    ({"FAQTUNE_ROLE": "boss"}, "FAQTUNE_ROLE=boss; expected worker or finalize"),
    ({}, "OPTUNA_STORAGE is not set"),
    ({"OPTUNA_STORAGE": "postgresql://u@h/optuna"}, "MLFLOW_TRACKING_URI is not set")])
def test_the_script_refuses_a_missing_or_wrong_setting_with_exit_2(env, named):
    proc = subprocess.run(SCRIPT, cwd=REPO, capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", **env})
    assert proc.returncode == 2 and named in proc.stderr, proc.stderr
