"""Shared request dependencies: services container, caller identity, auth, rate limits."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from app.errors import ApiError

if TYPE_CHECKING:
    from app.services import Services


def services_of(request: Request) -> Services:
    return request.app.state.services


async def get_services(request: Request) -> Services:
    # async: FastAPI would run a plain `def` dependency in the thread pool.
    return request.app.state.services


@dataclass(frozen=True, slots=True)
class Caller:
    authenticated: bool
    key_provided: bool
    client_id: str


def _check_key(candidate: str, keys: list[str]) -> bool:
    # Compare against every key so timing reveals neither the key nor which one matched.
    supplied = candidate.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(supplied, key.encode())
    return matched


def caller_of(request: Request) -> Caller:
    """Who is calling: an API-key holder or an anonymous client IP (computed once per request)."""
    cached = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    supplied = request.headers.get("x-api-key")
    services = services_of(request)
    if supplied and _check_key(supplied, services.settings.api_key_list):
        digest = hashlib.sha256(supplied.encode()).hexdigest()[:16]
        caller = Caller(True, True, f"key:{digest}")
    else:
        host = request.client.host if request.client else "unknown"
        caller = Caller(False, supplied is not None, f"ip:{host}")
    request.state.caller = caller
    return caller


# Documents the X-API-Key scheme in the OpenAPI document; caller_of reads the header itself.
api_key_header = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", auto_error=False, description="One of the engine's API_KEYS."
)
# For operations where a key is optional (it only widens what is visible): FastAPI
# lists the scheme of `identify`, and this adds the alternative of no key at all.
OPTIONAL_AUTH = {"security": [{}]}


async def identify(request: Request, _: str | None = Security(api_key_header)) -> Caller:
    return caller_of(request)


async def require_api_key(caller: Caller = Depends(identify)) -> Caller:
    if not caller.authenticated:
        detail = "invalid API key" if caller.key_provided else "missing X-API-Key header"
        raise ApiError(401, detail, {"WWW-Authenticate": "ApiKey"})
    return caller


async def enforce_rate_limit(request: Request, setting: str = "rate_limit_per_minute") -> Caller:
    """Count the request against the caller's limit for this route; 429 when exceeded."""
    services = services_of(request)
    caller = caller_of(request)
    limit: int = getattr(services.settings, setting)
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    result = await services.limiter.hit(f"{request.method}:{path}:{caller.client_id}", limit)
    if not result.allowed:
        raise ApiError(
            429,
            f"rate limit exceeded: {limit} requests per minute; retry in {result.retry_after}s",
            {"Retry-After": str(result.retry_after)},
        )
    return caller


class RateLimit:
    """Dependency form of :func:`enforce_rate_limit` (per client and route)."""

    def __init__(self, setting: str = "rate_limit_per_minute") -> None:
        self.setting = setting

    async def __call__(self, request: Request) -> Caller:
        return await enforce_rate_limit(request, self.setting)


rate_limit = RateLimit()

_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(route: object) -> frozenset[str]:
    names = _QUERY_NAMES.get(id(route))
    if names is None:
        found: set[str] = set()
        pending = [getattr(route, "dependant", None)]
        while pending:
            dependant = pending.pop()
            if dependant is not None:
                found |= {param.alias for param in dependant.query_params}
                pending.extend(dependant.dependencies)
        names = _QUERY_NAMES[id(route)] = frozenset(found)
    return names


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the operation does not define is a mistake (a typo, an old name): 422."""
    if not request.scope.get("query_string"):
        return
    known = _query_names(request.scope.get("route"))
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        raise ApiError(422, "; ".join(f"{name or '(empty name)'}: unknown query parameter" for name in unknown))
