"""A small prepared synthetic data set for the model tests."""

from __future__ import annotations

import pytest

from faqtune.config import DataConfig, SyntheticConfig
from faqtune.data import synthetic
from faqtune.data.prepare import build


@pytest.fixture(scope="module")
def small_data():
    cfg = DataConfig(synthetic=SyntheticConfig(originals=20, dupes_median=12), min_dupes=6,
                     match=8)
    return build(synthetic.generate(cfg.synthetic, cfg.seed), cfg)
