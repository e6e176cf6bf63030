"""What a training run records (`faqtune.tracking.record`): the kept round's metrics as the
latest, and only the params that apply to the data source and model."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from faqtune import train
from tests.helpers import HAS_SEMANTIC, TINY_DATA


def test_early_stopping_leaves_the_kept_rounds_metrics_as_the_latest(make_cfg, store):
    summary = train.run(make_cfg(*TINY_DATA, "model.estimators=300", "training.period=5",
                                 "training.early_stopping_periods=2", "training.log_model=false",
                                 "model.learning_rate=0.5", f"tracking.uri={store}"))
    client = MlflowClient(store)
    run = client.get_run(summary["run_id"])
    history = client.get_metric_history(run.info.run_id, "tune_mrr")
    steps = sorted({m.step for m in history})
    assert steps[-1] > summary["best_round"], "stopped after a worse period"
    kept = [m.value for m in history if m.step == summary["best_round"]][0]
    assert run.data.metrics["tune_mrr"] == kept == summary["tune_mrr"]
    assert run.data.params["training.early_stopping_metric"] == "tune_mrr"


def test_params_hold_only_the_settings_the_source_and_model_use(make_cfg, store, tmp_path):
    faqs, questions = tmp_path / "faqs.csv", tmp_path / "questions.csv"
    faqs.write_text("id,question,answer\n" + "".join(
        f"{i},how do I reset password number {i} on the portal,answer {i}\n" for i in range(4)))
    questions.write_text("id,faq_id,text\n" + "".join(
        f"{100 + 4 * j + i},{i},reset my password {i} portal variant {j}\n"
        for i in range(4) for j in range(12)))
    summary = train.run(make_cfg("data=table", f"data.path={tmp_path}", "data.min_text=0",
                                 "data.min_dupes=8", "data.match=3", "model=reference",
                                 "model.estimators=10", "model.match=3",
                                 "training.log_model=false", f"tracking.uri={store}"))
    params = MlflowClient(store).get_run(summary["run_id"]).data.params
    assert params["data.table.faqs"] == "faqs.csv"
    assert not [k for k in params if k.startswith(("data.synthetic.", "data.download."))]
    assert "data.max_bytes" not in params and "model.n_jobs" not in params, "limits, speed"
    assert "None" not in params.values(), "unset settings (data.prepared, data.tag) are no params"
    assert "model.learning_rate" not in params, "the reference has no learning rate"


def test_on_azure_ml_runs_link_no_data_set_and_say_so_once(caplog):
    """Azure ML's MLflow documents no datasets API (F4 of the Azure review): on azureml://
    the datasets are not sent, with one warning per process; everywhere else they are."""
    import mlflow

    from faqtune.tracking.record import _warn_no_datasets, datasets_logged

    _warn_no_datasets.cache_clear()
    mlflow.set_tracking_uri("sqlite:///unused.db")
    assert datasets_logged()
    mlflow.set_tracking_uri("azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/x")
    with caplog.at_level("WARNING", logger="faqtune.tracking.record"):
        assert not datasets_logged() and not datasets_logged()
    assert [r.message for r in caplog.records].count(
        "Azure ML's MLflow has no datasets API: runs name their data by the data.hash param, "
        "without linked data sets") == 1


def test_the_encoder_and_its_identity_are_params_of_the_run(make_cfg):
    import pytest

    from faqtune.config import to_object
    from faqtune.tracking.record import run_params

    plain = run_params(to_object(make_cfg()), "abc")
    assert plain["model.encoder"] == "none" and "model.encoder_identity" not in plain
    if not HAS_SEMANTIC:
        pytest.skip("the semantic extra is not installed")
    semantic = run_params(to_object(make_cfg("experiment=semantic")), "abc")
    assert semantic["model.encoder"] == "minilm"
    assert semantic["model.encoder_max_tokens"] == "256"
    assert len(semantic["model.encoder_identity"]) == 16
    assert {k: v for k, v in semantic.items() if not k.startswith("model.encoder")} == {
        k: v for k, v in plain.items() if not k.startswith("model.encoder")}


def test_the_models_input_example_is_a_faq_text_that_serving_accepts(make_cfg, store, caplog):
    """Third probe, D2: the example was the first test question, uncut: a long one was
    refused by the model it illustrates, and it copied a user's question into the model."""
    import mlflow

    from faqtune.config import to_object
    from faqtune.data.prepare import prepare

    cfg = make_cfg(*TINY_DATA, "model.estimators=5", "training.max_question_chars=25",
                   f"tracking.uri={store}")
    with caplog.at_level("WARNING"):
        summary = train.run(cfg)
    example = mlflow.models.Model.load(summary["model_uri"]).load_input_example(
        mlflow.artifacts.download_artifacts(summary["model_uri"]))
    text = example["question"].iloc[0]
    conf = to_object(cfg)
    data, _, _ = prepare(conf.data, Path(conf.paths.cache))
    assert text == data.faqs["text"].iloc[0][:25] and len(text) == 25
    assert text not in set(data.questions["text"])
    assert "Failed to validate serving input example" not in caplog.text
