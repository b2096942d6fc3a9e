"""Subscribers as operators see them: search, counts, CSV export, unsubscribe on request (recorded)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import func, or_, select

from app.domain import audit
from app.domain.actors import Actor
from app.domain.content import escape_like
from app.domain.permissions import Action, require
from app.errors import ApiError
from app.models import Subscriber, utcnow

STATUSES = ("pending", "confirmed", "unsubscribed")
EXPORT_BATCH = 1000
CSV_COLUMNS = ("email", "name", "status", "created_at", "confirmed_at", "unsubscribed_at")


def _conditions(status: str | None, q: str | None) -> list:
    conditions = []
    if status:
        conditions.append(Subscriber.status == status)
    if q:
        pattern = f"%{escape_like(q)}%"
        conditions.append(or_(Subscriber.email.ilike(pattern, escape="\\"), Subscriber.name.ilike(pattern, escape="\\")))
    return conditions


async def search(
    services, status: str | None = None, q: str | None = None, limit: int = 50, offset: int = 0  # noqa: ANN001
) -> tuple[list[Subscriber], int]:
    conditions = _conditions(status, q)
    async with services.db.session() as session:
        total = await session.scalar(select(func.count()).select_from(Subscriber).where(*conditions))
        rows = (
            await session.scalars(
                select(Subscriber).where(*conditions).order_by(Subscriber.created_at, Subscriber.id).limit(limit).offset(offset)
            )
        ).all()
    return list(rows), total or 0


async def counts_by_status(services) -> dict[str, int]:  # noqa: ANN001
    async with services.db.session() as session:
        rows = (await session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status))).all()
    found = dict(rows)
    return {status: found.get(status, 0) for status in STATUSES}


def _cell(value: object) -> str:
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    # A cell starting with = + - @ would run as a formula in a spreadsheet (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def export_csv(services, actor: Actor, status: str | None = None, q: str | None = None) -> AsyncIterator[str]:  # noqa: ANN001
    """The matching subscribers as CSV, in batches; the export itself is audited first."""
    require(actor, Action.SEND)
    async with services.db.transaction() as session:
        await audit.record(session, actor, "subscribers.export", "subscribers", None, status=status, q=q)

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        offset = 0
        while True:
            batch, _ = await search(services, status, q, EXPORT_BATCH, offset)
            for sub in batch:
                writer.writerow([_cell(getattr(sub, column)) for column in CSV_COLUMNS])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(batch) < EXPORT_BATCH:
                return
            offset += EXPORT_BATCH

    return rows()


async def unsubscribe_on_request(services, subscriber_id: uuid.UUID, actor: Actor, reason: str) -> Subscriber:  # noqa: ANN001
    require(actor, Action.SEND)
    async with services.db.transaction() as session:
        sub = await session.get(Subscriber, subscriber_id)
        if sub is None:
            raise ApiError(404, "subscriber not found")
        if sub.status == "unsubscribed":
            raise ApiError(409, f"{sub.email} is already unsubscribed")
        previous = sub.status
        sub.status = "unsubscribed"
        sub.unsubscribed_at = sub.updated_at = utcnow()
        await audit.record(
            session, actor, "subscriber.unsubscribe", "subscriber", sub.id, email=sub.email, previous=previous, reason=reason
        )
        return sub
