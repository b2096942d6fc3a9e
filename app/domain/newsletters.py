"""Newsletters: compose from published content, send exactly once per subscriber, schedule, report.

Sending creates one ``deliveries`` row per (newsletter, confirmed subscriber)
under a unique constraint, then a worker claims each pending row with a
conditional UPDATE before handing it to SMTP. A retried send therefore only
adds rows for new subscribers and re-queues failed ones; a delivery that was
sent (or is being sent) is never sent again.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import anyio
from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import audit
from app.domain.actors import SYSTEM, Actor
from app.domain.permissions import Action, require
from app.errors import ApiError
from app.mailer import MailError, MailSession, build_message, send_one
from app.models import Content, Delivery, Newsletter, NewsletterItem, Subscriber, utcnow
from app.schemas import DeliveryCounts, NewsletterOut

log = logging.getLogger("app.distributor")

INSERT_BATCH = 500
CLAIM_BATCH = 50
NOT_FOUND = "newsletter not found"


async def counts(session, newsletter_id: uuid.UUID) -> DeliveryCounts:  # noqa: ANN001
    rows = (
        await session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.newsletter_id == newsletter_id)
            .group_by(Delivery.status)
        )
    ).all()
    result = DeliveryCounts()
    for status, number in rows:
        if hasattr(result, status):
            setattr(result, status, number)
        result.total += number
    return result


def status_of(newsletter: Newsletter, delivery_counts: DeliveryCounts) -> str:
    if newsletter.send_requested_at is None:
        return "draft"
    if delivery_counts.pending or delivery_counts.sending:
        return "sending"
    return "failed" if delivery_counts.failed else "sent"


def newsletter_out(newsletter: Newsletter, delivery_counts: DeliveryCounts) -> NewsletterOut:
    return NewsletterOut(
        id=newsletter.id,
        subject=newsletter.subject,
        content_ids=[item.content_id for item in newsletter.items],
        status=status_of(newsletter, delivery_counts),  # type: ignore[arg-type]
        created_at=newsletter.created_at,
        send_requested_at=newsletter.send_requested_at,
        deliveries=delivery_counts,
    )


async def create_newsletter(services, subject: str, content_ids: list[uuid.UUID], actor: Actor) -> NewsletterOut:  # noqa: ANN001
    if actor.is_person:
        require(actor, Action.EDIT)
    try:
        async with services.db.transaction() as session:
            found = dict(
                (await session.execute(select(Content.id, Content.status).where(Content.id.in_(content_ids)))).all()
            )
            missing = [str(i) for i in content_ids if i not in found]
            if missing:
                raise ApiError(404, f"content_ids: unknown content id(s): {', '.join(missing)}")
            drafts = [str(i) for i in content_ids if found[i] != "published"]
            if drafts:
                raise ApiError(409, f"content_ids: content must be published first: {', '.join(drafts)}")
            newsletter = Newsletter(
                id=uuid.uuid4(),
                subject=subject,
                created_at=utcnow(),
                items=[NewsletterItem(position=i, content_id=cid) for i, cid in enumerate(content_ids)],
            )
            session.add(newsletter)
            await session.flush()
            await audit.record(session, actor, "newsletter.create", "newsletter", newsletter.id, subject=subject)
    except IntegrityError:
        raise ApiError(409, "content_ids: content was deleted while the newsletter was being created") from None
    return newsletter_out(newsletter, DeliveryCounts())


async def _newsletter(session: AsyncSession, newsletter_id: uuid.UUID) -> Newsletter:
    """The newsletter, or a 404."""
    newsletter = await session.get(Newsletter, newsletter_id)
    if newsletter is None:
        raise ApiError(404, NOT_FOUND)
    return newsletter


async def get_newsletter(services, newsletter_id: uuid.UUID) -> NewsletterOut:  # noqa: ANN001
    async with services.db.session() as session:
        newsletter = await _newsletter(session, newsletter_id)
        return newsletter_out(newsletter, await counts(session, newsletter_id))


async def queue_send(services, newsletter_id: uuid.UUID, actor: Actor) -> int:  # noqa: ANN001
    """Queue one delivery per confirmed subscriber (and re-queue failed ones); returns how many are pending.

    The caller then runs :func:`deliver_newsletter` (in the background)."""
    if actor.is_person:
        require(actor, Action.SEND)
    now = utcnow()
    async with services.db.transaction() as session:
        newsletter = await _newsletter(session, newsletter_id)
        newsletter.send_requested_at = now
        newsletter.scheduled_at = None
        new_recipients = (
            await session.scalars(
                select(Subscriber.id).where(
                    Subscriber.status == "confirmed",
                    ~exists().where(Delivery.newsletter_id == newsletter_id, Delivery.subscriber_id == Subscriber.id),
                )
            )
        ).all()
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        for start_at in range(0, len(new_recipients), INSERT_BATCH):
            rows = [
                {
                    "id": uuid.uuid4(),
                    "newsletter_id": newsletter_id,
                    "subscriber_id": sid,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for sid in new_recipients[start_at : start_at + INSERT_BATCH]
            ]
            await session.execute(
                insert(Delivery).values(rows).on_conflict_do_nothing(index_elements=["newsletter_id", "subscriber_id"])
            )
        # A retried send re-queues failed deliveries; sent ones are never touched.
        await session.execute(
            update(Delivery)
            .where(Delivery.newsletter_id == newsletter_id, Delivery.status == "failed")
            .values(status="pending", updated_at=now)
        )
        queued = await session.scalar(
            select(func.count()).select_from(Delivery).where(
                Delivery.newsletter_id == newsletter_id, Delivery.status == "pending"
            )
        )
        await audit.record(session, actor, "newsletter.send", "newsletter", newsletter_id, queued=queued or 0)
    return queued or 0


async def schedule(services, newsletter_id: uuid.UUID, at: datetime, actor: Actor) -> None:  # noqa: ANN001
    require(actor, Action.SEND)
    if at <= utcnow():
        raise ApiError(422, "scheduled_at: must be in the future; use Send now to send at once")
    async with services.db.transaction() as session:
        newsletter = await _newsletter(session, newsletter_id)
        if newsletter.send_requested_at is not None:
            raise ApiError(409, "newsletter is already being sent or was sent")
        newsletter.scheduled_at = at
        await audit.record(session, actor, "newsletter.schedule", "newsletter", newsletter_id, scheduled_at=at.isoformat())


async def scheduled_for(services, newsletter_id: uuid.UUID) -> datetime | None:  # noqa: ANN001
    async with services.db.session() as session:
        return await session.scalar(select(Newsletter.scheduled_at).where(Newsletter.id == newsletter_id))


async def start_due(services) -> int:  # noqa: ANN001
    """Send every scheduled newsletter whose time has come (claimed once across replicas)."""
    started = 0
    async with services.db.session() as session:
        due = (
            await session.scalars(
                select(Newsletter.id).where(Newsletter.scheduled_at <= utcnow(), Newsletter.send_requested_at.is_(None))
            )
        ).all()
    for newsletter_id in due:
        async with services.db.transaction() as session:
            claimed = await session.execute(
                update(Newsletter)
                .where(Newsletter.id == newsletter_id, Newsletter.send_requested_at.is_(None))
                .values(send_requested_at=utcnow())
            )
        if claimed.rowcount == 1:
            await queue_send(services, newsletter_id, SYSTEM)
            await deliver_newsletter(services, newsletter_id)
            started += 1
    return started


def render_newsletter(subject: str, items: list[tuple[str, str]], unsubscribe_token: str, base_url: str) -> str:
    parts = [subject, "=" * min(len(subject), 72), ""]
    for title, body in items:
        parts += [title, "-" * min(len(title), 72), body.strip(), ""]
    parts += [
        "--",
        "You receive this because you subscribed to the AquaScene newsletter.",
        f"Unsubscribe token: {unsubscribe_token}",
        f"Unsubscribe: {base_url}/subscribe/unsubscribe?token={unsubscribe_token}",
    ]
    return "\n".join(parts) + "\n"


@dataclass
class Rendered:
    subject: str
    items: list[tuple[str, str]]


async def _rendered(services, newsletter_id: uuid.UUID) -> Rendered:  # noqa: ANN001
    async with services.db.session() as session:
        newsletter = await _newsletter(session, newsletter_id)
        order = {item.content_id: item.position for item in newsletter.items}
        rows = (await session.execute(select(Content.id, Content.title, Content.body).where(Content.id.in_(order)))).all()
        subject = newsletter.subject
    return Rendered(subject, [(title, body) for _, title, body in sorted(rows, key=lambda r: order[r[0]])])


PREVIEW_TOKEN = "preview-token"


async def preview(services, newsletter_id: uuid.UUID) -> tuple[str, str]:  # noqa: ANN001
    """(subject, text) exactly as a subscriber receives it (with a placeholder unsubscribe token)."""
    rendered = await _rendered(services, newsletter_id)
    text = render_newsletter(rendered.subject, rendered.items, PREVIEW_TOKEN, services.settings.public_base_url)
    return rendered.subject, text


async def send_test(services, newsletter_id: uuid.UUID, actor: Actor) -> None:  # noqa: ANN001
    """Mail the newsletter to the signed-in person only (no delivery rows)."""
    require(actor, Action.EDIT)
    subject, text = await preview(services, newsletter_id)
    message = build_message(services.settings, to=actor.name, subject=f"[Test] {subject}", text=text)
    try:
        await anyio.to_thread.run_sync(send_one, services.settings, message)
    except MailError as exc:
        raise ApiError(502, f"test email could not be sent: {exc}") from None
    async with services.db.transaction() as session:
        await audit.record(session, actor, "newsletter.test_send", "newsletter", newsletter_id, to=actor.name)


async def _finish(services, delivery_id: uuid.UUID, status: str, error: str | None) -> None:  # noqa: ANN001
    async with services.db.transaction() as session:
        now = utcnow()
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == "sending")
            .values(status=status, last_error=error, updated_at=now, sent_at=now if status == "sent" else None)
        )


async def deliver_newsletter(services, newsletter_id: uuid.UUID) -> None:  # noqa: ANN001
    """Send every pending delivery of one newsletter over a single SMTP connection."""
    settings = services.settings
    try:
        rendered = await _rendered(services, newsletter_id)
    except ApiError:
        return
    subject, items = rendered.subject, rendered.items

    mail = MailSession(settings)
    try:
        await anyio.to_thread.run_sync(mail.__enter__)
    except MailError as exc:
        log.error("newsletter %s not sent, deliveries stay queued: %s", newsletter_id, exc)
        return
    try:
        while True:
            async with services.db.session() as session:
                batch = (
                    await session.execute(
                        select(Delivery.id, Subscriber.id, Subscriber.email, Subscriber.status, Subscriber.unsubscribe_token)
                        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                        .where(Delivery.newsletter_id == newsletter_id, Delivery.status == "pending")
                        .limit(CLAIM_BATCH)
                    )
                ).all()
            if not batch:
                break
            for delivery_id, subscriber_id, email, sub_status, unsubscribe_token in batch:
                async with services.db.transaction() as session:
                    claimed = await session.execute(
                        update(Delivery)
                        .where(Delivery.id == delivery_id, Delivery.status == "pending")
                        .values(status="sending", attempts=Delivery.attempts + 1, updated_at=utcnow())
                    )
                if claimed.rowcount != 1:
                    continue  # another worker owns it
                if sub_status != "confirmed":
                    await _finish(services, delivery_id, "skipped", "subscriber is no longer confirmed")
                    continue
                try:
                    message = build_message(
                        settings,
                        to=email,
                        subject=subject,
                        text=render_newsletter(subject, items, unsubscribe_token, settings.public_base_url),
                        headers={
                            "List-Unsubscribe": f"<{settings.public_base_url}/subscribe/unsubscribe?token={unsubscribe_token}>",
                        },
                        message_id=f"<{newsletter_id}.{subscriber_id}@aquascene.bg>",
                    )
                    await anyio.to_thread.run_sync(mail.send, message)
                except (MailError, ValueError) as exc:
                    await _finish(services, delivery_id, "failed", str(exc)[:1000])
                else:
                    await _finish(services, delivery_id, "sent", None)
    except Exception:
        log.exception("newsletter %s delivery stopped; pending deliveries stay queued", newsletter_id)
    finally:
        await anyio.to_thread.run_sync(mail.__exit__, None, None, None)


@dataclass
class NewsletterRow:
    newsletter: Newsletter
    counts: DeliveryCounts
    status: str


async def recent(services, limit: int = 20) -> list[NewsletterRow]:  # noqa: ANN001
    """Scheduled first, then the newest, with their delivery counts."""
    async with services.db.session() as session:
        rows = (
            await session.scalars(
                select(Newsletter).order_by(Newsletter.scheduled_at.is_(None), Newsletter.created_at.desc()).limit(limit)
            )
        ).all()
        result = []
        for newsletter in rows:
            c = await counts(session, newsletter.id)
            result.append(NewsletterRow(newsletter, c, "scheduled" if newsletter.scheduled_at else status_of(newsletter, c)))
    return result
