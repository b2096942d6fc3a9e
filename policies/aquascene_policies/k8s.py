"""Reading Kubernetes objects as the engine hands them to a policy (camelCase, possibly proxied)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional

from .core import as_list, as_map, dig, is_map, safe

# Pulumi packages whose "kinds" are not Kubernetes objects.
_NOT_OBJECTS = {"helm.sh", "yaml", "kustomize"}

# Where the pod spec sits in each workload kind.
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("core", "Pod"): ("spec",),
    ("core", "ReplicationController"): ("spec", "template", "spec"),
    ("apps", "Deployment"): ("spec", "template", "spec"),
    ("apps", "StatefulSet"): ("spec", "template", "spec"),
    ("apps", "DaemonSet"): ("spec", "template", "spec"),
    ("apps", "ReplicaSet"): ("spec", "template", "spec"),
    ("batch", "Job"): ("spec", "template", "spec"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
BATCH_KINDS = {"Job", "CronJob"}
SCALABLE_KINDS = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}

CLUSTER_SCOPED_KINDS = {
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding",
    "CustomResourceDefinition", "StorageClass", "PriorityClass", "IngressClass", "RuntimeClass",
    "CSIDriver", "CSINode", "VolumeAttachment", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "APIService",
    "CertificateSigningRequest", "FlowSchema", "PriorityLevelConfiguration", "ComponentStatus",
    "GatewayClass", "ClusterIssuer", "ClusterSecretStore", "ClusterImageCatalog", "VolumeSnapshotClass",
    "IPAddress", "ServiceCIDR", "DeviceClass",
}


@dataclass(frozen=True)
class KubeType:
    group: str
    version: str
    kind: str


def kube_type(resource_type: str) -> Optional[KubeType]:
    """`kubernetes:apps/v1:Deployment` -> (apps, v1, Deployment); None for non-objects."""
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes" or "/" not in parts[1]:
        return None
    group, version = parts[1].rsplit("/", 1)
    kind = parts[2]
    if group in _NOT_OBJECTS or kind.endswith("Patch") or kind.endswith("List"):
        return None
    return KubeType(group, version, kind)


def is_kind(resource_type: str, *kinds: str) -> bool:
    t = kube_type(resource_type)
    return t is not None and t.kind in kinds


def meta(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_map(props.get("metadata"))


def namespace_of(props: Mapping[str, Any]) -> Optional[str]:
    """metadata.namespace (None when unset; "(computed)" when unknown during preview)."""
    value = safe(lambda: meta(props).get("namespace"), default="(computed)")
    return value if isinstance(value, str) and value else None


def effective_namespace(props: Mapping[str, Any]) -> str:
    return namespace_of(props) or "default"


def name_of(props: Mapping[str, Any], fallback: str = "") -> str:
    value = safe(lambda: meta(props).get("name"), default="(computed)")
    return value if isinstance(value, str) and value else fallback


def ref(resource_type: str, props: Mapping[str, Any], fallback_name: str = "") -> str:
    """How messages name an object: `Deployment aquascene-prod/content-manager`."""
    t = kube_type(resource_type)
    kind = t.kind if t else resource_type.rsplit(":", 1)[-1]
    name = name_of(props, fallback_name)
    namespace = namespace_of(props)
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def labels_of(value: Any) -> Mapping[str, Any]:
    return as_map(dig(value, "metadata", "labels"))


# ---------------------------------------------------------------- workloads


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    t = kube_type(resource_type)
    if t is None or (t.group, t.kind) not in POD_SPEC_PATHS:
        return None
    spec = dig(props, *POD_SPEC_PATHS[(t.group, t.kind)])
    return spec if is_map(spec) else {}


def pod_template(resource_type: str, props: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """The object holding the pod's metadata and spec (the Pod itself for a bare Pod)."""
    t = kube_type(resource_type)
    if t is None or (t.group, t.kind) not in POD_SPEC_PATHS:
        return None
    path = POD_SPEC_PATHS[(t.group, t.kind)][:-1]
    template = dig(props, *path) if path else props
    return template if is_map(template) else {}


def pod_labels(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any]:
    template = pod_template(resource_type, props)
    return labels_of(template) if template is not None else {}


def is_workload(resource_type: str) -> bool:
    t = kube_type(resource_type)
    return t is not None and (t.group, t.kind) in POD_SPEC_PATHS


@dataclass(frozen=True)
class Container:
    role: str  # "container", "init container", "ephemeral container"
    name: str
    spec: Mapping[str, Any]

    def __str__(self) -> str:
        return f'{self.role} "{self.name}"'

    @property
    def security_context(self) -> Mapping[str, Any]:
        return as_map(self.spec.get("securityContext"))

    @property
    def image(self) -> str:
        image = self.spec.get("image")
        return image if isinstance(image, str) else ""


def containers(spec: Mapping[str, Any], init: bool = True) -> Iterator[Container]:
    groups = [("initContainers", "init container"), ("containers", "container"),
              ("ephemeralContainers", "ephemeral container")]
    for key, role in groups:
        if not init and key != "containers":
            continue
        for i, c in enumerate(as_list(spec.get(key))):
            c = as_map(c)
            name = c.get("name")
            yield Container(role, name if isinstance(name, str) and name else f"#{i}", c)


# ----------------------------------------------------------------- selectors


def selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    """A LabelSelector against labels: {} matches everything, None nothing."""
    if not is_map(selector):
        return False
    for key, value in as_map(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expr in as_list(selector.get("matchExpressions")):
        expr = as_map(expr)
        key, op = expr.get("key"), expr.get("operator")
        values = list(as_list(expr.get("values")))
        present = key in labels
        if op == "In" and not (present and labels.get(key) in values):
            return False
        if op == "NotIn" and present and labels.get(key) in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def selector_is_empty(selector: Any) -> bool:
    return is_map(selector) and not as_map(selector.get("matchLabels")) and not as_list(selector.get("matchExpressions"))


# -------------------------------------------------------------------- images

_DIGEST_RE = re.compile(r"@sha256:[a-f0-9]{64}$")


@dataclass(frozen=True)
class ImageRef:
    repository: str  # registry and path, as written
    tag: Optional[str]
    digest: Optional[str]

    @property
    def short(self) -> str:
        """The repository without Docker Hub's implicit prefixes (docker.io/, library/)."""
        repo = self.repository
        for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
            if repo.startswith(prefix):
                repo = repo[len(prefix):]
        return repo[len("library/"):] if repo.startswith("library/") else repo


def parse_image(image: str) -> ImageRef:
    rest, _, digest = image.partition("@")
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = rest.rsplit(":", 1)
    else:
        repo, tag = rest, None
    return ImageRef(repo, tag or None, digest or None)


def has_digest(image: str) -> bool:
    return bool(_DIGEST_RE.search(image))
