"""Authentication and RBAC authorisation for the API emulator.

Hand-written (no Python library implements Kubernetes' RBAC evaluation); it follows the rules of the real
authorizer (`k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac`):

- a request is a (user, groups, verb, namespace, apiGroup, resource, subresource, name) tuple, or a
  (user, groups, verb, path) tuple for a non-resource URL;
- it is allowed when any rule of any Role/ClusterRole bound to the user (directly, or to one of its
  groups, or as a ServiceAccount subject) covers it: a RoleBinding grants in its own namespace only, a
  ClusterRoleBinding everywhere; `*` matches any verb, group, resource or URL, `resource/subresource`
  names a subresource (`*/status` every status), resourceNames restricts to named objects, and a
  nonResourceURL ending in `*` is a prefix;
- ClusterRoles with an `aggregationRule` get the rules of every ClusterRole matching its selectors (what
  the real cluster's aggregation controller writes into `rules`);
- users in `system:masters` (the admin kubeconfig: requests without credentials) are always allowed, and
  every authenticated user may read the discovery and health endpoints (the `system:discovery` and
  `system:public-info-viewer` bootstrap roles).

Pure functions: `authorize` takes the stored RBAC objects; `attributes` maps an HTTP request to its
attributes; `forbidden_message` writes the real server's 403 message.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

ADMIN_USER = "system:admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
# what the system:discovery, system:basic-user and system:public-info-viewer bootstrap roles grant to
# every authenticated user
DISCOVERY_URLS = (
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/readyz",
    "/version",
    "/version/",
    "/openapi",
    "/openapi/*",
)


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()

    @property
    def service_account(self) -> tuple[str, str] | None:
        """(namespace, name) for a ServiceAccount user, else None."""
        parts = self.name.split(":")
        if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
            return parts[2], parts[3]
        return None


ADMIN = User(ADMIN_USER, (MASTERS, AUTHENTICATED))


def service_account_user(namespace: str, name: str) -> User:
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
    )


@dataclass(frozen=True)
class Attributes:
    """What a request asks for. `resource` empty: a non-resource request for `path`."""

    user: User
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""

    @property
    def resource_request(self) -> bool:
        return bool(self.resource)


@dataclass
class Tokens:
    """Bearer tokens the runtime minted: token -> user."""

    by_token: dict[str, User] = field(default_factory=dict)

    def mint(self, user: User) -> str:
        token = secrets.token_urlsafe(32)
        self.by_token[token] = user
        return token

    def mint_service_account(self, namespace: str, name: str) -> str:
        return self.mint(service_account_user(namespace, name))

    def authenticate(self, authorization: str | None) -> User | None:
        """The user of an `Authorization` header: None for no header (the caller decides), raises
        KeyError for a token nobody minted."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.by_token:
            raise KeyError("invalid bearer token")
        return self.by_token[token.strip()]


# --- request attributes ---------------------------------------------------------------------------------

_VERB = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "HEAD": "get"}


def attributes(user: User, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The attributes of an HTTP request, as the real server's request-info resolver derives them."""
    segs = [s for s in path.split("/") if s]
    if not segs or segs[0] not in ("api", "apis"):
        return Attributes(user, method.lower(), path=path)  # non-resource verbs are the HTTP method
    if segs[0] == "api":
        group, rest = "", segs[2:] if len(segs) >= 2 else []
        if len(segs) < 3:
            return Attributes(user, "get", path=path)
    else:
        if len(segs) < 4:
            return Attributes(user, "get", path=path)
        group, rest = segs[1], segs[3:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace = rest[1]  # also for the Namespace object itself (/namespaces/<ns>[/status|finalize])
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    return _verb_of(user, method, query, group, resource, name, sub, namespace)


def _verb_of(
    user: User,
    method: str,
    query: Mapping[str, str],
    group: str,
    resource: str,
    name: str,
    sub: str,
    namespace: str,
) -> Attributes:
    if method in ("GET", "HEAD"):
        watching = query.get("watch") in ("1", "true", "True")
        verb = "watch" if watching else ("get" if name else "list")
    elif method == "DELETE" and not name:
        verb = "deletecollection"
    else:
        verb = _VERB.get(method, method.lower())
    return Attributes(user, verb, namespace, group, resource, sub, name)


# --- evaluation -----------------------------------------------------------------------------------------


def _matches_selector(labels: Mapping[str, str], selector: Mapping[str, Any]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def cluster_role_rules(role: Obj, cluster_roles: Sequence[Obj]) -> list[Obj]:
    """A ClusterRole's rules, with those of the ClusterRoles its aggregationRule selects."""
    rules = list(role.get("rules") or [])
    selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
    if selectors:
        for other in cluster_roles:
            if other is role:
                continue
            labels = (other.get("metadata") or {}).get("labels") or {}
            if any(_matches_selector(labels, s) for s in selectors):
                rules.extend(other.get("rules") or [])
    return rules


def _subject_matches(subject: Mapping[str, Any], user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa = user.service_account
        return sa is not None and sa == (subject.get("namespace") or binding_namespace, name)
    return False


def _any(values: Iterable[str], wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values)


def rule_allows(rule: Mapping[str, Any], a: Attributes) -> bool:
    if not _any(rule.get("verbs") or [], a.verb):
        return False
    if not a.resource_request:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == a.path or (url.endswith("*") and a.path.startswith(url[:-1])):
                return True
        return False
    if rule.get("nonResourceURLs") and not rule.get("resources"):
        return False
    if not _any(rule.get("apiGroups") or [], a.api_group):
        return False
    combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    resources = rule.get("resources") or []
    ok = any(r in ("*", combined) or (a.subresource and r == f"*/{a.subresource}") for r in resources)
    if not ok:
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


@dataclass(frozen=True)
class Policy:
    """The RBAC objects stored in the cluster."""

    roles: Sequence[Obj] = ()
    cluster_roles: Sequence[Obj] = ()
    role_bindings: Sequence[Obj] = ()
    cluster_role_bindings: Sequence[Obj] = ()

    def _role(self, ref: Mapping[str, Any], namespace: str) -> list[Obj]:
        name = ref.get("name")
        if ref.get("kind") == "ClusterRole":
            for cr in self.cluster_roles:
                if (cr.get("metadata") or {}).get("name") == name:
                    return cluster_role_rules(cr, self.cluster_roles)
            return []
        for r in self.roles:
            meta = r.get("metadata") or {}
            if meta.get("name") == name and meta.get("namespace") == namespace:
                return list(r.get("rules") or [])
        return []

    def rules_for(self, user: User, namespace: str) -> list[Obj]:
        """Every rule that applies to `user` for a request in `namespace` ("" : cluster scope)."""
        out: list[Obj] = []
        for b in self.cluster_role_bindings:
            if any(_subject_matches(s, user, "") for s in b.get("subjects") or []):
                out.extend(self._role(b.get("roleRef") or {}, ""))
        if namespace:
            for b in self.role_bindings:
                ns = (b.get("metadata") or {}).get("namespace", "")
                if ns == namespace and any(_subject_matches(s, user, ns) for s in b.get("subjects") or []):
                    out.extend(self._role(b.get("roleRef") or {}, ns))
        return out


def authorize(a: Attributes, policy: Policy) -> bool:
    if MASTERS in a.user.groups:
        return True
    if (
        not a.resource_request
        and a.verb == "get"
        and AUTHENTICATED in a.user.groups
        and any(u == a.path or (u.endswith("*") and a.path.startswith(u[:-1])) for u in DISCOVERY_URLS)
    ):
        return True
    return any(rule_allows(r, a) for r in policy.rules_for(a.user, a.namespace))


def forbidden_message(a: Attributes, kind: str | None = None) -> str:
    """The real server's 403 message, e.g. `jobs.batch "x" is forbidden: User "system:serviceaccount:
    ns:sa" cannot delete resource "jobs" in API group "batch" in the namespace "ns"`."""
    if not a.resource_request:
        return f'forbidden: User "{a.user.name}" cannot {a.verb} path "{a.path}"'
    qualified = kind or (f"{a.resource}.{a.api_group}" if a.api_group else a.resource)
    what = f'{qualified} "{a.name}" is forbidden' if a.name else f"{qualified} is forbidden"
    res = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    where = f' in the namespace "{a.namespace}"' if a.namespace else " at the cluster scope"
    return (
        f'{what}: User "{a.user.name}" cannot {a.verb} resource "{res}" in API group "{a.api_group}"{where}'
    )
