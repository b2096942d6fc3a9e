"""PostgresCluster, RedisCluster, ObjectStore and their wiring into every stack."""

from __future__ import annotations

import json

import pytest

from tests.unit.secret_support import app_secret_refs
from components import kube
from components.addons import CHARTS
from components.object_store import SEED_BUCKETS, BucketSpec, ObjectStore, ObjectStoreArgs, bucket_setup_script
from components.postgres import ObjectStoreBackup, PostgresCluster, PostgresClusterArgs, PostgresStorage
from components.redis import RedisCluster, RedisClusterArgs
from stacks.catalog import CONTENT_SERVICES
from tooling.kubeschema import validate
from tooling.render import manifest_of

APP_PEER = kube.NetworkPeer(pod_labels={"app.kubernetes.io/component": "api"})
PROM_PEER = kube.NetworkPeer(namespace="monitoring", pod_labels={"app.kubernetes.io/name": "prometheus"})


def all_valid(rec):
    verdicts = {(r.kind, r.plain_inputs["metadata"]["name"]): validate(manifest_of(r)).status
                for r in rec.kubernetes() if "kind" in r.plain_inputs}
    assert all(v in ("valid", "skipped") for v in verdicts.values()), verdicts
    return verdicts


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


# ------------------------------------------------------------------ postgres


def pg(run_program, **kw):
    base = dict(namespace="ns", environment="staging", clients=[APP_PEER], scrapers=[PROM_PEER])
    return run_program(lambda: PostgresCluster("postgres", PostgresClusterArgs(**{**base, **kw})))


def test_postgres_primary_and_streaming_replica(run_program):
    rec = pg(run_program, instances=2, storage=PostgresStorage(size="50Gi", storage_class="gp3"))
    primary = rec.k8s_object("StatefulSet", "postgres-primary")["spec"]
    replica = rec.k8s_object("StatefulSet", "postgres-replica")["spec"]
    assert primary["replicas"] == 1 and replica["replicas"] == 1
    assert primary["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert primary["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "gp3"
    # clients write to the primary, read from replicas
    assert rec.k8s_object("Service", "postgres")["spec"]["selector"]["aquascene.io/role"] == "primary"
    assert rec.k8s_object("Service", "postgres-ro")["spec"]["selector"]["aquascene.io/role"] == "replica"
    assert rec.k8s_object("Service", "postgres-headless")["spec"]["clusterIP"] == "None"
    replica_container = replica["template"]["spec"]["containers"][0]
    assert replica_container["command"] == ["bash", "/etc/postgresql/conf.d/start-replica.sh"]
    script = rec.k8s_object("ConfigMap", "postgres-config")["data"]["start-replica.sh"]
    assert "pg_basebackup" in script and "-R" in script
    all_valid(rec)


def test_postgres_single_instance_has_no_replica(run_program):
    rec = pg(run_program, instances=1, environment="dev")
    names = {r.plain_inputs["metadata"]["name"] for r in rec.kubernetes("StatefulSet")}
    assert names == {"postgres-primary"}
    assert [s.plain_inputs["metadata"]["name"] for s in rec.kubernetes("Service") if "-ro" in s.plain_inputs["metadata"]["name"]] == []
    comp = rec.of_type("aquascene:data:PostgresCluster")[0]
    assert comp.urn  # exists


def test_postgres_tuning_from_the_seed(run_program):
    conf = pg(run_program).k8s_object("ConfigMap", "postgres-config")["data"]["tuning.conf"]
    for line in (
        "max_connections = '200'", "shared_buffers = '256MB'", "effective_cache_size = '1GB'",
        "wal_buffers = '16MB'", "max_wal_size = '4GB'", "shared_preload_libraries = 'pg_stat_statements'",
        "log_min_duration_statement = '1000'", "wal_level = 'replica'",
    ):
        assert line in conf.splitlines()


def test_postgres_passwords_referenced_never_inlined(run_program):
    rec = pg(run_program, instances=2)
    for sts in rec.kubernetes("StatefulSet"):
        pod = sts.plain_inputs["spec"]["template"]["spec"]
        # The credentials Secret is mounted read-only (0400) into both containers; variables only name files.
        assert {"name": "credentials", "secret": {"secretName": "postgres-credentials", "defaultMode": 0o400}} in pod["volumes"]
        for container in pod["containers"]:
            assert {"name": "credentials", "mountPath": "/run/secrets/postgres", "readOnly": True} in container["volumeMounts"]
            for e in container["env"]:
                assert "valueFrom" not in e or "secretKeyRef" not in e["valueFrom"], e
                if "PASS" in e["name"]:
                    assert e["name"].endswith("_FILE") and e["value"].startswith("/run/secrets/postgres/"), e
    scripts = rec.k8s_object("ConfigMap", "postgres-config")["data"]
    assert '\\set app_password `cat "$SECRETS_DIR/app-password"`' in scripts["init-primary.sh"]
    assert 'PGPASSWORD="$(cat "$SECRETS_DIR/replication-password")"' in scripts["start-replica.sh"]
    secrets = {r.plain_inputs["metadata"]["name"]: r for r in rec.kubernetes("Secret")}
    app = secrets["postgres-app"].plain_inputs
    assert app["type"] == "kubernetes.io/basic-auth"
    assert app["stringData"]["url"].startswith("postgresql://aquascene:")
    assert app["stringData"]["url"].endswith("@postgres.ns.svc.cluster.local:5432/content_engine")
    # secrets are secret Outputs, so the render redacts them
    assert manifest_of(secrets["postgres-app"])["stringData"]["password"] == "[secret]"
    assert len(rec.of_type("random:index/randomPassword:RandomPassword")) == 5  # superuser, app, replication, metrics, read-only


def test_postgres_network_policy_peers(run_program):
    spec = pg(run_program).k8s_object("NetworkPolicy", "postgres")["spec"]
    by_port = {}
    for rule in spec["ingress"]:
        for port in rule["ports"]:
            by_port.setdefault(port["port"], []).extend(rule["from"])
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "api"}}} in by_port[5432]
    assert by_port[9187] == [PROM_PEER.selector()]
    assert set(by_port) == {5432, 9187}


def test_postgres_exporter_sidecar_scraped(run_program):
    sts = pg(run_program).k8s_object("StatefulSet", "postgres-primary")["spec"]["template"]
    assert sts["metadata"]["annotations"]["prometheus.io/port"] == "9187"
    names = [c["name"] for c in sts["spec"]["containers"]]
    assert names == ["postgres", "exporter"]


def test_cloudnative_pg_cluster_with_barman_backups(run_program):
    backup = ObjectStoreBackup("system-backups", retention_days=30,
                               endpoint_url="http://object-store.ns.svc.cluster.local:9000")
    rec = pg(run_program, mode="cloudnative-pg", instances=3, environment="prod", backup=backup,
             image="ghcr.io/cloudnative-pg/postgresql:17.6", zone_anti_affinity="required")
    cluster = rec.k8s_object("Cluster", "postgres")
    spec = cluster["spec"]
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert spec["instances"] == 3
    assert spec["affinity"] == {"enablePodAntiAffinity": True, "topologyKey": "topology.kubernetes.io/zone",
                                "podAntiAffinityType": "required"}
    assert spec["postgresql"]["parameters"]["max_connections"] == "200"
    assert spec["bootstrap"]["initdb"]["secret"] == {"name": "postgres-app"}
    assert spec["bootstrap"]["initdb"]["database"] == "content_engine"
    assert spec["plugins"] == [{"name": "barman-cloud.cloudnative-pg.io", "isWALArchiver": True,
                                "parameters": {"barmanObjectName": "postgres-backups", "serverName": "postgres"}}]
    assert "initdb" in spec["bootstrap"] and "externalClusters" not in spec
    assert "backup" not in spec  # the deprecated barmanObjectStore is not used
    store = rec.k8s_object("ObjectStore", "postgres-backups")["spec"]
    assert store["configuration"]["destinationPath"] == "s3://system-backups/postgres"
    assert store["configuration"]["endpointURL"] == "http://object-store.ns.svc.cluster.local:9000"
    assert store["retentionPolicy"] == "30d"
    scheduled = rec.k8s_object("ScheduledBackup", "postgres-daily")["spec"]
    assert scheduled["method"] == "plugin" and scheduled["cluster"] == {"name": "postgres"}
    releases = {r.plain_inputs["chart"]: r.plain_inputs["version"] for r in rec.of_type("kubernetes:helm.sh/v3:Release")}
    assert releases == {name: CHARTS[name].version for name in ("cloudnative-pg", "plugin-barman-cloud")}
    all_valid(rec)


def test_cloudnative_pg_recovers_from_its_archive_to_a_point_in_time(run_program):
    from components.postgres import Recovery

    rec = pg(run_program, mode="cloudnative-pg", instances=3, backup=ObjectStoreBackup("system-backups"),
             server_name="postgres-2", recovery=Recovery("postgres", target_time="2026-11-24T05:00:00Z"))
    spec = rec.k8s_object("Cluster", "postgres")["spec"]
    assert spec["bootstrap"] == {"recovery": {
        "source": "origin", "database": "content_engine", "owner": "aquascene", "secret": {"name": "postgres-app"},
        "recoveryTarget": {"targetTime": "2026-11-24T05:00:00Z"}}}
    assert spec["externalClusters"] == [{"name": "origin", "plugin": {
        "name": "barman-cloud.cloudnative-pg.io",
        "parameters": {"barmanObjectName": "postgres-backups", "serverName": "postgres"}}}]
    # the recovered cluster archives under a new name: the source backups are never overwritten
    assert spec["plugins"][0]["parameters"]["serverName"] == "postgres-2"


@pytest.mark.parametrize("kw, message", [
    (dict(recovery="same-name"), "server_name must differ from recovery.source_server_name"),
    (dict(recovery="no-backup"), "recovery needs backup"),
])
def test_recovery_guards(kw, message):
    from components.postgres import Recovery

    backup = ObjectStoreBackup("b") if kw["recovery"] == "same-name" else None
    with pytest.raises(ValueError, match=message):
        PostgresClusterArgs(namespace="ns", environment="prod", mode="cloudnative-pg", backup=backup,
                            recovery=Recovery("postgres"))


def test_recovery_target_time_must_be_rfc3339():
    from components.postgres import Recovery

    with pytest.raises(ValueError, match="target_time must be RFC 3339"):
        Recovery("postgres", target_time="yesterday")


def test_prod_stack_recovery_switch(run_stack):
    rec = run_stack("prod", {"postgres": {"server_name": "postgres-2", "recovery": {
        "enabled": True, "source_server_name": "postgres", "target_time": "2026-11-24T05:00:00Z"}}})
    spec = rec.k8s_object("Cluster", "postgres")["spec"]
    assert spec["bootstrap"]["recovery"]["recoveryTarget"] == {"targetTime": "2026-11-24T05:00:00Z"}


def test_cloudnative_pg_without_operator_install(run_program):
    from components.postgres import Operator

    rec = pg(run_program, mode="cloudnative-pg", instances=3, operator=Operator(install=False))
    assert rec.of_type("kubernetes:helm.sh/v3:Release") == []
    assert rec.k8s_object("Cluster", "postgres")["spec"]["plugins"] == []


@pytest.mark.parametrize("kw, message", [
    (dict(instances=0), "instances must be >= 1"),
    (dict(mode="galera"), "mode must be 'statefulset' or 'cloudnative-pg'"),
    (dict(backup=ObjectStoreBackup("b")), "backup needs mode 'cloudnative-pg'"),
    (dict(parameters={"listen_addresses": "*"}), "listen_addresses is managed by the component"),
])
def test_postgres_args_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        PostgresClusterArgs(namespace="ns", environment="dev", **kw)


def test_backup_prefix_must_be_a_plain_key_prefix():
    with pytest.raises(ValueError, match="prefix must be a plain S3 key prefix"):
        ObjectStoreBackup("bucket", prefix="s3://other/")


# --------------------------------------------------------------------- redis


def redis(run_program, **kw):
    base = dict(namespace="ns", environment="dev", clients=[APP_PEER], scrapers=[PROM_PEER],
                client_dbs={"content-manager": 0, "ai-processor": 1})
    return run_program(lambda: RedisCluster("redis", RedisClusterArgs(**{**base, **kw})))


def test_redis_standalone_config(run_program):
    rec = redis(run_program, maxmemory="800mb")
    conf = rec.k8s_object("ConfigMap", "redis-config")["data"]["redis.conf"].splitlines()
    for line in ("appendonly yes", "appendfsync everysec", "save 900 1 300 10 60 10000", "maxmemory 800mb",
                 "maxmemory-policy allkeys-lru", "include /etc/redis/auth/auth.conf"):
        assert line in conf
    assert not any(line.startswith("requirepass") for line in conf)
    sts = rec.k8s_object("StatefulSet", "redis")["spec"]
    assert sts["replicas"] == 1
    assert rec.kubernetes("Job") == []
    all_valid(rec)


def test_redis_password_mounted_not_on_command_line(run_program):
    rec = redis(run_program)
    pod = rec.k8s_object("StatefulSet", "redis")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["sh", "/etc/redis/start.sh"]
    assert {"name": "auth", "mountPath": "/etc/redis/auth", "readOnly": True} in container["volumeMounts"]
    assert "REDISCLI_AUTH" not in env_of(container)  # read from the file by the probe, for that call only
    assert "$(cat /etc/redis/auth/password)" in container["readinessProbe"]["exec"]["command"][-1]
    auth = next(v for v in pod["volumes"] if v["name"] == "auth")["secret"]
    assert auth["defaultMode"] == 0o400 and {i["key"] for i in auth["items"]} == {
        "auth.conf", "password", "exporter-passwords.json"}
    exporter = pod["containers"][1]
    assert env_of(exporter)["REDIS_PASSWORD_FILE"]["value"] == "/etc/redis/auth/exporter-passwords.json"
    assert {"name": "auth", "mountPath": "/etc/redis/auth", "readOnly": True} in exporter["volumeMounts"]
    secret = rec.k8s_object("Secret", "redis-auth")["stringData"]
    assert secret["auth.conf"].startswith("requirepass ")
    assert json.loads(secret["exporter-passwords.json"]) == {"redis://127.0.0.1:6379": secret["password"]}
    assert secret["url-content-manager"].endswith("@redis.ns.svc.cluster.local:6379/0")
    assert secret["url-ai-processor"].endswith("@redis.ns.svc.cluster.local:6379/1")


def test_redis_cluster_six_nodes_and_idempotent_bootstrap(run_program):
    rec = redis(run_program, mode="cluster")
    sts = rec.k8s_object("StatefulSet", "redis")["spec"]
    assert sts["replicas"] == 6
    assert sts["podManagementPolicy"] == "Parallel"
    assert "podAntiAffinity" in sts["template"]["spec"]["affinity"]
    conf = rec.k8s_object("ConfigMap", "redis-config")["data"]
    assert "cluster-enabled yes" in conf["redis.conf"].splitlines()
    assert "cluster-preferred-endpoint-type hostname" in conf["redis.conf"].splitlines()
    assert "cluster-announce-hostname" in conf["start.sh"] and "getent hosts" in conf["start.sh"]
    assert "cluster_state:ok" in conf["bootstrap.sh"]  # a formed cluster is left alone
    job = rec.k8s_object("Job", "redis-bootstrap")["spec"]["template"]["spec"]["containers"][0]
    nodes = env_of(job)["NODES"]["value"].split()
    assert nodes[0] == "redis-0.redis-headless.ns.svc.cluster.local" and len(nodes) == 6
    assert env_of(job)["REPLICAS"]["value"] == "1"
    # one database in cluster mode: every URL uses /0
    secret = rec.k8s_object("Secret", "redis-auth")["stringData"]
    assert secret["url-ai-processor"].endswith(":6379/0")
    bootstrap_policy = rec.k8s_object("NetworkPolicy", "redis-bootstrap")["spec"]
    assert bootstrap_policy["egress"][1]["ports"] == [{"port": 6379, "protocol": "TCP"}]
    all_valid(rec)


@pytest.mark.parametrize("kw, message", [
    (dict(mode="cluster", masters=2), "masters must be >= 3 in cluster mode"),
    (dict(settings={"requirepass": "x"}), r"\['requirepass'\] are managed by the component"),
    (dict(client_dbs={"x": 16}), "databases must be 0-15"),
])
def test_redis_args_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        RedisClusterArgs(namespace="ns", environment="dev", **kw)


# -------------------------------------------------------------- object store


def store(run_program, **kw):
    base = dict(namespace="ns", environment="dev", clients=[APP_PEER], scrapers=[PROM_PEER])
    return run_program(lambda: ObjectStore("object-store", ObjectStoreArgs(**{**base, **kw})))


def test_seed_buckets_and_lifecycles():
    by_name = {b.name: b for b in SEED_BUCKETS}
    assert set(by_name) == {"content-assets", "newsletter-templates", "instagram-media", "system-backups", "temp-uploads"}
    script = bucket_setup_script(SEED_BUCKETS).splitlines()
    assert "mc version enable store/content-assets" in script
    assert "mc version enable store/newsletter-templates" in script
    assert "mc version enable store/system-backups" in script
    assert "mc version enable store/temp-uploads" not in script
    assert "mc ilm rule add --expire-days 365 store/instagram-media" in script
    assert "mc ilm rule add --expire-days 30 store/system-backups" in script
    assert "mc ilm rule add --expire-days 1 store/temp-uploads" in script
    assert all(f"mc anonymous set none store/{b}" in script for b in by_name)  # private
    assert all(f"mc mb --ignore-existing store/{b}" in script for b in by_name)  # idempotent


def test_object_store_single_and_distributed(run_program):
    single = store(run_program).k8s_object("StatefulSet", "object-store")["spec"]
    assert single["replicas"] == 1
    assert single["template"]["spec"]["containers"][0]["args"][:2] == ["server", "/data"]
    rec = store(run_program, mode="distributed", nodes=4)
    dist = rec.k8s_object("StatefulSet", "object-store")["spec"]
    assert dist["replicas"] == 4
    assert dist["template"]["spec"]["containers"][0]["args"][1] == \
        "http://object-store-{0...3}.object-store-headless.ns.svc.cluster.local/data"
    all_valid(rec)


def test_object_store_probes_and_credentials(run_program):
    rec = store(run_program)
    container = rec.k8s_object("StatefulSet", "object-store")["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/minio/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    assert env_of(container)["MINIO_ROOT_PASSWORD_FILE"]["value"] == "/run/secrets/object-store/MINIO_ROOT_PASSWORD"
    pod = rec.k8s_object("StatefulSet", "object-store")["spec"]["template"]["spec"]
    root = next(v for v in pod["volumes"] if v["name"] == "root-credentials")["secret"]
    assert root["secretName"] == "object-store-root" and root["defaultMode"] == 0o400
    app = rec.k8s_object("Secret", "object-store-app")["stringData"]
    assert app["access-key"] == "aquascene-app"  # the apps never get the root user
    assert app["endpoint"] == "http://object-store.ns.svc.cluster.local:9000"
    job = rec.kubernetes("Job")[0].plain_inputs
    assert job["metadata"]["name"].startswith("object-store-buckets-")
    policy = json.loads(bucket_setup_script(SEED_BUCKETS).split("printf '%s' '")[1].split("'")[0])
    resources = [r for s in policy["Statement"] for r in s["Resource"]]
    assert "*" not in json.dumps(policy["Statement"][0]["Action"]) and "arn:aws:s3:::*" not in resources


@pytest.mark.parametrize("kw, message", [
    (dict(image="docker.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"), "minio/minio is archived"),
    (dict(mode="distributed", nodes=3), "nodes must be >= 4"),
    (dict(buckets=[BucketSpec("a"), BucketSpec("a")]), "duplicate names"),
])
def test_object_store_args_validation(kw, message):
    with pytest.raises(ValueError, match=message):
        ObjectStoreArgs(namespace="ns", environment="dev", **kw)


def test_noncurrent_expiry_needs_versioning():
    with pytest.raises(ValueError, match="noncurrent_expire_days needs versioned=True"):
        BucketSpec("x", noncurrent_expire_days=3)


# -------------------------------------------------------------------- wiring


@pytest.mark.parametrize("env, pg_kind, redis_nodes, store_nodes", [
    ("dev", "StatefulSet", 1, 1),
    ("staging", "StatefulSet", 1, 1),
    ("prod", "Cluster", 6, None),  # prod keeps its buckets in S3 itself
])
def test_mode_per_environment(run_stack, env, pg_kind, redis_nodes, store_nodes):
    rec = run_stack(env)
    if pg_kind == "Cluster":
        assert rec.k8s_object("Cluster", "postgres")["spec"]["instances"] == 3
        assert rec.k8s_object("ObjectStore", "postgres-backups")
    else:
        expected = {"dev": {"postgres-primary"}, "staging": {"postgres-primary", "postgres-replica"}}[env]
        names = {r.plain_inputs["metadata"]["name"] for r in rec.kubernetes("StatefulSet")}
        assert expected <= names and "postgres-replica" not in names - expected
    assert rec.k8s_object("StatefulSet", "redis")["spec"]["replicas"] == redis_nodes
    if store_nodes is None:
        assert [r for r in rec.kubernetes("StatefulSet") if r.plain_inputs["metadata"]["name"] == "object-store"] == []
        assert len(rec.of_type("aws:s3/bucket:Bucket")) == 5
    else:
        assert rec.k8s_object("StatefulSet", "object-store")["spec"]["replicas"] == store_nodes


def test_distributed_object_store_in_cluster_when_chosen(run_stack):
    rec = run_stack("prod", {"object_store": {"mode": "distributed"}})
    assert rec.k8s_object("StatefulSet", "object-store")["spec"]["replicas"] == 4
    # the backup bucket is then a standalone, protected S3 bucket
    assert len(rec.of_type("aws:s3/bucket:Bucket")) == 1


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_app_reads_connection_settings_from_secrets(run_stack, env):
    rec = run_stack(env)
    for service in CONTENT_SERVICES:
        pod = rec.k8s_object("Deployment", service.name)["spec"]["template"]["spec"]
        assert "env" not in pod["containers"][0]
        env_vars = app_secret_refs(pod)
        expected = {
            "DATABASE_URL": ("postgres-pooler-app", "url"),  # through the pooler
            "REDIS_URL": ("redis-auth", f"url-{service.name}"),
        }
        s3_keys = {
            "S3_ENDPOINT": ("object-store-app", "endpoint"),
            "S3_ACCESS_KEY": ("object-store-app", "access-key"),
            "S3_SECRET_KEY": ("object-store-app", "secret-key"),
        }
        if env == "dev":
            expected |= s3_keys
        else:  # S3 on AWS: the service account's IAM role, no keys at all
            assert not any(k in env_vars for k in s3_keys)
            sa = rec.k8s_object("ServiceAccount", service.name)
            assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
        for name, (secret, key) in expected.items():
            assert env_vars[name] == {"name": secret, "key": key}, (service.name, name)
        config = rec.k8s_object("ConfigMap", f"{service.name}-config")["data"]
        assert "content-assets" in config["S3_BUCKET_ASSETS"]
        assert not any(k in config for k in [*expected, *s3_keys])  # never in a ConfigMap
        redis_urls = rec.k8s_object("Secret", "redis-auth")["stringData"]
        db = redis_urls[f"url-{service.name}"].rsplit("/", 1)[1]
        assert db == ("0" if env == "prod" else str(service.redis_db))
        assert ("REDIS_KEY_PREFIX" in config) is (env == "prod")


def test_apps_may_reach_the_data_stores(run_stack):
    rec = run_stack("dev")
    egress = rec.k8s_object("NetworkPolicy", "content-manager")["spec"]["egress"]
    ports = {p["port"] for rule in egress for p in rule.get("ports", [])}
    assert {5432, 6379, 9000} <= ports


def test_migration_job_runs_before_the_services(run_stack):
    rec = run_stack("staging")
    job = rec.k8s_object("Job", "content-engine-migrate")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "app", "migrate"]
    # Directly to PostgreSQL (DDL needs a session of its own), as a mounted file.
    assert app_secret_refs(job["spec"]["template"]["spec"]) == {"DATABASE_URL": {"name": "postgres-app", "key": "url"}}
    [job_resource] = [r for r in rec.of_type("kubernetes:batch/v1:Job") if r.name == "migrate-job"]
    for svc in rec.of_type("aquascene:app:AppService"):
        assert job_resource.urn in svc.dependencies  # depending on a component = on its children


def test_stack_outputs_name_endpoints_not_secrets(run_stack):
    out = run_stack("prod").stack_outputs
    assert out["postgres"]["host"] == "postgres-rw.aquascene-prod.svc.cluster.local"
    assert out["postgres"]["read_only_host"] == "postgres-ro.aquascene-prod.svc.cluster.local"
    assert out["redis"]["cluster_mode"] is True
    assert sorted(out["object_store"]["buckets"]) == sorted(b.name for b in SEED_BUCKETS)
    from tooling.recording import is_secret

    passwords = [r.outputs["result"] for r in run_stack("prod").of_type("random:index/randomPassword:RandomPassword")]
    plain = json.dumps({k: v for k, v in out.items() if not is_secret(v)})
    assert passwords and not any(p in plain for p in passwords)
    assert is_secret(out["grafana_admin_password"]) and is_secret(out["kubeconfig"])
