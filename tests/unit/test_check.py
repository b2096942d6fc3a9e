"""tooling.check without a cluster: the order objects are sent in, and a missing cluster."""

from __future__ import annotations

from tooling import cli
from tooling.check import stack_objects


def test_objects_are_sent_after_everything_they_wait_for(run_stack):
    for env in ("dev", "prod"):
        rec = run_stack(env)
        objects = stack_objects(rec)
        position = {obj.urn: i for i, obj in enumerate(objects.objects)}
        for obj in objects.objects:
            before = rec.prerequisites(obj.urn) & position.keys()
            assert all(position[urn] < position[obj.urn] for urn in before), obj.ref
        # Every recorded Kubernetes object is either sent or listed as a Helm release.
        assert len(objects.objects) + len(objects.helm_releases) == len(rec.kubernetes())


def test_prod_lists_its_helm_releases_instead_of_sending_them(run_stack):
    releases = stack_objects(run_stack("prod")).helm_releases
    assert sorted(r.split()[0].rsplit("/", 1)[-1] for r in releases) == [
        "cert-manager", "cloudnative-pg", "cluster-autoscaler", "gateway-helm",
        "metrics-server", "plugin-barman-cloud"]  # the CRD bundle is a helm.v4.Chart: objects, no release


def test_check_without_a_usable_kubeconfig_exits_2_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert cli.main(["check", "dev"]) == cli.EXIT_CONFIG
    assert "KUBECONFIG" in capsys.readouterr().err


def test_check_of_an_unknown_stack_exits_2(capsys):
    assert cli.main(["check", "nosuchstack"]) == cli.EXIT_CONFIG
    assert "Pulumi.nosuchstack.yaml" in capsys.readouterr().err


def test_pods_reference_only_what_each_stack_creates(run_stack):
    """Offline half of the live suite's reference check, for every stack on every run."""
    from tests.live.kube_support import missing_references

    for env in ("dev", "staging", "prod"):
        assert missing_references(stack_objects(run_stack(env)).objects) == [], env


def test_a_missing_secret_key_is_named():
    from tooling.check import StackObject
    from tests.live.kube_support import missing_references

    secret = StackObject("s", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "ns"},
                               "stringData": {"url": "x"}})
    pod = {"serviceAccountName": "default", "containers": [{"name": "app", "env": [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}}]}]}
    deployment = StackObject("d", {"apiVersion": "apps/v1", "kind": "Deployment",
                                   "metadata": {"name": "app", "namespace": "ns"},
                                   "spec": {"template": {"metadata": {}, "spec": pod}}})
    assert missing_references([secret, deployment]) == [
        "Deployment ns/app container app: Secret db has no key 'password'",
        "Deployment ns/app container app: ConfigMap settings does not exist",
    ]


def test_every_selector_selects_a_pod_the_stack_runs_in_every_mix():
    """Offline half of the live selector check, over the same stacks and mixes as the ordering
    invariant: no Service, PDB or NetworkPolicy (own pods or peers) selects nothing, no HPA
    targets an absent workload. An opening for a part the stack does not run would admit
    any pod later given its labels."""
    from stacks.program import program
    from tooling.recording import record
    from tests.conftest import recorded_stack, stack_config
    from tests.live.kube_support import selection_problems
    from tests.unit.test_ordering import STACKS

    for name, (env, overrides) in STACKS.items():
        rec = record(program, stack=env, config=stack_config(env, overrides)) if overrides else recorded_stack(env)
        assert selection_problems(None, stack_objects(rec).objects).problems == [], name
