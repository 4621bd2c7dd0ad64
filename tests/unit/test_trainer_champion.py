"""Champion/challenger gates in the trainer (issue 14): the champion's ONNX artifact (digest verified) is
scored on the same held-out rows as the new model; both scores are reported; no champion = the gates pass
and say so. The champion's reference score comes from onnxruntime on a scikit-learn split of the data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from sklearn import datasets
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from onnxops.trainer import champion
from onnxops.trainer.__main__ import main


def spec(
    class_name: str, params: dict[str, Any], gates: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    ev: dict[str, Any] = {"metrics": ["accuracy"]}
    if gates:
        ev.update(champion={"alias": "production"}, championGates=gates)
    return {
        "model": "iris",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": class_name, "params": params},
        "evaluation": ev,
    }


def run(tmp_path: Path, s: dict[str, Any], run_id: str) -> tuple[int, dict[str, Any]]:
    term = tmp_path / f"term-{run_id}.json"
    rc = main(
        [
            "--spec-json",
            json.dumps(s),
            "--run-id",
            run_id,
            "--output-uri",
            f"file://{tmp_path}/store",
            "--termination-log",
            str(term),
        ]
    )
    return rc, json.loads(term.read_text())


def reference_accuracy(model: Path) -> float:
    """The champion's accuracy on the trainer's held-out rows, from the spec's semantics (seed 42, 20 %,
    stratified), with scikit-learn and onnxruntime only."""
    x, y = datasets.load_iris(return_X_y=True)
    _, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=42, stratify=y)
    sess = ort.InferenceSession(model.read_bytes(), providers=["CPUExecutionProvider"])
    label = sess.run(None, {sess.get_inputs()[0].name: x[np.sort(te)].astype(np.float32)})[0]
    return float(accuracy_score(y[np.sort(te)], label))


@pytest.fixture(scope="module")
def weak(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A registered champion: a depth-1 tree (about 2/3 accuracy on iris)."""
    tmp = tmp_path_factory.mktemp("champion")
    rc, out = run(tmp, spec("DecisionTreeClassifier", {"max_depth": 1}), "weak")
    assert rc == 0, out
    return {
        "source": "alias production",
        "version": 1,
        **out["artifact"],
        "path": tmp / "store" / "iris" / "weak" / "model.onnx",
    }


def env_for(monkeypatch: pytest.MonkeyPatch, ref: dict[str, Any]) -> None:
    monkeypatch.setenv(champion.ENV, json.dumps({k: v for k, v in ref.items() if k != "path"}))


def test_challenger_beats_champion_and_both_scores_are_reported(
    tmp_path: Path, weak: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env_for(monkeypatch, weak)
    rc, out = run(
        tmp_path,
        spec("LogisticRegression", {"max_iter": 500}, [{"metric": "accuracy", "maxRegression": 0.0}]),
        "strong",
    )
    assert rc == 0, out
    c = out["champion"]
    want = reference_accuracy(weak["path"])
    assert c["version"] == 1 and c["sha256"] == weak["sha256"]
    assert c["metrics"]["accuracy"] == pytest.approx(want)
    [g] = c["gates"]
    assert g["passed"] and g["champion"] == pytest.approx(want)
    assert g["challenger"] == pytest.approx(out["metrics"]["accuracy"]) and g["challenger"] > want


def test_challenger_worse_than_champion_fails_with_both_scores(
    tmp_path: Path, weak: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the champion now is a strong model; the weak tree is the challenger
    rc, strong = run(tmp_path, spec("LogisticRegression", {"max_iter": 500}), "champ")
    assert rc == 0
    ref = {"source": "inferenceService iris", "version": 2, **strong["artifact"]}
    env_for(monkeypatch, ref)
    rc, out = run(
        tmp_path,
        spec("DecisionTreeClassifier", {"max_depth": 1}, [{"metric": "accuracy", "maxRegression": 0.01}]),
        "challenger",
    )
    assert rc == 3 and out["reason"] == "GateNotMet", out
    [g] = out["champion"]["gates"]
    assert not g["passed"]
    assert g["champion"] == pytest.approx(reference_accuracy(tmp_path / "store/iris/champ/model.onnx"))
    assert g["challenger"] == pytest.approx(out["metrics"]["accuracy"])
    assert "champion gate accuracy (max regression 0.01) not met" in out["message"]


def test_no_champion_yet_passes_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        champion.ENV,
        json.dumps({"source": "alias production", "missing": "alias production is not set on Model iris"}),
    )
    rc, out = run(
        tmp_path,
        spec("DecisionTreeClassifier", {"max_depth": 1}, [{"metric": "accuracy", "maxRegression": 0.0}]),
        "first",
    )
    assert rc == 0, out
    assert out["champion"]["message"].startswith("no champion yet (alias production is not set")
    assert out["champion"]["gates"][0]["passed"] is True


def test_tampered_champion_artifact_is_refused(
    tmp_path: Path, weak: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env_for(monkeypatch, {**weak, "sha256": hashlib.sha256(b"something else").hexdigest()})
    rc, out = run(
        tmp_path,
        spec("LogisticRegression", {"max_iter": 500}, [{"metric": "accuracy", "maxRegression": 0.0}]),
        "t",
    )
    assert rc == 6 and out["reason"] == "DataError" and "sha256 mismatch" in out["message"], out
    assert "champion artifact" in out["message"]


@pytest.mark.parametrize(
    ("metric", "new", "old", "tol", "ok"),
    [
        ("accuracy", 0.90, 0.91, 0.01, True),
        ("accuracy", 0.89, 0.91, 0.01, False),
        ("accuracy", 0.92, 0.91, -0.02, False),
        ("rmse", 10.5, 10.0, 0.5, True),
        ("rmse", 10.6, 10.0, 0.5, False),
        ("log_loss", 0.2, 0.3, 0.0, True),
    ],
)
def test_gate_direction(metric: str, new: float, old: float, tol: float, ok: bool) -> None:
    assert champion.ChampionGate(metric, tol).holds(new, old) is ok
