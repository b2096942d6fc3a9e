"""Content API: CRUD, validation, auth, caching, pagination, concurrency, assets."""

from __future__ import annotations

import threading
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from engine_support import API_KEY, AUTH, db_id, fresh_rate_window

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def new_content(client, **fields):
    payload = {"title": "Iwagumi layouts", "body": "Stones first, then plants.", "content_type": "article"}
    payload.update(fields)
    response = client.post("/api/v1/content", json=payload, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_returns_201_and_writes_one_row_with_tags(client, backend):
    response = client.post(
        "/api/v1/content",
        json={
            "title": "  Dutch style  ",
            "body": "Rows of stem plants.",
            "content_type": "guide",
            "tags": ["Plants", "dutch", "plants"],
            "status": "published",
        },
        headers=AUTH,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["title"] == "Dutch style"
    assert body["tags"] == ["plants", "dutch"]
    assert body["version"] == 1
    assert body["created_at"].endswith("Z") and body["published_at"]
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/api/v1/content/{body['id']}"
    assert backend.count("content", "id = :id", id=db_id(backend.name, body["id"])) == 1
    assert sorted(r[0] for r in backend.rows("SELECT tag FROM content_tags")) == ["dutch", "plants"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"title": "", "body": "b", "content_type": "article"}, "title: String should have at least 1 character"),
        ({"title": "t" * 201, "body": "b", "content_type": "article"}, "title: String should have at most 200 characters"),
        ({"title": "t", "body": "b" * 100_001, "content_type": "article"}, "body: String should have at most 100000 characters"),
        (
            {"title": "t", "body": "b", "content_type": "blog"},
            "content_type: Input should be 'article', 'newsletter', 'instagram_post' or 'guide'",
        ),
        ({"title": "t", "body": "b", "content_type": "guide", "tags": [f"t{i}" for i in range(21)]},
         "tags: List should have at most 20 items after validation, not 21"),
        ({"title": "t", "body": "b", "content_type": "guide", "status": "archived"},
         "status: Input should be 'draft' or 'published'"),
        ({"body": "b", "content_type": "guide"}, "title: field required"),
        ({"title": "two\nlines", "body": "b", "content_type": "guide"}, "title: must be one line (no line breaks or control characters) with a visible character"),
        ({"title": "   ", "body": "b", "content_type": "guide"}, "title: must be one line (no line breaks or control characters) with a visible character"),
        ({"title": "t", "body": "nul\u0000", "content_type": "guide"}, "body: must not contain the NUL character"),
        ({"title": "t", "body": "b", "content_type": "guide", "tags": ["ok", "tab\tbed"]}, "tags[1]: must be one line (no line breaks or control characters) with a visible character"),
        ({"title": "t", "body": "b", "content_type": "guide", "author": "x"}, "author: Extra inputs are not permitted"),
    ],
)
def test_bad_input_is_rejected_with_a_precise_message_and_nothing_written(client, backend, payload, message):
    response = client.post("/api/v1/content", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"] == message
    assert backend.count("content") == 0


def test_writes_need_an_api_key(client, backend):
    payload = {"title": "t", "body": "b", "content_type": "article"}
    missing = client.post("/api/v1/content", json=payload)
    assert missing.status_code == 401
    assert missing.json()["detail"] == "missing X-API-Key header"
    wrong = client.post("/api/v1/content", json=payload, headers={"X-API-Key": API_KEY + "x"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "invalid API key"
    assert backend.count("content") == 0
    item = new_content(client)
    assert client.patch(f"/api/v1/content/{item['id']}", json={"title": "x"}).status_code == 401
    assert client.delete(f"/api/v1/content/{item['id']}").status_code == 401


def test_get_is_cached_and_drafts_are_private(client):
    published = new_content(client, status="published")
    first = client.get(f"/api/v1/content/{published['id']}")
    second = client.get(f"/api/v1/content/{published['id']}")
    assert first.status_code == second.status_code == 200
    assert first.headers["X-Cache"] == "MISS"
    assert second.headers["X-Cache"] == "HIT"
    assert first.json() == second.json() == published
    assert client.get(f"/api/v1/content/{published['id']}", headers={"If-None-Match": '"1"'}).status_code == 304

    draft = new_content(client)
    assert client.get(f"/api/v1/content/{draft['id']}").status_code == 404
    assert client.get(f"/api/v1/content/{draft['id']}", headers=AUTH).status_code == 200
    # ...also when the draft is already cached
    assert client.get(f"/api/v1/content/{draft['id']}").json() == {"detail": "content not found"}


def test_unknown_and_malformed_ids(client):
    assert client.get(f"/api/v1/content/{uuid.uuid4()}").json() == {"detail": "content not found"}
    bad = client.get("/api/v1/content/not-a-uuid")
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("content_id: Input should be a valid UUID")


def test_list_paginates_filters_and_searches(client):
    ids = [new_content(client, title=f"Post {i}", status="published", tags=["even" if i % 2 == 0 else "odd"])["id"]
           for i in range(5)]
    new_content(client, title="Secret draft", content_type="newsletter")
    new_content(client, title="Moss walls", body="Java moss on mesh", content_type="guide", status="published")

    public = client.get("/api/v1/content", params={"limit": 2}).json()
    assert public["total"] == 6 and len(public["items"]) == 2 and public["offset"] == 0
    assert "body" not in public["items"][0]
    seen = [i["id"] for i in public["items"]]
    cursor = public["next_cursor"]
    while cursor:
        page = client.get("/api/v1/content", params={"limit": 2, "cursor": cursor}).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert len(seen) == 6 == len(set(seen)) and set(ids) <= set(seen)

    offset_page = client.get("/api/v1/content", params={"limit": 2, "offset": 2}).json()
    assert [i["id"] for i in offset_page["items"]] == seen[2:4]
    # An offset with a cursor skips that many items after the cursor.
    skipped = client.get("/api/v1/content", params={"limit": 2, "offset": 1, "cursor": public["next_cursor"]}).json()
    assert [i["id"] for i in skipped["items"]] == seen[3:5] and skipped["offset"] == 1
    # Any well-formed cursor is a position: one before every item gives an empty page.
    assert client.get("/api/v1/content", params={"cursor": "0-" + "0" * 32}).json()["items"] == []

    assert client.get("/api/v1/content", params={"tag": "even"}).json()["total"] == 3
    assert client.get("/api/v1/content", params={"type": "guide"}).json()["total"] == 1
    assert client.get("/api/v1/content", params={"q": "java MOSS"}).json()["items"][0]["title"] == "Moss walls"
    assert client.get("/api/v1/content", params={"q": "100%"}).json()["total"] == 0
    drafts = client.get("/api/v1/content", params={"status": "draft"}, headers=AUTH).json()
    assert [i["title"] for i in drafts["items"]] == ["Secret draft"]
    assert client.get("/api/v1/content", params={"status": "draft"}).status_code == 401
    assert client.get("/api/v1/content", headers=AUTH).json()["total"] == 7


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 101}, "limit: Input should be less than or equal to 100"),
        ({"limit": 0}, "limit: Input should be greater than or equal to 1"),
        ({"cursor": "!!!"}, "cursor: String should match pattern '^[0-9]{1,16}-[0-9a-f]{32}$'"),
        ({"q": "a\u0000"}, "q: must not contain control characters"),
        ({"limit": 5, "page": 2}, "page: unknown query parameter"),
        ({"type": "video"}, "type: Input should be 'article', 'newsletter', 'instagram_post' or 'guide'"),
    ],
)
def test_list_rejects_bad_paging(client, params, message):
    response = client.get("/api/v1/content", params=params)
    assert response.status_code == 422
    assert response.json()["detail"] == message


def test_patch_needs_current_version_and_invalidates_cache(client, backend):
    item = new_content(client, status="published")
    url = f"/api/v1/content/{item['id']}"
    assert client.get(url).headers["X-Cache"] == "MISS"
    assert client.get(url).headers["X-Cache"] == "HIT"

    missing = client.patch(url, json={"title": "New"}, headers=AUTH)
    assert missing.status_code == 428
    assert client.patch(url, json={"title": "New"}, headers={**AUTH, "If-Match": "latest"}).status_code == 422
    updated = client.patch(url, json={"title": "New", "tags": ["fresh"]}, headers={**AUTH, "If-Match": '"1"'})
    assert updated.status_code == 200
    assert updated.json()["title"] == "New" and updated.json()["version"] == 2
    assert updated.json()["tags"] == ["fresh"]
    assert updated.headers["ETag"] == '"2"'

    after = client.get(url)
    assert after.headers["X-Cache"] == "MISS" and after.json()["title"] == "New"

    stale = client.patch(url, json={"title": "Stale"}, headers={**AUTH, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["detail"] == "version conflict: content is at version 2, request expected 1"
    assert backend.rows("SELECT title, version FROM content")[0] == ("New", 2)

    weak = client.patch(url, json={"status": "draft"}, headers={**AUTH, "If-Match": 'W/"2"'})
    assert weak.status_code == 200 and weak.json()["published_at"] is None

    empty = client.patch(url, json={}, headers={**AUTH, "If-Match": '"3"'})
    assert empty.status_code == 422
    assert empty.json()["detail"] == "body: at least one of title, body, content_type, tags, status is required"
    null = client.patch(url, json={"title": None}, headers={**AUTH, "If-Match": '"3"'})
    assert null.status_code == 422 and null.json()["detail"] == "title: Input should be a valid string"
    assert client.patch(f"/api/v1/content/{uuid.uuid4()}", json={"title": "x"}, headers={**AUTH, "If-Match": '"1"'}).status_code == 404


def test_concurrent_patches_with_the_same_version_let_exactly_one_win(client, backend):
    item = new_content(client)
    url = f"/api/v1/content/{item['id']}"
    results: list[int] = []

    def patch(n: int) -> None:
        r = client.patch(url, json={"title": f"writer {n}"}, headers={**AUTH, "If-Match": '"1"'})
        results.append(r.status_code)

    threads = [threading.Thread(target=patch, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [412] * 5
    assert backend.rows("SELECT version FROM content")[0][0] == 2


def test_delete_removes_row_tags_and_cache(client, backend):
    item = new_content(client, status="published", tags=["a", "b"])
    url = f"/api/v1/content/{item['id']}"
    client.get(url)
    assert client.delete(url, headers=AUTH).status_code == 204
    assert client.get(url).status_code == 404
    assert backend.count("content") == 0 and backend.count("content_tags") == 0
    assert client.delete(url, headers=AUTH).status_code == 404


def test_idempotency_key_replays_the_first_response(client, backend):
    payload = {"title": "Once", "body": "only once", "content_type": "article"}
    headers = {**AUTH, "Idempotency-Key": "create-once-1"}
    first = client.post("/api/v1/content", json=payload, headers=headers)
    again = client.post("/api/v1/content", json=payload, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert backend.count("content") == 1
    other = client.post("/api/v1/content", json={**payload, "title": "Other"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["detail"] == "Idempotency-Key was already used with a different request body"


def test_rate_limit_answers_429_with_retry_after(make_client):
    client = make_client(rate_limit_per_minute=3)
    fresh_rate_window()
    codes = [client.get("/api/v1/content").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/api/v1/content")
    assert 1 <= int(limited.headers["Retry-After"]) <= 61
    assert limited.json()["detail"].startswith("rate limit exceeded: 3 requests per minute")
    # other routes have their own budget; health is never limited
    assert client.get(f"/api/v1/content/{uuid.uuid4()}").status_code == 404
    assert all(client.get("/health").status_code == 200 for _ in range(5))


def _download(client, url: str) -> bytes:
    parts = urlsplit(url)
    if parts.hostname == "testserver":
        response = client.get(f"{parts.path}?{parts.query}")
    else:
        response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.content


def test_asset_upload_stores_bytes_behind_a_presigned_url(client, backend):
    item = new_content(client)
    response = client.post(
        f"/api/v1/content/{item['id']}/assets",
        files={"file": ("../../tank photo.png", PNG, "image/png")},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    asset = response.json()
    assert asset["filename"] == "tank_photo.png" and asset["size"] == len(PNG)
    assert _download(client, asset["url"]) == PNG
    rows = backend.rows("SELECT bucket, key, size FROM assets")
    assert rows == [("content-assets", f"content/{item['id']}/{asset['id']}/tank_photo.png", len(PNG))]
    if backend.name == "postgres":
        assert "X-Amz-Signature=" in asset["url"]
    else:
        tampered = urlsplit(asset["url"])
        assert client.get(f"{tampered.path}?{tampered.query.replace('signature=', 'signature=0')}").status_code == 403


@pytest.mark.parametrize(
    ("upload", "status", "message"),
    [
        (("a.exe", b"MZ\x90\x00", "application/x-msdownload"), 415,
         "file: content type 'application/x-msdownload' is not allowed; allowed: application/pdf, image/gif, "
         "image/jpeg, image/png, image/webp, text/markdown, text/plain, video/mp4"),
        (("fake.png", b"GIF89a....", "image/png"), 415, "file: content does not match the declared type image/png"),
        (("empty.txt", b"", "text/plain"), 422, "file: must not be empty"),
        (("big.png", PNG + b"\x00" * 2048, "image/png"), 413, "file: larger than the 1024-byte limit"),
    ],
)
def test_bad_assets_are_refused_and_nothing_is_stored(make_client, backend, upload, status, message):
    client = make_client(max_asset_bytes=1024)
    item = new_content(client)
    response = client.post(f"/api/v1/content/{item['id']}/assets", files={"file": upload}, headers=AUTH)
    assert response.status_code == status
    assert response.json()["detail"] == message
    assert backend.count("assets") == 0


def test_asset_for_unknown_content_is_404(client, backend):
    response = client.post(f"/api/v1/content/{uuid.uuid4()}/assets", files={"file": ("a.png", PNG, "image/png")}, headers=AUTH)
    assert response.status_code == 404
    assert backend.count("assets") == 0


def test_oversized_request_body_is_refused(make_client, backend):
    client = make_client(max_request_bytes=2048)
    response = client.post(
        "/api/v1/content", json={"title": "t", "body": "x" * 5000, "content_type": "article"}, headers=AUTH
    )
    assert response.status_code == 413
    assert backend.count("content") == 0


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.services)], indirect=True)
def test_a_write_on_one_replica_invalidates_the_read_cache_of_another(make_client, backend):
    """Replicas share state only through PostgreSQL and Redis: no embedded variant."""
    import time

    writer, reader = make_client(), make_client()  # two processes' worth of caches
    for replica in (writer, reader):  # each subscribed to the invalidation feed (subscribing empties its cache)
        replica.portal.call(replica.app.state.services.kv.following.wait)
    item = new_content(writer, status="published")
    url = f"/api/v1/content/{item['id']}"
    assert reader.get(url).headers["X-Cache"] == "MISS"
    assert reader.get(url).headers["X-Cache"] == "HIT"
    assert writer.patch(url, json={"title": "Edited elsewhere"}, headers={**AUTH, "If-Match": '"1"'}).status_code == 200
    deadline = time.monotonic() + 2
    while reader.get(url).json()["title"] != "Edited elsewhere":
        assert time.monotonic() < deadline, "the reader kept serving the stale entry"
        time.sleep(0.02)
