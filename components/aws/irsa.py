"""ServiceAccountRole: an IAM role for exactly one Kubernetes service account (IRSA).

The role trusts the cluster's OIDC provider only for the token of
`system:serviceaccount:<namespace>:<service account>` with audience
`sts.amazonaws.com`. Its permissions are an inline policy given as data
(a PolicyDocument, held to least privilege: no `*` actions or resources);
AWS-managed policies may be attached as well, for the EKS add-ons whose
documented permissions are exactly those policies.

The pod side: annotate the ServiceAccount with `service_account_annotations`
(`eks.amazonaws.com/role-arn`); the EKS pod identity webhook then projects
the web-identity token and the AWS SDKs pick it up.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_aws as aws

from components.aws.common import AwsTags, PolicyDocument, Statement

ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
STS_AUDIENCE = "sts.amazonaws.com"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@dataclass(frozen=True)
class ServiceAccountRoleArgs:
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]  # issuer without https://, e.g. oidc.eks.<region>.amazonaws.com/id/<ID>
    namespace: str
    service_account: str
    tags: AwsTags
    policy: PolicyDocument | None = None
    managed_policy_arns: Sequence[pulumi.Input[str]] = ()
    description: str = ""
    max_session_duration_seconds: int = 3600

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.namespace) or len(self.namespace) > 63:
            raise ValueError(f"ServiceAccountRoleArgs.namespace {self.namespace!r} is not a Kubernetes namespace name")
        if not _DNS_SUBDOMAIN.match(self.service_account) or len(self.service_account) > 253:
            raise ValueError(
                f"ServiceAccountRoleArgs.service_account {self.service_account!r} is not a service account name"
            )
        if self.policy is None and not self.managed_policy_arns:
            raise ValueError("ServiceAccountRoleArgs: give a policy or managed_policy_arns; a role with no permissions is a mistake")
        if not 3600 <= self.max_session_duration_seconds <= 43200:
            raise ValueError("ServiceAccountRoleArgs.max_session_duration_seconds must be 3600-43200")

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"


def irsa_trust_policy(oidc_provider_arn: pulumi.Input[str], oidc_provider_url: pulumi.Input[str],
                      subject: str) -> pulumi.Output[str]:
    """Trust for one service account's web-identity token, and only with the STS audience."""

    def render(values: list[str]) -> str:
        arn, url = values
        url = url.removeprefix("https://")
        return json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "TrustServiceAccount",
                "Effect": "Allow",
                "Principal": {"Federated": arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {f"{url}:sub": subject, f"{url}:aud": STS_AUDIENCE}},
            }],
        })

    return pulumi.Output.all(oidc_provider_arn, oidc_provider_url).apply(render)


class ServiceAccountRole(pulumi.ComponentResource):
    """IAM role + inline policy (+ managed attachments) for one Kubernetes service account."""

    arn: pulumi.Output[str]
    role_name: pulumi.Output[str]
    service_account_annotations: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: ServiceAccountRoleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:aws:ServiceAccountRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.namespace = args.namespace
        self.service_account = args.service_account
        self.subject = args.subject

        self.role = aws.iam.Role(
            name,
            description=args.description or f"IRSA role for {args.subject}",
            assume_role_policy=irsa_trust_policy(args.oidc_provider_arn, args.oidc_provider_url, args.subject),
            max_session_duration=args.max_session_duration_seconds,
            tags=args.tags.render(ServiceAccount=f"{args.namespace}/{args.service_account}"),
            opts=child,
        )
        self.policy: aws.iam.RolePolicy | None = None
        if args.policy is not None:
            self.policy = aws.iam.RolePolicy(
                f"{name}-policy", role=self.role.id, policy=args.policy.to_json(), opts=child
            )
        self.attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-managed-{i}", role=self.role.name, policy_arn=arn, opts=child)
            for i, arn in enumerate(args.managed_policy_arns)
        ]

        self.arn = self.role.arn
        self.role_name = self.role.name
        self.service_account_annotations = self.role.arn.apply(lambda arn: {ROLE_ARN_ANNOTATION: arn})
        self.register_outputs({"arn": self.arn, "role_name": self.role_name})


# ----------------------------------------------------------- policy builders


def _join(arn: pulumi.Input[str], suffix: str) -> pulumi.Input[str]:
    """`arn` + `suffix`; plain strings stay plain, so policies of known ARNs need no engine."""
    return arn + suffix if isinstance(arn, str) else pulumi.Output.concat(arn, suffix)


def _clean_prefix(prefix: str, field_name: str) -> str:
    cleaned = prefix.strip("/")
    if not cleaned or "*" in cleaned or "?" in cleaned:
        raise ValueError(f"{field_name}: prefix {prefix!r} must be a non-empty path without wildcards")
    return cleaned


def _kms_statement(kms_key_arn: pulumi.Input[str] | None) -> list[Statement]:
    """SSE-KMS objects need the bucket key for reads (Decrypt) and writes (GenerateDataKey)."""
    if kms_key_arn is None:
        return []
    return [Statement(sid="UseBucketKey", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[kms_key_arn])]


def backup_jobs_policy(bucket_arn: pulumi.Input[str], prefixes: Sequence[str],
                       kms_key_arn: pulumi.Input[str] | None = None) -> PolicyDocument:
    """Backup jobs: put/get objects under the backup prefixes and list only those prefixes.

    No delete: expiry is the bucket's lifecycle rule, so a compromised job
    cannot erase the history it writes to.
    """
    if not prefixes:
        raise ValueError("backup_jobs_policy: prefixes must not be empty")
    clean = [_clean_prefix(p, "backup_jobs_policy") for p in prefixes]
    objects = [_join(bucket_arn, f"/{p}/*") for p in clean]
    listing = [v for p in clean for v in (f"{p}/", f"{p}/*")]
    return PolicyDocument([
        Statement(
            sid="ListBackupPrefixes",
            actions=["s3:ListBucket"],
            resources=[bucket_arn],
            conditions={"StringLike": {"s3:prefix": listing}},
        ),
        Statement(sid="ReadWriteBackups", actions=["s3:GetObject", "s3:PutObject"], resources=objects),
        *_kms_statement(kms_key_arn),
    ])


def content_engine_policy(bucket_arns: Sequence[pulumi.Input[str]],
                          kms_key_arn: pulumi.Input[str] | None = None) -> PolicyDocument:
    """The content engine: list, read, write and delete objects in its content buckets only."""
    if not bucket_arns:
        raise ValueError("content_engine_policy: bucket_arns must not be empty")
    objects = [_join(arn, "/*") for arn in bucket_arns]
    return PolicyDocument([
        Statement(sid="ListContentBuckets", actions=["s3:GetBucketLocation", "s3:ListBucket"],
                  resources=list(bucket_arns)),
        Statement(sid="ReadWriteContentObjects", actions=["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                  resources=objects),
        *_kms_statement(kms_key_arn),
    ])
