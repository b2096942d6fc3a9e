"""PublicRoutes: path -> service:port, TLS per issuer, redirect, headers, limits and timeouts,
in Gateway API mode (default) and Ingress API mode."""

from __future__ import annotations

import pytest

from components.ingress import (
    LETSENCRYPT_PRODUCTION,
    LETSENCRYPT_STAGING,
    GatewayApiArgs,
    Hsts,
    IngressApiArgs,
    PublicRoutes,
    PublicRoutesArgs,
    RateLimit,
    Route,
    TlsIssuer,
)
from tooling import kubeschema
from tooling.render import manifest_of

APP, MON, GW = "aquascene-prod", "aquascene-prod-monitoring", "aquascene-prod-gateway"
API, GRAFANA = "api.aquascene.bg", "grafana.aquascene.bg"


def seed_routes(namespace: str = APP) -> list[Route]:
    """Seeds 000/002 as the caller passes them."""
    api = dict(host=API, namespace=namespace)
    general = RateLimit(10, 20)
    return [
        Route("api-generate", path="/api/v1/generate", service="ai-processor", port=8001,
              rate_limit=RateLimit(1, 5), request_timeout_seconds=300, **api),
        Route("api-content", path="/api/v1/content", service="content-manager", port=8000, rate_limit=general, **api),
        Route("api-subscribers", path="/api/v1/subscribers", service="subscriber-manager", port=8004,
              rate_limit=general, **api),
        Route("api-scrape", path="/api/v1/scrape", service="web-scraper", port=8002, rate_limit=general, **api),
        Route("api-newsletters", path="/api/v1/newsletters", service="distributor", port=8003,
              rate_limit=general, **api),
        Route("api", path="/api/v1/", service="content-manager", port=8000, rate_limit=general, **api),
        Route("grafana", host=GRAFANA, path="/", service="grafana", port=3000, namespace=MON,
              rate_limit=general, content_security_policy=False),
    ]


SEED_MAP = {
    "/api/v1/generate": ("ai-processor", 8001), "/api/v1/content": ("content-manager", 8000),
    "/api/v1/subscribers": ("subscriber-manager", 8004), "/api/v1/scrape": ("web-scraper", 8002),
    "/api/v1/newsletters": ("distributor", 8003), "/api/v1/": ("content-manager", 8000), "/": ("grafana", 3000),
}
PROD_ISSUER = TlsIssuer("letsencrypt-prod", LETSENCRYPT_PRODUCTION, "ops@aquascene.bg")


def args(**overrides) -> PublicRoutesArgs:
    base = dict(environment="prod", gateway_namespace=GW, routes=seed_routes(), tls=PROD_ISSUER,
                monitoring_namespace=MON)
    return PublicRoutesArgs(**{**base, **overrides})


def deploy(run_program, **overrides):
    return run_program(lambda: PublicRoutes("public", args(**overrides)))


def crs(rec, kind):
    return {r.plain_inputs["metadata"]["name"]: r.plain_inputs for r in rec.of_type("kubernetes:" + {
        "Gateway": "gateway.networking.k8s.io/v1:Gateway", "HTTPRoute": "gateway.networking.k8s.io/v1:HTTPRoute",
        "BackendTrafficPolicy": "gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy",
        "ClientTrafficPolicy": "gateway.envoyproxy.io/v1alpha1:ClientTrafficPolicy",
        "Certificate": "cert-manager.io/v1:Certificate", "ClusterIssuer": "cert-manager.io/v1:ClusterIssuer"}[kind])}


def test_routes_map_paths_to_services_and_ports(run_program):
    routes = crs(deploy(run_program), "HTTPRoute")
    seen = {}
    for name, route in routes.items():
        if name == "https-redirect":
            continue
        (rule,) = route["spec"]["rules"]
        (backend,) = rule["backendRefs"]
        seen[rule["matches"][0]["path"]["value"]] = (backend["name"], backend["port"])
        assert rule["matches"][0]["path"]["type"] == "PathPrefix"
    assert seen == SEED_MAP
    assert routes["grafana"]["metadata"]["namespace"] == MON and routes["api"]["metadata"]["namespace"] == APP


def test_tls_from_the_issuer_with_one_certificate_and_listener_per_host(run_program):
    rec = deploy(run_program)
    issuer = crs(rec, "ClusterIssuer")["letsencrypt-prod"]["spec"]["acme"]
    assert issuer["server"] == LETSENCRYPT_PRODUCTION and issuer["email"] == "ops@aquascene.bg"
    assert issuer["solvers"][0]["http01"]["gatewayHTTPRoute"]["parentRefs"][0]["sectionName"] == "http"
    certs = crs(rec, "Certificate")
    assert {c["spec"]["dnsNames"][0]: c["spec"]["secretName"] for c in certs.values()} == {
        API: "api-aquascene-bg-tls", GRAFANA: "grafana-aquascene-bg-tls"}
    assert all(c["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer",
                                          "name": "letsencrypt-prod"} for c in certs.values())
    gateway = crs(rec, "Gateway")["aquascene"]["spec"]
    https = {l["hostname"]: l for l in gateway["listeners"] if l["protocol"] == "HTTPS"}
    assert https[API]["tls"]["certificateRefs"] == [{"kind": "Secret", "name": "api-aquascene-bg-tls"}]
    assert https[API]["port"] == 443
    assert crs(rec, "ClientTrafficPolicy")["aquascene"]["spec"]["tls"] == {"minVersion": "1.2"}


def test_staging_references_the_staging_issuer(run_program):
    rec = deploy(run_program, tls=TlsIssuer("letsencrypt-staging", LETSENCRYPT_STAGING, "ops@aquascene.bg"))
    assert crs(rec, "ClusterIssuer")["letsencrypt-staging"]["spec"]["acme"]["server"] == LETSENCRYPT_STAGING
    existing = deploy(run_program, tls=TlsIssuer("shared-issuer"))
    assert crs(existing, "ClusterIssuer") == {}
    assert {c["spec"]["issuerRef"]["name"] for c in crs(existing, "Certificate").values()} == {"shared-issuer"}


def test_http_redirects_to_https(run_program):
    redirect = crs(deploy(run_program), "HTTPRoute")["https-redirect"]["spec"]
    assert redirect["parentRefs"][0]["sectionName"] == "http"
    assert redirect["hostnames"] == [API, GRAFANA]
    assert redirect["rules"] == [{"filters": [{"type": "RequestRedirect",
                                               "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]


def test_dev_without_tls_serves_plain_http_without_hsts(run_program):
    rec = deploy(run_program, tls=None)
    assert crs(rec, "Certificate") == {} and crs(rec, "ClusterIssuer") == {}
    routes = crs(rec, "HTTPRoute")
    assert "https-redirect" not in routes
    listeners = crs(rec, "Gateway")["aquascene"]["spec"]["listeners"]
    assert [l["name"] for l in listeners] == ["http"]
    headers = {h["name"] for h in routes["api"]["spec"]["rules"][0]["filters"][0]["responseHeaderModifier"]["set"]}
    assert "Strict-Transport-Security" not in headers and "X-Frame-Options" in headers
    assert routes["api"]["spec"]["parentRefs"][0]["sectionName"] == "http"


def test_hsts_and_security_headers(run_program):
    routes = crs(deploy(run_program), "HTTPRoute")
    headers = {h["name"]: h["value"] for h in routes["api"]["spec"]["rules"][0]["filters"][0]["responseHeaderModifier"]["set"]}
    assert headers == {
        "Strict-Transport-Security": "max-age=63072000; includeSubDomains; preload",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "X-XSS-Protection": "1; mode=block",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';",
    }
    grafana = {h["name"] for h in routes["grafana"]["spec"]["rules"][0]["filters"][0]["responseHeaderModifier"]["set"]}
    assert "Content-Security-Policy" not in grafana and "Strict-Transport-Security" in grafana
    assert Hsts(preload=False, include_subdomains=False).header() == "max-age=63072000"


def test_rate_limits_body_limit_and_timeouts(run_program):
    rec = deploy(run_program)
    policies = crs(rec, "BackendTrafficPolicy")
    routes = crs(rec, "HTTPRoute")
    generate = policies["api-generate"]["spec"]
    assert generate["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "api-generate"}]
    rules = generate["rateLimit"]["local"]["rules"]
    assert [r["limit"] for r in rules] == [{"requests": 1, "unit": "Second"}] * 2
    assert [r["clientSelectors"][0]["sourceCIDR"] for r in rules] == [
        {"type": "Distinct", "value": "0.0.0.0/0"}, {"type": "Distinct", "value": "::/0"}]
    assert policies["api-content"]["spec"]["rateLimit"]["local"]["rules"][0]["limit"] == {"requests": 10, "unit": "Second"}
    for name, policy in policies.items():
        assert policy["spec"]["requestBuffer"] == {"limit": "10Mi"}, name
        assert policy["metadata"]["namespace"] == routes[name]["metadata"]["namespace"]
    assert generate["timeout"] == {"tcp": {"connectTimeout": "30s"}}
    assert routes["api-generate"]["spec"]["rules"][0]["timeouts"] == {"request": "300s", "backendRequest": "300s"}
    assert routes["api-content"]["spec"]["rules"][0]["timeouts"] == {"request": "60s", "backendRequest": "60s"}


def test_routes_attach_only_from_their_namespaces(run_program):
    gateway = crs(deploy(run_program), "Gateway")["aquascene"]
    assert gateway["metadata"]["namespace"] == GW and gateway["spec"]["gatewayClassName"] == "eg"
    for listener in gateway["spec"]["listeners"]:
        assert listener["allowedRoutes"]["namespaces"]["selector"]["matchExpressions"] == [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [APP, GW, MON]}]


def test_gateway_namespace_is_restricted_closed_and_opens_only_the_proxies(run_program):
    rec = deploy(run_program)
    labels = rec.k8s_object("Namespace", GW)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert rec.k8s_object("NetworkPolicy", "default-deny-all", GW)["spec"]["podSelector"] == {}
    proxies = rec.k8s_object("NetworkPolicy", "envoy-proxies", GW)["spec"]
    assert proxies["ingress"][0] == {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                                     "ports": [{"port": 10080, "protocol": "TCP"}, {"port": 10443, "protocol": "TCP"}]}
    egress = {tuple(sorted(p["port"] for p in rule.get("ports", []))): rule["to"][0] for rule in proxies["egress"]}
    assert egress[(8000, 8001, 8002, 8003, 8004)] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": APP}}}
    assert egress[(3000,)] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MON}}}
    assert (18000,) in egress


def test_app_services_stay_cluster_ip(run_program):
    rec = deploy(run_program)
    assert rec.kubernetes("Service") == []


def test_ingress_mode_master_and_minions_with_equivalent_annotations(run_program):
    rec = deploy(run_program, mode="ingress", ingress=IngressApiArgs(class_name="nginx-inc"))
    ingresses = {r.plain_inputs["metadata"]["name"]: r.plain_inputs for r in rec.kubernetes("Ingress")}
    master = ingresses["api-aquascene-bg"]
    assert master["spec"]["ingressClassName"] == "nginx-inc"
    assert master["spec"]["tls"] == [{"hosts": [API], "secretName": "api-aquascene-bg-tls"}]
    m = master["metadata"]["annotations"]
    assert m["nginx.org/mergeable-ingress-type"] == "master"
    assert (m["nginx.org/hsts"], m["nginx.org/hsts-max-age"], m["ingress.kubernetes.io/ssl-redirect"]) == (
        "true", "63072000", "true")
    generate = ingresses["api-generate"]
    a = generate["metadata"]["annotations"]
    assert a["nginx.org/mergeable-ingress-type"] == "minion"
    assert (a["nginx.org/limit-req-rate"], a["nginx.org/limit-req-burst"], a["nginx.org/limit-req-reject-code"]) == (
        "1r/s", "5", "429")
    assert a["nginx.org/client-max-body-size"] == "10m"
    assert (a["nginx.org/proxy-read-timeout"], a["nginx.org/proxy-send-timeout"]) == ("300s", "300s")
    assert ingresses["api"]["metadata"]["annotations"]["nginx.org/limit-req-burst"] == "20"
    paths = {}
    for name, ingress in ingresses.items():
        for rule in ingress["spec"]["rules"]:
            for p in rule.get("http", {}).get("paths", []):
                paths[p["path"]] = (p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
                assert ingress["metadata"]["namespace"] == (MON if rule["host"] == GRAFANA else APP)
    assert paths == SEED_MAP
    solver = crs(rec, "ClusterIssuer")["letsencrypt-prod"]["spec"]["acme"]["solvers"][0]["http01"]["ingress"]
    assert solver["ingressClassName"] == "nginx-inc"
    assert solver["ingressTemplate"]["metadata"]["annotations"] == {"nginx.org/mergeable-ingress-type": "minion"}
    assert crs(rec, "Gateway") == {} and crs(rec, "HTTPRoute") == {}


def test_every_kubernetes_object_is_schema_valid(run_program):
    for mode in ("gateway", "ingress"):
        rec = deploy(run_program, mode=mode)
        for r in rec.kubernetes():
            verdict = kubeschema.validate(manifest_of(r))
            assert verdict.status in ("valid", "skipped"), (r.kind, verdict.message)
            if r.type.split(":")[1] in ("core/v1", "networking.k8s.io/v1"):
                assert verdict.status == "valid", (r.kind, verdict.message)


def test_component_type_and_children(run_program):
    rec = deploy(run_program)
    (component,) = rec.of_type("aquascene:network:PublicRoutes")
    children = {r.urn for r in rec.children_of(component.urn)}
    assert all(r.urn in children for r in rec.kubernetes())


@pytest.mark.parametrize("build, message", [
    (lambda: Route("Bad", API, "/x", "svc", 80, APP), "Route.name must be a DNS label"),
    (lambda: Route("ok", "localhost", "/x", "svc", 80, APP), "Route.host must be a DNS name"),
    (lambda: Route("ok", API, "x", "svc", 80, APP), "Route.path must start with '/'"),
    (lambda: Route("ok", API, "/x", "svc", 0, APP), "Route.port must be 1-65535"),
    (lambda: RateLimit(0), "RateLimit.requests_per_second must be >= 1"),
    (lambda: TlsIssuer("x", LETSENCRYPT_STAGING), "TlsIssuer.email is required"),
    (lambda: args(routes=[]), "PublicRoutesArgs.routes must not be empty"),
    (lambda: args(mode="nodeport"), "PublicRoutesArgs.mode must be gateway or ingress"),
    (lambda: args(routes=seed_routes() + [Route("api", API, "/other", "svc", 80, APP)]), "duplicate route names"),
    (lambda: args(routes=seed_routes() + [Route("dup", API, "/api/v1/", "svc", 80, APP)]), "share a host and path"),
    (lambda: args(mode="ingress", routes=seed_routes() + [Route("other", API, "/o", "svc", 80, MON)]),
     "must share one namespace"),
])
def test_invalid_args_are_rejected_naming_the_field(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_trusted_proxy_hops_set_client_ip_detection(run_program):
    rec = deploy(run_program, gateway=GatewayApiArgs(trusted_proxy_hops=1))
    spec = crs(rec, "ClientTrafficPolicy")["aquascene"]["spec"]
    assert spec["clientIPDetection"] == {"xForwardedFor": {"numTrustedHops": 1}}
