"""The per-process service container: database, key-value store, storage, provider."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.cache import KeyValueStore, LocalCache, RateLimiter, create_store
from app.db import Database
from app.providers import Provider, create_provider
from app.settings import Role, Settings
from app.storage import Storage, create_storage


log = logging.getLogger("app.services")
SCHEDULE_INTERVAL = 15.0  # seconds between looks for scheduled newsletters that are due


@dataclass
class Services:
    settings: Settings
    db: Database
    kv: KeyValueStore
    limiter: RateLimiter
    storage: Storage
    http: httpx.AsyncClient
    provider: Provider
    local_cache: LocalCache
    started_at: float = field(default_factory=time.monotonic)
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings) -> Services:
        kv = create_store(settings.redis_url, settings.redis_timeout, settings.redis_cluster, settings.redis_key_prefix)
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.generation_timeout_seconds, connect=5.0),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
            follow_redirects=False,
        )
        return cls(
            settings=settings,
            db=Database(settings),
            kv=kv,
            limiter=RateLimiter(kv),
            storage=create_storage(settings),
            http=http,
            provider=create_provider(settings, http),
            local_cache=LocalCache(settings.content_local_cache_ttl),
        )

    def start(self) -> None:
        """Start background work (inside the running event loop)."""
        self.spawn(self.kv.follow_invalidations(self.local_cache))
        if self.settings.serves(Role.DISTRIBUTOR):
            self.spawn(self._every(SCHEDULE_INTERVAL, "scheduled newsletters", self._send_due))
        if self.settings.serves(Role.ADMIN_DASHBOARD):
            self.spawn(self._every(3600, "expired sessions", self._purge_sessions))

    def spawn(self, work: Coroutine[Any, Any, None], name: str | None = None) -> None:
        """Run ``work`` in the background until `stop_background` (or `close`) cancels it."""
        self._background.append(asyncio.create_task(work, name=name))

    async def _every(self, seconds: float, what: str, work: Callable[[], Awaitable[object]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception as exc:  # noqa: BLE001 - a failed round is retried next interval
                log.warning("background work on %s failed, retrying in %ss: %s: %s", what, seconds,
                            exc.__class__.__name__, exc)

    async def until_done(self, what: str, work: Callable[[], Awaitable[object]], interval: float = 10.0) -> None:
        """Run ``work`` now; if it fails, keep retrying it in the background every ``interval`` seconds."""
        try:
            await work()
            return
        except Exception as exc:  # noqa: BLE001
            log.warning("%s failed, retrying every %ss: %s: %s", what, interval, exc.__class__.__name__, exc)

        async def retry() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await work()
                    return
                except Exception as exc:  # noqa: BLE001
                    log.warning("%s failed again: %s: %s", what, exc.__class__.__name__, exc)

        self.spawn(retry())

    async def _send_due(self) -> None:
        from app.domain.newsletters import start_due

        await start_due(self)

    async def _purge_sessions(self) -> None:
        from app.dashboard.sessions import SessionStore

        await SessionStore(self).purge_expired()

    def cache_key(self, *parts: str) -> str:
        """Seed 001 key pattern: ``cache:{service}:{key}``."""
        return "cache:" + ":".join(parts)

    async def stop_background(self) -> None:
        """Cancel the background work `start` began (and any retries since)."""
        while self._background:
            task = self._background.pop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        await self.stop_background()
        await self.http.aclose()
        await self.kv.close()
        await self.db.dispose()
