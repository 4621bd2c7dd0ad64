"""Build the drift baseline (onnxops.profile format) from the TRAINING split.

Features: numeric ones get the shared quantile edges / right-closed counts (onnxops.profile.numeric_feature);
categorical ones (integer codes) get their category counts, categories as decimal strings ("3").
Predictions: the served model's output on the training split — class counts over every class label
(as strings, zero counts included) or quantile bins of the predicted values for regression.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxops.profile import (
    CategoricalFeature,
    ClassPrediction,
    NumericPrediction,
    Profile,
    numeric_feature,
    sorted_edges_counts,
)


def code_label(v: float) -> str:
    """An integer code as the category string the profile uses: 3.0 -> "3"."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def categorical_codes(name: str, index: int, values: np.ndarray) -> CategoricalFeature:
    """Category counts of integer-coded values (vectorised; NaN counts as missing).
    Categories are sorted as strings, like onnxops.profile.categorical_feature."""
    x = np.asarray(values, dtype=np.float64)
    missing = np.isnan(x)
    codes, counts = np.unique(x[~missing], return_counts=True)
    labels = [code_label(c) for c in codes]
    order = sorted(range(len(labels)), key=lambda i: labels[i])
    return CategoricalFeature(
        name=name,
        index=index,
        categories=[labels[i] for i in order],
        counts=[int(counts[i]) for i in order],
        missing_share=float(missing.mean()) if x.size else 0.0,
    )


def prediction_profile(
    task: str, predictions: np.ndarray, class_labels: Sequence[str] | None
) -> ClassPrediction | NumericPrediction:
    if task == "classification":
        labels = [str(c) for c in (class_labels or [])]
        found, found_counts = np.unique(np.asarray(predictions).ravel(), return_counts=True)
        by_label: dict[str, int] = {}
        for v, n in zip(found.tolist(), found_counts.tolist(), strict=True):  # one str() per class
            key = v.decode() if isinstance(v, bytes) else str(v)
            by_label[key] = by_label.get(key, 0) + int(n)
        return ClassPrediction(classes=labels, counts=[int(by_label.get(c, 0)) for c in labels])
    edges, counts = sorted_edges_counts(np.asarray(predictions, dtype=np.float64).ravel())
    return NumericPrediction(edges=edges, counts=counts)


def build_profile(
    task: str,
    X_train: np.ndarray,
    feature_names: Sequence[str],
    categorical: Sequence[int],
    predictions: np.ndarray,
    class_labels: Sequence[str] | None,
    *,
    seed: int = 0,
) -> Profile:
    features: list[Any] = []
    cats = set(categorical)
    for j, name in enumerate(feature_names):
        col = X_train[:, j]
        if j in cats:
            features.append(categorical_codes(name, j, col))
        else:
            features.append(numeric_feature(name, j, col, seed=seed))
    return Profile.model_validate(
        {
            "task": task,
            "rows": int(X_train.shape[0]),
            "features": features,
            "prediction": prediction_profile(task, predictions, class_labels),
        }
    )
