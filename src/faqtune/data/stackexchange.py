"""A Stack Exchange data dump (`Posts.xml` + `PostLinks.xml`), folder or `.7z`, streamed."""

from __future__ import annotations

import logging
import lzma
import shutil
import tempfile
from pathlib import Path
from xml.etree.ElementTree import ParseError

import pandas as pd
import py7zr
import py7zr.exceptions
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse
from tqdm import tqdm

from faqtune.config import DataConfig
from faqtune.data.clean import strip_duplicate_notice
from faqtune.data.raw import RawCorpus
from faqtune.errors import DataError

log = logging.getLogger(__name__)
DUPLICATE_LINK = "3"
QUESTION, ANSWER = "1", "2"
DUMP_FILES = ("Posts.xml", "PostLinks.xml")


def iter_rows(path: Path):
    """Yield the attributes of each `<row>`, clearing parsed elements to keep memory flat."""
    try:
        context = iterparse(str(path), events=("start", "end"), forbid_dtd=True)
        _, root = next(iter(context))
        for event, element in context:
            if event == "end" and element.tag == "row":
                yield dict(element.attrib)
                root.clear()
    except DefusedXmlException as exc:
        raise DataError(f"{path} declares a DTD or entities ({exc}); dumps never do, so it is "
                        "refused as potentially hostile XML.") from None
    except ParseError as exc:
        line, column = exc.position
        raise DataError(f"{path}, line {line}, column {column}: malformed XML ({str(exc).split(':')[0]}).") from None
    except (StopIteration, FileNotFoundError):
        raise DataError(f"{path} is missing or empty; a dump folder must hold "
                        f"{' and '.join(DUMP_FILES)}.") from None
    except LookupError as exc:  # the XML declaration names an encoding Python lacks
        raise DataError(f"{path} declares a text encoding Python does not know ({exc}); "
                        "dumps are UTF-8.") from None
    except OSError as exc:  # a folder, a symlink loop, no permission
        raise DataError(f"{path} could not be read ({exc.strerror or exc}); it must be a "
                        "readable XML file.") from None


def parse_tags(tags: str) -> set[str]:
    """Tags as `<a><b>` (older dumps) or `|a|b|` (newer dumps)."""
    return {t for t in tags.replace("><", "|").strip("<>|").split("|") if t}


def _duplicate_links(path: Path) -> dict[str, str]:
    links: dict[str, str] = {}
    incomplete = []
    for row in iter_rows(path):
        if row.get("LinkTypeId") == DUPLICATE_LINK:
            if not row.get("PostId") or not row.get("RelatedPostId"):
                incomplete.append(row.get("Id", "?"))
                continue
            links.setdefault(row["PostId"], row["RelatedPostId"])  # earliest link wins
    if incomplete:
        log.warning("%s: skipped %d duplicate link(s) without PostId or RelatedPostId "
                    "(e.g. row Id=%s)", path, len(incomplete), incomplete[0])
    return links


def read_dump(folder: Path, tag: str | None) -> RawCorpus:
    links = _duplicate_links(folder / "PostLinks.xml")
    wanted_originals = set(links.values())
    questions: dict[str, dict] = {}
    answers: dict[str, str] = {}
    for row in tqdm(iter_rows(folder / "Posts.xml"), desc="Posts.xml", unit=" rows", disable=None):
        post_id = row.get("Id")
        if row.get("PostTypeId") == QUESTION and (post_id in links or post_id in wanted_originals):
            questions[post_id] = {
                "text": f"{row.get('Title', '')}. {row.get('Body', '')}",
                "accepted": row.get("AcceptedAnswerId"),
                "tags": parse_tags(row.get("Tags", "")),
            }
        elif row.get("PostTypeId") == ANSWER and row.get("ParentId") in wanted_originals:
            answers[post_id] = row.get("Body", "")
    originals = [
        (qid, q["text"], answers.get(q["accepted"] or ""))
        for qid, q in questions.items()
        if qid in wanted_originals and (tag is None or tag in q["tags"])
    ]
    duplicates = [
        (qid, original, strip_duplicate_notice(questions[qid]["text"]))
        for qid, original in links.items() if qid in questions
    ]
    return RawCorpus(
        originals=pd.DataFrame(originals, columns=["id", "text", "answer"]),
        duplicates=pd.DataFrame(duplicates, columns=["id", "original_id", "text"]),
        source="stackexchange",
        require_answers=False,
    )


def _extract(archive: Path, into: Path) -> Path:
    try:
        with py7zr.SevenZipFile(archive, mode="r") as z:
            names = [n for n in z.getnames() if Path(n).name in DUMP_FILES]
            unsafe = [n for n in names if Path(n).is_absolute() or ".." in Path(n).parts
                      or n.startswith(("/", "\\")) or ":" in Path(n).parts[0]]
            if unsafe:  # the folder read must be the one we extracted into, never theirs
                raise DataError(f"{archive} names its member {unsafe[0]!r} with an absolute "
                                "or parent path; refusing to read it. Re-pack the dump with "
                                "relative member names.")
            missing = set(DUMP_FILES) - {Path(n).name for n in names}
            if missing:
                raise DataError(f"{archive} does not contain {', '.join(sorted(missing))}; "
                                "is it a Stack Exchange site dump?")
            folders = sorted({str(Path(n).parent) for n in names})
            if len(folders) > 1:
                raise DataError(f"{archive} holds {' and '.join(DUMP_FILES)} in different "
                                f"folders ({', '.join(folders)}); a dump keeps them in one.")
            z.extract(path=into, targets=names)
    except (py7zr.exceptions.ArchiveError, py7zr.exceptions.PasswordRequired, lzma.LZMAError,
            EOFError, OSError) as exc:
        reason = "it is encrypted" if isinstance(exc, py7zr.exceptions.PasswordRequired) \
            else str(exc) or exc.__class__.__name__
        raise DataError(f"{archive} could not be opened as a 7z archive ({reason}).") from None
    folder = (into / Path(names[0]).parent).resolve()
    if not folder.is_relative_to(into.resolve()):
        raise DataError(f"{archive} would be read from outside its extraction folder.")
    return folder


def load(cfg: DataConfig, cache: Path) -> RawCorpus:
    path = Path(cfg.path)
    if not path.exists():
        raise DataError(f"data.path={cfg.path} does not exist; give a dump folder holding "
                        f"{' and '.join(DUMP_FILES)} or a site's .7z archive.")
    if path.is_dir():
        return read_dump(path, cfg.tag)
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="extract-", dir=cache))
    try:
        return read_dump(_extract(path, scratch), cfg.tag)
    except DataError as exc:  # name the archive, not a scratch folder that is about to go
        raise DataError(str(exc).replace(f"{scratch.resolve()}/", f"{path}:")
                        .replace(f"{scratch}/", f"{path}:")) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
