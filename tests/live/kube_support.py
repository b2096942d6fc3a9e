"""What the live-cluster tests check beyond the API server's own admission: readiness,
the references a pod makes, and what selectors select.

Everything reaches the cluster through `tooling.check.Cluster` (KUBECONFIG only),
so the same checks run against the local API server, kind, minikube or a real cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from tooling.check import Cluster, StackObject

Manifest = dict[str, Any]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
POD_TEMPLATE_KINDS = (*WORKLOAD_KINDS, "Job", "CronJob")

# Labels of pods an operator runs for a custom resource of the stack, never from a template
# the stack renders: selectors that use them cannot select anything without the operator.
OPERATOR_POD_LABELS = {
    "cnpg.io/poolerName": "CloudNativePG runs the PgBouncer pods of a Pooler",
    "gateway.envoyproxy.io/owning-gateway-name": "Envoy Gateway runs the proxies of a Gateway",
    "acme.cert-manager.io/http01-solver": "cert-manager runs the HTTP-01 solver of a Certificate",
}


# What Kubernetes itself puts in every namespace: pods may reference it without the stack creating it.
CLUSTER_PROVIDED = {
    ("ServiceAccount", "default"),
    ("ConfigMap", "kube-root-ca.crt"),  # the API server's CA, published by the controller manager
}


# ------------------------------------------------------------------ namespaces


def namespaces_provided_elsewhere(objects: Iterable[StackObject]) -> list[str]:
    """Namespaces the stack's objects live in but it does not create as Namespace objects:
    a Helm release's (not applied here) or a platform team's (cert-manager installed for it)."""
    objects = list(objects)
    created = {o.name for o in objects if o.kind == "Namespace"}
    return sorted({o.namespace for o in objects if o.namespace} - created)


def provide_namespaces(cluster: Cluster, names: Iterable[str]) -> list[StackObject]:
    """Stand in for whoever provides these namespaces: create those missing; what was created."""
    created = []
    for name in names:
        if not cluster.namespace_exists(name):
            namespace = StackObject.bare_namespace(name)
            assert cluster.apply(namespace) is None
            created.append(namespace)
    return created


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


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        present, value = e["key"] in labels, labels.get(e["key"])
        if not {"Exists": present, "DoesNotExist": not present, "In": value in (e.get("values") or []),
                "NotIn": value not in (e.get("values") or [])}[e["operator"]]:
            return False
    return True


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


def pods_not_running_now(objects: Iterable[StackObject]) -> list[tuple[str | None, dict[str, str], str]]:
    """(namespace, labels, why) of pods the stack causes that cannot be running during a test:
    a CronJob's between runs, an operator's for a custom resource of the stack."""
    found: list[tuple[str | None, dict[str, str], str]] = []
    for obj in objects:
        if obj.kind == "CronJob":
            labels = obj.manifest["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels") or {}
            found.append((obj.namespace, labels, "a CronJob's pods run only on its schedule"))
        elif obj.kind == "Cluster" and obj.api_version.startswith("postgresql.cnpg.io/"):
            labels = {**((obj.manifest["spec"].get("inheritedMetadata") or {}).get("labels") or {}),
                      "cnpg.io/cluster": obj.name}
            found.append((obj.namespace, labels, "CloudNativePG runs the instances of a Cluster"))
        elif obj.kind == "Pooler" and obj.api_version.startswith("postgresql.cnpg.io/"):
            labels = {**(((obj.manifest["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}),
                      "cnpg.io/poolerName": obj.name}
            found.append((obj.namespace, labels, "CloudNativePG runs the PgBouncer pods of a Pooler"))
    return found


@dataclass
class SelectionReport:
    problems: list[str]
    not_checkable: list[str]  # selectors of pods that cannot run here (a CronJob's, an operator's)


class Selections:
    """Whether a selector selects a pod now, or pods that cannot be running during a test."""

    def __init__(self, cluster: Cluster | None, objects: list[StackObject], report: SelectionReport):
        """Without a cluster (offline), the pods are those of the rendered templates."""
        self.cluster, self.report = cluster, report
        self.deferred = pods_not_running_now(objects)
        if cluster is None:
            self.deferred = [(o.namespace, t["metadata"].get("labels") or {}, "rendered")
                             for o in objects for t in pod_templates(o)] + self.deferred

    def not_running_here(self, namespace: str, selector: Mapping[str, Any]) -> str | None:
        """Why the pods this selector targets are not running during a test (None: they should be)."""
        reason = next((why for ns, labels, why in self.deferred
                       if ns == namespace and selector_matches(selector, labels)), None)
        keys = set((selector.get("matchLabels") or {}).keys()) | {e["key"] for e in selector.get("matchExpressions") or []}
        return reason or next((why for label, why in OPERATOR_POD_LABELS.items() if label in keys), None)

    def check(self, where: str, namespace: str, selector: Mapping[str, Any],
              problem: str | None = None) -> None:
        """`where` selects a pod now, or pods that cannot run here (listed); else `problem`."""
        if self.cluster is not None and problem is None and pods_selected(self.cluster, namespace, selector) >= 1:
            return
        reason = self.not_running_here(namespace, selector)
        if reason == "rendered":
            return
        if reason is not None:
            self.report.not_checkable.append(f"{where}: {reason}")
        else:
            self.report.problems.append(f"{where}: {problem or f'selects no pod ({dict(selector)})'}")


def selection_problems(cluster: Cluster | None, objects: Iterable[StackObject]) -> SelectionReport:
    """Services without ready endpoints, PDBs and NetworkPolicies selecting no pod, HPAs without a target.
    Offline (cluster None): selectors that match no rendered pod template, targets not rendered."""
    report = SelectionReport([], [])
    objects = list(objects)
    selections = Selections(cluster, objects, report)
    created_namespaces = {o.name for o in objects if o.kind == "Namespace"}
    rendered = {(o.kind, o.namespace, o.name) for o in objects}
    for obj in objects:
        spec = obj.manifest.get("spec") or {}
        if obj.kind == "Service" and spec.get("selector"):
            if cluster is None:
                selections.check(obj.ref, obj.namespace, {"matchLabels": spec["selector"]})
            elif not _ready_endpoints(cluster, obj):
                selections.check(obj.ref, obj.namespace, {"matchLabels": spec["selector"]}, "no ready endpoints")
        elif obj.kind == "PodDisruptionBudget":
            selections.check(obj.ref, obj.namespace, spec["selector"])
        elif obj.kind == "HorizontalPodAutoscaler":
            target = spec["scaleTargetRef"]
            if (cluster is None and (target["kind"], obj.namespace, target["name"]) not in rendered) or (
                    cluster is not None
                    and cluster.get(target["apiVersion"], target["kind"], target["name"], obj.namespace) is None):
                report.problems.append(f"{obj.ref}: target {target['kind']} {target['name']} does not exist")
        elif obj.kind == "NetworkPolicy":
            _check_network_policy(selections, obj, objects, created_namespaces)
    return report


def _ready_endpoints(cluster: Cluster, service: StackObject) -> int:
    slices = cluster.list("discovery.k8s.io/v1", "EndpointSlice", service.namespace,
                          label_selector=f"kubernetes.io/service-name={service.name}")
    return sum(1 for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready"))


def _check_network_policy(selections: Selections, policy: StackObject, objects: list[StackObject],
                          created_namespaces: set[str]) -> None:
    """The policy's own pods, and every peer pod selector inside a namespace this stack creates."""
    spec = policy.manifest["spec"]
    if spec.get("podSelector") or any(o.namespace == policy.namespace and pod_templates(o) for o in objects):
        selections.check(f"{policy.ref} podSelector", policy.namespace, spec.get("podSelector") or {})
    else:  # namespace-wide, where only an operator runs pods (the gateway's proxies)
        selections.report.not_checkable.append(f"{policy.ref} podSelector: a namespace the stack runs no pod in")
    for direction, key in (("ingress", "from"), ("egress", "to")):
        for index, rule in enumerate(spec.get(direction) or []):
            for peer in rule.get(key) or []:
                if "podSelector" in peer:
                    for namespace in _peer_namespaces(peer, policy.namespace) & created_namespaces:
                        selections.check(f"{policy.ref} {direction}[{index}] peer in {namespace}", namespace,
                                         peer["podSelector"])


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
        if (kind, name) in CLUSTER_PROVIDED:
            return
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
            need("ServiceAccount", ns, spec.get("serviceAccountName", "default"), obj.ref)
            if spec.get("priorityClassName"):
                need("PriorityClass", None, spec["priorityClassName"], obj.ref)
            for volume in spec.get("volumes") or []:
                for source in [volume, *((volume.get("projected") or {}).get("sources") or [])]:
                    if "secret" in source and not source["secret"].get("optional"):
                        name = source["secret"].get("secretName") or source["secret"].get("name")
                        need("Secret", ns, name, obj.ref, [i["key"] for i in source["secret"].get("items") or []])
                    if "configMap" in source and not source["configMap"].get("optional"):
                        need("ConfigMap", ns, source["configMap"]["name"], obj.ref,
                             [i["key"] for i in source["configMap"].get("items") or []])
            for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
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
