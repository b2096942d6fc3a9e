"""The disaster-recovery drill, on real PostgreSQL and Redis and moto's S3 server.

Write a known data set through the API, back everything up with the real
CLI (`python -m app.backup`), destroy the database, the Redis data and the
bucket contents, restore, and prove that every row, key and object is back
byte for byte. Also: a corrupted backup is caught by `verify` and refused by
`restore`, and a restore into a fresh database leaves the live one alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from app import migrate
from app.main import create_app
from app.models import ALL_TABLES
from app.settings import load_settings
from engine_support import API_KEY, AUTH

pytestmark = pytest.mark.services

DRILL_DB = "aquascene_drill"
DRILL_REDIS_DB = 11  # a database of its own: the drill compares the whole keyspace
BACKUP_BUCKET = "system-backups"
CONTENT_BUCKETS = ("content-assets", "newsletter-templates", "instagram-media")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


@dataclass
class Drill:
    database_url: str
    redis_url: str
    s3_endpoint: str
    smtp_port: int

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "S3_ENDPOINT": self.s3_endpoint,
            "S3_ACCESS_KEY": "test",
            "S3_SECRET_KEY": "test",
            "S3_REGION": "us-east-1",
            "BACKUP_BUCKET": BACKUP_BUCKET,
            "ENVIRONMENT": "drill",
        }

    def tool(self, *args: str) -> tuple[int, dict[str, Any]]:
        """The backup CLI exactly as the CronJobs run it: exit code and its one JSON line."""
        done = subprocess.run([sys.executable, "-m", "app.backup", *args], env=self.env(),
                              capture_output=True, text=True, timeout=300)
        lines = done.stdout.strip().splitlines()
        assert len(lines) == 1, (done.stdout, done.stderr)
        return done.returncode, json.loads(lines[0])

    def s3(self):  # noqa: ANN201
        return boto3.client("s3", endpoint_url=self.s3_endpoint, aws_access_key_id="test",
                            aws_secret_access_key="test", region_name="us-east-1")

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)


def admin(url: str) -> psycopg.Connection:
    parts = make_url(url)
    return psycopg.connect(host=parts.host, port=parts.port or 5432, user=parts.username, password=parts.password,
                           dbname="postgres", autocommit=True)


def database_exists(url: str, name: str) -> bool:
    with admin(url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def drop_database(url: str, name: str) -> None:
    with admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def drill(direct_postgres_url: str, redis_url: str, s3_endpoint: str, smtp_server) -> Iterator[Drill]:  # noqa: ANN001
    # The backup job connects to PostgreSQL directly, as in the stacks: pg_dump and the restore's
    # database swap need sessions of their own, which a transaction pooler does not give.
    postgres_url = direct_postgres_url
    url = make_url(postgres_url).set(database=DRILL_DB).render_as_string(hide_password=False)
    with admin(postgres_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DRILL_DB}" WITH (FORCE)')
        for (leftover,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                        (f"{DRILL_DB}_%",)).fetchall():
            conn.execute(f'DROP DATABASE "{leftover}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DRILL_DB}"')
    migrate.upgrade(url)
    drill_redis = redis_url.rsplit("/", 1)[0] + f"/{DRILL_REDIS_DB}"
    redis.Redis.from_url(drill_redis).flushdb()
    d = Drill(url, drill_redis, s3_endpoint, smtp_server[1])
    s3 = d.s3()
    for bucket in (BACKUP_BUCKET, *CONTENT_BUCKETS):
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
    yield d
    drop_database(postgres_url, DRILL_DB)
    with admin(postgres_url) as conn:
        for (leftover,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                        (f"{DRILL_DB}_%",)).fetchall():
            conn.execute(f'DROP DATABASE "{leftover}" WITH (FORCE)')


def engine_client(d: Drill) -> TestClient:
    settings = load_settings(
        service_role="all", environment="test", api_keys=API_KEY, database_url=d.database_url,
        redis_url=d.redis_url, storage_backend="s3", s3_endpoint=d.s3_endpoint, s3_access_key="test",
        s3_secret_key="test", s3_region="us-east-1", smtp_host="127.0.0.1", smtp_port=d.smtp_port,
        smtp_starttls=False, smtp_ssl=False, generation_provider="local", rate_limit_per_minute=100_000,
        generate_rate_limit_per_minute=100_000, cors_origins="",
    )
    return TestClient(create_app(settings, configure_logs=False))


def write_known_data(client: TestClient, d: Drill, mailbox, articles: int = 40) -> dict[str, Any]:  # noqa: ANN001
    """Content, tags, assets, generated drafts, subscribers and a sent newsletter."""
    ids = []
    for i in range(articles):
        body = {"title": f"Aquascape {i}", "body": f"Layout notes {i}. " * 50, "content_type": "article",
                "tags": [f"tag{i % 7}", "nature"], "status": "published" if i % 2 else "draft"}
        response = client.post("/api/v1/content", json=body, headers=AUTH)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    for i, content_id in enumerate(ids[:6]):
        upload = client.post(f"/api/v1/content/{content_id}/assets",
                             files={"file": (f"tank{i}.png", PNG + bytes([i]), "image/png")}, headers=AUTH)
        assert upload.status_code == 201, upload.text
    for topic in ("carpet plants", "shrimp care", "co2 basics"):
        assert client.post("/api/v1/generate", json={"topic": topic, "content_type": "guide"},
                           headers=AUTH).status_code == 201
    for i in range(12):
        assert client.post("/api/v1/subscribers", json={"email": f"fan{i}@example.com"}).status_code == 201
    for i in range(0, 12, 2):
        message = mailbox.to(f"fan{i}@example.com")[0].get_content()
        token = message.split("Confirmation token: ", 1)[1].split()[0]
        assert client.post("/api/v1/subscribers/confirm", json={"token": token}).status_code == 200
    letter = client.post("/api/v1/newsletters", json={"subject": "Drill issue", "content_ids": ids[1:6:2]},
                         headers=AUTH)
    assert letter.status_code == 201, letter.text
    assert client.post(f"/api/v1/newsletters/{letter.json()['id']}/send", headers=AUTH).status_code == 202
    status = client.get(f"/api/v1/newsletters/{letter.json()['id']}", headers=AUTH).json()
    assert status["deliveries"]["sent"] == 6, status
    # Something for Redis beyond caches: a key with a TTL and one without.
    d.redis().set("drill:ttl", b"kept with ttl", ex=3600)
    d.redis().hset("drill:hash", mapping={"a": "1", "b": b"\x00\xff"})
    return {"content_ids": ids}


def table_fingerprints(url: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every table."""
    parts = make_url(url)
    with psycopg.connect(host=parts.host, port=parts.port or 5432, user=parts.username, password=parts.password,
                         dbname=parts.database) as conn:
        result = {}
        for table in (*ALL_TABLES, "alembic_version"):
            count, digest = conn.execute(
                f'SELECT count(*), md5(coalesce(string_agg(t::text, \'|\' ORDER BY t::text), \'\')) FROM "{table}" t'
            ).fetchone()
            result[table] = (count, digest)
        return result


def redis_fingerprint(d: Drill) -> dict[bytes, tuple[bytes, bool]]:
    client = d.redis()
    return {key: (client.dump(key), client.pttl(key) > 0) for key in client.scan_iter()}


def object_fingerprint(d: Drill) -> dict[tuple[str, str], tuple[str, bytes]]:
    s3 = d.s3()
    found = {}
    for bucket in CONTENT_BUCKETS:
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            found[(bucket, obj["Key"])] = (obj["ETag"], body)
    return found


def test_drill_backup_destroy_restore_loses_nothing(drill: Drill, mailbox, postgres_url: str):  # noqa: ANN001
    with engine_client(drill) as client:
        data = write_known_data(client, drill, mailbox, articles=300)
    rows_before = table_fingerprints(drill.database_url)
    keys_before = redis_fingerprint(drill)
    objects_before = object_fingerprint(drill)
    assert rows_before["content"][0] == 303 and rows_before["deliveries"][0] == 6
    assert rows_before["assets"][0] == 6 and len(objects_before) == 6
    assert len(keys_before) >= 2

    started = time.monotonic()
    backups = {target: drill.tool("backup", target) for target in ("postgres", "redis", "objects")}
    backup_seconds = time.monotonic() - started
    for target, (code, result) in backups.items():
        assert code == 0 and result["ok"], result
        assert len(result["sha256"]) == 64
    assert backups["objects"][1]["objects"] == 6
    assert drill.tool("verify", "latest", "--target", "postgres")[0] == 0

    # The disaster: the database, the Redis data and the bucket contents are gone.
    drop_database(postgres_url, DRILL_DB)
    drill.redis().flushdb()
    s3 = drill.s3()
    for bucket, key in objects_before:
        s3.delete_object(Bucket=bucket, Key=key)
    assert object_fingerprint(drill) == {} and redis_fingerprint(drill) == {}

    started = time.monotonic()
    restored = {target: drill.tool("restore", target, "latest") for target in ("postgres", "redis", "objects")}
    restore_seconds = time.monotonic() - started
    for target, (code, result) in restored.items():
        assert code == 0 and result["ok"], result
    assert restored["postgres"][1]["swapped"] is True and restored["postgres"][1]["previous_database"] is None

    assert table_fingerprints(drill.database_url) == rows_before
    assert redis_fingerprint(drill) == keys_before
    assert object_fingerprint(drill) == objects_before
    with engine_client(drill) as client:  # and the engine serves the restored data
        some = data["content_ids"][3]
        assert client.get(f"/api/v1/content/{some}", headers=AUTH).json()["title"] == "Aquascape 3"
    size = sum(r["bytes"] for _, r in backups.values())
    print(f"\ndrill: {rows_before['content'][0]} content rows, {sum(c for c, _ in rows_before.values())} rows, "
          f"{len(keys_before)} keys, {len(objects_before)} objects, {size} backup bytes; "
          f"backup {backup_seconds:.2f}s, restore (RTO) {restore_seconds:.2f}s")


def test_restore_swaps_only_after_verification_and_keeps_the_old_database(drill: Drill, mailbox, postgres_url):  # noqa: ANN001
    with engine_client(drill) as client:
        write_known_data(client, drill, mailbox)
    before = table_fingerprints(drill.database_url)
    assert drill.tool("backup", "postgres")[0] == 0
    code, result = drill.tool("restore", "postgres", "latest")
    assert code == 0 and result["swapped"] is True
    previous = result["previous_database"]
    assert previous.startswith(f"{DRILL_DB}_pre_restore_") and database_exists(postgres_url, previous)
    assert table_fingerprints(drill.database_url) == before


def test_corrupted_backup_is_detected_and_refused(drill: Drill, mailbox, postgres_url):  # noqa: ANN001
    with engine_client(drill) as client:
        write_known_data(client, drill, mailbox)
    code, result = drill.tool("backup", "postgres")
    assert code == 0
    live_before = table_fingerprints(drill.database_url)
    s3 = drill.s3()
    original = s3.get_object(Bucket=BACKUP_BUCKET, Key=result["key"])
    data = bytearray(original["Body"].read())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, the recorded checksum kept: bit rot
    s3.put_object(Bucket=BACKUP_BUCKET, Key=result["key"], Body=bytes(data), Metadata=original["Metadata"])

    code, verdict = drill.tool("verify", result["id"], "--target", "postgres")
    assert code == 3 and verdict["ok"] is False and "checksum mismatch" in verdict["error"]
    code, refused = drill.tool("restore", "postgres", result["id"])
    assert code == 3 and "checksum mismatch" in refused["error"]
    # Nothing was touched: no new database, the live one unchanged.
    with admin(postgres_url) as conn:
        extra = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{DRILL_DB}_%",)).fetchall()
    assert extra == []
    assert table_fingerprints(drill.database_url) == live_before


def test_restore_into_a_fresh_database_leaves_the_live_one_alone(drill: Drill, mailbox, postgres_url):  # noqa: ANN001
    with engine_client(drill) as client:
        ids = write_known_data(client, drill, mailbox)["content_ids"]
    assert drill.tool("backup", "postgres")[0] == 0
    snapshot = table_fingerprints(drill.database_url)
    with engine_client(drill) as client:  # the live database moves on after the backup
        assert client.delete(f"/api/v1/content/{ids[0]}", headers=AUTH).status_code == 204
    live = table_fingerprints(drill.database_url)
    assert live != snapshot

    code, result = drill.tool("restore", "postgres", "latest", "--target-db", f"{DRILL_DB}_inspect")
    assert code == 0 and result["swapped"] is False and result["restored_database"] == f"{DRILL_DB}_inspect"
    assert table_fingerprints(drill.database_url) == live  # untouched
    inspect_url = make_url(drill.database_url).set(database=f"{DRILL_DB}_inspect").render_as_string(hide_password=False)
    assert table_fingerprints(inspect_url) == snapshot


def test_prune_keeps_the_newest_and_list_shows_it(drill: Drill):
    for _ in range(2):
        assert drill.tool("backup", "redis")[0] == 0
    code, listing = drill.tool("list", "--target", "redis")
    assert code == 0 and len(listing["backups"]) >= 2
    code, pruned = drill.tool("prune", "--retention-days", "1")
    assert code == 0 and pruned["deleted"] == []  # nothing is a day old yet
    code, result = drill.tool("restore", "postgres", "no-such-backup")
    assert code == 2 and "no backup 'no-such-backup'" in result["error"]
