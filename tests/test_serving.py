"""What the served model answers, and what it refuses, as `mlflow models serve` sees it."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from faqtune.config import DataConfig, MatcherConfig, SyntheticConfig, TrainingConfig
from faqtune.data import synthetic
from faqtune.data.clean import clean_text, readable_text, strip_duplicate_notice
from faqtune.data.prepare import build
from faqtune.model.training import train_model
from faqtune.serving.pyfunc import FaqMatcherModel

ANSWER = ('<p>Use <code>Array.from(new Set(a))</code> to <b>dedupe</b>:</p>'
          '<pre><code>const b = [...new Set(a)];\n  console.log(b);\n</code></pre>'
          '<ul><li>fast</li><li>short &amp; clear</li></ul><p>See <a href="https://x">MDN</a>.</p>')


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
    return model, data


def test_the_answer_is_readable_text_with_its_code_kept():
    text = readable_text(ANSWER)
    assert text.startswith("Use `Array.from(new Set(a))` to dedupe:")
    assert "```\nconst b = [...new Set(a)];\n  console.log(b);\n```" in text
    assert "- fast\n- short & clear" in text and text.endswith("See MDN.")
    assert "const b" not in clean_text(ANSWER), "the model still reads code-free text"


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
])
def test_bad_requests_are_refused_with_a_message(served, frame, params, message):
    model, _ = served
    with pytest.raises(MlflowException, match=message) as caught:
        model.predict(None, frame, params)
    assert caught.value.get_http_status_code() == 400


@pytest.mark.parametrize("hostile", [
    "<pre>" * 200_000, "<" * 1_000_000, "<a" + "a" * 1_000_000, "<a href=x>" * 100_000,
    "<blockquote><p><strong>Possible Duplicate:</strong>" * 20_000, "&" * 1_000_000,
])
def test_a_hostile_megabyte_is_cleaned_in_linear_time(hostile):
    """A regression guard for the quadratic regexes (9 minutes for 1 MB of `<pre>`): the
    bound is generous; `bench/` measures the real figure."""
    started = time.perf_counter()
    clean_text(hostile), readable_text(hostile), strip_duplicate_notice(hostile)
    assert time.perf_counter() - started < 10


def test_unclosed_blocks_keep_their_text_as_before():
    assert clean_text("<p>see <pre>code without end") == "see code without end"
    assert clean_text("a <a href=x>link") == "a link"
