"""Release strategies of an AppService: how a new version of a service reaches its users.

- Rolling: one Deployment replaced pod by pod (the default).
- BlueGreen: Deployments `<name>-blue` and `<name>-green`; the Service selects the
  `active` colour only. Switching `active` changes the Service's selector (and which
  Deployment the HPA scales): no pod restarts, and the idle colour keeps running
  (`idle_replicas`) for an instant switch back.
- Canary: Deployments `<name>-stable` and `<name>-canary` behind Services `<name>` and
  `<name>-canary`; the public HTTPRoute splits traffic between them by `weight` (0-100,
  0 is the rollback). In-cluster callers of `<name>` always reach stable.

Each track's pods carry `aquascene.io/track`, in the Deployment's selector (a track's
Deployment is its own object, so its selector never changes) and in the metrics Prometheus
scrapes from them (label `track`), which the CanaryErrorRateHigh alert compares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Union

import pulumi

TRACK_LABEL = "aquascene.io/track"
COLOURS = ("blue", "green")
IDLE_REASON = ("the idle colour of a blue-green release serves no traffic: it is the instant rollback, "
               "sized by idle_replicas; the active colour carries the availability")
CANARY_REASON = ("a canary is sized by its share of the traffic (at least one pod); the stable track "
                 "carries the availability")


@dataclass(frozen=True)
class Rolling:
    pass


@dataclass(frozen=True)
class BlueGreen:
    active: Literal["blue", "green"]
    idle_replicas: int = 1  # 0: the idle colour stops (no instant rollback any more)
    blue_image: pulumi.Input[str] | None = None  # None: the service's image
    green_image: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        if self.active not in COLOURS:
            raise ValueError(f"BlueGreen.active must be blue or green, got {self.active!r}")
        if self.idle_replicas < 0:
            raise ValueError(f"BlueGreen.idle_replicas must be >= 0, got {self.idle_replicas}")


@dataclass(frozen=True)
class Canary:
    weight: int  # percent of the public route's requests sent to the canary
    canary_image: pulumi.Input[str] | None = None  # None: the service's image
    stable_image: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 100:
            raise ValueError(f"Canary.weight must be 0-100, got {self.weight}")


Release = Union[Rolling, BlueGreen, Canary]


@dataclass(frozen=True)
class Track:
    """One Deployment of a service."""

    name: str | None  # the track label's value; None: the single Deployment of a rolling release
    image: pulumi.Input[str]
    replicas: int | None  # None: the HPA owns the count
    serving: bool  # what the Service `<name>` selects and the HPA scales

    @property
    def exemptions(self) -> dict[str, str]:
        """Policy rule -> reason. Only a serving track carries the service's availability."""
        if self.serving:
            return {}
        why = IDLE_REASON if self.name in COLOURS else CANARY_REASON
        return {"workload-min-replicas": why}

    def deployment_name(self, service: str) -> str:
        return f"{service}-{self.name}" if self.name else service


def canary_service_name(service: str) -> str:
    """The Service in front of a canary release's canary track (the HTTPRoute's weighted backend)."""
    return f"{service}-canary"


def canary_replicas(weight: int, base_replicas: int) -> int:
    """Canary pods in proportion to their share of the traffic, at least one (weight 0 keeps one warm)."""
    return max(1, math.ceil(base_replicas * weight / 100))


def tracks(release: Release, image: pulumi.Input[str], replicas: int, autoscaled: bool) -> list[Track]:
    """The Deployments a release runs; `replicas` is the serving track's size (an HPA's minimum if `autoscaled`)."""
    serving_replicas = None if autoscaled else replicas
    if isinstance(release, BlueGreen):
        images = {"blue": release.blue_image, "green": release.green_image}
        return [Track(colour, images[colour] or image,
                      serving_replicas if colour == release.active else release.idle_replicas,
                      colour == release.active) for colour in COLOURS]
    if isinstance(release, Canary):
        return [Track("stable", release.stable_image or image, serving_replicas, True),
                Track("canary", release.canary_image or image, canary_replicas(release.weight, replicas), False)]
    return [Track(None, image, serving_replicas, True)]
