"""The delivery pipeline in .github/: what runs on a pull request and on a push to main.

actionlint (built from its Go module by .ci/actionlint.sh) checks the syntax,
expressions, action inputs and shell of every workflow; these tests check that the
workflows do what the pipeline promises. Under CI=true a missing actionlint fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tooling.stackfile import load_stack_file
from tests.conftest import REPO

GITHUB = REPO / ".github"
STACKS = ("dev", "staging", "prod")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    if True in document:  # YAML 1.1 reads the key `on` as a boolean
        document["on"] = document.pop(True)
    return document


@pytest.fixture(scope="module")
def pull_request() -> dict[str, Any]:
    return load(GITHUB / "workflows" / "pull-request.yml")


@pytest.fixture(scope="module")
def deploy() -> dict[str, Any]:
    return load(GITHUB / "workflows" / "deploy.yml")


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job["steps"]


def step_using(job_or_action: dict[str, Any], action: str) -> dict[str, Any]:
    found = [s for s in job_or_action.get("steps") or job_or_action["runs"]["steps"]
             if s.get("uses", "").split("@")[0] == action]
    assert len(found) == 1, (action, found)
    return found[0]


def all_uses() -> Iterator[tuple[str, str]]:
    for path in sorted(GITHUB.rglob("*.yml")):
        document = load(path)
        jobs = document.get("jobs", {}).values() if "jobs" in document else [document["runs"]]
        for job in jobs:
            for step in job.get("steps", []):
                if "uses" in step:
                    yield path.relative_to(REPO).as_posix(), step["uses"]


# ------------------------------------------------------------------ actionlint


def _missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def actionlint() -> str:
    for candidate in (os.environ.get("ACTIONLINT"), "/usr/local/bin/actionlint", shutil.which("actionlint")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    _missing("actionlint not found: run .ci/actionlint.sh (builds it from its Go module)")
    raise AssertionError  # unreachable


def test_shellcheck_is_there_for_actionlint_to_check_the_run_scripts():
    if shutil.which("shellcheck") is None:  # actionlint silently skips the scripts without it
        _missing("shellcheck not found: run .ci/actionlint.sh (apt-get install shellcheck)")


def test_actionlint_passes_on_every_workflow():
    workflows = sorted((GITHUB / "workflows").glob("*.yml"))
    assert [p.name for p in workflows] == ["deploy.yml", "pull-request.yml"]
    result = subprocess.run([actionlint(), "-no-color", *map(str, workflows)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- pull request


def test_pull_requests_run_tests_render_policy_preview_and_an_image_scan(pull_request):
    assert pull_request["on"] == {"pull_request": {"branches": ["main"]}}
    assert set(pull_request["jobs"]) == {"test", "render-and-policy", "preview", "image-scan", "environment-diff"}


def test_changes_to_stack_config_profiles_or_policy_configs_post_the_environment_diff(pull_request):
    job = pull_request["jobs"]["environment-diff"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    runs = " ".join(s.get("run", "") for s in steps(job))
    for watched in ("'Pulumi.*.yaml'", "stacks/profiles.py", "'policies/config/*.json'"):
        assert watched in runs
    assert "aquascene diff $pair" in runs and "gh pr comment" in runs
    assert "${{" not in runs  # untrusted values reach the scripts through env only


def test_the_test_job_runs_ci_run_which_runs_the_readmes_test_command(pull_request):
    runs = [s["run"] for s in steps(pull_request["jobs"]["test"]) if "run" in s]
    assert any("bash .ci/run" in r for r in runs)
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in (REPO / "README.md").read_text()
    assert "bash .ci/actionlint.sh" in (REPO / ".ci" / "run").read_text()


def test_every_stack_is_rendered_and_policy_checked(pull_request):
    job = pull_request["jobs"]["render-and-policy"]
    assert job["strategy"]["matrix"]["environment"] == list(STACKS)
    runs = " ".join(s.get("run", "") for s in steps(job))
    assert "aquascene render ${{ matrix.environment }}" in runs
    assert "aquascene policy ${{ matrix.environment }}" in runs


def test_every_stack_is_previewed_with_its_policy_config_and_commented(pull_request):
    job = pull_request["jobs"]["preview"]
    assert job["strategy"]["matrix"]["environment"] == list(STACKS)
    preview = step_using(job, "pulumi/actions")["with"]
    assert preview["command"] == "preview"
    assert preview["stack-name"] == "organization/aquascene/${{ matrix.environment }}"
    assert preview["policyPacks"] == "policies"
    assert preview["policyPackConfigs"] == "policies/config/${{ matrix.environment }}.json"
    assert preview["diff"] is True and preview["comment-on-pr"] is True
    assert job["permissions"]["pull-requests"] == "write"
    for env in STACKS:
        assert (REPO / "policies" / "config" / f"{env}.json").is_file()


def test_the_image_is_built_not_pushed_and_scanned_for_fixable_high_and_critical(pull_request):
    job = pull_request["jobs"]["image-scan"]
    build = step_using(job, "docker/build-push-action")["with"]
    assert build["push"] is False and build["load"] is True and build["file"] == "app/Dockerfile"
    scan = step_using(job, "aquasecurity/trivy-action")["with"]
    assert scan["image-ref"] == build["tags"]
    assert scan["severity"] == "HIGH,CRITICAL"
    assert scan["ignore-unfixed"] is True  # only vulnerabilities with a fix available fail
    assert str(scan["exit-code"]) == "1"
    assert "packages" not in job["permissions"]


# --------------------------------------------------------------------- deploy


def test_a_push_to_main_builds_once_then_dev_staging_production_in_order(deploy):
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    jobs = deploy["jobs"]
    assert list(jobs) == ["build", "dev", "staging", "production"]
    assert jobs["dev"]["needs"] == "build"
    assert jobs["staging"]["needs"] == ["build", "dev"]
    assert jobs["production"]["needs"] == ["build", "staging"]
    assert jobs["production"]["environment"] == "production"  # required reviewers gate prod
    assert [j.get("environment") for j in jobs.values()] == [None, "dev", "staging", "production"]


def test_the_image_is_pushed_once_tagged_with_the_commit_and_its_digest_handed_on(deploy):
    build = deploy["jobs"]["build"]
    push = step_using(build, "docker/build-push-action")
    assert push["with"]["push"] is True
    assert push["with"]["tags"].endswith(":${{ github.sha }}")
    assert build["outputs"]["digest"] == f"${{{{ steps.{push['id']}.outputs.digest }}}}"
    pushes = [s for j in deploy["jobs"].values() for s in steps(j)
              if s.get("uses", "").startswith("docker/build-push-action")]
    assert len(pushes) == 1


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_dev_and_staging_deploy_the_built_digest_then_smoke_test(deploy, env):
    deploy_step = step_using(deploy["jobs"][env], "./.github/actions/deploy-stack")["with"]
    assert deploy_step == {"environment": env, "tag": "${{ needs.build.outputs.tag }}",
                           "digest": "${{ needs.build.outputs.digest }}"}


def test_the_deploy_action_pins_the_image_runs_up_with_policies_then_the_smoke_test():
    action = load(GITHUB / "actions" / "deploy-stack" / "action.yml")
    names = [s.get("name") for s in action["runs"]["steps"]]
    assert names == ["Pin the image this run built", "pulumi up", "Smoke test through the public route"]
    pin, up, smoke = action["runs"]["steps"]
    assert "--path aquascene:image.digest \"$DIGEST\"" in pin["run"] and pin["if"] == "inputs.digest != ''"
    assert up["with"]["command"] == "up" and up["with"]["policyPacks"] == "policies"
    assert up["with"]["policyPackConfigs"] == "policies/config/${{ inputs.environment }}.json"
    assert "python -m tooling.smoke" in smoke["run"] and "public_urls" in smoke["run"]
    assert action["outputs"]["image"]["value"] == "${{ steps.up.outputs.image }}"


def test_production_runs_the_digest_staging_ran(deploy):
    job = deploy["jobs"]["production"]
    assert deploy["jobs"]["staging"]["outputs"]["image"] == "${{ steps.deploy.outputs.image }}"
    # prod pins nothing itself: its program reads staging's `image` output (promote_from) ...
    deploy_step = step_using(job, "./.github/actions/deploy-stack")
    assert deploy_step["with"] == {"environment": "prod"}
    prod = load_stack_file("prod", REPO).config
    assert '"promote_from": "organization/aquascene/staging"' in prod["aquascene:image"]
    assert '"build": false' in prod["aquascene:image"]
    # ... after checking that staging still runs this run's digest, and checks prod runs it after.
    runs = {s["name"]: s for s in steps(job) if "run" in s}
    before = runs["Staging runs this run's digest"]
    assert "pulumi stack output image --stack organization/aquascene/staging" in before["run"]
    assert before["env"] == {"BUILT": "${{ needs.build.outputs.digest }}",
                             "STAGING_IMAGE": "${{ needs.staging.outputs.image }}"}
    after = runs["Prod runs the digest staging ran"]
    assert after["env"] == {"STAGING_IMAGE": "${{ needs.staging.outputs.image }}",
                            "PROD_IMAGE": f"${{{{ steps.{deploy_step['id']}.outputs.image }}}}"}
    order = [s.get("name") or s.get("uses") for s in steps(job)]
    assert order.index("Staging runs this run's digest") < order.index("./.github/actions/deploy-stack") \
        < order.index("Prod runs the digest staging ran")


def test_deploys_of_one_stack_never_overlap(deploy):
    for env, job in (("dev", "dev"), ("staging", "staging"), ("prod", "production")):
        concurrency = deploy["jobs"][job]["concurrency"]
        assert concurrency == {"group": f"deploy-organization/aquascene/{env}", "cancel-in-progress": False}


# ------------------------------------------------------------------- hygiene


def test_permissions_are_empty_by_default_and_least_privilege_per_job(pull_request, deploy):
    for workflow in (pull_request, deploy):
        assert workflow["permissions"] == {}
        for name, job in workflow["jobs"].items():
            granted = job["permissions"]
            assert isinstance(granted, dict) and granted.get("contents") == "read", name
            writes = {k for k, v in granted.items() if v == "write"}
            uses_aws = any("aws-role-arn" in (s.get("with") or {}) for s in steps(job))
            assert ("id-token" in writes) == uses_aws, name  # OIDC only where AWS is used
            assert writes <= {"id-token", "pull-requests", "packages"}, name
    assert {n for n, j in deploy["jobs"].items() if j["permissions"].get("packages") == "write"} == {"build"}


def test_aws_access_is_oidc_only():
    setup = load(GITHUB / "actions" / "setup" / "action.yml")
    creds = step_using(setup, "aws-actions/configure-aws-credentials")["with"]
    assert set(creds) == {"role-to-assume", "aws-region", "role-session-name"}
    text = "".join(p.read_text() for p in GITHUB.rglob("*.yml"))
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text


def test_every_action_is_pinned_to_an_exact_version():
    uses = list(all_uses())
    assert len(uses) > 10
    unpinned = [(path, u) for path, u in uses if not u.startswith("./") and not PINNED.match(u)]
    assert unpinned == []
    local = {u for _, u in uses if u.startswith("./")}
    assert all((REPO / u / "action.yml").is_file() for u in local)
