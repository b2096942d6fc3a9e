"""The content engine's image, run with podman as Kubernetes runs it.

`.ci/image.sh` builds the image (or pulls the pushed one) and tags it ENGINE_IMAGE; these
tests run it: read-only root with a tmpfs /tmp, UID 10001, every capability dropped, no new
privileges. The host's network (--network host) reaches the PostgreSQL and Redis the other
tests use: the image tests work in a database of their own, `<TEST database>_image`, made
fresh for the session. Missing podman, image, PostgreSQL or Redis skips them, or fails them
under CI=true.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.moto_support import moto_s3

pytestmark = pytest.mark.image

IMAGE = os.environ.get("ENGINE_IMAGE", "localhost/aquascene/content-engine:test")
IN_CI = os.environ.get("CI") == "true"
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://aquascene:aquascene@127.0.0.1:5432/aquascene_test")
DIRECT_PG_URL = os.environ.get("TEST_DIRECT_DATABASE_URL") or PG_URL
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
API_KEY = "image-test-key"
# How Kubernetes runs the engine (the stacks' securityContext and the emptyDir on /tmp) ...
AS_KUBERNETES = ["--read-only", "--tmpfs", "/tmp:rw,mode=1777,size=256m", "--user", "10001:10001",
                 "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
# ... and what podman needs on these machines: runc, no systemd timers for the HEALTHCHECK, and
# explicit limits no higher than this process's own (podman's defaults exceed them and runc fails).
NOFILE = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
NPROC = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
PODMAN_HERE = ["--runtime", "runc", "--no-healthcheck",
               "--ulimit", f"nofile={NOFILE}:{NOFILE}", "--ulimit", f"nproc={NPROC}:{NPROC}"]


def missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def podman(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def image() -> str:
    if shutil.which("podman") is None:
        missing("podman not found: run `bash .ci/image.sh` (installs buildah/podman and builds the image)")
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        missing(f"image {IMAGE} not found: run `bash .ci/image.sh` (builds app/Dockerfile)")
    return IMAGE


@pytest.fixture(scope="session")
def image_config(image: str) -> dict[str, Any]:
    return json.loads(podman("image", "inspect", image).stdout)[0]


@pytest.fixture(scope="session")
def database() -> Iterator[dict[str, str]]:
    """A fresh database of the image tests' own: {"pooled": URL through PgBouncer, "direct": URL}."""
    import psycopg

    name = f"{make_url(DIRECT_PG_URL).database}_image"
    admin_url = with_database(DIRECT_PG_URL, "postgres")
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001
        missing(f"PostgreSQL is not reachable at {make_url(admin_url).render_as_string()} ({exc}); "
                "set TEST_DIRECT_DATABASE_URL or run `bash .ci/services.sh`")
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield {"pooled": with_database(PG_URL, name), "direct": with_database(DIRECT_PG_URL, name)}
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for row in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{name}%",)).fetchall():
            admin.execute(f'DROP DATABASE IF EXISTS "{row[0]}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        missing(f"Redis is not reachable at {REDIS_URL} ({exc}); set TEST_REDIS_URL or run `bash .ci/services.sh`")
    return REDIS_URL


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with moto_s3("content-assets", "system-backups") as endpoint:
        yield endpoint


@dataclass
class Container:
    """One running container of the image; removed by the fixture that made it."""

    name: str
    port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def exec(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *command, check=False, timeout=timeout)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return (result.stdout + result.stderr)[-4000:]

    def wait_healthy(self, url: str | None = None, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url or f"{self.base_url}/health", timeout=3) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                last = f"{exc.code} {exc.read()[:300]!r}"
            except OSError as exc:
                last = exc
            state = podman("inspect", "--format", "{{.State.Status}}", self.name, check=False).stdout.strip()
            if state not in ("running", "created", "configured"):
                break
            time.sleep(0.5)
        raise AssertionError(f"{self.name} never became healthy ({last}); logs:\n{self.logs()}")


class Runner:
    """Starts containers of the image and removes every one it started."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.names: list[str] = []

    def options(self, env: dict[str, str], network: str, read_only: bool) -> list[str]:
        flags = list(AS_KUBERNETES) if read_only else [f for f in AS_KUBERNETES if f != "--read-only"]
        return [*PODMAN_HERE, *flags, "--network", network, *[f"--env={k}={v}" for k, v in env.items()]]

    def run(self, *command: str, env: dict[str, str], network: str = "host",
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A one-off command in a container removed afterwards (`podman run --rm`)."""
        return podman("run", "--rm", *self.options(env, network, True), self.image, *command,
                      check=False, timeout=timeout)

    def start(self, env: dict[str, str], network: str = "host", read_only: bool = True,
              role_port: int | None = None) -> Container:
        """A detached container; on a free PORT, or without PORT (the role's own port) given role_port."""
        name = f"aquascene-image-test-{uuid.uuid4().hex[:10]}"
        port = role_port or free_port()
        env = dict(env) if role_port else {"PORT": str(port), **env}
        self.names.append(name)
        podman("run", "--detach", "--name", name, *self.options(env, network, read_only), self.image)
        return Container(name, port, env)

    def untouched_diff(self, env: dict[str, str]) -> set[str]:
        """`podman diff` of a writable-root container that ran nothing but the interpreter: what
        podman itself adds (the mount points of /etc/hosts, /etc/resolv.conf ...), not the engine."""
        name = f"aquascene-image-baseline-{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        podman("run", "--name", name, *self.options(env, "host", read_only=False), self.image, "python", "-c", "pass")
        return set(podman("diff", name).stdout.split("\n")) - {""}

    def remove_all(self) -> None:
        for name in self.names:
            podman("rm", "--force", "--time", "5", name, check=False)


@pytest.fixture
def runner(image: str) -> Iterator[Runner]:
    started = Runner(image)
    yield started
    started.remove_all()


@pytest.fixture(scope="session")
def engine_env(image: str, database: dict[str, str], redis_url: str, s3_endpoint: str) -> dict[str, str]:
    """The environment the stacks give a service, pointed at this machine's services; migrated."""
    env = {"ENVIRONMENT": "production", "DATABASE_URL": database["pooled"], "REDIS_URL": redis_url,
           "API_KEYS": API_KEY, "S3_ENDPOINT": s3_endpoint, "S3_ACCESS_KEY": "test", "S3_SECRET_KEY": "test",
           "S3_REGION": "us-east-1", "LOG_LEVEL": "WARNING"}
    migrated = Runner(image).run("python", "-m", "app", "migrate", env={**env, "DATABASE_URL": database["direct"]})
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    return env


@pytest.fixture(scope="session")
def stacks_postgres(image: str) -> Iterator[str]:
    """A PostgreSQL server of the major the stacks run (components/postgres.py), from Debian's
    packages on the image's base (.ci/image.sh), on a free port of this host; the URL of a
    CREATEDB role in it (its database part names no database that exists)."""
    import psycopg

    from components import postgres
    from components.kube import image_version

    major = image_version(postgres.IMAGE).split(".")[0]
    server_image = os.environ.get("POSTGRES_SERVER_IMAGE", f"localhost/aquascene/postgresql-server:{major}")
    if podman("image", "exists", server_image, check=False).returncode != 0:
        missing(f"image {server_image} not found: run `bash .ci/image.sh` (builds it beside the engine's)")
    port = free_port()
    name = f"aquascene-image-test-postgres-{uuid.uuid4().hex[:10]}"
    script = (f"initdb -D /tmp/data -U postgres --auth=trust >/dev/null && exec postgres -D /tmp/data -p {port} "
              f"-k /tmp -c listen_addresses=127.0.0.1 -c fsync=off")
    podman("run", "--detach", "--name", name, *PODMAN_HERE, "--network", "host", "--tmpfs", "/tmp:rw,mode=1777",
           "--user", "postgres", server_image, "sh", "-c", script)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True,
                                     connect_timeout=2) as conn:
                    conn.execute("CREATE ROLE aquascene LOGIN CREATEDB PASSWORD 'aquascene'")
                    assert conn.info.server_version // 10000 == int(major)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise AssertionError(podman("logs", name, check=False).stderr[-2000:]) from None
                time.sleep(0.5)
        yield f"postgresql://aquascene:aquascene@127.0.0.1:{port}/aquascene_restore"
    finally:
        podman("rm", "--force", "--time", "5", name, check=False)
