"""Validate Kubernetes objects against the JSON schemas of a pinned Kubernetes version.

The schemas ship in the `kubernetes-validate` package (strict variants:
unknown fields are errors). Validators are built once per kind and reused,
which keeps a whole stack's validation well under a second.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
import kubernetes_validate.utils as kv
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.33"  # the version the manifests are validated against


@dataclass(frozen=True)
class Verdict:
    status: str  # "valid" | "invalid" | "skipped"
    message: str = ""


def validate(obj: dict[str, Any], version: str = KUBERNETES_VERSION) -> Verdict:
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    validator = _validator(api_version, kind, version)
    if validator is None:
        return Verdict("skipped", f"no schema for {kind} {api_version} in Kubernetes {version} (custom resource)")
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is None:
        return Verdict("valid")
    where = ".".join(str(p) for p in error.absolute_path) or "(root)"
    return Verdict("invalid", f"{where}: {error.message}")


@functools.lru_cache(maxsize=None)
def _definitions(schema_dir: str) -> Registry:
    definitions = kv.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", KUBERNETES_VERSION)
    return Resource.from_contents(definitions) @ Registry()


@functools.lru_cache(maxsize=None)
def _validator(api_version: str, kind: str, version: str) -> jsonschema.protocols.Validator | None:
    schema_dir = f"v{version}.0-local-strict"
    # rbac.authorization.k8s.io/v1 -> rbac-v1, apps/v1 -> apps-v1, v1 -> v1
    file_api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{file_api}.json", version)
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(schema) @ _definitions(schema_dir)
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)
