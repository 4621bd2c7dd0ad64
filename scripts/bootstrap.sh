#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian/Ubuntu machine with Python >= 3.11:
# a virtual environment in .venv with the project and its dev extras, and Debian's prometheus,
# promtool and wrk (used by the drift end-to-end tests, the demo and the benchmarks).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    echo "bootstrap: installing prometheus (Debian package)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus wrk >/dev/null
    # The Debian package starts a system service listening on :9090; our tests start their own.
    $SUDO systemctl stop prometheus >/dev/null 2>&1 || $SUDO service prometheus stop >/dev/null 2>&1 || true
  else
    echo "bootstrap: no apt-get; install prometheus and promtool yourself (tests that need them are skipped)" >&2
  fi
fi

# The install tier (tests/install) builds the images and runs pods as containers: podman with runc, and
# debootstrap for the local base image when python:3.11-slim cannot be pulled. SKIP_CONTAINER_ENGINE=1
# leaves them out (the tier then skips).
if [ "${SKIP_CONTAINER_ENGINE:-0}" != "1" ] && ! command -v docker >/dev/null 2>&1 && {
     ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 ||
     ! command -v debootstrap >/dev/null 2>&1; }; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    echo "bootstrap: installing podman, runc and debootstrap (Debian packages; the install test tier)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq podman runc debootstrap >/dev/null
  else
    echo "bootstrap: no apt-get; install podman (or docker) yourself (the install tier is skipped)" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.onnxops-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
