"""Cluster add-ons: prod's fresh EKS cluster gets every one as a pinned Helm release, in an order
the engine can follow; on a kube context the ones a stack needs are asserted present instead."""

from __future__ import annotations

import json

import pytest

from components.addons import CHARTS
from stacks.config import ConfigError

RELEASE = "kubernetes:helm.sh/v3:Release"


def releases(rec):
    return {r.plain_inputs["name"]: r for r in rec.of_type(RELEASE)}


def test_prod_installs_every_addon_as_a_pinned_atomic_release(run_stack):
    rec = run_stack("prod")
    found = releases(rec)
    assert {"metrics-server", "cluster-autoscaler", "cert-manager", "gateway-crds", "envoy-gateway"} <= set(found)
    assert {"cnpg", "plugin-barman-cloud"} <= set(found)  # postgres.install_operator
    for key, chart in CHARTS.items():
        inputs = found[key].plain_inputs
        assert inputs["version"] == chart.version and inputs["chart"] == chart.chart, key
        assert inputs["atomic"] is True and inputs["namespace"] == chart.namespace, key
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
    assert eg["skipCrds"] is True  # the CRDs are their own release, so upgrades update them
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


def test_custom_resources_wait_for_the_releases_that_serve_their_crds(run_stack):
    rec = run_stack("prod")
    found = releases(rec)
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
    ("staging", {"gateways.gateway.networking.k8s.io", "certificates.cert-manager.io", "v1beta1.metrics.k8s.io"}),
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
