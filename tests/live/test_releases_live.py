"""Release steps against a live API server: a canary's weight moves and a blue-green switch
happen as updates in place, with the same pods serving (no restart); and the whole sequence
rolling -> canary -> promote -> blue-green -> switch -> rolling, with an HPA in place, never
recreates the serving Deployment nor serves from fewer Ready pods than before a step."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.program import program
from tests.conftest import stack_config
from tests.live.kube_support import (namespaces_provided_elsewhere, not_ready, provide_namespaces,
                                     selection_problems, wait_until)
from tests.live.test_stacks_live import (READY_TIMEOUT_SECONDS, apply_all, delete_all, delete_dropped,
                                        update_all)
from tooling.check import Cluster, StackObjects, stack_objects
from tooling.recording import record

SERVICE = "content-manager"
INSTANCE = "app.kubernetes.io/instance"


def staging_with(release: dict[str, Any]) -> StackObjects:
    return stack_objects(record(program, stack="staging",
                                config=stack_config("staging", {"services": {SERVICE: {"release": release}}})))


def pod_uids(cluster: Cluster, namespace: str, selector: dict[str, str]) -> set[str]:
    labels = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    return {p["metadata"]["uid"] for p in cluster.list("v1", "Pod", namespace, label_selector=labels)}


@pytest.mark.parametrize("first, second", [
    ({"strategy": "canary", "canary_weight": 10, "canary_image": "1.1.0"},
     {"strategy": "canary", "canary_weight": 50, "canary_image": "1.1.0"}),
    ({"strategy": "blue-green", "active": "blue", "idle_replicas": 1},
     {"strategy": "blue-green", "active": "green", "idle_replicas": 1}),
], ids=["canary-10-to-50", "blue-to-green"])
def test_a_release_step_applies_in_place(cluster: Cluster, first: dict, second: dict) -> None:
    before, after = staging_with(first), staging_with(second)
    namespaces = [o for o in before.objects if o.kind == "Namespace"]
    assert cluster.wait_gone(namespaces, timeout_seconds=240) == []
    provided = provide_namespaces(cluster, namespaces_provided_elsewhere(after.objects))
    try:
        assert apply_all(cluster, before.objects) == []
        assert wait_until(lambda: not_ready(cluster, before.objects), READY_TIMEOUT_SECONDS) == []
        service = next(o for o in before.objects if o.kind == "Service" and o.name == SERVICE)
        serving = pod_uids(cluster, service.namespace, service.manifest["spec"]["selector"])
        assert serving
        base = service.manifest["spec"]["selector"]
        green_selector = {**base, INSTANCE: f"{base[INSTANCE]}-green"}  # green's pods: an instance of their own
        green_before = pod_uids(cluster, service.namespace, green_selector)

        assert update_all(cluster, before, after) == []
        assert wait_until(lambda: not_ready(cluster, after.objects), READY_TIMEOUT_SECONDS) == []
        assert wait_until(lambda: selection_problems(cluster, after.objects).problems, 60) == []
        live = cluster.get("v1", "Service", SERVICE, service.namespace)
        wanted = next(o for o in after.objects if o.kind == "Service" and o.name == SERVICE)
        assert live["spec"]["selector"] == wanted.manifest["spec"]["selector"]
        if second["strategy"] == "blue-green":
            assert live["spec"]["selector"] == green_selector
            # The idle green pods, running before the switch, now take the traffic: nothing restarted.
            assert green_before and green_before <= pod_uids(cluster, service.namespace, live["spec"]["selector"])
        else:
            route = next(o for o in after.objects if o.kind == "HTTPRoute"
                         and any(b["name"] == f"{SERVICE}-canary" for r in o.manifest["spec"]["rules"]
                                 for b in r.get("backendRefs") or []))
            stored = cluster.get(route.api_version, "HTTPRoute", route.name, route.namespace)
            weights = {b["name"]: b["weight"] for r in stored["spec"]["rules"] for b in r.get("backendRefs") or []}
            assert weights == {SERVICE: 50, f"{SERVICE}-canary": 50}
            assert pod_uids(cluster, service.namespace, service.manifest["spec"]["selector"]) == serving
    finally:
        left = delete_all(cluster, [*provided, *after.objects])
    assert left == []


# ------------------------------------------------------- the whole release sequence

HPA_TYPE = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
# rolling -> canary 10 -> 50 -> promote -> blue-green (blue) -> switch to green -> rolling (on green)
SEQUENCE = [
    ("rolling", {"strategy": "rolling"}),
    ("canary 10", {"strategy": "canary", "canary_weight": 10, "canary_image": "1.1.0"}),
    ("canary 50", {"strategy": "canary", "canary_weight": 50, "canary_image": "1.1.0"}),
    ("promote", {"strategy": "rolling"}),
    ("blue-green", {"strategy": "blue-green", "active": "blue", "idle_replicas": 1, "green_image": "1.1.0"}),
    ("switch", {"strategy": "blue-green", "active": "green", "idle_replicas": 1, "green_image": "1.1.0"}),
    ("rolling on green", {"strategy": "rolling", "active": "green"}),
]
SCALED_BY_HPA = 3  # staging's HPA runs 2-5 pods of the service: as if load had raised it to 3


def staging_step(cluster: Cluster, release: dict[str, Any]) -> StackObjects:
    """The stack as the engine would render it now: reading the live HPA the way the program does."""
    live = cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", SERVICE, NAMESPACE)
    objects = {(HPA_TYPE, f"{NAMESPACE}/{SERVICE}"): {"status": live.get("status") or {}}} if live else {}
    config = stack_config("staging", {"services": {SERVICE: {"release": release}}})
    return stack_objects(record(program, stack="staging", config=config, live_objects=objects))


NAMESPACE = "aquascene-staging"


def ready_endpoints(cluster: Cluster, name: str) -> int:
    slices = cluster.list("discovery.k8s.io/v1", "EndpointSlice", NAMESPACE,
                          label_selector=f"kubernetes.io/service-name={name}")
    return sum(1 for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready"))


def service_deployments(cluster: Cluster) -> dict[str, dict[str, Any]]:
    found = cluster.list("apps/v1", "Deployment", NAMESPACE, label_selector=f"app.kubernetes.io/name={SERVICE}")
    return {d["metadata"]["name"]: d for d in found}


def serving_deployment(cluster: Cluster) -> str:
    """The Deployment whose pods the Service `<name>` selects now."""
    selector = cluster.get("v1", "Service", SERVICE, NAMESPACE)["spec"]["selector"]
    [name] = [n for n, d in service_deployments(cluster).items()
              if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    return name


def apply_like_the_engine(cluster: Cluster, before: StackObjects, after: StackObjects) -> dict[str, int]:
    """Apply `after` over `before` in dependency order, waiting on each Deployment until it is
    rolled out and Ready (the engine's await) before what depends on it; then delete (and await) what
    `after` no longer declares. What the Deployment the Service selects had Ready when the
    Service was applied: name -> ready replicas."""
    moved: dict[str, int] = {}
    for obj in after.objects:
        if obj.kind == "Service" and obj.name == SERVICE:
            selector = obj.manifest["spec"]["selector"]
            [target] = [o for o in after.objects if o.kind == "Deployment"
                        and selector.items() <= o.manifest["spec"]["template"]["metadata"]["labels"].items()]
            live = cluster.get("apps/v1", "Deployment", target.name, NAMESPACE)
            moved[target.name] = (live.get("status") or {}).get("readyReplicas", 0)
        assert cluster.apply(obj) is None, obj.ref
        if obj.kind == "Deployment":
            assert wait_until(lambda: not_ready(cluster, [obj]), READY_TIMEOUT_SECONDS) == []
    assert delete_dropped(cluster, before, after) == []
    return moved


def test_the_release_sequence_never_serves_from_fewer_pods(cluster: Cluster, request) -> None:
    from tests.conftest import report_figures

    first = staging_step(cluster, SEQUENCE[0][1])
    namespaces = [o for o in first.objects if o.kind == "Namespace"]
    assert cluster.wait_gone(namespaces, timeout_seconds=240) == []
    provided = provide_namespaces(cluster, namespaces_provided_elsewhere(first.objects))
    figures: dict[str, Any] = {}
    current = first
    try:
        assert apply_all(cluster, first.objects) == []
        assert wait_until(lambda: not_ready(cluster, first.objects), READY_TIMEOUT_SECONDS) == []
        # The HPA scales the serving Deployment (through its scale subresource, not the stack).
        cluster.resource("apps/v1", "Deployment").patch(
            name=SERVICE, namespace=NAMESPACE, body={"spec": {"replicas": SCALED_BY_HPA}},
            content_type="application/merge-patch+json", field_manager="hpa-stand-in")
        assert wait_until(lambda: [] if ready_endpoints(cluster, SERVICE) >= SCALED_BY_HPA else ["scaling"], 120) == []

        def hpa_reports() -> list[str]:
            hpa = cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", SERVICE, NAMESPACE) or {}
            current = (hpa.get("status") or {}).get("currentReplicas")
            return [] if current == SCALED_BY_HPA else [f"HPA reports {current}"]
        assert wait_until(hpa_reports, 120) == []

        for step, release in SEQUENCE[1:]:
            endpoints_before = ready_endpoints(cluster, SERVICE)
            was = serving_deployment(cluster)
            uids = {n: d["metadata"]["uid"] for n, d in service_deployments(cluster).items()}
            after = staging_step(cluster, release)
            moved = apply_like_the_engine(cluster, current, after)
            assert wait_until(lambda: not_ready(cluster, after.objects), READY_TIMEOUT_SECONDS) == []
            current = after
            now = serving_deployment(cluster)
            endpoints_after = ready_endpoints(cluster, SERVICE)
            live = service_deployments(cluster)
            figures[step] = f"{was}->{now} endpoints {endpoints_before}->{endpoints_after} ready-at-move {moved}"
            # The Deployment that served is still there, the same object (never deleted or recreated).
            assert was in live and live[was]["metadata"]["uid"] == uids[was], f"{step}: {was} was recreated"
            # Whatever the Service selects had at least what served before, Ready, when it moved.
            assert all(ready >= endpoints_before for ready in moved.values()), f"{step}: {moved} < {endpoints_before}"
            assert endpoints_after >= endpoints_before, f"{step}: {endpoints_after} < {endpoints_before} endpoints"
            if step == "switch":
                assert now == f"{SERVICE}-green" and live[SERVICE]["spec"]["replicas"] == 1  # blue idles after
        assert serving_deployment(cluster) == f"{SERVICE}-green"
        assert set(service_deployments(cluster)) == {f"{SERVICE}-green"}
    finally:
        report_figures(request, "live release sequence", "staging", figures)
        left = delete_all(cluster, [*provided, *current.objects])
    assert left == []
