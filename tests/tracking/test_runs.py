"""Where runs go (`faqtune.tracking.runs`): a store that is checked before use, found fast
when it is down, shared safely by two tasks, and searched by any value. A name that starts
with a case id (`test_B13_...`) is a case of the reliability probe (docs/reliability.md)."""

from __future__ import annotations

import subprocess
import sys
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from faqtune.config import TrackingConfig
from faqtune.errors import ConfigError
from faqtune.tracking.runs import configure, find_runs, quoted
from tests.helpers import TINY_DATA, assert_database_refused, free_port, last_json, run_task


@pytest.mark.slow
def test_B13_two_tasks_on_a_fresh_sqlite_store_both_succeed(tmp_path):
    for attempt in range(3):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        command = [sys.executable, "-m", "faqtune.train", *TINY_DATA, "model.estimators=10",
                   "training.period=10", "training.log_model=false",
                   f"tracking.uri=sqlite:///{folder / 'mlflow.db'}", f"paths.cache={folder / 'c'}"]
        procs = [subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [p.communicate(timeout=600) for p in procs]
        for proc, (stdout, stderr) in zip(procs, results):
            assert proc.returncode == 0, stderr[-2000:]
            assert last_json(stdout)["run_id"]
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("faqtune").experiment_id
        assert len(client.search_runs([experiment])) == 2


def test_D4_a_dead_tracking_server_fails_in_seconds(tmp_path):
    started = time.perf_counter()
    proc = run_task("train", *TINY_DATA, f"tracking.uri=http://127.0.0.1:{free_port()}",
                    f"paths.cache={tmp_path / 'c'}", cwd=tmp_path, check=False)
    assert proc.returncode == 3 and "No tracking server answers" in proc.stderr
    assert time.perf_counter() - started < 60, "the probe saw 257 s of retries"


def test_C1_filters_find_values_with_apostrophes_and_quotes(store):
    client = MlflowClient(store)
    experiment = client.create_experiment("quotes")
    values = ["/tmp/o'neil/multirun", 'say "hi"']
    for value in values:
        client.create_run(experiment, tags={"faqtune.multirun": value})
    for value in values:
        found = client.search_runs([experiment],
                                   filter_string=f"tags.`faqtune.multirun` = {quoted(value)}")
        assert [r.data.tags["faqtune.multirun"] for r in found] == [value]
    mlflow.set_tracking_uri(None)


def test_find_runs_reads_every_page_and_filters_as_azure_documents(store):
    """Unquoted dotted tag keys (no backticks: Azure ML refuses them), status checked in
    Python, every page followed (F3, F11 of the Azure review)."""
    mlflow.set_tracking_uri(store)
    client = MlflowClient(store)
    experiment = client.create_experiment("pages")
    wanted = []
    for i in range(7):
        run = client.create_run(experiment, tags={"faqtune.role": "final" if i % 2 else "trial",
                                                  "mlflow.parentRunId": "p'1"})
        if i % 2:
            wanted.append(run.info.run_id)
            if i > 1:
                client.set_terminated(run.info.run_id, "FINISHED")
    found = find_runs([experiment], {"mlflow.parentRunId": "p'1", "faqtune.role": "final"},
                      page_size=2)
    assert sorted(r.info.run_id for r in found) == sorted(wanted)
    finished = find_runs(None, {"faqtune.role": "final"}, status="FINISHED", page_size=1)
    assert sorted(r.info.run_id for r in finished) == sorted(wanted[1:])
    mlflow.set_tracking_uri(None)


def test_D5_a_sqlite_store_in_a_missing_folder_is_refused_not_created(tmp_path):
    target = tmp_path / "nowhere" / "deeper" / "m.db"
    with pytest.raises(ConfigError, match=r"nowhere/deeper does not exist"):
        configure(TrackingConfig(uri=f"sqlite:///{target}"))
    assert not (tmp_path / "nowhere").exists()
    mlflow.set_tracking_uri(None)


@pytest.mark.parametrize("problem, make, expected", [
    ("a folder", lambda p: p.mkdir(), r"is a folder; name a database file in it"),
    ("not SQLite", lambda p: p.write_text("hello, world"), r"is not a SQLite database"),
])
def test_a_sqlite_store_that_cannot_be_a_database_is_refused_naming_tracking_uri(
        tmp_path, problem, make, expected):
    """Third probe, B5: exit 2 naming tracking.uri, not 105 s then "faqtune bug"."""
    target = tmp_path / "store.db"
    make(target)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"tracking.uri=sqlite:///.*store.db: .*{expected}"):
        configure(TrackingConfig(uri=f"sqlite:///{target}"))
    assert time.perf_counter() - started < 5
    mlflow.set_tracking_uri(None)


def test_a_database_tracking_store_that_is_down_fails_in_seconds_as_an_outage(tmp_path):
    """Third probe, B5: a PostgreSQL tracking store nobody answers for is exit 3 naming the
    store, in seconds (the probe waited 105 s for exit 1)."""
    started = time.perf_counter()
    proc = run_task("train", *TINY_DATA,
                    f"tracking.uri=postgresql+psycopg://u:secret@127.0.0.1:{free_port()}/x",
                    f"paths.cache={tmp_path / 'c'}", cwd=tmp_path, check=False)
    assert_database_refused(proc, "tracking.uri=postgresql+psycopg://u:***@127.0.0.1",
                            "tracking store", "secret")
    assert time.perf_counter() - started < 30
