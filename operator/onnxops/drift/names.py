"""Prometheus metric names and labels shared by the model server and the drift monitor.

This module is the ONE definition of the metrics contract: the server (``onnxops.serving``) MUST expose its
drift and SLO metrics under exactly these names and labels (import them from here, do not re-type the
strings), and the operator's drift sources (``onnxops.drift.sources``) query exactly these names through the
Prometheus HTTP API or a direct scrape of ``/metrics``.

Every series carries the labels ``model`` (the InferenceService's model name), ``version`` (the served
ModelVersion's version) and ``inferenceservice`` (the name of the InferenceService the pod serves, from
its env ``ONNXOPS_INFERENCE_SERVICE``; empty outside an InferenceService), so that every served version's
live traffic is compared with *its own* baseline. Prometheus' Kubernetes discovery adds ``namespace``.
Every query of the operator is scoped to one namespace AND one InferenceService: two teams serving a
model of the same name (two namespaces, or two InferenceServices in one namespace) never mix.

Metric families (names as passed to ``prometheus_client``; the exposition adds ``_bucket``/``_sum``/
``_count`` to histograms and ``_total`` to counters exactly as written below). Every family starts with
``SCOPE_LABELS`` = ``model, version, inferenceservice`` (abbreviated "scope" here):

================================  =========  =============================================  ================
name                              type       labels                                         notes
================================  =========  =============================================  ================
onnxops_feature_value             histogram  scope, feature                                 buckets = the
                                                                                            profile's edges
onnxops_feature_category_total    counter    scope, feature, category                       categorical
onnxops_feature_missing_total     counter    scope, feature                                 NaN / null
onnxops_prediction_class_total    counter    scope, class                                   classification
onnxops_prediction_value          histogram  scope                                          regression;
                                                                                            buckets = edges
onnxops_requests_total            counter    scope, protocol, code                          HTTP status code
onnxops_request_duration_seconds  histogram  scope, protocol                                latency
onnxops_rows_total                counter    scope                                          rows predicted
================================  =========  =============================================  ================

Rules the server must follow so that the live counts line up with the profile's bins:

- ``onnxops_feature_value`` for a numeric feature uses the profile's interior ``edges`` as its bucket
  upper bounds (``le``), plus ``+Inf``. Prometheus buckets are right-closed (``x <= le``) exactly like the
  profile's bins, so cumulative bucket ``le=edges[i]`` = ``sum(counts[0..i])``. A missing value (NaN/null)
  is not observed in the histogram; it increments ``onnxops_feature_missing_total`` instead.
- A categorical feature increments ``onnxops_feature_category_total{category=<str(value)>}``; a category
  unseen in training is still counted under its own label value (the drift statistics give it its own bin).
  The server should cap the number of distinct unseen categories per feature (suggested:
  ``MAX_UNSEEN_CATEGORIES``) and fold the rest into ``OTHER_CATEGORY``.
- Classification predictions increment ``onnxops_prediction_class_total{class=<str(label)>}``; regression
  predictions are observed in ``onnxops_prediction_value`` with the profile's prediction ``edges``.
- ``onnxops_requests_total`` counts every HTTP request to an inference endpoint with ``protocol`` in
  ``PROTOCOLS`` and ``code`` the numeric HTTP status as a string ("200", "422", "503", ...); a gRPC
  ``ModelInfer`` call counts as ``protocol="grpc"`` with the HTTP status its gRPC status corresponds to
  (OK 200, INVALID_ARGUMENT 400, NOT_FOUND 404, UNAVAILABLE 503, others 500).
- Pre-create (``.labels(...)``) every feature's series at start-up so that a zero is visible before the
  first request (``increase()`` needs two samples).

The prediction is treated as a feature named ``PREDICTION_FEATURE`` by the drift policy.
"""

from __future__ import annotations

from typing import Final

# --- label names -------------------------------------------------------------------------------------
LABEL_MODEL: Final = "model"
LABEL_VERSION: Final = "version"
LABEL_FEATURE: Final = "feature"
LABEL_CATEGORY: Final = "category"
LABEL_CLASS: Final = "class"
LABEL_PROTOCOL: Final = "protocol"
LABEL_CODE: Final = "code"
LABEL_LE: Final = "le"  # a histogram bucket's upper bound
LABEL_SERVICE: Final = "inferenceservice"  # the InferenceService's name (the server's SERVICE_ENV)
LABEL_NAMESPACE: Final = "namespace"  # added by Prometheus' Kubernetes discovery, never by the server
SERVICE_ENV: Final = "ONNXOPS_INFERENCE_SERVICE"  # the serving pod's env var naming its InferenceService

# Every family starts with these labels (in this order): the series of one served version of one service.
SCOPE_LABELS: Final = (LABEL_MODEL, LABEL_VERSION, LABEL_SERVICE)

# --- metric family names (as given to prometheus_client) -------------------------------------------------
FEATURE_VALUE: Final = "onnxops_feature_value"  # histogram {scope, feature}
FEATURE_CATEGORY: Final = "onnxops_feature_category_total"  # counter {scope, feature, category}
FEATURE_MISSING: Final = "onnxops_feature_missing_total"  # counter {scope, feature}
PREDICTION_CLASS: Final = "onnxops_prediction_class_total"  # counter {scope, class}
PREDICTION_VALUE: Final = "onnxops_prediction_value"  # histogram {scope}
REQUESTS: Final = "onnxops_requests_total"  # counter {scope, protocol, code}
REQUEST_DURATION: Final = "onnxops_request_duration_seconds"  # histogram {scope, protocol}
ROWS: Final = "onnxops_rows_total"  # counter {scope}

# Payload capture (InferenceService spec.logging; docs/metrics.md "Payload capture"), labels model, version
# (and reason for the drops). The operator reads the written rows, write errors and sink gauge of each
# serving pod for the InferenceService's CaptureHealthy condition.
PAYLOAD_ROWS_CAPTURED: Final = "onnxops_payload_rows_captured_total"  # counter
PAYLOAD_ROWS_WRITTEN: Final = "onnxops_payload_rows_written_total"  # counter
PAYLOAD_BYTES_WRITTEN: Final = "onnxops_payload_bytes_written_total"  # counter
PAYLOAD_FILES_WRITTEN: Final = "onnxops_payload_files_written_total"  # counter
PAYLOAD_ROWS_DROPPED: Final = "onnxops_payload_rows_dropped_total"  # counter {reason}
PAYLOAD_WRITE_ERRORS: Final = "onnxops_payload_write_errors_total"  # counter
PAYLOAD_QUEUE_ROWS: Final = "onnxops_payload_queue_rows"  # gauge
PAYLOAD_SINK_UP: Final = "onnxops_payload_sink_up"  # gauge: 0 after a failed write, 1 after a good one

# Label sets per family, in the order the server should declare them.
FEATURE_VALUE_LABELS: Final = (*SCOPE_LABELS, LABEL_FEATURE)
FEATURE_CATEGORY_LABELS: Final = (*SCOPE_LABELS, LABEL_FEATURE, LABEL_CATEGORY)
FEATURE_MISSING_LABELS: Final = (*SCOPE_LABELS, LABEL_FEATURE)
PREDICTION_CLASS_LABELS: Final = (*SCOPE_LABELS, LABEL_CLASS)
PREDICTION_VALUE_LABELS: Final = SCOPE_LABELS
REQUESTS_LABELS: Final = (*SCOPE_LABELS, LABEL_PROTOCOL, LABEL_CODE)
REQUEST_DURATION_LABELS: Final = (*SCOPE_LABELS, LABEL_PROTOCOL)
ROWS_LABELS: Final = SCOPE_LABELS

# Values of the `protocol` label.
PROTOCOL_V2: Final = "v2"  # Open Inference Protocol /v2/models/<name>/infer
PROTOCOL_V1: Final = "v1"  # KServe v1 /v1/models/<name>:predict
PROTOCOL_GRPC: Final = "grpc"  # inference.GRPCInferenceService/ModelInfer; code = the matching HTTP status
PROTOCOLS: Final = (PROTOCOL_V2, PROTOCOL_V1, PROTOCOL_GRPC)

# Unseen categories beyond this many distinct values per feature are folded into OTHER_CATEGORY.
MAX_UNSEEN_CATEGORIES: Final = 50
OTHER_CATEGORY: Final = "__other__"

# The pseudo-feature under which the drift policy scores the prediction distribution.
PREDICTION_FEATURE: Final = "__prediction__"

# Suggested latency buckets (seconds) for REQUEST_DURATION.
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
