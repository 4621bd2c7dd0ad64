"""The bake is extended while the promoted version's drift is being investigated (policy edge: a bad
version promoted before its drift was confirmed must not end up alone, where "every version drifts")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _operator_fixtures import isvc, mv, ready

from onnxops.api.conditions import now_rfc3339
from onnxops.reconcile import inferenceservice as ir
from onnxops.reconcile.rollout import RolloutConfig, bake_extended, drift_investigating

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
MON = {"interval": "30s", "drift": {"failureLimit": 3}}  # investigation: 3 x 30 s = 90 s after the bake


def _reconcile(
    since: float,
    drift: dict[str, Any],
    *,
    previous_ready: bool = True,
    monitoring: dict[str, Any] | None = MON,
) -> ir.IsvcPlan:
    promoted = now_rfc3339(T0 - timedelta(seconds=since))
    status = {"stableVersion": 2, "previousVersion": 1, "promotedAt": promoted, "drift": drift}
    extra = {"monitoring": monitoring} if monitoring else {}
    obj = isvc(status=status, rollout={"bakeTime": "2m"}, **extra)
    mvs = [mv(1), mv(2)]
    from onnxops.builders.deployment import deployment
    from onnxops.settings import Settings

    s = Settings()
    observed = [
        ready(deployment(obj, mvs[1], 4, s)),
        ready(deployment(obj, mvs[0], 1, s), 1 if previous_ready else 0),
    ]
    return ir.reconcile(obj, mvs, observed, settings=s, now=T0)


@pytest.mark.parametrize(
    "case,since,drift,previous_ready,monitoring,kept",
    [
        ("within the bake", 60, {}, True, MON, True),
        ("bake over, no breach", 130, {"breaches": {"1": 0, "2": 0}}, True, MON, False),
        ("bake over, breach open on the new version", 130, {"breaches": {"1": 0, "2": 1}}, True, MON, True),
        (
            "bake over, breach only on the previous version",
            130,
            {"breaches": {"1": 2, "2": 0}},
            True,
            MON,
            False,
        ),
        (
            "bake over, breach open (focus-version fields only)",
            130,
            {"version": 2, "consecutiveBreaches": 1},
            True,
            MON,
            True,
        ),
        ("bake over, breach open, previous not Ready", 130, {"breaches": {"2": 1}}, False, MON, False),
        ("bake + failureLimit x interval over", 211, {"breaches": {"2": 2}}, True, MON, False),
        ("no drift monitoring: no extension", 130, {"breaches": {"2": 1}}, True, None, False),
    ],
)
def test_previous_version_kept_warm_while_drift_is_investigated(
    case, since, drift, previous_ready, monitoring, kept
):
    plan = _reconcile(since, drift, previous_ready=previous_ready, monitoring=monitoring)
    deps = {c["metadata"]["name"] for c in plan.children if c["kind"] == "Deployment"}
    assert (plan.status["previousVersion"] == 1) is kept, case
    assert ("iris-v1" in deps) is kept, case
    assert (("apps/v1", "Deployment", "iris-v1") in plan.delete) is (not kept), case
    assert plan.status["stableVersion"] == 2 and plan.status["phase"] == "Ready"
    if kept:
        assert plan.requeue_after is not None and plan.requeue_after <= 211 - since + 0.2
    if kept and since > 120:
        assert "drift investigation of v2" in plan.status["message"]


def test_bake_extended_and_investigating_helpers():
    assert [bake_extended(120, 90, t, True) for t in (119, 120, 209.9, 210)] == [False, True, True, False]
    assert not bake_extended(120, 90, 150, False)
    assert RolloutConfig(bake_seconds=120, investigation_seconds=90).investigation_seconds == 90
    assert RolloutConfig.from_spec({"monitoring": MON}).investigation_seconds == 90
    assert RolloutConfig.from_spec({"monitoring": {"drift": {"enabled": False}}}).investigation_seconds == 0
    assert RolloutConfig.from_spec({}).investigation_seconds == 0
    assert drift_investigating({"drift": {"breaches": {"3": 1}}}, 3)
    assert not drift_investigating({"drift": {"breaches": {"3": 1}}}, None)
    assert not drift_investigating({}, 3)


def test_investigating_reads_status_drift_as_the_drift_path_does():
    # a status written before the per-version map: the focus version's count
    legacy = {"drift": {"version": 3, "consecutiveBreaches": 2}}
    assert drift_investigating(legacy, 3) and not drift_investigating(legacy, 4)
    assert not drift_investigating({"drift": {"breaches": {}, "version": 3, "consecutiveBreaches": 2}}, 3)
    # an entry that does not parse is left out (no crash), the others still count
    assert drift_investigating({"drift": {"breaches": {"3": "x", "4": 1}}}, 4)
    assert not drift_investigating({"drift": {"breaches": {"3": "x", "4": 1}}}, 3)
    assert not drift_investigating({"drift": "garbage"}, 3)
