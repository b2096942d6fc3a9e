"""The permission matrix: who may do what in the dashboard (the one place it is written down).

The README's matrix is this table. Every dashboard handler asks :func:`require`
before it calls the service layer; a refusal is a 403 page that says why.
"""

from __future__ import annotations

from enum import StrEnum

from app.domain.actors import Actor
from app.errors import ApiError


class AccountRole(StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"


class Action(StrEnum):
    READ = "read"  # every page, the audit log included
    EDIT = "edit"  # create, edit, generate, scrape, submit for review, compose newsletters, send a test to oneself
    APPROVE = "approve"  # approve or send back a submission (never one's own, unless admin)
    PUBLISH = "publish"  # publish approved content, archive, post published content to Instagram
    SEND = "send"  # send or schedule a newsletter to every subscriber; export subscribers; unsubscribe on request
    MANAGE_USERS = "manage_users"  # create accounts, change roles, disable, reset passwords


DESCRIPTIONS: dict[Action, str] = {
    Action.READ: "read every page and the audit log",
    Action.EDIT: "create and edit content, generate drafts, scrape, submit for review, compose newsletters",
    Action.APPROVE: "approve content someone else submitted",
    Action.PUBLISH: "publish approved content, archive content and post it to Instagram",
    Action.SEND: "send or schedule newsletters, export subscribers, unsubscribe on request",
    Action.MANAGE_USERS: "create accounts, change roles, disable accounts, reset passwords",
}

MATRIX: dict[AccountRole, frozenset[Action]] = {
    AccountRole.ADMIN: frozenset(Action),
    AccountRole.EDITOR: frozenset({Action.READ, Action.EDIT, Action.APPROVE, Action.PUBLISH}),
    AccountRole.VIEWER: frozenset({Action.READ}),
}


def can(role: str | None, action: Action) -> bool:
    try:
        return action in MATRIX[AccountRole(role)]
    except ValueError:
        return False


def require(actor: Actor, action: Action) -> None:
    """Raise 403 unless the actor's role allows the action."""
    if not can(actor.role, action):
        allowed = ", ".join(r.value for r, actions in MATRIX.items() if action in actions)
        raise ApiError(
            403,
            f"Your role ({actor.role or 'none'}) may not {DESCRIPTIONS[action]}; this needs the role {allowed}.",
        )
