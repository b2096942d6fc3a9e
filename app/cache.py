"""Key-value store for cache, rate limits and idempotency keys.

Redis when ``REDIS_URL`` is set, otherwise an in-process store with the same
semantics (enough for one local instance). Redis errors never fail a request:
the cache misses, the limiter lets the request through, and /health reports
the store as unhealthy.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("app.cache")


class KeyValueStore(Protocol):
    kind: str

    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl: int) -> None: ...
    async def set_nx(self, key: str, value: bytes, ttl: int) -> bool: ...
    async def delete(self, *keys: str) -> None: ...
    async def incr_window(self, key: str, ttl: int) -> int: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class RedisStore:
    kind = "redis"

    def __init__(self, url: str, timeout: float) -> None:
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            max_connections=128,
        )

    async def get(self, key: str) -> bytes | None:
        try:
            return await self.client.get(key)
        except (RedisError, OSError) as exc:
            log.warning("redis get failed: %s", exc)
            return None

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        try:
            await self.client.set(key, value, ex=ttl)
        except (RedisError, OSError) as exc:
            log.warning("redis set failed: %s", exc)

    async def set_nx(self, key: str, value: bytes, ttl: int) -> bool:
        # Raises on Redis errors: callers rely on the answer for correctness.
        return bool(await self.client.set(key, value, ex=ttl, nx=True))

    async def delete(self, *keys: str) -> None:
        try:
            await self.client.delete(*keys)
        except (RedisError, OSError) as exc:
            log.warning("redis delete failed: %s", exc)

    async def incr_window(self, key: str, ttl: int) -> int:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, ttl, nx=True)
            count, _ = await pipe.execute()
            return int(count)
        except (RedisError, OSError) as exc:
            log.warning("redis rate-limit counter failed, allowing request: %s", exc)
            return 0

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self.client.aclose()


class MemoryStore:
    """In-process store; all calls happen on the event loop thread."""

    kind = "memory"

    def __init__(self, max_items: int = 10_000) -> None:
        self._data: dict[str, tuple[float, bytes | int]] = {}
        self._max_items = max_items

    def _live(self, key: str) -> bytes | int | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            del self._data[key]
            return None
        return item[1]

    def _put(self, key: str, value: bytes | int, ttl: int) -> None:
        if len(self._data) >= self._max_items:
            now = time.monotonic()
            for k in [k for k, (exp, _) in self._data.items() if exp <= now]:
                del self._data[k]
            while len(self._data) >= self._max_items:
                del self._data[next(iter(self._data))]
        self._data[key] = (time.monotonic() + ttl, value)

    async def get(self, key: str) -> bytes | None:
        value = self._live(key)
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        self._put(key, value, ttl)

    async def set_nx(self, key: str, value: bytes, ttl: int) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, value, ttl)
        return True

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def incr_window(self, key: str, ttl: int) -> int:
        item = self._data.get(key)
        if item is None or item[0] <= time.monotonic():
            self._put(key, 1, ttl)
            return 1
        count = int(item[1]) + 1
        self._data[key] = (item[0], count)
        return count

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


def create_store(redis_url: str | None, timeout: float) -> KeyValueStore:
    return RedisStore(redis_url, timeout) if redis_url else MemoryStore()


@dataclass(frozen=True)
class LimitResult:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int


class RateLimiter:
    """Fixed-window counter per key (one Redis round trip per check)."""

    def __init__(self, store: KeyValueStore, window_seconds: int = 60) -> None:
        self.store = store
        self.window = window_seconds

    async def hit(self, key: str, limit: int) -> LimitResult:
        now = time.time()
        window_index = int(now // self.window)
        count = await self.store.incr_window(f"counter:ratelimit:{key}:{window_index}", self.window + 1)
        reset_in = max(1, math.ceil((window_index + 1) * self.window - now))
        if count > limit:
            return LimitResult(False, limit, 0, reset_in)
        return LimitResult(True, limit, max(0, limit - count), reset_in)
