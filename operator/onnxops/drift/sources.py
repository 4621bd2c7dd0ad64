"""One entry point for live counts: Prometheus when a URL is set, else a direct scrape of the pods.

Never raises for an unavailable source: every version then gets an ``Inconclusive`` (which the policy
treats as "no measurement", never as drift).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from onnxops.drift.batch import PrometheusBatcher
from onnxops.drift.live import Inconclusive, LiveCounts
from onnxops.drift.prometheus import DEFAULT_TIMEOUT_S, fetch_prometheus, scope_matchers
from onnxops.drift.scrape import ScrapeState, Target, fetch_scrape
from onnxops.drift.window import duration_seconds
from onnxops.profile import Profile


@dataclass(frozen=True)
class LiveResult:
    source: Literal["prometheus", "scrape"]
    counts: dict[str, LiveCounts | Inconclusive]
    scrape_state: ScrapeState = field(default_factory=dict)


async def fetch_live(
    *,
    model: str,
    profiles: Mapping[str, Profile | None],
    window: str,
    prometheus_url: str | None = None,
    targets: Sequence[Target] = (),
    scrape_state: ScrapeState | None = None,
    extra_matchers: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    now: float | None = None,
    namespace: str | None = None,
    service: str | None = None,
    batcher: PrometheusBatcher | None = None,
) -> LiveResult:
    """Live counts per served version (``profiles`` keys) over ``window`` (a CRD duration like ``5m``).

    With ``prometheus_url``: PromQL over the window. Without: scrape ``targets`` and difference against
    ``scrape_state`` (returned updated in the result; keep it for the next call).

    ``namespace``/``service``: the InferenceService whose traffic counts. Both sources keep only its
    series (PromQL matchers ``namespace``/``inferenceservice``; the scrape, its ``inferenceservice``
    label), so a model of the same name served by another team is never summed in.

    ``batcher``: the Prometheus queries go out batched with other services of the same namespace that are
    evaluated at the same moment (``onnxops.drift.batch``); each still gets only its own series.
    """
    matchers = {**scope_matchers(namespace, service), **(extra_matchers or {})}
    if prometheus_url and batcher is not None and namespace and service and not extra_matchers:
        # with the other services of this namespace due now: one query per family for all of them
        res = await batcher.fetch(prometheus_url, namespace, service, model, profiles, window)
    elif prometheus_url:
        res = await fetch_prometheus(
            prometheus_url, model, profiles, window, extra_matchers=matchers, timeout_s=timeout_s
        )
    if prometheus_url:
        if isinstance(res, Inconclusive):
            return LiveResult("prometheus", {v: res for v in profiles})
        return LiveResult("prometheus", res)
    try:
        window_s = duration_seconds(window)
    except ValueError as exc:
        bad = Inconclusive("InvalidWindow", str(exc))
        return LiveResult("scrape", {v: bad for v in profiles}, dict(scrape_state or {}))
    counts, state = await fetch_scrape(
        targets,
        model,
        profiles,
        dict(scrape_state or {}),
        window_s,
        time.time() if now is None else now,
        timeout_s=timeout_s,
        service=service,
    )
    return LiveResult("scrape", counts, state)
