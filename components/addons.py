"""ClusterAddons: what the stacks assume a cluster has, installed as pinned Helm releases,
or - where a platform team installs it - asserted present instead.

- metrics-server: every HorizontalPodAutoscaler is inert without the metrics API.
- cluster-autoscaler: scales the EKS managed node groups between their min and max
  (auto-discovered by the tags EKS puts on their Auto Scaling groups), with an IRSA role.
- cert-manager (with its CRDs): the Certificates and ClusterIssuer of the public routes.
- Envoy Gateway: the Gateway API and Envoy Gateway CRDs, applied as plain objects with
  server-side apply (`helm.v4.Chart` renders the chart client-side and keeps no release
  Secret: as one Helm release, the CRD bundle's record exceeds the 1 MiB Secret limit), the
  controller (`crds.enabled: false`; proxies deployed in each Gateway's namespace, where the
  stack's NetworkPolicies expect them) and the `eg` GatewayClass.
The CloudNativePG operator and its Barman Cloud plugin are installed by PostgresCluster
(`postgres.install_operator`), next to the Cluster that needs them.

An add-on with `install: False` that the stack needs is looked up instead (`.get` of the CRD
or APIService it serves): a preview fails at once on a cluster that lacks it.
Custom resources depend on `ready`, the releases that serve their CRDs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import kube

Values = dict[str, Any]


@dataclass(frozen=True)
class Chart:
    """One pinned chart: a version bump is a reviewed change here, never `latest`."""

    chart: str  # a name in `repository`, or a full oci:// reference
    version: str
    app_version: str  # the chart's appVersion: what it deploys (and the CRDs it serves)
    namespace: str
    repository: str | None = None  # None: `chart` is an OCI reference

    @property
    def name(self) -> str:
        return self.chart.rsplit("/", 1)[-1]


CNPG_REPOSITORY = "https://cloudnative-pg.github.io/charts"
# Every chart that serves CRDs is pinned to the release whose appVersion is the version of the CRDs
# the live-cluster suite (tests/live, ../shared/kube-local/versions.env) validates the stacks'
# custom resources against: what is checked is what deploys (tests/unit/test_addons.py says so).
CHARTS: Mapping[str, Chart] = {
    "metrics-server": Chart("metrics-server", "3.13.0", "0.8.0", "kube-system",
                            "https://kubernetes-sigs.github.io/metrics-server/"),
    "cluster-autoscaler": Chart("cluster-autoscaler", "9.50.1", "1.34.0", "kube-system",
                                "https://kubernetes.github.io/autoscaler"),
    "cert-manager": Chart("cert-manager", "v1.21.2", "v1.21.2", "cert-manager", "https://charts.jetstack.io"),
    "gateway-crds": Chart("oci://docker.io/envoyproxy/gateway-crds-helm", "v1.9.1", "v1.9.1", "envoy-gateway-system"),
    "envoy-gateway": Chart("oci://docker.io/envoyproxy/gateway-helm", "v1.9.1", "v1.9.1", "envoy-gateway-system"),
    # Installed by PostgresCluster (postgres.install_operator). 0.29.1 deploys operator 1.30.1.
    "cloudnative-pg": Chart("cloudnative-pg", "0.29.0", "1.30.0", "cnpg-system", CNPG_REPOSITORY),
    # 0.8.x deploys plugin v0.15.x; 0.7.1 is the last with v0.14.0. It renders cert-manager
    # Issuer/Certificate objects (its webhook's TLS), so it waits for cert-manager.
    "plugin-barman-cloud": Chart("plugin-barman-cloud", "0.7.1", "v0.14.0", "cnpg-system", CNPG_REPOSITORY),
}

# What each add-on serves, looked up when a platform team installs it (kind, API version, name).
PRESENCE: Mapping[str, tuple[str, str]] = {
    "metrics-server": ("apiregistration.k8s.io/v1/APIService", "v1beta1.metrics.k8s.io"),
    "cert-manager": ("apiextensions.k8s.io/v1/CustomResourceDefinition", "certificates.cert-manager.io"),
    "envoy-gateway": ("apiextensions.k8s.io/v1/CustomResourceDefinition", "gateways.gateway.networking.k8s.io"),
}
CLUSTER_AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"
GATEWAY_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"


def restricted_security(uid: int = 65534) -> tuple[Values, Values]:
    """(pod, container) security contexts at the Restricted Pod Security Standard, for chart values."""
    pod = {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
           "seccompProfile": {"type": "RuntimeDefault"}}
    return pod, kube.container_security_context()


@dataclass(frozen=True)
class ClusterAutoscaler:
    cluster_name: pulumi.Input[str]
    region: str
    role_arn: pulumi.Input[str]  # IRSA: may scale only this cluster's node groups


@dataclass(frozen=True)
class AddonSwitch:
    install: bool  # False: a platform team installs it; asserted present when needed
    needed: bool = True  # False: nothing in this stack uses it (neither installed nor asserted)


@dataclass(frozen=True)
class ClusterAddonsArgs:
    metrics_server: AddonSwitch
    cert_manager: AddonSwitch
    envoy_gateway: AddonSwitch
    cluster_autoscaler: ClusterAutoscaler | None = None  # None: not installed (no node groups of ours)
    gateway_class: str = "eg"
    replicas: int = 2  # of the controllers that serve the API (metrics, webhooks): drains keep one

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"ClusterAddonsArgs.replicas must be >= 1, got {self.replicas}")


class ClusterAddons(pulumi.ComponentResource):
    ready: list[pulumi.Resource]  # what custom resources of the platform depend on
    releases: dict[str, pulumi.Resource]  # Helm releases (plain types: pulumi evaluates these hints)
    cert_manager: list[pulumi.Resource]  # its release when installed here: charts that render its resources wait

    def __init__(self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:platform:ClusterAddons", name, None, opts)
        self._args = args
        self.releases = {}
        self.ready = []
        self.cert_manager = []
        pod, container = restricted_security()
        pdb = {"podDisruptionBudget": {"enabled": args.replicas > 1, "minAvailable": 1}}
        replicated = {"replicas": args.replicas, **pdb} if args.replicas > 1 else {"replicas": 1}

        if self._wanted("metrics-server", args.metrics_server):
            self._release("metrics-server", {
                **replicated,
                "podSecurityContext": pod, "securityContext": container,
                "args": ["--kubelet-preferred-address-types=InternalIP"],
            })
        if args.cluster_autoscaler is not None:
            ca = args.cluster_autoscaler
            self._release("cluster-autoscaler", {
                "autoDiscovery": {"clusterName": ca.cluster_name},
                "awsRegion": ca.region,
                "rbac": {"serviceAccount": {"create": True, "name": CLUSTER_AUTOSCALER_SERVICE_ACCOUNT,
                                            "annotations": {"eks.amazonaws.com/role-arn": ca.role_arn}}},
                "extraArgs": {"balance-similar-node-groups": True, "expander": "least-waste",
                              "skip-nodes-with-local-storage": False},
                "securityContext": pod, "containerSecurityContext": container,
            })
        if self._wanted("cert-manager", args.cert_manager):
            self.cert_manager = [self._release("cert-manager", {
                "crds": {"enabled": True, "keep": True},  # CRDs survive an uninstall (and the Certificates with them)
                "replicaCount": args.replicas, **pdb,
                "prometheus": {"enabled": True},  # the `cert-manager` Service on 9402 Prometheus scrapes
                "securityContext": pod, "containerSecurityContext": container,
                "webhook": {"replicaCount": args.replicas, **pdb, "securityContext": pod,
                            "containerSecurityContext": container},
                "cainjector": {"securityContext": pod, "containerSecurityContext": container},
            })]
            self.ready += self.cert_manager
        if self._wanted("envoy-gateway", args.envoy_gateway):
            crds = self._crd_objects("gateway-crds", {
                "crds": {"gatewayAPI": {"enabled": True, "channel": "standard"}, "envoyGateway": {"enabled": True}},
            })
            controller = self._release("envoy-gateway", {
                "crds": {"enabled": False},  # applied above as objects; never by this release
                "deployment": {"replicas": args.replicas, "pod": {"securityContext": pod},
                               "envoyGateway": {"securityContext": container}},
                # Proxies run in each Gateway's own namespace (the stack's NetworkPolicies are there).
                "config": {"envoyGateway": {"provider": {"type": "Kubernetes", "kubernetes": {
                    "deploy": {"type": "GatewayNamespace"}}}}},
            }, depends_on=[crds], skip_crds=True)
            gateway_class = k8s.apiextensions.CustomResource(
                f"{name}-gateway-class",
                api_version="gateway.networking.k8s.io/v1",
                kind="GatewayClass",
                metadata={"name": args.gateway_class, "labels": {"app.kubernetes.io/managed-by": kube.MANAGED_BY}},
                spec={"controllerName": GATEWAY_CONTROLLER},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[crds, controller]),
            )
            self.ready += [crds, controller, gateway_class]
        self.register_outputs({"releases": {k: r.version for k, r in self.releases.items()}})

    def _wanted(self, addon: str, switch: AddonSwitch) -> bool:
        """True to install; otherwise, when needed, assert the platform team's install is there."""
        if not switch.needed:
            return False
        if switch.install:
            return True
        kind, object_name = PRESENCE[addon]
        get = (k8s.apiregistration.v1.APIService.get if kind.endswith("APIService")
               else k8s.apiextensions.v1.CustomResourceDefinition.get)
        get(f"{self._name}-{addon}-present", object_name, opts=pulumi.ResourceOptions(parent=self))
        return False

    def _crd_objects(self, key: str, values: Values) -> k8s.helm.v4.Chart:
        """A chart of CRDs, rendered client-side and applied as objects (server-side apply, no release Secret)."""
        c = CHARTS[key]
        return k8s.helm.v4.Chart(
            f"{self._name}-{key}",
            chart=c.chart,
            version=c.version,
            namespace=c.namespace,
            repository_opts={"repo": c.repository} if c.repository else None,
            values=values,
            skip_crds=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _release(self, key: str, values: Values, depends_on: Sequence[pulumi.Resource] = (),
                 skip_crds: bool = False) -> k8s.helm.v3.Release:
        c = CHARTS[key]
        release = k8s.helm.v3.Release(
            f"{self._name}-{key}",
            name=key,
            chart=c.chart,
            version=c.version,
            namespace=c.namespace,
            create_namespace=c.namespace != "kube-system",
            repository_opts={"repo": c.repository} if c.repository else None,
            values=values,
            skip_crds=skip_crds,
            atomic=True,  # a failed install or upgrade rolls back instead of half-applying
            cleanup_on_fail=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
        )
        if c.namespace != "kube-system":
            kube.namespace_created_by(c.namespace, release)
        self.releases[key] = release
        return release
