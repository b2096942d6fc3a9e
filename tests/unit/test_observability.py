"""Monitoring and public routes in each stack (stacks/observability.py)."""

from __future__ import annotations

import pytest

from stacks.catalog import CONTENT_SERVICES


def routes_by_place(rec):
    """(host, path prefix) -> (Service, port) of every HTTPRoute rule."""
    found = {}
    for route in rec.kubernetes("HTTPRoute"):
        spec = route.plain_inputs["spec"]
        for rule in spec["rules"]:
            for match in rule.get("matches", []):
                backend = rule["backendRefs"][0]
                found[(spec["hostnames"][0], match["path"]["value"])] = (backend["name"], backend["port"])
    return found


@pytest.mark.parametrize("env, domain", [("dev", "dev.aquascene.example"), ("prod", "aquascene.example")])
def test_routes_map_the_seed_paths_to_the_right_services(run_stack, env, domain):
    places = routes_by_place(run_stack(env))
    ports = {s.name: s.port for s in CONTENT_SERVICES}
    expected = {
        "/api/v1/generate": "ai-processor", "/api/v1/content": "content-manager",
        "/api/v1/subscribers": "subscriber-manager", "/api/v1/scrape": "web-scraper",
        "/api/v1/newsletters": "distributor", "/api/v1/distributions": "distributor",
        "/api/v1/": "content-manager",
    }
    for path, service in expected.items():
        assert places[(f"api.{domain}", path)] == (service, ports[service]), path
    assert places[(f"grafana.{domain}", "/")] == ("grafana", 3000)
    assert places[(f"admin.{domain}", "/")] == ("admin-dashboard", 3000)
    assert len(places) == len(expected) + 2


@pytest.mark.parametrize("env, issuer", [("dev", None), ("staging", "letsencrypt-staging"),
                                          ("prod", "letsencrypt-production")])
def test_tls_issuer_per_profile(run_stack, env, issuer):
    rec = run_stack(env)
    issuers = [r.plain_inputs["metadata"]["name"] for r in rec.kubernetes("ClusterIssuer")]
    assert issuers == ([issuer] if issuer else [])
    (gateway,) = rec.kubernetes("Gateway")
    protocols = {listener["protocol"] for listener in gateway.plain_inputs["spec"]["listeners"]}
    assert ("HTTPS" in protocols) is (issuer is not None)


@pytest.mark.parametrize("env, alerting, logs, retention", [
    ("dev", False, False, "15d"), ("staging", True, True, "15d"), ("prod", True, True, "30d"),
])
def test_monitoring_parts_per_profile(run_stack, env, alerting, logs, retention):
    rec = run_stack(env)
    statefulsets = {r.plain_inputs["metadata"]["name"]: r.plain_inputs for r in rec.kubernetes("StatefulSet")}
    assert "prometheus" in statefulsets and "grafana" in statefulsets
    assert ("alertmanager" in statefulsets) is alerting
    assert ("loki" in statefulsets) is logs
    args = statefulsets["prometheus"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--storage.tsdb.retention.time={retention}" in args
    if env == "prod":
        assert "--storage.tsdb.retention.size=10GB" in args


def test_grafana_reads_postgres_as_the_read_only_user(run_stack):
    rec = run_stack("staging")
    monitoring = [r.plain_inputs for r in rec.kubernetes("Secret") + rec.kubernetes("ConfigMap")
                  if r.plain_inputs["metadata"].get("namespace") == "aquascene-staging-monitoring"]
    text = str(monitoring)
    assert "url: postgres-ro.aquascene-staging.svc.cluster.local:5432\\n  user: grafana" in text
    conf = rec.k8s_object("ConfigMap", "postgres-config")["data"]["init-primary.sh"]
    assert "IN ROLE pg_read_all_data" in conf
    policy = rec.k8s_object("NetworkPolicy", "postgres")["spec"]["ingress"]
    assert any(peer.get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/name": "grafana"}
               and peer.get("namespaceSelector") for rule in policy for peer in rule["from"])


def test_only_the_gateway_is_exposed(run_stack):
    rec = run_stack("prod")
    for service in rec.kubernetes("Service"):
        assert service.plain_inputs["spec"].get("type", "ClusterIP") == "ClusterIP", service.name
