"""Regression tests for the second adversarial probe (shared review "reliability-probe"):
each case failed at b122cd4 and passes now. Names carry the probe's case ids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import py7zr
import pytest
from mlflow.tracking import MlflowClient

from faqtune.config import to_object
from faqtune.data.prepare import prepare
from faqtune.errors import ConfigError, DataError
from tests.conftest import TINY_DATA, journal_study, last_json, run_task


def _table(folder: Path, faq_ids, question_ids, answers=None, suffix="csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    faqs = pd.DataFrame({"id": [str(i) for i in faq_ids],
                         "question": [f"how do I reset password number {i} on the portal"
                                      for i in faq_ids],
                         "answer": answers or [f"Answer {i}" for i in faq_ids]})
    questions = pd.DataFrame({"id": [str(i) for i in question_ids],
                              "faq_id": [str(faq_ids[n % len(faq_ids)])
                                         for n in range(len(question_ids))],
                              "text": [f"reset my password {n % len(faq_ids)} portal variant {n}"
                                       for n in range(len(question_ids))]})
    for name, frame in (("faqs", faqs), ("questions", questions)):
        if suffix == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def _table_cfg(make_cfg, folder: Path, *extra):
    return to_object(make_cfg("data=table", f"data.path={folder}", "data.min_dupes=2",
                              "data.min_text=10", "data.match=3", *extra))


def test_A4_question_ids_that_equal_faq_ids_are_kept_in_a_table(make_cfg, tmp_path):
    folder = _table(tmp_path / "t", faq_ids=[1, 2, 3, 4], question_ids=list(range(1, 41)))
    conf = _table_cfg(make_cfg, folder)
    data, _, _ = prepare(conf.data, Path(conf.paths.cache))
    assert len(data.questions) == 40, "ids 1..4 are questions too: separate tables"


def test_A4_repeated_ids_in_a_table_are_an_error_naming_the_id(make_cfg, tmp_path):
    folder = _table(tmp_path / "t", faq_ids=[1, 2, 3, 3], question_ids=list(range(100, 140)))
    with pytest.raises(DataError, match=r"faqs.csv: id='3' appears more than once"):
        prepare(_table_cfg(make_cfg, folder).data, tmp_path / "cache")


def test_A5_parquet_nulls_stay_null_and_are_never_served_as_text(make_cfg, tmp_path):
    folder = _table(tmp_path / "t", faq_ids=[1, 2, 3, 4], question_ids=list(range(100, 140)),
                    answers=[None, "Real answer two", None, "Four"], suffix="parquet")
    conf = _table_cfg(make_cfg, folder, "data.table.faqs=faqs.parquet",
                      "data.table.questions=questions.parquet")
    data, _, _ = prepare(conf.data, Path(conf.paths.cache))
    answers = dict(zip(data.faqs["faq_id"], data.faqs["answer_text"]))
    assert answers["1"] is None and answers["3"] is None and answers["2"] == "Real answer two"
    assert "none" not in set(data.faqs["answer"].dropna())


def test_SEC3_an_archive_with_absolute_member_paths_is_refused(make_cfg, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    archive = tmp_path / "abs.7z"
    with py7zr.SevenZipFile(archive, "w") as z:  # as a hostile packer writes it
        for name in ("Posts.xml", "PostLinks.xml"):
            z._writestr(b"<posts/>", str(elsewhere / name))
    conf = to_object(make_cfg("data=stackexchange", f"data.path={archive}"))
    with pytest.raises(DataError, match="absolute or parent path; refusing"):
        prepare(conf.data, tmp_path / "cache")


def test_A1_a_torn_journal_is_cut_back_and_the_finished_trials_survive(tmp_path):
    common = [*TINY_DATA, "model.estimators=20", "training.period=10", "sweep.n_workers=1",
              "sweep.finalize=false", "sweep.pruner=none",
              f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"paths.cache={tmp_path / 'c'}"]
    run_task("sweep", *common, "sweep.n_trials=2", cwd=tmp_path)
    journal = tmp_path / "c" / "optuna" / "faqtune-sweep.journal"
    with journal.open("ab") as out:  # what a write cut short by a full disk leaves
        out.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 1, "param_')
    for _ in range(2):  # the probe's second resume made the study unreadable for good
        run_task("sweep", *common, "sweep.n_trials=3", cwd=tmp_path)
    states = [t.state.name for t in journal_study(tmp_path / "c").trials]
    assert states.count("COMPLETE") == 3


def test_D_a_sweep_name_cannot_leave_the_cache(make_cfg):
    for name in ("../outside", "a/b", ""):
        with pytest.raises(ConfigError, match="sweep.name"):
            to_object(make_cfg(f"sweep.name={name}"))


@pytest.mark.slow
def test_B13_two_tasks_on_a_fresh_sqlite_store_both_succeed(tmp_path):
    for attempt in range(3):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        command = [sys.executable, "-m", "faqtune.train", *TINY_DATA, "model.estimators=10",
                   "training.period=10", "training.log_model=false",
                   f"tracking.uri=sqlite:///{folder / 'mlflow.db'}", f"paths.cache={folder / 'c'}"]
        procs = [subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [p.communicate(timeout=600) for p in procs]
        for proc, (stdout, stderr) in zip(procs, results):
            assert proc.returncode == 0, stderr[-2000:]
            assert last_json(stdout)["run_id"]
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("faqtune").experiment_id
        assert len(client.search_runs([experiment])) == 2


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed once the block ends: nothing listens there


def test_B14_an_unreachable_optuna_storage_is_an_outage_named_in_one_line(tmp_path):
    proc = run_task("sweep", *TINY_DATA, f"tracking.uri=sqlite:///{tmp_path / 'm.db'}",
                    f"sweep.storage=postgresql://u:pw-B14x@127.0.0.1:{_closed_port()}/optuna",
                    f"paths.cache={tmp_path / 'c'}", cwd=tmp_path, check=False)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "Optuna storage postgresql://u:***@127.0.0.1" in proc.stderr
    assert "Traceback" not in proc.stderr and "pw-B14x" not in proc.stdout + proc.stderr


def test_D_a_dead_tracking_server_fails_in_seconds(tmp_path):
    import time

    started = time.perf_counter()
    proc = run_task("train", *TINY_DATA, f"tracking.uri=http://127.0.0.1:{_closed_port()}",
                    f"paths.cache={tmp_path / 'c'}", cwd=tmp_path, check=False)
    assert proc.returncode == 3 and "No tracking server answers" in proc.stderr
    assert time.perf_counter() - started < 60, "the probe saw 257 s of retries"


def _reference_folder(folder: Path, dup_bytes: bytes | None = None) -> Path:
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    text = "how to sort an array of numbers in javascript " * 5
    (folder / "orig-q.tsv.gz").write_bytes(gzip.compress(
        f"1\ta1\t{text}\t2015\n2\ta2\t{text} twice\t2015\n".encode()))
    (folder / "dup-q.tsv.gz").write_bytes(dup_bytes if dup_bytes is not None else gzip.compress(
        "".join(f"{10 + i}\ta{1 + i % 2}\t{text} dup {i}\t2015\n" for i in range(8)).encode()))
    return folder


def test_B1_a_corrupt_gzip_is_named_not_a_traceback(make_cfg, tmp_path):
    import gzip

    good = gzip.compress(b"".join(b"%d\ta1\tsome question text here\t2015\n" % i
                                  for i in range(5000)))
    broken = bytearray(good)
    broken[10] = 0xFF  # the first deflate block now has the reserved type: zlib.error
    folder = _reference_folder(tmp_path / "d", bytes(broken))
    conf = to_object(make_cfg("data=reference_tsv", f"data.path={folder}", "data.min_dupes=2"))
    with pytest.raises(DataError, match=r"dup-q.tsv.gz could not be read"):
        prepare(conf.data, tmp_path / "cache")


def test_B2_a_decompression_bomb_stops_at_the_line_limit(make_cfg, tmp_path):
    import gzip

    bomb = gzip.compress(b"1\ta1\t" + b"x" * (8 << 20) + b"\t2015\n", 1)  # 8 MiB, one line
    folder = _reference_folder(tmp_path / "d", bomb)
    conf = to_object(make_cfg("data=reference_tsv", f"data.path={folder}", "data.min_dupes=2",
                              "data.max_line_bytes=1000000"))
    with pytest.raises(DataError, match=r"line 1: longer than data.max_line_bytes=1000000"):
        prepare(conf.data, tmp_path / "cache")


def test_B3_a_symlink_loop_is_named(make_cfg, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    conf = to_object(make_cfg("data=reference_tsv", f"data.path={loop}"))
    with pytest.raises(DataError, match="cannot be read"):
        prepare(conf.data, tmp_path / "cache")
