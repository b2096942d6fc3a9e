"""The machinery every rule shares: the Rule record, its Pulumi policy, config defaults and exemptions.

A rule is a plain function. A resource rule takes the `ResourceValidationArgs`
the analyzer builds and the rule's effective configuration and yields
violation messages; a stack rule takes the `StackValidationArgs` and yields
`(urn, message)` pairs. `Rule.policy()` wraps the function in the
`ResourceValidationPolicy` / `StackValidationPolicy` that `PolicyPack` runs,
so the same function runs under `pulumi preview --policy-pack` and offline.

Exemptions. A resource is exempt from a named rule only with a recorded,
non-empty reason, from one of:
- the annotation `policy.aquascene.io/exempt-<rule>: "<reason>"` on a
  Kubernetes object (the workload itself, not its pod template);
- the tag `policy.aquascene.io/exempt-<rule>` = `<reason>` on an AWS resource;
- the rule's `exemptions` config: `[{"resource": "<urn | pulumi name |
  Kind/name | Kind/namespace/name | namespace/name, globs allowed>",
  "reason": "..."}]`.
An exempted violation is not reported to the engine; a reporter that has an
`exempted(urn, exemption, message)` method (the offline runner's) is told
about it instead, so every exemption in use can be listed.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

EXEMPT_PREFIX = "policy.aquascene.io/exempt-"

# What a secret value looks like in a `pulumi stack export` evaluated offline
# (the ciphertext cannot be decrypted there). The engine itself hands the
# analyzer plaintext, so this placeholder only ever appears offline.
REDACTED_SECRET = "[secret]"

ResourceCheck = Callable[[ResourceValidationArgs, Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[StackValidationArgs, Mapping[str, Any]], Iterable[tuple[str, str]]]

EXEMPTIONS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "Resources exempt from this rule, each with the reason recorded.",
    "items": {
        "type": "object",
        "properties": {
            "resource": {
                "type": "string",
                "minLength": 1,
                "description": "URN, Pulumi name, Kind/name, Kind/namespace/name or namespace/name (globs allowed)",
            },
            "reason": {"type": "string", "minLength": 1},
        },
        "required": ["resource", "reason"],
        "additionalProperties": False,
    },
    "default": [],
}


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    enforcement_level: EnforcementLevel
    severity: Severity
    remediation: str
    category: str  # pods | workloads | network | secrets | aws | meta
    check: Callable[..., Iterable[Any]]
    scope: str = "resource"  # resource | stack
    config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # JSON-schema properties, with defaults
    exemptible: bool = True

    def __post_init__(self) -> None:
        if self.scope not in ("resource", "stack"):
            raise ValueError(f"rule {self.name}: scope must be resource or stack")
        for key, schema in self.config.items():
            if "default" not in schema:
                raise ValueError(f"rule {self.name}: config property {key} needs a default")

    @property
    def is_stack(self) -> bool:
        return self.scope == "stack"

    def config_properties(self) -> dict[str, dict[str, Any]]:
        properties = {k: dict(v) for k, v in self.config.items()}
        if self.exemptible:
            properties["exemptions"] = dict(EXEMPTIONS_SCHEMA)
        return properties

    def defaults(self) -> dict[str, Any]:
        return {k: v["default"] for k, v in self.config_properties().items()}

    def effective_config(self, given: Optional[Mapping[str, Any]]) -> dict[str, Any]:
        """Schema defaults overlaid with what the pack config sets for this rule."""
        config = self.defaults()
        for key, value in (given or {}).items():
            if key != "enforcementLevel":
                config[key] = value
        return config

    def policy(self) -> Policy:
        schema = PolicyConfigSchema(properties=self.config_properties()) if self.config_properties() else None
        common = dict(
            name=self.name,
            description=self.description,
            enforcement_level=self.enforcement_level,
            config_schema=schema,
            severity=self.severity,
            remediation_steps=self.remediation,
            tags=[self.category],
        )
        if self.is_stack:
            return StackValidationPolicy(validate=self._validate_stack, **common)
        return ResourceValidationPolicy(validate=self._validate_resource, **common)

    # ------------------------------------------------------------ validation

    def _validate_resource(self, args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        config = self.effective_config(args.get_config())
        noted = False
        for message in self.check(args, config):
            exemption = self._exemption(args.urn, args.name, args.resource_type, args.props, config)
            if exemption is None:
                report_violation(message, None)
            elif not noted:
                _note_exemption(report_violation, args.urn, exemption, message)
                noted = True

    def _validate_stack(self, args: StackValidationArgs, report_violation: ReportViolation) -> None:
        config = self.effective_config(args.get_config())
        by_urn = {r.urn: r for r in args.resources}
        noted: set[str] = set()
        for urn, message in self.check(args, config):
            resource = by_urn.get(urn)
            exemption = (
                self._exemption(urn, resource.name, resource.resource_type, resource.props, config)
                if resource is not None
                else None
            )
            if exemption is None:
                report_violation(message, urn or None)
            elif urn not in noted:
                _note_exemption(report_violation, urn, exemption, message)
                noted.add(urn)

    def _exemption(
        self, urn: str, name: str, resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any]
    ) -> Optional["Exemption"]:
        if not self.exemptible:
            return None
        return find_exemption(self.name, urn, name, resource_type, props, config.get("exemptions") or [])


@dataclass(frozen=True)
class Exemption:
    rule: str
    source: str  # e.g. "annotation policy.aquascene.io/exempt-pod-no-host-network"
    reason: str


def find_exemption(
    rule: str,
    urn: str,
    name: str,
    resource_type: str,
    props: Mapping[str, Any],
    config_exemptions: Sequence[Mapping[str, Any]],
) -> Optional[Exemption]:
    """The exemption of `rule` for this resource, if one with a non-empty reason is recorded."""
    key = EXEMPT_PREFIX + rule
    annotations = annotations_of(props)
    reason = _text(annotations.get(key))
    if reason:
        return Exemption(rule, f"annotation {key}", reason)
    tags = tags_of(props)
    reason = _text(tags.get(key))
    if reason:
        return Exemption(rule, f"tag {key}", reason)
    candidates = resource_identities(urn, name, resource_type, props)
    for entry in config_exemptions:
        pattern, reason = _text(entry.get("resource")), _text(entry.get("reason"))
        if pattern and reason and any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            return Exemption(rule, f"config exemption {pattern}", reason)
    return None


def resource_identities(urn: str, name: str, resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """The names a config exemption may use for a resource."""
    identities = [urn, name]
    kind = resource_type.rsplit(":", 1)[-1]
    meta = safe(lambda: props.get("metadata")) if resource_type.startswith("kubernetes:") else None
    if is_map(meta):
        obj_name = _text(safe(lambda: meta.get("name")))
        namespace = _text(safe(lambda: meta.get("namespace")))
        if obj_name:
            identities.append(f"{kind}/{obj_name}")
            if namespace:
                identities += [f"{kind}/{namespace}/{obj_name}", f"{namespace}/{obj_name}"]
    return [i for i in identities if i]


def _note_exemption(report_violation: ReportViolation, urn: str, exemption: Exemption, message: str) -> None:
    hook = getattr(report_violation, "exempted", None)
    if callable(hook):
        hook(urn, exemption, message)


# ------------------------------------------------------------------ helpers


def safe(get: Callable[[], Any], default: Any = None) -> Any:
    """`get()`, or `default` when the value is unknown during preview."""
    try:
        return get()
    except UnknownValueError:
        return default


def is_map(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def as_map(value: Any) -> Mapping[str, Any]:
    return value if is_map(value) else {}


def as_list(value: Any) -> Sequence[Any]:
    return value if is_list(value) else ()


def plain(value: Any) -> Any:
    """A proxied value as plain dicts and lists (unknowns raise, like the runtime)."""
    if is_map(value):
        return {k: plain(v) for k, v in value.items()}
    if is_list(value):
        return [plain(v) for v in value]
    return value


def dig(value: Any, *path: Any) -> Any:
    """value[p0][p1]... or None where a step is missing (unknowns raise, like the runtime)."""
    for step in path:
        if is_map(value):
            value = value.get(step)
        elif is_list(value) and isinstance(step, int) and 0 <= step < len(value):
            value = value[step]
        else:
            return None
    return value


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def annotations_of(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_map(safe(lambda: dig(props, "metadata", "annotations")))


def tags_of(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_map(safe(lambda: props.get("tags")))


def number(value: Any) -> Optional[float]:
    """A JSON number (the engine sends every number as a float), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def fmt_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def listing(items: Iterable[str]) -> str:
    return ", ".join(items)


def each(resources: Iterable[Any], *types: str) -> Iterator[Any]:
    for r in resources:
        if r.resource_type in types:
            yield r
