"""Downloads (`faqtune.data.download`) from a real HTTP server on 127.0.0.1: resume, cache,
checksum, time-outs, clear errors. A name that starts with a case id (`test_A6_...`) is a case
of the reliability probe (docs/reliability.md)."""

from __future__ import annotations

import functools
import gzip
import random
import hashlib
import http.server
import threading
import time
from pathlib import Path

import pytest

from faqtune.config import DataConfig, DownloadConfig
from faqtune.data.download import download
from faqtune.data.prepare import prepare
from faqtune.errors import DataError
from tests.helpers import free_port


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single-range support, counting the bytes it sends."""

    sent: list[int] = []
    mode = "honest"  # "wrongrange": 206 with the whole file (probe A6); "html": a login page;
    # "badlength": a Content-Length that is not a number (B9)

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if self.mode == "html":
            data = b"<html><body>Please log in</body></html>"
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            start = 0 if self.mode == "wrongrange" else start
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", "abc" if self.mode == "badlength" else str(len(body)))
        self.end_headers()
        RangeHandler.sent.append(len(body))  # before writing: the client may assert at once
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(RangeHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.sent, RangeHandler.mode = [], "honest"
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _questions(path: Path, rows: list[str]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")


def test_reference_files_from_a_url_are_downloaded_once_and_answers_are_optional(server, tmp_path):
    root, url = server
    text = "how to sort an array of numbers in javascript " * 5
    _questions(root / "orig-q.tsv.gz", [f"1\ta1\t{text}\t2015", f"2\ta2\t{text} twice\t2015"])
    _questions(root / "dup-q.tsv.gz", [f"{10 + i}\ta{1 + i % 2}\t{text} dup {i}\t2015"
                                       for i in range(8)])
    cfg = DataConfig(source="reference_tsv", path=url + "/", min_dupes=2)
    prepared, _, _ = prepare(cfg, tmp_path / "cache")
    assert prepared.counts()["faqs"] == 2
    assert prepared.faqs["answer"].isna().all()
    files = sorted(p.name for p in (tmp_path / "cache" / "downloads").rglob("*") if p.is_file())
    assert files == ["dup-q.tsv.gz", "orig-q.tsv.gz"], "cached, no .part left"


def test_an_interrupted_download_resumes_from_the_part_file(server, tmp_path):
    root, url = server
    payload = bytes(range(256)) * 400
    (root / "big.bin").write_bytes(payload)
    target = tmp_path / "dl" / "big.bin"
    target.parent.mkdir()
    (target.parent / "big.bin.part").write_bytes(payload[:30000])
    download(f"{url}/big.bin", target, DownloadConfig())
    assert target.read_bytes() == payload
    assert RangeHandler.sent == [len(payload) - 30000], "only the missing bytes were fetched"


def test_checksum_mismatch_and_size_limit_leave_no_file(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"x" * 5000)
    target = tmp_path / "dl" / "f.bin"
    with pytest.raises(DataError, match="Checksum mismatch.*discarded"):
        download(f"{url}/f.bin", target, DownloadConfig(sha256={"f.bin": "0" * 64}))
    with pytest.raises(DataError, match="max_bytes"):
        download(f"{url}/f.bin", target, DownloadConfig(max_bytes=100))
    assert list(target.parent.iterdir()) == []
    good = hashlib.sha256(b"x" * 5000).hexdigest()
    assert download(f"{url}/f.bin", target, DownloadConfig(sha256={"f.bin": good})).exists()


def test_unreachable_url_is_a_clear_error(tmp_path):
    cfg = DataConfig(source="reference_tsv", path=f"http://127.0.0.1:{free_port()}/data/",
                     download=DownloadConfig(timeout_s=5))
    with pytest.raises(DataError, match=r"Could not reach http://127\.0\.0\.1:\d+/data/orig-q"):
        prepare(cfg, tmp_path / "cache")


def test_A6_a_resume_answered_from_byte_zero_starts_over(server, tmp_path):
    root, url = server
    payload = gzip.compress(random.Random(1).randbytes(50_000))  # incompressible: 50 KB
    (root / "f.tsv.gz").write_bytes(payload)
    target = tmp_path / "dl" / "f.tsv.gz"
    target.parent.mkdir()
    (target.parent / "f.tsv.gz.part").write_bytes(payload[:1000])
    RangeHandler.mode = "wrongrange"
    download(f"{url}/f.tsv.gz", target, DownloadConfig())
    assert target.read_bytes() == payload, "not the partial file plus the whole file"


def test_A6_an_html_page_is_never_cached_as_a_gzip(server, tmp_path):
    root, url = server
    (root / "f.tsv.gz").write_bytes(gzip.compress(b"x"))
    target = tmp_path / "dl" / "f.tsv.gz"
    RangeHandler.mode = "html"
    with pytest.raises(DataError, match="did not send a gzip file"):
        download(f"{url}/f.tsv.gz", target, DownloadConfig())
    assert not target.exists() and not list(target.parent.iterdir())
    RangeHandler.mode = "honest"  # the server is fixed: the next run works
    assert download(f"{url}/f.tsv.gz", target, DownloadConfig()).exists()


def test_C4_a_complete_part_file_is_not_a_dead_end(server, tmp_path):
    root, url = server
    payload = gzip.compress(b"whole file")
    (root / "f.tsv.gz").write_bytes(payload)
    target = tmp_path / "dl" / "f.tsv.gz"
    target.parent.mkdir()
    (target.parent / "f.tsv.gz.part").write_bytes(payload)  # complete, never renamed
    with pytest.raises(DataError, match="HTTP 416.*discarded: run again"):
        download(f"{url}/f.tsv.gz", target, DownloadConfig())
    assert download(f"{url}/f.tsv.gz", target, DownloadConfig()).read_bytes() == payload


def test_B9_a_content_length_that_is_not_a_number_still_downloads_within_the_limit(server,
                                                                                     tmp_path):
    root, url = server
    payload = gzip.compress(b"x" * 10_000)
    (root / "f.tsv.gz").write_bytes(payload)
    RangeHandler.mode = "badlength"
    target = tmp_path / "dl" / "f.tsv.gz"
    assert download(f"{url}/f.tsv.gz", target, DownloadConfig()).read_bytes() == payload
    with pytest.raises(DataError, match="exceeded data.download.max_bytes"):
        download(f"{url}/f.tsv.gz", tmp_path / "dl2" / "f.tsv.gz", DownloadConfig(max_bytes=10))


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


@pytest.mark.slow
@pytest.mark.serial
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
