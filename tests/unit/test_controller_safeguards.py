"""The controller's safeguards: a failing reconcile is reported in status and retried, objects the operator
does not own are never patched or deleted, a recreated TrainingJob never reads the old run's Job or pods,
pods get no API token they do not need, observedGeneration only claims what the running Job reflects,
HTTPRoute patches are optimistic, and in-memory caches are bounded."""

from __future__ import annotations

from typing import Any

import pytest
from _operator_fixtures import ClientStub

from onnxops.kube.apply import ensure
from onnxops.kube.client import ApiError


class FakeClient(ClientStub):
    """The verbs ensure() uses, backed by a dict."""

    def __init__(self, objects: dict[tuple[str, str | None, str], dict[str, Any]] | None = None) -> None:
        self.objects = objects or {}
        self.patches: list[dict[str, Any]] = []
        self.applied: list[tuple[dict[str, Any], bool]] = []
        self.create_conflicts = False

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        md = obj["metadata"]
        key = (obj["kind"], md.get("namespace"), md["name"])
        if self.create_conflicts or key in self.objects:
            raise ApiError(409, "AlreadyExists", "exists")
        self.objects[key] = obj
        return obj

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self.patches.append(patch)
        return self.objects[(kind, namespace, name)]

    async def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        self.applied.append((obj, force))
        md = obj["metadata"]
        self.objects[(obj["kind"], md.get("namespace"), md["name"])] = obj
        return obj


def svc(owner_uid: str | None = "uid-1", port: int = 80) -> dict[str, Any]:
    md: dict[str, Any] = {"name": "s", "namespace": "default", "labels": {"a": "b"}}
    if owner_uid:
        md["ownerReferences"] = [
            {
                "apiVersion": "onnxops.dev/v1alpha1",
                "kind": "InferenceService",
                "name": "o",
                "uid": owner_uid,
                "controller": True,
            }
        ]
    return {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": {"ports": [{"port": port}]}}


async def test_ensure_conflict_then_gone_raises_409_not_runtime_error() -> None:
    c = FakeClient()
    c.create_conflicts = True  # create says 409, the get finds nothing (deleted in between)
    with pytest.raises(ApiError) as e:
        await ensure(c, svc())
    assert e.value.status == 409


# ---- a failing reconcile is reported in status ----------------------------------------------------
def _obj(kind: str, status: dict[str, Any] | None = None, gen: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "default", "generation": gen},
        "status": status or {},
    }


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status["conditions"] if c["type"] == type_), None)


def test_error_status_sets_stalled_and_not_ready() -> None:
    from onnxops.reconcile.errors import describe_error, error_status

    reason, msg = describe_error(RuntimeError("boom SECRET_KEY=hunter2 at s3://u:p@host/x"))
    assert reason == "ReconcileError"
    assert "hunter2" not in msg and "u:p@" not in msg and "boom" in msg
    st = error_status("TrainingJob", _obj("TrainingJob"), reason, msg)
    assert st["observedGeneration"] == 3
    stalled, ready = _cond(st, "Stalled"), _cond(st, "Ready")
    assert stalled and stalled["status"] == "True" and stalled["reason"] == "ReconcileError"
    assert stalled["observedGeneration"] == 3
    assert ready and ready["status"] == "False"


def test_error_status_keeps_ready_of_a_serving_inference_service() -> None:
    from onnxops.reconcile.errors import error_status

    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Available",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    obj = _obj("InferenceService", {"stableVersion": 2, "conditions": [ready]})
    st = error_status("InferenceService", obj, "ReconcileError", "x")
    assert _cond(st, "Ready") == ready
    assert (_cond(st, "Stalled") or {})["status"] == "True"
    # not serving yet: Ready goes False
    st2 = error_status("InferenceService", _obj("InferenceService", {"conditions": [ready]}), "R", "x")
    assert (_cond(st2, "Ready") or {})["status"] == "False"


def test_invalid_spec_names_the_field() -> None:
    from onnxops.api.v1alpha1 import InferenceServiceSpec
    from onnxops.reconcile.errors import describe_error

    with pytest.raises(Exception) as e:
        InferenceServiceSpec.model_validate({"model": "m", "replicas": "many"})
    reason, msg = describe_error(e.value)
    assert reason == "InvalidSpec"
    assert "spec.replicas" in msg


class _StatusClient(ClientStub):
    def __init__(self, obj: dict[str, Any] | None, fail_patch: bool = False) -> None:
        self.obj, self.fail_patch = obj, fail_patch
        self.status_patches: list[dict[str, Any]] = []

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        return self.obj

    async def patch_status(
        self, api_version: str, kind: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        if self.fail_patch:
            raise ApiError(500, "InternalError", "down")
        self.status_patches.append(status)
        return {}

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.created = [*getattr(self, "created", []), obj]
        return obj


async def test_run_loop_reports_error_and_keeps_retrying() -> None:
    import asyncio

    from onnxops.controller import handlers
    from onnxops.controller.context import Context
    from onnxops.settings import Settings

    client = _StatusClient(_obj("TrainingJob"))
    ctx = Context(client, Settings.from_env())
    calls = 0

    class Stopped:
        def __bool__(self) -> bool:
            return calls >= 2

        async def wait(self) -> None:
            await asyncio.sleep(3600)

    async def failing(ctx: Context, ns: str, name: str) -> float | None:
        nonlocal calls
        calls += 1
        raise ValueError("kaput")

    await asyncio.wait_for(
        handlers.run_loop("TrainingJob", failing, ctx, "default", "x", Stopped()),  # type: ignore[arg-type]
        timeout=10,
    )
    assert calls == 2  # retried after the first failure
    st = client.status_patches[0]
    assert (_cond(st, "Stalled") or {})["reason"] == "ReconcileError"
    assert "kaput" in (_cond(st, "Stalled") or {})["message"]


async def test_report_error_never_raises() -> None:
    from onnxops.controller import handlers
    from onnxops.controller.context import Context
    from onnxops.settings import Settings

    ctx = Context(_StatusClient(_obj("TrainingJob"), fail_patch=True), Settings.from_env())
    await handlers.report_error(ctx, "TrainingJob", "default", "x", ValueError("x"))


# ---- never patch or delete an object we do not own -------------------------------------------------
async def test_ensure_leaves_a_users_namesake_untouched() -> None:
    from onnxops.reconcile.errors import NameConflict

    c = FakeClient({("Service", "default", "s"): svc(owner_uid=None, port=8080)})
    with pytest.raises(NameConflict) as e:
        await ensure(c, svc("uid-1"))
    assert c.patches == []
    assert "Service default/s" in str(e.value)
    # an object owned by someone else, passed in as observed, is refused the same way
    with pytest.raises(NameConflict):
        await ensure(c, svc("uid-1"), svc("uid-other", port=8080))
    assert c.patches == []


async def test_ensure_patches_our_own_child() -> None:
    c = FakeClient({("Service", "default", "s"): svc("uid-1", port=8080)})
    verb, _ = await ensure(c, svc("uid-1"))
    # a value of ours that differs: the whole desired object is server-side applied, forced
    assert verb == "patched" and c.patches == []
    ((body, force),) = c.applied
    assert force and body["spec"] == {"ports": [{"port": 80}]} and body["metadata"]["name"] == "s"


def test_name_conflict_is_reported_as_such() -> None:
    from onnxops.reconcile.errors import NameConflict, describe_error

    reason, msg = describe_error(NameConflict("Service", "default", "s"))
    assert reason == "NameConflict" and "Service default/s" in msg


async def test_observe_ignores_labelled_objects_we_do_not_own() -> None:
    from onnxops.controller.serving import observe

    ours, theirs = svc("uid-1"), svc(None)
    theirs["metadata"]["name"] = "user"

    class ListClient(ClientStub):
        async def list(
            self,
            api_version: str,
            kind: str,
            namespace: str | None,
            *,
            label_selector: dict[str, str] | str | None = None,
        ) -> list[dict[str, Any]]:
            return [ours, theirs] if kind == "Service" else []

    got = await observe(ListClient(), "default", "o", False, "uid-1")
    assert got == [ours]


# ---- a recreated TrainingJob never reads the old run's Job or pods ----------------------------------
def _tj(uid: str = "uid-new") -> dict[str, Any]:
    from _operator_fixtures import tj

    return tj(uid=uid)


def _finished_job(owner_uid: str) -> dict[str, Any]:
    from onnxops.builders import job as job_builder
    from onnxops.settings import Settings

    job = job_builder.training_job(_tj(owner_uid), Settings.from_env())
    job["metadata"]["uid"] = "job-" + owner_uid
    job["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    return job


class _TrainingClient(ClientStub):
    def __init__(self, tj: dict[str, Any], job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        self.tj, self.job, self.pods = tj, job, pods
        self.created: list[dict[str, Any]] = []
        self.status_patches: list[dict[str, Any]] = []
        self.selectors: list[Any] = []

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        return {"TrainingJob": self.tj, "Job": self.job}.get(kind)

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: dict[str, str] | str | None = None,
    ) -> list[dict[str, Any]]:
        if kind != "Pod":
            return []
        self.selectors.append(label_selector)
        want = label_selector if isinstance(label_selector, dict) else {}
        return [p for p in self.pods if all(p["metadata"]["labels"].get(k) == v for k, v in want.items())]

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.created.append(obj)
        return obj

    async def patch_status(
        self, api_version: str, kind: str, namespace: str | None, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.status_patches.append(status)
        return {}


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    result = {
        "ok": True,
        "artifact": {"uri": "file:///m.onnx", "sha256": "c" * 64},
        "metrics": {"accuracy": 0.9},
    }
    import json

    return {
        "metadata": {
            "name": "p",
            "labels": dict(job["spec"]["template"]["metadata"]["labels"]),
            "ownerReferences": [{"uid": job["metadata"]["uid"], "controller": True}],
        },
        "status": {
            "containerStatuses": [
                {"name": "trainer", "state": {"terminated": {"exitCode": 0, "message": json.dumps(result)}}}
            ]
        },
    }


async def test_recreated_training_job_ignores_the_old_runs_job() -> None:
    from onnxops.controller.context import Context
    from onnxops.controller.training import reconcile_training_job
    from onnxops.settings import Settings

    old_job = _finished_job("uid-old")
    client = _TrainingClient(_tj("uid-new"), old_job, [_pod(old_job)])
    ctx = Context(client, Settings.from_env())
    requeue = await reconcile_training_job(ctx, "ml", "iris")
    assert requeue is not None and requeue > 0  # waits for garbage collection
    assert not [
        b for b in client.created if b["kind"] == "ModelVersion"
    ]  # the old artifact is not registered
    st = client.status_patches[-1]
    ready = _cond(st, "Ready") or {}
    assert ready["status"] == "False" and ready["reason"] == "WaitingForOldJob"
    assert "uid-old" in ready["message"]


async def test_training_pods_are_selected_by_run_uid() -> None:
    from onnxops.controller.context import Context
    from onnxops.controller.training import reconcile_training_job
    from onnxops.settings import Settings

    job = _finished_job("uid-new")
    assert job["spec"]["template"]["metadata"]["labels"]["onnxops.dev/training-job-uid"] == "uid-new"
    client = _TrainingClient(_tj("uid-new"), job, [_pod(job)])
    ctx = Context(client, Settings.from_env())
    await reconcile_training_job(ctx, "ml", "iris")
    assert {"onnxops.dev/training-job-uid": "uid-new"} in client.selectors
    assert [b for b in client.created if b["kind"] == "ModelVersion"]  # our own run registers


# ---- no API token in pods that do not call the API --------------------------------------------------
def test_pods_do_not_mount_a_service_account_token_by_default() -> None:
    from _operator_fixtures import isvc, mv

    from onnxops.builders import deployment
    from onnxops.builders import job as job_builder
    from onnxops.settings import Settings

    s = Settings.from_env()
    train = job_builder.training_job(_tj(), s)["spec"]["template"]["spec"]
    verify = job_builder.verification_job(mv(1), s)["spec"]["template"]["spec"]
    assert train["automountServiceAccountToken"] is False
    assert verify["automountServiceAccountToken"] is False
    serving = deployment.deployment(isvc(), mv(1), 2, s)["spec"]["template"]["spec"]
    assert serving["automountServiceAccountToken"] is False


def test_a_user_service_account_keeps_its_token_default() -> None:
    from onnxops.builders import job as job_builder
    from onnxops.settings import Settings

    tj = _tj()
    tj["spec"]["template"] = {"serviceAccountName": "reader"}
    pod = job_builder.training_job(tj, Settings.from_env())["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "reader"
    assert "automountServiceAccountToken" not in pod


# ---- observedGeneration stays at the generation the running Job was created for ---------------------
def _running_job(tj: dict[str, Any]) -> dict[str, Any]:
    from onnxops.builders import job as job_builder
    from onnxops.settings import Settings

    job = job_builder.training_job(tj, Settings.from_env())
    job["status"] = {"active": 1, "startTime": "2026-01-01T00:00:00Z"}
    return job


def test_spec_edit_after_the_job_started_is_not_claimed_as_reconciled() -> None:
    from datetime import UTC, datetime

    from _operator_fixtures import tj

    from onnxops.reconcile import trainingjob as tjr
    from onnxops.settings import Settings

    job = _running_job(tj(gen=1))
    assert job["metadata"]["annotations"]["onnxops.dev/generation"] == "1"
    edited = tj(gen=2, estimator={"className": "LogisticRegression", "params": {"max_iter": 999}})
    plan = tjr.reconcile(
        edited, job, [], registered=None, settings=Settings.from_env(), now=datetime.now(UTC)
    )
    assert plan.status["observedGeneration"] == 1
    assert "create a new TrainingJob" in plan.status["message"]
    assert all(c.get("observedGeneration") == 1 for c in plan.status["conditions"])


def test_mutable_spec_edit_is_reconciled() -> None:
    from datetime import UTC, datetime

    from _operator_fixtures import tj

    from onnxops.reconcile import trainingjob as tjr
    from onnxops.settings import Settings

    job = _running_job(tj(gen=1))
    edited = tj(gen=2, activeDeadlineSeconds=600)  # a mutable Job field: applied by ensure()
    plan = tjr.reconcile(
        edited, job, [], registered=None, settings=Settings.from_env(), now=datetime.now(UTC)
    )
    assert plan.status["observedGeneration"] == 2
    assert "create a new TrainingJob" not in plan.status["message"]


# ---- HTTPRoute weights: optimistic concurrency ---------------------------------------------------------
def test_route_patch_carries_the_observed_resource_version() -> None:
    from onnxops.builders import httproute

    route = {
        "metadata": {"name": "r", "resourceVersion": "42"},
        "spec": {"rules": [{"backendRefs": [{"name": "iris", "port": 80}]}]},
    }
    patch = httproute.route_patch(route, "iris", {1: 100})
    assert patch is not None and patch["metadata"] == {"resourceVersion": "42"}


# ---- in-memory caches are bounded and dropped with their object -------------------------------------
def test_lru_is_bounded_and_keeps_the_recently_used() -> None:
    from onnxops.controller.context import Lru

    c = Lru(3)
    for i in range(3):
        c.put(i, str(i))
    assert c.get(0) == "0"  # 0 is now the most recently used
    c.put(3, "3")
    assert len(c) == 3 and 1 not in c and 0 in c and c.get(3) == "3"
    with pytest.raises(ValueError, match="maxsize"):
        Lru(0)


def test_profile_cache_and_scrape_states_are_bounded() -> None:
    from onnxops.controller import drift
    from onnxops.controller.context import CACHE_SIZE, Context
    from onnxops.settings import Settings

    assert drift._PROFILES.maxsize == drift.PROFILE_CACHE_SIZE == 256
    ctx = Context(ClientStub(), Settings.from_env())
    for i in range(CACHE_SIZE + 50):
        ctx.scrape_states.put(("ns", f"isvc-{i}"), {"n": i})
    assert len(ctx.scrape_states) == CACHE_SIZE


def test_forget_drops_the_objects_scrape_state() -> None:
    from onnxops.controller.context import ISVC, Context
    from onnxops.settings import Settings

    ctx = Context(ClientStub(), Settings.from_env())
    ctx.scrape_states.put(("ns", "a"), {"x": 1})
    ctx.scrape_states.put(("ns", "b"), {"x": 2})
    ctx.waker((ISVC, "ns", "a"))
    ctx.forget((ISVC, "ns", "a"))
    assert ("ns", "a") not in ctx.scrape_states and ("ns", "b") in ctx.scrape_states
    assert (ISVC, "ns", "a") not in ctx.wakers
