"""`python -m faqtune.main` (and `make demo`): prepare, sweep, retrain the best, test, register."""

from __future__ import annotations

import mlflow
from omegaconf import DictConfig

from faqtune.cli import task
from faqtune.config import to_object
from faqtune.sweep import sweep
from faqtune.tracking.runs import redact


def run(cfg: DictConfig) -> dict:
    summary = sweep(to_object(cfg))
    uri = redact(mlflow.get_tracking_uri())
    summary["look"] = (f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 ; registered "
                       f"{summary.get('model_name')} version {summary.get('version')}")
    summary["mlflow_ui"] = f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1"
    return summary


main = task(run)

if __name__ == "__main__":
    main()
