"""Server configuration from command-line arguments and ``ONNXOPS_*`` environment variables.

Arguments win over the environment, the environment wins over the defaults. The names follow the
server contract in ``docs/architecture.md``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import capture_config
from .capture_config import CaptureConfig, CaptureConfigError

DEFAULT_PORT = 8080
DEFAULT_GRPC_PORT = 8081
DEFAULT_MAX_BODY = 64 * 1024 * 1024

# dest -> environment variable
ENV: dict[str, str] = {
    "model_name": "ONNXOPS_MODEL_NAME",
    "model_version": "ONNXOPS_MODEL_VERSION",
    "inference_service": "ONNXOPS_INFERENCE_SERVICE",
    "model_uri": "ONNXOPS_MODEL_URI",
    "sha256": "ONNXOPS_MODEL_SHA256",
    "profile_uri": "ONNXOPS_PROFILE_URI",
    "profile_sha256": "ONNXOPS_PROFILE_SHA256",
    "host": "ONNXOPS_HOST",
    "port": "ONNXOPS_PORT",
    "grpc_port": "ONNXOPS_GRPC_PORT",
    "max_body_bytes": "ONNXOPS_MAX_BODY_BYTES",
    "intra_op_threads": "ONNXOPS_INTRA_OP_THREADS",
    "inter_op_threads": "ONNXOPS_INTER_OP_THREADS",
    "drift_metrics": "ONNXOPS_DRIFT_METRICS",
    "drift_window_seconds": "ONNXOPS_DRIFT_WINDOW_SECONDS",
    "category_limit": "ONNXOPS_CATEGORY_LIMIT",
    "access_log": "ONNXOPS_ACCESS_LOG",
    "log_level": "ONNXOPS_LOG_LEVEL",
    "shutdown_grace_seconds": "ONNXOPS_SHUTDOWN_GRACE_SECONDS",
    "head_timeout_seconds": "ONNXOPS_HEAD_TIMEOUT_SECONDS",
    "idle_timeout_seconds": "ONNXOPS_IDLE_TIMEOUT_SECONDS",
    "load_retry_initial_seconds": "ONNXOPS_LOAD_RETRY_INITIAL_SECONDS",
    "load_retry_max_seconds": "ONNXOPS_LOAD_RETRY_MAX_SECONDS",
    "liveness_timeout_seconds": "ONNXOPS_LIVENESS_TIMEOUT_SECONDS",
    "shutdown_delay_seconds": "ONNXOPS_SHUTDOWN_DELAY_SECONDS",
    "expect_signature_json": "ONNXOPS_EXPECT_SIGNATURE_JSON",
    "mirror_url": "ONNXOPS_MIRROR_URL",
    "mirror_sample_rate": "ONNXOPS_MIRROR_SAMPLE_RATE",
    "mirror_max_in_flight": "ONNXOPS_MIRROR_MAX_IN_FLIGHT",
    "mirror_timeout_seconds": "ONNXOPS_MIRROR_TIMEOUT_SECONDS",
}

DESCRIPTION = """\
Serve one ONNX model version over the Open Inference Protocol v2 (JSON and the binary tensor extension)
and the KServe v1 protocol, with Prometheus metrics for drift detection.

The artifact is downloaded (file://, pvc://, s3://, https://), its sha256 is verified before anything
else, an ONNX Runtime session is created and the baseline profile is read; only then does
/v2/health/ready answer 200. Until then the server is not ready, with the reason in the log and in the
body of /v2/health/ready. An artifact that cannot be read or whose sha256 does not match is tried again
with a capped exponential backoff; if no model has loaded --liveness-timeout-seconds after start,
/v2/health/live answers 503 so that the kubelet restarts the container. Verified bytes that ONNX Runtime
refuses are not retried (the server stays live and not ready).

Endpoints (HTTP, --port):
  GET  /v2/health/live, /v2/health/ready, /v2, /v2/models/<name>[/versions/<v>][/ready]
  POST /v2/models/<name>[/versions/<v>]/infer
  GET  /v1/models/<name>             POST /v1/models/<name>:predict
  GET  /metrics
gRPC (--grpc-port): inference.GRPCInferenceService of the Open Inference Protocol (ServerLive,
ServerReady, ModelReady, ServerMetadata, ModelMetadata, ModelInfer with raw_input_contents).
"""

EPILOG = """\
Every option can also be set with the environment variable shown in brackets; an argument wins.

examples:
  python -m onnxops.serving --model-name iris --model-version 1 \\
      --model-uri file:///models/iris/model.onnx --sha256 <hex> --port 8080
  python -m onnxops.serving --verify-only --model-uri s3://bucket/iris/model.onnx --sha256 <hex> \\
      --expect-signature-json '{"inputs": [...], "outputs": [...]}'
"""


class ConfigError(ValueError):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class ServerConfig:
    model_name: str
    model_version: str
    model_uri: str
    sha256: str
    profile_uri: str | None = None
    profile_sha256: str | None = None
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    # None: no gRPC listener; 0: an ephemeral port (in-process use). The command line's default is
    # DEFAULT_GRPC_PORT and its 0 means off (None).
    grpc_port: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    drift_metrics: bool = True
    drift_window_seconds: float = 300.0
    category_limit: int = 50
    access_log: bool = False
    log_level: str = "INFO"
    shutdown_grace_seconds: float = 20.0
    head_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 120.0
    load_retry_initial_seconds: float = 1.0
    load_retry_max_seconds: float = 60.0
    liveness_timeout_seconds: float = 300.0
    shutdown_delay_seconds: float = 0.0
    verify_only: bool = False
    expect_signature_json: str | None = None
    inference_service: str = ""
    capture: CaptureConfig | None = None  # payload capture (InferenceService spec.logging); None = off
    mirror_url: str | None = None  # shadow traffic: the shadow's http://host:port (serving/mirror.py)
    mirror_sample_rate: float = 1.0
    mirror_max_in_flight: int = 32
    mirror_timeout_seconds: float = 2.0


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {value!r} (use true/false)")


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {value!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m onnxops.serving",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m = p.add_argument_group("model")
    m.add_argument("--model-name", help="name the model is served under [ONNXOPS_MODEL_NAME]")
    m.add_argument("--model-version", help="version served, e.g. 3 [ONNXOPS_MODEL_VERSION] (default: 1)")
    m.add_argument(
        "--model-uri", help="URI of model.onnx: file://, pvc://, s3://, https:// [ONNXOPS_MODEL_URI]"
    )
    m.add_argument(
        "--inference-service",
        help="the InferenceService this server belongs to: the `inferenceservice` label of every metric "
        "[ONNXOPS_INFERENCE_SERVICE] (the operator sets it; default: empty)",
    )
    m.add_argument("--sha256", help="expected sha256 of model.onnx (required) [ONNXOPS_MODEL_SHA256]")
    m.add_argument(
        "--profile-uri",
        help="URI of the baseline profile.json (optional; drift metrics need it) [ONNXOPS_PROFILE_URI]",
    )
    m.add_argument("--profile-sha256", help="expected sha256 of profile.json [ONNXOPS_PROFILE_SHA256]")
    m.add_argument(
        "--intra-op-threads",
        type=_positive_int,
        help="ONNX Runtime intra-op threads, 0 = one per core [ONNXOPS_INTRA_OP_THREADS] (default: 1)",
    )
    m.add_argument(
        "--inter-op-threads",
        type=_positive_int,
        help="ONNX Runtime inter-op threads [ONNXOPS_INTER_OP_THREADS] (default: 1)",
    )
    s = p.add_argument_group("server")
    s.add_argument("--host", help="bind address [ONNXOPS_HOST] (default: 0.0.0.0)")
    s.add_argument("--port", type=_positive_int, help=f"port [ONNXOPS_PORT] (default: {DEFAULT_PORT})")
    s.add_argument(
        "--grpc-port",
        type=_positive_int,
        help=f"port of the Open Inference Protocol's gRPC service, 0 = off [ONNXOPS_GRPC_PORT] "
        f"(default: {DEFAULT_GRPC_PORT})",
    )
    s.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        help=f"largest request body accepted; larger ones get 400 [ONNXOPS_MAX_BODY_BYTES] "
        f"(default: {DEFAULT_MAX_BODY})",
    )
    s.add_argument(
        "--shutdown-grace-seconds",
        type=float,
        help="on SIGTERM, how long to wait for in-flight requests [ONNXOPS_SHUTDOWN_GRACE_SECONDS] "
        "(default: 20)",
    )
    s.add_argument(
        "--head-timeout-seconds",
        type=float,
        help="close a connection whose request head (request line + headers) is not complete this long "
        "after its first byte [ONNXOPS_HEAD_TIMEOUT_SECONDS] (default: 10)",
    )
    s.add_argument(
        "--idle-timeout-seconds",
        type=float,
        help="close a connection (idle keep-alive, or a body that stopped) after this long without a byte "
        "[ONNXOPS_IDLE_TIMEOUT_SECONDS] (default: 120)",
    )
    s.add_argument(
        "--load-retry-initial-seconds",
        type=float,
        help="first wait before loading again after an artifact could not be read or did not match its "
        "sha256; doubles each time [ONNXOPS_LOAD_RETRY_INITIAL_SECONDS] (default: 1)",
    )
    s.add_argument(
        "--load-retry-max-seconds",
        type=float,
        help="cap of that wait [ONNXOPS_LOAD_RETRY_MAX_SECONDS] (default: 60)",
    )
    s.add_argument(
        "--liveness-timeout-seconds",
        type=float,
        help="if no model has loaded this long after start while loading is retried, /v2/health/live "
        "answers 503 so that the kubelet restarts the container; 0 = never "
        "[ONNXOPS_LIVENESS_TIMEOUT_SECONDS] (default: 300)",
    )
    s.add_argument(
        "--shutdown-delay-seconds",
        type=float,
        help="on SIGTERM, keep serving this long while /v2/health/ready says ShuttingDown, so Services and "
        "load balancers stop sending requests before the listener closes [ONNXOPS_SHUTDOWN_DELAY_SECONDS] "
        "(default: 0)",
    )
    s.add_argument(
        "--access-log",
        type=_bool,
        metavar="BOOL",
        help="log every request (off by default: it costs throughput) [ONNXOPS_ACCESS_LOG]",
    )
    s.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR [ONNXOPS_LOG_LEVEL] (default: INFO)")
    d = p.add_argument_group("monitoring")
    d.add_argument(
        "--drift-metrics",
        type=_bool,
        metavar="BOOL",
        help="update per-feature drift histograms and counters [ONNXOPS_DRIFT_METRICS] (default: true)",
    )
    d.add_argument(
        "--drift-window-seconds",
        type=float,
        help="sliding window of the in-process PSI gauges [ONNXOPS_DRIFT_WINDOW_SECONDS] (default: 300)",
    )
    d.add_argument(
        "--category-limit",
        type=_positive_int,
        help="distinct unseen categories counted per feature before '__other__' "
        "[ONNXOPS_CATEGORY_LIMIT] (default: 50)",
    )
    capture_config.add_arguments(p)
    m = p.add_argument_group("shadow traffic (serving/mirror.py)")
    m.add_argument(
        "--mirror-url",
        help="mirror a sample of answered requests to this shadow server "
        "(http://host:port) and compare its predictions [ONNXOPS_MIRROR_URL] (default: off)",
    )
    m.add_argument(
        "--mirror-sample-rate",
        type=float,
        help="share of requests mirrored, 0..1 [ONNXOPS_MIRROR_SAMPLE_RATE] (default: 1)",
    )
    m.add_argument(
        "--mirror-max-in-flight",
        type=_positive_int,
        help="open mirrored requests at most; more are dropped from the sample "
        "[ONNXOPS_MIRROR_MAX_IN_FLIGHT] (default: 32)",
    )
    m.add_argument(
        "--mirror-timeout-seconds",
        type=float,
        help="timeout of one mirrored request [ONNXOPS_MIRROR_TIMEOUT_SECONDS] (default: 2)",
    )
    v = p.add_argument_group("verification (ModelVersion verification Job)")
    v.add_argument(
        "--verify-only",
        action="store_true",
        help="download, check sha256, load, check the signature, run one smoke inference, write a "
        "JSON result to $ONNXOPS_TERMINATION_LOG (default /dev/termination-log), exit 0 or 1",
    )
    v.add_argument(
        "--expect-signature-json",
        help="ModelVersion signature (JSON) the model must match [ONNXOPS_EXPECT_SIGNATURE_JSON]",
    )
    return p


def parse_config(argv: Sequence[str], env: Mapping[str, str] | None = None) -> ServerConfig:
    """Merge arguments, environment and defaults; raise ConfigError naming the bad setting."""
    e = os.environ if env is None else env
    ns = build_parser().parse_args(list(argv))
    raw: dict[str, object] = {}
    for dest, var in ENV.items():
        value = getattr(ns, dest, None)
        if value is None and e.get(var) not in (None, ""):
            value = e[var]
        if value is not None:
            raw[dest] = value
    try:
        cfg = ServerConfig(
            model_name=str(raw.get("model_name", "")),
            model_version=str(raw.get("model_version", "1")),
            model_uri=str(raw.get("model_uri", "")),
            sha256=str(raw.get("sha256", "")).lower(),
            profile_uri=_opt(raw.get("profile_uri")),
            profile_sha256=_opt(raw.get("profile_sha256")),
            host=str(raw.get("host", "0.0.0.0")),
            port=_int(raw.get("port", DEFAULT_PORT), "port"),
            grpc_port=_int(raw.get("grpc_port", DEFAULT_GRPC_PORT), "grpc-port") or None,
            max_body_bytes=_int(raw.get("max_body_bytes", DEFAULT_MAX_BODY), "max-body-bytes"),
            intra_op_threads=_int(raw.get("intra_op_threads", 1), "intra-op-threads"),
            inter_op_threads=_int(raw.get("inter_op_threads", 1), "inter-op-threads"),
            drift_metrics=_as_bool(raw.get("drift_metrics", True), "drift-metrics"),
            drift_window_seconds=float(raw.get("drift_window_seconds", 300.0)),  # type: ignore[arg-type]
            category_limit=_int(raw.get("category_limit", 50), "category-limit"),
            access_log=_as_bool(raw.get("access_log", False), "access-log"),
            log_level=str(raw.get("log_level", "INFO")).upper(),
            shutdown_grace_seconds=float(raw.get("shutdown_grace_seconds", 20.0)),  # type: ignore[arg-type]
            head_timeout_seconds=_float(raw.get("head_timeout_seconds", 10.0), "head-timeout-seconds"),
            idle_timeout_seconds=_float(raw.get("idle_timeout_seconds", 120.0), "idle-timeout-seconds"),
            load_retry_initial_seconds=_float(
                raw.get("load_retry_initial_seconds", 1.0), "load-retry-initial-seconds"
            ),
            load_retry_max_seconds=_float(raw.get("load_retry_max_seconds", 60.0), "load-retry-max-seconds"),
            liveness_timeout_seconds=_float(
                raw.get("liveness_timeout_seconds", 300.0), "liveness-timeout-seconds"
            ),
            shutdown_delay_seconds=float(raw.get("shutdown_delay_seconds", 0.0)),  # type: ignore[arg-type]
            verify_only=bool(ns.verify_only),
            expect_signature_json=_opt(raw.get("expect_signature_json")),
            inference_service=str(raw.get("inference_service", "")),
            capture=None if ns.verify_only else capture_config.from_namespace(ns, e),
            mirror_url=_opt(raw.get("mirror_url")),
            mirror_sample_rate=_float(raw.get("mirror_sample_rate", 1.0), "mirror-sample-rate"),
            mirror_max_in_flight=_int(raw.get("mirror_max_in_flight", 32), "mirror-max-in-flight"),
            mirror_timeout_seconds=_float(raw.get("mirror_timeout_seconds", 2.0), "mirror-timeout-seconds"),
        )
    except CaptureConfigError as exc:
        raise ConfigError(str(exc)) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return validate(cfg)


def _opt(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def _int(value: object, name: str) -> int:
    try:
        n: int = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigError(f"--{name}: not an integer: {value!r}") from None
    if n < 0:
        raise ConfigError(f"--{name}: must be >= 0, got {n}")
    return int(n)


def _float(value: object, name: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"--{name}: not a number: {value!r}") from None
    if not x >= 0 or x == float("inf"):
        raise ConfigError(f"--{name}: must be a finite number >= 0, got {value!r}")
    return x


def _as_bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    try:
        return _bool(str(value))
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"--{name}: {exc}") from None


def validate(cfg: ServerConfig) -> ServerConfig:
    """Checks that need no I/O; the messages name the setting."""
    if not cfg.model_uri:
        raise ConfigError("--model-uri (ONNXOPS_MODEL_URI) is required")
    if not cfg.sha256:
        raise ConfigError("--sha256 (ONNXOPS_MODEL_SHA256) is required: the artifact is verified before use")
    if not _is_sha256(cfg.sha256):
        raise ConfigError(f"--sha256: not a sha256 hex digest: {cfg.sha256!r}")
    if cfg.profile_sha256 is not None and not _is_sha256(cfg.profile_sha256.lower()):
        raise ConfigError(f"--profile-sha256: not a sha256 hex digest: {cfg.profile_sha256!r}")
    if cfg.profile_uri and not cfg.profile_sha256:
        raise ConfigError("--profile-sha256 (ONNXOPS_PROFILE_SHA256) is required with --profile-uri")
    if not cfg.verify_only and not cfg.model_name:
        raise ConfigError("--model-name (ONNXOPS_MODEL_NAME) is required")
    if cfg.port > 65535:
        raise ConfigError(f"--port: must be <= 65535, got {cfg.port}")
    if cfg.grpc_port is not None and cfg.grpc_port > 65535:
        raise ConfigError(f"--grpc-port: must be <= 65535, got {cfg.grpc_port}")
    if cfg.grpc_port and cfg.grpc_port == cfg.port:
        raise ConfigError(f"--grpc-port: must differ from --port, both are {cfg.port}")
    for name, value in (
        ("head-timeout-seconds", cfg.head_timeout_seconds),
        ("idle-timeout-seconds", cfg.idle_timeout_seconds),
        ("load-retry-initial-seconds", cfg.load_retry_initial_seconds),
        ("load-retry-max-seconds", cfg.load_retry_max_seconds),
    ):
        if value <= 0:
            raise ConfigError(f"--{name}: must be > 0, got {value}")
    if cfg.drift_window_seconds <= 0:
        raise ConfigError("--drift-window-seconds: must be > 0")
    if cfg.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"--log-level: one of DEBUG, INFO, WARNING, ERROR, got {cfg.log_level!r}")
    return cfg


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)
