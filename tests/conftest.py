"""Shared fixtures: Hydra composition and a temp MLflow store (helpers: tests/helpers.py)."""

from __future__ import annotations

import os

import pytest
from hydra import compose, initialize_config_dir

from faqtune.cli import CONF_DIR
from faqtune.config import register_configs


# The modules of the longest slow tests (a minute or more each on 2 busy cores): started
# first, so that `make test`'s two workers do not end with one of them running alone.
LONGEST = ("tests/test_bench.py", "tests/data/test_synthetic.py", "tests/test_main.py",
           "tests/reliability/test_azure_runtime.py", "tests/reliability/test_registry_race.py")


def pytest_collection_modifyitems(items):
    """The longest modules first, then file order (the same order on every xdist worker)."""
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in LONGEST)


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the real `conf/` with overrides, caching under the test's temp dir."""
    register_configs()

    def _make(*overrides: str):
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            return compose("config", overrides=[f"paths.cache={tmp_path / 'cache'}", *overrides])

    return _make


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite MLflow store in the test's temp folder."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    yield uri
    import mlflow

    mlflow.set_tracking_uri(None)


@pytest.fixture(autouse=True)
def isolated_mlflow_env():
    """MLflow writes MLFLOW_EXPERIMENT_ID into os.environ on set_experiment: undo it, so
    no test (or the subprocesses it starts) inherits another test's experiment or store."""
    import mlflow

    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    for key in saved:
        del os.environ[key]
    yield
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        del os.environ[key]
    os.environ.update(saved)
    mlflow.set_tracking_uri(None)
