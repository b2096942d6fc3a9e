"""The Pulumi program itself, importable so tests and tooling run exactly what `pulumi up` runs."""

from __future__ import annotations

from stacks.config import load_stack_config
from stacks.platform import Platform, compose


def program() -> Platform:
    """Validate the stack's config (before any resource is declared), compose, export outputs."""
    config = load_stack_config()
    platform = compose(config)
    platform.export()
    return platform
