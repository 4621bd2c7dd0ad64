"""docs/crd-reference.md: complete (checked against the pydantic models, walked here without the renderer),
fresh, well-formed Markdown, with minimal manifests that are valid and taken from examples/; and
`onnxops gen-crds --check` fails when the page is stale."""

from __future__ import annotations

import html
import json
import re
import shutil
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from onnxops.api.v1alpha1 import InferenceService, ModelVersion, TrainingJob
from onnxops.crddocs import EXAMPLES, ExampleError, render_reference
from onnxops.crdgen import build_crds, main
from onnxops.validate import validate_manifest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "crd-reference.md"
MODELS: dict[str, type[BaseModel]] = {
    "TrainingJob": TrainingJob,
    "ModelVersion": ModelVersion,
    "InferenceService": InferenceService,
}
CRDS = build_crds()


# --- an independent walk of the pydantic models ----------------------------------------------------------


@dataclass(frozen=True)
class Field:
    path: str
    info: FieldInfo
    leaf: Any  # the annotation with Optional/Annotated removed


def _strip(tp: Any) -> Any:
    """Drop Annotated wrappers and the None branch of an Optional."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp  # int | str
            tp = args[0]
        else:
            return tp


def _nested(tp: Any, path: str) -> Iterator[tuple[str, type[BaseModel]]]:
    """(path, model) for the models reachable from annotation ``tp`` through lists and maps."""
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    if origin is list:
        yield from _nested(typing.get_args(tp)[0], path + "[]")
    elif origin is dict:
        yield from _nested(typing.get_args(tp)[1], path + "{}")
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        yield path, tp


def wire_name(name: str, info: FieldInfo) -> str:
    return info.alias or name


def model_fields(model: type[BaseModel], prefix: str) -> Iterator[Field]:
    for name, info in model.model_fields.items():
        path = f"{prefix}.{wire_name(name, info)}"
        yield Field(path, info, _strip(info.annotation))
        for sub_path, sub in _nested(info.annotation, path):
            yield from model_fields(sub, sub_path)


def kind_fields(kind: str) -> list[Field]:
    """``spec``, ``status`` and every field below them, by their wire (camelCase) paths."""
    top = MODELS[kind].model_fields
    out = []
    for name in ("spec", "status"):
        out.append(Field(name, top[name], _strip(top[name].annotation)))
        for path, sub in _nested(top[name].annotation, name):
            out += model_fields(sub, path)
    return out


def _messages(extra: Any) -> list[str]:
    rules = extra.get("x-kubernetes-validations", []) if isinstance(extra, dict) else []
    return [str(r["message"]) for r in rules]


def model_rules(kind: str) -> list[tuple[str, str]]:
    """(path, message) of every CEL rule declared on a field or on a model's config."""
    found: list[tuple[str, str]] = []
    top = MODELS[kind].model_fields
    stack = [p for n in ("spec", "status") for p in _nested(top[n].annotation, n)]
    while stack:
        path, model = stack.pop()
        found += [(path, m) for m in _messages(model.model_config.get("json_schema_extra"))]
        for name, info in model.model_fields.items():
            sub_path = f"{path}.{wire_name(name, info)}"
            found += [(sub_path, m) for m in _messages(info.json_schema_extra)]
            stack += list(_nested(info.annotation, sub_path))
    return found


# --- reading the page ------------------------------------------------------------------------------------

ROW = re.compile(r"^\| `(?P<path>[^`]+)` \|")
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    return {p.split("\n", 1)[0].strip(): p for p in parts}


def cells(line: str) -> list[str]:
    return [c.strip() for c in UNESCAPED_PIPE.split(line)[1:-1]]


def field_rows(section: str) -> dict[str, list[str]]:
    body = section.split("### Fields", 1)[1].split("### ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in body.splitlines():
        m = ROW.match(line)
        if m:
            assert m["path"] not in rows, f"duplicate row {m['path']}"
            rows[m["path"]] = cells(line)
    return rows


def text_of(cell: str) -> str:
    """A description cell back as plain text."""
    return html.unescape(cell.replace("\\|", "|"))


DOC_TEXT = DOC.read_text(encoding="utf-8")
SECTIONS = sections(DOC_TEXT)


# --- completeness ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_model_field_has_exactly_one_row(kind: str) -> None:
    expected = [f.path for f in kind_fields(kind)]
    assert len(expected) > 20  # the walk did reach the nested models
    rows = field_rows(SECTIONS[kind])
    assert set(rows) == set(expected), (set(expected) - set(rows), set(rows) - set(expected))


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_rows_agree_with_the_models(kind: str) -> None:
    rows = field_rows(SECTIONS[kind])
    for f in kind_fields(kind):
        _, typ, required, default, constraints, description = rows[f.path]
        assert required == ("yes" if f.info.is_required() else "no"), f.path
        if f.info.description:
            assert text_of(description) == " ".join(f.info.description.split()), f.path
        if f.info.default not in (PydanticUndefined, None) and isinstance(f.info.default, str | int | float):
            assert default == f"`{json.dumps(f.info.default)}`", f.path
        if typing.get_origin(f.leaf) is typing.Literal:
            for value in typing.get_args(f.leaf):
                assert f"`{value}`" in constraints, (f.path, value)
        for m in f.info.metadata:
            for attr, shown in (("ge", ">= {}"), ("gt", "> {}"), ("le", "<= {}"), ("lt", "< {}")):
                if getattr(m, attr, None) is not None:
                    assert shown.format(getattr(m, attr)) in constraints.split("; "), (f.path, attr)
            if getattr(m, "max_length", None) is not None:
                origin = typing.get_origin(f.leaf)
                key = "maxItems" if origin is list else "maxProperties" if origin is dict else "maxLength"
                assert f"{key}: {m.max_length}" in constraints, f.path
            if getattr(m, "pattern", None):
                assert m.pattern in constraints.replace("\\|", "|"), f.path
        origin = typing.get_origin(f.leaf)
        if origin is list:
            assert typ.startswith("[]"), f.path
        elif origin is dict:
            assert typ.startswith("map[string]") or typ == "object (free-form)", f.path
        elif f.leaf in (bool, int, float, str):
            assert typ == {bool: "boolean", int: "integer", float: "number", str: "string"}[f.leaf], f.path


def test_spot_values() -> None:
    """A few rows read by hand from the models."""
    isvc = field_rows(SECTIONS["InferenceService"])
    assert isvc["spec.version"][1:4] == ["int-or-string", "no", '`"latest"`']
    assert isvc["spec.monitoring.drift.threshold"][4] == "> 0"
    assert isvc["spec.rollout.steps[].weight"][4] == ">= 1; <= 100"
    assert '{"pause": "30s", "weight": 20}' in isvc["spec.rollout.steps"][3]
    assert isvc["status.rollback.from"][2] == "yes"
    assert isvc["spec.resources.limits"][1] == "map[string]int-or-string"
    mv = field_rows(SECTIONS["ModelVersion"])
    assert mv["spec.signature.inputs[].shape"][1] == "[]integer"
    assert mv["spec.artifact.format"][3:5] == ['`"onnx"`', "one of `onnx`"]
    tj = field_rows(SECTIONS["TrainingJob"])
    assert "items: one of `accuracy`" in tj["spec.evaluation.metrics"][4]


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_cel_rule_is_listed_with_its_message(kind: str) -> None:
    rules_part = SECTIONS[kind].split("### Validation rules (CEL)", 1)[1]
    expected = model_rules(kind)
    assert expected, kind
    for path, message in expected:
        assert f"- `{path}`: {html.escape(message, quote=False)}" in rules_part, (path, message)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_names_and_columns_match_the_committed_crd(kind: str) -> None:
    plural = {
        "TrainingJob": "trainingjobs",
        "ModelVersion": "modelversions",
        "InferenceService": "inferenceservices",
    }[kind]
    crd = yaml.safe_load((ROOT / "crds" / f"onnxops.dev_{plural}.yaml").read_text())
    section = SECTIONS[kind]
    names = crd["spec"]["names"]
    assert f"| short names | {', '.join(f'`{s}`' for s in names['shortNames'])} |" in section
    assert f"| categories | `{names['categories'][0]}` |" in section
    assert f"| scope | {crd['spec']['scope']} |" in section
    columns = section.split("### Printer columns", 1)[1].split("### ", 1)[0]
    rows = [cells(line) for line in columns.splitlines() if line.startswith("| ") and "---" not in line][1:]
    want = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(r[0], r[1], r[2].strip("`")) for r in rows] == [
        (c["name"], c["type"], c["jsonPath"]) for c in want
    ]


def test_tables_are_well_formed() -> None:
    """Every row of a table has as many cells as its header (pipes in patterns are escaped)."""
    width = 0
    for line in DOC_TEXT.splitlines():
        if not line.startswith("|"):
            width = 0
            continue
        n = len(cells(line))
        if width == 0:
            width = n
        assert n == width, line


# --- minimal manifests -----------------------------------------------------------------------------------


def manifest_of(kind: str) -> dict[str, Any]:
    block = SECTIONS[kind].split("### Minimal manifest", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    loaded: dict[str, Any] = yaml.safe_load(block)
    return loaded


def is_part_of(small: Any, big: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and is_part_of(v, big[k]) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(small) == len(big) and all(map(is_part_of, small, big))
    return bool(small == big)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_minimal_manifest_is_valid_and_taken_from_the_example(kind: str) -> None:
    manifest = manifest_of(kind)
    assert manifest["kind"] == kind
    assert validate_manifest(CRDS, manifest) == []
    example = yaml.safe_load((ROOT / EXAMPLES[kind]).read_text())
    assert is_part_of(manifest, example)
    assert f"[{EXAMPLES[kind]}](../{EXAMPLES[kind]})" in SECTIONS[kind]
    # minimal: dropping any one spec field makes it invalid
    for key in manifest["spec"]:
        smaller = {**manifest, "spec": {k: v for k, v in manifest["spec"].items() if k != key}}
        assert validate_manifest(CRDS, smaller) != [], (kind, key)


# --- freshness and gen-crds ------------------------------------------------------------------------------


def test_committed_doc_is_fresh() -> None:
    assert render_reference(CRDS, ROOT) == DOC_TEXT


def test_check_covers_the_doc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crds, doc = tmp_path / "crds", tmp_path / "crd-reference.md"
    shutil.copytree(ROOT / "crds", crds)
    shutil.copyfile(DOC, doc)
    args = ["--check", "--out-dir", str(crds), "--docs-file", str(doc)]
    assert main(args) == 0
    doc.write_text(DOC_TEXT.replace("| `spec.model` | string | yes |", "| `spec.model` | string | no |", 1))
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "crd-reference.md: stale" in err
    assert "onnxops.dev_" not in err  # the CRDs themselves are fine
    doc.unlink()
    assert main(args) == 1
    assert "crd-reference.md: missing" in capsys.readouterr().err


def test_out_dir_alone_leaves_the_doc_out(tmp_path: Path) -> None:
    """--out-dir keeps its meaning (CRD directories only); --docs-file adds the page."""
    assert main(["--out-dir", str(tmp_path / "a")]) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        p.name for p in (ROOT / "crds").glob("*.yaml")
    )
    target = tmp_path / "docs" / "ref.md"
    assert main(["--out-dir", str(tmp_path / "b"), "--docs-file", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == DOC_TEXT
    assert main(["--check", "--out-dir", str(tmp_path / "b"), "--docs-file", str(target)]) == 0


def test_doc_follows_the_examples(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    for rel in EXAMPLES.values():
        shutil.copyfile(ROOT / rel, tmp_path / rel)
    assert render_reference(CRDS, tmp_path) == DOC_TEXT
    example = tmp_path / EXAMPLES["InferenceService"]
    example.write_text(example.read_text().replace("model: iris", "model: iris2", 1))
    assert "  model: iris2\n" in render_reference(CRDS, tmp_path)
    example.unlink()
    with pytest.raises(ExampleError, match=r"inferenceservice-iris\.yaml"):
        render_reference(CRDS, tmp_path)


def test_missing_example_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnxops import crdgen

    monkeypatch.setattr(crdgen, "_repo_root", lambda: tmp_path)
    assert main(["--out-dir", str(tmp_path / "c"), "--docs-file", str(tmp_path / "ref.md")]) == 2
    assert "example manifest for TrainingJob not found" in capsys.readouterr().err
