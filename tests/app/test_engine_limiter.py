"""The shared rate limiter: exact at the limit across processes, on both stores."""

from __future__ import annotations

import asyncio

import pytest

from app.cache import MemoryStore, RateLimiter, RedisStore
from engine_support import fresh_rate_window


def _store(kind: str, request: pytest.FixtureRequest):
    if kind == "memory":
        return MemoryStore()
    url = request.getfixturevalue("redis_url")
    import redis

    redis.Redis.from_url(url).flushdb()
    return RedisStore(url, timeout=2)


@pytest.mark.parametrize("kind", [pytest.param("redis", marks=pytest.mark.services), "memory"])
@pytest.mark.parametrize("limit", [1, 3, 10, 200])
def test_two_processes_share_one_limit_exactly(request, kind, limit):
    fresh_rate_window()

    async def scenario() -> int:
        store = _store(kind, request)
        first, second = RateLimiter(store), RateLimiter(store)  # two replicas, one shared counter
        allowed = 0
        for n in range(limit + 20):
            result = await (first if n % 2 else second).hit("GET:/x:ip:1", limit)
            allowed += result.allowed
            if not result.allowed:
                assert 1 <= result.retry_after <= 61
        await store.close()
        return allowed

    assert asyncio.run(scenario()) == limit


def test_clients_and_routes_are_limited_separately():
    fresh_rate_window()

    async def scenario() -> list[bool]:
        limiter = RateLimiter(MemoryStore())
        return [
            (await limiter.hit("GET:/a:ip:1", 1)).allowed,
            (await limiter.hit("GET:/a:ip:1", 1)).allowed,
            (await limiter.hit("GET:/a:ip:2", 1)).allowed,
            (await limiter.hit("GET:/b:ip:1", 1)).allowed,
        ]

    assert asyncio.run(scenario()) == [True, False, True, True]
