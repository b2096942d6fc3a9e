"""The prod stack on AWS: the foundation compose() builds and how the platform uses it."""

from __future__ import annotations

import json

import pytest

from tests.unit.secret_support import app_secret_refs
from stacks.config import ConfigError


@pytest.fixture(scope="module")
def prod():
    from tests.conftest import recorded_stack

    return recorded_stack("prod")


def inputs(rec, type_token):
    return [r.plain_inputs for r in rec.of_type(type_token)]


def test_vpc_with_three_private_and_three_public_subnets(prod):
    assert len(prod.of_type("aws:ec2/vpc:Vpc")) == 1
    subnets = {r.name: r.plain_inputs for r in prod.of_type("aws:ec2/subnet:Subnet")}
    public = [s for n, s in subnets.items() if "-public-" in n]
    private = [s for n, s in subnets.items() if "-private-" in n]
    assert not any(s["mapPublicIpOnLaunch"] for s in subnets.values())  # nothing gets a public IP by default
    assert len(public) == 3 and len(private) == 3
    assert len({s["availabilityZone"] for s in private}) == 3
    assert len(prod.of_type("aws:ec2/natGateway:NatGateway")) == 3  # one per AZ in prod


def test_eks_private_encrypted_logged_and_sized_from_config(prod):
    (cluster,) = inputs(prod, "aws:eks/cluster:Cluster")
    access = cluster["vpcConfig"]
    assert access["endpointPrivateAccess"] is True and access["endpointPublicAccess"] is False
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    assert set(cluster["enabledClusterLogTypes"]) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    assert cluster["version"] == "1.33"
    (nodes,) = inputs(prod, "aws:eks/nodeGroup:NodeGroup")
    assert nodes["scalingConfig"] == {"minSize": 3, "desiredSize": 3, "maxSize": 20}


def test_backup_bucket_encrypted_versioned_blocked_and_protected(prod):
    buckets = {r.urn: r for r in prod.of_type("aws:s3/bucket:Bucket")}
    backup = next(r for r in buckets.values() if "system-backups" in r.name)
    siblings = {r.type.rsplit(":", 1)[-1]: r for r in prod.children_of(backup.parent)}
    assert siblings["BucketVersioning"].plain_inputs["versioningConfiguration"]["status"] == "Enabled"
    sse = siblings["BucketServerSideEncryptionConfiguration"].plain_inputs["rules"][0]
    assert sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    block = siblings["BucketPublicAccessBlock"].plain_inputs
    assert all(block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    rules = siblings["BucketLifecycleConfiguration"].plain_inputs["rules"]
    assert rules[0]["expiration"]["days"] == 30


def test_irsa_roles_bind_exactly_one_service_account_each(prod):
    roles = {r.name: r.plain_inputs for r in prod.of_type("aws:iam/role:Role")}
    subjects = []
    for name, role in roles.items():
        policy = json.loads(role["assumeRolePolicy"])
        for statement in policy["Statement"]:
            for cond in statement.get("Condition", {}).values():
                subjects += [v for k, v in cond.items() if k.endswith(":sub")]
    expected = {f"system:serviceaccount:aquascene-prod:{sa}" for sa in
                ("backup", "postgres", "content-manager", "ai-processor", "web-scraper", "distributor",
                 "subscriber-manager")}
    assert expected <= set(subjects)
    for policy in inputs(prod, "aws:iam/rolePolicy:RolePolicy"):
        for statement in json.loads(policy["policy"])["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any("*" in a for a in actions), statement


def test_cloudnative_pg_archives_to_the_aws_backup_bucket_with_its_role(prod):
    store = prod.k8s_object("ObjectStore", "postgres-backups")["spec"]["configuration"]
    assert store["destinationPath"].startswith("s3://aquascene-prod-system-backups")
    assert store["s3Credentials"] == {"inheritFromIAMRole": True} and "endpointURL" not in store
    cluster = prod.k8s_object("Cluster", "postgres")["spec"]
    assert cluster["serviceAccountTemplate"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]


def test_stack_outputs_include_kubeconfig_as_secret(prod):
    from tooling.recording import is_secret

    out = prod.stack_outputs
    assert is_secret(out["kubeconfig"])
    assert {"cluster_endpoint", "backup_bucket", "role_arns", "vpc_id"} <= set(out)
    assert set(out["role_arns"]) >= {"backup", "postgres", "content-manager"}


def test_managed_rds_and_elasticache_keep_the_same_app_secrets(run_stack):
    rec = run_stack("prod", {"postgres": {"mode": "rds", "continuous_backup": {"enabled": False}},
                             "redis": {"mode": "elasticache"}})
    (db,) = inputs(rec, "aws:rds/instance:Instance")
    assert db["multiAz"] is True and db["storageEncrypted"] is True and db["deletionProtection"] is True
    assert db["backupRetentionPeriod"] == 30 and db["publiclyAccessible"] is False
    (group,) = inputs(rec, "aws:elasticache/replicationGroup:ReplicationGroup")
    assert group["atRestEncryptionEnabled"] is True and group["transitEncryptionEnabled"] is True
    assert rec.kubernetes("Cluster") == [] and not any(
        r.plain_inputs["metadata"]["name"] == "redis" for r in rec.kubernetes("StatefulSet"))
    secrets = {r.plain_inputs["metadata"]["name"]: r.plain_inputs["stringData"] for r in rec.kubernetes("Secret")}
    assert secrets["postgres-app"]["url"].startswith("postgresql://")
    assert secrets["redis-auth"]["url-content-manager"].startswith("rediss://")
    refs = app_secret_refs(rec.k8s_object("Deployment", "distributor")["spec"]["template"]["spec"])
    assert refs["DATABASE_URL"] == {"name": "postgres-pooler-app", "key": "url"}  # through RDS Proxy
    assert ".proxy-" in secrets["postgres-pooler-app"]["url"]
    assert refs["REDIS_URL"] == {"name": "redis-auth", "key": "url-distributor"}
    egress = rec.k8s_object("NetworkPolicy", "distributor")["spec"]["egress"]
    vpc_rules = [r for r in egress if r["to"][0].get("ipBlock", {}).get("cidr") == "10.0.0.0/16"]
    assert {p["port"] for r in vpc_rules for p in r["ports"]} == {5432, 6379}


@pytest.mark.parametrize("overrides, message", [
    ({"aws": {"enabled": False}}, "object_store.mode: s3 need aws.enabled: true"),
    ({"aws": {"public_access_cidrs": ["0.0.0.0/0"]}}, "never /0"),
    ({"aws": {"node_min": 5, "node_desired": 3}}, "node_min <= node_desired <= node_max"),
])
def test_aws_config_validation(run_stack, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run_stack("prod", overrides)
