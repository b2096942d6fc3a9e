"""Smoke test of a deployed stack, through its public route (what the pipeline runs after `pulumi up`).

    AQUASCENE_API_KEY=... python -m tooling.smoke https://api.staging.aquascene.example/api/v1/

1. health: the content listing answers 200 through the gateway (route, Service, pods and
   database all up), retried while a rollout settles;
2. one content round-trip: create a draft, read it back by id, delete it.
Exit code 0 on success, 1 with the failed step named otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Callable

API_KEY_ENV = "AQUASCENE_API_KEY"


class SmokeFailure(Exception):
    pass


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


def request(method: str, url: str, api_key: str, payload: Any = None, timeout: float = 15) -> Reply:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "X-API-Key": api_key, "Accept": "application/json",
        **({"Content-Type": "application/json"} if data is not None else {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            raw = response.read()
            return Reply(response.status, json.loads(raw) if raw else None)
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read().decode(errors="replace")[:300])
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        return Reply(0, str(error))


def smoke(api_url: str, api_key: str, attempts: int = 10, wait_seconds: float = 6,
          log: Callable[[str], None] = print) -> None:
    content = api_url.rstrip("/") + "/content"
    for attempt in range(1, attempts + 1):
        reply = request("GET", f"{content}?limit=1", api_key)
        if reply.status == 200:
            log(f"health: GET {content} -> 200")
            break
        log(f"health: attempt {attempt}/{attempts}: GET {content} -> {reply.status} {reply.body}")
        if attempt == attempts:
            raise SmokeFailure(f"health: {content} never answered 200 (last: {reply.status})")
        time.sleep(wait_seconds)

    title = f"smoke test {uuid.uuid4()}"
    created = request("POST", content, api_key, {"title": title, "body": "Deployed by the pipeline; deleted again.",
                                                  "content_type": "article", "tags": ["smoke-test"]})
    if created.status != 201 or not isinstance(created.body, dict) or "id" not in created.body:
        raise SmokeFailure(f"create: POST {content} -> {created.status} {created.body}")
    item = f"{content}/{created.body['id']}"
    try:
        read = request("GET", item, api_key)
        if read.status != 200 or not isinstance(read.body, dict) or read.body.get("title") != title:
            raise SmokeFailure(f"read back: GET {item} -> {read.status} {read.body}")
        log(f"round-trip: created and read back {item}")
    finally:
        deleted = request("DELETE", item, api_key)
        if deleted.status != 204:
            raise SmokeFailure(f"delete: DELETE {item} -> {deleted.status} {deleted.body}")
    log("smoke test passed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tooling.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("api_url", help="the stack's public API base, e.g. `pulumi stack output public_urls` .api")
    parser.add_argument("--attempts", type=int, default=10, help="health attempts while a rollout settles")
    args = parser.parse_args(argv)
    api_key = os.environ.get(API_KEY_ENV)
    if not api_key:
        print(f"smoke: set {API_KEY_ENV} (pulumi stack output api_key --show-secrets)", file=sys.stderr)
        return 2
    try:
        smoke(args.api_url, api_key, attempts=args.attempts)
    except SmokeFailure as failure:
        print(f"smoke test FAILED at {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
