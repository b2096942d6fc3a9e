"""The delivery pipeline in .github/: what runs on a pull request and on a push to main.

actionlint (built from its Go module by .ci/actionlint.sh) checks the syntax,
expressions, action inputs and shell of every workflow, and zizmor (the dev extra) audits
their security; these tests check that the workflows do what the pipeline promises. Under
CI=true a missing actionlint fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tooling.stackfile import load_stack_file
from tests.conftest import REPO

GITHUB = REPO / ".github"
STACKS = ("dev", "staging", "prod")
# A third-party action at a full commit, its release tag in a trailing comment (Dependabot's
# github-actions ecosystem updates both); a tag alone can be moved by whoever controls it.
PINNED_LINE = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


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


def pipeline_files() -> list[Path]:
    """Every workflow and local action (dependabot.yml is neither)."""
    return sorted([*(GITHUB / "workflows").glob("*.yml"), *(GITHUB / "actions").rglob("*.yml")])


def all_uses() -> Iterator[tuple[str, str]]:
    for path in pipeline_files():
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


def test_zizmor_finds_nothing_at_medium_severity_or_above():
    zizmor = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    if zizmor is None:
        _missing("zizmor not found: install the dev extra (.venv/bin/pip install -e '.[dev]')")
    result = subprocess.run([zizmor, "--offline", "--no-progress", "--min-severity", "medium", "--format", "plain",
                             str(GITHUB)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


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
    # .ci/run adds CI=true and timing: everything the tests need, the README's command installs.
    test_sh = (REPO / "scripts" / "test.sh").read_text()
    for script in ("services", "pgbouncer", "monitoring-tools", "actionlint", "browser", "image"):
        assert f"bash .ci/{script}.sh" in test_sh, script
        assert f".ci/{script}.sh" not in (REPO / ".ci" / "run").read_text(), script


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


def test_the_test_job_builds_the_image_on_its_real_base(pull_request):
    job = pull_request["jobs"]["test"]
    run = [s for s in steps(job) if "bash .ci/run" in s.get("run", "")][0]
    assert run["env"]["IMAGE_BASE"] == "registry" and "IMAGE_BASE" in run["run"]


# --------------------------------------------------------------------- deploy


def test_a_push_to_main_builds_once_then_dev_staging_production_in_order(deploy):
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    jobs = deploy["jobs"]
    assert list(jobs) == ["build", "image-test", "dev", "staging", "production"]
    assert jobs["image-test"]["needs"] == "build"
    assert jobs["dev"]["needs"] == ["build", "image-test"]
    assert jobs["staging"]["needs"] == ["build", "dev"]
    assert jobs["production"]["needs"] == ["build", "staging"]
    assert jobs["production"]["environment"] == "production"  # required reviewers gate prod
    assert [j.get("environment") for j in jobs.values()] == [None, None, "dev", "staging", "production"]


def test_the_image_is_pushed_once_tagged_with_the_commit_and_its_digest_handed_on(deploy):
    build = deploy["jobs"]["build"]
    push = step_using(build, "docker/build-push-action")
    assert push["with"]["push"] is True
    assert push["with"]["tags"].endswith(":${{ github.sha }}")
    assert build["outputs"]["digest"] == f"${{{{ steps.{push['id']}.outputs.digest }}}}"
    pushes = [s for j in deploy["jobs"].values() for s in steps(j)
              if s.get("uses", "").startswith("docker/build-push-action")]
    assert len(pushes) == 1


def test_the_pushed_image_is_attested_scanned_and_signed(deploy):
    build = deploy["jobs"]["build"]
    push = step_using(build, "docker/build-push-action")
    assert push["with"]["sbom"] is True and push["with"]["provenance"] == "mode=max"
    digest_ref = "${{ env.REGISTRY }}/${{ env.REPOSITORY }}@${{ steps.push.outputs.digest }}"
    scan = step_using(build, "aquasecurity/trivy-action")
    assert scan["with"]["image-ref"] == digest_ref
    assert scan["with"]["severity"] == "CRITICAL" and scan["with"]["ignore-unfixed"] is True
    assert str(scan["with"]["exit-code"]) == "1"
    sign = [s for s in steps(build) if "cosign sign" in s.get("run", "")]
    assert len(sign) == 1 and sign[0]["env"]["IMAGE"] == digest_ref and "--yes" in sign[0]["run"]
    order = [s.get("id") or s.get("uses", "").split("@")[0] or s.get("name") for s in steps(build)]
    assert order.index("push") < order.index("aquasecurity/trivy-action") < order.index(sign[0]["name"])
    assert build["permissions"]["id-token"] == "write"  # keyless: the certificate names this workflow


def test_the_same_image_tests_run_on_the_pushed_image(deploy):
    job = deploy["jobs"]["image-test"]
    run = [s for s in steps(job) if "bash .ci/run tests/image" in s.get("run", "")]
    assert len(run) == 1
    assert run[0]["env"]["IMAGE_REF"] == "${{ env.REGISTRY }}/${{ env.REPOSITORY }}@${{ needs.build.outputs.digest }}"
    assert run[0]["env"]["CI"] == "true" and "IMAGE_REF" in run[0]["run"]
    assert "IMAGE_REF" in (REPO / ".ci" / "image.sh").read_text()


def test_prod_verifies_the_signature_before_pulumi_up(deploy):
    job = deploy["jobs"]["production"]
    names = [s.get("name") or s.get("uses", "").split("@")[0] for s in steps(job)]
    verify = [s for s in steps(job) if "cosign verify" in s.get("run", "")]
    assert len(verify) == 1
    assert verify[0]["env"]["IMAGE"] == "${{ env.REGISTRY }}/${{ env.REPOSITORY }}@${{ needs.build.outputs.digest }}"
    assert "--certificate-oidc-issuer https://token.actions.githubusercontent.com" in verify[0]["run"]
    assert '/.github/workflows/deploy.yml@refs/heads/main"' in verify[0]["run"]
    assert names.index(verify[0]["name"]) < names.index("./.github/actions/deploy-stack")


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
            uses_oidc = any("aws-role-arn" in (s.get("with") or {}) or "cosign sign" in s.get("run", "")
                            for s in steps(job))
            assert ("id-token" in writes) == uses_oidc, name  # OIDC only for AWS and keyless signing
            assert writes <= {"id-token", "pull-requests", "packages"}, name
    assert {n for n, j in deploy["jobs"].items() if j["permissions"].get("packages") == "write"} == {"build"}


def test_aws_access_is_oidc_only():
    setup = load(GITHUB / "actions" / "setup" / "action.yml")
    creds = step_using(setup, "aws-actions/configure-aws-credentials")["with"]
    assert set(creds) == {"role-to-assume", "aws-region", "role-session-name"}
    text = "".join(p.read_text() for p in GITHUB.rglob("*.yml"))
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text


def test_every_third_party_action_is_pinned_to_a_commit_with_its_tag():
    uses = list(all_uses())
    assert len(uses) > 10
    lines = [(path.relative_to(REPO).as_posix(), line) for path in pipeline_files()
             for line in path.read_text().splitlines() if re.match(r"^\s*(- )?uses:", line)]
    assert len(lines) == len(uses)
    unpinned = [(path, line.strip()) for path, line in lines
                if "uses: ./" not in line and not PINNED_LINE.match(line)]
    assert unpinned == []
    local = {u for _, u in uses if u.startswith("./")}
    assert all((REPO / u / "action.yml").is_file() for u in local)


def test_dependabot_keeps_actions_the_base_image_and_python_dependencies_fresh():
    config = yaml.safe_load((GITHUB / "dependabot.yml").read_text())
    ecosystems = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(ecosystems) == {"github-actions", "docker", "pip"}
    assert ecosystems["docker"]["directory"] == "/app"  # app/Dockerfile's FROM line
    assert all(u["cooldown"]["default-days"] >= 7 for u in config["updates"])
