"""Network: subnets per AZ, NAT modes, routes, Kubernetes subnet tags, flow logs."""

from __future__ import annotations

import pytest

from components.aws import FlowLogs, NatMode, Network, NetworkArgs
from tests.unit.aws_support import (
    ACCOUNT_ID, EXPECTED_TAGS, REGION, TAGS, ZONES, assert_least_privilege, named, one, policy_of,
)

SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
ROUTE = "aws:ec2/route:Route"
RTA = "aws:ec2/routeTableAssociation:RouteTableAssociation"


def network(run_program, **overrides):
    args = NetworkArgs(**{"tags": TAGS, "cluster_name": "aquascene-test", **overrides})
    return run_program(lambda: Network("net", args))


def subnets(rec, tier: str):
    found = sorted((r for r in rec.of_type(SUBNET) if r.name.startswith(f"net-{tier}-")), key=lambda r: r.name)
    return found


def test_three_public_and_three_private_subnets_one_per_zone(run_program):
    rec = network(run_program)
    public, private = subnets(rec, "public"), subnets(rec, "private")
    assert len(rec.of_type(SUBNET)) == 6
    assert [s.plain_inputs["availabilityZone"] for s in public] == ZONES
    assert [s.plain_inputs["availabilityZone"] for s in private] == ZONES
    assert [s.plain_inputs["cidrBlock"] for s in private] == ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]
    assert [s.plain_inputs["cidrBlock"] for s in public] == ["10.0.240.0/24", "10.0.241.0/24", "10.0.242.0/24"]
    vpc = one(rec, "aws:ec2/vpc:Vpc")
    assert vpc.plain_inputs["cidrBlock"] == "10.0.0.0/16"
    assert vpc.plain_inputs["enableDnsHostnames"] is True
    assert all(s.plain_inputs["vpcId"] == vpc.id for s in public + private)
    assert all(s.plain_inputs["mapPublicIpOnLaunch"] is False for s in public + private)


def test_subnets_carry_load_balancer_and_cluster_tags(run_program):
    rec = network(run_program)
    for s in subnets(rec, "public"):
        tags = s.plain_inputs["tags"]
        assert tags["kubernetes.io/role/elb"] == "1"
        assert "kubernetes.io/role/internal-elb" not in tags
        assert tags["kubernetes.io/cluster/aquascene-test"] == "shared"
        assert {k: tags[k] for k in EXPECTED_TAGS} == EXPECTED_TAGS
    for s in subnets(rec, "private"):
        tags = s.plain_inputs["tags"]
        assert tags["kubernetes.io/role/internal-elb"] == "1"
        assert "kubernetes.io/role/elb" not in tags
        assert tags["kubernetes.io/cluster/aquascene-test"] == "shared"


def test_no_cluster_tag_without_a_cluster_name(run_program):
    rec = network(run_program, cluster_name=None)
    assert not any(k.startswith("kubernetes.io/cluster/")
                   for s in rec.of_type(SUBNET) for k in s.plain_inputs["tags"])


def test_nat_per_az_routes_each_private_subnet_through_its_own_zone(run_program):
    rec = network(run_program, nat=NatMode.PER_AZ)
    nats = rec.of_type(NAT)
    assert len(nats) == 3
    assert len(rec.of_type("aws:ec2/eip:Eip")) == 3
    public = {s.id: s.plain_inputs["availabilityZone"] for s in subnets(rec, "public")}
    nat_zone = {n.id: public[n.plain_inputs["subnetId"]] for n in nats}
    assert sorted(nat_zone.values()) == ZONES  # one NAT in each zone's public subnet
    for i, subnet in enumerate(subnets(rec, "private")):
        table = named(rec, "aws:ec2/routeTable:RouteTable", f"net-private-{i}")
        assoc = named(rec, RTA, f"net-private-{i}").plain_inputs
        assert assoc == {"subnetId": subnet.id, "routeTableId": table.id}
        route = named(rec, ROUTE, f"net-private-{i}-nat").plain_inputs
        assert route["routeTableId"] == table.id
        assert route["destinationCidrBlock"] == "0.0.0.0/0"
        assert nat_zone[route["natGatewayId"]] == subnet.plain_inputs["availabilityZone"]


def test_single_nat_serves_every_private_subnet(run_program):
    rec = network(run_program, nat=NatMode.SINGLE)
    nat = one(rec, NAT)
    assert len(rec.of_type("aws:ec2/eip:Eip")) == 1
    assert nat.plain_inputs["subnetId"] == subnets(rec, "public")[0].id
    private_routes = [r for r in rec.of_type(ROUTE) if r.name.endswith("-nat")]
    assert [r.plain_inputs["natGatewayId"] for r in private_routes] == [nat.id] * 3


def test_public_subnets_route_to_the_internet_gateway(run_program):
    rec = network(run_program)
    igw = one(rec, "aws:ec2/internetGateway:InternetGateway")
    table = named(rec, "aws:ec2/routeTable:RouteTable", "net-public")
    route = named(rec, ROUTE, "net-public-internet").plain_inputs
    assert route == {"routeTableId": table.id, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": igw.id}
    associated = sorted(r.plain_inputs["subnetId"] for r in rec.of_type(RTA)
                        if r.plain_inputs["routeTableId"] == table.id)
    assert associated == sorted(s.id for s in subnets(rec, "public"))


def test_default_security_group_is_emptied(run_program):
    rec = network(run_program)
    sg = one(rec, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup").plain_inputs
    assert sg["ingress"] == [] and sg["egress"] == []


def test_flow_logs_go_to_cloudwatch_through_a_least_privilege_role(run_program):
    rec = network(run_program)
    vpc = one(rec, "aws:ec2/vpc:Vpc")
    group = one(rec, "aws:cloudwatch/logGroup:LogGroup")
    role = one(rec, "aws:iam/role:Role")
    flow = one(rec, "aws:ec2/flowLog:FlowLog").plain_inputs
    assert group.plain_inputs["name"] == "/aws/vpc-flow-logs/net"
    assert group.plain_inputs["retentionInDays"] == 30
    group_arn = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/vpc-flow-logs/net"
    assert group.outputs["arn"] == group_arn
    assert flow["vpcId"] == vpc.id
    assert flow["trafficType"] == "ALL"
    assert flow["logDestinationType"] == "cloud-watch-logs"
    assert flow["logDestination"] == group_arn
    assert flow["iamRoleArn"] == role.outputs["arn"]

    trust = policy_of(role, "assumeRolePolicy")["Statement"]
    assert trust == [{
        "Sid": "TrustService", "Effect": "Allow", "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
        "Action": ["sts:AssumeRole"],
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
                      "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:vpc-flow-log/*"}},
    }]
    inline = one(rec, "aws:iam/rolePolicy:RolePolicy")
    assert inline.plain_inputs["role"] == role.id
    document = policy_of(inline)
    assert_least_privilege(document)
    assert document["Statement"] == [
        {"Sid": "WriteFlowLogStreams", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
         "Resource": [group_arn, f"{group_arn}:log-stream:*"]},
        {"Sid": "FindLogGroup", "Effect": "Allow", "Action": ["logs:DescribeLogGroups"],
         "Resource": [f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:*"]},
    ]


def test_flow_log_settings_are_data(run_program):
    rec = network(run_program, flow_logs=FlowLogs(retention_days=365, traffic_type="REJECT",
                                                  max_aggregation_interval=60))
    assert one(rec, "aws:cloudwatch/logGroup:LogGroup").plain_inputs["retentionInDays"] == 365
    flow = one(rec, "aws:ec2/flowLog:FlowLog").plain_inputs
    assert (flow["trafficType"], flow["maxAggregationInterval"]) == ("REJECT", 60)


def test_flow_logs_can_be_left_out(run_program):
    rec = network(run_program, flow_logs=None)
    assert rec.of_type("aws:ec2/flowLog:FlowLog") == []
    assert rec.of_type("aws:iam/role:Role") == []


def test_seed_layout_and_explicit_zones(run_program):
    # Seed 003's subnets, zones given (no lookup), two AZs and a single NAT.
    rec = network(
        run_program, az_count=2, availability_zones=["us-east-1a", "us-east-1b"], nat=NatMode.SINGLE,
        private_subnet_cidrs=["10.0.1.0/24", "10.0.2.0/24"], public_subnet_cidrs=["10.0.101.0/24", "10.0.102.0/24"],
    )
    assert [s.plain_inputs["cidrBlock"] for s in subnets(rec, "private")] == ["10.0.1.0/24", "10.0.2.0/24"]
    assert [s.plain_inputs["cidrBlock"] for s in subnets(rec, "public")] == ["10.0.101.0/24", "10.0.102.0/24"]
    assert [s.plain_inputs["availabilityZone"] for s in subnets(rec, "public")] == ["us-east-1a", "us-east-1b"]


def test_every_resource_is_tagged_and_parented(run_program):
    rec = network(run_program)
    component = one(rec, "aquascene:aws:Network")
    for r in rec.resources:
        if r.type.startswith("aws:") and "tags" in r.plain_inputs:
            assert {k: r.plain_inputs["tags"][k] for k in EXPECTED_TAGS} == EXPECTED_TAGS, r.name
        if r.type.startswith("aws:"):
            assert r.parent == component.urn, r.name


@pytest.mark.parametrize("overrides, message", [
    ({"az_count": 4}, r"NetworkArgs.az_count is 4 but the region has only 3"),
    ({"nat": "single"}, r"NetworkArgs.nat must be a NatMode"),
    ({"cidr_block": "10.0.0.0/8"}, r"NetworkArgs.cidr_block must be an IPv4 /16-/24"),
    ({"cidr_block": "10.0.0.0/20"}, r"smaller than /18"),
    ({"private_subnet_cidrs": ["10.0.0.0/20", "10.0.16.0/20", "10.1.0.0/20"]}, r"outside cidr_block"),
    ({"private_subnet_cidrs": ["10.0.0.0/20", "10.0.8.0/24", "10.0.32.0/20"]}, r"overlap"),
    ({"public_subnet_cidrs": ["10.0.240.0/24"]}, r"public_subnet_cidrs has 1 entries, az_count is 3"),
    ({"availability_zones": ["eu-west-1a"]}, r"lists 1 zones but az_count is 3"),
])
def test_invalid_args_name_the_field(run_program, overrides, message):
    with pytest.raises(ValueError, match=message):
        network(run_program, **overrides)


def test_flow_logs_validate_traffic_type():
    with pytest.raises(ValueError, match="FlowLogs.traffic_type"):
        FlowLogs(traffic_type="SOME")
