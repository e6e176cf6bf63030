"""SIGTERM (`kill`, `timeout`, CI, Kubernetes) stops faqtune the way Ctrl-C does: as a
KeyboardInterrupt, so runs are marked KILLED, trials are released and a summary is printed."""

from __future__ import annotations

import signal


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt_once(signum, frame) -> None:
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def stop_once_on_interrupt() -> None:
    """For a sweep worker: the first SIGINT or SIGTERM interrupts it, later ones are
    ignored, so a second signal (Ctrl-C reaches it, then the driver's stop) never cuts its
    trial's release short. SIGINT stays ignored where the worker was started ignoring it."""
    signal.signal(signal.SIGTERM, _interrupt_once)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _interrupt_once)


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
