"""The Optuna backend (`faqtune.tuning.optuna_backend`): the study a sweep opens, its
storage and journal, samplers, worker counts and failure counting. A name that starts with a
case id (`test_A1_...`) is a case of the reliability probe (docs/reliability.md)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import optuna
import pytest

from faqtune.config import SweepConfig, to_object
from faqtune.data.prepare import prepare
from faqtune.errors import ConfigError, FaqtuneError, is_outage
from faqtune.sweep import sweep
from faqtune.tuning.identity import sweep_identity
from faqtune.tuning.optuna_backend import (count, load_study, make_pruner, make_sampler,
                                           open_storage, open_study, progress_bar,
                                           worker_count)
from faqtune.tuning.space import parse_space
from tests.helpers import (SMALL_SPACE, TINY_DATA, TINY_RUN, assert_database_refused, free_port,
                           journal_study, run_task, sweep_conf)


def test_trial_zero_of_a_new_sweep_trains_the_configured_model(make_cfg):
    """`backend.start_from_defaults`: the sweep never overlooks the model it starts from."""
    conf = to_object(make_cfg("model.ngrams=3", "model.learning_rate=0.05"))
    space = parse_space("matcher", conf.sweep.space.params)
    study = open_study(conf, space, sweep_identity(conf, space, "hash"))
    drawn = space.suggest(study.ask())
    configured = {name: getattr(conf.model, name) for name in space.names}
    assert drawn == pytest.approx(configured) and drawn["ngrams"] == 3
    assert len(study.get_trials(deepcopy=False)) == 1, "enqueued once, when the study is made"


def test_trials_that_fail_before_they_start_end_the_sweep_at_max_failures(make_cfg, store):
    conf = sweep_conf(make_cfg, store, "backend.n_workers=1", "sweep.pruner=none",
                      "sweep.n_trials=50", "sweep.max_failures=3", params=SMALL_SPACE)
    space = parse_space("matcher", conf.sweep.space.params)
    mlflow.set_tracking_uri(store)
    data, _, _ = prepare(conf.data, Path(conf.paths.cache))
    study = open_study(conf, space, sweep_identity(conf, space, data.data_hash))
    # a stored trial whose `ngrams` has another distribution: every new suggest raises
    study.add_trial(optuna.trial.create_trial(
        params={"ngrams": 2}, distributions={"ngrams": optuna.distributions.IntDistribution(1, 4)},
        state=optuna.trial.TrialState.FAIL))
    with pytest.raises(FaqtuneError, match=r"Every trial .* \(3 failed.*distribution"):
        sweep(conf)
    assert len(load_study(conf, space).trials) == 1 + 3, "stopped at sweep.max_failures"


def test_two_drivers_with_their_own_caches_on_one_rdb_storage_never_share_a_study(make_cfg,
                                                                                tmp_path):
    """Third probe, A2: two project folders (two caches, so two lock files) share a SQLite
    Optuna storage and open the same sweep name with other settings at the same instant: in
    every attempt one opens it and the other is refused."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    for attempt in range(4):
        outcomes, barrier = {}, threading.Barrier(2, timeout=60)
        confs = [to_object(make_cfg(f"sweep.seed={seed}", f"backend.storage={storage}",
                                    f"sweep.name=race{attempt}",
                                    f"paths.cache={tmp_path / f'cache{seed}'}"))
                 for seed in (0, 1)]  # composed here: Hydra's compose is not thread-safe

        def open_one(seed: int) -> None:
            conf = confs[seed]
            space = parse_space("matcher", conf.sweep.space.params)
            identity = sweep_identity(conf, space, "hash")
            barrier.wait()
            try:
                open_study(conf, space, identity)
                outcomes[seed] = "opened"
            except ConfigError as exc:
                outcomes[seed] = "refused" if "sweep.seed" in str(exc) else str(exc)

        threads = [threading.Thread(target=open_one, args=(seed,)) for seed in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes.values()) == ["opened", "refused"], (attempt, outcomes)
        study = optuna.load_study(study_name=f"race{attempt}", storage=storage)
        assert len(study.trials) == 1, "trial 0 enqueued once, by the driver that opened it"


def test_failures_count_unless_a_worker_was_lost_or_interrupted():
    study = optuna.create_study()
    for attrs in ({}, {"error": "x"}, {"stale": True}, {"interrupted": True}):
        trial = study.ask()
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert count(study).failed == 2


# -- the probe's cases -------------------------------------------------------------------
@pytest.mark.slow
def test_A1_a_torn_journal_is_cut_back_and_the_finished_trials_survive(tmp_path):
    common = [*TINY_RUN, "training.period=10", "backend.n_workers=1", "sweep.finalize=false",
              "sweep.pruner=none", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
              f"paths.cache={tmp_path / 'c'}"]
    run_task("sweep", *common, "sweep.n_trials=2", cwd=tmp_path)
    journal = tmp_path / "c" / "optuna" / "faqtune-sweep.journal"
    with journal.open("ab") as out:  # what a write cut short by a full disk leaves
        out.write(b'{"op_code": 5, "worker_id": "x", "trial_id": 1, "param_')
    for _ in range(2):  # the probe's second resume made the study unreadable for good
        run_task("sweep", *common, "sweep.n_trials=3", cwd=tmp_path)
    states = [t.state.name for t in journal_study(tmp_path / "c").trials]
    assert states.count("COMPLETE") == 3


def test_B11_the_largest_sweep_seed_seeds_every_worker():
    space = parse_space("matcher", {"ngrams": {"choice": [1, 2]}})
    for worker in range(3):  # seed * 1000 + worker overflowed 2**32 at b122cd4
        assert make_sampler(SweepConfig(seed=2**32 - 1), space, worker,
                            startup_trials=3) is not None


def test_B14_an_unreachable_optuna_storage_is_an_outage_named_in_one_line(tmp_path):
    proc = run_task("sweep", *TINY_DATA, f"tracking.uri=sqlite:///{tmp_path / 'm.db'}",
                    f"backend.storage=postgresql://u:pw-B14x@127.0.0.1:{free_port()}/optuna",
                    f"paths.cache={tmp_path / 'c'}", cwd=tmp_path, check=False)
    assert_database_refused(proc, "backend.storage=postgresql://u:***@127.0.0.1",
                            "Optuna storage", "pw-B14x")
    if proc.returncode == 2:
        assert "pip install -e '.[postgres]'" in proc.stderr, "what to install"


def test_a_sqlite_optuna_storage_that_is_a_folder_is_refused_naming_sweep_storage(tmp_path):
    """Exit 2 naming the key (the third probe saw exit 3, an outage, for a configuration
    error): the same check as tracking.uri's."""
    folder = tmp_path / "storage"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"backend.storage=sqlite:///.*storage is a folder"):
        open_storage(f"sqlite:///{folder}")


def test_B17_workers_are_capped_at_the_trials_left():
    assert worker_count(6, n_trials=1, done=0) == 1
    assert worker_count(6, n_trials=10, done=8) == 2
    assert worker_count(2, n_trials=10, done=9) == 1
    assert worker_count(2, n_trials=10, done=0) == 2


def test_a_resumed_sweeps_progress_counts_only_its_own_trials_in_the_rate():
    """Newcomer review: after a resume the bar said `1/6 [00:01<00:05, 1.01s/trial]`,
    counting a recovered trial as done in its first second."""
    out = io.StringIO()
    bar = progress_bar(SweepConfig(n_trials=10), done=5, file=out, disable=False, mininterval=0)
    time.sleep(0.5)
    bar.update(1)
    bar.close()
    shown = out.getvalue().split("\r")[-1]
    value, unit = re.search(r"([\d.]+)(s/trial|trial/s)", shown).groups()
    per_second = float(value) if unit == "trial/s" else 1 / float(value)
    assert "6/10" in shown and 0.5 <= per_second <= 2.5, shown  # one trial in 0.5 s, not six


@pytest.mark.slow
def test_postgresql_ends_the_transaction_a_frozen_worker_left_open(postgres):
    """A worker frozen inside a storage call (SIGSTOP, a debugger) keeps its transaction and
    its locks open; the other workers' storage calls would wait on them for ever. The server
    ends such a transaction after backend.stale_after_seconds, and the others go on."""
    pytest.importorskip("psycopg2", reason="the PostgreSQL drivers come with the postgres extra")
    import sqlalchemy

    url = postgres("frozen_transaction")
    frozen = open_storage(url, stale_after=1.0).engine.connect()
    frozen.begin()
    frozen.execute(sqlalchemy.text("LOCK TABLE studies IN ACCESS EXCLUSIVE MODE"))
    other = sqlalchemy.create_engine(url, connect_args={"options": "-c lock_timeout=20000"})
    started = time.monotonic()
    with other.connect() as connection:  # without the setting: waits 20 s, then fails
        assert connection.execute(sqlalchemy.text("SELECT count(*) FROM studies")).scalar() == 0
    assert time.monotonic() - started < 10
    with pytest.raises(sqlalchemy.exc.DBAPIError) as ended:  # the server ended its session
        frozen.execute(sqlalchemy.text("SELECT 1"))
    assert is_outage(ended.value), "once resumed, the worker retries as after an outage"
    other.dispose()


def test_with_folds_a_pruner_counts_folds_and_wilcoxon_compares_them(make_cfg):
    """With sweep.folds a trial reports once per fold (steps 1 to folds): the median rule
    waits delay_evaluation folds, not delay_evaluation periods of rounds."""
    conf = to_object(make_cfg("experiment=cross_validated"))
    median = make_pruner(conf.sweep, conf.training.period, conf.model.estimators, 3)
    assert isinstance(median, optuna.pruners.MedianPruner)
    assert median._n_warmup_steps == conf.sweep.delay_evaluation == 2
    wilcoxon = make_pruner(dataclasses.replace(conf.sweep, pruner="wilcoxon"),
                           conf.training.period, conf.model.estimators, 3)
    assert isinstance(wilcoxon, optuna.pruners.WilcoxonPruner)



def test_a_worker_sizes_every_thread_pool_to_its_share_of_the_cores():
    """Not only LightGBM's threads: OpenMP and OpenBLAS pools sized for every core in each
    worker spun on the cores the other workers trained on (2 workers on 2 cores: trials
    twice as long). A fresh process, as a worker is, without *_NUM_THREADS set."""
    script = ("import json, os, threadpoolctl\n"
              "from faqtune.tuning.optuna_backend import limit_threads\n"
              "threads = limit_threads(os.cpu_count())\n"
              "print(json.dumps([threads, threadpoolctl.threadpool_info()]))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items()
                                            if not k.endswith("_NUM_THREADS")})
    assert proc.returncode == 0, proc.stderr
    threads, pools = json.loads(proc.stdout)
    assert threads == 1
    assert {"openmp", "openblas"} <= {pool["internal_api"] for pool in pools}, pools
    assert {pool["num_threads"] for pool in pools} == {1}, pools
