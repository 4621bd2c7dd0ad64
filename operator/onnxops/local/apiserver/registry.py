"""The resource registry: built-in kinds plus the kinds that posted CustomResourceDefinitions register."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceInfo:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    builtin: bool = True
    printer_columns: tuple[dict[str, Any], ...] = ()
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    subresources: tuple[str, ...] = ()  # extra subresources besides status (e.g. "log")

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> tuple[str, str]:
        """The storage key: all versions of a group/plural share one set of objects."""
        return (self.group, self.plural)


def _b(
    group: str,
    version: str,
    plural: str,
    kind: str,
    short: tuple[str, ...] = (),
    *,
    namespaced: bool = True,
    status: bool = False,
    all_cat: bool = False,
    subresources: tuple[str, ...] = (),
) -> ResourceInfo:
    return ResourceInfo(
        group,
        version,
        plural,
        kind,
        namespaced,
        short,
        ("all",) if all_cat else (),
        status,
        True,
        (),
        None,
        subresources,
    )


BUILTINS: tuple[ResourceInfo, ...] = (
    _b("", "v1", "namespaces", "Namespace", ("ns",), namespaced=False, status=True),
    _b("", "v1", "pods", "Pod", ("po",), status=True, all_cat=True, subresources=("log",)),
    _b("", "v1", "services", "Service", ("svc",), status=True, all_cat=True),
    _b("", "v1", "endpoints", "Endpoints", ("ep",)),
    _b("", "v1", "configmaps", "ConfigMap", ("cm",)),
    _b("", "v1", "secrets", "Secret"),
    _b("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", ("pvc",), status=True),
    _b("", "v1", "events", "Event", ("ev",)),
    _b("", "v1", "serviceaccounts", "ServiceAccount", ("sa",)),
    _b("events.k8s.io", "v1", "events", "Event", ("ev",)),
    _b("batch", "v1", "jobs", "Job", status=True, all_cat=True),
    _b(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        ("deploy",),
        status=True,
        all_cat=True,
        subresources=("scale",),
    ),
    _b(
        "apps", "v1", "replicasets", "ReplicaSet", ("rs",), status=True, all_cat=True, subresources=("scale",)
    ),
    _b(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        ("hpa",),
        status=True,
        all_cat=True,
    ),
    _b("coordination.k8s.io", "v1", "leases", "Lease"),
    _b("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", ("pdb",), status=True),
    _b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        ("crd", "crds"),
        namespaced=False,
        status=True,
    ),
)

CRD_GROUP_RESOURCE = ("apiextensions.k8s.io", "customresourcedefinitions")

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first (smaller tuple sorts first)."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, version)


def crd_infos(crd: dict[str, Any]) -> list[ResourceInfo]:
    """One ResourceInfo per served version of a CustomResourceDefinition."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    infos = []
    for ver in spec.get("versions") or []:
        if not ver.get("served", True):
            continue
        schema = (ver.get("schema") or {}).get("openAPIV3Schema")
        infos.append(
            ResourceInfo(
                group=spec["group"],
                version=ver["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in (ver.get("subresources") or {}),
                builtin=False,
                printer_columns=tuple(ver.get("additionalPrinterColumns") or ()),
                schema=schema,
            )
        )
    return infos


class Registry:
    def __init__(self) -> None:
        self._infos: dict[tuple[str, str, str], ResourceInfo] = {}
        for info in BUILTINS:
            self.add(info)

    def add(self, info: ResourceInfo) -> None:
        self._infos[(info.group, info.version, info.plural)] = info

    def remove_group_resource(self, group: str, plural: str) -> None:
        for key in [k for k in self._infos if k[0] == group and k[2] == plural]:
            del self._infos[key]

    def get(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._infos.get((group, version, plural))

    def all(self) -> list[ResourceInfo]:
        return list(self._infos.values())

    def versions(self, group: str, plural: str) -> list[ResourceInfo]:
        return [i for i in self._infos.values() if i.group == group and i.plural == plural]

    def groups(self) -> dict[str, list[str]]:
        """group -> versions, preferred first (the core group "" is not included)."""
        out: dict[str, set[str]] = {}
        for group, version, _ in self._infos:
            if group:
                out.setdefault(group, set()).add(version)
        return {g: sorted(v, key=version_priority) for g, v in sorted(out.items())}

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [i for (g, v, _), i in sorted(self._infos.items()) if g == group and v == version]
