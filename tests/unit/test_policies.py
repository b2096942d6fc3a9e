"""Every rule of the policy pack: a compliant and a violating case each, with the exact message.

Resources are hand-made engine-shaped properties (camelCase), evaluated through
the offline runner exactly as the analyzer would (protobuf round trip,
unknown-checking proxy, resource inputs / stack outputs).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, Severity, StackValidationPolicy
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from policies.aquascene_policies import BY_NAME, EXEMPT_PREFIX, RULES, build_policies
from tooling.policy import PackConfig, ResourceState, evaluate, parse_pack_config

NS = "aquascene-test"
STACK = "urn:pulumi:test::aquascene::"


def urn(type_: str, name: str) -> str:
    return f"{STACK}{type_}::{name}"


def state(type_: str, name: str, inputs: dict[str, Any], deps: dict[str, list[str]] | None = None) -> ResourceState:
    return ResourceState(urn=urn(type_, name), type=type_, custom=True, inputs=inputs, outputs={},
                         property_dependencies=deps or {})


# ----------------------------------------------------------- kubernetes builders

LABELS = {"app.kubernetes.io/name": "api", "app.kubernetes.io/instance": "api-test"}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def good_container(name: str = "api") -> dict[str, Any]:
    return {
        "name": name,
        "image": "ghcr.io/aquascene/content-engine:1.0.0@sha256:" + "a" * 64,
        "ports": [{"name": "http", "containerPort": 8000}],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "128Mi"},
                      "limits": {"memory": "512Mi", "ephemeral-storage": "1Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
    }


def good_pod_spec() -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [good_container()],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def meta(name: str, namespace: str | None = NS, **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, **extra}
    if namespace is not None:
        m["namespace"] = namespace
    return m


def deployment(
    mutate: Callable[[dict[str, Any]], None] | None = None,
    name: str = "api",
    replicas: int | None = 1,
    annotations: dict[str, str] | None = None,
    kind: str = "Deployment",
) -> ResourceState:
    pod = good_pod_spec()
    spec: dict[str, Any] = {
        "selector": {"matchLabels": dict(LABELS)},
        "template": {"metadata": {"labels": dict(LABELS)}, "spec": pod},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = f"{name}-headless"
    obj = {"apiVersion": "apps/v1", "kind": kind, "metadata": meta(name), "spec": spec}
    if annotations:
        obj["metadata"]["annotations"] = annotations
    if mutate:
        mutate(obj)
    return state(f"kubernetes:apps/v1:{kind}", name, obj)


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def container(obj: dict[str, Any]) -> dict[str, Any]:
    return pod(obj)["containers"][0]


def sc(obj: dict[str, Any]) -> dict[str, Any]:
    return container(obj)["securityContext"]


def k8s(kind: str, name: str, api: str, body: dict[str, Any] | None = None, namespace: str | None = NS,
        **metadata: Any) -> ResourceState:
    group_version = api if "/" in api else f"core/{api}"
    obj = {"apiVersion": api, "kind": kind, "metadata": meta(name, namespace, **metadata), **(body or {})}
    return state(f"kubernetes:{group_version}:{kind}", name, obj)


def network_policy(name: str = "api", selector: dict[str, Any] | None = None, namespace: str = NS,
                   types: list[str] | None = None, rules: bool = True) -> ResourceState:
    spec: dict[str, Any] = {
        "podSelector": selector if selector is not None else {"matchLabels": dict(LABELS)},
        "policyTypes": types or ["Ingress", "Egress"],
    }
    if rules:
        spec["ingress"] = [{"from": [{"namespaceSelector": {}}]}]
    return k8s("NetworkPolicy", name, "networking.k8s.io/v1", {"spec": spec}, namespace=namespace)


def hpa(min_replicas: int | None = 3, target: str = "api") -> ResourceState:
    spec: dict[str, Any] = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                            "maxReplicas": 10}
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    return k8s("HorizontalPodAutoscaler", target, "autoscaling/v2", {"spec": spec})


def pdb(**spec: Any) -> ResourceState:
    return k8s("PodDisruptionBudget", "api", "policy/v1", {"spec": {"selector": {"matchLabels": dict(LABELS)}, **spec}})


def spread(obj: dict[str, Any]) -> None:
    pod(obj)["topologySpreadConstraints"] = [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": dict(LABELS)}}
    ]


def setter(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation of the Deployment: 'pod.hostNetwork', 'sc.privileged', 'container.image', 'spec.replicas'."""
    where, key = path.split(".", 1)

    def mutate(obj: dict[str, Any]) -> None:
        target = {"pod": pod, "sc": sc, "container": container, "spec": lambda o: o["spec"],
                  "podsc": lambda o: pod(o)["securityContext"]}[where](obj)
        if value is DELETE:
            target.pop(key, None)
        else:
            target[key] = value

    return mutate


DELETE = object()


def chain(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        for m in mutations:
            m(obj)

    return mutate


DEP = f"Deployment {NS}/api"
CONTAINER = 'container "api"'


# ------------------------------------------------------------------ AWS builders

BUCKET = "aws:s3/bucket:Bucket"


def bucket(name: str = "backups", *siblings: str, **sibling_props: Any) -> list[ResourceState]:
    """A bucket and the v7 sibling resources named in `siblings` (sse, versioning, pab, lifecycle)."""
    b = ResourceState(urn=urn(BUCKET, name), type=BUCKET, custom=True, inputs={"bucket": f"aq-{name}"},
                      outputs={"bucket": f"aq-{name}", "id": f"aq-{name}", "arn": f"arn:aws:s3:::aq-{name}"})
    types = {
        "sse": ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]}),
        "versioning": ("aws:s3/bucketVersioning:BucketVersioning", {"versioningConfiguration": {"status": "Enabled"}}),
        "pab": ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                {f: True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")}),
        "lifecycle": ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                      {"rules": [{"id": "expire", "status": "Enabled"}]}),
    }
    out = [b]
    for sibling in siblings:
        type_, props = types[sibling]
        props = {**copy.deepcopy(props), **sibling_props.get(sibling, {}), "bucket": b.outputs["id"]}
        out.append(state(type_, f"{name}-{sibling}", props, deps={"bucket": [b.urn]}))
    return out


ALL_SIBLINGS = ("sse", "versioning", "pab", "lifecycle")
RDS = "aws:rds/instance:Instance"


def rds(**overrides: Any) -> ResourceState:
    props = {"storageEncrypted": True, "multiAz": True, "backupRetentionPeriod": 30, "publiclyAccessible": False,
             "deletionProtection": True, "instanceClass": "db.m5.large"}
    props.update(overrides)
    return state(RDS, "db", {k: v for k, v in props.items() if v is not DELETE})


EKS = "aws:eks/cluster:Cluster"


def eks(**overrides: Any) -> ResourceState:
    props = {
        "vpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": False, "subnetIds": ["s1", "s2"]},
        "encryptionConfig": {"provider": {"keyArn": "arn:aws:kms:eu-west-1:1:key/k"}, "resources": ["secrets"]},
        "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
    }
    props.update(overrides)
    return state(EKS, "eks", {k: v for k, v in props.items() if v is not DELETE})


SG = "aws:ec2/securityGroup:SecurityGroup"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def security_group(name: str, *ingress: dict[str, Any]) -> ResourceState:
    return ResourceState(urn=urn(SG, name), type=SG, custom=True, inputs={"ingress": list(ingress)},
                         outputs={"ingress": list(ingress), "id": f"sg-{name}"})


def ingress_rule(name: str, group: ResourceState, **props: Any) -> ResourceState:
    return state(SG_INGRESS, name, {"securityGroupId": group.outputs["id"], **props},
                 deps={"securityGroupId": [group.urn]})


def iam_policy(*statements: dict[str, Any], type_: str = "aws:iam/policy:Policy") -> ResourceState:
    import json

    return state(type_, "p", {"policy": json.dumps({"Version": "2012-10-17", "Statement": list(statements)})})


# ------------------------------------------------------------------ the table


@dataclass
class Case:
    rule: str
    resources: list[ResourceState]
    messages: list[str] = field(default_factory=list)  # exact; empty: compliant
    config: dict[str, Any] | None = None
    id: str = ""


def gateway(listeners: list[dict[str, Any]], name: str = "public", namespace: str = "aquascene-test-gateway") -> ResourceState:
    return k8s("Gateway", name, "gateway.networking.k8s.io/v1", {"spec": {"gatewayClassName": "eg", "listeners": listeners}},
               namespace=namespace)


def http_route(rules: list[dict[str, Any]], section: str | None = None, name: str = "api") -> ResourceState:
    parent: dict[str, Any] = {"name": "public", "namespace": "aquascene-test-gateway"}
    if section:
        parent["sectionName"] = section
    return k8s("HTTPRoute", name, "gateway.networking.k8s.io/v1",
               {"spec": {"parentRefs": [parent], "hostnames": ["api.example"], "rules": rules}})


HTTPS = {"name": "https", "protocol": "HTTPS", "port": 443,
         "tls": {"mode": "Terminate", "certificateRefs": [{"name": "public-tls"}]}}
HTTP = {"name": "http", "protocol": "HTTP", "port": 80}
REDIRECT = {"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}
BACKEND = {"backendRefs": [{"name": "api", "port": 8000}]}


def ingress(tls: list[dict[str, Any]] | None, annotations: dict[str, str] | None = None) -> ResourceState:
    spec: dict[str, Any] = {"rules": [{"host": "api.example", "http": {"paths": []}}]}
    if tls is not None:
        spec["tls"] = tls
    extra = {"annotations": annotations} if annotations else {}
    return k8s("Ingress", "api", "networking.k8s.io/v1", {"spec": spec}, **extra)


def headless(name: str = "db-headless", cluster_ip: str | None = "None") -> ResourceState:
    spec: dict[str, Any] = {"selector": dict(LABELS), "ports": [{"port": 5432}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return k8s("Service", name, "v1", {"spec": spec})


def statefulset(service: str | None = "db-headless") -> ResourceState:
    def mutate(obj: dict[str, Any]) -> None:
        if service is None:
            obj["spec"].pop("serviceName")
        else:
            obj["spec"]["serviceName"] = service

    return deployment(mutate, name="db", kind="StatefulSet")


def configmap(data: dict[str, str]) -> ResourceState:
    return k8s("ConfigMap", "settings", "v1", {"data": data})


def env(*pairs: tuple[str, Any]) -> Callable[[dict[str, Any]], None]:
    return setter("container.env", [{"name": n, "value": v} for n, v in pairs])


def dset(name: str, mutate: Callable[[dict[str, Any]], None] | None = None, **annotations: str) -> ResourceState:
    return deployment(mutate, name=name, replicas=None, kind="DaemonSet",
                      annotations={EXEMPT_PREFIX + k.replace("_", "-"): v for k, v in annotations.items()} or None)


CASES: list[Case] = [
    # ---------------------------------------------------------------- pods
    Case("pod-run-as-non-root", [deployment()]),
    Case("pod-run-as-non-root",
         [deployment(chain(setter("podsc.runAsNonRoot", DELETE), setter("sc.runAsNonRoot", DELETE)))],
         [f"{DEP}: {CONTAINER} does not set runAsNonRoot: true"], id="unset"),
    Case("pod-run-as-non-root", [deployment(setter("sc.runAsUser", 0))],
         [f"{DEP}: {CONTAINER} runs as UID 0"], id="uid0"),
    Case("pod-no-privileged", [deployment()]),
    Case("pod-no-privileged", [deployment(setter("sc.privileged", True))], [f"{DEP}: {CONTAINER} is privileged"]),
    Case("pod-no-privilege-escalation", [deployment()]),
    Case("pod-no-privilege-escalation", [deployment(setter("sc.allowPrivilegeEscalation", DELETE))],
         [f"{DEP}: {CONTAINER} does not set allowPrivilegeEscalation: false"]),
    Case("pod-read-only-root-filesystem", [deployment()]),
    Case("pod-read-only-root-filesystem", [deployment(setter("sc.readOnlyRootFilesystem", False))],
         [f"{DEP}: {CONTAINER} does not set readOnlyRootFilesystem: true"]),
    Case("pod-drop-all-capabilities",
         [deployment(setter("sc.capabilities", {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}))]),
    Case("pod-drop-all-capabilities", [deployment(setter("sc.capabilities", {"drop": ["NET_RAW"], "add": ["SYS_ADMIN"]}))],
         [f"{DEP}: {CONTAINER} does not drop ALL capabilities",
          f"{DEP}: {CONTAINER} adds capabilities SYS_ADMIN (allowed: NET_BIND_SERVICE)"]),
    Case("pod-drop-all-capabilities", [deployment(setter("sc.capabilities", {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}))],
         [f"{DEP}: {CONTAINER} adds capabilities NET_BIND_SERVICE (allowed: none)"],
         config={"allowedCapabilities": []}, id="config"),
    Case("pod-seccomp-runtime-default",
         [deployment(chain(setter("podsc.seccompProfile", DELETE), setter("sc.seccompProfile", {"type": "Localhost", "localhostProfile": "p.json"})))]),
    Case("pod-seccomp-runtime-default",
         [deployment(chain(setter("podsc.seccompProfile", DELETE), setter("sc.seccompProfile", DELETE)))],
         [f"{DEP}: {CONTAINER} seccompProfile is unset, not RuntimeDefault"], id="unset"),
    Case("pod-seccomp-runtime-default", [deployment(setter("sc.seccompProfile", {"type": "Unconfined"}))],
         [f"{DEP}: {CONTAINER} seccompProfile is Unconfined, not RuntimeDefault"], id="unconfined"),
    Case("pod-no-host-network", [deployment(setter("pod.hostNetwork", False))]),
    Case("pod-no-host-network", [deployment(setter("pod.hostNetwork", True))],
         [f"{DEP}: pod shares the node's network namespace (hostNetwork: true)"]),
    Case("pod-no-host-pid", [deployment()]),
    Case("pod-no-host-pid", [deployment(setter("pod.hostPID", True))],
         [f"{DEP}: pod shares the node's process namespace (hostPID: true)"]),
    Case("pod-no-host-ipc", [deployment()]),
    Case("pod-no-host-ipc", [deployment(setter("pod.hostIPC", True))],
         [f"{DEP}: pod shares the node's IPC namespace (hostIPC: true)"]),
    Case("pod-no-host-path", [deployment()]),
    Case("pod-no-host-path", [deployment(setter("pod.volumes", [{"name": "logs", "hostPath": {"path": "/var/log"}}]))],
         [f'{DEP}: volume "logs" mounts host path /var/log']),
    Case("pod-no-host-port", [deployment()]),
    Case("pod-no-host-port", [deployment(setter("container.ports", [{"containerPort": 8000, "hostPort": 8080}]))],
         [f"{DEP}: {CONTAINER} binds host port 8080"]),
    Case("pod-no-service-account-token", [deployment()]),
    Case("pod-no-service-account-token", [deployment(setter("pod.automountServiceAccountToken", DELETE))],
         [f"{DEP}: pod does not set automountServiceAccountToken: false"]),
    Case("no-default-namespace", [configmap({}), k8s("Namespace", NS, "v1", namespace=None),
                                  k8s("ClusterRole", "reader", "rbac.authorization.k8s.io/v1", namespace=None)]),
    Case("no-default-namespace", [k8s("ConfigMap", "settings", "v1", namespace=None)],
         ["ConfigMap settings: metadata.namespace is not set (the provider's default namespace applies)"], id="unset"),
    Case("no-default-namespace", [k8s("ConfigMap", "settings", "v1", namespace="default")],
         ["ConfigMap default/settings: is in the default namespace"], id="default"),
    Case("no-default-namespace", [k8s("Tenant", "t1", "example.io/v1", namespace=None)],
         config={"clusterScopedKinds": ["Tenant"]}, id="config"),
    Case("pod-resources", [deployment()]),
    Case("pod-resources", [deployment(setter("container.resources", {"requests": {"cpu": "100m"}}))],
         [f"{DEP}: {CONTAINER} has no resources.requests.memory, resources.limits.memory"]),
    Case("pod-ephemeral-storage", [deployment(), deployment(setter("pod.initContainers", [good_container("init")]),
                                                            name="with-init")]),
    Case("pod-ephemeral-storage", [deployment(setter("container.resources", {
        "requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}))],
         [f'{DEP}: {CONTAINER} has no resources.requests.ephemeral-storage and no resources.limits.ephemeral-storage']),
    Case("pod-ephemeral-storage", [deployment(setter("pod.initContainers", [{
        **good_container("init"), "resources": {"requests": {"cpu": "10m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
                                                "limits": {"memory": "64Mi"}}}]))],
         [f'{DEP}: init container "init" has no resources.limits.ephemeral-storage'], id="init-limit"),
    Case("pod-probes", [deployment(), k8s("Job", "migrate", "batch/v1",
                                          {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "x:1"}]}}}})]),
    Case("pod-probes", [deployment(setter("container.readinessProbe", DELETE))],
         [f"{DEP}: {CONTAINER} has no readinessProbe"], id="missing"),
    Case("pod-probes", [deployment(setter("container.readinessProbe", {"httpGet": {"path": "/health", "port": "http"}}))],
         [f"{DEP}: {CONTAINER} has identical liveness and readiness probes"], id="identical"),
    Case("image-tag-pinned", [deployment(setter("container.image", "ghcr.io/aquascene/content-engine:1.0.0")),
                              deployment(setter("container.image", "registry:5000/app@sha256:" + "b" * 64), name="d")]),
    Case("image-tag-pinned", [deployment(setter("container.image", "registry:5000/nginx"))],
         [f'{DEP}: {CONTAINER} image "registry:5000/nginx" has no tag'], id="untagged"),
    Case("image-tag-pinned", [deployment(setter("container.image", "nginx:latest"))],
         [f'{DEP}: {CONTAINER} image "nginx:latest" uses the "latest" tag'], id="latest"),
    Case("image-digest-pinned", [deployment()]),
    Case("image-digest-pinned", [deployment(setter("container.image", "redis:7.4.6"))],
         [f'{DEP}: {CONTAINER} image "redis:7.4.6" is not pinned by digest (@sha256:...)']),
    Case("image-not-denied", [deployment(setter("container.image", "docker.io/pgsty/minio:RELEASE.2026-08-04T00-00-00Z"))]),
    Case("image-not-denied", [deployment(setter("container.image", "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"))],
         [f'{DEP}: {CONTAINER} image "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z" is denied (*/minio/minio): '
          "MinIO's repository is archived and its last image carries GHSA-jjjj-jwhf-8rgr; use a maintained S3-compatible server"],
         id="minio"),
    Case("image-not-denied", [deployment(setter("container.image", "docker.io/bitnami/postgresql:16.4.0"))],
         [f'{DEP}: {CONTAINER} image "docker.io/bitnami/postgresql:16.4.0" is denied (bitnami/*:[0-9]*): '
          "Bitnami's versioned images froze in August 2025; use the upstream official or an operator image"],
         id="bitnami"),
    Case("image-not-denied", [deployment(setter("container.image", "redis:7.4.6"))],
         [f'{DEP}: {CONTAINER} image "redis:7.4.6" is denied (redis:7.*): use valkey'],
         config={"deniedImages": [{"pattern": "redis:7.*", "reason": "use valkey"}]}, id="config"),
    # ----------------------------------------------------------- workloads
    Case("workload-min-replicas", [deployment(replicas=2), deployment(replicas=None, name="scaled"), hpa(3, "scaled")]),
    Case("workload-min-replicas", [deployment(replicas=None)],
         [f"{DEP}: replicas is 1, fewer than the required 2"], id="default-one"),
    Case("workload-min-replicas", [deployment(replicas=None), hpa(1)],
         [f"{DEP}: HorizontalPodAutoscaler api minReplicas is 1, fewer than the required 2"], id="hpa"),
    Case("workload-min-replicas", [deployment(replicas=2)],
         [f"{DEP}: replicas is 2, fewer than the required 3"], config={"minReplicas": 3}, id="config"),
    Case("workload-pdb", [deployment(replicas=3), pdb(maxUnavailable=1), deployment(name="single", replicas=1)]),
    Case("workload-pdb", [deployment(replicas=3)],
         [f"{DEP}: runs 3 replicas but no PodDisruptionBudget selects its pods"]),
    Case("pdb-allows-disruption", [deployment(replicas=3), pdb(minAvailable=2)]),
    Case("pdb-allows-disruption", [deployment(replicas=3), pdb(maxUnavailable=0)],
         [f"PodDisruptionBudget {NS}/api: maxUnavailable 0 allows no voluntary disruption"], id="max0"),
    Case("pdb-allows-disruption", [deployment(replicas=3), pdb(minAvailable="100%")],
         [f"PodDisruptionBudget {NS}/api: minAvailable 100% allows no voluntary disruption"], id="100pct"),
    Case("pdb-allows-disruption", [deployment(replicas=None), hpa(3), pdb(minAvailable=3)],
         [f"PodDisruptionBudget {NS}/api: minAvailable 3 leaves no disruption to {DEP} "
          "(HorizontalPodAutoscaler api minReplicas 3)"], id="min-eq-replicas"),
    Case("workload-spread", [deployment(spread, replicas=3), deployment(name="one", replicas=1)]),
    Case("workload-spread", [deployment(replicas=3)],
         [f"{DEP}: 3 replicas without podAntiAffinity or topologySpreadConstraints"]),
    Case("hpa-owns-replicas", [deployment(replicas=None), hpa(3), deployment(name="fixed", replicas=2)]),
    Case("hpa-owns-replicas", [deployment(replicas=3), hpa(3)],
         [f"{DEP}: sets spec.replicas although HorizontalPodAutoscaler api manages its scale"]),
    Case("statefulset-headless-service", [statefulset(), headless()]),
    Case("statefulset-headless-service", [statefulset(None)],
         [f"StatefulSet {NS}/db: spec.serviceName is not set"], id="unset"),
    Case("statefulset-headless-service", [statefulset()],
         [f'StatefulSet {NS}/db: its service "db-headless" is not declared in this stack'], id="absent"),
    Case("statefulset-headless-service", [statefulset(), headless(cluster_ip=None)],
         [f'StatefulSet {NS}/db: its service "db-headless" is not headless (spec.clusterIP: None)'], id="not-headless"),
    Case("selector-matches-template", [deployment(), statefulset()]),
    Case("selector-matches-template",
         [deployment(lambda o: o["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "web"}))],
         [f"{DEP}: spec.selector does not match the pod template labels"], id="mismatch"),
    Case("selector-matches-template", [deployment(lambda o: o["spec"].pop("selector"))],
         [f"{DEP}: spec.selector is missing or empty"], id="missing"),
    Case("no-bare-pods", [deployment()]),
    Case("no-bare-pods", [k8s("Pod", "debug", "v1", {"spec": good_pod_spec()})],
         [f"Pod {NS}/debug: is a bare Pod, not managed by a controller"]),
    # ------------------------------------------------------------- network
    Case("pod-network-policy", [deployment(), network_policy(),
                                network_policy("default-deny-all", selector={}, rules=False)]),
    Case("pod-network-policy", [deployment(), network_policy("default-deny-all", selector={}, rules=False),
                                network_policy(namespace="elsewhere")],
         [f"{DEP}: no NetworkPolicy of its own selects its pods"]),
    Case("namespace-default-deny", [k8s("Namespace", NS, "v1", namespace=None),
                                    network_policy("default-deny-all", selector={}, rules=False)]),
    Case("namespace-default-deny", [k8s("Namespace", NS, "v1", namespace=None),
                                    network_policy("default-deny-all", selector={}, rules=False, types=["Ingress"])],
         [f"Namespace {NS}: no default-deny NetworkPolicy (podSelector: {{}}, policyTypes: [Ingress, Egress], no rules)"]),
    Case("namespace-pod-security-restricted",
         [k8s("Namespace", NS, "v1", namespace=None, labels={"pod-security.kubernetes.io/enforce": "restricted"})]),
    Case("namespace-pod-security-restricted",
         [k8s("Namespace", NS, "v1", namespace=None, labels={"pod-security.kubernetes.io/enforce": "baseline"})],
         [f"Namespace {NS}: pod-security.kubernetes.io/enforce is baseline, not restricted"]),
    Case("service-type-restricted", [k8s("Service", "api", "v1", {"spec": {"type": "ClusterIP"}}),
                                     k8s("Service", "envoy", "v1", {"spec": {"type": "LoadBalancer"}},
                                         namespace="aquascene-prod-gateway")]),
    Case("service-type-restricted", [k8s("Service", "api", "v1", {"spec": {"type": "NodePort"}})],
         [f"Service {NS}/api: type NodePort is reserved for the gateway (allowed: aquascene-*-gateway/*)"]),
    Case("route-tls", [ingress([{"hosts": ["api.example"], "secretName": "api-tls"}]), gateway([HTTPS, HTTP]),
                       http_route([REDIRECT], section="http", name="redirect"), http_route([BACKEND], section="https")]),
    Case("route-tls", [ingress(None)], [f"Ingress {NS}/api: serves plain HTTP (spec.tls is empty)"], id="ingress-no-tls"),
    Case("route-tls", [ingress([{"hosts": ["www.example"]}])],
         [f"Ingress {NS}/api: host api.example has no spec.tls entry",
          f"Ingress {NS}/api: the tls entry for www.example has no secretName"], id="ingress-host"),
    Case("route-tls", [gateway([HTTP, {**HTTPS, "tls": {"mode": "Terminate"}}])],
         ['Gateway aquascene-test-gateway/public: HTTPS listener "https" has no tls.certificateRefs'], id="gw-cert"),
    Case("route-tls", [gateway([HTTP])], ["Gateway aquascene-test-gateway/public: has no HTTPS listener"], id="gw-http"),
    Case("route-tls", [gateway([HTTPS, HTTP]), http_route([BACKEND])],
         [f'HTTPRoute {NS}/api: attached to plain-HTTP listener "http" (port 80) of Gateway '
          "aquascene-test-gateway/public without redirecting to https"], id="route"),
    Case("no-nginx-snippets", [ingress([{"hosts": ["api.example"], "secretName": "t"}],
                                       {"nginx.ingress.kubernetes.io/proxy-body-size": "10m"})]),
    Case("no-nginx-snippets", [ingress(None, {"nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers x;"})],
         [f"Ingress {NS}/api: annotation nginx.ingress.kubernetes.io/configuration-snippet injects raw nginx configuration"]),
    # ------------------------------------------------------------- secrets
    Case("secrets-as-files", [deployment(env(("PASSWORD_FILE", "/run/secrets/pw")))]),
    Case("secrets-as-files",
         [deployment(setter("container.env", [{"name": "DB_PASSWORD",
                                                "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]))],
         [f"{DEP}: {CONTAINER} env DB_PASSWORD reads Secret db into the environment"], id="env"),
    Case("secrets-as-files",
         [deployment(setter("container.envFrom", [{"secretRef": {"name": "db"}}]))],
         [f"{DEP}: {CONTAINER} envFrom loads Secret db into the environment"], id="envFrom"),
    Case("no-secret-env-literals",
         [deployment(env(("LOG_LEVEL", "INFO"), ("PASSWORD_FILE", "/run/secrets/pw"), ("TOKEN_TTL", "3600"),
                         ("DB_PASSWORD", "$(DB_PASSWORD_FROM_SECRET)"), ("REDIS_URL", "redis://redis:6379/0")))]),
    Case("no-secret-env-literals", [deployment(env(("DB_PASSWORD", "hunter2")))],
         [f"{DEP}: {CONTAINER} env DB_PASSWORD holds a value under a secret-looking name as a literal; mount it from a Secret as a file"],
         id="name"),
    Case("no-secret-env-literals", [deployment(env(("DATABASE_URL", "postgres://app:s3cret@db:5432/app")))],
         [f"{DEP}: {CONTAINER} env DATABASE_URL holds a URL with an embedded password as a literal; mount it from a Secret as a file"],
         id="url"),
    Case("no-secret-env-literals",
         [deployment(env(("UPSTREAM", {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "x"})))],
         [f"{DEP}: {CONTAINER} env UPSTREAM holds a secret value as a literal; mount it from a Secret as a file"], id="redacted"),
    Case("no-secret-env-literals", [deployment(env(("SIGNING_TOKEN_HEADER", "X-Token")))],
         config={"allowedNames": ["*_HEADER"]}, id="config"),
    Case("no-secrets-in-configmaps",
         [configmap({"LOG_LEVEL": "INFO", "SECRET_NAME": "db-credentials",
                     "grafana.ini": "[security]\nadmin_password = $__file{/etc/secrets/admin}\n",
                     "start.sh": '#!/bin/sh\nPGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h db\n'})]),
    Case("no-secrets-in-configmaps", [configmap({"API_KEY": "abc123def"})],
         [f"ConfigMap {NS}/settings: key API_KEY holds a value under a secret-looking name; move it to a Secret"],
         id="key"),
    Case("no-secrets-in-configmaps", [configmap({"app.ini": "[db]\npassword = hunter2\nhost = db\n"})],
         [f"ConfigMap {NS}/settings: key app.ini line 2 holds a password setting in plain text; move it to a Secret"],
         id="file"),
    Case("no-secrets-in-configmaps", [configmap({"id": "AKIAABCDEFGHIJKLMNOP"})],
         [f"ConfigMap {NS}/settings: key id holds an AWS access key id; move it to a Secret"], id="aws-key"),
    # ------------------------------------------------------------------ AWS
    Case("s3-encryption", bucket("backups", "sse")),
    Case("s3-encryption", bucket("backups"),
         ["Bucket backups: no BucketServerSideEncryptionConfiguration sets default encryption"], id="absent"),
    Case("s3-encryption", bucket("backups", "sse", sse={"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]}),
         ["Bucket backups: default encryption AES256 is not one of aws:kms"], config={"allowedAlgorithms": ["aws:kms"]},
         id="config"),
    Case("s3-versioning", bucket("backups", "versioning")),
    Case("s3-versioning", bucket("backups", "versioning", versioning={"versioningConfiguration": {"status": "Suspended"}}),
         ["Bucket backups: versioning is Suspended; add a BucketVersioning with status Enabled"]),
    Case("s3-public-access-block", bucket("backups", "pab")),
    Case("s3-public-access-block", bucket("backups"), ["Bucket backups: no BucketPublicAccessBlock"], id="absent"),
    Case("s3-public-access-block", bucket("backups", "pab", pab={"restrictPublicBuckets": False, "blockPublicPolicy": False}),
         ["Bucket backups: the public access block does not set blockPublicPolicy, restrictPublicBuckets"], id="flags"),
    Case("s3-lifecycle", bucket("backups", "lifecycle")),
    Case("s3-lifecycle", bucket("backups", "lifecycle", lifecycle={"rules": [{"id": "x", "status": "Disabled"}]}),
         ["Bucket backups: no BucketLifecycleConfiguration with an Enabled rule"]),
    Case("rds-encrypted", [rds()]),
    Case("rds-encrypted", [rds(storageEncrypted=DELETE)], ["Instance db: storageEncrypted is not true"]),
    Case("rds-multi-az", [rds()]),
    Case("rds-multi-az", [rds(multiAz=False)], ["Instance db: multiAz is not true"]),
    Case("rds-backup-retention", [rds(backupRetentionPeriod=7)]),
    Case("rds-backup-retention", [rds(backupRetentionPeriod=DELETE)],
         ["Instance db: backupRetentionPeriod is not set (minimum 7 days)"], id="unset"),
    Case("rds-backup-retention", [rds(backupRetentionPeriod=14)],
         ["Instance db: backupRetentionPeriod 14 is below 30 days"], config={"minDays": 30}, id="config"),
    Case("rds-not-public", [rds()]),
    Case("rds-not-public", [rds(publiclyAccessible=True)], ["Instance db: publiclyAccessible is true"]),
    Case("rds-deletion-protection", [rds()]),
    Case("rds-deletion-protection", [rds(deletionProtection=False)], ["Instance db: deletionProtection is not true"]),
    Case("eks-private-endpoint", [eks(), eks(vpcConfig={"endpointPrivateAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]})]),
    Case("eks-private-endpoint", [eks(vpcConfig={"subnetIds": ["s1"]})],
         ["Cluster eks: vpcConfig.endpointPrivateAccess is not true",
          "Cluster eks: the public API endpoint is open to 0.0.0.0/0; set endpointPublicAccess: false or restrict publicAccessCidrs"]),
    Case("eks-secrets-encryption", [eks()]),
    Case("eks-secrets-encryption", [eks(encryptionConfig=DELETE)],
         ["Cluster eks: encryptionConfig does not encrypt secrets with a KMS key"]),
    Case("eks-control-plane-logging", [eks()]),
    Case("eks-control-plane-logging", [eks(enabledClusterLogTypes=["api"])],
         ["Cluster eks: control-plane log types not enabled: audit, authenticator"]),
    Case("sg-no-public-ingress",
         [security_group("web-lb", {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}),
          security_group("db", {"protocol": "tcp", "fromPort": 5432, "toPort": 5432, "cidrBlocks": ["10.0.0.0/16"]})]),
    Case("sg-no-public-ingress",
         [security_group("web", {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]})],
         ["SecurityGroup web: ingress tcp 22 from 0.0.0.0/0 (only a load balancer's tcp 80, 443 may be public)"], id="ssh"),
    Case("sg-no-public-ingress",
         [lb := security_group("public-lb"), ingress_rule("all", lb, cidrIpv6="::/0", ipProtocol="-1")],
         ["SecurityGroupIngressRule all: ingress all traffic from ::/0 (only single tcp ports 80, 443 may be public)"],
         id="rule"),
    Case("iam-no-wildcard-actions",
         [iam_policy({"Effect": "Allow", "Action": ["s3:GetObject", "s3:List*"], "Resource": "arn:aws:s3:::b/*"},
                     {"Effect": "Deny", "Action": "*", "Resource": "*"})]),
    Case("iam-no-wildcard-actions",
         [iam_policy({"Effect": "Allow", "Action": ["s3:*", "kms:Decrypt"], "Resource": "*"},
                     {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, type_="aws:iam/rolePolicy:RolePolicy")],
         ['RolePolicy p: policy statement 0 allows "s3:*"', "RolePolicy p: policy statement 1 allows NotAction (everything else)"]),
    Case("kms-key-rotation", [state("aws:kms/key:Key", "k", {"enableKeyRotation": True}),
                              state("aws:kms/key:Key", "sign", {"customerMasterKeySpec": "RSA_2048"})]),
    Case("kms-key-rotation", [state("aws:kms/key:Key", "k", {})], ["Key k: enableKeyRotation is not true"]),
    # ---------------------------------------------------------- exemptions
    Case("exemptions-valid", [dset("node-exporter", pod_no_host_network="reads node network metrics")]),
    Case("exemptions-valid", [dset("node-exporter", pod_no_host_nework="typo", pod_no_host_pid="  ")],
         [f"DaemonSet {NS}/node-exporter: annotation {EXEMPT_PREFIX}pod-no-host-nework names no exemptible rule of this pack",
          f"DaemonSet {NS}/node-exporter: annotation {EXEMPT_PREFIX}pod-no-host-pid records no reason"]),
]


def run(rule: str, resources: list[ResourceState], config: dict[str, Any] | None = None):
    """Findings of one rule (enabled) over `resources`, through the runner."""
    document = {rule: {"enforcementLevel": "mandatory", **(config or {})}}
    return evaluate(resources, parse_pack_config(document, "test"), [BY_NAME[rule].policy()])


def _case_id(case: Case) -> str:
    return f"{case.rule}-{'violation' if case.messages else 'ok'}{'-' + case.id if case.id else ''}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_rule(case: Case):
    report = run(case.rule, case.resources, case.config)
    assert [f.message for f in report.findings] == sorted(case.messages)
    assert all(f.policy == case.rule and f.level == "mandatory" for f in report.findings)


def test_every_rule_has_a_compliant_and_a_violating_case():
    compliant = {c.rule for c in CASES if not c.messages}
    violating = {c.rule for c in CASES if c.messages}
    names = {r.name for r in RULES}
    assert compliant == names and violating == names


def test_the_pack_has_at_least_30_fully_described_rules():
    assert len(RULES) >= 30
    assert len({r.name for r in RULES}) == len(RULES)
    for r in RULES:
        assert r.description and r.remediation and isinstance(r.severity, Severity), r.name
        assert r.enforcement_level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY), r.name
        assert r.category in ("pods", "workloads", "network", "secrets", "aws", "meta"), r.name
        assert len(f"{EXEMPT_PREFIX}{r.name}".split("/", 1)[1]) <= 63, r.name  # a valid annotation key
    categories = {r.category for r in RULES}
    assert {"pods", "workloads", "network", "secrets", "aws"} <= categories


def test_security_rules_are_mandatory_and_best_practices_advisory():
    levels = {r.name: r.enforcement_level for r in RULES}
    for name in ("pod-no-privileged", "pod-run-as-non-root", "no-secret-env-literals", "s3-public-access-block",
                 "rds-not-public", "iam-no-wildcard-actions", "sg-no-public-ingress", "pod-network-policy"):
        assert levels[name] == EnforcementLevel.MANDATORY, name
    for name in ("image-digest-pinned", "workload-min-replicas", "workload-spread", "pod-probes", "s3-lifecycle"):
        assert levels[name] == EnforcementLevel.ADVISORY, name


def test_policies_carry_metadata_and_config_schemas_with_defaults():
    import jsonschema

    policies = {p.name: p for p in build_policies()}
    assert set(policies) == set(BY_NAME)
    for rule in RULES:
        policy = policies[rule.name]
        assert isinstance(policy, StackValidationPolicy if rule.is_stack else ResourceValidationPolicy)
        assert policy.severity == rule.severity and policy.remediation_steps == rule.remediation
        if rule.exemptible:
            assert "exemptions" in policy.config_schema.properties
        schema = {"type": "object", "properties": rule.config_properties()}
        jsonschema.Draft7Validator.check_schema(schema)
        jsonschema.validate(rule.defaults(), schema)
    assert policies["workload-min-replicas"].config_schema.properties["minReplicas"]["default"] == 2


# ------------------------------------------------------------------ exemptions


def host_agent(**annotations: str) -> list[ResourceState]:
    return [network_policy("node-exporter"), dset("node-exporter", chain(setter("pod.hostNetwork", True), setter("pod.hostPID", True)), **annotations)]


def test_an_annotation_with_a_reason_exempts_a_resource_from_one_named_rule():
    agent = host_agent(pod_no_host_network="node metrics need the host network namespace")
    report = evaluate(agent, PackConfig())
    network = [f for f in report.findings if f.policy == "pod-no-host-network"]
    assert [(f.level, f.message) for f in network] == [(
        "exempt",
        f"exempt by annotation {EXEMPT_PREFIX}pod-no-host-network: node metrics need the host network namespace "
        f"(would be: DaemonSet {NS}/node-exporter: pod shares the node's network namespace (hostNetwork: true))",
    )]
    # Only the named rule: hostPID is still a mandatory violation.
    assert [(f.policy, f.level) for f in report.mandatory] == [("pod-no-host-pid", "mandatory")]


def test_an_exemption_without_a_reason_exempts_nothing():
    report = evaluate(host_agent(pod_no_host_network=""), PackConfig())
    assert {f.policy for f in report.mandatory} == {"pod-no-host-network", "pod-no-host-pid", "exemptions-valid"}
    assert report.exemptions == []


def test_config_exemptions_match_by_kind_and_name_globs():
    config = parse_pack_config({
        "pod-no-host-pid": {"exemptions": [{"resource": "DaemonSet/*node-exporter", "reason": "process metrics"}]},
        "pod-no-host-network": {"exemptions": [{"resource": f"{NS}/node-exporter", "reason": "host network"}]},
    }, "test")
    report = evaluate(host_agent(), config)
    assert report.mandatory == []
    assert sorted((f.policy, f.message.split(" (would be")[0]) for f in report.exemptions) == [
        ("pod-no-host-network", f"exempt by config exemption {NS}/node-exporter: host network"),
        ("pod-no-host-pid", "exempt by config exemption DaemonSet/*node-exporter: process metrics"),
    ]


def test_stack_rules_honour_exemptions_too():
    exempt = deployment(annotations={EXEMPT_PREFIX + "pod-network-policy": "isolated by a CiliumNetworkPolicy"})
    report = run("pod-network-policy", [exempt])
    assert [(f.level, f.urn) for f in report.findings] == [("exempt", exempt.urn)]


def test_aws_resources_are_exempted_by_tag():
    key = state("aws:kms/key:Key", "sign", {"tags": {EXEMPT_PREFIX + "kms-key-rotation": "imported key rotated by hand"}})
    report = run("kms-key-rotation", [key])
    assert [(f.level, f.message.split(" (would be")[0]) for f in report.findings] == [
        ("exempt", f"exempt by tag {EXEMPT_PREFIX}kms-key-rotation: imported key rotated by hand")
    ]


def test_the_exemptions_rule_itself_cannot_be_exempted():
    assert BY_NAME["exemptions-valid"].exemptible is False
    with pytest.raises(Exception, match="no such policy|exemptions"):
        parse_pack_config({"exemptions-valid": {"exemptions": [{"resource": "*", "reason": "x"}]}}, "test")


# ------------------------------------------------------------------- runtime


def test_unknown_values_during_preview_are_reported_like_the_analyzer_does():
    unknown = deployment(setter("container.image", UNKNOWN_STRING_VALUE))
    report = run("image-tag-pinned", [unknown])
    assert [(f.level, f.message) for f in report.findings] == [(
        "advisory",
        "can't run policy 'image-tag-pinned' from policy pack 'aquascene@v0.1.0' during preview: "
        "string value at .spec.template.spec.containers.0.image can't be known during preview",
    )]


def test_a_computed_namespace_is_not_reported_as_the_default_one():
    computed = k8s("ConfigMap", "settings", "v1", namespace=UNKNOWN_STRING_VALUE)
    assert run("no-default-namespace", [computed]).findings == []


def test_live_objects_are_judged_by_what_pulumi_declared_not_by_server_defaults():
    """A live Deployment always has spec.replicas; only Pulumi's field manager tells whether it was set."""
    def live(owns_replicas: bool) -> Callable[[dict[str, Any]], None]:
        fields = {"f:spec": {"f:replicas": {}} if owns_replicas else {"f:template": {}}}

        def mutate(obj: dict[str, Any]) -> None:
            obj["metadata"]["managedFields"] = [
                {"manager": "pulumi-kubernetes-3e1f", "operation": "Apply", "fieldsV1": fields},
                {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            ]

        return mutate

    assert run("hpa-owns-replicas", [deployment(live(False), replicas=4), hpa(3)]).findings == []
    assert [f.message for f in run("hpa-owns-replicas", [deployment(live(True), replicas=4), hpa(3)]).findings] == [
        f"{DEP}: sets spec.replicas although HorizontalPodAutoscaler api manages its scale"
    ]


# ------------------------------------------------- real SDK resources (engine names)


def test_aws_rules_read_the_properties_the_real_sdk_registers(run_program):
    """pulumi-aws v7 resources under the recording engine: the rules see the engine's property names."""
    import pulumi_aws as aws

    from tooling.policy import states_from_recording

    def program():
        b = aws.s3.Bucket("uploads")
        aws.s3.BucketVersioning("uploads", bucket=b.id, versioning_configuration={"status": "Enabled"})
        aws.s3.BucketServerSideEncryptionConfiguration(
            "uploads", bucket=b.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"}}])
        aws.s3.BucketPublicAccessBlock("uploads", bucket=b.id, block_public_acls=True, block_public_policy=True,
                                       ignore_public_acls=True, restrict_public_buckets=False)
        aws.s3.BucketLifecycleConfiguration("uploads", bucket=b.id, rules=[{"id": "x", "status": "Enabled"}])
        aws.rds.Instance("db", instance_class="db.t3.micro", storage_encrypted=True, multi_az=False,
                         backup_retention_period=3, publicly_accessible=True, deletion_protection=True)
        aws.eks.Cluster("eks", role_arn="arn:aws:iam::1:role/eks",
                        vpc_config={"subnet_ids": ["s1"], "endpoint_private_access": True,
                                    "endpoint_public_access": True, "public_access_cidrs": ["0.0.0.0/0"]},
                        encryption_config={"provider": {"key_arn": "arn:aws:kms:eu-west-1:1:key/k"},
                                           "resources": ["secrets"]},
                        enabled_cluster_log_types=["api", "audit"])
        lb = aws.ec2.SecurityGroup("public-lb")
        aws.vpc.SecurityGroupIngressRule("https", security_group_id=lb.id, cidr_ipv4="0.0.0.0/0",
                                         ip_protocol="tcp", from_port=443, to_port=443)
        aws.ec2.SecurityGroupRule("range", type="ingress", security_group_id=lb.id, cidr_blocks=["0.0.0.0/0"],
                                  protocol="tcp", from_port=80, to_port=443)
        aws.iam.RolePolicy("jobs", role="r", policy='{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}')
        aws.kms.Key("data", enable_key_rotation=False)

    report = evaluate(states_from_recording(run_program(program)), PackConfig())
    found = sorted((f.policy, f.message) for f in report.findings)
    assert found == [
        ("eks-control-plane-logging", "Cluster eks: control-plane log types not enabled: authenticator"),
        ("eks-private-endpoint", "Cluster eks: the public API endpoint is open to 0.0.0.0/0; "
                                 "set endpointPublicAccess: false or restrict publicAccessCidrs"),
        ("iam-no-wildcard-actions", 'RolePolicy jobs: policy statement 0 allows "s3:*"'),
        ("kms-key-rotation", "Key data: enableKeyRotation is not true"),
        ("rds-backup-retention", "Instance db: backupRetentionPeriod 3 is below 7 days"),
        ("rds-multi-az", "Instance db: multiAz is not true"),
        ("rds-not-public", "Instance db: publiclyAccessible is true"),
        ("s3-public-access-block", "Bucket uploads: the public access block does not set restrictPublicBuckets"),
        ("sg-no-public-ingress", "SecurityGroupRule range: ingress tcp 80-443 from 0.0.0.0/0 "
                                 "(only single tcp ports 80, 443 may be public)"),
    ]


def test_the_aws_components_secure_defaults_pass_every_rule(run_program):
    """The platform's own AWS components, with their defaults, comply with the pack."""
    from components.aws import (AwsTags, EksCluster, EksClusterArgs, Network, NetworkArgs, RdsPostgres,
                                RdsPostgresArgs, SecureBucket, backup_bucket_args)
    from tooling.policy import load_pack_config, states_from_recording

    def program():
        tags = AwsTags("aquascene", "prod")
        Network("net", NetworkArgs(tags=tags, cluster_name="aquascene-prod"))
        EksCluster("eks", EksClusterArgs(cluster_name="aquascene-prod", kubernetes_version="1.33",
                                         vpc_id="vpc-1", subnet_ids=["s1", "s2"], tags=tags))
        SecureBucket("backups", backup_bucket_args(tags))
        RdsPostgres("db", RdsPostgresArgs(vpc_id="vpc-1", subnet_ids=["s1", "s2"],
                                          allowed_security_group_ids=["sg-1"], tags=tags))

    from tests.conftest import REPO

    config = load_pack_config(REPO / "policies" / "config" / "prod.json")
    report = evaluate(states_from_recording(run_program(program)), config)
    assert [(f.policy, f.message) for f in report.findings] == []
