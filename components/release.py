"""Release strategies of an AppService: how a new version of a service reaches its users.

A service has up to three Deployments, each a fixed slot that keeps its Kubernetes name,
Pulumi resource and selector for as long as it exists:

- blue: `<name>`, the service's own Deployment (the one a rolling release always had),
- green: `<name>-green`, the other colour of a blue-green release,
- canary: `<name>-canary`, the canary track.

Every strategy says which colour serves (`active`: blue unless set), so a change of strategy
keeps the Deployment that serves and only adds or removes the others:

- Rolling: the active colour alone, replaced pod by pod.
- BlueGreen: both colours; the Service `<name>` selects the active one. A switch scales the
  colour taking the traffic to the serving size (and waits until it is Ready) before the
  Service moves, then scales the other down to `idle_replicas`.
- Canary: the active colour is the stable track, `<name>-canary` the canary behind Service
  `<name>-canary`; the public HTTPRoutes split by `weight` (0-100, 0 is the rollback).
  In-cluster callers of `<name>` always reach stable.

Selectors never overlap and never change: blue's is the service's base selector (name and
instance, as a rolling release always had); green's and canary's pods carry their own
`app.kubernetes.io/instance` (`<instance>-green`, `<instance>-canary`), so no Deployment (or
the HPA, which counts the pods its target's selector matches) sees another's pods. Pods of
green and canary also carry `aquascene.io/track`; blue's carry none (adding one would restart
the serving pods), and Prometheus counts every non-canary pod as the stable baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Union

import pulumi

TRACK_LABEL = "aquascene.io/track"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COLOURS = ("blue", "green")
PRIMARY = "blue"  # the colour of the service's own Deployment `<name>`
CANARY = "canary"
SLOTS = (*COLOURS, CANARY)
IDLE_REASON = ("the idle colour of a blue-green release serves no traffic: it is the instant rollback, "
               "sized by idle_replicas; the active colour carries the availability")
CANARY_REASON = ("a canary is sized by its share of the traffic (at least one pod); the stable track "
                 "carries the availability")
LIVE_SIZE_REASON = ("spec.replicas is the HPA's current count, read from the cluster at every update: declared so "
                    "the Deployment taking the traffic has the serving size before the Service moves to it, and "
                    "kept declared because an omitted size falls back to one pod; the HPA still scales it")
Colour = Literal["blue", "green"]


def _check_colour(where: str, colour: str | None) -> None:
    if colour is not None and colour not in COLOURS:
        raise ValueError(f"{where}.active must be blue or green, got {colour!r}")


@dataclass(frozen=True)
class Rolling:
    # The colour whose Deployment runs the service; None: blue, its size left to the HPA alone.
    # Set (kept from blue-green) the Deployment is sized from the live HPA like a serving colour.
    active: Colour | None = None

    def __post_init__(self) -> None:
        _check_colour("Rolling", self.active)


@dataclass(frozen=True)
class BlueGreen:
    active: Colour
    idle_replicas: int = 1  # 0: the idle colour stops (no instant rollback any more)
    blue_image: pulumi.Input[str] | None = None  # None: the service's image
    green_image: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        _check_colour("BlueGreen", self.active)
        if self.idle_replicas < 0:
            raise ValueError(f"BlueGreen.idle_replicas must be >= 0, got {self.idle_replicas}")


@dataclass(frozen=True)
class Canary:
    weight: int  # percent of the public route's requests sent to the canary
    canary_image: pulumi.Input[str] | None = None  # None: the service's image
    stable_image: pulumi.Input[str] | None = None
    active: Colour | None = None  # the colour that is the stable track (as Rolling.active)

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 100:
            raise ValueError(f"Canary.weight must be 0-100, got {self.weight}")
        _check_colour("Canary", self.active)


Release = Union[Rolling, BlueGreen, Canary]


def serving_colour(release: Release) -> str:
    return release.active or PRIMARY


def declares_serving_size(release: Release) -> bool:
    """Whether the serving Deployment's size is declared (the live HPA count under an HPA).

    Once declared it must stay declared: a size the stack stops declaring falls back to
    Kubernetes' default of one pod (server-side apply drops a field its only owner omits).
    """
    return release.active is not None


def reads_live_size(release: Release) -> bool:
    """Whether an autoscaled service's stack reads its live HPA: every strategy that sizes a
    Deployment by what serves now. Plain rolling does not (a new service has no HPA yet)."""
    return declares_serving_size(release) or isinstance(release, Canary)


@dataclass(frozen=True)
class Track:
    """One Deployment of a service."""

    slot: str  # blue, green or canary
    image: pulumi.Input[str]
    replicas: pulumi.Input[int] | None  # None: the HPA alone owns the count
    serving: bool  # what the Service `<name>` selects and the HPA scales
    idle: bool = False  # a colour that serves nothing: scaled down only after the Service moved away

    def exemptions(self, autoscaled: bool) -> dict[str, str]:
        """Policy rule -> reason. Only a serving track carries the service's availability; a serving
        track under an HPA that declares its size declares the HPA's own live count."""
        if self.serving:
            return {"hpa-owns-replicas": LIVE_SIZE_REASON} if autoscaled and self.replicas is not None else {}
        return {"workload-min-replicas": IDLE_REASON if self.slot in COLOURS else CANARY_REASON}

    @property
    def track_labels(self) -> dict[str, str]:
        return {} if self.slot == PRIMARY else {TRACK_LABEL: self.slot}

    def deployment_name(self, service: str) -> str:
        return service if self.slot == PRIMARY else f"{service}-{self.slot}"

    def resource_name(self, name: str) -> str:
        """The Pulumi name: blue keeps the one a rolling release always had."""
        return f"{name}-deployment" if self.slot == PRIMARY else f"{name}-{self.slot}-deployment"

    def selector(self, base: dict[str, str]) -> dict[str, str]:
        """The Deployment's selector: the base for blue, its own instance otherwise (never overlapping)."""
        return dict(base) if self.slot == PRIMARY else {**base, INSTANCE_LABEL: slot_instance(base, self.slot)}


def slot_instance(base: dict[str, str], slot: str) -> str:
    return base[INSTANCE_LABEL] if slot == PRIMARY else f"{base[INSTANCE_LABEL]}-{slot}"


def every_slot_selector(base: dict[str, str]) -> dict:
    """A label selector (matchLabels/matchExpressions) of every pod of the service, whatever its slot."""
    return {"matchLabels": {k: v for k, v in base.items() if k != INSTANCE_LABEL},
            "matchExpressions": [{"key": INSTANCE_LABEL, "operator": "In",
                                  "values": [slot_instance(base, slot) for slot in SLOTS]}]}


def canary_service_name(service: str) -> str:
    """The Service in front of a canary release's canary track (the HTTPRoute's weighted backend)."""
    return f"{service}-canary"


def canary_replicas(weight: int, base_replicas: int) -> int:
    """Canary pods in proportion to their share of the traffic, at least one (weight 0 keeps one warm)."""
    return max(1, math.ceil(base_replicas * weight / 100))


def tracks(release: Release, image: pulumi.Input[str], serving_size: pulumi.Input[int],
           autoscaled: bool) -> list[Track]:
    """The Deployments a release runs. `serving_size`: what the serving Deployment must run (the
    configured replicas; under an HPA the live count, at least its minimum)."""
    serving = serving_colour(release)
    serving_replicas = None if autoscaled and not declares_serving_size(release) else serving_size
    if isinstance(release, BlueGreen):
        images = {"blue": release.blue_image, "green": release.green_image}
        return [Track(colour, images[colour] or image,
                      serving_replicas if colour == serving else release.idle_replicas,
                      colour == serving, idle=colour != serving) for colour in COLOURS]
    stable = Track(serving, (release.stable_image if isinstance(release, Canary) else None) or image,
                   serving_replicas, True)
    if isinstance(release, Canary):
        weight = release.weight
        share = pulumi.Output.from_input(serving_size).apply(lambda n: canary_replicas(weight, n))
        return [stable, Track(CANARY, release.canary_image or image, share, False)]
    return [stable]
