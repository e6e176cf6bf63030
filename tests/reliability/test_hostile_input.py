"""Bad and hostile input: the outcome is a prepared data set or a clear error, never a
traceback or a hang."""

from __future__ import annotations

import gzip
import http.server
import threading
import time

import pandas as pd
import pytest
from hydra.errors import HydraException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf.errors import OmegaConfBaseException

from faqtune.config import DataConfig, DownloadConfig, TableConfig, to_object
from faqtune.data.clean import clean_text
from faqtune.data.download import download
from faqtune.data.prepare import prepare
from faqtune.data.reference_tsv import QUESTION_COLUMNS, read_tsv
from faqtune.data.stackexchange import read_dump
from faqtune.errors import DataError, FaqtuneError
from tests.conftest import run_task

pytestmark = pytest.mark.slow
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


@FAST
@given(raw=st.one_of(TEXT, st.text(max_size=50).map(lambda t: f"<pre>{t}" * 200)))
def test_clean_text_always_returns_plain_lowercase_text_quickly(raw):
    started = time.perf_counter()
    cleaned = clean_text(raw)
    assert time.perf_counter() - started < 1.0
    assert cleaned == cleaned.strip() and cleaned == cleaned.lower()
    assert not any(ord(c) < 32 for c in cleaned), "no control characters"
    assert "  " not in cleaned


@FAST
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


@FAST
@given(body=TEXT, title=TEXT, junk=st.text(max_size=80))
def test_dump_parser_returns_a_corpus_or_a_clear_error(tmp_path, body, title, junk):
    from xml.sax.saxutils import quoteattr

    folder = tmp_path / "dump"
    folder.mkdir(exist_ok=True)
    (folder / "Posts.xml").write_text(
        f'<posts><row Id="1" PostTypeId="1" Title={quoteattr(title)} Body={quoteattr(body)} />'
        f'<row Id="2" PostTypeId="1" Title="t" Body="b" />{junk}</posts>', encoding="utf-8")
    (folder / "PostLinks.xml").write_text(
        '<postlinks><row PostId="2" RelatedPostId="1" LinkTypeId="3" /></postlinks>')
    try:
        corpus = read_dump(folder, tag=None)
    except DataError as exc:
        assert "Posts.xml" in str(exc)
    else:
        assert len(corpus.duplicates) <= 1


@FAST
@given(cells=st.lists(st.tuples(TEXT, TEXT, TEXT), min_size=1, max_size=12),
       faq_ids=st.lists(st.sampled_from(["a", "b", "c", ""]), min_size=1, max_size=12))
def test_table_source_prepares_or_fails_clearly(tmp_path, cells, faq_ids):
    folder = tmp_path / "faq"
    folder.mkdir(exist_ok=True)
    pd.DataFrame({"id": ["a", "b"], "question": ["first faq text", "second faq text"],
                  "answer": ["x", ""]}).to_csv(folder / "faqs.csv", index=False)
    rows = [(f"q{i}", faq_ids[i % len(faq_ids)], text) for i, (text, _, _) in enumerate(cells)]
    pd.DataFrame(rows, columns=["id", "faq_id", "text"]).to_csv(folder / "questions.csv",
                                                                 index=False)
    cfg = DataConfig(source="table", path=str(folder), min_text=0, min_dupes=2,
                     table=TableConfig())
    try:
        prepared, path, _ = prepare(cfg, tmp_path / "cache")
    except DataError as exc:
        assert "questions.csv" in str(exc) or "No data left" in str(exc)
    else:
        assert (path / "manifest.json").exists() and len(prepared.faqs) >= 1


class _Stalling(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        self.wfile.write(b"x" * 1000)
        self.wfile.flush()
        time.sleep(5)  # then stall: the client's timeout must fire


def test_a_stalling_download_times_out_and_keeps_only_a_resumable_part(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = tmp_path / "dl" / "orig-q.tsv.gz"
    started = time.perf_counter()
    try:
        with pytest.raises(DataError, match="broke off after 1000 bytes.*run again to resume"):
            download(f"http://127.0.0.1:{server.server_address[1]}/orig-q.tsv.gz", target,
                     DownloadConfig(timeout_s=1))
    finally:
        server.shutdown()
    assert time.perf_counter() - started < 5
    assert not target.exists()
    assert (target.parent / "orig-q.tsv.gz.part").stat().st_size == 1000


INVALID_OVERRIDES = [
    ("model.ngrams=zero", "model.ngrams"),
    ("model.ngrams=9", "model.ngrams=9"),
    ("model.estimators=-1", "model.estimators=-1"),
    ("model.learning_rate=abc", "model.learning_rate"),
    ("model.objective=poisson", "model.objective"),
    ("model.colour=red", "colour"),
    ("data.min_dupes=1", "data.min_dupes=1"),
    ("data.test_size=2", "data.test_size=2"),
    ("data=nowhere", "data/nowhere"),
    ("model=giant", "model/giant"),
    ("sweep.n_workers=0", "sweep.n_workers=0"),
    ("sweep.pruner=sometimes", "sweep.pruner"),
    ("sweep.heartbeat_seconds=100", "sweep.heartbeat_seconds=100.0"),
    ("backend.cluster.vm_priority=spot", "backend.cluster.vm_priority"),
    ("training.period=0", "training.period=0"),
    ("tracking.kind=wandb", "tracking.kind"),
]


@pytest.mark.parametrize("override, key", INVALID_OVERRIDES)
def test_every_invalid_override_names_its_key(make_cfg, override, key):
    with pytest.raises((FaqtuneError, HydraException, OmegaConfBaseException)) as info:
        to_object(make_cfg(override))
    assert key in str(info.value)


@pytest.mark.parametrize("override, key", [INVALID_OVERRIDES[0], INVALID_OVERRIDES[5],
                                           INVALID_OVERRIDES[8], INVALID_OVERRIDES[1]])
def test_invalid_overrides_on_the_command_line_give_no_traceback(tmp_path, override, key):
    proc = run_task("train", override, f"paths.cache={tmp_path}", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert key in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
