"""Backups to S3 and restores that never touch live data before they are verified.

    python -m app.backup backup postgres|redis|objects
    python -m app.backup list [--target T]
    python -m app.backup verify <key|id|latest> [--target T]
    python -m app.backup prune --retention-days N
    python -m app.backup restore postgres <key|id|latest> [--target-db NAME]
    python -m app.backup restore redis <key|id|latest>
    python -m app.backup restore objects <key|id|latest>

Settings come from the app's environment (DATABASE_URL, REDIS_URL, S3_ENDPOINT,
S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION) plus BACKUP_BUCKET and ENVIRONMENT.
Every command prints one JSON line (for logs and monitoring) and exits
0 ok · 1 failed · 2 bad usage or settings · 3 a backup failed verification.

Layout in the backup bucket (the id is a UTC timestamp, so names sort by age):
    postgres/<env>/<id>.dump                 pg_dump custom format (compressed)
    redis/<env>/<id>.jsonl.gz                every key's DUMP payload (RDB-serialised) + TTL
    objects/<env>/<id>/manifest.json         bucket, key, ETag, size of every mirrored object
    objects/<env>/<id>/data/<bucket>/<key>   the mirrored objects
Each file's SHA-256 is stored in its object metadata (`sha256`) and checked
before anything is restored from it.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import boto3
import psycopg
import redis
from botocore.client import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from app.settings import secrets_dir

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CORRUPT = 0, 1, 2, 3
TARGETS = ("postgres", "redis", "objects")
ID_FORMAT = "%Y%m%dT%H%M%S%fZ"


class BackupError(RuntimeError):
    exit_code = EXIT_FAILED


class CorruptBackup(BackupError):
    exit_code = EXIT_CORRUPT


class UsageError(BackupError):
    exit_code = EXIT_USAGE


class BackupSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    backup_bucket: str = Field(min_length=3)
    environment: str = "development"
    database_url: str = ""
    redis_url: str = ""
    redis_cluster: bool = False
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    # The content buckets `backup objects` mirrors (temp-uploads is deliberately not kept).
    backup_source_buckets: str = "content-assets,newsletter-templates,instagram-media"

    @property
    def source_buckets(self) -> list[str]:
        return [b.strip() for b in self.backup_source_buckets.split(",") if b.strip()]


@dataclass(frozen=True)
class Entry:
    target: str
    id: str
    key: str
    bytes: int
    created: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


# ------------------------------------------------------------------------- S3


class BackupStore:
    def __init__(self, settings: BackupSettings) -> None:
        self.settings = settings
        self.bucket = settings.backup_bucket
        self.env = settings.environment
        self.s3 = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key,
            config=BotoConfig(
                signature_version="s3v4",
                s3={"addressing_style": "path" if settings.s3_endpoint else "auto"},
                retries={"max_attempts": 5, "mode": "standard"},
            ),
        )

    def prefix(self, target: str) -> str:
        return f"{target}/{self.env}/"

    def key_for(self, target: str, backup_id: str) -> str:
        suffix = {"postgres": ".dump", "redis": ".jsonl.gz", "objects": "/manifest.json"}[target]
        return f"{self.prefix(target)}{backup_id}{suffix}"

    def upload(self, path: Path, key: str, target: str) -> tuple[int, str]:
        digest = sha256_file(path)
        self.s3.upload_file(str(path), self.bucket, key, ExtraArgs={"Metadata": {"sha256": digest, "target": target}})
        return path.stat().st_size, digest

    def download_verified(self, key: str, dest: Path) -> str:
        """Download and check the SHA-256 recorded at upload; CorruptBackup when they differ."""
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            raise UsageError(f"no backup {key!r} in bucket {self.bucket!r}") from exc
        expected = head.get("Metadata", {}).get("sha256")
        if not expected:
            raise CorruptBackup(f"{key}: no sha256 in its metadata; not a backup written by this tool")
        self.s3.download_file(self.bucket, key, str(dest))
        actual = sha256_file(dest)
        if actual != expected:
            raise CorruptBackup(f"{key}: checksum mismatch (recorded {expected}, downloaded {actual})")
        return actual

    def keys(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def entries(self, target: str) -> list[Entry]:
        found = []
        for obj in self.keys(self.prefix(target)):
            rest = obj["Key"][len(self.prefix(target)):]
            backup_id = rest.split("/", 1)[0].split(".", 1)[0]
            if obj["Key"] != self.key_for(target, backup_id):
                continue  # mirrored data files, not backups
            found.append(Entry(target, backup_id, obj["Key"], obj["Size"], obj["LastModified"].isoformat()))
        return sorted(found, key=lambda e: e.id)

    def resolve(self, ref: str, target: str | None) -> Entry:
        """`latest` (of a target), an id, or a full key."""
        targets = [target] if target else [t for t in TARGETS if ref.startswith(f"{t}/")] or list(TARGETS)
        candidates = [e for t in targets for e in self.entries(t)]
        if ref == "latest":
            if target is None:
                raise UsageError("'latest' needs a target (--target postgres|redis|objects)")
            if not candidates:
                raise UsageError(f"no {target} backups under s3://{self.bucket}/{self.prefix(target)}")
            return candidates[-1]
        for entry in candidates:
            if ref in (entry.id, entry.key):
                return entry
        raise UsageError(f"no backup {ref!r} in s3://{self.bucket}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def new_id() -> str:
    return datetime.now(UTC).strftime(ID_FORMAT)


# -------------------------------------------------------------------- postgres


@dataclass(frozen=True)
class PgTarget:
    """libpq connection parts of DATABASE_URL; the password travels in PGPASSWORD, never argv."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_url(cls, url: str) -> PgTarget:
        if not url:
            raise UsageError("DATABASE_URL is not set")
        parsed = make_url(url)
        if not parsed.drivername.startswith("postgres"):
            raise UsageError("DATABASE_URL must be a postgresql:// URL for PostgreSQL backups")
        return cls(parsed.host or "localhost", parsed.port or 5432, parsed.username or "postgres",
                   parsed.password or "", parsed.database or "postgres")

    def args(self, database: str | None = None) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", database or self.database]

    def env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10"}

    def connect(self, database: str | None = None) -> psycopg.Connection:
        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=database or self.database, autocommit=True, connect_timeout=10)


def run(cmd: list[str], env: dict[str, str], error: type[BackupError] = BackupError) -> str:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise error(f"{cmd[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout


def dump_tables(listing: str) -> set[str]:
    """Tables with data in a `pg_restore --list` table of contents."""
    tables = set()
    for line in listing.splitlines():
        # "3345; 0 16390 TABLE DATA public content owner" (";" lines are comments)
        parts = line.split()
        if line.startswith(";") or "TABLE DATA" not in line:
            continue
        at = parts.index("DATA")
        if len(parts) > at + 2:
            tables.add(parts[at + 2])
    return tables


def backup_postgres(store: BackupStore, work: Path) -> dict[str, Any]:
    pg = PgTarget.from_url(store.settings.database_url)
    backup_id = new_id()
    path = work / f"{backup_id}.dump"
    run(["pg_dump", *pg.args(), "--format=custom", "--compress=6", "--no-owner", "--no-acl", "-f", str(path)], pg.env())
    listing = run(["pg_restore", "--list", str(path)], pg.env(), CorruptBackup)
    key = store.key_for("postgres", backup_id)
    size, digest = store.upload(path, key, "postgres")
    return {"target": "postgres", "id": backup_id, "key": key, "bytes": size, "sha256": digest,
            "tables": len(dump_tables(listing))}


def verify_postgres(store: BackupStore, entry: Entry, work: Path) -> tuple[Path, str]:
    path = work / Path(entry.key).name
    digest = store.download_verified(entry.key, path)
    listing = run(["pg_restore", "--list", str(path)], os.environ.copy(), CorruptBackup)
    if not dump_tables(listing):
        raise CorruptBackup(f"{entry.key}: the dump holds no table data")
    return path, digest


def table_counts(pg: PgTarget, database: str) -> dict[str, int]:
    with pg.connect(database) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def restore_postgres(store: BackupStore, entry: Entry, work: Path, target_db: str | None) -> dict[str, Any]:
    """Restore into a fresh database; swap it in for the live one only after it checks out.

    With --target-db the fresh database keeps that name and the live one is
    not touched at all (for inspection or a side-by-side comparison).
    """
    pg = PgTarget.from_url(store.settings.database_url)
    path, digest = verify_postgres(store, entry, work)
    listing = run(["pg_restore", "--list", str(path)], pg.env(), CorruptBackup)
    expected_tables = dump_tables(listing)
    # Extensions need a superuser; the cluster (initdb scripts, CloudNativePG) provides them.
    toc = work / "restore.list"
    toc.write_text("".join(line + "\n" for line in listing.splitlines() if " EXTENSION " not in line))
    fresh = target_db or f"{pg.database}_restore_{entry.id.lower()[:15]}"
    with pg.connect("postgres") as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (fresh,)).fetchone():
            raise UsageError(f"database {fresh!r} already exists; choose another --target-db")
        admin.execute(f'CREATE DATABASE "{fresh}"')
    try:
        run(["pg_restore", *pg.args(fresh), "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction",
             "-L", str(toc), str(path)], pg.env())
        counts = table_counts(pg, fresh)
        missing = expected_tables - set(counts)
        if missing:
            raise BackupError(f"restored database lacks tables {sorted(missing)}")
    except BaseException:
        with pg.connect("postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
        raise
    result = {"target": "postgres", "id": entry.id, "key": entry.key, "sha256": digest,
              "restored_database": fresh, "rows": sum(counts.values()), "tables": len(counts)}
    if target_db:
        return {**result, "swapped": False}
    previous: str | None = f"{pg.database}_pre_restore_{entry.id.lower()[:15]}"
    with pg.connect("postgres") as admin:
        live_exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (pg.database,)).fetchone()
        if live_exists:
            # Sessions on the live database would block the rename; they reconnect to the restored one.
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (pg.database,))
            # Kept, never dropped: the operator removes it once the restore is accepted.
            admin.execute(f'ALTER DATABASE "{pg.database}" RENAME TO "{previous}"')
        else:
            previous = None  # the live database is gone (the disaster itself): nothing to keep
        try:
            admin.execute(f'ALTER DATABASE "{fresh}" RENAME TO "{pg.database}"')
        except Exception:
            if previous:
                admin.execute(f'ALTER DATABASE "{previous}" RENAME TO "{pg.database}"')
            raise
    return {**result, "restored_database": pg.database, "swapped": True, "previous_database": previous}


# ----------------------------------------------------------------------- redis


def redis_clients(settings: BackupSettings) -> Iterator[tuple[int, redis.Redis]]:
    """(db, client) for every database holding keys (cluster: db 0 of the cluster)."""
    if not settings.redis_url:
        raise UsageError("REDIS_URL is not set")
    if settings.redis_cluster:
        yield 0, redis.cluster.RedisCluster.from_url(settings.redis_url)  # type: ignore[misc]
        return
    base = redis.Redis.from_url(settings.redis_url)
    dbs = sorted(int(name[2:]) for name in base.info("keyspace"))
    for db in dbs:
        parts = urlsplit(settings.redis_url)
        yield db, redis.Redis.from_url(urlunsplit(parts._replace(path=f"/{db}")))


def backup_redis(store: BackupStore, work: Path) -> dict[str, Any]:
    backup_id = new_id()
    path = work / f"{backup_id}.jsonl.gz"
    keys = 0
    with gzip.open(path, "wt", encoding="ascii") as out:
        for db, client in redis_clients(store.settings):
            for key in client.scan_iter(count=1000):
                payload = client.dump(key)
                if payload is None:  # expired between SCAN and DUMP
                    continue
                ttl = client.pttl(key)
                out.write(json.dumps({"db": db, "key": base64.b64encode(key).decode(),
                                      "ttl_ms": ttl if ttl > 0 else 0,
                                      "value": base64.b64encode(payload).decode()}) + "\n")
                keys += 1
    key = store.key_for("redis", backup_id)
    size, digest = store.upload(path, key, "redis")
    return {"target": "redis", "id": backup_id, "key": key, "bytes": size, "sha256": digest, "keys": keys}


def read_redis_backup(path: Path, key: str) -> list[dict[str, Any]]:
    try:
        with gzip.open(path, "rt", encoding="ascii") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, ValueError, EOFError) as exc:
        raise CorruptBackup(f"{key}: unreadable ({exc})") from exc


def restore_redis(store: BackupStore, entry: Entry, work: Path) -> dict[str, Any]:
    path = work / Path(entry.key).name
    digest = store.download_verified(entry.key, path)
    records = read_redis_backup(path, entry.key)
    clients = dict(redis_clients_for_restore(store.settings, {r["db"] for r in records}))
    for record in records:
        clients[record["db"]].restore(base64.b64decode(record["key"]), record["ttl_ms"],
                                      base64.b64decode(record["value"]), replace=True)
    return {"target": "redis", "id": entry.id, "key": entry.key, "sha256": digest, "keys": len(records)}


def redis_clients_for_restore(settings: BackupSettings, dbs: set[int]) -> Iterator[tuple[int, redis.Redis]]:
    if settings.redis_cluster:
        client = redis.cluster.RedisCluster.from_url(settings.redis_url)  # type: ignore[misc]
        yield from ((db, client) for db in dbs)
        return
    parts = urlsplit(settings.redis_url)
    for db in dbs:
        yield db, redis.Redis.from_url(urlunsplit(parts._replace(path=f"/{db}")))


# --------------------------------------------------------------------- objects


def backup_objects(store: BackupStore, work: Path) -> dict[str, Any]:
    backup_id = new_id()
    data_prefix = f"{store.prefix('objects')}{backup_id}/data/"
    manifest = []
    for bucket in store.settings.source_buckets:
        for page in store.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                store.s3.copy_object(Bucket=store.bucket, Key=f"{data_prefix}{bucket}/{obj['Key']}",
                                     CopySource={"Bucket": bucket, "Key": obj["Key"]})
                manifest.append({"bucket": bucket, "key": obj["Key"], "etag": obj["ETag"], "size": obj["Size"]})
    path = work / "manifest.json"
    path.write_text(json.dumps({"id": backup_id, "data_prefix": data_prefix, "objects": manifest}, indent=1))
    key = store.key_for("objects", backup_id)
    size, digest = store.upload(path, key, "objects")
    return {"target": "objects", "id": backup_id, "key": key, "bytes": size, "sha256": digest,
            "objects": len(manifest), "object_bytes": sum(o["size"] for o in manifest)}


def verify_objects(store: BackupStore, entry: Entry, work: Path) -> tuple[dict[str, Any], str]:
    path = work / "manifest.json"
    digest = store.download_verified(entry.key, path)
    manifest = json.loads(path.read_text())
    for obj in manifest["objects"]:
        copy_key = f"{manifest['data_prefix']}{obj['bucket']}/{obj['key']}"
        try:
            etag = store.s3.head_object(Bucket=store.bucket, Key=copy_key)["ETag"]
        except ClientError as exc:
            raise CorruptBackup(f"{entry.key}: mirrored object {copy_key} is missing") from exc
        if etag != obj["etag"]:
            raise CorruptBackup(f"{entry.key}: {copy_key} has ETag {etag}, manifest says {obj['etag']}")
    return manifest, digest


def restore_objects(store: BackupStore, entry: Entry, work: Path) -> dict[str, Any]:
    manifest, digest = verify_objects(store, entry, work)
    for obj in manifest["objects"]:
        store.s3.copy_object(Bucket=obj["bucket"], Key=obj["key"],
                             CopySource={"Bucket": store.bucket, "Key": f"{manifest['data_prefix']}{obj['bucket']}/{obj['key']}"})
        etag = store.s3.head_object(Bucket=obj["bucket"], Key=obj["key"])["ETag"]
        if etag != obj["etag"]:
            raise BackupError(f"restored {obj['bucket']}/{obj['key']} has ETag {etag}, expected {obj['etag']}")
    return {"target": "objects", "id": entry.id, "key": entry.key, "sha256": digest, "objects": len(manifest["objects"])}


# -------------------------------------------------------------------- commands


def verify(store: BackupStore, entry: Entry, work: Path) -> dict[str, Any]:
    if entry.target == "postgres":
        _, digest = verify_postgres(store, entry, work)
    elif entry.target == "redis":
        path = work / Path(entry.key).name
        digest = store.download_verified(entry.key, path)
        read_redis_backup(path, entry.key)
    else:
        _, digest = verify_objects(store, entry, work)
    return {"target": entry.target, "id": entry.id, "key": entry.key, "sha256": digest, "verified": True}


def prune(store: BackupStore, retention_days: int) -> dict[str, Any]:
    """Delete backups older than the retention; the newest of each target always stays."""
    cutoff = (datetime.now(UTC) - timedelta(days=retention_days)).strftime(ID_FORMAT)
    deleted = []
    for target in TARGETS:
        entries = store.entries(target)
        for entry in entries[:-1]:
            if entry.id < cutoff:
                prefix = entry.key.rsplit("/", 1)[0] + "/" if target == "objects" else entry.key
                for obj in list(store.keys(prefix)):
                    store.s3.delete_object(Bucket=store.bucket, Key=obj["Key"])
                deleted.append(entry.key)
    return {"retention_days": retention_days, "deleted": deleted}


BACKUPS: dict[str, Callable[[BackupStore, Path], dict[str, Any]]] = {
    "postgres": backup_postgres, "redis": backup_redis, "objects": backup_objects,
}


def execute(args: argparse.Namespace, settings: BackupSettings) -> dict[str, Any]:
    store = BackupStore(settings)
    with tempfile.TemporaryDirectory(prefix="aquascene-backup-") as tmp:
        work = Path(tmp)
        if args.command == "backup":
            return BACKUPS[args.target](store, work)
        if args.command == "list":
            targets = [args.target] if args.target else list(TARGETS)
            return {"backups": [e.as_dict() for t in targets for e in store.entries(t)]}
        if args.command == "verify":
            return verify(store, store.resolve(args.ref, args.target), work)
        if args.command == "prune":
            return prune(store, args.retention_days)
        entry = store.resolve(args.ref, args.target)
        if entry.target != args.target:
            raise UsageError(f"{entry.key} is a {entry.target} backup, not {args.target}")
        if args.target == "postgres":
            return restore_postgres(store, entry, work, args.target_db)
        if args.target == "redis":
            return restore_redis(store, entry, work)
        return restore_objects(store, entry, work)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.backup", description="Backups to S3 and verified restores")
    sub = p.add_subparsers(dest="command", required=True)
    backup = sub.add_parser("backup", help="back up one target into BACKUP_BUCKET")
    backup.add_argument("target", choices=TARGETS)
    listing = sub.add_parser("list", help="list backups")
    listing.add_argument("--target", choices=TARGETS)
    check = sub.add_parser("verify", help="download, check the SHA-256 and the contents")
    check.add_argument("ref", help="latest, a backup id, or a key")
    check.add_argument("--target", choices=TARGETS)
    pruning = sub.add_parser("prune", help="delete backups older than the retention (keeps the newest)")
    pruning.add_argument("--retention-days", type=int, required=True)
    restore = sub.add_parser("restore", help="restore from a verified backup")
    restore.add_argument("target", choices=TARGETS)
    restore.add_argument("ref", help="latest, a backup id, or a key")
    restore.add_argument("--target-db", help="postgres: restore into this new database and do not swap")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "prune" and args.retention_days < 1:
        return emit({"ok": False, "command": "prune", "error": "--retention-days must be >= 1"}, EXIT_USAGE)
    started = time.monotonic()
    try:
        settings = BackupSettings(_secrets_dir=secrets_dir())  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        return emit({"ok": False, "command": args.command, "error": f"invalid settings: {problems}"}, EXIT_USAGE)
    try:
        result = execute(args, settings)
    except BackupError as exc:
        return emit({"ok": False, "command": args.command, "error": str(exc)}, exc.exit_code)
    except (BotoCoreError, ClientError, RedisError, psycopg.Error, OSError) as exc:
        return emit({"ok": False, "command": args.command, "error": f"{type(exc).__name__}: {exc}"}, EXIT_FAILED)
    return emit({"ok": True, "command": args.command, **result,
                 "seconds": round(time.monotonic() - started, 3)}, EXIT_OK)


def emit(result: dict[str, Any], code: int) -> int:
    print(json.dumps(result, default=str), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
