"""`python -m faqtune.prepare`: raw data from any source into a prepared data set."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from faqtune.cli import task
from faqtune.config import to_object


def run(cfg: DictConfig) -> dict:
    conf = to_object(cfg)
    from faqtune.data.prepare import prepare

    prepared, path, reused = prepare(conf.data, Path(conf.paths.cache))
    return {"path": str(path), "hash": prepared.data_hash, "reused": reused,
            **prepared.counts()}


main = task(run)

if __name__ == "__main__":
    main()
