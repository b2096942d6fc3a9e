"""Network: the VPC an EKS cluster and its managed data stores live in.

Public and private subnets in each of N availability zones, an Internet
gateway, NAT gateways (one per AZ, or a single one for cheaper
environments), route tables, the subnet tags the AWS Load Balancer
Controller and the in-tree cloud provider discover subnets by, the default
security group emptied, and VPC flow logs to CloudWatch through a
least-privilege role.

Subnet CIDRs default to a fixed layout of the VPC block: private subnets
are the first sixteenths (/20s of a /16: room for VPC-CNI pod addresses),
public subnets are /24-equivalents (1/256) in the last sixteenth, so adding
an AZ never moves an existing subnet. Explicit lists may be given instead.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum
from typing import Sequence

import pulumi
import pulumi_aws as aws

from components.aws.common import AwsTags, PolicyDocument, Statement, account_context, service_trust_policy

ELB_ROLE_TAG = "kubernetes.io/role/elb"
INTERNAL_ELB_ROLE_TAG = "kubernetes.io/role/internal-elb"
PUBLIC_START = 240  # cidrsubnet(vpc, 8, 240 + i): the last sixteenth of the VPC


def cluster_tag(cluster_name: str) -> str:
    return f"kubernetes.io/cluster/{cluster_name}"


class NatMode(str, Enum):
    PER_AZ = "per-az"  # one NAT gateway per AZ: an AZ outage cuts off only that AZ
    SINGLE = "single"  # one NAT gateway for all AZs: cheaper, one AZ is a single point of failure


@dataclass(frozen=True)
class FlowLogs:
    retention_days: int = 30
    traffic_type: str = "ALL"  # ACCEPT | REJECT | ALL
    kms_key_arn: pulumi.Input[str] | None = None  # log group encryption (the key policy must admit logs.<region>)
    max_aggregation_interval: int = 600  # 60 or 600 seconds

    def __post_init__(self) -> None:
        if self.traffic_type not in ("ACCEPT", "REJECT", "ALL"):
            raise ValueError(f"FlowLogs.traffic_type must be ACCEPT, REJECT or ALL, got {self.traffic_type!r}")
        if self.max_aggregation_interval not in (60, 600):
            raise ValueError("FlowLogs.max_aggregation_interval must be 60 or 600")
        if self.retention_days < 1:
            raise ValueError("FlowLogs.retention_days must be >= 1")


@dataclass(frozen=True)
class NetworkArgs:
    tags: AwsTags
    cidr_block: str = "10.0.0.0/16"
    az_count: int = 3
    availability_zones: Sequence[str] | None = None  # None: the region's first `az_count` available zones
    nat: NatMode = NatMode.PER_AZ
    private_subnet_cidrs: Sequence[str] | None = None  # None: computed (see module doc)
    public_subnet_cidrs: Sequence[str] | None = None
    cluster_name: str | None = None  # adds kubernetes.io/cluster/<name>=shared to the subnets
    flow_logs: FlowLogs | None = field(default_factory=FlowLogs)  # None: no flow logs (not recommended)

    def __post_init__(self) -> None:
        try:
            vpc = ipaddress.ip_network(self.cidr_block)
        except ValueError as err:
            raise ValueError(f"NetworkArgs.cidr_block {self.cidr_block!r} is not a CIDR: {err}") from None
        if not isinstance(vpc, ipaddress.IPv4Network) or not 16 <= vpc.prefixlen <= 24:
            raise ValueError(f"NetworkArgs.cidr_block must be an IPv4 /16-/24, got {self.cidr_block}")
        defaults = self.private_subnet_cidrs is None or self.public_subnet_cidrs is None
        if defaults and vpc.prefixlen > 18:
            raise ValueError(f"NetworkArgs.cidr_block {self.cidr_block} is smaller than /18: the default subnet "
                             "layout would make public subnets too small for load balancers; give "
                             "private_subnet_cidrs and public_subnet_cidrs")
        if not 1 <= self.az_count <= 6:
            raise ValueError(f"NetworkArgs.az_count must be 1-6, got {self.az_count}")
        if self.availability_zones is not None and len(self.availability_zones) != self.az_count:
            raise ValueError(f"NetworkArgs.availability_zones lists {len(self.availability_zones)} zones "
                             f"but az_count is {self.az_count}")
        if not isinstance(self.nat, NatMode):
            raise ValueError(f"NetworkArgs.nat must be a NatMode ({[m.value for m in NatMode]}), got {self.nat!r}")
        private, public = self.subnet_cidrs()
        for field_name, cidrs in (("private_subnet_cidrs", private), ("public_subnet_cidrs", public)):
            if len(cidrs) != self.az_count:
                raise ValueError(f"NetworkArgs.{field_name} has {len(cidrs)} entries, az_count is {self.az_count}")
        nets = []
        for cidr in [*private, *public]:
            try:
                net = ipaddress.ip_network(cidr)
            except ValueError as err:
                raise ValueError(f"NetworkArgs: subnet {cidr!r} is not a CIDR: {err}") from None
            if not net.subnet_of(vpc):  # type: ignore[arg-type]
                raise ValueError(f"NetworkArgs: subnet {cidr} is outside cidr_block {self.cidr_block}")
            nets.append(net)
        for i, a in enumerate(nets):
            for b in nets[i + 1:]:
                if a.overlaps(b):
                    raise ValueError(f"NetworkArgs: subnets {a} and {b} overlap")

    def subnet_cidrs(self) -> tuple[list[str], list[str]]:
        """(private, public) CIDRs, one per AZ."""
        vpc = ipaddress.ip_network(self.cidr_block)
        private = list(self.private_subnet_cidrs) if self.private_subnet_cidrs is not None else [
            str(s) for s in _nth_subnets(vpc, 4, range(self.az_count))
        ]
        public = list(self.public_subnet_cidrs) if self.public_subnet_cidrs is not None else [
            str(s) for s in _nth_subnets(vpc, 8, range(PUBLIC_START, PUBLIC_START + self.az_count))
        ]
        return private, public


def _nth_subnets(vpc: ipaddress.IPv4Network | ipaddress.IPv6Network, newbits: int, indexes: range) -> list:
    """Terraform's cidrsubnet(vpc, newbits, i) for each i."""
    size = 2 ** (vpc.max_prefixlen - vpc.prefixlen - newbits)
    return [ipaddress.ip_network((int(vpc.network_address) + i * size, vpc.prefixlen + newbits)) for i in indexes]


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    availability_zones: list[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    nat_gateway_ids: pulumi.Output[list[str]]
    flow_log_group_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags

        zones = list(args.availability_zones) if args.availability_zones is not None else self._zones(args.az_count)
        self.availability_zones = zones
        private_cidrs, public_cidrs = args.subnet_cidrs()
        shared = {cluster_tag(args.cluster_name): "shared"} if args.cluster_name else {}

        self.vpc = aws.ec2.Vpc(
            name,
            cidr_block=args.cidr_block,
            enable_dns_hostnames=True,  # EKS nodes and private endpoints need DNS hostnames
            enable_dns_support=True,
            tags=tags.render(Name=name),
            opts=child,
        )
        # The default security group admits all traffic between its members; empty it
        # so nothing can use it by accident (CIS AWS 5.4).
        self.default_security_group = aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=self.vpc.id, ingress=[], egress=[],
            tags=tags.render(Name=f"{name}-default-unused"), opts=child,
        )
        self.internet_gateway = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags=tags.render(Name=f"{name}-igw"), opts=child
        )

        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        for i, zone in enumerate(zones):
            self.public_subnets.append(aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=self.vpc.id,
                availability_zone=zone,
                cidr_block=public_cidrs[i],
                map_public_ip_on_launch=False,  # only NAT gateways and load balancers live here
                tags=tags.render(Name=f"{name}-public-{zone}", Tier="public", **{ELB_ROLE_TAG: "1"}, **shared),
                opts=child,
            ))
            self.private_subnets.append(aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=self.vpc.id,
                availability_zone=zone,
                cidr_block=private_cidrs[i],
                map_public_ip_on_launch=False,
                tags=tags.render(Name=f"{name}-private-{zone}", Tier="private",
                                 **{INTERNAL_ELB_ROLE_TAG: "1"}, **shared),
                opts=child,
            ))

        self.public_route_table = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=self.vpc.id, tags=tags.render(Name=f"{name}-public"), opts=child
        )
        aws.ec2.Route(
            f"{name}-public-internet",
            route_table_id=self.public_route_table.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=self.internet_gateway.id,
            opts=child,
        )
        for i, subnet in enumerate(self.public_subnets):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=subnet.id, route_table_id=self.public_route_table.id, opts=child
            )

        nat_count = len(zones) if args.nat is NatMode.PER_AZ else 1
        self.nat_gateways: list[aws.ec2.NatGateway] = []
        for i in range(nat_count):
            eip = aws.ec2.Eip(
                f"{name}-nat-{i}", domain="vpc", tags=tags.render(Name=f"{name}-nat-{zones[i]}"), opts=child
            )
            self.nat_gateways.append(aws.ec2.NatGateway(
                f"{name}-nat-{i}",
                allocation_id=eip.allocation_id,
                subnet_id=self.public_subnets[i].id,
                connectivity_type="public",
                tags=tags.render(Name=f"{name}-nat-{zones[i]}"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.internet_gateway]),
            ))

        # One private route table per AZ in both modes, so switching modes only moves routes.
        self.private_route_tables: list[aws.ec2.RouteTable] = []
        for i, subnet in enumerate(self.private_subnets):
            table = aws.ec2.RouteTable(
                f"{name}-private-{i}", vpc_id=self.vpc.id, tags=tags.render(Name=f"{name}-private-{zones[i]}"),
                opts=child,
            )
            nat = self.nat_gateways[i if args.nat is NatMode.PER_AZ else 0]
            aws.ec2.Route(
                f"{name}-private-{i}-nat",
                route_table_id=table.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat.id,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}", subnet_id=subnet.id, route_table_id=table.id, opts=child
            )
            self.private_route_tables.append(table)

        self.flow_log_group_name = None
        if args.flow_logs is not None:
            self._flow_logs(name, args.flow_logs, tags)

        self.vpc_id = self.vpc.id
        self.cidr_block = args.cidr_block
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in self.public_subnets])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in self.private_subnets])
        self.nat_gateway_ids = pulumi.Output.all(*[n.id for n in self.nat_gateways])
        self.register_outputs({
            "vpc_id": self.vpc_id,
            "availability_zones": self.availability_zones,
            "public_subnet_ids": self.public_subnet_ids,
            "private_subnet_ids": self.private_subnet_ids,
            "nat_gateway_ids": self.nat_gateway_ids,
        })

    def _zones(self, count: int) -> list[str]:
        found = aws.get_availability_zones(
            state="available",
            # Local Zones and Wavelength Zones are opt-in; regular AZs are not.
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
            opts=pulumi.InvokeOptions(parent=self),
        )
        if len(found.names) < count:
            raise ValueError(f"NetworkArgs.az_count is {count} but the region has only "
                             f"{len(found.names)} available zones: {found.names}")
        return sorted(found.names)[:count]

    def _flow_logs(self, name: str, flow: FlowLogs, tags: AwsTags) -> None:
        child = pulumi.ResourceOptions(parent=self)
        ctx = account_context(self)
        group_name = f"/aws/vpc-flow-logs/{name}"
        self.flow_log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=group_name,
            retention_in_days=flow.retention_days,
            kms_key_id=flow.kms_key_arn,
            tags=tags.render(Name=group_name),
            opts=child,
        )
        trust = service_trust_policy(
            "vpc-flow-logs.amazonaws.com",
            # Confused-deputy guard: only this account's flow logs may assume the role.
            conditions={
                "StringEquals": {"aws:SourceAccount": ctx.account_id},
                "ArnLike": {"aws:SourceArn": f"arn:{ctx.partition}:ec2:{ctx.region}:{ctx.account_id}:vpc-flow-log/*"},
            },
        )
        self.flow_log_role = aws.iam.Role(
            f"{name}-flow-logs",
            description=f"VPC flow logs of {name} to CloudWatch Logs",
            assume_role_policy=trust.to_json(),
            tags=tags.render(),
            opts=child,
        )
        group_arn = self.flow_log_group.arn
        permissions = PolicyDocument([
            Statement(
                sid="WriteFlowLogStreams",
                actions=["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[group_arn, pulumi.Output.concat(group_arn, ":log-stream:*")],
            ),
            # DescribeLogGroups cannot name one group; it is scoped to this account and region.
            Statement(
                sid="FindLogGroup",
                actions=["logs:DescribeLogGroups"],
                resources=[f"arn:{ctx.partition}:logs:{ctx.region}:{ctx.account_id}:log-group:*"],
            ),
        ])
        self.flow_log_policy = aws.iam.RolePolicy(
            f"{name}-flow-logs", role=self.flow_log_role.id, policy=permissions.to_json(), opts=child
        )
        self.flow_log = aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=self.vpc.id,
            traffic_type=flow.traffic_type,
            log_destination_type="cloud-watch-logs",
            log_destination=group_arn,
            iam_role_arn=self.flow_log_role.arn,
            max_aggregation_interval=flow.max_aggregation_interval,
            tags=tags.render(Name=f"{name}-flow-logs"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.flow_log_policy]),
        )
        self.flow_log_group_name = self.flow_log_group.name
