"""The shadow phase of a rollout (issue 15): the step machine as a table of pure decisions, the assessment of
what the mirror measured, and what the InferenceService builds meanwhile (the shadow's own Deployment and
Service that the Service never selects, the stable pods' mirror, or an HTTPRoute RequestMirror filter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _operator_fixtures import isvc, mv, ready

from onnxops.builders import httproute, labels
from onnxops.builders.deployment import deployment
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile.analysis import AnalysisResult
from onnxops.reconcile.control import Control
from onnxops.reconcile.notifications import from_events
from onnxops.reconcile.rollout import RolloutConfig, RolloutState, advance
from onnxops.reconcile.shadow import ShadowStats, assess, shadow_config, shadow_replicas
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
AT = "2026-01-01T12:00:00Z"


def scfg(**kw: Any) -> dict[str, Any]:
    spec = {"rollout": {"shadow": {"duration": "60s", **kw.pop("shadow", {})}, **kw}}
    out = shadow_config(spec)
    assert out is not None
    return out


def cfg(**kw: Any) -> RolloutConfig:
    return RolloutConfig(
        steps=((20, 10.0), (50, 10.0)),
        analysis=None,
        bake_seconds=60,
        progress_deadline=30,
        shadow=scfg(**kw),
    )


SHADOW = RolloutState(stable=1, canary=2, weight=0, step=0, step_started_at=AT, shadow=True)
PASS = AnalysisResult("Pass", "shadow: ok")
FAIL = AnalysisResult("Fail", "shadow: agreement 0.3100 < 0.9 over 200 rows")
INCONCLUSIVE = AnalysisResult("Inconclusive", "shadow: 3 mirrored requests < minRequests 50")


def req(version: int = 2, **kw: Any) -> dict[str, Any]:
    return {"version": version, "by": "alice", "at": AT, **kw}


# (case, config, state, control, seconds since the phase began (-1: not Ready), analysis) ->
# (canary, weight, shadow, stable, rollback reason, wants analysis, gate)
CASES = [
    (
        "a new version starts as a shadow: no weight",
        cfg(),
        RolloutState(stable=1),
        Control(),
        0,
        None,
        (2, 0, True, 1, None, False, None),
    ),
    ("shadow not Ready yet: waits", cfg(), SHADOW, Control(), -1, None, (2, 0, True, 1, None, False, None)),
    (
        "shadow never Ready: progress deadline aborts",
        cfg(),
        SHADOW,
        Control(),
        -31,
        None,
        (None, None, False, 1, "ProgressDeadlineExceeded", False, None),
    ),
    (
        "mirroring for its duration: no check yet",
        cfg(),
        SHADOW,
        Control(),
        30,
        None,
        (2, 0, True, 1, None, False, None),
    ),
    (
        "duration over: the check is asked for",
        cfg(),
        SHADOW,
        Control(),
        61,
        None,
        (2, 0, True, 1, None, True, None),
    ),
    (
        "pass: the canary steps begin",
        cfg(),
        SHADOW,
        Control(),
        61,
        PASS,
        (2, 20, False, 1, None, False, None),
    ),
    (
        "fail: aborted before any weight",
        cfg(),
        SHADOW,
        Control(),
        61,
        FAIL,
        (None, None, False, 1, "ShadowAnalysisFailed", False, None),
    ),
    (
        "inconclusive, Pause: holds",
        cfg(),
        SHADOW,
        Control(),
        61,
        INCONCLUSIVE,
        (2, 0, True, 1, None, False, None),
    ),
    (
        "inconclusive, Abort: aborted",
        cfg(analysis={"onInconclusive": "Abort"}),
        SHADOW,
        Control(),
        61,
        INCONCLUSIVE,
        (None, None, False, 1, "AnalysisInconclusive", False, None),
    ),
    (
        "inconclusive, Promote: the canary steps begin",
        cfg(analysis={"onInconclusive": "Promote"}),
        SHADOW,
        Control(),
        61,
        INCONCLUSIVE,
        (2, 20, False, 1, None, False, None),
    ),
    (
        "inconclusive at the limit: aborted",
        cfg(analysis={"inconclusiveLimit": 2}),
        RolloutState(**{**SHADOW.__dict__, "inconclusive_checks": 1}),
        Control(),
        61,
        INCONCLUSIVE,
        (None, None, False, 1, "AnalysisInconclusive", False, None),
    ),
    (
        "promote ends the shadow early",
        cfg(),
        SHADOW,
        Control(promote=req(step=0)),
        5,
        None,
        (2, 20, False, 1, None, False, None),
    ),
    (
        "promote --full skips shadow and steps",
        cfg(),
        SHADOW,
        Control(promote=req(step=0, full=True)),
        5,
        None,
        (None, None, False, 2, None, False, None),
    ),
    (
        "pause holds the shadow",
        cfg(),
        SHADOW,
        Control(pause=req()),
        99,
        None,
        (2, 0, True, 1, None, False, "PausedByUser"),
    ),
    (
        "abort stops the shadow like a canary",
        cfg(),
        SHADOW,
        Control(abort=req()),
        5,
        None,
        (None, None, False, 1, "AbortedByUser", False, None),
    ),
    (
        "shadow removed from spec mid-phase: canary steps",
        RolloutConfig(steps=((20, 10.0),), analysis=None),
        SHADOW,
        Control(),
        5,
        None,
        (2, 20, False, 1, None, False, None),
    ),
]


@pytest.mark.parametrize("case,config,state,control,since,analysis,want", CASES, ids=[c[0] for c in CASES])
def test_shadow_step_machine(case, config, state, control, since, analysis, want):
    out = advance(
        state,
        config,
        target=2,
        target_failed=None,
        canary_ready=since >= 0,
        analysis=analysis,
        now=T0 + timedelta(seconds=abs(since)),
        generation=1,
        control=control,
    )
    s = out.state
    got = (
        s.canary,
        s.weight,
        s.shadow,
        s.stable,
        s.rollback.reason if s.rollback else None,
        out.wants_analysis,
        out.gate,
    )
    assert got == want, case
    if s.rollback:  # a failing shadow is recorded exactly like a failing canary: rejected, held
        assert out.reject == [(2, s.rollback.reason)]
        assert s.rollback.from_version == 2 and s.rollback.to_version == 1 and s.rollback.generation == 1
    if analysis is not None and state.shadow and want[4] != "ProgressDeadlineExceeded":
        assert s.last_analysis is not None and s.last_analysis.phase == "Shadow"


def test_shadow_events_become_notifications():
    """Start, pass and abort post Events that the existing notification types carry."""
    start = advance(
        RolloutState(stable=1),
        cfg(),
        target=2,
        target_failed=None,
        canary_ready=False,
        analysis=None,
        now=T0,
        generation=1,
    )
    passed = advance(
        SHADOW,
        cfg(),
        target=2,
        target_failed=None,
        canary_ready=True,
        analysis=PASS,
        now=T0 + timedelta(seconds=61),
        generation=1,
    )
    failed = advance(
        SHADOW,
        cfg(),
        target=2,
        target_failed=None,
        canary_ready=True,
        analysis=FAIL,
        now=T0 + timedelta(seconds=61),
        generation=1,
    )
    assert [e[1] for e in start.events] == ["ShadowStarted"]
    assert [e[1] for e in passed.events] == ["ShadowPassed", "CanaryStarted"]
    assert [e[1] for e in failed.events] == ["ShadowAnalysisFailed", "RolledBack"]
    obj = isvc()
    types = [n.type for o in (start, passed, failed) for n in from_events(obj, o.events, {}, AT)]
    assert types == ["StepAdvanced", "StepAdvanced", "StepAdvanced", "RolledBack"]


def test_a_shadow_pass_does_not_open_the_first_gate():
    """The shadow's Pass (step 0, phase Shadow) is not the gated first step's own check."""
    gated = RolloutConfig(steps=((20, 10.0),), analysis={"failureLimit": 1}, gates=(True,), shadow=scfg())
    out = advance(
        SHADOW,
        gated,
        target=2,
        target_failed=None,
        canary_ready=True,
        analysis=PASS,
        now=T0 + timedelta(seconds=61),
        generation=1,
    )
    later = advance(
        out.state,
        gated,
        target=2,
        target_failed=None,
        canary_ready=True,
        analysis=None,
        now=T0 + timedelta(seconds=72),
        generation=1,
    )
    assert later.gate is None and later.wants_analysis  # the step's own check runs first


# ---- assessment -----------------------------------------------------------------------------------------
CLASSIFIER = {"minAgreement": 0.9}
REGRESSOR = {"maxMeanAbsDiff": 0.5}
ASSESS = [
    ("no source", None, {}, "Inconclusive"),
    ("too few requests", ShadowStats(10, 0, 5.0, 10, 10), {}, "Inconclusive"),
    ("all fine", ShadowStats(100, 0, 5.0, 100, 99), CLASSIFIER, "Pass"),
    ("errors over the limit", ShadowStats(100, 2, 5.0, 98, 98), CLASSIFIER, "Fail"),
    ("errors at the limit", ShadowStats(100, 1, 5.0, 99, 99), CLASSIFIER, "Pass"),
    ("slow", ShadowStats(100, 0, 900.0, 100, 100), CLASSIFIER, "Fail"),
    ("disagrees", ShadowStats(100, 0, 5.0, 100, 31), CLASSIFIER, "Fail"),
    ("agreement not judged without a threshold", ShadowStats(100, 0, 5.0, 100, 31), {}, "Pass"),
    ("regressor close", ShadowStats(100, 0, 5.0, 100, 0, 20.0), REGRESSOR, "Pass"),
    ("regressor far", ShadowStats(100, 0, 5.0, 100, 0, 80.0), REGRESSOR, "Fail"),
    ("nothing compared", ShadowStats(100, 0, 5.0, 0, 0), CLASSIFIER, "Inconclusive"),
    ("gateway mirror: no agreement, SLOs only", ShadowStats(100, 0, 5.0, None), CLASSIFIER, "Pass"),
    ("unreachable shadow", ShadowStats(100, 100, None, 0, 0), CLASSIFIER, "Fail"),
]


@pytest.mark.parametrize("case,stats,thresholds,verdict", ASSESS, ids=[c[0] for c in ASSESS])
def test_assess_shadow(case, stats, thresholds, verdict):
    got = assess(stats, {**scfg(), **thresholds})
    assert got.verdict == verdict, (case, got.message)
    assert got.message.startswith("shadow: ")


def test_config_defaults_and_policy():
    c = shadow_config({"rollout": {"shadow": {}, "analysis": {"enabled": False, "onInconclusive": "Abort"}}})
    assert c is not None
    assert c["durationSeconds"] == 300 and c["sampleRate"] == 1.0 and c["minRequests"] == 50
    assert c["onInconclusive"] == "Abort"  # the rollout's policy, even with the canary's checks off
    assert shadow_config({"rollout": {"shadow": {}, "strategy": "Recreate"}}) is None
    assert shadow_config({"rollout": {}}) is None
    assert [shadow_replicas(t, r) for t, r in ((4, 1.0), (4, 0.1), (10, 0.25), (0, 1.0))] == [4, 1, 3, 1]


# ---- what the InferenceService builds ----------------------------------------------------------------------
def _shadow_isvc(**rollout: Any) -> dict[str, Any]:
    status = {
        "stableVersion": 1,
        "canaryVersion": 2,
        "canaryWeight": 0,
        "currentStep": 0,
        "shadow": True,
        "stepStartedAt": AT,
        "observedGeneration": 1,
    }
    ro = {"shadow": {"duration": "60s", "sampleRate": 0.5}, "analysis": {"enabled": False}, **rollout}
    return isvc(status=status, version=2, rollout=ro)


def _env(dep: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_shadow_children_take_no_traffic_and_the_stable_pods_mirror():
    obj = _shadow_isvc()
    settings = Settings()
    observed = [
        ready(deployment(obj, mv(1), 4, settings)),
        ready(deployment(obj, mv(2), 2, settings, shadow=True)),
    ]
    plan = ir.reconcile(obj, [mv(1), mv(2)], observed, settings=settings, now=T0)
    by = {(c["kind"], c["metadata"]["name"]): c for c in plan.children}
    svc, stable = by[("Service", "iris")], by[("Deployment", "iris-v1")]
    shadow_dep, shadow_svc = by[("Deployment", "iris-v2-shadow")], by[("Service", "iris-v2-shadow")]
    assert ("Deployment", "iris-v2") not in by  # no canary Deployment: no weight
    pod_labels = shadow_dep["spec"]["template"]["metadata"]["labels"]
    selects = svc["spec"]["selector"].items() <= pod_labels.items()
    assert not selects, "the InferenceService's Service must never select the shadow's pods"
    assert shadow_svc["spec"]["selector"].items() <= pod_labels.items()
    assert shadow_dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert stable["spec"]["replicas"] == 4 and shadow_dep["spec"]["replicas"] == 2  # 4 x sampleRate 0.5
    assert _env(stable)["ONNXOPS_MIRROR_URL"] == "http://iris-v2-shadow.ml.svc:80"
    assert _env(stable)["ONNXOPS_MIRROR_SAMPLE_RATE"] == "0.5"
    assert "ONNXOPS_MIRROR_URL" not in _env(shadow_dep)
    st = plan.status
    assert st["reason"] == "ShadowInProgress" and st["canaryWeight"] == 0 and st["effectiveCanaryWeight"] == 0
    assert st["shadow"] is True and "no traffic" in st["message"]
    assert plan.route_weights is None


def test_the_stable_pods_mirror_only_once_the_shadow_is_ready():
    """A copy sent before the shadow answers would count as its error: no mirror until it is Ready."""
    obj = _shadow_isvc()
    settings = Settings()
    starting = ready(deployment(obj, mv(2), 2, settings, shadow=True), 0)
    for observed in ([], [starting]):
        plan = ir.reconcile(obj, [mv(1), mv(2)], observed, settings=settings, now=T0)
        stable = next(c for c in plan.children if c["metadata"]["name"] == "iris-v1")
        assert "ONNXOPS_MIRROR_URL" not in _env(stable)
        assert any(c["metadata"]["name"] == "iris-v2-shadow" for c in plan.children)


def test_the_shadow_is_removed_and_mirroring_stops_when_it_passes():
    obj = _shadow_isvc()
    settings = Settings()
    shadow_dep = ready(deployment(obj, mv(2), 2, settings, shadow=True))
    observed = [ready(deployment(obj, mv(1), 4, settings)), shadow_dep]
    plan = ir.reconcile(
        obj, [mv(1), mv(2)], observed, settings=settings, now=T0 + timedelta(seconds=61), analysis=PASS
    )
    assert plan.status["canaryWeight"] == 20 and plan.status["shadow"] is None
    assert ("apps/v1", "Deployment", "iris-v2-shadow") in plan.delete
    by = {(c["kind"], c["metadata"]["name"]): c for c in plan.children}
    assert ("Deployment", "iris-v2") in by and "ONNXOPS_MIRROR_URL" not in _env(by[("Deployment", "iris-v1")])
    assert "Service" not in {k for k, n in by if n == "iris-v2-shadow"}


def test_shadow_url_template_setting():
    obj = _shadow_isvc()
    settings = Settings(shadow_url_template="http://127.0.0.1:9/{namespace}/{service}/{port}")
    observed = [ready(deployment(obj, mv(2), 2, settings, shadow=True))]
    plan = ir.reconcile(obj, [mv(1), mv(2)], observed, settings=settings, now=T0)
    stable = next(c for c in plan.children if c["metadata"]["name"] == "iris-v1")
    assert _env(stable)["ONNXOPS_MIRROR_URL"] == "http://127.0.0.1:9/ml/iris-v2-shadow/80"


def test_with_an_httproute_the_gateway_mirrors():
    obj = _shadow_isvc(httpRoute={"name": "web"})
    observed = [ready(deployment(obj, mv(2), 2, Settings(), shadow=True))]
    plan = ir.reconcile(obj, [mv(1), mv(2)], observed, settings=Settings(), now=T0)
    stable = next(c for c in plan.children if c["metadata"]["name"] == "iris-v1")
    assert "ONNXOPS_MIRROR_URL" not in _env(stable)  # the gateway mirrors, not the stable pods
    assert plan.route_weights == {1: 100}
    route = {
        "metadata": {"resourceVersion": "7"},
        "spec": {
            "rules": [
                {
                    "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": []}}],
                    "backendRefs": [{"name": "iris", "port": 80}],
                },
                {"backendRefs": [{"name": "other", "port": 80}]},
            ]
        },
    }
    patch = httproute.route_patch(route, "iris", plan.route_weights, plan.route_mirror)
    assert patch is not None
    rule, other = patch["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "iris-v1", "port": 80, "weight": 100}]
    assert rule["filters"] == [
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": []}},
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "iris-v2-shadow", "port": 80}, "percent": 50},
        },
    ]
    assert other == {"backendRefs": [{"name": "other", "port": 80}]}  # not ours: untouched
    # the phase is over: our filter goes, the user's stays; applied twice, nothing more to write
    mirrored = {**route, "spec": {"rules": patch["spec"]["rules"]}}
    done = httproute.route_patch(mirrored, "iris", {1: 80, 2: 20}, None)
    assert done is not None
    assert done["spec"]["rules"][0]["filters"] == [route["spec"]["rules"][0]["filters"][0]]
    assert (
        httproute.route_patch(
            {**route, "spec": {"rules": done["spec"]["rules"]}}, "iris", {1: 80, 2: 20}, None
        )
        is None
    )


def test_full_sample_writes_the_standard_filter():
    f = httproute.mirror_filter("iris", 3, 1.0)
    assert f == {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": {"name": "iris-v3-shadow", "port": 80}},
    }


def test_shadow_pods_are_labelled_for_their_service_only():
    obj = isvc()
    dep = deployment(obj, mv(2), 1, Settings(), shadow=True)
    assert dep["metadata"]["name"] == "iris-v2-shadow"
    assert labels.INFERENCE_SERVICE not in dep["spec"]["template"]["metadata"]["labels"]
    assert dep["metadata"]["labels"][labels.INFERENCE_SERVICE] == "iris"  # the operator still finds it
    assert ir.version_label(dep) is None  # ... but never as a served version


# ---- the evidence: the stable pods' mirror metrics ---------------------------------------------------------
def _exposition(version: str, service: str, **stats: Any) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    from onnxops.serving.mirror import Mirror

    m = Mirror(
        "http://127.0.0.1:9/ns/svc",
        sample_rate=1,
        max_in_flight=1,
        timeout=1,
        model="iris",
        version=version,
        inference_service=service,
    )
    assert m.prefix == "/ns/svc"
    m.stats.results.update(stats.pop("results"))
    for seconds in stats.pop("latencies"):
        m.stats.observe_latency(seconds)
    for k, v in stats.items():
        setattr(m.stats, k, v)
    reg = CollectorRegistry()
    reg.register(m)
    return generate_latest(reg).decode()


def test_shadow_stats_from_the_stable_pods_metrics():
    from onnxops.controller.metrics import shadow_stats_from_expositions

    a = _exposition(
        "1",
        "iris",
        results={"ok": 90, "error": 3, "unreachable": 2, "dropped": 40, "unsupported": 5},
        latencies=[0.004] * 95,
        rows_compared=180,
        rows_agreed=171,
        abs_diff_sum=0.0,
    )
    b = _exposition("1", "iris", results={"ok": 5}, latencies=[0.2] * 5, rows_compared=10, rows_agreed=2)
    other = _exposition("1", "other-service", results={"ok": 1000}, latencies=[], rows_compared=5)
    got = shadow_stats_from_expositions([a, b, other], "iris", 1, "iris")
    assert (got.requests, got.errors) == (100, 5)  # dropped and unsupported were never sent
    assert (got.rows_compared, got.rows_agreed) == (190, 173)
    # 100 latencies: 95 at 4 ms, 5 at 200 ms; the 99th percentile falls in the (0.1, 0.25] bucket
    assert got.p99_ms is not None and 100 < got.p99_ms <= 250
    verdict = assess(got, scfg(shadow={"minAgreement": 0.95}))
    assert verdict.verdict == "Fail" and "error rate 0.0500" in verdict.message
