"""`python -m faqtune.main` (and `make demo`): prepare, sweep, retrain the best, test, register."""

from __future__ import annotations

from omegaconf import DictConfig

from faqtune.cli import task
from faqtune.config import to_object
from faqtune.sweep import sweep


def run(cfg: DictConfig) -> dict:
    summary = sweep(to_object(cfg))
    if "version" in summary:
        summary["serve"] = (f"mlflow models serve -m models:/{summary['model_name']}@"
                            "champion --env-manager local --host 127.0.0.1 --port 5001")
    return summary


main = task(run)

if __name__ == "__main__":
    main()
