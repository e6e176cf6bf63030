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
