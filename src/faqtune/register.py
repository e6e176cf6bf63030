"""`python -m faqtune.register run_id=...`: register a run's model, evaluating it if needed."""

from __future__ import annotations

from omegaconf import DictConfig

from faqtune.cli import task
from faqtune.config import to_object
from faqtune.errors import ConfigError


def run(cfg: DictConfig) -> dict:
    conf = to_object(cfg)
    if not conf.run_id:
        raise ConfigError("Missing run_id: name the training run whose model to register.")
    import mlflow

    from faqtune.tracking.evaluation import evaluate_model
    from faqtune.tracking.registry import model_uri_of, register
    from faqtune.tracking.runs import configure

    configure(conf.tracking, conf.azure)
    model_uri = model_uri_of(conf.run_id)  # also checks that the run exists
    if conf.registry.metric not in mlflow.get_run(conf.run_id).data.metrics:
        evaluate_model(conf, model_uri)
    return {"run_id": conf.run_id, **register(conf.run_id, conf.registry)}


main = task(run)

if __name__ == "__main__":
    main()
