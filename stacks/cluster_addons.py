"""The cluster add-ons of compose() (aquascene:addons): what to install, what only to assert.

An add-on is needed when the stack uses it: metrics-server for any HPA, cert-manager when
the routes get certificates, Envoy Gateway in gateway mode. The node autoscaler scales the
EKS node groups this stack creates, so it needs aws.enabled (stacks/config.py checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.addons import CLUSTER_AUTOSCALER_SERVICE_ACCOUNT, AddonSwitch, ClusterAddons, ClusterAddonsArgs
from components.addons import ClusterAutoscaler as AutoscalerSpec
from stacks.config import StackConfig

if TYPE_CHECKING:  # the AWS SDK is imported where used: slow to import, and most stacks need none of it
    from components.aws.irsa import ServiceAccountRole
    from stacks.aws import AwsFoundation


def compose_addons(config: StackConfig, opts: pulumi.ResourceOptions,
                   aws_layer: AwsFoundation | None) -> ClusterAddons:
    a = config.addons
    uses_hpa = any(s.autoscaling is not None for s in config.services.values())
    autoscaler = None
    if a.node_autoscaler.install:
        assert aws_layer is not None  # validated: node_autoscaler needs aws.enabled
        autoscaler = AutoscalerSpec(cluster_name=aws_layer.cluster.cluster_name, region=aws_layer.region,
                                    role_arn=cluster_autoscaler_role(config, aws_layer).arn)
    return ClusterAddons("addons", ClusterAddonsArgs(
        metrics_server=AddonSwitch(a.metrics_server.install, needed=uses_hpa or a.metrics_server.install),
        # The routes' certificates, and the Barman Cloud plugin's chart (its webhook's Certificate).
        cert_manager=AddonSwitch(a.cert_manager.install, needed=config.ingress.tls_issuer != "none" or (
            config.postgres.mode == "cloudnative-pg" and config.postgres.install_operator)),
        envoy_gateway=AddonSwitch(a.envoy_gateway.install, needed=config.ingress.mode == "gateway"),
        cluster_autoscaler=autoscaler,
        gateway_class=config.ingress.gateway_class,
    ), opts=opts)


def cluster_autoscaler_role(config: StackConfig, aws_layer: AwsFoundation) -> ServiceAccountRole:
    """cluster-autoscaler's documented permissions: reads AWS cannot scope, and the two writes
    only on Auto Scaling groups tagged as this cluster's (EKS tags its managed node groups)."""
    from components.aws.common import PolicyDocument, Statement
    from components.aws.irsa import ServiceAccountRole, ServiceAccountRoleArgs

    cluster = f"{aws_layer.tags.project}-{config.environment}"
    policy = PolicyDocument([
        Statement("DiscoverNodeGroups", [
            "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
            "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
            "eks:DescribeNodegroup",
        ], ["*"], unscoped_reason="AWS offers no resource-level permissions for these reads"),
        Statement("ScaleOwnNodeGroups", [
            "autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup",
        ], ["*"], conditions={"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}": "owned"}},
            unscoped_reason="Auto Scaling group ARNs hold a generated id; scoped by the cluster's tag instead"),
    ])
    return ServiceAccountRole(f"{cluster}-cluster-autoscaler", ServiceAccountRoleArgs(
        oidc_provider_arn=aws_layer.cluster.oidc_provider_arn, oidc_provider_url=aws_layer.cluster.oidc_provider_url,
        namespace="kube-system", service_account=CLUSTER_AUTOSCALER_SERVICE_ACCOUNT, tags=aws_layer.tags,
        policy=policy, description="cluster-autoscaler: scales this cluster's managed node groups",
    ))
