"""Progress lines for long loops: quiet for a short phase, one line every few seconds with
the time left for a long one (a 10,000-FAQ catalogue featurizes for minutes)."""

from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger("faqtune.progress")
EVERY_S = 10.0


def progress_lines(label: str, total: int, unit: str,
                   every_s: float = EVERY_S) -> Callable[[int], None]:
    """`advance(done)` logs `label: done/total unit, about N s left`, at most once every
    `every_s` seconds and never before the first `every_s` have passed."""
    started = last = time.monotonic()

    def advance(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < every_s or not done:
            return
        last = now
        left = (now - started) / done * (total - done)
        log.info("%s: %d/%d %s, about %.0f s left", label, done, total, unit, left)

    return advance
