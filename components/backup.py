"""BackupSchedule: scheduled backups to S3 and a restore that is rendered, never run by itself.

Each target (postgres, redis, objects) is a CronJob running the content
engine's own backup tool (`python -m app.backup backup <target>`), followed
by a `prune` CronJob that applies the retention. The restore is a suspended
CronJob: it exists, fully configured, and an operator starts it on purpose:

    kubectl -n <namespace> create job --from=cronjob/postgres-restore postgres-restore-$(date +%s)

Staleness is alerted on from kube-state-metrics'
`kube_cronjob_status_last_successful_time`, so no push gateway is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.app_job import AppJobArgs, job_pod_spec
from components.app_service import SecretEnv

Target = Literal["postgres", "redis", "objects"]
TARGETS: tuple[Target, ...] = ("postgres", "redis", "objects")
RESTORABLE: tuple[Target, ...] = ("postgres", "redis")


@dataclass(frozen=True)
class BackupScheduleArgs:
    namespace: pulumi.Input[str]
    environment: str
    image: pulumi.Input[str]
    version: str
    bucket: pulumi.Input[str]  # BACKUP_BUCKET
    retention_days: int
    schedule: str = "0 2 * * *"  # daily, 02:00 UTC
    targets: Sequence[Target] = TARGETS
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    secret_env: Sequence[SecretEnv] = ()
    egress_to: Sequence[kube.NetworkPeer] = ()
    service_account_role_arn: pulumi.Input[str] | None = None  # IRSA instead of static S3 keys
    resources: kube.Resources = kube.RESOURCE_PRESETS["small"]
    deadline_seconds: int = 3600
    prune: bool = True  # False where the bucket's lifecycle rule expires backups (S3 on AWS)

    def __post_init__(self) -> None:
        unknown = set(self.targets) - set(TARGETS)
        if unknown:
            raise ValueError(f"BackupScheduleArgs.targets: unknown {sorted(unknown)}; allowed: {', '.join(TARGETS)}")
        if self.retention_days < 1:
            raise ValueError("BackupScheduleArgs.retention_days must be >= 1")
        if len(self.schedule.split()) != 5:
            raise ValueError(f"BackupScheduleArgs.schedule must be a 5-field cron expression, got {self.schedule!r}")


class BackupSchedule(pulumi.ComponentResource):
    cronjob_names: list[str]
    restore_cronjob_names: list[str]

    def __init__(self, name: str, args: BackupScheduleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:ops:BackupSchedule", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._args = args
        ident = kube.Identity(name="backup", component="backup", environment=args.environment, version=args.version)
        self.identity = ident
        sa_annotations = (
            {"eks.amazonaws.com/role-arn": args.service_account_role_arn} if args.service_account_role_arn else None
        )
        # The service account exists for IRSA; its API token is still not mounted.
        k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=kube.metadata("backup", args.namespace, ident.labels(), sa_annotations),
            automount_service_account_token=False,
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=kube.metadata("backup", args.namespace, ident.labels()),
            spec=kube.network_policy_spec(ident.selector(), [], [], args.egress_to),
            opts=child,
        )
        self.cronjob_names, self.restore_cronjob_names = [], []
        for target in args.targets:
            self._cronjob(f"{target}-backup", ["backup", target], args.schedule, suspend=False)
        if args.prune:
            self._cronjob("backup-prune", ["prune", "--retention-days", str(args.retention_days)],
                          _after(args.schedule, minutes=45), suspend=False)
        self._cronjob("backup-verify", ["verify", "latest"], _after(args.schedule, minutes=30), suspend=False)
        for target in RESTORABLE:
            if target in args.targets:
                self._cronjob(f"{target}-restore", ["restore", target, "latest"], args.schedule, suspend=True)
        self.register_outputs({"cronjobs": self.cronjob_names, "restore_cronjobs": self.restore_cronjob_names})

    def _cronjob(self, job_name: str, tool_args: list[str], schedule: str, suspend: bool) -> None:
        a = self._args
        job_args = AppJobArgs(
            namespace=a.namespace, image=a.image, identity=self.identity,
            command=["python", "-m", "app.backup", *tool_args],
            env={**a.env, "BACKUP_BUCKET": a.bucket}, secret_env=a.secret_env, resources=a.resources,
            active_deadline_seconds=a.deadline_seconds,
        )
        pod = {**job_pod_spec(job_args, restart_policy="OnFailure"), "serviceAccountName": "backup"}
        labels = {**self.identity.labels(), "aquascene.io/backup-job": job_name}
        k8s.batch.v1.CronJob(
            f"{self._name}-{job_name}",
            metadata=kube.metadata(job_name, a.namespace, labels),
            spec={
                "schedule": schedule,
                "timeZone": "Etc/UTC",
                "suspend": suspend,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 600,
                "successfulJobsHistoryLimit": 7,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "backoffLimit": 2,
                        "activeDeadlineSeconds": a.deadline_seconds,
                        "template": {"metadata": {"labels": labels}, "spec": pod},
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        (self.restore_cronjob_names if suspend else self.cronjob_names).append(job_name)


def _after(schedule: str, minutes: int) -> str:
    """The same cron schedule, `minutes` later (for verify and prune after the dumps)."""
    minute, hour, *rest = schedule.split()
    if not (minute.isdigit() and hour.isdigit()):
        return schedule
    total = int(hour) * 60 + int(minute) + minutes
    return " ".join([str(total % 60), str((total // 60) % 24), *rest])
