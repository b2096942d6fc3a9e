"""Scraping: fetch a page (robots.txt, allow-list, size and time limits in app.scraper), keep a summary."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from app.domain import audit
from app.domain.actors import Actor
from app.domain.permissions import Action, require
from app.models import ScrapedPage, utcnow
from app.scraper import fetch_page


async def scrape(services, url: str, actor: Actor) -> ScrapedPage:  # noqa: ANN001
    if actor.is_person:
        require(actor, Action.EDIT)
    page = await fetch_page(services, url)
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
        if actor.is_person:
            await audit.record(session, actor, "scrape.run", "scraped_page", row.id, url=page.url)
    return row


@dataclass
class Source:
    host: str
    pages: int
    last_fetched: datetime


async def sources(services) -> list[Source]:  # noqa: ANN001
    """Every host scraped so far, with how often and when last."""
    async with services.db.session() as session:
        rows = (
            await session.execute(
                select(ScrapedPage.host, func.count(), func.max(ScrapedPage.fetched_at))
                .group_by(ScrapedPage.host)
                .order_by(func.max(ScrapedPage.fetched_at).desc())
            )
        ).all()
    return [Source(host, count, last) for host, count, last in rows]


async def recent(services, limit: int = 20) -> list[ScrapedPage]:  # noqa: ANN001
    async with services.db.session() as session:
        return list((await session.scalars(select(ScrapedPage).order_by(ScrapedPage.fetched_at.desc()).limit(limit))).all())
