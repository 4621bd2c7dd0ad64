"""The demo's pieces that do not need the whole loop: its data (and the drift premises the story rests on,
checked with an independent PSI), the traffic generator against a local HTTP server, Prometheus targets,
the summary, the CLI's argument errors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aiohttp import web
from scipy import stats as sps
from sklearn.datasets import load_iris

from onnxops.demo import data, keep_instructions, main
from onnxops.demo.env import operator_env, process_alive, scrape_targets
from onnxops.demo.observe import drift_line, performance_line
from onnxops.demo.summary import decisions, last_live, last_scores, render, table
from onnxops.demo.traffic import FeedbackSender, TrafficGenerator, infer_body, row_ids


# ---- data ------------------------------------------------------------------------------------------------
def test_clean_world_is_scikit_learns_iris() -> None:
    iris = load_iris()
    w = data.clean()
    np.testing.assert_allclose(w.X, iris.data, atol=1e-9)
    assert (w.y == iris.target).all()


def test_written_data_sets_parse_with_pandas_and_are_deterministic(tmp_path: Path) -> None:
    a = data.write_datasets(tmp_path / "a")
    b = data.write_datasets(tmp_path / "b")
    iris = load_iris()
    assert set(a) == {data.SKEWED_CSV}  # the shifted world is not staged: the retrain reads served traffic
    for name in (data.SKEWED_CSV,):
        assert a[name].read_bytes() == b[name].read_bytes()
        frame = pd.read_csv(a[name])
        assert list(frame.columns) == [*data.FEATURES, data.TARGET]
        assert len(frame) == 150
        assert sorted(frame[data.TARGET].unique()) == list(data.SPECIES)
        x = frame[list(data.FEATURES)].to_numpy()
        np.testing.assert_allclose(x * 10, np.round(x * 10), atol=1e-9)  # on the 0.1 cm grid
    np.testing.assert_allclose(data.shifted().X, iris.data + data.SHIFT, atol=1e-9)  # a pure shift of iris
    skewed = pd.read_csv(a[data.SKEWED_CSV])[list(data.FEATURES)].to_numpy()
    np.testing.assert_allclose(skewed, iris.data * data.SKEW_SCALE + data.SKEW_OFFSET, atol=0.05 + 1e-9)


def test_data_cli_writes_the_files(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "onnxops.demo.data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert {p.name for p in tmp_path.iterdir()} == {data.SKEWED_CSV}
    bad = subprocess.run(
        [sys.executable, "-m", "onnxops.demo.data"], capture_output=True, text=True, timeout=120, check=False
    )
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_sampled_rows_look_like_their_world() -> None:
    rng = np.random.default_rng(1)
    w = data.clean()
    rows = data.sample_rows(w, 20000, rng)
    assert rows.shape == (20000, 4) and (rows > 0).all()
    np.testing.assert_allclose(rows * 10, np.round(rows * 10), atol=1e-9)
    np.testing.assert_allclose(rows.mean(axis=0), w.X.mean(axis=0), atol=0.03)
    np.testing.assert_allclose(rows.std(axis=0), w.X.std(axis=0), rtol=0.05)
    with pytest.raises(ValueError, match="n must be >= 1"):
        data.sample_rows(w, 0, rng)


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI as issue 7 defines it, written out independently: type-7 quantile edges at 10..90 % of the
    reference, right-closed bins, shares floored at 1e-4."""
    edges = np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9)))
    p = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=len(edges) + 1) / len(reference)
    q = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1) / len(current)
    p, q = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
    return float(np.sum((q - p) * np.log(q / p)))


def _worst_psi(reference: np.ndarray, current: np.ndarray) -> float:
    return max(_psi(reference[:, j].astype(np.float32), current[:, j].astype(np.float32)) for j in range(4))


def test_the_drift_premises_of_the_story() -> None:
    """Clean traffic against a clean baseline stays well under the demo's threshold (0.2) at the window
    sizes it sees; against the skewed baseline (v2) and shifted traffic against the clean one, far over."""
    rng = np.random.default_rng(7)
    clean, skewed, shifted = data.clean(), data.skewed(), data.shifted()
    train = rng.permutation(150)[:112]  # a 75 % training split, like the trainer's
    no_drift = [_worst_psi(clean.X[train], data.sample_rows(clean, 400, rng)) for _ in range(50)]
    assert max(no_drift) < 0.2
    assert min(_worst_psi(skewed.X[train], data.sample_rows(clean, 400, rng)) for _ in range(20)) > 1.0
    assert min(_worst_psi(clean.X[train], data.sample_rows(shifted, 400, rng)) for _ in range(20)) > 1.0
    assert max(_worst_psi(shifted.X[train], data.sample_rows(shifted, 400, rng)) for _ in range(50)) < 0.2


def test_the_skewed_world_differs_by_a_two_sample_test() -> None:
    rng = np.random.default_rng(3)
    live = data.sample_rows(data.clean(), 300, rng)
    assert sps.ks_2samp(live[:, 1], data.skewed().X[:, 1]).pvalue < 1e-6
    assert sps.ks_2samp(live[:, 1], data.clean().X[:, 1]).pvalue > 1e-3


# ---- traffic ---------------------------------------------------------------------------------------------
def test_infer_body_is_an_oip_v2_request() -> None:
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.0, 2.2, 5.0, 1.5]])
    body = infer_body(rows)
    [inp] = body["inputs"]
    assert inp["name"] == "input" and inp["datatype"] == "FP32" and inp["shape"] == [2, 4]
    assert inp["data"] == pytest.approx(rows.ravel().tolist())
    json.dumps(body)  # plain JSON types


async def test_the_generator_labels_the_rows_it_sent_by_the_ids_the_server_returned() -> None:
    """Each request carries an id; an answer echoing it gives its rows' feedback items (``<id>`` or
    ``<id>:<row>``, the ids the server captures them under), an answer with another id none. The world's
    classes sit 10 cm apart, so a row's class is known from its values, independently of the generator."""
    sent: dict[str, np.ndarray] = {}
    echoed: list[str] = []  # requests answered with their own id (the others with another one)

    async def infer(request: web.Request) -> web.Response:
        body = await request.json()
        [inp] = body["inputs"]
        sent[body["id"]] = np.asarray(inp["data"], dtype=float).reshape(inp["shape"])
        if len(sent) % 5:
            echoed.append(body["id"])
        return web.json_response(
            {"id": body["id"] if echoed[-1:] == [body["id"]] else "other", "outputs": []}
        )

    app = web.Application()
    app.router.add_post("/v2/models/iris/infer", infer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    y = np.repeat(np.arange(3), 5)
    world = data.World("toy", np.repeat((10.0 * y + 1)[:, None], 4, axis=1), y)
    gen = TrafficGenerator(
        f"http://127.0.0.1:{runner.addresses[0][1]}", "iris", {"toy": world}, "toy", rate=80, feedback=True
    )
    try:
        gen.start()
        await asyncio.sleep(1.2)
    finally:
        await gen.stop()
        await runner.cleanup()
    items = gen.take_items()
    labels = pd.DataFrame(
        {"id": [i["id"] for i in items], data.TARGET: [data.SPECIES[i["truth"]] for i in items]}
    )
    assert labels["id"].is_unique and gen.take_items() == []
    truth = {
        rid: data.SPECIES[round(r[0] / 10)]
        for req, rows in sent.items()
        for rid, r in zip(row_ids(req, len(rows)), rows, strict=True)
    }
    # the last requests may be cut off by stop() before their answer is read: they get no label
    assert 0 < gen.id_mismatches <= len(sent) - len(echoed)
    labelled = {rid.split(":")[0] for rid in labels["id"]}
    assert labelled <= set(echoed) and len(labelled) >= len(echoed) - 16 > 40
    assert all(set(row_ids(req, len(sent[req]))) <= set(labels["id"]) for req in labelled)
    assert all(truth[rid] == sp for rid, sp in zip(labels["id"], labels[data.TARGET], strict=True))
    assert row_ids("r", 1) == ["r"] and row_ids("r", 2) == ["r:0", "r:1"]


async def test_traffic_generator_sends_rows_of_the_current_world() -> None:
    received: list[np.ndarray] = []
    fail = {"on": False}

    async def infer(request: web.Request) -> web.Response:
        if fail["on"]:
            return web.Response(status=503, text="no ready endpoints")
        [inp] = (await request.json())["inputs"]
        received.append(np.asarray(inp["data"], dtype=float).reshape(inp["shape"]))
        return web.json_response({"outputs": []})

    app = web.Application()
    app.router.add_post("/v2/models/iris/infer", infer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    gen = TrafficGenerator(
        f"http://127.0.0.1:{port}",
        "iris",
        {"clean": data.clean(), "shifted": data.shifted()},
        "clean",
        rate=80,
    )
    try:
        gen.start()
        await asyncio.sleep(1.0)
        n_clean = len(received)
        gen.set_world("shifted")
        await asyncio.sleep(1.0)
        fail["on"] = True
        await asyncio.sleep(0.3)
    finally:
        await gen.stop()
        await runner.cleanup()
    assert n_clean >= 30 and len(received) - n_clean >= 30
    clean_rows, shifted_rows = np.vstack(received[:n_clean]), np.vstack(received[n_clean + 2 :])
    assert all(1 <= len(r) <= 8 and r.shape[1] == 4 for r in received)
    assert shifted_rows[:, 2].mean() - clean_rows[:, 2].mean() > 0.8  # petal length grew by 1.2 cm
    st = gen.stats
    assert st.codes["200"] == len(received) and st.errors >= 5 and "503" in st.error_samples
    assert st.rows == sum(len(r) for r in received) == st.by_world["clean"] + st.by_world["shifted"]
    with pytest.raises(ValueError, match="unknown world"):
        gen.set_world("mars")


# ---- env, summary, CLI -----------------------------------------------------------------------------------
def test_scrape_targets_are_running_pods_with_an_ip() -> None:
    def pod(name: str, ip: str | None, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
        md: dict[str, Any] = {
            "name": name,
            "namespace": "default",
            "labels": {"onnxops.dev/inference-service": "iris"},
        }
        if deleting:
            md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        return {"metadata": md, "status": {"phase": phase, **({"podIP": ip} if ip else {})}}

    pods = [
        pod("b", "127.0.1.3"),
        pod("a", "127.0.1.2"),
        pod("c", None),
        pod("d", "127.0.1.9", "Pending"),
        pod("e", "127.0.1.8", deleting=True),
    ]
    assert scrape_targets(pods, 8080) == [
        ("127.0.1.2:8080", {"namespace": "default", "pod": "a"}),
        ("127.0.1.3:8080", {"namespace": "default", "pod": "b"}),
    ]


def test_operator_env_points_at_the_runtime(tmp_path: Path) -> None:
    env = operator_env(tmp_path / "kubeconfig", "", tmp_path / "pvc", base={"PATH": "/bin"})
    assert env["KUBECONFIG"] == str(tmp_path / "kubeconfig") and env["ONNXOPS_PROMETHEUS_URL"] == ""
    assert env["ONNXOPS_PVC_ROOT"] == str(tmp_path / "pvc") and env["PATH"] == "/bin"
    assert env["ONNXOPS_DEFAULT_STORAGE_URI"] == "pvc://onnxops-artifacts/models"
    assert "onnxops-trainer" in env["ONNXOPS_TRAINER_IMAGE"]
    assert "onnxops-serving" in env["ONNXOPS_SERVING_IMAGE"]


def test_process_alive() -> None:
    assert process_alive(os.getpid())
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert not process_alive(p.pid)


def _doc() -> dict[str, Any]:
    status = {
        "stableVersion": 3,
        "rollback": {"from": 2, "to": 1, "reason": "DriftDetected", "scores": {"v2": 5.5, "v1": 0.07}},
        "retrain": {"trainingJob": "iris-retrain-1", "reason": "AllVersionsDrifted"},
        "history": [
            {"action": "Deployed", "version": 1},
            {"action": "Aborted", "version": 2},
            {"action": "Promoted", "version": 3},
        ],
    }

    def lineage(uri: str) -> dict[str, Any]:
        return {"dataset": {"uri": uri}, "estimator": {"className": "LR"}}

    mv = [
        {
            "name": f"iris-v{v}",
            "spec": {"version": v, "metrics": {"accuracy": 0.9 + v / 100}, "lineage": lineage(u)},
            "status": {"phase": "Ready", **({"rejected": True} if v == 2 else {})},
        }
        for v, u in ((1, "sklearn://iris"), (2, "pvc://x/skewed.csv"), (3, "pvc://x/traffic/"))
    ]
    mv[2]["spec"]["lineage"]["dataset"]["fromServing"] = {
        "service": "iris",
        "rowsCaptured": 624,
        "rowsLabelled": 601,
        "rowsUsed": 600,
    }
    evals = [
        {"drift": {"versions": {"1": 0.05}}},
        {"drift": {"versions": {"1": 0.07, "2": 5.5}}},
        {"drift": {"versions": {"1": 4.0}}},
        {"drift": {"versions": {"3": 0.04}}},
    ]
    return {
        "objects": {"inferenceServices": [{"status": status}], "modelVersions": mv},
        "driftEvaluations": evals,
        "steps": [{"step": 1, "title": "train", "ok": True, "seconds": 12.0}],
        "detection": {"rollbackSeconds": 9.0, "retrainSeconds": 8.0},
        "traffic": {"requests": 10},
        "durationSeconds": 100.0,
    }


def test_summary_scores_decisions_and_table() -> None:
    doc = _doc()
    assert last_scores(doc["driftEvaluations"]) == {"1": (4.0, 4.0), "2": (5.5, 5.5), "3": (0.04, 0.04)}
    assert decisions(doc["objects"]["inferenceServices"][0]["status"]) == {
        1: ["Deployed"],
        2: ["Aborted"],
        3: ["Promoted"],
    }
    text = render(doc)
    lines = text.splitlines()
    v2 = next(line for line in lines if line.startswith("v2 "))
    for part in ("pvc://x/skewed.csv", "0.920", "5.500", "Aborted", "rejected"):
        assert part in v2
    assert "rollback: v2 -> v1 (DriftDetected)" in text and "iris-retrain-1" in text
    v3 = next(line for line in lines if line.startswith("v3 "))
    assert "served traffic of iris: 624 captured, 601 labelled, 600 used" in v3 and "pvc://" not in v3
    t = table([["a", "bbb"]], ["x", "y"]).splitlines()
    assert t == ["x  y  ", "-  ---", "a  bbb"]


def test_drift_line() -> None:
    line = drift_line(
        {
            "versions": {"2": 5.5, "1": 0.07},
            "verdict": "Drift",
            "version": 2,
            "samples": 400,
            "consecutiveBreaches": 2,
        }
    )
    assert line.startswith("drift check: PSI v1 0.070, v2 5.500 -> Drift") and "400 rows" in line


def test_keep_instructions_name_the_kubeconfig_and_the_proxy(tmp_path: Path) -> None:
    text = keep_instructions(tmp_path / "kubeconfig", "http://127.0.0.1:5555")
    assert f"export KUBECONFIG={tmp_path / 'kubeconfig'}" in text
    assert "get onnxops" in text and "describe oisvc iris" in text and "logs -l" in text
    assert "curl -s http://127.0.0.1:5555/v2/models/iris/infer" in text


@pytest.mark.parametrize(
    "argv, message",
    [(["--rate", "0"], "--rate must be > 0"), (["--examples", "/nonexistent-dir"], "not a directory")],
)
def test_cli_argument_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "onnxops", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0
    for flag in ("--keep", "--state-dir", "--cluster", "--no-prometheus", "--json-summary", "--scenario"):
        assert flag in out.stdout


async def test_a_wait_ends_early_when_the_environment_broke() -> None:
    from onnxops.demo.observe import Observer
    from onnxops.kube.client import KubeClient

    obs = Observer(KubeClient("http://127.0.0.1:1"), "default", "iris", lambda m: None)
    obs.health = lambda: "the operator exited with 1"
    with pytest.raises(RuntimeError, match=r"operator exited with 1.*waiting for v1"):
        await obs.wait("v1", lambda: False, timeout=30)
    obs.health = lambda: None
    with pytest.raises(TimeoutError, match="waiting for v2"):
        await obs.wait("v2", lambda: False, timeout=0.1)
    assert await obs.wait("v3", lambda: "yes", timeout=0.1) == "yes"


def test_cluster_datasets_job_writes_onto_the_artifacts_pvc() -> None:
    from onnxops.demo.cluster import datasets_job

    job = datasets_job("demo", "ghcr.io/onnxops/onnxops-trainer:1")
    pod = job["spec"]["template"]["spec"]
    [c] = pod["containers"]
    [mount] = c["volumeMounts"]
    assert c["command"][:3] == ["python", "-m", "onnxops.demo.data"]
    assert c["command"][3] == f"{mount['mountPath']}/datasets"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "onnxops-artifacts"
    assert job["metadata"]["namespace"] == "demo" and pod["securityContext"]["runAsNonRoot"] is True


# ---- the concept-drift scenario's pieces ---------------------------------------------------------------
def test_the_concept_change_relabels_long_petals_only() -> None:
    x, y = load_iris(return_X_y=True)
    new = data.relabelled(x, y)
    changed = new != y
    assert changed.any() and (x[changed, 2] > data.RELABEL_PETAL_CM).all() and (new[changed] == 1).all()
    assert (new[x[:, 2] <= data.RELABEL_PETAL_CM] == y[x[:, 2] <= data.RELABEL_PETAL_CM]).all()


async def test_the_generator_sends_feedback_with_the_answered_version_and_prediction() -> None:
    """Feedback mode: every answered row becomes an item {id, truth, version, prediction} (what the server
    answered), posted to the feedback endpoint. Before set_truth a long petal (> 5.5 cm: only virginica in
    iris) is class 2, after it class 1."""
    answered: dict[str, tuple[np.ndarray, list[int], float]] = {}
    posted: list[dict[str, Any]] = []

    async def infer(request: web.Request) -> web.Response:
        body = await request.json()
        [inp] = body["inputs"]
        rows = np.asarray(inp["data"], dtype=float).reshape(inp["shape"])
        pred = [len(answered) % 3] * len(rows)
        answered[body["id"]] = (rows, pred, time.time())
        return web.json_response(
            {
                "id": body["id"],
                "model_version": "7",
                "outputs": [
                    {"name": "probabilities", "data": [0.5] * len(rows)},
                    {"name": "label", "data": pred},
                ],
            }
        )

    async def feedback(request: web.Request) -> web.Response:
        items = await request.json()
        posted.extend(items)
        return web.json_response({"accepted": len(items), "unresolved": 0})

    app = web.Application()
    app.router.add_post("/v2/models/iris/infer", infer)
    app.router.add_post("/v2/models/iris/feedback", feedback)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    gen = TrafficGenerator(url, "iris", {"clean": data.clean()}, "clean", rate=80, feedback=True)
    sender = FeedbackSender(gen, url, "iris", interval=0.2)
    try:
        gen.start()
        sender.start()
        await asyncio.sleep(1.0)
        changed_at = gen.set_truth(data.relabelled)
        await asyncio.sleep(1.0)
    finally:
        await gen.stop()
        await sender.stop()
        await sender.flush()
        await runner.cleanup()
    assert sender.accepted == len(posted) > 50 and sender.error is None and gen.take_items() == []
    by_id = {it["id"]: it for it in posted}
    assert len(by_id) == len(posted)
    long_before = long_after = 0
    for req, (rows, pred, at) in answered.items():
        for i, rid in enumerate(row_ids(req, len(rows))):
            if rid not in by_id:
                continue
            it = by_id[rid]
            assert it["version"] == "7" and it["prediction"] == pred[i]
            if rows[i, 2] > 5.5 and at < changed_at:
                long_before += 1
                assert it["truth"] == 2
            elif rows[i, 2] > 5.5 and at > changed_at + 0.1:
                long_after += 1
                assert it["truth"] == 1
    assert long_before > 0 and long_after > 0


async def test_stopping_the_sender_lets_the_post_under_way_finish() -> None:
    """stop() while a feedback POST waits for its answer: the answer is still counted (cancelling it would
    lose the count of items the server already took)."""
    reached = asyncio.Event()
    posted: list[dict[str, Any]] = []

    async def feedback(request: web.Request) -> web.Response:
        items = await request.json()
        posted.extend(items)
        reached.set()
        await asyncio.sleep(0.5)
        return web.json_response({"accepted": len(items), "unresolved": 0})

    app = web.Application()
    app.router.add_post("/v2/models/iris/feedback", feedback)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    gen = TrafficGenerator(url, "iris", {"clean": data.clean()}, "clean", feedback=True)
    gen.items.extend({"id": f"r{i}", "truth": 0, "version": "1", "prediction": 0} for i in range(5))
    sender = FeedbackSender(gen, url, "iris", interval=0.05)
    try:
        sender.start()
        await asyncio.wait_for(reached.wait(), 10)
        await sender.stop()
    finally:
        await runner.cleanup()
    assert len(posted) == 5 and sender.accepted == 5 and sender.requests == 1 and sender.error is None


def test_summary_adds_live_accuracy_and_the_concept_drift_line() -> None:
    doc = _doc()
    assert "live accuracy" not in render(doc)  # the default scenario's table is unchanged
    doc["performanceEvaluations"] = [
        {"performance": {"versions": {"1": {"value": 0.95, "labels": 300}}}},
        {
            "performance": {
                "versions": {"1": {"value": 0.71, "labels": 280}, "3": {"value": 0.99, "labels": 9}}
            }
        },
    ]
    doc.update(
        scenario="concept-drift",
        dataDriftAtRetrain="NoDrift",
        liveAccuracy={"v1BeforeChange": 0.95, "v1AfterChange": 0.71, "v2AfterChange": 0.99},
    )
    assert last_live(doc["performanceEvaluations"]) == {"1": (0.71, 280), "3": (0.99, 9)}
    text = render(doc)
    lines = text.splitlines()
    assert "live accuracy" in lines[2]
    assert "0.710 (280 labels)" in next(line for line in lines if line.startswith("v1 "))
    assert "0.990 (9 labels)" in next(line for line in lines if line.startswith("v3 "))
    assert "concept drift: retrain created 8.0s after the labels changed (data drift then: NoDrift)" in text
    assert performance_line(
        {
            "metric": "accuracy",
            "verdict": "Degraded",
            "action": "Retrain",
            "versions": {"1": {"value": 0.7, "labels": 3}, "2": {"labels": 0}},
        }
    ) == ("live accuracy: v1 0.700 (3 labels), v2 - (0 labels) -> Degraded (action Retrain)")
