"""onnxops: a Kubernetes operator that closes the MLOps loop."""

__version__ = "0.1.0"

GROUP = "onnxops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
