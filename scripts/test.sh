#!/usr/bin/env bash
# The whole test suite with everything it needs, on a fresh machine or a warm one, the same for a
# person and for CI (.ci/run adds only CI=true and its own timing). It installs and starts:
#   the project's .venv (the README's first command; reinstalled when pyproject.toml changes),
#   PostgreSQL and Redis (.ci/services.sh), PgBouncer (.ci/pgbouncer.sh), promtool/amtool
#   (.ci/monitoring-tools.sh), actionlint and shellcheck (.ci/actionlint.sh; zizmor is in the dev
#   extra), Debian's Chromium for the browser tests (.ci/browser.sh), buildah/podman and the
#   content engine's image for tests/image (.ci/image.sh), and a Kubernetes API server for
#   tests/live: the cluster KUBECONFIG names, or else the local one that shared/kube-local builds
#   and starts (a sibling of this checkout: ../shared/kube-local, or KUBE_LOCAL_DIR).
# Each step is idempotent and quick when its service already runs; each phase prints its time.
# Arguments go to pytest; test paths among them limit the tools and servers set up to what those
# tests need (promtool for tests/monitoring, actionlint for tests/unit, the image for tests/image,
# the API server for tests/live; the Python environment, databases and Chromium always):
#   bash scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
phase_started=${started}
phase() {
  local now; now=$(date +%s)
  printf '[test] %-32s %5ss  (total %ss)\n' "$1" "$(( now - phase_started ))" "$(( now - started ))" >&2
  phase_started=${now}
}

# The test paths among the arguments (none: the whole suite).
paths=()
for arg in "$@"; do
  case "${arg%%::*}" in tests | tests/*) paths+=("${arg%%::*}") ;; esac
done
# needs DIR: true when the run includes tests under DIR.
needs() {
  [ "${#paths[@]}" -eq 0 ] && return 0
  local path
  for path in "${paths[@]}"; do
    path="${path%/}"
    case "${path}/" in "$1"/*) return 0 ;; esac
    case "$1/" in "${path}"/*) return 0 ;; esac
  done
  return 1
}

# The local Kubernetes API server's Go builds and CRD generation are the longest step on a cold
# machine (12-15 min on two cores): start them first, in the background, so the downloads and
# installs below run meanwhile; the server starts once they are done. Quick when already built.
kube_local="${KUBE_LOCAL_DIR:-../shared/kube-local}"
kube_build_pid=""
kube_build_log=""
if needs tests/live && [ -z "${KUBECONFIG:-}" ] && [ -x "${kube_local}/build.sh" ]; then
  kube_build_log=$(mktemp)
  ("${kube_local}/build.sh" && "${kube_local}/crds.sh" generate) >"${kube_build_log}" 2>&1 &
  kube_build_pid=$!
fi

# The README's first command, rerun whenever pyproject.toml changed since the last install.
stamp=.venv/.installed-pyproject
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ "$(cat "${stamp}" 2>/dev/null)" != "$(sha256sum pyproject.toml)" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  sha256sum pyproject.toml >"${stamp}"
fi
phase "python environment"

bash .ci/services.sh >&2
phase "postgresql, redis"
# The engine's PostgreSQL tests go through PgBouncer in transaction mode, as production does;
# the backup drill connects directly, as the stacks' backup job does (pg_dump, database swap).
bash .ci/pgbouncer.sh >&2
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgresql://aquascene:aquascene@127.0.0.1:${TEST_PGBOUNCER_PORT:-6432}/aquascene_test}"
export TEST_DIRECT_DATABASE_URL="${TEST_DIRECT_DATABASE_URL:-postgresql://aquascene:aquascene@127.0.0.1:5432/aquascene_test}"
phase "pgbouncer"
if needs tests/monitoring; then
  bash .ci/monitoring-tools.sh >&2
  phase "promtool, amtool"
fi
if needs tests/unit; then
  # actionlint (built from its Go module) and shellcheck, for the workflows in .github/.
  bash .ci/actionlint.sh >&2
  phase "actionlint, shellcheck"
fi
bash .ci/browser.sh >&2
phase "chromium"

if needs tests/image; then
  # buildah/podman, then the image: built on a stand-in of its base (debootstrap) by default,
  # on the real base with IMAGE_BASE=registry, or pulled with IMAGE_REF (see .ci/image.sh).
  bash .ci/image.sh
  phase "content engine image"
fi

if [ -n "${kube_build_pid}" ]; then
  if ! wait "${kube_build_pid}"; then
    cat "${kube_build_log}" >&2
    echo "[test] building the local Kubernetes API server failed (log above)" >&2
    exit 1
  fi
  rm -f "${kube_build_log}"
  phase "api server build (background)"
fi
if needs tests/live && [ -z "${KUBECONFIG:-}" ]; then
  if [ -x "${kube_local}/up.sh" ]; then
    # up.sh builds (first time only) and starts the API server; its last line exports KUBECONFIG.
    eval "$("${kube_local}/up.sh")"
    phase "kubernetes api server"
    "${kube_local}/verify.sh" >&2
    phase "kubernetes api server smoke test"
  else
    echo "[test] no KUBECONFIG and no ${kube_local}/up.sh: tests/live will skip (fail under CI=true)" >&2
  fi
fi

# With arguments: one pytest run of exactly those.
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi

# The whole suite as two pytest runs side by side (the machines have two cores): the engine's
# tests (one PostgreSQL database and one Redis, which the fault drills and the five-minute soak
# measure) in one, everything else (unit, monitoring, the image, the live cluster) in the other. The
# engine's output follows the other's; the last line totals both.
reports=$(mktemp -d)
trap 'rm -rf "${reports}"' EXIT
.venv/bin/python -m pytest tests/app --junitxml="${reports}/engine.xml" >"${reports}/engine.log" 2>&1 &
engine=$!
status=0
.venv/bin/python -m pytest tests/unit tests/monitoring tests/image tests/live --junitxml="${reports}/infra.xml" || status=$?
engine_status=0
wait "${engine}" || engine_status=$?
echo
echo "==================== the engine's tests (tests/app) ===================="
cat "${reports}/engine.log"
phase "test suite"
.venv/bin/python - "${reports}/infra.xml" "${reports}/engine.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        totals["errors"] += 1  # a run that wrote no report failed
        continue
    for suite in root.iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
failed = totals["failures"] + totals["errors"]
passed = totals["tests"] - failed - totals["skipped"]
print(f"total: {passed} passed, {failed} failed, {totals['skipped']} skipped")
PY
if [ "${status}" -ne 0 ]; then exit "${status}"; fi
exit "${engine_status}"
