"""AWS layer of the platform: network, EKS, S3, IAM for service accounts, managed data.

Each component takes a typed Args dataclass with secure defaults and tags
every resource with `AwsTags` (Project, Environment, ManagedBy=pulumi).
"""

from components.aws.buckets import (
    CONTENT_BUCKETS,
    BucketSpec,
    ContentBuckets,
    ContentBucketsArgs,
    LifecycleRule,
    ObjectLock,
    ObjectLockMode,
    SecureBucket,
    SecureBucketArgs,
    backup_bucket_args,
    backup_rules,
)
from components.aws.cluster import CapacityType, EksCluster, EksClusterArgs, NodeGroupSpec, StorageClassSpec
from components.aws.common import AwsTags, PolicyDocument, Statement
from components.aws.irsa import ServiceAccountRole, ServiceAccountRoleArgs, backup_jobs_policy, content_engine_policy
from components.aws.managed_data import (
    ElastiCacheRedis,
    ElastiCacheRedisArgs,
    RdsPostgres,
    RdsPostgresArgs,
    RedisClusterMode,
)
from components.aws.network import FlowLogs, NatMode, Network, NetworkArgs

__all__ = [
    "AwsTags", "PolicyDocument", "Statement",
    "Network", "NetworkArgs", "NatMode", "FlowLogs",
    "EksCluster", "EksClusterArgs", "NodeGroupSpec", "CapacityType", "StorageClassSpec",
    "SecureBucket", "SecureBucketArgs", "LifecycleRule", "ObjectLock", "ObjectLockMode",
    "ContentBuckets", "ContentBucketsArgs", "BucketSpec", "CONTENT_BUCKETS", "backup_bucket_args", "backup_rules",
    "ServiceAccountRole", "ServiceAccountRoleArgs", "backup_jobs_policy", "content_engine_policy",
    "RdsPostgres", "RdsPostgresArgs", "ElastiCacheRedis", "ElastiCacheRedisArgs", "RedisClusterMode",
]
