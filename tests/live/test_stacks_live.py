"""Each stack against a live API server: apply, Ready, update in place, delete.

The objects are the stack's render (prod's Kubernetes objects; its AWS
resources stay on the mocks), applied with server-side apply (field manager
`aquascene`) in dependency order, as `pulumi up` would send them.
"""

from __future__ import annotations

import json
import time

import pytest

from stacks.catalog import SERVICE_NAMES
from tooling.check import Cluster, StackObject, StackObjects, stack_objects
from stacks.program import program
from tooling.recording import record
from tests.conftest import recorded_stack, report_figures, stack_config
from tests.live.kube_support import (missing_references, namespaces_provided_elsewhere, not_ready,
                                     provide_namespaces, selection_problems, wait_until)

READY_TIMEOUT_SECONDS = 240
DELETE_TIMEOUT_SECONDS = 240
PRESETS = ("nano", "micro", "small", "medium", "large", "xlarge")


def apply_all(cluster: Cluster, objects: list[StackObject]) -> list[str]:
    return [f"{obj.ref}: {error}" for obj in objects if (error := cluster.apply(obj)) is not None]


def update_all(cluster: Cluster, before: StackObjects, after: StackObjects) -> list[str]:
    """Apply the new render over the old, the way the engine would: in place, except Jobs
    (immutable templates: deleted and created again). Objects the new render lacks are deleted."""
    errors = []
    for obj in after.objects:
        error = cluster.apply(obj)
        if error is not None and obj.kind == "Job":
            cluster.delete(obj)
            cluster.wait_gone([obj], timeout_seconds=60)
            error = cluster.apply(obj)
        if error is not None:
            errors.append(f"{obj.ref} cannot be updated in place (the engine would replace it): {error}")
    return errors + delete_dropped(cluster, before, after)


def delete_dropped(cluster: Cluster, before: StackObjects, after: StackObjects) -> list[str]:
    """Delete what the new render no longer declares and await it, as the engine does: a
    foreground delete stays listed until what it owns is gone. What is still there at the deadline."""
    kept = {o.ref for o in after.objects}
    return delete_all(cluster, [o for o in before.objects if o.ref not in kept])


def delete_all(cluster: Cluster, objects: list[StackObject]) -> list[str]:
    """Delete in reverse dependency order; what is still there at the deadline."""
    for obj in reversed(objects):
        cluster.delete(obj)
    return [o.ref for o in cluster.wait_gone(objects, timeout_seconds=DELETE_TIMEOUT_SECONDS)]


def ready_app_services(cluster: Cluster, objects: list[StackObject]) -> list[str]:
    """The app services whose Deployment the API server reports with every replica Ready."""
    ready = []
    for obj in objects:
        if obj.kind == "Deployment" and obj.manifest["metadata"]["labels"].get("app.kubernetes.io/component") == "api":
            status = (cluster.get(obj.api_version, obj.kind, obj.name, obj.namespace) or {}).get("status") or {}
            if status.get("readyReplicas", 0) >= max(1, obj.manifest["spec"].get("replicas", 1)):
                ready.append(obj.name)
    return sorted(ready)


def updated_config(env: str) -> dict[str, str]:
    """The stack with a new image tag, other replica counts and every resource preset one size up."""
    config = stack_config(env)

    def bump(preset: str) -> str:
        return PRESETS[min(PRESETS.index(preset) + 1, len(PRESETS) - 1)]

    services = json.loads(config["aquascene:services"])
    for settings in services.values():
        settings["resources"] = bump(settings["resources"])
        if settings.get("autoscaling"):
            settings["autoscaling"]["min_replicas"] += 1
            settings["autoscaling"]["max_replicas"] += 1
        else:
            settings["replicas"] += 1
    overrides = {"services": services, "image": {**json.loads(config["aquascene:image"]), "tag": "1.0.1"}}
    for store in ("postgres", "redis", "object_store"):
        settings = json.loads(config[f"aquascene:{store}"])
        overrides[store] = {**settings, "resources": bump(settings["resources"])}
    return stack_config(env, overrides)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_stack_applies_becomes_ready_updates_in_place_and_deletes(cluster: Cluster, env: str, request) -> None:
    figures: dict[str, float | int] = {}
    first = stack_objects(recorded_stack(env))
    second = stack_objects(record(program, stack=env, config=updated_config(env)))
    namespaces = [o for o in first.objects if o.kind == "Namespace"]
    assert namespaces, "every stack creates its namespaces"
    # A previous run's namespaces may still be terminating; they refuse new content.
    assert cluster.wait_gone(namespaces, timeout_seconds=DELETE_TIMEOUT_SECONDS) == []

    # What the API server cannot see: a pod naming a Secret, ConfigMap, key, ServiceAccount or
    # PriorityClass that nothing creates would sit in CreateContainerConfigError on a real cluster.
    assert missing_references(first.objects) == []
    assert missing_references(second.objects) == []
    before = {o.ref: o.manifest for o in first.objects}
    changed = [o.ref for o in second.objects if before.get(o.ref) not in (None, o.manifest)]
    assert len(changed) >= 10, "the update must change images, replicas and resources"

    provided = provide_namespaces(cluster, namespaces_provided_elsewhere(second.objects))
    # The platform namespaces the stack asserts at preview (Namespace.get) are there now: the
    # lookups a `pulumi preview` makes would pass against this cluster.
    asserted = [name for kind, name in recorded_stack(env).reads if kind == "kubernetes:core/v1:Namespace"]
    assert [name for name in asserted if not cluster.namespace_exists(name)] == []
    started = time.monotonic()
    try:
        assert apply_all(cluster, first.objects) == []
        figures["objects"] = len(first.objects)
        figures["apply_s"] = round(time.monotonic() - started, 1)
        assert wait_until(lambda: not_ready(cluster, first.objects), READY_TIMEOUT_SECONDS) == []
        figures["all_ready_s"] = round(time.monotonic() - started, 1)
        # Every app role is there and Ready, the admin dashboard (the sixth) included.
        assert ready_app_services(cluster, first.objects) == sorted(SERVICE_NAMES)
        selection = selection_problems(cluster, first.objects)
        assert wait_until(lambda: selection_problems(cluster, first.objects).problems, 60) == []
        figures["selectors_not_checkable"] = len(selection.not_checkable)

        updating = time.monotonic()
        assert update_all(cluster, first, second) == []
        assert wait_until(lambda: not_ready(cluster, second.objects), READY_TIMEOUT_SECONDS) == []
        assert wait_until(lambda: selection_problems(cluster, second.objects).problems, 60) == []
        figures["objects_changed"] = len(changed)
        figures["update_rolled_out_s"] = round(time.monotonic() - updating, 1)
        for obj in second.objects:  # the update really reached the cluster
            if obj.kind == "Deployment":
                live = cluster.get(obj.api_version, obj.kind, obj.name, obj.namespace)
                assert live["spec"]["template"]["spec"]["containers"][0]["image"] == \
                    obj.manifest["spec"]["template"]["spec"]["containers"][0]["image"]
    finally:
        deleting = time.monotonic()
        left = delete_all(cluster, [*provided, *second.objects])
        figures["delete_s"] = round(time.monotonic() - deleting, 1)
        report_figures(request, "live cluster figures", env, figures)
    assert left == [], f"still present {DELETE_TIMEOUT_SECONDS}s after deletion: {left}"
