"""AppService, field by field."""

from __future__ import annotations

import pytest

from tests.unit.secret_support import app_secret_refs
from components import kube
from components.app_service import AppService, AppServiceArgs, Autoscaling, SecretEnv
from components.release import every_slot_selector

IDENT = kube.Identity(name="content-manager", component="api", environment="test", version="1.2.3")


def args(**overrides) -> AppServiceArgs:
    base = dict(namespace="aquascene-test", image="registry.example/engine:1.2.3", port=8000, identity=IDENT)
    return AppServiceArgs(**{**base, **overrides})


def deploy(run_program, **overrides):
    rec = run_program(lambda: AppService("content-manager", args(**overrides)))
    return rec, rec.k8s_object("Deployment", "content-manager")


def container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_probes_hit_health_and_ready_and_differ(run_program):
    _, dep = deploy(run_program)
    c = container(dep)
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    assert c["livenessProbe"] != c["readinessProbe"]
    # 60 s of startup budget at the 5 s startup period
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] == 60


def test_startup_budget_follows_args(run_program):
    _, dep = deploy(run_program, probes=kube.HttpProbes(port="http", startup_timeout_seconds=120))
    probe = container(dep)["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == 120


def test_same_liveness_and_readiness_path_is_rejected():
    with pytest.raises(ValueError, match="liveness_path and readiness_path must differ"):
        kube.HttpProbes(port=8000, liveness_path="/health", readiness_path="/health")


def test_restricted_security_context_and_writable_tmp(run_program):
    rec, dep = deploy(run_program)
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container(dep)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container(dep)["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
    sa = rec.k8s_object("ServiceAccount", "content-manager")
    assert sa["automountServiceAccountToken"] is False


def test_requests_and_memory_limit_from_preset(run_program):
    _, dep = deploy(run_program, resources=kube.preset("large"))
    assert container(dep)["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "256Mi"},
        "limits": {"memory": "2Gi", "ephemeral-storage": "2Gi"},
    }


def test_unknown_preset_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown resource preset 'huge'; allowed: nano, micro, small"):
        kube.preset("huge")


def test_rolling_update_never_drops_below_desired(run_program):
    _, dep = deploy(run_program)
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_scrape_annotations_and_config_checksum(run_program):
    _, dep = deploy(run_program, env={"LOG_LEVEL": "INFO"})
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8000"
    assert annotations["prometheus.io/path"] == "/metrics"
    _, other = deploy(run_program, env={"LOG_LEVEL": "DEBUG"})
    assert other["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != annotations["checksum/config"]


def test_plain_env_goes_to_configmap_and_secrets_by_reference(run_program):
    rec, dep = deploy(
        run_program,
        env={"LOG_LEVEL": "INFO"},
        secret_env=[SecretEnv(name="DATABASE_URL", secret_name="postgres-app", key="url")],
    )
    assert rec.k8s_object("ConfigMap", "content-manager-config")["data"] == {"LOG_LEVEL": "INFO"}
    c = container(dep)
    assert c["envFrom"] == [{"configMapRef": {"name": "content-manager-config"}}]
    assert "env" not in c  # secrets are files, never variables
    assert app_secret_refs(dep["spec"]["template"]["spec"]) == {"DATABASE_URL": {"name": "postgres-app", "key": "url"}}


def test_env_name_cannot_be_both_plain_and_secret():
    with pytest.raises(ValueError, match=r"\['DATABASE_URL'\] set both as plain env and as secret env"):
        args(env={"DATABASE_URL": "x"}, secret_env=[SecretEnv("DATABASE_URL", "s", "url")])


def test_single_replica_has_no_hpa_no_pdb_no_spreading(run_program):
    rec, dep = deploy(run_program, replicas=1)
    assert dep["spec"]["replicas"] == 1
    assert rec.kubernetes("HorizontalPodAutoscaler") == []
    assert rec.kubernetes("PodDisruptionBudget") == []
    assert "affinity" not in dep["spec"]["template"]["spec"]


def test_fixed_replicas_get_pdb_and_spreading(run_program):
    rec, dep = deploy(run_program, replicas=3)
    assert dep["spec"]["replicas"] == 3
    pdb = rec.k8s_object("PodDisruptionBudget", "content-manager")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == every_slot_selector(IDENT.selector())  # every Deployment of the service
    pod = dep["spec"]["template"]["spec"]
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    spread = pod["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"


def test_hpa_owns_replicas(run_program):
    rec, dep = deploy(run_program, replicas=3, autoscaling=Autoscaling(min_replicas=3, max_replicas=10))
    assert "replicas" not in dep["spec"]
    hpa = rec.k8s_object("HorizontalPodAutoscaler", "content-manager")
    assert hpa["spec"]["minReplicas"] == 3 and hpa["spec"]["maxReplicas"] == 10
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "content-manager"}
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
    assert targets == {"cpu": 70, "memory": 80}
    assert rec.kubernetes("PodDisruptionBudget")


def test_hpa_with_min_one_has_no_pdb(run_program):
    rec, _ = deploy(run_program, autoscaling=Autoscaling(min_replicas=1, max_replicas=3))
    assert rec.kubernetes("PodDisruptionBudget") == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(min_replicas=0, max_replicas=2), "min_replicas must be >= 1"),
        (dict(min_replicas=5, max_replicas=2), r"max_replicas \(2\) must be >= min_replicas \(5\)"),
        (dict(min_replicas=1, max_replicas=2, cpu_utilization=0), "cpu_utilization must be between 1 and 100"),
    ],
)
def test_autoscaling_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Autoscaling(**kwargs)


def test_bad_port_and_replicas_rejected():
    with pytest.raises(ValueError, match="port must be 1-65535"):
        args(port=0)
    with pytest.raises(ValueError, match="replicas must be >= 1"):
        args(replicas=0)


def test_network_policy_admits_only_declared_peers(run_program):
    gateway = kube.NetworkPeer(namespace="gateway-ns")
    rec, _ = deploy(run_program, ingress_from=[gateway], egress_to=[kube.NetworkPeer(pod_labels={"app": "db"}, ports=[5432])])
    spec = rec.k8s_object("NetworkPolicy", "content-manager")["spec"]
    assert spec["podSelector"] == every_slot_selector(IDENT.selector())
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway-ns"}}}],
            "ports": [{"port": 8000, "protocol": "TCP"}],
        }
    ]
    dns, db = spec["egress"]
    assert {"port": 53, "protocol": "UDP"} in dns["ports"]
    assert db == {"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432, "protocol": "TCP"}]}


def test_no_declared_peers_means_no_ingress(run_program):
    rec, _ = deploy(run_program)
    assert rec.k8s_object("NetworkPolicy", "content-manager")["spec"]["ingress"] == []


def test_service_is_cluster_ip_on_the_named_port(run_program):
    rec, _ = deploy(run_program)
    spec = rec.k8s_object("Service", "content-manager")["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert spec["selector"] == IDENT.selector()


def test_labels_everywhere_and_children_parented(run_program):
    rec, _ = deploy(run_program, replicas=2)
    component = rec.of_type("aquascene:app:AppService")[0]
    children = list(rec.children_of(component.urn))
    assert {c.kind for c in children} == {
        "ServiceAccount", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
    }
    for child in children:
        labels = child.plain_inputs["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "aquascene"
        assert labels["app.kubernetes.io/managed-by"] == "pulumi"
        assert labels["aquascene.io/environment"] == "test"
        assert labels["app.kubernetes.io/version"] == "1.2.3"
        assert child.plain_inputs["metadata"]["namespace"] == "aquascene-test"


def test_selector_never_contains_the_version():
    assert "app.kubernetes.io/version" not in IDENT.selector()
