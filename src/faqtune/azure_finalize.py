"""What the finalize job runs on an Azure ML cluster (`backend.finalize=cluster`): the shared
finalize step (retrain the best trial with `sweep.final_estimators`, test, register) for a
finished sweep job.

`python -m faqtune.azure_finalize model=matcher model.ngrams=2 ... --data-prepared /mnt/x
--parent <sweep job name> --trial 7`
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig


def split_job_arguments(argv: list[str]) -> tuple[list[str], str, int]:
    """(the rest, --parent, --trial): the sweep this job finalizes and its best trial."""
    from faqtune.errors import ConfigError

    rest, found, i = [], {}, 0
    while i < len(argv):
        if argv[i] in ("--parent", "--trial") and i + 1 < len(argv):
            found[argv[i][2:]] = argv[i + 1]
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    if set(found) != {"parent", "trial"} or not found["trial"].isdigit():
        raise ConfigError("azure_finalize needs --parent <sweep job name> and --trial <number>.")
    return rest, found["parent"], int(found["trial"])


def finalize_sweep(cfg: DictConfig, parent: str, trial: int) -> dict:
    from faqtune.config import to_object
    from faqtune.data.dataset import PreparedData
    from faqtune.tracking.locks import NoLock
    from faqtune.tracking.runs import configure
    from faqtune.tuning.finalize import finalize
    from faqtune.tuning.outcome import SweepOutcome

    conf = to_object(cfg)
    configure(conf.tracking, conf.azure)
    data = PreparedData.load(conf.data.prepared)
    outcome = SweepOutcome(parent, complete=1, best_trial=trial, data_hash=data.data_hash)
    # one job per sweep; a rerun finds the earlier final run in MLflow and stops there
    return {"sweep_job": parent, **finalize(conf, outcome, NoLock())}


def main() -> None:
    from faqtune.cli import task
    from faqtune.tuning.azure_common import parse_trial_arguments

    rest, parent, trial = split_job_arguments(sys.argv[1:])
    model = next((a.split("=", 1)[1] for a in rest if a.startswith("model=")), "matcher")
    sys.argv = [sys.argv[0], *parse_trial_arguments(rest, model)]
    task(lambda cfg: finalize_sweep(cfg, parent, trial))()


if __name__ == "__main__":
    main()
