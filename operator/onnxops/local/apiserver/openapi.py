"""A minimal OpenAPI v3 discovery: enough for kubectl to see that every PATCH endpoint takes the
`fieldValidation` query parameter (so it leaves validation to the server), and the schemas of the custom
resources, named and tagged like the real server's (`x-kubernetes-group-version-kind`), so that
`kubectl explain <custom kind>[.field...]` works. Built-in kinds carry no schema here."""

from __future__ import annotations

from typing import Any

from .registry import Registry, ResourceInfo

Obj = dict[str, Any]
_PARAMS = [
    {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
]


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def root(registry: Registry) -> Obj:
    gvs = {(i.group, i.version) for i in registry.all()}
    return {
        "paths": {
            _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}"} for g, v in sorted(gvs)
        }
    }


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


OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_META_SCHEMA: Obj = {
    "description": "ObjectMeta is metadata that all persisted resources must have.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "namespace": {
            "type": "string",
            "description": "Namespace defines the space within which each name must be unique.",
        },
        "generateName": {"type": "string", "description": "A prefix for a server-generated name."},
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Map of string keys and values to organize and categorize objects.",
        },
        "annotations": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Unstructured key value map set by external tools.",
        },
        "uid": {"type": "string", "description": "The unique identity of this object, set by the server."},
        "resourceVersion": {
            "type": "string",
            "description": "The object's version, for optimistic concurrency.",
        },
        "generation": {
            "type": "integer",
            "format": "int64",
            "description": "A sequence number representing a specific generation of the spec.",
        },
        "finalizers": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Must be empty before the object is deleted from the registry.",
        },
        "ownerReferences": {
            "type": "array",
            "items": {"type": "object"},
            "description": "Objects depended on by this object.",
        },
    },
}


def schema_name(info: ResourceInfo) -> str:
    """The real server's component name: the group reversed, then version and kind
    (``onnxops.dev`` v1alpha1 InferenceService -> ``dev.onnxops.v1alpha1.InferenceService``)."""
    return ".".join([*reversed(info.group.split(".")), info.version, info.kind])


def object_schema(info: ResourceInfo) -> Obj:
    """A custom resource's openAPIV3Schema with the fields every object has, as the real server
    publishes it."""
    schema: Obj = dict(info.schema or {})
    props = dict(schema.get("properties") or {})
    props.setdefault(
        "apiVersion",
        {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation of an object.",
        },
    )
    props.setdefault(
        "kind",
        {
            "type": "string",
            "description": "Kind is a string value representing the REST resource this object represents.",
        },
    )
    props["metadata"] = {
        "allOf": [{"$ref": f"#/components/schemas/{OBJECT_META}"}],
        "description": "Standard object's metadata.",
    }
    schema["properties"] = props
    schema.setdefault("type", "object")
    schema["x-kubernetes-group-version-kind"] = [
        {"group": info.group, "version": info.version, "kind": info.kind}
    ]
    return schema


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
    schemas: Obj = {schema_name(i): object_schema(i) for i in infos if i.schema}
    if schemas:
        schemas[OBJECT_META] = _META_SCHEMA
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
