"""A stack's Kubernetes objects against a live API server.

`aquascene check STACK` sends every object the stack would create to the
cluster KUBECONFIG points to as a server-side dry run: admission, defaulting,
built-in and CRD schemas and CEL rules, exactly as `pulumi up` would meet
them, with nothing stored. The live-cluster tests use the same pieces to
apply for real (server-side apply, field manager `aquascene`).

Objects go in dependency order: the order the engine guarantees
(Recording.prerequisites), ties kept in registration order. Helm releases are
templated by Helm at deploy time and are listed, not sent.
"""

from __future__ import annotations

import graphlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from tooling.recording import Recorded, Recording, restore_ints, unwrap_secrets

FIELD_MANAGER = "aquascene"
NAMESPACE_DELETE_TIMEOUT_SECONDS = 120


class ClusterUnavailable(Exception):
    """No usable cluster: no kubeconfig, or the API server does not answer."""


@dataclass(frozen=True)
class StackObject:
    """One Kubernetes object of a stack, as it is applied (secrets in plain text: never print it)."""

    urn: str
    manifest: dict[str, Any]

    @property
    def api_version(self) -> str:
        return self.manifest["apiVersion"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def name(self) -> str:
        return self.manifest["metadata"]["name"]

    @property
    def namespace(self) -> str | None:
        return self.manifest["metadata"].get("namespace")

    @classmethod
    def bare_namespace(cls, name: str) -> "StackObject":
        """A namespace that something outside the stack's objects creates (a Helm release, a platform team)."""
        return cls(f"namespace:{name}", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    @property
    def ref(self) -> str:
        """`Kind namespace/name` (or `Kind name` when cluster-scoped): how reports name it."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass
class StackObjects:
    objects: list[StackObject]  # in dependency order
    helm_releases: list[str] = field(default_factory=list)  # "chart version" of each release, not sent
    release_namespaces: list[str] = field(default_factory=list)  # namespaces those releases create


def stack_objects(recording: Recording) -> StackObjects:
    """The recording's Kubernetes objects in an order that respects every dependency."""
    kubernetes = recording.kubernetes()
    objects = {r.urn: r for r in kubernetes if "kind" in r.inputs}
    releases = [r for r in kubernetes if "kind" not in r.inputs]
    position = {r.urn: i for i, r in enumerate(recording.resources)}
    graph = graphlib.TopologicalSorter({urn: recording.prerequisites(urn) & objects.keys() for urn in objects})
    graph.prepare()
    ordered: list[str] = []
    while graph.is_active():
        ready = sorted(graph.get_ready(), key=position.__getitem__)
        ordered.extend(ready)
        graph.done(*ready)
    return StackObjects(
        objects=[StackObject(urn, applied_manifest(objects[urn])) for urn in ordered],
        helm_releases=[f"{r.plain_inputs.get('chart')} {r.plain_inputs.get('version')}" for r in releases],
        release_namespaces=sorted({r.plain_inputs["namespace"] for r in releases
                                   if r.plain_inputs.get("createNamespace") and r.plain_inputs.get("namespace")}),
    )


def applied_manifest(resource: Recorded) -> dict[str, Any]:
    """The object as the provider sends it: secrets unwrapped, integral numbers as ints."""
    return restore_ints(unwrap_secrets(resource.inputs))


# ------------------------------------------------------------------ the cluster


class Cluster:
    """The API server KUBECONFIG names, through the official client's dynamic API."""

    def __init__(self, api_client: Any):
        from kubernetes import dynamic

        self.api_client = api_client
        self.dynamic = dynamic.DynamicClient(api_client)

    @classmethod
    def from_kubeconfig(cls) -> "Cluster":
        """The current context of KUBECONFIG (or ~/.kube/config)."""
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        try:
            # Read KUBECONFIG now: the client fixes its default path when first imported.
            api_client = config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
        except (ConfigException, OSError) as error:
            raise ClusterUnavailable(
                f"no usable kubeconfig ({error}); set KUBECONFIG to a cluster's kubeconfig"
            ) from None
        try:
            client.VersionApi(api_client).get_code(_request_timeout=10)
        except Exception as error:  # urllib3/ssl/ApiException: any failure means no usable cluster
            raise ClusterUnavailable(f"the API server in KUBECONFIG does not answer: {error}") from None
        return cls(api_client)

    def resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: StackObject, dry_run: bool = False) -> str | None:
        """Server-side apply (field manager `aquascene`); the API server's refusal, or None."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

        try:
            resource = self.resource(obj.api_version, obj.kind)
            self.dynamic.server_side_apply(
                resource, body=obj.manifest, namespace=obj.namespace, field_manager=FIELD_MANAGER,
                force_conflicts=True, dry_run="All" if dry_run else None,
            )
        except ResourceNotFoundError:
            return f"the cluster does not serve {obj.api_version} {obj.kind} (is its CRD installed?)"
        except (DynamicApiError, ApiException) as error:
            return api_error_message(error)
        return None

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return self.resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        found = self.resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
        return [item.to_dict() for item in found.items]

    def delete(self, obj: StackObject) -> None:
        """Delete the object and, like the engine, what it owns (foreground); absent is fine."""
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            self.resource(obj.api_version, obj.kind).delete(
                name=obj.name, namespace=obj.namespace, body={"propagationPolicy": "Foreground"})
        except NotFoundError:
            pass

    def wait_gone(self, objects: Iterable[StackObject], timeout_seconds: float) -> list[StackObject]:
        """Wait (bounded) until the objects are deleted; those still present at the deadline."""
        remaining = list(objects)
        deadline = time.monotonic() + timeout_seconds
        while remaining:
            remaining = [o for o in remaining if self.get(o.api_version, o.kind, o.name, o.namespace) is not None]
            if not remaining or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return remaining

    def namespace_exists(self, name: str) -> bool:
        return self.get("v1", "Namespace", name) is not None


def api_error_message(error: Exception) -> str:
    """The API server's own message (status 422 etc.), not the client's HTTP dump."""
    body = getattr(error, "body", None) or getattr(error, "summary", lambda: "")()
    try:
        status = json.loads(body)
        return f"{status.get('code')} {status.get('reason')}: {status.get('message')}"
    except (TypeError, ValueError):
        return str(error).strip().splitlines()[0]


# ------------------------------------------------------------------ check


@dataclass(frozen=True)
class Verdict:
    ref: str
    error: str | None  # None: accepted


@dataclass
class CheckReport:
    stack: str
    verdicts: list[Verdict]
    helm_releases: list[str]
    temporary_namespaces: list[str]

    @property
    def rejected(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.error is not None]


def check(stack: str, objects: StackObjects, cluster: Cluster) -> CheckReport:
    """Server-side dry run of every object.

    A dry run cannot place an object in a namespace that does not exist yet,
    so each namespace the stack creates and the cluster lacks is created for
    the check (from the stack's own manifest, so its Pod Security level
    applies; a Helm release's as a plain namespace) and deleted afterwards.
    Nothing else is written.
    """
    temporary: list[StackObject] = []
    verdicts: list[Verdict] = []
    try:
        for name in objects.release_namespaces:
            if not cluster.namespace_exists(name):
                namespace = StackObject.bare_namespace(name)
                if cluster.apply(namespace) is None:
                    temporary.append(namespace)
        for obj in objects.objects:
            if obj.kind == "Namespace" and obj.api_version == "v1" and not cluster.namespace_exists(obj.name):
                error = cluster.apply(obj, dry_run=True) or cluster.apply(obj)
                if error is None:
                    temporary.append(obj)
            else:
                error = cluster.apply(obj, dry_run=True)
            verdicts.append(Verdict(obj.ref, error))
    finally:
        for namespace in reversed(temporary):
            cluster.delete(namespace)
        # A namespace still terminating refuses new content, even dry runs: leave none behind.
        cluster.wait_gone(temporary, timeout_seconds=NAMESPACE_DELETE_TIMEOUT_SECONDS)
    return CheckReport(stack, verdicts, objects.helm_releases, [n.name for n in temporary])


def format_report(report: CheckReport) -> Iterable[str]:
    accepted = len(report.verdicts) - len(report.rejected)
    yield (f"stack {report.stack}: {len(report.verdicts)} objects, {accepted} accepted, "
           f"{len(report.rejected)} rejected (server-side dry run)")
    for release in report.helm_releases:
        yield f"  not sent  Helm release {release}: templated by Helm at deploy time"
    if report.temporary_namespaces:
        yield f"  namespaces created for the check and deleted: {', '.join(report.temporary_namespaces)}"
    for verdict in report.rejected:
        yield f"  REJECTED  {verdict.ref}: {verdict.error}"
