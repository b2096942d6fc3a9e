"""Release strategies (aquascene:services.<name>.release): tracks, selection, weights, and one-step diffs.

The diff tests record a stack twice, one config step apart, and compare every
resource: the same URNs must exist (nothing created, deleted or renamed, which is
how Pulumi replaces), and only the expected objects and fields may change.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.ingress import CanaryBackend, PublicRoutesArgs, Route
from components.monitoring import prometheus_config
from components.release import TRACK_LABEL
from tooling import policy
from tooling.recording import Recording
from tests.conftest import REPO
from tests.unit.test_monitoring import dev_args

SERVICE = "content-manager"
NS = "aquascene-staging"
BASE = {"app.kubernetes.io/name": SERVICE, "app.kubernetes.io/instance": f"{SERVICE}-staging"}


def release(env: str, run_stack, **shape: Any) -> Recording:
    return run_stack(env, {"services": {SERVICE: {"release": shape}}})


def canary(run_stack, weight: int, env: str = "staging") -> Recording:
    return release(env, run_stack, strategy="canary", canary_weight=weight, canary_image="1.1.0")


def blue_green(run_stack, active: str, env: str = "staging", idle_replicas: int = 1) -> Recording:
    return release(env, run_stack, strategy="blue-green", active=active, idle_replicas=idle_replicas)


def changes(before: Recording, after: Recording) -> dict[str, set[str]]:
    """urn -> the dotted input paths that differ; asserts that both recordings hold the same URNs."""
    a, b = before.by_urn(), after.by_urn()
    assert set(a) == set(b), {"created": sorted(set(b) - set(a)), "deleted": sorted(set(a) - set(b))}
    changed = {}
    for urn in a:
        paths = set(_diff(a[urn].plain_inputs, b[urn].plain_inputs))
        if paths:
            changed[urn.rsplit("::", 1)[-1]] = paths
    return changed


def _diff(x: Any, y: Any, path: str = "") -> list[str]:
    if isinstance(x, dict) and isinstance(y, dict):
        return [p for k in sorted(set(x) | set(y)) for p in _diff(x.get(k), y.get(k), f"{path}.{k}".lstrip("."))]
    return [] if x == y else [path]


def deployment(rec: Recording, name: str) -> dict[str, Any]:
    return rec.k8s_object("Deployment", name, NS)


def backends(rec: Recording, route: str) -> list[dict[str, Any]]:
    return rec.k8s_object("HTTPRoute", route, NS)["spec"]["rules"][0]["backendRefs"]


# ----------------------------------------------------------------- shapes


def test_rolling_is_one_deployment_without_a_track(run_stack):
    rec = run_stack("staging")
    spec = deployment(rec, SERVICE)["spec"]
    assert spec["selector"]["matchLabels"] == BASE
    assert TRACK_LABEL not in spec["template"]["metadata"]["labels"]
    assert rec.k8s_object("Service", SERVICE, NS)["spec"]["selector"] == BASE
    assert backends(rec, "api-content") == [{"kind": "Service", "name": SERVICE, "port": 8000}]


def test_blue_green_runs_both_colours_and_the_service_selects_the_active_one(run_stack):
    rec = blue_green(run_stack, "blue")
    blue, green = deployment(rec, f"{SERVICE}-blue"), deployment(rec, f"{SERVICE}-green")
    for colour, obj in (("blue", blue), ("green", green)):
        assert obj["spec"]["selector"]["matchLabels"] == {**BASE, TRACK_LABEL: colour}
        assert obj["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] == colour
    assert "replicas" not in blue["spec"]  # active: the HPA owns the count
    assert green["spec"]["replicas"] == 1  # idle_replicas
    assert rec.k8s_object("Service", SERVICE, NS)["spec"]["selector"] == {**BASE, TRACK_LABEL: "blue"}
    assert rec.k8s_object("HorizontalPodAutoscaler", SERVICE, NS)["spec"]["scaleTargetRef"]["name"] == f"{SERVICE}-blue"
    assert [d for d in rec.kubernetes("Deployment") if d.plain_inputs["metadata"]["name"] == SERVICE] == []
    # The routes still name the one Service: it is the Service that switches.
    assert backends(rec, "api-content") == [{"kind": "Service", "name": SERVICE, "port": 8000}]


def test_idle_replicas_zero_stops_the_idle_colour(run_stack):
    rec = release("staging", run_stack, strategy="blue-green", active="green", idle_replicas=0)
    assert deployment(rec, f"{SERVICE}-blue")["spec"]["replicas"] == 0


def test_canary_splits_the_public_routes_by_weight(run_stack):
    rec = canary(run_stack, 10)
    stable, canary_ = deployment(rec, f"{SERVICE}-stable"), deployment(rec, f"{SERVICE}-canary")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/aquascene/content-engine:1.0.0"
    assert canary_["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/aquascene/content-engine:1.1.0"
    assert canary_["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] == "canary"
    assert canary_["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == "1.1.0"
    assert stable["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == "1.0.0"
    assert rec.k8s_object("Service", SERVICE, NS)["spec"]["selector"] == {**BASE, TRACK_LABEL: "stable"}
    assert rec.k8s_object("Service", f"{SERVICE}-canary", NS)["spec"]["selector"] == {**BASE, TRACK_LABEL: "canary"}
    for route in ("api-content", "api"):  # every public route to the service
        assert backends(rec, route) == [
            {"kind": "Service", "name": SERVICE, "port": 8000, "weight": 90},
            {"kind": "Service", "name": f"{SERVICE}-canary", "port": 8000, "weight": 10},
        ]
    assert backends(rec, "api-generate") == [{"kind": "Service", "name": "ai-processor", "port": 8001}]


def test_canary_weight_zero_is_the_rollback(run_stack):
    assert [b["weight"] for b in backends(canary(run_stack, 0), "api-content")] == [100, 0]


def test_a_canary_image_defaults_to_the_stacks_image(run_stack):
    rec = release("staging", run_stack, strategy="canary", canary_weight=5)
    images = {deployment(rec, f"{SERVICE}-{t}")["spec"]["template"]["spec"]["containers"][0]["image"]
              for t in ("stable", "canary")}
    assert images == {"ghcr.io/aquascene/content-engine:1.0.0"}


def test_track_images_take_tags_and_digests(run_stack):
    digest = "sha256:" + "e" * 64
    rec = release("staging", run_stack, strategy="blue-green", active="blue", blue_image=digest, green_image="1.2.0")
    image = lambda colour: deployment(rec, f"{SERVICE}-{colour}")["spec"]["template"]["spec"]["containers"][0]["image"]  # noqa: E731
    assert image("blue") == f"ghcr.io/aquascene/content-engine@{digest}"
    assert image("green") == "ghcr.io/aquascene/content-engine:1.2.0"


def test_the_ingress_api_refuses_canary_routes():
    route = Route("api", "api.example.org", "/", SERVICE, 8000, NS, canary=CanaryBackend(f"{SERVICE}-canary", 10))
    with pytest.raises(ValueError, match="canary routes need mode gateway"):
        PublicRoutesArgs(environment="dev", gateway_namespace="gw", routes=[route], mode="ingress")


def test_scraped_metrics_carry_the_track_label():
    import yaml

    pods = next(j for j in yaml.safe_load(prometheus_config(dev_args()))["scrape_configs"]
                if j["job_name"] == "kubernetes-pods")
    assert {"source_labels": ["__meta_kubernetes_pod_label_aquascene_io_track"], "target_label": "track"} \
        in pods["relabel_configs"]


@pytest.mark.parametrize("env, shape", [
    ("staging", {"strategy": "canary", "canary_weight": 10, "canary_image": "1.1.0"}),
    ("staging", {"strategy": "blue-green", "active": "green", "idle_replicas": 0}),
    ("prod", {"strategy": "canary", "canary_weight": 10, "canary_image": "sha256:" + "f" * 64}),
    ("prod", {"strategy": "blue-green", "active": "blue", "idle_replicas": 1}),
    ("prod", {"strategy": "blue-green", "active": "green", "idle_replicas": 0}),
], ids=["staging-canary", "staging-blue-green", "prod-canary", "prod-blue-green", "prod-blue-green-idle-0"])
def test_release_stacks_pass_every_mandatory_policy(run_stack, env, shape):
    rec = run_stack(env, {"services": {name: {"release": shape} for name in (SERVICE, "ai-processor")}})
    config = policy.load_pack_config(REPO / "policies" / "config" / f"{env}.json")
    report = policy.evaluate(policy.states_from_recording(rec), config)
    assert report.mandatory == [], "\n".join(f"{f.policy}: {f.message}" for f in report.mandatory)
    # Only the tracks that serve no traffic are exempt, and only from the replica minimum.
    exempt = {(f.policy, f.urn.rsplit("::", 1)[-1]) for f in report.findings if f.level == "exempt"
              and "content-manager" in f.urn}
    idle = {"canary": "canary", "blue": "green", "green": "blue"}[shape.get("active", "canary")]
    assert exempt == {("workload-min-replicas", f"{SERVICE}-{idle}-deployment")}


# ------------------------------------------------------------- one step each


def test_canary_weight_10_to_50_changes_only_the_routes_and_the_canarys_size(run_stack):
    changed = changes(canary(run_stack, 10, "prod"), canary(run_stack, 50, "prod"))
    assert changed == {
        "route-api-content": {"spec.rules"},
        "route-api": {"spec.rules"},
        # prod's stable track starts at 3 pods: 50 % of the requests deserve 2 canary pods, 10 % one.
        f"{SERVICE}-canary-deployment": {"spec.replicas"},
    }


def test_blue_to_green_moves_the_service_and_the_scaling_and_restarts_no_pod(run_stack):
    changed = changes(blue_green(run_stack, "blue"), blue_green(run_stack, "green"))
    exemption = "metadata.annotations"  # policy.aquascene.io/exempt-workload-min-replicas moves to the idle colour
    assert changed == {
        f"{SERVICE}-service": {"spec.selector.aquascene.io/track"},
        # The HPA follows the active colour; the idle colour is pinned at idle_replicas (and is the
        # one exempt from the replica minimum: an annotation, no pod template change).
        f"{SERVICE}-hpa": {"spec.scaleTargetRef.name"},
        f"{SERVICE}-blue-deployment": {"spec.replicas", exemption},
        f"{SERVICE}-green-deployment": {"spec.replicas", exemption},
    }


def test_blue_to_green_without_an_hpa_only_rescales(run_stack):
    # dev runs one pod per service: with idle_replicas 1 both colours are the same size and
    # only the Service (and which colour carries the exemption) changes; with 0 they swap sizes.
    assert changes(blue_green(run_stack, "blue", "dev"), blue_green(run_stack, "green", "dev")) == {
        f"{SERVICE}-service": {"spec.selector.aquascene.io/track"},
        f"{SERVICE}-blue-deployment": {"metadata.annotations"},
        f"{SERVICE}-green-deployment": {"metadata.annotations"},
    }
    changed = changes(blue_green(run_stack, "blue", "dev", 0), blue_green(run_stack, "green", "dev", 0))
    exemption = "metadata.annotations"  # policy.aquascene.io/exempt-workload-min-replicas moves to the idle colour
    assert changed == {
        f"{SERVICE}-service": {"spec.selector.aquascene.io/track"},
        f"{SERVICE}-blue-deployment": {"spec.replicas", exemption},
        f"{SERVICE}-green-deployment": {"spec.replicas", exemption},
    }


@pytest.mark.parametrize("active", ["blue", "green"])
def test_the_service_moves_only_after_the_serving_track_is_ready(run_stack, active):
    rec = blue_green(run_stack, active)
    by_name = {r.name: r for r in rec.resources}
    service = by_name[f"{SERVICE}-service"]
    assert by_name[f"{SERVICE}-{active}-deployment"].urn in service.dependencies
    idle = "green" if active == "blue" else "blue"
    assert by_name[f"{SERVICE}-{idle}-deployment"].urn not in service.dependencies


def test_a_new_canary_image_rolls_the_canary_only_and_keeps_its_selector(run_stack):
    before = release("staging", run_stack, strategy="canary", canary_weight=10, canary_image="1.1.0")
    after = release("staging", run_stack, strategy="canary", canary_weight=10, canary_image="1.2.0")
    assert changes(before, after) == {f"{SERVICE}-canary-deployment": {
        "spec.template.spec.containers", "spec.template.metadata.labels.app.kubernetes.io/version"}}
