"""The AquaScene policy pack's rules: plain, importable functions and their Pulumi policies.

    from policies.aquascene_policies import RULES, build_policies

`build_policies()` gives the `ResourceValidationPolicy` / `StackValidationPolicy`
objects that `policies/__main__.py` hands to `PolicyPack` and that the offline
runner (`aquascene policy`) evaluates the same way the analyzer does.
"""

from __future__ import annotations

from pulumi_policy import Policy

from .core import EXEMPT_PREFIX, REDACTED_SECRET, Exemption, Rule
from .rules import BY_NAME, RULES

PACK_NAME = "aquascene"


def build_policies() -> list[Policy]:
    return [rule.policy() for rule in RULES]


__all__ = ["BY_NAME", "EXEMPT_PREFIX", "Exemption", "PACK_NAME", "REDACTED_SECRET", "RULES", "Rule", "build_policies"]
