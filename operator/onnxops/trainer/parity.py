"""ONNX Runtime vs scikit-learn on the held-out set. Both see the same float32 inputs.

Tolerances (stated in metadata.json under ``parity.tolerance``):
- classifier labels: exactly equal;
- probabilities (predict_proba): |onnx - sklearn| <= 1e-4 absolute;
- decision-function scores and regression values: |onnx - sklearn| <= 1e-5 + 1e-4 * |sklearn|.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import ParityFailed

PROBA_ATOL = 1e-4
VALUE_RTOL = 1e-4
VALUE_ATOL = 1e-5
TOLERANCE = {
    "labels": "exact",
    "probabilities": {"atol": PROBA_ATOL},
    "scoresAndRegression": {"rtol": VALUE_RTOL, "atol": VALUE_ATOL},
}


@dataclass
class ParityReport:
    rows: int
    label_mismatches: int = 0
    max_abs_diff: float = 0.0
    compared: list[str] = field(default_factory=list)
    tolerance: dict[str, Any] = field(default_factory=lambda: dict(TOLERANCE))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {
            "rows": d["rows"],
            "labelMismatches": d["label_mismatches"],
            "maxAbsDiff": d["max_abs_diff"],
            "compared": d["compared"],
            "tolerance": d["tolerance"],
        }


def sklearn_scores(pipeline: Any) -> str | None:
    """Which sklearn method the ONNX ``probabilities`` output mirrors."""
    if hasattr(pipeline, "predict_proba"):
        return "predict_proba"
    if hasattr(pipeline, "decision_function"):
        return "decision_function"
    return None


def _align_scores(onnx_scores: np.ndarray, sk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary decision functions: sklearn gives (n,); ONNX gives (n,1) or (n,2), and the converters differ
    in which column holds sklearn's score (RidgeClassifier: the only one; SGDClassifier: column 1 = df,
    column 0 = -df; SVC: column 0 = df, column 1 = -df). Compare with the column and sign that match."""
    if sk.ndim != 1:
        return onnx_scores, sk
    cols = onnx_scores.reshape(len(sk), -1)
    candidates = [sign * cols[:, c] for c in range(cols.shape[1]) for sign in (1.0, -1.0)]
    best = min(candidates, key=lambda v: float(np.max(np.abs(v - sk))) if len(sk) else 0.0)
    return best, sk


def _value_violations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.abs(a - b) > VALUE_ATOL + VALUE_RTOL * np.abs(b)
    return out


def check_parity(
    pipeline: Any,
    onnx_outputs: list[np.ndarray],
    X: np.ndarray,
    *,
    task: str,
    predicted: np.ndarray | None = None,
    scores: np.ndarray | None = None,
) -> ParityReport:
    """Raise ParityFailed (exit 4) unless ONNX and scikit-learn agree within the tolerances above.

    ``predicted``/``scores``: scikit-learn's ``predict`` and score method (see sklearn_scores) on ``X``
    when the caller already has them (the evaluation does); computed here otherwise."""

    def X64() -> np.ndarray:  # the exact float32 values the ONNX model saw, as scikit-learn's float64
        return X.astype(np.float64)

    rep = ParityReport(rows=len(X))
    if task == "regression":
        sk = np.asarray(pipeline.predict(X64()) if predicted is None else predicted, dtype=np.float64).ravel()
        on = np.asarray(onnx_outputs[0], dtype=np.float64).ravel()
        rep.compared = ["variable"]
        rep.max_abs_diff = float(np.max(np.abs(on - sk))) if len(sk) else 0.0
        bad = _value_violations(on, sk)
        if bad.any():
            i = int(np.argmax(bad))
            raise ParityFailed(
                f"ONNX parity failed on the held-out set: {int(bad.sum())} of {len(sk)} "
                f"predictions differ beyond {VALUE_ATOL} + {VALUE_RTOL}*|y| "
                f"(row {i}: onnx={on[i]:.6g} sklearn={sk[i]:.6g})"
            )
        return rep
    labels_sk = np.asarray(pipeline.predict(X64()) if predicted is None else predicted)
    labels_on = np.asarray(onnx_outputs[0]).ravel()
    same = labels_on.astype(str) == labels_sk.astype(str)
    rep.compared = ["label"]
    rep.label_mismatches = int((~same).sum())
    if rep.label_mismatches:
        i = int(np.argmin(same))
        raise ParityFailed(
            f"ONNX parity failed on the held-out set: {rep.label_mismatches} of {len(X)} "
            f"labels differ (row {i}: onnx={labels_on[i]} sklearn={labels_sk[i]})"
        )
    kind = sklearn_scores(pipeline)
    if kind is None or len(onnx_outputs) < 2:
        return rep
    ref = getattr(pipeline, kind)(X64()) if scores is None or kind != "predict_proba" else scores
    on, sk = _align_scores(np.asarray(onnx_outputs[1], dtype=np.float64), np.asarray(ref, dtype=np.float64))
    if on.shape != sk.shape:
        raise ParityFailed(f"ONNX parity failed: probabilities shape {on.shape} != sklearn {kind} {sk.shape}")
    rep.compared.append(f"probabilities~{kind}")
    rep.max_abs_diff = float(np.max(np.abs(on - sk))) if on.size else 0.0
    if kind == "predict_proba":
        if rep.max_abs_diff > PROBA_ATOL:
            raise ParityFailed(
                f"ONNX parity failed on the held-out set: probabilities differ by up to "
                f"{rep.max_abs_diff:.3g} > {PROBA_ATOL}"
            )
    elif _value_violations(on, sk).any():
        raise ParityFailed(
            f"ONNX parity failed on the held-out set: decision scores differ by up to "
            f"{rep.max_abs_diff:.3g} (tolerance {VALUE_ATOL} + {VALUE_RTOL}*|score|)"
        )
    return rep
