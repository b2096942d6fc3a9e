"""dev / staging / prod defaults, as data (seed 002's environment matrix, refined).

A stack's configuration is its profile merged with the overrides in
Pulumi.<stack>.yaml; stacks/config.py validates the result. Nothing else in
the code branches on the environment name.
"""

from __future__ import annotations

import copy
from typing import Any

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
    }
    return {name: {**base, **per_service.get(name.replace("-", "_"), {})} for name in SERVICE_NAMES}


_IMAGE = {
    "registry": "ghcr.io/aquascene",
    "repository": "content-engine",
    "tag": "1.0.0",
    "digest": "",
    "build": False,  # True: build app/Dockerfile with pulumi-docker and deploy the pushed digest
    "require_digest": False,
}

PROFILES: dict[str, Profile] = {
    "dev": {
        "kubernetes": {"context": "", "version": "1.33"},
        "image": dict(_IMAGE),
        "app": {
            "log_level": "DEBUG",
            "debug": True,
            "db_pool_size": 5,
            "cors_origins": ["http://localhost:3000"],
        },
        "services": _services(
            replicas=1,
            autoscaling=None,
            resources="small",
            # seed 000: the AI processor needs more memory and a longer start.
            ai_processor={"resources": "medium", "startup_timeout_seconds": 120},
        ),
    },
    "staging": {
        "kubernetes": {"context": "", "version": "1.33"},
        "image": dict(_IMAGE),
        "app": {
            "log_level": "INFO",
            "debug": False,
            "db_pool_size": 15,
            "cors_origins": ["https://staging.aquascene.example"],
        },
        "services": _services(
            replicas=2,
            autoscaling={"min_replicas": 2, "max_replicas": 5, "cpu_utilization": 70, "memory_utilization": 80},
            resources="medium",
            ai_processor={"resources": "large", "startup_timeout_seconds": 120},
        ),
    },
    "prod": {
        "kubernetes": {"context": "", "version": "1.33"},
        # Prod deploys only what it built and pushed itself, by digest.
        "image": {**_IMAGE, "build": True, "require_digest": True},
        "app": {
            "log_level": "WARNING",
            "debug": False,
            "db_pool_size": 25,
            "cors_origins": ["https://aquascene.example"],
        },
        "services": _services(
            replicas=3,
            autoscaling={"min_replicas": 3, "max_replicas": 10, "cpu_utilization": 70, "memory_utilization": 80},
            resources="medium",
            ai_processor={"resources": "xlarge", "startup_timeout_seconds": 120},
        ),
    },
}

assert set(PROFILES) == set(ENVIRONMENTS)


def profile(environment: str) -> Profile:
    """A deep copy of one environment's defaults (callers may mutate it)."""
    return copy.deepcopy(PROFILES[environment])
