"""Status helpers: diff (write only what changed), bounded history, primary metric."""

from __future__ import annotations

from typing import Any

HISTORY_LIMIT = 20
PRIMARY_ORDER = ("accuracy", "f1_macro", "roc_auc", "r2", "rmse", "mae", "log_loss")


def status_patch(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Merge patch turning ``old`` into ``new`` for the keys ``new`` names (None deletes).

    Empty means: write nothing."""
    old = old or {}
    patch: dict[str, Any] = {}
    for k, v in new.items():
        if v is None:
            if old.get(k) is not None:
                patch[k] = None
        elif old.get(k) != v:
            patch[k] = v
    return patch


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
