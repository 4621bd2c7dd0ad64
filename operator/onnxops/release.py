"""`onnxops approve | revoke | alias`: release commands that write the Model (also `kubectl onnxops ...`).

They write only the Model's ``spec.approvals`` and ``spec.aliases`` (the release team's fields), never a
ModelVersion or an InferenceService and never status: the operator resolves what to serve from the Model,
so a command and a Git commit are the same kind of change. Every command is idempotent (approving an
approved version, setting an alias to its current version: nothing is written). Approvals are written
with the Model's ``resourceVersion`` as a precondition (a concurrent change gives 409, the command reads
again and retries), aliases with a merge patch of the one key.

A Model that a GitOps tool applies (Argo CD or Flux labels/annotations) is refused unless ``--force``:
the next sync would revert the change; change it in Git instead.

Who: ``approvals[].by`` is the identity the API server reports for the command's credentials
(``SelfSubjectReview``, Kubernetes >= 1.28), else the kubeconfig user entry's name, marked
``(kubeconfig user, unverified)``. It is a record, not a control: RBAC on Models decides who may approve
(docs/governance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from onnxops import API_VERSION
from onnxops.api.conditions import now_rfc3339
from onnxops.api.v1alpha1.modelversion import ListedModelVersion
from onnxops.kube.client import ApiError, KubeClient, resource_path

API = API_VERSION
CLI_MANAGER = {"fieldManager": "onnxops-cli"}
GITOPS_KEYS = ("argocd.argoproj.io/", "kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")
MAX_TRIES = 5


class ReleaseError(Exception):
    """A refused command: the message says what and why."""


# ---- pure ---------------------------------------------------------------------------------------------


def gitops_manager(obj: Mapping[str, Any] | None) -> str | None:
    """The GitOps tool that applies this object, from its labels/annotations, or None."""
    md = (obj or {}).get("metadata") or {}
    keys = [*(md.get("labels") or {}), *(md.get("annotations") or {})]
    for k in keys:
        if k.startswith("argocd.argoproj.io/"):
            return "Argo CD"
        if k.startswith(("kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/")):
            return "Flux"
    return None


def check_servable(
    model: str, version: int, mv: ListedModelVersion | Mapping[str, Any] | None, *, approving: bool
) -> None:
    """Refuse an approval (or alias) of a version that does not exist, failed, was rolled back, or whose
    stored object does not parse (the operator would never serve it). ``mv``: parsed as the operator's
    version resolution parses it (a stored object is parsed here)."""
    if mv is None:
        raise ReleaseError(f"no ModelVersion v{version} of model {model} in this namespace")
    listed = ListedModelVersion.of(mv)
    if listed.parsed is None:
        raise ReleaseError(
            f"v{version} of {model} cannot be read: its stored object does not parse ({listed.problem}); "
            "it is never served"
        )
    st = listed.status
    if st.phase == "Failed":
        raise ReleaseError(
            f"v{version} of {model} failed verification ({st.message or ''}); it is never served"
        )
    if approving and st.rejected:
        who = ", ".join(sorted(st.rejected_by or {})) or "an InferenceService"
        raise ReleaseError(
            f"v{version} of {model} was rolled back by {who} ({st.rejected_reason}); a "
            "rejected version cannot be approved (pin it by number in that service to "
            "re-admit it first)"
        )
    if not approving and st.phase != "Ready":
        raise ReleaseError(
            f"v{version} of {model} is not Ready ({st.phase or 'Pending'}); an alias "
            "must name a Ready version (--force to set it anyway: services keep what they "
            "serve until it is Ready)"
        )


def with_approval(
    spec: Mapping[str, Any], version: int, by: str, at: str, reason: str
) -> list[dict[str, Any]]:
    out = [dict(a) for a in spec.get("approvals") or [] if int(a.get("version", 0)) != version]
    out.append({"version": version, "by": by, "at": at, "reason": reason})
    return sorted(out, key=lambda a: int(a["version"]))


def without_approval(spec: Mapping[str, Any], version: int) -> list[dict[str, Any]]:
    return [dict(a) for a in spec.get("approvals") or [] if int(a.get("version", 0)) != version]


def approval_of(spec: Mapping[str, Any], version: int) -> dict[str, Any] | None:
    return next((dict(a) for a in spec.get("approvals") or [] if int(a.get("version", 0)) == version), None)


def kubeconfig_user(path: str | None, context: str | None) -> str | None:
    p = path or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube/config")
    try:
        cfg = yaml.safe_load(Path(p).read_text()) or {}
    except OSError:
        return None
    name = context or cfg.get("current-context")
    ctx = next((c.get("context") or {} for c in cfg.get("contexts") or [] if c.get("name") == name), {})
    user = ctx.get("user")
    return str(user) if user else None


# ---- I/O ----------------------------------------------------------------------------------------------


async def whoami(client: KubeClient, fallback: str | None) -> str:
    """The authenticated user as the API server sees it (SelfSubjectReview), else the kubeconfig user."""
    try:
        review = await client.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        name = ((review.get("status") or {}).get("userInfo") or {}).get("username")
        if name:
            return str(name)
    except (ApiError, OSError, ValueError):
        pass
    return f"{fallback or 'unknown'} (kubeconfig user, unverified)"


async def _find_mv(client: KubeClient, ns: str, model: str, version: int) -> ListedModelVersion | None:
    """Version ``version`` of ``model``, parsed (only the model's versions are parsed)."""
    mvs = await client.list(API, "ModelVersion", ns)
    listed = (ListedModelVersion.parse(m) for m in mvs if (m.get("spec") or {}).get("model") == model)
    return next((m for m in listed if m.version == version), None)


async def _write_spec(
    client: KubeClient,
    ns: str,
    model: str,
    current: dict[str, Any] | None,
    spec_patch: dict[str, Any],
    *,
    precondition: bool,
) -> None:
    if current is None:
        body = {
            "apiVersion": API,
            "kind": "Model",
            "metadata": {"name": model, "namespace": ns},
            "spec": spec_patch,
        }
        await client.request("POST", resource_path(API, "Model", ns), body=body, params=CLI_MANAGER)
        return
    patch: dict[str, Any] = {"spec": spec_patch}
    if precondition:
        patch["metadata"] = {"resourceVersion": current["metadata"]["resourceVersion"]}
    await client.request(
        "PATCH",
        resource_path(API, "Model", ns, model),
        body=patch,
        content_type="application/merge-patch+json",
        params=CLI_MANAGER,
    )


def _guard(current: dict[str, Any] | None, force: bool) -> None:
    tool = gitops_manager(current)
    if tool and not force:
        raise ReleaseError(
            f"Model {current['metadata']['name']} is applied by {tool} from Git: change it "  # type: ignore[index]
            "there (the next sync reverts a command), or pass --force"
        )


async def approve(
    client: KubeClient,
    ns: str,
    model: str,
    version: int,
    reason: str,
    who: str,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> str:
    check_servable(model, version, await _find_mv(client, ns, model, version), approving=True)
    for _ in range(MAX_TRIES):
        current = await client.get(API, "Model", ns, model)
        _guard(current, force)
        spec = (current or {}).get("spec") or {}
        have = approval_of(spec, version)
        if have is not None:
            return f"{model} v{version} is already approved (by {have.get('by')} at {have.get('at')})"
        approvals = with_approval(spec, version, who, now_rfc3339(now or datetime.now(UTC)), reason)
        try:
            await _write_spec(client, ns, model, current, {"approvals": approvals}, precondition=True)
        except ApiError as e:
            if e.status == 409:
                continue
            raise
        return f"{model} v{version} approved by {who}"
    raise ReleaseError(f"Model {model} kept changing; try again")


async def revoke(client: KubeClient, ns: str, model: str, version: int, *, force: bool = False) -> str:
    for _ in range(MAX_TRIES):
        current = await client.get(API, "Model", ns, model)
        _guard(current, force)
        spec = (current or {}).get("spec") or {}
        if current is None or approval_of(spec, version) is None:
            return f"{model} v{version} is not approved: nothing to revoke"
        try:
            await _write_spec(
                client, ns, model, current, {"approvals": without_approval(spec, version)}, precondition=True
            )
        except ApiError as e:
            if e.status == 409:
                continue
            raise
        return f"approval of {model} v{version} revoked"
    raise ReleaseError(f"Model {model} kept changing; try again")


async def set_alias(
    client: KubeClient, ns: str, model: str, alias: str, version: int | None, *, force: bool = False
) -> str:
    """``version`` None removes the alias."""
    if version is not None and not force:
        check_servable(model, version, await _find_mv(client, ns, model, version), approving=False)
    current = await client.get(API, "Model", ns, model)
    _guard(current, force)
    have = (((current or {}).get("spec") or {}).get("aliases") or {}).get(alias)
    if have == version:
        return f"{model}@{alias} is already " + (f"v{version}" if version is not None else "unset")
    if current is None and version is None:
        return f"{model}@{alias} is already unset"
    await _write_spec(client, ns, model, current, {"aliases": {alias: version}}, precondition=False)
    return f"{model}@{alias} -> v{version}" if version is not None else f"{model}@{alias} removed"


# ---- command line -------------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", default=None, help="namespace (default: the context's, else default)")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG)")
    p.add_argument("--context", default=None, help="kubeconfig context")
    p.add_argument(
        "--force",
        action="store_true",
        help="write even when a GitOps tool applies the Model (or the alias target is not Ready)",
    )


def _namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return str(args.namespace)
    p = (
        args.kubeconfig
        or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        or str(Path.home() / ".kube/config")
    )
    try:
        cfg = yaml.safe_load(Path(p).read_text()) or {}
    except OSError:
        return "default"
    name = args.context or cfg.get("current-context")
    ctx = next((c.get("context") or {} for c in cfg.get("contexts") or [] if c.get("name") == name), {})
    return str(ctx.get("namespace") or "default")


def _run(args: argparse.Namespace, work: Any) -> int:
    async def go() -> str:
        client = KubeClient.from_kubeconfig(args.kubeconfig, args.context)
        try:
            return str(await work(client, _namespace(args)))
        finally:
            await client.close()

    try:
        print(asyncio.run(go()))
        return 0
    except ReleaseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ApiError as e:
        print(f"error: the API server answered {e}", file=sys.stderr)
        return 1


def approve_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="onnxops approve",
        description="Approve a version of a model (writes spec.approvals of the Model).",
    )
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("--reason", required=True, help="why (a review, a ticket); recorded with the approval")
    _common(p)
    args = p.parse_args(argv)

    async def work(c: KubeClient, ns: str) -> str:
        who = await whoami(c, kubeconfig_user(args.kubeconfig, args.context))
        return await approve(c, ns, args.model, args.version, args.reason, who, force=args.force)

    return _run(args, work)


def revoke_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="onnxops revoke",
        description="Revoke the approval of a version (a "
        "service serving it by latest or an alias rolls out the approved one).",
    )
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("--reason", default="", help="why (printed; the Model keeps only current approvals)")
    _common(p)
    args = p.parse_args(argv)
    return _run(args, lambda c, ns: revoke(c, ns, args.model, args.version, force=args.force))


def alias_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="onnxops alias",
        description="Set or remove an alias of a model "
        "(writes spec.aliases of the Model); services with version '@<alias>' "
        "follow.",
    )
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("set", help="point an alias at a version")
    s.add_argument("model")
    s.add_argument("alias")
    s.add_argument("version", type=int)
    _common(s)
    r = sub.add_parser("rm", help="remove an alias")
    r.add_argument("model")
    r.add_argument("alias")
    _common(r)
    args = p.parse_args(argv)
    version = args.version if args.action == "set" else None
    return _run(args, lambda c, ns: set_alias(c, ns, args.model, args.alias, version, force=args.force))


def kubectl_main() -> int:
    """`kubectl onnxops ...` (the executable kubectl-onnxops on PATH): the same commands."""
    from onnxops.cli import main

    return main(sys.argv[1:])
