"""The Open Inference Protocol's gRPC form (``inference.GRPCInferenceService``) on grpcio's asyncio server.

It runs in the same process and on the same event loop as the HTTP server and shares everything with it:
the model session (``ModelState``), the request metrics (``protocol="grpc"``, ``code`` = the HTTP status
the gRPC status corresponds to, so the SLO's 5xx rate covers gRPC too), the drift counting and the
payload capture (``Handlers._run`` and ``Handlers.capture``). Tensors are decoded and encoded with the
HTTP path's functions (``protocol_v2.from_binary``/``from_values``/``to_binary``/``check_shape``).

Errors use the status codes the protocol names: a malformed request (wrong datatype, shape or size,
unknown or missing tensor) INVALID_ARGUMENT; a model or version this server does not serve NOT_FOUND;
the model not loaded (yet) or the server shutting down UNAVAILABLE. Responses carry
``raw_output_contents`` when the request used ``raw_input_contents`` (what tritonclient sends), typed
``contents`` otherwise (FP16 only raw: the protocol has no typed field for it).

The service is registered with grpc's generic method handlers and the generated message classes
(``proto/``), not a generated ``_pb2_grpc`` servicer: six methods do not need it, and it would pin the
grpcio runtime to the version of the generator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np

from onnxops import __version__
from onnxops.drift import names as N

from . import protocol_v2
from .capture import new_request_id
from .handlers import REQUEST_ID_HEADER, Handlers
from .model import LoadedModel
from .proto import grpc_predict_v2_pb2 as pb
from .protocol_v2 import ProtocolError

log = logging.getLogger("onnxops.serving")
SERVICE = "inference.GRPCInferenceService"
PROTOCOL = N.PROTOCOL_GRPC
# the InferTensorContents field of each datatype (FP16 has none: raw only)
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# gRPC status -> the HTTP status it corresponds to, for the `code` label of onnxops_requests_total
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.INTERNAL: 500,
}
_STATUS_OF_HTTP = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    503: grpc.StatusCode.UNAVAILABLE,
}


class RpcError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _bad(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


class InferenceService:
    """The six unary methods; each is ``async (request, context) -> response``."""

    def __init__(
        self, handlers: Handlers, on_request: Callable[[str, int, float], None] | None = None
    ) -> None:
        self.h = handlers
        self.on_request = on_request

    # -- health and metadata ------------------------------------------------------------------
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=bool(self.h.state.liveness()["live"]))

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.h.state.ready)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="onnxops", version=__version__, extensions=[])

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        try:
            self._known(request.name, request.version)
        except RpcError as exc:
            await context.abort(exc.code, exc.message)
        return pb.ModelReadyResponse(ready=self.h.state.ready)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        try:
            model = self._model(request.name, request.version)
        except RpcError as exc:
            await context.abort(exc.code, exc.message)
        meta = protocol_v2.model_metadata(model)
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
        )

    # -- inference ----------------------------------------------------------------------------
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        t0 = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return self.infer(request, context)
        except RpcError as exc:
            code = exc.code
            await context.abort(exc.code, exc.message)
        except ProtocolError as exc:
            code = _STATUS_OF_HTTP.get(exc.status, grpc.StatusCode.INTERNAL)
            await context.abort(code, exc.message)
        except Exception as exc:  # never let one request hurt the process
            code = grpc.StatusCode.INTERNAL
            log.exception("unexpected error handling a gRPC request")
            await context.abort(code, f"internal error: {type(exc).__name__}")
        finally:
            if self.on_request is not None:
                self.on_request(PROTOCOL, HTTP_STATUS.get(code, 500), time.perf_counter() - t0)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    def infer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        model = self._model(request.model_name, request.model_version)
        feeds = decode_inputs(model, request)
        names = requested_outputs(model, request)  # checked before the model runs and the rows count
        rows = protocol_v2.rows_of(feeds)
        outs = self.h.run(model, feeds, rows)
        capture = self.h.capture
        if capture is not None:
            rid = request.id or _metadata(context, REQUEST_ID_HEADER) or new_request_id()
            capture.record(model, rid, feeds, outs, rows)
        return encode_outputs(model, request, outs, names)

    def _known(self, name: str, version: str) -> None:
        h = self.h
        if name != h.name:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND, f"unknown model {name[:200]!r}; this server serves {h.name!r}"
            )
        if version and version != h.version:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND,
                f"unknown version {version[:100]!r} of model {name!r}; this server serves version "
                f"{h.version!r}",
            )

    def _model(self, name: str, version: str) -> LoadedModel:
        self._known(name, version)
        model = self.h.state.model
        if model is None:  # while draining, requests in flight are still served
            health = self.h.state.health()
            raise RpcError(
                grpc.StatusCode.UNAVAILABLE,
                f"model {name!r} is not ready: {health['reason']}: {health['message']}",
            )
        return model


def _metadata(context: Any, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return str(v)
    return None


def decode_inputs(model: LoadedModel, request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    """Validated feeds from the request's typed ``contents`` or its ``raw_input_contents``."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise _bad(
            f"raw_input_contents has {len(raw)} entries but the request has {len(request.inputs)} inputs"
        )
    if not request.inputs:
        raise _bad("'inputs' must name at least one tensor")
    feeds: dict[str, np.ndarray] = {}
    for i, spec in enumerate(request.inputs):
        name = spec.name
        info = model.input_by_name.get(name)
        if info is None:
            raise _bad(
                f"unknown input tensor {name!r}; model {model.name!r} takes "
                + ", ".join(repr(t.name) for t in model.inputs)
            )
        if name in feeds:
            raise _bad(f"input {name!r} is given twice")
        if spec.datatype != info.datatype:
            raise _bad(
                f"input {name!r}: datatype {spec.datatype!r} does not match the model's {info.datatype!r}"
            )
        shape = tuple(spec.shape)
        if shape and min(shape) < 0:
            raise _bad(f"input {name!r}: shape {list(shape)} has a negative dimension")
        protocol_v2.check_shape(info, shape)
        if raw:
            if spec.HasField("contents"):
                raise _bad(f"input {name!r}: both contents and raw_input_contents given")
            feeds[name] = protocol_v2.from_binary(info, raw[i], shape)
        else:
            field = CONTENTS_FIELD.get(info.datatype)
            if field is None:
                raise _bad(f"input {name!r}: {info.datatype} data must be sent in raw_input_contents")
            feeds[name] = protocol_v2.from_values(info, getattr(spec.contents, field), shape)
    if len(feeds) != len(model.inputs):  # every name given is the model's and given once: none missing
        for t in model.inputs:
            if t.name not in feeds:
                raise _bad(f"missing input tensor {t.name!r}")
    return feeds


def requested_outputs(model: LoadedModel, request: pb.ModelInferRequest) -> list[str]:
    """The outputs to return, in order (all of the model's when the request names none)."""
    if not request.outputs:
        return model.output_names
    names = [o.name for o in request.outputs]
    for n in names:
        if n not in model.output_by_name:
            raise _bad(
                f"unknown output tensor {n!r}; model {model.name!r} returns "
                + ", ".join(repr(o) for o in model.output_names)
            )
    return names


def encode_outputs(
    model: LoadedModel, request: pb.ModelInferRequest, outs: list[np.ndarray], names: list[str]
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=request.id)
    by_name = dict(zip(model.output_names, outs, strict=True))
    infos = model.output_by_name
    # raw when the request was raw (tritonclient), and always when an output has no typed field (FP16):
    # raw outputs are matched to outputs by position, so it is all outputs raw or none
    if request.raw_input_contents or any(infos[n].datatype not in CONTENTS_FIELD for n in names):
        raws = response.raw_output_contents
        for n in names:
            arr, datatype = by_name[n], infos[n].datatype
            response.outputs.add(name=n, datatype=datatype, shape=arr.shape)
            raws.append(protocol_v2.to_binary(arr, datatype))
        return response
    for n in names:
        arr, datatype = by_name[n], infos[n].datatype
        tensor = response.outputs.add(name=n, datatype=datatype, shape=arr.shape)
        values = getattr(tensor.contents, CONTENTS_FIELD[datatype])
        if datatype == "BYTES":
            values.extend(v if isinstance(v, bytes) else str(v).encode() for v in arr.ravel().tolist())
        else:
            values.extend(arr.ravel().tolist())
    return response


Method = Callable[[Any, Any], Awaitable[Any]]


def method_handlers(service: InferenceService) -> grpc.GenericRpcHandler:
    def unary(fn: Method, req: Any, resp: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString
        )

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "ServerLive": unary(service.ServerLive, pb.ServerLiveRequest, pb.ServerLiveResponse),
            "ServerReady": unary(service.ServerReady, pb.ServerReadyRequest, pb.ServerReadyResponse),
            "ModelReady": unary(service.ModelReady, pb.ModelReadyRequest, pb.ModelReadyResponse),
            "ServerMetadata": unary(
                service.ServerMetadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse
            ),
            "ModelMetadata": unary(service.ModelMetadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse),
            "ModelInfer": unary(service.ModelInfer, pb.ModelInferRequest, pb.ModelInferResponse),
        },
    )


class GrpcServer:
    """grpc.aio server with the inference service; ``shutdown`` lets in-flight calls finish."""

    def __init__(
        self,
        handlers: Handlers,
        *,
        max_message_bytes: int,
        on_request: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self.service = InferenceService(handlers, on_request)
        self.max_message_bytes = max_message_bytes
        self._server: grpc.aio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.max_send_message_length", -1),
                ("grpc.so_reuseport", 0),  # a second server on the same port is an error, not a share
            ]
        )
        self._server.add_generic_rpc_handlers((method_handlers(self.service),))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        bound = self._server.add_insecure_port(address)
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {address}")
        await self._server.start()
        return int(bound)

    async def shutdown(self, grace_seconds: float) -> None:
        """Refuse new calls, give the ones in flight ``grace_seconds``, then cancel what is left."""
        if self._server is not None:
            await self._server.stop(grace_seconds)
