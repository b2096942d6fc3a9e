"""SecureBucket and ContentBuckets: every v7 sibling resource, correlated to its bucket."""

from __future__ import annotations

import pytest

import pulumi
import tooling.recording as recording
from components.aws import (
    CONTENT_BUCKETS, BucketSpec, ContentBuckets, ContentBucketsArgs, LifecycleRule, ObjectLock, ObjectLockMode,
    SecureBucket, SecureBucketArgs, backup_bucket_args,
)
from tests.unit.aws_support import EXPECTED_TAGS, TAGS, one, policy_of

BUCKET = "aws:s3/bucket:Bucket"
SIBLINGS = {
    "versioning": "aws:s3/bucketVersioning:BucketVersioning",
    "encryption": "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "public_access_block": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "lifecycle": "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "policy": "aws:s3/bucketPolicy:BucketPolicy",
    "ownership": "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "object_lock": "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
}


@pytest.fixture
def protected(monkeypatch) -> dict[str, bool]:
    """URN -> the `protect` flag each registration carried to the engine."""
    flags: dict[str, bool] = {}
    original = recording.RecordingMonitor.RegisterResource

    def register(self, request):
        response = original(self, request)
        flags[response.urn] = bool(request.protect)
        return response

    monkeypatch.setattr(recording.RecordingMonitor, "RegisterResource", register)
    return flags


def siblings_of(rec, bucket) -> dict[str, dict]:
    """The sibling resources whose `bucket` input is this bucket's name (how S3 correlates them)."""
    found: dict[str, dict] = {}
    for key, type_token in SIBLINGS.items():
        matches = [r for r in rec.of_type(type_token) if r.plain_inputs.get("bucket") == bucket.id]
        assert len(matches) <= 1, f"{len(matches)} {key} resources for {bucket.id}"
        if matches:
            found[key] = matches[0].plain_inputs
    return found


def secure_bucket(run_program, opts=None, **overrides):
    args = SecureBucketArgs(**{"tags": TAGS, **overrides})
    return run_program(lambda: SecureBucket("assets", args, opts=opts))


def test_bucket_has_every_sibling_correlated_to_it(run_program):
    rec = secure_bucket(run_program, purpose="assets")
    bucket = one(rec, BUCKET)
    assert bucket.plain_inputs["forceDestroy"] is False
    assert bucket.plain_inputs["tags"] == {**EXPECTED_TAGS, "Purpose": "assets"}
    siblings = siblings_of(rec, bucket)
    assert sorted(siblings) == ["encryption", "lifecycle", "ownership", "policy", "public_access_block", "versioning"]
    assert siblings["versioning"]["versioningConfiguration"] == {"status": "Enabled"}
    assert siblings["public_access_block"] == {
        "bucket": bucket.id, "blockPublicAcls": True, "blockPublicPolicy": True,
        "ignorePublicAcls": True, "restrictPublicBuckets": True,
    }
    assert siblings["ownership"]["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_sse_kms_with_the_buckets_own_rotating_key(run_program):
    rec = secure_bucket(run_program)
    key = one(rec, "aws:kms/key:Key")
    assert key.plain_inputs["enableKeyRotation"] is True
    encryption = siblings_of(rec, one(rec, BUCKET))["encryption"]
    assert encryption["rules"] == [{
        "applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key.outputs["arn"]},
        "bucketKeyEnabled": True,
    }]


def test_a_given_key_is_used_and_none_created(run_program):
    given = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    rec = secure_bucket(run_program, kms_key_arn=given)
    assert rec.of_type("aws:kms/key:Key") == []
    rule = siblings_of(rec, one(rec, BUCKET))["encryption"]["rules"][0]
    assert rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == given


def test_policy_denies_insecure_transport_and_old_tls(run_program):
    rec = secure_bucket(run_program)
    bucket = one(rec, BUCKET)
    arn = bucket.outputs["arn"]
    assert arn == f"arn:aws:s3:::{bucket.id}"
    policy_resource = [r for r in rec.of_type(SIBLINGS["policy"]) if r.plain_inputs["bucket"] == bucket.id][0]
    assert one(rec, SIBLINGS["public_access_block"]).urn in policy_resource.dependencies
    statements = policy_of(policy_resource)["Statement"]
    assert statements == [
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": ["s3:*"],
         "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "DenyOutdatedTls", "Effect": "Deny", "Principal": "*", "Action": ["s3:*"],
         "Resource": [arn, f"{arn}/*"], "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}}},
    ]


def test_default_lifecycle_aborts_incomplete_multipart_uploads(run_program):
    rec = secure_bucket(run_program)
    assert siblings_of(rec, one(rec, BUCKET))["lifecycle"]["rules"] == [{
        "id": "abort-incomplete-multipart-uploads", "status": "Enabled", "filter": {"prefix": ""},
        "abortIncompleteMultipartUpload": {"daysAfterInitiation": 7},
    }]


def test_backup_bucket_expires_after_30_days_and_is_protected(run_program, protected):
    rec = run_program(lambda: SecureBucket("backups", backup_bucket_args(TAGS),
                                           opts=pulumi.ResourceOptions(protect=True)))
    bucket = one(rec, BUCKET)
    siblings = siblings_of(rec, bucket)
    lifecycle = [r for r in rec.of_type(SIBLINGS["lifecycle"]) if r.plain_inputs["bucket"] == bucket.id][0]
    assert siblings["lifecycle"]["rules"] == [{
        "id": "expire-backups", "status": "Enabled", "filter": {"prefix": ""},
        "expiration": {"days": 30},
        "noncurrentVersionExpiration": {"noncurrentDays": 7},
        "abortIncompleteMultipartUpload": {"daysAfterInitiation": 1},
    }]
    versioning = one(rec, SIBLINGS["versioning"])
    assert versioning.urn in lifecycle.dependencies
    # protect on the component reaches the bucket, its key and every sibling.
    for r in rec.resources:
        if r.type.startswith("aws:"):
            assert protected[r.urn] is True, r.name


def test_unprotected_by_default(run_program, protected):
    rec = secure_bucket(run_program)
    assert protected[one(rec, BUCKET).urn] is False


def test_object_lock_is_optional_data(run_program):
    rec = secure_bucket(run_program, object_lock=ObjectLock(mode=ObjectLockMode.COMPLIANCE, retention_days=30))
    bucket = one(rec, BUCKET)
    assert bucket.plain_inputs["objectLockEnabled"] is True
    assert siblings_of(rec, bucket)["object_lock"]["rule"] == {
        "defaultRetention": {"mode": "COMPLIANCE", "days": 30}}
    plain = secure_bucket(run_program)
    assert "objectLockEnabled" not in one(plain, BUCKET).plain_inputs
    assert plain.of_type(SIBLINGS["object_lock"]) == []


def test_every_child_is_parented_and_tagged(run_program):
    rec = secure_bucket(run_program)
    component = one(rec, "aquascene:aws:SecureBucket")
    for r in rec.resources:
        if r.type.startswith("aws:"):
            assert r.parent == component.urn
            if "tags" in r.plain_inputs:
                assert {k: r.plain_inputs["tags"][k] for k in EXPECTED_TAGS} == EXPECTED_TAGS


def test_five_content_buckets_share_one_key(run_program, protected):
    rec = run_program(lambda: ContentBuckets("content", ContentBucketsArgs(tags=TAGS)))
    buckets = {b.name.removeprefix("content-"): b for b in rec.of_type(BUCKET)}
    assert sorted(buckets) == ["content-assets", "instagram-media", "newsletter-templates",
                               "system-backups", "temp-uploads"]
    key = one(rec, "aws:kms/key:Key")
    for b in buckets.values():
        siblings = siblings_of(rec, b)
        assert siblings["encryption"]["rules"][0]["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == \
            key.outputs["arn"]
        assert siblings["versioning"]["versioningConfiguration"] == {"status": "Enabled"}
        assert all(siblings["public_access_block"][flag] is True for flag in (
            "blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
        assert protected[b.urn] is (b.name == "content-system-backups")

    def rule(name):
        return siblings_of(rec, buckets[name])["lifecycle"]["rules"][0]

    assert rule("instagram-media")["expiration"] == {"days": 365}
    assert rule("temp-uploads")["expiration"] == {"days": 1}
    assert rule("temp-uploads")["noncurrentVersionExpiration"] == {"noncurrentDays": 1}
    assert rule("system-backups")["expiration"] == {"days": 30}
    assert "expiration" not in rule("content-assets")
    assert rule("content-assets")["noncurrentVersionExpiration"] == {"noncurrentDays": 90}
    assert "expiration" not in rule("newsletter-templates")


def test_content_bucket_set_is_data(run_program):
    specs = [s for s in CONTENT_BUCKETS if s.name != "system-backups"]
    rec = run_program(lambda: ContentBuckets("content", ContentBucketsArgs(tags=TAGS, buckets=specs)))
    assert len(rec.of_type(BUCKET)) == 4


@pytest.mark.parametrize("build, message", [
    (lambda: LifecycleRule("nothing", abort_incomplete_multipart_upload_days=None),
     r"LifecycleRule 'nothing': set at least one of"),
    (lambda: LifecycleRule("zero", expiration_days=0), r"LifecycleRule 'zero': expiration_days must be >= 1"),
    (lambda: SecureBucketArgs(tags=TAGS, versioning=False, object_lock=ObjectLock()),
     r"SecureBucketArgs.object_lock requires versioning=True"),
    (lambda: SecureBucketArgs(tags=TAGS, versioning=False,
                              lifecycle_rules=[LifecycleRule("nc", noncurrent_version_expiration_days=3)]),
     r"noncurrent-version expiration needs versioning=True"),
    (lambda: SecureBucketArgs(tags=TAGS, lifecycle_rules=[LifecycleRule("a", expiration_days=1)] * 2),
     r"duplicate rule ids"),
    (lambda: SecureBucketArgs(tags=TAGS, min_tls_version="1.0"), r"min_tls_version must be 1.2 or 1.3"),
    (lambda: BucketSpec("Bad_Name", "x", ()), r"BucketSpec.name 'Bad_Name'"),
])
def test_invalid_bucket_args_name_the_field(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_unversioned_bucket_has_no_versioning_resource(run_program):
    rec = secure_bucket(run_program, versioning=False)
    assert "versioning" not in siblings_of(rec, one(rec, BUCKET))
