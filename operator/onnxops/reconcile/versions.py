"""Pure decisions about ModelVersions: which one ``version`` resolves to, and the next free number."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from onnxops.api.conditions import Reason


def version_of(mv: dict[str, Any]) -> int:
    return int(mv["spec"]["version"])


def name_of(mv: dict[str, Any]) -> str:
    return str(mv["metadata"]["name"])


def is_ready(mv: dict[str, Any]) -> bool:
    return (mv.get("status") or {}).get("phase") == "Ready"


def is_failed(mv: dict[str, Any]) -> bool:
    return (mv.get("status") or {}).get("phase") == "Failed"


def is_rejected(mv: dict[str, Any]) -> bool:
    return bool((mv.get("status") or {}).get("rejected"))


def is_deleting(mv: dict[str, Any]) -> bool:
    return bool(mv.get("metadata", {}).get("deletionTimestamp"))


@dataclass(frozen=True)
class Resolution:
    """The version ``spec.version`` points at. ``mv`` is set only when it may be served (Ready)."""

    version: int | None
    mv: dict[str, Any] | None
    reason: str
    message: str

    @property
    def ok(self) -> bool:
        return self.mv is not None


def resolve(spec_version: int | str, model: str, mvs: Iterable[dict[str, Any]]) -> Resolution:
    """``latest`` = the newest Ready version that is not rejected; an integer = that version if Ready."""
    own = [m for m in mvs if m.get("spec", {}).get("model") == model and not is_deleting(m)]
    if isinstance(spec_version, str) and spec_version != "latest":
        if not spec_version.isdigit():
            return Resolution(
                None,
                None,
                Reason.INVALID_SPEC,
                f"spec.version must be an integer or 'latest', got {spec_version!r}",
            )
        spec_version = int(spec_version)
    if spec_version == "latest":
        ready = [m for m in own if is_ready(m) and not is_rejected(m)]
        if not ready:
            return Resolution(
                None,
                None,
                Reason.VERSION_NOT_FOUND,
                f"no Ready, non-rejected ModelVersion of model {model!r}",
            )
        best = max(ready, key=version_of)
        return Resolution(version_of(best), best, Reason.AVAILABLE, f"latest is v{version_of(best)}")
    v = int(spec_version)
    match = [m for m in own if version_of(m) == v]
    if not match:
        return Resolution(v, None, Reason.VERSION_NOT_FOUND, f"ModelVersion {model}-v{v} not found")
    mv = match[0]
    if is_failed(mv):
        msg = (mv.get("status") or {}).get("message") or "verification failed"
        return Resolution(v, None, Reason.VERIFICATION_FAILED, f"{model}-v{v} failed verification: {msg}")
    if not is_ready(mv):
        return Resolution(v, None, Reason.VERSION_NOT_READY, f"{model}-v{v} is not verified yet")
    return Resolution(v, mv, Reason.AVAILABLE, f"v{v}")


def next_version(mvs: Iterable[dict[str, Any]], model: str) -> int:
    """max(existing version numbers of ``model``) + 1, or 1."""
    nums = [version_of(m) for m in mvs if m.get("spec", {}).get("model") == model]
    return max(nums, default=0) + 1


def by_version(mvs: Iterable[dict[str, Any]], model: str) -> dict[int, dict[str, Any]]:
    return {version_of(m): m for m in mvs if m.get("spec", {}).get("model") == model}
