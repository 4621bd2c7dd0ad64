"""The `onnxops` command. Each subcommand lives in its own module and is imported only when used,
so the serving and trainer images need none of the operator's dependencies."""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module with `main(argv) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("onnxops.demo", "run the whole loop (train, serve, canary, drift, rollback, retrain) locally"),
    "gen-crds": (
        "onnxops.crdgen",
        "generate crds/, the chart's crds/ and docs/crd-reference.md from the API models (--check)",
    ),
    "gen-chart-docs": (
        "onnxops.chartdocs",
        "generate the values table of charts/onnxops/README.md from values.yaml comments (--check)",
    ),
    "validate": ("onnxops.validate", "validate manifests against the CRD schemas and CEL rules"),
    "operator": ("onnxops.controller.main", "run the operator (kopf) against the current kube context"),
    "local": ("onnxops.local.cli", "the local runtime: API emulator and pod runner"),
    "train": ("onnxops.trainer.__main__", "train a model (the trainer image's entrypoint)"),
    "serve": ("onnxops.serving.__main__", "serve a model (the serving image's entrypoint)"),
    "drift": ("onnxops.drift.cli", "offline drift comparison of two CSV files"),
    "render": ("onnxops.builders.render", "print the child objects the operator would create for a manifest"),
}


def usage() -> str:
    lines = ["usage: onnxops <command> [options]", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `onnxops <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] == "--version":
        from onnxops import __version__

        print(__version__)
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"onnxops: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
