"""Blocks of work on several threads: the similarity products and rank columns run in numpy
and scipy code that releases the GIL, so threads use every core without copying the
FAQ-side matrices into other processes."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def threads_for(n_jobs: int) -> int:
    """The threads a model's `n_jobs` asks for: 0 means every core."""
    return n_jobs if n_jobs > 0 else os.cpu_count() or 1


def ordered_map(function: Callable[[Item], Result], items: Iterable[Item],
                threads: int) -> Iterator[Result]:
    """`map(function, items)` on `threads` threads, results in order; at most two results
    per thread are held at once, so memory stays that of a few blocks."""
    if threads <= 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="faqtune-block") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
