#!/usr/bin/env bash
# Debian's Chromium (/usr/bin/chromium) and the fonts its pages render with, for the browser tests
# (Playwright drives this Chromium: no browser download, which these machines cannot make).
# Idempotent: installs only what is missing. Needs root for apt-get (CI runs it as root).
set -euo pipefail

PACKAGES=(chromium fonts-liberation fonts-dejavu-core)

log() { printf '[browser] %s\n' "$*"; }
started=$(date +%s)

missing=()
for package in "${PACKAGES[@]}"; do
  # A Chromium already at /usr/bin/chromium (e.g. GitHub's Ubuntu runners, where the package
  # of that name does not exist) serves as well.
  if [ "${package}" = chromium ] && [ -x /usr/bin/chromium ]; then continue; fi
  dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q 'install ok installed' || missing+=("${package}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  bash "$(dirname "$0")/apt-install.sh" "${missing[@]}"
fi
log "$(/usr/bin/chromium --version 2>/dev/null || echo 'chromium missing') ($(( $(date +%s) - started ))s)"
