"""Per-environment composition of the AquaScene platform and its offline tooling."""
