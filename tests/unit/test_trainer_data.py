"""Trainer inputs beyond the bundled sets: CSV/Parquet on file:// and pvc://, integer-coded categorical
features one-hot encoded inside the ONNX graph, string class labels, missing values, long feature lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import yaml
from sklearn.model_selection import train_test_split

from onnxops.api.v1alpha1.modelversion import Signature
from onnxops.trainer.__main__ import compact, main
from onnxops.trainer.evaluate import failed_gates, parse_gate


def run(
    tmp_path: Path,
    spec: dict[str, Any],
    output: str | None = None,
    run_id: str = "r1",
    extra: list[str] | None = None,
) -> tuple[int, dict[str, Any]]:
    term = tmp_path / "term.json"
    argv = ["--spec-json", json.dumps(spec), "--run-id", run_id, "--termination-log", str(term)]
    argv += ["--output-uri", output or f"file://{tmp_path}/store"] + (extra or [])
    rc = main(argv)
    text = term.read_text()
    assert len(text.encode()) < 4096
    return rc, json.loads(text)


def frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "shop": rng.integers(0, 5, n),
            "x2": rng.normal(size=n),
            "tier": rng.choice([10, 20, 30], n),
        }
    )
    logit = df.x1 + (df.shop == 2) * 2.0 - (df.tier == 30) * 1.5
    df["label"] = np.where(logit > 0, "yes", "no")
    return df


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_categorical_codes_are_one_hot_encoded_in_the_graph(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONNXOPS_PVC_ROOT", str(tmp_path / "pvc"))
    (tmp_path / "pvc" / "data").mkdir(parents=True)
    df = frame()
    path = tmp_path / "pvc" / "data" / f"shop.{fmt}"
    df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path, index=False)
    spec = {
        "model": "shop",
        "dataset": {
            "uri": f"pvc://data/shop.{fmt}",
            "format": fmt,
            "target": "label",
            "categoricalFeatures": ["shop", "tier"],
        },
        "estimator": {"className": "LogisticRegression", "scaling": "standard"},
        "evaluation": {"seed": 3},
    }
    rc, term = run(tmp_path, spec, output="pvc://artifacts/models")
    assert rc == 0, term
    bundle = tmp_path / "pvc" / "artifacts" / "models" / "shop" / "r1"
    assert term["artifact"]["uri"] == "pvc://artifacts/models/shop/r1/model.onnx"
    sig = Signature.model_validate(term["signature"])
    assert sig.feature_names == ["x1", "shop", "x2", "tier"]
    assert sig.class_labels == ["no", "yes"]
    assert [(o.name, o.datatype) for o in sig.outputs] == [("label", "BYTES"), ("probabilities", "FP32")]
    assert [(i.name, i.shape) for i in sig.inputs] == [("input", [-1, 4])]

    # the graph one-hot encodes: unseen codes (7, 99) are accepted and behave like "no category"
    sess = ort.InferenceSession((bundle / "model.onnx").read_bytes(), providers=["CPUExecutionProvider"])
    X = np.array([[0.5, 2, 0.1, 10], [0.5, 7, 0.1, 99], [-2.0, 0, 0.0, 30]], dtype=np.float32)
    labels, proba = sess.run(None, {"input": X})
    assert proba.shape == (3, 2) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert list(labels) == [["no", "yes"][int(p[1] > 0.5)] for p in proba]

    prof = json.loads((bundle / "profile.json").read_text())
    meta = json.loads((bundle / "metadata.json").read_text())
    train_rows = meta["split"]["trainRows"]
    shop = next(f for f in prof["features"] if f["name"] == "shop")
    assert shop["kind"] == "categorical" and shop["categories"] == ["0", "1", "2", "3", "4"]
    assert sum(shop["counts"]) == train_rows == prof["rows"]
    tr, _ = train_test_split(np.arange(len(df)), test_size=0.2, random_state=3, stratify=df["label"])
    expected = df["shop"].iloc[tr].value_counts()
    assert shop["counts"] == [int(expected.get(int(c), 0)) for c in shop["categories"]]
    tier = next(f for f in prof["features"] if f["name"] == "tier")
    assert tier["categories"] == ["10", "20", "30"]
    assert prof["prediction"]["classes"] == ["no", "yes"] and sum(prof["prediction"]["counts"]) == train_rows
    assert meta["categoricalEncoding"]["features"] == ["shop", "tier"]


def test_categorical_with_fractions_is_refused(tmp_path: Path) -> None:
    df = frame()
    df["x2"] = df["x2"].round(1)
    p = tmp_path / "d.csv"
    df.to_csv(p, index=False)
    spec = {
        "model": "m",
        "dataset": {"uri": f"file://{p}", "target": "label", "categoricalFeatures": ["x2"]},
        "estimator": {"className": "GaussianNB"},
    }
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (2, "InvalidData")
    assert "categorical feature 'x2' must hold integer codes" in term["message"]


def test_missing_values_with_histogram_boosting(tmp_path: Path) -> None:
    df = frame(300)
    df.loc[::10, "x2"] = np.nan
    p = tmp_path / "d.csv"
    df.to_csv(p, index=False)
    spec = {
        "model": "m",
        "dataset": {"uri": f"file://{p}", "target": "label"},
        "estimator": {"className": "HistGradientBoostingClassifier", "params": {"max_iter": 15}},
    }
    rc, term = run(tmp_path, spec)
    assert rc == 0, term
    prof = json.loads((tmp_path / "store" / "m" / "r1" / "profile.json").read_text())
    meta = json.loads((tmp_path / "store" / "m" / "r1" / "metadata.json").read_text())
    x2 = next(f for f in prof["features"] if f["name"] == "x2")
    assert sum(x2["counts"]) == round(prof["rows"] * (1 - x2["missingShare"]))
    assert 0.05 < x2["missingShare"] < 0.15
    assert meta["parity"]["labelMismatches"] == 0


def test_missing_values_without_support_fail_clearly(tmp_path: Path) -> None:
    df = frame(100)
    df.loc[::10, "x2"] = np.nan
    p = tmp_path / "d.csv"
    df.to_csv(p, index=False)
    spec = {
        "model": "m",
        "dataset": {"uri": f"file://{p}", "target": "label"},
        "estimator": {"className": "LogisticRegression"},
    }
    rc, term = run(tmp_path, spec)
    assert (rc, term["reason"]) == (2, "TrainingFailed") and "NaN" in term["message"]


def test_many_long_feature_names_keep_the_message_small(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cols = {f"a_rather_long_feature_name_number_{i:04d}": rng.normal(size=80) for i in range(300)}
    df = pd.DataFrame(cols)
    df["y"] = (df.iloc[:, 0] > 0).astype(int)
    p = tmp_path / "wide.csv"
    df.to_csv(p, index=False)
    spec = {
        "model": "wide",
        "dataset": {"uri": f"file://{p}", "target": "y"},
        "estimator": {"className": "GaussianNB"},
    }
    rc, term = run(tmp_path, spec)
    assert rc == 0, term
    assert term["truncated"] == ["signature.featureNames"]
    assert "featureNames" not in term["signature"]
    Signature.model_validate(term["signature"])
    meta = json.loads((tmp_path / "store" / "wide" / "r1" / "metadata.json").read_text())
    assert meta["signature"]["featureNames"] == list(cols)  # the full list stays in metadata.json


def test_compact_shortens_long_failure_messages() -> None:
    text = compact({"ok": False, "reason": "DataError", "message": "x" * 10000})
    assert len(text.encode()) <= 4000
    assert json.loads(text)["message"].endswith("...[truncated]")


def test_spec_file_with_a_whole_trainingjob_and_spec_output(tmp_path: Path) -> None:
    tj = {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "iris"},
        "spec": {
            "model": "iris",
            "dataset": {"uri": "sklearn://iris"},
            "estimator": {"className": "DecisionTreeClassifier"},
            "output": {"uri": f"file://{tmp_path}/out"},
        },
    }
    f = tmp_path / "tj.yaml"
    f.write_text(yaml.safe_dump(tj))
    term = tmp_path / "t.json"
    assert main(["--spec-file", str(f), "--termination-log", str(term)]) == 0
    res = json.loads(term.read_text())
    run_ids = [p.name for p in (tmp_path / "out" / "iris").iterdir()]
    assert len(run_ids) == 1
    assert res["artifact"]["uri"] == f"file://{tmp_path}/out/iris/{run_ids[0]}/model.onnx"


def test_termination_log_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    term = tmp_path / "env-term"
    monkeypatch.setenv("ONNXOPS_TERMINATION_LOG", str(term))
    rc = main(
        [
            "--spec-json",
            '{"model": "m", "dataset": {"uri": "sklearn://iris"}, "estimator": {"className": "GaussianNB"}}',
        ]
    )
    assert rc == 2
    message = json.loads(term.read_text())["message"]
    assert message == "no output URI: pass --output-uri or set spec.output.uri"


@pytest.mark.parametrize(
    ("gate", "value", "ok"),
    [
        ("accuracy >= 0.9", 0.9, True),
        ("accuracy > 0.9", 0.9, False),
        ("rmse <= 3", 3.0, True),
        ("rmse < 3", 3.0, False),
        ("r2>=-0.5", -0.5, True),
        ("log_loss<0.2", 0.25, False),
    ],
)
def test_gates(gate: str, value: float, ok: bool) -> None:
    g = parse_gate(gate)
    failures = failed_gates([g], {g.metric: value})
    assert (failures == []) is ok
    if not ok:
        assert failures == [f"gate '{g.text}' not met: {g.metric}={value:.4f}"]


def test_module_entrypoint_as_a_process(tmp_path: Path) -> None:
    """`python -m onnxops.trainer` as the container runs it: progress on stderr, result in the file."""
    import subprocess
    import sys

    term = tmp_path / "termination-log"
    spec = {
        "model": "iris",
        "dataset": {"uri": "sklearn://iris"},
        "estimator": {"className": "GaussianNB"},
        "evaluation": {"gates": ["accuracy >= 0.5"]},
    }
    env = {"ONNXOPS_TERMINATION_LOG": str(term), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "onnxops.trainer",
            "--spec-json",
            json.dumps(spec),
            "--model",
            "iris",
            "--run-id",
            "abc",
            "--output-uri",
            f"file://{tmp_path}/o",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for line in (
        "loaded sklearn://iris: 150 rows x 5 columns",
        "split 120 train / 30 test rows",
        "held-out metrics: accuracy=",
        "gates met: accuracy >= 0.5",
        "parity ok on 30 held-out rows",
        "profiled 120 training rows",
        f"stored bundle file://{tmp_path}/o/iris/abc",
    ):
        assert line in proc.stderr
    assert json.loads(term.read_text())["ok"] is True
    spec["evaluation"] = {"gates": ["log_loss < 0.000001"]}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "onnxops.trainer",
            "--spec-json",
            json.dumps(spec),
            "--run-id",
            "def",
            "--output-uri",
            f"file://{tmp_path}/o",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 3
    res = json.loads(term.read_text())
    assert res["reason"] == "GateNotMet" and res["message"].startswith("gate 'log_loss < 0.000001' not met")


def test_chunked_csv_reader_matches_pandas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from onnxops.trainer import data

    monkeypatch.setattr(data, "CSV_CHUNK_ROWS", 7)
    p = tmp_path / "mixed.csv"
    p.write_text(
        "a,b,c,d\n"
        + "".join(
            f"{i},{'' if i == 15 else i * 0.5},{'x' if i > 10 else i},{i % 2 == 0}\n" for i in range(23)
        )
    )
    got = data._read_csv(str(p))
    ref = pd.read_csv(p)
    pd.testing.assert_frame_equal(got[["a", "b", "d"]], ref[["a", "b", "d"]])
    assert got["c"].astype(str).tolist() == ref["c"].astype(str).tolist()
    assert not pd.api.types.is_numeric_dtype(got["c"])  # still refused as a feature
