"""Every bad input gets a clear error, the right exit code and a termination message (through main())."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from onnxops.trainer import export
from onnxops.trainer.__main__ import main


def run(tmp_path: Path, spec: dict[str, Any] | str, run_id: str = "run-1") -> tuple[int, dict[str, Any]]:
    term = tmp_path / f"term-{run_id}.txt"
    raw = spec if isinstance(spec, str) else json.dumps(spec)
    rc = main(
        [
            "--spec-json",
            raw,
            "--run-id",
            run_id,
            "--output-uri",
            f"file://{tmp_path}/store",
            "--termination-log",
            str(term),
        ]
    )
    text = term.read_text()
    assert len(text.encode()) < 4096
    return rc, json.loads(text)


def csv_spec(path: Path, **dataset: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "dataset": {"uri": f"file://{path}", **dataset},
        "estimator": {"className": "LogisticRegression"},
    }


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "colour": rng.choice(["red", "blue"], n),
            "y": rng.integers(0, 2, n),
        }
    )
    p = tmp_path / "data.csv"
    df.to_csv(p, index=False)
    return p


def test_missing_target_column(tmp_path: Path, table: Path) -> None:
    rc, term = run(tmp_path, csv_spec(table, target="label", features=["a", "b"]))
    assert rc == 2
    assert term["ok"] is False and term["reason"] == "InvalidData"
    assert "target column 'label' not found" in term["message"]
    assert "columns: a, b, colour, y" in term["message"]


def test_non_numeric_feature_without_encoding(tmp_path: Path, table: Path) -> None:
    rc, term = run(tmp_path, csv_spec(table, target="y"))
    assert (rc, term["reason"]) == (2, "InvalidData")
    assert term["message"].startswith("feature 'colour' is not numeric")
    assert "list it in dataset.categoricalFeatures" in term["message"]


def test_string_categorical_is_refused_with_the_reason(tmp_path: Path, table: Path) -> None:
    rc, term = run(tmp_path, csv_spec(table, target="y", categoricalFeatures=["colour"]))
    assert (rc, term["reason"]) == (2, "InvalidData")
    assert "feature 'colour' is not numeric" in term["message"] and "integer codes" in term["message"]


def test_unknown_estimator_is_an_invalid_spec(tmp_path: Path) -> None:
    spec = {"model": "m", "dataset": {"uri": "sklearn://iris"}, "estimator": {"className": "CatBoostModel"}}
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (2, "InvalidSpec")
    assert "spec.estimator.className" in term["message"] and "LogisticRegression" in term["message"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"max_iterations": 10}, "estimator.params.max_iterations: unknown parameter for LogisticRegression"),
        ({"max_iter": "many"}, "estimator.params.max_iter: The 'max_iter' parameter of LogisticRegression"),
        ({"C": -1.0}, "estimator.params.C:"),
    ],
)
def test_bad_estimator_params_name_the_param(tmp_path: Path, params: dict[str, Any], fragment: str) -> None:
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "LogisticRegression", "params": params},
    }
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (2, "InvalidSpec")
    assert fragment in term["message"]


def test_scaling_before_trees_is_refused(tmp_path: Path) -> None:
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "RandomForestClassifier", "scaling": "standard"},
    }
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (2, "InvalidSpec")
    assert "estimator.scaling" in term["message"]


def test_gate_not_met_reports_metric_and_gate(tmp_path: Path) -> None:
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "LogisticRegression", "params": {"max_iter": 300}},
        "evaluation": {"seed": 42, "gates": ["accuracy >= 0.9999", "f1_macro>0.1"]},
    }
    rc, term = run(tmp_path, spec)
    # independent reference: the same seeded, stratified split and fit with scikit-learn
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=42, stratify=y)
    tr, te = np.sort(tr), np.sort(te)
    acc = float(
        np.mean(
            LogisticRegression(max_iter=300, random_state=42)
            .fit(X[tr], y[tr])
            .predict(X[te].astype(np.float64))
            == y[te]
        )
    )
    assert acc < 0.9999
    assert rc == 3
    assert term == {
        "ok": False,
        "reason": "GateNotMet",
        "message": f"gate 'accuracy >= 0.9999' not met: accuracy={acc:.4f}",
        "metrics": term["metrics"],
    }
    assert term["metrics"]["accuracy"] == pytest.approx(acc)
    assert not (tmp_path / "store").exists()  # a failed training stores nothing


def test_gate_on_a_metric_the_model_cannot_compute(tmp_path: Path) -> None:
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://diabetes"},
        "estimator": {"className": "Ridge"},
        "evaluation": {"gates": ["accuracy >= 0.5"]},
    }
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (2, "InvalidSpec")
    assert "accuracy, which is not a regression metric" in term["message"]
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "LinearSVC"},
        "evaluation": {"gates": ["roc_auc >= 0.5"]},
    }
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (2, "InvalidSpec")
    assert "needs predict_proba" in term["message"]


def test_missing_file_is_a_final_data_error(tmp_path: Path) -> None:
    rc, term = run(tmp_path, csv_spec(tmp_path / "nope.csv", target="y"))
    assert (rc, term["reason"]) == (6, "DataError")  # 6: not found, no retry can fix it
    assert f"file://{tmp_path}/nope.csv" in term["message"] and "no such file" in term["message"]


def test_connection_refused_is_a_transient_data_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = {
        "model": "m",
        "dataset": {"uri": f"https://127.0.0.1:{port}/d.csv", "target": "y"},
        "estimator": {"className": "LogisticRegression"},
    }
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (5, "DataError")
    assert f"https://127.0.0.1:{port}/d.csv: cannot connect" in term["message"]


def test_sha256_mismatch(tmp_path: Path, table: Path) -> None:
    good = hashlib.sha256(table.read_bytes()).hexdigest()
    rc, term = run(tmp_path, csv_spec(table, target="y", features=["a", "b"], sha256="0" * 64))
    assert (rc, term["reason"]) == (6, "DataError")
    assert f"sha256 mismatch for file://{table}: expected {'0' * 64}, got {good}" in term["message"]
    rc, term = run(tmp_path, csv_spec(table, target="y", features=["a", "b"], sha256=good), run_id="ok")
    assert rc == 0 and term["dataset"] == {"uri": f"file://{table}", "sha256": good}


def test_sklearn_sha256_pin_is_the_canonical_csv(tmp_path: Path) -> None:
    frame = load_iris(as_frame=True).frame
    pin = hashlib.sha256(frame.to_csv(index=False, lineterminator="\n").encode()).hexdigest()
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://iris", "sha256": pin},
        "estimator": {"className": "GaussianNB"},
    }
    assert run(tmp_path, spec)[0] == 0
    spec["dataset"]["sha256"] = "1" * 64  # type: ignore[index]
    rc, term = run(tmp_path, spec, run_id="r2")
    assert (rc, term["reason"]) == (6, "DataError")
    assert "sha256 mismatch for sklearn://iris" in term["message"]


def test_existing_bundle_is_never_overwritten(tmp_path: Path) -> None:
    spec = {"model": "m", "dataset": {"uri": "sklearn://iris"}, "estimator": {"className": "GaussianNB"}}
    assert run(tmp_path, spec)[0] == 0
    before = (tmp_path / "store" / "m" / "run-1" / "model.onnx").read_bytes()
    spec["estimator"] = {"className": "DecisionTreeClassifier"}
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (6, "AlreadyExists")
    assert "run-1 already exists" in term["message"]
    assert (tmp_path / "store" / "m" / "run-1" / "model.onnx").read_bytes() == before


def test_parity_failure_fails_the_training(tmp_path: Path) -> None:
    """KNN on iris: duplicate rows make equidistant neighbours, and ONNX Runtime breaks the ties
    differently from scikit-learn, so the probabilities differ; the trainer must refuse the model."""
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "KNeighborsClassifier"},
    }
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (4, "ParityFailed")
    assert "ONNX parity failed on the held-out set" in term["message"]
    assert not (tmp_path / "store").exists()


def test_parity_failure_on_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_run = export.run

    def flipped(sess: Any, X: np.ndarray, batch: int = 1 << 17) -> list[np.ndarray]:
        out = real_run(sess, X, batch)
        out[0] = out[0].copy()
        out[0][3] = (out[0][3] + 1) % 3
        return out

    monkeypatch.setattr(export, "run", flipped)
    spec = {"model": "m", "dataset": {"uri": "sklearn://iris"}, "estimator": {"className": "GaussianNB"}}
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (4, "ParityFailed")
    assert "1 of 30 labels differ (row 3:" in term["message"]


def test_invalid_json_and_schema_errors(tmp_path: Path) -> None:
    rc, term = run(tmp_path, "{not json")
    assert (rc, term["reason"]) == (2, "InvalidSpec") and "cannot read the spec" in term["message"]
    rc, term = run(
        tmp_path, {"model": "m", "dataset": {"uri": "ftp://x/y"}, "estimator": {"className": "GaussianNB"}}
    )
    assert (rc, term["reason"]) == (2, "InvalidSpec") and "spec.dataset.uri" in term["message"]
    rc, term = run(
        tmp_path,
        {
            "model": "m",
            "dataset": {"uri": "sklearn://iris"},
            "estimator": {"className": "GaussianNB"},
            "evaluation": {"gates": ["acc > 1"]},
        },
    )
    assert (rc, term["reason"]) == (2, "InvalidSpec") and "spec.evaluation.gates.0" in term["message"]


def test_regressor_needs_numeric_target(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    pd.DataFrame({"a": range(20), "y": ["x", "y"] * 10}).to_csv(p, index=False)
    rc, term = run(
        tmp_path,
        {"model": "m", "dataset": {"uri": f"file://{p}", "target": "y"}, "estimator": {"className": "Ridge"}},
    )
    assert (rc, term["reason"]) == (2, "InvalidData")
    assert "target column 'y' is not numeric" in term["message"]


def test_fit_failure_is_reported(tmp_path: Path) -> None:
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://breast_cancer"},
        "estimator": {"className": "MultinomialNB", "scaling": "standard"},
    }
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (2, "TrainingFailed")
    assert term["message"].startswith("MultinomialNB fit failed: ValueError: Negative values")
