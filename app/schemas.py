"""Request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import email_validator
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from app.errors import PATTERN_MESSAGES


class ContentType(StrEnum):
    ARTICLE = "article"
    NEWSLETTER = "newsletter"
    INSTAGRAM_POST = "instagram_post"
    GUIDE = "guide"


class ContentStatus(StrEnum):
    """The editorial workflow: draft -> in_review -> approved -> published; archived from any."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class NewContentStatus(StrEnum):
    """What a new item may start as (published only while REQUIRE_REVIEW is off)."""

    DRAFT = "draft"
    PUBLISHED = "published"


# Text constraints are JSON-schema patterns, so the OpenAPI document carries
# exactly what the engine enforces (and the same pattern runs in every regex
# engine involved: pydantic's, the fuzzer's, a client's). The characters are
# spelt out because `\\s` differs between those engines.
CONTROL = "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029"  # C0, DEL, C1, line/paragraph separators
SPACE = " \\u00a0\\u1680\\u2000-\\u200a\\u202f\\u205f\\u3000"  # what str.strip() removes, less controls
# One line with at least one visible character (leading/trailing spaces are stripped afterwards).
ONE_LINE = f"^[^{CONTROL}]*[^{CONTROL}{SPACE}][^{CONTROL}]*$"
# One line with at least three characters between the first and last visible one (inclusive).
ONE_LINE_3 = f"^[{SPACE}]*[^{CONTROL}{SPACE}][^{CONTROL}]+[^{CONTROL}{SPACE}][{SPACE}]*$"
# Free text without NUL (PostgreSQL cannot store NUL). Kept to one character class:
# schemathesis cannot generate a 100 000-character bound combined with a richer pattern.
MULTILINE = "^[^\\u0000]*$"
# A search term: any characters but control characters.
NO_CONTROL = f"^[^{CONTROL}]*$"
TOKEN = "^[A-Za-z0-9_-]+$"

PATTERN_MESSAGES.update({
    ONE_LINE: "must be one line (no line breaks or control characters) with a visible character",
    ONE_LINE_3: "must be one line (no line breaks or control characters) with at least 3 characters besides surrounding spaces",
    MULTILINE: "must not contain the NUL character",
    NO_CONTROL: "must not contain control characters",
    TOKEN: "must contain only letters, digits, '-' and '_'",
})


def _lower(value: str) -> str:
    # Lower-case without changing the length (\u0130 lower-cases to two characters),
    # so a value within maxLength stays within it.
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in value)


def _strip(value: str) -> str:
    return value.strip()


def line(max_length: int, pattern: str = ONE_LINE, min_length: int = 1) -> type[str]:
    """A one-line string: ``pattern`` and the lengths apply to the text as sent, then it is stripped."""
    return Annotated[  # type: ignore[return-value]
        str, StringConstraints(min_length=min_length, max_length=max_length, pattern=pattern), AfterValidator(_strip)
    ]


Title = line(200)
Body = Annotated[str, StringConstraints(min_length=1, max_length=100_000, pattern=MULTILINE)]
Tag = Annotated[line(50), AfterValidator(_lower)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _dedupe(tags: list[str] | None) -> list[str] | None:
    return None if tags is None else list(dict.fromkeys(tags))


class ContentCreate(Input):
    title: Title
    body: Body
    content_type: ContentType
    tags: Annotated[list[Tag], Field(max_length=20)] = []
    status: NewContentStatus = NewContentStatus.DRAFT

    _tags = field_validator("tags")(_dedupe)


def _no_null_defaults(schema: dict[str, Any]) -> None:
    # A property left out means "unchanged"/"none": null is not a value it can take, so none is advertised.
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


def _changes(schema: dict[str, Any]) -> None:
    _no_null_defaults(schema)
    schema["minProperties"] = 1


class ContentUpdate(Input):
    """The fields to change (at least one); the version to change comes in the If-Match header."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_changes)

    # Absent means "unchanged"; null is not a value of any of them.
    title: Title = None  # type: ignore[assignment]
    body: Body = None  # type: ignore[assignment]
    content_type: ContentType = None  # type: ignore[assignment]
    tags: Annotated[list[Tag], Field(max_length=20)] = None  # type: ignore[assignment]
    status: ContentStatus = None  # type: ignore[assignment]

    _tags = field_validator("tags")(_dedupe)

    @model_validator(mode="after")
    def _something_to_change(self) -> ContentUpdate:
        if not self.model_fields_set:
            raise ValueError("at least one of title, body, content_type, tags, status is required")
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
    topic: line(300, ONE_LINE_3, min_length=3)
    content_type: ContentType
    tone: Annotated[line(40), AfterValidator(_lower)] = "friendly"
    length: Literal["short", "medium", "long"] = "medium"


class ScrapeRequest(Input):
    url: Annotated[AnyHttpUrl, Field(max_length=2048)]


class ScrapeOut(BaseModel):
    id: uuid.UUID
    url: str
    title: str | None
    excerpt: str | None
    fetched_at: datetime


PreferenceKey = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=ONE_LINE)]
PreferenceValue = (
    Annotated[str, StringConstraints(max_length=100, pattern=NO_CONTROL)]
    | Annotated[list[Annotated[str, StringConstraints(max_length=40, pattern=NO_CONTROL)]], Field(max_length=5)]
    | StrictBool
    | Annotated[StrictInt, Field(ge=-(2**53), le=2**53)]
    | Annotated[StrictFloat, Field(allow_inf_nan=False)]
    | None
)
MAX_PREFERENCES = 10
# Pydantic would describe the key pattern as patternProperties (which lets other keys
# through); the engine refuses such keys, so the document says propertyNames.
PREFERENCES_SCHEMA = {
    "type": "object",
    "maxProperties": MAX_PREFERENCES,
    "propertyNames": TypeAdapter(PreferenceKey).json_schema(),
    "additionalProperties": TypeAdapter(PreferenceValue).json_schema(),
    "default": {},
}


def _email(value: str) -> str:
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"value is not a valid email address: {exc}") from None


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


# Mail is never sent to special-use domains (RFC 6761: .test, .invalid, .localhost, ...);
# the document says so beside `format: email`.
SPECIAL_USE_DOMAIN = "@(.+\\.)?(" + "|".join(_any_case(d) for d in email_validator.SPECIAL_USE_DOMAIN_NAMES) + ")\\.?$"
Email = Annotated[
    str,
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254, "not": {"pattern": SPECIAL_USE_DOMAIN}}),
]


class SubscriberCreate(Input):
    email: Email
    name: line(100) = None  # type: ignore[assignment]
    # Small by construction (at most 10 flat entries), so any schema-valid value can be stored.
    preferences: Annotated[
        dict[PreferenceKey, PreferenceValue], Field(max_length=MAX_PREFERENCES), WithJsonSchema(PREFERENCES_SCHEMA)
    ] = {}

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)


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
    token: Annotated[str, StringConstraints(min_length=16, max_length=128, pattern=TOKEN)]


class NewsletterCreate(Input):
    subject: Title
    content_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=50, json_schema_extra={"uniqueItems": True})]

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
