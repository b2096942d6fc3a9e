"""Constants and small helpers shared by the engine tests (imported by name: the
test directory is on sys.path, as pytest's default import mode arranges)."""

from __future__ import annotations

import socket
import uuid

API_KEY = "test-api-key-0123456789"
AUTH = {"X-API-Key": API_KEY}


def db_id(backend_name: str, value: str) -> object:
    """A UUID as the database stores it (SQLite keeps 32 hex characters)."""
    uid = uuid.UUID(value)
    return uid.hex if backend_name == "embedded" else uid


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_rate_window(window: int = 60, margin: float = 3.0) -> None:
    """Wait out the end of a fixed rate-limit window so a test's requests share one window."""
    import time

    remaining = window - time.time() % window
    if remaining < margin:
        time.sleep(remaining + 0.05)


def stop_background_work(client) -> None:  # noqa: ANN001 - a TestClient of the engine
    """Stop the app's own background loops (the newsletter schedule, the Instagram worker, ...),
    for a test that drives that work by hand: a loop's next pass would race it for the same rows
    (the Instagram worker's first pass claims at once, whatever its interval)."""
    client.portal.call(client.app.state.services.stop_background)


def workers_of_our_own(client, count: int) -> list:  # noqa: ANN001 - a TestClient of the engine
    """`count` distribution workers driven by the test, alone: the app's own loops stopped first."""
    from app.distribution_worker import DistributionWorker

    stop_background_work(client)
    return [DistributionWorker(client.app.state.services) for _ in range(count)]
