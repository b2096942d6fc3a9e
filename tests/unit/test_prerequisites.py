"""Platform prerequisites: namespaces a stack writes into but does not create are looked up at
preview, and a cluster that lacks any of them refuses the run with one list of all of them."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components import kube
from stacks.program import program
from tests.conftest import stack_config
from tooling.recording import record

NAMESPACE = "kubernetes:core/v1:Namespace"


def test_staging_asserts_cert_managers_namespace_it_writes_into(run_stack):
    rec = run_stack("staging")
    assert (NAMESPACE, "cert-manager") in rec.reads
    binding = rec.k8s_object("RoleBinding", "prometheus-discovery", "cert-manager")
    assert binding["roleRef"]["name"]


def test_a_missing_platform_namespace_fails_the_run_naming_it_and_the_key_that_turns_it_off():
    with pytest.raises(kube.PrerequisitesMissing) as raised:
        record(program, stack="staging", config=stack_config("staging"), absent=[(NAMESPACE, "cert-manager")])
    assert [p.namespace for p in raised.value.missing] == ["cert-manager"]
    message = str(raised.value)
    assert "namespace cert-manager" in message
    assert "aquascene:addons.cert_manager.install: true" in message
    assert "aquascene:ingress.tls_issuer: none" in message


def test_a_stack_that_installs_the_add_on_asserts_nothing_of_it(run_stack):
    rec = run_stack("staging", {"addons": {"cert_manager": {"install": True}}})
    assert (NAMESPACE, "cert-manager") not in rec.reads
    # Its release creates the namespace, and the RoleBinding there waits for the release.
    release = next(r for r in rec.of_type("kubernetes:helm.sh/v3:Release") if r.plain_inputs["name"] == "cert-manager")
    binding = next(r for r in rec.kubernetes("RoleBinding") if rec.namespace_of(r) == "cert-manager")
    assert release.urn in rec.prerequisites(binding.urn)


def test_a_stack_without_certificates_writes_nothing_there(run_stack):
    rec = run_stack("dev")
    assert (NAMESPACE, "cert-manager") not in rec.reads
    assert all(rec.namespace_of(r) != "cert-manager" for r in rec.kubernetes())


def test_every_missing_namespace_is_listed_not_only_the_first():
    def two_platform_namespaces():
        for name in ("platform-a", "platform-b"):
            kube.require_namespace(kube.Prerequisite(name, f"{name}'s owner", f"aquascene:{name}.enabled: false"))
            k8s.core.v1.ConfigMap(f"cm-{name}", metadata=kube.metadata("cm", name, {}))
        kube.settle_namespaces()

    with pytest.raises(kube.PrerequisitesMissing) as raised:
        record(two_platform_namespaces, absent=[(NAMESPACE, "platform-a"), (NAMESPACE, "platform-b")])
    message = str(raised.value)
    assert message.startswith("2 platform prerequisites missing")
    assert "aquascene:platform-a.enabled: false" in message and "aquascene:platform-b.enabled: false" in message


def test_present_namespaces_let_the_objects_through():
    def one_platform_namespace():
        kube.require_namespace(kube.Prerequisite("platform-a", "its owner", "aquascene:x: false"))
        k8s.core.v1.ConfigMap("cm", metadata=kube.metadata("cm", "platform-a", {}),
                              opts=pulumi.ResourceOptions())
        kube.settle_namespaces()

    rec = record(one_platform_namespace)
    assert rec.k8s_object("ConfigMap", "cm", "platform-a")
    assert rec.reads == [(NAMESPACE, "platform-a")]
