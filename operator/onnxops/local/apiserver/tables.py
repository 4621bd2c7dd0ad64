"""Server-side printing: meta.k8s.io/v1 Tables for `kubectl get`, from a CRD's additionalPrinterColumns
(simple JSONPath, including `[?(@.type=="Ready")]` filters) or a default column set for built-in kinds."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

from .registry import ResourceInfo

Obj = dict[str, Any]
_TOKEN_RE = re.compile(
    r"""\.([A-Za-z0-9_\-$]+)
    | \[(\d+|\*)\]
    | \[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*["']([^"']*)["']\)\]
    | \[['"]([^'"]+)['"]\]""",
    re.X,
)


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate the JSONPath subset printer columns use; returns all matches (possibly none)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    path = path.lstrip("$")
    nodes = [obj]
    pos = 0
    while pos < len(path):
        m = _TOKEN_RE.match(path, pos)
        if not m:
            return []
        pos = m.end()
        key, index, fkey, fval, quoted = m.groups()
        out: list[Any] = []
        for node in nodes:
            if (key or quoted) is not None:
                name = key if key is not None else quoted
                if isinstance(node, dict) and name in node:
                    out.append(node[name])
            elif index is not None:
                if isinstance(node, list):
                    out.extend(node if index == "*" else node[int(index) : int(index) + 1])
            elif isinstance(node, list):
                out.extend(
                    i
                    for i in node
                    if isinstance(i, dict) and str(_dig(i, fkey)) == fval and _dig(i, fkey) is not None
                )
        nodes = out
    return nodes


def _dig(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any, now: dt.datetime | None = None) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        when = dt.datetime.strptime(timestamp.replace("Z", "+0000")[:24], "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return "<invalid>"
    return human_duration(((now or dt.datetime.now(dt.UTC)) - when).total_seconds())


def _cell(column: dict[str, Any], obj: Obj) -> Any:
    found = jsonpath(obj, column.get("jsonPath", ""))
    if not found or found[0] is None:
        return None
    value, kind = found[0], column.get("type", "string")
    if kind == "date":
        return age(value)
    if kind == "integer":
        return value if isinstance(value, int) else None
    if kind == "number":
        return value if isinstance(value, int | float) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, str):
        return value
    return (
        json.dumps(value)
        if isinstance(value, dict | list)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


def _col(name: str, kind: str = "string", description: str = "", priority: int = 0, fmt: str = "") -> Obj:
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": priority}


def _pod_cells(o: Obj) -> list[Any]:
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    phase = (o.get("status") or {}).get("phase", "Pending")
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        phase = "Terminating"
    return [
        f"{ready}/{total}",
        phase,
        sum(int(c.get("restartCount", 0)) for c in statuses),
        age(o["metadata"].get("creationTimestamp")),
        (o.get("status") or {}).get("podIP", "<none>"),
    ]


def _deploy_cells(o: Obj) -> list[Any]:
    st = o.get("status") or {}
    return [
        f"{st.get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 1)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
        age(o["metadata"].get("creationTimestamp")),
    ]


def _job_cells(o: Obj) -> list[Any]:
    st, conds = o.get("status") or {}, (o.get("status") or {}).get("conditions") or []
    done = [c["type"] for c in conds if c.get("status") == "True" and c.get("type") in ("Complete", "Failed")]
    state = done[0] if done else ("Running" if st.get("active") else "Pending")
    return [
        state,
        f"{st.get('succeeded', 0)}/{(o.get('spec') or {}).get('completions', 1)}",
        age(o["metadata"].get("creationTimestamp")),
    ]


def _svc_cells(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    return [
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", "<none>"),
        "<none>",
        ports or "<none>",
        age(o["metadata"].get("creationTimestamp")),
    ]


def _event_cells(o: Obj) -> list[Any]:
    when = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
    target = o.get("involvedObject") or o.get("regarding") or {}
    return [
        age(when),
        o.get("type", ""),
        o.get("reason", ""),
        f"{str(target.get('kind', '')).lower()}/{target.get('name', '')}",
        o.get("message") or o.get("note", ""),
    ]


def _hpa_cells(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    return [
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        spec.get("minReplicas", 1),
        spec.get("maxReplicas"),
        st.get("currentReplicas", 0),
        age(o["metadata"].get("creationTimestamp")),
    ]


_BUILTIN: dict[tuple[str, str], tuple[list[Obj], Callable[[Obj], list[Any]]]] = {
    ("", "pods"): (
        [_col("Ready"), _col("Status"), _col("Restarts", "integer"), _col("Age"), _col("IP", priority=1)],
        _pod_cells,
    ),
    ("apps", "deployments"): (
        [_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"), _col("Age")],
        _deploy_cells,
    ),
    ("batch", "jobs"): ([_col("Status"), _col("Completions"), _col("Age")], _job_cells),
    ("", "services"): (
        [_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), _col("Age")],
        _svc_cells,
    ),
    ("events.k8s.io", "events"): (
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
        _event_cells,
    ),
    ("", "events"): (
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
        _event_cells,
    ),
    ("autoscaling", "horizontalpodautoscalers"): (
        [
            _col("Reference"),
            _col("MinPods", "integer"),
            _col("MaxPods", "integer"),
            _col("Replicas", "integer"),
            _col("Age"),
        ],
        _hpa_cells,
    ),
    ("", "namespaces"): (
        [_col("Status"), _col("Age")],
        lambda o: [
            (o.get("status") or {}).get("phase", "Active"),
            age(o["metadata"].get("creationTimestamp")),
        ],
    ),
}


_NAME_LAST = {("", "events"), ("events.k8s.io", "events")}


def _row_object(obj: Obj, include: str) -> Any:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table(info: ResourceInfo, objs: list[Obj], resource_version: str, include: str = "Metadata") -> Obj:
    name_col = _col("Name", fmt="name", description="Name must be unique within a namespace.")
    cells_for: Callable[[Obj], list[Any]]
    if info.printer_columns:
        extra = info.printer_columns
        columns = [name_col] + [
            _col(
                c["name"],
                c.get("type", "string"),
                c.get("description", ""),
                int(c.get("priority", 0)),
                c.get("format", ""),
            )
            for c in extra
        ]

        def cells_for(o: Obj) -> list[Any]:
            return [_cell(c, o) for c in extra]
    elif info.group_resource in _BUILTIN:
        more, cells_for = _BUILTIN[info.group_resource]
        columns = [name_col, *more]
    else:
        columns = [name_col, _col("Age", "date")]

        def cells_for(o: Obj) -> list[Any]:
            return [age(o["metadata"].get("creationTimestamp"))]

    if info.group_resource in _NAME_LAST:  # events show their (generated) name only with -o wide
        columns = [*columns[1:], {**name_col, "priority": 1}]
        rows = [
            {"cells": [*cells_for(o), o["metadata"]["name"]], "object": _row_object(o, include)} for o in objs
        ]
    else:
        rows = [
            {"cells": [o["metadata"]["name"], *cells_for(o)], "object": _row_object(o, include)} for o in objs
        ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }


def wants_table(accept: str) -> bool:
    return any("as=Table" in part and "g=meta.k8s.io" in part for part in accept.split(","))
