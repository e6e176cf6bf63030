"""Interrupts: what counts as one, and how a sweep worker takes them."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import optuna
import pytest

from faqtune.interrupts import interrupted


class InterruptedTell(optuna.storages.InMemoryStorage):
    """A storage whose `tell` is cut by Ctrl-C, as a journal-lock wait can be."""

    def set_trial_state_values(self, trial_id, state, values=None):
        raise KeyboardInterrupt


def _error_of_an_interrupted_tell() -> BaseException:
    study = optuna.create_study(storage=InterruptedTell())
    try:
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1,
                       catch=(Exception,))
    except BaseException as exc:  # noqa: BLE001 - what Optuna raises is the subject
        return exc
    pytest.fail("the interrupted tell raised nothing")


def test_an_error_raised_while_handling_an_interrupt_is_the_interrupt():
    error = _error_of_an_interrupted_tell()
    assert interrupted(error), repr(error)


def test_an_ordinary_error_or_an_exit_is_not_an_interrupt():
    try:
        try:
            raise ValueError("bad value")
        except ValueError:
            raise RuntimeError("while handling it")
    except RuntimeError as exc:
        chained = exc
    assert not interrupted(chained)
    assert not interrupted(SystemExit(3))
    assert interrupted(KeyboardInterrupt())


_ONE_SHOT = textwrap.dedent("""
    import os, signal, sys, time
    from faqtune.interrupts import stop_once_on_interrupt
    stop_once_on_interrupt()
    try:
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        time.sleep(5)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    for second in ("SIGINT", "SIGTERM"):  # while it releases its trial: ignored
        os.kill(os.getpid(), getattr(signal, second))
    time.sleep(0.2)
    print("released", flush=True)
""")


@pytest.mark.parametrize("first", ["SIGINT", "SIGTERM"])
def test_a_worker_is_interrupted_once_and_a_second_signal_cannot_cut_its_release(first):
    proc = subprocess.run([sys.executable, "-c", _ONE_SHOT, first], capture_output=True,
                          text=True, timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["interrupted", "released"]


def test_a_worker_started_ignoring_sigint_keeps_ignoring_it():
    """A sweep started in the background (`cmd &` in a script) ignores Ctrl-C; its workers
    too. SIGTERM (`kill`, the driver's stop) still interrupts them."""
    script = textwrap.dedent("""
        import os, signal, time
        from faqtune.interrupts import stop_once_on_interrupt
        stop_once_on_interrupt()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        print("went on", flush=True)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.stdout.split() == ["went", "on", "interrupted"], proc.stderr


_IN_A_FINALIZER = textwrap.dedent("""
    import os, signal, sys, time
    from faqtune import interrupts
    getattr(interrupts, sys.argv[1])()

    class Booster:  # as LightGBM's: a finalizer the garbage collector runs
        def __del__(self):
            os.kill(os.getpid(), getattr(signal, sys.argv[2]))
            for _ in range(10 ** 6):  # the handler runs here, inside the finalizer
                pass

    try:
        Booster()
        time.sleep(5)
        print("ran on", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
""")


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("process", ["stop_once_on_interrupt", "stop_on_interrupt"])
def test_an_interrupt_that_lands_in_a_finalizer_still_stops_the_process(process, signal_name):
    """Python swallows an exception raised in a `__del__` and prints "Exception ignored" with
    a traceback: a worker interrupted there ran on, deaf to the driver's stop, until it was
    killed (seen in a Ctrl-C of a sweep, inside LightGBM's Booster.__del__)."""
    proc = subprocess.run([sys.executable, "-c", _IN_A_FINALIZER, process, signal_name],
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.split() == ["interrupted"], proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, \
        proc.stderr


_HELD = textwrap.dedent("""
    import os, signal, time
    from faqtune.interrupts import hold_interrupts, release_interrupts, stop_once_on_interrupt
    stop_once_on_interrupt()
    hold_interrupts()
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(10 ** 6):  # the handler runs here: the interrupt is kept
        pass
    os.kill(os.getpid(), signal.SIGTERM)  # a second signal: ignored, as ever
    time.sleep(0.2)
    print("held", flush=True)
    try:
        release_interrupts()
    except KeyboardInterrupt as exc:
        print("released", exc.signum == signal.SIGINT, flush=True)
    release_interrupts()  # nothing is held twice
    print("done", flush=True)
""")


def test_an_interrupt_held_by_a_worker_is_raised_once_when_it_releases_it():
    """A worker holds its interrupt while it claims a trial and while Optuna records the
    trial's end, so an interrupt cannot leave a trial RUNNING with no worker."""
    proc = subprocess.run([sys.executable, "-c", _HELD], capture_output=True, text=True,
                          timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["held", "released", "True", "done"]


_DURING_A_WRITE = textwrap.dedent("""
    import os, signal, sys
    from faqtune.interrupts import stop_on_interrupt
    from faqtune.tracking.runs import retrying
    stop_on_interrupt()

    def write(signals):
        for name in signals:
            os.kill(os.getpid(), getattr(signal, name))
            for _ in range(10 ** 6):  # a handler that raises does so here, mid-write
                pass
        print("written", flush=True)

    try:
        retrying(lambda: write(sys.argv[1:]))
    except KeyboardInterrupt as exc:
        print("interrupted", exc.signum, flush=True)
""")


@pytest.mark.parametrize("signals, out", [
    (["SIGTERM"], ["written", "interrupted", "15"]),
    (["SIGINT"], ["written", "interrupted", "2"]),
    (["SIGTERM", "SIGINT"], ["interrupted", "2"])])  # the second: the user insists
def test_an_interrupt_during_a_write_to_the_store_is_raised_when_the_write_is_done(signals,
                                                                                   out):
    """A SIGTERM landing inside SQLAlchemy left the write's transaction open: the SQLite
    store stayed locked for the write marking the run KILLED ("database is locked", exit 3,
    the run left RUNNING; seen under load in test_sigterm_during_training_marks_the_run_killed).
    Every write through `retrying` now holds the interrupt until it is done."""
    proc = subprocess.run([sys.executable, "-c", _DURING_A_WRITE, *signals],
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.split() == out, proc.stderr
