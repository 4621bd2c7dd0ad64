"""``spec.evaluation.fairness``: fairlearn's group fairness metrics on the held-out rows, and their gates.

The favourable outcome is one class (``positiveLabel``; for two classes by default the larger label, as
scikit-learn's binary metrics do): labels and predictions become 1 for it and 0 otherwise, and fairlearn's
``demographic_parity_difference`` / ``_ratio`` and ``equalized_odds_difference`` / ``_ratio`` compare the
groups of the sensitive column (grouped as in ``slicing.group_labels``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxops.api.v1alpha1.slices import FAIRNESS_GATE_PATTERN, FAIRNESS_METRICS, Fairness

from . import evaluate, slicing
from .errors import InvalidData, InvalidSpec

MAX_GROUPS = 20
_GATE = re.compile(FAIRNESS_GATE_PATTERN)


@dataclass(frozen=True)
class FairnessGate:
    metric: str
    op: str
    value: float
    text: str

    def holds(self, actual: float) -> bool:
        return evaluate.Gate(self.metric, self.op, self.value, self.text).holds(actual)


def parse_gate(text: str) -> FairnessGate:
    if not _GATE.match(text.strip()):
        raise InvalidSpec(f"evaluation.fairness.gates: {text!r} is not '<fairness metric> <op> <number>'")
    m = re.match(r"^\s*([a-z_]+)\s*(>=|<=|>|<)\s*(\S+)\s*$", text)
    assert m is not None
    return FairnessGate(m.group(1), m.group(2), float(m.group(3)), " ".join(m.groups()))


def plan(spec: Fairness, task: str) -> list[FairnessGate]:
    if task != "classification":
        raise InvalidSpec("evaluation.fairness: fairness metrics need a classifier")
    return [parse_gate(g) for g in spec.gates or []]


def positive_label(spec: Fairness, classes: Sequence[Any]) -> Any:
    names = [str(c) for c in classes]
    if spec.positive_label is not None:
        if spec.positive_label not in names:
            raise InvalidSpec(
                f"evaluation.fairness.positiveLabel: {spec.positive_label!r} is not a class; "
                f"classes: {', '.join(names[:20])}"
            )
        return classes[names.index(spec.positive_label)]
    if len(classes) != 2:
        raise InvalidSpec(
            f"evaluation.fairness.positiveLabel: required for a target with {len(classes)} "
            f"classes ({', '.join(names[:20])})"
        )
    return classes[1]


def compute(
    spec: Fairness, column: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[Any]
) -> dict[str, Any]:
    """{sensitiveFeature, positiveLabel, metrics, selectionRates} from fairlearn."""
    from fairlearn import metrics as fm

    groups = slicing.group_labels(column, spec.bins, where="evaluation.fairness")
    present = slicing.group_order(groups, spec.bins)
    if len(present) > MAX_GROUPS:
        raise InvalidData(
            f"evaluation.fairness.sensitiveFeature: column {spec.sensitive_feature!r} has "
            f"{len(present)} groups in the held-out rows, more than {MAX_GROUPS}; give bins"
        )
    pos = positive_label(spec, classes)
    t = (np.asarray(y_true).astype(str) == str(pos)).astype(int)
    p = (np.asarray(y_pred).astype(str) == str(pos)).astype(int)
    functions = {
        "demographic_parity_difference": fm.demographic_parity_difference,
        "demographic_parity_ratio": fm.demographic_parity_ratio,
        "equalized_odds_difference": fm.equalized_odds_difference,
        "equalized_odds_ratio": fm.equalized_odds_ratio,
    }
    values: dict[str, float] = {}
    for name in FAIRNESS_METRICS:
        v = float(functions[name](t, p, sensitive_features=groups))
        if math.isfinite(v):
            values[name] = v
    frame = fm.MetricFrame(metrics=fm.selection_rate, y_true=t, y_pred=p, sensitive_features=groups)
    rates = {str(g): float(r) for g, r in frame.by_group.items()}
    return {
        "sensitiveFeature": spec.sensitive_feature,
        "positiveLabel": str(pos),
        "metrics": values,
        "selectionRates": {g: rates[g] for g in present if g in rates},
    }


def failed_gates(gates: Sequence[FairnessGate], result: dict[str, Any]) -> list[str]:
    out = []
    rates = ", ".join(f"{g}={r:.4f}" for g, r in result["selectionRates"].items())
    where = f"on {result['sensitiveFeature']} (positive label {result['positiveLabel']})"
    for g in gates:
        v = result["metrics"].get(g.metric)
        if v is None:
            out.append(
                f"fairness gate '{g.text}' not met {where}: {g.metric} is undefined on the held-out rows"
            )
        elif not g.holds(v):
            out.append(
                f"fairness gate '{g.text}' not met {where}: {g.metric}={v:.4f}; selection rates {rates}"
            )
    return out
