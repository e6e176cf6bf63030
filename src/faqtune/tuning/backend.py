"""The seam between the sweep driver (`faqtune.sweep`) and a backend that runs the trials.

A backend is a module with one function, `run(conf, space) -> BackendRun`: it prepares what
its trials need, runs them or resumes them (on this machine, on a cluster), and hands back
the outcome. The driver owns the rest for every backend: the verdict, finalize, the parent
run's record, the parent's end, the summary. Adding a backend is one module and one schema
(`config.BACKEND_SCHEMAS`), named in `sweep.BACKENDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the driver imports this at start-up: nothing heavy
    from faqtune.data.dataset import PreparedData
    from faqtune.tuning.outcome import SweepOutcome


@dataclass
class BackendRun:
    """What a backend hands back to the driver."""

    summary: dict[str, Any] = field(default_factory=dict)  # the backend's own summary keys
    outcome: SweepOutcome | None = None  # None: no trials to read (a dry run, no waiting)
    data: PreparedData | None = None  # the prepared data every trial trained on
    data_path: Path | None = None
    finalize_lock: Any = None  # held by a finalize of this sweep (two drivers finalize once)
    owns_parent: bool = False  # the driver ends the parent run (not a job's or `mlflow run`'s)
    finalized: bool = False  # the backend finalized itself (e.g. as a job on its cluster)
