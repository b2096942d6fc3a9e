"""The AI providers', mail server's and Instagram's credentials: secret config, delivered only where used.

`pulumi config set --secret aquascene:openai_api_key ...` (and anthropic_api_key,
smtp_username, smtp_password, instagram_access_token). Each service that uses one gets a Secret of its own,
`<service>-providers`, holding only its keys, mounted as files like every credential:
the scraper never holds the OpenAI key, the AI processor never the SMTP password.
"""

from __future__ import annotations

from typing import Mapping

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.app_service import SecretEnv
from stacks.config import StackConfig, secret_setting

# config key -> (the engine's setting, the services that use it)
PROVIDER_SECRETS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    # The admin dashboard runs generation, newsletters and subscriptions in-process: it uses all four.
    "openai_api_key": ("OPENAI_API_KEY", ("ai-processor", "admin-dashboard")),
    "anthropic_api_key": ("ANTHROPIC_API_KEY", ("ai-processor", "admin-dashboard")),
    # Newsletters (distributor) and subscription confirmations (subscriber-manager) send mail.
    "smtp_username": ("SMTP_USERNAME", ("distributor", "subscriber-manager", "admin-dashboard")),
    "smtp_password": ("SMTP_PASSWORD", ("distributor", "subscriber-manager", "admin-dashboard")),
    # Instagram posts are published by the distributor alone.
    "instagram_access_token": ("INSTAGRAM_ACCESS_TOKEN", ("distributor",)),
}


# The services that send mail (newsletters; subscription confirmations) get the relay's address.
MAIL_SERVICES = PROVIDER_SECRETS["smtp_password"][1]
INSTAGRAM_SERVICES = PROVIDER_SECRETS["instagram_access_token"][1]


def provider_settings(config: StackConfig) -> dict[str, dict[str, str]]:
    """Per service, the non-secret settings of its providers: the mail relay for the mail senders,
    the Graph API's URL and the Instagram account for the Instagram publisher."""
    settings: dict[str, dict[str, str]] = {}
    if config.app.smtp_host:
        relay = {"SMTP_HOST": config.app.smtp_host, "SMTP_PORT": str(config.app.smtp_port), "SMTP_STARTTLS": "true"}
        for service in MAIL_SERVICES:
            settings.setdefault(service, {}).update(relay)
    instagram = {"INSTAGRAM_GRAPH_URL": config.app.instagram_graph_url}
    if config.app.instagram_user_id:
        instagram["INSTAGRAM_USER_ID"] = config.app.instagram_user_id
    for service in INSTAGRAM_SERVICES:
        settings.setdefault(service, {}).update(instagram)
    return settings


def secret_name(service: str) -> str:
    return f"{service}-providers"


def provider_secrets(config: StackConfig, opts: pulumi.ResourceOptions) -> dict[str, list[SecretEnv]]:
    """Per service, the provider credentials it reads (a Secret each); services without any are absent."""
    values = {key: secret_setting(key) for key in PROVIDER_SECRETS}
    per_service: dict[str, dict[str, pulumi.Output[str]]] = {}
    for key, (setting, services) in PROVIDER_SECRETS.items():
        if values[key] is None:
            continue
        for service in services:
            per_service.setdefault(service, {})[setting] = values[key]
    refs: dict[str, list[SecretEnv]] = {}
    for service, settings in per_service.items():
        ident = kube.Identity(name=service, component="api", environment=config.environment)
        k8s.core.v1.Secret(
            secret_name(service),
            metadata=kube.metadata(secret_name(service), config.namespace, ident.labels()),
            string_data={setting.lower(): pulumi.Output.secret(value) for setting, value in settings.items()},
            opts=opts,
        )
        refs[service] = [SecretEnv(setting, secret_name(service), setting.lower(), value)
                         for setting, value in settings.items()]
    return refs
