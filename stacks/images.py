"""Third-party images: the one place that applies registry mirrors and pins digests.

Every image the stack deploys that it did not build passes through
`ImagePolicy.resolve`. A mirror (a private registry or an ECR pull-through
cache) replaces the upstream registry host; with `pin_digests` the tag is
resolved to the digest the registry serves at deploy time and the workload
runs `name:tag@sha256:...`: what was previewed is what runs, and a moved
tag shows up as a diff in the next `pulumi preview`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

DEFAULT_REGISTRY = "docker.io"


def split_registry(ref: str) -> tuple[str, str]:
    """`ghcr.io/a/b:1` -> ("ghcr.io", "a/b:1"); `redis:7` -> ("docker.io", "library/redis:7")."""
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DEFAULT_REGISTRY, ref if rest else f"library/{ref}"


@dataclass(frozen=True)
class ImagePolicy:
    pin_digests: bool = False
    mirrors: Mapping[str, str] = field(default_factory=dict)  # upstream registry -> mirror prefix

    def resolve(self, ref: str) -> str:
        registry, path = split_registry(ref)
        mirror = self.mirrors.get(registry)
        resolved = f"{mirror.rstrip('/')}/{path}" if mirror else ref
        if self.pin_digests and "@sha256:" not in resolved:
            import pulumi_docker as docker  # slow to import: only stacks that pin digests need it

            digest = docker.get_registry_image(name=resolved).sha256_digest
            resolved = f"{resolved}@{digest}"
        return resolved
