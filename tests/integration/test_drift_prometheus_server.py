"""The PromQL path against a REAL Prometheus scraping REAL model-server processes (python -m onnxops.serving).

Two versions of an iris classifier serve traffic (v2 sees shifted inputs); the counts that
``fetch_prometheus`` computes per version equal each server's own exposition, parsed independently, and
the drift policy then tells the shifted version from the clean one. Then tenant isolation: two namespaces
and two InferenceServices serving the same model and version names, only the drifting one acts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from test_drift_prometheus_support import (
    Prometheus,
    assert_same,
    free_port,
    from_exposition,
    get,
    stop_process,
    wait,
)

from onnxops.drift.live import LiveCounts
from onnxops.drift.policy import PolicySpec, PriorState, ServedVersion, decide
from onnxops.drift.prometheus import fetch_prometheus
from onnxops.profile import ClassPrediction, Profile, numeric_feature

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]
MODEL = "iris"


def _bundle(tmp: Path) -> tuple[Path, Path, Profile]:
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    est = LogisticRegression(max_iter=1000).fit(X, y)
    onx = skl2onnx.to_onnx(est, X[:1], options={id(est): {"zipmap": False}}, target_opset=17)
    model = tmp / "model.onnx"
    model.write_bytes(onx.SerializeToString())
    pred = est.predict(X)
    profile = Profile(
        task="classification",
        rows=len(X),
        features=[numeric_feature(f"f{i}", i, X[:, i].astype(float)) for i in range(X.shape[1])],
        prediction=ClassPrediction(
            classes=["0", "1", "2"], counts=[int((pred == k).sum()) for k in range(3)]
        ),
    )
    prof = tmp / "profile.json"
    prof.write_text(profile.to_json())
    return model, prof, profile


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


class Server:
    def __init__(
        self, tmp: Path, version: str, model: Path, prof: Path, service: str = "iris", tag: str = ""
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ONNXOPS_")}
        env["ONNXOPS_INFERENCE_SERVICE"] = service  # as the operator sets it in the serving Deployment
        self.log = (tmp / f"server-{tag}{version}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "onnxops.serving",
                "--model-name",
                MODEL,
                "--model-version",
                version,
                "--model-uri",
                model.as_uri(),
                "--sha256",
                _sha(model),
                "--profile-uri",
                prof.as_uri(),
                "--profile-sha256",
                _sha(prof),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--grpc-port",
                "0",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}")
        try:
            return get(self.base + "/v2/health/ready") is not None
        except OSError:
            return False

    def infer(self, x: np.ndarray) -> None:
        body = json.dumps(
            {
                "inputs": [
                    {"name": "X", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
                ]
            }
        ).encode()
        req = urllib.request.Request(
            self.base + f"/v2/models/{MODEL}/infer", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Prometheus, dict[str, Server], Profile]]:
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus server is not installed (Debian package `prometheus`)")
    model, prof, profile = _bundle(tmp_path)
    started = {v: Server(tmp_path, v, model, prof) for v in ("1", "2")}
    prom: Prometheus | None = None
    try:
        for s in started.values():
            wait(s.ready, 60, "the model server")
        prom = Prometheus(tmp_path, [s.port for s in started.values()], MODEL)
        yield prom, started, profile
    finally:
        if prom is not None:
            prom.stop()
        for s in started.values():
            s.stop()


async def test_promql_counts_equal_the_servers_exposition(servers) -> None:
    prom, srv, profile = servers
    start = prom.zero_window_start()
    from sklearn.datasets import load_iris

    X = load_iris(return_X_y=True)[0].astype(np.float32)
    rng = np.random.default_rng(0)
    clean = X[rng.choice(len(X), 150)]
    shifted = clean + np.array([1.5, -0.8, 2.0, 0.9], dtype=np.float32)
    for i in range(0, 150, 30):  # a few batches each
        srv["1"].infer(clean[i : i + 30])
        srv["2"].infer(shifted[i : i + 30])
    texts = {v: get(s.base + "/metrics", timeout=30).decode() for v, s in srv.items()}
    live = {}
    for v in ("1", "2"):
        # each target is scraped at its own phase: evaluate exactly at this version's last scrape
        t = prom.last_sample(150.0, version=v)
        res = await fetch_prometheus(prom.url, MODEL, {"1": profile, "2": profile}, t - start, at=t)
        assert isinstance(res, dict), res
        lc = live[v] = res[v]
        assert isinstance(lc, LiveCounts), lc
        ref = from_exposition(texts[v], v)
        assert ref["rows"] == 150 and set(ref["bins"]) == {"f0", "f1", "f2", "f3"}
        assert_same(lc, ref)
    # and the policy, fed by that path, rolls the shifted canary back to the clean stable
    served = [
        ServedVersion("1", "stable", live["1"], profile),
        ServedVersion("2", "canary", live["2"], profile),
    ]
    d = decide(served, PolicySpec(failure_limit=1, min_samples=100), PriorState(), datetime.now(UTC))
    assert (d.action, d.rollback_from, d.rollback_to) == ("Rollback", "2", "1"), d.message


# (namespace, InferenceService, version, shifted inputs?): team-a's `iris` canary v2 drifts; team-b's `iris`
# and team-a's `iris-shadow` serve the SAME model and version names on clean inputs.
TENANTS = [
    ("team-a", "iris", "1", False),
    ("team-a", "iris", "2", True),
    ("team-b", "iris", "2", False),
    ("team-a", "iris-shadow", "2", False),
]


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[tuple[Prometheus, list[Server], Profile]]:
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus server is not installed (Debian package `prometheus`)")
    model, prof, profile = _bundle(tmp_path)
    started: list[Server] = []
    prom: Prometheus | None = None
    try:
        for ns, svc, v, _ in TENANTS:
            started.append(Server(tmp_path, v, model, prof, service=svc, tag=f"{ns}-{svc}-"))
        for s in started:
            wait(s.ready, 90, "the model server")
        # Prometheus attaches `namespace` to each target, as its Kubernetes discovery does
        prom = Prometheus(
            tmp_path,
            [s.port for s in started],
            MODEL,
            target_labels=[{"namespace": ns} for ns, *_ in TENANTS],
        )
        yield prom, started, profile
    finally:
        if prom is not None:
            prom.stop()
        for s in started:
            s.stop()


@pytest.mark.timeout(240)
async def test_two_namespaces_and_two_services_of_one_model_are_measured_apart(tenants) -> None:
    from onnxops.controller.metrics import DefaultMetricsProvider
    from onnxops.drift.evaluate import Served, evaluate

    prom, srv, profile = tenants
    from sklearn.datasets import load_iris

    X = load_iris(return_X_y=True)[0].astype(np.float32)
    clean = X[np.random.default_rng(1).choice(len(X), 150)]
    shifted = clean + np.array([1.5, -0.8, 2.0, 0.9], dtype=np.float32)
    rows = [150, 150, 120, 90]  # different volumes, so a mixed count cannot pass for a scoped one
    for (_, _, _, drifts), s, n in zip(TENANTS, srv, rows, strict=True):
        for i in range(0, n, 30):
            s.infer((shifted if drifts else clean)[i : i + 30])
    texts = [get(s.base + "/metrics", timeout=30).decode() for s in srv]
    for (ns, svc, v, _), n in zip(TENANTS, rows, strict=True):
        sel = f'onnxops_rows_total{{namespace="{ns}",inferenceservice="{svc}",version="{v}"}}'
        wait(
            lambda sel=sel, n=n: (r := prom.query(f"sum({sel})")) and float(r[0]["value"][1]) == n,
            30,
            f"Prometheus to scrape {sel} = {n}",
        )
    served = [Served("1", "stable", profile), Served("2", "canary", profile)]
    spec = PolicySpec(failure_limit=1, min_samples=50)
    decisions = {}
    for ns, svc in (("team-a", "iris"), ("team-b", "iris"), ("team-a", "iris-shadow")):
        # the window reaches back before the series existed: the counts are the servers' own, exactly
        d, live = await evaluate(
            model=MODEL,
            served=served,
            spec=spec,
            window="15m",
            prior=PriorState(),
            now=datetime.now(UTC),
            prometheus_url=prom.url,
            namespace=ns,
            service=svc,
        )
        decisions[(ns, svc)] = d
        idx = next(i for i, t in enumerate(TENANTS) if t[:3] == (ns, svc, "2"))
        lc = live.counts["2"]
        assert isinstance(lc, LiveCounts), lc
        assert_same(lc, from_exposition(texts[idx], "2"))  # this service's v2 only, nobody else's
        stats = await DefaultMetricsProvider(None, prom.url).request_stats(  # type: ignore[arg-type]
            namespace=ns, service=svc, model=MODEL, version=2, window_seconds=900
        )
        assert stats is not None and stats.requests == rows[idx] // 30
    a = decisions[("team-a", "iris")]
    assert (a.action, a.rollback_from, a.rollback_to) == ("Rollback", "2", "1"), a.message
    for key in (("team-b", "iris"), ("team-a", "iris-shadow")):
        assert decisions[key].action is None and decisions[key].verdicts["2"] == "NoDrift", decisions[key]
    # the control: a query by model and version alone (the old behaviour) sums every team's v2 together
    mixed = await fetch_prometheus(prom.url, MODEL, {"1": profile, "2": profile}, "15m")
    assert isinstance(mixed, dict) and mixed["2"].rows == 150 + 120 + 90  # type: ignore[union-attr]
