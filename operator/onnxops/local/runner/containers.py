"""The container backend of the local runtime's pod runner: each container of a pod runs as a podman (or
docker) container of its image, instead of a local process (the default backend, podspec.plan_container).

What the kubelet and the container runtime give a container, mapped onto `<engine> run`:
- the image's ENTRYPOINT/CMD with the pod's `command` (`--entrypoint`) and `args`;
- env: literal values, ConfigMap/Secret refs and envFrom, the downward API (podspec.container_env), plus
  KUBERNETES_SERVICE_HOST/PORT and ONNXOPS_HOST (the pod's address, which servers bind);
- volumes as bind mounts: a PVC is the shared host directory `<state>/pvc/<claim>`, an emptyDir and
  ConfigMap/Secret volumes live in the pod's directory, and the ServiceAccount token, CA and namespace at
  /var/run/secrets/kubernetes.io/serviceaccount (read-only); the termination-message file is a bind-mounted
  host file the runner reads after the exit;
- securityContext: runAsUser/runAsGroup (`--user`), readOnlyRootFilesystem (`--read-only`), and the
  mounted directories owned by that user (what fsGroup gives on a real node);
- the network: the host's (`--network host`), so the pod's loopback address (127.0.x.y) is reachable by
  probes, Services and the other pods exactly as with the process backend.

Stopping: SIGTERM reaches the container through the engine's signal proxy; after a SIGKILL of the client
`cleanup` (`rm -f`) removes the container. The argv is built here by hand: it is a fixed mapping of a few
pod-spec fields onto documented `podman run` flags, and no Python library does it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnxops.local.runner.podspec import (
    DEFAULT_TERMINATION_PATH,
    SA_MOUNT,
    PlanError,
    ProcessPlan,
    ServiceAccountToken,
    automounts_token,
    container_env,
    expand,
    pod_dir,
    sa_dir,
    volume_dirs,
    volume_files,
)

Obj = dict[str, Any]
# the host environment the engine's client needs (not the container's: that is given with --env)
ENGINE_ENV_KEYS = (
    "PATH",
    "HOME",
    "XDG_RUNTIME_DIR",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "DOCKER_HOST",
    "LANG",
)


def _security(pod: Obj, container: Obj) -> Obj:
    """The effective securityContext: the container's fields over the pod's."""
    pod_sc = pod.get("spec", {}).get("securityContext") or {}
    c_sc = container.get("securityContext") or {}
    keys = ("runAsUser", "runAsGroup", "runAsNonRoot")
    return {**{k: pod_sc[k] for k in keys if k in pod_sc}, **c_sc, "fsGroup": pod_sc.get("fsGroup")}


def container_name(pod: Obj, container: Obj) -> str:
    md = pod["metadata"]
    return f"k8s_{container['name']}_{md['name']}_{md.get('namespace', 'default')}_{md['uid'][:8]}"


@dataclass
class ContainerBackend:
    """Plans `<engine> run` commands for pods. `engine`: the engine's argv with its global flags, e.g.
    `["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]`; `run_flags`: more flags for every
    container (e.g. ulimits no higher than the host's)."""

    engine: Sequence[str] = ("podman",)
    run_flags: Sequence[str] = ()
    images: Mapping[str, str] = field(default_factory=dict)  # image in the pod spec -> local image ref
    base_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ContainerBackend:
        """ONNXOPS_LOCAL_ENGINE (default `podman --cgroup-manager cgroupfs`, with `--runtime runc` when
        ONNXOPS_LOCAL_ENGINE_RUNC=1) and ONNXOPS_LOCAL_RUN_FLAGS (default: the ulimits of the build
        scripts)."""
        e = os.environ if env is None else env
        engine = shlex.split(e.get("ONNXOPS_LOCAL_ENGINE", "podman --cgroup-manager cgroupfs"))
        flags = shlex.split(
            e.get("ONNXOPS_LOCAL_RUN_FLAGS", "--ulimit nofile=1024:1024 --ulimit nproc=4096:4096")
        )
        return cls(tuple(engine), tuple(flags), base_env=dict(e))

    def plan(
        self,
        pod: Obj,
        container: Obj,
        *,
        state_dir: str,
        pod_ip: str,
        configmaps: Mapping[str, Obj],
        secrets: Mapping[str, Obj],
        service_account: ServiceAccountToken | None = None,
    ) -> ProcessPlan:
        image = container.get("image", "")
        if not image:
            raise PlanError("InvalidImageName", "container has no image")
        image = self.images.get(image, image)
        env = container_env(pod, container, pod_ip, configmaps, secrets)
        dirs, _ = volume_dirs(pod, state_dir)
        files = volume_files(pod, state_dir, configmaps, secrets)
        name = container_name(pod, container)
        pdir = Path(pod_dir(state_dir, pod))
        tpath_c = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        tpath = str(pdir / "termination" / container["name"])
        mounts: list[str] = []
        for vm in container.get("volumeMounts") or []:
            if vm["name"] not in dirs:
                raise PlanError("CreateContainerConfigError", f"volumeMount {vm['name']!r}: no such volume")
            local = Path(dirs[vm["name"]])
            if vm.get("subPath"):
                local = local / vm["subPath"]
            opts = "ro" if vm.get("readOnly") else "rw"
            mounts.append(f"{local}:{vm['mountPath']}:{opts}")
        host_dirs = [m.split(":")[0] for m in mounts]  # the volumes' host directories, to create
        mounts.append(f"{tpath}:{tpath_c}:rw")
        base = {"ONNXOPS_HOST": pod_ip, "HOSTNAME": pod["metadata"]["name"]}
        if service_account is not None and automounts_token(pod):
            sdir = sa_dir(state_dir, pod)
            files.update(
                {p: d for p, d in service_account.files(sdir).items() if not p.endswith("kubeconfig")}
            )
            mounts.append(f"{sdir}:{SA_MOUNT}:ro")
            host_dirs.append(sdir)
            base.update(service_account.env())
        env = {**base, **env}
        sc = _security(pod, container)
        argv = [
            *self.engine,
            "run",
            "--rm",
            "--name",
            name,
            "--network",
            "host",
            "--hostname",
            pod["metadata"]["name"],
            *self.run_flags,
        ]
        uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
        owner = None
        if uid is not None:
            argv += ["--user", f"{uid}:{gid if gid is not None else (sc.get('fsGroup') or 0)}"]
            owner = (int(uid), int(gid if gid is not None else (sc.get("fsGroup") or 0)))
        elif sc.get("runAsNonRoot"):
            # the image's USER decides; make the mounts writable for any user (no fsGroup)
            owner = (-1, -1)
        if sc.get("readOnlyRootFilesystem"):
            argv.append("--read-only")
        if container.get("workingDir"):
            argv += ["--workdir", container["workingDir"]]
        for k, v in env.items():
            argv += ["--env", f"{k}={v}"]
        for m in mounts:
            argv += ["--volume", m]
        command = [expand(a, env) for a in container.get("command") or []]
        args = [expand(a, env) for a in container.get("args") or []]
        if command:
            argv += ["--entrypoint", command[0], image, *command[1:], *args]
        else:
            argv += [image, *args]
        host_env = {k: self.base_env[k] for k in ENGINE_ENV_KEYS if k in self.base_env}
        wanted_dirs = sorted({*host_dirs, str(Path(tpath).parent)} - set(files))
        return ProcessPlan(
            argv=argv,
            env=host_env,
            cwd=str(pdir),
            termination_path=tpath,
            dirs=wanted_dirs,
            files=files,
            owner=owner,
            cleanup=[*self.engine, "rm", "--force", *self._no_wait(), name],
        )

    def _no_wait(self) -> list[str]:
        return ["--time", "0"] if Path(self.engine[0]).name == "podman" else []
