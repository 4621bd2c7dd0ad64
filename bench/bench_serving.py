"""Serving benchmark: onnxops' server against the in-process limit and the servers users pick instead.

    .venv/bin/python bench/bench_serving.py [--duration 4] [--models lr,gb] [--parser-reps 3]
        [--kserve-python PY] [--mlserver-bin BIN]

Models: StandardScaler + LogisticRegression (20 features, 3 classes, ``lr``) and a 100-stage
GradientBoostingClassifier (``gb``), ONNX via skl2onnx without ZipMap. Load: ``wrk`` (one thread,
keep-alive, fixed body via a Lua script) at concurrency 1, 8 and 64, batch 1 and 64. Every server runs as
one process bound to 127.0.0.1, without access logs; wrk shares the same cores. Peers whose Python is not
given (KServe, MLServer: each in its own virtualenv outside the repository) are skipped:

    python3.11 -m venv <kserve-venv> && <kserve-venv>/bin/pip install kserve onnxruntime
    python3.11 -m venv <mlserver-venv> && <mlserver-venv>/bin/pip install mlserver mlserver-sklearn \
        uvloop==0.21.0 scikit-learn   # uvloop >= 0.22 kills MLServer 1.7's inference workers

FastAPI and uvicorn come from the ``[bench]`` extra (httptools from ``[serving]``). Takes about 7 minutes;
``--models lr --duration 2`` (the smallest meaningful run: the lr rows and the parser comparison) about 3.
The HTTP parser comparison runs the server with its previous hand-written parser (``legacy_http.py``) next
to the current one (llhttp), interleaved at c8, and also both parsers in-process on the same bytes.
Writes bench/results/serving.md. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx

from _servers import Server, free_port, start_onnxops
from onnxops.profile import ClassPrediction, Profile, numeric_feature
from onnxops.serving.drift_state import DriftState

ROOT = Path(__file__).resolve().parent.parent
KEPT_SECTIONS = [
    ("<!-- grpc:begin (bench/bench_grpc.py) -->", "<!-- grpc:end -->"),
    ("<!-- grpc-floor:begin (bench/bench_grpc_floor.py) -->", "<!-- grpc-floor:end -->"),
]
RESULTS = ROOT / "bench" / "results" / "serving.md"
WRK = shutil.which("wrk") or "wrk"
LUA = """
local f = io.open(os.getenv("BENCH_BODY"), "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body; wrk.headers["Content-Type"] = os.getenv("BENCH_CT")
local hl = os.getenv("BENCH_HL")
if hl ~= nil and hl ~= "" then wrk.headers["Inference-Header-Content-Length"] = hl end
"""

FASTAPI_APP = """
import os, numpy as np, onnxruntime as ort, orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
sess = ort.InferenceSession(os.environ["BENCH_MODEL"], so, providers=["CPUExecutionProvider"])
iname = sess.get_inputs()[0].name
onames = [o.name for o in sess.get_outputs()]
app = FastAPI()
@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    doc = orjson.loads(await request.body())
    t = doc["inputs"][0]
    x = np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
    outs = sess.run(None, {iname: x})
    body = {"model_name": name, "outputs": [
        {"name": n, "datatype": "INT64" if o.dtype == np.int64 else "FP32", "shape": list(o.shape),
         "data": o.ravel()} for n, o in zip(onames, outs)]}
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
"""

KSERVE_APP = """
import os, sys, numpy as np, onnxruntime as ort, uvicorn
_init = uvicorn.Config.__init__
def _loopback(self, *a, **k):  # KServe binds 0.0.0.0; keep the benchmark on loopback, no access log
    k["host"] = "127.0.0.1"; k["access_log"] = False; _init(self, *a, **k)
uvicorn.Config.__init__ = _loopback
import kserve
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
class OnnxModel(Model):
    def __init__(self, name, path):
        super().__init__(name); self.path = path; self.enable_latency_logging = False; self.load()
    def load(self):
        so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(self.path, so, providers=["CPUExecutionProvider"])
        self.iname = self.sess.get_inputs()[0].name
        self.ready = True
        return True
    def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):
            x = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
            outs = self.sess.run(None, {self.iname: x})
            res = []
            for o, arr in zip(self.sess.get_outputs(), outs):
                out = InferOutput(o.name, list(arr.shape), "INT64" if arr.dtype == np.int64 else "FP32")
                out.set_data_from_numpy(arr, binary_data=False)
                res.append(out)
            return InferResponse(model_name=self.name, infer_outputs=res, response_id=payload.id or "0")
        x = np.asarray(payload["instances"], dtype=np.float32)
        return {"predictions": self.sess.run(None, {self.iname: x})[0].tolist()}
server = ModelServer(http_port=int(sys.argv[2]), enable_grpc=False, workers=1, enable_latency_logging=False)
import logging; logging.getLogger("kserve.trace").disabled = True  # per-request timing lines: off, like ours
server.start([OnnxModel("m", sys.argv[1])])
"""

MLSERVER_TRAIN = """
import sys, joblib, numpy as np
from sklearn.datasets import make_classification
sys.path.insert(0, sys.argv[3]); from bench_models import build
joblib.dump(build(sys.argv[1]), sys.argv[2])
"""

BENCH_MODELS = """
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
import numpy as np
def data():
    X, y = make_classification(n_samples=3000, n_features=20, n_informative=10, n_classes=3, random_state=0)
    return X.astype(np.float32), y
def build(kind):
    X, y = data()
    if kind == "lr":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(X, y)
"""


CELLS = ((1, "json"), (1, "binary"), (64, "json"), (64, "binary"))  # monitoring on/off: every cell


def build_models(work: Path) -> dict[str, dict]:
    (work / "bench_models.py").write_text(BENCH_MODELS)
    sys.path.insert(0, str(work))
    from bench_models import build, data  # type: ignore[import-not-found]

    X, _ = data()
    out = {}
    for kind in ("lr", "gb"):
        est = build(kind)
        onx = to_onnx(est, X[:1], options={"zipmap": False}, target_opset=17)
        path = work / f"{kind}.onnx"
        path.write_bytes(onx.SerializeToString())
        pred = est.predict(X)
        prof = Profile(
            task="classification",
            rows=len(X),
            features=[numeric_feature(f"f{i}", i, X[:, i]) for i in range(X.shape[1])],
            prediction=ClassPrediction(
                classes=["0", "1", "2"], counts=[int((pred == c).sum()) for c in range(3)]
            ),
        )
        ppath = work / f"{kind}.profile.json"
        ppath.write_text(prof.to_json())
        out[kind] = {"onnx": path, "profile": ppath, "X": X, "est": est, "prof": prof}
    return out


def bodies(work: Path, kind: str, X: np.ndarray, iname: str) -> dict[tuple[int, str], tuple[Path, str, str]]:
    """(batch, format) -> (body file, content type, header length)."""
    out = {}
    for b in (1, 64):
        x = X[:b]
        doc = {"inputs": [{"name": iname, "shape": [b, 20], "datatype": "FP32", "data": x.ravel().tolist()}]}
        p = work / f"{kind}-{b}.json"
        p.write_text(json.dumps(doc))
        out[(b, "json")] = (p, "application/json", "")
        head = json.dumps(
            {
                "inputs": [
                    {
                        "name": iname,
                        "shape": [b, 20],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": x.nbytes},
                    }
                ],
                "parameters": {"binary_data_output": True},
            }
        ).encode()
        p = work / f"{kind}-{b}.bin"
        p.write_bytes(head + x.tobytes())
        out[(b, "binary")] = (p, "application/octet-stream", str(len(head)))
    return out


def in_process(models: dict[str, dict]) -> list[dict]:
    rows = []
    for kind, m in models.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(m["onnx"]), so, providers=["CPUExecutionProvider"])
        iname = sess.get_inputs()[0].name
        drift = DriftState(m["prof"], iname)
        for b in (1, 64):
            x = m["X"][:b]
            feeds = {iname: x}
            pred = np.zeros(len(x), np.int64)
            d, f, p = drift, feeds, pred
            for label, fn in (
                ("session.run", lambda f=f, sess=sess: sess.run(None, f)),
                ("drift update, immediate", lambda d=d, f=f, p=p: d.update(f, p)),
                ("drift add (as served, amortised)", lambda d=d, f=f, p=p: d.add(f, p)),
            ):
                n = 3000 if b == 1 or kind == "lr" else 300
                fn()
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                us = (time.perf_counter() - t0) / n * 1e6
                rows.append({"model": kind, "batch": b, "what": label, "us": us, "rows_s": b / us * 1e6})
    return rows


def real_handlers(m: dict) -> dict:
    """The server's request handlers for model ``m``, drift on (True) and off (False), in-process."""
    from dataclasses import replace

    from onnxops.serving.config import ServerConfig
    from onnxops.serving.handlers import Handlers
    from onnxops.serving.metrics import ServerMetrics
    from onnxops.serving.model import ModelState, load_model
    from onnxops.serving.server import attach_model

    sha = hashlib.sha256(m["onnx"].read_bytes()).hexdigest()
    psha = hashlib.sha256(m["profile"].read_bytes()).hexdigest()
    cfg = ServerConfig(
        model_name="m",
        model_version="1",
        model_uri=m["onnx"].as_uri(),
        sha256=sha,
        profile_uri=m["profile"].as_uri(),
        profile_sha256=psha,
    )
    model = load_model(cfg)
    handlers = {}
    for drift in (True, False):
        state, metrics = ModelState(), ServerMetrics("m", "1")
        attach_model(state, metrics, model, replace(cfg, drift_metrics=drift))
        handlers[drift] = Handlers("m", "1", state, metrics, drift=drift)
    return handlers


def handler_ab(kind: str, m: dict, bods: dict) -> list[dict]:
    """The server's request handler called in-process (no HTTP, no load generator): drift on vs off; the
    process's CPU time per request, so that counting in a worker thread is not hidden."""
    handlers = real_handlers(m)
    rows = []
    for b, fmt in CELLS:
        path, _, hl = bods[(b, fmt)]
        body, headers = path.read_bytes(), ({"inference-header-content-length": hl} if hl else {})
        n = 2000 if kind == "lr" or b == 1 else 200
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(5):
            for drift in (True, False):
                h = handlers[drift]
                # process CPU time (every thread): the drift counting's worker thread counts too
                t0 = time.process_time()
                for _ in range(n):
                    h.handle("POST", "/v2/models/m/infer", headers, body)
                if h.metrics.drift is not None:
                    h.metrics.drift.flush()  # the folds still in flight belong to these requests
                times[drift].append((time.process_time() - t0) / n * 1e6)
        for drift in (True, False):
            us = min(times[drift])
            what = f"request handler, {fmt}, drift {'on' if drift else 'off'} (best of 5)"
            rows.append({"model": kind, "batch": b, "what": what, "us": us, "rows_s": b / us * 1e6})
    return rows


def proc_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(f[1]), []).append(int(d.name))
        stats[int(d.name)] = (int(f[11]) + int(f[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo += children.get(p, [])
    return total


def post(url: str, body: Path, ct: str, hl: str) -> tuple[int, bytes, str | None]:
    req = urllib.request.Request(url, data=body.read_bytes(), headers={"Content-Type": ct}, method="POST")
    if hl:
        req.add_header("Inference-Header-Content-Length", hl)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read(), r.headers.get("Inference-Header-Content-Length")


def wrk(url: str, conc: int, duration: float, body: Path, ct: str, hl: str, lua: Path) -> dict:
    env = dict(os.environ, BENCH_BODY=str(body), BENCH_CT=ct, BENCH_HL=hl)
    out = subprocess.run(
        [WRK, "-t1", f"-c{conc}", f"-d{max(1, round(duration))}s", "--latency", "-s", str(lua), url],
        env=env,
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout

    def lat(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": lat("50"),
        "p99": lat("99"),
        "requests": int(total.group(1)) if total else 0,
        "errors": errors,
    }


def start_ours(m: dict, drift: bool, legacy: bool = False) -> Server:
    return start_onnxops(
        m,
        "onnxops" + ("" if drift else " (drift off)") + (" (old parser)" if legacy else ""),
        extra={"ONNXOPS_DRIFT_METRICS": str(drift).lower()},  # HTTP only here (bench_grpc.py runs gRPC)
        cmd=[sys.executable, str(ROOT / "bench" / "legacy_http.py")] if legacy else None,
    )


def start_fastapi(m: dict, work: Path) -> Server:
    port = free_port()
    (work / "fastapi_app.py").write_text(FASTAPI_APP)
    env = dict(os.environ, BENCH_MODEL=str(m["onnx"]))
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "fastapi_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]
    srv = Server("FastAPI+uvicorn", cmd, env, port, "/docs", "/v2/models/m/infer", cwd=work)
    return srv


def start_kserve(m: dict, work: Path, python: str) -> Server:
    port = free_port()
    (work / "kserve_app.py").write_text(KSERVE_APP)
    return Server(
        "KServe",
        [python, str(work / "kserve_app.py"), str(m["onnx"]), str(port)],
        dict(os.environ),
        port,
        "/v2/health/ready",
        "/v2/models/m/infer",
    )


def start_mlserver(kind: str, work: Path, mlserver: str) -> Server:
    python = str(Path(mlserver).parent / "python")
    d = work / f"mlserver-{kind}"
    (d / "m").mkdir(parents=True, exist_ok=True)
    (work / "mlserver_train.py").write_text(MLSERVER_TRAIN)
    subprocess.run(
        [python, str(work / "mlserver_train.py"), kind, str(d / "m" / "model.joblib"), str(work)],
        check=True,
        timeout=300,
    )
    port, grpc, metrics = free_port(), free_port(), free_port()
    (d / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": grpc,
                "metrics_port": metrics,
                "parallel_workers": 0,
                "debug": False,
            }
        )
    )
    (d / "m" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "m",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    return Server(
        "MLServer",
        [mlserver, "start", str(d)],
        dict(os.environ),
        port,
        "/v2/models/m/ready",
        "/v2/models/m/infer",
    )


def run_one(
    srv: Server,
    kind: str,
    body: tuple[Path, str, str],
    b: int,
    fmt: str,
    c: int,
    duration: float,
    lua: Path,
    ok: bool,
) -> dict:
    path, ct, hl = body
    cpu0 = proc_cpu(srv.p.pid)
    r = wrk(srv.url, c, duration, path, ct, hl, lua)
    cpu = proc_cpu(srv.p.pid) - cpu0
    r.update(
        server=srv.name,
        model=kind,
        batch=b,
        conc=c,
        fmt=fmt,
        correct=ok,
        cpu_ms=cpu / max(r["requests"], 1) * 1e3,
        cpu_util=cpu / duration,
    )
    print(
        f"{srv.name:24} {kind} b{b:<2} c{c:<2} {fmt:6} {r['rps']:9.0f} req/s p50 {r['p50']:7.2f} ms "
        f"p99 {r['p99']:7.2f} ms err {r['errors']} cpu {r['cpu_ms']:.3f} ms/req ok={ok}",
        flush=True,
    )
    return r


def check_once(srv: Server, body: tuple[Path, str, str], want: np.ndarray) -> bool:
    status, raw, json_len = post(srv.url, *body)
    return status == 200 and _labels_ok(raw, json_len, want)


def measure(
    srv: Server,
    kind: str,
    bods: dict,
    fmt: str,
    concs: tuple[int, ...],
    duration: float,
    lua: Path,
    check: np.ndarray,
) -> list[dict]:
    rows = []
    for b in (1, 64):
        ok = check_once(srv, bods[(b, fmt)], check[:b])
        rows += [run_one(srv, kind, bods[(b, fmt)], b, fmt, c, duration, lua, ok) for c in concs]
    return rows


def monitoring_ab(
    m: dict, kind: str, bods: dict, duration: float, lua: Path, check: np.ndarray
) -> list[dict]:
    """Drift metrics on vs off, interleaved (on, off, off, on, on, off) at c8: machine noise hits both."""
    on, off = start_ours(m, True), start_ours(m, False)
    rows = []
    try:
        for b, fmt in CELLS:
            oks = {s.name: check_once(s, bods[(b, fmt)], check[:b]) for s in (on, off)}
            for rep in range(3):
                for s in (on, off) if rep % 2 == 0 else (off, on):
                    rows.append(
                        run_one(s, kind, bods[(b, fmt)], b, fmt, 8, duration, lua, oks[s.name]) | {"rep": rep}
                    )
    finally:
        on.stop()
        off.stop()
    return rows


def parser_ab(
    m: dict, kind: str, bods: dict, duration: float, lua: Path, check: np.ndarray, reps: int
) -> list[dict]:
    """The server with llhttp vs its previous hand-written parser, interleaved at c8, batch 1."""
    new, old = start_ours(m, True), start_ours(m, True, legacy=True)
    rows = []
    try:
        for fmt in ("json", "binary"):
            oks = {s.name: check_once(s, bods[(1, fmt)], check[:1]) for s in (new, old)}
            for rep in range(reps):
                for s in (new, old) if rep % 2 == 0 else (old, new):
                    rows.append(run_one(s, kind, bods[(1, fmt)], 1, fmt, 8, duration, lua, oks[s.name]))
    finally:
        new.stop()
        old.stop()
    return rows


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def parser_in_process(m: dict, bods: dict, n: int = 20000) -> list[dict]:
    """Both parsers fed the bytes wrk sends (POST, Host, Content-Type, Content-Length, the lr batch-1 JSON
    body), one request per read: with a handler that returns a fixed response (framing + response writing
    only), and with the server's real handler (all the server's per-request CPU except the socket calls,
    which do not depend on the parser)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from legacy_http import LegacyHttpProtocol
    from onnxops.serving.app import HttpServer
    from onnxops.serving.handlers import Response
    from onnxops.serving.http1 import HttpProtocol

    class Fixed:
        def handle(self, method: str, target: str, headers: dict, body: bytes) -> tuple[str, Response]:
            return "v2", Response(200, b'{"ok":true}')

    path, ct, _ = bods[(1, "json")]
    body = path.read_bytes()
    one = (
        f"POST /v2/models/m/infer HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: {ct}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    rows = []
    real = real_handlers(m)[True]
    for handler, what, count in ((Fixed(), "HTTP framing", n), (real, "HTTP framing + real handler", n // 4)):
        times: dict[str, list[float]] = {"llhttp (httptools)": [], "previous hand-written": []}
        for trial in range(9):
            pair = (
                ("llhttp (httptools)", HttpProtocol),
                ("previous hand-written", LegacyHttpProtocol),
            )
            for label, cls in pair if trial % 2 else pair[::-1]:
                server = HttpServer(handler, max_body_bytes=1 << 20)  # type: ignore[arg-type]
                proto = cls(server)
                proto.connection_made(_NullTransport())
                t0 = time.perf_counter()
                for _ in range(count):  # one request per read, as wrk's keep-alive connections send them
                    proto.data_received(one)
                times[label].append((time.perf_counter() - t0) / count * 1e6)
        for label, ts in times.items():
            model = "-" if what == "HTTP framing" else "lr"
            rows.append(
                {
                    "model": model,
                    "batch": 1,
                    "what": f"{what}, {label} (best of 9)",
                    "us": min(ts),
                    "rows_s": 1e6 / min(ts),
                }
            )
    return rows


def _labels_ok(raw: bytes, json_len: str | None, want: np.ndarray) -> bool:
    """The response's labels equal scikit-learn's for the same rows (JSON or binary outputs)."""
    try:
        if json_len:
            n = int(json_len)
            meta = json.loads(raw[:n])["outputs"][0]
            got = np.frombuffer(raw[n : n + meta["parameters"]["binary_data_size"]], dtype="<i8")
        else:
            got = np.asarray(json.loads(raw)["outputs"][0]["data"])
        return bool(np.array_equal(got.ravel().astype(int), want))
    except (ValueError, KeyError, IndexError):
        return False


def versions(kserve_py: str | None, mlserver: str | None) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from onnxops import __version__

    v = {"python": platform.python_version(), "onnxruntime": ort.__version__, "onnxops": __version__}
    for dist in ("fastapi", "uvicorn"):  # the [bench] extra; absent with --only-monitoring is fine
        with contextlib.suppress(PackageNotFoundError):
            v[dist] = version(dist)
    v["numpy"] = np.__version__
    with contextlib.suppress(OSError):
        v["wrk"] = subprocess.run([WRK, "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    for label, py, mod in (
        ("kserve", kserve_py, "kserve"),
        ("mlserver", mlserver and str(Path(mlserver).parent / "python"), "mlserver"),
    ):
        if py:
            r = subprocess.run(
                [py, "-c", f"import importlib.metadata as m; print(m.version('{mod}'))"],
                capture_output=True,
                text=True,
            )
            v[label] = r.stdout.strip()
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run (default 4)")
    ap.add_argument("--kserve-python", help="python of a virtualenv with kserve + onnxruntime")
    ap.add_argument(
        "--mlserver-bin", help="mlserver executable of a virtualenv with mlserver + mlserver-sklearn"
    )
    ap.add_argument("--models", default="lr,gb", help="models to run, comma-separated (default lr,gb)")
    ap.add_argument(
        "--parser-reps", type=int, default=3, help="interleaved runs per parser, lr batch 1 c8 (default 3)"
    )
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument(
        "--only-monitoring",
        action="store_true",
        help="only the in-process limit and the monitoring on/off runs (every model, batch and body)",
    )
    ap.add_argument(
        "--only-handler",
        action="store_true",
        help="only the in-process request handler, drift on vs off, printed (nothing written): run it "
        "alternately with PYTHONPATH set to two checkouts to compare them",
    )
    args = ap.parse_args(argv)
    if args.only_handler:
        return only_handler(args.models.split(","))
    t_start = time.monotonic()
    all_concs = (1, 8, 64)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lua = work / "post.lua"
        lua.write_text(LUA)
        models = {k: v for k, v in build_models(work).items() if k in args.models.split(",")}
        limit = in_process(models)
        results: list[dict] = []
        ab: list[dict] = []
        pab: list[dict] = []
        for kind, m in models.items():
            iname = ort.InferenceSession(str(m["onnx"])).get_inputs()[0].name
            bods = bodies(work, kind, m["X"], iname)
            check = m["est"].predict(m["X"][:64])
            limit += handler_ab(kind, m, bods)
            for r in limit:
                if r["model"] == kind:
                    print(f"in-process {kind} b{r['batch']} {r['what']}: {r['us']:.1f} us/call", flush=True)
            if args.only_monitoring:
                ab += monitoring_ab(m, kind, bods, args.duration, lua, check)
                continue
            if kind == "lr":
                limit += parser_in_process(m, bods)
                pab += parser_ab(m, kind, bods, args.duration, lua, check, args.parser_reps)
            ab += monitoring_ab(m, kind, bods, args.duration, lua, check)
            plan: list[tuple[str, object]] = [("ours", True), ("fastapi", None)]
            if args.kserve_python:
                plan.append(("kserve", None))
            if args.mlserver_bin:
                plan.append(("mlserver", None))
            for which, opt in plan:
                try:
                    srv = _start(which, opt, m, kind, work, args)
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    print(f"skipping {which}: {exc}", flush=True)
                    continue
                try:
                    results += measure(srv, kind, bods, "json", all_concs, args.duration, lua, check)
                    if which == "ours":
                        results += measure(srv, kind, bods, "binary", all_concs, args.duration, lua, check)
                finally:
                    srv.stop()
        vers = versions(args.kserve_python, args.mlserver_bin)
    elapsed = time.monotonic() - t_start
    text = render(limit, results, ab, pab, vers, args.duration, elapsed, command(args))
    old = args.output.read_text() if args.output.exists() else ""
    for begin, end in KEPT_SECTIONS:  # sections other benchmarks write into this file
        if begin in old and end in old:
            text += "\n" + begin + old.split(begin, 1)[1].split(end, 1)[0] + end + "\n"
    args.output.write_text(text)
    print(f"wrote {args.output} in {elapsed:.0f}s")
    return 0


def only_handler(kinds: list[str]) -> int:
    """``--only-handler``: one line per model, batch and body: drift on, off and the difference (µs)."""
    import onnxops

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for kind, m in build_models(work).items():
            if kind not in kinds:
                continue
            iname = ort.InferenceSession(str(m["onnx"])).get_inputs()[0].name
            rows = handler_ab(kind, m, bodies(work, kind, m["X"], iname))
            for b, fmt in CELLS:
                on, off = (
                    next(r["us"] for r in rows if r["batch"] == b and f"{fmt}, drift {w} " in r["what"])
                    for w in ("on", "off")
                )
                where = Path(onnxops.__file__).parent.parent
                print(
                    f"{where} {kind} b{b} {fmt}: drift on {on:.1f} off {off:.1f} "
                    f"cost {on - off:+.1f} us/request",
                    flush=True,
                )
    return 0


def _start(which: str, opt: object, m: dict, kind: str, work: Path, args: argparse.Namespace) -> Server:
    """Start the server ``which`` (ours, fastapi, kserve or mlserver) for model ``m``."""
    if which == "ours":
        return start_ours(m, bool(opt))
    if which == "fastapi":
        return start_fastapi(m, work)
    if which == "kserve":
        return start_kserve(m, work, args.kserve_python)
    return start_mlserver(kind, work, args.mlserver_bin)


def command(args: argparse.Namespace) -> str:
    """The command line, with the peers' virtualenvs (local paths) written as placeholders."""
    cmd = f".venv/bin/python bench/bench_serving.py --duration {args.duration:g}"
    if args.models != "lr,gb":
        cmd += f" --models {args.models}"
    if args.only_monitoring:
        cmd += " --only-monitoring"
    if args.parser_reps != 3:
        cmd += f" --parser-reps {args.parser_reps}"
    if args.kserve_python:
        cmd += " --kserve-python <kserve-venv>/bin/python"
    if args.mlserver_bin:
        cmd += " --mlserver-bin <mlserver-venv>/bin/mlserver"
    return cmd


def _get(
    results: list[dict], server: str, model: str, batch: int, conc: int, fmt: str = "json"
) -> dict | None:
    for r in results:
        if (r["server"], r["model"], r["batch"], r["conc"], r["fmt"]) == (server, model, batch, conc, fmt):
            return r
    return None


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if not a or not b else f"{a / b:.2f}x"


def goals(limit: list[dict], results: list[dict], ab: list[dict], pab: list[dict]) -> list[str]:
    return [
        *_parser_goals(pab),
        *_framing_goals(limit, pab),
        *_peer_goals(results),
        *_batch_goals(limit, results),
        *_drift_cost_goals(limit, ab),
        *_monitoring_goals(ab),
    ]


def _parser_goals(pab: list[dict]) -> list[str]:
    """HTTP parser: llhttp against the previous parser, over HTTP."""
    out: list[str] = []
    for fmt in ("json", "binary"):
        new = [r for r in pab if r["fmt"] == fmt and "old parser" not in r["server"]]
        old = [r for r in pab if r["fmt"] == fmt and "old parser" in r["server"]]
        if len(new) >= 2 and len(new) == len(old):
            # runs are interleaved in pairs: the paired log-ratio cancels the machine's slow drifts
            logs = np.log([a["rps"] / b["rps"] for a, b in zip(new, old, strict=True)])
            mean, se = float(logs.mean()), float(logs.std(ddof=1) / np.sqrt(len(logs)))
            lo, hi = (float(np.expm1(mean + k * se)) * 100 for k in (-2, 2))
            cpu_new, cpu_old = (min(r["cpu_ms"] for r in x) * 1e3 for x in (new, old))
            out.append(
                f"- HTTP parser over HTTP, lr batch 1 {fmt} c8 ({len(new)} interleaved pairs): llhttp vs the "
                f"previous parser {float(np.expm1(mean)) * 100:+.1f} % req/s (95 % interval {lo:+.1f} to "
                f"{hi:+.1f} %: the wrk runs on this machine cannot resolve 5 %); lowest server CPU per "
                f"request {cpu_new:.0f} vs {cpu_old:.0f} µs"
            )
    return out


def _framing_goals(limit: list[dict], pab: list[dict]) -> list[str]:
    """HTTP framing in-process, and its share of the server's CPU per request."""
    out: list[str] = []
    for what in ("HTTP framing", "HTTP framing + real handler"):
        fr = {r["what"]: r["us"] for r in limit if r["what"].startswith(what + ",")}
        if len(fr) == 2:
            a = fr[f"{what}, llhttp (httptools) (best of 9)"]
            b = fr[f"{what}, previous hand-written (best of 9)"]
            line = f"- {what} in-process, lr batch 1 json: llhttp {a:.1f} vs previous {b:.1f} µs per request"
            if what == "HTTP framing":
                out.append(f"{line} ({a - b:+.1f} µs; same bytes, fixed response)")
            else:
                # the parser changes nothing else the server does per request (socket calls, the loop):
                # its cost in throughput is the in-process difference over the whole server CPU per
                # request over HTTP (lowest of the previous parser's interleaved runs, json)
                http = [r["cpu_ms"] * 1e3 for r in pab if r["fmt"] == "json" and "old parser" in r["server"]]
                line += f" ({a - b:+.1f} µs)"
                if http:
                    cost = (a - b) / min(http)
                    verdict = "met" if cost <= 0.05 else "not met"
                    line += (
                        f" = {cost * 100:+.1f} % of the server's whole CPU per request over HTTP "
                        f"({min(http):.0f} µs) (limit: 5 % throughput) — **{verdict}**"
                    )
                out.append(line)
    return out


def _peer_goals(results: list[dict]) -> list[str]:
    """lr batch 1 c8 against each peer server."""
    out: list[str] = []
    ours = _get(results, "onnxops", "lr", 1, 8)
    for peer, need in (("KServe", 3.0), ("MLServer", 4.0), ("FastAPI+uvicorn", None)):
        p = _get(results, peer, "lr", 1, 8)
        if ours is None or p is None:
            out.append(f"- lr batch 1, c8 vs {peer}: peer not measured")
            continue
        ratio = ours["rps"] / p["rps"] if p["rps"] else float("inf")
        verdict = (
            ""
            if need is None
            else (" — **met**" if ratio >= need and ours["p99"] < p["p99"] else " — **not met**")
        )
        goal = "" if need is None else f" (goal >= {need:.0f}x with a lower p99)"
        out.append(
            f"- lr batch 1, c8 vs {peer}: {ratio:.2f}x req/s ({ours['rps']:.0f} vs {p['rps']:.0f}), "
            f"p99 {ours['p99']:.2f} vs {p['p99']:.2f} ms{goal}{verdict}"
        )
    return out


def _batch_goals(limit: list[dict], results: list[dict]) -> list[str]:
    """Batch 64 rows/s against the best peer and the in-process limit."""
    out: list[str] = []
    for model in ("lr", "gb"):
        ours_rows = max(
            (
                r["rps"] * 64
                for r in results
                if r["server"] == "onnxops"
                and r["model"] == model
                and r["batch"] == 64
                and r["fmt"] == "binary"
            ),
            default=0.0,
        )
        peers = [
            r
            for r in results
            if r["server"] not in ("onnxops", "onnxops (drift off)")
            and r["model"] == model
            and r["batch"] == 64
        ]
        best = max(peers, key=lambda r: r["rps"], default=None)
        if best is not None:
            ratio = ours_rows / (best["rps"] * 64)
            verdict = (" — **met**" if ratio >= 5 else " — **not met**") if model == "lr" else ""
            out.append(
                f"- {model} batch 64, binary, best concurrency: {ours_rows:.0f} rows/s vs best peer "
                f"{best['server']} {best['rps'] * 64:.0f} rows/s (c{best['conc']}): {ratio:.2f}x"
                f"{' (goal >= 5x)' if model == 'lr' else ''}{verdict}"
            )
        lim = next(
            (r for r in limit if r["model"] == model and r["batch"] == 64 and r["what"] == "session.run"),
            None,
        )
        if lim is not None and model == "gb":
            ratio = ours_rows / lim["rows_s"]
            out.append(
                f"- gb batch 64 vs the in-process limit (1 thread): {ours_rows:.0f} vs {lim['rows_s']:.0f} "
                f"rows/s = {ratio:.2f} (goal >= 0.5, within 2x) — **{'met' if ratio >= 0.5 else 'not met'}**"
            )
    return out


def _drift_cost_goals(limit: list[dict], ab: list[dict]) -> list[str]:
    """The drift counting's cost measured in-process."""
    out: list[str] = []
    for model in ("lr", "gb"):
        for b, fmt in CELLS:
            h = {
                r["what"].rsplit("drift ", 1)[1][:3].strip(): r["us"]
                for r in limit
                if r["model"] == model
                and r["batch"] == b
                and r["what"].startswith(f"request handler, {fmt},")
            }
            off_http = [
                r["cpu_ms"] * 1e3
                for r in ab
                if r["server"] != "onnxops" and (r["model"], r["batch"], r["fmt"]) == (model, b, fmt)
            ]
            if "on" in h and "off" in h and off_http:
                extra, per_req = h["on"] - h["off"], float(np.median(off_http))
                out.append(
                    f"- drift cost measured in-process, {model} batch {b} {fmt}: handler {h['on']:.1f} vs "
                    f"{h['off']:.1f} µs = {extra:+.1f} µs per request = {extra / per_req * 100:+.1f} % of "
                    f"the server's whole CPU per request with drift off ({per_req:.0f} µs, HTTP runs) "
                    f"(goal < 10 %) — **{'met' if extra / per_req < 0.10 else 'not met'}**"
                )
    return out


def _monitoring_goals(ab: list[dict]) -> list[str]:
    """The monitoring's cost over HTTP (on/off runs)."""
    out: list[str] = []
    for model in ("lr", "gb"):
        for b, fmt in CELLS:
            on = [
                r
                for r in ab
                if r["server"] == "onnxops" and (r["model"], r["batch"], r["fmt"]) == (model, b, fmt)
            ]
            off = [
                r
                for r in ab
                if r["server"] != "onnxops" and (r["model"], r["batch"], r["fmt"]) == (model, b, fmt)
            ]
            if on and off:
                rps_on, rps_off = (float(np.median([r["rps"] for r in x])) for x in (on, off))
                cpu_on, cpu_off = (float(np.median([r["cpu_ms"] for r in x])) for x in (on, off))
                cost = 1 - rps_on / rps_off
                out.append(
                    f"- monitoring cost, {model} batch {b} {fmt} c8 (median of 3 interleaved runs each): "
                    f"{rps_on:.0f} vs {rps_off:.0f} req/s = {cost * 100:+.1f} % throughput; server CPU "
                    f"{cpu_on * 1e3:.0f} vs {cpu_off * 1e3:.0f} µs/req = "
                    f"{(cpu_on / cpu_off - 1) * 100:+.1f} % "
                    f"(goal < 10 %) — **{'met' if cost < 0.10 else 'not met'}**"
                )
    return out


def _row(r: dict) -> str:
    return (
        f"| {r['server']} | {r['model']} | {r['batch']} | {r['fmt']} | {r['conc']} | {r['rps']:,.0f} | "
        f"{r['rps'] * r['batch']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} | "
        f"{r['cpu_ms']:.3f} | {r['cpu_util']:.2f} | {'yes' if r['correct'] else 'NO'} |"
    )


def render(
    limit: list[dict],
    results: list[dict],
    ab: list[dict],
    pab: list[dict],
    vers: dict[str, str],
    duration: float,
    elapsed: float,
    command: str,
) -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    lines = [
        "# Serving benchmark",
        "",
        "Generated by `bench/bench_serving.py`; numbers from one run, on one machine, wrk sharing the cores.",
        "",
        f"- machine: {os.cpu_count()} cores ({cpu}), shared and noisy; load generator on the same cores",
        f"- command: `{command}`; {duration:g} s per wrk run (`wrk -t1 -cN --latency`, keep-alive, Lua POST "
        f"body); whole run {elapsed:.0f} s",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()),
        "- every server: one process, 127.0.0.1, no access log, ONNX Runtime 1 intra-op thread (MLServer: "
        "scikit-learn via joblib, `parallel_workers: 0`); `correct` = the labels of a checked response equal "
        "scikit-learn's",
        "",
        "## In-process limit (1 thread)",
        "",
        "| model | batch | what | µs per call | rows/s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['batch']} | {r['what']} | {r['us']:.1f} | {r['rows_s']:,.0f} |" for r in limit
    ]
    head = [
        "| server | model | batch | body | conc | req/s | rows/s | p50 ms | p99 ms | errors "
        "| server CPU ms/req | server CPU (cores) | correct |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += ["", "## Over HTTP", "", *head, *map(_row, results)]
    lines += ["", "## Monitoring on vs off (same model, interleaved runs, c8)", "", *head, *map(_row, ab)]
    lines += [
        "",
        "## HTTP parser: llhttp (httptools) vs the previous hand-written parser (interleaved runs, c8)",
        "",
        *head,
        *map(_row, pab),
    ]
    lines += ["", "## Goals of the issue", "", *goals(limit, results, ab, pab), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
