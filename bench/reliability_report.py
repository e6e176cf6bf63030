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

# The third probe's cases (shared review "reliability-probe-3"): their ids repeat the first
# probe's, so its tests are listed here by name, never named by id.
THIRD_PROBE = {
    "A1": ("a tampered prepared set trains silently under the original data hash",
           ["test_dataset::test_a_changed_or_damaged_prepared_set_is_refused_naming_the_folder"]),
    "A2": ("two caches on one RDB storage can both open a study with other settings",
           ["test_optuna_backend::test_two_drivers_with_their_own_caches_on_one_rdb_storage_"
            "never_share_a_study"]),
    "SEC1": ("serving: no limit on questions per request, memory O(questions x FAQs)",
             ["test_pyfunc::test_bad_requests_are_refused_with_a_message",
              "test_pyfunc::test_a_request_is_ranked_block_by_block_as_one_block_ranks_it"]),
    "SEC-known": ("the feature cache runs any pickle placed in it",
                  ["test_vectors::test_a_poisoned_or_torn_cache_entry_is_computed_again_and_"
                   "never_runs_code"]),
    "B1": ("a worker frozen while it holds the sweep lock stalls the whole sweep",
           ["test_locks::test_a_frozen_holder_is_passed_once_silent_past_the_limit",
            "test_locks::test_a_live_holder_keeps_its_lock_past_the_limit",
            "test_frozen_worker::test_a_worker_frozen_at_the_claim_lock_does_not_stall_the_sweep",
            "test_faults::test_B18_a_worker_paused_past_the_stale_limit_goes_on_after_resuming"]),
    "B2": ("Ctrl-C cannot stop a sweep with a frozen worker",
           ["test_frozen_worker::test_ctrl_c_ends_a_sweep_whose_worker_is_frozen_at_the_claim_"
            "lock"]),
    "B3": ("PostgreSQL Optuna storage restarted mid-sweep: tracebacks, exit 1",
           ["test_outages::test_a_postgres_optuna_storage_restarted_mid_sweep_is_ridden_out",
            "test_errors::test_a_dead_database_is_an_outage_however_optuna_wraps_it",
            "test_errors::test_a_dead_tracking_server_is_an_outage",
            "test_errors::test_a_fault_of_the_trial_or_the_request_is_not_an_outage"]),
    "B4": ("tracking-server restart: a failed trial's run RUNNING forever, counted as a failure",
           ["test_outages::test_a_tracking_server_restarted_mid_sweep_is_ridden_out",
            "test_faults::test_tracking_server_going_away_mid_sweep_then_resume"]),
    "B5": ("a PostgreSQL or unusable SQLite tracking store: 105 s, then exit 1",
           ["test_runs::test_a_database_tracking_store_that_is_down_fails_in_seconds_as_an_"
            "outage",
            "test_runs::test_a_sqlite_store_that_cannot_be_a_database_is_refused_naming_"
            "tracking_uri"]),
    "C1": ("a damaged prepared set gives exit 1 \"faqtune bug\"",
           ["test_dataset::test_a_changed_or_damaged_prepared_set_is_refused_naming_the_folder"]),
    "C2": ("Hydra override syntax errors exit 1",
           ["test_cli::test_a_composition_error_exits_2_with_one_paragraph"]),
    "C3": ("disk full during register is reported as a bad model URI",
           ["test_register::test_disk_full_while_register_loads_the_model_is_named_as_disk_full"]),
    "C4": ("disk full while train logs the model names the wrong device; run left RUNNING",
           ["test_cli::test_disk_full_during_a_copy_names_the_destination_not_the_source",
            "test_train::test_C4_a_full_disk_at_the_model_leaves_the_run_failed_and_no_"
            "partial_model"]),
    "C5": ("catalogues of at most k FAQs report gain@k = 1.0 without a warning",
           ["test_table::test_a_one_faq_catalogue_is_refused_and_a_small_one_warns_gain_at_k_is_"
            "trivial"]),
    "D1": ("Azure: ${{...}} in values substituted; some values change in the Hydra round trip",
           ["test_azure_common::test_every_value_reads_back_from_its_override_as_itself",
            "test_azure_common::test_an_azure_expression_in_a_value_is_refused_before_any_job_"
            "is_built"]),
    "D2": ("the logged model's input example can be refused by the model",
           ["test_record::test_the_models_input_example_is_a_faq_text_that_serving_accepts"]),
    "D3": ("deeply nested JSON gives a bare 500 (MLflow's scoring server)", []),
    # what the probe did not try
    "not tried 1": ("two `faqtune.main` in one folder at once",
                    ["test_concurrent_tasks::test_two_main_pipelines_in_one_folder_share_one_"
                     "sweep_and_register_once"]),
    "not tried 2": ("a sweep and `faqtune.register` at the same moment",
                    ["test_concurrent_tasks::test_a_register_during_a_sweep_leaves_the_better_"
                     "version_as_champion",
                     "test_registry_race::test_eight_concurrent_registrations_leave_the_best_"
                     "as_champion_sqlite"]),
    "not tried 3": ("disk full at prepare's rename",
                    ["test_faults::test_interrupted_prepare_leaves_nothing_reusable"]),
    "not tried 4": ("a hung tracking server during the stale-trial cleanup",
                    ["test_outages::test_a_tracking_server_hung_while_a_lost_trial_is_cleaned_"
                     "up_is_ridden_out"]),
    "not tried 5": ("50,000 FAQs end to end (time, memory)",
                    ["test_matcher::test_the_neighbourhood_norms_run_in_blocks_sized_by_the_"
                     "neighbourhood",
                     "test_training::test_a_long_fit_logs_featurizing_and_boosting_progress"]),
}
THIRD_PROBE_UNTESTED = {
    "D3": "not fixed: MLflow's scoring server parses the request before faqtune's model sees "
          "it; the server stays up and answers the next request (MLflow's open issue "
          "mlflow/mlflow#4897: `mlflow models serve` answers bad input with HTTP 500, not 400)",
    "not tried 3": "a rename within one device needs no space; the writes before it fill a "
                   "scratch folder, which a killed or failed prepare never leaves under the "
                   "final name (the test above)",
    "not tried 5": "run once with `model.pool=128` (`faqtune.train data.synthetic.originals="
                   "64000 data.synthetic.dupes_median=5 data.min_dupes=3 data.match=10 "
                   "model.estimators=100 training.period=50 model.pool=128`: 49,889 FAQs, "
                   "337,863 training questions): 11 min 44 s wall, peak 6.2 GiB, tune gain@1 "
                   "0.509. It found two defects, both fixed and tested: minutes without a "
                   "line while the neighbourhood norms ran in blocks of 2 FAQs, and a first "
                   "boosting estimate of 49,219 s left (the clock started before "
                   "featurizing). Without a pool such a trial takes hours (docs/benchmarks.md, "
                   "section 5)",
}
THIRD_PROBE_TESTS = {test for _, tests in THIRD_PROBE.values() for test in tests}

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
        # an id the third probe lists the test under is that probe's (ids are reused)
        named = cases_named(name) - {case for case, (_, tests) in THIRD_PROBE.items()
                                     if test in tests}
        cases = named | {case for case, tests in TESTS_BY_CASE.items() if test in tests}
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


def third_probe_table(rows: list[tuple[str, str, float]]) -> list[str]:
    outcomes: dict[str, list[str]] = {}
    for name, outcome, _ in rows:
        outcomes.setdefault(name.split("[")[0], []).append(outcome)
    out = ["## The third probe's cases", "",
           "| case | what the probe found | tests in this run and their result |",
           "|---|---|---|"]
    for case, (finding, tests) in THIRD_PROBE.items():
        shown = []
        for test in tests:
            found = outcomes.get(test)
            if not found:
                shown.append(f"`{test}` **not in this run**")
                continue
            failed = sum(o == "FAILED" for o in found)
            verdict = f"{failed} of {len(found)} FAILED" if failed else (
                "passed" if all(o == "passed" for o in found) else found[0])
            cases = f" ({len(found)} cases)" if len(found) > 1 else ""
            shown.append(f"`{test}`{cases} {verdict}")
        if case in THIRD_PROBE_UNTESTED:
            shown.append(THIRD_PROBE_UNTESTED[case])
        out.append(f"| {case} | {finding} | {'<br>'.join(shown) or '**no test**'} |")
    return out + [""]


def relevant(name: str, classname: str) -> bool:
    """A reliability test, or one a probe case names: the junit file may hold the whole
    suite (CI's `make test` can write it)."""
    module = classname.rsplit(".", 1)[-1]
    test = f"{module}::{name.split('[')[0]}"
    return (".reliability." in f".{classname}." or bool(cases_named(f"{module}::{name}"))
            or any(test in tests for tests in TESTS_BY_CASE.values())
            or test in THIRD_PROBE_TESTS)


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
        *third_probe_table(rows),
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
