"""The serving pods' gRPC port: container port and env of the Deployment, port `grpc` of the Services,
the operator setting, and the serving extra (what the serving image installs) carrying grpcio."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from _operator_fixtures import isvc, mv

from onnxops.builders import render
from onnxops.builders.deployment import deployment
from onnxops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _ports(obj: dict) -> dict[str, dict]:
    return {p["name"]: p for p in obj}


def test_deployment_and_services_expose_the_grpc_port() -> None:
    s = Settings(serving_grpc_port=9001)
    c = deployment(isvc(), mv(2), 1, s)["spec"]["template"]["spec"]["containers"][0]
    assert _ports(c["ports"])["grpc"]["containerPort"] == 9001
    assert {e["name"]: e["value"] for e in c["env"]}["ONNXOPS_GRPC_PORT"] == "9001"
    children = render.render([isvc(), mv(2)], s)
    (svc,) = [o for o in children if o["kind"] == "Service"]
    grpc = _ports(svc["spec"]["ports"])["grpc"]
    assert (grpc["port"], grpc["targetPort"], grpc["protocol"]) == (8081, 9001, "TCP")
    assert _ports(svc["spec"]["ports"])["http"]["targetPort"] == s.serving_port


def test_grpc_off_removes_the_port_and_tells_the_server() -> None:
    s = Settings(serving_grpc_port=0)
    c = deployment(isvc(), mv(2), 1, s)["spec"]["template"]["spec"]["containers"][0]
    assert "grpc" not in _ports(c["ports"])
    assert {e["name"]: e["value"] for e in c["env"]}["ONNXOPS_GRPC_PORT"] == "0"
    (svc,) = [o for o in render.render([isvc(), mv(2)], s) if o["kind"] == "Service"]
    assert [p["name"] for p in svc["spec"]["ports"]] == ["http"]


def test_setting_from_env_and_its_error() -> None:
    assert Settings.from_env({}).serving_grpc_port == 8081
    assert Settings.from_env({"ONNXOPS_SERVING_GRPC_PORT": "0"}).serving_grpc_port == 0
    with pytest.raises(ValueError, match="ONNXOPS_SERVING_GRPC_PORT"):
        Settings.from_env({"ONNXOPS_SERVING_GRPC_PORT": "-1"})


def test_serving_extra_carries_grpcio_and_protobuf() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip() for d in extras["serving"]}
    assert {"grpcio", "protobuf"} <= names
    assert (
        "8081" in (ROOT / "images" / "serving.Dockerfile").read_text().split("EXPOSE", 1)[1].splitlines()[0]
    )
