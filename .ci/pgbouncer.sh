#!/usr/bin/env bash
# Install (if missing) and start a PgBouncer in transaction mode in front of the
# test PostgreSQL (.ci/services.sh), as production runs the content engine:
# consecutive transactions of one client may run on different server connections.
# Idempotent: a running PgBouncer on the port is left alone. Needs root (CI runs it as root).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_ROLE="${TEST_PG_ROLE:-aquascene}"
PG_PASSWORD="${TEST_PG_PASSWORD:-aquascene}"
PG_PORT="${TEST_PG_PORT:-5432}"
BOUNCER_PORT="${TEST_PGBOUNCER_PORT:-6432}"
BOUNCER_DIR="${TEST_PGBOUNCER_DIR:-/tmp/aquascene-pgbouncer-${BOUNCER_PORT}}"

log() { printf '[pgbouncer] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
  log "installing pgbouncer"
  bash .ci/apt-install.sh pgbouncer
fi
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"

if pg_isready -q -h 127.0.0.1 -p "${BOUNCER_PORT}"; then
  log "already listening on ${BOUNCER_PORT}"
  exit 0
fi

as_root install -d -o postgres -g postgres -m 0700 "${BOUNCER_DIR}"
# The configuration the stacks deploy (components/pooler.py), pointed at the test server.
PYTHON="${PYTHON:-.venv/bin/python}"
"${PYTHON}" -m components.pooler "${PG_PORT}" "${BOUNCER_PORT}" "${BOUNCER_DIR}" "${PG_ROLE}" \
  | as_root tee "${BOUNCER_DIR}/pgbouncer.ini" >/dev/null
printf '"%s" "%s"\n' "${PG_ROLE}" "${PG_PASSWORD}" | as_root tee "${BOUNCER_DIR}/userlist.txt" >/dev/null
as_root chown postgres:postgres "${BOUNCER_DIR}/pgbouncer.ini" "${BOUNCER_DIR}/userlist.txt"
as_root chmod 0400 "${BOUNCER_DIR}/userlist.txt"

log "starting on 127.0.0.1:${BOUNCER_PORT} -> PostgreSQL ${PG_PORT} (pool_mode=transaction)"
# PgBouncer refuses to run as root.
as_root runuser -u postgres -- "${PGBOUNCER}" -d "${BOUNCER_DIR}/pgbouncer.ini"
for _ in $(seq 1 40); do
  if pg_isready -q -h 127.0.0.1 -p "${BOUNCER_PORT}"; then break; fi
  sleep 0.25
done
pg_isready -h 127.0.0.1 -p "${BOUNCER_PORT}" >/dev/null || { log "PgBouncer did not become ready"; exit 1; }
log "ready: postgresql://${PG_ROLE}:***@127.0.0.1:${BOUNCER_PORT}/<database> (transaction pooling)"
