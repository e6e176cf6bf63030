"""What every task shares: Hydra wiring, clean errors, and the JSON summary line.

Nothing here imports MLflow, Optuna, LightGBM or scikit-learn: `--help`, tab completion and
configuration errors answer before any of them would load.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import importlib
import json
import logging
import os
import re
import shlex
import string
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import hydra
import hydra._internal.utils as hydra_internals
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from faqtune.config import MOVED_SETTINGS, register_configs, unknown_key_message
from faqtune.errors import ConfigError, FaqtuneError, ServiceUnavailable, disk_full
from faqtune.interrupts import stop_on_interrupt
from faqtune.redact import redact

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
log = logging.getLogger("faqtune")
INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C


def command_line(task_name: str) -> str | None:
    """The command that ran this task, as a user would type it again (None outside Hydra)."""
    if not HydraConfig.initialized():
        return None
    overrides = HydraConfig.get().overrides.task
    return " ".join(["python", "-m", f"faqtune.{task_name}", *map(shlex.quote, overrides)])


def emit_summary(summary: dict) -> None:
    """The last stdout line of every task: one JSON object."""
    sys.stdout.flush()
    print(json.dumps(summary, default=str), flush=True)


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def multirun_summary(jobs: list[dict]) -> dict:
    """A multirun's one summary: what its jobs share (their parent run), then each job's."""
    shared = {key: jobs[0][key] for key in ("parent_run_id",)
              if key in jobs[0] and all(job.get(key) == jobs[0][key] for job in jobs)}
    return {**shared, "jobs": [{k: v for k, v in job.items() if k not in shared}
                               for job in jobs]}


def _fail(message: str, code: int) -> None:
    """Print the error once (stderr), and keep it in the task's log file."""
    message = redact(message)
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (message,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


class RedactOutputs(Callback):
    """Hydra writes each job's raw overrides into `multirun.yaml`: mask them there.
    (Its log lines are masked by the filter in conf/hydra/*_logging/faqtune.yaml.)"""

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        path = Path(config.hydra.sweep.dir) / "multirun.yaml"
        if path.exists():
            text = path.read_text()
            if redact(text) != text:
                scratch = path.with_suffix(".yaml.tmp")
                scratch.write_text(redact(text))
                scratch.replace(path)


class CheckCacheFolder(Callback):
    """Hydra creates its run folder under `paths.cache` before any task code runs: an
    unwritable cache would end in Hydra's traceback, so it is checked first."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config)

    @staticmethod
    def _check(config: DictConfig) -> None:
        cache = Path(str(config.paths.cache or "."))
        try:
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=cache, prefix=".write-check-"):
                pass
        except OSError as exc:
            _fail(f"paths.cache={cache} is not a folder faqtune can write to "
                  f"({exc.strerror or exc}); point paths.cache at a writable folder.", 2)


def quiet_mlflow() -> None:
    """MLflow's download bars and schema hints say nothing about faqtune's work; a user
    who wants them sets MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow prints "View run ... at <tracking URI>" unmasked; the summary has `runs_url`
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")


# MLflow error codes that mean the request itself was refused, not that the server is down
REFUSED = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "MALFORMED_REQUEST", "INVALID_STATE",
           "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "ALREADY_EXISTS",
           "RESOURCE_CONFLICT", "INVALID_STATE_TRANSITION"}
NOT_ALLOWED = {"PERMISSION_DENIED", "UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"}


def explain(exc: Exception) -> tuple[str, int]:
    """One paragraph and an exit code for a failure faqtune did not raise itself."""
    full = disk_full(exc)
    if full:
        # a failed copy names its source first and its destination (the full one) second
        where = full.filename2 or full.filename or "an output"
        known = full.strerror in (None, os.strerror(errno.ENOSPC))
        return (f"No space left on the device holding {where}"
                f"{'' if known else f' ({full.strerror})'}; free some space and run the same "
                "command again (a sweep resumes where it stopped).", 3)
    # an MlflowException can only come from a task that has already loaded MLflow
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and isinstance(exc, mlflow.exceptions.MlflowException):
        where = mlflow.get_tracking_uri()
        reason = (exc.message.strip().splitlines() or [exc.error_code])[0]
        if exc.error_code in REFUSED:
            return (f"MLflow at {where} refused a request ({exc.error_code}): {reason}. Check "
                    "the settings it names (tracking.experiment, registry.*, sweep.name).", 2)
        if exc.error_code in NOT_ALLOWED:
            return (f"MLflow at {where} refused access ({exc.error_code}): {reason}. Check the "
                    "credentials (MLFLOW_TRACKING_USERNAME/PASSWORD or TOKEN) and that this "
                    "user may write to the experiment and the model registry.", 2)
        return (f"MLflow tracking failed at {where} ({exc.error_code}): {reason}. Check that "
                "the tracking server is up and its store is writable; a sweep resumes where "
                "it stopped when run again.", 3)
    return (f"unexpected {exc.__class__.__name__}: {exc}. This is a faqtune bug or a failure "
            "it does not know yet; rerun with HYDRA_FULL_ERROR=1 for the traceback.", 1)


# What a value that OmegaConf could not convert should have been
EXPECTED_TYPES = {"Float": "a number", "Integer": "a whole number", "bool": "true or false",
                  "Boolean": "true or false", "str": "a string"}


def _culprit_override(args: list[str]) -> str | None:
    """The first command-line argument that Hydra's override grammar cannot parse."""
    parser = OverridesParser.create()
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            parser.parse_override(arg)
        except HydraException:
            return arg
    return None


def config_error_message(exc: Exception) -> str | None:
    """One paragraph, naming the key and what it expects, for an error Hydra raised while
    reading the command line or composing `conf/`; None when `exc` is no such error."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        where = f"conf/{group}/" if group else "conf/"
        return (f"Invalid configuration: {group or 'config'}={name} names no file in {where}; "
                f"expected one of {', '.join(group_options(group)) or '(none found)'}.")
    if isinstance(exc, OverrideParseException):
        culprit = _culprit_override(sys.argv[1:])
        reason = str(exc).splitlines()[0]
        return (f"Cannot read the override {culprit or 'on the command line'}: {reason}; "
                "write key=value, quoting values with spaces or special characters "
                "(https://hydra.cc/docs/advanced/override_grammar/basic/).")
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException) and cause.full_key:
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and \
                dataclasses.is_dataclass(cause.object_type):
            message = unknown_key_message(cause.object_type, cause.full_key)
            return message if cause.full_key in MOVED_SETTINGS else message + \
                " Add new keys to the schema in faqtune/config.py, not with +key=value."
        reason = str(cause.msg).splitlines()[0]
        wanted = re.search(r"converted to (\w+)|not a valid (\w+)", reason)
        expected = EXPECTED_TYPES.get(next(filter(None, wanted.groups()), "")) if wanted else None
        return (f"Invalid configuration: {cause.full_key}={cause.value!r}: {reason}"
                + (f"; expected {expected}." if expected else "."))
    if isinstance(exc, (HydraException, OmegaConfBaseException)):
        text = str(exc).split("\nConfig search path:")[0]
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if cause is not None:
            lines.append(str(cause).splitlines()[0])
        return "Invalid configuration: " + "; ".join(lines).rstrip(".") + "."
    return None


def _report_config_errors(run_and_report: Callable) -> Callable:
    """Hydra prints its own composition errors and exits 1; faqtune's promise is one
    paragraph and exit 2 for every configuration error. Hydra has no hook for this, so
    its reporting function (hydra-core 1.3) is wrapped once, at start-up."""

    @functools.wraps(run_and_report)
    def report(func: Callable):
        try:
            return func()
        except Exception as exc:
            message = None if os.environ.get("HYDRA_FULL_ERROR") == "1" else \
                config_error_message(exc)
            if message is None:
                def reraise():
                    raise exc
                return run_and_report(reraise)
            _fail(message, 2)

    report.faqtune_wrapped = True
    return report


def check_choices() -> None:
    """A `*_schema` node is what a group's YAML files build on, not an option to pick: it
    composes, so Hydra would accept `model=matcher_schema` without a word."""
    if not HydraConfig.initialized():
        return
    for group, option in HydraConfig.get().runtime.choices.items():
        if isinstance(option, str) and option.endswith("_schema"):
            raise ConfigError(f"Invalid configuration: {group}={option} is the schema the "
                              f"{group} options build on, not an option; expected one of "
                              f"{', '.join(group_options(group))}.")


def task_help(job_name: str) -> str:
    """The task's own description for `--help`: its module docstring."""
    name = job_name.removeprefix("faqtune-").removeprefix("faqtune.")
    try:
        doc = importlib.import_module(f"faqtune.{name}").__doc__ or ""
    except ImportError:
        return "faqtune"
    return doc.strip().splitlines()[0].replace("`", "")


def group_options(group: str) -> list[str]:
    """The options a user picks for `group`: its files under `conf/`, never the `*_schema`
    nodes they build on (which Hydra lists too)."""
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml")) if group else []


def config_groups() -> str:
    """`group: option, ...` for each config group under `conf/` but Hydra's own."""
    groups = sorted({path.parent.relative_to(CONF_DIR).as_posix()
                     for path in CONF_DIR.rglob("*.yaml") if path.parent != CONF_DIR})
    return "".join(f"{group}: {', '.join(group_options(group))}\n" for group in groups
                   if not group.startswith("hydra"))


def help_text(job_name: str) -> str:
    """`--help` rendered from `conf/hydra/help/faqtune.yaml` without composing the config:
    Hydra's own help lists every group of Hydra's too, a second of start-up per call."""
    spec = OmegaConf.create({"hydra": {"help": OmegaConf.load(CONF_DIR / "hydra/help/faqtune.yaml"),
                                       "job": {"name": job_name}}})
    return string.Template(spec.hydra.help.template).safe_substitute(
        APP_CONFIG_GROUPS=config_groups())


def task(run: Callable[[DictConfig], dict]) -> Callable[[], None]:
    """Turn `run(cfg) -> summary` into a Hydra app that prints errors as one paragraph."""
    register_configs()
    if not getattr(hydra_internals.run_and_report, "faqtune_wrapped", False):
        hydra_internals.run_and_report = _report_config_errors(hydra_internals.run_and_report)
    if not OmegaConf.has_resolver("faqtune_task_help"):
        OmegaConf.register_new_resolver("faqtune_task_help", task_help)

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    @functools.wraps(run)
    def main(cfg: DictConfig) -> dict:
        quiet_mlflow()
        stop_on_interrupt()
        try:
            check_choices()
            summary = run(cfg)
            if summary.get("run_id"):
                from faqtune.tracking.runs import where_to_look

                summary.update(where_to_look(summary))
        except KeyboardInterrupt:
            _fail("interrupted; runs in progress were marked KILLED (a sweep resumes where it "
                  "stopped when run again)", INTERRUPTED)
        except ServiceUnavailable as exc:
            _fail(str(exc), 3)
        except FaqtuneError as exc:
            _fail(str(exc), 2)
        except Exception as exc:  # a bug or an unforeseen failure: one paragraph, no secrets
            message, code = explain(exc)
            if code == 1 and os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            _fail(message, code)
        if _in_multirun():  # one summary for the whole multirun, printed at its end
            log.info("job %s: %s", HydraConfig.get().job.num, json.dumps(summary, default=str))
            multirun_jobs.append(summary)
        else:
            emit_summary(summary)
        if summary.get("interrupted"):
            sys.exit(INTERRUPTED)
        return summary

    multirun_jobs: list[dict] = []

    @functools.wraps(main)
    def entry(*args, **kwargs):
        if {"--help", "-h"} & set(sys.argv[1:]):
            job_name = Path(sys.argv[0]).stem.removeprefix("faqtune-")
            print(help_text(job_name), end="")
            return None
        result = main(*args, **kwargs)
        if multirun_jobs:
            emit_summary(multirun_summary(multirun_jobs))
        return result

    return entry
