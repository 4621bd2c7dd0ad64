"""Seeded split, held-out metrics and promotion gates (pure functions)."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxops.api.v1alpha1.trainingjob import GATE_PATTERN

from .errors import InvalidData, InvalidSpec

CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
PROBA_METRICS = ("roc_auc", "log_loss")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_GATE = re.compile(GATE_PATTERN)


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    test: np.ndarray
    stratified: bool


def split_indices(y: np.ndarray, *, test_fraction: float, seed: int, classification: bool) -> Split:
    """Seeded train/test split of row indices; stratified for classification when every class can be."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if classification:
        try:
            tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
            return Split(np.sort(tr), np.sort(te), True)
        except ValueError:
            pass  # a class too small to stratify: plain split below
    try:
        tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed)
    except ValueError as e:
        raise InvalidData(f"cannot split {len(y)} rows with testFraction={test_fraction}: {e}") from None
    return Split(np.sort(tr), np.sort(te), False)


def applicable_metrics(task: str, has_proba: bool) -> tuple[str, ...]:
    if task == "regression":
        return REGRESSION_METRICS
    return tuple(m for m in CLASSIFICATION_METRICS if has_proba or m not in PROBA_METRICS)


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str
    value: float
    text: str

    def holds(self, actual: float) -> bool:
        return _OPS[self.op](actual, self.value)


def parse_gate(text: str) -> Gate:
    if not _GATE.match(text.strip()):
        raise InvalidSpec(f"evaluation.gates: {text!r} is not '<metric> <op> <number>'")
    m = re.match(r"^\s*([a-z_0-9]+)\s*(>=|<=|>|<)\s*(\S+)\s*$", text)
    assert m is not None
    return Gate(m.group(1), m.group(2), float(m.group(3)), " ".join(m.groups()))


def plan_metrics(
    task: str, has_proba: bool, class_name: str, requested: Sequence[str] | None, gates: Sequence[Gate]
) -> list[str]:
    """Metrics to compute: requested (default: all that apply) plus those the gates need; errors early."""
    ok = applicable_metrics(task, has_proba)
    why = {
        m: (
            f"not a {task} metric"
            if m not in (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
            else f"needs predict_proba, which {class_name} does not have with these params"
        )
        for m in (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)
        if m not in ok
    }
    for m in requested or ():
        if m in why:
            raise InvalidSpec(f"evaluation.metrics: {m} is {why[m]}")
    for g in gates:
        if g.metric in why:
            raise InvalidSpec(f"evaluation.gates: gate '{g.text}' uses {g.metric}, which is {why[g.metric]}")
    wanted = list(requested) if requested else list(ok)
    return wanted + [g.metric for g in gates if g.metric not in wanted]


def compute_metrics(
    task: str,
    wanted: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Held-out metrics. roc_auc is one-vs-rest for multiclass; a metric undefined on this test set
    (e.g. roc_auc with one class present) is left out."""
    from sklearn import metrics as skm

    out: dict[str, float] = {}
    for m in wanted:
        try:
            if m == "accuracy":
                v = skm.accuracy_score(y_true, y_pred)
            elif m == "f1_macro":
                v = skm.f1_score(y_true, y_pred, average="macro")
            elif m == "roc_auc" and proba is not None:
                v = (
                    skm.roc_auc_score(y_true, proba[:, 1])
                    if proba.shape[1] == 2
                    else skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=list(classes or []))
                )
            elif m == "log_loss" and proba is not None:
                v = skm.log_loss(y_true, proba, labels=list(classes or []))
            elif m == "rmse":
                v = math.sqrt(skm.mean_squared_error(y_true, y_pred))
            elif m == "mae":
                v = skm.mean_absolute_error(y_true, y_pred)
            elif m == "r2":
                v = skm.r2_score(y_true, y_pred)
            else:
                continue
        except ValueError:
            continue
        if math.isfinite(float(v)):
            out[m] = float(v)
    return out


def failed_gates(gates: Sequence[Gate], metrics: dict[str, float]) -> list[str]:
    """Messages for the gates that do not hold, e.g. "gate 'accuracy >= 0.99' not met: accuracy=0.9667"."""
    out = []
    for g in gates:
        if g.metric not in metrics:
            out.append(f"gate '{g.text}' not met: {g.metric} is undefined on the held-out set")
        elif not g.holds(metrics[g.metric]):
            out.append(f"gate '{g.text}' not met: {g.metric}={metrics[g.metric]:.4f}")
    return out
