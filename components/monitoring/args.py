"""MonitoringStack's arguments: typed, frozen, validated, secure by default.

Environments differ only by the values a caller passes (retention, storage
backend, which parts run); nothing here or in the parts branches on an
environment name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Sequence

import pulumi

from components import kube

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")  # Prometheus/Loki duration
_BYTES = re.compile(r"^(\d+)(B|KB|MB|GB|TB|PB)$")  # Prometheus --storage.tsdb.retention.size
_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$")  # Kubernetes storage quantity
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

_UNITS = {
    "": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
    "T": 10**12, "TB": 10**12, "P": 10**15, "PB": 10**15,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _duration(owner: str, name: str, value: str) -> None:
    _check(bool(_DURATION.match(value)), f"{owner}.{name} must be a duration like 30d or 12h, got {value!r}")


def quantity_bytes(value: str) -> int:
    """Bytes of a Kubernetes quantity ("20Gi") or a Prometheus size ("10GB")."""
    match = _QUANTITY.match(value) or _BYTES.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2) or ""]


@dataclass(frozen=True)
class Storage:
    """A ReadWriteOnce PersistentVolumeClaim per pod (storage class None: the cluster default)."""

    size: str
    storage_class: str | None = None

    def __post_init__(self) -> None:
        _check(bool(_QUANTITY.match(self.size)), f"Storage.size must be a quantity like 10Gi, got {self.size!r}")


@dataclass(frozen=True)
class ScrapeTarget:
    """A metrics endpoint behind a Service, for what pod annotations do not cover.

    Every ready endpoint of `service` (in `namespace`) on `port` is scraped,
    labelled job=`job` and component=`component` (the alert rules key
    data-store alerts on component: database, cache, object-store).
    """

    job: str
    namespace: str
    service: str
    port: int
    path: str = "/metrics"
    component: str = ""
    interval: str | None = None  # None: the global scrape interval
    # Keep the exporter's own `namespace` label (e.g. cert-manager's: the Certificate's namespace).
    honor_labels: bool = False

    def __post_init__(self) -> None:
        _check(bool(_DNS_LABEL.match(self.job)), f"ScrapeTarget.job must be a DNS label, got {self.job!r}")
        _check(1 <= self.port <= 65535, f"ScrapeTarget.port must be 1-65535, got {self.port}")
        _check(self.path.startswith("/"), f"ScrapeTarget.path must start with '/', got {self.path!r}")
        if self.interval is not None:
            _duration("ScrapeTarget", "interval", self.interval)


@dataclass(frozen=True)
class PrometheusArgs:
    retention_time: str = "15d"
    retention_size: str = "8GB"  # must fit the volume, with room for the WAL
    storage: Storage = Storage("10Gi")
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    resources: kube.Resources = kube.RESOURCE_PRESETS["medium"]
    # > 1: an HA group. Each replica scrapes everything into its own volume and sends
    # every alert; the `replica` external label (its pod name) is dropped on the way to
    # Alertmanager, which then sees identical alerts and deduplicates them.
    replicas: int = 1

    def __post_init__(self) -> None:
        for name in ("retention_time", "scrape_interval", "evaluation_interval"):
            _duration("PrometheusArgs", name, getattr(self, name))
        _check(1 <= self.replicas <= 3, f"PrometheusArgs.replicas must be 1-3, got {self.replicas}")
        _check(
            bool(_BYTES.match(self.retention_size)),
            f"PrometheusArgs.retention_size must be like 10GB, got {self.retention_size!r}",
        )
        _check(
            quantity_bytes(self.retention_size) < quantity_bytes(self.storage.size),
            f"PrometheusArgs.retention_size ({self.retention_size}) must be smaller than "
            f"storage.size ({self.storage.size})",
        )


@dataclass(frozen=True)
class AlertReceivers:
    """Where alerts go (seed 000). The SMTP password and Slack webhook URL are
    secrets: pass them as secret Outputs (config `secure:` values); without
    them the email / Slack parts are left out and alerts stay in Alertmanager."""

    smtp_smarthost: str = "smtp.sendgrid.net:587"
    smtp_from: str = "alerts@aquascene.bg"
    smtp_username: str = "apikey"
    smtp_password: pulumi.Input[str] | None = None
    slack_webhook_url: pulumi.Input[str] | None = None
    default_email: str = "ops-team@aquascene.bg"
    oncall_email: str = "on-call@aquascene.bg"
    infrastructure_email: str = "infrastructure@aquascene.bg"
    critical_channel: str = "#alerts-critical"
    platform_channel: str = "#platform-alerts"

    def __post_init__(self) -> None:
        for name in ("default_email", "oncall_email", "infrastructure_email", "smtp_from"):
            _check("@" in getattr(self, name), f"AlertReceivers.{name} must be an email address")
        _check(":" in self.smtp_smarthost, "AlertReceivers.smtp_smarthost must be host:port")


@dataclass(frozen=True)
class AlertmanagerArgs:
    receivers: AlertReceivers = AlertReceivers()
    replicas: int = 1  # > 1: a gossip cluster with a PodDisruptionBudget
    storage: Storage = Storage("1Gi")
    resources: kube.Resources = kube.RESOURCE_PRESETS["nano"]

    def __post_init__(self) -> None:
        _check(1 <= self.replicas <= 5, f"AlertmanagerArgs.replicas must be 1-5, got {self.replicas}")


@dataclass(frozen=True)
class SecretKeyRef:
    """A key of a Secret in the monitoring namespace."""

    name: str
    key: str


@dataclass(frozen=True)
class GrafanaPostgres:
    """Grafana's PostgreSQL datasource: a read-only user, its password by Secret.

    Give either `password` (a secret Output, copied into a Secret of the
    monitoring namespace) or `password_secret` (an existing Secret there).
    """

    host: pulumi.Input[str]
    database: str
    user: str
    password: pulumi.Input[str] | None = None
    password_secret: SecretKeyRef | None = None
    port: int = 5432
    sslmode: Literal["disable", "require", "verify-ca", "verify-full"] = "require"

    def __post_init__(self) -> None:
        _check(
            (self.password is None) != (self.password_secret is None),
            "GrafanaPostgres: set exactly one of password and password_secret",
        )
        _check(self.sslmode in ("disable", "require", "verify-ca", "verify-full"),
               f"GrafanaPostgres.sslmode must be disable|require|verify-ca|verify-full, got {self.sslmode!r}")


@dataclass(frozen=True)
class GrafanaArgs:
    root_url: str | None = None  # the public URL when routed (https://grafana.example)
    admin_user: str = "admin"
    postgres: GrafanaPostgres | None = None
    storage: Storage = Storage("2Gi")
    resources: kube.Resources = kube.RESOURCE_PRESETS["small"]

    def __post_init__(self) -> None:
        if self.root_url is not None:
            _check(self.root_url.startswith(("http://", "https://")),
                   f"GrafanaArgs.root_url must be an http(s) URL, got {self.root_url!r}")


@dataclass(frozen=True)
class LokiS3:
    """S3 (or S3-compatible) chunk and index storage for Loki.

    Credentials: `credentials_secret` names a Secret in the monitoring
    namespace whose key `credentials` is an AWS shared credentials file
    ([default] aws_access_key_id / aws_secret_access_key), mounted read-only
    and found by the SDK through AWS_SHARED_CREDENTIALS_FILE; None means the
    pod's identity (IRSA via `LokiArgs.service_account_annotations`).
    """

    bucket: str
    region: str
    endpoint: str | None = None  # None: AWS S3 itself
    force_path_style: bool = False
    credentials_secret: str | None = None


@dataclass(frozen=True)
class LokiArgs:
    retention: str = "168h"
    storage_backend: Literal["filesystem", "s3"] = "filesystem"
    s3: LokiS3 | None = None
    storage: Storage = Storage("10Gi")  # chunks (filesystem) or WAL and caches (s3)
    resources: kube.Resources = kube.RESOURCE_PRESETS["small"]
    agent_resources: kube.Resources = kube.RESOURCE_PRESETS["micro"]  # Alloy, per node
    service_account_annotations: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _duration("LokiArgs", "retention", self.retention)
        _check(self.storage_backend in ("filesystem", "s3"),
               f"LokiArgs.storage_backend must be filesystem or s3, got {self.storage_backend!r}")
        _check((self.storage_backend == "s3") == (self.s3 is not None),
               "LokiArgs.s3 must be set exactly when storage_backend is 's3'")


@dataclass(frozen=True)
class Images:
    """Pinned upstream images (override per image, e.g. for a private mirror or a digest)."""

    prometheus: str = "docker.io/prom/prometheus:v3.15.1"
    alertmanager: str = "docker.io/prom/alertmanager:v0.34.2"
    grafana: str = "docker.io/grafana/grafana:13.1.1"
    loki: str = "docker.io/grafana/loki:3.7.8"
    alloy: str = "docker.io/grafana/alloy:v1.21.2"
    node_exporter: str = "quay.io/prometheus/node-exporter:v1.12.1"
    kube_state_metrics: str = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"

    def __post_init__(self) -> None:
        for name, ref in vars(self).items():
            tag = ref.rsplit("/", 1)[-1]
            _check(("@sha256:" in ref) or (":" in tag and not tag.endswith(":latest")),
                   f"Images.{name} must be pinned by tag or digest, got {ref!r}")


@dataclass(frozen=True)
class MonitoringStackArgs:
    """Everything MonitoringStack needs. Parts set to None are not deployed."""

    environment: str
    namespace: str  # created here: Prometheus, Alertmanager, Grafana, Loki, kube-state-metrics
    app_namespace: str  # pods annotated prometheus.io/scrape here are scraped
    node_agents_namespace: str  # created here at `privileged`: node-exporter, Alloy
    kubernetes_version: str = "1.33"
    cluster_name: str = "aquascene"  # external label `cluster` (Alertmanager groups by it)
    gateway_namespace: str | None = None  # the gateway proxies may reach Grafana
    # Scrape the Envoy Gateway proxies in gateway_namespace (job "gateway", their stats port).
    gateway_metrics: bool = False
    scrape_targets: Sequence[ScrapeTarget] = ()
    prometheus: PrometheusArgs = PrometheusArgs()
    alertmanager: AlertmanagerArgs | None = AlertmanagerArgs()
    grafana: GrafanaArgs = GrafanaArgs()
    loki: LokiArgs | None = LokiArgs()  # with Loki comes Alloy, the log agent on every node
    node_exporter: bool = True
    kube_state_metrics: bool = True
    # > 1: replicas behind its Service. Prometheus scrapes the Service as one target, so
    # whichever replica answers, each series exists once (no duplicates to sum away).
    kube_state_metrics_replicas: int = 1
    images: Images = Images()

    def __post_init__(self) -> None:
        for name in ("namespace", "app_namespace", "node_agents_namespace"):
            value = getattr(self, name)
            _check(bool(_DNS_LABEL.match(value)), f"MonitoringStackArgs.{name} must be a DNS label, got {value!r}")
        _check(len({self.namespace, self.app_namespace, self.node_agents_namespace}) == 3,
               "MonitoringStackArgs: namespace, app_namespace and node_agents_namespace must differ "
               "(the node agents need a weaker Pod Security level than everything else)")
        _check(1 <= self.kube_state_metrics_replicas <= 3,
               f"MonitoringStackArgs.kube_state_metrics_replicas must be 1-3, got {self.kube_state_metrics_replicas}")
        jobs = [t.job for t in self.scrape_targets]
        duplicates = sorted({j for j in jobs if jobs.count(j) > 1} | (set(jobs) & RESERVED_JOBS))
        _check(not duplicates, f"MonitoringStackArgs.scrape_targets: job names {duplicates} are duplicated or reserved")
        _check(not self.gateway_metrics or self.gateway_namespace is not None,
               "MonitoringStackArgs.gateway_metrics needs gateway_namespace (where the proxies run)")

    @property
    def node_agents(self) -> bool:
        return self.node_exporter or self.loki is not None


# Jobs the stack defines itself; a ScrapeTarget may not reuse them.
RESERVED_JOBS = frozenset(
    {"prometheus", "alertmanager", "grafana", "loki", "alloy", "node-exporter", "kube-state-metrics",
     "kubelet", "kubelet-cadvisor", "kubernetes-pods", "gateway"}
)
