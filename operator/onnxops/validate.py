"""Validate onnxops objects as the API server admits them: prune, default, OpenAPI schema, CEL rules.

Library (also used by the local API emulator's admission; keep this interface stable):

- ``prune_and_default(schema, obj) -> dict``: structural pruning + defaulting, like the API server.
- ``validate(schema, obj, old=None) -> list[Cause]``: OpenAPI validation plus ``x-kubernetes-validations``;
  transition rules (``oldSelf``) run only when ``old`` is given. Pass the pruned, defaulted object, as the
  API server does (``validate_manifest`` does all steps); ``old`` is pruned and defaulted here. As in the
  API server, CEL rules are skipped (with one root cause saying so) when OpenAPI validation found a type,
  required, enum or size error. Causes are sorted by field.
- ``unknown_fields(schema, obj) -> list[str]``: paths pruning would drop (strict field validation).
- ``validate_manifest(crds, obj, old=None, *, strict=True) -> list[Cause]``: everything for one manifest
  (kind/apiVersion lookup, metadata.name, unknown fields when strict, pruning, defaulting, validation).
- ``load_crds(paths=None) -> dict[kind, crd]``, ``schema_for(crd, version=None) -> dict``.

CLI: ``onnxops validate [-f FILE|DIR ...] [--old FILE] [--crds DIR]`` prints
``<file>: <kind>/<name>: <field>: <message>`` per problem and exits 1 when any object is invalid; a valid
object that will not behave as it reads gets ``<file>: <kind>/<name>: warning: <field>: <message>`` lines
(``spec_warnings``: canary weights the replica count cannot express) and does not change the exit code.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from onnxops.admission import causes as c
from onnxops.admission.causes import Cause
from onnxops.admission.celrules import cel_causes
from onnxops.admission.openapi import validate_schema
from onnxops.admission.prune import prune_and_default, unknown_fields

__all__ = [
    "Cause",
    "load_crds",
    "main",
    "prune_and_default",
    "schema_for",
    "unknown_fields",
    "validate",
    "validate_manifest",
]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# OpenAPI failures after which the API server does not evaluate CEL rules (apiextensions hasBlockingErr).
BLOCKING = frozenset({c.NOT_SUPPORTED, c.REQUIRED, c.TOO_LONG, c.TOO_MANY, c.TYPE_INVALID})
CEL_SKIPPED = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


def validate(
    schema: Mapping[str, Any], obj: Mapping[str, Any], old: Mapping[str, Any] | None = None
) -> list[Cause]:
    """OpenAPI and CEL causes for ``obj`` (root ``metadata`` is the API server's and not checked here)."""
    body = {k: v for k, v in obj.items() if k != "metadata"}
    schema_wo_meta = {
        **schema,
        "properties": {k: v for k, v in schema.get("properties", {}).items() if k != "metadata"},
    }
    found = validate_schema(schema_wo_meta, body)
    if any(x.type in BLOCKING for x in found):
        # As the API server: CEL rules are not run on an object with type/required/enum/size errors.
        found.append(Cause("", c.INVALID, CEL_SKIPPED))
    elif old is None:
        found += cel_causes(schema_wo_meta, body)
    else:  # the API server defaults the old object too (when it reads it from storage)
        old_body = {k: v for k, v in prune_and_default(schema, old).items() if k != "metadata"}
        found += cel_causes(schema_wo_meta, body, old_body)
    return sorted(set(found), key=lambda x: (x.field, x.type, x.message))


def schema_for(crd: Mapping[str, Any], version: str | None = None) -> dict[str, Any]:
    """The openAPIV3Schema of a CRD's version (default: the storage version)."""
    versions = crd["spec"]["versions"]
    for v in versions:
        if (version is None and v.get("storage")) or v["name"] == version:
            return dict(v["schema"]["openAPIV3Schema"])
    raise KeyError(f"{crd['metadata']['name']} has no version {version!r}")


def load_crds(paths: Iterable[str | Path] | None = None) -> dict[str, dict[str, Any]]:
    """kind -> CRD, from YAML files/directories, or (``None``) generated from the API models."""
    if paths is None:
        from onnxops.crdgen import build_crds

        return build_crds()
    crds: dict[str, dict[str, Any]] = {}
    for file in _yaml_files(paths):
        for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crds[doc["spec"]["names"]["kind"]] = doc
    return crds


def validate_manifest(
    crds: Mapping[str, Mapping[str, Any]],
    obj: Mapping[str, Any],
    old: Mapping[str, Any] | None = None,
    *,
    strict: bool = True,
) -> list[Cause]:
    """All causes for one manifest (an update when ``old`` is given)."""
    kind = obj.get("kind")
    crd = crds.get(kind) if isinstance(kind, str) else None
    if crd is None:
        return [
            Cause(
                "kind",
                c.NOT_SUPPORTED,
                f"Unsupported value: {kind!r}: supported values: {', '.join(sorted(crds))}",
            )
        ]
    group = crd["spec"]["group"]
    versions = [v["name"] for v in crd["spec"]["versions"] if v.get("served", True)]
    api_version = obj.get("apiVersion")
    if api_version not in [f"{group}/{v}" for v in versions]:
        return [
            Cause(
                "apiVersion",
                c.NOT_SUPPORTED,
                f"Unsupported value: {api_version!r}: supported values: "
                + ", ".join(f"{group}/{v}" for v in versions),
            )
        ]
    schema = schema_for(crd, str(api_version).split("/", 1)[1])
    found = _metadata_causes(obj.get("metadata"))
    if strict:
        found += [Cause(p, c.UNKNOWN, f'unknown field "{p}"') for p in unknown_fields(schema, obj)]
    return found + validate(schema, prune_and_default(schema, obj), old)


def spec_warnings(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for a valid object that will not behave as it reads (never an error): canary steps
    that the replica count cannot express without an HTTPRoute (the traffic split follows the pods)."""
    from pydantic import ValidationError

    from onnxops.api.v1alpha1.inferenceservice import InferenceServiceSpec
    from onnxops.reconcile.traffic import inexact_steps

    raw = obj.get("spec")
    if obj.get("kind") != "InferenceService" or not isinstance(raw, dict):
        return []
    try:  # parsed as the operator parses it (the manifest passed the schema, so it parses)
        spec = InferenceServiceSpec.model_validate(raw)
    except ValidationError:  # the schema's error is what `validate` reports; no warning on top of it
        return []
    total = spec.autoscaling.min_replicas if spec.autoscaling is not None else spec.replicas
    msg = inexact_steps(spec, total)
    return [("spec.rollout.steps", msg)] if msg else []


def _metadata_causes(meta: Any) -> list[Cause]:
    if not isinstance(meta, dict):
        return [Cause("metadata", c.REQUIRED, "Required value")]
    name = meta.get("name")
    if name is None:
        if meta.get("generateName"):
            return []
        return [Cause("metadata.name", c.REQUIRED, "Required value: name or generateName is required")]
    if not isinstance(name, str) or len(name) > 253 or not _SUBDOMAIN.match(name):
        return [
            Cause(
                "metadata.name",
                c.INVALID,
                f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain "
                "must consist of lower case alphanumeric characters, '-' or '.'",
            )
        ]
    return []


def _yaml_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(x for x in p.rglob("*") if x.suffix in (".yaml", ".yml") and x.is_file())
        else:
            files.append(p)
    return files


def _ident(obj: Mapping[str, Any]) -> str:
    meta: Mapping[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    return f"{obj.get('kind')}/{meta.get('name') or meta.get('generateName') or '<unnamed>'}"


def _load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]


def _ours(doc: Mapping[str, Any], crds: Mapping[str, Mapping[str, Any]]) -> bool:
    groups = {crd["spec"]["group"] for crd in crds.values()}
    return str(doc.get("apiVersion", "")).split("/")[0] in groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="onnxops validate",
        description="Validate onnxops manifests against the CRD schemas and CEL rules (as the API server).",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="YAML files or directories")
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        metavar="PATH",
        help="YAML file or directory (repeatable)",
    )
    parser.add_argument(
        "--old", metavar="FILE", help="validate as an update of the objects (same kind/name) in this file"
    )
    parser.add_argument(
        "--crds",
        action="append",
        metavar="PATH",
        help="CRD files/directories (default: generated from the API models)",
    )
    parser.add_argument(
        "--no-strict", action="store_true", help="prune unknown fields instead of refusing them"
    )
    args = parser.parse_args(argv)
    targets = [*args.filename, *args.paths]
    if not targets:
        parser.error("no manifests given (-f FILE|DIR)")
    crds = load_crds(args.crds)
    olds: dict[str, dict[str, Any]] = {}
    if args.old:
        olds = {_ident(d): d for d in _load_docs(Path(args.old))}
    failed = checked = 0
    for file in _yaml_files(targets):
        try:
            docs = _load_docs(file)
        except (OSError, yaml.YAMLError) as exc:
            print(f"{file}: cannot read: {exc}")
            failed += 1
            continue
        for doc in docs:
            if not _ours(doc, crds):
                continue
            checked += 1
            problems = validate_manifest(crds, doc, olds.get(_ident(doc)), strict=not args.no_strict)
            for cause in problems:
                print(f"{file}: {_ident(doc)}: {cause.field or '<root>'}: {cause.message}")
            if not problems:
                print(f"{file}: {_ident(doc)}: valid")
                for field, message in spec_warnings(doc):
                    print(f"{file}: {_ident(doc)}: warning: {field}: {message}")
            failed += bool(problems)
    print(f"{checked} object(s) checked, {failed} invalid", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
