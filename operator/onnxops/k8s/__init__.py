"""The one Kubernetes REST client (client.py) and the resource-oriented helpers beside it (resources.py).

Shared by the operator (``kube/`` re-exports and builds its I/O on it) and the local runtime's controllers
(``local/runner/``). It imports nothing else of onnxops but the API group constant.
"""
