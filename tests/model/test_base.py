"""What both models share (`faqtune.model.base`): scikit-learn conventions, pickling, and
pairwise probabilities that agree with the catalogue ranking."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from faqtune.config import MODEL_SCHEMAS
from faqtune.model.factory import build_model


@pytest.mark.parametrize("name", ["reference", "matcher"])
def test_models_follow_scikit_learn_conventions(small_data, name):
    cfg = MODEL_SCHEMAS[name](estimators=20, match=5)
    model = build_model(cfg)
    assert clone(model).get_params() == model.get_params()
    assert not hasattr(model, "faqs_"), "no work in __init__"
    pairs = small_data.pairs(cfg.match)
    model.fit(pairs[["Text_x", "Text_y"]], pairs["label"], faqs=list(small_data.faqs["text"]))
    restored = pickle.loads(pickle.dumps(model))
    test = small_data.split("test")
    assert np.allclose(restored.decision_scores(list(test["text"])),
                       model.decision_scores(list(test["text"])))
    # pairwise probabilities agree with the catalogue ranking for the same pairs
    question = test["text"].iloc[0]
    pair_frame = pd.DataFrame({"Text_x": [question] * len(model.faqs_), "Text_y": model.faqs_})
    proba = model.predict_proba(pair_frame)[:, 1]
    assert np.argmax(proba) == np.argmax(model.decision_scores([question])[0])
    assert proba.shape == (len(model.faqs_),) and ((0 <= proba) & (proba <= 1)).all()
