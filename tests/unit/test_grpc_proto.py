"""The generated gRPC message modules are current, coexist with tritonclient's, and the config's port."""

from __future__ import annotations

import pytest

from onnxops.serving.config import DEFAULT_GRPC_PORT, ConfigError, parse_config
from onnxops.serving.proto import generate

BASE = {"ONNXOPS_MODEL_NAME": "m", "ONNXOPS_MODEL_URI": "file:///m.onnx", "ONNXOPS_MODEL_SHA256": "a" * 64}


def test_generated_modules_are_not_stale() -> None:
    pytest.importorskip("grpc_tools")
    assert generate.stale(generate.render()) == [], "run: python -m onnxops.serving.proto.generate"


def test_check_fails_on_a_stale_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("grpc_tools")
    for name in generate.OUTPUTS:
        (tmp_path / name).write_text((generate.HERE / name).read_text())
    (tmp_path / generate.PROTO).write_text((generate.HERE / generate.PROTO).read_text())
    monkeypatch.setattr(generate, "HERE", tmp_path)
    assert generate.main(["--check"]) == 0
    (tmp_path / generate.OUTPUTS[0]).write_text("# edited by hand\n")
    assert generate.main(["--check"]) == 1


def test_messages_coexist_with_tritonclients_copy_and_share_the_wire_format() -> None:
    from tritonclient.grpc import service_pb2  # registers inference.* in protobuf's default pool

    from onnxops.serving.proto import grpc_predict_v2_pb2 as pb

    theirs = service_pb2.ModelInferRequest(model_name="m", model_version="2", id="r")
    t = theirs.inputs.add(name="X", datatype="FP32", shape=[1, 2])
    t.contents.fp32_contents.extend([1.5, 2.5])
    theirs.raw_input_contents.append(b"\x01\x02")
    ours = pb.ModelInferRequest.FromString(theirs.SerializeToString())
    assert (ours.model_name, ours.model_version, ours.id) == ("m", "2", "r")
    assert list(ours.inputs[0].shape) == [1, 2] and list(ours.inputs[0].contents.fp32_contents) == [1.5, 2.5]
    assert list(ours.raw_input_contents) == [b"\x01\x02"]
    assert (
        pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name == "inference.GRPCInferenceService"
    )


@pytest.mark.parametrize(
    ("env", "args", "want"),
    [
        ({}, [], DEFAULT_GRPC_PORT),
        ({"ONNXOPS_GRPC_PORT": "9001"}, [], 9001),
        ({"ONNXOPS_GRPC_PORT": "9001"}, ["--grpc-port", "9002"], 9002),
        ({"ONNXOPS_GRPC_PORT": "0"}, [], None),
    ],
)
def test_grpc_port_setting(env: dict[str, str], args: list[str], want: int | None) -> None:
    assert parse_config(args, {**BASE, **env}).grpc_port == want


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ONNXOPS_GRPC_PORT": "grpc"}, "--grpc-port: not an integer"),
        ({"ONNXOPS_GRPC_PORT": "70000"}, "--grpc-port: must be <= 65535"),
        ({"ONNXOPS_GRPC_PORT": "8080", "ONNXOPS_PORT": "8080"}, "--grpc-port: must differ from --port"),
    ],
)
def test_bad_grpc_port_names_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config([], {**BASE, **env})
