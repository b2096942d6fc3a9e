#!/usr/bin/env bash
# Install the real Prometheus and Alertmanager tools that tests/monitoring runs:
#   - Debian's `prometheus` (promtool) and `prometheus-alertmanager` (amtool);
#   - promtool of the Prometheus release the stack deploys, built from its Go
#     module, because Debian builds promtool without Kubernetes service
#     discovery and so cannot check a config that uses kubernetes_sd_configs.
# Idempotent: safe to run any number of times. Needs root for apt-get (CI runs it as root).
set -euo pipefail

# Keep in step with Images.prometheus in components/monitoring/args.py
# (Prometheus v3.X.Y is published as Go module version v0.3XX.Y).
PROMETHEUS_VERSION="v3.15.1"
PROMETHEUS_MODULE_VERSION="v0.315.1"
PROMTOOL="${PROMTOOL:-/usr/local/bin/promtool}"

log() { printf '[monitoring-tools] %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -x /usr/bin/promtool ] || missing+=(prometheus)
[ -x /usr/bin/amtool ] || missing+=(prometheus-alertmanager)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  bash "$(dirname "$0")/apt-install.sh" "${missing[@]}"
  # The packages start services we do not want running on a build machine.
  as_root systemctl disable --now prometheus prometheus-node-exporter prometheus-alertmanager >/dev/null 2>&1 || true
else
  log "prometheus and prometheus-alertmanager already installed"
fi

stamp="${PROMTOOL}.version"
if [ -x "${PROMTOOL}" ] && [ "$(cat "${stamp}" 2>/dev/null)" = "${PROMETHEUS_VERSION}" ]; then
  log "promtool ${PROMETHEUS_VERSION} already at ${PROMTOOL}"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  log "go not found: cannot build promtool ${PROMETHEUS_VERSION} (tests/monitoring needs it for 'check config')"
  exit 1
fi
log "building promtool ${PROMETHEUS_VERSION} (module ${PROMETHEUS_MODULE_VERSION}); a few minutes on a cold module cache"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
cd "${work}"
# A throwaway main module: Prometheus' go.mod has a replace directive, which
# `go install pkg@version` refuses, so the build repeats it here.
cat > go.mod <<EOF
module promtool.build

go 1.24

replace cloud.google.com/go => cloud.google.com/go v0.123.0
EOF
# Only the Kubernetes service discovery the config uses: the other SD plugins (AWS, Azure,
# GCE, ...) roughly double the build time and are never exercised here.
export GOFLAGS="-tags=remove_all_sd,enable_kubernetes_sd"
go get -tool "github.com/prometheus/prometheus/cmd/promtool@${PROMETHEUS_MODULE_VERSION}" 2> go-get.log \
  || { cat go-get.log; exit 1; }
mkdir -p "$(dirname "${PROMTOOL}")"
go build -trimpath -o "${PROMTOOL}" github.com/prometheus/prometheus/cmd/promtool
echo "${PROMETHEUS_VERSION}" > "${stamp}"
log "promtool ${PROMETHEUS_VERSION} installed at ${PROMTOOL}"
