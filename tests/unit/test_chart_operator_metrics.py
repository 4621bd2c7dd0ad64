"""The operator's own metrics in the chart (port, Service, ServiceMonitor), the alerts on them, every alert's
runbook link (a file in docs/runbooks/), and failed-object alerts that resolve. Alerts are evaluated by
Prometheus' own `promtool test rules`."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from _chart import NAMESPACE, ROOT, VALUE_SETS, of_kind, one, render
from test_chart_monitoring import KSM_LABELS, _groups, _promtool, _series, needs_promtool

MON = VALUE_SETS["monitoring"]
RUNBOOKS = ROOT / "docs" / "runbooks"


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


def test_metrics_port_service_and_service_monitor() -> None:
    objects = render(MON)
    c = _container(objects)
    assert "--metrics-port=8081" in c["args"]
    assert {"name": "metrics", "containerPort": 8081, "protocol": "TCP"} in c["ports"]
    (svc,) = [s for s in of_kind(objects, "Service") if s["metadata"]["name"] == "onnxops-metrics"]
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 8081, "targetPort": "metrics", "protocol": "TCP"}
    ]
    (sm,) = [o for o in of_kind(objects, "ServiceMonitor") if o["metadata"]["name"] == "onnxops-operator"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    # the serving ServiceMonitor never selects the operator's Service, and vice versa
    (serving,) = [o for o in of_kind(objects, "ServiceMonitor") if o["metadata"]["name"] == "onnxops-serving"]
    assert not serving["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()


def test_metrics_off_and_default() -> None:
    off = render({"metrics": {"enabled": False}})
    assert not any("--metrics-port" in a for a in _container(off)["args"])
    assert not [s for s in of_kind(off, "Service") if s["metadata"]["name"] == "onnxops-metrics"]
    default = render()
    assert [s for s in of_kind(default, "Service") if s["metadata"]["name"] == "onnxops-metrics"]
    assert not of_kind(default, "ServiceMonitor")  # needs the prometheus-operator CRDs: opt-in


def _alerts(values: dict[str, Any] = MON) -> dict[str, dict[str, Any]]:
    rule = one(render(values), "PrometheusRule")
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def test_every_alert_links_an_existing_runbook() -> None:
    alerts = _alerts()
    assert {"OnnxopsOperatorMetricsAbsent", "OnnxopsOperatorReconcileErrors"} <= set(alerts)
    for name, rule in alerts.items():
        url = rule["annotations"]["runbook_url"]
        m = re.fullmatch(r"https://\S+/docs/runbooks/(\w+)\.md", url)
        assert m and m[1] == name, url
        page = RUNBOOKS / f"{name}.md"
        assert page.is_file(), f"{name}: {page.relative_to(ROOT)} is missing"
        text = page.read_text()
        assert text.startswith(f"# {name}\n"), name
        for section in ("## Meaning", "## Diagnosis", "## Fix"):
            assert section in text, (name, section)
    # no runbook without an alert (a renamed alert leaves no stale page)
    assert {p.stem for p in RUNBOOKS.glob("Onnxops*.md")} == set(alerts)
    moved = _alerts(
        {
            **MON,
            "monitoring": {
                **MON["monitoring"],
                "prometheusRule": {"enabled": True, "runbookBaseUrl": "https://wiki.example.com/onnxops/"},
            },
        }
    )
    assert (
        moved["OnnxopsRolledBack"]["annotations"]["runbook_url"]
        == "https://wiki.example.com/onnxops/OnnxopsRolledBack.md"
    )


def test_runbooks_explain_status_and_the_way_out() -> None:
    """The pages an on-call reads for an InferenceService say how to read status.rollback/status.drift and
    how to pin, retry or re-admit a version."""
    for name in ("OnnxopsRolledBack", "OnnxopsDriftDetected"):
        text = (RUNBOOKS / f"{name}.md").read_text()
        for needle in ("status.rollback", "status.drift", "pin", "re-admit"):
            assert needle in text, (name, needle)
    text = (RUNBOOKS / "OnnxopsTrainingFailed.md").read_text()
    assert "docs/troubleshooting.md" in text.replace("../troubleshooting.md", "docs/troubleshooting.md")


def test_operator_alerts_only_with_the_service_monitor() -> None:
    values = copy.deepcopy(MON)
    values["metrics"] = {"serviceMonitor": {"enabled": False}}
    assert "OnnxopsOperatorMetricsAbsent" not in _alerts(values)


def _tj(phase: str) -> dict[str, str]:
    return {
        "namespace": "ml",
        "name": "iris-1",
        "model": "iris",
        "phase": phase,
        "customresource_kind": "TrainingJob",
        **KSM_LABELS,
    }


def _mv(phase: str) -> dict[str, str]:
    return {
        "namespace": "ml",
        "name": "iris-v2",
        "model": "iris",
        "phase": phase,
        "customresource_kind": "ModelVersion",
        **KSM_LABELS,
    }


OP = {"namespace": NAMESPACE, "job": "onnxops-metrics"}
TESTS: list[dict[str, Any]] = [
    {  # a TrainingJob that turns Failed at minute 2 and stays Failed: alert for failedAlertWindow (1h)
        "interval": "1m",
        "input_series": [_series("kube_onnxops_trainingjob_status_phase", _tj("Failed"), "0 0 1x200")],
        "alert_rule_test": [
            {"eval_time": "1m", "alertname": "OnnxopsTrainingFailed", "exp_alerts": []},
            {
                "eval_time": "30m",
                "alertname": "OnnxopsTrainingFailed",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "team": "ml", **_tj("Failed")}}],
            },
            {"eval_time": "70m", "alertname": "OnnxopsTrainingFailed", "exp_alerts": []},  # resolved
        ],
    },
    {  # a TrainingJob created already Failed (no earlier sample) alerts too, then resolves
        "interval": "1m",
        "input_series": [_series("kube_onnxops_trainingjob_status_phase", _tj("Failed"), "_x10 1x100")],
        "alert_rule_test": [
            {
                "eval_time": "15m",
                "alertname": "OnnxopsTrainingFailed",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "team": "ml", **_tj("Failed")}}],
            },
            {"eval_time": "80m", "alertname": "OnnxopsTrainingFailed", "exp_alerts": []},
        ],
    },
    {  # the same for a ModelVersion that fails verification
        "interval": "1m",
        "input_series": [_series("kube_onnxops_modelversion_status_phase", _mv("Failed"), "0x5 1x100")],
        "alert_rule_test": [
            {
                "eval_time": "10m",
                "alertname": "OnnxopsModelVersionVerificationFailed",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "team": "ml", **_mv("Failed")}}],
            },
            {"eval_time": "90m", "alertname": "OnnxopsModelVersionVerificationFailed", "exp_alerts": []},
        ],
    },
    {  # the operator's metrics vanish at minute 5: absent for 10m fires
        "interval": "1m",
        "input_series": [
            _series("onnxops_operator_build_info", {**OP, "version": "0.1.0"}, "1x5"),
            _series(
                "onnxops_operator_build_info",
                {"namespace": "other", "job": "onnxops-metrics", "version": "0.1.0"},
                "1x40",
            ),
        ],
        "alert_rule_test": [
            {"eval_time": "8m", "alertname": "OnnxopsOperatorMetricsAbsent", "exp_alerts": []},
            {
                "eval_time": "25m",
                "alertname": "OnnxopsOperatorMetricsAbsent",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "team": "ml", **OP}}],
            },
        ],
    },
    {  # 60 % of InferenceService reconciles fail; TrainingJob reconciles all succeed
        "interval": "1m",
        "input_series": [
            _series(
                "onnxops_operator_reconciles_total",
                {**OP, "kind": "InferenceService", "result": "error"},
                "0+6x60",
            ),
            _series(
                "onnxops_operator_reconciles_total",
                {**OP, "kind": "InferenceService", "result": "success"},
                "0+4x60",
            ),
            _series(
                "onnxops_operator_reconciles_total",
                {**OP, "kind": "TrainingJob", "result": "success"},
                "0+4x60",
            ),
        ],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "OnnxopsOperatorReconcileErrors", "exp_alerts": []},
            {
                "eval_time": "40m",
                "alertname": "OnnxopsOperatorReconcileErrors",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "team": "ml",
                            "namespace": NAMESPACE,
                            "kind": "InferenceService",
                        }
                    }
                ],
            },
        ],
    },
]


@needs_promtool
def test_new_alerts_on_sample_series(tmp_path: Path) -> None:
    groups = copy.deepcopy(_groups())
    for g in groups:
        for r in g["rules"]:
            r.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": TESTS})
    )
    out = _promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
