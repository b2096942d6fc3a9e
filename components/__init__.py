"""Reusable Pulumi components for the AquaScene platform.

Nothing in this package knows about environments: callers pass data.
"""
