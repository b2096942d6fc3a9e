"""Stack configuration: profile + overrides, validated once, every problem named by its key."""

from __future__ import annotations

import pytest
import yaml

from stacks.config import ConfigError, StackConfig, build_stack_config
from stacks.profiles import PROFILES
from tests.conftest import REPO


def problems(overrides: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_stack_config("test", overrides)
    return caught.value.problems


def test_profiles_validate_as_they_are():
    for env in PROFILES:
        config = build_stack_config(env, {"environment": env})
        assert config.namespace == f"aquascene-{env}"


def test_overrides_merge_deeply_and_null_removes_the_hpa():
    config = build_stack_config(
        "prod", {"environment": "prod", "services": {"ai-processor": {"replicas": 4, "autoscaling": None}}}
    )
    assert config.services["ai-processor"].replicas == 4
    assert config.services["ai-processor"].autoscaling is None
    assert config.services["ai-processor"].resources == "xlarge"  # untouched keys keep the profile's value
    assert config.services["content-manager"].autoscaling.max_replicas == 10


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"environment": "qa"}, "aquascene:environment: required, one of dev, staging, prod (got 'qa')"),
        ({}, "aquascene:environment: required, one of dev, staging, prod (missing)"),
        (
            {"environment": "dev", "colour": "blue"},
            "aquascene:colour: unknown key; allowed here: " + ", ".join(StackConfig.model_fields),
        ),
        (
            {"environment": "dev", "image": {"tagg": "1"}},
            "aquascene:image.tagg: unknown key; allowed here: registry, repository, tag, digest, build, require_digest, "
            "promote_from",
        ),
        (
            {"environment": "dev", "services": {"content-manager": {"replicas": 0}}},
            "aquascene:services.content-manager.replicas: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            {"environment": "dev", "services": {"content-manager": {"replicas": "3"}}},
            'aquascene:services.content-manager.replicas: Input should be a valid integer (got "3")',
        ),
        (
            {
                "environment": "dev",
                "services": {
                    "distributor": {
                        "autoscaling": {"min_replicas": 5, "max_replicas": 2, "cpu_utilization": 70, "memory_utilization": 80}
                    }
                },
            },
            "aquascene:services.distributor.autoscaling: min_replicas (5) must be <= max_replicas (2)",
        ),
        (
            {"environment": "dev", "services": {"mailer": {"replicas": 1}}},
            "aquascene:services.mailer: unknown name; allowed here: content-manager, ai-processor, web-scraper, distributor, "
            "subscriber-manager, admin-dashboard",
        ),
        (
            {"environment": "dev", "services": {"web-scraper": {"resources": "huge"}}},
            "aquascene:services.web-scraper.resources: Input should be 'nano', 'micro', 'small', 'medium', 'large' or 'xlarge' (got \"huge\")",
        ),
        (
            {"environment": "dev", "image": {"tag": "latest"}},
            "aquascene:image.tag: 'latest' is not a version; pin a tag such as 1.0.0",
        ),
        (
            {"environment": "dev", "image": {"registry": "Not A Registry"}},
            "aquascene:image.registry: malformed registry 'Not A Registry'; expected host[:port][/path], e.g. ghcr.io/aquascene",
        ),
        (
            {"environment": "dev", "image": {"digest": "sha256:abc"}},
            "aquascene:image.digest: malformed digest 'sha256:abc'; expected sha256:<64 hex characters> or empty",
        ),
        (
            {"environment": "prod", "image": {"promote_from": ""}},
            "aquascene:image: require_digest is true: set image.digest to sha256:<64 hex>, image.build: true "
            "to deploy the digest of the image this stack builds, or image.promote_from to deploy the digest "
            "another stack ran",
        ),
        (
            {"environment": "prod", "image": {"build": True}},
            "aquascene:image: promote_from deploys the digest another stack ran: set image.build: false and "
            "image.digest: '' (or promote_from: '' to build or pin here)",
        ),
        (
            {"environment": "dev", "image": {"promote_from": "staging"}},
            "aquascene:image.promote_from: must name a stack as organization/project/stack, e.g. "
            "organization/aquascene/staging, or be empty; got 'staging'",
        ),
        (
            {"environment": "dev", "services": {"content-manager": {"replicaz": 1}}},
            "aquascene:services.content-manager.replicaz: unknown key; allowed here: replicas, autoscaling, "
            "resources, startup_timeout_seconds, release",
        ),
        (
            {"environment": "dev", "services": {"distributor": {"release": {"strategy": "shadow"}}}},
            "aquascene:services.distributor.release.strategy: required, one of rolling, blue-green, canary "
            "(got \"shadow\")",
        ),
        (
            {"environment": "dev", "services": {"distributor": {"release": {"strategy": "canary"}}}},
            "aquascene:services.distributor.release.canary_weight: required",
        ),
        (
            {"environment": "dev", "services": {"distributor": {"release": {"strategy": "canary", "canary_weight": 101}}}},
            "aquascene:services.distributor.release.canary_weight: Input should be less than or equal to 100 (got 101)",
        ),
        (
            {"environment": "dev", "services": {"distributor": {"release": {"strategy": "canary", "canary_weight": 10,
                                                                          "canary_image": "latest"}}}},
            "aquascene:services.distributor.release.canary_image: must be a tag (1.2.0) or a digest "
            "(sha256:<64 hex>) of the stack's image repository, or empty for the stack's image; got 'latest'",
        ),
        (
            {"environment": "dev", "services": {"distributor": {"release": {"strategy": "blue-green", "active": "red"}}}},
            "aquascene:services.distributor.release.active: Input should be 'blue' or 'green' (got \"red\")",
        ),
        (
            {"environment": "dev", "services": {"distributor": {"release": {"strategy": "rolling", "active": "teal"}}}},
            "aquascene:services.distributor.release.active: Input should be 'blue' or 'green' (got \"teal\")",
        ),
        (
            {"environment": "dev", "services": {"distributor": {"release": {"strategy": "blue-green", "active": "blue",
                                                                          "canary_weight": 10}}}},
            "aquascene:services.distributor.release.canary_weight: unknown key; allowed here: strategy, active, "
            "idle_replicas, blue_image, green_image",
        ),
        (
            {"environment": "dev", "ingress": {"mode": "ingress"},
             "services": {"web-scraper": {"release": {"strategy": "canary", "canary_weight": 10}}}},
            "aquascene:services.web-scraper.release: strategy canary needs weighted routes: set "
            "aquascene:ingress.mode: gateway (the Ingress API has no weights, and the retired ingress-nginx canary "
            "annotations are no way forward), or use strategy rolling or blue-green",
        ),
        (
            {"environment": "dev", "app": {"log_level": "TRACE"}},
            "aquascene:app.log_level: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR' (got \"TRACE\")",
        ),
        (
            {"environment": "dev", "image": {"build": "yes"}},
            'aquascene:image.build: Input should be a valid boolean (got "yes")',
        ),
        (
            {"environment": "dev", "postgres": {"image": "postgres:latest"}},
            "aquascene:postgres.image: must be an image pinned by tag or digest (registry/name:tag), got 'postgres:latest'",
        ),
        (
            {"environment": "dev", "postgres": {"continuous_backup": {"enabled": True}}},
            "aquascene:postgres: continuous_backup needs mode: cloudnative-pg (statefulset mode is backed up by CronJobs)",
        ),
        (
            {"environment": "prod", "postgres": {"recovery": {"enabled": True, "source_server_name": "postgres"}}},
            "aquascene:postgres: recovery.source_server_name must differ from server_name: the recovered cluster "
            "archives to a new name and never overwrites the backups it recovers from",
        ),
        (
            {"environment": "dev", "redis": {"mode": "sentinel"}},
            "aquascene:redis.mode: Input should be 'standalone', 'cluster' or 'elasticache' (got \"sentinel\")",
        ),
        (
            {"environment": "dev", "redis": {"maxmemory": "2GB"}},
            "aquascene:redis.maxmemory: must be a Redis size such as 400mb or 2gb, got '2GB'",
        ),
        (
            {"environment": "dev", "object_store": {"storage_size": "20GB"}},
            "aquascene:object_store.storage_size: must be a storage quantity such as 10Gi, got '20GB'",
        ),
        (
            {"environment": "dev", "object_store": {"nodes": 2}},
            "aquascene:object_store.nodes: Input should be greater than or equal to 4 (got 2)",
        ),
        (
            {"environment": "dev", "app": {"cors_origins": ["https://ok.example", "https://bad.example/path"]}},
            "aquascene:app.cors_origins: origins must be scheme://host[:port] without a path, got ['https://bad.example/path']",
        ),
        (
            {"environment": "dev", "kubernetes": {"version": "v1.33.2"}},
            "aquascene:kubernetes.version: must look like 1.33 (major.minor), got 'v1.33.2'",
        ),
        (
            {"environment": "dev", "ingress": {"admin_host": "Admin_Dashboard"}},
            "aquascene:ingress.admin_host: must be a DNS name such as api.aquascene.example, got 'Admin_Dashboard'",
        ),
        (
            {"environment": "prod", "ingress": {"admin_allow_cidrs": ["203.0.113.0/24", "10.0.0.1/8", "office", "192.0.2.7"]}},
            "aquascene:ingress.admin_allow_cidrs: must be client networks as IPv4/IPv6 CIDRs with no host bits set, such "
            "as 203.0.113.0/24 or 2001:db8::/32 (empty: open to all); bad: ['10.0.0.1/8', 'office', '192.0.2.7']",
        ),
        (
            {"environment": "staging", "app": {"admin_email": "ops at aquascene"}},
            "aquascene:app.admin_email: must be an email address such as admin@aquascene.example, got 'ops at aquascene' "
            "(An email address must have an @-sign.)",
        ),
        (
            {"environment": "prod", "app": {"require_review": "no"}},
            'aquascene:app.require_review: Input should be a valid boolean (got "no")',
        ),
    ],
)
def test_each_bad_value_is_named(overrides, expected):
    assert problems(overrides) == [expected]


def test_release_shapes_of_the_issue_validate():
    shapes = {
        "content-manager": {"strategy": "rolling"},
        "ai-processor": {"strategy": "blue-green", "active": "blue", "idle_replicas": 1},
        "web-scraper": {"strategy": "canary", "canary_weight": 10},
        "distributor": {"strategy": "canary", "canary_weight": 0, "canary_image": "sha256:" + "b" * 64},
    }
    config = build_stack_config("staging", {"environment": "staging", "services": {
        name: {"release": shape} for name, shape in shapes.items()}})
    assert {n: s.release.model_dump(exclude_unset=True) for n, s in config.services.items() if n in shapes} == shapes
    assert config.services["subscriber-manager"].release.strategy == "rolling"  # the profile's default
    assert config.services["distributor"].release.canary_image == "sha256:" + "b" * 64


def test_prod_promotes_staging_and_builds_nothing():
    image = build_stack_config("prod", {"environment": "prod"}).image
    assert (image.promote_from, image.build, image.require_digest) == ("organization/aquascene/staging", False, True)


def test_every_problem_is_reported_at_once():
    found = problems(
        {
            "environment": "staging",
            "services": {"content-manager": {"replicas": 0}, "ai-processor": {"startup_timeout_seconds": 1}},
            "app": {"db_pool_size": 0},
            "typo": 1,
        }
    )
    assert len(found) == 4
    assert [p.split(":")[1].split(" ")[0] for p in found] == [
        "app.db_pool_size",
        "services.content-manager.replicas",
        "services.ai-processor.startup_timeout_seconds",
        "typo",
    ]


def test_error_message_lists_problems_under_the_stack_name():
    with pytest.raises(ConfigError) as caught:
        build_stack_config("prod", {"environment": "prod", "app": {"db_pool_size": 0}})
    assert str(caught.value).startswith("invalid configuration for stack 'prod' (1 problem):\n  - aquascene:app.db_pool_size")


def _knob_paths(value, prefix=()):
    if isinstance(value, dict) and value and not prefix[-1:] == ("autoscaling",):
        for key, inner in value.items():
            yield from _knob_paths(inner, prefix + (key,))
    else:
        yield ".".join(prefix)


@pytest.mark.parametrize("env", sorted(PROFILES))
def test_stack_file_lists_every_knob_of_its_profile(env):
    document = yaml.safe_load((REPO / f"Pulumi.{env}.yaml").read_text())["config"]
    in_file = {k.removeprefix("aquascene:"): v for k, v in document.items() if k.startswith("aquascene:")}
    assert in_file.pop("environment") == env
    assert set(_knob_paths(in_file)) == set(_knob_paths(PROFILES[env]))


@pytest.mark.parametrize("env", sorted(PROFILES))
def test_stack_files_hold_no_plaintext_secrets(env):
    text = (REPO / f"Pulumi.{env}.yaml").read_text().lower()
    for word in ("password", "secret_key", "api_key", "token"):
        assert f"{word}:" not in text
