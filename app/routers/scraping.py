"""Scraping (web-scraper role): POST /api/v1/scrape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.deps import Caller, get_services, rate_limit, require_api_key
from app.domain import scraping
from app.errors import error_responses
from app.routers.content import JSON, api_actor
from app.schemas import ScrapeOut, ScrapeRequest
from app.services import Services

router = APIRouter(prefix="/api/v1", tags=["scraping"], dependencies=[Depends(rate_limit)])


@router.post(
    "/scrape",
    status_code=201,
    response_model=ScrapeOut,
    responses=error_responses(400, 401, 403, 413, 422, 429, 502, 503, 504),
)
async def scrape(
    payload: ScrapeRequest,
    request: Request,
    caller: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    row = await scraping.scrape(services, str(payload.url), api_actor(request, caller))
    out = ScrapeOut(id=row.id, url=row.url, title=row.title, excerpt=row.excerpt, fetched_at=row.fetched_at)
    return Response(out.model_dump_json().encode(), status_code=201, media_type=JSON)
