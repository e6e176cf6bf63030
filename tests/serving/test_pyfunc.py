"""The served model (`faqtune.serving.pyfunc`): what it answers, what it refuses, and the
same over HTTP from `mlflow models serve`. A question it refuses is probe case C9
(docs/reliability.md)."""

from __future__ import annotations

import json
import os
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
from tests.helpers import TINY_RUN, VENV_PATH, free_port


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
def test_mlflow_models_serve_answers_a_question_on_localhost(make_cfg, store, tmp_path):
    summary = train.run(make_cfg(*TINY_RUN, f"tracking.uri={store}"))
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
