#!/usr/bin/env bash
# Build the operator, serving and trainer images with docker or podman (`make images`).
#
# Environment:
#   ENGINE      docker | podman (default: the first one found)
#   IMAGE_REPO  repository prefix (default: ghcr.io/onnxops, the chart's default)
#   TAG         image tag (default: the project version from pyproject.toml, the chart's appVersion)
#   IMAGES      which images (default: "operator serving trainer")
#   PUSH        1 to push after building
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-}
if [ -z "$ENGINE" ]; then
  for candidate in docker podman; do
    if command -v "$candidate" >/dev/null 2>&1; then ENGINE=$candidate; break; fi
  done
fi
if [ -z "$ENGINE" ]; then
  echo "build-images: no container engine found; install docker or podman (or set ENGINE)" >&2
  exit 1
fi

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
IMAGE_REPO=${IMAGE_REPO:-ghcr.io/onnxops}
TAG=${TAG:-$VERSION}
IMAGES=${IMAGES:-operator serving trainer}
VCS_REF=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# RUN --mount in the Dockerfiles needs BuildKit with docker (podman/buildah support it natively).
export DOCKER_BUILDKIT=1

for image in $IMAGES; do
  ref="$IMAGE_REPO/onnxops-$image:$TAG"
  echo "build-images: $ENGINE build $ref"
  "$ENGINE" build \
    --file "images/$image.Dockerfile" \
    --tag "$ref" \
    --build-arg "ONNXOPS_VERSION=$VERSION" \
    --build-arg "VCS_REF=$VCS_REF" \
    --build-arg "CREATED=$CREATED" \
    .
  if [ "${PUSH:-0}" = "1" ]; then
    "$ENGINE" push "$ref"
  fi
done
