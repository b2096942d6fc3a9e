"""Ephemeral storage over every rendered stack: each container requests and limits it, each
emptyDir is capped, and a container's limit holds what it may write (logs plus the emptyDirs it
mounts), so the kubelet neither evicts it first under disk pressure nor lets it fill the node.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from kubernetes.utils import parse_quantity

from components import kube
from tests.unit.test_ordering import STACKS
from tooling.recording import Recording

STORAGE = "ephemeral-storage"


def pod_specs(value: Any) -> Iterator[dict[str, Any]]:
    """Every mapping with a `containers` list, wherever it sits (workloads, CNPG's Pooler template)."""
    if isinstance(value, dict):
        if isinstance(value.get("containers"), list):
            yield value
        for child in value.values():
            yield from pod_specs(child)
    elif isinstance(value, list):
        for child in value:
            yield from pod_specs(child)


def storage_findings(rec: Recording) -> tuple[int, list[str]]:
    """(containers checked, what is wrong with them)."""
    checked, findings = 0, []
    for obj in rec.kubernetes():
        manifest = obj.plain_inputs
        where = f"{obj.kind} {rec.namespace_of(obj)}/{obj.name}"
        if obj.kind == "Cluster" and "postgresql.cnpg.io" in obj.type:  # CNPG: the postgres containers' resources
            resources = manifest["spec"].get("resources", {})
            checked += 1
            if STORAGE not in resources.get("requests", {}) or STORAGE not in resources.get("limits", {}):
                findings.append(f"{where}: spec.resources without {STORAGE} request and limit")
        for spec in pod_specs(manifest):
            empty_dirs = {v["name"]: v["emptyDir"] for v in spec.get("volumes", []) if "emptyDir" in v}
            for name, empty_dir in empty_dirs.items():
                if empty_dir.get("medium") != "Memory" and "sizeLimit" not in empty_dir:
                    findings.append(f"{where}: emptyDir {name} has no sizeLimit")
            for container in spec.get("initContainers", []) + spec["containers"]:
                checked += 1
                resources = container.get("resources", {})
                request = resources.get("requests", {}).get(STORAGE)
                limit = resources.get("limits", {}).get(STORAGE)
                if request is None or limit is None:
                    findings.append(f"{where}: container {container['name']} has no {STORAGE} request and limit")
                    continue
                writes = parse_quantity(kube.LOG_ALLOWANCE) + sum(
                    parse_quantity(empty_dirs[m["name"]].get("sizeLimit", "0"))
                    for m in container.get("volumeMounts", []) if m["name"] in empty_dirs)
                if parse_quantity(request) > parse_quantity(limit) or writes > parse_quantity(limit):
                    findings.append(f"{where}: container {container['name']} limits {STORAGE} to {limit} "
                                    f"(request {request}) but may write {writes} bytes (logs + emptyDirs)")
    return checked, findings


@pytest.mark.parametrize("mix", list(STACKS))
def test_every_container_requests_and_limits_the_ephemeral_storage_it_writes(run_stack, mix):
    env, overrides = STACKS[mix]
    checked, findings = storage_findings(run_stack(env, overrides))
    assert checked >= 10
    assert findings == []


def test_the_presets_carry_ephemeral_storage_within_their_limits():
    for name, preset in kube.RESOURCE_PRESETS.items():
        rendered = preset.render()
        request, limit = rendered["requests"][STORAGE], rendered["limits"][STORAGE]
        assert parse_quantity(request) <= parse_quantity(limit), name
        # Room for the logs, a /tmp and a scratch emptyDir: any container may mount both.
        room = sum(parse_quantity(q) for q in (kube.LOG_ALLOWANCE, kube.TMP_SIZE_LIMIT, kube.SCRATCH_SIZE_LIMIT))
        assert parse_quantity(limit) >= room, name


def test_the_check_sees_a_container_without_ephemeral_storage(run_program):
    import pulumi_kubernetes as k8s

    def program() -> None:
        volume, mount = kube.tmp_volume()
        k8s.apps.v1.Deployment("d", metadata={"name": "d", "namespace": "ns"}, spec={
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                "volumes": [volume, {"name": "cache", "emptyDir": {}}],
                "containers": [
                    {"name": "bare", "image": "x:1", "resources": {"requests": {"cpu": "1"}}},
                    {"name": "small", "image": "x:1", "volumeMounts": [mount], "resources": {
                        "requests": {STORAGE: "64Mi"}, "limits": {STORAGE: "128Mi"}}},
                ]}},
        })

    checked, findings = storage_findings(run_program(program))
    assert checked == 2
    assert findings == [
        "Deployment ns/d: emptyDir cache has no sizeLimit",
        f"Deployment ns/d: container bare has no {STORAGE} request and limit",
        f"Deployment ns/d: container small limits {STORAGE} to 128Mi (request 64Mi) but may write "
        f"{parse_quantity(kube.LOG_ALLOWANCE) + parse_quantity(kube.TMP_SIZE_LIMIT)} bytes (logs + emptyDirs)",
    ]
