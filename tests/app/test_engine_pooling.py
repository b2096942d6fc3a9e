"""The engine under PgBouncer's transaction pooling, as production runs it (components/pooler.py).

CI points TEST_DATABASE_URL at a real PgBouncer in transaction mode (.ci/pgbouncer.sh), so every
PostgreSQL test of the engine runs through it; these tests prove that is so and that the engine
holds up when its transactions land on whichever server connection is free.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.db import create_app_engine
from app.settings import load_settings
from conftest import IN_CI, service_unavailable

pytestmark = pytest.mark.services


def _pool_mode(url: str) -> str | None:
    """The pool_mode PgBouncer reports for the URL's database, or None when the URL is not a PgBouncer."""
    import psycopg

    parsed = make_url(url)
    try:
        with psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password,
                             dbname="pgbouncer", connect_timeout=3, autocommit=True,
                             prepare_threshold=None) as conn:
            rows = conn.execute("SHOW POOLS").fetchall()
            columns = [c.name for c in conn.execute("SHOW POOLS").description or []]
    except Exception:  # noqa: BLE001 - PostgreSQL itself has no database "pgbouncer"
        return None
    for row in rows:
        record = dict(zip(columns, row))
        if record["database"] == parsed.database:
            return record["pool_mode"]
    return None


def test_the_suite_runs_through_pgbouncer_in_transaction_mode(postgres_url):
    mode = _pool_mode(postgres_url)
    if mode is None and not IN_CI:
        pytest.skip("TEST_DATABASE_URL is PostgreSQL itself; run `bash .ci/pgbouncer.sh` and point it at port 6432")
    if mode is None:
        service_unavailable("under CI the engine's PostgreSQL tests must run through PgBouncer: "
                            "TEST_DATABASE_URL does not reach one (see .ci/pgbouncer.sh)")
    assert mode == "transaction"


def test_concurrent_transactions_share_server_connections_without_prepared_statements(postgres_url):
    """Many clients, many short transactions, the same statements over and over: under transaction
    pooling a statement psycopg had prepared on one server connection would be missing on the next."""
    settings = load_settings(database_url=postgres_url, db_pool_size=4, db_max_overflow=0, environment="test")
    engine = create_app_engine(settings)

    async def client(n: int) -> int:
        total = 0
        for i in range(25):
            async with engine.begin() as conn:
                # Never prepared server-side: a prepared name would collide with, or be missing on, the
                # server connection PgBouncer hands out next (psycopg's default prepares on the 5th run).
                assert (await conn.get_raw_connection()).driver_connection.prepare_threshold is None
                total += (await conn.execute(text("SELECT CAST(:a AS int) + CAST(:b AS int)"), {"a": n, "b": i})).scalar_one()
                await conn.execute(text("SELECT count(*) FROM information_schema.tables"))
        return total

    async def main() -> list[int]:
        try:
            return await asyncio.gather(*(client(n) for n in range(8)))
        finally:
            await engine.dispose()

    results = asyncio.run(main())
    assert results == [25 * n + sum(range(25)) for n in range(8)]
