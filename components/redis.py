"""RedisCluster: the content engine's cache, rate limiter and queues.

- "standalone": one node, AOF (`appendfsync everysec`) + the seed's RDB
  save points, `maxmemory` + `allkeys-lru`.
- "cluster": 3 masters + 3 replicas (by default). Nodes announce stable
  host names, and every start rewrites the peers' addresses in nodes.conf
  from those names, so a restart with new pod IPs (all at once, even)
  rejoins the cluster. A bootstrap Job creates the cluster once and is a
  no-op when it already exists.

The password lives in a Secret and reaches Redis as a mounted config file
(`include`), the exporter and probes as env vars — never on a command line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import kube, secret_files
from components.credentials import generated_password

PORT = 6379
AUTH_DIR = "/etc/redis/auth"  # the Secret's files: auth.conf (included by redis.conf), password
EXPORTER_PASSWORDS = "exporter-passwords.json"
IMAGE = "docker.io/library/redis:7.4.6"
EXPORTER_IMAGE = "docker.io/oliver006/redis_exporter:v1.80.1"
BUS_PORT = 16379
EXPORTER_PORT = 9121

SEED_SETTINGS: dict[str, str] = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "auto-aof-rewrite-percentage": "100",
    "auto-aof-rewrite-min-size": "64mb",
    "save": "900 1 300 10 60 10000",
    "maxmemory-policy": "allkeys-lru",
    "timeout": "300",
    "tcp-keepalive": "60",
    "databases": "16",
}


@dataclass(frozen=True)
class RedisClusterArgs:
    namespace: str
    environment: str
    mode: Literal["standalone", "cluster"] = "standalone"
    name: str = "redis"
    masters: int = 3  # cluster mode
    replicas_per_master: int = 1  # cluster mode
    image: str = IMAGE
    exporter_image: str = EXPORTER_IMAGE
    maxmemory: str = "400mb"  # keep below the memory limit: AOF rewrite forks need headroom
    storage_size: str = "5Gi"
    storage_class: str | None = None
    resources: kube.Resources = kube.RESOURCE_PRESETS["small"]
    settings: Mapping[str, str] = field(default_factory=lambda: dict(SEED_SETTINGS))
    clients: Sequence[kube.NetworkPeer] = ()
    scrapers: Sequence[kube.NetworkPeer] = ()
    # client name -> database number: the Secret gets a ready `url-<client>` for each
    client_dbs: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("standalone", "cluster"):
            raise ValueError(f"RedisClusterArgs.mode must be 'standalone' or 'cluster', got {self.mode!r}")
        if self.mode == "cluster" and self.masters < 3:
            raise ValueError(f"RedisClusterArgs.masters must be >= 3 in cluster mode, got {self.masters}")
        if self.replicas_per_master < 0:
            raise ValueError("RedisClusterArgs.replicas_per_master must be >= 0")
        bad_dbs = {c: db for c, db in self.client_dbs.items() if not 0 <= db < 16}
        if bad_dbs:
            raise ValueError(f"RedisClusterArgs.client_dbs: databases must be 0-15, got {bad_dbs}")
        managed = {"requirepass", "masterauth", "cluster-enabled", "maxmemory", "dir", "port"} & set(self.settings)
        if managed:
            raise ValueError(f"RedisClusterArgs.settings: {sorted(managed)} are managed by the component")

    @property
    def nodes(self) -> int:
        return 1 if self.mode == "standalone" else self.masters * (1 + self.replicas_per_master)


class RedisCluster(pulumi.ComponentResource):
    host: pulumi.Output[str]
    port: int
    secret_name: str  # keys: password, and url-<client> per requested client
    cluster_mode: bool

    def __init__(self, name: str, args: RedisClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:data:RedisCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._args = args
        self.identity = kube.Identity(name=args.name, component="cache", environment=args.environment,
                                      version=kube.image_version(args.image))
        labels, selector = self.identity.labels(), self.identity.selector()
        meta = lambda n: kube.metadata(n, args.namespace, labels)  # noqa: E731
        self.port = PORT
        self.cluster_mode = args.mode == "cluster"
        self.secret_name = f"{args.name}-auth"
        self.password = generated_password(f"{name}-password", self)
        headless = f"{args.name}-headless"
        self.host = pulumi.Output.from_input(kube.cluster_dns(args.name, args.namespace))

        auth_conf = pulumi.Output.concat("requirepass ", self.password, "\nmasterauth ", self.password, "\n")
        self.secret = k8s.core.v1.Secret(
            f"{name}-auth",
            metadata=meta(self.secret_name),
            string_data={
                "password": self.password,
                "auth.conf": auth_conf,
                # redis_exporter's REDIS_PASSWORD_FILE: a JSON map of address -> password.
                EXPORTER_PASSWORDS: self.password.apply(lambda pw: json.dumps({f"redis://127.0.0.1:{PORT}": pw})),
                **{f"url-{client}": self.url(db) for client, db in args.client_dbs.items()},
            },
            opts=child,
        )
        conf = self.redis_conf(headless)
        config_name = f"{args.name}-config"
        k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=meta(config_name),
            data={"redis.conf": conf, "start.sh": _START, "bootstrap.sh": _BOOTSTRAP},
            opts=child,
        )
        k8s.core.v1.Service(f"{name}-headless", metadata=meta(headless),
                            spec=kube.service_spec(selector, {"redis": PORT, "bus": BUS_PORT}, headless=True), opts=child)
        k8s.core.v1.Service(f"{name}-service", metadata=meta(args.name),
                            spec=kube.service_spec(selector, {"redis": PORT, "metrics": EXPORTER_PORT}), opts=child)
        self.statefulset = self._statefulset(name, headless, config_name, conf)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=meta(args.name),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}}, opts=child,
        )
        own = kube.NetworkPeer(pod_labels=selector, ports=[PORT, BUS_PORT])
        clients = list(args.clients)
        if self.cluster_mode:
            bootstrap = self._bootstrap_job(name, headless, config_name)
            clients.append(kube.NetworkPeer(pod_labels=bootstrap.selector()))
        spec = kube.network_policy_spec(selector, [], [], [own])
        spec["ingress"] = (
            [p.rule("from", [PORT]) for p in clients]
            + [own.rule("from")]
            + [p.rule("from", [EXPORTER_PORT]) for p in args.scrapers]
        )
        k8s.networking.v1.NetworkPolicy(f"{name}-netpol", metadata=meta(args.name), spec=spec, opts=child)
        self.register_outputs({"host": self.host, "port": self.port, "secret_name": self.secret_name,
                               "cluster_mode": self.cluster_mode})

    def redis_conf(self, headless: str) -> str:
        a = self._args
        lines = [f"port {PORT}", "dir /data", f"maxmemory {a.maxmemory}", "protected-mode no"]
        lines += [f"{k} {v}" for k, v in a.settings.items()]
        if self.cluster_mode:
            lines += [
                "cluster-enabled yes",
                "cluster-config-file /data/nodes.conf",
                "cluster-node-timeout 5000",
                "cluster-preferred-endpoint-type hostname",
                "cluster-allow-reads-when-down no",
            ]
        lines.append("include /etc/redis/auth/auth.conf")
        return "\n".join(lines) + "\n"

    def url(self, db: int) -> pulumi.Output[str]:
        """redis://:<password>@host:6379/<db> (cluster mode has only db 0: separate by key prefix)."""
        index = 0 if self.cluster_mode else db
        return pulumi.Output.secret(
            pulumi.Output.concat("redis://:", self.password, "@", self.host, f":{PORT}/{index}")
        )

    def _statefulset(self, name: str, headless: str, config_name: str, conf: str) -> k8s.apps.v1.StatefulSet:
        a = self._args
        tmp_volume, tmp_mount = kube.tmp_volume()
        auth_mount = {"name": "auth", "mountPath": AUTH_DIR, "readOnly": True}
        redis = {
            "name": "redis",
            "image": a.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "/etc/redis/start.sh"],
            "ports": [{"name": "redis", "containerPort": PORT, "protocol": "TCP"},
                      {"name": "bus", "containerPort": BUS_PORT, "protocol": "TCP"}],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "HEADLESS_DOMAIN", "value": kube.cluster_dns(headless, a.namespace)},
                {"name": "CLUSTER_MODE", "value": "yes" if self.cluster_mode else "no"},
            ],
            "resources": a.resources.render(),
            "securityContext": kube.container_security_context(),
            "volumeMounts": [
                {"name": "data", "mountPath": "/data"},
                {"name": "config", "mountPath": "/etc/redis/redis.conf", "subPath": "redis.conf", "readOnly": True},
                {"name": "config", "mountPath": "/etc/redis/start.sh", "subPath": "start.sh", "readOnly": True},
                auth_mount,
                tmp_mount,
            ],
            "livenessProbe": {"tcpSocket": {"port": "redis"}, **_timing(kube.LIVENESS)},
            # redis-cli takes the password from REDISCLI_AUTH, set from the mounted file for this one call.
            "readinessProbe": kube.exec_probe(
                ["sh", "-c", f'REDISCLI_AUTH="$(cat {AUTH_DIR}/password)" redis-cli ping | grep -q PONG'],
                kube.READINESS),
            "startupProbe": {"tcpSocket": {"port": "redis"}, **_timing(kube.startup_timing(120))},
        }
        exporter = kube.exporter_sidecar(a.exporter_image, EXPORTER_PORT, [
            {"name": "REDIS_ADDR", "value": f"redis://127.0.0.1:{PORT}"},
            {"name": "REDIS_PASSWORD_FILE", "value": f"{AUTH_DIR}/{EXPORTER_PASSWORDS}"},
        ], liveness_path="/health")
        exporter["volumeMounts"] = [auth_mount]
        pod_spec = {
            "automountServiceAccountToken": False,
            "securityContext": kube.pod_security_context(),
            "containers": [redis, exporter],
            "volumes": [
                {"name": "config", "configMap": {"name": config_name, "defaultMode": 0o555}},
                secret_files.secret_volume("auth", self.secret_name, AUTH_DIR,
                                           ["auth.conf", "password", EXPORTER_PASSWORDS])[0],
                tmp_volume,
            ],
        }
        if a.nodes > 1:
            pod_spec.update(kube.spread_across_nodes_and_zones(self.identity.selector()))
        # Redis reads requirepass at start: a rotated password rolls the nodes (the hash reveals nothing).
        annotations = {**kube.scrape_annotations(EXPORTER_PORT), "checksum/config": kube.content_checksum(conf),
                       "checksum/auth": pulumi.Output.unsecret(self.password.apply(kube.content_checksum))}
        return k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=kube.metadata(a.name, a.namespace, self.identity.labels()),
            spec={
                "serviceName": headless,
                "replicas": a.nodes,
                # Cluster nodes start together; ordering buys nothing and slows recovery.
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": self.identity.selector()},
                "template": {"metadata": {"labels": self.identity.labels(), "annotations": annotations}, "spec": pod_spec},
                "volumeClaimTemplates": [
                    kube.volume_claim_template("data", a.storage_size, a.storage_class, self.identity.selector())
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _bootstrap_job(self, name: str, headless: str, config_name: str) -> kube.Identity:
        """The one-shot `redis-cli --cluster create` (a no-op once the cluster exists)."""
        a = self._args
        hosts = " ".join(f"{a.name}-{i}.{kube.cluster_dns(headless, a.namespace)}" for i in range(a.nodes))
        tmp_volume, tmp_mount = kube.tmp_volume()
        ident = kube.Identity(name=f"{a.name}-bootstrap", component="cache-bootstrap",
                              environment=a.environment, version=self.identity.version)
        job_labels = ident.labels()
        k8s.networking.v1.NetworkPolicy(
            f"{name}-bootstrap-netpol",
            metadata=kube.metadata(ident.name, a.namespace, job_labels),
            spec=kube.network_policy_spec(ident.selector(), [], [],
                                          [kube.NetworkPeer(pod_labels=self.identity.selector(), ports=[PORT])]),
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.batch.v1.Job(
            f"{name}-bootstrap",
            metadata=kube.metadata(ident.name, a.namespace, job_labels),
            spec={
                "backoffLimit": 20,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": {"labels": job_labels},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "automountServiceAccountToken": False,
                        "securityContext": kube.pod_security_context(),
                        "containers": [{
                            "name": "bootstrap",
                            "image": a.image,
                            "command": ["sh", "/etc/redis/bootstrap.sh"],
                            "env": [
                                {"name": "NODES", "value": hosts},
                                {"name": "REPLICAS", "value": str(a.replicas_per_master)},
                            ],
                            "resources": kube.RESOURCE_PRESETS["nano"].render(),
                            "securityContext": kube.container_security_context(),
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/redis/bootstrap.sh", "subPath": "bootstrap.sh", "readOnly": True},
                                {"name": "auth", "mountPath": AUTH_DIR, "readOnly": True},
                                tmp_mount,
                            ],
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": config_name, "defaultMode": 0o555}},
                                    secret_files.secret_volume("auth", self.secret_name, AUTH_DIR, ["password"])[0],
                                    tmp_volume],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.statefulset]),
        )
        return ident


def _timing(t: kube.ProbeTiming) -> dict:
    return {"periodSeconds": t.period_seconds, "timeoutSeconds": t.timeout_seconds,
            "failureThreshold": t.failure_threshold, "successThreshold": t.success_threshold}


# Each node announces its stable DNS name. nodes.conf keeps "ip:port@bus,hostname" per
# node: before starting, refresh every peer's IP from its hostname so a restart with new
# pod IPs (even all nodes at once) still finds the cluster.
_START = r"""#!/bin/sh
set -eu
CONF=/tmp/redis.conf
cp /etc/redis/redis.conf "$CONF"
if [ "$CLUSTER_MODE" = "yes" ]; then
  SELF="$POD_NAME.$HEADLESS_DOMAIN"
  echo "cluster-announce-hostname $SELF" >> "$CONF"
  if [ -f /data/nodes.conf ]; then
    tmp=/tmp/nodes.conf
    : > "$tmp"
    while IFS= read -r line; do
      addr=$(echo "$line" | awk '{print $2}')
      host=${addr#*,}
      if [ "$host" != "$addr" ] && ip=$(getent hosts "$host" | awk '{print $1; exit}') && [ -n "$ip" ]; then
        line=$(echo "$line" | sed "s#^\([^ ]*\) [^:]*:#\1 $ip:#")
      fi
      echo "$line" >> "$tmp"
    done < /data/nodes.conf
    cp "$tmp" /data/nodes.conf
  fi
fi
exec redis-server "$CONF"
"""

# Idempotent: when any node already reports a formed cluster, there is nothing to do.
_BOOTSTRAP = r"""#!/bin/sh
set -eu
REDISCLI_AUTH="$(cat /etc/redis/auth/password)"
export REDISCLI_AUTH
addresses=""
for host in $NODES; do
  until redis-cli -h "$host" ping | grep -q PONG; do echo "waiting for $host"; sleep 3; done
  # CLUSTER MEET takes IPs; clients are redirected by the announced host names.
  addresses="$addresses $(getent hosts "$host" | awk '{print $1; exit}'):6379"
done
first=$(echo "$NODES" | awk '{print $1}')
if redis-cli -h "$first" cluster info | grep -q '^cluster_state:ok'; then
  echo "cluster already formed"; exit 0
fi
known=$(redis-cli -h "$first" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')
if [ "${known:-1}" -gt 1 ]; then
  echo "cluster partially formed ($known nodes known); waiting for it to converge"; exit 1
fi
# shellcheck disable=SC2086
redis-cli --cluster create $addresses --cluster-replicas "$REPLICAS" --cluster-yes
"""
