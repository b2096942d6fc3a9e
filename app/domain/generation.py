"""Generation: a topic, tone and length become a draft (cached per identical request)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from app.domain import content as workflow
from app.domain.actors import Actor
from app.domain.permissions import Action, require
from app.errors import ApiError
from app.metrics import AI_COST, GENERATION_DURATION, GENERATIONS, QUALITY_SCORE
from app.models import Content, ContentTag, utcnow
from app.providers import GenerationRequest, ProviderError, ProviderTimeout, quality_score
from app.schemas import GenerateRequest


@dataclass
class Generated:
    body: bytes  # the new draft as the API returns it (ContentOut JSON)
    content_id: uuid.UUID
    cached: bool
    provider: str


async def generate(services, payload: GenerateRequest, actor: Actor) -> Generated:  # noqa: ANN001
    if actor.is_person:
        require(actor, Action.EDIT)
    provider = services.provider
    fingerprint = hashlib.sha256(
        json.dumps(
            [provider.name, provider.model, payload.topic.lower(), payload.content_type.value, payload.tone, payload.length]
        ).encode()
    ).hexdigest()
    key = services.cache_key("ai-processor", "generate", fingerprint)

    cached = await services.kv.get(key)
    if cached is not None:
        document = json.loads(cached)
        content_id = uuid.UUID(document["id"])
        async with services.db.session() as session:
            still_there = await session.scalar(select(Content.id).where(Content.id == content_id))
        if still_there is not None:
            return Generated(cached, content_id, True, (document.get("generation") or {}).get("provider", provider.name))

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
    await workflow.add_generated(services, content, actor)

    GENERATIONS.labels(result.provider, request.content_type, "success").inc()
    QUALITY_SCORE.labels(request.content_type).set(score)
    AI_COST.labels(result.provider, result.model).inc(result.cost_usd)

    body = workflow.content_out(content).model_dump_json().encode()
    await services.kv.set(key, body, services.settings.generation_cache_ttl)
    return Generated(body, content.id, False, result.provider)
