"""Regression tests for the second adversarial probe (shared review "reliability-probe"):
each case failed at b122cd4 and passes now. Names carry the probe's case ids."""

from __future__ import annotations

import re
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
    # missing, as pandas spells it (None; NaN in pandas 3's string columns), never "none"
    assert pd.isna(answers["1"]) and pd.isna(answers["3"]) and answers["2"] == "Real answer two"
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


@pytest.mark.slow
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


def test_D1_a_sweep_name_cannot_leave_the_cache(make_cfg):
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
    import importlib.util

    if importlib.util.find_spec("psycopg") is None:  # a core install: name what to install
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "sweep.storage=postgresql://u:***@127.0.0.1" in proc.stderr
        assert "needs the database driver 'psycopg': pip install -e '.[postgres]'" in proc.stderr
    else:
        assert proc.returncode == 3, proc.stderr[-2000:]
        assert "Optuna storage postgresql://u:***@127.0.0.1" in proc.stderr
    assert "Traceback" not in proc.stderr and "pw-B14x" not in proc.stdout + proc.stderr


def test_D4_a_dead_tracking_server_fails_in_seconds(tmp_path):
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


# -- the remaining B, C and D cases ------------------------------------------------------
def _dump(folder: Path, links: str, posts: str | None = None, declaration: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = "&lt;p&gt;how do I sort a list of numbers quickly in python&lt;/p&gt;"
    posts = posts or "".join(
        f'<row Id="{i}" PostTypeId="1" Title="Sorting a python list fast {i}" Body="{body}" />'
        for i in range(1, 8))
    (folder / "Posts.xml").write_text(
        f'<?xml version="1.0" encoding="{declaration}"?>\n<posts>{posts}</posts>\n')
    (folder / "PostLinks.xml").write_text(f'<?xml version="1.0"?>\n<postlinks>{links}</postlinks>\n')
    return folder


GOOD_LINKS = "".join(f'<row Id="{i}" PostId="{i}" RelatedPostId="1" LinkTypeId="3" />'
                     for i in range(2, 7))


@pytest.mark.parametrize("override, key", [
    ("data.encoding=klingon", "data.encoding"),                  # B5
    ("data.download.timeout_s=0", "data.download.timeout_s"),   # B10
    ("data.seed=-1", "data.seed"),                              # B11
    ("sweep.seed=-1", "sweep.seed"),
    ("sweep.seed=4294967296", "sweep.seed"),
    ("sweep.n_workers=10000", "sweep.n_workers"),               # B17
    ("tracking.experiment=", "tracking.experiment"),            # C1
    ("sweep.timeout_s=-5", "sweep.timeout_s"),                  # D5
    ("model.prior_weight=-100", "model.prior_weight"),
    ("model.centroid_prior=-1", "model.centroid_prior"),
    ("registry.model_name=", "registry.model_name"),
    ("registry.alias=", "registry.alias"),
    ("registry.alias=v2", "registry.alias"),
    ("paths.cache=", "paths.cache"),
    ("data.match=1000000", "data.match"),
    ("model.estimators=100000000000", "model.estimators"),
    ("data.synthetic.originals=50000000", "data.synthetic.originals"),
])
def test_B5_B10_B11_B17_D5_values_out_of_range_stop_at_start_up(make_cfg, override, key):
    with pytest.raises(ConfigError, match=rf"Invalid configuration: {re.escape(key)}=.*expected"):
        to_object(make_cfg(override))


def test_B5_an_xml_file_declaring_an_unknown_encoding_is_named(tmp_path):
    from faqtune.data.stackexchange import read_dump

    folder = _dump(tmp_path / "d", GOOD_LINKS, declaration="klingon")
    with pytest.raises(DataError, match=r"Posts.xml declares a text encoding Python does not"):
        read_dump(folder, None)


def test_B6_a_duplicate_link_without_its_target_is_skipped_and_counted(tmp_path, caplog):
    from faqtune.data.stackexchange import read_dump

    broken = '<row Id="99" PostId="7" LinkTypeId="3" />'
    corpus = read_dump(_dump(tmp_path / "d", broken + GOOD_LINKS), None)
    assert sorted(corpus.duplicates["id"]) == ["2", "3", "4", "5", "6"]
    assert "skipped 1 duplicate link(s) without PostId or RelatedPostId (e.g. row Id=99)" \
        in caplog.text


def test_B7_a_dump_file_that_is_a_folder_is_named(tmp_path):
    from faqtune.data.stackexchange import read_dump

    folder = _dump(tmp_path / "d", GOOD_LINKS)
    (folder / "Posts.xml").unlink()
    (folder / "Posts.xml").mkdir()
    with pytest.raises(DataError, match=r"Posts.xml could not be read \(Is a directory\)"):
        read_dump(folder, None)


def _seven_zip(archive: Path, folder: Path, names: dict[str, str], **options) -> Path:
    with py7zr.SevenZipFile(archive, "w", **options) as z:
        for member, source in names.items():
            z.write(folder / source, member)
    return archive


def test_B8_an_encrypted_or_corrupt_7z_is_named(make_cfg, tmp_path):
    folder = _dump(tmp_path / "d", GOOD_LINKS)
    files = {"Posts.xml": "Posts.xml", "PostLinks.xml": "PostLinks.xml"}
    encrypted = _seven_zip(tmp_path / "pw.7z", folder, files, password="secret",
                           header_encryption=False)
    conf = to_object(make_cfg("data=stackexchange", f"data.path={encrypted}"))
    with pytest.raises(DataError, match=r"pw.7z could not be opened as a 7z archive"):
        prepare(conf.data, tmp_path / "cache")
    corrupt = tmp_path / "corrupt.7z"
    data = bytearray(_seven_zip(tmp_path / "ok.7z", folder, files).read_bytes())
    data[40:60] = bytes(b ^ 0xFF for b in data[40:60])  # the probe's flipped bytes
    corrupt.write_bytes(bytes(data))
    conf = to_object(make_cfg("data=stackexchange", f"data.path={corrupt}"))
    with pytest.raises(DataError, match=r"corrupt.7z (could not be opened|.*malformed|.*empty)"):
        prepare(conf.data, tmp_path / "cache")


def test_C8_dump_files_in_two_folders_name_the_archive_not_a_scratch_folder(make_cfg, tmp_path):
    folder = _dump(tmp_path / "d", GOOD_LINKS)
    archive = _seven_zip(tmp_path / "split.7z", folder,
                         {"a/Posts.xml": "Posts.xml", "b/PostLinks.xml": "PostLinks.xml"})
    conf = to_object(make_cfg("data=stackexchange", f"data.path={archive}"))
    with pytest.raises(DataError, match=r"split.7z holds .* in different folders \(a, b\)"):
        prepare(conf.data, tmp_path / "cache")


def test_B11_the_largest_sweep_seed_seeds_every_worker():
    from faqtune.config import SweepConfig
    from faqtune.tuning.optuna_backend import make_sampler
    from faqtune.tuning.space import parse_space

    space = parse_space("matcher", {"ngrams": {"choice": [1, 2]}})
    for worker in range(3):  # seed * 1000 + worker overflowed 2**32 at b122cd4
        assert make_sampler(SweepConfig(seed=2**32 - 1), space, worker) is not None


def test_B17_workers_are_capped_at_the_trials_left():
    from faqtune.config import SweepConfig
    from faqtune.tuning.optuna_backend import worker_count

    assert worker_count(SweepConfig(n_workers=6, n_trials=1), done=0) == 1
    assert worker_count(SweepConfig(n_workers=6, n_trials=10), done=8) == 2
    assert worker_count(SweepConfig(n_workers=2, n_trials=10), done=10) == 1  # resume check
    assert worker_count(SweepConfig(n_workers=2, n_trials=10), done=0) == 2


def test_B19_C1_disk_full_behind_an_mlflow_error_is_named_as_disk_full():
    from mlflow.exceptions import MlflowException

    from faqtune.cli import explain

    try:
        try:
            with open("/dev/full", "wb") as full:  # a real ENOSPC from the kernel
                full.write(b"x")
        except OSError as exc:
            raise MlflowException("(raised as a result of Query-invoked autoflush)") from exc
    except MlflowException as wrapped:
        message, code = explain(wrapped)
    assert code == 3 and message.startswith("No space left on the device holding")
    assert "autoflush" not in message and "server is up" not in message


def test_C1_an_mlflow_refusal_is_not_blamed_on_the_server(store):
    from mlflow.exceptions import MlflowException

    from faqtune.cli import explain

    with pytest.raises(MlflowException) as refused:  # a real answer from a real store
        MlflowClient(store).get_run("0" * 32)
    message, code = explain(refused.value)
    assert code == 2 and "refused a request (RESOURCE_DOES_NOT_EXIST)" in message
    assert "server is up" not in message
    message, code = explain(MlflowException("API request failed: Connection refused"))
    assert code == 3 and "server is up" in message


def test_C1_filters_find_values_with_apostrophes_and_quotes(store):
    import mlflow

    from faqtune.tracking.runs import quoted

    client = MlflowClient(store)
    experiment = client.create_experiment("quotes")
    values = ["/tmp/o'neil/multirun", 'say "hi"']
    for value in values:
        client.create_run(experiment, tags={"faqtune.multirun": value})
    for value in values:
        found = client.search_runs([experiment],
                                   filter_string=f"tags.`faqtune.multirun` = {quoted(value)}")
        assert [r.data.tags["faqtune.multirun"] for r in found] == [value]
    mlflow.set_tracking_uri(None)


def test_B20_an_unwritable_cache_is_one_paragraph(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_task("prepare", f"paths.cache={blocker / 'cache'}", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "is not a folder faqtune can write to" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_B21_an_incomplete_prepared_data_set_is_named(make_cfg, tmp_path):
    import shutil

    conf = to_object(make_cfg(*TINY_DATA))
    _, path, _ = prepare(conf.data, Path(conf.paths.cache))
    truncated, missing = tmp_path / "truncated", tmp_path / "missing"
    shutil.copytree(path, truncated)
    shutil.copytree(path, missing)
    (truncated / "questions.parquet").write_bytes((path / "questions.parquet").read_bytes()[:100])
    (missing / "train_pairs.parquet").unlink()
    from faqtune.data.dataset import PreparedData

    for folder in (truncated, missing):
        with pytest.raises(DataError, match="is not a complete prepared data set"):
            PreparedData.load(folder)


def test_C5_a_non_utf8_csv_names_the_right_byte_and_line(make_cfg, tmp_path):
    folder = _table(tmp_path / "t", faq_ids=[1, 2, 3, 4], question_ids=list(range(100, 140)))
    raw = (folder / "questions.csv").read_bytes()
    lines = raw.split(b"\n")
    lines[30] = lines[30] + b" caf\xe9"  # latin-1, deep enough to be past pandas' first read
    (folder / "questions.csv").write_bytes(b"\n".join(lines))
    where = b"\n".join(lines).index(b"\xe9")
    with pytest.raises(DataError, match=rf"not valid UTF-8 at byte {where} \(line 31\)"):
        prepare(_table_cfg(make_cfg, folder).data, tmp_path / "cache")


def test_C6_an_faq_without_text_is_named_as_such(make_cfg, tmp_path, caplog):
    folder = _table(tmp_path / "t", faq_ids=[1, 2, 3, 4], question_ids=list(range(100, 140)))
    faqs = pd.read_csv(folder / "faqs.csv", dtype=str)
    faqs.loc[0, "question"] = ""
    faqs.to_csv(folder / "faqs.csv", index=False)
    prepare(_table_cfg(make_cfg, folder).data, tmp_path / "cache")
    assert "dropping 10 duplicates whose FAQ has no text (e.g. FAQ id 1)" in caplog.text
    assert "whose FAQ is unknown" not in caplog.text


def test_C7_an_unreadable_file_is_not_called_a_bad_gzip(make_cfg, tmp_path):
    folder = _reference_folder(tmp_path / "d")
    (folder / "dup-q.tsv.gz").unlink()
    (folder / "dup-q.tsv.gz").mkdir()  # unreadable as a file (the tests run as root: no chmod)
    conf = to_object(make_cfg("data=reference_tsv", f"data.path={folder}", "data.min_dupes=2"))
    with pytest.raises(DataError, match=r"dup-q.tsv.gz could not be read \(Is a directory\); "
                                        r"it must be a readable file") as error:
        prepare(conf.data, tmp_path / "cache")
    assert "gzip" not in str(error.value).split(".gz", 1)[1]


def test_D5_a_sqlite_store_in_a_missing_folder_is_refused_not_created(tmp_path):
    from faqtune.config import TrackingConfig
    from faqtune.tracking.runs import configure

    import mlflow

    target = tmp_path / "nowhere" / "deeper" / "m.db"
    with pytest.raises(ConfigError, match=r"nowhere/deeper does not exist"):
        configure(TrackingConfig(uri=f"sqlite:///{target}"))
    assert not (tmp_path / "nowhere").exists()
    mlflow.set_tracking_uri(None)


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


BLOCK_AZURE = ("import sys; sys.modules.update({m: None for m in ('azure', 'azure.ai', "
               "'azure.ai.ml', 'azure.identity', 'azureml', 'azureml.core', 'azureml.train', "
               "'azureml.train.hyperdrive')}); from faqtune.{task} import main; main()")


@pytest.mark.parametrize("task, overrides, extra", [
    ("sweep", ["backend=azureml", "backend.dry_run=true", "sweep.sampler=random"], "`azure`"),
    ("sweep", ["backend=azureml", "backend.sdk=v1", "backend.dry_run=true",
               "sweep.sampler=random"], "`azure-v1`"),
    ("train", ["tracking=azureml"], "`azure`"),
])
def test_B12_without_the_azure_extra_an_azure_setting_says_what_to_install(tmp_path, task,
                                                                           overrides, extra):
    """Python treats a module set to None in sys.modules as not installed: this is the
    user's environment without the extra, whatever this one has."""
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_AZURE.replace("{task}", task), *TINY_DATA, *overrides,
         f"paths.cache={tmp_path / 'c'}", f"tracking.uri=sqlite:///{tmp_path / 'm.db'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"needs the {extra} extra: pip install -e '.[" in proc.stderr
    assert "Traceback" not in proc.stderr and "ModuleNotFoundError" not in proc.stderr
