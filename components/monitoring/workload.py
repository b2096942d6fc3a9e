"""The one shape every monitoring part shares: ServiceAccount, workload
(StatefulSet with a PVC, Deployment or DaemonSet), Service, NetworkPolicy and,
when replicated, a PodDisruptionBudget.

The parts (prometheus.py, alertmanager.py, ...) describe themselves as a
`Workload`; `deploy` turns that into objects built from components.kube.
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
    its reasoned exceptions (see NODE_AGENT_EXCEPTIONS).
    """

    reason: str
    uid: int
    host_network: bool = False
    host_pid: bool = False
    host_paths: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # volume -> (host path, mount path), read-only


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
    kubernetes_api: bool = False  # mounts the ServiceAccount token (service discovery, state metrics)
    service_account_annotations: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    headless_service: bool = False  # per-pod DNS (Alertmanager gossip)
    node_agent: NodeAgent | None = None

    @property
    def name(self) -> str:
        return self.identity.name


@dataclass
class Deployed:
    service_account: k8s.core.v1.ServiceAccount
    workload: pulumi.CustomResource
    service: k8s.core.v1.Service | None
    network_policy: k8s.networking.v1.NetworkPolicy


def deploy(parent: pulumi.Resource, kind: Kind, w: Workload, depends_on: Sequence[pulumi.Resource] = ()) -> Deployed:
    child = pulumi.ResourceOptions(parent=parent)
    labels, selector = w.identity.labels(), w.identity.selector()

    def meta(name: str = w.name, annotations: Mapping[str, str] | None = None) -> Manifest:
        return kube.metadata(name, w.namespace, labels, annotations)

    account = k8s.core.v1.ServiceAccount(
        f"{w.name}-sa",
        metadata=meta(annotations=w.service_account_annotations or None),
        automount_service_account_token=w.kubernetes_api,
        opts=child,
    )

    template = {"metadata": {"labels": labels, "annotations": dict(w.pod_annotations)}, "spec": pod_spec(w)}
    spec: Manifest = {"selector": {"matchLabels": selector}, "template": template}
    resource_type: type[pulumi.CustomResource]
    if kind == "StatefulSet":
        resource_type = k8s.apps.v1.StatefulSet
        spec.update(
            serviceName=f"{w.name}-headless" if w.headless_service else w.name,
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
        metadata=meta(),
        spec=spec,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[account, *depends_on]),
    )

    service = None
    if w.node_agent is None or not w.node_agent.host_network:
        service = k8s.core.v1.Service(f"{w.name}-service", metadata=meta(), spec=kube.service_spec(selector, w.ports),
                                      opts=child)
    if w.headless_service:
        k8s.core.v1.Service(f"{w.name}-headless-service", metadata=meta(f"{w.name}-headless"),
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
    return Deployed(service_account=account, workload=workload, service=service, network_policy=policy)


def pod_spec(w: Workload) -> Manifest:
    tmp_volume, tmp_mount = kube.tmp_volume()
    volumes = [tmp_volume] + [volume for volume, _ in w.files]
    mounts = [tmp_mount] + [mount for _, mount in w.files]
    for name, path in w.scratch.items():
        volumes.append({"name": name, "emptyDir": {"sizeLimit": "1Gi"}})
        mounts.append({"name": name, "mountPath": path})
    if w.data is not None:
        mounts.append({"name": "data", "mountPath": w.data_path})

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
        "automountServiceAccountToken": w.kubernetes_api,
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


def image_tag(image: str) -> str:
    """The version label of a pinned image reference (its tag)."""
    return image.rsplit("@", 1)[0].rsplit(":", 1)[-1]


class _BlockDumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (templates, bodies) as literal blocks."""


_BlockDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


def dump_yaml(data: Any) -> str:
    """A config file as the stack deploys it (key order kept, block style)."""
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
