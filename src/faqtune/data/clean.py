"""Text cleaning as the reference did it: code blocks out, link text kept, tags stripped."""

from __future__ import annotations

import html
import re

_CODE_BLOCK = re.compile(r"<pre[^>]*>.*?</pre>", re.IGNORECASE | re.DOTALL)
_LINK = re.compile(r"<a\b[^>]*>(.*?)</a>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_URL = re.compile(r"^\s*(https?://|www\.)\S*\s*$", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DUPLICATE_NOTICE = re.compile(
    r"<blockquote>\s*(<div>\s*)?<p>\s*<strong>\s*(Possible Duplicate|"
    r"This question already has an? answers? here)\s*:?\s*</strong>.*?</blockquote>",
    re.IGNORECASE | re.DOTALL,
)


def _link_text(match: re.Match[str]) -> str:
    text = match.group(1)
    return "" if _URL.match(_TAG.sub("", text)) else text


def clean_text(raw: str) -> str:
    """Lower-cased plain text of a Stack Overflow style HTML post."""
    text = _CODE_BLOCK.sub(" ", raw)
    text = _LINK.sub(_link_text, text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _CONTROL.sub(" ", text)
    return _SPACE.sub(" ", text).strip().lower()


def strip_duplicate_notice(raw_html: str) -> str:
    """Remove the auto-inserted "Possible Duplicate" block: it names the answer."""
    return _DUPLICATE_NOTICE.sub(" ", raw_html)
