"""The local sweep: Optuna workers in separate processes sharing one storage.

Each worker claims a trial under a lock (so the sweep never runs more than `n_trials`),
keeps a heartbeat on it, and logs it as an MLflow child run of the sweep's parent run.
A trial whose heartbeat stops (a killed worker) is failed and queued again with the same
parameters, so re-running a sweep after a crash completes exactly the trials still missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing.connection
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import mlflow
import optuna
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from faqtune.config import FaqtuneConfig, SweepConfig
from faqtune.data.dataset import PreparedData
from faqtune.errors import ConfigError, ServiceUnavailable, database_errors, is_outage
from faqtune.interrupts import (hold_interrupts, interrupted, release_interrupts,
                                stop_once_on_interrupt)
from faqtune.tracking.locks import AdvisoryLock, FileLock, holding
from faqtune.tracking.runs import (
    PARENT_TAG, ROLE_TAG, SWEEP_TAG, check_sqlite_file, check_store, find_runs,
    provenance_tags, redact, retrying,
)
from faqtune.tuning.identity import differences, sweep_identity
from faqtune.tuning.outcome import SweepOutcome
from faqtune.tuning.space import SearchSpace
from faqtune.tuning.trial import ERROR_ATTR, OUTAGE_ATTR, RUN_ID_ATTR, STATE_TAG, run_trial
from faqtune.tuning.worker_server import worker_context

log = logging.getLogger(__name__)
HEARTBEAT_ATTR = "heartbeat"
IDENTITY_ATTR = "faqtune_identity"
PARENT_ATTR = "mlflow_parent_run_id"
SURPLUS_ATTR = "surplus"
OUTAGE_EXIT = 3  # a worker's exit code when a service stayed away too long
IDENTITY_WAIT_SECONDS = 10  # for another driver to record the settings of a study it made
STOP_SECONDS = 10  # how long a worker may take to exit once told to stop
# How often a worker with no trial to claim looks again (the last trials of a sweep may fail
# and need a rerun); the sweep ends this soon after its last trial.
WAIT_SECONDS = 0.5
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


# -- storage, sampler, pruner -------------------------------------------------------------
def storage_location(conf: FaqtuneConfig) -> str:
    """`backend.storage`, an RDB URL, as given; else a journal file under the cache folder."""
    return conf.backend.storage or str(Path(conf.paths.cache) / "optuna"
                                       / f"{conf.sweep.name}.journal")


def storage_errors(location: str):
    """The Optuna storage's database errors, in one line each (`errors.database_errors`)."""
    return database_errors("backend.storage", location, "Optuna storage",
                           "pip install -e '.[postgres]' for PostgreSQL, or the driver your "
                           "database's URL names.")


def repair_journal(location: str) -> int:
    """Cut a torn last record (a write cut short, e.g. by a full disk) back to the last
    complete line, before anything is appended after it and makes it unreadable for good.
    The number of bytes dropped."""
    path = Path(location)
    if "://" in location or not path.exists():
        return 0
    # Optuna's own journal lock: a worker of another driver appending at this moment would
    # otherwise look like a torn record
    writers = JournalFileSymlinkLock(location)
    writers.acquire()
    try:
        return _cut_torn_record(path, location)
    finally:
        writers.release()


def _cut_torn_record(path: Path, location: str) -> int:
    with path.open("rb+") as journal:
        size = journal.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        journal.seek(size - 1)
        if journal.read(1) == b"\n":
            return 0
        keep, block = 0, 1 << 16
        for end in range(size, 0, -block):  # find the last newline from the end
            start = max(0, end - block)
            journal.seek(start)
            found = journal.read(end - start).rfind(b"\n")
            if found >= 0:
                keep = start + found + 1
                break
        journal.truncate(keep)
    log.warning("the sweep journal %s ended in a torn record (%d bytes, e.g. from a full "
                "disk); cut back to its last complete record", location, size - keep)
    return size - keep


def engine_options(location: str, stale_after: float | None) -> dict:
    """SQLAlchemy engine settings for an RDB storage. On PostgreSQL the server ends a
    transaction left open longer than `stale_after` (a worker frozen inside a storage call,
    by SIGSTOP or a debugger), so the row locks it holds cannot stall the other workers."""
    options: dict = {"pool_pre_ping": True}
    if stale_after and location.startswith("postgresql"):
        timeout = f"idle_in_transaction_session_timeout={max(1, round(stale_after * 1000))}"
        options["connect_args"] = {"options": f"-c {timeout}"}
    return options


def open_storage(location: str, stale_after: float | None = None, attempts: int = 5):
    if "://" in location:
        import sqlalchemy.exc

        if location.startswith("sqlite:///"):
            check_sqlite_file(location, "backend.storage")
        with storage_errors(location):
            for attempt in range(attempts):
                try:
                    return RDBStorage(location,
                                      engine_kwargs=engine_options(location, stale_after))
                except sqlalchemy.exc.SQLAlchemyError as exc:
                    # two processes making a new storage's tables at once (no lock is
                    # shared between two caches): the loser finds them made, and retries
                    if attempt == attempts - 1 or not any(
                            race in str(exc) for race in (
                                "already exists", "duplicate key", "UNIQUE constraint failed")):
                        raise
                    time.sleep(0.2 * (attempt + 1))
    Path(location).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(location))


def make_sampler(sweep: SweepConfig, space: SearchSpace, worker: int,
                 startup_trials: int) -> optuna.samplers.BaseSampler:
    """Seeded per worker, so parallel workers do not draw the same points."""
    seed = (sweep.seed * 1000 + worker) % 2**32
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sweep.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if sweep.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=sweep.seed, scramble=True)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)


class BanditPruner(optuna.pruners.BasePruner):
    """HyperDrive's BanditPolicy: stop a trial whose value at a round is below the best
    value any trial reached at that round divided by (1 + slack_factor)."""

    def __init__(self, slack_factor: float, n_warmup_steps: int):
        self.slack_factor = slack_factor
        self.n_warmup_steps = n_warmup_steps

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        others = [t.intermediate_values[step] for t in study.get_trials(deepcopy=False)
                  if t.number != trial.number and step in t.intermediate_values]
        if not others:
            return False
        return trial.intermediate_values[step] < max(others) / (1 + self.slack_factor)


def make_pruner(sweep: SweepConfig, period: int, max_rounds: int,
                startup_trials: int) -> optuna.pruners.BasePruner:
    """HyperDrive's policies, evaluated at every report after `delay_evaluation` reports:
    `median` (MedianStoppingPolicy), `bandit` (BanditPolicy), `truncation`
    (TruncationSelectionPolicy: stop the lowest `truncation_percentage` percent), and
    `wilcoxon` (Optuna's WilcoxonPruner: a trial worse than the best, fold by fold, beyond
    `wilcoxon_p_threshold`). With `sweep.folds` > 1 a step is a fold, not a round."""
    if sweep.folds > 1:
        period, max_rounds = 1, sweep.folds
    warmup = sweep.delay_evaluation * period
    if sweep.pruner == "wilcoxon":
        with warnings.catch_warnings():  # "experimental": chosen by name, Optuna's range pinned
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(p_threshold=sweep.wilcoxon_p_threshold,
                                                 n_startup_steps=sweep.delay_evaluation)
    if sweep.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials,
                                           n_warmup_steps=warmup)
    if sweep.pruner == "bandit":
        return BanditPruner(sweep.bandit_slack_factor, warmup)
    if sweep.pruner == "truncation":
        return optuna.pruners.PercentilePruner(sweep.truncation_percentage,
                                               n_startup_trials=startup_trials,
                                               n_warmup_steps=warmup)
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=period, max_resource=max_rounds)
    return optuna.pruners.NopPruner()


def load_study(conf: FaqtuneConfig, space: SearchSpace, worker: int = 0,
               load_if_exists: bool = True) -> optuna.Study:
    return optuna.create_study(
        study_name=conf.sweep.name, direction="maximize", load_if_exists=load_if_exists,
        storage=open_storage(storage_location(conf), conf.backend.stale_after_seconds),
        sampler=make_sampler(conf.sweep, space, worker, conf.backend.startup_trials),
        pruner=make_pruner(conf.sweep, conf.training.period, conf.model.estimators,
                           conf.backend.startup_trials))


# -- claiming trials -----------------------------------------------------------------------
@dataclass
class Counts:
    complete: int = 0
    pruned: int = 0
    running: int = 0
    failed: int = 0
    best: float | None = None
    interrupted: bool = False
    outage: bool = False  # a worker stopped: a service stayed away past backend.outage_seconds

    @property
    def done(self) -> int:
        return self.complete + self.pruned


def set_aside(trial: optuna.trial.FrozenTrial) -> bool:
    """A failed trial that says nothing of its configuration: its worker was lost or
    interrupted, or a service went away (it runs again), or it was claimed past the budget.
    Never counted as a failure toward `sweep.max_failures`."""
    return any(trial.user_attrs.get(attr)
               for attr in ("stale", "interrupted", SURPLUS_ATTR, OUTAGE_ATTR))


def beyond_budget(study: optuna.Study, number: int, n_trials: int) -> bool:
    """Whether trial `number` was claimed past the budget: `n_trials` trials before it have
    finished or still run. Only a claim made without the lock (its holder was frozen) can be;
    of two such claims of the last trial, the later one gives way."""
    earlier = [t for t in study.get_trials(deepcopy=False, states=(*DONE, TrialState.RUNNING))
               if t.number < number]
    return len(earlier) >= n_trials


def count(study: optuna.Study, failures_since: float = 0.0) -> Counts:
    """Trial counts; failures only from `failures_since` (this run of the sweep), so a
    sweep resumed after an outage is not stopped by the failures of the last run."""
    counts = Counts()
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.COMPLETE:
            counts.complete += 1
            counts.best = trial.value if counts.best is None else max(counts.best, trial.value)
        elif trial.state == TrialState.PRUNED:
            counts.pruned += 1
        elif trial.state == TrialState.RUNNING:
            counts.running += 1
        elif (trial.state == TrialState.FAIL and not set_aside(trial)
              and trial.datetime_start.timestamp() >= failures_since):
            counts.failed += 1
    return counts


def claim_lock(conf: FaqtuneConfig):
    """Claiming a trial is atomic across all workers, and a frozen holder is passed by after
    `backend.stale_after_seconds` (see `tracking.locks`); nothing but storage calls run under
    it."""
    return _sweep_lock(conf, "", conf.backend.stale_after_seconds)


def parent_lock(conf: FaqtuneConfig):
    """Creating the study and the parent run, writing the parent's record and finalizing
    happen once, however many drivers start at once. Only drivers wait for it, never a
    worker claiming a trial."""
    return _sweep_lock(conf, ".parent", None)


def _sweep_lock(conf: FaqtuneConfig, suffix: str, stale_after: float | None):
    location = storage_location(conf)
    if location.startswith("postgresql"):
        return AdvisoryLock(location, f"faqtune:{conf.sweep.name}{suffix}",
                            on_error=partial(storage_errors, location), stale_after=stale_after)
    return FileLock(Path(conf.paths.cache) / "optuna" / f"{conf.sweep.name}{suffix}.lock",
                    stale_after=stale_after)


def fail_stale_trials(study: optuna.Study, stale_after: float) -> list[int]:
    """Fail running trials whose heartbeat stopped; queue them again with the same params.
    Safe without the claim lock (a frozen worker may hold it), and called without it: it
    makes MLflow calls."""
    storage, now, failed = study._storage, time.time(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.user_attrs.get(HEARTBEAT_ATTR, trial.datetime_start.timestamp())
        if now - beat < stale_after:
            continue
        # workers rescue without a lock: the storage lets one of them fail the trial
        try:
            storage.set_trial_user_attr(trial._trial_id, "stale", True)
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # finished meanwhile, or failed by another worker
        failed.append(trial.number)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number},
                            skip_if_exists=False)
        log.warning("trial %d lost its worker; queued again", trial.number)
        try:
            _kill_runs_of(study.study_name, trial)
        except Exception as exc:
            log.warning("could not mark trial %d's MLflow run killed: %s", trial.number, exc)
    return failed


def _kill_runs_of(study_name: str, trial: optuna.trial.FrozenTrial) -> None:
    """Mark a lost trial's MLflow run KILLED; found by its tags, since the worker may have
    died between creating the run and recording its id on the trial."""
    client = MlflowClient()
    run_ids = {trial.user_attrs.get(RUN_ID_ATTR)} - {None}
    if not run_ids:
        found = find_runs(None, {"optuna.study": study_name, "optuna.trial": str(trial.number)},
                          status="RUNNING")
        run_ids = {run.info.run_id for run in found}
    for run_id in run_ids:
        _mark_killed(client, run_id)


def _mark_killed(client: MlflowClient, run_id: str) -> None:
    retrying(partial(client.set_tag, run_id, STATE_TAG, "FAIL"))
    retrying(partial(client.set_terminated, run_id, "KILLED"))


def next_step(study: optuna.Study, sweep: SweepConfig, grid_size: int | None,
              deadline: float | None, started: float) -> str:
    """"run" a new trial, "wait" for running ones (they may fail and need a rerun), or
    "stop". Call it holding the claim lock."""
    counts = count(study, failures_since=started)
    if sweep.max_failures and counts.failed >= sweep.max_failures:
        log.error("stopping: %d trials failed (sweep.max_failures=%d)", counts.failed,
                  sweep.max_failures)
        return "stop"
    if counts.done >= sweep.n_trials or (deadline and time.time() > deadline):
        return "stop"
    if counts.done + counts.running >= sweep.n_trials:
        return "wait"
    if grid_size is not None and _grid_points_used(study) >= grid_size:
        return "wait" if counts.running else "stop"
    return "run"


def _grid_points_used(study: optuna.Study) -> int:
    return len({t.system_attrs.get("grid_id") for t in study.get_trials(deepcopy=False)
                if not set_aside(t)})


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial, every: float):
    """Mark `trial` alive every `every` seconds while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                study._storage.set_trial_user_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())
            except Exception as exc:
                if not is_outage(exc):  # the trial just finished: nothing left to keep alive
                    return
                # the storage is away: beat again once it is back
            if stop.wait(every):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# -- workers and the sweep -----------------------------------------------------------------
def worker_count(n_workers: int, n_trials: int, done: int) -> int:
    """`backend.n_workers`, capped at the trials left to run (each worker loads the data)."""
    left = n_trials - done
    cores = os.cpu_count() or 1
    if n_workers > left:
        log.warning("backend.n_workers=%d but %d trial(s) are left: starting %d worker(s)",
                    n_workers, left, left)
    elif n_workers > cores:
        log.warning("backend.n_workers=%d on %d cores: trials will share cores and each will "
                    "run slower", n_workers, cores)
    return min(n_workers, left)


def threads_per_worker(n_workers: int) -> int:
    """Trials are CPU-bound: split the cores between workers."""
    return max(1, (os.cpu_count() or 1) // n_workers)


def limit_threads(n_workers: int) -> int:
    """Size every thread pool of this worker (OpenMP, OpenBLAS; LightGBM's `n_jobs` is the
    return value) to its share of the cores: pools sized for all the cores in each worker
    spin on the cores the other workers train on (a 2-worker sweep's trials took twice as
    long on 2 cores)."""
    threads = threads_per_worker(n_workers)
    threadpool_limits(threads)
    return threads


def worker_main(conf: FaqtuneConfig, space: SearchSpace, data_path: str, tracking_uri: str,
                parent_run_id: str, worker: int, started: float,
                deadline: float | None, cwd: str, environ: dict[str, str]) -> None:
    """A worker process: claim and run trials until the sweep is done."""
    # the server was started earlier, maybe from elsewhere: take the driver's state of now
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environ)
    os.environ.pop("MLFLOW_RUN_ID", None)  # children name their parent explicitly
    stop_once_on_interrupt()
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures: our one-line warning
    mlflow.set_tracking_uri(tracking_uri)
    study = load_study(conf, space, worker)
    data = PreparedData.load(data_path)
    lock = claim_lock(conf)
    n_jobs = limit_threads(conf.backend.n_workers)
    grid_size = space.grid_size() if conf.sweep.sampler == "grid" else None

    away = Outage(conf.backend.outage_seconds)

    def objective(trial: optuna.Trial) -> float:
        lock.release()  # the trial exists now: other workers may claim the next one
        try:
            release_interrupts()  # one that came while this worker claimed the trial
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        try:
            return claimed(trial)
        finally:
            hold_interrupts()  # until Optuna has recorded how the trial ended

    def claimed(trial: optuna.Trial) -> float:
        if beyond_budget(study, trial.number, conf.sweep.n_trials):
            trial.set_user_attr(SURPLUS_ATTR, True)
            raise BeyondBudget(f"trial {trial.number} was claimed past sweep.n_trials")
        with heartbeat(study, trial, conf.backend.heartbeat_seconds):
            try:
                params = space.suggest(trial)
            except Exception as exc:  # e.g. a stored trial's distribution clashes
                trial.set_user_attr(ERROR_ATTR, f"{exc.__class__.__name__}: {exc}"[:4000])
                log.warning("trial %d failed before it started: %s", trial.number, exc)
                raise
            try:
                value = run_trial(trial, conf, data, data_path, params, parent_run_id, n_jobs)
            except Exception as exc:
                if is_outage(exc):
                    away.seen(exc)
                else:
                    away.over()
                raise
            away.over()
            return value

    try:
        while True:
            try:
                if away.since is not None:  # claim no trial until the tracking store answers
                    check_store(tracking_uri)
                fail_stale_trials(study, conf.backend.stale_after_seconds)
                lock.acquire()
                hold_interrupts()  # a claim, and the record of a trial's end, are whole
                step = next_step(study, conf.sweep, grid_size, deadline, started)
                if step == "run":
                    _claim_and_run(study, objective, worker)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                away.seen(exc)
                step = "wait"
            finally:
                lock.release()
                release_interrupts()
            if away.too_long():
                log.error("worker %d stops: %s", worker, away.describe())
                sys.exit(OUTAGE_EXIT)
            if step == "stop":
                return
            if step == "wait" or away.since is not None:
                time.sleep(away.backoff() or min(WAIT_SECONDS, conf.backend.heartbeat_seconds))
    except BaseException as exc:
        if not interrupted(exc):
            raise
    finally:
        lock.release()


def _claim_and_run(study: optuna.Study, objective, worker: int) -> None:
    try:
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
    except (UpdateFinishedTrialError, ValueError) as exc:
        if not isinstance(exc, UpdateFinishedTrialError) and \
                not str(exc).startswith("Cannot tell a"):
            raise
        # paused past stale_after_seconds: another worker failed this trial and queued it
        # again, so the result here is not the trial's any more
        log.warning("worker %d was paused long enough for its trial to be failed and queued "
                    "again; its result is dropped (%s)", worker, exc)


class Outage:
    """A worker's view of the services it needs being away: since when, how long to wait
    before the next try, and when to give up (`backend.outage_seconds`)."""

    def __init__(self, limit: float):
        self.limit = limit
        self.since: float | None = None
        self.last = ""
        self.tries = 0

    def seen(self, exc: BaseException) -> None:
        self.since = self.since or time.monotonic()
        self.last = f"{exc.__class__.__name__}: {exc}".strip().splitlines()[0][:300]
        self.tries += 1

    def over(self) -> None:
        if self.since is not None:
            log.warning("the services are back after %.0f s", time.monotonic() - self.since)
        self.since, self.tries = None, 0

    def backoff(self) -> float:
        """2, 4, 8, 8, ... s: a service back after a restart is seen within 8 s."""
        return 0.0 if self.since is None else min(2.0 ** self.tries, 8.0)

    def too_long(self) -> bool:
        return self.since is not None and time.monotonic() - self.since > self.limit

    def describe(self) -> str:
        return (f"the tracking store or the Optuna storage has been unreachable for over "
                f"{self.limit:.0f} s (backend.outage_seconds): {self.last}")


class BeyondBudget(Exception):
    """A trial claimed past `sweep.n_trials`; it fails, set aside, and never runs."""


def run_workers(conf: FaqtuneConfig, space: SearchSpace, data_path: str,
                parent_run_id: str) -> Counts:
    """Start the workers and show progress until they finish; Ctrl-C stops them cleanly."""
    started = time.time()
    deadline = started + conf.sweep.timeout_s if conf.sweep.timeout_s else None
    context = worker_context()
    workers = [context.Process(target=worker_main, daemon=False, args=(
        conf, space, data_path, mlflow.get_tracking_uri(), parent_run_id, i, started, deadline,
        os.getcwd(), dict(os.environ))) for i in range(conf.backend.n_workers)]
    for process in workers:
        process.start()
    study = load_study(conf, space)
    counts = _count_through_outages(study, started, Counts())
    bar = progress_bar(conf.sweep, counts.done)
    stopped, shown, ended = False, None, None
    try:
        while any(p.is_alive() for p in workers):
            counts = _count_through_outages(study, started, counts)
            _show(bar, counts)
            if bar.disable and (counts.done, counts.failed) != shown:  # a log, not a TTY
                shown = (counts.done, counts.failed)
                log.info("sweep %s: %d/%d trials done (%d pruned), %d running, %d failed, "
                         "best %s", conf.sweep.name, counts.done, conf.sweep.n_trials,
                         counts.pruned, counts.running, counts.failed,
                         "-" if counts.best is None else f"{counts.best:.4f}")
            over = counts.done >= conf.sweep.n_trials or (deadline and time.time() > deadline)
            if over and not counts.running:
                ended = ended or time.monotonic()
                alive = [p for p in workers if p.is_alive()]
                if any(_frozen(p.pid) for p in alive) or \
                        time.monotonic() - ended > conf.backend.stale_after_seconds + 10:
                    _stop_lingering(alive)
            # back within a second, or as soon as a worker exits (the sweep may be over)
            multiprocessing.connection.wait([p.sentinel for p in workers if p.is_alive()],
                                            timeout=1.0)
    except KeyboardInterrupt:
        stopped = True
        log.warning("interrupted: stopping the workers")
        _stop(workers)
    finally:
        for process in workers:
            process.join(timeout=STOP_SECONDS)
        _close_left_runs(study, parent_run_id)
        counts = _count_through_outages(study, started, counts)
        counts.interrupted = stopped
        counts.outage = any(p.exitcode == OUTAGE_EXIT for p in workers)
        _show(bar, counts)
        bar.close()
    return counts


def _count_through_outages(study: optuna.Study, started: float, last: Counts) -> Counts:
    """The counts, or the last ones while the Optuna storage is away (the workers ride it
    out, or stop and say so)."""
    try:
        return count(study, failures_since=started)
    except Exception as exc:
        if not is_outage(exc):
            raise
        return last


def _close_left_runs(study: optuna.Study, parent_run_id: str) -> None:
    """No trial run of this sweep may stay RUNNING unless its trial still runs (on another
    machine): a worker stopped while MLflow was starting its run, or a trial whose run could
    not be closed while the tracking store was away, leaves one."""
    client = MlflowClient()
    try:
        experiment = retrying(lambda: client.get_run(parent_run_id)).info.experiment_id
        left = find_runs([experiment], {PARENT_TAG: parent_run_id, ROLE_TAG: "trial"},
                         status="RUNNING")  # not a final run another machine is making
        # read after the runs: a trial started meanwhile (elsewhere) is among them
        running = {t.number
                   for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        for run in left:
            trial = run.data.tags.get("optuna.trial")
            if trial is not None and trial.isdigit() and int(trial) in running:
                continue
            # a worker closes its run before it ends its trial: one closed meanwhile stays so
            if retrying(lambda: client.get_run(run.info.run_id)).info.status == "RUNNING":
                _mark_killed(client, run.info.run_id)
    except Exception as exc:
        if not (isinstance(exc, MlflowException) or is_outage(exc)):
            raise
        log.warning("could not close the runs that trials left RUNNING: %s", exc)


def _stop(workers: list) -> None:
    """Workers in the terminal's process group got Ctrl-C too; others (the driver alone
    got SIGTERM) are sent SIGTERM, which a worker always acts on (SIGINT may be ignored:
    a sweep started from a script in the background inherits that); one that is already
    stopping ignores it. Each marks its running trial killed; one that does not stop in
    time is killed (a frozen process acts on SIGKILL alone), so Ctrl-C ends the sweep in
    bounded time."""
    for process in workers:
        process.join(timeout=2)
        if process.is_alive() and not _frozen(process.pid):
            process.terminate()
            process.join(timeout=60)
        if process.is_alive():
            log.warning("worker %d does not respond (frozen?): killed; its trial, if any, "
                        "runs again", process.pid)
            process.kill()
            process.join(timeout=STOP_SECONDS)


def _stop_lingering(alive: list) -> None:
    """Every trial is done, yet a worker has not exited: it is stopped (SIGSTOP, a
    debugger: seen at once) or stuck (I/O: long past the time it needs to see that), and
    would hold the sweep open. It has no trial left to lose."""
    log.warning("the sweep's trials are all done but worker(s) %s have not exited "
                "(frozen?): stopping them", ", ".join(str(p.pid) for p in alive))
    _stop(alive)


def _frozen(pid: int) -> bool:
    """Stopped by a signal or a debugger (Linux; False where /proc cannot tell)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")


def progress_bar(sweep: SweepConfig, done: int, **options) -> tqdm:
    """The sweep's bar, started at the trials already done: a resumed sweep's rate and time
    left count only this run's trials (not recovered ones "done" in the first second)."""
    return tqdm(total=sweep.n_trials, initial=done, desc=f"sweep {sweep.name}", unit="trial",
                **{"disable": None, **options})


def _show(bar: tqdm, counts: Counts) -> None:
    bar.n = counts.done
    best = "-" if counts.best is None else f"{counts.best:.4f}"
    bar.set_postfix_str(f"running {counts.running} pruned {counts.pruned} "
                        f"failed {counts.failed} best {best}")
    bar.refresh()


# -- the sweep's study and parent run ------------------------------------------------------
def open_study(conf: FaqtuneConfig, space: SearchSpace, identity: dict[str, str]) -> optuna.Study:
    """Load or create the study; refuse one run with other settings. Call holding the
    parent lock."""
    location = storage_location(conf)
    if conf.backend.restart:
        try:
            optuna.delete_study(study_name=conf.sweep.name,
                                storage=open_storage(location, conf.backend.stale_after_seconds))
            log.warning("backend.restart=true: study %r deleted; starting afresh", conf.sweep.name)
        except KeyError:
            pass  # nothing to delete
    study, created = _create_or_load(conf, space)
    stored = study.user_attrs.get(IDENTITY_ATTR) if not created else None
    waited = time.monotonic()
    while stored is None and not created and time.monotonic() - waited < IDENTITY_WAIT_SECONDS \
            and not study.get_trials(deepcopy=False):
        time.sleep(0.1)  # its creator (another driver) is about to record its settings
        stored = study.user_attrs.get(IDENTITY_ATTR)
    if stored is None and not study.get_trials(deepcopy=False):
        study.set_user_attr(IDENTITY_ATTR, identity)
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([conf.sweep.metric])  # optuna-dashboard's objective name
        if trains_configured_model(conf):
            params = space.fixed(dataclasses.asdict(conf.model))
            study.enqueue_trial(params)
            log.info("trial 0 trains the configured model (%s of the %d sampled settings "
                     "at their configured values)", len(params), len(space.names))
        return study
    if stored != identity:
        found = differences(stored or {}, identity) if stored else [
            "the study was made by an older faqtune, which did not record its settings"]
        trials = len(study.get_trials(deepcopy=False))
        raise ConfigError(
            f"Sweep {conf.sweep.name!r} ({redact(location)}) was run with other settings, so "
            f"its {trials} trials cannot be compared with this run: {'; '.join(found)}. "
            f"Give this sweep a new name (sweep.name=...), or start {conf.sweep.name!r} afresh "
            "with backend.restart=true (its trials leave the study; their MLflow runs stay).")
    return study


def trains_configured_model(conf: FaqtuneConfig) -> bool:
    """Whether trial 0 trains the configured model (queued when the study is made)."""
    return conf.backend.start_from_defaults and conf.sweep.sampler != "grid"


def configured_model_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The complete trial that trained the configured model: trial 0, or the run that
    replaced it after an outage or a stale heartbeat (`retry_of`, followed)."""
    lineage = {0}
    for trial in study.get_trials(deepcopy=False):
        if trial.number in lineage or trial.user_attrs.get("retry_of") in lineage:
            lineage.add(trial.number)
            if trial.state == TrialState.COMPLETE:
                return trial
    return None


def _create_or_load(conf: FaqtuneConfig, space: SearchSpace) -> tuple[optuna.Study, bool]:
    """The study, and whether this call made it. Creation is atomic in the storage itself
    (a study name is unique there), so of two drivers that share a storage but not a lock
    (two caches on one SQLite or MySQL storage), exactly one records its settings and the
    other compares against them."""
    try:
        return load_study(conf, space, load_if_exists=False), True
    except optuna.exceptions.DuplicatedStudyError:
        return load_study(conf, space), False


def sweep_parent(conf: FaqtuneConfig, study: optuna.Study) -> str:
    """The parent run of this study's trials: the one recorded on the study, else a new one
    (closing any earlier parent of the same sweep name whose study is gone)."""
    client = MlflowClient()
    parent = os.environ.get("MLFLOW_RUN_ID") or study.user_attrs.get(PARENT_ATTR)
    if parent:
        try:
            if retrying(lambda: client.get_run(parent)).info.lifecycle_stage == "active":
                study.set_user_attr(PARENT_ATTR, parent)
                return parent
        except MlflowException:
            pass  # deleted from the tracking store: start a new parent
    experiment = retrying(lambda: client.get_experiment_by_name(conf.tracking.experiment))
    orphans = find_runs([experiment.experiment_id],
                        {SWEEP_TAG: conf.sweep.name, "faqtune.role": "parent"})
    run = retrying(lambda: client.create_run(
        experiment.experiment_id, run_name=f"sweep {conf.sweep.name}",
        tags=provenance_tags({SWEEP_TAG: conf.sweep.name, "faqtune.role": "parent"})))
    for orphan in orphans:
        if "faqtune.superseded_by" in orphan.data.tags:
            continue
        log.warning("run %s was the parent of an earlier study named %r that no longer "
                    "exists; new parent %s", orphan.info.run_id, conf.sweep.name,
                    run.info.run_id)
        retrying(lambda: client.set_tag(orphan.info.run_id, "faqtune.superseded_by",
                                        run.info.run_id))
        if orphan.info.status == "RUNNING":
            retrying(lambda: client.set_terminated(orphan.info.run_id, "KILLED"))
    study.set_user_attr(PARENT_ATTR, run.info.run_id)
    return run.info.run_id


def run_sweep(conf: FaqtuneConfig, space: SearchSpace, data: PreparedData,
              data_path: Path) -> SweepOutcome:
    """Run the sweep's missing trials with local workers; the outcome for finalize."""
    # the parent's record draws Optuna's plots: imported here, not in every worker
    from faqtune.tuning.report import describe_parent, log_study

    identity = sweep_identity(conf, space, data.data_hash)
    # Storage schema, study and parent run are made once, however many machines start at once;
    # every write to the shared parent run holds the lock too (concurrent tag upserts collide).
    with holding(parent_lock(conf)):
        repair_journal(storage_location(conf))
        study = open_study(conf, space, identity)
        parent = sweep_parent(conf, study)
        describe_parent(conf, space, parent, identity,
                        storage_location(conf))
        done = count(study).done
        if done >= conf.sweep.n_trials:
            log.warning("sweep %r already has %d finished trials (sweep.n_trials=%d): no new "
                        "trial runs; raise sweep.n_trials to add some", conf.sweep.name, done,
                        conf.sweep.n_trials)
    if done >= conf.sweep.n_trials:  # nothing to run: no worker starts
        counts = count(study, failures_since=time.time())
    else:
        conf = replace(conf, backend=replace(conf.backend, n_workers=worker_count(
            conf.backend.n_workers, conf.sweep.n_trials, done)))
        counts = run_workers(conf, space, str(data_path), parent)
    if counts.outage and counts.done < conf.sweep.n_trials:  # others may have finished it
        raise ServiceUnavailable(
            f"Sweep {conf.sweep.name!r} stopped after {counts.done} of {conf.sweep.n_trials} "
            "trials: the tracking store or the Optuna storage was unreachable for longer than "
            f"backend.outage_seconds={conf.backend.outage_seconds:g} (the workers' last lines say "
            "which). Run the same command again once it is back: the sweep resumes.")
    study = load_study(conf, space)
    with holding(parent_lock(conf)):
        log_study(study, parent, conf.sweep.metric)
    outcome = SweepOutcome(parent, complete=counts.complete, pruned=counts.pruned,
                           failed=counts.failed, running=counts.running,
                           interrupted=counts.interrupted, data_hash=data.data_hash,
                           test_questions=len(data.split("test")))
    if counts.complete:
        best = study.best_trial
        outcome.best_trial, outcome.best_value, outcome.best_params = \
            best.number, best.value, dict(best.params)
        outcome.best_run_id = best.user_attrs.get(RUN_ID_ATTR)
        start = configured_model_trial(study) if trains_configured_model(conf) else None
        if start is not None:
            outcome.start_trial, outcome.start_params = start.number, dict(start.params)
            outcome.start_run_id = start.user_attrs.get(RUN_ID_ATTR)
    else:
        outcome.first_error = next((t.user_attrs[ERROR_ATTR] for t in study.trials
                                    if ERROR_ATTR in t.user_attrs), None)
    return outcome

