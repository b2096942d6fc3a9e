"""What every AWS component shares: the common tag set, IAM policy documents
as data (validated for least privilege), and the account/partition lookups.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import pulumi
import pulumi_aws as aws

MANAGED_BY = "pulumi"
RESERVED_TAG_KEYS = ("Project", "Environment", "ManagedBy")


# --------------------------------------------------------------------------- tags


@dataclass(frozen=True)
class AwsTags:
    """The tag set on every AWS resource: Project, Environment, ManagedBy=pulumi, plus extras."""

    project: str
    environment: str
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.project:
            raise ValueError("AwsTags.project must not be empty")
        if not self.environment:
            raise ValueError("AwsTags.environment must not be empty")
        clash = sorted(set(self.extra) & set(RESERVED_TAG_KEYS))
        if clash:
            raise ValueError(f"AwsTags.extra must not set {clash}; use project/environment")

    def render(self, **more: str) -> dict[str, str]:
        """The tags as a dict; `more` adds resource-specific ones (Name=..., Purpose=...)."""
        return {
            "Project": self.project,
            "Environment": self.environment,
            "ManagedBy": MANAGED_BY,
            **self.extra,
            **more,
        }


# ------------------------------------------------------------------ IAM policies

Effect = Literal["Allow", "Deny"]


@dataclass(frozen=True)
class Statement:
    """One IAM policy statement. Allow statements are held to least privilege:
    no wildcard in any action, and no resource that is `*` or wildcards the
    ARN's partition/service/region/account or a resource name (a trailing
    `*` after `/` or `:` - the objects under a bucket prefix, the streams of
    a log group - is the only wildcard allowed)."""

    sid: str
    actions: Sequence[str]
    resources: Sequence[pulumi.Input[str]] = ()
    effect: Effect = "Allow"
    principal: Mapping[str, Any] | str | None = None  # trust and resource policies only
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Why Resource "*" is unavoidable: read-only actions AWS cannot scope to a resource
    # (e.g. autoscaling:Describe*), or writes on resources whose ARN holds a generated id,
    # which then must be scoped by an aws:ResourceTag condition instead.
    unscoped_reason: str = ""

    def __post_init__(self) -> None:
        if not self.actions:
            raise ValueError(f"Statement {self.sid!r}: actions must not be empty")
        if self.effect == "Allow":
            wild = [a for a in self.actions if "*" in a]
            if wild:
                raise ValueError(f"Statement {self.sid!r}: wildcard actions {wild} are not least privilege")
            if self.unscoped_reason:
                writes = [a for a in self.actions if not a.split(":")[-1].startswith(("Describe", "Get", "List"))]
                by_tag = any(k.startswith("aws:ResourceTag/") for op in self.conditions.values() for k in op)
                if (writes and not by_tag) or list(self.resources) != ["*"]:
                    raise ValueError(f"Statement {self.sid!r}: Resource '*' only for read-only actions or writes "
                                     f"scoped by an aws:ResourceTag condition, got actions {writes} and "
                                     f"resources {list(self.resources)}")
                return
            for resource in self.resources:
                if isinstance(resource, str):
                    check_resource(self.sid, resource)

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Sid": self.sid, "Effect": self.effect}
        if self.principal is not None:
            out["Principal"] = self.principal
        out["Action"] = list(self.actions)
        if self.resources:
            out["Resource"] = list(self.resources)
        if self.conditions:
            out["Condition"] = {k: dict(v) for k, v in self.conditions.items()}
        return out


def check_resource(sid: str, resource: str) -> None:
    """Raise ValueError unless `resource` is a scoped ARN (see Statement)."""
    if resource == "*" or not resource.startswith("arn:"):
        raise ValueError(f"Statement {sid!r}: resource {resource!r} must be a scoped ARN, not a wildcard")
    header = resource.split(":")[:5]
    if len(resource.split(":")) < 6 or any("*" in part for part in header):
        raise ValueError(f"Statement {sid!r}: resource {resource!r} wildcards the ARN's account/service")
    if "*" in resource[:-1] or "?" in resource:
        raise ValueError(f"Statement {sid!r}: resource {resource!r} may only end in a single '*'")
    if resource.split(":", 5)[5] == "*" or (resource.endswith("*") and resource[-2] not in "/:"):
        # `bucket/prefix/*` and `log-group:name:log-stream:*` scope by a named parent;
        # `arn:aws:s3:::*` or `arn:aws:s3:::bucket*` would match other buckets.
        raise ValueError(f"Statement {sid!r}: resource {resource!r} wildcards a name, not the contents of one")


@dataclass(frozen=True)
class PolicyDocument:
    statements: Sequence[Statement]

    def __post_init__(self) -> None:
        if not self.statements:
            raise ValueError("PolicyDocument.statements must not be empty")
        sids = [s.sid for s in self.statements]
        if len(set(sids)) != len(sids):
            raise ValueError(f"PolicyDocument: duplicate statement ids {sids}")

    def to_json(self) -> pulumi.Output[str]:
        """The JSON policy; resources that were Outputs are checked once they resolve."""
        rendered = {"Version": "2012-10-17", "Statement": [s.render() for s in self.statements]}
        unscoped = {s.sid for s in self.statements if s.unscoped_reason}  # checked in Statement already

        def finish(doc: dict[str, Any]) -> str:
            for statement in doc["Statement"]:
                if statement["Effect"] == "Allow" and statement["Sid"] not in unscoped:
                    for resource in statement.get("Resource", []):
                        check_resource(statement["Sid"], resource)
            return json.dumps(doc)

        return pulumi.Output.from_input(rendered).apply(finish)


def service_trust_policy(service: str, actions: Sequence[str] = ("sts:AssumeRole",),
                         conditions: Mapping[str, Mapping[str, Any]] | None = None) -> PolicyDocument:
    """A role trust policy for an AWS service principal (eks.amazonaws.com, ...)."""
    return PolicyDocument([
        Statement(
            sid="TrustService",
            principal={"Service": service},
            actions=actions,
            conditions=conditions or {},
        )
    ])


# ----------------------------------------------------------------- lookups


@dataclass(frozen=True)
class AccountContext:
    partition: str
    account_id: str
    region: str

    def managed_policy(self, name: str) -> str:
        """The ARN of an AWS managed IAM policy."""
        return f"arn:{self.partition}:iam::aws:policy/{name}"


def account_context(parent: pulumi.Resource) -> AccountContext:
    """Partition, account and region of the provider the component runs under."""
    invoke = pulumi.InvokeOptions(parent=parent)
    return AccountContext(
        partition=aws.get_partition(opts=invoke).partition,
        account_id=aws.get_caller_identity(opts=invoke).account_id,
        region=aws.get_region(opts=invoke).region,
    )


def kms_key(name: str, description: str, tags: AwsTags, parent: pulumi.Resource,
            deletion_window_days: int = 30) -> aws.kms.Key:
    """A symmetric customer-managed key with yearly automatic rotation."""
    return aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=deletion_window_days,
        tags=tags.render(Name=name),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def key_or_given(name: str, description: str, tags: AwsTags, parent: pulumi.Resource,
                 given: pulumi.Input[str] | None) -> tuple[aws.kms.Key | None, pulumi.Input[str]]:
    """(own rotating key, its ARN) when no key ARN was given, else (None, the given ARN)."""
    if given is not None:
        return None, given
    key = kms_key(name, description, tags, parent)
    return key, key.arn
