"""Release governance end to end (issue 14): the real operator (kopf) on the local runtime with real ONNX
Runtime servers. Approval required -> a new version waits unserved with a clear condition; `onnxops approve`
-> the canary starts; `onnxops revoke` -> the service rolls back to the approved version; moving an alias
(a Git-style patch of the Model) -> rollout, an alias to a missing version changes nothing; the retention
archives the oldest unserved versions; the Model is created at the first registration."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _operator_env import Cluster, local_cluster, operator

from onnxops import release

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
ROLLOUT = {"steps": [{"weight": 50, "pause": "2s"}], "bakeTime": "2s", "progressDeadline": "90s"}


@pytest.fixture(scope="module")
def onnx_model() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    x = x.astype("float32")
    model = LogisticRegression(max_iter=300).fit(x, y)
    return bytes(to_onnx(model, x[:1], options={id(model): {"zipmap": False}}).SerializeToString())


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    work = tmp_path_factory.mktemp("governance")
    with (
        local_cluster(work / "rt") as c,
        operator(
            c,
            {
                "ONNXOPS_METRICS_PROVIDER": "_fake_metrics:provider",
                "ONNXOPS_FAKE_METRICS": str(work / "metrics.json"),
            },
        ),
    ):
        yield c, work


def add_version(c: Cluster, work: Path, blob: bytes, model: str, v: int) -> None:
    path = work / model / str(v) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    c.create(
        {
            "apiVersion": "onnxops.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": f"{model}-v{v}"},
            "spec": {
                "model": model,
                "version": v,
                "artifact": {"uri": f"file://{path}", "sha256": hashlib.sha256(blob).hexdigest()},
            },
        }
    )


def wait_ready(c: Cluster, model: str, *versions: int) -> None:
    for v in versions:
        st = c.wait_status(
            "ModelVersion", f"{model}-v{v}", lambda s: s.get("phase") in ("Ready", "Failed"), timeout=90
        )
        assert st["status"]["phase"] == "Ready", st["status"]


def isvc(name: str, version: int | str) -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"model": name, "version": version, "replicas": 1, "rollout": ROLLOUT},
    }


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def serving(version: int) -> Any:
    return lambda s: (
        s.get("stableVersion") == version
        and s.get("canaryVersion") is None
        and cond(s, "Ready").get("status") == "True"
    )


def kubectl_get(c: Cluster, *args: str) -> list[dict[str, str]]:
    """`kubectl get ...` rows as {COLUMN: cell} (cells cut at the header's column starts)."""
    kubectl = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    if not Path(kubectl).exists():
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        [kubectl, "--kubeconfig", c.kubeconfig, "get", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    header, *lines = out.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    ends = [*starts[1:], None]
    cells = [[ln[a:b].strip() for a, b in zip(starts, ends, strict=True)] for ln in lines]
    return [dict(zip(header.split(), row, strict=True)) for row in cells]


def cli(c: Cluster, main: Any, *args: str) -> int:
    return int(main([*args, "--kubeconfig", c.kubeconfig]))


def test_approval_gates_latest_and_revoke_rolls_back(
    env: tuple[Cluster, Path], onnx_model: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    c, work = env
    c.create(
        {
            "apiVersion": "onnxops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "gov"},
            "spec": {
                "releasePolicy": {"requireApproval": True},
                "approvals": [{"version": 1, "by": "alice", "reason": "initial review"}],
            },
        }
    )
    for v in (1, 2):
        add_version(c, work, onnx_model, "gov", v)
    wait_ready(c, "gov", 1, 2)
    c.create(isvc("gov", "latest"))
    # v2 is the newest Ready version, but only v1 is approved: v1 is served, v2 waits with a clear condition
    st = c.wait_status(
        "InferenceService",
        "gov",
        lambda s: serving(1)(s) and cond(s, "ReleaseBlocked").get("status") == "True",
        timeout=90,
    )["status"]
    blocked = cond(st, "ReleaseBlocked")
    assert blocked["reason"] == "AwaitingApproval" and "v2 awaits approval" in blocked["message"], blocked
    assert not (c.get("ModelVersion", "gov-v2") or {}).get("status", {}).get("servedBy")
    assert c.get("Deployment", "gov-v2", api="apps/v1") is None
    mv1 = c.wait_status("ModelVersion", "gov-v1", lambda s: s.get("approved") is True)["status"]
    assert mv1["approvedBy"] == "alice"

    # approve (the CLI, as the kubeconfig's user) -> the canary starts, then v2 is promoted
    assert cli(c, release.approve_main, "gov", "2", "--reason", "review MR-7") == 0
    assert "gov v2 approved by" in capsys.readouterr().out
    assert cli(c, release.approve_main, "gov", "2", "--reason", "again") == 0  # idempotent
    assert "already approved" in capsys.readouterr().out
    approvals = c.get("Model", "gov")["spec"]["approvals"]  # type: ignore[index]
    assert [(a["version"], a["reason"]) for a in approvals] == [(1, "initial review"), (2, "review MR-7")]
    assert approvals[1]["by"] and approvals[1]["at"]
    c.wait_status("InferenceService", "gov", lambda s: s.get("canaryVersion") == 2, timeout=60)
    st = c.wait_status("InferenceService", "gov", serving(2), timeout=120)["status"]
    assert not cond(st, "ReleaseBlocked")

    # revoke v2's approval -> latest is v1 again: rolled out with the usual canary
    assert cli(c, release.revoke_main, "gov", "2") == 0
    c.wait_status("InferenceService", "gov", lambda s: s.get("canaryVersion") == 1, timeout=60)
    st = c.wait_status("InferenceService", "gov", serving(1), timeout=120)["status"]
    assert cond(st, "ReleaseBlocked").get("reason") == "AwaitingApproval"
    assert c.wait_status("ModelVersion", "gov-v2", lambda s: s.get("approved") is None)


def test_alias_move_rolls_out_and_a_bad_alias_changes_nothing(
    env: tuple[Cluster, Path], onnx_model: bytes
) -> None:
    c, work = env
    c.create(
        {
            "apiVersion": "onnxops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "ali"},
            "spec": {"aliases": {"production": 1}},
        }
    )
    for v in (1, 2):
        add_version(c, work, onnx_model, "ali", v)
    wait_ready(c, "ali", 1, 2)
    c.create(isvc("ali", "@production"))
    c.wait_status("InferenceService", "ali", serving(1), timeout=90)
    # a Git commit pointing the alias at a version that does not exist: nothing served changes, both the
    # service and the Model say why, naming the field
    c.patch("Model", "ali", {"spec": {"aliases": {"production": 9}}})
    st = c.wait_status(
        "InferenceService", "ali", lambda s: cond(s, "ReleaseBlocked").get("reason") == "AliasNotReady"
    )["status"]
    assert st["stableVersion"] == 1 and st.get("canaryVersion") is None
    assert "alias 'production' of Model ali names v9" in cond(st, "ReleaseBlocked")["message"]
    m = c.wait_status("Model", "ali", lambda s: cond(s, "Ready").get("status") == "False")["status"]
    assert m["message"].startswith("spec.aliases.production: no ModelVersion v9"), m
    # the alias moved to v2 (in Git, or `onnxops alias set ali production 2`): canary, then promotion
    c.patch("Model", "ali", {"spec": {"aliases": {"production": 2}}})
    c.wait_status("InferenceService", "ali", lambda s: s.get("canaryVersion") == 2, timeout=60)
    st = c.wait_status("InferenceService", "ali", serving(2), timeout=120)["status"]
    assert not cond(st, "ReleaseBlocked")
    assert c.wait_status("ModelVersion", "ali-v2", lambda s: s.get("aliases") == ["production"])


def test_model_is_created_and_retention_archives_the_oldest_unserved(
    env: tuple[Cluster, Path], onnx_model: bytes
) -> None:
    c, work = env
    for v in (1, 2, 3, 4):
        add_version(c, work, onnx_model, "ret", v)
    wait_ready(c, "ret", 1, 2, 3, 4)
    # created at the first registration (an existing manifest set keeps working)
    c.wait("Model ret", lambda: c.get("Model", "ret"), timeout=30)
    c.patch(
        "Model",
        "ret",
        {
            "spec": {
                "retention": {"keepUnserved": 1},
                "aliases": {"staging": 4},
                "approvals": [{"version": 4, "by": "bob", "reason": "ok"}],
            }
        },
    )
    # v4 is named by an alias (kept, not counted), v3 is the newest unserved one kept; v1, v2 archived
    m = c.wait_status("Model", "ret", lambda s: s.get("archivedVersions") == [1, 2])["status"]
    assert m["latestVersion"] == 4
    for v in (1, 2):
        assert c.wait_status("ModelVersion", f"ret-v{v}", lambda s: s.get("archived") is True)
    for v in (3, 4):
        assert not (c.get("ModelVersion", f"ret-v{v}") or {}).get("status", {}).get("archived")
    # kubectl get shows the archive state, the aliases and the approvals (printer columns)
    rows = {r["NAME"]: r for r in kubectl_get(c, "mv")}
    assert rows["ret-v1"]["ARCHIVED"] == "true" and rows["ret-v3"]["ARCHIVED"] == ""
    c.wait_status("ModelVersion", "ret-v4", lambda s: s.get("approved") is True)
    rows = {r["NAME"]: r for r in kubectl_get(c, "mv")}
    assert rows["ret-v4"]["APPROVED"] == "true" and rows["ret-v1"]["APPROVED"] == ""
    models = {r["NAME"]: r for r in kubectl_get(c, "omodel")}
    assert models["ret"]["LATEST"] == "4" and "staging" in models["ret"]["ALIASES"], models["ret"]
    assert models["ret"]["APPROVED"] == "[4]", models["ret"]
    # an archived version is never served, even pinned
    c.create(isvc("ret", 2))
    st = c.wait_status("InferenceService", "ret", lambda s: s.get("reason") == "VersionArchived")["status"]
    assert st.get("stableVersion") is None and st["phase"] == "Pending"


def training(name: str, store: Path, estimator: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "model": "champ",
            "dataset": {"uri": "sklearn://iris"},
            "estimator": estimator,
            "output": {"uri": f"file://{store}"},
            "backoffLimit": 0,
            "evaluation": evaluation,
        },
    }


def finished(s: dict[str, Any]) -> bool:
    return s.get("phase") == "Failed" or (s.get("phase") == "Succeeded" and bool(s.get("modelVersion")))


def test_champion_gates_pass_and_fail_with_both_scores(env: tuple[Cluster, Path]) -> None:
    c, work = env
    store = work / "store"
    gated = {
        "metrics": ["accuracy"],
        "champion": {"alias": "production"},
        "championGates": [{"metric": "accuracy", "maxRegression": 0.01}],
    }
    strong = {"className": "LogisticRegression", "params": {"max_iter": 300}}
    weak = {"className": "DecisionTreeClassifier", "params": {"max_depth": 1}}
    # a gate naming a service that does not exist: no Job, the TrainingJob names the field
    c.create(training("champ-bad", store, strong, {**gated, "champion": {"inferenceService": "nope"}}))
    st = c.wait_status("TrainingJob", "champ-bad", lambda s: "inferenceService" in (s.get("message") or ""))
    assert st["status"]["message"].startswith("spec.evaluation.champion.inferenceService: InferenceService")
    assert c.get("Job", "champ-bad-train", api="batch/v1") is None  # nothing ran
    # no champion yet (the alias is not set): the gate passes and says so
    c.create(training("champ-1", store, strong, gated))
    st = c.wait_status("TrainingJob", "champ-1", finished, timeout=120)["status"]
    assert st["phase"] == "Succeeded", st
    assert st["champion"]["message"].startswith("no champion yet (alias production is not set")
    # the operator creates the Model at the new ModelVersion's first reconcile, which may follow the
    # TrainingJob's success by a moment
    c.wait("Model champ", lambda: c.get("Model", "champ"), 30)
    c.patch("Model", "champ", {"spec": {"aliases": {"production": 1}}})
    wait_ready(c, "champ", 1)
    # a weaker challenger: refused, both scores in status
    c.create(training("champ-weak", store, weak, gated))
    st = c.wait_status("TrainingJob", "champ-weak", finished, timeout=120)["status"]
    assert st["phase"] == "Failed" and "GateNotMet" in st["message"], st
    [g] = st["champion"]["gates"]
    assert st["champion"]["version"] == 1 and not g["passed"]
    assert g["champion"] > g["challenger"] + 0.01 and g["challenger"] == st["metrics"]["accuracy"]
    # as good as the champion: registered, the new ModelVersion records both scores
    c.create(training("champ-2", store, strong, gated))
    st = c.wait_status("TrainingJob", "champ-2", finished, timeout=120)["status"]
    assert st["phase"] == "Succeeded", st
    mv = c.get("ModelVersion", st["modelVersion"])
    assert mv is not None
    [g] = mv["spec"]["champion"]["gates"]
    assert g["passed"] and g["champion"] == pytest.approx(g["challenger"])  # same estimator, same rows
    assert mv["spec"]["champion"]["sha256"] == c.get("ModelVersion", "champ-v1")["spec"]["artifact"]["sha256"]  # type: ignore[index]
