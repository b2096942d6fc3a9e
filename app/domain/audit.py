"""The audit log: append-only rows written in the same transaction as the change they record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import escape_like
from app.domain.actors import Actor
from app.models import AuditEntry, utcnow

AUDIT_INSERT = AuditEntry.__table__.insert()


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: object | None = None,
    **detail: Any,
) -> None:
    """Add one audit row to the caller's transaction (committed, or rolled back, with the change)."""
    conn = await session.connection()
    await conn.execute(
        AUDIT_INSERT,
        {
            "at": utcnow(),
            "actor": actor.name,
            "action": action,
            "target_type": target_type,
            "target_id": None if target_id is None else str(target_id),
            "detail": {k: v for k, v in detail.items() if v is not None},
            "client_ip": actor.client_ip,
        },
    )


async def search(
    services,  # noqa: ANN001 - app.services.Services (import cycle)
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """Newest first, filtered by actor (substring), action (prefix) and target id."""
    conditions = []
    if actor:
        conditions.append(AuditEntry.actor.ilike(f"%{escape_like(actor)}%", escape="\\"))
    if action:
        conditions.append(AuditEntry.action.like(f"{escape_like(action)}%", escape="\\"))
    if target:
        conditions.append(AuditEntry.target_id == target)
    if since:
        conditions.append(AuditEntry.at >= since)
    async with services.db.session() as session:
        total = await session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions))
        rows = (
            await session.scalars(
                select(AuditEntry).where(*conditions).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
            )
        ).all()
    return list(rows), total or 0
