"""The distributor's worker: publishes due Instagram distributions, one row at a time.

Every replica runs one. A row is claimed with a lease (PostgreSQL: SELECT ... FOR
UPDATE SKIP LOCKED, then a conditional UPDATE; SQLite: the conditional UPDATE
alone, its writes being serialised), so two replicas never work the same row; a
replica that dies mid-publish leaves a row whose lease runs out, and the next
claim resumes it. Every write after the claim is fenced by the lease owner.

Never publishing twice: the container id is committed before ``media_publish``
is sent; an attempt that finds a container id asks the Graph API for its
status first and, when it is PUBLISHED, records the post instead of publishing
again. ``media_publish`` itself is never retried after a timeout within an
attempt (nobody knows whether it acted).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from app.instagram import GraphClient, GraphError, PublishingLimit
from app.metrics import INSTAGRAM_PUBLISH
from app.models import Distribution, utcnow
from app.services import Services

log = logging.getLogger("app.distributor.instagram")

WINDOW = timedelta(hours=24)  # the publishing limit's rolling window
LIMIT_FALLBACK_WAIT = timedelta(hours=1)  # when none of the window's posts are ours
MAX_BACKOFF_SECONDS = 3600


class LeaseLost(Exception):
    """Another worker took the row over (this one's lease ran out): stop touching it."""


class DistributionWorker:
    def __init__(self, services: Services, graph: GraphClient | None = None) -> None:
        self.services = services
        self.settings = services.settings
        self.graph = graph or GraphClient(self.settings)
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        s = self.settings
        # Long enough for one whole attempt: a container's wait plus every call's timeout and retries.
        self.lease = timedelta(seconds=s.instagram_container_wait_seconds + 12 * s.instagram_timeout_seconds + 60)

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                try:
                    while await self.run_once():
                        pass
                except Exception:  # noqa: BLE001 - the loop must outlive a database outage
                    log.exception("distribution worker: claiming failed; retrying in %ss",
                                  self.settings.instagram_worker_interval_seconds)
                await asyncio.sleep(self.settings.instagram_worker_interval_seconds)
        finally:
            await self.graph.close()

    async def run_once(self) -> bool:
        """Claim and work one due distribution; False when none is due."""
        row = await self.claim()
        if row is None:
            return False
        try:
            await self.process(row)
        except LeaseLost:
            log.warning("distribution %s: lease lost to another worker; leaving it to that worker", row.id)
        return True

    def _due(self, now: datetime) -> Any:
        return or_(
            and_(Distribution.state == "queued", Distribution.next_attempt_at <= now),
            and_(Distribution.state == "publishing", Distribution.lease_expires_at < now),
        )

    async def claim(self) -> Distribution | None:
        now = utcnow()
        async with self.services.db.transaction() as session:
            query = select(Distribution.id).where(self._due(now)).order_by(Distribution.next_attempt_at).limit(1)
            if session.bind.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row_id = await session.scalar(query)
            if row_id is None:
                return None
            claimed = await session.execute(
                update(Distribution)
                .where(Distribution.id == row_id, self._due(now))
                .values(state="publishing", lease_owner=self.owner, lease_expires_at=now + self.lease, updated_at=now)
            )
            if claimed.rowcount != 1:
                return None
            return await session.get(Distribution, row_id, populate_existing=True)

    async def _save(self, row: Distribution, **values: Any) -> None:
        values["updated_at"] = utcnow()
        async with self.services.db.transaction() as session:
            result = await session.execute(
                update(Distribution)
                .where(Distribution.id == row.id, Distribution.lease_owner == self.owner)
                .values(**values)
            )
        if result.rowcount != 1:
            raise LeaseLost(str(row.id))
        for name, value in values.items():
            setattr(row, name, value)

    # --- one attempt ----------------------------------------------------------------------

    async def process(self, row: Distribution) -> None:
        try:
            await self.publish(row)
        except GraphError as exc:
            await self.after_error(row, exc)
        except LeaseLost:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. presigning failed: retried like a transient error
            log.exception("distribution %s: unexpected error", row.id)
            await self.after_error(row, GraphError("transient", f"{exc.__class__.__name__}: {exc}"))

    async def publish(self, row: Distribution) -> None:
        graph = self.graph
        container_id = row.container_id
        if container_id:
            # A container exists: an earlier attempt may have published it (a timeout, a crash).
            status = await graph.container_status(container_id)
            if status == "PUBLISHED":
                await self.record_found(row)
                return
            if status == "EXPIRED":
                container_id = None
                await self._save(row, container_id=None)
        limit = await graph.publishing_limit()
        if limit.exhausted:
            await self.defer(row, limit)
            return
        if container_id is None:
            url = self.services.storage.presigned_url(
                row.media_bucket, row.media_key, self.settings.presign_expiry_seconds, self.settings.public_base_url)
            container_id = await graph.create_container(url, row.caption, row.alt_text)
            await self._save(row, container_id=container_id)  # committed before media_publish, always
        status = await graph.wait_until_ready(container_id)
        if status == "PUBLISHED":
            await self.record_found(row)
            return
        if status != "FINISHED":
            if status == "EXPIRED":
                await self._save(row, container_id=None)
            raise GraphError("transient", f"container {container_id} is {status or 'without a status'}, not FINISHED")
        # Renew the lease right before acting: a worker whose lease ran out (a slow attempt) stops
        # here, and no other worker can take the row over while this publish is in flight.
        await self._save(row, lease_expires_at=utcnow() + self.lease)
        media_id = await graph.publish(container_id)
        await self.record_published(row, media_id, await self._permalink(media_id))

    async def _permalink(self, media_id: str) -> str | None:
        try:
            return await self.graph.permalink(media_id)
        except GraphError as exc:  # the post is out: a missing permalink must not make it a failure
            log.warning("media %s published; its permalink could not be read: %s", media_id, exc)
            return None

    async def record_published(self, row: Distribution, media_id: str | None, permalink: str | None,
                               reason: str | None = None) -> None:
        now = utcnow()
        await self._save(row, state="published", media_id=media_id, permalink=permalink, published_at=now,
                         reason=reason, lease_owner=None, lease_expires_at=None)
        INSTAGRAM_PUBLISH.labels("published").inc()
        log.info("distribution %s published to Instagram as media %s (%s)", row.id, media_id, permalink)

    async def record_found(self, row: Distribution) -> None:
        """The container was already published (by an attempt whose answer was lost): find the post."""
        media = next((m for m in await self.graph.recent_media() if m.get("caption") == row.caption), None)
        if media is None:
            await self.record_published(row, None, None, reason=(
                f"container {row.container_id} is PUBLISHED; its post was not among the account's latest 25"))
            return
        await self.record_published(row, str(media.get("id")), media.get("permalink"))

    async def defer(self, row: Distribution, limit: PublishingLimit) -> None:
        """Queue past the publishing limit until the rolling window frees a slot."""
        now = utcnow()
        async with self.services.db.session() as session:
            oldest = await session.scalar(
                select(func.min(Distribution.published_at)).where(
                    Distribution.state == "published", Distribution.published_at > now - WINDOW))
        frees_at = oldest + WINDOW if oldest is not None else now + LIMIT_FALLBACK_WAIT
        frees_at = max(frees_at, now + timedelta(seconds=self.settings.instagram_retry_seconds))
        await self._save(row, state="queued", next_attempt_at=frees_at, lease_owner=None, lease_expires_at=None,
                         reason=(f"waiting for the publishing limit: {limit.used} of {limit.total} posts in the "
                                 f"rolling 24 hours; next try at {frees_at.isoformat(timespec='seconds')}"))
        INSTAGRAM_PUBLISH.labels("deferred").inc()
        log.info("distribution %s deferred to %s: publishing limit %s/%s", row.id, frees_at, limit.used, limit.total)

    async def after_error(self, row: Distribution, exc: GraphError) -> None:
        attempts = row.attempts + 1
        if exc.kind == "permanent" or attempts >= self.settings.instagram_max_attempts:
            reason = str(exc) if exc.kind == "permanent" else f"gave up after {attempts} attempts: {exc}"
            await self._save(row, state="failed", reason=reason[:2000], attempts=attempts,
                             lease_owner=None, lease_expires_at=None)
            INSTAGRAM_PUBLISH.labels("failed").inc()
            log.error("distribution %s failed: %s", row.id, reason)
            return
        delay = min(MAX_BACKOFF_SECONDS, self.settings.instagram_retry_seconds * 4**attempts)
        next_at = utcnow() + timedelta(seconds=delay)
        note = (" (the next attempt checks whether the container was published before publishing again)"
                if exc.kind == "timeout" else "")
        await self._save(row, state="queued", attempts=attempts, next_attempt_at=next_at, lease_owner=None,
                         lease_expires_at=None, reason=f"retrying after: {exc}{note}"[:2000])
        INSTAGRAM_PUBLISH.labels("retried").inc()
        log.warning("distribution %s: attempt %s failed (%s), retrying in %.0fs", row.id, attempts, exc, delay)


def start(services: Services) -> None:
    """Run the worker of a distributor with Instagram configured in the background of `services`
    (stopped with the rest of its background work)."""
    if services.settings.instagram_unconfigured:
        log.info("Instagram publishing off: %s", services.settings.instagram_unconfigured)
        return
    services.spawn(DistributionWorker(services).run(), name="instagram-distribution-worker")
