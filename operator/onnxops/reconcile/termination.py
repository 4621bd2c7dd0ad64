"""Reading a container's termination message (the trainer's / verifier's JSON result) from its pods."""

from __future__ import annotations

import json
import re
from typing import Any


def _finished_at(cs: dict[str, Any]) -> str:
    return str(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt") or "")


def terminated_states(pods: list[dict[str, Any]], container: str) -> list[dict[str, Any]]:
    """``state.terminated`` of the named container in each pod, oldest first."""
    out = []
    for p in pods:
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated")
            if cs.get("name") == container and term:
                out.append(term)
    return sorted(out, key=lambda t: str(t.get("finishedAt") or ""))


def parse_result(message: str | None) -> dict[str, Any] | None:
    """The JSON result, or None when the message is not a JSON object (e.g. the log tail of a crash)."""
    if not message:
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def latest_result(
    pods: list[dict[str, Any]], container: str, *, ok: bool | None = None
) -> tuple[dict[str, Any] | None, str]:
    """(parsed result, raw message) of the newest terminated container, optionally only ok/not ok ones."""
    raw = ""
    for term in reversed(terminated_states(pods, container)):
        msg = str(term.get("message") or "")
        res = parse_result(msg)
        if res is not None and (ok is None or bool(res.get("ok")) == ok):
            return res, msg
        if not raw and msg:
            raw = msg
    return None, raw


_SECRETISH = re.compile(
    r"(?i)\b([A-Z0-9_]*(secret|token|password|passwd|credential|access_key)[A-Z0-9_]*)\s*[=:]\s*\S+"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")


def scrub(message: str) -> str:
    """Remove ``KEY=value`` pairs whose key looks like a credential, and user:password in URLs."""
    text = _SECRETISH.sub(lambda m: f"{m.group(1)}=<redacted>", message)
    return _URL_USERINFO.sub(r"\1<redacted>@", text)


def short(text: str, limit: int = 1024) -> str:
    """One line, scrubbed of credentials, at most ``limit`` characters (for status and events)."""
    text = scrub(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Waiting reasons that do not go away by themselves: the pod needs a fix (image, Secret, ConfigMap, ...).
STUCK_REASONS = frozenset({
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError",
    "CreateContainerError", "RunContainerError", "PreCreateHookError", "PostStartHookError",
})


def stuck_waiting(pods: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(reason, "pod <name>: container <c>: <message>") of the newest unfinished pod whose container waits
    for something only a fix can bring (STUCK_REASONS), else None."""
    live = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    live.sort(key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True)
    for p in live:
        st = p.get("status") or {}
        for cs in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = str(waiting.get("reason") or "")
            if reason in STUCK_REASONS:
                pod = (p.get("metadata") or {}).get("name", "")
                detail = str(waiting.get("message") or reason)
                return reason, short(f"pod {pod}: container {cs.get('name', '')}: {detail}")
    return None
