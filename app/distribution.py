"""Distribution to Instagram: the business rules the API (and any page) call.

Accepting a post validates everything the Graph API would refuse (caption,
JPEG, size, aspect ratio), copies the image into the Instagram media bucket
and writes one ``distributions`` row, in that order: a request that fails
anywhere writes nothing (a copied object is removed again). The distributor's
worker (app/distribution_worker.py) publishes the row when it is due.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime

import anyio
from sqlalchemy import select

from app.domain import audit
from app.domain.actors import Actor
from app.domain.content import DISTRIBUTABLE, may_distribute
from app.domain.permissions import Action, require
from app.errors import ApiError, unavailable_headers
from app.instagram import MAX_IMAGE_BYTES, caption_problem, image_problem
from app.models import Asset, Content, Distribution, utcnow
from app.services import Services
from app.storage import StorageError

PUBLISHABLE_TYPE = "image/jpeg"


def require_configured(services: Services) -> None:
    """503 with the reason while the Instagram token or user id is missing."""
    reason = services.settings.instagram_unconfigured
    if reason:
        raise ApiError(503, f"{reason}; see the README's Instagram section", unavailable_headers())


async def create_distribution(
    services: Services,
    *,
    actor: Actor,
    content_id: uuid.UUID,
    asset_id: uuid.UUID,
    caption: str | None,
    alt_text: str | None,
    publish_at: datetime | None,
) -> Distribution:
    # A post makes content public, and distributing approved content publishes it: whoever
    # may publish may post (an API key is trusted like for every other write).
    if actor.is_person:
        require(actor, Action.PUBLISH)
    require_configured(services)
    async with services.db.session() as session:
        content = await session.get(Content, content_id)
        if content is None:
            raise ApiError(404, "content_id: unknown content id")
        asset = await session.get(Asset, asset_id)
        if asset is None or asset.content_id != content_id:
            raise ApiError(404, "asset_id: no asset with this id belongs to the content")
    if not may_distribute(content):
        raise ApiError(409, f"content_id: content must be published or approved before it is distributed (it is {content.status})")

    text = caption if caption is not None else content.body.strip()
    problem = caption_problem(text)
    if problem:
        source = "" if caption is not None else " (the content's body, used when no caption is sent; send a shorter caption)"
        raise ApiError(422, f"caption: {problem}{source}")
    if asset.content_type != PUBLISHABLE_TYPE:
        raise ApiError(422, f"asset_id: the asset is {asset.content_type}; Instagram takes JPEG images only")
    if asset.size > MAX_IMAGE_BYTES:
        raise ApiError(422, f"asset_id: the image has {asset.size} bytes; Instagram takes at most {MAX_IMAGE_BYTES} (8 MB)")

    storage = services.storage
    try:
        data = await anyio.to_thread.run_sync(storage.get, asset.bucket, asset.key, MAX_IMAGE_BYTES)
    except FileNotFoundError:
        raise ApiError(404, "asset_id: the asset's file is missing from object storage; upload it again") from None
    except (StorageError, OSError) as exc:
        raise ApiError(503, f"object storage unavailable, nothing was queued: {exc}", unavailable_headers()) from None
    problem = image_problem(data)
    if problem:
        raise ApiError(422, f"asset_id: {problem}")

    now = utcnow()
    distribution = Distribution(
        id=uuid.uuid4(),
        channel="instagram",
        content_id=content_id,
        asset_id=asset_id,
        media_bucket=services.settings.s3_bucket_instagram,
        caption=text,
        alt_text=alt_text if alt_text is not None else content.title,
        state="queued",
        attempts=0,
        publish_at=publish_at or now,
        next_attempt_at=max(publish_at or now, now),
        created_at=now,
        updated_at=now,
    )
    distribution.media_key = f"distributions/{distribution.id}/{asset.filename}"
    # The Graph API fetches the image from the Instagram media bucket (its own lifecycle).
    try:
        await anyio.to_thread.run_sync(storage.put, distribution.media_bucket, distribution.media_key, data,
                                       PUBLISHABLE_TYPE)
    except (StorageError, OSError) as exc:
        raise ApiError(503, f"object storage unavailable, nothing was queued: {exc}", unavailable_headers()) from None
    try:
        async with services.db.transaction() as session:
            session.add(distribution)
            await session.flush()
            await audit.record(session, actor, "distribution.create", "distribution", distribution.id,
                               channel="instagram", content_id=str(content_id), asset_id=str(asset_id),
                               publish_at=distribution.publish_at.isoformat())
    except BaseException:
        with contextlib.suppress(StorageError, OSError):  # an orphan in a bucket with expiry is harmless
            await anyio.to_thread.run_sync(storage.delete, distribution.media_bucket, distribution.media_key)
        raise
    return distribution


async def get_distribution(services: Services, distribution_id: uuid.UUID) -> Distribution:
    require_configured(services)
    async with services.db.session() as session:
        distribution = await session.get(Distribution, distribution_id)
    if distribution is None:
        raise ApiError(404, "distribution not found")
    return distribution



async def recent_distributions(
    services: Services, limit: int = 50, content_id: uuid.UUID | None = None
) -> list[tuple[Distribution, str | None]]:
    """The newest distributions with their content's title (None once the content was deleted).

    History only: readable while Instagram is not configured, so a page can still show it."""
    query = (
        select(Distribution, Content.title)
        .outerjoin(Content, Content.id == Distribution.content_id)
        .order_by(Distribution.created_at.desc())
        .limit(limit)
    )
    if content_id is not None:
        query = query.where(Distribution.content_id == content_id)
    async with services.db.session() as session:
        return [(row, title) for row, title in (await session.execute(query)).all()]


async def postable_images(services: Services, limit: int = 200) -> list[tuple[Content, list[Asset]]]:
    """Content that may be distributed, newest first, each with its JPEG assets (the images a post can take)."""
    query = (
        select(Content, Asset)
        .join(Asset, Asset.content_id == Content.id)
        .where(Content.status.in_(DISTRIBUTABLE), Asset.content_type == PUBLISHABLE_TYPE)
        .order_by(Content.updated_at.desc(), Content.id, Asset.created_at)
        .limit(limit)
    )
    grouped: dict[uuid.UUID, tuple[Content, list[Asset]]] = {}
    async with services.db.session() as session:
        for content, asset in (await session.execute(query)).all():
            grouped.setdefault(content.id, (content, []))[1].append(asset)
    return list(grouped.values())
