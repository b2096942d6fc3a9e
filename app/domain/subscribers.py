"""Subscribers: double opt-in (subscribe, confirm, unsubscribe by token) and what operators do
with them (search, counts, CSV export, unsubscribe on request, recorded)."""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import anyio
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from app.domain import audit
from app.domain.actors import Actor
from app.domain import escape_like
from app.domain.permissions import Action, require
from app.errors import ApiError
from app.mailer import MailError, build_message, send_one
from app.models import Subscriber, utcnow
from app.schemas import SubscriberCreate

STATUSES = ("pending", "confirmed", "unsubscribed")
EXPORT_BATCH = 1000
CSV_COLUMNS = ("email", "name", "status", "created_at", "confirmed_at", "unsubscribed_at")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def subscribe(services, payload: SubscriberCreate) -> tuple[Subscriber, bool]:  # noqa: ANN001
    """Store a pending subscriber and mail the confirmation token (both or neither); (subscriber, created).

    An address already confirmed, or pending with a live token, is answered as it is: no second mail."""
    settings = services.settings
    email = str(payload.email).strip().lower()
    token = secrets.token_urlsafe(32)
    now = utcnow()
    try:
        async with services.db.transaction() as session:
            sub = await session.scalar(select(Subscriber).where(Subscriber.email == email))
            created = sub is None
            if sub is not None and (
                sub.status == "confirmed"
                or (sub.status == "pending" and sub.confirm_expires_at is not None and sub.confirm_expires_at > now)
            ):
                return sub, False  # duplicate: same subscriber, no second mail
            if sub is None:
                sub = Subscriber(id=uuid.uuid4(), email=email, unsubscribe_token=secrets.token_urlsafe(32), created_at=now)
                session.add(sub)
            sub.name = payload.name
            sub.preferences = payload.preferences
            sub.status = "pending"
            sub.confirm_token_hash = _hash(token)
            sub.confirm_expires_at = now + timedelta(hours=settings.confirmation_ttl_hours)
            sub.updated_at = now
            sub.unsubscribed_at = None
            await session.flush()
            message = build_message(
                settings,
                to=email,
                subject="Confirm your AquaScene newsletter subscription",
                text=(
                    f"Hello {payload.name or 'there'},\n\n"
                    "Please confirm your subscription to the AquaScene newsletter.\n\n"
                    f"Confirmation token: {token}\n"
                    f"Confirm here: {settings.public_base_url}/subscribe/confirm?token={token}\n\n"
                    f"The token expires in {settings.confirmation_ttl_hours} hours. "
                    "If you did not ask for this, ignore this message.\n"
                ),
            )
            # Inside the transaction: if the mail cannot be sent, nothing is stored.
            try:
                await anyio.to_thread.run_sync(send_one, settings, message)
            except MailError as exc:
                raise ApiError(502, f"confirmation email could not be sent: {exc}") from None
    except IntegrityError:
        # A concurrent request subscribed the same address first.
        async with services.db.session() as session:
            sub = await session.scalar(select(Subscriber).where(Subscriber.email == email))
        if sub is None:
            raise
        return sub, False
    return sub, created


async def confirm(services, token: str) -> Subscriber:  # noqa: ANN001
    async with services.db.transaction() as session:
        sub = await session.scalar(select(Subscriber).where(Subscriber.confirm_token_hash == _hash(token)))
        if sub is None or sub.status == "unsubscribed":
            raise ApiError(404, "token: unknown confirmation token")
        if sub.status == "pending":
            if sub.confirm_expires_at is not None and sub.confirm_expires_at < utcnow():
                raise ApiError(410, "token: confirmation token has expired; subscribe again")
            sub.status = "confirmed"
            sub.confirmed_at = sub.updated_at = utcnow()
        return sub


async def unsubscribe_by_token(services, token: str) -> Subscriber:  # noqa: ANN001
    async with services.db.transaction() as session:
        sub = await session.scalar(select(Subscriber).where(Subscriber.unsubscribe_token == token))
        if sub is None:
            raise ApiError(404, "token: unknown unsubscribe token")
        if sub.status != "unsubscribed":
            sub.status = "unsubscribed"
            sub.unsubscribed_at = sub.updated_at = utcnow()
        return sub


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
