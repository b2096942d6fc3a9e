"""Generation (ai-processor role): POST /api/v1/generate."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select

from app.deps import Caller, RateLimit, get_services, require_api_key
from app.errors import ApiError, error_responses
from app.metrics import AI_COST, GENERATION_DURATION, GENERATIONS, QUALITY_SCORE
from app.models import Content, ContentTag, utcnow
from app.providers import GenerationRequest, ProviderError, ProviderTimeout, quality_score
from app.routers.content import JSON, content_out
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
    _: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    provider = services.provider
    fingerprint = hashlib.sha256(
        json.dumps(
            [provider.name, provider.model, payload.topic.lower(), payload.content_type.value, payload.tone, payload.length]
        ).encode()
    ).hexdigest()
    key = services.cache_key("ai-processor", "generate", fingerprint)

    cached = await services.kv.get(key)
    if cached is not None:
        content_id = uuid.UUID(json.loads(cached)["id"])
        async with services.db.session() as session:
            still_there = await session.scalar(select(Content.id).where(Content.id == content_id))
        if still_there is not None:
            return Response(cached, status_code=200, media_type=JSON, headers={"X-Cache": "HIT"})

    request = GenerationRequest(payload.topic, payload.content_type.value, payload.tone, payload.length)
    started = time.perf_counter()
    try:
        result = await provider.generate(request)
    except ProviderTimeout as exc:
        GENERATIONS.labels(provider.name, request.content_type, "timeout").inc()
        raise ApiError(504, f"generation provider timed out: {exc}") from None
    except ProviderError as exc:
        GENERATIONS.labels(provider.name, request.content_type, "error").inc()
        raise ApiError(502, f"generation provider failed: {exc}") from None
    finally:
        GENERATION_DURATION.labels(provider.name).observe(time.perf_counter() - started)
    duration_ms = round((time.perf_counter() - started) * 1000, 1)

    score = quality_score(result.title, result.body, request.topic, request.content_type, request.length)
    now = utcnow()
    content = Content(
        id=uuid.uuid4(),
        title=result.title,
        body=result.body,
        content_type=request.content_type,
        status="draft",
        version=1,
        quality_score=score,
        generation={
            "provider": result.provider,
            "model": result.model,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            "tokens": result.input_tokens + result.output_tokens,
            "cost_usd": result.cost_usd,
            "duration_ms": duration_ms,
            "topic": request.topic,
            "tone": request.tone,
            "length": request.length,
        },
        created_at=now,
        updated_at=now,
        tags=[ContentTag(tag="generated", position=0)],
    )
    async with services.db.transaction() as session:
        session.add(content)

    GENERATIONS.labels(result.provider, request.content_type, "success").inc()
    QUALITY_SCORE.labels(request.content_type).set(score)
    AI_COST.labels(result.provider, result.model).inc(result.cost_usd)

    body = content_out(content).model_dump_json().encode()
    await services.kv.set(key, body, services.settings.generation_cache_ttl)
    return Response(
        body,
        status_code=201,
        media_type=JSON,
        headers={"X-Cache": "MISS", "Location": f"/api/v1/content/{content.id}"},
    )
