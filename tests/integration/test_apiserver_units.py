"""The API emulator's pure pieces against independent references: the RFC 6902 / RFC 7386 examples,
Kubernetes' own HumanDuration table, label-selector grammar and printer-column JSONPath."""

from __future__ import annotations

from typing import Any

import pytest

from onnxops.local.apiserver.errors import ApiError
from onnxops.local.apiserver.patch import json_patch, merge_patch, strategic_merge
from onnxops.local.apiserver.selectors import field_matcher, label_matcher
from onnxops.local.apiserver.tables import human_duration, jsonpath

# RFC 7386 Appendix A
MERGE_CASES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), MERGE_CASES)
def test_merge_patch_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


# RFC 6902 Appendix A (A.1-A.10, A.14, A.16)
JSON_CASES: list[tuple[Any, list[dict[str, Any]], Any]] = [
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    (
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    (
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    (
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
]


@pytest.mark.parametrize(("target", "ops", "expected"), JSON_CASES)
def test_json_patch_rfc6902_examples(target: Any, ops: list[dict[str, Any]], expected: Any) -> None:
    assert json_patch(target, ops) == expected


@pytest.mark.parametrize(
    ("target", "ops"),
    [
        ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),  # A.9: a failed test
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),  # A.12: missing parent
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}]),  # A.15: string is not number
    ],
)
def test_json_patch_errors_answer_422(target: Any, ops: list[dict[str, Any]]) -> None:
    with pytest.raises(ApiError) as exc:
        json_patch(target, ops)
    assert exc.value.code == 422


def test_strategic_merge_merges_lists_by_key_and_honours_directives() -> None:
    live = {
        "metadata": {"finalizers": ["a"]},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "1",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "name": "http"}],
                },
                {"name": "side", "image": "s"},
            ],
            "tolerations": [{"key": "x"}],
        },
    }
    patch = {
        "metadata": {"finalizers": ["b"]},
        "spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "main"}],
            "containers": [
                {
                    "name": "main",
                    "image": "2",
                    "env": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                },
            ],
            "tolerations": [{"key": "y"}],
        },
    }
    out = strategic_merge(live, patch)
    assert out["metadata"]["finalizers"] == ["a", "b"]
    side, main = out["spec"]["containers"]
    assert (side["name"], main["image"]) == ("side", "2")
    assert main["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]
    assert main["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"}]
    assert out["spec"]["tolerations"] == [{"key": "y"}]  # no merge key: replaced
    assert live["spec"]["containers"][0]["image"] == "1"  # the input is not mutated
    removed = strategic_merge(out, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert removed["metadata"]["finalizers"] == ["b"]


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "db"}, False),
        ("app!=web", {}, True),
        ("env in (prod, qa)", {"env": "qa"}, True),
        ("env notin (prod,qa)", {"env": "qa"}, False),
        ("env notin (prod,qa)", {}, True),
        ("env", {"env": ""}, True),
        ("!env", {"env": "x"}, False),
        ("app=web,env in (prod)", {"app": "web", "env": "prod"}, True),
        ("app=web,env in (prod)", {"app": "web", "env": "dev"}, False),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert label_matcher(selector)({"metadata": {"labels": labels}}) is expected


def test_field_selectors_on_nested_fields() -> None:
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p", "uid": "u"}}
    assert field_matcher("involvedObject.kind=Pod,involvedObject.name=p")(event)
    assert not field_matcher("involvedObject.name!=p")(event)
    assert field_matcher("status.phase=")(event)  # absent reads as empty, as on the real server


# k8s.io/apimachinery/pkg/util/duration TestHumanDuration
@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (1, "1s"),
        (70, "70s"),
        (190, "3m10s"),
        (70 * 60, "70m"),
        (47 * 3600, "47h"),
        (49 * 3600, "2d1h"),
        ((8 * 24 + 2) * 3600, "8d"),
        (367 * 24 * 3600, "367d"),
        ((365 * 2 * 24 + 25) * 3600, "2y1d"),
        ((365 * 8 * 24 + 2) * 3600, "8y"),
    ],
)
def test_human_duration_matches_kubernetes(seconds: int, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_printer_column_jsonpath() -> None:
    obj = {
        "status": {
            "conditions": [{"type": "Progressing", "status": "False"}, {"type": "Ready", "status": "True"}]
        },
        "spec": {"steps": [{"weight": 20}, {"weight": 50}]},
    }
    assert jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert jsonpath(obj, ".spec.steps[1].weight") == [50]
    assert jsonpath(obj, "{.spec.steps[*].weight}") == [20, 50]
    assert jsonpath(obj, ".status.missing") == []
