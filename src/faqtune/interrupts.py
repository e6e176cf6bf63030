"""SIGTERM (`kill`, `timeout`, CI, Kubernetes) stops faqtune the way Ctrl-C does: as a
KeyboardInterrupt, so runs are marked KILLED, trials are released and a summary is printed."""

from __future__ import annotations

import signal


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, _interrupt)


def interrupted(exc: BaseException) -> bool:
    """Whether `exc` is a KeyboardInterrupt or was raised while handling one.

    A library's cleanup can fail on the way out of an interrupt (Optuna's `_run_trial`
    raises UnboundLocalError when the interrupt lands inside its `tell`); that error is
    still the interrupt, not a bug to print with a traceback."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
