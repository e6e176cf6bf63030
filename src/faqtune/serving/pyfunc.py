"""The MLflow pyfunc "FAQ matcher": questions in, the top-k FAQs per question out.

The model is a pickle (joblib) of a scikit-learn estimator: load it only from a tracking
store or registry you trust.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from importlib import metadata
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

import faqtune
from faqtune.data.clean import clean_text
from faqtune.model.base import PairRanker
from faqtune.model.metrics import top_k

ESTIMATOR_FILE = "estimator.joblib"
FAQS_FILE = "faqs.parquet"
LIMITS_FILE = "limits.json"
OUTPUT_COLUMNS = ["question_index", "rank", "faq_id", "score", "answer"]
SERVING_PACKAGES = ("mlflow", "lightgbm", "scikit-learn", "numpy", "scipy", "pandas", "pyarrow",
                    "joblib")
POOL_PACKAGES = ("numba", "llvmlite")
# for models logged before training.max_question_chars / training.max_questions_per_request
MAX_QUESTION_CHARS = 20_000
MAX_QUESTIONS = 1_000


class FaqMatcherModel(mlflow.pyfunc.PythonModel):
    """Ranks every FAQ for each question in a DataFrame with a `question` column."""

    def load_context(self, context) -> None:
        self.estimator: PairRanker = joblib.load(context.artifacts["estimator"])
        if "cache_dir" in self.estimator.get_params():  # the training machine's folder
            self.estimator.set_params(cache_dir=None)
        self.faqs = pd.read_parquet(context.artifacts["faqs"])
        limits_file = context.artifacts.get("limits")
        limits = json.loads(Path(limits_file).read_text()) if limits_file else {}
        self.max_question_chars = limits.get("max_question_chars", MAX_QUESTION_CHARS)
        self.max_questions = limits.get("max_questions_per_request", MAX_QUESTIONS)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        if len(model_input) > self.max_questions:
            raise bad_request(f"{len(model_input)} questions in one request; at most "
                              f"{self.max_questions} are accepted "
                              "(training.max_questions_per_request): send them in batches.")
        questions = checked_questions(model_input, self.max_question_chars)
        k = (params or {}).get("top_k", 5)
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= 100:
            raise bad_request(f"top_k={k!r}: expected an integer from 1 to 100.")
        return rank_faqs(self.estimator, self.faqs, [clean_text(q) for q in questions], int(k))


def bad_request(message: str) -> MlflowException:
    """An input error: `mlflow models serve` answers it with HTTP 400 and the message."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def checked_questions(model_input: pd.DataFrame, max_chars: int) -> list[str]:
    """The questions, or a clear error for a missing column, an empty or an overlong one."""
    if "question" not in model_input:
        raise bad_request("The input needs a `question` column with one question per row.")
    questions = []
    for row, question in enumerate(model_input["question"]):
        if not isinstance(question, str) or not question.strip():
            raise bad_request(f"question {row} is {question!r}: expected a non-empty text.")
        if len(question) > max_chars:
            raise bad_request(f"question {row} has {len(question)} characters; at most "
                              f"{max_chars} are accepted (training.max_question_chars).")
        questions.append(question)
    return questions


def rank_faqs(estimator: PairRanker, faqs: pd.DataFrame, questions: list[str],
              k: int) -> pd.DataFrame:
    """Long table: for each question its k best FAQs with a 0..1 score, best first. Scored
    a block of questions at a time, keeping only each block's top k: memory stays at one
    block's scores against every FAQ, however many questions a request holds."""
    if not questions:
        return pd.DataFrame(columns=OUTPUT_COLUMNS)
    block = estimator.questions_per_block()
    best_blocks, score_blocks = [], []
    for start in range(0, len(questions), block):
        raw = estimator.decision_scores(questions[start:start + block])
        best_blocks.append(top_k(raw, k))
        score_blocks.append(np.take_along_axis(raw, best_blocks[-1], axis=1))
    best = np.vstack(best_blocks)
    scores = 1.0 / (1.0 + np.exp(-np.vstack(score_blocks)))
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


def model_description(model_name: str, n_faqs: int, top_k_default: int, data_hash: str) -> str:
    """The logged model's description (MLflow's `mlflow.note.content` tag): what it answers
    and how to call it, for a reader who finds it in the UI."""
    return (f"**FAQ matcher** ({model_name} model) over {n_faqs} FAQs, trained on data set "
            f"`{data_hash}`.\n\nInput: a column `question` (one question per row). Output: "
            f"per question, the {top_k_default} best-matching FAQs (`top_k` parameter) as rows "
            f"of {', '.join(f'`{c}`' for c in OUTPUT_COLUMNS)}; rank 1 is the best match.")


def _requirements(estimator: PairRanker) -> list[str]:
    """What serving imports, pinned to the versions the model was trained with: a pickled
    scikit-learn or LightGBM model is only safe to load under the same versions, and an
    encoder's vectors only match the trained ones under the same runtime and weights."""
    from faqtune.features.encoder import serving_packages

    names = SERVING_PACKAGES + serving_packages(getattr(estimator, "encoder_", None))
    if getattr(estimator, "pool", 0):  # a pool's pair features run numba's compiled kernel
        names += POOL_PACKAGES
    return [f"{name}=={metadata.version(name)}" for name in names]


@contextlib.contextmanager
def matcher_model(estimator: PairRanker, faqs: pd.DataFrame, top_k_default: int,
                  example_question: str, max_question_chars: int = MAX_QUESTION_CHARS,
                  max_questions: int = MAX_QUESTIONS):
    """Arguments for `mlflow.pyfunc.save_model` / `log_model`, valid inside the block.

    faqtune's own code goes into the model, so it loads wherever its requirements are met.
    """
    with tempfile.TemporaryDirectory() as scratch:
        estimator_path = Path(scratch) / ESTIMATOR_FILE
        faqs_path = Path(scratch) / FAQS_FILE
        limits_path = Path(scratch) / LIMITS_FILE
        limits_path.write_text(json.dumps({"max_question_chars": max_question_chars,
                                           "max_questions_per_request": max_questions}))
        joblib.dump(estimator, estimator_path)
        readable = "answer_text" if "answer_text" in faqs else "answer"  # format 1: cleaned only
        faqs[["faq_id", readable]].rename(columns={readable: "answer"}).to_parquet(
            faqs_path, index=False)
        yield {
            "python_model": str(Path(__file__).with_name("model_code.py")),
            "artifacts": {"estimator": str(estimator_path), "faqs": str(faqs_path),
                          "limits": str(limits_path)},
            "code_paths": [str(Path(faqtune.__file__).parent)],
            "signature": signature(top_k_default),
            "input_example": pd.DataFrame({"question": [example_question]}),
            "pip_requirements": _requirements(estimator),
        }


def model_size_mb(model_kwargs: dict) -> float:
    return Path(model_kwargs["artifacts"]["estimator"]).stat().st_size / 2**20


def model_bytes(model_kwargs: dict) -> int:
    """What the logged model's files take, short of MLflow's few KB of metadata: its
    artifacts, its model code and faqtune's own code."""
    files = [Path(path) for path in model_kwargs["artifacts"].values()]
    files.append(Path(model_kwargs["python_model"]))
    for folder in model_kwargs["code_paths"]:
        files.extend(path for path in Path(folder).rglob("*") if path.is_file())
    return sum(path.stat().st_size for path in files)
