"""/health, /ready and /metrics: served by every role."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.deps import get_services
from app.metrics import metrics_response
from app.models import utcnow
from app.services import Services
from app.settings import VERSION

router = APIRouter(tags=["health"])
CHECK_TIMEOUT = 3.0

CheckState = Literal["healthy", "unhealthy", "disabled"]


class HealthChecks(BaseModel):
    database: CheckState
    redis: CheckState
    storage: CheckState


class HealthOut(BaseModel):
    """Seed 001's health format."""

    status: Literal["healthy", "degraded", "unhealthy"] = Field(
        description="unhealthy (503) without the database; degraded (200) while Redis or object storage is down."
    )
    timestamp: datetime
    version: str
    service: str
    checks: HealthChecks
    metadata: dict[str, Any]


class ReadyOut(BaseModel):
    status: Literal["ready", "not_ready"]
    reason: str | None = None


async def _within(check: Callable[[], Awaitable[bool]]) -> bool:
    try:
        with anyio.fail_after(CHECK_TIMEOUT):
            return await check()
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        return False


async def database_ok(services: Services) -> bool:
    async with services.db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


async def schema_revision(services: Services) -> str | None:
    async with services.db.engine.connect() as conn:
        return await conn.scalar(text("SELECT version_num FROM alembic_version"))


async def storage_ok(services: Services) -> bool:
    return await anyio.to_thread.run_sync(
        services.storage.check, services.settings.s3_bucket_assets, abandon_on_cancel=True
    )


def _memory_mb() -> float | None:
    try:
        with open("/proc/self/statm") as fh:
            rss_pages = int(fh.read().split()[1])
        return round(rss_pages * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database is unreachable."}},
)
async def health(services: Annotated[Services, Depends(get_services)]) -> JSONResponse:
    body = await collect_health(services)
    return JSONResponse(body, status_code=503 if body["status"] == "unhealthy" else 200)


async def collect_health(services: Services) -> dict[str, Any]:
    """Seed 001's health document for this process (the /health body; the dashboard shows it too)."""

    async def db() -> bool:
        return await database_ok(services)

    async def kv() -> bool:
        return await services.kv.ping()

    async def storage() -> bool:
        return await storage_ok(services)

    results: dict[str, bool] = {}

    async def run(name: str, check: Callable[[], Awaitable[bool]]) -> None:
        results[name] = await _within(check)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "database", db)
        tg.start_soon(run, "redis", kv)
        tg.start_soon(run, "storage", storage)

    checks = {name: "healthy" if ok else "unhealthy" for name, ok in results.items()}
    if services.kv.kind != "redis":
        checks["redis"] = "disabled"
    if not results["database"]:
        status = "unhealthy"
    elif "unhealthy" in checks.values():
        status = "degraded"
    else:
        status = "healthy"
    settings = services.settings
    pool = services.db.engine.pool
    body = {
        "status": status,
        "timestamp": utcnow().isoformat().replace("+00:00", "Z"),
        "version": VERSION,
        "service": settings.service_role.value,
        "checks": {"database": checks["database"], "redis": checks["redis"], "storage": checks["storage"]},
        "metadata": {
            "uptime": int(time.monotonic() - services.started_at),
            "environment": settings.environment.value,
            "memory_usage_mb": _memory_mb(),
            "active_connections": pool.checkedout() if hasattr(pool, "checkedout") else None,
            "database_backend": services.db.engine.dialect.name,
            "cache_backend": services.kv.kind,
            "storage_backend": services.storage.kind,
        },
    }
    return body


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Database unreachable or schema not at head."}},
)
async def ready(request: Request, services: Annotated[Services, Depends(get_services)]) -> JSONResponse:
    expected = request.app.state.schema_head
    try:
        with anyio.fail_after(CHECK_TIMEOUT):
            current = await schema_revision(services)
    except (SQLAlchemyError, OSError, TimeoutError):
        reachable = await _within(lambda: database_ok(services))
        reason = "database schema not migrated; run `python -m app migrate`" if reachable else "database unreachable"
        return JSONResponse({"status": "not_ready", "reason": reason}, status_code=503)
    if current != expected:
        return JSONResponse(
            {"status": "not_ready", "reason": f"database schema at {current}, expected {expected}; run `python -m app migrate`"},
            status_code=503,
        )
    return JSONResponse({"status": "ready"})


router.add_api_route("/metrics", metrics_response, methods=["GET"], include_in_schema=False)
