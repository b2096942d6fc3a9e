"""ConnectionPooler: PgBouncer in front of PostgreSQL, so many app pods share few server connections.

Two kinds, chosen by data:
- "pgbouncer": a Deployment of CloudNativePG's PgBouncer image (the operand image the
  operator itself runs, built from upstream PgBouncer on Debian, pinned), configured by
  a ConfigMap, its user list a mounted Secret file; restricted, probed, spread, a PDB
  when replicated and a NetworkPolicy that admits only the apps.
- "cloudnative-pg": CloudNativePG's `Pooler` resource in front of the cluster's `rw`
  Service; the operator runs the PgBouncer pods and authenticates them itself.

Either way the apps get one Secret, `<name>-app`, whose `url` goes through the pooler.
Transaction pooling: a client's consecutive transactions may run on different server
connections, so the client must not rely on session state (prepared statements, SET,
advisory locks across transactions). The content engine disables server-side prepares.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Literal, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import kube

PORT = 5432  # the same port as PostgreSQL: a client changes its host, nothing else
# CloudNativePG's PgBouncer operand image: upstream PgBouncer, rebuilt on Debian security updates.
IMAGE = "ghcr.io/cloudnative-pg/pgbouncer:1.24.1"
CONFIG_DIR = "/etc/pgbouncer"
SECRET_DIR = "/etc/pgbouncer/auth"
METRICS_PORT = 9127  # CloudNativePG's pooler exporter


@dataclass(frozen=True)
class PoolSettings:
    """What `postgres.pooler` configures (stacks/config.py checks the connection budget)."""

    pool_mode: Literal["transaction", "session"] = "transaction"
    default_pool_size: int = 25  # server connections per instance (one database/user pair)
    max_client_conn: int = 1000  # client connections per instance
    instances: int = 2

    def __post_init__(self) -> None:
        for name in ("default_pool_size", "max_client_conn", "instances"):
            if getattr(self, name) < 1:
                raise ValueError(f"PoolSettings.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def server_connections(self) -> int:
        """The most connections all instances together open to PostgreSQL."""
        return self.instances * self.default_pool_size


@dataclass(frozen=True)
class ConnectionPoolerArgs:
    namespace: str
    environment: str
    kind: Literal["pgbouncer", "cloudnative-pg"]
    server_host: pulumi.Input[str]  # pgbouncer: the read-write Service's DNS name
    cluster_name: str  # cloudnative-pg: the `Cluster` to pool
    database: str
    user: str
    password: pulumi.Input[str]
    settings: PoolSettings = PoolSettings()
    name: str = "postgres-pooler"
    image: str = IMAGE
    sslmode: str = "disable"  # what the apps' URL asks of the pooler
    server_port: int = 5432
    resources: kube.Resources = kube.RESOURCE_PRESETS["small"]
    clients: Sequence[kube.NetworkPeer] = ()  # who may connect (the apps)
    scrapers: Sequence[kube.NetworkPeer] = ()  # cloudnative-pg: Prometheus, on the pooler's exporter port
    server: kube.NetworkPeer | None = None  # pgbouncer: the PostgreSQL pods it may reach
    depends_on: Sequence[pulumi.Resource] = ()  # cloudnative-pg: the Cluster (and what serves its CRD)

    def __post_init__(self) -> None:
        if self.kind not in ("pgbouncer", "cloudnative-pg"):
            raise ValueError(f"ConnectionPoolerArgs.kind must be 'pgbouncer' or 'cloudnative-pg', got {self.kind!r}")
        if self.kind == "pgbouncer" and self.server is None:
            raise ValueError("ConnectionPoolerArgs.server is required for kind 'pgbouncer' (its egress peer)")


class ConnectionPooler(pulumi.ComponentResource):
    host: pulumi.Output[str]
    port: int
    secret_name: str  # `url`: the apps' DATABASE_URL through the pooler
    peer: kube.NetworkPeer  # what an app's egress must allow

    def __init__(self, name: str, args: ConnectionPoolerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:data:ConnectionPooler", name, None, opts)
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        self.identity = identity(args.name, args.environment, args.image)
        self.port = PORT
        self.secret_name = f"{args.name}-app"
        # Both kinds label their pods with the identity (the Pooler through its pod template).
        pod_labels = self.identity.selector()
        if args.kind == "pgbouncer":
            self._pgbouncer()
        else:
            self._cloudnative_pg(pod_labels)
        self.pod_labels = pod_labels
        self.peer = kube.NetworkPeer(pod_labels=pod_labels, ports=[PORT])
        self.host = pulumi.Output.from_input(kube.cluster_dns(args.name, args.namespace))
        self.secret = self._app_secret()
        self.register_outputs({"host": self.host, "port": self.port, "secret_name": self.secret_name})

    def _meta(self, name: str, annotations=None) -> dict:
        return kube.metadata(name, self._args.namespace, self.identity.labels(), annotations)

    def _app_secret(self) -> k8s.core.v1.Secret:
        a = self._args
        url = pulumi.Output.all(a.password, self.host).apply(
            lambda v: f"postgresql://{a.user}:{urllib.parse.quote(v[0], safe='')}@{v[1]}:{PORT}/{a.database}"
            + (f"?sslmode={a.sslmode}" if a.sslmode != "disable" else "")
        )
        return k8s.core.v1.Secret(
            f"{self._name}-app-secret",
            metadata=self._meta(self.secret_name),
            string_data={"url": pulumi.Output.secret(url)},
            opts=self._child,
        )

    # ---------------------------------------------------------------- pgbouncer

    def _pgbouncer(self) -> None:
        a = self._args
        selector = self.identity.selector()
        config_name = f"{a.name}-config"
        auth_name = f"{a.name}-auth"
        ini = pulumi.Output.from_input(a.server_host).apply(lambda host: pgbouncer_ini(
            {a.database: f"host={host} port={a.server_port} dbname={a.database}"}, a.settings))
        k8s.core.v1.ConfigMap(f"{self._name}-config", metadata=self._meta(config_name),
                              data={"pgbouncer.ini": ini}, opts=self._child)
        # PgBouncer authenticates the apps against this list and logs in to PostgreSQL with the
        # same password (SCRAM both ways); it is a file, never an environment variable.
        userlist = pulumi.Output.from_input(a.password).apply(lambda p: f'"{a.user}" "{p}"\n')
        k8s.core.v1.Secret(f"{self._name}-auth", metadata=self._meta(auth_name),
                           string_data={"userlist.txt": pulumi.Output.secret(userlist)}, opts=self._child)
        tmp_volume, tmp_mount = kube.tmp_volume("64Mi")
        container = {
            "name": "pgbouncer",
            "image": a.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["pgbouncer", f"{CONFIG_DIR}/pgbouncer.ini"],
            "ports": [{"name": "postgres", "containerPort": PORT, "protocol": "TCP"}],
            "resources": a.resources.render(),
            "securityContext": kube.container_security_context(),
            "volumeMounts": [
                {"name": "config", "mountPath": f"{CONFIG_DIR}/pgbouncer.ini", "subPath": "pgbouncer.ini",
                 "readOnly": True},
                {"name": "auth", "mountPath": SECRET_DIR, "readOnly": True},
                tmp_mount,
            ],
            # Liveness: the listener accepts; readiness: also checked often, so a stuck
            # instance leaves the Service quickly. (PgBouncer has no HTTP health endpoint.)
            "livenessProbe": kube.tcp_probe("postgres", kube.LIVENESS),
            "readinessProbe": kube.tcp_probe("postgres", kube.READINESS),
            # Let in-flight transactions finish: SIGTERM is PgBouncer's "shut down safely".
            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        }
        pod_spec: dict = {
            "automountServiceAccountToken": False,
            "securityContext": kube.pod_security_context(),
            "terminationGracePeriodSeconds": 30,
            "containers": [container],
            "volumes": [
                {"name": "config", "configMap": {"name": config_name, "defaultMode": 0o444}},
                {"name": "auth", "secret": {"secretName": auth_name, "defaultMode": 0o400}},
                tmp_volume,
            ],
        }
        replicated = a.settings.instances > 1
        if replicated:
            pod_spec.update(kube.spread_across_nodes_and_zones(selector))
        # A changed config or a rotated password rolls the pods. A SHA-256 of a generated password
        # reveals nothing, so it need not be secret (a secret annotation would hide the whole spec).
        annotations = {"checksum/config": ini.apply(kube.content_checksum),
                       "checksum/auth": pulumi.Output.unsecret(userlist.apply(kube.content_checksum))}
        k8s.apps.v1.Deployment(
            f"{self._name}-deployment",
            metadata=self._meta(a.name),
            spec={
                "replicas": a.settings.instances,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {"metadata": {"labels": self.identity.labels(), "annotations": annotations},
                             "spec": pod_spec},
            },
            opts=self._child,
        )
        k8s.core.v1.Service(f"{self._name}-service", metadata=self._meta(a.name),
                            spec=kube.service_spec(selector, {"postgres": PORT}), opts=self._child)
        if replicated:
            k8s.policy.v1.PodDisruptionBudget(
                f"{self._name}-pdb", metadata=self._meta(a.name),
                spec={"minAvailable": 1, "selector": {"matchLabels": selector}}, opts=self._child)
        assert a.server is not None
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-netpol", metadata=self._meta(a.name),
            spec=kube.network_policy_spec(selector, a.clients, [PORT], [a.server]), opts=self._child)

    # ------------------------------------------------------------ cloudnative-pg

    def _cloudnative_pg(self, pod_labels: dict[str, str]) -> None:
        a, s = self._args, self._args.settings
        pooler_opts = pulumi.ResourceOptions(parent=self, depends_on=list(a.depends_on))
        k8s.apiextensions.CustomResource(
            f"{self._name}-pooler",
            api_version="postgresql.cnpg.io/v1",
            kind="Pooler",
            metadata=self._meta(a.name),
            spec={
                "cluster": {"name": a.cluster_name},
                "instances": s.instances,
                "type": "rw",
                "pgbouncer": {
                    "poolMode": s.pool_mode,
                    "parameters": {
                        "max_client_conn": str(s.max_client_conn),
                        "default_pool_size": str(s.default_pool_size),
                        "ignore_startup_parameters": "extra_float_digits,options",
                    },
                },
                "monitoring": {"enablePodMonitor": False},
                "template": {
                    "metadata": {"labels": self.identity.labels(),
                                 "annotations": kube.scrape_annotations(METRICS_PORT)},
                    "spec": {
                        "containers": [{"name": "pgbouncer", "resources": a.resources.render()}],
                        **({"topologySpreadConstraints": kube.spread_across_nodes_and_zones(
                            pod_labels)["topologySpreadConstraints"]} if s.instances > 1 else {}),
                    },
                },
            },
            opts=pooler_opts,
        )
        # The operator creates the Deployment, Service and PDB, never a NetworkPolicy: open what the
        # pods serve (apps on 5432, Prometheus on the exporter port) and what they reach.
        api = kube.NetworkPeer(cidr="0.0.0.0/0", ports=[443, 6443])
        server = kube.NetworkPeer(pod_labels={"cnpg.io/cluster": a.cluster_name}, ports=[a.server_port])
        spec = kube.network_policy_spec(pod_labels, a.clients, [PORT], [server, api])
        spec["ingress"] += [p.rule("from", [METRICS_PORT]) for p in a.scrapers]
        k8s.networking.v1.NetworkPolicy(f"{self._name}-netpol", metadata=self._meta(a.name), spec=spec,
                                        opts=self._child)


COMPONENT = "database-pooler"


def identity(name: str, environment: str, image: str = IMAGE) -> kube.Identity:
    """The pooler's identity; its selector is known before the pooler exists (PostgreSQL admits it)."""
    return kube.Identity(name=name, component=COMPONENT, environment=environment, version=kube.image_version(image))


def _main(argv: list[str]) -> None:
    """python -m components.pooler PG_PORT LISTEN_PORT DIR USER: the CI PgBouncer's pgbouncer.ini on stdout."""
    pg_port, listen_port, directory, user = argv
    print(pgbouncer_ini(
        {"*": f"host=127.0.0.1 port={pg_port}"}, PoolSettings(default_pool_size=20, max_client_conn=200, instances=1),
        listen_addr="127.0.0.1", listen_port=int(listen_port), auth_file=f"{directory}/userlist.txt",
        # Daemon mode needs a log and pid file; the test user may read SHOW POOLS.
        extra={"logfile": f"{directory}/pgbouncer.log", "pidfile": f"{directory}/pgbouncer.pid", "stats_users": user},
    ), end="")


def pgbouncer_ini(databases: dict[str, str], settings: PoolSettings, listen_addr: str = "0.0.0.0",
                  listen_port: int = PORT, auth_file: str = f"{SECRET_DIR}/userlist.txt",
                  extra: dict[str, str] | None = None) -> str:
    """The one PgBouncer configuration: the stacks deploy it and CI runs the engine's tests through it."""
    lines = ["[databases]", *(f"{name} = {conn}" for name, conn in databases.items()), "", "[pgbouncer]"]
    options = {
        "listen_addr": listen_addr,
        "listen_port": str(listen_port),
        "unix_socket_dir": "",
        "auth_type": "scram-sha-256",
        "auth_file": auth_file,
        "pool_mode": settings.pool_mode,
        "max_client_conn": str(settings.max_client_conn),
        "default_pool_size": str(settings.default_pool_size),
        # Only between sessions (session mode); transaction mode never leaves session state behind.
        "server_reset_query": "DISCARD ALL",
        # Drivers send these at startup; PgBouncer would otherwise refuse the connection.
        "ignore_startup_parameters": "extra_float_digits,options",
        **(extra or {}),
    }
    lines += [f"{k} = {v}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
