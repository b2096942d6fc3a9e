"""``Idempotency-Key`` support for POST endpoints, stored in the key-value store.

A repeated request with the same key and body replays the first response
(``Idempotent-Replayed: true``) instead of acting twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from redis.exceptions import RedisError

from app.deps import Caller
from app.errors import ApiError
from app.services import Services

log = logging.getLogger("app.idempotency")

PROCESSING_TTL = 120
RESULT_TTL = 24 * 3600
_REPLAYED_HEADERS = ("location", "etag")


async def run_idempotent(
    request: Request,
    services: Services,
    caller: Caller,
    body: bytes,
    handler: Callable[[], Awaitable[Response]],
) -> Response:
    supplied = request.headers.get("idempotency-key")
    if supplied is None:
        return await handler()
    if not 1 <= len(supplied) <= 200:
        raise ApiError(422, "Idempotency-Key: must be 1 to 200 characters")

    digest = hashlib.sha256(supplied.encode()).hexdigest()
    key = f"idem:{caller.client_id}:{request.method}:{request.url.path}:{digest}"
    fingerprint = hashlib.sha256(body).hexdigest()
    try:
        acquired = await services.kv.set_nx(
            key, json.dumps({"state": "processing", "fp": fingerprint}).encode(), PROCESSING_TTL
        )
    except (RedisError, OSError) as exc:
        log.warning("idempotency store unavailable, running request without it: %s", exc)
        return await handler()

    if not acquired:
        raw = await services.kv.get(key)
        record = json.loads(raw) if raw else {"state": "processing", "fp": fingerprint}
        if record["fp"] != fingerprint:
            # 409, not 422: the body is valid; it conflicts with what the key is bound to.
            raise ApiError(409, "Idempotency-Key was already used with a different request body")
        if record["state"] == "processing":
            raise ApiError(409, "a request with this Idempotency-Key is still being processed")
        headers = {**record["headers"], "Idempotent-Replayed": "true"}
        return Response(
            base64.b64decode(record["body"]),
            status_code=record["status"],
            media_type=record["media_type"],
            headers=headers,
        )

    try:
        response = await handler()
    except BaseException:
        await services.kv.delete(key)
        raise
    if 200 <= response.status_code < 300:
        record = {
            "state": "done",
            "fp": fingerprint,
            "status": response.status_code,
            "media_type": response.media_type,
            "body": base64.b64encode(bytes(response.body)).decode(),
            "headers": {k: v for k, v in response.headers.items() if k in _REPLAYED_HEADERS},
        }
        await services.kv.set(key, json.dumps(record).encode(), RESULT_TTL)
    else:
        await services.kv.delete(key)
    return response
