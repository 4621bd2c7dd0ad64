"""drift.evaluate: sources + policy together, and the status mapping (prior state survives a restart)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

from _operator_fixtures import ClientStub
from aiohttp import web

from onnxops.drift import names as N
from onnxops.drift.evaluate import Served, evaluate, prior_from_status
from onnxops.drift.policy import PolicySpec, PriorState
from onnxops.profile import Profile
from onnxops.reconcile.drift_hook import drift_summary
from onnxops.reconcile.state import RolloutState

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PROFILE = Profile.model_validate(
    {
        "formatVersion": 1,
        "task": "regression",
        "rows": 400,
        "features": [
            {
                "name": "x",
                "index": 0,
                "kind": "numeric",
                "edges": [0.0, 1.0, 2.0],
                "counts": [100, 100, 100, 100],
            }
        ],
    }
)
SERVED = [Served("1", "stable", PROFILE), Served("2", "canary", PROFILE)]


def _vector(version: str, cum: list[float]) -> list[dict]:
    les = ["0.0", "1.0", "2.0", "+Inf"]
    return [
        {"metric": {"version": version, "feature": "x", "le": le}, "value": [0, str(c)]}
        for le, c in zip(les, cum, strict=True)
    ]


async def _fake_prometheus() -> tuple[web.AppRunner, str, list[str]]:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        q = request.query["query"]
        seen.append(q)
        result: list[dict] = []
        if N.FEATURE_VALUE + "_bucket" in q and not q.startswith("histogram_quantile"):
            result = _vector("1", [100, 200, 300, 400]) + _vector("2", [10, 20, 100, 400])
        elif N.ROWS in q:
            result = [{"metric": {"version": v}, "value": [0, "400"]} for v in ("1", "2")]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

    app = web.Application()
    app.router.add_get("/api/v1/query", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", seen


async def test_evaluate_via_prometheus_rolls_back_the_drifting_canary() -> None:
    runner, url, seen = await _fake_prometheus()
    try:
        decision, live = await evaluate(
            model="m",
            served=SERVED,
            spec=PolicySpec(failure_limit=2),
            window="5m",
            prior=PriorState(consecutive={"2": 1}),
            now=NOW,
            prometheus_url=url,
        )
    finally:
        await runner.cleanup()
    assert live.source == "prometheus"
    assert len(seen) == 8 and all('model="m"' in q and "[300s]" in q for q in seen)
    assert (decision.action, decision.rollback_from, decision.rollback_to) == ("Rollback", "2", "1")
    # status.drift as its only writer (reconcile.drift_hook.apply_decision) computes it, for SERVED
    status = drift_summary(decision, RolloutState(stable=1, canary=2), NOW).to_dict()  # as stored
    assert status["verdict"] == "Drift" and status["version"] == 2 and status["consecutiveBreaches"] == 2
    assert status["versions"]["1"] == 0.0 and status["score"] > 0.2 and status["evaluatedAt"].endswith("Z")
    assert status["breaches"] == {"1": 0, "2": 2}  # every served version's count
    # the breach counts survive a restart through status
    prior = prior_from_status(
        {"drift": status, "promotedAt": "2026-01-01T11:59:00Z", "retrain": {"at": "2026-01-01T10:00:00Z"}},
        SERVED,
    )
    assert prior.consecutive == {"1": 0, "2": 2}
    assert prior.promoted_at == NOW - timedelta(minutes=1)
    assert prior.last_retrain_at == NOW - timedelta(hours=2)


async def test_evaluate_with_unreachable_prometheus_is_inconclusive_and_keeps_counts() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    decision, _ = await evaluate(
        model="m",
        served=SERVED,
        spec=PolicySpec(),
        window="5m",
        prior=PriorState(consecutive={"1": 2, "2": 2}),
        now=NOW,
        prometheus_url=f"http://127.0.0.1:{port}",
        timeout_s=1,
    )
    assert decision.action is None and decision.reason == "Inconclusive"
    assert decision.consecutive == {"1": 2, "2": 2}
    assert "PrometheusUnavailable" in decision.message


async def test_evaluate_scrape_without_targets_is_inconclusive() -> None:
    decision, live = await evaluate(
        model="m", served=SERVED, spec=PolicySpec(), window="30s", prior=PriorState(), now=NOW
    )
    assert live.source == "scrape" and decision.reason == "Inconclusive"
    assert prior_from_status(None, SERVED) == PriorState()


async def test_every_query_is_scoped_to_the_namespace_and_the_inference_service() -> None:
    runner, url, seen = await _fake_prometheus()
    try:
        await evaluate(
            model="m",
            served=SERVED,
            spec=PolicySpec(),
            window="5m",
            prior=PriorState(),
            now=NOW,
            prometheus_url=url,
            namespace="team-a",
            service="iris",
        )
    finally:
        await runner.cleanup()
    assert len(seen) == 8
    for q in seen:
        # every series selector in the query (increase, offset, unless) carries both matchers
        selectors = [part.split("}")[0] for part in q.split("{")[1:]]
        wanted = ('model="m"', 'namespace="team-a"', 'inferenceservice="iris"')
        assert selectors and all(w in s for s in selectors for w in wanted), q


async def test_the_canary_analysis_queries_are_scoped_too() -> None:
    from onnxops.controller.metrics import DefaultMetricsProvider

    runner, url, seen = await _fake_prometheus()
    try:
        provider = DefaultMetricsProvider(ClientStub(), url)  # no pod listing with a URL
        stats = await provider.request_stats(
            namespace="team-b", service="iris-2", model="iris", version=3, window_seconds=60
        )
    finally:
        await runner.cleanup()
    assert stats is not None and len(seen) == 3
    for q in seen:
        assert 'namespace="team-b"' in q and 'inferenceservice="iris-2"' in q and 'version="3"' in q, q
