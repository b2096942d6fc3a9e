"""Request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)


class ContentType(StrEnum):
    ARTICLE = "article"
    NEWSLETTER = "newsletter"
    INSTAGRAM_POST = "instagram_post"
    GUIDE = "guide"


class ContentStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


def _single_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must not contain line breaks")
    return value


Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_single_line)
]
Body = Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _dedupe(tags: list[str] | None) -> list[str] | None:
    return None if tags is None else list(dict.fromkeys(tags))


class ContentCreate(Input):
    title: Title
    body: Body
    content_type: ContentType
    tags: Annotated[list[Tag], Field(max_length=20)] = []
    status: ContentStatus = ContentStatus.DRAFT

    _tags = field_validator("tags")(_dedupe)

    @field_validator("body")
    @classmethod
    def _body_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class ContentUpdate(Input):
    title: Title | None = None
    body: Body | None = None
    content_type: ContentType | None = None
    tags: Annotated[list[Tag], Field(max_length=20)] | None = None
    status: ContentStatus | None = None
    version: int | None = Field(default=None, ge=1, description="Alternative to the If-Match header.")

    _tags = field_validator("tags")(_dedupe)

    @model_validator(mode="after")
    def _something_to_change(self) -> ContentUpdate:
        if not self.model_fields_set - {"version"}:
            raise ValueError("at least one of title, body, content_type, tags, status is required")
        for name in ("title", "body", "content_type", "status", "tags"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class ContentSummary(BaseModel):
    id: uuid.UUID
    title: str
    content_type: ContentType
    status: ContentStatus
    tags: list[str]
    version: int
    quality_score: float | None = None
    generation: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = None


class ContentOut(ContentSummary):
    body: str


class ContentPage(BaseModel):
    items: list[ContentSummary]
    total: int
    limit: int
    offset: int | None
    next_cursor: str | None


class AssetOut(BaseModel):
    id: uuid.UUID
    content_id: uuid.UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    url: str
    url_expires_at: datetime


class GenerateRequest(Input):
    topic: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=300)]
    content_type: ContentType
    tone: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=40)] = "friendly"
    length: Literal["short", "medium", "long"] = "medium"


class ScrapeRequest(Input):
    url: Annotated[AnyHttpUrl, Field(max_length=2048)]


class ScrapeOut(BaseModel):
    id: uuid.UUID
    url: str
    title: str | None
    excerpt: str | None
    fetched_at: datetime


class SubscriberCreate(Input):
    email: EmailStr
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = None
    preferences: Annotated[dict[str, Any], Field(max_length=20)] = {}

    @field_validator("preferences")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(repr(value)) > 4000:
            raise ValueError("must be at most 4000 characters when serialised")
        return value


class SubscriberOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str | None
    preferences: dict[str, Any]
    status: Literal["pending", "confirmed", "unsubscribed"]
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


class SubscriberPage(BaseModel):
    items: list[SubscriberOut]
    total: int
    limit: int
    offset: int


class TokenRequest(Input):
    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=16, max_length=128)]


class NewsletterCreate(Input):
    subject: Title
    content_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=50)]

    @field_validator("content_ids")
    @classmethod
    def _unique(cls, value: list[uuid.UUID]) -> list[uuid.UUID]:
        if len(set(value)) != len(value):
            raise ValueError("must not contain duplicates")
        return value


class DeliveryCounts(BaseModel):
    total: int = 0
    pending: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0


class NewsletterOut(BaseModel):
    id: uuid.UUID
    subject: str
    content_ids: list[uuid.UUID]
    status: Literal["draft", "sending", "sent", "failed"]
    created_at: datetime
    send_requested_at: datetime | None
    deliveries: DeliveryCounts


class SendAccepted(BaseModel):
    id: uuid.UUID
    status: Literal["sending"]
    queued: int
