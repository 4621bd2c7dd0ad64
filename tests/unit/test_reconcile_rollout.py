"""The rollout state machine and the InferenceService reconcile: table tests of pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _operator_fixtures import isvc, mv, ready

from onnxops.api import conditions as cond
from onnxops.api.v1alpha1.inferenceservice import RollbackRecord
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile.analysis import AnalysisResult, RequestStats, assess
from onnxops.reconcile.rollout import (
    RolloutConfig,
    RolloutState,
    advance,
    parse_duration,
    replicas_plan,
    split_replicas,
    traffic_weights,
)
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()
CFG = RolloutConfig(steps=((20, 10.0), (50, 10.0)), analysis=None, bake_seconds=60, progress_deadline=30)


@pytest.mark.parametrize(
    "total,weight,stable,canary",
    [
        (4, 20, 3, 1),  # 0.8 -> 1
        (4, 50, 2, 2),
        (4, 100, 0, 4),
        (10, 25, 7, 3),  # 2.5 rounds half up -> 3
        (10, 24, 8, 2),  # 2.4 -> 2
        (3, 10, 2, 1),  # 0.3 -> at least one canary pod
        (1, 50, 1, 1),  # at least one stable pod while w < 100
        (1, 100, 0, 1),
    ],
)
def test_split_replicas(total, weight, stable, canary):
    assert split_replicas(total, weight) == (stable, canary)


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_rejects_garbage():
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("5 minutes")


def _adv(state, *, target, ready=False, analysis=None, now=T0, gen=1, failed=None, cfg=CFG):
    return advance(
        state,
        cfg,
        target=target,
        target_failed=failed,
        canary_ready=ready,
        analysis=analysis,
        now=now,
        generation=gen,
    )


def test_first_version_is_deployed_without_canary():
    out = _adv(RolloutState(), target=1)
    assert out.state.stable == 1 and out.state.canary is None
    assert [h["action"] for h in out.history] == ["Deployed"]


def test_canary_walks_steps_and_promotes_then_bakes():
    s = RolloutState(stable=1)
    out = _adv(s, target=2)
    assert (out.state.canary, out.state.weight, out.state.step) == (2, 20, 0)
    # not ready yet: waits
    out = _adv(out.state, target=2, ready=False, now=T0 + timedelta(seconds=5))
    assert out.state.step == 0 and "Ready" in out.waiting
    # ready but pause not over
    out = _adv(out.state, target=2, ready=True, now=T0 + timedelta(seconds=5))
    assert out.state.step == 0 and out.requeue_after and 4 < out.requeue_after < 6
    # pause over -> step 2
    out = _adv(out.state, target=2, ready=True, now=T0 + timedelta(seconds=11))
    assert (out.state.step, out.state.weight) == (1, 50)
    out = _adv(out.state, target=2, ready=True, now=T0 + timedelta(seconds=22))
    st = out.state
    assert (st.stable, st.canary, st.previous) == (2, None, 1)
    assert [h["action"] for h in out.history] == ["Promoted"]
    assert replicas_plan(st, 4) == {2: 4, 1: 1}
    # bake not over
    out = _adv(st, target=2, now=T0 + timedelta(seconds=50))
    assert out.state.previous == 1
    out = _adv(st, target=2, now=T0 + timedelta(seconds=83))
    assert out.state.previous is None and replicas_plan(out.state, 4) == {2: 4}


def test_progress_deadline_aborts_and_rejects():
    s = RolloutState(stable=1)
    out = _adv(s, target=2)
    out = _adv(out.state, target=2, ready=False, now=T0 + timedelta(seconds=31), gen=3)
    st = out.state
    assert st.stable == 1 and st.canary is None
    assert st.rollback is not None
    assert st.rollback.from_version == 2 and st.rollback.to_version == 1
    assert st.rollback.reason == "ProgressDeadlineExceeded" and st.rollback.generation == 3
    assert out.reject == [(2, "ProgressDeadlineExceeded")]


def test_analysis_failure_limit_then_abort():
    cfg = RolloutConfig(steps=((50, 0.0),), analysis={"failureLimit": 2}, bake_seconds=0)
    s = _adv(RolloutState(stable=1), target=2, cfg=cfg).state
    out = _adv(s, target=2, ready=True, cfg=cfg)
    assert out.wants_analysis and out.state == s
    bad = AnalysisResult("Fail", "error rate 0.5 > 0.05")
    out = _adv(s, target=2, ready=True, analysis=bad, cfg=cfg)
    assert out.state.analysis_failures == 1 and out.state.canary == 2
    out = _adv(out.state, target=2, ready=True, analysis=bad, cfg=cfg)
    assert out.state.canary is None and out.state.rollback is not None
    assert out.state.rollback.reason == "AnalysisFailed"


def test_pass_resets_nothing_and_advances():
    cfg = RolloutConfig(steps=((50, 0.0),), analysis={"failureLimit": 2}, bake_seconds=0)
    s = _adv(RolloutState(stable=1), target=2, cfg=cfg).state
    out = _adv(s, target=2, ready=True, analysis=AnalysisResult("Pass", "ok"), cfg=cfg)
    assert out.state.stable == 2 and out.state.previous == 1


def test_abort_holds_until_generation_changes():
    held = RolloutState(
        stable=1,
        rollback=RollbackRecord.model_validate(
            {"from": 2, "to": 1, "reason": "AnalysisFailed", "at": "x", "generation": 4}
        ),
    )
    # same generation, pinned to the aborted version: nothing starts
    out = _adv(held, target=2, gen=4)
    assert out.state.canary is None and out.state.stable == 1
    # a new generation re-enables the rollout of the same version
    out = _adv(held, target=2, gen=5)
    assert out.state.canary == 2
    # a different (newer) version rolls out even under the hold
    out = _adv(held, target=3, gen=4)
    assert out.state.canary == 3


def test_recreate_switches_at_once():
    cfg = RolloutConfig(strategy="Recreate")
    out = _adv(RolloutState(stable=1), target=2, cfg=cfg)
    assert (out.state.stable, out.state.canary, out.state.previous) == (2, None, None)


def test_pinned_version_failing_verification_is_aborted():
    out = _adv(RolloutState(stable=1), target=None, failed=(2, "VerificationFailed", "iris-v2 failed"), gen=2)
    assert out.state.rollback is not None
    assert out.state.rollback.from_version == 2 and out.state.rollback.reason == "VerificationFailed"
    # held: the next call does not repeat the abort
    again = _adv(out.state, target=None, failed=(2, "VerificationFailed", "iris-v2 failed"), gen=2)
    assert again.reject == [] and again.events == []


def test_traffic_weights():
    assert traffic_weights(RolloutState(stable=1, canary=2, weight=30), 4) == {1: 70, 2: 30}
    assert traffic_weights(RolloutState(stable=2, previous=1), 4) == {2: 80, 1: 20}
    assert traffic_weights(RolloutState(stable=2), 4) == {2: 100}


@pytest.mark.parametrize(
    "stats,verdict",
    [
        (None, "Inconclusive"),
        (RequestStats(10, 0, 1.0), "Inconclusive"),
        (RequestStats(100, 1, 10.0), "Pass"),
        (RequestStats(100, 6, 10.0), "Fail"),
        (RequestStats(100, 0, 900.0), "Fail"),
        (RequestStats(100, 5, None), "Pass"),  # 5 % == the limit
    ],
)
def test_assess(stats, verdict):
    assert assess(stats, {"maxErrorRate": 0.05, "maxLatencyP99Ms": 500, "minRequests": 20}).verdict == verdict


# ---- InferenceService reconcile (children + status) ------------------------------------------------


def _children(plan, kind):
    return {c["metadata"]["name"]: c for c in plan.children if c["kind"] == kind}


def test_isvc_first_reconcile_creates_stable_and_service():
    plan = ir.reconcile(isvc(), [mv(1), mv(2, phase="Verifying")], [], settings=S, now=T0)
    deps = _children(plan, "Deployment")
    assert list(deps) == ["iris-v1"] and deps["iris-v1"]["spec"]["replicas"] == 4
    assert list(_children(plan, "Service")) == ["iris"]
    assert plan.status["stableVersion"] == 1 and plan.status["phase"] == "Progressing"
    assert plan.status["url"] == "http://iris.ml.svc.cluster.local"
    assert not cond.is_true(plan.status["conditions"], cond.READY)


def _converge(obj, mvs, observed, now):
    plan = ir.reconcile(obj, mvs, observed, settings=S, now=now)
    new = {**obj, "status": {k: v for k, v in plan.status.items() if v is not None}}
    return plan, new


def test_isvc_converged_object_writes_nothing():
    obj, mvs = isvc(), [mv(1)]
    plan, obj = _converge(obj, mvs, [], T0)
    observed = [ready(d) for d in plan.children if d["kind"] == "Deployment"] + [
        c for c in plan.children if c["kind"] != "Deployment"
    ]
    plan, obj = _converge(obj, mvs, observed, T0 + timedelta(seconds=1))
    assert plan.status["phase"] == "Ready" and cond.is_true(plan.status["conditions"], cond.READY)
    plan2 = ir.reconcile(obj, mvs, observed, settings=S, now=T0 + timedelta(seconds=30))
    assert plan2.status_patch == {} and plan2.delete == [] and plan2.events == []


def test_isvc_canary_split_and_abort_keeps_ready_true():
    status = {"stableVersion": 1, "conditions": []}
    obj = isvc(status=status, rollout={"steps": [{"weight": 25, "pause": "1s"}], "progressDeadline": "10s"})
    mvs = [mv(1), mv(2)]
    plan = ir.reconcile(obj, mvs, [], settings=S, now=T0)
    deps = _children(plan, "Deployment")
    # surge: the stable keeps its 4 pods while the canary's pod is not Ready
    assert {n: d["spec"]["replicas"] for n, d in deps.items()} == {"iris-v1": 4, "iris-v2": 1}
    obj["status"] = {k: v for k, v in plan.status.items() if v is not None}
    observed = [ready(deps["iris-v1"]), ready(deps["iris-v2"], 0), *_children(plan, "Service").values()]
    plan = ir.reconcile(obj, mvs, observed, settings=S, now=T0 + timedelta(seconds=11))
    st = plan.status
    assert st["stableVersion"] == 1 and st["canaryVersion"] is None and st["phase"] == "Degraded"
    assert cond.is_true(st["conditions"], cond.READY)
    assert cond.is_true(st["conditions"], cond.DEGRADED) and cond.is_true(st["conditions"], cond.STALLED)
    assert plan.reject == [("iris-v2", "ProgressDeadlineExceeded")]
    assert ("apps/v1", "Deployment", "iris-v2") in plan.delete
    assert st["history"][-1]["action"] == "Aborted"


def test_isvc_latest_skips_rejected_after_abort():
    status = {
        "stableVersion": 1,
        "rollback": {"from": 2, "to": 1, "reason": "AnalysisFailed", "at": "x", "generation": 1},
    }
    plan = ir.reconcile(isvc(status=status), [mv(1), mv(2, rejected=True)], [], settings=S, now=T0)
    assert plan.status["canaryVersion"] is None and plan.reject == []


def test_isvc_autoscaling_gets_hpa_and_no_replicas():
    plan = ir.reconcile(
        isvc(autoscaling={"minReplicas": 2, "maxReplicas": 6}), [mv(1)], [], settings=S, now=T0
    )
    assert "replicas" not in _children(plan, "Deployment")["iris-v1"]["spec"]
    h = _children(plan, "HorizontalPodAutoscaler")["iris-v1"]
    assert (h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) == (2, 6)


def test_isvc_http_route_weights_and_version_services():
    status = {"stableVersion": 1}
    obj = isvc(status=status, rollout={"steps": [{"weight": 30}], "httpRoute": {"name": "web"}})
    plan = ir.reconcile(obj, [mv(1), mv(2)], [], settings=S, now=T0)
    assert plan.route_weights == {1: 70, 2: 30}
    assert set(_children(plan, "Service")) == {"iris", "iris-v1", "iris-v2"}


def test_isvc_version_not_found_is_pending():
    plan = ir.reconcile(isvc(version=3), [mv(1)], [], settings=S, now=T0)
    assert plan.status["phase"] == "Pending" and plan.children and not _children(plan, "Deployment")
    c = cond.find(plan.status["conditions"], cond.READY)
    assert c and c["reason"] == "VersionNotFound"


def test_isvc_keeps_deployment_of_served_version_whose_model_version_vanished():
    from onnxops.builders.deployment import deployment

    obj = isvc(status={"stableVersion": 1})
    running = ready(deployment(obj, mv(1), 4, S))
    plan = ir.reconcile(obj, [], [running], settings=S, now=T0)
    assert plan.delete == [] and plan.status["stableVersion"] == 1


def test_status_messages_are_scrubbed():
    from onnxops.reconcile.termination import short

    assert "s3cr3t" not in short("DataError: s3 failed with AWS_SECRET_ACCESS_KEY=s3cr3t")


def test_isvc_held_rollback_keeps_its_version_rejected():
    """After a crash between the status write and the ModelVersion patch, the next reconcile rejects it."""
    status = {
        "stableVersion": 1,
        "rollback": {"from": 3, "to": 1, "reason": "AnalysisFailed", "at": "x", "generation": 2},
    }
    plan = ir.reconcile(isvc(gen=2, status=status), [mv(1), mv(3)], [], settings=S, now=T0)
    assert plan.reject == [("iris-v3", "AnalysisFailed")]
    plan = ir.reconcile(isvc(gen=3, status=status), [mv(1), mv(3)], [], settings=S, now=T0)
    assert plan.reject == []  # the hold is over once spec changed
