"""Distributions (distributor role): Instagram posts, accepted here, published by the worker."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from app.deps import Caller, get_services, rate_limit, require_api_key
from app.distribution import create_distribution, get_distribution
from app.errors import error_responses
from app.idempotency import run_idempotent
from app.instagram import MAX_CAPTION_CHARS
from app.models import Distribution
from app.routers.content import IdempotencyKey, api_actor, json_response, location_header
from app.schemas import MULTILINE, Input, _no_null_defaults, line
from app.services import Services

router = APIRouter(prefix="/api/v1/distributions", tags=["distributions"], dependencies=[Depends(rate_limit)])

State = Literal["queued", "publishing", "published", "failed"]


class InstagramDistributionCreate(Input):
    """An image post of published content: the asset (a JPEG of the content) and its caption."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)

    content_id: uuid.UUID
    asset_id: uuid.UUID = Field(description="A JPEG asset of the content (aspect ratio 4:5 to 1.91:1, at most 8 MB).")
    caption: Annotated[str, StringConstraints(max_length=MAX_CAPTION_CHARS, pattern=MULTILINE)] = Field(
        default=None, description="Instead of the content's body; at most 2,200 characters, 30 hashtags, 20 @mentions.")
    alt_text: line(1000) = Field(default=None, description="The image's description; the content's title when absent.")
    publish_at: AwareDatetime = Field(default=None, description="When to publish (with a UTC offset); now when absent.")


class DistributionOut(BaseModel):
    id: uuid.UUID
    channel: Literal["instagram"]
    content_id: uuid.UUID | None = Field(description="Null once the content was deleted (the post stays out).")
    asset_id: uuid.UUID | None
    caption: str
    alt_text: str | None
    state: State = Field(description="queued (waiting for publish_at, the publishing limit or a retry), publishing, "
                                     "published, or failed (see reason).")
    reason: str | None = Field(description="Why it failed, or why it is waiting.")
    attempts: int
    publish_at: datetime
    next_attempt_at: datetime
    container_id: str | None
    media_id: str | None
    permalink: str | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None


def distribution_out(row: Distribution) -> DistributionOut:
    return DistributionOut.model_validate(row, from_attributes=True)


LOCATION = location_header("The distribution's URL.")
UNCONFIGURED = "Instagram publishing is not configured (INSTAGRAM_ACCESS_TOKEN or INSTAGRAM_USER_ID missing)"
READ_503 = f"{UNCONFIGURED}, or the database is unavailable; `detail` says which."
CREATE_503 = f"{UNCONFIGURED}, or the database or object storage is unavailable; `detail` says which. Nothing was queued."


@router.post(
    "/instagram",
    status_code=202,
    response_model=DistributionOut,
    responses={
        202: {"headers": LOCATION},
        **error_responses(
            400, 401, 404, 409, 413, 422, 429, 503,
            s404="The content, or the asset among the content's, is unknown (or its file is gone).",
            s409="The content is neither published nor approved, or the Idempotency-Key is in use by a request still being "
                 "processed or was used with another body.",
            s422="Invalid request, or Instagram would refuse the post: `detail` names the field (caption: length, "
                 "hashtags, mentions; asset_id: not a JPEG, larger than 8 MB, aspect ratio outside 4:5 to 1.91:1).",
            s503=CREATE_503,
        ),
    },
)
async def distribute_to_instagram(
    payload: InstagramDistributionCreate,
    request: Request,
    caller: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async def create() -> Response:
        row = await create_distribution(
            services,
            actor=api_actor(request, caller),
            content_id=payload.content_id,
            asset_id=payload.asset_id,
            caption=payload.caption,
            alt_text=payload.alt_text,
            publish_at=payload.publish_at,
        )
        return json_response(distribution_out(row), 202, {"Location": f"/api/v1/distributions/{row.id}"})

    return await run_idempotent(request, services, caller, await request.body(), create)


@router.get(
    "/{distribution_id:uuid}",
    response_model=DistributionOut,
    responses=error_responses(401, 404, 422, 429, 503, s503=READ_503),
)
async def read_distribution(
    distribution_id: uuid.UUID,
    _: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    row = await get_distribution(services, distribution_id)
    return json_response(distribution_out(row))
