"""The prepared data set (`faqtune.data.dataset`): training pairs, a folder others can read,
and a clear error for an incomplete one. A name that starts with a case id (`test_B21_...`)
is a case of the reliability probe (docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from faqtune.config import DataConfig, SyntheticConfig, to_object
from faqtune.data import synthetic
from faqtune.data.dataset import PreparedData
from faqtune.data.prepare import build, prepare
from faqtune.errors import DataError
from tests.helpers import TINY_DATA


def test_match_limits_pairs_per_question():
    cfg = DataConfig(synthetic=SyntheticConfig(originals=20), min_dupes=3, match=8)
    prepared = build(synthetic.generate(cfg.synthetic, cfg.seed), cfg)
    pairs = prepared.pairs(match=3)
    assert len(pairs) == 3 * prepared.counts()["train"]
    assert pairs["label"].sum() == prepared.counts()["train"]


def test_B21_an_incomplete_prepared_data_set_is_named(make_cfg, tmp_path):
    import shutil

    conf = to_object(make_cfg(*TINY_DATA))
    _, path, _ = prepare(conf.data, Path(conf.paths.cache))
    truncated, missing = tmp_path / "truncated", tmp_path / "missing"
    shutil.copytree(path, truncated)
    shutil.copytree(path, missing)
    (truncated / "questions.parquet").write_bytes((path / "questions.parquet").read_bytes()[:100])
    (missing / "train_pairs.parquet").unlink()
    for folder in (truncated, missing):
        with pytest.raises(DataError, match="is not a complete prepared data set"):
            PreparedData.load(folder)


def test_D6_prepared_data_follows_the_umask(make_cfg):
    import os
    import stat

    previous = os.umask(0o022)
    try:
        conf = to_object(make_cfg(*TINY_DATA))
        _, path, _ = prepare(conf.data, Path(conf.paths.cache))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
