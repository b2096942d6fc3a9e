"""Who is acting: a person (dashboard account) or an API-key client."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    name: str  # the person's email, "api-key:<digest>" or "system"
    user_id: uuid.UUID | None = None
    role: str | None = None  # admin | editor | viewer for a person; None for API keys and the system
    client_ip: str | None = None

    @property
    def is_person(self) -> bool:
        return self.user_id is not None

    @classmethod
    def api_key(cls, client_id: str, client_ip: str | None = None) -> Actor:
        # client_id is "key:<sha256 prefix>": the key itself is never recorded.
        return cls(name=f"api-{client_id}", client_ip=client_ip)


SYSTEM = Actor(name="system")
