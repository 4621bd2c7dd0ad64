"""docs/troubleshooting.md lists every reason the code can put in a condition, event or result: the
Reason constants of api/conditions.py, the trainer's error reasons, the reconcile errors, and the
verification / model-loading detail reasons (collected from the code, not from the page)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from onnxops.api.conditions import Reason
from onnxops.reconcile import errors as reconcile_errors
from onnxops.reconcile import modelversion, trainingjob
from onnxops.trainer import errors as trainer_errors

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "troubleshooting.md").read_text()
SERVING = ROOT / "operator" / "onnxops" / "serving"


def _listed() -> set[str]:
    """Reasons in a table's first column, and in the "Normal states: ..." paragraphs."""
    out = set()
    for line in DOC.splitlines():
        if line.startswith("| `"):
            out |= set(re.findall(r"`([A-Za-z]+)`", line.split(" | ")[0]))
    for para in DOC.split("\n\n"):
        if para.startswith("Normal states:"):
            out |= set(re.findall(r"`([A-Z][A-Za-z]+)`", para))
    return out


def _error_class_reasons() -> set[str]:
    return {
        c.reason
        for c in vars(trainer_errors).values()
        if isinstance(c, type) and issubclass(c, trainer_errors.TrainerError)
    }


def _serving_reasons() -> set[str]:
    """First string argument of every LoadError(...) / VerifyError(...) / set_failed(...) call in serving/."""
    found = set()
    for path in SERVING.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            # a loader returning (reason, message) instead of raising (serving/server.py's retry loop)
            if (
                isinstance(node, ast.Return)
                and isinstance(node.value, ast.Tuple)
                and len(node.value.elts) == 2
                and isinstance(node.value.elts[0], ast.Constant)
                and isinstance(node.value.elts[0].value, str)
                and node.value.elts[0].value[:1].isupper()
            ):
                found.add(node.value.elts[0].value)
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if (
                name in ("LoadError", "VerifyError", "set_failed")
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return found


def test_every_condition_reason_is_documented() -> None:
    reasons = {v for k, v in vars(Reason).items() if k.isupper() and isinstance(v, str)}
    assert len(reasons) > 20
    assert reasons - _listed() == set()


def test_every_trainer_and_reconcile_reason_is_documented() -> None:
    trainer = _error_class_reasons() | {"InternalError"}
    assert {"InvalidData", "DataError", "GateNotMet", "ParityFailed"} <= trainer
    others = {
        reconcile_errors.RECONCILE_ERROR,
        reconcile_errors.NAME_CONFLICT,
        modelversion.BLOCKED,
        trainingjob.FOREIGN_JOB,
    }
    assert (trainer | others) - _listed() == set()


def test_every_verification_reason_is_documented() -> None:
    serving = _serving_reasons() | {"VerificationError"}
    assert {"DigestMismatch", "SmokeFailed", "SignatureMismatch", "LoadFailed"} <= serving
    assert serving - _listed() == set()


def test_each_failure_row_has_a_cause_and_a_fix() -> None:
    rows = [ln for ln in DOC.splitlines() if ln.startswith("| `")]
    assert len(rows) > 30
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 3 and all(len(c) > 10 for c in cells[1:]), row
