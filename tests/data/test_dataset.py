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


def _tampered(path: Path, folder: Path, table: str, change) -> Path:
    """A copy of the prepared set at `path` with one table changed and the manifest kept."""
    import shutil

    import pandas as pd

    shutil.copytree(path, folder)
    if table == "manifest":
        (folder / "manifest.json").write_text(change((folder / "manifest.json").read_text()))
    else:
        frame = pd.read_parquet(folder / f"{table}.parquet")
        change(frame).to_parquet(folder / f"{table}.parquet", index=False)
    return folder


def _negative_pairs(frame):
    frame.loc[frame["label"] == 1, "faq_row"] = -1
    return frame


def _relabelled(frame):
    frame.loc[frame.index[:3], "faq_row"] = (frame["faq_row"].iloc[:3] + 1) % 2
    return frame


# The third probe's tamper variants (its A1 and C1), each with what the error names
TAMPERED = {
    "v1 a question moved to another FAQ": ("questions", _relabelled, "its content hash is"),
    "v2 a FAQ row out of range": ("questions", lambda f: f.assign(
        faq_row=f["faq_row"].where(f.index != 0, 1_000_000)), "questions.faq_row holds row"),
    "v3 negative pair rows": ("train_pairs", _negative_pairs,
                              r"train_pairs.faq_row holds row numbers outside 0\.\."),
    "v4 manifest without its hash": ("manifest", lambda t: t.replace('"hash"', '"hush"'),
                                     "manifest.json has no content hash"),
    "v5 questions without split": ("questions", lambda f: f.drop(columns="split"),
                                   r"questions.parquet lacks the column\(s\) split"),
    "v6 FAQ texts all null": ("faqs", lambda f: f.assign(text=None),
                              "faqs.parquet has a text that is missing"),
    "v7 manifest is a list": ("manifest", lambda t: "[1, 2]", "manifest.json has no content"),
    "v8 no tune questions": ("questions", lambda f: f.assign(
        split=f["split"].replace("tune", "train")), "the tune split is empty"),
}


@pytest.mark.parametrize("variant", TAMPERED)
def test_a_changed_or_damaged_prepared_set_is_refused_naming_the_folder(variant, make_cfg,
                                                                       tmp_path):
    """The third probe's A1 (a tampered set trained silently under the original hash) and
    C1 (a damaged one ended in "faqtune bug"), each variant of its tamper script."""
    conf = to_object(make_cfg(*TINY_DATA))
    _, path, _ = prepare(conf.data, Path(conf.paths.cache))
    PreparedData.load(path)  # the original is sound
    table, change, named = TAMPERED[variant]
    folder = _tampered(path, tmp_path / "copy", table, change)
    with pytest.raises(DataError, match=rf"{folder} is not the prepared data set its manifest "
                                        rf"describes: {named}"):
        PreparedData.load(folder)


def test_a_tampered_set_stops_the_task_with_exit_2_before_any_run(make_cfg, tmp_path):
    from tests.helpers import run_task

    conf = to_object(make_cfg(*TINY_DATA))
    _, path, _ = prepare(conf.data, Path(conf.paths.cache))
    folder = _tampered(path, tmp_path / "copy", "train_pairs", _negative_pairs)
    proc = run_task("train", f"data.prepared={folder}", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                    cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"error: {folder} is not the prepared data set its manifest describes" in proc.stderr
    assert "Traceback" not in proc.stderr
    if (tmp_path / "m.db").exists():  # the store may exist; no run was started in it
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
        experiments = [e.experiment_id for e in client.search_experiments()]
        assert not client.search_runs(experiments)
