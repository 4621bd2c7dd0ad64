"""Status helpers: diff (write only what changed), bounded history, primary metric."""

from __future__ import annotations

from typing import Any

HISTORY_LIMIT = 20
PRIMARY_ORDER = ("accuracy", "f1_macro", "roc_auc", "r2", "rmse", "mae", "log_loss")


def merge_diff(old: Any, new: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch turning the map ``old`` into exactly ``new`` (recursively).

    A key of ``old`` that ``new`` lacks (or sets to None) becomes ``null`` (merge-patch deletion); nested
    maps are diffed key by key; any other value (lists included) is replaced whole when it differs. A None
    inside ``new`` means "absent", so applying the patch and diffing again gives ``{}``.
    """
    have: dict[str, Any] = old if isinstance(old, dict) else {}
    patch: dict[str, Any] = {k: None for k, v in have.items() if k not in new and v is not None}
    for k, v in new.items():
        cur = have.get(k)
        if v is None:
            if cur is not None:
                patch[k] = None
        elif isinstance(v, dict):
            sub = merge_diff(cur, v) if isinstance(cur, dict) else _strip_none(v)
            if sub or not isinstance(cur, dict):
                patch[k] = sub
        elif cur != v:
            patch[k] = v
    return patch


def _strip_none(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _strip_none(v) if isinstance(v, dict) else v for k, v in value.items() if v is not None}


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
