#!/usr/bin/env bash
# The whole test suite with every service it needs, on a fresh machine or a warm one:
#   PostgreSQL and Redis (.ci/services.sh), promtool/amtool (.ci/monitoring-tools.sh), and a
#   Kubernetes API server for tests/live: the cluster KUBECONFIG names, or else the local one
#   that shared/kube-local builds and starts (a sibling of this checkout: ../shared/kube-local,
#   or KUBE_LOCAL_DIR). Each step is idempotent and quick when its service already runs.
# Arguments go to pytest:  bash scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."

phase_started=$(date +%s)
phase() {
  local now; now=$(date +%s)
  printf '[test] %-28s %4ss\n' "$1" "$(( now - phase_started ))" >&2
  phase_started=${now}
}

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  phase "python environment"
fi

bash .ci/services.sh >&2
phase "postgresql, redis"
# The engine's PostgreSQL tests go through PgBouncer in transaction mode, as production does;
# the backup drill connects directly, as the stacks' backup job does (pg_dump, database swap).
bash .ci/pgbouncer.sh >&2
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgresql://aquascene:aquascene@127.0.0.1:${TEST_PGBOUNCER_PORT:-6432}/aquascene_test}"
export TEST_DIRECT_DATABASE_URL="${TEST_DIRECT_DATABASE_URL:-postgresql://aquascene:aquascene@127.0.0.1:5432/aquascene_test}"
phase "pgbouncer"
bash .ci/monitoring-tools.sh >&2
phase "promtool, amtool"

if [ -z "${KUBECONFIG:-}" ]; then
  kube_local="${KUBE_LOCAL_DIR:-../shared/kube-local}"
  if [ -x "${kube_local}/up.sh" ]; then
    # up.sh builds (first time only) and starts the API server; its last line exports KUBECONFIG.
    eval "$("${kube_local}/up.sh")"
    phase "kubernetes api server"
  else
    echo "[test] no KUBECONFIG and no ${kube_local}/up.sh: tests/live will skip (fail under CI=true)" >&2
  fi
fi

exec .venv/bin/python -m pytest "$@"
