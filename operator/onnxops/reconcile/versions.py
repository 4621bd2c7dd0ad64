"""Pure decisions about ModelVersions: which one ``version`` resolves to, the next free number, and the
per-InferenceService record of rejected (rolled back) versions.

A rollback is recorded where it belongs: in the InferenceService that rolled back
(``status.rejectedVersions``), so ``version: latest`` skips that version for this service only. The
ModelVersion's ``status.rejectedBy`` (and ``rejected``) only tell which services rejected it; they block
nothing, so another service of the same model may still roll the version out.

The functions take a model's versions parsed once (``ListedModelVersion``, :func:`of_model`; a dict is
parsed on entry). A version whose stored object does not parse is never served and never marked, named
where it is asked for; ``latest`` does not move past a newer Ready one (:func:`_unreadable_newest`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from onnxops.api.conditions import Reason
from onnxops.api.v1alpha1.inferenceservice import RejectedVersion
from onnxops.api.v1alpha1.modelversion import ListedModelVersion, ParsedModelVersion, RejectedBy
from onnxops.api.v1alpha1.servicerecord import ServiceRecord

# A list's entry: parsed (``ListedModelVersion``), or a stored object parsed on entry (the tests' dicts, a
# caller still holding the index's copies)
MvLike = ListedModelVersion | Mapping[str, Any]


def listed(mvs: Iterable[MvLike]) -> list[ListedModelVersion]:
    """The list parsed once (entries already parsed are kept); see ``ListedModelVersion``."""
    return [ListedModelVersion.of(m) for m in mvs]


def of_model(mvs: Iterable[MvLike], model: str) -> list[ListedModelVersion]:
    """The versions of ``model`` with a number (a stored object of another model is not parsed)."""
    out = []
    for m in mvs:
        if not isinstance(m, ListedModelVersion):
            if (m.get("spec") or {}).get("model") != model:
                continue
            m = ListedModelVersion.parse(m)
        if m.model == model and m.version is not None:
            out.append(m)
    return out


def number(mv: ListedModelVersion) -> int:
    """The version number of an entry of :func:`of_model` (which keeps only those with one)."""
    assert mv.version is not None
    return mv.version


def not_ready(mv: ListedModelVersion) -> str:
    """Why ``mv`` is not Ready: its phase, or the field of its stored object that does not parse."""
    if mv.parsed is None:
        return f"its stored object does not parse: {mv.problem}"
    return mv.status.phase or "Pending"


def is_rejected(mv: ListedModelVersion) -> bool:
    """Informative only: at least one InferenceService rolled this version back."""
    return bool(mv.status.rejected)


def rejected_by(mv: ListedModelVersion) -> dict[str, RejectedBy]:
    """The ModelVersion's informative record: InferenceService name -> (reason, at)."""
    return dict(mv.status.rejected_by or {})


@dataclass(frozen=True)
class Resolution:
    """The version ``spec.version`` points at. ``mv`` is set only when it may be served (Ready, parsed).
    ``blocked``: (reason, message) when release governance keeps a version from being served (a newer
    version awaiting approval, an alias that cannot be followed), whether or not something is served."""

    version: int | None
    mv: ParsedModelVersion | None
    reason: str
    message: str
    blocked: tuple[str, str] | None = None
    governed: bool = False  # resolved with the Model's governance (the ReleaseBlocked condition is current)

    @property
    def ok(self) -> bool:
        return self.mv is not None


class GovernanceView(Protocol):
    """What resolution reads of a Model (reconcile/governance.py builds it)."""

    @property
    def require_approval(self) -> bool: ...
    @property
    def approved(self) -> frozenset[int]: ...
    @property
    def aliases(self) -> Mapping[str, int]: ...
    @property
    def archived(self) -> frozenset[int]: ...
    @property
    def model_name(self) -> str: ...
    @property
    def problem(self) -> str | None: ...

    def approval_note(self, version: int) -> str: ...


def _fail(version: int | None, reason: str, message: str, *, governance: bool = False) -> Resolution:
    return Resolution(version, None, reason, message, (reason, message) if governance else None)


def resolve(
    spec_version: int | str,
    model: str,
    mvs: Iterable[MvLike],
    rejected: Collection[int] = (),
    gov: GovernanceView | None = None,
) -> Resolution:
    """See :func:`_resolve`; ``governed`` tells whether ``gov`` was given."""
    res = _resolve(spec_version, model, of_model(mvs, model), rejected, gov)
    return replace(res, governed=True) if gov is not None else res


def _resolve(
    spec_version: int | str,
    model: str,
    mvs: list[ListedModelVersion],
    rejected: Collection[int] = (),
    gov: GovernanceView | None = None,
) -> Resolution:
    """``latest`` = the newest Ready version not in ``rejected`` (the versions THIS InferenceService rolled
    back, see :func:`rejected_versions`), not archived, and approved when the Model requires approval;
    ``@alias`` = the version the Model's alias names, if Ready, not archived, not rolled back here and
    approved when required; an integer = that version if Ready and not archived (a pinned number needs no
    approval: the pin is itself the reviewed choice)."""
    own = [m for m in mvs if not m.deleting]
    archived = gov.archived if gov is not None else frozenset()
    if isinstance(spec_version, str) and spec_version != "latest" and not spec_version.startswith("@"):
        if not spec_version.isdigit():
            return Resolution(
                None,
                None,
                Reason.INVALID_SPEC,
                f"spec.version must be an integer, 'latest' or '@<alias>', got {spec_version!r}",
            )
        spec_version = int(spec_version)
    if isinstance(spec_version, str) and gov is not None and gov.problem is not None:
        return _fail(
            None,
            Reason.INVALID_GOVERNANCE,
            f"Model {model} cannot be read ({gov.problem}); {spec_version} is not resolved until it is fixed",
            governance=True,
        )
    if isinstance(spec_version, str) and spec_version.startswith("@"):
        return _resolve_alias(spec_version[1:], model, own, rejected, gov)
    if spec_version == "latest":
        skipped = set(rejected) | archived
        ready = [m for m in own if m.status.phase == "Ready" and number(m) not in skipped]
        if held := _unreadable_newest(model, ready):
            return held
        return _latest(model, [m for m in ready if m.ready], gov)
    return _pinned(model, int(spec_version), own, archived)


def _unreadable_newest(model: str, ready: list[ListedModelVersion]) -> Resolution | None:
    """``latest`` does not move past a newer version whose stored object does not parse (its status says
    Ready): not served, and not skipped either (that would roll a service back to an older version when
    the one it serves stops parsing); services keep what they serve, ReleaseBlocked says why."""
    newest = max(ready, key=number, default=None)
    if newest is None or newest.parsed is not None:
        return None
    return _fail(
        None,
        Reason.VERSION_NOT_READY,
        f"latest is {model}-v{number(newest)}, which is not Ready: {not_ready(newest)}; services "
        "following latest keep what they serve until it is fixed or deleted",
        governance=True,
    )


def _latest(model: str, ready: list[ListedModelVersion], gov: GovernanceView | None) -> Resolution:
    if gov is not None and gov.require_approval:
        approved = [m for m in ready if number(m) in gov.approved]
        newest = max(ready, key=number, default=None)
        best = max(approved, key=number, default=None)
        waiting = (
            (Reason.AWAITING_APPROVAL, gov.approval_note(number(newest)))
            if newest is not None and (best is None or number(newest) > number(best))
            else None
        )
        if best is None:
            msg = waiting[1] if waiting else f"no Ready ModelVersion of model {model!r} to serve"
            reason = Reason.AWAITING_APPROVAL if waiting else Reason.VERSION_NOT_FOUND
            return Resolution(
                None, None, reason, f"no approved Ready ModelVersion of model {model!r}: {msg}", waiting
            )
        return Resolution(
            number(best), best.parsed, Reason.AVAILABLE, f"latest approved is v{number(best)}", waiting
        )
    if not ready:
        return Resolution(
            None,
            None,
            Reason.VERSION_NOT_FOUND,
            f"no Ready ModelVersion of model {model!r} that this InferenceService has not rolled back",
        )
    best = max(ready, key=number)
    return Resolution(number(best), best.parsed, Reason.AVAILABLE, f"latest is v{number(best)}")


def _pinned(model: str, v: int, own: list[ListedModelVersion], archived: frozenset[int]) -> Resolution:
    match = [m for m in own if number(m) == v]
    if not match:
        return Resolution(v, None, Reason.VERSION_NOT_FOUND, f"ModelVersion {model}-v{v} not found")
    mv = match[0]
    if mv.parsed is None:
        return Resolution(v, None, Reason.VERSION_NOT_READY, f"{model}-v{v} is not Ready: {not_ready(mv)}")
    if mv.failed:
        msg = mv.status.message or "verification failed"
        return Resolution(v, None, Reason.VERIFICATION_FAILED, f"{model}-v{v} failed verification: {msg}")
    if not mv.ready:
        return Resolution(v, None, Reason.VERSION_NOT_READY, f"{model}-v{v} is not verified yet")
    if v in archived:
        return _fail(
            v,
            Reason.VERSION_ARCHIVED,
            f"{model}-v{v} is archived by the Model's retention "
            "(spec.retention.keepUnserved); it is never served",
            governance=True,
        )
    return Resolution(v, mv.parsed, Reason.AVAILABLE, f"v{v}")


def _resolve_alias(
    alias: str,
    model: str,
    own: list[ListedModelVersion],
    rejected: Collection[int],
    gov: GovernanceView | None,
) -> Resolution:
    aliases = gov.aliases if gov is not None else {}
    if alias not in aliases:
        return _fail(
            None,
            Reason.ALIAS_NOT_FOUND,
            f"spec.version: alias {alias!r} is not set on Model {model} (spec.aliases)",
            governance=True,
        )
    v = int(aliases[alias])
    assert gov is not None
    where = f"alias {alias!r} of Model {model} names v{v}"
    match = [m for m in own if number(m) == v]
    if not match:
        return _fail(
            None, Reason.ALIAS_NOT_READY, f"{where}: ModelVersion {model}-v{v} not found", governance=True
        )
    mv = match[0]
    if not mv.ready:
        return _fail(None, Reason.ALIAS_NOT_READY, f"{where}: not Ready ({not_ready(mv)})", governance=True)
    if v in gov.archived:
        return _fail(None, Reason.VERSION_ARCHIVED, f"{where}: archived by the retention", governance=True)
    if v in rejected:
        return _fail(
            None,
            Reason.VERSION_REJECTED,
            f"{where}: this InferenceService rolled it back "
            "(status.rejectedVersions); pin it by number to re-admit it",
            governance=True,
        )
    if gov.require_approval and v not in gov.approved:
        return _fail(None, Reason.AWAITING_APPROVAL, f"{where}: {gov.approval_note(v)}", governance=True)
    return Resolution(v, mv.parsed, Reason.AVAILABLE, f"@{alias} is v{v}")


def next_version(mvs: Iterable[MvLike], model: str) -> int:
    """max(existing version numbers of ``model``) + 1, or 1 (also a number whose object does not parse:
    numbers are never issued twice)."""
    return max((number(m) for m in of_model(mvs, model)), default=0) + 1


def by_version(mvs: Iterable[MvLike], model: str) -> dict[int, ListedModelVersion]:
    """The versions of ``model`` by number (parsed or not: see ``ListedModelVersion``)."""
    return {number(m): m for m in of_model(mvs, model)}


MAX_REJECTED = 64  # status.rejectedVersions keeps the newest entries


StatusLike = ServiceRecord | Mapping[str, Any] | None  # a stored status is parsed on entry


def _entries(status: StatusLike) -> list[RejectedVersion]:
    """``status.rejectedVersions`` (``ServiceRecord``: an entry that does not parse is left out)."""
    return list(ServiceRecord.of(status).rejected_versions or [])


def rejected_versions(status: StatusLike) -> set[int]:
    """The versions an InferenceService (its status) has rolled back and not re-admitted."""
    return {e.version for e in _entries(status)}


def legacy_rejection(status: StatusLike, by_v: Mapping[int, ListedModelVersion]) -> tuple[int, str] | None:
    """A rollback recorded by an older operator, which marked the ModelVersion ``rejected`` without
    ``rejectedBy``: it belongs to the service whose ``status.rollback`` names it (carried into its record)."""
    rb = ServiceRecord.of(status).rollback
    mv = by_v.get(rb.from_version) if rb is not None else None
    if rb is None or mv is None or not is_rejected(mv) or rejected_by(mv):
        return None
    return rb.from_version, rb.reason or Reason.ROLLED_BACK


def skipped_by_latest(status: StatusLike, by_v: Mapping[int, ListedModelVersion]) -> set[int]:
    """What ``version: latest`` skips for this InferenceService: its own rejections (and a legacy one)."""
    legacy = legacy_rejection(status, by_v)
    return rejected_versions(status) | ({legacy[0]} if legacy else set())


def record_rejections(
    status: StatusLike,
    new: Iterable[tuple[int, str]],
    *,
    spec_version: int | str,
    generation: int,
    at: str,
    carry: Iterable[tuple[int, str]] = (),
) -> list[dict[str, Any]] | None:
    """The next ``status.rejectedVersions``: the old entries, less those re-admitted (a generation after the
    rejection pins that version in ``spec.version``), plus this reconcile's rollbacks (``new``) and
    ``carry`` (the version of a rollback that still holds, a legacy rejection: recorded even if an older
    operator never did)."""
    pinned = int(spec_version) if str(spec_version).isdigit() else None
    out = [e for e in _entries(status) if not (pinned == e.version and generation > e.generation)]
    have = {e.version for e in out}
    for v, reason in [*new, *carry]:
        if int(v) not in have:
            out.append(RejectedVersion(version=int(v), reason=reason, at=at, generation=generation))
            have.add(int(v))
    return [e.to_dict() for e in out[-MAX_REJECTED:]] or None


def rejection_marks(
    service: str, status_entries: Iterable[Mapping[str, Any]] | None, by_v: Mapping[int, ListedModelVersion]
) -> tuple[list[tuple[str, str]], list[tuple[str, dict[str, Any]]]]:
    """Level-triggered upkeep of the ModelVersions' informative ``rejectedBy`` from this service's own
    record: (ModelVersions to mark, with the reason), (ModelVersions to unmark, with their status patch).
    A version whose stored object does not parse is left as it is (its status cannot be compared)."""
    wanted = {int(e["version"]): str(e.get("reason") or Reason.ROLLED_BACK) for e in status_entries or []}
    mark, unmark = [], []
    for v, mv in sorted(by_v.items()):
        if mv.parsed is None:
            continue
        marks = rejected_by(mv)
        if v in wanted and service not in marks:
            mark.append((mv.name, wanted[v]))
        elif v not in wanted and service in marks:
            patch: dict[str, Any] = {"rejectedBy": {service: None}}
            if not set(marks) - {service}:
                patch.update(rejected=None, rejectedReason=None)
            unmark.append((mv.name, patch))
    return mark, unmark


def mark_patch(service: str, reason: str, at: str) -> dict[str, Any]:
    """The ModelVersion status patch recording that ``service`` rolled it back (informative)."""
    return {"rejected": True, "rejectedReason": reason, "rejectedBy": {service: {"reason": reason, "at": at}}}
