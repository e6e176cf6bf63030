"""How long text cleaning takes on hostile input: faqtune's tokenizer against the regex
cleaning it replaced (the reference recipe's way: lazy `.*?` patterns), in the same run.

    python bench/hostile_text.py     # rewrites its section of docs/benchmarks.md

The regex cleaning is quadratic on unclosed tags, so it is timed on small inputs only; the
tokenizer is timed up to 1 MB, the largest question a client might send.
"""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

from faqtune.data.clean import clean_text

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = "<!-- hostile:start -->", "<!-- hostile:end -->"
_PRE = re.compile(r"<pre[^>]*>.*?</pre>", re.IGNORECASE | re.DOTALL)
_LINK = re.compile(r"<a\b[^>]*>(.*?)</a>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def regex_clean(raw: str) -> str:
    """The cleaning faqtune used before (as the reference recipe cleans posts)."""
    text = _LINK.sub(r"\1", _PRE.sub(" ", raw))
    return re.sub(r"\s+", " ", html.unescape(_TAG.sub(" ", text))).strip().lower()


def seconds(clean, text: str) -> float:
    started = time.perf_counter()
    clean(text)
    return time.perf_counter() - started


def main() -> None:
    cases = {"repeated `<pre>`": "<pre>", "repeated `<a x>`": "<a x>", "repeated `<`": "<"}
    rows = ["| input | size | regex cleaning (before) | faqtune tokenizer | ratio |",
            "|---|---|---|---|---|"]
    for name, unit in cases.items():
        for size in (10_000, 40_000):
            text = unit * (size // len(unit))
            before, after = seconds(regex_clean, text), seconds(clean_text, text)
            rows.append(f"| {name} | {size // 1000} KB | {before:.3f} s | {after:.4f} s | "
                        f"{before / max(after, 1e-6):.0f}x |")
        big = unit * (1_000_000 // len(unit))
        rows.append(f"| {name} | 1 MB | not run (quadratic: minutes) | "
                    f"{seconds(clean_text, big):.3f} s | |")
    section = "\n".join([
        START, "## Hostile text: cleaning time", "",
        "`python bench/hostile_text.py`: the same inputs through the regex cleaning faqtune "
        "used before (lazy `.*?` patterns, as the reference recipe cleans posts) and through "
        "faqtune's tokenizer, in one run. Quadruple the input, and the regex time grows "
        "about sixteenfold; the tokenizer time grows at most about fourfold (linear).", "", *rows, END])
    text = DOCS.read_text()
    if START in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOCS.write_text(text)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
