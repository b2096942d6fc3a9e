"""Creation order over the whole resource graph: what the engine guarantees to exist
before each Kubernetes object is created.

The engine sends a resource as soon as what it waits for exists; anything that
does not wait for its Namespace is sent before it and fails ("namespaces ... not
found"), retries, and at the default `--parallel` can starve the namespace
itself. Mocks cannot see that race, but they record the graph that decides it:
this is the invariant over every stack and several mixes of modes.
"""

from __future__ import annotations

import pytest

from tooling.recording import Recording

# Custom resources and the Helm chart whose release serves their API group (its CRDs): where
# a stack installs that release, every such resource must be created after it.
SERVED_BY_CHART = {
    "postgresql.cnpg.io": "cloudnative-pg",
    "barmancloud.cnpg.io": "plugin-barman-cloud",
    "cert-manager.io": "cert-manager",
    "acme.cert-manager.io": "cert-manager",
    "gateway.networking.k8s.io": "gateway-crds-helm",
    "gateway.envoyproxy.io": "gateway-crds-helm",
}

STACKS = {
    "dev": ("dev", None),
    "staging": ("staging", None),
    "prod": ("prod", None),
    "dev-operator-and-logs": ("dev", {
        "postgres": {"mode": "cloudnative-pg", "instances": 1, "install_operator": True},
        "monitoring": {"alerting": True, "logs": True},
    }),
    "staging-ingress-api-cluster-redis": ("staging", {
        "ingress": {"mode": "ingress"},
        "redis": {"mode": "cluster"},
        "backups": {"enabled": True},
    }),
    "prod-without-node-agents": ("prod", {
        "monitoring": {"logs": False, "node_exporter": False},
        "postgres": {"install_operator": False},
    }),
    "staging-installs-cert-manager": ("staging", {"addons": {"cert_manager": {"install": True}}}),
    "dev-with-certificates": ("dev", {
        "ingress": {"tls_issuer": "letsencrypt-staging", "acme_email": "ops@aquascene.example"},
    }),
    "prod-on-a-platform-cluster": ("prod", {
        "addons": {name: {"install": False} for name in ("metrics_server", "node_autoscaler", "cert_manager",
                                                          "envoy_gateway")},
    }),
}

# Namespaces every cluster has: nothing needs to create or assert them.
BUILT_IN_NAMESPACES = {"kube-system"}
NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"


def asserted_namespaces(rec: Recording) -> set[str]:
    """Namespaces the stack looks up (`Namespace.get`) instead of creating: a platform team's."""
    return {name for type_token, name in rec.reads if type_token == NAMESPACE_TYPE}


def namespace_resources(rec: Recording) -> dict[str, str]:
    """namespace name -> URN of what creates it: its Namespace resource, or a Helm release with createNamespace."""
    created = {r.plain_inputs["namespace"]: r.urn for r in rec.of_type("kubernetes:helm.sh/v3:Release")
               if r.plain_inputs.get("createNamespace")}
    return created | {ns.plain_inputs["metadata"]["name"]: ns.urn for ns in rec.kubernetes("Namespace")}


def unordered_objects(rec: Recording) -> list[str]:
    """Every namespaced object with no path to the Namespace that the stack creates for it."""
    namespaces = namespace_resources(rec)
    missing = []
    for obj in rec.kubernetes():
        namespace = rec.namespace_of(obj)
        if namespace in namespaces and namespaces[namespace] not in rec.prerequisites(obj.urn):
            missing.append(f"{obj.kind} {namespace}/{obj.name}")
    return missing


# Charts that render another add-on's custom resources (not only their own): each must wait
# for the chart serving those, or - where a platform team installs it - assert it is there.
RENDERS_CUSTOM_RESOURCES_OF = {
    "plugin-barman-cloud": ("cert-manager", "certificates.cert-manager.io"),  # its webhook's Issuer/Certificate
    "gateway-helm": ("gateway-crds-helm", "gateways.gateway.networking.k8s.io"),
}
CHART_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
CRD_TYPE = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"


def installed_charts(rec: Recording) -> dict[str, str]:
    """chart name -> URN of what installs it (a Helm release, or a v4 Chart applying its objects)."""
    # A chart by name in a repository, or an oci:// reference ending in its name.
    return {str(r.plain_inputs.get("chart")).rsplit("/", 1)[-1]: r.urn
            for type_token in CHART_TYPES for r in rec.of_type(type_token)}


def unordered_releases(rec: Recording) -> list[str]:
    """Charts that render another add-on's custom resources before it is there (or asserted)."""
    charts, asserted = installed_charts(rec), {name for t, name in rec.reads if t == CRD_TYPE}
    missing = []
    for chart, urn in charts.items():
        if chart not in RENDERS_CUSTOM_RESOURCES_OF:
            continue
        needed, crd = RENDERS_CUSTOM_RESOURCES_OF[chart]
        if needed in charts and charts[needed] not in rec.prerequisites(urn):
            missing.append(f"{chart} does not wait for {needed}")
        if needed not in charts and crd not in asserted:
            missing.append(f"{chart} needs {needed}, neither installed nor asserted ({crd})")
    return missing


def unserved_custom_resources(rec: Recording) -> list[str]:
    """Custom resources created without waiting for the release in this stack that serves them."""
    releases = installed_charts(rec)
    missing = []
    for obj in rec.kubernetes():
        api_version = obj.plain_inputs.get("apiVersion", "")
        chart = SERVED_BY_CHART.get(api_version.split("/")[0]) if "/" in api_version else None
        if chart in releases and releases[chart] not in rec.prerequisites(obj.urn):
            missing.append(f"{obj.plain_inputs.get('kind')} {obj.name} (served by {chart})")
    return missing


@pytest.fixture(scope="module", params=sorted(STACKS))
def recording(request) -> Recording:
    from stacks.program import program
    from tooling.recording import record
    from tests.conftest import recorded_stack, stack_config

    env, overrides = STACKS[request.param]
    return record(program, stack=env, config=stack_config(env, overrides)) if overrides else recorded_stack(env)


def test_every_namespaced_object_waits_for_its_namespace(recording):
    assert unordered_objects(recording) == []


def test_every_custom_resource_waits_for_the_release_that_serves_it(recording):
    assert unserved_custom_resources(recording) == []


def test_every_release_rendering_another_add_ons_resources_waits_for_it(recording):
    assert unordered_releases(recording) == []


def test_each_stack_creates_or_asserts_the_namespaces_its_objects_live_in(recording):
    # The invariant above only binds namespaces the stack creates (as Namespace objects or
    # through a Helm release); every other one must be looked up at preview, so a cluster
    # without it refuses the preview instead of failing half-way through `pulumi up`.
    created, asserted = set(namespace_resources(recording)), asserted_namespaces(recording)
    used = {recording.namespace_of(obj) for obj in recording.kubernetes()} - {None}
    assert used <= created | asserted | BUILT_IN_NAMESPACES, (
        f"objects in namespaces the stack neither creates nor asserts: {sorted(used - created - asserted)}")
    assert not asserted & created, "a namespace the stack creates is not a prerequisite"


def test_the_graph_follows_parents_and_their_dependencies(run_program):
    """prerequisites() is what the engine guarantees: a child waits for its parent, the
    parent for its own depends_on, followed transitively; siblings do not order each other."""
    import pulumi
    import pulumi_kubernetes as k8s

    class Group(pulumi.ComponentResource):
        def __init__(self, name, opts=None):
            super().__init__("test:index:Group", name, None, opts)
            self.config = k8s.core.v1.ConfigMap(f"{name}-cm", metadata={"name": name, "namespace": "ns"},
                                                opts=pulumi.ResourceOptions(parent=self))
            self.register_outputs({})

    def program():
        ns = k8s.core.v1.Namespace("ns", metadata={"name": "ns"})
        Group("after", pulumi.ResourceOptions(depends_on=[ns]))
        Group("racing")

    rec = run_program(program)
    namespace = namespace_resources(rec)["ns"]
    ordered = {obj.name: namespace in rec.prerequisites(obj.urn) for obj in rec.kubernetes("ConfigMap")}
    assert ordered == {"after-cm": True, "racing-cm": False}
    assert unordered_objects(rec) == ["ConfigMap ns/racing-cm"]
