"""Scraping API: SSRF refusal, robots.txt, limits, extraction."""

from __future__ import annotations

import pytest

from engine_support import AUTH, fresh_rate_window


@pytest.fixture
def local_client(make_client):
    """A scraper explicitly allowed to fetch from the loopback test server."""
    return make_client(scraper_allowed_networks="127.0.0.0/8", scraper_timeout_seconds=5)


def test_scrape_stores_title_and_excerpt(local_client, backend, web):
    response = local_client.post("/api/v1/scrape", json={"url": f"{web.base_url}/article"}, headers=AUTH)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["url"] == f"{web.base_url}/article"
    assert body["title"] == "Nature Aquarium Basics"
    assert body["excerpt"] == "How to plan a nature aquarium: hardscape, plants and light."
    assert set(body) == {"id", "url", "title", "excerpt", "fetched_at"}
    assert backend.rows("SELECT host, status_code, title FROM scraped_pages") == [
        ("127.0.0.1", 200, "Nature Aquarium Basics")
    ]
    assert web.hits["/robots.txt"] == 1


def test_redirects_are_followed(local_client, web):
    body = local_client.post("/api/v1/scrape", json={"url": f"{web.base_url}/redirect"}, headers=AUTH).json()
    assert body["title"] == "Nature Aquarium Basics"
    assert web.hits["/article2"] == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:{port}/article", "url: 127.0.0.1 resolves to 127.0.0.1, a loopback address; scraping it is not allowed"),
        ("http://localhost:{port}/article", "url: localhost resolves to 127.0.0.1, a loopback address; scraping it is not allowed"),
        ("http://169.254.169.254/latest/meta-data/", "url: 169.254.169.254 resolves to 169.254.169.254, a link-local address; scraping it is not allowed"),
        ("http://10.1.2.3/", "url: 10.1.2.3 resolves to 10.1.2.3, a private address; scraping it is not allowed"),
        ("http://[::1]:{port}/", "url: ::1 resolves to ::1, a loopback address; scraping it is not allowed"),
    ],
)
def test_private_targets_are_refused_by_default(client, backend, web, url, message):
    response = client.post("/api/v1/scrape", json={"url": url.format(port=web.port)}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["detail"] == message
    assert backend.count("scraped_pages") == 0
    assert sum(web.hits.values()) == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/file", "url: URL scheme should be 'http' or 'https'"),
        ("file:///etc/passwd", "url: URL scheme should be 'http' or 'https'"),
        ("not a url", "url: Input should be a valid URL, relative URL without a base"),
    ],
)
def test_only_http_urls_are_accepted(client, backend, url, message):
    response = client.post("/api/v1/scrape", json={"url": url}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"] == message
    assert backend.count("scraped_pages") == 0


def test_robots_txt_is_honoured(local_client, backend, web):
    response = local_client.post("/api/v1/scrape", json={"url": f"{web.base_url}/private/secret"}, headers=AUTH)
    assert response.status_code == 403
    assert response.json()["detail"] == "url: robots.txt of 127.0.0.1 disallows fetching this URL"
    assert web.hits["/private/secret"] == 0
    assert backend.count("scraped_pages") == 0


def test_per_host_rate_limit(make_client, web):
    client = make_client(scraper_allowed_networks="127.0.0.0/8", scraper_host_rate_per_minute=2)
    fresh_rate_window()
    codes = [client.post("/api/v1/scrape", json={"url": f"{web.base_url}/article"}, headers=AUTH) for _ in range(3)]
    assert [r.status_code for r in codes] == [201, 201, 429]
    assert int(codes[2].headers["Retry-After"]) >= 1
    assert codes[2].json()["detail"].startswith("rate limit for host 127.0.0.1 exceeded: 2 requests per minute")


def test_size_and_time_limits(make_client, backend, web):
    client = make_client(scraper_allowed_networks="127.0.0.0/8", scraper_max_bytes=100_000, scraper_timeout_seconds=0.5)
    big = client.post("/api/v1/scrape", json={"url": f"{web.base_url}/big"}, headers=AUTH)
    assert big.status_code == 502
    assert big.json()["detail"] == "url: response is larger than the 100000-byte limit"
    slow = client.post("/api/v1/scrape", json={"url": f"{web.base_url}/slow"}, headers=AUTH)
    assert slow.status_code == 504
    assert slow.json()["detail"] == "url: no complete response within 0.5s"
    assert backend.count("scraped_pages") == 0


def test_upstream_errors_and_non_html(local_client, backend, web):
    missing = local_client.post("/api/v1/scrape", json={"url": f"{web.base_url}/nothing-here"}, headers=AUTH)
    assert missing.status_code == 502
    assert missing.json()["detail"] == "url: the site answered HTTP 404"
    image = local_client.post("/api/v1/scrape", json={"url": f"{web.base_url}/image"}, headers=AUTH)
    assert image.status_code == 422
    assert image.json()["detail"] == "url: unsupported content type 'image/png'; only HTML and text pages can be scraped"
    assert backend.count("scraped_pages") == 0


def test_scrape_needs_an_api_key(local_client, web):
    assert local_client.post("/api/v1/scrape", json={"url": f"{web.base_url}/article"}).status_code == 401
    assert sum(web.hits.values()) == 0
