"""The overview page's facts: each role's health, review queue, newsletters, subscribers, last scrape."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.settings import Role

HEALTH_TIMEOUT = 3.0
SERVICE_ROLES = [r for r in Role if r != Role.ALL]


@dataclass(frozen=True)
class RoleHealth:
    role: str
    state: str  # healthy | degraded | down | unknown
    reason: str


def _from_document(role: str, doc: dict) -> RoleHealth:
    status = doc.get("status")
    failing = [name for name, state in (doc.get("checks") or {}).items() if state == "unhealthy"]
    if status == "healthy":
        return RoleHealth(role, "healthy", "all checks pass")
    reason = ", ".join(f"{name} unhealthy" for name in failing) or f"reports {status}"
    return RoleHealth(role, "degraded" if status == "degraded" else "down", reason)


async def role_health(services) -> list[RoleHealth]:  # noqa: ANN001
    """Each role's /health: over HTTP where DASHBOARD_ROLE_URLS names it, in-process where this
    process serves the role (SERVICE_ROLE=all), else unknown."""
    from app.routers.health import collect_health

    settings = services.settings
    urls = settings.role_urls
    local: dict | None = None
    result = []
    for role in SERVICE_ROLES:
        url = urls.get(role.value)
        if url:
            try:
                response = await services.http.get(f"{url}/health", timeout=HEALTH_TIMEOUT)
                result.append(_from_document(role.value, response.json()))
            except httpx.TimeoutException:
                result.append(RoleHealth(role.value, "down", f"no answer from {url} within {HEALTH_TIMEOUT:.0f}s"))
            except (httpx.HTTPError, ValueError) as exc:
                result.append(RoleHealth(role.value, "down", f"{url}: {exc.__class__.__name__}: {exc}"[:200]))
        elif settings.serves(role):
            local = local or await collect_health(services)
            result.append(_from_document(role.value, local))
        else:
            result.append(RoleHealth(role.value, "unknown", "not listed in DASHBOARD_ROLE_URLS"))
    return result
