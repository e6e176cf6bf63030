"""Preparation from every source, its invariants, and clear errors for bad input."""

from __future__ import annotations

import gzip
import html
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import py7zr
import pytest

from faqtune.config import DataConfig, SyntheticConfig, TableConfig, to_object
from faqtune.data import synthetic
from faqtune.data.dataset import PreparedData
from faqtune.data.prepare import build, prepare
from faqtune.errors import DataError
from tests.conftest import CS_DATA, TINY_DATA, last_json, needs_cs_data, run_task


def assert_split_invariants(p: PreparedData) -> None:
    faq_rows = set(range(len(p.faqs)))
    assert set(p.split("tune")["faq_row"]) == faq_rows, "every FAQ must be in tune"
    assert set(p.split("test")["faq_row"]) == faq_rows, "every FAQ must be in test"
    split_of = p.questions["split"].to_numpy()
    assert (split_of[p.train_pairs["question_row"]] == "train").all(), \
        "only training questions may appear in training pairs"
    positives = p.train_pairs[p.train_pairs["label"] == 1]
    assert (positives.groupby("question_row").size() == 1).all()
    truth = p.questions["faq_row"].to_numpy()[positives["question_row"]]
    assert (truth == positives["faq_row"].to_numpy()).all()
    negatives = p.train_pairs[p.train_pairs["label"] == 0]
    assert (truth_of_negative := p.questions["faq_row"].to_numpy()[negatives["question_row"]]
            ).size == 0 or (truth_of_negative != negatives["faq_row"].to_numpy()).all()
    assert not p.train_pairs.duplicated(["question_row", "faq_row"]).any()


def test_synthetic_data_is_deterministic_skewed_and_shares_vocabulary():
    cfg = SyntheticConfig()
    first, again = synthetic.generate(cfg, seed=7), synthetic.generate(cfg, seed=7)
    pd.testing.assert_frame_equal(first.duplicates, again.duplicates)
    assert not first.duplicates.equals(synthetic.generate(cfg, seed=8).duplicates)
    sizes = first.duplicates["original_id"].value_counts()
    assert sizes.max() >= 4 * sizes.median(), "a few FAQs should have many duplicates"
    assert (sizes <= sizes.median()).mean() >= 0.5
    assert first.duplicates["text"].str.contains("<pre><code>").any(), "Stack Overflow HTML"
    words = [set(re.findall(r"[a-z]+", t.lower().split(".")[0])) for t in first.originals["text"]]
    shared = [len(w & set().union(*(o for o in words if o is not w))) for w in words]
    assert min(shared) >= 3, "every FAQ title shares words with other FAQs"


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


def test_match_limits_pairs_per_question():
    cfg = DataConfig(synthetic=SyntheticConfig(originals=20), min_dupes=3, match=8)
    prepared = build(synthetic.generate(cfg.synthetic, cfg.seed), cfg)
    pairs = prepared.pairs(match=3)
    assert len(pairs) == 3 * prepared.counts()["train"]
    assert pairs["label"].sum() == prepared.counts()["train"]


@needs_cs_data()
def test_cs_stackexchange_reference_tsv_without_answers(tmp_path):
    cfg = DataConfig(source="reference_tsv", path=str(CS_DATA), min_dupes=2, min_text=0)
    prepared, _, _ = prepare(cfg, tmp_path)
    assert_split_invariants(prepared)
    steps = {s["step"]: s for s in prepared.manifest["filters"]}
    assert steps["clean"] == {"step": "clean", "faqs": 137, "duplicates": 210}
    # 3 originals are themselves duplicates (README): integrity drops them as duplicates
    assert steps["integrity"]["duplicates"] == 207
    # README: 23 originals have >= 2 duplicates; one of them loses a duplicate to integrity
    assert 20 <= len(prepared.faqs) <= 23
    assert prepared.faqs["answer"].isna().all(), "no ans.tsv.gz: FAQs kept without answers"


def _write_dump(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = html.escape("<p>" + "how do closures in loops capture the variable " * 4 + "</p>")
    posts = ['<?xml version="1.0" encoding="utf-8"?>', "<posts>"]
    for q in range(1, 4):  # originals 1..3, tagged; 3 is tagged python and must be dropped
        tags = "&lt;python&gt;" if q == 3 else "&lt;javascript&gt;&lt;closures&gt;"
        posts.append(f'<row Id="{q}" PostTypeId="1" AcceptedAnswerId="{100 + q}" '
                     f'Title="Original {q}" Body="{body}" Tags="{tags}" />')
        posts.append(f'<row Id="{100 + q}" PostTypeId="2" ParentId="{q}" '
                     f'Body="&lt;p&gt;answer {q}&lt;/p&gt;" />')
    links = ['<?xml version="1.0" encoding="utf-8"?>', "<postlinks>"]
    notice = ("&lt;blockquote&gt;&lt;p&gt;&lt;strong&gt;Possible Duplicate:&lt;/strong&gt;"
              "&lt;a href=&quot;/q/1&quot;&gt;Original one&lt;/a&gt;&lt;/p&gt;&lt;/blockquote&gt;")
    for d in range(10, 25):
        original = 1 + d % 3
        posts.append(f'<row Id="{d}" PostTypeId="1" Title="Dup {d}" Body="{notice}{body}" '
                     f'Tags="|javascript|" />')
        links.append(f'<row Id="{d}" PostId="{d}" RelatedPostId="{original}" LinkTypeId="3" />')
    links.append('<row Id="99" PostId="10" RelatedPostId="2" LinkTypeId="1" />')  # not a dup
    (folder / "Posts.xml").write_text("\n".join(posts + ["</posts>"]))
    (folder / "PostLinks.xml").write_text("\n".join(links + ["</postlinks>"]))


@pytest.mark.parametrize("as_archive", [False, True])
def test_stackexchange_dump_folder_and_7z(tmp_path, as_archive):
    dump = tmp_path / "site"
    _write_dump(dump)
    path = dump
    if as_archive:
        path = tmp_path / "site.7z"
        with py7zr.SevenZipFile(path, "w") as archive:
            archive.writeall(dump, arcname="site")
    cfg = DataConfig(source="stackexchange", path=str(path), tag="javascript", min_dupes=3,
                     min_text=50)
    prepared, _, _ = prepare(cfg, tmp_path / "cache")
    assert sorted(prepared.faqs["faq_id"]) == ["1", "2"], "the python-tagged FAQ is dropped"
    assert len(prepared.questions) == 10
    assert sorted(prepared.faqs["answer"]) == ["answer 1", "answer 2"]
    assert not prepared.questions["text"].str.contains("possible duplicate").any()
    assert_split_invariants(prepared)
    assert not any((tmp_path / "cache").glob("extract-*")), "extraction scratch removed"


def _write_table(folder: Path, suffix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    faqs = pd.DataFrame({"id": ["a", "b"], "question": ["How to reset password", "Opening hours"],
                         "answer": ["Use the link", "9 to 5"]})
    questions = pd.DataFrame({
        "id": [f"q{i}" for i in range(8)],
        "faq_id": ["a", "b"] * 4,
        "text": ["forgot my password", "when are you open"] * 4,
    })
    for name, frame in (("faqs", faqs), ("questions", questions)):
        if suffix == ".csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_source(tmp_path, suffix):
    _write_table(tmp_path / "faq", suffix)
    cfg = DataConfig(source="table", path=str(tmp_path / "faq"), min_text=0, min_dupes=2,
                     table=TableConfig(faqs=f"faqs{suffix}", questions=f"questions{suffix}"))
    prepared, _, _ = prepare(cfg, tmp_path / "cache")
    assert prepared.counts()["faqs"] == 2 and len(prepared.questions) == 8
    assert dict(zip(prepared.faqs["faq_id"], prepared.faqs["answer"])) == {
        "a": "use the link", "b": "9 to 5"}
    assert_split_invariants(prepared)


# ---- bad input -----------------------------------------------------------------------

def _tsv(folder: Path, name: str, lines: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / name, "wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")


def _good_question(i: int, answer: str) -> bytes:
    return f"{i}\t{answer}\tTitle {i}. <p>{'text ' * 40}</p>\t2015-01-01".encode()


def _reference_folder(tmp_path: Path, dup_lines: list[bytes]) -> Path:
    folder = tmp_path / "ref"
    _tsv(folder, "orig-q.tsv.gz", [_good_question(1, "a1"), _good_question(2, "a2")])
    _tsv(folder, "dup-q.tsv.gz", dup_lines)
    return folder


@pytest.mark.parametrize("dup_lines, expected", [
    ([_good_question(10, "a1"), b"11\ta1\tonly three fields"],
     r"dup-q\.tsv\.gz, line 2: 3 tab-separated fields, expected 4"),
    ([_good_question(10, "a1"), b"11\ta1\tcaf\xe9 latin-1\t2015"],
     r"dup-q\.tsv\.gz, line 2: bytes that are not valid utf-8.*data\.encoding"),
    ([_good_question(10, "a9"), _good_question(11, "a9")],
     r"No data left after the integrity filter"),
])
def test_reference_tsv_errors_name_file_and_line(tmp_path, dup_lines, expected):
    cfg = DataConfig(source="reference_tsv", path=str(_reference_folder(tmp_path, dup_lines)),
                     min_dupes=2)
    with pytest.raises(DataError, match=expected):
        prepare(cfg, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("data/*")), "nothing half-written"


def test_everything_filtered_names_the_filter_and_parameter(tmp_path):
    dups = [_good_question(10 + i, "a1") for i in range(3)]
    cfg = DataConfig(source="reference_tsv", path=str(_reference_folder(tmp_path, dups)),
                     min_dupes=5)
    with pytest.raises(DataError, match=r"after the min_dupes filter.*lower data\.min_dupes"):
        prepare(cfg, tmp_path / "cache")


def test_missing_files_and_unknown_faq_ids(tmp_path):
    with pytest.raises(DataError, match=r"orig-q\.tsv\.gz was not found under data\.path"):
        prepare(DataConfig(source="reference_tsv", path=str(tmp_path)), tmp_path / "c")
    _write_table(tmp_path / "faq", ".csv")
    questions = pd.read_csv(tmp_path / "faq" / "questions.csv")
    questions.loc[3, "faq_id"] = "zzz"
    questions.to_csv(tmp_path / "faq" / "questions.csv", index=False)
    with pytest.raises(DataError, match=r"questions\.csv, row 4: faq_id='zzz' names no FAQ"):
        prepare(DataConfig(source="table", path=str(tmp_path / "faq")), tmp_path / "c")


@pytest.mark.parametrize("content, expected", [
    ('<posts><row Id="1" PostTypeId="1" <broken></posts>', r"Posts\.xml, line 1, column \d+: malformed XML"),
    ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
     '<posts><row Id="1" Body="&lol2;" /></posts>', r"DTD or entities.*hostile"),
    ('<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     '<posts><row Id="1" Body="&x;" /></posts>', r"DTD or entities"),
])
def test_hostile_or_malformed_xml_is_refused(tmp_path, content, expected):
    _write_dump(tmp_path / "site")
    (tmp_path / "site" / "Posts.xml").write_text(content)
    cfg = DataConfig(source="stackexchange", path=str(tmp_path / "site"), min_dupes=2)
    with pytest.raises(DataError, match=expected):
        prepare(cfg, tmp_path / "cache")


@pytest.mark.slow
def test_prepare_cli_prints_summary_and_fails_cleanly(tmp_path):
    ok = run_task("prepare", *TINY_DATA, f"paths.cache={tmp_path}/c", cwd=tmp_path)
    summary = last_json(ok.stdout)
    assert summary["faqs"] > 0 and summary["train"] > 0 and len(summary["hash"]) == 64
    assert Path(summary["path"]).joinpath("manifest.json").exists()
    bad = run_task("prepare", "data=reference_tsv", f"data.path={tmp_path}/nowhere",
                   f"paths.cache={tmp_path}/c", cwd=tmp_path, check=False)
    assert bad.returncode != 0
    assert "orig-q.tsv.gz was not found" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout
    invalid = run_task("prepare", "data.min_dupes=1", f"paths.cache={tmp_path}/c",
                       cwd=tmp_path, check=False)
    assert invalid.returncode != 0 and "data.min_dupes=1" in invalid.stderr
    assert "Traceback" not in invalid.stderr


def test_counts_are_skewed_like_the_real_data(make_cfg):
    conf = to_object(make_cfg())
    prepared = build(synthetic.generate(conf.data.synthetic, conf.data.seed), conf.data)
    sizes = Counter(prepared.questions["faq_row"])
    largest_share = max(sizes.values()) / sum(sizes.values())
    assert 0.03 < largest_share < 0.3
    assert np.median(list(sizes.values())) >= conf.data.min_dupes
