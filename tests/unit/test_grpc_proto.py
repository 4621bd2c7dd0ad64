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


def test_outputs_are_all_raw_when_one_has_no_typed_field() -> None:
    """A typed request gets typed outputs, except when an output (FP16) has no typed field: then every
    output is raw, in the order of ``outputs`` (raw contents are matched to outputs by position)."""
    from types import SimpleNamespace

    import numpy as np

    from onnxops.serving.grpc_server import encode_outputs
    from onnxops.serving.model import TensorInfo
    from onnxops.serving.proto import grpc_predict_v2_pb2 as pb

    infos = [TensorInfo("label", "INT64", (-1,), np.int64), TensorInfo("p", "FP16", (-1, 2), np.float16)]
    model = SimpleNamespace(
        name="m", version="3", output_names=["label", "p"], output_by_name={t.name: t for t in infos}
    )
    label, p = np.array([1, 0, 1], dtype=np.int64), np.arange(6, dtype=np.float16).reshape(3, 2)
    typed = pb.ModelInferRequest(model_name="m", id="r1")
    resp = pb.ModelInferResponse.FromString(
        encode_outputs(model, typed, [label, p], ["p", "label"]).SerializeToString()  # type: ignore[arg-type]
    )
    assert (resp.model_name, resp.model_version, resp.id) == ("m", "3", "r1")
    assert [(o.name, o.datatype, list(o.shape)) for o in resp.outputs] == [
        ("p", "FP16", [3, 2]),
        ("label", "INT64", [3]),
    ]
    assert not any(o.HasField("contents") for o in resp.outputs)
    assert np.array_equal(np.frombuffer(resp.raw_output_contents[0], "<f2").reshape(3, 2), p)
    assert np.array_equal(np.frombuffer(resp.raw_output_contents[1], "<i8"), label)
    only_label = encode_outputs(model, typed, [label, p], ["label"])  # type: ignore[arg-type]
    assert list(only_label.outputs[0].contents.int64_contents) == [1, 0, 1]
    assert not only_label.raw_output_contents
