"""MonitoringStack: namespaces, then Prometheus, Alertmanager, Grafana, Loki,
Alloy and the exporters, each from its own module and the shared workload shape."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.monitoring import alertmanager, exporters, grafana, logs, prometheus
from components.monitoring import workload as wl
from components.monitoring.args import MonitoringStackArgs

# The only workloads below the restricted profile: the policy pack's named exceptions.
NODE_AGENTS: dict[str, wl.NodeAgent] = {
    exporters.NODE_EXPORTER: exporters.NODE_EXPORTER_EXCEPTION,
    logs.ALLOY: logs.ALLOY_EXCEPTION,
}
NODE_AGENT_EXCEPTIONS: dict[str, str] = {name: agent.reason for name, agent in NODE_AGENTS.items()}
NODE_AGENTS_POD_SECURITY = "privileged"  # host path volumes are outside `baseline` too


class MonitoringStack(pulumi.ComponentResource):
    """Metrics, alerting, dashboards and logs for one environment."""

    namespace: str
    node_agents_namespace: str
    prometheus_url: str
    grafana_service: str
    grafana_port: int
    grafana_admin_password: pulumi.Output[str]
    alertmanager_url: str | None
    loki_url: str | None

    def __init__(self, name: str, args: MonitoringStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:monitoring:MonitoringStack", name, None, opts)
        after = list((opts.depends_on if opts and isinstance(opts.depends_on, list) else []) or [])
        ns = args.namespace

        self.namespace = ns
        self.node_agents_namespace = args.node_agents_namespace
        namespaces = [self._namespace("namespace", ns, "restricted", args, after)]
        if args.node_agents:
            deployed = {logs.ALLOY: args.loki is not None, exporters.NODE_EXPORTER: args.node_exporter}
            agents = {name: agent for name, agent in NODE_AGENTS.items() if deployed[name]}
            namespaces.append(self._namespace(
                "node-agents-namespace", args.node_agents_namespace, NODE_AGENTS_POD_SECURITY, args, after,
                annotations=kube.policy_exemptions(wl.node_agents_namespace_exemptions(agents))))
        after = after + namespaces

        self.prometheus = prometheus.deploy(self, args, after)
        self.alertmanager = alertmanager.deploy(self, args, after) if args.alertmanager is not None else None
        self.grafana = grafana.deploy(self, args, after)
        self.loki = logs.deploy_loki(self, args, after) if args.loki is not None else None
        self.alloy = logs.deploy_alloy(self, args, after) if args.loki is not None else None
        self.node_exporter = exporters.deploy_node_exporter(self, args, after) if args.node_exporter else None
        self.kube_state_metrics = (exporters.deploy_kube_state_metrics(self, args, after)
                                   if args.kube_state_metrics else None)

        self.prometheus_url = wl.service_url(prometheus.NAME, ns, prometheus.PORT)
        self.grafana_service = grafana.NAME
        self.grafana_port = grafana.PORT
        self.grafana_admin_password = self.grafana.admin_password
        self.alertmanager_url = (wl.service_url(alertmanager.NAME, ns, alertmanager.PORT)
                                 if args.alertmanager is not None else None)
        self.loki_url = wl.service_url(logs.LOKI, ns, logs.LOKI_PORT) if args.loki is not None else None
        self.register_outputs({
            "namespace": self.namespace,
            "prometheus_url": self.prometheus_url,
            "grafana_service": self.grafana_service,
            "grafana_admin_password": self.grafana_admin_password,
            "alertmanager_url": self.alertmanager_url,
            "loki_url": self.loki_url,
        })

    def _namespace(self, name: str, namespace: str, level: str, args: MonitoringStackArgs,
                   after: list[pulumi.Resource], annotations: dict[str, str] | None = None) -> k8s.core.v1.Namespace:
        """A namespace at Pod Security `level`, closed by a default-deny policy."""
        created = kube.namespace(
            name, kube.namespace_metadata(namespace, args.environment, level, args.kubernetes_version, annotations),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after))
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=kube.metadata("default-deny-all", namespace, kube.namespace_labels(args.environment)),
            spec=kube.DEFAULT_DENY_SPEC,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[created]))
        return created
