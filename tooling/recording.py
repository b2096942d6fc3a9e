"""The recording engine: runs a Pulumi program under `pulumi.runtime.set_mocks`
and keeps every registered resource (type, name, parent, provider, inputs,
dependencies) so tools and tests can inspect exactly what a stack declares.

Mocks answer like the real providers would, closely enough that dependent
inputs survive: random passwords get a `result`, AWS resources an `arn`/`id`/
`name`, Kubernetes objects their `metadata.name`, docker images a digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import graphlib
import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as runtime_resource
from pulumi.runtime import rpc
from pulumi.runtime import config as runtime_config
from pulumi.runtime import settings
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

SECRET_SIG = rpc._special_sig_key  # the engine's marker key of a secret value
SECRET_VALUE = rpc._special_secret_sig
REDACTED = "[secret]"
ACCOUNT_ID = "123456789012"
REGION = "eu-west-1"


@dataclass
class Recorded:
    """One registered resource, as the engine saw it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    provider: str
    inputs: dict[str, Any]  # secrets still wrapped (see redacted()/plain())
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    outputs: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    @property
    def plain_inputs(self) -> dict[str, Any]:
        """Inputs with secrets unwrapped to their values (tests only)."""
        return unwrap_secrets(self.inputs)

    @property
    def redacted_inputs(self) -> dict[str, Any]:
        return redact_secrets(self.inputs)

    @property
    def is_kubernetes_object(self) -> bool:
        return self.custom and self.type.startswith("kubernetes:") and not self.type.startswith("pulumi:")

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1]

    @property
    def depends_on(self) -> set[str]:
        """URNs it waits for through its inputs and its explicit `depends_on`."""
        return {*self.dependencies, *(u for us in self.property_dependencies.values() for u in us)}


@dataclass
class Recording:
    stack: str
    project: str
    resources: list[Recorded]
    stack_outputs: dict[str, Any]
    result: Any = None  # what the program returned (compose's Platform)
    reads: list[tuple[str, str]] = field(default_factory=list)  # (type, id) looked up with .get()

    def of_type(self, type_token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_token]

    def kubernetes(self, kind: str | None = None) -> list[Recorded]:
        objs = [r for r in self.resources if r.is_kubernetes_object]
        return [r for r in objs if r.kind == kind] if kind else objs

    def k8s_object(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The plain manifest of one Kubernetes object (KeyError if absent)."""
        for r in self.kubernetes(kind):
            meta = r.plain_inputs.get("metadata", {})
            if meta.get("name") == name and (namespace is None or meta.get("namespace") == namespace):
                return r.plain_inputs
        raise KeyError(f"no {kind} named {name!r}" + (f" in {namespace!r}" if namespace else ""))

    def by_urn(self) -> dict[str, Recorded]:
        return {r.urn: r for r in self.resources}

    def children_of(self, urn: str) -> Iterator[Recorded]:
        return (r for r in self.resources if r.parent == urn)

    def prerequisites(self, urn: str) -> set[str]:
        """Every resource that exists before `urn` is created, as the engine orders them.

        A resource waits for its dependencies (explicit `depends_on` and those
        that flow in through its inputs); a child is registered only after its
        parent, and a parent only after its own dependencies. Followed
        transitively, that is everything the engine guarantees to precede it.
        """
        by_urn = self.by_urn()
        seen: set[str] = set()
        pending = [urn]
        while pending:
            resource = by_urn.get(pending.pop())
            if resource is None:
                continue
            direct = resource.depends_on
            if resource.parent:
                direct.add(resource.parent)
            for before in direct - seen:
                seen.add(before)
                pending.append(before)
        return seen

    def namespace_of(self, resource: Recorded) -> str | None:
        """The namespace a Kubernetes object lives in (None: cluster-scoped or not an object)."""
        if not resource.is_kubernetes_object:
            return None
        metadata = resource.plain_inputs.get("metadata") or {}
        return metadata.get("namespace") if isinstance(metadata, dict) else None


class RealisticMocks(pulumi_mocks.Mocks):
    """Provider answers close enough to the real ones for dependent inputs to resolve."""

    def __init__(self, stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
                 live_objects: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
                 absent: Iterable[tuple[str, str]] = ()):
        # Other stacks' outputs by fully qualified name; unnamed ones answer like a deployed stack.
        self.stack_outputs = dict(stack_outputs or {})
        # What `Resource.get(type, id)` finds on the cluster: (type token, id) -> the object's state.
        self.live_objects = dict(live_objects or {})
        # (type, id) of objects the cluster lacks: looking one up (`.get`) fails like a real read.
        self.absent = set(absent)

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        inputs = dict(args.inputs)
        typ, name = args.typ, args.name
        if args.resource_id and (typ, args.resource_id) in self.absent:
            raise LookupError(f"resource '{args.resource_id}' does not exist ({typ})")
        if args.resource_id and (typ, args.resource_id) in self.live_objects:  # a read of a live object
            return args.resource_id, {**inputs, **self.live_objects[(typ, args.resource_id)]}
        if typ.startswith("kubernetes:"):
            meta = dict(inputs.get("metadata") or {})
            meta.setdefault("name", name)
            meta.setdefault("uid", _fake_uuid(typ, name))
            outputs = {**inputs, "metadata": meta}
            ns = meta.get("namespace")
            return (f"{ns}/{meta['name']}" if ns else meta["name"]), outputs
        if typ.startswith("random:"):
            return f"{name}-id", {**inputs, "result": _fake_secret(name, int(inputs.get("length", 32)))}
        if typ.startswith("docker:"):
            image_name = str(inputs.get("imageName", name))
            image = image_name.rsplit(":", 1)[0]
            # Like a registry: another tag is another build, so another digest.
            digest = f"sha256:{hashlib.sha256(image_name.encode()).hexdigest()}"
            return f"{name}-id", {**inputs, "repoDigest": f"{image}@{digest}", "imageName": inputs.get("imageName")}
        if typ.startswith("aws:"):
            return _aws_resource(typ, name, inputs)
        if typ == STACK_REFERENCE:
            return _stack_reference(self.stack_outputs, inputs)
        return f"{name}-id", inputs

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:
        token = args.token
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            zones = [f"{REGION}{z}" for z in "abc"]
            return {"names": zones, "zoneIds": [f"euw1-az{i}" for i in (1, 2, 3)], "id": REGION}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT_ID, "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/ci", "userId": "AIDA", "id": ACCOUNT_ID}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        if token in ("aws:index/getRegion:getRegion", "aws:index/region:Region"):
            return {"name": REGION, "region": REGION, "id": REGION}
        if token == "docker:index/getRegistryImage:getRegistryImage":
            # A registry's answer for a tag: the digest of the manifest it points at today.
            name = str(args.args.get("name", ""))
            return {"name": name, "sha256Digest": f"sha256:{hashlib.sha256(name.encode()).hexdigest()}", "id": name}
        if token == "aws:iam/getPolicyDocument:getPolicyDocument":
            document = _aws_policy_document(dict(args.args))
            return {"json": document, "minifiedJson": document, "id": _short_hash(document)}
        return {}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """MockMonitor that also keeps parent, provider and dependencies of every registration."""

    def __init__(self, mocks: pulumi_mocks.Mocks):
        super().__init__(mocks)
        self.recorded: list[Recorded] = []
        self.reads: list[tuple[str, str]] = []  # (type, id) of existing objects the program looked up

    def ReadResource(self, request):  # noqa: N802 (gRPC method name)
        # `Resource.get(...)`: an object the program requires but does not own (e.g. a CRD a
        # platform team installs). Not a resource of the stack, so kept apart from `recorded`.
        response = super().ReadResource(request)
        self.reads.append((request.type, request.id))
        return response

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # Like the real engine: the root stack does not qualify its children's types.
        if parent and parent.split("::")[2] == "pulumi:pulumi:Stack":
            parent = ""
        return super().make_urn(parent, type_, name)

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        registration = self.resources.get(response.urn)
        inputs = rpc.deserialize_properties(request.object) if registration else {}
        self.recorded.append(
            Recorded(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent,
                provider=request.provider,
                inputs=inputs,
                # Sets in the SDK (their order varies with the hash seed): sorted, as the order means nothing.
                dependencies=sorted(request.dependencies),
                property_dependencies={
                    k: sorted(v.urns) for k, v in sorted(request.propertyDependencies.items())
                },
                outputs=dict(registration.state) if registration else {},
                id=(registration.id or "") if registration and request.custom else "",
            )
        )
        return response



def record(
    program: Callable[[], Any],
    *,
    stack: str = "test",
    project: str = "aquascene",
    config: Mapping[str, str] | None = None,
    secret_keys: list[str] | None = None,
    stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
    live_objects: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    absent: Iterable[tuple[str, str]] = (),
) -> Recording:
    """Run `program` under the recording engine and return what it declared.

    `config` maps full keys ("aquascene:environment") to string values, the
    way the Pulumi CLI hands config to a program. Exceptions raised by the
    program (a ConfigError, a ValueError of a component) propagate.
    `stack_outputs` answers StackReferences: stack name -> its outputs.
    `live_objects` answers reads of existing objects (`Resource.get`): (type token, id) -> state;
    an object not listed reads as found, without status (e.g. an HPA that has not reported).
    `absent`: (type, id) of objects the cluster lacks; a `.get` of one fails the way a read does.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        runtime_config.set_all_config(dict(config or {}), secret_keys or [])
        settings.set_root_resource(None)  # a fresh Stack resource for this run
        monitor = RecordingMonitor(RealisticMocks(stack_outputs, live_objects, absent))
        pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
        with _without_source_positions():
            result = _run(program)
            outputs = _run(lambda: _resolve(settings.get_root_resource().outputs))
        return Recording(
            stack=stack, project=project, resources=in_dependency_order(monitor.recorded), stack_outputs=outputs,
            result=result,
            reads=monitor.reads,
        )
    finally:
        runtime_config.set_all_config({}, [])
        loop.close()
        asyncio.set_event_loop(None)


def in_dependency_order(resources: list[Recorded]) -> list[Recorded]:
    """The resources in one order that every run of the same program gives: each after its parent,
    its provider and its dependencies (the order `pulumi stack export` keeps), ties by URN. The order
    of registration itself varies from run to run with the SDK's threads, and so would every render.
    """
    by_urn = {r.urn: r for r in resources}
    waits_for: dict[str, set[str]] = {}
    for r in resources:
        provider = r.provider.rsplit("::", 1)[0]  # a provider reference is "<urn>::<id>"
        before = {r.parent, provider, *r.depends_on}
        waits_for[r.urn] = {u for u in before if u in by_urn and u != r.urn}
    sorter = graphlib.TopologicalSorter(waits_for)
    sorter.prepare()
    ordered: list[Recorded] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        ordered.extend(by_urn[u] for u in ready)
        sorter.done(*ready)
    return ordered


@contextlib.contextmanager
def _without_source_positions() -> Iterator[None]:
    """The SDK walks the whole call stack of every registration (`traceback.extract_stack`, a file
    URI per frame) to tell the engine where a resource was declared; the recording keeps none of it,
    and it is a tenth of a stack's recording time. An empty trace is what the SDK itself sends when
    it finds no user frame."""
    capture = getattr(runtime_resource, "_get_stack_trace", None)
    if capture is None:  # another SDK version: nothing to skip
        yield
        return
    runtime_resource._get_stack_trace = source_pb2.StackTrace
    try:
        yield
    finally:
        runtime_resource._get_stack_trace = capture


def _run(program: Callable[[], Any]) -> Any:
    """Run `program` and wait for every resource registration it started."""
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    result: list[Any] = []
    _sync_await(run_pulumi_func(lambda: result.append(program())))
    value = result[0] if result else None
    return _sync_await(value) if asyncio.iscoroutine(value) else value


async def _resolve(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Stack outputs as plain values, secret ones wrapped the way the engine wraps them."""
    resolved: dict[str, Any] = {}
    for key, value in outputs.items():
        output = pulumi.Output.from_input(value)
        plain = await output.future()
        resolved[key] = {SECRET_SIG: SECRET_VALUE, "value": plain} if await output.is_secret() else plain
    return resolved


# ------------------------------------------------------------------ secrets


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


def unwrap_secrets(value: Any) -> Any:
    if is_secret(value):
        return unwrap_secrets(value["value"])
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def redact_secrets(value: Any) -> Any:
    """Secrets become the `pulumi stack export` shape, with the plaintext replaced."""
    if is_secret(value):
        return {SECRET_SIG: SECRET_VALUE, "ciphertext": REDACTED}
    if isinstance(value, dict):
        return {k: redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    return value


def restore_ints(value: Any) -> Any:
    """The engine carries every number as a float; Kubernetes wants 3, not 3.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: restore_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [restore_ints(v) for v in value]
    return value


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:7]


def _fake_uuid(*parts: str) -> str:
    h = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _fake_secret(name: str, length: int) -> str:
    """Deterministic, password-shaped: the same stack renders the same bytes every time."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    digest = hashlib.sha256(name.encode()).digest() * (length // 32 + 1)
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


# ------------------------------------------------------- stack references
#
# `pulumi.StackReference(name)` reads the resource `pulumi:pulumi:StackReference`
# with id = name; the engine answers with the stack's outputs.

STACK_REFERENCE = "pulumi:pulumi:StackReference"


def deployed_stack_outputs(stack_name: str) -> dict[str, Any]:
    """What a deployed stack of this project exports: its environment, namespace, image by digest."""
    environment = stack_name.rsplit("/", 1)[-1]
    digest = hashlib.sha256(stack_name.encode()).hexdigest()
    return {"environment": environment, "namespace": f"aquascene-{environment}",
            "image": f"ghcr.io/aquascene/content-engine:1.0.0@sha256:{digest}"}


def _stack_reference(known: Mapping[str, Mapping[str, Any]], inputs: dict[str, Any]) -> tuple[str, dict]:
    stack_name = str(inputs.get("name"))
    outputs = dict(known[stack_name]) if stack_name in known else deployed_stack_outputs(stack_name)
    return stack_name, {"name": stack_name, "outputs": outputs, "secretOutputNames": []}


# --------------------------------------------------------------------- AWS
#
# Identifiers and outputs shaped like the real provider's, so that ARNs,
# endpoints and OIDC issuers flowing into policies and kubeconfigs look the
# way they will in a real account.

_EC2_ID_PREFIX = {
    "vpc": "vpc", "subnet": "subnet", "internetGateway": "igw", "natGateway": "nat", "eip": "eipalloc",
    "routeTable": "rtb", "securityGroup": "sg", "defaultSecurityGroup": "sg", "launchTemplate": "lt",
    "flowLog": "fl", "route": "r", "routeTableAssociation": "rtbassoc",
}


def _aws_resource(typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
    module, resource = typ.split(":")[1], typ.split(":")[2]
    service = module.split("/")[0]
    kind = module.split("/")[1] if "/" in module else resource
    auto = f"{name}-{_short_hash(name)}"
    arn_prefix = f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}"
    outputs: dict[str, Any] = dict(inputs)

    if service == "s3" and kind == "bucket":
        physical = inputs.get("bucket") or auto
        outputs.update(
            bucket=physical, arn=f"arn:aws:s3:::{physical}",
            bucketDomainName=f"{physical}.s3.amazonaws.com",
            bucketRegionalDomainName=f"{physical}.s3.{REGION}.amazonaws.com", region=REGION,
        )
        return physical, {**outputs, "id": physical}
    if service == "iam":
        if kind == "openIdConnectProvider":
            host = _unwrap(inputs.get("url", "")).removeprefix("https://")
            arn = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{host}"
            return arn, {**outputs, "id": arn, "arn": arn, "url": host}
        if kind == "rolePolicy":
            role = inputs.get("role", "role")
            physical = inputs.get("name") or auto
            return f"{role}:{physical}", {**outputs, "id": f"{role}:{physical}", "name": physical}
        if kind == "rolePolicyAttachment":
            return f"{inputs.get('role')}-{_short_hash(name)}", outputs
        physical = inputs.get("name") or auto
        arn = f"arn:aws:iam::{ACCOUNT_ID}:{kind[0].lower() + kind[1:]}/{physical}"
        return physical, {**outputs, "id": physical, "name": physical, "arn": arn,
                          "uniqueId": f"AROA{_short_hash(arn).upper()}"}
    if service == "kms" and kind == "key":
        key_id = _fake_uuid(typ, name)
        return key_id, {**outputs, "id": key_id, "keyId": key_id, "arn": f"{arn_prefix}:key/{key_id}"}
    if service == "kms" and kind == "alias":
        return inputs["name"], {**outputs, "id": inputs["name"], "arn": f"{arn_prefix}:{inputs['name']}"}
    if service == "ec2" and kind in _EC2_ID_PREFIX:
        physical = f"{_EC2_ID_PREFIX[kind]}-0{_short_hash(typ + name)}{_short_hash(name)[:10]}"
        outputs.update(id=physical, arn=f"{arn_prefix}:{kind.lower()}/{physical}")
        if kind == "eip":
            outputs.update(allocationId=physical, publicIp=f"203.0.113.{int(_short_hash(name), 16) % 250 + 1}")
        if kind == "launchTemplate":
            outputs.update(latestVersion=1, defaultVersion=1, name=inputs.get("name") or auto)
        if kind in ("securityGroup", "defaultSecurityGroup"):
            outputs.update(name=inputs.get("name") or auto)
        return physical, outputs
    if service == "cloudwatch" and kind == "logGroup":
        physical = inputs.get("name") or auto
        return physical, {**outputs, "id": physical, "name": physical, "arn": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{physical}"}
    if service == "eks":
        return _aws_eks(kind, name, inputs, outputs, arn_prefix, auto)
    if service == "rds" and kind == "instance":
        physical = inputs.get("identifier") or auto
        address = f"{physical}.c{_short_hash(physical)}xyz.{REGION}.rds.amazonaws.com"
        port = int(inputs.get("port") or 5432)
        return physical, {**outputs, "id": physical, "identifier": physical, "address": address, "port": port,
                          "endpoint": f"{address}:{port}", "arn": f"{arn_prefix}:db:{physical}",
                          "resourceId": f"db-{_short_hash(physical).upper()}"}
    if service == "rds" and kind == "proxy":
        physical = inputs.get("name") or auto
        return physical, {**outputs, "id": physical, "name": physical, "arn": f"{arn_prefix}:db-proxy:{physical}",
                          "endpoint": f"{physical}.proxy-c{_short_hash(physical)}xyz.{REGION}.rds.amazonaws.com"}
    if service == "elasticache" and kind == "replicationGroup":
        physical = inputs.get("replicationGroupId") or auto
        suffix = f"{_short_hash(physical)[:6]}.euw1.cache.amazonaws.com"
        clustered = inputs.get("clusterMode") == "enabled" or int(inputs.get("numNodeGroups") or 1) > 1
        endpoints = (
            {"configurationEndpointAddress": f"clustercfg.{physical}.{suffix}", "clusterEnabled": True}
            if clustered else
            {"primaryEndpointAddress": f"master.{physical}.{suffix}",
             "readerEndpointAddress": f"replica.{physical}.{suffix}", "clusterEnabled": False}
        )
        return physical, {**outputs, **endpoints, "id": physical, "replicationGroupId": physical,
                          "port": int(inputs.get("port") or 6379), "arn": f"{arn_prefix}:replicationgroup:{physical}"}
    short = {"subnetGroup": "subgrp", "parameterGroup": "pg"}.get(kind, kind.lower())
    physical = inputs.get("name") or inputs.get("bucket") or auto
    return physical, {**outputs, "id": physical, "name": physical, "arn": f"{arn_prefix}:{short}:{physical}"}


def _aws_eks(kind: str, name: str, inputs: dict, outputs: dict, arn_prefix: str, auto: str) -> tuple[str, dict]:
    cluster = inputs.get("clusterName") or inputs.get("name") or auto
    if kind == "cluster":
        oidc_id = hashlib.sha256(cluster.encode()).hexdigest()[:32].upper()
        vpc_config = {**dict(inputs.get("vpcConfig") or {}),
                      "clusterSecurityGroupId": f"sg-0{_short_hash('eks' + cluster)}{_short_hash(cluster)[:10]}"}
        ca = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMvakNDQWVhZ0F3SUJBZ0lCQURBTkJna3Foa2lHOXcwQkFRc0ZBREFWTVJNd0VRWURWUVFERXdwcmRXSmwKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
        return cluster, {
            **outputs, "id": cluster, "name": cluster, "arn": f"{arn_prefix}:cluster/{cluster}",
            "endpoint": f"https://{oidc_id}.gr7.{REGION}.eks.amazonaws.com",
            "certificateAuthority": {"data": ca},
            "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{REGION}.amazonaws.com/id/{oidc_id}"}]}],
            "vpcConfig": vpc_config, "status": "ACTIVE", "platformVersion": "eks.1",
        }
    if kind == "nodeGroup":
        group = inputs.get("nodeGroupName") or auto
        return f"{cluster}:{group}", {**outputs, "id": f"{cluster}:{group}", "nodeGroupName": group,
                                      "arn": f"{arn_prefix}:nodegroup/{cluster}/{group}/{_fake_uuid(cluster, group)}",
                                      "status": "ACTIVE"}
    if kind == "addon":
        addon = inputs.get("addonName", name)
        return f"{cluster}:{addon}", {**outputs, "id": f"{cluster}:{addon}",
                                      "arn": f"{arn_prefix}:addon/{cluster}/{addon}/{_fake_uuid(cluster, addon)}",
                                      "addonVersion": inputs.get("addonVersion") or "v1.0.0-eksbuild.1"}
    physical = f"{cluster}:{name}"
    return physical, {**outputs, "id": physical, "arn": f"{arn_prefix}:{kind.lower()}/{cluster}/{name}"}


def _aws_policy_document(args: dict[str, Any]) -> str:
    """iam.getPolicyDocument: statements (camelCase, as the engine passes them) to IAM JSON."""
    import json

    statements = []
    for s in args.get("statements") or []:
        statement: dict[str, Any] = {"Effect": s.get("effect", "Allow")}
        if s.get("sid"):
            statement["Sid"] = s["sid"]
        if s.get("actions"):
            statement["Action"] = s["actions"]
        if s.get("resources"):
            statement["Resource"] = s["resources"]
        if s.get("principals"):
            principal: dict[str, list] = {}
            for p in s["principals"]:
                principal.setdefault(p["type"], []).extend(p["identifiers"])
            statement["Principal"] = principal
        if s.get("conditions"):
            condition: dict[str, dict] = {}
            for c in s["conditions"]:
                condition.setdefault(c["test"], {})[c["variable"]] = c["values"]
            statement["Condition"] = condition
        statements.append(statement)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _unwrap(value: Any) -> Any:
    return value["value"] if is_secret(value) else value
