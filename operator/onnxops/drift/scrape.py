"""Live counts from a direct scrape of the serving pods' ``/metrics`` (the default without Prometheus).

Each evaluation scrapes every pod once and keeps its parsed counters as a snapshot. The window's counts
of a pod are the sum of the deltas between consecutive snapshots from the *base* (the newest snapshot at
least ``window_s`` old, else the oldest kept) to now, like ``increase()``. A pod whose counters went down
between two snapshots restarted: the delta of that step is the new value (pod-level reset). Pods of the
same version are summed. The state (snapshots per pod) is passed in and returned, JSON-serialisable via
``state_to_json``/``state_from_json``, so it can live in memory or in status.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from onnxops.drift import names as N
from onnxops.drift.assemble import BUCKET, Sample, assemble
from onnxops.drift.live import Inconclusive, LiveCounts
from onnxops.profile import Profile

DEFAULT_TIMEOUT_S = 5.0
MAX_SNAPSHOTS = 32
MAX_BODY_BYTES = 8 * 1024 * 1024
WANTED = frozenset(
    {
        N.FEATURE_VALUE + BUCKET,
        N.FEATURE_CATEGORY,
        N.FEATURE_MISSING,
        N.PREDICTION_CLASS,
        N.PREDICTION_VALUE + BUCKET,
        N.ROWS,
        N.REQUESTS,
        N.REQUEST_DURATION + BUCKET,
    }
)


@dataclass(frozen=True)
class Target:
    pod: str
    version: str
    url: str  # e.g. http://10.0.0.7:8080/metrics


@dataclass(frozen=True)
class Snapshot:
    at: float  # unix seconds
    series: Mapping[str, float]  # series_key(name, labels) -> value


ScrapeState = dict[str, list[Snapshot]]  # pod -> snapshots, oldest first


def series_key(name: str, labels: Mapping[str, str]) -> str:
    return json.dumps([name, sorted(labels.items())], separators=(",", ":"))


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    name, labels = json.loads(key)
    return name, {k: v for k, v in labels}


def parse_series(text: str, wanted: Set[str], model: str, service: str | None = None) -> dict[str, float]:
    """The ``wanted`` series of ``model`` (and, when given, of InferenceService ``service``: its
    ``inferenceservice`` label) in a text exposition; other names, models and services are dropped."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name not in wanted or s.labels.get(N.LABEL_MODEL) != model:
                continue
            if service is None or s.labels.get(N.LABEL_SERVICE) == service:
                key = series_key(s.name, s.labels)
                out[key] = out.get(key, 0.0) + float(s.value)
    return out


def parse_exposition(text: str, model: str, service: str | None = None) -> dict[str, float]:
    """The drift/SLO series (:data:`WANTED`) of ``model`` (and of ``service``) in a text exposition."""
    return parse_series(text, WANTED, model, service)


def step_delta(prev: Mapping[str, float], cur: Mapping[str, float]) -> dict[str, float]:
    """Counter increase between two snapshots of one pod; any counter going down means a restart, and
    then the new values are the increase (like Prometheus' reset handling)."""
    if any(cur.get(k, 0.0) < v for k, v in prev.items()):
        return dict(cur)
    return {k: v - prev.get(k, 0.0) for k, v in cur.items()}


def base_index(snapshots: Sequence[Snapshot], now: float, window_s: float) -> int:
    """Index of the newest snapshot at least ``window_s`` old, else 0 (the oldest)."""
    idx = 0
    for i, s in enumerate(snapshots):
        if now - s.at >= window_s:
            idx = i
    return idx


def window_delta(
    snapshots: Sequence[Snapshot], current: Snapshot, window_s: float
) -> dict[str, float] | None:
    """Increase of every series over the window ending at ``current``; None without an earlier snapshot."""
    if not snapshots:
        return None
    chain = [*snapshots[base_index(snapshots, current.at, window_s) :], current]
    total: dict[str, float] = defaultdict(float)
    for a, b in itertools.pairwise(chain):
        for k, v in step_delta(a.series, b.series).items():
            total[k] += v
    return dict(total)


def advance(
    snapshots: Sequence[Snapshot], current: Snapshot, window_s: float, max_keep: int = MAX_SNAPSHOTS
) -> list[Snapshot]:
    """Append ``current`` and drop what no future window needs (older than the base), keeping at most
    ``max_keep`` snapshots."""
    kept = [*snapshots[base_index(snapshots, current.at, window_s) :], current] if snapshots else [current]
    return kept[-max_keep:]


def state_to_json(state: ScrapeState) -> dict[str, Any]:
    return {pod: [{"at": s.at, "series": dict(s.series)} for s in snaps] for pod, snaps in state.items()}


def state_from_json(doc: Mapping[str, Any] | None) -> ScrapeState:
    out: ScrapeState = {}
    for pod, snaps in (doc or {}).items():
        out[pod] = [
            Snapshot(float(s["at"]), {str(k): float(v) for k, v in s["series"].items()}) for s in snaps
        ]
    return out


async def scrape(session: aiohttp.ClientSession, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """GET a /metrics page; raises RuntimeError with a clear message on any failure."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"HTTP {resp.status} from {url}")
            body = await resp.content.read(MAX_BODY_BYTES + 1)
    except TimeoutError as exc:
        raise RuntimeError(f"scrape of {url} timed out after {timeout_s:g}s") from exc
    except aiohttp.ClientError as exc:
        raise RuntimeError(f"scrape of {url} failed: {exc.__class__.__name__}: {exc}") from exc
    if len(body) > MAX_BODY_BYTES:
        raise RuntimeError(f"{url}: /metrics larger than {MAX_BODY_BYTES} bytes")
    return body.decode("utf-8", "replace")


async def scrape_all(
    targets: Sequence[Target],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    session: aiohttp.ClientSession | None = None,
) -> list[str | BaseException]:
    """Every target's /metrics at once (``session``, else one of its own); a failure is its exception."""
    own = session is None
    sess = session or aiohttp.ClientSession()
    try:
        return await asyncio.gather(
            *(scrape(sess, t.url, timeout_s) for t in targets), return_exceptions=True
        )
    finally:
        if own:
            await sess.close()


@dataclass(frozen=True)
class PodWindow:
    """One pod's part of an evaluation: the window's increase of its series (None before it has an earlier
    snapshot), or why it has none (``error``)."""

    target: Target
    delta: dict[str, float] | None = None
    error: str | None = None


def step_pods(
    targets: Sequence[Target],
    texts: Sequence[str | BaseException],
    state: ScrapeState,
    parse: Callable[[str], dict[str, float]],
    window_s: float,
    now: float,
) -> tuple[list[PodWindow], ScrapeState]:
    """Each pod's window from its scrape (``texts``, by ``targets``' order, parsed by ``parse``), and the
    new state: a pod that failed keeps its old snapshots (its counts show at its next success), one whose
    page does not parse drops them."""
    new_state: ScrapeState = {}
    pods: list[PodWindow] = []
    for t, text in zip(targets, texts, strict=True):
        old = state.get(t.pod, [])
        if isinstance(text, BaseException):
            pods.append(PodWindow(t, error=str(text)))
            if old:
                new_state[t.pod] = list(old)
            continue
        try:
            current = Snapshot(now, parse(text))
        except ValueError as exc:
            pods.append(PodWindow(t, error=f"{t.pod}: unparsable /metrics: {exc}"))
            continue
        pods.append(PodWindow(t, delta=window_delta(old, current, window_s)))
        new_state[t.pod] = advance(old, current, window_s)
    return pods, new_state


async def fetch_scrape(
    targets: Sequence[Target],
    model: str,
    profiles: Mapping[str, Profile | None],
    state: ScrapeState,
    window_s: float,
    now: float,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    session: aiohttp.ClientSession | None = None,
    service: str | None = None,
) -> tuple[dict[str, LiveCounts | Inconclusive], ScrapeState]:
    """Scrape every target once; per version the window's LiveCounts (or Inconclusive), and the new state.

    ``service``: only the series labelled with this InferenceService count (the targets are already the
    service's own pods; a series of another service on them is ignored, never summed in).

    A version is Inconclusive when none of its pods could be scraped ("ScrapeFailed") or none has an
    earlier snapshot yet ("WarmingUp"); pods that failed keep their old snapshots.
    """
    texts = await scrape_all(targets, timeout_s, session)
    pods, new_state = step_pods(
        targets, texts, state, lambda text: parse_exposition(text, model, service), window_s, now
    )
    deltas: dict[str, list[dict[str, float]]] = defaultdict(list)
    errors: dict[str, list[str]] = defaultdict(list)
    for p in pods:
        if p.error is not None:
            errors[p.target.version].append(p.error)
        elif p.delta is not None:
            deltas[p.target.version].append(p.delta)
    results: dict[str, LiveCounts | Inconclusive] = {}
    versions = {t.version for t in targets} | set(profiles)
    samples: list[Sample] = []
    for version in versions:
        if not deltas.get(version):
            if errors.get(version):
                results[version] = Inconclusive("ScrapeFailed", "; ".join(errors[version])[:500])
            elif any(t.version == version for t in targets):
                results[version] = Inconclusive("WarmingUp", "first scrape of every pod: no window yet")
            else:
                results[version] = Inconclusive("NoTargets", f"no serving pod of version {version}")
            continue
        for d in deltas[version]:
            for key, value in d.items():
                name, labels = parse_key(key)
                if labels.get(N.LABEL_VERSION) == version:
                    samples.append(Sample(name, labels, value))
    assembled = assemble(samples, {v: profiles.get(v) for v in versions if v not in results})
    for v, lc in assembled.items():
        results.setdefault(v, lc)
    return results, new_state
