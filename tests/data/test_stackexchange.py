"""A Stack Exchange dump (`faqtune.data.stackexchange`), folder or `.7z`: what is kept, and
hostile, malformed or broken dumps refused with a clear error. A name that starts with a case
id (`test_B5_...`) is a case of the reliability probe (docs/reliability.md)."""

from __future__ import annotations

import html
from pathlib import Path

import py7zr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faqtune.config import DataConfig, to_object
from faqtune.data.prepare import prepare
from faqtune.data.stackexchange import read_dump
from faqtune.errors import DataError
from tests.helpers import assert_split_invariants

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


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
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
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


# -- the probe's cases -------------------------------------------------------------------
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


def _seven_zip(archive: Path, folder: Path, names: dict[str, str], **options) -> Path:
    with py7zr.SevenZipFile(archive, "w", **options) as z:
        for member, source in names.items():
            z.write(folder / source, member)
    return archive


def test_SEC3_an_archive_with_absolute_member_paths_is_refused(make_cfg, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    archive = tmp_path / "abs.7z"
    with py7zr.SevenZipFile(archive, "w") as z:  # as a hostile packer writes it
        for name in ("Posts.xml", "PostLinks.xml"):
            z._writestr(b"<posts/>", str(elsewhere / name))
    conf = to_object(make_cfg("data=stackexchange", f"data.path={archive}"))
    with pytest.raises(DataError, match="absolute or parent path; refusing"):
        prepare(conf.data, tmp_path / "cache")


def test_B5_an_xml_file_declaring_an_unknown_encoding_is_named(tmp_path):
    folder = _dump(tmp_path / "d", GOOD_LINKS, declaration="klingon")
    with pytest.raises(DataError, match=r"Posts.xml declares a text encoding Python does not"):
        read_dump(folder, None)


def test_B6_a_duplicate_link_without_its_target_is_skipped_and_counted(tmp_path, caplog):
    broken = '<row Id="99" PostId="7" LinkTypeId="3" />'
    corpus = read_dump(_dump(tmp_path / "d", broken + GOOD_LINKS), None)
    assert sorted(corpus.duplicates["id"]) == ["2", "3", "4", "5", "6"]
    assert "skipped 1 duplicate link(s) without PostId or RelatedPostId (e.g. row Id=99)" \
        in caplog.text


def test_B7_a_dump_file_that_is_a_folder_is_named(tmp_path):
    folder = _dump(tmp_path / "d", GOOD_LINKS)
    (folder / "Posts.xml").unlink()
    (folder / "Posts.xml").mkdir()
    with pytest.raises(DataError, match=r"Posts.xml could not be read \(Is a directory\)"):
        read_dump(folder, None)


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
