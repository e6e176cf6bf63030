"""Downloads that resume, check size and checksum, and never leave a partial file behind."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from faqtune.config import DownloadConfig
from faqtune.errors import DataError

log = logging.getLogger(__name__)
_CHUNK = 1 << 16


class NotFound(DataError):
    """The server answered that the file does not exist."""


def is_url(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _content_length(response: requests.Response, url: str) -> int:
    """The declared size, or 0 when it is missing or not a number (then only the running
    count against max_bytes bounds the download)."""
    declared = response.headers.get("Content-Length", "0")
    try:
        return max(0, int(declared))
    except ValueError:
        log.warning("%s declares Content-Length %r, not a number; downloading without a "
                    "known size", url, declared[:40])
        return 0


def _resumes_at(response: requests.Response, start: int) -> bool:
    """A 206 whose Content-Range starts where the partial file ends."""
    if response.status_code != 206:
        return False
    content_range = response.headers.get("Content-Range", "")
    return content_range.startswith(f"bytes {start}-")


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def download(url: str, target: Path, cfg: DownloadConfig) -> Path:
    """Fetch `url` into `target` (cached); a `.part` file carries an interrupted transfer."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=cfg.timeout_s)
    except requests.RequestException as exc:
        raise DataError(f"Could not reach {url}: {exc.__class__.__name__}: {exc}. Check the "
                        "address in data.path and your network, or download the files and "
                        "point data.path at their folder.") from None
    with response:
        if response.status_code == 404:
            raise NotFound(f"{url} does not exist (HTTP 404).")
        if response.status_code == 416 and start:  # the .part holds the whole file already
            part.unlink(missing_ok=True)
            raise DataError(f"The server refused to resume {url} (HTTP 416: the partial "
                            f"download {part} was already complete or no longer matches); it "
                            "was discarded: run again to download afresh.")
        if response.status_code >= 400:
            raise DataError(f"Downloading {url} failed with HTTP {response.status_code}; "
                            "check data.path.")
        if start and not _resumes_at(response, start):
            start = 0  # the server ignored the range or sent another one: start over
        total = _content_length(response, url) + start
        if total > cfg.max_bytes:
            raise DataError(f"{url} is {total} bytes, over data.download.max_bytes="
                            f"{cfg.max_bytes}; raise the limit if the file is expected.")
        received = start
        try:
            with part.open("ab" if start else "wb") as out, tqdm(
                total=total or None, initial=start, unit="B", unit_scale=True,
                desc=target.name, disable=None,
            ) as bar:
                # read1: whatever has arrived, so a stalled transfer keeps what it got
                for chunk in iter(lambda: response.raw.read1(_CHUNK), b""):
                    received += len(chunk)
                    if received > cfg.max_bytes:
                        part.unlink(missing_ok=True)
                        raise DataError(f"{url} exceeded data.download.max_bytes="
                                        f"{cfg.max_bytes} while downloading; nothing was kept.")
                    out.write(chunk)
                    bar.update(len(chunk))
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise DataError(f"Download of {url} broke off after {received} bytes ({exc}); "
                            "run again to resume.") from None
    if target.name.endswith(".gz") and not _is_gzip(part):
        part.unlink(missing_ok=True)
        raise DataError(f"{url} did not send a gzip file (a login page or an error page?); "
                        "nothing was kept. Check data.path.")
    expected = cfg.sha256.get(target.name)
    if expected and _sha256(part) != expected.lower():
        part.unlink(missing_ok=True)
        raise DataError(f"Checksum mismatch for {url}: expected sha256 {expected} "
                        f"(data.download.sha256.{target.name}); the file was discarded.")
    os.replace(part, target)
    log.info("downloaded %s (%d bytes)", url, received)
    return target
