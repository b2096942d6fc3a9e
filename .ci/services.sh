#!/usr/bin/env bash
# Install (if missing) and start the PostgreSQL and Redis servers the content
# engine's tests use, then create the test role and database.
# Idempotent: safe to run any number of times. Needs root (CI runs it as root).
set -euo pipefail

PG_ROLE="${TEST_PG_ROLE:-aquascene}"
PG_PASSWORD="${TEST_PG_PASSWORD:-aquascene}"
PG_DATABASE="${TEST_PG_DATABASE:-aquascene_test}"
PG_PORT="${TEST_PG_PORT:-5432}"
REDIS_PORT="${TEST_REDIS_PORT:-6379}"

log() { printf '[services] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
  || missing+=(postgresql postgresql-client)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  bash "$(dirname "$0")/apt-install.sh" "${missing[@]}"
else
  log "postgresql and redis-server already installed"
fi

# --- PostgreSQL ------------------------------------------------------------
PG_VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "${PG_VERSION} main"; then
  log "creating PostgreSQL ${PG_VERSION} cluster 'main'"
  as_root pg_createcluster "${PG_VERSION}" main --port "${PG_PORT}"
fi
if pg_lsclusters -h | awk -v v="${PG_VERSION}" '$1==v && $2=="main" {print $4}' | grep -q online; then
  log "PostgreSQL ${PG_VERSION}/main already running"
else
  log "starting PostgreSQL ${PG_VERSION}/main"
  as_root pg_ctlcluster "${PG_VERSION}" main start
fi

for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p "${PG_PORT}"; then break; fi
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p "${PG_PORT}" >/dev/null || { log "PostgreSQL did not become ready"; exit 1; }

psql_admin() { as_root runuser -u postgres -- psql -v ON_ERROR_STOP=1 -p "${PG_PORT}" -qAt "$@"; }

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '${PG_ROLE}'")" != "1" ]; then
  log "creating role ${PG_ROLE}"
  psql_admin -c "CREATE ROLE \"${PG_ROLE}\" LOGIN CREATEDB PASSWORD '${PG_PASSWORD}'"
else
  psql_admin -c "ALTER ROLE \"${PG_ROLE}\" LOGIN CREATEDB PASSWORD '${PG_PASSWORD}'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '${PG_DATABASE}'")" != "1" ]; then
  log "creating database ${PG_DATABASE}"
  psql_admin -c "CREATE DATABASE \"${PG_DATABASE}\" OWNER \"${PG_ROLE}\""
fi
psql_admin -d "${PG_DATABASE}" -c "ALTER SCHEMA public OWNER TO \"${PG_ROLE}\""

# --- Redis -----------------------------------------------------------------
if redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" ping >/dev/null 2>&1; then
  log "Redis already running on ${REDIS_PORT}"
else
  log "starting Redis on ${REDIS_PORT}"
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port "${REDIS_PORT}" \
    --save "" --appendonly no --dir /tmp --logfile /tmp/redis-aquascene-test.log
fi
for _ in $(seq 1 40); do
  if redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" ping >/dev/null 2>&1; then break; fi
  sleep 0.25
done
redis-cli -h 127.0.0.1 -p "${REDIS_PORT}" ping >/dev/null || { log "Redis did not become ready"; exit 1; }

log "ready: postgresql://${PG_ROLE}:***@127.0.0.1:${PG_PORT}/${PG_DATABASE} and redis://127.0.0.1:${REDIS_PORT}"
