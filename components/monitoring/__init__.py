"""MonitoringStack: Prometheus, Alertmanager, Grafana, Loki + Alloy, node-exporter
and kube-state-metrics, with the rules, tests and dashboards kept in files/.

The config generators are exported so tests check exactly what the stack deploys.
"""

from components.monitoring.alertmanager import alertmanager_config
from components.monitoring.args import (
    AlertmanagerArgs,
    AlertReceivers,
    GrafanaArgs,
    GrafanaPostgres,
    Images,
    LokiArgs,
    LokiS3,
    MonitoringStackArgs,
    PrometheusArgs,
    ScrapeTarget,
    SecretKeyRef,
    Storage,
)
from components.monitoring.grafana import dashboard_provider, dashboards, grafana_datasources
from components.monitoring.logs import alloy_config, loki_config
from components.monitoring.prometheus import prometheus_config, rule_files
from components.monitoring.stack import NODE_AGENT_EXCEPTIONS, MonitoringStack

__all__ = [
    "AlertReceivers", "AlertmanagerArgs", "GrafanaArgs", "GrafanaPostgres", "Images", "LokiArgs", "LokiS3",
    "MonitoringStack", "MonitoringStackArgs", "NODE_AGENT_EXCEPTIONS", "PrometheusArgs", "ScrapeTarget",
    "SecretKeyRef", "Storage", "alertmanager_config", "alloy_config", "dashboard_provider", "dashboards",
    "grafana_datasources", "loki_config", "prometheus_config", "rule_files",
]
