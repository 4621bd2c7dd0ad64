#!/usr/bin/env bash
# Build the operator, serving and trainer images with docker or podman (`make images`).
#
# Environment:
#   ENGINE        docker | podman (default: the first one found); ENGINE_FLAGS etc.: see scripts/engine.sh
#   IMAGE_REPO    repository prefix (default: ghcr.io/onnxops, the chart's default)
#   TAG           image tag (default: the project version from pyproject.toml, the chart's appVersion)
#   IMAGES        which images (default: "operator serving trainer")
#   PYTHON_IMAGE  the base image (default: python:3.11-slim when it is present or can be pulled, otherwise
#                 a local Debian bookworm base made by scripts/make-base-image.sh)
#   PUSH          1 to push after building
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/engine.sh
. scripts/engine.sh

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
IMAGE_REPO=${IMAGE_REPO:-ghcr.io/onnxops}
TAG=${TAG:-$VERSION}
IMAGES=${IMAGES:-operator serving trainer}
VCS_REF=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
DEFAULT_BASE=python:3.11-slim
LOCAL_BASE=${BASE_IMAGE_REF:-localhost/onnxops-python:3.11-bookworm}

if [ -z "${PYTHON_IMAGE:-}" ]; then
  if engine image inspect "$DEFAULT_BASE" >/dev/null 2>&1 || engine pull "$DEFAULT_BASE" >/dev/null 2>&1
  then
    PYTHON_IMAGE=$DEFAULT_BASE
  else
    echo "build-images: $DEFAULT_BASE cannot be pulled; using the local base $LOCAL_BASE" >&2
    ./scripts/make-base-image.sh "$LOCAL_BASE"
    PYTHON_IMAGE=$LOCAL_BASE
  fi
fi

# RUN --mount in the Dockerfiles needs BuildKit with docker (podman/buildah support it natively).
export DOCKER_BUILDKIT=1

for image in $IMAGES; do
  ref="$IMAGE_REPO/onnxops-$image:$TAG"
  echo "build-images: $ENGINE build $ref (base $PYTHON_IMAGE)"
  # shellcheck disable=SC2086
  engine build $ENGINE_BUILD_FLAGS \
    --file "images/$image.Dockerfile" \
    --tag "$ref" \
    --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
    --build-arg "ONNXOPS_VERSION=$VERSION" \
    --build-arg "VCS_REF=$VCS_REF" \
    --build-arg "CREATED=$CREATED" \
    .
  if [ "${PUSH:-0}" = "1" ]; then
    engine push "$ref"
  fi
done
