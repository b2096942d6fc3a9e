"""`aquascene diff`: effective settings and rendered facts of two stacks, side by side."""

from __future__ import annotations

import json

from tests.conftest import REPO
from tooling.cli import main


def test_staging_against_prod_shows_what_matters(capsys):
    assert main(["diff", "staging", "prod", "--json", "--project-dir", str(REPO)]) == 0
    document = json.loads(capsys.readouterr().out)
    rows = {(r["part"], r["setting"]): (r["staging"], r["prod"]) for r in document["rows"]}
    assert rows[("service ai-processor", "HPA ai-processor min..max (rendered)")] == ("2..5", "3..10")
    assert rows[("service content-manager", "replicas")] == (2, 3)
    assert rows[("postgresql", "mode")] == ("statefulset", "cloudnative-pg")
    assert rows[("postgresql", "instances (rendered)")] == ("2 (StatefulSets)", "3 (CloudNativePG Cluster)")
    assert rows[("pooler", "instances (rendered)")] == ("2 (PgBouncer Deployment)", "3 (CloudNativePG Pooler)")
    assert rows[("routes", "TLS issuer (rendered ClusterIssuer)")] == (["letsencrypt-staging"], ["letsencrypt-production"])
    assert rows[("policy levels", "image-digest-pinned")] == ("advisory", "mandatory")
    assert rows[("monitoring", "alertmanager_replicas")] == (1, 2)
    assert rows[("add-ons", "cert-manager")] == ("asserted present (certificates.cert-manager.io)",
                                                 "installed, chart v1.21.2")
    assert all(r["differs"] for r in document["rows"])  # without --all, only differences


def test_a_stack_against_itself_differs_nowhere(capsys):
    assert main(["diff", "dev", "dev", "--project-dir", str(REPO)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dev and dev: nothing differs")
    assert main(["diff", "dev", "dev", "--all", "--json", "--project-dir", str(REPO)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["differences"] == 0 and document["rows"]
    assert {r["part"] for r in document["rows"]} >= {"postgresql", "redis", "object store", "pooler", "backups",
                                                       "monitoring", "routes", "aws", "add-ons", "policy levels"}
    assert any(r["setting"].startswith("alert ") for r in document["rows"])


def test_an_unknown_stack_is_a_usage_error(capsys):
    assert main(["diff", "dev", "nosuchstack", "--project-dir", str(REPO)]) == 2
    assert "nosuchstack" in capsys.readouterr().err
