"""`onnxops local`: run the local Kubernetes.

    onnxops local apiserver [--host H] [--port N] [--kubeconfig PATH] [--crds DIR]
        the API emulator alone (no pods run)
    onnxops local up [--state-dir DIR] [--host H] [--port N] [--kubeconfig PATH] [--crds DIR]
        the emulator plus the pod runner and the Job/Deployment/Endpoints controllers

Both run until Ctrl-C (or SIGTERM), then stop every pod process and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from onnxops.local.runtime import LocalRuntime, load_crds, project_crds_dir


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="onnxops local", description="the local runtime: API emulator and pod runner"
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (
        ("apiserver", "run the API emulator only"),
        ("up", "run the API emulator, the pod runner and the built-in controllers"),
    ):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        s.add_argument("--port", type=int, default=0, help="port (default: a free one)")
        s.add_argument("--kubeconfig", help="write a kubeconfig for the emulator here")
        s.add_argument("--crds", help="register the CRDs in this directory (default: the project's crds/)")
        s.add_argument("--namespace", default="default", help="the kubeconfig's namespace")
        if name == "up":
            s.add_argument(
                "--state-dir",
                default=".onnxops-local",
                help="pod logs, volumes and PVC data go here (default ./.onnxops-local)",
            )
    return p


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _apiserver(args: argparse.Namespace) -> int:
    from onnxops.local.apiserver import ApiServer, write_kubeconfig

    server = ApiServer(args.host, args.port)
    crds = Path(args.crds) if args.crds else project_crds_dir()
    if crds is not None:
        for crd in load_crds(crds):
            server.register_crd(crd)
    url = await server.start()
    try:
        print(f"API server listening on {url}", flush=True)
        if args.kubeconfig:
            print(f"kubeconfig: {write_kubeconfig(args.kubeconfig, url, args.namespace)}", flush=True)
        await _wait_for_signal()
    finally:
        await server.stop()
    return 0


async def _up(args: argparse.Namespace) -> int:
    rt = LocalRuntime(
        Path(args.state_dir),
        host=args.host,
        port=args.port,
        kubeconfig=args.kubeconfig,
        crds_dir=args.crds,
        namespace=args.namespace,
    )
    await rt.start()
    try:
        print(f"API server listening on {rt.url}", flush=True)
        print(f"kubeconfig: {rt.kubeconfig}", flush=True)
        print(f"state dir: {rt.state_dir}  (Ctrl-C stops every pod and exits)", flush=True)
        await _wait_for_signal()
    finally:
        print("stopping pods...", flush=True)
        await rt.stop()
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.crds and not Path(args.crds).is_dir():
        print(f"onnxops local: --crds {args.crds}: not a directory", file=sys.stderr)
        return 2
    return asyncio.run(_apiserver(args) if args.cmd == "apiserver" else _up(args))
