"""The image every workload runs: built from app/Dockerfile (.ci/image.sh), run as Kubernetes runs it."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import psycopg
import pytest

from components import postgres
from components.kube import image_version
from tests.image.conftest import API_KEY, Container, Runner, podman

pytestmark = pytest.mark.image


def request(url: str, method: str = "GET", body: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=15) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def content_rows(url: str, title: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, title FROM content WHERE title = %s", (title,)).fetchall()


def image_roles(runner: Runner) -> dict[str, int]:
    """Every role the engine in the image knows and its port (`all` aside: it serves them together)."""
    result = runner.run("python", "-c", "import json; from app.settings import ROLE_PORTS; "
                        "print(json.dumps({r.value: p for r, p in ROLE_PORTS.items()}))",
                        env={}, network="none")
    assert result.returncode == 0, result.stderr
    return {role: port for role, port in json.loads(result.stdout).items() if role != "all"}


# ------------------------------------------------------------------ what the image is


def test_runs_as_10001_with_the_healthcheck_and_the_engine_as_its_command(image_config):
    config = image_config["Config"]
    assert config["User"] == "10001:10001"
    assert config["Cmd"] == ["python", "-m", "app", "serve"]
    # podman shows the docker-format HEALTHCHECK beside Config (the OCI format has none)
    assert image_config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "app", "healthcheck"]
    assert config["Env"] and "ENVIRONMENT=production" in config["Env"]


def test_carries_no_installer_no_dead_command_and_a_pg_dump_for_the_stacks_postgresql(runner):
    script = ("import importlib.util, json, os, shutil, subprocess, sys; "
              "print(json.dumps({'installers': [m for m in ('pip', 'setuptools', 'wheel') if importlib.util.find_spec(m)], "
              "'bin': sorted(os.listdir(sys.prefix + '/bin')), 'pip_on_path': shutil.which('pip') or shutil.which('pip3'), "
              "'pg_dump': subprocess.run(['pg_dump', '--version'], capture_output=True, text=True).stdout, "
              "'pg_restore': subprocess.run(['pg_restore', '--version'], capture_output=True, text=True).stdout, "
              "'engine': __import__('app').__file__}))")
    result = runner.run("python", "-c", script, env={}, network="none")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["installers"] == [] and found["pip_on_path"] is None
    # only the interpreter: no `aquascene` (the toolkit's command), no dependency's console script
    assert all(name.startswith("python") for name in found["bin"]), found["bin"]
    assert found["engine"].startswith("/opt/venv/lib/")  # the installed engine, not a source tree
    server_major = int(image_version(postgres.IMAGE).split(".")[0])
    for tool in ("pg_dump", "pg_restore"):
        major = re.search(r"\(PostgreSQL\) (\d+)", found[tool])
        assert major and int(major.group(1)) >= server_major, found[tool]


# ------------------------------------------------------------------ serving


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only root", "writable root"])
def test_serves_health_ready_and_an_authenticated_content_round_trip(runner, engine_env, database, read_only):
    """On a writable root the same run must leave the root as a container that ran nothing leaves
    it (`podman diff`): the engine writes nothing outside /tmp, so Kubernetes' read-only root
    costs it nothing."""
    container = runner.start(engine_env, read_only=read_only)
    health = container.wait_healthy()
    assert health["status"] == "healthy", health
    assert health["checks"] == {"database": "healthy", "redis": "healthy", "storage": "healthy"}
    assert health["service"] == "content-manager"
    assert request(f"{container.base_url}/ready")[0] == 200

    title = f"Image test {container.name}"
    article = {"title": title, "body": "Carpet plants under 0.5 W/L.", "content_type": "article"}
    status, body = request(f"{container.base_url}/api/v1/content", "POST", article)
    assert status == 401 and content_rows(database["direct"], title) == []  # nothing written without a key
    status, created = request(f"{container.base_url}/api/v1/content", "POST", article, {"X-API-Key": API_KEY})
    assert status == 201, created
    assert [(str(r[0]), r[1]) for r in content_rows(database["direct"], title)] == [(created["id"], title)]
    status, read = request(f"{container.base_url}/api/v1/content/{created['id']}", headers={"X-API-Key": API_KEY})
    assert status == 200 and read["title"] == title and read["body"] == article["body"]

    probe = container.exec("python", "-m", "app", "healthcheck")
    assert probe.returncode == 0, probe.stdout + probe.stderr + container.logs()
    if not read_only:
        changed = set(podman("diff", container.name).stdout.split("\n")) - {""}
        assert changed - runner.untouched_diff(engine_env) == set(), "the engine wrote outside /tmp"


def test_every_role_starts_on_its_port(runner, engine_env):
    roles = image_roles(runner)
    assert {"content-manager", "ai-processor", "web-scraper", "distributor", "subscriber-manager"} <= set(roles)
    # Each role in a network namespace of its own (as in a pod), so its own port cannot clash with
    # anything on this machine; the embedded defaults stand in for the database it cannot reach.
    containers: dict[str, Container] = {}
    for role, port in roles.items():
        env = {"SERVICE_ROLE": role, "ENVIRONMENT": "staging", "API_KEYS": API_KEY, "LOG_LEVEL": "WARNING"}
        containers[role] = runner.start(env, network="none", role_port=port)
    for role, container in containers.items():
        probe = (f"import json, time, urllib.request\n"
                 f"for _ in range(120):\n"
                 f"    try:\n"
                 f"        print(urllib.request.urlopen('http://127.0.0.1:{container.port}/health', timeout=2).read().decode()); break\n"
                 f"    except OSError: time.sleep(0.5)\n")
        answer = container.exec("python", "-c", probe)
        assert answer.returncode == 0 and answer.stdout.strip(), f"{role}: {answer.stderr}\n{container.logs()}"
        health = json.loads(answer.stdout)
        assert health["service"] == role and health["status"] == "healthy", (role, health)
        check = container.exec("python", "-m", "app", "healthcheck")
        assert check.returncode == 0, (role, check.stderr, container.logs())


# ------------------------------------------------------------------ backup and restore


def test_backup_and_restore_with_the_images_own_pg_dump_and_pg_restore(runner, engine_env, database, stacks_postgres):
    """The stacks' backup CronJob and restore job, run from the image: pg_dump of this machine's
    PostgreSQL to S3 (moto here), checked; then the disaster-recovery restore onto a fresh server
    of the major the stacks run. (The image's pg_restore, of that major, cannot restore into an
    older server: it sets `transaction_timeout`, which older servers do not know.)"""
    container = runner.start(engine_env)
    container.wait_healthy()
    titles = [f"Backup drill {container.name} {i}" for i in range(3)]
    for title in titles:
        status, body = request(f"{container.base_url}/api/v1/content", "POST",
                               {"title": title, "body": "Kept across a restore.", "content_type": "guide"},
                               {"X-API-Key": API_KEY})
        assert status == 201, body
    tool_env = {**engine_env, "DATABASE_URL": database["direct"], "BACKUP_BUCKET": "system-backups"}

    backup = runner.run("python", "-m", "app.backup", "backup", "postgres", env=tool_env)
    assert backup.returncode == 0, backup.stdout + backup.stderr
    made = json.loads(backup.stdout.strip().splitlines()[-1])
    assert made["key"].startswith("postgres/production/") and made["tables"] > 0, made
    verified = runner.run("python", "-m", "app.backup", "verify", made["id"], "--target", "postgres", env=tool_env)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    restore = runner.run("python", "-m", "app.backup", "restore", "postgres", made["id"], "--target-db", "restored",
                         env={**tool_env, "DATABASE_URL": stacks_postgres})
    assert restore.returncode == 0, restore.stdout + restore.stderr
    result = json.loads(restore.stdout.strip().splitlines()[-1])
    assert result["restored_database"] == "restored" and result["swapped"] is False, result
    restored_url = psycopg.conninfo.make_conninfo(stacks_postgres, dbname="restored")
    for title in titles:
        assert content_rows(restored_url, title) == content_rows(database["direct"], title) != []
    with psycopg.connect(restored_url) as restored, psycopg.connect(database["direct"]) as live:
        count = "SELECT count(*) FROM content"
        assert restored.execute(count).fetchone() == live.execute(count).fetchone()
