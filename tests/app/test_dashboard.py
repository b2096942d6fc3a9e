"""Admin dashboard and editorial workflow through HTTP: accounts, sessions, CSRF, throttling,
permissions, the review rules (also through the API with REQUIRE_REVIEW on and off), the audit log
and migration 0002. Every test runs on PostgreSQL + Redis and on the embedded defaults."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from app import migrate
from app.dashboard.sessions import COOKIE_NAME
from app.db import create_sync_engine
from engine_support import AUTH, stop_background_work

ADMIN = ("admin@example.com", "admin password 123")
EDITOR = ("editor@example.com", "editor password 123")
EDITOR2 = ("second@example.com", "second password 123")
VIEWER = ("viewer@example.com", "viewer password 123")


@pytest.fixture
def dashboard(make_client) -> Callable[..., TestClient]:  # noqa: ANN001
    """TestClients over https (the session cookie is Secure), the first admin bootstrapped."""

    def factory(**overrides: Any) -> TestClient:
        return make_client(base_url="https://testserver", admin_bootstrap_email=ADMIN[0],
                           admin_bootstrap_password=ADMIN[1], **overrides)

    return factory


def csrf_of(client: TestClient, path: str) -> str:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 200, response.text
    return re.search(r'name="csrf_token" value="([^"]+)"', response.text).group(1)


def sign_in(client: TestClient, account: tuple[str, str]) -> TestClient:
    token = csrf_of(client, "/admin/login")
    response = client.post("/admin/login", data={"csrf_token": token, "email": account[0], "password": account[1],
                                                   "next": "/admin/"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def post(client: TestClient, path: str, form_page: str, **data: str) -> Any:
    return client.post(path, data={"csrf_token": csrf_of(client, form_page), **data}, follow_redirects=False)


def make_accounts(admin: TestClient) -> None:
    for (email, password), role in ((EDITOR, "editor"), (EDITOR2, "editor"), (VIEWER, "viewer")):
        response = post(admin, "/admin/users", "/admin/users", email=email, display_name=email.split("@")[0],
                        role=role, password=password)
        assert response.status_code == 303, response.text


def with_cookie(client: TestClient, token: str) -> TestClient:
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, token, domain="testserver.local", path="/")  # how httpx stores the host
    return client


def new_draft(client: TestClient, title: str = "Iwagumi stones") -> str:
    response = post(client, "/admin/content/new", "/admin/content/new", title=title, body="Three stones.",
                    content_type="article", tags="layout")
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def set_status(client: TestClient, content_id: str, target: str) -> Any:
    return post(client, f"/admin/content/{content_id}/status", f"/admin/content/{content_id}", target=target)


def audit_actions(backend) -> list[str]:  # noqa: ANN001
    return [r[0] for r in backend.rows("SELECT action FROM audit_log ORDER BY id")]


# --- accounts, sessions, sign-in --------------------------------------------------------------------


def test_first_admin_is_bootstrapped_once_and_audited(dashboard, backend):
    dashboard()
    dashboard()  # a second process start finds the account and creates nothing
    assert backend.rows("SELECT email, role, disabled FROM users") == [(ADMIN[0], "admin", False)]
    assert backend.count("audit_log", "action = 'user.create' AND actor = 'bootstrap'") == 1
    password_hash = backend.rows("SELECT password_hash FROM users")[0][0]
    assert password_hash.startswith("$argon2id$")


def test_sign_in_sets_a_host_cookie_rotates_the_session_and_sign_out_ends_it(dashboard, backend):
    client = dashboard()
    assert client.get("/admin/", follow_redirects=False).headers["location"].startswith("/admin/login?next=")
    csrf_of(client, "/admin/login")
    anonymous = client.cookies[COOKIE_NAME]
    sign_in(client, ADMIN)
    signed_in = client.cookies[COOKIE_NAME]
    assert signed_in != anonymous
    page = client.get("/admin/")
    assert page.status_code == 200 and "Signed in as Administrator (admin)" in page.text
    # The old anonymous id no longer opens anything.
    assert with_cookie(client, anonymous).get("/admin/", follow_redirects=False).status_code == 303
    with_cookie(client, signed_in)
    response = post(client, "/admin/logout", "/admin/")
    assert response.status_code == 303
    assert COOKIE_NAME not in client.cookies
    # Replaying the signed-in id after sign-out: ended server-side.
    assert with_cookie(client, signed_in).get("/admin/", follow_redirects=False).status_code == 303
    assert {"signin.success", "signout"} <= set(audit_actions(backend))


def test_the_session_cookie_is_host_prefixed_secure_httponly_strict(dashboard):
    client = dashboard()
    response = client.get("/admin/login")
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE_NAME}=")
    for attribute in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in header.lower(), header
    assert "domain=" not in header.lower()


def test_every_dashboard_response_carries_the_security_headers(dashboard):
    client = dashboard()
    for path in ("/admin/login", "/admin/static/style.css", "/admin/nowhere", "/admin/"):
        response = client.get(path, follow_redirects=False)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, path
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_wrong_password_and_unknown_account_answer_alike_then_the_throttle_grows(dashboard, backend):
    client = dashboard()
    answers = []
    for email in (ADMIN[0], "nobody@example.com"):
        token = csrf_of(client, "/admin/login")
        response = client.post("/admin/login", data={"csrf_token": token, "email": email, "password": "wrong password!"})
        answers.append((response.status_code, "Wrong email or password." in response.text))
    assert answers == [(401, True), (401, True)]
    # Three free failures per account, then each failure adds a delay (5 s, 10 s, ...).
    for _ in range(3):
        token = csrf_of(client, "/admin/login")
        client.post("/admin/login", data={"csrf_token": token, "email": "nobody@example.com", "password": "nope nope"})
    token = csrf_of(client, "/admin/login")
    throttled = client.post("/admin/login", data={"csrf_token": token, "email": "nobody@example.com", "password": "x"})
    assert throttled.status_code == 429
    assert re.search(r"Too many failed sign-in attempts\. Wait \d+ seconds, then try again\.", throttled.text)
    assert 1 <= int(throttled.headers["retry-after"]) <= 5
    # Even the right password is refused while the delay runs (for a known account alike).
    for _ in range(3):
        token = csrf_of(client, "/admin/login")
        client.post("/admin/login", data={"csrf_token": token, "email": ADMIN[0], "password": "wrong again"})
    token = csrf_of(client, "/admin/login")
    right = client.post("/admin/login", data={"csrf_token": token, "email": ADMIN[0], "password": ADMIN[1]})
    assert right.status_code == 429 and "Too many failed sign-in attempts" in right.text
    assert backend.count("audit_log", "action = 'signin.failed'") >= 6
    assert backend.count("audit_log", "action = 'signin.throttled'") == 2
    assert backend.count("audit_log", "action = 'signin.success'") == 0


def test_an_idle_session_and_an_old_session_expire(dashboard, monkeypatch):
    import app.dashboard.sessions as sessions

    client = sign_in(dashboard(session_idle_minutes=30, session_absolute_hours=1), ADMIN)
    assert client.get("/admin/").status_code == 200
    real = sessions.time.time
    monkeypatch.setattr(sessions.time, "time", lambda: real() + 31 * 60)
    assert client.get("/admin/", follow_redirects=False).status_code == 303
    monkeypatch.setattr(sessions.time, "time", real)

    client = sign_in(dashboard(session_idle_minutes=120, session_absolute_hours=1), ADMIN)
    start = real()
    # Active every 50 minutes (never idle), but past the absolute limit of one hour.
    monkeypatch.setattr(sessions.time, "time", lambda: start + 50 * 60)
    assert client.get("/admin/").status_code == 200
    monkeypatch.setattr(sessions.time, "time", lambda: start + 61 * 60)
    assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_a_form_posted_without_its_csrf_token_is_refused_and_writes_nothing(dashboard, backend):
    client = sign_in(dashboard(), ADMIN)
    before = backend.count("audit_log")
    for token in (None, "forged-token"):
        data = {"title": "Sneaky", "body": "b", "content_type": "article"}
        if token:
            data["csrf_token"] = token
        response = client.post("/admin/content/new", data=data, follow_redirects=False)
        assert response.status_code == 403
        assert "security token is missing or out of date, so nothing was changed" in response.text
    assert backend.count("content") == 0
    assert backend.count("audit_log") == before


# --- permissions and the workflow --------------------------------------------------------------------


def test_a_viewer_is_refused_with_a_page_that_says_why_and_nothing_changes(dashboard, backend):
    admin = sign_in(dashboard(), ADMIN)
    make_accounts(admin)
    content_id = new_draft(admin)
    assert set_status(admin, content_id, "in_review").status_code == 303
    viewer = sign_in(dashboard(), VIEWER)
    refused = set_status(viewer, content_id, "approved")
    assert refused.status_code == 403
    assert "Your role (viewer) may not approve content someone else submitted" in refused.text
    assert viewer.get("/admin/users").status_code == 403
    assert viewer.get(f"/admin/content/{content_id}").status_code == 200  # reading is allowed
    assert backend.rows("SELECT status FROM content")[0][0] == "in_review"


def test_an_editor_cannot_approve_their_own_submission_a_second_editor_can_and_an_admin_self_approval_is_recorded(
    dashboard, backend
):
    admin = sign_in(dashboard(), ADMIN)
    make_accounts(admin)
    editor, second = sign_in(dashboard(), EDITOR), sign_in(dashboard(), EDITOR2)
    content_id = new_draft(editor)
    assert set_status(editor, content_id, "in_review").status_code == 303
    own = set_status(editor, content_id, "approved")
    assert own.status_code == 403 and "you cannot approve it" in own.text
    assert set_status(second, content_id, "approved").status_code == 303
    assert set_status(editor, content_id, "published").status_code == 303
    history = backend.rows("SELECT from_status, to_status, actor, self_approval FROM content_transitions ORDER BY id")
    assert history == [
        (None, "draft", EDITOR[0], False),
        ("draft", "in_review", EDITOR[0], False),
        ("in_review", "approved", EDITOR2[0], False),
        ("approved", "published", EDITOR[0], False),
    ]
    page = admin.get(f"/admin/content/{content_id}")
    assert "published" in page.text and EDITOR2[0] in page.text

    mine = new_draft(admin, "Admin's own")
    set_status(admin, mine, "in_review")
    assert set_status(admin, mine, "approved").status_code == 303
    assert backend.rows("SELECT self_approval FROM content_transitions WHERE to_status = 'approved' ORDER BY id")[-1][0] in (True, 1)
    assert "self-approval (admin)" in admin.get(f"/admin/content/{mine}").text


def test_publishing_skips_no_step_for_people(dashboard, backend):
    admin = sign_in(dashboard(), ADMIN)
    content_id = new_draft(admin)
    refused = set_status(admin, content_id, "published")
    assert refused.status_code == 409
    assert "content that is draft cannot become published; it can become in_review, archived" in refused.text
    assert backend.rows("SELECT status FROM content")[0][0] == "draft"


def test_editing_approved_content_withdraws_the_approval(dashboard, backend):
    admin = sign_in(dashboard(), ADMIN)
    make_accounts(admin)
    content_id = new_draft(admin)
    set_status(admin, content_id, "in_review")
    set_status(sign_in(dashboard(), EDITOR), content_id, "approved")
    response = admin.patch(f"/api/v1/content/{content_id}", json={"body": "Changed after review."},
                           headers={**AUTH, "If-Match": '"3"'})
    assert response.status_code == 200 and response.json()["status"] == "draft"
    assert backend.rows("SELECT note FROM content_transitions ORDER BY id")[-1][0] == "approval withdrawn: edited after approval"


def test_two_sessions_editing_the_same_item_the_second_sees_both_versions(dashboard, backend):
    admin = sign_in(dashboard(), ADMIN)
    make_accounts(admin)
    editor = sign_in(dashboard(), EDITOR)
    content_id = new_draft(admin)
    form_a = admin.get(f"/admin/content/{content_id}/edit").text
    form_b = editor.get(f"/admin/content/{content_id}/edit").text
    token = lambda page: re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # noqa: E731
    fields = {"title": "Iwagumi stones", "content_type": "article", "tags": "layout", "version": "1"}
    first = admin.post(f"/admin/content/{content_id}/edit", data={**fields, "csrf_token": token(form_a), "body": "Admin's words."},
                       follow_redirects=False)
    assert first.status_code == 303
    second = editor.post(f"/admin/content/{content_id}/edit", data={**fields, "csrf_token": token(form_b), "body": "Editor's words."})
    assert second.status_code == 409
    assert "Someone else saved this item while you were editing" in second.text
    assert "Admin&#39;s words." in second.text and "Editor&#39;s words." in second.text
    assert 'name="version" value="2"' in second.text  # saving again deliberately replaces version 2
    assert backend.rows("SELECT body, version FROM content")[0] == ("Admin's words.", 2)


# --- REQUIRE_REVIEW through the API --------------------------------------------------------------------------


def test_require_review_on_refuses_unreviewed_publishing_through_the_api(dashboard, backend):
    client = dashboard(require_review=True)
    payload = {"title": "t", "body": "b", "content_type": "article"}
    created = client.post("/api/v1/content", json={**payload, "status": "published"}, headers=AUTH)
    assert created.status_code == 409
    assert created.json()["detail"] == (
        "status: content cannot be created as published while review is required (REQUIRE_REVIEW); "
        "create it as a draft and have it approved in the admin dashboard"
    )
    assert backend.count("content") == 0
    draft = client.post("/api/v1/content", json=payload, headers=AUTH).json()
    url = f"/api/v1/content/{draft['id']}"
    publish = client.patch(url, json={"status": "published"}, headers={**AUTH, "If-Match": '"1"'})
    assert publish.status_code == 409
    assert publish.json()["detail"] == (
        "status: content must be approved in the admin dashboard before it is published (REQUIRE_REVIEW is on); it is draft"
    )
    approve = client.patch(url, json={"status": "approved"}, headers={**AUTH, "If-Match": '"1"'})
    assert approve.status_code == 409 and "only a person can approve" in approve.json()["detail"]
    assert backend.rows("SELECT status, version FROM content") == [("draft", 1)]
    # A person approves in the dashboard; then the API client may publish.
    submit = client.patch(url, json={"status": "in_review"}, headers={**AUTH, "If-Match": '"1"'})
    assert submit.status_code == 200
    sign_in(client, ADMIN)
    assert set_status(client, draft["id"], "approved").status_code == 303
    published = client.patch(url, json={"status": "published"}, headers={**AUTH, "If-Match": '"3"'})
    assert published.status_code == 200 and published.json()["published_at"]
    actors = [r[0] for r in backend.rows("SELECT actor FROM content_transitions ORDER BY id")]
    assert actors[0].startswith("api-key:") and actors[2] == ADMIN[0] and actors[3].startswith("api-key:")


def test_require_review_off_keeps_todays_clients_working(dashboard, backend):
    client = dashboard(require_review=False)
    created = client.post("/api/v1/content", json={"title": "t", "body": "b", "content_type": "article",
                                                   "status": "published"}, headers=AUTH)
    assert created.status_code == 201 and created.json()["status"] == "published"
    assert backend.rows("SELECT to_status FROM content_transitions") == [("published",)]
    assert backend.count("audit_log", "action = 'content.create'") == 1


def test_the_openapi_document_shows_the_workflow_states(dashboard):
    doc = dashboard().get("/openapi.json").json()
    assert doc["components"]["schemas"]["ContentStatus"]["enum"] == ["draft", "in_review", "approved", "published", "archived"]
    assert "409" in doc["paths"]["/api/v1/content/{content_id}"]["patch"]["responses"]
    assert not any(path.startswith("/admin") for path in doc["paths"])


# --- audit log --------------------------------------------------------------------------------------------------


def test_the_audit_log_is_written_shown_read_only_and_append_only(dashboard, backend):
    admin = sign_in(dashboard(), ADMIN)
    content_id = new_draft(admin)
    set_status(admin, content_id, "in_review")
    actions = audit_actions(backend)
    assert actions[:2] == ["user.create", "signin.success"] and "content.create" in actions and "content.in_review" in actions
    ip = backend.rows("SELECT client_ip FROM audit_log WHERE action = 'signin.success'")[0][0]
    assert ip == "testclient"
    page = admin.get("/admin/audit", params={"action": "content."})
    assert page.status_code == 200 and "content.in_review" in page.text and "signin.success" not in page.text
    assert "<form method=\"post\"" not in page.text.split("<main", 1)[1].split("</main>")[0]  # nothing to edit there
    assert admin.post("/admin/audit", data={}).status_code == 405
    if backend.name == "postgres":
        with pytest.raises(Exception, match="append-only"):
            with backend.engine.begin() as conn:
                conn.execute(text("UPDATE audit_log SET actor = 'someone else'"))
        with pytest.raises(Exception, match="append-only"):
            with backend.engine.begin() as conn:
                conn.execute(text("DELETE FROM audit_log"))


# --- pages ------------------------------------------------------------------------------------------------------


def test_newsletter_compose_preview_test_and_send_reach_every_subscriber(dashboard, backend, mailbox):
    admin = sign_in(dashboard(), ADMIN)
    for i in range(3):
        backend_sub = admin.post("/api/v1/subscribers", json={"email": f"reader{i}@example.com"})
        assert backend_sub.status_code == 201
    with backend.engine.begin() as conn:
        conn.execute(text("UPDATE subscribers SET status = 'confirmed'"))
    item = admin.post("/api/v1/content", json={"title": "Moss", "body": "Java moss grows slowly.",
                                               "content_type": "article", "status": "published"}, headers=AUTH).json()
    mailbox.clear()
    composed = post(admin, "/admin/newsletters", "/admin/newsletters", subject="May issue", content_ids=item["id"])
    assert composed.status_code == 303
    detail_url = composed.headers["location"]
    page = admin.get(detail_url)
    assert "Java moss grows slowly." in page.text and "Unsubscribe token: preview-token" in page.text
    assert post(admin, f"{detail_url}/test", detail_url).status_code == 303
    assert [m["Subject"] for m in mailbox.to(ADMIN[0])] == ["[Test] May issue"]
    assert post(admin, f"{detail_url}/send", detail_url, confirm="yes").status_code == 303
    assert all(len(mailbox.to(f"reader{i}@example.com")) == 1 for i in range(3))
    page = admin.get(detail_url)
    assert re.search(r'id="sent-count">3<', page.text)
    export = admin.get("/admin/subscribers/export.csv", params={"status": "confirmed"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    lines = export.text.strip().splitlines()
    assert lines[0] == "email,name,status,created_at,confirmed_at,unsubscribed_at" and len(lines) == 4
    assert {"newsletter.create", "newsletter.test_send", "newsletter.send", "subscribers.export"} <= set(audit_actions(backend))


def test_every_page_renders_for_an_admin(dashboard, web):
    admin = sign_in(dashboard(), ADMIN)
    content_id = new_draft(admin)
    for path in ("/admin/", "/admin/content", "/admin/content?status=in_review&q=stone", f"/admin/content/{content_id}",
                 f"/admin/content/{content_id}/edit", "/admin/content/new", "/admin/generate", "/admin/scraping",
                 "/admin/newsletters", "/admin/subscribers", "/admin/users", "/admin/audit"):
        response = admin.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert '<a class="skip-link" href="#main">' in response.text and "<script" not in response.text


def test_generation_from_the_dashboard_makes_a_draft_and_names_the_provider(dashboard, backend):
    admin = sign_in(dashboard(), ADMIN)
    response = post(admin, "/admin/generate", "/admin/generate", topic="Carpet plants", content_type="article",
                    tone="friendly", length="short")
    assert response.status_code == 303
    page = admin.get(response.headers["location"])
    assert "Generated a new draft with provider local." in page.text
    assert backend.rows("SELECT status FROM content") == [("draft",)]
    assert backend.rows("SELECT note FROM content_transitions")[0][0] == "generated by local"


def test_an_admin_manages_accounts_and_the_last_admin_cannot_be_removed(dashboard, backend):
    admin = sign_in(dashboard(), ADMIN)
    make_accounts(admin)
    editor_id = backend.rows("SELECT id FROM users WHERE email = :e", e=EDITOR[0])[0][0]
    editor_id = str(editor_id) if backend.name == "postgres" else str(__import__("uuid").UUID(editor_id))
    editor = sign_in(dashboard(), EDITOR)
    assert post(admin, f"/admin/users/{editor_id}/disable", "/admin/users").status_code == 303
    assert editor.get("/admin/", follow_redirects=False).status_code == 303  # their session ended
    token = csrf_of(editor, "/admin/login")
    refused = editor.post("/admin/login", data={"csrf_token": token, "email": EDITOR[0], "password": EDITOR[1]})
    assert refused.status_code == 403 and "This account is disabled" in refused.text
    admin_id = backend.rows("SELECT id FROM users WHERE email = :e", e=ADMIN[0])[0][0]
    admin_id = str(admin_id) if backend.name == "postgres" else str(__import__("uuid").UUID(admin_id))
    last = post(admin, f"/admin/users/{admin_id}/role", "/admin/users", role="editor")
    assert last.status_code == 409 and "is the last active admin" in last.text
    duplicate = post(admin, "/admin/users", "/admin/users", email=EDITOR[0], display_name="x", role="viewer",
                     password="long enough password")
    assert duplicate.status_code == 409 and "already exists" in duplicate.text


# --- command line and migration ------------------------------------------------------------------------------------


def test_admin_commands_create_disable_and_reset_with_clear_errors_and_exit_codes(tmp_path):
    env = {"DATA_DIR": str(tmp_path), "DATABASE_URL": "", "REDIS_URL": "", "PATH": "/usr/bin:/bin"}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app", "admin", *args], input=stdin, capture_output=True,
                              text=True, env=env, timeout=60)

    created = run("create-user", "--email", "ops@example.com", "--name", "Ops", "--role", "admin", "--password-stdin",
                  stdin="a long enough password\n")
    assert created.returncode == 0 and "created admin account ops@example.com" in created.stdout
    again = run("create-user", "--email", "ops@example.com", "--name", "Ops", "--role", "admin", "--password-stdin",
                stdin="a long enough password\n")
    assert again.returncode == 1 and "an account for ops@example.com already exists" in again.stderr
    short = run("reset-password", "--email", "ops@example.com", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "password: must be 12 to 1024 characters long" in short.stderr
    assert run("reset-password", "--email", "ops@example.com", "--password-stdin", stdin="another long password\n").returncode == 0
    missing = run("disable-user", "--email", "nobody@example.com")
    assert missing.returncode == 1 and "no account nobody@example.com" in missing.stderr
    last_admin = run("disable-user", "--email", "ops@example.com")
    assert last_admin.returncode == 1 and "ops@example.com is the last active admin" in last_admin.stderr
    assert run("create-user", "--email", "ed@example.com", "--name", "Ed", "--role", "editor", "--password-stdin",
               stdin="a long enough password\n").returncode == 0
    disabled = run("disable-user", "--email", "ed@example.com")
    assert disabled.returncode == 0 and "disabled ed@example.com" in disabled.stdout
    engine = create_sync_engine(f"sqlite:///{tmp_path / 'aquascene.db'}")
    with engine.connect() as conn:
        actions = [r[0] for r in conn.execute(text("SELECT action FROM audit_log ORDER BY id"))]
    engine.dispose()
    assert actions == ["user.create", "user.reset_password", "user.create", "user.disable"]


def test_migration_0002_goes_up_down_and_up(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    engine = create_sync_engine(url)
    new_tables = {"users", "dashboard_sessions", "content_transitions", "audit_log"}
    assert new_tables <= set(inspect(engine).get_table_names())
    migrate.downgrade(url, "0001")
    assert not new_tables & set(inspect(engine).get_table_names())
    assert "scheduled_at" not in {c["name"] for c in inspect(engine).get_columns("newsletters")}
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    engine.dispose()


def test_a_newsletter_is_scheduled_and_sent_when_due(dashboard, backend, mailbox):
    from app.domain import newsletters

    admin = sign_in(dashboard(), ADMIN)
    assert admin.post("/api/v1/subscribers", json={"email": "due@example.com"}).status_code == 201
    with backend.engine.begin() as conn:
        conn.execute(text("UPDATE subscribers SET status = 'confirmed'"))
    item = admin.post("/api/v1/content", json={"title": "Moss", "body": "Slow.", "content_type": "article",
                                               "status": "published"}, headers=AUTH).json()
    detail_url = post(admin, "/admin/newsletters", "/admin/newsletters", subject="Later",
                      content_ids=item["id"]).headers["location"]
    past = post(admin, f"{detail_url}/schedule", detail_url, scheduled_at="2001-01-01T09:00")
    assert past.status_code == 422 and "scheduled_at: must be in the future" in past.text
    assert post(admin, f"{detail_url}/schedule", detail_url, scheduled_at="2099-01-01T09:00").status_code == 303
    assert "scheduled for" in admin.get(detail_url).text
    stop_background_work(admin)  # the schedule's own loop would race the calls below
    services = admin.app.state.services
    assert admin.portal.call(newsletters.start_due, services) == 0  # not due yet
    with backend.engine.begin() as conn:
        conn.execute(text("UPDATE newsletters SET scheduled_at = :at"), {"at": "2001-01-01T09:00:00+00:00"})
    mailbox.clear()
    assert admin.portal.call(newsletters.start_due, services) == 1
    assert admin.portal.call(newsletters.start_due, services) == 0  # claimed once
    assert [m["Subject"] for m in mailbox.to("due@example.com")] == ["Later"]
    actions = audit_actions(backend)
    assert "newsletter.schedule" in actions and actions.count("newsletter.send") == 1


def test_the_overview_reports_each_roles_health_with_the_reason(dashboard, web):
    dead = f"http://127.0.0.1:{__import__('engine_support').free_port()}"
    client = sign_in(dashboard(service_role="admin-dashboard",
                               dashboard_role_urls=f"content-manager={dead},ai-processor={web.base_url}"), ADMIN)
    rows = dict(re.findall(r'<th scope="row">([a-z-]+)</th><td><span class="health health-([a-z]+)">', client.get("/admin/").text))
    assert rows == {"content-manager": "down", "ai-processor": "down", "web-scraper": "unknown", "distributor": "unknown",
                    "subscriber-manager": "unknown", "admin-dashboard": "healthy"}
    page = client.get("/admin/").text
    assert f"{dead}: ConnectError" in page and "not listed in DASHBOARD_ROLE_URLS" in page
    assert client.get("/", follow_redirects=False).headers["location"] == "/admin/"
    assert client.get("/api/v1/content", headers=AUTH).status_code == 404  # the dashboard role serves no API


def test_a_malformed_dashboard_role_urls_setting_names_the_variable():
    from app.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=r"DASHBOARD_ROLE_URLS: 'content-manager': each entry must be role=http"):
        load_settings(dashboard_role_urls="content-manager")
    with pytest.raises(SettingsError, match=r"DASHBOARD_ROLE_URLS: 'distributor=ftp://x': the URL must start with http"):
        load_settings(dashboard_role_urls="distributor=ftp://x")


def test_the_dashboard_role_serves_in_production_without_api_keys(tmp_path):
    from app.main import create_app
    from app.settings import load_settings

    settings = load_settings(service_role="admin-dashboard", environment="production", api_keys="",
                             database_url="postgresql://u:p@db/x", data_dir=str(tmp_path))
    app = create_app(settings, configure_logs=False)
    assert any(getattr(route, "path", "") == "/admin" for route in app.routes)
    assert settings.resolved_port == 3000
