"""Release strategies from stack config (`aquascene:services.<name>.release`) to components."""

from __future__ import annotations

import dataclasses

from components.ingress import CanaryBackend, Route
from components.release import BlueGreen, Canary, Release, Rolling, canary_service_name
from stacks.config import BlueGreenRelease, CanaryRelease, StackConfig


def service_release(config: StackConfig, service: str) -> Release:
    """A service's release strategy, its track images resolved against the stack's image repository."""
    release, image = config.services[service].release, config.image
    if isinstance(release, BlueGreenRelease):
        return BlueGreen(active=release.active, idle_replicas=release.idle_replicas,
                         blue_image=image.variant(release.blue_image), green_image=image.variant(release.green_image))
    if isinstance(release, CanaryRelease):
        return Canary(weight=release.canary_weight, canary_image=image.variant(release.canary_image),
                      stable_image=image.variant(release.stable_image), active=release.active)
    return Rolling(active=release.active)


def weighted(config: StackConfig, route: Route) -> Route:
    """A public route to a canary-released service, split between its stable and canary Services."""
    settings = config.services.get(route.service) if route.namespace == config.namespace else None
    if settings is None or not isinstance(settings.release, CanaryRelease):
        return route
    canary = CanaryBackend(canary_service_name(route.service), settings.release.canary_weight)
    return dataclasses.replace(route, canary=canary)
