"""SecureBucket: one S3 bucket with every pulumi-aws v7 sibling resource that
makes it safe, and ContentBuckets: the content engine's five buckets (seed 001).

pulumi-aws v7 splits a bucket's settings into separate resources; each
SecureBucket declares them all, parented to the component:
  aws.s3.Bucket                                   (object lock enabled at creation, if asked)
  aws.s3.BucketOwnershipControls                  BucketOwnerEnforced: ACLs disabled
  aws.s3.BucketPublicAccessBlock                  all four flags true
  aws.s3.BucketServerSideEncryptionConfiguration  SSE-KMS with a bucket key
  aws.s3.BucketVersioning                         Enabled (default)
  aws.s3.BucketLifecycleConfiguration             rules as data
  aws.s3.BucketPolicy                             deny non-TLS and TLS < 1.2
  aws.s3.BucketObjectLockConfiguration            optional default retention

Protection is the caller's: `SecureBucket(..., opts=ResourceOptions(protect=True))`
protects the bucket and its siblings (children inherit `protect`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

import pulumi
import pulumi_aws as aws

from components import object_store
from components.aws.common import AwsTags, PolicyDocument, Statement, key_or_given

_RULE_ID = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}[a-z0-9]$")


@dataclass(frozen=True)
class LifecycleRule:
    """One lifecycle rule over `prefix` ("" = the whole bucket). Days are S3's unit (1 = 24 hours)."""

    id: str
    prefix: str = ""
    expiration_days: int | None = None
    noncurrent_version_expiration_days: int | None = None
    abort_incomplete_multipart_upload_days: int | None = 7

    def __post_init__(self) -> None:
        if not _RULE_ID.match(self.id):
            raise ValueError(f"LifecycleRule.id {self.id!r} must be 1-255 of [A-Za-z0-9._-]")
        actions = (self.expiration_days, self.noncurrent_version_expiration_days,
                   self.abort_incomplete_multipart_upload_days)
        if all(a is None for a in actions):
            raise ValueError(f"LifecycleRule {self.id!r}: set at least one of expiration_days, "
                             "noncurrent_version_expiration_days, abort_incomplete_multipart_upload_days")
        for field_name in ("expiration_days", "noncurrent_version_expiration_days",
                           "abort_incomplete_multipart_upload_days"):
            value = getattr(self, field_name)
            if value is not None and value < 1:
                raise ValueError(f"LifecycleRule {self.id!r}: {field_name} must be >= 1, got {value}")

    def render(self) -> dict:
        rule: dict = {"id": self.id, "status": "Enabled", "filter": {"prefix": self.prefix}}
        if self.expiration_days is not None:
            rule["expiration"] = {"days": self.expiration_days}
        if self.noncurrent_version_expiration_days is not None:
            rule["noncurrent_version_expiration"] = {"noncurrent_days": self.noncurrent_version_expiration_days}
        if self.abort_incomplete_multipart_upload_days is not None:
            rule["abort_incomplete_multipart_upload"] = {
                "days_after_initiation": self.abort_incomplete_multipart_upload_days
            }
        return rule


class ObjectLockMode(str, Enum):
    GOVERNANCE = "GOVERNANCE"  # privileged users may shorten or lift retention
    COMPLIANCE = "COMPLIANCE"  # nobody, root included, can delete before retention ends


@dataclass(frozen=True)
class ObjectLock:
    mode: ObjectLockMode = ObjectLockMode.GOVERNANCE
    retention_days: int = 30

    def __post_init__(self) -> None:
        if self.retention_days < 1:
            raise ValueError(f"ObjectLock.retention_days must be >= 1, got {self.retention_days}")


DEFAULT_RULES = (LifecycleRule("abort-incomplete-multipart-uploads", abort_incomplete_multipart_upload_days=7),)


@dataclass(frozen=True)
class SecureBucketArgs:
    tags: AwsTags
    purpose: str = ""  # a Purpose tag
    kms_key_arn: pulumi.Input[str] | None = None  # None: the bucket gets its own rotating key
    versioning: bool = True
    lifecycle_rules: Sequence[LifecycleRule] = DEFAULT_RULES
    object_lock: ObjectLock | None = None
    force_destroy: bool = False  # true only for throwaway stacks: deletes every object on destroy
    min_tls_version: str = "1.2"

    def __post_init__(self) -> None:
        ids = [r.id for r in self.lifecycle_rules]
        if len(set(ids)) != len(ids):
            raise ValueError(f"SecureBucketArgs.lifecycle_rules: duplicate rule ids {ids}")
        if not self.versioning:
            if self.object_lock is not None:
                raise ValueError("SecureBucketArgs.object_lock requires versioning=True")
            noncurrent = [r.id for r in self.lifecycle_rules if r.noncurrent_version_expiration_days is not None]
            if noncurrent:
                raise ValueError(f"SecureBucketArgs.lifecycle_rules {noncurrent}: noncurrent-version "
                                 "expiration needs versioning=True")
        if self.min_tls_version not in ("1.2", "1.3"):
            raise ValueError(f"SecureBucketArgs.min_tls_version must be 1.2 or 1.3, got {self.min_tls_version!r}")


def tls_only_policy(bucket_arn: pulumi.Input[str], min_tls_version: str = "1.2") -> PolicyDocument:
    """Deny every request without TLS, and TLS older than `min_tls_version`, to the bucket and its objects."""
    everything = [bucket_arn, pulumi.Output.concat(bucket_arn, "/*")]
    return PolicyDocument([
        Statement(sid="DenyInsecureTransport", effect="Deny", principal="*", actions=["s3:*"],
                  resources=everything, conditions={"Bool": {"aws:SecureTransport": "false"}}),
        Statement(sid="DenyOutdatedTls", effect="Deny", principal="*", actions=["s3:*"],
                  resources=everything,
                  conditions={"NumericLessThan": {"s3:TlsVersion": min_tls_version}}),
    ])


class SecureBucket(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:aws:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags.render(**({"Purpose": args.purpose} if args.purpose else {}))

        self.key, key_arn = key_or_given(f"{name}-key", f"S3 bucket {name}", args.tags, self, args.kms_key_arn)

        self.bucket = aws.s3.Bucket(
            name,
            force_destroy=args.force_destroy,
            object_lock_enabled=True if args.object_lock else None,
            tags=tags,
            opts=child,
        )
        bucket_id = self.bucket.id

        self.ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket_id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
        )
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        self.encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_id,
            rules=[{
                "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms", "kms_master_key_id": key_arn},
                "bucket_key_enabled": True,
            }],
            opts=child,
        )
        self.versioning: aws.s3.BucketVersioning | None = None
        if args.versioning:
            self.versioning = aws.s3.BucketVersioning(
                f"{name}-versioning", bucket=bucket_id, versioning_configuration={"status": "Enabled"}, opts=child
            )
        self.lifecycle: aws.s3.BucketLifecycleConfiguration | None = None
        if args.lifecycle_rules:
            self.lifecycle = aws.s3.BucketLifecycleConfiguration(
                f"{name}-lifecycle",
                bucket=bucket_id,
                rules=[r.render() for r in args.lifecycle_rules],
                # Noncurrent-version rules act on versions: versioning first.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[r for r in [self.versioning] if r]),
            )
        self.object_lock: aws.s3.BucketObjectLockConfiguration | None = None
        if args.object_lock is not None:
            self.object_lock = aws.s3.BucketObjectLockConfiguration(
                f"{name}-object-lock",
                bucket=bucket_id,
                rule={"default_retention": {"mode": args.object_lock.mode.value,
                                            "days": args.object_lock.retention_days}},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[r for r in [self.versioning] if r]),
            )
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket_id,
            policy=tls_only_policy(self.bucket.arn, args.min_tls_version).to_json(),
            # S3 rejects concurrent bucket-policy and public-access-block writes.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access_block]),
        )

        self.bucket_name = self.bucket.bucket
        self.arn = self.bucket.arn
        self.kms_key_arn = pulumi.Output.from_input(key_arn)
        self.register_outputs({"bucket_name": self.bucket_name, "arn": self.arn, "kms_key_arn": self.kms_key_arn})


# ------------------------------------------------------------- presets


def backup_rules(retention_days: int = 30, noncurrent_days: int = 7) -> tuple[LifecycleRule, ...]:
    """Backups (seed 000: 30 days): expire, drop the expired versions soon after, abort stale uploads."""
    return (LifecycleRule("expire-backups", expiration_days=retention_days,
                          noncurrent_version_expiration_days=noncurrent_days,
                          abort_incomplete_multipart_upload_days=1),)


def backup_bucket_args(tags: AwsTags, retention_days: int = 30, kms_key_arn: pulumi.Input[str] | None = None,
                       object_lock: ObjectLock | None = None) -> SecureBucketArgs:
    """The backup bucket; create it with `opts=ResourceOptions(protect=True)`."""
    return SecureBucketArgs(tags=tags, purpose="backups", kms_key_arn=kms_key_arn,
                            lifecycle_rules=backup_rules(retention_days), object_lock=object_lock)


@dataclass(frozen=True)
class BucketSpec:
    """One bucket of a ContentBuckets set, as data."""

    name: str
    purpose: str
    lifecycle_rules: Sequence[LifecycleRule]
    protect: bool = False
    object_lock: ObjectLock | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"BucketSpec.name {self.name!r} must be 2-42 of [a-z0-9-]")


def _keep(current_days: int | None, noncurrent_days: int) -> tuple[LifecycleRule, ...]:
    return (LifecycleRule("retention", expiration_days=current_days,
                          noncurrent_version_expiration_days=noncurrent_days,
                          abort_incomplete_multipart_upload_days=7),)


# Seed 001's bucket strategy. Every bucket is versioned (issue 6 asks for
# versioning; the seed had it off for instagram-media and temp-uploads):
# those two keep overwritten/deleted versions for one day only, which is
# the seed's "no versioning" in effect while still protecting against a
# same-day mistake.
def from_seed(spec: object_store.BucketSpec) -> BucketSpec:
    """A seed bucket (components/object_store.py: the one description of the bucket set) as an S3 bucket."""
    if spec.name == BACKUPS:
        rules = backup_rules(spec.expire_days or 30, spec.noncurrent_expire_days or 7)
    else:
        # Unversioned seed buckets keep overwritten/deleted versions for a day only.
        rules = _keep(spec.expire_days, spec.noncurrent_expire_days or (90 if spec.versioned else 1))
    return BucketSpec(spec.name, spec.name.replace("-", " "), rules, protect=spec.name == BACKUPS)


BACKUPS = "system-backups"
CONTENT_BUCKETS: tuple[BucketSpec, ...] = tuple(from_seed(b) for b in object_store.SEED_BUCKETS)


@dataclass(frozen=True)
class ContentBucketsArgs:
    tags: AwsTags
    buckets: Sequence[BucketSpec] = CONTENT_BUCKETS
    kms_key_arn: pulumi.Input[str] | None = None  # None: one rotating key shared by the set

    def __post_init__(self) -> None:
        names = [b.name for b in self.buckets]
        if not names:
            raise ValueError("ContentBucketsArgs.buckets must not be empty")
        if len(set(names)) != len(names):
            raise ValueError(f"ContentBucketsArgs.buckets: duplicate names {names}")


class ContentBuckets(pulumi.ComponentResource):
    """A SecureBucket per spec, sharing one KMS key. Protected specs get protect=True."""

    buckets: dict[str, SecureBucket]
    bucket_names: dict[str, pulumi.Output[str]]
    bucket_arns: dict[str, pulumi.Output[str]]
    kms_key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ContentBucketsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:aws:ContentBuckets", name, None, opts)
        self.key, key_arn = key_or_given(f"{name}-key", f"S3 buckets {name}", args.tags, self, args.kms_key_arn)

        self.buckets = {}
        for spec in args.buckets:
            self.buckets[spec.name] = SecureBucket(
                f"{name}-{spec.name}",
                SecureBucketArgs(tags=args.tags, purpose=spec.purpose, kms_key_arn=key_arn,
                                 lifecycle_rules=spec.lifecycle_rules, object_lock=spec.object_lock),
                opts=pulumi.ResourceOptions(parent=self, protect=True if spec.protect else None),
            )
        self.bucket_names = {k: b.bucket_name for k, b in self.buckets.items()}
        self.bucket_arns = {k: b.arn for k, b in self.buckets.items()}
        self.kms_key_arn = pulumi.Output.from_input(key_arn)
        self.register_outputs({"bucket_names": self.bucket_names, "kms_key_arn": self.kms_key_arn})
