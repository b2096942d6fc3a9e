"""RdsPostgres and ElastiCacheRedis: HA, encryption, network reach, generated credentials."""

from __future__ import annotations

import urllib.parse

import pulumi
import pytest

from components.aws import ElastiCacheRedis, ElastiCacheRedisArgs, RdsPostgres, RdsPostgresArgs, RedisClusterMode
from tooling.recording import is_secret
from tests.unit.aws_support import EXPECTED_TAGS, TAGS, one

SUBNETS = ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"]
CLUSTER_SG = "sg-0cluster1234567"
RDS = "aws:rds/instance:Instance"
GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def rds_args(**overrides) -> RdsPostgresArgs:
    return RdsPostgresArgs(**{"vpc_id": "vpc-0123", "subnet_ids": SUBNETS,
                              "allowed_security_group_ids": [CLUSTER_SG], "tags": TAGS, **overrides})


def redis_args(**overrides) -> ElastiCacheRedisArgs:
    return ElastiCacheRedisArgs(**{"vpc_id": "vpc-0123", "subnet_ids": SUBNETS,
                                   "allowed_security_group_ids": [CLUSTER_SG], "tags": TAGS, **overrides})


def export_connection(store) -> None:
    for key in ("host", "port", "username", "password", "url"):
        pulumi.export(key, getattr(store, key))


def postgres(run_program, **overrides):
    def program():
        db = RdsPostgres("db", rds_args(**overrides))
        export_connection(db)
        pulumi.export("database", db.database)
    return run_program(program)


def redis(run_program, **overrides):
    return run_program(lambda: export_connection(ElastiCacheRedis("cache", redis_args(**overrides))))


def assert_reachable_only_from_the_cluster(rec, port: int) -> str:
    group = one(rec, "aws:ec2/securityGroup:SecurityGroup")
    assert "ingress" not in group.plain_inputs and "egress" not in group.plain_inputs  # no inline rules
    rule = one(rec, INGRESS).plain_inputs
    assert rule["securityGroupId"] == group.id
    assert rule["referencedSecurityGroupId"] == CLUSTER_SG
    assert (rule["ipProtocol"], rule["fromPort"], rule["toPort"]) == ("tcp", port, port)
    assert "cidrIpv4" not in rule and "cidrIpv6" not in rule
    assert rec.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule") == []
    return group.id


# --------------------------------------------------------------------------- RDS


def test_rds_is_multi_az_encrypted_retained_and_protected(run_program):
    rec = postgres(run_program)
    key = one(rec, "aws:kms/key:Key")
    assert key.plain_inputs["enableKeyRotation"] is True
    db = one(rec, RDS).plain_inputs
    expected = {
        "engine": "postgres", "engineVersion": "17.6", "instanceClass": "db.m5.large",
        "allocatedStorage": 500, "maxAllocatedStorage": 1000, "storageType": "gp3",
        "multiAz": True, "storageEncrypted": True, "kmsKeyId": key.outputs["arn"],
        "backupRetentionPeriod": 30, "backupWindow": "03:00-04:00", "maintenanceWindow": "sun:04:00-sun:05:00",
        "deletionProtection": True, "skipFinalSnapshot": False, "finalSnapshotIdentifier": "db-final",
        "performanceInsightsEnabled": True, "performanceInsightsKmsKeyId": key.outputs["arn"],
        "performanceInsightsRetentionPeriod": 7, "publiclyAccessible": False,
        "dbName": "content_engine", "username": "content_engine", "port": 5432,
        "enabledCloudwatchLogsExports": ["postgresql", "upgrade"], "copyTagsToSnapshot": True,
    }
    assert {k: db[k] for k in expected} == expected
    assert {k: db["tags"][k] for k in EXPECTED_TAGS} == EXPECTED_TAGS


def test_rds_lives_in_the_private_subnets_behind_the_cluster_only_group(run_program):
    rec = postgres(run_program)
    db = one(rec, RDS).plain_inputs
    subnet_group = one(rec, "aws:rds/subnetGroup:SubnetGroup")
    assert subnet_group.plain_inputs["subnetIds"] == SUBNETS
    assert db["dbSubnetGroupName"] == subnet_group.outputs["name"]
    group_id = assert_reachable_only_from_the_cluster(rec, 5432)
    assert db["vpcSecurityGroupIds"] == [group_id]


def test_rds_parameter_group_carries_the_seed_tuning_in_rds_units(run_program):
    rec = postgres(run_program)
    group = one(rec, "aws:rds/parameterGroup:ParameterGroup")
    assert one(rec, RDS).plain_inputs["parameterGroupName"] == group.outputs["name"]
    assert group.plain_inputs["family"] == "postgres17"
    params = {p["name"]: (p["value"], p["applyMethod"]) for p in group.plain_inputs["parameters"]}
    assert params["shared_buffers"] == ("32768", "pending-reboot")  # 256MB in 8 kB pages
    assert params["max_connections"] == ("200", "pending-reboot")
    assert params["wal_buffers"] == ("2048", "pending-reboot")
    assert params["effective_cache_size"] == ("131072", "immediate")
    assert params["work_mem"] == ("4096", "immediate")
    assert params["maintenance_work_mem"] == ("65536", "immediate")
    assert params["max_wal_size"] == ("4096", "immediate")
    assert params["random_page_cost"] == ("1.1", "immediate")
    assert params["rds.force_ssl"] == ("1", "immediate")
    assert len(params) == 17


def test_rds_password_is_generated_and_secret_everywhere(run_program):
    rec = postgres(run_program)
    password = one(rec, "random:index/randomPassword:RandomPassword")
    assert (password.plain_inputs["length"], password.plain_inputs["special"]) == (32, False)
    generated = password.outputs["result"]
    db = one(rec, RDS)
    assert is_secret(db.inputs["password"])
    assert db.plain_inputs["password"] == generated
    outputs = rec.stack_outputs
    assert is_secret(outputs["password"]) and outputs["password"]["value"] == generated
    assert is_secret(outputs["url"])
    host = db.outputs["address"]
    assert outputs["host"] == host and host.endswith(".eu-west-1.rds.amazonaws.com")
    assert (outputs["port"], outputs["username"], outputs["database"]) == (5432, "content_engine", "content_engine")
    assert outputs["url"]["value"] == (
        f"postgresql://content_engine:{urllib.parse.quote(generated, safe='')}@{host}:5432/content_engine"
        "?sslmode=require")


def test_rds_sizing_is_data(run_program):
    rec = postgres(run_program, instance_class="db.r6g.large", multi_az=False, backup_retention_days=7,
                   performance_insights_retention_days=93, engine_version="16.4")
    db = one(rec, RDS).plain_inputs
    assert (db["instanceClass"], db["multiAz"], db["backupRetentionPeriod"]) == ("db.r6g.large", False, 7)
    assert db["performanceInsightsRetentionPeriod"] == 93
    assert one(rec, "aws:rds/parameterGroup:ParameterGroup").plain_inputs["family"] == "postgres16"


def test_rds_uses_a_given_key(run_program):
    key = "arn:aws:kms:eu-west-1:123456789012:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    rec = postgres(run_program, kms_key_arn=key)
    assert rec.of_type("aws:kms/key:Key") == []
    assert one(rec, RDS).plain_inputs["kmsKeyId"] == key


@pytest.mark.parametrize("overrides, message", [
    ({"allowed_security_group_ids": []}, r"RdsPostgresArgs.allowed_security_group_ids must name at least one"),
    ({"subnet_ids": ["subnet-0aaa"]}, r"RdsPostgresArgs.subnet_ids must list subnets in at least two AZs"),
    ({"username": "postgres"}, r"RdsPostgresArgs.username 'postgres' is reserved"),
    ({"username": "Content"}, r"RdsPostgresArgs.username must be a lowercase identifier"),
    ({"backup_retention_days": 40}, r"RdsPostgresArgs.backup_retention_days must be 1-35"),
    ({"max_allocated_storage_gib": 100}, r"max_allocated_storage_gib must be >= allocated_storage_gib"),
    ({"performance_insights_retention_days": 30}, r"performance_insights_retention_days must be 7 or a multiple"),
    ({"engine_version": "latest"}, r"RdsPostgresArgs.engine_version must look like 17.6"),
    ({"backup_window": "3am"}, r"RdsPostgresArgs.backup_window"),
])
def test_invalid_rds_args_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        rds_args(**overrides)


# ------------------------------------------------------------------ ElastiCache


def test_elasticache_cluster_mode_multi_az_failover_and_encryption(run_program):
    rec = redis(run_program)
    key = one(rec, "aws:kms/key:Key")
    group = one(rec, GROUP).plain_inputs
    expected = {
        "engine": "redis", "engineVersion": "7.1", "nodeType": "cache.m5.large", "port": 6379,
        "clusterMode": "enabled", "numNodeGroups": 3, "replicasPerNodeGroup": 1,
        "parameterGroupName": "default.redis7.cluster.on",
        "automaticFailoverEnabled": True, "multiAzEnabled": True,
        "atRestEncryptionEnabled": True, "kmsKeyId": key.outputs["arn"],
        "transitEncryptionEnabled": True, "transitEncryptionMode": "required",
        "snapshotRetentionLimit": 7, "snapshotWindow": "02:00-03:00",
    }
    assert {k: group[k] for k in expected} == expected
    assert "numCacheClusters" not in group
    subnet_group = one(rec, "aws:elasticache/subnetGroup:SubnetGroup")
    assert subnet_group.plain_inputs["subnetIds"] == SUBNETS
    assert group["subnetGroupName"] == subnet_group.outputs["name"]
    assert group["securityGroupIds"] == [assert_reachable_only_from_the_cluster(rec, 6379)]


def test_elasticache_auth_token_is_generated_and_secret(run_program):
    rec = redis(run_program)
    token = one(rec, "random:index/randomPassword:RandomPassword")
    assert (token.plain_inputs["length"], token.plain_inputs["special"]) == (64, False)
    group = one(rec, GROUP)
    assert is_secret(group.inputs["authToken"])
    assert group.plain_inputs["authToken"] == token.outputs["result"]
    outputs = rec.stack_outputs
    host = group.outputs["configurationEndpointAddress"]
    assert outputs["host"] == host and host.startswith("clustercfg.")
    assert is_secret(outputs["password"]) and is_secret(outputs["url"])
    assert outputs["url"]["value"] == f"rediss://:{token.outputs['result']}@{host}:6379"
    assert outputs["username"] == "default"


def test_elasticache_without_cluster_mode_uses_the_primary_endpoint(run_program):
    rec = redis(run_program, cluster_mode=RedisClusterMode.DISABLED, replicas_per_shard=2)
    group = one(rec, GROUP)
    inputs = group.plain_inputs
    assert inputs["clusterMode"] == "disabled"
    assert inputs["numCacheClusters"] == 3
    assert "numNodeGroups" not in inputs and "replicasPerNodeGroup" not in inputs
    assert inputs["parameterGroupName"] == "default.redis7"
    assert rec.stack_outputs["host"] == group.outputs["primaryEndpointAddress"]


def test_valkey_engine_picks_its_parameter_group(run_program):
    rec = redis(run_program, engine="valkey", engine_version="8.0")
    inputs = one(rec, GROUP).plain_inputs
    assert (inputs["engine"], inputs["parameterGroupName"]) == ("valkey", "default.valkey8.cluster.on")


@pytest.mark.parametrize("overrides, message", [
    ({"allowed_security_group_ids": []}, r"ElastiCacheRedisArgs.allowed_security_group_ids must name"),
    ({"replicas_per_shard": 0}, r"ElastiCacheRedisArgs.replicas_per_shard must be 1-5"),
    ({"cluster_mode": "enabled"}, r"ElastiCacheRedisArgs.cluster_mode must be a RedisClusterMode"),
    ({"shards": 0}, r"ElastiCacheRedisArgs.shards must be 1-500"),
    ({"snapshot_retention_days": 36}, r"snapshot_retention_days must be 0-35"),
])
def test_invalid_elasticache_args_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        redis_args(**overrides)
