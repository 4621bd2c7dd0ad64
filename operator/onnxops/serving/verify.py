"""``--verify-only``: the ModelVersion verification Job.

Download, check sha256, load, compare the signature with ``--expect-signature-json``, run one smoke
inference, write a JSON result (< 4 KiB) to the termination-message file and exit 0 (ok) or 1.
Result: ``{"ok": true, "sha256", "signature", "smoke": {...}}`` or
``{"ok": false, "reason": "DigestMismatch|ArtifactUnavailable|InvalidModel|SignatureMismatch|SmokeFailed|...",
"message"}``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from onnxops.api.v1alpha1.modelversion import Signature
from onnxops.api.v1alpha1.termination import VerifierFailure, VerifierResult, VerifierSuccess

from .config import ServerConfig
from .model import LoadedModel, LoadError, TensorInfo, load_model

log = logging.getLogger("onnxops.serving")
TERMINATION_LOG = "/dev/termination-log"
MAX_RESULT = 4000


class VerifyError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def parse_expected(raw: str) -> Signature:
    try:
        return Signature.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise VerifyError(
            "InvalidSignature", f"--expect-signature-json is not a valid signature: {exc}"
        ) from None


def _shape_matches(expected: list[int], actual: tuple[int, ...]) -> bool:
    if not actual:  # the graph does not declare a shape
        return True
    return len(expected) == len(actual) and all(
        e == a or (e < 0 and a < 0) for e, a in zip(expected, actual, strict=True)
    )


def signature_problems(expected: Signature, model: LoadedModel) -> list[str]:
    """Differences between the expected signature and the loaded model's, as sentences."""
    problems: list[str] = []
    for kind, want, have in (
        ("input", expected.inputs, model.inputs),
        ("output", expected.outputs, model.outputs),
    ):
        by_name = {t.name: t for t in have}
        if [t.name for t in want] != [t.name for t in have]:
            problems.append(f"{kind}s are {[t.name for t in have]}, expected {[t.name for t in want]}")
        for spec in want:
            t = by_name.get(spec.name)
            if t is None:
                continue
            if t.datatype != spec.datatype:
                problems.append(f"{kind} {spec.name!r} has datatype {t.datatype}, expected {spec.datatype}")
            if not _shape_matches(spec.shape, t.shape):
                problems.append(f"{kind} {spec.name!r} has shape {list(t.shape)}, expected {spec.shape}")
    prof = model.profile
    if expected.feature_names and prof is not None:
        names = [f.name for f in sorted(prof.features, key=lambda f: f.index)]
        if names != expected.feature_names:
            problems.append(f"profile features {names[:10]} differ from the signature's featureNames")
    if (
        expected.class_labels
        and prof is not None
        and prof.prediction is not None
        and prof.prediction.kind == "class"
        and list(prof.prediction.classes) != expected.class_labels
    ):
        problems.append(f"profile classes {prof.prediction.classes[:10]} differ from classLabels")
    return problems


def _smoke_input(t: TensorInfo, model: LoadedModel) -> np.ndarray:
    shape = tuple(1 if d < 0 else d for d in t.shape) or (1,)
    if t.datatype == "BYTES":
        return np.full(shape, "", dtype=object)
    arr = np.zeros(shape, dtype=t.dtype)
    prof = model.profile
    if prof is not None and len(model.inputs) == 1 and arr.ndim == 2 and arr.dtype.kind == "f":
        for f in prof.features:
            if f.kind == "numeric" and f.index < arr.shape[1]:
                arr[:, f.index] = f.mean
    return arr


def smoke(model: LoadedModel) -> dict[str, Any]:
    feeds = {t.name: _smoke_input(t, model) for t in model.inputs}
    try:
        outs = model.run(feeds)
    except Exception as exc:
        raise VerifyError("SmokeFailed", f"smoke inference failed: {str(exc)[:500]}") from None
    for name, arr in zip(model.output_names, outs, strict=True):
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise VerifyError("SmokeFailed", f"smoke inference gave non-finite values in output {name!r}")
    return {"outputs": {n: list(a.shape) for n, a in zip(model.output_names, outs, strict=True)}}


def run_verification(cfg: ServerConfig) -> VerifierSuccess:
    expected = parse_expected(cfg.expect_signature_json) if cfg.expect_signature_json else None
    try:
        model = load_model(cfg)
    except LoadError as exc:
        raise VerifyError(exc.reason, exc.message) from None
    if expected is not None:
        problems = signature_problems(expected, model)
        if problems:
            raise VerifyError("SignatureMismatch", "; ".join(problems))
    return VerifierSuccess(sha256=cfg.sha256, signature=model.signature(), smoke=smoke(model))


def _fit(result: dict[str, Any]) -> str:
    text = json.dumps(result, separators=(",", ":"))
    if len(text) <= MAX_RESULT:
        return text
    if "message" in result:
        result = {**result, "message": result["message"][:1000]}
    result.pop("signature", None)
    return json.dumps(result, separators=(",", ":"))[:MAX_RESULT]


def verify(cfg: ServerConfig) -> int:
    outcome: VerifierResult
    try:
        outcome = run_verification(cfg)
    except VerifyError as exc:
        outcome = VerifierFailure(reason=exc.reason, message=exc.message)
    except Exception as exc:
        outcome = VerifierFailure(reason="VerificationError", message=f"{type(exc).__name__}: {exc}")
    result = outcome.to_dict()  # the contract the operator reads (api/v1alpha1/termination.py)
    path = Path(os.environ.get("ONNXOPS_TERMINATION_LOG") or TERMINATION_LOG)
    try:
        path.write_text(_fit(result))
    except OSError as exc:
        log.error("cannot write the termination message", extra={"fields": {"error": str(exc)}})
    level = logging.INFO if result["ok"] else logging.ERROR
    log.log(
        level,
        "verification " + ("passed" if result["ok"] else "failed"),
        extra={"fields": {k: v for k, v in result.items() if k != "signature"}},
    )
    return 0 if result["ok"] else 1
