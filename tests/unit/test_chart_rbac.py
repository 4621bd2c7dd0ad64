"""RBAC of the operator: least privilege (no Secrets, no wildcards, no privilege-granting verbs), the grants
the operator's contract needs, cluster-wide by default and Roles only in `watchNamespaces` mode."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _chart import NAMESPACE, VALUE_SETS, of_kind, one, render

FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}


AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
USER_ROLE = "onnxops.dev/user-role"  # a role for people (the Model releaser), bound by hand


def _aggregated(o: dict[str, Any]) -> bool:
    """A role for the users (aggregated into edit/admin/view), not the operator's own."""
    return any(k.startswith(AGGREGATE) for k in (o["metadata"].get("labels") or {}))


def _for_people(o: dict[str, Any]) -> bool:
    """Aggregated, or a role bound by hand (the Model releaser)."""
    return _aggregated(o) or (o["metadata"].get("labels") or {}).get(USER_ROLE) == "true"


def _rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's own rules."""
    return [
        r for o in objects if o["kind"] in ("ClusterRole", "Role") and not _for_people(o) for r in o["rules"]
    ]


def _allowed(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for r in rules:
        if group in r["apiGroups"] and resource in r["resources"]:
            verbs |= set(r["verbs"])
    return verbs


@pytest.mark.parametrize("name", VALUE_SETS)
def test_least_privilege(name: str) -> None:
    rules = _rules(render(VALUE_SETS[name]))
    assert rules
    for r in rules:
        assert "*" not in r["apiGroups"] and "*" not in r["resources"], r
        assert not FORBIDDEN_VERBS & set(r["verbs"]), r
        if any(res.startswith("secrets") for res in r["resources"]):  # only notification URLs, by name
            want = VALUE_SETS[name].get("notifications", {}).get("serviceSecretNames")
            assert want and r["resources"] == ["secrets"] and r["verbs"] == ["get"], r
            assert r["resourceNames"] == want, r
        assert "resourceNames" not in r or r["resourceNames"]
        assert not r.get("nonResourceURLs"), r
        # nothing that could grant more rights than the operator has
        assert not {"roles", "clusterroles", "rolebindings", "clusterrolebindings"} & set(r["resources"]), r
        assert "serviceaccounts/token" not in r["resources"]
        assert "pods/exec" not in r["resources"] and "nodes" not in r["resources"]
        # children are created and merge-patched, never replaced: `update` only for owner finalizers
        if "update" in r["verbs"]:
            assert all(res.endswith("/finalizers") for res in r["resources"]), r


@pytest.mark.parametrize("name", ["default", "watch-namespaces"])
def test_grants_what_the_operator_needs(name: str) -> None:
    rules = _rules(render(VALUE_SETS[name]))
    # exactly the verbs the operator (kube/client.py calls from controller/) and kopf use
    for kind in ("trainingjobs", "modelversions"):
        assert _allowed(rules, "onnxops.dev", kind) == {"get", "list", "watch", "create", "patch"}
    assert _allowed(rules, "onnxops.dev", "inferenceservices") == {"get", "list", "watch", "patch"}
    # Models: created empty at the first registration, never written in spec; status written
    assert _allowed(rules, "onnxops.dev", "models") == {"get", "list", "watch", "create", "patch"}
    assert _allowed(rules, "onnxops.dev", "models/status") == {"get", "patch"}
    for kind in ("trainingjobs", "modelversions", "inferenceservices"):
        assert _allowed(rules, "onnxops.dev", f"{kind}/status") == {"get", "patch"}
        assert _allowed(rules, "onnxops.dev", f"{kind}/finalizers") == {"update"}
    assert _allowed(rules, "batch", "jobs") == {"get", "list", "watch", "create", "patch"}
    assert _allowed(rules, "apps", "deployments") == {"get", "list", "watch", "create", "patch", "delete"}
    for group, res in (("", "services"), ("autoscaling", "horizontalpodautoscalers")):
        assert _allowed(rules, group, res) == {"get", "list", "watch", "create", "patch", "delete"}, res
    assert _allowed(rules, "", "pods") == {"list", "watch"}
    assert _allowed(rules, "", "configmaps") == {"get", "create", "patch"}  # version counters
    assert _allowed(rules, "", "events") == {"create"}
    assert not _allowed(rules, "events.k8s.io", "events")
    # Gateway API HTTPRoutes only when asked for.
    assert not _allowed(rules, "gateway.networking.k8s.io", "httproutes")
    with_routes = _rules(render({**VALUE_SETS[name], "rbac": {"httpRoutes": True}}))
    assert _allowed(with_routes, "gateway.networking.k8s.io", "httproutes") == {"get", "patch"}


def test_cluster_wide_by_default() -> None:
    objects = render()
    role = one([o for o in objects if not _for_people(o)], "ClusterRole")
    binding = one(objects, "ClusterRoleBinding")
    sa = one(objects, "ServiceAccount")
    assert not of_kind(objects, "Role") and not of_kind(objects, "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]
    dep = one(objects, "Deployment")
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    # kopf watches CRDs read-only; peering rights only with several replicas
    assert _allowed(role["rules"], "apiextensions.k8s.io", "customresourcedefinitions") == {"list", "watch"}
    assert not _allowed(role["rules"], "kopf.dev", "clusterkopfpeerings")
    ha = one([o for o in render({"replicaCount": 2}) if not _for_people(o)], "ClusterRole")
    assert _allowed(ha["rules"], "kopf.dev", "clusterkopfpeerings") == {"get", "list", "watch", "patch"}


@pytest.mark.parametrize("name", ["watch-namespaces", "replicas-2-watch-namespaces"])
def test_watch_namespaces_uses_roles_only(name: str) -> None:
    values = VALUE_SETS[name]
    objects = render(values)
    assert not of_kind(objects, "ClusterRole") and not of_kind(objects, "ClusterRoleBinding")
    roles = of_kind(objects, "Role")
    bindings = of_kind(objects, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(values["watchNamespaces"])
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(values["watchNamespaces"])
    for b in bindings:
        assert b["roleRef"]["kind"] == "Role"
        assert b["subjects"][0]["namespace"] == NAMESPACE  # the operator's own ServiceAccount
    for r in roles:
        peering = _allowed(r["rules"], "kopf.dev", "kopfpeerings")
        assert peering == ({"get", "list", "watch", "patch"} if values.get("replicaCount", 1) > 1 else set())


def test_rbac_can_be_left_to_the_platform_team() -> None:
    objects = render({"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "ops"}})
    assert not [o for o in objects if o["apiVersion"].startswith("rbac.authorization.k8s.io")]
    assert not of_kind(objects, "ServiceAccount")
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"


def test_service_account_token_only_in_the_operator_pod() -> None:
    objects = render()
    assert one(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


# --- the users' side: aggregated into the built-in edit/admin/view ClusterRoles ----------------------------

KINDS = {"trainingjobs", "modelversions", "inferenceservices"}


def _aggregated_roles(values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in of_kind(render(values), "ClusterRole") if _aggregated(o)}


def test_edit_and_view_roles_aggregate_our_kinds() -> None:
    roles = _aggregated_roles()
    assert set(roles) == {"onnxops-edit", "onnxops-view"}
    edit, view = roles["onnxops-edit"], roles["onnxops-view"]
    assert {k: v for k, v in edit["metadata"]["labels"].items() if k.startswith(AGGREGATE)} == {
        "rbac.authorization.k8s.io/aggregate-to-edit": "true",
        "rbac.authorization.k8s.io/aggregate-to-admin": "true",
    }
    assert {k: v for k, v in view["metadata"]["labels"].items() if k.startswith(AGGREGATE)} == {
        "rbac.authorization.k8s.io/aggregate-to-view": "true"
    }
    for kind in KINDS:
        # the verbs of the built-in edit role on its own resources, and read-only for view
        assert _allowed(edit["rules"], "onnxops.dev", kind) == {
            "get",
            "list",
            "watch",
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
        }
        assert _allowed(view["rules"], "onnxops.dev", kind) == {"get", "list", "watch"}
        # status belongs to the operator: users read it, never write it
        assert _allowed(edit["rules"], "onnxops.dev", f"{kind}/status") == {"get"}
        assert _allowed(view["rules"], "onnxops.dev", f"{kind}/status") == {"get"}
    for role in roles.values():
        for r in role["rules"]:
            assert r["apiGroups"] == ["onnxops.dev"] and set(r["resources"]) <= KINDS | {
                f"{k}/status" for k in KINDS
            } | {"models", "models/status"}


def test_aggregated_roles_are_optional_and_cluster_wide_only() -> None:
    assert not _aggregated_roles({"rbac": {"aggregateToDefaultRoles": False}})
    assert not _aggregated_roles({"watchNamespaces": ["team-a"]})
    assert not _aggregated_roles({"rbac": {"create": False}})


def test_release_rights_are_not_in_edit() -> None:
    """Issue 14: approving and moving aliases is writing a Model; the aggregated edit role only reads Models,
    the releaser role (not aggregated) writes them."""
    objects = render(VALUE_SETS["default"])
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}
    edit = next(o for o in roles.values() if (o["metadata"].get("labels") or {}).get(AGGREGATE + "edit"))
    assert _allowed(edit["rules"], "onnxops.dev", "models") == {"get", "list", "watch"}
    releaser = next(o for n, o in roles.items() if n.endswith("-model-releaser"))
    assert not any(k.startswith(AGGREGATE) for k in releaser["metadata"]["labels"])
    assert {"patch", "update"} <= _allowed(releaser["rules"], "onnxops.dev", "models")
    assert not _allowed(releaser["rules"], "onnxops.dev", "modelversions")


def test_rollout_control_is_a_separate_role() -> None:
    """Issue 15: `onnxops promote/abort/pause` patch inferenceservices/status; only the rollout-operator role
    (not aggregated, bound per namespace) allows it, and it writes nothing else."""
    objects = render(VALUE_SETS["default"])
    roles = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRole"}
    ctl = next(o for n, o in roles.items() if n.endswith("-rollout-operator"))
    assert not any(k.startswith(AGGREGATE) for k in ctl["metadata"]["labels"])
    assert _allowed(ctl["rules"], "onnxops.dev", "inferenceservices/status") == {"get", "patch"}
    assert _allowed(ctl["rules"], "onnxops.dev", "inferenceservices") == {"get", "list", "watch"}
    assert not _allowed(ctl["rules"], "onnxops.dev", "models")


def test_notification_settings_reach_the_operator() -> None:
    """Issue 15: the global sinks' URLs come from Secrets as env vars (secretKeyRef), never as values."""
    objects = render(VALUE_SETS["notifications"])
    dep = next(o for o in objects if o["kind"] == "Deployment")
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["ONNXOPS_NOTIFY_SINKS"]["value"]) == [
        {"name": "ops", "format": "Slack", "events": [], "urlEnv": "ONNXOPS_NOTIFY_URL_0"},
        {
            "name": "global-1",
            "format": "CloudEvents",
            "events": ["RolledBack"],
            "urlEnv": "ONNXOPS_NOTIFY_URL_1",
        },
    ]
    ref = env["ONNXOPS_NOTIFY_URL_0"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "onnxops-slack", "key": "webhook"}
    assert env["ONNXOPS_NOTIFY_URL_1"]["valueFrom"]["secretKeyRef"] == {"name": "ce", "key": "url"}
    assert env["ONNXOPS_NOTIFY_RETRIES"]["value"] == "3"
    from onnxops.settings import Settings

    settings = Settings.from_env({k: e["value"] for k, e in env.items() if "value" in e})
    assert [s["urlEnv"] for s in settings.notify_sinks] == ["ONNXOPS_NOTIFY_URL_0", "ONNXOPS_NOTIFY_URL_1"]
    # without serviceSecretNames the operator has no rule on Secrets at all
    assert not any("secrets" in r["resources"] for r in _rules(render(VALUE_SETS["default"])))
