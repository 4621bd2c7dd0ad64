"""Models and the ModelVersion lists that version resolution reads are parsed once: a Model whose spec does
not parse is reported (field and problem) and changes nothing else; a ModelVersion whose stored object does
not parse is never Ready, and never breaks resolution, governance or the champion for the others."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from _operator_fixtures import ClientStub, isvc, mv, ready

from onnxops.api import conditions as cond
from onnxops.api.conditions import Reason
from onnxops.api.v1alpha1.model import ParsedModel
from onnxops.api.v1alpha1.modelversion import ListedModelVersion
from onnxops.api.v1alpha1.trainingjob import ChampionRef
from onnxops.builders import names
from onnxops.controller.context import Context
from onnxops.controller.governance import reconcile_model
from onnxops.reconcile import champion, versions
from onnxops.reconcile import governance as gr
from onnxops.reconcile import inferenceservice as ir
from onnxops.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
S = Settings()


def model(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris", "namespace": "ml", "uid": "m-1", "generation": 2},
        "spec": spec,
    }


def broken_model() -> dict[str, Any]:
    """Stored before the API refused it: an approval without its reason."""
    obj = model(
        releasePolicy={"requireApproval": True},
        approvals=[{"version": 2, "by": "alice"}],
        aliases={"production": 1},
    )
    obj["status"] = {"observedGeneration": 1, "latestVersion": 2, "approvedVersions": [2]}
    return obj


def broken_mv(version: int, **status: Any) -> dict[str, Any]:
    """A Ready ModelVersion stored before the API refused what it holds (a digest that is not sha256)."""
    obj = mv(version, **status)
    obj["spec"]["artifact"]["sha256"] = "not-a-digest"
    return obj


class _Client(ClientStub):
    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.status_patches: list[tuple[str, dict[str, Any]]] = []
        self.created: list[dict[str, Any]] = []

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        assert kind == "Model", f"nothing else is read for a Model whose spec does not parse, not {kind}"
        return self.obj

    async def list(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise AssertionError("a Model whose spec does not parse does not read its ModelVersions")

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        assert obj["kind"] == "Event", f"a Model that does not parse creates nothing but Events, not {obj}"
        self.created.append(obj)
        return obj

    async def patch_status(
        self, api_version: str, kind: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.status_patches.append((kind, status))
        self.obj = {**self.obj, "status": {**(self.obj.get("status") or {}), **status}}
        return self.obj


# --- the Model -------------------------------------------------------------------------------------------


async def test_a_model_whose_spec_does_not_parse_is_reported_and_changes_nothing_else() -> None:
    client = _Client(broken_model())
    assert await reconcile_model(Context(client, S), "ml", "iris") is None
    [(kind, patch)] = client.status_patches  # the Model's own status only: no ModelVersion is marked
    assert kind == "Model"
    ready_c, stalled = (
        cond.find(patch["conditions"], cond.READY),
        cond.find(patch["conditions"], cond.STALLED),
    )
    assert ready_c is not None and ready_c["status"] == "False" and ready_c["reason"] == Reason.INVALID_SPEC
    assert stalled is not None and stalled["status"] == "True" and stalled["reason"] == Reason.INVALID_SPEC
    assert "spec.approvals.0.reason: Field required" in ready_c["message"]
    assert patch["message"] == ready_c["message"]
    # the fields it computes from the spec keep what they said
    assert set(patch) == {"conditions", "message", "observedGeneration"}
    [event] = client.created
    assert (event["type"], event["reason"]) == ("Warning", Reason.INVALID_SPEC)
    assert event["involvedObject"]["kind"] == "Model"
    # level-triggered: the same state again writes nothing and posts no second Event
    await reconcile_model(Context(client, S), "ml", "iris")
    assert len(client.status_patches) == 1 and len(client.created) == 1


def test_a_parsed_model_carries_its_spec_typed() -> None:
    parsed = ParsedModel.parse(
        model(
            releasePolicy={"requireApproval": True},
            approvals=[{"version": 2, "by": "alice", "reason": "review"}],
            aliases={"production": 2},
            retention={"keepUnserved": 3},
        )
    )
    assert gr.require_approval(parsed.spec) and gr.aliases_of(parsed.spec) == {"production": 2}
    assert parsed.spec.retention is not None and parsed.spec.retention.keep_unserved == 3
    assert (parsed.meta.name, parsed.meta.generation) == ("iris", 2)
    empty = ParsedModel.parse(gr.empty_model("ml", "iris"))
    assert not gr.require_approval(empty.spec) and gr.aliases_of(empty.spec) == {}


def test_services_keep_what_they_serve_while_their_model_does_not_parse() -> None:
    """Whatever policy the Model meant to set is unknown: `latest` and aliases are not followed (a pinned
    number is, as it needs no approval)."""
    gov = gr.from_model(broken_model(), [mv(1), mv(2), mv(3)], "iris")
    assert gov.problem is not None and "spec.approvals.0.reason" in gov.problem
    for spec_version in ("latest", "@production"):
        res = versions.resolve(spec_version, "iris", [mv(1), mv(2), mv(3)], (), gov)
        assert not res.ok and res.version is None and res.reason == Reason.INVALID_GOVERNANCE
        assert res.blocked is not None and "Model iris cannot be read" in res.blocked[1]
        assert "spec.approvals.0.reason" in res.blocked[1]
    assert versions.resolve(3, "iris", [mv(1), mv(2), mv(3)], (), gov).version == 3
    # a serving InferenceService following latest stays on its version, with ReleaseBlocked saying why
    svc = isvc("iris", status={"stableVersion": 2})
    plan = ir.reconcile(
        svc, [mv(1), mv(2), mv(3)], [ready_dep(2)], settings=S, now=T0, model_obj=broken_model()
    )
    assert plan.status["stableVersion"] == 2 and plan.status.get("canaryVersion") is None
    blocked = cond.find(plan.status["conditions"], cond.RELEASE_BLOCKED)
    assert blocked is not None and blocked["reason"] == Reason.INVALID_GOVERNANCE


def ready_dep(version: int) -> dict[str, Any]:
    plan = ir.reconcile(
        isvc("iris", status={"stableVersion": version}), [mv(version)], [], settings=S, now=T0
    )
    dep = next(c for c in plan.children if c["kind"] == "Deployment")
    return ready(dep)


# --- a ModelVersion that does not parse, in a list -------------------------------------------------------


def test_a_listed_version_that_does_not_parse_names_the_field_and_is_never_ready() -> None:
    entry = ListedModelVersion.parse(broken_mv(3))
    assert (entry.name, entry.model, entry.version, entry.parsed) == ("iris-v3", "iris", 3, None)
    assert entry.problem is not None and entry.problem.startswith("spec.artifact.sha256: ")
    assert not entry.ready and not entry.failed
    bad_status = ListedModelVersion.parse(mv(4, phase="Finished"))
    assert bad_status.parsed is None and bad_status.problem is not None
    assert bad_status.problem.startswith("status.phase: ")
    good = ListedModelVersion.parse(mv(2))
    assert good.ready and good.parsed is not None and good.parsed.spec.version == 2
    assert ListedModelVersion.of(good) is good


def test_resolution_skips_a_version_that_does_not_parse_and_names_it_when_asked_for() -> None:
    mvs = [broken_mv(1), mv(2), broken_mv(3, phase="Pending")]
    latest = versions.resolve("latest", "iris", mvs)
    assert (latest.version, latest.ok) == (2, True)  # the others still resolve
    pinned = versions.resolve(1, "iris", mvs)
    assert not pinned.ok and pinned.reason == Reason.VERSION_NOT_READY
    assert "iris-v1 is not Ready: its stored object does not parse: spec.artifact.sha256" in pinned.message
    gov = gr.from_model(model(aliases={"production": 1}), mvs, "iris")
    alias = versions.resolve("@production", "iris", mvs, (), gov)
    assert not alias.ok and alias.reason == Reason.ALIAS_NOT_READY and alias.blocked is not None
    assert "not Ready (its stored object does not parse: spec.artifact.sha256" in alias.message
    # numbers are never issued twice, also one whose object does not parse
    assert versions.next_version(mvs, "iris") == 4


def test_latest_does_not_move_past_a_newer_ready_version_that_does_not_parse() -> None:
    """Skipping it would roll a service back when the version it serves stops parsing: it holds instead."""
    res = versions.resolve("latest", "iris", [mv(1), broken_mv(2)])
    assert not res.ok and res.version is None and res.reason == Reason.VERSION_NOT_READY
    assert (
        res.blocked is not None
        and "latest is iris-v2, which is not Ready: its stored object" in res.blocked[1]
    )
    # rolled back here, it is skipped as before
    assert versions.resolve("latest", "iris", [mv(1), broken_mv(2)], {2}).version == 1
    dep = ready_dep(2)
    plan = ir.reconcile(
        isvc("iris", status={"stableVersion": 2}), [mv(1), broken_mv(2)], [dep], settings=S, now=T0
    )
    assert plan.status["stableVersion"] == 2 and plan.status.get("canaryVersion") is None
    assert plan.delete == [] and all(c["metadata"]["name"] != dep["metadata"]["name"] for c in plan.children)
    blocked = cond.find(plan.status["conditions"], cond.RELEASE_BLOCKED)
    assert blocked is not None and "spec.artifact.sha256" in blocked["message"]


def test_governance_names_a_version_that_does_not_parse_and_leaves_it_as_it_is() -> None:
    m = model(
        releasePolicy={"requireApproval": True},
        approvals=[{"version": 2, "by": "alice", "reason": "r"}, {"version": 3, "by": "bob", "reason": "r"}],
        aliases={"production": 3},
        retention={"keepUnserved": 1},
    )
    mvs = [mv(1), mv(2, approved=True, approvedBy="alice"), broken_mv(3, archived=True)]
    plan = gr.plan(m, mvs, now_text="2026-01-01T00:00:00Z", now=T0)
    assert plan.status["approvedVersions"] == [2]  # an approval of a version that cannot be served: unused
    assert plan.status["latestVersion"] == 3
    assert [p.split(":")[0] for p in plan.problems] == [
        "spec.approvals[version=3]",
        "spec.aliases.production",
    ]
    assert all("does not parse: spec.artifact.sha256" in p for p in plan.problems)
    patched = dict(plan.mv_patches)
    assert "iris-v3" not in patched  # nothing written to it: its status cannot be compared
    assert patched["iris-v1"] == {"archived": True, "archivedAt": "2026-01-01T00:00:00Z"}
    assert "iris-v2" not in patched  # approved as its status says, and the newest unserved Ready one
    assert plan.status["archivedVersions"] == [1]
    ready_c = cond.find(plan.status["conditions"], cond.READY)
    assert ready_c is not None and ready_c["reason"] == Reason.INVALID_GOVERNANCE


def test_rejection_marks_leave_a_version_that_does_not_parse_as_it_is() -> None:
    by_v = versions.by_version([mv(1), broken_mv(2)], "iris")
    entries = [{"version": 1, "reason": "DriftDetected"}, {"version": 2, "reason": "DriftDetected"}]
    mark, unmark = versions.rejection_marks("iris", entries, by_v)
    assert (mark, unmark) == ([("iris-v1", "DriftDetected")], [])


def test_the_champion_named_by_an_alias_that_does_not_parse_is_an_error_naming_it() -> None:
    ref = ChampionRef(alias="production")
    mvs = [mv(1), broken_mv(2)]
    got, err = champion.resolve(ref, "iris", model(aliases={"production": 2}), None, mvs)
    assert got is None and err is not None
    assert err.startswith("spec.evaluation.champion.alias: the champion iris-v2 is not Ready (its stored")
    assert "spec.artifact.sha256" in err
    got, err = champion.resolve(ref, "iris", model(aliases={"production": 1}), None, mvs)
    assert (
        err is None
        and got is not None
        and (got["version"], got["uri"]) == (1, mv(1)["spec"]["artifact"]["uri"])
    )
    got, err = champion.resolve(ref, "iris", broken_model(), None, mvs)
    assert got is None and err is not None and "Model iris cannot be read (spec.approvals.0.reason" in err


def test_a_served_version_whose_object_stops_parsing_keeps_running_untouched() -> None:
    """Its Deployment is neither rebuilt from a spec that does not parse nor deleted; the service says why
    it cannot follow it (a pinned version) and rolls nothing out."""
    dep = ready_dep(2)
    svc = isvc("iris", version=2, status={"stableVersion": 2})
    plan = ir.reconcile(svc, [mv(1), broken_mv(2)], [dep], settings=S, now=T0)
    assert plan.status["stableVersion"] == 2 and plan.status.get("canaryVersion") is None
    assert dep["metadata"]["name"] == names.deployment("iris", 2)
    assert all(c["metadata"]["name"] != dep["metadata"]["name"] for c in plan.children)
    assert plan.delete == [] and plan.reject == [] and plan.readmit == []
