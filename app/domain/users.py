"""Dashboard accounts: Argon2id passwords, roles, disabling, sign-in with throttling.

Sign-in throttling counts failures per account (the email's hash, whether or not such
an account exists) and per client IP in the engine's key-value store. After a few
free failures each further one adds a growing delay (5 s, 10 s, 20 s ... capped at 15 min), during
which every attempt is refused with the same message: nothing tells an unknown
address from a known one. Like the API rate limits it fails open while Redis is down.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from dataclasses import dataclass

import anyio
import email_validator
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.domain import audit
from app.domain.actors import Actor
from app.domain.permissions import AccountRole, Action, require
from app.errors import ApiError
from app.models import User, utcnow

log = logging.getLogger("app.users")

# argon2-cffi's defaults are RFC 9106's low-memory profile, Argon2id.
HASHER = PasswordHasher()
# Verified against for unknown accounts, so they cost the same time as known ones.
_DUMMY_HASH = HASHER.hash("no account has this password")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024

WRONG_CREDENTIALS = "Wrong email or password."
DISABLED = "This account is disabled. Ask an admin to enable it."
THROTTLED = "Too many failed sign-in attempts. Wait {seconds} seconds, then try again."

FAILURE_WINDOW = 15 * 60
FREE_FAILURES = {"account": 3, "ip": 10}
FIRST_DELAY = 5
MAX_DELAY = 15 * 60


@dataclass(frozen=True)
class UserView:
    id: uuid.UUID
    email: str
    display_name: str
    role: str
    disabled: bool


def normalise_email(value: str) -> str:
    try:
        return email_validator.validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except email_validator.EmailNotValidError as exc:
        raise ApiError(422, f"email: not a valid email address: {exc}") from None


def check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ApiError(422, f"password: must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long")


def check_role(role: str) -> AccountRole:
    try:
        return AccountRole(role)
    except ValueError:
        raise ApiError(422, f"role: must be one of {', '.join(r.value for r in AccountRole)}, not {role!r}") from None


def check_display_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 100 or any(ord(c) < 32 for c in name):
        raise ApiError(422, "display_name: must be 1 to 100 characters on one line")
    return name


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(HASHER.hash, password)


async def _verify(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return HASHER.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(verify)


async def count(services) -> int:  # noqa: ANN001
    async with services.db.session() as session:
        return await session.scalar(select(func.count()).select_from(User)) or 0


async def list_users(services) -> list[User]:  # noqa: ANN001
    async with services.db.session() as session:
        return list((await session.scalars(select(User).order_by(User.email))).all())


async def get(services, user_id: uuid.UUID) -> User | None:  # noqa: ANN001
    async with services.db.session() as session:
        return await session.get(User, user_id)


async def create_user(
    services, email: str, display_name: str, role: str, password: str, actor: Actor  # noqa: ANN001
) -> User:
    if actor.is_person:
        require(actor, Action.MANAGE_USERS)
    email = normalise_email(email)
    display_name = check_display_name(display_name)
    account_role = check_role(role)
    check_password(password)
    now = utcnow()
    user = User(
        id=uuid.uuid4(), email=email, display_name=display_name, role=account_role.value,
        password_hash=await hash_password(password), disabled=False,
        created_at=now, updated_at=now, sessions_valid_after=now,
    )
    try:
        async with services.db.transaction() as session:
            session.add(user)
            await session.flush()
            await audit.record(session, actor, "user.create", "user", user.id, email=email, role=account_role.value)
    except IntegrityError:
        raise ApiError(409, f"email: an account for {email} already exists") from None
    return user


async def _change(services, actor: Actor, email_or_id: str | uuid.UUID, action: str, **changes) -> User:  # noqa: ANN001, ANN003
    if actor.is_person:
        require(actor, Action.MANAGE_USERS)
    async with services.db.transaction() as session:
        if isinstance(email_or_id, uuid.UUID):
            user = await session.get(User, email_or_id, with_for_update=True)
        else:
            user = await session.scalar(select(User).where(User.email == normalise_email(email_or_id)).with_for_update())
        if user is None:
            raise ApiError(404, f"no account {email_or_id}")
        losing_admin = user.role == "admin" and not user.disabled and (
            changes.get("disabled") is True or changes.get("role", "admin") != "admin"
        )
        if losing_admin:
            admins = await session.scalar(
                select(func.count()).select_from(User).where(User.role == "admin", User.disabled.is_(False))
            )
            if (admins or 0) <= 1:
                raise ApiError(409, f"{user.email} is the last active admin; make another admin first")
        now = utcnow()
        for name, value in changes.items():
            setattr(user, name, value)
        user.updated_at = now
        if changes.get("disabled") is True or "password_hash" in changes or "role" in changes:
            user.sessions_valid_after = now  # signs the person out everywhere
        detail = {k: v for k, v in changes.items() if k != "password_hash"}
        await audit.record(session, actor, action, "user", user.id, email=user.email, **detail)
        return user


async def set_role(services, user_id: uuid.UUID | str, role: str, actor: Actor) -> User:  # noqa: ANN001
    return await _change(services, actor, user_id, "user.role", role=check_role(role).value)


async def set_disabled(services, user_id: uuid.UUID | str, disabled: bool, actor: Actor) -> User:  # noqa: ANN001
    return await _change(services, actor, user_id, "user.disable" if disabled else "user.enable", disabled=disabled)


async def reset_password(services, user_id: uuid.UUID | str, password: str, actor: Actor) -> User:  # noqa: ANN001
    check_password(password)
    return await _change(services, actor, user_id, "user.reset_password", password_hash=await hash_password(password))


# --- sign-in -------------------------------------------------------------------------------


class SignInRefused(ApiError):
    def __init__(self, message: str, status_code: int = 401, retry_after: int | None = None) -> None:
        super().__init__(status_code, message, {"Retry-After": str(retry_after)} if retry_after else None)


def _throttle_keys(email: str, client_ip: str) -> dict[str, str]:
    account = hashlib.sha256(email.encode()).hexdigest()[:32]
    return {"account": f"throttle:signin:account:{account}", "ip": f"throttle:signin:ip:{client_ip}"}


async def _throttled_for(services, keys: dict[str, str]) -> int:  # noqa: ANN001
    now = time.time()
    waits = []
    for key in keys.values():
        until = await services.kv.get(f"{key}:until")
        if until is not None and float(until) > now:
            waits.append(math.ceil(float(until) - now))
    return max(waits, default=0)


async def _count_failure(services, keys: dict[str, str]) -> None:  # noqa: ANN001
    for kind, key in keys.items():
        failures = await services.kv.incr_window(f"{key}:failures", FAILURE_WINDOW)
        over = failures - FREE_FAILURES[kind]
        if over > 0:
            delay = min(FIRST_DELAY * 2 ** (over - 1), MAX_DELAY)
            await services.kv.set(f"{key}:until", str(time.time() + delay).encode(), delay)


async def authenticate(services, email: str, password: str, client_ip: str) -> User:  # noqa: ANN001
    """The account for these credentials, or SignInRefused (401 wrong, 403 disabled, 429 throttled).

    Every attempt, successful or not, is audited with the client's address."""
    email = email.strip().lower()
    keys = _throttle_keys(email, client_ip)
    actor = Actor(name=email[:320] or "(empty)", client_ip=client_ip)
    wait = await _throttled_for(services, keys)
    if wait:
        async with services.db.transaction() as session:
            await audit.record(session, actor, "signin.throttled", "user", None, retry_after=wait)
        raise SignInRefused(THROTTLED.format(seconds=wait), 429, wait)
    async with services.db.session() as session:
        user = await session.scalar(select(User).where(User.email == email)) if email else None
    ok = await _verify(user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None:
        await _count_failure(services, keys)
        async with services.db.transaction() as session:
            await audit.record(session, actor, "signin.failed", "user", user.id if user else None)
        raise SignInRefused(WRONG_CREDENTIALS)
    if user.disabled:
        async with services.db.transaction() as session:
            await audit.record(session, actor, "signin.disabled", "user", user.id)
        raise SignInRefused(DISABLED, 403)
    await services.kv.delete(f"{keys['account']}:failures", f"{keys['account']}:until")
    if HASHER.check_needs_rehash(user.password_hash):
        async with services.db.transaction() as session:
            fresh = await session.get(User, user.id)
            if fresh is not None:
                fresh.password_hash = await hash_password(password)
    async with services.db.transaction() as session:
        await audit.record(
            session, Actor(user.email, user.id, user.role, client_ip), "signin.success", "user", user.id
        )
    return user


async def bootstrap_admin(services) -> User | None:  # noqa: ANN001
    """Create the first admin from ADMIN_BOOTSTRAP_EMAIL and the admin_bootstrap_password secret
    when no account exists yet (a second replica starting at the same time changes nothing)."""
    settings = services.settings
    if await count(services):
        return None
    if not settings.admin_bootstrap_email or not settings.admin_bootstrap_password:
        log.warning(
            "no dashboard account exists: set ADMIN_BOOTSTRAP_EMAIL and the admin_bootstrap_password secret, "
            "or run `python -m app admin create-user`"
        )
        return None
    try:
        user = await create_user(
            services, settings.admin_bootstrap_email, "Administrator", "admin",
            settings.admin_bootstrap_password.strip(), Actor(name="bootstrap"),
        )
    except ApiError as exc:
        if exc.status_code == 409:
            return None  # another replica created it first
        log.error("the first admin could not be created: %s", exc.detail)
        return None
    log.info("created the first admin account %s", user.email)
    return user
