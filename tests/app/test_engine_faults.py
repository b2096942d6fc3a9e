"""Fault drills against real services that each drill owns: PostgreSQL restarted under
load, Redis stopped under load, S3 unavailable during uploads, and a soak.

The engine runs under uvicorn on 127.0.0.1; load comes from local clients only and
is bounded in time and count. Figures are printed in the run's summary.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest

from app import migrate
from engine_support import AUTH, free_port
from fault_support import (
    Load,
    PrivatePostgres,
    PrivateRedis,
    percentile,
    report,
    start_engine,
    stop_engine,
)

pytestmark = pytest.mark.services

RECOVERY_LIMIT = 10.0  # seconds from the database being back to the first acknowledged write
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))


@pytest.fixture
def private_postgres():
    pg = PrivatePostgres()
    pg.start()
    migrate.upgrade(pg.url)
    yield pg
    pg.remove()


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def test_postgres_restart_under_load_fails_fast_recovers_and_loses_no_write(private_postgres, tmp_path, request):
    pg = private_postgres
    engine = start_engine({"DATABASE_URL": pg.url, "DB_POOL_SIZE": "8"}, tmp_path)
    marks: dict[str, float] = {}
    load = Load(engine.base_url, clients=8, timeout=15)

    async def scenario() -> None:
        await asyncio.sleep(3)
        marks["down"] = time.monotonic()
        await asyncio.to_thread(pg.stop)
        await asyncio.sleep(5)
        marks["restarting"] = time.monotonic()
        await asyncio.to_thread(pg.start)
        marks["up"] = time.monotonic()
        await asyncio.sleep(RECOVERY_LIMIT + 2)

    try:
        asyncio.run(load.run(scenario))
    finally:
        stop_engine(engine)

    outcomes = load.outcomes
    during = [o for o in outcomes if marks["down"] + 0.5 <= o.started < marks["restarting"]]
    failed_fast = [o for o in during if o.status == 503]
    statuses = Counter(o.status for o in outcomes)
    assert set(statuses) <= {200, 201, 503}, statuses
    assert all(o.retry_after for o in outcomes if o.status == 503)
    assert failed_fast, "no request failed during the outage"
    # Fail fast: nothing during the outage waited for a timeout.
    slowest_outage = max(o.elapsed for o in during)
    assert slowest_outage < 3.0, slowest_outage
    first_ack = min(o.started + o.elapsed for o in outcomes if o.status == 201 and o.started >= marks["up"])
    recovery = first_ack - marks["up"]
    assert recovery <= RECOVERY_LIMIT
    assert all(o.status in (200, 201) for o in outcomes if o.started >= first_ack + 1.0)

    acknowledged = load.acknowledged_ids()
    with psycopg.connect(pg.url) as conn:
        found = {str(r[0]) for r in conn.execute("SELECT id FROM content WHERE id = ANY(%s::uuid[])", (acknowledged,))}
    lost = len(set(acknowledged) - found)
    report(request, "postgres_restart", {
        "outage_s": round(marks["up"] - marks["down"], 1),
        "requests_during_outage": len(during),
        "failed_fast_503": len(failed_fast),
        "slowest_outage_response_ms": round(slowest_outage * 1000),
        "recovery_s": round(recovery, 2),
        "writes_acknowledged": len(acknowledged),
        "writes_found": len(found),
        "lost": lost,
    })
    assert lost == 0


def test_redis_stop_under_load_degrades_and_recovers_without_restart(postgres_url, pg_engine, private_redis, tmp_path, request):
    redis_server = private_redis
    engine = start_engine({"DATABASE_URL": postgres_url, "REDIS_URL": redis_server.url, "REDIS_TIMEOUT": "0.5"}, tmp_path)
    load = Load(engine.base_url, clients=8)
    seen: dict[str, object] = {}

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=engine.base_url, timeout=10, headers=AUTH) as client:
            await asyncio.sleep(2)
            assert (await client.get("/health")).json()["status"] == "healthy"
            seen["down"] = time.monotonic()
            redis_server.stop()
            await asyncio.sleep(2)
            health = await client.get("/health")
            seen["health_down"] = (health.status_code, health.json()["status"], health.json()["checks"]["redis"])
            created = await client.post("/api/v1/content", headers={"Idempotency-Key": "during-redis-outage"}, json={
                "title": "written without redis", "body": "b", "content_type": "article", "status": "published"})
            seen["write_down"] = created.status_code
            read = await client.get(f"/api/v1/content/{created.json()['id']}")
            seen["read_down"] = (read.status_code, read.headers.get("x-cache"))
            await asyncio.sleep(2)
            seen["up"] = time.monotonic()
            redis_server.start()
            while time.monotonic() - seen["up"] < 15:
                if (await client.get("/health")).json()["status"] == "healthy":
                    break
                await asyncio.sleep(0.2)
            seen["recovered"] = time.monotonic()
            item = created.json()["id"]
            await client.get(f"/api/v1/content/{item}")
            seen["cache_after"] = (await client.get(f"/api/v1/content/{item}")).headers.get("x-cache")
            await asyncio.sleep(1)

    try:
        asyncio.run(load.run(scenario))
    finally:
        stop_engine(engine)

    statuses = Counter(o.status for o in load.outcomes)
    assert seen["health_down"] == (200, "degraded", "unhealthy")
    assert seen["write_down"] == 201
    assert seen["read_down"] == (200, "MISS")
    assert seen["cache_after"] in ("HIT",)
    assert set(statuses) <= {200, 201}, statuses
    outage = [o for o in load.outcomes if seen["down"] <= o.started < seen["up"]]
    acknowledged = load.acknowledged_ids()
    with pg_engine.connect() as conn:
        from sqlalchemy import text

        found = conn.execute(text("SELECT count(*) FROM content WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": acknowledged}).scalar()
        conn.execute(text("DELETE FROM content WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": acknowledged})
        conn.commit()
    report(request, "redis_stop", {
        "outage_s": round(seen["up"] - seen["down"], 1),
        "requests_during_outage": len(outage),
        "errors_during_outage": sum(o.status not in (200, 201) for o in outage),
        "recovery_s": round(seen["recovered"] - seen["up"], 2),
        "writes_acknowledged": len(acknowledged),
        "writes_found": found,
    })
    assert found == len(acknowledged)


def test_hanging_redis_costs_one_timeout_per_interval_not_per_request(postgres_url, pg_engine, private_redis, tmp_path, request):
    from sqlalchemy import text

    redis_server = private_redis
    timeout = 0.5
    engine = start_engine({"DATABASE_URL": postgres_url, "REDIS_URL": redis_server.url, "REDIS_TIMEOUT": str(timeout)}, tmp_path)
    load = Load(engine.base_url, clients=8)
    marks: dict[str, float] = {}

    async def scenario() -> None:
        await asyncio.sleep(2)
        marks["paused"] = time.monotonic()
        redis_server.pause()
        await asyncio.sleep(5)
        marks["resumed"] = time.monotonic()
        redis_server.resume()
        await asyncio.sleep(2)

    try:
        asyncio.run(load.run(scenario))
    finally:
        stop_engine(engine)
    during = [o for o in load.outcomes if marks["paused"] <= o.started < marks["resumed"]]
    slow = [o for o in during if o.elapsed >= timeout]
    acknowledged = load.acknowledged_ids()
    with pg_engine.connect() as conn:
        found = conn.execute(text("SELECT count(*) FROM content WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": acknowledged}).scalar()
        conn.execute(text("DELETE FROM content WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": acknowledged})
        conn.commit()
    report(request, "redis_hang", {
        "hang_s": round(marks["resumed"] - marks["paused"], 1),
        "requests_during_hang": len(during),
        "slower_than_redis_timeout": len(slow),
        "p99_during_hang_ms": round(percentile([o.elapsed for o in during], 0.99) * 1000),
        "max_during_hang_ms": round(max(o.elapsed for o in during) * 1000),
        "writes_acknowledged": len(acknowledged),
        "writes_found": found,
    })
    assert all(o.status in (200, 201) for o in load.outcomes)
    # Each 1 s interval lets the in-flight requests wait for one timeout; the rest skip Redis.
    assert len(slow) <= len(during) * 0.2, (len(slow), len(during))
    assert max(o.elapsed for o in during) < 4 * timeout
    assert found == len(acknowledged)


def test_s3_unavailable_upload_is_503_and_leaves_no_row(postgres_url, pg_engine, tmp_path, request):
    import boto3
    from moto.server import ThreadedMotoServer
    from sqlalchemy import text

    port = free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="t", aws_secret_access_key="t",
                 region_name="us-east-1").create_bucket(Bucket="content-assets")
    engine = start_engine({
        "DATABASE_URL": postgres_url, "STORAGE_BACKEND": "s3", "S3_ENDPOINT": endpoint,
        "S3_ACCESS_KEY": "t", "S3_SECRET_KEY": "t",
    }, tmp_path)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    try:
        with httpx.Client(base_url=engine.base_url, timeout=30, headers=AUTH) as client:
            item = client.post("/api/v1/content", json={"title": "t", "body": "b", "content_type": "article"}).json()["id"]
            url = f"/api/v1/content/{item}/assets"
            assert client.post(url, files={"file": ("a.png", png, "image/png")}).status_code == 201
            s3.stop()
            started = time.monotonic()
            refused = [client.post(url, files={"file": (f"b{n}.png", png, "image/png")}) for n in range(5)]
            slowest = (time.monotonic() - started) / len(refused)
            health = client.get("/health").json()
    finally:
        stop_engine(engine)
    with pg_engine.connect() as conn:
        rows = conn.execute(text("SELECT filename FROM assets WHERE content_id = :id"), {"id": item}).scalars().all()
        conn.execute(text("DELETE FROM content WHERE id = :id"), {"id": item})
        conn.commit()
    report(request, "s3_down", {
        "uploads_refused_503": sum(r.status_code == 503 for r in refused),
        "mean_refusal_ms": round(slowest * 1000),
        "asset_rows_after": len(rows),
    })
    assert [r.status_code for r in refused] == [503] * 5
    assert all(r.headers.get("retry-after") for r in refused)
    assert refused[0].json()["detail"].startswith("object storage unavailable")
    assert rows == ["a.png"]  # only the upload that reached S3 has a row
    assert health["status"] == "degraded" and health["checks"]["storage"] == "unhealthy"


@pytest.mark.timeout(SOAK_SECONDS + 180)
def test_soak_mixed_load_has_no_5xx_and_bounded_memory(postgres_url, redis_url, pg_engine, tmp_path, request):
    from sqlalchemy import text

    engine = start_engine({"DATABASE_URL": postgres_url, "REDIS_URL": redis_url, "DB_POOL_SIZE": "10"}, tmp_path)
    load = Load(engine.base_url, clients=32, write_share=0.3, timeout=30)
    rss: dict[str, int] = {}
    first_mark = min(60.0, SOAK_SECONDS / 5)

    async def scenario() -> None:
        await asyncio.sleep(first_mark)
        rss["minute_1"] = engine.rss_kb()
        await asyncio.sleep(SOAK_SECONDS - first_mark)
        rss["end"] = engine.rss_kb()

    try:
        asyncio.run(load.run(scenario))
    finally:
        stop_engine(engine)
    acknowledged = load.acknowledged_ids()
    with pg_engine.connect() as conn:
        found = conn.execute(text("SELECT count(*) FROM content WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": acknowledged}).scalar()
        conn.execute(text("DELETE FROM content WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": acknowledged})
        conn.commit()
    statuses = Counter(o.status for o in load.outcomes)
    growth = (rss["end"] - rss["minute_1"]) / rss["minute_1"]
    latencies = [o.elapsed for o in load.outcomes]
    report(request, "soak", {
        "seconds": SOAK_SECONDS,
        "clients": 32,
        "requests": len(load.outcomes),
        "rps": round(len(load.outcomes) / SOAK_SECONDS),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "p99_write_ms": round(percentile([o.elapsed for o in load.outcomes if o.kind == "write"], 0.99) * 1000, 1),
        "statuses": dict(statuses),
        "rss_minute_1_mb": round(rss["minute_1"] / 1024, 1),
        "rss_end_mb": round(rss["end"] / 1024, 1),
        "rss_growth_pct": round(growth * 100, 1),
        "writes_acknowledged": len(acknowledged),
        "writes_found": found,
    })
    assert not [s for s in statuses if s >= 500 or s == 0], statuses
    assert found == len(acknowledged)
    assert growth < 0.10
