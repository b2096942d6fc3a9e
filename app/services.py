"""The per-process service container: database, key-value store, storage, provider."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import httpx

from app.cache import KeyValueStore, LocalCache, RateLimiter, create_store
from app.db import Database
from app.providers import Provider, create_provider
from app.settings import Settings
from app.storage import Storage, create_storage


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
        self._background.append(asyncio.create_task(self.kv.follow_invalidations(self.local_cache)))

    def cache_key(self, *parts: str) -> str:
        """Seed 001 key pattern: ``cache:{service}:{key}``."""
        return "cache:" + ":".join(parts)

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.http.aclose()
        await self.kv.close()
        await self.db.dispose()
