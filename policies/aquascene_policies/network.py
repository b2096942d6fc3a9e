"""Network rules: NetworkPolicy coverage, default deny, Pod Security labels, Service types, TLS, nginx snippets."""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Iterator, Mapping

from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from . import k8s
from .core import as_list, as_map, dig, fmt_number, listing, number
from .workloads import objects, workloads

GATEWAY_API_GROUP = "gateway.networking.k8s.io"
_SNIPPET_RE = re.compile(r"^nginx\.ingress\.kubernetes\.io/.*snippets?$")


def pod_network_policy(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    policies = [
        (k8s.effective_namespace(p.props), dig(p.props, "spec", "podSelector"))
        for p in objects(args.resources, "NetworkPolicy")
    ]
    for w in workloads(args.resources):
        covered = any(
            namespace == w.namespace
            and not k8s.selector_is_empty(selector)
            and k8s.selector_matches(selector, w.labels)
            for namespace, selector in policies
        )
        if not covered:
            yield w.resource.urn, f"{w.ref}: no NetworkPolicy of its own selects its pods"


def _is_default_deny(policy: PolicyResource) -> bool:
    spec = as_map(policy.props.get("spec"))
    types = set(as_list(spec.get("policyTypes")))
    return (
        k8s.selector_is_empty(spec.get("podSelector"))
        and {"Ingress", "Egress"} <= types
        and not as_list(spec.get("ingress"))
        and not as_list(spec.get("egress"))
    )


def namespace_default_deny(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    denied = {
        k8s.effective_namespace(p.props) for p in objects(args.resources, "NetworkPolicy") if _is_default_deny(p)
    }
    for ns in objects(args.resources, "Namespace"):
        name = k8s.name_of(ns.props, ns.name)
        if name not in denied:
            yield ns.urn, (
                f"Namespace {name}: no default-deny NetworkPolicy "
                "(podSelector: {}, policyTypes: [Ingress, Egress], no rules)"
            )


def namespace_pod_security(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if not k8s.is_kind(args.resource_type, "Namespace"):
        return
    level = k8s.labels_of(args.props).get("pod-security.kubernetes.io/enforce")
    if level != "restricted":
        name = k8s.name_of(args.props, args.name)
        yield f"Namespace {name}: pod-security.kubernetes.io/enforce is {level or 'unset'}, not restricted"


def service_type(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if not k8s.is_kind(args.resource_type, "Service"):
        return
    kind = dig(args.props, "spec", "type")
    if kind not in ("LoadBalancer", "NodePort"):
        return
    identity = f"{k8s.effective_namespace(args.props)}/{k8s.name_of(args.props, args.name)}"
    allowed = [str(p) for p in config["allowedServices"]]
    if not any(fnmatch.fnmatchcase(identity, p) for p in allowed):
        yield (
            f"{k8s.ref(args.resource_type, args.props, args.name)}: type {kind} is reserved for the gateway "
            f"(allowed: {listing(allowed) or 'none'})"
        )


def no_nginx_snippets(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if k8s.kube_type(args.resource_type) is None:
        return
    annotations = as_map(dig(args.props, "metadata", "annotations"))
    for key in sorted(annotations):
        if _SNIPPET_RE.match(key):
            yield f"{k8s.ref(args.resource_type, args.props, args.name)}: annotation {key} injects raw nginx configuration"


# ----------------------------------------------------------------- route TLS


def route_tls(args: StackValidationArgs, config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    yield from _ingress_tls(args)
    gateways = {}
    for gw in objects(args.resources, "Gateway"):
        if not gw.resource_type.startswith(f"kubernetes:{GATEWAY_API_GROUP}/"):
            continue
        gateways[(k8s.effective_namespace(gw.props), k8s.name_of(gw.props, gw.name))] = gw
        yield from _gateway_tls(gw)
    for route in objects(args.resources, "HTTPRoute", "GRPCRoute"):
        if route.resource_type.startswith(f"kubernetes:{GATEWAY_API_GROUP}/"):
            yield from _route_tls(route, gateways)


def _ingress_tls(args: StackValidationArgs) -> Iterator[tuple[str, str]]:
    for ingress in objects(args.resources, "Ingress"):
        ref = k8s.ref(ingress.resource_type, ingress.props, ingress.name)
        spec = as_map(ingress.props.get("spec"))
        tls = [as_map(t) for t in as_list(spec.get("tls"))]
        if not tls:
            yield ingress.urn, f"{ref}: serves plain HTTP (spec.tls is empty)"
            continue
        covered = {str(h) for t in tls for h in as_list(t.get("hosts"))}
        for rule in as_list(spec.get("rules")):
            host = as_map(rule).get("host")
            if host and not any(fnmatch.fnmatchcase(str(host), c) or str(host) == c for c in covered):
                yield ingress.urn, f"{ref}: host {host} has no spec.tls entry"
        for t in tls:
            if not t.get("secretName"):
                yield ingress.urn, f"{ref}: the tls entry for {listing(str(h) for h in as_list(t.get('hosts')))} has no secretName"


def _listeners(gw: PolicyResource) -> list[Mapping[str, Any]]:
    return [as_map(listener) for listener in as_list(dig(gw.props, "spec", "listeners"))]


def _gateway_tls(gw: PolicyResource) -> Iterator[tuple[str, str]]:
    ref = k8s.ref(gw.resource_type, gw.props, gw.name)
    listeners = _listeners(gw)
    if not any(listener.get("protocol") in ("HTTPS", "TLS") for listener in listeners):
        yield gw.urn, f"{ref}: has no HTTPS listener"
    for listener in listeners:
        tls = as_map(listener.get("tls"))
        if listener.get("protocol") == "HTTPS" and tls.get("mode", "Terminate") == "Terminate":
            if not as_list(tls.get("certificateRefs")):
                yield gw.urn, f'{ref}: HTTPS listener "{listener.get("name")}" has no tls.certificateRefs'


def _redirects_to_https(rule: Mapping[str, Any]) -> bool:
    return any(
        as_map(f).get("type") == "RequestRedirect" and dig(f, "requestRedirect", "scheme") == "https"
        for f in as_list(rule.get("filters"))
    )


def _route_tls(route: PolicyResource, gateways: Mapping[tuple[str, str], PolicyResource]) -> Iterator[tuple[str, str]]:
    ref = k8s.ref(route.resource_type, route.props, route.name)
    route_ns = k8s.effective_namespace(route.props)
    rules = [as_map(r) for r in as_list(dig(route.props, "spec", "rules"))]
    for parent in as_list(dig(route.props, "spec", "parentRefs")):
        parent = as_map(parent)
        if parent.get("kind", "Gateway") != "Gateway":
            continue
        gw_ns, gw_name = parent.get("namespace") or route_ns, parent.get("name")
        gw = gateways.get((gw_ns, gw_name))
        if gw is None:
            continue  # a gateway of another stack: its listeners are not visible here
        section, port = parent.get("sectionName"), number(parent.get("port"))
        plain = [
            listener
            for listener in _listeners(gw)
            if listener.get("protocol") == "HTTP"
            and (section is None or listener.get("name") == section)
            and (port is None or number(listener.get("port")) == port)
        ]
        for listener in plain:
            is_grpc = k8s.is_kind(route.resource_type, "GRPCRoute")
            if is_grpc or not rules or not all(_redirects_to_https(r) for r in rules):
                yield route.urn, (
                    f'{ref}: attached to plain-HTTP listener "{listener.get("name")}" '
                    f"(port {fmt_number(number(listener.get('port')) or 0)}) of Gateway {gw_ns}/{gw_name} "
                    "without redirecting to https"
                )
