"""``onnxops operator``: run the kopf operator against the current kube context (or in-cluster)."""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys

from onnxops.settings import Settings


def peering_priority(requested: int | None, peering: bool) -> int:
    """The kopf priority: as requested, else random in 1..32767 when peering (0 when standalone)."""
    if requested is not None:
        return requested
    return random.SystemRandom().randint(1, 32767) if peering else 0


# kopf recognises the objects of these client libraries when they are installed, and importing it then imports
# them: the `kubernetes` client alone is ~40 MiB of the operator's memory. The operator gives kopf plain
# dicts and logs in with its own handler (handlers.login), so kopf never needs them.
KOPF_OPTIONAL_CLIENTS = ("kubernetes", "kubernetes_asyncio", "pykube")


def hide_optional_clients(modules: dict[str, object] | None = None) -> None:
    """Make ``import kubernetes`` (and the others) fail in this process unless already imported."""
    mods = sys.modules if modules is None else modules
    for name in KOPF_OPTIONAL_CLIENTS:
        mods.setdefault(name, None)  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="onnxops operator", description=__doc__)
    p.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="namespace to watch (repeatable; default: $ONNXOPS_WATCH_NAMESPACES, else all)",
    )
    p.add_argument("--liveness-port", type=int, default=0, help="serve /healthz on this port (0: off)")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("ONNXOPS_METRICS_PORT") or 0),
        help="serve the operator's own Prometheus metrics (onnxops_operator_*) on this port "
        "(default: $ONNXOPS_METRICS_PORT, else 0: off)",
    )
    p.add_argument(
        "--peering", default="", help="kopf peering name for leader election (default: standalone)"
    )
    p.add_argument(
        "--priority",
        type=int,
        default=None,
        help="kopf peering priority; the highest one is active (default with --peering: a random one per "
        "process, since kopf pauses every pod that shares the highest priority)",
    )
    p.add_argument("--verbose", action="store_true", help="debug logging (and kopf's per-event logs)")
    args = p.parse_args(argv)
    hide_optional_clients()
    import kopf

    from onnxops.controller import handlers

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # kopf logs every watch-event handler call at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = args.namespace or list(Settings.from_env().watch_namespaces)
    # every address in a pod; the local runtime's pods share the host network and bind their own
    # loopback address (ONNXOPS_HOST), as the serving pods do
    bind = os.environ.get("ONNXOPS_HOST") or "0.0.0.0"
    handlers.WATCH_NAMESPACES[:] = namespaces
    if args.metrics_port:
        from onnxops.controller import opmetrics

        try:
            opmetrics.serve(args.metrics_port, bind)
        except OSError as e:  # the operator still works; the chart's absent() alert reports the gap
            logging.getLogger("onnxops.operator").error(
                "cannot serve metrics on port %d: %s", args.metrics_port, e
            )
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=not args.peering,
        peering_name=args.peering or None,
        priority=peering_priority(args.priority, bool(args.peering)),
        liveness_endpoint=f"http://{bind}:{args.liveness_port}/healthz" if args.liveness_port else None,
    )
    return 0
