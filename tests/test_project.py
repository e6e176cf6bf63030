"""The project's own files agree with each other: pyproject, conda.yaml, python_env.yaml,
MLproject and the console scripts."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.helpers import REPO


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_conda_env_lists_the_same_runtime_packages_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert {_name(r) for r in pip_section} == {_name(r) for r in project["dependencies"]}
    # and with the same version ranges, so both environments resolve alike
    assert sorted(r.replace(" ", "") for r in pip_section) == sorted(
        r.replace(" ", "") for r in project["dependencies"])


def test_python_env_lists_the_same_runtime_packages_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    python_env = yaml.safe_load((REPO / "python_env.yaml").read_text())
    assert sorted(r.replace(" ", "") for r in python_env["dependencies"]) == sorted(
        r.replace(" ", "") for r in project["dependencies"])
    assert python_env["python"] == project["requires-python"].removeprefix(">=")
    spec = yaml.safe_load((REPO / "MLproject").read_text())
    assert spec["python_env"] == "python_env.yaml", "`mlflow run .` without conda"


def test_every_task_has_a_console_script_and_its_own_help(tmp_path):
    import subprocess
    import sys

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for task in ("prepare", "train", "evaluate", "sweep", "register", "main"):
        assert scripts[f"faqtune-{task}"] == f"faqtune.{task}:main"
    shown = subprocess.run([sys.executable, "-m", "faqtune.sweep", "--help"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert shown.startswith("python -m faqtune.sweep: tune hyperparameters")
    assert "model: matcher" in shown and "experiment=quick" in shown
    # Hydra's tab completion, as bash asks it, from the installed console script
    import os
    from pathlib import Path

    line = "faqtune-train model="
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("faqtune-train")), "-sc", "query=bash"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
        env={**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line))}).stdout.split()
    assert {"model=matcher", "model=reference"} <= set(completed)


def test_mlproject_has_every_task_as_an_entry_point_with_overrides():
    spec = yaml.safe_load((REPO / "MLproject").read_text())
    for task in ("main", "prepare", "train", "sweep", "evaluate", "register"):
        entry = spec["entry_points"][task]
        assert "overrides" in entry["parameters"]
        assert f"faqtune.mlproject {task} {{overrides}}" in entry["command"]
