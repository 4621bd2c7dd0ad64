"""Release governance (issue 14): version resolution as a table (latest / @alias / number × approval ×
rejected × archived), the Model's status and the retention, all pure."""

from __future__ import annotations

from typing import Any

import pytest

from onnxops.api.conditions import Reason
from onnxops.reconcile import governance as gr
from onnxops.reconcile import versions

MODEL = "iris"


def mv(
    v: int,
    phase: str = "Ready",
    *,
    rejected: bool = False,
    archived: bool = False,
    served_by: list[str] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if rejected:
        status.update(
            rejected=True, rejectedReason="AnalysisFailed", rejectedBy={"svc": {"reason": "AnalysisFailed"}}
        )
    if archived:
        status["archived"] = True
    if served_by:
        status["servedBy"] = served_by
    artifact = {"uri": f"pvc://artifacts/iris/r{v}/model.onnx", "sha256": "a" * 64}  # as the API requires
    spec = {"model": MODEL, "version": v, "artifact": artifact}
    return {"metadata": {"name": f"{MODEL}-v{v}"}, "spec": spec, "status": status}


def model(
    *,
    require: bool = False,
    approved: tuple[int, ...] = (),
    aliases: dict[str, int] | None = None,
    keep: int | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"releasePolicy": {"requireApproval": require}}
    spec["approvals"] = [{"version": v, "by": "alice", "reason": "review"} for v in approved]
    if aliases:
        spec["aliases"] = aliases
    if keep is not None:
        spec["retention"] = {"keepUnserved": keep}
    return {"metadata": {"name": MODEL, "generation": 1}, "spec": spec}


R, F, P = "Ready", "Failed", "Pending"
# (id, spec.version, Model, ModelVersions, rolled back by this service, -> version served, reason, blocked)
TABLE: list[
    tuple[str, int | str, dict[str, Any] | None, list[dict[str, Any]], set[int], int | None, str, str | None]
] = [
    # latest, no policy (today's behaviour)
    ("latest-newest-ready", "latest", None, [mv(1), mv(2), mv(3, P)], set(), 2, Reason.AVAILABLE, None),
    ("latest-skips-own-rejection", "latest", None, [mv(1), mv(2)], {2}, 1, Reason.AVAILABLE, None),
    (
        "latest-skips-archived",
        "latest",
        model(),
        [mv(1), mv(2, archived=True)],
        set(),
        1,
        Reason.AVAILABLE,
        None,
    ),
    ("latest-none", "latest", model(), [mv(1, P)], set(), None, Reason.VERSION_NOT_FOUND, None),
    # latest, approval required
    (
        "latest-approved-only",
        "latest",
        model(require=True, approved=(1,)),
        [mv(1), mv(2)],
        set(),
        1,
        Reason.AVAILABLE,
        Reason.AWAITING_APPROVAL,
    ),
    (
        "latest-newest-approved",
        "latest",
        model(require=True, approved=(1, 2)),
        [mv(1), mv(2)],
        set(),
        2,
        Reason.AVAILABLE,
        None,
    ),
    (
        "latest-nothing-approved",
        "latest",
        model(require=True),
        [mv(1)],
        set(),
        None,
        Reason.AWAITING_APPROVAL,
        Reason.AWAITING_APPROVAL,
    ),
    (
        "latest-approved-but-rejected-here",
        "latest",
        model(require=True, approved=(1, 2)),
        [mv(1), mv(2)],
        {2},
        1,
        Reason.AVAILABLE,
        None,
    ),
    (
        "latest-approval-of-rolled-back-not-counted",
        "latest",
        model(require=True, approved=(1, 2)),
        [mv(1), mv(2, rejected=True)],
        set(),
        1,
        Reason.AVAILABLE,
        Reason.AWAITING_APPROVAL,
    ),
    (
        "latest-approved-archived",
        "latest",
        model(require=True, approved=(1, 2)),
        [mv(1), mv(2, archived=True)],
        set(),
        1,
        Reason.AVAILABLE,
        None,
    ),
    (
        "latest-approval-not-required",
        "latest",
        model(require=False, approved=(1,)),
        [mv(1), mv(2)],
        set(),
        2,
        Reason.AVAILABLE,
        None,
    ),
    # @alias
    (
        "alias-ok",
        "@production",
        model(aliases={"production": 1}),
        [mv(1), mv(2)],
        set(),
        1,
        Reason.AVAILABLE,
        None,
    ),
    (
        "alias-missing",
        "@staging",
        model(aliases={"production": 1}),
        [mv(1)],
        set(),
        None,
        Reason.ALIAS_NOT_FOUND,
        Reason.ALIAS_NOT_FOUND,
    ),
    (
        "alias-no-model",
        "@production",
        None,
        [mv(1)],
        set(),
        None,
        Reason.ALIAS_NOT_FOUND,
        Reason.ALIAS_NOT_FOUND,
    ),
    (
        "alias-to-missing-version",
        "@production",
        model(aliases={"production": 9}),
        [mv(1)],
        set(),
        None,
        Reason.ALIAS_NOT_READY,
        Reason.ALIAS_NOT_READY,
    ),
    (
        "alias-to-pending",
        "@production",
        model(aliases={"production": 2}),
        [mv(1), mv(2, P)],
        set(),
        None,
        Reason.ALIAS_NOT_READY,
        Reason.ALIAS_NOT_READY,
    ),
    (
        "alias-to-failed",
        "@production",
        model(aliases={"production": 2}),
        [mv(1), mv(2, F)],
        set(),
        None,
        Reason.ALIAS_NOT_READY,
        Reason.ALIAS_NOT_READY,
    ),
    (
        "alias-to-unapproved",
        "@production",
        model(require=True, aliases={"production": 2}, approved=(1,)),
        [mv(1), mv(2)],
        set(),
        None,
        Reason.AWAITING_APPROVAL,
        Reason.AWAITING_APPROVAL,
    ),
    (
        "alias-to-approved",
        "@production",
        model(require=True, aliases={"production": 2}, approved=(2,)),
        [mv(1), mv(2)],
        set(),
        2,
        Reason.AVAILABLE,
        None,
    ),
    (
        "alias-to-rejected-here",
        "@production",
        model(aliases={"production": 2}),
        [mv(1), mv(2)],
        {2},
        None,
        Reason.VERSION_REJECTED,
        Reason.VERSION_REJECTED,
    ),
    (
        "alias-to-archived",
        "@production",
        model(aliases={"production": 1}),
        [mv(1, archived=True)],
        set(),
        None,
        Reason.VERSION_ARCHIVED,
        Reason.VERSION_ARCHIVED,
    ),
    # a pinned number: no approval needed (the pin is the reviewed choice), never archived
    (
        "number-unapproved",
        2,
        model(require=True, approved=(1,)),
        [mv(1), mv(2)],
        set(),
        2,
        Reason.AVAILABLE,
        None,
    ),
    ("number-rejected-here-readmits", 2, model(), [mv(1), mv(2)], {2}, 2, Reason.AVAILABLE, None),
    (
        "number-archived",
        1,
        model(),
        [mv(1, archived=True), mv(2)],
        set(),
        1,
        Reason.VERSION_ARCHIVED,
        Reason.VERSION_ARCHIVED,
    ),
    ("number-missing", 7, model(), [mv(1)], set(), 7, Reason.VERSION_NOT_FOUND, None),
    ("number-failed", 1, model(), [mv(1, F)], set(), 1, Reason.VERIFICATION_FAILED, None),
    ("number-pending", 1, model(), [mv(1, P)], set(), 1, Reason.VERSION_NOT_READY, None),
]


@pytest.mark.parametrize(
    ("spec_version", "model_obj", "mvs", "rejected", "want", "reason", "blocked"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_resolution_table(
    spec_version: int | str,
    model_obj: dict[str, Any] | None,
    mvs: list[dict[str, Any]],
    rejected: set[int],
    want: int | None,
    reason: str,
    blocked: str | None,
) -> None:
    gov = gr.from_model(model_obj, mvs, MODEL)
    res = versions.resolve(spec_version, MODEL, mvs, rejected, gov)
    served = res.version if res.ok else None
    expect_ok = reason == Reason.AVAILABLE
    assert res.ok is expect_ok
    assert (served if expect_ok else res.version) == want
    assert res.reason == reason, res.message
    assert (res.blocked[0] if res.blocked else None) == blocked, res.blocked
    assert res.governed


def test_blocked_messages_name_the_field_and_the_command() -> None:
    gov = gr.from_model(model(require=True, approved=(1,)), [mv(1), mv(2)], MODEL)
    res = versions.resolve("latest", MODEL, [mv(1), mv(2)], (), gov)
    assert res.blocked is not None
    assert "v2 awaits approval" in res.blocked[1] and "spec.approvals" in res.blocked[1]
    assert "onnxops approve iris 2" in res.blocked[1]
    res = versions.resolve("@prod", MODEL, [mv(1)], (), gr.from_model(model(), [mv(1)], MODEL))
    assert res.message == "spec.version: alias 'prod' is not set on Model iris (spec.aliases)"


def test_without_governance_resolution_is_unchanged() -> None:
    res = versions.resolve("latest", MODEL, [mv(1), mv(2)], ())
    assert (res.version, res.ok, res.governed, res.blocked) == (2, True, False, None)


# --- retention -------------------------------------------------------------------------------------------


def test_retention_keeps_the_newest_unserved_and_never_served_or_aliased_ones() -> None:
    mvs = [mv(1, served_by=["svc"]), mv(2), mv(3), mv(4), mv(5), mv(6, P), mv(7, F)]
    assert gr.to_archive(mvs, 2, protected=()) == {2, 3}
    assert gr.to_archive(mvs, 2, protected=(2,)) == {3}
    assert gr.to_archive(mvs, 0, protected=()) == {2, 3, 4, 5}
    assert gr.to_archive(mvs, None, protected=()) == set()
    assert gr.to_archive(mvs, 10, protected=()) == set()


# --- the Model's status and the ModelVersions' governance fields ------------------------------------------


def test_plan_marks_versions_and_names_bad_entries() -> None:
    m = model(require=True, approved=(1, 2, 9), aliases={"production": 1, "staging": 3, "next": 8}, keep=1)
    mvs = [mv(1, served_by=["svc"]), mv(2, rejected=True), mv(3, P), mv(4), mv(5), mv(6)]
    plan = gr.plan(m, mvs, now_text="2026-01-01T00:00:00Z")
    patches = dict(plan.mv_patches)
    assert patches["iris-v1"] == {"approved": True, "approvedBy": "alice", "aliases": ["production"]}
    assert patches["iris-v3"] == {"aliases": ["staging"]}
    # keepUnserved 1: v6 stays, v4 and v5 (and v2, unserved, Ready) are archived
    for n in (2, 4, 5):
        assert patches[f"iris-v{n}"]["archived"] is True
        assert patches[f"iris-v{n}"]["archivedAt"] == "2026-01-01T00:00:00Z"
    assert "iris-v6" not in patches
    assert plan.status["approvedVersions"] == [1]
    assert plan.status["archivedVersions"] == [2, 4, 5]
    assert plan.status["latestVersion"] == 6
    ready = next(c for c in plan.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == Reason.INVALID_GOVERNANCE
    assert [p.split(":")[0] for p in plan.problems] == [
        "spec.approvals[version=2]",
        "spec.approvals[version=9]",
        "spec.aliases.next",
        "spec.aliases.staging",
    ]
    assert "rolled back by svc (AnalysisFailed)" in plan.problems[0]


def test_plan_is_idempotent() -> None:
    m = model(approved=(1,), aliases={"production": 1}, keep=0)
    mvs = [mv(1), mv(2)]
    first = gr.plan(m, mvs, now_text="2026-01-01T00:00:00Z")
    applied = []
    for x in mvs:
        patch = dict(first.mv_patches).get(x["metadata"]["name"], {})
        applied.append({**x, "status": {**x["status"], **{k: v for k, v in patch.items() if v is not None}}})
    again = gr.plan(m, applied, now_text="2026-02-02T00:00:00Z")
    assert again.mv_patches == []
    ready = next(c for c in first.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


# --- admission (what CEL can see) ------------------------------------------------------------------------


def _validate(doc: dict[str, Any]) -> list[Any]:
    from onnxops.crdgen import build_crds
    from onnxops.validate import validate_manifest

    return list(validate_manifest(build_crds(), doc))


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("@production", True),
        ("latest", True),
        (3, True),
        ("@Prod", False),
        ("@", False),
        ("production", False),
    ],
)
def test_inference_service_version_may_name_an_alias(version: int | str, ok: bool) -> None:
    doc = {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "x"},
        "spec": {"model": "iris", "version": version},
    }
    causes = _validate(doc)
    assert (causes == []) is ok, causes
    if not ok:
        assert causes[0].field == "spec.version" and "'@<alias>'" in causes[0].message


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"aliases": {"Prod": 1}}, "spec.aliases", "lowercase DNS label"),
        ({"aliases": {"latest": 1}}, "spec.aliases", "not 'latest'"),
        ({"aliases": {"production": 0}}, "spec.aliases[production]", "greater than or equal to 1"),
        (
            {
                "approvals": [
                    {"version": 1, "by": "a", "reason": "r"},
                    {"version": 1, "by": "b", "reason": "s"},
                ]
            },
            "spec.approvals[1]",
            "Duplicate",
        ),
        ({"approvals": [{"version": 1, "by": "a", "reason": ""}]}, "spec.approvals[0].reason", ""),
        ({"retention": {"keepUnserved": -1}}, "spec.retention.keepUnserved", ""),
    ],
)
def test_model_bad_input_is_refused_at_admission(spec: dict[str, Any], field: str, text: str) -> None:
    doc = {"apiVersion": "onnxops.dev/v1alpha1", "kind": "Model", "metadata": {"name": "iris"}, "spec": spec}
    causes = _validate(doc)
    assert [x.field for x in causes] == [field], causes
    assert text in causes[0].message


# --- the CLI's pure parts ---------------------------------------------------------------------------------


def test_cli_refuses_what_it_must_and_edits_only_the_entry() -> None:
    from onnxops import release

    assert (
        release.gitops_manager({"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": "x"}}})
        == "Argo CD"
    )
    flux = {"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": "x"}}}
    assert release.gitops_manager(flux) == "Flux"
    assert release.gitops_manager({"metadata": {"labels": {"app": "x"}}}) is None
    with pytest.raises(release.ReleaseError, match="no ModelVersion v3"):
        release.check_servable("iris", 3, None, approving=True)
    with pytest.raises(release.ReleaseError, match=r"rolled back by svc .*cannot be approved"):
        release.check_servable("iris", 2, mv(2, rejected=True), approving=True)
    with pytest.raises(release.ReleaseError, match="failed verification"):
        release.check_servable("iris", 2, mv(2, F), approving=True)
    with pytest.raises(release.ReleaseError, match="not Ready"):
        release.check_servable("iris", 2, mv(2, P), approving=False)
    release.check_servable("iris", 2, mv(2), approving=False)
    broken = mv(2)
    broken["spec"]["artifact"]["sha256"] = "not-a-digest"  # stored before the API refused it
    for approving in (True, False):  # never served, so neither approved nor aliased
        with pytest.raises(
            release.ReleaseError, match=r"v2 of iris cannot be read: .*spec\.artifact\.sha256"
        ):
            release.check_servable("iris", 2, broken, approving=approving)
    spec = {"approvals": [{"version": 3, "by": "a", "reason": "r"}]}
    out = release.with_approval(spec, 1, "bob", "2026-01-01T00:00:00Z", "ok")
    assert [a["version"] for a in out] == [1, 3] and out[0]["by"] == "bob"
    assert release.without_approval(spec, 3) == [] and release.approval_of(spec, 3) is not None


def test_kubectl_plugin_entry_point() -> None:
    """`kubectl onnxops ...` runs the executable kubectl-onnxops from the package's scripts."""
    import tomllib
    from pathlib import Path

    from onnxops import release

    scripts = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"][
        "scripts"
    ]
    assert scripts["kubectl-onnxops"] == "onnxops.release:kubectl_main"
    assert callable(release.kubectl_main)
