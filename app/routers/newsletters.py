"""Newsletters (distributor role): compose, send exactly once per subscriber, report.

Sending creates one ``deliveries`` row per (newsletter, confirmed subscriber)
under a unique constraint, then a worker claims each pending row with a
conditional UPDATE before handing it to SMTP. A retried send therefore only
adds rows for new subscribers and re-queues failed ones; a delivery that was
sent (or is being sent) is never sent again.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from starlette.background import BackgroundTask

from app.deps import Caller, get_services, rate_limit, require_api_key
from app.errors import ApiError, error_responses
from app.idempotency import run_idempotent
from app.mailer import MailError, MailSession, build_message
from app.models import Content, Delivery, Newsletter, NewsletterItem, Subscriber, utcnow
from app.routers.content import JSON, IdempotencyKey
from app.schemas import DeliveryCounts, NewsletterCreate, NewsletterOut, SendAccepted
from app.services import Services

router = APIRouter(prefix="/api/v1/newsletters", tags=["newsletters"], dependencies=[Depends(rate_limit)])
log = logging.getLogger("app.distributor")

INSERT_BATCH = 500
CLAIM_BATCH = 50
NOT_FOUND = "newsletter not found"


async def _counts(session, newsletter_id: uuid.UUID) -> DeliveryCounts:  # noqa: ANN001
    rows = (
        await session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.newsletter_id == newsletter_id)
            .group_by(Delivery.status)
        )
    ).all()
    counts = DeliveryCounts()
    for status, number in rows:
        if hasattr(counts, status):
            setattr(counts, status, number)
        counts.total += number
    return counts


def _status(newsletter: Newsletter, counts: DeliveryCounts) -> str:
    if newsletter.send_requested_at is None:
        return "draft"
    if counts.pending or counts.sending:
        return "sending"
    return "failed" if counts.failed else "sent"


def _out(newsletter: Newsletter, counts: DeliveryCounts) -> NewsletterOut:
    return NewsletterOut(
        id=newsletter.id,
        subject=newsletter.subject,
        content_ids=[item.content_id for item in newsletter.items],
        status=_status(newsletter, counts),  # type: ignore[arg-type]
        created_at=newsletter.created_at,
        send_requested_at=newsletter.send_requested_at,
        deliveries=counts,
    )


LOCATION = {"Location": {"description": "The newsletter's URL.", "required": True, "schema": {"type": "string"}}}


@router.post(
    "",
    status_code=201,
    response_model=NewsletterOut,
    responses={
        201: {"headers": LOCATION},
        **error_responses(
            400, 401, 404, 409, 413, 422, 429, 503,
            s404="A content id is unknown.",
            s409="A content item is not published (or was deleted meanwhile), or the Idempotency-Key is in use "
            "by a request still being processed or was used with another body.",
        ),
    },
)
async def create_newsletter(
    payload: NewsletterCreate,
    request: Request,
    caller: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async def create() -> Response:
        try:
            async with services.db.transaction() as session:
                found = dict(
                    (await session.execute(select(Content.id, Content.status).where(Content.id.in_(payload.content_ids)))).all()
                )
                missing = [str(i) for i in payload.content_ids if i not in found]
                if missing:
                    raise ApiError(404, f"content_ids: unknown content id(s): {', '.join(missing)}")
                drafts = [str(i) for i in payload.content_ids if found[i] != "published"]
                if drafts:
                    raise ApiError(409, f"content_ids: content must be published first: {', '.join(drafts)}")
                newsletter = Newsletter(
                    id=uuid.uuid4(),
                    subject=payload.subject,
                    created_at=utcnow(),
                    items=[NewsletterItem(position=i, content_id=cid) for i, cid in enumerate(payload.content_ids)],
                )
                session.add(newsletter)
        except IntegrityError:
            raise ApiError(409, "content_ids: content was deleted while the newsletter was being created") from None
        out = _out(newsletter, DeliveryCounts())
        return Response(
            out.model_dump_json().encode(),
            status_code=201,
            media_type=JSON,
            headers={"Location": f"/api/v1/newsletters/{newsletter.id}"},
        )

    return await run_idempotent(request, services, caller, await request.body(), create)


@router.get("/{newsletter_id}", response_model=NewsletterOut, responses=error_responses(401, 404, 422, 429, 503))
async def get_newsletter(
    newsletter_id: uuid.UUID,
    _: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    async with services.db.session() as session:
        newsletter = await session.get(Newsletter, newsletter_id)
        if newsletter is None:
            raise ApiError(404, NOT_FOUND)
        out = _out(newsletter, await _counts(session, newsletter_id))
    return Response(out.model_dump_json().encode(), media_type=JSON)


@router.post(
    "/{newsletter_id}/send",
    status_code=202,
    response_model=SendAccepted,
    responses={
        202: {"headers": LOCATION},
        **error_responses(401, 404, 409, 422, 429, 503,
                          s409="The Idempotency-Key is in use by a request still being processed."),
    },
)
async def send_newsletter(
    newsletter_id: uuid.UUID,
    request: Request,
    caller: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async def start() -> Response:
        now = utcnow()
        async with services.db.transaction() as session:
            newsletter = await session.get(Newsletter, newsletter_id)
            if newsletter is None:
                raise ApiError(404, NOT_FOUND)
            newsletter.send_requested_at = now
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
        out = SendAccepted(id=newsletter_id, status="sending", queued=queued or 0)
        return Response(
            out.model_dump_json().encode(),
            status_code=202,
            media_type=JSON,
            headers={"Location": f"/api/v1/newsletters/{newsletter_id}"},
            background=BackgroundTask(deliver_newsletter, services, newsletter_id),
        )

    return await run_idempotent(request, services, caller, b"", start)


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


async def _finish(services: Services, delivery_id: uuid.UUID, status: str, error: str | None) -> None:
    async with services.db.transaction() as session:
        now = utcnow()
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == "sending")
            .values(status=status, last_error=error, updated_at=now, sent_at=now if status == "sent" else None)
        )


async def deliver_newsletter(services: Services, newsletter_id: uuid.UUID) -> None:
    """Send every pending delivery of one newsletter over a single SMTP connection."""
    settings = services.settings
    async with services.db.session() as session:
        newsletter = await session.get(Newsletter, newsletter_id)
        if newsletter is None:
            return
        subject = newsletter.subject
        order = {item.content_id: item.position for item in newsletter.items}
        rows = (await session.execute(select(Content.id, Content.title, Content.body).where(Content.id.in_(order)))).all()
    items = [(title, body) for _, title, body in sorted(rows, key=lambda r: order[r[0]])]

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
