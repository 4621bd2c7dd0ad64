"""Pure planning: a Pod's container -> the local process to run (argv, env, cwd, files, paths).

Emulates what the kubelet and the container runtime give a container: env (literal, configMap/secret
refs, the downward API, `$(VAR)` expansion), volumes (PVC -> `<state>/pvc/<claim>` shared by every pod
mounting it, emptyDir -> per-pod dir, ConfigMap/Secret -> files of their keys) and the termination-message
file. Paths the container would see (mount paths, the termination-message path) are mapped to local paths,
and env values and args that start with such a path are rewritten to the local path.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnxops.local.runner.images import LocalImage, container_argv, localize_argv, lookup

Obj = dict[str, Any]
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


class PlanError(Exception):
    """The container cannot be started (yet); `reason` becomes the waiting reason and the Event reason."""

    def __init__(self, reason: str, message: str, image: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.image = image  # ImageNotLocal: the image that cannot run


@dataclass
class ProcessPlan:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    termination_path: str  # local file
    dirs: list[str] = field(default_factory=list)  # to create
    files: dict[str, bytes] = field(default_factory=dict)  # ConfigMap/Secret volume files to write
    # container backend: who owns the dirs and files (the container's user, as fsGroup would make them
    # writable), and the command that removes the container once its process is gone
    owner: tuple[int, int] | None = None
    cleanup: list[str] = field(default_factory=list)


SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class ServiceAccountToken:
    """What the kubelet projects for a pod's ServiceAccount: the token, the API server's CA and the
    namespace at SA_MOUNT, and KUBERNETES_SERVICE_HOST/PORT pointing at the API server (HTTPS)."""

    token: str
    ca_pem: bytes
    namespace: str
    host: str
    port: int

    def files(self, directory: str) -> dict[str, bytes]:
        d = Path(directory)
        kubeconfig = json.dumps(
            {  # JSON is YAML: what kubectl, kopf and the clients read
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "sa",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": f"https://{self.host}:{self.port}",
                            "certificate-authority": str(d / "ca.crt"),
                        },
                    }
                ],
                "users": [{"name": "sa", "user": {"tokenFile": str(d / "token")}}],
                "contexts": [
                    {"name": "sa", "context": {"cluster": "local", "user": "sa", "namespace": self.namespace}}
                ],
            }
        )
        return {
            str(d / "token"): self.token.encode(),
            str(d / "ca.crt"): self.ca_pem,
            str(d / "namespace"): self.namespace.encode(),
            str(d / "kubeconfig"): kubeconfig.encode(),
        }

    def env(self) -> dict[str, str]:
        return {
            "KUBERNETES_SERVICE_HOST": self.host,
            "KUBERNETES_SERVICE_PORT": str(self.port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.port),
        }


def automounts_token(pod: Obj) -> bool:
    return pod.get("spec", {}).get("automountServiceAccountToken") is not False


def sa_dir(state_dir: str, pod: Obj) -> str:
    return str(Path(pod_dir(state_dir, pod)) / "serviceaccount")


def pod_dir(state_dir: str, pod: Obj) -> str:
    md = pod["metadata"]
    return str(Path(state_dir) / "pods" / f"{md.get('namespace', 'default')}_{md['name']}_{md['uid'][:8]}")


def log_path(state_dir: str, namespace: str, pod: str, container: str) -> str:
    return str(Path(state_dir) / "logs" / f"{namespace}_{pod}_{container}.log")


_VAR_RE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubelet `$(VAR)` expansion: defined vars are substituted, `$$` escapes, unknown refs stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR_RE.sub(sub, value)


def _label_ref(path: str, md: Obj) -> str | None:
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if not m:
        return None
    return str((md.get(m.group(1)) or {}).get(m.group(2), ""))


def field_ref(pod: Obj, path: str, pod_ip: str) -> str:
    md, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": md.get("name", ""),
        "metadata.namespace": md.get("namespace", "default"),
        "metadata.uid": md.get("uid", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
        "spec.nodeName": spec.get("nodeName") or "local",
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
    }
    if path in simple:
        return str(simple[path])
    ref = _label_ref(path, md)
    if ref is None:
        raise PlanError("CreateContainerConfigError", f"unsupported fieldRef fieldPath {path!r}")
    return ref


def _key_data(kind: str, obj: Obj) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if kind == "Secret":
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = str(v).encode()
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v)
    else:
        for k, v in (obj.get("data") or {}).items():
            out[k] = str(v).encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v)
    return out


def _lookup_key(kind: str, objs: Mapping[str, Obj], ref: Obj, ns: str) -> str | None:
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    obj = objs.get(name)
    if obj is None:
        if optional:
            return None
        raise PlanError("CreateContainerConfigError", f'{kind.lower()} "{name}" not found')
    data = _key_data(kind, obj)
    if key not in data:
        if optional:
            return None
        raise PlanError("CreateContainerConfigError", f"couldn't find key {key} in {kind} {ns}/{name}")
    return data[key].decode(errors="replace")


def container_env(
    pod: Obj, container: Obj, pod_ip: str, configmaps: Mapping[str, Obj], secrets: Mapping[str, Obj]
) -> dict[str, str]:
    """The container's environment as the kubelet builds it (envFrom first, then env in order)."""
    ns = pod.get("metadata", {}).get("namespace", "default")
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, key, objs in (("ConfigMap", "configMapRef", configmaps), ("Secret", "secretRef", secrets)):
            ref = src.get(key)
            if ref is None:
                continue
            obj = objs.get(ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise PlanError("CreateContainerConfigError", f'{kind.lower()} "{ref.get("name")}" not found')
            for k, v in _key_data(kind, obj).items():
                env[prefix + k] = v.decode(errors="replace")
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        vf = item["valueFrom"]
        value: str | None
        if "fieldRef" in vf:
            value = field_ref(pod, vf["fieldRef"].get("fieldPath", ""), pod_ip)
        elif "secretKeyRef" in vf:
            value = _lookup_key("Secret", secrets, vf["secretKeyRef"], ns)
        elif "configMapKeyRef" in vf:
            value = _lookup_key("ConfigMap", configmaps, vf["configMapKeyRef"], ns)
        elif "resourceFieldRef" in vf:
            value = ""
        else:
            raise PlanError("CreateContainerConfigError", f"env {name}: unsupported valueFrom {sorted(vf)}")
        if value is not None:
            env[name] = value
    return env


def volume_dirs(pod: Obj, state_dir: str) -> tuple[dict[str, str], dict[str, str]]:
    """volume name -> local dir, and for PVC volumes: volume name -> claim name."""
    base = Path(pod_dir(state_dir, pod)) / "volumes"
    dirs: dict[str, str] = {}
    claims: dict[str, str] = {}
    for vol in pod.get("spec", {}).get("volumes") or []:
        name = vol["name"]
        if "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"]["claimName"]
            dirs[name] = str(Path(state_dir) / "pvc" / claim)
            claims[name] = claim
        else:  # emptyDir, configMap, secret (and anything else) live in the pod's own dir
            dirs[name] = str(base / name)
    return dirs, claims


def volume_files(
    pod: Obj, state_dir: str, configmaps: Mapping[str, Obj], secrets: Mapping[str, Obj]
) -> dict[str, bytes]:
    """Files of ConfigMap/Secret volumes: every key (or the `items` chosen) under the volume's dir."""
    dirs, _ = volume_dirs(pod, state_dir)
    files: dict[str, bytes] = {}
    for vol in pod.get("spec", {}).get("volumes") or []:
        for kind, key, objs, name_key in (
            ("ConfigMap", "configMap", configmaps, "name"),
            ("Secret", "secret", secrets, "secretName"),
        ):
            src = vol.get(key)
            if src is None:
                continue
            obj = objs.get(src.get(name_key, ""))
            if obj is None:
                if src.get("optional"):
                    continue
                raise PlanError("FailedMount", f'{kind.lower()} "{src.get(name_key)}" not found')
            data = _key_data(kind, obj)
            items = src.get("items") or [{"key": k, "path": k} for k in data]
            for it in items:
                if it["key"] not in data:
                    missing = f"couldn't find key {it['key']} in {kind} {src.get(name_key)}"
                    raise PlanError("FailedMount", missing)
                files[str(Path(dirs[vol["name"]]) / it["path"])] = data[it["key"]]
    return files


def path_map(pod: Obj, container: Obj, state_dir: str) -> dict[str, str]:
    """Container path -> local path, for every mount and the termination-message file."""
    dirs, claims = volume_dirs(pod, state_dir)
    mapping: dict[str, str] = {}
    for vm in container.get("volumeMounts") or []:
        if vm["name"] not in dirs:
            raise PlanError("CreateContainerConfigError", f"volumeMount {vm['name']!r}: no such volume")
        local = Path(dirs[vm["name"]])
        if vm.get("subPath"):
            local = local / vm["subPath"]
        mount = vm["mountPath"].rstrip("/") or "/"
        mapping[mount] = str(local)
        # A claim mounted at <root>/<claim> means <root> stands for the shared PVC root.
        claim = claims.get(vm["name"])
        if claim and not vm.get("subPath") and mount.endswith("/" + claim):
            mapping.setdefault(mount[: -len(claim) - 1] or "/", str(Path(state_dir) / "pvc"))
    tpath = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
    mapping[tpath] = str(Path(pod_dir(state_dir, pod)) / "termination" / container["name"])
    return mapping


def rewrite(value: str, mapping: Mapping[str, str]) -> str:
    """Rewrite a value that starts with a container path to the local path (longest match first)."""
    for cpath in sorted(mapping, key=len, reverse=True):
        if value == cpath:
            return mapping[cpath]
        prefix = cpath if cpath.endswith("/") else cpath + "/"
        if value.startswith(prefix):
            return mapping[cpath].rstrip("/") + "/" + value[len(prefix) :]
    return value


# The host environment a local "container" inherits: what the local Python environment needs to behave
# as the image would (PYTHONPATH included: a tree run with PYTHONPATH=<tree>/operator runs its own code).
BASE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT", "PYTHONPATH")


def plan_container(
    pod: Obj,
    container: Obj,
    *,
    state_dir: str,
    pod_ip: str,
    python: str,
    configmaps: Mapping[str, Obj],
    secrets: Mapping[str, Obj],
    base_env: Mapping[str, str],
    extra_images: Mapping[str, LocalImage] | None = None,
    service_account: ServiceAccountToken | None = None,
) -> ProcessPlan:
    image = container.get("image", "")
    img = lookup(image, extra_images)
    if img is None:
        raise PlanError(
            "ImageNotLocal",
            f'image "{image}" cannot run in the local runtime: only */onnxops-trainer, */onnxops-serving and '
            "*/onnxops-operator images map to the local Python environment",
            image=image,
        )
    mapping = path_map(pod, container, state_dir)
    files = volume_files(pod, state_dir, configmaps, secrets)
    env = container_env(pod, container, pod_ip, configmaps, secrets)
    if service_account is not None and automounts_token(pod):
        # the projected token; the in-cluster path is fixed, so a process gets the same files at a local
        # path and KUBECONFIG pointing at them (kopf and our client fall back to it), as its equivalent
        sdir = sa_dir(state_dir, pod)
        mapping.setdefault(SA_MOUNT, sdir)
        files.update(service_account.files(sdir))
        # (the container path: rewritten to the local one with the other paths below)
        env = {**service_account.env(), "KUBECONFIG": f"{SA_MOUNT}/kubeconfig", **env}
    argv = [expand(a, env) for a in container_argv(img, container.get("command"), container.get("args"))]
    try:
        argv = localize_argv(argv, python)
    except ValueError as e:
        raise PlanError("CreateContainerConfigError", str(e)) from None
    argv = [argv[0], *(rewrite(a, mapping) for a in argv[1:])]
    local_env = {k: base_env[k] for k in BASE_ENV_KEYS if k in base_env}
    local_env["HOSTNAME"] = pod["metadata"]["name"]
    local_env.update({k: rewrite(v, mapping) for k, v in env.items()})
    local_env["ONNXOPS_HOST"] = pod_ip
    local_env["PYTHONUNBUFFERED"] = "1"
    pdir = pod_dir(state_dir, pod)
    workdir = container.get("workingDir")
    cwd = rewrite(workdir, mapping) if workdir else pdir
    if workdir and cwd == workdir:  # a working dir outside every mount: emulate it inside the pod dir
        cwd = str(Path(pdir) / "rootfs" / workdir.lstrip("/"))
    tpath = mapping[container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH]
    dirs = sorted({*mapping.values()} - {tpath} | {cwd, str(Path(tpath).parent)})
    return ProcessPlan(
        argv=argv,
        env=local_env,
        cwd=cwd,
        termination_path=tpath,
        dirs=dirs,
        files=files,
    )
