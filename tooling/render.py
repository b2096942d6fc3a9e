"""`aquascene render STACK`: what a stack would create, as validated manifests, offline.

Runs the real program under the recording engine with the stack's
Pulumi.<stack>.yaml, writes every Kubernetes object as YAML (one file per
object, a folder per kind), validates each against the Kubernetes schemas
of the stack's pinned version, and writes resources.json in the
`pulumi stack export` (version 3) shape.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tooling import kubeschema
from tooling.recording import REDACTED, Recorded, Recording, is_secret, record, redact_secrets, restore_ints
from tooling.stackfile import StackFile, load_stack_file

RESOURCES_FILE = "resources.json"
# libyaml's emitter when PyYAML has it (a 5x faster write of the same YAML), else the pure one.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass
class RenderedObject:
    kind: str
    name: str
    namespace: str | None
    path: Path
    verdict: kubeschema.Verdict


@dataclass
class RenderResult:
    stack: str
    out_dir: Path
    recording: Recording
    objects: list[RenderedObject] = field(default_factory=list)

    @property
    def invalid(self) -> list[RenderedObject]:
        return [o for o in self.objects if o.verdict.status == "invalid"]

    @property
    def skipped(self) -> list[RenderedObject]:
        return [o for o in self.objects if o.verdict.status == "skipped"]

    def type_counts(self) -> Counter[str]:
        return Counter(r.type for r in self.recording.resources)


def record_stack(stack_file: StackFile) -> Recording:
    """Run the program for a stack file under the recording engine (raises ConfigError)."""
    from stacks.program import program

    return record(
        program,
        stack=stack_file.stack,
        config=stack_file.config,
        secret_keys=stack_file.secret_keys,
    )


def render(stack: str, project_dir: Path, out_dir: Path) -> RenderResult:
    """Record the stack and write its render to `out_dir`, all or nothing."""
    _check_replaceable(out_dir)
    stack_file = load_stack_file(stack, project_dir)
    recording = record_stack(stack_file)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=_mkdir(out_dir.parent)))
    try:
        result = _write(recording, staging)
        (staging / RESOURCES_FILE).write_text(json.dumps(export_document(recording), indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.out_dir = out_dir
    for obj in result.objects:
        obj.path = out_dir / obj.path.relative_to(staging)
    return result


def _write(recording: Recording, out_dir: Path) -> RenderResult:
    version = recording.result.config.kubernetes.version
    result = RenderResult(stack=recording.stack, out_dir=out_dir, recording=recording)
    for resource in recording.kubernetes():
        manifest = manifest_of(resource)
        if "kind" in manifest:
            meta = manifest.get("metadata", {})
            kind, name, namespace = manifest["kind"], meta.get("name", resource.name), meta.get("namespace")
            verdict = kubeschema.validate(manifest, version)
        else:
            # A Helm release: its objects are templated by Helm at deploy time, not by this program.
            kind, name, namespace = resource.kind, manifest.get("name", resource.name), manifest.get("namespace")
            verdict = kubeschema.Verdict(
                "skipped", f"Helm chart {manifest.get('chart')} {manifest.get('version')}, templated at deploy time"
            )
        path = out_dir / kind / (f"{namespace}.{name}.yaml" if namespace else f"{name}.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.dump(_ordered(manifest), Dumper=_DUMPER, sort_keys=False, default_flow_style=False))
        result.objects.append(RenderedObject(kind, name, namespace, path, verdict))
    return result


def manifest_of(resource: Recorded) -> dict[str, Any]:
    """A Kubernetes object as it would be applied: integral numbers as ints, secrets redacted."""
    manifest = restore_ints(_redact_for_yaml(resource.inputs))
    if manifest.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if isinstance(manifest.get(key), dict):
                manifest[key] = {k: REDACTED for k in manifest[key]}
    return manifest


def export_document(recording: Recording) -> dict[str, Any]:
    """The recording in `pulumi stack export` version-3 shape (secrets redacted)."""
    resources = []
    for r in recording.resources:
        entry: dict[str, Any] = {"urn": r.urn, "custom": r.custom, "type": r.type}
        if r.custom:
            entry["id"] = r.id
        entry["inputs"] = restore_ints(r.redacted_inputs)
        entry["outputs"] = restore_ints(redact_secrets(r.outputs))
        if r.parent:
            entry["parent"] = r.parent
        if r.provider:
            entry["provider"] = r.provider
        entry["dependencies"] = r.dependencies
        entry["propertyDependencies"] = r.property_dependencies
        resources.append(entry)
    if recording.stack_outputs:
        stack_entry = next((e for e in resources if e["type"] == "pulumi:pulumi:Stack"), None)
        if stack_entry is not None:
            stack_entry["outputs"] = restore_ints(redact_secrets(recording.stack_outputs))
    return {
        "version": 3,
        "deployment": {
            "manifest": {"magic": "", "version": "aquascene-render"},
            "resources": resources,
        },
    }


def _check_replaceable(out_dir: Path) -> None:
    """A render replaces an empty directory or a previous render, never anything else."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / RESOURCES_FILE).is_file():
        raise FileExistsError(
            f"{out_dir} is not empty and holds no {RESOURCES_FILE}; choose an empty or new --out directory"
        )


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


_HEAD_KEYS = ("apiVersion", "kind", "metadata")


def _ordered(manifest: dict[str, Any]) -> dict[str, Any]:
    """apiVersion, kind, metadata first, then the rest; nested keys sorted (the engine's order is random)."""
    def sort(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: sort(value[k]) for k in sorted(value)}
        if isinstance(value, list):
            return [sort(v) for v in value]
        return value

    head = {k: sort(manifest[k]) for k in _HEAD_KEYS if k in manifest}
    return {**head, **{k: sort(v) for k, v in sorted(manifest.items()) if k not in head}}


def _redact_for_yaml(value: Any, inside_secret: bool = False) -> Any:
    """Secret leaves become "[secret]"; a secret object keeps its keys so the manifest stays valid."""
    if is_secret(value):
        return _redact_for_yaml(value["value"], inside_secret=True)
    if isinstance(value, dict):
        return {k: _redact_for_yaml(v, inside_secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_for_yaml(v, inside_secret) for v in value]
    return REDACTED if inside_secret else value
