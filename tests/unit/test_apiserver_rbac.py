"""The API emulator's RBAC authorizer, as a table: request attributes from HTTP requests, and allow/deny
decisions against stored Roles/ClusterRoles/bindings. The expected answers are Kubernetes' documented RBAC
semantics (kubernetes.io/docs/reference/access-authn-authz/rbac), and the 403 message is the real API
server's wording."""

from __future__ import annotations

import pytest

from onnxops.local.apiserver import rbac
from onnxops.local.apiserver.rbac import ADMIN, Attributes, Policy, Tokens, User, service_account_user

SA = service_account_user("ops", "onnxops")
OTHER_SA = service_account_user("default", "onnxops")
ALICE = User("alice", ("devs", rbac.AUTHENTICATED))


def _meta(name: str, namespace: str | None = None, **labels: str) -> dict:
    m: dict = {"name": name}
    if namespace:
        m["namespace"] = namespace
    if labels:
        m["labels"] = labels
    return m


POLICY = Policy(
    roles=[
        {
            "metadata": _meta("cm-reader", "team"),
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["one"]}
            ],
        }
    ],
    cluster_roles=[
        {
            "metadata": _meta("operator"),
            "rules": [
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create"]},
                {"apiGroups": ["onnxops.dev"], "resources": ["trainingjobs/status"], "verbs": ["patch"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
            ],
        },
        {
            "metadata": _meta("status-all"),
            "rules": [{"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["get"]}],
        },
        {
            "metadata": _meta("metrics"),
            "rules": [{"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]}],
        },
        {
            "metadata": _meta("edit"),
            "aggregationRule": {
                "clusterRoleSelectors": [
                    {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}}
                ]
            },
            "rules": [],
        },
        {
            "metadata": _meta("onnxops-edit", **{"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
            "rules": [
                {"apiGroups": ["onnxops.dev"], "resources": ["inferenceservices"], "verbs": ["create"]}
            ],
        },
    ],
    role_bindings=[
        {
            "metadata": _meta("read-one", "team"),
            "roleRef": {"kind": "Role", "name": "cm-reader"},
            "subjects": [{"kind": "Group", "name": "devs"}],
        },
        {
            "metadata": _meta("edit", "team"),
            "roleRef": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "name": "alice"}],
        },
        # a ServiceAccount subject without a namespace means the binding's namespace
        {
            "metadata": _meta("status", "default"),
            "roleRef": {"kind": "ClusterRole", "name": "status-all"},
            "subjects": [{"kind": "ServiceAccount", "name": "onnxops"}],
        },
    ],
    cluster_role_bindings=[
        {
            "metadata": _meta("operator"),
            "roleRef": {"kind": "ClusterRole", "name": "operator"},
            "subjects": [{"kind": "ServiceAccount", "name": "onnxops", "namespace": "ops"}],
        },
        {
            "metadata": _meta("metrics"),
            "roleRef": {"kind": "ClusterRole", "name": "metrics"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:ops"}],
        },
    ],
)


def A(
    user: User,
    verb: str,
    ns: str = "",
    group: str = "",
    res: str = "",
    sub: str = "",
    name: str = "",
    path: str = "",
) -> Attributes:
    return Attributes(user, verb, ns, group, res, sub, name, path)


@pytest.mark.parametrize(
    ("attrs", "allowed"),
    [
        # ClusterRoleBinding: every namespace, only the listed verbs
        (A(SA, "create", "x", "batch", "jobs"), True),
        (A(SA, "watch", "y", "batch", "jobs"), True),
        (A(SA, "list", "", "batch", "jobs"), True),  # all namespaces
        (A(SA, "delete", "x", "batch", "jobs", name="j"), False),  # verb not granted
        (A(SA, "patch", "x", "batch", "jobs", name="j"), False),
        (A(SA, "create", "x", "", "jobs"), False),  # wrong API group
        (A(SA, "list", "x", "", "pods"), True),
        (A(SA, "get", "x", "", "pods", name="p"), False),
        # subresources: the resource's rule does not cover its status, and vice versa
        (A(SA, "patch", "x", "onnxops.dev", "trainingjobs", "status", "t"), True),
        (A(SA, "patch", "x", "onnxops.dev", "trainingjobs", name="t"), False),
        (A(SA, "get", "x", "batch", "jobs", "status", "j"), False),
        # the same SA name in another namespace is another subject
        (A(OTHER_SA, "list", "x", "batch", "jobs"), False),
        # RoleBinding of a ClusterRole: only in the binding's namespace; */status of any group
        (A(OTHER_SA, "get", "default", "apps", "deployments", "status", "d"), True),
        (A(OTHER_SA, "get", "other", "apps", "deployments", "status", "d"), False),
        (A(OTHER_SA, "get", "default", "apps", "deployments", name="d"), False),
        # resourceNames: only the named object, and never a list
        (A(ALICE, "get", "team", "", "configmaps", name="one"), True),
        (A(ALICE, "get", "team", "", "configmaps", name="two"), False),
        (A(ALICE, "list", "team", "", "configmaps"), False),
        # aggregation: `edit` carries the rules of the ClusterRoles labelled aggregate-to-edit
        (A(ALICE, "create", "team", "onnxops.dev", "inferenceservices"), True),
        (A(ALICE, "create", "elsewhere", "onnxops.dev", "inferenceservices"), False),
        # group subjects, non-resource URLs (exact and prefix), discovery for every authenticated user
        (A(SA, "get", path="/metrics"), True),
        (A(SA, "get", path="/debug/pprof/heap"), True),
        (A(SA, "post", path="/metrics"), False),
        (A(OTHER_SA, "get", path="/metrics"), False),
        (A(OTHER_SA, "get", path="/apis/batch/v1"), True),
        (A(OTHER_SA, "get", path="/version"), True),
        (A(User("anonymous"), "get", path="/version"), False),
        # the admin kubeconfig (system:masters) may do anything
        (A(ADMIN, "delete", "", "rbac.authorization.k8s.io", "clusterroles", name="operator"), True),
    ],
)
def test_authorize(attrs: Attributes, allowed: bool) -> None:
    assert rbac.authorize(attrs, POLICY) is allowed


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/x/pods", {}, ("list", "x", "", "pods", "", "")),
        ("GET", "/api/v1/namespaces/x/pods", {"watch": "true"}, ("watch", "x", "", "pods", "", "")),
        ("GET", "/api/v1/pods", {"watch": "1"}, ("watch", "", "", "pods", "", "")),
        ("GET", "/api/v1/namespaces/x/pods/p/log", {}, ("get", "x", "", "pods", "log", "p")),
        (
            "PATCH",
            "/apis/onnxops.dev/v1alpha1/namespaces/x/trainingjobs/t/status",
            {},
            ("patch", "x", "onnxops.dev", "trainingjobs", "status", "t"),
        ),
        (
            "PUT",
            "/apis/apps/v1/namespaces/x/deployments/d/scale",
            {},
            ("update", "x", "apps", "deployments", "scale", "d"),
        ),
        ("POST", "/apis/batch/v1/namespaces/x/jobs", {}, ("create", "x", "batch", "jobs", "", "")),
        (
            "DELETE",
            "/apis/batch/v1/namespaces/x/jobs",
            {},
            ("deletecollection", "x", "batch", "jobs", "", ""),
        ),
        ("DELETE", "/apis/batch/v1/namespaces/x/jobs/j", {}, ("delete", "x", "batch", "jobs", "", "j")),
        # as in the real request-info resolver, a Namespace object's namespace is itself
        ("GET", "/api/v1/namespaces/x", {}, ("get", "x", "", "namespaces", "", "x")),
        ("PUT", "/api/v1/namespaces/x/finalize", {}, ("update", "x", "", "namespaces", "finalize", "x")),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/r",
            {},
            ("get", "", "rbac.authorization.k8s.io", "clusterroles", "", "r"),
        ),
    ],
)
def test_request_attributes(method: str, path: str, query: dict, expected: tuple) -> None:
    a = rbac.attributes(SA, method, path, query)
    assert (a.verb, a.namespace, a.api_group, a.resource, a.subresource, a.name) == expected


@pytest.mark.parametrize(
    ("path", "verb"),
    [
        ("/api", "get"),
        ("/apis/batch/v1", "get"),
        ("/version", "get"),
        ("/metrics", "get"),
        ("/openapi/v3", "get"),
    ],
)
def test_non_resource_requests(path: str, verb: str) -> None:
    a = rbac.attributes(SA, "GET", path, {})
    assert not a.resource_request and (a.verb, a.path) == (verb, path)


def test_forbidden_messages_read_like_the_real_server() -> None:
    assert rbac.forbidden_message(A(SA, "delete", "x", "batch", "jobs", name="j")) == (
        'jobs.batch "j" is forbidden: User "system:serviceaccount:ops:onnxops" cannot delete resource '
        '"jobs" in API group "batch" in the namespace "x"'
    )
    assert rbac.forbidden_message(A(SA, "list", "", "rbac.authorization.k8s.io", "clusterroles")) == (
        'clusterroles.rbac.authorization.k8s.io is forbidden: User "system:serviceaccount:ops:onnxops" '
        'cannot list resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope'
    )
    assert rbac.forbidden_message(A(SA, "patch", "x", "onnxops.dev", "trainingjobs", "status", "t")) == (
        'trainingjobs.onnxops.dev "t" is forbidden: User "system:serviceaccount:ops:onnxops" cannot patch '
        'resource "trainingjobs/status" in API group "onnxops.dev" in the namespace "x"'
    )
    assert rbac.forbidden_message(A(SA, "get", "x", "", "pods", name="p")).startswith(
        'pods "p" is forbidden: '
    )
    assert rbac.forbidden_message(A(SA, "post", path="/metrics")) == (
        'forbidden: User "system:serviceaccount:ops:onnxops" cannot post path "/metrics"'
    )


def test_tokens() -> None:
    tokens = Tokens()
    t = tokens.mint_service_account("ops", "onnxops")
    assert tokens.authenticate(f"Bearer {t}") == SA
    assert SA.service_account == ("ops", "onnxops") and ALICE.service_account is None
    assert tokens.authenticate(None) is None
    with pytest.raises(KeyError):
        tokens.authenticate("Bearer nope")
    with pytest.raises(KeyError):
        tokens.authenticate(f"Basic {t}")
