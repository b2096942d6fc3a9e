"""compose(config) for each environment: what every stack must contain."""

from __future__ import annotations

import pytest

from tests.unit.secret_support import app_secret_refs
from stacks.catalog import CONTENT_SERVICES, SERVICE_NAMES
from stacks.config import ConfigError

EXPECTED = {
    # env: (replicas pinned, hpa bounds, default requests, ai-processor memory limit, log level, pool)
    "dev": (1, None, {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "128Mi"}, "1Gi", "DEBUG", "5"),
    "staging": (None, (2, 5), {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "256Mi"}, "2Gi", "INFO", "15"),
    "prod": (None, (3, 10), {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "256Mi"}, "4Gi", "WARNING", "25"),
}


@pytest.mark.parametrize("env", sorted(EXPECTED))
def test_namespace_is_restricted_and_closed(run_stack, env):
    rec = run_stack(env)
    ns = rec.k8s_object("Namespace", f"aquascene-{env}")
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.33"
    deny = rec.k8s_object("NetworkPolicy", "default-deny-all", f"aquascene-{env}")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


@pytest.mark.parametrize("env", sorted(EXPECTED))
def test_six_services_with_their_ports_and_profile(run_stack, env):
    replicas, hpa, requests, ai_limit, log_level, pool = EXPECTED[env]
    rec = run_stack(env)
    in_app_namespace = [d for d in rec.kubernetes("Deployment") if d.plain_inputs["metadata"]["namespace"] == f"aquascene-{env}"
                        and d.plain_inputs["metadata"]["labels"]["app.kubernetes.io/component"] == "api"]
    assert sorted(d.plain_inputs["metadata"]["name"] for d in in_app_namespace) == sorted(SERVICE_NAMES)
    for service in CONTENT_SERVICES:
        dep = rec.k8s_object("Deployment", service.name, f"aquascene-{env}")
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert container["ports"][0]["containerPort"] == service.port
        assert container["command"] == ["python", "-m", "app", "serve"]
        svc = rec.k8s_object("Service", service.name)
        assert svc["spec"]["ports"][0]["port"] == service.port
        assert dep["spec"].get("replicas") == replicas
        if service.name == "ai-processor":
            assert container["resources"]["limits"]["memory"] == ai_limit
        else:
            assert container["resources"]["requests"] == requests
        config = rec.k8s_object("ConfigMap", f"{service.name}-config")["data"]
        assert config["SERVICE_ROLE"] == service.name
        assert config["PORT"] == str(service.port)
        assert config["LOG_LEVEL"] == log_level
        assert config["DB_POOL_SIZE"] == pool
        hpas = [h for h in rec.kubernetes("HorizontalPodAutoscaler") if h.plain_inputs["metadata"]["name"] == service.name]
        if hpa is None:
            assert hpas == []
        else:
            spec = hpas[0].plain_inputs["spec"]
            # prod's dashboard serves the staff: at most 5 pods (the pooler's client budget).
            bounds = (hpa[0], 5) if (env, service.name) == ("prod", "admin-dashboard") else hpa
            assert (spec["minReplicas"], spec["maxReplicas"]) == bounds
            assert rec.k8s_object("PodDisruptionBudget", service.name)


@pytest.mark.parametrize("env, parent", [("dev", "pulumi:pulumi:Stack"), ("prod", "aquascene:aws:EksCluster")])
def test_every_kubernetes_object_uses_the_one_explicit_provider(run_stack, env, parent):
    rec = run_stack(env)
    providers = [r for r in rec.resources if r.type == "pulumi:providers:kubernetes"]
    assert len(providers) == 1
    assert rec.by_urn()[providers[0].parent].type == parent  # prod: the EKS cluster's own provider
    provider_ref = f"{providers[0].urn}::{providers[0].id}"
    objects = rec.kubernetes()
    assert objects and all(obj.provider == provider_ref for obj in objects)


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_dev_and_staging_create_no_aws_resources(run_stack, env):
    rec = run_stack(env)
    assert [r.type for r in rec.resources if r.type.startswith("aws:")] == []
    assert "kubeconfig" not in rec.stack_outputs


def test_a_stack_that_builds_deploys_the_built_image_by_digest(run_stack):
    # prod promotes staging's digest by default (tests/unit/test_promotion.py); building stays an option.
    rec = run_stack("prod", {"image": {"build": True, "promote_from": ""}})
    (image,) = rec.of_type("docker:index/image:Image")
    assert image.plain_inputs["build"]["dockerfile"] == "app/Dockerfile"
    for dep in rec.of_type("kubernetes:apps/v1:Deployment"):
        if rec.by_urn()[dep.parent].type != "aquascene:app:AppService":
            continue
        ref = dep.plain_inputs["spec"]["template"]["spec"]["containers"][0]["image"]
        assert "@sha256:" in ref
    assert "@sha256:" in rec.stack_outputs["image"]


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_dev_and_staging_deploy_the_configured_tag_without_building(run_stack, env):
    rec = run_stack(env)
    assert rec.of_type("docker:index/image:Image") == []
    apps = [d for d in rec.kubernetes("Deployment") if rec.by_urn()[d.parent].type == "aquascene:app:AppService"]
    assert len(apps) == len(CONTENT_SERVICES)
    images = {d.plain_inputs["spec"]["template"]["spec"]["containers"][0]["image"] for d in apps}
    assert images == {"ghcr.io/aquascene/content-engine:1.0.0"}


def test_apps_reachable_only_from_gateway_prometheus_and_the_dashboards_health_checks(run_stack):
    rec = run_stack("staging")
    for service in CONTENT_SERVICES:
        ingress = rec.k8s_object("NetworkPolicy", service.name)["spec"]["ingress"]
        namespaces = [rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                      for rule in ingress if "namespaceSelector" in rule["from"][0]]
        assert namespaces == ["aquascene-staging-gateway", "aquascene-staging-monitoring"]
        same_namespace = [rule for rule in ingress if "namespaceSelector" not in rule["from"][0]]
        if service.name == "admin-dashboard":
            assert same_namespace == []
        else:  # the dashboard's overview reads /health, on the service's port only
            assert same_namespace == [{"from": [{"podSelector": {"matchLabels": {
                "app.kubernetes.io/name": "admin-dashboard", "app.kubernetes.io/part-of": "aquascene"}}}],
                "ports": [{"port": service.port, "protocol": "TCP"}]}]


def test_only_internet_facing_services_get_internet_egress(run_stack):
    rec = run_stack("dev")
    for service in CONTENT_SERVICES:
        egress = rec.k8s_object("NetworkPolicy", service.name)["spec"]["egress"]
        has_internet = any("ipBlock" in peer for rule in egress for peer in rule["to"])
        assert has_internet is service.public_internet, service.name


def test_stack_outputs(run_stack):
    outputs = run_stack("staging").stack_outputs
    assert outputs["namespace"] == "aquascene-staging"
    assert outputs["service_urls"]["ai-processor"] == "http://ai-processor.aquascene-staging.svc.cluster.local:8001"


def test_override_changes_only_that_service(run_stack):
    rec = run_stack("prod", {"services": {"web-scraper": {"autoscaling": None, "replicas": 2}}})
    assert rec.k8s_object("Deployment", "web-scraper")["spec"]["replicas"] == 2
    assert "replicas" not in rec.k8s_object("Deployment", "distributor")["spec"]


def test_bad_config_fails_before_any_resource_is_declared(run_stack):
    from tooling.recording import RecordingMonitor

    declared: list[str] = []
    original = RecordingMonitor.RegisterResource

    def spy(self, request):
        declared.append(request.type)
        return original(self, request)

    RecordingMonitor.RegisterResource = spy
    try:
        with pytest.raises(ConfigError, match="aquascene:services.distributor.replicas"):
            run_stack("dev", {"services": {"distributor": {"replicas": 0}}})
    finally:
        RecordingMonitor.RegisterResource = original
    assert [t for t in declared if t != "pulumi:pulumi:Stack"] == []


def test_services_get_api_keys_from_a_generated_secret(run_stack):
    from tooling.recording import is_secret

    rec = run_stack("prod")
    secret = rec.k8s_object("Secret", "content-engine-api")
    generated = rec.stack_outputs["api_key"]
    assert is_secret(generated)
    assert secret["stringData"]["api-keys"] == generated["value"] and len(generated["value"]) == 48
    for name in ("content-manager", "distributor"):
        refs = app_secret_refs(rec.k8s_object("Deployment", name)["spec"]["template"]["spec"])
        assert refs["API_KEYS"] == {"name": "content-engine-api", "key": "api-keys"}


def test_extra_api_keys_come_from_secret_config(run_stack):
    rec = run_stack("dev", {"api_keys": "partner-key-123"})
    keys = rec.k8s_object("Secret", "content-engine-api")["stringData"]["api-keys"].split(",")
    assert len(keys) == 2 and keys[1] == "partner-key-123"
