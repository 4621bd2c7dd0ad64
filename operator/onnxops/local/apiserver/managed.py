"""Field ownership (`metadata.managedFields`) and server-side apply, in the spirit of the real API server's
structured merge:

- an Update (create, PUT, a JSON/merge/strategic patch) gives its field manager the fields whose value it
  changed (or added); other managers lose them; fields that disappear leave every manager;
- an Apply (`application/apply-patch+yaml`) owns exactly the fields of its configuration; a field of the
  configuration that another manager owns with a different live value is a conflict (409) unless
  `force=true`, which moves it to the applier; a field the applier owned before and no longer applies is
  removed, unless another manager owns it too.

Lists merge by the fixed key table of the strategic merge (containers by name, ...), so their items are
``k:{...}`` paths; other lists are atomic (one field). Managers are told apart by (manager, operation,
subresource), as on a real server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from onnxops.objects.fields import MISSING, Path, delete, from_fields_v1, resolve, to_fields_v1

from .defaults import now
from .errors import ApiError
from .patch import MERGE_KEYS, MERGE_PRIMITIVE_LISTS

Obj = dict[str, Any]
_META_TRACKED = ("labels", "annotations", "ownerReferences", "finalizers")
_LIST_KEYS = {**MERGE_KEYS, "ownerReferences": ("uid",)}


@dataclass(frozen=True)
class Writer:
    """Who writes, and how: the field manager, "Update" or "Apply", the subresource, and for an apply
    its configuration and `force`."""

    manager: str
    operation: str = "Update"
    subresource: str | None = None
    config: Obj | None = None
    force: bool = False
    taken: frozenset[Path] = frozenset()  # an apply's forced conflicts: fields other managers lose

    @property
    def identity(self) -> tuple[str, str, str | None]:
        return (self.manager, self.operation, self.subresource)


def _key(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _walk(value: Any, prefix: Path, field: str, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _walk(v, (*prefix, f"f:{k}"), k, out)
        return
    if isinstance(value, list) and value:
        if field in MERGE_PRIMITIVE_LISTS:
            out.update((*prefix, f"v:{_key(v)}") for v in value)
            return
        keys = _LIST_KEYS.get(field, ())
        key = next((k for k in keys if all(isinstance(i, dict) and k in i for i in value)), None)
        if key is not None:
            for item in value:
                item_path = (*prefix, f"k:{_key({key: item[key]})}")
                out.add(item_path)
                for k, v in item.items():
                    _walk(v, (*item_path, f"f:{k}"), k, out)
            return
    out.add(prefix)


def fieldset(obj: Obj, subresource: str | None, status_separate: bool) -> set[Path]:
    """The fields of ``obj`` that a write through ``subresource`` can own."""
    out: set[Path] = set()
    if subresource == "status":
        if "status" in obj:
            _walk(obj["status"], ("f:status",), "status", out)
        return out
    for k, v in obj.items():
        if k in ("apiVersion", "kind") or (k == "status" and status_separate):
            continue
        if k == "metadata":
            for mk in _META_TRACKED:
                if isinstance(v, dict) and mk in v:
                    _walk(v[mk], ("f:metadata", f"f:{mk}"), mk, out)
            continue
        _walk(v, (f"f:{k}",), k, out)
    return out


def _is_item(path: Path) -> bool:
    return bool(path) and path[-1][:2] in ("k:", "v:", "i:")


def _changed(old: Obj | None, new: Obj, path: Path) -> bool:
    before = MISSING if old is None else resolve(old, path)
    return before is MISSING or (not _is_item(path) and before != resolve(new, path))


def display(path: Path) -> str:
    """``(f:spec, f:containers, k:{"name":"a"}, f:image)`` -> ``.spec.containers[name="a"].image``."""
    out = ""
    for seg in path:
        if seg.startswith("f:"):
            out += "." + seg[2:]
        elif seg.startswith("k:"):
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(seg[2:]).items()) + "]"
        else:
            out += f"[{seg[2:]}]"
    return out


def _entries(obj: Obj | None) -> list[Obj]:
    return list(((obj or {}).get("metadata") or {}).get("managedFields") or [])


def _ident(entry: Obj) -> tuple[str, str, str | None]:
    return (str(entry.get("manager")), str(entry.get("operation")), entry.get("subresource"))


def conflicts(live: Obj, writer: Writer) -> list[tuple[str, Path]]:
    """(other manager, field) pairs where an apply would change a value another manager owns."""
    assert writer.config is not None
    found = []
    applied = fieldset(writer.config, writer.subresource, status_separate=False)
    for entry in _entries(live):
        if _ident(entry) == writer.identity or entry.get("subresource") != writer.subresource:
            continue
        for path in sorted(from_fields_v1(entry.get("fieldsV1") or {}) & applied):
            have = resolve(live, path)
            if not _is_item(path) and have is not MISSING and have != resolve(writer.config, path):
                found.append((str(entry.get("manager")), path))
    return found


def check_apply(info_api_version: str, plural: str, name: str, live: Obj, writer: Writer) -> set[Path]:
    """Refuse an apply that conflicts (409) unless forced; the conflicting fields (taken over when forced)."""
    found = conflicts(live, writer)
    if found and not writer.force:
        by_manager: dict[str, list[str]] = {}
        for manager, path in found:
            by_manager.setdefault(manager, []).append(display(path))
        parts = [
            f'conflict with "{m}" using {info_api_version}: {", ".join(p)}' for m, p in by_manager.items()
        ]
        n = len(found)
        message = f"Apply failed with {n} conflict{'s' if n > 1 else ''}: " + "; ".join(parts)
        causes = [
            {
                "reason": "FieldManagerConflict",
                "field": display(p),
                "message": f'conflict with "{m}" using {info_api_version}',
            }
            for m, p in found
        ]
        raise ApiError(409, message, details={"name": name, "kind": plural, "causes": causes})
    return {p for _, p in found}


def prune_unapplied(live: Obj, merged: Obj, writer: Writer) -> Obj:
    """Remove from ``merged`` the fields this applier applied before, no longer applies, and nobody else
    owns (in place; returns it)."""
    assert writer.config is not None
    mine: set[Path] = set()
    others: set[Path] = set()
    for entry in _entries(live):
        target = mine if _ident(entry) == writer.identity else others
        target |= from_fields_v1(entry.get("fieldsV1") or {})
    applied = fieldset(writer.config, writer.subresource, status_separate=False)
    for path in sorted(mine - applied - others, key=len):  # an item before its fields
        delete(merged, path)
    return merged


def record(old: Obj | None, new: Obj, writer: Writer, api_version: str, status_separate: bool) -> list[Obj]:
    """The managedFields of ``new`` after ``writer`` turned ``old`` (None: a create) into it."""
    final = fieldset(new, writer.subresource, status_separate)
    if writer.operation == "Apply":
        assert writer.config is not None
        gained = fieldset(writer.config, writer.subresource, status_separate) & final
        lost = set(writer.taken)
    else:
        gained = {p for p in final if _changed(old, new, p)}
        lost = gained
    sets: dict[tuple[str, str, str | None], set[Path]] = {}
    previous = {_ident(e): e for e in _entries(old)}
    for ident, old_entry in previous.items():
        fields = from_fields_v1(old_entry.get("fieldsV1") or {})
        if old_entry.get("subresource") == writer.subresource:
            fields = (fields - lost) & final
        sets[ident] = fields
    if writer.operation == "Apply":
        sets[writer.identity] = gained
    else:
        sets[writer.identity] = (sets.get(writer.identity, set()) | gained) & final
    out = []
    for ident, fields in sets.items():
        if not fields:
            continue
        tree = to_fields_v1(fields)
        before = previous.get(ident)
        if before is not None and before.get("fieldsV1") == tree:
            out.append(before)  # unchanged: keep its time, so a no-op write stays a no-op
            continue
        entry: Obj = {
            "manager": ident[0],
            "operation": ident[1],
            "apiVersion": api_version,
            "time": now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": tree,
        }
        if ident[2]:
            entry["subresource"] = ident[2]
        out.append(entry)
    return out


def manager_from(field_manager: str | None, user_agent: str | None) -> str:
    """The real server's default: the `fieldManager` parameter, else the User-Agent up to its first '/'."""
    if field_manager:
        return field_manager
    return (user_agent or "unknown").split("/")[0][:128] or "unknown"
