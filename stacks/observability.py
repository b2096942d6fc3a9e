"""Monitoring and public routes of compose(): what the operators see and the only way in."""

from __future__ import annotations

import dataclasses

import pulumi

from components import kube
from components.addons import CHARTS
from components.ingress import (
    LETSENCRYPT_PRODUCTION,
    LETSENCRYPT_STAGING,
    GatewayApiArgs,
    IngressApiArgs,
    PublicRoutes,
    PublicRoutesArgs,
    RateLimit,
    Route,
    TlsIssuer,
)
from components.monitoring import (
    AlertmanagerArgs,
    AlertReceivers,
    GrafanaArgs,
    GrafanaPostgres,
    Images,
    LokiArgs,
    MonitoringStack,
    MonitoringStackArgs,
    PrometheusArgs,
    ScrapeTarget,
    Storage,
)
from stacks import catalog
from stacks.config import StackConfig, secret_setting
from stacks.data import DataLayer
from stacks.images import ImagePolicy
from stacks.releases import weighted

GRAFANA_SERVICE, GRAFANA_PORT = "grafana", 3000
ISSUERS = {"letsencrypt-staging": LETSENCRYPT_STAGING, "letsencrypt-production": LETSENCRYPT_PRODUCTION}
# Seeds 000/002: generation is expensive (1 r/s, burst 5, 300 s); the rest of the API 10 r/s, burst 20.
GENERATE_LIMIT = RateLimit(1, 5)
API_LIMIT = RateLimit(10, 20)
# Seed 001's `zone=admin` (5 r/s per client); the seed names no burst: 10 lets a page load its assets.
ADMIN_LIMIT = RateLimit(5, 10)
# The dashboard generates drafts in-process: as long as the API's generation route allows.
ADMIN_TIMEOUT_SECONDS = 300
# cert-manager's controller metrics (its chart's Service and port); honor_labels keeps each
# Certificate's own namespace label.
CERT_MANAGER_NAMESPACE = CHARTS["cert-manager"].namespace
CERT_MANAGER_METRICS = ScrapeTarget("cert-manager", CERT_MANAGER_NAMESPACE, "cert-manager", 9402, component="tls",
                                    honor_labels=True)
# Where the stack reads cert-manager's metrics (a RoleBinding for Prometheus): a platform team's
# namespace unless the stack installs cert-manager itself (then its release creates it).
CERT_MANAGER_PREREQUISITE = kube.Prerequisite(
    CERT_MANAGER_NAMESPACE, "cert-manager's, installed by a platform team",
    "aquascene:addons.cert_manager.install: true (the stack installs it) or aquascene:ingress.tls_issuer: none")


def compose_monitoring(config: StackConfig, data: DataLayer, images: ImagePolicy,
                       opts: pulumi.ResourceOptions) -> MonitoringStack:
    cfg, env = config.monitoring, config.environment
    grafana_db = None
    if data.readonly_user is not None:
        grafana_db = GrafanaPostgres(host=data.database.read_only_host, database=data.database.database,
                                     user=data.readonly_user, password=data.readonly_password,
                                     sslmode=data.database_sslmode)
    defaults = Images()
    if config.ingress.tls_issuer != "none":
        kube.require_namespace(CERT_MANAGER_PREREQUISITE, pulumi.ResourceOptions(providers=opts.providers))
    return MonitoringStack(
        "monitoring",
        MonitoringStackArgs(
            environment=env,
            namespace=catalog.monitoring_namespace_for(env),
            app_namespace=config.namespace,
            node_agents_namespace=catalog.node_agents_namespace_for(env),
            kubernetes_version=config.kubernetes.version,
            cluster_name=f"{catalog.PROJECT}-{env}",
            gateway_namespace=catalog.gateway_namespace_for(env),
            # The Gateway API's Envoy proxies; the Ingress API's controller is the platform team's.
            gateway_metrics=config.ingress.mode == "gateway",
            # cert-manager's certificate expiry (CertificateExpiringSoon), where it issues ours.
            scrape_targets=[CERT_MANAGER_METRICS] if config.ingress.tls_issuer != "none" else [],
            prometheus=PrometheusArgs(retention_time=cfg.prometheus_retention_time,
                                      retention_size=cfg.prometheus_retention_size,
                                      storage=Storage(cfg.prometheus_storage_size),
                                      replicas=cfg.prometheus_replicas),
            alertmanager=AlertmanagerArgs(
                replicas=cfg.alertmanager_replicas,
                receivers=AlertReceivers(smtp_password=secret_setting("alert_smtp_password"),
                                         slack_webhook_url=secret_setting("alert_slack_webhook_url")),
            ) if cfg.alerting else None,
            grafana=GrafanaArgs(root_url=f"https://{config.ingress.grafana_host}", postgres=grafana_db),
            loki=LokiArgs(retention=cfg.loki_retention, storage=Storage(cfg.loki_storage_size)) if cfg.logs else None,
            node_exporter=cfg.node_exporter,
            kube_state_metrics_replicas=cfg.kube_state_metrics_replicas,
            images=Images(**{f.name: images.resolve(getattr(defaults, f.name))
                             for f in dataclasses.fields(defaults)}),
        ),
        opts=opts,
    )


def public_routes(config: StackConfig) -> list[Route]:
    """The seed's public paths, most specific first; Grafana and the admin dashboard on hosts of their own."""
    api = dict(host=config.ingress.api_host, namespace=config.namespace)
    by_path = [
        ("api-generate", "/api/v1/generate", "ai-processor", GENERATE_LIMIT, 300),
        ("api-content", "/api/v1/content", "content-manager", API_LIMIT, 60),
        ("api-subscribers", "/api/v1/subscribers", "subscriber-manager", API_LIMIT, 60),
        ("api-scrape", "/api/v1/scrape", "web-scraper", API_LIMIT, 60),
        ("api-newsletters", "/api/v1/newsletters", "distributor", API_LIMIT, 60),
        ("api-distributions", "/api/v1/distributions", "distributor", API_LIMIT, 60),
        ("api", "/api/v1/", "content-manager", API_LIMIT, 60),
    ]
    ports = {s.name: s.port for s in catalog.CONTENT_SERVICES}
    routes = [Route(name, path=path, service=service, port=ports[service], rate_limit=limit,
                    request_timeout_seconds=timeout, **api)
              for name, path, service, limit, timeout in by_path]
    routes = [weighted(config, route) for route in routes]  # canary releases split their routes
    routes.append(Route("grafana", host=config.ingress.grafana_host, path="/", service=GRAFANA_SERVICE,
                        port=GRAFANA_PORT, namespace=catalog.monitoring_namespace_for(config.environment),
                        rate_limit=API_LIMIT, content_security_policy=False))
    # The dashboard sends its own stricter CSP (frame-ancestors 'none', no inline script), which the
    # seed's would replace; no proxy may keep a copy of a signed-in page.
    routes.append(weighted(config, Route(
        "admin", host=config.ingress.admin_host, path="/", service=catalog.ADMIN_DASHBOARD,
        port=ports[catalog.ADMIN_DASHBOARD], namespace=config.namespace, rate_limit=ADMIN_LIMIT,
        request_timeout_seconds=ADMIN_TIMEOUT_SECONDS, content_security_policy=False,
        allow_cidrs=tuple(config.ingress.admin_allow_cidrs), cache_control="no-store")))
    return routes


def compose_routes(config: StackConfig, opts: pulumi.ResourceOptions) -> PublicRoutes:
    cfg = config.ingress
    tls = None
    if cfg.tls_issuer != "none":
        tls = TlsIssuer(cfg.tls_issuer, ISSUERS[cfg.tls_issuer], cfg.acme_email)
    return PublicRoutes(
        "public",
        PublicRoutesArgs(
            environment=config.environment,
            gateway_namespace=catalog.gateway_namespace_for(config.environment),
            routes=public_routes(config),
            mode=cfg.mode,
            tls=tls,
            gateway=GatewayApiArgs(gateway_class=cfg.gateway_class),
            ingress=IngressApiArgs(class_name=cfg.ingress_class),
            monitoring_namespace=catalog.monitoring_namespace_for(config.environment),
        ),
        opts=opts,
    )
