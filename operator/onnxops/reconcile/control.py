"""Manual rollout control (pure): the requests `onnxops promote | abort | pause | resume` leave in
``status.control`` and what the rollout state machine makes of them.

The commands write the status subresource only (never spec, never metadata), so a GitOps tool neither
reverts them nor shows the object out of sync; the operator consumes ``promote`` and ``abort`` in the same
status write that acts on them, and drops a request that no longer names the current canary (stale).
Every request names the canary version (and, for promote, the step) it was made for, so a command that
arrives late never acts on another rollout, and repeating a command before the operator acted on it
changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KEYS = ("promote", "abort", "pause")


@dataclass(frozen=True)
class Control:
    promote: dict[str, Any] | None = None
    abort: dict[str, Any] | None = None
    pause: dict[str, Any] | None = None

    @classmethod
    def from_status(cls, st: Mapping[str, Any] | None) -> Control:
        c = (st or {}).get("control") or {}
        return cls(*(dict(c[k]) if isinstance(c.get(k), Mapping) else None for k in KEYS))

    def get(self, key: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = getattr(self, key)
        return value

    def without(self, cleared: set[str]) -> dict[str, Any]:
        """status.control after the operator consumed / dropped ``cleared``. Never None: the status diff then
        nulls only the cleared keys, so a request another key holds that a command wrote meanwhile stays."""
        return {k: self.get(k) for k in KEYS if k not in cleared and self.get(k) is not None}


def who(req: Mapping[str, Any]) -> str:
    by = req.get("by")
    return f" by {by}" if by else ""


def matches(req: Mapping[str, Any] | None, canary: int | None, step: int | None = None) -> bool:
    """The request is for this canary (and, for promote, this step)."""
    if req is None or canary is None or int(req.get("version") or 0) != int(canary):
        return False
    return step is None or req.get("step") is None or int(req["step"]) == int(step)


def describe(key: str, req: Mapping[str, Any]) -> str:
    what = {
        "promote": "promote --full" if req.get("full") else "promote",
        "abort": "abort",
        "pause": "pause",
    }[key]
    step = f" step {int(req['step']) + 1}" if req.get("step") is not None else ""
    return f"{what} of v{req.get('version')}{step}{who(req)}"
