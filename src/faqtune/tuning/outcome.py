"""What every sweep backend hands to the shared finalize step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SweepOutcome:
    parent_run_id: str
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    interrupted: bool = False
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    first_error: str | None = None  # when no trial completed
    data_hash: str | None = None  # the prepared data every trial trained on

    def summary(self, metric: str) -> dict:
        return {"run_id": self.parent_run_id, "complete": self.complete, "pruned": self.pruned,
                "failed": self.failed, "running": self.running,
                f"best_{metric}": self.best_value, "best_trial": self.best_trial,
                "interrupted": self.interrupted}
