"""Release steps against a live API server: a canary's weight moves and a blue-green switch
happens as updates in place, with the same pods serving (no restart)."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.program import program
from tests.conftest import stack_config
from tests.live.kube_support import (namespaces_provided_elsewhere, not_ready, provide_namespaces,
                                     selection_problems, wait_until)
from tests.live.test_stacks_live import READY_TIMEOUT_SECONDS, apply_all, delete_all, update_all
from tooling.check import Cluster, StackObjects, stack_objects
from tooling.recording import record

SERVICE = "content-manager"


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
        green_selector = {**service.manifest["spec"]["selector"], "aquascene.io/track": "green"}
        green_before = pod_uids(cluster, service.namespace, green_selector)

        assert update_all(cluster, before, after) == []
        assert wait_until(lambda: not_ready(cluster, after.objects), READY_TIMEOUT_SECONDS) == []
        assert wait_until(lambda: selection_problems(cluster, after.objects).problems, 60) == []
        live = cluster.get("v1", "Service", SERVICE, service.namespace)
        wanted = next(o for o in after.objects if o.kind == "Service" and o.name == SERVICE)
        assert live["spec"]["selector"] == wanted.manifest["spec"]["selector"]
        if second["strategy"] == "blue-green":
            assert live["spec"]["selector"]["aquascene.io/track"] == "green"
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
