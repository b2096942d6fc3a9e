"""Rotating a generated password (`pulumi up --replace` on its RandomPassword) rolls exactly the
workloads that read it: their pod templates carry a hash of it, so a new value is a new template.

The recording generates each password from its resource name; the test rotates one by
generating a different value for that name and compares the two recordings."""

from __future__ import annotations

import pytest

import tooling.recording as recording
from tests.conftest import recorded_stack, stack_config

POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def templates(rec) -> dict[tuple[str, str], dict]:
    """(kind, resource name) -> the pod template's annotations."""
    return {(r.kind, r.name): r.plain_inputs["spec"]["template"]["metadata"].get("annotations", {})
            for r in rec.kubernetes() if r.kind in POD_KINDS}


def rotated(monkeypatch, env: str, password: str):
    original = recording._fake_secret

    def fake(name: str, length: int) -> str:
        value = original(name, length)
        return value[::-1] if name == password else value  # a different value, same shape

    monkeypatch.setattr(recording, "_fake_secret", fake)
    from stacks.program import program

    return recording.record(program, stack=env, config=stack_config(env))


def rolled(before, after) -> set[str]:
    a, b = templates(before), templates(after)
    assert a.keys() == b.keys()
    return {name for (kind, name) in a if a[(kind, name)] != b[(kind, name)]}


SERVICES = {f"{s}-deployment" for s in ("content-manager", "ai-processor", "web-scraper", "distributor",
                                         "subscriber-manager", "admin-dashboard")}


@pytest.mark.parametrize("env, password, expected", [
    # The app's database password: every service (their DATABASE_URL) and PgBouncer (its user list).
    ("staging", "postgres-app-password", SERVICES | {"postgres-pooler-deployment"}),
    # Redis: the services and Redis itself (it reads requirepass at start).
    ("staging", "redis-password", SERVICES | {"redis-statefulset"}),
    # The object store's app key: the services, and the Job that sets it on the store's app user.
    ("dev", "object-store-app-secret-key", SERVICES | {"object-store-buckets"}),
    # The generated API key: the services.
    ("dev", "content-engine-api-key", SERVICES),
    # The first admin's password: the admin dashboard alone (it bootstraps the account from it).
    ("prod", "admin-bootstrap-password", {"admin-dashboard-deployment"}),
    # The read-only database user's password: Grafana (it reads it when it provisions the datasource).
    ("prod", "postgres-readonly-password", {"grafana-statefulset"}),
])
def test_rotating_a_password_rolls_the_workloads_that_read_it(monkeypatch, env, password, expected):
    assert rolled(recorded_stack(env), rotated(monkeypatch, env, password)) == expected


def test_cloudnative_pg_reconciles_the_app_password_from_its_secret(run_stack):
    """In cloudnative-pg mode the operator sets the rotated password in PostgreSQL itself."""
    (cluster,) = run_stack("prod").of_type("kubernetes:postgresql.cnpg.io/v1:Cluster")
    roles = {r["name"]: r for r in cluster.plain_inputs["spec"]["managed"]["roles"]}
    assert roles["aquascene"]["passwordSecret"] == {"name": "postgres-app"}
    assert roles["aquascene"]["login"] is True and roles["aquascene"]["createdb"] is True
