"""Private, throwaway servers for the fault drills, and a bounded load driver.

Every drill starts its own PostgreSQL (initdb + pg_ctl in a temp dir), Redis or
moto S3 server on a free 127.0.0.1 port, so it can stop and restart them without
touching the shared servers other tests use. Under CI=true a missing binary fails.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from engine_support import API_KEY, free_port

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI") == "true"


def need(binary: str, hint: str) -> str:
    path = shutil.which(binary)
    if path is None:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{binary}"))
        path = candidates[-1] if candidates else None
    if path is None:
        message = f"{binary} not found; {hint}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def _wait(check, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {timeout}s")


class PrivatePostgres:
    """A PostgreSQL cluster of its own (trust auth, 127.0.0.1 only), run as `postgres` when root."""

    def __init__(self) -> None:
        self.initdb = need("initdb", "install postgresql (bash .ci/services.sh)")
        self.pg_ctl = need("pg_ctl", "install postgresql (bash .ci/services.sh)")
        self.dir = Path(tempfile.mkdtemp(prefix="aquascene-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run([self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])

    def _run(self, args: list[str]) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, cwd=self.dir)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w", "start"])

    def stop(self) -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    def __init__(self) -> None:
        self.binary = need("redis-server", "install redis-server (bash .ci/services.sh)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        _wait(up, 10, "redis")

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections hang instead of being refused."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@dataclass
class Engine:
    base_url: str
    proc: subprocess.Popen

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


def start_engine(env: dict[str, str], workdir: Path) -> Engine:
    """uvicorn on 127.0.0.1 (one worker) serving the engine with ``env`` on top of defaults."""
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("TEST_")}
    full.update({
        "PYTHONPATH": str(REPO),
        "SERVICE_ROLE": "all",
        "ENVIRONMENT": "staging",
        "LOG_LEVEL": "ERROR",
        "API_KEYS": API_KEY,
        "DATA_DIR": str(workdir),
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "GENERATION_PROVIDER": "local",
        "DB_CONNECT_TIMEOUT": "2",
    })
    full.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        env=full,
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"engine exited with {proc.returncode}")
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code < 600
        except httpx.HTTPError:
            return False

    _wait(up, 30, "engine")
    return Engine(base, proc)


def stop_engine(engine: Engine) -> None:
    engine.proc.terminate()
    try:
        engine.proc.wait(20)
    except subprocess.TimeoutExpired:
        engine.proc.kill()


@dataclass
class Outcome:
    started: float
    elapsed: float
    kind: str  # "write" | "read"
    status: int  # 0: no answer (transport error)
    retry_after: str | None = None
    created_id: str | None = None


@dataclass
class Load:
    """Mixed reads and writes from ``clients`` concurrent keep-alive clients until stopped."""

    base_url: str
    clients: int = 8
    write_share: float = 0.5
    timeout: float = 15.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: asyncio.Event | None = None

    async def _client(self, n: int) -> None:
        assert self._stop is not None
        headers = {"X-API-Key": API_KEY}
        acked: list[str] = []
        i = 0
        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, headers=headers) as client:
            while not self._stop.is_set() and i < 1_000_000:
                i += 1
                write = not acked or (i * 7919 + n) % 100 < self.write_share * 100
                started = time.monotonic()
                try:
                    if write:
                        response = await client.post("/api/v1/content", json={
                            "title": f"drill {n}-{i}", "body": "Aquascape drill body. " * 4,
                            "content_type": "article", "status": "published", "tags": ["drill"],
                        })
                    else:
                        response = await client.get(f"/api/v1/content/{acked[i % len(acked)]}")
                    status = response.status_code
                    retry_after = response.headers.get("retry-after")
                    created = response.json()["id"] if write and status == 201 else None
                except httpx.HTTPError:
                    status, retry_after, created = 0, None, None
                    await asyncio.sleep(0.05)
                if created:
                    acked.append(created)
                self.outcomes.append(Outcome(started, time.monotonic() - started, "write" if write else "read",
                                             status, retry_after, created))
                if status == 503:
                    await asyncio.sleep(0.05)  # a well-behaved client backs off a little

    async def run(self, scenario) -> None:  # noqa: ANN001
        """Run the load while ``scenario()`` (an async function) runs, then stop it."""
        self._stop = asyncio.Event()
        tasks = [asyncio.create_task(self._client(n)) for n in range(self.clients)]
        try:
            await scenario()
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)

    def acknowledged_ids(self) -> list[str]:
        return [o.created_id for o in self.outcomes if o.created_id]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def report(request: pytest.FixtureRequest, name: str, figures: dict[str, object]) -> None:
    """Figures into the test report (JUnit properties) and the run's summary."""
    from tests.conftest import report_figures

    report_figures(request, "engine fault drill figures", name, figures)
