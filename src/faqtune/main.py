"""`python -m faqtune.main` (and `make demo`): prepare, sweep, retrain the best, test, register."""

from __future__ import annotations

from omegaconf import DictConfig

from faqtune.cli import task
from faqtune.config import to_object
from faqtune.sweep import sweep


def run(cfg: DictConfig) -> dict:
    return sweep(to_object(cfg))


main = task(run)

if __name__ == "__main__":
    main()
