"""GitOps: the Argo CD health check (Lua) evaluated by a real Lua 5.1 interpreter (Argo CD runs gopher-lua,
a Lua 5.1) on statuses built with the operator's own condition helpers; the argocd-cm snippet, the
Application and the Flux objects are valid, and docs/gitops.md shows exactly the committed files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from onnxops.api import conditions as cond

ROOT = Path(__file__).resolve().parents[2]
ARGO = ROOT / "deploy" / "argocd"
FLUX = ROOT / "deploy" / "flux"
HEALTH = (ARGO / "health.lua").read_text()
DOC = (ROOT / "docs" / "gitops.md").read_text()
KINDS = ("TrainingJob", "ModelVersion", "InferenceService")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.S)


def test_doc_shows_the_committed_files() -> None:
    assert HEALTH in _blocks("lua")
    yaml_blocks = _blocks("yaml")
    assert (ARGO / "application.yaml").read_text() in yaml_blocks
    assert (FLUX / "kustomization.yaml").read_text() in yaml_blocks


def test_argocd_cm_carries_the_check_for_each_kind() -> None:
    cm = yaml.safe_load((ARGO / "argocd-cm.yaml").read_text())
    assert cm["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    }
    assert cm["data"] == {f"resource.customizations.health.onnxops.dev_{k}": HEALTH for k in KINDS}
    kv = pytest.importorskip("kubernetes_validate")
    kv.validate(cm, "1.30.0", strict=True)


def test_gitops_objects() -> None:
    app = yaml.safe_load((ARGO / "application.yaml").read_text())
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    assert app["spec"]["syncPolicy"]["automated"]["selfHeal"] is True
    flux = list(yaml.safe_load_all((FLUX / "kustomization.yaml").read_text()))
    repo, ks = flux
    assert repo["kind"] == "GitRepository" and ks["kind"] == "Kustomization"
    assert ks["spec"]["sourceRef"] == {"kind": "GitRepository", "name": repo["metadata"]["name"]}
    assert ks["spec"]["wait"] is True  # kstatus health assessment of every applied object


# --- the health check, run ----------------------------------------------------------------------------------

lua51 = pytest.importorskip("lupa.lua51", reason="lupa (dev extra) is not installed")


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(HEALTH)
    return str(hs["status"]), str(hs["message"] or "")


def _obj(kind: str, generation: int = 1, **status: Any) -> dict[str, Any]:
    o: dict[str, Any] = {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "iris", "namespace": "ml", "generation": generation},
    }
    if status:
        o["status"] = status
    return o


def _status(
    generation: int = 1,
    *,
    phase: str | None = None,
    extra: tuple[tuple[str, bool, str, str], ...] = (),
    **summary: Any,
) -> dict[str, Any]:
    conds = cond.summarize([], generation=generation, **summary)
    for type_, value, reason, message in extra:
        conds = cond.set_condition(conds, type_, value, reason, message, generation=generation)
    st: dict[str, Any] = {"observedGeneration": generation, "conditions": conds}
    if phase:
        st["phase"] = phase
    return st


def test_no_status_yet_is_progressing() -> None:
    for kind in KINDS:
        assert health(_obj(kind)) == ("Progressing", "Waiting for the onnxops operator")


def test_new_generation_not_yet_observed_is_progressing() -> None:
    old = _status(1, ready=True, reason=cond.Reason.AVAILABLE, message="serving v1")
    status, message = health(_obj("InferenceService", generation=2, **old))
    assert status == "Progressing"
    assert message == "Waiting for the operator to observe generation 2"


@pytest.mark.parametrize(
    ("kind", "summary", "phase", "expected"),
    [
        (
            "TrainingJob",
            {"ready": False, "reason": cond.Reason.RUNNING, "reconciling": True},
            "Running",
            "Progressing",
        ),
        ("TrainingJob", {"ready": True, "reason": cond.Reason.SUCCEEDED}, "Succeeded", "Healthy"),
        (
            "TrainingJob",
            {"ready": False, "reason": cond.Reason.TRAINING_FAILED, "stalled": True},
            "Failed",
            "Degraded",
        ),
        ("TrainingJob", {"ready": False, "reason": cond.Reason.SUSPENDED}, "Suspended", "Suspended"),
        (
            "ModelVersion",
            {"ready": False, "reason": cond.Reason.VERIFYING, "reconciling": True},
            "Verifying",
            "Progressing",
        ),
        ("ModelVersion", {"ready": True, "reason": cond.Reason.VERIFIED}, "Ready", "Healthy"),
        (
            "ModelVersion",
            {"ready": False, "reason": cond.Reason.VERIFICATION_FAILED, "stalled": True},
            "Failed",
            "Degraded",
        ),
        (
            "InferenceService",
            {"ready": True, "reason": cond.Reason.CANARY, "reconciling": True},
            "Progressing",
            "Progressing",
        ),
        ("InferenceService", {"ready": True, "reason": cond.Reason.AVAILABLE}, "Ready", "Healthy"),
        ("InferenceService", {"ready": False, "reason": cond.Reason.UNAVAILABLE}, "Degraded", "Degraded"),
    ],
)
def test_lifecycle(kind: str, summary: dict[str, Any], phase: str, expected: str) -> None:
    status, message = health(_obj(kind, **_status(phase=phase, message="details", **summary)))
    assert status == expected
    if expected != "Suspended":
        assert message.startswith(summary["reason"])


def test_rollback_holding_is_degraded_and_names_the_versions() -> None:
    msg = "rolled back v2 -> v1: psi 0.41 > 0.2; holds until spec changes"
    st = _status(
        3,
        ready=True,
        reason=cond.Reason.AVAILABLE,
        message=msg,
        stalled=True,
        stalled_reason=cond.Reason.DRIFT,
        extra=((cond.DEGRADED, True, cond.Reason.DRIFT, msg),),
    )
    st["rollback"] = {
        "from": 2,
        "to": 1,
        "reason": "DriftDetected",
        "generation": 3,
        "at": "2026-01-01T00:00:00Z",
    }
    assert health(_obj("InferenceService", generation=3, **st)) == ("Degraded", f"DriftDetected: {msg}")
    # the user commits a new spec: until the operator observes it, the rollback no longer speaks for it
    assert health(_obj("InferenceService", generation=4, **st))[0] == "Progressing"


def test_drift_without_rollback_stays_healthy_with_a_message() -> None:
    st = _status(
        ready=True,
        reason=cond.Reason.AVAILABLE,
        message="serving v2",
        extra=((cond.DRIFT_DETECTED, True, cond.Reason.DRIFT, "psi 0.3 > 0.2"),),
    )
    status, message = health(_obj("InferenceService", **st))
    assert status == "Healthy"
    assert message == "Available: serving v2 (drift detected: DriftDetected: psi 0.3 > 0.2)"


def test_observed_but_without_ready_is_progressing() -> None:
    assert health(_obj("ModelVersion", observedGeneration=1, conditions=[]))[0] == "Progressing"
