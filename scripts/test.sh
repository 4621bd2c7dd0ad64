#!/usr/bin/env bash
# The whole test suite: install (idempotent), lint, type-check, then every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check operator tests bench
mypy
pytest -q "$@"
