"""`aquascene policy`: evaluate the policy pack offline, the way Pulumi's analyzer does.

The rules are the pack's own policy objects (`policies.aquascene_policies`).
Each resource is handed to them as the analyzer server hands it: properties
through a protobuf Struct (numbers become floats) and `deserialize_properties`,
wrapped by `unknown_checking_proxy`; resource policies see inputs, stack
policies see every resource's outputs with parents and (property)
dependencies linked. Levels and properties come from a `--policy-pack-config`
file (`policies/config/<env>.json`).

Sources: a stack rendered under the recording engine (plaintext secrets, as
the engine would pass them), or a `pulumi stack export` document (secrets
arrive as ciphertext and become "[secret]").
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from policies.aquascene_policies import BY_NAME, PACK_NAME, REDACTED_SECRET, RULES, Exemption, build_policies
from tooling.recording import SECRET_SIG, SECRET_VALUE, Recording

PACK_VERSION = "0.1.0"
CONFIG_DIR = Path("policies") / "config"
LEVELS = {level.value: level for level in EnforcementLevel}
EXEMPT = "exempt"
_ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
_ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"


class PolicyConfigError(Exception):
    """A policy pack config file that cannot be used (exit code 2)."""


class PolicyInputError(Exception):
    """A stack export that cannot be read (exit code 2)."""


class PolicyEvaluationError(Exception):
    """A rule raised while evaluating a resource (a defect of the rule)."""


# ------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class ResourceState:
    """One resource as the analyzer would see it (before wire conversion)."""

    urn: str
    type: str
    custom: bool
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    parent: str = ""
    provider: str = ""  # provider reference "<urn>::<id>"
    dependencies: Sequence[str] = ()
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    protect: bool = False

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


def states_from_recording(recording: Recording) -> list[ResourceState]:
    return [
        ResourceState(
            urn=r.urn,
            type=r.type,
            custom=r.custom,
            inputs=r.inputs,
            outputs=r.outputs,
            parent=r.parent,
            provider=r.provider,
            dependencies=list(r.dependencies),
            property_dependencies={k: list(v) for k, v in r.property_dependencies.items()},
        )
        for r in recording.resources
    ]


def states_from_export(document: Any, source: str = "export") -> list[ResourceState]:
    """The resources of a `pulumi stack export` (version 3) document."""
    if not isinstance(document, dict) or not isinstance(document.get("deployment"), dict):
        raise PolicyInputError(f"{source}: not a stack export (expected {{\"version\": 3, \"deployment\": {{...}}}})")
    resources = document["deployment"].get("resources") or []
    if not isinstance(resources, list):
        raise PolicyInputError(f"{source}: deployment.resources must be a list")
    states = []
    for i, entry in enumerate(resources):
        if not isinstance(entry, dict) or not isinstance(entry.get("urn"), str) or not isinstance(entry.get("type"), str):
            raise PolicyInputError(f"{source}: deployment.resources[{i}] needs a urn and a type")
        if entry.get("delete") or entry.get("pendingReplacement"):
            continue  # a resource waiting to be deleted is not part of the stack's desired state
        states.append(
            ResourceState(
                urn=entry["urn"],
                type=entry["type"],
                custom=bool(entry.get("custom", True)),
                inputs=_object(entry.get("inputs")),
                outputs=_object(entry.get("outputs")),
                parent=entry.get("parent") or "",
                provider=entry.get("provider") or "",
                dependencies=[d for d in entry.get("dependencies") or [] if isinstance(d, str)],
                property_dependencies={
                    k: [d for d in v if isinstance(d, str)]
                    for k, v in (entry.get("propertyDependencies") or {}).items()
                    if isinstance(v, list)
                },
                protect=bool(entry.get("protect", False)),
            )
        )
    return states


def load_export(path: Path) -> list[ResourceState]:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise PolicyInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PolicyInputError(f"{path} is not valid JSON: {exc}") from None
    return states_from_export(document, str(path))


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def to_wire(value: Any) -> Any:
    """A property value as the engine would serialize it (secret ciphertext cannot be decrypted offline)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return {SECRET_SIG: SECRET_VALUE, "value": to_wire(value["value"])} if "value" in value else REDACTED_SECRET
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, pulumi.FileAsset):
        return {SECRET_SIG: _ASSET_SIG, "path": value.path}
    if isinstance(value, pulumi.StringAsset):
        return {SECRET_SIG: _ASSET_SIG, "text": value.text}
    if isinstance(value, pulumi.RemoteAsset):
        return {SECRET_SIG: _ASSET_SIG, "uri": value.uri}
    if isinstance(value, pulumi.FileArchive):
        return {SECRET_SIG: _ARCHIVE_SIG, "path": value.path}
    if isinstance(value, pulumi.RemoteArchive):
        return {SECRET_SIG: _ARCHIVE_SIG, "uri": value.uri}
    if isinstance(value, pulumi.AssetArchive):
        return {SECRET_SIG: _ARCHIVE_SIG, "assets": {k: to_wire(v) for k, v in value.assets.items()}}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def engine_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    """What the analyzer's `deserialize_properties(MessageToDict(request.properties))` yields."""
    struct = struct_pb2.Struct()
    json_format.ParseDict(to_wire(dict(props)), struct)
    return deserialize_properties(json_format.MessageToDict(struct))


# ------------------------------------------------------------------ config


@dataclass(frozen=True)
class PackConfig:
    """A `--policy-pack-config` file: per-policy enforcement levels and properties."""

    source: str = "pack defaults"
    levels: Mapping[str, EnforcementLevel] = field(default_factory=dict)
    properties: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def level(self, policy: Policy) -> EnforcementLevel:
        if policy.name in self.levels:
            return self.levels[policy.name]
        if "all" in self.levels:
            return self.levels["all"]
        return policy.enforcement_level or EnforcementLevel.ADVISORY

    def policy_config(self, name: str) -> Optional[dict[str, Any]]:
        """As the analyzer server's `_get_policy_config`: the properties, or None."""
        props = self.properties.get(name)
        return dict(props) if props else None


def parse_pack_config(document: Any, source: str) -> PackConfig:
    import jsonschema

    if not isinstance(document, dict):
        raise PolicyConfigError(f"{source}: expected a JSON object of policy name -> level or settings")
    problems: list[str] = []
    levels: dict[str, EnforcementLevel] = {}
    properties: dict[str, dict[str, Any]] = {}
    for name, value in document.items():
        rule = BY_NAME.get(name)
        if rule is None and name != "all":
            close = difflib.get_close_matches(name, list(BY_NAME), n=1)
            problems.append(f"{name}: no such policy in pack {PACK_NAME}" + (f" (did you mean {close[0]}?)" if close else ""))
            continue
        if isinstance(value, str):
            value = {"enforcementLevel": value}
        if not isinstance(value, dict):
            problems.append(f"{name}: expected an enforcement level or an object, got {type(value).__name__}")
            continue
        level = value.get("enforcementLevel")
        if level is not None:
            if level not in LEVELS:
                problems.append(f"{name}.enforcementLevel: {level!r} is not one of {', '.join(LEVELS)}")
            else:
                levels[name] = LEVELS[level]
        settings = {k: v for k, v in value.items() if k != "enforcementLevel"}
        if name == "all":
            if settings:
                problems.append(f"all: only enforcementLevel may be set for all policies, not {', '.join(settings)}")
            continue
        if settings:
            schema = {"type": "object", "properties": rule.config_properties(), "additionalProperties": False}
            validator = jsonschema.Draft7Validator(schema)
            for error in sorted(validator.iter_errors(settings), key=lambda e: list(e.absolute_path)):
                path = ".".join(str(p) for p in error.absolute_path)
                problems.append(f"{name}{'.' + path if path else ''}: {error.message}")
            properties[name] = settings
    if problems:
        raise PolicyConfigError(f"{source}: invalid policy pack config:\n" + "\n".join(f"  - {p}" for p in problems))
    return PackConfig(source=source, levels=levels, properties=properties)


def load_pack_config(path: Path) -> PackConfig:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise PolicyConfigError(f"cannot read policy config {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PolicyConfigError(f"policy config {path} is not valid JSON: {exc}") from None
    return parse_pack_config(document, str(path))


def default_config_path(project_dir: Path, environment: str) -> Optional[Path]:
    path = project_dir / CONFIG_DIR / f"{environment}.json"
    return path if path.is_file() else None


# ---------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    policy: str
    level: str  # mandatory | advisory | exempt
    urn: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"policy": self.policy, "level": self.level, "urn": self.urn, "message": self.message}


@dataclass
class PolicyReport:
    findings: list[Finding]
    resources: int
    policies: int
    config: str

    @property
    def mandatory(self) -> list[Finding]:
        return [f for f in self.findings if f.level == EnforcementLevel.MANDATORY.value]

    @property
    def advisory(self) -> list[Finding]:
        return [f for f in self.findings if f.level == EnforcementLevel.ADVISORY.value]

    @property
    def exemptions(self) -> list[Finding]:
        return [f for f in self.findings if f.level == EXEMPT]

    @property
    def exit_code(self) -> int:
        return 1 if self.mandatory else 0

    def violated(self) -> set[tuple[str, str]]:
        return {(f.policy, f.urn) for f in self.findings if f.level != EXEMPT}


class _Reporter:
    """The `report_violation` callback, plus `exempted` for the exemptions the rules skip."""

    def __init__(self, policy: Policy, level: EnforcementLevel, urn: str, findings: list[Finding]):
        self.policy, self.level, self.urn, self.findings = policy, level, urn, findings

    def __call__(self, message: str, urn: Optional[str] = None) -> None:
        self.findings.append(Finding(self.policy.name, self.level.value, urn or self.urn, message))

    def exempted(self, urn: str, exemption: Exemption, message: str) -> None:
        self.findings.append(
            Finding(self.policy.name, EXEMPT, urn or self.urn, f"exempt by {exemption.source}: {exemption.reason} (would be: {message})")
        )


_ORDER = {EnforcementLevel.MANDATORY.value: 0, EnforcementLevel.ADVISORY.value: 1, EXEMPT: 2}


def evaluate(
    states: Sequence[ResourceState],
    config: Optional[PackConfig] = None,
    policies: Optional[Sequence[Policy]] = None,
) -> PolicyReport:
    """Run every enabled policy over `states` as the analyzer server would."""
    config = config or PackConfig()
    policies = list(policies) if policies is not None else build_policies()
    by_urn = {s.urn: s for s in states}
    inputs = {s.urn: engine_properties(s.inputs or s.outputs) for s in states}
    outputs = {s.urn: engine_properties(s.outputs or s.inputs) for s in states}
    # The server wraps the properties afresh for every policy; the rules never write to
    # them, so one wrapping per resource (and one stack view) serves every policy here.
    resource_args = {
        s.urn: (unknown_checking_proxy(inputs[s.urn]), _options(s), _provider(s, by_urn, inputs)) for s in states
    }
    stack_resources: Optional[list[PolicyResource]] = None
    findings: list[Finding] = []
    active = 0
    for policy in policies:
        level = config.level(policy)
        if level == EnforcementLevel.DISABLED:
            continue
        if level == EnforcementLevel.REMEDIATE:
            level = EnforcementLevel.MANDATORY  # reported like the server reports it
        active += 1
        policy_config = config.policy_config(policy.name)
        if isinstance(policy, ResourceValidationPolicy):
            for state in states:
                props, options, provider = resource_args[state.urn]
                args = ResourceValidationArgs(
                    state.type, props, state.urn, state.name, options, provider, policy_config, {}
                )
                _run(policy, args, _Reporter(policy, level, state.urn, findings), findings, state.urn)
        elif isinstance(policy, StackValidationPolicy):
            if stack_resources is None:
                stack_resources = _stack_resources(states, by_urn, outputs, inputs)
            args = StackValidationArgs(stack_resources, policy_config, {})
            _run(policy, args, _Reporter(policy, level, "", findings), findings, "")
    findings.sort(key=lambda f: (_ORDER.get(f.level, 3), f.policy, f.urn, f.message))
    return PolicyReport(findings=findings, resources=len(states), policies=active, config=config.source)


def _run(policy: Policy, args: Any, reporter: _Reporter, findings: list[Finding], urn: str) -> None:
    try:
        policy.validate(args, reporter)
    except UnknownValueError as exc:
        findings.append(
            Finding(
                policy.name,
                EnforcementLevel.ADVISORY.value,
                urn,
                f"can't run policy '{policy.name}' from policy pack '{PACK_NAME}@v{PACK_VERSION}' during preview: {exc.message}",
            )
        )
    except _NotApplicableError:
        pass
    except Exception as exc:  # noqa: BLE001 - a defect of the rule, reported with its context
        raise PolicyEvaluationError(f"policy {policy.name} failed on {urn or 'the stack'}: {exc!r}") from exc


def _options(state: ResourceState) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        state.protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], state.parent or None
    )


def _provider(
    state: ResourceState, by_urn: Mapping[str, ResourceState], props: Mapping[str, dict[str, Any]]
) -> Optional[PolicyProviderResource]:
    if not state.provider:
        return None
    urn = state.provider.rsplit("::", 1)[0]
    provider = by_urn.get(urn)
    parts = urn.split("::")
    return PolicyProviderResource(
        provider.type if provider else (parts[-2] if len(parts) >= 4 else ""),
        unknown_checking_proxy(props[urn] if provider else {}),
        urn,
        parts[-1],
    )


def _stack_resources(
    states: Sequence[ResourceState],
    by_urn: Mapping[str, ResourceState],
    outputs: Mapping[str, dict[str, Any]],
    inputs: Mapping[str, dict[str, Any]],
) -> list[PolicyResource]:
    """As `AnalyzeStack` builds them: outputs as props, then parents and dependencies linked."""
    resources = {
        s.urn: PolicyResource(
            s.type,
            unknown_checking_proxy(outputs[s.urn]),
            s.urn,
            s.name,
            _options(s),
            _provider(s, by_urn, inputs),
            None,
            [],
            {},
        )
        for s in states
    }
    for s in states:
        resource = resources[s.urn]
        if s.parent in resources:
            resource.parent = resources[s.parent]
        resource.dependencies.extend(resources[d] for d in s.dependencies if d in resources)
        for key, deps in s.property_dependencies.items():
            resource.property_dependencies[key] = [resources[d] for d in deps if d in resources]
    return list(resources.values())


# ----------------------------------------------------------------- entry points


def evaluate_stack(stack: str, project_dir: Path, config_path: Optional[Path] = None) -> PolicyReport:
    """Render `stack` under the recording engine and evaluate it (config: policies/config/<env>.json)."""
    from tooling.render import record_stack
    from tooling.stackfile import load_stack_file

    stack_file = load_stack_file(stack, project_dir)
    config = load_pack_config(config_path) if config_path else None
    recording = record_stack(stack_file)
    if config is None:
        environment = getattr(getattr(recording.result, "config", None), "environment", None) or stack
        default = default_config_path(project_dir, environment)
        config = load_pack_config(default) if default else PackConfig()
    return evaluate(states_from_recording(recording), config)


def evaluate_export(path: Path, config_path: Optional[Path] = None) -> PolicyReport:
    config = load_pack_config(config_path) if config_path else PackConfig()
    return evaluate(load_export(path), config)


# ------------------------------------------------------------------ output


def resource_label(urn: str) -> str:
    """`urn:...::kubernetes:apps/v1:Deployment::api` -> `Deployment/api`."""
    if not urn:
        return "(stack)"
    parts = urn.split("::")
    if len(parts) < 4:
        return urn
    kind = parts[-2].rsplit("$", 1)[-1].rsplit(":", 1)[-1]
    return f"{kind}/{parts[-1]}"


def format_table(report: PolicyReport, title: str) -> str:
    lines = [f"{title}: {report.resources} resources, {report.policies} policies, config: {report.config}"]
    if report.findings:
        rows = [(f.policy, f.level, resource_label(f.urn), f.message) for f in report.findings]
        widths = [max(len(r[i]) for r in rows + [("RULE", "LEVEL", "RESOURCE", "")]) for i in range(3)]
        header = ("RULE", "LEVEL", "RESOURCE", "MESSAGE")
        for row in [header] + rows:
            lines.append("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)).rstrip())
    else:
        lines.append("no findings")
    lines.append(
        f"{len(report.mandatory)} mandatory, {len(report.advisory)} advisory, {len(report.exemptions)} exempt"
        + (" -> FAIL (mandatory violations)" if report.mandatory else " -> pass")
    )
    return "\n".join(lines)


def format_json(report: PolicyReport) -> str:
    return json.dumps([f.to_json() for f in report.findings], indent=2)


def rule_names() -> list[str]:
    return [r.name for r in RULES]
