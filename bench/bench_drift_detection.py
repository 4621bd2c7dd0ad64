"""How fast drift is detected, and how often it is falsely alarmed, with the demo's settings
(examples/demo/inferenceservice-iris.yaml: PSI, threshold 0.2, window 8s, interval 4s, minSamples 300,
failureLimit 2) and the demo's traffic (25 requests/s of 1-8 rows).

    python bench/bench_drift_detection.py [--hours 3] [--trials 200] [--demo-runs 1]

Two parts:

1. A simulation with the REAL pieces except time: the real trainer (a subprocess) trains v1 (clean iris),
   v2 (the skewed CSV) and v3 (the shifted CSV) exactly as the demo's manifests say; the demo's traffic
   generator's sampler makes the rows; ONNX Runtime runs each version's model for the predicted classes;
   the live counts are binned on each version's own profile (right-closed, float32 values, as the
   server counts them); ``onnxops.drift.live.score_version`` and ``onnxops.drift.policy.decide`` make the
   decisions, every ``interval`` over the last ``window``. Requests arrive at the demo's fixed rate and go
   to one of the serving pods at random (one stable + one canary pod during a canary). Not simulated: the
   scrape/Prometheus delay (about 1s) and the operator's reaction time.
   - false alarms: v1 alone on clean traffic for ``--hours`` of simulated time (every evaluation counted);
   - detection: (a) a v2 canary joins at t=0 with a random evaluation phase: time to the Rollback decision;
     (b) the traffic shifts at t=0 (v1 alone): time to the Retrain decision.
2. ``--demo-runs N``: the real thing, N times (``onnxops demo --json-summary``): detection measured from the
   moment v2's first pod was seen ready to status.rollback.at, and from the traffic shift to
   status.retrain.at (both second-precision timestamps), plus the alarms during its no-drift windows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import yaml

from onnxops.api.v1alpha1 import InferenceServiceSpec
from onnxops.demo import data
from onnxops.drift.live import LiveCounts
from onnxops.drift.policy import PolicySpec, PriorState, Role, ServedVersion, decide
from onnxops.profile import NumericFeature, Profile, bin_counts, load_profile
from onnxops.reconcile.rollout import parse_duration

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo"
RATE, MAX_ROWS = 25.0, 8  # the demo's traffic (onnxops demo --rate default)


@dataclass
class Version:
    name: str
    profile: Profile
    session: ort.InferenceSession

    def counts(self, rows: np.ndarray) -> LiveCounts:
        x = rows.astype(np.float32)
        numeric = {
            f.name: bin_counts(f.edges, x[:, f.index].astype(np.float64)).tolist()
            for f in self.profile.features
            if isinstance(f, NumericFeature)
        }
        labels = self.session.run(None, {self.session.get_inputs()[0].name: x})[0].ravel()
        found, n = np.unique(labels.astype(str), return_counts=True)
        return LiveCounts(
            self.name,
            rows=float(len(x)),
            numeric=numeric,
            prediction_classes={str(k): float(c) for k, c in zip(found, n, strict=True)},
        )


def train(tmp: Path) -> dict[str, Version]:
    """v1, v2, v3 by the real trainer, from the demo's manifests, into ``tmp``."""
    pvc = tmp / "pvc"
    data.write_datasets(pvc / "onnxops-artifacts" / "datasets")
    isvc = yaml.safe_load((DEMO / "inferenceservice-iris.yaml").read_text())
    specs = {
        "1": yaml.safe_load((DEMO / "trainingjob-iris.yaml").read_text())["spec"],
        "2": yaml.safe_load((DEMO / "trainingjob-iris-skewed.yaml").read_text())["spec"],
        "3": isvc["spec"]["retrain"]["trainingJob"],
    }
    out: dict[str, Version] = {}
    for v, spec in specs.items():
        env = {**os.environ, "ONNXOPS_PVC_ROOT": str(pvc)}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "onnxops.trainer",
                "--spec-json",
                json.dumps(spec),
                "--run-id",
                f"v{v}",
                "--output-uri",
                f"file://{tmp}/out",
                "--termination-log",
                str(tmp / f"v{v}.json"),
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
        bundle = tmp / "out" / "iris" / f"v{v}"
        out[v] = Version(
            v, load_profile(bundle / "profile.json"), ort.InferenceSession(str(bundle / "model.onnx"))
        )
    return out


def policy_spec() -> tuple[PolicySpec, float, float]:
    spec = yaml.safe_load((DEMO / "inferenceservice-iris.yaml").read_text())["spec"]
    ps = PolicySpec.from_spec(InferenceServiceSpec.model_validate(spec))
    mon = spec["monitoring"]
    return ps, parse_duration(mon["interval"]), parse_duration(mon["drift"]["window"])


class Traffic:
    """Fixed-rate requests of 1..MAX_ROWS rows, each to a random serving pod (before t=0: the first one);
    the world can change at t=0."""

    def __init__(
        self,
        rate: float,
        rng: np.random.Generator,
        pods: list[str],
        before: data.World,
        after: data.World,
        t_start: float,
        t_end: float,
    ) -> None:
        times = np.arange(t_start, t_end, 1.0 / rate)
        self.times = times
        picks = rng.integers(0, len(pods), size=len(times))
        self.pods = [pods[0] if t < 0 else pods[int(i)] for t, i in zip(times, picks, strict=True)]
        self.rows = [
            data.sample_rows(before if t < 0 else after, int(rng.integers(1, MAX_ROWS + 1)), rng)
            for t in times
        ]

    def window(self, version: str, t: float, width: float) -> np.ndarray:
        lo, hi = (
            np.searchsorted(self.times, t - width, side="right"),
            np.searchsorted(self.times, t, side="right"),
        )
        chosen = [self.rows[i] for i in range(lo, hi) if self.pods[i] == version]
        return np.vstack(chosen) if chosen else np.empty((0, 4))


def evaluate(
    versions: dict[str, Version],
    roles: dict[str, Role],
    traffic: Traffic,
    ps: PolicySpec,
    t: float,
    width: float,
    consecutive: dict[str, int],
) -> Any:
    served = []
    for v, role in roles.items():
        rows = traffic.window(v, t, width)
        live = versions[v].counts(rows) if len(rows) else LiveCounts(v, rows=0.0)
        served.append(ServedVersion(v, role, live, versions[v].profile))
    return decide(served, ps, PriorState(consecutive=dict(consecutive)), datetime.now(UTC))


def false_alarms(
    versions: dict[str, Version],
    ps: PolicySpec,
    interval: float,
    width: float,
    hours: float,
    seed: int,
    rate: float = RATE,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    clean = data.clean()
    traffic = Traffic(rate, rng, ["1"], clean, clean, 0.0, hours * 3600)
    consecutive: dict[str, int] = {}
    n = breaches = actions = inconclusive = 0
    scores = []
    t = width
    while t <= hours * 3600:
        d = evaluate(versions, {"1": "stable"}, traffic, ps, t, width, consecutive)
        consecutive = d.consecutive
        n += 1
        breaches += int(d.breaches.get("1", False))
        actions += int(d.action is not None)
        inconclusive += int(d.verdicts.get("1") == "Inconclusive")
        if "1" in d.scores:
            scores.append(d.scores["1"])
        t += interval
    s = np.asarray(scores)
    return {
        "evaluations": n,
        "breaching_windows": breaches,
        "false_alarms": actions,
        "inconclusive": inconclusive,
        "psi_p50": float(np.median(s)),
        "psi_p99": float(np.quantile(s, 0.99)),
        "psi_max": float(s.max()),
    }


def detection(
    versions: dict[str, Version],
    ps: PolicySpec,
    interval: float,
    width: float,
    trials: int,
    seed: int,
    kind: str,
    rate: float = RATE,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    clean, shifted = data.clean(), data.shifted()
    times = []
    for _ in range(trials):
        phase = float(rng.uniform(0, interval))
        if kind == "canary":  # v2's pod joins at t=0; before that only v1 served clean traffic
            roles: dict[str, Role] = {"1": "stable", "2": "canary"}
            traffic = Traffic(rate, rng, ["1", "2"], clean, clean, -width, 120.0)
            want = "Rollback"
        else:  # the world shifts at t=0
            roles = {"1": "stable"}
            traffic = Traffic(rate, rng, ["1"], clean, shifted, -width, 120.0)
            want = "Retrain"
        consecutive: dict[str, int] = {}
        t = phase
        while t < 120.0:
            d = evaluate(versions, roles, traffic, ps, t, width, consecutive)
            consecutive = d.consecutive
            if d.action == want:
                times.append(t)
                break
            t += interval
    a = np.asarray(times)
    if not len(a):  # e.g. too little traffic for minSamples: never conclusive, never acts
        return {"trials": trials, "detected": 0, "within_s": 120.0}
    return {
        "trials": trials,
        "detected": len(times),
        "p50_s": float(np.median(a)),
        "p90_s": float(np.quantile(a, 0.9)),
        "max_s": float(a.max()),
        "min_s": float(a.min()),
    }


def demo_runs(n: int, tmp: Path) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        path = tmp / f"demo-{i}.json"
        subprocess.run(
            [sys.executable, "-m", "onnxops", "demo", "--json-summary", str(path)],
            capture_output=True,
            timeout=600,
            check=False,
        )
        doc = json.loads(path.read_text())
        evals = doc.get("driftEvaluations") or []
        quiet = [
            e
            for e in evals
            if e["stableVersion"] == 1 and e["canaryVersion"] is None and e["stage"] in ("step2", "step3")
        ]
        out.append(
            {
                "ok": doc.get("ok"),
                "prometheus": bool(doc.get("prometheusUrl")),
                "rollback_s": doc["detection"]["rollbackSeconds"],
                "retrain_s": doc["detection"]["retrainSeconds"],
                "quiet_windows": len(quiet),
                "quiet_alarms": sum(e["drift"].get("verdict") == "Drift" for e in quiet),
                "total_s": doc.get("durationSeconds"),
            }
        )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hours", type=float, default=3.0, help="simulated no-drift time (default 3 h)")
    p.add_argument("--trials", type=int, default=200, help="detection trials per scenario")
    p.add_argument("--demo-runs", type=int, default=1, help="real `onnxops demo` runs to measure (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=RATE, help="simulated requests/s (default: the demo's 25)")
    args = p.parse_args()
    ps, interval, width = policy_spec()
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as d:
        tmp = Path(d)
        versions = train(tmp)
        res: dict[str, Any] = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "settings": {
                "interval_s": interval,
                "window_s": width,
                "threshold": ps.threshold,
                "min_samples": ps.min_samples,
                "failure_limit": ps.failure_limit,
                "rate_rps": args.rate,
                "rows_per_request": f"1..{MAX_ROWS}",
            },
            "false_alarms": false_alarms(versions, ps, interval, width, args.hours, args.seed, args.rate),
            "detect_canary": detection(
                versions, ps, interval, width, args.trials, args.seed + 1, "canary", args.rate
            ),
            "detect_shift": detection(
                versions, ps, interval, width, args.trials, args.seed + 2, "shift", args.rate
            ),
            "demo_runs": demo_runs(args.demo_runs, tmp) if args.demo_runs else [],
        }
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
