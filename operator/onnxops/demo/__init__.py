"""``onnxops demo``: the whole loop — train, register, serve, canary, drift, rollback, retrain — on this
machine (the local runtime, the real operator, a real Prometheus when installed) or on the current kube
context (``--cluster``), step by step, ending with a summary table.

    onnxops demo [--scenario default|concept-drift] [--keep] [--state-dir DIR] [--cluster]
                 [--no-prometheus] [--json-summary FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="onnxops demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--keep", action="store_true", help="leave everything running at the end (kubectl, curl) until Ctrl-C"
    )
    p.add_argument("--state-dir", type=Path, help="keep the runtime's state here (default: a temporary dir)")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="run against the current kube context (kind quick start) instead of the local runtime",
    )
    p.add_argument(
        "--no-prometheus",
        action="store_true",
        help="do not start Prometheus: the operator scrapes the serving pods directly",
    )
    p.add_argument(
        "--json-summary", type=Path, help="write the outcome (objects' status, timings) as JSON here"
    )
    p.add_argument("--examples", type=Path, help="directory of the demo manifests (default: examples/demo)")
    p.add_argument("--rate", type=float, default=25.0, help="traffic, requests per second (default 25)")
    p.add_argument(
        "--scenario",
        choices=("default", "concept-drift"),
        default="default",
        help="default: data drift (canary rollback, retrain on shifted traffic); concept-drift: the inputs "
        "stay, the true labels change; live accuracy from feedback falls, retrain on the new labels",
    )
    return p


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, message: str) -> None:
        lead = message[: len(message) - len(message.lstrip("\n"))]
        print(f"{lead}[{time.monotonic() - self.t0:6.1f}s] {message.lstrip(chr(10))}", flush=True)


def _kubectl() -> str:
    local = Path(sys.executable).with_name("kubectl")
    return str(local) if local.exists() else (shutil.which("kubectl") or "kubectl")


def keep_instructions(kubeconfig: Path | None, url: str, model: str = "iris") -> str:
    k = _kubectl()
    body = '{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
    lines = ["", "== still running (--keep); Ctrl-C stops everything"]
    if kubeconfig is not None:
        lines.append(f"  export KUBECONFIG={kubeconfig}")
    lines += [
        f"  {k} get onnxops",
        f"  {k} describe oisvc {model}",
        f"  {k} get pods,deployments,jobs,services",
        f"  {k} logs -l onnxops.dev/inference-service={model}",
        f"  curl -s {url}/v2/models/{model}/infer -H 'Content-Type: application/json' -d '{body}'",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    from onnxops.demo import summary
    from onnxops.demo.concept import scenario_class
    from onnxops.demo.scenario import ISVC, Scenario

    clock = Clock()
    env: Any
    if args.cluster:
        from onnxops.demo.cluster import ClusterEnv

        env = ClusterEnv(log=clock.say)
    else:
        from onnxops.demo.env import LocalEnv

        env = LocalEnv(args.state_dir, prometheus=not args.no_prometheus, log=clock.say)
    main = asyncio.current_task()
    interrupted = stopping = False

    def on_signal() -> None:
        nonlocal interrupted
        if interrupted or stopping:
            print("still shutting down...", flush=True)
            return
        interrupted = True
        print("\ninterrupted: shutting everything down", flush=True)
        if main is not None:
            main.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    doc: dict[str, Any] = {"ok": False, "mode": "cluster" if args.cluster else "local", "error": None}
    scenario: Scenario | None = None
    try:
        try:
            await env.start()
        except (RuntimeError, OSError, ValueError) as e:
            doc["error"] = f"cannot start: {e}"
            clock.say(f"demo failed: cannot start: {e}")
            return EXIT_FAILED
        doc["prometheusUrl"] = env.prometheus_url
        scenario = scenario_class(args.scenario)(env, clock.say, examples=args.examples, rate=args.rate)
        try:
            await scenario.run()
            doc["ok"] = True
        except (TimeoutError, RuntimeError) as e:
            doc["error"] = str(e)
            clock.say(f"demo failed: {e}")
        with contextlib.suppress(Exception):
            await scenario.obs.poll_once()
        _fill(doc, scenario, clock)
        print(summary.render(doc), flush=True)
        if args.json_summary:
            summary.write_json(args.json_summary, doc)
        if args.keep:
            print(keep_instructions(env.kubeconfig, await env.service_url(ISVC)), flush=True)
            await asyncio.Event().wait()
    except asyncio.CancelledError:
        doc["error"] = doc["error"] or "interrupted"
        if scenario is not None and "steps" not in doc:
            _fill(doc, scenario, clock)
    finally:
        stopping = True  # a Ctrl-C from here on only says "still shutting down"
        await env.stop()
        doc["processes"] = env.accounting()
        if args.json_summary:
            summary.write_json(args.json_summary, doc)
        clock.say("stopped: operator, Prometheus, pods and the API are down")
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if doc["ok"] else EXIT_FAILED


def _fill(doc: dict[str, Any], scenario: Any, clock: Clock) -> None:
    from onnxops.demo import summary

    obs = scenario.obs
    doc.update(
        durationSeconds=round(time.monotonic() - clock.t0, 1),
        steps=[s.to_json() for s in scenario.steps],
        objects=summary.objects(obs),
        snapshots=obs.snapshots,
        driftEvaluations=obs.evaluations,
        timeline=obs.timeline,
        deploymentReadyAt={str(k): v for k, v in obs.deployment_ready_at.items()},
        traffic=scenario.traffic.stats.to_json() if scenario.traffic else {},
        trafficWorlds=scenario.traffic.switched_at if scenario.traffic else {},
        feedback=_feedback(scenario),
        detection=scenario.detection(),
        scenario=scenario.name,
        performanceEvaluations=obs.performance,
    )
    extra = getattr(scenario, "extra_summary", None)
    if extra is not None:
        doc.update(extra())


def _feedback(scenario: Any) -> dict[str, Any]:
    """The ground truth the traffic generator sent to the feedback endpoint (requests, items accepted and
    unresolved, the first failure) and the answers whose id was not the request's (their rows got none)."""
    fb, tr = scenario.feedback, scenario.traffic
    if fb is None or tr is None:
        return {}
    return {**fb.to_json(), "idMismatches": tr.id_mismatches}


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.rate <= 0:
        print("onnxops demo: --rate must be > 0", file=sys.stderr)
        return 2
    if args.examples is not None and not args.examples.is_dir():
        print(f"onnxops demo: --examples {args.examples}: not a directory", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
