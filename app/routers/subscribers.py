"""Subscribers (subscriber-manager role): double opt-in subscription management."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from app.deps import Caller, get_services, rate_limit, require_api_key
from app.domain import subscribers as directory
from app.errors import error_responses
from app.models import Subscriber
from app.routers.content import JSON
from app.schemas import SubscriberCreate, SubscriberOut, SubscriberPage, TokenRequest
from app.services import Services

router = APIRouter(prefix="/api/v1/subscribers", tags=["subscribers"], dependencies=[Depends(rate_limit)])

Status = Literal["pending", "confirmed", "unsubscribed"]


class Subscription(BaseModel):
    id: uuid.UUID
    email: str
    status: Status


def _json(model: BaseModel, status_code: int = 200) -> Response:
    return Response(model.model_dump_json().encode(), status_code=status_code, media_type=JSON)


def _subscription(sub: Subscriber) -> Subscription:
    return Subscription(id=sub.id, email=sub.email, status=sub.status)  # type: ignore[arg-type]


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
    sub, created = await directory.subscribe(services, payload)
    return _json(_subscription(sub), 201 if created else 200)


@router.post(
    "/confirm",
    response_model=Subscription,
    responses=error_responses(400, 404, 410, 413, 422, 429, 503, s404="Unknown token.", s410="The token has expired."),
)
async def confirm(payload: TokenRequest, services: Annotated[Services, Depends(get_services)]) -> Response:
    return _json(_subscription(await directory.confirm(services, payload.token)))


@router.post(
    "/unsubscribe", response_model=Subscription, responses=error_responses(400, 404, 413, 422, 429, 503, s404="Unknown token.")
)
async def unsubscribe(payload: TokenRequest, services: Annotated[Services, Depends(get_services)]) -> Response:
    return _json(_subscription(await directory.unsubscribe_by_token(services, payload.token)))


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
