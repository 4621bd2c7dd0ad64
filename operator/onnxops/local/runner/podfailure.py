"""batch/v1 ``podFailurePolicy`` as the Kubernetes Job controller applies it (pure).

For a failed pod the rules are tried in order and the first that matches decides:

- ``onExitCodes``: ``containerName`` (optional) narrows the containers looked at (init containers first,
  then the others, as the real controller); containers that exited 0 never match; ``In`` matches when a
  container's exit code is in ``values``, ``NotIn`` when it is not.
- ``onPodConditions``: the pod has a condition of that ``type`` with that ``status`` (default "True").
- actions: ``FailJob`` (the Job fails at once, reason ``PodFailurePolicy``), ``Ignore`` (the pod is
  replaced and does not count against ``backoffLimit``), ``Count`` (counts, as without a policy).

No rule matching means Count. ``FailIndex`` needs Indexed Jobs, which the local runtime does not run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
FAIL_JOB, IGNORE, COUNT = "FailJob", "Ignore", "Count"
REASON = "PodFailurePolicy"


@dataclass(frozen=True)
class Decision:
    action: str  # FailJob | Ignore | Count
    message: str = ""  # why (for a FailJob: the Job's condition message)


def _terminated_match(req: Obj, statuses: list[Obj]) -> Obj | None:
    name, op = req.get("containerName"), req.get("operator", "In")
    values = {int(v) for v in req.get("values") or []}
    for cs in statuses:
        term = (cs.get("state") or {}).get("terminated")
        if not term or (name is not None and cs.get("name") != name):
            continue
        code = int(term.get("exitCode") or 0)
        if code == 0:  # successful exits never match, for In as for NotIn
            continue
        if (code in values) == (op == "In"):
            return {"name": cs.get("name"), "exitCode": code}
    return None


def _rule_match(rule: Obj, pod: Obj) -> str | None:
    """A description of the match, or None."""
    st, md = pod.get("status") or {}, pod.get("metadata") or {}
    who = f"{md.get('namespace', 'default')}/{md.get('name', '')}"
    req = rule.get("onExitCodes")
    if req:
        hit = _terminated_match(
            req, [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]
        )
        if hit is not None:
            return f"Container {hit['name']} for pod {who} failed with exit code {hit['exitCode']}"
        return None
    conds = {(c.get("type"), c.get("status")) for c in st.get("conditions") or []}
    for pat in rule.get("onPodConditions") or []:
        if (pat.get("type"), pat.get("status", "True")) in conds:
            return f"Pod {who} has condition {pat.get('type')}"
    return None


def decide_pod_failure(policy: Obj | None, pod: Obj) -> Decision:
    """What the Job does about the failed ``pod`` under ``policy`` (spec.podFailurePolicy)."""
    for i, rule in enumerate((policy or {}).get("rules") or []):
        what = _rule_match(rule, pod)
        if what is not None:
            action = str(rule.get("action") or COUNT)
            return Decision(action, f"{what} matching {action} rule at index {i}")
    return Decision(COUNT)
