"""RdsProxy: the connection pooler in front of RdsPostgres (`postgres.mode: rds`).

RDS Proxy multiplexes client connections onto a bounded pool of database
connections (transaction-level reuse, pinning a client only while it holds
session state). It authenticates to the database with a Secrets Manager
secret, encrypted with its own rotating KMS key and readable only by the
proxy's role. TLS is required from clients; the database admits the proxy's
security group.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_aws as aws

from components.aws.common import AwsTags, key_or_given
from components.aws.managed_data import POSTGRES_PORT, data_security_group


@dataclass(frozen=True)
class RdsProxyArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    allowed_security_group_ids: Sequence[pulumi.Input[str]]  # the EKS cluster security group
    database_security_group_id: pulumi.Input[str]  # opened to the proxy
    instance_identifier: pulumi.Input[str]
    database: str
    username: str
    password: pulumi.Input[str]
    tags: AwsTags
    server_connections: int  # the pooler's share of the database (postgres.pooler)
    max_connections: int  # the database's max_connections
    idle_client_timeout_seconds: int = 1800
    kms_key_arn: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.server_connections <= self.max_connections:
            raise ValueError(f"RdsProxyArgs.server_connections must be 1..{self.max_connections} "
                             f"(the database's max_connections), got {self.server_connections}")

    @property
    def max_connections_percent(self) -> int:
        """RDS Proxy sizes its pool as a percentage of max_connections: the budget, rounded down."""
        return max(1, math.floor(100 * self.server_connections / self.max_connections))


class RdsProxy(pulumi.ComponentResource):
    host: pulumi.Output[str]
    port: int
    url: pulumi.Output[str]

    def __init__(self, name: str, args: RdsProxyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:aws:RdsProxy", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags
        self.key, key_arn = key_or_given(f"{name}-key", f"RDS Proxy {name} credentials", tags, self, args.kms_key_arn)
        self.secret = aws.secretsmanager.Secret(
            f"{name}-credentials", description=f"{name}: the database login RDS Proxy uses",
            kms_key_id=key_arn, recovery_window_in_days=7, tags=tags.render(), opts=child)
        aws.secretsmanager.SecretVersion(
            f"{name}-credentials-version", secret_id=self.secret.id,
            secret_string=pulumi.Output.secret(pulumi.Output.from_input(args.password).apply(
                lambda p: json.dumps({"username": args.username, "password": p}))),
            opts=child)
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "rds.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            tags=tags.render(), opts=child)
        aws.iam.RolePolicy(
            f"{name}-read-secret", role=self.role.id,
            policy=pulumi.Output.all(self.secret.arn, key_arn).apply(lambda v: json.dumps({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": v[0]},
                    {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": v[1],
                     "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}}},
                ]})),
            opts=child)
        self.security_group = data_security_group(
            f"{name}-sg", self, args.vpc_id, POSTGRES_PORT, args.allowed_security_group_ids, tags,
            f"RDS Proxy {name}")
        # The proxy reaches the database; the database admits the proxy.
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-to-database", security_group_id=self.security_group.id,
            referenced_security_group_id=args.database_security_group_id, ip_protocol="tcp",
            from_port=POSTGRES_PORT, to_port=POSTGRES_PORT, description="RDS Proxy to PostgreSQL",
            tags=tags.render(), opts=child)
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-into-database", security_group_id=args.database_security_group_id,
            referenced_security_group_id=self.security_group.id, ip_protocol="tcp",
            from_port=POSTGRES_PORT, to_port=POSTGRES_PORT, description="PostgreSQL from RDS Proxy",
            tags=tags.render(), opts=child)
        self.proxy = aws.rds.Proxy(
            name,
            engine_family="POSTGRESQL",
            require_tls=True,
            role_arn=self.role.arn,
            vpc_subnet_ids=args.subnet_ids,
            vpc_security_group_ids=[self.security_group.id],
            idle_client_timeout=args.idle_client_timeout_seconds,
            debug_logging=False,  # it would log statements, parameters included
            auths=[{
                "auth_scheme": "SECRETS",
                "secret_arn": self.secret.arn,
                "iam_auth": "DISABLED",
                "client_password_auth_type": "POSTGRES_SCRAM_SHA_256",
            }],
            tags=tags.render(Name=name),
            opts=child)
        self.target_group = aws.rds.ProxyDefaultTargetGroup(
            f"{name}-targets",
            db_proxy_name=self.proxy.name,
            connection_pool_config={
                "max_connections_percent": args.max_connections_percent,
                "max_idle_connections_percent": max(1, args.max_connections_percent // 2),
                "connection_borrow_timeout": 10,  # seconds a client waits for a connection (the app's pool_timeout)
            },
            opts=child)
        aws.rds.ProxyTarget(
            f"{name}-target", db_proxy_name=self.proxy.name, target_group_name=self.target_group.name,
            db_instance_identifier=args.instance_identifier, opts=child)
        self.host = self.proxy.endpoint
        self.port = POSTGRES_PORT
        self.url = pulumi.Output.secret(pulumi.Output.all(args.password, self.host).apply(
            lambda v: f"postgresql://{args.username}:{urllib.parse.quote(v[0], safe='')}@{v[1]}:{POSTGRES_PORT}/"
                      f"{args.database}?sslmode=require"))
        self.register_outputs({"host": self.host, "port": self.port, "url": self.url})
