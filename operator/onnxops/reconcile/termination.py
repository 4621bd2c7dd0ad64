"""Reading a container's termination message (the trainer's / verifier's JSON result) from its pods."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from onnxops.api.v1alpha1.termination import MalformedResult, json_object

# scrub/short live in onnxops.objects.text (kube/events.py uses them too); re-exported here.
from onnxops.objects.text import scrub as scrub
from onnxops.objects.text import short as short


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
    return json_object(message)


def latest_result(
    pods: list[dict[str, Any]], container: str, *, ok: bool | None = None
) -> tuple[dict[str, Any] | None, str]:
    """(parsed result, raw message) of the newest terminated container, optionally only ok/not ok ones.

    Untyped: the label-evaluation Job's result (drift/performance_source.from_label_job reads it); the
    trainer's and the verifier's results are read with ``latest_typed`` and their api/ models."""
    raw = ""
    for term in reversed(terminated_states(pods, container)):
        msg = str(term.get("message") or "")
        res = parse_result(msg)
        if res is not None and (ok is None or bool(res.get("ok")) == ok):
            return res, msg
        if not raw and msg:
            raw = msg
    return None, raw


R = TypeVar("R")


@dataclass(frozen=True)
class Latest(Generic[R]):
    """The newest terminated container's result, parsed once with the contract's model (api/v1alpha1/
    termination.py). ``result``: the newest valid result with the wanted ``ok``; ``malformed``: why the
    newest JSON object with that ``ok`` is not a valid result (then ``result`` is None); ``raw``: that
    message, else the newest non-empty one (e.g. the log tail of a crash)."""

    result: R | None
    raw: str
    malformed: str | None = None


def latest_typed(
    pods: list[dict[str, Any]], container: str, parse: Callable[[dict[str, Any]], R], *, ok: bool
) -> Latest[R]:
    """The newest ok / not ok result of the named container, parsed with ``parse`` (which raises
    MalformedResult for a JSON object that breaks the contract)."""
    raw = ""
    for term in reversed(terminated_states(pods, container)):
        msg = str(term.get("message") or "")
        data = json_object(msg)
        if data is not None and bool(data.get("ok")) == ok:
            try:
                return Latest(parse(data), msg)
            except MalformedResult as exc:
                return Latest(None, msg, str(exc))
        if not raw and msg:
            raw = msg
    return Latest(None, raw)


# Waiting reasons that do not go away by themselves: the pod needs a fix (image, Secret, ConfigMap, ...).
STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "PreCreateHookError",
        "PostStartHookError",
    }
)


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
