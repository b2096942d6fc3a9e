"""The OpenAPI document is the contract: a property-based fuzzer (schemathesis), driven
only by /openapi.json, finds no difference between what the document promises and what
the engine does.

Every check schemathesis has, positive and negative data, 40 examples per operation,
in-process against the ASGI app on the embedded backend (SQLite file, in-process
cache, local directory store) with a local SMTP server. Instagram publishing is
configured (so its endpoints answer rather than 503) against a Graph API URL where
nothing listens: a fuzzer must never post anywhere. The scraping operation is left
out: it fetches the URL it is given, and a fuzzer must never reach outside hosts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.main import create_app
from app.routers.content import ALLOWED_ASSET_TYPES
from app.settings import load_settings
from engine_support import API_KEY, AUTH, free_port

# 40 in CI; raise it (CONTRACT_EXAMPLES=500) for a deeper search while changing the API.
EXAMPLES_PER_OPERATION = int(os.environ.get("CONTRACT_EXAMPLES", "40"))

CONFIG = f"""
[generation]
mode = "all"
max-examples = {EXAMPLES_PER_OPERATION}

# PATCH answers a missing If-Match with 428 Precondition Required (RFC 6585), the status
# made for exactly that, on top of the statuses this check accepts by default.
[checks.missing_required_header]
expected-statuses = [400, 401, 403, 406, 415, 422, 428]
"""


_DATA_DIR = tempfile.mkdtemp(prefix="aquascene-contract-")


def _start_mail_server():  # noqa: ANN202
    """Subscriptions mail a confirmation: a local SMTP server receives it. Started at
    collection, with the app, so no other test can take its port in between."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller


_MAIL_SERVER = _start_mail_server()
_SMTP_PORT = _MAIL_SERVER.port


def _contract_app():
    settings_ = load_settings(
        service_role="all",
        environment="test",
        api_keys=API_KEY,
        data_dir=_DATA_DIR,
        database_url="",
        redis_url=None,
        storage_backend=None,
        s3_endpoint=None,
        smtp_host="127.0.0.1",
        smtp_port=_SMTP_PORT,
        smtp_starttls=False,
        smtp_ssl=False,
        generation_provider="local",
        scraper_allowed_networks="",
        cors_origins="",
        # The fuzzer sends thousands of requests; the limiter's 429 is documented, not under test here.
        rate_limit_per_minute=1_000_000,
        generate_rate_limit_per_minute=1_000_000,
        max_asset_bytes=64 * 1024,
        instagram_access_token="contract-test-token",
        instagram_user_id="17841400000000001",
        instagram_graph_url=f"http://127.0.0.1:{free_port()}/v26.0",
    )
    return create_app(settings_, configure_logs=False)


# Loaded at collection (schemathesis parametrizes from it); the app starts on first request.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", _contract_app(), config=schemathesis.Config.from_str(CONFIG)
).exclude(tag="scraping")


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _MAIL_SERVER.stop()
    shutil.rmtree(_DATA_DIR, ignore_errors=True)


# Asset parts are sent as the bytes drawn for them (schemathesis knows no encoder for these
# media types), like application/octet-stream.
schemathesis.serializer.alias([t for t in ALLOWED_ASSET_TYPES if not t.startswith("text/")], "application/octet-stream")


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_the_engine_keeps_its_openapi_contract(case):
    # The key as a client sends it; the auth checks remove or replace it to see it enforced.
    case.call_and_validate(headers=AUTH)


def test_every_operation_documents_its_errors_with_the_one_error_model(tmp_path):
    app = create_app(
        load_settings(service_role="all", environment="test", api_keys=API_KEY, data_dir=str(tmp_path),
                      database_url="", redis_url=None),
        configure_logs=False,
    )
    doc = app.openapi()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if path in ("/health", "/ready"):
                continue
            errors = {code: r for code, r in operation["responses"].items() if code >= "400"}
            assert "422" in errors and "429" in errors and "503" in errors, (method, path, sorted(errors))
            for code, response in errors.items():
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorOut", (method, path, code)
            for code in ("429", "503"):
                assert errors[code]["headers"]["Retry-After"]["required"] is True, (method, path, code)
