"""`python -m faqtune.train` against a real MLflow store (SQLite in a temp folder): what one
run logs, multirun, `mlflow run . -e train`, and a run stopped by SIGTERM (probe case D2,
docs/reliability.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from faqtune import train
from faqtune.data.dataset import PreparedData
from faqtune.model.metrics import ranking_metrics
from faqtune.tracking.runs import where_to_look
from tests.helpers import (CS_DATA, REPO, TINY_DATA, TINY_RUN, VENV_PATH, last_json,
                           needs_cs_data, run_task)


@pytest.mark.parametrize("model", ["matcher", "reference"])
def test_train_logs_params_stepwise_metrics_artifacts_and_a_working_model(
        make_cfg, store, model):
    # 30 rounds reported every 10: the steps and params asserted below
    cfg = make_cfg(f"model={model}", *TINY_RUN, "model.estimators=30", "training.period=10",
                   f"tracking.uri={store}", "model.match=5")
    summary = train.run(cfg)
    client = MlflowClient(store)
    run = client.get_run(summary["run_id"])
    params = run.data.params
    assert params["model.name"] == model and params["model.estimators"] == "30"
    assert params["data.min_dupes"] == "8" and len(params["data.hash"]) == 64
    assert run.data.tags["faqtune.git_commit"]
    history = client.get_metric_history(run.info.run_id, "tune_gain_at_3")
    assert sorted({m.step for m in history}) == [10, 20, 30]
    for k in range(1, 6):
        assert 0 <= run.data.metrics[f"tune_gain_at_{k}"] <= 1
    assert run.data.metrics["fit_seconds"] > 0 and run.data.metrics["model_size_mb"] > 0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "config.yaml" in artifacts
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/tune_gain_curve.png", "plots/feature_importance.png"}
    inputs = run.inputs.dataset_inputs
    assert sorted(i.tags[0].value for i in inputs) == ["test", "train", "tune"]
    assert all(i.dataset.digest.startswith(params["data.hash"][:24]) for i in inputs)

    look = where_to_look(summary)  # what every task's summary line adds
    assert look["runs_url"].endswith(f"/runs/{summary['run_id']}?workflowType=machine_learning")
    assert look["tracking_uri"] == store and store in look["mlflow_ui"]
    mlflow.set_tracking_uri(store)
    logged = mlflow.get_logged_model(summary["model_uri"].split("/")[-1])
    assert logged.name == f"faqtune-{model}"
    description = logged.tags["mlflow.note.content"]  # the UI's description of the model
    faqs = len(PreparedData.load(summary["data_path"]).faqs)
    assert f"({model} model) over {faqs} FAQs" in description, description
    assert f"`{params['data.hash']}`" in description and "a column `question`" in description
    requirements = Path(mlflow.artifacts.download_artifacts(
        f"{logged.artifact_location}/requirements.txt")).read_text().split()
    assert all("==" in r for r in requirements), "pinned to the trained versions"
    assert not [r for r in requirements if r.split("==")[0] in ("hydra-core", "optuna", "py7zr")]
    served = mlflow.pyfunc.load_model(summary["model_uri"])
    assert served.metadata.get_input_schema().input_names() == ["question"]
    faqs = served.unwrap_python_model().faqs
    data = pd.read_parquet(f"{summary['data_path']}/faqs.parquet")
    own_text = data["text"].tolist()[:5]
    answer = served.predict(pd.DataFrame({"question": own_text}), params={"top_k": 3})
    assert list(answer.columns) == ["question_index", "rank", "faq_id", "score", "answer"]
    assert len(answer) == 15
    top1 = answer[answer["rank"] == 1].sort_values("question_index")
    if model == "matcher":  # an FAQ's own text must find that FAQ
        assert top1["faq_id"].tolist() == data["faq_id"].tolist()[:5]
    assert set(answer["faq_id"]) <= set(faqs["faq_id"])
    assert (answer.groupby("question_index")["score"].apply(
        lambda s: s.is_monotonic_decreasing)).all()


@needs_cs_data()
def test_on_real_cs_data_the_matcher_beats_the_reference_and_cosine(make_cfg, store):
    data = ["data=reference_tsv", f"data.path={CS_DATA}", "data.min_dupes=2",
            f"tracking.uri={store}", "training.log_model=false"]
    matcher = train.run(make_cfg(*data))
    reference = train.run(make_cfg(*data, "model=reference"))
    from faqtune.data.dataset import PreparedData
    from sklearn.feature_extraction.text import TfidfVectorizer

    prepared = PreparedData.load(matcher["data_path"])
    tune = prepared.split("tune")
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit(prepared.faqs["text"])
    cosine = (vectorizer.transform(tune["text"]) @ vectorizer.transform(prepared.faqs["text"]).T)
    cosine_gain = ranking_metrics(cosine.toarray(), tune["faq_row"].to_numpy(),
                                  "tune")["tune_gain_at_1"]
    print(f"cs tune gain@1: matcher {matcher['tune_gain_at_1']:.3f}, reference "
          f"{reference['tune_gain_at_1']:.3f}, cosine {cosine_gain:.3f}")
    assert matcher["tune_gain_at_1"] > reference["tune_gain_at_1"]
    assert matcher["tune_gain_at_1"] >= cosine_gain


@pytest.mark.slow
def test_hydra_multirun_nests_one_run_per_job_under_a_parent(tmp_path):
    tmp_path = tmp_path / "o'neil"  # an apostrophe in the folder (probe C1) breaks no filter
    tmp_path.mkdir()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # relative paths, as a user in that folder types them (the multirun tag is absolute)
    proc = run_task("train", "-m", "model.ngrams=1,2", *TINY_RUN, "training.log_model=false",
                    "tracking.uri=sqlite:///mlflow.db", "paths.cache=cache", cwd=tmp_path)
    assert len(proc.stdout.strip().splitlines()) == 1, "one summary for the whole multirun"
    summary = last_json(proc.stdout)
    assert len(summary["jobs"]) == 2 and all("tune_mrr" in job for job in summary["jobs"])
    client = MlflowClient(store)
    parent = summary["parent_run_id"]
    assert client.get_run(parent).info.run_name == "multirun model.ngrams=1,2"
    children = client.search_runs([client.get_experiment_by_name("faqtune").experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.data.params["model.ngrams"] for r in children) == ["1", "2"]
    assert sorted("model.ngrams=1" in r.info.run_name for r in children) == [False, True]
    assert len({r.data.tags["faqtune.multirun"] for r in children}) == 1
    for run in [*children, client.get_run(parent)]:
        for tag in ("mlflow.source.name", "mlflow.user", "faqtune.git_commit"):
            assert run.data.tags.get(tag), f"{run.info.run_name} lacks {tag}"


@pytest.mark.slow
@pytest.mark.parametrize("env_manager", ["local", "uv"])
def test_mlflow_run_train_entry_point_logs_into_the_project_run(tmp_path, env_manager):
    """`local` uses this environment; `uv` builds python_env.yaml from scratch, as
    `mlflow run .` does on a machine with plain Python and no conda."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = " ".join([*TINY_RUN, f"paths.cache={tmp_path / 'cache'}"])
    # A SQLite store's schema belongs to one MLflow version: the project's environment gets
    # the MLflow that runs `mlflow run` (the README's recipe; uv reads UV_CONSTRAINT)
    constraint = tmp_path / "constraints.txt"
    constraint.write_text(f"mlflow=={mlflow.__version__}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", "train", "--env-manager",
         env_manager, "--experiment-name", "faqtune", "-P", f"overrides={overrides}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
        env={**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": VENV_PATH,
             "UV_CONSTRAINT": str(constraint)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = last_json(proc.stdout)
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("faqtune").experiment_id])
    assert [r.info.run_id for r in runs] == [summary["run_id"]], "one run: the project's own"
    assert runs[0].data.tags.get("mlflow.project.entryPoint") == "train"
    assert "tune_gain_at_1" in runs[0].data.metrics


@pytest.mark.slow
@pytest.mark.serial
def test_sigterm_during_training_marks_the_run_killed(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "faqtune.train", *TINY_DATA, "model.estimators=100000",
         "training.period=50", f"tracking.uri={store}", f"paths.cache={tmp_path / 'cache'}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client, deadline = MlflowClient(store), time.time() + 300
    while time.time() < deadline:  # wait until training reports its first period
        try:
            runs = client.search_runs([client.get_experiment_by_name("faqtune").experiment_id])
        except Exception:  # the store or experiment does not exist yet
            runs = []
        if runs and "tune_mrr" in runs[0].data.metrics:
            break
        time.sleep(0.5)
    proc.terminate()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert client.get_run(runs[0].info.run_id).info.status == "KILLED"



# The disk fills between faqtune's check and MLflow's copy: the check is passed by.
_DISK_FILLS_DURING_THE_COPY = ("import sys; import faqtune.tracking.record as record; "
                               "record.check_room = lambda needed: None; "
                               "from faqtune.train import main; main()")


@pytest.mark.slow
@pytest.mark.parametrize("fills", ["before the model is logged", "while it is copied"])
def test_C4_a_full_disk_at_the_model_leaves_the_run_failed_and_no_partial_model(tmp_path,
                                                                                 fills):
    """Third probe, C4: with the store on a device that is full when `train` logs its
    model, MLflow printed three tracebacks, the copy's partial files stayed, the logged
    model stayed PENDING and the run RUNNING (marking it FAILED is a write to the full
    device). Now: one paragraph naming the device (exit 3), the run and the model FAILED,
    no partial file. Filled before, faqtune refuses before a byte is written; filled while
    MLflow copies, the partial files are deleted, which frees the space to mark them."""
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs "
                            f"{tmp_path}"], capture_output=True)
    if probe.returncode:
        pytest.skip("a private tmpfs (unshare -m, mount) is not permitted here")
    store, logs = tmp_path / "store", tmp_path / "logs"
    store.mkdir(), logs.mkdir()
    data = " ".join(TINY_RUN)
    second = ("-m faqtune.train" if fills.startswith("before")
              else f"-c '{_DISK_FILLS_DURING_THE_COPY}'")
    script = f"""set -e
mount -t tmpfs -o size=40m tmpfs {store}
cd {store}
{sys.executable} -m faqtune.train {data} > {logs}/first.json 2> /dev/null
find mlruns/1/models -type f | wc -l > {logs}/model_files
free=$(df -k --output=avail . | tail -1)
dd if=/dev/zero of=fill bs=1K count=$((free - 700)) 2> /dev/null || true
set +e
{sys.executable} {second} {data} model.estimators=21 > {logs}/second.json 2> {logs}/second.err
echo "rc=$?"
rm fill
{sys.executable} -c "
import mlflow; client = mlflow.MlflowClient('sqlite:///mlflow.db')
print(sorted(r.info.status for r in client.search_runs(['1'])))
print(sorted(m.status.value for m in client.search_logged_models(['1'])))"
ls -d mlruns/1/models/*/artifacts | wc -l
find mlruns/1/models -type f | wc -l
"""
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          timeout=300)
    lines = proc.stdout.strip().splitlines()
    stderr = (logs / "second.err").read_text()
    assert lines[0] == "rc=3", proc.stdout + proc.stderr[-2000:] + stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: No space left on the device holding {store}/mlruns/1/"), errors
    assert "Traceback" not in stderr, stderr[-3000:]
    assert lines[1] == "['FAILED', 'FINISHED']", "the second run is FAILED, not RUNNING"
    assert lines[2] in ("['READY']", "['FAILED', 'READY']"), "no model left PENDING"
    assert lines[3] == "1", "the partial model's folder is gone, the first model's stays"
    assert lines[4] == (logs / "model_files").read_text().strip(), "no partial file is left"
