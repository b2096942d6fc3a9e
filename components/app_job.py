"""AppJob: a one-shot Job in an application image (database migrations, restores).

The pod gets the same restricted security context, Secret-referenced env
and explicit egress as the services, and a NetworkPolicy of its own (the
namespace denies everything by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import kube, secret_files
from components.app_service import SecretEnv


@dataclass(frozen=True)
class AppJobArgs:
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    identity: kube.Identity
    command: Sequence[str]
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    secret_env: Sequence[SecretEnv] = ()
    egress_to: Sequence[kube.NetworkPeer] = ()
    resources: kube.Resources = kube.RESOURCE_PRESETS["small"]
    backoff_limit: int = 3
    active_deadline_seconds: int = 900

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("AppJobArgs.command must not be empty")
        if self.active_deadline_seconds < 1:
            raise ValueError("AppJobArgs.active_deadline_seconds must be >= 1")


def job_pod_spec(args: AppJobArgs, restart_policy: str = "Never") -> dict:
    """The pod of a batch workload in an app image (shared by Jobs and CronJobs)."""
    tmp_volume, tmp_mount = kube.tmp_volume()
    container = {
        "name": args.identity.name,
        "image": args.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(args.command),
        "env": [{"name": k, "value": v} for k, v in sorted(args.env.items())],
        "resources": args.resources.render(),
        "securityContext": kube.container_security_context(),
        "volumeMounts": [tmp_mount],
    }
    volumes = [tmp_volume]
    if args.secret_env:
        # Credentials as read-only files the engine reads from its secrets directory.
        secrets_volume, secrets_mount = secret_files.app_settings_volume(
            [(s.name, s.secret_name, s.key) for s in args.secret_env])
        volumes.append(secrets_volume)
        container["volumeMounts"].append(secrets_mount)
    return {
        "restartPolicy": restart_policy,
        "automountServiceAccountToken": False,
        "securityContext": kube.pod_security_context(),
        "containers": [container],
        "volumes": volumes,
    }


class AppJob(pulumi.ComponentResource):
    job: k8s.batch.v1.Job

    def __init__(self, name: str, args: AppJobArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:app:AppJob", name, None, opts)
        ident = args.identity
        meta = kube.metadata(ident.name, args.namespace, ident.labels())
        policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta,
            spec=kube.network_policy_spec(ident.selector(), [], [], args.egress_to),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.job = k8s.batch.v1.Job(
            f"{name}-job",
            metadata=meta,
            spec={
                "backoffLimit": args.backoff_limit,
                "activeDeadlineSeconds": args.active_deadline_seconds,
                "ttlSecondsAfterFinished": 7 * 86400,
                "template": {"metadata": {"labels": ident.labels()}, "spec": job_pod_spec(args)},
            },
            # A Job's template is immutable: a new image means a new Job, the old one removed first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy], delete_before_replace=True),
        )
        self.register_outputs({"job_name": ident.name})
