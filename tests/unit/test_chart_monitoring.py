"""Monitoring objects of the chart: the PrometheusRule checked and unit-tested by Prometheus' own promtool,
the Grafana dashboard's queries checked by promtool and evaluated on sample series, the kube-state-metrics
config checked against the generated CRDs, and the scrape selectors against the builders' labels."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from _chart import CHART, NAMESPACE, VALUE_SETS, load_chart_crds, of_kind, one, render

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)"
)
MON = VALUE_SETS["monitoring"]
KSM = yaml.safe_load((CHART / "files" / "kube-state-metrics-onnxops.yaml").read_text())
DASHBOARD = json.loads((CHART / "dashboards" / "onnxops-overview.json").read_text())


def _groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = one(render(MON), "PrometheusRule")["spec"]["groups"]
    return groups


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_monitoring_objects_are_optional() -> None:
    kinds = {o["kind"] for o in render()}
    assert not kinds & {"PodMonitor", "ServiceMonitor", "PrometheusRule"}
    assert not of_kind(render(), "ConfigMap")
    objects = render(MON)
    names = {o["metadata"]["name"] for o in of_kind(objects, "ConfigMap")}
    assert names == {"onnxops-kube-state-metrics", "onnxops-dashboard"}


def test_alerts_cover_the_issues_users_page_on() -> None:
    alerts = {r["alert"] for g in _groups() for r in g["rules"]}
    paged = {"OnnxopsDriftDetected", "OnnxopsRolledBack", "OnnxopsTrainingFailed", "OnnxopsOperatorDown"}
    assert paged <= alerts
    for g in _groups():
        for r in g["rules"]:
            assert r["labels"]["severity"] in ("warning", "critical")
            assert r["labels"]["team"] == "ml"  # alertLabels
            assert r["annotations"]["summary"] and r["annotations"]["description"]


@needs_promtool
def test_promtool_check_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": _groups()}))
    out = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@needs_promtool
def test_promtool_check_rules_catches_a_broken_rule(tmp_path: Path) -> None:
    groups = _groups()
    groups[0]["rules"][0]["expr"] = "sum(rate(onnxops_requests_total[5m])"  # unbalanced
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    assert _promtool("check", "rules", "rules.yaml", cwd=tmp_path).returncode != 0


KSM_LABELS = {"customresource_group": "onnxops.dev", "customresource_version": "v1alpha1"}


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    body = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{body}}}", "values": values}


def _isvc(**extra: str) -> dict[str, str]:
    return {
        "namespace": "ml",
        "name": "iris",
        "model": "iris",
        "customresource_kind": "InferenceService",
        **KSM_LABELS,
        **extra,
    }


ALERT_TESTS: list[dict[str, Any]] = [
    {  # a rollback holds (and alerts) while the spec generation it applies to is current
        "interval": "1m",
        "input_series": [
            _series(
                "kube_onnxops_inferenceservice_rollback_generation",
                _isvc(from_version="2", to_version="1", reason="DriftDetected"),
                "3x30",
            ),
            _series("kube_onnxops_inferenceservice_metadata_generation", _isvc(), "3x10 4x20"),
        ],
        "alert_rule_test": [
            {
                "eval_time": "5m",
                "alertname": "OnnxopsRolledBack",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "team": "ml",
                            **_isvc(from_version="2", to_version="1", reason="DriftDetected"),
                        }
                    }
                ],
            },
            {"eval_time": "15m", "alertname": "OnnxopsRolledBack", "exp_alerts": []},
        ],
    },
    {  # drift must be reported for driftFor (1m) before it alerts
        "interval": "1m",
        "input_series": [
            _series(
                "kube_onnxops_inferenceservice_status_condition",
                _isvc(type="DriftDetected", reason="DriftDetected"),
                "0x4 1x10",
            ),
        ],
        "alert_rule_test": [
            {"eval_time": "4m", "alertname": "OnnxopsDriftDetected", "exp_alerts": []},
            {"eval_time": "5m", "alertname": "OnnxopsDriftDetected", "exp_alerts": []},
            {
                "eval_time": "7m",
                "alertname": "OnnxopsDriftDetected",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "team": "ml",
                            **_isvc(type="DriftDetected", reason="DriftDetected"),
                        }
                    }
                ],
            },
        ],
    },
    {  # training failed
        "interval": "1m",
        "input_series": [
            _series(
                "kube_onnxops_trainingjob_status_phase",
                {
                    "namespace": "ml",
                    "name": "iris-1",
                    "model": "iris",
                    "phase": "Failed",
                    "customresource_kind": "TrainingJob",
                    **KSM_LABELS,
                },
                "0 0 1x5",
            ),
            _series(
                "kube_onnxops_trainingjob_status_phase",
                {
                    "namespace": "ml",
                    "name": "iris-1",
                    "model": "iris",
                    "phase": "Running",
                    "customresource_kind": "TrainingJob",
                    **KSM_LABELS,
                },
                "1 1 0x5",
            ),
        ],
        "alert_rule_test": [
            {"eval_time": "1m", "alertname": "OnnxopsTrainingFailed", "exp_alerts": []},
            {
                "eval_time": "3m",
                "alertname": "OnnxopsTrainingFailed",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "team": "ml",
                            "namespace": "ml",
                            "name": "iris-1",
                            "model": "iris",
                            "phase": "Failed",
                            "customresource_kind": "TrainingJob",
                            **KSM_LABELS,
                        }
                    }
                ],
            },
        ],
    },
    {  # operator Deployment without available replicas for 5m
        "interval": "1m",
        "input_series": [
            _series(
                "kube_deployment_status_replicas_available",
                {"namespace": NAMESPACE, "deployment": "onnxops"},
                "1x5 0x20",
            ),
            _series(
                "kube_deployment_status_replicas_available",
                {"namespace": "other", "deployment": "onnxops"},
                "1x25",
            ),
        ],
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "OnnxopsOperatorDown", "exp_alerts": []},
            {
                "eval_time": "12m",
                "alertname": "OnnxopsOperatorDown",
                "exp_alerts": [{"exp_labels": {"severity": "critical", "team": "ml"}}],
            },
        ],
    },
    {  # ... or gone altogether (absent)
        "interval": "1m",
        "input_series": [_series("up", {"job": "x"}, "1x20")],
        "alert_rule_test": [
            {
                "eval_time": "10m",
                "alertname": "OnnxopsOperatorDown",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "critical",
                            "team": "ml",
                            "namespace": NAMESPACE,
                            "deployment": "onnxops",
                        }
                    }
                ],
            },
        ],
    },
    {  # 10% 5xx on version 2 alerts; 0.1% on version 1 does not
        "interval": "1m",
        "input_series": [
            _series(
                "onnxops_requests_total",
                {"namespace": "ml", "model": "iris", "version": "2", "protocol": "v2", "code": "500"},
                "0+6x30",
            ),
            _series(
                "onnxops_requests_total",
                {"namespace": "ml", "model": "iris", "version": "2", "protocol": "v2", "code": "200"},
                "0+54x30",
            ),
            _series(
                "onnxops_requests_total",
                {"namespace": "ml", "model": "iris", "version": "1", "protocol": "v2", "code": "500"},
                "0+1x30",
            ),
            _series(
                "onnxops_requests_total",
                {"namespace": "ml", "model": "iris", "version": "1", "protocol": "v2", "code": "200"},
                "0+999x30",
            ),
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "OnnxopsServingErrorRateHigh",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "team": "ml",
                            "namespace": "ml",
                            "model": "iris",
                            "version": "2",
                        }
                    }
                ],
            },
        ],
    },
    {  # p99 = 0.1 + 0.9 * (99 - 90) / 10 = 0.91 s > 0.5 s
        "interval": "1m",
        "input_series": [
            _series(
                "onnxops_request_duration_seconds_bucket",
                {"namespace": "ml", "model": "iris", "version": "3", "protocol": "v1", "le": le},
                v,
            )
            for le, v in (("0.1", "0+90x30"), ("1", "0+100x30"), ("+Inf", "0+100x30"))
        ],
        "alert_rule_test": [
            {"eval_time": "8m", "alertname": "OnnxopsServingLatencyHigh", "exp_alerts": []},
            {
                "eval_time": "20m",
                "alertname": "OnnxopsServingLatencyHigh",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "team": "ml",
                            "namespace": "ml",
                            "model": "iris",
                            "version": "3",
                        }
                    }
                ],
            },
        ],
    },
]


@needs_promtool
def test_alerts_fire_on_sample_series(tmp_path: Path) -> None:
    """Prometheus evaluates the rendered alerts on sample series (promtool test rules). Annotations are
    checked by test_rollback_alert_text; here they are left out so each case states only the labels."""
    groups = copy.deepcopy(_groups())
    for g in groups:
        for r in g["rules"]:
            r.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": ALERT_TESTS})
    )
    out = _promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_rollback_alert_text(tmp_path: Path) -> None:
    groups = [
        {"name": g["name"], "rules": [r for r in g["rules"] if r["alert"] == "OnnxopsRolledBack"]}
        for g in _groups()
    ]
    groups = [g for g in groups if g["rules"]]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    case = copy.deepcopy(ALERT_TESTS[0])
    case["alert_rule_test"] = case["alert_rule_test"][:1]
    case["alert_rule_test"][0]["exp_alerts"][0]["exp_annotations"] = {
        "summary": "InferenceService ml/iris was rolled back.",
        "runbook_url": "https://github.com/onnxops/onnxops/blob/main/docs/runbooks/OnnxopsRolledBack.md",
        "description": "The operator rolled InferenceService ml/iris back from version 2 to 1 "
        "(DriftDetected). "
        "The rollback holds (in status only; Git is untouched) until the spec changes: fix or "
        "pin the version in Git to resolve this alert.",
    }
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [case]})
    )
    out = _promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


# --- metric names: every query uses series someone actually exposes -----------------------------------


def _served_names() -> set[str]:
    from onnxops.drift import names

    families = {
        v for k, v in vars(names).items() if k.isupper() and isinstance(v, str) and v.startswith("onnxops_")
    }
    return families | {f + s for f in families for s in ("_bucket", "_sum", "_count")}


def _ksm_names() -> set[str]:
    return {f"{r['metricNamePrefix']}_{m['name']}" for r in KSM["spec"]["resources"] for m in r["metrics"]}


def _dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in DASHBOARD["annotations"]["list"]]
    return exprs


def _metric_tokens(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:kube_)?onnxops_[a-z0-9_]+)\b", expr))


def _operator_names() -> set[str]:
    """Series the operator's own registry exposes (onnxops.controller.opmetrics)."""
    from onnxops.controller import opmetrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {f.name + x for f in opmetrics.REGISTRY.collect() for x in suffixes[f.type]}


def test_queries_use_exposed_metric_names() -> None:
    known = _served_names() | _ksm_names() | _operator_names()
    rule_exprs = [r["expr"] for g in _groups() for r in g["rules"]]
    used = set().union(*(_metric_tokens(e) for e in rule_exprs + _dashboard_exprs()))
    assert used, "no onnxops metric in the queries"
    assert used - known == set()
    # the dashboard shows traffic, latency, drift scores and rollout history
    for needed in (
        "onnxops_requests_total",
        "onnxops_request_duration_seconds_bucket",
        "kube_onnxops_inferenceservice_drift_feature_score",
        "onnxops_operator_reconciles_total",
        "onnxops_operator_decisions_total",
        "kube_onnxops_inferenceservice_drift_score",
        "kube_onnxops_inferenceservice_canary_weight",
        "kube_onnxops_inferenceservice_stable_version",
    ):
        assert needed in used


def _dashboard_rule_file() -> dict[str, Any]:
    rules = []
    for i, e in enumerate(_dashboard_exprs()):
        expr = e.replace("$__rate_interval", "5m").replace("$namespace", ".*").replace("$model", ".*")
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    return {"groups": [{"name": "dashboard", "rules": rules}]}


@needs_promtool
def test_dashboard_queries_parse(tmp_path: Path) -> None:
    (tmp_path / "dash.yaml").write_text(yaml.safe_dump(_dashboard_rule_file()))
    out = _promtool("check", "rules", "dash.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_dashboard_traffic_share_on_sample_series(tmp_path: Path) -> None:
    """The per-version traffic share panel reads a 90/10 canary split as 0.9 and 0.1."""
    (panel,) = [p for p in DASHBOARD["panels"] if p["title"] == "Traffic share by version"]
    expr = panel["targets"][0]["expr"].replace("$__rate_interval", "5m")
    expr = "round(" + expr.replace("$namespace", ".*").replace("$model", ".*") + ", 0.001)"
    series = [
        _series(
            "onnxops_requests_total",
            {"namespace": "ml", "model": "iris", "version": v, "protocol": "v2", "code": "200"},
            f"0+{n}x20",
        )
        for v, n in (("1", 90), ("2", 10))
    ]
    (tmp_path / "empty.yaml").write_text("groups: []\n")
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["empty.yaml"],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "promql_expr_test": [
                            {
                                "expr": expr,
                                "eval_time": "10m",
                                "exp_samples": [
                                    {"labels": '{model="iris", version="1"}', "value": 0.9},
                                    {"labels": '{model="iris", version="2"}', "value": 0.1},
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    )
    out = _promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_configmap_carries_the_sidecar_label() -> None:
    cm = next(c for c in of_kind(render(MON), "ConfigMap") if c["metadata"]["name"] == "onnxops-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "MLOps"}
    assert json.loads(cm["data"]["onnxops-overview.json"]) == DASHBOARD
    assert DASHBOARD["uid"] and len({p["id"] for p in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])


# --- kube-state-metrics config against the CRDs ------------------------------------------------------------


def _schema_at(schema: dict[str, Any], path: list[str]) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in path:
        if node is None:
            return None
        if node.get("type") == "array":
            node = node.get("items")
        props = (node or {}).get("properties", {})
        if part in props:
            node = props[part]
        elif part in ("name", "namespace", "generation") and node is schema["properties"].get("metadata"):
            node = {"type": "string"}  # ObjectMeta is not spelled out in CRD schemas
        else:
            return None
    return node


def test_kube_state_metrics_paths_exist_in_the_crds() -> None:
    crds = load_chart_crds()
    configmap = next(
        c for c in of_kind(render(MON), "ConfigMap") if c["metadata"]["name"] == "onnxops-kube-state-metrics"
    )
    assert yaml.safe_load(configmap["data"]["config.yaml"]) == KSM
    for res in KSM["spec"]["resources"]:
        gvk = res["groupVersionKind"]
        crd = crds[gvk["kind"]]
        assert crd["spec"]["group"] == gvk["group"]
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == gvk["version"]]
        schema = version["schema"]["openAPIV3Schema"]
        schema.setdefault("properties", {}).setdefault("metadata", {"type": "object"})
        for label, path in res["labelsFromPath"].items():
            assert _schema_at(schema, path) is not None, (gvk["kind"], label, path)
        for m in res["metrics"]:
            each = m["each"]
            spec = each[{"Gauge": "gauge", "StateSet": "stateSet", "Info": "info"}[each["type"]]]
            base = _schema_at(schema, spec["path"])
            assert base is not None, (gvk["kind"], m["name"], spec["path"])
            if "labelFromKey" in spec:
                assert isinstance(base.get("additionalProperties"), dict), (gvk["kind"], m["name"])
            for sub in [*spec.get("labelsFromPath", {}).values(), spec.get("valueFrom", [])]:
                if sub:
                    assert _schema_at(base, sub) is not None, (gvk["kind"], m["name"], sub)
            if each["type"] == "StateSet":
                # every phase the API can report is a state, and no other
                assert sorted(spec["list"]) == sorted(base["enum"]), (gvk["kind"], m["name"])


# --- scrape selectors against the labels the builders put on serving objects ------------------------------


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for e in selector.get("matchExpressions", []):
        if e["operator"] == "DoesNotExist" and e["key"] in labels:
            return False
        if e["operator"] == "Exists" and e["key"] not in labels:
            return False
    return True


def test_scrape_selectors_match_serving_objects_once() -> None:
    from onnxops.builders import labels
    from onnxops.builders import service as builders

    isvc = {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u1"},
        "spec": {"model": "iris"},
    }
    objects = render(MON)
    pm = one(objects, "PodMonitor")["spec"]
    (sm,) = [
        o["spec"] for o in of_kind(objects, "ServiceMonitor") if o["metadata"]["name"] == "onnxops-serving"
    ]
    assert pm["namespaceSelector"] == {"any": True} and sm["namespaceSelector"] == {"any": True}
    assert _matches(pm["selector"], labels.serving("iris", "iris", 3))
    assert not _matches(pm["selector"], labels.training("tj", "iris"))
    main_svc = builders.service(isvc)
    version_svc = builders.version_service(isvc, 3)
    assert _matches(sm["selector"], main_svc["metadata"]["labels"])
    assert not _matches(sm["selector"], version_svc["metadata"]["labels"])  # no pod scraped twice
    port = main_svc["spec"]["ports"][0]["name"]
    assert pm["podMetricsEndpoints"][0]["port"] == port and sm["endpoints"][0]["port"] == port
    scoped = one(render({**MON, "watchNamespaces": ["ml"]}), "PodMonitor")["spec"]
    assert scoped["namespaceSelector"] == {"matchNames": ["ml"]}


@needs_promtool
def test_every_dashboard_query_shows_data_on_sample_series(tmp_path: Path) -> None:
    """Prometheus evaluates every panel and annotation query of the dashboard on series shaped like the
    servers' and kube-state-metrics' (one InferenceService, versions 1 and 2, a rollback at minute 8):
    an `absent()` alert per query proves none of them comes back empty."""
    srv = {"namespace": "ml", "model": "iris"}
    series = []
    for version, ok, err in (("1", 90, 1), ("2", 10, 2)):
        for code, n in (("200", ok), ("500", err)):
            series.append(
                _series(
                    "onnxops_requests_total",
                    {**srv, "version": version, "protocol": "v2", "code": code},
                    f"0+{n}x20",
                )
            )
        for le, n in (("0.01", ok // 2), ("0.1", ok), ("+Inf", ok + err)):
            series.append(
                _series(
                    "onnxops_request_duration_seconds_bucket",
                    {**srv, "version": version, "protocol": "v2", "le": le},
                    f"0+{n}x20",
                )
            )
        series.append(_series("onnxops_rows_total", {**srv, "version": version}, f"0+{ok}x20"))
        series.append(
            _series(
                "onnxops_prediction_class_total", {**srv, "version": version, "class": "setosa"}, f"0+{ok}x20"
            )
        )
        series.append(_series("kube_onnxops_inferenceservice_drift_score", _isvc(version=version), "0.05x20"))
    series += [
        _series(
            "kube_onnxops_inferenceservice_status_condition",
            _isvc(type="DriftDetected", reason="DriftDetected"),
            "0x8 1x12",
        ),
        _series("kube_onnxops_inferenceservice_stable_version", _isvc(), "1x20"),
        _series("kube_onnxops_inferenceservice_canary_version", _isvc(), "2x8 0x12"),
        _series("kube_onnxops_inferenceservice_canary_weight", _isvc(), "10x4 50x4 0x12"),
        _series(
            "kube_onnxops_inferenceservice_rollback_timestamp_seconds",
            _isvc(from_version="2", to_version="1", reason="DriftDetected"),
            "_x8 1767225600x12",
        ),
        _series("kube_onnxops_inferenceservice_metadata_generation", _isvc(), "1x8 2x12"),
        _series("kube_onnxops_inferenceservice_drift_feature_score", _isvc(feature="petal_length"), "0.3x20"),
    ]
    op = {"namespace": NAMESPACE, "job": "onnxops-metrics"}
    for kind in ("TrainingJob", "InferenceService"):
        series.append(
            _series("onnxops_operator_reconciles_total", {**op, "kind": kind, "result": "success"}, "0+5x20")
        )
        for le, n in (("0.1", 4), ("1", 5), ("+Inf", 5)):
            series.append(
                _series(
                    "onnxops_operator_reconcile_duration_seconds_bucket",
                    {**op, "kind": kind, "le": le},
                    f"0+{n}x20",
                )
            )
    series.append(
        _series(
            "onnxops_operator_decisions_total",
            {**op, "kind": "InferenceService", "decision": "RolledBack", "reason": "DriftDetected"},
            "0x8 1x12",
        )
    )
    rules = _dashboard_rule_file()
    records = [r["record"] for r in rules["groups"][0]["rules"]]
    rules["groups"].append(
        {
            "name": "empty-panels",
            "rules": [{"alert": f"Empty_{i}", "expr": f"absent({rec})"} for i, rec in enumerate(records)],
        }
    )
    (tmp_path / "dash.yaml").write_text(yaml.safe_dump(rules))
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["dash.yaml"],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "alert_rule_test": [
                            {"eval_time": "10m", "alertname": f"Empty_{i}", "exp_alerts": []}
                            for i in range(len(records))
                        ],
                    }
                ],
            }
        )
    )
    out = _promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert len(records) == len(_dashboard_exprs()) >= 12


@needs_promtool
def test_rollback_annotation_marks_the_rollback_only(tmp_path: Path) -> None:
    """The "Rollbacks" annotation query returns the rollback near the moment it appears (a new series, so
    `changes()` alone would miss it) and a later one, and nothing in between."""
    (ann,) = [a for a in DASHBOARD["annotations"]["list"] if a["name"] == "Rollbacks"]
    expr = ann["expr"].replace("$__rate_interval", "5m").replace("$namespace", ".*").replace("$model", ".*")
    labels = _isvc(from_version="2", to_version="1", reason="DriftDetected")
    series = [
        _series(
            "kube_onnxops_inferenceservice_rollback_timestamp_seconds",
            labels,
            "_x8 1767225600x20 1767227000x10",
        )
    ]
    body = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    new_series = "kube_onnxops_inferenceservice_rollback_timestamp_seconds{" + body + "}"
    changed = "{" + body + "}"  # changes() drops the metric name; its value is the number of changes
    (tmp_path / "empty.yaml").write_text("groups: []\n")
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["empty.yaml"],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "promql_expr_test": [
                            {"expr": expr, "eval_time": "7m", "exp_samples": []},
                            {
                                "expr": expr,
                                "eval_time": "10m",
                                "exp_samples": [{"labels": new_series, "value": 1767225600}],
                            },
                            {"expr": expr, "eval_time": "20m", "exp_samples": []},
                            {
                                "expr": expr,
                                "eval_time": "31m",
                                "exp_samples": [{"labels": changed, "value": 1}],
                            },
                            {"expr": expr, "eval_time": "38m", "exp_samples": []},
                        ],
                    }
                ],
            }
        )
    )
    out = _promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
