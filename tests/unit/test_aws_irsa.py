"""ServiceAccountRole and the policy builders: exact trust, exact ARNs, no wildcards."""

from __future__ import annotations

import pulumi
import pytest

from components.aws import (
    PolicyDocument, ServiceAccountRole, ServiceAccountRoleArgs, Statement, backup_jobs_policy, content_engine_policy,
)
from tests.unit.aws_support import ACCOUNT_ID, TAGS, assert_least_privilege, one, policy_of

OIDC_HOST = "oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"
OIDC_ARN = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{OIDC_HOST}"
BACKUPS = "arn:aws:s3:::aquascene-prod-backups-1a2b3c4"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT_ID}:key/0f0e0d0c-0b0a-0908-0706-050403020100"
ROLE = "aws:iam/role:Role"
INLINE = "aws:iam/rolePolicy:RolePolicy"


def role_args(**overrides) -> ServiceAccountRoleArgs:
    base = dict(oidc_provider_arn=OIDC_ARN, oidc_provider_url=OIDC_HOST, namespace="aquascene-prod",
                service_account="backup", tags=TAGS, policy=backup_jobs_policy(BACKUPS, ["postgres", "redis"], KEY))
    return ServiceAccountRoleArgs(**{**base, **overrides})


def sa_role(run_program, policy=None, **overrides):
    """`policy` is a function: Outputs must be made inside the program, under the mocks."""
    def program():
        extra = {"policy": policy()} if policy else {}
        role = ServiceAccountRole("backup-jobs", role_args(**overrides, **extra))
        pulumi.export("annotations", role.service_account_annotations)
        return role
    return run_program(program)


def test_trust_is_exactly_one_service_account_with_the_sts_audience(run_program):
    rec = sa_role(run_program)
    trust = policy_of(one(rec, ROLE), "assumeRolePolicy")
    assert trust == {"Version": "2012-10-17", "Statement": [{
        "Sid": "TrustServiceAccount", "Effect": "Allow",
        "Principal": {"Federated": OIDC_ARN},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{OIDC_HOST}:sub": "system:serviceaccount:aquascene-prod:backup",
            f"{OIDC_HOST}:aud": "sts.amazonaws.com",
        }},
    }]}


def test_an_issuer_url_with_scheme_is_accepted(run_program):
    rec = sa_role(run_program, oidc_provider_url=f"https://{OIDC_HOST}")
    condition = policy_of(one(rec, ROLE), "assumeRolePolicy")["Statement"][0]["Condition"]["StringEquals"]
    assert sorted(condition) == [f"{OIDC_HOST}:aud", f"{OIDC_HOST}:sub"]


def test_backup_jobs_put_get_list_on_their_prefixes_only(run_program):
    rec = sa_role(run_program)
    role, inline = one(rec, ROLE), one(rec, INLINE)
    assert inline.plain_inputs["role"] == role.id
    document = policy_of(inline)
    assert_least_privilege(document)
    assert document["Statement"] == [
        {"Sid": "ListBackupPrefixes", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [BACKUPS],
         "Condition": {"StringLike": {"s3:prefix": ["postgres/", "postgres/*", "redis/", "redis/*"]}}},
        {"Sid": "ReadWriteBackups", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": [f"{BACKUPS}/postgres/*", f"{BACKUPS}/redis/*"]},
        {"Sid": "UseBucketKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
         "Resource": [KEY]},
    ]
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert not any("Delete" in a for a in actions)  # expiry is the lifecycle rule's job


def test_content_engine_reaches_its_buckets_only(run_program):
    buckets = ["arn:aws:s3:::content-assets-1111111", "arn:aws:s3:::temp-uploads-2222222"]
    rec = sa_role(run_program, service_account="content-manager", policy=lambda: content_engine_policy(buckets, KEY))
    document = policy_of(one(rec, INLINE))
    assert_least_privilege(document)
    assert document["Statement"] == [
        {"Sid": "ListContentBuckets", "Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"],
         "Resource": buckets},
        {"Sid": "ReadWriteContentObjects", "Effect": "Allow",
         "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
         "Resource": [f"{b}/*" for b in buckets]},
        {"Sid": "UseBucketKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
         "Resource": [KEY]},
    ]


def test_policies_built_from_outputs_resolve_to_the_same_arns(run_program):
    rec = sa_role(run_program, policy=lambda: backup_jobs_policy(pulumi.Output.from_input(BACKUPS), ["postgres"]))
    document = policy_of(one(rec, INLINE))
    assert document["Statement"][1]["Resource"] == [f"{BACKUPS}/postgres/*"]
    assert [s["Sid"] for s in document["Statement"]] == ["ListBackupPrefixes", "ReadWriteBackups"]


def test_annotation_names_the_role(run_program):
    rec = sa_role(run_program)
    assert rec.stack_outputs["annotations"] == {"eks.amazonaws.com/role-arn": one(rec, ROLE).outputs["arn"]}
    assert one(rec, ROLE).outputs["arn"].startswith(f"arn:aws:iam::{ACCOUNT_ID}:role/backup-jobs-")


def test_managed_policies_are_attachments(run_program):
    managed = "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"
    rec = run_program(lambda: ServiceAccountRole("cni", role_args(policy=None, managed_policy_arns=[managed])))
    assert rec.of_type(INLINE) == []
    attachment = one(rec, "aws:iam/rolePolicyAttachment:RolePolicyAttachment").plain_inputs
    assert attachment == {"role": one(rec, ROLE).id, "policyArn": managed}


@pytest.mark.parametrize("actions", [["s3:*"], ["s3:Get*"], ["*"]])
def test_wildcard_actions_are_refused(actions):
    with pytest.raises(ValueError, match="wildcard actions"):
        Statement(sid="Bad", actions=actions, resources=[BACKUPS])


@pytest.mark.parametrize("resource", ["*", "arn:aws:s3:::*", "arn:aws:s3:::aquascene-*", "arn:aws:*:eu-west-1::x",
                                      "arn:aws:s3:::bucket/*/x", "bucket-name"])
def test_wildcard_or_bare_resources_are_refused(resource):
    with pytest.raises(ValueError, match=r"Statement 'Bad': resource"):
        Statement(sid="Bad", actions=["s3:GetObject"], resources=[resource])


def test_a_wildcard_arriving_through_an_output_fails_the_deployment(run_program):
    def bad():
        return PolicyDocument([Statement(sid="Bad", actions=["s3:GetObject"],
                                         resources=[pulumi.Output.from_input("*")])])
    with pytest.raises(Exception, match="must be a scoped ARN"):
        sa_role(run_program, policy=bad)


def test_deny_statements_may_use_wildcards():
    Statement(sid="DenyAll", effect="Deny", principal="*", actions=["s3:*"], resources=[BACKUPS])


@pytest.mark.parametrize("build, message", [
    (lambda: role_args(namespace="Aquascene"), r"ServiceAccountRoleArgs.namespace 'Aquascene'"),
    (lambda: role_args(service_account="Backup_Jobs"), r"ServiceAccountRoleArgs.service_account"),
    (lambda: role_args(policy=None), r"give a policy or managed_policy_arns"),
    (lambda: role_args(max_session_duration_seconds=60), r"max_session_duration_seconds must be 3600-43200"),
    (lambda: backup_jobs_policy(BACKUPS, []), r"backup_jobs_policy: prefixes must not be empty"),
    (lambda: backup_jobs_policy(BACKUPS, ["pg*"]), r"backup_jobs_policy: prefix 'pg\*'"),
    (lambda: backup_jobs_policy(BACKUPS, ["/"]), r"backup_jobs_policy: prefix '/'"),
    (lambda: content_engine_policy([]), r"content_engine_policy: bucket_arns must not be empty"),
])
def test_invalid_role_args_name_the_field(build, message):
    with pytest.raises(ValueError, match=message):
        build()
