"""What both Azure ML submissions share (`faqtune.tuning.azure_common`): the sampler and
pruner combinations Azure ML runs, and values that reach a trial unchanged."""

from __future__ import annotations

import dataclasses

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from faqtune.config import to_object
from faqtune.errors import ConfigError
from faqtune.tuning.azure_common import check_combination, hydra_value, trial_overrides
from faqtune.tuning.space import parse_space


def test_the_default_sweep_on_azure_says_which_sampler_to_use(make_cfg):
    conf = to_object(make_cfg("backend=azureml"))
    with pytest.raises(ConfigError, match="use sweep.sampler=random"):
        check_combination(conf, parse_space("matcher", conf.sweep.space.params), "v2")


@pytest.mark.parametrize("value", ["C:\\data\\faqs", "null", "true", "1e3", "10", "it's",
                                   "ends\\", "x\\'y", "with space", 'q"uote', "", 3, 0.5,
                                   None, True])
def test_every_value_reads_back_from_its_override_as_itself(value):
    """Third probe, D1: backslashes were doubled and `null`, `true`, `1e3` came back as
    None, True and 1000.0, so a trial could run with other settings than the driver's."""
    override = OverridesParser.create().parse_override(f"key={hydra_value(value)}")
    assert override.value() == value and type(override.value()) is type(value)


def test_an_azure_expression_in_a_value_is_refused_before_any_job_is_built(make_cfg):
    """Third probe, D1: Azure substitutes `${{...}}` in a job's command before the shell
    runs, quotes or not; a trial would get another value than the one configured."""
    conf = to_object(make_cfg("backend=azureml", "sweep.sampler=random"))
    conf = dataclasses.replace(conf, registry=dataclasses.replace(
        conf.registry, model_name="m${{search_space.ngrams}}"))
    space = parse_space(conf.model.name, conf.sweep.space.params)
    with pytest.raises(ConfigError, match=r"registry.model_name=.*Azure ML substitutes"):
        trial_overrides(conf, space, log_model=False)


def test_cross_validated_trials_are_refused_on_azure_naming_the_setting(make_cfg):
    conf = to_object(make_cfg("backend=azureml", "sweep.sampler=random",
                              "experiment=cross_validated"))
    with pytest.raises(ConfigError, match=r"sweep.folds=5: .* Optuna backend only"):
        check_combination(conf, parse_space("matcher", conf.sweep.space.params), "v2")
