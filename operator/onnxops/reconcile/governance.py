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

The Model is parsed once (``ParsedModel``; its handler reports a spec that does not parse with
:func:`invalid_spec_plan`), its ModelVersions once per list (``ListedModelVersion``). A version whose stored
object does not parse is named where an approval or an alias refers to it, left out of the retention, and
never written to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from onnxops import API_VERSION, GROUP
from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason
from onnxops.api.v1alpha1.meta import problem_of
from onnxops.api.v1alpha1.model import Approval, ModelSpec, ModelStatus, ParsedModel
from onnxops.api.v1alpha1.modelversion import ListedModelVersion

from . import versions as v
from .errors import describe_error, error_status
from .status import status_patch


@dataclass(frozen=True)
class Governance:
    """What resolution needs from the Model: the policy, the effective approvals, the aliases. ``problem``:
    the stored Model does not parse (the field and the problem); then nothing follows ``latest`` or an
    alias until it is fixed (whatever policy it meant to set is unknown)."""

    require_approval: bool = False
    approved: frozenset[int] = frozenset()
    aliases: Mapping[str, int] = field(default_factory=dict)
    archived: frozenset[int] = frozenset()
    model_name: str = ""
    problem: str | None = None

    def approval_note(self, version: int) -> str:
        return (
            f"v{version} awaits approval (Model {self.model_name} spec.approvals; "
            f"`onnxops approve {self.model_name} {version} --reason ...`)"
        )


def _approvals(spec: ModelSpec) -> dict[int, Approval]:
    return {a.version: a for a in spec.approvals or []}


def aliases_of(spec: ModelSpec) -> dict[str, int]:
    return dict(spec.aliases or {})


def require_approval(spec: ModelSpec) -> bool:
    return spec.release_policy is not None and spec.release_policy.require_approval


def parse_model(model: ParsedModel | Mapping[str, Any] | None) -> ParsedModel | str | None:
    """The Model parsed (None: there is none), or why its stored spec does not parse (naming the field)."""
    if model is None or isinstance(model, ParsedModel):
        return model
    try:
        return ParsedModel.parse(model)
    except ValidationError as e:
        return problem_of("metadata" if e.title == "ObjectMeta" else "spec", e)


def from_model(
    model: ParsedModel | Mapping[str, Any] | None, mvs: Iterable[v.MvLike], name: str
) -> Governance:
    """The effective governance: approvals of existing, parsed, not rolled-back versions; archived versions
    as the ModelVersions' status says (written by the Model's reconcile). ``model``: parsed (a stored
    object is parsed here; one that does not parse gives a Governance with its ``problem``)."""
    parsed = parse_model(model)
    if isinstance(parsed, str):
        return Governance(model_name=name, problem=parsed)
    spec = parsed.spec if parsed is not None else ModelSpec()
    own = v.by_version(mvs, name)
    approved = frozenset(
        n for n in _approvals(spec) if n in own and own[n].parsed is not None and not v.is_rejected(own[n])
    )
    return Governance(
        require_approval=require_approval(spec),
        approved=approved,
        aliases=aliases_of(spec),
        archived=frozenset(n for n, m in own.items() if m.status.archived),
        model_name=name,
    )


# ---- retention ------------------------------------------------------------------------------------------


def to_archive(mvs: Iterable[v.MvLike], keep: int | None, protected: Iterable[int]) -> set[int]:
    """Versions the retention archives: Ready, unserved, not ``protected`` (aliased), beyond the newest
    ``keep``. ``keep`` None: no retention."""
    if keep is None:
        return set()
    keep_out = set(protected)
    candidates = sorted(
        (
            m.version
            for m in v.listed(mvs)
            if m.ready and m.version is not None and not m.status.served_by and m.version not in keep_out
        ),
        reverse=True,
    )
    return set(candidates[max(0, keep) :])


# ---- status ---------------------------------------------------------------------------------------------

# the ModelVersion status fields the Model's reconcile owns (wire name -> field)
_SNAKE = {
    "approved": "approved",
    "approvedBy": "approved_by",
    "aliases": "aliases",
    "archived": "archived",
    "archivedAt": "archived_at",
}
GOVERNED = tuple(_SNAKE)


@dataclass(frozen=True)
class ModelPlan:
    status: dict[str, Any]
    mv_patches: list[tuple[str, dict[str, Any]]]  # (ModelVersion name, status merge patch)
    problems: list[str]
    events: list[tuple[str, str, str]] = field(default_factory=list)


def invalid_spec_plan(model: Mapping[str, Any], exc: ValidationError, now: datetime) -> ModelPlan:
    """A Model whose spec does not parse into the API's types (e.g. stored before the API refused what it
    holds): Ready=False and Stalled=True with reason InvalidSpec and a message naming the field and the
    problem, and one Warning Event. Nothing else: no ModelVersion's governance fields and no other status
    field change (InferenceServices following ``latest`` or an alias keep what they serve meanwhile)."""
    reason, message = describe_error(exc)
    old = dict(model.get("status") or {})
    new = {**error_status("Model", dict(model), reason, message, now), "message": message}
    changed = bool(status_patch(old, new))
    return ModelPlan(new, [], [message], [("Warning", reason, message)] if changed else [])


def problems(model: ParsedModel | Mapping[str, Any], by_v: Mapping[int, v.MvLike]) -> list[str]:
    """Every spec entry the operator ignores, naming the field and why."""
    spec = ParsedModel.of(model).spec
    own = {n: ListedModelVersion.of(m) for n, m in by_v.items()}
    return _approval_problems(spec, own) + _alias_problems(spec, own)


def _approval_problems(spec: ModelSpec, by_v: Mapping[int, ListedModelVersion]) -> list[str]:
    out: list[str] = []
    for n in sorted(_approvals(spec)):
        mv = by_v.get(n)
        where = f"spec.approvals[version={n}]"
        if mv is None:
            out.append(f"{where}: no ModelVersion v{n} of this model; the approval is not used")
        elif mv.parsed is None:
            out.append(f"{where}: v{n} is never served ({v.not_ready(mv)}); the approval is not used")
        elif v.is_rejected(mv):
            who = ", ".join(sorted(v.rejected_by(mv))) or "an InferenceService"
            reason = mv.status.rejected_reason or Reason.ROLLED_BACK
            out.append(
                f"{where}: v{n} was rolled back by {who} ({reason}); a rejected version cannot be "
                "approved, the approval is not used"
            )
        elif mv.failed:
            out.append(f"{where}: v{n} failed verification; it is never served")
    return out


def _alias_problems(spec: ModelSpec, by_v: Mapping[int, ListedModelVersion]) -> list[str]:
    out: list[str] = []
    for alias, n in sorted(aliases_of(spec).items()):
        mv = by_v.get(n)
        where = f"spec.aliases.{alias}"
        if mv is None:
            out.append(
                f"{where}: no ModelVersion v{n} of this model; services following @{alias} keep what "
                "they serve"
            )
        elif not mv.ready:
            out.append(
                f"{where}: v{n} is not Ready ({v.not_ready(mv)}); services following @{alias} keep what "
                "they serve"
            )
    return out


def _mv_patch(
    mv: ListedModelVersion, aliases: list[str] | None, approval: Approval | None, archive: bool, now_text: str
) -> dict[str, Any]:
    """The governance fields of one ModelVersion that differ from what its status says."""
    have = {k: getattr(mv.status, attr) for k, attr in _SNAKE.items()}
    want = {
        "approved": True if approval is not None else None,
        "approvedBy": approval.by if approval is not None else None,
        "aliases": aliases,
        "archived": True if archive else None,
        "archivedAt": (mv.status.archived_at or now_text) if archive else None,
    }
    return {k: x for k, x in want.items() if have[k] != x}


def plan(
    model: ParsedModel | Mapping[str, Any],
    mvs: Iterable[v.MvLike],
    *,
    now_text: str,
    now: datetime | None = None,
) -> ModelPlan:
    """The Model's status and its ModelVersions' governance fields (level-triggered, idempotent).
    ``model``: parsed at the handler boundary (a dict is parsed here)."""
    model = ParsedModel.of(model)
    name, spec = model.meta.name, model.spec
    own = [m for m in v.of_model(mvs, name) if not m.deleting]
    by_v = {v.number(m): m for m in own}
    aliases = aliases_of(spec)
    keep = spec.retention.keep_unserved if spec.retention is not None else None
    archive = to_archive(own, keep, aliases.values())
    approvals = _approvals(spec)
    gov_approved = from_model(model, own, name).approved
    patches: list[tuple[str, dict[str, Any]]] = []
    for n, mv in sorted(by_v.items()):
        if mv.parsed is None:  # its status cannot be compared: left as it is (its own reconcile names it)
            continue
        names_ = sorted(a for a, x in aliases.items() if x == n) or None
        approval = approvals[n] if n in gov_approved else None
        patch = _mv_patch(mv, names_, approval, n in archive, now_text)
        if patch:
            patches.append((mv.name, patch))
    found = problems(model, by_v)
    gen = model.meta.generation
    message = (
        "; ".join(found)
        if found
        else (f"{len(by_v)} version(s), {len(gov_approved)} approved, {len(archive)} archived")
    )
    conds = cond.summarize(
        model.observed.conditions_as_stored(),
        ready=not found,
        reason=Reason.INVALID_GOVERNANCE if found else Reason.CONSISTENT,
        message=message,
        generation=gen,
        now=now,
    )
    status = ModelStatus(
        observed_generation=gen,
        latest_version=max(by_v, default=None),
        approved_versions=sorted(gov_approved) or None,
        archived_versions=sorted(archive) or None,
        message=message,
    )
    return ModelPlan(status=status_json(status, conds), mv_patches=patches, problems=found)


def status_json(status: ModelStatus, conditions: list[dict[str, Any]]) -> dict[str, Any]:
    """The Model's status as written: every field the reconcile owns (None clears it in the merge patch),
    the conditions as ``api.conditions`` keeps them."""
    out = status.model_dump(by_alias=True, mode="json", exclude={"conditions"})
    return {**out, "conditions": conditions}


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
