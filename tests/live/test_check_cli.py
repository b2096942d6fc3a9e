"""`aquascene check STACK` against the cluster in KUBECONFIG: a server-side dry run."""

from __future__ import annotations

import pytest

from tooling import cli, render
from tooling.check import Cluster, stack_objects
from tests.conftest import recorded_stack
from tests.live.kube_support import namespaces_provided_elsewhere, provide_namespaces


@pytest.fixture(autouse=True)
def platform_namespaces(cluster: Cluster):
    """What the platform team installs for dev (cert-manager's namespace): there before the check."""
    provided = provide_namespaces(cluster, namespaces_provided_elsewhere(stack_objects(recorded_stack("dev")).objects))
    yield
    for namespace in provided:
        cluster.delete(namespace)
    cluster.wait_gone(provided, timeout_seconds=120)


def test_check_dev_exits_0_with_every_object_accepted(cluster: Cluster, capsys) -> None:
    assert cli.main(["check", "dev"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "0 rejected (server-side dry run)" in out
    # The dry run stored nothing, and the namespaces it needed for it are gone again.
    assert cluster.get("apps/v1", "Deployment", "content-manager", "aquascene-dev") is None
    assert not cluster.namespace_exists("aquascene-dev")


def test_check_exits_1_naming_an_object_the_api_server_refuses(cluster: Cluster, capsys, monkeypatch) -> None:
    """An HTTPRoute whose backend port is 700000 passes no offline schema (custom resources are
    skipped there) but breaks the Gateway API CRD's own schema."""
    real_record_stack = render.record_stack

    def with_broken_route(stack_file):
        recording = real_record_stack(stack_file)
        route = next(r for r in recording.kubernetes("HTTPRoute")
                     if recording.namespace_of(r) == "aquascene-dev" and r.inputs["spec"]["rules"][0].get("backendRefs"))
        route.inputs["spec"]["rules"][0]["backendRefs"][0]["port"] = 700000
        return recording

    monkeypatch.setattr(render, "record_stack", with_broken_route)
    assert cli.main(["check", "dev"]) == cli.EXIT_INVALID
    out = capsys.readouterr().out
    rejected = [line for line in out.splitlines() if "REJECTED" in line]
    assert len(rejected) == 1, out
    assert "HTTPRoute aquascene-dev/" in rejected[0] and "700000" in rejected[0]
    assert "stack dev:" in out and "1 rejected" in out


def test_the_admin_allow_list_passes_the_envoy_gateway_crds_schema(cluster: Cluster) -> None:
    """The SecurityPolicy of `ingress.admin_allow_cidrs` (IPv4 and IPv6) as the API server validates it."""
    from stacks.program import program
    from tests.conftest import stack_config
    from tooling.check import Verdict, check
    from tooling.recording import record

    allow = ["203.0.113.0/24", "2001:db8::/32"]
    objects = stack_objects(record(program, stack="dev",
                                   config=stack_config("dev", {"ingress": {"admin_allow_cidrs": allow}})))
    (policy,) = [o for o in objects.objects if o.kind == "SecurityPolicy"]
    assert policy.manifest["spec"]["authorization"]["rules"][0]["principal"]["clientCIDRs"] == allow
    report = check("dev", objects, cluster)
    assert [v for v in report.verdicts if v.ref == policy.ref] == [Verdict(policy.ref, None)]
    assert report.rejected == []
