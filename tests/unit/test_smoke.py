"""The pipeline's smoke test (tooling/smoke.py) against a stand-in for the public route."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from tooling.smoke import SmokeFailure, main, smoke

KEY = "k" * 48


class FakeApi(BaseHTTPRequestHandler):
    """Content listing, create, read and delete under /api/v1/content, as the content engine answers."""

    store: dict[str, dict] = {}
    broken: set[str] = set()  # methods that answer 503

    def _reply(self, status: int, body: object = None) -> None:
        raw = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self, method: str) -> None:
        if self.headers.get("X-API-Key") != KEY:
            return self._reply(401, {"detail": "invalid API key"})
        if method in self.broken:
            return self._reply(503, {"detail": "unavailable"})
        path = self.path.split("?")[0]
        if method == "GET" and path == "/api/v1/content":
            return self._reply(200, {"items": list(self.store.values())[:1]})
        if method == "POST" and path == "/api/v1/content":
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            item = {**body, "id": str(uuid.uuid4())}
            self.store[item["id"]] = item
            return self._reply(201, item)
        item_id = path.removeprefix("/api/v1/content/")
        if item_id not in self.store:
            return self._reply(404, {"detail": "not found"})
        if method == "GET":
            return self._reply(200, self.store[item_id])
        del self.store[item_id]
        return self._reply(204)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    FakeApi.store, FakeApi.broken = {}, set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/"
    server.shutdown()


def test_a_healthy_stack_passes_and_leaves_nothing_behind(api):
    lines: list[str] = []
    smoke(api, KEY, log=lines.append)
    assert lines[0].endswith("-> 200") and lines[-1] == "smoke test passed"
    assert FakeApi.store == {}


def test_a_route_that_never_answers_fails_health(api):
    FakeApi.broken = {"GET"}
    with pytest.raises(SmokeFailure, match="health: .* never answered 200 \\(last: 503\\)"):
        smoke(api, KEY, attempts=2, wait_seconds=0, log=lambda _: None)


def test_a_failing_write_fails_the_round_trip(api):
    FakeApi.broken = {"POST"}
    with pytest.raises(SmokeFailure, match="^create: POST .* -> 503"):
        smoke(api, KEY, log=lambda _: None)


def test_the_cli_needs_the_api_key_and_exits_by_the_result(api, monkeypatch, capsys):
    monkeypatch.delenv("AQUASCENE_API_KEY", raising=False)
    assert main([api]) == 2
    monkeypatch.setenv("AQUASCENE_API_KEY", "wrong")
    assert main([api, "--attempts", "1"]) == 1
    assert "smoke test FAILED at health" in capsys.readouterr().err
    monkeypatch.setenv("AQUASCENE_API_KEY", KEY)
    assert main([api]) == 0
