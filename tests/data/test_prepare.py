"""Preparation (`faqtune.data.prepare`): split invariants, reuse of a prepared data set and
a clear error for a data path that cannot be read. A name that starts with a case id
(`test_B3_...`) is a case of the reliability probe (docs/reliability.md)."""

from __future__ import annotations

import pytest

from faqtune.config import DataConfig, SyntheticConfig, to_object
from faqtune.data import synthetic
from faqtune.data.prepare import build, prepare
from faqtune.errors import DataError
from tests.helpers import TINY_DATA, assert_split_invariants


def test_synthetic_preparation_keeps_the_split_invariants(make_cfg):
    conf = to_object(make_cfg(*TINY_DATA))
    prepared = build(synthetic.generate(conf.data.synthetic, conf.data.seed), conf.data)
    assert_split_invariants(prepared)
    counts = prepared.counts()
    assert counts["train_pairs"] == counts["train"] * min(conf.data.match, counts["faqs"])
    assert prepared.faqs["answer"].notna().all()
    assert not prepared.questions["text"].str.contains("<").any(), "HTML is cleaned"


def test_prepare_reuses_its_result_and_ignores_a_partial_one(tmp_path):
    cfg = DataConfig(synthetic=SyntheticConfig(originals=10), min_dupes=3)
    first, path, reused = prepare(cfg, tmp_path)
    assert not reused
    partial = path.parent / f".{path.name}.tmp-crashed"
    partial.mkdir()
    (partial / "faqs.parquet").write_bytes(b"half")
    again, path2, reused = prepare(cfg, tmp_path)
    assert reused and path2 == path and again.data_hash == first.data_hash
    other, path3, _ = prepare(DataConfig(synthetic=SyntheticConfig(originals=10), min_dupes=3,
                                         seed=1), tmp_path)
    assert path3 != path and other.data_hash != first.data_hash


def test_B3_a_symlink_loop_is_named(make_cfg, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    conf = to_object(make_cfg("data=reference_tsv", f"data.path={loop}"))
    with pytest.raises(DataError, match="cannot be read"):
        prepare(conf.data, tmp_path / "cache")

