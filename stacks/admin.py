"""The admin dashboard's share of compose(): its first admin, the health it reads, who may reach it.

The dashboard is the sixth AppService (stacks/catalog.py). What only it has:
- the first admin's account: ADMIN_BOOTSTRAP_EMAIL (`aquascene:app.admin_email`) and a generated
  password, a Secret mounted only into the dashboard as the file `admin_bootstrap_password` and
  exported as the secret output `admin_password`;
- DASHBOARD_ROLE_URLS: where its overview reads the five API services' /health, and the
  NetworkPolicy openings for exactly that (its egress, their ingress).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.app_service import SecretEnv
from components.credentials import generated_password
from stacks import catalog
from stacks.config import StackConfig

BOOTSTRAP_SECRET = "admin-dashboard-bootstrap"
BOOTSTRAP_KEY = "admin-bootstrap-password"
BOOTSTRAP_SETTING = "ADMIN_BOOTSTRAP_PASSWORD"  # the engine reads the file admin_bootstrap_password


@dataclass(frozen=True)
class FirstAdmin:
    email: str
    password: pulumi.Output[str]  # secret
    secret_env: SecretEnv


def first_admin(config: StackConfig, opts: pulumi.ResourceOptions) -> FirstAdmin:
    """The first admin's generated password, as a Secret in the app namespace."""
    password = generated_password("admin-bootstrap-password", None, length=32)
    ident = kube.Identity(name=catalog.ADMIN_DASHBOARD, component="api", environment=config.environment)
    k8s.core.v1.Secret(
        BOOTSTRAP_SECRET,
        metadata=kube.metadata(BOOTSTRAP_SECRET, config.namespace, ident.labels()),
        string_data={BOOTSTRAP_KEY: password},
        opts=opts,
    )
    # The password is the version: a new one rolls the dashboard, which then bootstraps with it.
    return FirstAdmin(config.app.admin_email, password, SecretEnv(BOOTSTRAP_SETTING, BOOTSTRAP_SECRET,
                                                                  BOOTSTRAP_KEY, password))


def role_urls(config: StackConfig) -> str:
    """DASHBOARD_ROLE_URLS: `role=http://<service>.<namespace>.svc:<port>` of the five API services."""
    return ",".join(f"{s.name}=http://{s.name}.{config.namespace}.svc:{s.port}" for s in catalog.API_SERVICES)


def dashboard_env(config: StackConfig) -> dict[str, str]:
    return {"ADMIN_BOOTSTRAP_EMAIL": config.app.admin_email, "DASHBOARD_ROLE_URLS": role_urls(config)}


def _pods(name: str) -> dict[str, str]:
    # Every pod of the service, whatever its release slot: green and canary pods carry their own
    # `app.kubernetes.io/instance` (components/release.py), so a peer never pins the instance.
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": kube.PART_OF}


def health_egress() -> list[kube.NetworkPeer]:
    """The dashboard's way to each API service's pods, on that service's port only."""
    return [kube.NetworkPeer(pod_labels=_pods(s.name), ports=[s.port]) for s in catalog.API_SERVICES]


def dashboard_peer() -> kube.NetworkPeer:
    """The dashboard's pods, as the API services admit them (for /health)."""
    return kube.NetworkPeer(pod_labels=_pods(catalog.ADMIN_DASHBOARD))
