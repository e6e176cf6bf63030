"""`python -m faqtune.train`: train one model and log one MLflow run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig

from faqtune.cli import task
from faqtune.config import to_object
from faqtune.redact import redact

MULTIRUN_TAG = "faqtune.multirun"


def _multirun() -> tuple[str, int] | None:
    """(sweep folder, job number) when this job is part of a Hydra multirun."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra = HydraConfig.get()
    return str(Path(hydra.sweep.dir).resolve()), int(hydra.job.num)


def _varied() -> str:
    """What a multirun sweeps, as typed (`model.ngrams=1,2 model.estimators=range(10,30,10)`):
    the overrides of the command line that hold more than one value."""
    sweeps = OverridesParser.create().parse_overrides(
        [arg for arg in sys.argv[1:] if "=" in arg and not arg.startswith("-")])
    return " ".join(o.input_line for o in sweeps if o.is_sweep_override())


def _run_name(conf) -> str | None:
    """`tracking.run_name`, else the job's overrides (`model.ngrams=1,model=reference`),
    unless the run exists already (`mlflow run`, an Azure ML trial job): it keeps the name
    its creator gave it."""
    if (conf.tracking.run_name or not HydraConfig.initialized()
            or os.environ.get("MLFLOW_RUN_ID")):
        return conf.tracking.run_name
    return redact(HydraConfig.get().job.override_dirname) or None


def run(cfg: DictConfig) -> dict:
    conf = to_object(cfg)
    import mlflow
    from mlflow.tracking import MlflowClient

    from faqtune.tracking.runs import configure, find_or_create_parent
    from faqtune.tracking.training_run import train_and_log

    configure(conf.tracking, conf.azure)
    multirun = _multirun()
    if multirun is None:
        return train_and_log(conf, run_name=_run_name(conf))
    group, job = multirun
    parent = find_or_create_parent(conf.tracking.experiment, MULTIRUN_TAG, group,
                                   run_name=f"multirun {_varied() or Path(group).name}")
    summary = train_and_log(conf, parent_run_id=parent, run_name=_run_name(conf) or f"job {job}",
                            tags={MULTIRUN_TAG: group, "faqtune.job": str(job)})
    if parent != mlflow.environment_variables.MLFLOW_RUN_ID.get():
        MlflowClient().set_terminated(parent)  # each job extends the parent's end time
    return {**summary, "parent_run_id": parent}


main = task(run)

if __name__ == "__main__":
    main()
