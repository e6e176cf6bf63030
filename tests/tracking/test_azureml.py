"""The Azure ML workspace (`faqtune.tracking.azureml`): which one, and what to install or set
when something is missing. A name that starts with a case id (`test_B12_...`) is a case of
the reliability probe (docs/reliability.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from faqtune.config import AzureConfig
from faqtune.errors import ConfigError
from faqtune.tracking.azureml import workspace_settings
from tests.helpers import TINY_DATA


def test_missing_workspace_settings_name_what_to_set(tmp_path, monkeypatch):
    for var in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"azure.subscription_id \(or AZURE_SUBSCRIPTION_ID\)"
                                          r".*azure.workspace_name \(or AZUREML_WORKSPACE_NAME\)"
                                          r".*config.json"):
        workspace_settings(AzureConfig())
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub")
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg")
    assert workspace_settings(AzureConfig(workspace_name="ws")) == {
        "subscription_id": "sub", "resource_group": "rg", "workspace_name": "ws"}
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID")
    (tmp_path / "config.json").write_text(json.dumps({"subscription_id": "s"}))
    assert workspace_settings(AzureConfig()).name == "config.json"


BLOCK_AZURE = ("import sys; sys.modules.update({m: None for m in ('azure', 'azure.ai', "
               "'azure.ai.ml', 'azure.identity', 'azureml', 'azureml.core', 'azureml.train', "
               "'azureml.train.hyperdrive')}); from faqtune.{task} import main; main()")


@pytest.mark.parametrize("task, overrides, extra", [
    ("sweep", ["backend=azureml", "backend.dry_run=true", "sweep.sampler=random"], "`azure`"),
    ("sweep", ["backend=azureml", "backend.sdk=v1", "backend.dry_run=true",
               "sweep.sampler=random"], "`azure-v1`"),
    ("train", ["tracking=azureml"], "`azure`"),
])
def test_B12_without_the_azure_extra_an_azure_setting_says_what_to_install(tmp_path, task,
                                                                           overrides, extra):
    """Python treats a module set to None in sys.modules as not installed: this is the
    user's environment without the extra, whatever this one has."""
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_AZURE.replace("{task}", task), *TINY_DATA, *overrides,
         f"paths.cache={tmp_path / 'c'}", f"tracking.uri=sqlite:///{tmp_path / 'm.db'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"needs the {extra} extra: pip install -e '.[" in proc.stderr
    assert "Traceback" not in proc.stderr and "ModuleNotFoundError" not in proc.stderr
