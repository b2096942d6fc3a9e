"""Application factory. ``uvicorn app.main:app`` serves the role named by SERVICE_ROLE."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import distribution_worker, migrate
from app.deps import reject_unknown_query
from app.errors import ApiError, install_error_handlers
from app.logging_setup import configure_logging
from app.metrics import ObservabilityMiddleware
from app.openapi import install_openapi
from app.dashboard import PREFIX as DASHBOARD_PREFIX
from app.dashboard import create_dashboard
from app.domain import users
from app.routers import content, distributions, generation, health, newsletters, scraping, subscribers
from app.services import Services
from app.settings import VERSION, Environment, Role, Settings, SettingsError, load_settings

log = logging.getLogger("app")


class BodySizeLimitMiddleware:
    """Rejects request bodies larger than MAX_REQUEST_BYTES with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    detail = f'{{"detail":"request body larger than {self.max_bytes} bytes"}}'.encode()
                    await send({"type": "http.response.start", "status": 413, "headers": [
                        (b"content-type", b"application/json"), (b"content-length", str(len(detail)).encode())]})
                    await send({"type": "http.response.body", "body": detail})
                    return
                await self.app(scope, receive, send)
                return
            if name == b"transfer-encoding":
                chunked = True
        if not chunked:  # neither Content-Length nor Transfer-Encoding: no body
            await self.app(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise ApiError(413, f"request body larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


ROLE_ROUTERS = {
    Role.CONTENT_MANAGER: [content.router, content.files_router],
    Role.AI_PROCESSOR: [generation.router],
    Role.WEB_SCRAPER: [scraping.router],
    Role.DISTRIBUTOR: [newsletters.router, distributions.router],
    Role.SUBSCRIBER_MANAGER: [subscribers.router],
}


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    settings = settings or load_settings()
    settings.check_serving()
    if configure_logs:
        configure_logging(settings.log_level, settings.json_logs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.should_auto_migrate:
            await anyio.to_thread.run_sync(migrate.upgrade, settings.resolved_database_url)
        services = Services.create(settings)
        services.start()
        app.state.services = services
        if settings.serves(Role.DISTRIBUTOR):
            distribution_worker.start(services)
        if settings.serves(Role.ADMIN_DASHBOARD):
            # Never blocks start-up: a database that is not reachable yet is retried in the background.
            await services.until_done("creating the first admin account", lambda: users.bootstrap_admin(services))
        # Move everything allocated at start-up out of the collector's way: later
        # full collections then scan only request-time objects (shorter pauses).
        if settings.environment != Environment.TEST:
            gc.collect()
            gc.freeze()
        log.info(
            "AquaScene content engine %s started as %s (%s, database=%s, cache=%s, storage=%s)",
            VERSION,
            settings.service_role.value,
            settings.environment.value,
            services.db.engine.dialect.name,
            services.kv.kind,
            services.storage.kind,
        )
        try:
            yield
        finally:
            await services.close()

    docs = settings.docs_enabled
    app = FastAPI(
        title="AquaScene Content Engine",
        version=VERSION,
        summary=f"Role: {settings.service_role.value}",
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
    )
    app.state.settings = settings
    app.state.schema_head = migrate.head_revision()
    install_error_handlers(app)
    install_openapi(app)

    if settings.serves(Role.CONTENT_MANAGER):
        app.add_api_route(endpoint=content.get_content, **content.READ_ROUTE)
    for role, routers in ROLE_ROUTERS.items():
        if settings.serves(role):
            for router in routers:
                app.include_router(router)
    app.include_router(health.router)
    if settings.serves(Role.ADMIN_DASHBOARD):
        # Its own ASGI app under /admin: the API's OpenAPI document and JSON errors stay as they are.
        app.mount(DASHBOARD_PREFIX, create_dashboard(app))
        if settings.service_role == Role.ADMIN_DASHBOARD:
            app.add_api_route("/", lambda: RedirectResponse(f"{DASHBOARD_PREFIX}/"), include_in_schema=False)

    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Content-Type", "X-API-Key", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["ETag", "X-Cache", "Retry-After", "X-Request-ID", "Location", "Idempotent-Replayed"],
        )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(ObservabilityMiddleware)
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    # `app` is built on first access (uvicorn app.main:app), so importing
    # create_app does not read the environment.
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        try:
            _app = create_app()
        except SettingsError as exc:
            print(str(exc), file=sys.stderr)
            raise SystemExit(2) from None
    return _app
