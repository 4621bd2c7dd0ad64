"""Server configuration: arguments over environment over defaults, and clear errors."""

from __future__ import annotations

import pytest

from onnxops.serving.__main__ import main
from onnxops.serving.config import ConfigError, parse_config

SHA = "ab" * 32
BASE = {
    "ONNXOPS_MODEL_NAME": "iris",
    "ONNXOPS_MODEL_URI": "file:///m/model.onnx",
    "ONNXOPS_MODEL_SHA256": SHA,
}


def test_environment_and_defaults() -> None:
    cfg = parse_config([], BASE)
    assert (cfg.model_name, cfg.model_version, cfg.sha256) == ("iris", "1", SHA)
    assert (cfg.host, cfg.port) == ("0.0.0.0", 8080)
    assert cfg.drift_metrics and not cfg.access_log and cfg.intra_op_threads == 1
    assert cfg.inference_service == ""
    assert parse_config([], {**BASE, "ONNXOPS_INFERENCE_SERVICE": "iris-a"}).inference_service == "iris-a"
    assert parse_config(["--inference-service", "b"], BASE).inference_service == "b"


def test_metrics_carry_the_inference_service() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from onnxops.serving.metrics import ServerMetrics

    m = ServerMetrics("iris", "2", "iris-a")
    m.record_request("v2", 200, 0.001)
    m.record_inference(0.001, 3)
    samples = [s for f in text_string_to_metric_families(m.exposition().decode()) for s in f.samples]
    assert samples and all(s.labels.get("inferenceservice") == "iris-a" for s in samples)


def test_arguments_win_over_environment() -> None:
    env = {**BASE, "ONNXOPS_HOST": "127.0.0.5", "ONNXOPS_PORT": "9000", "ONNXOPS_DRIFT_METRICS": "false"}
    cfg = parse_config(["--port", "9100", "--model-version", "4", "--intra-op-threads", "2"], env)
    assert (cfg.host, cfg.port, cfg.model_version, cfg.intra_op_threads) == ("127.0.0.5", 9100, "4", 2)
    assert cfg.drift_metrics is False
    assert parse_config(["--drift-metrics", "true"], env).drift_metrics is True


def test_timeouts_and_load_retry_settings() -> None:
    cfg = parse_config([], BASE)
    assert (cfg.head_timeout_seconds, cfg.idle_timeout_seconds) == (10.0, 120.0)
    assert (cfg.load_retry_initial_seconds, cfg.load_retry_max_seconds) == (1.0, 60.0)
    assert cfg.liveness_timeout_seconds == 300.0
    env = {
        **BASE,
        "ONNXOPS_HEAD_TIMEOUT_SECONDS": "2.5",
        "ONNXOPS_IDLE_TIMEOUT_SECONDS": "30",
        "ONNXOPS_LOAD_RETRY_INITIAL_SECONDS": "0.5",
        "ONNXOPS_LOAD_RETRY_MAX_SECONDS": "20",
        "ONNXOPS_LIVENESS_TIMEOUT_SECONDS": "0",
    }
    cfg = parse_config(["--idle-timeout-seconds", "45"], env)
    assert (cfg.head_timeout_seconds, cfg.idle_timeout_seconds) == (2.5, 45.0)
    assert (cfg.load_retry_initial_seconds, cfg.load_retry_max_seconds) == (0.5, 20.0)
    assert cfg.liveness_timeout_seconds == 0.0


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({**BASE, "ONNXOPS_HEAD_TIMEOUT_SECONDS": "0"}, [], "--head-timeout-seconds: must be > 0"),
        ({**BASE, "ONNXOPS_IDLE_TIMEOUT_SECONDS": "soon"}, [], "--idle-timeout-seconds: not a number"),
        ({**BASE, "ONNXOPS_LOAD_RETRY_MAX_SECONDS": "-1"}, [], "--load-retry-max-seconds"),
        ({**BASE, "ONNXOPS_LIVENESS_TIMEOUT_SECONDS": "nan"}, [], "--liveness-timeout-seconds"),
        ({**BASE, "ONNXOPS_MODEL_SHA256": ""}, [], "--sha256 (ONNXOPS_MODEL_SHA256) is required"),
        ({**BASE, "ONNXOPS_MODEL_SHA256": "xyz"}, [], "not a sha256 hex digest"),
        ({**BASE, "ONNXOPS_MODEL_URI": ""}, [], "--model-uri"),
        ({**BASE, "ONNXOPS_MODEL_NAME": ""}, [], "--model-name"),
        ({**BASE, "ONNXOPS_PORT": "http"}, [], "--port: not an integer"),
        ({**BASE, "ONNXOPS_PORT": "70000"}, [], "--port: must be <= 65535"),
        ({**BASE, "ONNXOPS_DRIFT_METRICS": "maybe"}, [], "--drift-metrics"),
        ({**BASE, "ONNXOPS_PROFILE_URI": "file:///p.json"}, [], "--profile-sha256"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as exc:
        parse_config(args, env)
    assert message in str(exc.value)


def test_verify_only_needs_no_model_name() -> None:
    cfg = parse_config(["--verify-only"], {**BASE, "ONNXOPS_MODEL_NAME": ""})
    assert cfg.verify_only


def test_main_help_and_usage_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["--help"]) == 0
    assert "ONNXOPS_MODEL_URI" in capsys.readouterr().out
    for var in BASE:
        monkeypatch.delenv(var, raising=False)
    assert main(["--model-name", "x"]) == 2
    assert "--model-uri" in capsys.readouterr().err
    assert main(["--no-such-flag"]) == 2
