"""Field sets in the API server's `managedFields` format (FieldsV1), and the operator's reading of them.

A field path is a tuple of FieldsV1 keys: ``f:<name>`` (a map field), ``k:<json>`` (an item of an
associative list, named by its key fields), ``v:<json>`` (an item of a set) or ``i:<n>`` (an index).
The API emulator records ownership with these paths; the operator reads them to find the fields that
another field manager added to one of its children (:func:`foreign_additions`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

Path = tuple[str, ...]
MISSING: Any = object()

# spec fields a foreign manager may own without the operator undoing it: the replica count an
# autoscaler sets (only when the operator leaves it out), and the addresses a Service is given.
TOLERATED: tuple[Path, ...] = (
    ("f:spec", "f:clusterIP"),
    ("f:spec", "f:clusterIPs"),
    ("f:spec", "f:ipFamilies"),
    ("f:spec", "f:ipFamilyPolicy"),
)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """``{("f:spec", "f:replicas")}`` -> ``{"f:spec": {"f:replicas": {}}}``; a list item that is itself a
    member carries ``".": {}``."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(key, {})
        if path and path[-1][:2] in ("k:", "v:", "i:"):
            node["."] = {}
    return tree


def from_fields_v1(tree: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    """The inverse of :func:`to_fields_v1`."""
    found: set[Path] = set()
    for key, sub in tree.items():
        if key == ".":
            found.add(prefix)
        elif isinstance(sub, Mapping) and sub:
            found |= from_fields_v1(sub, (*prefix, key))
        else:
            found.add((*prefix, key))
    return found


def _item_matches(item: Any, seg: str, lenient: bool) -> bool:
    kind, raw = seg[:2], seg[2:]
    value = json.loads(raw)
    if kind == "v:":
        return bool(item == value)
    if not isinstance(item, dict) or not isinstance(value, dict):
        return False
    return all(item.get(k, v if lenient else MISSING) == v for k, v in value.items())


def _step(node: Any, seg: str, lenient: bool) -> tuple[Any, str | int | None]:
    """(child, how to address it: a key or an index) or (MISSING, None)."""
    if seg.startswith("f:"):
        name = seg[2:]
        if isinstance(node, dict) and name in node:
            return node[name], name
        return MISSING, None
    if not isinstance(node, list):
        return MISSING, None
    if seg.startswith("i:"):
        index = int(seg[2:])
        return (node[index], index) if 0 <= index < len(node) else (MISSING, None)
    for index, item in enumerate(node):
        if _item_matches(item, seg, lenient):
            return item, index
    return MISSING, None


def resolve(obj: Any, path: Path, *, lenient: bool = False) -> Any:
    """The value at ``path`` in ``obj``, or :data:`MISSING`. ``lenient`` matches a list item on the key
    fields it has (a desired object may leave out key fields the server defaults, such as a port's
    protocol)."""
    node = obj
    for seg in path:
        node, _ = _step(node, seg, lenient)
        if node is MISSING:
            return MISSING
    return node


def delete(obj: Any, path: Path) -> bool:
    """Remove the field or list item at ``path`` from ``obj`` (in place); False when it is not there."""
    node = obj
    for seg in path[:-1]:
        node, _ = _step(node, seg, False)
        if node is MISSING:
            return False
    _, where = _step(node, path[-1], False)
    if where is None:
        return False
    del node[where]
    return True


def owned(obj: Mapping[str, Any], *, exclude_managers: Iterable[str] = ()) -> Iterator[tuple[str, Path]]:
    """(manager, path) for every field that the object's managedFields give to a manager not excluded;
    status and scale subresource entries are left out (they own no behaviour the operator sets)."""
    skip = set(exclude_managers)
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") in skip or entry.get("subresource") in ("status",):
            continue
        for path in from_fields_v1(entry.get("fieldsV1") or {}):
            yield str(entry.get("manager")), path


def foreign_additions(observed: Mapping[str, Any], desired: Mapping[str, Any], manager: str) -> list[Path]:
    """The spec fields that other field managers added to ``observed`` and that ``desired`` does not
    have: for each, the outermost path missing from ``desired`` (removing it removes the addition).

    Fields ``desired`` has are not listed (a changed value is set back by applying ``desired``); nor are
    metadata (labels, annotations), the replica count when ``desired`` leaves it out (an autoscaler's),
    and the :data:`TOLERATED` fields."""
    targets: set[Path] = set()
    for _, path in owned(observed, exclude_managers=(manager,)):
        if path[:1] != ("f:spec",) or any(path[: len(t)] == t for t in TOLERATED):
            continue
        if path == ("f:spec", "f:replicas") and resolve(desired, path) is MISSING:
            continue
        if resolve(desired, path, lenient=True) is not MISSING:
            continue
        cut = next(n for n in range(1, len(path) + 1) if resolve(desired, path[:n], lenient=True) is MISSING)
        if resolve(observed, path[:cut]) is not MISSING:
            targets.add(path[:cut])
    # an addition inside another one goes with it
    return sorted(t for t in targets if not any(t[: len(o)] == o and t != o for o in targets))


def without(observed: Mapping[str, Any], paths: Iterable[Path]) -> dict[str, Any]:
    """A copy of ``observed`` without ``paths`` (and without managedFields, which the server keeps)."""
    import copy

    body = copy.deepcopy(dict(observed))
    body.get("metadata", {}).pop("managedFields", None)
    for path in paths:
        delete(body, path)
    return body
