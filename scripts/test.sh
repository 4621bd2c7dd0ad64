#!/usr/bin/env bash
# The whole test suite: install (idempotent), lint (ruff check and format, import contracts), type-check, then every test
# tier (unit, integration, e2e including the slow ones). Every step runs; the script fails if any of
# them failed.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh || exit 1
export PATH="$PWD/.venv/bin:$PATH"
rc=0
ruff check operator tests bench || rc=1
ruff format --check operator tests bench || rc=1
lint-imports || rc=1
mypy || rc=1
pytest -q "$@" || rc=1
exit $rc
