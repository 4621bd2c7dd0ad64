"""Shadow traffic, pure parts: which requests are mirrored (and to which path), reading the shadow's
answer, and the agreement numbers (checked against scikit-learn's metrics)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error

from onnxops.serving.mirror import Mirror, agreement, shadow_path, shadow_prediction


@pytest.mark.parametrize(
    "path,want",
    [
        ("/v2/models/iris/infer", "/v2/models/iris/infer"),
        ("/v2/models/iris/versions/3/infer", "/v2/models/iris/infer"),  # the shadow serves another version
        ("/v1/models/iris:predict", "/v1/models/iris:predict"),
        ("/v1/models/iris:feedback", None),
        ("/v2/models/iris/feedback", None),
        ("/metrics", None),
    ],
)
def test_shadow_path(path: str, want: str | None) -> None:
    assert shadow_path(path) == want


def test_shadow_prediction_from_v1_and_v2_answers() -> None:
    assert shadow_prediction({"predictions": [1, 2]}, None).tolist() == [1, 2]
    doc = {"outputs": [{"name": "probabilities", "data": [0.1]}, {"name": "label", "data": [2, 0]}]}
    assert shadow_prediction(doc, "label").tolist() == [2, 0]
    assert shadow_prediction({"error": "x"}, "label") is None


def test_agreement_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    n, equal, _ = agreement(a, b, classification=True)
    assert n == 200 and equal / n == pytest.approx(accuracy_score(a, b))
    x, y = rng.normal(size=(50, 1)).astype(np.float32), rng.normal(size=50)
    n, _, diff = agreement(x, y, classification=False)
    assert n == 50 and diff / n == pytest.approx(mean_absolute_error(y, x.astype(np.float64).ravel()))
    labels = np.array([b"cat", b"dog"], dtype=object)
    assert agreement(labels, np.array(["cat", "cow"]), classification=True)[:2] == (2, 1)
    assert agreement(a, b[:10], classification=True) == (0, 0, 0.0)  # shapes differ: nothing compared


def test_sampling_is_exact_and_bounded_without_a_loop() -> None:
    m = Mirror(
        "http://127.0.0.1:9",
        sample_rate=0.25,
        max_in_flight=1,
        timeout=1,
        model="m",
        version="1",
        inference_service="s",
    )
    for _ in range(8):  # off the event loop nothing is sent: the 2 sampled ones count as unsupported
        m.record("/v1/models/m:predict", {}, b"{}", None, None, True)
    assert m.stats.results["unsupported"] == 2 and m.in_flight == 0
    with pytest.raises(ValueError, match="http://host"):
        Mirror(
            "https://x",
            sample_rate=1,
            max_in_flight=1,
            timeout=1,
            model="m",
            version="1",
            inference_service="s",
        )
