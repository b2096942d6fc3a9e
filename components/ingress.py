"""PublicRoutes: the only way in from outside (seeds 000/001 nginx rules as requirements).

Gateway API (default), implemented with Envoy Gateway: a Gateway in the
gateway namespace, one HTTPRoute per route beside its Service, cert-manager
Certificates, HTTP->HTTPS redirect, HSTS and the seed's security headers,
HTTPRoute timeouts, and per-client rate limits plus the body-size limit as
BackendTrafficPolicies (429 / 413 on limit).

Ingress API (selectable), for the F5 NGINX Ingress Controller (the maintained
NGINX one; ingress-nginx is retired): one master Ingress per host holding TLS
and HSTS, one minion per route with its nginx.org/* limits and timeouts.

Routes are data: the caller passes them. App Services stay ClusterIP.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import kube

Manifest = dict[str, Any]

LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
GATEWAY_API = "gateway.networking.k8s.io/v1"
ENVOY_GATEWAY_API = "gateway.envoyproxy.io/v1alpha1"
CERT_MANAGER_API = "cert-manager.io/v1"
NGINX_POLICY_API = "k8s.nginx.org/v1"  # F5 NGINX Ingress Controller's Policy (access control for Ingresses)
# Envoy Gateway runs Envoy unprivileged: listener ports below 1024 are served on port + 10000.
PORT_SHIFT = 10000
XDS_PORT = 18000
ACME_SOLVER_PORT = 8089

_DNS_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class RateLimit:
    """Per client address: `requests_per_second` sustained, `burst` more at once (nginx limit_req)."""

    requests_per_second: int
    burst: int = 0

    def __post_init__(self) -> None:
        if self.requests_per_second < 1 or self.burst < 0:
            raise ValueError("RateLimit.requests_per_second must be >= 1 and RateLimit.burst >= 0")


@dataclass(frozen=True)
class CanaryBackend:
    """The canary Service of a route's service and its share of the route's requests (Gateway API weights)."""

    service: str
    weight: int  # 0-100; the route's own service gets the rest

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 100:
            raise ValueError(f"CanaryBackend.weight must be 0-100, got {self.weight}")


@dataclass(frozen=True)
class Route:
    """One public path prefix on one host, to one Service port."""

    name: str  # object name of the HTTPRoute / Ingress minion
    host: str
    path: str  # path prefix
    service: str
    port: int
    namespace: str  # the Service's namespace; the route object lives beside it
    rate_limit: RateLimit | None = None
    request_timeout_seconds: int = 60  # whole request, to the last response byte (proxy_read/send_timeout)
    connect_timeout_seconds: int = 30  # to the backend (proxy_connect_timeout)
    content_security_policy: bool = True  # the seed's CSP; off for UIs that need their own (Grafana)
    canary: CanaryBackend | None = None  # Gateway API only: split the requests between stable and canary
    # Only these client networks reach the route (others get 403); empty: everyone.
    allow_cidrs: Sequence[str] = ()
    cache_control: str | None = None  # set on every response, e.g. "no-store": no proxy or browser keeps a copy

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.name):
            raise ValueError(f"Route.name must be a DNS label, got {self.name!r}")
        if not _DNS_NAME.match(self.host):
            raise ValueError(f"Route.host must be a DNS name, got {self.host!r}")
        if not self.path.startswith("/"):
            raise ValueError(f"Route.path must start with '/', got {self.path!r}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"Route.port must be 1-65535, got {self.port}")
        if self.request_timeout_seconds < 1 or self.connect_timeout_seconds < 1:
            raise ValueError("Route.request_timeout_seconds and connect_timeout_seconds must be >= 1")
        for cidr in self.allow_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                raise ValueError(f"Route.allow_cidrs: {cidr!r} is not a network in CIDR notation") from None
            if "/" not in cidr:
                raise ValueError(f"Route.allow_cidrs: {cidr!r} needs a prefix length (e.g. {cidr}/32)")


@dataclass(frozen=True)
class TlsIssuer:
    """The cert-manager ClusterIssuer that signs the hosts' certificates.

    With `acme_server` (and `email`) the component creates the ClusterIssuer
    (HTTP-01 through this gateway); without, it references an existing one.
    """

    name: str
    acme_server: str | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        if self.acme_server is not None and not (self.email and "@" in self.email):
            raise ValueError("TlsIssuer.email is required (an address) when acme_server is set")


@dataclass(frozen=True)
class Hsts:
    max_age_seconds: int = 63072000  # two years (seed 000)
    include_subdomains: bool = True
    preload: bool = True

    def header(self) -> str:
        value = f"max-age={self.max_age_seconds}"
        return value + ("; includeSubDomains" if self.include_subdomains else "") + ("; preload" if self.preload else "")


@dataclass(frozen=True)
class SecurityHeaders:
    """Seed 000's response headers (HSTS separately, and only over TLS)."""

    frame_options: str = "DENY"
    content_type_options: str = "nosniff"
    xss_protection: str = "1; mode=block"
    referrer_policy: str = "strict-origin-when-cross-origin"
    content_security_policy: str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';"

    def headers(self, route: Route, hsts: Hsts | None) -> list[tuple[str, str]]:
        headers = [("X-Frame-Options", self.frame_options), ("X-Content-Type-Options", self.content_type_options),
                   ("X-XSS-Protection", self.xss_protection), ("Referrer-Policy", self.referrer_policy)]
        if route.content_security_policy:
            headers.append(("Content-Security-Policy", self.content_security_policy))
        if route.cache_control:
            headers.append(("Cache-Control", route.cache_control))
        if hsts is not None:
            headers.insert(0, ("Strict-Transport-Security", hsts.header()))
        return headers


@dataclass(frozen=True)
class GatewayApiArgs:
    gateway_class: str = "eg"  # Envoy Gateway's GatewayClass
    gateway_name: str = "aquascene"
    controller_namespace: str = "envoy-gateway-system"  # where the Envoy Gateway controller serves xDS
    trusted_proxy_hops: int = 0  # > 0: the client address is taken from X-Forwarded-For (CDN/LB in front)
    create_namespace: bool = True  # the gateway namespace, restricted, default-deny, proxies admitted


@dataclass(frozen=True)
class IngressApiArgs:
    class_name: str = "nginx"
    # The security headers besides HSTS need nginx.org/server-snippets, which the
    # controller only honours with -enable-snippets; off by default.
    snippets: bool = False


@dataclass(frozen=True)
class PublicRoutesArgs:
    environment: str
    gateway_namespace: str
    routes: Sequence[Route]
    mode: Literal["gateway", "ingress"] = "gateway"
    tls: TlsIssuer | None = None  # None: plain HTTP (dev only)
    hsts: Hsts | None = Hsts()
    security_headers: SecurityHeaders = SecurityHeaders()
    max_body_size_mb: int = 10
    gateway: GatewayApiArgs = GatewayApiArgs()
    ingress: IngressApiArgs = IngressApiArgs()
    kubernetes_version: str = "1.33"
    monitoring_namespace: str | None = None  # Prometheus there may scrape the proxies
    extra_annotations: dict[str, str] = field(default_factory=dict)  # Ingress mode: on every Ingress

    def __post_init__(self) -> None:
        if self.mode not in ("gateway", "ingress"):
            raise ValueError(f"PublicRoutesArgs.mode must be gateway or ingress, got {self.mode!r}")
        if not self.routes:
            raise ValueError("PublicRoutesArgs.routes must not be empty")
        names = [r.name for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError(f"PublicRoutesArgs.routes: duplicate route names {sorted({n for n in names if names.count(n) > 1})}")
        places = [(r.host, r.path) for r in self.routes]
        if len(set(places)) != len(places):
            raise ValueError("PublicRoutesArgs.routes: two routes share a host and path")
        if not 1 <= self.max_body_size_mb <= 1024:
            raise ValueError("PublicRoutesArgs.max_body_size_mb must be 1-1024")
        if self.mode == "ingress" and any(r.canary for r in self.routes):
            raise ValueError("PublicRoutesArgs.routes: canary routes need mode gateway (weighted backendRefs); "
                             "the Ingress API has no weights")
        if self.mode == "ingress":
            for host in self.hosts:
                spread = {r.namespace for r in self.routes if r.host == host}
                if len(spread) > 1:
                    raise ValueError(f"PublicRoutesArgs.routes: in ingress mode the routes of {host} must share "
                                     f"one namespace (a master Ingress and its minions), got {sorted(spread)}")

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(r.host for r in self.routes))

    @property
    def effective_hsts(self) -> Hsts | None:
        """HSTS only means something over HTTPS (browsers ignore it on plain HTTP)."""
        return self.hsts if self.tls is not None else None


def _backend_refs(route: Route) -> list[Manifest]:
    stable = {"kind": "Service", "name": route.service, "port": route.port}
    if route.canary is None:
        return [stable]
    return [{**stable, "weight": 100 - route.canary.weight},
            {"kind": "Service", "name": route.canary.service, "port": route.port, "weight": route.canary.weight}]


def host_slug(host: str) -> str:
    return host.replace(".", "-")


def tls_secret_name(host: str) -> str:
    return f"{host_slug(host)}-tls"


class PublicRoutes(pulumi.ComponentResource):
    """The public entry: Gateway API (default) or Ingress API, TLS, limits and headers."""

    hosts: list[str]
    urls: dict[str, str]
    gateway_name: str | None

    def __init__(self, name: str, args: PublicRoutesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:network:PublicRoutes", name, None, opts)
        self._args = args
        after = list((opts.depends_on if opts and isinstance(opts.depends_on, list) else []) or [])
        self._labels = kube.Identity("public-routes", "gateway", args.environment).labels()
        self.hosts = args.hosts
        scheme = "https" if args.tls else "http"
        self.urls = {r.name: f"{scheme}://{r.host}{r.path}" for r in args.routes}
        self.gateway_name = args.gateway.gateway_name if args.mode == "gateway" else None

        if args.mode == "gateway":
            if args.gateway.create_namespace:
                after.append(self._gateway_namespace())
            self._issuer(after, {"gatewayHTTPRoute": {"parentRefs": [self._gateway_ref("http")]}})
            cert_ns = args.gateway_namespace
        else:
            # cert-manager's solver Ingress joins the host's master as a minion.
            self._issuer(after, {"ingress": {"ingressClassName": args.ingress.class_name, "ingressTemplate": {
                "metadata": {"annotations": {"nginx.org/mergeable-ingress-type": "minion"}}}}})
            cert_ns = None
        if args.tls is not None:
            for host in args.hosts:
                namespace = cert_ns or next(r.namespace for r in args.routes if r.host == host)
                self._certificate(host, namespace, after)
        if args.mode == "gateway":
            self._gateway(after)
        else:
            self._ingresses(after)
        self.register_outputs({"hosts": self.hosts, "urls": self.urls})

    # ------------------------------------------------------------- shared

    def _opts(self, after: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=list(after))

    def _meta(self, name: str, namespace: str | None, annotations: dict[str, str] | None = None) -> Manifest:
        return kube.metadata(name, namespace, self._labels, annotations)

    def _issuer(self, after: list[pulumi.Resource], http01: Manifest) -> None:
        tls = self._args.tls
        if tls is None or tls.acme_server is None:
            return
        after.append(k8s.apiextensions.CustomResource(
            f"issuer-{tls.name}", api_version=CERT_MANAGER_API, kind="ClusterIssuer",
            metadata=self._meta(tls.name, None),
            spec={"acme": {"server": tls.acme_server, "email": tls.email,
                           "privateKeySecretRef": {"name": f"{tls.name}-account-key"},
                           "solvers": [{"http01": http01}]}},
            opts=self._opts(after)))

    def _certificate(self, host: str, namespace: str, after: list[pulumi.Resource]) -> None:
        tls = self._args.tls
        assert tls is not None
        k8s.apiextensions.CustomResource(
            f"certificate-{host_slug(host)}", api_version=CERT_MANAGER_API, kind="Certificate",
            metadata=self._meta(host_slug(host), namespace),
            spec={"secretName": tls_secret_name(host), "dnsNames": [host],
                  "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": tls.name},
                  "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}},
            opts=self._opts(after))

    # ------------------------------------------------------------ gateway

    def _gateway_ref(self, section: str) -> Manifest:
        g = self._args.gateway
        return {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": g.gateway_name,
                "namespace": self._args.gateway_namespace, "sectionName": section}

    def _gateway(self, after: list[pulumi.Resource]) -> None:
        a, g = self._args, self._args.gateway
        route_namespaces = sorted({r.namespace for r in a.routes} | {a.gateway_namespace})
        allowed = {"namespaces": {"from": "Selector", "selector": {"matchExpressions": [
            {"key": kube.NAMESPACE_NAME_LABEL, "operator": "In", "values": route_namespaces}]}}}
        listeners: list[Manifest] = [{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": allowed}]
        if a.tls is not None:
            listeners += [{
                "name": f"https-{host_slug(host)}"[:63], "hostname": host, "port": 443, "protocol": "HTTPS",
                "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": tls_secret_name(host)}]},
                "allowedRoutes": allowed,
            } for host in a.hosts]
        gateway = k8s.apiextensions.CustomResource(
            "gateway", api_version=GATEWAY_API, kind="Gateway", metadata=self._meta(g.gateway_name, a.gateway_namespace),
            spec={"gatewayClassName": g.gateway_class, "listeners": listeners}, opts=self._opts(after))

        client: Manifest = {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": g.gateway_name}],
            "tls": {"minVersion": "1.2"},  # seed: TLSv1.2 and TLSv1.3
            "headers": {"withUnderscoresAction": "RejectRequest"},
        }
        if g.trusted_proxy_hops:
            client["clientIPDetection"] = {"xForwardedFor": {"numTrustedHops": g.trusted_proxy_hops}}
        k8s.apiextensions.CustomResource(
            "client-traffic-policy", api_version=ENVOY_GATEWAY_API, kind="ClientTrafficPolicy",
            metadata=self._meta(g.gateway_name, a.gateway_namespace), spec=client, opts=self._opts([gateway]))

        if a.tls is not None:
            k8s.apiextensions.CustomResource(
                "https-redirect", api_version=GATEWAY_API, kind="HTTPRoute",
                metadata=self._meta("https-redirect", a.gateway_namespace),
                spec={"parentRefs": [self._gateway_ref("http")], "hostnames": a.hosts, "rules": [{
                    "filters": [{"type": "RequestRedirect",
                                 "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]},
                opts=self._opts([gateway]))
        for route in a.routes:
            self._http_route(route, gateway)

    def _http_route(self, route: Route, gateway: pulumi.Resource) -> None:
        a = self._args
        section = f"https-{host_slug(route.host)}"[:63] if a.tls is not None else "http"
        headers = a.security_headers.headers(route, a.effective_hsts)
        http_route = k8s.apiextensions.CustomResource(
            f"route-{route.name}", api_version=GATEWAY_API, kind="HTTPRoute",
            metadata=self._meta(route.name, route.namespace),
            spec={
                "parentRefs": [self._gateway_ref(section)],
                "hostnames": [route.host],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": route.path}}],
                    "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                        "set": [{"name": n, "value": v} for n, v in headers]}}],
                    "backendRefs": _backend_refs(route),
                    "timeouts": {"request": f"{route.request_timeout_seconds}s",
                                 "backendRequest": f"{route.request_timeout_seconds}s"},
                }],
            },
            opts=self._opts([gateway]))
        policy: Manifest = {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route.name}],
            # Larger bodies are refused with 413 before they reach the service (client_max_body_size).
            "requestBuffer": {"limit": f"{a.max_body_size_mb}Mi"},
            "timeout": {"tcp": {"connectTimeout": f"{route.connect_timeout_seconds}s"}},
        }
        if route.rate_limit is not None:
            # A token bucket per client address refilled every second; over it: 429.
            # Envoy's bucket holds `requests` tokens, so the burst is the per-second
            # rate: the sustained rate is the seed's, the burst is never larger.
            limit = {"requests": route.rate_limit.requests_per_second, "unit": "Second"}
            policy["rateLimit"] = {"type": "Local", "local": {"rules": [
                {"clientSelectors": [{"sourceCIDR": {"type": "Distinct", "value": cidr}}], "limit": limit}
                for cidr in ("0.0.0.0/0", "::/0")]}}
        k8s.apiextensions.CustomResource(
            f"policy-{route.name}", api_version=ENVOY_GATEWAY_API, kind="BackendTrafficPolicy",
            metadata=self._meta(route.name, route.namespace), spec=policy, opts=self._opts([http_route]))
        if route.allow_cidrs:
            # The client address is the connection's, or X-Forwarded-For's with trusted_proxy_hops.
            k8s.apiextensions.CustomResource(
                f"security-{route.name}", api_version=ENVOY_GATEWAY_API, kind="SecurityPolicy",
                metadata=self._meta(route.name, route.namespace), spec={
                    "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route.name}],
                    "authorization": {"defaultAction": "Deny", "rules": [{
                        "name": "allow-list", "action": "Allow",
                        "principal": {"clientCIDRs": list(route.allow_cidrs)}}]},
                }, opts=self._opts([http_route]))

    def _gateway_namespace(self) -> k8s.core.v1.Namespace:
        """The gateway namespace: restricted, closed by default, the proxies open to the world."""
        a, g = self._args, self._args.gateway
        namespace = kube.namespace(
            "gateway-namespace",
            kube.namespace_metadata(a.gateway_namespace, a.environment, "restricted", a.kubernetes_version),
            opts=self._opts())
        opts = self._opts([namespace])
        common = kube.namespace_labels(a.environment)
        k8s.networking.v1.NetworkPolicy("gateway-default-deny",
                                        metadata=kube.metadata("default-deny-all", a.gateway_namespace, common),
                                        spec=kube.DEFAULT_DENY_SPEC, opts=opts)
        proxies = {"gateway.envoyproxy.io/owning-gateway-name": g.gateway_name,
                   "gateway.envoyproxy.io/owning-gateway-namespace": a.gateway_namespace}
        listen_ports = [80 + PORT_SHIFT] + ([443 + PORT_SHIFT] if a.tls is not None else [])
        ingress = [kube.NetworkPeer(cidr="0.0.0.0/0", ports=tuple(listen_ports))]
        if a.monitoring_namespace:
            ingress.append(kube.NetworkPeer(namespace=a.monitoring_namespace,
                                            pod_labels={"app.kubernetes.io/name": "prometheus"}, ports=(19001,)))
        backends: dict[str, set[int]] = {}
        for route in a.routes:
            backends.setdefault(route.namespace, set()).add(route.port)
        egress = [kube.NetworkPeer(namespace=ns, ports=tuple(sorted(ports))) for ns, ports in sorted(backends.items())]
        egress.append(kube.NetworkPeer(namespace=g.controller_namespace, ports=(XDS_PORT,)))
        if a.tls is not None:  # cert-manager's HTTP-01 solver pods answer beside the proxies
            egress.append(kube.NetworkPeer(pod_labels={"acme.cert-manager.io/http01-solver": "true"},
                                           ports=(ACME_SOLVER_PORT,)))
            k8s.networking.v1.NetworkPolicy("acme-solver-netpol", metadata=kube.metadata(
                "acme-http01-solver", a.gateway_namespace, common), spec=kube.network_policy_spec(
                {"acme.cert-manager.io/http01-solver": "true"}, [kube.NetworkPeer(pod_labels=proxies)],
                [ACME_SOLVER_PORT], []), opts=opts)
        k8s.networking.v1.NetworkPolicy("gateway-proxies-netpol", metadata=kube.metadata(
            "envoy-proxies", a.gateway_namespace, common), spec=kube.network_policy_spec(
            proxies, ingress, listen_ports, egress), opts=opts)
        return namespace

    # ------------------------------------------------------------ ingress

    def _ingresses(self, after: list[pulumi.Resource]) -> None:
        a = self._args
        hsts = a.effective_hsts
        for host in a.hosts:
            routes = [r for r in a.routes if r.host == host]
            namespace = routes[0].namespace
            annotations = {**a.extra_annotations, "nginx.org/mergeable-ingress-type": "master",
                           "nginx.org/server-tokens": "false"}
            spec: Manifest = {"ingressClassName": a.ingress.class_name, "rules": [{"host": host}]}
            if a.tls is not None:
                annotations["ingress.kubernetes.io/ssl-redirect"] = "true"
                spec["tls"] = [{"hosts": [host], "secretName": tls_secret_name(host)}]
            if hsts is not None:
                annotations.update({"nginx.org/hsts": "true", "nginx.org/hsts-max-age": str(hsts.max_age_seconds),
                                    "nginx.org/hsts-include-subdomains": str(hsts.include_subdomains).lower()})
            if a.ingress.snippets:
                headers = {n: v for r in routes for n, v in a.security_headers.headers(r, None)}
                annotations["nginx.org/server-snippets"] = "".join(
                    f'add_header {n} "{v}" always;\n' for n, v in headers.items())
            master = k8s.networking.v1.Ingress(
                f"ingress-{host_slug(host)}", metadata=self._meta(host_slug(host), namespace, annotations),
                spec=spec, opts=self._opts(after))
            for route in routes:
                self._minion(route, master)

    def _minion(self, route: Route, master: pulumi.Resource) -> None:
        a = self._args
        annotations = {
            **a.extra_annotations,
            "nginx.org/mergeable-ingress-type": "minion",
            "nginx.org/client-max-body-size": f"{a.max_body_size_mb}m",
            "nginx.org/proxy-connect-timeout": f"{route.connect_timeout_seconds}s",
            "nginx.org/proxy-read-timeout": f"{route.request_timeout_seconds}s",
            "nginx.org/proxy-send-timeout": f"{route.request_timeout_seconds}s",
        }
        if route.rate_limit is not None:
            annotations.update({
                "nginx.org/limit-req-rate": f"{route.rate_limit.requests_per_second}r/s",
                "nginx.org/limit-req-burst": str(route.rate_limit.burst),
                "nginx.org/limit-req-no-delay": "true",
                "nginx.org/limit-req-key": "${binary_remote_addr}",
                "nginx.org/limit-req-reject-code": "429",
            })
        after = [master]
        if route.allow_cidrs:
            # The controller's access-control Policy (nginx's allow/deny), referenced by the minion: 403 for others.
            policy_name = f"{route.name}-allow-list"
            after.append(k8s.apiextensions.CustomResource(
                f"access-{route.name}", api_version=NGINX_POLICY_API, kind="Policy",
                metadata=self._meta(policy_name, route.namespace),
                spec={"accessControl": {"allow": list(route.allow_cidrs)}}, opts=self._opts([master])))
            annotations["nginx.org/policies"] = policy_name
        k8s.networking.v1.Ingress(
            f"ingress-{route.name}", metadata=self._meta(route.name, route.namespace, annotations),
            spec={"ingressClassName": a.ingress.class_name, "rules": [{"host": route.host, "http": {"paths": [{
                "path": route.path, "pathType": "Prefix",
                "backend": {"service": {"name": route.service, "port": {"number": route.port}}}}]}}]},
            opts=self._opts(after))
