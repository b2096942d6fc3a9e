"""ObjectStore: an S3-compatible server and the platform's buckets.

Any MinIO-compatible image works (`server`, `/minio/health/*`, `mc`); the
default is the community-maintained fork, since MinIO's own repository is
archived and its last image carries a known privilege-escalation CVE.
"single" runs one node, "distributed" N nodes (erasure coded). The buckets,
their versioning and lifecycle rules are created by an idempotent Job with
`mc`, which also creates the application's own least-privilege user: the
apps never hold the root credentials.

On AWS the same bucket list becomes real S3 buckets (components/aws); this
component is then not used, and `BucketSpec` is the shared description.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import kube, secret_files
from components.credentials import generated_password

API_PORT = 9000
SECRETS_DIR = "/run/secrets/object-store"  # the root Secret's keys as files
_FROM_FILES = (f'MC_HOST_store="$(cat {SECRETS_DIR}/MC_HOST_store)"; APP_SECRET_KEY="$(cat {SECRETS_DIR}/APP_SECRET_KEY)"; '
               "export MC_HOST_store APP_SECRET_KEY\n")
# The community-maintained MinIO fork (MinIO's own repository is archived).
IMAGE = "docker.io/pgsty/minio:RELEASE.2026-08-04T00-00-00Z"
CLIENT_IMAGE = "docker.io/pgsty/mc:RELEASE.2026-09-16T00-00-00Z"
CONSOLE_PORT = 9001


@dataclass(frozen=True)
class BucketSpec:
    name: str
    versioned: bool = False
    expire_days: int | None = None  # delete current objects after N days; None: keep
    noncurrent_expire_days: int | None = None  # versioned buckets: drop old versions after N days

    def __post_init__(self) -> None:
        if self.expire_days is not None and self.expire_days < 1:
            raise ValueError(f"BucketSpec({self.name}).expire_days must be >= 1")
        if self.noncurrent_expire_days is not None and not self.versioned:
            raise ValueError(f"BucketSpec({self.name}).noncurrent_expire_days needs versioned=True")


# Seed 001's bucket strategy.
SEED_BUCKETS: tuple[BucketSpec, ...] = (
    BucketSpec("content-assets", versioned=True, noncurrent_expire_days=90),
    BucketSpec("newsletter-templates", versioned=True, noncurrent_expire_days=90),
    BucketSpec("instagram-media", expire_days=365),
    BucketSpec("system-backups", versioned=True, expire_days=30, noncurrent_expire_days=30),
    BucketSpec("temp-uploads", expire_days=1),
)


@dataclass(frozen=True)
class ObjectStoreArgs:
    namespace: str
    environment: str
    mode: Literal["single", "distributed"] = "single"
    name: str = "object-store"
    nodes: int = 4  # distributed mode
    image: str = IMAGE
    client_image: str = CLIENT_IMAGE
    storage_size: str = "50Gi"
    storage_class: str | None = None
    resources: kube.Resources = kube.RESOURCE_PRESETS["medium"]
    buckets: Sequence[BucketSpec] = SEED_BUCKETS
    region: str = "us-east-1"
    clients: Sequence[kube.NetworkPeer] = ()
    scrapers: Sequence[kube.NetworkPeer] = ()

    def __post_init__(self) -> None:
        if self.mode not in ("single", "distributed"):
            raise ValueError(f"ObjectStoreArgs.mode must be 'single' or 'distributed', got {self.mode!r}")
        if self.mode == "distributed" and self.nodes < 4:
            raise ValueError(f"ObjectStoreArgs.nodes must be >= 4 for erasure coding, got {self.nodes}")
        if "minio/minio" in self.image.split("@")[0].split(":")[0].removeprefix("docker.io/").removeprefix("quay.io/"):
            raise ValueError("ObjectStoreArgs.image: minio/minio is archived with an unpatched CVE; use a maintained build")
        names = [b.name for b in self.buckets]
        if len(set(names)) != len(names):
            raise ValueError(f"ObjectStoreArgs.buckets has duplicate names: {names}")

    @property
    def replicas(self) -> int:
        return 1 if self.mode == "single" else self.nodes


class ObjectStore(pulumi.ComponentResource):
    endpoint: pulumi.Output[str]
    secret_name: str  # app credentials: access-key, secret-key, endpoint
    bucket_names: dict[str, str]
    region: str

    def __init__(self, name: str, args: ObjectStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:data:ObjectStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.identity = kube.Identity(name=args.name, component="object-store", environment=args.environment,
                                      version=kube.image_version(args.image))
        labels, selector = self.identity.labels(), self.identity.selector()
        meta = lambda n, lbl=labels: kube.metadata(n, args.namespace, lbl)  # noqa: E731
        headless = f"{args.name}-headless"
        self.endpoint = pulumi.Output.from_input(f"http://{kube.cluster_dns(args.name, args.namespace)}:{API_PORT}")
        self.bucket_names = {b.name: b.name for b in args.buckets}
        self.region = args.region
        self.secret_name = f"{args.name}-app"

        root_user = "aquascene-root"
        root_password = generated_password(f"{name}-root-password", self, length=40)
        app_secret_key = generated_password(f"{name}-app-secret-key", self, length=40)
        self.app_secret_key = app_secret_key  # what a rotation changes (the apps' pods roll on it)
        app_access_key = "aquascene-app"
        root_secret = f"{args.name}-root"
        k8s.core.v1.Secret(
            f"{name}-root",
            metadata=meta(root_secret),
            string_data={
                "MINIO_ROOT_USER": root_user,
                "MINIO_ROOT_PASSWORD": root_password,
                # mc reads credentials from MC_HOST_<alias>: never on its command line.
                "MC_HOST_store": pulumi.Output.concat("http://", root_user, ":", root_password, "@",
                                                      kube.cluster_dns(args.name, args.namespace), f":{API_PORT}"),
                "APP_SECRET_KEY": app_secret_key,
            },
            opts=child,
        )
        self.app_secret = k8s.core.v1.Secret(
            f"{name}-app",
            metadata=meta(self.secret_name),
            string_data={"access-key": app_access_key, "secret-key": app_secret_key, "endpoint": self.endpoint},
            opts=child,
        )
        k8s.core.v1.Service(f"{name}-headless", metadata=meta(headless),
                            spec=kube.service_spec(selector, {"api": API_PORT}, headless=True), opts=child)
        k8s.core.v1.Service(f"{name}-service", metadata=meta(args.name),
                            spec=kube.service_spec(selector, {"api": API_PORT, "console": CONSOLE_PORT}), opts=child)
        self.statefulset = self._statefulset(name, args, headless, root_secret)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=meta(args.name),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}}, opts=child)

        job = kube.Identity(name=f"{args.name}-buckets", component="object-store-setup",
                            environment=args.environment, version=self.identity.version)
        own = kube.NetworkPeer(pod_labels=selector, ports=[API_PORT])
        spec = kube.network_policy_spec(selector, [], [], [own])
        spec["ingress"] = (
            [p.rule("from", [API_PORT]) for p in [*args.clients, kube.NetworkPeer(pod_labels=job.selector()), own]]
            + [p.rule("from", [API_PORT]) for p in args.scrapers]
        )
        k8s.networking.v1.NetworkPolicy(f"{name}-netpol", metadata=meta(args.name), spec=spec, opts=child)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-buckets-netpol", metadata=meta(job.name, job.labels()),
            spec=kube.network_policy_spec(job.selector(), [], [], [own]), opts=child)
        self._bucket_job(name, args, job, root_secret)
        self.register_outputs({"endpoint": self.endpoint, "secret_name": self.secret_name,
                               "bucket_names": self.bucket_names})

    def _statefulset(self, name: str, a: ObjectStoreArgs, headless: str, root_secret: str) -> k8s.apps.v1.StatefulSet:
        if a.mode == "single":
            volumes_arg = "/data"
        else:
            volumes_arg = f"http://{a.name}-{{0...{a.nodes - 1}}}.{kube.cluster_dns(headless, a.namespace)}/data"
        tmp_volume, tmp_mount = kube.tmp_volume()
        root_volume, root_mount = secret_files.secret_volume(
            "root-credentials", root_secret, SECRETS_DIR, ["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"])
        container = {
            "name": "server",
            "image": a.image,
            "imagePullPolicy": "IfNotPresent",
            "args": ["server", volumes_arg, "--address", f":{API_PORT}", "--console-address", f":{CONSOLE_PORT}"],
            "ports": [{"name": "api", "containerPort": API_PORT, "protocol": "TCP"},
                      {"name": "console", "containerPort": CONSOLE_PORT, "protocol": "TCP"}],
            "env": [
                # MinIO's *_FILE forms read the mounted root credentials.
                {"name": "MINIO_ROOT_USER_FILE", "value": f"{SECRETS_DIR}/MINIO_ROOT_USER"},
                {"name": "MINIO_ROOT_PASSWORD_FILE", "value": f"{SECRETS_DIR}/MINIO_ROOT_PASSWORD"},
                {"name": "MINIO_REGION", "value": a.region},
                # Only Prometheus can reach the port (NetworkPolicy), so metrics need no bearer token.
                {"name": "MINIO_PROMETHEUS_AUTH_TYPE", "value": "public"},
                {"name": "MINIO_BROWSER", "value": "on"},
                {"name": "HOME", "value": "/tmp"},
            ],
            "resources": a.resources.render(),
            "securityContext": kube.container_security_context(),
            "volumeMounts": [{"name": "data", "mountPath": "/data"}, root_mount, tmp_mount],
            **kube.HttpProbes(port="api", liveness_path="/minio/health/live", readiness_path="/minio/health/ready",
                              startup_timeout_seconds=120).render(),
        }
        pod_spec = {
            "automountServiceAccountToken": False,
            "securityContext": kube.pod_security_context(),
            "containers": [container],
            "volumes": [root_volume, tmp_volume],
        }
        if a.replicas > 1:
            pod_spec.update(kube.spread_across_nodes_and_zones(self.identity.selector()))
        return k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=kube.metadata(a.name, a.namespace, self.identity.labels()),
            spec={
                "serviceName": headless,
                "replicas": a.replicas,
                "podManagementPolicy": "Parallel",  # distributed nodes must start together to form the set
                "selector": {"matchLabels": self.identity.selector()},
                "template": {
                    "metadata": {"labels": self.identity.labels(),
                                 "annotations": kube.scrape_annotations(API_PORT, "/minio/v2/metrics/cluster")},
                    "spec": pod_spec,
                },
                "volumeClaimTemplates": [
                    kube.volume_claim_template("data", a.storage_size, a.storage_class, self.identity.selector())
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _bucket_job(self, name: str, a: ObjectStoreArgs, job: kube.Identity, root_secret: str) -> None:
        script = bucket_setup_script(a.buckets)
        tmp_volume, tmp_mount = kube.tmp_volume()
        creds_volume, creds_mount = secret_files.secret_volume(
            "credentials", root_secret, SECRETS_DIR, ["MC_HOST_store", "APP_SECRET_KEY"])
        # The script is part of the Job's name: a changed bucket list runs a new Job.
        job_name = f"{job.name}-{kube.content_checksum(script)[:8]}"
        k8s.batch.v1.Job(
            f"{name}-buckets",
            metadata=kube.metadata(job_name, a.namespace, job.labels()),
            spec={
                "backoffLimit": 10,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    # A rotated app key (pulumi up --replace on its RandomPassword) runs the Job
                    # again, which sets the new key on the store's app user.
                    "metadata": {"labels": job.labels(), "annotations": {"checksum/app-key": pulumi.Output.unsecret(
                        pulumi.Output.from_input(self.app_secret_key).apply(kube.content_checksum))}},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "automountServiceAccountToken": False,
                        "securityContext": kube.pod_security_context(),
                        "containers": [{
                            "name": "mc",
                            "image": a.client_image,
                            # The credentials live only in the script's own environment, read from files.
                            "command": ["sh", "-c", _FROM_FILES + script],
                            "env": [{"name": "MC_CONFIG_DIR", "value": "/tmp/.mc"}],
                            "resources": kube.RESOURCE_PRESETS["nano"].render(),
                            "securityContext": kube.container_security_context(),
                            "volumeMounts": [creds_mount, tmp_mount],
                        }],
                        "volumes": [creds_volume, tmp_volume],
                    },
                },
            },
            # A Job's template is immutable: a changed one is a new Job, the old one removed first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.statefulset], delete_before_replace=True),
        )


def app_policy(buckets: Sequence[BucketSpec]) -> dict:
    """The app user's S3 policy: its buckets, object read/write, nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
             "Resource": [f"arn:aws:s3:::{b.name}" for b in buckets]},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
             "Resource": [f"arn:aws:s3:::{b.name}/*" for b in buckets]},
        ],
    }


def bucket_setup_script(buckets: Sequence[BucketSpec]) -> str:
    """Idempotent `mc` commands: create, version, expire, keep private; the app user and its policy."""
    import json

    q = shlex.quote
    lines = ["set -eu", "until mc ready store; do echo 'waiting for the object store'; sleep 3; done"]
    for b in buckets:
        path = q(f"store/{b.name}")
        lines.append(f"mc mb --ignore-existing {path}")
        if b.versioned:
            lines.append(f"mc version enable {path}")
        lines.append(f"mc anonymous set none {path}")
        # Replace the lifecycle wholesale so removed rules disappear too.
        lines.append(f"mc ilm rule rm --all --force {path} >/dev/null 2>&1 || true")
        if b.expire_days is not None:
            lines.append(f"mc ilm rule add --expire-days {b.expire_days} {path}")
        if b.noncurrent_expire_days is not None:
            lines.append(f"mc ilm rule add --noncurrent-expire-days {b.noncurrent_expire_days} {path}")
    policy = json.dumps(app_policy(buckets), separators=(",", ":"))
    lines += [
        f"printf '%s' {q(policy)} > /tmp/app-policy.json",
        "mc admin policy create store aquascene-app /tmp/app-policy.json",
        'mc admin user add store aquascene-app "$APP_SECRET_KEY"',
        "mc admin policy attach store aquascene-app --user aquascene-app || true",
    ]
    return "\n".join(lines) + "\n"
