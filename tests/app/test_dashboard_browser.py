"""The admin dashboard in a real browser: Playwright drives Debian's chromium (headless) against
a uvicorn server on 127.0.0.1 with PostgreSQL, Redis and a local SMTP server.

One walk through the whole editorial workflow asserts what each page shows; a second does one
workflow with the keyboard alone; a third runs axe-core on every page (no serious or critical
violation). Screenshots of every page land in build/screenshots/ (kept by CI).

CHROMIUM_PATH names the browser (default /usr/bin/chromium; no browser download). Without it
the tests are skipped, or fail when CI=true.
"""

from __future__ import annotations

import csv
import io
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import Engine, text

from app.main import create_app
from app.models import ALL_TABLES
from app.settings import load_settings
from engine_support import AUTH, API_KEY, free_port
from graph_standin import TOKEN, USER_ID, GraphStandIn, start_graph_standin
from test_dashboard import ADMIN, EDITOR, EDITOR2, VIEWER

pytestmark = pytest.mark.services

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
READERS = [f"reader{i}@example.com" for i in range(3)]


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass
class Server:
    base: str
    engine: Engine
    site: str  # a local web site to scrape

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphStandIn]:
    standin = start_graph_standin()
    yield standin
    standin.server.shutdown()


@pytest.fixture(scope="module")
def server(postgres_url, pg_engine, redis_url, smtp_server, web_server, graph, tmp_path_factory) -> Iterator[Server]:  # noqa: ANN001
    import redis
    import uvicorn

    with pg_engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(ALL_TABLES)} CASCADE"))
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    settings = load_settings(
        service_role="all", environment="test", api_keys=API_KEY, data_dir=str(tmp_path_factory.mktemp("browser")),
        database_url=postgres_url, redis_url=redis_url, storage_backend="local", s3_endpoint=None,
        smtp_host="127.0.0.1", smtp_port=smtp_server[1], smtp_starttls=False, smtp_ssl=False,
        generation_provider="local", require_review=True, cors_origins="", scraper_allowed_networks="127.0.0.1/32",
        admin_bootstrap_email=ADMIN[0], admin_bootstrap_password=ADMIN[1],
        # Instagram through the Graph API stand-in, which fetches the image from this server's signed URL.
        public_base_url=f"http://127.0.0.1:{port}", instagram_access_token=TOKEN, instagram_user_id=USER_ID,
        instagram_graph_url=graph.url, instagram_retry_seconds=0.01, instagram_worker_interval_seconds=0.2,
    )
    uv = uvicorn.Server(uvicorn.Config(create_app(settings, configure_logs=False), host="127.0.0.1", port=port,
                                       log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the dashboard server did not start")
        time.sleep(0.05)
    yield Server(f"http://127.0.0.1:{port}", pg_engine, web_server.base_url)
    uv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"chromium not found at {CHROMIUM}; install Debian's chromium or set CHROMIUM_PATH")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in(browser: Any, server: Server, account: tuple[str, str]) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{server.base}/admin/login")
    page.get_by_label("Email").fill(account[0])
    page.get_by_label("Password").fill(account[1])
    page.get_by_role("button", name="Sign in").click()
    assert page.locator("h1").inner_text() == "Overview", page.content()[:2000]
    return page


def flash(page: Any) -> str:
    return page.locator(".flash").inner_text()


def wait_for(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def test_the_whole_workflow_in_a_real_browser(browser, server, smtp_server):
    mailbox = smtp_server[0]
    mailbox.clear()

    # Sign in: a wrong password first, then the right one.
    admin = browser.new_context().new_page()
    admin.goto(f"{server.base}/admin/")
    assert admin.url.startswith(f"{server.base}/admin/login?next=")
    shot(admin, "login")
    admin.get_by_label("Email").fill(ADMIN[0])
    admin.get_by_label("Password").fill("not the password")
    admin.get_by_role("button", name="Sign in").click()
    assert admin.get_by_role("alert").inner_text() == "Wrong email or password."
    admin.get_by_label("Password").fill(ADMIN[1])
    admin.get_by_role("button", name="Sign in").click()
    assert admin.locator("h1").inner_text() == "Overview"
    assert admin.get_by_role("row", name=re.compile("content-manager")).inner_text().split("\t")[1] == "healthy"

    # The throttle: an unknown account is refused like a known one, then with a growing delay.
    intruder = browser.new_context().new_page()
    intruder.goto(f"{server.base}/admin/login")
    messages = []
    for _ in range(5):
        intruder.get_by_label("Email").fill("nobody@example.com")
        intruder.get_by_label("Password").fill("guessing password")
        intruder.get_by_role("button", name="Sign in").click()
        messages.append(intruder.get_by_role("alert").inner_text())
    assert messages[:4] == ["Wrong email or password."] * 4
    assert re.fullmatch(r"Too many failed sign-in attempts\. Wait \d+ seconds, then try again\.", messages[4])
    shot(intruder, "login-throttled")

    # Accounts: two editors and a viewer.
    admin.get_by_role("link", name="Users").click()
    for (email, password), role in ((EDITOR, "editor"), (EDITOR2, "editor"), (VIEWER, "viewer")):
        admin.get_by_label("Email").fill(email)
        admin.get_by_label("Display name").fill(email.split("@")[0].title())
        admin.get_by_label("Role", exact=True).select_option(role)
        admin.get_by_label("Initial password").fill(password)
        admin.get_by_role("button", name="Create account").click()
        assert flash(admin) == f"Account {email} created as {role}."
    shot(admin, "users")

    # An editor generates a draft and submits it; they cannot approve their own submission.
    editor = sign_in(browser, server, EDITOR)
    editor.get_by_role("link", name="Generate").click()
    assert "Provider: local" in editor.locator("main").inner_text()
    editor.get_by_label("Topic").fill("Carpet plants for beginners")
    editor.get_by_label("Length").select_option("short")
    shot(editor, "generate")
    editor.get_by_role("button", name="Generate draft").click()
    assert flash(editor) == "Generated a new draft with provider local."
    assert "Generated by provider local" in editor.locator("main").inner_text()
    item_url = editor.url
    title = editor.locator("h1").inner_text()
    editor.get_by_role("button", name="Submit for review").click()
    assert flash(editor) == f"“{title}” is now in review."
    editor.get_by_role("button", name="Approve").click()
    assert editor.locator("h1").inner_text() == "Not allowed"
    assert "You submitted this content for review, so you cannot approve it" in editor.get_by_role("alert").inner_text()

    # A second editor finds it in the review queue and approves it.
    second = sign_in(browser, server, EDITOR2)
    assert title in second.get_by_role("region", name=re.compile("Awaiting review")).inner_text()
    shot(second, "overview")
    second.get_by_role("link", name="Review queue").click()
    shot(second, "content-list")
    second.get_by_role("link", name=title).click()
    shot(second, "review")
    second.get_by_role("button", name="Approve").click()
    assert flash(second) == f"“{title}” is now approved."

    # A viewer is refused publishing: no button for them, and a forged post is refused with a reason.
    viewer = sign_in(browser, server, VIEWER)
    viewer.goto(item_url)
    assert viewer.get_by_role("button", name="Publish").count() == 0
    token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = viewer.request.post(f"{item_url}/status", form={"csrf_token": token, "target": "published"})
    assert refused.status == 403
    viewer.set_content(refused.text())
    assert "Your role (viewer) may not publish approved content, archive content and post it to Instagram" in viewer.get_by_role("alert").inner_text()
    shot(viewer, "forbidden")
    assert server.rows("SELECT status FROM content")[0][0] == "approved"

    # The first editor publishes it.
    editor.goto(item_url)
    editor.get_by_role("button", name="Publish").click()
    assert flash(editor) == f"“{title}” is now published."
    history = editor.get_by_role("table", name="Status changes").inner_text()
    assert "approved" in history and EDITOR2[0] in history and "published" in history

    # Two sessions edit the same item: the second sees the conflict and both versions.
    editor.goto(f"{item_url}/edit")
    second.goto(f"{item_url}/edit")
    shot(editor, "content-edit")
    editor.get_by_label("Body").fill("Monte Carlo needs bright light. (editor one)")
    editor.get_by_role("button", name="Save").click()
    assert flash(editor).startswith("Saved version")
    second.get_by_label("Body").fill("Glossostigma carpets quickly. (editor two)")
    second.get_by_role("button", name="Save").click()
    conflict = second.get_by_role("region", name="Someone else saved this item while you were editing").inner_text()
    assert "Monte Carlo needs bright light. (editor one)" in conflict
    assert "Glossostigma carpets quickly. (editor two)" in conflict
    assert second.get_by_label("Body").input_value() == "Glossostigma carpets quickly. (editor two)"
    shot(second, "content-conflict")
    assert server.rows("SELECT body FROM content")[0][0] == "Monte Carlo needs bright light. (editor one)"

    # Subscribers to send to (subscribed through the public API, confirmed by their token).
    for email in READERS:
        assert admin.request.post(f"{server.base}/api/v1/subscribers", data={"email": email}).status == 201
        body = mailbox.to(email)[-1].get_content()
        confirm_token = re.search(r"Confirmation token: (\S+)", body).group(1)
        assert admin.request.post(f"{server.base}/api/v1/subscribers/confirm", data={"token": confirm_token}).ok

    assert server.rows("SELECT status FROM content")[0][0] == "published"  # an edit of live content stays live

    # Compose a newsletter, preview it, send a test to oneself, then send to everyone.
    admin.get_by_role("link", name="Newsletters").click()
    admin.get_by_label("Subject").fill("Carpets in May")
    admin.get_by_label(title).check()
    shot(admin, "newsletters")
    admin.get_by_role("button", name="Compose newsletter").click()
    assert flash(admin) == "Newsletter “Carpets in May” composed."
    preview = admin.locator("#preview").inner_text()
    assert "Carpets in May" in preview and "Monte Carlo needs bright light." in preview and "Unsubscribe" in preview
    admin.get_by_role("button", name=f"Send a test to {ADMIN[0]}").click()
    assert flash(admin) == f"Test sent to {ADMIN[0]}."
    wait_for(lambda: len(mailbox.to(ADMIN[0])) == 1)
    assert mailbox.to(ADMIN[0])[0]["Subject"] == "[Test] Carpets in May"
    admin.get_by_label("Send to every confirmed subscriber").check()
    admin.get_by_role("button", name="Send now").click()
    assert flash(admin) == "Sending to 3 subscribers."
    wait_for(lambda: all(len([m for m in mailbox.to(r) if m["Subject"] == "Carpets in May"]) == 1 for r in READERS))

    def delivered() -> bool:
        admin.reload()
        return admin.locator("#sent-count").inner_text() == "3"

    wait_for(delivered)
    assert admin.locator("#newsletter-status").inner_text() == "sent"
    shot(admin, "newsletter")

    # Export the subscribers as CSV.
    admin.get_by_role("link", name="Subscribers").click()
    admin.get_by_label("Status").select_option("confirmed")
    admin.get_by_role("button", name="Filter").click()
    shot(admin, "subscribers")
    with admin.expect_download() as download:
        admin.get_by_role("link", name="Export these subscribers as CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(r["email"] for r in rows) == READERS and {r["status"] for r in rows} == {"confirmed"}

    # Unsubscribe on request, recorded.
    admin.get_by_label("Request", exact=True).first.fill("email of 3 May")
    admin.get_by_role("button", name=f"Unsubscribe {READERS[0]}").click()
    assert flash(admin) == f"{READERS[0]} is unsubscribed."

    # Scraping: trigger one, see it among the sources and recent results.
    admin.get_by_role("link", name="Scraping").click()
    admin.get_by_label("Page URL to scrape").fill(f"{server.site}/article")
    admin.get_by_role("button", name="Scrape now").click()
    assert flash(admin) == f"Scraped {server.site}/article: “Nature Aquarium Basics”."
    assert "127.0.0.1" in admin.get_by_role("table", name="Hosts scraped so far").inner_text()
    assert "Nature Aquarium Basics" in admin.get_by_role("table", name="Latest scraped pages").inner_text()
    shot(admin, "scraping")
    admin.get_by_role("link", name="Audit log").click()
    log = admin.get_by_role("table").inner_text()
    assert "subscriber.unsubscribe" in log and "newsletter.send" in log and "127.0.0.1" in log
    shot(admin, "audit")

    # A form posted without its CSRF token is refused and writes nothing.
    admin.get_by_role("link", name="Content", exact=True).click()
    admin.get_by_role("link", name="New draft").click()
    admin.get_by_label("Title").fill("Posted without a token")
    admin.get_by_label("Body").fill("Nothing")
    admin.evaluate("document.querySelector('main input[name=csrf_token]').remove()")
    admin.get_by_role("button", name="Create draft").click()
    assert "security token is missing or out of date, so nothing was changed" in admin.get_by_role("alert").inner_text()
    assert server.rows("SELECT count(*) FROM content WHERE title = 'Posted without a token'")[0][0] == 0

    # Sign out ends the session, server-side too.
    cookie = next(c for c in admin.context.cookies() if c["name"] == "__Host-aquascene_session")
    admin.goto(f"{server.base}/admin/")
    admin.get_by_role("button", name="Sign out").click()
    assert admin.locator("h1").inner_text() == "Sign in"
    admin.goto(f"{server.base}/admin/")
    assert admin.locator("h1").inner_text() == "Sign in"
    replay = browser.new_context()
    replay.add_cookies([cookie])
    replay_page = replay.new_page()
    replay_page.goto(f"{server.base}/admin/")
    assert replay_page.locator("h1").inner_text() == "Sign in"


def test_one_workflow_by_keyboard_alone(browser, server):
    from playwright.sync_api import expect

    page = browser.new_context().new_page()
    page.goto(f"{server.base}/admin/login")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    page.keyboard.press("Tab")  # the brand link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.type(EDITOR2[0])
    page.keyboard.press("Tab")
    page.keyboard.type(EDITOR2[1])
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Overview")

    def tab_to(predicate: str, limit: int = 60) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"(() => {{ const e = document.activeElement; return {predicate}; }})()"):
                return
        raise AssertionError(f"no focusable element where {predicate}")

    tab_to("e.textContent === 'Content'")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Content")
    tab_to("e.textContent === 'New draft'")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("New draft")
    tab_to("e.id === 'title'")
    page.keyboard.type("Keyboard-only draft")
    tab_to("e.id === 'body'")
    page.keyboard.type("Written without a mouse.")
    tab_to("e.textContent === 'Create draft'")
    # The focused control is visibly marked (the :focus-visible outline).
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Keyboard-only draft")
    tab_to("e.textContent === 'Submit for review'")
    page.keyboard.press("Enter")
    expect(page.locator(".flash")).to_have_text("“Keyboard-only draft” is now in review.")
    assert server.rows("SELECT status FROM content WHERE title = 'Keyboard-only draft'")[0][0] == "in_review"


def test_an_instagram_post_is_scheduled_and_its_state_followed(browser, server, graph):
    # Approved content (the admin approves it: recorded as a self-approval) with a JPEG asset.
    made = server_api(server, "post", "/api/v1/content", json={
        "title": "Moss wall week 6", "body": "Moss on driftwood. #aquascape", "content_type": "instagram_post"})
    content_id = made.json()["id"]
    buffer = io.BytesIO()
    Image.new("RGB", (1080, 1350), (20, 120, 60)).save(buffer, "JPEG")
    image = buffer.getvalue()
    server_api(server, "post", f"/api/v1/content/{content_id}/assets", files={"file": ("moss.jpg", image, "image/jpeg")})
    admin = sign_in(browser, server, ADMIN)
    admin.goto(f"{server.base}/admin/content/{content_id}")
    admin.get_by_role("button", name="Submit for review").click()
    admin.get_by_role("button", name="Approve").click()

    admin.get_by_role("link", name="Instagram").click()
    assert admin.locator("h1").inner_text() == "Instagram"
    admin.get_by_label("Image").select_option(label=f"moss.jpg ({len(image)} bytes)")
    admin.get_by_label("Alt text (optional)").fill("A moss wall on driftwood")
    shot(admin, "distributions")
    admin.get_by_role("button", name="Schedule post").click()
    assert flash(admin).startswith("Instagram post queued for ")

    def published() -> bool:
        admin.reload()
        return admin.locator("#distribution-state").inner_text() == "published"

    wait_for(published)
    (media,) = [m for m in graph.state.media.values() if m["caption"] == "Moss on driftwood. #aquascape"]
    assert admin.locator("#distribution-permalink").get_by_role("link").get_attribute("href") == media["permalink"]
    shot(admin, "distribution")
    admin.get_by_role("link", name="All Instagram posts").click()
    posts = admin.get_by_role("table", name="Instagram posts, newest first").inner_text()
    assert "Moss wall week 6" in posts and "published" in posts and media["permalink"] in posts
    assert server.rows("SELECT actor FROM audit_log WHERE action = 'distribution.create'") == [(ADMIN[0],)]


def server_api(server: Server, method: str, path: str, **kwargs: Any) -> Any:
    import httpx

    response = httpx.request(method, f"{server.base}{path}", headers=AUTH, timeout=30, **kwargs)
    assert response.is_success, response.text
    return response


PAGES = {
    "login": "/admin/login", "overview": "/admin/", "content": "/admin/content", "review-queue": "/admin/content?status=in_review",
    "content-new": "/admin/content/new", "generate": "/admin/generate", "scraping": "/admin/scraping",
    "newsletters": "/admin/newsletters", "subscribers": "/admin/subscribers", "users": "/admin/users", "audit": "/admin/audit",
    "distributions": "/admin/distributions",
}


def test_axe_finds_no_serious_or_critical_violation_on_any_page(browser, server):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    page = sign_in(browser, server, ADMIN)
    content_id = server.rows("SELECT id FROM content ORDER BY created_at LIMIT 1")[0][0]
    newsletter_id = server.rows("SELECT id FROM newsletters LIMIT 1")
    pages = {**PAGES, "content-detail": f"/admin/content/{content_id}", "content-edit": f"/admin/content/{content_id}/edit"}
    if newsletter_id:
        pages["newsletter-detail"] = f"/admin/newsletters/{newsletter_id[0][0]}"
    distribution_id = server.rows("SELECT id FROM distributions LIMIT 1")
    if distribution_id:
        pages["distribution-detail"] = f"/admin/distributions/{distribution_id[0][0]}"
    problems = {}
    anonymous = browser.new_context().new_page()
    for name, path in pages.items():
        target = anonymous if path == "/admin/login" else page
        target.goto(f"{server.base}{path}")
        results = axe.run(target)
        bad = [f"{v['id']} ({v['impact']}): {v['help']}" for v in results.response["violations"]
               if v["impact"] in ("serious", "critical")]
        if bad:
            problems[path] = bad
        shot(target, f"axe-{name}")
    assert problems == {}
    # Also a page as the API client sees it through the same server (the dashboard did not change the API).
    assert page.request.get(f"{server.base}/api/v1/content", headers=AUTH).ok
