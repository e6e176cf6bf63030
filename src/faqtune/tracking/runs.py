"""Where runs go and how they nest: MLflow URI, experiment, parent and child runs.

Under `mlflow run`, MLFLOW_RUN_ID names the run the project created; tasks log into it,
and child runs name their parent explicitly, because a nested `start_run` would be
hijacked by that variable (mlflow#1348).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Callable, TypeVar

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from faqtune.config import AzureConfig, TrackingConfig
from faqtune.errors import ConfigError, ServiceUnavailable, database_errors
from faqtune.interrupts import interrupts_held
from faqtune.tracking.locks import FileLock, NoLock, holding
from faqtune.redact import redact

log = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "faqtune.role"  # parent, trial or final (the retrain a finalize registers)
SWEEP_TAG = "faqtune.sweep"  # on a sweep's parent and final runs: the sweep's name
T = TypeVar("T")
BUSY = ("database is locked", "database table is locked", "could not serialize access",
        # two writers upserting one tag at once (MLflow's merge is select-then-insert);
        # the retry finds the row and updates it
        "duplicate key value violates unique constraint", "UNIQUE constraint failed")


def retrying(call: Callable[[], T], attempts: int = 8, first_wait: float = 0.1) -> T:
    """`call()`, retried with exponential backoff while the tracking store is busy.

    Several processes writing to one store meet "database is locked" (SQLite) or a lost
    upsert race (PostgreSQL); both are worth waiting for. Every other error is raised at once.
    """
    for attempt in range(attempts):
        try:
            with interrupts_held():  # a write cut short by Ctrl-C could lock the store
                return call()
        except Exception as exc:  # MLflow wraps the driver's error in several types
            if attempt == attempts - 1 or not any(b in str(exc) for b in BUSY):
                raise
            wait = first_wait * 2 ** attempt
            log.info("tracking store busy, retrying in %.1fs", wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


REPO = Path(__file__).resolve().parents[3]


def configure(tracking: TrackingConfig, azure: AzureConfig | None = None) -> str:
    """Point MLflow at the configured store and experiment; return the tracking URI.

    The default store (MLflow's `sqlite:///mlflow.db`) is made absolute, so the URI a task
    prints works from any folder.
    """
    if tracking.kind == "azureml":
        from faqtune.tracking.azureml import workspace_tracking_uri

        mlflow.set_tracking_uri(workspace_tracking_uri(azure or AzureConfig()))
    elif tracking.uri:
        mlflow.set_tracking_uri(tracking.uri)
    uri = mlflow.get_tracking_uri()
    check_store(uri)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        mlflow.set_tracking_uri(f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}")
    # A new SQLite store is created (tables, migrations) by whichever process comes first:
    # processes starting together take turns, or they trip over each other's migrations.
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        check_sqlite_file(uri)
    first_use = FileLock(Path(uri.removeprefix("sqlite:///") + ".faqtune-init.lock")) \
        if uri.startswith("sqlite:///") else NoLock()
    with holding(first_use):
        if os.environ.get("MLFLOW_RUN_ID"):
            _warn_if_other_experiment(tracking.experiment)
        else:
            _set_experiment(tracking.experiment)
    return mlflow.get_tracking_uri()


def check_store(uri: str) -> None:
    """A tracking server or database that does not answer is an outage (exit 3), found in
    seconds; a local store needs no check."""
    if uri.startswith(("http://", "https://")):
        check_reachable(uri)
    elif uri.startswith(DATABASE_SCHEMES):
        check_database(uri)


def check_reachable(uri: str, timeout_s: float = 10.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when nothing answers at a
    tracking server's address (any HTTP answer, even 401, means a server is there)."""
    parts = urllib.parse.urlsplit(uri)
    try:
        with socket.create_connection((parts.hostname, parts.port or (
                443 if parts.scheme == "https" else 80)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ServiceUnavailable(
            f"No tracking server answers at {redact(uri)} ({exc.strerror or exc}). Start it, "
            "fix tracking.uri, or leave tracking.uri unset for a local store.") from None


DATABASE_SCHEMES = ("postgresql", "mysql", "mssql")
SQLITE_HEADER = b"SQLite format 3\x00"


def check_database(uri: str, timeout_s: int = 5) -> None:
    """Fail in seconds, not after MLflow's 105 s of connection retries, when the tracking
    store's database is down (exit 3) or cannot be the store (exit 2)."""
    import sqlalchemy

    timeout = {"connect_timeout": timeout_s} if uri.startswith(("postgresql", "mysql")) else {}
    with database_errors("tracking.uri", uri, "tracking store",
                         "install it, or name a driver the URL can use (e.g. "
                         "postgresql+psycopg2://)."):
        engine = sqlalchemy.create_engine(uri, connect_args=timeout)
        with engine.connect():
            pass
        engine.dispose()


def check_sqlite_file(uri: str, key: str = "tracking.uri") -> None:
    """A SQLite store's path must be a SQLite file, or a new file in an existing folder."""
    path = Path(uri.removeprefix("sqlite:///"))
    problem = None
    if not path.parent.is_dir():
        problem = f"the folder {path.parent} does not exist; create it first, or fix the path"
    elif path.is_dir():
        problem = (f"{path} is a folder; name a database file in it, e.g. "
                   f"sqlite:///{path / 'mlflow.db'}")
    elif path.exists() and path.stat().st_size:
        try:
            with path.open("rb") as handle:
                header = handle.read(len(SQLITE_HEADER))
        except OSError as exc:
            problem = f"{path} cannot be read ({exc.strerror})"
        else:
            if header != SQLITE_HEADER:
                problem = f"{path} is not a SQLite database"
    if problem:
        raise ConfigError(f"{key}={redact(uri)}: {problem}.")


def _set_experiment(name: str, attempts: int = 6) -> None:
    """`mlflow.set_experiment`, safe when several processes start on a new store at once:
    one of them creates the experiment (or the store's tables) first, and the others,
    told "already exists", look again."""
    for attempt in range(attempts):
        try:
            mlflow.set_experiment(name)
            return
        except Exception as exc:  # MlflowException or the driver's OperationalError
            if "already exists" not in str(exc).lower() and \
                    getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _warn_if_other_experiment(wanted: str) -> None:
    """Under `mlflow run` the run exists already, in the experiment `mlflow run` chose."""
    try:
        run = MlflowClient().get_run(os.environ["MLFLOW_RUN_ID"])
        name = MlflowClient().get_experiment(run.info.experiment_id).name
    except MlflowException:
        return
    if name != wanted:
        log.warning("this run is in experiment %r, not %r (tracking.experiment): `mlflow run` "
                    "chose it; pass --experiment-name %s to `mlflow run`", name, wanted, wanted)


def where_to_look(summary: dict) -> dict:
    """The store and a link to the runs view of a task's run (not MLflow's GenAI overview)."""
    run_id = summary.get("run_id")
    if not run_id or not isinstance(run_id, str):
        return {}
    uri = mlflow.get_tracking_uri()
    try:
        experiment = MlflowClient().get_run(run_id).info.experiment_id
    except Exception:  # an Azure ML run id, or the store is gone: nothing to link
        return {}
    view = f"#/experiments/{experiment}/runs/{run_id}?workflowType=machine_learning"
    if uri.startswith("azureml"):  # its runs are jobs: the studio shows them, no local UI
        return {"tracking_uri": redact(uri),
                "runs_url": f"https://ml.azure.com/runs/{run_id}"}
    if uri.startswith("http"):
        return {"tracking_uri": redact(uri), "runs_url": f"{redact(uri).rstrip('/')}/{view}"}
    return {"tracking_uri": redact(uri),
            "mlflow_ui": f"mlflow ui --backend-store-uri {shlex.quote(redact(uri))} "
                         "--host 127.0.0.1 --port 5000",
            "runs_url": f"http://127.0.0.1:5000/{view}"}




def quoted(value: str) -> str:
    """`value` as a string literal of an MLflow search filter (names may hold quotes)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"{value!r} holds both quote characters; MLflow filters cannot match it")


def find_runs(experiment_ids: list[str] | None, tags: dict[str, str],
              status: str | None = None, page_size: int = 1000) -> list:
    """Every run (all pages) whose tags equal `tags` and, if given, whose status is `status`.

    The filter keeps to what Azure ML's MLflow server documents: unquoted tag keys (OSS
    MLflow splits `tags.faqtune.role` at its first dot), `=` only, no status clause (Azure
    spells statuses its own way): the status is checked here. `None` searches every
    experiment."""
    client = MlflowClient()
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in retrying(client.search_experiments)]
    condition = " and ".join(f"tags.{key} = {quoted(value)}" for key, value in tags.items())
    runs, token = [], None
    while True:
        page = retrying(lambda: client.search_runs(experiment_ids, condition,
                                                   max_results=page_size, page_token=token))
        runs.extend(page)
        token = page.token
        if not token:
            return [run for run in runs if status is None or run.info.status == status]


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """{"model": {"ngrams": 2}} -> {"model.ngrams": 2}."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance_tags(tags: dict | None = None) -> dict:
    """`tags` plus what MLflow records on runs it starts itself (source, user, git
    commit): runs made with `MlflowClient.create_run` get none of them otherwise."""
    return resolve_tags({"faqtune.git_commit": git_commit() or "unknown", **(tags or {})})


def create_child_run(parent_run_id: str, run_name: str | None, tags: dict | None = None) -> str:
    """A run under `parent_run_id`, created explicitly (safe under MLFLOW_RUN_ID)."""
    client = MlflowClient()
    parent = retrying(lambda: client.get_run(parent_run_id))
    child = retrying(lambda: client.create_run(
        parent.info.experiment_id, run_name=run_name,
        tags=provenance_tags({PARENT_TAG: parent_run_id, **(tags or {})})))
    return child.info.run_id


@contextlib.contextmanager
def task_run(run_name: str | None = None, parent_run_id: str | None = None,
             tags: dict | None = None):
    """The active run of a task: a child of `parent_run_id`, the `mlflow run` run, or new."""
    if parent_run_id:
        run_id = create_child_run(parent_run_id, run_name, tags)
        context = mlflow.start_run(run_id=run_id)
    else:
        resumed = bool(os.environ.get("MLFLOW_RUN_ID"))  # `mlflow run` recorded the source
        context = mlflow.start_run(run_name=run_name,
                                   tags=tags if resumed else provenance_tags(tags))
    with context as run:
        try:
            yield run
        except KeyboardInterrupt:  # MLflow would say FAILED; the run was stopped
            mlflow.end_run("KILLED")
            raise


def find_or_create_parent(experiment: str, group_tag: str, group: str, run_name: str) -> str:
    """The one parent run of a group (a Hydra multirun, a sweep), made on first use."""
    if os.environ.get("MLFLOW_RUN_ID"):
        return os.environ["MLFLOW_RUN_ID"]
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    found = find_runs([experiment_id], {group_tag: group, ROLE_TAG: "parent"})
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=run_name,
                            tags=provenance_tags({group_tag: group, "faqtune.role": "parent"}))
    return run.info.run_id
