"""SIGTERM (`kill`, `timeout`, CI, Kubernetes) stops faqtune the way Ctrl-C does: as a
KeyboardInterrupt, so runs are marked KILLED, trials are released and a summary is printed.
An interrupt is held while a write to a store is in progress, and raised once it is done."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)


class Interrupt(KeyboardInterrupt):
    """A KeyboardInterrupt that knows the signal which raised it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def _interrupt(signum, frame) -> None:
    if _HOLDING and not _HELD:
        _HELD.append(signum)
        return
    _HELD.clear()  # a second one while held: the user insists
    raise Interrupt(signum)


def stop_on_interrupt() -> None:
    """For a task: SIGINT (where not ignored) and SIGTERM raise an `Interrupt`, held while a
    write to a store is in progress (`interrupts_held`); a second one is raised at once."""
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)
    sys.unraisablehook = _raise_a_swallowed_interrupt_again


def _interrupt_once(signum, frame) -> None:
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    if _HOLDING:
        _HELD.append(signum)
        return
    raise Interrupt(signum)


RAISE_AGAIN_AFTER_SECONDS = 0.05
_ONCE: set[int] = set()  # the signals stop_once_on_interrupt set to interrupt once
_HOLDING = False  # between hold_interrupts and release_interrupts
_HELD: list[int] = []  # the signal that came meanwhile


def stop_once_on_interrupt() -> None:
    """For a sweep worker: the first SIGINT or SIGTERM interrupts it, later ones are
    ignored, so a second signal (Ctrl-C reaches it, then the driver's stop) never cuts its
    trial's release short. SIGINT stays ignored where the worker was started ignoring it."""
    global _HOLDING
    _ONCE.clear()
    _HOLDING = False
    _HELD.clear()
    signal.signal(signal.SIGTERM, _interrupt_once)
    _ONCE.add(signal.SIGTERM)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _interrupt_once)
        _ONCE.add(signal.SIGINT)
    sys.unraisablehook = _raise_a_swallowed_interrupt_again


def hold_interrupts() -> None:
    """Keep an interrupt (of the handlers this module sets) until `release_interrupts`,
    instead of raising it where it lands. A sweep worker holds it while it claims a trial
    (Optuna creates the trial, then samples it) and while Optuna records the trial's end:
    an interrupt there left a trial RUNNING that no worker ran any more, and a sweep
    stopped by Ctrl-C said "running: 1"."""
    global _HOLDING
    _HOLDING = True


def release_interrupts() -> None:
    """Raise the interrupt held since `hold_interrupts`, if one came."""
    global _HOLDING
    _HOLDING = False
    if _HELD:
        signum = _HELD.pop()
        _HELD.clear()
        raise Interrupt(signum)


@contextlib.contextmanager
def interrupts_held():
    """Hold an interrupt for the block, a write to a store: one landing inside SQLAlchemy
    left the write's transaction open, and the SQLite store stayed locked for the write
    that marks the run KILLED ("database is locked", exit 3, the run left RUNNING). Inside
    a block that holds already, the outer block releases."""
    if _HOLDING:
        yield
        return
    hold_interrupts()
    try:
        yield
    finally:
        release_interrupts()


def _raise_a_swallowed_interrupt_again(unraisable) -> None:
    """Python swallows an exception raised in a finalizer (a `__del__` the garbage collector
    runs, LightGBM's Booster has one) and prints it as "Exception ignored". An interrupt
    landing there would be lost, and a worker whose one interrupt is then spent would run
    on, deaf to the driver's stop: send the signal again, to land where it stops the process.
    """
    exc = unraisable.exc_value
    if not isinstance(exc, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)
        return
    signum = getattr(exc, "signum", signal.SIGINT)
    log.debug("an interrupt (signal %d) landed in %r: raised again", signum, unraisable.object)
    if signum in _ONCE and signal.getsignal(signum) is signal.SIG_IGN:
        signal.signal(signum, _interrupt_once)  # it was spent on the swallowed interrupt
    if callable(signal.getsignal(signum)):
        # a moment later, by an alarm: raised here, or at once, it would land in this hook (or
        # the finalizer) and be swallowed again; no thread is started (the collector may have
        # run the finalizer while this thread held one of threading's locks)
        signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signum))
        signal.setitimer(signal.ITIMER_REAL, RAISE_AGAIN_AFTER_SECONDS)


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
