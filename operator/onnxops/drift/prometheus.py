"""Live counts from the Prometheus HTTP API (``/api/v1/query``), one instant query per metric family (for one
InferenceService, or batched for many of one namespace: :func:`fetch_prometheus_batch`).

Every query has a timeout; an unreachable Prometheus, a timeout, a non-2xx answer or a malformed body
makes the whole evaluation ``Inconclusive`` (never drift, never a rollback). ``increase()`` handles
counter resets and the window. A series born inside the window (a category first seen, a new pod) is
taken at its full value, since ``increase()`` cannot see the value of its first sample; the one case this
undercounts is a series both born and reset inside one window (the counts before the reset are lost).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from onnxops.drift import names as N
from onnxops.drift.assemble import BUCKET, Sample, assemble
from onnxops.drift.live import Inconclusive, LiveCounts
from onnxops.drift.window import promql_duration
from onnxops.profile import Profile

DEFAULT_TIMEOUT_S = 5.0
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""A larger reply is refused (Inconclusive "response too large"), never read whole into memory."""
ERROR_TYPES = frozenset(
    {"bad_data", "timeout", "canceled", "execution", "internal", "unavailable", "not_found"}
)
"""Prometheus' own ``errorType`` values: the only part of a failed reply that is repeated in a message."""


class PrometheusError(Exception):
    pass


Series = list[tuple[dict[str, str], float]]  # one query's answer: (labels, value) per series


@asynccontextmanager
async def client_session(session: aiohttp.ClientSession | None) -> AsyncIterator[aiohttp.ClientSession]:
    """``session`` when given (the caller closes it), else a new one closed on exit."""
    if session is not None:
        yield session
        return
    async with aiohttp.ClientSession() as own:
        yield own


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or PrometheusError once it is known to exceed ``limit`` bytes."""
    if resp.content_length is not None and resp.content_length > limit:
        raise PrometheusError(f"Prometheus response too large (over {limit} bytes)")
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        buf += chunk
        if len(buf) > limit:
            raise PrometheusError(f"Prometheus response too large (over {limit} bytes)")
    return bytes(buf)


def label_value(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(model: str, extra: Mapping[str, str] | None = None) -> str:
    """``{model="iris",namespace="prod"}``: the series of one model (and e.g. namespace)."""
    matchers = {N.LABEL_MODEL: model, **(extra or {})}
    return "{" + ",".join(f"{k}={label_value(v)}" for k, v in matchers.items()) + "}"


def scope_matchers(namespace: str | None, service: str | None) -> dict[str, str]:
    """The matchers that keep one InferenceService's series: ``namespace`` (Prometheus' Kubernetes
    discovery) and ``inferenceservice`` (the server's own label). Empty values are left out."""
    out: dict[str, str] = {}
    if namespace:
        out[N.LABEL_NAMESPACE] = namespace
    if service:
        out[N.LABEL_SERVICE] = service
    return out


def window_increase(series: str, window: str, by: str | None = None) -> str:
    """``sum [by (...)]`` of each series' increase over ``window``: ``increase()`` for series that existed
    before the window, the whole value of series born inside it (an unseen category, a new pod, the first
    5xx): ``increase()`` alone would miss the value of their first sample."""
    group = f" by ({by})" if by else ""
    return (
        f"sum{group} ((increase({series}[{window}]) and {series} offset {window})"
        f" or ({series} unless {series} offset {window}))"
    )


def queries(model: str, window: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The PromQL of one evaluation: exposition name -> query (one per family, batched by version)."""
    sel = selector(model, extra)
    v, f = N.LABEL_VERSION, N.LABEL_FEATURE

    def inc(name: str, by: str) -> str:
        return window_increase(name + sel, window, by)

    return {
        N.FEATURE_VALUE + BUCKET: inc(N.FEATURE_VALUE + BUCKET, f"{v}, {f}, le"),
        N.FEATURE_CATEGORY: inc(N.FEATURE_CATEGORY, f"{v}, {f}, {N.LABEL_CATEGORY}"),
        N.FEATURE_MISSING: inc(N.FEATURE_MISSING, f"{v}, {f}"),
        N.PREDICTION_CLASS: inc(N.PREDICTION_CLASS, f"{v}, {N.LABEL_CLASS}"),
        N.PREDICTION_VALUE + BUCKET: inc(N.PREDICTION_VALUE + BUCKET, f"{v}, le"),
        N.ROWS: inc(N.ROWS, v),
        N.REQUESTS: inc(N.REQUESTS, f"{v}, {N.LABEL_CODE}"),
        "p99": f"histogram_quantile(0.99, {inc(N.REQUEST_DURATION + BUCKET, f'{v}, le')})",
    }


async def instant_query(
    session: aiohttp.ClientSession,
    base_url: str,
    promql: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    at: float | None = None,
) -> list[tuple[dict[str, str], float]]:
    """Run an instant query (at unix time ``at``, default now); ``(labels, value)`` per series."""
    url = base_url.rstrip("/") + "/api/v1/query"
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    try:
        async with session.get(
            url, params=params, timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False
        ) as resp:
            # The URL is user-controlled: never echo the reply (it reaches status.drift.message).
            if 300 <= resp.status < 400:
                raise PrometheusError(f"HTTP {resp.status} from Prometheus: redirects are not followed")
            if resp.status >= 400 or resp.status < 200:
                raise PrometheusError(f"HTTP {resp.status} from Prometheus")
            raw = await read_capped(resp, MAX_RESPONSE_BYTES)
        body = json.loads(raw)
    except TimeoutError as exc:
        raise PrometheusError(f"Prometheus query timed out after {timeout_s:g}s") from exc
    except aiohttp.ClientError as exc:
        raise PrometheusError(f"Prometheus unreachable: {exc.__class__.__name__}") from exc
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PrometheusError("Prometheus answered with invalid JSON") from exc
    if not isinstance(body, dict) or body.get("status") != "success":
        err = body.get("errorType") if isinstance(body, dict) else None
        kind = err if err in ERROR_TYPES else "unexpected answer"
        raise PrometheusError(f"Prometheus query failed: {kind}")
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise PrometheusError("Prometheus answered without a vector result")
    out = []
    try:
        for item in data.get("result", []):
            out.append((dict(item["metric"]), float(item["value"][1])))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise PrometheusError(f"malformed Prometheus result ({exc.__class__.__name__})") from exc
    return out


async def query_all(
    session: aiohttp.ClientSession,
    base_url: str,
    qs: Mapping[str, str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    at: float | None = None,
) -> list[tuple[str, Series]]:
    """Every query of ``qs`` (name -> PromQL) at once; ``(name, series)`` in ``qs``' order. The first
    failure raises its PrometheusError."""
    results = await asyncio.gather(*(instant_query(session, base_url, q, timeout_s, at) for q in qs.values()))
    return list(zip(qs, results, strict=True))


async def fetch_queries(
    base_url: str,
    qs: Mapping[str, str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    at: float | None = None,
    session: aiohttp.ClientSession | None = None,
) -> list[tuple[str, Series]] | Inconclusive:
    """:func:`query_all` with ``session`` or a session of its own; any failure -> Inconclusive
    ("PrometheusUnavailable")."""
    try:
        async with client_session(session) as sess:
            return await query_all(sess, base_url, qs, timeout_s, at)
    except PrometheusError as exc:
        return Inconclusive("PrometheusUnavailable", str(exc))


async def fetch_prometheus(
    base_url: str,
    model: str,
    profiles: Mapping[str, Profile | None],
    window: str | float,
    *,
    extra_matchers: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    at: float | None = None,
    session: aiohttp.ClientSession | None = None,
) -> dict[str, LiveCounts | Inconclusive] | Inconclusive:
    """Live counts per version over ``window`` (a CRD duration like ``5m``, or seconds).

    ``profiles`` names the served versions (version label -> profile). Any failed query -> Inconclusive.
    ``at``: evaluation time (unix seconds), default Prometheus' now.
    """
    try:
        qs = queries(model, promql_duration(window), extra_matchers)
    except ValueError as exc:
        return Inconclusive("InvalidWindow", str(exc))
    results = await fetch_queries(base_url, qs, timeout_s=timeout_s, at=at, session=session)
    if isinstance(results, Inconclusive):
        return results
    samples: list[Sample] = []
    p99: dict[str, float] = {}
    for name, series in results:
        for labels, value in series:
            if math.isnan(value):
                continue
            if name == "p99":
                if N.LABEL_VERSION in labels:
                    p99[labels[N.LABEL_VERSION]] = value
            else:
                samples.append(Sample(name, labels, value))
    return assemble(samples, profiles, latency_p99=p99)


# ---- batched: one query per family for many InferenceServices of one namespace -------------------------
BATCH_MAX_SERVICES = 100
"""Services per batched query: keeps the reply of the largest family (feature buckets) well under
``MAX_RESPONSE_BYTES`` (about 50 series of ~250 bytes per service for a 4-feature model)."""
_RE_SPECIAL = frozenset(".^$*+?()[]{}|\\")


def regex_literal(value: str) -> str:
    """``value`` as an RE2 pattern matching exactly it (PromQL's ``=~`` is anchored)."""
    return "".join("\\" + c if c in _RE_SPECIAL else c for c in value)


def batch_selector(namespace: str, services: Sequence[str], extra: Mapping[str, str] | None = None) -> str:
    """``{namespace="ns",inferenceservice=~"a|b"}``: the series of these InferenceServices of ONE
    namespace (never another namespace's, whatever their names)."""
    if not namespace or not services:
        raise ValueError("a batched query needs a namespace and at least one InferenceService")
    alternatives = "|".join(regex_literal(s) for s in sorted(set(services)))
    parts = [
        f"{N.LABEL_NAMESPACE}={label_value(namespace)}",
        f"{N.LABEL_SERVICE}=~{label_value(alternatives)}",
    ]
    parts += [f"{k}={label_value(v)}" for k, v in (extra or {}).items()]
    return "{" + ",".join(parts) + "}"


def batch_queries(
    window: str, namespace: str, services: Sequence[str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The PromQL of one evaluation round of several InferenceServices: the queries of :func:`queries`,
    grouped also by ``inferenceservice`` and ``model`` so that each service gets back its own series."""
    sel = batch_selector(namespace, services, extra)
    v, f, s, m = N.LABEL_VERSION, N.LABEL_FEATURE, N.LABEL_SERVICE, N.LABEL_MODEL
    scope = f"{s}, {m}, {v}"

    def inc(name: str, by: str) -> str:
        return window_increase(name + sel, window, f"{scope}{', ' + by if by else ''}")

    return {
        N.FEATURE_VALUE + BUCKET: inc(N.FEATURE_VALUE + BUCKET, f"{f}, le"),
        N.FEATURE_CATEGORY: inc(N.FEATURE_CATEGORY, f"{f}, {N.LABEL_CATEGORY}"),
        N.FEATURE_MISSING: inc(N.FEATURE_MISSING, f),
        N.PREDICTION_CLASS: inc(N.PREDICTION_CLASS, N.LABEL_CLASS),
        N.PREDICTION_VALUE + BUCKET: inc(N.PREDICTION_VALUE + BUCKET, "le"),
        N.ROWS: inc(N.ROWS, ""),
        N.REQUESTS: inc(N.REQUESTS, N.LABEL_CODE),
        "p99": f"histogram_quantile(0.99, {inc(N.REQUEST_DURATION + BUCKET, 'le')})",
    }


@dataclass(frozen=True)
class BatchRequest:
    """One InferenceService's part of a batch: its model and served versions (version -> profile)."""

    service: str
    model: str
    profiles: Mapping[str, Profile | None]


BatchResult = dict[str, LiveCounts | Inconclusive] | Inconclusive


def split_batch(
    names_results: Sequence[tuple[str, Series]],
    requests: Sequence[BatchRequest],
) -> dict[str, BatchResult]:
    """Hand each InferenceService the series labelled with its name and its model (pure)."""
    wanted = {(r.service, r.model): r for r in requests}
    samples: dict[str, list[Sample]] = {r.service: [] for r in requests}
    p99: dict[str, dict[str, float]] = {r.service: {} for r in requests}
    for name, series in names_results:
        for labels, value in series:
            key = (labels.get(N.LABEL_SERVICE, ""), labels.get(N.LABEL_MODEL, ""))
            if key not in wanted or math.isnan(value):
                continue
            if name == "p99":
                if N.LABEL_VERSION in labels:
                    p99[key[0]][labels[N.LABEL_VERSION]] = value
            else:
                samples[key[0]].append(Sample(name, labels, value))
    return {r.service: assemble(samples[r.service], r.profiles, latency_p99=p99[r.service]) for r in requests}


async def fetch_prometheus_batch(
    base_url: str,
    namespace: str,
    requests: Sequence[BatchRequest],
    window: str | float,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    at: float | None = None,
    session: aiohttp.ClientSession | None = None,
    max_services: int = BATCH_MAX_SERVICES,
) -> dict[str, BatchResult]:
    """Live counts of several InferenceServices of ONE namespace: one query per metric family for up to
    ``max_services`` services (instead of one per family and service); the result per service is what
    :func:`fetch_prometheus` scoped to that service returns. A failed query makes its chunk Inconclusive."""
    try:
        window_s = promql_duration(window)
    except ValueError as exc:
        return {r.service: Inconclusive("InvalidWindow", str(exc)) for r in requests}
    out: dict[str, BatchResult] = {}
    async with client_session(session) as sess:
        for i in range(0, len(requests), max(1, max_services)):
            chunk = requests[i : i + max(1, max_services)]
            qs = batch_queries(window_s, namespace, [r.service for r in chunk])
            results = await fetch_queries(base_url, qs, timeout_s=timeout_s, at=at, session=sess)
            if isinstance(results, Inconclusive):
                out.update({r.service: results for r in chunk})
                continue
            out.update(split_batch(results, chunk))
    return out
