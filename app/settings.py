"""Configuration from environment variables (pydantic-settings).

Every setting is read from the upper-case environment variable of the same
name (``database_url`` <- ``DATABASE_URL``) or, for credentials, from the file
of its lower-case name in SECRETS_DIR (default /run/secrets/aquascene): on
Kubernetes every secret arrives as a read-only mounted file, never in the
environment. An environment variable wins over a file. Invalid values raise
:class:`SettingsError`, whose message names the offending variable, and the
process refuses to start.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VERSION = "1.0.0"


class Role(StrEnum):
    CONTENT_MANAGER = "content-manager"
    AI_PROCESSOR = "ai-processor"
    WEB_SCRAPER = "web-scraper"
    DISTRIBUTOR = "distributor"
    SUBSCRIBER_MANAGER = "subscriber-manager"
    ADMIN_DASHBOARD = "admin-dashboard"
    ALL = "all"


# Default listening port of each role (seed 001); `all` uses 8000.
ROLE_PORTS: dict[Role, int] = {
    Role.CONTENT_MANAGER: 8000,
    Role.AI_PROCESSOR: 8001,
    Role.WEB_SCRAPER: 8002,
    Role.DISTRIBUTOR: 8003,
    Role.SUBSCRIBER_MANAGER: 8004,
    Role.ADMIN_DASHBOARD: 3000,
    Role.ALL: 8000,
}


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


class SettingsError(RuntimeError):
    """Raised when the environment holds an invalid configuration."""


PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


def _default_data_dir() -> str:
    # /tmp is the only writable place in the read-only container image.
    return str(Path(tempfile.gettempdir()) / "aquascene")


def _split_csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", frozen=True
    )

    # --- service ---------------------------------------------------------
    service_role: Role = Role.ALL
    environment: Environment = Environment.DEVELOPMENT
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    host: str = "0.0.0.0"
    port: int | None = Field(default=None, ge=1, le=65535)
    data_dir: str = Field(default_factory=_default_data_dir)
    public_base_url: str = "http://localhost:8000"
    cors_origins: str = ""
    secret_key: str = ""
    max_request_bytes: PositiveInt = 11 * 1024 * 1024

    # --- auth and rate limits ---------------------------------------------
    api_keys: str = ""
    rate_limit_per_minute: PositiveInt = 600
    generate_rate_limit_per_minute: PositiveInt = 60

    # --- editorial workflow and admin dashboard --------------------------
    # On: API-key clients can neither create content as published nor publish content
    # a person has not approved (the stack sets it from `aquascene:app.require_review`).
    require_review: bool = False
    # The first admin, created at start-up of a process serving the dashboard while no
    # account exists; the password comes from the secret file admin_bootstrap_password.
    admin_bootstrap_email: str = ""
    admin_bootstrap_password: str = ""
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_absolute_hours: int = Field(default=12, ge=1, le=24 * 30)
    # Other roles' base URLs for the overview page, "role=http://host:port,...";
    # empty: each role is reported from this process (SERVICE_ROLE=all).
    dashboard_role_urls: str = ""

    # --- database -----------------------------------------------------------
    database_url: str = ""
    db_pool_size: PositiveInt = 10
    db_max_overflow: int = Field(default=10, ge=0)
    db_connect_timeout: PositiveInt = 5
    # Test each pooled connection before use (one extra round trip per checkout).
    db_pool_pre_ping: bool = True
    auto_migrate: bool | None = None

    # --- redis --------------------------------------------------------------
    redis_url: str | None = None
    redis_timeout: PositiveFloat = 2.0
    redis_cluster: bool = False  # REDIS_URL names a Redis cluster (one database: use REDIS_KEY_PREFIX)
    redis_key_prefix: str = Field(default="", max_length=64)  # e.g. "content-manager:"
    content_cache_ttl: PositiveInt = 60
    # Per-process cache in front of Redis for content reads (0 disables); writes
    # invalidate it on every replica through Redis pub/sub, the TTL bounds staleness.
    content_local_cache_ttl: float = Field(default=30.0, ge=0, le=300)

    # --- object storage -----------------------------------------------------
    storage_backend: Literal["local", "s3"] | None = None
    s3_endpoint: str | None = None
    s3_public_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    s3_bucket_assets: str = "content-assets"
    s3_bucket_backups: str = "system-backups"
    presign_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    max_asset_bytes: PositiveInt = 10 * 1024 * 1024

    # --- generation ---------------------------------------------------------
    # Unset: openai when OPENAI_API_KEY is set, else anthropic when ANTHROPIC_API_KEY is set, else local.
    generation_provider: Literal["local", "openai", "anthropic"] | None = None
    generation_timeout_seconds: PositiveFloat = 60.0
    generation_cache_ttl: PositiveInt = 24 * 3600
    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
    anthropic_api_key: str | None = None
    anthropic_base_url: str = "https://api.anthropic.com/v1"
    anthropic_model: str = "claude-3-5-haiku-latest"
    # USD per 1 000 tokens (input, output) for the configured HTTP provider.
    provider_input_cost_per_1k: float = Field(default=0.00015, ge=0)
    provider_output_cost_per_1k: float = Field(default=0.0006, ge=0)

    # --- scraping -----------------------------------------------------------
    scraper_allowed_networks: str = ""
    scraper_timeout_seconds: PositiveFloat = 10.0
    scraper_max_bytes: PositiveInt = 2 * 1024 * 1024
    scraper_max_redirects: int = Field(default=3, ge=0, le=10)
    scraper_host_rate_per_minute: PositiveInt = 30
    scraper_user_agent: str = "AquaSceneBot/1.0 (+https://aquascene.bg/bot)"

    # --- mail ---------------------------------------------------------------
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout: PositiveFloat = 10.0
    mail_from: str = "AquaScene <newsletter@aquascene.bg>"
    confirmation_ttl_hours: PositiveInt = 48

    # --- instagram (distributor) --------------------------------------------
    # Without the token (secret file instagram_access_token) or the user id the
    # distribution endpoints answer 503; the engine still starts.
    instagram_access_token: str | None = None
    instagram_user_id: str | None = Field(default=None, pattern=r"^[0-9]{1,32}$")
    instagram_graph_url: str = "https://graph.facebook.com/v26.0"
    s3_bucket_instagram: str = "instagram-media"
    instagram_timeout_seconds: PositiveFloat = 30.0
    instagram_retry_seconds: PositiveFloat = 2.0  # first backoff: doubles within an attempt, x4 between attempts
    instagram_max_attempts: PositiveInt = 6
    instagram_container_wait_seconds: PositiveFloat = 300.0  # bounded polling of a container's status_code
    instagram_worker_interval_seconds: PositiveFloat = 5.0

    # --- validation ---------------------------------------------------------
    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.split(":", 1)[0].split("+", 1)[0] in {
            "postgresql",
            "postgres",
            "sqlite",
        }:
            raise ValueError("must be a postgresql://user:pass@host:5432/db or sqlite:/// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("s3_endpoint", "s3_public_endpoint", "public_base_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("instagram_graph_url")
    @classmethod
    def _check_graph_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be the Graph API's URL with its version, e.g. https://graph.facebook.com/v26.0")
        return value.rstrip("/")

    @field_validator("scraper_allowed_networks")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        for item in _split_csv(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not a network (e.g. 10.0.0.0/8)") from exc
        return value

    @field_validator("dashboard_role_urls")
    @classmethod
    def _check_role_urls(cls, value: str) -> str:
        for item in _split_csv(value):
            role, sep, url = item.partition("=")
            if not sep or role.strip() not in {r.value for r in Role if r != Role.ALL}:
                raise ValueError(f"{item!r}: each entry must be role=http://host:port with a role such as content-manager")
            if not url.strip().startswith(("http://", "https://")):
                raise ValueError(f"{item!r}: the URL must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.generation_provider == "openai" and not self.openai_api_key:
            raise ValueError("OPENAI_API_KEY must be set when GENERATION_PROVIDER=openai")
        if self.generation_provider == "anthropic" and not self.anthropic_api_key:
            raise ValueError("ANTHROPIC_API_KEY must be set when GENERATION_PROVIDER=anthropic")
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("SMTP_SSL and SMTP_STARTTLS cannot both be enabled")
        if self.resolved_storage_backend == "s3" and bool(self.s3_access_key) != bool(
            self.s3_secret_key
        ):
            raise ValueError("S3_ACCESS_KEY and S3_SECRET_KEY must be set together")
        if self.environment == Environment.PRODUCTION:
            if not self.database_url or self.database_url.startswith("sqlite"):
                raise ValueError(
                    "DATABASE_URL must point to PostgreSQL when ENVIRONMENT=production"
                )
        return self

    def check_serving(self) -> None:
        """Requirements for serving HTTP (not for `migrate` or tooling)."""
        # The admin-dashboard role serves no API (people sign in), so it needs no key.
        if self.environment == Environment.PRODUCTION and not self.api_key_list and self.service_role != Role.ADMIN_DASHBOARD:
            raise SettingsError("Invalid configuration: API_KEYS must be set when ENVIRONMENT=production")

    # --- derived values -----------------------------------------------------
    @cached_property
    def api_key_list(self) -> list[str]:
        return _split_csv(self.api_keys)

    @cached_property
    def role_urls(self) -> dict[str, str]:
        pairs = (item.partition("=") for item in _split_csv(self.dashboard_role_urls))
        return {role.strip(): url.strip().rstrip("/") for role, _, url in pairs}

    @cached_property
    def cors_origin_list(self) -> list[str]:
        return _split_csv(self.cors_origins)

    @cached_property
    def allowed_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(n, strict=False) for n in _split_csv(self.scraper_allowed_networks)]

    @cached_property
    def signing_key(self) -> bytes:
        # Used to sign local-store download URLs; a per-process key is fine for
        # a single local instance, set SECRET_KEY when running several.
        return (self.secret_key or secrets.token_hex(32)).encode()

    @property
    def resolved_provider(self) -> str:
        if self.generation_provider:
            return self.generation_provider
        if self.openai_api_key:
            return "openai"
        return "anthropic" if self.anthropic_api_key else "local"

    @property
    def resolved_storage_backend(self) -> str:
        if self.storage_backend:
            return self.storage_backend
        return "s3" if self.s3_endpoint else "local"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir) / 'aquascene.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def resolved_port(self) -> int:
        return self.port or ROLE_PORTS[self.service_role]

    @property
    def docs_enabled(self) -> bool:
        return self.environment != Environment.PRODUCTION

    @property
    def json_logs(self) -> bool:
        return self.environment not in (Environment.DEVELOPMENT, Environment.TEST)

    @property
    def instagram_unconfigured(self) -> str | None:
        """Why Instagram publishing is off (None: it is on)."""
        missing = [name for name, value in (("INSTAGRAM_ACCESS_TOKEN (secret file instagram_access_token)",
                                             self.instagram_access_token), ("INSTAGRAM_USER_ID", self.instagram_user_id))
                   if not value]
        return f"Instagram publishing is not configured: {' and '.join(missing)} not set" if missing else None

    def serves(self, role: Role) -> bool:
        return self.service_role in (role, Role.ALL)


def _format_error(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{loc.upper()}: {msg}" if loc else msg)
    return "Invalid configuration: " + "; ".join(problems)


DEFAULT_SECRETS_DIR = "/run/secrets/aquascene"


def secrets_dir() -> str | None:
    """The directory of mounted secret files (pydantic-settings' secrets_dir), when there is one."""
    path = os.environ.get("SECRETS_DIR", DEFAULT_SECRETS_DIR)
    return path if Path(path).is_dir() else None


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and secret files (overrides win), or raise SettingsError."""
    try:
        return Settings(_secrets_dir=secrets_dir(), **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_format_error(exc)) from None
