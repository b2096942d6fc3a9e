"""PostgresCluster: PostgreSQL for the content engine.

Two modes, chosen by data:
- "statefulset": the official image; a primary StatefulSet and an optional
  streaming-replica StatefulSet, exporter sidecars, tuning as a ConfigMap.
- "cloudnative-pg": a CloudNativePG `Cluster` with the Barman Cloud plugin
  (`ObjectStore`) for S3 base backups + WAL archiving (PITR) and a
  `ScheduledBackup`; the operator and plugin optionally installed here.

Either way the apps get the same Secret: `<name>-app` with keys username,
password, database, host, port and url (DATABASE_URL).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import kube, secret_files
from components.addons import CHARTS, CNPG_REPOSITORY
from components.credentials import generated_password

PORT = 5432
IMAGE = "docker.io/library/postgres:17.6"
CLOUDNATIVE_PG_IMAGE = "ghcr.io/cloudnative-pg/postgresql:17.6"
EXPORTER_IMAGE = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
EXPORTER_PORT = 9187  # postgres_exporter, and CloudNativePG's built-in metrics port
CONF_DIR = "/etc/postgresql/conf.d"
SECRETS_DIR = "/run/secrets/postgres"  # the credentials Secret, one file per password
PGDATA = "/var/lib/postgresql/data/pgdata"  # a subdirectory, so the volume's lost+found is not in it

# Seed 000/001 tuning. Logs go to stderr (the log agent ships them), not to
# files inside the data volume as the seed's logging_collector did.
SEED_PARAMETERS: dict[str, str] = {
    "max_connections": "200",
    "shared_buffers": "256MB",
    "effective_cache_size": "1GB",
    "maintenance_work_mem": "64MB",
    "checkpoint_completion_target": "0.9",
    "wal_buffers": "16MB",
    "default_statistics_target": "100",
    "random_page_cost": "1.1",
    "effective_io_concurrency": "200",
    "work_mem": "4MB",
    "min_wal_size": "1GB",
    "max_wal_size": "4GB",
    "log_min_duration_statement": "1000",
    "log_checkpoints": "on",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_lock_waits": "on",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "pg_stat_statements.max": "10000",
    "pg_stat_statements.track": "all",
}
# Only the statefulset mode sets these; CloudNativePG manages them itself.
STATEFULSET_ONLY_PARAMETERS: dict[str, str] = {
    "listen_addresses": "*",
    "shared_preload_libraries": "pg_stat_statements",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "wal_keep_size": "1GB",
    "hot_standby": "on",
    "logging_collector": "off",
    "log_destination": "stderr",
}


@dataclass(frozen=True)
class PostgresStorage:
    size: str = "20Gi"
    storage_class: str | None = None  # None: the cluster's default StorageClass


@dataclass(frozen=True)
class S3Credentials:
    """Static S3 keys in a Secret; leave unset to use the pod's IAM role (IRSA)."""

    secret_name: pulumi.Input[str]
    access_key_id_key: str = "ACCESS_KEY_ID"
    secret_access_key_key: str = "ACCESS_SECRET_KEY"


@dataclass(frozen=True)
class ObjectStoreBackup:
    """CloudNativePG continuous backup: base backups + WAL archive in S3 (PITR)."""

    bucket: pulumi.Input[str]
    prefix: str = "postgres"  # the archive lives under s3://<bucket>/<prefix>/<server name>/
    retention_days: int = 30
    schedule: str = "0 0 2 * * *"  # CloudNativePG cron has seconds: daily base backup at 02:00
    endpoint_url: pulumi.Input[str] | None = None  # an S3-compatible server; None: AWS S3
    credentials: S3Credentials | None = None  # None: IAM role of the service account
    service_account_role_arn: pulumi.Input[str] | None = None  # IRSA annotation on the cluster's pods

    def __post_init__(self) -> None:
        if not re.match(r"^[a-z0-9][a-z0-9/_-]*[a-z0-9]$", self.prefix):
            raise ValueError(f"ObjectStoreBackup.prefix must be a plain S3 key prefix, got {self.prefix!r}")
        if self.retention_days < 1:
            raise ValueError("ObjectStoreBackup.retention_days must be >= 1")


@dataclass(frozen=True)
class Recovery:
    """Bootstrap a new CloudNativePG cluster from the backups in the object store, optionally to a point in time."""

    source_server_name: str  # the archive to recover from (the old cluster's server name)
    target_time: str | None = None  # RFC 3339, e.g. "2026-11-24T05:00:00Z"; None: the end of the WAL

    def __post_init__(self) -> None:
        if self.target_time is not None and not re.match(
            r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$", self.target_time
        ):
            raise ValueError(f"Recovery.target_time must be RFC 3339 with a zone, got {self.target_time!r}")


@dataclass(frozen=True)
class Operator:
    """Install the CloudNativePG operator and Barman Cloud plugin with Helm (pinned in
    components/addons.py CHARTS), or assume them present."""

    install: bool = True
    namespace: str = CHARTS["cloudnative-pg"].namespace
    chart_version: str = CHARTS["cloudnative-pg"].version
    plugin_chart_version: str = CHARTS["plugin-barman-cloud"].version
    repository: str = CNPG_REPOSITORY
    # The plugin's chart renders cert-manager Issuer/Certificate objects: it waits for these
    # (cert-manager's release, when the stack installs it).
    plugin_after: Sequence[pulumi.Resource] = ()


@dataclass(frozen=True)
class PostgresClusterArgs:
    namespace: str
    environment: str
    mode: Literal["statefulset", "cloudnative-pg"] = "statefulset"
    name: str = "postgres"
    instances: int = 1  # statefulset: 1 primary + (instances - 1) streaming replicas
    image: str = IMAGE
    database: str = "content_engine"
    app_user: str = "aquascene"
    readonly_user: str = "grafana"  # dashboards and reports: pg_read_all_data, nothing else
    storage: PostgresStorage = PostgresStorage()
    resources: kube.Resources = kube.RESOURCE_PRESETS["medium"]
    parameters: Mapping[str, str] = field(default_factory=lambda: dict(SEED_PARAMETERS))
    exporter_image: str = EXPORTER_IMAGE
    clients: Sequence[kube.NetworkPeer] = ()  # apps and backup jobs: port 5432
    scrapers: Sequence[kube.NetworkPeer] = ()  # Prometheus: the metrics port
    # cloudnative-pg only
    backup: ObjectStoreBackup | None = None
    server_name: str | None = None  # name of this cluster's archive in the bucket (default: `name`)
    recovery: Recovery | None = None  # bootstrap from the archive instead of an empty initdb
    operator: Operator = Operator()
    zone_anti_affinity: Literal["preferred", "required"] = "preferred"

    def __post_init__(self) -> None:
        if self.mode not in ("statefulset", "cloudnative-pg"):
            raise ValueError(f"PostgresClusterArgs.mode must be 'statefulset' or 'cloudnative-pg', got {self.mode!r}")
        if self.instances < 1:
            raise ValueError(f"PostgresClusterArgs.instances must be >= 1, got {self.instances}")
        if self.mode == "statefulset" and self.backup is not None:
            raise ValueError("PostgresClusterArgs.backup needs mode 'cloudnative-pg' (statefulset mode uses backup CronJobs)")
        if self.recovery is not None and self.backup is None:
            raise ValueError("PostgresClusterArgs.recovery needs backup (the object store to recover from)")
        if self.recovery is not None and self.recovery.source_server_name == (self.server_name or self.name):
            raise ValueError(
                "PostgresClusterArgs.server_name must differ from recovery.source_server_name: "
                "a recovered cluster archives to a new place and never overwrites the backups it came from"
            )
        for key in ("shared_preload_libraries", "listen_addresses"):
            if key in self.parameters:
                raise ValueError(f"PostgresClusterArgs.parameters: {key} is managed by the component")


class PostgresCluster(pulumi.ComponentResource):
    host: pulumi.Output[str]  # read-write
    read_only_host: pulumi.Output[str]
    port: int
    database: str
    secret_name: str  # the app Secret
    url_key: str = "url"

    def __init__(self, name: str, args: PostgresClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:data:PostgresCluster", name, None, opts)
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        self.identity = kube.Identity(name=args.name, component="database", environment=args.environment,
                                      version=kube.image_version(args.image))
        self.port = PORT
        self.database = args.database
        self.cluster_name = args.name
        self.app_user = args.app_user
        self.cluster_resource: pulumi.Resource | None = None  # cloudnative-pg: the `Cluster` (for its Pooler)
        self.secret_name = f"{args.name}-app"
        self.app_password = generated_password(f"{name}-app-password", self)
        self.readonly_user = args.readonly_user
        self.readonly_password = generated_password(f"{name}-readonly-password", self)
        self.tls = args.mode == "cloudnative-pg"  # CloudNativePG serves TLS; the plain image does not

        if args.mode == "statefulset":
            rw, ro = self._statefulset_mode()
        else:
            rw, ro = self._cloudnative_pg_mode()
        self.host = pulumi.Output.from_input(kube.cluster_dns(rw, args.namespace))
        self.read_only_host = pulumi.Output.from_input(kube.cluster_dns(ro, args.namespace))
        self.app_secret = self._app_secret()
        self.register_outputs({
            "host": self.host, "read_only_host": self.read_only_host, "port": self.port,
            "database": self.database, "secret_name": self.secret_name,
        })

    # ------------------------------------------------------------------ shared

    def _meta(self, name: str, labels: Mapping[str, str] | None = None, annotations=None) -> dict:
        return kube.metadata(name, self._args.namespace, labels or self.identity.labels(), annotations)

    def _app_secret(self) -> k8s.core.v1.Secret:
        a = self._args
        url = pulumi.Output.all(self.app_password, self.host).apply(
            lambda v: f"postgresql://{a.app_user}:{urllib.parse.quote(v[0], safe='')}@{v[1]}:{PORT}/{a.database}"
        )
        return k8s.core.v1.Secret(
            f"{self._name}-app-secret",
            metadata=self._meta(self.secret_name),
            # basic-auth: the type CloudNativePG expects for the initdb owner secret.
            type="kubernetes.io/basic-auth",
            string_data={
                "username": a.app_user,
                "password": self.app_password,
                "database": a.database,
                "host": self.host,
                "port": str(PORT),
                "url": pulumi.Output.secret(url),
            },
            opts=self._child,
        )

    def _network_policy(self, selector: Mapping[str, str], extra_ingress: Sequence[kube.NetworkPeer],
                        egress: Sequence[kube.NetworkPeer]) -> None:
        a = self._args
        own_pods = kube.NetworkPeer(pod_labels=selector, ports=[PORT])
        spec = kube.network_policy_spec(selector, [], [], [own_pods, *egress])
        spec["ingress"] = (
            [p.rule("from", [PORT]) for p in [*a.clients, own_pods]]
            + [p.rule("from", [EXPORTER_PORT]) for p in a.scrapers]
            + [p.rule("from") for p in extra_ingress]
        )
        k8s.networking.v1.NetworkPolicy(f"{self._name}-netpol", metadata=self._meta(a.name), spec=spec, opts=self._child)

    # -------------------------------------------------------------- statefulset

    def _statefulset_mode(self) -> tuple[str, str]:
        a = self._args
        superuser = generated_password(f"{self._name}-superuser-password", self)
        replication = generated_password(f"{self._name}-replication-password", self)
        metrics = generated_password(f"{self._name}-metrics-password", self)
        credentials = f"{a.name}-credentials"
        k8s.core.v1.Secret(
            f"{self._name}-credentials",
            metadata=self._meta(credentials),
            string_data={
                "superuser-password": superuser,
                "replication-password": replication,
                "metrics-password": metrics,
                "app-password": self.app_password,
                "readonly-password": self.readonly_password,
            },
            opts=self._child,
        )
        parameters = {**STATEFULSET_ONLY_PARAMETERS, **a.parameters}
        conf = "".join(f"{k} = '{v}'\n" for k, v in sorted(parameters.items()))
        config_name = f"{a.name}-config"
        k8s.core.v1.ConfigMap(
            f"{self._name}-config",
            metadata=self._meta(config_name),
            data={"tuning.conf": conf, "init-primary.sh": _INIT_PRIMARY, "start-replica.sh": _START_REPLICA},
            opts=self._child,
        )
        base = self.identity.selector()
        primary_sel = {**base, "aquascene.io/role": "primary"}
        replica_sel = {**base, "aquascene.io/role": "replica"}
        headless = f"{a.name}-headless"
        primary_host = f"{a.name}-primary-0.{headless}"
        self._service(f"{a.name}-headless", base, headless=True)
        self._service(a.name, primary_sel)
        replicas = a.instances - 1
        self._statefulset("primary", 1, primary_sel, credentials, config_name, headless, conf, primary_host)
        read_only = a.name
        if replicas:
            self._statefulset("replica", replicas, replica_sel, credentials, config_name, headless, conf, primary_host)
            read_only = f"{a.name}-ro"
            self._service(read_only, replica_sel)
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-pdb",
            metadata=self._meta(a.name),
            # One pod at a time: with a single instance a drain still proceeds (no deadlock).
            spec={"maxUnavailable": 1, "selector": {"matchLabels": base}},
            opts=self._child,
        )
        self._network_policy(base, [], [])
        return a.name, read_only

    def _service(self, name: str, selector: Mapping[str, str], headless: bool = False) -> None:
        ports = {"postgres": PORT} if headless else {"postgres": PORT, "metrics": EXPORTER_PORT}
        k8s.core.v1.Service(f"{self._name}-svc-{name}", metadata=self._meta(name),
                            spec=kube.service_spec(selector, ports, headless=headless), opts=self._child)

    def _statefulset(self, role: str, replicas: int, selector: Mapping[str, str], credentials: str,
                     config_name: str, headless: str, conf: str, primary_host: str) -> None:
        a = self._args
        labels = {**self.identity.labels(), "aquascene.io/role": role}
        tmp_volume, tmp_mount = kube.tmp_volume()
        run_volume = kube.scratch_volume("run")
        mounts = [
            {"name": "data", "mountPath": "/var/lib/postgresql/data"},
            {"name": "config", "mountPath": CONF_DIR, "readOnly": True},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            tmp_mount,
        ]
        env = [
            {"name": "PGDATA", "value": PGDATA},
            {"name": "POSTGRES_DB", "value": a.database},
            {"name": "POSTGRES_USER", "value": "postgres"},
            # The official image's *_FILE form; the init and replica scripts read their files too.
            {"name": "POSTGRES_PASSWORD_FILE", "value": f"{SECRETS_DIR}/superuser-password"},
            {"name": "SECRETS_DIR", "value": SECRETS_DIR},
            {"name": "APP_USER", "value": a.app_user},
            {"name": "READONLY_USER", "value": a.readonly_user},
            {"name": "PRIMARY_HOST", "value": primary_host},
        ]
        secrets_mount = {"name": "credentials", "mountPath": SECRETS_DIR, "readOnly": True}
        mounts.append(secrets_mount)
        if role == "primary":
            command = None
            mounts.append({"name": "config", "mountPath": "/docker-entrypoint-initdb.d/10-init.sh",
                           "subPath": "init-primary.sh", "readOnly": True})
        else:
            command = ["bash", f"{CONF_DIR}/start-replica.sh"]
        postgres = {
            "name": "postgres",
            "image": a.image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "postgres", "containerPort": PORT, "protocol": "TCP"}],
            "env": env,
            "resources": a.resources.render(),
            "securityContext": kube.container_security_context(),
            "volumeMounts": mounts,
            "livenessProbe": kube.exec_probe(["pg_isready", "-h", "127.0.0.1", "-p", str(PORT)], kube.LIVENESS),
            # Readiness runs a real query over the local socket: up *and* answering.
            "readinessProbe": kube.exec_probe(
                ["psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", "postgres", "-tAc", "SELECT 1"],
                kube.READINESS),
            "startupProbe": kube.exec_probe(["pg_isready", "-h", "127.0.0.1", "-p", str(PORT)],
                                            kube.startup_timing(600)),
        }
        if command:
            postgres["command"] = command
        exporter = kube.exporter_sidecar(a.exporter_image, EXPORTER_PORT, [
            {"name": "DATA_SOURCE_URI", "value": f"127.0.0.1:{PORT}/postgres?sslmode=disable"},
            {"name": "DATA_SOURCE_USER", "value": "metrics"},
            {"name": "DATA_SOURCE_PASS_FILE", "value": f"{SECRETS_DIR}/metrics-password"},
        ])
        exporter["volumeMounts"] = [secrets_mount]
        pod_spec = {
            "automountServiceAccountToken": False,
            "securityContext": kube.pod_security_context(),
            "terminationGracePeriodSeconds": 60,  # let postgres finish a fast shutdown
            "containers": [postgres, exporter],
            "volumes": [
                {"name": "config", "configMap": {"name": config_name, "defaultMode": 0o555}},
                secret_files.secret_volume("credentials", credentials, SECRETS_DIR)[0],
                run_volume,
                tmp_volume,
            ],
        }
        if replicas > 1 or role == "replica":
            pod_spec.update(kube.spread_across_nodes_and_zones(self.identity.selector()))
        annotations = {**kube.scrape_annotations(EXPORTER_PORT), "checksum/config": kube.content_checksum(conf)}
        k8s.apps.v1.StatefulSet(
            f"{self._name}-{role}",
            metadata=self._meta(f"{a.name}-{role}", labels),
            spec={
                "serviceName": headless,
                "replicas": replicas,
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate"},
                "selector": {"matchLabels": dict(selector)},
                "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
                "volumeClaimTemplates": [
                    kube.volume_claim_template("data", a.storage.size, a.storage.storage_class, self.identity.selector())
                ],
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            },
            opts=self._child,
        )

    # ---------------------------------------------------------- cloudnative-pg

    def _cloudnative_pg_mode(self) -> tuple[str, str]:
        a = self._args
        depends: list[pulumi.Resource] = []
        if a.operator.install:
            depends = self._install_operator()
        else:
            # A platform team runs the operator: look up what it serves, so a preview fails at once
            # on a cluster without it (the same as the cluster add-ons with install: false).
            crds = ["clusters.postgresql.cnpg.io"] + (["objectstores.barmancloud.cnpg.io"] if a.backup else [])
            for crd in crds:
                k8s.apiextensions.v1.CustomResourceDefinition.get(
                    f"{self._name}-{crd.split('.')[0]}-crd-present", crd, opts=pulumi.ResourceOptions(parent=self))
        cluster_opts = pulumi.ResourceOptions(parent=self, depends_on=depends)
        plugins = []
        if a.backup is not None:
            store_name = f"{a.name}-backups"
            self._object_store(store_name, a.backup, cluster_opts)
            plugins = [{
                "name": "barman-cloud.cloudnative-pg.io",
                "isWALArchiver": True,
                "parameters": {"barmanObjectName": store_name, "serverName": a.server_name or a.name},
            }]
        spec: dict = {
            "instances": a.instances,
            "imageName": a.image,
            "primaryUpdateStrategy": "unsupervised",
            "postgresql": {"parameters": dict(a.parameters)},
            "bootstrap": {
                "initdb": {
                    "database": a.database,
                    "owner": a.app_user,
                    "secret": {"name": self.secret_name},
                    "postInitSQL": [f'ALTER ROLE "{a.app_user}" CREATEDB'],  # restores build a fresh database
                    "postInitApplicationSQL": ["CREATE EXTENSION IF NOT EXISTS pg_stat_statements"],
                }
            },
            "storage": {"size": a.storage.size, **({"storageClass": a.storage.storage_class} if a.storage.storage_class else {})},
            "resources": a.resources.render(),
            "affinity": {
                "enablePodAntiAffinity": True,
                "topologyKey": "topology.kubernetes.io/zone",
                "podAntiAffinityType": a.zone_anti_affinity,
            },
            # Prometheus discovers pods by annotation; CloudNativePG serves metrics on 9187.
            "inheritedMetadata": {"labels": self.identity.labels(), "annotations": kube.scrape_annotations(EXPORTER_PORT)},
            "monitoring": {"enablePodMonitor": False},
            "plugins": plugins,
            # Declarative roles: the read-only user for dashboards, its password from a Secret.
            # The app owner too: CloudNativePG then keeps its password equal to the Secret's, so
            # `pulumi up --replace` on the generated password rotates it in the database as well.
            "managed": {"roles": [{
                "name": a.readonly_user, "ensure": "present", "login": True,
                "inRoles": ["pg_read_all_data"], "passwordSecret": {"name": f"{a.name}-readonly"},
            }, {
                "name": a.app_user, "ensure": "present", "login": True, "createdb": True,
                "passwordSecret": {"name": self.secret_name},
            }]},
        }
        k8s.core.v1.Secret(
            f"{self._name}-readonly",
            metadata=self._meta(f"{a.name}-readonly"),
            type="kubernetes.io/basic-auth",
            string_data={"username": a.readonly_user, "password": self.readonly_password},
            opts=self._child,
        )
        if a.recovery is not None:
            recovery: dict = {"source": "origin", "database": a.database, "owner": a.app_user,
                              "secret": {"name": self.secret_name}}
            if a.recovery.target_time:
                recovery["recoveryTarget"] = {"targetTime": a.recovery.target_time}
            spec["bootstrap"] = {"recovery": recovery}
            spec["externalClusters"] = [{
                "name": "origin",
                "plugin": {
                    "name": "barman-cloud.cloudnative-pg.io",
                    "parameters": {"barmanObjectName": f"{a.name}-backups",
                                   "serverName": a.recovery.source_server_name},
                },
            }]
        if a.backup is not None and a.backup.service_account_role_arn is not None:
            spec["serviceAccountTemplate"] = {
                "metadata": {"annotations": {"eks.amazonaws.com/role-arn": a.backup.service_account_role_arn}}
            }
        cluster = k8s.apiextensions.CustomResource(
            f"{self._name}-cluster",
            api_version="postgresql.cnpg.io/v1",
            kind="Cluster",
            metadata=self._meta(a.name),
            spec=spec,
            opts=cluster_opts,
        )
        self.cluster_resource = cluster
        if a.backup is not None:
            k8s.apiextensions.CustomResource(
                f"{self._name}-scheduled-backup",
                api_version="postgresql.cnpg.io/v1",
                kind="ScheduledBackup",
                metadata=self._meta(f"{a.name}-daily"),
                spec={
                    "schedule": a.backup.schedule,
                    "immediate": True,
                    "backupOwnerReference": "self",
                    "cluster": {"name": a.name},
                    "method": "plugin",
                    "pluginConfiguration": {"name": "barman-cloud.cloudnative-pg.io"},
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster]),
            )
        # No PodDisruptionBudget here: CloudNativePG creates the cluster's PDBs itself.
        operator_peer = kube.NetworkPeer(namespace=a.operator.namespace, ports=[PORT, 8000])
        # Instances talk to the Kubernetes API (instance manager) and to S3 (WAL archive) over HTTPS.
        api_and_s3 = kube.NetworkPeer(cidr="0.0.0.0/0", ports=[443, 6443])
        self._network_policy(self.identity.selector(), [operator_peer], [api_and_s3])
        return f"{a.name}-rw", f"{a.name}-ro"

    def _install_operator(self) -> list[pulumi.Resource]:
        op = self._args.operator
        opts = pulumi.ResourceOptions(parent=self)
        operator = k8s.helm.v3.Release(
            f"{self._name}-cnpg-operator",
            name="cnpg",
            chart="cloudnative-pg",
            version=op.chart_version,
            namespace=op.namespace,
            create_namespace=True,
            repository_opts={"repo": op.repository},
            atomic=True,
            opts=opts,
        )
        plugin = k8s.helm.v3.Release(
            f"{self._name}-barman-cloud-plugin",
            name="plugin-barman-cloud",
            chart="plugin-barman-cloud",
            version=op.plugin_chart_version,
            namespace=op.namespace,
            repository_opts={"repo": op.repository},
            atomic=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[operator, *op.plugin_after]),
        )
        return [operator, plugin]

    def _object_store(self, store_name: str, backup: ObjectStoreBackup, opts: pulumi.ResourceOptions) -> None:
        configuration: dict = {
            "destinationPath": pulumi.Output.concat("s3://", backup.bucket, "/", backup.prefix),
            "wal": {"compression": "gzip", "maxParallel": 4},
            "data": {"compression": "gzip", "jobs": 2},
        }
        if backup.endpoint_url:
            configuration["endpointURL"] = backup.endpoint_url
        if backup.credentials is not None:
            c = backup.credentials
            configuration["s3Credentials"] = {
                "accessKeyId": {"name": c.secret_name, "key": c.access_key_id_key},
                "secretAccessKey": {"name": c.secret_name, "key": c.secret_access_key_key},
            }
        else:
            configuration["s3Credentials"] = {"inheritFromIAMRole": True}
        k8s.apiextensions.CustomResource(
            f"{self._name}-object-store",
            api_version="barmancloud.cnpg.io/v1",
            kind="ObjectStore",
            metadata=self._meta(store_name),
            spec={"configuration": configuration, "retentionPolicy": f"{backup.retention_days}d"},
            opts=opts,
        )


# Runs once, when the primary's data directory is initialised (docker-entrypoint-initdb.d).
# Passwords come from the mounted Secret's files (psql reads them), never from the environment
# or a command line.
_INIT_PRIMARY = r"""#!/bin/bash
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\getenv app_user APP_USER
\set app_password `cat "$SECRETS_DIR/app-password"`
\set replication_password `cat "$SECRETS_DIR/replication-password"`
\set metrics_password `cat "$SECRETS_DIR/metrics-password"`
\getenv readonly_user READONLY_USER
\set readonly_password `cat "$SECRETS_DIR/readonly-password"`
-- CREATEDB: a restore builds a fresh database and swaps it in only after verifying it.
CREATE ROLE :"app_user" LOGIN CREATEDB PASSWORD :'app_password';
ALTER DATABASE :"POSTGRES_DB" OWNER TO :"app_user";
GRANT ALL ON SCHEMA public TO :"app_user";
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'replication_password';
CREATE ROLE metrics LOGIN PASSWORD :'metrics_password' IN ROLE pg_monitor;
CREATE ROLE :"readonly_user" LOGIN PASSWORD :'readonly_password' IN ROLE pg_read_all_data;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
echo "include_dir = '/etc/postgresql/conf.d'" >> "$PGDATA/postgresql.conf"
"""

# A replica clones the primary once (pg_basebackup -R writes standby.signal), then runs as a hot standby.
_START_REPLICA = r"""#!/bin/bash
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h "$PRIMARY_HOST" -p 5432; do echo "waiting for $PRIMARY_HOST"; sleep 2; done
  PGPASSWORD="$(cat "$SECRETS_DIR/replication-password")" pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream -P
  chmod 700 "$PGDATA"
fi
exec postgres
"""
