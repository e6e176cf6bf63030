"""Secrets come only from the environment, and nothing faqtune records contains them."""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import TINY_DATA, TINY_RUN, last_json, run_task

pytestmark = pytest.mark.slow
SECRETS = {
    "AZURE_CLIENT_SECRET": "s3cr3t-client-Q7x9PzLk2",
    "AZURE_STORAGE_KEY": "c3RvcmFnZS1rZXktZG8tbm90LWxvZw==",
    "AZUREML_ACCESS_TOKEN": "eyJfake.token.value-8d7f6",
    "database password in a storage URL": "pw-9f8e7d6c",
}
COORDINATES = {"AZURE_SUBSCRIPTION_ID": "00000000-1111-2222-3333-444444444444",
               "AZURE_RESOURCE_GROUP": "rg-faqtune", "AZUREML_WORKSPACE_NAME": "ws-faqtune",
               "AZURE_CLIENT_ID": "app-id", "AZURE_TENANT_ID": "tenant-id"}


def _files_under(root: Path):
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_secret_reaches_params_tags_artifacts_or_logs(tmp_path, observe):
    env = {**{k: v for k, v in SECRETS.items() if k.isupper()}, **COORDINATES}
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cache = tmp_path / "cache"
    storage = f"backend.storage=postgresql://faqtune:{SECRETS['database password in a storage URL']}"
    storage += "@127.0.0.1:1/optuna"  # never connected to by train: it only lands in the config
    train = run_task("train", *TINY_RUN, "training.period=10", storage,
                     f"tracking.uri={store}", f"paths.cache={cache}", cwd=tmp_path, env=env)
    spec = tmp_path / "job.yaml"
    dry = run_task("sweep", "backend=azureml", "backend.dry_run=true", "sweep.sampler=random",
                   *TINY_DATA,
                   f"backend.spec_path={spec}", f"paths.cache={cache}", cwd=tmp_path, env=env)
    run_id = last_json(train.stdout)["run_id"]
    mlflow.set_tracking_uri(store)
    client = MlflowClient(store)
    run = client.get_run(run_id)
    recorded = [str(run.data.params), str(run.data.tags), str(run.data.metrics),
                train.stdout, train.stderr, dry.stdout, dry.stderr]
    artifacts = Path(mlflow.artifacts.download_artifacts(run_id=run_id, tracking_uri=store,
                                                         dst_path=str(tmp_path / "artifacts")))
    model_uri = run.data.tags["faqtune.model_uri"]
    model = Path(mlflow.artifacts.download_artifacts(model_uri, tracking_uri=store,
                                                     dst_path=str(tmp_path / "model")))
    resources = spec.with_name("job.resources.yaml")  # the v2 dry run's cluster, environment
    files = _files_under(artifacts) + _files_under(model) + _files_under(cache / "runs") + [
        spec, resources]
    scanned = sum(len(text) for text in recorded)
    for path in files:
        content = path.read_bytes()
        scanned += len(content)
        recorded.append(content.decode("utf-8", errors="replace"))
    for name, secret in SECRETS.items():
        assert not any(secret in text for text in recorded), f"{name} leaked"
    config = (artifacts / "config.yaml").read_text()
    assert "postgresql://faqtune:***@127.0.0.1:1/optuna" in config, "URL kept, password masked"
    assert "00000000-1111-2222-3333-444444444444" in resources.read_text(), \
        "the scan reads what the dry run wrote (workspace coordinates are not secrets)"
    observe("Secrets in the environment",
            "fake AZURE_CLIENT_SECRET, storage key and token in the environment and a password "
            "in a storage URL override; train + dry-run sweep; every param, tag, metric, "
            "artifact, model file, Hydra log and console line scanned",
            {"files_scanned": len(files), "bytes_scanned": scanned, "secrets_found": 0})


CANARY = "CANARY-7f3a9b"


def test_a_canary_password_in_every_url_setting_reaches_no_channel(tmp_path,
                                                                   shared_mlflow_server):
    """A real tracking server behind a URL with a password (the server ignores it), a
    storage URL with a password, a multirun, a sweep and a failing sweep: the canary is in
    no output line, no file under the cache or Hydra's folders, no param, tag or artifact."""
    server, started_ms = shared_mlflow_server, int(time.time() * 1000)
    tracking = server.url.replace("http://", f"http://alice:{CANARY}@")
    cache = tmp_path / "cache"
    common = [*TINY_RUN, "training.period=10", f"tracking.uri={tracking}",
              "tracking.experiment=canary", f"paths.cache={cache}"]
    outputs = [
        run_task("train", *common, f"backend.storage=postgresql://carol:{CANARY}@127.0.0.1:1/x",
                 cwd=tmp_path),
        run_task("train", "-m", "model.ngrams=1,2", *common, "training.log_model=false",
                 f"backend.storage=redis://:{CANARY}@127.0.0.1:1/0", cwd=tmp_path),
        run_task("sweep", *common, "sweep.n_trials=2", "backend.n_workers=1",
                 "sweep.finalize=false", cwd=tmp_path),
    ]
    failing = run_task("sweep", *common, "sweep.name=down",
                       f"backend.storage=postgresql://u:{CANARY}@127.0.0.1:1/optuna?password={CANARY}",
                       cwd=tmp_path, check=False)
    assert failing.returncode != 0 and "Traceback" not in failing.stderr
    texts = [t for p in [*outputs, failing] for t in (p.stdout, p.stderr)]
    texts += [f.read_bytes().decode("utf-8", "replace") for f in _files_under(cache)]
    client = MlflowClient(server.url)
    # every run this test made, in any experiment (the server is shared with other tests)
    for run in client.search_runs([e.experiment_id for e in client.search_experiments()],
                                  filter_string=f"attributes.start_time >= {started_ms}"):
        texts += [str(run.data.params), str(run.data.tags)]
        folder = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                     tracking_uri=server.url,
                                                     dst_path=str(tmp_path / run.info.run_id))
        texts += [f.read_bytes().decode("utf-8", "replace") for f in _files_under(Path(folder))]
    leaks = [t[max(0, t.find(CANARY) - 80):t.find(CANARY) + 20] for t in texts if CANARY in t]
    assert not leaks, leaks[:3]
    assert any("multirun.yaml" in str(f) for f in _files_under(cache)), "the scan saw it"

