"""Status helpers: diff (write only what changed), bounded history, primary metric."""

from __future__ import annotations

from typing import Any

from onnxops.objects.compare import merge_diff as merge_diff  # re-exported: moved to onnxops.objects

HISTORY_LIMIT = 20
PRIMARY_ORDER = ("accuracy", "f1_macro", "roc_auc", "r2", "rmse", "mae", "log_loss")


def status_patch(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The status merge patch for the top-level keys ``new`` names (None deletes; other keys belong to
    other writers and are left alone). A nested map is written exactly: a key it no longer has is set to
    null, so a merge patch never leaves stale entries behind (see :func:`merge_diff`).

    Empty means: write nothing."""
    old = old or {}
    return merge_diff({k: v for k, v in old.items() if k in new}, new)


def append_history(
    history: list[dict[str, Any]] | None, entries: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    if not entries:
        return history
    return ([*(history or []), *entries])[-HISTORY_LIMIT:]


def primary_metric(metrics: dict[str, Any] | None, gates: list[str] | None = None) -> str | None:
    """``name=value`` for display: the first gated metric, else the first of a preferred order."""
    if not metrics:
        return None
    order = [g.split()[0].split(">")[0].split("<")[0] for g in gates or []] + list(PRIMARY_ORDER)
    for name in [*order, *sorted(metrics)]:
        if name in metrics:
            return f"{name}={float(metrics[name]):.4g}"
    return None
