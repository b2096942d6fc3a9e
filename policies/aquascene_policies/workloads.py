"""Workload rules: replicas, disruption budgets, spreading, HPA ownership, StatefulSet services, selectors.

Most are stack rules: they correlate a workload with the HorizontalPodAutoscaler,
PodDisruptionBudget or Service beside it. Stack rules see each resource's
outputs; for a live Kubernetes object (one with `metadata.managedFields`)
"declared by Pulumi" is read from the field manager's entry, because the API
server fills in defaults such as `spec.replicas`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Sequence

from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from . import k8s
from .core import as_list, as_map, dig, fmt_number, is_map, number, safe

REPLICATED_KINDS = ("Deployment", "StatefulSet")
HPA_KINDS = ("HorizontalPodAutoscaler",)


@dataclass
class Workload:
    resource: PolicyResource
    kind: str
    namespace: str
    name: str
    ref: str
    labels: Mapping[str, Any]
    spec: Mapping[str, Any]
    hpa: Optional[PolicyResource] = None

    @property
    def declared_replicas(self) -> Optional[float]:
        if not declared_by_pulumi(self.resource.props, "spec", "replicas"):
            return None
        return number(self.spec.get("replicas"))

    @property
    def min_replicas(self) -> float:
        """The fewest pods it may run: the HPA's minReplicas, else spec.replicas (default 1)."""
        if self.hpa is not None:
            value = number(dig(self.hpa.props, "spec", "minReplicas"))
            return value if value is not None else 1.0
        value = number(self.spec.get("replicas"))
        return value if value is not None else 1.0

    @property
    def replica_source(self) -> str:
        if self.hpa is not None:
            return f"HorizontalPodAutoscaler {k8s.name_of(self.hpa.props, self.hpa.name)} minReplicas"
        return "replicas"


def workloads(resources: Sequence[PolicyResource], kinds: Sequence[str] | None = None) -> list[Workload]:
    """Every workload in the stack (of `kinds`), each with the HPA that scales it."""
    found: list[Workload] = []
    for r in resources:
        t = k8s.kube_type(r.resource_type)
        if t is None or not k8s.is_workload(r.resource_type) or (kinds and t.kind not in kinds):
            continue
        props = r.props
        found.append(
            Workload(
                resource=r,
                kind=t.kind,
                namespace=k8s.effective_namespace(props),
                name=k8s.name_of(props, r.name),
                ref=k8s.ref(r.resource_type, props, r.name),
                labels=k8s.pod_labels(r.resource_type, props),
                spec=as_map(props.get("spec")),
            )
        )
    for hpa in objects(resources, *HPA_KINDS):
        target = as_map(dig(hpa.props, "spec", "scaleTargetRef"))
        namespace = k8s.effective_namespace(hpa.props)
        for w in found:
            if w.namespace == namespace and w.kind == target.get("kind") and w.name == target.get("name"):
                w.hpa = hpa
    return found


def objects(resources: Sequence[PolicyResource], *kinds: str) -> Iterator[PolicyResource]:
    for r in resources:
        if k8s.is_kind(r.resource_type, *kinds):
            yield r


def declared_by_pulumi(props: Mapping[str, Any], *path: str) -> bool:
    """Whether the program set the field at `path`.

    Declared objects (inputs, or outputs of a preview) carry only what was set.
    A live object (with managedFields) carries server defaults too, so ask the
    field manager Pulumi applied with.
    """
    managed = safe(lambda: dig(props, "metadata", "managedFields"))
    if not as_list(managed):
        return safe(lambda: dig(props, *path)) is not None
    for entry in as_list(managed):
        entry = as_map(entry)
        manager = str(entry.get("manager", ""))
        if not manager.startswith("pulumi"):
            continue
        fields = entry.get("fieldsV1")
        for step in path:
            fields = as_map(fields).get(f"f:{step}")
            if fields is None:
                break
        else:
            return True
    return False


def _pdbs_selecting(resources: Sequence[PolicyResource], w: Workload) -> list[PolicyResource]:
    return [
        pdb
        for pdb in objects(resources, "PodDisruptionBudget")
        if k8s.effective_namespace(pdb.props) == w.namespace
        and k8s.selector_matches(dig(pdb.props, "spec", "selector"), w.labels)
    ]


# --------------------------------------------------------------------- rules


def min_replicas(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    minimum = float(config["minReplicas"])
    for w in workloads(args.resources, REPLICATED_KINDS):
        if w.min_replicas < minimum:
            yield w.resource.urn, (
                f"{w.ref}: {w.replica_source} is {fmt_number(w.min_replicas)}, "
                f"fewer than the required {fmt_number(minimum)}"
            )


def pdb_for_replicated(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for w in workloads(args.resources, REPLICATED_KINDS):
        if w.min_replicas >= 2 and not _pdbs_selecting(args.resources, w):
            yield w.resource.urn, (
                f"{w.ref}: runs {fmt_number(w.min_replicas)} replicas but no PodDisruptionBudget selects its pods"
            )


def pdb_allows_disruption(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    all_workloads = workloads(args.resources, REPLICATED_KINDS)
    for pdb in objects(args.resources, "PodDisruptionBudget"):
        spec = as_map(pdb.props.get("spec"))
        pdb_ref = k8s.ref(pdb.resource_type, pdb.props, pdb.name)
        max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
        if max_unavailable is not None and str(_plain_number(max_unavailable)) in ("0", "0%"):
            yield pdb.urn, f"{pdb_ref}: maxUnavailable {_plain_number(max_unavailable)} allows no voluntary disruption"
            continue
        if min_available is None:
            continue
        if str(min_available) == "100%":
            yield pdb.urn, f"{pdb_ref}: minAvailable 100% allows no voluntary disruption"
            continue
        wanted = number(min_available)
        if wanted is None:
            continue
        namespace = k8s.effective_namespace(pdb.props)
        for w in all_workloads:
            if w.namespace == namespace and k8s.selector_matches(spec.get("selector"), w.labels):
                if wanted >= w.min_replicas:
                    yield pdb.urn, (
                        f"{pdb_ref}: minAvailable {fmt_number(wanted)} leaves no disruption to "
                        f"{w.ref} ({w.replica_source} {fmt_number(w.min_replicas)})"
                    )
                    break


def _plain_number(value: Any) -> Any:
    n = number(value)
    return fmt_number(n) if n is not None else value


def spread(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for w in workloads(args.resources, REPLICATED_KINDS):
        if w.min_replicas < 2:
            continue
        pod = as_map(dig(w.spec, "template", "spec"))
        anti = dig(pod, "affinity", "podAntiAffinity")
        has_anti = is_map(anti) and any(
            as_list(anti.get(k))
            for k in ("requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution")
        )
        if not has_anti and not as_list(pod.get("topologySpreadConstraints")):
            yield w.resource.urn, (
                f"{w.ref}: {fmt_number(w.min_replicas)} replicas without podAntiAffinity or topologySpreadConstraints"
            )


def hpa_owns_replicas(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for w in workloads(args.resources, REPLICATED_KINDS):
        if w.hpa is not None and w.declared_replicas is not None:
            yield w.resource.urn, (
                f"{w.ref}: sets spec.replicas although HorizontalPodAutoscaler "
                f"{k8s.name_of(w.hpa.props, w.hpa.name)} manages its scale"
            )


def statefulset_headless_service(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    services = {
        (k8s.effective_namespace(s.props), k8s.name_of(s.props, s.name)): s
        for s in objects(args.resources, "Service")
    }
    for w in workloads(args.resources, ("StatefulSet",)):
        service_name = w.spec.get("serviceName")
        if not service_name:
            yield w.resource.urn, f"{w.ref}: spec.serviceName is not set"
            continue
        service = services.get((w.namespace, service_name))
        if service is None:
            yield w.resource.urn, f'{w.ref}: its service "{service_name}" is not declared in this stack'
        elif dig(service.props, "spec", "clusterIP") != "None":
            yield w.resource.urn, f'{w.ref}: its service "{service_name}" is not headless (spec.clusterIP: None)'


def selector_matches_template(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    t = k8s.kube_type(args.resource_type)
    if t is None or t.kind not in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return
    ref = k8s.ref(args.resource_type, args.props, args.name)
    selector = dig(args.props, "spec", "selector")
    labels = k8s.pod_labels(args.resource_type, args.props)
    if not is_map(selector) or k8s.selector_is_empty(selector):
        yield f"{ref}: spec.selector is missing or empty"
    elif not k8s.selector_matches(selector, labels):
        yield f"{ref}: spec.selector does not match the pod template labels"


def no_bare_pods(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if k8s.is_kind(args.resource_type, "Pod"):
        yield f"{k8s.ref(args.resource_type, args.props, args.name)}: is a bare Pod, not managed by a controller"
