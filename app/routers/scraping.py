"""Scraping (web-scraper role): POST /api/v1/scrape."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from app.deps import Caller, get_services, rate_limit, require_api_key
from app.errors import error_responses
from app.models import ScrapedPage, utcnow
from app.routers.content import JSON
from app.schemas import ScrapeOut, ScrapeRequest
from app.scraper import fetch_page
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
    _: Annotated[Caller, Depends(require_api_key)],
    services: Annotated[Services, Depends(get_services)],
) -> Response:
    page = await fetch_page(services, str(payload.url))
    row = ScrapedPage(
        id=uuid.uuid4(),
        url=page.url,
        final_url=page.final_url,
        host=page.host,
        status_code=page.status_code,
        title=page.title,
        excerpt=page.excerpt,
        content_sha256=hashlib.sha256(page.body).hexdigest(),
        fetched_at=utcnow(),
    )
    async with services.db.transaction() as session:
        session.add(row)
    out = ScrapeOut(id=row.id, url=row.url, title=row.title, excerpt=row.excerpt, fetched_at=row.fetched_at)
    return Response(out.model_dump_json().encode(), status_code=201, media_type=JSON)
