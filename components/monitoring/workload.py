"""The one shape every monitoring part shares: ServiceAccount, workload
(StatefulSet with a PVC, Deployment or DaemonSet), Service (plus a headless one
for a StatefulSet), NetworkPolicy and, when replicated, a PodDisruptionBudget.

The parts (prometheus.py, alertmanager.py, ...) describe themselves as a
`Workload`; `deploy` turns that into objects built from components.kube.

Policy exemptions are data, never hand-written annotations: a node agent's
follow from what its `NodeAgent` asks for (each with the agent's reason), and a
true singleton's `workload-min-replicas` from `Workload.singleton`. Nothing
else is exempt from anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import kube
from components.monitoring.args import Storage

Manifest = dict[str, Any]
Kind = Literal["StatefulSet", "Deployment", "DaemonSet"]


@dataclass(frozen=True)
class NodeAgent:
    """What a node-level agent needs beyond the restricted profile, and why.

    Only the node agents get one; it is the list the policy pack names as
    its reasoned exceptions (see NODE_AGENT_EXCEPTIONS). `needs()` says which
    rules that is, so the exemption annotations follow from these fields.
    """

    reason: str
    uid: int
    host_network: bool = False
    host_pid: bool = False
    host_paths: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # volume -> (host path, mount path), read-only

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("NodeAgent.reason must say why the agent needs more than the restricted profile")

    def needs(self) -> dict[str, str]:
        """Policy rule -> what this agent does that the rule forbids (only what the fields ask for)."""
        needs: dict[str, str] = {}
        if self.host_network:
            needs["pod-no-host-network"] = "the host network namespace"
        if self.host_pid:
            needs["pod-no-host-pid"] = "the host PID namespace"
        if self.host_paths:
            needs["pod-no-host-path"] = "read-only host path volumes"
        if self.uid == 0:
            needs["pod-run-as-non-root"] = "UID 0"
        return needs

    def exemptions(self) -> dict[str, str]:
        """Policy rule -> reason: this agent's exemptions, each with the agent's reason."""
        return {rule: self.reason for rule in self.needs()}


def node_agents_namespace_exemptions(agents: Mapping[str, NodeAgent]) -> dict[str, str]:
    """The node-agent namespace's exemption from the restricted Pod Security level,
    its reason built from what the agents deployed there need."""
    if not agents:
        return {}
    needs = list(dict.fromkeys(what for agent in agents.values() for what in agent.needs().values()))
    needed = " and ".join([", ".join(needs[:-1]), needs[-1]] if len(needs) > 1 else needs)
    return {"namespace-pod-security-restricted": (
        f"holds only the node agents ({', '.join(agents)}), which need {needed}; "
        "host namespaces and host path volumes are outside `baseline` too, so it enforces `privileged`"
    )}


@dataclass(frozen=True)
class Workload:
    identity: kube.Identity
    namespace: str
    image: str
    ports: Mapping[str, int]  # container port name -> number; all are served
    probes: Manifest
    resources: kube.Resources
    args: Sequence[str] = ()
    env: Sequence[Manifest] = ()
    files: Sequence[tuple[Manifest, Manifest]] = ()  # (volume, mount): config, dashboards, secrets
    data: Storage | None = None  # StatefulSet PVC named "data"
    data_path: str = "/data"
    scratch: Mapping[str, str] = field(default_factory=dict)  # emptyDir name -> mount path, besides /tmp
    ingress_from: Sequence[kube.NetworkPeer] = ()
    egress_to: Sequence[kube.NetworkPeer] = ()
    replicas: int = 1
    # Mounts short-lived API credentials (kube.api_token_volume) for discovery or state metrics;
    # the ServiceAccount token itself is never automounted.
    kubernetes_api: bool = False
    service_account_annotations: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    node_agent: NodeAgent | None = None
    # Why this part must run exactly one pod (its exemption from workload-min-replicas); None: it may scale.
    singleton: str | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"Workload {self.name}: replicas must be >= 1, got {self.replicas}")
        if self.singleton is not None and (self.replicas != 1 or not self.singleton.strip()):
            raise ValueError(f"Workload {self.name}: a singleton runs exactly one replica and says why")

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def headless_name(self) -> str:
        return headless_service_name(self.name)

    def exemptions(self) -> dict[str, str]:
        """Policy rule -> reason, for the workload object's annotations."""
        exemptions = self.node_agent.exemptions() if self.node_agent is not None else {}
        if self.singleton is not None:
            exemptions["workload-min-replicas"] = self.singleton
        return exemptions


def headless_service_name(name: str) -> str:
    """The headless Service a StatefulSet names: stable per-pod DNS (<name>-<i>.<name>-headless)."""
    return f"{name}-headless"


@dataclass
class Deployed:
    service_account: k8s.core.v1.ServiceAccount
    workload: pulumi.CustomResource
    service: k8s.core.v1.Service | None
    network_policy: k8s.networking.v1.NetworkPolicy
    headless_service: k8s.core.v1.Service | None = None  # StatefulSets only


def deploy(parent: pulumi.Resource, kind: Kind, w: Workload, depends_on: Sequence[pulumi.Resource] = ()) -> Deployed:
    child = pulumi.ResourceOptions(parent=parent)
    labels, selector = w.identity.labels(), w.identity.selector()

    def meta(name: str = w.name, annotations: Mapping[str, str] | None = None) -> Manifest:
        return kube.metadata(name, w.namespace, labels, annotations)

    account = k8s.core.v1.ServiceAccount(
        f"{w.name}-sa",
        metadata=meta(annotations=w.service_account_annotations or None),
        automount_service_account_token=False,  # API users mount kube.api_token_volume() explicitly
        opts=child,
    )

    template = {"metadata": {"labels": labels, "annotations": dict(w.pod_annotations)}, "spec": pod_spec(w)}
    spec: Manifest = {"selector": {"matchLabels": selector}, "template": template}
    resource_type: type[pulumi.CustomResource]
    if kind == "StatefulSet":
        resource_type = k8s.apps.v1.StatefulSet
        spec.update(
            serviceName=w.headless_name,
            replicas=w.replicas,
            podManagementPolicy="Parallel",
            updateStrategy={"type": "RollingUpdate"},
        )
        if w.data is not None:
            spec["volumeClaimTemplates"] = [kube.volume_claim_template("data", w.data.size, w.data.storage_class, selector)]
            spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain", "whenScaled": "Retain"}
    elif kind == "Deployment":
        resource_type = k8s.apps.v1.Deployment
        spec.update(replicas=w.replicas, revisionHistoryLimit=5,
                    strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    else:
        resource_type = k8s.apps.v1.DaemonSet
        spec["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    workload = resource_type(
        f"{w.name}-{kind.lower()}",
        metadata=meta(annotations=kube.policy_exemptions(w.exemptions()) or None),
        spec=spec,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[account, *depends_on]),
    )

    service = None
    if w.node_agent is None or not w.node_agent.host_network:
        service = k8s.core.v1.Service(f"{w.name}-service", metadata=meta(), spec=kube.service_spec(selector, w.ports),
                                      opts=child)
    headless = None
    if kind == "StatefulSet":
        # The StatefulSet's own: per-pod DNS (Alertmanager gossip, replicas by name); clients use the Service.
        headless = k8s.core.v1.Service(f"{w.name}-headless-service", metadata=meta(w.headless_name),
                                       spec=kube.service_spec(selector, w.ports, headless=True), opts=child)
    if w.replicas > 1 and kind != "DaemonSet":
        k8s.policy.v1.PodDisruptionBudget(
            f"{w.name}-pdb", metadata=meta(), spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}},
            opts=child,
        )
    policy = k8s.networking.v1.NetworkPolicy(
        f"{w.name}-netpol",
        metadata=meta(),
        spec=kube.network_policy_spec(selector, w.ingress_from, list(w.ports.values()), w.egress_to),
        opts=child,
    )
    return Deployed(service_account=account, workload=workload, service=service, network_policy=policy,
                    headless_service=headless)


def pod_spec(w: Workload) -> Manifest:
    tmp_volume, tmp_mount = kube.tmp_volume()
    volumes = [tmp_volume] + [volume for volume, _ in w.files]
    mounts = [tmp_mount] + [mount for _, mount in w.files]
    for name, path in w.scratch.items():
        volumes.append(kube.scratch_volume(name))
        mounts.append({"name": name, "mountPath": path})
    if w.data is not None:
        mounts.append({"name": "data", "mountPath": w.data_path})
    if w.kubernetes_api:
        token_volume, token_mount = kube.api_token_volume()
        volumes.append(token_volume)
        mounts.append(token_mount)

    agent = w.node_agent
    if agent is not None:
        for name, (host_path, mount_path) in agent.host_paths.items():
            volumes.append({"name": name, "hostPath": {"path": host_path, "type": "Directory"}})
            # HostToContainer: filesystems the host mounts later (new volumes) show up too.
            mounts.append({"name": name, "mountPath": mount_path, "readOnly": True,
                           "mountPropagation": "HostToContainer"})

    container: Manifest = {
        "name": w.name,
        "image": w.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in w.ports.items()],
        "resources": w.resources.render(),
        "securityContext": _container_security(agent),
        "volumeMounts": mounts,
        **w.probes,
    }
    if w.args:
        container["args"] = list(w.args)
    if w.env:
        container["env"] = list(w.env)

    spec: Manifest = {
        "serviceAccountName": w.name,
        "automountServiceAccountToken": False,
        "securityContext": _pod_security(agent),
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": volumes,
    }
    if agent is not None:
        spec.update(hostNetwork=agent.host_network, hostPID=agent.host_pid,
                    tolerations=[{"operator": "Exists"}])  # every node, tainted or not
        if agent.host_network:
            spec["dnsPolicy"] = "ClusterFirstWithHostNet"
    elif w.replicas > 1:
        spec.update(kube.spread_across_nodes_and_zones(w.identity.selector()))
    return spec


def _pod_security(agent: NodeAgent | None) -> Manifest:
    if agent is None:
        return kube.pod_security_context()
    context = kube.pod_security_context(agent.uid)
    if agent.uid == 0:  # reads root-owned host files: root, but with every capability dropped
        context.update(runAsNonRoot=False, runAsUser=0, runAsGroup=0)
        context.pop("fsGroup")
        context.pop("fsGroupChangePolicy")
    return context


def _container_security(agent: NodeAgent | None) -> Manifest:
    context = kube.container_security_context()
    if agent is not None and agent.uid == 0:
        context["runAsNonRoot"] = False
    return context


def config_files(volume: str, path: str, source: Manifest) -> tuple[Manifest, Manifest]:
    """A read-only volume (a configMap, secret or projected source) mounted at `path`."""
    return {"name": volume, **source}, {"name": volume, "mountPath": path, "readOnly": True}


# Node IPs (kubelet, hostNetwork exporters) and the API server's endpoints are
# outside any pod selector: they are reached by address, within private ranges only.
CLUSTER_PRIVATE_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
API_SERVER_PORTS = (443, 6443)


def private_network(ports: Sequence[int]) -> list[kube.NetworkPeer]:
    return [kube.NetworkPeer(cidr=cidr, ports=tuple(ports)) for cidr in CLUSTER_PRIVATE_CIDRS]


def same_namespace(name: str, ports: Sequence[int] = ()) -> kube.NetworkPeer:
    """Pods of one monitoring part, by their app.kubernetes.io/name."""
    return kube.NetworkPeer(pod_labels={"app.kubernetes.io/name": name}, ports=tuple(ports))


def in_namespace(namespace: str, name: str, ports: Sequence[int] = ()) -> kube.NetworkPeer:
    return kube.NetworkPeer(namespace=namespace, pod_labels={"app.kubernetes.io/name": name}, ports=tuple(ports))


def service_url(name: str, namespace: str, port: int) -> str:
    return f"http://{kube.cluster_dns(name, namespace)}:{port}"


class _BlockDumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (templates, bodies) as literal blocks."""


_BlockDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


def dump_yaml(data: Any) -> str:
    """A config file as the stack deploys it (key order kept, block style)."""
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
