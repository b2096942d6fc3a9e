"""The distribution worker's claim on the embedded backend (SQLite): the conditional UPDATE
alone keeps a row to one worker (SQLite serialises writes; there is no SKIP LOCKED)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from app.models import Content, Distribution, utcnow
from engine_support import workers_of_our_own

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


def test_two_workers_never_take_the_same_row_on_sqlite(make_client, backend):
    client = make_client(instagram_access_token="t", instagram_user_id="1",
                         instagram_graph_url="http://127.0.0.1:9/v26.0")
    first, second = workers_of_our_own(client, 2)
    services = client.app.state.services
    now = utcnow()

    async def seed() -> uuid.UUID:
        async with services.db.transaction() as session:
            content = Content(title="t", body="b", content_type="instagram_post", status="published")
            session.add(content)
            await session.flush()
            row = Distribution(content_id=content.id, media_bucket="instagram-media", media_key="k", caption="c",
                               state="queued", attempts=0, publish_at=now, next_attempt_at=now - timedelta(seconds=1))
            session.add(row)
        return row.id

    row_id = client.portal.call(seed)
    assert client.portal.call(first.claim).id == row_id
    assert client.portal.call(second.claim) is None
    assert backend.rows("SELECT state, lease_owner FROM distributions") == [("publishing", first.owner)]
    with backend.engine.begin() as conn:
        conn.execute(text("UPDATE distributions SET lease_expires_at = '2000-01-01 00:00:00'"))
    assert client.portal.call(second.claim).id == row_id
    for worker in (first, second):
        client.portal.call(worker.graph.close)
