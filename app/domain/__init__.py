"""The engine's business rules, once: the API routers and the admin dashboard both call these.

Each module takes the per-process :class:`app.services.Services` and an :class:`Actor`
(who is acting: a person signed in to the dashboard, or an API-key client) and raises
:class:`app.errors.ApiError` with the precise status and message on a refused request,
before anything is written.
"""


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (with ``escape="\\\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
