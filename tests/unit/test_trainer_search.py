"""spec.estimator.search: the trainer picks what scikit-learn's search class picks when run directly on the
same training split, folds and seed; the best parameters are trained, exported and recorded; the time
budget stops a search early; bad input is refused at admission (CRD schema/CEL) or by the trainer, naming
the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import xgboost
from scipy import stats
from sklearn import datasets
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    HalvingRandomSearchCV,
    KFold,
    RandomizedSearchCV,
    StratifiedKFold,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from onnxops.api.v1alpha1.search import Search
from onnxops.api.v1alpha1.termination import TrainerSuccess
from onnxops.crdgen import build_crds
from onnxops.reconcile.trainingjob import model_version_body
from onnxops.settings import Settings
from onnxops.trainer import search as tsearch
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


def split(name: str, classification: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    X = frame.drop(columns="target").to_numpy(dtype=np.float32).astype(np.float64)
    y = frame["target"].to_numpy()
    tr, te = train_test_split(
        np.arange(len(y)), test_size=0.2, random_state=SEED, stratify=y if classification else None
    )
    tr, te = np.sort(tr), np.sort(te)
    return X[tr], y[tr], X[te], y[te]


def test_random_search_picks_what_randomized_search_cv_picks(tmp_path: Path) -> None:
    s = {
        "strategy": "random",
        "parameters": {
            "max_depth": {"min": 1, "max": 8},
            "min_samples_leaf": [1, 2, 4, 8],
            "criterion": ["gini", "entropy"],
        },
        "maxTrials": 8,
        "cvFolds": 4,
    }
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://breast_cancer"},
        "estimator": {"className": "DecisionTreeClassifier", "search": s},
        "evaluation": {"seed": SEED},
    }
    rc, term, bundle = run(tmp_path, spec)
    assert rc == 0, term
    Xtr, ytr, Xte, _ = split("breast_cancer", True)
    ref = RandomizedSearchCV(
        Pipeline([("model", DecisionTreeClassifier(random_state=SEED))]),
        {
            "model__max_depth": stats.randint(1, 9),
            "model__min_samples_leaf": [1, 2, 4, 8],
            "model__criterion": ["gini", "entropy"],
        },
        n_iter=8,
        scoring="accuracy",
        cv=StratifiedKFold(4, shuffle=True, random_state=SEED),
        random_state=SEED,
    ).fit(Xtr, ytr)
    best = {k.removeprefix("model__"): v for k, v in ref.best_params_.items()}
    assert term["search"]["bestParams"] == best
    assert term["search"]["bestScore"] == pytest.approx(ref.best_score_)
    assert term["search"]["trials"] == 8 and term["search"]["stoppedEarly"] is False
    meta = json.loads((bundle / "metadata.json").read_text())
    trials = meta["search"]["trialResults"]
    assert [t["score"] for t in trials] == pytest.approx(list(ref.cv_results_["mean_test_score"]))
    assert [t["params"]["max_depth"] for t in trials] == [
        p["model__max_depth"] for p in ref.cv_results_["params"]
    ]
    assert meta["estimator"]["effectiveParams"]["max_depth"] == best["max_depth"]
    assert meta["lineage"]["estimator"]["params"] == best
    # what is exported is the best candidate refit on the whole training split
    refit = DecisionTreeClassifier(random_state=SEED, **best).fit(Xtr, ytr)
    sess = ort.InferenceSession((bundle / "model.onnx").read_bytes(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(sess.run(None, {"input": Xte.astype(np.float32)})[0], refit.predict(Xte))
    # and the ModelVersion the operator registers shows the best parameters and the summary
    tj = {"metadata": {"name": "t", "namespace": "ns", "uid": "u"}, "spec": spec}
    mv = model_version_body(tj, TrainerSuccess.model_validate(term), Settings())
    assert mv["spec"]["lineage"]["estimator"]["params"] == best
    assert mv["spec"]["lineage"]["estimator"]["search"]["trials"] == 8
    assert (
        validate_manifest(
            CRDS, {**mv, "metadata": {"name": "m-v1", **mv["metadata"]}, "spec": {**mv["spec"], "version": 1}}
        )
        == []
    )


def test_grid_search_of_xgboost_on_rmse_picks_what_grid_search_cv_picks(tmp_path: Path) -> None:
    s = {
        "strategy": "grid",
        "parameters": {"max_depth": [2, 4], "n_estimators": {"min": 4, "max": 12, "step": 8}},
        "cvFolds": 3,
        "metric": "rmse",
    }
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://diabetes"},
        "estimator": {"className": "XGBRegressor", "params": {"learning_rate": 0.3}, "search": s},
    }
    rc, term, _ = run(tmp_path, spec)
    assert rc == 0, term
    Xtr, ytr, _, _ = split("diabetes", False)
    ref = GridSearchCV(
        Pipeline([("model", xgboost.XGBRegressor(learning_rate=0.3, random_state=SEED, n_jobs=1))]),
        {"model__max_depth": [2, 4], "model__n_estimators": [4, 12]},
        scoring="neg_root_mean_squared_error",
        cv=KFold(3, shuffle=True, random_state=SEED),
    ).fit(Xtr, ytr)
    assert term["search"]["bestParams"] == {k.removeprefix("model__"): v for k, v in ref.best_params_.items()}
    assert term["search"]["bestScore"] == pytest.approx(-ref.best_score_, rel=1e-6)
    assert term["search"]["trials"] == 4


def test_halving_with_log_uniform_picks_what_halving_random_search_cv_picks(tmp_path: Path) -> None:
    s = {
        "strategy": "halving",
        "parameters": {"C": {"min": 0.001, "max": 100.0, "log": True}},
        "maxTrials": 9,
        "cvFolds": 3,
        "factor": 3,
    }
    spec = {
        "model": "m",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "LogisticRegression", "scaling": "standard", "search": s},
    }
    rc, term, bundle = run(tmp_path, spec)
    assert rc == 0, term
    Xtr, ytr, _, _ = split("iris", True)
    ref = HalvingRandomSearchCV(
        Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(random_state=SEED))]),
        {"model__C": stats.loguniform(0.001, 100.0)},
        n_candidates=9,
        factor=3,
        scoring="accuracy",
        cv=StratifiedKFold(3, shuffle=True, random_state=SEED),
        random_state=SEED,
        refit=False,
    ).fit(Xtr, ytr)
    assert term["search"]["bestParams"]["C"] == pytest.approx(ref.best_params_["model__C"], rel=1e-12)
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["search"]["searchClass"] == "HalvingRandomSearchCV"
    assert meta["search"]["rounds"] == ref.n_iterations_
    assert len(meta["search"]["trialResults"]) == len(ref.cv_results_["params"])


def test_time_budget_stops_between_batches_and_keeps_the_best_so_far() -> None:
    Xtr, ytr, _, _ = split("iris", True)
    s = Search.model_validate(
        {"strategy": "grid", "parameters": {"max_depth": [1, 2, 3, 4, 5, 6]}, "cvFolds": 3}
    )
    pipe = Pipeline([("model", DecisionTreeClassifier(random_state=SEED))])
    res = tsearch.run_search(pipe, s, Xtr, ytr, task="classification", seed=SEED, n_jobs=2, budget_seconds=0)
    assert res.stopped_early is True
    assert len(res.trials) == 2  # the first batch (n_jobs candidates) always runs
    assert res.best_params["max_depth"] in (1, 2)
    full = tsearch.run_search(
        pipe, s, Xtr, ytr, task="classification", seed=SEED, n_jobs=2, budget_seconds=600
    )
    assert full.stopped_early is False and len(full.trials) == 6


def _tj(search: dict[str, Any], class_name: str = "DecisionTreeClassifier") -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "t"},
        "spec": {
            "model": "m",
            "dataset": {"uri": "sklearn://iris"},
            "estimator": {"className": class_name, "search": search},
        },
    }


@pytest.mark.parametrize(
    ("search", "field", "words"),
    [
        ({"parameters": {"max_depth": []}}, "spec.estimator.search.parameters", "at least one value"),
        ({"parameters": {}}, "spec.estimator.search.parameters", ""),
        ({"parameters": {"max_depth": [2]}, "maxTrials": 0}, "spec.estimator.search.maxTrials", ""),
        ({"parameters": {"max_depth": [2]}, "timeoutSeconds": 0}, "spec.estimator.search.timeoutSeconds", ""),
        (
            {"parameters": {"max_depth": {"min": 5, "max": 1}}},
            "spec.estimator.search.parameters",
            "min <= max",
        ),
        (
            {"parameters": {"ccp_alpha": {"min": 0, "max": 1, "log": True}}},
            "spec.estimator.search.parameters",
            "min > 0",
        ),
        (
            {"strategy": "grid", "parameters": {"ccp_alpha": {"min": 0.1, "max": 1}}},
            "spec.estimator.search.parameters",
            "grid search needs lists or ranges with a step",
        ),
        (
            {"parameters": {"max_depth": [2]}, "metric": "rmse"},
            "spec.estimator.search.metric",
            "classification",
        ),
    ],
)
def test_bad_search_is_refused_at_admission_naming_the_field(
    search: dict[str, Any], field: str, words: str
) -> None:
    causes = validate_manifest(CRDS, _tj(search))
    assert causes, search
    assert any(c.field == field and words in c.message for c in causes), causes


@pytest.mark.parametrize(
    ("search", "message"),
    [
        (
            {"parameters": {"max_deepth": [2, 3]}},
            "estimator.search.parameters.max_deepth: unknown parameter for DecisionTreeClassifier",
        ),
        (
            {"parameters": {"max_depth": [2, -1]}},
            "estimator.search.parameters.max_depth[1]: The 'max_depth' parameter",
        ),
        (
            {"parameters": {"max_depth": []}},
            "estimator.search.parameters.max_depth: the list of values is empty",
        ),
        ({"parameters": {"max_depth": [2]}, "maxTrials": 0}, "spec.estimator.search.maxTrials:"),
        (
            {
                "strategy": "grid",
                "parameters": {"max_depth": [1, 2, 3], "min_samples_leaf": [1, 2]},
                "maxTrials": 5,
            },
            "estimator.search.maxTrials: the grid has 6 candidates, more than maxTrials 5",
        ),
    ],
)
def test_bad_search_fails_the_trainer_naming_the_field(
    tmp_path: Path, search: dict[str, Any], message: str
) -> None:
    rc, term, _ = run(tmp_path, _tj(search)["spec"])
    assert (rc, term["reason"]) == (2, "InvalidSpec")
    assert message in term["message"]


def test_search_cpus_come_from_the_container(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    real = tsearch.run_search

    def spy(*args: Any, **kw: Any) -> Any:
        seen["n_jobs"] = kw["n_jobs"]
        return real(*args, **kw)

    monkeypatch.setattr(tsearch, "run_search", spy)
    monkeypatch.setattr("onnxops.trainer.run.available_cpus", lambda: 1)
    rc, term, _ = run(
        tmp_path, _tj({"strategy": "grid", "parameters": {"max_depth": [1, 2]}, "cvFolds": 2})["spec"]
    )
    assert rc == 0, term
    assert seen["n_jobs"] == 1
