"""The shadow phase of a rollout (``spec.rollout.shadow``), pure: its configuration, its pods, and the
assessment of what the mirror measured.

During the phase the new version runs in its own Deployment ``<isvc>-v<N>-shadow`` behind its own Service,
which no Service of the InferenceService selects: it answers only mirrored copies of live requests, and
those answers are dropped. The mirror is the stable pods themselves (serving/mirror.py: ``ONNXOPS_MIRROR_URL``
set on their Deployment), or, with ``rollout.httpRoute``, the route's ``RequestMirror`` filter. The stable
pods count, per mirrored request, the shadow's result (ok, error, unreachable), its latency and whether it
predicted what they did; :func:`assess` judges that against the phase's thresholds. With an HTTPRoute the
gateway mirrors, so the evidence is the shadow pods' own request metrics (errors, latency) and agreement is
not measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from onnxops.api.v1alpha1.inferenceservice import Shadow

from .analysis import DEFAULTS as ANALYSIS_DEFAULTS
from .analysis import AnalysisResult
from .durations import parse_duration

DEFAULTS: dict[str, Any] = Shadow().to_dict()
PHASE: Literal["Shadow"] = "Shadow"  # status.lastAnalysis.phase of the shadow's check


def shadow_config(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """``spec.rollout.shadow`` with defaults, plus the inconclusive policy of ``rollout.analysis``
    (onInconclusive, inconclusiveLimit: it applies even when the canary's checks are switched off) and
    ``durationSeconds``; None without a shadow phase (or with strategy Recreate)."""
    r = spec.get("rollout") or {}
    if r.get("shadow") is None or r.get("strategy", "Canary") != "Canary":
        return None
    a = {**ANALYSIS_DEFAULTS, **(r.get("analysis") or {})}
    cfg = {**DEFAULTS, **r["shadow"]}
    cfg["durationSeconds"] = parse_duration(cfg.get("duration"), 300.0)
    cfg["onInconclusive"] = a["onInconclusive"]
    cfg["inconclusiveLimit"] = a["inconclusiveLimit"]
    cfg["failureLimit"] = 1  # one window of evidence decides: the shadow answers nobody, nothing to wait for
    return cfg


def shadow_replicas(total: int, sample_rate: float) -> int:
    """Pods of the shadow: the stable's count scaled by the share of requests it receives (at least 1)."""
    return max(1, math.ceil(max(0, total) * min(1.0, max(0.0, sample_rate))))


@dataclass(frozen=True)
class ShadowStats:
    """What reached the shadow over the window. ``requests``: mirrored requests sent (ok + error +
    unreachable); ``errors``: those not answered 200; ``p99_ms``: the shadow's p99 latency;
    ``rows_compared`` / ``rows_agreed`` / ``abs_diff_sum``: the comparison with the stable's predictions
    (None when not measured: the gateway mirrors)."""

    requests: float
    errors: float
    p99_ms: float | None
    rows_compared: float | None = None
    rows_agreed: float = 0.0
    abs_diff_sum: float = 0.0


def _agreement_problem(stats: ShadowStats, cfg: dict[str, Any]) -> tuple[str | None, str]:
    """(a problem or None, what was measured) for the agreement thresholds."""
    n = stats.rows_compared
    min_agree, max_diff = cfg.get("minAgreement"), cfg.get("maxMeanAbsDiff")
    if n is None:
        return None, "agreement not measured (HTTPRoute mirror)"
    if not n:
        return None, "no rows compared"
    share, mean_diff = stats.rows_agreed / n, stats.abs_diff_sum / n
    seen = f"agreement {share:.4f}, mean |diff| {mean_diff:.4g} over {n:g} rows"
    if min_agree is not None and share < float(min_agree):
        return f"agreement {share:.4f} < {float(min_agree):g} over {n:g} rows", seen
    if max_diff is not None and mean_diff > float(max_diff):
        return f"mean |diff| {mean_diff:.4g} > {float(max_diff):g} over {n:g} rows", seen
    return None, seen


def assess(stats: ShadowStats | None, cfg: dict[str, Any]) -> AnalysisResult:
    """The shadow's verdict against ``cfg`` (:func:`shadow_config`): errors, p99 latency and agreement with
    the stable version's predictions."""
    cfg = {**DEFAULTS, **cfg}
    if stats is None:
        return AnalysisResult("Inconclusive", "shadow: metrics source unavailable")
    min_req = int(cfg["minRequests"])
    if stats.requests < min_req:
        return AnalysisResult(
            "Inconclusive", f"shadow: {stats.requests:g} mirrored requests < minRequests {min_req}"
        )
    rate = stats.errors / stats.requests if stats.requests else 0.0
    problems = []
    if rate > float(cfg["maxErrorRate"]):
        problems.append(f"error rate {rate:.4f} > {float(cfg['maxErrorRate']):g}")
    if stats.p99_ms is not None and stats.p99_ms > float(cfg["maxLatencyP99Ms"]):
        problems.append(f"p99 {stats.p99_ms:.1f}ms > {float(cfg['maxLatencyP99Ms']):g}ms")
    agree_problem, seen = _agreement_problem(stats, cfg)
    if agree_problem:
        problems.append(agree_problem)
    if problems:
        return AnalysisResult(
            "Fail", "shadow: " + "; ".join(problems) + f" ({stats.requests:g} mirrored requests)"
        )
    wants_rows = cfg.get("minAgreement") is not None or cfg.get("maxMeanAbsDiff") is not None
    if wants_rows and stats.rows_compared == 0:
        return AnalysisResult(
            "Inconclusive", f"shadow: no prediction compared over {stats.requests:g} mirrored requests"
        )
    p99 = "n/a" if stats.p99_ms is None else f"{stats.p99_ms:.1f}ms"
    return AnalysisResult(
        "Pass", f"shadow: error rate {rate:.4f}, p99 {p99}, {seen} ({stats.requests:g} mirrored requests)"
    )
