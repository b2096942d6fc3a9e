"""Instagram publishing in every stack: the token only in the distributor, as a file; the
account and the pinned Graph API version as the distributor's settings; HTTPS egress."""

from __future__ import annotations

import json

import pytest

from stacks.catalog import SERVICE_NAMES
from stacks.config import ConfigError, build_stack_config
from tests.unit.secret_support import app_secret_refs

ENVS = ("dev", "staging", "prod")
TOKEN = "EAAG-instagram-test-token"
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def pod_specs(rec):
    for r in rec.kubernetes():
        if r.kind in POD_KINDS:
            spec = r.plain_inputs["spec"]
            spec = spec["jobTemplate"]["spec"] if r.kind == "CronJob" else spec
            yield r.kind, r.plain_inputs["metadata"]["name"], spec["template"]["spec"]


@pytest.mark.parametrize("env", ENVS)
def test_every_stack_mounts_the_token_only_into_the_distributor_as_a_file(run_stack, env):
    rec = run_stack(env, {"instagram_access_token": TOKEN, "app": {"instagram_user_id": "17841400000000001"}})
    holders = []
    for kind, name, pod in pod_specs(rec):
        refs = app_secret_refs(pod)
        if "INSTAGRAM_ACCESS_TOKEN" in refs:
            holders.append((kind, name))
            assert refs["INSTAGRAM_ACCESS_TOKEN"] == {"name": "distributor-providers", "key": "instagram_access_token"}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            assert "INSTAGRAM_ACCESS_TOKEN" not in {e["name"] for e in container.get("env", [])}, (kind, name)
    assert holders == [("Deployment", "distributor")]
    assert rec.k8s_object("Secret", "distributor-providers")["stringData"]["instagram_access_token"] == TOKEN
    for service in set(SERVICE_NAMES) - {"distributor"}:
        secret = next((r for r in rec.kubernetes("Secret")
                       if r.plain_inputs["metadata"]["name"] == f"{service}-providers"), None)
        assert secret is None or "instagram_access_token" not in secret.plain_inputs["stringData"], service
    for r in rec.kubernetes("ConfigMap"):
        assert TOKEN not in json.dumps(r.plain_inputs.get("data", {})), r.name


@pytest.mark.parametrize("env", ENVS)
def test_the_distributor_alone_gets_the_account_and_the_pinned_graph_api(run_stack, env):
    rec = run_stack(env, {"app": {"instagram_user_id": "17841400000000001"}})
    for service in SERVICE_NAMES:
        settings = rec.k8s_object("ConfigMap", f"{service}-config")["data"]
        if service == "distributor":
            assert settings["INSTAGRAM_USER_ID"] == "17841400000000001"
            assert settings["INSTAGRAM_GRAPH_URL"] == "https://graph.facebook.com/v26.0"
            # The bucket the stack made (on AWS its name carries the stack's prefix).
            assert settings["S3_BUCKET_INSTAGRAM"].removeprefix(f"aquascene-{env}-").startswith("instagram-media")
        else:
            assert "INSTAGRAM_USER_ID" not in settings and "INSTAGRAM_GRAPH_URL" not in settings, service


def test_without_the_account_the_distributor_starts_without_it(run_stack):
    settings = run_stack("dev").k8s_object("ConfigMap", "distributor-config")["data"]
    assert "INSTAGRAM_USER_ID" not in settings  # the engine answers 503 on the distribution endpoints


def test_the_distributor_may_reach_the_graph_api_over_https(run_stack):
    egress = run_stack("prod").k8s_object("NetworkPolicy", "distributor")["spec"]["egress"]
    internet = [rule for rule in egress for peer in rule["to"] if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"]
    assert internet, egress
    # No port list means every port, 443 among them; a port list must name 443.
    assert all(not rule.get("ports") or any(p.get("port") == 443 for p in rule["ports"]) for rule in internet)


@pytest.mark.parametrize("key, value, words", [
    ("instagram_user_id", "my-account", "must be the numeric Instagram user id"),
    ("instagram_graph_url", "http://graph.facebook.com/v26.0", "pinned version"),
    ("instagram_graph_url", "https://graph.facebook.com", "pinned version"),
])
def test_a_bad_instagram_setting_names_its_key(key, value, words):
    with pytest.raises(ConfigError) as caught:
        build_stack_config("test", {"environment": "dev", "app": {key: value}})
    (problem,) = [p for p in caught.value.problems if key in p]
    assert problem.startswith(f"aquascene:app.{key}: ") and words in problem


def test_rotating_the_token_rolls_the_distributor_alone(run_stack):
    before = run_stack("staging", {"instagram_access_token": TOKEN})
    after = run_stack("staging", {"instagram_access_token": TOKEN + "-rotated"})

    def annotations(rec):
        return {r.name: r.plain_inputs["spec"]["template"]["metadata"].get("annotations", {})
                for r in rec.kubernetes() if r.kind in POD_KINDS and r.kind != "CronJob"}

    a, b = annotations(before), annotations(after)
    assert a.keys() == b.keys()
    assert {name for name in a if a[name] != b[name]} == {"distributor-deployment"}
