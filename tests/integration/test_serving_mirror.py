"""Shadow traffic without a mesh (issue 15): the stable server mirrors answered requests to a shadow server
and compares predictions. Two real servers: the agreement counted equals scikit-learn's own comparison of
the two estimators on the rows sent; a shadow that errors or is down is counted, and every client request
is still answered 200."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.tree import DecisionTreeClassifier
from test_serving_support import (
    Bundle,
    ServerThread,
    _write,
    post_json,
    request,
    train_classifier,
    v2_body,
)

from onnxops.profile import ClassPrediction


@pytest.fixture(scope="module")
def stable(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return train_classifier(tmp_path_factory.mktemp("stable"))


@pytest.fixture(scope="module")
def challenger(stable: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """Another model of the same name (the new version): a depth-1 tree, which disagrees on some rows."""
    y = stable.estimator.predict(stable.X)
    est = DecisionTreeClassifier(max_depth=1, random_state=0).fit(stable.X, y)
    pred = est.predict(stable.X)
    classes = [str(c) for c in est.classes_]
    return _write(
        tmp_path_factory.mktemp("shadow"),
        "iris",
        est,
        stable.X,
        ClassPrediction(classes=classes, counts=[int((pred == c).sum()) for c in est.classes_]),
        "classification",
    )


@pytest.fixture(scope="module")
def shadow(challenger: Bundle) -> Iterator[ServerThread]:
    with ServerThread(challenger.config(model_version="4")) as s:
        yield s


def shadow_metrics(port: int) -> dict[str, float]:
    _, _, body = request(port, "GET", "/metrics")
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if s.name.startswith("onnxops_shadow_") and not s.name.endswith(("_bucket", "_created")):
                key = s.name + (f"[{s.labels['result']}]" if "result" in s.labels else "")
                out[key] = s.value
    return out


def wait_for(port: int, key: str, want: float, timeout: float = 20) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        m = shadow_metrics(port)
        if m.get(key, 0) >= want or time.monotonic() > deadline:
            return m
        time.sleep(0.05)


def test_mirrored_predictions_are_compared(stable: Bundle, challenger: Bundle, shadow: ServerThread) -> None:
    rng = np.random.default_rng(1)
    x = stable.X[rng.integers(0, len(stable.X), 60)]
    with ServerThread(stable.config(mirror_url=f"http://127.0.0.1:{shadow.port}")) as srv:
        for i in range(0, 60, 6):  # v2 and v1 requests of 6 rows each
            chunk = x[i : i + 6]
            if i % 12:
                status, doc = post_json(srv.port, "/v1/models/iris:predict", {"instances": chunk.tolist()})
            else:
                status, doc = post_json(srv.port, "/v2/models/iris/versions/3/infer", v2_body(chunk))
            assert status == 200, doc
        m = wait_for(srv.port, "onnxops_shadow_requests_total[ok]", 10)
    assert m["onnxops_shadow_requests_total[ok]"] == 10
    # reference: scikit-learn's predictions of both estimators on the same rows
    agreed = int(np.sum(stable.estimator.predict(x) == challenger.estimator.predict(x)))
    assert 0 < agreed < 60
    assert m["onnxops_shadow_rows_compared_total"] == 60
    assert m["onnxops_shadow_rows_agreed_total"] == agreed
    assert m["onnxops_shadow_request_duration_seconds_count"] == 10
    # the shadow answered them itself (its own request counter)
    _, _, body = request(shadow.port, "GET", "/metrics")
    assert "onnxops_requests_total{" in body.decode()


def test_failing_or_missing_shadow_never_fails_a_client(stable: Bundle, tmp_path: Path) -> None:
    # a port where nothing listens (the shadow down) and, below, a shadow that answers errors
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    x = stable.X[:4]
    down = stable.config(mirror_url=f"http://127.0.0.1:{dead}", mirror_timeout_seconds=0.5)
    with ServerThread(down) as srv:
        for _ in range(5):
            status, doc = post_json(srv.port, "/v1/models/iris:predict", {"instances": x.tolist()})
            assert status == 200 and doc["predictions"] == stable.estimator.predict(x).tolist()
        m = wait_for(srv.port, "onnxops_shadow_requests_total[unreachable]", 5)
    assert m["onnxops_shadow_requests_total[unreachable]"] == 5
    # a shadow of another model name: every mirrored request gets 404 there; clients still get 200
    other = train_classifier(tmp_path)
    with (
        ServerThread(other.config(model_name="other")) as bad,
        ServerThread(stable.config(mirror_url=f"http://127.0.0.1:{bad.port}", mirror_sample_rate=0.5)) as srv,
    ):
        for _ in range(6):
            status, _ = post_json(srv.port, "/v2/models/iris/infer", v2_body(x))
            assert status == 200
        m = wait_for(srv.port, "onnxops_shadow_requests_total[error]", 3)
    assert m["onnxops_shadow_requests_total[error]"] == 3  # a sample rate of 0.5: every second request
    assert m.get("onnxops_shadow_rows_compared_total", 0) == 0
