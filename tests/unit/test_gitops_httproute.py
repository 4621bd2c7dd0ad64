"""Issue 22: the operator rewrites the backendRefs of the user's HTTPRoute; the Argo CD ignoreDifferences
and the Flux annotation in docs/gitops.md must cover exactly what it writes. The paths come from the
operator's own patch (builders.httproute), diffed as JSON pointers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from onnxops.builders.httproute import route_patch

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "deploy" / "argocd" / "application-httproute.yaml"
FLUX_ROUTE = ROOT / "deploy" / "flux" / "httproute.yaml"
DOC = (ROOT / "docs" / "gitops.md").read_text()


def pointers(a: Any, b: Any, path: str = "") -> set[str]:
    """JSON pointers (RFC 6901) of every leaf or list that differs between a and b."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for k in set(a) | set(b):
            key = str(k).replace("~", "~0").replace("/", "~1")
            out |= pointers(a.get(k), b.get(k), f"{path}/{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return set().union(
            *(pointers(x, y, f"{path}/{i}") for i, (x, y) in enumerate(zip(a, b, strict=True)))
        )
    return set() if a == b else {path}


def jq_to_regex(expr: str) -> re.Pattern[str]:
    """The subset of jq path expressions used here: .a.b[].c -> ^/a/b/<n>/c(/...)?$."""
    assert re.fullmatch(r"(\.[A-Za-z]+(\[\])?)+", expr), expr
    parts = []
    for name, arr in re.findall(r"\.([A-Za-z]+)(\[\])?", expr):
        parts.append(re.escape(name) + (r"/[0-9]+" if arr else ""))
    return re.compile("^/" + "/".join(parts) + "(/.*)?$")


def operator_writes() -> set[str]:
    """Every pointer the operator changes on a route with our refs in two rules and someone else's in one,
    across a rollout: first contact, canary weights, promotion with the bake share."""
    route = yaml.safe_load(FLUX_ROUTE.read_text())
    route["spec"]["rules"] += [
        {"matches": [{"path": {"value": "/static"}}], "backendRefs": [{"name": "static", "port": 80}]},
        {"matches": [{"path": {"value": "/v2"}}], "backendRefs": [{"name": "iris", "port": 80}]},
    ]
    found: set[str] = set()
    for weights in ({1: 100}, {1: 80, 2: 20}, {2: 75, 1: 25}, {2: 100}):
        patch = route_patch(route, "iris", weights)
        if patch is None:
            continue
        new = {**route, "spec": {**route["spec"], "rules": patch["spec"]["rules"]}}
        found |= pointers(route, new)
        route = new
    return found


def test_the_operator_writes_only_backend_refs() -> None:
    written = operator_writes()
    assert written and all(re.fullmatch(r"/spec/rules/[0-9]+/backendRefs(/.*)?", p) for p in written), written
    assert not any(p.startswith("/spec/rules/1/") for p in written)  # the rule without our refs


def test_argocd_ignore_differences_cover_the_writes() -> None:
    app = yaml.safe_load(APP.read_text())
    ignores = [i for i in app["spec"]["ignoreDifferences"] if i["kind"] == "HTTPRoute"]
    assert ignores and all(i["group"] == "gateway.networking.k8s.io" for i in ignores)
    route_name = yaml.safe_load(FLUX_ROUTE.read_text())["metadata"]["name"]
    assert all(i.get("name", route_name) == route_name for i in ignores)
    patterns = [jq_to_regex(e) for i in ignores for e in i.get("jqPathExpressions", [])]
    patterns += [
        re.compile("^" + re.escape(p) + "(/.*)?$") for i in ignores for p in i.get("jsonPointers", [])
    ]
    uncovered = [p for p in operator_writes() if not any(r.match(p) for r in patterns)]
    assert uncovered == []
    # ... and nothing of the route the user owns beyond that
    assert not any(r.match("/spec/parentRefs/0/name") or r.match("/spec/rules/0/matches") for r in patterns)
    # a sync must not overwrite the ignored field either; self-heal stays on
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]
    assert app["spec"]["syncPolicy"]["automated"]["selfHeal"] is True


def test_flux_route_is_created_once_then_left_to_the_operator() -> None:
    route = yaml.safe_load(FLUX_ROUTE.read_text())
    assert route["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/ssa"] == "IfNotPresent"
    assert any(ref["name"] == "iris" for rule in route["spec"]["rules"] for ref in rule["backendRefs"])


def test_doc_shows_the_committed_snippets() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC, flags=re.S)
    assert APP.read_text() in blocks and FLUX_ROUTE.read_text() in blocks
