"""The components wired the way the prod stack uses them: the outputs of one feed the next."""

from __future__ import annotations

import inspect

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws import (
    ContentBuckets, ContentBucketsArgs, EksCluster, EksClusterArgs, ElastiCacheRedis, ElastiCacheRedisArgs, Network,
    NetworkArgs, RdsPostgres, RdsPostgresArgs, ServiceAccountRole, ServiceAccountRoleArgs, backup_jobs_policy,
    content_engine_policy,
)
from tests.unit.aws_support import TAGS, assert_least_privilege, named, one, policy_of


def prod_like():
    net = Network("net", NetworkArgs(tags=TAGS, cluster_name="aquascene-test"))
    eks = EksCluster("eks", EksClusterArgs(
        cluster_name="aquascene-test", kubernetes_version="1.33", vpc_id=net.vpc_id,
        subnet_ids=net.private_subnet_ids, tags=TAGS, public_access_cidrs=["198.51.100.0/24"]))
    buckets = ContentBuckets("content", ContentBucketsArgs(tags=TAGS))
    backups = buckets.buckets["system-backups"]
    irsa = dict(oidc_provider_arn=eks.oidc_provider_arn, oidc_provider_url=eks.oidc_provider_url,
                namespace="aquascene-test", tags=TAGS)
    ServiceAccountRole("backup-jobs", ServiceAccountRoleArgs(
        service_account="backup", policy=backup_jobs_policy(backups.arn, ["postgres", "redis"], backups.kms_key_arn),
        **irsa))
    ServiceAccountRole("content-engine", ServiceAccountRoleArgs(
        service_account="content-manager", **irsa,
        policy=content_engine_policy([b.arn for k, b in buckets.buckets.items() if k != "system-backups"],
                                     buckets.kms_key_arn)))
    data = dict(vpc_id=net.vpc_id, subnet_ids=net.private_subnet_ids,
                allowed_security_group_ids=[eks.cluster_security_group_id], tags=TAGS)
    RdsPostgres("db", RdsPostgresArgs(**data))
    ElastiCacheRedis("cache", ElastiCacheRedisArgs(**data))
    # What the platform does with the cluster's provider.
    k8s.core.v1.Namespace("ns", metadata={"name": "aquascene-test"},
                          opts=pulumi.ResourceOptions(provider=eks.kubernetes_provider))


def test_outputs_flow_from_network_to_cluster_to_roles_and_data(run_program):
    rec = run_program(prod_like)
    private = sorted(s.id for s in rec.of_type("aws:ec2/subnet:Subnet") if s.name.startswith("net-private-"))
    cluster = one(rec, "aws:eks/cluster:Cluster")
    assert sorted(cluster.plain_inputs["vpcConfig"]["subnetIds"]) == private
    assert sorted(one(rec, "aws:eks/nodeGroup:NodeGroup").plain_inputs["subnetIds"]) == private
    cluster_sg = cluster.outputs["vpcConfig"]["clusterSecurityGroupId"]
    ingress = rec.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert sorted((r.plain_inputs["fromPort"], r.plain_inputs["referencedSecurityGroupId"]) for r in ingress) == [
        (5432, cluster_sg), (6379, cluster_sg)]
    assert sorted(one(rec, "aws:rds/subnetGroup:SubnetGroup").plain_inputs["subnetIds"]) == private

    provider_arn = one(rec, "aws:iam/openIdConnectProvider:OpenIdConnectProvider").outputs["arn"]
    backups_arn = named(rec, "aws:s3/bucket:Bucket", "content-system-backups").outputs["arn"]
    for role_name, subject in (("backup-jobs", "aquascene-test:backup"),
                               ("content-engine", "aquascene-test:content-manager")):
        role = named(rec, "aws:iam/role:Role", role_name)
        trust = policy_of(role, "assumeRolePolicy")["Statement"][0]
        assert trust["Principal"] == {"Federated": provider_arn}
        assert [v for k, v in trust["Condition"]["StringEquals"].items() if k.endswith(":sub")] == [
            f"system:serviceaccount:{subject}"]
        document = policy_of(named(rec, "aws:iam/rolePolicy:RolePolicy", f"{role_name}-policy"))
        assert_least_privilege(document)
        resources = [r for s in document["Statement"] for r in s["Resource"]]
        touches_backups = any(r.startswith(backups_arn) for r in resources)
        assert touches_backups is (role_name == "backup-jobs")


def test_kubernetes_objects_go_through_the_eks_provider(run_program):
    rec = run_program(prod_like)
    provider = one(rec, "pulumi:providers:kubernetes")
    objects = rec.kubernetes()
    assert sorted(o.kind for o in objects) == ["Namespace", "StorageClass"]
    assert all(o.provider.startswith(provider.urn + "::") for o in objects)


def _taggable(type_token: str) -> bool:
    """Whether the provider resource takes `tags` (e.g. Vpc does, Route does not)."""
    module, cls = type_token.split(":")[1].split("/")[0], type_token.rsplit(":", 1)[-1]
    return "tags" in inspect.signature(getattr(getattr(aws, module), cls)._internal_init).parameters


def test_every_taggable_aws_resource_carries_the_common_tags(run_program):
    rec = run_program(prod_like)
    aws_resources = [r for r in rec.resources if r.type.startswith("aws:")]
    taggable = [r for r in aws_resources if _taggable(r.type)]
    assert len(taggable) > 40
    for r in taggable:
        tags = r.plain_inputs.get("tags", {})
        assert (tags.get("Project"), tags.get("Environment"), tags.get("ManagedBy")) == (
            "aquascene", "test", "pulumi"), r.name


def test_the_policy_pack_finds_nothing_in_the_aws_layer(run_program):
    from tooling.policy import evaluate, states_from_recording

    rec = run_program(prod_like)
    aws_urns = {r.urn for r in rec.resources if r.type.startswith("aws:")}
    report = evaluate(states_from_recording(rec))
    assert report.policies > 0
    assert [f for f in report.findings if f.urn in aws_urns or f.urn == ""] == []
