"""Write docs/reliability.md from a run of the reliability suite.

    FAQTUNE_RELIABILITY_LOG=obs.jsonl pytest tests/reliability <PROBE_TESTS> --junitxml=junit.xml
    (or the whole suite: tests that neither sit in tests/reliability nor name a probe case
    are left out of the report)
    python bench/reliability_report.py obs.jsonl junit.xml > docs/reliability.md

(`make reliability-report` does both.) Every figure comes from that run: the observations the
tests recorded and pytest's own result for every test. The first table follows the
adversarial probe's report case by case: each case, the tests that provoke it, and their
result in this run. A test names its case in its name (`test_B5_...`) or in a parameter's id
(`test_invalid_settings_...[B5-data.encoding=klingon]`), or is listed in `TESTS_BY_CASE`
below.
"""

from __future__ import annotations

import json
import platform
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path


# The probe's cases (shared review "reliability-probe"), in its order and words, shortened.
PROBE_CASES = {
    "A1": "disk full tears the Optuna journal; the next resume makes it unreadable",
    "A2": "a sweep re-run on other data or another space silently reuses stale trials",
    "A3": "two registrations at once move the alias to the worse model",
    "A4": "table source drops questions whose id equals an FAQ id, and repeated ids",
    "A5": "Parquet nulls become the text \"none\" and are served as answers",
    "A6": "a bad download (206 with the whole file, an HTML page) is cached for ever",
    "SEC1": "passwords in URLs reach logs, params, files and tracebacks",
    "SEC2": "quadratic text cleaning: a 1 MB question blocks the server for minutes",
    "SEC3": "a .7z with absolute member paths makes prepare read any local folder",
    "B1": "corrupt gzip: zlib.error traceback",
    "B2": "gzip bomb: MemoryError, whole-machine memory at risk",
    "B3": "data.path a symlink loop: RuntimeError traceback",
    "B4": "unreadable data folder: PermissionError traceback",
    "B5": "unknown data.encoding or XML encoding: LookupError traceback",
    "B6": "a duplicate link without RelatedPostId: KeyError traceback",
    "B7": "Posts.xml a folder or a symlink loop: OSError traceback",
    "B8": "an encrypted or corrupt .7z: py7zr/LZMA traceback",
    "B9": "a download whose Content-Length is not a number: ValueError traceback",
    "B10": "data.download.timeout_s=0 accepted, then a ValueError traceback",
    "B11": "seeds out of range accepted, then a ValueError traceback",
    "B12": "backend=azureml without the azure extra: ModuleNotFoundError traceback",
    "B13": "two tasks on a fresh SQLite store: 'table already exists'",
    "B14": "Optuna storage down: traceback with the password printed",
    "B15": "Ctrl-C during finalize: traceback, parent run left RUNNING",
    "B16": "SIGTERM orphans the workers, which keep running",
    "B17": "n_workers above n_trials (or 10000) accepted: memory exhausted",
    "B18": "a worker paused past stale_after_seconds dies on resume",
    "B19": "disk full during prepare: OSError traceback",
    "B20": "unwritable paths.cache: three chained Hydra tracebacks",
    "B21": "a truncated or incomplete prepared data set: ArrowInvalid / FileNotFoundError",
    "C1": "every MLflow error is blamed on the tracking server (apostrophes, '', disk full)",
    "C2": "sweep.metric unchecked; a sweep whose every trial failed exits 0",
    "C3": "registry.metric unchecked; wrong advice after the whole sweep ran",
    "C4": "a complete .part gives HTTP 416 on every rerun",
    "C5": "non-UTF-8 CSV: the wrong byte position",
    "C6": "an FAQ with an empty question is reported as unknown",
    "C7": "an unreadable file is called an incomplete gzip",
    "C8": "dump files in two folders of a .7z: the message names a deleted scratch path",
    "C9": "serving: top_k unchecked, null and empty questions ranked",
    "D1": "sweep.name with ../ writes outside the cache",
    "D2": "Ctrl-C of train: traceback, run FAILED not KILLED",
    "D3": "two sweeps of one name at once both finalize",
    "D4": "a dead tracking URI takes 257 s to fail",
    "D5": "out-of-range values accepted (timeouts, weights, names, sizes, a missing folder)",
    "D6": "prepared data folders are mode 0700",
    "D7": "the feature cache is unchecked pickles with no size limit",
}

# Tests whose names do not carry their case id.
TESTS_BY_CASE = {
    "A2": ["test_identity::test_a_sweep_rerun_on_other_data_or_space_stops_before_any_work"],
    "A3": ["test_registry_race::test_eight_concurrent_registrations_leave_the_best_as_champion_sqlite",
           "test_registry_race::test_eight_concurrent_registrations_leave_the_best_as_champion_server"],
    "SEC1": ["test_secrets::test_a_canary_password_in_every_url_setting_reaches_no_channel",
             "test_secrets::test_no_secret_reaches_params_tags_artifacts_or_logs",
             "test_redact::test_passwords_in_urls_are_masked_before_logging"],
    "SEC2": ["test_clean::test_a_hostile_megabyte_is_cleaned_in_linear_time",
             "test_clean::test_clean_text_always_returns_plain_lowercase_text_quickly"],
    "B15": ["test_sweep::test_ctrl_c_marks_running_trials_killed_in_both_stores_and_prints_the_summary"],
    "B16": ["test_sweep::test_ctrl_c_marks_running_trials_killed_in_both_stores_and_prints_the_summary"],
    "C1": ["test_train::test_hydra_multirun_nests_one_run_per_job_under_a_parent"],
    "C2": ["test_optuna_backend::test_trials_that_fail_before_they_start_end_the_sweep_at_max_failures"],
    "C9": ["test_pyfunc::test_bad_requests_are_refused_with_a_message"],
    "D2": ["test_train::test_sigterm_during_training_marks_the_run_killed"],
    "D3": ["test_finalize::test_finalize_runs_once_per_best_trial"],
}

# Cases without a test of their own, and why.
UNTESTED = {
    "B4": "not provoked: the tests run as root, which reads every folder. The code path is "
          "B3's and B7's (an OSError becomes a one-paragraph error naming the path)",
    "D7": "documented (README, \"The served model\"): share a cache only with people you trust",
}

CASE_ID = re.compile(r"(A|SEC|B|C|D)\d+")


def cases_named(test: str) -> set[str]:
    """The ids leading the function name or its parameter id: `test_B5_B10_values_...` ->
    {"B5", "B10"}, `test_invalid_settings_...[B11-data.seed=-1]` -> {"B11"}."""
    function, _, parameter = test.split("::")[-1].partition("[")
    cases = set()
    for tokens in (function.removeprefix("test_").split("_"), parameter.split("-")):
        for token in tokens:
            if not CASE_ID.fullmatch(token):
                break
            cases.add(token)
    return cases


def probe_table(rows: list[tuple[str, str, float]]) -> list[str]:
    by_case: dict[str, dict[str, list[str]]] = {}
    for name, outcome, _ in rows:
        test = name.split("[")[0]
        cases = cases_named(name) | {case for case, tests in TESTS_BY_CASE.items()
                                     if test in tests}
        for case in cases:
            by_case.setdefault(case, {}).setdefault(test, []).append(outcome)
    out = ["## The probe's cases", "",
           "| case | what the probe found | tests in this run and their result |",
           "|---|---|---|"]
    for case, finding in PROBE_CASES.items():
        tests = by_case.get(case)
        if not tests:
            out.append(f"| {case} | {finding} | {UNTESTED.get(case, '**no test**')} |")
            continue
        shown = []
        for test, outcomes in tests.items():
            failed = sum(o == "FAILED" for o in outcomes)
            verdict = f"{failed} of {len(outcomes)} FAILED" if failed else (
                "passed" if all(o == "passed" for o in outcomes) else outcomes[0])
            cases = f" ({len(outcomes)} cases)" if len(outcomes) > 1 else ""
            shown.append(f"`{test}`{cases} {verdict}")
        out.append(f"| {case} | {finding} | {'<br>'.join(shown)} |")
    return out + [""]


def relevant(name: str, classname: str) -> bool:
    """A reliability test, or one a probe case names: the junit file may hold the whole
    suite (CI's `make test` can write it)."""
    module = classname.rsplit(".", 1)[-1]
    test = f"{module}::{name.split('[')[0]}"
    return (".reliability." in f".{classname}." or bool(cases_named(f"{module}::{name}"))
            or any(test in tests for tests in TESTS_BY_CASE.values()))


def results(junit: Path) -> list[tuple[str, str, float]]:
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if not relevant(case.get("name", ""), case.get("classname", "")):
            continue
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "FAILED"
            elif child.tag == "skipped":
                outcome = f"skipped ({child.get('message', '')})"
        module = case.get("classname", "").rsplit(".", 1)[-1]
        rows.append((f"{module}::{case.get('name')}", outcome, float(case.get("time", 0))))
    return rows


def main(observations: Path, junit: Path) -> str:
    seen = [json.loads(line) for line in observations.read_text().splitlines() if line.strip()]
    rows = results(junit)
    passed = sum(outcome == "passed" for _, outcome, _ in rows)
    out = [
        "# Reliability",
        "",
        f"Generated by `make reliability-report` on {time.strftime('%Y-%m-%d')} "
        f"({platform.python_version()}, {platform.machine()}): {passed} of {len(rows)} tests "
        "passed. Each scenario below is provoked by a test in `tests/reliability/` against real "
        "services (an `mlflow server` process and a PostgreSQL cluster on 127.0.0.1, Optuna "
        "journal and RDB storage, worker processes killed with real signals).",
        "",
        *probe_table(rows),
        "## Scenarios and observed outcomes",
        "",
    ]
    for item in seen:
        out += [f"### {item['scenario']}", "", f"- How: {item['provoked']}",
                f"- Test: `{item['test']}`", "- Observed:", ""]
        out += [f"  - {key}: `{json.dumps(value)}`" for key, value in item["outcome"].items()]
        out.append("")
    out += ["Also part of every `make test` run, in the fast suite: hostile XML (a DTD, "
            "\"billion laughs\" entities, an external entity, malformed XML) refused with a "
            "clear error before any expansion (`tests/data/test_stackexchange.py::"
            "test_hostile_or_malformed_xml_is_refused`); downloads with a size limit, checksum, "
            "resume and no partial file under the final name (`tests/data/test_download.py`).",
            ""]
    out += ["## Every test in this run", "", "| test | result | seconds |", "|---|---|---|"]
    out += [f"| `{name}` | {outcome} | {seconds:.1f} |" for name, outcome, seconds in rows]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(main(Path(sys.argv[1]), Path(sys.argv[2])))
