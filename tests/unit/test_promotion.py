"""Promotion: prod deploys, by digest, the image staging ran (aquascene:image.promote_from)."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError
from stacks.program import program
from tooling.recording import deployed_stack_outputs, record
from tests.conftest import stack_config

STAGING = "organization/aquascene/staging"
TESTED = "ghcr.io/aquascene/content-engine:3f2c1a9@sha256:" + "c" * 64


def content_engine_images(rec) -> set[str]:
    """Every image of the content engine's own workloads (services, migration, backups)."""
    images = set()
    for kind in ("Deployment", "Job", "CronJob"):
        for r in rec.kubernetes(kind):
            spec = r.plain_inputs["spec"]
            pod = spec["jobTemplate"]["spec"]["template"]["spec"] if kind == "CronJob" else spec["template"]["spec"]
            images |= {c["image"] for c in pod["containers"] if "content-engine" in c["image"]}
    return images


def test_prod_runs_the_digest_staging_exports_and_builds_nothing():
    rec = record(program, stack="prod", config=stack_config("prod"), stack_outputs={STAGING: {"image": TESTED}})
    assert rec.stack_outputs["image"] == TESTED
    assert content_engine_images(rec) == {TESTED}
    assert not [r for r in rec.resources if r.type.startswith("docker:")]


def test_the_recorded_prod_stack_shows_the_promoted_digest(run_stack):
    promoted = deployed_stack_outputs(STAGING)["image"]
    assert "@sha256:" in promoted
    rec = run_stack("prod")
    assert rec.stack_outputs["image"] == promoted
    assert content_engine_images(rec) == {promoted}


@pytest.mark.parametrize("outputs, got", [
    ({"image": "ghcr.io/aquascene/content-engine:1.0.0"}, "`image` = 'ghcr.io/aquascene/content-engine:1.0.0'"),
    ({"environment": "staging"}, "no `image` output"),
])
def test_a_promoted_image_that_is_not_a_digest_fails_naming_the_key(outputs, got):
    with pytest.raises(ConfigError) as caught:
        record(program, stack="prod", config=stack_config("prod"), stack_outputs={STAGING: outputs})
    [problem] = caught.value.problems
    assert problem.startswith(f"aquascene:image.promote_from: stack {STAGING} has {got}, not an image pinned by digest")


def test_any_stack_can_promote_from_another():
    source = "acme/aquascene/qa"
    image = "registry.example/team/content-engine@sha256:" + "d" * 64
    rec = record(program, stack="dev", config=stack_config("dev", {"image": {"promote_from": source}}),
                 stack_outputs={source: {"image": image}})
    assert content_engine_images(rec) == {image}
