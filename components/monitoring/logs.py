"""Logs: Loki (single binary; filesystem or S3 storage; retention by the
compactor) and Grafana Alloy, the log agent on every node (Promtail is
end-of-life). Alloy reads the kubelet's pod log files read-only and pushes
them to Loki with namespace/pod/container/app labels."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import kube, secret_files
from components.monitoring import workload as wl
from components.monitoring.args import LokiArgs, MonitoringStackArgs

LOKI = "loki"
LOKI_PORT = 3100
LOKI_GRPC_PORT = 9095
LOKI_DIR = "/loki"
ALLOY = "alloy"
ALLOY_PORT = 12345
POD_LOGS = "/var/log/pods"
SCHEMA_FROM = "2025-01-01"  # first day of the tsdb/v13 schema; never edit, add a new period instead

# Why Loki runs one pod (its exemption from workload-min-replicas), by storage backend.
LOKI_SINGLETON = {
    "filesystem": "single-binary Loki keeps its chunks and index on one ReadWriteOnce volume and its ring "
                  "in memory (replication factor 1); scale-out needs the simple-scalable or microservices "
                  "mode on object storage",
    "s3": "single-binary Loki keeps its ring in memory (replication factor 1) and its WAL on one volume: a "
          "second pod would be a separate, unreplicated ingester; scale-out needs the simple-scalable or "
          "microservices mode with a shared ring",
}

ALLOY_EXCEPTION = wl.NodeAgent(
    reason="reads the kubelet's pod log files under /var/log/pods (host path, read-only), which are "
           "root-owned 0640: runs as UID 0 with every capability dropped, nothing else",
    uid=0,
    host_paths={"pod-logs": (POD_LOGS, POD_LOGS)},
)


def loki_config(args: MonitoringStackArgs) -> str:
    loki = args.loki
    assert loki is not None
    backend = loki.storage_backend
    storage: dict[str, Any]
    if loki.s3 is not None:
        s3: dict[str, Any] = {"bucketnames": loki.s3.bucket, "region": loki.s3.region,
                              "s3forcepathstyle": loki.s3.force_path_style, "insecure": False}
        if loki.s3.endpoint:
            s3["endpoint"] = loki.s3.endpoint
        storage = {"s3": s3}
    else:
        storage = {"filesystem": {"chunks_directory": f"{LOKI_DIR}/chunks", "rules_directory": f"{LOKI_DIR}/rules"}}
    config = {
        "auth_enabled": False,
        "server": {"http_listen_port": LOKI_PORT, "grpc_listen_port": LOKI_GRPC_PORT, "log_level": "info"},
        "common": {
            "path_prefix": LOKI_DIR,
            "replication_factor": 1,
            "ring": {"instance_addr": "127.0.0.1", "kvstore": {"store": "inmemory"}},
            "storage": storage,
        },
        "schema_config": {"configs": [{
            "from": SCHEMA_FROM, "store": "tsdb", "object_store": backend, "schema": "v13",
            "index": {"prefix": "index_", "period": "24h"},
        }]},
        "limits_config": {
            "retention_period": loki.retention,
            "reject_old_samples": True,
            "reject_old_samples_max_age": "168h",
            "max_query_lookback": loki.retention,
            "allow_structured_metadata": True,
        },
        "compactor": {
            "working_directory": f"{LOKI_DIR}/compactor",
            "retention_enabled": True,
            "delete_request_store": backend,
        },
        "ruler": {"enable_api": False},
        "analytics": {"reporting_enabled": False},
    }
    return wl.dump_yaml(config)


def alloy_config(args: MonitoringStackArgs) -> str:
    """config.alloy: this node's pods (by field selector), their log files, CRI
    parsing, and a push to Loki."""
    push_url = f"{wl.service_url(LOKI, args.namespace, LOKI_PORT)}/loki/api/v1/push"
    return f'''// Pod logs of this node, read from the kubelet's files and pushed to Loki.
discovery.kubernetes "pods" {{
  role = "pod"
  selectors {{
    role  = "pod"
    field = "spec.nodeName=" + sys.env("NODE_NAME")
  }}
}}

discovery.relabel "pod_logs" {{
  targets = discovery.kubernetes.pods.targets

  rule {{
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_name"]
    target_label  = "pod"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_container_name"]
    target_label  = "container"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
    target_label  = "app"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_uid", "__meta_kubernetes_pod_container_name"]
    separator     = "/"
    target_label  = "__path__"
    replacement   = "{POD_LOGS}/*$1/*.log"
  }}
}}

local.file_match "pod_logs" {{
  path_targets = discovery.relabel.pod_logs.output
}}

loki.source.file "pod_logs" {{
  targets    = local.file_match.pod_logs.targets
  forward_to = [loki.process.pod_logs.receiver]
}}

loki.process "pod_logs" {{
  stage.cri {{}}
  stage.static_labels {{
    values = {{
      cluster     = "{args.cluster_name}",
      environment = "{args.environment}",
    }}
  }}
  forward_to = [loki.write.default.receiver]
}}

loki.write "default" {{
  endpoint {{
    url = "{push_url}"
  }}
}}
'''


def deploy_loki(parent: pulumi.Resource, args: MonitoringStackArgs, depends_on: list[pulumi.Resource]) -> wl.Deployed:
    loki: LokiArgs | None = args.loki
    assert loki is not None
    ns = args.namespace
    identity = kube.Identity(LOKI, "logs", args.environment, kube.image_version(args.images.loki))
    config = loki_config(args)
    k8s.core.v1.ConfigMap(f"{LOKI}-config", metadata=kube.metadata(f"{LOKI}-config", ns, identity.labels()),
                          data={"loki.yaml": config}, opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on))
    env: list[dict[str, Any]] = []
    egress: list[kube.NetworkPeer] = []
    files = [wl.config_files("config", "/etc/loki", {"configMap": {"name": f"{LOKI}-config"}})]
    if loki.s3 is not None:
        if loki.s3.credentials_secret:
            # The SDK's shared credentials file, mounted: the keys are never variables.
            files.append(secret_files.secret_volume("s3-credentials", loki.s3.credentials_secret,
                                                    "/run/secrets/loki-s3", ["credentials"]))
            env.append({"name": "AWS_SHARED_CREDENTIALS_FILE", "value": "/run/secrets/loki-s3/credentials"})
        # S3 itself, or an S3-compatible server inside the cluster.
        egress += [kube.INTERNET_PEER, *wl.private_network([443, 9000])]
    return wl.deploy(parent, "StatefulSet", wl.Workload(
        identity=identity,
        namespace=ns,
        image=args.images.loki,
        ports={"http": LOKI_PORT},
        args=[f"-config.file=/etc/loki/loki.yaml", "-target=all"],
        env=env,
        files=files,
        data=loki.storage,
        data_path=LOKI_DIR,
        resources=loki.resources,
        probes={
            "livenessProbe": kube.http_probe("/loki/api/v1/status/buildinfo", "http", kube.LIVENESS),
            "readinessProbe": kube.http_probe("/ready", "http", kube.READINESS),
            "startupProbe": kube.http_probe("/loki/api/v1/status/buildinfo", "http", kube.startup_timing(120)),
        },
        pod_annotations={"checksum/config": kube.content_checksum(config)},
        ingress_from=[
            wl.in_namespace(args.node_agents_namespace, ALLOY, [LOKI_PORT]),
            wl.same_namespace("grafana", [LOKI_PORT]),
            wl.same_namespace("prometheus", [LOKI_PORT]),
        ],
        egress_to=egress,
        service_account_annotations=dict(loki.service_account_annotations),
        singleton=LOKI_SINGLETON[loki.storage_backend],
    ), depends_on=depends_on)


def deploy_alloy(parent: pulumi.Resource, args: MonitoringStackArgs, depends_on: list[pulumi.Resource]) -> wl.Deployed:
    assert args.loki is not None
    ns = args.node_agents_namespace
    identity = kube.Identity(ALLOY, "log-agent", args.environment, kube.image_version(args.images.alloy))
    labels = identity.labels()
    child = pulumi.ResourceOptions(parent=parent, depends_on=depends_on)
    config = alloy_config(args)
    k8s.core.v1.ConfigMap(f"{ALLOY}-config", metadata=kube.metadata(f"{ALLOY}-config", ns, labels),
                          data={"config.alloy": config}, opts=child)
    # Pod metadata for labels: read-only, cluster-wide (this node's pods are in every namespace).
    cluster_name = f"{ns}-{ALLOY}"
    k8s.rbac.v1.ClusterRole(f"{ALLOY}-role", metadata=kube.metadata(cluster_name, None, labels), rules=[
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    ], opts=child)
    k8s.rbac.v1.ClusterRoleBinding(f"{ALLOY}-binding", metadata=kube.metadata(cluster_name, None, labels),
                                   role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                             "name": cluster_name},
                                   subjects=[{"kind": "ServiceAccount", "name": ALLOY, "namespace": ns}], opts=child)
    return wl.deploy(parent, "DaemonSet", wl.Workload(
        identity=identity,
        namespace=ns,
        image=args.images.alloy,
        ports={"http": ALLOY_PORT},
        args=["run", "/etc/alloy/config.alloy", "--storage.path=/var/lib/alloy/data",
              f"--server.http.listen-addr=0.0.0.0:{ALLOY_PORT}", "--disable-reporting"],
        env=[{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        files=[wl.config_files("config", "/etc/alloy", {"configMap": {"name": f"{ALLOY}-config"}})],
        # Read positions; lost with the pod, when Alloy re-reads what the kubelet still keeps.
        scratch={"storage": "/var/lib/alloy/data"},
        resources=args.loki.agent_resources,
        probes={
            "livenessProbe": kube.tcp_probe("http", kube.LIVENESS),
            "readinessProbe": kube.http_probe("/-/ready", "http", kube.READINESS),
        },
        pod_annotations={"checksum/config": kube.content_checksum(config)},
        ingress_from=[wl.in_namespace(args.namespace, "prometheus", [ALLOY_PORT])],
        egress_to=[wl.in_namespace(args.namespace, LOKI, [LOKI_PORT]), *wl.private_network(wl.API_SERVER_PORTS)],
        kubernetes_api=True,
        node_agent=ALLOY_EXCEPTION,
    ), depends_on=depends_on)
