"""The AquaScene CrossGuard policy pack.

`pulumi preview --policy-pack policies` runs `policies/__main__.py`, which only
builds the `PolicyPack`; the rules live in `policies.aquascene_policies`.
This file must not import `__main__` (constructing a PolicyPack starts a
server that never returns).
"""
