"""Prometheus metric names and labels shared by the model server and the drift monitor.

This module is the ONE definition of the metrics contract: the server (``onnxops.serving``) MUST expose its
drift and SLO metrics under exactly these names and labels (import them from here, do not re-type the
strings), and the operator's drift sources (``onnxops.drift.sources``) query exactly these names through the
Prometheus HTTP API or a direct scrape of ``/metrics``.

Every series carries the labels ``model`` (the InferenceService's model name) and ``version`` (the served
ModelVersion's version), so that every served version's live traffic is compared with *its own* baseline.

Metric families (names as passed to ``prometheus_client``; the exposition adds ``_bucket``/``_sum``/
``_count`` to histograms and ``_total`` to counters exactly as written below):

================================  =========  =============================================  ================
name                              type       labels                                         notes
================================  =========  =============================================  ================
onnxops_feature_value             histogram  model, version, feature                        buckets = the
                                                                                            profile's edges
onnxops_feature_category_total    counter    model, version, feature, category              categorical
onnxops_feature_missing_total     counter    model, version, feature                        NaN / null
onnxops_prediction_class_total    counter    model, version, class                          classification
onnxops_prediction_value          histogram  model, version                                 regression;
                                                                                            buckets = edges
onnxops_requests_total            counter    model, version, protocol, code                 HTTP status code
onnxops_request_duration_seconds  histogram  model, version, protocol                       latency
onnxops_rows_total                counter    model, version                                 rows predicted
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
  ``PROTOCOLS`` and ``code`` the numeric HTTP status as a string ("200", "422", "503", ...).
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

# --- metric family names (as given to prometheus_client) -------------------------------------------------
FEATURE_VALUE: Final = "onnxops_feature_value"  # histogram {model, version, feature}
FEATURE_CATEGORY: Final = "onnxops_feature_category_total"  # counter {model, version, feature, category}
FEATURE_MISSING: Final = "onnxops_feature_missing_total"  # counter {model, version, feature}
PREDICTION_CLASS: Final = "onnxops_prediction_class_total"  # counter {model, version, class}
PREDICTION_VALUE: Final = "onnxops_prediction_value"  # histogram {model, version}
REQUESTS: Final = "onnxops_requests_total"  # counter {model, version, protocol, code}
REQUEST_DURATION: Final = "onnxops_request_duration_seconds"  # histogram {model, version, protocol}
ROWS: Final = "onnxops_rows_total"  # counter {model, version}

# Label sets per family, in the order the server should declare them.
FEATURE_VALUE_LABELS: Final = (LABEL_MODEL, LABEL_VERSION, LABEL_FEATURE)
FEATURE_CATEGORY_LABELS: Final = (LABEL_MODEL, LABEL_VERSION, LABEL_FEATURE, LABEL_CATEGORY)
FEATURE_MISSING_LABELS: Final = (LABEL_MODEL, LABEL_VERSION, LABEL_FEATURE)
PREDICTION_CLASS_LABELS: Final = (LABEL_MODEL, LABEL_VERSION, LABEL_CLASS)
PREDICTION_VALUE_LABELS: Final = (LABEL_MODEL, LABEL_VERSION)
REQUESTS_LABELS: Final = (LABEL_MODEL, LABEL_VERSION, LABEL_PROTOCOL, LABEL_CODE)
REQUEST_DURATION_LABELS: Final = (LABEL_MODEL, LABEL_VERSION, LABEL_PROTOCOL)
ROWS_LABELS: Final = (LABEL_MODEL, LABEL_VERSION)

# Values of the `protocol` label.
PROTOCOL_V2: Final = "v2"  # Open Inference Protocol /v2/models/<name>/infer
PROTOCOL_V1: Final = "v1"  # KServe v1 /v1/models/<name>:predict
PROTOCOLS: Final = (PROTOCOL_V2, PROTOCOL_V1)

# Unseen categories beyond this many distinct values per feature are folded into OTHER_CATEGORY.
MAX_UNSEEN_CATEGORIES: Final = 50
OTHER_CATEGORY: Final = "__other__"

# The pseudo-feature under which the drift policy scores the prediction distribution.
PREDICTION_FEATURE: Final = "__prediction__"

# Suggested latency buckets (seconds) for REQUEST_DURATION.
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


def exposition_name(family: str, suffix: str = "") -> str:
    """The sample name in the text exposition / PromQL: ``family`` + ``_bucket``/``_sum``/``_count``.

    Counters are already named with ``_total`` here, which is also their sample name.
    """
    return family + suffix
