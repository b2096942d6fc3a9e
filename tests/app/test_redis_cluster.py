"""The engine and the backup tool on a real Redis cluster (three local redis-server nodes).

In cluster mode (the prod profile) there is one database, so each service
gets REDIS_CLUSTER=true and its own REDIS_KEY_PREFIX instead of a DB number.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from redis.cluster import RedisCluster

from app.main import create_app
from app.settings import load_settings
from engine_support import AUTH

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if not (server and cli):
        message = "redis-server/redis-cli not installed; run `sudo bash .ci/services.sh`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    ports = cluster_ports(3)
    procs = []
    for port in ports:
        workdir = tmp_path_factory.mktemp(f"redis-{port}")
        procs.append(subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(workdir / "nodes.conf"), "--dir", str(workdir),
             "--appendonly", "no", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        for port in ports:
            deadline = time.monotonic() + 10
            while True:
                try:
                    redis.Redis(host="127.0.0.1", port=port).ping()
                    break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, f"redis-server on {port} did not start"
                    time.sleep(0.1)
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 20
        while b"cluster_state:ok" not in subprocess.run([cli, "-h", "127.0.0.1", "-p", str(ports[0]), "cluster", "info"],
                                                          capture_output=True).stdout:
            assert time.monotonic() < deadline, "the cluster did not form"
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


def cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster-bus port (+10000) is free too (so at most 55535)."""
    import random
    import socket

    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(20000, 45000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        if port not in ports:
            ports.append(port)
    return ports


def cluster(url: str) -> RedisCluster:
    return RedisCluster.from_url(url)


def test_services_share_the_cluster_apart_by_key_prefix(cluster_url, embedded_settings):
    common = {**embedded_settings, "redis_url": cluster_url, "redis_cluster": True}
    generator = load_settings(**{**common, "service_role": "ai-processor", "redis_key_prefix": "ai-processor:"})
    with TestClient(create_app(generator, configure_logs=False)) as client:
        request = {"topic": "cluster carpets", "content_type": "guide"}
        first = client.post("/api/v1/generate", json=request, headers=AUTH)
        again = client.post("/api/v1/generate", json=request, headers=AUTH)
        assert first.status_code == 201 and again.headers.get("X-Cache") == "HIT"
        assert client.get("/health").json()["checks"]["redis"] == "healthy"
    keys = [k.decode() for k in cluster(cluster_url).scan_iter(target_nodes=RedisCluster.ALL_NODES)]
    assert keys and all(k.startswith("ai-processor:") for k in keys), keys


def test_rate_limits_hold_across_the_cluster(cluster_url, embedded_settings):
    settings = load_settings(**{**embedded_settings, "redis_url": cluster_url, "redis_cluster": True,
                                "redis_key_prefix": "content-manager:", "service_role": "content-manager",
                                "rate_limit_per_minute": 5})
    with TestClient(create_app(settings, configure_logs=False)) as client:
        codes = [client.post("/api/v1/content", headers=AUTH, json={
            "title": f"t{i}", "body": "b", "content_type": "article"}).status_code for i in range(8)]
    assert codes.count(201) == 5 and codes[-1] == 429


def test_backup_and_restore_a_cluster(cluster_url, s3_endpoint, tmp_path):
    import boto3

    client = cluster(cluster_url)
    for i in range(50):
        client.set(f"distributor:key:{i}", f"value {i}".encode(), ex=3600 if i % 2 else None)
    before = {k: client.dump(k) for k in client.scan_iter(target_nodes=RedisCluster.ALL_NODES)}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    try:
        s3.create_bucket(Bucket="system-backups")
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    env = {**os.environ, "REDIS_URL": cluster_url, "REDIS_CLUSTER": "true", "BACKUP_BUCKET": "system-backups",
           "ENVIRONMENT": "cluster-test", "S3_ENDPOINT": s3_endpoint, "S3_ACCESS_KEY": "test",
           "S3_SECRET_KEY": "test"}
    run = lambda *args: subprocess.run([sys.executable, "-m", "app.backup", *args], env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    backed_up = run("backup", "redis")
    assert backed_up.returncode == 0, backed_up.stdout + backed_up.stderr
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    restored = run("restore", "redis", "latest")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    after = {k: client.dump(k) for k in client.scan_iter(target_nodes=RedisCluster.ALL_NODES)}
    assert after == before and len(after) >= 50



