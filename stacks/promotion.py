"""Promotion: a stack deploys the image another stack ran, by digest (`aquascene:image.promote_from`).

Prod builds nothing. It reads staging's `image` stack output through a
StackReference and runs exactly that reference, so what reaches production is
the digest staging's smoke tests passed on, never a tag that may have moved.
"""

from __future__ import annotations

import re

import pulumi

from stacks.catalog import CONFIG_NAMESPACE
from stacks.config import ConfigError

KEY = f"{CONFIG_NAMESPACE}:image.promote_from"
OUTPUT = "image"  # the stack output every stack exports (stacks/platform.py Platform.export)
# registry/repository[:tag]@sha256:<64 hex>
PINNED_RE = re.compile(r"^[^\s@]+@sha256:[a-f0-9]{64}$")


def promoted_image(source_stack: str) -> pulumi.Output[str]:
    """The `image` output of `source_stack`, which must be pinned by digest."""
    reference = pulumi.StackReference(source_stack)
    return reference.get_output(OUTPUT).apply(lambda image: require_digest(source_stack, image))


def require_digest(source_stack: str, image: object) -> str:
    if isinstance(image, str) and PINNED_RE.match(image):
        return image
    got = "no `image` output" if image is None else f"`image` = {image!r}"
    raise ConfigError(pulumi.get_stack(), [
        f"{KEY}: stack {source_stack} has {got}, not an image pinned by digest "
        f"(registry/repository[:tag]@sha256:<64 hex>); deploy {source_stack} with image.digest set "
        f"(the pipeline's build job does) before promoting from it"
    ])
