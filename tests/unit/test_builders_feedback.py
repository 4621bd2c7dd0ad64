"""The serving pods' feedback label files use the retrain template's target column, so a fromServing retrain
reads them as they are."""

from __future__ import annotations

from _operator_fixtures import isvc, mv

from onnxops.builders.deployment import deployment
from onnxops.serving.feedback import ENV_TARGET, FeedbackConfig
from onnxops.settings import Settings


def test_feedback_target_and_label_sink_follow_the_service() -> None:
    retrain = {
        "trainingJob": {
            "model": "iris",
            "dataset": {
                "target": "species",
                "fromServing": {
                    "service": "iris",
                    "window": "24h",
                    "labels": {"uri": "pvc://onnxops-artifacts/x/_labels/"},
                },
            },
            "estimator": {"className": "LogisticRegression"},
        }
    }
    d = deployment(isvc(logging={"sampleRate": 1.0}, retrain=retrain), mv(2), 1, Settings())
    env = {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[ENV_TARGET] == "species"
    cfg = FeedbackConfig.from_env(env, env["ONNXOPS_CAPTURE_SINK_URI"])
    assert cfg.target == "species"
    assert cfg.labels_uri == env["ONNXOPS_CAPTURE_SINK_URI"].rstrip("/") + "/_labels/"
    d = deployment(isvc(logging={"sampleRate": 1.0}), mv(2), 1, Settings())
    names = {e["name"] for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert ENV_TARGET not in names
