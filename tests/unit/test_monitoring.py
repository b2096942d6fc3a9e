"""MonitoringStack, field by field: rules and thresholds, generated configs,
security contexts, storage, probes, network policies and schema validity."""

from __future__ import annotations

import pulumi
import pytest
import yaml

from components import kube
from components.monitoring import workload as wl
from components.monitoring import (
    NODE_AGENT_EXCEPTIONS,
    AlertmanagerArgs,
    AlertReceivers,
    GrafanaArgs,
    GrafanaPostgres,
    Images,
    LokiArgs,
    LokiS3,
    MonitoringStack,
    MonitoringStackArgs,
    PrometheusArgs,
    ScrapeTarget,
    SecretKeyRef,
    Storage,
    alertmanager_config,
    dashboards,
    loki_config,
    prometheus_config,
    rule_files,
)
from components.monitoring.stack import NODE_AGENTS
from policies.aquascene_policies import BY_NAME, EXEMPT_PREFIX
from tooling import kubeschema
from tooling.recording import is_secret
from tooling.render import manifest_of

NS, APP_NS, AGENTS_NS, GATEWAY_NS = (
    "aquascene-prod-monitoring", "aquascene-prod", "aquascene-prod-node-agents", "aquascene-prod-gateway")
SLACK = "https://hooks.slack.com/services/T000/B000/XXXX"


def prod_args(**overrides) -> MonitoringStackArgs:
    base = dict(
        environment="prod", namespace=NS, app_namespace=APP_NS, node_agents_namespace=AGENTS_NS,
        gateway_namespace=GATEWAY_NS, cluster_name="aquascene-production",
        scrape_targets=[ScrapeTarget("envoy", GATEWAY_NS, "envoy-metrics", 19001, "/stats/prometheus")],
        prometheus=PrometheusArgs(retention_time="30d", retention_size="10GB", storage=Storage("20Gi", "gp3"),
                                  replicas=2),
        kube_state_metrics_replicas=2,
        # Callers pass secret Outputs; plain strings keep the config functions callable outside a program.
        alertmanager=AlertmanagerArgs(replicas=2, receivers=AlertReceivers(smtp_password="smtp-secret",
                                                                           slack_webhook_url=SLACK)),
        grafana=GrafanaArgs(root_url="https://grafana.aquascene.example", postgres=GrafanaPostgres(
            host="postgres-ro.aquascene-prod.svc.cluster.local", database="content_engine", user="grafana_ro",
            password="ro-secret")),
        loki=LokiArgs(retention="720h", storage_backend="s3", s3=LokiS3(bucket="aquascene-logs", region="eu-west-1")),
    )
    return MonitoringStackArgs(**{**base, **overrides})


def dev_args(**overrides) -> MonitoringStackArgs:
    base = dict(environment="dev", namespace="aquascene-dev-monitoring", app_namespace="aquascene-dev",
                node_agents_namespace="aquascene-dev-node-agents", alertmanager=None, loki=None)
    return MonitoringStackArgs(**{**base, **overrides})


@pytest.fixture
def prod(run_program):
    return run_program(lambda: MonitoringStack("monitoring", prod_args()))


def test_secret_outputs_stay_secret(run_program):
    def program():
        receivers = AlertReceivers(smtp_password=pulumi.Output.secret("smtp-secret"))
        pg = GrafanaPostgres(host="pg", database="db", user="ro", password=pulumi.Output.secret("ro-secret"))
        return MonitoringStack("m", dev_args(alertmanager=AlertmanagerArgs(receivers=receivers),
                                             grafana=GrafanaArgs(postgres=pg)))

    rec = run_program(program)
    secrets = {r.plain_inputs["metadata"]["name"]: r for r in rec.kubernetes("Secret")}
    for name in ("alertmanager-secrets", "grafana-datasources", "grafana-admin"):
        assert is_secret(secrets[name].inputs["stringData"]), name
    sts = rec.k8s_object("StatefulSet", "alertmanager")
    assert not is_secret(next(r for r in rec.kubernetes("StatefulSet")
                              if r.plain_inputs["metadata"]["name"] == "alertmanager").inputs["spec"])
    assert len(sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"]) == 64


@pytest.fixture
def dev(run_program):
    return run_program(lambda: MonitoringStack("monitoring", dev_args()))


def pods(rec):
    """(kind, name, namespace, pod spec) of every workload."""
    for kind in ("StatefulSet", "Deployment", "DaemonSet"):
        for r in rec.kubernetes(kind):
            m = r.plain_inputs
            yield kind, m["metadata"]["name"], m["metadata"]["namespace"], m["spec"]["template"]["spec"]


def alert_rules() -> dict[str, dict]:
    return {r["alert"]: r for text in rule_files().values() for g in yaml.safe_load(text)["groups"]
            for r in g["rules"] if "alert" in r}


# ------------------------------------------------------------------------- rules

SEED_ALERTS = {
    # alert: (threshold as written in the expression, for, severity, team)
    "HighErrorRate": ("> 0.05", "5m", "critical", "platform"),
    "AIProcessorDown": ("== 0", "30s", "critical", "platform"),
    "HighMemoryUsage": ("> 0.9", "5m", "warning", "infrastructure"),
    "HighCPUUsage": ("> 85", "5m", "warning", "infrastructure"),
    "DatabaseConnectionsFull": ("> 0.9", "5m", "critical", "database"),
    "ContentGenerationLatencyHigh": ("> 30", "5m", "warning", "platform"),
    "LowContentQualityScore": ("< 7.0", "15m", "warning", "content"),
    "APIRateLimitExceeded": ("> 10", "2m", "warning", "platform"),
}


@pytest.mark.parametrize("alert", sorted(SEED_ALERTS))
def test_every_seed_alert_keeps_its_threshold_duration_severity_and_team(alert):
    threshold, duration, severity, team = SEED_ALERTS[alert]
    rule = alert_rules()[alert]
    expr = rule["expr"].rstrip()
    assert expr.endswith(threshold) or f"{threshold} or" in expr or f"{threshold})" in expr
    assert rule["for"] == duration
    assert rule["labels"] == {"severity": severity, "team": team}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_prod_monitoring_sees_cloudnative_pg_every_service_latency_certificates_and_the_wal_archive():
    rules = alert_rules()
    # CloudNativePG's exporter beside postgres_exporter: the alerts hold in either PostgreSQL mode.
    assert "cnpg_collector_up == 0" in rules["PostgresDown"]["expr"] and "pg_up == 0" in rules["PostgresDown"]["expr"]
    assert "cnpg_backends_total" in rules["DatabaseConnectionsFull"]["expr"]
    for service, alert in [("content-manager", "ContentManagerDown"), ("ai-processor", "AIProcessorDown"),
                           ("web-scraper", "WebScraperDown"), ("distributor", "DistributorDown"),
                           ("subscriber-manager", "SubscriberManagerDown")]:
        assert f'up{{job="{service}"}} == 0' in rules[alert]["expr"], alert
        assert rules[alert]["labels"]["severity"] == "critical"
    assert rules["APIHighLatency"]["expr"] == "job:http_request_duration_seconds:p99_rate5m > 5"
    assert rules["APIHighLatency"]["for"] == "5m"
    assert "< 14 * 24 * 3600" in rules["CertificateExpiringSoon"]["expr"]
    assert "certmanager_certificate_expiration_timestamp_seconds" in rules["CertificateExpiringSoon"]["expr"]
    assert "cnpg_pg_stat_archiver_seconds_since_last_archival) > 3600" in rules["WALArchivingStale"]["expr"]


def test_postgres_dashboard_reads_either_exporter():
    """statefulset mode runs postgres_exporter (pg_*), cloudnative-pg mode CloudNativePG's own (cnpg_*)."""
    import json

    panels = json.loads(dashboards()["postgres.json"])["panels"]
    for panel in panels:
        for target in panel["targets"]:
            if "pg_" in target["expr"].replace("cnpg_", ""):
                assert "cnpg_" in target["expr"], (panel["title"], target["expr"])
    titles = {p["title"] for p in panels}
    assert {"WAL Archive Age (CloudNativePG)", "Pooler Clients and Server Connections"} <= titles


def test_gateway_proxies_and_cert_manager_are_scraped(run_stack):
    rec = run_stack("prod")
    config = yaml.safe_load(rec.k8s_object("ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    gateway = jobs["gateway"]
    assert gateway["metrics_path"] == "/stats/prometheus"
    assert gateway["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["aquascene-prod-gateway"]}}]
    assert {"target_label": "component", "replacement": "gateway"} in gateway["relabel_configs"]
    assert jobs["cert-manager"]["honor_labels"] is True
    egress = rec.k8s_object("NetworkPolicy", "prometheus")["spec"]["egress"]
    assert any(p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
               == "aquascene-prod-gateway" and r["ports"] == [{"port": 19001, "protocol": "TCP"}]
               for r in egress for p in r["to"])
    # Prometheus may list the gateway namespace's pods (a Role there, not cluster-wide).
    assert any(r.plain_inputs["metadata"]["namespace"] == "aquascene-prod-gateway" for r in rec.kubernetes("RoleBinding"))
    assert "gateway" not in {j["job_name"] for j in yaml.safe_load(run_stack(
        "dev", {"ingress": {"mode": "ingress"}}).k8s_object("ConfigMap", "prometheus-config")["data"]["prometheus.yml"])[
        "scrape_configs"]}


def test_alerts_use_the_metrics_the_engine_and_exporters_export():
    rules = alert_rules()
    assert 'up{job="ai-processor"}' in rules["AIProcessorDown"]["expr"]
    assert "pg_stat_activity_count" in rules["DatabaseConnectionsFull"]["expr"]
    assert "pg_settings_max_connections" in rules["DatabaseConnectionsFull"]["expr"]
    assert "content_quality_score[1h]" in rules["LowContentQualityScore"]["expr"]
    assert 'http_requests_total{status="429"}' in rules["APIRateLimitExceeded"]["expr"]


def test_recording_rules_for_request_rate_error_ratio_and_latency():
    recorded = {r["record"]: r["expr"] for text in rule_files().values() for g in yaml.safe_load(text)["groups"]
                for r in g["rules"] if "record" in r}
    assert recorded["job:http_requests:rate5m"] == "sum by (job, namespace) (rate(http_requests_total[5m]))"
    assert 'status=~"5.."' in recorded["job:http_request_errors:rate5m"]
    assert recorded["job:http_request_errors:ratio_rate5m"] == "job:http_request_errors:rate5m / job:http_requests:rate5m"
    assert "histogram_quantile(0.95" in recorded["job:http_request_duration_seconds:p95_rate5m"]
    assert "histogram_quantile(0.95" in recorded["job:content_generation_duration_seconds:p95_rate5m"]


def test_data_store_and_disk_alerts():
    rules = alert_rules()
    assert "pg_up == 0" in rules["PostgresDown"]["expr"]
    assert "redis_up == 0" in rules["RedisDown"]["expr"]
    assert 'up{component="object-store"} == 0' in rules["ObjectStoreDown"]["expr"]
    assert "minio_cluster_nodes_offline_total" in rules["ObjectStoreNodesOffline"]["expr"]
    assert "< 0.10" in rules["PersistentVolumeFillingUp"]["expr"]
    assert "predict_linear" in rules["PersistentVolumeFillingUpSoon"]["expr"]
    assert "node_filesystem_avail_bytes" in rules["NodeDiskFillingUp"]["expr"]


def test_rules_configmap_carries_the_rule_files_byte_for_byte(prod):
    assert prod.k8s_object("ConfigMap", "prometheus-rules")["data"] == rule_files()
    assert set(rule_files()) == {"content-engine-alerts.yml", "data-stores.yml", "recording.yml", "backups.yml",
                                "distribution.yml",
                                "releases.yml", "platform.yml"}


# -------------------------------------------------------------------- prometheus


def test_prometheus_retention_and_storage_come_from_args(prod):
    sts = prod.k8s_object("StatefulSet", "prometheus", NS)
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--storage.tsdb.retention.time=30d" in args
    assert "--storage.tsdb.retention.size=10GB" in args
    assert not any("admin-api" in a or "lifecycle" in a for a in args)
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["spec"]["storageClassName"] == "gp3"


def test_prometheus_config_is_what_the_configmap_holds(prod):
    assert prod.k8s_object("ConfigMap", "prometheus-config")["data"]["prometheus.yml"] == prometheus_config(prod_args())


def test_scrape_jobs_cover_apps_exporters_nodes_and_the_stack():
    config = yaml.safe_load(prometheus_config(prod_args()))
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "alertmanager", "grafana", "loki", "kube-state-metrics", "node-exporter",
                         "alloy", "kubelet", "kubelet-cadvisor", "kubernetes-pods", "envoy"}
    pods_job = jobs["kubernetes-pods"]
    assert pods_job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": [APP_NS]}}]
    relabel = pods_job["relabel_configs"]
    assert relabel[0] == {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                          "regex": "true", "action": "keep"}
    assert {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "target_label": "job"} in relabel
    assert any(r.get("target_label") == "__metrics_path__" for r in relabel)
    envoy = jobs["envoy"]
    assert envoy["metrics_path"] == "/stats/prometheus"
    assert envoy["kubernetes_sd_configs"][0]["namespaces"] == {"names": [GATEWAY_NS]}
    assert config["global"]["external_labels"] == {"cluster": "aquascene-production", "environment": "prod",
                                                    "replica": "${POD_NAME}"}
    assert config["rule_files"] == ["rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        f"alertmanager-{i}.alertmanager-headless.{NS}.svc.cluster.local:9093" for i in (0, 1)]


def test_without_alertmanager_or_loki_there_is_no_alerting_and_no_log_jobs():
    config = yaml.safe_load(prometheus_config(dev_args()))
    assert "alerting" not in config
    assert {"alertmanager", "loki", "alloy"}.isdisjoint(j["job_name"] for j in config["scrape_configs"])


def test_prometheus_discovers_only_the_namespaces_it_scrapes(prod):
    bindings = {r.plain_inputs["metadata"]["namespace"] for r in prod.kubernetes("RoleBinding")}
    assert bindings == {APP_NS, AGENTS_NS, GATEWAY_NS}
    roles = {r.plain_inputs["metadata"]["name"]: r.plain_inputs["rules"] for r in prod.kubernetes("ClusterRole")}
    assert roles[f"{NS}-prometheus-nodes"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
    ]
    for rules in roles.values():
        for rule in rules:
            assert "secrets" not in rule["resources"] and "nodes/proxy" not in rule["resources"]
            assert set(rule["verbs"]) <= {"get", "list", "watch"}


# ------------------------------------------------------------------ alertmanager


def test_alertmanager_routes_from_the_seed():
    config = yaml.safe_load(alertmanager_config(AlertReceivers(), "smtp-secret", SLACK))
    route = config["route"]
    assert route["group_by"] == ["alertname", "cluster"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("30s", "5m", "12h")
    critical, platform, infrastructure = route["routes"]
    assert critical == {"matchers": ['severity="critical"'], "receiver": "critical-alerts",
                        "group_wait": "10s", "repeat_interval": "5m"}
    assert platform == {"matchers": ['team="platform"'], "receiver": "platform-team"}
    assert infrastructure == {"matchers": ['team="infrastructure"'], "receiver": "infrastructure-team"}
    assert config["inhibit_rules"] == [{"source_matchers": ['severity="critical"'],
                                        "target_matchers": ['severity="warning"'],
                                        "equal": ["cluster", "namespace", "instance"]}]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["critical-alerts"]["email_configs"][0]["to"] == "on-call@aquascene.bg"
    # The secrets by file only: the config itself carries none.
    assert receivers["critical-alerts"]["slack_configs"][0]["api_url_file"] == "/etc/alertmanager/secrets/slack-webhook-url"
    assert receivers["platform-team"]["slack_configs"][0]["channel"] == "#platform-alerts"
    assert config["global"]["smtp_auth_password_file"] == "/etc/alertmanager/secrets/smtp-password"
    assert "smtp-secret" not in str(config) and SLACK not in str(config)


def test_alertmanager_without_secrets_has_no_email_or_slack():
    config = yaml.safe_load(alertmanager_config(AlertReceivers(), None, None))
    assert "global" not in config
    assert all(set(r) == {"name"} for r in config["receivers"])


def test_alertmanager_config_is_a_configmap_its_secrets_mounted_files(prod):
    """A routing change diffs in a preview; the two secrets stay in a Secret, mounted 0400 read-only."""
    config = prod.k8s_object("ConfigMap", "alertmanager-config", NS)
    assert not is_secret(next(r for r in prod.kubernetes("ConfigMap")
                              if r.plain_inputs["metadata"]["name"] == "alertmanager-config").inputs["data"])
    text = config["data"]["alertmanager.yml"]
    assert "smtp_auth_password_file: /etc/alertmanager/secrets/smtp-password" in text
    for r in prod.kubernetes("ConfigMap"):
        assert "smtp-secret" not in str(r.plain_inputs) and SLACK not in str(r.plain_inputs)
    secret = next(r for r in prod.kubernetes("Secret") if r.plain_inputs["metadata"]["name"] == "alertmanager-secrets")
    assert is_secret(secret.inputs["stringData"])
    assert secret.plain_inputs["stringData"] == {"smtp-password": "smtp-secret", "slack-webhook-url": SLACK}
    pod = prod.k8s_object("StatefulSet", "alertmanager", NS)["spec"]["template"]["spec"]
    assert {"name": "config", "configMap": {"name": "alertmanager-config"}} in pod["volumes"]
    assert {"name": "secrets", "secret": {"secretName": "alertmanager-secrets", "defaultMode": 0o400}} in pod["volumes"]
    assert {"name": "secrets", "mountPath": "/etc/alertmanager/secrets", "readOnly": True} in (
        pod["containers"][0]["volumeMounts"])


def test_alertmanager_replicas_gossip_and_have_a_disruption_budget(prod):
    sts = prod.k8s_object("StatefulSet", "alertmanager", NS)
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    assert sts["spec"]["replicas"] == 2
    assert f"--cluster.peer=alertmanager-1.alertmanager-headless.{NS}.svc.cluster.local:9094" in args
    assert prod.k8s_object("PodDisruptionBudget", "alertmanager", NS)["spec"]["maxUnavailable"] == 1
    assert prod.k8s_object("Service", "alertmanager-headless", NS)["spec"]["clusterIP"] == "None"


# ----------------------------------------------------------------------- grafana


def test_grafana_datasources_prometheus_loki_and_read_only_postgres(prod):
    data = prod.k8s_object("ConfigMap", "grafana-provisioning", NS)["data"]
    sources = {s["name"]: s for s in yaml.safe_load(data["datasources.yaml"])["datasources"]}
    assert sources["Prometheus"]["url"] == f"http://prometheus.{NS}.svc.cluster.local:9090"
    assert sources["Prometheus"]["isDefault"] is True
    assert sources["Loki"]["url"] == f"http://loki.{NS}.svc.cluster.local:3100"
    pg = sources["PostgreSQL"]
    assert pg["url"] == "postgres-ro.aquascene-prod.svc.cluster.local:5432"
    assert pg["user"] == "grafana_ro" and pg["jsonData"]["database"] == "content_engine"
    # Grafana expands $__file{} when it reads the provisioning file: the password is a mounted file.
    assert pg["secureJsonData"] == {"password": "$__file{/run/secrets/grafana/postgres-password}"}
    assert "ro-secret" not in data["datasources.yaml"]
    assert grafana_secret_files(prod.k8s_object("StatefulSet", "grafana", NS))["postgres-password"] == (
        "grafana-datasources", "postgres-password")
    assert prod.k8s_object("Secret", "grafana-datasources", NS)["stringData"] == {"postgres-password": "ro-secret"}


def grafana_secret_files(statefulset):
    """file -> (Secret, key) of Grafana's mounted credentials; and the mount is read-only at the files' directory."""
    pod = statefulset["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "credentials"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "credentials"]
    assert mount == {"name": "credentials", "mountPath": "/run/secrets/grafana", "readOnly": True}
    assert volume["projected"]["defaultMode"] == 0o400
    return {i["path"]: (s["secret"]["name"], i["key"]) for s in volume["projected"]["sources"] for i in s["secret"]["items"]}


def test_grafana_postgres_password_may_come_from_an_existing_secret(run_program):
    pg = GrafanaPostgres(host="pg", database="db", user="ro", password_secret=SecretKeyRef("pg-readonly", "password"))
    rec = run_program(lambda: MonitoringStack("m", dev_args(grafana=GrafanaArgs(postgres=pg))))
    assert grafana_secret_files(rec.k8s_object("StatefulSet", "grafana"))["postgres-password"] == ("pg-readonly", "password")
    with pytest.raises(KeyError):
        rec.k8s_object("Secret", "grafana-datasources")


def test_grafana_admin_password_is_generated_and_read_from_a_secret(prod):
    (password,) = prod.of_type("random:index/randomPassword:RandomPassword")
    assert password.plain_inputs["length"] == 32
    secret = prod.k8s_object("Secret", "grafana-admin", NS)
    assert secret["stringData"]["admin-password"] == password.outputs["result"]
    env = {e["name"]: e for e in prod.k8s_object("StatefulSet", "grafana", NS)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"]["value"] == "/run/secrets/grafana/admin-password"
    assert grafana_secret_files(prod.k8s_object("StatefulSet", "grafana", NS))["admin-password"] == (
        "grafana-admin", "admin-password")
    assert env["GF_USERS_ALLOW_SIGN_UP"]["value"] == "false"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"]["value"] == "false"
    assert env["GF_SERVER_ROOT_URL"]["value"] == "https://grafana.aquascene.example"
    assert env["GF_SECURITY_COOKIE_SECURE"]["value"] == "true"


def test_dashboards_include_the_seed_overview_and_postgres_redis_kubernetes(prod):
    files = prod.k8s_object("ConfigMap", "grafana-dashboards", NS)["data"]
    assert files == dashboards()
    assert set(files) == {"overview.json", "postgres.json", "redis.json", "kubernetes.json"}
    overview = yaml.safe_load(files["overview.json"])
    panels = {p["title"]: p for p in overview["panels"]}
    assert panels["Request Rate"]["targets"][0]["expr"] == "sum(rate(http_requests_total[1m]))"
    assert 'status=~\\"5..\\"' in str(panels["Error Rate"]["targets"]) or 'status=~"5.."' in panels["Error Rate"]["targets"][0]["expr"]
    quantiles = [t["expr"] for t in panels["Content Generation Performance"]["targets"]]
    assert any("histogram_quantile(0.95" in q for q in quantiles) and any("histogram_quantile(0.50" in q for q in quantiles)
    assert panels["AI API Costs (Daily)"]["targets"][0]["expr"] == "sum(increase(ai_api_cost_total[24h]))"
    assert panels["AI API Costs (Daily)"]["fieldConfig"]["defaults"]["unit"] == "currencyUSD"
    for name in ("postgres.json", "redis.json", "kubernetes.json"):
        assert yaml.safe_load(files[name])["panels"]


# -------------------------------------------------------------------------- logs


def test_loki_storage_and_retention_from_args():
    s3 = yaml.safe_load(loki_config(prod_args()))
    assert s3["common"]["storage"] == {"s3": {"bucketnames": "aquascene-logs", "region": "eu-west-1",
                                              "s3forcepathstyle": False, "insecure": False}}
    assert s3["schema_config"]["configs"][0]["object_store"] == "s3"
    assert s3["limits_config"]["retention_period"] == "720h"
    assert s3["compactor"]["retention_enabled"] is True
    local = yaml.safe_load(loki_config(prod_args(loki=LokiArgs())))
    assert "filesystem" in local["common"]["storage"]
    assert local["schema_config"]["configs"][0]["object_store"] == "filesystem"
    assert local["limits_config"]["retention_period"] == "168h"


def test_alloy_is_the_log_agent_and_promtail_is_gone(prod):
    ds = prod.k8s_object("DaemonSet", "alloy", AGENTS_NS)
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"].startswith("docker.io/grafana/alloy:")
    config = prod.k8s_object("ConfigMap", "alloy-config", AGENTS_NS)["data"]["config.alloy"]
    assert f'url = "http://loki.{NS}.svc.cluster.local:3100/loki/api/v1/push"' in config
    assert 'field = "spec.nodeName=" + sys.env("NODE_NAME")' in config
    assert not any("promtail" in str(r.plain_inputs) for r in prod.kubernetes())


def test_dev_without_loki_has_no_log_agent(dev):
    kinds = {(r.kind, r.plain_inputs["metadata"]["name"]) for r in dev.kubernetes()}
    assert ("StatefulSet", "loki") not in kinds and ("DaemonSet", "alloy") not in kinds
    assert ("StatefulSet", "alertmanager") not in kinds
    assert ("DaemonSet", "node-exporter") in kinds and ("StatefulSet", "prometheus") in kinds


# ---------------------------------------------------------------------- security


def test_every_pod_but_the_node_agents_is_restricted(prod):
    checked = set()
    for _, name, namespace, spec in pods(prod):
        if namespace == AGENTS_NS:
            continue
        checked.add(name)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] >= 10000
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not spec.get("hostNetwork") and not spec.get("hostPID")
        assert not any("hostPath" in v for v in spec["volumes"])
        for c in spec["containers"]:
            assert c["securityContext"] == kube.container_security_context()
    assert checked == {"prometheus", "alertmanager", "grafana", "loki", "kube-state-metrics"}


API_USERS = {"prometheus", "alloy", "kube-state-metrics"}


def token_volumes(spec) -> list[dict]:
    return [v for v in spec["volumes"]
            if any("serviceAccountToken" in source for source in v.get("projected", {}).get("sources", []))]


def test_no_pod_or_service_account_automounts_the_api_token(prod, dev):
    for rec in (prod, dev):
        for _, name, _, spec in pods(rec):
            assert spec["automountServiceAccountToken"] is False, name
        for r in rec.kubernetes("ServiceAccount"):
            assert r.plain_inputs["automountServiceAccountToken"] is False, r.plain_inputs["metadata"]["name"]


def test_only_prometheus_alloy_and_kube_state_metrics_mount_an_explicit_short_lived_api_token(prod):
    with_token = {name: spec for _, name, _, spec in pods(prod) if token_volumes(spec)}
    assert set(with_token) == API_USERS
    volume, mount = kube.api_token_volume()
    for name, spec in with_token.items():
        (token,) = token_volumes(spec)
        assert token == volume, name
        sources = token["projected"]["sources"]
        assert {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}} in sources
        assert {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}} in sources
        assert {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}} in sources
        (container,) = spec["containers"]
        assert mount in container["volumeMounts"], name
        assert mount == {"name": token["name"], "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                         "readOnly": True}


def test_prometheus_reads_kubelet_credentials_from_the_projected_token():
    jobs = {j["job_name"]: j for j in yaml.safe_load(prometheus_config(prod_args()))["scrape_configs"]}
    for job in ("kubelet", "kubelet-cadvisor"):
        assert jobs[job]["authorization"]["credentials_file"] == f"{kube.SERVICE_ACCOUNT_DIR}/token"
        assert jobs[job]["tls_config"]["ca_file"] == f"{kube.SERVICE_ACCOUNT_DIR}/ca.crt"


@pytest.mark.parametrize("seconds", [0, 599])
def test_api_tokens_live_at_least_as_long_as_the_api_server_allows(seconds):
    with pytest.raises(ValueError, match="expiration_seconds must be >= 600"):
        kube.api_token_volume(expiration_seconds=seconds)


def test_node_agents_are_the_named_exceptions_with_read_only_host_mounts(prod):
    assert set(NODE_AGENT_EXCEPTIONS) == {"node-exporter", "alloy"}
    agents = {name: spec for _, name, namespace, spec in pods(prod) if namespace == AGENTS_NS}
    assert set(agents) == set(NODE_AGENT_EXCEPTIONS)
    for name, spec in agents.items():
        container = spec["containers"][0]
        host_volumes = {v["name"] for v in spec["volumes"] if "hostPath" in v}
        assert host_volumes
        for mount in container["volumeMounts"]:
            if mount["name"] in host_volumes:
                assert mount["readOnly"] is True, (name, mount)
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["readOnlyRootFilesystem"] is True
    node_exporter = agents["node-exporter"]
    assert node_exporter["hostNetwork"] is True and node_exporter["hostPID"] is True
    assert node_exporter["securityContext"]["runAsUser"] == 65534
    alloy = agents["alloy"]
    assert alloy["hostNetwork"] is False
    assert [v["hostPath"]["path"] for v in alloy["volumes"] if "hostPath" in v] == ["/var/log/pods"]


def exemptions(rec) -> dict[tuple[str, str, str], dict[str, str]]:
    """(kind, namespace, name) -> {rule: reason} of every exemption annotation in the program."""
    found = {}
    for r in rec.kubernetes():
        meta = r.plain_inputs.get("metadata", {})
        rules = {key.removeprefix(EXEMPT_PREFIX): value for key, value in (meta.get("annotations") or {}).items()
                 if key.startswith(EXEMPT_PREFIX)}
        if rules:
            found[(r.kind, meta.get("namespace", ""), meta["name"])] = rules
        template = r.plain_inputs.get("spec", {}).get("template", {}).get("metadata", {})
        assert not any(k.startswith(EXEMPT_PREFIX) for k in template.get("annotations") or {}), meta["name"]
    return found


SINGLETONS = {"grafana", "loki"}


def test_exemptions_are_exactly_the_node_agents_and_the_singletons(prod):
    assert kube.POLICY_EXEMPT_PREFIX == EXEMPT_PREFIX
    found = exemptions(prod)
    node_exporter, alloy = NODE_AGENT_EXCEPTIONS["node-exporter"], NODE_AGENT_EXCEPTIONS["alloy"]
    namespace_rule = found.pop(("Namespace", "", AGENTS_NS))
    singletons = {key: found.pop(key) for key in [k for k in found if k[2] in SINGLETONS]}
    assert found == {
        ("DaemonSet", AGENTS_NS, "node-exporter"): {
            "pod-no-host-network": node_exporter, "pod-no-host-pid": node_exporter, "pod-no-host-path": node_exporter},
        # Alloy's API access is the projected token, so it needs no token exemption.
        ("DaemonSet", AGENTS_NS, "alloy"): {"pod-no-host-path": alloy, "pod-run-as-non-root": alloy},
    }
    assert set(namespace_rule) == {"namespace-pod-security-restricted"}
    reason = namespace_rule["namespace-pod-security-restricted"]
    assert "(node-exporter, alloy)" in reason and "host path volumes" in reason and "UID 0" in reason
    assert set(singletons) == {("StatefulSet", NS, "grafana"), ("StatefulSet", NS, "loki")}
    for rules in singletons.values():
        assert set(rules) == {"workload-min-replicas"}
    assert "SQLite" in singletons[("StatefulSet", NS, "grafana")]["workload-min-replicas"]
    assert "single-binary Loki" in singletons[("StatefulSet", NS, "loki")]["workload-min-replicas"]


def test_every_exemption_names_an_exemptible_rule_of_the_pack(prod, dev):
    for rec in (prod, dev):
        for key, rules in exemptions(rec).items():
            for rule, reason in rules.items():
                assert rule in BY_NAME and BY_NAME[rule].exemptible, (key, rule)
                assert reason.strip(), (key, rule)


def test_security_exemptions_follow_from_what_each_node_agent_asks_for():
    assert NODE_AGENTS["node-exporter"].exemptions() == {
        rule: NODE_AGENT_EXCEPTIONS["node-exporter"]
        for rule in ("pod-no-host-network", "pod-no-host-pid", "pod-no-host-path")}
    assert set(NODE_AGENTS["alloy"].exemptions()) == {"pod-no-host-path", "pod-run-as-non-root"}
    assert wl.NodeAgent(reason="reads /dev/kmsg", uid=10001, host_pid=True).exemptions() == {
        "pod-no-host-pid": "reads /dev/kmsg"}
    with pytest.raises(ValueError, match="NodeAgent.reason"):
        wl.NodeAgent(reason=" ", uid=0)


def test_the_node_agents_namespace_names_only_the_agents_deployed(dev):
    assert set(exemptions(dev)) == {("Namespace", "", "aquascene-dev-node-agents"),
                                    ("DaemonSet", "aquascene-dev-node-agents", "node-exporter"),
                                    ("StatefulSet", "aquascene-dev-monitoring", "grafana")}
    reason = exemptions(dev)[("Namespace", "", "aquascene-dev-node-agents")]["namespace-pod-security-restricted"]
    assert "(node-exporter)" in reason and "alloy" not in reason and "UID 0" not in reason


def test_namespaces_pod_security_levels_and_default_deny(prod):
    namespaces = {r.plain_inputs["metadata"]["name"]: r.plain_inputs["metadata"]["labels"]
                  for r in prod.kubernetes("Namespace")}
    assert namespaces[NS]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespaces[AGENTS_NS]["pod-security.kubernetes.io/enforce"] == "privileged"
    for namespace in (NS, AGENTS_NS):
        deny = prod.k8s_object("NetworkPolicy", "default-deny-all", namespace)
        assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_every_container_has_requests_memory_limit_and_differing_probes(prod):
    for _, name, _, spec in pods(prod):
        for c in spec["containers"]:
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"], name
            assert c["resources"]["limits"]["memory"], name
            assert c["livenessProbe"] != c["readinessProbe"], name
            assert c["image"].split(":")[-1] not in ("", "latest"), name


def test_stateful_parts_keep_their_data_on_volumes(prod):
    sizes = {}
    for r in prod.kubernetes("StatefulSet"):
        m = r.plain_inputs
        (claim,) = m["spec"]["volumeClaimTemplates"]
        sizes[m["metadata"]["name"]] = claim["spec"]["resources"]["requests"]["storage"]
        mounts = m["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        assert any(mount["name"] == "data" for mount in mounts)
    assert sizes == {"prometheus": "20Gi", "alertmanager": "1Gi", "grafana": "2Gi", "loki": "10Gi"}


def test_every_statefulset_names_a_headless_service_beside_its_client_service(prod, dev):
    for rec in (prod, dev):
        statefulsets = {r.plain_inputs["metadata"]["name"]: r.plain_inputs for r in rec.kubernetes("StatefulSet")}
        services = {(r.plain_inputs["metadata"]["namespace"], r.plain_inputs["metadata"]["name"]): r.plain_inputs["spec"]
                    for r in rec.kubernetes("Service")}
        assert {"prometheus", "grafana"} <= set(statefulsets)
        for name, sts in statefulsets.items():
            namespace = sts["metadata"]["namespace"]
            assert sts["spec"]["serviceName"] == f"{name}-headless"
            headless = services[(namespace, f"{name}-headless")]
            assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
            assert headless["selector"] == sts["spec"]["selector"]["matchLabels"]
            client = services[(namespace, name)]  # what Grafana, the gateway and Prometheus call
            assert "clusterIP" not in client and client["selector"] == headless["selector"]


def test_prometheus_runs_an_ha_pair_whose_alerts_alertmanager_deduplicates(prod):
    sts = prod.k8s_object("StatefulSet", "prometheus", NS)
    assert sts["spec"]["replicas"] == 2
    spec = sts["spec"]["template"]["spec"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in spec["containers"][0]["env"]
    assert spec["affinity"]["podAntiAffinity"] and spec["topologySpreadConstraints"]
    assert prod.k8s_object("PodDisruptionBudget", "prometheus", NS)["spec"]["maxUnavailable"] == 1
    config = yaml.safe_load(prometheus_config(prod_args()))
    assert config["global"]["external_labels"]["replica"] == "${POD_NAME}"  # expanded by Prometheus 3
    assert config["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]


def test_a_single_prometheus_has_no_replica_label(dev):
    sts = dev.k8s_object("StatefulSet", "prometheus")
    assert sts["spec"]["replicas"] == 1
    assert "env" not in sts["spec"]["template"]["spec"]["containers"][0]
    config = yaml.safe_load(prometheus_config(dev_args()))
    assert "replica" not in config["global"]["external_labels"]
    with pytest.raises(KeyError):
        dev.k8s_object("PodDisruptionBudget", "prometheus")


def test_kube_state_metrics_replicas_are_scraped_once_through_their_service(prod, dev):
    deployment = prod.k8s_object("Deployment", "kube-state-metrics", NS)
    assert deployment["spec"]["replicas"] == 2
    assert prod.k8s_object("PodDisruptionBudget", "kube-state-metrics", NS)["spec"]["maxUnavailable"] == 1
    assert dev.k8s_object("Deployment", "kube-state-metrics")["spec"]["replicas"] == 1
    jobs = {j["job_name"]: j for j in yaml.safe_load(prometheus_config(prod_args()))["scrape_configs"]}
    ksm = jobs["kube-state-metrics"]
    # One target, the Service: never per pod, so two replicas cannot double any series.
    assert ksm["static_configs"] == [{"targets": [f"kube-state-metrics.{NS}.svc.cluster.local:8080"]}]
    assert "kubernetes_sd_configs" not in ksm


def test_singletons_run_one_replica_and_say_why(prod):
    for name in SINGLETONS:
        assert prod.k8s_object("StatefulSet", name, NS)["spec"]["replicas"] == 1
    identity = kube.Identity("x", "test", "dev")
    common = dict(identity=identity, namespace="ns", image="i:1", ports={"http": 80}, probes={},
                  resources=kube.preset("nano"))
    with pytest.raises(ValueError, match="a singleton runs exactly one replica"):
        wl.Workload(**common, replicas=2, singleton="one database file")
    with pytest.raises(ValueError, match="a singleton runs exactly one replica"):
        wl.Workload(**common, singleton="  ")


def test_version_labels_are_the_image_tags(prod):
    sts = prod.k8s_object("StatefulSet", "prometheus", NS)
    assert sts["metadata"]["labels"]["app.kubernetes.io/version"] == kube.image_version(Images().prometheus) == "v3.15.1"
    digest = "docker.io/grafana/loki:3.7.8@sha256:" + "a" * 64
    rec_labels = kube.Identity("loki", "logs", "prod", kube.image_version(digest)).labels()
    assert rec_labels["app.kubernetes.io/version"] == "3.7.8"


def test_network_policies_open_only_what_each_part_serves(prod):
    policies = {(r.plain_inputs["metadata"]["namespace"], r.plain_inputs["metadata"]["name"]): r.plain_inputs["spec"]
                for r in prod.kubernetes("NetworkPolicy")}
    for _, name, namespace, _ in pods(prod):
        assert (namespace, name) in policies, name
    prometheus = policies[(NS, "prometheus")]
    assert prometheus["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "grafana"}}}],
                                      "ports": [{"port": 9090, "protocol": "TCP"}]}]
    assert {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": APP_NS}}}]} in prometheus["egress"]
    grafana_from = [rule["from"][0] for rule in policies[(NS, "grafana")]["ingress"]]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": GATEWAY_NS}}} in grafana_from
    loki_from = [rule["from"][0] for rule in policies[(NS, "loki")]["ingress"]]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "alloy"}},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": AGENTS_NS}}} in loki_from
    # the app namespace admits pods named prometheus from the monitoring namespace: the labels match
    sts = prod.k8s_object("StatefulSet", "prometheus", NS)
    assert sts["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "prometheus"


def test_every_object_is_schema_valid(prod, dev):
    for rec in (prod, dev):
        for r in rec.kubernetes():
            verdict = kubeschema.validate(manifest_of(r))
            assert verdict.status == "valid", (r.kind, r.plain_inputs["metadata"]["name"], verdict.message)


def test_component_type_and_parentage(prod):
    (stack,) = prod.of_type("aquascene:monitoring:MonitoringStack")
    children = {r.urn for r in prod.children_of(stack.urn)}
    assert all(r.urn in children for r in prod.kubernetes())


# -------------------------------------------------------------------- validation


@pytest.mark.parametrize("build, message", [
    (lambda: PrometheusArgs(retention_size="30GB", storage=Storage("20Gi")),
     r"PrometheusArgs.retention_size \(30GB\) must be smaller than storage.size \(20Gi\)"),
    (lambda: PrometheusArgs(retention_time="30 days"), "PrometheusArgs.retention_time must be a duration"),
    (lambda: LokiArgs(storage_backend="s3"), "LokiArgs.s3 must be set exactly when storage_backend is 's3'"),
    (lambda: LokiArgs(storage_backend="gcs"), "LokiArgs.storage_backend must be filesystem or s3"),
    (lambda: GrafanaPostgres(host="h", database="d", user="u"), "GrafanaPostgres: set exactly one of password"),
    (lambda: GrafanaArgs(root_url="grafana.example"), "GrafanaArgs.root_url must be an http"),
    (lambda: Images(grafana="grafana/grafana"), "Images.grafana must be pinned"),
    (lambda: Images(loki="grafana/loki:latest"), "Images.loki must be pinned"),
    (lambda: AlertmanagerArgs(replicas=0), "AlertmanagerArgs.replicas must be 1-5"),
    (lambda: PrometheusArgs(replicas=0), "PrometheusArgs.replicas must be 1-3"),
    (lambda: dev_args(kube_state_metrics_replicas=4), "MonitoringStackArgs.kube_state_metrics_replicas must be 1-3"),
    (lambda: ScrapeTarget("Bad_Job", "ns", "svc", 80), "ScrapeTarget.job must be a DNS label"),
    (lambda: ScrapeTarget("ok", "ns", "svc", 0), "ScrapeTarget.port must be 1-65535"),
    (lambda: dev_args(node_agents_namespace="aquascene-dev-monitoring"), "must differ"),
    (lambda: dev_args(scrape_targets=[ScrapeTarget("prometheus", "ns", "svc", 80)]),
     r"job names \['prometheus'\] are duplicated or reserved"),
    (lambda: AlertReceivers(oncall_email="nobody"), "AlertReceivers.oncall_email must be an email address"),
])
def test_invalid_args_are_rejected_naming_the_field(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_images_are_pinned_upstream_images():
    images = vars(Images())
    assert images["prometheus"].startswith("docker.io/prom/prometheus:v3.")
    assert images["alertmanager"].startswith("docker.io/prom/alertmanager:v")
    assert images["grafana"].startswith("docker.io/grafana/grafana:")
    assert images["loki"].startswith("docker.io/grafana/loki:3.")
    assert images["alloy"].startswith("docker.io/grafana/alloy:v1.")
    assert images["node_exporter"].startswith("quay.io/prometheus/node-exporter:v")
    assert images["kube_state_metrics"].startswith("registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.")
    assert not any("bitnami" in ref for ref in images.values())


def test_backup_alerts_watch_the_cronjobs_from_kube_state_metrics():
    rules = {r["alert"]: r for g in yaml.safe_load(rule_files()["backups.yml"])["groups"] for r in g["rules"]}
    assert rules["BackupTooOld"]["expr"] == \
        '(time() - kube_cronjob_status_last_successful_time{cronjob=~".+-backup"}) > 26 * 3600'
    assert rules["BackupTooOld"]["labels"]["severity"] == "critical"
    assert "kube_job_status_failed" in rules["BackupJobFailed"]["expr"]


def test_loki_static_s3_keys_are_a_mounted_shared_credentials_file(run_program):
    s3 = LokiS3(bucket="logs", region="eu-west-1", endpoint="http://store:9000", credentials_secret="loki-s3")
    rec = run_program(lambda: MonitoringStack("m", dev_args(loki=LokiArgs(storage_backend="s3", s3=s3))))
    pod = rec.k8s_object("StatefulSet", "loki")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0].get("env", [])}
    assert env["AWS_SHARED_CREDENTIALS_FILE"]["value"] == "/run/secrets/loki-s3/credentials"
    assert not any("valueFrom" in e for e in env.values())
    assert {"name": "s3-credentials", "secret": {"secretName": "loki-s3", "defaultMode": 0o400,
                                                 "items": [{"key": "credentials", "path": "credentials"}]}} in pod["volumes"]
    assert {"name": "s3-credentials", "mountPath": "/run/secrets/loki-s3", "readOnly": True} in (
        pod["containers"][0]["volumeMounts"])
