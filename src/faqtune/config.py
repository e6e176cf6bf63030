"""Structured configs: the schema every file in `conf/` is checked against.

Hydra merges `conf/` into these dataclasses, so a wrong type or an unknown key fails at
composition; `validate` then checks ranges and names the offending key.
"""

from __future__ import annotations

import codecs
import dataclasses
import importlib.util
import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from faqtune.errors import ConfigError
from faqtune.model.metrics import metric_names

DATA_SOURCES = ("synthetic", "reference_tsv", "stackexchange", "table")
MODEL_NAMES = ("reference", "matcher")
OBJECTIVES = ("binary", "lambdarank")
NEGATIVES = ("random", "hard")
SAMPLERS = ("random", "tpe", "grid", "qmc")
PRUNERS = ("median", "bandit", "truncation", "hyperband", "wilcoxon", "none")
# beyond_noise: the best trial only if it beats trial 0 (the configured model) by more than
# one standard error on the tune questions, else the configured model; best: the best trial
SELECT_RULES = ("beyond_noise", "best")


# Each setting is declared here once, with its default and what it does; a file in `conf/`
# holds only what differs (`python -m faqtune.train --cfg job` prints every value in effect).


@dataclass
class SyntheticConfig:
    """The embedded, seeded JavaScript FAQ corpus (`data=synthetic`)."""

    originals: int = 120  # FAQs generated before filtering
    dupes_median: int = 16  # duplicates per FAQ are log-normal around this median
    dupes_max: int = 400
    noise: float = 0.5  # how often askers name things vaguely or wrongly and add stray words


@dataclass
class TableConfig:
    """Your own FAQs as two tables (CSV or Parquet) in `data.path` (`data=table`): the file
    names and the column that holds each field."""

    faqs: str = "faqs.csv"
    questions: str = "questions.csv"
    faq_id: str = "id"
    faq_text: str = "question"
    faq_answer: Optional[str] = "answer"  # null if you have no answers
    question_id: str = "id"
    question_faq_id: str = "faq_id"
    question_text: str = "text"


@dataclass
class DownloadConfig:
    timeout_s: float = 60.0
    max_bytes: int = 2_000_000_000
    sha256: dict[str, str] = field(default_factory=dict)


@dataclass
class DataConfig:
    source: str = "synthetic"
    path: Optional[str] = None
    prepared: Optional[str] = None  # a prepared data set folder: used as is, nothing re-prepared
    min_text: int = 150
    min_dupes: int = 12
    test_size: float = 0.10
    tune_size: float = 0.10
    match: int = 40
    seed: int = 42
    tag: Optional[str] = None  # stackexchange: keep only FAQs with this tag, e.g. javascript
    encoding: str = "utf-8"
    max_bytes: int = 8 << 30  # text read from one raw file, decompressed (gzip bombs stop)
    max_line_bytes: int = 16 << 20  # one line of a raw TSV file
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    table: TableConfig = field(default_factory=TableConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)


@dataclass
class ModelConfig:
    """What both models share; `model=<name>` picks the schema below that adds the rest."""

    name: str = MISSING
    estimators: int = 300  # boosting rounds
    ngrams: int = 2  # word n-grams of the TF-IDF features
    min_child_samples: int = 20
    match: int = 20  # candidates per training question (the true FAQ + match-1 negatives)
    unweighted: bool = False  # true: every training question counts alike, however big its FAQ
    n_jobs: int = 0  # threads; 0 = every core (a sweep worker gets its share)


@dataclass
class ReferenceConfig(ModelConfig):
    """The reference pipeline: per-side TF-IDF + LightGBM, settings of the reference script."""

    name: str = "reference"
    estimators: int = 1000
    min_child_samples: int = 10
    match: int = 5


@dataclass
class MatcherConfig(ModelConfig):
    """faqtune's matcher: text-similarity features + LightGBM (the estimator's docstring,
    `faqtune.model.matcher.FaqMatcher`, says more of each)."""

    name: str = "matcher"
    learning_rate: float = 0.03
    num_leaves: int = 31
    feature_fraction: float = 1.0
    objective: str = "binary"  # or lambdarank
    negatives: str = "random"  # random: the prepared random negatives; hard: the most similar wrong FAQs
    monotone: bool = True  # a higher similarity never lowers the score (regularises small data)
    prior_weight: float = 0.0  # boosting starts from this x (word + char cosine gap to the best FAQ); 0 = from nothing
    centroid_prior: float = 3.0  # an FAQ's own text counts as this many of its questions in its centroid
    neighbours: int = 30  # a FAQ's neighbourhood centroid pools the questions of its this many most similar FAQs (itself included)
    rarity_sharpness: float = 3.0  # how closely the shared-rare-word feature follows the single rarest word (soft maximum of IDF)
    rerank_top: int = 100  # LightGBM scores this many FAQs per question, shortlisted by similarity; 0 = all
    rank_cap: int = 256  # rank columns count the more similar FAQs up to this many; 0 = no cap
    pool: int = 0  # features for this many FAQs per question found by a cheap retrieval (large catalogues; the scale extra); 0 = every FAQ
    char_ngrams: int = 4  # character n-grams (char_wb 2..char_ngrams)
    encoder: str = "none"  # none, minilm (the semantic extra), or a folder: .onnx + tokenizer.json
    encoder_max_tokens: int = 256


MODEL_SCHEMAS = {"reference": ReferenceConfig, "matcher": MatcherConfig}


def hyperparameters(name: str) -> set[str]:
    """The names a search space may tune for model `name`: every field of its schema
    (`match` shapes the training pairs; `model.factory` passes the rest to the estimator)."""
    return {f.name for f in dataclasses.fields(MODEL_SCHEMAS[name])} - {"name"}


def _as_bool(value: Any) -> bool:
    """`bool("False")` is True: a boolean that crossed a boundary as text is read by name."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(value)


def _as_int(value: Any) -> int:
    """An integer, also from `"12"`, `"12.0"` or a sampler's `12.0`; never from a bool."""
    if isinstance(value, bool):
        raise ValueError(value)
    return value if isinstance(value, int) else int(float(value))


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)


_AS_TYPE = {"bool": _as_bool, "int": _as_int, "float": _as_float, "str": str}
_EXPECTED = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "text"}


def typed_hyperparameters(model: str, values: dict[str, Any], origin: str) -> dict[str, Any]:
    """`values` as the schema of model `model` types them. Every value that comes back from
    outside (MLflow params are strings; a sampler gives 12.0 for an integer) is typed here,
    once. `origin` names where the values came from, for the error."""
    kinds = {f.name: f.type for f in dataclasses.fields(MODEL_SCHEMAS[model])}
    typed = {}
    for name, value in values.items():
        if name not in kinds or name == "name":
            raise ConfigError(f"{origin}: {model!r} has no hyperparameter {name!r}; it has "
                              + ", ".join(sorted(hyperparameters(model))) + ".")
        try:
            typed[name] = _AS_TYPE[kinds[name]](value)
        except (TypeError, ValueError):
            raise ConfigError(f"{origin}: model.{name}={value!r} is not "
                              f"{_EXPECTED[kinds[name]]}.") from None
    return typed


@dataclass
class TrainingConfig:
    # log tune gain@k every `period` rounds and at the end: what the pruner sees (12 reports
    # in a default trial; it decides after sweep.delay_evaluation=5, 125 rounds)
    period: int = 25
    early_stopping_periods: int = 0  # stop after this many periods without a better early_stopping_metric (0 = off)
    early_stopping_metric: str = "tune_mrr"  # conf/config.yaml ties it to sweep.metric
    top_k: int = 5  # FAQs the served model returns per question
    max_question_chars: int = 20_000  # the served model refuses longer questions (HTTP 400)
    max_questions_per_request: int = 1_000  # ... and requests with more questions (HTTP 400)
    log_model: bool = True
    block_pairs: int = 131_072  # (question, FAQ) pairs scored at once: bounds memory
    cache_pairs: int = 4_000_000  # keep tune features between periods up to this many pairs
    dense_operand_mib: int = 256  # FAQ-side matrices up to this size (and at least 1 % filled) are kept dense (faster products); 0 = sparse


@dataclass
class TrackingConfig:
    uri: Optional[str] = None  # null: MLflow's default (sqlite:///mlflow.db in the working directory)
    experiment: str = "faqtune"
    run_name: Optional[str] = None  # null: a training run is named by its overrides
    kind: str = "mlflow"  # mlflow or azureml (`tracking=`)


@dataclass
class PathsConfig:
    cache: str = ".faqtune"  # prepared data, feature cache, Optuna journal, Hydra run folders


@dataclass
class SpaceConfig:
    model: str = "matcher"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepConfig:
    name: str = "faqtune-sweep"  # names the Optuna study, its journal and lock, and the parent run
    n_trials: int = 16
    timeout_s: Optional[float] = None  # stop starting trials after this many seconds
    sampler: str = "tpe"  # tpe, random, grid or qmc
    pruner: str = "median"  # median, bandit, truncation, hyperband, wilcoxon (needs folds > 1) or none
    delay_evaluation: int = 5  # reports before a trial may be pruned (periods; with folds > 1, folds)
    # 1: each trial is scored on the tune split; k > 1: k-fold cross-validation over the train
    # and tune questions (stratified by FAQ; the test split is never used), each fold a report
    # the pruner sees; the final model then trains on train + tune
    folds: int = 1
    wilcoxon_p_threshold: float = 0.1  # sweep.pruner=wilcoxon: prune below this p-value
    bandit_slack_factor: float = 0.1
    truncation_percentage: int = 20
    max_failures: int = 3  # failed trials that stop the sweep
    seed: int = 0
    metric: str = "tune_mrr"  # what the sweep maximises (gain@3 saturates near 1.0 on tune splits: no signal)
    final_estimators: int = 0  # the final model is retrained with this many rounds (0 = its trial's own)
    finalize: bool = True  # retrain, test and register the chosen trial
    # beyond_noise: finalize the best trial only if it beats trial 0 (the configured model) by
    # more than one standard error, else the configured model; best: always the best
    select: str = "beyond_noise"
    space: SpaceConfig = field(default_factory=SpaceConfig)  # the group sweep/space (conf/sweep/space/)


@dataclass
class ClusterConfig:
    name: str = "faqtune-cluster"  # reused if it exists, else created (needs AzureML Compute Operator)
    vm_size: str = "Standard_D4_v2"  # the reference's size; Dv2 retires 2028-05: Standard_D8s_v5 is close
    vm_priority: str = "dedicated"  # or lowpriority (cheaper, separate quota, may be preempted)
    min_nodes: int = 0
    max_nodes: int = 16  # 16 x D4_v2 = 128 Dv2 vCPUs of quota
    idle_seconds_before_scaledown: int = 120  # nodes left idle cost money: scale down soon


@dataclass
class BackendConfig:
    """What every sweep backend has; `backend=<name>` picks the schema below."""

    name: str = MISSING


@dataclass
class OptunaBackendConfig(BackendConfig):
    """Optuna workers on this machine (and on others sharing its storage), one MLflow store."""

    name: str = "optuna"
    n_workers: int = 2  # worker processes on this machine (never more than trials left)
    storage: Optional[str] = None  # an Optuna storage URL; default: a journal file under the cache
    startup_trials: int = 3  # TPE's random trials before it models the space
    start_from_defaults: bool = True  # trial 0 trains the configured model
    restart: bool = False  # true: delete the study of this name and start afresh
    heartbeat_seconds: float = 5.0
    stale_after_seconds: float = 30.0  # a running trial without a heartbeat this long is failed and queued again
    outage_seconds: float = 120.0  # ride out a tracking store or Optuna storage away this long, then exit 3


# The Optuna backend's settings lived under sweep.* before they moved to backend.*: an old key
# is refused with its new name rather than "unknown setting".
MOVED_SETTINGS = {f"sweep.{f.name}": f"backend.{f.name}"
                  for f in dataclasses.fields(OptunaBackendConfig) if f.name != "name"}


@dataclass
class AzureMLBackendConfig(BackendConfig):
    """An Azure ML sweep job (SDK v2, azure-ai-ml) on a compute cluster; the workspace comes
    from `azure.*` or config.json."""

    name: str = "azureml"
    sdk: str = "v2"  # v2: an azure-ai-ml sweep job; v1: HyperDrive (azureml-core, deprecated; the azure-v1 extra)
    dry_run: bool = False  # true: build the job offline and write it to spec_path
    spec_path: str = "${paths.cache}/azureml/sweep-job.yaml"  # CLI v2 YAML: az ml job create --file ...
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    environment_name: str = "faqtune"  # built from conda.yaml + azureml-mlflow, reused while unchanged
    image: str = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20250601.v1"
    max_concurrent_runs: int = 16
    max_duration_minutes: int = 10080
    trial_timeout_minutes: int = 120  # a hung trial frees its node after this (SDK v2)
    wait: bool = True  # false: submit, print the job name and studio link, return
    job_name: Optional[str] = None  # resume monitoring (and finalizing) a submitted sweep
    finalize: str = "local"  # local: retrain, test, register here; cluster: in a job there


BACKEND_SCHEMAS = {"optuna": OptunaBackendConfig, "azureml": AzureMLBackendConfig}


@dataclass
class AzureConfig:
    """Workspace settings; each also comes from the environment variable in the comment."""

    subscription_id: Optional[str] = None  # AZURE_SUBSCRIPTION_ID
    resource_group: Optional[str] = None  # AZURE_RESOURCE_GROUP
    workspace_name: Optional[str] = None  # AZUREML_WORKSPACE_NAME
    config_file: str = "config.json"  # Azure's usual workspace file (never commit it)
    interactive_login: bool = False  # true: browser login instead of the azure-identity chain


@dataclass
class RegistryConfig:
    model_name: str = "faqtune-faq-matcher"
    alias: str = "champion"  # the best version of the champion's data moves this alias
    metric: str = "test_gain_at_3"  # what "best" means for the champion


@dataclass
class FaqtuneConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = MISSING
    training: TrainingConfig = field(default_factory=TrainingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    backend: BackendConfig = MISSING
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    azure: AzureConfig = field(default_factory=AzureConfig)
    model_uri: Optional[str] = None
    run_id: Optional[str] = None


def register_configs() -> None:
    """The schemas `conf/` builds on: `faqtune_schema` for `config.yaml`, and
    `<name>_schema` in the `model` and `backend` groups for each model and backend file."""
    store = ConfigStore.instance()
    store.store(name="faqtune_schema", node=FaqtuneConfig)
    for group, schemas in (("model", MODEL_SCHEMAS), ("backend", BACKEND_SCHEMAS)):
        for name, schema in schemas.items():
            store.store(group=group, name=f"{name}_schema", node=schema)


# Upper bounds far above any sensible run: a typo such as `model.estimators=1e11` stops at
# start-up instead of running for days or exhausting memory.
MAX_ESTIMATORS = 100_000
MAX_MATCH = 10_000
MAX_SYNTHETIC_ORIGINALS = 100_000
MAX_SYNTHETIC_DUPES = 10_000
MAX_WORKERS = 256  # worker processes on one machine
MAX_FOLDS = 20


def _expect(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"Invalid configuration: {key}={value!r}; expected {expected}.")


def _int_range(key: str, value: int, low: int, high: int | None = None) -> None:
    upper = "" if high is None else f" and at most {high}"
    _expect(value >= low and (high is None or value <= high), key, value,
            f"an integer at least {low}{upper}")


def _positive(key: str, value: float | None, optional: bool = False) -> None:
    _expect((optional and value is None) or (value is not None and value > 0), key, value,
            "a positive number" + (" or null" if optional else ""))


def _not_empty(key: str, value: str | None, what: str = "name") -> None:
    _expect(bool(value and value.strip()), key, value, f"a non-empty {what}")


def _encoding(key: str, value: str) -> None:
    try:
        codecs.lookup(value)
    except LookupError:
        _expect(False, key, value, "a text encoding Python knows (utf-8, latin-1, cp1252, ...)")


def _one_of(key: str, value: str, options: tuple[str, ...]) -> None:
    _expect(value in options, key, value, "one of " + ", ".join(options))


def validate_data(data: DataConfig) -> None:
    _one_of("data.source", data.source, DATA_SOURCES)
    _int_range("data.min_text", data.min_text, 0)
    _int_range("data.min_dupes", data.min_dupes, 2)
    _int_range("data.match", data.match, 2, MAX_MATCH)
    _encoding("data.encoding", data.encoding)
    _positive("data.download.timeout_s", data.download.timeout_s)
    _int_range("data.download.max_bytes", data.download.max_bytes, 1)
    _int_range("data.max_bytes", data.max_bytes, 1)
    _int_range("data.max_line_bytes", data.max_line_bytes, 1)
    _int_range("data.seed", data.seed, 0, 2**32 - 1)
    for key in ("test_size", "tune_size"):
        value = getattr(data, key)
        _expect(0.0 < value < 0.5, f"data.{key}", value, "a fraction between 0 and 0.5")
    if data.source != "synthetic" and not data.prepared:
        _expect(bool(data.path), "data.path", data.path,
                f"a folder, file or URL holding the {data.source} data")
    syn = data.synthetic
    _int_range("data.synthetic.originals", syn.originals, 2, MAX_SYNTHETIC_ORIGINALS)
    _int_range("data.synthetic.dupes_median", syn.dupes_median, 1, MAX_SYNTHETIC_DUPES)
    _int_range("data.synthetic.dupes_max", syn.dupes_max, syn.dupes_median, MAX_SYNTHETIC_DUPES)
    _expect(0.0 <= syn.noise <= 1.0, "data.synthetic.noise", syn.noise, "a number in 0..1")


def validate_model(model: ModelConfig, prefix: str = "model") -> None:
    _one_of(f"{prefix}.name", model.name, MODEL_NAMES)
    _expect(isinstance(model, MODEL_SCHEMAS[model.name]), f"{prefix}.name", model.name,
            f"the name of the schema it was built from ({type(model).__name__})")
    _int_range(f"{prefix}.estimators", model.estimators, 1, MAX_ESTIMATORS)
    _int_range(f"{prefix}.ngrams", model.ngrams, 1, 4)
    _int_range(f"{prefix}.min_child_samples", model.min_child_samples, 1)
    _int_range(f"{prefix}.match", model.match, 2, MAX_MATCH)
    _int_range(f"{prefix}.n_jobs", model.n_jobs, 0)
    if not isinstance(model, MatcherConfig):
        return
    _int_range(f"{prefix}.num_leaves", model.num_leaves, 2, 131072)
    _int_range(f"{prefix}.char_ngrams", model.char_ngrams, 2, 6)
    _int_range(f"{prefix}.rerank_top", model.rerank_top, 0)
    _int_range(f"{prefix}.rank_cap", model.rank_cap, 0)
    _int_range(f"{prefix}.pool", model.pool, 0)
    _expect(not model.pool or 0 < model.rerank_top <= model.pool, f"{prefix}.rerank_top",
            model.rerank_top, f"a shortlist taken from the pool: 1 to model.pool "
            f"({model.pool}) when model.pool is set")
    _expect(not model.pool or importlib.util.find_spec("numba") is not None, f"{prefix}.pool",
            model.pool, "0 here: a pool's features need numba (pip install 'faqtune[scale]')")
    _int_range(f"{prefix}.neighbours", model.neighbours, 1)
    _expect(0.0 < model.learning_rate <= 1.0, f"{prefix}.learning_rate", model.learning_rate,
            "a number in (0, 1]")
    _expect(0.0 < model.feature_fraction <= 1.0, f"{prefix}.feature_fraction",
            model.feature_fraction, "a number in (0, 1]")
    _expect(model.prior_weight >= 0.0, f"{prefix}.prior_weight", model.prior_weight,
            "a number at least 0 (0 = boosting starts from nothing)")
    _expect(model.centroid_prior >= 0.0, f"{prefix}.centroid_prior", model.centroid_prior,
            "a number at least 0")
    _expect(model.rarity_sharpness > 0.0, f"{prefix}.rarity_sharpness", model.rarity_sharpness,
            "a positive number")
    _one_of(f"{prefix}.objective", model.objective, OBJECTIVES)
    _one_of(f"{prefix}.negatives", model.negatives, NEGATIVES)
    _int_range(f"{prefix}.encoder_max_tokens", model.encoder_max_tokens, 8, 512)
    _not_empty(f"{prefix}.encoder", model.encoder, "encoder: none, minilm or a folder")
    if model.encoder != "none":  # the extra, the files and their hashes, before any run starts
        from faqtune.features.encoder import verify_encoder

        verify_encoder(model.encoder, model.encoder_max_tokens, f"{prefix}.encoder")


def encoder_identity(model: ModelConfig) -> str | None:
    """What the model's encoder vectors depend on (its files' hashes, its settings); None
    without an encoder. The sweep's identity and the run's params carry it."""
    encoder = getattr(model, "encoder", "none")
    if encoder == "none":
        return None
    from faqtune.features.encoder import resolve_encoder

    return resolve_encoder(encoder, model.encoder_max_tokens).identity


def validate(cfg: FaqtuneConfig) -> None:
    validate_data(cfg.data)
    validate_model(cfg.model)
    _int_range("training.period", cfg.training.period, 1)
    _int_range("training.early_stopping_periods", cfg.training.early_stopping_periods, 0)
    _one_of("sweep.metric", cfg.sweep.metric, metric_names("tune"))
    _one_of("training.early_stopping_metric", cfg.training.early_stopping_metric,
            metric_names("tune"))
    _one_of("registry.metric", cfg.registry.metric, metric_names("test"))
    _int_range("training.top_k", cfg.training.top_k, 1, 100)
    _int_range("training.max_question_chars", cfg.training.max_question_chars, 1)
    _int_range("training.max_questions_per_request", cfg.training.max_questions_per_request, 1)
    _int_range("training.block_pairs", cfg.training.block_pairs, 1)
    _int_range("training.cache_pairs", cfg.training.cache_pairs, 0)
    _int_range("training.dense_operand_mib", cfg.training.dense_operand_mib, 0)
    _one_of("tracking.kind", cfg.tracking.kind, ("mlflow", "azureml"))
    _not_empty("tracking.experiment", cfg.tracking.experiment)
    _not_empty("paths.cache", cfg.paths.cache, "folder")
    _not_empty("registry.model_name", cfg.registry.model_name)
    _expect(re.fullmatch(r"[\w-]{1,255}", cfg.registry.alias) is not None
            and re.fullmatch(r"(?i)latest|v\d+", cfg.registry.alias) is None,
            "registry.alias", cfg.registry.alias,
            "letters, digits, '_' or '-', not 'latest' or 'v<number>' (MLflow's alias rules)")
    sweep = cfg.sweep
    _expect(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", sweep.name) is not None
            and ".." not in sweep.name, "sweep.name", sweep.name,
            "letters, digits, '.', '_' or '-' (it names files under the cache folder)")
    _int_range("sweep.n_trials", sweep.n_trials, 1)
    _int_range("sweep.seed", sweep.seed, 0, 2**32 - 1)
    _positive("sweep.timeout_s", sweep.timeout_s, optional=True)
    _int_range("sweep.max_failures", sweep.max_failures, 0)
    _int_range("sweep.delay_evaluation", sweep.delay_evaluation, 0)
    _int_range("sweep.folds", sweep.folds, 1, MAX_FOLDS)
    _expect(sweep.folds > 1 or sweep.pruner != "wilcoxon", "sweep.pruner", sweep.pruner,
            "a pruner for one tune split (the Wilcoxon pruner compares trials fold by fold: "
            "set sweep.folds to 2 or more)")
    _expect(0 < sweep.wilcoxon_p_threshold < 1, "sweep.wilcoxon_p_threshold",
            sweep.wilcoxon_p_threshold, "a p-value between 0 and 1")
    _int_range("sweep.final_estimators", sweep.final_estimators, 0, MAX_ESTIMATORS)
    _one_of("sweep.sampler", sweep.sampler, SAMPLERS)
    _one_of("sweep.pruner", sweep.pruner, PRUNERS)
    _one_of("sweep.select", sweep.select, SELECT_RULES)
    _one_of("sweep.space.model", sweep.space.model, MODEL_NAMES)
    _one_of("backend.name", cfg.backend.name, tuple(BACKEND_SCHEMAS))
    _expect(0 < sweep.bandit_slack_factor, "sweep.bandit_slack_factor",
            sweep.bandit_slack_factor, "a positive number")
    _int_range("sweep.truncation_percentage", sweep.truncation_percentage, 1, 99)
    if isinstance(cfg.backend, OptunaBackendConfig):
        backend = cfg.backend
        _int_range("backend.n_workers", backend.n_workers, 1, MAX_WORKERS)
        _int_range("backend.startup_trials", backend.startup_trials, 0)
        _expect(0 < backend.heartbeat_seconds < backend.stale_after_seconds,
                "backend.heartbeat_seconds", backend.heartbeat_seconds,
                "a positive number below backend.stale_after_seconds")
        _positive("backend.outage_seconds", backend.outage_seconds)
    if isinstance(cfg.backend, AzureMLBackendConfig):
        cluster = cfg.backend.cluster
        _one_of("backend.cluster.vm_priority", cluster.vm_priority, ("dedicated", "lowpriority"))
        _int_range("backend.cluster.min_nodes", cluster.min_nodes, 0)
        _int_range("backend.cluster.max_nodes", cluster.max_nodes, max(1, cluster.min_nodes))
        _int_range("backend.max_concurrent_runs", cfg.backend.max_concurrent_runs, 1)
        _int_range("backend.max_duration_minutes", cfg.backend.max_duration_minutes, 1)
        _int_range("backend.trial_timeout_minutes", cfg.backend.trial_timeout_minutes, 1)
        _int_range("backend.cluster.idle_seconds_before_scaledown",
                   cluster.idle_seconds_before_scaledown, 0)
        _one_of("backend.sdk", cfg.backend.sdk, ("v2", "v1"))
        _one_of("backend.finalize", cfg.backend.finalize, ("local", "cluster"))
        _expect(cfg.backend.sdk == "v2" or cfg.backend.finalize == "local", "backend.finalize",
                cfg.backend.finalize, "local with backend.sdk=v1 (only v2 runs a finalize job)")


def unknown_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Keys the schema does not have: Hydra's `+key=value` adds them even to a structured
    config, and `to_object` would then drop them without a word."""
    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return []  # a free-form dict such as sweep.space.params
    fields = {f.name for f in dataclasses.fields(schema)}
    found = []
    for key in node.keys():
        if key not in fields:
            found.append(f"{prefix}{key}")
        elif OmegaConf.is_dict(node._get_node(key)) and not node._get_node(key)._is_missing():
            found += unknown_keys(node[key], f"{prefix}{key}.")
    return found


def unknown_key_message(schema: type, key: str) -> str:
    """One sentence for a key the dataclass `schema` lacks, with its new name if it moved,
    else the closest known key."""
    if key in MOVED_SETTINGS:
        return (f"Setting {key} has moved: write {MOVED_SETTINGS[key]}=... (a setting of the "
                "Optuna backend, backend=optuna).")
    parent_key, _, name = key.rpartition(".")
    known = [f.name for f in dataclasses.fields(schema)]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {parent_key + '.' if parent_key else ''}{close[0]}?" if close else \
        f"; it has {', '.join(known)}."
    return f"Unknown setting {key}: {schema.__name__} has no key {name!r}{hint}"


def _unknown_key_error(cfg: DictConfig, key: str) -> ConfigError:
    parent_key = key.rpartition(".")[0]
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    return ConfigError(unknown_key_message(OmegaConf.get_type(parent), key))


def to_object(cfg: DictConfig) -> FaqtuneConfig:
    """Turn the composed Hydra config into validated dataclasses."""
    extra = unknown_keys(cfg)
    if extra:
        raise _unknown_key_error(cfg, extra[0])
    obj = OmegaConf.to_object(cfg)
    validate(obj)
    return obj
