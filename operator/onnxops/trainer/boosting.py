"""XGBoost and LightGBM through their scikit-learn APIs, converted by onnxmltools inside skl2onnx.

skl2onnx converts the whole Pipeline (one-hot encoding, scaler, estimator) in one graph; it learns how to
convert the boosted trees from onnxmltools' converters, registered here with ``update_registered_converter``
(the way skl2onnx documents for third-party estimators). ``register_converters`` is idempotent and only
imports a library when the pipeline holds one of its estimators, so the other estimators never pay for it.

``XGBClassifier`` here is xgboost's, taught to take any class labels: xgboost's own refuses labels other
than 0..k-1 (e.g. 1..3 or strings), which every other allow-listed classifier takes. It fits on the codes
of ``np.unique`` and maps predictions back; ``classes_`` gives the original labels, which onnxmltools'
converter writes into the graph, so ONNX outputs the same labels as ``predict``.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import numpy as np

XGBOOST = ("XGBClassifier", "XGBRegressor")
LIGHTGBM = ("LGBMClassifier", "LGBMRegressor")
BOOSTING = XGBOOST + LIGHTGBM


def library_of(class_name: str) -> str | None:
    return "xgboost" if class_name in XGBOOST else "lightgbm" if class_name in LIGHTGBM else None


@functools.cache
def _xgb_classifier() -> type:
    import xgboost

    class XGBClassifier(xgboost.XGBClassifier):
        __doc__ = xgboost.XGBClassifier.__doc__

        def fit(self, X: Any, y: Any, **kwargs: Any) -> Any:
            labels, codes = np.unique(np.asarray(y), return_inverse=True)
            self.__dict__.pop("labels_", None)  # xgboost checks y against classes_ = 0..k-1 while fitting
            super().fit(X, codes, **kwargs)
            self.labels_ = labels
            return self

        @property
        def classes_(self) -> np.ndarray:
            labels = self.__dict__.get("labels_")
            return labels if labels is not None else np.arange(self.n_classes_)

        def predict(self, X: Any, **kwargs: Any) -> Any:
            return self.classes_[np.asarray(super().predict(X, **kwargs), dtype=np.int64)]

    XGBClassifier.__module__ = __name__
    XGBClassifier.__qualname__ = "XGBClassifier"
    return XGBClassifier


def estimator_class(class_name: str) -> type:
    if class_name == "XGBClassifier":
        return _xgb_classifier()
    lib = library_of(class_name)
    if lib is None:
        raise KeyError(class_name)
    cls: type = getattr(importlib.import_module(lib), class_name)
    return cls


def param_names(cls: type) -> list[str]:
    """Constructor parameters: both libraries take ``**kwargs`` (passed on to the booster unchecked), so the
    strict list is what ``get_params`` reports of a default instance (plus LightGBM's ``verbose``, which the
    trainer sets and LightGBM only takes through ``**kwargs``)."""
    names = set(cls().get_params(deep=False))
    if cls.__name__ in LIGHTGBM:
        names.add("verbose")
    return sorted(names)


def defaults(class_name: str, n_jobs: int) -> dict[str, Any]:
    """Parameters set unless the spec sets them: threads = the container's CPUs (both libraries default to
    every core of the node), and LightGBM quiet (it prints warnings to stdout otherwise)."""
    out: dict[str, Any] = {"n_jobs": n_jobs}
    if class_name in LIGHTGBM:
        out["verbose"] = -1
    return out


@functools.cache
def register_converters(library: str) -> None:
    """Teach skl2onnx the library's estimators (onnxmltools' converters with skl2onnx's
    shape calculators, whose input types are skl2onnx's own: onnxmltools' calculators refuse them)."""
    from skl2onnx import update_registered_converter

    if library == "xgboost":
        import xgboost
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )

        for cls in (xgboost.XGBClassifier, _xgb_classifier()):
            update_registered_converter(
                cls,
                f"OnnxopsXGBoost{cls.__name__}",
                calculate_linear_classifier_output_shapes,
                convert_xgboost,
                options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
            )
        update_registered_converter(
            xgboost.XGBRegressor,
            "OnnxopsXGBoostXGBRegressor",
            calculate_linear_regressor_output_shapes,
            convert_xgboost,
        )
    elif library == "lightgbm":
        import lightgbm
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )

        update_registered_converter(
            lightgbm.LGBMClassifier,
            "OnnxopsLightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
        )
        # split: sum the trees in chunks (float32 sums of many leaves drift from LightGBM's float64 sum)
        update_registered_converter(
            lightgbm.LGBMRegressor,
            "OnnxopsLightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert_lightgbm,
            options={"split": None},
        )
    else:
        raise ValueError(library)


def register_for(pipeline: Any) -> None:
    """Register the converters the pipeline's final estimator needs (nothing for scikit-learn's own)."""
    lib = library_of(type(pipeline[-1]).__name__)
    if lib is not None:
        register_converters(lib)


def versions() -> dict[str, str]:
    """Versions of the boosting libraries and onnxmltools that are installed (for metadata.json)."""
    out: dict[str, str] = {}
    for name in ("xgboost", "lightgbm", "onnxmltools"):
        try:
            from importlib import metadata

            out[name] = metadata.version(name if name != "xgboost" else _xgboost_dist())
        except Exception:
            continue
    return out


def _xgboost_dist() -> str:
    from importlib import metadata

    for dist in ("xgboost", "xgboost-cpu"):
        try:
            metadata.version(dist)
            return dist
        except metadata.PackageNotFoundError:
            continue
    return "xgboost"
