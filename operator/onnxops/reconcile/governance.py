"""Release governance from the ``Model`` resource (pure): effective approvals, aliases, retention, and the
status the operator writes on the Model and on its ModelVersions.

The Model's spec is the release team's (Git or ``onnxops approve``); the operator only reads it. Bad
entries never fail anything: they are ignored and named in the Model's status (``Ready=False``,
reason ``InvalidGovernance``, the message names the field), so nothing served changes because of them:

- ``spec.approvals[version=N]`` of a version that does not exist, or that an InferenceService rolled back
  (``status.rejected`` of the ModelVersion): not counted as an approval;
- ``spec.aliases.<a>`` naming a version that does not exist or is not Ready: services following ``@a``
  keep what they serve, with the reason in their ``ReleaseBlocked`` condition.

Retention (``spec.retention.keepUnserved: N``): of the Ready versions that no InferenceService serves
(``status.servedBy``) and no alias names, the newest N stay; the older ones are Archived
(``status.archived`` on the ModelVersion) and never resolved by ``latest``, an alias or a number. It is
level-triggered: raising N, or naming a version in an alias, un-archives it. Artifacts are never deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from onnxops import API_VERSION, GROUP
from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason

from . import versions as v


@dataclass(frozen=True)
class Governance:
    """What resolution needs from the Model: the policy, the effective approvals, the aliases."""

    require_approval: bool = False
    approved: frozenset[int] = frozenset()
    aliases: Mapping[str, int] = field(default_factory=dict)
    archived: frozenset[int] = frozenset()
    model_name: str = ""

    def approval_note(self, version: int) -> str:
        return (
            f"v{version} awaits approval (Model {self.model_name} spec.approvals; "
            f"`onnxops approve {self.model_name} {version} --reason ...`)"
        )


def _approvals(model: Mapping[str, Any] | None) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for a in ((model or {}).get("spec") or {}).get("approvals") or []:
        if isinstance(a, Mapping) and str(a.get("version", "")).isdigit():
            out[int(a["version"])] = dict(a)
    return out


def aliases_of(model: Mapping[str, Any] | None) -> dict[str, int]:
    raw = ((model or {}).get("spec") or {}).get("aliases") or {}
    return {str(k): int(x) for k, x in raw.items() if str(x).isdigit()} if isinstance(raw, Mapping) else {}


def require_approval(model: Mapping[str, Any] | None) -> bool:
    return bool((((model or {}).get("spec") or {}).get("releasePolicy") or {}).get("requireApproval"))


def is_archived(mv: Mapping[str, Any]) -> bool:
    return bool((mv.get("status") or {}).get("archived"))


def from_model(model: Mapping[str, Any] | None, mvs: Iterable[dict[str, Any]], name: str) -> Governance:
    """The effective governance: approvals of existing, not rolled-back versions; archived versions as the
    ModelVersions' status says (written by the Model's reconcile)."""
    own = {v.version_of(m): m for m in mvs if m.get("spec", {}).get("model") == name}
    approved = frozenset(n for n in _approvals(model) if n in own and not v.is_rejected(own[n]))
    return Governance(
        require_approval=require_approval(model),
        approved=approved,
        aliases=aliases_of(model),
        archived=frozenset(n for n, m in own.items() if is_archived(m)),
        model_name=name,
    )


# ---- retention ------------------------------------------------------------------------------------------


def to_archive(mvs: Iterable[dict[str, Any]], keep: int | None, protected: Iterable[int]) -> set[int]:
    """Versions the retention archives: Ready, unserved, not ``protected`` (aliased), beyond the newest
    ``keep``. ``keep`` None: no retention."""
    if keep is None:
        return set()
    keep_out = set(protected)
    candidates = sorted(
        (
            v.version_of(m)
            for m in mvs
            if v.is_ready(m)
            and not (m.get("status") or {}).get("servedBy")
            and v.version_of(m) not in keep_out
        ),
        reverse=True,
    )
    return set(candidates[max(0, keep) :])


# ---- status ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPlan:
    status: dict[str, Any]
    mv_patches: list[tuple[str, dict[str, Any]]]  # (ModelVersion name, status merge patch)
    problems: list[str]


def problems(model: Mapping[str, Any], by_v: Mapping[int, dict[str, Any]]) -> list[str]:
    """Every spec entry the operator ignores, naming the field and why."""
    out: list[str] = []
    for n in sorted(_approvals(model)):
        mv = by_v.get(n)
        where = f"spec.approvals[version={n}]"
        if mv is None:
            out.append(f"{where}: no ModelVersion v{n} of this model; the approval is not used")
        elif v.is_rejected(mv):
            who = ", ".join(sorted(v.rejected_by(mv))) or "an InferenceService"
            reason = (mv.get("status") or {}).get("rejectedReason") or Reason.ROLLED_BACK
            out.append(
                f"{where}: v{n} was rolled back by {who} ({reason}); a rejected version cannot be "
                "approved, the approval is not used"
            )
        elif v.is_failed(mv):
            out.append(f"{where}: v{n} failed verification; it is never served")
    for alias, n in sorted(aliases_of(model).items()):
        mv = by_v.get(n)
        where = f"spec.aliases.{alias}"
        if mv is None:
            out.append(
                f"{where}: no ModelVersion v{n} of this model; services following @{alias} keep what "
                "they serve"
            )
        elif not v.is_ready(mv):
            out.append(
                f"{where}: v{n} is not Ready ({(mv.get('status') or {}).get('phase') or 'Pending'}); "
                f"services following @{alias} keep what they serve"
            )
    return out


def plan(model: dict[str, Any], mvs: list[dict[str, Any]], *, now_text: str, now: Any = None) -> ModelPlan:
    """The Model's status and its ModelVersions' governance fields (level-triggered, idempotent)."""
    name = str(model["metadata"]["name"])
    own = [m for m in mvs if m.get("spec", {}).get("model") == name and not v.is_deleting(m)]
    by_v = {v.version_of(m): m for m in own}
    aliases = aliases_of(model)
    retention = (model.get("spec") or {}).get("retention") or {}
    keep = retention.get("keepUnserved")
    archive = to_archive(own, int(keep) if keep is not None else None, aliases.values())
    approvals = _approvals(model)
    gov_approved = from_model(model, own, name).approved
    patches: list[tuple[str, dict[str, Any]]] = []
    for n, mv in sorted(by_v.items()):
        st = mv.get("status") or {}
        names_ = sorted(a for a, x in aliases.items() if x == n) or None
        approved = n in gov_approved
        want = {
            "approved": True if approved else None,
            "approvedBy": str(approvals[n].get("by")) if approved else None,
            "aliases": names_,
            "archived": True if n in archive else None,
            "archivedAt": (st.get("archivedAt") or now_text) if n in archive else None,
        }
        patch = {k: x for k, x in want.items() if st.get(k) != x}
        if patch:
            patches.append((v.name_of(mv), patch))
    found = problems(model, by_v)
    gen = int(model["metadata"].get("generation") or 1)
    old = model.get("status") or {}
    message = (
        "; ".join(found)
        if found
        else (f"{len(by_v)} version(s), {len(gov_approved)} approved, {len(archive)} archived")
    )
    conds = cond.summarize(
        old.get("conditions"),
        ready=not found,
        reason=Reason.INVALID_GOVERNANCE if found else Reason.CONSISTENT,
        message=message,
        generation=gen,
        now=now,
    )
    status = {
        "observedGeneration": gen,
        "latestVersion": max(by_v, default=None),
        "approvedVersions": sorted(gov_approved) or None,
        "archivedVersions": sorted(archive) or None,
        "message": message,
        "conditions": conds,
    }
    return ModelPlan(status=status, mv_patches=patches, problems=found)


def empty_model(namespace: str, name: str) -> dict[str, Any]:
    """The Model created at a model's first registration when none exists: no policy, no aliases."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {f"{GROUP}/created-by": "operator"},
        },
        "spec": {},
    }
