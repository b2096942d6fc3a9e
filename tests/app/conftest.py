"""Fixtures for the content engine tests.

Real services only: PostgreSQL (TEST_DATABASE_URL), Redis (TEST_REDIS_URL),
S3 through moto's server mode, SMTP through a local aiosmtpd server, and a
local HTTP server standing in for scraped sites and generation providers.
Every API test runs twice: on PostgreSQL + Redis + S3, and on the embedded
defaults (SQLite file, in-process cache, local directory store).

When PostgreSQL or Redis is unreachable the tests are skipped, or fail when
CI=true.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app import migrate
from app.db import create_sync_engine
from app.main import create_app
from app.models import ALL_TABLES
from app.settings import load_settings
from engine_support import API_KEY, free_port
from tests.moto_support import moto_s3

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://aquascene:aquascene@127.0.0.1:5432/aquascene_test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI") == "true"
START_HINT = "start it with `sudo bash .ci/services.sh` (installs and starts PostgreSQL and Redis)"


def service_unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- real services ---------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> str:
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001
        service_unavailable(
            f"PostgreSQL is not reachable at {_redact(PG_URL)} ({exc.__class__.__name__}: {exc}); "
            f"set TEST_DATABASE_URL or {START_HINT}"
        )
    # Exercise the migrations both ways, ending at head.
    migrate.upgrade(PG_URL)
    migrate.downgrade(PG_URL, "base")
    migrate.upgrade(PG_URL)
    return PG_URL


@pytest.fixture(scope="session")
def direct_postgres_url(postgres_url: str) -> str:
    """PostgreSQL itself, for what the stacks connect directly (backup and restore jobs):
    TEST_DIRECT_DATABASE_URL when TEST_DATABASE_URL goes through PgBouncer, else the same URL."""
    return os.environ.get("TEST_DIRECT_DATABASE_URL") or postgres_url


@pytest.fixture(scope="session")
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_sync_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        service_unavailable(
            f"Redis is not reachable at {REDIS_URL} ({exc.__class__.__name__}: {exc}); "
            f"set TEST_REDIS_URL or {START_HINT}"
        )
    return REDIS_URL


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_s3("content-assets") as endpoint:
        yield endpoint


@dataclass
class Mailbox:
    """Messages received by the local SMTP server."""

    messages: list[tuple[list[str], email.message.EmailMessage]] = field(default_factory=list)
    reject_once: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, N802
        with self.lock:
            if address in self.reject_once:
                self.reject_once.discard(address)
                return "451 4.3.0 Temporary failure, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        with self.lock:
            return [m for rcpts, m in self.messages if address in rcpts]

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.reject_once.clear()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: tuple[Mailbox, int]) -> Mailbox:
    smtp_server[0].clear()
    return smtp_server[0]


# --- local web server (scraped sites, fake generation providers) -------------------

ARTICLE_HTML = b"""<!doctype html><html><head><title>Nature Aquarium Basics</title>
<meta name="description" content="How to plan a nature aquarium: hardscape, plants and light.">
<style>body{color:red}</style></head>
<body><h1>Nature Aquarium Basics</h1><script>var x = 1;</script>
<p>Aquascaping is the craft of arranging plants, rocks and wood.</p></body></html>"""

OPENAI_REPLY = {
    "id": "chatcmpl-test",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "# Carpet Plants for Beginners\n\nCarpeting plants "
                "such as Monte Carlo need bright light and CO2.\n\nTrim them often."}}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 380, "total_tokens": 500},
}
ANTHROPIC_REPLY = {
    "id": "msg_test",
    "type": "message",
    "content": [{"type": "text", "text": "Title: Shrimp Keeping 101\n\nNeocaridina shrimp thrive in stable, mature tanks."}],
    "usage": {"input_tokens": 100, "output_tokens": 200},
}


class _Handler(BaseHTTPRequestHandler):
    hits: Counter[str]

    def log_message(self, *args: Any) -> None:  # silence
        pass

    def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self.server.hits[self.path] += 1  # type: ignore[attr-defined]
        path = self.path
        if path == "/robots.txt":
            self._send(200, b"User-agent: *\nDisallow: /private\n", "text/plain")
        elif path in ("/article", "/private/secret", "/article2"):
            self._send(200, ARTICLE_HTML)
        elif path == "/redirect":
            self._send(302, b"", headers={"Location": "/article2"})
        elif path == "/big":
            self._send(200, b"<html><body>" + b"a" * 300_000 + b"</body></html>")
        elif path == "/slow":
            time.sleep(1.5)
            self._send(200, ARTICLE_HTML)
        elif path == "/image":
            self._send(200, b"\x89PNG\r\n\x1a\n", "image/png")
        else:
            self._send(404, b"not found")

    def do_POST(self) -> None:  # noqa: N802
        self.server.hits[self.path] += 1  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path == "/openai/v1/chat/completions":
            self._send(200, json.dumps(OPENAI_REPLY).encode(), "application/json")
        elif self.path == "/anthropic/v1/messages":
            self._send(200, json.dumps(ANTHROPIC_REPLY).encode(), "application/json")
        elif self.path.startswith("/failing/"):
            self._send(500, b'{"error": "overloaded"}', "application/json")
        elif self.path.startswith("/slow/"):
            time.sleep(1.5)
            self._send(200, json.dumps(OPENAI_REPLY).encode(), "application/json")
        else:
            self._send(404, b"{}", "application/json")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that give up early (time and size limit tests) are expected


@dataclass
class WebServer:
    base_url: str
    port: int
    hits: Counter[str]


@pytest.fixture(scope="session")
def web_server() -> Iterator[WebServer]:
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    server.hits = Counter()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    yield WebServer(f"http://127.0.0.1:{port}", port, server.hits)  # type: ignore[attr-defined]
    server.shutdown()


@pytest.fixture
def web(web_server: WebServer) -> WebServer:
    web_server.hits.clear()
    return web_server


# --- backends ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (start-up migration then is a no-op)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "aquascene.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@dataclass
class Backend:
    name: str
    overrides: dict[str, Any]
    engine: Engine

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())

    def count(self, table: str, where: str = "1=1", **params: Any) -> int:
        return self.rows(f"SELECT count(*) FROM {table} WHERE {where}", **params)[0][0]


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.services), "embedded"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, smtp_server: tuple[Mailbox, int]) -> Iterator[Backend]:
    common: dict[str, Any] = {
        "service_role": "all",
        "environment": "test",
        "api_keys": f"other-key,{API_KEY}",
        "data_dir": str(tmp_path),
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_server[1],
        "smtp_starttls": False,
        "smtp_ssl": False,
        "rate_limit_per_minute": 10_000,
        "generate_rate_limit_per_minute": 10_000,
        "scraper_host_rate_per_minute": 10_000,
        "generation_provider": "local",
        "scraper_allowed_networks": "",
        "cors_origins": "",
        "auto_migrate": None,
    }
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        engine = request.getfixturevalue("pg_engine")
        redis_url = request.getfixturevalue("redis_url")
        endpoint = request.getfixturevalue("s3_endpoint")
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(ALL_TABLES)} CASCADE"))
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        overrides = {
            **common,
            "database_url": url,
            "redis_url": redis_url,
            "storage_backend": "s3",
            "s3_endpoint": endpoint,
            "s3_access_key": "test",
            "s3_secret_key": "test",
            "s3_region": "us-east-1",
        }
        yield Backend("postgres", overrides, engine)
    else:
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp_path / "aquascene.db")
        # The embedded defaults: no DATABASE_URL (SQLite file in DATA_DIR), no Redis, local store.
        overrides = {**common, "database_url": "", "redis_url": None, "storage_backend": None, "s3_endpoint": None}
        engine = create_sync_engine(f"sqlite:///{tmp_path / 'aquascene.db'}")
        yield Backend("embedded", overrides, engine)
        engine.dispose()


@pytest.fixture
def make_client(backend: Backend) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def factory(base_url: str = "http://testserver", **overrides: Any) -> TestClient:
        settings = load_settings(**{**backend.overrides, **overrides})
        client = TestClient(create_app(settings, configure_logs=False), base_url=base_url)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def embedded_settings(tmp_path: Path) -> dict[str, Any]:
    """Embedded defaults without any external service (for start-up, role and settings tests)."""
    return {
        "service_role": "all",
        "environment": "test",
        "api_keys": API_KEY,
        "data_dir": str(tmp_path),
        "database_url": "",
        "redis_url": None,
        "storage_backend": None,
        "s3_endpoint": None,
        "smtp_host": None,
        "generation_provider": "local",
        "cors_origins": "",
        "auto_migrate": None,
    }
