"""Pure parts of the kube layer: desired-vs-observed comparison, event scrubbing, kubeconfig parsing."""

from __future__ import annotations

import yaml

from onnxops.kube.apply import contains, desired_patch
from onnxops.kube.client import KubeClient, resource_path
from onnxops.kube.events import event_body, scrub


def test_contains_ignores_server_defaults():
    observed = {
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate"},
            "ports": [{"port": 80, "protocol": "TCP"}],
        }
    }
    assert contains(observed, {"spec": {"replicas": 2, "ports": [{"port": 80}]}})
    assert not contains(observed, {"spec": {"replicas": 3}})
    assert not contains(observed, {"spec": {"ports": [{"port": 80}, {"port": 81}]}})
    assert not contains({"a": 1}, {"a": True})


def test_desired_patch_mutable_paths_only():
    obs = {"spec": {"suspend": True, "template": {"x": 1}}}
    want = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {"suspend": False, "template": {"x": 2}},
    }
    assert desired_patch(obs, want, [("spec", "suspend")]) == {"spec": {"suspend": False}}
    assert desired_patch({"spec": {"suspend": False}}, want, [("spec", "suspend")]) is None


def test_scrub_removes_credentials():
    msg = "failed: AWS_SECRET_ACCESS_KEY=abc123 and password: hunter2 at https://user:pw@host/x"
    out = scrub(msg)
    assert "abc123" not in out and "hunter2" not in out and "pw@" not in out
    assert "AWS_SECRET_ACCESS_KEY=<redacted>" in out
    body = event_body(
        {"apiVersion": "v1", "kind": "X", "metadata": {"name": "n", "uid": "u"}}, "Warning", "R", msg
    )
    assert "abc123" not in body["message"] and body["involvedObject"]["uid"] == "u"


def test_resource_paths():
    assert resource_path("v1", "Pod", "ns", "p") == "/api/v1/namespaces/ns/pods/p"
    assert resource_path("onnxops.dev/v1alpha1", "ModelVersion", "ns", "m", "status") == (
        "/apis/onnxops.dev/v1alpha1/namespaces/ns/modelversions/m/status"
    )


def test_kubeconfig_token_and_server(tmp_path):
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [
            {"name": "k", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": "u", "user": {"token": "t0k"}}],
    }
    p = tmp_path / "kubeconfig"
    p.write_text(yaml.safe_dump(cfg))
    c = KubeClient.from_kubeconfig(str(p))
    assert c.server == "https://127.0.0.1:6443" and c.token == "t0k"
