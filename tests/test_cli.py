"""What every task shares (`faqtune.cli`): an error is one paragraph with the right exit
code, never a traceback, and never blamed on the wrong thing. A name that starts with a case
id (`test_B20_...`) is a case of the reliability probe (docs/reliability.md)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from faqtune.cli import explain
from tests.helpers import REPO, run_task

HEAVY = ("mlflow", "lightgbm", "optuna", "matplotlib", "sklearn")


def test_the_command_line_reports_a_misspelt_key_in_one_paragraph(tmp_path):
    proc = run_task("train", "+model.estimator=10", f"paths.cache={tmp_path}", cwd=tmp_path,
                    check=False)
    assert proc.returncode == 2
    assert "Unknown setting model.estimator" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("override, key", [
    ("model.ngrams=zero", "model.ngrams"),
    ("model.colour=red", "colour"),
    ("data=nowhere", "data=nowhere"),
    ("model.ngrams=9", "model.ngrams=9"),
])
def test_invalid_overrides_on_the_command_line_give_no_traceback(tmp_path, override, key):
    proc = run_task("train", override, f"paths.cache={tmp_path}", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert key in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout


def _imported_by(*args: str, cwd) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `python -X importtime -m faqtune.train ARGS`: the process and every top-level
    package it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "faqtune.train", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)
    imported = {m.group(1).split(".")[0]
                for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$",
                                     proc.stderr, re.MULTILINE)}
    return proc, imported


@pytest.mark.parametrize("args", [["--help"], ["model.learning_rate=abc"],
                                  ["model.estimators=0"], ["--cfg", "job"]],
                         ids=lambda args: " ".join(args))
def test_help_and_configuration_errors_import_no_heavy_package(tmp_path, args):
    """`--help`, composing and validating the configuration, and their errors answer before
    MLflow, LightGBM, Optuna, matplotlib or scikit-learn would load (seconds of CPU)."""
    proc, imported = _imported_by(*args, f"paths.cache={tmp_path}", cwd=tmp_path)
    assert "faqtune" in imported and "hydra" in imported, proc.stderr[-2000:]
    assert imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))


def test_help_lists_the_options_a_user_picks():
    proc = run_task("sweep", "--help", cwd=REPO)
    assert proc.stdout.startswith("python -m faqtune.sweep: tune hyperparameters")
    assert "model: matcher, reference\n" in proc.stdout
    assert "data: reference_tsv, stackexchange, synthetic, table\n" in proc.stdout
    assert "_schema" not in proc.stdout and "hydra/" not in proc.stdout


@pytest.mark.parametrize("override, message", [
    ("model.learning_rate=abc", "Invalid configuration: model.learning_rate='abc': Value 'abc' "
                                "of type 'str' could not be converted to Float; expected a "
                                "number."),
    ("model.estimators=1.5", "model.estimators=1.5: Value '1.5' of type 'float' could not be "
                             "converted to Integer; expected a whole number."),
    ("training.log_model=maybe", "training.log_model='maybe': Value 'maybe' is not a valid "
                                 "bool (type str); expected true or false."),
    ("model=foo", "model=foo names no file in conf/model/; expected one of matcher, "
                  "reference."),
    ("experiment=fast", "experiment=fast names no file in conf/experiment/; expected one of "),
    ("model.colour=red", "Unknown setting model.colour: MatcherConfig has no key 'colour'"),
    ("model.learning_rat=0.1", "did you mean model.learning_rate?"),
    ("sweep.n_trials=[1,2", "Cannot read the override sweep.n_trials=[1,2: "),
    ("model=matcher_schema", "model=matcher_schema is the schema the model options build on, "
                             "not an option; expected one of matcher, reference."),
], ids=lambda value: value if "=" in value and len(value) < 30 else "")
def test_a_composition_error_exits_2_with_one_paragraph(tmp_path, override, message):
    """Hydra's own composition errors (a value of the wrong type, an unknown option, an
    override it cannot parse) keep faqtune's promise: exit 2, one line naming the key."""
    proc = run_task("train", override, f"paths.cache={tmp_path}", cwd=tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert message in lines[0]
    assert proc.stdout == ""


def test_a_multirun_with_one_bad_value_exits_2_before_any_job(tmp_path):
    proc = run_task("train", "-m", "model.learning_rate=0.1,abc", f"paths.cache={tmp_path}",
                    cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "model.learning_rate='abc'" in proc.stderr
    jobs = [p for p in (tmp_path / "multirun").glob("*/*") if p.is_dir()]
    assert jobs == [] and "Launching" not in proc.stdout + proc.stderr


# -- the probe's cases -------------------------------------------------------------------
def test_B19_C1_disk_full_behind_an_mlflow_error_is_named_as_disk_full():
    try:
        try:
            with open("/dev/full", "wb") as full:  # a real ENOSPC from the kernel
                full.write(b"x")
        except OSError as exc:
            raise MlflowException("(raised as a result of Query-invoked autoflush)") from exc
    except MlflowException as wrapped:
        message, code = explain(wrapped)
    assert code == 3 and message.startswith("No space left on the device holding")
    assert "autoflush" not in message and "server is up" not in message


def test_disk_full_during_a_copy_names_the_destination_not_the_source():
    """Third probe, C4: shutil's copy names the source first (a temporary copy with space
    left) and the destination, on the full device, second."""
    copy_failed = OSError(28, "No space left on device", "/tmp/xyz/model/estimator.joblib",
                          None, "/stores/mlruns/1/artifacts/estimator.joblib")
    message, code = explain(copy_failed)
    assert code == 3 and "holding /stores/mlruns/1/artifacts/estimator.joblib" in message


def test_C1_an_mlflow_refusal_is_not_blamed_on_the_server(store):
    with pytest.raises(MlflowException) as refused:  # a real answer from a real store
        MlflowClient(store).get_run("0" * 32)
    message, code = explain(refused.value)
    assert code == 2 and "refused a request (RESOURCE_DOES_NOT_EXIST)" in message
    assert "server is up" not in message
    message, code = explain(MlflowException("API request failed: Connection refused"))
    assert code == 3 and "server is up" in message


def test_B20_an_unwritable_cache_is_one_paragraph(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_task("prepare", f"paths.cache={blocker / 'cache'}", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "is not a folder faqtune can write to" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_optuna_setting_under_its_old_name_exits_2_naming_the_new_one(tmp_path):
    proc = run_task("sweep", "sweep.n_workers=4", f"paths.cache={tmp_path}", cwd=tmp_path,
                    check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Setting sweep.n_workers has moved: write backend.n_workers=..." in proc.stderr
