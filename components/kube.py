"""The one place for Kubernetes conventions: names, labels, the restricted
security context, probes and resource presets.

Every component builds its objects from these helpers so that a change to a
convention (a label, a security default) happens here and nowhere else.
Objects are plain dicts in the Kubernetes API's own camelCase, so the code
reads like the manifests that `aquascene render` writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime.settings import get_root_resource

Manifest = dict[str, Any]

PART_OF = "aquascene"
MANAGED_BY = "pulumi"
ENVIRONMENT_LABEL = "aquascene.io/environment"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace

# UID/GID of the content-engine image (app/Dockerfile) and the default for
# every workload whose image allows an arbitrary non-root user.
DEFAULT_UID = 10001

SCRAPE_ANNOTATIONS = ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path")

# The policy pack's exemption annotation (policies/aquascene_policies/core.py): on a
# workload or namespace object itself, `<prefix><rule>: "<reason>"`.
POLICY_EXEMPT_PREFIX = "policy.aquascene.io/exempt-"

# Where client libraries (client-go's in-cluster config, Prometheus, Alloy) read
# the pod's API credentials: token, ca.crt and namespace.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class Identity:
    """Who a workload is: the source of its labels and selector."""

    name: str  # app.kubernetes.io/name, also the object name
    component: str  # app.kubernetes.io/component (api, database, cache, ...)
    environment: str
    version: str = "unversioned"

    @property
    def instance(self) -> str:
        return f"{self.name}-{self.environment}"

    def selector(self) -> dict[str, str]:
        """The immutable subset used in selectors (never includes the version)."""
        return {
            "app.kubernetes.io/name": self.name,
            "app.kubernetes.io/instance": self.instance,
        }

    def labels(self) -> dict[str, str]:
        return {
            **self.selector(),
            "app.kubernetes.io/component": self.component,
            "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/version": label_value(self.version),
            "app.kubernetes.io/managed-by": MANAGED_BY,
            ENVIRONMENT_LABEL: self.environment,
        }


def image_version(image: str) -> str:
    """The tag of an image reference (`registry/name:tag@sha256:...` -> `tag`), for the version label."""
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[-1] if ":" in name.rsplit("/", 1)[-1] else "untagged"


def label_value(value: str) -> str:
    """A label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in value)[:63]
    return cleaned.strip("._-") or "none"


# ------------------------------------------------------------------ namespaces
#
# An object sent before its namespace exists is refused ("namespaces ... not
# found"); the engine retries it, and at the default --parallel such retries can
# hold every slot while the namespace waits for one. So every namespaced object
# must wait for its Namespace, wherever it is declared. `namespace()` records
# each Namespace of the running program; `metadata()` then names the namespace
# through that resource's output, so the dependency travels with the input and
# no call site can forget it. A program that declares namespaces after objects
# that live in them (components that reference each other's namespaces) names
# them up front with `expect_namespaces()`: references wait for the declaration,
# and `settle_namespaces()` releases those the program never declared.
# tests/unit/test_ordering.py checks the whole graph.


@dataclass
class _ProgramNamespaces:
    declared: dict[str, "pulumi.Resource"] = field(default_factory=dict)  # a Namespace, or what creates it
    expected: dict[str, "asyncio.Future[k8s.core.v1.Namespace | None]"] = field(default_factory=dict)
    required: dict[str, "Prerequisite"] = field(default_factory=dict)
    lookups: dict[str, "k8s.core.v1.Namespace"] = field(default_factory=dict)
    verdict: "asyncio.Future[None] | None" = None  # all lookups answered: None, or the missing ones raised


_NAMESPACES: weakref.WeakKeyDictionary[pulumi.Resource, _ProgramNamespaces] = weakref.WeakKeyDictionary()


def _program_namespaces() -> _ProgramNamespaces:
    """The namespaces of this program run (one per root stack resource)."""
    root = get_root_resource()
    if root is None:  # outside a Pulumi program: nothing to order
        return _ProgramNamespaces()
    return _NAMESPACES.setdefault(root, _ProgramNamespaces())


def namespace(resource_name: str, meta: Manifest, opts: pulumi.ResourceOptions | None = None) -> k8s.core.v1.Namespace:
    """Declare a Namespace; objects whose metadata() names it are created after it."""
    created = k8s.core.v1.Namespace(resource_name, metadata=meta, opts=opts)
    namespaces = _program_namespaces()
    namespaces.declared[meta["name"]] = created
    waiting = namespaces.expected.pop(meta["name"], None)
    if waiting is not None and not waiting.done():
        waiting.set_result(created)
    return created


def expect_namespaces(names: Sequence[str]) -> None:
    """Namespaces this program may declare later: objects naming them wait for the declaration."""
    namespaces = _program_namespaces()
    loop = asyncio.get_event_loop()
    for name in names:
        if name not in namespaces.declared and name not in namespaces.expected:
            namespaces.expected[name] = loop.create_future()


def settle_namespaces() -> None:
    """The program declared all it will: objects in expected namespaces it never declared wait for
    nothing; objects in required ones wait for the lookups' verdict."""
    namespaces = _program_namespaces()
    for waiting in namespaces.expected.values():
        if not waiting.done():
            waiting.set_result(None)
    namespaces.expected.clear()
    if namespaces.verdict is not None and not namespaces.verdict.done():
        from pulumi.runtime.settings import SETTINGS

        # Tracked like an RPC, so the program does not end before the verdict.
        asyncio.ensure_future(SETTINGS.rpc_manager.do_rpc("prerequisites", lambda: _judge(namespaces))())


def namespace_reference(name: pulumi.Input[str]) -> pulumi.Input[str]:
    """`name`, as the output of its Namespace resource when this program declares one."""
    if not isinstance(name, str):
        return name
    namespaces = _program_namespaces()
    if name in namespaces.declared:
        return _name_of(namespaces.declared[name])
    if name in namespaces.required:
        assert namespaces.verdict is not None
        return pulumi.Output.from_input(namespaces.verdict).apply(lambda _: name)
    if name in namespaces.expected:
        return pulumi.Output.from_input(namespaces.expected[name]).apply(
            lambda declared: _name_of(declared) if declared is not None else name)
    return name


def _name_of(creator: pulumi.Resource) -> pulumi.Output[str]:
    if isinstance(creator, k8s.core.v1.Namespace):
        return creator.metadata.apply(lambda m: m["name"])
    return creator.namespace  # a Helm release with create_namespace


def namespace_created_by(name: str, creator: pulumi.Resource) -> None:
    """A namespace another resource creates (a Helm release's): objects in it wait for that resource."""
    _program_namespaces().declared.setdefault(name, creator)


# ------------------------------------------------------------- prerequisites
#
# A namespace the stack writes into but does not create (a platform team's cert-manager) is a
# prerequisite: looked up with `Namespace.get`, so a preview on a cluster without it fails
# before anything is created, with ONE message naming every missing namespace and the config
# key that stops the stack writing there. Objects in it name it through that verdict.


@dataclass(frozen=True)
class Prerequisite:
    namespace: str
    provider: str  # who is expected to have created it
    config_key: str  # the setting that stops the stack writing there (with the value that does)

    def describe(self) -> str:
        return f"namespace {self.namespace} ({self.provider}): not found; install it, or set {self.config_key}"


class PrerequisitesMissing(Exception):
    """Namespaces the stack writes into that the cluster lacks, all of them."""

    def __init__(self, missing: Sequence[Prerequisite]):
        self.missing = list(missing)
        super().__init__(
            f"{len(self.missing)} platform prerequisite{'s' if len(self.missing) != 1 else ''} missing on "
            "the cluster:\n" + "\n".join(f"  - {p.describe()}" for p in self.missing))


def require_namespace(prerequisite: Prerequisite, opts: pulumi.ResourceOptions | None = None) -> None:
    """Assert a namespace someone else creates (looked up at preview); objects in it wait for the answer."""
    namespaces = _program_namespaces()
    name = prerequisite.namespace
    if name in namespaces.declared or name in namespaces.required:
        return
    namespaces.required[name] = prerequisite
    namespaces.lookups[name] = k8s.core.v1.Namespace.get(f"{name}-namespace-present", name, opts=opts)
    if namespaces.verdict is None:
        namespaces.verdict = asyncio.get_event_loop().create_future()


def required_namespaces() -> list[str]:
    """The namespaces this program run asserts (for tests and tooling)."""
    return sorted(_program_namespaces().required)


async def _judge(namespaces: _ProgramNamespaces) -> None:
    """Wait for every lookup; one error listing all that failed (not just the first)."""
    from pulumi.runtime import settings

    assert namespaces.verdict is not None
    missing = []
    for name, lookup in namespaces.lookups.items():
        try:
            await lookup.id.future()
        except Exception:  # noqa: BLE001 - a failed read is the answer "not there"
            missing.append(namespaces.required[name])
    if not missing:
        namespaces.verdict.set_result(None)
        return
    error = PrerequisitesMissing(missing)
    pulumi.log.error(str(error))
    # Each failed read also fails the run with its own error; the first one the engine saw would
    # otherwise be all it reports. The run's error is the whole list instead.
    settings.SETTINGS.rpc_manager.unhandled_exception = error
    namespaces.verdict.set_exception(error)


def metadata(
    name: str,
    namespace: pulumi.Input[str] | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
) -> Manifest:
    meta: Manifest = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace_reference(namespace)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def namespace_peer(namespace: str) -> Manifest:
    """A namespaceSelector matching one namespace by its immutable name label."""
    return {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}


def content_checksum(data: Any) -> str:
    """A stable hash of configuration, put on pod templates so a change rolls the pods."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def checksum_output(data: Mapping[str, pulumi.Input[str]]) -> pulumi.Output[str]:
    """content_checksum of configuration whose values may be Outputs (resolved first)."""
    return pulumi.Output.from_input(dict(data)).apply(content_checksum)


# ---------------------------------------------------------------------- security


def pod_security_context(uid: int = DEFAULT_UID) -> Manifest:
    """Pod-level half of the Restricted Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(read_only_root: bool = True) -> Manifest:
    """Container-level half of the Restricted Pod Security Standard."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_namespace_labels(kubernetes_version: str) -> dict[str, str]:
    """Pod Security Admission labels: enforce, audit and warn at `restricted`."""
    return pod_security_labels("restricted", kubernetes_version)


POD_SECURITY_LEVELS = ("restricted", "baseline", "privileged")


def pod_security_labels(level: str, kubernetes_version: str) -> dict[str, str]:
    """Pod Security Admission labels: enforce, audit and warn at `level`.

    Anything below `restricted` is for node-level agents only, in a namespace
    of their own, and named as an exception by the policy pack.
    """
    if level not in POD_SECURITY_LEVELS:
        raise ValueError(f"unknown Pod Security level {level!r}; allowed: {', '.join(POD_SECURITY_LEVELS)}")
    version = f"v{kubernetes_version}"
    labels: dict[str, str] = {}
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = version
    return labels


def namespace_metadata(
    name: str, environment: str, level: str, kubernetes_version: str, annotations: Mapping[str, str] | None = None
) -> Manifest:
    """A namespace's metadata: the shared labels plus its Pod Security level (and any annotations)."""
    meta: Manifest = {
        "name": name,
        "labels": {**namespace_labels(environment), **pod_security_labels(level, kubernetes_version)},
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def policy_exemptions(reasons: Mapping[str, str]) -> dict[str, str]:
    """Exemption annotations for the policy pack: rule name -> the recorded reason.

    For an object's own metadata (a workload or a namespace, never a pod
    template). Every exemption needs a reason; an empty one is an error here
    rather than a finding later.
    """
    annotations: dict[str, str] = {}
    for rule, reason in reasons.items():
        if not rule or not reason or not reason.strip():
            raise ValueError(f"policy exemption {rule!r} needs a rule name and a reason")
        annotations[POLICY_EXEMPT_PREFIX + rule] = reason.strip()
    return annotations


def namespace_labels(environment: str) -> dict[str, str]:
    """Labels of namespace-wide objects (namespaces, default-deny policies)."""
    return {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/managed-by": MANAGED_BY, ENVIRONMENT_LABEL: environment}


# Selects every pod and allows nothing: each component then opens only what it serves.
DEFAULT_DENY_SPEC: Manifest = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


# Ephemeral storage (node disk outside the volumes a workload claims) a container writes: its
# logs, which the kubelet rotates at 5 x 10Mi by default; its writable layer, nothing (root
# filesystems are read-only); and the emptyDirs it mounts, each capped by a sizeLimit below. The
# resource presets' ephemeral-storage limits hold all three (tests/unit/test_ephemeral_storage.py).
LOG_ALLOWANCE = "64Mi"
TMP_SIZE_LIMIT = "256Mi"  # kube.tmp_volume()
SCRATCH_SIZE_LIMIT = "256Mi"  # kube.scratch_volume(): sockets, pid and positions files


def tmp_volume(size_limit: str = TMP_SIZE_LIMIT) -> tuple[Manifest, Manifest]:
    """The writable /tmp that a read-only root filesystem needs: (volume, mount)."""
    return (
        {"name": "tmp", "emptyDir": {"sizeLimit": size_limit}},
        {"name": "tmp", "mountPath": "/tmp"},
    )


def scratch_volume(name: str, size_limit: str = SCRATCH_SIZE_LIMIT) -> Manifest:
    """A writable emptyDir besides /tmp (a socket directory, an agent's state), capped like /tmp."""
    return {"name": name, "emptyDir": {"sizeLimit": size_limit}}


API_TOKEN_MIN_SECONDS = 600  # the API server rejects shorter-lived projected tokens


def api_token_volume(expiration_seconds: int = 3600, name: str = "kube-api-access") -> tuple[Manifest, Manifest]:
    """The Kubernetes API credentials as an explicit projected volume: (volume, mount).

    For the few pods that talk to the API, with `automountServiceAccountToken:
    false` on the pod: the same three files the automounted volume holds, at the
    same path (so in-cluster clients find them unchanged), but declared in the
    manifest and with a short-lived, audience-bound token the kubelet rotates.
    """
    if expiration_seconds < API_TOKEN_MIN_SECONDS:
        raise ValueError(f"api_token_volume: expiration_seconds must be >= {API_TOKEN_MIN_SECONDS}, got {expiration_seconds}")
    volume = {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": expiration_seconds}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [
                    {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
                ]}},
            ]
        },
    }
    return volume, {"name": name, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True}


# ------------------------------------------------------------------------ probes


@dataclass(frozen=True)
class ProbeTiming:
    period_seconds: int
    timeout_seconds: int
    failure_threshold: int
    success_threshold: int = 1


# Liveness is patient (a restart is expensive), readiness is quick (it only
# moves traffic), startup covers the slow first boot so liveness need not wait.
LIVENESS = ProbeTiming(period_seconds=10, timeout_seconds=5, failure_threshold=3)
READINESS = ProbeTiming(period_seconds=5, timeout_seconds=3, failure_threshold=3)
STARTUP_PERIOD_SECONDS = 5


def http_probe(path: str, port: int | str, timing: ProbeTiming) -> Manifest:
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "periodSeconds": timing.period_seconds,
        "timeoutSeconds": timing.timeout_seconds,
        "failureThreshold": timing.failure_threshold,
        "successThreshold": timing.success_threshold,
    }


def exec_probe(command: Sequence[str], timing: ProbeTiming) -> Manifest:
    return {
        "exec": {"command": list(command)},
        "periodSeconds": timing.period_seconds,
        "timeoutSeconds": timing.timeout_seconds,
        "failureThreshold": timing.failure_threshold,
        "successThreshold": timing.success_threshold,
    }


def tcp_probe(port: int | str, timing: ProbeTiming) -> Manifest:
    """For servers without a cheap health endpoint: is the port accepting connections."""
    return {
        "tcpSocket": {"port": port},
        "periodSeconds": timing.period_seconds,
        "timeoutSeconds": timing.timeout_seconds,
        "failureThreshold": timing.failure_threshold,
        "successThreshold": timing.success_threshold,
    }


def startup_timing(startup_timeout_seconds: int) -> ProbeTiming:
    """Startup probe timing that allows `startup_timeout_seconds` before liveness takes over."""
    failures = max(1, -(-startup_timeout_seconds // STARTUP_PERIOD_SECONDS))
    return ProbeTiming(period_seconds=STARTUP_PERIOD_SECONDS, timeout_seconds=3, failure_threshold=failures)


@dataclass(frozen=True)
class HttpProbes:
    """Liveness, readiness and startup probes of an HTTP service."""

    port: int | str
    liveness_path: str = "/health"
    readiness_path: str = "/ready"
    startup_timeout_seconds: int = 60

    def __post_init__(self) -> None:
        if self.liveness_path == self.readiness_path:
            raise ValueError(
                "HttpProbes: liveness_path and readiness_path must differ "
                "(liveness restarts the pod, readiness only takes it out of the Service)"
            )
        if self.startup_timeout_seconds < 1:
            raise ValueError("HttpProbes.startup_timeout_seconds must be >= 1")

    def render(self) -> Manifest:
        return {
            "livenessProbe": http_probe(self.liveness_path, self.port, LIVENESS),
            "readinessProbe": http_probe(self.readiness_path, self.port, READINESS),
            "startupProbe": http_probe(
                self.liveness_path, self.port, startup_timing(self.startup_timeout_seconds)
            ),
        }


# --------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container.

    CPU limits are deliberately absent by default: CFS throttling hurts
    latency more than a noisy neighbour does, and requests already reserve
    the CPU. Memory always has a limit: an OOM-kill beats a node OOM.
    Ephemeral storage is requested and limited too: under disk pressure the
    kubelet evicts pods without a request first, and a limit stops one
    container's logs or /tmp from filling the node (see LOG_ALLOWANCE).
    """

    cpu_request: str
    memory_request: str
    memory_limit: str
    ephemeral_storage_request: str
    ephemeral_storage_limit: str
    cpu_limit: str | None = None

    def render(self) -> Manifest:
        limits = {"memory": self.memory_limit, "ephemeral-storage": self.ephemeral_storage_limit}
        if self.cpu_limit:
            limits["cpu"] = self.cpu_limit
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request,
                         "ephemeral-storage": self.ephemeral_storage_request},
            "limits": limits,
        }


# Every ephemeral-storage limit holds the logs plus a /tmp and a scratch emptyDir (576Mi): the
# smallest containers (exporters, bucket and bootstrap jobs) write little more than logs; the
# larger ones (databases, AI processing, Prometheus) spill sorts and temporary files to /tmp.
RESOURCE_PRESETS: dict[str, Resources] = {
    "nano": Resources(cpu_request="25m", memory_request="64Mi", memory_limit="128Mi",
                      ephemeral_storage_request="64Mi", ephemeral_storage_limit="640Mi"),
    "micro": Resources(cpu_request="50m", memory_request="128Mi", memory_limit="256Mi",
                       ephemeral_storage_request="64Mi", ephemeral_storage_limit="640Mi"),
    "small": Resources(cpu_request="100m", memory_request="256Mi", memory_limit="512Mi",
                       ephemeral_storage_request="128Mi", ephemeral_storage_limit="1Gi"),
    "medium": Resources(cpu_request="250m", memory_request="512Mi", memory_limit="1Gi",
                        ephemeral_storage_request="256Mi", ephemeral_storage_limit="1Gi"),
    "large": Resources(cpu_request="500m", memory_request="1Gi", memory_limit="2Gi",
                       ephemeral_storage_request="256Mi", ephemeral_storage_limit="2Gi"),
    "xlarge": Resources(cpu_request="1", memory_request="2Gi", memory_limit="4Gi",
                        ephemeral_storage_request="512Mi", ephemeral_storage_limit="2Gi"),
}


def preset(name: str) -> Resources:
    try:
        return RESOURCE_PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown resource preset {name!r}; allowed: {', '.join(RESOURCE_PRESETS)}"
        ) from None


# ---------------------------------------------------------------- scheduling


def spread_across_nodes_and_zones(selector: Mapping[str, str]) -> Manifest:
    """Soft anti-affinity per node plus a zone topology spread.

    Soft (preferred / ScheduleAnyway) so that a small or single-zone cluster
    still schedules every replica.
    """
    return {
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": dict(selector)},
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(selector)},
            }
        ],
    }


# ------------------------------------------------------------------ networking


@dataclass(frozen=True)
class NetworkPeer:
    """Who may talk to (or be reached by) a workload.

    `pod_labels` alone: pods in the same namespace. With `namespace`: pods
    (or, without pod_labels, everything) in that namespace. `cidr`: an IP
    block, with `except_cidrs` carved out.
    """

    pod_labels: Mapping[str, str] | None = None
    namespace: str | None = None
    cidr: str | None = None
    except_cidrs: Sequence[str] = ()
    ports: Sequence[int] = ()
    protocols: Sequence[str] = ("TCP",)

    def __post_init__(self) -> None:
        if self.cidr and (self.pod_labels or self.namespace):
            raise ValueError("NetworkPeer: cidr cannot be combined with pod_labels or namespace")
        if not (self.cidr or self.pod_labels is not None or self.namespace):
            raise ValueError("NetworkPeer: set pod_labels, namespace or cidr")

    def selector(self) -> Manifest:
        if self.cidr:
            block: Manifest = {"cidr": self.cidr}
            if self.except_cidrs:
                block["except"] = list(self.except_cidrs)
            return {"ipBlock": block}
        peer: Manifest = {}
        if self.pod_labels is not None:
            peer["podSelector"] = {"matchLabels": dict(self.pod_labels)}
        if self.namespace:
            peer["namespaceSelector"] = namespace_peer(self.namespace)
        return peer

    def rule(self, direction: str, default_ports: Sequence[int] = ()) -> Manifest:
        ports = list(self.ports or default_ports)
        rule: Manifest = {direction: [self.selector()]}
        if ports:
            rule["ports"] = [{"port": p, "protocol": proto} for p in ports for proto in self.protocols]
        return rule


PRIVATE_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10")

# Cluster DNS: every pod that resolves names needs this egress.
DNS_PEER = NetworkPeer(
    namespace="kube-system", pod_labels={"k8s-app": "kube-dns"}, ports=(53,), protocols=("UDP", "TCP")
)
# The public internet only (private, link-local and CGNAT ranges carved out).
INTERNET_PEER = NetworkPeer(cidr="0.0.0.0/0", except_cidrs=PRIVATE_CIDRS)


def network_policy_spec(
    selector: Mapping[str, str],
    ingress_from: Sequence[NetworkPeer],
    ingress_ports: Sequence[int],
    egress_to: Sequence[NetworkPeer],
) -> Manifest:
    """A policy selecting `selector` that admits only the declared peers.

    Both directions are listed in policyTypes, so anything not declared is
    denied even if the namespace default-deny were removed.
    """
    return {
        "podSelector": {"matchLabels": dict(selector)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [peer.rule("from", ingress_ports) for peer in ingress_from],
        "egress": [DNS_PEER.rule("to")] + [peer.rule("to") for peer in egress_to],
    }


# ------------------------------------------------------------------ stateful sets


def volume_claim_template(name: str, size: str, storage_class: str | None, labels: Mapping[str, str]) -> Manifest:
    """A ReadWriteOnce PVC template (storage class None: the cluster default)."""
    spec: Manifest = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name, "labels": dict(labels)}, "spec": spec}


def service_spec(
    selector: Mapping[str, str], ports: Mapping[str, int], headless: bool = False
) -> Manifest:
    """A ClusterIP Service (headless: stable per-pod DNS for a StatefulSet, not-ready pods included)."""
    spec: Manifest = {
        "type": "ClusterIP",
        "selector": dict(selector),
        "ports": [{"name": n, "port": p, "targetPort": n, "protocol": "TCP"} for n, p in ports.items()],
    }
    if headless:
        spec["clusterIP"] = "None"
        # Peers must find each other before they are ready (replication, cluster bootstrap).
        spec["publishNotReadyAddresses"] = True
    return spec


def scrape_annotations(port: int, path: str = "/metrics") -> dict[str, str]:
    """Pod annotations Prometheus' kubernetes_sd pod discovery keys on."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": path}


def exporter_sidecar(image: str, port: int, env: Sequence[Manifest], liveness_path: str = "/") -> Manifest:
    """A Prometheus exporter beside its server in the same pod (restricted, tiny, probed on its own port)."""
    return {
        "name": "exporter",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
        "env": list(env),
        "resources": RESOURCE_PRESETS["nano"].render(),
        "securityContext": container_security_context(),
        "livenessProbe": http_probe(liveness_path, "metrics", LIVENESS),
        "readinessProbe": http_probe("/metrics", "metrics", READINESS),
    }


def cluster_dns(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"
