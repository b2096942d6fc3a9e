"""Newsletters (distributor role): the HTTP face of app.domain.newsletters."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.background import BackgroundTask

from app.deps import Caller, get_services, rate_limit, require_api_key
from app.domain import newsletters as distribution
from app.errors import error_responses
from app.idempotency import run_idempotent
from app.routers.content import JSON, IdempotencyKey, api_actor, location_header
from app.schemas import NewsletterCreate, NewsletterOut, SendAccepted
from app.services import Services

router = APIRouter(prefix="/api/v1/newsletters", tags=["newsletters"], dependencies=[Depends(rate_limit)])

LOCATION = location_header("The newsletter's URL.")


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
        out = await distribution.create_newsletter(services, payload.subject, payload.content_ids, api_actor(request, caller))
        return Response(
            out.model_dump_json().encode(),
            status_code=201,
            media_type=JSON,
            headers={"Location": f"/api/v1/newsletters/{out.id}"},
        )

    return await run_idempotent(request, services, caller, await request.body(), create)


@router.get("/{newsletter_id}", response_model=NewsletterOut, responses=error_responses(401, 404, 422, 429, 503))
async def get_newsletter(
    newsletter_id: uuid.UUID,
    _: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    out = await distribution.get_newsletter(services, newsletter_id)
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
        queued = await distribution.queue_send(services, newsletter_id, api_actor(request, caller))
        out = SendAccepted(id=newsletter_id, status="sending", queued=queued)
        return Response(
            out.model_dump_json().encode(),
            status_code=202,
            media_type=JSON,
            headers={"Location": f"/api/v1/newsletters/{newsletter_id}"},
            background=BackgroundTask(distribution.deliver_newsletter, services, newsletter_id),
        )

    return await run_idempotent(request, services, caller, b"", start)
