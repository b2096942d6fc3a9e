"""Connection pooling: the pooler each PostgreSQL mode gets, the apps going through it,
and the connection budget every stack must keep."""

from __future__ import annotations

import configparser

import pytest

from components import pooler as pooler_mod
from stacks.catalog import CONTENT_SERVICES
from stacks.config import ConfigError, budget_for, build_stack_config
from stacks.connections import RESERVED_CONNECTIONS
from tests.conftest import stack_config

ENVS = ("dev", "staging", "prod")
POOLER = "postgres-pooler"


def overrides_of(env: str) -> dict:
    import json

    return {k.split(":", 1)[1]: json.loads(v) if v[:1] in "{[" or v in ("true", "false") else v
            for k, v in stack_config(env).items() if k.startswith("aquascene:")}


def database_url_secret(rec, service: str) -> str:
    """The Secret a service's DATABASE_URL comes from (an env reference or a mounted file)."""
    pod = rec.k8s_object("Deployment", service)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    for env in container.get("env", []):
        if env["name"] == "DATABASE_URL":
            return env["valueFrom"]["secretKeyRef"]["name"]
    for volume in pod.get("volumes", []):
        for source in volume.get("projected", {}).get("sources", []):
            items = source.get("secret", {}).get("items", [])
            if any(i["path"] == "database_url" for i in items):
                return source["secret"]["name"]
    raise AssertionError(f"{service}: no DATABASE_URL")


# ----------------------------------------------------------------- the budget


@pytest.mark.parametrize("env", ENVS)
def test_every_stack_keeps_its_connection_budget(env):
    config = build_stack_config(env, overrides_of(env))
    budget = budget_for(config)
    assert config.postgres.pooler.enabled
    per_pod = config.app.db_pool_size + config.app.db_max_overflow
    worst = sum((s.autoscaling.max_replicas if s.autoscaling else s.replicas) * per_pod
                for s in config.services.values())
    assert budget.client_connections == worst
    assert worst <= config.postgres.pooler.max_client_conn
    server = config.postgres.pooler.instances * config.postgres.pooler.default_pool_size
    assert budget.server_connections == server + len(budget.direct) + sum(RESERVED_CONNECTIONS.values())
    assert budget.server_connections <= budget.max_connections == 200
    assert budget.problems() == []


def test_prod_budget_numbers():
    budget = budget_for(build_stack_config("prod", overrides_of("prod")))
    # (5 services x 10 pods (HPA max) + the dashboard's 5) x (pool 25 + overflow 10); the jobs connect directly.
    assert budget.client_connections == 1925
    assert [c.name for c in budget.direct] == ["migration job", "backup job"]
    assert budget.server_connections == 3 * 25 + 2 + 9


def test_too_few_client_connections_fail_validation_with_the_numbers():
    overrides = overrides_of("prod")
    overrides["postgres"]["pooler"]["max_client_conn"] = 1000  # seed 001's number
    with pytest.raises(ConfigError) as err:
        build_stack_config("prod", overrides)
    message = str(err.value)
    assert "aquascene:postgres.pooler.max_client_conn: worst-case client connections 1925" in message
    assert "content-manager 10 x 35" in message and "admin-dashboard 5 x 35" in message
    assert "exceed max_client_conn 1000" in message


def test_pooler_server_connections_over_max_connections_fail_validation():
    overrides = overrides_of("prod")
    overrides["postgres"]["pooler"]["default_pool_size"] = 70
    with pytest.raises(ConfigError) as err:
        build_stack_config("prod", overrides)
    message = str(err.value)
    assert "aquascene:postgres.pooler.default_pool_size: PostgreSQL server connections 221" in message
    assert "pooler 210 (instances x default_pool_size)" in message and "max_connections 200" in message


def test_prod_without_a_pooler_fails_validation():
    overrides = overrides_of("prod")
    overrides["postgres"]["pooler"]["enabled"] = False
    with pytest.raises(ConfigError, match=r"aquascene:postgres.pooler.enabled: PostgreSQL server connections 1936"):
        build_stack_config("prod", overrides)


def test_dev_without_a_pooler_is_within_max_connections():
    overrides = overrides_of("dev")
    overrides["postgres"]["pooler"]["enabled"] = False
    budget = budget_for(build_stack_config("dev", overrides))
    assert budget.pooler is None and budget.server_connections == 6 * 1 * 10 + 1 + 9


def test_pool_mode_is_a_closed_set():
    overrides = overrides_of("dev")
    overrides["postgres"]["pooler"]["pool_mode"] = "statement"
    with pytest.raises(ConfigError, match=r"aquascene:postgres.pooler.pool_mode"):
        build_stack_config("dev", overrides)


# ---------------------------------------------------- the pooler in each mode


@pytest.mark.parametrize("env", ENVS)
def test_services_connect_through_the_pooler_and_jobs_directly(run_stack, env):
    rec = run_stack(env)
    config = build_stack_config(env, overrides_of(env))
    for service in CONTENT_SERVICES:
        assert database_url_secret(rec, service.name) == f"{POOLER}-app"
        # The engine's pool is the one the budget counted.
        settings = rec.k8s_object("ConfigMap", f"{service.name}-config")["data"]
        assert (settings["DB_POOL_SIZE"], settings["DB_MAX_OVERFLOW"]) == (
            str(config.app.db_pool_size), str(config.app.db_max_overflow))
    secret = rec.k8s_object("Secret", f"{POOLER}-app")["stringData"]["url"]
    assert f"@{POOLER}.aquascene-{env}.svc.cluster.local:5432/content_engine" in secret
    migrate = rec.k8s_object("Job", "content-engine-migrate")["spec"]["template"]["spec"]
    assert "postgres-app" in str(migrate) and f"{POOLER}-app" not in str(migrate)


@pytest.mark.parametrize("env,instances", [("dev", 1), ("staging", 2)])
def test_statefulset_mode_runs_a_pinned_restricted_pgbouncer(run_stack, env, instances):
    rec = run_stack(env)
    deployment = rec.k8s_object("Deployment", POOLER)
    assert deployment["spec"]["replicas"] == instances
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == pooler_mod.IMAGE and not container["image"].endswith(":latest")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert container["livenessProbe"] != container["readinessProbe"]
    assert "env" not in container  # the password is a mounted file
    auth = next(v for v in pod["volumes"] if v["name"] == "auth")
    assert auth["secret"]["defaultMode"] == 0o400
    assert next(m for m in container["volumeMounts"] if m["name"] == "auth")["readOnly"] is True
    ini = configparser.ConfigParser()
    ini.read_string(rec.k8s_object("ConfigMap", f"{POOLER}-config")["data"]["pgbouncer.ini"])
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    assert ini["databases"]["content_engine"].startswith(f"host=postgres.aquascene-{env}.svc.cluster.local port=5432")
    pdbs = [r for r in rec.kubernetes("PodDisruptionBudget") if r.plain_inputs["metadata"]["name"] == POOLER]
    assert len(pdbs) == (1 if instances > 1 else 0)


def test_pgbouncer_network_policy_admits_only_the_apps_and_reaches_only_postgres(run_stack):
    rec = run_stack("staging")
    spec = rec.k8s_object("NetworkPolicy", POOLER)["spec"]
    ingress_components = {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                          for rule in spec["ingress"] for p in rule["from"]}
    assert ingress_components == {"api", "migration", "backup"}
    assert all(rule["ports"] == [{"port": 5432, "protocol": "TCP"}] for rule in spec["ingress"])
    egress_targets = [p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                      for rule in spec["egress"] for p in rule["to"]]
    assert "postgres" in egress_targets
    # And PostgreSQL admits the pooler.
    pg_ingress = rec.k8s_object("NetworkPolicy", "postgres")["spec"]["ingress"]
    assert any(p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == POOLER
               for rule in pg_ingress for p in rule["from"])


def test_cloudnative_pg_mode_declares_a_transaction_pooler_after_its_cluster(run_stack):
    rec = run_stack("prod")
    (pooler,) = rec.of_type("kubernetes:postgresql.cnpg.io/v1:Pooler")
    spec = pooler.plain_inputs["spec"]
    assert spec["cluster"] == {"name": "postgres"} and spec["type"] == "rw" and spec["instances"] == 3
    assert spec["pgbouncer"]["poolMode"] == "transaction"
    assert spec["pgbouncer"]["parameters"]["max_client_conn"] == "2200"
    assert spec["pgbouncer"]["parameters"]["default_pool_size"] == "25"
    (cluster,) = rec.of_type("kubernetes:postgresql.cnpg.io/v1:Cluster")
    assert cluster.urn in pooler.dependencies
    assert not rec.of_type("kubernetes:apps/v1:Deployment") or all(
        d.plain_inputs["metadata"]["name"] != POOLER for d in rec.kubernetes("Deployment"))
    url = rec.k8s_object("Secret", f"{POOLER}-app")["stringData"]["url"]
    assert url.endswith("/content_engine?sslmode=require")  # CloudNativePG's pooler serves TLS
    # The operator writes no NetworkPolicy: ours admits the apps on 5432 and Prometheus on the exporter port.
    ingress = rec.k8s_object("NetworkPolicy", POOLER)["spec"]["ingress"]
    assert {tuple(p["port"] for p in rule["ports"]) for rule in ingress} == {(5432,), (9127,)}
    assert spec["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9127"


def test_rds_mode_puts_rds_proxy_in_front(run_stack):
    rec = run_stack("prod", {"postgres": {**overrides_of("prod")["postgres"], "mode": "rds",
                                          "continuous_backup": {"enabled": False, "retention_days": 30,
                                                                "schedule": "0 0 2 * * *"}}})
    (proxy,) = rec.of_type("aws:rds/proxy:Proxy")
    p = proxy.plain_inputs
    assert p["engineFamily"] == "POSTGRESQL" and p["requireTls"] is True
    assert p["auths"][0]["authScheme"] == "SECRETS" and p["auths"][0]["secretArn"].startswith("arn:aws:secretsmanager")
    (group,) = rec.of_type("aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup")
    # The pooler's share: default_pool_size 25 of max_connections 200.
    assert group.plain_inputs["connectionPoolConfig"]["maxConnectionsPercent"] == 12
    (target,) = rec.of_type("aws:rds/proxyTarget:ProxyTarget")
    assert target.plain_inputs["dbInstanceIdentifier"]
    (secret,) = rec.of_type("aws:secretsmanager/secret:Secret")
    assert secret.plain_inputs["kmsKeyId"]
    url = rec.k8s_object("Secret", f"{POOLER}-app")["stringData"]["url"]
    assert ".proxy-" in url and url.endswith("?sslmode=require")
    assert not rec.of_type("kubernetes:postgresql.cnpg.io/v1:Pooler")


def test_pgbouncer_ini_is_what_pgbouncer_reads():
    ini = pooler_mod.pgbouncer_ini({"db": "host=h port=5432 dbname=db"},
                                   pooler_mod.PoolSettings(default_pool_size=7, max_client_conn=70, instances=2))
    parsed = configparser.ConfigParser()
    parsed.read_string(ini)
    assert parsed["pgbouncer"]["max_client_conn"] == "70" and parsed["pgbouncer"]["default_pool_size"] == "7"
    assert parsed["pgbouncer"]["auth_file"] == "/etc/pgbouncer/auth/userlist.txt"
