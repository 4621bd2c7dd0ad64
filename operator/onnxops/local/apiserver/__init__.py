"""The local Kubernetes API emulator: an in-memory API server that kubectl, kopf and the official
`kubernetes` client talk to over HTTP (see `ApiServer`, `ApiServerThread`, `write_kubeconfig`)."""

from .errors import ApiError
from .objects import Cluster, LogProvider
from .server import ApiServer, ApiServerThread, kubeconfig, write_kubeconfig

__all__ = ["ApiError", "ApiServer", "ApiServerThread", "Cluster", "LogProvider", "kubeconfig",
           "write_kubeconfig"]
