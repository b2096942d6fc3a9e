"""Cluster add-ons: prod's fresh EKS cluster gets every one as a pinned Helm release, in an order
the engine can follow; on a kube context the ones a stack needs are asserted present instead."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from components.addons import CHARTS
from stacks.config import ConfigError

RELEASE = "kubernetes:helm.sh/v3:Release"
CHART_OBJECTS = "kubernetes:helm.sh/v4:Chart"  # rendered client-side, applied as objects: no release Secret
REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI") == "true"

# Each chart serving CRDs -> the versions.env key of the CRDs the live-cluster suite validates.
CRD_VERSION_KEYS = {
    "cert-manager": "CERT_MANAGER_VERSION",
    "gateway-crds": "ENVOY_GATEWAY_VERSION",
    "envoy-gateway": "ENVOY_GATEWAY_VERSION",
    "cloudnative-pg": "CLOUDNATIVE_PG_VERSION",
    "plugin-barman-cloud": "PLUGIN_BARMAN_CLOUD_VERSION",
}


def releases(rec):
    return {r.plain_inputs["name"]: r for r in rec.of_type(RELEASE)}


def installed(rec):
    """chart name (last part of an oci:// reference) -> the release or v4 Chart installing it."""
    return {str(r.plain_inputs["chart"]).rsplit("/", 1)[-1]: r for t in (RELEASE, CHART_OBJECTS) for r in rec.of_type(t)}


def kube_local_versions() -> dict[str, str]:
    """versions.env of the kube-local build the live suite runs against (KUBE_LOCAL_DIR, or a sibling)."""
    candidates = [Path(os.environ["KUBE_LOCAL_DIR"])] if os.environ.get("KUBE_LOCAL_DIR") else []
    candidates += [REPO.parent / "shared" / "kube-local", REPO.parents[1] / "shared" / "kube-local"]
    for directory in candidates:
        if (directory / "versions.env").is_file():
            versions = {}
            for line in (directory / "versions.env").read_text().splitlines():
                key, assigned, value = line.split("#", 1)[0].partition("=")
                if assigned:
                    versions[key.strip()] = value.strip()
            return versions
    message = "versions.env of kube-local not found: set KUBE_LOCAL_DIR"
    pytest.fail(message) if IN_CI else pytest.skip(message)


def test_prod_installs_every_addon_pinned_and_crd_bundles_as_objects(run_stack):
    rec = run_stack("prod")
    found = installed(rec)
    assert {c.name for c in CHARTS.values()} <= set(found)
    for key, chart in CHARTS.items():
        inputs = found[chart.name].plain_inputs
        assert inputs["version"] == chart.version and inputs["chart"] == chart.chart, key
        assert inputs["namespace"] == chart.namespace, key
        if found[chart.name].type == RELEASE:
            assert inputs["atomic"] is True, key
    # No CRD bundle is one Helm release (its record would exceed the 1 MiB Secret limit).
    assert found["gateway-crds-helm"].type == CHART_OBJECTS
    assert all("crds" not in r.plain_inputs["chart"] for r in rec.of_type(RELEASE))
    for r in found.values():
        assert r.plain_inputs["version"] and "latest" not in r.plain_inputs["version"]
    # Nothing on the cluster is assumed: it is the stack's own (the one read is staging's outputs).
    assert [read for read in rec.reads if read[0].startswith("kubernetes:")] == []


def test_addon_values_are_restricted(run_stack):
    found = releases(run_stack("prod"))
    ms = found["metrics-server"].plain_inputs["values"]
    assert ms["podSecurityContext"]["runAsNonRoot"] is True
    assert ms["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ms["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert ms["securityContext"]["readOnlyRootFilesystem"] is True
    assert ms["replicas"] == 2 and ms["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    cm = found["cert-manager"].plain_inputs["values"]
    assert cm["crds"] == {"enabled": True, "keep": True} and cm["prometheus"] == {"enabled": True}
    assert cm["webhook"]["containerSecurityContext"]["allowPrivilegeEscalation"] is False
    eg = found["envoy-gateway"].plain_inputs
    assert eg["skipCrds"] is True and eg["values"]["crds"] == {"enabled": False}  # the CRDs are applied as objects
    assert eg["values"]["config"]["envoyGateway"]["provider"]["kubernetes"]["deploy"] == {"type": "GatewayNamespace"}


def test_cluster_autoscaler_may_scale_only_this_clusters_node_groups(run_stack):
    rec = run_stack("prod")
    values = releases(rec)["cluster-autoscaler"].plain_inputs["values"]
    assert values["autoDiscovery"]["clusterName"] == "aquascene-prod"
    role_arn = values["rbac"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    (role,) = [r for r in rec.of_type("aws:iam/role:Role") if r.name == "aquascene-prod-cluster-autoscaler"]
    assert role.outputs["arn"] == role_arn
    trust = json.loads(role.plain_inputs["assumeRolePolicy"])
    assert "system:serviceaccount:kube-system:cluster-autoscaler" in json.dumps(trust)
    (policy,) = [r for r in rec.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.startswith("aquascene-prod-cluster-autoscaler")]
    statements = {s["Sid"]: s for s in json.loads(policy.plain_inputs["policy"])["Statement"]}
    scale = statements["ScaleOwnNodeGroups"]
    assert scale["Action"] == ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    assert scale["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/aquascene-prod": "owned"}}
    assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in statements["DiscoverNodeGroups"]["Action"])


def test_every_pin_deploys_the_version_of_the_crds_the_live_suite_validates():
    versions = kube_local_versions()
    for key, env_key in CRD_VERSION_KEYS.items():
        assert CHARTS[key].app_version.lstrip("v") == versions[env_key].lstrip("v"), (
            f"{key}: chart {CHARTS[key].version} deploys {CHARTS[key].app_version}, but the live suite "
            f"validates CRDs {versions[env_key]} ({env_key})")


def test_the_barman_cloud_plugin_waits_for_cert_manager(run_stack):
    found = releases(run_stack("prod"))
    assert found["cert-manager"].urn in found["plugin-barman-cloud"].dependencies
    assert found["cnpg"].urn in found["plugin-barman-cloud"].dependencies
    # On a platform team's cluster, cert-manager is asserted instead.
    rec = run_stack("prod", {"addons": {"cert_manager": {"install": False}}})
    assert ("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition", "certificates.cert-manager.io") in rec.reads


def test_custom_resources_wait_for_the_releases_that_serve_their_crds(run_stack):
    rec = run_stack("prod")
    found = {**releases(rec), "gateway-crds": installed(rec)["gateway-crds-helm"]}
    (gateway_class,) = rec.of_type("kubernetes:gateway.networking.k8s.io/v1:GatewayClass")
    assert gateway_class.plain_inputs["spec"] == {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"}
    assert {found["gateway-crds"].urn, found["envoy-gateway"].urn} <= set(gateway_class.dependencies)
    (routes,) = rec.of_type("aquascene:ingress:PublicRoutes") or [
        r for r in rec.resources if r.type.endswith(":PublicRoutes")]
    assert {found["cert-manager"].urn, found["gateway-crds"].urn, gateway_class.urn} <= set(routes.dependencies)
    (monitoring,) = [r for r in rec.resources if r.type.endswith(":MonitoringStack")]
    assert found["cert-manager"].urn in monitoring.dependencies  # its Role in the cert-manager namespace
    # ... and its RoleBinding in the gateway namespace, which the routes declare, waits for it.
    (gateway_ns,) = [r for r in rec.kubernetes("Namespace") if r.plain_inputs["metadata"]["name"] == "aquascene-prod-gateway"]
    (binding,) = [r for r in rec.kubernetes("RoleBinding") if rec.namespace_of(r) == "aquascene-prod-gateway"]
    assert gateway_ns.urn in rec.prerequisites(binding.urn)
    assert found["envoy-gateway"].plain_inputs["values"]  # and the controller after its CRDs:
    assert found["gateway-crds"].urn in found["envoy-gateway"].dependencies


@pytest.mark.parametrize("env, expected", [
    ("dev", {"gateways.gateway.networking.k8s.io"}),  # no HPA, no TLS: only the Gateway API is needed
    ("staging", {"gateways.gateway.networking.k8s.io", "certificates.cert-manager.io", "v1beta1.metrics.k8s.io",
                 "cert-manager"}),  # and the namespace of cert-manager, where Prometheus reads its metrics
])
def test_on_a_kube_context_needed_addons_are_asserted_not_installed(run_stack, env, expected):
    rec = run_stack(env)
    assert releases(rec) == {}
    assert {name for _, name in rec.reads} == expected


def test_ingress_mode_needs_no_gateway_api(run_stack):
    rec = run_stack("dev", {"ingress": {"mode": "ingress"}})
    assert not any(name == "gateways.gateway.networking.k8s.io" for _, name in rec.reads)


def test_node_autoscaler_needs_the_aws_layer(run_stack):
    with pytest.raises(ConfigError, match=r"aquascene:addons.node_autoscaler.install: needs aws.enabled: true"):
        run_stack("dev", {"addons": {"node_autoscaler": {"install": True}}})


def test_addon_keys_are_checked(run_stack):
    with pytest.raises(ConfigError, match=r"aquascene:addons.karpenter: unknown key"):
        run_stack("dev", {"addons": {"karpenter": {"install": True}}})


def test_a_platform_teams_cloudnative_pg_operator_is_asserted(run_stack):
    rec = run_stack("prod", {"postgres": {"install_operator": False}})
    assert "cnpg" not in releases(rec) and "plugin-barman-cloud" not in releases(rec)
    assert {"clusters.postgresql.cnpg.io", "objectstores.barmancloud.cnpg.io"} <= {name for _, name in rec.reads}
