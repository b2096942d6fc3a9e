"""Secret rules: secrets reach containers as mounted files, never through the environment
(Checkov CKV_K8S_35); no secret-looking values in container env literals or ConfigMaps.

Messages name the variable or key, never the value.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Iterator, Mapping, Optional

from pulumi_policy import ResourceValidationArgs

from . import k8s
from .core import REDACTED_SECRET, as_list, as_map, is_map

# A name that announces a secret.
SECRET_NAME_RE = re.compile(
    r"(?i)(pass(word|wd|phrase)|secret|token|api[_-]?key|private[_-]?key|access[_-]?key|credential|auth[_-]?key|signing[_-]?key|\bdsn\b|_dsn$)"
)
# Names that announce where a secret lives, not the secret itself.
REFERENCE_NAME_RE = re.compile(r"(?i)(_file|_path|_dir|_name|_ref|_secret_name|_url)$")
# Values that are not secrets even under a secret-looking name.
HARMLESS_VALUE_RE = re.compile(
    r"(?i)^(|true|false|yes|no|on|off|none|null|\d+(\.\d+)?[smhdkmgi]*|/[^\s]*|\$\{[^}]*\}|\$\([^)]*\))$"
)
# Values that are secrets whatever their name.
SECRET_VALUE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("a URL with an embedded password", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("an API secret key", re.compile(r"\bsk-[A-Za-z0-9_-]{20,}")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+")),
]
# `password: xyz` / `api_key = xyz` inside a configuration file held in a ConfigMap.
_FILE_ASSIGNMENT_RE = re.compile(
    r"(?i)^\s*[\"']?([\w.-]*(password|passwd|secret|token|api_?key|private_?key|access_?key)[\w.-]*)[\"']?\s*[:=]\s*(.*?)\s*,?\s*$"
)
# The first token of a setting's value that is a reference, template or placeholder, not a secret:
# $VAR, "${VAR}", $(cmd), $__file{...}, {{ .Values.x }}, %(name)s, :'psql_var', /a/path, <redacted>, ***, numbers.
_FILE_HARMLESS_RE = re.compile(
    r"""(?i)^(\$|\{\{|%\(|:['"]|/|<|\*+$|~$|null$|none$|true$|false$|\d+$|\[|\{|$)"""
)


def secret_kind(name: str, value: Any, allowed: list[str]) -> Optional[str]:
    """Why `name=value` looks like a literal secret, or None."""
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed):
        return None
    if is_map(value) or not isinstance(value, str):
        return None
    if value == REDACTED_SECRET:
        return "a secret value"
    for description, pattern in SECRET_VALUE_PATTERNS:
        if pattern.search(value):
            return description
    if SECRET_NAME_RE.search(name) and not REFERENCE_NAME_RE.search(name) and not HARMLESS_VALUE_RE.match(value.strip()):
        return "a value under a secret-looking name"
    return None


def no_secret_env_literals(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    spec = k8s.pod_spec(args.resource_type, args.props)
    if spec is None:
        return
    ref = k8s.ref(args.resource_type, args.props, args.name)
    allowed = [str(a) for a in config["allowedNames"]]
    for c in k8s.containers(spec):
        for env in as_list(c.spec.get("env")):
            env = as_map(env)
            name = str(env.get("name", ""))
            kind = secret_kind(name, env.get("value"), allowed)
            if kind:
                yield f"{ref}: {c} env {name} holds {kind} as a literal; mount it from a Secret as a file"


def secrets_as_files(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    """A Secret in the environment leaks into crash dumps, `describe` output and child processes."""
    spec = k8s.pod_spec(args.resource_type, args.props)
    if spec is None:
        return
    ref = k8s.ref(args.resource_type, args.props, args.name)
    for c in k8s.containers(spec):
        for env in as_list(c.spec.get("env")):
            env = as_map(env)
            secret = as_map(as_map(env.get("valueFrom")).get("secretKeyRef"))
            if secret:
                yield f"{ref}: {c} env {env.get('name')} reads Secret {secret.get('name')} into the environment"
        for source in as_list(c.spec.get("envFrom")):
            secret = as_map(as_map(source).get("secretRef"))
            if secret:
                yield f"{ref}: {c} envFrom loads Secret {secret.get('name')} into the environment"


def no_secrets_in_configmaps(args: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterator[str]:
    if not k8s.is_kind(args.resource_type, "ConfigMap"):
        return
    ref = k8s.ref(args.resource_type, args.props, args.name)
    allowed = [str(a) for a in config["allowedNames"]]
    data = as_map(args.props.get("data"))
    for key in sorted(data):
        value = data.get(key)
        if not isinstance(value, str):
            continue
        if "\n" not in value.strip():
            kind = secret_kind(key, value, allowed)
            if kind:
                yield f"{ref}: key {key} holds {kind}; move it to a Secret"
            continue
        for number, line in enumerate(value.splitlines(), start=1):
            kind = _file_line_secret(line, allowed)
            if kind:
                yield f"{ref}: key {key} line {number} holds {kind}; move it to a Secret"


def _file_line_secret(line: str, allowed: list[str]) -> Optional[str]:
    for description, pattern in SECRET_VALUE_PATTERNS:
        if pattern.search(line):
            return description
    match = _FILE_ASSIGNMENT_RE.match(line)
    if not match or line.lstrip().startswith(("#", ";", "//")):
        return None
    name, value = match.group(1), match.group(3)
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed) or REFERENCE_NAME_RE.search(name):
        return None
    token = value.split()[0].strip("\"'`") if value.split() else ""
    if _FILE_HARMLESS_RE.match(token):
        return None
    return f"a {name} setting in plain text"
