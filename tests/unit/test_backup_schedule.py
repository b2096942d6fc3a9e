"""BackupSchedule CronJobs and their place in each stack."""

from __future__ import annotations

import pytest

from tests.unit.secret_support import app_secret_refs
from components import kube
from components.app_service import SecretEnv
from components.backup import BackupSchedule, BackupScheduleArgs, _after
from tooling.kubeschema import validate
from tooling.render import manifest_of


def schedule(run_program, **kw):
    base = dict(namespace="ns", environment="staging", image="reg/engine:1.0.0", version="1.0.0",
                bucket="system-backups", retention_days=7,
                secret_env=[SecretEnv("DATABASE_URL", "postgres-app", "url")],
                egress_to=[kube.NetworkPeer(pod_labels={"app": "db"}, ports=[5432])])
    return run_program(lambda: BackupSchedule("backups", BackupScheduleArgs(**{**base, **kw})))


def test_cronjobs_per_target_plus_verify_and_prune(run_program):
    rec = schedule(run_program)
    jobs = {r.plain_inputs["metadata"]["name"]: r.plain_inputs["spec"] for r in rec.kubernetes("CronJob")}
    assert set(jobs) == {"postgres-backup", "redis-backup", "objects-backup", "backup-verify", "backup-prune",
                         "postgres-restore", "redis-restore"}
    for name, spec in jobs.items():
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["successfulJobsHistoryLimit"] == 7 and spec["failedJobsHistoryLimit"] == 3
        assert spec["startingDeadlineSeconds"] == 600
        assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 3600
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["automountServiceAccountToken"] is False
        assert spec["suspend"] is name.endswith("-restore")  # restores are rendered, never scheduled
    command = jobs["postgres-backup"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["python", "-m", "app.backup", "backup", "postgres"]
    prune = jobs["backup-prune"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert prune[-2:] == ["--retention-days", "7"]
    restore = jobs["postgres-restore"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert restore == ["python", "-m", "app.backup", "restore", "postgres", "latest"]
    assert jobs["postgres-backup"]["schedule"] == "0 2 * * *"
    assert jobs["backup-verify"]["schedule"] == "30 2 * * *"
    for r in rec.kubernetes():
        assert validate(manifest_of(r)).status == "valid", r.kind


def test_credentials_by_secret_and_bucket_by_env(run_program):
    rec = schedule(run_program)
    pod = rec.k8s_object("CronJob", "postgres-backup")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["BACKUP_BUCKET"]["value"] == "system-backups"
    assert "DATABASE_URL" not in env
    assert app_secret_refs(pod)["DATABASE_URL"] == {"name": "postgres-app", "key": "url"}


def test_irsa_role_annotates_the_service_account(run_program):
    rec = schedule(run_program, service_account_role_arn="arn:aws:iam::123456789012:role/backup")
    sa = rec.k8s_object("ServiceAccount", "backup")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/backup"}
    assert sa["automountServiceAccountToken"] is False


def test_network_policy_lets_backups_reach_only_declared_peers(run_program):
    spec = schedule(run_program).k8s_object("NetworkPolicy", "backup")["spec"]
    assert spec["ingress"] == []
    assert spec["egress"][1] == {"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                                 "ports": [{"port": 5432, "protocol": "TCP"}]}


@pytest.mark.parametrize("kw, message", [
    (dict(targets=["postgres", "mongodb"]), r"unknown \['mongodb'\]"),
    (dict(retention_days=0), "retention_days must be >= 1"),
    (dict(schedule="daily"), "5-field cron expression"),
])
def test_args_validation(kw, message):
    base = dict(namespace="ns", environment="dev", image="i:1", version="1", bucket="b", retention_days=7)
    with pytest.raises(ValueError, match=message):
        BackupScheduleArgs(**{**base, **kw})


def test_after_shifts_cron_minutes_across_hours():
    assert _after("50 23 * * *", 30) == "20 0 * * *"
    assert _after("*/5 * * * *", 30) == "*/5 * * * *"


@pytest.mark.parametrize("env, expected", [("dev", 0), ("staging", 7), ("prod", 6)])
def test_cronjobs_in_staging_and_prod_renders(run_stack, env, expected):
    rec = run_stack(env)
    assert len(rec.kubernetes("CronJob")) == expected
    if env == "staging":
        prune = rec.k8s_object("CronJob", "backup-prune")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert prune["containers"][0]["command"][-1] == "7"
        assert rec.stack_outputs["backup_cronjobs"] == [
            "postgres-backup", "redis-backup", "objects-backup", "backup-prune", "backup-verify"]
    if env == "prod":  # S3 expires backups by lifecycle (30 days); the jobs' IAM role cannot delete
        assert rec.stack_outputs["backup_cronjobs"] == ["postgres-backup", "redis-backup", "objects-backup",
                                                        "backup-verify"]
        sa = rec.k8s_object("ServiceAccount", "backup")
        assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
