"""EksCluster: encryption, endpoint access, logging, node groups, IRSA, add-ons, kubeconfig, gp3."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.aws import CapacityType, EksCluster, EksClusterArgs, NodeGroupSpec, StorageClassSpec
from tooling.recording import is_secret
from tests.unit.aws_support import (
    ACCOUNT_ID, EXPECTED_TAGS, REGION, TAGS, assert_least_privilege, named, one, policy_of,
)

PRIVATE_SUBNETS = ["subnet-0aaa", "subnet-0bbb", "subnet-0ccc"]
ADDON = "aws:eks/addon:Addon"
ROLE = "aws:iam/role:Role"
ATTACH = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


def args(**overrides) -> EksClusterArgs:
    base = dict(cluster_name="aquascene-test", kubernetes_version="1.33", vpc_id="vpc-0123",
                subnet_ids=PRIVATE_SUBNETS, tags=TAGS)
    return EksClusterArgs(**{**base, **overrides})


def cluster(run_program, **overrides):
    def program():
        eks = EksCluster("eks", args(**overrides))
        pulumi.export("kubeconfig", eks.kubeconfig)
        pulumi.export("oidc_provider_url", eks.oidc_provider_url)
        pulumi.export("oidc_provider_arn", eks.oidc_provider_arn)
        pulumi.export("cluster_security_group_id", eks.cluster_security_group_id)
        return eks
    return run_program(program)


def eks_cluster(rec):
    return one(rec, "aws:eks/cluster:Cluster")


def role_with_trust(rec, principal: dict) -> list:
    return [r for r in rec.of_type(ROLE) if policy_of(r, "assumeRolePolicy")["Statement"][0]["Principal"] == principal]


def attached(rec, role) -> list[str]:
    return sorted(a.plain_inputs["policyArn"] for a in rec.of_type(ATTACH) if a.plain_inputs["role"] == role.id)


def test_cluster_version_name_and_private_endpoint(run_program):
    rec = cluster(run_program)
    inputs = eks_cluster(rec).plain_inputs
    assert inputs["name"] == "aquascene-test"
    assert inputs["version"] == "1.33"
    assert inputs["vpcConfig"] == {"subnetIds": PRIVATE_SUBNETS, "endpointPrivateAccess": True,
                                   "endpointPublicAccess": False}
    assert inputs["deletionProtection"] is True
    assert inputs["accessConfig"] == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": True}
    assert inputs["upgradePolicy"] == {"supportType": "STANDARD"}
    assert {k: inputs["tags"][k] for k in EXPECTED_TAGS} == EXPECTED_TAGS


def test_public_endpoint_only_for_restricted_cidrs(run_program):
    rec = cluster(run_program, public_access_cidrs=["198.51.100.0/24", "203.0.113.7/32"])
    vpc = eks_cluster(rec).plain_inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == ["198.51.100.0/24", "203.0.113.7/32"]


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_api_open_to_the_internet_is_rejected(cidr):
    with pytest.raises(ValueError, match=r"EksClusterArgs.public_access_cidrs: .* opens the API to the internet"):
        args(public_access_cidrs=[cidr])


def test_secrets_envelope_encryption_with_a_rotating_key(run_program):
    rec = cluster(run_program)
    key = one(rec, "aws:kms/key:Key")
    assert key.plain_inputs["enableKeyRotation"] is True
    assert key.plain_inputs["deletionWindowInDays"] == 30
    assert eks_cluster(rec).plain_inputs["encryptionConfig"] == {
        "provider": {"keyArn": key.outputs["arn"]}, "resources": ["secrets"],
    }
    alias = one(rec, "aws:kms/alias:Alias").plain_inputs
    assert alias == {"name": "alias/eks/aquascene-test", "targetKeyId": key.outputs["keyId"]}
    # The control plane may use that key and nothing else.
    cluster_role = role_with_trust(rec, {"Service": "eks.amazonaws.com"})[0]
    kms = named(rec, "aws:iam/rolePolicy:RolePolicy", "eks-cluster-kms")
    assert kms.plain_inputs["role"] == cluster_role.id
    document = policy_of(kms)
    assert_least_privilege(document)
    assert document["Statement"] == [{
        "Sid": "EnvelopeEncryption", "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:ListGrants"],
        "Resource": [key.outputs["arn"]],
    }]


def test_every_control_plane_log_type_into_a_retained_log_group(run_program):
    rec = cluster(run_program)
    cluster_r = eks_cluster(rec)
    assert cluster_r.plain_inputs["enabledClusterLogTypes"] == [
        "api", "audit", "authenticator", "controllerManager", "scheduler"]
    group = one(rec, "aws:cloudwatch/logGroup:LogGroup")
    assert group.plain_inputs["name"] == "/aws/eks/aquascene-test/cluster"
    assert group.plain_inputs["retentionInDays"] == 90
    assert group.urn in cluster_r.dependencies  # exists before EKS would create its own


def test_node_group_3_3_20_in_the_private_subnets(run_program):
    rec = cluster(run_program)
    group = one(rec, "aws:eks/nodeGroup:NodeGroup").plain_inputs
    assert group["scalingConfig"] == {"minSize": 3, "desiredSize": 3, "maxSize": 20}
    assert group["instanceTypes"] == ["m5.large"]
    assert group["capacityType"] == "ON_DEMAND"
    assert group["amiType"] == "AL2023_x86_64_STANDARD"
    assert group["subnetIds"] == PRIVATE_SUBNETS
    assert group["clusterName"] == "aquascene-test"
    assert group["updateConfig"] == {"maxUnavailable": 1}
    node_role = role_with_trust(rec, {"Service": "ec2.amazonaws.com"})
    assert len(node_role) == 1
    assert group["nodeRoleArn"] == node_role[0].outputs["arn"]
    template = one(rec, "aws:ec2/launchTemplate:LaunchTemplate")
    assert group["launchTemplate"] == {"id": template.id, "version": "1"}


def test_nodes_require_imdsv2_and_encrypt_their_root_volume(run_program):
    rec = cluster(run_program)
    template = one(rec, "aws:ec2/launchTemplate:LaunchTemplate").plain_inputs
    assert template["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                           "httpPutResponseHopLimit": 1}
    assert template["blockDeviceMappings"] == [{"deviceName": "/dev/xvda", "ebs": {
        "volumeSize": 50, "volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true"}}]


def test_node_groups_are_data(run_program):
    rec = cluster(run_program, node_groups=[
        NodeGroupSpec(),
        NodeGroupSpec(name="spot", instance_types=["m6i.large", "m5a.large"], min_size=0, desired_size=1,
                      max_size=5, capacity_type=CapacityType.SPOT, labels={"workload": "batch"}),
    ])
    spot = named(rec, "aws:eks/nodeGroup:NodeGroup", "eks-spot").plain_inputs
    assert spot["scalingConfig"] == {"minSize": 0, "desiredSize": 1, "maxSize": 5}
    assert spot["instanceTypes"] == ["m6i.large", "m5a.large"]
    assert spot["capacityType"] == "SPOT"
    assert spot["labels"] == {"aquascene.io/node-group": "spot", "workload": "batch"}
    assert len(rec.of_type("aws:ec2/launchTemplate:LaunchTemplate")) == 2


def test_cluster_and_node_roles_get_exactly_the_documented_managed_policies(run_program):
    rec = cluster(run_program)
    cluster_role = role_with_trust(rec, {"Service": "eks.amazonaws.com"})[0]
    trust = policy_of(cluster_role, "assumeRolePolicy")["Statement"][0]
    assert trust["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert attached(rec, cluster_role) == ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"]
    node_role = role_with_trust(rec, {"Service": "ec2.amazonaws.com"})[0]
    # No CNI policy on the node: the VPC CNI has its own IRSA role.
    assert attached(rec, node_role) == ["arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
                                        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"]


def test_oidc_provider_for_irsa(run_program):
    rec = cluster(run_program)
    issuer = eks_cluster(rec).outputs["identities"][0]["oidcs"][0]["issuer"]
    assert issuer.startswith(f"https://oidc.eks.{REGION}.amazonaws.com/id/")
    provider = one(rec, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert provider.plain_inputs["url"] == issuer
    assert provider.plain_inputs["clientIdLists"] == ["sts.amazonaws.com"]
    host = issuer.removeprefix("https://")
    assert rec.stack_outputs["oidc_provider_url"] == host
    assert rec.stack_outputs["oidc_provider_arn"] == f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{host}"


def test_core_addons_with_irsa_roles_for_cni_and_ebs_csi(run_program):
    rec = cluster(run_program)
    addons = {a.plain_inputs["addonName"]: a for a in rec.of_type(ADDON)}
    assert sorted(addons) == ["aws-ebs-csi-driver", "coredns", "kube-proxy", "vpc-cni"]
    for a in addons.values():
        assert a.plain_inputs["clusterName"] == "aquascene-test"
        assert a.plain_inputs["resolveConflictsOnCreate"] == "OVERWRITE"
        assert "addonVersion" not in a.plain_inputs  # EKS's default for 1.33 unless pinned
    assert json.loads(addons["vpc-cni"].plain_inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}
    provider_host = rec.stack_outputs["oidc_provider_url"]
    expected = {
        "vpc-cni": ("system:serviceaccount:kube-system:aws-node", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"),
        "aws-ebs-csi-driver": ("system:serviceaccount:kube-system:ebs-csi-controller-sa",
                               "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"),
    }
    roles = {r.outputs["arn"]: r for r in rec.of_type(ROLE)}
    for addon_name, (subject, policy) in expected.items():
        role = roles[addons[addon_name].plain_inputs["serviceAccountRoleArn"]]
        condition = policy_of(role, "assumeRolePolicy")["Statement"][0]["Condition"]
        assert condition == {"StringEquals": {f"{provider_host}:sub": subject,
                                              f"{provider_host}:aud": "sts.amazonaws.com"}}
        assert attached(rec, role) == [policy]
    for addon_name in ("coredns", "kube-proxy"):
        assert "serviceAccountRoleArn" not in addons[addon_name].plain_inputs


def test_network_addons_before_nodes_and_the_rest_after(run_program):
    rec = cluster(run_program)
    addons = {a.plain_inputs["addonName"]: a for a in rec.of_type(ADDON)}
    group = one(rec, "aws:eks/nodeGroup:NodeGroup")
    assert addons["vpc-cni"].urn in group.dependencies
    assert addons["kube-proxy"].urn in group.dependencies
    assert group.urn in addons["coredns"].dependencies
    assert group.urn in addons["aws-ebs-csi-driver"].dependencies


def test_addon_versions_are_pinned_from_args(run_program):
    rec = cluster(run_program, addon_versions={"coredns": "v1.12.1-eksbuild.2"})
    coredns = [a for a in rec.of_type(ADDON) if a.plain_inputs["addonName"] == "coredns"][0]
    assert coredns.plain_inputs["addonVersion"] == "v1.12.1-eksbuild.2"


def test_admin_principals_get_access_entries(run_program):
    admin = f"arn:aws:iam::{ACCOUNT_ID}:role/platform-admins"
    rec = cluster(run_program, admin_principal_arns=[admin])
    entry = one(rec, "aws:eks/accessEntry:AccessEntry").plain_inputs
    assert (entry["principalArn"], entry["type"]) == (admin, "STANDARD")
    association = one(rec, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation").plain_inputs
    assert association["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    assert association["accessScope"] == {"type": "cluster"}


def test_kubeconfig_is_a_secret_exec_based_config(run_program):
    rec = cluster(run_program)
    output = rec.stack_outputs["kubeconfig"]
    assert is_secret(output)
    config = json.loads(output["value"])
    cluster_r = eks_cluster(rec)
    assert config["clusters"] == [{"name": "aquascene-test", "cluster": {
        "server": cluster_r.outputs["endpoint"],
        "certificate-authority-data": cluster_r.outputs["certificateAuthority"]["data"]}}]
    assert config["current-context"] == "aquascene-test"
    exec_ = config["users"][0]["user"]["exec"]
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert exec_["command"] == "aws"
    assert exec_["args"] == ["--region", REGION, "eks", "get-token", "--cluster-name", "aquascene-test",
                             "--output", "json"]
    assert "token" not in json.dumps(config["users"][0]["user"]).replace("get-token", "")


def test_kubeconfig_profile_and_role(run_program):
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/deployer"
    rec = cluster(run_program, kubeconfig_aws_profile="prod", kubeconfig_role_arn=role)
    exec_ = json.loads(rec.stack_outputs["kubeconfig"]["value"])["users"][0]["user"]["exec"]
    assert exec_["args"][-2:] == ["--role-arn", role]
    assert exec_["env"] == [{"name": "AWS_PROFILE", "value": "prod"}]


def test_gp3_default_storage_class_through_the_clusters_own_provider(run_program):
    rec = cluster(run_program)
    provider = one(rec, "pulumi:providers:kubernetes")
    assert is_secret(provider.inputs["kubeconfig"])
    assert json.loads(provider.plain_inputs["kubeconfig"])["current-context"] == "aquascene-test"
    # The provider waits for nodes and add-ons, so nothing lands on an empty cluster.
    for dependency in [one(rec, "aws:eks/nodeGroup:NodeGroup"), *rec.of_type(ADDON)]:
        assert dependency.urn in provider.dependencies
    sc = one(rec, "kubernetes:storage.k8s.io/v1:StorageClass")
    assert sc.provider.startswith(provider.urn + "::")
    manifest = sc.plain_inputs
    assert manifest["metadata"]["name"] == "gp3"
    assert manifest["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert manifest["provisioner"] == "ebs.csi.aws.com"
    assert manifest["parameters"] == {"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4"}
    assert manifest["volumeBindingMode"] == "WaitForFirstConsumer"
    assert manifest["reclaimPolicy"] == "Retain"
    assert manifest["allowVolumeExpansion"] is True


def test_storage_class_is_optional_and_data(run_program):
    assert cluster(run_program, storage_class=None).kubernetes("StorageClass") == []
    rec = cluster(run_program, storage_class=StorageClassSpec(reclaim_policy="Delete", default=False))
    manifest = rec.k8s_object("StorageClass", "gp3")
    assert manifest["reclaimPolicy"] == "Delete"
    assert "annotations" not in manifest["metadata"]


def test_cluster_security_group_is_exposed(run_program):
    rec = cluster(run_program)
    assert rec.stack_outputs["cluster_security_group_id"] == \
        eks_cluster(rec).outputs["vpcConfig"]["clusterSecurityGroupId"]
    assert rec.stack_outputs["cluster_security_group_id"].startswith("sg-")


@pytest.mark.parametrize("overrides, message", [
    ({"kubernetes_version": "1.33.1"}, r"EksClusterArgs.kubernetes_version must look like 1.33"),
    ({"cluster_name": "-bad"}, r"EksClusterArgs.cluster_name"),
    ({"node_groups": []}, r"EksClusterArgs.node_groups must not be empty"),
    ({"node_groups": [NodeGroupSpec(), NodeGroupSpec()]}, r"duplicate names"),
    ({"log_types": ["api", "everything"]}, r"EksClusterArgs.log_types: unknown \['everything'\]"),
    ({"addon_versions": {"metrics-server": "v1"}}, r"EksClusterArgs.addon_versions: unknown add-ons"),
])
def test_invalid_cluster_args_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        args(**overrides)


@pytest.mark.parametrize("sizes", [(3, 2, 20), (3, 3, 2), (0, 0, 0)])
def test_node_group_sizes_must_be_ordered(sizes):
    low, desired, high = sizes
    with pytest.raises(ValueError, match="NodeGroupSpec 'default': need 0 <= min_size <= desired_size <= max_size"):
        NodeGroupSpec(min_size=low, desired_size=desired, max_size=high)
