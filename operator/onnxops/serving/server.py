"""Wiring: state, metrics, handlers, the HTTP and gRPC servers; background model loading; shutdown."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .app import HttpServer, install_signal_handlers
from .capture import Capture
from .config import ServerConfig
from .drift_state import DriftState
from .feedback import Feedback, start_feedback
from .handlers import Handlers
from .loading import backoff, is_final
from .metrics import ServerMetrics
from .model import LoadedModel, LoadError, ModelState, load_model

if TYPE_CHECKING:
    from .grpc_server import GrpcServer

log = logging.getLogger("onnxops.serving")


@dataclass
class Running:
    cfg: ServerConfig
    state: ModelState
    metrics: ServerMetrics
    http: HttpServer
    port: int
    loader: asyncio.Task[None]
    capture: Capture | None = None
    grpc: GrpcServer | None = None
    grpc_port: int = 0
    feedback: Feedback | None = None

    async def stop(self) -> None:
        self.state.draining = True
        self.metrics.ready = False
        if self.cfg.shutdown_delay_seconds > 0:  # not ready, still serving: endpoints drop this pod first
            await asyncio.sleep(self.cfg.shutdown_delay_seconds)
        grace = self.cfg.shutdown_grace_seconds
        if self.grpc is not None:  # both listeners close together, in-flight calls of both finish
            await asyncio.gather(self.http.shutdown(grace), self.grpc.shutdown(grace))
        else:
            await self.http.shutdown(grace)
        self.loader.cancel()
        if self.capture is not None:  # after the last request: everything accepted gets written
            await self.capture.close()
        if self.metrics.drift is not None:
            self.metrics.drift.close()
        if self.feedback is not None:
            await self.feedback.close()
        mirror = getattr(self.http.handlers, "mirror", None)
        if mirror is not None:  # bounded: mirrored requests still open are given up
            await mirror.close()


def start_capture(cfg: ServerConfig, handlers: Handlers, metrics: ServerMetrics) -> Capture | None:
    if cfg.capture is None:
        return None
    from .sink import open_sink

    capture = Capture(cfg.capture, cfg.model_name, cfg.model_version, open_sink(cfg.capture.sink_uri))
    metrics.registry.register(capture)
    handlers.capture = capture
    capture.start()
    log.info(
        "capturing served rows",
        extra={"fields": {"sampleRate": cfg.capture.sample_rate, "flushSeconds": cfg.capture.flush_interval}},
    )
    return capture


def attach_model(state: ModelState, metrics: ServerMetrics, model: LoadedModel, cfg: ServerConfig) -> None:
    if model.profile is not None and cfg.drift_metrics:
        single = model.inputs[0] if len(model.inputs) == 1 and len(model.inputs[0].shape) == 2 else None
        metrics.drift = DriftState(
            model.profile,
            single.name if single else None,
            category_limit=cfg.category_limit,
            window_seconds=cfg.drift_window_seconds,
            # folded inline on the loop: a worker thread cost more CPU per request than it saved
            # (GIL hand-offs; bench/results/serving.md, "Monitoring cost")
            background=False,
        )
    state.set_loaded(model)
    metrics.ready = True


def _try_load(cfg: ServerConfig) -> LoadedModel | tuple[str, str]:
    """The model, or (reason, message) of why it did not load."""
    try:
        return load_model(cfg)
    except LoadError as exc:
        return exc.reason, exc.message
    except Exception as exc:
        log.exception("unexpected error while loading the model")
        return "LoadFailed", f"{type(exc).__name__}: {exc}"


async def _load(cfg: ServerConfig, state: ModelState, metrics: ServerMetrics) -> None:
    """Load until a model is verified and loaded, retrying transient failures (see loading.py)."""
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        attempt += 1
        result = await loop.run_in_executor(None, _try_load, cfg)
        if isinstance(result, LoadedModel):
            attach_model(state, metrics, result, cfg)
            log.info(
                "ready",
                extra={"fields": {"model": cfg.model_name, "version": cfg.model_version, "attempt": attempt}},
            )
            return
        reason, message = result
        if is_final(reason):
            state.set_failed(reason, message, final=True)
            log.error(
                "model not loaded: the server stays not ready (no retry: the verified bytes cannot load)",
                extra={"fields": {"reason": reason, "message": message, "attempt": attempt}},
            )
            return
        delay = backoff(attempt, cfg.load_retry_initial_seconds, cfg.load_retry_max_seconds)
        state.set_failed(reason, f"{message} (attempt {attempt}, retrying in {delay:g}s)", final=False)
        log.warning(
            "model not loaded: retrying",
            extra={"fields": {"reason": reason, "message": message, "attempt": attempt, "retry_in": delay}},
        )
        await asyncio.sleep(delay)


async def start(cfg: ServerConfig) -> Running:
    """Listen first (liveness answers during a long download), then load the model in a thread."""
    state = ModelState(liveness_timeout=cfg.liveness_timeout_seconds)
    metrics = ServerMetrics(cfg.model_name, cfg.model_version, cfg.inference_service)
    handlers = Handlers(cfg.model_name, cfg.model_version, state, metrics, drift=cfg.drift_metrics)
    http = HttpServer(
        handlers,
        max_body_bytes=cfg.max_body_bytes,
        access_log=cfg.access_log,
        on_request=metrics.record_request,
        head_timeout=cfg.head_timeout_seconds,
        idle_timeout=cfg.idle_timeout_seconds,
    )
    grpc_server, grpc_port = None, 0
    if cfg.grpc_port is not None:
        from .grpc_server import GrpcServer  # grpcio is imported only when the gRPC listener is on

        grpc_server = GrpcServer(
            handlers, max_message_bytes=cfg.max_body_bytes, on_request=metrics.record_request
        )
        grpc_port = await grpc_server.start(cfg.host, cfg.grpc_port)
    port = await http.start(cfg.host, cfg.port)
    log.info("listening", extra={"fields": {"host": cfg.host, "port": port, "grpcPort": grpc_port}})
    capture = start_capture(cfg, handlers, metrics)
    feedback = start_feedback(cfg, handlers, metrics)
    if cfg.mirror_url:
        from .mirror import Mirror

        handlers.mirror = Mirror(
            cfg.mirror_url,
            sample_rate=cfg.mirror_sample_rate,
            max_in_flight=cfg.mirror_max_in_flight,
            timeout=cfg.mirror_timeout_seconds,
            model=cfg.model_name,
            version=cfg.model_version,
            inference_service=cfg.inference_service,
        )
        metrics.registry.register(handlers.mirror)
        log.info("mirroring to a shadow", extra={"fields": {"sampleRate": cfg.mirror_sample_rate}})
    loader = asyncio.create_task(_load(cfg, state, metrics))
    return Running(cfg, state, metrics, http, port, loader, capture, grpc_server, grpc_port, feedback)


async def serve(cfg: ServerConfig) -> int:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    running = await start(cfg)
    await stop.wait()
    log.info(
        "shutting down: finishing in-flight requests",
        extra={"fields": {"connections": len(running.http.connections), "grpc": running.grpc is not None}},
    )
    await running.stop()
    log.info("stopped")
    return 0
