"""Error responses: always ``{"detail": "<precise message>"}`` (validation errors add ``errors``).

The same model is documented in the OpenAPI document for every status an
operation can answer with (:func:`error_responses`), so generated clients and
the engine agree on the shape of every error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger("app.errors")

# Seconds a client should wait before retrying while a backing service is unavailable.
UNAVAILABLE_RETRY_AFTER = 2


class ApiError(Exception):
    def __init__(self, status_code: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers or {})


class FieldError(BaseModel):
    field: str = Field(description="The offending field, e.g. `tags[3]` or `If-Match`.")
    message: str


class ErrorOut(BaseModel):
    """The one error body of the engine."""

    detail: str = Field(description="What was wrong and how to fix it, e.g. `title: String should have at most 200 characters`.")
    errors: list[FieldError] | None = Field(default=None, description="One entry per invalid field (422 only).")


_STATUS_TEXT: dict[int, str] = {
    400: "Malformed request body.",
    401: "Missing or invalid X-API-Key.",
    403: "Forbidden (e.g. robots.txt disallows the URL).",
    404: "Not found.",
    405: "Method not allowed on this path; `Allow` lists the methods it supports.",
    409: "Conflicts with the current state of the resource.",
    410: "Gone (expired).",
    412: "If-Match does not name the current version; `ETag` carries the current one.",
    413: "Request body too large.",
    415: "Unsupported media type.",
    422: "Invalid request: `detail` names every offending field, `errors` lists them one by one.",
    428: "A precondition header (If-Match) is required.",
    429: "Rate limit exceeded; retry after `Retry-After` seconds.",
    502: "An upstream service (generation provider, mail server, scraped site) failed.",
    503: "A backing service (database, object storage) is unavailable; retry after `Retry-After` seconds.",
    504: "An upstream service timed out.",
}

_RETRY_AFTER = {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}}
_STATUS_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Always `ApiKey`.", "schema": {"type": "string"}}},
    405: {"Allow": {"description": "The methods this path supports.", "required": True, "schema": {"type": "string"}}},
    412: {"ETag": {"description": "The current version.", "schema": {"type": "string"}}},
    429: {"Retry-After": {**_RETRY_AFTER, "required": True}},
    503: {"Retry-After": {**_RETRY_AFTER, "required": True}},
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses an operation can return (model: :class:`ErrorOut`).

    ``descriptions`` overrides the generic text per status: ``error_responses(404, s404="Unknown id.")``.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorOut, "description": descriptions.get(f"s{code}", _STATUS_TEXT[code])}
        if code in _STATUS_HEADERS:
            entry["headers"] = _STATUS_HEADERS[code]
        responses[code] = entry
    return responses


# Pattern messages: a constraint is enforced by its JSON-schema pattern (so the
# OpenAPI document carries it exactly) and explained by this text.
PATTERN_MESSAGES: dict[str, str] = {}


def field_name(loc: Sequence[Any]) -> str:
    """('body', 'tags', 3) -> 'tags[3]'; ('query', 'limit') -> 'limit'."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "body"


def _message(err: Mapping[str, Any]) -> str:
    if err.get("type") == "missing":
        return "field required"
    if err.get("type") == "string_pattern_mismatch":
        pattern = (err.get("ctx") or {}).get("pattern")
        if pattern in PATTERN_MESSAGES:
            return PATTERN_MESSAGES[pattern]
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(f"{field_name(err.get('loc', ()))}: {_message(err)}" for err in errors)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this request's path (for ``Allow`` on 405).

    Asked of each route for each method, because one path can be served by
    several routes (the hot GET is registered apart from PATCH and DELETE).
    """
    routes = request.app.routes
    return [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    ]


def is_database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (not a bad statement)."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def unavailable_headers() -> dict[str, str]:
    return {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}


def unavailable(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers=unavailable_headers())


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": field_name(e.get("loc", ())), "message": _message(e)} for e in exc.errors()]
        return JSONResponse(
            {"detail": validation_message(exc.errors()), "errors": errors}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeoutError)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        if is_database_unavailable(exc):
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
            return unavailable("database unavailable; retry shortly")
        log.exception("database error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)
