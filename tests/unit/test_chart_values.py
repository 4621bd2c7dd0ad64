"""values.yaml and values.schema.json: every key documented, the schema strict at every object level and
in step with values.yaml, and bad values refused by Helm itself with a message naming the field."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml
from _chart import CHART, VALUE_SETS, helm, render, validate_values

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
# Helm's reserved `global` values are shared with parent charts: typed as an object, contents not ours.
OPAQUE = {"global"}
# Kubernetes types passed through to the pod spec: the schema spells out their fields, the defaults are empty.
K8S_TYPES = (".affinity.",)


def _objects(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for key in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(node.get(key, [])):
            yield from _objects(sub, f"{path}<{key}{i}>")
    for key in ("if", "then", "else"):
        if key in node:
            yield from _objects(node[key], f"{path}<{key}>")
    if node.get("type") == "object":
        yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _objects(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _objects(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _objects(node["additionalProperties"], f"{path}{{}}")


def test_schema_is_valid_draft7() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(DEFAULTS)


def test_schema_is_strict_at_every_object_level() -> None:
    checked = 0
    for path, node in _objects(SCHEMA):
        if path.lstrip(".") in OPAQUE:
            continue
        extra = node.get("additionalProperties")
        # false, or a typed map (labels, annotations, resource quantities) whose values are checked
        assert extra is False or (isinstance(extra, dict) and extra), f"{path or '<root>'} is not strict"
        if extra is False:
            checked += 1
    assert checked > 40


def _value_paths(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}"
            yield from _value_paths(v, f"{path}.{k}")


def _schema_node(path: str) -> dict[str, Any] | None:
    node: dict[str, Any] = SCHEMA
    for part in path.strip(".").split("."):
        props = node.get("properties")
        if props is None or part not in props:
            return None
        node = props[part]
    return node


def test_values_and_schema_describe_the_same_keys() -> None:
    declared = set()
    for path, node in _objects(SCHEMA):
        if "<" in path or "[]" in path or "{}" in path or (path + ".").startswith(K8S_TYPES):
            continue
        declared |= {f"{path}.{k}" for k in node.get("properties", {})}
    in_values = set()
    for p in _value_paths(DEFAULTS):
        parent = p.rsplit(".", 1)[0]
        parent_node = _schema_node(parent) if parent else SCHEMA
        if parent_node is not None and parent_node.get("additionalProperties") is not False and parent:
            continue  # a map entry (e.g. resources.requests.cpu), not a declared key
        in_values.add(p)
    assert in_values - declared == set(), "keys in values.yaml missing from the schema"
    assert declared - in_values - {f".{k}" for k in OPAQUE} == set(), "schema keys without a default"


def test_every_key_in_values_yaml_is_commented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    declared_keys = 0
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        m = re.match(r"^( *)([A-Za-z_][\w.-]*):", line)
        if not m or line.lstrip().startswith("#"):
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "".join(f".{k}" for _, k in stack) + f".{key}"
        stack.append((indent, key))
        parent = _schema_node(path.rsplit(".", 1)[0]) if path.count(".") > 1 else SCHEMA
        if parent is None or parent.get("additionalProperties") is not False:
            continue  # map entries carry example values, not settings
        declared_keys += 1
        above = lines[i - 1].strip() if i else ""
        assert above.startswith("#"), f"values.yaml line {i + 1}: key {path} has no comment above it"
    assert declared_keys > 60


@pytest.mark.parametrize("name", VALUE_SETS)
def test_value_sets_pass_the_schema(name: str) -> None:
    validate_values(VALUE_SETS[name])


BAD_VALUES = [
    ({"replicaCount": "two"}, "replicaCount"),
    ({"bogus": True}, "bogus"),
    ({"operator": {"prometheusURL": "http://p:9090"}}, "prometheusURL"),
    ({"operator": {"healthPort": 70000}}, "healthPort"),
    ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ({"watchNamespaces": ["Team_A"]}, "watchNamespaces"),
    ({"artifacts": {"pvc": {"accessModes": ["ReadWriteAll"]}}}, "accessModes"),
    ({"artifacts": {"pvc": {"size": "ten gigs"}}}, "size"),
    ({"artifacts": {"s3": {"enabled": True}}}, "bucket"),
    ({"artifacts": {"s3": {"endpoint": "minio:9000"}}}, "endpoint"),
    ({"monitoring": {"prometheusRule": {"driftFor": "5 minutes"}}}, "driftFor"),
    ({"monitoring": {"podMonitor": {"enabled": "yes"}}}, "enabled"),
    ({"monitoring": {"prometheusRule": {"errorRateThreshold": 5}}}, "errorRateThreshold"),
    ({"tolerations": [{"key": "a", "operatr": "Exists"}]}, "operatr"),
    ({"resources": {"requests": {"cpu": "lots"}}}, "cpu"),
    ({"image": {"digest": "latest"}}, "digest"),
]


@pytest.mark.parametrize(("values", "field"), BAD_VALUES, ids=[f for _, f in BAD_VALUES])
def test_bad_values_are_refused_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(helm.HelmValuesError) as err:
        validate_values(values)
    assert field in str(err.value)
    # Independent implementation agrees (after Helm-style merging with the defaults).
    merged = _merge(DEFAULTS, values)
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(merged))


def test_render_refuses_bad_values() -> None:
    with pytest.raises(helm.HelmError):
        render({"replicaCount": -1})


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over
