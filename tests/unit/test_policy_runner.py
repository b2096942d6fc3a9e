"""`aquascene policy`: the real stacks, the CLI, the JSON shape, the bad export fixture,
and proof that the offline runner and Pulumi's own analyzer server agree."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi_policy import EnforcementLevel

from policies.aquascene_policies import BY_NAME, PACK_NAME, RULES, build_policies
from tooling import policy
from tooling.cli import main
from tests.conftest import REPO

BAD_EXPORT = REPO / "tests" / "fixtures" / "bad_export.json"
P = "urn:pulumi:bad::shop::"

# What the hand-made export must yield with the pack's default levels: (policy, urn) -> level.
EXPECTED_BAD: dict[tuple[str, str], str] = {
    ("namespace-default-deny", f"{P}kubernetes:core/v1:Namespace::shop"): "mandatory",
    ("namespace-pod-security-restricted", f"{P}kubernetes:core/v1:Namespace::shop"): "mandatory",
    ("pod-no-privileged", f"{P}kubernetes:apps/v1:Deployment::web"): "mandatory",
    ("image-tag-pinned", f"{P}kubernetes:apps/v1:Deployment::web"): "mandatory",
    ("no-secret-env-literals", f"{P}kubernetes:apps/v1:Deployment::web"): "mandatory",
    ("image-digest-pinned", f"{P}kubernetes:apps/v1:Deployment::web"): "advisory",
    ("workload-min-replicas", f"{P}kubernetes:apps/v1:Deployment::web"): "advisory",
    ("pod-ephemeral-storage", f"{P}kubernetes:apps/v1:Deployment::web"): "advisory",
    ("pod-ephemeral-storage", f"{P}kubernetes:apps/v1:DaemonSet::node-exporter"): "advisory",
    ("service-type-restricted", f"{P}kubernetes:core/v1:Service::web"): "mandatory",
    ("no-secrets-in-configmaps", f"{P}kubernetes:core/v1:ConfigMap::web-config"): "mandatory",
    ("no-default-namespace", f"{P}kubernetes:core/v1:ConfigMap::legacy"): "mandatory",
    ("no-nginx-snippets", f"{P}kubernetes:networking.k8s.io/v1:Ingress::web"): "mandatory",
    ("route-tls", f"{P}kubernetes:networking.k8s.io/v1:Ingress::web"): "advisory",
    ("s3-encryption", f"{P}aws:s3/bucket:Bucket::uploads"): "mandatory",
    ("s3-public-access-block", f"{P}aws:s3/bucket:Bucket::uploads"): "mandatory",
    ("s3-lifecycle", f"{P}aws:s3/bucket:Bucket::uploads"): "advisory",
    ("sg-no-public-ingress", f"{P}aws:ec2/securityGroup:SecurityGroup::bastion"): "mandatory",
    ("rds-not-public", f"{P}aws:rds/instance:Instance::db"): "mandatory",
    ("rds-encrypted", f"{P}aws:rds/instance:Instance::db"): "mandatory",
    ("rds-backup-retention", f"{P}aws:rds/instance:Instance::db"): "mandatory",
    ("rds-multi-az", f"{P}aws:rds/instance:Instance::db"): "advisory",
    ("rds-deletion-protection", f"{P}aws:rds/instance:Instance::db"): "advisory",
    ("iam-no-wildcard-actions", f"{P}aws:iam/policy:Policy::admin"): "mandatory",
    ("eks-private-endpoint", f"{P}aws:eks/cluster:Cluster::eks"): "mandatory",
    ("eks-secrets-encryption", f"{P}aws:eks/cluster:Cluster::eks"): "mandatory",
    ("eks-control-plane-logging", f"{P}aws:eks/cluster:Cluster::eks"): "mandatory",
}
EXPECTED_EXEMPT = {
    (rule, f"{P}kubernetes:apps/v1:DaemonSet::node-exporter")
    for rule in ("pod-no-host-network", "pod-no-host-pid", "pod-no-host-path")
}


@pytest.fixture(scope="module")
def stack_reports() -> dict[str, policy.PolicyReport]:
    return {env: policy.evaluate_stack(env, REPO) for env in ("dev", "staging", "prod")}


# ---------------------------------------------------------------- the stacks


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_every_stack_passes_every_mandatory_rule(env, stack_reports):
    report = stack_reports[env]
    assert report.config == str(REPO / "policies" / "config" / f"{env}.json")
    assert report.resources > 20 and report.policies >= 30
    assert report.mandatory == [], "\n".join(f"{f.policy}: {f.message}" for f in report.mandatory)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_cli_prints_every_advisory_finding_and_exits_by_mandatory_findings(env, stack_reports, capsys):
    code = main(["policy", env, "--project-dir", str(REPO)])
    out = capsys.readouterr().out
    report = stack_reports[env]
    assert code == (1 if report.mandatory else 0)
    for finding in report.advisory:
        assert finding.message in out
    assert f"{len(report.mandatory)} mandatory, {len(report.advisory)} advisory, {len(report.exemptions)} exempt" in out


def test_render_export_and_stack_evaluations_agree(tmp_path):
    """resources.json from `aquascene render` is a stack export: evaluating it finds what the stack run finds."""
    from tooling.render import render

    render("staging", REPO, tmp_path / "staging")
    config = REPO / "policies" / "config" / "staging.json"
    from_export = policy.evaluate_export(tmp_path / "staging" / "resources.json", config)
    from_stack = policy.evaluate_stack("staging", REPO, config)
    as_set = lambda r: {(f.policy, f.level, f.urn, f.message) for f in r.findings}  # noqa: E731
    assert as_set(from_export) == as_set(from_stack)
    assert from_export.resources == from_stack.resources


def test_per_environment_configs_are_valid_and_prod_is_strictest():
    rank = {"disabled": 0, "advisory": 1, "remediate": 2, "mandatory": 2}
    configs = {env: policy.load_pack_config(REPO / "policies" / "config" / f"{env}.json") for env in ("dev", "staging", "prod")}
    policies = build_policies()
    for p in policies:
        dev, staging, prod = (rank[configs[e].level(p).value] for e in ("dev", "staging", "prod"))
        assert dev <= staging <= prod, p.name
    for name in ("image-digest-pinned", "workload-min-replicas", "workload-spread", "route-tls"):
        assert configs["prod"].level(BY_NAME[name].policy()) == EnforcementLevel.MANDATORY, name
    assert configs["dev"].level(BY_NAME["image-digest-pinned"].policy()) == EnforcementLevel.DISABLED
    assert configs["prod"].properties["workload-min-replicas"]["minReplicas"] >= 2
    # Security rules are mandatory everywhere.
    for env, config in configs.items():
        for p in policies:
            if BY_NAME[p.name].enforcement_level == EnforcementLevel.MANDATORY:
                assert config.level(p) == EnforcementLevel.MANDATORY, (env, p.name)


# -------------------------------------------------------------- the bad export


def test_the_bad_export_yields_exactly_the_expected_findings():
    report = policy.evaluate_export(BAD_EXPORT)
    found = {(f.policy, f.urn): f.level for f in report.findings if f.level != "exempt"}
    assert found == EXPECTED_BAD
    assert {(f.policy, f.urn) for f in report.exemptions} == EXPECTED_EXEMPT
    assert report.exit_code == 1


def test_the_cli_names_each_violated_rule_and_every_exemption(capsys):
    assert main(["policy", "--export", str(BAD_EXPORT)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split() == ["RULE", "LEVEL", "RESOURCE", "MESSAGE"]
    for rule, _ in EXPECTED_BAD:
        assert any(line.startswith(rule + " ") for line in lines), rule
    for rule, _ in EXPECTED_EXEMPT:
        assert any(line.startswith(rule + " ") and " exempt " in line for line in lines), rule
    assert "policy.aquascene.io/exempt-pod-no-host-pid: reads every process of the node" in out
    assert "21 mandatory, 8 advisory, 3 exempt -> FAIL" in out
    assert "hunter2" not in out  # messages name keys, never values


def test_json_output_is_an_array_of_policy_level_urn_message(capsys):
    assert main(["policy", "--export", str(BAD_EXPORT), "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert isinstance(findings, list) and findings
    assert all(set(f) == {"policy", "level", "urn", "message"} for f in findings)
    assert {f["level"] for f in findings} == {"mandatory", "advisory", "exempt"}
    assert {(f["policy"], f["urn"]) for f in findings if f["level"] != "exempt"} == set(EXPECTED_BAD)


def test_a_config_file_changes_levels_and_thresholds(tmp_path, capsys):
    config = tmp_path / "lenient.json"
    config.write_text(json.dumps({
        "all": "advisory",
        "rds-backup-retention": {"enforcementLevel": "disabled"},
        "sg-no-public-ingress": {"loadBalancerGroups": ["bastion", "*-lb"], "publicPorts": [22, 443]},
    }))
    assert main(["policy", "--export", str(BAD_EXPORT), "--config", str(config), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    assert {f["level"] for f in findings} == {"advisory", "exempt"}
    assert not {"rds-backup-retention", "sg-no-public-ingress"} & {f["policy"] for f in findings}


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "takes a STACK or --export FILE"),
        (["dev", "--export", "x.json"], "takes a STACK or --export FILE"),
        (["--export", "missing.json"], "cannot read missing.json"),
        (["nosuchstack"], "no stack file Pulumi.nosuchstack.yaml"),
    ],
)
def test_usage_errors_exit_2(args, message, capsys):
    assert main(["policy", *args, "--project-dir", str(REPO)]) == 2
    assert message in capsys.readouterr().err


def test_bad_inputs_and_configs_exit_2_naming_the_problem(tmp_path, capsys):
    not_json = tmp_path / "broken.json"
    not_json.write_text("{")
    not_export = tmp_path / "list.json"
    not_export.write_text("[]")
    bad_config = tmp_path / "config.json"
    bad_config.write_text(json.dumps({
        "pod-no-privileged": "forbidden",
        "workload-min-replica": "mandatory",
        "workload-min-replicas": {"minReplicas": "two"},
        "pod-probes": {"exemptions": [{"resource": "Deployment/x"}]},
    }))
    assert main(["policy", "--export", str(not_json)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    assert main(["policy", "--export", str(not_export)]) == 2
    assert "not a stack export" in capsys.readouterr().err
    assert main(["policy", "--export", str(BAD_EXPORT), "--config", str(bad_config)]) == 2
    err = capsys.readouterr().err
    assert "pod-no-privileged.enforcementLevel: 'forbidden' is not one of advisory, mandatory, remediate, disabled" in err
    assert "workload-min-replica: no such policy in pack aquascene (did you mean workload-min-replicas?)" in err
    assert "workload-min-replicas.minReplicas: 'two' is not of type 'integer'" in err
    assert "pod-probes.exemptions.0: 'reason' is a required property" in err


# ------------------------------------------------ parity with the real analyzer


def _struct(props) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    json_format.ParseDict(policy.to_wire(dict(props)), s)
    return s


def test_pulumis_analyzer_server_reports_what_the_offline_runner_reports():
    """The same policy objects inside pulumi_policy's own gRPC servicer, fed the engine's requests."""
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    states = policy.load_export(BAD_EXPORT)
    servicer = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", build_policies(), EnforcementLevel.ADVISORY)
    served = set()
    for s in states:
        request = proto.AnalyzeRequest(type=s.type, properties=_struct(s.inputs or s.outputs), urn=s.urn, name=s.name)
        for d in servicer.Analyze(request, None).diagnostics:
            served.add((d.policyName, d.urn or s.urn, d.message.split("\n", 1)[1]))
    stack_request = proto.AnalyzeStackRequest(resources=[
        proto.AnalyzerResource(
            type=s.type, properties=_struct(s.outputs or s.inputs), urn=s.urn, name=s.name, parent=s.parent,
            dependencies=list(s.dependencies),
            propertyDependencies={k: proto.AnalyzerPropertyDependencies(urns=v) for k, v in s.property_dependencies.items()},
        )
        for s in states
    ])
    for d in servicer.AnalyzeStack(stack_request, None).diagnostics:
        served.add((d.policyName, d.urn, d.message.split("\n", 1)[1]))
    offline = {(f.policy, f.urn, f.message) for f in policy.evaluate(states).findings if f.level != "exempt"}
    assert served == offline


def test_the_pack_program_serves_every_rule_over_grpc():
    """`pulumi preview --policy-pack policies` runs policies/__main__.py through `python -m pulumi.policy`."""
    import grpc
    from pulumi.runtime.proto import analyzer_pb2_grpc

    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(REPO / "policies")],
        cwd=REPO / "policies", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        port = process.stdout.readline().strip()
        assert port.isdigit(), process.stderr.read() if process.poll() is not None else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            assert info.name == PACK_NAME
            assert [p.name for p in info.policies] == [r.name for r in RULES]
            by_name = {p.name: p for p in info.policies}
            assert by_name["pod-no-privileged"].enforcementLevel == proto.MANDATORY
            assert "minReplicas" in by_name["workload-min-replicas"].configSchema.properties
            web = next(s for s in policy.load_export(BAD_EXPORT) if s.urn.endswith("Deployment::web"))
            response = stub.Analyze(
                proto.AnalyzeRequest(type=web.type, properties=_struct(web.inputs), urn=web.urn, name=web.name), timeout=30
            )
            assert {d.policyName for d in response.diagnostics} == {
                rule for rule, urn in EXPECTED_BAD if urn == web.urn and not BY_NAME[rule].is_stack
            }
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


def test_importing_the_policies_package_does_not_start_the_pack():
    import policies

    assert not hasattr(policies, "PolicyPack")
    source = (REPO / "policies" / "__main__.py").read_text()
    assert "PolicyPack(" in source and "from aquascene_policies import" in source
