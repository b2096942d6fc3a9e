"""Opaque server-side sessions for the dashboard, and the CSRF token bound to each.

The cookie holds only a random id; the data lives in Redis when REDIS_URL is set,
else in the ``dashboard_sessions`` table. Both store the id's SHA-256, never the id.
A session ends after SESSION_IDLE_MINUTES without a request, SESSION_ABSOLUTE_HOURS
after sign-in, at sign-out, or when the account's password, role or disabled flag
changes (users.sessions_valid_after).

CSRF: a synchronizer token kept in the server-side session and sent in every form.
The maintained CSRF packages for Starlette/FastAPI (starlette-csrf, fastapi-csrf-protect,
asgi-csrf) implement the double-submit cookie pattern, which binds the token to a second
cookie rather than to the session; with server-side sessions already in place a token
stored in the session is the stronger, simpler choice (OWASP's recommended pattern).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from app.models import DashboardSession

COOKIE_NAME = "__Host-aquascene_session"
CSRF_FIELD = "csrf_token"
TOUCH_INTERVAL = 60  # seconds: how stale `seen` may get before the idle deadline is pushed back


@dataclass
class SessionData:
    user_id: str | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    created: float = field(default_factory=time.time)
    seen: float = field(default_factory=time.time)
    flash: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"user_id": self.user_id, "csrf": self.csrf, "created": self.created, "seen": self.seen, "flash": self.flash}

    @classmethod
    def from_json(cls, data: dict) -> SessionData:
        return cls(data.get("user_id"), data["csrf"], data["created"], data["seen"], list(data.get("flash") or []))

    def csrf_ok(self, supplied: str | None) -> bool:
        return bool(supplied) and hmac.compare_digest(self.csrf.encode(), str(supplied).encode())


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, services) -> None:  # noqa: ANN001
        self.services = services
        settings = services.settings
        self.idle = settings.session_idle_minutes * 60
        self.absolute = settings.session_absolute_hours * 3600
        self.redis = services.kv.kind == "redis"

    def _ttl(self, data: SessionData, now: float) -> int:
        return max(1, int(min(data.seen + self.idle, data.created + self.absolute) - now))

    def expired(self, data: SessionData, now: float) -> bool:
        return now - data.seen > self.idle or now - data.created > self.absolute

    async def save(self, token: str, data: SessionData) -> None:
        now = time.time()
        ttl = self._ttl(data, now)
        if self.redis:
            await self.services.kv.set(f"session:dashboard:{_hash(token)}", json.dumps(data.to_json()).encode(), ttl)
            return
        expires = datetime.now(UTC) + timedelta(seconds=ttl)
        async with self.services.db.transaction() as session:
            row = await session.get(DashboardSession, _hash(token))
            if row is None:
                session.add(DashboardSession(id_hash=_hash(token), data=data.to_json(), expires_at=expires))
            else:
                row.data, row.expires_at = data.to_json(), expires

    async def create(self, user_id: str | None = None) -> tuple[str, SessionData]:
        token = secrets.token_urlsafe(32)
        data = SessionData(user_id=user_id)
        await self.save(token, data)
        return token, data

    async def load(self, token: str | None) -> SessionData | None:
        if not token or len(token) > 100:
            return None
        if self.redis:
            raw = await self.services.kv.get(f"session:dashboard:{_hash(token)}")
            data = SessionData.from_json(json.loads(raw)) if raw else None
        else:
            async with self.services.db.session() as session:
                row = await session.get(DashboardSession, _hash(token))
                data = SessionData.from_json(row.data) if row is not None else None
        now = time.time()
        if data is None:
            return None
        if self.expired(data, now):
            await self.delete(token)
            return None
        if now - data.seen > TOUCH_INTERVAL:
            data.seen = now
            await self.save(token, data)
        return data

    async def delete(self, token: str) -> None:
        if self.redis:
            await self.services.kv.delete(f"session:dashboard:{_hash(token)}")
            return
        async with self.services.db.transaction() as session:
            await session.execute(delete(DashboardSession).where(DashboardSession.id_hash == _hash(token)))

    async def purge_expired(self) -> None:
        """Drop expired database sessions (Redis expires its own)."""
        if self.redis:
            return
        async with self.services.db.transaction() as session:
            await session.execute(delete(DashboardSession).where(DashboardSession.expires_at < datetime.now(UTC)))



