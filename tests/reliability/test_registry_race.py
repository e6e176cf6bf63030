"""Concurrent registrations leave the best version as champion (probe A3/D3).

Eight processes register eight versions of one model at the same instant, each version
with its own test score; the race runs several times with the best at a random position.
Against a SQLite store the registry lock serialises them; against a real `mlflow server`
there is no lock to take, and the settle loop alone must get it right."""

from __future__ import annotations

import multiprocessing
import random
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from faqtune.config import RegistryConfig
from faqtune.tracking.record import DATA_HASH_PARAM, MODEL_URI_TAG

RACERS = 8
RACES = 4


def _register_at(store: str, run_id: str, model_name: str, start_at: float) -> int:
    from faqtune.tracking.registry import register

    mlflow.set_tracking_uri(store)
    time.sleep(max(0.0, start_at - time.time()))
    return register(run_id, RegistryConfig(model_name=model_name))["version"]


def _candidate_runs(store: str, scores: list[float]) -> list[str]:
    """Runs of one data set, each with a small logged model and its own test score."""
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("race")
    runs = []
    for score in scores:
        with mlflow.start_run() as run:
            uri = mlflow.pyfunc.log_model(name="m", python_model=Echo(),
                                          pip_requirements=[]).model_uri
            mlflow.set_tag(MODEL_URI_TAG, uri)
            mlflow.log_param(DATA_HASH_PARAM, "same-data")
            mlflow.log_metric("test_gain_at_3", score)
        runs.append(run.info.run_id)
    return runs


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return model_input


def _race(store: str, pool) -> None:
    rng = random.Random(7)
    for race in range(RACES):
        scores = [round(rng.uniform(0.3, 0.9), 4) for _ in range(RACERS)]
        runs = _candidate_runs(store, scores)
        name = f"race-{race}"
        start_at = time.time() + 1.5
        versions = pool.starmap(_register_at, [(store, r, name, start_at) for r in runs])
        best_run = runs[scores.index(max(scores))]
        champion = MlflowClient(store).get_model_version_by_alias(name, "champion")
        assert champion.tags["run_id"] == best_run, (
            f"race {race}: champion version {champion.version} has "
            f"{champion.tags['test_gain_at_3']}, the best was {max(scores)}")
        assert sorted(versions) == list(range(1, RACERS + 1))


@pytest.mark.slow
def test_eight_concurrent_registrations_leave_the_best_as_champion_sqlite(tmp_path):
    with multiprocessing.get_context("spawn").Pool(RACERS) as pool:
        _race(f"sqlite:///{tmp_path / 'mlflow.db'}", pool)


@pytest.mark.slow
def test_eight_concurrent_registrations_leave_the_best_as_champion_server(
        shared_mlflow_server):
    with multiprocessing.get_context("spawn").Pool(RACERS) as pool:
        _race(shared_mlflow_server.url, pool)
