"""EksCluster: a private, encrypted, logged EKS cluster with managed node groups.

What it declares (all parented to the component):
- IAM: the cluster role (AmazonEKSClusterPolicy + use of the secrets key) and
  the node role (AmazonEKSWorkerNodePolicy, AmazonEC2ContainerRegistryPullOnly;
  no CNI policy: the VPC CNI runs under its own IRSA role).
- A KMS key (rotation on) for envelope encryption of Kubernetes Secrets.
- The control-plane log group `/aws/eks/<name>/cluster` with a retention,
  created before the cluster so EKS does not create one that never expires.
- The cluster: pinned version, private endpoint; the public endpoint is off
  unless `public_access_cidrs` lists restricted CIDRs; access entries (API
  authentication mode) with the creator and `admin_principal_arns` as admins.
- The IAM OIDC provider for service-account roles (IRSA).
- Managed node groups from data, each with a launch template that requires
  IMDSv2 (hop limit 1: pods use IRSA, not the node role) and encrypts the root
  volume.
- The core add-ons: vpc-cni (NetworkPolicy enforcement on, IRSA role) and
  kube-proxy before the nodes join; coredns and aws-ebs-csi-driver (IRSA role)
  after.
- An explicit Kubernetes provider built from the cluster's own kubeconfig
  (`kubernetes_provider`), and with it the default gp3 StorageClass.

The Kubernetes side: this component *creates* the provider (it does not take
one). Pass `cluster.kubernetes_provider` to every Kubernetes resource of the
platform; it is ready only once the node groups and add-ons are, so nothing
is scheduled onto a cluster without nodes. `gp3_storage_class(...)` is the
helper the component uses, exposed for reuse.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, Mapping, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components import kube
from components.aws.common import AwsTags, PolicyDocument, Statement, account_context, kms_key, service_trust_policy
from components.aws.irsa import ServiceAccountRole, ServiceAccountRoleArgs

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
ADDONS_BEFORE_NODES = ("vpc-cni", "kube-proxy")
ADDONS_AFTER_NODES = ("coredns", "aws-ebs-csi-driver")
CORE_ADDONS = ADDONS_BEFORE_NODES + ADDONS_AFTER_NODES
# NetworkPolicy enforcement is off in the VPC CNI unless asked for; the platform relies on it.
DEFAULT_ADDON_CONFIGURATION: Mapping[str, Mapping[str, str]] = {"vpc-cni": {"enableNetworkPolicy": "true"}}
EBS_CSI_PROVISIONER = "ebs.csi.aws.com"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")
_VERSION = re.compile(r"^1\.[0-9]{2}$")
_NODE_GROUP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


class CapacityType(str, Enum):
    ON_DEMAND = "ON_DEMAND"
    SPOT = "SPOT"


@dataclass(frozen=True)
class NodeGroupSpec:
    """One managed node group. Seed 003: 3/3/20 m5.large."""

    name: str = "default"
    instance_types: Sequence[str] = ("m5.large",)
    min_size: int = 3
    desired_size: int = 3
    max_size: int = 20
    capacity_type: CapacityType = CapacityType.ON_DEMAND
    ami_type: str = "AL2023_x86_64_STANDARD"
    disk_size_gib: int = 50
    labels: Mapping[str, str] = field(default_factory=dict)
    max_unavailable: int = 1
    imds_hop_limit: int = 1  # 1: pods cannot reach the node's instance metadata (and its role)

    def __post_init__(self) -> None:
        where = f"NodeGroupSpec {self.name!r}"
        if not _NODE_GROUP_NAME.match(self.name):
            raise ValueError(f"{where}: name must be 1-31 of [a-z0-9-]")
        if not self.instance_types:
            raise ValueError(f"{where}: instance_types must not be empty")
        if not 0 <= self.min_size <= self.desired_size <= self.max_size or self.max_size < 1:
            raise ValueError(f"{where}: need 0 <= min_size <= desired_size <= max_size and max_size >= 1, "
                             f"got {self.min_size}/{self.desired_size}/{self.max_size}")
        if not isinstance(self.capacity_type, CapacityType):
            raise ValueError(f"{where}: capacity_type must be a CapacityType")
        if self.disk_size_gib < 20:
            raise ValueError(f"{where}: disk_size_gib must be >= 20")
        if self.max_unavailable < 1:
            raise ValueError(f"{where}: max_unavailable must be >= 1")
        if self.imds_hop_limit not in (1, 2):
            raise ValueError(f"{where}: imds_hop_limit must be 1 or 2")


@dataclass(frozen=True)
class StorageClassSpec:
    name: str = "gp3"
    reclaim_policy: Literal["Delete", "Retain"] = "Retain"  # a deleted claim keeps its EBS volume
    fs_type: str = "ext4"
    default: bool = True


@dataclass(frozen=True)
class EksClusterArgs:
    cluster_name: str
    kubernetes_version: str  # pinned, e.g. "1.33"
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]  # private subnets: control-plane ENIs and nodes
    tags: AwsTags
    node_groups: Sequence[NodeGroupSpec] = (NodeGroupSpec(),)
    public_access_cidrs: Sequence[str] = ()  # empty: the API endpoint is private only
    log_types: Sequence[str] = LOG_TYPES
    log_retention_days: int = 90
    log_kms_key_arn: pulumi.Input[str] | None = None
    addon_versions: Mapping[str, str] = field(default_factory=dict)  # unset: EKS's default for the version
    addon_configuration: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: dict(DEFAULT_ADDON_CONFIGURATION))
    admin_principal_arns: Sequence[str] = ()  # IAM roles/users granted cluster admin (access entries)
    deletion_protection: bool = True
    support_type: Literal["STANDARD", "EXTENDED"] = "STANDARD"
    kms_key_deletion_window_days: int = 30
    storage_class: StorageClassSpec | None = field(default_factory=StorageClassSpec)
    kubeconfig_aws_profile: str | None = None  # AWS_PROFILE for `aws eks get-token`
    kubeconfig_role_arn: str | None = None  # `--role-arn` for `aws eks get-token`

    def __post_init__(self) -> None:
        if not _CLUSTER_NAME.match(self.cluster_name):
            raise ValueError(f"EksClusterArgs.cluster_name {self.cluster_name!r} must be 1-100 of "
                             "[A-Za-z0-9_-], starting alphanumeric")
        if not _VERSION.match(self.kubernetes_version):
            raise ValueError(f"EksClusterArgs.kubernetes_version must look like 1.33, got {self.kubernetes_version!r}")
        if not self.node_groups:
            raise ValueError("EksClusterArgs.node_groups must not be empty")
        names = [g.name for g in self.node_groups]
        if len(set(names)) != len(names):
            raise ValueError(f"EksClusterArgs.node_groups: duplicate names {names}")
        for cidr in self.public_access_cidrs:
            try:
                net = ipaddress.ip_network(cidr)
            except ValueError:
                raise ValueError(f"EksClusterArgs.public_access_cidrs: {cidr!r} is not a CIDR") from None
            if net.prefixlen == 0:
                raise ValueError(f"EksClusterArgs.public_access_cidrs: {cidr} opens the API to the "
                                 "internet; list the operator/CI egress CIDRs instead")
        unknown_logs = sorted(set(self.log_types) - set(LOG_TYPES))
        if unknown_logs:
            raise ValueError(f"EksClusterArgs.log_types: unknown {unknown_logs}; allowed: {', '.join(LOG_TYPES)}")
        for field_name in ("addon_versions", "addon_configuration"):
            unknown = sorted(set(getattr(self, field_name)) - set(CORE_ADDONS))
            if unknown:
                raise ValueError(f"EksClusterArgs.{field_name}: unknown add-ons {unknown}; "
                                 f"allowed: {', '.join(CORE_ADDONS)}")
        if self.log_retention_days < 1:
            raise ValueError("EksClusterArgs.log_retention_days must be >= 1")
        if not 7 <= self.kms_key_deletion_window_days <= 30:
            raise ValueError("EksClusterArgs.kms_key_deletion_window_days must be 7-30")


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str,
               aws_profile: str | None = None, role_arn: str | None = None) -> str:
    """A kubeconfig (JSON) that authenticates with `aws eks get-token`: no credential inside."""
    args = ["--region", region, "eks", "get-token", "--cluster-name", cluster_name, "--output", "json"]
    if role_arn:
        args += ["--role-arn", role_arn]
    exec_config: dict = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "aws",
        "args": args,
        "interactiveMode": "Never",
    }
    if aws_profile:
        exec_config["env"] = [{"name": "AWS_PROFILE", "value": aws_profile}]
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "users": [{"name": cluster_name, "user": {"exec": exec_config}}],
        "preferences": {},
    })


def gp3_storage_class(name: str, spec: StorageClassSpec, provider: k8s.Provider,
                      opts: pulumi.ResourceOptions | None = None) -> k8s.storage.v1.StorageClass:
    """An encrypted gp3 StorageClass of the EBS CSI driver, the cluster default if `spec.default`."""
    annotations = {DEFAULT_CLASS_ANNOTATION: "true"} if spec.default else {}
    labels = {"app.kubernetes.io/part-of": kube.PART_OF, "app.kubernetes.io/managed-by": kube.MANAGED_BY}
    return k8s.storage.v1.StorageClass(
        name,
        metadata=kube.metadata(spec.name, None, labels, annotations),
        provisioner=EBS_CSI_PROVISIONER,
        parameters={"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": spec.fs_type},
        reclaim_policy=spec.reclaim_policy,
        volume_binding_mode="WaitForFirstConsumer",  # the volume is made in the pod's AZ
        allow_volume_expansion=True,
        opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(provider=provider), opts),
    )


class EksCluster(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_provider_url: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    secrets_kms_key_arn: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    kubernetes_provider: k8s.Provider

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:aws:EksCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags
        ctx = account_context(self)

        # --- IAM: cluster and node roles
        self.cluster_role = aws.iam.Role(
            f"{name}-cluster",
            description=f"EKS control plane of {args.cluster_name}",
            assume_role_policy=service_trust_policy(
                "eks.amazonaws.com", actions=["sts:AssumeRole", "sts:TagSession"]).to_json(),
            tags=tags.render(),
            opts=child,
        )
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster-policy", role=self.cluster_role.name,
            policy_arn=ctx.managed_policy("AmazonEKSClusterPolicy"), opts=child,
        )
        self.node_role = aws.iam.Role(
            f"{name}-node",
            description=f"EKS managed nodes of {args.cluster_name}",
            assume_role_policy=service_trust_policy("ec2.amazonaws.com").to_json(),
            tags=tags.render(),
            opts=child,
        )
        node_policies = [
            aws.iam.RolePolicyAttachment(f"{name}-node-{i}", role=self.node_role.name,
                                         policy_arn=ctx.managed_policy(policy), opts=child)
            for i, policy in enumerate(("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"))
        ]

        # --- Secrets envelope encryption
        self.secrets_key = kms_key(f"{name}-secrets", f"EKS {args.cluster_name} Secrets envelope encryption",
                                   tags, self, args.kms_key_deletion_window_days)
        aws.kms.Alias(f"{name}-secrets", name=f"alias/eks/{args.cluster_name}",
                      target_key_id=self.secrets_key.key_id, opts=child)
        key_use = aws.iam.RolePolicy(
            f"{name}-cluster-kms",
            role=self.cluster_role.id,
            policy=PolicyDocument([Statement(
                sid="EnvelopeEncryption",
                actions=["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:ListGrants"],
                resources=[self.secrets_key.arn],
            )]).to_json(),
            opts=child,
        )

        # --- Control-plane logs
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane",
            name=f"/aws/eks/{args.cluster_name}/cluster",  # the name EKS writes to
            retention_in_days=args.log_retention_days,
            kms_key_id=args.log_kms_key_arn,
            tags=tags.render(),
            opts=child,
        )

        # --- The cluster
        public = bool(args.public_access_cidrs)
        vpc_config: dict = {
            "subnet_ids": args.subnet_ids,
            "endpoint_private_access": True,
            "endpoint_public_access": public,
        }
        if public:
            vpc_config["public_access_cidrs"] = list(args.public_access_cidrs)
        self.cluster = aws.eks.Cluster(
            name,
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=self.cluster_role.arn,
            vpc_config=vpc_config,
            encryption_config={"provider": {"key_arn": self.secrets_key.arn}, "resources": ["secrets"]},
            enabled_cluster_log_types=list(args.log_types),
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
            upgrade_policy={"support_type": args.support_type},
            deletion_protection=args.deletion_protection,
            tags=tags.render(Name=args.cluster_name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster_policy, key_use, self.log_group]),
        )
        cluster_name = self.cluster.name

        for i, principal in enumerate(args.admin_principal_arns):
            entry = aws.eks.AccessEntry(f"{name}-admin-{i}", cluster_name=cluster_name, principal_arn=principal,
                                        type="STANDARD", tags=tags.render(), opts=child)
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{i}", cluster_name=cluster_name, principal_arn=principal,
                policy_arn=f"arn:{ctx.partition}:eks::aws:cluster-access-policy/{CLUSTER_ADMIN_POLICY}",
                access_scope={"type": "cluster"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
            )

        # --- IRSA
        issuer = self.cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"],
            tags=tags.render(Name=f"{args.cluster_name}-irsa"), opts=child,
        )
        self.oidc_provider_arn = self.oidc_provider.arn
        self.oidc_provider_url = issuer.apply(lambda url: url.removeprefix("https://"))

        def addon_role(addon: str, namespace: str, service_account: str, policy: str) -> ServiceAccountRole:
            return ServiceAccountRole(
                f"{name}-{addon}",
                ServiceAccountRoleArgs(
                    oidc_provider_arn=self.oidc_provider_arn, oidc_provider_url=self.oidc_provider_url,
                    namespace=namespace, service_account=service_account, tags=tags,
                    managed_policy_arns=[ctx.managed_policy(policy)],
                    description=f"EKS add-on {addon} of {args.cluster_name}",
                ),
                opts=child,
            )

        self.addon_roles = {
            "vpc-cni": addon_role("vpc-cni", "kube-system", "aws-node", "AmazonEKS_CNI_Policy"),
            "aws-ebs-csi-driver": addon_role("aws-ebs-csi-driver", "kube-system", "ebs-csi-controller-sa",
                                             "service-role/AmazonEBSCSIDriverPolicy"),
        }

        def addon(addon_name: str, depends_on: Sequence[pulumi.Resource]) -> aws.eks.Addon:
            role = self.addon_roles.get(addon_name)
            configuration = args.addon_configuration.get(addon_name)
            return aws.eks.Addon(
                f"{name}-{addon_name}",
                cluster_name=cluster_name,
                addon_name=addon_name,
                addon_version=args.addon_versions.get(addon_name),
                service_account_role_arn=role.arn if role else None,
                configuration_values=json.dumps(dict(configuration)) if configuration else None,
                resolve_conflicts_on_create="OVERWRITE",  # replaces the self-managed copies EKS bootstraps
                resolve_conflicts_on_update="OVERWRITE",  # the declared state wins on every update
                tags=tags.render(),
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
            )

        self.addons: dict[str, aws.eks.Addon] = {}
        for addon_name in ADDONS_BEFORE_NODES:
            self.addons[addon_name] = addon(addon_name, [self.addon_roles[addon_name]]
                                            if addon_name in self.addon_roles else [])

        # --- Nodes
        self.node_groups: dict[str, aws.eks.NodeGroup] = {}
        for spec in args.node_groups:
            self.node_groups[spec.name] = self._node_group(
                name, spec, args, cluster_name, [*node_policies, *(self.addons[a] for a in ADDONS_BEFORE_NODES)]
            )
        for addon_name in ADDONS_AFTER_NODES:
            deps: list[pulumi.Resource] = list(self.node_groups.values())
            if addon_name in self.addon_roles:
                deps.append(self.addon_roles[addon_name])
            self.addons[addon_name] = addon(addon_name, deps)

        # --- Kubernetes access
        self.cluster_name = cluster_name
        self.endpoint = self.cluster.endpoint
        self.certificate_authority = self.cluster.certificate_authority.apply(lambda ca: ca.data)
        self.cluster_security_group_id = self.cluster.vpc_config.apply(lambda c: c.cluster_security_group_id)
        self.node_role_arn = self.node_role.arn
        self.secrets_kms_key_arn = self.secrets_key.arn
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster_name, self.endpoint, self.certificate_authority).apply(
                lambda v: kubeconfig(v[0], v[1], v[2], ctx.region,
                                     args.kubeconfig_aws_profile, args.kubeconfig_role_arn)
            )
        )
        self.kubernetes_provider = k8s.Provider(
            f"{name}-kubernetes",
            kubeconfig=self.kubeconfig,
            # Ready once there are nodes and a network: nothing is applied to an empty cluster.
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[*self.node_groups.values(), *self.addons.values()]),
        )
        self.storage_class: k8s.storage.v1.StorageClass | None = None
        self.storage_class_name: str | None = None
        if args.storage_class is not None:
            self.storage_class = gp3_storage_class(f"{name}-{args.storage_class.name}", args.storage_class,
                                                   self.kubernetes_provider, pulumi.ResourceOptions(parent=self))
            self.storage_class_name = args.storage_class.name

        self.register_outputs({
            "cluster_name": self.cluster_name,
            "endpoint": self.endpoint,
            "oidc_provider_arn": self.oidc_provider_arn,
            "oidc_provider_url": self.oidc_provider_url,
            "cluster_security_group_id": self.cluster_security_group_id,
            "kubeconfig": self.kubeconfig,
        })

    def _node_group(self, name: str, spec: NodeGroupSpec, args: EksClusterArgs, cluster_name: pulumi.Output[str],
                    depends_on: Sequence[pulumi.Resource]) -> aws.eks.NodeGroup:
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags
        node_tags = tags.render(Name=f"{args.cluster_name}-{spec.name}")
        template = aws.ec2.LaunchTemplate(
            f"{name}-{spec.name}",
            description=f"EKS {args.cluster_name} node group {spec.name}",
            update_default_version=True,
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",  # IMDSv2 only
                "http_put_response_hop_limit": spec.imds_hop_limit,
            },
            block_device_mappings=[{
                "device_name": "/dev/xvda",
                "ebs": {"volume_size": spec.disk_size_gib, "volume_type": "gp3", "encrypted": "true",
                        "delete_on_termination": "true"},
            }],
            tag_specifications=[{"resource_type": "instance", "tags": node_tags},
                                {"resource_type": "volume", "tags": node_tags}],
            tags=tags.render(),
            opts=child,
        )
        return aws.eks.NodeGroup(
            f"{name}-{spec.name}",
            cluster_name=cluster_name,
            node_role_arn=self.node_role.arn,
            subnet_ids=args.subnet_ids,
            instance_types=list(spec.instance_types),
            capacity_type=spec.capacity_type.value,
            ami_type=spec.ami_type,
            scaling_config={"min_size": spec.min_size, "desired_size": spec.desired_size, "max_size": spec.max_size},
            update_config={"max_unavailable": spec.max_unavailable},
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            labels={"aquascene.io/node-group": spec.name, **spec.labels},
            tags=tags.render(Name=f"{args.cluster_name}-{spec.name}"),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(depends_on),
                # The cluster autoscaler owns the current size; only the bounds are declared.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )
