"""The shadow phase end to end (issue 15): the real operator (kopf) on the local runtime with real ONNX
Runtime servers and live client traffic. The stable pods mirror every answered request to the shadow's
Service (here through the runtime's service gateway, standing in for cluster DNS). A version that disagrees
with the stable one is aborted from the mirror's own metrics before it gets any weight, and no client request
fails; a good version passes its shadow and goes on into the canary steps. The shadow's start, abort and pass
reach a local webhook receiver as the existing notification events."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _operator_env import Cluster, local_cluster, operator
from test_operator_release_control import Receiver, add_version, cond, isvc, serving
from test_operator_rollout import Traffic

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _iris_model(shift: int) -> bytes:
    """Logistic regression on iris; ``shift`` rotates the labels (a model that disagrees on every row)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    model = LogisticRegression(max_iter=300).fit(x, (y + shift) % 3)
    return bytes(to_onnx(model, x[:1], options={id(model): {"zipmap": False}}).SerializeToString())


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    t = threading.Thread(target=r.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        yield r
    finally:
        r.shutdown()
        r.server_close()
        t.join(timeout=5)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[tuple[Cluster, Path]]:
    work = tmp_path_factory.mktemp("shadow")
    with local_cluster(work / "rt") as c:
        gateway = c.rt.service_gateway()
        sinks = json.dumps([{"name": "ops", "urlEnv": "ONNXOPS_NOTIFY_URL_0"}])
        with operator(
            c,
            {
                "ONNXOPS_SHADOW_URL_TEMPLATE": gateway + "/{namespace}/{service}/{port}",
                "ONNXOPS_NOTIFY_SINKS": sinks,
                "ONNXOPS_NOTIFY_URL_0": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
            },
        ):
            yield c, work


def test_a_bad_shadow_is_aborted_before_any_weight_and_a_good_one_passes(
    env: tuple[Cluster, Path], receiver: Receiver
) -> None:
    c, work = env
    good, bad = _iris_model(0), _iris_model(1)
    for v, blob in ((1, good), (2, bad), (3, good)):
        add_version(c, work, blob, "shad", v)
    rollout: dict[str, Any] = {
        "shadow": {"duration": "6s", "minRequests": 20, "minAgreement": 0.9},
        "steps": [{"weight": 50, "pause": "1s"}],
        "analysis": {"enabled": False},  # the canary steps are not under test here
    }
    body = isvc("shad", 1, [])
    body["spec"]["rollout"].update(rollout)
    c.create(body)
    c.wait_status("InferenceService", "shad", serving(1), timeout=90)
    url = c.call(lambda: c.runtime.service_proxy("default", "shad", 80))
    seen: list[dict[str, Any]] = []

    def watch(pred: Any) -> Any:
        def check() -> dict[str, Any] | None:
            obj = c.get("InferenceService", "shad")
            st = (obj or {}).get("status") or {}
            seen.append(st)
            return st if pred(st) else None

        return check

    with Traffic(url, "shad") as traffic:
        # v2 disagrees with v1 on every row: aborted in its shadow phase, before any weight
        c.patch("InferenceService", "shad", {"spec": {"version": 2}})
        st = c.wait("v2 aborted", watch(lambda s: (s.get("rollback") or {}).get("from") == 2), timeout=120)
        assert st["rollback"]["reason"] == "ShadowAnalysisFailed", st["rollback"]
        assert "agreement 0.0000 < 0.9" in st["rollback"]["message"], st["rollback"]
        assert st["stableVersion"] == 1 and st.get("canaryVersion") is None and st["phase"] == "Degraded"
        assert st["lastAnalysis"]["phase"] == "Shadow" and st["lastAnalysis"]["verdict"] == "Fail"
        shadowing = [s for s in seen if s.get("canaryVersion") == 2]
        assert shadowing and all(s.get("shadow") and not s.get("canaryWeight") for s in shadowing)
        assert any(s.get("reason") == "ShadowInProgress" for s in shadowing)
        assert c.wait(
            "v2 shadow removed",
            lambda: c.get("Deployment", "shad-v2-shadow", api="apps/v1") is None,
            timeout=60,
        )
        assert c.get("Deployment", "shad-v2", api="apps/v1") is None  # never a canary Deployment

        # v3 (as good as v1): passes its shadow, then the canary steps begin and it is promoted
        seen.clear()
        c.patch("InferenceService", "shad", {"spec": {"version": 3}})
        past_shadow = watch(
            lambda s: (
                s.get("stableVersion") == 3
                or (s.get("canaryVersion") == 3 and not s.get("shadow") and s.get("canaryWeight") == 50)
            )
        )
        try:
            c.wait("v3 past its shadow", past_shadow, timeout=120)
        except AssertionError as e:
            keys = ("canaryVersion", "shadow", "canaryWeight", "reason", "message", "lastAnalysis")
            raise AssertionError(f"{e}; last: {[{k: s.get(k) for k in keys} for s in seen[-2:]]}") from None
        st = c.wait_status("InferenceService", "shad", serving(3), timeout=90)["status"]
    assert any(s.get("shadow") and s.get("canaryVersion") == 3 for s in seen)
    reasons = [e["reason"] for e in c.events("shad")]
    assert reasons.count("ShadowStarted") == 2 and "ShadowPassed" in reasons, reasons
    assert cond(st, "Ready")["status"] == "True"
    # the clients saw only answers of the stable (or, later, the canary) version: not one error
    assert sum(traffic.codes.values()) > 100, traffic.codes
    assert traffic.failed == 0, (traffic.codes, traffic.samples)
    # the shadow's start, abort and pass as the existing notification events
    want = ["StepAdvanced", "RolledBack", "StepAdvanced", "StepAdvanced", "StepAdvanced", "Promoted"]
    c.wait("notifications", lambda: len(receiver.bodies("/hook")) >= len(want), timeout=30)
    got = [(b["type"], b["reason"]) for b in receiver.bodies("/hook")]
    assert got[: len(want)] == list(
        zip(
            want,
            [
                "ShadowStarted",
                "ShadowAnalysisFailed",
                "ShadowStarted",
                "ShadowPassed",
                "CanaryStarted",
                "Promoted",
            ],
            strict=True,
        )
    ), got
    assert got[0][0] == "StepAdvanced" and receiver.bodies("/hook")[0]["rollout"]["shadow"] is True
