"""What the Graph API's errors mean to the worker, and what Instagram refuses (no services)."""

from __future__ import annotations

import pytest

from app.instagram import caption_problem, classify
from graph_standin import graph_error


@pytest.mark.parametrize("status, body, kind, words", [
    # Throttling (the error-handling guide's codes 4, 17, 32, 613) and the account's publishing limit.
    *[(400, graph_error(400, "limit", code)[1], "rate_limited", "rate limited") for code in (4, 17, 32, 613)],
    (400, graph_error(400, "max posts", 9, subcode=2207042)[1], "rate_limited", "rate limited"),
    (400, graph_error(400, "expired", 190, subcode=463)[1], "permanent", "access token expired"),
    (400, {"error": {"message": "logged out", "type": "OAuthException"}}, "permanent", "access token expired"),
    (403, graph_error(403, "denied", 10)[1], "permanent", "permission missing"),
    (403, graph_error(403, "denied", 200)[1], "permanent", "permission missing"),
    (500, graph_error(500, "unknown", 1)[1], "transient", "temporary"),
    (400, graph_error(400, "try again", 2, transient=True)[1], "transient", "temporary"),
    (400, graph_error(400, "Only photo or video", 9004, subcode=2207052)[1], "permanent", "invalid media"),
    (502, None, "transient", "without an error object"),
    (404, "<html>", "permanent", "without an error object"),
])
def test_graph_errors_are_sorted_by_what_to_do(status, body, kind, words):
    error = classify(status, body)
    assert error.kind == kind and words in str(error)


def test_hashtags_and_mentions_are_counted_as_instagram_counts_them():
    assert caption_problem(" ".join(["#reef"] * 30) + " mail@example.com a#b") is None
    assert "31 hashtags" in caption_problem(" ".join(f"#t{i}" for i in range(31)))
    assert "21 @mentions" in caption_problem(" ".join(f"@u.{i}" for i in range(21)))
    assert "2201 characters" in caption_problem("x" * 2201)
