"""The data layer of compose(): PostgreSQL, Redis and object storage, per the profile,
and what every application needs to reach them (Secret references and network peers).

Each service runs in the cluster (components/postgres.py, redis.py, object_store.py)
or, with the AWS layer, as RDS / ElastiCache / S3 (components/aws). The apps see the
same thing either way: `postgres-app` (url = DATABASE_URL), `redis-auth`
(url-<client> = REDIS_URL) and, for an in-cluster store, `object-store-app`
(endpoint, access-key, secret-key); S3 on AWS is reached with IAM roles instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.app_service import SecretEnv
from components.object_store import SEED_BUCKETS, ObjectStore, ObjectStoreArgs
from components.postgres import (
    ObjectStoreBackup, Operator, PostgresCluster, PostgresClusterArgs, PostgresStorage, Recovery, S3Credentials,
)
from components import pooler
from components.pooler import ConnectionPooler, ConnectionPoolerArgs, PoolSettings
from components.redis import RedisCluster, RedisClusterArgs
from stacks import catalog
from stacks.config import StackConfig, budget_for
from stacks.images import ImagePolicy

if TYPE_CHECKING:  # imported where used: the AWS SDK is slow to import and most stacks need none of it
    from stacks.aws import AwsFoundation

# Pods that may open connections to the data stores (by their component label).
DATA_CLIENT_COMPONENTS = ("api", "migration")
BACKUP_COMPONENT = "backup"  # a data client only where the stack runs backups
BACKUP_BUCKET = "system-backups"
ASSETS_BUCKET = "content-assets"
INSTAGRAM_BUCKET = "instagram-media"  # images staged for the Graph API to fetch (distributor)
SYSTEM = "system"  # the Redis client name of platform jobs (backups, health)
POSTGRES_SECRET = "postgres-app"
POOLER_NAME = "postgres-pooler"
POOLER_SECRET = f"{POOLER_NAME}-app"
REDIS_SECRET = "redis-auth"
HTTPS = 443


@dataclass(frozen=True)
class Database:
    host: pulumi.Input[str]
    read_only_host: pulumi.Input[str]
    port: int
    database: str
    secret_name: str  # `url`: directly to PostgreSQL (migrations, pg_dump)
    peer: kube.NetworkPeer
    # The services' way in: the pooler's Secret (`url`) and peer; None: no pooler, directly.
    pooled_secret_name: str | None = None
    pooled_peer: kube.NetworkPeer | None = None
    pooler: pulumi.Resource | None = None
    credential: pulumi.Input[str] | None = None  # the generated password behind the URLs (rotation rolls pods)

    def secret_for(self, client: str) -> str:
        """Services go through the pooler; platform jobs (SYSTEM) need a session of their own."""
        return self.pooled_secret_name if client != SYSTEM and self.pooled_secret_name else self.secret_name

    def peer_for(self, client: str) -> kube.NetworkPeer:
        return self.pooled_peer if client != SYSTEM and self.pooled_peer is not None else self.peer


@dataclass(frozen=True)
class Cache:
    host: pulumi.Input[str]
    port: int
    cluster_mode: bool
    secret_name: str
    peer: kube.NetworkPeer
    credential: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class ObjectStorage:
    """Object storage as the apps see it."""

    bucket_names: Mapping[str, pulumi.Input[str]]
    region: str
    peer: kube.NetworkPeer
    endpoint: pulumi.Input[str] | None = None  # None: AWS S3 itself
    secret_name: str | None = None  # None: credentials come from the pod's IAM role
    credential: pulumi.Input[str] | None = None


@dataclass
class DataLayer:
    database: Database
    cache: Cache
    storage: ObjectStorage
    components: list[pulumi.Resource] = field(default_factory=list)
    role_arns: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)  # service account -> IAM role
    # The read-only database user for dashboards (None: a managed database without one).
    readonly_user: str | None = None
    readonly_password: pulumi.Input[str] | None = None
    database_sslmode: str = "disable"

    def secret_env(self, client: str) -> list[SecretEnv]:
        """Connection settings of one client (a service name, or SYSTEM), all by Secret reference."""
        env = [
            SecretEnv("DATABASE_URL", self.database.secret_for(client), "url", self.database.credential),
            SecretEnv("REDIS_URL", self.cache.secret_name, redis_url_key(client), self.cache.credential),
        ]
        if self.storage.secret_name:
            env += [
                SecretEnv("S3_ENDPOINT", self.storage.secret_name, "endpoint"),
                SecretEnv("S3_ACCESS_KEY", self.storage.secret_name, "access-key"),
                SecretEnv("S3_SECRET_KEY", self.storage.secret_name, "secret-key", self.storage.credential),
            ]
        return env

    def env(self, client: str) -> dict[str, pulumi.Input[str]]:
        """Non-secret data settings: bucket names, storage backend, Redis key prefix."""
        env: dict[str, pulumi.Input[str]] = {
            "STORAGE_BACKEND": "s3",
            "S3_REGION": self.storage.region,
            "S3_BUCKET_ASSETS": self.storage.bucket_names[ASSETS_BUCKET],
            "S3_BUCKET_BACKUPS": self.storage.bucket_names[BACKUP_BUCKET],
            "S3_BUCKET_INSTAGRAM": self.storage.bucket_names[INSTAGRAM_BUCKET],
        }
        if self.cache.cluster_mode:
            # A Redis cluster has one database: services are kept apart by key prefix instead.
            env["REDIS_CLUSTER"] = "true"
            env["REDIS_KEY_PREFIX"] = f"{client}:"
        return env

    @property
    def backup_bucket(self) -> pulumi.Input[str]:
        return self.storage.bucket_names[BACKUP_BUCKET]

    def egress_peers(self, client: str = SYSTEM) -> list[kube.NetworkPeer]:
        """What a client's pods may connect to in the data layer (services: the pooler, not PostgreSQL)."""
        return [self.database.peer_for(client), self.cache.peer, self.storage.peer]


def redis_url_key(client: str) -> str:
    return f"url-{client}"


def redis_clients() -> dict[str, int]:
    """Seed 001's Redis database per service, plus the system database."""
    return {s.name: s.redis_db for s in catalog.CONTENT_SERVICES} | {SYSTEM: catalog.SYSTEM_REDIS_DB}


def data_clients(config: StackConfig) -> list[kube.NetworkPeer]:
    """The pods that may reach the data stores: only parts this stack runs (no opening for absent ones)."""
    components = [*DATA_CLIENT_COMPONENTS, *([BACKUP_COMPONENT] if config.backups.enabled else [])]
    return [
        kube.NetworkPeer(pod_labels={"app.kubernetes.io/part-of": kube.PART_OF, "app.kubernetes.io/component": c})
        for c in components
    ]


def grafana_peer(config: StackConfig) -> kube.NetworkPeer:
    """Grafana's PostgreSQL datasource (the read-only user) connects from the monitoring namespace."""
    return kube.NetworkPeer(
        namespace=catalog.monitoring_namespace_for(config.environment),
        pod_labels={"app.kubernetes.io/name": "grafana"},
    )


def prometheus_peer(config: StackConfig) -> kube.NetworkPeer:
    return kube.NetworkPeer(
        namespace=catalog.monitoring_namespace_for(config.environment),
        pod_labels={"app.kubernetes.io/name": "prometheus"},
    )


def compose_data_layer(config: StackConfig, images: ImagePolicy, opts: pulumi.ResourceOptions,
                       aws_layer: AwsFoundation | None = None,
                       cert_manager: Sequence[pulumi.Resource] = ()) -> DataLayer:
    """`cert_manager`: its release, when the stack installs it (the Barman Cloud plugin's chart needs its CRDs)."""
    storage, store_components = _storage(config, images, opts, aws_layer)
    database, db_component = _database(config, images, opts, storage, aws_layer, cert_manager)
    cache, cache_component = _cache(config, images, opts, aws_layer)
    roles: dict[str, pulumi.Input[str]] = {}
    if aws_layer is not None:
        roles = {name: role.arn for name, role in aws_layer.app_roles.items()}
        roles["backup"] = aws_layer.backup_role.arn
    layer = DataLayer(database=database, cache=cache, storage=storage, role_arns=roles,
                      components=[c for c in (*store_components, db_component, cache_component) if c is not None])
    if isinstance(db_component, PostgresCluster):
        layer.readonly_user = db_component.readonly_user
        layer.readonly_password = db_component.readonly_password
        layer.database_sslmode = "require" if db_component.tls else "disable"
    return layer


# ------------------------------------------------------------------ storage


def _storage(config: StackConfig, images: ImagePolicy, opts: pulumi.ResourceOptions,
             aws_layer: AwsFoundation | None) -> tuple[ObjectStorage, list[pulumi.Resource]]:
    cfg = config.object_store
    if cfg.mode == "s3":
        assert aws_layer is not None and aws_layer.content_buckets is not None
        https = kube.NetworkPeer(cidr="0.0.0.0/0", except_cidrs=kube.PRIVATE_CIDRS, ports=[HTTPS])
        return ObjectStorage(bucket_names=aws_layer.bucket_names(), region=aws_layer.region, peer=https), []
    store = ObjectStore(
        "object-store",
        ObjectStoreArgs(
            namespace=config.namespace, environment=config.environment, mode=cfg.mode, nodes=cfg.nodes,
            image=images.resolve(cfg.image), client_image=images.resolve(cfg.client_image),
            storage_size=cfg.storage_size, storage_class=cfg.storage_class or None,
            resources=kube.preset(cfg.resources), buckets=SEED_BUCKETS,
            clients=data_clients(config), scrapers=[prometheus_peer(config)],
        ),
        opts=opts,
    )
    peer = kube.NetworkPeer(pod_labels=store.identity.selector(), ports=[9000])
    return ObjectStorage(bucket_names=store.bucket_names, region=store.region, peer=peer,
                         endpoint=store.endpoint, secret_name=store.secret_name,
                         credential=store.app_secret_key), [store]


# ----------------------------------------------------------------- database


def _database(config: StackConfig, images: ImagePolicy, opts: pulumi.ResourceOptions, storage: ObjectStorage,
              aws_layer: AwsFoundation | None,
              cert_manager: Sequence[pulumi.Resource] = ()) -> tuple[Database, pulumi.Resource]:
    pg = config.postgres
    if pg.mode == "rds":
        assert aws_layer is not None
        from components.aws import RdsPostgres, RdsPostgresArgs  # the AWS SDK only where it is used
        from components.aws.rds_proxy import RdsProxy, RdsProxyArgs

        rds = RdsPostgres("postgres", RdsPostgresArgs(**_managed_args(aws_layer)))
        _app_secret(POSTGRES_SECRET, "database", config, opts, {
            "username": rds.username, "password": rds.password, "database": rds.database,
            "host": rds.host, "port": str(rds.port), "url": rds.url,
        })
        peer = kube.NetworkPeer(cidr=config.aws.vpc_cidr, ports=[rds.port])
        database = Database(rds.host, rds.host, rds.port, rds.database, POSTGRES_SECRET, peer,
                            credential=rds.password)
        if pg.pooler.enabled:
            budget = budget_for(config)
            assert budget.pooler is not None
            proxy = RdsProxy("postgres-proxy", RdsProxyArgs(
                **_managed_args(aws_layer), database_security_group_id=rds.security_group_id,
                instance_identifier=rds.instance.identifier, database=rds.database, username=rds.username,
                password=rds.password, server_connections=budget.pooler.server_connections,
                max_connections=budget.max_connections))
            _app_secret(POOLER_SECRET, "database-pooler", config, opts, {"url": proxy.url})
            database = dataclasses.replace(database, pooled_secret_name=POOLER_SECRET, pooled_peer=peer, pooler=proxy)
        return database, rds

    backup = None
    if pg.continuous_backup.enabled:
        backup = ObjectStoreBackup(
            bucket=storage.bucket_names[BACKUP_BUCKET],
            retention_days=pg.continuous_backup.retention_days,
            schedule=pg.continuous_backup.schedule,
            endpoint_url=storage.endpoint,
            credentials=S3Credentials(storage.secret_name, "access-key", "secret-key") if storage.secret_name else None,
            service_account_role_arn=(aws_layer.postgres_backup_role.arn
                                      if aws_layer is not None and aws_layer.postgres_backup_role else None),
        )
    cluster = PostgresCluster(
        "postgres",
        PostgresClusterArgs(
            namespace=config.namespace, environment=config.environment, mode=pg.mode, instances=pg.instances,
            image=images.resolve(pg.image), exporter_image=images.resolve(pg.exporter_image),
            storage=PostgresStorage(size=pg.storage_size, storage_class=pg.storage_class or None),
            resources=kube.preset(pg.resources),
            clients=[*data_clients(config), grafana_peer(config), *([pooler_peer(config)] if pg.pooler.enabled else [])],
            scrapers=[prometheus_peer(config)], backup=backup, server_name=pg.server_name,
            operator=Operator(install=pg.install_operator, plugin_after=tuple(cert_manager)),
            recovery=Recovery(pg.recovery.source_server_name, pg.recovery.target_time or None)
            if pg.recovery.enabled else None,
            zone_anti_affinity=pg.zone_anti_affinity,
        ),
        opts=opts,
    )
    peer = kube.NetworkPeer(pod_labels=cluster.identity.selector(), ports=[cluster.port])
    database = Database(cluster.host, cluster.read_only_host, cluster.port, cluster.database,
                        cluster.secret_name, peer, credential=cluster.app_password)
    if pg.pooler.enabled:
        pooler = _pooler(config, images, cluster, peer, opts)
        database = dataclasses.replace(database, pooled_secret_name=pooler.secret_name, pooled_peer=pooler.peer,
                                       pooler=pooler)
    return database, cluster


def pooler_peer(config: StackConfig) -> kube.NetworkPeer:
    """The pooler's pods, as PostgreSQL admits them."""
    return kube.NetworkPeer(pod_labels=pooler.identity(POOLER_NAME, config.environment).selector())


def _pooler(config: StackConfig, images: ImagePolicy, cluster: PostgresCluster, server: kube.NetworkPeer,
            opts: pulumi.ResourceOptions) -> ConnectionPooler:
    pg = config.postgres
    settings = PoolSettings(pool_mode=pg.pooler.pool_mode, default_pool_size=pg.pooler.default_pool_size,
                            max_client_conn=pg.pooler.max_client_conn, instances=pg.pooler.instances)
    return ConnectionPooler("postgres-pooler", ConnectionPoolerArgs(
        namespace=config.namespace, environment=config.environment,
        kind="cloudnative-pg" if pg.mode == "cloudnative-pg" else "pgbouncer",
        server_host=cluster.host, cluster_name=cluster.cluster_name, database=cluster.database,
        user=cluster.app_user, password=cluster.app_password, settings=settings, name=POOLER_NAME,
        image=images.resolve(pooler.IMAGE), sslmode="require" if cluster.tls else "disable",
        clients=data_clients(config), scrapers=[prometheus_peer(config)], server=server, depends_on=[cluster.cluster_resource] if cluster.cluster_resource else [],
    ), opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[cluster])))


# -------------------------------------------------------------------- cache


def _cache(config: StackConfig, images: ImagePolicy, opts: pulumi.ResourceOptions,
           aws_layer: AwsFoundation | None) -> tuple[Cache, pulumi.Resource]:
    rd = config.redis
    if rd.mode == "elasticache":
        assert aws_layer is not None
        from components.aws import ElastiCacheRedis, ElastiCacheRedisArgs, RedisClusterMode

        cache = ElastiCacheRedis("redis", ElastiCacheRedisArgs(
            **_managed_args(aws_layer), cluster_mode=RedisClusterMode.ENABLED, shards=rd.masters,
            replicas_per_shard=max(1, rd.replicas_per_master)))
        # Cluster mode: one database, so every client's URL is the same (services use key prefixes).
        _app_secret(REDIS_SECRET, "cache", config, opts,
                    {"password": cache.password, **{redis_url_key(c): cache.url for c in redis_clients()}})
        peer = kube.NetworkPeer(cidr=config.aws.vpc_cidr, ports=[cache.port])
        return Cache(cache.host, cache.port, True, REDIS_SECRET, peer, credential=cache.password), cache
    redis = RedisCluster(
        "redis",
        RedisClusterArgs(
            namespace=config.namespace, environment=config.environment, mode=rd.mode, masters=rd.masters,
            replicas_per_master=rd.replicas_per_master, image=images.resolve(rd.image),
            exporter_image=images.resolve(rd.exporter_image), maxmemory=rd.maxmemory,
            storage_size=rd.storage_size, storage_class=rd.storage_class or None,
            resources=kube.preset(rd.resources), clients=data_clients(config), scrapers=[prometheus_peer(config)],
            client_dbs=redis_clients(),
        ),
        opts=opts,
    )
    peer = kube.NetworkPeer(pod_labels=redis.identity.selector(), ports=[redis.port])
    return Cache(redis.host, redis.port, redis.cluster_mode, redis.secret_name, peer,
                 credential=redis.password), redis


def _managed_args(aws_layer: AwsFoundation) -> dict:
    return dict(vpc_id=aws_layer.network.vpc_id, subnet_ids=aws_layer.network.private_subnet_ids,
                allowed_security_group_ids=[aws_layer.cluster.cluster_security_group_id], tags=aws_layer.tags)


def _app_secret(name: str, component: str, config: StackConfig, opts: pulumi.ResourceOptions,
                data: Mapping[str, pulumi.Input[str]]) -> k8s.core.v1.Secret:
    """The apps' connection Secret for a managed (AWS) service: the same name and keys as in-cluster."""
    ident = kube.Identity(name=name, component=component, environment=config.environment)
    return k8s.core.v1.Secret(
        f"{name}-secret",
        metadata=kube.metadata(name, config.namespace, ident.labels()),
        string_data={k: pulumi.Output.secret(v) if k in ("password", "url") or k.startswith("url-") else v
                     for k, v in data.items()},
        opts=opts,
    )
