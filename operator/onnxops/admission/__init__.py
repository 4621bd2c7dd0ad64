"""Admission of onnxops custom resources, as the Kubernetes API server does it for CRDs.

``onnxops.validate`` is the public entry point; the pieces live here: ``causes`` (the error type),
``prune`` (structural pruning and defaulting), ``openapi`` (OpenAPI v3 schema validation) and
``celrules`` (``x-kubernetes-validations`` evaluated with the ``cel`` package).
"""
