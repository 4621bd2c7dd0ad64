"""Batch ground truth: label files joined with the captured rows give per-version live performance.

``python -m onnxops.trainer.evaluate_labels --sink-uri <capture sink> --labels-uri <label files>
--target <column> [--window 24h] [--now <ISO time>] [--task classification|regression]`` (the trainer
image; the operator runs it as a Job with ``spec.monitoring.performance.source: LabelFiles``).
Organisations that get labels from a warehouse drop label files (docs/data-contract.md: ``id`` and the
target, CSV or Parquet); this reads the captured rows of the window (``id`` → ``version``,
``prediction``), joins them on ``id`` (first capture, last label win, as ``dataset.fromServing`` does) and
computes, per version, the same numbers as the live counters of the feedback endpoint: accuracy and
macro-F1 (classification), MAE and RMSE (regression), with the number of labels. The result is a JSON
summary in the termination-message file (and on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from onnxops.api.v1alpha1.termination import Failure, LabelEvalSuccess, VersionPerformance
from onnxops.drift.performance import PerfCounts, accuracy, macro_f1, mae, rmse
from onnxops.drift.window import duration_seconds

from .errors import EXIT_INTERNAL, EXIT_OK, TrainerError

TASKS = ("classification", "regression")


def infer_task(prediction: pd.Series) -> str:
    """ "regression" when the predictions are numbers that are not all integral (the captured rows keep the
    prediction as text, so that versions with other output types read together), else "classification"."""
    if pd.api.types.is_float_dtype(prediction):
        return "regression"
    values = pd.to_numeric(prediction, errors="coerce")
    if len(values) and values.notna().all() and not (values == values.round()).all():
        return "regression"
    return "classification"


def join_counts(
    captured: pd.DataFrame, labels: pd.DataFrame, target: str, task: str | None = None
) -> tuple[dict[str, PerfCounts], str]:
    """Per version, the counts of the labelled captured rows; and the task (``task``, else inferred from
    the predictions: ``infer_task``)."""
    joined = captured[["id", "version", "prediction"]].merge(labels[["id", target]], on="id", how="inner")
    task = task or infer_task(captured["prediction"])
    regression = task == "regression"
    out: dict[str, PerfCounts] = {}
    for version, g in joined.groupby("version", sort=True):
        pc = PerfCounts(labels=float(len(g)))
        if regression:
            err = (
                pd.to_numeric(g[target], errors="raise").astype(float).to_numpy()
                - pd.to_numeric(g["prediction"], errors="raise").astype(float).to_numpy()
            )
            pc.abs_err, pc.sq_err = float(np.abs(err).sum()), float((err**2).sum())
        else:
            truth = g[target].map(_label)
            pred = g["prediction"].map(_label)
            for (t, p), n in pd.Series(list(zip(truth, pred, strict=True))).value_counts().items():
                pc.confusion[(t, p)] = float(n)
        out[str(version)] = pc
    return out, "regression" if regression else "classification"


def _label(v: Any) -> str:
    """A class label's str form as the server counts it (an integral float read from CSV -> its int)."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


def _version(pc: PerfCounts, task: str) -> VersionPerformance:
    if task == "regression":
        return VersionPerformance(
            labels=pc.n, mae=mae(pc.labels, pc.abs_err), rmse=rmse(pc.labels, pc.sq_err)
        )
    return VersionPerformance(labels=pc.n, accuracy=accuracy(pc.confusion), f1=macro_f1(pc.confusion))


def result(counts: dict[str, PerfCounts], task: str, **extra: Any) -> LabelEvalSuccess:
    """The Job's result (api/v1alpha1/termination.LabelEvalSuccess: the contract the operator reads)."""
    versions = {v: _version(pc, task) for v, pc in counts.items()}
    return LabelEvalSuccess(
        task="regression" if task == "regression" else "classification", versions=versions, **extra
    )


def summary(counts: dict[str, PerfCounts], task: str) -> dict[str, Any]:
    """The result as its JSON object."""
    return result(counts, task).to_dict()


def evaluate(
    sink_uri: str, labels_uri: str, target: str, window: str, now: datetime, task: str | None = None
) -> dict[str, Any]:
    from .errors import InvalidData
    from .from_serving import list_files, read_captured, read_labels, select_files

    start = now - timedelta(seconds=duration_seconds(window))
    files = select_files(list_files(sink_uri), start, now, None)
    if not files:
        raise InvalidData(
            f"no captured traffic in the window {start:%Y-%m-%dT%H:%M:%SZ}.."
            f"{now:%Y-%m-%dT%H:%M:%SZ} at {sink_uri}"
        )
    captured = read_captured(sink_uri, files, start, now)[0]
    if captured.empty:
        raise InvalidData(
            f"no captured rows in the window {start:%Y-%m-%dT%H:%M:%SZ}.."
            f"{now:%Y-%m-%dT%H:%M:%SZ} at {sink_uri}"
        )
    labels, digest = read_labels(labels_uri, target)
    counts, task = join_counts(captured, labels, target, task)
    return result(
        counts,
        task,
        rows_captured=len(captured),
        labels=len(labels),
        labels_digest=digest,
        window_start=f"{start:%Y-%m-%dT%H:%M:%SZ}",
        window_end=f"{now:%Y-%m-%dT%H:%M:%SZ}",
    ).to_dict()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m onnxops.trainer.evaluate_labels",
        description="Per-version live performance from label files joined with the captured traffic.",
    )
    p.add_argument("--sink-uri", required=True, help="the capture sink (InferenceService spec.logging)")
    p.add_argument("--labels-uri", required=True, help="label files (id + target, CSV or Parquet)")
    p.add_argument("--target", required=True, help="the label column")
    p.add_argument("--window", default="24h", help="captured rows of this window (default 24h)")
    p.add_argument("--now", help="the window's end (ISO 8601; default now)")
    p.add_argument(
        "--task", choices=TASKS, help="the model's task (default: inferred from the captured predictions)"
    )
    p.add_argument("--termination-log", help="result file (default $ONNXOPS_TERMINATION_LOG)")
    a = p.parse_args(argv)
    now = datetime.fromisoformat(a.now.replace("Z", "+00:00")) if a.now else datetime.now(UTC)
    try:
        out = evaluate(a.sink_uri, a.labels_uri, a.target, a.window, now, a.task)
        code = EXIT_OK
    except TrainerError as e:
        out, code = Failure(reason=e.reason, message=str(e)[:1000]).to_dict(), e.exit_code
    except Exception as e:  # a bug: say what, exit 1
        msg = f"{type(e).__name__}: {e}"[:1000]
        out, code = Failure(reason="InternalError", message=msg).to_dict(), EXIT_INTERNAL
    text = json.dumps(out, separators=(",", ":"), default=float)
    print(text)
    path = a.termination_log or os.environ.get("ONNXOPS_TERMINATION_LOG")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text[:4000])
    return code


if __name__ == "__main__":
    sys.exit(main())
