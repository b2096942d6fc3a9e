"""Content and its editorial workflow: draft -> in_review -> approved -> published, and archived.

Persons (dashboard accounts) always follow the workflow; an editor never approves
their own submission (an admin may, recorded as a self-approval). API-key clients
keep today's freedom unless REQUIRE_REVIEW is on: then they can neither create
content as published nor publish what a person has not approved (409).
Every status change writes a ``content_transitions`` row (who, when) and an audit row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from app.domain import audit, escape_like
from app.domain.actors import Actor
from app.domain.permissions import Action, require
from app.errors import ApiError
from app.models import Asset, Content, ContentTag, ContentTransition, utcnow
from app.schemas import ContentCreate, ContentOut, ContentStatus, ContentSummary, ContentType, ContentUpdate

NOT_FOUND = "content not found"
CONTENT_INSERT = Content.__table__.insert()
TAG_INSERT = ContentTag.__table__.insert()
TRANSITION_INSERT = ContentTransition.__table__.insert()

DRAFT, IN_REVIEW, APPROVED, PUBLISHED, ARCHIVED = (
    ContentStatus.DRAFT, ContentStatus.IN_REVIEW, ContentStatus.APPROVED, ContentStatus.PUBLISHED, ContentStatus.ARCHIVED,
)

# The workflow a person follows: (from, to) -> the permission it needs.
PERSON_TRANSITIONS: dict[tuple[ContentStatus, ContentStatus], Action] = {
    (DRAFT, IN_REVIEW): Action.EDIT,  # submit for review
    (IN_REVIEW, DRAFT): Action.EDIT,  # withdraw, or send back
    (IN_REVIEW, APPROVED): Action.APPROVE,
    (APPROVED, DRAFT): Action.EDIT,
    (APPROVED, PUBLISHED): Action.PUBLISH,
    (PUBLISHED, DRAFT): Action.PUBLISH,  # unpublish for rework
    (DRAFT, ARCHIVED): Action.PUBLISH,
    (IN_REVIEW, ARCHIVED): Action.PUBLISH,
    (APPROVED, ARCHIVED): Action.PUBLISH,
    (PUBLISHED, ARCHIVED): Action.PUBLISH,
    (ARCHIVED, DRAFT): Action.EDIT,  # restore
}

REVIEW_REQUIRED_TO_CREATE_PUBLISHED = (
    "status: content cannot be created as published while review is required (REQUIRE_REVIEW); "
    "create it as a draft and have it approved in the admin dashboard"
)
REVIEW_REQUIRED_TO_PUBLISH = (
    "status: content must be approved in the admin dashboard before it is published "
    "(REQUIRE_REVIEW is on); it is {current}"
)
REVIEW_REQUIRED_TO_APPROVE = (
    "status: only a person can approve content while review is required (REQUIRE_REVIEW); "
    "approve it in the admin dashboard"
)


DISTRIBUTABLE = (PUBLISHED, APPROVED)


def may_distribute(content: Content | ContentStatus | str) -> bool:
    """Whether content may go out on a distribution channel (newsletter, Instagram, ...):
    it is published, or approved by a reviewer (distributing approved content publishes it)."""
    status = content.status if isinstance(content, Content) else content
    return status in DISTRIBUTABLE


# --- serialisation (the API's shape; the dashboard reads the same) ----------------------


def summary_fields(content: Content) -> dict:
    """The fields a listing and a full read share (everything but the body)."""
    return {
        "id": content.id,
        "title": content.title,
        "content_type": ContentType(content.content_type),
        "status": ContentStatus(content.status),
        "tags": content.tag_names,
        "version": content.version,
        "quality_score": content.quality_score,
        "generation": content.generation,
        "created_at": content.created_at,
        "updated_at": content.updated_at,
        "published_at": content.published_at,
    }


def content_out(content: Content) -> ContentOut:
    return ContentOut(**summary_fields(content), body=content.body)


def content_cache_key(services, content_id: uuid.UUID | str) -> str:  # noqa: ANN001
    return services.cache_key("content-manager", "content", str(content_id))


async def invalidate_content(services, content_id: uuid.UUID | str) -> None:  # noqa: ANN001
    key = content_cache_key(services, content_id)
    services.local_cache.delete(key)
    await services.kv.delete(key)
    await services.kv.publish_invalidation(key)


# --- rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransitionCheck:
    self_approval: bool = False


def check_transition(
    current: ContentStatus,
    target: ContentStatus,
    actor: Actor,
    require_review: bool,
    submitted_by: uuid.UUID | None = None,
) -> TransitionCheck:
    """Raise 403/409 unless ``actor`` may move content from ``current`` to ``target``."""
    if actor.is_person:
        needed = PERSON_TRANSITIONS.get((current, target))
        if needed is None:
            allowed = ", ".join(t.value for (f, t) in PERSON_TRANSITIONS if f == current)
            raise ApiError(409, f"status: content that is {current.value} cannot become {target.value}; it can become {allowed}")
        require(actor, needed)
        if target == APPROVED and submitted_by is not None and submitted_by == actor.user_id:
            if actor.role != "admin":
                raise ApiError(
                    403,
                    "You submitted this content for review, so you cannot approve it: another editor or an admin must.",
                )
            return TransitionCheck(self_approval=True)
        return TransitionCheck()
    if require_review:
        if target == APPROVED:
            raise ApiError(409, REVIEW_REQUIRED_TO_APPROVE)
        if target == PUBLISHED and current != APPROVED:
            raise ApiError(409, REVIEW_REQUIRED_TO_PUBLISH.format(current=current.value))
    return TransitionCheck()


async def _record_transition(
    session: AsyncSession,
    content_id: uuid.UUID,
    from_status: ContentStatus | None,
    to_status: ContentStatus,
    actor: Actor,
    check: TransitionCheck = TransitionCheck(),
    note: str | None = None,
) -> None:
    conn = await session.connection()
    await conn.execute(
        TRANSITION_INSERT,
        {
            "content_id": content_id,
            "from_status": None if from_status is None else from_status.value,
            "to_status": to_status.value,
            "actor": actor.name,
            "actor_user_id": actor.user_id,
            "self_approval": check.self_approval,
            "note": note,
            "at": utcnow(),
        },
    )
    action = "content.create" if from_status is None else f"content.{to_status.value}"
    await audit.record(
        session, actor, action, "content", content_id,
        from_status=None if from_status is None else from_status.value,
        to_status=to_status.value, self_approval=check.self_approval or None, note=note,
    )


async def load_content(session: AsyncSession, content_id: uuid.UUID) -> Content:
    """The content item, or a 404."""
    content = await session.get(Content, content_id)
    if content is None:
        raise ApiError(404, NOT_FOUND)
    return content


async def _submitted_by(session: AsyncSession, content_id: uuid.UUID) -> uuid.UUID | None:
    """The person who last submitted the content for review."""
    return await session.scalar(
        select(ContentTransition.actor_user_id)
        .where(ContentTransition.content_id == content_id, ContentTransition.to_status == IN_REVIEW.value)
        .order_by(ContentTransition.id.desc())
        .limit(1)
    )


# --- operations ----------------------------------------------------------------------------


async def create_content(services, payload: ContentCreate, actor: Actor) -> ContentOut:  # noqa: ANN001
    status = ContentStatus(payload.status.value)
    if actor.is_person:
        require(actor, Action.EDIT)
        if status != DRAFT:
            raise ApiError(409, "status: new content starts as a draft; submit it for review")
    elif status == PUBLISHED and services.settings.require_review:
        raise ApiError(409, REVIEW_REQUIRED_TO_CREATE_PUBLISHED)
    now = utcnow()
    content_id = uuid.uuid4()
    row = {
        "id": content_id,
        "title": payload.title,
        "body": payload.body,
        "content_type": payload.content_type.value,
        "status": status.value,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "published_at": now if status == PUBLISHED else None,
    }
    # Core inserts with cached statements (no ORM unit of work): the content row,
    # its tags, its first transition and the audit row, one transaction.
    async with services.db.transaction() as session:
        conn = await session.connection()
        await conn.execute(CONTENT_INSERT, row)
        if payload.tags:
            await conn.execute(
                TAG_INSERT, [{"content_id": content_id, "tag": t, "position": i} for i, t in enumerate(payload.tags)]
            )
        await _record_transition(session, content_id, None, status, actor)
    return ContentOut(
        **{**row, "content_type": payload.content_type, "status": status},
        tags=payload.tags,
        quality_score=None,
        generation=None,
    )


async def add_generated(services, content: Content, actor: Actor) -> None:  # noqa: ANN001
    """Store a generated draft (content row, tags, first transition, audit)."""
    async with services.db.transaction() as session:
        session.add(content)
        await session.flush()
        await _record_transition(session, content.id, None, DRAFT, actor, note=f"generated by {content.generation['provider']}")


@dataclass
class ContentFilter:
    status: ContentStatus | None = None
    content_type: ContentType | None = None
    tag: str | None = None
    q: str | None = None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(content: Content) -> str:
    micros = (content.created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{max(micros, 0)}-{content.id.hex}"


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    micros, ident = cursor.split("-")
    return _EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=ident)


@dataclass
class ContentListing:
    items: list[ContentSummary]
    total: int
    next_cursor: str | None


async def list_content(
    services,  # noqa: ANN001
    filters: ContentFilter,
    limit: int = 20,
    offset: int = 0,
    cursor: str | None = None,
) -> ContentListing:
    conditions = []
    if filters.status is not None:
        conditions.append(Content.status == filters.status.value)
    if filters.content_type is not None:
        conditions.append(Content.content_type == filters.content_type.value)
    if filters.tag is not None:
        conditions.append(
            exists().where(ContentTag.content_id == Content.id, ContentTag.tag == filters.tag.strip().lower())
        )
    if filters.q is not None:
        pattern = f"%{escape_like(filters.q)}%"
        conditions.append(or_(Content.title.ilike(pattern, escape="\\"), Content.body.ilike(pattern, escape="\\")))

    stmt = (
        select(Content)
        .options(defer(Content.body))
        .where(*conditions)
        .order_by(Content.created_at.desc(), Content.id.desc())
        .limit(limit + 1)
    )
    if cursor is not None:
        created, ident = decode_cursor(cursor)
        stmt = stmt.where(or_(Content.created_at < created, and_(Content.created_at == created, Content.id < ident)))
    if offset:
        stmt = stmt.offset(offset)

    async with services.db.session() as session:
        total = await session.scalar(select(func.count()).select_from(Content).where(*conditions))
        rows = list((await session.scalars(stmt)).all())
    has_more = len(rows) > limit
    rows = rows[:limit]
    return ContentListing(
        items=[ContentSummary(**summary_fields(c)) for c in rows],
        total=total or 0,
        next_cursor=encode_cursor(rows[-1]) if has_more and rows else None,
    )


@dataclass
class ContentDetail:
    content: ContentOut
    assets: list[Asset]
    history: list[ContentTransition]


async def get_detail(services, content_id: uuid.UUID) -> ContentDetail:  # noqa: ANN001
    async with services.db.session() as session:
        content = await load_content(session, content_id)
        assets = (await session.scalars(select(Asset).where(Asset.content_id == content_id).order_by(Asset.created_at))).all()
        history = (
            await session.scalars(
                select(ContentTransition).where(ContentTransition.content_id == content_id).order_by(ContentTransition.id)
            )
        ).all()
        return ContentDetail(content_out(content), list(assets), list(history))


class VersionConflict(ApiError):
    """The item changed since the version the caller edited (412, ETag = the current version)."""

    def __init__(self, current: int, expected: int) -> None:
        super().__init__(
            412,
            f"version conflict: content is at version {current}, request expected {expected}",
            {"ETag": f'"{current}"'},
        )
        self.current = current


async def update_content(
    services,  # noqa: ANN001
    content_id: uuid.UUID,
    changes: ContentUpdate,
    expected_version: int,
    actor: Actor,
) -> ContentOut:
    """Change fields and/or status of the version ``expected_version``; 404, 412, 403 or 409 otherwise."""
    now = utcnow()
    values: dict[str, object] = {"version": Content.version + 1, "updated_at": now}
    for name in ("title", "body"):
        if name in changes.model_fields_set:
            values[name] = getattr(changes, name)
    if changes.content_type is not None:
        values["content_type"] = changes.content_type.value
    text_changed = bool(values.keys() - {"version", "updated_at"}) or changes.tags is not None
    if text_changed and actor.is_person:
        require(actor, Action.EDIT)  # a status change alone is checked by check_transition

    async with services.db.transaction() as session:
        current_row = (
            await session.execute(
                select(Content.status, Content.version).where(Content.id == content_id).with_for_update()
            )
        ).first()
        if current_row is None:
            raise ApiError(404, NOT_FOUND)
        current, version = ContentStatus(current_row[0]), current_row[1]
        if version != expected_version:
            raise VersionConflict(version, expected_version)
        target = changes.status
        # An approval covers the text that was reviewed: editing it withdraws the approval.
        effective = DRAFT if text_changed and current == APPROVED else current
        note = "approval withdrawn: edited after approval" if effective != current else None
        if target is None and effective != current:
            target = DRAFT
        check = TransitionCheck()
        if target is not None and target != effective:
            submitted = await _submitted_by(session, content_id) if target == APPROVED else None
            check = check_transition(effective, target, actor, services.settings.require_review, submitted)
        if target is not None:
            values["status"] = target.value
            values["published_at"] = func.coalesce(Content.published_at, now) if target == PUBLISHED else None
        result = await session.execute(
            update(Content)
            .where(Content.id == content_id, Content.version == expected_version)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 0:  # changed between the read and the write (SQLite has no row lock)
            latest = await session.scalar(select(Content.version).where(Content.id == content_id))
            raise VersionConflict(latest or version, expected_version)
        if changes.tags is not None:
            await session.execute(delete(ContentTag).where(ContentTag.content_id == content_id))
            if changes.tags:
                await session.execute(
                    insert(ContentTag),
                    [{"content_id": content_id, "tag": t, "position": i} for i, t in enumerate(changes.tags)],
                )
        if target is not None and target != current:
            await _record_transition(session, content_id, current, target, actor, check, note)
        elif text_changed:
            await audit.record(session, actor, "content.edit", "content", content_id, version=expected_version + 1)
        content = await session.get(Content, content_id, populate_existing=True)
        assert content is not None
        out = content_out(content)
    await invalidate_content(services, content_id)
    return out


async def transition(services, content_id: uuid.UUID, target: ContentStatus, actor: Actor) -> ContentOut:  # noqa: ANN001
    """Move content to ``target`` (the dashboard's submit/approve/publish/archive buttons)."""
    async with services.db.session() as session:
        version = await session.scalar(select(Content.version).where(Content.id == content_id))
    if version is None:
        raise ApiError(404, NOT_FOUND)
    return await update_content(services, content_id, ContentUpdate(status=target), version, actor)


async def delete_content(services, content_id: uuid.UUID, actor: Actor) -> list[tuple[str, str]]:  # noqa: ANN001
    """Delete content; returns the (bucket, key) of its assets for the caller to remove from storage."""
    if actor.is_person:
        require(actor, Action.PUBLISH)
    try:
        async with services.db.transaction() as session:
            assets = (await session.execute(select(Asset.bucket, Asset.key).where(Asset.content_id == content_id))).all()
            result = await session.execute(delete(Content).where(Content.id == content_id))
            if result.rowcount == 0:
                raise ApiError(404, NOT_FOUND)
            await audit.record(session, actor, "content.delete", "content", content_id)
    except IntegrityError:
        raise ApiError(409, "content is part of a newsletter and cannot be deleted") from None
    await invalidate_content(services, content_id)
    return [(bucket, key) for bucket, key in assets]


async def awaiting_review(services, limit: int = 10) -> tuple[list[ContentSummary], int]:  # noqa: ANN001
    listing = await list_content(services, ContentFilter(status=IN_REVIEW), limit=limit)
    return listing.items, listing.total
