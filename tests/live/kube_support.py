"""What the live-cluster tests check beyond the API server's own admission: readiness,
the references a pod makes, and what selectors select.

Everything reaches the cluster through `stacks.check.Cluster` (KUBECONFIG only),
so the same checks run against the local API server, kind, minikube or a real cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from stacks.check import Cluster, StackObject

Manifest = dict[str, Any]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
POD_TEMPLATE_KINDS = (*WORKLOAD_KINDS, "Job", "CronJob")

# Pods an operator runs for a custom resource of the stack, never from a template the
# stack renders: selectors that target them cannot select anything without the operator.
OPERATOR_POD_LABELS = {
    "cnpg.io/cluster": "CloudNativePG runs the instances of a Cluster",
    "cnpg.io/poolerName": "CloudNativePG runs the PgBouncer pods of a Pooler",
    "gateway.envoyproxy.io/owning-gateway-name": "Envoy Gateway runs the proxies of a Gateway",
    "acme.cert-manager.io/http01-solver": "cert-manager runs the HTTP-01 solver of a Certificate",
}


# ------------------------------------------------------------------ waiting


def wait_until(condition: Callable[[], list[str]], timeout_seconds: float, interval: float = 1.0) -> list[str]:
    """Poll `condition` (what is still wrong) until it is empty or the time is up; the last answer."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        pending = condition()
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(interval)


def not_ready(cluster: Cluster, objects: Iterable[StackObject]) -> list[str]:
    """Every workload not rolled out and Ready, Job not Complete, PVC not Bound (with why)."""
    pending: list[str] = []
    namespaces: set[str] = set()
    for obj in objects:
        if obj.namespace:
            namespaces.add(obj.namespace)
        if obj.kind not in (*WORKLOAD_KINDS, "Job"):
            continue
        live = cluster.get(obj.api_version, obj.kind, obj.name, obj.namespace)
        problem = "not found" if live is None else _readiness_problem(obj.kind, live)
        if problem:
            pending.append(f"{obj.ref}: {problem}")
    for namespace in sorted(namespaces):
        for claim in cluster.list("v1", "PersistentVolumeClaim", namespace):
            phase = claim.get("status", {}).get("phase")
            if phase != "Bound":
                pending.append(f"PersistentVolumeClaim {namespace}/{claim['metadata']['name']}: {phase}")
    return pending


def _readiness_problem(kind: str, live: Manifest) -> str | None:
    spec, status, generation = live.get("spec", {}), live.get("status") or {}, live["metadata"].get("generation")
    if kind != "Job" and status.get("observedGeneration", 0) < (generation or 0):
        return f"generation {generation} not observed yet"
    if kind == "Job":
        complete = any(c["type"] == "Complete" and c["status"] == "True" for c in status.get("conditions") or [])
        return None if complete else f"not Complete ({status.get('succeeded', 0)} succeeded)"
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        ready, updated = status.get("numberReady", 0), status.get("updatedNumberScheduled", 0)
        return None if desired >= 1 and ready == updated == desired else f"{ready}/{desired} ready, {updated} updated"
    wanted = spec.get("replicas", 1)
    ready, updated = status.get("readyReplicas", 0), status.get("updatedReplicas", 0)
    if kind == "StatefulSet" and status.get("currentRevision") != status.get("updateRevision"):
        return f"rolling: revision {status.get('currentRevision')} -> {status.get('updateRevision')}"
    return None if ready == updated == wanted and status.get("replicas", 0) == wanted else (
        f"{ready}/{wanted} ready, {updated} updated, {status.get('replicas', 0)} total")


# ------------------------------------------------------------------ selectors


def selector_string(match_labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def operator_run(selector: Mapping[str, Any]) -> str | None:
    """Why the pods this selector targets are an operator's (None: the stack runs them)."""
    keys = set((selector.get("matchLabels") or {}).keys())
    keys |= {e["key"] for e in selector.get("matchExpressions") or []}
    return next((reason for label, reason in OPERATOR_POD_LABELS.items() if label in keys), None)


def pods_selected(cluster: Cluster, namespace: str, selector: Mapping[str, Any]) -> int:
    expressions = [_expression(e) for e in selector.get("matchExpressions") or []]
    labels = [selector_string(selector.get("matchLabels") or {})] if selector.get("matchLabels") else []
    return len(cluster.list("v1", "Pod", namespace, label_selector=",".join(labels + expressions) or None))


def _expression(e: Mapping[str, Any]) -> str:
    op = e["operator"]
    if op == "Exists":
        return e["key"]
    if op == "DoesNotExist":
        return f"!{e['key']}"
    return f"{e['key']} {'in' if op == 'In' else 'notin'} ({','.join(e.get('values') or [])})"


@dataclass
class SelectionReport:
    problems: list[str]
    operator_run: list[str]  # selectors left unchecked: the pods are an operator's


def selection_problems(cluster: Cluster, objects: Iterable[StackObject]) -> SelectionReport:
    """Services without ready endpoints, PDBs and NetworkPolicies selecting no pod, HPAs without a target."""
    report = SelectionReport([], [])
    created_namespaces = {o.name for o in objects if o.kind == "Namespace"}
    for obj in objects:
        spec = obj.manifest.get("spec") or {}
        if obj.kind == "Service" and spec.get("selector"):
            if (reason := operator_run({"matchLabels": spec["selector"]})) is not None:
                report.operator_run.append(f"{obj.ref}: {reason}")
            elif not _ready_endpoints(cluster, obj):
                report.problems.append(f"{obj.ref}: no ready endpoints")
        elif obj.kind == "PodDisruptionBudget":
            if pods_selected(cluster, obj.namespace, spec["selector"]) < 1:
                report.problems.append(f"{obj.ref}: selects no pod")
        elif obj.kind == "HorizontalPodAutoscaler":
            target = spec["scaleTargetRef"]
            if cluster.get(target["apiVersion"], target["kind"], target["name"], obj.namespace) is None:
                report.problems.append(f"{obj.ref}: target {target['kind']} {target['name']} does not exist")
        elif obj.kind == "NetworkPolicy":
            _check_network_policy(cluster, obj, created_namespaces, report)
    return report


def _ready_endpoints(cluster: Cluster, service: StackObject) -> int:
    slices = cluster.list("discovery.k8s.io/v1", "EndpointSlice", service.namespace,
                          label_selector=f"kubernetes.io/service-name={service.name}")
    return sum(1 for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready"))


def _check_network_policy(cluster: Cluster, policy: StackObject, created_namespaces: set[str],
                          report: SelectionReport) -> None:
    """The policy's own pods, and every peer pod selector inside a namespace this stack creates."""
    spec = policy.manifest["spec"]
    selections = [("podSelector", policy.namespace, spec.get("podSelector") or {})]
    for direction, key in (("ingress", "from"), ("egress", "to")):
        for rule_index, rule in enumerate(spec.get(direction) or []):
            for peer in rule.get(key) or []:
                if "podSelector" not in peer:
                    continue
                namespaces = _peer_namespaces(peer, policy.namespace)
                for namespace in namespaces & created_namespaces:
                    selections.append((f"{direction}[{rule_index}] peer in {namespace}", namespace, peer["podSelector"]))
    for where, namespace, selector in selections:
        if (reason := operator_run(selector)) is not None:
            report.operator_run.append(f"{policy.ref} {where}: {reason}")
        elif pods_selected(cluster, namespace, selector) < 1:
            report.problems.append(f"{policy.ref} {where}: selects no pod ({selector})")


def _peer_namespaces(peer: Manifest, own: str) -> set[str]:
    if "namespaceSelector" not in peer:
        return {own}
    labels = (peer["namespaceSelector"] or {}).get("matchLabels") or {}
    name = labels.get("kubernetes.io/metadata.name")
    return {name} if name else set()


# ------------------------------------------------------------------ references


def pod_templates(obj: StackObject) -> list[Manifest]:
    spec = obj.manifest.get("spec") or {}
    if obj.kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]]
    return [spec["template"]] if obj.kind in POD_TEMPLATE_KINDS else []


def missing_references(objects: Iterable[StackObject]) -> list[str]:
    """Secrets, ConfigMaps, their keys, ServiceAccounts and PriorityClasses that pods name
    but the stack does not create (on a cluster: CreateContainerConfigError, or no pod at all)."""
    objects = list(objects)
    have: dict[tuple[str, str | None, str], Manifest] = {(o.kind, o.namespace, o.name): o.manifest for o in objects}
    missing: list[str] = []

    def need(kind: str, namespace: str | None, name: str, where: str, keys: Iterable[str] = ()) -> None:
        found = have.get((kind, namespace, name))
        if found is None:
            missing.append(f"{where}: {kind} {name} does not exist")
            return
        present = set((found.get("data") or {}) | (found.get("stringData") or {}) | (found.get("binaryData") or {}))
        for key in keys:
            if key not in present:
                missing.append(f"{where}: {kind} {name} has no key {key!r}")

    for obj in objects:
        for template in pod_templates(obj):
            spec, ns = template["spec"], obj.namespace
            if spec.get("serviceAccountName", "default") != "default":  # every namespace has `default`
                need("ServiceAccount", ns, spec["serviceAccountName"], obj.ref)
            if spec.get("priorityClassName"):
                need("PriorityClass", None, spec["priorityClassName"], obj.ref)
            for volume in spec.get("volumes") or []:
                for source in [volume, *[s for s in (volume.get("projected") or {}).get("sources") or []]]:
                    if "secret" in source and not source["secret"].get("optional"):
                        name = source["secret"].get("secretName") or source["secret"].get("name")
                        need("Secret", ns, name, obj.ref, [i["key"] for i in source["secret"].get("items") or []])
                    if "configMap" in source and not source["configMap"].get("optional"):
                        need("ConfigMap", ns, source["configMap"]["name"], obj.ref,
                             [i["key"] for i in source["configMap"].get("items") or []])
            for container in [*spec.get("initContainers") or [], *spec.get("containers") or []]:
                where = f"{obj.ref} container {container['name']}"
                for env in container.get("env") or []:
                    source = env.get("valueFrom") or {}
                    for kind, ref in (("Secret", source.get("secretKeyRef")), ("ConfigMap", source.get("configMapKeyRef"))):
                        if ref and not ref.get("optional"):
                            need(kind, ns, ref["name"], where, [ref["key"]])
                for env_from in container.get("envFrom") or []:
                    for kind, ref in (("Secret", env_from.get("secretRef")), ("ConfigMap", env_from.get("configMapRef"))):
                        if ref and not ref.get("optional"):
                            need(kind, ns, ref["name"], where)
    return missing
