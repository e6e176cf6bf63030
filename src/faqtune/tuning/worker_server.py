"""Where the Optuna backend's worker processes come from: a fork server that imports what a
trial needs (MLflow, LightGBM, scikit-learn: seconds of CPU) once, instead of every spawned
worker importing it again. The server forks each worker from its own clean, single-threaded
state, never from the driver's threads. Importing this module loads nothing heavy."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver

WORKER_MODULE = "faqtune.tuning.optuna_backend"


def worker_context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([WORKER_MODULE])
    return context


def start_worker_server() -> None:
    """Start the server now, so its imports overlap the driver's own preparation."""
    worker_context()
    multiprocessing.forkserver.ensure_running()
