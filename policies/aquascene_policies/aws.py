"""AWS rules: S3 (stack-level, pulumi-aws v7 sibling resources), RDS, EKS, security groups, IAM, KMS.

Resources are named by kind and Pulumi name in messages: `Bucket backups`.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any, Iterator, Mapping, Optional, Sequence

from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from .core import as_list, as_map, dig, each, fmt_number, is_list, is_map, listing, number, safe

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
SSE_CONFIGS = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
VERSIONINGS = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
PUBLIC_ACCESS_BLOCKS = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
LIFECYCLES = (
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
)
RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
RDS_CLUSTER_INSTANCE = "aws:rds/clusterInstance:ClusterInstance"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SECURITY_GROUP_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
KMS_KEY = "aws:kms/key:Key"
POLICY_DOCUMENTS: dict[str, tuple[str, ...]] = {
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/userPolicy:UserPolicy": ("policy",),
    "aws:iam/groupPolicy:GroupPolicy": ("policy",),
    "aws:s3/bucketPolicy:BucketPolicy": ("policy",),
    "aws:kms/key:Key": ("policy",),
}
PUBLIC_CIDRS = ("0.0.0.0/0", "::/0")
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def kind_of(resource_type: str) -> str:
    return resource_type.rsplit(":", 1)[-1]


def _ref(resource_type: str, name: str) -> str:
    return f"{kind_of(resource_type)} {name}"


# ------------------------------------------------------------------------ S3


def _siblings(resources: Sequence[PolicyResource], bucket: PolicyResource, types: Sequence[str]) -> list[PolicyResource]:
    """Resources of `types` configuring `bucket`: by property dependency, else by bucket name/id."""
    keys = {safe(lambda k=k: bucket.props.get(k)) for k in ("id", "bucket")} - {None, ""}
    found = []
    for r in each(resources, *types):
        deps = r.property_dependencies.get("bucket") or []
        if any(d.urn == bucket.urn for d in deps) or safe(lambda r=r: r.props.get("bucket")) in keys:
            found.append(r)
    return found


def s3_encryption(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    allowed = [str(a) for a in config["allowedAlgorithms"]]
    for bucket in each(args.resources, *BUCKETS):
        ref = _ref(bucket.resource_type, bucket.name)
        rules = [dig(s, "applyServerSideEncryptionByDefault") for c in _siblings(args.resources, bucket, SSE_CONFIGS)
                 for s in as_list(c.props.get("rules"))]
        inline = dig(bucket.props, "serverSideEncryptionConfiguration", "rule", "applyServerSideEncryptionByDefault")
        if is_map(inline):
            rules.append(inline)
        algorithms = [str(as_map(r).get("sseAlgorithm")) for r in rules if is_map(r)]
        if not algorithms:
            yield bucket.urn, f"{ref}: no BucketServerSideEncryptionConfiguration sets default encryption"
        elif not any(a in allowed for a in algorithms):
            yield bucket.urn, f"{ref}: default encryption {listing(algorithms)} is not one of {listing(allowed)}"


def s3_versioning(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for bucket in each(args.resources, *BUCKETS):
        ref = _ref(bucket.resource_type, bucket.name)
        statuses = [dig(v.props, "versioningConfiguration", "status") for v in _siblings(args.resources, bucket, VERSIONINGS)]
        if dig(bucket.props, "versioning", "enabled") is True:
            statuses.append("Enabled")
        if "Enabled" not in statuses:
            found = listing(str(s) for s in statuses if s)
            yield bucket.urn, f"{ref}: versioning is {found or 'not configured'}; add a BucketVersioning with status Enabled"


def s3_public_access_block(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for bucket in each(args.resources, *BUCKETS):
        ref = _ref(bucket.resource_type, bucket.name)
        blocks = _siblings(args.resources, bucket, PUBLIC_ACCESS_BLOCKS)
        if not blocks:
            yield bucket.urn, f"{ref}: no BucketPublicAccessBlock"
            continue
        missing = [flag for flag in PUBLIC_ACCESS_FLAGS if not any(b.props.get(flag) is True for b in blocks)]
        if missing:
            yield bucket.urn, f"{ref}: the public access block does not set {listing(missing)}"


def s3_lifecycle(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for bucket in each(args.resources, *BUCKETS):
        enabled = [
            rule
            for lc in _siblings(args.resources, bucket, LIFECYCLES)
            for rule in as_list(lc.props.get("rules"))
            if as_map(rule).get("status") == "Enabled"
        ]
        enabled += [rule for rule in as_list(bucket.props.get("lifecycleRules")) if as_map(rule).get("enabled") is True]
        if not enabled:
            yield bucket.urn, f"{_ref(bucket.resource_type, bucket.name)}: no BucketLifecycleConfiguration with an Enabled rule"


# ----------------------------------------------------------------------- RDS


def rds_encrypted(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if args.resource_type in (RDS_INSTANCE, RDS_CLUSTER) and args.props.get("storageEncrypted") is not True:
        yield f"{_ref(args.resource_type, args.name)}: storageEncrypted is not true"


def rds_multi_az(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if args.resource_type == RDS_INSTANCE and args.props.get("multiAz") is not True:
        yield f"{_ref(args.resource_type, args.name)}: multiAz is not true"


def rds_backup_retention(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if args.resource_type not in (RDS_INSTANCE, RDS_CLUSTER):
        return
    if args.resource_type == RDS_INSTANCE and args.props.get("replicateSourceDb"):
        return  # a read replica: the source keeps the backups
    minimum = float(config["minDays"])
    days = number(args.props.get("backupRetentionPeriod"))
    if days is None:
        yield f"{_ref(args.resource_type, args.name)}: backupRetentionPeriod is not set (minimum {fmt_number(minimum)} days)"
    elif days < minimum:
        yield f"{_ref(args.resource_type, args.name)}: backupRetentionPeriod {fmt_number(days)} is below {fmt_number(minimum)} days"


def rds_not_public(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if args.resource_type in (RDS_INSTANCE, RDS_CLUSTER_INSTANCE) and args.props.get("publiclyAccessible") is True:
        yield f"{_ref(args.resource_type, args.name)}: publiclyAccessible is true"


def rds_deletion_protection(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if args.resource_type in (RDS_INSTANCE, RDS_CLUSTER) and args.props.get("deletionProtection") is not True:
        yield f"{_ref(args.resource_type, args.name)}: deletionProtection is not true"


# ----------------------------------------------------------------------- EKS


def eks_private_endpoint(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if args.resource_type != EKS_CLUSTER:
        return
    ref = _ref(args.resource_type, args.name)
    vpc = as_map(args.props.get("vpcConfig"))
    if vpc.get("endpointPrivateAccess") is not True:
        yield f"{ref}: vpcConfig.endpointPrivateAccess is not true"
    if vpc.get("endpointPublicAccess") is not False:
        cidrs = [str(c) for c in as_list(vpc.get("publicAccessCidrs"))] or ["0.0.0.0/0"]
        if any(c in PUBLIC_CIDRS for c in cidrs):
            yield f"{ref}: the public API endpoint is open to 0.0.0.0/0; set endpointPublicAccess: false or restrict publicAccessCidrs"


def eks_secrets_encryption(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if args.resource_type != EKS_CLUSTER:
        return
    configs = args.props.get("encryptionConfig")
    configs = [as_map(c) for c in as_list(configs)] if is_list(configs) else [as_map(configs)]
    if not any("secrets" in list(as_list(c.get("resources"))) and dig(c, "provider", "keyArn") for c in configs):
        yield f"{_ref(args.resource_type, args.name)}: encryptionConfig does not encrypt secrets with a KMS key"


def eks_control_plane_logging(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if args.resource_type != EKS_CLUSTER:
        return
    enabled = {str(t) for t in as_list(args.props.get("enabledClusterLogTypes"))}
    missing = [str(t) for t in config["requiredLogTypes"] if str(t) not in enabled]
    if missing:
        yield f"{_ref(args.resource_type, args.name)}: control-plane log types not enabled: {listing(missing)}"


# ----------------------------------------------------------- security groups


def _is_load_balancer_group(group: Optional[PolicyResource], rule: PolicyResource, patterns: Sequence[str]) -> bool:
    names = [rule.name]
    if group is not None:
        names += [group.name] + [
            str(v) for v in (safe(lambda: group.props.get("name")), safe(lambda: dig(group.props, "tags", "Name"))) if v
        ]
    return any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)


def _describe(protocol: Any, from_port: Optional[float], to_port: Optional[float]) -> str:
    protocol = str(protocol)
    if protocol in ("-1", "all"):
        return "all traffic"
    if from_port is None or to_port is None:
        return f"{protocol} (all ports)"
    if from_port == to_port:
        return f"{protocol} {fmt_number(from_port)}"
    return f"{protocol} {fmt_number(from_port)}-{fmt_number(to_port)}"


def _public_ingress_violation(
    protocol: Any, from_port: Optional[float], to_port: Optional[float], lb: bool, ports: set[float]
) -> bool:
    single = from_port is not None and from_port == to_port and str(protocol) in ("tcp", "6")
    return not (lb and single and from_port in ports)


def sg_no_public_ingress(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    ports = {float(p) for p in config["publicPorts"]}
    patterns = [str(p) for p in config["loadBalancerGroups"]]
    groups = list(each(args.resources, SECURITY_GROUP))
    by_id = {safe(lambda g=g: g.props.get("id")): g for g in groups}

    def owner(rule: PolicyResource) -> Optional[PolicyResource]:
        deps = rule.property_dependencies.get("securityGroupId") or []
        for d in deps:
            if d.resource_type == SECURITY_GROUP:
                return d
        return by_id.get(safe(lambda: rule.props.get("securityGroupId")))

    for group in groups:
        for entry in as_list(group.props.get("ingress")):
            entry = as_map(entry)
            cidrs = [str(c) for c in list(as_list(entry.get("cidrBlocks"))) + list(as_list(entry.get("ipv6CidrBlocks")))]
            public = [c for c in cidrs if c in PUBLIC_CIDRS]
            if not public:
                continue
            lo, hi = number(entry.get("fromPort")), number(entry.get("toPort"))
            lb = _is_load_balancer_group(group, group, patterns)
            if _public_ingress_violation(entry.get("protocol"), lo, hi, lb, ports):
                yield group.urn, _sg_message(group, entry.get("protocol"), lo, hi, public[0], lb, ports)
    for rule in each(args.resources, SECURITY_GROUP_RULE, SECURITY_GROUP_INGRESS_RULE):
        props = rule.props
        if rule.resource_type == SECURITY_GROUP_RULE:
            if props.get("type") != "ingress":
                continue
            cidrs = [str(c) for c in list(as_list(props.get("cidrBlocks"))) + list(as_list(props.get("ipv6CidrBlocks")))]
            protocol = props.get("protocol")
        else:
            cidrs = [str(c) for c in (props.get("cidrIpv4"), props.get("cidrIpv6")) if c]
            protocol = props.get("ipProtocol")
        public = [c for c in cidrs if c in PUBLIC_CIDRS]
        if not public:
            continue
        lo, hi = number(props.get("fromPort")), number(props.get("toPort"))
        lb = _is_load_balancer_group(owner(rule), rule, patterns)
        if _public_ingress_violation(protocol, lo, hi, lb, ports):
            yield rule.urn, _sg_message(rule, protocol, lo, hi, public[0], lb, ports)


def _sg_message(r: PolicyResource, protocol: Any, lo: Optional[float], hi: Optional[float], cidr: str, lb: bool, ports: set[float]) -> str:
    allowed = listing(fmt_number(p) for p in sorted(ports))
    why = f"only single tcp ports {allowed} may be public" if lb else f"only a load balancer's tcp {allowed} may be public"
    return f"{_ref(r.resource_type, r.name)}: ingress {_describe(protocol, lo, hi)} from {cidr} ({why})"


# ----------------------------------------------------------------- IAM, KMS


def _documents(args: ResourceValidationArgs) -> Iterator[tuple[str, Any]]:
    for key in POLICY_DOCUMENTS.get(args.resource_type, ()):
        yield key, args.props.get(key)
    if args.resource_type == "aws:iam/role:Role":
        for i, inline in enumerate(as_list(args.props.get("inlinePolicies"))):
            yield f"inlinePolicies[{i}]", as_map(inline).get("policy")


def _parse(document: Any) -> Optional[Mapping[str, Any]]:
    if is_map(document):
        return document
    if isinstance(document, str) and document.strip():
        try:
            parsed = json.loads(document)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def iam_no_wildcard_actions(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    ref = _ref(args.resource_type, args.name)
    for key, raw in _documents(args):
        document = _parse(raw)
        if document is None:
            continue
        statements = document.get("Statement")
        statements = list(as_list(statements)) if is_list(statements) else [statements]
        for i, statement in enumerate(statements):
            statement = as_map(statement)
            if statement.get("Effect") != "Allow":
                continue
            if statement.get("NotAction") is not None:
                yield f"{ref}: {key} statement {i} allows NotAction (everything else)"
            actions = statement.get("Action")
            actions = [actions] if isinstance(actions, str) else list(as_list(actions))
            wild = ['"' + str(a) + '"' for a in actions if str(a) == "*" or str(a).endswith(":*")]
            if wild:
                yield f"{ref}: {key} statement {i} allows {listing(wild)}"


def kms_key_rotation(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if args.resource_type != KMS_KEY:
        return
    spec = args.props.get("customerMasterKeySpec") or args.props.get("keySpec") or "SYMMETRIC_DEFAULT"
    if spec == "SYMMETRIC_DEFAULT" and args.props.get("enableKeyRotation") is not True:
        yield f"{_ref(args.resource_type, args.name)}: enableKeyRotation is not true"
