"""Health, readiness, metrics, roles, settings, docs, migrations and the CLI."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from app import migrate
from app.db import async_url, create_sync_engine, sync_url
from app.logging_setup import JsonFormatter
from app.main import create_app
from app.models import ALL_TABLES, Base
from app.settings import SettingsError, load_settings
from engine_support import AUTH, free_port

REPO = Path(__file__).resolve().parents[2]


def started(**settings) -> TestClient:
    client = TestClient(create_app(load_settings(**settings), configure_logs=False))
    client.__enter__()
    return client


# --- health and readiness -------------------------------------------------------------


def test_health_reports_seed_format(client, backend):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "timestamp", "version", "service", "checks", "metadata"}
    assert body["status"] == "healthy" and body["version"] == "1.0.0" and body["service"] == "all"
    assert body["timestamp"].endswith("Z")
    expected_redis = "healthy" if backend.name == "postgres" else "disabled"
    assert body["checks"] == {"database": "healthy", "redis": expected_redis, "storage": "healthy"}
    assert isinstance(body["metadata"]["uptime"], int)
    assert client.get("/ready").json() == {"status": "ready"}


def test_health_is_503_when_the_database_is_down(embedded_settings):
    dead = f"postgresql://aquascene:x@127.0.0.1:{free_port()}/nothing"
    client = started(**{**embedded_settings, "database_url": dead, "db_connect_timeout": 2})
    try:
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["status"] == "unhealthy"
        assert response.json()["checks"]["database"] == "unhealthy"
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["reason"] == "database unreachable"
    finally:
        client.__exit__(None, None, None)


def test_health_is_degraded_but_serving_when_redis_is_down(embedded_settings):
    client = started(**{**embedded_settings, "redis_url": f"redis://127.0.0.1:{free_port()}/0", "redis_timeout": 0.5})
    try:
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded" and health.json()["checks"]["redis"] == "unhealthy"
        created = client.post(
            "/api/v1/content",
            json={"title": "t", "body": "b", "content_type": "article", "status": "published"},
            headers=AUTH,
        )
        assert created.status_code == 201
        assert client.get(f"/api/v1/content/{created.json()['id']}").headers["X-Cache"] == "MISS"
    finally:
        client.__exit__(None, None, None)


def test_ready_is_503_until_migrated(embedded_settings, tmp_path):
    client = started(**{**embedded_settings, "auto_migrate": False})
    try:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "database schema not migrated; run `python -m app migrate`"
    finally:
        client.__exit__(None, None, None)


# --- metrics ---------------------------------------------------------------------------


def test_metrics_use_seed_names_and_route_templates(client):
    created = client.post("/api/v1/content", json={"title": "t", "body": "b", "content_type": "article"}, headers=AUTH)
    client.get(f"/api/v1/content/{created.json()['id']}", headers=AUTH)
    client.get("/no/such/path")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "http_requests_total",
        "http_request_duration_seconds",
        "content_generation_total",
        "content_generation_duration_seconds",
        "content_quality_score",
        "ai_api_cost_total",
    ):
        assert f"# TYPE {name} " in text, name
    assert 'http_requests_total{method="GET",path="/api/v1/content/{content_id}",status="200"}' in text
    assert 'http_requests_total{method="POST",path="/api/v1/content",status="201"}' in text
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",path="/api/v1/content/{content_id}"}' in text
    assert 'path="<unmatched>",status="404"' in text
    assert created.json()["id"] not in text


# --- roles ---------------------------------------------------------------------------------

ROLE_PROBES = {
    "content-manager": ("GET", "/api/v1/content"),
    "ai-processor": ("POST", "/api/v1/generate"),
    "web-scraper": ("POST", "/api/v1/scrape"),
    "distributor": ("POST", "/api/v1/newsletters"),
    "subscriber-manager": ("POST", "/api/v1/subscribers/confirm"),
}


@pytest.mark.parametrize("role", [*ROLE_PROBES, "all"])
def test_each_role_mounts_only_its_routes(embedded_settings, role):
    client = started(**{**embedded_settings, "service_role": role})
    try:
        for path in ("/health", "/ready", "/metrics"):
            assert client.get(path).status_code == 200, path
        for other, (method, path) in ROLE_PROBES.items():
            status = client.request(method, path, json={}).status_code
            if role in (other, "all"):
                assert status != 404, (role, path)
            else:
                assert status == 404, (role, path)
    finally:
        client.__exit__(None, None, None)


# --- settings and docs -------------------------------------------------------------------


def test_docs_are_off_in_production(embedded_settings):
    dev = started(**embedded_settings)
    try:
        assert dev.get("/docs").status_code == 200
        assert dev.get("/openapi.json").json()["info"]["title"] == "AquaScene Content Engine"
    finally:
        dev.__exit__(None, None, None)
    prod_app = create_app(
        load_settings(
            **{**embedded_settings, "environment": "production", "database_url": "postgresql://u:p@127.0.0.1:1/db"}
        ),
        configure_logs=False,
    )
    with TestClient(prod_app) as prod:
        assert prod.get("/docs").status_code == 404
        assert prod.get("/redoc").status_code == 404
        assert prod.get("/openapi.json").status_code == 404


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"db_pool_size": "many"}, "DB_POOL_SIZE: Input should be a valid integer"),
        ({"db_pool_size": 0}, "DB_POOL_SIZE: Input should be greater than 0"),
        ({"service_role": "mailer"}, "SERVICE_ROLE: Input should be 'content-manager', 'ai-processor'"),
        ({"database_url": "mysql://x/y"}, "DATABASE_URL: must be a postgresql://user:pass@host:5432/db or sqlite:/// URL"),
        ({"redis_url": "http://cache"}, "REDIS_URL: must start with redis://, rediss:// or unix://"),
        ({"environment": "production"}, "DATABASE_URL must point to PostgreSQL when ENVIRONMENT=production"),
        ({"generation_provider": "openai", "openai_api_key": None}, "OPENAI_API_KEY must be set when GENERATION_PROVIDER=openai"),
        ({"scraper_allowed_networks": "10.0.0.0/8,intranet"}, "SCRAPER_ALLOWED_NETWORKS: 'intranet' is not a network"),
    ],
)
def test_invalid_settings_name_the_variable(embedded_settings, overrides, fragment):
    with pytest.raises(SettingsError) as info:
        load_settings(**{**embedded_settings, **overrides})
    assert fragment in str(info.value)


def test_serving_in_production_needs_api_keys(embedded_settings):
    settings = load_settings(
        **{**embedded_settings, "environment": "production", "api_keys": "", "database_url": "postgresql://u:p@db/x"}
    )
    with pytest.raises(SettingsError, match="API_KEYS must be set when ENVIRONMENT=production"):
        create_app(settings, configure_logs=False)


def test_migrate_in_production_does_not_need_api_keys(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        env=_engine_env(tmp_path, ENVIRONMENT="production", DATABASE_URL=f"postgresql://u:p@127.0.0.1:{free_port()}/x",
                        DB_CONNECT_TIMEOUT="2"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0  # nothing listens there: a connection error, not a settings error
    assert "API_KEYS" not in result.stderr and "connection" in result.stderr.lower()


def _engine_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    env.update({"DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO), **extra})
    return env


def test_uvicorn_start_up_stops_on_invalid_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(free_port())],
        env=_engine_env(tmp_path, DB_POOL_SIZE="lots"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Invalid configuration: DB_POOL_SIZE: Input should be a valid integer" in result.stderr


def test_database_url_forms():
    assert sync_url("postgresql://u:p%40ss@db:5432/app") == "postgresql+psycopg://u:p%40ss@db:5432/app"
    assert sync_url("postgres://u:p@db/app") == "postgresql+psycopg://u:p@db/app"
    assert async_url("sqlite:////tmp/x.db") == "sqlite+aiosqlite:////tmp/x.db"


def test_generation_provider_follows_the_keys(embedded_settings):
    base = {**embedded_settings, "generation_provider": None, "openai_api_key": None, "anthropic_api_key": None}
    assert load_settings(**base).resolved_provider == "local"
    assert load_settings(**{**base, "anthropic_api_key": "a"}).resolved_provider == "anthropic"
    assert load_settings(**{**base, "anthropic_api_key": "a", "openai_api_key": "o"}).resolved_provider == "openai"
    assert load_settings(**{**base, "openai_api_key": "o", "generation_provider": "local"}).resolved_provider == "local"


def test_json_logs_outside_development(embedded_settings):
    assert load_settings(**{**embedded_settings, "environment": "staging"}).json_logs
    assert not load_settings(**{**embedded_settings, "environment": "development"}).json_logs
    record = logging.makeLogRecord({"name": "app", "levelname": "INFO", "msg": "hello %s", "args": ("x",), "route": "/r"})
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello x" and line["level"] == "INFO" and line["route"] == "/r"


# --- migrations ----------------------------------------------------------------------------


def test_migrate_command_works_from_any_directory(tmp_path):
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    db = tmp_path / "cli.db"
    result = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        env=_engine_env(tmp_path, DATABASE_URL=f"sqlite:///{db}"),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "database migrated to 0002" in result.stdout
    engine = create_sync_engine(f"sqlite:///{db}")
    try:
        assert set(ALL_TABLES) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrate_command_reports_bad_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        env=_engine_env(tmp_path, DATABASE_URL="oracle://x"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr


def test_migrations_match_the_models(backend):
    with backend.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == migrate.head_revision()
