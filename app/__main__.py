"""Command line: ``python -m app migrate | serve | healthcheck``."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

from app.settings import SettingsError, load_settings


def cmd_migrate(args: argparse.Namespace) -> int:
    from app import migrate

    settings = load_settings()
    url = settings.resolved_database_url
    migrate.upgrade(url, args.revision)
    print(f"database migrated to {migrate.current_revision(url)} (head {migrate.head_revision()})")
    return 0


def cmd_serve(_: argparse.Namespace) -> int:
    import uvicorn

    settings = load_settings()
    uvicorn.run(
        "app.main:app",
        host=settings.host,
        port=settings.resolved_port,
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=20,
    )
    return 0


def cmd_healthcheck(_: argparse.Namespace) -> int:
    port = int(os.environ.get("PORT") or load_settings().resolved_port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="AquaScene content engine")
    sub = parser.add_subparsers(dest="command", required=True)
    migrate = sub.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.set_defaults(func=cmd_migrate)
    sub.add_parser("serve", help="run the HTTP server for SERVICE_ROLE").set_defaults(func=cmd_serve)
    sub.add_parser("healthcheck", help="exit 0 when /health answers 200").set_defaults(func=cmd_healthcheck)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
