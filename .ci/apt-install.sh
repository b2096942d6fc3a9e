#!/usr/bin/env bash
# Install the Debian packages named (the caller decides which are missing): non-interactive, without
# recommends, waiting for any concurrent apt/dpkg run instead of failing on its lock. Needs root
# (sudo otherwise). Its output goes to stderr, as the other setup steps' does.
#   bash .ci/apt-install.sh PACKAGE...
set -euo pipefail
[ "$#" -gt 0 ] || exit 0
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive
{
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@"
} >&2
