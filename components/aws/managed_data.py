"""Managed data stores on AWS, the alternatives to the in-cluster ones:
RdsPostgres (`postgres.mode: rds`) and ElastiCacheRedis (`redis.mode: elasticache`).

Both sit in the private subnets behind a security group that admits their
one port only from the given security groups (the EKS cluster security
group, which managed nodes carry), encrypt at rest with a rotating KMS key
and in transit, and generate their credential with pulumi_random. Each
exposes what the app Secrets need: host, port, username, password (secret)
and url (secret), in the same shape as the in-cluster components.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.aws.common import AwsTags, key_or_given
from components.credentials import generated_password

POSTGRES_PORT = 5432
REDIS_PORT = 6379
_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ENGINE_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_WINDOW = re.compile(r"^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$")
_MAINTENANCE = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]-(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]$")
RDS_RESERVED_USERNAMES = {"admin", "rdsadmin", "postgres", "root", "master"}

# Seed 000/001/002 tuning, in the units RDS parameter groups take (RDS accepts
# no "MB" suffixes): 8 kB pages for shared_buffers/effective_cache_size/
# wal_buffers, kB for *_mem, MB for *_wal_size. Plus the seed's slow-query and
# connection logging, and TLS required.
SEED_PARAMETERS: Mapping[str, str] = {
    "max_connections": "200",
    "shared_buffers": "32768",  # 256MB
    "effective_cache_size": "131072",  # 1GB
    "maintenance_work_mem": "65536",  # 64MB
    "checkpoint_completion_target": "0.9",
    "wal_buffers": "2048",  # 16MB
    "default_statistics_target": "100",
    "random_page_cost": "1.1",
    "effective_io_concurrency": "200",
    "work_mem": "4096",  # 4MB
    "min_wal_size": "1024",  # 1GB
    "max_wal_size": "4096",  # 4GB
    "log_min_duration_statement": "1000",
    "log_connections": "1",
    "log_disconnections": "1",
    "log_lock_waits": "1",
    "rds.force_ssl": "1",
}
# Changing these needs a restart; RDS refuses `immediate` for them.
STATIC_PARAMETERS = frozenset({"max_connections", "shared_buffers", "wal_buffers", "shared_preload_libraries"})


def data_security_group(name: str, parent: pulumi.Resource, vpc_id: pulumi.Input[str], port: int,
                        allowed_security_group_ids: Sequence[pulumi.Input[str]], tags: AwsTags,
                        description: str) -> aws.ec2.SecurityGroup:
    """A security group admitting `port` only from the given groups, with no egress rule at all."""
    group = aws.ec2.SecurityGroup(
        name, vpc_id=vpc_id, description=description, tags=tags.render(Name=name),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    for i, source in enumerate(allowed_security_group_ids):
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-from-{i}",
            security_group_id=group.id,
            referenced_security_group_id=source,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=f"{description}: port {port} from an allowed security group",
            tags=tags.render(),
            opts=pulumi.ResourceOptions(parent=parent),
        )
    return group


def _check_common(where: str, subnet_ids: object, allowed: Sequence[object]) -> None:
    if not allowed:
        raise ValueError(f"{where}.allowed_security_group_ids must name at least one security group "
                         "(the EKS cluster security group)")
    if isinstance(subnet_ids, (list, tuple)) and len(subnet_ids) < 2:
        raise ValueError(f"{where}.subnet_ids must list subnets in at least two AZs for Multi-AZ")


# --------------------------------------------------------------------------- RDS


@dataclass(frozen=True)
class RdsPostgresArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]  # private subnets
    allowed_security_group_ids: Sequence[pulumi.Input[str]]
    tags: AwsTags
    engine_version: str = "17.6"
    instance_class: str = "db.m5.large"  # seed 003
    allocated_storage_gib: int = 500  # seed 003
    max_allocated_storage_gib: int = 1000  # storage autoscaling ceiling (seed 003)
    database_name: str = "content_engine"
    username: str = "content_engine"
    multi_az: bool = True
    backup_retention_days: int = 30
    backup_window: str = "03:00-04:00"  # UTC (seed 003)
    maintenance_window: str = "sun:04:00-sun:05:00"  # UTC (seed 003)
    deletion_protection: bool = True
    skip_final_snapshot: bool = False
    performance_insights_retention_days: int = 7  # 7 (free tier) or a multiple of 31 up to 731
    kms_key_arn: pulumi.Input[str] | None = None  # None: a rotating key of its own
    parameters: Mapping[str, str] = field(default_factory=lambda: dict(SEED_PARAMETERS))
    log_exports: Sequence[str] = ("postgresql", "upgrade")

    def __post_init__(self) -> None:
        _check_common("RdsPostgresArgs", self.subnet_ids, self.allowed_security_group_ids)
        if not _ENGINE_VERSION.match(self.engine_version):
            raise ValueError(f"RdsPostgresArgs.engine_version must look like 17.6, got {self.engine_version!r}")
        for field_name in ("database_name", "username"):
            if not _IDENT.match(getattr(self, field_name)):
                raise ValueError(f"RdsPostgresArgs.{field_name} must be a lowercase identifier")
        if self.username in RDS_RESERVED_USERNAMES:
            raise ValueError(f"RdsPostgresArgs.username {self.username!r} is reserved by RDS")
        if not 1 <= self.backup_retention_days <= 35:
            raise ValueError(f"RdsPostgresArgs.backup_retention_days must be 1-35, got {self.backup_retention_days}")
        if self.allocated_storage_gib < 20:
            raise ValueError("RdsPostgresArgs.allocated_storage_gib must be >= 20")
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            raise ValueError("RdsPostgresArgs.max_allocated_storage_gib must be >= allocated_storage_gib")
        pi = self.performance_insights_retention_days
        if not (pi == 7 or (pi % 31 == 0 and 31 <= pi <= 731)):
            raise ValueError(f"RdsPostgresArgs.performance_insights_retention_days must be 7 or a multiple of "
                             f"31 up to 731, got {pi}")
        if not _WINDOW.match(self.backup_window):
            raise ValueError(f"RdsPostgresArgs.backup_window must look like 03:00-04:00, got {self.backup_window!r}")
        if not _MAINTENANCE.match(self.maintenance_window):
            raise ValueError("RdsPostgresArgs.maintenance_window must look like sun:04:00-sun:05:00")

    @property
    def family(self) -> str:
        return f"postgres{self.engine_version.split('.')[0]}"


class RdsPostgres(pulumi.ComponentResource):
    host: pulumi.Output[str]
    port: int
    database: str
    username: str
    password: pulumi.Output[str]
    url: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: RdsPostgresArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:aws:RdsPostgres", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags

        self.key, key_arn = key_or_given(f"{name}-key", f"RDS {name} storage and Performance Insights", tags, self, args.kms_key_arn)

        self.subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets", subnet_ids=args.subnet_ids, description=f"{name}: private subnets",
            tags=tags.render(), opts=child,
        )
        self.security_group = data_security_group(
            f"{name}-sg", self, args.vpc_id, POSTGRES_PORT, args.allowed_security_group_ids, tags,
            f"PostgreSQL {name}",
        )
        self.parameter_group = aws.rds.ParameterGroup(
            f"{name}-params",
            family=args.family,
            description=f"{name}: seed tuning, TLS required",
            parameters=[
                {"name": k, "value": v, "apply_method": "pending-reboot" if k in STATIC_PARAMETERS else "immediate"}
                for k, v in sorted(args.parameters.items())
            ],
            tags=tags.render(),
            opts=child,
        )
        self.password = generated_password(f"{name}-password", self, 32)
        self.instance = aws.rds.Instance(
            name,
            engine="postgres",
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage_gib,
            max_allocated_storage=args.max_allocated_storage_gib,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=key_arn,
            db_name=args.database_name,
            username=args.username,
            password=self.password,
            port=POSTGRES_PORT,
            multi_az=args.multi_az,
            db_subnet_group_name=self.subnet_group.name,
            vpc_security_group_ids=[self.security_group.id],
            publicly_accessible=False,
            parameter_group_name=self.parameter_group.name,
            backup_retention_period=args.backup_retention_days,
            backup_window=args.backup_window,
            maintenance_window=args.maintenance_window,
            copy_tags_to_snapshot=True,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=args.skip_final_snapshot,
            final_snapshot_identifier=None if args.skip_final_snapshot else f"{name}-final",
            performance_insights_enabled=True,
            performance_insights_kms_key_id=key_arn,
            performance_insights_retention_period=args.performance_insights_retention_days,
            enabled_cloudwatch_logs_exports=list(args.log_exports),
            auto_minor_version_upgrade=True,
            allow_major_version_upgrade=False,
            ca_cert_identifier="rds-ca-rsa2048-g1",
            tags=tags.render(Name=name),
            opts=child,
        )

        self.host = self.instance.address
        self.port = POSTGRES_PORT
        self.database = args.database_name
        self.username = args.username
        self.security_group_id = self.security_group.id
        self.url = pulumi.Output.secret(pulumi.Output.all(self.password, self.host).apply(
            lambda v: f"postgresql://{args.username}:{urllib.parse.quote(v[0], safe='')}@{v[1]}:{POSTGRES_PORT}/"
                      f"{args.database_name}?sslmode=require"
        ))
        self.register_outputs({
            "host": self.host, "port": self.port, "database": self.database, "username": self.username,
            "password": self.password, "url": self.url,
        })


# ------------------------------------------------------------------ ElastiCache


class RedisClusterMode(str, Enum):
    ENABLED = "enabled"  # shards (num_node_groups) x (1 + replicas); needs a cluster-aware client
    DISABLED = "disabled"  # one primary + replicas behind the primary endpoint


@dataclass(frozen=True)
class ElastiCacheRedisArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]  # private subnets
    allowed_security_group_ids: Sequence[pulumi.Input[str]]
    tags: AwsTags
    engine: Literal["redis", "valkey"] = "redis"
    engine_version: str = "7.1"
    node_type: str = "cache.m5.large"  # seed 003
    cluster_mode: RedisClusterMode = RedisClusterMode.ENABLED
    shards: int = 3  # ENABLED only: 3 masters (profile table: 3 masters + 3 replicas)
    replicas_per_shard: int = 1
    snapshot_retention_days: int = 7
    snapshot_window: str = "02:00-03:00"  # UTC, the seed's daily backup hour
    maintenance_window: str = "sun:05:00-sun:06:00"
    kms_key_arn: pulumi.Input[str] | None = None
    parameter_group_name: str | None = None  # None: the engine's default for the cluster mode

    def __post_init__(self) -> None:
        _check_common("ElastiCacheRedisArgs", self.subnet_ids, self.allowed_security_group_ids)
        if not isinstance(self.cluster_mode, RedisClusterMode):
            raise ValueError("ElastiCacheRedisArgs.cluster_mode must be a RedisClusterMode")
        if not _ENGINE_VERSION.match(self.engine_version):
            raise ValueError(f"ElastiCacheRedisArgs.engine_version must look like 7.1, got {self.engine_version!r}")
        if not 1 <= self.replicas_per_shard <= 5:
            raise ValueError("ElastiCacheRedisArgs.replicas_per_shard must be 1-5 (automatic failover needs a replica)")
        if self.cluster_mode is RedisClusterMode.ENABLED and not 1 <= self.shards <= 500:
            raise ValueError("ElastiCacheRedisArgs.shards must be 1-500")
        if not 0 <= self.snapshot_retention_days <= 35:
            raise ValueError("ElastiCacheRedisArgs.snapshot_retention_days must be 0-35")
        if not _WINDOW.match(self.snapshot_window):
            raise ValueError("ElastiCacheRedisArgs.snapshot_window must look like 02:00-03:00")
        if not _MAINTENANCE.match(self.maintenance_window):
            raise ValueError("ElastiCacheRedisArgs.maintenance_window must look like sun:05:00-sun:06:00")

    @property
    def default_parameter_group(self) -> str:
        major = self.engine_version.split(".")[0]
        suffix = ".cluster.on" if self.cluster_mode is RedisClusterMode.ENABLED else ""
        return f"default.{self.engine}{major}{suffix}"


class ElastiCacheRedis(pulumi.ComponentResource):
    host: pulumi.Output[str]
    port: int
    username: str
    password: pulumi.Output[str]
    url: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: ElastiCacheRedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:aws:ElastiCacheRedis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags

        self.key, key_arn = key_or_given(f"{name}-key", f"ElastiCache {name} at-rest encryption", tags, self, args.kms_key_arn)

        self.subnet_group = aws.elasticache.SubnetGroup(
            f"{name}-subnets", subnet_ids=args.subnet_ids, description=f"{name}: private subnets",
            tags=tags.render(), opts=child,
        )
        self.security_group = data_security_group(
            f"{name}-sg", self, args.vpc_id, REDIS_PORT, args.allowed_security_group_ids, tags, f"Redis {name}",
        )
        # 64 alphanumerics: within ElastiCache's 16-128 printable-character AUTH token rules.
        self.password = generated_password(f"{name}-auth-token", self, 64)
        clustered = args.cluster_mode is RedisClusterMode.ENABLED
        sizing: dict = (
            {"num_node_groups": args.shards, "replicas_per_node_group": args.replicas_per_shard}
            if clustered else {"num_cache_clusters": 1 + args.replicas_per_shard}
        )
        self.replication_group = aws.elasticache.ReplicationGroup(
            name,
            description=f"{name}: {args.engine} for the content engine",
            engine=args.engine,
            engine_version=args.engine_version,
            node_type=args.node_type,
            port=REDIS_PORT,
            cluster_mode=args.cluster_mode.value,
            parameter_group_name=args.parameter_group_name or args.default_parameter_group,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            at_rest_encryption_enabled=True,
            kms_key_id=key_arn,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=self.password,
            auth_token_update_strategy="ROTATE",
            subnet_group_name=self.subnet_group.name,
            security_group_ids=[self.security_group.id],
            snapshot_retention_limit=args.snapshot_retention_days,
            snapshot_window=args.snapshot_window,
            maintenance_window=args.maintenance_window,
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            tags=tags.render(Name=name),
            opts=child,
            **sizing,
        )
        group = self.replication_group
        self.host = group.configuration_endpoint_address if clustered else group.primary_endpoint_address
        self.port = REDIS_PORT
        self.username = "default"  # the AUTH token authenticates Redis's default user
        self.security_group_id = self.security_group.id
        self.url = pulumi.Output.secret(pulumi.Output.all(self.password, self.host).apply(
            lambda v: f"rediss://:{urllib.parse.quote(v[0], safe='')}@{v[1]}:{REDIS_PORT}"
        ))
        self.register_outputs({
            "host": self.host, "port": self.port, "username": self.username,
            "password": self.password, "url": self.url,
        })
