"""The Azure ML workspace: which one, how we authenticate, and its MLflow tracking URI.

Credentials come only from the environment or Azure's credential chain (azure-identity's
DefaultAzureCredential: service principal variables, managed identity, Azure CLI); nothing
secret is read from config files, and nothing secret is logged.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from faqtune.config import AzureConfig
from faqtune.errors import ConfigError, FaqtuneError

ENVIRONMENT = {
    "subscription_id": "AZURE_SUBSCRIPTION_ID",
    "resource_group": "AZURE_RESOURCE_GROUP",
    "workspace_name": "AZUREML_WORKSPACE_NAME",
}


def require_v2() -> None:
    """azure-ai-ml and azure-identity, or one paragraph on what to install."""
    try:
        for module in ("azure.ai.ml", "azure.identity"):
            importlib.import_module(module)
    except ImportError:
        raise ConfigError("Azure ML (backend=azureml or tracking=azureml) needs the `azure` "
                          "extra: pip install -e '.[azure]' (azure-ai-ml, azure-identity, "
                          "azureml-mlflow).") from None


def require_v1():
    """azureml-core and azureml-train-core (HyperDrive), or what to install."""
    try:
        import azureml.core
        import azureml.train.hyperdrive  # noqa: F401  (the submission needs it too)
    except ImportError:
        raise ConfigError("backend.sdk=v1 (HyperDrive, deprecated) needs the `azure-v1` extra: "
                          "pip install -e '.[azure-v1]' (azureml-core, "
                          "azureml-train-core).") from None
    return azureml.core


def workspace_settings(azure: AzureConfig) -> dict[str, str] | Path:
    """The workspace's coordinates from config or environment, else its config.json."""
    settings = {key: getattr(azure, key) or os.environ.get(var) for key, var in ENVIRONMENT.items()}
    if all(settings.values()):
        return settings
    if Path(azure.config_file).is_file():
        return Path(azure.config_file)
    missing = [f"azure.{key} (or {ENVIRONMENT[key]})" for key, v in settings.items() if not v]
    raise ConfigError(
        f"No Azure ML workspace configured: set {', '.join(missing)}, or put the workspace's "
        f"config.json at azure.config_file={azure.config_file} (download it from the portal).")


def credential(azure: AzureConfig):
    """azure-identity's chain (service principal variables, managed identity, Azure CLI), or
    a browser login when asked for."""
    from azure.identity import DefaultAzureCredential, InteractiveBrowserCredential

    if azure.interactive_login:
        return InteractiveBrowserCredential()
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def ml_client(azure: AzureConfig):
    """The SDK v2 client of the configured workspace."""
    require_v2()
    from azure.ai.ml import MLClient

    settings = workspace_settings(azure)
    try:
        if isinstance(settings, Path):
            return MLClient.from_config(credential(azure), path=str(settings))
        return MLClient(credential(azure), settings["subscription_id"],
                        settings["resource_group"], settings["workspace_name"])
    except Exception as exc:  # the SDK raises many types; the message is what matters
        raise _workspace_error(exc) from None


def _workspace_error(exc: Exception) -> FaqtuneError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return FaqtuneError(
        f"Could not open the Azure ML workspace ({exc.__class__.__name__}: {first_line}). "
        "Check the workspace settings and that a credential is available: "
        "AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, a managed identity, or "
        "`az login`.")


def authentication(azure: AzureConfig):
    """azureml-core (SDK v1) authentication backed by azure-identity's credential chain."""
    from azureml.core.authentication import InteractiveLoginAuthentication, TokenAuthentication

    if azure.interactive_login:
        return InteractiveLoginAuthentication()
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)

    def token_for(resource: str) -> str:
        return credential.get_token(f"{resource.rstrip('/')}/.default").token

    return TokenAuthentication(token_for)


def get_workspace(azure: AzureConfig):
    """The SDK v1 Workspace (backend.sdk=v1 only)."""
    sdk = require_v1()
    settings = workspace_settings(azure)
    auth = authentication(azure)
    try:
        if isinstance(settings, Path):
            return sdk.Workspace.from_config(path=str(settings), auth=auth)
        return sdk.Workspace.get(name=settings["workspace_name"], auth=auth,
                                 subscription_id=settings["subscription_id"],
                                 resource_group=settings["resource_group"])
    except Exception as exc:  # the SDK raises many types; the message is what matters
        raise _workspace_error(exc) from None


def workspace_tracking_uri(azure: AzureConfig) -> str:
    """The workspace's MLflow URI (`azureml://...`, a scheme azureml-mlflow registers)."""
    client = ml_client(azure)
    try:
        return client.workspaces.get(client.workspace_name).mlflow_tracking_uri
    except Exception as exc:
        raise _workspace_error(exc) from None
