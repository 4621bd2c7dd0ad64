"""dataset.fromServing: captured traffic (written by the server's own capture code) joined with labels,
by window, version and id; each bad input fails the training with a reason naming it; lineage."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from onnxops.api.v1alpha1.trainingjob import Dataset, TrainingJobSpec
from onnxops.profile import Profile, numeric_feature
from onnxops.serving.capture import Capture
from onnxops.serving.capture_config import CaptureConfig
from onnxops.serving.model import LoadedModel, TensorInfo
from onnxops.serving.sink import LocalSink
from onnxops.trainer.__main__ import main
from onnxops.trainer.errors import EXIT_LABELS_PENDING, FINAL_EXIT_CODES, InvalidData, LabelsPending
from onnxops.trainer.from_serving import load_from_serving

NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
IRIS = load_iris(as_frame=True)
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
X = IRIS.data.to_numpy(np.float32)
Y = IRIS.target.to_numpy()


def served_model(version: str) -> LoadedModel:
    prof = Profile(
        task="classification",
        rows=150,
        features=[numeric_feature(n, j, X[:, j].astype(float)) for j, n in enumerate(NAMES)],
    )
    return LoadedModel(
        "iris",
        version,
        None,  # type: ignore[arg-type]
        [TensorInfo("X", "FP32", (-1, 4), np.float32)],
        [
            TensorInfo("label", "INT64", (-1,), np.int64),
            TensorInfo("probabilities", "FP32", (-1, 3), np.float32),
        ],
        prof,
        "0" * 64,
    )


def capture(sink: Path, traffic: list[tuple[datetime, str, int, str]]) -> None:
    """Write (time, request id, iris row, version) requests through the server's capture code."""

    async def go() -> None:
        for version in sorted({t[3] for t in traffic}):
            mine = [t for t in traffic if t[3] == version]
            times = iter([t[0].timestamp() for t in mine])
            c = Capture(
                CaptureConfig(sink_uri=sink.as_uri(), pod="p"),
                "iris",
                version,
                LocalSink(sink.as_uri()),
                clock=times.__next__,
            )
            m = served_model(version)
            for _, rid, i, _ in mine:
                x = X[i : i + 1]
                c.record(m, rid, {"X": x}, [np.array([0]), np.full((1, 3), 1 / 3, np.float32)], 1)
            assert await c.flush()

    asyncio.run(go())


def labels_csv(path: Path, rows: dict[str, int], **extra: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": list(rows), "species": list(rows.values()), **extra}).to_csv(path, index=False)
    return path


def dataset(sink: Path, labels: Path, **fs: Any) -> Dataset:
    return Dataset.model_validate(
        {
            "target": "species",
            "fromServing": {
                "service": "iris",
                "window": "2h",
                "labels": {"uri": labels.as_uri()},
                "sinkUri": sink.as_uri(),
                "minRows": 3,
                **fs,
            },
        }
    )


@pytest.fixture
def traffic(tmp_path: Path) -> Path:
    sink = tmp_path / "traffic"
    t = NOW - timedelta(minutes=30)
    capture(
        sink,
        [
            (NOW - timedelta(hours=5), "old", 0, "1"),  # outside the 2h window (its own hour partition)
            (NOW - timedelta(hours=2, minutes=10), "early", 1, "1"),  # same hour as the start, but before it
            *[(t + timedelta(seconds=i), f"r{i}", 10 * i, "2") for i in range(12)],
            (t + timedelta(seconds=20), "r3", 30, "2"),  # a duplicate id: the first capture wins
            (t + timedelta(seconds=30), "v3", 140, "3"),
        ],
    )
    return sink


def test_join_window_and_dedup(traffic: Path, tmp_path: Path) -> None:
    lab = {f"r{i}": int(Y[10 * i]) for i in range(0, 12, 2)}  # every second request has a label
    lab |= {"old": 0, "early": 0, "v3": int(Y[140]), "unknown": 1}
    path = labels_csv(tmp_path / "labels" / "a.csv", lab)
    table = load_from_serving(dataset(traffic, path.parent), now=NOW)
    f = table.frame
    assert list(f.columns) == [*NAMES, "species"]
    ids = [f"r{i}" for i in range(0, 12, 2)] + ["v3"]
    want = sorted((*(X[10 * int(i[1:])] if i != "v3" else X[140]).tolist(), lab[i]) for i in ids)
    got = sorted((*np.asarray(r[:4], np.float32).tolist(), int(r[4])) for r in f.itertuples(index=False))
    assert got == want
    lin = table.lineage
    assert lin is not None
    # captured: r0..r11 and v3 (old and early are outside the window, the second r3 is a duplicate)
    assert (lin["rowsCaptured"], lin["rowsLabelled"], lin["rowsUsed"]) == (13, 7, 7)
    assert lin["windowStart"] == "2026-03-02T10:30:00Z" and lin["windowEnd"] == "2026-03-02T12:30:00Z"
    # files with rows in the window: v2 and v3 (v1's file of the start's hour holds only "early")
    assert lin["files"] == 2 and len(lin["filesDigest"]) == 64 and len(lin["labelsDigest"]) == 64


def test_versions_filter_and_last_label_wins(traffic: Path, tmp_path: Path) -> None:
    labels_csv(tmp_path / "l" / "1.csv", {f"r{i}": 0 for i in range(12)} | {"v3": 0})
    labels_csv(tmp_path / "l" / "2.csv", {"r0": 2})  # read after 1.csv: r0 relabelled
    t = load_from_serving(dataset(traffic, tmp_path / "l", versions=[2]), now=NOW)
    assert len(t.frame) == 12 and (t.frame["species"] == 2).sum() == 1
    assert t.lineage is not None and t.lineage["versions"] == [2]


def test_mix_adds_the_share_of_original_rows(traffic: Path, tmp_path: Path) -> None:
    path = labels_csv(tmp_path / "l.csv", {f"r{i}": int(Y[10 * i]) for i in range(12)})
    orig = tmp_path / "orig.csv"
    IRIS.frame.set_axis([*NAMES, "species"], axis=1).to_csv(orig, index=False)
    raw = dataset(traffic, path).model_dump(by_alias=True, exclude_none=True)
    raw["fromServing"]["mix"] = {"rowShare": 0.25}
    ds = Dataset.model_validate({**raw, "uri": orig.as_uri()})
    t = load_from_serving(ds, now=NOW)
    assert len(t.frame) == 12 + 4 and t.lineage is not None and t.lineage["rowsUsed"] == 16


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-labels", "no label files (*.csv, *.parquet) at file://"),
        ("labels-without-id", "has no 'id' column"),
        ("labels-without-target", "has no target column 'species'"),
        ("empty-window", "no captured traffic of InferenceService 'iris' at file://"),
        ("unknown-service", "is spec.logging enabled on the service?"),
        ("schema", "schema mismatch: dataset.features ['petal_area'] are not in the captured traffic"),
    ],
)
def test_bad_input_fails_with_a_reason_naming_it(
    traffic: Path, tmp_path: Path, case: str, message: str
) -> None:
    labels = labels_csv(tmp_path / "labels" / "a.csv", {f"r{i}": 1 for i in range(12)})
    kw: dict[str, Any] = {}
    now, sink, extra = NOW, traffic, {}
    if case == "no-labels":
        labels.unlink()
    elif case == "labels-without-id":
        pd.DataFrame({"request": ["r1"], "species": [1]}).to_csv(labels, index=False)
    elif case == "labels-without-target":
        pd.DataFrame({"id": ["r1"], "label": [1]}).to_csv(labels, index=False)
    elif case == "empty-window":
        now = NOW + timedelta(days=2)
    elif case == "unknown-service":
        sink = tmp_path / "nothing-here"
    elif case == "schema":
        extra = {"features": ["petal_area"]}
    elif case == "min-rows":
        labels_csv(labels, {"r1": 1, "r2": 1})
        kw["minRows"] = 5
    ds = Dataset.model_validate(
        {**dataset(sink, labels.parent, **kw).model_dump(by_alias=True, exclude_none=True), **extra}
    )
    with pytest.raises(InvalidData) as exc:
        load_from_serving(ds, now=now)
    assert message in str(exc.value)


def spec_json(traffic: Path, labels: Path, tmp_path: Path) -> str:
    spec = TrainingJobSpec.model_validate(
        {
            "model": "iris",
            "estimator": {"className": "LogisticRegression", "params": {"max_iter": 500}},
            "dataset": json.loads(dataset(traffic, labels).model_dump_json(by_alias=True, exclude_none=True)),
            "evaluation": {"testFraction": 0.3},
        }
    )
    return spec.model_dump_json(by_alias=True, exclude_none=True)


def test_the_trainer_records_the_lineage_and_registers_nothing_on_bad_input(
    traffic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONNXOPS_FROM_SERVING_NOW", "2026-03-02T12:30:00Z")
    truth = {f"r{i}": int(Y[10 * i]) for i in range(12)} | {"v3": 2}
    labels = labels_csv(tmp_path / "labels" / "a.csv", truth)
    out, term = tmp_path / "out", tmp_path / "term.json"
    args = [
        "--spec-json",
        spec_json(traffic, labels.parent, tmp_path),
        "--output-uri",
        out.as_uri(),
        "--run-id",
        "run1",
        "--termination-log",
        str(term),
    ]
    assert main(args) == 0, term.read_text()
    result = json.loads(term.read_text())
    fs = result["dataset"]["fromServing"]
    assert (fs["rowsLabelled"], fs["rowsUsed"], fs["service"]) == (13, 13, "iris")
    meta = json.loads((out / "iris" / "run1" / "metadata.json").read_text())
    assert meta["lineage"]["dataset"]["fromServing"] == fs
    labels.write_text("request,species\nr1,1\n")
    args[args.index("run1")] = "run2"
    assert main(args) == 2
    bad = json.loads(term.read_text())
    assert bad["reason"] == "InvalidData" and "has no 'id' column" in bad["message"]
    assert not (out / "iris" / "run2").exists()


def test_too_few_labels_is_retried_and_a_retry_reads_the_same_window(
    traffic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels arrive after the answers: fewer than minRows is exit 7 (NotEnoughLabels), which the training
    Job's podFailurePolicy retries (not among the final codes). The window's end comes from the environment
    (the TrainingJob's creation), so the retry, once the labels are written, trains on exactly the rows the
    first attempt saw, even though it starts later."""
    monkeypatch.setenv("ONNXOPS_FROM_SERVING_NOW", "2026-03-02T12:30:00Z")
    labels = labels_csv(tmp_path / "labels" / "a.csv", {"r1": int(Y[10]), "r2": int(Y[20])})
    out, term = tmp_path / "out", tmp_path / "term.json"
    args = [
        "--spec-json",
        spec_json(traffic, labels.parent, tmp_path),
        "--output-uri",
        out.as_uri(),
        "--run-id",
        "run1",
        "--termination-log",
        str(term),
    ]
    code = main(args)
    bad = json.loads(term.read_text())
    assert code == EXIT_LABELS_PENDING == LabelsPending.exit_code and code not in FINAL_EXIT_CODES
    assert bad["reason"] == "NotEnoughLabels"
    assert "2 of 13 captured rows have a label in file://" in bad["message"]
    assert "minRows is 3" in bad["message"]
    assert not (out / "iris" / "run1").exists()
    labels_csv(tmp_path / "labels" / "b.csv", {f"r{i}": int(Y[10 * i]) for i in range(3, 12)})
    assert main(args) == 0, term.read_text()
    fs = json.loads(term.read_text())["dataset"]["fromServing"]
    assert (fs["rowsCaptured"], fs["rowsLabelled"], fs["windowEnd"]) == (13, 11, "2026-03-02T12:30:00Z")


def test_label_files_of_other_label_types_leave_the_joined_rows_their_own_type(
    traffic: Path, tmp_path: Path
) -> None:
    """The label directory also holds another version's labels (class names), written by the same pods:
    the rows in the window are labelled with class indices and keep that type; a window whose labels mix
    types is refused with the reason."""
    labels = labels_csv(tmp_path / "labels" / "v1.csv", {f"r{i}": int(Y[10 * i]) for i in range(12)})
    labels_csv(tmp_path / "labels" / "v9.csv", {"elsewhere-1": "setosa", "elsewhere-2": "virginica"})
    t = load_from_serving(dataset(traffic, labels.parent), now=NOW)
    assert t.frame["species"].dtype == np.int64 and len(t.frame) == 12
    labels_csv(tmp_path / "labels" / "v9.csv", {"v3": "virginica"})  # a row of the window, as a name
    with pytest.raises(InvalidData, match=r"different types \(int, str\).*set fromServing.versions"):
        load_from_serving(dataset(traffic, labels.parent), now=NOW)


def capture_version(
    sink: Path, version: str, names: list[str], label: np.ndarray, rows: range, at: datetime
) -> None:
    """One version's requests (one row each, ids ``v<version>-<i>``) with its own feature names and label
    type, through the server's capture code."""
    prof = Profile(
        task="classification",
        rows=150,
        features=[numeric_feature(n, j, X[:, j].astype(float)) for j, n in enumerate(names)],
    )
    kind = "BYTES" if label.dtype == object else "INT64"
    m = LoadedModel(
        "iris",
        version,
        None,  # type: ignore[arg-type]
        [TensorInfo("X", "FP32", (-1, 4), np.float32)],
        [
            TensorInfo("label", kind, (-1,), label.dtype),
            TensorInfo("probabilities", "FP32", (-1, 3), np.float32),
        ],
        prof,
        "0" * 64,
    )

    async def go() -> None:
        c = Capture(
            CaptureConfig(sink_uri=sink.as_uri(), pod="p"),
            "iris",
            version,
            LocalSink(sink.as_uri()),
            clock=lambda: at.timestamp(),
        )
        for i in rows:
            c.record(
                m,
                f"v{version}-{i}",
                {"X": X[i : i + 1]},
                [label[i : i + 1], np.full((1, 3), 1 / 3, np.float32)],
                1,
            )
        assert await c.flush()

    asyncio.run(go())


def test_versions_with_other_output_types_and_feature_names_read_together(tmp_path: Path) -> None:
    """v1 answers INT64 class indices, v2 BYTES class names (a retrain on labelled names), v3 has other
    feature names: the files of all three read as one set; without dataset.features the features are
    those every file has, with it the files lacking them are left out."""
    sink, t = tmp_path / "traffic", NOW - timedelta(minutes=5)
    names = np.asarray(IRIS.target_names)[Y].astype(object)
    capture_version(sink, "1", NAMES, Y.astype(np.int64), range(0, 150, 3), t)
    capture_version(sink, "2", NAMES, names, range(1, 150, 3), t)
    capture_version(sink, "3", ["a", "b", "c", "d"], names, range(2, 150, 3), t)
    lab = labels_csv(
        tmp_path / "labels" / "l.csv",
        {f"v{v}-{i}": str(names[i]) for v in (1, 2, 3) for i in range(v - 1, 150, 3)},
    )
    table = load_from_serving(dataset(sink, lab.parent, versions=[1, 2]), now=NOW)
    assert list(table.frame.columns) == [*NAMES, "species"] and len(table.frame) == 100
    got = table.frame.sort_values(NAMES).to_numpy()
    rows = [i for i in range(150) if i % 3 != 2]
    want = pd.DataFrame(X[rows].astype(float), columns=NAMES).assign(species=names[rows])
    assert np.array_equal(got, want.sort_values(NAMES).to_numpy())
    with pytest.raises(InvalidData, match="share no feature column"):
        load_from_serving(dataset(sink, lab.parent), now=NOW)
    raw = dataset(sink, lab.parent).model_dump(by_alias=True, exclude_none=True)
    only = load_from_serving(Dataset.model_validate({**raw, "features": NAMES}), now=NOW)
    assert len(only.frame) == 100 and only.lineage is not None and only.lineage["files"] == 2
    renamed = load_from_serving(Dataset.model_validate({**raw, "features": ["a", "b", "c", "d"]}), now=NOW)
    assert len(renamed.frame) == 50 and renamed.lineage is not None and renamed.lineage["files"] == 1


def test_other_readers_read_versions_with_other_output_types_as_data_contract_says(tmp_path: Path) -> None:
    """docs/data-contract.md: versions whose `prediction` types differ read as one set with DuckDB's
    union_by_name, or pyarrow.dataset given `prediction` as a string."""
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    sink, t = tmp_path / "traffic", NOW - timedelta(minutes=5)
    names = np.asarray(IRIS.target_names)[Y].astype(object)
    capture_version(sink, "1", NAMES, Y.astype(np.int64), range(0, 150, 2), t)
    capture_version(sink, "2", NAMES, names, range(1, 150, 2), t)
    want = {f"v{1 + i % 2}-{i}": (str(Y[i]) if i % 2 == 0 else str(names[i])) for i in range(150)}
    duck = duckdb.sql(
        f"SELECT id, prediction, version FROM read_parquet('{sink}/**/*.parquet', "
        "hive_partitioning = true, union_by_name = true)"
    ).df()
    assert dict(zip(duck["id"], duck["prediction"].astype(str), strict=True)) == want
    [first] = sink.rglob("version=1/**/*.parquet")
    schema = pq.read_schema(first)
    schema = schema.set(schema.get_field_index("prediction"), pa.field("prediction", pa.string()))
    by_arrow = pads.dataset(sink, format="parquet", partitioning="hive", schema=schema).to_table().to_pandas()
    assert dict(zip(by_arrow["id"], by_arrow["prediction"], strict=True)) == want
