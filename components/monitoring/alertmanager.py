"""Alertmanager: seed 000's routes and receivers.

The configuration is a ConfigMap: it names the SMTP password and the Slack
webhook URL by file (`smtp_auth_password_file`, `api_url_file`), and those two
live in a Secret mounted read-only beside it. So a routing change shows in a
preview's diff, and amtool checks exactly the file that is deployed
(tests/monitoring)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import kube, secret_files
from components.monitoring import workload as wl
from components.monitoring.args import AlertReceivers, MonitoringStackArgs

NAME = "alertmanager"
PORT = 9093
CLUSTER_PORT = 9094
CONFIG_DIR = "/etc/alertmanager"
DATA_DIR = "/alertmanager"
SECRETS_DIR = "/etc/alertmanager/secrets"
SMTP_PASSWORD_FILE = f"{SECRETS_DIR}/smtp-password"
SLACK_WEBHOOK_FILE = f"{SECRETS_DIR}/slack-webhook-url"

_ALERT_BODY = """{{ range .Alerts }}
Alert: {{ .Annotations.summary }}
Description: {{ .Annotations.description }}
Severity: {{ .Labels.severity }}
{{ end }}"""
_CRITICAL_BODY = """CRITICAL ALERT
{{ range .Alerts }}
Alert: {{ .Annotations.summary }}
Description: {{ .Annotations.description }}
Instance: {{ .Labels.instance }}
Time: {{ .StartsAt }}
{{ end }}"""
_SLACK_TEXT = """{{ range .Alerts }}
{{ .Annotations.summary }}
{{ .Annotations.description }}
Instance: {{ .Labels.instance }}
Started: {{ .StartsAt }}
{{ end }}"""


def peer_addresses(args: MonitoringStackArgs) -> list[str]:
    """host:port of every replica, by the headless Service's per-pod DNS."""
    assert args.alertmanager is not None
    host = kube.cluster_dns(wl.headless_service_name(NAME), args.namespace)
    return [f"{NAME}-{i}.{host}:{PORT}" for i in range(args.alertmanager.replicas)]


def alertmanager_config(receivers: AlertReceivers, email: object, slack: object) -> str:
    """alertmanager.yml: e-mail receivers when there is an SMTP password, Slack when there is a
    webhook URL (truthy values); both secrets are referenced by file, never written here."""
    email, slack = bool(email), bool(slack)

    def receiver(name: str, to: str | None = None, subject: str = "", body: str | None = None,
                 channel: str | None = None, title: str = "") -> dict[str, Any]:
        r: dict[str, Any] = {"name": name}
        if email and to:
            mail: dict[str, Any] = {"to": to, "send_resolved": True, "headers": {"Subject": subject}}
            if body:
                mail["text"] = body
            r["email_configs"] = [mail]
        if slack and channel:
            r["slack_configs"] = [{"api_url_file": SLACK_WEBHOOK_FILE, "channel": channel, "title": title,
                                   "text": _SLACK_TEXT, "send_resolved": True}]
        return r

    config: dict[str, Any] = {}
    if email:
        config["global"] = {
            "smtp_smarthost": receivers.smtp_smarthost,
            "smtp_from": receivers.smtp_from,
            "smtp_auth_username": receivers.smtp_username,
            "smtp_auth_password_file": SMTP_PASSWORD_FILE,
            "smtp_require_tls": True,
        }
    config["route"] = {
        "group_by": ["alertname", "cluster"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "12h",
        "receiver": "default",
        "routes": [
            {"matchers": ['severity="critical"'], "receiver": "critical-alerts", "group_wait": "10s",
             "repeat_interval": "5m"},
            {"matchers": ['team="platform"'], "receiver": "platform-team"},
            {"matchers": ['team="infrastructure"'], "receiver": "infrastructure-team"},
        ],
    }
    # A critical alert silences the warnings about the same thing.
    config["inhibit_rules"] = [
        {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
         "equal": ["cluster", "namespace", "instance"]},
    ]
    config["receivers"] = [
        receiver("default", receivers.default_email, "AquaScene Alert: {{ .GroupLabels.alertname }}", _ALERT_BODY),
        receiver("critical-alerts", receivers.oncall_email, "CRITICAL: {{ .GroupLabels.alertname }}", _CRITICAL_BODY,
                 receivers.critical_channel, "CRITICAL: {{ .GroupLabels.alertname }}"),
        receiver("platform-team", channel=receivers.platform_channel, title="{{ .GroupLabels.alertname }}"),
        receiver("infrastructure-team", receivers.infrastructure_email,
                 "Infrastructure Alert: {{ .GroupLabels.alertname }}"),
    ]
    return wl.dump_yaml(config)


def deploy(parent: pulumi.Resource, args: MonitoringStackArgs, depends_on: list[pulumi.Resource]) -> wl.Deployed:
    am = args.alertmanager
    assert am is not None
    ns = args.namespace
    identity = kube.Identity(NAME, "alerting", args.environment, kube.image_version(args.images.alertmanager))
    receivers = am.receivers
    rendered = alertmanager_config(receivers, receivers.smtp_password is not None,
                                   receivers.slack_webhook_url is not None)
    values = {k: v for k, v in {"smtp-password": receivers.smtp_password,
                                "slack-webhook-url": receivers.slack_webhook_url}.items() if v is not None}
    opts = pulumi.ResourceOptions(parent=parent, depends_on=depends_on)
    config = k8s.core.v1.ConfigMap(f"{NAME}-config", metadata=kube.metadata(f"{NAME}-config", ns, identity.labels()),
                                   data={"alertmanager.yml": rendered}, opts=opts)
    created: list[pulumi.Resource] = [config]
    files = [wl.config_files("config", CONFIG_DIR, {"configMap": {"name": f"{NAME}-config"}})]
    if values:
        created.append(k8s.core.v1.Secret(
            f"{NAME}-secrets", metadata=kube.metadata(f"{NAME}-secrets", ns, identity.labels()),
            string_data={k: pulumi.Output.secret(v) for k, v in values.items()}, opts=opts))
        files.append(secret_files.secret_volume("secrets", f"{NAME}-secrets", SECRETS_DIR))
    # Alertmanager does not watch its files: a changed config or a rotated secret rolls the pods.
    # A SHA-256 of the secrets reveals nothing of them, so it need not be secret.
    checksum = pulumi.Output.unsecret(pulumi.Output.all(rendered, *values.values()).apply(kube.content_checksum))
    cluster_args = [f"--cluster.listen-address=0.0.0.0:{CLUSTER_PORT}"] + [
        f"--cluster.peer={address.rsplit(':', 1)[0]}:{CLUSTER_PORT}" for address in peer_addresses(args)
    ] if am.replicas > 1 else ["--cluster.listen-address="]  # empty: no gossip for a single replica
    gossip = [kube.NetworkPeer(pod_labels=identity.selector(), ports=(CLUSTER_PORT,), protocols=("TCP", "UDP"))]
    return wl.deploy(parent, "StatefulSet", wl.Workload(
        identity=identity,
        namespace=ns,
        image=args.images.alertmanager,
        ports={"http": PORT, **({"cluster": CLUSTER_PORT} if am.replicas > 1 else {})},
        args=[
            f"--config.file={CONFIG_DIR}/alertmanager.yml",
            f"--storage.path={DATA_DIR}",
            f"--web.listen-address=:{PORT}",
            *cluster_args,
        ],
        files=files,
        data=am.storage,
        data_path=DATA_DIR,
        replicas=am.replicas,
        resources=am.resources,
        probes=kube.HttpProbes(port="http", liveness_path="/-/healthy", readiness_path="/-/ready").render(),
        pod_annotations={"checksum/config": checksum},
        ingress_from=[wl.same_namespace("prometheus", [PORT]), wl.same_namespace("grafana", [PORT]),
                      *(gossip if am.replicas > 1 else [])],
        # SMTP submission and the Slack API are on the internet.
        egress_to=[kube.NetworkPeer(cidr="0.0.0.0/0", except_cidrs=kube.PRIVATE_CIDRS, ports=(443, 587)),
                   *(gossip if am.replicas > 1 else [])],
    ), depends_on=[*created, *depends_on])
