"""kopf runs unchanged against the API emulator: discovery at startup, watch-streams with bookmarks,
handlers firing, finalizers added and removed with JSON patches (`test` on resourceVersion), and status
patches split to the /status subresource."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.config import kube_config

from onnxops.local.apiserver import ApiServerThread, write_kubeconfig

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "sprockets.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {"plural": "sprockets", "singular": "sprocket", "kind": "Sprocket"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"teeth": {"type": "integer", "minimum": 1}},
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}

OPERATOR = """
import kopf
from pathlib import Path

MARKS = Path(__file__).parent / "marks"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.watching.server_timeout = 5
    settings.persistence.finalizer = "example.dev/kopf-finalizer"


@kopf.on.create("example.dev", "v1", "sprockets")
def created(spec, name, patch, **_):
    patch.status["phase"] = "Ready"
    patch.metadata.labels["seen"] = "yes"
    return {"teeth": spec["teeth"]}


@kopf.on.update("example.dev", "v1", "sprockets", field="spec.teeth")
def resized(new, name, patch, **_):
    patch.status["phase"] = f"Resized-{new}"


@kopf.on.delete("example.dev", "v1", "sprockets")
def deleted(name, **_):
    MARKS.mkdir(exist_ok=True)
    (MARKS / name).write_text("deleted")
"""


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (AssertionError, KeyError, ApiException):
            if time.monotonic() > deadline:
                raise
        else:
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServerThread]:
    with ApiServerThread(bookmark_interval=1.0) as srv:
        srv.register_crd(CRD)
        path = str(write_kubeconfig(tmp_path / "kubeconfig", srv.url))
        monkeypatch.setenv("KUBECONFIG", path)
        # the kubernetes client reads $KUBECONFIG once, at import time: point its default there too
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", path)
        yield srv


def test_kopf_handlers_finalizers_and_status(server: ApiServerThread, tmp_path: Path) -> None:
    module = tmp_path / "operator.py"
    module.write_text(OPERATOR)
    config = client.Configuration()
    config.host = server.url
    crs = client.CustomObjectsApi(client.ApiClient(config))
    args = ("example.dev", "v1", "default", "sprockets")
    body = {
        "apiVersion": "example.dev/v1",
        "kind": "Sprocket",
        "metadata": {"name": "s1"},
        "spec": {"teeth": 12},
    }
    with KopfRunner(
        ["run", "--standalone", "--namespace=default", "--verbose", str(module)], timeout=60
    ) as runner:
        crs.create_namespaced_custom_object(*args, body)

        def handled() -> dict[str, Any]:
            obj = crs.get_namespaced_custom_object(*args, "s1")
            assert obj["status"]["phase"] == "Ready" and obj["status"]["created"] == {"teeth": 12}
            assert "example.dev/kopf-finalizer" in obj["metadata"]["finalizers"]
            assert obj["metadata"]["labels"]["seen"] == "yes"
            return obj

        first = wait_for(handled)
        assert first["metadata"]["generation"] == 1  # status and metadata patches bump no generation
        crs.patch_namespaced_custom_object(*args, "s1", {"spec": {"teeth": 14}})
        wait_for(lambda: crs.get_namespaced_custom_object(*args, "s1")["status"]["phase"] == "Resized-14")
        crs.delete_namespaced_custom_object(*args, "s1")

        def gone() -> bool:
            try:
                crs.get_namespaced_custom_object(*args, "s1")
            except ApiException as exc:
                return exc.status == 404
            return False

        wait_for(gone)
    assert runner.exception is None and runner.exit_code == 0, runner.output
    assert (tmp_path / "marks" / "s1").read_text() == "deleted"
    assert "Handler 'created' succeeded" in runner.output
    assert "Handler 'deleted' succeeded" in runner.output
    assert "Traceback" not in runner.output
    assert "inconsistencies" not in runner.output  # kopf re-checks its merge-patches against the answers


CLUSTER_WIDE_OPERATOR = """
import kopf
import kubernetes


@kopf.on.create("example.dev", "v1", "sprockets")
def make_child(body, name, namespace, **_):
    child = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-child"},
             "data": {"a": "b"}}
    kopf.adopt(child, owner=body)
    kubernetes.config.load_kube_config()
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, child)
"""


def test_kopf_cluster_wide_without_standalone_and_adopted_children(
    server: ApiServerThread, tmp_path: Path
) -> None:
    """No --standalone: kopf looks for its peering resources, finds none and carries on; an adopted child
    is garbage-collected with its owner."""
    module = tmp_path / "operator.py"
    module.write_text(CLUSTER_WIDE_OPERATOR)
    config = client.Configuration()
    config.host = server.url
    api = client.ApiClient(config)
    crs, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "team"}})
    args = ("example.dev", "v1", "team", "sprockets")
    with KopfRunner(["run", "--all-namespaces", "--verbose", str(module)], timeout=60) as runner:
        crs.create_namespaced_custom_object(
            *args,
            {"apiVersion": "example.dev/v1", "kind": "Sprocket", "metadata": {"name": "s2"}, "spec": {}},
        )
        child = wait_for(lambda: core.read_namespaced_config_map("s2-child", "team"))
        assert child.metadata.owner_references[0].name == "s2"
        crs.delete_namespaced_custom_object(*args, "s2")
        wait_for(lambda: core.list_namespaced_config_map("team").items == [])
    assert runner.exception is None and runner.exit_code == 0, runner.output
    assert "Handler 'make_child' succeeded" in runner.output
