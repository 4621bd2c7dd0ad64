"""The default MetricsProvider for canary analysis: the server's request metrics
(``onnxops_requests_total``, ``onnxops_request_duration_seconds``; see ``onnxops.drift.names``).

With a Prometheus URL (``spec.monitoring.metricsSource.prometheusUrl`` or ``ONNXOPS_PROMETHEUS_URL``) the
window's increase comes from PromQL. Without one, the canary's pods are scraped directly: their counters
count since the pod started, which for a canary is the time of this rollout (an approximation of the step
window). A source that cannot answer gives None: the check is inconclusive, never a failure.

Every query and every scrape is scoped to ONE InferenceService: PromQL matches ``namespace`` (added by
Prometheus' Kubernetes discovery) and ``inferenceservice`` (the server's own label, from its pod's env);
the direct scrape lists the service's own pods and keeps only series labelled with the service. A model
of the same name served by another team, or by another InferenceService, is never summed in.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from onnxops.builders import labels
from onnxops.drift import names as N
from onnxops.kube.protocol import KubeApi
from onnxops.reconcile.analysis import RequestStats
from onnxops.reconcile.shadow import ShadowStats

from .lazy import drift_modules

log = logging.getLogger(__name__)
TIMEOUT_S = 5.0


def _le(v: str) -> float:
    return math.inf if v in ("+Inf", "Inf", "inf") else float(v)


def p99_ms(buckets: dict[str, float]) -> float | None:
    """Prometheus' histogram_quantile(0.99) on cumulative ``le`` buckets, in milliseconds."""
    from onnxops.drift.assemble import histogram_quantile

    q = histogram_quantile(0.99, buckets.items())
    return None if q is None else q * 1000.0


def stats_from_expositions(
    texts: Iterable[str], model: str, version: int, service: str | None = None
) -> RequestStats:
    """Sum the request counters and latency buckets of one version (of InferenceService ``service``, when
    given) over several pods' /metrics pages."""
    total = errors = 0.0
    buckets: dict[str, float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.labels.get(N.LABEL_MODEL) != model or s.labels.get(N.LABEL_VERSION) != str(version):
                    continue
                if service is not None and s.labels.get(N.LABEL_SERVICE) != service:
                    continue
                if s.name == N.REQUESTS:
                    total += s.value
                    if str(s.labels.get(N.LABEL_CODE, "")).startswith("5"):
                        errors += s.value
                elif s.name == N.REQUEST_DURATION + "_bucket":
                    le = s.labels["le"]
                    key = "+Inf" if math.isinf(_le(le)) else repr(_le(le))
                    buckets[key] = buckets.get(key, 0.0) + s.value
    return RequestStats(total, errors, p99_ms(buckets) if total else None)


def promql(model: str, version: int, window_s: float, namespace: str, service: str) -> dict[str, str]:
    """The canary analysis' PromQL: one version of one InferenceService in one namespace."""
    from onnxops.drift.prometheus import label_value, scope_matchers, window_increase

    matchers = {N.LABEL_MODEL: model, N.LABEL_VERSION: str(version), **scope_matchers(namespace, service)}
    sel = ",".join(f"{k}={label_value(v)}" for k, v in matchers.items())
    w = f"{max(1, round(window_s))}s"
    # a canary's series are born inside the window (and a code="503" series at the first error): the
    # window's count includes the value of their first sample, which increase() alone would drop
    return {
        "requests": window_increase(f"{N.REQUESTS}{{{sel}}}", w),
        "errors": window_increase(f'{N.REQUESTS}{{{sel},{N.LABEL_CODE}=~"5.."}}', w),
        "p99": "histogram_quantile(0.99, "
        + window_increase(f"{N.REQUEST_DURATION}_bucket{{{sel}}}", w, N.LABEL_LE)
        + ")",
    }


async def query_sums(
    session: aiohttp.ClientSession, prometheus_url: str, queries: dict[str, str]
) -> dict[str, float | None]:
    """Each instant query's series summed (NaN series left out; None when nothing is left)."""
    from onnxops.drift.prometheus import instant_query

    out: dict[str, float | None] = {}
    for key, q in queries.items():
        rows = await instant_query(session, prometheus_url, q, TIMEOUT_S)
        vals = [v for _, v in rows if not math.isnan(v)]
        out[key] = sum(vals) if vals else None
    return out


class DefaultMetricsProvider:
    def __init__(self, client: KubeApi, prometheus_url: str | None, port: int = 8080) -> None:
        self.client, self.prometheus_url, self.port = client, prometheus_url, port

    async def request_stats(
        self, *, namespace: str, service: str, model: str, version: int, window_seconds: float
    ) -> RequestStats | None:
        await drift_modules()  # the queries and the scrape parser: the drift package, imported off the loop
        try:
            async with aiohttp.ClientSession() as session:
                if self.prometheus_url:
                    return await self._prometheus(session, model, version, window_seconds, namespace, service)
                return await self._scrape(session, namespace, service, model, version)
        except Exception as e:  # any failure of the source is "no measurement"
            log.warning("request metrics of %s/%s v%s unavailable: %s", namespace, service, version, e)
            return None

    async def _prometheus(
        self, session: aiohttp.ClientSession, model: str, version: int, window_s: float, ns: str, service: str
    ) -> RequestStats:
        assert self.prometheus_url
        out = await query_sums(session, self.prometheus_url, promql(model, version, window_s, ns, service))
        p99 = out["p99"]
        return RequestStats(out["requests"] or 0.0, out["errors"] or 0.0, None if p99 is None else p99 * 1000)

    async def _scrape(
        self, session: aiohttp.ClientSession, ns: str, service: str, model: str, version: int
    ) -> RequestStats | None:
        from onnxops.drift.scrape import scrape

        pods: list[dict[str, Any]] = await self.client.list(
            "v1", "Pod", ns, label_selector=labels.version_selector(service, version)
        )
        texts = []
        for p in pods:
            ip = (p.get("status") or {}).get("podIP")
            if ip and not p["metadata"].get("deletionTimestamp"):
                try:
                    texts.append(await scrape(session, f"http://{ip}:{self.port}/metrics", TIMEOUT_S))
                except RuntimeError as e:
                    log.info("scrape failed: %s", e)
        return stats_from_expositions(texts, model, version, service) if texts else None


# ---- the shadow phase (spec.rollout.shadow): what the stable pods' mirror measured ------------------------
SHADOW_REQUESTS = "onnxops_shadow_requests_total"
SHADOW_SENT = ("ok", "error", "unreachable")  # results of a request that was sent (not dropped/unsupported)
SHADOW_COUNTERS = {
    "onnxops_shadow_rows_compared_total": "rows_compared",
    "onnxops_shadow_rows_agreed_total": "rows_agreed",
    "onnxops_shadow_abs_diff_total": "abs_diff_sum",
}
SHADOW_DURATION = "onnxops_shadow_request_duration_seconds"


def shadow_stats_from_expositions(texts: Iterable[str], model: str, stable: int, service: str) -> ShadowStats:
    """Sum the mirror's counters of the stable version's pods (serving/mirror.py) into ShadowStats."""
    sums = {"requests": 0.0, "errors": 0.0, "rows_compared": 0.0, "rows_agreed": 0.0, "abs_diff_sum": 0.0}
    buckets: dict[str, float] = {}
    want = {N.LABEL_MODEL: model, N.LABEL_VERSION: str(stable), N.LABEL_SERVICE: service}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if any(s.labels.get(k) != v for k, v in want.items()):
                    continue
                result = s.labels.get("result")
                if s.name == SHADOW_REQUESTS and result in SHADOW_SENT:
                    sums["requests"] += s.value
                    sums["errors"] += s.value if result != "ok" else 0.0
                elif s.name in SHADOW_COUNTERS:
                    sums[SHADOW_COUNTERS[s.name]] += s.value
                elif s.name == SHADOW_DURATION + "_bucket":
                    le = s.labels["le"]
                    key = "+Inf" if math.isinf(_le(le)) else repr(_le(le))
                    buckets[key] = buckets.get(key, 0.0) + s.value
    return ShadowStats(
        sums["requests"],
        sums["errors"],
        p99_ms(buckets) if sums["requests"] else None,
        sums["rows_compared"],
        sums["rows_agreed"],
        sums["abs_diff_sum"],
    )


def shadow_promql(model: str, stable: int, window_s: float, namespace: str, service: str) -> dict[str, str]:
    """The shadow analysis' PromQL: the mirror metrics of one InferenceService's stable version."""
    from onnxops.drift.prometheus import label_value, scope_matchers, window_increase

    matchers = {N.LABEL_MODEL: model, N.LABEL_VERSION: str(stable), **scope_matchers(namespace, service)}
    sel = ",".join(f"{k}={label_value(v)}" for k, v in matchers.items())
    w = f"{max(1, round(window_s))}s"
    out = {
        "requests": window_increase(f'{SHADOW_REQUESTS}{{{sel},result=~"ok|error|unreachable"}}', w),
        "errors": window_increase(f'{SHADOW_REQUESTS}{{{sel},result=~"error|unreachable"}}', w),
        "p99": "histogram_quantile(0.99, "
        + window_increase(f"{SHADOW_DURATION}_bucket{{{sel}}}", w, N.LABEL_LE)
        + ")",
    }
    for name, key in SHADOW_COUNTERS.items():
        out[key] = window_increase(f"{name}{{{sel}}}", w)
    return out


class ShadowMetrics:
    """Measures a shadow phase: the stable pods' mirror metrics, or (the gateway mirrors: ``via_route``)
    the shadow pods' own request metrics, from Prometheus or by scraping the pods."""

    def __init__(self, client: KubeApi, prometheus_url: str | None, port: int = 8080) -> None:
        self.requests = DefaultMetricsProvider(client, prometheus_url, port)
        self.client, self.prometheus_url, self.port = client, prometheus_url, port

    async def shadow_stats(
        self,
        *,
        namespace: str,
        service: str,
        model: str,
        stable: int,
        shadow: int,
        window_seconds: float,
        via_route: bool,
    ) -> ShadowStats | None:
        await drift_modules()
        try:
            if via_route and self.prometheus_url:
                r = await self.requests.request_stats(
                    namespace=namespace,
                    service=service,
                    model=model,
                    version=shadow,
                    window_seconds=window_seconds,
                )
                return None if r is None else ShadowStats(r.requests, r.errors, r.p99_ms, None)
            async with aiohttp.ClientSession() as session:
                if via_route:
                    texts = await self._scrape(session, namespace, labels.shadow_selector(service, shadow))
                    r = stats_from_expositions(texts, model, shadow, service) if texts else None
                    return None if r is None else ShadowStats(r.requests, r.errors, r.p99_ms, None)
                if self.prometheus_url:
                    return await self._prometheus(session, model, stable, window_seconds, namespace, service)
                texts = await self._scrape(session, namespace, labels.version_selector(service, stable))
                return shadow_stats_from_expositions(texts, model, stable, service) if texts else None
        except Exception as e:  # any failure of the source is "no measurement"
            log.warning("shadow metrics of %s/%s v%s unavailable: %s", namespace, service, shadow, e)
            return None

    async def _prometheus(
        self, session: aiohttp.ClientSession, model: str, stable: int, window_s: float, ns: str, service: str
    ) -> ShadowStats:
        assert self.prometheus_url
        queries = shadow_promql(model, stable, window_s, ns, service)
        out = await query_sums(session, self.prometheus_url, queries)
        p99 = out["p99"]
        return ShadowStats(
            out["requests"] or 0.0,
            out["errors"] or 0.0,
            None if p99 is None else p99 * 1000,
            out["rows_compared"] or 0.0,
            out["rows_agreed"] or 0.0,
            out["abs_diff_sum"] or 0.0,
        )

    async def _scrape(self, session: aiohttp.ClientSession, ns: str, selector: dict[str, str]) -> list[str]:
        from onnxops.drift.scrape import scrape

        pods: list[dict[str, Any]] = await self.client.list("v1", "Pod", ns, label_selector=selector)
        texts = []
        for p in pods:
            ip = (p.get("status") or {}).get("podIP")
            if ip and not p["metadata"].get("deletionTimestamp"):
                try:
                    texts.append(await scrape(session, f"http://{ip}:{self.port}/metrics", TIMEOUT_S))
                except RuntimeError as e:
                    log.info("scrape failed: %s", e)
        return texts
