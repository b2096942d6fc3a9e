"""Command line: ``python -m app migrate | serve | healthcheck | admin create-user|disable-user|reset-password``."""

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


def _read_password(args: argparse.Namespace) -> str:
    """From stdin (--password-stdin, for scripts) or typed twice at a prompt."""
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat the password: "):
        raise ValueError("the two passwords differ")
    return first


def cmd_admin(args: argparse.Namespace) -> int:
    """Account administration straight against DATABASE_URL (audited as `cli`)."""
    import asyncio
    from types import SimpleNamespace

    from app.db import Database
    from app.domain import users
    from app.domain.actors import Actor
    from app.errors import ApiError

    from sqlalchemy.exc import SQLAlchemyError

    settings = load_settings()
    actor = Actor(name=f"cli:{os.environ.get('USER', 'unknown')}")
    if settings.should_auto_migrate:
        from app import migrate

        migrate.upgrade(settings.resolved_database_url)

    async def run() -> str:
        services = SimpleNamespace(settings=settings, db=Database(settings))
        try:
            if args.admin_command == "create-user":
                user = await users.create_user(services, args.email, args.name, args.role, _read_password(args), actor)
                return f"created {user.role} account {user.email}"
            if args.admin_command == "disable-user":
                user = await users.set_disabled(services, args.email, True, actor)
                return f"disabled {user.email}; their sessions have ended"
            user = await users.reset_password(services, args.email, _read_password(args), actor)
            return f"password of {user.email} reset; their sessions have ended"
        finally:
            await services.db.dispose()

    try:
        print(asyncio.run(run()))
    except ApiError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"error: database unavailable or not migrated (run `python -m app migrate`): {exc.__class__.__name__}: "
              f"{str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="AquaScene content engine")
    sub = parser.add_subparsers(dest="command", required=True)
    migrate = sub.add_parser("migrate", help="apply database migrations (DATABASE_URL)")
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.set_defaults(func=cmd_migrate)
    sub.add_parser("serve", help="run the HTTP server for SERVICE_ROLE").set_defaults(func=cmd_serve)
    sub.add_parser("healthcheck", help="exit 0 when /health answers 200").set_defaults(func=cmd_healthcheck)
    admin = sub.add_parser("admin", help="dashboard accounts (exit 1 when refused, 2 on bad settings)")
    admin.set_defaults(func=cmd_admin)
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_sub.add_parser("create-user", help="create an account")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True, help="display name")
    create.add_argument("--role", required=True, choices=["admin", "editor", "viewer"])
    disable = admin_sub.add_parser("disable-user", help="disable an account and end its sessions")
    disable.add_argument("--email", required=True)
    reset = admin_sub.add_parser("reset-password", help="set a new password and end the account's sessions")
    reset.add_argument("--email", required=True)
    for parser_ in (create, reset):
        parser_.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
