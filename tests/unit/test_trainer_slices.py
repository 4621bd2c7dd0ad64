"""spec.evaluation.slices and .fairness: per-slice held-out metrics equal a pandas groupby over
scikit-learn's metrics (predictions from an independent scikit-learn fit on the same split); fairness values
equal fairlearn's on the same rows; slice and fairness gates pass and fail (exit 3, nothing registered);
bad input is refused at admission or fails naming the field."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn import metrics as fm
from sklearn import datasets, metrics
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split

from onnxops.api.v1alpha1 import ModelVersion
from onnxops.api.v1alpha1.termination import TrainerSuccess
from onnxops.crdgen import build_crds
from onnxops.reconcile.trainingjob import model_version_body
from onnxops.settings import Settings
from onnxops.trainer.__main__ import main
from onnxops.validate import validate_manifest

SEED = 42
CRDS = build_crds()


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


@pytest.fixture
def people(tmp_path: Path) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 600
    group = rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2])
    age = rng.uniform(18, 80, n)
    x1 = rng.normal(size=n)
    y = ((x1 + (group == "A") * 0.8 + rng.normal(scale=0.7, size=n)) > 0.3).astype(int)
    frame = pd.DataFrame({"x1": x1, "age": age, "group": group, "y": y})
    frame.to_csv(tmp_path / "people.csv", index=False)
    return frame


def people_spec(tmp_path: Path, evaluation: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": "m",
        "dataset": {"uri": f"file://{tmp_path}/people.csv", "target": "y", "features": ["x1", "age"]},
        "estimator": {"className": "LogisticRegression"},
        "evaluation": {"seed": SEED, **evaluation},
    }


def held_out(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The held-out rows and scikit-learn's own predictions for them (an independent fit)."""
    X = frame[["x1", "age"]].to_numpy(dtype=np.float32).astype(np.float64)
    y = frame["y"].to_numpy()
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=SEED, stratify=y)
    tr, te = np.sort(tr), np.sort(te)
    model = LogisticRegression(random_state=SEED).fit(X[tr], y[tr])
    return frame.iloc[te].reset_index(drop=True), model.predict(X[te])


def test_slice_metrics_and_fairness_match_pandas_sklearn_and_fairlearn(
    tmp_path: Path, people: pd.DataFrame
) -> None:
    ev = {
        "slices": {
            "features": [{"feature": "group"}, {"feature": "age", "bins": [50, 30]}],
            "metrics": ["accuracy", "f1_macro"],
            "minRows": 5,
            "gates": ["accuracy >= 0.5", "accuracy_gap <= 0.5"],
        },
        "fairness": {
            "sensitiveFeature": "group",
            "gates": ["demographic_parity_difference <= 0.9", "equalized_odds_difference < 1"],
        },
    }
    spec = people_spec(tmp_path, ev)
    rc, term, bundle = run(tmp_path, spec)
    assert rc == 0, term
    test, pred = held_out(people)
    test = test.assign(
        pred=pred,
        age_bin=pd.cut(
            test["age"], [-np.inf, 30, 50, np.inf], right=False, labels=["< 30", "[30, 50)", ">= 50"]
        ),
    )
    expected = []
    for col, key in (("group", "group"), ("age_bin", "age")):
        for g, part in test.groupby(col, observed=True):
            expected.append(
                {
                    "feature": key,
                    "group": str(g),
                    "rows": len(part),
                    "metrics": {
                        "accuracy": metrics.accuracy_score(part["y"], part["pred"]),
                        "f1_macro": metrics.f1_score(part["y"], part["pred"], average="macro"),
                    },
                }
            )
    got = json.loads((bundle / "metadata.json").read_text())["slices"]["results"]
    assert [(r["feature"], r["group"], r["rows"]) for r in got] == [
        (r["feature"], r["group"], r["rows"]) for r in expected
    ]
    for g, e in zip(got, expected, strict=True):
        assert g["metrics"] == pytest.approx(e["metrics"], rel=1e-12)
    # the ModelVersion carries them (6 significant digits), worst first per column, and validates
    on_mv = {(r["feature"], r["group"]): r for r in term["slices"]}
    for e in expected:
        assert on_mv[(e["feature"], e["group"])]["metrics"]["accuracy"] == pytest.approx(
            e["metrics"]["accuracy"], rel=1e-5
        )
    group_rows = [r for r in term["slices"] if r["feature"] == "group"]
    assert [r["metrics"]["accuracy"] for r in group_rows] == sorted(
        r["metrics"]["accuracy"] for r in group_rows
    )
    # fairness: fairlearn on the same rows
    s = test["group"].to_numpy()
    fair = term["fairness"]
    assert fair["positiveLabel"] == "1" and fair["sensitiveFeature"] == "group"
    for name, fn in (
        ("demographic_parity_difference", fm.demographic_parity_difference),
        ("demographic_parity_ratio", fm.demographic_parity_ratio),
        ("equalized_odds_difference", fm.equalized_odds_difference),
        ("equalized_odds_ratio", fm.equalized_odds_ratio),
    ):
        assert fair["metrics"][name] == pytest.approx(fn(test["y"], pred, sensitive_features=s), rel=1e-12)
    assert fair["selectionRates"] == pytest.approx(test.groupby("group")["pred"].mean().to_dict())
    tj = {"metadata": {"name": "t", "namespace": "ns", "uid": "u"}, "spec": spec}
    mv = model_version_body(tj, TrainerSuccess.model_validate(term), Settings())
    assert mv["spec"]["slices"] == term["slices"] and mv["spec"]["fairness"] == fair
    manifest = {**mv, "metadata": {"name": "m-v1", **mv["metadata"]}, "spec": {**mv["spec"], "version": 1}}
    assert validate_manifest(CRDS, manifest) == []
    ModelVersion.model_validate(manifest)


def test_regression_slices_match_pandas_groupby(tmp_path: Path) -> None:
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://diabetes"},
        "estimator": {"className": "Ridge"},
        "evaluation": {
            "seed": SEED,
            "slices": {
                "features": [{"feature": "sex"}, {"feature": "bmi", "bins": [0]}],
                "metrics": ["rmse", "r2"],
            },
        },
    }
    rc, term, bundle = run(tmp_path, spec)
    assert rc == 0, term
    frame = datasets.load_diabetes(as_frame=True).frame
    X = frame.drop(columns="target").to_numpy(dtype=np.float32).astype(np.float64)
    y = frame["target"].to_numpy()
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=SEED)
    tr, te = np.sort(tr), np.sort(te)
    test = frame.iloc[te].assign(pred=Ridge().fit(X[tr], y[tr]).predict(X[te]))
    got = {
        (r["feature"], r["group"]): r
        for r in json.loads((bundle / "metadata.json").read_text())["slices"]["results"]
    }
    sexes = sorted(test["sex"].unique())
    for value, part in test.groupby("sex"):
        r = got[("sex", f"{value:g}")]
        assert r["rows"] == len(part)
        assert r["metrics"]["rmse"] == pytest.approx(
            math.sqrt(metrics.mean_squared_error(part["target"], part["pred"])), rel=1e-6
        )
        assert r["metrics"]["r2"] == pytest.approx(metrics.r2_score(part["target"], part["pred"]), rel=1e-6)
    assert len([k for k in got if k[0] == "sex"]) == len(sexes)
    low = test[test["bmi"] < 0]  # the column as the data set has it (not the model's float32 input)
    assert got[("bmi", "< 0")]["rows"] == len(low)


def test_failed_slice_gate_names_the_worst_slice_and_registers_nothing(
    tmp_path: Path, people: pd.DataFrame
) -> None:
    ev = {"slices": {"features": [{"feature": "group"}], "minRows": 5, "gates": ["accuracy_gap <= 0.01"]}}
    rc, term, bundle = run(tmp_path, people_spec(tmp_path, ev))
    assert (rc, term["reason"]) == (3, "GateNotMet")
    assert not bundle.exists()
    test, pred = held_out(people)
    overall = metrics.accuracy_score(test["y"], pred)
    per = {g: metrics.accuracy_score(p["y"], pred[p.index]) for g, p in test.groupby("group")}
    failing = {g: overall - a for g, a in per.items() if overall - a > 0.01}
    worst = max(failing, key=lambda g: failing[g])
    assert term["message"].startswith(f"slice gate 'accuracy_gap <= 0.01' not met by {len(failing)} slice")
    assert (
        f"worst: slice group '{worst}' has accuracy={per[worst]:.4f} (overall {overall:.4f}, "
        f"gap {failing[worst]:.4f}), {int((test['group'] == worst).sum())} held-out rows"
    ) in term["message"]


def test_slices_below_min_rows_are_not_gated(tmp_path: Path, people: pd.DataFrame) -> None:
    ev = {"slices": {"features": [{"feature": "group"}], "minRows": 1000, "gates": ["accuracy >= 0.99"]}}
    rc, term, _ = run(tmp_path, people_spec(tmp_path, ev))
    assert rc == 0, term
    assert len(term["slices"]) == 3


def test_failed_fairness_gate_gives_fairlearns_number(tmp_path: Path, people: pd.DataFrame) -> None:
    ev = {
        "fairness": {
            "sensitiveFeature": "group",
            "positiveLabel": "1",
            "gates": ["demographic_parity_ratio >= 0.99"],
        }
    }
    rc, term, bundle = run(tmp_path, people_spec(tmp_path, ev))
    assert (rc, term["reason"]) == (3, "GateNotMet")
    assert not bundle.exists()
    test, pred = held_out(people)
    ratio = fm.demographic_parity_ratio(test["y"], pred, sensitive_features=test["group"])
    assert ratio < 0.99
    assert term["message"].startswith(
        f"fairness gate 'demographic_parity_ratio >= 0.99' not met on group "
        f"(positive label 1): demographic_parity_ratio={ratio:.4f}; selection rates A="
    )


def _tj(
    evaluation: dict[str, Any], class_name: str = "LogisticRegression", uri: str = "sklearn://iris"
) -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "t"},
        "spec": {
            "model": "m",
            "dataset": {"uri": uri},
            "estimator": {"className": class_name},
            "evaluation": evaluation,
        },
    }


@pytest.mark.parametrize(
    ("manifest", "field", "words"),
    [
        (
            _tj({"fairness": {"sensitiveFeature": "sex"}}, "Ridge", "sklearn://diabetes"),
            "spec.evaluation.fairness",
            "need a classifier",
        ),
        (
            _tj({"slices": {"features": [{"feature": "x"}], "gates": ["rmse_gap <= 1"]}}),
            "spec.evaluation.slices.gates",
            "classification estimator can only be gated on",
        ),
        (
            _tj({"slices": {"features": [{"feature": "x"}], "gates": ["accuracy within 0.05"]}}),
            "spec.evaluation.slices.gates[0]",
            "'<metric>_gap <op> <number>'",
        ),
        (
            _tj({"fairness": {"sensitiveFeature": "x", "gates": ["parity <= 0.1"]}}),
            "spec.evaluation.fairness.gates[0]",
            "demographic_parity_difference",
        ),
        (_tj({"slices": {"features": []}}), "spec.evaluation.slices.features", ""),
    ],
)
def test_bad_slices_and_fairness_are_refused_at_admission(
    manifest: dict[str, Any], field: str, words: str
) -> None:
    causes = validate_manifest(CRDS, manifest)
    assert any(c.field == field and words in c.message for c in causes), causes


@pytest.mark.parametrize(
    ("evaluation", "reason", "message"),
    [
        (
            {"slices": {"features": [{"feature": "colour"}]}},
            "InvalidData",
            "evaluation.slices.features[0].feature: column 'colour' not found",
        ),
        (
            {"fairness": {"sensitiveFeature": "sepal length (cm)"}},
            "InvalidSpec",
            "evaluation.fairness.positiveLabel: required for a target with 3 classes",
        ),
        (
            {"fairness": {"sensitiveFeature": "sepal length (cm)", "positiveLabel": "7"}},
            "InvalidSpec",
            "evaluation.fairness.positiveLabel: '7' is not a class",
        ),
        (
            {"slices": {"features": [{"feature": "sepal length (cm)"}], "maxGroups": 3}},
            "InvalidData",
            "evaluation.slices.features[0]: column 'sepal length (cm)' has",
        ),
    ],
)
def test_bad_slices_fail_the_trainer_naming_the_field(
    tmp_path: Path, evaluation: dict[str, Any], reason: str, message: str
) -> None:
    rc, term, _ = run(tmp_path, _tj(evaluation)["spec"])
    assert (rc, term["reason"]) == (2, reason)
    assert term["message"].startswith(message)
