"""Object lifecycle: create/get/list/update/patch with the real API server's metadata semantics
(uid, creationTimestamp, resourceVersion, generation, generateName), the status-subresource split,
optimistic concurrency and admission of custom resources."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import yaml

from . import deletion, managed
from .admission import admit
from .defaults import apply_create_defaults, apply_update_defaults, generated_name, name_problem, new_uid, now
from .errors import ApiError, already_exists, bad_request, conflict, invalid, not_found
from .managed import Writer
from .patch import json_patch, merge_patch, strategic_merge
from .rbac import Policy, Tokens
from .registry import CRD_GROUP_RESOURCE, Registry, ResourceInfo, crd_infos
from .selectors import both
from .store import Store

Obj = dict[str, Any]
LogProvider = Callable[[str, str, "str | None", "int | None"], "str | None"]

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
_IMMUTABLE_META = (
    "uid",
    "creationTimestamp",
    "name",
    "namespace",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


def _has_status(info: ResourceInfo) -> bool:
    return info.status_subresource


def _spec_part(info: ResourceInfo, obj: Obj) -> Obj:
    """What a generation bump compares: everything but metadata (and status when it is a subresource)."""
    skip = {"metadata", "status"} if _has_status(info) or info.builtin else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip and k not in ("apiVersion", "kind")}


class Cluster:
    """The emulated cluster state; every method runs synchronously on the server's event loop."""

    def __init__(
        self,
        *,
        history_size: int = 10_000,
        log_provider: LogProvider | None = None,
        auto_create_namespaces: bool = False,
    ) -> None:
        self.registry = Registry()
        self.store = Store(history_size)
        self.log_provider = log_provider
        self.tokens = Tokens()  # bearer tokens the runtime minted (ServiceAccounts); see rbac.py
        self.auto_create_namespaces = auto_create_namespaces
        ns_info = self.registry.get("", "v1", "namespaces")
        assert ns_info is not None
        self.namespaces = ns_info
        self.create(ns_info, None, {"metadata": {"name": "default"}})

    def policy(self) -> Policy:
        """The stored Roles, ClusterRoles and their bindings, for the authorizer."""
        g = "rbac.authorization.k8s.io"
        return Policy(
            self.store.items((g, "roles")),
            self.store.items((g, "clusterroles")),
            self.store.items((g, "rolebindings")),
            self.store.items((g, "clusterrolebindings")),
        )

    # --- helpers ------------------------------------------------------------------------------------
    def _stamp(self, obj: Obj) -> Obj:
        obj["metadata"]["resourceVersion"] = str(self.store.next_rv())
        return obj

    def _ns_key(self, info: ResourceInfo, namespace: str | None) -> str:
        return namespace or "" if info.namespaced else ""

    def _admit(self, info: ResourceInfo, obj: Obj, old: Obj | None, field_validation: str | None) -> Obj:
        return obj if info.builtin else admit(info, obj, old, field_validation)

    def _ensure_namespace(self, namespace: str) -> None:
        if self.store.get(self.namespaces.group_resource, "", namespace) is not None:
            return
        if self.auto_create_namespaces:
            self.create(self.namespaces, None, {"metadata": {"name": namespace}})
            return
        raise not_found("namespaces", "", namespace)

    def lookup(self, info: ResourceInfo, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(info.group_resource, self._ns_key(info, namespace), name)
        if obj is None:
            raise not_found(info.plural, info.group, name)
        return obj

    # --- verbs -------------------------------------------------------------------------------------
    def create(
        self,
        info: ResourceInfo,
        namespace: str | None,
        body: Any,
        field_validation: str | None = None,
        *,
        dry_run: bool = False,
        writer: Writer | None = None,
    ) -> Obj:
        """Create an object. ``dry_run`` (``?dryRun=All``) runs every check and default and returns the
        object as it would be stored, but stores nothing: no resourceVersion, no watch event."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if info.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            namespace = namespace or meta.get("namespace")
            if not namespace:
                raise bad_request("a namespace is required for a namespaced resource")
            if not (dry_run and self.auto_create_namespaces):
                self._ensure_namespace(namespace)
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generated_name(meta["generateName"])
        problem = name_problem(meta.get("name") or "", label=info.plural == "namespaces")
        if problem:
            raise invalid(
                info.kind,
                info.group,
                meta.get("name") or "",
                [{"reason": "FieldValueInvalid", "message": problem, "field": "metadata.name"}],
            )
        if self.store.get(info.group_resource, meta.get("namespace", ""), meta["name"]) is not None:
            raise already_exists(info.plural, info.group, meta["name"])
        obj["apiVersion"], obj["kind"] = info.api_version, info.kind
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "resourceVersion"):
            meta.pop(key, None)
        meta.update(uid=new_uid(), creationTimestamp=now(), generation=1)
        if _has_status(info):
            obj.pop("status", None)
        apply_create_defaults(info, obj)
        obj = self._admit(info, obj, None, field_validation)
        entries = (
            [] if writer is None else managed.record(None, obj, writer, info.api_version, _has_status(info))
        )
        if entries:
            obj["metadata"]["managedFields"] = entries
        if dry_run:
            return obj
        if info.group_resource == CRD_GROUP_RESOURCE:
            self._register_crd(obj)
        self.store.put(info.group_resource, self._stamp(obj), "ADDED")
        return obj

    def list(
        self,
        info: ResourceInfo,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], int]:
        match = both(label_selector, field_selector)
        scope = namespace if info.namespaced else None
        items = [o for o in self.store.items(info.group_resource, scope) if match(o)]
        return items, self.store.resource_version

    def replace(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None = None,
        field_validation: str | None = None,
        *,
        dry_run: bool = False,
        writer: Writer | None = None,
    ) -> Obj:
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise bad_request("the body of the request must be a JSON object with metadata")
        if (body.get("metadata") or {}).get("name", name) != name:
            raise bad_request("the name of the object does not match the name on the URL")
        old = self.lookup(info, namespace, name)
        return self._write(
            info, old, copy.deepcopy(body), subresource, field_validation, dry_run=dry_run, writer=writer
        )

    def patch(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        subresource: str | None = None,
        field_validation: str | None = None,
        *,
        dry_run: bool = False,
        writer: Writer | None = None,
    ) -> Obj:
        kind = content_type.split(";")[0].strip().lower()
        try:
            if kind == APPLY:
                body = yaml.safe_load(raw.decode() or "{}")
            else:
                import json

                body = json.loads(raw or b"null")
        except ValueError as exc:
            raise bad_request(f"error decoding patch: {exc}") from exc
        try:
            old = self.lookup(info, namespace, name)
        except ApiError:
            if kind == APPLY:  # server-side apply creates a missing object
                return self.create(
                    info, namespace, body, field_validation, dry_run=dry_run, writer=_applier(writer, body)
                )
            raise
        if kind == JSON:
            new = json_patch(old, body)
        elif kind == MERGE:
            new = merge_patch(old, body)
        elif kind in (STRATEGIC, APPLY):
            if kind == STRATEGIC and not info.builtin:
                raise ApiError(
                    415,
                    f"the body of the request was in an unknown format - accepted media "
                    f"types include: {JSON}, {MERGE}, {APPLY}",
                )
            new = strategic_merge(old, body) if info.builtin else merge_patch(old, body)
            if kind == APPLY and isinstance(body, dict) and isinstance(new, dict):
                writer = _applier(writer, body)
                taken = managed.check_apply(info.api_version, info.plural, name, old, writer)
                writer = dataclasses.replace(writer, taken=frozenset(taken))
                new = managed.prune_unapplied(old, copy.deepcopy(new), writer)
        else:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {JSON}, {MERGE}, {STRATEGIC}, {APPLY}",
            )
        if not isinstance(new, dict):
            raise bad_request("the patched object is not a JSON object")
        return self._write(info, old, new, subresource, field_validation, dry_run=dry_run, writer=writer)

    def _write(
        self,
        info: ResourceInfo,
        old: Obj,
        new: Obj,
        subresource: str | None,
        field_validation: str | None = None,
        *,
        dry_run: bool = False,
        writer: Writer | None = None,
    ) -> Obj:
        new = copy.deepcopy(new)  # patches share untouched subtrees with the stored object
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        old_meta = old["metadata"]
        rv = meta.get("resourceVersion")
        if rv and rv != old_meta["resourceVersion"]:
            raise conflict(
                info.plural,
                info.group,
                old_meta["name"],
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        new = _keep_what_the_write_cannot_change(info, old, new, subresource)
        if subresource != "status":
            apply_update_defaults(info, new)
        new = self._admit(info, new, old, field_validation)
        meta = new["metadata"]
        if _spec_part(info, new) != _spec_part(info, old):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if writer is not None:
            meta["managedFields"] = managed.record(old, new, writer, info.api_version, _has_status(info))
            if not meta["managedFields"]:
                meta.pop("managedFields")
        elif old_meta.get("managedFields"):
            meta["managedFields"] = old_meta["managedFields"]
        if new == old:
            return old  # a no-op write changes nothing, not even the resourceVersion
        if dry_run:
            return new  # what would be stored, at the current resourceVersion
        if info.group_resource == CRD_GROUP_RESOURCE:
            self._register_crd(new)
        if (
            meta.get("deletionTimestamp")
            and old_meta.get("finalizers")
            and not meta.get("finalizers")
            and not meta.get("deletionGracePeriodSeconds")
        ):
            return deletion.remove(self, info, self._stamp(new))
        self.store.put(info.group_resource, self._stamp(new), "MODIFIED")
        return new

    def delete(self, info: ResourceInfo, namespace: str | None, name: str, options: Obj) -> Obj:
        return deletion.delete(self, info, self.lookup(info, namespace, name), options)

    # --- CRDs --------------------------------------------------------------------------------------
    def _register_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        try:
            infos = crd_infos(crd)
        except (KeyError, TypeError) as exc:
            raise invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                crd["metadata"]["name"],
                [
                    {"reason": "FieldValueRequired", "field": f"spec.{exc}", "message": "Required value"},
                ],
            ) from exc
        expected = f"{names.get('plural')}.{spec.get('group')}"
        if crd["metadata"]["name"] != expected:
            raise invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                crd["metadata"]["name"],
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.name",
                        "message": f'Invalid value: "{crd["metadata"]["name"]}": '
                        'must be spec.names.plural+"."+spec.group',
                    }
                ],
            )
        self.registry.remove_group_resource(spec["group"], names["plural"])
        for info in infos:
            self.registry.add(info)
        crd["status"] = {
            "acceptedNames": {k: v for k, v in names.items()},
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now()}
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }

    def unregister_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        for info in self.registry.versions(group, plural)[:1]:
            for obj in self.store.items(info.group_resource):
                deletion.remove(self, info, self._stamp(copy.deepcopy(obj)), gc=False)
        self.registry.remove_group_resource(group, plural)
        self.store.drop_group_resource((group, plural))


def _applier(writer: Writer | None, body: Any) -> Writer:
    base = writer or Writer("unknown")
    config = body if isinstance(body, dict) else {}
    return dataclasses.replace(base, operation="Apply", config=config)


def _keep_what_the_write_cannot_change(
    info: ResourceInfo, old: Obj, new: Obj, subresource: str | None
) -> Obj:
    """``new`` with what this write may not change taken from ``old``: the status (or, on the status
    subresource, everything but the status), immutable metadata, apiVersion/kind; no finalizer may be
    added to an object being deleted."""
    old_meta = old["metadata"]
    meta = new["metadata"]
    if subresource == "status":
        new = (
            {**old, "status": new.get("status")}
            if "status" in new
            else {k: v for k, v in old.items() if k != "status"}
        )
        meta = new["metadata"] = dict(old_meta)
    elif _has_status(info):
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    for key in _IMMUTABLE_META:
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    meta.pop("managedFields", None)
    new["apiVersion"], new["kind"] = info.api_version, info.kind
    if old_meta.get("deletionTimestamp"):
        added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        if added:
            raise invalid(
                info.kind,
                info.group,
                old_meta["name"],
                [
                    {
                        "reason": "FieldValueForbidden",
                        "field": "metadata.finalizers",
                        "message": "Forbidden: no new finalizers can be added if the object is being deleted",
                    }
                ],
            )
    return new
