"""``python -m onnxops.trainer`` / ``onnxops train``: the trainer image's entrypoint.

Args (docs/architecture.md): ``--spec-json <TrainingJob spec JSON>`` (or ``--spec-file``), ``--model``,
``--run-id``, ``--output-uri``. Writes a JSON summary (< 4 KiB) to ``$ONNXOPS_TERMINATION_LOG``
(default /dev/termination-log) and exits 0 ok, 2 bad spec/input, 3 gate not met, 4 parity failed,
5 storage unreachable/timeout/5xx (retried), 6 data or artifact not found (final), 1 unexpected error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from onnxops.api.v1alpha1.termination import TrainerFailure, TrainerResult, TrainerSuccess

from .errors import EXIT_INTERNAL, EXIT_OK, TrainerError

TERMINATION_LOG_ENV = "ONNXOPS_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
MAX_MESSAGE_BYTES = 4000  # the kubelet keeps at most 4096 bytes
log = logging.getLogger("onnxops.trainer")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="onnxops train",
        description="Train a scikit-learn model to a verified "
        "ONNX bundle (model.onnx, profile.json, metadata.json).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--spec-json", help="TrainingJob spec as JSON")
    src.add_argument("--spec-file", help="file with the spec (JSON or YAML; a whole TrainingJob works too)")
    p.add_argument("--model", help="model name (default: spec.model)")
    p.add_argument("--run-id", help="bundle directory name (default: a UTC timestamp + random suffix)")
    p.add_argument(
        "--output-uri",
        help="base URI; the bundle goes to <base>/<model>/<run-id>/ (default: spec.output.uri)",
    )
    p.add_argument(
        "--termination-log",
        help=f"result file (default: ${TERMINATION_LOG_ENV} or {DEFAULT_TERMINATION_LOG})",
    )
    return p


def compact(result: dict[str, Any], limit: int = MAX_MESSAGE_BYTES) -> str:
    """The result as JSON within ``limit`` bytes: drop the long lists first (they stay in metadata.json)
    and say so under ``truncated``; a failure message is shortened last."""
    res = json.loads(json.dumps(result))
    text = json.dumps(res, separators=(",", ":"))
    for path in (
        ("signature", "featureNames"),
        ("signature", "classLabels"),
        ("fitWarnings",),
        ("search", "bestParams"),
        ("slices",),
        ("fairness", "selectionRates"),
    ):
        if len(text.encode()) <= limit:
            break
        node = res
        for key in path[:-1]:
            node = node.get(key, {})
        if path[-1] in node:
            node.pop(path[-1])
            res.setdefault("truncated", []).append(".".join(path))
            text = json.dumps(res, separators=(",", ":"))
    if len(text.encode()) > limit and isinstance(res.get("message"), str):
        over = len(text.encode()) - limit
        res["message"] = res["message"][: max(0, len(res["message"]) - over - 20)] + "...[truncated]"
        text = json.dumps(res, separators=(",", ":"))
    return text


def write_termination(path: str, result: TrainerResult) -> None:
    """The result (api/v1alpha1/termination.py, the contract the operator reads) into the file."""
    try:
        Path(path).write_text(compact(result.to_dict()))
    except OSError as e:
        log.warning("cannot write the termination message to %s: %s", path, e)


def _load_spec(args: argparse.Namespace) -> Any:
    from onnxops.api.v1alpha1.trainingjob import TrainingJobSpec

    if args.spec_json is not None:
        raw = json.loads(args.spec_json)
    else:
        import yaml

        raw = yaml.safe_load(Path(args.spec_file).read_text())
    if isinstance(raw, dict) and raw.get("kind") == "TrainingJob":
        raw = raw.get("spec")
    return TrainingJobSpec.model_validate(raw)


def _validation_message(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        where = ".".join(str(x) for x in err["loc"])
        parts.append(f"spec.{where}: {err['msg']}" if where else err["msg"])
    return "invalid TrainingJob spec: " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s trainer: %(message)s",
        force=True,
    )
    ns = parser().parse_args(argv)
    term = ns.termination_log or os.environ.get(TERMINATION_LOG_ENV) or DEFAULT_TERMINATION_LOG
    try:
        result = _run(ns)
        write_termination(term, result)
        log.info("done: %s", result.artifact.uri)
        return EXIT_OK
    except TrainerError as e:
        log.error("%s: %s", e.reason, e.message)
        write_termination(
            term, TrainerFailure.model_validate({"reason": e.reason, "message": e.message, **e.extra})
        )
        return e.exit_code
    except Exception as e:  # an unexpected bug: still tell the operator why
        log.exception("unexpected error")
        message = f"{type(e).__name__}: {e}"
        write_termination(term, TrainerFailure(reason="InternalError", message=message))
        return EXIT_INTERNAL


def _run(ns: argparse.Namespace) -> TrainerSuccess:
    from .errors import InvalidSpec
    from .run import RunArgs, train

    try:
        spec = _load_spec(ns)
    except ValidationError as e:
        raise InvalidSpec(_validation_message(e)) from None
    except (ValueError, OSError) as e:
        raise InvalidSpec(f"cannot read the spec: {e}") from None
    output = ns.output_uri or (spec.output.uri if spec.output else None)
    if not output:
        raise InvalidSpec("no output URI: pass --output-uri or set spec.output.uri")
    run_id = ns.run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    model = ns.model or spec.model
    return train(RunArgs(spec=spec, model=model, run_id=run_id, output_uri=output))


if __name__ == "__main__":
    sys.exit(main())
