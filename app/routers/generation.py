"""Generation (ai-processor role): POST /api/v1/generate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.deps import Caller, RateLimit, get_services, require_api_key
from app.domain import generation
from app.errors import error_responses
from app.routers.content import JSON, api_actor
from app.schemas import ContentOut, GenerateRequest
from app.services import Services

router = APIRouter(prefix="/api/v1", tags=["generation"])


@router.post(
    "/generate",
    status_code=201,
    response_model=ContentOut,
    dependencies=[Depends(RateLimit("generate_rate_limit_per_minute"))],
    responses={
        200: {"description": "Identical request answered from cache (X-Cache: HIT).", "model": ContentOut},
        **error_responses(400, 401, 413, 422, 429, 502, 503, 504),
    },
)
async def generate(
    payload: GenerateRequest,
    request: Request,
    caller: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    generated = await generation.generate(services, payload, api_actor(request, caller))
    if generated.cached:
        return Response(generated.body, status_code=200, media_type=JSON, headers={"X-Cache": "HIT"})
    return Response(
        generated.body,
        status_code=201,
        media_type=JSON,
        headers={"X-Cache": "MISS", "Location": f"/api/v1/content/{generated.content_id}"},
    )
