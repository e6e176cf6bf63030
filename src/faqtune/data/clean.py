"""Text from Stack Overflow style HTML, in linear time whatever the input.

Two views of one post: `clean_text`, what the model reads (as the reference cleaned it: code
blocks out, link text kept unless it is a bare URL, tags stripped, lower case), and
`readable_text`, what a person reads (paragraphs and list items on their own lines, code
blocks kept verbatim in ``` fences, original case). Both walk the markup once with a
tokenizer whose patterns cannot backtrack across the input, so a hostile post of repeated
`<pre>` or `<` costs as much as any other post of its size.
"""

from __future__ import annotations

import html
import re

# A tag stops at the next `<` as well as at `>`: an unclosed `<` is text, never a scan to the end
_TOKEN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*+)?[^<>]*+>|[^<]++|<")
_URL = re.compile(r"\s*(https?://|www\.)\S*\s*", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_LINE_SPACE = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*(\n\s*)+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLOCK_TAGS = {"p", "div", "br", "hr", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ul",
               "ol", "table", "tr"}
_NOTICE_START = re.compile(
    r"<blockquote>\s*(?:<div>\s*)?<p>\s*<strong>\s*(?:Possible Duplicate|"
    r"This question already has an? answers? here)\s*:?\s*</strong>", re.IGNORECASE)
_NOTICE_END = "</blockquote>"


def _tokens(raw: str):
    """(kind, name, text): kind is "open", "close" or "text"; names lower-cased."""
    for match in _TOKEN.finditer(raw):
        token = match.group(0)
        if token.startswith("<") and len(token) > 1 and match.group(2):
            yield ("close" if match.group(1) else "open"), match.group(2).lower(), token
        else:
            yield "text", "", token


def clean_text(raw: str) -> str:
    """Lower-cased plain text of a post: what the model reads."""
    out: list[str] = []
    held: list[str] | None = None  # text of an open <pre> or <a>: kept only if it never closes
    holder = ""
    for kind, name, token in _tokens(raw):
        if held is not None:
            if kind == "close" and name == holder:
                text = " ".join(held)
                if holder == "a" and not _URL.fullmatch(html.unescape(text)):
                    out.append(text)
                out.append(" ")
                held = None
            elif kind == "text":
                held.append(token)
            continue
        if kind == "open" and name in ("pre", "a"):
            held, holder = [], name
            out.append(" ")
        elif kind == "text":
            out.append(token)
        else:
            out.append(" ")
    if held:  # an unclosed <pre> or <a>: its text stays, as the reference's regexes left it
        out.extend(held)
    text = _CONTROL.sub(" ", html.unescape("".join(out)))
    return _SPACE.sub(" ", text).strip().lower()


def readable_text(raw: str) -> str:
    """Plain text of a post as a person reads it: what the served model answers."""
    prose: list[str] = []  # the current run of prose, normalised when a code block starts
    parts: list[str] = []
    code: list[str] | None = None

    def flush_prose() -> None:
        lines = [_LINE_SPACE.sub(" ", line).strip() for line in "".join(prose).split("\n")]
        parts.append(_BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n"))
        prose.clear()

    for kind, name, token in _tokens(raw):
        if code is not None:
            if kind == "close" and name == "pre":
                flush_prose()
                parts.append("```\n" + "".join(code).strip("\n") + "\n```")
                code = None
            elif kind == "text":
                code.append(_CONTROL.sub(" ", html.unescape(token)))
        elif kind == "text":
            prose.append(_CONTROL.sub(" ", _SPACE.sub(" ", html.unescape(token))))
        elif kind == "open" and name == "pre":
            code = []
        elif name == "code":
            prose.append("`")
        elif name == "li" and kind == "open":
            prose.append("\n- ")
        elif name in _BLOCK_TAGS:
            prose.append("\n\n" if name in ("p", "blockquote") else "\n")
        else:
            prose.append(" " if kind == "open" and name == "img" else "")
    if code is not None:  # an unclosed <pre>: its text is still the answer's
        prose.append(" ".join(code))
    flush_prose()
    return "\n\n".join(p for p in parts if p.strip()).strip()


def strip_duplicate_notice(raw_html: str) -> str:
    """Remove the auto-inserted "Possible Duplicate" block: it names the answer."""
    parts, position = [], 0
    while True:
        start = _NOTICE_START.search(raw_html, position)
        end = raw_html.find(_NOTICE_END, start.end()) if start else -1
        if start is None or end < 0:  # no later notice can close either: done
            parts.append(raw_html[position:])
            return " ".join(parts)
        parts.append(raw_html[position:start.start()])
        position = end + len(_NOTICE_END)
