"""The admin dashboard (role admin-dashboard, port 3000; also served by SERVICE_ROLE=all).

Server-rendered pages under ``/admin`` that call the same service layer as the API
(app.domain): no rule lives here, only who is signed in, forms and pages. No
JavaScript; the one stylesheet ships in the package (static/). Mounted as its own
ASGI application, so the public API's OpenAPI document and error format are untouched.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import distribution
from app.dashboard.sessions import COOKIE_NAME, CSRF_FIELD, SessionData, SessionStore
from app.domain import audit, generation, newsletters, overview, scraping, subscribers, users
from app.domain import content as workflow
from app.domain.actors import Actor
from app.domain.permissions import DESCRIPTIONS, MATRIX, AccountRole, Action, can, require
from app.errors import ApiError, validation_message
from app.models import User, utcnow
from app.routers.distributions import InstagramDistributionCreate
from app.schemas import ContentCreate, ContentStatus, ContentType, ContentUpdate, GenerateRequest

PREFIX = "/admin"
HERE = Path(__file__).resolve().parent
PAGE_SIZE = 20

# default-src 'self' and nothing inline: no script runs on these pages at all.
CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cache-control", b"no-store"),
]


class SecurityHeadersMiddleware:
    """Adds the security headers to every dashboard response (pages, errors, static files)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


@dataclass
class Page:
    """One request's view of the dashboard: the session, the person, their actor."""

    request: Request
    services: Any
    store: SessionStore
    token: str | None
    session: SessionData | None
    user: User | None

    @property
    def actor(self) -> Actor:
        assert self.user is not None
        host = self.request.client.host if self.request.client else None
        return Actor(self.user.email, self.user.id, self.user.role, host)

    def can(self, action: str) -> bool:
        return self.user is not None and can(self.user.role, Action(action))


def _safe_next(value: str | None) -> str:
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


def _set_cookie(response: Response, token: str) -> None:
    # __Host-: Secure, Path=/ and no Domain, so no sibling host can set or read it.
    response.set_cookie(COOKIE_NAME, token, path="/", secure=True, httponly=True, samesite="strict")


def create_dashboard(parent: FastAPI) -> FastAPI:
    dash = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(
        PREFIX=PREFIX, statuses=list(ContentStatus), content_types=list(ContentType),
        roles=list(AccountRole), matrix=MATRIX, descriptions=DESCRIPTIONS, actions=list(Action),
    )
    dash.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    dash.add_middleware(SecurityHeadersMiddleware)

    def services_of() -> Any:
        return parent.state.services

    async def page_for(request: Request, required: bool = True) -> Page:
        services = services_of()
        store = SessionStore(services)
        token = request.cookies.get(COOKIE_NAME)
        session = await store.load(token)
        user = None
        if session is not None and session.user_id:
            user = await users.get(services, uuid.UUID(session.user_id))
            valid_after = user.sessions_valid_after.timestamp() if user else 0
            if user is None or user.disabled or session.created < valid_after:
                await store.delete(token)  # type: ignore[arg-type]
                session, user = None, None
        if required and user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target)
        return Page(request, services, store, token, session, user)

    def render(page: Page, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        flash: list[str] = []
        if page.session is not None and page.session.flash:
            flash, page.session.flash = page.session.flash, []
            page.request.state.save_session = True
        response = templates.TemplateResponse(
            page.request, template,
            {"user": page.user, "csrf": page.session.csrf if page.session else "", "flash": flash, "page": page, **values},
            status_code=status_code,
        )
        return response

    async def finish(page: Page, response: Response) -> Response:
        if getattr(page.request.state, "save_session", False) and page.session and page.token:
            await page.store.save(page.token, page.session)
        return response

    async def show(page: Page, template: str, status_code: int = 200, **values: Any) -> Response:
        return await finish(page, render(page, template, status_code, **values))

    async def redirect(page: Page, to: str, message: str | None = None) -> Response:
        if message and page.session is not None and page.token:
            page.session.flash.append(message)
            await page.store.save(page.token, page.session)
        return RedirectResponse(to, status_code=303)

    async def form_of(page: Page) -> FormData:
        """The posted form, once its CSRF token matched the session's (403 before anything else)."""
        form = await page.request.form()
        if page.session is None or not page.session.csrf_ok(form.get(CSRF_FIELD)):  # type: ignore[arg-type]
            raise ApiError(
                403,
                "This form's security token is missing or out of date, so nothing was changed. "
                "Reload the page and submit it again.",
            )
        return form

    def form_values(form: FormData, *fields: str) -> dict[str, Any]:
        """The named fields as the person typed them ("" when absent), to validate or show again."""
        return {field: str(form.get(field) or "") for field in fields}

    # --- errors -----------------------------------------------------------------------------

    @dash.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"{PREFIX}/login?{urlencode({'next': exc.next_path})}", status_code=303)

    async def error_page(request: Request, status_code: int, message: str, headers: dict | None = None) -> Response:
        try:
            page = await page_for(request, required=False)
        except Exception:  # noqa: BLE001 - the error page must render even when the session store fails
            page = Page(request, services_of(), SessionStore(services_of()), None, None, None)
        titles = {403: "Not allowed", 404: "Not found", 409: "Not possible now", 422: "Check the form", 429: "Slow down"}
        response = render(page, "error.html", status_code, title=titles.get(status_code, "Something went wrong"),
                          message=message, code=status_code)
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    @dash.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return await error_page(request, exc.status_code, exc.detail, exc.headers)

    @dash.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return await error_page(request, 422, validation_message(exc.errors()))

    @dash.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return await error_page(request, exc.status_code, str(exc.detail))

    # --- sign-in and sign-out --------------------------------------------------------------------

    @dash.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: Annotated[str | None, Query(max_length=500)] = None) -> Response:  # noqa: A002
        page = await page_for(request, required=False)
        if page.user is not None:
            return RedirectResponse(_safe_next(next), status_code=303)
        response = render(page, "login.html", next=_safe_next(next), email="", error=None)
        if page.session is None:  # an anonymous session carries the sign-in form's CSRF token
            token, page.session = await page.store.create()
            response = render(page, "login.html", next=_safe_next(next), email="", error=None)
            _set_cookie(response, token)
        return response

    @dash.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        page = await page_for(request, required=False)
        form = await form_of(page)
        email = str(form.get("email") or "")[:320]
        next_path = _safe_next(str(form.get("next") or ""))
        host = request.client.host if request.client else "unknown"
        try:
            user = await users.authenticate(page.services, email, str(form.get("password") or "")[:1024], host)
        except users.SignInRefused as exc:
            response = render(page, "login.html", exc.status_code, next=next_path, email=email, error=exc.detail)
            response.headers.update(exc.headers)
            return response
        # Rotate: the anonymous session ends, a new id is issued for the signed-in one.
        if page.token:
            await page.store.delete(page.token)
        token, _ = await page.store.create(str(user.id))
        response = RedirectResponse(next_path, status_code=303)
        _set_cookie(response, token)
        return response

    @dash.post("/logout")
    async def logout(request: Request) -> Response:
        page = await page_for(request)
        await form_of(page)
        await page.store.delete(page.token)  # type: ignore[arg-type]
        async with page.services.db.transaction() as session:
            await audit.record(session, page.actor, "signout", "user", page.user.id)  # type: ignore[union-attr]
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", secure=True, httponly=True, samesite="strict")
        return response

    # --- overview -----------------------------------------------------------------------------------

    @dash.get("/", response_class=HTMLResponse)
    async def overview_page(request: Request) -> Response:
        page = await page_for(request)
        services = page.services
        review, review_total = await workflow.awaiting_review(services)
        return await show(
            page, "overview.html",
            health=await overview.role_health(services),
            review=review, review_total=review_total,
            newsletters=await newsletters.recent(services, 10),
            subscriber_counts=await subscribers.counts_by_status(services),
            last_scrape=next(iter(await scraping.recent(services, 1)), None),
        )

    # --- content ----------------------------------------------------------------------------------------

    @dash.get("/content", response_class=HTMLResponse)
    async def content_list(
        request: Request,
        status: Annotated[ContentStatus | None, Query()] = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        page_number: Annotated[int, Query(alias="page", ge=1, le=10_000)] = 1,
    ) -> Response:
        page = await page_for(request)
        listing = await workflow.list_content(
            page.services, workflow.ContentFilter(status=status, q=q or None), PAGE_SIZE, (page_number - 1) * PAGE_SIZE
        )
        pages = max(1, -(-listing.total // PAGE_SIZE))
        return await show(page, "content_list.html", listing=listing, status=status, q=q or "",
                          page_number=page_number, pages=pages,
                          query=lambda n: urlencode({k: v for k, v in
                                                     {"status": status.value if status else "", "q": q or "", "page": n}.items() if v}))

    @dash.get("/content/new", response_class=HTMLResponse)
    async def content_new_form(request: Request) -> Response:
        page = await page_for(request)
        require(page.actor, Action.EDIT)
        return await show(page, "content_new.html", values={}, error=None)

    @dash.post("/content/new", response_class=HTMLResponse)
    async def content_new(request: Request) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        values = form_values(form, "title", "body", "content_type", "tags")
        try:
            payload = ContentCreate(title=values["title"], body=values["body"], content_type=values["content_type"],
                                    tags=_tags(values["tags"]))
        except ValidationError as exc:
            return await show(page, "content_new.html", 422, values=values, error=validation_message(exc.errors()))
        out = await workflow.create_content(page.services, payload, page.actor)
        return await redirect(page, f"{PREFIX}/content/{out.id}", f"Draft “{out.title}” created.")

    @dash.get("/content/{content_id}", response_class=HTMLResponse)
    async def content_detail(request: Request, content_id: uuid.UUID) -> Response:
        page = await page_for(request)
        detail = await workflow.get_detail(page.services, content_id)
        needed = {t: workflow.PERSON_TRANSITIONS.get((detail.content.status, t)) for t, _ in TRANSITION_BUTTONS}
        # Only what this person may do is offered; the service layer enforces it regardless.
        actions = [(target, label) for target, label in TRANSITION_BUTTONS if needed[target] and page.can(needed[target])]
        return await show(page, "content_detail.html", detail=detail, item=detail.content, actions=actions)

    @dash.get("/content/{content_id}/edit", response_class=HTMLResponse)
    async def content_edit_form(request: Request, content_id: uuid.UUID) -> Response:
        page = await page_for(request)
        require(page.actor, Action.EDIT)
        item = (await workflow.get_detail(page.services, content_id)).content
        values = {"title": item.title, "body": item.body, "content_type": item.content_type.value,
                  "tags": ", ".join(item.tags), "version": item.version}
        return await show(page, "content_edit.html", item=item, values=values, conflict=None, error=None)

    @dash.post("/content/{content_id}/edit", response_class=HTMLResponse)
    async def content_edit(request: Request, content_id: uuid.UUID) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        values: dict[str, Any] = form_values(form, "title", "body", "content_type", "tags", "version")
        item = (await workflow.get_detail(page.services, content_id)).content
        try:
            changes = ContentUpdate(title=values["title"], body=values["body"], content_type=values["content_type"],
                                    tags=_tags(values["tags"]))
            version = int(values["version"])
        except (ValidationError, ValueError) as exc:
            message = validation_message(exc.errors()) if isinstance(exc, ValidationError) else "version: reload the page"
            return await show(page, "content_edit.html", 422, item=item, values=values, conflict=None, error=message)
        try:
            out = await workflow.update_content(page.services, content_id, changes, version, page.actor)
        except workflow.VersionConflict as exc:
            # Both versions on one page; the form keeps this person's text and now names the
            # current version, so saving again deliberately replaces the other edit.
            values["version"] = exc.current
            return await show(page, "content_edit.html", 409, item=item, values=values, conflict=item, error=None)
        return await redirect(page, f"{PREFIX}/content/{content_id}", f"Saved version {out.version}.")

    @dash.post("/content/{content_id}/status")
    async def content_status(request: Request, content_id: uuid.UUID) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        try:
            target = ContentStatus(str(form.get("target") or ""))
        except ValueError:
            raise ApiError(422, "target: not a content status") from None
        out = await workflow.transition(page.services, content_id, target, page.actor)
        return await redirect(page, f"{PREFIX}/content/{content_id}", f"“{out.title}” is now {out.status.value.replace('_', ' ')}.")

    # --- generation --------------------------------------------------------------------------------------

    @dash.get("/generate", response_class=HTMLResponse)
    async def generate_form(request: Request) -> Response:
        page = await page_for(request)
        require(page.actor, Action.EDIT)
        return await show(page, "generate.html", values={"tone": "friendly", "length": "medium"}, error=None,
                          provider=page.services.provider.name)

    @dash.post("/generate", response_class=HTMLResponse)
    async def generate_draft(request: Request) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        values = form_values(form, "topic", "content_type", "tone", "length")
        try:
            payload = GenerateRequest(**values)
        except ValidationError as exc:
            return await show(page, "generate.html", 422, values=values, error=validation_message(exc.errors()),
                              provider=page.services.provider.name)
        result = await generation.generate(page.services, payload, page.actor)
        note = "an identical earlier draft" if result.cached else "a new draft"
        return await redirect(page, f"{PREFIX}/content/{result.content_id}",
                              f"Generated {note} with provider {result.provider}.")

    # --- scraping -----------------------------------------------------------------------------------------

    @dash.get("/scraping", response_class=HTMLResponse)
    async def scraping_page(request: Request) -> Response:
        page = await page_for(request)
        return await show(page, "scraping.html", sources=await scraping.sources(page.services),
                          recent=await scraping.recent(page.services), url="")

    @dash.post("/scraping")
    async def scrape(request: Request) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        from app.schemas import ScrapeRequest

        try:
            payload = ScrapeRequest(url=str(form.get("url") or ""))
        except ValidationError as exc:
            raise ApiError(422, validation_message(exc.errors())) from None
        row = await scraping.scrape(page.services, str(payload.url), page.actor)
        return await redirect(page, f"{PREFIX}/scraping", f"Scraped {row.url}: “{row.title or 'no title'}”.")

    # --- newsletters --------------------------------------------------------------------------------------

    @dash.get("/newsletters", response_class=HTMLResponse)
    async def newsletters_page(request: Request) -> Response:
        page = await page_for(request)
        published = await workflow.list_content(page.services, workflow.ContentFilter(status=ContentStatus.PUBLISHED), 50)
        return await show(page, "newsletters.html", rows=await newsletters.recent(page.services, 50),
                          published=published.items)

    @dash.post("/newsletters")
    async def compose(request: Request) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        subject = str(form.get("subject") or "").strip()
        if not subject or len(subject) > 200 or "\n" in subject:
            raise ApiError(422, "subject: must be 1 to 200 characters on one line")
        try:
            ids = [uuid.UUID(str(v)) for v in form.getlist("content_ids")]
        except ValueError:
            raise ApiError(422, "content_ids: not content ids") from None
        if not ids:
            raise ApiError(422, "content_ids: choose at least one published item")
        out = await newsletters.create_newsletter(page.services, subject, ids, page.actor)
        return await redirect(page, f"{PREFIX}/newsletters/{out.id}", f"Newsletter “{out.subject}” composed.")

    @dash.get("/newsletters/{newsletter_id}", response_class=HTMLResponse)
    async def newsletter_detail(request: Request, newsletter_id: uuid.UUID) -> Response:
        page = await page_for(request)
        out = await newsletters.get_newsletter(page.services, newsletter_id)
        subject, text = await newsletters.preview(page.services, newsletter_id)
        return await show(page, "newsletter_detail.html", item=out, subject=subject, preview=text,
                          scheduled_at=await newsletters.scheduled_for(page.services, newsletter_id),
                          refresh=out.status == "sending")

    @dash.post("/newsletters/{newsletter_id}/test")
    async def newsletter_test(request: Request, newsletter_id: uuid.UUID) -> Response:
        page = await page_for(request)
        await form_of(page)
        await newsletters.send_test(page.services, newsletter_id, page.actor)
        return await redirect(page, f"{PREFIX}/newsletters/{newsletter_id}", f"Test sent to {page.actor.name}.")

    @dash.post("/newsletters/{newsletter_id}/send")
    async def newsletter_send(request: Request, newsletter_id: uuid.UUID) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        if form.get("confirm") != "yes":
            raise ApiError(422, "confirm: tick “Send to every confirmed subscriber” to send")
        queued = await newsletters.queue_send(page.services, newsletter_id, page.actor)
        response = await redirect(page, f"{PREFIX}/newsletters/{newsletter_id}", f"Sending to {queued} subscribers.")
        response.background = BackgroundTask(newsletters.deliver_newsletter, page.services, newsletter_id)
        return response

    @dash.post("/newsletters/{newsletter_id}/schedule")
    async def newsletter_schedule(request: Request, newsletter_id: uuid.UUID) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        try:
            at = datetime.fromisoformat(str(form.get("scheduled_at") or "")).replace(tzinfo=UTC)
        except ValueError:
            raise ApiError(422, "scheduled_at: give a date and time (UTC), e.g. 2030-01-31T09:00") from None
        await newsletters.schedule(page.services, newsletter_id, at, page.actor)
        return await redirect(page, f"{PREFIX}/newsletters/{newsletter_id}", f"Scheduled for {at:%Y-%m-%d %H:%M} UTC.")

    # --- Instagram distributions -----------------------------------------------------------------------------

    async def instagram_page(page: Page, status_code: int = 200, values: dict[str, str] | None = None,
                             error: str | None = None) -> Response:
        services = page.services
        control, message = _schedule_error(error)
        return await show(page, "distributions.html", status_code,
                          rows=await distribution.recent_distributions(services),
                          images=await distribution.postable_images(services) if page.can("publish") else [],
                          unconfigured=services.settings.instagram_unconfigured,
                          values=values or {}, error=message, error_field=control)

    @dash.get("/distributions", response_class=HTMLResponse)
    async def distributions_page(request: Request) -> Response:
        return await instagram_page(await page_for(request))

    @dash.post("/distributions", response_class=HTMLResponse)
    async def distribution_schedule(request: Request) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        values = form_values(form, "image", "caption", "alt_text", "publish_at")
        content_id, _, asset_id = values["image"].partition("/")
        try:
            # The API's own request model: the same field rules, the same messages.
            payload = InstagramDistributionCreate(
                content_id=content_id or None, asset_id=asset_id or None,
                **{k: v for k, v in (("caption", values["caption"]), ("alt_text", values["alt_text"])) if v.strip()},
                # A datetime-local field has no offset: the page asks for UTC.
                **({"publish_at": f"{values['publish_at']}Z"} if values["publish_at"] else {}),
            )
            row = await distribution.create_distribution(
                page.services, actor=page.actor, content_id=payload.content_id, asset_id=payload.asset_id,
                caption=payload.caption, alt_text=payload.alt_text, publish_at=payload.publish_at)
        except ValidationError as exc:
            return await instagram_page(page, 422, values, validation_message(exc.errors()))
        except ApiError as exc:
            if exc.status_code == 403:
                raise
            response = await instagram_page(page, exc.status_code, values, exc.detail)
            response.headers.update(exc.headers or {})
            return response
        return await redirect(page, f"{PREFIX}/distributions/{row.id}",
                              f"Instagram post queued for {row.publish_at:%Y-%m-%d %H:%M} UTC.")

    @dash.get("/distributions/{distribution_id}", response_class=HTMLResponse)
    async def distribution_detail(request: Request, distribution_id: uuid.UUID) -> Response:
        page = await page_for(request)
        row = await distribution.get_distribution(page.services, distribution_id)
        content = (await workflow.get_detail(page.services, row.content_id)).content if row.content_id else None
        # Refresh while the worker is on it, or about to be.
        due = row.state == "publishing" or (row.state == "queued" and row.next_attempt_at <= utcnow())
        return await show(page, "distribution_detail.html", item=row, content=content, refresh=due)

    # --- subscribers ----------------------------------------------------------------------------------------

    @dash.get("/subscribers", response_class=HTMLResponse)
    async def subscribers_page(
        request: Request,
        status: Annotated[str | None, Query(pattern="^(pending|confirmed|unsubscribed)?$")] = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    ) -> Response:
        page = await page_for(request)
        rows, total = await subscribers.search(page.services, status or None, q or None, PAGE_SIZE, (page_number - 1) * PAGE_SIZE)
        filters = {k: v for k, v in {"status": status or "", "q": q or ""}.items() if v}
        return await show(page, "subscribers.html", rows=rows, total=total, status=status or "", q=q or "",
                          page_number=page_number, pages=max(1, -(-total // PAGE_SIZE)),
                          export=urlencode(filters), query=lambda n: urlencode({**filters, "page": n}))

    @dash.get("/subscribers/export.csv")
    async def subscribers_export(
        request: Request,
        status: Annotated[str | None, Query(pattern="^(pending|confirmed|unsubscribed)?$")] = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        page = await page_for(request)
        rows = await subscribers.export_csv(page.services, page.actor, status or None, q or None)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return StreamingResponse(rows, media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="subscribers-{stamp}.csv"'})

    @dash.post("/subscribers/{subscriber_id}/unsubscribe")
    async def subscriber_unsubscribe(request: Request, subscriber_id: uuid.UUID) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        reason = str(form.get("reason") or "").strip()[:200]
        if not reason:
            raise ApiError(422, "reason: say how the subscriber asked (e.g. “email of 3 May”)")
        sub = await subscribers.unsubscribe_on_request(page.services, subscriber_id, page.actor, reason)
        return await redirect(page, f"{PREFIX}/subscribers", f"{sub.email} is unsubscribed.")

    # --- users -----------------------------------------------------------------------------------------------

    @dash.get("/users", response_class=HTMLResponse)
    async def users_page(request: Request) -> Response:
        page = await page_for(request)
        require(page.actor, Action.MANAGE_USERS)
        return await show(page, "users.html", rows=await users.list_users(page.services), values={}, error=None)

    @dash.post("/users", response_class=HTMLResponse)
    async def user_create(request: Request) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        values = form_values(form, "email", "display_name", "role")
        try:
            user = await users.create_user(page.services, values["email"], values["display_name"], values["role"],
                                           str(form.get("password") or ""), page.actor)
        except ApiError as exc:
            if exc.status_code == 403:
                raise
            return await show(page, "users.html", exc.status_code, rows=await users.list_users(page.services),
                              values=values, error=exc.detail)
        return await redirect(page, f"{PREFIX}/users", f"Account {user.email} created as {user.role}.")

    @dash.post("/users/{user_id}/{change}")
    async def user_change(request: Request, user_id: uuid.UUID, change: str) -> Response:
        page = await page_for(request)
        form = await form_of(page)
        services, actor = page.services, page.actor
        if change == "role":
            user = await users.set_role(services, user_id, str(form.get("role") or ""), actor)
            message = f"{user.email} is now {user.role}."
        elif change in ("disable", "enable"):
            user = await users.set_disabled(services, user_id, change == "disable", actor)
            message = f"{user.email} is {'disabled' if user.disabled else 'enabled'}."
        elif change == "password":
            user = await users.reset_password(services, user_id, str(form.get("password") or ""), actor)
            message = f"Password of {user.email} reset; their sessions have ended."
        else:
            raise ApiError(404, "no such change")
        return await redirect(page, f"{PREFIX}/users", message)

    # --- audit log ----------------------------------------------------------------------------------------------

    @dash.get("/audit", response_class=HTMLResponse)
    async def audit_page(
        request: Request,
        actor: Annotated[str | None, Query(max_length=320)] = None,
        action: Annotated[str | None, Query(max_length=64)] = None,
        target: Annotated[str | None, Query(max_length=64)] = None,
        page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    ) -> Response:
        page = await page_for(request)
        rows, total = await audit.search(page.services, actor=actor or None, action=action or None,
                                         target=target or None, limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE)
        filters = {k: v for k, v in {"actor": actor or "", "action": action or "", "target": target or ""}.items() if v}
        return await show(page, "audit.html", rows=rows, total=total, filters=filters, page_number=page_number,
                          pages=max(1, -(-total // PAGE_SIZE)), query=lambda n: urlencode({**filters, "page": n}))

    return dash


TRANSITION_BUTTONS: list[tuple[ContentStatus, str]] = [
    (ContentStatus.IN_REVIEW, "Submit for review"),
    (ContentStatus.APPROVED, "Approve"),
    (ContentStatus.PUBLISHED, "Publish"),
    (ContentStatus.DRAFT, "Back to draft"),
    (ContentStatus.ARCHIVED, "Archive"),
]


# The service layer names the API's fields ("asset_id: ..."); the page names its own controls.
SCHEDULE_FIELDS = {"content_id": ("image", "Image"), "asset_id": ("image", "Image"), "caption": ("caption", "Caption"),
                   "alt_text": ("alt_text", "Alt text"), "publish_at": ("publish_at", "Publish at")}
FIELD_PREFIX = re.compile(rf"(^|; )({'|'.join(SCHEDULE_FIELDS)}):")


def _schedule_error(message: str | None) -> tuple[str | None, str | None]:
    """(the form control the first problem is about, the message in the page's words)."""
    if not message:
        return None, None
    first = FIELD_PREFIX.match(message)
    control = SCHEDULE_FIELDS[first.group(2)][0] if first else None
    return control, FIELD_PREFIX.sub(lambda m: f"{m.group(1)}{SCHEDULE_FIELDS[m.group(2)][1]}:", message)


def _tags(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]
