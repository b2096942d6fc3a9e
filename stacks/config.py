"""StackConfig: a stack's profile defaults merged with its Pulumi config, validated once.

Validation happens before any resource is declared. Every problem is
collected and reported together, each by its full key
(`aquascene:services.ai-processor.replicas`) with what is allowed.
"""

from __future__ import annotations

import ipaddress
import json
import re
import types
import typing
from typing import Annotated, Any, Literal, Mapping, Union

import pulumi
from deepmerge import Merger
from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components import kube
from stacks.catalog import CONFIG_NAMESPACE, CONTENT_SERVICES, ENVIRONMENTS, SERVICE_NAMES, namespace_for
from stacks.connections import Budget, Client, Pooler
from stacks.profiles import profile

Environment = Literal["dev", "staging", "prod"]
ServiceName = Literal["content-manager", "ai-processor", "web-scraper", "distributor", "subscriber-manager",
                      "admin-dashboard"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
Preset = Literal[tuple(kube.RESOURCE_PRESETS)]  # type: ignore[valid-type]

assert set(typing.get_args(ServiceName)) == set(SERVICE_NAMES)
assert set(typing.get_args(Environment)) == set(ENVIRONMENTS)

# Docker's reference grammar (distribution/reference), split into its parts.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REGISTRY_RE = re.compile(rf"^{_DOMAIN}(?:/{_PATH_COMPONENT})*$")
REPOSITORY_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
# Another stack of this project, fully qualified: organization/project/stack.
STACK_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
KUBE_VERSION_RE = re.compile(r"^1\.[0-9]{2}$")


class ConfigError(Exception):
    """Every problem of a stack's configuration, one per line."""

    def __init__(self, stack: str, problems: list[str]):
        self.stack = stack
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(
            f"invalid configuration for stack '{stack}' ({count}):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


class _Model(BaseModel):
    # strict: "3" is not a number and "yes" is not a boolean; forbid: typos are errors.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class KubernetesConfig(_Model):
    context: str = Field(description="kubeconfig context; empty: the current context")
    version: str = Field(description="Kubernetes minor version the manifests target, e.g. 1.33")

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not KUBE_VERSION_RE.match(v):
            raise ValueError(f"must look like 1.33 (major.minor), got {v!r}")
        return v


class ImageConfig(_Model):
    registry: str
    repository: str
    tag: str
    digest: str
    build: bool
    require_digest: bool
    promote_from: str  # organization/project/stack whose `image` output (a digest) this stack deploys

    @field_validator("registry")
    @classmethod
    def _registry(cls, v: str) -> str:
        if not REGISTRY_RE.match(v):
            raise ValueError(f"malformed registry {v!r}; expected host[:port][/path], e.g. ghcr.io/aquascene")
        return v

    @field_validator("repository")
    @classmethod
    def _repository(cls, v: str) -> str:
        if not REPOSITORY_RE.match(v):
            raise ValueError(f"malformed repository {v!r}; expected lowercase path components, e.g. content-engine")
        return v

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        if not TAG_RE.match(v):
            raise ValueError(f"malformed tag {v!r}; expected [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")
        if v == "latest":
            raise ValueError("'latest' is not a version; pin a tag such as 1.0.0")
        return v

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str) -> str:
        if v and not DIGEST_RE.match(v):
            raise ValueError(f"malformed digest {v!r}; expected sha256:<64 hex characters> or empty")
        return v

    @field_validator("promote_from")
    @classmethod
    def _promote_from(cls, v: str) -> str:
        if v and not STACK_NAME_RE.match(v):
            raise ValueError(f"must name a stack as organization/project/stack, e.g. organization/aquascene/staging, "
                             f"or be empty; got {v!r}")
        return v

    @model_validator(mode="after")
    def _digest_required(self) -> "ImageConfig":
        if self.promote_from and (self.build or self.digest):
            raise ValueError(
                "promote_from deploys the digest another stack ran: set image.build: false and image.digest: '' "
                "(or promote_from: '' to build or pin here)"
            )
        if self.require_digest and not (self.digest or self.build or self.promote_from):
            raise ValueError(
                "require_digest is true: set image.digest to sha256:<64 hex>, image.build: true "
                "to deploy the digest of the image this stack builds, or image.promote_from to deploy "
                "the digest another stack ran"
            )
        return self

    def variant(self, ref: str) -> str | None:
        """A release track's image: a tag or digest of this repository; None (empty) for the stack's image."""
        if not ref:
            return None
        name = f"{self.registry}/{self.repository}"
        return f"{name}@{ref}" if DIGEST_RE.match(ref) else f"{name}:{ref}"

    @property
    def reference(self) -> str:
        """registry/repository:tag, plus @digest when pinned."""
        ref = f"{self.registry}/{self.repository}:{self.tag}"
        return f"{ref}@{self.digest}" if self.digest else ref


class AutoscalingConfig(_Model):
    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    cpu_utilization: int = Field(ge=1, le=100)
    memory_utilization: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _bounds(self) -> "AutoscalingConfig":
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must be <= max_replicas ({self.max_replicas})"
            )
        return self


def _tag_or_digest(value: str) -> str:
    if value and not (DIGEST_RE.match(value) or (TAG_RE.match(value) and value != "latest")):
        raise ValueError(f"must be a tag (1.2.0) or a digest (sha256:<64 hex>) of the stack's image repository, "
                         f"or empty for the stack's image; got {value!r}")
    return value


class RollingRelease(_Model):
    """One Deployment, replaced pod by pod."""

    strategy: Literal["rolling"]
    # The colour whose Deployment runs the service: keep blue-green's `active` when leaving it.
    # Unset: blue (`<name>`), sized by the HPA alone; set: sized from the live HPA (see Releases).
    active: Literal["blue", "green"] | None = None


class BlueGreenRelease(_Model):
    """Two Deployments; the Service and routes send everything to `active`, the other idles for rollback."""

    strategy: Literal["blue-green"]
    active: Literal["blue", "green"]
    idle_replicas: int = Field(default=1, ge=0, le=100)
    blue_image: str = ""  # tag or digest; empty: the stack's image
    green_image: str = ""

    _images = field_validator("blue_image", "green_image")(classmethod(lambda cls, v: _tag_or_digest(v)))


class CanaryRelease(_Model):
    """`stable` and `canary` Deployments; the HTTPRoute sends `canary_weight` % to the canary (0: rollback)."""

    strategy: Literal["canary"]
    canary_weight: int = Field(ge=0, le=100)
    canary_image: str = ""  # tag or digest; empty: the stack's image
    stable_image: str = ""  # tag or digest; empty: the stack's image (pin it while a promoted image is the canary)
    active: Literal["blue", "green"] | None = None  # the colour that is the stable track (as rolling's)

    _images = field_validator("canary_image", "stable_image")(classmethod(lambda cls, v: _tag_or_digest(v)))


Release = Annotated[Union[RollingRelease, BlueGreenRelease, CanaryRelease], Field(discriminator="strategy")]
RELEASE_STRATEGIES = ("rolling", "blue-green", "canary")


class ServiceConfig(_Model):
    replicas: int = Field(ge=1, le=100)
    autoscaling: AutoscalingConfig | None
    resources: Preset  # type: ignore[valid-type]
    startup_timeout_seconds: int = Field(ge=5, le=900)
    release: Release


class AppSettings(_Model):
    log_level: LogLevel
    db_pool_size: int = Field(ge=1, le=200)
    db_max_overflow: int = Field(ge=0, le=200)  # connections beyond the pool under bursts (SQLAlchemy)
    cors_origins: list[str]
    smtp_host: str  # the mail relay of newsletters and confirmations (STARTTLS); empty: mail is only logged
    smtp_port: int = Field(ge=1, le=65535)
    # Instagram publishing (distributor); the token is the secret aquascene:instagram_access_token.
    instagram_user_id: str  # the Instagram professional account's id; empty: publishing answers 503
    instagram_graph_url: str  # the Graph API with a pinned version, e.g. https://graph.facebook.com/v26.0
    # Content goes draft -> in_review -> approved -> published: no API key publishes unreviewed (REQUIRE_REVIEW).
    require_review: bool
    admin_email: str  # the dashboard's first admin (ADMIN_BOOTSTRAP_EMAIL); its password is the `admin_password` output

    @field_validator("instagram_user_id")
    @classmethod
    def _instagram_user_id(cls, v: str) -> str:
        if v and not re.fullmatch(r"[0-9]{1,32}", v):
            raise ValueError(f"must be the numeric Instagram user id (e.g. 17841400000000000), or empty, got {v!r}")
        return v

    @field_validator("instagram_graph_url")
    @classmethod
    def _graph_url(cls, v: str) -> str:
        if not re.fullmatch(r"https://[A-Za-z0-9.-]+(:[0-9]+)?/v[0-9]+\.[0-9]+", v):
            raise ValueError(f"must be an https:// Graph API URL with a pinned version such as "
                             f"https://graph.facebook.com/v26.0, got {v!r}")
        return v

    @field_validator("admin_email")
    @classmethod
    def _admin_email(cls, v: str) -> str:
        try:
            return validate_email(v, check_deliverability=False).normalized
        except EmailNotValidError as error:
            raise ValueError(f"must be an email address such as admin@aquascene.example, got {v!r} ({error})") from None

    @field_validator("smtp_host")
    @classmethod
    def _smtp_host(cls, v: str) -> str:
        if v and not HOST_RE.match(v):
            raise ValueError(f"must be a DNS name such as smtp.sendgrid.net, or empty, got {v!r}")
        return v

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if not re.match(r"^https?://[^/\s]+$", o)]
        if bad:
            raise ValueError(f"origins must be scheme://host[:port] without a path, got {bad}")
        return v


QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)$")
REDIS_MEMORY_RE = re.compile(r"^[0-9]+(kb|mb|gb)$")


def _quantity(value: str) -> str:
    if not QUANTITY_RE.match(value):
        raise ValueError(f"must be a storage quantity such as 10Gi, got {value!r}")
    return value


def _pinned_image(value: str) -> str:
    name, _, tag = value.rpartition(":")
    if "@sha256:" in value:
        return value
    if not name or "/" in tag or not TAG_RE.match(tag) or tag == "latest":
        raise ValueError(f"must be an image pinned by tag or digest (registry/name:tag), got {value!r}")
    return value


class ImagesConfig(_Model):
    """Third-party images: registry mirrors and digest pinning (the content engine's own image is `image`)."""

    pin_digests: bool
    mirrors: dict[str, str]

    @field_validator("mirrors")
    @classmethod
    def _mirrors(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not re.match(rf"^{_DOMAIN}$", k)] + [m for m in v.values() if not REGISTRY_RE.match(m)]
        if bad:
            raise ValueError(f"keys are upstream registries (docker.io, ghcr.io, ...) and values mirror "
                             f"prefixes (host[/path]); bad: {bad}")
        return v


class BackupSchedule(_Model):
    enabled: bool
    retention_days: int = Field(ge=1, le=3650)
    schedule: str = Field(min_length=9)


class PostgresRecoveryConfig(_Model):
    enabled: bool
    source_server_name: str
    target_time: str


class PoolerConfig(_Model):
    """PgBouncer (CloudNativePG `Pooler`, or a Deployment) or RDS Proxy in front of PostgreSQL."""

    enabled: bool
    pool_mode: Literal["transaction", "session"]
    default_pool_size: int = Field(ge=1, le=1000)  # server connections per pooler instance
    max_client_conn: int = Field(ge=1, le=100000)  # client connections per instance
    instances: int = Field(ge=1, le=10)


class PostgresConfig(_Model):
    mode: Literal["statefulset", "cloudnative-pg", "rds"]
    instances: int = Field(ge=1, le=9)
    image: str
    exporter_image: str
    storage_size: str
    storage_class: str
    resources: Preset  # type: ignore[valid-type]
    install_operator: bool
    zone_anti_affinity: Literal["preferred", "required"]
    continuous_backup: BackupSchedule
    server_name: str = Field(min_length=1, max_length=63)
    recovery: PostgresRecoveryConfig
    pooler: PoolerConfig

    _image = field_validator("image", "exporter_image")(classmethod(lambda cls, v: _pinned_image(v)))
    _size = field_validator("storage_size")(classmethod(lambda cls, v: _quantity(v)))

    @model_validator(mode="after")
    def _backup_needs_operator(self) -> "PostgresConfig":
        if self.continuous_backup.enabled and self.mode != "cloudnative-pg":
            raise ValueError("continuous_backup needs mode: cloudnative-pg (statefulset mode is backed up by CronJobs)")
        if self.recovery.enabled and not self.continuous_backup.enabled:
            raise ValueError("recovery needs continuous_backup.enabled: the cluster recovers from that archive")
        if self.recovery.enabled and self.recovery.source_server_name == self.server_name:
            raise ValueError(
                "recovery.source_server_name must differ from server_name: the recovered cluster archives "
                "to a new name and never overwrites the backups it recovers from"
            )
        return self


class RedisConfig(_Model):
    mode: Literal["standalone", "cluster", "elasticache"]
    masters: int = Field(ge=3, le=20)
    replicas_per_master: int = Field(ge=0, le=3)
    image: str
    exporter_image: str
    maxmemory: str
    storage_size: str
    storage_class: str
    resources: Preset  # type: ignore[valid-type]

    _image = field_validator("image", "exporter_image")(classmethod(lambda cls, v: _pinned_image(v)))
    _size = field_validator("storage_size")(classmethod(lambda cls, v: _quantity(v)))

    @field_validator("maxmemory")
    @classmethod
    def _maxmemory(cls, v: str) -> str:
        if not REDIS_MEMORY_RE.match(v):
            raise ValueError(f"must be a Redis size such as 400mb or 2gb, got {v!r}")
        return v


class ObjectStoreConfig(_Model):
    mode: Literal["single", "distributed", "s3"]
    nodes: int = Field(ge=4, le=32)
    image: str
    client_image: str
    storage_size: str
    storage_class: str
    resources: Preset  # type: ignore[valid-type]

    _image = field_validator("image", "client_image")(classmethod(lambda cls, v: _pinned_image(v)))
    _size = field_validator("storage_size")(classmethod(lambda cls, v: _quantity(v)))


CIDR_RE = re.compile(r"^(\d{1,3}\.){3}\d{1,3}/\d{1,2}$")


class AwsConfig(_Model):
    """The AWS foundation (prod): VPC, EKS, S3, IAM roles for service accounts."""

    enabled: bool
    vpc_cidr: str
    availability_zones: int = Field(ge=2, le=6)
    nat: Literal["per-az", "single"]
    node_instance_types: list[str] = Field(min_length=1)
    node_min: int = Field(ge=1, le=1000)
    node_desired: int = Field(ge=1, le=1000)
    node_max: int = Field(ge=1, le=1000)
    public_access_cidrs: list[str]
    admin_principal_arns: list[str]

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        if not CIDR_RE.match(v):
            raise ValueError(f"must be an IPv4 CIDR such as 10.0.0.0/16, got {v!r}")
        return v

    @field_validator("public_access_cidrs")
    @classmethod
    def _public(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not CIDR_RE.match(c) or c.endswith("/0")]
        if bad:
            raise ValueError(f"must be the CIDRs of CI and operators (never /0), got {bad}")
        return v

    @model_validator(mode="after")
    def _sizes(self) -> "AwsConfig":
        if not self.node_min <= self.node_desired <= self.node_max:
            raise ValueError(f"node sizes must satisfy node_min <= node_desired <= node_max "
                             f"(got {self.node_min}/{self.node_desired}/{self.node_max})")
        return self


DURATION_RE = re.compile(r"^[0-9]+(h|d|w|y)$")
SIZE_RE = re.compile(r"^[0-9]+(MB|GB|TB)$")
HOST_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$")


class MonitoringConfig(_Model):
    prometheus_retention_time: str
    prometheus_retention_size: str
    prometheus_storage_size: str
    prometheus_replicas: int = Field(ge=1, le=3)  # > 1: an HA group (replica external label, alerts deduplicated)
    alerting: bool  # Alertmanager (receivers' secrets: aquascene:alert_smtp_password, alert_slack_webhook_url)
    alertmanager_replicas: int = Field(ge=1, le=5)
    logs: bool  # Loki + the Alloy log agent
    loki_retention: str
    loki_storage_size: str
    node_exporter: bool
    kube_state_metrics_replicas: int = Field(ge=1, le=3)  # behind its Service, scraped as one target

    @field_validator("prometheus_retention_time", "loki_retention")
    @classmethod
    def _duration(cls, v: str) -> str:
        if not DURATION_RE.match(v):
            raise ValueError(f"must be a duration such as 15d or 720h, got {v!r}")
        return v

    @field_validator("prometheus_retention_size")
    @classmethod
    def _size(cls, v: str) -> str:
        if not SIZE_RE.match(v):
            raise ValueError(f"must be a size such as 10GB, got {v!r}")
        return v

    _volumes = field_validator("prometheus_storage_size", "loki_storage_size")(classmethod(lambda cls, v: _quantity(v)))


class IngressConfig(_Model):
    mode: Literal["gateway", "ingress"]
    api_host: str
    grafana_host: str
    admin_host: str  # the admin dashboard
    admin_allow_cidrs: list[str]  # who may reach admin_host (client CIDRs); empty: everyone
    tls_issuer: Literal["none", "letsencrypt-staging", "letsencrypt-production"]
    acme_email: str
    gateway_class: str
    ingress_class: str

    @field_validator("api_host", "grafana_host", "admin_host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not HOST_RE.match(v):
            raise ValueError(f"must be a DNS name such as api.aquascene.example, got {v!r}")
        return v

    @field_validator("admin_allow_cidrs")
    @classmethod
    def _allow_cidrs(cls, v: list[str]) -> list[str]:
        bad = []
        for cidr in v:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                bad.append(cidr)
            else:
                if "/" not in cidr:  # the gateway's CIDR type needs the prefix length
                    bad.append(cidr)
        if bad:
            raise ValueError(f"must be client networks as IPv4/IPv6 CIDRs with no host bits set, such as "
                             f"203.0.113.0/24 or 2001:db8::/32 (empty: open to all); bad: {bad}")
        return v

    @model_validator(mode="after")
    def _email(self) -> "IngressConfig":
        if self.tls_issuer != "none" and "@" not in self.acme_email:
            raise ValueError("acme_email must be set when tls_issuer issues certificates (Let's Encrypt account)")
        return self


class BackupsConfig(_Model):
    enabled: bool
    schedule: str
    retention_days: int = Field(ge=1, le=3650)
    targets: list[Literal["postgres", "redis", "objects"]] = Field(min_length=1)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"must be a 5-field cron expression such as '0 2 * * *', got {v!r}")
        return v


class AddonConfig(_Model):
    install: bool  # false: a platform team installs it (the stack asserts it is there when it needs it)


class AddonsConfig(_Model):
    """Cluster add-ons as pinned Helm releases (components/addons.py). The CloudNativePG operator
    and its Barman Cloud plugin are postgres.install_operator."""

    metrics_server: AddonConfig
    node_autoscaler: AddonConfig  # cluster-autoscaler with an IRSA role, for the EKS node groups
    cert_manager: AddonConfig
    envoy_gateway: AddonConfig  # and the Gateway API CRDs and the GatewayClass


class StackConfig(_Model):
    environment: Environment
    kubernetes: KubernetesConfig
    image: ImageConfig
    images: ImagesConfig
    app: AppSettings
    services: dict[ServiceName, ServiceConfig]  # type: ignore[valid-type]
    postgres: PostgresConfig
    redis: RedisConfig
    object_store: ObjectStoreConfig
    backups: BackupsConfig
    aws: AwsConfig
    monitoring: MonitoringConfig
    ingress: IngressConfig
    addons: AddonsConfig

    @model_validator(mode="after")
    def _managed_services_need_aws(self) -> "StackConfig":
        managed = {
            "postgres.mode: rds": self.postgres.mode == "rds",
            "redis.mode: elasticache": self.redis.mode == "elasticache",
            "object_store.mode: s3": self.object_store.mode == "s3",
        }
        wanted = [name for name, on in managed.items() if on]
        if wanted and not self.aws.enabled:
            raise ValueError(f"{', '.join(wanted)} need aws.enabled: true (the AWS layer creates them)")
        if self.postgres.mode == "rds" and self.postgres.continuous_backup.enabled:
            raise ValueError("postgres.continuous_backup is CloudNativePG's; RDS keeps its own automated backups")
        return self

    @field_validator("services")
    @classmethod
    def _all_services(cls, v: dict[str, ServiceConfig]) -> dict[str, ServiceConfig]:
        missing = [name for name in SERVICE_NAMES if name not in v]
        if missing:
            raise ValueError(f"missing services {missing}")
        return v

    @property
    def namespace(self) -> str:
        return namespace_for(self.environment)


def budget_for(config: StackConfig) -> Budget:
    """The PostgreSQL connection budget of a validated StackConfig (stacks/connections.py)."""
    per_pod = config.app.db_pool_size + config.app.db_max_overflow
    pooled = [
        Client(name, s.autoscaling.max_replicas if s.autoscaling is not None else s.replicas, per_pod)
        for name, s in ((svc.name, config.services[svc.name]) for svc in CONTENT_SERVICES)
    ]
    direct = [Client("migration job", 1, 1)]
    if config.backups.enabled and "postgres" in config.backups.targets:
        direct.append(Client("backup job", 1, 1))
    pg = config.postgres
    if pg.mode == "rds":  # imported only here: the AWS SDK is slow to import and most stacks need none of it
        from components.aws.managed_data import SEED_PARAMETERS as parameters
    else:
        from components.postgres import SEED_PARAMETERS as parameters
    pooler = None
    if pg.pooler.enabled:
        # RDS Proxy is one logical pool: default_pool_size is its whole share of the database.
        instances = 1 if pg.mode == "rds" else pg.pooler.instances
        pooler = Pooler(max_client_conn=None if pg.mode == "rds" else pg.pooler.max_client_conn,
                        server_connections=instances * pg.pooler.default_pool_size)
    return Budget(pooled=pooled, direct=direct, pooler=pooler, max_connections=int(parameters["max_connections"]))


# Profile + overrides: objects merge key by key; lists and scalars are replaced;
# an explicit null replaces an object (e.g. `autoscaling: null` turns the HPA off).
_MERGER = Merger([(dict, ["merge"]), (list, ["override"])], ["override"], ["override"])


def build_stack_config(stack: str, overrides: Mapping[str, Any]) -> StackConfig:
    """Validate `overrides` (config keys without the namespace) on top of their profile."""
    problems: list[str] = []
    overrides = dict(overrides)
    environment = overrides.get("environment")
    if environment not in ENVIRONMENTS:
        got = "missing" if environment is None else f"got {environment!r}"
        problems.append(
            f"{CONFIG_NAMESPACE}:environment: required, one of {', '.join(ENVIRONMENTS)} ({got})"
        )
        base_env = "dev"  # still check every other key against a profile's shape
    else:
        base_env = environment
    merged = _MERGER.merge(profile(base_env), {**overrides, "environment": base_env})
    try:
        config = StackConfig.model_validate(merged)
        problems += _release_problems(config)
    except ValidationError as exc:
        problems += _describe_all(exc.errors())
        config = None
    if config is not None:
        problems += [f"{_key(tuple(key.split('.')))}: {message}" for key, message in budget_for(config).problems()]
        if config.addons.node_autoscaler.install and not config.aws.enabled:
            problems.append(f"{_key(('addons', 'node_autoscaler', 'install'))}: needs aws.enabled: true (it scales "
                            "the EKS node groups this stack creates); set it to false on other clusters")
    if problems:
        raise ConfigError(stack, problems)
    assert config is not None
    return config


def _release_problems(config: StackConfig) -> list[str]:
    """Release strategies the stack's public routes cannot carry, each named by its service's key."""
    if config.ingress.mode != "ingress":
        return []
    return [
        f"{_key(('services', name, 'release'))}: strategy canary needs weighted routes: set "
        f"{CONFIG_NAMESPACE}:ingress.mode: gateway (the Ingress API has no weights, and the retired "
        f"ingress-nginx canary annotations are no way forward), or use strategy rolling or blue-green"
        for name, service in config.services.items() if service.release.strategy == "canary"
    ]


# Secrets are not part of StackConfig: they stay secret Outputs (`pulumi config set --secret`).
SECRET_KEYS = ("alert_smtp_password", "alert_slack_webhook_url", "api_keys",
               # The engine's providers (stacks/provider_secrets.py): only the services that use them get them.
               "openai_api_key", "anthropic_api_key", "smtp_username", "smtp_password", "instagram_access_token")


def secret_setting(key: str) -> pulumi.Output[str] | None:
    """A secret config value as a secret Output, or None when unset."""
    if key not in SECRET_KEYS:
        raise KeyError(f"{key} is not one of the secret settings {SECRET_KEYS}")
    return pulumi.Config(CONFIG_NAMESPACE).get_secret(key)


def read_pulumi_config(namespace: str = CONFIG_NAMESPACE) -> dict[str, Any]:
    """Every `namespace:*` key of the running program's config (but the secrets), values parsed from JSON."""
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    cfg = pulumi.Config(namespace)
    values: dict[str, Any] = {}
    for full_key in sorted(keys):
        ns, _, key = full_key.partition(":")
        if ns != namespace or not key or key in SECRET_KEYS:
            continue
        raw = cfg.get(key)
        if raw is None:
            continue
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def load_stack_config() -> StackConfig:
    """The running stack's validated configuration (raises ConfigError)."""
    return build_stack_config(pulumi.get_stack(), read_pulumi_config())


# ------------------------------------------------------------------ messages


def _describe_all(errors: list[Any]) -> list[str]:
    """One line per problem; a bad map key (an unknown service) is one problem, not one per field."""
    bad_keys = {tuple(map(str, e["loc"][:-1])) for e in errors if e["loc"] and e["loc"][-1] == "[key]"}
    lines = []
    for err in errors:
        loc = tuple(str(part) for part in err["loc"])
        if any(loc[: len(prefix)] == prefix and loc != prefix + ("[key]",) for prefix in bad_keys):
            continue
        lines.append(_describe(loc, err))
    return lines


def _describe(loc: tuple[str, ...], err: Mapping[str, Any]) -> str:
    if loc and loc[-1] == "[key]":
        loc = loc[:-1]
        allowed = ", ".join(typing.get_args(ServiceName))
        return f"{_key(loc)}: unknown name; allowed here: {allowed}"
    kind = err["type"]
    path, _ = _walk(loc)
    if kind == "extra_forbidden":
        _, model = _walk(loc[:-1])
        allowed = ", ".join(model.model_fields) if _is_model(model) else ""
        return f"{_key(path)}: unknown key; allowed here: {allowed}"
    if kind == "missing":
        return f"{_key(path)}: required"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = err.get("ctx", {}).get("discriminator", "").strip("'")
        got = f"got {_short(err['input'].get(tag))}" if kind == "union_tag_invalid" else "missing"
        return f"{_key(path + (tag,))}: required, one of {', '.join(RELEASE_STRATEGIES)} ({got})"
    message = err["msg"].removeprefix("Value error, ")
    if kind == "value_error" or "input" not in err:
        return f"{_key(path)}: {message}"
    return f"{_key(path)}: {message} (got {_short(err['input'])})"


def _walk(loc: tuple[str, ...]) -> tuple[tuple[str, ...], Any]:
    """An error location as a config key path (union tags dropped) and the model or type found there."""
    model: Any = StackConfig
    path: list[str] = []
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        path.append(part)
        if typing.get_origin(model) is dict:  # `part` is a map key (a service name)
            model = _unwrap(typing.get_args(model)[1])
        elif _is_model(model) and part in model.model_fields:
            model = _unwrap(model.model_fields[part].annotation)
        else:
            model = None
        tagged = _tagged_members(model)
        if tagged and parts and parts[0] in tagged:
            model = tagged[parts.pop(0)]  # pydantic puts the chosen member's tag into the location
    return tuple(path), model


def _tagged_members(annotation: Any) -> dict[str, Any]:
    """A discriminated union's members by tag (the `strategy` of a release)."""
    if typing.get_origin(annotation) not in (Union, types.UnionType):
        return {}
    members = [m for m in typing.get_args(annotation) if _is_model(m) and "strategy" in m.model_fields]
    return {typing.get_args(m.model_fields["strategy"].annotation)[0]: m for m in members}


def _key(loc: tuple[str, ...]) -> str:
    return f"{CONFIG_NAMESPACE}:{'.'.join(loc)}" if loc else CONFIG_NAMESPACE


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _unwrap(annotation: Any) -> Any:
    """X | None -> X."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    if typing.get_origin(annotation) is Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)
