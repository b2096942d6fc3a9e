"""Instagram through the Graph API's content-publishing flow, and what the API would refuse.

The flow (developers.facebook.com, Instagram Platform, "Content Publishing"):
``POST /{ig-user-id}/media`` (image_url, caption, alt_text) creates a container;
``GET /{container-id}?fields=status_code`` until FINISHED; ``POST
/{ig-user-id}/media_publish`` (creation_id) publishes it and answers the media
id. ``GET /{ig-user-id}/content_publishing_limit`` tells how many posts the
rolling 24-hour window still takes.

Errors come as ``{"error": {"message", "type", "code", "error_subcode",
"is_transient", "fbtrace_id"}}`` and are sorted here into transient (retry with
backoff), rate-limited (retry later), and permanent (a person must act).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from app.settings import Settings

# What the Graph API accepts for an image post (IG User Media reference).
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MIN_ASPECT, MAX_ASPECT = 4 / 5, 1.91
MAX_CAPTION_CHARS = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
# How many times one Graph API call is tried before the attempt is given up (the worker retries later).
CALL_ATTEMPTS = 3

HASHTAG_RE = re.compile(r"(?<![\w#])#\w+")
MENTION_RE = re.compile(r"(?<![\w@])@[\w.]+")

# Throttling: API Too Many Calls (4), User Too Many Calls (17), Page rate limit (32),
# custom rate limit (613), application limit (341), and the Instagram business use case limits.
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, 80001, 80002})
TRANSIENT_CODES = frozenset({1, 2})  # API Unknown, API Service: temporary, retry
# The account's publishing limit reached (code 9 with this subcode): wait for the window.
PUBLISHING_LIMIT_SUBCODE = 2207042
ACCESS_TOKEN_CODES = frozenset({102, 190})


class GraphError(Exception):
    """A Graph API call failed. ``kind``: transient, rate_limited, timeout or permanent."""

    def __init__(self, kind: str, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.kind != "permanent"


def classify(status: int, body: Any) -> GraphError:
    """The GraphError for an error response (its documented JSON shape, or anything else)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        kind = "transient" if status >= 500 or status == 429 else "permanent"
        return GraphError(kind, f"Graph API answered HTTP {status} without an error object")
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode")
    message = str(error.get("error_user_msg") or error.get("message") or "no message")[:500]
    described = f"{message} (code {code}{f', subcode {subcode}' if subcode else ''}, fbtrace_id {error.get('fbtrace_id')})"
    if code in RATE_LIMIT_CODES or subcode == PUBLISHING_LIMIT_SUBCODE:
        return GraphError("rate_limited", f"rate limited: {described}", code)
    if code in ACCESS_TOKEN_CODES or (error.get("type") == "OAuthException" and code is None):
        return GraphError("permanent", f"access token expired or invalid, rotate it: {described}", code)
    if code == 10 or (code is not None and 200 <= code <= 299):
        return GraphError("permanent", f"permission missing (instagram_content_publish?): {described}", code)
    if error.get("is_transient") is True or code in TRANSIENT_CODES or status >= 500:
        return GraphError("transient", f"temporary Graph API error: {described}", code)
    return GraphError("permanent", f"refused by the Graph API (invalid media or request): {described}", code)


@dataclass(frozen=True)
class PublishingLimit:
    used: int
    total: int

    @property
    def exhausted(self) -> bool:
        return self.used >= self.total


class GraphClient:
    """The few Graph API calls of the publishing flow, each retried on transient errors."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        assert settings.instagram_access_token and settings.instagram_user_id
        self.base = settings.instagram_graph_url
        self.user_id = settings.instagram_user_id
        self.retry_seconds = settings.instagram_retry_seconds
        self.container_wait = settings.instagram_container_wait_seconds
        # The token travels in a header, never in a URL (URLs end up in logs).
        self.http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.instagram_timeout_seconds, connect=5.0),
            headers={"Authorization": f"Bearer {settings.instagram_access_token}"},
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, *, data: dict[str, str] | None = None,
                    params: dict[str, str] | None = None, retry_timeouts: bool = True) -> dict[str, Any]:
        """One call, retried with exponential backoff while its error is transient or rate-limited.

        ``retry_timeouts=False`` for calls that act (media_publish): after a timeout nobody
        knows whether it acted, so the caller checks before anything is sent again.
        """

        def should_retry(exc: BaseException) -> bool:
            return isinstance(exc, GraphError) and exc.retryable and (retry_timeouts or exc.kind != "timeout")

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(should_retry),
            stop=stop_after_attempt(CALL_ATTEMPTS),
            wait=wait_exponential(multiplier=self.retry_seconds, max=60),
            reraise=True,
        ):
            with attempt:
                return await self._send(method, path, data=data, params=params)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, method: str, path: str, *, data: dict[str, str] | None,
                    params: dict[str, str] | None) -> dict[str, Any]:
        try:
            response = await self.http.request(method, f"{self.base}/{path}", data=data, params=params)
        except httpx.TimeoutException as exc:
            raise GraphError("timeout", f"Graph API {method} /{path} timed out ({exc.__class__.__name__})") from exc
        except httpx.TransportError as exc:
            raise GraphError("transient", f"Graph API unreachable: {exc.__class__.__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400 or (isinstance(body, dict) and "error" in body):
            raise classify(response.status_code, body)
        if not isinstance(body, dict):
            raise GraphError("transient", f"Graph API answered HTTP {response.status_code} with a non-JSON body")
        return body

    async def publishing_limit(self) -> PublishingLimit:
        body = await self._call("GET", f"{self.user_id}/content_publishing_limit",
                                params={"fields": "quota_usage,config"})
        entry = (body.get("data") or [{}])[0]
        return PublishingLimit(int(entry.get("quota_usage", 0)), int((entry.get("config") or {}).get("quota_total", 50)))

    async def create_container(self, image_url: str, caption: str, alt_text: str | None) -> str:
        form = {"image_url": image_url, "caption": caption}
        if alt_text:
            form["alt_text"] = alt_text
        return str((await self._call("POST", f"{self.user_id}/media", data=form))["id"])

    async def container_status(self, container_id: str) -> str:
        body = await self._call("GET", container_id, params={"fields": "status_code,status"})
        status = str(body.get("status_code", ""))
        if status == "ERROR":
            raise GraphError("permanent", f"container {container_id} failed: {body.get('status') or 'ERROR'} "
                                          "(the image could not be processed)")
        return status

    async def wait_until_ready(self, container_id: str) -> str:
        """Poll the container with backoff until it leaves IN_PROGRESS, for at most the configured wait."""
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_result(lambda status: status == "IN_PROGRESS"),
                stop=stop_after_delay(self.container_wait),
                wait=wait_exponential(multiplier=self.retry_seconds, max=60),
            ):
                with attempt:
                    status = await self.container_status(container_id)
                if not attempt.retry_state.outcome.failed:
                    attempt.retry_state.set_result(status)
        except RetryError:
            raise GraphError("transient", f"container {container_id} still IN_PROGRESS after "
                                          f"{self.container_wait:g}s") from None
        return status

    async def publish(self, container_id: str) -> str:
        body = await self._call("POST", f"{self.user_id}/media_publish", data={"creation_id": container_id},
                                retry_timeouts=False)
        return str(body["id"])

    async def permalink(self, media_id: str) -> str | None:
        return (await self._call("GET", media_id, params={"fields": "permalink"})).get("permalink")

    async def recent_media(self) -> list[dict[str, Any]]:
        body = await self._call("GET", f"{self.user_id}/media",
                                params={"fields": "id,caption,permalink,timestamp", "limit": "25"})
        return [m for m in body.get("data") or [] if isinstance(m, dict)]


# --- what the API would refuse, checked before any call -------------------------------------


def caption_problem(caption: str) -> str | None:
    """Why Instagram would refuse this caption, or None."""
    if len(caption) > MAX_CAPTION_CHARS:
        return f"{len(caption)} characters; Instagram takes at most {MAX_CAPTION_CHARS}"
    hashtags = len(HASHTAG_RE.findall(caption))
    if hashtags > MAX_HASHTAGS:
        return f"{hashtags} hashtags; Instagram takes at most {MAX_HASHTAGS}"
    mentions = len(MENTION_RE.findall(caption))
    if mentions > MAX_MENTIONS:
        return f"{mentions} @mentions; Instagram takes at most {MAX_MENTIONS}"
    return None


def image_problem(data: bytes) -> str | None:
    """Why Instagram would refuse this image, or None: JPEG, at most 8 MB, aspect ratio 4:5 to 1.91:1."""
    if len(data) > MAX_IMAGE_BYTES:
        return f"the image has more than {MAX_IMAGE_BYTES} bytes (8 MB), Instagram's limit"
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return "not a readable image; Instagram takes JPEG images"
    if kind != "JPEG":
        return f"a {kind} image; Instagram takes JPEG images only"
    ratio = width / height if height else 0
    if not MIN_ASPECT - 1e-9 <= ratio <= MAX_ASPECT + 1e-9:
        return (f"aspect ratio {width}x{height} ({ratio:.2f}:1) is outside Instagram's 4:5 (0.80:1) "
                f"to 1.91:1; crop the image")
    return None
