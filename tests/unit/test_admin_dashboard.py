"""The admin dashboard, the sixth service, as every stack renders it (stacks/admin.py and its wiring)."""

from __future__ import annotations

import pytest
import yaml

from components.release import every_slot_selector
from components.secret_files import APP_SECRETS_DIR
from stacks.catalog import API_SERVICES
from tests.unit.secret_support import app_secret_refs
from tests.unit.test_secret_files import pod_specs
from tooling.recording import is_secret

ENVS = ("dev", "staging", "prod")
DOMAIN = {"dev": "dev.aquascene.example", "staging": "staging.aquascene.example", "prod": "aquascene.example"}
# env: (REQUIRE_REVIEW, replicas pinned, HPA bounds, PDB, TLS)
PROFILE = {
    "dev": ("false", 1, None, False, False),
    "staging": ("false", None, (2, 5), True, True),
    "prod": ("true", None, (3, 5), True, True),
}
ALLOW = ["203.0.113.0/24", "2001:db8::/32"]


def dashboard(rec, env):
    return rec.k8s_object("Deployment", "admin-dashboard", f"aquascene-{env}")


@pytest.mark.parametrize("env", ENVS)
def test_the_dashboard_runs_the_engine_image_as_its_own_role_on_port_3000(run_stack, env):
    review, replicas, hpa, pdb, _ = PROFILE[env]
    rec = run_stack(env)
    deployment = dashboard(rec, env)
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    api = rec.k8s_object("Deployment", "content-manager")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == api["image"]  # the same image as the API roles
    assert container["command"] == ["python", "-m", "app", "serve"]
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http", "scheme": "HTTP"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http", "scheme": "HTTP"}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "3000"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert deployment["spec"].get("replicas") == replicas
    settings = rec.k8s_object("ConfigMap", "admin-dashboard-config")["data"]
    assert (settings["SERVICE_ROLE"], settings["PORT"], settings["REQUIRE_REVIEW"]) == ("admin-dashboard", "3000", review)
    assert settings["ADMIN_BOOTSTRAP_EMAIL"] == f"admin@{DOMAIN[env]}"
    assert settings["DASHBOARD_ROLE_URLS"] == ",".join(
        f"{s.name}=http://{s.name}.aquascene-{env}.svc:{s.port}" for s in API_SERVICES)
    hpas = [h.plain_inputs["spec"] for h in rec.kubernetes("HorizontalPodAutoscaler")
            if h.plain_inputs["metadata"]["name"] == "admin-dashboard"]
    assert [(h["minReplicas"], h["maxReplicas"]) for h in hpas] == ([hpa] if hpa else [])
    budgets = [p for p in rec.kubernetes("PodDisruptionBudget") if p.plain_inputs["metadata"]["name"] == "admin-dashboard"]
    assert len(budgets) == (1 if pdb else 0)


@pytest.mark.parametrize("env", ENVS)
def test_every_role_enforces_the_stacks_review_setting(run_stack, env):
    rec = run_stack(env)
    for name in ("content-manager", "admin-dashboard", *(s.name for s in API_SERVICES)):
        assert rec.k8s_object("ConfigMap", f"{name}-config")["data"]["REQUIRE_REVIEW"] == PROFILE[env][0], name


@pytest.mark.parametrize("env", ENVS)
def test_the_first_admins_password_is_a_file_in_the_dashboard_and_nowhere_else(run_stack, env):
    rec = run_stack(env)
    secret = rec.k8s_object("Secret", "admin-dashboard-bootstrap", f"aquascene-{env}")
    password = secret["stringData"]["admin-bootstrap-password"]
    assert len(password) == 32
    refs = app_secret_refs(dashboard(rec, env)["spec"]["template"]["spec"])
    assert refs["ADMIN_BOOTSTRAP_PASSWORD"] == {"name": "admin-dashboard-bootstrap", "key": "admin-bootstrap-password"}
    assert APP_SECRETS_DIR == "/run/secrets/aquascene"  # the engine's SECRETS_DIR: file admin_bootstrap_password
    readers = [ref for ref, pod in pod_specs(rec) if "admin-dashboard-bootstrap" in str(pod.get("volumes", []))]
    assert readers == ["Deployment admin-dashboard"]
    assert not any(password in str(r.plain_inputs.get("data", {})) for r in rec.kubernetes("ConfigMap"))
    outputs = rec.stack_outputs
    assert outputs["admin_email"] == f"admin@{DOMAIN[env]}"
    assert is_secret(outputs["admin_password"]) and outputs["admin_password"]["value"] == password


@pytest.mark.parametrize("env", ENVS)
def test_the_dashboard_has_its_own_redis_database_and_reaches_the_data_stores_through_the_pooler(run_stack, env):
    rec = run_stack(env)
    refs = app_secret_refs(dashboard(rec, env)["spec"]["template"]["spec"])
    assert refs["DATABASE_URL"]["name"] == "postgres-pooler-app"
    assert refs["REDIS_URL"] == {"name": "redis-auth", "key": "url-admin-dashboard"}
    if env == "dev":  # standalone Redis: seed 001's DBs 0-5 are taken, the dashboard gets 6
        url = rec.k8s_object("Secret", "redis-auth")["stringData"]["url-admin-dashboard"]
        assert url.endswith("/6")
    if env == "prod":  # a Redis cluster has one database: a key prefix of its own
        assert rec.k8s_object("ConfigMap", "admin-dashboard-config")["data"]["REDIS_KEY_PREFIX"] == "admin-dashboard:"


def _peer_ports(rules):
    return [(rule["to"][0], [p["port"] for p in rule.get("ports", [])]) for rule in rules]


@pytest.mark.parametrize("env", ENVS)
def test_the_dashboards_network_policy_opens_only_what_it_calls(run_stack, env):
    rec = run_stack(env)
    spec = rec.k8s_object("NetworkPolicy", "admin-dashboard", f"aquascene-{env}")["spec"]
    # Every release slot's pods (components/release.py): blue keeps the base instance, green and canary their own.
    assert spec["podSelector"] == every_slot_selector({"app.kubernetes.io/name": "admin-dashboard",
                                                       "app.kubernetes.io/instance": f"admin-dashboard-{env}"})
    ingress = [(rule["from"][0], [p["port"] for p in rule["ports"]]) for rule in spec["ingress"]]
    assert ingress == [
        ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": f"aquascene-{env}-gateway"}}}, [3000]),
        ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": f"aquascene-{env}-monitoring"}},
          "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}, [3000]),
    ]
    egress = _peer_ports(spec["egress"])
    assert egress[0] == ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}, [53, 53])
    by_name = {peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name"): ports
               for peer, ports in egress if "podSelector" in peer and "namespaceSelector" not in peer}
    # The pooler (never PostgreSQL itself), Redis, and each API service on its port alone (/health).
    assert by_name.pop("postgres-pooler") == [5432] and "postgres" not in by_name
    assert by_name.pop("redis") == [6379]
    if env != "prod":  # prod's object store is S3 (HTTPS to the internet)
        assert by_name.pop("object-store") == [9000]
    assert by_name == {s.name: [s.port] for s in API_SERVICES}
    internet = [peer["ipBlock"] for peer, _ in egress if "ipBlock" in peer]
    assert internet and all(block["cidr"] == "0.0.0.0/0" and "10.0.0.0/8" in block["except"] for block in internet)
    assert len(egress) == 1 + 2 + (1 if env != "prod" else 0) + len(internet) + len(API_SERVICES)


@pytest.mark.parametrize("env", ENVS)
def test_the_admin_route_has_its_host_tls_rate_limit_and_no_caching(run_stack, env):
    tls = PROFILE[env][4]
    host = f"admin.{DOMAIN[env]}"
    rec = run_stack(env)
    route = rec.k8s_object("HTTPRoute", "admin", f"aquascene-{env}")["spec"]
    assert route["hostnames"] == [host]
    (rule,) = route["rules"]
    assert rule["backendRefs"] == [{"kind": "Service", "name": "admin-dashboard", "port": 3000}]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    headers = {h["name"]: h["value"] for h in rule["filters"][0]["responseHeaderModifier"]["set"]}
    assert headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" not in headers  # the dashboard's own, stricter one stays
    assert ("Strict-Transport-Security" in headers) is tls
    (gateway,) = rec.kubernetes("Gateway")
    listeners = {l["name"]: l for l in gateway.plain_inputs["spec"]["listeners"]}
    slug = host.replace(".", "-")
    if tls:
        assert route["parentRefs"][0]["sectionName"] == f"https-{slug}"
        assert listeners[f"https-{slug}"]["hostname"] == host
        certificate = rec.k8s_object("Certificate", slug, f"aquascene-{env}-gateway")["spec"]
        assert certificate["dnsNames"] == [host] and certificate["secretName"] == f"{slug}-tls"
        redirect = rec.k8s_object("HTTPRoute", "https-redirect")["spec"]
        assert host in redirect["hostnames"]
    else:
        assert route["parentRefs"][0]["sectionName"] == "http"
    policy = rec.k8s_object("BackendTrafficPolicy", "admin", f"aquascene-{env}")["spec"]
    assert policy["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "admin"}]
    assert {r["limit"]["requests"] for r in policy["rateLimit"]["local"]["rules"]} == {5}  # seed 001: zone=admin 5r/s
    assert rec.kubernetes("SecurityPolicy") == []  # no allow-list configured: open, as before
    proxies = rec.k8s_object("NetworkPolicy", "envoy-proxies")["spec"]["egress"]
    to_apps = next(r for r in proxies if r["to"][0].get("namespaceSelector", {}).get("matchLabels", {})
                   .get("kubernetes.io/metadata.name") == f"aquascene-{env}")
    assert 3000 in [p["port"] for p in to_apps["ports"]]
    assert rec.stack_outputs["public_urls"]["admin"] == f"{'https' if tls else 'http'}://{host}/"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_an_allow_list_admits_only_its_client_networks_at_the_gateway(run_stack, env):
    rec = run_stack(env, {"ingress": {"admin_allow_cidrs": ALLOW}})
    (policy,) = rec.kubernetes("SecurityPolicy")
    assert policy.plain_inputs["metadata"]["name"] == "admin"
    assert policy.plain_inputs["metadata"]["namespace"] == f"aquascene-{env}"
    assert policy.plain_inputs["spec"] == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "admin"}],
        "authorization": {"defaultAction": "Deny", "rules": [
            {"name": "allow-list", "action": "Allow", "principal": {"clientCIDRs": ALLOW}}]},
    }
    route = next(r for r in rec.kubernetes("HTTPRoute") if r.plain_inputs["metadata"]["name"] == "admin")
    assert route.urn in rec.prerequisites(policy.urn)


def test_in_ingress_mode_the_admin_host_gets_the_limit_and_the_controllers_access_policy(run_stack):
    rec = run_stack("staging", {"ingress": {"mode": "ingress", "admin_allow_cidrs": ALLOW}})
    annotations = rec.k8s_object("Ingress", "admin", "aquascene-staging")["metadata"]["annotations"]
    assert annotations["nginx.org/mergeable-ingress-type"] == "minion"
    assert (annotations["nginx.org/limit-req-rate"], annotations["nginx.org/limit-req-burst"]) == ("5r/s", "10")
    assert annotations["nginx.org/proxy-read-timeout"] == "300s"
    assert annotations["nginx.org/policies"] == "admin-allow-list"
    policy = rec.k8s_object("Policy", "admin-allow-list", "aquascene-staging")
    assert policy["apiVersion"] == "k8s.nginx.org/v1"
    assert policy["spec"] == {"accessControl": {"allow": ALLOW}}
    master = rec.k8s_object("Ingress", "admin-staging-aquascene-example", "aquascene-staging")["spec"]
    assert master["tls"] == [{"hosts": ["admin.staging.aquascene.example"],
                              "secretName": "admin-staging-aquascene-example-tls"}]
    open_stack = run_stack("staging", {"ingress": {"mode": "ingress"}})
    assert "nginx.org/policies" not in open_stack.k8s_object("Ingress", "admin")["metadata"]["annotations"]
    assert open_stack.kubernetes("Policy") == []


@pytest.mark.parametrize("env", ENVS)
def test_prometheus_alerts_when_the_dashboard_is_down(run_stack, env):
    rec = run_stack(env)
    rules = rec.k8s_object("ConfigMap", "prometheus-rules")["data"]
    alerts = {r["alert"]: r for text in rules.values() for g in yaml.safe_load(text)["groups"]
              for r in g["rules"] if "alert" in r}
    rule = alerts["AdminDashboardDown"]
    assert rule["expr"] == 'up{job="admin-dashboard"} == 0 or absent(up{job="admin-dashboard"})'
    assert (rule["for"], rule["labels"]["severity"]) == ("1m", "critical")


def test_the_overview_dashboard_has_an_admin_dashboard_row(run_stack):
    import json

    files = run_stack("staging").k8s_object("ConfigMap", "grafana-dashboards")["data"]
    panels = json.loads(files["overview.json"])["panels"]
    row = next(p for p in panels if p["type"] == "row" and p["title"] == "Admin Dashboard")
    below = [p for p in panels if p["gridPos"]["y"] > row["gridPos"]["y"]]
    assert below and all('job="admin-dashboard"' in t["expr"] for p in below for t in p["targets"])
    assert {p["title"] for p in below} >= {"Admin Dashboard Pods Up", "Admin Dashboard p95 Latency"}


def test_every_service_has_a_port_and_a_redis_database_of_its_own():
    from stacks.catalog import CONTENT_SERVICES, SYSTEM_REDIS_DB

    dbs = [s.redis_db for s in CONTENT_SERVICES]
    assert len(set(dbs)) == len(dbs) and SYSTEM_REDIS_DB not in dbs and all(0 <= db < 16 for db in dbs)
    assert len({s.port for s in CONTENT_SERVICES}) == len(CONTENT_SERVICES)


@pytest.mark.parametrize("cidr, message", [
    ("10.0.0.1/8", "is not a network in CIDR notation"),
    ("office", "is not a network in CIDR notation"),
    ("192.0.2.7", "needs a prefix length (e.g. 192.0.2.7/32)"),
])
def test_a_route_refuses_an_allow_list_entry_that_is_no_network(cidr, message):
    from components.ingress import Route

    with pytest.raises(ValueError, match=rf"Route.allow_cidrs: '{cidr}' " + message.replace("(", r"\(").replace(")", r"\)")):
        Route("admin", host="admin.aquascene.example", path="/", service="admin-dashboard", port=3000,
              namespace="aquascene-dev", allow_cidrs=(cidr,))
