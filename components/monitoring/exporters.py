"""Cluster exporters: node-exporter (a node agent: the host's /proc, /sys and
root filesystem, read-only) and kube-state-metrics (restricted, read-only API)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.monitoring import workload as wl
from components.monitoring.args import MonitoringStackArgs

NODE_EXPORTER = "node-exporter"
NODE_EXPORTER_PORT = 9100
KSM = "kube-state-metrics"
KSM_PORT = 8080
KSM_TELEMETRY_PORT = 8081
NOBODY = 65534

NODE_EXPORTER_EXCEPTION = wl.NodeAgent(
    reason="node metrics are the host's: reads /proc, /sys and / of the node (host paths, read-only) "
           "in the host's network and PID namespaces; non-root, every capability dropped",
    uid=NOBODY,
    host_network=True,
    host_pid=True,
    host_paths={"proc": ("/proc", "/host/proc"), "sys": ("/sys", "/host/sys"), "root": ("/", "/host/root")},
)

# What kube-state-metrics reports on: workloads, pods, nodes and volumes; no
# Secrets or ConfigMaps (their metadata is nobody's business here).
KSM_RESOURCES = {
    "": ["namespaces", "nodes", "persistentvolumeclaims", "persistentvolumes", "pods", "services"],
    "apps": ["daemonsets", "deployments", "replicasets", "statefulsets"],
    "batch": ["cronjobs", "jobs"],
    "autoscaling": ["horizontalpodautoscalers"],
    "policy": ["poddisruptionbudgets"],
}


def deploy_node_exporter(parent: pulumi.Resource, args: MonitoringStackArgs,
                         depends_on: list[pulumi.Resource]) -> wl.Deployed:
    identity = kube.Identity(NODE_EXPORTER, "node-metrics", args.environment,
                             kube.image_version(args.images.node_exporter))
    return wl.deploy(parent, "DaemonSet", wl.Workload(
        identity=identity,
        namespace=args.node_agents_namespace,
        image=args.images.node_exporter,
        ports={"metrics": NODE_EXPORTER_PORT},
        args=[
            "--path.procfs=/host/proc",
            "--path.sysfs=/host/sys",
            "--path.rootfs=/host/root",
            f"--web.listen-address=:{NODE_EXPORTER_PORT}",
            "--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|run|var/lib/(kubelet|containerd|docker)/.+)($|/)",
        ],
        resources=kube.RESOURCE_PRESETS["nano"],
        probes={
            "livenessProbe": kube.tcp_probe("metrics", kube.LIVENESS),
            "readinessProbe": kube.http_probe("/", "metrics", kube.READINESS),
        },
        # hostNetwork: Prometheus reaches it at the node's address (policy kept for intent and CNIs that apply it).
        ingress_from=[wl.in_namespace(args.namespace, "prometheus", [NODE_EXPORTER_PORT])],
        node_agent=NODE_EXPORTER_EXCEPTION,
    ), depends_on=depends_on)


def deploy_kube_state_metrics(parent: pulumi.Resource, args: MonitoringStackArgs,
                              depends_on: list[pulumi.Resource]) -> wl.Deployed:
    ns = args.namespace
    identity = kube.Identity(KSM, "cluster-metrics", args.environment,
                             kube.image_version(args.images.kube_state_metrics))
    labels = identity.labels()
    child = pulumi.ResourceOptions(parent=parent, depends_on=depends_on)
    cluster_name = f"{ns}-{KSM}"
    k8s.rbac.v1.ClusterRole(f"{KSM}-role", metadata=kube.metadata(cluster_name, None, labels), rules=[
        {"apiGroups": [group], "resources": names, "verbs": ["list", "watch"]} for group, names in KSM_RESOURCES.items()
    ], opts=child)
    k8s.rbac.v1.ClusterRoleBinding(f"{KSM}-binding", metadata=kube.metadata(cluster_name, None, labels),
                                   role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                             "name": cluster_name},
                                   subjects=[{"kind": "ServiceAccount", "name": KSM, "namespace": ns}], opts=child)
    resources = sorted(name for names in KSM_RESOURCES.values() for name in names)
    return wl.deploy(parent, "Deployment", wl.Workload(
        identity=identity,
        namespace=ns,
        image=args.images.kube_state_metrics,
        ports={"http": KSM_PORT, "telemetry": KSM_TELEMETRY_PORT},
        args=[f"--port={KSM_PORT}", f"--telemetry-port={KSM_TELEMETRY_PORT}", f"--resources={','.join(resources)}"],
        resources=kube.RESOURCE_PRESETS["micro"],
        probes={
            "livenessProbe": kube.http_probe("/livez", "http", kube.LIVENESS),
            "readinessProbe": kube.http_probe("/readyz", "telemetry", kube.READINESS),
        },
        ingress_from=[wl.same_namespace("prometheus", [KSM_PORT, KSM_TELEMETRY_PORT])],
        egress_to=wl.private_network(wl.API_SERVER_PORTS),
        replicas=args.kube_state_metrics_replicas,
        kubernetes_api=True,
    ), depends_on=depends_on)
