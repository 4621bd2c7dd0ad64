"""Champion/challenger gates: score the champion's ONNX artifact on the SAME held-out rows as the new model
and compare (``evaluation.championGates``).

The operator resolves the champion (an alias of the Model, or the version an InferenceService serves) when
it creates the training Job and passes it as ``ONNXOPS_CHAMPION_JSON``: ``{"source", "version", "uri",
"sha256"}``, or ``{"source", "missing": why}`` when there is none yet (then every champion gate passes and
the record says so). The artifact is read through ``onnxops.storage`` and its sha256 verified before ONNX
Runtime sees a byte; a different feature count is a bad spec (exit 2), an unreadable or mismatching
artifact a data error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxops import storage

from . import evaluate, export
from .errors import DataNotFound, InvalidSpec, StorageFailed

ENV = "ONNXOPS_CHAMPION_JSON"
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


@dataclass(frozen=True)
class ChampionGate:
    metric: str
    max_regression: float

    @classmethod
    def from_spec(cls, g: Any) -> ChampionGate:
        return cls(str(g.metric), float(g.max_regression))

    def holds(self, challenger: float, champion: float) -> bool:
        if self.metric in LOWER_IS_BETTER:
            return challenger <= champion + self.max_regression
        return challenger >= champion - self.max_regression

    def as_gate(self) -> evaluate.Gate:
        """For the metric planning (which metrics to compute, which the estimator can give)."""
        return evaluate.Gate(self.metric, ">=", 0.0, f"champion {self.metric}")


@dataclass
class Comparison:
    """What goes into the termination message (``champion``) and from there into both statuses."""

    source: str
    version: int | None = None
    uri: str | None = None
    sha256: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    @property
    def failures(self) -> list[str]:
        return [
            f"champion gate {g['metric']} (max regression {g['maxRegression']:g}) not met: "
            f"{g['metric']}={_fmt(g['challenger'])} vs champion v{self.version} {_fmt(g['champion'])}"
            for g in self.gates
            if not g["passed"]
        ]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "message": self.message, "gates": self.gates}
        if self.version is not None:
            out.update(version=self.version, uri=self.uri, sha256=self.sha256, metrics=self.metrics)
        return out


def _fmt(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.4f}"


def from_env(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    raw = (env if env is not None else os.environ).get(ENV)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidSpec(f"{ENV} is not JSON") from None
    if not isinstance(value, dict) or not isinstance(value.get("source"), str):
        raise InvalidSpec(f"{ENV} needs a source")
    return value


def compare(
    gates: Sequence[ChampionGate],
    challenger: Mapping[str, float],
    champion: Mapping[str, float],
    ref: Mapping[str, Any],
) -> Comparison:
    """Pure: the gates' outcome. No champion (``ref`` has ``missing``): every gate passes and says so."""
    c = Comparison(source=str(ref["source"]))
    if ref.get("missing"):
        c.message = f"no champion yet ({ref['missing']}): the champion gates pass"
        c.gates = [
            {
                "metric": g.metric,
                "maxRegression": g.max_regression,
                "challenger": challenger.get(g.metric),
                "champion": None,
                "passed": True,
            }
            for g in gates
        ]
        return c
    c.version, c.uri, c.sha256 = int(ref["version"]), str(ref["uri"]), str(ref["sha256"])
    c.metrics = dict(champion)
    for g in gates:
        new, old = challenger.get(g.metric), champion.get(g.metric)
        passed = new is not None and old is not None and g.holds(new, old)
        if new is not None and old is None:  # undefined for the champion (e.g. no probabilities): no bar
            passed = True
        c.gates.append(
            {
                "metric": g.metric,
                "maxRegression": g.max_regression,
                "challenger": new,
                "champion": old,
                "passed": passed,
            }
        )
    bad = sum(not g["passed"] for g in c.gates)
    c.message = f"compared with champion v{c.version} ({c.source}) on the same held-out rows: " + (
        f"{bad} gate(s) not met" if bad else "gates met"
    )
    return c


def load_champion(ref: Mapping[str, Any]) -> Any:
    """An ONNX Runtime session of the champion, from verified bytes only."""
    uri, sha = str(ref["uri"]), str(ref["sha256"])
    try:
        blob = storage.read_bytes(uri, sha)
    except storage.DigestMismatch as e:
        raise DataNotFound(f"champion artifact: {e}") from None
    except storage.NotFound as e:
        raise DataNotFound(f"champion artifact not found: {e}") from None
    except storage.StorageError as e:
        raise StorageFailed(f"cannot read the champion artifact: {e}") from None
    try:
        return export.session(blob)
    except Exception as e:  # onnxruntime raises its own types
        raise InvalidSpec(
            f"champion v{ref.get('version')} is not a loadable ONNX model: {str(e)[:300]}"
        ) from None


def score(
    sess: Any,
    X_test: np.ndarray,
    y_test: np.ndarray,
    task: str,
    wanted: Sequence[str],
    classes: Sequence[Any] | None,
    version: Any,
) -> dict[str, float]:
    """The champion's metrics on the held-out rows (its label/probabilities or value outputs)."""
    n_in = sess.get_inputs()[0].shape[-1]
    if isinstance(n_in, int) and n_in != X_test.shape[1]:
        raise InvalidSpec(
            f"evaluation.champion: champion v{version} takes {n_in} features, this training "
            f"has {X_test.shape[1]}: it cannot be scored on the same rows"
        )
    outs = export.run(sess, X_test)
    if task == "classification":
        y_pred = np.asarray(outs[0]).reshape(-1)
        if y_test.dtype.kind in "iu" and y_pred.dtype.kind not in "iu":
            y_pred = y_pred.astype(y_test.dtype)
        elif y_test.dtype.kind not in "iu":
            y_pred = y_pred.astype(str)
            y_test = y_test.astype(str)
        proba = np.asarray(outs[1]) if len(outs) > 1 else None
        if proba is not None and classes is not None and proba.shape[-1] != len(classes):
            proba = None  # another class set: label metrics only
        return evaluate.compute_metrics(task, wanted, y_test, y_pred, proba, classes)
    return evaluate.compute_metrics(task, wanted, y_test, np.asarray(outs[0]).reshape(-1), None, None)


def evaluate_champion(
    gates: Sequence[ChampionGate],
    ref: Mapping[str, Any] | None,
    challenger: dict[str, float],
    *,
    X_test: np.ndarray,
    y_test: np.ndarray,
    task: str,
    classes: Sequence[Any] | None,
) -> Comparison | None:
    """The comparison (None without champion gates)."""
    if not gates:
        return None
    if ref is None:
        return compare(gates, challenger, {}, {"source": "unresolved", "missing": "the operator passed none"})
    if ref.get("missing"):
        return compare(gates, challenger, {}, ref)
    sess = load_champion(ref)
    wanted = [g.metric for g in gates]
    champ = score(sess, X_test, y_test, task, wanted, classes, ref.get("version"))
    return compare(gates, challenger, champ, ref)
