"""The trainer end to end on scikit-learn's bundled data sets, checked independently:
parity by onnxruntime against a scikit-learn refit from the same seed, metrics by scikit-learn,
profile edges/counts by numpy (np.quantile + explicit right-closed counting)."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from sklearn import datasets, metrics
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils import all_estimators

from onnxops.api.v1alpha1.modelversion import Signature
from onnxops.api.v1alpha1.trainingjob import CLASSIFIERS
from onnxops.trainer.__main__ import main


def run_trainer(
    tmp_path: Path,
    spec: dict[str, Any],
    run_id: str = "run-1",
    model: str | None = None,
    output: str | None = None,
) -> tuple[int, dict[str, Any], Path]:
    term = tmp_path / f"termination-{run_id}.json"
    out = output or f"file://{tmp_path}/store"
    argv = [
        "--spec-json",
        json.dumps(spec),
        "--run-id",
        run_id,
        "--output-uri",
        out,
        "--termination-log",
        str(term),
    ]
    if model:
        argv += ["--model", model]
    rc = main(argv)
    raw = term.read_text()
    assert len(raw.encode()) < 4096
    return rc, json.loads(raw), tmp_path / "store" / (model or spec["model"]) / run_id


SEED = 42
DECILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
SK = dict(all_estimators())

CASES = [
    ("iris", "LogisticRegression", {"max_iter": 500}, "standard"),
    ("iris", "RandomForestClassifier", {"n_estimators": 10}, "none"),
    ("iris", "HistGradientBoostingClassifier", {"max_iter": 10}, "none"),
    ("breast_cancer", "KNeighborsClassifier", {"n_neighbors": 5}, "standard"),
    ("iris", "SVC", {"probability": True}, "standard"),
    ("iris", "GaussianNB", {}, "none"),
    ("iris", "MLPClassifier", {"hidden_layer_sizes": [8], "max_iter": 300}, "standard"),
    ("wine", "DecisionTreeClassifier", {"max_depth": 4}, "none"),
    ("wine", "ExtraTreesClassifier", {"n_estimators": 10}, "none"),
    ("wine", "GradientBoostingClassifier", {"n_estimators": 10}, "none"),
    ("wine", "LinearSVC", {}, "standard"),
    ("wine", "RidgeClassifier", {}, "standard"),
    ("breast_cancer", "LogisticRegression", {"max_iter": 1000}, "standard"),
    ("breast_cancer", "SGDClassifier", {}, "standard"),
    ("breast_cancer", "SVC", {}, "standard"),
    ("breast_cancer", "HistGradientBoostingClassifier", {"max_iter": 10}, "none"),
    ("breast_cancer", "MultinomialNB", {}, "minmax"),
    ("breast_cancer", "BernoulliNB", {}, "standard"),
    ("digits", "RandomForestClassifier", {"n_estimators": 5}, "none"),
    ("diabetes", "LinearRegression", {}, "none"),
    ("diabetes", "Ridge", {"alpha": 0.5}, "standard"),
    ("diabetes", "Lasso", {"alpha": 0.1}, "none"),
    ("diabetes", "ElasticNet", {"alpha": 0.01}, "standard"),
    ("diabetes", "SGDRegressor", {}, "standard"),
    ("diabetes", "SVR", {"C": 10.0}, "standard"),
    ("diabetes", "LinearSVR", {"max_iter": 5000}, "standard"),
    ("diabetes", "DecisionTreeRegressor", {"max_depth": 5}, "none"),
    ("diabetes", "RandomForestRegressor", {"n_estimators": 10}, "none"),
    ("diabetes", "ExtraTreesRegressor", {"n_estimators": 10}, "none"),
    ("diabetes", "GradientBoostingRegressor", {"n_estimators": 20}, "none"),
    ("diabetes", "HistGradientBoostingRegressor", {"max_iter": 20}, "none"),
    ("diabetes", "KNeighborsRegressor", {}, "standard"),
    ("diabetes", "MLPRegressor", {"hidden_layer_sizes": [16], "max_iter": 200}, "standard"),
]


def _reference(dataset: str, class_name: str, params: dict[str, Any], scaling: str):
    """Data split and model refit from the spec's semantics, with scikit-learn only."""
    frame = getattr(datasets, f"load_{dataset}")(as_frame=True).frame
    names = [c for c in frame.columns if c != "target"]
    X = frame[names].to_numpy(dtype=np.float32)
    y = frame["target"].to_numpy()
    classification = class_name in CLASSIFIERS
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.2, random_state=SEED, stratify=y if classification else None)
    tr, te = np.sort(tr), np.sort(te)
    cls = SK[class_name]
    kw = dict(params)
    if "random_state" in cls().get_params():
        kw["random_state"] = SEED
    steps = {"standard": [StandardScaler()], "minmax": [MinMaxScaler()], "none": []}[scaling]
    pipe = make_pipeline(*steps, cls(**kw)).fit(X[tr], y[tr])
    return frame, names, X, y, tr, te, pipe


def _right_closed_counts(edges: list[float], x: np.ndarray) -> list[int]:
    bounds = [-np.inf, *edges, np.inf]
    return [int(np.sum((x > lo) & (x <= hi))) for lo, hi in itertools.pairwise(bounds)]


@pytest.mark.parametrize(
    ("dataset", "class_name", "params", "scaling"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_trains_exports_and_profiles(
    tmp_path: Path, dataset: str, class_name: str, params: dict[str, Any], scaling: str
) -> None:
    spec = {
        "model": "m",
        "dataset": {"uri": f"sklearn://{dataset}"},
        "estimator": {"className": class_name, "params": params, "scaling": scaling},
        "evaluation": {"seed": SEED, "testFraction": 0.2},
    }
    rc, term, bundle = run_trainer(tmp_path, spec)
    assert rc == 0, term
    assert term["ok"] is True
    frame, names, X, y, tr, te, pipe = _reference(dataset, class_name, params, scaling)
    X64 = X.astype(np.float64)  # the float32 values the ONNX model sees, as scikit-learn's float64
    classification = class_name in CLASSIFIERS

    # bundle: files, digests, signature
    model_bytes = (bundle / "model.onnx").read_bytes()
    assert term["artifact"] == {
        "uri": f"file://{bundle}/model.onnx",
        "sizeBytes": len(model_bytes),
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
    }
    meta = json.loads((bundle / "metadata.json").read_text())
    for name in ("model.onnx", "profile.json"):
        assert meta["files"][name]["sha256"] == hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    assert term["metadata"]["sha256"] == hashlib.sha256((bundle / "metadata.json").read_bytes()).hexdigest()
    assert (
        term["dataset"]["sha256"]
        == hashlib.sha256(frame.to_csv(index=False, lineterminator="\n").encode()).hexdigest()
    )
    sig = Signature.model_validate(term["signature"])
    assert sig.feature_names == names
    assert [(t.name, t.datatype, t.shape) for t in sig.inputs] == [("input", "FP32", [-1, len(names)])]

    # parity: the stored ONNX against an independent scikit-learn refit
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": X[te]}), strict=True))
    if classification:
        assert [o.name for o in sig.outputs] == ["label", "probabilities"]
        assert sig.class_labels == [str(c) for c in pipe.classes_]
        np.testing.assert_array_equal(out["label"], pipe.predict(X64[te]))
        if hasattr(pipe, "predict_proba"):
            np.testing.assert_allclose(out["probabilities"], pipe.predict_proba(X64[te]), rtol=0, atol=1e-4)
            proba = pipe.predict_proba(X64[te])
            auc = (
                metrics.roc_auc_score(y[te], proba[:, 1])
                if proba.shape[1] == 2
                else metrics.roc_auc_score(y[te], proba, multi_class="ovr")
            )
            assert term["metrics"]["roc_auc"] == pytest.approx(auc, rel=1e-7)
            assert term["metrics"]["log_loss"] == pytest.approx(
                metrics.log_loss(y[te], pipe.predict_proba(X64[te]), labels=pipe.classes_), rel=1e-7
            )
        else:
            assert set(term["metrics"]) == {"accuracy", "f1_macro"}
        labels_ref = pipe.predict(X64[te])
        assert term["metrics"]["accuracy"] == pytest.approx(metrics.accuracy_score(y[te], labels_ref))
        assert term["metrics"]["f1_macro"] == pytest.approx(
            metrics.f1_score(y[te], pipe.predict(X64[te]), average="macro")
        )
    else:
        assert [(o.name, o.shape) for o in sig.outputs] == [("variable", [-1, 1])]
        ref = pipe.predict(X64[te])
        np.testing.assert_allclose(out["variable"].ravel(), ref, rtol=1e-4, atol=1e-5)
        assert term["metrics"]["rmse"] == pytest.approx(np.sqrt(np.mean((ref - y[te]) ** 2)), rel=1e-6)
        assert term["metrics"]["r2"] == pytest.approx(metrics.r2_score(y[te], ref), rel=1e-6, abs=1e-9)

    # profile: training split, numpy's type-7 quantiles, explicit right-closed counts
    prof = json.loads((bundle / "profile.json").read_text())
    assert prof["rows"] == len(tr)
    for j, f in enumerate(prof["features"]):
        col = X[tr, j].astype(np.float64)
        edges = np.unique(np.quantile(col, DECILES)).tolist()
        assert f["name"] == names[j] and f["kind"] == "numeric"
        assert f["edges"] == edges
        assert f["counts"] == _right_closed_counts(edges, col)
    train_out = sess.run(None, {"input": X[tr]})[0]
    if classification:
        labels = [str(c) for c in pipe.classes_]
        assert prof["prediction"]["classes"] == labels
        assert prof["prediction"]["counts"] == [int(np.sum(train_out.astype(str) == c)) for c in labels]
    else:
        pred = train_out.ravel().astype(np.float64)
        edges = np.unique(np.quantile(pred, DECILES)).tolist()
        assert prof["prediction"]["edges"] == pytest.approx(edges, rel=1e-12)
        assert prof["prediction"]["counts"] == _right_closed_counts(prof["prediction"]["edges"], pred)
