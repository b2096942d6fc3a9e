"""Content assets: allowed types (checked against the file's first bytes), size, storage, row."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import timedelta

import anyio
from sqlalchemy.exc import IntegrityError

from app.domain import audit
from app.domain.actors import Actor
from app.domain.content import NOT_FOUND, load_content
from app.errors import ApiError, unavailable_headers
from app.models import Asset, utcnow
from app.schemas import AssetOut
from app.storage import StorageError

# Allowed asset types and the leading bytes their files must start with.
ALLOWED_ASSET_TYPES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
    "video/mp4": (),
    "text/plain": (),
    "text/markdown": (),
}


def safe_filename(name: str | None) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:100]
    return cleaned or "file"


def matches_type(content_type: str, data: bytes) -> bool:
    if content_type == "image/webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    if content_type == "video/mp4":
        return data[4:8] == b"ftyp"
    if content_type.startswith("text/"):
        try:
            data[:4096].decode("utf-8")
        except UnicodeDecodeError as exc:
            return exc.start > 4090  # a multi-byte character cut at the probe boundary
        return True
    return any(data.startswith(magic) for magic in ALLOWED_ASSET_TYPES[content_type])


async def check_upload(services, content_id: uuid.UUID, content_type: str) -> None:  # noqa: ANN001
    """Before the body is read: the content exists (404) and the declared type is allowed (415)."""
    async with services.db.session() as session:
        await load_content(session, content_id)
    if content_type not in ALLOWED_ASSET_TYPES:
        raise ApiError(
            415,
            f"file: content type {content_type or 'unknown'!r} is not allowed; allowed: "
            + ", ".join(sorted(ALLOWED_ASSET_TYPES)),
        )


async def store(  # noqa: PLR0913
    services, content_id: uuid.UUID, filename: str | None, content_type: str, data: bytes, base_url: str, actor: Actor  # noqa: ANN001
) -> AssetOut:
    """Check size and bytes, put the object, then its row (so no row points at a missing object)."""
    settings = services.settings
    if len(data) > settings.max_asset_bytes:
        raise ApiError(413, f"file: larger than the {settings.max_asset_bytes}-byte limit")
    if not data:
        raise ApiError(422, "file: must not be empty")
    if not matches_type(content_type, data):
        raise ApiError(415, f"file: content does not match the declared type {content_type}")

    asset_id = uuid.uuid4()
    filename = safe_filename(filename)
    bucket = settings.s3_bucket_assets
    key = f"content/{content_id}/{asset_id}/{filename}"
    try:
        await anyio.to_thread.run_sync(services.storage.put, bucket, key, data, content_type)
    except StorageError as exc:
        raise ApiError(503, f"object storage unavailable: {exc}", unavailable_headers()) from None

    asset = Asset(
        id=asset_id,
        content_id=content_id,
        bucket=bucket,
        key=key,
        filename=filename,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=utcnow(),
    )
    try:
        async with services.db.transaction() as session:
            session.add(asset)
            await session.flush()
            await audit.record(session, actor, "asset.upload", "content", content_id, asset=str(asset_id), filename=filename)
    except IntegrityError:
        await anyio.to_thread.run_sync(services.storage.delete, bucket, key)
        raise ApiError(404, NOT_FOUND) from None
    except BaseException:
        await anyio.to_thread.run_sync(services.storage.delete, bucket, key)
        raise

    expires = settings.presign_expiry_seconds
    url = services.storage.presigned_url(bucket, key, expires, base_url)
    out = AssetOut(
        id=asset.id,
        content_id=content_id,
        filename=filename,
        content_type=content_type,
        size=asset.size,
        sha256=asset.sha256,
        url=url,
        url_expires_at=utcnow() + timedelta(seconds=expires),
    )
    return out
