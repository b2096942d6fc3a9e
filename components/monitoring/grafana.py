"""Grafana: a generated admin password, provisioned datasources (Prometheus,
Loki, Alertmanager, PostgreSQL read-only) and the dashboards in files/dashboards/."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import kube, secret_files
from components.monitoring import workload as wl
from components.monitoring.args import MonitoringStackArgs

NAME = "grafana"
PORT = 3000
PROVISIONING_DIR = "/etc/grafana/provisioning"
DASHBOARDS_DIR = "/etc/grafana/dashboards"
DATA_DIR = "/var/lib/grafana"
ADMIN_SECRET = "grafana-admin"
DATASOURCE_SECRET = "grafana-datasources"
SECRETS_DIR = "/run/secrets/grafana"  # admin-user, admin-password, postgres-password: mounted files
# Expanded by Grafana when it reads the provisioning file ($__file{}): the password never is a variable.
POSTGRES_PASSWORD_FILE = f"{SECRETS_DIR}/postgres-password"
FOLDER = "AquaScene Content Engine"
# Why Grafana runs one pod (its exemption from workload-min-replicas).
SINGLETON = ("Grafana keeps users, sessions and settings in its embedded SQLite database on one ReadWriteOnce "
             "volume: a second pod would have a database of its own (logins and changes not shared); "
             "replicas need an external database (GF_DATABASE_*)")


def dashboards() -> dict[str, str]:
    """Dashboard JSON files: file name -> exact content."""
    folder = resources.files("components.monitoring") / "files" / "dashboards"
    return {f.name: f.read_text() for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".json")}


def grafana_datasources(args: MonitoringStackArgs, postgres_host: str | None = None) -> str:
    """datasources.yaml; the PostgreSQL password is a file reference, never a value."""
    ns = args.namespace
    sources: list[dict[str, Any]] = [{
        "name": "Prometheus", "uid": "prometheus", "type": "prometheus", "access": "proxy",
        "url": wl.service_url("prometheus", ns, 9090), "isDefault": True, "editable": False,
        "jsonData": {"timeInterval": args.prometheus.scrape_interval},
    }]
    if args.loki is not None:
        sources.append({"name": "Loki", "uid": "loki", "type": "loki", "access": "proxy",
                        "url": wl.service_url("loki", ns, 3100), "editable": False})
    if args.alertmanager is not None:
        sources.append({"name": "Alertmanager", "uid": "alertmanager", "type": "alertmanager", "access": "proxy",
                        "url": wl.service_url("alertmanager", ns, 9093), "editable": False,
                        "jsonData": {"implementation": "prometheus", "handleGrafanaManagedAlerts": False}})
    pg = args.grafana.postgres
    if pg is not None:
        sources.append({
            "name": "PostgreSQL", "uid": "postgres", "type": "grafana-postgresql-datasource", "access": "proxy",
            "url": f"{postgres_host}:{pg.port}", "user": pg.user, "editable": False,
            "jsonData": {"database": pg.database, "sslmode": pg.sslmode, "postgresVersion": 1700,
                         "maxOpenConns": 5, "maxIdleConns": 2},
            "secureJsonData": {"password": f"$__file{{{POSTGRES_PASSWORD_FILE}}}"},
        })
    return wl.dump_yaml({"apiVersion": 1, "datasources": sources})


def dashboard_provider() -> str:
    # The repo is the source of truth: provisioned dashboards cannot be edited or deleted in the UI.
    return wl.dump_yaml({"apiVersion": 1, "providers": [{
        "name": "aquascene", "orgId": 1, "folder": FOLDER, "type": "file", "disableDeletion": True,
        "allowUiUpdates": False, "updateIntervalSeconds": 60, "options": {"path": DASHBOARDS_DIR},
    }]})


class GrafanaParts:
    """What the stack exposes of Grafana."""

    def __init__(self, deployed: wl.Deployed, admin_password: pulumi.Output[str]):
        self.deployed = deployed
        self.admin_password = admin_password


def deploy(parent: pulumi.Resource, args: MonitoringStackArgs, depends_on: list[pulumi.Resource]) -> GrafanaParts:
    g = args.grafana
    ns = args.namespace
    child = pulumi.ResourceOptions(parent=parent, depends_on=depends_on)
    identity = kube.Identity(NAME, "dashboards", args.environment, kube.image_version(args.images.grafana))
    labels = identity.labels()

    password = random.RandomPassword(f"{NAME}-admin-password", length=32, special=False,
                                     opts=pulumi.ResourceOptions(parent=parent))
    secrets = [k8s.core.v1.Secret(f"{NAME}-admin", metadata=kube.metadata(ADMIN_SECRET, ns, labels),
                                  string_data={"admin-user": g.admin_user, "admin-password": password.result},
                                  opts=child)]
    # Grafana's __FILE forms read the admin credentials from the mounted files.
    env = [
        {"name": "GF_SECURITY_ADMIN_USER__FILE", "value": f"{SECRETS_DIR}/admin-user"},
        {"name": "GF_SECURITY_ADMIN_PASSWORD__FILE", "value": f"{SECRETS_DIR}/admin-password"},
    ]
    secret_items = [secret_files.SecretItem(ADMIN_SECRET, "admin-user", "admin-user"),
                    secret_files.SecretItem(ADMIN_SECRET, "admin-password", "admin-password")]
    pg = g.postgres
    if pg is not None:
        ref = pg.password_secret
        if ref is None:
            secrets.append(k8s.core.v1.Secret(
                f"{NAME}-datasources", metadata=kube.metadata(DATASOURCE_SECRET, ns, labels),
                string_data={"postgres-password": pulumi.Output.secret(pg.password)}, opts=child))
            ref_name, ref_key = DATASOURCE_SECRET, "postgres-password"
        else:
            ref_name, ref_key = ref.name, ref.key
        secret_items.append(secret_files.SecretItem(ref_name, ref_key, "postgres-password"))
    env += [{"name": name, "value": value} for name, value in _settings(args).items()]

    datasources = pulumi.Output.from_input(pg.host if pg else None).apply(
        lambda host: grafana_datasources(args, host))
    provider, boards = dashboard_provider(), dashboards()
    k8s.core.v1.ConfigMap(f"{NAME}-provisioning", metadata=kube.metadata(f"{NAME}-provisioning", ns, labels),
                          data={"datasources.yaml": datasources, "dashboards.yaml": provider}, opts=child)
    k8s.core.v1.ConfigMap(f"{NAME}-dashboards", metadata=kube.metadata(f"{NAME}-dashboards", ns, labels),
                          data=boards, opts=child)
    provisioning = wl.config_files("provisioning", PROVISIONING_DIR, {"configMap": {
        "name": f"{NAME}-provisioning",
        "items": [{"key": "datasources.yaml", "path": "datasources/datasources.yaml"},
                  {"key": "dashboards.yaml", "path": "dashboards/dashboards.yaml"}],
    }})
    dashboard_files = wl.config_files("dashboards", DASHBOARDS_DIR, {"configMap": {"name": f"{NAME}-dashboards"}})
    credentials = secret_files.projected_volume("credentials", secret_items, SECRETS_DIR)

    ingress = [wl.same_namespace("prometheus", [PORT])]
    if args.gateway_namespace:
        ingress.append(kube.NetworkPeer(namespace=args.gateway_namespace, ports=(PORT,)))
    egress = [wl.same_namespace("prometheus", [9090])]
    if args.loki is not None:
        egress.append(wl.same_namespace("loki", [3100]))
    if args.alertmanager is not None:
        egress.append(wl.same_namespace("alertmanager", [9093]))
    if pg is not None:
        egress.append(kube.NetworkPeer(namespace=args.app_namespace, ports=(pg.port,)))
    deployed = wl.deploy(parent, "StatefulSet", wl.Workload(
        identity=identity,
        namespace=ns,
        image=args.images.grafana,
        ports={"http": PORT},
        env=env,
        files=[provisioning, dashboard_files, credentials],
        data=g.storage,
        data_path=DATA_DIR,
        resources=g.resources,
        probes=kube.HttpProbes(port="http", liveness_path="/healthz", readiness_path="/api/health",
                               startup_timeout_seconds=120).render(),
        pod_annotations={"checksum/config": pulumi.Output.all(datasources, provider, boards).apply(kube.content_checksum),
                         # Grafana reads the datasource password when it provisions (at start).
                         **({"checksum/secrets": pulumi.Output.unsecret(pulumi.Output.from_input(pg.password).apply(
                             kube.content_checksum))} if pg is not None and pg.password is not None else {})},
        ingress_from=ingress,
        egress_to=egress,
        singleton=SINGLETON,
    ), depends_on=[*secrets, *depends_on])
    return GrafanaParts(deployed, pulumi.Output.secret(password.result))


def _settings(args: MonitoringStackArgs) -> dict[str, str]:
    """Grafana settings as GF_* variables: closed sign-up, no anonymous access, nothing phoning home."""
    settings = {
        "GF_PATHS_DATA": DATA_DIR,
        "GF_PATHS_PROVISIONING": PROVISIONING_DIR,
        "GF_LOG_MODE": "console",
        "GF_USERS_ALLOW_SIGN_UP": "false",
        "GF_AUTH_ANONYMOUS_ENABLED": "false",
        "GF_AUTH_DISABLE_LOGIN_FORM": "false",
        "GF_SECURITY_DISABLE_GRAVATAR": "true",
        "GF_SECURITY_COOKIE_SAMESITE": "strict",
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
        "GF_PLUGINS_PREINSTALL_DISABLED": "true",
        "GF_NEWS_NEWS_FEED_ENABLED": "false",
    }
    root_url = args.grafana.root_url
    if root_url:
        settings["GF_SERVER_ROOT_URL"] = root_url
        settings["GF_SECURITY_COOKIE_SECURE"] = str(root_url.startswith("https://")).lower()
    return settings
