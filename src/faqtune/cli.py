"""What every task shares: Hydra wiring, clean errors, and the JSON summary line."""

from __future__ import annotations

import functools
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Callable

import hydra
from hydra.core.hydra_config import HydraConfig
import mlflow
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig

from faqtune.config import register_configs
from faqtune.errors import FaqtuneError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
log = logging.getLogger("faqtune")


def command_line(task_name: str) -> str | None:
    """The command that ran this task, as a user would type it again (None outside Hydra)."""
    if not HydraConfig.initialized():
        return None
    overrides = HydraConfig.get().overrides.task
    return " ".join(["python", "-m", f"faqtune.{task_name}", *map(shlex.quote, overrides)])


def emit_summary(summary: dict) -> None:
    """The last stdout line of every task: one JSON object."""
    sys.stdout.flush()
    print(json.dumps(summary, default=str), flush=True)


def _fail(message: str, code: int) -> None:
    log.error("%s", message)
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def task(run: Callable[[DictConfig], dict]) -> Callable[[], None]:
    """Turn `run(cfg) -> summary` into a Hydra app that prints errors as one paragraph."""
    register_configs()

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    @functools.wraps(run)
    def main(cfg: DictConfig) -> dict:
        try:
            summary = run(cfg)
        except FaqtuneError as exc:
            _fail(str(exc), 2)
        except MlflowException as exc:
            _fail(f"MLflow tracking failed at {mlflow.get_tracking_uri()}: "
                  f"{exc.message.strip().splitlines()[0]}. Check that the tracking server is "
                  "up; a sweep resumes where it stopped when run again.", 3)
        emit_summary(summary)
        return summary

    return main
