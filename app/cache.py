"""Key-value store for cache, rate limits and idempotency keys.

Redis when ``REDIS_URL`` is set, otherwise an in-process store with the same
semantics (enough for one local instance). Redis errors never fail a request:
the cache misses, the limiter lets the request through, idempotency keys are not
checked, and /health reports the store as unhealthy. After a failure the store
is skipped for ``RETRY_INTERVAL`` seconds, so a Redis that hangs (rather than
refusing connections) costs one request per interval a timeout, not every request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("app.cache")
INVALIDATION_CHANNEL = "aquascene:cache-invalidation"
RETRY_INTERVAL = 1.0


class StoreUnavailable(RedisError):
    """Redis failed recently; not asked again until the retry interval has passed."""


class KeyValueStore(Protocol):
    kind: str

    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl: int) -> None: ...
    async def set_nx(self, key: str, value: bytes, ttl: int) -> bool: ...
    async def delete(self, *keys: str) -> None: ...
    async def incr_window(self, key: str, ttl: int, amount: int = 1) -> int: ...
    async def ping(self) -> bool: ...
    async def publish_invalidation(self, key: str) -> None: ...
    async def follow_invalidations(self, local: LocalCache) -> None: ...
    async def close(self) -> None: ...


class RedisStore:
    """Redis, standalone or a cluster.

    A cluster has a single database, so services sharing one keep apart by
    ``prefix`` (REDIS_KEY_PREFIX); standalone Redis gives each its own DB.
    Pub/sub goes through one node: a cluster forwards PUBLISH to every node.
    """

    kind = "redis"

    def __init__(self, url: str, timeout: float, cluster: bool = False, prefix: str = "") -> None:
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        self.prefix = prefix
        self._skip_until = 0.0
        self.following = asyncio.Event()  # set while subscribed to the invalidation feed
        if cluster:
            self.client = aioredis.RedisCluster.from_url(url, max_connections=128, **options)
            self.pubsub_client = aioredis.Redis.from_url(url, **options)
        else:
            self.client = aioredis.Redis.from_url(url, health_check_interval=30, max_connections=128, **options)
            self.pubsub_client = self.client

    def _key(self, key: str) -> str:
        return self.prefix + key

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._skip_until

    def _failed(self, what: str, exc: BaseException) -> None:
        if self.available:  # log once per interval, not once per request
            log.warning("redis %s failed, skipping redis for %.0fs: %s", what, RETRY_INTERVAL, exc)
        self._skip_until = time.monotonic() + RETRY_INTERVAL

    async def get(self, key: str) -> bytes | None:
        if not self.available:
            return None
        try:
            return await self.client.get(self._key(key))
        except (RedisError, OSError) as exc:
            self._failed("get", exc)
            return None

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        if not self.available:
            return
        try:
            await self.client.set(self._key(key), value, ex=ttl)
        except (RedisError, OSError) as exc:
            self._failed("set", exc)

    async def set_nx(self, key: str, value: bytes, ttl: int) -> bool:
        # Raises on Redis errors: callers rely on the answer for correctness.
        if not self.available:
            raise StoreUnavailable("redis failed recently")
        try:
            return bool(await self.client.set(self._key(key), value, ex=ttl, nx=True))
        except (RedisError, OSError) as exc:
            self._failed("set_nx", exc)
            raise

    async def delete(self, *keys: str) -> None:
        if not self.available:
            return
        try:
            await self.client.delete(*(self._key(k) for k in keys))
        except (RedisError, OSError) as exc:
            self._failed("delete", exc)

    async def incr_window(self, key: str, ttl: int, amount: int = 1) -> int:
        if not self.available:
            return 0  # fail open: see RateLimiter
        try:
            pipe = self.client.pipeline()  # one key, so one cluster slot
            pipe.incrby(self._key(key), amount)
            pipe.expire(self._key(key), ttl, nx=True)
            count, _ = await pipe.execute()
            return int(count)
        except (RedisError, OSError) as exc:
            self._failed("rate-limit counter", exc)
            return 0

    async def ping(self) -> bool:
        # Always asks (it is the health probe); an answer ends the skip at once.
        try:
            ok = bool(await self.client.ping())
        except (RedisError, OSError):
            return False
        if ok:
            self._skip_until = 0.0
        return ok

    async def publish_invalidation(self, key: str) -> None:
        if not self.available:
            return
        try:
            await self.pubsub_client.publish(INVALIDATION_CHANNEL, key)
        except (RedisError, OSError) as exc:
            self._failed("publish", exc)

    async def follow_invalidations(self, local: LocalCache) -> None:
        """Drop local entries that any replica invalidated; runs until cancelled."""
        while True:
            pubsub = self.pubsub_client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(INVALIDATION_CHANNEL)
                local.clear()  # anything published while we were not listening is lost
                self.following.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        local.delete(message["data"].decode())
            except (RedisError, OSError) as exc:
                self.following.clear()
                log.warning("cache invalidation feed interrupted, retrying: %s", exc)
                local.clear()
                await asyncio.sleep(1.0)
            finally:
                await pubsub.aclose()

    async def close(self) -> None:
        await self.client.aclose()
        if self.pubsub_client is not self.client:
            await self.pubsub_client.aclose()


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

    async def incr_window(self, key: str, ttl: int, amount: int = 1) -> int:
        item = self._data.get(key)
        if item is None or item[0] <= time.monotonic():
            self._put(key, amount, ttl)
            return amount
        count = int(item[1]) + amount
        self._data[key] = (item[0], count)
        return count

    async def ping(self) -> bool:
        return True

    async def publish_invalidation(self, key: str) -> None:
        pass  # a single process: its local cache is invalidated directly

    async def follow_invalidations(self, local: LocalCache) -> None:
        pass

    async def close(self) -> None:
        self._data.clear()


class LocalCache:
    """Small per-process TTL cache in front of the shared store for hot reads.

    Writes invalidate the entry here at once and, through Redis pub/sub, on
    every other replica within milliseconds; ``ttl`` bounds staleness should
    an invalidation be missed (e.g. while Redis is unreachable).
    """

    def __init__(self, ttl: float, max_items: int = 10_000) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._data: dict[str, tuple[float, bytes]] = {}

    def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            self._data.pop(key, None)
            return None
        return item[1]

    def set(self, key: str, value: bytes) -> None:
        if self.ttl <= 0:
            return
        if len(self._data) >= self.max_items:
            now = time.monotonic()
            self._data = {k: v for k, v in self._data.items() if v[0] > now}
            while len(self._data) >= self.max_items:
                del self._data[next(iter(self._data))]
        # Jittered expiry, so entries cached together do not all expire together.
        self._data[key] = (time.monotonic() + self.ttl * random.uniform(0.5, 1.0), value)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()


def create_store(redis_url: str | None, timeout: float, cluster: bool = False, prefix: str = "") -> KeyValueStore:
    return RedisStore(redis_url, timeout, cluster, prefix) if redis_url else MemoryStore()


@dataclass(frozen=True)
class LimitResult:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int


@dataclass
class _Window:
    index: int
    shared: int = 0  # the shared counter as of the last sync
    pending: int = 0  # local hits not yet added to the shared counter
    synced_at: float | None = None


class RateLimiter:
    """Fixed-window limits shared through the key-value store.

    Exact where it matters, cheap where it does not: while a client is well
    under its limit (below ``local_fraction`` of it) each process counts hits
    locally and adds them to the shared counter at least every
    ``sync_interval`` seconds or every ``batch_fraction`` of the limit;
    closer to the limit every hit is an atomic INCRBY on the shared counter.
    Across N processes a limit can be overrun by at most N x batch_fraction.

    Fails open: while Redis is unreachable the shared count reads as 0 and
    requests are allowed (availability over enforcement; see the README).
    """

    def __init__(
        self,
        store: KeyValueStore,
        window_seconds: int = 60,
        sync_interval: float = 1.0,
        local_fraction: float = 0.5,
        batch_fraction: float = 0.1,
        max_tracked: int = 50_000,
    ) -> None:
        self.store = store
        self.window = window_seconds
        self.sync_interval = sync_interval
        self.local_fraction = local_fraction
        self.batch_fraction = batch_fraction
        self.max_tracked = max_tracked
        self._local: dict[str, _Window] = {}

    def _state(self, key: str, index: int) -> _Window:
        state = self._local.get(key)
        if state is None or state.index != index:
            if len(self._local) >= self.max_tracked:
                self._local = {k: v for k, v in self._local.items() if v.index == index}
            state = self._local[key] = _Window(index)
        return state

    async def hit(self, key: str, limit: int) -> LimitResult:
        now = time.time()
        index = int(now // self.window)
        reset_in = max(1, math.ceil((index + 1) * self.window - now))
        state = self._state(key, index)
        state.pending += 1
        estimate = state.shared + state.pending
        if (
            state.synced_at is not None
            and now - state.synced_at < self.sync_interval
            and estimate <= limit * self.local_fraction
            and state.pending <= limit * self.batch_fraction
        ):
            return LimitResult(True, limit, limit - estimate, reset_in)
        amount, state.pending = state.pending, 0
        count = await self.store.incr_window(f"counter:ratelimit:{key}:{index}", self.window + 1, amount)
        state.shared, state.synced_at = count, now
        if count > limit:
            return LimitResult(False, limit, 0, reset_in)
        return LimitResult(True, limit, max(0, limit - count), reset_in)
