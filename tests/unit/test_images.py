"""Third-party images: mirrors and digest pinning (stacks/images.py)."""

from __future__ import annotations

import pytest

from stacks.images import ImagePolicy, split_registry


@pytest.mark.parametrize("ref, expected", [
    ("redis:7.4.6", ("docker.io", "library/redis:7.4.6")),
    ("oliver006/redis_exporter:v1", ("docker.io", "oliver006/redis_exporter:v1")),
    ("docker.io/library/redis:7", ("docker.io", "library/redis:7")),
    ("ghcr.io/cloudnative-pg/postgresql:17.6", ("ghcr.io", "cloudnative-pg/postgresql:17.6")),
    ("localhost:5000/x:1", ("localhost:5000", "x:1")),
])
def test_split_registry(ref, expected):
    assert split_registry(ref) == expected


def test_mirror_replaces_only_the_mapped_registry():
    policy = ImagePolicy(mirrors={"docker.io": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub"})
    assert policy.resolve("docker.io/library/redis:7.4.6") == \
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub/library/redis:7.4.6"
    assert policy.resolve("quay.io/a/b:1") == "quay.io/a/b:1"


def test_pinning_asks_the_registry_for_the_digest(run_program):
    resolved = []
    run_program(lambda: resolved.append(ImagePolicy(pin_digests=True).resolve("docker.io/library/redis:7.4.6")))
    name, digest = resolved[0].split("@")
    assert name == "docker.io/library/redis:7.4.6" and digest.startswith("sha256:") and len(digest) == 71


def test_an_already_pinned_image_is_left_alone(run_program):
    ref = "docker.io/library/redis:7.4.6@sha256:" + "a" * 64
    assert ImagePolicy(pin_digests=True).resolve(ref) == ref


def test_prod_runs_every_third_party_image_by_digest(run_stack):
    rec = run_stack("prod")
    images = set()
    for kind in ("StatefulSet", "Deployment", "Job", "CronJob", "DaemonSet"):
        for r in rec.kubernetes(kind):
            spec = r.plain_inputs["spec"]
            pod = spec["jobTemplate"]["spec"]["template"]["spec"] if kind == "CronJob" else spec["template"]["spec"]
            images |= {c["image"] for c in pod["containers"] + pod.get("initContainers", [])}
    images.add(rec.k8s_object("Cluster", "postgres")["spec"]["imageName"])
    assert images and all("@sha256:" in image for image in images), sorted(images)


def test_dev_deploys_tags_as_configured(run_stack):
    rec = run_stack("dev")
    image = rec.k8s_object("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "docker.io/library/redis:7.4.6"


def test_mirror_config_is_validated():
    from stacks.config import ConfigError, build_stack_config

    with pytest.raises(ConfigError, match="aquascene:images.mirrors: keys are upstream registries"):
        build_stack_config("dev", {"environment": "dev", "images": {"mirrors": {"not a host": "x"}}})
