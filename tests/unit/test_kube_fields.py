"""managedFields (FieldsV1) reading and the operator's choice of the fields other managers added."""

from __future__ import annotations

from typing import Any

from onnxops.kube.fields import MISSING, foreign_additions, from_fields_v1, resolve, to_fields_v1, without

# the shape of the Kubernetes documentation's server-side apply example (a ConfigMap applied by kubectl)
DOC_EXAMPLE = {"f:metadata": {"f:labels": {"f:test-label": {}}}, "f:data": {"f:key": {}}}


def test_fields_v1_round_trip() -> None:
    paths = from_fields_v1(DOC_EXAMPLE)
    assert paths == {("f:metadata", "f:labels", "f:test-label"), ("f:data", "f:key")}
    assert to_fields_v1(paths) == DOC_EXAMPLE
    item = {"f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:image": {}}}}}
    assert from_fields_v1(item) == {
        ("f:spec", "f:containers", 'k:{"name":"c"}'),
        ("f:spec", "f:containers", 'k:{"name":"c"}', "f:image"),
    }
    assert to_fields_v1(from_fields_v1(item)) == item


def _service(ports: list[dict[str, Any]], managed: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "managedFields": managed},
        "spec": {"ports": ports, "clusterIP": "10.0.0.1", "selector": {"app": "a"}},
    }


def test_foreign_additions() -> None:
    desired = {"spec": {"ports": [{"port": 80}], "selector": {"app": "a"}}}
    live_port = {"port": 80, "protocol": "TCP", "targetPort": 80}
    port_key = 'k:{"port":80,"protocol":"TCP"}'
    managed = [
        {
            "manager": "onnxops",
            "operation": "Update",
            "fieldsV1": {"f:spec": {"f:ports": {port_key: {".": {}}}}},
        },
        # a user's edit: a new port, a session affinity, the port's name, a label; the status is not spec
        {
            "manager": "kubectl-edit",
            "operation": "Update",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:x": {}}},
                "f:spec": {
                    "f:sessionAffinity": {},
                    "f:clusterIP": {},
                    "f:ports": {port_key: {"f:name": {}}, 'k:{"port":81,"protocol":"TCP"}': {".": {}}},
                },
            },
        },
        {"manager": "x", "operation": "Update", "subresource": "status", "fieldsV1": {"f:status": {}}},
    ]
    live = _service([{**live_port, "name": "web"}, {"port": 81, "protocol": "TCP"}], managed)
    live["spec"]["sessionAffinity"] = "ClientIP"
    extra = foreign_additions(live, desired, "onnxops")
    # a desired port matches the live one on the key fields it has (protocol is the server's default)
    assert extra == [
        ("f:spec", "f:ports", port_key, "f:name"),
        ("f:spec", "f:ports", 'k:{"port":81,"protocol":"TCP"}'),
        ("f:spec", "f:sessionAffinity"),
    ]
    cleaned = without(live, extra)
    assert cleaned["spec"]["ports"] == [live_port] and "sessionAffinity" not in cleaned["spec"]
    assert "managedFields" not in cleaned["metadata"] and cleaned["spec"]["clusterIP"] == "10.0.0.1"
    assert resolve(cleaned, ("f:spec", "f:ports", 'k:{"port":81,"protocol":"TCP"}')) is MISSING


def test_replicas_of_an_autoscaler_are_not_foreign() -> None:
    managed = [{"manager": "hpa", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    live = {"metadata": {"managedFields": managed}, "spec": {"replicas": 4}}
    assert foreign_additions(live, {"spec": {}}, "onnxops") == []
    # when the operator sets the count itself, the value decides (a forced apply), not a removal
    assert foreign_additions(live, {"spec": {"replicas": 2}}, "onnxops") == []
    nested = [
        {
            "manager": "u",
            "operation": "Update",
            "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:nodeSelector": {"f:disk": {}}}}}},
        }
    ]
    template = {"spec": {"nodeSelector": {"disk": "a"}}}
    live = {"metadata": {"managedFields": nested}, "spec": {"template": template}}
    # the outermost field the operator does not set goes, with everything in it
    assert foreign_additions(live, {"spec": {"template": {"spec": {}}}}, "onnxops") == [
        ("f:spec", "f:template", "f:spec", "f:nodeSelector")
    ]
