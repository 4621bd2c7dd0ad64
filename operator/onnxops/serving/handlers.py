"""Request routing and handling, independent of the HTTP transport.

``Handlers.handle`` takes a parsed request and returns a ``Response``; it never raises: protocol
problems become 400s naming the problem, a model that is not ready 503 with the reason, anything
unexpected a 500 that is logged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import numpy as np
import orjson

from onnxops import __version__

from . import protocol_v1, protocol_v2
from .capture import Capture, new_request_id
from .feedback import Feedback
from .metrics import CONTENT_TYPE, ServerMetrics
from .mirror import Mirror, is_mirrored
from .model import LoadedModel, ModelState
from .protocol_v2 import ProtocolError

log = logging.getLogger("onnxops.serving")
JSON = "application/json"
REQUEST_ID_HEADER = "x-request-id"
OCTET = "application/octet-stream"


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, doc: Any) -> Response:
    return Response(status, orjson.dumps(doc))


def error(status: int, message: str) -> Response:
    return Response(status, orjson.dumps({"error": message}))


def _protocol(path: str) -> str:
    """The ``protocol`` label of an inference endpoint, "other" for everything else."""
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return "v2"
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        return "v1"
    return "other"


class Handlers:
    def __init__(
        self, name: str, version: str, state: ModelState, metrics: ServerMetrics, *, drift: bool = True
    ) -> None:
        self.name, self.version = name, version
        self.state, self.metrics, self.drift = state, metrics, drift
        self.capture: Capture | None = None  # payload capture (spec.logging), set by the server
        self.feedback: Feedback | None = None  # ground truth in (serving/feedback.py), set by the server
        self.mirror: Mirror | None = None  # shadow traffic (serving/mirror.py), set by the server

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[str, Response]:
        """(protocol label, response) for one request."""
        path = path.split("?", 1)[0]
        protocol = _protocol(path)
        try:
            return protocol, self._route(method, path, headers, body)
        except ProtocolError as exc:
            return protocol, error(exc.status, exc.message)
        except Exception as exc:  # never let one request hurt the process
            log.exception("unexpected error handling a request", extra={"fields": {"path": path[:200]}})
            return protocol, error(500, f"internal error: {type(exc).__name__}")

    def _route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        if path == "/metrics":
            return self._only(method, "GET") or Response(200, self.metrics.exposition(), CONTENT_TYPE)
        if path == "/v2/health/live":
            live = self.state.liveness()
            return self._only(method, "GET") or json_response(200 if live["live"] else 503, live)
        if path == "/v2/health/ready":
            health = self.state.health()
            return self._only(method, "GET") or json_response(200 if health["ready"] else 503, health)
        if path == "/v2":
            return self._only(method, "GET") or json_response(
                200, {"name": "onnxops", "version": __version__, "extensions": ["binary_tensor_data"]}
            )
        if path.startswith("/v2/models/"):
            return self._v2_model(method, path[len("/v2/models/") :].split("/"), headers, body)
        if path.startswith("/v1/models/"):
            return self._v1(method, unquote(path[len("/v1/models/") :]), headers, body)
        return error(404, f"no such endpoint: {path[:200]}")

    @staticmethod
    def _only(method: str, allowed: str) -> Response | None:
        return None if method == allowed else error(405, f"method {method} not allowed here; use {allowed}")

    def _check_model(self, name: str, version: str | None) -> LoadedModel | Response:
        if name != self.name:
            return error(400, f"unknown model {name[:200]!r}; this server serves {self.name!r}")
        if version is not None and version != self.version:
            return error(
                400,
                f"unknown version {version[:100]!r} of model {name!r}; "
                f"this server serves version {self.version!r}",
            )
        model = self.state.model
        if model is None:  # while draining, requests in flight are still served
            h = self.state.health()
            return error(503, f"model {name!r} is not ready: {h['reason']}: {h['message']}")
        return model

    def _v2_model(self, method: str, parts: list[str], headers: dict[str, str], body: bytes) -> Response:
        parts = [unquote(p) for p in parts]
        name, rest = parts[0], parts[1:]
        version = None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        action = rest[0] if len(rest) == 1 else ("" if not rest else None)
        if action == "feedback":
            return self._feedback(method, name, version, body)
        if action not in ("", "ready", "infer"):
            return error(404, "no such endpoint: /v2/models/" + "/".join(parts)[:200])
        if action == "infer":
            if method != "POST":
                return error(405, f"method {method} not allowed here; use POST")
            checked = self._check_model(name, version)
            return checked if isinstance(checked, Response) else self._v2_infer(checked, headers, body)
        wrong = self._only(method, "GET")
        if wrong:
            return wrong
        checked = self._check_model(name, version)
        if action == "ready":
            if isinstance(checked, Response) and checked.status == 400:
                return checked
            ready = not isinstance(checked, Response) and self.state.ready
            return json_response(200 if ready else 503, {"name": name, "ready": ready})
        return (
            checked
            if isinstance(checked, Response)
            else json_response(200, protocol_v2.model_metadata(checked))
        )

    def run(self, model: LoadedModel, feeds: dict[str, np.ndarray], rows: int) -> list[np.ndarray]:
        t0 = time.perf_counter()
        try:
            outs = model.run(feeds)
        except Exception as exc:  # onnxruntime rejects values it cannot handle
            raise ProtocolError(400, f"inference failed: {str(exc)[:500]}") from None
        self.metrics.record_inference(time.perf_counter() - t0, rows)
        d = self.metrics.drift
        if self.drift and d is not None:
            pred = outs[0] if outs and outs[0].size == rows else None
            d.add(feeds, pred, rows)
        return outs

    def _v2_infer(self, model: LoadedModel, headers: dict[str, str], body: bytes) -> Response:
        raw_len = headers.get(protocol_v2.HEADER_LENGTH)
        header_length = None
        if raw_len is not None:
            try:
                header_length = int(raw_len)
            except ValueError:
                return error(400, f"Inference-Header-Content-Length is not an integer: {raw_len[:50]!r}")
        req = protocol_v2.decode_request(model, body, header_length)
        if req.request_id is None:  # the OIP id when given, else the X-Request-Id header, else a new one
            req.request_id = headers.get(REQUEST_ID_HEADER) or new_request_id()
        outs = self.run(model, req.feeds, req.rows)
        mirrored = is_mirrored(headers)
        if self.capture is not None and not mirrored:
            self.capture.record(model, str(req.request_id), req.feeds, outs, req.rows)
        if self.feedback is not None and not mirrored:
            self.feedback.recent.record(str(req.request_id), outs, req.rows)
        if self.mirror is not None:  # after the answer is computed; never waits, never raises
            self.mirror.record(
                f"/v2/models/{model.name}/infer",
                headers,
                body,
                outs[0] if outs else None,
                model.output_names[0] if model.output_names else None,
                model.task == "classification",
            )
        payload, json_len = protocol_v2.encode_response(model, req, outs)
        if json_len is None:
            return Response(200, payload)
        return Response(200, payload, OCTET, [("Inference-Header-Content-Length", str(json_len))])

    def _feedback(self, method: str, name: str, version: str | None, body: bytes) -> Response:
        """A feedback request (docs/feedback.md)."""
        if method != "POST":
            return error(405, f"method {method} not allowed here; use POST")
        checked = self._check_model(name, version)
        if isinstance(checked, Response):
            return checked
        if self.feedback is None:
            return error(404, "feedback is not enabled on this server")
        status, doc = self.feedback.handle(checked, body)
        return json_response(status, doc)

    def _v1(self, method: str, rest: str, headers: dict[str, str], body: bytes) -> Response:
        if rest.endswith(":predict"):
            if method != "POST":
                return error(405, f"method {method} not allowed here; use POST")
            checked = self._check_model(rest[: -len(":predict")], None)
            if isinstance(checked, Response):
                return checked
            feeds, rows, rid = protocol_v1.decode_request_with_id(checked, body)
            rid = rid or headers.get(REQUEST_ID_HEADER) or new_request_id()
            outs = self.run(checked, feeds, rows)
            mirrored = is_mirrored(headers)
            if self.capture is not None and not mirrored:
                self.capture.record(checked, rid, feeds, outs, rows)
            if self.feedback is not None and not mirrored:
                self.feedback.recent.record(rid, outs, rows)
            if self.mirror is not None:
                self.mirror.record(
                    f"/v1/models/{checked.name}:predict",
                    headers,
                    body,
                    outs[0] if outs else None,
                    None,
                    checked.task == "classification",
                )
            return Response(
                200, protocol_v1.encode_response(checked, outs, rid), JSON, [("X-Request-Id", rid)]
            )
        if rest.endswith(":feedback"):
            return self._feedback(method, rest[: -len(":feedback")], None, body)
        if "/" in rest or ":" in rest:
            return error(404, f"no such endpoint: /v1/models/{rest[:200]}")
        wrong = self._only(method, "GET")
        if wrong:
            return wrong
        checked = self._check_model(rest, None)
        if isinstance(checked, Response) and checked.status == 400:
            return checked
        return json_response(
            200, {"name": rest, "ready": not isinstance(checked, Response) and self.state.ready}
        )
