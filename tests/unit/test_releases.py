"""Release strategies (aquascene:services.<name>.release): tracks, selection, weights, and one-step diffs.

The diff tests record a stack twice, one config step apart, and compare every
resource: the same URNs must exist (nothing created, deleted or renamed, which is
how Pulumi replaces), and only the expected objects and fields may change. The
transition tests walk every change of strategy and assert that the Deployment that
serves is never replaced or deleted, and that whatever takes the traffic has the
serving size and is waited for before the Service or a route moves to it.
"""

from __future__ import annotations

from typing import Any

import pytest

from components.ingress import CanaryBackend, PublicRoutesArgs, Route
from components.monitoring import prometheus_config
from components.release import TRACK_LABEL
from stacks.catalog import SERVICE_NAMES
from stacks.program import program
from tests.conftest import REPO, stack_config
from tests.unit.test_monitoring import dev_args
from tooling import policy
from tooling.recording import Recorded, Recording, record

SERVICE = "content-manager"
NS = "aquascene-staging"
BASE = {"app.kubernetes.io/name": SERVICE, "app.kubernetes.io/instance": f"{SERVICE}-staging"}
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
LIVE_REPLICAS = 4  # what the HPA runs now in the transition tests (staging's minimum is 2)


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

GREEN = {**BASE, "app.kubernetes.io/instance": f"{SERVICE}-staging-green"}
CANARY = {**BASE, "app.kubernetes.io/instance": f"{SERVICE}-staging-canary"}


def test_rolling_is_one_deployment_without_a_track(run_stack):
    rec = run_stack("staging")
    spec = deployment(rec, SERVICE)["spec"]
    assert spec["selector"]["matchLabels"] == BASE
    assert TRACK_LABEL not in spec["template"]["metadata"]["labels"]
    assert "replicas" not in spec  # a plain rolling release leaves the count to the HPA (and reads nothing)
    assert (HPA, f"{NS}/{SERVICE}") not in rec.reads
    assert rec.k8s_object("Service", SERVICE, NS)["spec"]["selector"] == BASE
    assert backends(rec, "api-content") == [{"kind": "Service", "name": SERVICE, "port": 8000}]


def test_blue_green_adds_green_beside_the_services_own_deployment(run_stack):
    rec = blue_green(run_stack, "blue")
    blue, green = deployment(rec, SERVICE), deployment(rec, f"{SERVICE}-green")
    assert blue["spec"]["selector"]["matchLabels"] == BASE  # the rolling Deployment's, unchanged
    assert TRACK_LABEL not in blue["spec"]["template"]["metadata"]["labels"]
    assert green["spec"]["selector"]["matchLabels"] == GREEN  # its own instance: the selectors never overlap
    assert green["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] == "green"
    assert blue["spec"]["replicas"] == 2  # active: the serving size (the live HPA's, at least its minimum)
    assert green["spec"]["replicas"] == 1  # idle_replicas
    assert rec.k8s_object("Service", SERVICE, NS)["spec"]["selector"] == BASE
    assert rec.k8s_object("HorizontalPodAutoscaler", SERVICE, NS)["spec"]["scaleTargetRef"]["name"] == SERVICE
    assert (HPA, f"{NS}/{SERVICE}") in rec.reads
    # The routes still name the one Service: it is the Service that switches.
    assert backends(rec, "api-content") == [{"kind": "Service", "name": SERVICE, "port": 8000}]


def test_every_deployment_of_the_service_is_under_its_pdb_and_network_policy(run_stack):
    rec = canary(run_stack, 10)
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        spec = rec.k8s_object(kind, SERVICE, NS)["spec"]
        selector = spec["selector"] if kind == "PodDisruptionBudget" else spec["podSelector"]
        assert selector == {"matchLabels": {"app.kubernetes.io/name": SERVICE}, "matchExpressions": [
            {"key": "app.kubernetes.io/instance", "operator": "In",
             "values": [f"{SERVICE}-staging", f"{SERVICE}-staging-green", f"{SERVICE}-staging-canary"]}]}


def test_idle_replicas_zero_stops_the_idle_colour(run_stack):
    rec = release("staging", run_stack, strategy="blue-green", active="green", idle_replicas=0)
    assert deployment(rec, SERVICE)["spec"]["replicas"] == 0


def test_canary_splits_the_public_routes_by_weight(run_stack):
    rec = canary(run_stack, 10)
    stable, canary_ = deployment(rec, SERVICE), deployment(rec, f"{SERVICE}-canary")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/aquascene/content-engine:1.0.0"
    assert canary_["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/aquascene/content-engine:1.1.0"
    assert canary_["spec"]["selector"]["matchLabels"] == CANARY
    assert canary_["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] == "canary"
    assert canary_["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == "1.1.0"
    assert "replicas" not in stable["spec"]  # the stable track stays the HPA's
    assert rec.k8s_object("Service", SERVICE, NS)["spec"]["selector"] == BASE
    assert rec.k8s_object("Service", f"{SERVICE}-canary", NS)["spec"]["selector"] == CANARY
    for route in ("api-content", "api"):  # every public route to the service
        assert backends(rec, route) == [
            {"kind": "Service", "name": SERVICE, "port": 8000, "weight": 90},
            {"kind": "Service", "name": f"{SERVICE}-canary", "port": 8000, "weight": 10},
        ]
    assert backends(rec, "api-generate") == [{"kind": "Service", "name": "ai-processor", "port": 8001}]


def test_a_canary_is_sized_by_its_share_of_what_serves_now(run_stack):
    shape = {"strategy": "canary", "canary_weight": 50, "canary_image": "1.1.0"}
    rec = staging({"release": shape}, live=8)
    assert deployment(rec, f"{SERVICE}-canary")["spec"]["replicas"] == 4  # half of the 8 the HPA runs now


def test_canary_weight_zero_is_the_rollback(run_stack):
    assert [b["weight"] for b in backends(canary(run_stack, 0), "api-content")] == [100, 0]


def test_a_canary_image_defaults_to_the_stacks_image(run_stack):
    rec = release("staging", run_stack, strategy="canary", canary_weight=5)
    images = {deployment(rec, name)["spec"]["template"]["spec"]["containers"][0]["image"]
              for name in (SERVICE, f"{SERVICE}-canary")}
    assert images == {"ghcr.io/aquascene/content-engine:1.0.0"}


def test_track_images_take_tags_and_digests(run_stack):
    digest = "sha256:" + "e" * 64
    rec = release("staging", run_stack, strategy="blue-green", active="blue", blue_image=digest, green_image="1.2.0")
    image = lambda name: deployment(rec, name)["spec"]["template"]["spec"]["containers"][0]["image"]  # noqa: E731
    assert image(SERVICE) == f"ghcr.io/aquascene/content-engine@{digest}"
    assert image(f"{SERVICE}-green") == "ghcr.io/aquascene/content-engine:1.2.0"


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
    ("prod", {"strategy": "rolling", "active": "green"}),
], ids=["staging-canary", "staging-blue-green", "prod-canary", "prod-blue-green", "prod-blue-green-idle-0",
        "prod-rolling-on-green"])
def test_release_stacks_pass_every_mandatory_policy(run_stack, env, shape):
    rec = run_stack(env, {"services": {name: {"release": shape} for name in (SERVICE, "ai-processor")}})
    config = policy.load_pack_config(REPO / "policies" / "config" / f"{env}.json")
    report = policy.evaluate(policy.states_from_recording(rec), config)
    assert report.mandatory == [], "\n".join(f"{f.policy}: {f.message}" for f in report.mandatory)
    # Only the tracks that serve no traffic are exempt from the replica minimum; a serving colour
    # under the HPA declares the HPA's live count (its one exemption).
    exempt = {(f.policy, f.urn.rsplit("::", 1)[-1].removeprefix(SERVICE)) for f in report.findings
              if f.level == "exempt" and "content-manager" in f.urn}
    slot = {"blue": "-deployment", "green": "-green-deployment"}
    if shape["strategy"] == "canary":
        expected = {("workload-min-replicas", "-canary-deployment")}
    elif shape["strategy"] == "blue-green":
        idle = "green" if shape["active"] == "blue" else "blue"
        expected = {("workload-min-replicas", slot[idle]), ("hpa-owns-replicas", slot[shape["active"]])}
    else:
        expected = {("hpa-owns-replicas", slot[shape["active"]])}
    assert exempt == expected


# ------------------------------------------------------------- one step each


def test_canary_weight_10_to_50_changes_only_the_routes_and_the_canarys_size(run_stack):
    changed = changes(canary(run_stack, 10, "prod"), canary(run_stack, 50, "prod"))
    assert changed == {
        "route-api-content": {"spec.rules"},
        "route-api": {"spec.rules"},
        # prod's stable track serves at least 3 pods: 50 % of the requests deserve 2 canary pods, 10 % one.
        f"{SERVICE}-canary-deployment": {"spec.replicas"},
    }


def test_blue_to_green_moves_the_service_and_the_scaling_and_restarts_no_pod(run_stack):
    changed = changes(blue_green(run_stack, "blue"), blue_green(run_stack, "green"))
    # The idle colour's exemption from the replica minimum and the active one's for declaring the
    # HPA's live count swap places: annotations, no pod template change.
    exemption = {f"metadata.annotations.policy.aquascene.io/exempt-{rule}"
                 for rule in ("workload-min-replicas", "hpa-owns-replicas")}
    assert changed == {
        f"{SERVICE}-service": {"spec.selector.app.kubernetes.io/instance"},
        # The HPA follows the active colour; the idle colour is pinned at idle_replicas.
        f"{SERVICE}-hpa": {"spec.scaleTargetRef.name"},
        f"{SERVICE}-deployment": {"spec.replicas", *exemption},
        f"{SERVICE}-green-deployment": {"spec.replicas", *exemption},
    }


def test_blue_to_green_without_an_hpa_only_rescales(run_stack):
    # dev runs one pod per service: with idle_replicas 1 both colours are the same size and
    # only the Service (and which colour carries the exemption) changes; with 0 they swap sizes.
    assert changes(blue_green(run_stack, "blue", "dev"), blue_green(run_stack, "green", "dev")) == {
        f"{SERVICE}-service": {"spec.selector.app.kubernetes.io/instance"},
        f"{SERVICE}-deployment": {"metadata.annotations"},
        f"{SERVICE}-green-deployment": {"metadata.annotations"},
    }
    changed = changes(blue_green(run_stack, "blue", "dev", 0), blue_green(run_stack, "green", "dev", 0))
    exemption = "metadata.annotations"  # policy.aquascene.io/exempt-workload-min-replicas moves to the idle colour
    assert changed == {
        f"{SERVICE}-service": {"spec.selector.app.kubernetes.io/instance"},
        f"{SERVICE}-deployment": {"spec.replicas", exemption},
        f"{SERVICE}-green-deployment": {"spec.replicas", exemption},
    }


def test_a_new_canary_image_rolls_the_canary_only_and_keeps_its_selector(run_stack):
    before = release("staging", run_stack, strategy="canary", canary_weight=10, canary_image="1.1.0")
    after = release("staging", run_stack, strategy="canary", canary_weight=10, canary_image="1.2.0")
    assert changes(before, after) == {f"{SERVICE}-canary-deployment": {
        "spec.template.spec.containers", "spec.template.metadata.labels.app.kubernetes.io/version"}}


# ------------------------------------------------------- changes of strategy

ROLLING = {"strategy": "rolling"}
CANARY_10 = {"strategy": "canary", "canary_weight": 10, "canary_image": "1.1.0"}
CANARY_50 = {"strategy": "canary", "canary_weight": 50, "canary_image": "1.1.0"}
BLUE = {"strategy": "blue-green", "active": "blue", "blue_image": "1.1.0", "green_image": "1.2.0"}
GREEN_ACTIVE = {**BLUE, "active": "green"}
ROLLING_ON_GREEN = {"strategy": "rolling", "active": "green"}
CANARY_ON_GREEN = {**CANARY_10, "active": "green"}
# The runbook's sequence, one stack update each.
SEQUENCE = [ROLLING, CANARY_10, CANARY_50, ROLLING, BLUE, GREEN_ACTIVE, ROLLING_ON_GREEN]


def staging(settings: dict[str, Any], live: int | None = LIVE_REPLICAS, env: str = "staging") -> Recording:
    """The stack with `settings` for the service, its HPA running `live` pods now (None: no HPA yet)."""
    objects = {} if live is None else {(HPA, f"aquascene-{env}/{SERVICE}"): {"status": {"currentReplicas": live}}}
    return record(program, stack=env, config=stack_config(env, {"services": {SERVICE: settings}}),
                  live_objects=objects)


def deployments(rec: Recording) -> dict[str, Recorded]:
    return {r.urn: r for r in rec.kubernetes("Deployment") if r.plain_inputs["metadata"]["name"].startswith(SERVICE)}


def serving(rec: Recording) -> Recorded:
    """The Deployment whose pods the Service `<name>` selects."""
    selector = rec.k8s_object("Service", SERVICE, NS)["spec"]["selector"]
    [found] = [d for d in deployments(rec).values()
               if selector.items() <= d.plain_inputs["spec"]["template"]["metadata"]["labels"].items()]
    return found


def by_name(rec: Recording, name: str) -> Recorded | None:
    return next((r for r in rec.resources if r.name == name), None)


def assert_serving_capacity_kept(before: Recording, after: Recording, live: int) -> None:
    """What one stack update must never do to the Deployments of a service."""
    old, new = deployments(before), deployments(after)
    was, now = serving(before), serving(after)
    # The Deployment that served is neither deleted nor replaced: same URN, name and (immutable) selector.
    assert was.urn in new, f"{was.name} served and is gone"
    for urn in old.keys() & new.keys():
        for field in ("metadata.name", "spec.selector"):
            key, sub = field.split(".")
            assert old[urn].plain_inputs[key][sub] == new[urn].plain_inputs[key][sub], f"{urn}: {field} changed"
        # A size the stack declared must stay declared: omitted, server-side apply resets it to one pod.
        if "replicas" in old[urn].plain_inputs["spec"] and urn in (was.urn, now.urn):
            assert "replicas" in new[urn].plain_inputs["spec"], f"{new[urn].name} would fall back to one pod"
    # Whatever serves after the update has the serving size before the Service moves to it.
    if now.urn != was.urn:
        assert now.plain_inputs["spec"]["replicas"] >= live
    elif "replicas" in now.plain_inputs["spec"]:
        assert now.plain_inputs["spec"]["replicas"] >= live
    service = by_name(after, f"{SERVICE}-service")
    assert now.urn in service.dependencies  # the Service waits until it is Ready (at that size)
    hpa = by_name(after, f"{SERVICE}-hpa")
    switched = {service.urn}
    if hpa is not None:
        assert hpa.plain_inputs["spec"]["scaleTargetRef"]["name"] == now.plain_inputs["metadata"]["name"]
        assert now.urn in hpa.dependencies
        switched.add(hpa.urn)
    for route in ("route-api-content", "route-api"):  # and so does every public route to the service
        assert now.urn in after.prerequisites(by_name(after, route).urn)
    # A Deployment that stops serving scales down only after the Service and the HPA left it.
    for urn, other in new.items():
        if urn != now.urn and other.name != f"{SERVICE}-canary-deployment":
            assert switched <= set(other.dependencies), f"{other.name} scales down too early"


@pytest.mark.parametrize("first, second", [
    (ROLLING, CANARY_10), (CANARY_10, ROLLING),
    (ROLLING, BLUE), (BLUE, {**ROLLING, "active": "blue"}),
    (ROLLING_ON_GREEN, GREEN_ACTIVE), (GREEN_ACTIVE, ROLLING_ON_GREEN),
    (ROLLING_ON_GREEN, CANARY_ON_GREEN), (CANARY_ON_GREEN, ROLLING_ON_GREEN),
    (CANARY_10, {**BLUE, "blue_image": "1.0.0"}), ({**BLUE, "blue_image": "1.0.0"}, {**CANARY_10, "active": "blue"}),
    (CANARY_ON_GREEN, GREEN_ACTIVE), (GREEN_ACTIVE, CANARY_ON_GREEN),
    (BLUE, GREEN_ACTIVE), (GREEN_ACTIVE, BLUE),
    # A switch on the way in: the colour taking the traffic is sized and Ready first.
    (ROLLING, GREEN_ACTIVE),
], ids=lambda shape: "-".join(str(v) for k, v in shape.items() if k in ("strategy", "active", "canary_weight")))
def test_a_change_of_strategy_keeps_the_serving_deployment_and_its_size(first, second):
    before, after = staging({"release": first}), staging({"release": second})
    assert_serving_capacity_kept(before, after, LIVE_REPLICAS)


def test_the_whole_release_sequence_replaces_and_deletes_nothing_that_serves():
    recordings = [staging({"release": shape}) for shape in SEQUENCE]
    for before, after in zip(recordings, recordings[1:]):
        assert_serving_capacity_kept(before, after, LIVE_REPLICAS)
    # Through the sequence the service is served by blue (`<name>`) and then by green, whose
    # Deployment stays after blue-green: two Deployments in all, neither ever recreated.
    names = [serving(rec).plain_inputs["metadata"]["name"] for rec in recordings]
    assert names == [SERVICE] * 5 + [f"{SERVICE}-green"] * 2
    assert serving(recordings[-1]).urn == serving(recordings[5]).urn


def test_leaving_blue_green_for_the_other_colour_sizes_it_before_the_move_and_removes_the_old_one_last():
    """Rolling on blue while green serves: a switch and a return in one. Blue takes the traffic at
    the serving size, Ready, before the Service moves; green goes only once nothing routes to it
    (the engine deletes what a program no longer declares after every create and update)."""
    before, after = staging({"release": GREEN_ACTIVE}), staging({"release": {**ROLLING, "active": "blue"}})
    blue, service = by_name(after, f"{SERVICE}-deployment"), by_name(after, f"{SERVICE}-service")
    assert deployment(before, SERVICE)["spec"]["replicas"] == 1  # idle until now
    assert blue.plain_inputs["spec"]["replicas"] == LIVE_REPLICAS
    assert blue.urn in service.dependencies and blue.urn in by_name(after, f"{SERVICE}-hpa").dependencies
    assert service.plain_inputs["spec"]["selector"] == BASE
    assert f"{SERVICE}-green" not in {d.plain_inputs["metadata"]["name"] for d in deployments(after).values()}


def test_a_switch_sizes_the_colour_taking_the_traffic_from_the_live_hpa():
    before, after = staging({"release": BLUE}, live=7), staging({"release": GREEN_ACTIVE}, live=7)
    assert deployment(before, f"{SERVICE}-green")["spec"]["replicas"] == 1
    assert deployment(after, f"{SERVICE}-green")["spec"]["replicas"] == 7  # what blue runs now, before the move
    assert deployment(after, SERVICE)["spec"]["replicas"] == 1  # blue idles, after the move
    # No HPA status yet (or a count under its minimum): the minimum.
    assert deployment(staging({"release": GREEN_ACTIVE}, live=0), f"{SERVICE}-green")["spec"]["replicas"] == 2


def test_without_an_hpa_the_switch_uses_the_configured_replicas():
    settings = {"replicas": 3, "autoscaling": None}
    before = staging({**settings, "release": {**BLUE, "idle_replicas": 0}}, live=None)
    after = staging({**settings, "release": {**GREEN_ACTIVE, "idle_replicas": 0}}, live=None)
    assert_serving_capacity_kept(before, after, 3)
    assert (HPA, f"{NS}/{SERVICE}") not in after.reads


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_no_network_policy_peer_pins_a_release_slot(run_stack, env):
    """A peer that names an app service's pods must match all of its slots: green and canary pods carry
    their own instance label, so a peer pinning the base instance would cut them off after a switch."""
    rec = run_stack(env)
    slot_bound = {f"{name}-{env}" for name in SERVICE_NAMES}
    pinned = []
    for policy in (r.plain_inputs for r in rec.kubernetes("NetworkPolicy")):
        spec = policy["spec"]
        for rule in spec.get("ingress", []) + spec.get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                instance = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/instance")
                if instance in slot_bound:
                    pinned.append((policy["metadata"]["name"], instance))
    assert pinned == []
