# Sourced by the image scripts: picks the container engine and the flags it needs.
#   ENGINE        docker | podman (default: the first one found that answers `info`)
#   ENGINE_FLAGS  global flags (podman default: `--cgroup-manager cgroupfs`, plus `--runtime runc` when
#                 runc is installed: crun cannot set up some hosts' cgroups, systemd is not always there)
#   ENGINE_ULIMITS  ulimits passed to builds and runs (default nofile=1024:1024, nproc=4096:4096: the OCI
#                 runtime cannot raise rlimits above the host's, and the engine's defaults may be higher)
ENGINE=${ENGINE:-}
if [ -z "$ENGINE" ]; then
  # the first engine that answers (a docker CLI without a running daemon does not)
  for candidate in docker podman; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then
      ENGINE=$candidate; break
    fi
  done
fi
if [ -z "$ENGINE" ]; then
  echo "$(basename "$0"): no container engine found; install docker or podman (or set ENGINE)" >&2
  exit 1
fi
if [ -z "${ENGINE_FLAGS+x}" ]; then
  ENGINE_FLAGS=""
  if [ "$(basename "$ENGINE")" = "podman" ]; then
    ENGINE_FLAGS="--cgroup-manager cgroupfs"
    if command -v runc >/dev/null 2>&1; then ENGINE_FLAGS="--runtime runc $ENGINE_FLAGS"; fi
  fi
fi
ENGINE_ULIMITS=${ENGINE_ULIMITS:---ulimit nofile=1024:1024 --ulimit nproc=4096:4096}
# --network host: the builder stage's pip reaches the package index as the host does
ENGINE_BUILD_FLAGS=${ENGINE_BUILD_FLAGS:-$ENGINE_ULIMITS --network host}
ENGINE_RUN_FLAGS=${ENGINE_RUN_FLAGS:-$ENGINE_ULIMITS}

engine() {
  # shellcheck disable=SC2086
  "$ENGINE" $ENGINE_FLAGS "$@"
}
