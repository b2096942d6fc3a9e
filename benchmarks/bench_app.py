"""Throughput and latency of the content engine beside a bare FastAPI app.

Starts, on 127.0.0.1 only and under identical uvicorn settings:
  * the engine (SERVICE_ROLE=content-manager) on PostgreSQL + Redis,
  * a bare one-route FastAPI app (``bare_app`` below),
then drives each from a separate client process with N concurrent keep-alive
connections for a bounded time and number of requests, and prints requests/s,
p50 and p99 for ``GET /api/v1/content/{id}`` (cached reads) and
``POST /api/v1/content``, plus the ratio to the bare app; then writes again on
the engine with one and with four uvicorn workers (``--write-workers``).

With ``--dashboard`` it measures the admin dashboard instead (SERVICE_ROLE=admin-dashboard,
one uvicorn worker): 16 signed-in sessions (``--dashboard-clients``) browse the content
list (pages 1-5) and content detail pages concurrently; it prints p50/p95/p99 and errors
against the target p99 <= 150 ms.

    .venv/bin/python benchmarks/bench_app.py [--duration 10] [--concurrency 32]
        [--database-url postgresql://...] [--write-workers 1,4]
    .venv/bin/python benchmarks/bench_app.py --dashboard [--dashboard-clients 16] [--duration 10]

PostgreSQL and Redis come from --database-url / BENCH_DATABASE_URL and
BENCH_REDIS_URL (default: database ``aquascene_bench`` on the test server,
created when missing, and Redis DB 13); start the servers with
`sudo bash .ci/services.sh`. With a connection pooler (PgBouncer) in front of
PostgreSQL, pass its URL as --database-url and the server's own URL as
--direct-database-url (migrations and creating the database go there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from fastapi import FastAPI

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
API_KEY = "bench-key-0123456789"
SERVER_ARGS = ["--host", HOST, "--workers", "1", "--loop", "uvloop", "--http", "httptools",
               "--no-access-log", "--log-level", "warning", "--no-server-header"]
MAX_REQUESTS_PER_CLIENT = 200_000

# --- the bare reference app ---------------------------------------------------------------

bare_app = FastAPI()
_BARE_ITEM = {
    "id": "00000000-0000-0000-0000-000000000000",
    "title": "Benchmark item",
    "body": "Aquascaping benchmark body text. " * 8,
    "content_type": "article",
    "status": "published",
    "tags": ["bench"],
    "version": 1,
}


@bare_app.get("/api/v1/content/{content_id}")
async def bare_item(content_id: str) -> dict:
    return {**_BARE_ITEM, "id": content_id}


# --- load generator (runs in its own process) ------------------------------------------------


async def _worker(port: int, requests: list[bytes], deadline: float, latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    perf = time.perf_counter
    try:
        for n in range(MAX_REQUESTS_PER_CLIENT):
            if perf() >= deadline:
                break
            start = perf()
            writer.write(requests[n % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            if length:
                await reader.readexactly(length)
            latencies.append(perf() - start)
            if status >= 400:
                errors.append(status)
    finally:
        writer.close()


async def _drive(port: int, requests: list[bytes], concurrency: int, duration: float) -> dict:
    latencies: list[float] = []
    errors: list[int] = []
    # Each client starts at a different offset so they do not hit the same id in lockstep.
    per_client = [requests[i * len(requests) // concurrency:] + requests[: i * len(requests) // concurrency]
                  for i in range(concurrency)]
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(_worker(port, per_client[i], deadline, latencies, errors) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_statuses": sorted(set(errors)),
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000 if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else None,
    }


def client_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    requests = [r.encode("latin-1") for r in spec["requests"]]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_drive(spec["port"], requests, spec["concurrency"], spec["duration"]))
    print(json.dumps(result))


# --- orchestration -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server at {url} did not start within {timeout}s")


def _start(target: str, port: int, env: dict[str, str], app_dir: str, workers: int = 1) -> subprocess.Popen:
    args = [*SERVER_ARGS]
    args[args.index("--workers") + 1] = str(workers)
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", target, "--port", str(port), "--app-dir", app_dir, *args],
        env=env,
        cwd=REPO,
    )


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _cpu_seconds_tree(pid: int) -> float:
    """CPU time of a process and its direct children (uvicorn's workers)."""
    total = _cpu_seconds(pid)
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split():
                total += _cpu_seconds(int(child))
    except OSError:
        pass
    return total


def _ensure_database(url: str) -> None:
    """Create the benchmark's own database (kept apart from the test database) if missing."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{parsed.database}"')


def _get(path: str, port: int) -> str:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n"


def _post(path: str, port: int, body: dict) -> str:
    data = json.dumps(body)
    return (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {API_KEY}\r\nContent-Length: {len(data.encode())}\r\n\r\n{data}"
    )


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _run_client(port: int, requests: list[str], concurrency: int, duration: float, workdir: Path) -> dict:
    spec = workdir / f"spec-{port}-{time.monotonic_ns()}.json"
    spec.write_text(json.dumps({"port": port, "requests": requests, "concurrency": concurrency, "duration": duration}))
    out = subprocess.run([sys.executable, __file__, "--client", str(spec)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _writes(port: int, count: int = 200) -> list[str]:
    return [
        _post("/api/v1/content", port, {
            "title": f"Bench write {n}", "body": "Aquascaping benchmark body text. " * 8,
            "content_type": "article", "status": "published", "tags": ["bench", f"t{n % 10}"],
        })
        for n in range(count)
    ]


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _measure_writes(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict[int, dict]:
    """POST /api/v1/content against the engine run with each of --write-workers worker counts."""
    results: dict[int, dict] = {}
    for workers in [int(w) for w in args.write_workers.split(",") if w.strip()]:
        pool = args.pool_size or (20 if workers == 1 else max(2, 32 // workers))
        port = _free_port()
        proc = _start("app.main:app", port, {**env, "DB_POOL_SIZE": str(pool), "DB_MAX_OVERFLOW": "0"},
                      str(REPO), workers=workers)
        try:
            _wait_for(f"http://{HOST}:{port}/health")
            requests = _writes(port)
            _run_client(port, requests, args.concurrency, args.warmup, workdir)
            cpu_before = _cpu_seconds_tree(proc.pid)
            run = _run_client(port, requests, args.concurrency, args.duration, workdir)
            run["cpu_us"] = (_cpu_seconds_tree(proc.pid) - cpu_before) / max(1, run["requests"]) * 1e6
            results[workers] = run
        finally:
            _stop(proc)
    return results


def _create_items(port: int, count: int) -> list[str]:
    ids = []
    for i in range(count):
        body = json.dumps({
            "title": f"Benchmark item {i}",
            "body": "Aquascaping benchmark body text. " * 8,
            "content_type": "article",
            "status": "published",
            "tags": ["bench"],
        }).encode()
        request = urllib.request.Request(
            f"http://{HOST}:{port}/api/v1/content",
            data=body,
            headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            ids.append(json.loads(response.read())["id"])
    return ids


def _read_benchmark(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict[str, dict]:
    """Cached reads on the engine beside the bare app, and writes on one worker; prints the table."""
    engine_port, redis_only_port, bare_port = _free_port(), _free_port(), _free_port()
    engine = _start("app.main:app", engine_port, env, str(REPO))
    # The same engine with the per-process read cache off: every cached read goes to Redis.
    redis_only = _start("app.main:app", redis_only_port, {**env, "CONTENT_LOCAL_CACHE_TTL": "0"}, str(REPO))
    bare = _start("bench_app:bare_app", bare_port, env, str(REPO / "benchmarks"))
    results: dict[str, dict] = {}
    try:
        _wait_for(f"http://{HOST}:{engine_port}/health")
        _wait_for(f"http://{HOST}:{redis_only_port}/health")
        _wait_for(f"http://{HOST}:{bare_port}/api/v1/content/warm")
        ids = _create_items(engine_port, args.items)

        pids = {engine_port: engine.pid, redis_only_port: redis_only.pid, bare_port: bare.pid}

        def measure(name: str, port: int, requests: list[str]) -> None:
            _run_client(port, requests, args.concurrency, args.warmup, workdir)
            cpu_before = _cpu_seconds(pids[port])
            run = _run_client(port, requests, args.concurrency, args.duration, workdir)
            # Server CPU per request: unlike req/s, barely affected by other load on the machine.
            run["cpu_us"] = (_cpu_seconds(pids[port]) - cpu_before) / max(1, run["requests"]) * 1e6
            if name in results:  # repeated scenario: combine the runs
                prev = results[name]
                run = {
                    "requests": prev["requests"] + run["requests"],
                    "errors": prev["errors"] + run["errors"],
                    "error_statuses": sorted(set(prev["error_statuses"]) | set(run["error_statuses"])),
                    "rps": (prev["rps"] + run["rps"]) / 2,
                    "p50_ms": (prev["p50_ms"] + run["p50_ms"]) / 2,
                    "p99_ms": max(prev["p99_ms"], run["p99_ms"]),
                    "cpu_us": (prev["cpu_us"] + run["cpu_us"]) / 2,
                }
            results[name] = run

        bare_reads = [_get(f"/api/v1/content/{i}", bare_port) for i in ids]
        engine_reads = [_get(f"/api/v1/content/{i}", engine_port) for i in ids]
        # Alternate bare and engine runs so background load on the machine affects both alike.
        for _ in range(args.rounds):
            measure("bare GET /api/v1/content/{id}", bare_port, bare_reads)
            measure("engine GET /api/v1/content/{id} (cached)", engine_port, engine_reads)
        measure("engine GET, Redis cache only", redis_only_port,
                [_get(f"/api/v1/content/{i}", redis_only_port) for i in ids])
        measure("engine POST /api/v1/content", engine_port, _writes(engine_port))
    finally:
        for proc in (engine, redis_only, bare):
            proc.terminate()
        for proc in (engine, redis_only, bare):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    bare_rps = results["bare GET /api/v1/content/{id}"]["rps"]
    print(f"\nAquaScene engine benchmark: {args.concurrency} concurrent clients, {args.duration:g}s per run "
          f"({args.rounds} alternating read rounds, mean req/s and p50, worst p99), "
          f"uvicorn 1 worker (uvloop, httptools), {os.cpu_count()} CPUs, loopback only")
    bare_cpu = results["bare GET /api/v1/content/{id}"]["cpu_us"]
    print(f"{'scenario':44} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs bare':>8}"
          f" {'server CPU/req':>15} {'bare/engine CPU':>16}")
    for name, r in results.items():
        print(f"{name:44} {r['requests']:>9} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['errors']:>7} {r['rps'] / bare_rps:>7.0%} {r['cpu_us']:>12.0f} us {bare_cpu / r['cpu_us']:>15.0%}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} CPUs")
    cached = results["engine GET /api/v1/content/{id} (cached)"]
    writes = results["engine POST /api/v1/content"]
    print(f"\ntarget cached reads >= 50% of bare throughput: {cached['rps'] / bare_rps:.0%} "
          f"-> {'met' if cached['rps'] / bare_rps >= 0.5 else 'NOT met'}")
    print(f"target p99 <= 25 ms at {args.concurrency} clients, cached reads: {cached['p99_ms']:.1f} ms "
          f"-> {'met' if cached['p99_ms'] <= 25 else 'NOT met'}")
    print(f"target p99 <= 25 ms at {args.concurrency} clients, writes: {writes['p99_ms']:.1f} ms "
          f"-> {'met' if writes['p99_ms'] <= 25 else 'NOT met'}")
    return results


DASHBOARD_ADMIN = ("bench-admin@example.com", "bench admin password")
DASHBOARD_SEED = """
import asyncio, sys
from types import SimpleNamespace
from sqlalchemy import text
from app.db import Database
from app.domain import content, users
from app.domain.actors import SYSTEM
from app.schemas import ContentCreate
from app.settings import load_settings

async def main(count):
    settings = load_settings()
    services = SimpleNamespace(settings=settings, db=Database(settings))
    async with services.db.transaction() as session:
        await session.execute(text("TRUNCATE content, users, dashboard_sessions CASCADE"))
    await users.create_user(services, sys.argv[2], "Bench admin", "admin", sys.argv[3], SYSTEM)
    for i in range(count):
        out = await content.create_content(services, ContentCreate(
            title=f"Dashboard item {i}", body="Aquascaping benchmark body text. " * 40,
            content_type="article", tags=["bench", f"t{i % 7}"], status="draft"), SYSTEM)
        print(out.id)
    await services.db.dispose()

asyncio.run(main(int(sys.argv[1])))
"""


def _sign_in(port: int, email: str, password: str) -> str:
    """The session cookie of a fresh sign-in (as a browser does it: form, CSRF token, post)."""
    import http.client
    import re
    from urllib.parse import urlencode

    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.request("GET", "/admin/login")
    response = conn.getresponse()
    page = response.read().decode()
    anonymous = response.getheader("set-cookie").split(";", 1)[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urlencode({"csrf_token": token, "email": email, "password": password, "next": "/admin/"})
    conn.request("POST", "/admin/login", body=form, headers={
        "Cookie": anonymous, "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    if response.status != 303:
        raise SystemExit(f"sign-in failed with HTTP {response.status}")
    return response.getheader("set-cookie").split(";", 1)[0]


def _dashboard_benchmark(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict:
    seeded = subprocess.run([sys.executable, "-c", DASHBOARD_SEED, str(args.items), *DASHBOARD_ADMIN],
                            env=env, cwd=REPO, check=True, capture_output=True, text=True)
    ids = seeded.stdout.split()
    port = _free_port()
    proc = _start("app.main:app", port, {**env, "SERVICE_ROLE": "admin-dashboard"}, str(REPO))
    try:
        _wait_for(f"http://{HOST}:{port}/health")
        cookies = [_sign_in(port, *DASHBOARD_ADMIN) for _ in range(args.dashboard_clients)]
        paths = [f"/admin/content?page={1 + n % 5}" if n % 2 == 0 else f"/admin/content/{ids[n % len(ids)]}"
                 for n in range(len(ids))]
        # Request n carries session n mod clients: every connection browses as a signed-in person.
        requests = [f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nCookie: {cookies[n % len(cookies)]}\r\n\r\n"
                    for n, path in enumerate(paths)]
        _run_client(port, requests, args.dashboard_clients, args.warmup, workdir)
        run = _run_client(port, requests, args.dashboard_clients, args.duration, workdir)
    finally:
        _stop(proc)
    print(f"\nadmin dashboard, {args.dashboard_clients} signed-in clients, content list (pages 1-5) and detail pages, "
          f"{len(ids)} items, {args.duration:g}s, database {_redact(env['DATABASE_URL'])}, redis sessions")
    print(f"{'requests':>9} {'pages/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    print(f"{run['requests']:>9} {run['rps']:>8.0f} {run['p50_ms']:>8.2f} {run['p95_ms']:>8.2f} {run['p99_ms']:>8.2f} "
          f"{run['errors']:>7}")
    met = run["p99_ms"] <= 150 and not run["errors"]
    print(f"target p99 <= 150 ms and no error: p99 {run['p99_ms']:.1f} ms, {run['errors']} errors -> {'met' if met else 'NOT met'}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per scenario (default 2)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--items", type=int, default=200, help="content items to read (default 200)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating bare/engine read rounds (default 2)")
    parser.add_argument("--database-url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://aquascene:aquascene@127.0.0.1:5432/aquascene_bench"),
        help="the engine's DATABASE_URL, e.g. a PgBouncer in front of PostgreSQL (env BENCH_DATABASE_URL)")
    parser.add_argument("--direct-database-url", default=os.environ.get("BENCH_DIRECT_DATABASE_URL"),
                        help="PostgreSQL itself, for creating the database and migrating (default: --database-url)")
    parser.add_argument("--write-workers", default="1,4",
                        help="uvicorn worker counts for the write runs (default 1,4)")
    parser.add_argument("--pool-size", type=int, default=0,
                        help="DB_POOL_SIZE per worker (default: 20 with one worker, 32/workers with more)")
    parser.add_argument("--writes-only", action="store_true", help="only the write runs (--write-workers)")
    parser.add_argument("--dashboard", action="store_true", help="measure the admin dashboard's pages instead")
    parser.add_argument("--dashboard-clients", type=int, default=16, help="signed-in dashboard clients (default 16)")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args.client)
        return

    database_url = args.database_url
    direct_url = args.direct_database_url or database_url
    _ensure_database(direct_url)
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "aquascene-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "BENCH_"))}
    env.update({
        "PYTHONPATH": str(REPO),
        "SERVICE_ROLE": "content-manager",
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "API_KEYS": API_KEY,
        "DB_POOL_SIZE": "20",
        "RATE_LIMIT_PER_MINUTE": "1000000000",
        "CONTENT_CACHE_TTL": "600",
        "DATA_DIR": str(workdir),
    })
    subprocess.run([sys.executable, "-m", "app", "migrate"], env={**env, "DATABASE_URL": direct_url},
                   cwd=REPO, check=True, capture_output=True)

    if args.dashboard:
        run = _dashboard_benchmark(args, env, workdir)
        if run["errors"]:
            print(f"errors: {run['error_statuses']}")
            sys.exit(1)
        return
    results: dict[str, dict] = {} if args.writes_only else _read_benchmark(args, env, workdir)
    writes_by_workers = _measure_writes(args, env, workdir)
    print(f"\nwrites, POST /api/v1/content, {args.concurrency} clients, {args.duration:g}s per run, "
          f"database {_redact(database_url)}")
    print(f"{'uvicorn workers':16} {'requests':>9} {'writes/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'server CPU/req':>15}")
    for workers, r in writes_by_workers.items():
        print(f"{workers:<16} {r['requests']:>9} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['errors']:>7} {r['cpu_us']:>12.0f} us")
        results[f"writes, {workers} worker(s)"] = r
    if 4 in writes_by_workers:
        four = writes_by_workers[4]
        met = four["rps"] >= 400 and four["p99_ms"] <= 100
        print(f"target >= 400 writes/s and p99 <= 100 ms at {args.concurrency} clients, 4 workers: "
              f"{four['rps']:.0f} writes/s, p99 {four['p99_ms']:.1f} ms -> {'met' if met else 'NOT met'}")
    errors = {name: r["error_statuses"] for name, r in results.items() if r["errors"]}
    if errors:
        print(f"errors: {errors}")
        sys.exit(1)


if __name__ == "__main__":
    main()
