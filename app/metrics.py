"""Prometheus metrics (names from the operations guide) and the request middleware."""

from __future__ import annotations

import logging
import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by method, route template and status.", ["method", "path", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration by method and route template.",
    ["method", "path"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
GENERATIONS = Counter(
    "content_generation_total", "Content generation attempts.", ["provider", "content_type", "outcome"]
)
GENERATION_DURATION = Histogram(
    "content_generation_duration_seconds",
    "Time spent in the generation provider.",
    ["provider"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
QUALITY_SCORE = Gauge(
    "content_quality_score", "Quality score (0-10) of the most recently generated content.", ["content_type"]
)
AI_COST = Counter("ai_api_cost_total", "Generation provider cost in USD.", ["provider", "model"])
INSTAGRAM_PUBLISH = Counter(
    "instagram_publish_total",
    "Instagram publishing attempts by outcome: published, failed (permanently: a person must act), "
    "retried (transient or rate-limited), deferred (the account's publishing limit).",
    ["outcome"],
)
for _outcome in ("published", "failed", "retried", "deferred"):
    INSTAGRAM_PUBLISH.labels(_outcome)  # every series exists from the start, so increase() sees the first one

UNMATCHED = "<unmatched>"
log = logging.getLogger("app.access")


def metrics_response(_: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


class ObservabilityMiddleware:
    """Counts and times every request by route template; sets X-Request-ID; logs access."""

    def __init__(self, app: ASGIApp, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests
        # Label lookups cached per (method, route template, status): bounded by the routes.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value[:128]
                break
        if request_id is None:
            request_id = uuid.uuid4().hex.encode()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            path = getattr(route, "path", None) or UNMATCHED
            method = scope["method"]
            series = self._series.get((method, path, status))
            if series is None:
                series = (HTTP_REQUESTS.labels(method, path, str(status)), HTTP_DURATION.labels(method, path))
                self._series[(method, path, status)] = series
            series[0].inc()
            series[1].observe(elapsed)
            if self.log_requests and log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %s",
                    method,
                    scope["path"],
                    status,
                    extra={
                        "request_id": request_id.decode(errors="replace"),
                        "route": path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
