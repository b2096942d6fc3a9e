"""dev / staging / prod defaults, as data (seed 002's environment matrix, refined).

A stack's configuration is its profile merged with the overrides in
Pulumi.<stack>.yaml; stacks/config.py validates the result. Nothing else in
the code branches on the environment name.
"""

from __future__ import annotations

import copy
from typing import Any

from components import object_store, postgres, redis
from stacks.catalog import ENVIRONMENTS, SERVICE_NAMES

Profile = dict[str, Any]


def _services(
    replicas: int,
    autoscaling: dict[str, int] | None,
    resources: str,
    **per_service: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """The same settings for every service, with per-service exceptions merged on top."""
    base = {
        "replicas": replicas,
        "autoscaling": autoscaling,
        "resources": resources,
        "startup_timeout_seconds": 60,
        # {strategy: rolling} | {strategy: blue-green, active: blue, idle_replicas: 1}
        # | {strategy: canary, canary_weight: 10} (components/release.py)
        "release": {"strategy": "rolling"},
    }
    # Deep copies: overrides merge into one service's nested objects (release), never into a shared one.
    return {name: copy.deepcopy({**base, **per_service.get(name.replace("-", "_"), {})}) for name in SERVICE_NAMES}


_POSTGRES = {
    "mode": "statefulset",
    "instances": 1,
    "image": postgres.IMAGE,
    "exporter_image": postgres.EXPORTER_IMAGE,
    "storage_size": "10Gi",
    "storage_class": "",  # empty: the cluster's default StorageClass
    "resources": "medium",
    "install_operator": False,  # cloudnative-pg only: install operator + Barman Cloud plugin with Helm
    "zone_anti_affinity": "preferred",
    # cloudnative-pg only: base backups + WAL archive to the backup bucket (PITR)
    "continuous_backup": {"enabled": False, "retention_days": 30, "schedule": "0 0 2 * * *"},
    "server_name": "postgres",  # the cluster's archive name in the backup bucket
    # cloudnative-pg only: bootstrap from the archive `source_server_name` (optionally to target_time,
    # RFC 3339) instead of an empty database — the first path of the disaster-recovery runbook.
    "recovery": {"enabled": False, "source_server_name": "", "target_time": ""},
    # Seed 001: PgBouncer in transaction mode in front of PostgreSQL (a CloudNativePG `Pooler` in
    # cloudnative-pg mode, a PgBouncer Deployment in statefulset mode, RDS Proxy in rds mode).
    # stacks/connections.py checks these against the services' pools at the HPA maximum.
    "pooler": {"enabled": True, "pool_mode": "transaction", "default_pool_size": 10, "max_client_conn": 200,
               "instances": 1},
}
_REDIS = {
    "mode": "standalone",
    "masters": 3,  # cluster mode
    "replicas_per_master": 1,  # cluster mode
    "image": redis.IMAGE,
    "exporter_image": redis.EXPORTER_IMAGE,
    "maxmemory": "400mb",
    "storage_size": "2Gi",
    "storage_class": "",
    "resources": "small",
}
_OBJECT_STORE = {
    "mode": "single",
    "nodes": 4,  # distributed mode
    "image": object_store.IMAGE,
    "client_image": object_store.CLIENT_IMAGE,
    "storage_size": "20Gi",
    "storage_class": "",
    "resources": "medium",
}

_MONITORING = {
    "prometheus_retention_time": "15d",
    "prometheus_retention_size": "8GB",
    "prometheus_storage_size": "10Gi",
    "prometheus_replicas": 1,  # 2: an HA pair, each scraping everything (alerts deduplicated by Alertmanager)
    "alerting": False,  # Alertmanager
    "alertmanager_replicas": 1,
    "logs": False,  # Loki + Grafana Alloy on every node
    "loki_retention": "168h",
    "loki_storage_size": "10Gi",
    "node_exporter": True,
    "kube_state_metrics_replicas": 1,  # > 1: replicas behind its Service, scraped as one target
}
_INGRESS = {
    "mode": "gateway",  # Gateway API on Envoy Gateway; "ingress": the Ingress API
    "api_host": "api.dev.aquascene.example",
    "grafana_host": "grafana.dev.aquascene.example",
    "admin_host": "admin.dev.aquascene.example",
    "admin_allow_cidrs": [],  # client CIDRs that may reach admin_host (e.g. the office VPN); empty: everyone
    "tls_issuer": "none",  # none | letsencrypt-staging | letsencrypt-production (cert-manager)
    "acme_email": "",
    "gateway_class": "eg",
    "ingress_class": "nginx",
}

_BACKUPS = {
    "enabled": False,
    "schedule": "0 2 * * *",  # daily dumps at 02:00 UTC
    "retention_days": 7,
    "targets": ["postgres", "redis", "objects"],
}

_AWS = {
    "enabled": False,  # True: the stack creates VPC + EKS and deploys the platform onto that cluster
    "vpc_cidr": "10.0.0.0/16",
    "availability_zones": 3,
    "nat": "per-az",  # or "single": cheaper, one AZ becomes a single point of failure
    "node_instance_types": ["m5.large"],
    "node_min": 3,  # seed 003: 3 / 3 / 20
    "node_desired": 3,
    "node_max": 20,
    # The EKS API is private; list the egress CIDRs of CI and operators that run `pulumi up`.
    "public_access_cidrs": [],
    "admin_principal_arns": [],  # IAM roles/users granted cluster admin
}

# Third-party images. mirrors: upstream registry -> mirror prefix (a private registry or an
# ECR pull-through cache), e.g. {"docker.io": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub"}.
_IMAGES = {"pin_digests": False, "mirrors": {}}

_IMAGE = {
    "registry": "ghcr.io/aquascene",
    "repository": "content-engine",
    "tag": "1.0.0",
    "digest": "",
    "build": False,  # True: build app/Dockerfile with pulumi-docker and deploy the pushed digest
    "require_digest": False,
    # organization/project/stack: deploy the digest that stack ran (its `image` output) instead of tag/digest
    "promote_from": "",
}

# Cluster add-ons (components/addons.py). On a kube context a platform team provides them
# (the stack asserts the ones it needs); the EKS cluster prod creates has none, so prod installs all.
_ADDONS_PRESENT = {name: {"install": False}
                   for name in ("metrics_server", "node_autoscaler", "cert_manager", "envoy_gateway")}
_ADDONS_INSTALLED = {name: {"install": True} for name in _ADDONS_PRESENT}

# The Graph API pinned to one version (Meta retires versions about two years after release);
# the account id is per stack (`aquascene:app.instagram_user_id`), the token a secret. The URL is
# also the engine's default (app/settings.py): bump both together.
_INSTAGRAM = {"instagram_user_id": "", "instagram_graph_url": "https://graph.facebook.com/v26.0"}

PROFILES: dict[str, Profile] = {
    "dev": {
        "kubernetes": {"context": "", "version": "1.33"},
        "image": dict(_IMAGE),
        "images": dict(_IMAGES),
        "app": {
            "log_level": "DEBUG",
            "db_pool_size": 5,
            "db_max_overflow": 5,
            "cors_origins": ["http://localhost:3000"],
            "smtp_host": "",  # mail is logged, not sent
            "smtp_port": 587,
            **_INSTAGRAM,
            "require_review": False,
            "admin_email": "admin@dev.aquascene.example",
        },
        "services": _services(
            replicas=1,
            autoscaling=None,
            resources="small",
            # seed 000: the AI processor needs more memory and a longer start.
            ai_processor={"resources": "medium", "startup_timeout_seconds": 120},
        ),
        "postgres": dict(_POSTGRES),
        "redis": dict(_REDIS),
        "object_store": dict(_OBJECT_STORE),
        "backups": dict(_BACKUPS),
        "aws": dict(_AWS),
        "monitoring": dict(_MONITORING),  # Prometheus + Grafana
        "ingress": dict(_INGRESS),
        "addons": dict(_ADDONS_PRESENT),
    },
    "staging": {
        "kubernetes": {"context": "", "version": "1.33"},
        "image": dict(_IMAGE),
        "images": dict(_IMAGES),
        "app": {
            "log_level": "INFO",
            "db_pool_size": 15,
            "db_max_overflow": 10,
            "cors_origins": ["https://staging.aquascene.example"],
            # Seed 000's relay; its credentials are aquascene:smtp_username / smtp_password (secret).
            "smtp_host": "smtp.sendgrid.net",
            "smtp_port": 587,
            **_INSTAGRAM,
            "require_review": False,
            "admin_email": "admin@staging.aquascene.example",
        },
        "services": _services(
            replicas=2,
            autoscaling={"min_replicas": 2, "max_replicas": 5, "cpu_utilization": 70, "memory_utilization": 80},
            resources="medium",
            ai_processor={"resources": "large", "startup_timeout_seconds": 120},
        ),
        # seed 002: PostgreSQL with a read replica; Redis with persistence; versioned buckets.
        "postgres": {**_POSTGRES, "instances": 2, "storage_size": "50Gi",
                     # 6 services x 5 pods x (15 + 10) = 750 clients; 2 x 20 server connections.
                     "pooler": {**_POSTGRES["pooler"], "default_pool_size": 20, "max_client_conn": 1000,
                                "instances": 2}},
        "redis": {**_REDIS, "maxmemory": "800mb", "storage_size": "5Gi", "resources": "medium"},
        "object_store": {**_OBJECT_STORE, "storage_size": "100Gi"},
        "backups": {**_BACKUPS, "enabled": True, "retention_days": 7},
        "aws": dict(_AWS),
        # The full stack with alerting.
        "monitoring": {**_MONITORING, "alerting": True, "logs": True},
        "ingress": {**_INGRESS, "api_host": "api.staging.aquascene.example",
                    "grafana_host": "grafana.staging.aquascene.example", "admin_host": "admin.staging.aquascene.example",
                    "tls_issuer": "letsencrypt-staging", "acme_email": "ops@aquascene.example"},
        "addons": dict(_ADDONS_PRESENT),
    },
    "prod": {
        "kubernetes": {"context": "", "version": "1.33"},
        # Prod builds nothing: it deploys, by digest, the image staging tested (staging's `image` output).
        "image": {**_IMAGE, "require_digest": True, "promote_from": "organization/aquascene/staging"},
        # Every third-party image runs by the digest its tag resolved to at deploy time.
        "images": {**_IMAGES, "pin_digests": True},
        "app": {
            "log_level": "WARNING",
            "db_pool_size": 25,
            "db_max_overflow": 10,
            "cors_origins": ["https://aquascene.example"],
            "smtp_host": "smtp.sendgrid.net",
            "smtp_port": 587,
            **_INSTAGRAM,
            # Whatever is mailed to subscribers has been read by a person first.
            "require_review": True,
            "admin_email": "admin@aquascene.example",
        },
        "services": _services(
            replicas=3,
            autoscaling={"min_replicas": 3, "max_replicas": 10, "cpu_utilization": 70, "memory_utilization": 80},
            resources="medium",
            ai_processor={"resources": "xlarge", "startup_timeout_seconds": 120},
            # The staff's dashboard, not the public's: 5 pods at most keep the pooler's client budget.
            admin_dashboard={"autoscaling": {"min_replicas": 3, "max_replicas": 5, "cpu_utilization": 70,
                                             "memory_utilization": 80}},
        ),
        # A 3-instance CloudNativePG cluster with continuous backup, a 6-node Redis cluster,
        # a 4-node distributed object store.
        "postgres": {
            **_POSTGRES,
            "mode": "cloudnative-pg",
            "instances": 3,
            "image": postgres.CLOUDNATIVE_PG_IMAGE,
            "storage_size": "100Gi",
            "resources": "large",
            "install_operator": True,
            "zone_anti_affinity": "required",
            "continuous_backup": {"enabled": True, "retention_days": 30, "schedule": "0 0 2 * * *"},
            # Seed 001's pool of 25 per instance. Its 1000 clients are too few at the HPA maximum:
            # (5 services x 10 pods + the dashboard's 5) x (25 + 10) = 1925, so 2200 (a few MB in PgBouncer),
            # which leaves room to raise the HPA maxima (all of them by one: 2135) without touching it.
            "pooler": {**_POSTGRES["pooler"], "default_pool_size": 25, "max_client_conn": 2200, "instances": 3},
        },
        "redis": {**_REDIS, "mode": "cluster", "maxmemory": "800mb", "storage_size": "10Gi", "resources": "medium"},
        # The five buckets are S3 buckets on AWS ("distributed" runs a 4-node in-cluster store instead).
        "object_store": {**_OBJECT_STORE, "mode": "s3", "storage_size": "250Gi"},
        # Daily dumps in addition to CloudNativePG's continuous backup.
        "backups": {**_BACKUPS, "enabled": True, "retention_days": 30},
        # One `pulumi up` in a fresh account: VPC across 3 AZs, EKS, then the platform on it.
        "aws": {**_AWS, "enabled": True},
        # Full stack, alerting, 30 days / 10 GB of metrics; Prometheus, Alertmanager and
        # kube-state-metrics in pairs (Grafana and single-binary Loki are singletons by design).
        "monitoring": {**_MONITORING, "prometheus_retention_time": "30d", "prometheus_retention_size": "10GB",
                       "prometheus_storage_size": "20Gi", "prometheus_replicas": 2, "alerting": True,
                       "alertmanager_replicas": 2, "logs": True, "loki_retention": "720h",
                       "loki_storage_size": "50Gi", "kube_state_metrics_replicas": 2},
        "ingress": {**_INGRESS, "api_host": "api.aquascene.example", "grafana_host": "grafana.aquascene.example",
                    "admin_host": "admin.aquascene.example",
                    "tls_issuer": "letsencrypt-production", "acme_email": "ops@aquascene.example"},
        "addons": dict(_ADDONS_INSTALLED),
    },
}

assert set(PROFILES) == set(ENVIRONMENTS)


def profile(environment: str) -> Profile:
    """A deep copy of one environment's defaults (callers may mutate it)."""
    return copy.deepcopy(PROFILES[environment])
