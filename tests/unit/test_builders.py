"""Builders: the child manifests the operator creates (pure)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from _operator_fixtures import isvc, mv, tj

from onnxops.builders import hpa, httproute, job, labels, names, render
from onnxops.builders.deployment import deployment
from onnxops.builders.service import service, version_service
from onnxops.settings import PVC_MOUNT_ROOT, Settings

REPO = Path(__file__).resolve().parents[2]
# The numeric USER the images run as (read from the Dockerfiles, not from the builders).
IMAGE_USER = int(re.search(r"^USER (\d+)", (REPO / "images/serving.Dockerfile").read_text(), re.M).group(1))

S = Settings()


def _container(obj):
    return obj["spec"]["template"]["spec"]["containers"][0]


def _env(c):
    return {e["name"]: e.get("value") for e in c["env"]}


def test_names_are_deterministic_and_fit_63():
    assert names.training_job("iris") == "iris-train"
    assert names.verification_job("iris-v3") == "iris-v3-verify"
    assert names.deployment("iris", 12) == "iris-v12"
    long = "x" * 60
    n = names.training_job(long)
    assert len(n) <= 63 and n == names.training_job(long) and n != names.training_job("y" * 60)
    assert names.url("iris", "ml") == "http://iris.ml.svc.cluster.local"


def test_training_job_contract_and_security():
    body = tj(
        output={"uri": "pvc://artifacts/models", "credentialsSecret": {"name": "s3"}},
        dataset={"uri": "pvc://data/iris.csv", "target": "y", "credentialsSecret": {"name": "ds"}},
        suspend=True,
        activeDeadlineSeconds=60,
        ttlSecondsAfterFinished=30,
        backoffLimit=4,
        template={
            "nodeSelector": {"pool": "cpu"},
            "serviceAccountName": "trainer",
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "resources": {"requests": {"cpu": "1"}},
            "env": [{"name": "A", "value": "1"}],
        },
    )
    j = job.training_job(body, S)
    assert j["metadata"]["name"] == "iris-train"
    assert j["metadata"]["ownerReferences"][0] == {
        "apiVersion": "onnxops.dev/v1alpha1",
        "kind": "TrainingJob",
        "name": "iris",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert j["metadata"]["labels"][labels.TRAINING_JOB] == "iris"
    assert j["metadata"]["labels"][labels.MODEL] == "iris"
    assert j["metadata"]["labels"][labels.MANAGED_BY] == "onnxops"
    spec = j["spec"]
    assert (
        spec["suspend"],
        spec["activeDeadlineSeconds"],
        spec["ttlSecondsAfterFinished"],
        spec["backoffLimit"],
    ) == (True, 60, 30, 4)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"pool": "cpu"} and pod["serviceAccountName"] == "trainer"
    assert pod["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = _container(j)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    args = c["args"]
    assert json.loads(args[args.index("--spec-json") + 1]) == body["spec"]
    assert args[args.index("--model") + 1] == "iris" and args[args.index("--run-id") + 1] == "uid-1"
    assert args[args.index("--output-uri") + 1] == "pvc://artifacts/models"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = _env(c)
    assert env["ONNXOPS_TERMINATION_LOG"] == "/dev/termination-log"
    assert env["ONNXOPS_PVC_ROOT"] == PVC_MOUNT_ROOT and env["A"] == "1"
    assert c["envFrom"] == [{"secretRef": {"name": "ds"}}, {"secretRef": {"name": "s3"}}]
    assert c["resources"] == {"requests": {"cpu": "1"}}
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"/tmp", f"{PVC_MOUNT_ROOT}/artifacts", f"{PVC_MOUNT_ROOT}/data"}
    claims = sorted(
        v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    )
    assert claims == ["artifacts", "data"]


def test_training_job_defaults_output_to_settings_store():
    c = _container(job.training_job(tj(), S))
    assert c["args"][c["args"].index("--output-uri") + 1] == S.default_storage_uri
    assert c["image"] == S.trainer_image
    assert "envFrom" not in c


def test_verification_job_runs_server_verify_only_with_signature():
    m = mv(3)
    j = job.verification_job(m, S)
    assert j["metadata"]["name"] == "iris-v3-verify"
    assert j["metadata"]["ownerReferences"][0]["kind"] == "ModelVersion"
    c = _container(j)
    assert c["image"] == S.serving_image and "--verify-only" in c["args"]
    a = c["args"]
    assert a[a.index("--sha256") + 1] == m["spec"]["artifact"]["sha256"]
    assert a[a.index("--model-uri") + 1] == m["spec"]["artifact"]["uri"]
    assert json.loads(_env(c)["ONNXOPS_EXPECT_SIGNATURE_JSON"]) == m["spec"]["signature"]


def test_deployment_env_probes_labels():
    d = deployment(isvc(), mv(2), 3, S)
    assert d["metadata"]["name"] == "iris-v2" and d["spec"]["replicas"] == 3
    assert d["spec"]["selector"]["matchLabels"] == {labels.INFERENCE_SERVICE: "iris", labels.VERSION: "2"}
    tmpl = d["spec"]["template"]
    assert tmpl["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    for k, v in d["spec"]["selector"]["matchLabels"].items():
        assert tmpl["metadata"]["labels"][k] == v
    c = _container(d)
    env = _env(c)
    assert env["ONNXOPS_MODEL_URI"].endswith("model.onnx") and env["ONNXOPS_MODEL_SHA256"] == "a" * 64
    assert env["ONNXOPS_PROFILE_SHA256"] == "b" * 64 and env["ONNXOPS_MODEL_VERSION"] == "2"
    # the server labels its metrics with its InferenceService (tenant isolation of the queries)
    assert env["ONNXOPS_INFERENCE_SERVICE"] == "iris"
    # a scaled-down pod keeps serving (not ready) for 5 s, within the default 30 s grace period with the
    # server's 20 s drain: a rollout fails no request that a Service still routes to it
    assert env["ONNXOPS_SHUTDOWN_DELAY_SECONDS"] == "5"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment(isvc(), mv(2), None, S)["spec"].get("replicas") is None


def test_service_selects_all_versions_and_version_service_one():
    s = service(isvc())
    assert s["spec"]["selector"] == {labels.INFERENCE_SERVICE: "iris"}
    assert s["spec"]["ports"][0]["port"] == 80 and s["spec"]["ports"][0]["targetPort"] == 8080
    vs = version_service(isvc(), 4)
    assert vs["metadata"]["name"] == "iris-v4" and vs["spec"]["selector"][labels.VERSION] == "4"


def test_hpa():
    h = hpa.hpa(isvc(), 2, 2, 5, 60)
    assert h["spec"]["scaleTargetRef"]["name"] == "iris-v2"
    assert (h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) == (2, 5)
    assert h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


def test_httproute_rewrites_only_our_backend_refs():
    route = {
        "spec": {
            "rules": [
                {"backendRefs": [{"name": "iris", "port": 80}, {"name": "other", "port": 80, "weight": 5}]},
                {"backendRefs": [{"name": "unrelated", "port": 80}]},
            ]
        }
    }
    patch = httproute.route_patch(route, "iris", {1: 80, 2: 20})
    assert patch is not None
    rules = patch["spec"]["rules"]
    assert rules[0]["backendRefs"] == [
        {"name": "other", "port": 80, "weight": 5},
        {"name": "iris-v1", "port": 80, "weight": 80},
        {"name": "iris-v2", "port": 80, "weight": 20},
    ]
    assert rules[1] == route["spec"]["rules"][1]
    # applying the patch converges: no second write
    assert httproute.route_patch({"spec": {"rules": rules}}, "iris", {1: 80, 2: 20}) is None


def test_render_cli(tmp_path, capsys):
    f = tmp_path / "m.yaml"
    f.write_text(yaml.safe_dump_all([tj(), mv(1), mv(2), isvc(version=1)]))
    assert render.main(["-f", str(f)]) == 0
    kinds = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert kinds == [
        ("Job", "iris-train"),
        ("Job", "iris-v1-verify"),
        ("Job", "iris-v2-verify"),
        ("Service", "iris"),
        ("Deployment", "iris-v1"),
    ]


def test_render_cli_reports_missing_version(tmp_path, capsys):
    f = tmp_path / "m.yaml"
    f.write_text(yaml.safe_dump(isvc(version=7)))
    assert render.main(["-f", str(f)]) == 1
    assert "version 7" in capsys.readouterr().err


@pytest.mark.parametrize("uri,claim", [("pvc://a-b/x/y", "a-b"), ("s3://b/k", None), ("file:///x", None)])
def test_pvc_claim(uri, claim):
    from onnxops.builders.pod import pvc_claim

    assert pvc_claim(uri) == claim


S3 = Settings(
    default_storage_uri="s3://models/onnxops",
    s3_endpoint_url="http://minio.storage:9000",
    s3_region="eu-west-1",
    default_credentials_secret="onnxops-s3",
)


def _env(c):
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def test_default_s3_store_gets_endpoint_region_and_default_credentials() -> None:
    """A TrainingJob without spec.output writes to the default S3 store: the pod gets the endpoint/region
    as boto3's standard variables and the default credentials Secret by envFrom (never its values)."""
    t = tj()
    t["spec"].pop("output", None)
    t["spec"]["dataset"] = {"uri": "sklearn://iris"}
    c = _container(job.training_job(t, S3))
    env = _env(c)
    assert env["AWS_ENDPOINT_URL"] == "http://minio.storage:9000" and env["AWS_REGION"] == "eu-west-1"
    assert c["envFrom"] == [{"secretRef": {"name": "onnxops-s3"}}]
    assert "s3://models/onnxops" in c["args"]


def test_explicit_credentials_secret_wins_and_pvc_needs_no_s3_settings() -> None:
    t = tj()
    t["spec"]["output"] = {"uri": "s3://team/models", "credentialsSecret": {"name": "team-s3"}}
    c = _container(job.training_job(t, S3))
    assert c["envFrom"] == [{"secretRef": {"name": "team-s3"}}]
    t["spec"]["output"] = {"uri": "pvc://onnxops-artifacts/models"}
    t["spec"]["dataset"] = {"uri": "sklearn://iris"}
    c = _container(job.training_job(t, S3))
    assert "envFrom" not in c and "AWS_ENDPOINT_URL" not in _env(c)


def test_serving_and_verification_pods_read_s3_artifacts_with_default_credentials() -> None:
    m = mv(1)
    m["spec"]["artifact"] = {**m["spec"]["artifact"], "uri": "s3://models/onnxops/iris/1/model.onnx"}
    m["spec"].pop("profile", None)
    for c in (_container(job.verification_job(m, S3)), _container(deployment(isvc(), m, 1, S3))):
        assert c["envFrom"] == [{"secretRef": {"name": "onnxops-s3"}}]
        assert _env(c)["AWS_ENDPOINT_URL"] == "http://minio.storage:9000"


def test_training_job_fails_at_once_on_final_exit_codes_and_ignores_disruptions():
    """The documented table: 2 bad spec/input, 3 gate, 4 parity, 6 not found end the Job; 1 crash,
    5 storage unreachable, 137 killed are retried; a disrupted pod does not count."""
    from onnxops.local.runner.podfailure import decide_pod_failure

    policy = job.training_job(tj(), S)["spec"]["podFailurePolicy"]
    assert policy == {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [2, 3, 4, 6]},
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
    }

    def failed(code: int, conditions: list | None = None) -> dict:
        return {
            "metadata": {"name": "p"},
            "status": {
                "phase": "Failed",
                "conditions": conditions or [],
                "containerStatuses": [{"name": "trainer", "state": {"terminated": {"exitCode": code}}}],
            },
        }

    actions = {code: decide_pod_failure(policy, failed(code)).action for code in (1, 2, 3, 4, 5, 6, 137)}
    assert actions == {
        1: "Count",
        2: "FailJob",
        3: "FailJob",
        4: "FailJob",
        5: "Count",
        6: "FailJob",
        137: "Count",
    }
    drained = failed(143, [{"type": "DisruptionTarget", "status": "True"}])
    assert decide_pod_failure(policy, drained).action == "Ignore"
    verify_policy = job.verification_job(mv(3), S)["spec"]["podFailurePolicy"]
    assert verify_policy == {"rules": [policy["rules"][1]]}


def test_training_pods_get_default_resources_and_jobs_a_default_deadline():
    from onnxops.settings import Settings

    j = job.training_job(tj(), S)
    assert _container(j)["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "4Gi"},
    }  # never BestEffort
    assert j["spec"]["activeDeadlineSeconds"] == 86400
    mine = tj(activeDeadlineSeconds=60, template={"resources": {"requests": {"cpu": "4"}}})
    own = job.training_job(mine, S)
    assert own["spec"]["activeDeadlineSeconds"] == 60
    assert _container(own)["resources"] == {"requests": {"cpu": "4"}}
    env = {
        "ONNXOPS_JOB_DEADLINE_SECONDS": "0",
        "ONNXOPS_TRAINER_RESOURCES": '{"requests": {"memory": "2Gi"}, "limits": {"memory": "2Gi"}}',
    }
    s = Settings.from_env(env)
    j = job.training_job(tj(), s)
    assert "activeDeadlineSeconds" not in j["spec"]
    assert _container(j)["resources"] == {"requests": {"memory": "2Gi"}, "limits": {"memory": "2Gi"}}
    for bad, fragment in (
        ({"ONNXOPS_JOB_DEADLINE_SECONDS": "1h"}, "ONNXOPS_JOB_DEADLINE_SECONDS"),
        ({"ONNXOPS_JOB_DEADLINE_SECONDS": "-5"}, "must be >= 0"),
        ({"ONNXOPS_TRAINER_RESOURCES": "cpu=1"}, "ONNXOPS_TRAINER_RESOURCES must be JSON"),
        ({"ONNXOPS_TRAINER_RESOURCES": '{"cpu": "1"}'}, "requests and/or limits"),
    ):
        with pytest.raises(ValueError, match=fragment):
            Settings.from_env(bad)
