"""Content (content-manager role): CRUD, listing, assets."""

from __future__ import annotations

import mimetypes
import re
import uuid
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Header, Query, Request, Response, UploadFile
from pydantic import BaseModel

from app.deps import (
    OPTIONAL_AUTH,
    Caller,
    enforce_rate_limit,
    get_services,
    identify,
    rate_limit,
    require_api_key,
    services_of,
)
from app.domain import assets
from app.domain import content as workflow
from app.domain.assets import ALLOWED_ASSET_TYPES
from app.domain.actors import Actor
from app.domain.content import NOT_FOUND, content_cache_key, content_out
from app.errors import ApiError, error_responses
from app.idempotency import run_idempotent
from app.schemas import (
    NO_CONTROL,
    AssetOut,
    ContentCreate,
    ContentOut,
    ContentPage,
    ContentStatus,
    ContentType,
    ContentUpdate,
)
from app.services import Services
from app.storage import LocalStorage, StorageError

router = APIRouter(prefix="/api/v1/content", tags=["content"], dependencies=[Depends(rate_limit)])

# The cached read is the hottest path. It is registered on the app itself (see
# app.main) and calls the rate limiter directly: an included router and
# dependency resolution would make it about twice as expensive.
READ_ROUTE: dict = {
    "path": "/api/v1/content/{content_id}",
    "methods": ["GET"],
    "response_model": ContentOut,
    "tags": ["content"],
    "summary": "Get Content",
    "responses": {
        200: {"headers": {"ETag": {"description": "The version, for If-Match.", "required": True, "schema": {"type": "string"}}}},
        304: {"description": "Not modified: If-None-Match names the current version."},
        **error_responses(404, 422, 429, 503, s404="Not found, or not published and no valid X-API-Key."),
    },
    "openapi_extra": {
        "security": [{"ApiKey": []}, *OPTIONAL_AUTH["security"]],
        "parameters": [{
            "name": "If-None-Match", "in": "header", "required": False,
            "description": "An ETag from an earlier GET: 304 while it is still current.",
            "schema": {"type": "string"},
        }],
    },
}
files_router = APIRouter(prefix="/api/v1/files", tags=["content"], dependencies=[Depends(rate_limit)])

JSON = "application/json"



# --- serialisation and cache (content_out, the cache key and invalidation live in app.domain.content)


def etag_for(version: int | str) -> str:
    return f'"{version}"'


def json_response(model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(model.model_dump_json().encode(), status_code=status_code, media_type=JSON, headers=headers)


def _cache_entry(out: ContentOut, payload: bytes) -> bytes:
    # "<status> <version>\n<json>": lets a cache hit be authorised without parsing the JSON.
    return f"{out.status.value} {out.version}\n".encode() + payload


# An ETag as GET returns it ("3"), optionally weak (W/"3") or bare (3); at most 9 digits.
IF_MATCH = r'^(W/)?"?[0-9]{1,9}"?$'
# created_at in microseconds since the epoch, '-', the id's 32 hex digits: every string
# of this form is a position in the listing, so no well-formed cursor is refused.
CURSOR = r"^[0-9]{1,16}-[0-9a-f]{32}$"


def _parse_if_match(value: str) -> int:
    return int(value.removeprefix("W/").strip('"'))


def api_actor(request: Request, caller: Caller) -> Actor:
    return Actor.api_key(caller.client_id, request.client.host if request.client else None)


# --- endpoints -------------------------------------------------------------------


def location_header(description: str) -> dict[str, dict[str, Any]]:
    """The OpenAPI `headers` entry of a response that points at the resource it created."""
    return {"Location": {"description": description, "required": True, "schema": {"type": "string"}}}


CREATED_HEADERS = {
    **location_header("The new item's URL."),
    "ETag": {"description": "The version, for If-Match.", "required": True, "schema": {"type": "string"}},
}
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Repeating a request with the same key and body replays the first response instead of acting twice.",
    ),
]


@router.post(
    "",
    status_code=201,
    response_model=ContentOut,
    responses={
        201: {"headers": CREATED_HEADERS},
        **error_responses(400, 401, 409, 413, 422, 429, 503,
                          s409="The Idempotency-Key is in use by a request still being processed, or was used with another body; "
                          "or `status` is published while REQUIRE_REVIEW is on (content must be approved in the admin dashboard first)."),
    },
)
async def create_content(
    payload: ContentCreate,
    request: Request,
    caller: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async def create() -> Response:
        out = await workflow.create_content(services, payload, api_actor(request, caller))
        return json_response(out, 201, {"Location": f"/api/v1/content/{out.id}", "ETag": etag_for(1)})

    return await run_idempotent(request, services, caller, await request.body(), create)


@router.get(
    "",
    response_model=ContentPage,
    responses=error_responses(401, 422, 429, 503, s401="status other than published asked for without a valid X-API-Key."),
    openapi_extra=OPTIONAL_AUTH,
)
async def list_content(
    caller: Annotated[Caller, Depends(identify)],
    services: Annotated[Services, Depends(get_services)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000, description="Items to skip (after the cursor, when one is given).")] = 0,
    cursor: Annotated[str | None, Query(pattern=CURSOR, description="next_cursor of the previous page.")] = None,
    content_type: Annotated[ContentType | None, Query(alias="type")] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=50, pattern=NO_CONTROL)] = None,
    status: Annotated[ContentStatus | None, Query()] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_CONTROL)] = None,
) -> Response:
    if not caller.authenticated:
        if status not in (None, ContentStatus.PUBLISHED):
            raise ApiError(401, "an API key is required to list unpublished content", {"WWW-Authenticate": "ApiKey"})
        status = ContentStatus.PUBLISHED

    listing = await workflow.list_content(
        services, workflow.ContentFilter(status=status, content_type=content_type, tag=tag, q=q), limit, offset, cursor
    )
    page = ContentPage(items=listing.items, total=listing.total, limit=limit, offset=offset, next_cursor=listing.next_cursor)
    return Response(page.model_dump_json().encode(), media_type=JSON)


async def get_content(content_id: uuid.UUID, request: Request) -> Response:
    caller = await enforce_rate_limit(request)
    services = services_of(request)
    key = content_cache_key(services, content_id)
    cached = services.local_cache.get(key)
    if cached is None:
        cached = await services.kv.get(key)
        if cached is not None:
            services.local_cache.set(key, cached)
    if cached is not None:
        header, _, payload = cached.partition(b"\n")
        status, version = header.decode().split(" ", 1)
        cache_state = "HIT"
    else:
        async with services.db.session() as session:
            out = content_out(await workflow.load_content(session, content_id))
        payload = out.model_dump_json().encode()
        status, version = out.status.value, str(out.version)
        entry = _cache_entry(out, payload)
        await services.kv.set(key, entry, services.settings.content_cache_ttl)
        services.local_cache.set(key, entry)
        cache_state = "MISS"

    if status != ContentStatus.PUBLISHED.value and not caller.authenticated:
        raise ApiError(404, NOT_FOUND)
    headers = {"ETag": etag_for(version), "X-Cache": cache_state}
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(payload, media_type=JSON, headers=headers)


@router.patch(
    "/{content_id}",
    response_model=ContentOut,
    responses={
        200: {"headers": {"ETag": CREATED_HEADERS["ETag"]}},
        **error_responses(400, 401, 404, 409, 412, 413, 422, 428, 429, 503,
                          s409="The status change is not allowed: while REQUIRE_REVIEW is on, content is published "
                          "only once a person approved it in the admin dashboard, and only a person approves."),
    },
    # Required in the document; answered with 428 (not a generic 422) when absent.
    openapi_extra={"parameters": [{
        "name": "If-Match", "in": "header", "required": True,
        "description": 'The ETag of the version being changed, as GET returned it (e.g. "3").',
        "schema": {"type": "string", "pattern": IF_MATCH},
    }]},
)
async def update_content(
    content_id: uuid.UUID,
    payload: ContentUpdate,
    request: Request,
    caller: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    if_match = request.headers.get("if-match")
    if if_match is None:
        raise ApiError(428, "If-Match header is required; send the ETag from GET")
    if not re.fullmatch(IF_MATCH, if_match):
        raise ApiError(422, 'If-Match: must be an ETag returned by GET, such as "3"')
    expected = _parse_if_match(if_match)
    out = await workflow.update_content(services, content_id, payload, expected, api_actor(request, caller))
    return json_response(out, headers={"ETag": etag_for(out.version)})


@router.delete(
    "/{content_id}",
    status_code=204,
    responses=error_responses(401, 404, 409, 422, 429, 503, s409="The content is part of a newsletter."),
)
async def delete_content(
    content_id: uuid.UUID,
    request: Request,
    caller: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    assets = await workflow.delete_content(services, content_id, api_actor(request, caller))
    for bucket, key in assets:
        try:
            await anyio.to_thread.run_sync(services.storage.delete, bucket, key)
        except StorageError:
            pass  # the row is gone; an orphaned object is harmless and reported by storage tooling
    return Response(status_code=204)


@router.post(
    "/{content_id}/assets",
    status_code=201,
    response_model=AssetOut,
    responses=error_responses(
        400, 401, 404, 413, 415, 422, 429, 503,
        s415="The part's type is not allowed, or the bytes do not start as that type's files do.",
        s503="Object storage or the database is unavailable; nothing was stored.",
    ),
    openapi_extra={"requestBody": {"content": {"multipart/form-data": {"encoding": {
        "file": {"contentType": ", ".join(ALLOWED_ASSET_TYPES)},
    }}}}},
)
async def upload_asset(
    content_id: uuid.UUID,
    request: Request,
    file: Annotated[UploadFile, File(description="The asset (at most MAX_ASSET_BYTES).")],
    caller: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    await assets.check_upload(services, content_id, content_type)
    data = await file.read(services.settings.max_asset_bytes + 1)
    out = await assets.store(services, content_id, file.filename, content_type, data, str(request.base_url),
                             api_actor(request, caller))
    return Response(out.model_dump_json().encode(), status_code=201, media_type=JSON)


@files_router.get("/{bucket}/{key:path}", include_in_schema=False)
async def download_local_file(
    bucket: str,
    key: str,
    services: Annotated[Services, Depends(get_services)],
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=128)],
) -> Response:
    """Serves presigned URLs of the local directory store (the S3 store uses S3's own)."""
    storage = services.storage
    if (
        not isinstance(storage, LocalStorage)
        or bucket not in (services.settings.s3_bucket_assets, services.settings.s3_bucket_instagram)
        or not storage.verify(bucket, key, expires, signature)
    ):
        raise ApiError(403, "invalid or expired signature")
    try:
        data = await anyio.to_thread.run_sync(storage.read, bucket, key)
    except (FileNotFoundError, StorageError):
        raise ApiError(404, "object not found") from None
    media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return Response(data, media_type=media_type)
