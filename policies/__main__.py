"""The AquaScene policy pack, as `pulumi preview --policy-pack policies` runs it.

Only builds the pack: the rules are plain functions in `aquascene_policies`.
Constructing `PolicyPack` starts the analyzer server and never returns, so
nothing imports this module.
"""

from aquascene_policies import PACK_NAME, build_policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=PACK_NAME,
    policies=build_policies(),
    enforcement_level=EnforcementLevel.ADVISORY,
    description="AquaScene guardrails: pod security, workload resilience, network isolation, secrets hygiene and AWS baselines.",
)
