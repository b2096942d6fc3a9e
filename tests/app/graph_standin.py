"""A local stand-in of the Instagram Graph API's content-publishing endpoints.

It implements what the engine calls, with the documented shapes: containers
(``POST /{ig-user-id}/media``, which fetches ``image_url`` like Instagram does,
``GET /{container-id}?fields=status_code``), ``POST /{ig-user-id}/media_publish``,
``GET /{media-id}?fields=permalink``, ``GET /{ig-user-id}/media``,
``GET /{ig-user-id}/content_publishing_limit`` and the error object
``{"error": {"message", "type", "code", "error_subcode", "is_transient", "fbtrace_id"}}``.
Scenarios are switched on through :class:`GraphState`; every call is counted.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

VERSION = "v26.0"
USER_ID = "17841400000000001"
TOKEN = "standin-token-0123456789"

ErrorReply = tuple[int, dict[str, Any]]


def graph_error(status: int, message: str, code: int, *, type_: str = "OAuthException",
                subcode: int | None = None, transient: bool | None = None) -> ErrorReply:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code, "fbtrace_id": "AbCdEfGhIjK"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient is not None:
        error["is_transient"] = transient
    return status, {"error": error}


RATE_LIMITED = graph_error(400, "(#4) Application request limit reached", 4, transient=True)
USER_RATE_LIMITED = graph_error(400, "(#17) User request limit reached", 17, transient=True)
TRANSIENT = graph_error(500, "An unexpected error has occurred. Please retry your request later.", 2, transient=True)
TOKEN_EXPIRED = graph_error(
    400, "Error validating access token: Session has expired on Friday, 04-Dec-26 10:00:00 PST.", 190, subcode=463)
NO_PERMISSION = graph_error(403, "(#10) Application does not have permission for this action", 10)


@dataclass
class GraphState:
    quota_used: int = 0
    quota_total: int = 50
    in_progress_polls: int = 1  # status polls answering IN_PROGRESS before FINISHED; -1: forever
    # Seconds each media_publish call (in order) waits before answering: longer than the
    # engine's timeout makes a publish that happened but whose answer never arrived.
    publish_delays: list[float] = field(default_factory=list)
    # Error replies queued per call kind (limit, create, status, publish, permalink, media_list).
    fail: dict[str, list[ErrorReply]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 17900000000000000

    def new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def reset(self) -> None:
        with self.lock:
            self.quota_used, self.quota_total, self.in_progress_polls = 0, 50, 1
            self.publish_delays.clear()
            self.fail.clear()
            self.calls.clear()
            self.containers.clear()
            self.media.clear()


class _Handler(BaseHTTPRequestHandler):
    state: GraphState

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        state: GraphState = self.server.state  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if not parts or parts[0] != VERSION:
            self._reply(400, graph_error(400, "Unknown path components", 2500)[1])
            return
        form: dict[str, str] = {}
        if method == "POST":
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            form = {k: v[0] for k, v in parse_qs(raw).items()}
        node, edge = parts[1], (parts[2] if len(parts) > 2 else "")
        kind = {
            ("GET", "content_publishing_limit"): "limit",
            ("POST", "media"): "create",
            ("POST", "media_publish"): "publish",
            ("GET", "media"): "media_list",
        }.get((method, edge))
        if kind is None and method == "GET" and not edge:
            kind = "status" if node in state.containers else "permalink"
        with state.lock:
            state.calls[kind or "unknown"] += 1
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._reply(*graph_error(400, "Invalid OAuth access token - Cannot parse access token", 190))
                return
            queued = state.fail.get(kind or "")
            if queued:
                self._reply(*queued.pop(0))
                return
        handler = getattr(self, f"_{kind}", None)
        if handler is None or (kind in ("limit", "create", "publish", "media_list") and node != USER_ID):
            self._reply(*graph_error(400, f"Unsupported {method} request", 100, subcode=33))
            return
        handler(state, node, form)

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    # --- endpoints ---------------------------------------------------------------------

    def _limit(self, state: GraphState, _: str, __: dict[str, str]) -> None:
        self._reply(200, {"data": [{"quota_usage": state.quota_used,
                                    "config": {"quota_total": state.quota_total, "quota_duration": 86400}}]})

    def _create(self, state: GraphState, _: str, form: dict[str, str]) -> None:
        try:  # Instagram fetches the image from the URL it is given
            with urllib.request.urlopen(form.get("image_url", ""), timeout=5) as response:  # noqa: S310
                image = response.read()
        except Exception:  # noqa: BLE001
            image = b""
        if not image.startswith(b"\xff\xd8\xff"):
            self._reply(*graph_error(400, "Only photo or video can be accepted as media type.", 9004,
                                     subcode=2207052))
            return
        with state.lock:
            container_id = state.new_id()
            state.containers[container_id] = {**form, "image": image, "polls": 0, "published": False}
        self._reply(200, {"id": container_id})

    def _status(self, state: GraphState, node: str, _: dict[str, str]) -> None:
        with state.lock:
            container = state.containers[node]
            if container["published"]:
                status = "PUBLISHED"
            elif state.in_progress_polls < 0 or container["polls"] < state.in_progress_polls:
                status = "IN_PROGRESS"
            else:
                status = "FINISHED"
            container["polls"] += 1
        self._reply(200, {"status_code": status, "id": node})

    def _publish(self, state: GraphState, _: str, form: dict[str, str]) -> None:
        with state.lock:
            container = state.containers.get(form.get("creation_id", ""))
            if container is None or container["published"]:
                reply = graph_error(400, "The requested resource does not exist", 24, subcode=2207006)
            else:
                media_id = state.new_id()
                container["published"] = True
                state.media[media_id] = {
                    "id": media_id, "caption": container.get("caption"), "container": form["creation_id"],
                    "permalink": f"https://www.instagram.com/p/{media_id}/",
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime()),
                }
                reply = (200, {"id": media_id})
            delay = state.publish_delays.pop(0) if state.publish_delays else 0.0
        time.sleep(delay)  # the post is out; the answer may arrive after the client gave up
        self._reply(*reply)

    def _permalink(self, state: GraphState, node: str, _: dict[str, str]) -> None:
        media = state.media.get(node)
        if media is None:
            self._reply(*graph_error(400, "Unsupported get request", 100, subcode=33))
            return
        self._reply(200, {"id": node, "permalink": media["permalink"]})

    def _media_list(self, state: GraphState, _: str, __: dict[str, str]) -> None:
        with state.lock:
            items = [{k: m[k] for k in ("id", "caption", "permalink", "timestamp")} for m in state.media.values()]
        self._reply(200, {"data": list(reversed(items))})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the publish timeout scenario) is expected


@dataclass
class GraphStandIn:
    url: str  # with the API version, as INSTAGRAM_GRAPH_URL
    state: GraphState
    server: _Server


def start_graph_standin() -> GraphStandIn:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = GraphState()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return GraphStandIn(f"http://127.0.0.1:{server.server_address[1]}/{VERSION}", server.state, server)  # type: ignore[attr-defined]
