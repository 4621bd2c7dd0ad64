#!/usr/bin/env bash
# Make a local Python 3.11 base image that behaves like python:3.11-slim for the three Dockerfiles, for
# machines that cannot pull it: a Debian bookworm minbase root filesystem (debootstrap; bookworm's python3
# is 3.11), imported into the engine, then a second step that creates a virtual environment in
# /opt/python and puts it first on PATH, so that `python` and `pip` are that environment's, as in the
# official image (a symlink to the venv's python would not activate the venv).
#
# Usage: scripts/make-base-image.sh [REF]      (REF default: localhost/onnxops-python:3.11-bookworm)
# Environment:
#   ENGINE           podman | docker (default: the first one found)
#   ENGINE_FLAGS     global flags for the engine (default for podman: see scripts/engine.sh)
#   DEBIAN_MIRROR    debootstrap mirror (default: debootstrap's own default)
#   FORCE            1 to rebuild even when REF exists
#   EXTRA_CA_DIR     certificates (*.crt) the image trusts besides Debian's (default: the host's locally
#                    added CAs, /usr/local/share/ca-certificates, so that pip in the builds works behind a
#                    TLS-inspecting proxy as on the host; empty: none). pip is pointed at the system bundle.
# Needs root (debootstrap) and the debootstrap package.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/engine.sh
. scripts/engine.sh

REF=${1:-${BASE_IMAGE_REF:-localhost/onnxops-python:3.11-bookworm}}
if [ "${FORCE:-0}" != "1" ] && engine image inspect "$REF" >/dev/null 2>&1; then
  echo "make-base-image: $REF exists (FORCE=1 rebuilds it)"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1 && ! engine image inspect "$REF-rootfs" >/dev/null 2>&1; then
  echo "make-base-image: debootstrap is not installed (apt-get install debootstrap)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# step 1 (minutes): the debootstrapped root filesystem, imported as REF-rootfs and kept for rebuilds
raw="$REF-rootfs"
if [ "${FORCE:-0}" = "1" ] || ! engine image inspect "$raw" >/dev/null 2>&1; then
  rootfs="$work/rootfs"
  echo "make-base-image: debootstrap bookworm (minbase + python3, python3-venv, ca-certificates)"
  # shellcheck disable=SC2086
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" ${DEBIAN_MIRROR:-} >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | engine import - "$raw" >/dev/null
  rm -rf "$rootfs"
fi

# step 2 (seconds): trusted CAs, and the virtual environment first on PATH
mkdir -p "$work/ca"
EXTRA_CA_DIR=${EXTRA_CA_DIR-/usr/local/share/ca-certificates}
if [ -n "$EXTRA_CA_DIR" ] && [ -d "$EXTRA_CA_DIR" ]; then
  find "$EXTRA_CA_DIR" -maxdepth 1 -name '*.crt' -exec cp {} "$work/ca/" \;
fi
cat >"$work/Containerfile" <<DOCKERFILE
FROM $raw
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null \\
 && python3 -m venv /opt/python \\
 && /opt/python/bin/python -m pip --version >/dev/null
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    VIRTUAL_ENV=/opt/python \\
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    LANG=C.UTF-8
CMD ["python3"]
DOCKERFILE
engine build $ENGINE_BUILD_FLAGS --tag "$REF" --file "$work/Containerfile" "$work"
echo "make-base-image: $REF ($(engine run --rm $ENGINE_RUN_FLAGS "$REF" python --version))"
