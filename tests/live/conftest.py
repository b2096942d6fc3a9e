"""The live-cluster suite: the cluster KUBECONFIG points to, and nothing else.

Locally without KUBECONFIG these tests skip with how to start one; under
CI=true they fail instead (CI starts the local API server first).
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from tooling.check import Cluster, ClusterUnavailable

IN_CI = os.environ.get("CI") == "true"
START_HINT = ('start one with `eval "$(../shared/kube-local/up.sh)"` (a local API server with simulated nodes), '
              "or point KUBECONFIG at a kind/minikube cluster")

def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/live/" in item.nodeid:
            item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if not os.environ.get("KUBECONFIG"):
        message = f"KUBECONFIG is not set: the live-cluster tests need an API server; {START_HINT}"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    try:
        live = Cluster.from_kubeconfig()
    except ClusterUnavailable as error:
        pytest.fail(f"{error}; {START_HINT}") if IN_CI else pytest.skip(f"{error}; {START_HINT}")
    yield live
