"""The Optuna backend's entry (`tuning/backend.py`): light to import, so the workers' fork
server starts loading the trial code before this process loads Optuna and MLflow
(`tuning/optuna_backend.py` holds the machinery)."""

from __future__ import annotations

import os
from pathlib import Path

from faqtune.config import FaqtuneConfig
from faqtune.tuning.backend import BackendRun
from faqtune.tuning.space import SearchSpace
from faqtune.tuning.worker_server import start_worker_server


def run(conf: FaqtuneConfig, space: SearchSpace) -> BackendRun:
    """Local workers (and any on other machines sharing `backend.storage`) run the sweep's
    missing trials; the parent run is the sweep's own, unless `mlflow run` made it."""
    start_worker_server()
    from faqtune.data.prepare import prepare
    from faqtune.tracking.runs import configure
    from faqtune.tuning.optuna_backend import parent_lock, run_sweep

    configure(conf.tracking, conf.azure)
    data, data_path, _ = prepare(conf.data, Path(conf.paths.cache))
    outcome = run_sweep(conf, space, data, data_path)
    return BackendRun(outcome=outcome, data=data, data_path=data_path,
                      finalize_lock=parent_lock(conf),
                      owns_parent=outcome.parent_run_id != os.environ.get("MLFLOW_RUN_ID"))
