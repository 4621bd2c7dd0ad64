"""``onnxops operator``: run the kopf operator against the current kube context (or in-cluster)."""

from __future__ import annotations

import argparse
import logging

from onnxops.settings import Settings


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
        "--peering", default="", help="kopf peering name for leader election (default: standalone)"
    )
    p.add_argument("--priority", type=int, default=0, help="kopf peering priority (highest one is active)")
    p.add_argument("--verbose", action="store_true", help="debug logging (and kopf's per-event logs)")
    args = p.parse_args(argv)
    import kopf

    from onnxops.controller import handlers  # noqa: F401  (registers the handlers)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # kopf logs every watch-event handler call at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = args.namespace or list(Settings.from_env().watch_namespaces)
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=not args.peering,
        peering_name=args.peering or None,
        priority=args.priority,
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None,
    )
    return 0
