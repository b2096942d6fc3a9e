"""Helpers for the AWS component tests: find resources, correlate siblings, read policies."""

from __future__ import annotations

import json
from typing import Any

from components.aws import AwsTags
from tooling.recording import ACCOUNT_ID, REGION, Recorded, Recording

TAGS = AwsTags("aquascene", "test")
EXPECTED_TAGS = {"Project": "aquascene", "Environment": "test", "ManagedBy": "pulumi"}
ZONES = [f"{REGION}{z}" for z in "abc"]  # what the mock's getAvailabilityZones answers
__all__ = ["ACCOUNT_ID", "REGION", "TAGS", "EXPECTED_TAGS", "ZONES", "one", "named", "policy_of",
           "assert_least_privilege"]


def one(rec: Recording, type_token: str) -> Recorded:
    found = rec.of_type(type_token)
    assert len(found) == 1, f"expected exactly one {type_token}, found {[r.name for r in found]}"
    return found[0]


def named(rec: Recording, type_token: str, name: str) -> Recorded:
    found = [r for r in rec.of_type(type_token) if r.name == name]
    assert len(found) == 1, f"no single {type_token} named {name!r}: {[r.name for r in rec.of_type(type_token)]}"
    return found[0]


def policy_of(r: Recorded, key: str = "policy") -> dict[str, Any]:
    return json.loads(r.plain_inputs[key])


def assert_least_privilege(document: dict[str, Any]) -> None:
    """No wildcard action; no resource that is `*` or wildcards anything but a named parent's contents."""
    assert document["Version"] == "2012-10-17"
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources:
            assert resource != "*", statement
            assert resource.startswith("arn:aws:"), resource
            assert not any("*" in part for part in resource.split(":")[:5]), resource
            assert resource.split(":", 5)[5] != "*", resource
            assert "*" not in resource[:-1], resource
            assert not resource.endswith("*") or resource[-2] in "/:", resource
