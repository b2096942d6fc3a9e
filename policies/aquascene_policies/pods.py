"""Pod rules: the Restricted Pod Security Standard, resources, probes, images, namespaces.

Each applies to every workload kind that carries a pod spec (Pod, Deployment,
StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob).
"""

from __future__ import annotations

import fnmatch
import functools
from typing import Any, Callable, Iterator, Mapping, Optional

from pulumi_policy import ResourceValidationArgs

from . import k8s
from .core import as_list, as_map, dig, fmt_number, is_map, listing, number, plain, safe
from .k8s import Container


def _workload(args: ResourceValidationArgs) -> Optional[tuple[str, Mapping[str, Any]]]:
    spec = k8s.pod_spec(args.resource_type, args.props)
    if spec is None:
        return None
    return k8s.ref(args.resource_type, args.props, args.name), spec


def _pod_rule(check: Callable[[str, Mapping[str, Any], Mapping[str, Any]], Iterator[str]]) -> Callable[
        [ResourceValidationArgs, Mapping[str, Any]], Iterator[str]]:
    """A rule over a workload's pod spec: `check(ref, spec, config)` runs only for resources with pods."""

    @functools.wraps(check)
    def rule(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
        found = _workload(args)
        if found:
            ref, spec = found
            yield from check(ref, spec, config)

    return rule


def _effective(container: Container, spec: Mapping[str, Any], key: str) -> Any:
    """A container securityContext field, falling back to the pod's (where Kubernetes does)."""
    value = container.security_context.get(key)
    return value if value is not None else as_map(spec.get("securityContext")).get(key)


# -------------------------------------------------------------- security


@_pod_rule
def run_as_non_root(ref: str, spec: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    for c in k8s.containers(spec):
        if _effective(c, spec, "runAsNonRoot") is not True:
            yield f"{ref}: {c} does not set runAsNonRoot: true"
        uid = number(_effective(c, spec, "runAsUser"))
        if uid == 0:
            yield f"{ref}: {c} runs as UID 0"


@_pod_rule
def no_privileged(ref: str, spec: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    for c in k8s.containers(spec):
        if c.security_context.get("privileged") is True:
            yield f"{ref}: {c} is privileged"


@_pod_rule
def no_privilege_escalation(ref: str, spec: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    for c in k8s.containers(spec):
        if c.security_context.get("allowPrivilegeEscalation") is not False:
            yield f"{ref}: {c} does not set allowPrivilegeEscalation: false"


@_pod_rule
def read_only_root_filesystem(ref: str, spec: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    for c in k8s.containers(spec):
        if c.security_context.get("readOnlyRootFilesystem") is not True:
            yield f"{ref}: {c} does not set readOnlyRootFilesystem: true"


@_pod_rule
def drop_all_capabilities(ref: str, spec: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    allowed = set(config["allowedCapabilities"])
    for c in k8s.containers(spec):
        caps = as_map(c.security_context.get("capabilities"))
        if "ALL" not in list(as_list(caps.get("drop"))):
            yield f"{ref}: {c} does not drop ALL capabilities"
        added = [str(a) for a in as_list(caps.get("add")) if str(a) not in allowed]
        if added:
            yield f"{ref}: {c} adds capabilities {listing(added)} (allowed: {listing(sorted(allowed)) or 'none'})"


@_pod_rule
def seccomp_runtime_default(ref: str, spec: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    for c in k8s.containers(spec):
        profile = as_map(_effective(c, spec, "seccompProfile")).get("type")
        if profile not in ("RuntimeDefault", "Localhost"):
            yield f"{ref}: {c} seccompProfile is {profile or 'unset'}, not RuntimeDefault"


def _host_namespace(field: str, what: str):
    def check(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
        found = _workload(args)
        if found and found[1].get(field) is True:
            yield f"{found[0]}: pod shares the node's {what} ({field}: true)"

    check.__name__ = f"no_{field}"
    return check


no_host_network = _host_namespace("hostNetwork", "network namespace")
no_host_pid = _host_namespace("hostPID", "process namespace")
no_host_ipc = _host_namespace("hostIPC", "IPC namespace")


@_pod_rule
def no_host_path(ref: str, spec: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    for volume in as_list(spec.get("volumes")):
        volume = as_map(volume)
        host_path = volume.get("hostPath")
        if is_map(host_path):
            yield f'{ref}: volume "{volume.get("name")}" mounts host path {host_path.get("path")}'


@_pod_rule
def no_host_port(ref: str, spec: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    for c in k8s.containers(spec):
        for port in as_list(c.spec.get("ports")):
            host_port = number(as_map(port).get("hostPort"))
            if host_port:
                yield f"{ref}: {c} binds host port {fmt_number(host_port)}"


def no_service_account_token(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    found = _workload(args)
    if found and found[1].get("automountServiceAccountToken") is not False:
        yield f"{found[0]}: pod does not set automountServiceAccountToken: false"


def no_default_namespace(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    props = args.props
    if args.resource_type == "kubernetes:helm.sh/v3:Release":
        namespace = safe(lambda: props.get("namespace"), default="(computed)")
        if not namespace or namespace == "default":
            yield f"Release {args.name}: installs into the default namespace"
        return
    t = k8s.kube_type(args.resource_type)
    if t is None or t.kind in k8s.CLUSTER_SCOPED_KINDS or t.kind in set(config["clusterScopedKinds"]):
        return
    namespace = k8s.namespace_of(props)
    if namespace is None:
        yield f"{k8s.ref(args.resource_type, props, args.name)}: metadata.namespace is not set (the provider's default namespace applies)"
    elif namespace == "default":
        yield f"{k8s.ref(args.resource_type, props, args.name)}: is in the default namespace"


# ------------------------------------------------------- resources, probes


def _missing_resources(spec: Mapping[str, Any], keys: tuple[tuple[str, str], ...]) -> Iterator[tuple[Any, list[str]]]:
    """Each container lacking any `resources.<section>.<key>` of `keys`, with those it lacks."""
    for c in k8s.containers(spec):
        if c.role == "ephemeral container":
            continue  # the API forbids resources on ephemeral containers
        resources = as_map(c.spec.get("resources"))
        missing = [f"resources.{section}.{key}" for section, key in keys if dig(resources, section, key) in (None, "")]
        if missing:
            yield c, missing


@_pod_rule
def container_resources(ref: str, spec: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    for c, missing in _missing_resources(spec, (("requests", "cpu"), ("requests", "memory"), ("limits", "memory"))):
        yield f"{ref}: {c} has no {', '.join(missing)}"


@_pod_rule
def container_ephemeral_storage(ref: str, spec: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    for c, missing in _missing_resources(spec, (("requests", "ephemeral-storage"), ("limits", "ephemeral-storage"))):
        yield f"{ref}: {c} has no {' and no '.join(missing)}"


def probes(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    found = _workload(args)
    t = k8s.kube_type(args.resource_type)
    if not found or t is None or t.kind in k8s.BATCH_KINDS:
        return
    ref, spec = found
    for c in k8s.containers(spec, init=False):
        liveness, readiness = c.spec.get("livenessProbe"), c.spec.get("readinessProbe")
        missing = [name for name, probe in (("livenessProbe", liveness), ("readinessProbe", readiness)) if not is_map(probe)]
        if missing:
            yield f"{ref}: {c} has no {' and no '.join(missing)}"
        elif plain(liveness) == plain(readiness):
            yield f"{ref}: {c} has identical liveness and readiness probes"


# ---------------------------------------------------------------- images


def _images(args: ResourceValidationArgs) -> Iterator[tuple[str, Container]]:
    found = _workload(args)
    if not found:
        return
    ref, spec = found
    for c in k8s.containers(spec):
        yield ref, c


def image_tag_pinned(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    for ref, c in _images(args):
        if not c.image:
            yield f"{ref}: {c} has no image"
            continue
        image = k8s.parse_image(c.image)
        if image.digest:
            continue
        if image.tag is None:
            yield f'{ref}: {c} image "{c.image}" has no tag'
        elif image.tag == "latest":
            yield f'{ref}: {c} image "{c.image}" uses the "latest" tag'


def image_digest_pinned(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    for ref, c in _images(args):
        if c.image and not k8s.has_digest(c.image):
            yield f'{ref}: {c} image "{c.image}" is not pinned by digest (@sha256:...)'


def image_not_denied(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    denied = [as_map(d) for d in config["deniedImages"]]
    for ref, c in _images(args):
        if not c.image:
            continue
        image = k8s.parse_image(c.image)
        names = {image.repository, image.short}
        if image.tag:
            names |= {f"{image.repository}:{image.tag}", f"{image.short}:{image.tag}"}
        for entry in denied:
            pattern = str(entry.get("pattern", ""))
            if pattern and any(fnmatch.fnmatchcase(n, pattern) for n in names):
                yield f'{ref}: {c} image "{c.image}" is denied ({pattern}): {entry.get("reason")}'
                break


DEFAULT_DENIED_IMAGES = [
    {
        "pattern": "minio/minio",
        "reason": "MinIO's repository is archived and its last image carries GHSA-jjjj-jwhf-8rgr; use a maintained S3-compatible server",
    },
    {
        "pattern": "*/minio/minio",
        "reason": "MinIO's repository is archived and its last image carries GHSA-jjjj-jwhf-8rgr; use a maintained S3-compatible server",
    },
    {
        "pattern": "bitnami/*:[0-9]*",
        "reason": "Bitnami's versioned images froze in August 2025; use the upstream official or an operator image",
    },
    {
        "pattern": "*/bitnami/*:[0-9]*",
        "reason": "Bitnami's versioned images froze in August 2025; use the upstream official or an operator image",
    },
    {"pattern": "bitnamilegacy/*", "reason": "bitnamilegacy images receive no updates"},
    {"pattern": "*/bitnamilegacy/*", "reason": "bitnamilegacy images receive no updates"},
    {"pattern": "grafana/promtail", "reason": "Promtail is end-of-life; ship logs with Grafana Alloy"},
    {"pattern": "*/ingress-nginx/controller", "reason": "ingress-nginx is retired; route with the Gateway API"},
]
