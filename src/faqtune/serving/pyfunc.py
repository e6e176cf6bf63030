"""The MLflow pyfunc "FAQ matcher": questions in, the top-k FAQs per question out.

The model is a pickle (joblib) of a scikit-learn estimator: load it only from a tracking
store or registry you trust.
"""

from __future__ import annotations

import contextlib
import tempfile
from importlib import metadata
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

import faqtune
from faqtune.data.clean import clean_text
from faqtune.errors import FaqtuneError
from faqtune.model.base import PairRanker
from faqtune.model.metrics import top_k

ESTIMATOR_FILE = "estimator.joblib"
FAQS_FILE = "faqs.parquet"
OUTPUT_COLUMNS = ["question_index", "rank", "faq_id", "score", "answer"]


class FaqMatcherModel(mlflow.pyfunc.PythonModel):
    """Ranks every FAQ for each question in a DataFrame with a `question` column."""

    def load_context(self, context) -> None:
        self.estimator: PairRanker = joblib.load(context.artifacts["estimator"])
        self.faqs = pd.read_parquet(context.artifacts["faqs"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        if "question" not in model_input:
            raise FaqtuneError("The input needs a `question` column with one question per row.")
        k = int((params or {}).get("top_k", 5))
        questions = [clean_text(str(q)) for q in model_input["question"]]
        return rank_faqs(self.estimator, self.faqs, questions, k)


def rank_faqs(estimator: PairRanker, faqs: pd.DataFrame, questions: list[str],
              k: int) -> pd.DataFrame:
    """Long table: for each question its k best FAQs with a 0..1 score, best first."""
    if not questions:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    raw = estimator.decision_scores(questions)
    best = top_k(raw, k)
    scores = 1.0 / (1.0 + np.exp(-np.take_along_axis(raw, best, axis=1)))
    n, k = best.shape
    return pd.DataFrame({
        "question_index": np.repeat(np.arange(n), k),
        "rank": np.tile(np.arange(1, k + 1), n),
        "faq_id": faqs["faq_id"].to_numpy()[best.ravel()],
        "score": scores.ravel(),
        "answer": faqs["answer"].to_numpy()[best.ravel()],
    })


def signature(top_k_default: int) -> ModelSignature:
    return ModelSignature(
        inputs=Schema([ColSpec("string", "question")]),
        outputs=Schema([ColSpec("long", "question_index"), ColSpec("long", "rank"),
                        ColSpec("string", "faq_id"), ColSpec("double", "score"),
                        ColSpec("string", "answer", required=False)]),
        params=ParamSchema([ParamSpec("top_k", "long", top_k_default)]),
    )


def _requirements() -> list[str]:
    """The runtime requirements faqtune itself declares, so serving envs match training."""
    return [r for r in metadata.requires("faqtune") or [] if "extra ==" not in r]


@contextlib.contextmanager
def matcher_model(estimator: PairRanker, faqs: pd.DataFrame, top_k_default: int,
                  example_question: str):
    """Arguments for `mlflow.pyfunc.save_model` / `log_model`, valid inside the block.

    faqtune's own code goes into the model, so it loads wherever its requirements are met.
    """
    with tempfile.TemporaryDirectory() as scratch:
        estimator_path = Path(scratch) / ESTIMATOR_FILE
        faqs_path = Path(scratch) / FAQS_FILE
        joblib.dump(estimator, estimator_path)
        faqs[["faq_id", "answer"]].to_parquet(faqs_path, index=False)
        yield {
            "python_model": str(Path(__file__).with_name("model_code.py")),
            "artifacts": {"estimator": str(estimator_path), "faqs": str(faqs_path)},
            "code_paths": [str(Path(faqtune.__file__).parent)],
            "signature": signature(top_k_default),
            "input_example": pd.DataFrame({"question": [example_question]}),
            "pip_requirements": _requirements(),
        }


def model_size_mb(model_kwargs: dict) -> float:
    return Path(model_kwargs["artifacts"]["estimator"]).stat().st_size / 2**20
