"""A minimal OpenAPI v3 discovery: enough for kubectl to see that every PATCH endpoint takes the
`fieldValidation` query parameter, so it leaves validation to the server instead of downloading full
schemas for client-side validation. The documents carry no object schemas (`kubectl explain` is not
supported)."""

from __future__ import annotations

from typing import Any

from .registry import Registry, ResourceInfo

Obj = dict[str, Any]
_PARAMS = [{"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
           for name in ("dryRun", "fieldManager", "fieldValidation", "force")]


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def root(registry: Registry) -> Obj:
    gvs = {(i.group, i.version) for i in registry.all()}
    return {"paths": {_gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}"}
                      for g, v in sorted(gvs)}}


def _item_path(info: ResourceInfo) -> str:
    ns = "namespaces/{namespace}/" if info.namespaced else ""
    return f"/{_gv_path(info.group, info.version)}/{ns}{info.plural}/{{name}}"


def _operation(info: ResourceInfo, verb: str) -> Obj:
    return {
        "operationId": f"{verb}{info.kind}",
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind},
        "parameters": list(_PARAMS),
        "responses": {"200": {"description": "OK"}},
    }


def group_version(registry: Registry, path: str) -> Obj | None:
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    infos = registry.in_group_version(group, version)
    if not infos:
        return None
    paths = {_item_path(i): {"patch": _operation(i, "patch"), "put": _operation(i, "put")} for i in infos}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.37.0"}, "paths": paths,
            "components": {"schemas": {}}}
