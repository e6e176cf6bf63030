from faqtune.data.clean import clean_text, strip_duplicate_notice


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
