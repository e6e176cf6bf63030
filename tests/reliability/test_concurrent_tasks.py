"""Two tasks at the same moment in one folder and one store (the third probe's "not tried"
list): two `faqtune.main` runs, and a sweep next to a `faqtune.register`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import journal_study, last_json, run_task, state_counts

pytestmark = pytest.mark.slow
QUICK = ["experiment=quick", "sweep.n_trials=6"]


def _at_once(cwd, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Start every command, then wait for all: they overlap from their first second."""
    procs = [subprocess.Popen([sys.executable, "-m", *command], cwd=cwd, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for command in commands]
    done = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return done


def test_two_main_pipelines_in_one_folder_share_one_sweep_and_register_once(tmp_path):
    """They are two drivers of one sweep (its lock, its study, its parent run): the trials are
    run once between them, one finalizes and registers, the other says it was finalized."""
    first, second = _at_once(tmp_path, ["faqtune.main", *QUICK], ["faqtune.main", *QUICK])
    for proc in (first, second):
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    summaries = [last_json(first.stdout), last_json(second.stdout)]
    assert summaries[0]["run_id"] == summaries[1]["run_id"], "one parent run"
    assert {s["version"] for s in summaries} == {1}
    assert sorted(bool(s.get("already_finalized")) for s in summaries) == [False, True]
    counts = state_counts(journal_study(tmp_path / ".faqtune", "quick"))
    assert counts.get("COMPLETE", 0) + counts.get("PRUNED", 0) == 6 and "RUNNING" not in counts
    store = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(store.search_model_versions("name = 'faqtune-quick'")) == 1


def test_a_register_during_a_sweep_leaves_the_better_version_as_champion(tmp_path):
    """A training run registered while a sweep on the same data runs, finalizes and registers
    its own: both versions are kept, and the champion is the one with the better test score
    (registrations at the very same instant: test_registry_race.py)."""
    trained = last_json(run_task("train", "experiment=quick", "model.ngrams=1",
                                 "tracking.experiment=faqtune-quick", cwd=tmp_path).stdout)
    sweep, register = _at_once(tmp_path, ["faqtune.main", *QUICK],
                               ["faqtune.register", "experiment=quick",
                                f"run_id={trained['run_id']}"])
    for proc in (sweep, register):
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    store = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    versions = store.search_model_versions("name = 'faqtune-quick'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    scores = {v.version: float(v.tags["test_gain_at_3"]) for v in versions}
    champion = store.get_model_version_by_alias("faqtune-quick", "champion")
    assert scores[champion.version] == max(scores.values()), scores
