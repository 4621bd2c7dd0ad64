"""Held-out metrics per slice (``spec.evaluation.slices``) and the slice gates (pure functions).

A slice is one group of one column of the held-out rows: each distinct value, or each bin of a numeric
column (``bins``: edges, groups ``< e1``, ``[e1, e2)``, ..., ``>= en``; missing values are the group
``missing``). Every slice gets the same metrics as the whole held-out set (``evaluate.compute_metrics``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxops.api.v1alpha1.slices import MAX_MV_SLICES, SLICE_GATE_PATTERN, Slices

from . import evaluate
from .errors import InvalidData, InvalidSpec

LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
MISSING = "missing"
_GATE = re.compile(SLICE_GATE_PATTERN)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float | np.floating) and math.isnan(v))


def group_labels(values: np.ndarray, bins: Sequence[float] | None, *, where: str) -> np.ndarray:
    """The group of every row, as strings (see the module docstring)."""
    if bins:
        try:
            v = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidData(f"{where}.bins: the column is not numeric, so it cannot be binned") from None
        edges = sorted({float(e) for e in bins})
        names = (
            [f"< {_fmt(edges[0])}"]
            + [f"[{_fmt(a)}, {_fmt(b)})" for a, b in itertools.pairwise(edges)]
            + [f">= {_fmt(edges[-1])}"]
        )
        idx = np.searchsorted(np.asarray(edges), v, side="right")
        out = np.asarray(names, dtype=object)[idx]
        out[np.isnan(v)] = MISSING
        return out

    def label(x: Any) -> str:
        if _is_missing(x):
            return MISSING
        if isinstance(x, float | np.floating) and float(x).is_integer():
            return str(int(x))
        if isinstance(x, float | np.floating):
            return _fmt(float(x))
        return str(x)

    return np.asarray([label(x) for x in values], dtype=object)


def group_order(labels: np.ndarray, bins: Sequence[float] | None) -> list[str]:
    """Groups present, in bin order (binned) or sorted by value (numbers numerically)."""
    present = set(labels.tolist())
    if bins:
        edges = sorted({float(e) for e in bins})
        names = (
            [f"< {_fmt(edges[0])}"]
            + [f"[{_fmt(a)}, {_fmt(b)})" for a, b in itertools.pairwise(edges)]
            + [f">= {_fmt(edges[-1])}", MISSING]
        )
        return [n for n in names if n in present]

    def key(s: str) -> tuple[int, float, str]:
        try:
            return (0, float(s), s)
        except ValueError:
            return (1 if s != MISSING else 2, 0.0, s)

    return sorted(present, key=key)


@dataclass(frozen=True)
class SliceGate:
    metric: str
    gap: bool
    op: str
    value: float
    text: str

    def holds(self, actual: float) -> bool:
        return evaluate.Gate(self.metric, self.op, self.value, self.text).holds(actual)


def parse_slice_gate(text: str) -> SliceGate:
    if not _GATE.match(text.strip()):
        raise InvalidSpec(f"evaluation.slices.gates: {text!r} is not '<metric>[_gap] <op> <number>'")
    m = re.match(r"^\s*([a-z_0-9]+?)(_gap)?\s*(>=|<=|>|<)\s*(\S+)\s*$", text)
    assert m is not None
    metric, gap, op, value = m.group(1), bool(m.group(2)), m.group(3), float(m.group(4))
    return SliceGate(metric, gap, op, value, f"{metric}{'_gap' if gap else ''} {op} {m.group(4)}")


def plan(spec: Slices, task: str, has_proba: bool, class_name: str) -> tuple[list[SliceGate], list[str]]:
    """Gates and the metrics to compute per slice; errors before any data is read."""
    gates = [parse_slice_gate(g) for g in spec.gates or []]
    try:
        wanted = evaluate.plan_metrics(
            task,
            has_proba,
            class_name,
            list(spec.metrics or ["accuracy" if task == "classification" else "rmse"]),
            [evaluate.Gate(g.metric, g.op, g.value, g.text) for g in gates],
        )
    except InvalidSpec as e:
        raise InvalidSpec(e.message.replace("evaluation.", "evaluation.slices.", 1)) from None
    return gates, wanted


def gap(metric: str, overall: float, value: float) -> float:
    """How much worse the slice is than the whole held-out set (positive: worse)."""
    return value - overall if metric in LOWER_IS_BETTER else overall - value


def slice_metrics(
    spec: Slices,
    columns: dict[str, np.ndarray],
    wanted: Sequence[str],
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    classes: Sequence[Any] | None,
) -> list[dict[str, Any]]:
    """[{feature, group, rows, metrics}] for every group of every column, in column then group order."""
    out: list[dict[str, Any]] = []
    for i, f in enumerate(spec.features):
        where = f"evaluation.slices.features[{i}]"
        labels = group_labels(columns[f.feature], f.bins, where=where)
        order = group_order(labels, f.bins)
        if len(order) > spec.max_groups:
            raise InvalidData(
                f"{where}: column {f.feature!r} has {len(order)} groups in the held-out rows, more "
                f"than maxGroups {spec.max_groups}; give bins, or raise maxGroups"
            )
        for g in order:
            mask = labels == g
            m = evaluate.compute_metrics(
                task, wanted, y_true[mask], y_pred[mask], proba[mask] if proba is not None else None, classes
            )
            out.append({"feature": f.feature, "group": g, "rows": int(mask.sum()), "metrics": m})
    return out


def failed_gates(
    gates: Sequence[SliceGate], results: Sequence[dict[str, Any]], overall: dict[str, float], min_rows: int
) -> list[str]:
    """One message per failed gate, naming its worst slice with the numbers."""
    out = []
    for g in gates:
        bad: list[tuple[float, dict[str, Any], float]] = []  # (how bad, slice, value)
        for r in results:
            if r["rows"] < min_rows or g.metric not in r["metrics"]:
                continue
            v = r["metrics"][g.metric]
            if g.gap:
                if g.metric not in overall:
                    continue
                d = gap(g.metric, overall[g.metric], v)
                if not g.holds(d):
                    bad.append((d, r, v))
            elif not g.holds(v):
                bad.append((gap(g.metric, 0.0, v), r, v))
        if not bad:
            continue
        _, r, v = max(bad, key=lambda t: t[0])
        what = f"slice {r['feature']} '{r['group']}' has {g.metric}={v:.4f}"
        if g.gap:
            what += f" (overall {overall[g.metric]:.4f}, gap {gap(g.metric, overall[g.metric], v):.4f})"
        count = f"{len(bad)} slice{'s' if len(bad) > 1 else ''}"
        out.append(f"slice gate '{g.text}' not met by {count}; worst: {what}, {r['rows']} held-out rows")
    return out


def _round(v: float) -> float:
    return float(f"{v:.6g}")


def for_model_version(results: Sequence[dict[str, Any]], wanted: Sequence[str]) -> list[dict[str, Any]]:
    """At most MAX_MV_SLICES rows: each column's groups worst first (by the first metric), taken round-robin
    across columns so every column shows its worst groups; values to 6 significant digits."""
    first = wanted[0] if wanted else None
    by_feature: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_feature.setdefault(r["feature"], []).append(r)
    for rows in by_feature.values():
        if first is not None:
            rows.sort(
                key=lambda r: -gap(first, 0.0, r["metrics"][first]) if first in r["metrics"] else math.inf
            )
    queues = [list(rows) for rows in by_feature.values()]
    picked: list[dict[str, Any]] = []
    while len(picked) < MAX_MV_SLICES and any(queues):
        for q in queues:
            if q and len(picked) < MAX_MV_SLICES:
                picked.append(q.pop(0))
    return [
        {**r, "group": r["group"][:128], "metrics": {k: _round(v) for k, v in r["metrics"].items()}}
        for r in picked
    ]
