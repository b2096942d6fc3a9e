"""The AWS foundation of compose(), for stacks with `aws.enabled`:
network -> EKS cluster (whose Kubernetes provider the whole platform uses) -> S3 buckets
-> IAM roles for the service accounts. RDS and ElastiCache are created by the data
layer when `postgres.mode: rds` / `redis.mode: elasticache` choose them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws import (
    AwsTags,
    ContentBuckets,
    ContentBucketsArgs,
    EksCluster,
    EksClusterArgs,
    NatMode,
    Network,
    NetworkArgs,
    NodeGroupSpec,
    PolicyDocument,
    SecureBucket,
    ServiceAccountRole,
    ServiceAccountRoleArgs,
    Statement,
    backup_bucket_args,
    backup_jobs_policy,
    content_engine_policy,
)
from stacks import catalog
from stacks.config import StackConfig

BACKUP_SERVICE_ACCOUNT = "backup"
APP_SERVICE_ACCOUNTS = tuple(s.name for s in catalog.CONTENT_SERVICES)
BACKUP_PREFIXES = ("postgres", "redis", "objects")


@dataclass
class AwsFoundation:
    tags: AwsTags
    network: Network
    cluster: EksCluster
    backup_bucket: SecureBucket
    content_buckets: ContentBuckets | None  # when the object store is S3 itself
    backup_role: ServiceAccountRole
    postgres_backup_role: ServiceAccountRole | None
    app_roles: dict[str, ServiceAccountRole]
    region: str

    @property
    def provider(self) -> k8s.Provider:
        return self.cluster.kubernetes_provider

    def bucket_names(self) -> dict[str, pulumi.Output[str]]:
        return dict(self.content_buckets.bucket_names) if self.content_buckets else {}

    def export(self) -> None:
        pulumi.export("kubeconfig", self.cluster.kubeconfig)  # a secret Output
        pulumi.export("cluster_name", self.cluster.cluster_name)
        pulumi.export("cluster_endpoint", self.cluster.endpoint)
        pulumi.export("oidc_provider_arn", self.cluster.oidc_provider_arn)
        pulumi.export("vpc_id", self.network.vpc_id)
        pulumi.export("backup_bucket", self.backup_bucket.bucket_name)
        pulumi.export("content_buckets", self.bucket_names())
        pulumi.export("role_arns", {
            "backup": self.backup_role.arn,
            **({"postgres": self.postgres_backup_role.arn} if self.postgres_backup_role else {}),
            **{name: role.arn for name, role in self.app_roles.items()},
        })


def compose_aws(config: StackConfig) -> AwsFoundation:
    cfg = config.aws
    tags = AwsTags(catalog.PROJECT, config.environment)
    cluster_name = f"{catalog.PROJECT}-{config.environment}"
    region = aws.get_region().region
    network = Network(cluster_name, NetworkArgs(
        tags=tags, cidr_block=cfg.vpc_cidr, az_count=cfg.availability_zones,
        nat=NatMode(cfg.nat), cluster_name=cluster_name,
    ))
    cluster = EksCluster(cluster_name, EksClusterArgs(
        cluster_name=cluster_name,
        kubernetes_version=config.kubernetes.version,
        vpc_id=network.vpc_id,
        subnet_ids=network.private_subnet_ids,
        tags=tags,
        node_groups=(NodeGroupSpec(instance_types=tuple(cfg.node_instance_types), min_size=cfg.node_min,
                                   desired_size=cfg.node_desired, max_size=cfg.node_max),),
        public_access_cidrs=tuple(cfg.public_access_cidrs),
        admin_principal_arns=tuple(cfg.admin_principal_arns),
    ))

    content = None
    if config.object_store.mode == "s3":
        content = ContentBuckets(cluster_name, ContentBucketsArgs(tags=tags))  # the seed buckets
        backup_bucket = content.buckets["system-backups"]
    else:
        backup_bucket = SecureBucket(f"{cluster_name}-backups",
                                     backup_bucket_args(tags, retention_days=config.backups.retention_days),
                                     opts=pulumi.ResourceOptions(protect=True))

    def role(name: str, service_account: str, policy: PolicyDocument) -> ServiceAccountRole:
        return ServiceAccountRole(name, ServiceAccountRoleArgs(
            oidc_provider_arn=cluster.oidc_provider_arn, oidc_provider_url=cluster.oidc_provider_url,
            namespace=config.namespace, service_account=service_account, tags=tags, policy=policy,
            description=f"{service_account} in {config.namespace}",
        ))

    # Backup jobs write their prefixes; restoring objects writes the content buckets back.
    backup_statements = list(backup_jobs_policy(backup_bucket.arn, BACKUP_PREFIXES, backup_bucket.kms_key_arn).statements)
    if content is not None:
        content_arns = [b.arn for n, b in content.buckets.items() if n != "system-backups"]
        backup_statements += list(content_engine_policy(content_arns, content.kms_key_arn).statements)
    backup_role = role(f"{cluster_name}-backup", BACKUP_SERVICE_ACCOUNT, PolicyDocument(_unique(backup_statements)))

    postgres_role = None
    if config.postgres.mode == "cloudnative-pg" and config.postgres.continuous_backup.enabled:
        # Barman Cloud archives WAL and prunes by its retention policy: it needs delete, on its prefix only.
        prefix = pulumi.Output.concat(backup_bucket.arn, "/postgres/*")
        postgres_role = role(f"{cluster_name}-postgres-backup", "postgres", PolicyDocument([
            Statement(sid="ListPostgresPrefix", actions=["s3:ListBucket", "s3:GetBucketLocation"],
                      resources=[backup_bucket.arn]),
            Statement(sid="ReadWritePostgresArchive",
                      actions=["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], resources=[prefix]),
            *[s for s in backup_jobs_policy(backup_bucket.arn, ["postgres"], backup_bucket.kms_key_arn).statements
              if s.sid not in ("ListBackupPrefixes", "ReadWriteBackups")],
        ]))

    app_roles: dict[str, ServiceAccountRole] = {}
    if content is not None:
        app_arns = [b.arn for n, b in content.buckets.items() if n != "system-backups"]
        for service in APP_SERVICE_ACCOUNTS:
            app_roles[service] = role(f"{cluster_name}-{service}", service,
                                      content_engine_policy(app_arns, content.kms_key_arn))
    return AwsFoundation(tags=tags, network=network, cluster=cluster, backup_bucket=backup_bucket,
                         content_buckets=content, backup_role=backup_role, postgres_backup_role=postgres_role,
                         app_roles=app_roles, region=region)


def _unique(statements: list[Statement]) -> list[Statement]:
    """Merged policies share the bucket-key statement (one KMS key): keep it once."""
    seen: dict[str, Statement] = {}
    for statement in statements:
        seen.setdefault(statement.sid, statement)
    return list(seen.values())
