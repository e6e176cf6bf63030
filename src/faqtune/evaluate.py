"""`python -m faqtune.evaluate model_uri=...`: score the test split and log it to the run."""

from __future__ import annotations

from omegaconf import DictConfig

from faqtune.cli import task
from faqtune.config import to_object
from faqtune.errors import ConfigError


def run(cfg: DictConfig) -> dict:
    conf = to_object(cfg)
    if not conf.model_uri:
        raise ConfigError("Missing model_uri: give runs:/<run_id>/faqtune-<model>, "
                          "models:/<name>/<version> or models:/<name>@champion.")
    from faqtune.tracking.evaluation import evaluate_model
    from faqtune.tracking.runs import configure

    configure(conf.tracking, conf.azure)
    return evaluate_model(conf, conf.model_uri)


main = task(run)

if __name__ == "__main__":
    main()
