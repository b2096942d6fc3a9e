"""Prometheus: its configuration (generated from the args), its rule files (kept
in files/rules/) and its StatefulSet. `prometheus_config` and `rule_files` are
exactly what the stack deploys and what promtool checks in tests/monitoring."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.monitoring import workload as wl
from components.monitoring.alertmanager import peer_addresses
from components.monitoring.args import MonitoringStackArgs, ScrapeTarget

NAME = "prometheus"
PORT = 9090
CONFIG_DIR = "/etc/prometheus"
DATA_DIR = "/prometheus"
RULES_DIR = "rules"  # relative to prometheus.yml, as promtool resolves it too
SA_DIR = kube.SERVICE_ACCOUNT_DIR  # the projected API credentials (kube.api_token_volume)
# External label naming the replica of an HA pair: the pod's name, expanded by Prometheus
# from the environment when it loads the file (Prometheus 3 does so by default).
REPLICA_LABEL = "replica"
POD_NAME_ENV = "POD_NAME"

Config = dict[str, Any]


def rule_files() -> dict[str, str]:
    """The alert and recording rule files: file name -> exact content."""
    folder = resources.files("components.monitoring") / "files" / "rules"
    return {f.name: f.read_text() for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".yml")}


def prometheus_config(args: MonitoringStackArgs) -> str:
    p = args.prometheus
    external_labels = {"cluster": args.cluster_name, "environment": args.environment}
    if p.replicas > 1:
        external_labels[REPLICA_LABEL] = f"${{{POD_NAME_ENV}}}"
    config: Config = {
        "global": {
            "scrape_interval": p.scrape_interval,
            "evaluation_interval": p.evaluation_interval,
            "external_labels": external_labels,
        },
        "rule_files": [f"{RULES_DIR}/*.yml"],
        "scrape_configs": scrape_configs(args),
    }
    if args.alertmanager is not None:
        alerting: Config = {
            # Every replica individually: Alertmanager deduplicates, a Service would not fan out.
            "alertmanagers": [{"static_configs": [{"targets": peer_addresses(args)}]}]
        }
        if p.replicas > 1:
            # Both Prometheus replicas send the same alert; without their replica label
            # the two are identical and Alertmanager notifies once.
            alerting["alert_relabel_configs"] = [{"action": "labeldrop", "regex": REPLICA_LABEL}]
        config["alerting"] = alerting
    return wl.dump_yaml(config)


def scrape_configs(args: MonitoringStackArgs) -> list[Config]:
    ns = args.namespace
    jobs: list[Config] = [_static(NAME, f"localhost:{PORT}")]
    if args.alertmanager is not None:
        jobs.append(_static("alertmanager", *peer_addresses(args)))
    jobs.append(_static("grafana", f"{kube.cluster_dns('grafana', ns)}:3000"))
    if args.loki is not None:
        jobs.append(_static("loki", f"{kube.cluster_dns('loki', ns)}:3100"))
    if args.kube_state_metrics:
        # Through its Service, one target: with replicas, whichever answers reports the same
        # objects once (scraping each pod would duplicate every series).
        # honor_labels: the namespace/pod labels describe the objects, not the exporter pod.
        jobs.append({**_static("kube-state-metrics", f"{kube.cluster_dns('kube-state-metrics', ns)}:8080"),
                     "honor_labels": True})
    if args.node_exporter:
        jobs.append(_agent_pods("node-exporter", args.node_agents_namespace))
    if args.loki is not None:
        jobs.append(_agent_pods("alloy", args.node_agents_namespace))
    jobs += [_kubelet("kubelet", "/metrics"), _kubelet("kubelet-cadvisor", "/metrics/cadvisor")]
    jobs.append(_annotated_pods(args.app_namespace))
    if args.gateway_metrics:
        assert args.gateway_namespace is not None
        jobs.append(_gateway_proxies(args.gateway_namespace))
    jobs += [_scrape_target(t) for t in args.scrape_targets]
    return jobs


def _static(job: str, *targets: str) -> Config:
    return {"job_name": job, "static_configs": [{"targets": list(targets)}]}


def _keep(label: str, value: str) -> Config:
    return {"source_labels": [label], "regex": value, "action": "keep"}


def _copy(source: str, target: str) -> Config:
    return {"source_labels": [source], "target_label": target}


def _agent_pods(name: str, namespace: str) -> Config:
    """A node agent's pods, one target per node, `instance` = the node's name."""
    return {
        "job_name": name,
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            _keep("__meta_kubernetes_pod_label_app_kubernetes_io_name", name),
            _keep("__meta_kubernetes_pod_container_port_name", "metrics|http"),
            _copy("__meta_kubernetes_pod_node_name", "instance"),
            _copy("__meta_kubernetes_namespace", "namespace"),
        ],
    }


def _kubelet(job: str, path: str) -> Config:
    """Every node's kubelet (volume stats; cAdvisor container usage), with the
    ServiceAccount's token (RBAC: nodes/metrics, nothing broader)."""
    return {
        "job_name": job,
        "scheme": "https",
        "metrics_path": path,
        "authorization": {"credentials_file": f"{SA_DIR}/token"},
        # Kubelet serving certificates are self-signed on most clusters (kubeadm, EKS).
        "tls_config": {"ca_file": f"{SA_DIR}/ca.crt", "insecure_skip_verify": True},
        "kubernetes_sd_configs": [{"role": "node"}],
        "relabel_configs": [_copy("__meta_kubernetes_node_name", "instance")],
    }


def _annotated_pods(namespace: str) -> Config:
    """Seed 003's pod discovery: pods annotated prometheus.io/scrape=true, on the
    annotated port and path; job = app.kubernetes.io/name (so up{job="ai-processor"})."""
    return {
        "job_name": "kubernetes-pods",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            _keep("__meta_kubernetes_pod_annotation_prometheus_io_scrape", "true"),
            {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Pending|Succeeded|Failed", "action": "drop"},
            {"source_labels": ["__meta_kubernetes_pod_container_init"], "regex": "true", "action": "drop"},
            # One target per pod: the declared container port that the annotation names.
            {"source_labels": ["__meta_kubernetes_pod_container_port_number"],
             "target_label": "__meta_kubernetes_pod_annotation_prometheus_io_port", "action": "keepequal"},
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "regex": "(.+)",
             "target_label": "__metrics_path__"},
            _copy("__meta_kubernetes_pod_label_app_kubernetes_io_name", "job"),
            _copy("__meta_kubernetes_pod_label_app_kubernetes_io_component", "component"),
            # A release track (stable/canary, blue/green): CanaryErrorRateHigh compares the tracks.
            _copy("__meta_kubernetes_pod_label_aquascene_io_track", "track"),
            _copy("__meta_kubernetes_namespace", "namespace"),
            _copy("__meta_kubernetes_pod_name", "pod"),
        ],
    }


GATEWAY_METRICS_PORT = 19001  # Envoy's admin stats listener on Envoy Gateway's proxies


def _gateway_proxies(namespace: str) -> Config:
    """The public gateway's Envoy proxies (request rates, upstream errors and latency by route).
    Envoy Gateway names their Service after a hash, so pods are found by the owning-gateway label."""
    return {
        "job_name": "gateway",
        "metrics_path": "/stats/prometheus",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_labelpresent_gateway_envoyproxy_io_owning_gateway_name"],
             "regex": "true", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_ip"], "regex": "(.+)",
             "target_label": "__address__", "replacement": f"$1:{GATEWAY_METRICS_PORT}"},
            {"target_label": "component", "replacement": "gateway"},
            _copy("__meta_kubernetes_namespace", "namespace"),
            _copy("__meta_kubernetes_pod_name", "pod"),
        ],
    }


def _scrape_target(t: ScrapeTarget) -> Config:
    """Every ready endpoint of one Service port."""
    job: Config = {
        "job_name": t.job,
        "metrics_path": t.path,
        "kubernetes_sd_configs": [{"role": "endpointslice", "namespaces": {"names": [t.namespace]}}],
        "relabel_configs": [
            _keep("__meta_kubernetes_service_name", t.service),
            _keep("__meta_kubernetes_endpointslice_port", str(t.port)),
            _keep("__meta_kubernetes_endpointslice_endpoint_conditions_ready", "true"),
            _copy("__meta_kubernetes_namespace", "namespace"),
            _copy("__meta_kubernetes_pod_name", "pod"),
        ],
    }
    if t.component:
        job["relabel_configs"].append({"target_label": "component", "replacement": t.component})
    if t.interval:
        job["scrape_interval"] = t.interval
    if t.honor_labels:
        job["honor_labels"] = True
    return job


def discovery_namespaces(args: MonitoringStackArgs) -> list[str]:
    """Namespaces whose pods and endpoints Prometheus lists (bound by RoleBinding, not cluster-wide)."""
    names = [args.app_namespace]
    if args.node_agents:
        names.append(args.node_agents_namespace)
    if args.gateway_metrics and args.gateway_namespace:
        names.append(args.gateway_namespace)
    names += [t.namespace for t in args.scrape_targets]
    return list(dict.fromkeys(names))


def deploy(parent: pulumi.Resource, args: MonitoringStackArgs, depends_on: list[pulumi.Resource]) -> wl.Deployed:
    child = pulumi.ResourceOptions(parent=parent, depends_on=depends_on)
    ns = args.namespace
    identity = kube.Identity(NAME, "metrics", args.environment, kube.image_version(args.images.prometheus))
    labels = identity.labels()
    config, rules = prometheus_config(args), rule_files()

    k8s.core.v1.ConfigMap(f"{NAME}-config", metadata=kube.metadata(f"{NAME}-config", ns, labels),
                          data={"prometheus.yml": config}, opts=child)
    k8s.core.v1.ConfigMap(f"{NAME}-rules", metadata=kube.metadata(f"{NAME}-rules", ns, labels),
                          data=rules, opts=child)
    _rbac(parent, args, labels, depends_on)

    files = wl.config_files("config", CONFIG_DIR, {"projected": {"sources": [
        {"configMap": {"name": f"{NAME}-config", "items": [{"key": "prometheus.yml", "path": "prometheus.yml"}]}},
        {"configMap": {"name": f"{NAME}-rules",
                       "items": [{"key": name, "path": f"{RULES_DIR}/{name}"} for name in rules]}},
    ]}})
    p = args.prometheus
    env = []
    if p.replicas > 1:
        env.append({"name": POD_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    scrape_ports = sorted({t.port for t in args.scrape_targets})
    egress = [
        kube.NetworkPeer(namespace=args.app_namespace),  # app and data-store pods, on their annotated ports
        *[kube.NetworkPeer(namespace=n, ports=tuple(scrape_ports)) for n in {t.namespace for t in args.scrape_targets}],
        *([kube.NetworkPeer(namespace=args.gateway_namespace, ports=(GATEWAY_METRICS_PORT,))]
          if args.gateway_metrics and args.gateway_namespace else []),
        # Only the parts this stack runs: an opening for an absent part would admit any pod later so named.
        *([wl.same_namespace("alertmanager", [9093])] if args.alertmanager is not None else []),
        wl.same_namespace("grafana", [3000]),
        *([wl.same_namespace("loki", [3100])] if args.loki is not None else []),
        *([wl.same_namespace("kube-state-metrics", [8080])] if args.kube_state_metrics else []),
        *([wl.in_namespace(args.node_agents_namespace, "alloy", [12345])] if args.loki is not None else []),
        # hostNetwork node-exporter, kubelets and the API server are reached by node address.
        *wl.private_network([9100, 10250, *wl.API_SERVER_PORTS]),
    ]
    return wl.deploy(parent, "StatefulSet", wl.Workload(
        identity=identity,
        namespace=ns,
        image=args.images.prometheus,
        ports={"http": PORT},
        args=[
            f"--config.file={CONFIG_DIR}/prometheus.yml",
            f"--storage.tsdb.path={DATA_DIR}",
            f"--storage.tsdb.retention.time={p.retention_time}",
            f"--storage.tsdb.retention.size={p.retention_size}",
            f"--web.listen-address=:{PORT}",
        ],
        env=env,
        files=[files],
        data=p.storage,
        data_path=DATA_DIR,
        replicas=p.replicas,
        resources=p.resources,
        # WAL replay after a restart can take minutes; startup covers it so liveness stays strict.
        probes=kube.HttpProbes(port="http", liveness_path="/-/healthy", readiness_path="/-/ready",
                               startup_timeout_seconds=600).render(),
        pod_annotations={"checksum/config": kube.content_checksum([config, rules])},
        ingress_from=[wl.same_namespace("grafana")],
        egress_to=egress,
        kubernetes_api=True,
    ), depends_on=depends_on)


def _rbac(parent: pulumi.Resource, args: MonitoringStackArgs, labels: dict[str, str],
          depends_on: list[pulumi.Resource]) -> None:
    """Read-only discovery: pods, services and endpoint slices in the scraped
    namespaces only; nodes and their kubelet metrics cluster-wide."""
    child = pulumi.ResourceOptions(parent=parent, depends_on=depends_on)
    cluster_name = f"{args.namespace}-{NAME}"  # cluster-scoped: unique per environment
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": args.namespace}]
    k8s.rbac.v1.ClusterRole(f"{NAME}-nodes-role", metadata=kube.metadata(f"{cluster_name}-nodes", None, labels), rules=[
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
    ], opts=child)
    k8s.rbac.v1.ClusterRoleBinding(f"{NAME}-nodes-binding", metadata=kube.metadata(f"{cluster_name}-nodes", None, labels),
                                   role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                             "name": f"{cluster_name}-nodes"},
                                   subjects=subject, opts=child)
    k8s.rbac.v1.ClusterRole(f"{NAME}-discovery-role", metadata=kube.metadata(f"{cluster_name}-discovery", None, labels), rules=[
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
    ], opts=child)
    for namespace in discovery_namespaces(args):
        k8s.rbac.v1.RoleBinding(f"{NAME}-discovery-{namespace}", metadata=kube.metadata(f"{NAME}-discovery", namespace, labels),
                                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                          "name": f"{cluster_name}-discovery"},
                                subjects=subject, opts=child)

