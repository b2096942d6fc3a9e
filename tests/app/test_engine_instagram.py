"""Instagram distribution end to end: the API, the distributor's worker, a Graph API stand-in,
real PostgreSQL and Redis, and moto's S3 (the image travels through a presigned URL the
stand-in fetches, as Instagram does)."""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client import REGISTRY
from sqlalchemy import text

from app.distribution_worker import LeaseLost
from engine_support import AUTH, free_port, workers_of_our_own
from test_dashboard import ADMIN, EDITOR, VIEWER, make_accounts, sign_in
from test_dashboard import post as form_post
from graph_standin import (
    NO_PERMISSION, RATE_LIMITED, TOKEN, TOKEN_EXPIRED, TRANSIENT, USER_ID, USER_RATE_LIMITED, GraphStandIn, GraphState,
    start_graph_standin,
)

pytestmark = [pytest.mark.services, pytest.mark.parametrize("backend", ["postgres"], indirect=True)]

BUCKET = "instagram-media"
CLIENT_TIMEOUT = 3.0  # generous: a loaded CI machine must not turn a slow answer into a retry


@pytest.fixture(scope="module")
def graph_server() -> Iterator[GraphStandIn]:
    standin = start_graph_standin()
    yield standin
    standin.server.shutdown()


@pytest.fixture
def graph(graph_server: GraphStandIn) -> GraphState:
    graph_server.state.reset()
    return graph_server.state


@pytest.fixture
def instagram(make_client: Callable[..., TestClient], graph_server: GraphStandIn, s3_endpoint: str,
              graph: GraphState) -> Callable[..., TestClient]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)

    def factory(**overrides: Any) -> TestClient:
        return make_client(**{
            "instagram_access_token": TOKEN,
            "instagram_user_id": USER_ID,
            "instagram_graph_url": graph_server.url,
            "instagram_timeout_seconds": CLIENT_TIMEOUT,
            "instagram_retry_seconds": 0.01,
            "instagram_container_wait_seconds": 2.0,
            "instagram_worker_interval_seconds": 0.05,
            "instagram_max_attempts": 3,
            **overrides,
        })

    return factory


def jpeg(width: int = 1080, height: int = 1350, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 60)).save(buffer, fmt)
    return buffer.getvalue()


def published_content(client: TestClient, body: str = "Moss on driftwood. #aquascape @aquascene",
                      status: str = "published") -> str:
    response = client.post("/api/v1/content", headers=AUTH, json={
        "title": "Moss wall", "body": body, "content_type": "instagram_post", "status": status})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def asset(client: TestClient, content_id: str, data: bytes | None = None, content_type: str = "image/jpeg") -> str:
    data = jpeg() if data is None else data
    response = client.post(f"/api/v1/content/{content_id}/assets", headers=AUTH,
                           files={"file": ("moss.jpg", data, content_type)})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def post(client: TestClient, content_id: str, asset_id: str, **extra: Any) -> Any:
    return client.post("/api/v1/distributions/instagram", headers=AUTH,
                       json={"content_id": content_id, "asset_id": asset_id, **extra})


def wait_for(client: TestClient, distribution_id: str, *states: str, timeout: float = 15.0,
             until: Callable[[dict[str, Any]], bool] = lambda _: True) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/v1/distributions/{distribution_id}", headers=AUTH).json()
        if body["state"] in states and until(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"distribution never reached {states}: {body}")
        time.sleep(0.05)


def row(backend, distribution_id: str) -> Any:  # noqa: ANN001
    (found,) = backend.rows("SELECT * FROM distributions WHERE id = :id", id=uuid.UUID(distribution_id))
    return found


def outcome(name: str) -> float:
    return REGISTRY.get_sample_value("instagram_publish_total", {"outcome": name}) or 0.0


# --- the happy path ----------------------------------------------------------------------------


def test_a_post_is_published_end_to_end(instagram, backend, graph: GraphState, s3_endpoint: str):
    client = instagram()
    content_id = published_content(client)
    image = jpeg()
    asset_id = asset(client, content_id, image)
    before = outcome("published")

    accepted = post(client, content_id, asset_id, alt_text="A moss wall in a 60 cm tank")
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert accepted.headers["Location"] == f"/api/v1/distributions/{body['id']}"
    assert body["state"] in ("queued", "publishing") and body["caption"] == "Moss on driftwood. #aquascape @aquascene"

    done = wait_for(client, body["id"], "published")
    assert done["media_id"] in graph.media and done["permalink"] == graph.media[done["media_id"]]["permalink"]
    assert done["container_id"] in graph.containers and done["reason"] is None
    # One container, one publish; the limit was read first.
    assert (graph.calls["limit"], graph.calls["create"], graph.calls["publish"]) == (1, 1, 1)
    (container,) = graph.containers.values()
    assert container["caption"] == "Moss on driftwood. #aquascape @aquascene"
    assert container["alt_text"] == "A moss wall in a 60 cm tank"
    # The stand-in fetched the very bytes, from the Instagram bucket, through a time-limited URL.
    assert container["image"] == image
    assert container["image_url"].startswith(f"{s3_endpoint}/{BUCKET}/distributions/{body['id']}/")
    assert "X-Amz-Expires=" in container["image_url"] and "X-Amz-Signature=" in container["image_url"]
    stored = row(backend, body["id"])
    assert (stored.state, stored.media_id, stored.attempts, stored.lease_owner) == ("published", done["media_id"], 0, None)
    assert stored.published_at is not None
    assert outcome("published") == before + 1
    (entry,) = backend.rows("SELECT actor, target_id, detail FROM audit_log WHERE action = 'distribution.create'")
    assert entry.actor.startswith("api-key:") and entry.target_id == body["id"] and entry.detail["asset_id"] == asset_id


def test_idempotency_key_replays_the_first_answer(instagram, backend, graph: GraphState):
    client = instagram()
    content_id = published_content(client)
    asset_id = asset(client, content_id)
    headers = {**AUTH, "Idempotency-Key": "post-moss-wall-1"}
    payload = {"content_id": content_id, "asset_id": asset_id}
    first = client.post("/api/v1/distributions/instagram", headers=headers, json=payload)
    again = client.post("/api/v1/distributions/instagram", headers=headers, json=payload)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert backend.count("distributions") == 1
    wait_for(client, first.json()["id"], "published")
    assert graph.calls["publish"] == 1


# --- the platform's limits and failures -----------------------------------------------------------


def test_past_the_publishing_limit_the_post_waits_for_the_window(instagram, backend, graph: GraphState):
    graph.quota_used = graph.quota_total = 50
    client = instagram()
    content_id = published_content(client)
    accepted = post(client, content_id, asset(client, content_id)).json()
    waiting = wait_for(client, accepted["id"], "queued", until=lambda b: b["reason"] is not None)
    assert "publishing limit: 50 of 50" in waiting["reason"]
    # None of the window's posts is ours: the next try is an hour away; nothing was posted.
    next_at = datetime.fromisoformat(waiting["next_attempt_at"])
    assert next_at > datetime.now(UTC) + timedelta(minutes=55)
    assert (graph.calls["create"], graph.calls["publish"]) == (0, 0)

    # The window frees (the stand-in's quota, and the clock: the row is due again).
    graph.quota_used = 10
    with backend.engine.begin() as conn:
        conn.execute(text("UPDATE distributions SET next_attempt_at = now()"))
    done = wait_for(client, accepted["id"], "published")
    assert done["reason"] is None and (graph.calls["create"], graph.calls["publish"]) == (1, 1)


def test_the_window_frees_when_our_oldest_post_of_the_last_24_hours_turns_24(instagram, backend, graph: GraphState):
    client = instagram()
    content_id = published_content(client)
    first = post(client, content_id, asset(client, content_id)).json()
    wait_for(client, first["id"], "published")
    with backend.engine.begin() as conn:
        conn.execute(text("UPDATE distributions SET published_at = now() - interval '23 hours'"))
    graph.quota_used = graph.quota_total = 1
    second = post(client, content_id, asset(client, content_id)).json()
    waiting = wait_for(client, second["id"], "queued", until=lambda b: b["reason"] is not None)
    frees_at = datetime.fromisoformat(waiting["next_attempt_at"])
    assert timedelta(minutes=55) < frees_at - datetime.now(UTC) < timedelta(minutes=65)


def test_transient_and_rate_limit_errors_are_retried_with_backoff(instagram, backend, graph: GraphState):
    # One rate-limited read of the limit and one server error on the container: retried within the attempt.
    graph.fail = {"limit": [RATE_LIMITED], "create": [TRANSIENT]}
    client = instagram()
    content_id = published_content(client)
    accepted = post(client, content_id, asset(client, content_id)).json()
    done = wait_for(client, accepted["id"], "published")
    assert (graph.calls["limit"], graph.calls["create"], graph.calls["publish"]) == (2, 2, 1)
    assert done["attempts"] == 0 and len(graph.media) == 1


def test_an_attempt_that_keeps_failing_is_requeued_then_succeeds(instagram, backend, graph: GraphState):
    graph.fail = {"create": [TRANSIENT, USER_RATE_LIMITED, TRANSIENT]}  # every try of the first attempt
    before = outcome("retried")
    client = instagram()
    content_id = published_content(client)
    accepted = post(client, content_id, asset(client, content_id)).json()
    done = wait_for(client, accepted["id"], "published")
    assert done["attempts"] == 1 and graph.calls["create"] == 4 and graph.calls["publish"] == 1
    assert outcome("retried") == before + 1


@pytest.mark.parametrize("error, words", [(TOKEN_EXPIRED, "access token expired"), (NO_PERMISSION, "permission")])
def test_an_expired_token_or_missing_permission_fails_permanently(instagram, backend, graph: GraphState, error, words):
    graph.fail = {"create": [error]}
    before = outcome("failed")
    client = instagram()
    content_id = published_content(client)
    accepted = post(client, content_id, asset(client, content_id)).json()
    failed = wait_for(client, accepted["id"], "failed")
    assert words in failed["reason"] and "fbtrace_id" in failed["reason"]
    # Not retried: one container request, nothing published.
    assert (graph.calls["create"], graph.calls["publish"]) == (1, 0)
    assert row(backend, accepted["id"]).state == "failed"
    assert outcome("failed") == before + 1


def test_a_container_that_stays_in_progress_is_polled_within_bounds_and_never_published(
        instagram, backend, graph: GraphState):
    graph.in_progress_polls = -1
    client = instagram(instagram_max_attempts=2)
    content_id = published_content(client)
    accepted = post(client, content_id, asset(client, content_id)).json()
    failed = wait_for(client, accepted["id"], "failed")
    assert "gave up after 2 attempts" in failed["reason"] and "IN_PROGRESS" in failed["reason"]
    # The second attempt reused the recorded container instead of creating another.
    assert graph.calls["create"] == 1 and graph.calls["publish"] == 0
    assert failed["container_id"] in graph.containers
    assert 2 <= graph.calls["status"] < 40  # polled with backoff, for a bounded time


def test_a_publish_that_timed_out_is_not_published_again(instagram, backend, graph: GraphState):
    graph.publish_delays = [CLIENT_TIMEOUT + 1.0]  # the post goes out; its answer arrives too late
    client = instagram()
    content_id = published_content(client)
    accepted = post(client, content_id, asset(client, content_id)).json()
    done = wait_for(client, accepted["id"], "published", timeout=30)
    (media_id,) = graph.media
    assert graph.calls["publish"] == 1 and graph.calls["create"] == 1
    assert done["media_id"] == media_id and done["permalink"] == graph.media[media_id]["permalink"]
    assert done["attempts"] == 1  # the timed-out attempt counted; the retry found the container PUBLISHED


# --- validation before any call -------------------------------------------------------------------


def test_what_instagram_would_refuse_is_refused_before_any_call(instagram, backend, graph: GraphState):
    client = instagram()
    content_id = published_content(client)
    good = asset(client, content_id)
    cases = [
        (asset(client, content_id, jpeg(1000, 2000)), {}, "asset_id: aspect ratio 1000x2000 (0.50:1)"),
        (asset(client, content_id, jpeg(2000, 1000)), {}, "asset_id: aspect ratio 2000x1000 (2.00:1)"),
        (asset(client, content_id, jpeg(fmt="PNG"), "image/png"), {}, "asset_id: the asset is image/png"),
        # 9 MB: a JPEG with trailing bytes (still readable), over Instagram's 8 MB.
        (asset(client, content_id, jpeg() + b"\0" * (9 * 1024 * 1024)), {}, "Instagram takes at most 8388608"),
        (good, {"caption": " ".join(f"#tag{i}" for i in range(31))}, "caption: 31 hashtags"),
        (good, {"caption": " ".join(f"@user{i}" for i in range(21))}, "caption: 21 @mentions"),
        (good, {"caption": "x" * 2201}, "caption: String should have at most 2200 characters"),
    ]
    for asset_id, extra, message in cases:
        refused = post(client, content_id, asset_id, **extra)
        assert refused.status_code == 422 and message in refused.json()["detail"], (message, refused.text)
    assert post(client, content_id, good, caption="#" + " #".join(["ok"] * 30)).status_code == 202
    long_body = published_content(client, body="y" * 2300)
    refused = post(client, long_body, asset(client, long_body))
    assert refused.status_code == 422 and "the content's body" in refused.json()["detail"]
    assert backend.count("distributions") == 1


def test_only_published_content_of_its_own_asset_is_distributed(instagram, backend, graph: GraphState):
    client = instagram()
    draft = published_content(client, status="draft")
    refused = post(client, draft, asset(client, draft))
    assert refused.status_code == 409 and "content_id: content must be published" in refused.json()["detail"]
    other = published_content(client)
    assert post(client, other, asset(client, draft)).status_code == 404
    assert post(client, str(uuid.uuid4()), asset(client, other)).json()["detail"] == "content_id: unknown content id"
    assert client.get(f"/api/v1/distributions/{uuid.uuid4()}", headers=AUTH).status_code == 404
    assert backend.count("distributions") == 0 and sum(graph.calls.values()) == 0


def test_object_storage_down_answers_503_and_writes_nothing(instagram, backend, graph: GraphState):
    client = instagram()
    content_id = published_content(client)
    asset_id = asset(client, content_id)
    down = instagram(s3_endpoint=f"http://127.0.0.1:{free_port()}")
    refused = post(down, content_id, asset_id)
    assert refused.status_code == 503 and "object storage unavailable" in refused.json()["detail"]
    assert refused.headers["Retry-After"]
    assert backend.count("distributions") == 0 and sum(graph.calls.values()) == 0


def test_without_a_token_the_endpoints_answer_503_and_the_engine_runs(make_client, backend, graph: GraphState):
    client = make_client(instagram_access_token=None, instagram_user_id=USER_ID)
    assert client.get("/health").status_code == 200
    content_id = published_content(client)
    refused = post(client, content_id, asset(client, content_id))
    assert refused.status_code == 503
    assert "INSTAGRAM_ACCESS_TOKEN (secret file instagram_access_token)" in refused.json()["detail"]
    assert client.get(f"/api/v1/distributions/{uuid.uuid4()}", headers=AUTH).status_code == 503
    assert backend.count("distributions") == 0 and sum(graph.calls.values()) == 0


# --- persistence and leases ----------------------------------------------------------------------


def test_a_scheduled_post_survives_a_restart(instagram, backend, graph: GraphState):
    first = instagram()
    content_id = published_content(first)
    publish_at = datetime.now(UTC) + timedelta(seconds=2)
    accepted = post(first, content_id, asset(first, content_id), publish_at=publish_at.isoformat()).json()
    assert accepted["state"] == "queued"
    first.__exit__(None, None, None)  # the distributor stops before the post is due
    assert row(backend, accepted["id"]).state == "queued" and graph.calls["create"] == 0

    restarted = instagram()
    done = wait_for(restarted, accepted["id"], "published")
    assert datetime.fromisoformat(done["published_at"]) >= publish_at
    assert graph.calls["publish"] == 1


def test_two_workers_never_take_the_same_row(instagram, backend, graph: GraphState, pg_engine):
    client = instagram()
    first, second = workers_of_our_own(client, 2)
    content_id = published_content(client)
    accepted = post(client, content_id, asset(client, content_id)).json()

    # A row another replica holds locked is skipped, not waited for (SKIP LOCKED).
    with pg_engine.connect() as conn, conn.begin():
        conn.execute(text("SELECT id FROM distributions WHERE id = :id FOR UPDATE"), {"id": uuid.UUID(accepted["id"])})
        assert client.portal.call(first.claim) is None

    taken = client.portal.call(first.claim)
    assert taken is not None and str(taken.id) == accepted["id"]
    assert client.portal.call(second.claim) is None  # leased to the first
    stored = row(backend, accepted["id"])
    assert stored.state == "publishing" and stored.lease_owner == first.owner
    # A lease that ran out (its worker died) is taken over.
    with backend.engine.begin() as conn:
        conn.execute(text("UPDATE distributions SET lease_expires_at = now() - interval '1 second'"))
    assert str(client.portal.call(second.claim).id) == accepted["id"]
    for worker in (first, second):
        client.portal.call(worker.graph.close)


def test_a_worker_that_lost_its_lease_does_not_publish(instagram, backend, graph: GraphState):
    client = instagram()
    [slow] = workers_of_our_own(client, 1)
    content_id = published_content(client)
    accepted = post(client, content_id, asset(client, content_id)).json()
    # An earlier attempt recorded a container that is now FINISHED.
    graph.in_progress_polls = 0
    graph.containers["17900000000000999"] = {"caption": accepted["caption"], "image": b"", "polls": 0,
                                             "published": False}
    with backend.engine.begin() as conn:
        conn.execute(text("UPDATE distributions SET container_id = '17900000000000999'"))
    taken = client.portal.call(slow.claim)
    # Its lease ran out while it worked, and another replica took the row over.
    with backend.engine.begin() as conn:
        conn.execute(text("UPDATE distributions SET lease_owner = 'other-replica'"))
    with pytest.raises(LeaseLost):
        client.portal.call(slow.process, taken)
    assert graph.calls["status"] >= 1 and graph.calls["publish"] == 0
    assert row(backend, accepted["id"]).lease_owner == "other-replica"
    client.portal.call(slow.graph.close)


# --- the admin dashboard's Instagram page (the same service layer as the API) ------------------------


@pytest.fixture
def dashboard(instagram) -> Callable[..., TestClient]:  # noqa: ANN001
    """An Instagram-configured engine over https (the session cookie is Secure), with an admin, two editors and a viewer."""

    def factory(**overrides: Any) -> TestClient:
        client = instagram(base_url="https://testserver", admin_bootstrap_email=ADMIN[0],
                           admin_bootstrap_password=ADMIN[1], **overrides)
        make_accounts(sign_in(client, ADMIN))
        client.cookies.clear()
        return client

    return factory


def schedule(client: TestClient, content_id: str, asset_id: str, **fields: str) -> Any:
    return form_post(client, "/admin/distributions", "/admin/distributions", image=f"{content_id}/{asset_id}", **fields)


def nothing_written(backend) -> bool:  # noqa: ANN001
    return backend.count("distributions") == 0 and backend.count("audit_log", "action = 'distribution.create'") == 0


def test_a_viewer_sees_the_posts_but_is_refused_scheduling_one(dashboard, backend, graph: GraphState):
    client = dashboard()
    content_id = published_content(client)
    asset_id = asset(client, content_id)
    sign_in(client, VIEWER)
    page = client.get("/admin/distributions")
    assert page.status_code == 200 and "No Instagram post yet." in page.text
    assert 'href="/admin/distributions">Instagram</a>' in page.text and "Schedule post" not in page.text
    refused = schedule(client, content_id, asset_id)
    assert refused.status_code == 403
    assert "Your role (viewer) may not publish approved content, archive content and post it to Instagram" in refused.text
    assert "this needs the role admin, editor" in refused.text
    assert nothing_written(backend) and sum(graph.calls.values()) == 0


def test_a_form_without_its_csrf_token_schedules_nothing(dashboard, backend):
    client = dashboard()
    content_id = published_content(client)
    asset_id = asset(client, content_id)
    sign_in(client, EDITOR)
    refused = client.post("/admin/distributions", data={"image": f"{content_id}/{asset_id}"}, follow_redirects=False)
    assert refused.status_code == 403 and "security token is missing" in refused.text
    assert nothing_written(backend)


def test_an_editor_schedules_a_post_it_is_written_audited_and_its_state_followed(dashboard, backend, graph: GraphState):
    client = dashboard()
    content_id = published_content(client)
    asset_id = asset(client, content_id)
    sign_in(client, EDITOR)
    form = client.get("/admin/distributions").text
    assert f'<option value="{content_id}/{asset_id}"' in form and 'optgroup label="Moss wall (published)"' in form

    response = schedule(client, content_id, asset_id, caption="Moss wall, week 6 #aquascape",
                        alt_text="A moss wall in a 60 cm tank")
    assert response.status_code == 303, response.text
    distribution_id = response.headers["location"].rsplit("/", 1)[1]
    assert response.headers["location"] == f"/admin/distributions/{distribution_id}"
    stored = row(backend, distribution_id)
    assert (stored.content_id, stored.asset_id) == (uuid.UUID(content_id), uuid.UUID(asset_id))
    assert (stored.caption, stored.alt_text) == ("Moss wall, week 6 #aquascape", "A moss wall in a 60 cm tank")
    (entry,) = backend.rows("SELECT actor, target_type, target_id, client_ip FROM audit_log "
                            "WHERE action = 'distribution.create'")
    assert (entry.actor, entry.target_type, entry.target_id) == (EDITOR[0], "distribution", distribution_id)
    assert entry.client_ip

    # The worker publishes it against the stand-in; both pages show the state and the permalink.
    deadline = time.monotonic() + 15
    while row(backend, distribution_id).state != "published":
        assert time.monotonic() < deadline, row(backend, distribution_id)
        time.sleep(0.05)
    (media_id,) = graph.media
    permalink = graph.media[media_id]["permalink"]
    detail = client.get(f"/admin/distributions/{distribution_id}").text
    assert '<strong id="distribution-state">published</strong>' in detail and f'href="{permalink}"' in detail
    assert '<a href="/admin/content/' + content_id + '">Moss wall</a>' in detail
    listing = client.get("/admin/distributions").text
    assert 'status-published">published' in listing and f'href="{permalink}"' in listing
    assert graph.calls["publish"] == 1


def test_a_failed_post_shows_its_reason_on_the_page(dashboard, backend, graph: GraphState):
    graph.fail = {"create": [TOKEN_EXPIRED]}
    client = dashboard()
    content_id = published_content(client)
    asset_id = asset(client, content_id)
    sign_in(client, ADMIN)
    distribution_id = schedule(client, content_id, asset_id).headers["location"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 15
    while row(backend, distribution_id).state != "failed":
        assert time.monotonic() < deadline, row(backend, distribution_id)
        time.sleep(0.05)
    listing = client.get("/admin/distributions").text
    assert 'status-failed">failed' in listing and "access token expired" in listing
    detail = client.get(f"/admin/distributions/{distribution_id}").text
    assert "Reason it failed" in detail and "access token expired" in detail


def test_a_post_for_later_shows_its_publish_time_and_waits(dashboard, backend, graph: GraphState):
    client = dashboard()
    content_id = published_content(client)
    asset_id = asset(client, content_id)
    sign_in(client, EDITOR)
    response = schedule(client, content_id, asset_id, publish_at="2099-01-31T09:00")
    assert response.status_code == 303, response.text
    distribution_id = response.headers["location"].rsplit("/", 1)[1]
    stored = row(backend, distribution_id)
    assert stored.state == "queued" and stored.publish_at == datetime(2099, 1, 31, 9, 0, tzinfo=UTC)
    detail = client.get(response.headers["location"]).text
    assert '<time datetime="2099-01-31T09:00:00+00:00">2099-01-31 09:00 UTC</time>' in detail
    assert 'http-equiv="refresh"' not in detail  # nothing to watch for until it is due
    assert graph.calls["create"] == 0


def test_without_a_token_the_page_shows_the_reason_and_writes_nothing(dashboard, backend, graph: GraphState):
    client = dashboard(instagram_access_token=None)
    content_id = published_content(client)
    asset_id = asset(client, content_id)
    sign_in(client, EDITOR)
    reason = "Instagram publishing is not configured: INSTAGRAM_ACCESS_TOKEN (secret file instagram_access_token) not set"
    assert reason in client.get("/admin/distributions").text
    refused = schedule(client, content_id, asset_id, caption="kept")
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    alert = re.search(r'<p class="error" id="schedule-error" role="alert">([^<]*)</p>', refused.text).group(1)
    assert alert.startswith(reason)
    assert ">kept</textarea>" in refused.text  # the form keeps what was typed
    assert nothing_written(backend) and sum(graph.calls.values()) == 0


@pytest.mark.parametrize("kind, fields, control, message", [
    ("tall", {}, "image", "Image: aspect ratio 1000x2000 (0.50:1)"),
    ("png", {}, "image", "Image: the asset is image/png; Instagram takes JPEG images only"),
    ("good", {"caption": " ".join(f"#tag{i}" for i in range(31))}, "caption", "Caption: 31 hashtags"),
    ("good", {"alt_text": "two\nlines"}, "alt_text", "Alt text: must be one line"),
    ("good", {"publish_at": "next Tuesday"}, "publish_at", "Publish at: "),
    ("other", {}, "image", "Image: no asset with this id belongs to the content"),
])
def test_an_invalid_post_names_the_field_on_the_form_and_writes_nothing(
        dashboard, backend, graph: GraphState, kind, fields, control, message):
    client = dashboard()
    content_id = published_content(client)
    asset(client, content_id)  # one good image, so the form is offered
    images = {"tall": lambda: asset(client, content_id, jpeg(1000, 2000)),
              "png": lambda: asset(client, content_id, jpeg(fmt="PNG"), "image/png"),
              "good": lambda: asset(client, content_id),
              "other": lambda: asset(client, published_content(client))}
    asset_id = images[kind]()
    sign_in(client, EDITOR)
    refused = schedule(client, content_id, asset_id, **fields)
    assert refused.status_code in (404, 422), refused.text
    alert = re.search(r'<p class="error" id="schedule-error" role="alert">([^<]*)</p>', refused.text).group(1)
    assert alert.startswith(message), alert
    assert re.search(rf'id="{control}"[^>]*aria-invalid="true" aria-errormessage="schedule-error"', refused.text)
    assert nothing_written(backend) and sum(graph.calls.values()) == 0


def test_draft_content_cannot_be_posted_from_the_page(dashboard, backend, graph: GraphState):
    client = dashboard()
    draft = published_content(client, status="draft")
    asset_id = asset(client, draft)
    sign_in(client, EDITOR)
    assert f"{draft}/{asset_id}" not in client.get("/admin/distributions").text  # not offered ...
    refused = schedule(client, draft, asset_id)  # ... and refused when forged
    assert refused.status_code == 409
    assert "Image: content must be published or approved before it is distributed (it is draft)" in refused.text
    assert nothing_written(backend)
