"""compose(config): the one composition of the platform, for every environment.

[AWS: network -> EKS ->] namespace -> data stores -> migrations -> applications
-> (monitoring) -> (routes) -> backups

Environments differ only by the StackConfig handed in: with `aws.enabled` the
stack builds its own EKS cluster and every Kubernetes object goes through that
cluster's provider; otherwise through a provider for the configured kube
context. The parenthesised layers are seams for later components.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from typing import TYPE_CHECKING

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.app_job import AppJob, AppJobArgs
from components.addons import ClusterAddons
from components.app_service import AppService, AppServiceArgs, Autoscaling, SecretEnv
from components.credentials import generated_password
from components.backup import BackupSchedule, BackupScheduleArgs
from components.ingress import PublicRoutes
from components.monitoring import MonitoringStack
from stacks import catalog
from stacks.admin import FirstAdmin, dashboard_env, dashboard_peer, first_admin, health_egress
from stacks.config import ServiceConfig, StackConfig, secret_setting
from stacks.data import SYSTEM, DataLayer, compose_data_layer
from stacks.images import ImagePolicy
from stacks.promotion import promoted_image
from stacks.releases import service_release
from stacks.observability import compose_monitoring, compose_routes
from stacks.cluster_addons import compose_addons
from stacks.provider_secrets import provider_secrets, provider_settings

if TYPE_CHECKING:  # the AWS and Docker SDKs are imported where used: slow to import, and most stacks need neither
    from stacks.aws import AwsFoundation

APP_COMPONENT = "api"
API_KEYS_SECRET = "content-engine-api"


@dataclass
class Platform:
    """What compose() declared, for stack outputs and tests."""

    config: StackConfig
    provider: k8s.Provider
    namespace: k8s.core.v1.Namespace
    image: pulumi.Output[str]
    data: DataLayer
    api_key: pulumi.Output[str]
    migration: AppJob
    aws: AwsFoundation | None = None
    addons: ClusterAddons | None = None
    monitoring: MonitoringStack | None = None
    routes: PublicRoutes | None = None
    services: dict[str, AppService] = field(default_factory=dict)
    backups: BackupSchedule | None = None
    admin: FirstAdmin | None = None

    def export(self) -> None:
        pulumi.export("environment", self.config.environment)
        pulumi.export("namespace", self.config.namespace)
        pulumi.export("image", self.image)
        pulumi.export("service_urls", {name: svc.url for name, svc in self.services.items()})
        db, cache, storage = self.data.database, self.data.cache, self.data.storage
        pulumi.export("postgres", {
            "host": db.host, "read_only_host": db.read_only_host, "port": db.port,
            "database": db.database, "secret_name": db.secret_name,
        })
        pulumi.export("redis", {
            "host": cache.host, "port": cache.port, "cluster_mode": cache.cluster_mode,
            "secret_name": cache.secret_name,
        })
        pulumi.export("object_store", {
            "endpoint": storage.endpoint or f"https://s3.{storage.region}.amazonaws.com",
            "secret_name": storage.secret_name,
            "buckets": dict(storage.bucket_names),
        })
        pulumi.export("api_key", self.api_key)  # secret: `pulumi stack output api_key --show-secrets`
        if self.admin is not None:  # the dashboard's first admin: sign in, then create the real accounts
            pulumi.export("admin_email", self.admin.email)
            pulumi.export("admin_password", self.admin.password)  # secret
        pulumi.export("backup_cronjobs", self.backups.cronjob_names if self.backups else [])
        if self.routes is not None:
            pulumi.export("public_urls", self.routes.urls)
        if self.monitoring is not None:
            pulumi.export("prometheus_url", self.monitoring.prometheus_url)
            pulumi.export("grafana_admin_password", self.monitoring.grafana_admin_password)  # secret
        if self.aws is not None:
            self.aws.export()


def compose(config: StackConfig) -> Platform:
    aws_layer = None
    if config.aws.enabled:
        from stacks.aws import compose_aws

        aws_layer = compose_aws(config)
    provider = aws_layer.provider if aws_layer is not None else kubernetes_provider(config)
    # Monitoring and routes reach into each other's namespaces (Prometheus's discovery in the
    # gateway's, the Grafana route in monitoring's): objects there wait for whichever comes later.
    kube.expect_namespaces(catalog.stack_namespaces_for(config.environment))
    # Before anything that needs their CRDs or APIs (routes, monitoring's cert-manager Role).
    addons = compose_addons(config, pulumi.ResourceOptions(providers=[provider]), aws_layer)
    namespace = app_namespace(config, provider)
    image = app_image(config)
    in_namespace = pulumi.ResourceOptions(providers=[provider], depends_on=[namespace])
    images = ImagePolicy(pin_digests=config.images.pin_digests, mirrors=config.images.mirrors)
    data = compose_data_layer(config, images, in_namespace, aws_layer, cert_manager=addons.cert_manager)
    migration = migration_job(config, data, image, in_namespace)
    api_key = api_keys_secret(config, in_namespace)
    api_keys = pulumi.Output.all(api_key, secret_setting("api_keys") or "")
    platform = Platform(config=config, provider=provider, namespace=namespace, image=image,
                        data=data, api_key=api_key, migration=migration, aws=aws_layer, addons=addons)

    namespace_name = namespace.metadata.apply(lambda m: m["name"])
    providers = provider_secrets(config, in_namespace)
    mail = provider_settings(config)
    platform.admin = first_admin(config, in_namespace)
    for service in catalog.CONTENT_SERVICES:
        args = app_service_args(config, service, config.services[service.name], namespace_name, image, data)
        platform.services[service.name] = AppService(
            service.name,
            dataclasses.replace(args, env={**args.env, **mail.get(service.name, {})}, secret_env=[
                # The API keys' version: the generated key and any configured ones (rotation rolls the pods).
                dataclasses.replace(s, version=api_keys) if s.secret_name == API_KEYS_SECRET else s
                for s in [*args.secret_env, *providers.get(service.name, []),
                          # The first admin's password: a file in the dashboard's pods and nowhere else.
                          *([platform.admin.secret_env] if service.name == catalog.ADMIN_DASHBOARD else [])]]),
            # Pods start only on a migrated schema.
            opts=pulumi.ResourceOptions(providers=[provider], depends_on=[namespace, migration]),
        )
    services = list(platform.services.values())
    platform.monitoring = compose_monitoring(config, data, images, pulumi.ResourceOptions(
        providers=[provider], depends_on=[namespace, *addons.ready]))
    platform.routes = compose_routes(config, pulumi.ResourceOptions(providers=[provider],
                                                                    depends_on=[*services, *addons.ready]))
    if config.backups.enabled:
        platform.backups = backup_schedule(config, data, image, in_namespace)
    kube.settle_namespaces()
    return platform


def backup_schedule(config: StackConfig, data: DataLayer, image: pulumi.Input[str],
                    opts: pulumi.ResourceOptions) -> BackupSchedule:
    """Daily dumps of PostgreSQL and Redis and a mirror of the buckets, into the backup bucket."""
    return BackupSchedule(
        "backups",
        BackupScheduleArgs(
            namespace=config.namespace,
            environment=config.environment,
            image=image,
            version=config.image.tag,
            bucket=data.backup_bucket,
            retention_days=config.backups.retention_days,
            schedule=config.backups.schedule,
            targets=config.backups.targets,
            env={"ENVIRONMENT": _app_environment_name(config.environment), "LOG_LEVEL": config.app.log_level,
                 **data.env(SYSTEM)},
            secret_env=data.secret_env(SYSTEM),
            egress_to=data.egress_peers(),
            service_account_role_arn=data.role_arns.get("backup"),
            # S3's lifecycle rule expires backups on AWS; the job's role cannot delete.
            prune=data.storage.secret_name is not None,
        ),
        opts=opts,
    )


def api_keys_secret(config: StackConfig, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """The X-API-Key values the services accept: one generated key, plus any in `aquascene:api_keys`."""
    generated = generated_password("content-engine-api-key", None, length=48)
    extra = secret_setting("api_keys")
    keys = pulumi.Output.all(generated, extra or "").apply(lambda v: ",".join(k for k in v if k))
    k8s.core.v1.Secret(
        "content-engine-api",
        metadata=kube.metadata(API_KEYS_SECRET, config.namespace, kube.Identity(
            name=API_KEYS_SECRET, component=APP_COMPONENT, environment=config.environment).labels()),
        string_data={"api-keys": pulumi.Output.secret(keys)},
        opts=opts,
    )
    return generated


def migration_job(config: StackConfig, data: DataLayer, image: pulumi.Input[str],
                  opts: pulumi.ResourceOptions) -> AppJob:
    """`python -m app migrate` before the services roll: the pre-deploy schema migration."""
    return AppJob(
        "migrate",
        AppJobArgs(
            namespace=config.namespace,
            image=image,
            identity=kube.Identity(name="content-engine-migrate", component="migration",
                                   environment=config.environment, version=config.image.tag),
            command=["python", "-m", "app", "migrate"],
            env={"ENVIRONMENT": _app_environment_name(config.environment), "LOG_LEVEL": config.app.log_level},
            secret_env=[s for s in data.secret_env(SYSTEM) if s.name == "DATABASE_URL"],
            egress_to=[data.database.peer],
        ),
        opts=opts,
    )


def kubernetes_provider(config: StackConfig) -> k8s.Provider:
    """An explicit provider: every Kubernetes resource names it, none uses the ambient default."""
    return k8s.Provider("kubernetes", context=config.kubernetes.context or None)


def app_namespace(config: StackConfig, provider: k8s.Provider) -> k8s.core.v1.Namespace:
    """The environment's namespace at Pod Security `restricted`, closed by default."""
    opts = pulumi.ResourceOptions(provider=provider)
    labels = {
        "app.kubernetes.io/part-of": kube.PART_OF,
        "app.kubernetes.io/managed-by": kube.MANAGED_BY,
        kube.ENVIRONMENT_LABEL: config.environment,
        **kube.restricted_namespace_labels(config.kubernetes.version),
    }
    namespace = kube.namespace("namespace", {"name": config.namespace, "labels": labels}, opts)
    k8s.networking.v1.NetworkPolicy(
        "default-deny",
        metadata=kube.metadata("default-deny-all", config.namespace, labels={
            "app.kubernetes.io/part-of": kube.PART_OF,
            "app.kubernetes.io/managed-by": kube.MANAGED_BY,
            kube.ENVIRONMENT_LABEL: config.environment,
        }),
        # Selects every pod and allows nothing: each component opens only what it serves.
        spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace]),
    )
    return namespace


def app_image(config: StackConfig) -> pulumi.Output[str]:
    """The content-engine image reference the Deployments run.

    With `image.promote_from` the stack deploys the digest that stack ran; with
    `image.build` it builds app/Dockerfile, pushes it and deploys the pushed
    digest; otherwise it deploys the configured tag (and digest).
    """
    if config.image.promote_from:
        return promoted_image(config.image.promote_from)
    if not config.image.build:
        return pulumi.Output.from_input(config.image.reference)
    import pulumi_docker as docker

    built = docker.Image(
        "content-engine-image",
        image_name=f"{config.image.registry}/{config.image.repository}:{config.image.tag}",
        build=docker.DockerBuildArgs(context=".", dockerfile="app/Dockerfile", platform="linux/amd64"),
    )
    return built.repo_digest


def app_service_args(
    config: StackConfig,
    service: catalog.ContentService,
    settings: ServiceConfig,
    namespace: pulumi.Input[str],
    image: pulumi.Input[str],
    data: DataLayer,
) -> AppServiceArgs:
    autoscaling = (
        Autoscaling(**settings.autoscaling.model_dump()) if settings.autoscaling is not None else None
    )
    egress = data.egress_peers(service.name) + ([kube.INTERNET_PEER] if service.public_internet else [])
    dashboard = service.name == catalog.ADMIN_DASHBOARD
    # The dashboard's overview reads the API services' /health: its egress to them, their ingress from it.
    egress += health_egress() if dashboard else []
    ingress = platform_ingress_peers(config) + ([] if dashboard else [dashboard_peer()])
    return AppServiceArgs(
        namespace=namespace,
        image=image,
        port=service.port,
        identity=kube.Identity(
            name=service.name,
            component=APP_COMPONENT,
            environment=config.environment,
            version=config.image.tag,
        ),
        replicas=settings.replicas,
        autoscaling=autoscaling,
        resources=kube.preset(settings.resources),
        env={**app_env(config, service), **data.env(service.name), **(dashboard_env(config) if dashboard else {})},
        secret_env=[*data.secret_env(service.name), SecretEnv("API_KEYS", API_KEYS_SECRET, "api-keys")],
        command=["python", "-m", "app", "serve"],
        probes=kube.HttpProbes(port="http", startup_timeout_seconds=settings.startup_timeout_seconds),
        ingress_from=ingress,
        egress_to=egress,
        service_account_annotations=(
            {"eks.amazonaws.com/role-arn": data.role_arns[service.name]} if service.name in data.role_arns else {}
        ),
        release=service_release(config, service.name),
    )


def app_env(config: StackConfig, service: catalog.ContentService) -> dict[str, str]:
    """Non-secret settings of the content engine (its pydantic-settings variables)."""
    return {
        "SERVICE_ROLE": service.name,
        "PORT": str(service.port),
        # Only the gateway and Prometheus can reach the pods (NetworkPolicy), so the
        # X-Forwarded-For they send is trusted: rate limits then see the real client.
        "FORWARDED_ALLOW_IPS": "*",
        "ENVIRONMENT": _app_environment_name(config.environment),
        "LOG_LEVEL": config.app.log_level,
        "DB_POOL_SIZE": str(config.app.db_pool_size),
        "DB_MAX_OVERFLOW": str(config.app.db_max_overflow),  # part of the connection budget (stacks/connections.py)
        "CORS_ORIGINS": ",".join(config.app.cors_origins),
        # Every role serving the content API enforces the same workflow (content-manager, the dashboard).
        "REQUIRE_REVIEW": "true" if config.app.require_review else "false",
    }


def platform_ingress_peers(config: StackConfig) -> list[kube.NetworkPeer]:
    """Who may call an application's port: the public gateway and Prometheus."""
    return [
        kube.NetworkPeer(namespace=catalog.gateway_namespace_for(config.environment)),
        kube.NetworkPeer(
            namespace=catalog.monitoring_namespace_for(config.environment),
            pod_labels={"app.kubernetes.io/name": "prometheus"},
        ),
    ]


def _app_environment_name(environment: str) -> str:
    # The content engine names its environments development/staging/production.
    return {"dev": "development", "staging": "staging", "prod": "production"}[environment]
