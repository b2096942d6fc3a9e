"""Polite, SSRF-safe page fetching for the web-scraper role.

* http(s) only; every hop's host is resolved once and each address must be
  public (or inside ``SCRAPER_ALLOWED_NETWORKS``); the connection goes to the
  checked address (no DNS rebinding between check and use).
* robots.txt (RFC 9309) is honoured and cached.
* per-host rate limit, response size limit, overall time limit.
"""

from __future__ import annotations

import html
import ipaddress
import re
import socket
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.robotparser import RobotFileParser

import anyio
import httpx

from app.errors import ApiError
from app.services import Services

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ROBOTS_MAX_BYTES = 512 * 1024
DISALLOW_ALL = "User-agent: *\nDisallow: /\n"
ALLOW_ALL = ""


@dataclass(frozen=True)
class Page:
    url: str
    final_url: str
    host: str
    status_code: int
    title: str | None
    excerpt: str | None
    body: bytes


def _address_kind(ip: IPAddress) -> str | None:
    """None when the address is publicly routable, else a description."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attr, kind in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_private", "private"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, attr):
            return kind
    return None if ip.is_global else "non-public"


async def resolve_allowed(services: Services, host: str, port: int) -> IPAddress:
    """Resolve ``host`` and return an address that may be contacted, or refuse."""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise ApiError(422, f"url: host {host!r} cannot be resolved") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    allowed = services.settings.allowed_networks
    for ip in addresses:
        kind = _address_kind(ip)
        if kind and not any(ip in net for net in allowed if ip.version == net.version):
            raise ApiError(
                400,
                f"url: {host} resolves to {ip}, a {kind} address; scraping it is not allowed",
            )
    return addresses[0]


async def _get(
    services: Services, client: httpx.AsyncClient, url: httpx.URL, ip: IPAddress, max_bytes: int
) -> tuple[int, httpx.Headers, bytes]:
    """GET ``url`` from the already-checked address ``ip``; body capped at ``max_bytes``."""
    target = url.copy_with(host=str(ip))
    headers = {
        "Host": url.netloc.decode("ascii"),
        "User-Agent": services.settings.scraper_user_agent,
        "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1",
    }
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    async with client.stream("GET", target, headers=headers, extensions=extensions) as response:
        chunks, total = [], 0
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > max_bytes:
                raise ApiError(502, f"url: response is larger than the {max_bytes}-byte limit")
            chunks.append(chunk)
        return response.status_code, response.headers, b"".join(chunks)


async def _robots_allows(
    services: Services, client: httpx.AsyncClient, url: httpx.URL, ip: IPAddress
) -> bool:
    origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
    key = services.cache_key("web-scraper", "robots", origin)
    cached = await services.kv.get(key)
    if cached is None:
        ttl = 3600
        try:
            status, _, body = await _get(services, client, httpx.URL(origin + "/robots.txt"), ip, ROBOTS_MAX_BYTES)
            if 200 <= status < 300:
                text = body.decode("utf-8", errors="replace")
            elif 300 <= status < 500:
                text = ALLOW_ALL  # RFC 9309: unavailable robots.txt -> no restrictions
            else:
                text, ttl = DISALLOW_ALL, 300  # unreachable -> assume complete disallow
        except (httpx.HTTPError, ApiError):
            text, ttl = DISALLOW_ALL, 300
        cached = text.encode()
        await services.kv.set(key, cached, ttl)
    parser = RobotFileParser()
    parser.parse(cached.decode("utf-8", errors="replace").splitlines())
    agent = services.settings.scraper_user_agent.split("/", 1)[0]
    return parser.can_fetch(agent, str(url))


class _Extractor(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self.meta: dict[str, str] = {}
        self.text: list[str] = []
        self._in_title = False
        self._skip_depth = 0
        self._title_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag == "meta":
            values = {k.lower(): (v or "") for k, v in attrs}
            name = (values.get("name") or values.get("property") or "").lower()
            if name in ("description", "og:description", "og:title") and values.get("content"):
                self.meta.setdefault(name, values["content"])
        if tag in self.SKIP:
            self._skip_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            self.title = self.title or " ".join("".join(self._title_parts).split()) or None
        if tag in self.SKIP and self._skip_depth:
            self._skip_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)
        elif not self._skip_depth and data.strip():
            self.text.append(data.strip())


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


def extract(body: bytes, content_type: str) -> tuple[str | None, str | None]:
    charset = "utf-8"
    match = re.search(r"charset=([\w-]+)", content_type, re.I)
    if match:
        charset = match.group(1)
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    if "html" not in content_type.lower():
        return None, _shorten(text, 300) or None
    parser = _Extractor()
    parser.feed(text)
    parser.close()
    title = parser.title or parser.meta.get("og:title")
    excerpt = parser.meta.get("description") or parser.meta.get("og:description") or " ".join(parser.text)
    return (
        _shorten(html.unescape(title), 500) if title else None,
        _shorten(html.unescape(excerpt), 300) if excerpt else None,
    )


def _check_url(url: httpx.URL) -> None:
    if url.scheme not in ("http", "https"):
        raise ApiError(422, "url: URL scheme should be 'http' or 'https'")
    if not url.host:
        raise ApiError(422, "url: URL must have a host")


async def fetch_page(services: Services, url: str) -> Page:
    settings = services.settings
    current = httpx.URL(url)
    first_host = current.host
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(settings.scraper_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
    ) as client:
        try:
            with anyio.fail_after(settings.scraper_timeout_seconds):
                for _hop in range(settings.scraper_max_redirects + 1):
                    _check_url(current)
                    port = current.port or (443 if current.scheme == "https" else 80)
                    ip = await resolve_allowed(services, current.host, port)
                    if not await _robots_allows(services, client, current, ip):
                        raise ApiError(403, f"url: robots.txt of {current.host} disallows fetching this URL")
                    limit = await services.limiter.hit(f"scrape-host:{current.host}", settings.scraper_host_rate_per_minute)
                    if not limit.allowed:
                        raise ApiError(
                            429,
                            f"rate limit for host {current.host} exceeded: "
                            f"{settings.scraper_host_rate_per_minute} requests per minute; retry in {limit.retry_after}s",
                            {"Retry-After": str(limit.retry_after)},
                        )
                    status, headers, body = await _get(services, client, current, ip, settings.scraper_max_bytes)
                    if status in (301, 302, 303, 307, 308) and "location" in headers:
                        current = current.join(headers["location"])
                        continue
                    break
                else:
                    raise ApiError(502, f"url: more than {settings.scraper_max_redirects} redirects")
        except TimeoutError:
            raise ApiError(504, f"url: no complete response within {settings.scraper_timeout_seconds:g}s") from None
        except httpx.TimeoutException:
            raise ApiError(504, f"url: no complete response within {settings.scraper_timeout_seconds:g}s") from None
        except httpx.HTTPError as exc:
            raise ApiError(502, f"url: fetch failed ({exc.__class__.__name__})") from None

    if not 200 <= status < 300:
        raise ApiError(502, f"url: the site answered HTTP {status}")
    content_type = headers.get("content-type", "text/html")
    if not re.match(r"\s*(text/html|application/xhtml\+xml|text/plain)", content_type, re.I):
        raise ApiError(422, f"url: unsupported content type {content_type.split(';')[0]!r}; only HTML and text pages can be scraped")
    title, excerpt = extract(body, content_type)
    return Page(url, str(current), first_host, status, title, excerpt, body)
