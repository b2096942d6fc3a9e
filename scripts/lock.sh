#!/usr/bin/env bash
# Regenerate requirements/app.txt, the content engine's locked dependencies with hashes, from
# pyproject.toml's `app` extra (uv, from the dev extra). Run it after changing that extra:
# tests/unit/test_lock.py fails until the lock matches again.
#   bash scripts/lock.sh             # keep the locked versions that still fit the ranges
#   bash scripts/lock.sh --upgrade   # the newest versions the ranges allow
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m tooling.lock "$@"
