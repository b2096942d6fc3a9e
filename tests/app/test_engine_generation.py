"""Generation API: local provider, cache hits, HTTP providers and their failures."""

from __future__ import annotations

import pytest

from engine_support import AUTH, db_id

REQUEST = {"topic": "carpet plants for beginners", "content_type": "article", "tone": "friendly", "length": "short"}


def test_generate_stores_a_scored_draft_with_metadata(client, backend):
    response = client.post("/api/v1/generate", json=REQUEST, headers=AUTH)
    assert response.status_code == 201, response.text
    assert response.headers["X-Cache"] == "MISS"
    body = response.json()
    assert body["status"] == "draft" and body["content_type"] == "article"
    assert 0 <= body["quality_score"] <= 10
    generation = body["generation"]
    assert generation["provider"] == "local"
    assert generation["model"] == "aquascene-template-v1"
    assert generation["tokens"] == generation["input_tokens"] + generation["output_tokens"] > 0
    assert generation["cost_usd"] == 0.0
    rows = backend.rows("SELECT status, quality_score FROM content WHERE id = :id", id=db_id(backend.name, body["id"]))
    assert rows == [("draft", body["quality_score"])]


def test_identical_requests_are_answered_from_cache(client, backend):
    first = client.post("/api/v1/generate", json=REQUEST, headers=AUTH)
    second = client.post("/api/v1/generate", json={**REQUEST, "topic": "  Carpet plants for beginners "}, headers=AUTH)
    assert first.status_code == 201 and second.status_code == 200
    assert second.headers["X-Cache"] == "HIT"
    assert second.json() == first.json()
    assert backend.count("content") == 1
    other = client.post("/api/v1/generate", json={**REQUEST, "tone": "professional"}, headers=AUTH)
    assert other.status_code == 201 and other.headers["X-Cache"] == "MISS"
    assert backend.count("content") == 2


def test_deleted_generation_is_not_served_from_cache(client, backend):
    first = client.post("/api/v1/generate", json=REQUEST, headers=AUTH).json()
    assert client.delete(f"/api/v1/content/{first['id']}", headers=AUTH).status_code == 204
    again = client.post("/api/v1/generate", json=REQUEST, headers=AUTH)
    assert again.status_code == 201 and again.json()["id"] != first["id"]


@pytest.mark.parametrize("content_type", ["newsletter", "instagram_post", "guide"])
def test_every_content_type_generates(client, content_type):
    response = client.post("/api/v1/generate", json={**REQUEST, "content_type": content_type}, headers=AUTH)
    assert response.status_code == 201
    assert response.json()["body"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({**REQUEST, "topic": "ab"}, "topic: String should have at least 3 characters"),
        ({**REQUEST, "length": "epic"}, "length: Input should be 'short', 'medium' or 'long'"),
        ({"content_type": "article"}, "topic: field required"),
    ],
)
def test_bad_generation_requests(client, backend, payload, message):
    response = client.post("/api/v1/generate", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"] == message
    assert backend.count("content") == 0


def test_generation_needs_an_api_key(client, backend):
    assert client.post("/api/v1/generate", json=REQUEST).status_code == 401
    assert backend.count("content") == 0


def test_openai_provider_over_http_records_tokens_and_cost(make_client, backend, web):
    client = make_client(
        generation_provider="openai",
        openai_api_key="sk-test",
        openai_base_url=f"{web.base_url}/openai/v1",
        provider_input_cost_per_1k=0.001,
        provider_output_cost_per_1k=0.002,
    )
    response = client.post("/api/v1/generate", json=REQUEST, headers=AUTH)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["title"] == "Carpet Plants for Beginners"
    assert body["generation"]["provider"] == "openai"
    assert body["generation"]["input_tokens"] == 120 and body["generation"]["output_tokens"] == 380
    assert body["generation"]["cost_usd"] == pytest.approx(0.00088)
    assert web.hits["/openai/v1/chat/completions"] == 1
    cached = client.post("/api/v1/generate", json=REQUEST, headers=AUTH)
    assert cached.headers["X-Cache"] == "HIT"
    assert web.hits["/openai/v1/chat/completions"] == 1
    assert backend.count("content") == 1


def test_anthropic_provider_over_http(make_client, web):
    client = make_client(
        generation_provider="anthropic", anthropic_api_key="test", anthropic_base_url=f"{web.base_url}/anthropic/v1"
    )
    body = client.post("/api/v1/generate", json=REQUEST, headers=AUTH).json()
    assert body["title"] == "Shrimp Keeping 101"
    assert body["generation"]["provider"] == "anthropic" and body["generation"]["tokens"] == 300


@pytest.mark.parametrize(
    ("path", "timeout", "status", "message"),
    [
        ("/failing/v1", 10, 502, "generation provider failed: openai answered HTTP 500"),
        ("/slow/v1", 0.3, 504, "generation provider timed out: openai did not answer within 0.3s"),
        ("/missing/v1", 10, 502, "generation provider failed: openai answered HTTP 404"),
    ],
)
def test_provider_failures_map_to_502_504_and_store_nothing(make_client, backend, web, path, timeout, status, message):
    client = make_client(
        generation_provider="openai",
        openai_api_key="sk-test",
        openai_base_url=f"{web.base_url}{path}",
        generation_timeout_seconds=timeout,
    )
    response = client.post("/api/v1/generate", json=REQUEST, headers=AUTH)
    assert response.status_code == status
    assert response.json()["detail"] == message
    assert backend.count("content") == 0
    # the failure is not cached either
    assert client.post("/api/v1/generate", json=REQUEST, headers=AUTH).status_code == status


def test_generation_metrics_are_recorded(client):
    client.post("/api/v1/generate", json=REQUEST, headers=AUTH)
    text = client.get("/metrics").text
    assert 'content_generation_total{content_type="article",outcome="success",provider="local"}' in text
    assert 'content_generation_duration_seconds_count{provider="local"}' in text
    assert 'content_quality_score{content_type="article"}' in text
    assert 'ai_api_cost_total{model="aquascene-template-v1",provider="local"}' in text
