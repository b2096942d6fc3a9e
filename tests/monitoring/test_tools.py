"""The real promtool and amtool on the files the stack deploys.

Tools come from .ci/monitoring-tools.sh (Debian's prometheus and
prometheus-alertmanager packages, plus promtool of the deployed Prometheus
release, which can parse kubernetes_sd_configs). Under CI=true a missing tool
fails the test; elsewhere it skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from components.monitoring import AlertReceivers, alertmanager_config, dashboards, prometheus_config, rule_files
from tests.unit.test_monitoring import SEED_ALERTS, dev_args, prod_args

FILES = Path(__file__).resolve().parents[2] / "components" / "monitoring" / "files"
INSTALL_HINT = ("run .ci/monitoring-tools.sh (apt-get install prometheus prometheus-alertmanager, "
                "and promtool of the deployed Prometheus release built from its Go module)")
K8S_SD_PROBE = "scrape_configs:\n- job_name: probe\n  kubernetes_sd_configs:\n  - role: pod\n"


def _missing(what: str):
    message = f"{what} not found: {INSTALL_HINT}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _candidates(name: str) -> list[str]:
    found = [os.environ.get(name.upper()), f"/usr/local/bin/{name}", shutil.which(name), f"/usr/bin/{name}"]
    return list(dict.fromkeys(p for p in found if p and os.access(p, os.X_OK)))


@lru_cache(maxsize=None)
def _promtool_with_kubernetes_sd(tmp: str) -> str | None:
    probe = Path(tmp) / "k8s-sd-probe.yml"
    probe.write_text(K8S_SD_PROBE)
    for path in _candidates("promtool"):
        if subprocess.run([path, "check", "config", "--syntax-only", str(probe)], capture_output=True).returncode == 0:
            return path
    return None


@pytest.fixture(scope="session")
def promtool_k8s(tmp_path_factory) -> str:
    """A promtool that understands the whole deployed config (Kubernetes service discovery included)."""
    path = _promtool_with_kubernetes_sd(str(tmp_path_factory.mktemp("probe")))
    if path is None:
        _missing("promtool with Kubernetes service discovery")
    return path


@pytest.fixture(scope="session")
def promtool(tmp_path_factory) -> str:
    """Any promtool for rules (Debian's does), the deployed release's when present."""
    path = _promtool_with_kubernetes_sd(str(tmp_path_factory.mktemp("probe"))) or next(iter(_candidates("promtool")), None)
    if path is None:
        _missing("promtool")
    return path


@pytest.fixture(scope="session")
def amtool() -> str:
    paths = _candidates("amtool")
    if not paths:
        _missing("amtool")
    return paths[0]


def run(*command: str, cwd: Path | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output}"
    return output


def write_prometheus_dir(root: Path, config: str) -> Path:
    """The layout the pod mounts: prometheus.yml with rules/ beside it."""
    (root / "rules").mkdir(parents=True)
    (root / "prometheus.yml").write_text(config)
    for name, text in rule_files().items():
        (root / "rules" / name).write_text(text)
    return root


def test_check_rules_on_the_deployed_rule_files(promtool, tmp_path):
    root = write_prometheus_dir(tmp_path, prometheus_config(prod_args()))
    output = run(promtool, "check", "rules", *sorted(str(p) for p in (root / "rules").iterdir()))
    assert output.count("SUCCESS") == len(rule_files())


def test_rule_unit_tests_pass(promtool):
    tests = sorted(str(p) for p in (FILES / "tests").glob("*.test.yml"))
    assert len(tests) == len(rule_files())  # one unit-test file per rule file
    output = run(promtool, "test", "rules", *tests, cwd=FILES / "tests")
    assert "FAILED" not in output


def test_every_seed_alert_has_a_firing_unit_test():
    fired = set()
    for path in (FILES / "tests").glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            fired |= {t["alertname"] for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    assert set(SEED_ALERTS) <= fired
    assert {"PostgresDown", "RedisDown", "ObjectStoreDown", "PersistentVolumeFillingUp", "NodeDiskFillingUp",
            "CanaryErrorRateHigh"} <= fired


def test_unit_tests_read_the_rule_files_that_are_deployed():
    for path in (FILES / "tests").glob("*.test.yml"):
        for rule_file in yaml.safe_load(path.read_text())["rule_files"]:
            assert Path(rule_file).name in rule_files(), (path.name, rule_file)
            assert (path.parent / rule_file).resolve().parent == FILES / "rules"


@pytest.mark.parametrize("args", [prod_args, dev_args], ids=["prod", "dev"])
def test_check_config_on_the_generated_prometheus_yml(promtool_k8s, tmp_path, args):
    # --syntax-only: the config names the pod's ServiceAccount token and CA,
    # which exist only inside the pod; the rules are checked above.
    root = write_prometheus_dir(tmp_path, prometheus_config(args()))
    output = run(promtool_k8s, "check", "config", "--syntax-only", str(root / "prometheus.yml"))
    assert "SUCCESS" in output


@pytest.mark.parametrize("secrets", [("smtp-password", "https://hooks.slack.com/services/T0/B0/X"), (None, None)],
                         ids=["with-receivers", "without-receivers"])
def test_amtool_check_config_on_the_generated_alertmanager_yml(amtool, tmp_path, secrets):
    path = tmp_path / "alertmanager.yml"
    path.write_text(alertmanager_config(AlertReceivers(), *secrets))
    output = run(amtool, "check-config", str(path))
    assert "SUCCESS" in output
    assert "4 receivers" in output


@pytest.mark.parametrize("env,receivers", [
    ("staging", {}),
    ("prod", {"alert_smtp_password": "smtp-password", "alert_slack_webhook_url": "https://hooks.slack.com/services/T0/B0/X"}),
], ids=["staging", "prod-with-receivers"])
def test_amtool_check_config_on_the_deployed_alertmanager_configmap(amtool, tmp_path, run_stack, env, receivers):
    """Exactly the file the stack deploys (a ConfigMap: its secrets are *_file references)."""
    rec = run_stack(env, receivers)
    text = rec.k8s_object("ConfigMap", "alertmanager-config")["data"]["alertmanager.yml"]
    assert ("smtp_auth_password_file" in text) == bool(receivers)
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    output = run(amtool, "check-config", str(path))
    assert "SUCCESS" in output and "4 receivers" in output


def test_dashboard_queries_are_valid_promql(promtool, tmp_path):
    """Every panel query, as a recording rule, through promtool's parser."""
    rules = []
    for name, text in dashboards().items():
        for panel in json.loads(text)["panels"]:
            for target in panel.get("targets", []):  # a row panel has none
                rules.append({"record": f"dashboard:{Path(name).stem}:{panel['id']}_{target['refId']}".lower(),
                              "expr": target["expr"]})
    assert len(rules) > 30
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    run(promtool, "check", "rules", str(path))
