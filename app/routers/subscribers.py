"""Subscribers (subscriber-manager role): double opt-in subscription management."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.deps import Caller, get_services, rate_limit, require_api_key
from app.domain import subscribers as directory
from app.errors import ApiError, error_responses
from app.mailer import MailError, build_message, send_one
from app.models import Subscriber, utcnow
from app.routers.content import JSON
from app.schemas import SubscriberCreate, SubscriberOut, SubscriberPage, TokenRequest
from app.services import Services

router = APIRouter(prefix="/api/v1/subscribers", tags=["subscribers"], dependencies=[Depends(rate_limit)])

Status = Literal["pending", "confirmed", "unsubscribed"]


class Subscription(BaseModel):
    id: uuid.UUID
    email: str
    status: Status


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _json(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json().encode(), status_code=status_code, media_type=JSON)


def _subscription(sub: Subscriber) -> Subscription:
    return Subscription(id=sub.id, email=sub.email, status=sub.status)  # type: ignore[arg-type]


def normalise_email(email: str) -> str:
    return email.strip().lower()


@router.post(
    "",
    status_code=201,
    response_model=Subscription,
    responses={
        200: {"description": "Already subscribed (or confirmation pending): no second mail.", "model": Subscription},
        **error_responses(400, 413, 422, 429, 502, 503, s502="The confirmation mail could not be sent; nothing was stored."),
    },
)
async def subscribe(payload: SubscriberCreate, services: Annotated[Services, Depends(get_services)]) -> Response:
    settings = services.settings
    email = normalise_email(str(payload.email))
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
                return _json(_subscription(sub), 200)  # duplicate: same subscriber, no second mail
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
        return _json(_subscription(sub), 200)
    return _json(_subscription(sub), 201 if created else 200)


@router.post(
    "/confirm",
    response_model=Subscription,
    responses=error_responses(400, 404, 410, 413, 422, 429, 503, s404="Unknown token.", s410="The token has expired."),
)
async def confirm(payload: TokenRequest, services: Annotated[Services, Depends(get_services)]) -> Response:
    async with services.db.transaction() as session:
        sub = await session.scalar(select(Subscriber).where(Subscriber.confirm_token_hash == _hash(payload.token)))
        if sub is None or sub.status == "unsubscribed":
            raise ApiError(404, "token: unknown confirmation token")
        if sub.status == "pending":
            if sub.confirm_expires_at is not None and sub.confirm_expires_at < utcnow():
                raise ApiError(410, "token: confirmation token has expired; subscribe again")
            sub.status = "confirmed"
            sub.confirmed_at = sub.updated_at = utcnow()
        return _json(_subscription(sub))


@router.post(
    "/unsubscribe", response_model=Subscription, responses=error_responses(400, 404, 413, 422, 429, 503, s404="Unknown token.")
)
async def unsubscribe(payload: TokenRequest, services: Annotated[Services, Depends(get_services)]) -> Response:
    async with services.db.transaction() as session:
        sub = await session.scalar(select(Subscriber).where(Subscriber.unsubscribe_token == payload.token))
        if sub is None:
            raise ApiError(404, "token: unknown unsubscribe token")
        if sub.status != "unsubscribed":
            sub.status = "unsubscribed"
            sub.unsubscribed_at = sub.updated_at = utcnow()
        return _json(_subscription(sub))


@router.get("", response_model=SubscriberPage, responses=error_responses(401, 422, 429, 503))
async def list_subscribers(
    _: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
    status: Annotated[Status | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    rows, total = await directory.search(services, status, None, limit, offset)
    page = SubscriberPage(
        items=[SubscriberOut.model_validate(row, from_attributes=True) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )
    return _json(page)
