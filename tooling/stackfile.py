"""Read a stack's Pulumi.<stack>.yaml the way the Pulumi CLI hands it to a program."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SECRET_PLACEHOLDER = "[secret]"


class StackFileError(Exception):
    pass


@dataclass(frozen=True)
class StackFile:
    stack: str
    path: Path
    config: dict[str, str]  # full key -> value as the engine passes it (JSON for objects)
    secret_keys: list[str]  # keys whose value (or part of it) is `secure:` in the file


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest directory holding Pulumi.yaml: from `start` (default CWD) upwards, then this checkout."""
    candidates = [start or Path.cwd()]
    candidates += list(candidates[0].resolve().parents)
    candidates.append(Path(__file__).resolve().parents[1])
    for directory in candidates:
        if (directory / "Pulumi.yaml").is_file():
            return directory
    raise StackFileError("no Pulumi.yaml found in the current directory or its parents; pass --project-dir")


def load_stack_file(stack: str, project_dir: Path) -> StackFile:
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
        raise StackFileError(f"no stack file {path.name} in {project_dir}; known stacks: {', '.join(known) or 'none'}")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path.name} is not valid YAML: {exc}") from None
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise StackFileError(f"{path.name}: 'config' must be a mapping of keys to values")
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in raw.items():
        value, had_secret = _strip_secure(value)
        if had_secret:
            secret_keys.append(key)
        config[key] = _engine_value(value)
    return StackFile(stack=stack, path=path, config=config, secret_keys=secret_keys)


def _strip_secure(value: Any) -> tuple[Any, bool]:
    """`{secure: <ciphertext>}` cannot be decrypted offline: replace it with a placeholder."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        return SECRET_PLACEHOLDER, True
    if isinstance(value, dict):
        pairs = [(k, _strip_secure(v)) for k, v in value.items()]
        return {k: v for k, (v, _) in pairs}, any(s for _, (_, s) in pairs)
    if isinstance(value, list):
        items = [_strip_secure(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _engine_value(value: Any) -> str:
    """Objects and lists travel as JSON, booleans as true/false, everything else as text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
