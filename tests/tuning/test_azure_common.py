"""What both Azure ML submissions share (`faqtune.tuning.azure_common`): the sampler and
pruner combinations Azure ML runs."""

from __future__ import annotations

import pytest

from faqtune.config import to_object
from faqtune.errors import ConfigError
from faqtune.tuning.azure_common import check_combination
from faqtune.tuning.space import parse_space


def test_the_default_sweep_on_azure_says_which_sampler_to_use(make_cfg):
    conf = to_object(make_cfg("backend=azureml"))
    with pytest.raises(ConfigError, match="use sweep.sampler=random"):
        check_combination(conf, parse_space("matcher", conf.sweep.space.params), "v2")
