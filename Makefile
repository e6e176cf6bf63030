# Two commands do all set-up: `make demo` (run the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fast test-core reliability-report bench bench-quick quality quality-sweep quality-recovery quality-budget quality-folds semantic ui clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps make both targets idempotent: the second run reuses the venv until pyproject changes.
# uv resolves and installs in parallel: the whole dev set in about a minute where pip takes
# four or five. --compile-bytecode as pip does: where PYTHONDONTWRITEBYTECODE is set, every
# process would otherwise compile MLflow, pandas, ... again at each start (tests ran 50 %
# slower).
UV := $(BIN)/python -m uv pip install --compile-bytecode --python $(BIN)/python

$(BIN)/uv: | $(BIN)/python
	$(BIN)/pip install -q "uv>=0.5,<1"

$(VENV)/.installed-run: pyproject.toml | $(BIN)/uv
	@echo "Installing faqtune and its dependencies into $(VENV)..."
	$(UV) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/uv
	@echo "Installing faqtune with its dev, azure, azure-v1, postgres, semantic and scale extras into $(VENV)..."
	$(UV) -e ".[dev,azure-v1,postgres,semantic,scale]"
	touch $@ $(VENV)/.installed-run

demo: $(VENV)/.installed-run
	$(BIN)/python -m faqtune.main experiment=demo

# Fast tests on every core (pytest-xdist); then the slow end-to-end ones, two at a time;
# then the `serial` ones, whose signals, heartbeats and outages are timed, two at a time with
# nothing else beside them (three at a time, or both slow tiers together, took longer). Every
# LightGBM runs one thread: tests side by side, and a sweep's workers, each starting OpenMP
# threads for every core, spin against each other (the serial tier took 4:57 to 5:49 so,
# 3:55 with one thread each).
test: $(VENV)/.installed-dev
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not slow" -n auto
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "slow and not serial" -n 2 --durations=10
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "slow and serial" -n 2 --durations=10

test-fast: $(VENV)/.installed-dev
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not slow" -n auto

# The fast tests in a core-only environment: no Azure extra, so the newest MLflow resolves,
# and no semantic extra, so the tests that need it show they skip with their reason.
CORE_VENV ?= .venv-core
# What the core environment changes (MLflow's version, the extras that are missing) reaches
# these; data preparation and the model's math do not depend on either.
CORE_TESTS = tests/tracking tests/serving tests/tuning tests/features/test_encoder.py \
	tests/test_config.py tests/test_cli.py tests/test_train.py tests/test_sweep.py \
	tests/test_register.py tests/test_evaluate.py tests/test_main.py tests/test_project.py
test-core: $(VENV)/.installed-dev
	$(BIN)/python -m uv venv -q --allow-existing --python $(BIN)/python $(CORE_VENV)
	$(BIN)/python -m uv pip install --compile-bytecode --python $(CORE_VENV)/bin/python -e ".[dev]"
	OMP_NUM_THREADS=1 $(CORE_VENV)/bin/python -m pytest -m "not slow" -n auto $(CORE_TESTS)

# The probe's cases that are tested next to their module, not in tests/reliability: the files
# that hold them (the report leaves out their other tests) and single slow tests.
PROBE_TESTS = tests/test_cli.py tests/test_config.py tests/test_redact.py \
	tests/data/test_clean.py tests/data/test_dataset.py tests/data/test_download.py \
	tests/data/test_prepare.py tests/data/test_reference_tsv.py \
	tests/data/test_stackexchange.py tests/data/test_table.py \
	tests/tracking/test_azureml.py tests/tracking/test_runs.py \
	tests/tuning/test_finalize.py tests/tuning/test_identity.py \
	tests/tuning/test_optuna_backend.py tests/tuning/test_azure_common.py \
	tests/tracking/test_locks.py tests/test_errors.py \
	tests/features/test_vectors.py::test_a_poisoned_or_torn_cache_entry_is_computed_again_and_never_runs_code \
	tests/serving/test_pyfunc.py::test_bad_requests_are_refused_with_a_message \
	tests/serving/test_pyfunc.py::test_a_request_is_ranked_block_by_block_as_one_block_ranks_it \
	tests/test_register.py::test_disk_full_while_register_loads_the_model_is_named_as_disk_full \
	tests/tracking/test_record.py::test_the_models_input_example_is_a_faq_text_that_serving_accepts \
	tests/test_sweep.py::test_ctrl_c_marks_running_trials_killed_in_both_stores_and_prints_the_summary \
	tests/test_train.py::test_sigterm_during_training_marks_the_run_killed \
	tests/test_train.py::test_C4_a_full_disk_at_the_model_leaves_the_run_failed_and_no_partial_model \
	tests/test_train.py::test_hydra_multirun_nests_one_run_per_job_under_a_parent \
	tests/model/test_matcher.py::test_the_neighbourhood_norms_run_in_blocks_sized_by_the_neighbourhood \
	tests/model/test_training.py::test_a_long_fit_logs_featurizing_and_boosting_progress

reliability-report: $(VENV)/.installed-dev
	rm -f .faqtune/reliability.jsonl
	mkdir -p .faqtune
	FAQTUNE_RELIABILITY_LOG=$(CURDIR)/.faqtune/reliability.jsonl $(BIN)/python -m pytest \
		tests/reliability $(PROBE_TESTS) --junitxml=.faqtune/reliability.xml
	$(BIN)/python bench/reliability_report.py .faqtune/reliability.jsonl \
		.faqtune/reliability.xml > docs/reliability.md.tmp
	mv docs/reliability.md.tmp docs/reliability.md

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/benchmarks.py

bench-quick: $(VENV)/.installed-dev
	$(BIN)/python bench/benchmarks.py --quick

# Model quality on the realistic sets, 5 split seeds, with the default sweep and a sweep
# efficiency race per seed (about 30 min on 2 cores).
quality: $(VENV)/.installed-dev
	$(BIN)/python bench/quality.py --sweep --efficiency 16 --vary prior_weight=0,3,10,30 \
		--vary centroid_prior=1,3,10 --vary monotone=true,false --vary neighbours=1,30 \
		--vary estimators=300,1000 --vary ngrams=1,2,3 --vary char_ngrams=3,4,5 \
		--vary negatives=random,hard --vary objective=binary,lambdarank

# The default sweep per seed (pruning, the verdict, the trial finalized) against the sweep
# before them (a report every 100 rounds, so nothing pruned; always the best trial), on the
# same splits, about 20 min.
quality-sweep: $(VENV)/.installed-dev
	$(BIN)/python bench/quality.py --only "cs written" "cs real + written" --no-reference \
		--sweep --sweep-before training.period=100 sweep.select=best --section sweep-default \
		--title "The default sweep: pruning and the verdict, against the sweep before them"

# What the default sweep recovers where the defaults do not fit the data: the sweep started
# from the first release's generator-tuned matcher (prior_weight=30), about 20 min.
quality-recovery: $(VENV)/.installed-dev
	$(BIN)/python bench/quality.py --only "cs written" "cs real + written" --no-reference \
		--set model.prior_weight=30 --sweep --sweep-before training.period=100 sweep.select=best \
		--section sweep-recovery \
		--title "The default sweep from a matcher that does not fit (prior_weight=30)"

# The sweep's gain against its budget, from the defaults and from a matcher that does not fit
# (prior_weight=30): one study per split grown through 4, 8, 16 and 32 trials, finalized
# after each; what sweep.n_trials is chosen from. About 45 min.
quality-budget: $(VENV)/.installed-dev
	$(BIN)/python bench/quality.py --only "cs written" "cs real + written" --no-reference \
		--budget 4 8 16 32 --section sweep-budget \
		--title "The default sweep against its budget"
	$(BIN)/python bench/quality.py --only "cs written" "cs real + written" --no-reference \
		--set model.prior_weight=30 --budget 4 8 16 32 --section sweep-budget-recovery \
		--title "The recovery sweep (prior_weight=30) against its budget"

# The cross-validated sweep (experiment=cross_validated, 5 folds) against the one-split sweep,
# from a matcher that does not fit (prior_weight=30), 3 split seeds: about 27 min.
quality-folds: $(VENV)/.installed-dev
	$(BIN)/python bench/quality.py --only "cs written" "cs real + written" --no-reference \
		--seeds 1 2 3 --set model.prior_weight=30 --sweep --sweep-args experiment=cross_validated \
		--sweep-before sweep.folds=1 sweep.delay_evaluation=5 --section sweep-folds-recovery \
		--title "The cross-validated sweep (experiment=cross_validated, 5 folds) against the one-split sweep, from a matcher that does not fit (prior_weight=30)"

# The sentence encoder (experiment=semantic) against the default matcher, its cost and its
# serving latency (about 3 min), then its sweep per seed (about 20 min).
semantic: $(VENV)/.installed-dev
	$(BIN)/python bench/semantic.py
	$(BIN)/python bench/quality.py --set model.encoder=minilm --sweep \
		--only "cs written" "cs real + written" --no-reference --section quality-semantic \
		--title "The semantic matcher and its sweep on realistic data (experiment=semantic)"

ui: $(VENV)/.installed-run
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///$(CURDIR)/mlflow.db

clean:
	rm -rf .faqtune outputs multirun .pytest_cache
