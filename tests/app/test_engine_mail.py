"""Subscribers (double opt-in over SMTP) and newsletters (exactly-once delivery)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from engine_support import AUTH, free_port


def subscribe(client, mailbox, email: str, confirm: bool = True) -> dict:
    response = client.post("/api/v1/subscribers", json={"email": email, "name": "Ana"})
    assert response.status_code == 201, response.text
    if confirm:
        token = confirmation_token(mailbox, email)
        assert client.post("/api/v1/subscribers/confirm", json={"token": token}).status_code == 200
    return response.json()


def confirmation_token(mailbox, email: str) -> str:
    messages = mailbox.to(email)
    assert len(messages) == 1
    match = re.search(r"Confirmation token: (\S+)", messages[0].get_content())
    assert match
    return match.group(1)


def published(client, title: str = "Moss care") -> str:
    body = {"title": title, "body": f"All about {title}.", "content_type": "article", "status": "published"}
    return client.post("/api/v1/content", json=body, headers=AUTH).json()["id"]


# --- subscribers --------------------------------------------------------------------------


def test_subscribe_mails_a_token_and_confirm_activates(client, backend, mailbox):
    response = client.post("/api/v1/subscribers", json={"email": "Ana@Example.com", "preferences": {"topics": ["moss"]}})
    assert response.status_code == 201
    assert response.json()["status"] == "pending" and response.json()["email"] == "ana@example.com"
    token = confirmation_token(mailbox, "ana@example.com")
    assert mailbox.to("ana@example.com")[0]["Subject"] == "Confirm your AquaScene newsletter subscription"
    stored = backend.rows("SELECT status, confirm_token_hash FROM subscribers")
    assert stored[0][0] == "pending" and stored[0][1] != token  # only a hash is stored

    confirmed = client.post("/api/v1/subscribers/confirm", json={"token": token})
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    assert client.post("/api/v1/subscribers/confirm", json={"token": token}).json()["status"] == "confirmed"
    assert backend.rows("SELECT status FROM subscribers") == [("confirmed",)]


def test_duplicate_subscription_is_idempotent(client, backend, mailbox):
    first = client.post("/api/v1/subscribers", json={"email": "dup@example.com"})
    again = client.post("/api/v1/subscribers", json={"email": "DUP@example.com"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert backend.count("subscribers") == 1
    assert len(mailbox.to("dup@example.com")) == 1


def test_unsubscribe_and_resubscribe(client, backend, mailbox):
    sub = subscribe(client, mailbox, "leave@example.com")
    token = backend.rows("SELECT unsubscribe_token FROM subscribers")[0][0]
    gone = client.post("/api/v1/subscribers/unsubscribe", json={"token": token})
    assert gone.status_code == 200 and gone.json() == {**sub, "status": "unsubscribed"}
    mailbox.clear()
    back = client.post("/api/v1/subscribers", json={"email": "leave@example.com"})
    assert back.status_code == 200 and back.json()["status"] == "pending" and back.json()["id"] == sub["id"]
    assert len(mailbox.to("leave@example.com")) == 1


def test_expired_pending_subscription_gets_a_new_token(client, backend, mailbox):
    client.post("/api/v1/subscribers", json={"email": "late@example.com"})
    old_token = confirmation_token(mailbox, "late@example.com")
    with backend.engine.begin() as conn:
        conn.execute(text("UPDATE subscribers SET confirm_expires_at = :t"), {"t": datetime(2000, 1, 1, tzinfo=UTC)})
    expired = client.post("/api/v1/subscribers/confirm", json={"token": old_token})
    assert expired.status_code == 410
    assert expired.json()["detail"] == "token: confirmation token has expired; subscribe again"
    mailbox.clear()
    again = client.post("/api/v1/subscribers", json={"email": "late@example.com"})
    assert again.status_code == 200 and again.json()["status"] == "pending"
    new_token = confirmation_token(mailbox, "late@example.com")
    assert new_token != old_token
    assert client.post("/api/v1/subscribers/confirm", json={"token": new_token}).json()["status"] == "confirmed"
    assert backend.count("subscribers") == 1


@pytest.mark.parametrize(
    ("path", "token", "status", "message"),
    [
        ("confirm", "x" * 32, 404, "token: unknown confirmation token"),
        ("unsubscribe", "x" * 32, 404, "token: unknown unsubscribe token"),
        ("confirm", "short", 422, "token: String should have at least 16 characters"),
    ],
)
def test_bad_tokens(client, path, token, status, message):
    response = client.post(f"/api/v1/subscribers/{path}", json={"token": token})
    assert response.status_code == status
    assert response.json()["detail"] == message


def test_invalid_email_is_rejected_and_nothing_written(client, backend, mailbox):
    response = client.post("/api/v1/subscribers", json={"email": "not-an-email"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("email: value is not a valid email address")
    assert backend.count("subscribers") == 0 and not mailbox.messages


def test_smtp_failure_stores_nothing(make_client, backend):
    client = make_client(smtp_port=free_port(), smtp_timeout=2)
    response = client.post("/api/v1/subscribers", json={"email": "nomail@example.com"})
    assert response.status_code == 502
    assert response.json()["detail"].startswith("confirmation email could not be sent: cannot connect to SMTP server")
    assert backend.count("subscribers") == 0


def test_listing_subscribers_is_for_admins(client, mailbox):
    subscribe(client, mailbox, "one@example.com")
    subscribe(client, mailbox, "two@example.com", confirm=False)
    assert client.get("/api/v1/subscribers").status_code == 401
    page = client.get("/api/v1/subscribers", params={"status": "confirmed"}, headers=AUTH).json()
    assert page["total"] == 1 and page["items"][0]["email"] == "one@example.com"
    assert client.get("/api/v1/subscribers", headers=AUTH).json()["total"] == 2


# --- newsletters --------------------------------------------------------------------------


def test_send_delivers_exactly_once_to_confirmed_subscribers(client, backend, mailbox):
    for address in ("a@example.com", "b@example.com", "c@example.com"):
        subscribe(client, mailbox, address)
    subscribe(client, mailbox, "pending@example.com", confirm=False)
    mailbox.clear()

    ids = [published(client, "Moss care"), published(client, "Shrimp tips")]
    created = client.post("/api/v1/newsletters", json={"subject": "Weekly #1", "content_ids": ids}, headers=AUTH)
    assert created.status_code == 201
    newsletter = created.json()
    assert newsletter["status"] == "draft" and newsletter["content_ids"] == ids

    sent = client.post(f"/api/v1/newsletters/{newsletter['id']}/send", headers=AUTH)
    assert sent.status_code == 202 and sent.json()["queued"] == 3
    retried = client.post(f"/api/v1/newsletters/{newsletter['id']}/send", headers=AUTH)
    assert retried.status_code == 202 and retried.json()["queued"] == 0

    for address in ("a@example.com", "b@example.com", "c@example.com"):
        messages = mailbox.to(address)
        assert len(messages) == 1, address
        text = messages[0].get_content()
        assert "Moss care" in text and "Shrimp tips" in text and "Unsubscribe token:" in text
        assert messages[0]["List-Unsubscribe"]
    assert mailbox.to("pending@example.com") == []
    assert backend.count("deliveries") == 3

    status = client.get(f"/api/v1/newsletters/{newsletter['id']}", headers=AUTH).json()
    assert status["status"] == "sent"
    assert status["deliveries"] == {"total": 3, "pending": 0, "sending": 0, "sent": 3, "failed": 0, "skipped": 0}


def test_retried_send_after_a_failure_never_duplicates(client, backend, mailbox):
    for address in ("ok@example.com", "flaky@example.com"):
        subscribe(client, mailbox, address)
    mailbox.clear()
    mailbox.reject_once.add("flaky@example.com")
    newsletter = client.post(
        "/api/v1/newsletters", json={"subject": "Issue 2", "content_ids": [published(client)]}, headers=AUTH
    ).json()
    url = f"/api/v1/newsletters/{newsletter['id']}"

    client.post(f"{url}/send", headers=AUTH)
    first = client.get(url, headers=AUTH).json()
    assert first["status"] == "failed"
    assert first["deliveries"]["sent"] == 1 and first["deliveries"]["failed"] == 1

    retry = client.post(f"{url}/send", headers=AUTH)
    assert retry.json()["queued"] == 1
    final = client.get(url, headers=AUTH).json()
    assert final["status"] == "sent" and final["deliveries"]["sent"] == 2
    assert len(mailbox.to("ok@example.com")) == 1
    assert len(mailbox.to("flaky@example.com")) == 1
    assert backend.rows("SELECT attempts FROM deliveries ORDER BY attempts") == [(1,), (2,)]


def test_new_subscribers_get_a_resent_newsletter_once(client, mailbox):
    subscribe(client, mailbox, "early@example.com")
    newsletter = client.post(
        "/api/v1/newsletters", json={"subject": "Issue 3", "content_ids": [published(client)]}, headers=AUTH
    ).json()
    client.post(f"/api/v1/newsletters/{newsletter['id']}/send", headers=AUTH)
    subscribe(client, mailbox, "late@example.com")
    client.post(f"/api/v1/newsletters/{newsletter['id']}/send", headers=AUTH)
    assert len([m for m in mailbox.to("early@example.com") if m["Subject"] == "Issue 3"]) == 1
    assert len([m for m in mailbox.to("late@example.com") if m["Subject"] == "Issue 3"]) == 1


def test_send_with_idempotency_key_replays(client, mailbox):
    subscribe(client, mailbox, "idem@example.com")
    newsletter = client.post(
        "/api/v1/newsletters", json={"subject": "Issue 4", "content_ids": [published(client)]}, headers=AUTH
    ).json()
    headers = {**AUTH, "Idempotency-Key": "send-issue-4"}
    first = client.post(f"/api/v1/newsletters/{newsletter['id']}/send", headers=headers)
    again = client.post(f"/api/v1/newsletters/{newsletter['id']}/send", headers=headers)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len([m for m in mailbox.to("idem@example.com") if m["Subject"] == "Issue 4"]) == 1


LINE = "must be one line (no line breaks or control characters) with a visible character"


def test_bad_newsletters_are_rejected_and_nothing_written(client, backend):
    unknown = str(uuid.uuid4())
    draft = client.post(
        "/api/v1/content", json={"title": "d", "body": "d", "content_type": "article"}, headers=AUTH
    ).json()["id"]
    cases = [
        ({"subject": "S", "content_ids": [unknown]}, 404, f"content_ids: unknown content id(s): {unknown}"),
        ({"subject": "S", "content_ids": [draft]}, 409, f"content_ids: content must be published first: {draft}"),
        ({"subject": "S", "content_ids": []}, 422, "content_ids: List should have at least 1 item after validation, not 0"),
        ({"subject": "", "content_ids": [draft]}, 422, "subject: String should have at least 1 character"),
        ({"subject": "Hi\nBcc: x@evil.test", "content_ids": [draft]}, 422, f"subject: {LINE}"),
    ]
    for payload, status, message in cases:
        response = client.post("/api/v1/newsletters", json=payload, headers=AUTH)
        assert response.status_code == status
        assert response.json()["detail"] == message
    assert backend.count("newsletters") == 0 and backend.count("newsletter_items") == 0
    assert client.post("/api/v1/newsletters", json={"subject": "S", "content_ids": [draft]}).status_code == 401
    assert client.post(f"/api/v1/newsletters/{unknown}/send", headers=AUTH).status_code == 404
    assert client.get(f"/api/v1/newsletters/{unknown}", headers=AUTH).status_code == 404


def test_content_in_a_newsletter_cannot_be_deleted(client, backend):
    content_id = published(client)
    client.post("/api/v1/newsletters", json={"subject": "S", "content_ids": [content_id]}, headers=AUTH)
    response = client.delete(f"/api/v1/content/{content_id}", headers=AUTH)
    assert response.status_code == 409
    assert backend.count("content") == 1
