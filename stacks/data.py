"""The data layer of compose(): PostgreSQL, Redis and the object store, per the profile,
and what every application needs to reach them (Secret references and network peers)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import kube
from components.app_service import SecretEnv
from components.object_store import SEED_BUCKETS, ObjectStore, ObjectStoreArgs
from components.postgres import (
    ObjectStoreBackup, Operator, PostgresCluster, PostgresClusterArgs, Recovery, S3Credentials, Storage,
)
from components.redis import RedisCluster, RedisClusterArgs
from stacks import catalog
from stacks.config import StackConfig
from stacks.images import ImagePolicy

# Pods that may open connections to the data stores (by their component label).
DATA_CLIENT_COMPONENTS = ("api", "migration", "backup")
BACKUP_BUCKET = "system-backups"
SYSTEM = "system"  # the Redis client name of platform jobs (backups, health)
ASSETS_BUCKET = "content-assets"


@dataclass
class DataLayer:
    postgres: PostgresCluster
    redis: RedisCluster
    object_store: ObjectStore

    def secret_env(self, client: str) -> list[SecretEnv]:
        """Connection settings of one client (a service name, or SYSTEM), all by Secret reference."""
        store = self.object_store.secret_name
        return [
            SecretEnv("DATABASE_URL", self.postgres.secret_name, self.postgres.url_key),
            SecretEnv("REDIS_URL", self.redis.secret_name, redis_url_key(client)),
            SecretEnv("S3_ENDPOINT", store, "endpoint"),
            SecretEnv("S3_ACCESS_KEY", store, "access-key"),
            SecretEnv("S3_SECRET_KEY", store, "secret-key"),
        ]

    def env(self, client: str) -> dict[str, str]:
        """Non-secret data settings: bucket names, storage backend, Redis key prefix."""
        env = {
            "STORAGE_BACKEND": "s3",
            "S3_REGION": self.object_store.region,
            "S3_BUCKET_ASSETS": self.object_store.bucket_names[ASSETS_BUCKET],
            "S3_BUCKET_BACKUPS": self.object_store.bucket_names[BACKUP_BUCKET],
        }
        if self.redis.cluster_mode:
            # A Redis cluster has one database: services are kept apart by key prefix instead.
            env["REDIS_CLUSTER"] = "true"
            env["REDIS_KEY_PREFIX"] = f"{client}:"
        return env

    @property
    def backup_bucket(self) -> str:
        return self.object_store.bucket_names[BACKUP_BUCKET]

    def egress_peers(self) -> list[kube.NetworkPeer]:
        """What an application pod may connect to in the data layer."""
        return [
            kube.NetworkPeer(pod_labels=self.postgres.identity.selector(), ports=[5432]),
            kube.NetworkPeer(pod_labels=self.redis.identity.selector(), ports=[6379]),
            kube.NetworkPeer(pod_labels=self.object_store.identity.selector(), ports=[9000]),
        ]


def redis_url_key(service_name: str) -> str:
    return f"url-{service_name}"


def data_clients() -> list[kube.NetworkPeer]:
    return [
        kube.NetworkPeer(pod_labels={"app.kubernetes.io/part-of": kube.PART_OF, "app.kubernetes.io/component": c})
        for c in DATA_CLIENT_COMPONENTS
    ]


def prometheus_peer(config: StackConfig) -> kube.NetworkPeer:
    return kube.NetworkPeer(
        namespace=catalog.monitoring_namespace_for(config.environment),
        pod_labels={"app.kubernetes.io/name": "prometheus"},
    )


def compose_data_layer(config: StackConfig, images: ImagePolicy, opts: pulumi.ResourceOptions) -> DataLayer:
    clients, scrapers = data_clients(), [prometheus_peer(config)]
    ns, env = config.namespace, config.environment

    store_cfg = config.object_store
    object_store = ObjectStore(
        "object-store",
        ObjectStoreArgs(
            namespace=ns, environment=env, mode=store_cfg.mode, nodes=store_cfg.nodes,
            image=images.resolve(store_cfg.image), client_image=images.resolve(store_cfg.client_image),
            storage_size=store_cfg.storage_size, storage_class=store_cfg.storage_class or None,
            resources=kube.preset(store_cfg.resources), buckets=SEED_BUCKETS,
            clients=clients, scrapers=scrapers,
        ),
        opts=opts,
    )

    pg = config.postgres
    backup = None
    if pg.continuous_backup.enabled:
        backup = ObjectStoreBackup(
            destination_path=f"s3://{object_store.bucket_names[BACKUP_BUCKET]}/postgres/{env}",
            retention_days=pg.continuous_backup.retention_days,
            schedule=pg.continuous_backup.schedule,
            endpoint_url=f"http://{kube.cluster_dns('object-store', ns)}:9000",
            credentials=S3Credentials(object_store.secret_name, "access-key", "secret-key"),
        )
    postgres = PostgresCluster(
        "postgres",
        PostgresClusterArgs(
            namespace=ns, environment=env, mode=pg.mode, instances=pg.instances, image=images.resolve(pg.image),
            exporter_image=images.resolve(pg.exporter_image),
            storage=Storage(size=pg.storage_size, storage_class=pg.storage_class or None),
            resources=kube.preset(pg.resources), clients=clients, scrapers=scrapers,
            backup=backup, operator=Operator(install=pg.install_operator), server_name=pg.server_name,
            recovery=Recovery(pg.recovery.source_server_name, pg.recovery.target_time or None)
            if pg.recovery.enabled else None,
            zone_anti_affinity=pg.zone_anti_affinity,
        ),
        opts=opts,
    )

    rd = config.redis
    redis = RedisCluster(
        "redis",
        RedisClusterArgs(
            namespace=ns, environment=env, mode=rd.mode, masters=rd.masters,
            replicas_per_master=rd.replicas_per_master, image=images.resolve(rd.image),
            exporter_image=images.resolve(rd.exporter_image), maxmemory=rd.maxmemory,
            storage_size=rd.storage_size, storage_class=rd.storage_class or None,
            resources=kube.preset(rd.resources), clients=clients, scrapers=scrapers,
            client_dbs={s.name: s.redis_db for s in catalog.CONTENT_SERVICES} | {SYSTEM: catalog.SYSTEM_REDIS_DB},
        ),
        opts=opts,
    )
    return DataLayer(postgres=postgres, redis=redis, object_store=object_store)
