"""XGBoost and LightGBM in the trainer: each family trains, exports ONNX inside the Pipeline and matches the
library's own predictions (an independent fit with xgboost / lightgbm directly, same split and seed) on
the held-out rows; string labels and in-graph one-hot encoding; strict params; the container's CPUs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import xgboost
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from onnxops.trainer import cpus
from onnxops.trainer.__main__ import main

SEED = 42
NATIVE = {
    "XGBClassifier": xgboost.XGBClassifier,
    "XGBRegressor": xgboost.XGBRegressor,
    "LGBMClassifier": lightgbm.LGBMClassifier,
    "LGBMRegressor": lightgbm.LGBMRegressor,
}


def run(tmp_path: Path, spec: dict[str, Any]) -> tuple[int, dict[str, Any], Path]:
    term = tmp_path / "term.json"
    rc = main(
        [
            "--spec-json",
            json.dumps(spec),
            "--run-id",
            "r1",
            "--output-uri",
            f"file://{tmp_path}/store",
            "--termination-log",
            str(term),
        ]
    )
    raw = term.read_text()
    assert len(raw.encode()) < 4096
    return rc, json.loads(raw), tmp_path / "store" / spec["model"] / "r1"


CASES = [
    ("iris", "XGBClassifier", {"n_estimators": 8, "max_depth": 3}),
    ("breast_cancer", "XGBClassifier", {"n_estimators": 8}),
    ("iris", "LGBMClassifier", {"n_estimators": 8, "num_leaves": 7}),
    ("breast_cancer", "LGBMClassifier", {"n_estimators": 8}),
    ("diabetes", "XGBRegressor", {"n_estimators": 15}),
    ("diabetes", "LGBMRegressor", {"n_estimators": 15}),
]


@pytest.mark.parametrize(("dataset", "class_name", "params"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_trains_exports_and_matches_the_native_model(
    tmp_path: Path, dataset: str, class_name: str, params: dict[str, Any]
) -> None:
    spec = {
        "model": "m",
        "dataset": {"uri": f"sklearn://{dataset}"},
        "estimator": {"className": class_name, "params": params},
        "evaluation": {"seed": SEED},
    }
    rc, term, bundle = run(tmp_path, spec)
    assert rc == 0, term
    frame = getattr(datasets, f"load_{dataset}")(as_frame=True).frame
    X = frame.drop(columns="target").to_numpy(dtype=np.float32)
    y = frame["target"].to_numpy()
    classification = "Classifier" in class_name
    tr, te = train_test_split(
        np.arange(len(y)), test_size=0.2, random_state=SEED, stratify=y if classification else None
    )
    tr, te = np.sort(tr), np.sort(te)
    native = NATIVE[class_name](
        **params, random_state=SEED, n_jobs=1, **({"verbose": -1} if "LGBM" in class_name else {})
    )
    native.fit(X[tr].astype(np.float64), y[tr])
    sess = ort.InferenceSession((bundle / "model.onnx").read_bytes(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": X[te]})
    X64 = X[te].astype(np.float64)
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["estimator"]["className"] == class_name
    assert meta["parity"]["labelMismatches"] == 0
    lib = "xgboost" if "XGB" in class_name else "lightgbm"
    assert lib in meta["libraries"] and "onnxmltools" in meta["libraries"]
    if classification:
        assert [o.name for o in sess.get_outputs()] == ["label", "probabilities"]
        np.testing.assert_array_equal(out[0], native.predict(X64))
        np.testing.assert_allclose(out[1], native.predict_proba(X64), rtol=0, atol=1e-4)
        assert term["metrics"]["accuracy"] == pytest.approx(float(np.mean(native.predict(X64) == y[te])))
    else:
        np.testing.assert_allclose(out[0].ravel(), native.predict(X64), rtol=1e-4, atol=1e-5)
        assert term["metrics"]["rmse"] == pytest.approx(
            float(np.sqrt(np.mean((native.predict(X64) - y[te]) ** 2))), rel=1e-5
        )


@pytest.mark.parametrize("class_name", ["XGBClassifier", "LGBMClassifier"])
def test_string_labels_and_one_hot_inside_the_graph(tmp_path: Path, class_name: str) -> None:
    """xgboost's own classifier refuses labels other than 0..k-1: the trainer's takes any, like the rest."""
    rng = np.random.default_rng(3)
    n = 300
    colour = rng.integers(0, 4, n)
    a = rng.normal(size=n)
    label = np.where(a + (colour == 2) * 1.5 + rng.normal(scale=0.3, size=n) > 0.5, "yes", "no")
    pd.DataFrame({"a": a, "colour": colour, "y": label}).to_csv(tmp_path / "d.csv", index=False)
    params = {"n_estimators": 6}
    spec = {
        "model": "m",
        "dataset": {"uri": f"file://{tmp_path}/d.csv", "target": "y", "categoricalFeatures": ["colour"]},
        "estimator": {"className": class_name, "params": params},
        "evaluation": {"seed": SEED},
    }
    rc, term, bundle = run(tmp_path, spec)
    assert rc == 0, term
    assert term["signature"]["classLabels"] == ["no", "yes"]
    X = np.column_stack([a, colour]).astype(np.float32)
    tr, te = train_test_split(np.arange(n), test_size=0.2, random_state=SEED, stratify=label)
    tr, te = np.sort(tr), np.sort(te)
    codes = (label == "yes").astype(int)  # the native classifier gets 0/1, mapped back below
    kw = {"verbose": -1} if class_name == "LGBMClassifier" else {}
    native = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False), [1])],
                    remainder="passthrough",
                    sparse_threshold=0.0,
                ),
            ),
            ("model", NATIVE[class_name](**params, random_state=SEED, n_jobs=1, **kw)),
        ]
    )
    native.fit(X[tr].astype(np.float64), codes[tr])
    sess = ort.InferenceSession((bundle / "model.onnx").read_bytes(), providers=["CPUExecutionProvider"])
    labels, proba = sess.run(None, {"input": X[te]})
    np.testing.assert_array_equal(labels, np.array(["no", "yes"])[native.predict(X[te].astype(np.float64))])
    np.testing.assert_allclose(proba, native.predict_proba(X[te].astype(np.float64)), atol=1e-4, rtol=0)


@pytest.mark.parametrize("class_name", ["XGBRegressor", "LGBMClassifier"])
def test_unknown_parameter_is_refused_with_its_name(tmp_path: Path, class_name: str) -> None:
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://diabetes" if "Regressor" in class_name else "sklearn://iris"},
        "estimator": {"className": class_name, "params": {"n_estimators": 3, "max_deepth": 3}},
    }
    rc, term, _ = run(tmp_path, spec)
    assert (rc, term["reason"]) == (2, "InvalidSpec")
    assert term["message"].startswith(f"estimator.params.max_deepth: unknown parameter for {class_name}")
    assert "max_depth" in term["message"]


def test_scaling_before_boosted_trees_is_refused(tmp_path: Path) -> None:
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "XGBClassifier", "scaling": "standard"},
    }
    rc, term, _ = run(tmp_path, spec)
    assert (rc, term["reason"]) == (2, "InvalidSpec")
    assert term["message"].startswith("estimator.scaling:")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_container_cpu_limit_from_cgroup_files(
    tmp_path: Path, files: dict[str, str], expected: float | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cpus.quota_cpus(tmp_path) == expected
    import os

    n = len(os.sched_getaffinity(0))
    want = n if expected is None else min(n, max(1, int(np.ceil(expected))))
    assert cpus.available_cpus(tmp_path) == want
