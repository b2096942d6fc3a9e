"""AppService: one stateless HTTP service, deployed the way every service should be."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import kube, secret_files
from components.release import (CANARY, Canary, Release, Rolling, Track, canary_service_name, every_slot_selector,
                                reads_live_size, tracks)


@dataclass(frozen=True)
class SecretEnv:
    """A setting read from a Kubernetes Secret key (never a literal), mounted as the file of its
    lower-case name in the engine's secrets directory (components/secret_files.py), not as a variable."""

    name: str
    secret_name: pulumi.Input[str]
    key: str
    # What changes when the value does (e.g. the generated password behind it). Hashed into the
    # pod template: the engine reads its settings once, so a rotated secret must roll the pods.
    version: pulumi.Input[str] | None = None


def secrets_checksum(refs: Sequence[SecretEnv]) -> pulumi.Output[str] | None:
    """SHA-256 over the versions of `refs` (None when none has one). A hash of generated secrets
    reveals nothing of them, so it is not secret (a secret annotation would hide the whole spec)."""
    versions = [r.version for r in refs if r.version is not None]
    if not versions:
        return None
    return pulumi.Output.unsecret(pulumi.Output.all(*versions).apply(kube.content_checksum))


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    cpu_utilization: int = 70
    memory_utilization: int = 80

    def __post_init__(self) -> None:
        if self.min_replicas < 1:
            raise ValueError("Autoscaling.min_replicas must be >= 1")
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"Autoscaling.max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        for name in ("cpu_utilization", "memory_utilization"):
            if not 1 <= getattr(self, name) <= 100:
                raise ValueError(f"Autoscaling.{name} must be between 1 and 100")


@dataclass(frozen=True)
class AppServiceArgs:
    """Everything an AppService needs. Secure by default: nothing here opens a door."""

    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    port: int
    identity: kube.Identity
    replicas: int = 1
    autoscaling: Autoscaling | None = None
    resources: kube.Resources = kube.RESOURCE_PRESETS["small"]
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)  # non-secret, goes to a ConfigMap
    secret_env: Sequence[SecretEnv] = ()
    command: Sequence[str] | None = None
    args: Sequence[str] | None = None
    probes: kube.HttpProbes | None = None  # default: /health + /ready on `port`
    metrics_path: str = "/metrics"
    ingress_from: Sequence[kube.NetworkPeer] = ()  # who may call the service port
    egress_to: Sequence[kube.NetworkPeer] = ()  # DNS is always allowed
    termination_grace_period_seconds: int = 30
    # e.g. IRSA: {"eks.amazonaws.com/role-arn": <role ARN>}; the API token is still not automounted.
    service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    release: Release = Rolling()  # components/release.py: rolling, blue-green or canary

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"AppServiceArgs.port must be 1-65535, got {self.port}")
        if self.replicas < 1:
            raise ValueError(f"AppServiceArgs.replicas must be >= 1, got {self.replicas}")
        overlap = set(self.env) & {s.name for s in self.secret_env}
        if overlap:
            raise ValueError(
                f"AppServiceArgs: {sorted(overlap)} set both as plain env and as secret env; keep one"
            )

    @property
    def replicated(self) -> bool:
        """More than one pod at once, so a PDB and spreading make sense."""
        if self.autoscaling is not None:
            return self.autoscaling.min_replicas > 1
        return self.replicas > 1


class AppService(pulumi.ComponentResource):
    """ServiceAccount, ConfigMap, Deployment, Service, HPA, PDB and NetworkPolicy of one service."""

    name: str
    service_name: str
    port: int
    url: pulumi.Output[str]

    def __init__(self, name: str, args: AppServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aquascene:app:AppService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ident = args.identity
        labels = ident.labels()
        selector = ident.selector()
        meta = lambda obj_name, annotations=None: kube.metadata(  # noqa: E731
            obj_name, args.namespace, labels, annotations
        )

        self.name = ident.name
        self.service_name = ident.name
        self.port = args.port

        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=meta(ident.name, dict(args.service_account_annotations) or None),
            automount_service_account_token=False,
            opts=child,
        )

        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=meta(f"{ident.name}-config"),
            data=dict(args.env),
            opts=child,
        )

        tmp_volume, tmp_mount = kube.tmp_volume()
        probes = args.probes or kube.HttpProbes(port="http")
        container = {
            "name": ident.name,
            "image": args.image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": args.port, "protocol": "TCP"}],
            "envFrom": [{"configMapRef": {"name": f"{ident.name}-config"}}],
            "resources": args.resources.render(),
            "securityContext": kube.container_security_context(),
            "volumeMounts": [tmp_mount],
            **probes.render(),
        }
        volumes = [tmp_volume]
        if args.secret_env:
            secrets_volume, secrets_mount = secret_files.app_settings_volume(
                [(s.name, s.secret_name, s.key) for s in args.secret_env])
            volumes.append(secrets_volume)
            container["volumeMounts"].append(secrets_mount)
        if args.command:
            container["command"] = list(args.command)
        if args.args:
            container["args"] = list(args.args)

        pod_annotations = {
            **kube.scrape_annotations(args.port, args.metrics_path),
            # A ConfigMap change alone does not restart pods; this hash does.
            "checksum/config": kube.checksum_output(args.env),
        }
        secrets = secrets_checksum(args.secret_env)
        if secrets is not None:
            pod_annotations["checksum/secrets"] = secrets
        pod_spec = {
            "serviceAccountName": ident.name,
            "automountServiceAccountToken": False,
            "securityContext": kube.pod_security_context(),
            "terminationGracePeriodSeconds": args.termination_grace_period_seconds,
            "containers": [container],
            "volumes": volumes,
        }

        def deployment(track: Track, after: Sequence[pulumi.Resource]) -> k8s.apps.v1.Deployment:
            pod_labels = {**labels, **track.selector(selector), **track.track_labels}
            if isinstance(track.image, str) and track.image != args.image:  # a track's own version
                pod_labels["app.kubernetes.io/version"] = kube.label_value(kube.image_version(track.image))
            spec = {**pod_spec, "containers": [{**container, "image": track.image}]}
            if args.replicated:
                spec.update(kube.spread_across_nodes_and_zones(track.selector(selector)))
            deployment_spec = {
                # Each slot's selector is its own from the start and never overlaps another's.
                "selector": {"matchLabels": track.selector(selector)},
                "revisionHistoryLimit": 5,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                    "spec": spec,
                },
            }
            # Under an HPA a plain rolling release leaves the count to the HPA; a serving colour
            # declares the live count, so the one taking the traffic has it before the Service moves.
            if track.replicas is not None:
                deployment_spec["replicas"] = track.replicas
            return k8s.apps.v1.Deployment(
                track.resource_name(name),
                metadata=kube.metadata(track.deployment_name(ident.name), args.namespace,
                                       {**labels, **track.selector(selector), **track.track_labels},
                                       kube.policy_exemptions(track.exemptions(args.autoscaling is not None)) or None),
                spec=deployment_spec,
                # No skipAwait: the engine waits until the Deployment is rolled out and Ready,
                # and what depends on it (the Service moving to it) waits with it.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.config_map, self.service_account, *after]),
            )

        self.release = args.release
        release_tracks = tracks(args.release, args.image, self._serving_size(name, args),
                                args.autoscaling is not None)
        serving_track = next(track for track in release_tracks if track.serving)
        self.deployments: dict[str, k8s.apps.v1.Deployment] = {
            track.slot: deployment(track, ()) for track in release_tracks if not track.idle}
        self.deployment = self.deployments[serving_track.slot]  # the one the Service selects and the HPA scales
        serving = serving_track.deployment_name(ident.name)

        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta(ident.name),
            spec=kube.service_spec(serving_track.selector(selector), {"http": args.port}),
            # A selector that moves to another colour waits until that colour's Deployment has the
            # serving size and is Ready: the Service never points at fewer pods than serve now.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment]),
        )
        self.canary_service_name: str | None = None
        if isinstance(args.release, Canary):
            self.canary_service_name = canary_service_name(ident.name)
            canary_track = next(track for track in release_tracks if track.slot == CANARY)
            self.canary_service = k8s.core.v1.Service(
                f"{name}-canary-service",
                metadata=meta(self.canary_service_name),
                spec=kube.service_spec(canary_track.selector(selector), {"http": args.port}),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployments[CANARY]]),
            )

        self.autoscaler: k8s.autoscaling.v2.HorizontalPodAutoscaler | None = None
        if args.autoscaling is not None:
            scaling = args.autoscaling
            self.autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-hpa",
                metadata=meta(ident.name),
                spec={
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": serving},
                    "minReplicas": scaling.min_replicas,
                    "maxReplicas": scaling.max_replicas,
                    "metrics": [
                        _utilization("cpu", scaling.cpu_utilization),
                        _utilization("memory", scaling.memory_utilization),
                    ],
                    # The seed's policies (scale up fast, down slowly); the scale-up window is
                    # 60 s instead of the seed's 300 s so a burst is answered within a minute.
                    "behavior": {
                        "scaleUp": {
                            "stabilizationWindowSeconds": 60,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
                        },
                        "scaleDown": {
                            "stabilizationWindowSeconds": 300,
                            "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
                        },
                    },
                },
                # Retargeted (a switch) only once the colour taking the traffic is Ready at size.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment]),
            )
        # The colour that stops serving scales down to idle_replicas only after the Service
        # and the HPA have moved away from it (same update: scale up -> switch -> scale down).
        switched = [self.service, *([self.autoscaler] if self.autoscaler is not None else [])]
        for track in release_tracks:
            if track.idle:
                self.deployments[track.slot] = deployment(track, switched)

        self.disruption_budget: k8s.policy.v1.PodDisruptionBudget | None = None
        if args.replicated:
            self.disruption_budget = k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata=meta(ident.name),
                spec={"maxUnavailable": 1, "selector": every_slot_selector(selector)},
                opts=child,
            )

        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta(ident.name),
            spec={**kube.network_policy_spec(selector, args.ingress_from, [args.port], args.egress_to),
                  "podSelector": every_slot_selector(selector)},  # every Deployment of the service
            opts=child,
        )

        self.url = pulumi.Output.concat(
            "http://", ident.name, ".", args.namespace, ".svc.cluster.local:", str(args.port)
        )
        self.register_outputs(
            {"service_name": self.service_name, "port": self.port, "url": self.url}
        )


    def _serving_size(self, name: str, args: AppServiceArgs) -> pulumi.Input[int]:
        """What the serving Deployment runs: its configured replicas; under an HPA, for a release
        that sizes by what serves now, the HPA's current replicas read from the cluster (at least
        its minimum). A stack reads its own HPA here, so a service enters such a release deployed."""
        configured = _configured_replicas(args)
        self.live_autoscaler: k8s.autoscaling.v2.HorizontalPodAutoscaler | None = None
        if args.autoscaling is None or not reads_live_size(args.release):
            return configured
        self.live_autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler.get(
            f"{name}-live-hpa", pulumi.Output.concat(args.namespace, "/", args.identity.name),
            opts=pulumi.ResourceOptions(parent=self))
        return self.live_autoscaler.status.apply(lambda status: max(configured, live_replicas(status)))


def _configured_replicas(args: AppServiceArgs) -> int:
    return args.autoscaling.min_replicas if args.autoscaling is not None else args.replicas


def live_replicas(status: object) -> int:
    """The replicas an HPA runs now (its status), 0 when it has not reported yet."""
    current = getattr(status, "current_replicas", None)
    if current is None and isinstance(status, dict):
        current = status.get("currentReplicas", status.get("current_replicas"))
    return int(current or 0)


def _utilization(resource: str, percent: int) -> dict:
    return {
        "type": "Resource",
        "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": percent}},
    }
