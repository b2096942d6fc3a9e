"""Secrets as read-only files in the pod, never environment variables.

An environment variable leaks into crash dumps, `kubectl describe`, child processes
and every log line that prints the environment; a file mounted from a Secret is
readable only by the pod's user (mode 0400, fsGroup adds group read) and is
refreshed in place when the Secret changes. The content engine reads each
setting from the file of its lower-case name in SECRETS_DIR (pydantic-settings'
`secrets_dir`); third-party images get their `*_FILE` / `__FILE` variables, or a
script that reads the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pulumi

APP_SECRETS_DIR = "/run/secrets/aquascene"  # the engine's default SECRETS_DIR (app/settings.py)
FILE_MODE = 0o400


@dataclass(frozen=True)
class SecretItem:
    """One key of a Secret, mounted as the file `path`."""

    secret_name: pulumi.Input[str]
    key: str
    path: str


def projected_volume(name: str, items: Sequence[SecretItem], mount_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(volume, mount) putting each item at mount_path/<path>, read-only, mode 0400."""
    volume = {
        "name": name,
        "projected": {
            "defaultMode": FILE_MODE,
            "sources": [{"secret": {"name": i.secret_name, "items": [{"key": i.key, "path": i.path}]}}
                        for i in items],
        },
    }
    return volume, {"name": name, "mountPath": mount_path, "readOnly": True}


def secret_volume(name: str, secret_name: pulumi.Input[str], mount_path: str,
                  keys: Sequence[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(volume, mount) of a whole Secret (or some of its keys, each at its own name), read-only, mode 0400."""
    source: dict[str, Any] = {"secretName": secret_name, "defaultMode": FILE_MODE}
    if keys is not None:
        source["items"] = [{"key": k, "path": k} for k in keys]
    return {"name": name, "secret": source}, {"name": name, "mountPath": mount_path, "readOnly": True}


def app_setting_file(setting: str) -> str:
    """The file an engine setting is read from (DATABASE_URL -> database_url)."""
    return setting.lower()


def app_settings_volume(settings: Sequence[tuple[str, pulumi.Input[str], str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(volume, mount) of the engine's secret settings, each (setting, Secret, key) at the file the
    engine reads it from in its secrets directory."""
    return projected_volume("secrets", [SecretItem(secret, key, app_setting_file(setting))
                                        for setting, secret, key in settings], APP_SECRETS_DIR)
