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
    "approve": ("onnxops.release:approve_main", "approve a model version (the Model's spec.approvals)"),
    "revoke": ("onnxops.release:revoke_main", "revoke a version's approval"),
    "alias": ("onnxops.release:alias_main", "set or remove a model alias (the Model's spec.aliases)"),
    "promote": ("onnxops.rolloutctl:promote_main", "move a canary past its step (--full: to stable now)"),
    "abort": ("onnxops.rolloutctl:abort_main", "roll a canary back (held until the spec changes)"),
    "pause": ("onnxops.rolloutctl:pause_main", "hold a canary at its step"),
    "resume": ("onnxops.rolloutctl:resume_main", "let a paused canary continue"),
    "status": ("onnxops.rolloutctl:status_main", "a readable rollout view of an InferenceService (--watch)"),
}


# subcommand -> examples appended to its `--help` (kept here, so every command gets them the same way)
EXAMPLES: dict[str, list[str]] = {
    "demo": [
        "onnxops demo                                  # the whole loop on this machine, then a summary",
        "onnxops demo --keep --state-dir /tmp/onnxops  # leave it running to poke at it with kubectl",
        "onnxops demo --cluster                        # on the current kube context (kind quick start)",
    ],
    "gen-crds": [
        "onnxops gen-crds            # after changing operator/onnxops/api/: rewrite every generated file",
        "onnxops gen-crds --check    # CI: exit 1 when a generated CRD or the reference is stale",
    ],
    "gen-chart-docs": [
        "onnxops gen-chart-docs          # rewrite the values table of charts/onnxops/README.md",
        "onnxops gen-chart-docs --check  # CI: exit 1 when values.yaml changed and the table did not",
    ],
    "validate": [
        "onnxops validate -f examples/                             # every manifest, as the API server would",
        "onnxops validate -f new.yaml --old live.yaml              # as an update (immutable fields, CEL)",
        "onnxops validate --crds crds/ -f examples/               # against the committed CRD files",
    ],
    "operator": [
        "onnxops operator                                 # all namespaces of the current kube context",
        "onnxops operator -n team-a -n team-b --verbose   # only these namespaces, debug logs",
        "onnxops operator --liveness-port 8080 --metrics-port 8081  # /healthz and /metrics (the chart's)",
    ],
    "local": [
        "onnxops local up --kubeconfig /tmp/kubeconfig    # API emulator + pod runner; then:",
        "KUBECONFIG=/tmp/kubeconfig onnxops operator      # run the operator against it",
        "onnxops local apiserver --help                   # the API emulator alone",
    ],
    "train": [
        "onnxops train --spec-file examples/trainingjob-iris.yaml --output-uri file:///tmp/models \\",
        "    --termination-log /tmp/result.json           # train locally, exactly as the training pod does",
        'onnxops train --spec-json \'{"model": "iris", "dataset": {"uri": "sklearn://iris"}, '
        '"estimator": {"className": "LogisticRegression"}}\' --output-uri file:///tmp/models',
    ],
    "serve": [
        "onnxops serve --model-name iris --model-uri file:///tmp/models/iris/r1/model.onnx \\",
        "    --sha256 <sha256 of model.onnx> --port 8080",
        "curl -s localhost:8080/v2/health/ready; curl -s localhost:8080/metrics | head",
    ],
    "drift": [
        "onnxops drift compare --reference train.csv --current live.csv   # every statistic that applies",
        "onnxops drift compare --reference train.csv --current live.csv --method psi --json",
    ],
    "approve": [
        "onnxops approve iris 3 --reason 'review MR-12, bias report ok'   # as the kubeconfig's user",
        "kubectl onnxops approve iris 3 -n team-a --reason '...'          # the same, as a kubectl plugin",
    ],
    "revoke": [
        "onnxops revoke iris 3 --reason 'incident 42'  # latest/@alias services roll out the approved one",
    ],
    "alias": [
        "onnxops alias set iris production 3   # services with version: '@production' roll out v3",
        "onnxops alias rm iris staging",
    ],
    "promote": [
        "onnxops promote iris            # past the current step (a manual gate, a pause); status only",
        "kubectl onnxops promote iris --full -n team-a   # the canary becomes stable now",
    ],
    "abort": [
        "onnxops abort iris --reason 'wrong feature order'  # stable keeps 100 %, held until spec changes",
    ],
    "pause": ["onnxops pause iris --reason 'waiting for the on-call'"],
    "resume": ["onnxops resume iris"],
    "status": [
        "onnxops status iris             # steps, weights, analysis, drift and performance per version",
        "kubectl onnxops status iris -w  # print again on every change",
    ],
    "render": [
        "onnxops render -f examples/inferenceservice-iris.yaml    # the Deployment, Services, HPA it creates",
        "onnxops render -f examples/trainingjob-iris.yaml         # the training Job",
    ],
}


def examples(name: str) -> str:
    return "\n".join(["", "examples:", *(f"  {line}" for line in EXAMPLES.get(name, []))])


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
    module_name, _, function = COMMANDS[name][0].partition(":")
    entry = getattr(importlib.import_module(module_name), function or "main")
    if not any(a in ("-h", "--help") for a in rest):
        return int(entry(rest) or 0)
    try:  # the command's own help (argparse exits after printing it), then its examples
        code = int(entry(rest) or 0)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if code == 0 and name in EXAMPLES:
        print(examples(name))
    return code


if __name__ == "__main__":
    sys.exit(main())
