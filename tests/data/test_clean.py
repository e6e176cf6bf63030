"""Text from Stack Overflow style HTML (`faqtune.data.clean`): what the model reads, what a
user is served, and linear time whatever the input."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faqtune.data.clean import clean_text, readable_text, strip_duplicate_notice

ANSWER = ('<p>Use <code>Array.from(new Set(a))</code> to <b>dedupe</b>:</p>'
          '<pre><code>const b = [...new Set(a)];\n  console.log(b);\n</code></pre>'
          '<ul><li>fast</li><li>short &amp; clear</li></ul><p>See <a href="https://x">MDN</a>.</p>')
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


def test_code_blocks_are_dropped_and_link_text_kept():
    raw = ('<p>How do I <b>Sort</b> an array?</p><pre><code>arr.sort()</code></pre>'
           '<p>See <a href="https://x.org/doc">the Docs</a> and '
           '<a href="https://x.org">https://x.org</a></p>')
    assert clean_text(raw) == "how do i sort an array? see the docs and"


def test_entities_and_control_characters_become_plain_text():
    assert clean_text("a &amp; b&lt;c\x00\x07d") == "a & b<c d"


def test_possible_duplicate_notice_is_removed():
    raw = ('<blockquote><p><strong>Possible Duplicate:</strong><br><a href="/q/1">Other</a>'
           '</p></blockquote><p>My question.</p>')
    assert clean_text(strip_duplicate_notice(raw)) == "my question."


def test_the_answer_is_readable_text_with_its_code_kept():
    text = readable_text(ANSWER)
    assert text.startswith("Use `Array.from(new Set(a))` to dedupe:")
    assert "```\nconst b = [...new Set(a)];\n  console.log(b);\n```" in text
    assert "- fast\n- short & clear" in text and text.endswith("See MDN.")
    assert "const b" not in clean_text(ANSWER), "the model still reads code-free text"


@pytest.mark.parametrize("hostile", [
    "<pre>" * 200_000, "<" * 1_000_000, "<a" + "a" * 1_000_000, "<a href=x>" * 100_000,
    "<blockquote><p><strong>Possible Duplicate:</strong>" * 20_000, "&" * 1_000_000,
])
def test_a_hostile_megabyte_is_cleaned_in_linear_time(hostile):
    """A regression guard for the quadratic regexes (9 minutes for 1 MB of `<pre>`): the
    bound is generous; `bench/` measures the real figure."""
    started = time.perf_counter()
    clean_text(hostile), readable_text(hostile), strip_duplicate_notice(hostile)
    assert time.perf_counter() - started < 10


def test_unclosed_blocks_keep_their_text_as_before():
    assert clean_text("<p>see <pre>code without end") == "see code without end"
    assert clean_text("a <a href=x>link") == "a link"


@pytest.mark.slow
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=st.one_of(TEXT, st.text(max_size=50).map(lambda t: f"<pre>{t}" * 200)))
def test_clean_text_always_returns_plain_lowercase_text_quickly(raw):
    started = time.perf_counter()
    cleaned = clean_text(raw)
    assert time.perf_counter() - started < 1.0
    assert cleaned == cleaned.strip() and cleaned == cleaned.lower()
    assert not any(ord(c) < 32 for c in cleaned), "no control characters"
    assert "  " not in cleaned
