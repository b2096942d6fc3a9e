"""Reading a pod's mounted secret files back as the settings they carry (tests only)."""

from __future__ import annotations

from typing import Any

from components.secret_files import APP_SECRETS_DIR


def app_secret_refs(pod: dict[str, Any]) -> dict[str, dict[str, str]]:
    """SETTING -> {"name": Secret, "key": key} for every file in the engine's secrets directory,
    after checking the volume is read-only, mode 0400, at the engine's SECRETS_DIR."""
    volume = next((v for v in pod.get("volumes", []) if v["name"] == "secrets"), None)
    if volume is None:
        return {}
    assert volume["projected"]["defaultMode"] == 0o400
    (mount,) = [m for c in pod["containers"] for m in c.get("volumeMounts", []) if m["name"] == "secrets"]
    assert mount == {"name": "secrets", "mountPath": APP_SECRETS_DIR, "readOnly": True}
    return {item["path"].upper(): {"name": source["secret"]["name"], "key": item["key"]}
            for source in volume["projected"]["sources"] for item in source["secret"]["items"]}
