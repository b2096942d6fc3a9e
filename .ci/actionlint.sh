#!/usr/bin/env bash
# Install actionlint, the GitHub Actions workflow linter that tests/unit/test_workflows.py
# runs on .github/, built from its Go module at a pinned version, and Debian's shellcheck,
# which actionlint runs on every `run:` script. Idempotent: what is installed is left
# alone. Prints how long the phase took. Needs root for apt-get (CI runs it as root).
set -euo pipefail

ACTIONLINT_VERSION="v1.7.12"
ACTIONLINT="${ACTIONLINT:-/usr/local/bin/actionlint}"

log() { printf '[actionlint] %s\n' "$*"; }
started=$(date +%s)

# actionlint runs shellcheck on every `run:` script when it is on PATH.
if ! command -v shellcheck >/dev/null 2>&1; then
  log "installing shellcheck"
  bash "$(dirname "$0")/apt-install.sh" shellcheck
fi

if [ -x "${ACTIONLINT}" ] && "${ACTIONLINT}" -version 2>/dev/null | head -1 | grep -qx "${ACTIONLINT_VERSION}"; then
  log "actionlint ${ACTIONLINT_VERSION} already at ${ACTIONLINT} ($(( $(date +%s) - started ))s)"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  log "go not found: cannot build actionlint ${ACTIONLINT_VERSION}"
  exit 1
fi
log "building actionlint ${ACTIONLINT_VERSION} from its Go module"
bin="$(mktemp -d)"
trap 'rm -rf "${bin}"' EXIT
GOBIN="${bin}" go install "github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}"
mkdir -p "$(dirname "${ACTIONLINT}")"
install -m 755 "${bin}/actionlint" "${ACTIONLINT}"
log "actionlint ${ACTIONLINT_VERSION} installed at ${ACTIONLINT} ($(( $(date +%s) - started ))s)"
