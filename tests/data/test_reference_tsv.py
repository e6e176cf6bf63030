"""The reference's raw files (`faqtune.data.reference_tsv`): the real sample, and every way
a `.tsv.gz` can be bad refused with the file and line. A name that starts with a case id
(`test_B1_...`) is a case of the reliability probe (docs/reliability.md)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faqtune.config import DataConfig, to_object
from faqtune.data.prepare import prepare
from faqtune.data.reference_tsv import QUESTION_COLUMNS, read_tsv
from faqtune.errors import DataError
from tests.helpers import CS_DATA, assert_split_invariants, needs_cs_data


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


@pytest.mark.slow
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(st.binary(max_size=200), max_size=20))
def test_tsv_reader_returns_rows_or_a_clear_error(tmp_path, lines):
    path = tmp_path / "dup-q.tsv.gz"
    with gzip.open(path, "wb") as out:
        out.write(b"\n".join(lines))
    try:
        frame = read_tsv(path, QUESTION_COLUMNS)
    except DataError as exc:
        assert str(path) in str(exc) and "line" in str(exc)
    else:
        assert list(frame.columns) == QUESTION_COLUMNS


# -- the probe's cases -------------------------------------------------------------------
def _gzip_folder(folder: Path, dup_bytes: bytes | None = None) -> Path:
    """orig-q.tsv.gz and dup-q.tsv.gz of two FAQs; `dup_bytes` replaces the second file."""
    folder.mkdir(parents=True, exist_ok=True)
    text = "how to sort an array of numbers in javascript " * 5
    (folder / "orig-q.tsv.gz").write_bytes(gzip.compress(
        f"1\ta1\t{text}\t2015\n2\ta2\t{text} twice\t2015\n".encode()))
    (folder / "dup-q.tsv.gz").write_bytes(dup_bytes if dup_bytes is not None else gzip.compress(
        "".join(f"{10 + i}\ta{1 + i % 2}\t{text} dup {i}\t2015\n" for i in range(8)).encode()))
    return folder


def test_B1_a_corrupt_gzip_is_named_not_a_traceback(make_cfg, tmp_path):
    good = gzip.compress(b"".join(b"%d\ta1\tsome question text here\t2015\n" % i
                                  for i in range(5000)))
    broken = bytearray(good)
    broken[10] = 0xFF  # the first deflate block now has the reserved type: zlib.error
    folder = _gzip_folder(tmp_path / "d", bytes(broken))
    conf = to_object(make_cfg("data=reference_tsv", f"data.path={folder}", "data.min_dupes=2"))
    with pytest.raises(DataError, match=r"dup-q.tsv.gz could not be read"):
        prepare(conf.data, tmp_path / "cache")


def test_B2_a_decompression_bomb_stops_at_the_line_limit(make_cfg, tmp_path):
    bomb = gzip.compress(b"1\ta1\t" + b"x" * (8 << 20) + b"\t2015\n", 1)  # 8 MiB, one line
    folder = _gzip_folder(tmp_path / "d", bomb)
    conf = to_object(make_cfg("data=reference_tsv", f"data.path={folder}", "data.min_dupes=2",
                              "data.max_line_bytes=1000000"))
    with pytest.raises(DataError, match=r"line 1: longer than data.max_line_bytes=1000000"):
        prepare(conf.data, tmp_path / "cache")


def test_C7_an_unreadable_file_is_not_called_a_bad_gzip(make_cfg, tmp_path):
    folder = _gzip_folder(tmp_path / "d")
    (folder / "dup-q.tsv.gz").unlink()
    (folder / "dup-q.tsv.gz").mkdir()  # unreadable as a file (the tests run as root: no chmod)
    conf = to_object(make_cfg("data=reference_tsv", f"data.path={folder}", "data.min_dupes=2"))
    with pytest.raises(DataError, match=r"dup-q.tsv.gz could not be read \(Is a directory\); "
                                        r"it must be a readable file") as error:
        prepare(conf.data, tmp_path / "cache")
    assert "gzip" not in str(error.value).split(".gz", 1)[1]
