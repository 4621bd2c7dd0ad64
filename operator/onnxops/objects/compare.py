"""Comparing Kubernetes objects as plain dicts: does the observed object already carry what we want, and the
merge patch from one map to another."""

from __future__ import annotations

from typing import Any


def contains(observed: Any, desired: Any) -> bool:
    """True when every field of ``desired`` has the same value in ``observed`` (recursively)."""
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(contains(observed.get(k), v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(observed) == len(desired)
            and all(contains(o, d) for o, d in zip(observed, desired, strict=True))
        )
    if isinstance(desired, bool) or isinstance(observed, bool):
        return observed is desired
    if isinstance(desired, int | float) and isinstance(observed, int | float):
        return float(observed) == float(desired)
    return bool(observed == desired)


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
